"""Run the engine over many patients in chunks: threads, progress and the event log.

The kernels in ``simseq.engine.simulate`` do the work; this module allocates
their outputs, splits the patients into chunks (so a progress bar can move and
Ctrl-C is honoured between chunks) and sums the integer reductions, which makes
the result independent of thread count and chunk size.
"""

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

from simseq.engine.codes import (
    ECON_SCALE,
    EVENT_NAMES,
    FAMILY_EXPONENTIAL,
    FAMILY_WEIBULL,
    N_BATCHES,
    N_ECON,
    N_EVENTS,
    N_TALLIES,
)
from simseq.engine.simulate import simulate_os_draws, simulate_paths, simulate_tallies
from simseq.model import ModelArrays, econ_range_problem

if TYPE_CHECKING:
    import pandas

COMPILE_NOTICE = "compiling the simulation engine for this model (once; 10-20 s) ..."
DEFAULT_BIN_WIDTH = 0.02  # months (~0.6 days): medians are interpolated inside a bin
DEFAULT_CHUNK = 1_000_000


@dataclass(frozen=True)
class Tallies:
    """Summed reductions of one simulation (one parameter draw)."""

    hist: np.ndarray
    """int64 (N_TALLIES, n_states, 2, n_bins): [..., 0, :] events, [..., 1, :] censored."""
    exit_counts: np.ndarray
    """int64 (n_states, N_EVENTS + 1): exits by event, the last column still there at horizon."""
    n_patients: int
    bin_width: float  # months
    horizon: float  # months
    econ: np.ndarray | None = None
    """int64 (n_seq, N_ECON, N_BATCHES, 2) exact fixed-point sums as (hi, lo) words (see
    engine.codes; ``econ_values`` converts them), or None."""

    @property
    def n_entered(self) -> np.ndarray:
        """int64 (n_states,): patients who entered each state."""
        return self.exit_counts.sum(axis=1)


def econ_sum(parts: np.ndarray, axis: int = 0) -> np.ndarray:
    """The exact econ sums of disjoint sets of patients, added along ``axis``.

    ``parts``: int64 (..., 2) canonical (hi, lo) sums, hi * 2^32 + lo with lo in
    [0, 2^32) (as the engine leaves them), fewer than 2^31 along ``axis`` so that the
    lo words add up without overflow. The total is made canonical again, which makes it
    the same words for any split of the patients (threads, chunks, tasks): every merge
    goes through here.

    Returns
    -------
    ndarray(int64)
        ``parts``' shape without ``axis`` (which must not be the last).
    """
    total = parts.sum(axis=axis)
    carry = total[..., 1] >> 32  # arithmetic shift: floor division by 2^32
    total[..., 0] += carry
    total[..., 1] &= 0xFFFFFFFF
    return total


def econ_values(econ: np.ndarray) -> np.ndarray:
    """float64 (..., N_ECON, N_BATCHES): sums int64 (..., N_ECON, N_BATCHES, 2) in years and
    currency units. hi * 2^32 is exact in float64 (|hi| < 2^53: any sum below 2^85) and
    adding lo rounds once, so this is the exact sum to double precision, over the scale."""
    hi = econ[..., 0].astype(np.float64)
    return (hi * 2.0**32 + econ[..., 1]) / np.asarray(ECON_SCALE)[:, None]


def check_econ_range(model: ModelArrays, horizon: float) -> None:
    """Raise ValueError with ``econ_range_problem``'s message if a patient's economic
    outcomes could exceed what the engine accumulates exactly."""
    problem = econ_range_problem(model, horizon)
    if problem is not None:
        raise ValueError(problem)


@contextlib.contextmanager
def thread_count(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` numba threads (None: leave as is), then restore."""
    previous = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def kernel_variant(model: ModelArrays) -> tuple:
    """(exact_families, competing_clocks) arguments of the kernels: None unless the model
    has clocks other than Weibull/exponential, or states running several clocks. With
    None, numba leaves that code out of the compiled kernel (see ``walk_block``), which
    keeps the usual compile short; the first model that needs it compiles its variant."""
    exact = not np.isin(model.clock_family, (FAMILY_WEIBULL, FAMILY_EXPONENTIAL)).all()
    competing = bool((model.state_clock_hi - model.state_clock_lo > 1).any())
    return (_NEEDED if exact else None, _NEEDED if competing else None)


_NEEDED = np.zeros(0, np.int64)  # any non-None value: only whether it is None matters


def kernel_ready(kernel, args: tuple) -> bool:
    """True when ``kernel`` has machine code for these arguments' types, compiled in this
    process or in numba's on-disk cache, so calling it costs no 10-20 s compile."""
    sig = tuple(kernel.typeof_pyval(a) for a in args)
    if sig in kernel.overloads:
        return True
    try:  # numba's cache index is private API: if it changes we only warn needlessly
        index = kernel._cache._cache_file._load_index()
    except Exception:  # noqa: BLE001
        return False
    return any(key[0] == sig for key in index)


def n_bins_for(horizon: float, bin_width: float) -> int:
    return int(math.ceil(horizon / bin_width - 1e-9))


def tally_mask(tallies: Iterable[int] | np.ndarray | None, n_states: int) -> np.ndarray:
    """int64 (N_TALLIES, n_states), 1 where the engine keeps histogram (kind, state).

    ``tallies``: None (every kind of every state), TALLY_* codes (those kinds of
    every state), or such a mask already (boolean or 0/1, (N_TALLIES, n_states)).
    """
    if isinstance(tallies, np.ndarray) and tallies.ndim == 2:
        if tallies.shape != (N_TALLIES, n_states):
            raise ValueError(f"tally mask must be ({N_TALLIES}, {n_states}), got {tallies.shape}")
        return np.ascontiguousarray(tallies != 0, dtype=np.int64)
    mask = np.zeros((N_TALLIES, n_states), np.int64)
    mask[list(range(N_TALLIES)) if tallies is None else list(tallies)] = 1
    return mask


def simulate(
    model: ModelArrays,
    n_patients: int,
    seed: int,
    *,
    horizon: float,
    bin_width: float = DEFAULT_BIN_WIDTH,
    draw_idx: int = 0,
    threads: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
    tallies: Iterable[int] | np.ndarray | None = None,
    patient_lo: int = 0,
    on_compile: Callable[[], None] | None = None,
) -> Tallies:
    """Simulate patients ``patient_lo .. patient_lo + n_patients`` through every sequence of
    ``model`` and reduce (tallies of disjoint patient ranges add up: ``merge_tallies``).

    ``progress`` is called with the number of patients finished after each chunk.
    ``tallies`` limits the histograms kept (see ``tally_mask``; default: all); the
    others stay zero, which saves their bookkeeping. ``on_compile`` is called first
    if the engine must be compiled for this model (a cold numba cache).
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    if not horizon > 0:
        raise ValueError(f"horizon must be > 0 months, got {horizon}")
    if not 0 < bin_width <= horizon:
        raise ValueError(f"bin_width must be in (0, horizon], got {bin_width}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    check_econ_range(model, horizon)
    n_bins = n_bins_for(horizon, bin_width)
    tally_on = tally_mask(tallies, model.n_states)
    variant = kernel_variant(model)
    with thread_count(threads):
        n_blocks = numba.get_num_threads()
        hist = np.zeros((n_blocks, N_TALLIES, model.n_states, 2, n_bins), np.int64)
        exits = np.zeros((n_blocks, model.n_states, N_EVENTS + 1), np.int64)
        n_seq = len(model.seq_names)
        econ = np.zeros(
            (n_blocks if model.has_economics else 0, n_seq, N_ECON, N_BATCHES, 2), np.int64
        )
        d = draw_idx if model.n_draws > 1 else 0
        end = patient_lo + n_patients
        for lo in range(patient_lo, end, chunk_size):
            n_chunk = min(chunk_size, end - lo)
            args = (
                seed,
                draw_idx,
                lo,
                n_chunk,
                model.seq_start_state,
                float(horizon),
                float(bin_width),
                model.max_steps,
                model.stride,
                tally_on,
                model.structure,
                model.numbers(d),
                *variant,
                hist,
                exits,
                econ,
            )
            if (
                on_compile is not None
                and lo == patient_lo
                and not kernel_ready(simulate_tallies, args)
            ):
                on_compile()
            simulate_tallies(*args)
            if progress is not None:
                progress(n_chunk)
    return Tallies(
        hist.sum(axis=0),
        exits.sum(axis=0),
        n_patients,
        bin_width,
        horizon,
        econ_sum(econ) if model.has_economics else None,
    )


def merge_tallies(parts: list[Tallies]) -> Tallies:
    """Tallies of disjoint patient ranges, added up (integers: the order does not matter)."""
    first = parts[0]
    econ = None if first.econ is None else econ_sum(np.stack([p.econ for p in parts]))
    return Tallies(
        sum(p.hist for p in parts),
        sum(p.exit_counts for p in parts),
        sum(p.n_patients for p in parts),
        first.bin_width,
        first.horizon,
        econ,
    )


def simulate_trajectories(
    model: ModelArrays, n_patients: int, seed: int, *, horizon: float, draw_idx: int = 0
) -> "pandas.DataFrame":
    """Per-patient event log, one row per sojourn, with the same streams as ``simulate``.

    Columns: sequence, patient, from_state, to_state ("dead", or "" when still
    there at the horizon), event, t_start, t_stop (months from sequence start).
    """
    n_seq = len(model.seq_names)
    shape = (n_seq, n_patients, model.max_steps)
    out_state = np.zeros(shape, np.int64)
    out_enter = np.zeros(shape)
    out_exit = np.zeros(shape)
    out_event = np.zeros(shape, np.int64)
    out_n = np.zeros((n_seq, n_patients), np.int64)
    out_death = np.zeros((n_seq, n_patients))
    d = draw_idx if model.n_draws > 1 else 0
    simulate_paths(
        seed,
        draw_idx,
        0,
        model.seq_start_state,
        float(horizon),
        model.stride,
        model.structure,
        model.numbers(d),
        *kernel_variant(model),
        out_state,
        out_enter,
        out_exit,
        out_event,
        out_n,
        out_death,
    )
    rows = []
    for q, seq in enumerate(model.seq_names):
        for p in range(n_patients):
            n = out_n[q, p]
            for i in range(n):
                ev = out_event[q, p, i]
                if ev < 0:
                    to, event = "", "censored"
                elif ev == EVENT_NAMES.index("death"):
                    to, event = "dead", "death"
                else:
                    to, event = model.state_names[out_state[q, p, i + 1]], EVENT_NAMES[ev]
                rows.append(
                    (
                        seq,
                        p,
                        model.state_names[out_state[q, p, i]],
                        to,
                        event,
                        out_enter[q, p, i],
                        out_exit[q, p, i],
                    )
                )
    import pandas as pd  # only the event log needs pandas (and parquet output)

    return pd.DataFrame(
        rows,
        columns=["sequence", "patient", "from_state", "to_state", "event", "t_start", "t_stop"],
    )


@dataclass(frozen=True)
class DrawTallies:
    """Reductions per parameter draw (the PSA shape)."""

    os_hist: np.ndarray  # int64 (n_draws, n_seq, 2, n_bins): OS from sequence start
    econ: np.ndarray | None
    """int64 (n_draws, n_seq, N_ECON, N_BATCHES, 2) exact sums as in ``Tallies``, or None."""
    n_patients: int  # per draw
    bin_width: float  # months


def simulate_draws(
    model: ModelArrays,
    n_patients: int,
    seed: int,
    *,
    horizon: float,
    bin_width: float = 0.25,
    draw_lo: int = 0,
    threads: int | None = None,
    common_streams: bool = False,
    patient_lo: int = 0,
) -> DrawTallies:
    """OS histograms (and economics, if the model has them) per draw, parallel over draws
    and, when there are fewer draws than threads, over patients too.

    Draw d (0-based within ``model``) uses the streams of global draw
    ``draw_lo + d``, so a PSA split into draw ranges gives the same numbers; with
    ``common_streams`` every draw uses the streams of ``draw_lo`` (common random
    numbers, for one-way sensitivity analysis and sweeps). ``patient_lo`` offsets the
    patients (a patient block of a distributed task; blocks add up).
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    check_econ_range(model, horizon)
    n_bins = n_bins_for(horizon, bin_width)
    n_seq = len(model.seq_names)
    n_draws = model.n_draws
    with thread_count(threads):
        # Split each draw into patient rows when there are fewer draws than threads;
        # rows add up exactly, so the split does not change the numbers.
        n_rows = min(n_patients, -(-numba.get_num_threads() // n_draws))
        hist = np.zeros((n_draws * n_rows, n_seq, 2, n_bins), np.int64)
        n_econ = n_draws * n_rows if model.has_economics else 0
        econ = np.zeros((n_econ, n_seq, N_ECON, N_BATCHES, 2), np.int64)
        simulate_os_draws(
            seed,
            draw_lo,
            common_streams,
            n_patients,
            patient_lo,
            model.seq_start_state,
            float(horizon),
            float(bin_width),
            model.max_steps,
            model.stride,
            model.structure,
            model.numbers(),
            *kernel_variant(model),
            hist,
            econ,
        )
    hist = hist.reshape(n_draws, n_rows, n_seq, 2, n_bins).sum(axis=1)
    if model.has_economics:
        econ = econ_sum(econ.reshape(n_draws, n_rows, n_seq, N_ECON, N_BATCHES, 2), axis=1)
    return DrawTallies(hist, econ if model.has_economics else None, n_patients, bin_width)
