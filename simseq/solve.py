"""Calibration targets solved for every parameter draw at once.

A calibration target frees one parameter and asks that a summary equal a
published value: a median of a clock of a calibration cohort, for the median OS
from the start of the cohort's line or the median time on the line; or any
parameter bound into a whole sequence (e.g. the share of a first line ending in
death), for OS at a landmark month from the start of that sequence. With the draws
bound into one ``ModelArrays`` (draw axis first), ``calibrate_draws`` solves
each target for all draws together: ``roots.solve_monotone`` searches each
draw's free median on log scale, and every step evaluates the summary for all
draws still searching in one call, by quadrature (``simseq.quadrature``: exact up
to an O(step^2) grid error, no Monte Carlo noise) or, where quadrature is not
exact, by the engine with common random numbers.

Targets whose free medians move each other's cohort are swept in turn until
their medians stop moving (Gauss-Seidel, as ``simseq.calibrate``); the others
are solved once. Every decision is taken per draw on that draw's own numbers, so
a draw's answer is bit for bit the same whether it is solved alone or among
10^5 others, and the base case is simply draw 0.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from simseq.distributions import FAMILIES_BY_CODE
from simseq.engine.codes import N_TALLIES, TALLY_OS_GIVEN_ENTRY, TALLY_SOJOURN
from simseq.model import ModelArrays
from simseq.outcomes import km_medians, km_survival_at
from simseq.quadrature import (
    QUAD_STEP,
    os_landmark,
    os_median,
    quadrature_problem,
    sojourn_median,
    take_draws,
)
from simseq.roots import solve_monotone
from simseq.simulator import simulate

OS_FROM_LINE_START = "median_os_from_line_start"
TIME_ON_LINE = "median_time_on_line"
LANDMARK = "os_landmark_from_sequence_start"
KINDS = (OS_FROM_LINE_START, TIME_ON_LINE, LANDMARK)
METHODS = ("quadrature", "simulation")

# Per (draw, target) outcome codes of DrawCalibration.status
OK = 0
NOT_BRACKETED = 1  # the summary at the two ends of the bracket does not straddle the target
NOT_CONVERGED = 2  # the summary was undefined (nan) inside the bracket
NO_JOINT_SOLUTION = 3  # targets sharing a cohort still moved after max_sweeps
NOT_SOLVED = 4  # another target of the same cohort failed in this draw
STATUS_NAMES = ("ok", "not bracketed", "not converged", "no joint solution", "not solved")


@dataclass(frozen=True)
class DrawTarget:
    """One calibration target, for every draw.

    Attributes
    ----------
    kind : str
        ``"median_os_from_line_start"`` (OS from the start of sequence ``index``, a
        calibration cohort), ``"median_time_on_line"`` (sojourn in state ``index``) or
        ``"os_landmark_from_sequence_start"`` (OS at ``month`` from the start of sequence
        ``index``, a probability).
    index : int
        Sequence index (into ``seq_names``) or state index (into ``state_names``) of
        the models ``model_at`` returns.
    value : ndarray(float64, shape=(n_draws,))
        The target per draw: months for a median, a probability for a landmark.
    bounds : tuple of float
        (lo, hi): the bracket of the free parameter (months for a median), 0 < lo < hi.
    label : str
        How messages name the target (e.g. "calibration.targets.0").
    month : float
        A landmark's time from the start of the sequence, months (nan for a median).
    """

    kind: str
    index: int
    value: np.ndarray
    bounds: tuple[float, float]
    label: str = ""
    month: float = math.nan


@dataclass(frozen=True)
class DrawCalibration:
    """Solved free medians per draw, what they achieve, and which draws failed.

    Attributes
    ----------
    values : ndarray(float64, shape=(n_draws, n_targets))
        Free median of each target, months; nan where ``status`` is not OK.
    achieved : ndarray(float64, shape=(n_draws, n_targets))
        Each target's summary with all of a draw's solved medians, months (nan where
        not OK; inf where the curve stays above 1/2 to the horizon).
    methods : tuple of str
        "quadrature" or "simulation", per target.
    status : ndarray(int8, shape=(n_draws, n_targets))
        ``OK`` or a failure code (``STATUS_NAMES``).
    at_lo, at_hi : ndarray(float64, shape=(n_draws, n_targets))
        The summary with the free median at each end of its bracket, in the draw's
        last search (for messages; nan where not searched).
    n_sweeps : ndarray(int64, shape=(n_draws,))
        Gauss-Seidel sweeps each draw took (1 when no two targets share a cohort).
    n_evaluations : int
        Evaluations of a summary (each for every draw still searching).
    targets : tuple of DrawTarget
    where : tuple of str
        What each target summarises, e.g. "OS of sequence 'cohort:lenvatinib'".
    """

    values: np.ndarray
    achieved: np.ndarray
    methods: tuple[str, ...]
    status: np.ndarray
    at_lo: np.ndarray
    at_hi: np.ndarray
    n_sweeps: np.ndarray
    n_evaluations: int
    targets: tuple[DrawTarget, ...]
    where: tuple[str, ...]

    def with_draws(self, index: np.ndarray, other: "DrawCalibration") -> "DrawCalibration":
        """This calibration with draws ``index`` replaced by the draws of ``other`` (the
        same targets, solved for replacement rows), in order."""

        def put(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
            out = mine.copy()
            out[index] = theirs
            return out

        return dataclasses.replace(
            self,
            values=put(self.values, other.values),
            achieved=put(self.achieved, other.achieved),
            status=put(self.status, other.status),
            at_lo=put(self.at_lo, other.at_lo),
            at_hi=put(self.at_hi, other.at_hi),
            n_sweeps=put(self.n_sweeps, other.n_sweeps),
            n_evaluations=self.n_evaluations + other.n_evaluations,
            targets=tuple(
                dataclasses.replace(mine, value=put(mine.value, theirs.value))
                for mine, theirs in zip(self.targets, other.targets, strict=True)
            ),
        )

    @property
    def ok(self) -> np.ndarray:
        """bool (n_draws,): every target of the draw was solved."""
        return (self.status == OK).all(axis=1)

    def failures(self) -> list[tuple[int, int, str]]:
        """(draw, target, message) for each failed (draw, target), draws in order."""
        out = []
        for d, i in np.argwhere(self.status != OK):
            out.append((int(d), int(i), self._message(int(d), int(i))))
        return out

    def _message(self, d: int, i: int) -> str:
        tgt = self.targets[i]
        name = tgt.label or f"target {i}"
        head = f"draw {d}: {name} ({tgt.kind} of {self.where[i]}, {tgt.value[d]:.4g} months)"
        return f"{head}: {self.reason(d, i)}"

    def reason(self, d: int, i: int) -> str:
        """Why target ``i`` failed in draw ``d``, e.g. "unreachable: its free median in
        [0.5, 40] gives [2.1, 9.3] months (by quadrature)"."""
        tgt = self.targets[i]
        lo, hi = tgt.bounds
        code = self.status[d, i]
        if code == NOT_BRACKETED:
            a, b = sorted((self.at_lo[d, i], self.at_hi[d, i]))
            return (
                f"unreachable: its free median in [{lo:g}, {hi:g}] gives "
                f"[{a:.4g}, {b:.4g}] months (by {self.methods[i]})"
            )
        if code == NOT_CONVERGED:
            return (
                f"the search for its free median in [{lo:g}, {hi:g}] failed: the "
                "summary is undefined (nan) inside the bracket"
            )
        if code == NO_JOINT_SOLUTION:
            return (
                f"no joint solution with the other targets of its cohort after "
                f"{self.n_sweeps[d]} sweeps: they pull its median in opposite directions"
            )
        return "not solved, another target of its cohort failed in this draw"


def bind_medians(model: ModelArrays, clocks: Sequence[int], medians: np.ndarray) -> ModelArrays:
    """The model with each of ``clocks`` rescaled to a baseline median, per draw.

    Clock ``clocks[j]`` gets the value of its family's scale parameter that gives its
    baseline distribution (before ``clock_hr`` and covariates) the median
    ``medians[:, j]``, its other parameters unchanged: what ``fit.fit_median`` does
    for one draw. A helper for callers building ``model_at``.

    Parameters
    ----------
    model : ModelArrays
    clocks : sequence of int
        Clock indices.
    medians : ndarray(float64, shape=(n_draws, len(clocks)))
        Months, > 0.

    Returns
    -------
    ModelArrays
        A new model (``clock_params`` copied); ValueError where no scale gives a median.
    """
    medians = np.asarray(medians, np.float64).reshape(model.n_draws, len(clocks))
    params = model.clock_params.copy()
    for j, c in enumerate(clocks):
        fam = FAMILIES_BY_CODE[int(model.clock_family[c])]
        k = fam.param_names.index(fam.scale_param)
        row = [params[:, c, i] for i in range(len(fam.param_names))]
        scale = fam.solve_scale_array(medians[:, j], 0.5, *row)
        bad = ~np.isfinite(scale)
        if bad.any():
            d = int(np.argmax(bad))
            raise ValueError(
                f"draw {d}: no {fam.name} {fam.scale_param} gives clock {c} a median of "
                f"{medians[d, j]:g} months"
            )
        params[:, c, k] = scale
    return dataclasses.replace(model, clock_params=params)


def _sequence_of(model: ModelArrays, tgt: DrawTarget) -> int:
    return tgt.index if tgt.kind != TIME_ON_LINE else int(model.state_seq_idx[tgt.index])


def _where(model: ModelArrays, tgt: DrawTarget) -> str:
    if tgt.kind == OS_FROM_LINE_START:
        return f"OS of sequence {model.seq_names[tgt.index]!r}"
    if tgt.kind == LANDMARK:
        return f"OS at {tgt.month:g} months of sequence {model.seq_names[tgt.index]!r}"
    seq = model.seq_names[model.state_seq_idx[tgt.index]]
    return f"time in state {model.state_names[tgt.index]!r} (sequence {seq!r})"


def _engine_summary(
    model: ModelArrays, tgt: DrawTarget, horizon: float, simulation: dict
) -> np.ndarray:
    """(n_draws,) the target's summary from the engine, every draw on the same streams
    (common random numbers), so that the simulated summary is a monotone function of the
    free median (with steps of order 1/n_patients, which bracketing search tolerates) and
    a draw's value does not depend on the others.

    Only the target's sequence is walked, without economics, and only the one histogram
    the target reads is kept: all draws in one ``simulate`` call.
    """
    n, seed = simulation["n_patients"], simulation["seed"]
    width = simulation["bin_width"]
    q = _sequence_of(model, tgt)
    alone = dataclasses.replace(
        model,
        seq_names=(model.seq_names[q],),
        seq_start_state=model.seq_start_state[q : q + 1],
        has_economics=False,
    )
    if tgt.kind != TIME_ON_LINE:
        kind, state = TALLY_OS_GIVEN_ENTRY, int(model.seq_start_state[q])
    else:
        kind, state = TALLY_SOJOURN, tgt.index
    mask = np.zeros((N_TALLIES, model.n_states), np.int64)
    mask[kind, state] = 1
    tallies = simulate(
        alone,
        n,
        seed,
        horizon=horizon,
        bin_width=width,
        tallies=mask,
        exit_counts=False,  # the one histogram alone: OS from the start needs no path
        common_streams=True,
    )
    hist = tallies.hist[:, tallies.slot(kind, state)]  # (n_draws, 2, n_bins)
    if tgt.kind == LANDMARK:
        return km_survival_at(hist[:, 0], hist[:, 1], width, tgt.month)
    return km_medians(hist[:, 0], hist[:, 1], width)


def _summary(
    model: ModelArrays, tgt: DrawTarget, method: str, horizon: float, step: float, simulation: dict
) -> np.ndarray:
    """(n_draws,) the target's summary for every draw of ``model``, months."""
    if method == "simulation":
        return _engine_summary(model, tgt, horizon, simulation)
    if tgt.kind == OS_FROM_LINE_START:
        return os_median(model, tgt.index, horizon, step)
    if tgt.kind == LANDMARK:
        return os_landmark(model, tgt.index, tgt.month, step)
    return sojourn_median(model, tgt.index, horizon, step)


def _changed_sequences(model: ModelArrays, other: ModelArrays) -> set[int]:
    """Sequences of ``model`` whose numbers differ in ``other`` (any draw)."""
    if not np.array_equal(model.cov_prevalence, other.cov_prevalence):
        return set(range(len(model.seq_names)))
    clock_seq = np.empty(model.clock_hr.shape[1], np.int64)
    for s in range(model.n_states):
        clock_seq[model.state_clock_lo[s] : model.state_clock_hi[s]] = model.state_seq_idx[s]
    moved = (
        (model.clock_params != other.clock_params).any(axis=(0, 2))
        | (model.clock_hr != other.clock_hr).any(axis=0)
        | (model.cov_log_hr != other.cov_log_hr).any(axis=(0, 2))
    )
    dest_clock = np.repeat(
        np.arange(len(model.clock_dest_lo)), model.clock_dest_hi - model.clock_dest_lo
    )
    moved[dest_clock[(model.dest_cumprob != other.dest_cumprob).any(axis=0)]] = True
    return set(clock_seq[moved].tolist())


def _groups(targets, model_at, free, model) -> list[list[int]]:
    """Targets that move each other's cohort, as groups (in target order): target i is
    tied to target j when j's free median changes numbers of i's sequence."""
    seqs = [_sequence_of(model, t) for t in targets]
    parent = list(range(len(targets)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for j, tgt in enumerate(targets):
        trial = free.copy()
        trial[:, j] *= 1.25
        other = model_at(trial)
        for name in ("clock_family", "state_clock_lo", "clock_dest_lo", "dest_state"):
            if not np.array_equal(getattr(model, name), getattr(other, name)):
                raise ValueError(
                    f"model_at changes the model's structure ({name}) with free median {j}; "
                    "it may only change numbers"
                )
        moved = _changed_sequences(model, other)
        if seqs[j] not in moved:
            raise ValueError(
                f"{tgt.label or f'target {j}'}: model_at does not change {_where(model, tgt)} "
                f"when free median {j} changes; it must bind column {j} into that cohort"
            )
        for i in range(len(targets)):
            if seqs[i] in moved:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(targets)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def calibrate_draws(
    targets: Sequence[DrawTarget],
    model_at: Callable[[np.ndarray], ModelArrays],
    *,
    horizon: float,
    step: float = QUAD_STEP,
    xtol: float = 1e-7,
    sweep_tol: float = 1e-6,
    max_sweeps: int = 10,
    method: str | None = None,
    n_patients: int = 100_000,
    seed: int = 0,
    bin_width: float = 0.02,
    start: np.ndarray | None = None,
) -> DrawCalibration:
    """Solve every target for every draw.

    Parameters
    ----------
    targets : sequence of DrawTarget
        Target i frees column i of the medians ``model_at`` binds.
    model_at : callable
        ``model_at(free)``: ``free`` float64 (n_draws, n_targets) of free medians
        (months) -> the calibration cohort(s) as one ``ModelArrays`` with n_draws draws,
        draw d bound to ``free[d]`` (see ``bind_medians``). Its structure (sequence
        and state indices) must not depend on ``free``.
    horizon : float
        Months: curves end there; a median not reached counts as the horizon while
        searching (the summary is censored there), and is inf in ``achieved``.
    step : float
        Quadrature grid, months (error O(step^2)).
    xtol : float
        Accuracy of each solved median on log scale (relative: 1e-7 is 1e-7 x median).
    sweep_tol : float
        Targets sharing a cohort are swept until no median of the draw moves by more
        than this (relative) in a sweep.
    max_sweeps : int
        Sweeps before a draw counts as ``NO_JOINT_SOLUTION``.
    method : str, optional
        "quadrature" or "simulation" for every target; by default quadrature wherever
        it is exact for the model (``quadrature.quadrature_problem``), else simulation.
    n_patients, seed, bin_width : int, int, float
        The engine's patients per draw, seed and histogram bin (months), for
        simulation.
    start : ndarray(float64, shape=(n_draws, n_targets)), optional
        Where the sweeps start; default the geometric mean of each bracket (as
        ``simseq.calibrate``). Targets solved once do not depend on it.

    Returns
    -------
    DrawCalibration

    Notes
    -----
    Which targets share a cohort is found by asking ``model_at`` once per target with
    that target's free median moved: targets are swept together when a free median
    changes the numbers of another target's sequence.
    """
    targets = tuple(targets)
    if not targets:
        raise ValueError("no targets to calibrate")
    n_draws = len(np.atleast_1d(targets[0].value))
    for i, tgt in enumerate(targets):
        name = tgt.label or f"target {i}"
        if tgt.kind not in KINDS:
            raise ValueError(f"{name}: unknown kind {tgt.kind!r}; allowed: {', '.join(KINDS)}")
        if np.shape(tgt.value) != (n_draws,):
            raise ValueError(
                f"{name}: value must have shape ({n_draws},), got {np.shape(tgt.value)}"
            )
        lo, hi = tgt.bounds
        if not 0 < lo < hi < np.inf:
            raise ValueError(f"{name}: bounds {tgt.bounds} must satisfy 0 < lo < hi")
        if tgt.kind == LANDMARK:
            if not 0 < tgt.month <= horizon:
                raise ValueError(f"{name}: month {tgt.month} must be in (0, horizon {horizon:g}]")
            bad = ~((np.asarray(tgt.value) > 0) & (np.asarray(tgt.value) < 1))
            allowed = "a survival probability in (0, 1)"
        else:
            bad = ~(np.asarray(tgt.value) > 0) | ~np.isfinite(tgt.value)
            allowed = "> 0 months"
        if bad.any():
            d = int(np.argmax(bad))
            raise ValueError(f"{name}: draw {d}'s value is {tgt.value[d]}; it must be {allowed}")
    if method is not None and method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    n_t = len(targets)
    if start is None:
        free = np.tile([np.sqrt(t.bounds[0] * t.bounds[1]) for t in targets], (n_draws, 1))
    else:
        free = np.array(start, np.float64).reshape(n_draws, n_t)
    model = model_at(free)
    if model.n_draws != n_draws:
        raise ValueError(f"model_at returned {model.n_draws} draws for {n_draws} target values")
    methods = tuple(
        method or ("quadrature" if quadrature_problem(model) is None else "simulation")
        for _ in targets
    )
    simulation = {"n_patients": n_patients, "seed": seed, "bin_width": bin_width}
    status = np.zeros((n_draws, n_t), np.int8)
    at_lo = np.full((n_draws, n_t), np.nan)
    at_hi = np.full((n_draws, n_t), np.nan)
    n_sweeps = np.zeros(n_draws, np.int64)
    n_evaluations = 0

    def gap_of(i: int, rows: np.ndarray):
        """f(x, sub) of target i for draws rows[sub], its median at x."""
        tgt = targets[i]

        def gap(x, sub):
            nonlocal n_evaluations
            n_evaluations += 1
            trial = free.copy()
            trial[rows[sub], i] = x
            draws = take_draws(model_at(trial), rows[sub])
            got = _summary(draws, tgt, methods[i], horizon, step, simulation)
            # not reached by the horizon: censored there, which keeps f monotone
            return np.where(np.isinf(got), horizon, got) - tgt.value[rows[sub]]

        return gap

    for group in _groups(targets, model_at, free, model):
        single = len(group) == 1
        active = np.ones(n_draws, bool)
        count = np.zeros(n_draws, np.int64)
        for _ in range(1 if single else max_sweeps):
            sweep_rows = np.flatnonzero(active)
            if sweep_rows.size == 0:
                break
            count[sweep_rows] += 1
            before = free[np.ix_(sweep_rows, group)]
            for i in group:
                rows = np.flatnonzero(active)
                if rows.size == 0:
                    break
                lo, hi = targets[i].bounds
                res = solve_monotone(gap_of(i, rows), lo, hi, xtol=xtol, n_draws=rows.size)
                goal = targets[i].value[rows]
                at_lo[rows, i], at_hi[rows, i] = res.f_lo + goal, res.f_hi + goal
                free[rows[res.ok], i] = res.x[res.ok]
                status[rows[res.not_bracketed], i] = NOT_BRACKETED
                status[rows[res.not_converged], i] = NOT_CONVERGED
                failed = rows[~res.ok]
                for k in group:  # the draw's other targets of this cohort stop here
                    status[failed, k] = np.where(status[failed, k] == OK, NOT_SOLVED,
                                                 status[failed, k])  # fmt: skip
                active[failed] = False
            if single:
                active[:] = False
                break
            # a draw none of whose medians moved by more than sweep_tol is done
            moved = np.abs(free[np.ix_(sweep_rows, group)] / before - 1.0).max(axis=1)
            active[sweep_rows[active[sweep_rows] & (moved <= sweep_tol)]] = False
        for k in group:
            stuck = np.flatnonzero(active)
            status[stuck, k] = NO_JOINT_SOLUTION
        n_sweeps = np.maximum(n_sweeps, count)

    achieved = np.full((n_draws, n_t), np.nan)
    for i, tgt in enumerate(targets):
        rows = np.flatnonzero(status[:, i] == OK)
        if rows.size:
            achieved[rows, i] = _summary(
                take_draws(model_at(free), rows), tgt, methods[i], horizon, step, simulation
            )
            n_evaluations += 1
    values = np.where(status == OK, free, np.nan)
    return DrawCalibration(
        values,
        achieved,
        methods,
        status,
        at_lo,
        at_hi,
        n_sweeps,
        n_evaluations,
        targets,
        tuple(_where(model, t) for t in targets),
    )
