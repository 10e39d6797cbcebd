"""PSA: parameter draws from the evidence and recalibration by quadrature.

Statistical tolerances are 3 Monte Carlo standard errors at the stated N and seed.
"""

import math
from pathlib import Path

import numpy as np
import pytest

from simseq.distributions import Distribution
from simseq.engine.codes import TALLY_OS_GIVEN_ENTRY
from simseq.evidence import load_evidence
from simseq.model import compile_model
from simseq.outcomes import tally_curve
from simseq.psa import (
    Parameter,
    _cohort_parts,
    _target_value,
    draw_parameters,
    os_median_by_quadrature,
    solve_by_quadrature,
    uncertain_parameters,
)
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


@pytest.fixture(scope="module")
def params():
    sc = load_scenario(CEA)
    base = resolve(sc, load_evidence(), BASE_VALUES)
    return uncertain_parameters(base, 0.2, 0.1, 0.15)


def test_parameters_follow_the_evidence(params):
    drawn, fixed = params
    by_key = {p.key: p for p in drawn}
    uptake = by_key["beta:first_line.atz_bev.after_progression.chon2024:received_2l:False"]
    assert uptake.dist == {"dist": "beta", "a": 136.0, "b": 16.0}
    mix = next(p for p in drawn if p.key.startswith("dirichlet:first_line.atz_bev.second_line_mix"))
    assert mix.dist["alpha"] == {"sorafenib": 86.0, "lenvatinib": 40.0}
    utility = by_key["evidence:health_economics.utility.progression_free.su2021"]
    assert utility.dist["dist"] == "beta_mean_se"  # from su2021's reported range
    assert utility.dist["se"] == pytest.approx((0.91 - 0.61) / (2 * 1.959964))
    assert "value:simulation.horizon" in fixed and "value:economics.discount_costs" in fixed
    assert not any(p.key.startswith("calibrated:") for p in drawn)  # re-solved, not drawn


def test_draws_are_reproducible_and_keyed_per_parameter(params):
    drawn, _ = params
    a = draw_parameters(drawn, 200, seed=11)
    b = draw_parameters(list(reversed(drawn)), 200, seed=11)
    assert a == b  # order of parameters does not matter
    for p in drawn:
        assert a[0][p.key] == p.base  # draw 0 is the base case


def test_draw_moments_match_their_distributions():
    n = 20_000
    beta = Parameter("b", 136 / 152, {"dist": "beta", "a": 136.0, "b": 16.0}, (), ())
    logn = Parameter("m", 10.0, {"dist": "lognormal", "se_log": 0.2}, (), ())
    gam = Parameter("c", 1000.0, {"dist": "gamma", "mean": 1000.0, "se": 200.0}, (), ())
    draws = draw_parameters([beta, logn, gam], n, seed=3)
    x = np.array([d["b"] for d in draws[1:]])
    mean, var = 136 / 152, (136 * 16) / (152**2 * 153)
    assert abs(x.mean() - mean) < 3 * math.sqrt(var / n)
    logm = np.log([d["m"] for d in draws[1:]])
    assert abs(logm.mean() - math.log(10)) < 3 * 0.2 / math.sqrt(n)
    c = np.array([d["c"] for d in draws[1:]])
    assert abs(c.mean() - 1000) < 3 * 200 / math.sqrt(n)


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
