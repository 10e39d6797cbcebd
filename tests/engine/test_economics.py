"""Cost and QALY accrual in the engine against closed forms, and its invariances.

Tolerances are 3 Monte Carlo standard errors (from the engine's interleaved batch
means) at the stated N and seed.
"""

import dataclasses
import math
import random

import numpy as np
import pytest

import simseq.backend
import simseq.simulator
from simseq.backend import LocalBackend, run_simulation, simulate_tasks
from simseq.distributions import Distribution
from simseq.engine.codes import (
    ECON_COST,
    ECON_MAX_FIXED,
    ECON_SCALE,
    EVENT_DEATH,
    EVENT_PROGRESSION,
    N_ECON,
)
from simseq.engine.simulate import _add_exact
from simseq.model import (
    Clock,
    Destination,
    Economics,
    SequenceModel,
    State,
    compile_model,
    econ_range_problem,
)
from simseq.outcomes import econ_means
from simseq.simulator import econ_sum, econ_values, simulate

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
    return econ_means(tallies.econ[0, 0], N)


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
    res = econ_means(tallies.econ[0, 0], N)
    t_pf = (1 - math.exp(-lam1 * horizon)) / lam1
    # time in PD before the horizon: int_0^H P(PD at t) dt
    t_pd = (lam1 / (lam1 - lam2)) * (
        (1 - math.exp(-lam2 * horizon)) / lam2 - (1 - math.exp(-lam1 * horizon)) / lam1
    )
    check(res, "costs", 2000.0 * t_pf + 500.0 * t_pd)
    check(res, "lys", (t_pf + t_pd) / 12)


@pytest.mark.parametrize(
    ("cost_rate", "qaly_rate"), [(0.035, 0.015), (0.035, 0.035)], ids=["two-rates", "one-rate"]
)
def test_entries_after_the_start_discount_at_their_own_rate(cost_rate, qaly_rate):
    """PF (lam1) then PD (lam2) then death, no horizon in reach. Costs discount at d_c,
    QALYs and life-years at d_q; PD's entry cost and QALYs at the entry time T1, the death
    cost at T1 + T2. With E[e^-dT] = lam/(lam + d) and E[int_0^T e^-dt dt] = 1/(lam + d)
    for T ~ Exp(lam), each total is a sum of products. Equal rates share one exp and
    expm1 a step in the engine; distinct ones take each their own. PD's entry cost is
    large and the monthly costs small, so that discounting it at the QALY rate instead
    (by 0.8%, about 800) would be hundreds of standard errors (1.2 at this N and seed) off."""
    lam1, lam2, pd_entry_cost, pd_entry_qalys = 0.2, 0.15, 100_000.0, -0.01
    pf = State(
        "PF",
        (
            Clock(
                Distribution("exponential", (lam1,)), (Destination("PD", EVENT_PROGRESSION, 1.0),)
            ),
        ),
        cost_per_month=200.0,
        utility=0.75,
    )
    pd = State(
        "PD",
        (Clock(Distribution("exponential", (lam2,)), (Destination(None, EVENT_DEATH, 1.0),)),),
        cost_per_month=50.0,
        utility=0.5,
        entry_cost=pd_entry_cost,
        entry_qalys=pd_entry_qalys,
    )
    econ = Economics(discount_costs=cost_rate, discount_qalys=qaly_rate, death_cost=DEATH_COST)
    model = compile_model([SequenceModel("s", (pf, pd))], economics=econ)
    res = econ_means(simulate(model, N, SEED, horizon=2400.0, bin_width=0.1).econ[0, 0], N)
    dc, dq = math.log1p(cost_rate) / 12, math.log1p(qaly_rate) / 12

    def reach(d):  # E[e^-d T1]: the discount factor at PD's entry
        return lam1 / (lam1 + d)

    check(res, "lys_discounted", (1 / (lam1 + dq) + reach(dq) / (lam2 + dq)) / 12)
    check(
        res,
        "qalys_discounted",
        0.75 / 12 / (lam1 + dq) + reach(dq) * (pd_entry_qalys + 0.5 / 12 / (lam2 + dq)),
    )
    check(
        res,
        "costs_discounted",
        200.0 / (lam1 + dc)
        + reach(dc) * (pd_entry_cost + 50.0 / (lam2 + dc) + DEATH_COST * lam2 / (lam2 + dc)),
    )


def test_per_draw_economics_match_single_runs():
    model = compile_model([one_state()], economics=Economics(0.03, 0.03, DEATH_COST))
    draws = simulate(model.repeat_draws(3), 5_000, SEED, horizon=120.0)
    single = simulate(model, 5_000, SEED, horizon=120.0, draw_lo=1)
    np.testing.assert_array_equal(draws.econ[1], single.econ[0])


def test_no_economics_no_sums():
    model = compile_model([one_state()])
    assert simulate(model, 100, SEED, horizon=12.0).econ is None


def test_age_adjusted_utilities_closed_form():
    """Utility multiplied by 1 + b1 t + b2 t^2: E[QALYs] = u/12 sum_k k! b_k / (lam + d)^(k+1)."""
    b1, b2 = -0.002, -1e-5
    econ = Economics(discount_costs=RATE, discount_qalys=RATE, utility_trend=(b1, b2))
    state = dataclasses.replace(one_state().states[0], entry_qalys=0.0)
    model = compile_model([SequenceModel("s", (state,))], economics=econ)
    res = econ_means(simulate(model, N, SEED, horizon=2400.0, bin_width=0.1).econ[0, 0], N)
    for name, d in (("qalys", 0.0), ("qalys_discounted", DELTA)):
        a = LAM + d
        check(res, name, UTIL / 12 * (1 / a + b1 / a**2 + 2 * b2 / a**3))


# Costs large enough that the old plain int64 batch sums wrapped around: 1e13 a month for
# ~10 months is ~1e14 per patient, so a batch of 64 interleaved ones passed 2^63 / 1e3 =
# 9.2e15 currency units after ~90 patients. A 360-month horizon keeps a patient's bound
# (BIG_COST * 360 + entry + death = 3.6e15) under what one fixed-point value holds (4.6e15).
BIG_COST = 1e13
BIG_HORIZON = 360.0
BIG_N = 20_000


def big_cost_model(rate=LAM):
    state = dataclasses.replace(one_state(rate).states[0], cost_per_month=BIG_COST, name="L1:big")
    econ = Economics(discount_costs=RATE, discount_qalys=RATE, death_cost=DEATH_COST)
    return compile_model([SequenceModel("s", (state,))], economics=econ)


@pytest.fixture(scope="module")
def big_cost_model_and_tallies():
    model = big_cost_model()
    return model, simulate(model, BIG_N, SEED, horizon=BIG_HORIZON, bin_width=0.1)


def test_large_costs_do_not_overflow(big_cost_model_and_tallies):
    """Costs of ~1e14 a patient at N = 20,000 (batch sums ~3e16, past int64 at 1e3 per
    unit) against the closed forms with the horizon: E[min(T, H)] = (1 - e^-lam H) / lam,
    discounted (1 - e^-(lam + d) H) / (lam + d); death before H with probability
    1 - e^-lam H, discounted lam / (lam + d) (1 - e^-(lam + d) H). Tolerance 4 Monte Carlo
    SE (seed fixed): four outcomes are checked, 4 SE keeps a false alarm below 0.03 %."""
    _, tallies = big_cost_model_and_tallies
    res = econ_means(tallies.econ[0, 0], BIG_N)
    h = BIG_HORIZON
    expected = {
        "costs": BIG_COST * -math.expm1(-LAM * h) / LAM
        + ENTRY_COST
        + DEATH_COST * -math.expm1(-LAM * h),
        "costs_discounted": BIG_COST * -math.expm1(-(LAM + DELTA) * h) / (LAM + DELTA)
        + ENTRY_COST
        + DEATH_COST * LAM / (LAM + DELTA) * -math.expm1(-(LAM + DELTA) * h),
        "lys": -math.expm1(-LAM * h) / LAM / 12,
        "qalys_discounted": UTIL / 12 * -math.expm1(-(LAM + DELTA) * h) / (LAM + DELTA)
        + ENTRY_QALYS,
    }
    for name, value in expected.items():
        mean, se = res[name]
        assert abs(mean - value) < 4 * se, (name, mean, value, se)


def test_large_cost_sums_identical_for_any_split(big_cost_model_and_tallies):
    """The exact sums are the same words for any threads, chunks, tasks or draw split."""
    model, whole = big_cost_model_and_tallies
    lo_words = whole.econ[..., 1]
    assert ((lo_words >= 0) & (lo_words < 2**32)).all()  # canonical
    assert np.abs(whole.econ[..., 0]).max() > 2**31  # the sums need the hi word
    for threads, chunk in ((1, BIG_N), (2, 3_001), (2, 777)):
        t = simulate(model, BIG_N, SEED, horizon=BIG_HORIZON, threads=threads, chunk_size=chunk)
        np.testing.assert_array_equal(t.econ, whole.econ)
    tasks = simulate_tasks(
        LocalBackend(threads=2),
        model,
        BIG_N,
        SEED,
        horizon=BIG_HORIZON,
        bin_width=0.1,
        task_patients=6_500,
    )
    np.testing.assert_array_equal(tasks.econ, whole.econ)
    draws = model.repeat_draws(3)
    by_draw = [
        simulate(draws, BIG_N, SEED, horizon=BIG_HORIZON, threads=threads).econ
        for threads in (1, 2)
    ]
    by_task = simulate_tasks(
        LocalBackend(),
        draws,
        BIG_N,
        SEED,
        horizon=BIG_HORIZON,
        bin_width=0.25,
        task_draws=2,
        task_patients=7_000,
    )
    single = simulate(model, BIG_N, SEED, horizon=BIG_HORIZON, draw_lo=1)
    np.testing.assert_array_equal(by_draw[0], by_draw[1])
    np.testing.assert_array_equal(by_task.econ, by_draw[0])
    np.testing.assert_array_equal(by_draw[0][1], single.econ[0])


def accumulate(values):
    """(hi, lo) of ``values`` added one by one with the engine's ``_add_exact``."""
    out = np.zeros((1, 1, 1, 1, 2), np.int64)
    for v in values:
        _add_exact(out, 0, 0, 0, 0, v)
    return out[0, 0, 0, 0]


@pytest.mark.parametrize("sign", [1, -1])
def test_exact_sums_in_any_order_and_split(sign):
    """_add_exact and econ_sum against Python's exact integers: values of either sign up
    to 2^62 in magnitude whose sum passes int64; any order, any split into parts."""
    rng = random.Random(3)
    values = [rng.randrange(-(2**62) + 1, 2**62) for _ in range(500)] + [2**62 - 1] * 50
    rng.shuffle(values)
    values = [sign * v for v in values]
    exact = sum(values)
    assert abs(exact) > 2**63
    words = accumulate(values)
    assert int(words[0]) * 2**32 + int(words[1]) == exact and 0 <= words[1] < 2**32
    np.testing.assert_array_equal(accumulate(sorted(values)), words)
    parts = np.stack([accumulate(values[lo : lo + 37]) for lo in range(0, len(values), 37)])
    np.testing.assert_array_equal(econ_sum(parts), words)
    as_econ = np.zeros((N_ECON, 1, 2), np.int64)
    as_econ[ECON_COST, 0] = words
    assert econ_values(as_econ)[ECON_COST, 0] == float(exact) / ECON_SCALE[ECON_COST]


LIMIT_COST = ECON_MAX_FIXED / ECON_SCALE[ECON_COST]  # 4.6e15 currency units


def test_bound_refuses_a_model_over_it_before_simulating(monkeypatch, tmp_path):
    """cost per month 1e13 over 462 months bounds a patient at 4.62e15 > 4.61e15: refused,
    naming the state, by every entry point and before any kernel or task runs."""
    model = big_cost_model()

    def no_kernel(*args):
        raise AssertionError("a kernel ran")

    monkeypatch.setattr(simseq.simulator, "simulate_kernel", no_kernel)
    monkeypatch.setattr(simseq.backend, "_execute", no_kernel)
    message = econ_range_problem(model, 462.0)
    assert message == (
        "state 'L1:big' (sequence 's'): cost per month 1e+13 over a 462-month horizon "
        "bounds a patient's cost at 4.62e+15; at most 4.6e+15 (currency units) can be "
        "accumulated exactly"
    )
    backend = LocalBackend()
    calls = (
        lambda: simulate(model, 100, SEED, horizon=462.0),
        lambda: simulate_tasks(
            backend, model, 100, SEED, horizon=462.0, bin_width=0.1, task_patients=50
        ),
        lambda: run_simulation(
            model, 100, SEED, horizon=462.0, bin_width=0.1, resume=True, checkpoints_root=tmp_path
        ),
    )
    for call in calls:
        with pytest.raises(ValueError, match="state 'L1:big'") as info:
            call()
        assert str(info.value) == message


def test_bound_just_under_runs_exactly():
    """460 months: the bound 4.6e15 + entry and death costs is just under the limit, so
    the model runs. At a rate of 0.001 a month 63 % of patients reach the horizon with
    a cost of 4.6e15, 2^62 in fixed point less 0.3 %, and the sums stay exact.
    Tolerance 4 Monte Carlo SE at N = 5,000 and the fixed seed."""
    rate, horizon, n = 0.001, 460.0, 5_000
    model = big_cost_model(rate)
    assert BIG_COST * horizon + ENTRY_COST + DEATH_COST < LIMIT_COST
    assert econ_range_problem(model, horizon) is None
    mean, se = econ_means(simulate(model, n, SEED, horizon=horizon).econ[0, 0], n)["costs"]
    expected = BIG_COST * -math.expm1(-rate * horizon) / rate + ENTRY_COST
    expected += DEATH_COST * -math.expm1(-rate * horizon)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)


def econ_model(*states, economics=None, n_draws=1):
    seqs = [SequenceModel(f"s{k}", (st,)) for k, st in enumerate(states)]
    return compile_model(seqs, economics=economics or Economics()).repeat_draws(n_draws)


def a_state(name="A", **econ):
    return dataclasses.replace(one_state().states[0], name=name, **econ)


@pytest.mark.parametrize(
    ("state", "economics", "horizon", "expected"),
    [
        (a_state(entry_cost=5e15), None, 120.0, "state 'A' (sequence 's0'): entry cost 5e+15"),
        (a_state(), Economics(death_cost=-5e15), 120.0, "cost at death -5e+15 bounds"),
        (
            a_state(utility=1e9),
            None,
            120.0,
            "state 'A' (sequence 's0'): utility 1e+09 a year over a 120-month horizon "
            "bounds a patient's QALYs at 1e+10; at most 4.6e+09 (years)",
        ),
        (
            a_state(utility=1e8),
            Economics(utility_trend=(0.1, 0.0)),
            120.0,
            "with a utility trend up to x13 bounds a patient's QALYs at 1.3e+10",
        ),
        (a_state(entry_qalys=-5e9), None, 120.0, "entry QALYs -5e+09 bounds a patient's QALYs"),
        (a_state(), None, 6e10, "a 6e+10-month horizon bounds a patient's life-years at 5e+09"),
        (
            a_state(cost_per_month=1e13),
            "negative cost discount",  # only arrays made by hand: scenarios and econ refuse it
            120.0,
            "a negative discount rate multiplies it by up to 1.02e+03",
        ),
        (a_state(cost_per_month=math.nan), None, 120.0, "cost per month is nan; it must be"),
        (a_state(), Economics(death_cost=math.inf), 120.0, "cost at death is inf; it must be"),
    ],
)
def test_bound_names_the_input(state, economics, horizon, expected):
    if economics == "negative cost discount":
        model = econ_model(state)
        model.econ_globals[:, 0] = np.log1p(-0.5) / 12.0
    else:
        model = econ_model(state, economics=economics)
    message = econ_range_problem(model, horizon)
    assert expected in message, message


def test_bound_is_per_sequence_and_draw():
    """Entry costs add up within a sequence (each state entered once), not across them;
    with several draws the message names the draw."""
    big = 0.6 * LIMIT_COST
    one, two = a_state("X", entry_cost=big), a_state("Y", entry_cost=big)
    apart = econ_model(one, two)
    assert econ_range_problem(apart, 120.0) is None
    to_y = (
        Clock(Distribution("exponential", (LAM,)), (Destination("Y", EVENT_PROGRESSION, 1.0),)),
    )
    chain = compile_model(
        [SequenceModel("s", (dataclasses.replace(one, clocks=to_y), two))], economics=Economics()
    )
    assert "entry cost 2.77e+15 bounds a patient's cost at 5.53e+15" in econ_range_problem(
        chain, 120.0
    )
    draws = econ_model(a_state("X"), a_state("Y"), n_draws=3)
    state_econ = draws.state_econ.copy()
    state_econ[2, 1, 0] = 1e14  # Y's cost per month in draw 2 only
    draws = dataclasses.replace(draws, state_econ=state_econ)
    assert econ_range_problem(draws, 120.0).startswith(
        "state 'Y' (sequence 's1', draw 2): cost per month 1e+14 over a 120-month horizon "
        "bounds a patient's cost at 1.2e+16"
    )


def test_treatment_costs_follow_time_on_treatment():
    """Drug costs accrue until the first of progression, an early stop and a stopping rule.

    Line A (exponential, rate LAM) goes to state B (rate 0.2) at progression; each has a
    treatment cost, A with 30% stopping early (stop rate LAM 0.3 / 0.7, the closed form
    for an exponential line) and B with 20% and a 6-month stopping rule. With
    k = LAM + stop + delta, time on treatment in A costs TX / k discounted; in B,
    entered at T_A ~ Exp(LAM), E[e^-delta T_A] TX_B (1 - e^-k_B M) / k_B."""
    tx_a, tx_b, lam_b, max_b = 4000.0, 2500.0, 0.2, 6.0
    stop_a, stop_b = LAM * 0.3 / 0.7, lam_b * 0.2 / 0.8
    a = State(
        "A",
        (Clock(Distribution("exponential", (LAM,)), (Destination("B", EVENT_PROGRESSION, 1.0),)),),
        treatment_cost_per_month=tx_a,
        treatment_stop_share=0.3,
    )
    b = State(
        "B",
        (Clock(Distribution("exponential", (lam_b,)), (Destination(None, EVENT_DEATH, 1.0),)),),
        treatment_cost_per_month=tx_b,
        treatment_stop_share=0.2,
        treatment_max_months=max_b,
    )
    model = compile_model([SequenceModel("s", (a, b))], economics=Economics(RATE, RATE))
    np.testing.assert_allclose(model.state_econ[0, :, 5], [stop_a, stop_b], rtol=1e-10)
    res = econ_means(simulate(model, N, SEED, horizon=2400.0).econ[0, 0], N)

    def expected(delta):
        k_a, k_b = LAM + stop_a + delta, lam_b + stop_b + delta
        in_b = LAM / (LAM + delta) * tx_b * -math.expm1(-k_b * max_b) / k_b
        return tx_a / k_a + in_b

    check(res, "costs", expected(0.0))
    check(res, "costs_discounted", expected(DELTA))
