"""The first line of the shipped scenarios (issue 13): a death share solved to a landmark of a
whole sequence (base_case_first_line.yaml), checked against closed forms, the engine and the
shipped scenario; base_case.yaml's Weibull shape against its closed form."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq

from simseq.distributions import Distribution
from simseq.engine.codes import EVENT_DEATH, EVENT_PROGRESSION
from simseq.evidence import load_evidence
from simseq.model import Clock, Destination, SequenceModel, State, bind, structure_of
from simseq.outcomes import km_curve, km_survival_at
from simseq.params import Value
from simseq.quadrature import QUAD_STEP, os_landmark
from simseq.scenario import ScenarioError, load_scenario, parse_scenario
from simseq.solve import OK, DrawTarget, calibrate_draws
from simseq.study import Study, load

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "scenarios" / "base_case.yaml"
FIRST_LINE = ROOT / "scenarios" / "base_case_first_line.yaml"
LANDMARK_ID = "first_line.atz_bev.os_landmark_12.imbrave150"

# ------------------------------------------------------------- an exponential chain
# First line: exponential, median M1; it ends in death with probability d (the free share),
# else in progression to post-progression survival, exponential of median M2. OS at t:
#   S(t) = e^{-a t} + (1 - d) a / (b - a) (e^{-a t} - e^{-b t}),  a = ln2/M1, b = ln2/M2.
M1, M2, MONTH = 7.5, 9.0, 12.0
A, B = math.log(2) / M1, math.log(2) / M2


def _chain_survival(d, t=MONTH):
    return math.exp(-A * t) + (1 - d) * A / (B - A) * (math.exp(-A * t) - math.exp(-B * t))


def _chain_death_share(target):
    """The d with S(MONTH) = target, in closed form."""
    on_line = math.exp(-A * MONTH)
    after = A / (B - A) * (math.exp(-A * MONTH) - math.exp(-B * MONTH))
    return 1.0 - (target - on_line) / after


def _chain_structure():
    d = Value.column(0, 0.1)  # the death share is column 0 of the rows
    line = State(
        "L1",
        (
            Clock(
                Distribution("exponential", (A,)),
                (Destination("PPS", EVENT_PROGRESSION, 1.0 - d), Destination(None, EVENT_DEATH, d)),
            ),
        ),
        line=1,
    )
    pps = State(
        "PPS", (Clock(Distribution("exponential", (B,)), (Destination(None, EVENT_DEATH, 1.0),)),)
    )
    return structure_of([SequenceModel("chain", (line, pps))])


def test_landmark_of_the_chain_matches_its_closed_form():
    """The quadrature landmark of the chain at three death shares: the closed form within the
    grid's O(step^2) error (step 0.05 months: 1e-5 is ~4 step^2)."""
    shares = np.array([[0.02], [0.1], [0.3]])
    got = os_landmark(bind(_chain_structure(), shares), 0, MONTH)
    want = [_chain_survival(d) for d in shares[:, 0]]
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * QUAD_STEP**2)


def test_death_share_solved_to_a_landmark_matches_the_closed_form():
    """Four draws with different landmark targets solved at once: each death share is the
    closed form's within the landmark's grid error divided by |dS/dd| (>= 0.3 here), and
    the achieved landmark is the target within the root's tolerance."""
    targets = np.array([0.45, 0.5, 0.55, 0.6])
    structure = _chain_structure()
    target = DrawTarget("os_landmark_from_sequence_start", 0, targets, (0.01, 0.9), month=MONTH)
    res = calibrate_draws([target], lambda free: bind(structure, free), horizon=60.0)
    assert res.methods == ("quadrature",) and (res.status == OK).all()
    want = np.array([_chain_death_share(v) for v in targets])
    slope = A / (B - A) * (math.exp(-A * MONTH) - math.exp(-B * MONTH))
    assert slope > 0.3
    np.testing.assert_allclose(res.values[:, 0], want, rtol=0, atol=4 * QUAD_STEP**2 / slope)
    np.testing.assert_allclose(res.achieved[:, 0], targets, rtol=0, atol=1e-6)


def test_death_share_solved_by_the_engine_agrees_within_monte_carlo_error():
    """The same solve with the engine (20,000 patients, common random numbers): the landmark
    at the solved share is the target within 4 binomial SEs (sqrt(p (1 - p) / n) = 0.0035),
    checked by the closed form, so the share is within 4 SE / slope of the exact one."""
    structure = _chain_structure()
    n = 20_000
    target = DrawTarget(
        "os_landmark_from_sequence_start", 0, np.array([0.5]), (0.01, 0.9), month=MONTH
    )
    res = calibrate_draws(
        [target], lambda free: bind(structure, free), horizon=60.0, method="simulation",
        n_patients=n, seed=11,
    )  # fmt: skip
    assert res.methods == ("simulation",) and res.ok.all()
    se = math.sqrt(0.5 * 0.5 / n)
    assert abs(_chain_survival(res.values[0, 0]) - 0.5) < 4 * se


def test_km_survival_at_is_the_km_curve_at_the_time():
    """Batched KM survival at a time: km_curve(...).at(t) for every histogram."""
    rng = np.random.default_rng(3)
    events, censored = rng.integers(0, 40, (4, 300)), rng.integers(0, 10, (4, 300))
    for t in (0.0, 0.01, 0.02, 1.234, 5.99, 6.0):
        got = km_survival_at(events, censored, 0.02, t)
        want = [km_curve(events[i], censored[i], 0.02).at(t) for i in range(4)]
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


# ------------------------------------------------------------------ base_case.yaml


def test_first_line_shape_gives_the_duration_of_disease_control():
    """base_case.yaml's Weibull shape solves (t0 + 8.5)^k - t0^k = 7.5^k, t0 = 6 weeks: the
    median time left on the line at the first assessment is inoue2026's duration of disease
    control (3 decimals, as written)."""
    sc, ev = load_scenario(BASE), load_evidence()
    spec = sc.regimens["atz_bev"].time_on_line
    median = ev.get(spec.median.evidence).value
    control = ev.get("first_line.atz_bev.durations.inoue2026").values["duration_of_disease_control"]
    t0 = 42 / 30.4375  # 6 weeks in months (365.25 / 12 days a month)
    k = brentq(lambda k: (t0 + control) ** k - t0**k - median**k, 0.3, 1.5)
    assert spec.shape.value == round(k, 3)
    weibull = Distribution("weibull", (spec.shape.value, median / math.log(2) ** (1 / k)))
    assert weibull.survival(t0 + control) / weibull.survival(t0) == pytest.approx(0.5, abs=1e-3)


@pytest.fixture(scope="module")
def first_line_study():
    study = load(FIRST_LINE)
    study.calibrate()
    return study


def test_landmark_is_a_target_in_one_scenario_and_validation_only_in_the_other(
    first_line_study,
):
    """base_case_first_line.yaml solves the death share to the IMbrave150 landmark and keeps
    it in its validation list (where the harness marks it as a calibration target);
    base_case.yaml has it as validation only, with chon2024's cause split."""

    def target_ids(sc):
        return [i for t in sc.calibration.targets for i in t.target.evidence_ids()]

    sc = first_line_study.scenario
    assert LANDMARK_ID in target_ids(sc)
    assert LANDMARK_ID in [v.evidence for v in sc.validation]
    base = load_scenario(BASE)
    assert LANDMARK_ID not in target_ids(base)
    assert LANDMARK_ID in [v.evidence for v in base.validation]
    assert base.regimens["atz_bev"].line_end.death_share is None
    assert base.regimens["atz_bev"].line_end.causes["death"] == "died_on_treatment"


def test_real_world_landmark_inside_the_imbrave150_interval(first_line_study):
    """With the landmark as target: the real-world sequence's OS at 12 months from first-line
    start, by quadrature, is the target (0.672); simulated with 200,000 patients (binomial
    SE 0.0010) it is within 4 SE of it, so inside the record's 95% CI [0.613, 0.731].
    First-line PFS keeps inoue2026's median."""
    rec = load_evidence().get(LANDMARK_ID)
    lo, hi = rec.ci95
    cal = first_line_study.calibrate()
    landmark = next(t for t in cal.targets if t.target_id == LANDMARK_ID)
    assert landmark.achieved == pytest.approx(rec.value, abs=1e-6)
    assert 0.0 < landmark.solved_median < 34 / 194  # fewer deaths than the discontinued cohort
    result = first_line_study.run(n_patients=200_000, seed=5, threads=1)
    s12 = result.curves["atzbev_real_world"].at(12.0)
    se = math.sqrt(rec.value * (1 - rec.value) / 200_000)
    assert abs(s12 - rec.value) < 4 * se
    assert lo < s12 < hi
    pfs = result.summary_dict["sequences"]["atzbev_real_world"]["pfs_1l"]["median"]
    assert pfs == pytest.approx(7.5, abs=0.05)  # a few 0.02-month bins of MC error


# ------------------------------------------------------------------------- input errors


def _base_data() -> dict:
    """base_case_first_line.yaml merged with base_case.yaml, as plain data."""
    return json.loads(
        json.dumps(load_scenario(FIRST_LINE).model_dump(mode="json", exclude_none=True))
    )


@pytest.mark.parametrize(
    ("change", "where", "says"),
    [
        (
            lambda d: d["regimens"]["atz_bev"]["line_end"]["causes"].update(
                death="died_on_treatment"
            ),
            "regimens.atz_bev.line_end",
            "maps the other causes only",
        ),
        (
            lambda d: d["calibration"]["targets"][3].update(regimen="lenvatinib"),
            "calibration.targets.3",
            "must be declared as {calibrate: ...}",
        ),
        (
            lambda d: d["calibration"]["targets"][3].update(
                sequence="atzbev_bsc", regimen="sorafenib"
            ),
            "calibration.targets.3.regimen",
            "not a regimen of sequence 'atzbev_bsc'",
        ),
        (
            lambda d: d["calibration"]["targets"][0].update(free="line_end.death_share"),
            "calibration.targets.0",
            "frees a median",
        ),
        (
            lambda d: d["calibration"]["targets"].pop(3),
            "regimens.atz_bev.line_end.death_share",
            "no calibration target frees it",
        ),
    ],
)
def test_bad_first_line_calibration_is_refused(change, where, says):
    data = _base_data()
    change(data)
    with pytest.raises(ScenarioError) as err:
        Study(parse_scenario(data, "first_line.yaml"), path="first_line.yaml")
    text = str(err.value)
    assert where in text and says in text
