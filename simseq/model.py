"""States, transitions and treatment sequences, compiled to the plain arrays the kernels take.

A sequence is a small directed acyclic graph of states. Each state runs one or
more competing clocks (parametric time-to-event distributions); the first clock
to ring ends the sojourn and sends the patient to one of its destinations with
fixed probabilities (a cause split). Clocks reset on entry (semi-Markov).

Every numeric array keeps the parameter draw as its leading axis, so a
deterministic run is simply ``n_draws == 1``.
"""

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from simseq.distributions import Distribution, get_family
from simseq.engine.codes import (
    ECON_COST,
    ECON_MAX_FIXED,
    ECON_QALY,
    ECON_SCALE,
    EVENT_DEATH,
    EVENT_NAMES,
    N_PARAMS,
    NUMBERS,
    STATE_DEAD,
    STRUCTURE,
)

DEAD = None  # destination meaning death


@dataclass(frozen=True)
class Destination:
    """Where a ringing clock sends the patient: ``state`` (None = dead), event, probability."""

    state: str | None
    event: int
    probability: float


@dataclass(frozen=True)
class Clock:
    """One competing time-to-event clock of a state."""

    distribution: Distribution
    destinations: tuple[Destination, ...]
    covariate_log_hr: Mapping[str, float] = field(default_factory=dict)
    """Log hazard ratio per covariate name, applied when the patient has it."""


@dataclass(frozen=True)
class State:
    """A state of one sequence. ``line`` is the line of therapy (0: not on treatment)."""

    name: str
    clocks: tuple[Clock, ...]
    line: int = 0
    regimen: str | None = None
    role: str = "line"
    """One of "line" (on a line of therapy), "post_progression", "no_further_therapy"."""
    cost_per_month: float = 0.0
    """Cost accrued continuously while in the state (currency per month)."""
    utility: float = 0.0
    """Health-state utility (QALYs per year in the state)."""
    entry_cost: float = 0.0
    """One-off cost on entering the state (e.g. expected adverse-event costs of a line)."""
    entry_qalys: float = 0.0
    """One-off QALY change on entering the state (negative: a disutility, in QALYs)."""


@dataclass(frozen=True)
class Economics:
    """Model-wide economic settings: discount rates (annual) and the one-off cost at death."""

    discount_costs: float = 0.0
    discount_qalys: float = 0.0
    death_cost: float = 0.0
    utility_trend: tuple[float, float] = (0.0, 0.0)
    """(b1, b2): utilities are multiplied by 1 + b1 t + b2 t^2, t in months from the start
    (age adjustment; (0, 0) for none)."""


@dataclass(frozen=True)
class SequenceModel:
    """A treatment sequence: its states, the first of which is where every patient starts."""

    name: str
    states: tuple[State, ...]


@dataclass(frozen=True)
class Covariate:
    """A binary patient characteristic drawn once per patient with ``prevalence``."""

    name: str
    prevalence: float


@dataclass(frozen=True)
class ModelArrays:
    """A compiled model: what the kernels need plus the labels to read their output."""

    seq_names: tuple[str, ...]
    seq_start_state: np.ndarray  # int64 (n_seq,)
    state_names: tuple[str, ...]  # (n_states,) state names, unique within a sequence
    state_seq_idx: np.ndarray  # int64 (n_states,)
    state_line: np.ndarray  # int64 (n_states,)
    state_regimen: tuple[str | None, ...]
    state_role: tuple[str, ...]
    state_clock_lo: np.ndarray  # int64 (n_states,)
    state_clock_hi: np.ndarray  # int64 (n_states,)
    clock_family: np.ndarray  # int64 (n_clocks,)
    clock_params: np.ndarray  # float64 (n_draws, n_clocks, N_PARAMS)
    clock_hr: np.ndarray  # float64 (n_draws, n_clocks)
    clock_dest_lo: np.ndarray  # int64 (n_clocks,)
    clock_dest_hi: np.ndarray  # int64 (n_clocks,)
    dest_state: np.ndarray  # int64 (n_dests,), STATE_DEAD for death
    dest_event: np.ndarray  # int64 (n_dests,)
    dest_cumprob: np.ndarray  # float64 (n_draws, n_dests)
    cov_names: tuple[str, ...]
    cov_prevalence: np.ndarray  # float64 (n_draws, n_cov)
    cov_log_hr: np.ndarray  # float64 (n_draws, n_clocks, n_cov)
    max_steps: int  # longest possible path (states in the largest sequence)
    stride: int  # uniforms reserved per step: max clocks per state + 1 (cause draw)
    has_economics: bool = False
    state_econ: np.ndarray | None = None
    """float64 (n_draws, n_states, 4): cost per month, QALYs per month, entry cost, entry QALYs."""
    econ_globals: np.ndarray | None = None
    """float64 (n_draws, 5): monthly discount rate for costs and for QALYs, cost at death,
    and the utility trend coefficients (b1, b2) of ``Economics.utility_trend``."""

    @property
    def n_states(self) -> int:
        return len(self.state_names)

    @property
    def n_draws(self) -> int:
        return self.clock_params.shape[0]

    def repeat_draws(self, n_draws: int) -> "ModelArrays":
        """The same parameters repeated as ``n_draws`` identical draws (benchmarks, tests)."""

        def tile(a: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.repeat(a[:1], n_draws, axis=0))

        return dataclasses.replace(
            self,
            state_econ=tile(self.state_econ),
            econ_globals=tile(self.econ_globals),
            clock_params=tile(self.clock_params),
            clock_hr=tile(self.clock_hr),
            dest_cumprob=tile(self.dest_cumprob),
            cov_prevalence=tile(self.cov_prevalence),
            cov_log_hr=tile(self.cov_log_hr),
        )

    @property
    def structure(self) -> tuple[np.ndarray, ...]:
        """The integer arrays the kernels take as one tuple (``codes.STRUCTURE`` order)."""
        return tuple(getattr(self, name) for name in STRUCTURE)

    def numbers(self, draw: int | None = None) -> tuple[np.ndarray, ...]:
        """The numeric arrays (``codes.NUMBERS`` order) of one draw, or of all draws."""
        if draw is None:
            return tuple(getattr(self, name) for name in NUMBERS)
        return tuple(getattr(self, name)[draw] for name in NUMBERS)

    def select_draws(self, lo: int, hi: int) -> "ModelArrays":
        """The model restricted to draws lo..hi (a task of a distributed PSA)."""
        return dataclasses.replace(
            self, **{k: np.ascontiguousarray(getattr(self, k)[lo:hi]) for k in DRAW_ARRAYS}
        )

    def digest(self) -> str:
        """sha256 of every array and label: identifies the model across processes."""
        h = hashlib.sha256()
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            h.update(value.tobytes() if isinstance(value, np.ndarray) else repr(value).encode())
        return h.hexdigest()

    def state_index(self, sequence: str, state: str) -> int:
        """Global index of ``state`` in ``sequence``."""
        q = self.seq_names.index(sequence)
        for s, name in enumerate(self.state_names):
            if self.state_seq_idx[s] == q and name == state:
                return s
        raise KeyError(f"sequence {sequence!r} has no state {state!r}")

    def states_of(self, sequence: str) -> list[int]:
        q = self.seq_names.index(sequence)
        return [s for s in range(self.n_states) if self.state_seq_idx[s] == q]


def _check_acyclic(seq: SequenceModel) -> None:
    names = {st.name: st for st in seq.states}
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in done:
            return
        if name in visiting:
            raise ValueError(
                f"sequence {seq.name!r}: states form a cycle ({' -> '.join([*trail, name])}); "
                "sequences must be acyclic"
            )
        visiting.add(name)
        for clock in names[name].clocks:
            for dest in clock.destinations:
                if dest.state is not None:
                    visit(dest.state, [*trail, name])
        visiting.discard(name)
        done.add(name)

    visit(seq.states[0].name, [])


def _validate(seq: SequenceModel, cov_names: set[str]) -> None:
    if not seq.states:
        raise ValueError(f"sequence {seq.name!r} has no states")
    names = [st.name for st in seq.states]
    if len(set(names)) != len(names):
        raise ValueError(f"sequence {seq.name!r}: duplicate state names in {names}")
    for st in seq.states:
        if not st.clocks:
            raise ValueError(f"sequence {seq.name!r}, state {st.name!r}: no clocks (no way out)")
        for i, clock in enumerate(st.clocks):
            where = f"sequence {seq.name!r}, state {st.name!r}, clock {i}"
            if not clock.destinations:
                raise ValueError(f"{where}: no destinations")
            probs = np.array([d.probability for d in clock.destinations])
            if np.any(probs < 0) or not np.isclose(probs.sum(), 1.0, atol=1e-9):
                raise ValueError(
                    f"{where}: destination probabilities {probs.tolist()} must be >= 0 and sum to 1"
                )
            for d in clock.destinations:
                if d.state is None and d.event != EVENT_DEATH:
                    raise ValueError(f"{where}: a destination without a state must be death")
                if d.state is not None and d.state not in names:
                    raise ValueError(f"{where}: unknown destination state {d.state!r}")
                if d.state is not None and d.event == EVENT_DEATH:
                    raise ValueError(f"{where}: a death event cannot lead to {d.state!r}")
                if not 0 <= d.event < len(EVENT_NAMES):
                    raise ValueError(f"{where}: unknown event code {d.event}")
            unknown = set(clock.covariate_log_hr) - cov_names
            if unknown:
                raise ValueError(f"{where}: unknown covariates {sorted(unknown)}")
    _check_acyclic(seq)


def merge_clocks(state: State) -> State:
    """Merge competing clocks with cumulative hazards a_i t^k of one k into one clock
    (``Distribution.power_form``: Weibull and exponential clocks that share a shape).

    The minimum of independent Weibull times with a common shape k and
    cumulative hazards a_i t^k is Weibull with a = sum a_i, and which one rang
    is independent of when, with probability a_i / a. So one draw plus the
    cause split it already has replaces several draws: exact in distribution,
    and the hot loop's most expensive work halves for cause-specific models.
    Clocks with different covariate effects are kept apart (the split would
    then depend on the patient).
    """
    groups: dict[tuple, list[Clock]] = {}
    for clock in state.clocks:
        form = clock.distribution.power_form()
        key = (form[0], tuple(sorted(clock.covariate_log_hr.items()))) if form else (id(clock),)
        groups.setdefault(key, []).append(clock)
    merged = []
    for group in groups.values():
        if len(group) == 1:
            merged.append(group[0])
            continue
        shape = group[0].distribution.power_form()[0]
        coefs = [c.distribution.power_form()[1] for c in group]
        total = sum(coefs)
        dests = tuple(
            Destination(d.state, d.event, d.probability * a / total)
            for c, a in zip(group, coefs, strict=True)
            for d in c.destinations
        )
        # Clocks of one family stay in it (exponentials merge to an exponential); a mix
        # becomes a Weibull, the family every H(t) = a t^k belongs to.
        families = {c.distribution.family for c in group}
        family = families.pop() if len(families) == 1 else "weibull"
        dist = Distribution(family, get_family(family).from_power_form(shape, total))
        merged.append(Clock(dist, dests, group[0].covariate_log_hr))
    return dataclasses.replace(state, clocks=tuple(merged))


def compile_model(
    sequences: Sequence[SequenceModel],
    covariates: Sequence[Covariate] = (),
    economics: Economics | None = None,
) -> ModelArrays:
    """Validate sequences and flatten them into kernel arrays (one parameter draw).

    Same-shape Weibull/exponential competing clocks are merged first (``merge_clocks``).
    """
    cov_names = tuple(c.name for c in covariates)
    if len(cov_names) > 63:
        raise ValueError(f"at most 63 covariates are supported, got {len(cov_names)}")
    for seq in sequences:
        _validate(seq, set(cov_names))
    sequences = [
        dataclasses.replace(seq, states=tuple(merge_clocks(st) for st in seq.states))
        for seq in sequences
    ]
    seq_names = tuple(seq.name for seq in sequences)
    if len(set(seq_names)) != len(seq_names):
        raise ValueError(f"duplicate sequence names in {list(seq_names)}")

    state_rows, clock_rows, dest_rows = [], [], []
    seq_start = []
    for q, seq in enumerate(sequences):
        offset = len(state_rows)
        local = {st.name: offset + i for i, st in enumerate(seq.states)}
        seq_start.append(offset)
        for st in seq.states:
            clock_lo = len(clock_rows)
            for clock in st.clocks:
                dest_lo = len(dest_rows)
                cum = 0.0
                for d in clock.destinations:
                    cum += d.probability
                    target = STATE_DEAD if d.state is None else local[d.state]
                    dest_rows.append((target, d.event, cum))
                dest_rows[-1] = (*dest_rows[-1][:2], 1.0)  # guard against rounding
                clock_rows.append((clock, dest_lo, len(dest_rows)))
            state_rows.append((st, q, clock_lo, len(clock_rows)))

    n_clocks = len(clock_rows)
    n_cov = len(covariates)
    clock_params = np.zeros((1, n_clocks, N_PARAMS))
    clock_hr = np.ones((1, n_clocks))
    cov_log_hr = np.zeros((1, n_clocks, n_cov))
    for c, (clock, _, _) in enumerate(clock_rows):
        clock_params[0, c] = clock.distribution.param_row()
        clock_hr[0, c] = clock.distribution.hr
        for k, name in enumerate(cov_names):
            cov_log_hr[0, c, k] = clock.covariate_log_hr.get(name, 0.0)

    econ = economics or Economics()
    state_econ = np.array(
        [
            [
                [st.cost_per_month, st.utility / 12.0, st.entry_cost, st.entry_qalys]
                for st, *_ in state_rows
            ]
        ]
    ).reshape(1, len(state_rows), 4)
    # annual rate r -> continuous monthly rate ln(1 + r) / 12 (a year discounts by 1/(1 + r))
    econ_globals = np.array(
        [
            [
                np.log1p(econ.discount_costs) / 12.0,
                np.log1p(econ.discount_qalys) / 12.0,
                econ.death_cost,
                econ.utility_trend[0],
                econ.utility_trend[1],
            ]
        ]
    )
    return ModelArrays(
        seq_names=seq_names,
        seq_start_state=np.array(seq_start, np.int64),
        state_names=tuple(st.name for st, *_ in state_rows),
        state_seq_idx=np.array([q for _, q, _, _ in state_rows], np.int64),
        state_line=np.array([st.line for st, *_ in state_rows], np.int64),
        state_regimen=tuple(st.regimen for st, *_ in state_rows),
        state_role=tuple(st.role for st, *_ in state_rows),
        state_clock_lo=np.array([lo for *_, lo, _ in state_rows], np.int64),
        state_clock_hi=np.array([hi for *_, hi in state_rows], np.int64),
        clock_family=np.array([c.distribution.code for c, _, _ in clock_rows], np.int64),
        clock_params=clock_params,
        clock_hr=clock_hr,
        clock_dest_lo=np.array([lo for _, lo, _ in clock_rows], np.int64),
        clock_dest_hi=np.array([hi for _, _, hi in clock_rows], np.int64),
        dest_state=np.array([r[0] for r in dest_rows], np.int64),
        dest_event=np.array([r[1] for r in dest_rows], np.int64),
        dest_cumprob=np.array([[r[2] for r in dest_rows]], np.float64),
        cov_names=cov_names,
        cov_prevalence=np.array([[c.prevalence for c in covariates]], np.float64).reshape(1, n_cov),
        cov_log_hr=cov_log_hr,
        max_steps=max(len(seq.states) for seq in sequences),
        stride=max(len(st.clocks) for seq in sequences for st in seq.states) + 1,
        has_economics=economics is not None,
        state_econ=state_econ,
        econ_globals=econ_globals,
    )


DRAW_ARRAYS = (
    "clock_params",
    "clock_hr",
    "dest_cumprob",
    "cov_prevalence",
    "cov_log_hr",
    "state_econ",
    "econ_globals",
)


def stack_draws(models: Sequence[ModelArrays]) -> ModelArrays:
    """One model whose draw axis holds each model's single draw (PSA draws, DSA cases).

    The models must share their structure (states, clocks, destinations); only numbers
    may differ between draws.
    """
    first = models[0]
    for m in models[1:]:
        for name in ("clock_family", "state_clock_lo", "dest_state", "dest_event"):
            if not np.array_equal(getattr(m, name), getattr(first, name)):
                raise ValueError(f"draws differ in structure ({name}); cannot stack them")
    stacked = {
        name: np.ascontiguousarray(np.concatenate([getattr(m, name) for m in models], axis=0))
        for name in DRAW_ARRAYS
    }
    return dataclasses.replace(first, **stacked)


def econ_range_problem(model: ModelArrays, horizon: float) -> str | None:
    """Why a patient's costs, QALYs or life-years could exceed what the engine sums exactly
    (a message naming the state, input and bound), or None if they cannot.

    The engine rounds each patient's values to int64 fixed point (``codes.ECON_SCALE``)
    and needs them within ``codes.ECON_MAX_FIXED``: 4.6e15 currency units, 4.6e9 years.
    A patient spends at most ``horizon`` months in all and enters each state of its
    sequence at most once (sequences are acyclic), so per draw and sequence:
    |cost| <= max |cost per month| * horizon + sum |entry cost| + |cost at death|,
    |QALYs| <= max |utility| * (1 + |b1| horizon + |b2| horizon^2) * horizon
    + sum |entry QALYs| (b1, b2 the utility trend) and
    life-years <= horizon / 12, each times the largest discount factor (1 unless the
    rate is negative). Only arithmetic on the model's arrays (no numba, no side
    effects), so scenario validation can call it before anything is simulated.

    Parameters
    ----------
    model : ModelArrays
        A compiled model with any number of draws (no economics: None).
    horizon : float
        The simulation horizon, months.

    Returns
    -------
    str or None
        For the first draw and sequence over a bound, e.g. "state 'L2:lenvatinib'
        (sequence 'sor_len'): cost per month 1e+14 over a 120-month horizon bounds a
        patient's cost at 1.2e+16; at most 4.6e+15 (currency units) can be accumulated
        exactly" (", draw d" inside the parentheses when the model has several draws).
    """
    if not model.has_economics:
        return None
    state_econ = model.state_econ  # (n_draws, n_states, 4)
    econ_globals = model.econ_globals  # (n_draws, 5)
    several = model.n_draws > 1

    def where(d: int, s: int | None = None) -> str:
        if s is None:
            return f"draw {d}: " if several else ""
        seq = model.seq_names[model.state_seq_idx[s]]
        draw = f", draw {d}" if several else ""
        return f"state {model.state_names[s]!r} (sequence {seq!r}{draw})"

    bad = np.argwhere(~np.isfinite(state_econ))
    if bad.size:
        d, s, k = bad[0]
        value = state_econ[d, s, k] * (12.0 if k == 1 else 1.0)  # utility per year
        return f"{where(d, s)}: {_STATE_ECON_NAMES[k]} is {value}; it must be finite"
    bad = np.argwhere(~np.isfinite(econ_globals))
    if bad.size:
        d, k = bad[0]
        return f"{where(d)}{_ECON_GLOBAL_NAMES[k]} is {econ_globals[d, k]}; it must be finite"

    h = float(horizon)
    rate_c, rate_q, death, b1, b2 = econ_globals.T  # each (n_draws,)
    # largest discount factor e^(-rate t) over [0, h]: above 1 only for a negative rate
    grow_c = np.exp(np.maximum(0.0, -rate_c) * h)
    grow_q = np.exp(np.maximum(0.0, -rate_q) * h)
    # |1 + b1 t + b2 t^2| over [0, h], bounded termwise: the engine integrates the terms
    # separately, so this also covers its rounding when they cancel
    trend = 1.0 + np.abs(b1) * h + np.abs(b2) * h * h
    limit_cost = ECON_MAX_FIXED / ECON_SCALE[ECON_COST]
    limit_years = ECON_MAX_FIXED / ECON_SCALE[ECON_QALY]  # life-years share the scale
    exactly = "can be accumulated exactly"
    # (draw, state) terms: accrued over time (at most the horizon in all) or once on entry
    cost_run = np.abs(state_econ[:, :, 0]) * h * grow_c[:, None]
    cost_entry = np.abs(state_econ[:, :, 2]) * grow_c[:, None]
    cost_death = np.abs(death) * grow_c
    qaly_run = np.abs(state_econ[:, :, 1]) * h * (trend * grow_q)[:, None]
    qaly_entry = np.abs(state_econ[:, :, 3]) * grow_q[:, None]
    lys = h / 12.0 * grow_q
    for q in range(len(model.seq_names)):
        states = np.flatnonzero(model.state_seq_idx == q)
        cost = cost_run[:, states].max(axis=1) + cost_entry[:, states].sum(axis=1) + cost_death
        qaly = qaly_run[:, states].max(axis=1) + qaly_entry[:, states].sum(axis=1)
        over = ~((cost <= limit_cost) & (qaly <= limit_years) & (lys <= limit_years))
        if not over.any():
            continue
        d = int(np.argmax(over))
        if not cost[d] <= limit_cost:
            run = states[np.argmax(cost_run[d, states])]
            entry = states[np.argmax(cost_entry[d, states])]
            culprit = _largest(
                (
                    cost_run[d, run],
                    f"{where(d, run)}: cost per month {state_econ[d, run, 0]:.3g} "
                    f"over a {h:g}-month horizon",
                ),
                (
                    cost_entry[d, entry],
                    f"{where(d, entry)}: entry cost {state_econ[d, entry, 2]:.3g}",
                ),
                (cost_death[d], f"{where(d)}cost at death {death[d]:.3g}"),
            )
            return (
                f"{culprit} bounds a patient's cost at {cost[d]:.3g}{_growth(grow_c[d])}; "
                f"at most {limit_cost:.2g} (currency units) {exactly}"
            )
        if not qaly[d] <= limit_years:
            run = states[np.argmax(qaly_run[d, states])]
            entry = states[np.argmax(qaly_entry[d, states])]
            with_trend = f" with a utility trend up to x{trend[d]:.3g}" if trend[d] > 1 else ""
            culprit = _largest(
                (
                    qaly_run[d, run],
                    f"{where(d, run)}: utility {state_econ[d, run, 1] * 12:.3g} a year "
                    f"over a {h:g}-month horizon{with_trend}",
                ),
                (
                    qaly_entry[d, entry],
                    f"{where(d, entry)}: entry QALYs {state_econ[d, entry, 3]:.3g}",
                ),
            )
            return (
                f"{culprit} bounds a patient's QALYs at {qaly[d]:.3g}{_growth(grow_q[d])}; "
                f"at most {limit_years:.2g} (years) {exactly}"
            )
        return (
            f"{where(d)}a {h:g}-month horizon bounds a patient's life-years at {lys[d]:.3g}"
            f"{_growth(grow_q[d])}; at most {limit_years:.2g} (years) {exactly}"
        )
    return None


_STATE_ECON_NAMES = ("cost per month", "utility (a year)", "entry cost", "entry QALYs")
_ECON_GLOBAL_NAMES = (
    "cost discount rate (continuous, per month)",
    "QALY discount rate (continuous, per month)",
    "cost at death",
    "utility trend coefficient b1",
    "utility trend coefficient b2",
)


def _largest(*candidates: tuple[float, str]) -> str:
    """The text of the candidate (value, text) with the largest value."""
    return max(candidates, key=lambda c: c[0])[1]


def _growth(factor: float) -> str:
    return f" (a negative discount rate multiplies it by up to {factor:.3g})" if factor > 1 else ""
