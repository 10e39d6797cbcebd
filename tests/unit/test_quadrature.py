"""Survival curves by quadrature over every draw: against the scalar quadrature of
simseq.psa, closed forms, independent numerical integration and the engine.

Tolerances: agreement with simseq.psa is to rounding (both evaluate the same sums
on the same grid); against closed forms the error is the O(step^2) term of the
scheme, predicted to O(step^4); against the engine, 4 Monte Carlo standard
errors (Greenwood) at the stated N and seed.
"""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scalar_quadrature import _cohort_parts, cohort_scenario, os_median_by_quadrature
from scipy import integrate

from simseq.distributions import Distribution
from simseq.engine.codes import EVENT_DEATH, EVENT_PROGRESSION, TALLY_OS_GIVEN_ENTRY
from simseq.evidence import load_evidence
from simseq.model import (
    Clock,
    Covariate,
    Destination,
    SequenceModel,
    State,
    compile_model,
    stack_draws,
)
from simseq.outcomes import tally_curve
from simseq.quadrature import (
    MAX_COVARIATES,
    covariate_mixture,
    median_of,
    os_median,
    os_survival,
    sojourn_median,
    sojourn_survival,
    time_grid,
)
from simseq.resolve import resolve
from simseq.scenario import load_scenario
from simseq.simulator import simulate

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
BASE_VALUES = {"lenvatinib.after_progression": 6.45, "sorafenib.after_progression": 4.75,
               "tki_ici.after_progression": 5.78}  # fmt: skip
HORIZON = 120.0


def _death(p: float = 1.0) -> Destination:
    return Destination(None, EVENT_DEATH, p)


def _to(state: str, p: float = 1.0) -> Destination:
    return Destination(state, EVENT_PROGRESSION, p)


def _exponential_chain(rates) -> "compile_model":
    """S0 -> S1 -> ... -> death, exponential sojourns with ``rates`` (per month)."""
    states = []
    for i, rate in enumerate(rates):
        dest = _to(f"S{i + 1}") if i + 1 < len(rates) else _death()
        states.append(State(f"S{i}", (Clock(Distribution("exponential", (rate,)), (dest,)),)))
    return compile_model([SequenceModel("chain", tuple(states))])


def _hypoexponential_survival(rates, t):
    """P(sum of independent exponentials with distinct ``rates`` > t)."""
    total = np.zeros_like(t)
    for i, a in enumerate(rates):
        coef = math.prod(b / (b - a) for j, b in enumerate(rates) if j != i)
        total = total + coef * np.exp(-a * t)
    return total


# ------------------------------------------------------------------ simseq.psa


def _homogeneous(scenario):
    """The scenario without its population covariates (every patient alike)."""
    return scenario.model_copy(update={"population": None})


@pytest.mark.parametrize("scenario", ["cea_base_case.yaml", "base_case.yaml"])
def test_cohort_medians_match_the_scalar_quadrature(scenario):
    """Each calibration cohort, at three post-progression medians stacked as draws: the
    same median as psa.os_median_by_quadrature (same grid, same sums: rounding only),
    without the population covariate (the scalar reference has no mixtures; the engine
    checks those below)."""
    sc, ev = cohort_scenario(_homogeneous(load_scenario(SCENARIOS / scenario))), load_evidence()
    for tgt in sc.calibration.targets:
        key = f"{tgt.regimen}.after_progression"
        resolved = [
            resolve(sc, ev, {**BASE_VALUES, key: m}, cohort_regimen=tgt.regimen)
            for m in (2.0, BASE_VALUES[key], 25.0)
        ]
        model = stack_draws([compile_model(r.sequences, r.covariates) for r in resolved])
        got = median_of(*os_survival(model, 0, HORIZON))
        want = [os_median_by_quadrature(*_cohort_parts(r), HORIZON) for r in resolved]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        # on growing grids (the third median, 27.9 months, needs the second): the same
        # sums, rounded in shorter FFTs
        np.testing.assert_allclose(os_median(model, 0, HORIZON, chunk_draws=2), got, rtol=1e-13)
        short = os_median(model, 0, 20.0)  # a 20-month horizon: the last is not reached
        assert np.isinf(short[2]) and np.allclose(short[:2], got[:2], rtol=1e-13, atol=0)


def test_draws_and_chunks_do_not_change_a_row():
    """Every operation is row-wise: a draw's curve is bit for bit the same alone, among
    other draws, and in chunks of any size."""
    sc, ev = _homogeneous(load_scenario(SCENARIOS / "base_case.yaml")), load_evidence()
    singles = []
    for m in np.geomspace(0.5, 40.0, 7):
        r = resolve(sc, ev, {**BASE_VALUES, "sorafenib.after_progression": m},
                    cohort_regimen="sorafenib")  # fmt: skip
        singles.append(compile_model(r.sequences))
    together = os_survival(stack_draws(singles), 0, HORIZON)[1]
    for chunk in (1, 3, 7):
        assert np.array_equal(os_survival(stack_draws(singles), 0, HORIZON, chunk_draws=chunk)[1],
                              together)  # fmt: skip
    for d, single in enumerate(singles):
        assert np.array_equal(os_survival(single, 0, HORIZON)[1][0], together[d])


# ------------------------------------------------------------------ closed forms


@pytest.mark.parametrize("rates", [(0.15, 0.4), (0.3, 0.1)])
def test_two_state_exponential_chain_is_hypoexponential(rates):
    """OS of L (rate a) -> PPS (rate b) -> death is hypoexponential. The start state's
    exits are exact per step, placed at the step's middle; expanding S_PPS about it gives
    the scheme's error -(h^2/12) (b^2/2 - a b) a (e^-bt - e^-at) / (a - b) + O(h^4):
    the difference must be that term, to 1e-9 (the O(h^4) rest is ~1e-11 at h = 0.1)."""
    a, b = rates
    model = _exponential_chain(rates)
    for step in (0.1, 0.05):
        t, surv = os_survival(model, 0, 60.0, step)
        err = surv[0] - _hypoexponential_survival(rates, t)
        lead = (
            -(step**2 / 12) * (b * b / 2 - a * b) * a * (np.exp(-b * t) - np.exp(-a * t)) / (a - b)
        )
        assert np.abs(lead).max() > 1e-7  # the term is there to be matched
        np.testing.assert_allclose(err, lead, rtol=0, atol=1e-9)


def test_three_state_exponential_chain_converges_at_second_order():
    """Through a state entered mid-step (S1), OS is still hypoexponential to O(step^2):
    halving the step quarters the largest error (ratio 4 +- 0.05; measured 3.9998), and
    at 0.05 months it is below 5e-6 (C h^2 with C ~ rates^2 / 12 ~ 1e-3)."""
    rates = (0.2, 0.5, 0.12)
    model = _exponential_chain(rates)
    errors = []
    for step in (0.1, 0.05, 0.025):
        t, surv = os_survival(model, 0, 60.0, step)
        errors.append(np.abs(surv[0] - _hypoexponential_survival(rates, t)).max())
    assert errors[1] < 5e-6
    assert errors[0] / errors[1] == pytest.approx(4.0, abs=0.05)
    assert errors[1] / errors[2] == pytest.approx(4.0, abs=0.05)


def _competing_model(covariates=()):
    """L: Weibull progression clock (-> PPS: log-normal) competing with a log-logistic
    death clock; PPS -> death. Different families, so nothing merges."""
    prog = Distribution("weibull", (1.5, 6.0))
    death = Distribution("llogis", (2.0, 20.0))
    pps = Distribution("lnorm", (2.0, 0.8))
    effects = {c.name: math.log(2.5) for c in covariates}
    states = (
        State("L", (Clock(prog, (_to("PPS"),)), Clock(death, (_death(),)))),
        State("PPS", (Clock(pps, (_death(),), effects),)),
    )
    return compile_model([SequenceModel("s", states)], covariates), (prog, death, pps)


def test_competing_clocks_against_numerical_integration():
    """OS(t) = S_W(t) S_LL(t) + int_0^t f_W(u) S_LL(u) S_PPS(t - u) du by scipy's adaptive
    quad (rel. 1e-12) at six times: the error is second order (halving the step from 0.1
    quarters it: ratio 4 +- 0.2; measured 3.90) and below 2e-6 at 0.05 (measured 1.2e-6)."""
    model, (prog, death, pps) = _competing_model()
    checks = np.array([1.0, 3.0, 6.0, 12.0, 24.0, 48.0])

    def exact(t):
        inner = integrate.quad(
            lambda u: prog.density(u) * death.survival(u) * pps.survival(t - u),
            0.0, t, epsabs=0, epsrel=1e-12, limit=200,
        )[0]  # fmt: skip
        return prog.survival(t) * death.survival(t) + inner

    want = np.array([exact(t) for t in checks])
    errors = []
    for step in (0.1, 0.05):
        t, surv = os_survival(model, 0, 60.0, step)
        errors.append(np.abs(np.interp(checks, t, surv[0]) - want).max())  # at grid points
    assert errors[1] < 2e-6
    assert errors[0] / errors[1] == pytest.approx(4.0, abs=0.2)


def test_competing_clocks_in_a_later_state():
    """The cause split in a state entered mid-step: A (exponential) -> M, where a gamma
    clock (-> P, exponential) competes with a Gompertz death clock. Reference: the double
    integral by nested quad at three times; second order as in the start-state test
    (ratio measured 3.98), below 2.5e-6 at 0.05 (measured 1.9e-6)."""
    a_dist = Distribution("exponential", (0.25,))
    g = Distribution("gamma", (2.0, 0.5))
    gz = Distribution("gompertz", (0.05, 0.03))
    p_dist = Distribution("exponential", (0.15,))
    states = (
        State("A", (Clock(a_dist, (_to("M"),)),)),
        State("M", (Clock(g, (_to("P"),)), Clock(gz, (_death(),)))),
        State("P", (Clock(p_dist, (_death(),)),)),
    )
    model = compile_model([SequenceModel("s", states)])

    def in_m_or_p(r):  # alive r months after entering M
        inner = integrate.quad(
            lambda v: g.density(v) * gz.survival(v) * p_dist.survival(r - v),
            0.0, r, epsabs=0, epsrel=1e-11,
        )[0]  # fmt: skip
        return g.survival(r) * gz.survival(r) + inner

    def exact(t):
        return (
            a_dist.survival(t)
            + integrate.quad(
                lambda u: a_dist.density(u) * in_m_or_p(t - u), 0.0, t, epsabs=0, epsrel=1e-10
            )[0]
        )

    checks = np.array([2.0, 8.0, 20.0])
    want = np.array([exact(t) for t in checks])
    errors = []
    for step in (0.1, 0.05):
        t, surv = os_survival(model, 0, 40.0, step)
        errors.append(np.abs(np.interp(checks, t, surv[0]) - want).max())
    assert errors[1] < 2.5e-6
    assert errors[0] / errors[1] == pytest.approx(4.0, abs=0.2)


def test_covariates_mix_their_patterns_exactly():
    """A covariate with prevalence 0.3 and hazard ratio 2.5 on the PPS clock: the curve
    is 0.7 x (model without it) + 0.3 x (model with the PPS hazard x 2.5), to rounding."""
    cov = Covariate("cp_b", 0.3)
    model, (prog, death, pps) = _competing_model((cov,))
    t, mixed = os_survival(model, 0, 60.0)
    without, _ = _competing_model()
    states = (
        State("L", (Clock(prog, (_to("PPS"),)), Clock(death, (_death(),)))),
        State("PPS", (Clock(Distribution("lnorm", pps.params, 2.5), (_death(),)),)),
    )
    with_it = compile_model([SequenceModel("s", states)])
    want = 0.7 * os_survival(without, 0, 60.0)[1] + 0.3 * os_survival(with_it, 0, 60.0)[1]
    np.testing.assert_allclose(mixed, want, rtol=0, atol=1e-14)


def test_covariate_patterns_weights_and_multipliers():
    """Two covariates: four patterns, weights the products of prevalences, multipliers
    exp(sum of the log HRs a pattern has) times the clock's own hr."""
    covs = (Covariate("a", 0.2), Covariate("b", 0.6))
    clock = Clock(Distribution("exponential", (0.1,)), (_death(),), {"a": 0.4, "b": -0.3})
    model = compile_model([SequenceModel("s", (State("X", (clock,)),))], covs)
    model = dataclasses.replace(model, clock_hr=np.array([[1.5]]))
    weights, mult = covariate_mixture(model)
    np.testing.assert_allclose(weights[0], [0.8 * 0.4, 0.2 * 0.4, 0.8 * 0.6, 0.2 * 0.6])
    np.testing.assert_allclose(mult[0, :, 0], 1.5 * np.exp([0.0, 0.4, -0.3, 0.1]), rtol=1e-15)


def test_too_many_covariates_are_refused():
    covs = tuple(Covariate(f"c{i}", 0.1) for i in range(MAX_COVARIATES + 1))
    effects = {c.name: 0.1 for c in covs}  # all act on the clock: 2^9 patterns
    clock = Clock(Distribution("exponential", (0.1,)), (_death(),), effects)
    model = compile_model([SequenceModel("s", (State("X", (clock,)),))], covs)
    with pytest.raises(ValueError, match=f"9 population covariates.*at most {MAX_COVARIATES}"):
        os_survival(model, 0, 12.0)


def test_sojourn_survival_is_the_minimum_of_the_clocks():
    """Time in L: S_W(t) S_LL(t), mixed over a covariate acting on the Weibull clock, exact
    at the grid points; its median matches the exact one to O(step^2) (linear
    interpolation of a smooth curve: < step^2 max|S''| / (8 |S'|) ~ 1e-5 months)."""
    cov = Covariate("x", 0.4)
    prog = Distribution("weibull", (1.5, 6.0))
    death = Distribution("llogis", (2.0, 20.0))
    state = State("L", (Clock(prog, (_death(),), {"x": math.log(3.0)}), Clock(death, (_death(),))))
    model = compile_model([SequenceModel("s", (state,))], (cov,))
    t, surv = sojourn_survival(model, 0, 60.0)
    want = death.survival(t) * (0.6 * prog.survival(t) + 0.4 * prog.survival(t) ** 3.0)
    np.testing.assert_allclose(surv[0], want, rtol=1e-13, atol=1e-15)
    plain = compile_model([SequenceModel("s", (State("L", (Clock(prog, (_death(),)),)),))])
    median = median_of(*sojourn_survival(plain, 0, 60.0))
    assert median[0] == pytest.approx(float(prog.median()), abs=1e-5)
    assert np.array_equal(sojourn_median(plain, 0, 60.0), median)


def test_median_of_interpolates_like_the_scalar_quadrature():
    t = time_grid(2.0, 0.5)  # 0, 0.5, 1, 1.5, 2
    surv = np.array(
        [
            [1.0, 0.8, 0.6, 0.4, 0.3],  # crosses between 1 and 1.5: 1 + 0.1 / 0.2 * 0.5
            [1.0, 0.9, 0.8, 0.7, 0.6],  # never
            [1.0, 0.4, 0.3, 0.2, 0.1],  # in the first step: 0.5 / 0.6 * 0.5
            [1.0, 0.8, np.nan, 0.4, 0.3],  # undefined before it crosses
            [1.0, 0.8, 0.5, 0.4, np.nan],  # exactly at a grid point; nan after is harmless
        ]
    )
    np.testing.assert_array_equal(median_of(t, surv), [1.25, np.inf, 0.5 / 0.6 * 0.5, np.nan, 1.0])


def test_grid_is_validated():
    with pytest.raises(ValueError, match="step must be finite and > 0"):
        time_grid(12.0, 0.0)
    with pytest.raises(ValueError, match="horizon must be finite"):
        time_grid(math.inf, 0.05)
    with pytest.raises(ValueError, match="grid points"):
        time_grid(1e6, 1e-3)


# ------------------------------------------------------------------ the engine


def _engine_check(model, seed, n_patients, horizon, times):
    """OS at ``times`` (bin edges) from the engine and by quadrature; the KM's Greenwood
    standard errors."""
    tallies = simulate(model, n_patients, seed, horizon=horizon, tallies=[TALLY_OS_GIVEN_ENTRY])
    curve = tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, [int(model.seq_start_state[0])])
    sim = np.array([curve.at(t) for t in times])
    se = np.array([np.interp(t, curve.times, curve.se) for t in times])
    t, surv = os_survival(model, 0, horizon, 0.05)
    quad = np.interp(times, t, surv[0])
    return sim, se, quad, curve


def test_competing_clocks_of_different_families_agree_with_the_engine():
    """200k simulated patients (seed 11) through the competing-clock model with a
    covariate: OS at 3, 6, 12, 24, 36 months within 4 Greenwood SEs (~1e-3) of the
    quadrature, whose own error (~1e-5) is negligible beside it."""
    model, _ = _competing_model((Covariate("cp_b", 0.3),))
    times = np.array([3.0, 6.0, 12.0, 24.0, 36.0])
    sim, se, quad, curve = _engine_check(model, 11, 200_000, 60.0, times)
    assert np.all(np.abs(sim - quad) < 4 * se)
    lo, hi = curve.median_ci95()
    assert lo <= median_of(*os_survival(model, 0, 60.0))[0] <= hi


def test_a_scenario_cohort_with_a_covariate_agrees_with_the_engine():
    """The lenvatinib cohort of the base case (Child-Pugh B on the
    post-progression clock): 200k patients (seed 5), OS within 4 Greenwood SEs."""
    sc, ev = load_scenario(SCENARIOS / "base_case.yaml"), load_evidence()
    res = resolve(sc, ev, BASE_VALUES, cohort_regimen="lenvatinib")
    model = compile_model(res.sequences, res.covariates)
    assert model.cov_names == ("child_pugh_b@cohort:lenvatinib",)  # the cohort's own copy
    times = np.array([3.0, 6.0, 12.0, 24.0, 48.0])
    sim, se, quad, _ = _engine_check(model, 5, 200_000, HORIZON, times)
    assert np.all(np.abs(sim - quad) < 4 * se)


def test_only_covariates_acting_on_the_clocks_make_patterns():
    """A covariate with no hazard ratio on a sequence's clocks cannot change its curve: it
    makes no patterns there (so calibration cohorts, each with its own copies of the
    population covariates, cost one cohort's patterns each)."""
    covs = (Covariate("cp_b", 0.3), Covariate("elsewhere", 0.6))
    model, _ = _competing_model(covs)
    log_hr = model.cov_log_hr.copy()
    log_hr[:, :, 1] = 0.0  # "elsewhere" acts on no clock
    model = dataclasses.replace(model, cov_log_hr=log_hr)
    weights, _ = covariate_mixture(model, clocks=list(range(model.clock_hr.shape[1])))
    np.testing.assert_allclose(weights[0], [0.7, 0.3])
    alone, _ = _competing_model(covs[:1])
    np.testing.assert_allclose(
        os_survival(model, 0, 60.0)[1], os_survival(alone, 0, 60.0)[1], rtol=1e-12
    )
