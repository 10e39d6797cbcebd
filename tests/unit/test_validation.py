"""Tests for simseq.validation and simseq.cox: the estimators against closed forms and a
published Cox fit, the files run writes, the MAPE, and the errors for bad entries."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import simseq
from simseq.cli import main
from simseq.cox import fit_binary
from simseq.scenario import ScenarioError
from simseq.validation import COLUMNS, ROLE_TARGET, ROLE_VALIDATION, calibration_ids

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"
LN2 = math.log(2.0)

# -- the naive Cox model ----------------------------------------------------------------

# Freireich et al. (1963) remission times in weeks (Gehan 1965; R MASS::gehan), 21
# children on 6-MP and 21 on placebo; "+" times are censored.
MP = [6, 6, 6, 6, 7, 9, 10, 10, 11, 13, 16, 17, 19, 20, 22, 23, 25, 32, 32, 34, 35]
MP_EVENT = [1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]
PLACEBO = [1, 1, 2, 2, 3, 4, 4, 5, 5, 8, 8, 8, 8, 11, 11, 12, 12, 15, 17, 22, 23]


def test_cox_reproduces_the_published_breslow_fit_of_the_leukaemia_trial():
    """Placebo vs 6-MP with Breslow's ties: coefficient 1.509, SE 0.410, HR 4.523 (95% CI
    2.027-10.094) in Kleinbaum & Klein, Survival Analysis (3rd ed., ch. 3), as R's
    coxph(ties = "breslow") and statsmodels' PHReg(ties="breslow") (1.50919, 0.40956)
    give; Efron's ties, R's default, give 1.572 instead."""
    time = np.array(MP + PLACEBO, float)
    event = np.array(MP_EVENT + [1] * 21, bool)
    placebo = np.array([0] * 21 + [1] * 21)
    fit = fit_binary(time, event, placebo)
    assert fit.log_hr == pytest.approx(1.50919, abs=1e-5)
    assert fit.se == pytest.approx(0.40956, abs=1e-5)
    assert fit.hazard_ratio == pytest.approx(4.523, abs=1e-3)
    assert fit.ci95() == pytest.approx((2.027, 10.094), abs=1e-3)
    assert (fit.n, fit.events) == (42, 30)


def test_cox_of_two_exponential_groups_estimates_their_rate_ratio():
    """No censoring, rates 0.2 and 0.1 a month, 2,000 patients each (fixed seed): the log
    HR estimate is within 3 of its model-based SEs (~0.033) of log 2."""
    rng = np.random.default_rng(20261202)
    time = np.r_[rng.exponential(5.0, 2000), rng.exponential(10.0, 2000)]
    group = np.r_[np.ones(2000), np.zeros(2000)]
    fit = fit_binary(time, np.ones(4000, bool), group)
    assert abs(fit.log_hr - math.log(2.0)) < 3 * fit.se
    assert 0.03 < fit.se < 0.04  # sqrt(1/1000 + 1/1000) for 2,000 events per group, roughly


def test_cox_refuses_a_group_without_events():
    with pytest.raises(ValueError, match="group 1 has no events"):
        fit_binary([1.0, 2.0, 3.0], [True, True, False], [0, 0, 1])


# -- estimators on simulated patients: closed forms -------------------------------------


def _exp(median: float) -> dict:
    return {"family": "exponential", "median": {"value": median, "assumption": "toy"}}


def _ends(**probabilities) -> dict:
    return {"probabilities": probabilities, "assumption": "toy"}


P_NEXT = 0.7


def toy(validation: list[dict], p_next: float = P_NEXT) -> dict:
    """First line exponential (median 6), every patient progresses; p_next (70%) start line 2,
    the rest get supportive care (median 2); second line A (median 4) or B (median 8) ends
    by death only, so OS from its start is that exponential."""
    return {
        "name": "toy",
        "title": "Toy",
        "simulation": {
            "n_patients": 20000,
            "seed": 11,
            "horizon": {"value": 240, "assumption": "toy"},
        },
        "regimens": {
            "first": {
                "label": "First",
                "time_on_line": _exp(6.0),
                "line_end": _ends(progression=1.0),
            },
            "a": {"label": "A", "time_on_line": _exp(4.0), "line_end": _ends(death=1.0)},
            "b": {"label": "B", "time_on_line": _exp(8.0), "line_end": _ends(death=1.0)},
        },
        "supportive_care": _exp(2.0),
        "sequences": {
            "first_a": {
                "label": "First, then A",
                "lines": [
                    {"regimen": "first", "next_line": {"value": p_next, "assumption": "toy"}},
                    {"regimen": "a", "then": "supportive_care"},
                ],
            },
            "first_mix": {
                "label": "First, then A or B",
                "lines": [
                    {"regimen": "first", "next_line": {"value": p_next, "assumption": "toy"}},
                    {
                        "mix": {"probabilities": {"a": 0.5, "b": 0.5}, "assumption": "toy"},
                        "then": "supportive_care",
                    },
                ],
            },
        },
        "validation": validation,
    }


OS_2L_A = {
    "evidence": "second_line.lenvatinib.os.chon2024.unadjusted",
    "statistic": "median",
    "outcome": "os",
    "origin": "line_2",
    "subgroup": {"line": 2, "regimen": "a"},
}
S12 = {
    "evidence": "first_line.atz_bev.os_landmark_12.imbrave150",
    "statistic": "landmark_survival",
    "outcome": "os",
    "origin": "sequence_start",
    "sequences": ["first_a"],
}
PFS_1L = {
    "evidence": "first_line.atz_bev.pfs.imbrave150",
    "statistic": "median",
    "outcome": "pfs",
    "origin": "sequence_start",
    "sequences": ["first_a"],
}
UPTAKE = {
    "evidence": "first_line.atz_bev.after_failure.hepatolint2022",
    "field": "received_2l",
    "statistic": "proportion",
    "subgroup": {"line": 2},
}
HR = {
    "evidence": "quoted_in_chon2024.persano.lenvatinib_2l_after_atz_bev.os_hr_vs_sorafenib",
    "statistic": "hazard_ratio",
    "outcome": "os",
    "origin": "line_2",
    "subgroup": {"line": 2, "regimen": "a"},
    "reference": {"line": 2, "regimen": "b"},
}


@pytest.fixture(scope="module")
def toy_rows():
    study = simseq.Study.from_dict(toy([OS_2L_A, S12, PFS_1L, UPTAKE, HR]))
    rows = study.run(n_patients=20000, seed=3).summary_dict["validation"]
    return {(r["evidence"], r["sequence"]): r for r in rows}


def _within_mc(row: dict, truth: float) -> None:
    """The closed form lies within 3 Monte Carlo SEs of the estimate (SE = half the MC 95%
    interval / 1.96; a median's interval also carries the time grid's 0.02 months)."""
    se = (row["predicted_ci95_high"] - row["predicted_ci95_low"]) / (2 * 1.96)
    assert abs(row["predicted"] - truth) < 3 * se, (row, truth)


def test_median_from_line_2_start_among_its_starters_is_the_line_2_median(toy_rows):
    """Read from second-line start among A starters, OS is A's exponential (median 4),
    whichever sequence they are in: 70% (all) or 35% (half) of 20,000 patients."""
    for sid, share in (("first_a", P_NEXT), ("first_mix", P_NEXT / 2)):
        row = toy_rows[(OS_2L_A["evidence"], sid)]
        _within_mc(row, 4.0)
        assert row["n_simulated"] == pytest.approx(share * 20000, rel=0.05)
        assert row["origin"] == "line_2" and row["subgroup"] == "started a at line 2"


def test_landmark_from_sequence_start_is_the_mixture_of_two_hypoexponentials(toy_rows):
    """OS from sequence start: first line then A (70%) or supportive care (30%), each a sum
    of two exponentials: S(t) = (b e^-at - a e^-bt) / (b - a)."""

    def hypo(a, b, t):
        return (b * math.exp(-a * t) - a * math.exp(-b * t)) / (b - a)

    l1, la, lb = LN2 / 6.0, LN2 / 4.0, LN2 / 2.0
    truth = P_NEXT * hypo(l1, la, 12.0) + (1 - P_NEXT) * hypo(l1, lb, 12.0)
    row = toy_rows[(S12["evidence"], "first_a")]
    _within_mc(row, truth)
    assert row["n_simulated"] == 20000 and row["month"] == 12.0


def test_pfs_from_sequence_start_is_the_first_line_median(toy_rows):
    _within_mc(toy_rows[(PFS_1L["evidence"], "first_a")], 6.0)


def test_uptake_is_the_share_of_those_alive_after_line_1_who_start_line_2(toy_rows):
    for sid in ("first_a", "first_mix"):
        _within_mc(toy_rows[(UPTAKE["evidence"], sid)], P_NEXT)


def test_naive_cox_between_line_2_regimens_is_their_rate_ratio(toy_rows):
    """Exponential OS from second-line start, medians 4 (A) and 8 (B): HR A vs B = 2. The
    entry is read only where both groups occur (the mix)."""
    assert (HR["evidence"], "first_a") not in toy_rows
    row = toy_rows[(HR["evidence"], "first_mix")]
    se_log = (math.log(row["predicted_ci95_high"]) - math.log(row["predicted_ci95_low"])) / (
        2 * 1.96
    )
    assert abs(math.log(row["predicted"]) - math.log(2.0)) < 3 * se_log
    assert row["published"] == 0.45 and (row["published_ci95_low"], row["published_ci95_high"]) == (
        0.24,
        0.83,
    )
    assert row["inside_published_ci95"] is False


def test_published_values_ci_and_relative_error(toy_rows):
    uptake = toy_rows[(UPTAKE["evidence"], "first_a")]
    assert uptake["published"] == pytest.approx(30 / 41, abs=1e-6)
    # Clopper-Pearson 95% interval of 30/41
    assert uptake["published_ci95_low"] == pytest.approx(0.5706, abs=1e-4)
    assert uptake["published_ci95_high"] == pytest.approx(0.8578, abs=1e-4)
    assert uptake["relative_error"] == pytest.approx(
        uptake["predicted"] / uptake["published"] - 1, abs=1e-6
    )
    # chon2024's lenvatinib OS: 10.3 months, 95% CI 6.8 to NA (not reached): open above
    median = toy_rows[(OS_2L_A["evidence"], "first_a")]
    assert (median["published"], median["published_ci95_low"]) == (10.3, 6.8)
    assert median["published_ci95_high"] is None
    assert median["inside_published_ci95"] is False  # 4 months, below 6.8


def test_same_scenario_and_seed_give_identical_rows(toy_rows):
    again = simseq.Study.from_dict(toy([OS_2L_A, S12, PFS_1L, UPTAKE, HR])).run(20000, 3)
    assert again.summary_dict["validation"] == list(toy_rows.values())
    assert list(again.validation.columns) == list(COLUMNS) and len(again.validation) == 7


def test_the_estimators_read_the_same_patients_as_the_event_log():
    """``validation.patients`` reads the engine's arrays (``walk_log``), not the event log's
    strings; per patient it must say what ``simulate_trajectories``' rows say: death or
    censoring time, each line's start, stop, ending event and regimen."""
    from simseq.simulator import simulate_trajectories
    from simseq.validation import patients

    study = simseq.Study.from_dict(toy([OS_2L_A]))
    study.calibrate()
    model = study.model(study.rows())
    n, seed, horizon = 500, 11, study.horizon
    cohort = patients(model, n, seed, horizon)
    log = simulate_trajectories(model, n, seed, horizon=horizon)
    line_of = dict(zip(model.state_names, model.state_line, strict=True))
    regimen_of = dict(zip(model.state_names, model.state_regimen, strict=True))
    assert set(cohort) == set(model.seq_names)
    for sid, rows in log.groupby("sequence"):
        pts = cohort[sid]
        for p, path in rows.groupby("patient"):
            last = path.iloc[-1]
            assert pts.death[p] == last["t_stop"]
            assert pts.died[p] == (last["event"] == "death")
            for _, step in path.iterrows():
                k = line_of[step["from_state"]]
                if k > 0:
                    assert pts.start[k][p] == step["t_start"]
                    assert pts.stop[k][p] == step["t_stop"]
                    assert pts.end[k][p] == step["event"]
                    assert pts.regimen[k][p] == regimen_of[step["from_state"]]
        for k, starts in pts.start.items():  # nobody has a line the log does not show
            on = rows[[line_of[s] == k for s in rows["from_state"]]]
            assert np.count_nonzero(~np.isnan(starts)) == on["patient"].nunique()


def test_nobody_reaching_the_origin_gives_no_value_and_stays_out_of_the_mape():
    """With no second line, a median from its start has no patients: blank, and left out
    of the MAPE; the uptake is 0 (an error of -100%) and counts."""
    res = simseq.Study.from_dict(toy([OS_2L_A, UPTAKE, PFS_1L], p_next=0.0)).run(2000, 3)
    rows = {(r["evidence"], r["sequence"]): r for r in res.summary_dict["validation"]}
    for sid in ("first_a", "first_mix"):
        row = rows[(OS_2L_A["evidence"], sid)]
        assert (row["predicted"], row["relative_error"], row["n_simulated"]) == (None, None, 0)
        assert rows[(UPTAKE["evidence"], sid)]["relative_error"] == -1.0
    assert res.summary_dict["validation_mape"]["n_rows"] == 3  # 2 uptakes, first-line PFS
    assert res.summary_dict["validation_mape"]["excluded"] == 2


def test_calibration_targets_are_found_inside_pools():
    study = simseq.load(ROOT / "scenarios" / "base_case.yaml")
    ids = calibration_ids(study.scenario)
    assert "second_line.lenvatinib.os.cheon2025.unadjusted" in ids  # in a pool
    assert "second_line.tki_ici.os.yin2025" in ids  # a single record
    assert "first_line.atz_bev.os_landmark_12.imbrave150" not in ids
    bayes = simseq.load(ROOT / "scenarios" / "base_case_bayes.yaml")
    assert bayes.validation[0].role == ROLE_TARGET  # IMbrave150's S(12) is a target there
    assert {c.role for c in study.validation} == {ROLE_VALIDATION}
    assert len({c.record.id for c in study.validation}) >= 6


# -- what run writes --------------------------------------------------------------------


def tiny_with(validation: list[dict], tmp_path: Path) -> Path:
    """tests/fixtures/tiny.yaml (calibrated to second_line.lenvatinib.os.chon2024.unadjusted)
    with a validation section, written next to the results."""
    data = yaml.safe_load(TINY.read_text())
    data["validation"] = validation
    path = tmp_path / "tiny_validation.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


TARGET_ENTRY = {**OS_2L_A, "subgroup": {"line": 2, "regimen": "lenvatinib"}, "label": "chon2024"}
LANDMARK = {k: v for k, v in S12.items() if k != "sequences"} | {"label": "IMbrave150"}


def test_run_writes_validation_csv_png_and_prints_the_mape_without_targets(tmp_path):
    scenario = tiny_with([TARGET_ENTRY, LANDMARK], tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["run", str(scenario), "--out", str(out), "--patients", "4000"]
    )
    assert result.exit_code == 0, result.output
    with open(out / "validation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS
    # the target is read in the one sequence with lenvatinib, the landmark in both
    assert [(r["role"], r["sequence"]) for r in rows] == [
        (ROLE_TARGET, "atzbev_len"),
        (ROLE_VALIDATION, "atzbev_len"),
        (ROLE_VALIDATION, "atzbev_bsc"),
    ]
    assert rows[0]["inside_published_ci95"] in ("True", "False")
    assert (out / "validation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = simseq_summary(out)
    expected = 100 * np.mean([abs(float(r["relative_error"])) for r in rows[1:]])
    assert summary["validation_mape"] == {
        "percent": pytest.approx(expected, abs=1e-3),
        "n_rows": 2,
        "excluded": 1,
    }
    assert f"mean absolute percentage error {expected:.1f}%" in " ".join(result.output.split())
    assert "validation.csv" in (out / "manifest.json").read_text()


def simseq_summary(out: Path) -> dict:
    import json

    return json.loads((out / "summary.json").read_text())


def test_a_result_without_a_reported_ci_leaves_inside_blank(tmp_path):
    entry = {
        "evidence": "quoted_in_chon2024.us_cohort.lenvatinib_2l_after_atz_bev",
        "field": "os",
        "statistic": "median",
        "outcome": "os",
        "origin": "line_2",
        "subgroup": {"line": 2, "regimen": "lenvatinib"},
    }
    study = simseq.load(tiny_with([entry], tmp_path))
    res = study.run(n_patients=2000, seed=1)
    res.save(tmp_path / "out")
    with open(tmp_path / "out" / "validation.csv", newline="") as fh:
        (row,) = csv.DictReader(fh)
    assert row["published"] == "12.8" and row["published_ci95_low"] == ""
    assert row["inside_published_ci95"] == ""


# -- bad entries ------------------------------------------------------------------------

BAD = [
    ({**S12, "evidence": "no.such.record"}, ["validation.0.evidence", "no.such.record"]),
    (
        {**S12, "statistic": "median"},
        ["validation.0.statistic", "landmark_survival record", "median or medians"],
    ),
    ({**OS_2L_A, "origin": "sequence_start"}, ["validation.0.origin", "like for like", "line_2"]),
    (
        {**OS_2L_A, "evidence": "best_supportive_care_after_1l.os.hepatolint2022"},
        ["validation.0.evidence", "measured from 1l_failure"],
    ),
    ({**UPTAKE, "field": "nope"}, ["validation.0.field", "received_2l", "no_2l"]),
    ({**UPTAKE, "field": None}, ["validation.0.field", "name one"]),
    ({**S12, "field": "os"}, ["validation.0.field", "holds one value"]),
    ({**S12, "sequences": ["nope"]}, ["validation.0.sequences", "nope", "first_a"]),
    ({**S12, "sequences": ["first_a"] * 2}, ["validation.0.sequences", "named twice"]),
    (
        {**OS_2L_A, "subgroup": {"line": 2, "regimen": "sorafenib"}},
        ["validation.0.subgroup.regimen", "sorafenib", "unknown regimen", "'a'"],
    ),
    (
        {**HR, "sequences": ["first_a"]},
        ["validation.0.sequences", "first_a", "lines of first_a", "2: a"],
    ),
    ({**HR, "reference": {"line": 2}}, ["validation.0.reference", "must not overlap"]),
    ({**S12, "origin": None}, ["validation.0", "needs outcome: and origin:"]),
    ({**UPTAKE, "outcome": "os"}, ["validation.0", "a proportion has no outcome"]),
    ({**UPTAKE, "subgroup": {"line": 1}}, ["validation.0", "k >= 2"]),
    ({**S12, "reference": {"line": 2, "regimen": "a"}}, ["validation.0", "reference: goes"]),
    ({**S12, "origin": "line_1"}, ["validation.0.origin", "sequence_start"]),
    ({**S12, "statistic": "mean"}, ["validation.0.statistic", "median"]),
]


@pytest.mark.parametrize(("entry", "fragments"), BAD)
def test_bad_entries_are_refused_with_key_path_value_and_what_is_allowed(entry, fragments):
    with pytest.raises(ScenarioError) as err:
        simseq.Study.from_dict(toy([entry]), name="toy.yaml")
    message = str(err.value)
    assert message.startswith("toy.yaml: ")
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("n", [1, 5, 41, 5000])
def test_proportion_intervals_are_scipy_s(n):
    """The exact and Wilson intervals, written with scipy.special (scipy.stats costs a
    second of start-up), agree with scipy.stats.binomtest's to 1e-10."""
    from scipy.stats import binomtest

    from simseq.validation import clopper_pearson, wilson

    for k in sorted({0, 1, n // 3, n - 1, n}):
        exact = binomtest(k, n).proportion_ci(0.95, method="exact")
        score = binomtest(k, n).proportion_ci(0.95, method="wilson")
        np.testing.assert_allclose(clopper_pearson(k, n), (exact.low, exact.high), atol=1e-10)
        np.testing.assert_allclose(wilson(k, n), (score.low, score.high), atol=1e-10)
