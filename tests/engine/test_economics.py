"""Cost and QALY accrual in the engine against closed forms, and its invariances.

Tolerances are 3 Monte Carlo standard errors (from the engine's interleaved batch
means) at the stated N and seed.
"""

import dataclasses
import math

import numpy as np
import pytest

from simseq.distributions import Distribution
from simseq.engine.codes import EVENT_DEATH, EVENT_PROGRESSION
from simseq.model import Clock, Destination, Economics, SequenceModel, State, compile_model
from simseq.outcomes import econ_means
from simseq.simulator import simulate, simulate_draws

N = 200_000
SEED = 99
LAM = 0.1  # per month
COST = 1000.0  # per month
UTIL = 0.7  # per year
DEATH_COST = 5000.0
ENTRY_COST = 300.0
ENTRY_QALYS = -0.02
RATE = 0.035  # per year
DELTA = math.log1p(RATE) / 12  # per month


def one_state(rate=LAM):
    state = State(
        "A",
        (Clock(Distribution("exponential", (rate,)), (Destination(None, EVENT_DEATH, 1.0),)),),
        cost_per_month=COST,
        utility=UTIL,
        entry_cost=ENTRY_COST,
        entry_qalys=ENTRY_QALYS,
    )
    return SequenceModel("s", (state,))


@pytest.fixture(scope="module")
def result():
    econ = Economics(discount_costs=RATE, discount_qalys=RATE, death_cost=DEATH_COST)
    model = compile_model([one_state()], economics=econ)
    tallies = simulate(model, N, SEED, horizon=2400.0, bin_width=0.1)
    return econ_means(tallies.econ[0], N)


def check(result, name, expected):
    mean, se = result[name]
    assert abs(mean - expected) < 3 * se, (name, mean, expected, se)


def test_exponential_sojourn_closed_forms(result):
    """E[T] = 1/lam months; E[int_0^T e^-dt dt] = 1/(lam + d); E[e^-dT] = lam/(lam + d)."""
    check(result, "lys", 1 / LAM / 12)
    check(result, "lys_discounted", 1 / (LAM + DELTA) / 12)
    check(result, "qalys", UTIL / 12 / LAM + ENTRY_QALYS)
    check(result, "qalys_discounted", UTIL / 12 / (LAM + DELTA) + ENTRY_QALYS)
    check(result, "costs", COST / LAM + ENTRY_COST + DEATH_COST)
    check(
        result,
        "costs_discounted",
        COST / (LAM + DELTA) + ENTRY_COST + DEATH_COST * LAM / (LAM + DELTA),
    )


def test_sums_identical_for_any_threads_and_chunks():
    model = compile_model([one_state()], economics=Economics(0.03, 0.03, 100.0))
    a = simulate(model, 20_001, SEED, horizon=120.0, threads=1, chunk_size=20_001)
    b = simulate(model, 20_001, SEED, horizon=120.0, threads=2, chunk_size=3_000)
    np.testing.assert_array_equal(a.econ, b.econ)


def test_two_states_and_horizon():
    """Progression-free (cost 2000) then progressed (cost 500), censored at a 12-month horizon:
    undiscounted time in each state against the exact occupancy integrals."""
    lam1, lam2, horizon = 0.2, 0.15, 12.0
    pf = State(
        "PF",
        (
            Clock(
                Distribution("exponential", (lam1,)), (Destination("PD", EVENT_PROGRESSION, 1.0),)
            ),
        ),
        cost_per_month=2000.0,
    )
    pd = State(
        "PD",
        (Clock(Distribution("exponential", (lam2,)), (Destination(None, EVENT_DEATH, 1.0),)),),
        cost_per_month=500.0,
    )
    model = compile_model([SequenceModel("s", (pf, pd))], economics=Economics())
    tallies = simulate(model, N, SEED, horizon=horizon, bin_width=0.01)
    res = econ_means(tallies.econ[0], N)
    t_pf = (1 - math.exp(-lam1 * horizon)) / lam1
    # time in PD before the horizon: int_0^H P(PD at t) dt
    t_pd = (lam1 / (lam1 - lam2)) * (
        (1 - math.exp(-lam2 * horizon)) / lam2 - (1 - math.exp(-lam1 * horizon)) / lam1
    )
    check(res, "costs", 2000.0 * t_pf + 500.0 * t_pd)
    check(res, "lys", (t_pf + t_pd) / 12)


def test_per_draw_economics_match_single_runs():
    model = compile_model([one_state()], economics=Economics(0.03, 0.03, DEATH_COST))
    draws = simulate_draws(model.repeat_draws(3), 5_000, SEED, horizon=120.0)
    single = simulate(model, 5_000, SEED, horizon=120.0, draw_idx=1)
    np.testing.assert_array_equal(draws.econ[1], single.econ)


def test_no_economics_no_sums():
    model = compile_model([one_state()])
    assert simulate(model, 100, SEED, horizon=12.0).econ is None


def test_age_adjusted_utilities_closed_form():
    """Utility multiplied by 1 + b1 t + b2 t^2: E[QALYs] = u/12 sum_k k! b_k / (lam + d)^(k+1)."""
    b1, b2 = -0.002, -1e-5
    econ = Economics(discount_costs=RATE, discount_qalys=RATE, utility_trend=(b1, b2))
    state = dataclasses.replace(one_state().states[0], entry_qalys=0.0)
    model = compile_model([SequenceModel("s", (state,))], economics=econ)
    res = econ_means(simulate(model, N, SEED, horizon=2400.0, bin_width=0.1).econ[0], N)
    for name, d in (("qalys", 0.0), ("qalys_discounted", DELTA)):
        a = LAM + d
        check(res, name, UTIL / 12 * (1 / a + b1 / a**2 + 2 * b2 / a**3))
