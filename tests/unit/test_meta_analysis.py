"""Pooling medians: random-effects (REML, DerSimonian-Laird) and fixed-effect, checked
against a published worked example and by hand."""

import math

import numpy as np
import pytest

from simseq.fit import FitError
from simseq.meta_analysis import MedianSource, pool, pool_medians

# BCG vaccine trials (Colditz et al. 1994, JAMA 271:698): TB cases and non-cases in the
# vaccinated and control arms (tpos, tneg, cpos, cneg), the data set metafor ships as
# dat.bcg. Log risk ratios and their sampling variances as metafor's escalc("RR").
BCG = np.array(
    [
        (4, 119, 11, 128),
        (6, 300, 29, 274),
        (3, 228, 11, 209),
        (62, 13536, 248, 12619),
        (33, 5036, 47, 5761),
        (180, 1361, 372, 1079),
        (8, 2537, 10, 619),
        (505, 87886, 499, 87892),
        (29, 7470, 45, 7232),
        (17, 1699, 65, 1600),
        (186, 50448, 141, 27197),
        (5, 2493, 3, 2338),
        (27, 16886, 29, 17825),
    ],
    dtype=np.float64,
)


def _bcg_log_rr():
    tpos, tneg, cpos, cneg = BCG.T
    y = np.log((tpos / (tpos + tneg)) / (cpos / (cpos + cneg)))
    v = 1 / tpos - 1 / (tpos + tneg) + 1 / cpos - 1 / (cpos + cneg)
    return y, np.sqrt(v)


def test_reml_reproduces_viechtbauer_2010_bcg():
    # Viechtbauer W. Conducting meta-analyses in R with the metafor package. J Stat Softw
    # 2010;36(3):1-48, section 4 (rma(yi, vi, data = dat), REML): estimate -0.7145
    # (SE 0.1798), tau^2 = 0.3132, I^2 = 92.22%, Q(df = 12) = 152.2330. Printed to 4
    # decimals, so the tolerance is half a unit of the last printed digit.
    y, se = _bcg_log_rr()
    r = pool(y, se, "random_effects", "reml")
    assert r.estimate == pytest.approx(-0.7145, abs=5e-5)
    assert r.se == pytest.approx(0.1798, abs=5e-5)
    assert r.tau2 == pytest.approx(0.3132, abs=5e-5)
    assert 100 * r.i2 == pytest.approx(92.22, abs=5e-3)
    assert r.q == pytest.approx(152.2330, abs=5e-5)


def test_dersimonian_laird_reproduces_metafor_bcg():
    # metafor, rma(yi, vi, data = dat.bcg, method = "DL"): estimate -0.7141 (SE 0.1787),
    # tau^2 = 0.3088, I^2 = 92.12%, the same Q; and method = "FE": -0.4303 (SE 0.0405).
    y, se = _bcg_log_rr()
    r = pool(y, se, "random_effects", "dl")
    assert r.estimate == pytest.approx(-0.7141, abs=5e-5)
    assert r.se == pytest.approx(0.1787, abs=5e-5)
    assert r.tau2 == pytest.approx(0.3088, abs=5e-5)
    assert 100 * r.i2 == pytest.approx(92.12, abs=5e-3)
    # DerSimonian-Laird's I^2 is Higgins and Thompson's (Q - df) / Q
    assert r.i2 == pytest.approx((r.q - 12) / r.q, rel=1e-12)
    fixed = pool(y, se, "fixed_effect")
    assert fixed.estimate == pytest.approx(-0.4303, abs=5e-5)
    assert fixed.se == pytest.approx(0.0405, abs=5e-5)
    assert fixed.tau2 == 0.0


def test_fixed_effect_by_hand():
    r = pool([math.log(8.0), math.log(12.0)], [0.2, 0.1], "fixed_effect")
    # w = 25, 100
    log_p = (25 * math.log(8.0) + 100 * math.log(12.0)) / 125
    assert r.estimate == pytest.approx(log_p, rel=1e-12)
    assert r.se == pytest.approx(1 / math.sqrt(125), rel=1e-12)
    assert r.weights == pytest.approx((0.2, 0.8))
    q = 25 * (math.log(8.0) - log_p) ** 2 + 100 * (math.log(12.0) - log_p) ** 2
    assert r.q == pytest.approx(q, rel=1e-12)


def test_homogeneous_sources_give_no_between_study_variance():
    # identical estimates: Q = 0, tau^2 = 0, random effects = fixed effect
    for estimator in ("reml", "dl"):
        r = pool([1.0, 1.0, 1.0], [0.1, 0.2, 0.3], "random_effects", estimator)
        assert r.tau2 == 0.0 and r.i2 == 0.0
        assert r.se == pytest.approx(pool([1.0] * 3, [0.1, 0.2, 0.3], "fixed_effect").se)


def test_random_effects_widens_a_heterogeneous_pool():
    # second-line sorafenib OS: chon2024 5.6 (95% CI 4.7-9.0), cheon2025 11.5 (n = 67)
    sources = [
        MedianSource("chon2024", 5.6, ci95=(4.7, 9.0), n=86),
        MedianSource("cheon2025", 11.5, n=67),
    ]
    fixed = pool_medians(sources, "fixed_effect")
    random = pool_medians(sources, "random_effects")
    assert random.pooled.i2 > 0.5 and random.pooled.tau2 > 0
    assert random.se > 2 * fixed.se
    assert random.pooled.predictive_se == pytest.approx(
        math.sqrt(random.se**2 + random.pooled.tau2)
    )
    # the SE of each source follows fit.se_log_median: the CI, else 1/sqrt(n)
    assert sources[0].se_log == pytest.approx(math.log(9.0 / 4.7) / (2 * 1.959963984540054))
    assert sources[1].se_log == pytest.approx(1 / math.sqrt(67))
    assert "I^2" in random.description and "tau^2" in random.description
    assert "SE from n (a lower bound" in random.description


def test_single_source():
    pooled = pool_medians([MedianSource("a", 8.0, n=50)])
    assert pooled.value == pytest.approx(8.0)
    assert pooled.pooled.i2 is None and pooled.pooled.tau2 == 0.0


@pytest.mark.parametrize(
    ("sources", "match"),
    [
        ([], "no medians"),
        ([MedianSource("a", 8.0, n=10), MedianSource("b", 12.0)], "b: no information"),
        ([MedianSource("a", -8.0, n=10)], "median of a"),
    ],
)
def test_pool_errors(sources, match):
    with pytest.raises(FitError, match=match):
        pool_medians(sources)
