"""The trajectory loop and its streaming reductions.

A model reaches the kernels as flat arrays (built by ``simseq.model``):

states   ``state_clock_lo/hi[n_states]``: the clocks running in each state.
clocks   ``clock_family[n_clocks]``, ``clock_params[n_clocks, N_PARAMS]``,
         ``clock_hr[n_clocks]`` (proportional-hazards multiplier),
         ``clock_dest_lo/hi[n_clocks]``: competing clocks; the first to ring ends
         the sojourn (latent competing risks).
dests    ``dest_state[n_dests]`` (STATE_DEAD for death), ``dest_event[n_dests]``,
         ``dest_cumprob[n_dests]``: where a ringing clock sends the patient,
         chosen by one uniform against cumulative probabilities (a cause split).
covars   ``cov_prevalence[n_cov]``, ``cov_log_hr[n_clocks, n_cov]``: binary
         patient characteristics drawn once per patient, acting on clock hazards.

Times are months from the start of the sequence, censored at ``horizon``.
Patient ``p`` of parameter draw ``draw_idx`` always uses the stream keyed by
(seed, draw_idx, p), and every sequence of a scenario is walked with that same
stream, so results are independent of blocking and sequences share common
random numbers.
"""

import numpy as np
from numba import njit, prange

from simseq.engine.codes import (
    EVENT_DEATH,
    EVENT_PROGRESSION,
    N_EVENTS,
    TALLY_ENTRY_TIME,
    TALLY_EXIT_TIME,
    TALLY_OS_FROM_ENTRY,
    TALLY_OS_GIVEN_ENTRY,
    TALLY_PPS,
    TALLY_SOJOURN,
)
from simseq.engine.rng import patient_key, uniform
from simseq.engine.sample import time_at_cumhaz


@njit(nogil=True)
def _draw_covariates(key, cov_prevalence, cov_x):
    """Fill cov_x[n_cov] with 0/1 flags from the patient's first n_cov uniforms."""
    for k in range(cov_x.shape[0]):
        cov_x[k] = 1.0 if uniform(key, k) < cov_prevalence[k] else 0.0


@njit(nogil=True)
def walk_patient(
    key,
    start_state,
    horizon,
    cov_x,
    cov_log_hr,
    state_clock_lo,
    state_clock_hi,
    clock_family,
    clock_params,
    clock_hr,
    clock_dest_lo,
    clock_dest_hi,
    dest_state,
    dest_event,
    dest_cumprob,
    stride,
    path_state,
    path_enter,
    path_exit,
    path_event,
):
    """Walk one patient from ``start_state`` until death or the horizon.

    Fills ``path_*[:n_steps]`` (state, entry time, exit time, exit event or -1
    when still in the state at the horizon) and returns ``(n_steps,
    death_time)`` with ``death_time = inf`` when alive at the horizon.
    Jit-compiled; inputs are not validated.
    """
    n_cov = cov_x.shape[0]
    max_steps = path_state.shape[0]
    t = 0.0
    s = start_state
    death_time = np.inf
    n_steps = 0
    while n_steps < max_steps:
        base = n_cov + n_steps * stride
        t_first = np.inf
        c_first = -1
        for c in range(state_clock_lo[s], state_clock_hi[s]):
            mult = clock_hr[c]
            if n_cov > 0:
                lin = 0.0
                for k in range(n_cov):
                    lin += cov_log_hr[c, k] * cov_x[k]
                mult *= np.exp(lin)
            e = -np.log(uniform(key, base + c - state_clock_lo[s])) / mult
            tc = time_at_cumhaz(
                clock_family[c], clock_params[c, 0], clock_params[c, 1], clock_params[c, 2], e
            )
            if tc < t_first:
                t_first = tc
                c_first = c
        path_state[n_steps] = s
        path_enter[n_steps] = t
        t_exit = t + t_first
        if c_first < 0 or t_exit >= horizon:
            path_exit[n_steps] = horizon
            path_event[n_steps] = -1
            n_steps += 1
            break
        d = clock_dest_lo[c_first]
        last = clock_dest_hi[c_first] - 1
        if d < last:
            u = uniform(key, base + stride - 1)
            while d < last and u > dest_cumprob[d]:
                d += 1
        path_exit[n_steps] = t_exit
        path_event[n_steps] = dest_event[d]
        n_steps += 1
        t = t_exit
        if dest_event[d] == EVENT_DEATH:
            death_time = t
            break
        s = dest_state[d]
    return n_steps, death_time


@njit(inline="always", nogil=True)
def _bin(t, inv_width, n_bins):
    k = int(t * inv_width)
    return k if k < n_bins else n_bins - 1


@njit(nogil=True)
def _tally_path(
    n_steps,
    death_time,
    horizon,
    path_state,
    path_enter,
    path_exit,
    path_event,
    inv_width,
    tally_on,
    hist,
    exit_counts,
):
    """Add one walked path to hist[N_TALLIES, n_states, 2, n_bins] (kinds with tally_on[k]
    set) and exit_counts."""
    n_bins = hist.shape[3]
    dead = death_time < np.inf
    for i in range(n_steps):
        s = path_state[i]
        te = path_enter[i]
        tx = path_exit[i]
        ev = path_event[i]
        exit_counts[s, ev if ev >= 0 else N_EVENTS] += 1
        if tally_on[TALLY_ENTRY_TIME]:
            hist[TALLY_ENTRY_TIME, s, 0, _bin(te, inv_width, n_bins)] += 1
        if tally_on[TALLY_SOJOURN]:
            if ev >= 0:
                hist[TALLY_SOJOURN, s, 0, _bin(tx - te, inv_width, n_bins)] += 1
            else:
                hist[TALLY_SOJOURN, s, 1, _bin(horizon - te, inv_width, n_bins)] += 1
        if tally_on[TALLY_EXIT_TIME] and ev >= 0:
            hist[TALLY_EXIT_TIME, s, 0, _bin(tx, inv_width, n_bins)] += 1
        if tally_on[TALLY_OS_FROM_ENTRY]:
            if dead:
                hist[TALLY_OS_FROM_ENTRY, s, 0, _bin(death_time - te, inv_width, n_bins)] += 1
            else:
                hist[TALLY_OS_FROM_ENTRY, s, 1, _bin(horizon - te, inv_width, n_bins)] += 1
        if tally_on[TALLY_OS_GIVEN_ENTRY]:
            if dead:
                hist[TALLY_OS_GIVEN_ENTRY, s, 0, _bin(death_time, inv_width, n_bins)] += 1
            else:
                hist[TALLY_OS_GIVEN_ENTRY, s, 1, n_bins - 1] += 1
        if tally_on[TALLY_PPS] and ev == EVENT_PROGRESSION:
            if dead:
                hist[TALLY_PPS, s, 0, _bin(death_time - tx, inv_width, n_bins)] += 1
            else:
                hist[TALLY_PPS, s, 1, _bin(horizon - tx, inv_width, n_bins)] += 1


@njit(parallel=True, nogil=True, cache=True)
def simulate_tallies(
    seed,
    draw_idx,
    patient_lo,
    n_patients,
    seq_start_state,
    horizon,
    bin_width,
    max_steps,
    stride,
    tally_on,
    cov_prevalence,
    cov_log_hr,
    state_clock_lo,
    state_clock_hi,
    clock_family,
    clock_params,
    clock_hr,
    clock_dest_lo,
    clock_dest_hi,
    dest_state,
    dest_event,
    dest_cumprob,
    hist_out,
    exit_counts_out,
):
    """Simulate patients [patient_lo, patient_lo + n_patients) through every sequence.

    Adds into ``hist_out[n_blocks, N_TALLIES, n_states, 2, n_bins]`` (int64;
    [..., 0, :] event times, [..., 1, :] censoring times, bins of
    ``bin_width`` months) and ``exit_counts_out[n_blocks, n_states,
    N_EVENTS + 1]`` (exits by event; the last column counts patients still in
    the state at the horizon). Block b owns row b, so there are no races and,
    the counts being integers, the sum over blocks does not depend on n_blocks.
    Jit-compiled; inputs are not validated.
    """
    n_blocks = hist_out.shape[0]
    n_seq = seq_start_state.shape[0]
    inv_width = 1.0 / bin_width
    for b in prange(n_blocks):
        lo = patient_lo + (n_patients * b) // n_blocks
        hi = patient_lo + (n_patients * (b + 1)) // n_blocks
        path_state = np.empty(max_steps, np.int64)
        path_enter = np.empty(max_steps)
        path_exit = np.empty(max_steps)
        path_event = np.empty(max_steps, np.int64)
        cov_x = np.empty(cov_prevalence.shape[0])
        for p in range(lo, hi):
            key = patient_key(seed, draw_idx, p)
            _draw_covariates(key, cov_prevalence, cov_x)
            for q in range(n_seq):
                n_steps, death_time = walk_patient(
                    key,
                    seq_start_state[q],
                    horizon,
                    cov_x,
                    cov_log_hr,
                    state_clock_lo,
                    state_clock_hi,
                    clock_family,
                    clock_params,
                    clock_hr,
                    clock_dest_lo,
                    clock_dest_hi,
                    dest_state,
                    dest_event,
                    dest_cumprob,
                    stride,
                    path_state,
                    path_enter,
                    path_exit,
                    path_event,
                )
                _tally_path(
                    n_steps,
                    death_time,
                    horizon,
                    path_state,
                    path_enter,
                    path_exit,
                    path_event,
                    inv_width,
                    tally_on,
                    hist_out[b],
                    exit_counts_out[b],
                )


@njit(parallel=True, nogil=True, cache=True)
def simulate_paths(
    seed,
    draw_idx,
    patient_lo,
    seq_start_state,
    horizon,
    stride,
    cov_prevalence,
    cov_log_hr,
    state_clock_lo,
    state_clock_hi,
    clock_family,
    clock_params,
    clock_hr,
    clock_dest_lo,
    clock_dest_hi,
    dest_state,
    dest_event,
    dest_cumprob,
    out_state,
    out_enter,
    out_exit,
    out_event,
    out_n_steps,
    out_death,
):
    """Per-patient event log for small runs.

    Fills ``out_state/out_enter/out_exit/out_event[n_seq, n_patients,
    max_steps]``, ``out_n_steps[n_seq, n_patients]`` and ``out_death[n_seq,
    n_patients]`` (inf when alive at the horizon) for patients
    [patient_lo, patient_lo + n_patients), with the same streams as
    ``simulate_tallies``. Jit-compiled; inputs are not validated.
    """
    n_seq, n_patients = out_n_steps.shape
    for i in prange(n_patients):
        key = patient_key(seed, draw_idx, patient_lo + i)
        cov_x = np.empty(cov_prevalence.shape[0])
        _draw_covariates(key, cov_prevalence, cov_x)
        for q in range(n_seq):
            n_steps, death_time = walk_patient(
                key,
                seq_start_state[q],
                horizon,
                cov_x,
                cov_log_hr,
                state_clock_lo,
                state_clock_hi,
                clock_family,
                clock_params,
                clock_hr,
                clock_dest_lo,
                clock_dest_hi,
                dest_state,
                dest_event,
                dest_cumprob,
                stride,
                out_state[q, i],
                out_enter[q, i],
                out_exit[q, i],
                out_event[q, i],
            )
            out_n_steps[q, i] = n_steps
            out_death[q, i] = death_time


@njit(parallel=True, nogil=True, cache=True)
def simulate_os_draws(
    seed,
    draw_lo,
    n_patients,
    seq_start_state,
    horizon,
    bin_width,
    max_steps,
    stride,
    cov_prevalence,
    cov_log_hr,
    state_clock_lo,
    state_clock_hi,
    clock_family,
    clock_params,
    clock_hr,
    clock_dest_lo,
    clock_dest_hi,
    dest_state,
    dest_event,
    dest_cumprob,
    hist_out,
):
    """OS from the start of each sequence, per parameter draw (the PSA shape).

    Numeric model arrays carry the draw as leading axis (n_draws); draw d uses
    streams keyed by (seed, draw_lo + d, patient). Fills ``hist_out[n_draws,
    n_seq, 2, n_bins]`` (events, censored). Parallel over draws: each draw owns
    its row. Jit-compiled; inputs are not validated.
    """
    n_draws = hist_out.shape[0]
    n_seq = seq_start_state.shape[0]
    n_bins = hist_out.shape[3]
    inv_width = 1.0 / bin_width
    for d in prange(n_draws):
        path_state = np.empty(max_steps, np.int64)
        path_enter = np.empty(max_steps)
        path_exit = np.empty(max_steps)
        path_event = np.empty(max_steps, np.int64)
        cov_x = np.empty(cov_prevalence.shape[1])
        for p in range(n_patients):
            key = patient_key(seed, draw_lo + d, p)
            _draw_covariates(key, cov_prevalence[d], cov_x)
            for q in range(n_seq):
                _, death_time = walk_patient(
                    key, seq_start_state[q], horizon, cov_x, cov_log_hr[d],
                    state_clock_lo, state_clock_hi, clock_family, clock_params[d], clock_hr[d],
                    clock_dest_lo, clock_dest_hi, dest_state, dest_event, dest_cumprob[d],
                    stride, path_state, path_enter, path_exit, path_event,
                )  # fmt: skip
                if death_time < np.inf:
                    hist_out[d, q, 0, _bin(death_time, inv_width, n_bins)] += 1
                else:
                    hist_out[d, q, 1, n_bins - 1] += 1
