"""The trajectory loop and its streaming reductions.

A model reaches the kernels as flat arrays (built by ``simseq.model``):

states   ``state_clock_lo/hi[n_states]``: the clocks running in each state.
clocks   ``clock_family[n_clocks]``, ``clock_params[n_clocks, N_PARAMS]``,
         ``clock_hr[n_clocks]`` (proportional-hazards multiplier),
         ``clock_dest_lo/hi[n_clocks]``: competing clocks; the first to ring ends
         the sojourn (latent competing risks).
dests    ``dest_state[n_dests]``, ``dest_event[n_dests]``, ``dest_cumprob[n_dests]``:
         where a ringing clock sends the patient, chosen by one uniform against
         cumulative probabilities (a cause split); EVENT_DEATH ends the path.
covars   ``cov_prevalence[n_cov]``, ``cov_log_hr[n_clocks, n_cov]``: binary
         patient characteristics drawn once per patient, acting on clock hazards.

Times are months from the start of the sequence, censored at ``horizon``.

Patients are walked in blocks of ``BLOCK`` so that the expensive part, turning
uniforms into Weibull/exponential times, runs as one SIMD loop over every
(patient, clock) pair of a step (``_sample_block``); the branching (which clock
rang, where to go next, histogram updates) stays scalar. Models whose states
each run one clock (competing causes merged, as ``simseq.model`` does for
same-shape Weibulls) take ``_walk_single_clock``: the patients still walking are
kept packed with their next clock's parameters, so the SIMD loop reads only
contiguous arrays (LLVM will not vectorise the gathers a state lookup needs).
Other models take ``_walk_items``, which lists (patient, clock) pairs each step.
Both give identical numbers. A kernel is compiled per model variant (see
``walk_block``): the usual one holds neither the general walk nor the exact
samplers of non-Weibull families.

One kernel, ``simulate_kernel``, holds the block loop, parallel over (draw, patient
row) tasks; what a walked block is drained into (``_drain_block``) is its argument:
histograms, exit counts and economic sums, or an event log.

Uniform number ``counter`` of patient ``p`` in draw ``d`` is a pure function of
(seed, d, p, counter), and the counter depends only on the step and the clock's
position in its state, so results do not depend on blocks, threads or chunks,
and every sequence of a scenario sees the same numbers (common random numbers).
"""

import numpy as np
from numba import njit, prange

from simseq.engine.codes import (
    ECON_COST,
    ECON_COST_DISC,
    ECON_LY,
    ECON_LY_DISC,
    ECON_QALY,
    ECON_QALY_DISC,
    ECON_SCALE,
    EVENT_DEATH,
    EVENT_PROGRESSION,
    FAMILY_EXPONENTIAL,
    FAMILY_WEIBULL,
    N_BATCHES,
    N_EVENTS,
    STATE_COST,
    STATE_ENTRY_COST,
    STATE_ENTRY_QALY,
    STATE_QALY,
    STATE_TREATMENT_COST,
    STATE_TREATMENT_MAX,
    STATE_TREATMENT_STOP_RATE,
    TALLY_ENTRY_TIME,
    TALLY_EXIT_TIME,
    TALLY_OS_FROM_ENTRY,
    TALLY_OS_GIVEN_ENTRY,
    TALLY_PPS,
    TALLY_SOJOURN,
)
from simseq.engine.rng import patient_key, uniform
from simseq.engine.sample import time_at_cumhaz
from simseq.engine.vmath import vexp, vlog

BLOCK = 256  # patients walked together; their work arrays stay in L1/L2 cache
# The SIMD loops run over a multiple of 8 items (doubles in an AVX-512 register, two in
# AVX2): items past the end are scratch, and none falls to the scalar remainder loop,
# about 10x slower an item, which cost 10-25 % of a step with few patients left.
SIMD_PAD = 8
ECON_SCALE_LY = ECON_SCALE[ECON_LY]  # years (life-years and QALYs share it)
ECON_SCALE_COST = ECON_SCALE[ECON_COST]


@njit(nogil=True, error_model="numpy")
def fast_path_params(clock_family, clock_params, clock_hr):
    """Per-clock (is_fast, scale, 1/shape, 1/hr) for the SIMD sampler.

    Weibull and exponential clocks (the fast path) draw t = scale * e^(1/shape)
    with e = -log(u) / hr; other families are flagged for the scalar sampler.
    Inputs (n_clocks,), (n_clocks, N_PARAMS), (n_clocks,). Jit-compiled.
    """
    n = clock_family.shape[0]
    scale = np.ones(n)
    inv_shape = np.ones(n)
    inv_hr = 1.0 / clock_hr
    fast = np.zeros(n, np.bool_)
    for c in range(n):
        if clock_family[c] == FAMILY_EXPONENTIAL:
            scale[c] = 1.0 / clock_params[c, 0]
            fast[c] = True
        elif clock_family[c] == FAMILY_WEIBULL:
            inv_shape[c] = 1.0 / clock_params[c, 0]
            scale[c] = clock_params[c, 1]
            fast[c] = True
    return fast, scale, inv_shape, inv_hr


@njit(nogil=True, error_model="numpy")
def destination_cuts(clock_dest_lo, clock_dest_hi, dest_cumprob):
    """float64 (n_clocks, max destinations - 1): each clock's cumulative destination
    probabilities but the last, padded with +inf, so that the destination is
    ``clock_dest_lo[c] + sum_k (u > cuts[c, k])`` over a fixed number of compares
    (no data-dependent loop to mispredict). The same compares as ``_walk_items``.
    Jit-compiled.
    """
    n_clocks = clock_dest_lo.shape[0]
    width = 0
    for c in range(n_clocks):
        width = max(width, clock_dest_hi[c] - clock_dest_lo[c] - 1)
    cuts = np.full((n_clocks, width), np.inf)
    for c in range(n_clocks):
        for d in range(clock_dest_lo[c], clock_dest_hi[c] - 1):
            cuts[c, d - clock_dest_lo[c]] = dest_cumprob[d]
    return cuts


@njit(inline="always", nogil=True)
def _padded(n):
    """n rounded up to a multiple of SIMD_PAD: the length a SIMD loop runs over."""
    return (n + SIMD_PAD - 1) // SIMD_PAD * SIMD_PAD


@njit(nogil=True, error_model="numpy")
def _latent_times(n, inv_mult, scale, inv_shape, t_enter, e, w, t):
    """SIMD passes turning uniforms into Weibull/exponential times, over j < n:
    e[j] (a uniform u on entry) becomes -log(u) * inv_mult[j] (a unit exponential over
    the hazard multiplier), and t[j] = t_enter[j] + scale * e^(1/shape) (without
    t_enter when it is None: durations). ``w`` is scratch.

    Three passes, not one: one item's arithmetic is a chain of dependent operations
    too long for the processor's out-of-order window to overlap many items when fused;
    split, each pass overlaps many (6.0 -> 3.7 ns an item measured, same bits).
    Branch-free and gather-free (parameters are copied per item beforehand) so that
    LLVM vectorises each pass; vlog/vexp are plain arithmetic.
    """
    for j in range(n):
        e[j] = -vlog(e[j]) * inv_mult[j]
    for j in range(n):
        w[j] = vlog(e[j]) * inv_shape[j]
    if t_enter is None:  # numba compiles only the branch the argument's type allows
        for j in range(n):
            weibull = scale[j] * vexp(w[j])
            t[j] = scale[j] * e[j] if inv_shape[j] == 1.0 else weibull
    else:
        for j in range(n):
            weibull = scale[j] * vexp(w[j])
            t[j] = t_enter[j] + (scale[j] * e[j] if inv_shape[j] == 1.0 else weibull)


@njit(nogil=True, error_model="numpy")
def _sample_block(
    n_items,
    item_key,
    item_counter,
    cause_counter,
    item_inv_mult,
    item_scale,
    item_inv_shape,
    item_e,
    item_w,
    item_t,
    item_cause_u,
):
    """Sampling of ``_walk_items``: item_t[j] = scale * e^(1/shape), e = -log(u) *
    inv_mult (kept in item_e), u the item_counter[j]-th uniform of stream item_key[j],
    and the uniform that picks the destination (``cause_counter``), over j < n_items.
    """
    for j in range(n_items):
        item_cause_u[j] = uniform(item_key[j], cause_counter)
        item_e[j] = uniform(item_key[j], item_counter[j])
    _latent_times(n_items, item_inv_mult, item_scale, item_inv_shape, None, item_e, item_w, item_t)


@njit(nogil=True, error_model="numpy")
def _sample_packed(
    n, counter, cause_counter, key, t_enter, inv_mult, scale, inv_shape, e, w, t_exit, cause_u
):
    """Sampling of ``_walk_single_clock``: t_exit[a] = t_enter[a] + scale * e^(1/shape),
    e = -log(u) * inv_mult (kept in e), u the ``counter``-th uniform of stream key[a],
    and the destination uniform (``cause_counter``), over packed patients a < n. The
    same arithmetic as ``_sample_block``, with one counter for all."""
    for a in range(n):
        cause_u[a] = uniform(key[a], cause_counter)
        e[a] = uniform(key[a], counter)
    _latent_times(n, inv_mult, scale, inv_shape, t_enter, e, w, t_exit)


@njit(nogil=True, error_model="numpy")
def _exact_times(n, item_clock, fast, clock_family, clock_params, e_in_t_out):
    """Replace e by the exact time ``time_at_cumhaz(e)`` for items j < n whose clock
    ``item_clock[j]`` is not on the SIMD fast path (both walks' scalar fallback)."""
    for j in range(n):
        c = item_clock[j]
        if not fast[c]:
            e_in_t_out[j] = time_at_cumhaz(
                clock_family[c], clock_params[c, 0], clock_params[c, 1], clock_params[c, 2],
                e_in_t_out[j],
            )  # fmt: skip


@njit(nogil=True)
def _exact_params(exact_families, clock_params):
    """``clock_params`` when the model needs the exact samplers, else None (see
    ``walk_block``). A function, not an inline conditional, so that each compiled
    variant sees one type."""
    if exact_families is None:
        return None
    return clock_params


@njit(nogil=True, error_model="numpy")
def next_clocks(structure):
    """int64 (n_dests,): the clock a destination starts (the first of its state's), or -1
    where the destination is death, so that a walk goes from a clock to the next one with
    one lookup. Jit-compiled."""
    state_clock_lo, _, _, _, _, dest_state, dest_event = structure
    out = np.empty(dest_state.shape[0], np.int64)
    for d in range(dest_state.shape[0]):
        out[d] = -1 if dest_event[d] == EVENT_DEATH else state_clock_lo[dest_state[d]]
    return out


@njit(nogil=True, error_model="numpy")
def draw_tables(structure, clock_params, clock_hr, dest_cumprob):
    """What the walks need of one draw, computed once: ``fast_path_params``'s four
    arrays, ``dest_cumprob``, ``destination_cuts`` and ``next_clocks``."""
    _, _, clock_family, clock_dest_lo, clock_dest_hi, _, _ = structure
    fast, scale, inv_shape, inv_hr = fast_path_params(clock_family, clock_params, clock_hr)
    cuts = destination_cuts(clock_dest_lo, clock_dest_hi, dest_cumprob)
    return fast, scale, inv_shape, inv_hr, dest_cumprob, cuts, next_clocks(structure)


@njit(nogil=True, error_model="numpy")
def walk_block(competing, *walk_args):
    """Walk patients 0..n-1 of a block (stream keys ``keys[:n]``) from ``start_state``.

    ``walk_args`` = (keys, n, start_state, horizon, inv_mult, structure,
    exact_params, tables, counter_base, stride, scratch, record_path, path,
    n_steps, death_time), handed to the walk that fits the model.

    ``structure``: the model's integer arrays (``STRUCTURE`` order); ``exact_params``:
    the draw's clock parameters, or None when every clock is Weibull or exponential;
    ``tables``: ``draw_tables`` output; ``inv_mult[i, c]``: 1 / (hazard multiplier of
    clock c for patient i), with no columns when the model has no covariates;
    ``competing``: None when every state runs one clock (``_walk_single_clock``),
    else anything (``_walk_items``). numba compiles per argument type and drops
    branches on None arguments, so a kernel called with None compiles neither the
    exact samplers nor the general walk (each about a quarter of its compile time). Fills
    ``n_steps[i]``, ``death_time[i]`` (inf when alive at the horizon) and, with
    ``record_path``, ``path = (state, entry time, exit time, exit event)`` rows
    ``[i, :n_steps[i]]`` (event -1 when still there at the horizon). ``scratch``
    comes from ``_work_arrays``. Jit-compiled; inputs are not validated.
    """
    if competing is None:
        _walk_single_clock(*walk_args)
    else:
        _walk_items(*walk_args)


@njit(nogil=True, error_model="numpy")
def _walk_single_clock(
    keys,
    n,
    start_state,
    horizon,
    inv_mult,
    structure,
    exact_params,
    tables,
    counter_base,
    stride,
    scratch,
    record_path,
    path,
    n_steps,
    death_time,
):
    """``walk_block`` for models whose states each run one clock.

    Patient a of the ``n_alive`` still walking is row a of the packed arrays
    ``a_*``, which carry its stream key, block index, clock, time and its clock's
    sampler parameters. Each step samples them all in one SIMD pass, then a scalar
    pass picks destinations (fixed compares against ``destination_cuts``), records
    the path and packs the survivors to the front with the parameters of their next
    clock. Every alive patient takes one step per pass, so path row k is step k.
    """
    state_clock_lo, _, clock_family, clock_dest_lo, _, dest_state, dest_event = structure
    fast, scale, inv_shape, inv_hr, _, cuts, next_clock = tables
    work_k, work_i, work_f = scratch
    path_state, path_enter, path_exit, path_event = path
    max_steps = path_state.shape[1]
    n_cuts = cuts.shape[1]
    a_key = work_k
    a_id, a_clock, a_state = work_i[0], work_i[1], work_i[2]
    a_t, a_scale, a_inv_shape, a_inv_mult, a_exit, a_cause_u, a_e, a_w = (
        work_f[0],
        work_f[1],
        work_f[2],
        work_f[3],
        work_f[4],
        work_f[5],
        work_f[6],
        work_f[7],
    )
    has_covariates = inv_mult.shape[1] > 0
    c0 = state_clock_lo[start_state]
    for i in range(n):
        a_key[i] = keys[i]
        a_id[i] = i
        a_clock[i] = c0
        a_state[i] = start_state
        a_t[i] = 0.0
        a_scale[i] = scale[c0]
        a_inv_shape[i] = inv_shape[c0]
        a_inv_mult[i] = inv_mult[i, c0] if has_covariates else inv_hr[c0]
        n_steps[i] = 0
        death_time[i] = np.inf
    n_alive = n
    for step in range(max_steps):
        if n_alive == 0:
            break
        base = counter_base + step * stride
        _sample_packed(
            _padded(n_alive),
            base,
            base + stride - 1,
            a_key,
            a_t,
            a_inv_mult,
            a_scale,
            a_inv_shape,
            a_e,
            a_w,
            a_exit,
            a_cause_u,
        )
        if exact_params is not None:  # redo the non-Weibull clocks exactly (scalar)
            _exact_times(n_alive, a_clock, fast, clock_family, exact_params, a_e)
            for a in range(n_alive):
                if not fast[a_clock[a]]:
                    a_exit[a] = a_t[a] + a_e[a]
        # Branch-free apart from the loop itself: outcomes are random, so any
        # data-dependent branch here would be mispredicted about half the time. Few
        # lookups: each costs instructions on a loop bound by their count.
        still = 0
        for a in range(n_alive):
            i = a_id[a]
            c = a_clock[a]
            t_exit = a_exit[a]
            u = a_cause_u[a]
            d = clock_dest_lo[c]
            for k in range(n_cuts):
                d += u > cuts[c, k]
            censored = t_exit >= horizon  # also catches clocks that never ring (inf)
            c_next = next_clock[d]
            ends = c_next < 0  # death
            if record_path:
                ev = dest_event[d]
                path_state[i, step] = a_state[a]
                path_enter[i, step] = a_t[a]
                path_exit[i, step] = horizon if censored else t_exit
                path_event[i, step] = -1 if censored else ev
                a_state[still] = dest_state[d]
            n_steps[i] = step + 1
            death_time[i] = t_exit if ends and not censored else np.inf
            c_next = max(c_next, 0)  # a valid index even when the walk ends
            a_key[still] = a_key[a]
            a_id[still] = i
            a_clock[still] = c_next
            a_t[still] = t_exit
            a_scale[still] = scale[c_next]
            a_inv_shape[still] = inv_shape[c_next]
            a_inv_mult[still] = inv_mult[i, c_next] if has_covariates else inv_hr[c_next]
            still += not (censored or ends)
        n_alive = still


@njit(nogil=True, error_model="numpy")
def _walk_items(
    keys,
    n,
    start_state,
    horizon,
    inv_mult,
    structure,
    exact_params,
    tables,
    counter_base,
    stride,
    scratch,
    record_path,
    path,
    n_steps,
    death_time,
):
    """``walk_block`` for any model: each step lists the (patient, clock) pairs that
    need a time, samples them in one SIMD pass, and lets the first clock of each
    patient ring."""
    (
        state_clock_lo,
        state_clock_hi,
        clock_family,
        clock_dest_lo,
        clock_dest_hi,
        dest_state,
        dest_event,
    ) = structure
    fast, scale, inv_shape, inv_hr, dest_cumprob, _, _ = tables
    work_k, work_i, work_f = scratch
    path_state, path_enter, path_exit, path_event = path
    max_steps = path_state.shape[1]
    item_key = work_k
    item_clock, item_counter, item_lo = work_i[0], work_i[1], work_i[2]
    item_e, item_t, item_inv_mult, item_scale, item_inv_shape, item_cause_u, item_w = (
        work_f[0],
        work_f[1],
        work_f[2],
        work_f[3],
        work_f[4],
        work_f[5],
        work_f[6],
    )
    has_covariates = inv_mult.shape[1] > 0
    state = np.empty(n, np.int64)
    t_now = np.zeros(n)
    alive = np.empty(n, np.int64)  # patients still walking; compacted every step
    n_alive = n
    for i in range(n):
        state[i] = start_state
        n_steps[i] = 0
        death_time[i] = np.inf
        alive[i] = i
    for step in range(max_steps):
        if n_alive == 0:
            break
        base = counter_base + step * stride
        # 1. list the (patient, clock) pairs that need a time this step;
        #    alive[a]'s pairs are item_lo[a] .. item_lo[a + 1]
        n_items = 0
        for a in range(n_alive):
            i = alive[a]
            item_lo[a] = n_items
            s = state[i]
            for c in range(state_clock_lo[s], state_clock_hi[s]):
                item_clock[n_items] = c
                item_counter[n_items] = base + c - state_clock_lo[s]
                item_key[n_items] = keys[i]
                item_inv_mult[n_items] = inv_mult[i, c] if has_covariates else inv_hr[c]
                item_scale[n_items] = scale[c]
                item_inv_shape[n_items] = inv_shape[c]
                n_items += 1
        item_lo[n_alive] = n_items
        # 2. sample them all (SIMD), then redo the few non-Weibull ones exactly
        _sample_block(
            _padded(n_items),
            item_key,
            item_counter,
            base + stride - 1,
            item_inv_mult,
            item_scale,
            item_inv_shape,
            item_e,
            item_w,
            item_t,
            item_cause_u,
        )
        if exact_params is not None:
            for j in range(n_items):
                if not fast[item_clock[j]]:
                    item_t[j] = item_e[j]
            _exact_times(n_items, item_clock, fast, clock_family, exact_params, item_t)
        # 3. per patient: first clock to ring and where it leads. Written with few
        #    data-dependent branches: mispredictions, not arithmetic, bound this loop.
        still = 0
        for a in range(n_alive):
            i = alive[a]
            j = item_lo[a]
            t_first = item_t[j]
            c_first = item_clock[j]
            for jj in range(j + 1, item_lo[a + 1]):
                if item_t[jj] < t_first:
                    t_first = item_t[jj]
                    c_first = item_clock[jj]
            k = n_steps[i]
            if record_path:
                path_state[i, k] = state[i]
                path_enter[i, k] = t_now[i]
            n_steps[i] = k + 1
            t_exit = t_now[i] + t_first
            if t_exit >= horizon:  # rare; also catches clocks that never ring (inf)
                if record_path:
                    path_exit[i, k] = horizon
                    path_event[i, k] = -1
                continue
            d_lo = clock_dest_lo[c_first]
            d = d_lo
            if clock_dest_hi[c_first] - d_lo > 1:
                u = item_cause_u[item_lo[a]]
                for dd in range(d_lo, clock_dest_hi[c_first] - 1):
                    d += u > dest_cumprob[dd]
            ev = dest_event[d]
            dies = ev == EVENT_DEATH
            if record_path:
                path_exit[i, k] = t_exit
                path_event[i, k] = ev
            t_now[i] = t_exit
            death_time[i] = t_exit if dies else death_time[i]
            state[i] = dest_state[d]  # STATE_DEAD for death: harmless, the patient stops
            alive[still] = i
            still += not dies
        n_alive = still


NOT_KEPT = np.uint64(1 << 63)  # offset of a histogram not kept (see _task_tally)
EXIT_LANES = 4  # copies of the exit counts; patient i counts into copy i % EXIT_LANES


@njit(nogil=True)
def _task_tally(tally_sink, task):
    """What a task's path tally writes to, set up once per task: row ``task`` of the
    sink's histograms as one flat array, the offset of histogram (kind k, state s) in it
    (uint64 (N_TALLIES, n_states); NOT_KEPT where not kept), and its own zeroed exit
    counts int64 (EXIT_LANES, n_states, N_EVENTS + 1), which the kernel adds into the
    sink's row when the task ends. Empty arrays when there is no tally sink.

    Why: flat unsigned offsets spare each count the strided index arithmetic and
    negative-index checks (about half the tally's instructions), and exit counts of a
    task's own, in lanes, neither share a cache line with another thread's nor make
    consecutive patients' increments of one count wait on each other."""
    if tally_sink is None:
        return (
            np.zeros(0, np.int64),
            np.zeros((0, 0), np.uint64),
            np.zeros((EXIT_LANES, 0, N_EVENTS + 1), np.int64),
        )
    slot_of, hist, n_states = tally_sink[1], tally_sink[3], tally_sink[4].shape[1]
    offset = np.full(slot_of.shape, NOT_KEPT, np.uint64)
    for k in range(slot_of.shape[0]):
        for s in range(slot_of.shape[1]):
            if slot_of[k, s] >= 0:
                offset[k, s] = slot_of[k, s] * 2 * hist.shape[3]
    lanes = np.zeros((EXIT_LANES, n_states, N_EVENTS + 1), np.int64)
    return hist[task].reshape(-1), offset, lanes


@njit(inline="always", nogil=True)
def _ubin(t, inv_width, last):
    """Bin of time t >= 0 (months), the last bin taking what lies beyond; unsigned."""
    return min(np.uint64(t * inv_width), last)


@njit(inline="always", nogil=True)
def _add_os(flat, o, death_time, horizon, inv_width, last):
    """Add OS from the start of the sequence (the death time, or censored at the horizon:
    the last bin) to the histogram at offset o of a flat row (see ``_task_tally``)."""
    censored_half = np.uint64(0) if death_time < np.inf else last + np.uint64(1)
    flat[o + censored_half + _ubin(min(death_time, horizon), inv_width, last)] += 1


@njit(inline="always", nogil=True)
def _tally_path(i, n_steps, death_time, horizon, path, inv_width, n_bins, task_tally):
    """Add patient i's walked path (row i of the path arrays) to the task's histograms
    and exit counts (``_task_tally``): histogram (kind k, state s) holds [event times,
    censoring times] of n_bins bins each, from offset[k, s] of the flat row. The entry
    into the start state (step 0, at time 0) the caller counts once for the block.

    Takes whole arrays plus indices: slicing per patient would cost reference-count
    updates that dominated the loop.
    """
    path_state, path_enter, path_exit, path_event = path
    flat, offset, lanes = task_tally
    exits = lanes[np.uint64(i) % EXIT_LANES]
    last = np.uint64(n_bins - 1)
    censored_half = np.uint64(0) if death_time < np.inf else np.uint64(n_bins)
    t_end = min(death_time, horizon)  # death, or censoring at the horizon
    for k in range(n_steps):
        s = np.uint64(path_state[i, k])
        te = path_enter[i, k]
        tx = path_exit[i, k]  # the horizon when still there at the horizon
        ev = path_event[i, k]
        left = ev >= 0
        exits[s, np.uint64(ev) if left else np.uint64(N_EVENTS)] += 1
        o = offset[TALLY_ENTRY_TIME, s]
        if o != NOT_KEPT and k > 0:  # step 0 enters at time 0: counted per block
            flat[o + _ubin(te, inv_width, last)] += 1
        o = offset[TALLY_SOJOURN, s]
        if o != NOT_KEPT:
            half = np.uint64(0) if left else np.uint64(n_bins)
            flat[o + half + _ubin(tx - te, inv_width, last)] += 1
        o = offset[TALLY_EXIT_TIME, s]
        if o != NOT_KEPT and left:
            flat[o + _ubin(tx, inv_width, last)] += 1
        o = offset[TALLY_OS_FROM_ENTRY, s]
        if o != NOT_KEPT:
            flat[o + censored_half + _ubin(t_end - te, inv_width, last)] += 1
        o = offset[TALLY_OS_GIVEN_ENTRY, s]
        if o != NOT_KEPT:
            _add_os(flat, o, death_time, horizon, inv_width, last)
        o = offset[TALLY_PPS, s]
        if o != NOT_KEPT and ev == EVENT_PROGRESSION:
            flat[o + censored_half + _ubin(t_end - tx, inv_width, last)] += 1


@njit(inline="always", nogil=True, error_model="numpy")
def _discounted_months(t0, t1, rate, at_t0):
    """Integral of exp(-rate t) over [t0, t1] (months), exact; rate per month (>= 0) and
    ``at_t0`` = exp(-rate t0), which the caller has (it discounts at entry too)."""
    if rate == 0.0:
        return t1 - t0
    return at_t0 * -np.expm1(-rate * (t1 - t0)) / rate


@njit(inline="always", nogil=True, error_model="numpy")
def _trend_months(t0, t1, rate, b1, b2):
    """Integral of (1 + b1 t + b2 t^2) exp(-rate t) over [t0, t1] (months), exact."""
    if rate == 0.0:
        return (t1 - t0) + b1 * (t1 * t1 - t0 * t0) / 2 + b2 * (t1**3 - t0**3) / 3
    e0 = np.exp(-rate * t0)
    e1 = np.exp(-rate * t1)
    i0 = e0 * -np.expm1(-rate * (t1 - t0)) / rate
    # antiderivatives of t e^{-rt} and t^2 e^{-rt}
    i1 = (t0 / rate + 1 / rate**2) * e0 - (t1 / rate + 1 / rate**2) * e1
    i2 = (t0 * t0 / rate + 2 * t0 / rate**2 + 2 / rate**3) * e0 - (
        t1 * t1 / rate + 2 * t1 / rate**2 + 2 / rate**3
    ) * e1
    return i0 + b1 * i1 + b2 * i2


@njit(inline="always", nogil=True, error_model="numpy")
def _fixed(x, scale):
    """x * scale rounded to int64; |x * scale| <= ECON_MAX_FIXED (checked before the run)."""
    return np.int64(np.floor(x * scale + 0.5))


@njit(inline="always", nogil=True)
def _add_exact(out, r, q, k, b, v):
    """out[r, q, k, b] = (hi, lo), the exact sum hi * 2^32 + lo with lo in [0, 2^32), += v.

    |v| is at most about ECON_MAX_FIXED = 2^62 and lo < 2^32, so lo + v cannot overflow;
    keeping lo in [0, 2^32) after every add makes (hi, lo) the one representation of
    the sum, whatever the order. Jit-compiled; inputs are not validated.
    """
    lo = out[r, q, k, b, 1] + v
    carry = lo >> 32  # arithmetic shift: floor(lo / 2^32), also for negative lo
    out[r, q, k, b, 0] += carry
    out[r, q, k, b, 1] = lo & 0xFFFFFFFF  # lo - carry * 2^32, in [0, 2^32)


@njit(inline="always", nogil=True, error_model="numpy")
def _accrue(i, patient, n_steps, death_time, path, state_econ, econ_globals, out, r, q):
    """Add patient i's life-years, QALYs and costs (plain and discounted) to
    out[r, q, N_ECON, N_BATCHES, 2] in batch ``patient % N_BATCHES``, as exact sums of
    int64 fixed point (see ``_add_exact``).

    Rates accrue exactly over each sojourn in continuous time (treatment costs over the
    expected time on treatment given the sojourn); entry costs and QALY changes at
    entry; the death cost at death. Life-years are discounted at the QALY rate.
    Utilities follow the trend 1 + b1 t + b2 t^2 (t months since the start) when set.
    """
    path_state, path_enter, path_exit, _ = path
    rate_c = econ_globals[0]
    rate_q = econ_globals[1]
    b1 = econ_globals[3]
    b2 = econ_globals[4]
    trend = b1 != 0.0 or b2 != 0.0
    # One rate for costs and QALYs (NICE's reference case): the same exp and expm1 serve
    # both, with the same bits. libm's scalar exp and expm1 are most of what economics cost
    one_rate = rate_c == rate_q
    ly = ly_d = qaly = qaly_d = cost = cost_d = 0.0
    for k in range(n_steps):
        s = path_state[i, k]
        te = path_enter[i, k]
        months = path_exit[i, k] - te
        at_entry_q = np.exp(-rate_q * te)  # discount factors at entry
        at_entry_c = at_entry_q if one_rate else np.exp(-rate_c * te)
        months_dq = _discounted_months(te, path_exit[i, k], rate_q, at_entry_q)
        months_dc = (
            months_dq if one_rate else _discounted_months(te, path_exit[i, k], rate_c, at_entry_c)
        )
        ly += months
        ly_d += months_dq
        if trend:  # age-adjusted utilities: integrate the trend exactly too
            q_months = _trend_months(te, path_exit[i, k], 0.0, b1, b2)
            q_months_d = _trend_months(te, path_exit[i, k], rate_q, b1, b2)
        else:
            q_months = months
            q_months_d = months_dq
        qaly += state_econ[s, STATE_QALY] * q_months + state_econ[s, STATE_ENTRY_QALY]
        qaly_d += (
            state_econ[s, STATE_QALY] * q_months_d + state_econ[s, STATE_ENTRY_QALY] * at_entry_q
        )
        cost += state_econ[s, STATE_COST] * months + state_econ[s, STATE_ENTRY_COST]
        cost_d += (
            state_econ[s, STATE_COST] * months_dc + state_econ[s, STATE_ENTRY_COST] * at_entry_c
        )
        tx = state_econ[s, STATE_TREATMENT_COST]
        if tx != 0.0:
            # On treatment until the first of the exit, the stopping rule and an early stop
            # at constant hazard `stop` independent of the sojourn: the expected months on
            # treatment given the sojourn, int_0^m e^(-stop u) du, exact in the mean
            on = min(months, state_econ[s, STATE_TREATMENT_MAX])
            stop = state_econ[s, STATE_TREATMENT_STOP_RATE]
            cost += tx * _discounted_months(0.0, on, stop, 1.0)
            cost_d += tx * at_entry_c * _discounted_months(0.0, on, stop + rate_c, 1.0)
    if death_time < np.inf:
        cost += econ_globals[2]
        cost_d += econ_globals[2] * np.exp(-rate_c * death_time)
    b = patient % N_BATCHES
    _add_exact(out, r, q, ECON_LY, b, _fixed(ly / 12.0, ECON_SCALE_LY))
    _add_exact(out, r, q, ECON_LY_DISC, b, _fixed(ly_d / 12.0, ECON_SCALE_LY))
    _add_exact(out, r, q, ECON_QALY, b, _fixed(qaly, ECON_SCALE_LY))
    _add_exact(out, r, q, ECON_QALY_DISC, b, _fixed(qaly_d, ECON_SCALE_LY))
    _add_exact(out, r, q, ECON_COST, b, _fixed(cost, ECON_SCALE_COST))
    _add_exact(out, r, q, ECON_COST_DISC, b, _fixed(cost_d, ECON_SCALE_COST))


# Up to this many covariates the 1/multipliers of every covariate pattern are tabled once
# per task (2^n_cov x n_clocks), so a patient costs a row copy instead of an exp a clock.
MAX_TABLED_COVARIATES = 8


@njit(inline="always", nogil=True, error_model="numpy")
def _inv_multiplier(has, c, cov_log_hr, inv_hr):
    """1 / (hazard multiplier) of clock c for covariate pattern ``has`` (bit k: has k)."""
    lin = 0.0
    for k in range(cov_log_hr.shape[1]):
        if has & (1 << k):
            lin += cov_log_hr[c, k]
    return inv_hr[c] * np.exp(-lin)


@njit(nogil=True, error_model="numpy")
def _multiplier_table(cov_log_hr, inv_hr):
    """float64 (2^n_cov, n_clocks): ``_inv_multiplier`` of every pattern, or no rows when
    there are no covariates or more than MAX_TABLED_COVARIATES (then computed per patient)."""
    n_cov = cov_log_hr.shape[1]
    n_clocks = inv_hr.shape[0]
    n_patterns = 1 << n_cov if 0 < n_cov <= MAX_TABLED_COVARIATES else 0
    table = np.empty((n_patterns, n_clocks))
    for has in range(n_patterns):
        for c in range(n_clocks):
            table[has, c] = _inv_multiplier(has, c, cov_log_hr, inv_hr)
    return table


@njit(nogil=True, error_model="numpy")
def _block_setup(
    seed, draw_idx, p_lo, n, cov_prevalence, cov_log_hr, inv_hr, table, keys, inv_mult
):
    """Stream keys of patients p_lo..p_lo+n-1 and, with covariates, 1/multiplier per clock
    (without covariates walk_block reads 1/hr directly), from ``table``
    (``_multiplier_table``) when it has rows."""
    n_cov = cov_prevalence.shape[0]
    n_clocks = inv_hr.shape[0]
    for i in range(n):  # a SIMD loop
        keys[i] = patient_key(seed, draw_idx, p_lo + i)
    if n_cov == 0:
        return
    tabled = table.shape[0] > 0
    for i in range(n):
        key = keys[i]
        has = 0  # bit k set: the patient has covariate k (n_cov <= 63, checked by the model)
        for k in range(n_cov):
            if uniform(key, k) < cov_prevalence[k]:
                has |= 1 << k
        for c in range(n_clocks):
            inv_mult[i, c] = (
                table[has, c] if tabled else _inv_multiplier(has, c, cov_log_hr, inv_hr)
            )


@njit(nogil=True)
def _work_arrays(max_steps, n_clocks, n_cov):
    """Per-thread scratch for walk_block (inv_mult has no columns without covariates)."""
    n_items = BLOCK * n_clocks + SIMD_PAD
    keys = np.empty(BLOCK, np.uint64)
    inv_mult = np.empty((BLOCK, n_clocks if n_cov > 0 else 0))
    work_k = np.zeros(n_items, np.uint64)  # zeros: the SIMD padding reads finite numbers
    work_i = np.zeros((3, n_items), np.uint32)  # unsigned: indexing skips the wraparound
    work_f = np.zeros((8, n_items))
    path_state = np.empty((BLOCK, max_steps), np.int64)
    path_enter = np.empty((BLOCK, max_steps))
    path_exit = np.empty((BLOCK, max_steps))
    path_event = np.empty((BLOCK, max_steps), np.int64)
    n_steps = np.empty(BLOCK, np.int64)
    death = np.empty(BLOCK)
    return (
        keys,
        inv_mult,
        (work_k, work_i, work_f),
        (path_state, path_enter, path_exit, path_event),
        n_steps,
        death,
    )


@njit(nogil=True)
def _records_path(tally_sink):
    """Whether the walks must record the path: for an event log (no tally sink), the
    economics, or histograms read from the path (see ``simulate_kernel``)."""
    if tally_sink is None:
        return True
    return tally_sink[5].shape[0] > 0 or (tally_sink[2] != 0).any()


@njit(nogil=True, error_model="numpy")
def _drain_block(
    tally_sink, path_sink, task, q, start_state, b_lo, n, p_lo, horizon, path, n_steps, death,
    econ, task_tally,
):  # fmt: skip
    """Hand a walked block (patients b_lo .. b_lo + n of sequence q) to the run's sink (see
    ``simulate_kernel``): reductions into row ``task`` of the tally sink (through
    ``task_tally``, see ``_task_tally``), with ``econ`` = (state_econ, econ_globals) of the
    task's draw, or the paths copied out per patient (patient p_lo is row 0 of the path
    sink). The other sink is None, and numba leaves its branch out (it prunes a branch on
    ``x is None`` only where x is None).
    """
    if tally_sink is not None:
        inv_width, _, from_path, hist, _, econ_out = tally_sink
        flat, offset, _ = task_tally
        state_econ, econ_globals = econ
        with_econ = econ_out.shape[0] > 0
        n_bins = hist.shape[3]
        # One loop per reduction: a loop body holding them all ran ~10 % slower.
        if with_econ:
            for i in range(n):
                _accrue(
                    i, b_lo + i, n_steps[i], death[i], path, state_econ, econ_globals, econ_out,
                    task, q,
                )  # fmt: skip
        if from_path[q]:
            if offset[TALLY_ENTRY_TIME, start_state] != NOT_KEPT:  # all enter it at time 0
                flat[offset[TALLY_ENTRY_TIME, start_state]] += n
            for i in range(n):
                _tally_path(i, n_steps[i], death[i], horizon, path, inv_width, n_bins, task_tally)
        elif offset[TALLY_OS_GIVEN_ENTRY, start_state] != NOT_KEPT:
            # all the sequence keeps (a PSA): no path, no loop over it
            o = offset[TALLY_OS_GIVEN_ENTRY, start_state]
            last = np.uint64(n_bins - 1)
            for i in range(n):
                _add_os(flat, o, death[i], horizon, inv_width, last)
    if path_sink is not None:
        out_state, out_enter, out_exit, out_event, out_n_steps, out_death = path_sink
        path_state, path_enter, path_exit, path_event = path
        for i in range(n):
            p = b_lo + i - p_lo
            for k in range(n_steps[i]):
                out_state[q, p, k] = path_state[i, k]
                out_enter[q, p, k] = path_enter[i, k]
                out_exit[q, p, k] = path_exit[i, k]
                out_event[q, p, k] = path_event[i, k]
            out_n_steps[q, p] = n_steps[i]
            out_death[q, p] = death[i]


@njit(parallel=True, nogil=True, cache=True, error_model="numpy")
def simulate_kernel(
    seed,
    draw_lo,
    common_streams,
    patient_lo,
    n_patients,
    n_rows,
    seq_start_state,
    horizon,
    max_steps,
    stride,
    structure,
    numbers,
    exact_families,
    competing_clocks,
    tally_sink,
    path_sink,
):
    """Simulate patients [patient_lo, patient_lo + n_patients) of every draw through every
    sequence, into one sink.

    ``structure`` and ``numbers`` are the model's arrays in ``STRUCTURE`` and ``NUMBERS``
    order, numbers with the draw as leading axis (n_draws); ``exact_families`` and
    ``competing_clocks`` are None unless the model has non-Weibull clocks or states with
    several clocks (see ``walk_block``; ``simulator.kernel_variant``). Draw d uses the
    streams of global draw draw_lo + d, or of draw_lo for every d when ``common_streams``.

    Each (draw d, row r) pair is one parallel task, t = d * n_rows + r, in which row r
    walks a contiguous share of the patients with the numbers of draw d, block by block,
    so a single draw still runs on every thread. Every walked block goes to the one sink
    that is not None:

    - ``tally_sink`` = (1 / bin_width, slot_of, from_path, hist, exit_counts, econ): adds
      into ``hist[n_draws * n_rows, n_kept, 2, n_bins]`` (int64; [..., 0, :] event times,
      [..., 1, :] censoring times, bins of bin_width months; kind k of state s goes to slot
      ``slot_of[k, s]``, int64 (N_TALLIES, n_states), and is not kept where that is -1;
      ``from_path[q]``, int64 (n_seq,), is 0 where sequence q keeps no histogram but the
      TALLY_OS_GIVEN_ENTRY of its start state, which is then binned without the path, and
      no exit counts), ``exit_counts[n_draws * n_rows, n_states, N_EVENTS + 1]`` (exits by
      event of the sequences tallied from the path; the last column counts patients still
      in the state at the horizon) and, when it has rows,
      ``econ[n_draws * n_rows, n_seq, N_ECON, N_BATCHES, 2]`` (int64 (hi, lo) exact sums,
      see ``_accrue``; every patient's values within ``econ_range_problem``'s bound), each
      task into its own row t: no races, and, the counts being integers, the sum over rows
      does not depend on n_rows (the econ sums once made canonical again:
      ``simulator.econ_sum``).
    - ``path_sink`` = (state, enter, exit, event, n_steps, death): the event log of one draw,
      ``state/enter/exit/event[n_seq, n_patients, max_steps]``, ``n_steps[n_seq,
      n_patients]`` and ``death[n_seq, n_patients]`` (inf when alive at the horizon).

    Jit-compiled; inputs are not validated.
    """
    cov_prevalence, cov_log_hr, clock_params, clock_hr, dest_cumprob, state_econ, econ_globals = (
        numbers
    )
    counter_base = cov_prevalence.shape[1]
    record_path = _records_path(tally_sink)
    for task in prange(clock_params.shape[0] * n_rows):
        d = task // n_rows
        r = task % n_rows
        lo = patient_lo + (n_patients * r) // n_rows
        hi = patient_lo + (n_patients * (r + 1)) // n_rows
        tables = draw_tables(structure, clock_params[d], clock_hr[d], dest_cumprob[d])
        # the draw's slices, taken once per task: per patient they are costly
        draw_params, prevalence, log_hr = clock_params[d], cov_prevalence[d], cov_log_hr[d]
        econ = (state_econ[d], econ_globals[d])
        keys, inv_mult, scratch, path, n_steps, death = _work_arrays(
            max_steps, clock_hr.shape[1], counter_base
        )
        task_tally = _task_tally(tally_sink, task)
        table = _multiplier_table(log_hr, tables[3])
        stream = draw_lo + (0 if common_streams else d)
        for b_lo in range(lo, hi, BLOCK):
            n = min(BLOCK, hi - b_lo)
            _block_setup(
                seed, stream, b_lo, n, prevalence, log_hr, tables[3], table, keys, inv_mult
            )
            for q in range(seq_start_state.shape[0]):
                walk_block(
                    competing_clocks,
                    keys,
                    n,
                    seq_start_state[q],
                    horizon,
                    inv_mult,
                    structure,
                    _exact_params(exact_families, draw_params),
                    tables,
                    counter_base,
                    stride,
                    scratch,
                    record_path,
                    path,
                    n_steps,
                    death,
                )
                _drain_block(
                    tally_sink, path_sink, task, q, seq_start_state[q], b_lo, n, patient_lo,
                    horizon, path, n_steps, death, econ, task_tally,
                )  # fmt: skip
        if tally_sink is not None:
            exit_counts = tally_sink[4]
            for lane in range(EXIT_LANES):
                exit_counts[task] += task_tally[2][lane]
