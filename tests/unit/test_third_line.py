"""An explicit third line (``Regimen.third_line``) against closed forms."""

import copy
import math
from pathlib import Path

import pytest
import yaml

import simseq
from simseq.engine.codes import TALLY_OS_GIVEN_ENTRY
from simseq.model import compile_model
from simseq.outcomes import run_tallies, tally_curve
from simseq.resolve import resolve
from simseq.scenario import ScenarioError
from simseq.simulator import simulate

ROOT = Path(__file__).resolve().parents[2]
TINY = yaml.safe_load((ROOT / "tests" / "fixtures" / "tiny.yaml").read_text())
N, SEED = 400_000, 21
LATER_PFS, LATER_PPS = 3.0, 2.0  # months, medians of the third line's clocks


def _with_third_line() -> dict:
    data = copy.deepcopy(TINY)
    data["simulation"]["horizon"] = {"value": 600, "assumption": "long: RMST is the mean"}
    data["regimens"]["lenvatinib"]["third_line"] = {
        "share": {
            "evidence": "second_line.lenvatinib.third_line_received.chon2024",
            "count": "received_3l",
        },  # fmt: skip
        "regimen": "later",
    }
    data["regimens"]["later"] = {
        "label": "Any third line",
        "time_on_line": {
            "family": "exponential",
            "median": {"value": LATER_PFS, "assumption": "test"},
        },
        "line_end": {"probabilities": {"progression": 0.9, "death": 0.1}, "assumption": "test"},
        "after_progression": {
            "family": "exponential",
            "median": {"value": LATER_PPS, "assumption": "test"},
        },
    }
    return data


@pytest.fixture(scope="module")
def study():
    s = simseq.Study.from_dict(_with_third_line())
    s.calibrate()
    return s


def test_the_cohort_mean_is_the_closed_form(study):
    """All clocks exponential: from second-line start, mean OS = 1/a + 0.9 [p (1/b + 0.9/d)
    + (1 - p)/c] (a, b: the lines' rates; c, d: the post-progression rates; p = 18/40
    starting the third line; 10% of each line's events are deaths). The engine's RMST to
    600 months (the mean: every rate is above 0.05 a month) within 4 Monte Carlo SEs, at
    the calibrated c; and 0.9 p of the cohort enter the third line (4 binomial SEs)."""
    res = resolve(
        study.scenario, study.evidence, study.calibration.values, cohort_regimen="lenvatinib"
    )
    model = compile_model(res.sequences, res.covariates)
    c = math.log(2) / study.calibration.values["lenvatinib.after_progression"]
    a = math.log(2) / 3.5  # second_line.lenvatinib.pfs.chon2024.unadjusted
    b, d = math.log(2) / LATER_PFS, math.log(2) / LATER_PPS
    p = 18 / 40
    mean = 1 / a + 0.9 * (p * (1 / b + 0.9 / d) + (1 - p) / c)
    t = simulate(model, N, SEED, horizon=600.0, tallies=run_tallies(model))
    rmst, se = tally_curve(t, TALLY_OS_GIVEN_ENTRY, [0]).rmst(600.0)
    assert abs(rmst - mean) < 4 * se, (rmst, mean, se)
    third = model.state_index("cohort:lenvatinib", "L3:later")
    share = t.n_entered[0, third] / N
    assert abs(share - 0.9 * p) < 4 * math.sqrt(0.9 * p * (1 - 0.9 * p) / N)


def test_calibration_keeps_the_target_with_the_third_line(study):
    """The post-progression median is solved with the third line in the cohort: OS from
    second-line start still hits chon2024's 10.3 months; the sequence reports a third line."""
    (row,) = study.calibration.targets
    assert row.achieved == pytest.approx(10.3, rel=1e-6)
    result = study.run(n_patients=20_000, seed=1)
    block = result.summary_dict["sequences"]["atzbev_len"]
    assert "later" in block["third_line"]
    assert block["third_line"]["later"]["fraction_started"] > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["regimens"]["lenvatinib"]["third_line"].update(regimen="nope"),
            "unknown regimen",
        ),
        (
            lambda d: d["regimens"]["later"].update(
                third_line={"share": {"value": 0.5, "assumption": "x"}, "regimen": "lenvatinib"}
            ),
            "cannot have a third line",
        ),
    ],
)
def test_bad_third_lines_are_named(change, message):
    data = _with_third_line()
    change(data)
    with pytest.raises(ScenarioError, match=message):
        simseq.Study.from_dict(data)
