"""Survival curves of a compiled model by numerical convolution on a time grid, all draws at once.

A sequence is an acyclic semi-Markov model: each state runs competing clocks
that reset on entry, the first to ring ends the sojourn and a cause split picks
the destination. The probability of being alive at time t from the start of a
sequence is then a sum over states of (entry-time density) convolved with (the
state's sojourn survival), and the entry densities follow from the exit
densities of the states before, in topological order. This module evaluates
that on the grid ``t_j = j * step`` (months) for every parameter draw of a
``ModelArrays`` at once: survival functions are evaluated as (draws, grid)
arrays and the convolutions are batched FFTs along the grid axis.

Discretisation (as ``simseq.psa.os_median_by_quadrature``, which this
generalises): the start state is entered at t = 0 and its exits are counted per
grid step, the mass of each step placed at the step's middle; a later state
entered in step k is entered at t_k + step/2, so its exits are counted over
sojourns in [(i - 1/2) step, (i + 1/2) step] and land, again, in step k + i at
its middle. Every mass is an exact difference of survival values; only where
in its step it falls is approximated, so curves and medians are accurate to
O(step^2) (at 0.05 months the base-case OS medians move by 3e-5 to 7e-5 months
against a 4x finer grid).

Competing clocks: the exit mass of a state in a step is exact (its survival is
the product of its clocks'), and is split between clocks i in proportion to
(F_i(b) - F_i(a)) prod_{j != i} S_j(midpoint), the integral of the cause-specific
density f_i(u) prod_{j != i} S_j(u) over the step to O(step^3).

Population covariates (binary, drawn once per patient) multiply clock hazards by
exp(sum log HR); the curve is the mixture over all 2^n_cov covariate patterns
weighted by their prevalences, exact but exponential in n_cov, so at most
``MAX_COVARIATES`` are accepted.

Every operation is row-wise along the draw axis (no reduction across draws), so
a draw's curve is bit for bit the same whichever other draws are computed with
it. Draws are processed in chunks to bound memory.
"""

import dataclasses
import math

import numpy as np
import scipy.fft

from simseq.distributions import FAMILIES_BY_CODE
from simseq.engine.codes import STATE_DEAD
from simseq.model import DRAW_ARRAYS, ModelArrays

QUAD_STEP = 0.05  # months: the grid of simseq.psa's calibration quadrature (error O(step^2))
MAX_COVARIATES = 8  # 2^8 = 256 covariate patterns, each a full propagation
MAX_GRID = 2_000_000  # grid points; beyond this a step is surely a unit mistake
# Elements per (draws x points) array of one chunk: 0.5 MB of float64, so that the dozen
# arrays a propagation keeps live stay in cache (2-3x faster than 8 MB chunks)
_CHUNK_ELEMENTS = 2**16

# Steps of os_median's first grid (25.6 months at 0.05): most OS medians a calibration
# meets lie below it; those that do not are searched on 2x, 4x, ... as many steps
FIRST_STAGE = 512


def take_draws(model: ModelArrays, rows) -> ModelArrays:
    """The model restricted to draws ``rows`` (int (m,), any order, repeats allowed)."""
    rows = np.asarray(rows, np.int64)
    return dataclasses.replace(
        model, **{k: np.ascontiguousarray(getattr(model, k)[rows]) for k in DRAW_ARRAYS}
    )


def time_grid(horizon: float, step: float = QUAD_STEP) -> np.ndarray:
    """The grid ``t_j = j * step``, j = 0 .. ceil(horizon / step): float64 (n_grid,), months."""
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon must be finite and > 0 months, got {horizon}")
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step must be finite and > 0 months, got {step}")
    n = int(math.ceil(horizon / step))
    if n + 1 > MAX_GRID:
        raise ValueError(
            f"a {horizon:g}-month horizon in steps of {step:g} months needs {n + 1:,} grid "
            f"points; at most {MAX_GRID:,} (a larger step?)"
        )
    return np.arange(n + 1) * step


def quadrature_problem(model: ModelArrays) -> str | None:
    """Why quadrature would not be exact for ``model`` (a message), or None if it is."""
    for q, seq in enumerate(model.seq_names):
        clocks = _clocks_of(model, np.flatnonzero(model.state_seq_idx == q))
        acting = _acting(model, clocks)
        if acting.size > MAX_COVARIATES:
            names = ", ".join(model.cov_names[k] for k in acting)
            return (
                f"{acting.size} population covariates ({names}) act on sequence {seq!r}; "
                f"quadrature mixes over all 2^n covariate patterns and accepts at most "
                f"{MAX_COVARIATES} (simulate instead)"
            )
    unknown = sorted(set(model.clock_family.tolist()) - set(FAMILIES_BY_CODE))
    if unknown:
        return f"unknown family codes {unknown} in clock_family"
    return None


def _clocks_of(model: ModelArrays, states) -> list[int]:
    """The clocks of ``states``, in state order."""
    return [c for s in states for c in range(model.state_clock_lo[s], model.state_clock_hi[s])]


def _acting(model: ModelArrays, clocks: list[int] | None) -> np.ndarray:
    """Indices of the covariates with a hazard ratio on one of ``clocks`` in any draw (all
    covariates when ``clocks`` is None)."""
    if clocks is None:
        return np.arange(len(model.cov_names))
    return np.flatnonzero((model.cov_log_hr[:, clocks, :] != 0.0).any(axis=(0, 1)))


def _check_model(model: ModelArrays) -> None:
    problem = quadrature_problem(model)
    if problem is not None:
        raise ValueError(problem)


def covariate_mixture(
    model: ModelArrays, lo: int = 0, hi: int | None = None, clocks: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The covariate patterns as mixture weights and per-clock hazard multipliers, for
    draws lo..hi (default all). With ``clocks``, only the covariates acting on one of
    them (in any draw) make patterns: the others cannot change what those clocks do.

    Returns
    -------
    weights : ndarray(float64, shape=(hi - lo, n_patterns))
        Probability of each pattern (2^n of them for n covariates; pattern p has the k-th
        iff bit k of p is set), from the prevalences; a column of ones without covariates.
    multiplier : ndarray(float64, shape=(hi - lo, n_patterns, n_clocks))
        ``clock_hr * exp(sum_k x_k log HR_ck)``: what multiplies each clock's baseline
        cumulative hazard for a patient with that pattern (as in the engine).
    """
    acting = _acting(model, clocks)
    n_cov = acting.size
    if n_cov > MAX_COVARIATES:
        _check_model(model)
    hi = model.n_draws if hi is None else hi
    n_pat = 1 << n_cov
    has = (np.arange(n_pat)[:, None] >> np.arange(n_cov)[None, :]) & 1  # (n_pat, n_cov)
    prev = model.cov_prevalence[lo:hi][:, acting]  # (m, n_cov)
    log_hr = model.cov_log_hr[lo:hi][:, :, acting]  # (m, n_clocks, n_cov)
    weights = np.ones((hi - lo, n_pat))
    lin = np.zeros((hi - lo, n_pat, model.clock_hr.shape[1]))
    for k in range(n_cov):  # in covariate order, so each row sums the same way
        on = has[:, k].astype(bool)
        weights = weights * np.where(on[None, :], prev[:, k : k + 1], 1.0 - prev[:, k : k + 1])
        lin = lin + np.where(on[None, :, None], log_hr[:, None, :, k], 0.0)
    return weights, model.clock_hr[lo:hi, None, :] * np.exp(lin)


def _sequence_order(model: ModelArrays, seq_idx: int) -> list[int]:
    """The states reachable from the start of sequence ``seq_idx``, each after every state
    that can lead to it (model.compile_model has refused cycles)."""
    start = int(model.seq_start_state[seq_idx])
    done: set[int] = set()
    post: list[int] = []

    def visit(s: int) -> None:
        done.add(s)
        for c in range(model.state_clock_lo[s], model.state_clock_hi[s]):
            for k in range(model.clock_dest_lo[c], model.clock_dest_hi[c]):
                nxt = int(model.dest_state[k])
                if nxt != STATE_DEAD and nxt not in done:
                    visit(nxt)
        post.append(s)

    visit(start)
    return post[::-1]


def _dest_probability(model: ModelArrays, c: int, k: int, lo: int, hi: int) -> np.ndarray:
    """(hi - lo, 1): probability of destination k once clock c rang, from the cumulative
    probabilities the engine compares its uniform with (so both split alike)."""
    cum = model.dest_cumprob[lo:hi, k]
    if k > model.clock_dest_lo[c]:
        cum = cum - model.dest_cumprob[lo:hi, k - 1]
    return cum[:, None]


class _Hazards:
    """Cumulative hazards of the clocks for draws lo..hi on named sets of times, each
    computed when first asked: the baseline once per chunk, its product with a
    covariate pattern's multiplier once per pattern."""

    def __init__(self, model: ModelArrays, times: dict[str, np.ndarray], lo: int, hi: int):
        self.model, self.times, self.lo, self.hi = model, times, lo, hi
        self._base: dict[tuple[int, str], np.ndarray] = {}
        self._mixed: dict[tuple[int, str], np.ndarray] = {}
        self._multiplier = np.ones((hi - lo, model.clock_hr.shape[1]))

    def set_pattern(self, multiplier: np.ndarray) -> None:
        """Use ``multiplier`` (hi - lo, n_clocks) from now on."""
        self._multiplier = multiplier
        self._mixed.clear()

    def __call__(self, c: int, which: str) -> np.ndarray:
        """H of clock c at ``times[which]``: float64 (hi - lo, len(times[which]))."""
        key = (c, which)
        if key not in self._mixed:
            if key not in self._base:
                m = self.model
                fam = FAMILIES_BY_CODE[int(m.clock_family[c])]
                params = [
                    m.clock_params[self.lo : self.hi, c, i, None]
                    for i in range(len(fam.param_names))
                ]
                t = self.times[which][None, :]
                self._base[key] = np.asarray(fam.cumhaz(t, *params), dtype=np.float64)
            mult = self._multiplier[:, c]
            base = self._base[key]
            # x * 1.0 is x: skipping the pass changes no bit
            self._mixed[key] = base if (mult == 1.0).all() else base * mult[:, None]
        return self._mixed[key]

    def total(self, clocks: list[int], which: str) -> np.ndarray:
        """Sum of the clocks' H at ``times[which]``, in clock order."""
        out = self(clocks[0], which)
        for c in clocks[1:]:
            out = out + self(c, which)
        return out


def _exit_masses(hz: _Hazards, clocks, edge_surv, mids: str, need):
    """Exit masses per step of a state through each clock in ``need``, (m, n) each.

    ``edge_surv``: the state's survival at the n + 1 step edges, (m, n + 1); ``mids``
    names the step middles. The state's exit mass in a step is exact; with several
    clocks it is split in proportion to (S_i(a) - S_i(b)) prod_{j != i} S_j(middle).
    """
    if not need:
        return {}
    mass = -np.diff(edge_surv, axis=1)
    if len(clocks) == 1:
        return {clocks[0]: mass}
    edges = "grid" if mids == "mid" else "mid"  # the start state's steps, or a later one's
    share = {}
    for i in clocks:
        own = np.exp(-hz(i, edges))
        if edges == "mid":  # sojourns [0, 1/2], [1/2, 3/2], ... steps: S_i(0) = 1
            own = np.concatenate((np.ones((own.shape[0], 1)), own), axis=1)
        # the others' H at the middle summed in clock order (not H_total - H_i, which
        # cancels catastrophically where clock i dominates)
        others = hz.total([j for j in clocks if j != i], mids)
        share[i] = -np.diff(own, axis=1) * np.exp(-others)
    norm = share[clocks[0]]
    for c in clocks[1:]:
        norm = norm + share[c]
    # where every share underflowed the exit mass has too: nothing to split
    safe = np.where(norm > 0.0, norm, 1.0)
    return {c: np.where(norm > 0.0, mass * (share[c] / safe), 0.0) for c in need}


def _cmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Complex a * b into a new array, never into a temporary operand.

    NumPy's SIMD complex multiply fuses multiply-adds; written as ``a * b`` with a
    temporary operand of >= 256 KiB, NumPy reuses that operand for the result and
    takes a loop that does not fuse, so a row's product would depend on how many
    rows share the array. An output of its own keeps every size on the same loop
    (``test_draws_and_chunks_do_not_change_a_row`` checks it).
    """
    return np.multiply(a, b, out=np.empty(np.broadcast_shapes(a.shape, b.shape), np.complex128))


def _onward(model: ModelArrays, clocks: list[int]) -> list[int]:
    """The clocks with a destination other than death."""
    return [
        c
        for c in clocks
        if (model.dest_state[model.clock_dest_lo[c] : model.clock_dest_hi[c]] != STATE_DEAD).any()
    ]


def _alive_one_pattern(model: ModelArrays, order: list[int], hz: _Hazards, n: int, size: int):
    """P(alive at t_1 .. t_n), (m, n), for the draws and covariate pattern of ``hz``.

    Point sets of ``hz``: "grid" t_0..t_n, "mid" (k + 1/2) step for k < n, and
    "late_mid" the middles of a later state's exit steps: step/4, then t_1..t_{n-1}.
    """
    start = order[0]
    entry: dict[int, np.ndarray] = {}
    alive = alive_freq = None
    for s in order:
        clocks = list(range(model.state_clock_lo[s], model.state_clock_hi[s]))
        onward = _onward(model, clocks)
        if s == start:  # entered at t = 0
            surv = np.exp(-hz.total(clocks, "grid"))
            alive = surv[:, 1:]
            exits = _exit_masses(hz, clocks, surv, "mid", onward)
        else:  # entered mid-step, e[k] in step k
            e = entry.pop(s, None)
            if e is None or not e.any():
                continue  # no one enters: adds nothing (an FFT of zeros is zeros)
            e_freq = scipy.fft.rfft(e, size, axis=1)
            surv = np.exp(-hz.total(clocks, "mid"))  # at lags (j - k + 1/2) step
            term = _cmul(e_freq, scipy.fft.rfft(surv, size, axis=1))
            alive_freq = term if alive_freq is None else alive_freq + term
            if not onward:
                continue
            edge_surv = np.concatenate((np.ones((surv.shape[0], 1)), surv), axis=1)
            masses = _exit_masses(hz, clocks, edge_surv, "late_mid", onward)
            exits = {
                c: scipy.fft.irfft(_cmul(e_freq, scipy.fft.rfft(m, size, axis=1)), size, axis=1)[
                    :, :n
                ]
                for c, m in masses.items()
            }
        for c, mass in exits.items():
            for k in range(model.clock_dest_lo[c], model.clock_dest_hi[c]):
                d = int(model.dest_state[k])
                if d == STATE_DEAD:
                    continue
                flow = mass * _dest_probability(model, c, k, hz.lo, hz.hi)
                entry[d] = flow if d not in entry else entry[d] + flow
    if alive_freq is not None:
        alive = alive + scipy.fft.irfft(alive_freq, size, axis=1)[:, :n]
    return alive


def _chunks(n_draws: int, n_points: int, chunk_draws: int | None):
    rows = chunk_draws or max(1, _CHUNK_ELEMENTS // n_points)
    for lo in range(0, n_draws, rows):
        yield lo, min(n_draws, lo + rows)


def _os_chunks(model: ModelArrays, seq_idx: int, t: np.ndarray, chunk_draws: int | None):
    """(lo, hi, S) per chunk of draws: OS on the grid ``t``, float64 (hi - lo, len(t))."""
    if not 0 <= seq_idx < len(model.seq_names):
        raise ValueError(
            f"seq_idx {seq_idx} out of range: the model has {len(model.seq_names)} sequences"
        )
    _check_model(model)
    n = len(t) - 1
    step = t[1]
    # (j + 1/2) step and j step exactly as psa.os_median_by_quadrature's lags and grid
    times = {
        "grid": t,
        "mid": (np.arange(n) + 0.5) * step,
        "late_mid": np.concatenate(([0.25 * step], t[1:n])),
    }
    size = scipy.fft.next_fast_len(2 * n - 1, True)  # linear, not circular, convolution
    order = _sequence_order(model, seq_idx)
    clocks = _clocks_of(model, order)
    for lo, hi in _chunks(model.n_draws, n + 1, chunk_draws):
        weights, multiplier = covariate_mixture(model, lo, hi, clocks)
        hz = _Hazards(model, times, lo, hi)
        surv = np.empty((hi - lo, n + 1))
        surv[:, 0] = 1.0
        mixed = None
        for p in range(weights.shape[1]):
            hz.set_pattern(multiplier[:, p])
            alive = _alive_one_pattern(model, order, hz, n, size)
            if weights.shape[1] > 1:
                alive = weights[:, p, None] * alive
            mixed = alive if mixed is None else mixed + alive
        surv[:, 1:] = mixed
        yield lo, hi, surv


def _sojourn_chunks(model: ModelArrays, state_idx: int, t: np.ndarray, chunk_draws: int | None):
    """(lo, hi, S) per chunk of draws: sojourn survival on ``t``, (hi - lo, len(t))."""
    if not 0 <= state_idx < model.n_states:
        raise ValueError(
            f"state_idx {state_idx} out of range: the model has {model.n_states} states"
        )
    _check_model(model)
    clocks = list(range(model.state_clock_lo[state_idx], model.state_clock_hi[state_idx]))
    for lo, hi in _chunks(model.n_draws, len(t), chunk_draws):
        weights, multiplier = covariate_mixture(model, lo, hi, clocks)
        hz = _Hazards(model, {"grid": t}, lo, hi)
        mixed = None
        for p in range(weights.shape[1]):
            hz.set_pattern(multiplier[:, p])
            alive = np.exp(-hz.total(clocks, "grid"))
            if weights.shape[1] > 1:
                alive = weights[:, p, None] * alive
            mixed = alive if mixed is None else mixed + alive
        yield lo, hi, mixed


def _assemble(n_draws: int, t: np.ndarray, chunks) -> np.ndarray:
    surv = np.empty((n_draws, len(t)))
    for lo, hi, part in chunks:
        surv[lo:hi] = part
    return surv


def os_survival(
    model: ModelArrays,
    seq_idx: int,
    horizon: float,
    step: float = QUAD_STEP,
    *,
    chunk_draws: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Probability of being alive at each grid time from the start of a sequence, per draw.

    Parameters
    ----------
    model : ModelArrays
        A compiled model with any number of draws and at most ``MAX_COVARIATES``
        population covariates.
    seq_idx : int
        Index of the sequence in ``model.seq_names``.
    horizon, step : float
        Months: the grid runs from 0 to ``ceil(horizon / step) * step``.
    chunk_draws : int, optional
        Draws per chunk (default: ~1e5 grid values per array, cache-sized); does not
        change the result.

    Returns
    -------
    t : ndarray(float64, shape=(n_grid,))
        The grid, months (``time_grid``).
    S : ndarray(float64, shape=(n_draws, n_grid))
        Overall survival at ``t``; ``S[:, 0] == 1``. Accurate to O(step^2).
    """
    t = time_grid(horizon, step)
    return t, _assemble(model.n_draws, t, _os_chunks(model, seq_idx, t, chunk_draws))


def os_median(
    model: ModelArrays,
    seq_idx: int,
    horizon: float,
    step: float = QUAD_STEP,
    *,
    chunk_draws: int | None = None,
) -> np.ndarray:
    """The median of ``os_survival``'s curves, found without holding every curve and
    mostly without computing them to the horizon.

    OS up to time t does not depend on the grid beyond t (every sum is causal), so the
    median is searched on growing grids: ``FIRST_STAGE`` steps, then twice as many,
    up to the horizon, and a draw moves on only while its curve stays above 1/2. A
    draw's median is the full grid's up to the rounding of the shorter FFTs (~1e-15
    months), and still depends on that draw alone. Most medians of a calibration
    search are found on the first grid (25.6 months at 0.05): 4x fewer points.

    Returns
    -------
    ndarray(float64, shape=(n_draws,))
        Months; inf where OS stays above 1/2 to the horizon.
    """
    t_full = time_grid(horizon, step)
    n = len(t_full) - 1
    out = np.full(model.n_draws, np.inf)
    pending = np.arange(model.n_draws)
    m = min(n, FIRST_STAGE)
    while pending.size:
        t = t_full[: m + 1]
        sub = model if pending.size == model.n_draws else take_draws(model, pending)
        median = np.empty(pending.size)
        for lo, hi, surv in _os_chunks(sub, seq_idx, t, chunk_draws):
            median[lo:hi] = median_of(t, surv)
        settled = ~np.isinf(median) | (m == n)
        out[pending[settled]] = median[settled]
        pending = pending[~settled]
        m = min(n, 2 * m)
    return out


def os_landmark(
    model: ModelArrays,
    seq_idx: int,
    month: float,
    step: float = QUAD_STEP,
    *,
    chunk_draws: int | None = None,
) -> np.ndarray:
    """OS at ``month`` from the start of a sequence, per draw: ``os_survival`` to ``month``,
    linear between the two grid points around it.

    Returns
    -------
    ndarray(float64, shape=(n_draws,))
        Probability alive at ``month`` (months, > 0). Accurate to O(step^2).
    """
    t, surv = os_survival(model, seq_idx, month, step, chunk_draws=chunk_draws)
    k = min(int(np.searchsorted(t, month)), len(t) - 1)  # t[k - 1] < month <= t[k]
    a = (month - t[k - 1]) / (t[k] - t[k - 1])
    return (1.0 - a) * surv[:, k - 1] + a * surv[:, k]


def sojourn_survival(
    model: ModelArrays,
    state_idx: int,
    horizon: float,
    step: float = QUAD_STEP,
    *,
    chunk_draws: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Probability of still being in a state at each grid time after entering it, per draw
    (time on a line: the survival of the minimum of the state's clocks, mixed over
    covariate patterns). Exact at the grid points.

    Returns
    -------
    t : ndarray(float64, shape=(n_grid,))
        The grid, months.
    S : ndarray(float64, shape=(n_draws, n_grid))
        Sojourn survival at ``t``; ``S[:, 0] == 1``.
    """
    t = time_grid(horizon, step)
    return t, _assemble(model.n_draws, t, _sojourn_chunks(model, state_idx, t, chunk_draws))


def sojourn_median(
    model: ModelArrays,
    state_idx: int,
    horizon: float,
    step: float = QUAD_STEP,
    *,
    chunk_draws: int | None = None,
) -> np.ndarray:
    """``median_of(*sojourn_survival(...))`` chunk by chunk: float64 (n_draws,), months."""
    t = time_grid(horizon, step)
    out = np.empty(model.n_draws)
    for lo, hi, surv in _sojourn_chunks(model, state_idx, t, chunk_draws):
        out[lo:hi] = median_of(t, surv)
    return out


def median_of(t: np.ndarray, S: np.ndarray) -> np.ndarray:
    """The first time each curve falls to 0.5, linear between grid points.

    Parameters
    ----------
    t : ndarray(float64, shape=(n_grid,))
        Increasing times, months.
    S : ndarray(float64, shape=(n_draws, n_grid))
        Survival curves at ``t``, each starting above 0.5.

    Returns
    -------
    ndarray(float64, shape=(n_draws,))
        Months; inf where a curve stays above 0.5, nan where it is nan before crossing.
        The interpolation is ``simseq.psa.os_median_by_quadrature``'s.
    """
    S = np.asarray(S, dtype=np.float64)
    stop = (S <= 0.5) | np.isnan(S)
    found = stop.any(axis=1)
    j = np.argmax(stop, axis=1)  # first crossing (0 where none: masked below)
    rows = np.arange(S.shape[0])
    jp = np.maximum(j - 1, 0)
    s_prev, s_j = S[rows, jp], S[rows, j]
    t_prev = t[jp]
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = t_prev + (s_prev - 0.5) / (s_prev - s_j) * (t[j] - t_prev)
    crossing = np.where(j == 0, t[0], crossing)  # starts at or below 0.5
    return np.where(found, np.where(np.isnan(s_j), np.nan, crossing), np.inf)
