"""The inverse-CDF kernels against the NumPy reference in simseq.distributions and scipy.stats.

time_at_cumhaz and Family.quantile are independent implementations of the same
inversion (numba + cython_special vs NumPy + scipy.special), so they must agree
to rounding. The KS tests use N = 1e5 draws from one fixed seed and the 1% level.
For a family without a cured fraction F(t_i) = 1 - u_i, so the statistic is that
of the uniforms themselves (p = 0.215 at this seed): a failure means a wrong
transform, not an unlucky seed.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from simseq.distributions import FAMILIES, Distribution
from simseq.engine import codes
from simseq.engine.sample import (
    GENGAMMA_Q_TEMME,
    bind_special_functions,
    sample_times,
    time_at_cumhaz,
)

bind_special_functions()  # these tests call the exact samplers from Python

SEED = 20240611
N = 100_000

CASES = [
    ("exponential", (0.08,)),
    ("weibull", (0.6, 12.0)),
    ("weibull", (2.5, 9.0)),
    ("llogis", (0.8, 6.0)),
    ("llogis", (4.0, 3.0)),
    ("lnorm", (2.0, 0.5)),
    ("lnorm", (1.0, 1.6)),
    ("gompertz", (0.08, 0.03)),
    ("gompertz", (0.0, 0.1)),
    ("gompertz", (-0.05, 0.1)),
    ("gompertz", (-0.15, 0.06)),
    ("gamma", (0.5, 0.1)),
    ("gamma", (3.5, 0.4)),
    ("gengamma", (2.0, 0.8, 0.6)),
    ("gengamma", (2.0, 0.8, -0.7)),
    ("gengamma", (1.0, 0.5, 2.5)),
    ("gengamma", (2.5, 0.6, 0.03)),
    ("gengamma", (1.5, 1.1, 1e-3)),
    ("gengamma", (1.5, 1.1, -5e-3)),
    ("gengamma", (1.5, 1.1, 0.0)),
    ("gengamma", (1.5, 1.1, GENGAMMA_Q_TEMME)),
]
IDS = [f"{f}{p}" for f, p in CASES]
# Cumulative hazards from 1e-12 to 13 (S = 2e-6): beyond that 1 - exp(-e) is too
# close to 1 for Family.quantile(p) to be told the same e to 1e-9.
E_GRID = np.concatenate([np.logspace(-12, np.log10(13.0), 120), [0.5, 1.0, np.log(2.0)]])


@pytest.fixture(scope="module")
def uniforms():
    return np.random.default_rng(SEED).random(N)


def cure_fraction(family, params):
    return float(np.exp(params[1] / params[0])) if family == "gompertz" and params[0] < 0 else 0.0


@pytest.mark.parametrize(("family", "params"), CASES, ids=IDS)
def test_time_at_cumhaz_matches_quantile(family, params):
    fam = FAMILIES[family]
    p = np.pad(np.asarray(params, dtype=np.float64), (0, codes.N_PARAMS - len(params)))
    got = np.array([time_at_cumhaz(fam.code, p[0], p[1], p[2], e) for e in E_GRID])
    expected = fam.quantile(-np.expm1(-E_GRID), *params)
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-9)
    assert np.all(got[~finite] == np.inf)  # only a cured fraction gives inf here
    assert time_at_cumhaz(fam.code, p[0], p[1], p[2], 0.0) == 0.0
    assert time_at_cumhaz(fam.code, p[0], p[1], p[2], np.inf) == np.inf


@pytest.mark.parametrize(("family", "params"), CASES, ids=IDS)
def test_sample_times_ks(family, params, uniforms):
    dist = Distribution(family, params)
    times = sample_times(dist.code, dist.param_row(), 1.0, uniforms)
    assert times.dtype == np.float64 and times.shape == (N,)
    assert not np.any(np.isnan(times)) and np.all(times >= 0.0)
    cure = cure_fraction(family, params)
    if cure == 0.0:
        assert np.all(np.isfinite(times))
        assert stats.kstest(times, dist.cdf).pvalue > 0.01
    else:
        # KS needs a continuous law: test the finite draws against F(t) / (1 - cure)
        # and the number of infinite ones against Binomial(N, cure).
        cured = np.isinf(times)
        assert stats.binomtest(int(cured.sum()), N, cure).pvalue > 0.01
        assert stats.kstest(times[~cured], lambda t: dist.cdf(t) / (1.0 - cure)).pvalue > 0.01


@pytest.mark.parametrize(
    ("family", "params"), [c for c in CASES if c[0] in ("exponential", "weibull", "lnorm", "gamma")]
)
def test_sample_times_against_scipy(family, params, uniforms):
    ref = {
        "exponential": lambda p: stats.expon(scale=1.0 / p[0]),
        "weibull": lambda p: stats.weibull_min(c=p[0], scale=p[1]),
        "lnorm": lambda p: stats.lognorm(s=p[1], scale=np.exp(p[0])),
        "gamma": lambda p: stats.gamma(a=p[0], scale=1.0 / p[1]),
    }[family](params)
    dist = Distribution(family, params)
    times = sample_times(dist.code, dist.param_row(), 1.0, uniforms)
    assert stats.kstest(times, ref.cdf).pvalue > 0.01
    np.testing.assert_allclose(times[:1000], ref.isf(uniforms[:1000]), rtol=1e-9)


@pytest.mark.parametrize("hr", [0.35, 2.0])
@pytest.mark.parametrize(
    ("family", "params"),
    [("weibull", (1.3, 8.0)), ("llogis", (1.6, 10.0)), ("gengamma", (2.0, 0.8, -0.7))],
)
def test_sample_times_with_hr(family, params, hr, uniforms):
    dist = Distribution(family, params, hr)
    times = sample_times(dist.code, dist.param_row(), hr, uniforms)
    assert stats.kstest(times, dist.cdf).pvalue > 0.01
    u = uniforms[:2000]
    # S(t) = u  <=>  t = quantile(1 - u); 1 - u is exact for u >= 1/2 only
    upper = u >= 0.5
    np.testing.assert_allclose(times[:2000][upper], dist.quantile(1.0 - u[upper]), rtol=1e-9)
    np.testing.assert_allclose(dist.survival(times[:2000]), u, rtol=1e-9)


def test_sample_times_edges():
    u = np.array([1.0, 0.5, 0.0])
    t = sample_times(codes.FAMILY_WEIBULL, np.array([1.5, 4.0, 0.0]), 1.0, u)
    assert t[0] == 0.0 and t[1] == pytest.approx(4.0 * np.log(2.0) ** (1 / 1.5)) and t[2] == np.inf
    assert sample_times(codes.FAMILY_WEIBULL, np.zeros(3), 1.0, np.empty(0)).shape == (0,)
    assert np.isnan(time_at_cumhaz(codes.N_FAMILIES, 1.0, 1.0, 1.0, 0.5))


def test_gompertz_kernel_plateau_and_zero_shape():
    shape, rate = -0.2, 0.05
    plateau = -rate / shape  # H(inf) = 0.25
    g = codes.FAMILY_GOMPERTZ
    assert np.isfinite(time_at_cumhaz(g, shape, rate, 0.0, plateau * (1 - 1e-9)))
    assert time_at_cumhaz(g, shape, rate, 0.0, plateau) == np.inf
    assert time_at_cumhaz(g, shape, rate, 0.0, 5.0) == np.inf
    assert time_at_cumhaz(g, 0.0, rate, 0.0, 0.7) == pytest.approx(0.7 / rate, rel=1e-15)


def test_gengamma_kernel_deep_tails():
    # where scipy's gammaincinv at shape 1/Q^2 = 1e8 goes wrong, the Temme branch does not
    fam, gg = FAMILIES["gengamma"], codes.FAMILY_GENGAMMA
    for q in (1e-4, -1e-4, 0.0):
        for e in (1e-300, 1e-30, 1e-8, 30.0, 300.0, 700.0):
            t = time_at_cumhaz(gg, 2.0, 0.8, q, e)
            assert fam.cumhaz(t, 2.0, 0.8, q) == pytest.approx(e, rel=1e-9)


def test_kernels_are_cached():
    """A second process loads the kernels from numba's cache (ctypes pointers would prevent it)."""
    script = textwrap.dedent(
        """
        import warnings
        import numpy as np
        from numba.core.errors import NumbaWarning
        warnings.simplefilter("error", NumbaWarning)
        from simseq.engine.sample import bind_special_functions, sample_times
        bind_special_functions()
        sample_times(1, np.array([1.5, 2.0, 0.0]), 1.0, np.array([0.5]))
        print(sum(sample_times.stats.cache_hits.values()))
        """
    )
    root = Path(__file__).resolve().parents[2]
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root)
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr
    assert runs[1].stdout.strip() == "1"
