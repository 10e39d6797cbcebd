"""Comparisons in a common population beside as observed (simseq.comparisons)."""

from pathlib import Path

import numpy as np
import pytest
import yaml

import simseq
from simseq.engine.codes import TALLY_OS_FROM_ENTRY
from simseq.fit import Z95
from simseq.model import structure_of
from simseq.outcomes import run_tallies, tally_curve
from simseq.scenario import ScenarioError
from simseq.simulator import simulate

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "scenarios" / "base_case.yaml"
N, SEED = 200_000, 8


def _base_dict() -> dict:
    data = yaml.safe_load(BASE.read_text())
    data["evidence"] = None
    return data


@pytest.fixture(scope="module")
def study():
    s = simseq.load(BASE)
    s.calibrate()
    return s


@pytest.mark.parametrize("regimen", ["lenvatinib", "sorafenib"])
def test_as_observed_is_the_regimen_s_own_cohort(study, regimen):
    """Simulated in its cohort's Child-Pugh mix, the regimen's OS from second-line start
    (among second-line starters) is its calibration target: "as observed" reproduces the
    unadjusted cohort. In the common population it moves the way the mix says (lenvatinib's
    cohort was fitter, so lower; sorafenib's sicker, so higher). Tolerance: 4 Monte Carlo
    SEs of the median (from its 95% interval) at N = 200,000, seed 8."""
    target = next(t for t in study.resolved.targets if t.spec.regimen == regimen)
    sid = f"atzbev_{regimen[:3]}"
    seq = next(s for s in study.resolved.sequences if s.name == sid)
    rows = study.rows()
    medians = {}
    for name, covariates in (
        ("observed", study.resolved.observed_population(regimen)),
        ("common", study.resolved.covariates),
    ):
        model = study.model_of(structure_of([seq], covariates), rows)
        t = simulate(model, N, SEED, horizon=study.horizon, tallies=run_tallies(model))
        second = model.state_index(sid, f"L2:{regimen}")
        curve = tally_curve(t, TALLY_OS_FROM_ENTRY, [second])
        lo, hi = curve.median_ci95()
        medians[name] = (curve.median(), (hi - lo) / (2 * Z95))
    value = target.value.of(rows)[0]
    median, se = medians["observed"]
    assert abs(median - value) < 4 * se, (median, value, se)
    common = medians["common"][0]
    assert (common < value) if regimen == "lenvatinib" else (common > value)


def test_run_reports_both_differences(study):
    result = study.run(n_patients=20_000, seed=3)
    (row,) = result.summary_dict["comparisons"]
    assert row["sequences"] == ["atzbev_len", "atzbev_sor"]
    common, observed = row["common_population"], row["as_observed"]
    # the common population's medians are the run's own
    runs = result.summary_dict["sequences"]
    assert common["median_os_months"][0] == pytest.approx(
        runs["atzbev_len"]["os_from_1l"]["median"], abs=1e-4
    )
    # lenvatinib's fitter cohort made its unadjusted advantage look larger
    assert observed["difference_months"] > common["difference_months"]
    assert row["observed_populations"]["atzbev_len"]["child_pugh_b"] == pytest.approx(0.075)
    assert row["observed_populations"]["atzbev_sor"]["child_pugh_b"] == pytest.approx(0.372)


def test_without_an_effect_the_two_are_the_same_patients():
    """A covariate with hazard ratio 1 changes nobody: as observed is the common
    population, draw for draw (the same streams), so the gap is exactly 0."""
    data = _base_dict()
    effect = data["population"]["covariates"]["child_pugh_b"]["effects"][0]
    effect["hazard_ratio"] = {"value": 1.0, "assumption": "no effect, for the test"}
    study = simseq.Study.from_dict(data)
    result = study.run(n_patients=5_000, seed=2)
    observed = study.as_observed(study.rows(), 5_000, 2)
    for sid in ("atzbev_len", "atzbev_sor"):
        np.testing.assert_array_equal(observed[sid].survival, result.curves[sid].survival)
    assert result.summary_dict["comparisons"][0]["as_observed_minus_common"] == 0.0


@pytest.mark.parametrize(
    ("change", "where", "message"),
    [
        (
            lambda d: d["comparisons"]["len_vs_sor"].update(sequences=["atzbev_len", "nope"]),
            "comparisons.len_vs_sor.sequences.1",
            "unknown sequence",
        ),
        (
            lambda d: d["comparisons"]["len_vs_sor"].update(
                sequences=["atzbev_len", "atzbev_real_world"]
            ),
            "comparisons.len_vs_sor.sequences.1",
            "second line must be one regimen",
        ),
        (
            lambda d: d["regimens"]["lenvatinib"]["cohort_population"].update(
                child_pugh_c={"value": 0.1, "assumption": "x"}
            ),
            "regimens.lenvatinib.cohort_population",
            "unknown population covariate",
        ),
    ],
)
def test_bad_comparisons_are_named(change, where, message):
    data = _base_dict()
    change(data)
    with pytest.raises(ScenarioError) as err:
        simseq.Study.from_dict(data)
    text = str(err.value)
    assert where in text and message in text, text
