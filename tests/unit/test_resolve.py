"""Scenario -> model: evidence lookups, pooling, transport flags, heterogeneity, extends."""

import math
from pathlib import Path

import pytest

from simseq.evidence import load_evidence
from simseq.fit import Z95
from simseq.meta_analysis import pool
from simseq.resolve import resolve
from simseq.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "scenarios" / "base_case.yaml"
STUB = {
    "lenvatinib.after_progression": 5.0,
    "sorafenib.after_progression": 4.0,
    "tki_ici.after_progression": 5.0,
}


@pytest.fixture(scope="module")
def base():
    return resolve(load_scenario(BASE), load_evidence(), STUB, str(BASE))


def test_base_case_builds_five_sequences(base):
    names = [s.name for s in base.sequences]
    assert names == [
        "atzbev_len",
        "atzbev_sor",
        "atzbev_tki_ici",
        "atzbev_bsc",
        "atzbev_real_world",
    ]
    assert base.horizon == 120


def test_first_line_split_and_second_line_uptake_follow_chon2024(base):
    seq = base.sequences[0]
    first = seq.states[0]
    (clock,) = first.clocks
    probs: dict[str, float] = {}
    for d in clock.destinations:
        probs[d.state or "dead"] = probs.get(d.state or "dead", 0.0) + d.probability.base
    assert probs["L2:lenvatinib"] == pytest.approx(152 / 194 * 136 / 152)
    assert probs["dead"] == pytest.approx(34 / 194)
    assert probs["BSC after L1"] == pytest.approx(152 / 194 * 16 / 152 + 8 / 194)
    assert clock.law.base_distribution().median() == pytest.approx(7.5)


def test_pooled_median_is_a_random_effects_pool_of_its_sources(base):
    pooled = next(p for p in base.provenance if p.path == "regimens.lenvatinib.time_on_line.median")
    # chon2024 3.5 (95% CI 3.0-4.2), cheon2025 4.9 (n = 56, no CI): REML on the log medians
    ses = [math.log(4.2 / 3.0) / (2 * Z95), 1 / math.sqrt(56)]
    expected = pool([math.log(3.5), math.log(4.9)], ses, "random_effects", "reml")
    assert pooled.kind == "pool" and pooled.value == pytest.approx(math.exp(expected.estimate))
    assert pooled.uncertainty.se_log == pytest.approx(expected.se)
    assert expected.tau2 > 0 and "I^2=78%" in pooled.note
    assert set(pooled.ids) == {
        "second_line.lenvatinib.pfs.chon2024.unadjusted",
        "second_line.lenvatinib.pfs.cheon2025.unadjusted",
    }


def test_every_assumption_states_a_reason(base):
    assumptions = [p for p in base.provenance if p.kind == "assumption"]
    assert assumptions and all(len(p.note) > 20 for p in assumptions)


def test_transport_is_flagged_only_where_evidence_moved(base):
    assert [(t.sequence, t.regimen, t.measured_after, t.used_after) for t in base.transports] == [
        ("atzbev_tki_ici", "tki_ici", "lenvatinib", "atz_bev")
    ]
    len_first = ROOT / "scenarios" / "len_first_line.yaml"
    stub = {"tki_mono.after_progression": 4.0, "tki_ici.after_progression": 5.0}
    assert resolve(load_scenario(len_first), load_evidence(), stub).transports == []


def test_transport_hazard_ratio_is_applied(tmp_path):
    text = BASE.read_text().replace(
        "    transport_hazard_ratio:\n      value: 1.0",
        "    transport_hazard_ratio:\n      value: 1.3",
    )
    path = tmp_path / "t.yaml"
    path.write_text(text)
    res = resolve(load_scenario(path), load_evidence(), STUB)
    seq = next(s for s in res.sequences if s.name == "atzbev_tki_ici")
    state = next(s for s in seq.states if s.name == "L2:tki_ici")
    untouched = resolve(load_scenario(BASE), load_evidence(), STUB)
    ref = next(s for s in untouched.sequences if s.name == "atzbev_tki_ici")
    ref_state = next(s for s in ref.states if s.name == "L2:tki_ici")
    t = 4.0
    assert state.clocks[0].law.base_distribution().survival(t) == pytest.approx(
        ref_state.clocks[0].law.base_distribution().survival(t) ** 1.3
    )
    assert res.transports[0].hazard_ratio == 1.3


def test_real_world_mix_is_renormalised(base):
    (r,) = base.renormalised
    assert r.sequence == "atzbev_real_world"
    assert r.kept == pytest.approx({"sorafenib": 86 / 126, "lenvatinib": 40 / 126})
    assert r.dropped == {"regorafenib": 8, "fu5_chemotherapy": 2}


def test_base_case_population_and_cohort_mixes():
    """Child-Pugh B in the common population (chon2024, all second-line patients) acts on
    survival after second-line progression; each calibration cohort has its own copy at
    its arm's prevalence."""
    res = resolve(load_scenario(BASE), load_evidence(), STUB)
    (cov,) = res.covariates
    assert cov.name == "child_pugh_b" and cov.prevalence.base == pytest.approx(1 - 0.722)
    seq = next(s for s in res.sequences if s.name == "atzbev_len")
    pps = next(s for s in seq.states if s.role == "post_progression")
    effects = {k: v.base for k, v in pps.clocks[0].covariate_log_hr.items()}
    assert effects == {"child_pugh_b": pytest.approx(math.log(2.472))}
    line2 = next(s for s in seq.states if s.line == 2)
    assert not line2.clocks[0].covariate_log_hr
    mixes = {
        rid: [(c.name, c.prevalence.base) for c in res.cohort_covariates(rid)]
        for rid in ("lenvatinib", "sorafenib", "tki_ici")
    }
    assert mixes == {
        "lenvatinib": [("child_pugh_b@cohort:lenvatinib", pytest.approx(1 - 0.925))],
        "sorafenib": [("child_pugh_b@cohort:sorafenib", pytest.approx(1 - 0.628))],
        "tki_ici": [("child_pugh_b@cohort:tki_ici", pytest.approx(1 - 0.722))],
    }


def test_extends_merges_and_null_deletes(tmp_path):
    fixed = "".join(
        f"  {r}:\n    after_progression:\n      median: {{calibrate: null, value: 6.0, "
        "assumption: fixed for this test}\n"
        for r in ("lenvatinib", "sorafenib", "tki_ici")
    )
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {BASE}\nname: child\ncalibration: null\nregimens:\n{fixed}")
    sc = load_scenario(child)
    assert sc.name == "child" and sc.calibration is None
    assert sc.regimens["lenvatinib"].after_progression.median.value == 6.0
    assert sc.regimens["lenvatinib"].time_on_line.median.pool  # untouched keys survive
    no_delete = tmp_path / "no_delete.yaml"
    no_delete.write_text(
        fixed.replace("calibrate: null, ", "").join(
            [f"extends: {BASE}\nname: nd\ncalibration: null\nregimens:\n", ""]
        )
    )
    with pytest.raises(ScenarioError, match="exactly one of"):
        load_scenario(no_delete)  # the base's calibrate and the new value would both be set
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\nname: loop\n")
    with pytest.raises(ScenarioError, match="circular"):
        load_scenario(loop)


def test_unresolved_calibration_is_an_error():
    with pytest.raises(ScenarioError, match="run simseq calibrate"):
        resolve(load_scenario(BASE), load_evidence(), {})


def test_age_adjustment_becomes_a_utility_trend(tmp_path):
    cea = ROOT / "scenarios" / "cea_base_case.yaml"
    path = tmp_path / "age.yaml"
    coef = "{value: %s, assumption: test coefficient}"
    path.write_text(
        f"extends: {cea}\nname: age\neconomics:\n  age_adjustment:\n"
        "    start_age: {evidence: population_at_2l.chon2024, field: median_age}\n"
        f"    intercept: {coef % 0.95}\n    age: {coef % -0.0002587}\n"
        f"    age_squared: {coef % -0.0000332}\n"
    )
    res = resolve(load_scenario(path), load_evidence(), STUB)
    u0 = 0.95 - 0.0002587 * 63 - 0.0000332 * 63**2
    b1, b2 = (b.base for b in res.economics.utility_trend)
    assert b1 == pytest.approx((-0.0002587 - 2 * 0.0000332 * 63) / (12 * u0))
    assert b2 == pytest.approx(-0.0000332 / (144 * u0))
    t = 60.0  # five years on: the trend equals the ratio of general-population utilities
    assert 1 + b1 * t + b2 * t * t == pytest.approx(
        (0.95 - 0.0002587 * 68 - 0.0000332 * 68**2) / u0
    )


def test_borrowed_evidence_is_found_and_warned():
    """len_first_line takes ATZ/BEV's cause split, next-line share and supportive-care
    survival for first-line lenvatinib: each is flagged (in every output's warnings);
    the base case borrows nothing."""
    from simseq.results import resolved_warnings

    path = ROOT / "scenarios" / "len_first_line.yaml"
    fixed = {"tki_mono.after_progression": 5.0, "tki_ici.after_progression": 6.0}
    res = resolve(load_scenario(path), load_evidence(), fixed)
    found = {(b.path, b.evidence_id, b.measured_on, b.used_for) for b in res.borrowed}
    split = "first_line.atz_bev.discontinuation.chon2024"
    uptake = "first_line.atz_bev.after_progression.chon2024"
    bsc = "best_supportive_care_after_1l.os.hepatolint2022"
    assert found == {
        ("regimens.lenvatinib_1l.line_end", split, "atz_bev", "lenvatinib"),
        *{
            (f"sequences.{s}.lines.0.next_line", uptake, "atz_bev", "lenvatinib")
            for s in ("len_tki", "len_tki_ici", "len_real_world")
        },  # fmt: skip
        (
            "supportive_care.median",
            bsc,
            "patients after first-line atz_bev",
            "patients after first-line lenvatinib",
        ),
    }
    warned = [w for w in resolved_warnings(res) if w.startswith("borrowed evidence")]
    assert len(warned) == 3 and any(split in w for w in warned)
    assert not resolve(load_scenario(BASE), load_evidence(), STUB).borrowed
