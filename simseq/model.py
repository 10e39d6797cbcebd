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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from simseq.distributions import FAMILIES_BY_CODE, Distribution, get_family
from simseq.econ import monthly_discount_rate
from simseq.engine.codes import (
    ECON_COST,
    ECON_MAX_FIXED,
    ECON_QALY,
    ECON_SCALE,
    EVENT_DEATH,
    EVENT_NAMES,
    N_PARAMS,
    N_STATE_ECON,
    NUMBERS,
    STATE_COST,
    STATE_DEAD,
    STATE_ENTRY_COST,
    STATE_TREATMENT_COST,
    STATE_TREATMENT_MAX,
    STATE_TREATMENT_STOP_RATE,
    STRUCTURE,
)
from simseq.fit import FitError, fit_median
from simseq.params import Value
from simseq.treatment import stop_rate

DEAD = None  # destination meaning death


@dataclass(frozen=True)
class Destination:
    """Where a ringing clock sends the patient: ``state`` (None = dead), event, probability."""

    state: str | None
    event: int
    probability: "Value | float"


def _lift(x: "Value | float") -> Value:
    return Value.lift(x)


def _lift_map(m: Mapping[str, "Value | float"]) -> dict[str, Value]:
    return {k: Value.lift(v) for k, v in m.items()}


_LOG_LOG_HALF = math.log(-math.log(0.5))


@dataclass(frozen=True, eq=False)
class Law:
    """A clock's time-to-event distribution with its numbers as ``Value``s of the parameter
    rows: a family, its given parameters, optionally the median its time scale is fitted
    to (``fit.fit_median``), and hazard ratios applied in order (``Distribution.ph``)."""

    family: str
    given: Mapping[str, Value]
    median: Value | None = None
    hazard_ratios: tuple[Value, ...] = ()

    @classmethod
    def fixed(cls, dist: Distribution) -> "Law":
        """A law with ``dist``'s numbers as constants."""
        hrs = () if dist.hr == 1.0 else (Value.const(dist.hr),)
        return cls(dist.family, _lift_map(dist.param_dict), None, hrs)

    def ph(self, hr: "Value | float") -> "Law":
        """The hazard multiplied by ``hr`` (after the ratios already applied)."""
        return dataclasses.replace(self, hazard_ratios=(*self.hazard_ratios, _lift(hr)))

    def base_distribution(self) -> Distribution:
        """The distribution at the base values (FitError or ValueError if it has none)."""
        given = {k: v.base for k, v in self.given.items()}
        if self.median is None:
            dist = Distribution.from_dict(self.family, given)
        else:
            dist = fit_median(self.family, self.median.base, given).distribution
        for hr in self.hazard_ratios:
            dist = dist.ph(hr.base) if hr.base != 1.0 else dist
        return dist

    def bind(self, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(params float64 (n, n_family_params), hr float64 (n,)) at each row."""
        fam = get_family(self.family)
        given = {k: v.of(rows) for k, v in self.given.items()}
        n = 1 if rows is None else rows.shape[0]
        if self.median is None:
            params = [np.broadcast_to(given[k], (n,)) for k in fam.param_names]
        else:
            params = _fit_medians(fam, self.median.of(rows), given)
        params = np.stack(params, axis=1)
        bad = ~np.isfinite(params).all(axis=1)
        for k, dom in enumerate(fam._domains):
            if dom == "positive":
                bad |= ~(params[:, k] > 0)
        hr = np.ones(n)
        for ratio in self.hazard_ratios:
            r = ratio.of(rows)
            bad |= ~(np.isfinite(r) & (r > 0))
            folded = fam.ph_params(r, *params.T)
            if folded is None:
                hr = hr * r
            else:
                params = np.stack([np.broadcast_to(x, (n,)) for x in folded], axis=1)
        if bad.any():
            d = int(np.flatnonzero(bad)[0])
            values = dict(zip(fam.param_names, params[d].tolist(), strict=True))
            raise BindError(f"draw {d}: {self.family} parameters {values} are not valid")
        return params, hr


def _fit_medians(fam, median: np.ndarray, given: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Parameters (in ``fam.param_names`` order, each (n,)) through S(median) = 1/2 with the
    ``given`` ones fixed: the family's closed form (``Family.solve_scale``) for all rows at
    once where it holds to the precision ``fit.fit_median`` asks, ``fit_median`` row by row
    elsewhere (a row it cannot fit raises BindError naming the draw)."""
    n = median.shape[0]
    free = [k for k in fam.param_names if k not in given]
    params = {k: np.broadcast_to(v, (n,)) for k, v in given.items()}
    ok = np.zeros(n, bool)
    if free == [fam.scale_param]:
        try:
            with np.errstate(all="ignore"):
                scale = np.broadcast_to(
                    np.asarray(fam.solve_scale(median, 0.5, params), np.float64), (n,)
                )
        except (TypeError, ArithmeticError, ValueError):  # a scalar-only closed form
            scale = np.full(n, np.nan)
        params[fam.scale_param] = scale
        with np.errstate(all="ignore"):
            ordered = [params[k] for k in fam.param_names]
            err = np.log(fam.cumhaz(median, *ordered)) - _LOG_LOG_HALF
            got = fam.quantile(0.5, *ordered)
        ok = (np.abs(err) < 1e-12) & (np.abs(got - median) <= 1e-9 * median) & (median > 0)
    if not ok.all():
        params = {k: np.array(v, np.float64) for k, v in params.items()}
        for k in free:
            params.setdefault(k, np.full(n, np.nan))
        for d in np.flatnonzero(~ok):
            fixed = {k: float(v[d]) for k, v in given.items()}
            try:
                fitted = fit_median(fam.name, float(median[d]), fixed).distribution
            except (FitError, ValueError) as err:
                raise BindError(f"draw {int(d)}: {err}") from None
            for k, v in fitted.param_dict.items():
                params[k][d] = v
    return [params[k] for k in fam.param_names]


@dataclass(frozen=True)
class Clock:
    """One competing time-to-event clock of a state."""

    distribution: "Distribution | Law"
    destinations: tuple[Destination, ...]
    covariate_log_hr: Mapping[str, "Value | float"] = field(default_factory=dict)
    """Log hazard ratio per covariate name, applied when the patient has it."""

    @property
    def law(self) -> Law:
        d = self.distribution
        return d if isinstance(d, Law) else Law.fixed(d)


@dataclass(frozen=True)
class State:
    """A state of one sequence. ``line`` is the line of therapy (0: not on treatment)."""

    name: str
    clocks: tuple[Clock, ...]
    line: int = 0
    regimen: str | None = None
    role: str = "line"
    """One of "line" (on a line of therapy), "post_progression", "no_further_therapy"."""
    cost_per_month: "Value | float" = 0.0
    """Cost accrued continuously while in the state (currency per month)."""
    utility: "Value | float" = 0.0
    """Health-state utility (QALYs per year in the state)."""
    entry_cost: "Value | float" = 0.0
    """One-off cost on entering the state (e.g. expected adverse-event costs of a line)."""
    entry_qalys: "Value | float" = 0.0
    """One-off QALY change on entering the state (negative: a disutility, in QALYs)."""
    treatment_cost_per_month: "Value | float" = 0.0
    """Cost per month while on treatment (drugs, administration): from entry until the
    first of leaving the state, an early stop (``treatment_stop_share``) and
    ``treatment_max_months``."""
    treatment_stop_share: "Value | float" = 0.0
    """Share of entrants who stop treatment early (e.g. for adverse events) before leaving
    the state: a constant hazard, independent of the state's clocks, whose rate ``bind``
    solves per draw (``simseq.treatment.stop_rate``)."""
    treatment_max_months: "Value | float" = math.inf
    """Stopping rule: treatment stops this many months after entry (inf: never)."""


@dataclass(frozen=True)
class Economics:
    """Model-wide economic settings: discount rates (annual) and the one-off cost at death."""

    discount_costs: "Value | float" = 0.0
    discount_qalys: "Value | float" = 0.0
    death_cost: "Value | float" = 0.0
    utility_trend: tuple["Value | float", "Value | float"] = (0.0, 0.0)
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
    prevalence: "Value | float"


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
    """float64 (n_draws, n_states, N_STATE_ECON): cost per month, QALYs per month, entry
    cost, entry QALYs, cost per month on treatment, treatment stop rate (per month),
    months after which treatment stops (the ``codes.STATE_*`` columns)."""
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
            probs = np.array([_lift(d.probability).base for d in clock.destinations])
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


def _key_of(effects: Mapping[str, "Value | float"]) -> tuple:
    """Hashable identity of covariate effects: constants by value, drawn ones by object."""
    return tuple(
        sorted((k, v.base if v.is_constant else id(v)) for k, v in _lift_map(effects).items())
    )


def _merge_groups(state: State) -> list[list[Clock]]:
    """Competing clocks grouped for merging: those whose cumulative hazards are powers of t
    with one k (``Distribution.power_form`` at the base values) and the same covariate
    effects share a group; every other clock is a group of its own.

    The minimum of independent Weibull times with a common shape k and cumulative
    hazards a_i t^k is Weibull with a = sum a_i, and which one rang is independent of
    when, with probability a_i / a. So one draw plus the cause split it already has
    replaces several draws: exact in distribution, and the hot loop's most expensive
    work halves for cause-specific models. Clocks with different covariate effects are
    kept apart (the split would then depend on the patient).
    """
    groups: dict[tuple, list[Clock]] = {}
    for clock in state.clocks:
        form = clock.law.base_distribution().power_form()
        key = (form[0], _key_of(clock.covariate_log_hr)) if form else (id(clock),)
        groups.setdefault(key, []).append(clock)
    return list(groups.values())


@dataclass(frozen=True)
class _ClockSlot:
    """A compiled clock: the laws of the clocks merged into it (one when nothing merged)
    and its destinations as (state index, event, probability, index of its law)."""

    laws: tuple["Law", ...]
    family: str
    dests: tuple[tuple[int, int, Value, int], ...]
    covariate_log_hr: Mapping[str, Value]


@dataclass(frozen=True)
class Structure:
    """What a resolution fixes (states, clocks, destinations, labels) with every number a
    ``Value`` of the parameter rows; ``bind`` turns rows into ``ModelArrays``. Competing
    clocks are merged as ``_merge_groups`` decides at the base values (``bind`` checks
    that their shapes still agree in every row)."""

    template: ModelArrays
    """The integer arrays and labels; its number arrays have no draws."""
    clocks: tuple[_ClockSlot, ...]
    cov_prevalence: tuple[Value, ...]
    state_econ: tuple[tuple[Value, ...], ...]
    """Per state, the ``codes.STATE_*`` columns, except that the treatment stop rate's
    column holds the stop share (``bind`` turns it into a rate)."""
    economics: Economics | None


def structure_of(
    sequences: Sequence[SequenceModel],
    covariates: Sequence[Covariate] = (),
    economics: Economics | None = None,
) -> Structure:
    """Validate sequences and flatten them into the kernels' layout; numbers stay Values."""
    cov_names = tuple(c.name for c in covariates)
    if len(cov_names) > 63:
        raise ValueError(f"at most 63 covariates are supported, got {len(cov_names)}")
    for seq in sequences:
        _validate(seq, set(cov_names))
    seq_names = tuple(seq.name for seq in sequences)
    if len(set(seq_names)) != len(seq_names):
        raise ValueError(f"duplicate sequence names in {list(seq_names)}")

    state_rows, slots, dest_rows, seq_start = [], [], [], []
    for q, seq in enumerate(sequences):
        local = {st.name: len(state_rows) + i for i, st in enumerate(seq.states)}
        seq_start.append(len(state_rows))
        for st in seq.states:
            clock_lo = len(slots)
            for group in _merge_groups(st):
                dests = tuple(
                    (
                        STATE_DEAD if d.state is None else local[d.state],
                        d.event,
                        _lift(d.probability),
                        j,
                    )
                    for j, clock in enumerate(group)
                    for d in clock.destinations
                )
                families = {c.law.family for c in group}
                # Clocks of one family stay in it (exponentials merge to an exponential); a
                # mix becomes a Weibull, the family every H(t) = a t^k belongs to.
                family = families.pop() if len(families) == 1 else "weibull"
                laws = tuple(c.law for c in group)
                effects = _lift_map(group[0].covariate_log_hr)
                dest_lo = len(dest_rows)
                dest_rows += [(s, e) for s, e, _, _ in dests]
                slots.append((_ClockSlot(laws, family, dests, effects), dest_lo, len(dest_rows)))
            state_rows.append((st, q, clock_lo, len(slots)))

    n_slots, n_cov = len(slots), len(cov_names)
    template = ModelArrays(
        seq_names=seq_names,
        seq_start_state=np.array(seq_start, np.int64),
        state_names=tuple(st.name for st, *_ in state_rows),
        state_seq_idx=np.array([q for _, q, _, _ in state_rows], np.int64),
        state_line=np.array([st.line for st, *_ in state_rows], np.int64),
        state_regimen=tuple(st.regimen for st, *_ in state_rows),
        state_role=tuple(st.role for st, *_ in state_rows),
        state_clock_lo=np.array([lo for *_, lo, _ in state_rows], np.int64),
        state_clock_hi=np.array([hi for *_, hi in state_rows], np.int64),
        clock_family=np.array([get_family(s.family).code for s, _, _ in slots], np.int64),
        clock_params=np.zeros((0, n_slots, N_PARAMS)),
        clock_hr=np.zeros((0, n_slots)),
        clock_dest_lo=np.array([lo for _, lo, _ in slots], np.int64),
        clock_dest_hi=np.array([hi for _, _, hi in slots], np.int64),
        dest_state=np.array([r[0] for r in dest_rows], np.int64),
        dest_event=np.array([r[1] for r in dest_rows], np.int64),
        dest_cumprob=np.zeros((0, len(dest_rows))),
        cov_names=cov_names,
        cov_prevalence=np.zeros((0, n_cov)),
        cov_log_hr=np.zeros((0, n_slots, n_cov)),
        max_steps=max(len(seq.states) for seq in sequences),
        stride=max(hi - lo for *_, lo, hi in state_rows) + 1,
        has_economics=economics is not None,
        state_econ=np.zeros((0, len(state_rows), N_STATE_ECON)),
        econ_globals=np.zeros((0, 5)),
    )
    return Structure(
        template=template,
        clocks=tuple(s for s, _, _ in slots),
        cov_prevalence=tuple(_lift(c.prevalence) for c in covariates),
        state_econ=tuple(
            (
                _lift(st.cost_per_month),
                _lift(st.utility) / 12.0,
                _lift(st.entry_cost),
                _lift(st.entry_qalys),
                _lift(st.treatment_cost_per_month),
                _lift(st.treatment_stop_share),
                _lift(st.treatment_max_months),
            )
            for st, *_ in state_rows
        ),
        economics=economics,
    )


class BindError(ValueError):
    """A row of parameters gives a model the kernels cannot run (the message names the draw)."""


def bind(structure: Structure, rows: np.ndarray | None = None) -> ModelArrays:
    """ModelArrays with one draw per row of ``rows`` (float64 (n_draws, n_columns) of the
    parameter table; None: one draw at the Values' base values).

    Vectorised over rows: a distribution is fitted to its median in closed form where its
    family has one (``Law.bind``), row by row otherwise. Raises ``BindError`` naming the
    first draw whose numbers the kernels cannot use.
    """
    n = 1 if rows is None else rows.shape[0]
    t = structure.template
    n_clocks, n_dests, n_cov = len(structure.clocks), t.dest_state.shape[0], len(t.cov_names)
    clock_params = np.zeros((n, n_clocks, N_PARAMS))
    clock_hr = np.ones((n, n_clocks))
    dest_cumprob = np.zeros((n, n_dests))
    cov_log_hr = np.zeros((n, n_clocks, n_cov))
    for c, slot in enumerate(structure.clocks):
        bound = [law.bind(rows) for law in slot.laws]
        if len(bound) == 1:
            (params, hr), weights = bound[0], None
        else:
            params, hr, weights = _merge_bound(slot, bound)
        clock_params[:, c, : params.shape[1]] = params
        clock_hr[:, c] = hr
        lo = int(t.clock_dest_lo[c])
        cum = np.zeros(n)
        for k, (_, _, prob, j) in enumerate(slot.dests):
            p = prob.of(rows)
            cum = cum + (p if weights is None else p * weights[j])
            dest_cumprob[:, lo + k] = cum
        _check_split(dest_cumprob[:, lo : lo + len(slot.dests)], t, c)
        dest_cumprob[:, lo + len(slot.dests) - 1] = 1.0  # guard against rounding
        for k, name in enumerate(t.cov_names):
            if name in slot.covariate_log_hr:
                cov_log_hr[:, c, k] = slot.covariate_log_hr[name].of(rows)
    cov_prevalence = np.zeros((n, n_cov))
    for k, prevalence in enumerate(structure.cov_prevalence):
        cov_prevalence[:, k] = prevalence.of(rows)
    state_econ = np.zeros((n, len(structure.state_econ), N_STATE_ECON))
    for s, values in enumerate(structure.state_econ):
        for k, v in enumerate(values):
            state_econ[:, s, k] = v.of(rows)
    if structure.economics is not None:
        _stop_rates(state_econ, t, clock_params, clock_hr)
    else:  # only treatment costs use the stop rates: none to solve
        state_econ[:, :, STATE_TREATMENT_STOP_RATE] = 0.0
    econ = structure.economics or Economics()
    econ_globals = np.stack(
        [
            monthly_discount_rate(_lift(econ.discount_costs).of(rows)),
            monthly_discount_rate(_lift(econ.discount_qalys).of(rows)),
            _lift(econ.death_cost).of(rows),
            _lift(econ.utility_trend[0]).of(rows),
            _lift(econ.utility_trend[1]).of(rows),
        ],
        axis=1,
    )
    return dataclasses.replace(
        t,
        clock_params=clock_params,
        clock_hr=clock_hr,
        dest_cumprob=dest_cumprob,
        cov_prevalence=cov_prevalence,
        cov_log_hr=cov_log_hr,
        state_econ=state_econ,
        econ_globals=econ_globals,
    )


def _stop_rates(state_econ: np.ndarray, t: ModelArrays, clock_params, clock_hr) -> None:
    """Replace each state's treatment stop share by its rate (``treatment.stop_rate``), in
    place; solved once per distinct (clocks, share), as the states of one regimen in
    several sequences share them. BindError naming the state and draw it fails for."""
    solved: dict[bytes, np.ndarray] = {}
    for s in range(state_econ.shape[1]):
        share = state_econ[:, s, STATE_TREATMENT_STOP_RATE].copy()
        if not (share != 0.0).any():
            continue
        lo, hi = t.state_clock_lo[s], t.state_clock_hi[s]
        params, hr, codes = clock_params[:, lo:hi], clock_hr[:, lo:hi], t.clock_family[lo:hi]
        key = b"".join(a.tobytes() for a in (share, params, hr, codes))
        if key not in solved:
            families = [FAMILIES_BY_CODE[int(f)] for f in codes]
            try:
                solved[key] = stop_rate(share, families, params, hr)
            except ValueError as err:
                raise BindError(f"state {t.state_names[s]!r}: {err}") from None
        state_econ[:, s, STATE_TREATMENT_STOP_RATE] = solved[key]


def _merge_bound(slot: _ClockSlot, bound: list) -> tuple:
    """(params, hr, weights) of merged clocks: sum_i a_i t^k is the power form of the
    merged clock, and clock i rings first with probability a_i / sum a."""
    forms = []
    for law, (params, hr) in zip(slot.laws, bound, strict=True):
        fam = get_family(law.family)
        k, a = fam.power_form(*params[:, : len(fam.param_names)].T)
        forms.append((np.broadcast_to(k, hr.shape), hr * a))
    k0 = forms[0][0]
    for k, _ in forms[1:]:
        bad = np.flatnonzero(k != k0)
        if bad.size:
            d = int(bad[0])
            raise BindError(
                f"draw {d}: competing clocks merged at the base values have shapes "
                f"{float(k0[d]):g} and {float(k[d]):g}; clocks merged for a common shape "
                "must share one shape parameter"
            )
    total_a = forms[0][1]
    for _, a in forms[1:]:
        total_a = total_a + a
    merged = get_family(slot.family).from_power_form(k0, total_a)
    params = np.stack([np.broadcast_to(x, total_a.shape) for x in merged], axis=1)
    return params, np.ones_like(total_a), [a / total_a for _, a in forms]


def _check_split(cum: np.ndarray, t: ModelArrays, c: int) -> None:
    """Every draw's destination probabilities of clock c (cumulated: ``cum``, (n, k)) are
    >= 0 and sum to 1."""
    steps = np.diff(cum, axis=1, prepend=0.0)
    bad = np.flatnonzero(~(np.abs(cum[:, -1] - 1.0) <= 1e-9) | (steps < 0).any(axis=1))
    if bad.size:
        d = int(bad[0])
        s = int(np.searchsorted(t.state_clock_hi, c, side="right"))
        raise BindError(
            f"draw {d}: destination probabilities {steps[d].tolist()} of a clock of state "
            f"{t.state_names[s]!r} must be >= 0 and sum to 1"
        )


def compile_model(
    sequences: Sequence[SequenceModel],
    covariates: Sequence[Covariate] = (),
    economics: Economics | None = None,
    rows: np.ndarray | None = None,
) -> ModelArrays:
    """``bind(structure_of(sequences, covariates, economics), rows)``: one draw at the base
    values when ``rows`` is None."""
    return bind(structure_of(sequences, covariates, economics), rows)


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
    state_econ = model.state_econ  # (n_draws, n_states, N_STATE_ECON)
    econ_globals = model.econ_globals  # (n_draws, 5)
    several = model.n_draws > 1

    def where(d: int, s: int | None = None) -> str:
        if s is None:
            return f"draw {d}: " if several else ""
        seq = model.seq_names[model.state_seq_idx[s]]
        draw = f", draw {d}" if several else ""
        return f"state {model.state_names[s]!r} (sequence {seq!r}{draw})"

    finite = np.isfinite(state_econ)
    finite[:, :, STATE_TREATMENT_MAX] |= state_econ[:, :, STATE_TREATMENT_MAX] == np.inf
    bad = np.argwhere(~finite)
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
    cost_run = (
        np.abs(state_econ[:, :, STATE_COST]) + np.abs(state_econ[:, :, STATE_TREATMENT_COST])
    ) * (h * grow_c[:, None])
    cost_entry = np.abs(state_econ[:, :, STATE_ENTRY_COST]) * grow_c[:, None]
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
                    f"{where(d, run)}: cost per month {cost_run[d, run] / h / grow_c[d]:.3g} "
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


_STATE_ECON_NAMES = (
    "cost per month",
    "utility (a year)",
    "entry cost",
    "entry QALYs",
    "cost per month on treatment",
    "treatment stop rate (per month)",
    "months after which treatment stops",
)
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
