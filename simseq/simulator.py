"""Run the engine over many patients and parameter draws: threads, progress and the event log.

The kernel in ``simseq.engine.simulate`` does the work; this module allocates its
outputs, splits the patients into chunks (so a progress bar can move and Ctrl-C is
honoured between chunks) and sums the integer reductions, which makes the result
independent of thread count and chunk size. ``simulate`` is the one entry point: a run
is the case of one draw, a PSA, DSA or sweep the case of many.
"""

import contextlib
import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

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
    TALLY_NAMES,
    TALLY_OS_GIVEN_ENTRY,
)
from simseq.engine.sample import bind_special_functions
from simseq.engine.simulate import simulate_kernel
from simseq.model import ModelArrays, econ_range_problem

if TYPE_CHECKING:
    import pandas

COMPILE_NOTICE = "compiling the simulation engine for this model (once; 10-20 s) ..."
DEFAULT_BIN_WIDTH = 0.02  # months (~0.6 days): medians are interpolated inside a bin
DEFAULT_CHUNK = 1_000_000


@dataclass(frozen=True)
class Tallies:
    """Summed reductions of a simulation, per parameter draw.

    Only the reductions asked for are kept: the histograms in ``slots`` (a PSA of 1,000
    draws keeps one per sequence, not every kind of every state), the exit counts unless
    declined.
    """

    slots: np.ndarray
    """int64 (n_kept, 2): (TALLY_* kind, state) of each kept histogram."""
    hist: np.ndarray
    """int64 (n_draws, n_kept, 2, n_bins): [..., 0, :] events, [..., 1, :] censored."""
    exit_counts: np.ndarray | None
    """int64 (n_draws, n_states, N_EVENTS + 1): exits by event, the last column still there
    at the horizon; None when not kept."""
    n_patients: int  # per draw
    bin_width: float  # months
    horizon: float  # months
    econ: np.ndarray | None = None
    """int64 (n_draws, n_seq, N_ECON, N_BATCHES, 2) exact fixed-point sums as (hi, lo) words
    (see engine.codes; ``econ_values`` converts them), or None."""

    @property
    def n_draws(self) -> int:
        return self.hist.shape[0]

    @property
    def n_entered(self) -> np.ndarray:
        """int64 (n_draws, n_states): patients who entered each state."""
        return self.exits().sum(axis=2)

    def exits(self) -> np.ndarray:
        """``exit_counts``; KeyError when they were not kept."""
        if self.exit_counts is None:
            raise KeyError("exit counts were not kept (simulate's exit_counts argument)")
        return self.exit_counts

    @functools.cached_property
    def _slot(self) -> dict[tuple[int, int], int]:
        return {(int(k), int(s)): j for j, (k, s) in enumerate(self.slots)}

    def slot(self, kind: int, state: int) -> int:
        """Index into ``hist``'s second axis of histogram ``kind`` (TALLY_*) of ``state``;
        KeyError for one that was not kept."""
        j = self._slot.get((kind, int(state)))
        if j is None:
            raise KeyError(
                f"histogram {TALLY_NAMES[kind]} of state {state} was not kept "
                "(simulate's tallies argument)"
            )
        return j

    def histogram(self, kind: int, states: Iterable[int], draw: int = 0) -> np.ndarray:
        """int64 (2, n_bins): histogram ``kind`` (TALLY_*) of draw ``draw``, added over
        ``states`` (events, censored). KeyError for one that was not kept."""
        total = np.zeros(self.hist.shape[2:], np.int64)
        for s in states:
            total += self.hist[draw, self.slot(kind, s)]
        return total

    def of_draw(self, draw: int) -> "Tallies":
        """The tallies of draw ``draw`` alone (n_draws == 1)."""
        one = slice(draw, draw + 1)
        return dataclasses.replace(
            self,
            hist=self.hist[one],
            exit_counts=None if self.exit_counts is None else self.exit_counts[one],
            econ=None if self.econ is None else self.econ[one],
        )


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
    if exact:
        bind_special_functions()  # the exact samplers call SciPy: bound before they load
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
    tallies: Iterable[int] | np.ndarray | None = None,
    exit_counts: bool = True,
    draw_lo: int = 0,
    common_streams: bool = False,
    patient_lo: int = 0,
    threads: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
    on_compile: Callable[[], None] | None = None,
) -> Tallies:
    """Simulate patients ``patient_lo .. patient_lo + n_patients`` of every draw of ``model``
    through every sequence and reduce (tallies of disjoint patient ranges add up:
    ``merge_tallies``; of disjoint draw ranges, they stack: ``join_draws``).

    Draw d (0-based within ``model``) uses the random streams of global draw
    ``draw_lo + d``, so a PSA split into draw ranges gives the same numbers; with
    ``common_streams`` every draw uses the streams of ``draw_lo`` (common random numbers,
    for one-way sensitivity analyses, sweeps and calibration).

    ``tallies`` chooses the histograms kept (see ``tally_mask``; default: all);
    ``exit_counts=False`` declines the exit counts, which spares a sequence that keeps
    only its start state's OS (a PSA's ``sequence_os_tallies``) any record of, or loop
    over, its patients' paths: about 10 % of its time.

    The work is parallel over (draw, patient row) tasks, so one draw still uses every
    thread. Patients go to the kernel in chunks of ``chunk_size`` (of every draw at once:
    a task's set-up is paid per chunk), after each of which ``progress`` is called with
    the patients finished, summed over draws, and Ctrl-C is honoured. ``on_compile`` is
    called first if the engine must be compiled for this model (a cold numba cache).
    Results do not depend on threads or chunks.
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
    mask = tally_mask(tallies, model.n_states)
    slots = np.argwhere(mask).astype(np.int64)
    slot_of = np.full(mask.shape, -1, np.int64)
    slot_of[slots[:, 0], slots[:, 1]] = np.arange(len(slots))
    n_draws, n_seq = model.n_draws, len(model.seq_names)
    # Sequences tallied from their patients' paths: all when exits are counted, else those
    # keeping more than their start state's OS (which the death time alone gives).
    slot_seq = model.state_seq_idx[slots[:, 1]]
    start_os = (slots[:, 0] == TALLY_OS_GIVEN_ENTRY) & (
        slots[:, 1] == model.seq_start_state[slot_seq]
    )
    from_path = np.bincount(slot_seq[~start_os], minlength=n_seq).clip(max=1)
    from_path[:] |= exit_counts
    variant = kernel_variant(model)
    with thread_count(threads):
        # Split each draw into patient rows when there are fewer draws than threads;
        # rows add up exactly, so the split does not change the numbers.
        n_rows = min(n_patients, -(-numba.get_num_threads() // n_draws))
        n_tasks = n_draws * n_rows
        hist = np.zeros((n_tasks, len(slots), 2, n_bins), np.int64)
        exits = np.zeros((n_tasks, model.n_states, N_EVENTS + 1), np.int64)
        n_econ = n_tasks if model.has_economics else 0
        econ = np.zeros((n_econ, n_seq, N_ECON, N_BATCHES, 2), np.int64)
        end = patient_lo + n_patients
        for lo in range(patient_lo, end, chunk_size):
            n_chunk = min(chunk_size, end - lo)
            args = (
                seed,
                draw_lo,
                common_streams,
                lo,
                n_chunk,
                n_rows,
                model.seq_start_state,
                float(horizon),
                model.max_steps,
                model.stride,
                model.structure,
                model.numbers(),
                *variant,
                (1.0 / bin_width, slot_of, from_path, hist, exits, econ),
                None,
            )
            if (
                on_compile is not None
                and lo == patient_lo
                and not kernel_ready(simulate_kernel, args)
            ):
                on_compile()
            simulate_kernel(*args)
            if progress is not None:
                progress(n_chunk * n_draws)
    if model.has_economics:
        econ = econ_sum(econ.reshape(n_draws, n_rows, *econ.shape[1:]), axis=1)
    return Tallies(
        slots,
        _rows_summed(hist, n_draws),
        _rows_summed(exits, n_draws) if exit_counts else None,
        n_patients,
        bin_width,
        horizon,
        econ if model.has_economics else None,
    )


def _rows_summed(a: np.ndarray, n_draws: int) -> np.ndarray:
    """(n_draws * n_rows, ...) task rows -> (n_draws, ...) summed over each draw's rows
    (without a copy when there is one row a draw, as in a PSA with many draws)."""
    rows = a.reshape(n_draws, -1, *a.shape[1:])
    return rows[:, 0] if rows.shape[1] == 1 else rows.sum(axis=1)


def merge_tallies(parts: Sequence[Tallies]) -> Tallies:
    """Tallies of the same draws and disjoint patient ranges, added up (integers: the order
    does not matter)."""
    first = parts[0]
    econ = None if first.econ is None else econ_sum(np.stack([p.econ for p in parts]))
    return dataclasses.replace(
        first,
        hist=sum(p.hist for p in parts),
        exit_counts=None if first.exit_counts is None else sum(p.exit_counts for p in parts),
        n_patients=sum(p.n_patients for p in parts),
        econ=econ,
    )


def join_draws(parts: Sequence[Tallies]) -> Tallies:
    """Tallies of consecutive draw ranges (the same patients), as one."""
    first = parts[0]
    return dataclasses.replace(
        first,
        hist=np.concatenate([p.hist for p in parts]),
        exit_counts=None
        if first.exit_counts is None
        else np.concatenate([p.exit_counts for p in parts]),
        econ=None if first.econ is None else np.concatenate([p.econ for p in parts]),
    )


class EventLog(NamedTuple):
    """The walked sojourns of ``walk_log``, one entry per (sequence, patient, step) in
    that order; each array (n_rows,)."""

    sequence: np.ndarray
    """int64: index into ``model.seq_names``."""
    patient: np.ndarray
    """int64: the patient, 0-based within the sequence."""
    state: np.ndarray
    """int64: the state sojourned in (``model.state_names``)."""
    next_state: np.ndarray
    """int64: the state entered next (meaningless where the walk ended: death, horizon)."""
    event: np.ndarray
    """int64: the exit's ``EVENT_NAMES`` index; -1 when still there at the horizon."""
    t_start: np.ndarray
    """float64: entry, months from the sequence start."""
    t_stop: np.ndarray
    """float64: exit, or the horizon when still there, months from the sequence start."""

    def event_names(self) -> np.ndarray:
        """object (n_rows,): the exit's event name, "censored" at the horizon."""
        names = np.array([*EVENT_NAMES, "censored"], dtype=object)
        return names[np.where(self.event < 0, len(EVENT_NAMES), self.event)]


def walk_log(
    model: ModelArrays, n_patients: int, seed: int, *, horizon: float, draw_idx: int = 0
) -> EventLog:
    """The sojourns of patients 0 .. n_patients - 1 of every sequence, with the streams
    ``simulate`` gives global draw ``draw_idx`` (and that draw's numbers when ``model``
    has several): the arrays behind ``simulate_trajectories``, for code that reads the
    log itself (``validation``) without a DataFrame of strings."""
    n_seq = len(model.seq_names)
    shape = (n_seq, n_patients, model.max_steps)
    out_state = np.zeros(shape, np.int64)
    out_enter = np.zeros(shape)
    out_exit = np.zeros(shape)
    out_event = np.zeros(shape, np.int64)
    out_n = np.zeros((n_seq, n_patients), np.int64)
    out_death = np.zeros((n_seq, n_patients))
    draw = model.select_draws(draw_idx, draw_idx + 1) if model.n_draws > 1 else model
    simulate_kernel(
        seed,
        draw_idx,
        False,
        0,
        n_patients,
        min(n_patients, numba.get_num_threads()),
        model.seq_start_state,
        float(horizon),
        model.max_steps,
        model.stride,
        model.structure,
        draw.numbers(),
        *kernel_variant(model),
        None,
        (out_state, out_enter, out_exit, out_event, out_n, out_death),
    )
    # one entry per (sequence, patient, step) walked, in that order
    q, p, k = np.nonzero(np.arange(model.max_steps) < out_n[..., None])
    return EventLog(
        q,
        p,
        out_state[q, p, k],
        out_state[q, p, np.minimum(k + 1, model.max_steps - 1)],
        out_event[q, p, k],
        out_enter[q, p, k],
        out_exit[q, p, k],
    )


def simulate_trajectories(
    model: ModelArrays, n_patients: int, seed: int, *, horizon: float, draw_idx: int = 0
) -> "pandas.DataFrame":
    """Per-patient event log, one row per sojourn, with the streams ``simulate`` gives global
    draw ``draw_idx`` (and that draw's numbers when ``model`` has several).

    Columns: sequence, patient, from_state, to_state ("dead", or "" when still
    there at the horizon), event, t_start, t_stop (months from sequence start).
    """
    import pandas as pd  # only the event log needs pandas (and parquet output)

    log = walk_log(model, n_patients, seed, horizon=horizon, draw_idx=draw_idx)
    state_names = np.array(model.state_names, dtype=object)
    died = log.event == EVENT_NAMES.index("death")
    return pd.DataFrame(
        {
            "sequence": np.array(model.seq_names, dtype=object)[log.sequence],
            "patient": log.patient,
            "from_state": state_names[log.state],
            "to_state": np.where(
                log.event < 0, "", np.where(died, "dead", state_names[log.next_state])
            ),
            "event": log.event_names(),
            "t_start": log.t_start,
            "t_stop": log.t_stop,
        }
    )
