"""The engine's two walks and its two reductions give the same numbers.

``_walk_single_clock`` (packed patients, for models whose states each run one
clock) must reproduce ``_walk_items`` (the general walk) bit for bit: same streams,
same arithmetic, same paths. Keeping only the sequence OS histograms (a PSA's
``sequence_os_tallies``) must give the OS histogram that keeping every one gives,
whatever the split into patient rows, and the histograms ``summary_tallies`` keeps
must give the summary all of them give.
The general walk, which no shipped scenario needs any more, is also checked
against an exact survival function on a model whose competing clocks cannot be
merged.
"""

import math

import numba
import numpy as np
import pytest
from scipy import integrate

from simseq.bench import base_case_model, ref_hcc_model
from simseq.distributions import Distribution
from simseq.engine.codes import EVENT_DEATH, EVENT_PROGRESSION, TALLY_OS_GIVEN_ENTRY
from simseq.engine.simulate import (
    BLOCK,
    _block_setup,
    _multiplier_table,
    _walk_items,
    _walk_single_clock,
    _work_arrays,
    draw_tables,
)
from simseq.model import Clock, Covariate, Destination, SequenceModel, State, compile_model
from simseq.outcomes import (
    sequence_os_tallies,
    sequence_summary,
    summary_tallies,
    tally_curve,
)
from simseq.simulator import kernel_variant, simulate

SEED = 2026
HORIZON = 60.0


def _dies(dist: Distribution) -> Clock:
    return Clock(dist, (Destination(None, EVENT_DEATH, 1.0),))


def slow_family_sequence() -> SequenceModel:
    """Single clocks of families without a SIMD sampler (log-normal, Gompertz,
    generalised gamma), a three-way cause split and a covariate acting in two states."""
    a = State(
        "A",
        (
            Clock(
                Distribution("lnorm", (1.8, 0.9)),
                (
                    Destination("B", EVENT_PROGRESSION, 0.6),
                    Destination("C", EVENT_PROGRESSION, 0.3),
                    Destination(None, EVENT_DEATH, 0.1),
                ),
                covariate_log_hr={"frail": math.log(1.8)},
            ),
        ),
        line=1,
    )
    b = State(
        "B",
        (
            Clock(
                Distribution("gompertz", (0.05, 0.08)),
                (Destination(None, EVENT_DEATH, 1.0),),
                covariate_log_hr={"frail": math.log(1.5)},
            ),
        ),
    )
    c = State("C", (_dies(Distribution("gengamma", (2.0, 0.7, -0.4))),))
    return SequenceModel("slow", (a, b, c))


def weibull_chain() -> SequenceModel:
    a = State(
        "A",
        (
            Clock(
                Distribution("weibull", (1.3, 7.0)),
                (Destination("B", EVENT_PROGRESSION, 0.8), Destination(None, EVENT_DEATH, 0.2)),
            ),
        ),
        line=1,
    )
    b = State("B", (_dies(Distribution("exponential", (0.2,))),))
    return SequenceModel("weibull", (a, b))


def supportive_care_only() -> SequenceModel:
    """A sequence of one state whose one clock leads to death, as best supportive care
    from the start: every patient's first step is its last."""
    return SequenceModel(
        "bsc", (State("BSC", (_dies(Distribution("weibull", (0.9, 5.0))),), line=1),)
    )


SINGLE_CLOCK_MODELS = {
    "ref_hcc": lambda: ref_hcc_model(),
    "one_state_sequence_first": lambda: compile_model([supportive_care_only(), weibull_chain()]),
    "slow_families_covariate": lambda: compile_model(
        [slow_family_sequence(), weibull_chain()], covariates=(Covariate("frail", 0.4),)
    ),
}


def _walk(walk, model, start_state, p_lo, n, record_path=True):
    """One block of patients p_lo .. p_lo + n through ``walk``; returns its outputs."""
    cov_prevalence, cov_log_hr, clock_params, clock_hr, dest_cumprob, _, _ = model.numbers(0)
    tables = draw_tables(model.structure, clock_params, clock_hr, dest_cumprob)
    keys, inv_mult, scratch, path, n_steps, death = _work_arrays(
        model.max_steps, clock_hr.shape[0], cov_prevalence.shape[0]
    )
    table = _multiplier_table(cov_log_hr, tables[3])
    _block_setup(SEED, 0, p_lo, n, cov_prevalence, cov_log_hr, tables[3], table, keys, inv_mult)
    exact, _ = kernel_variant(model)
    walk(
        keys,
        n,
        start_state,
        HORIZON,
        inv_mult,
        model.structure,
        None if exact is None else clock_params,
        tables,
        cov_prevalence.shape[0],
        model.stride,
        scratch,
        record_path,
        path,
        n_steps,
        death,
    )
    return path, n_steps[:n].copy(), death[:n].copy()


@pytest.mark.parametrize("name", sorted(SINGLE_CLOCK_MODELS))
def test_single_clock_walk_reproduces_the_general_walk(name):
    model = SINGLE_CLOCK_MODELS[name]()
    assert kernel_variant(model)[1] is None, "model must be single-clock"
    for start in model.seq_start_state:
        for p_lo, n in ((0, BLOCK), (5 * BLOCK, 37)):
            path_a, steps_a, death_a = _walk(_walk_items, model, int(start), p_lo, n)
            path_b, steps_b, death_b = _walk(_walk_single_clock, model, int(start), p_lo, n)
            np.testing.assert_array_equal(steps_a, steps_b)
            np.testing.assert_array_equal(death_a, death_b)
            for i in range(n):
                for a, b in zip(path_a, path_b, strict=True):
                    np.testing.assert_array_equal(a[i, : steps_a[i]], b[i, : steps_a[i]])
            # Without the path record the walk still ends each patient the same way.
            _, steps_c, death_c = _walk(
                _walk_single_clock, model, int(start), p_lo, n, record_path=False
            )
            np.testing.assert_array_equal(steps_a, steps_c)
            np.testing.assert_array_equal(death_a, death_c)
    # and the walks did something: some patients die, some pass through several states
    assert np.isfinite(death_a).any() and (steps_a > 1).any()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", sorted(SINGLE_CLOCK_MODELS))
def test_sequence_os_equals_the_tallied_os(name, threads):
    """The sequence OS histograms alone without exit counts (a PSA's tallies, binned from
    the death time, no path kept) are those of a run keeping every histogram, bit for bit,
    with one draw split into patient rows across threads or two draws side by side (then
    one task a draw)."""
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("machine has fewer threads")
    model = SINGLE_CLOCK_MODELS[name]()
    n = 20_003
    tallies = simulate(model, n, SEED, horizon=HORIZON, threads=threads)
    for m in (model, model.repeat_draws(2)):
        os_only = sequence_os_tallies(m)
        draws = simulate(
            m, n, SEED, horizon=HORIZON, tallies=os_only, exit_counts=False, threads=threads
        )
        assert draws.hist.shape[:2] == (m.n_draws, len(m.seq_names))  # nothing else kept
        assert draws.exit_counts is None
        for start in model.seq_start_state:
            expected = tallies.histogram(TALLY_OS_GIVEN_ENTRY, [start])
            np.testing.assert_array_equal(draws.histogram(TALLY_OS_GIVEN_ENTRY, [start]), expected)
            if m is not model:  # draw 1 has its own streams: same model, other patients
                assert not np.array_equal(
                    draws.histogram(TALLY_OS_GIVEN_ENTRY, [start], draw=1), expected
                )


# A state whose competing clocks differ in shape, so compile_model cannot merge them and
# the general walk (_walk_items) runs: progression Weibull(1.5, 8), death Weibull(0.8, 30),
# then death after progression at rate 0.25 per month.
PROG = (1.5, 8.0)
DEATH = (0.8, 30.0)
MU = 0.25


def _cum_hazard(t, shape_scale):
    shape, scale = shape_scale
    return (t / scale) ** shape


def _exact_os_survival(t: float) -> float:
    """S(t) = P(no event by t) + int_0^t f_prog(s) S_A(s) exp(-MU (t - s)) ds, the second
    term being patients who progressed at s and are still alive at t."""

    def s_a(s):
        return math.exp(-_cum_hazard(s, PROG) - _cum_hazard(s, DEATH))

    def prog_density(s):
        shape, scale = PROG
        return shape / scale * (s / scale) ** (shape - 1) * s_a(s) * math.exp(-MU * (t - s))

    after, _ = integrate.quad(prog_density, 0, t, epsabs=1e-12, epsrel=1e-10, limit=200)
    return s_a(t) + after


def unmerged_sequence() -> SequenceModel:
    a = State(
        "A",
        (
            Clock(Distribution("weibull", PROG), (Destination("B", EVENT_PROGRESSION, 1.0),)),
            _dies(Distribution("weibull", DEATH)),
        ),
        line=1,
    )
    b = State("B", (_dies(Distribution("exponential", (MU,))),))
    return SequenceModel("unmerged", (a, b))


def test_general_walk_matches_exact_survival():
    model = compile_model([unmerged_sequence()])
    assert kernel_variant(model)[1] is not None  # the general walk runs
    n = 200_000
    tallies = simulate(
        model, n, SEED, horizon=HORIZON, bin_width=0.05, tallies=sequence_os_tallies(model)
    )
    curve = tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, [0])
    for t in (3.0, 8.0, 15.0, 30.0):
        p = _exact_os_survival(t)
        # tolerance: 3 binomial Monte Carlo standard errors at n (no censoring before 60)
        assert abs(curve.at(t) - p) < 3 * math.sqrt(p * (1 - p) / n), (t, curve.at(t), p)


def test_summary_needs_only_the_summary_tallies():
    """``simseq run`` keeps only the histograms sequence_summary reads; its summary must be
    exactly the one computed from every histogram (a missed one would read as zeros)."""
    model = base_case_model()
    n = 20_000
    full = simulate(model, n, SEED, horizon=HORIZON)
    kept = simulate(model, n, SEED, horizon=HORIZON, tallies=summary_tallies(model))
    mask = summary_tallies(model).astype(bool)
    assert 0 < mask.sum() < mask.size  # some histograms are skipped
    np.testing.assert_array_equal(kept.slots, np.argwhere(mask))  # and only those are kept
    for seq in model.seq_names:
        expected = sequence_summary(model, full, seq, HORIZON, (12.0, 24.0))
        assert sequence_summary(model, kept, seq, HORIZON, (12.0, 24.0)) == expected


def test_tabled_multipliers_equal_those_computed_per_patient():
    """_block_setup from the per-pattern table gives every patient's 1/multipliers bit for
    bit as computed per patient (the path taken above MAX_TABLED_COVARIATES)."""
    model = SINGLE_CLOCK_MODELS["slow_families_covariate"]()
    cov_prevalence, cov_log_hr, clock_params, clock_hr, dest_cumprob, _, _ = model.numbers(0)
    tables = draw_tables(model.structure, clock_params, clock_hr, dest_cumprob)
    outputs = []
    for table in (_multiplier_table(cov_log_hr, tables[3]), np.empty((0, clock_hr.shape[0]))):
        keys, inv_mult, *_ = _work_arrays(model.max_steps, clock_hr.shape[0], 1)
        _block_setup(
            SEED, 0, 0, BLOCK, cov_prevalence, cov_log_hr, tables[3], table, keys, inv_mult
        )
        outputs.append(inv_mult.copy())
    assert len(np.unique(outputs[0][:, 0])) == 2  # patients with and without the covariate
    np.testing.assert_array_equal(outputs[0], outputs[1])
