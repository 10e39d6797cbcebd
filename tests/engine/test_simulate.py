"""The engine against closed forms, and its invariances (threads, chunks, common random numbers).

Tolerances are 3 Monte Carlo standard errors at the stated N and fixed seed:
a binomial SE sqrt(p (1 - p) / N) for probabilities, the Brookmeyer-Crowley
interval half-width / 1.96 for medians.
"""

import math

import numba
import numpy as np
import pytest
from scipy.optimize import brentq

from simseq.distributions import Distribution
from simseq.engine.codes import (
    EVENT_DEATH,
    EVENT_PROGRESSION,
    N_EVENTS,
    N_TALLIES,
    TALLY_NAMES,
    TALLY_OS_FROM_ENTRY,
    TALLY_OS_GIVEN_ENTRY,
    TALLY_SOJOURN,
)
from simseq.model import Clock, Covariate, Destination, SequenceModel, State, compile_model
from simseq.outcomes import occupancy, sequence_summary, summary_tallies, tally_curve
from simseq.simulator import simulate, simulate_trajectories

N = 200_000
SEED = 12345
HORIZON = 240.0

LAM_PROG, LAM_DEATH, MU = 0.10, 0.02, 0.15  # per month


def exp_dist(rate: float) -> Distribution:
    return Distribution("exponential", (rate,))


def competing_chain() -> SequenceModel:
    """A --(progression, rate LAM_PROG)--> B --(rate MU)--> dead; A --(rate LAM_DEATH)--> dead."""
    a = State(
        "A",
        (
            Clock(exp_dist(LAM_PROG), (Destination("B", EVENT_PROGRESSION, 1.0),)),
            Clock(exp_dist(LAM_DEATH), (Destination(None, EVENT_DEATH, 1.0),)),
        ),
        line=1,
        regimen="a",
    )
    b = State(
        "B", (Clock(exp_dist(MU), (Destination(None, EVENT_DEATH, 1.0),)),), role="post_progression"
    )
    return SequenceModel("chain", (a, b))


def split_chain(p_prog: float) -> SequenceModel:
    """A ends at rate LAM_PROG + LAM_DEATH; a cause split sends p_prog to B, the rest die."""
    a = State(
        "A",
        (
            Clock(
                exp_dist(LAM_PROG + LAM_DEATH),
                (
                    Destination("B", EVENT_PROGRESSION, p_prog),
                    Destination(None, EVENT_DEATH, 1 - p_prog),
                ),
            ),
        ),
        line=1,
    )
    b = State("B", (Clock(exp_dist(MU), (Destination(None, EVENT_DEATH, 1.0),)),))
    return SequenceModel("split", (a, b))


def analytic_occupancy(t):
    lam = LAM_PROG + LAM_DEATH
    p_a = np.exp(-lam * t)
    p_b = LAM_PROG / (lam - MU) * (np.exp(-MU * t) - np.exp(-lam * t))
    return p_a, p_b


@pytest.fixture(scope="module")
def chain_tallies():
    model = compile_model([competing_chain(), split_chain(LAM_PROG / (LAM_PROG + LAM_DEATH))])
    return model, simulate(model, N, SEED, horizon=HORIZON)


@pytest.mark.parametrize("t", [3.0, 6.0, 12.0, 24.0])
@pytest.mark.parametrize("seq", ["chain", "split"])
def test_state_occupancy_matches_closed_form(chain_tallies, seq, t):
    model, tallies = chain_tallies
    p_a, p_b = analytic_occupancy(t)
    for state, p in (("A", p_a), ("B", p_b)):
        times, occ = occupancy(tallies, [model.state_index(seq, state)])
        sim = float(np.interp(t, times, occ))
        se = math.sqrt(p * (1 - p) / N)
        assert abs(sim - p) < 3 * se, (seq, state, t, sim, p, se)


@pytest.mark.parametrize("seq", ["chain", "split"])
def test_median_os_matches_closed_form(chain_tallies, seq):
    model, tallies = chain_tallies
    start = model.state_index(seq, "A")
    curve = tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, [start])

    def os(t):
        return sum(analytic_occupancy(t)) - 0.5

    true_median = brentq(os, 0.01, 200.0)
    lo, hi = curve.median_ci95()
    se = (hi - lo) / (2 * 1.959964)
    assert abs(curve.median() - true_median) < 3 * se, (curve.median(), true_median, se)
    # landmark survival too
    for t in (12.0, 36.0):
        p = sum(analytic_occupancy(t))
        assert abs(curve.at(t) - p) < 3 * math.sqrt(p * (1 - p) / N)


@pytest.mark.parametrize("seq", ["chain", "split"])
def test_cause_split_fractions(chain_tallies, seq):
    model, tallies = chain_tallies
    a = model.state_index(seq, "A")
    counts = tallies.exit_counts[0, a]
    p = LAM_PROG / (LAM_PROG + LAM_DEATH)
    frac = counts[EVENT_PROGRESSION] / counts.sum()
    assert abs(frac - p) < 3 * math.sqrt(p * (1 - p) / N)
    assert counts.sum() == N  # everyone starts in A


def test_sojourn_and_os_from_entry_are_exponential(chain_tallies):
    model, tallies = chain_tallies
    b = model.state_index("chain", "B")
    for tally in (TALLY_SOJOURN, TALLY_OS_FROM_ENTRY):  # in B, sojourn == OS from entry
        curve = tally_curve(tallies, tally, [b])
        lo, hi = curve.median_ci95()
        assert abs(curve.median() - math.log(2) / MU) < 3 * (hi - lo) / (2 * 1.959964)


def test_horizon_censors_everyone_still_alive():
    model = compile_model([competing_chain()])
    tallies = simulate(model, 50_000, SEED, horizon=6.0, bin_width=0.01)
    a = model.state_index("chain", "A")
    still_in_a = tallies.exit_counts[0, a, N_EVENTS]
    p = math.exp(-(LAM_PROG + LAM_DEATH) * 6.0)
    assert abs(still_in_a / 50_000 - p) < 3 * math.sqrt(p * (1 - p) / 50_000)
    curve = tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, [a])
    assert curve.times[-1] == pytest.approx(6.0)


def _base_case_like_model():
    return compile_model(
        [competing_chain(), split_chain(0.7)],
        covariates=(Covariate("frail", 0.3),),
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_identical_for_any_thread_count_and_chunk_size(threads):
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("machine has fewer threads")
    model = _base_case_like_model()
    ref = simulate(model, 30_001, SEED, horizon=60.0, threads=1, chunk_size=30_001)
    other = simulate(model, 30_001, SEED, horizon=60.0, threads=threads, chunk_size=7_000)
    np.testing.assert_array_equal(ref.hist, other.hist)
    np.testing.assert_array_equal(ref.exit_counts, other.exit_counts)


def test_sequences_share_common_random_numbers():
    """Two sequences with the same first state see identical first-line times."""
    model = compile_model([competing_chain(), SequenceModel("chain2", competing_chain().states)])
    tallies = simulate(model, 20_000, SEED, horizon=60.0)
    a1, a2 = model.state_index("chain", "A"), model.state_index("chain2", "A")
    for kind in range(N_TALLIES):
        np.testing.assert_array_equal(
            tallies.histogram(kind, [a1]), tallies.histogram(kind, [a2]), TALLY_NAMES[kind]
        )
    assert tallies.histogram(TALLY_SOJOURN, [a1]).sum() == 20_000


def test_different_seeds_differ():
    model = compile_model([competing_chain()])
    t1 = simulate(model, 5_000, 1, horizon=60.0)
    t2 = simulate(model, 5_000, 2, horizon=60.0)
    assert not np.array_equal(t1.hist, t2.hist)


def test_covariate_hazard_ratio_acts_on_its_clock():
    """Half the patients have a covariate doubling the death hazard: S(t) is the mixture."""
    hr = 2.0
    state = State(
        "A",
        (
            Clock(
                exp_dist(0.1),
                (Destination(None, EVENT_DEATH, 1.0),),
                covariate_log_hr={"x": math.log(hr)},
            ),
        ),
    )
    model = compile_model([SequenceModel("s", (state,))], covariates=(Covariate("x", 0.5),))
    tallies = simulate(model, N, SEED, horizon=HORIZON)
    curve = tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, [0])
    for t in (3.0, 10.0):
        p = 0.5 * math.exp(-0.1 * t) + 0.5 * math.exp(-0.1 * hr * t)
        assert abs(curve.at(t) - p) < 3 * math.sqrt(p * (1 - p) / N)


def test_trajectory_log_agrees_with_tallies():
    model = _base_case_like_model()
    n = 2_000
    log = simulate_trajectories(model, n, SEED, horizon=60.0)
    tallies = simulate(model, n, SEED, horizon=60.0)
    for q, seq in enumerate(model.seq_names):
        rows = log[log.sequence == seq]
        deaths = (rows.event == "death").sum()
        start = int(model.seq_start_state[q])
        assert deaths == tallies.histogram(TALLY_OS_GIVEN_ENTRY, [start])[0].sum()
        # every patient's log starts at 0 and is contiguous
        first = rows.groupby("patient").t_start.min()
        assert (first == 0).all() and len(first) == n
    assert set(log.columns) == {
        "sequence",
        "patient",
        "from_state",
        "to_state",
        "event",
        "t_start",
        "t_stop",
    }


def test_model_validation_errors():
    bad_prob = State("A", (Clock(exp_dist(0.1), (Destination(None, EVENT_DEATH, 0.5),)),))
    with pytest.raises(ValueError, match="sum to 1"):
        compile_model([SequenceModel("s", (bad_prob,))])
    loop_a = State("A", (Clock(exp_dist(0.1), (Destination("B", EVENT_PROGRESSION, 1.0),)),))
    loop_b = State("B", (Clock(exp_dist(0.1), (Destination("A", EVENT_PROGRESSION, 1.0),)),))
    with pytest.raises(ValueError, match="cycle"):
        compile_model([SequenceModel("s", (loop_a, loop_b))])
    unknown = State("A", (Clock(exp_dist(0.1), (Destination("Z", EVENT_PROGRESSION, 1.0),)),))
    with pytest.raises(ValueError, match="unknown destination"):
        compile_model([SequenceModel("s", (unknown,))])


def test_compile_notice_only_when_the_model_variant_is_not_compiled():
    """simulate calls on_compile only if numba has no code yet for the model's variant."""
    from numba import njit

    from simseq.simulator import kernel_ready

    @njit
    def twice(x):
        return 2 * x

    twice(1.0)
    assert kernel_ready(twice, (3.0,))
    assert not kernel_ready(twice, (np.zeros(3),))  # another type: not compiled
    model = compile_model([competing_chain()])
    simulate(model, 100, SEED, horizon=60.0)
    calls = []
    simulate(model, 100, SEED, horizon=60.0, on_compile=lambda: calls.append(1))
    assert calls == []


def test_tallies_per_draw():
    """A two-draw run is two one-draw runs side by side: draw 1 is the run of global draw 1
    (its streams), read through ``of_draw`` or the outcome functions' ``draw``; with common
    streams both draws are draw 0's run."""
    model = _base_case_like_model()
    n, horizon = 3_000, 60.0
    both = simulate(model.repeat_draws(2), n, SEED, horizon=horizon, tallies=summary_tallies(model))
    first, second = (
        simulate(model, n, SEED, horizon=horizon, draw_lo=d, tallies=summary_tallies(model))
        for d in (0, 1)
    )
    assert both.n_draws == 2 and first.n_draws == 1
    for d, single in enumerate((first, second)):
        one = both.of_draw(d)
        for name in ("slots", "hist", "exit_counts"):
            np.testing.assert_array_equal(getattr(one, name), getattr(single, name))
        np.testing.assert_array_equal(both.n_entered[d], single.n_entered[0])
        for seq in model.seq_names:
            expected = sequence_summary(model, single, seq, horizon, (12.0,))
            assert sequence_summary(model, both, seq, horizon, (12.0,), draw=d) == expected
    assert not np.array_equal(first.hist, second.hist)
    common = simulate(model.repeat_draws(2), n, SEED, horizon=horizon, common_streams=True)
    np.testing.assert_array_equal(common.hist[1], common.hist[0])
    np.testing.assert_array_equal(common.exit_counts[1], first.exit_counts[0])


def test_a_histogram_not_kept_is_an_error_not_zeros():
    model = compile_model([competing_chain()])
    tallies = simulate(model, 100, SEED, horizon=60.0, tallies=[TALLY_OS_GIVEN_ENTRY])
    assert tallies.slots.tolist() == [[TALLY_OS_GIVEN_ENTRY, 0], [TALLY_OS_GIVEN_ENTRY, 1]]
    assert tallies.histogram(TALLY_OS_GIVEN_ENTRY, [0]).sum() == 100
    with pytest.raises(KeyError, match="histogram sojourn of state 0 was not kept"):
        tally_curve(tallies, TALLY_SOJOURN, [0, 1])


def test_one_default_bin_width():
    """A scenario that sets no simulation.bin_width bins like simulate's default (and so
    every run, PSA, DSA, sweep and benchmark that reads either)."""
    from simseq.scenario import Simulation
    from simseq.simulator import DEFAULT_BIN_WIDTH

    assert Simulation.model_fields["bin_width"].default == DEFAULT_BIN_WIDTH
