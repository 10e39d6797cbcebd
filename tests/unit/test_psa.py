"""PSA: recalibration by quadrature.

Statistical tolerances are 3 Monte Carlo standard errors at the stated N and seed.
"""

from pathlib import Path

import pytest

from simseq.distributions import Distribution
from simseq.engine.codes import TALLY_OS_GIVEN_ENTRY
from simseq.evidence import load_evidence
from simseq.model import compile_model
from simseq.outcomes import tally_curve
from simseq.psa import _cohort_parts, _target_value, os_median_by_quadrature, solve_by_quadrature
from simseq.resolve import resolve
from simseq.scenario import load_scenario
from simseq.simulator import simulate

ROOT = Path(__file__).resolve().parents[2]
CEA = ROOT / "scenarios" / "cea_base_case.yaml"
BASE_VALUES = {"lenvatinib.after_progression": 6.45, "sorafenib.after_progression": 4.75,
               "tki_ici.after_progression": 5.78}  # fmt: skip


def test_quadrature_median_matches_simulation():
    """A Weibull line (p_prog 0.8, deterioration 0.05) then exponential survival: the
    quadrature OS median agrees with 400k simulated patients within 3 MC SEs."""
    from simseq.engine.codes import EVENT_DEATH, EVENT_DETERIORATION, EVENT_PROGRESSION
    from simseq.model import Clock, Destination, SequenceModel, State

    line = Distribution("weibull", (1.3, 5.0))
    pps, bsc = Distribution("exponential", (0.12,)), Distribution("exponential", (0.4,))
    dests = (Destination("PPS", EVENT_PROGRESSION, 0.8), Destination(None, EVENT_DEATH, 0.15),
             Destination("BSC", EVENT_DETERIORATION, 0.05))  # fmt: skip
    states = (
        State("L", (Clock(line, dests),)),
        State("PPS", (Clock(pps, (Destination(None, EVENT_DEATH, 1.0),)),)),
        State("BSC", (Clock(bsc, (Destination(None, EVENT_DEATH, 1.0),)),)),
    )
    model = compile_model([SequenceModel("s", states)])
    curve = tally_curve(simulate(model, 400_000, 5, horizon=240.0), TALLY_OS_GIVEN_ENTRY, [0])
    lo, hi = curve.median_ci95()
    quad = os_median_by_quadrature(line, 0.8, 0.05, pps, bsc, 240.0)
    assert abs(quad - curve.median()) < 3 * (hi - lo) / (2 * 1.959964)
    # the grid error is far below that: halving the step moves the median by < 1e-3 months
    assert abs(os_median_by_quadrature(line, 0.8, 0.05, pps, bsc, 240.0, step=0.025) - quad) < 1e-3


def test_quadrature_recalibration_reproduces_targets():
    """Solved medians make the quadrature OS medians hit the published targets exactly."""
    sc, ev = load_scenario(CEA), load_evidence()
    values = solve_by_quadrature(sc, ev, BASE_VALUES, {}, 120.0)
    for tgt in sc.calibration.targets:
        res = resolve(sc, ev, values, cohort_regimen=tgt.regimen)
        tol, p_prog, p_det, pps, bsc = _cohort_parts(res)
        got = os_median_by_quadrature(tol, p_prog, p_det, pps, bsc, 120.0)
        assert got == pytest.approx(_target_value(sc, ev, tgt, {}), rel=1e-6)


def test_psa_refuses_what_quadrature_cannot_recalibrate(tmp_path):
    """A population with covariates would be recalibrated wrongly: refused, clearly."""
    from simseq.scenario import ScenarioError

    het = tmp_path / "het.yaml"
    het.write_text(
        f"extends: {CEA}\nname: het\npopulation:\n  covariates:\n    cp_b:\n"
        "      prevalence: {value: 0.3, assumption: test}\n      effects:\n"
        "        - regimens: [lenvatinib]\n          clocks: [after_progression]\n"
        "          hazard_ratio: {value: 2.0, assumption: test}\n"
    )
    with pytest.raises(ScenarioError, match="population covariates"):
        solve_by_quadrature(load_scenario(het), load_evidence(), BASE_VALUES, {}, 120.0, str(het))
