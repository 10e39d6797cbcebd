"""Turn a validated scenario into model sequences, recording where every number came from.

Resolution looks up evidence ids, pools medians, fits distributions to medians,
builds the state graph of each sequence and flags transported evidence. A
problem (unknown id, a counts record cited as a median, a count key that does
not exist ...) is reported as a ``ScenarioError`` naming the key path.
"""

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from simseq.engine.codes import EVENT_DEATH, EVENT_DETERIORATION, EVENT_PROGRESSION
from simseq.evidence import (
    EvidenceBase,
    Record,
    UnknownEvidenceId,
    load_evidence,
    with_user_evidence,
)
from simseq.fit import Z95, FitError, se_log_median
from simseq.limits import MAX_TALLY_BYTES, TALLY_BYTES_PER_BIN
from simseq.meta_analysis import MedianSource, PooledMedian, pool_medians
from simseq.model import (
    Clock,
    Covariate,
    Destination,
    Economics,
    Law,
    SequenceModel,
    State,
    Structure,
    structure_of,
)
from simseq.params import Beta, Dirichlet, Gamma, LogNormal, Parameter, ParameterTable, Value
from simseq.scenario import (
    HORIZON,
    DistSpec,
    Domain,
    Line,
    Pooling,
    Quantity,
    Regimen,
    Scenario,
    ScenarioError,
    Target,
    Uncertainty,
    check_centre,
    free_key,
    freed_quantity,
    number_fields,
    simulation_problems,
)

_CAUSE_EVENTS = {
    "progression": EVENT_PROGRESSION,
    "death": EVENT_DEATH,
    "deterioration": EVENT_DETERIORATION,
}


@dataclass(frozen=True)
class Provenance:
    """Where one number used by the model came from."""

    path: str  # key path in the scenario
    value: float
    kind: str  # "evidence", "pool", "assumption", "calibrated", "derived"
    ids: tuple[str, ...] = ()
    note: str = ""
    illustrative: bool = False
    key: str = ""
    """Identity of the underlying parameter: numbers citing the same evidence the same way
    share a key, and so share one draw in probabilistic sensitivity analysis."""
    uncertainty: object = None
    """The sampling distribution the evidence supports (``simseq.params``: LogNormal,
    Beta, Dirichlet), or None when it says nothing."""
    pooling: PooledMedian | None = None
    """For a pooled median: the pool, with its heterogeneity statistics."""


@dataclass(frozen=True)
class CalibrationTarget:
    """A calibration target resolved: which median it frees and the value it asks for."""

    index: int
    """Position in the scenario's calibration.targets."""
    spec: Target
    value: Value
    """The published (or assumed) summary, months, as a Value of the parameter rows."""
    free: str
    """"<regimen>.<part>": the calibrated median it solves (a key of calibrated_columns);
    "" for a target of a Bayesian calibration."""
    bounds: tuple[float, float]
    """The bracket of the free median, months (() for a Bayesian target)."""
    se: float = math.nan
    """Bayesian targets: SE of the log median (a median) or of the proportion (a
    landmark), from the evidence or the target's ``se:``."""
    unit: str = "months"
    """"months" (a median) or "probability" (a landmark)."""


@dataclass(frozen=True)
class Transport:
    """A regimen used after a different prior line than its evidence was measured after."""

    sequence: str
    line: int
    regimen: str
    evidence_ids: tuple[str, ...]
    measured_after: str
    used_after: str
    hazard_ratio: float


@dataclass(frozen=True)
class Borrowed:
    """Evidence measured on one regimen (or after one first line) used for another."""

    path: str
    """Key path of the number."""
    evidence_id: str
    measured_on: str
    """The agent the evidence is about, or the first line it was measured after."""
    used_for: str
    """The agent it stands for here."""


@dataclass(frozen=True)
class Renormalised:
    """Mix categories dropped for lack of evidence, and the probabilities kept."""

    sequence: str
    line: int
    dropped: dict[str, int]
    kept: dict[str, float]


@dataclass
class Resolved:
    """A scenario ready to compile: sequences plus the record of every number."""

    scenario: Scenario
    sequences: list[SequenceModel]
    horizon: float
    covariates: list[Covariate] = field(default_factory=list)
    economics: Economics | None = None
    """Model-wide economic settings when the scenario has economics (per-state values are
    on the states)."""
    econ_inputs: dict = field(default_factory=dict)
    """Derived economic inputs worth reporting (e.g. drug cost per month per regimen)."""
    provenance: list[Provenance] = field(default_factory=list)
    transports: list[Transport] = field(default_factory=list)
    renormalised: list[Renormalised] = field(default_factory=list)
    borrowed: list[Borrowed] = field(default_factory=list)
    """Evidence used for another regimen (or after another first line) than it was
    measured on: flagged in every output, as transported evidence is."""
    user_evidence: dict[str, str] = field(default_factory=dict)
    """Evidence ids used that are not simseq's packaged figures -> where they come from
    (the user's evidence file, or the scenario's inline records)."""
    table: ParameterTable = field(default_factory=ParameterTable)
    """Every input as a named column (``simseq.params``); the sequences' numbers are
    ``Value``s of its rows."""
    calibrated_columns: dict[str, int] = field(default_factory=dict)
    """"<regimen>.<part>" of each calibrated median -> its column in ``table``."""
    path_values: dict[str, Value] = field(default_factory=dict)
    """Key path -> the Value of the scalar number used there."""
    cohorts: list[SequenceModel] = field(default_factory=list)
    """One calibration cohort per regimen with a calibration target ("cohort:<regimen>")."""
    targets: list["CalibrationTarget"] = field(default_factory=list)
    """The targets of a point calibration, in the scenario's order."""
    bayes_targets: list["CalibrationTarget"] = field(default_factory=list)
    """The targets of a Bayesian calibration, in the scenario's order."""
    free_columns: dict[str, int] = field(default_factory=dict)
    """Bayesian calibration: key path of each free parameter (``calibration.priors``) ->
    its column in ``table``."""
    cohort_populations: dict[str, dict[str, Value]] = field(default_factory=dict)
    """Regimen id -> covariate name -> its prevalence in the cohorts of the regimen's
    evidence (``Regimen.cohort_population``, else the scenario's)."""

    def cohort_structure(self) -> Structure | None:
        """The calibration cohorts flattened for binding rows of ``table`` (None without
        calibration targets)."""
        if not self.cohorts:
            return None
        covariates = [
            c
            for seq in self.cohorts
            if seq.name.startswith("cohort:")
            for c in self.cohort_covariates(seq.name.split(":", 1)[1])
        ]
        if any(not seq.name.startswith("cohort:") for seq in self.cohorts):
            # a landmark target's whole sequence lives in the common population
            covariates += self.covariates
        return structure_of(self.cohorts, covariates)

    def cohort_covariates(self, regimen: str) -> list[Covariate]:
        """The covariates of ``regimen``'s calibration cohort: a copy of each population
        covariate (``cohort_covariate``) at its prevalence in the regimen's cohorts, so
        that cohorts of different mixes can be simulated side by side."""
        prevalence = self.cohort_populations[regimen]
        return [
            Covariate(cohort_covariate(c.name, regimen), prevalence[c.name])
            for c in self.covariates
        ]

    def observed_population(self, regimen: str) -> list[Covariate]:
        """The population covariates at their prevalences in ``regimen``'s cohorts."""
        prevalence = self.cohort_populations[regimen]
        return [Covariate(c.name, prevalence[c.name]) for c in self.covariates]

    def provenance_at(self, row: np.ndarray) -> list[Provenance]:
        """``provenance`` with each scalar number's value at ``row`` (n_columns,): the
        calibrated medians solved, inputs set by name."""
        at = row[None, :]
        return [
            dataclasses.replace(p, value=float(self.path_values[p.path].of(at)[0]))
            if p.path in self.path_values
            else p
            for p in self.provenance
        ]

    def structure(self) -> Structure:
        """The sequences flattened for binding rows of ``table`` (``model.bind``)."""
        return structure_of(self.sequences, self.covariates, self.economics)


def cohort_covariate(name: str, regimen: str) -> str:
    """Name of covariate ``name``'s copy in the calibration cohort of ``regimen``."""
    return f"{name}@cohort:{regimen}"


def scenario_evidence(scenario: Scenario, file: str = "<scenario>") -> EvidenceBase:
    """simseq's packaged evidence plus the scenario's own (``evidence:`` files and
    records); a problem in them is a ``ScenarioError`` naming the scenario file."""
    spec = scenario.evidence
    if spec is None:
        return load_evidence()
    try:
        return with_user_evidence(spec.files, spec.sources, spec.records, where=file)
    except ValueError as err:
        raise ScenarioError(file, [("evidence", None, str(err))]) from None


class _Resolver:
    def __init__(
        self, scenario: Scenario, evidence: EvidenceBase, calibrated, file: str, overrides=None
    ):
        self.sc = scenario
        self.ev = evidence
        self.calibrated = dict(calibrated or {})
        self.overrides = dict(overrides or {})
        self.file = file
        self.problems: list[tuple[str, object, str]] = []
        self.provenance: list[Provenance] = []
        self.table = ParameterTable()
        self.calibrated_columns: dict[str, int] = {}
        self.path_values: dict[str, Value] = {}
        self._seen_paths: set[str] = set()

    # -- numbers ---------------------------------------------------------------
    def _record(self, rid: str, path: str) -> Record | None:
        try:
            return self.ev.get(rid)
        except UnknownEvidenceId as err:
            self.problems.append((path, rid, str(err).strip("\"'")))
            return None

    def _note(self, prov: Provenance) -> None:
        if prov.path not in self._seen_paths:
            self._seen_paths.add(prov.path)
            self.provenance.append(prov)

    def _column(self, name: str, prov: Provenance, base: dict | float) -> Value | dict:
        """The parameter ``name`` (registered on first use, with ``prov``'s provenance; a
        later use adds its key path): a Value, or {category: Value} for a split."""
        if name in self.overrides:
            given = self.overrides[name]
            base = {k: float(given.get(k, 0.0)) for k in base} if isinstance(base, dict) else given
        if name not in self.table:
            cats = list(base) if isinstance(base, dict) else None
            group, unit = _group_and_unit(prov.path, prov.kind)
            dist = prov.uncertainty
            self.table.add(
                Parameter(
                    name=name,
                    columns=tuple(f"{name}[{c}]" for c in cats) if cats else (name,),
                    base=tuple(float(base[c]) for c in cats) if cats else (float(base),),
                    kind=prov.kind,
                    paths=(prov.path,),
                    ids=prov.ids,
                    note=prov.note,
                    group=group,
                    unit=unit,
                    distribution=dist,
                    fixed_because=_why_fixed(prov) if dist is None else "",
                    illustrative=prov.illustrative,
                    pooling=prov.pooling,
                )
            )
        else:
            p = self.table[name]
            if prov.path not in p.paths:
                self.table.replace(name, paths=(*p.paths, prov.path))
        p = self.table[name]
        first = self.table.column(p.columns[0])
        if len(p.columns) == 1 and not (isinstance(base, dict)):
            return Value.column(first, p.base[0])
        cats = [c[len(name) + 1 : -1] for c in p.columns]
        return {c: Value.column(first + i, p.base[i]) for i, c in enumerate(cats)}

    def median_of(self, rid: str, path: str) -> Record | None:
        rec = self._record(rid, path)
        if rec is None:
            return None
        if rec.quantity != "median" or rec.unit != "months" or rec.value is None:
            self.problems.append(
                (
                    path,
                    rid,
                    f"not a median in months (it is a {rec.quantity} record); cite a median record",
                )
            )
            return None
        return rec

    def quantity(self, q: Quantity, path: str, *, is_median: bool, calib_key: str = "") -> Value:
        """The number a Quantity stands for (a Value with base nan when it cannot be
        resolved; the problem is recorded)."""
        key = quantity_key(q, path)
        prov = self._quantity(q, path, is_median, calib_key)
        if prov is None:
            return Value.const(float("nan"))
        if key in self.overrides:
            value = float(self.overrides[key])
            prov = dataclasses.replace(prov, value=value)
        if not math.isfinite(prov.value):
            self.problems.append((path, prov.value, f"must be a finite number ({_source(prov)})"))
            return Value.const(float("nan"))
        self._note(dataclasses.replace(prov, key=key))
        value = self._column(key, prov, prov.value)
        self.path_values.setdefault(path, value)
        if prov.kind == "calibrated":
            self.calibrated_columns[calib_key] = self.table.column(key)
        return value

    def _quantity(self, q: Quantity, path: str, is_median: bool, calib_key: str):
        """Provenance (with value and uncertainty) of a Quantity, or None on a problem."""
        if q.value is not None:
            return Provenance(
                path,
                q.value,
                "assumption",
                note=_with_uncertainty_note(q.assumption or "", q.uncertainty),
                illustrative=q.illustrative,
                uncertainty=stated_uncertainty(q.uncertainty, q.value),
            )
        if q.calibrate is not None:
            if calib_key not in self.calibrated:
                self.problems.append(
                    (path, "calibrate", "not calibrated yet: run simseq calibrate")
                )
                return None
            value = float(self.calibrated[calib_key])
            return Provenance(path, value, "calibrated", note=f"solved for {calib_key}")
        if q.evidence is not None and q.field is not None:
            rec = self._record(q.evidence, f"{path}.evidence")
            if rec is None:
                return None
            v = (rec.values or {}).get(q.field)
            if not isinstance(v, int | float):
                known = sorted(rec.values or {})
                self.problems.append(
                    (f"{path}.field", q.field, f"not a number of {rec.id}; it has {known}")
                )
                return None
            return Provenance(
                path,
                float(v),
                "evidence",
                (rec.id,),
                _with_uncertainty_note(f"{q.field} of {rec.id}", q.uncertainty),
                uncertainty=self._stated_for_evidence(q, float(v), None, path),
            )
        if q.evidence is not None:
            if is_median:
                rec = self.median_of(q.evidence, f"{path}.evidence")
            else:
                rec = self._record(q.evidence, f"{path}.evidence")
                if rec is not None and rec.value is None:
                    self.problems.append((f"{path}.evidence", q.evidence, "record has no value"))
                    rec = None
            if rec is None:
                return None
            return Provenance(
                path,
                rec.value,
                "evidence",
                (rec.id,),
                _with_uncertainty_note(rec.note or "", q.uncertainty),
                uncertainty=self._stated_for_evidence(q, rec.value, _record_uncertainty(rec), path),
            )
        records = [self.median_of(rid, f"{path}.pool.{i}") for i, rid in enumerate(q.pool)]
        if any(rec is None for rec in records):
            return None
        cohorts = {rec.cohort for rec in records}
        if len(cohorts) > 1:
            mixed = ", ".join(f"{rec.id} ({rec.cohort or 'no cohort'})" for rec in records)
            self.problems.append(
                (
                    f"{path}.pool",
                    q.pool,
                    f"pools records of different cohorts: {mixed}; pool records of one "
                    "cohort (unadjusted or ps_matched), the one this scenario compares",
                )
            )
            return None
        how = q.pooling or Pooling()
        sources = [MedianSource(r.id, r.value, r.ci95, r.events, r.n) for r in records]
        try:
            pooled = pool_medians(sources, how.method, how.tau2)
        except FitError as err:
            self.problems.append((f"{path}.pool", q.pool, str(err)))
            return None
        se = pooled.pooled.predictive_se if how.psa == "predictive" else pooled.se
        draws = "predictive distribution (SE with tau^2)" if how.psa == "predictive" else "mean"
        return Provenance(
            path,
            pooled.value,
            "pool",
            pooled.ids,
            f"{pooled.description}; the PSA draws the pooled {draws}",
            uncertainty=LogNormal(se),
            pooling=pooled,
        )

    def _stated_for_evidence(self, q: Quantity, value: float, own, path: str):
        """The record's own sampling distribution, or the one the scenario states for
        evidence that reports none (stating one where the record has its own is refused)."""
        if q.uncertainty is None:
            return own
        if own is not None:
            self.problems.append(
                (
                    f"{path}.uncertainty",
                    q.uncertainty.distribution,
                    f"{q.evidence} reports its own uncertainty ({own.describe()}): remove "
                    "'uncertainty:'",
                )
            )
            return own
        try:
            check_centre(q.uncertainty, value)
        except ValueError as err:
            self.problems.append((f"{path}.uncertainty", q.uncertainty.distribution, str(err)))
            return None
        return stated_uncertainty(q.uncertainty, value)

    def distribution(self, spec: DistSpec, path: str, calib_key: str = "") -> Law | None:
        params = {
            name: self.quantity(q, f"{path}.{name}", is_median=False)
            for name, q in spec.params_given().items()
        }
        hrs = ()
        if spec.hazard_ratio is not None:
            hrs = (self.quantity(spec.hazard_ratio, f"{path}.hazard_ratio", is_median=False),)
        median = None
        if spec.median is not None:
            median = self.quantity(
                spec.median, f"{path}.median", is_median=True, calib_key=calib_key
            )
        # a number outside its domain (median or hazard ratio <= 0, a family's positive
        # parameter <= 0) is reported by resolve's check of every number against its domain
        domains = {path: d for path, d, _ in number_fields(spec, path)}
        values = {f"{path}.{k}": v.base for k, v in params.items()}
        values[f"{path}.hazard_ratio"] = hrs[0].base if hrs else 1.0
        if median is not None:
            values[f"{path}.median"] = median.base
        if any(v not in domains.get(p, _FINITE) for p, v in values.items()):
            return None
        law = Law(spec.family, params, median, hrs)
        try:
            law.base_distribution()
        except (FitError, ValueError) as err:
            self.problems.append((path, {k: v.base for k, v in params.items()}, str(err)))
            return None
        return law

    def time_on_treatment(self, tot, path: str) -> dict[str, Value]:
        """``State`` fields of a regimen's ``time_on_treatment`` (none when it has none)."""
        if tot is None:
            return {}
        out = {}
        if tot.stop_for_adverse_events is not None:
            out["treatment_stop_share"] = self.quantity(
                tot.stop_for_adverse_events,
                f"{path}.time_on_treatment.stop_for_adverse_events",
                is_median=False,
            )
        if tot.max_months is not None:
            out["treatment_max_months"] = self.quantity(
                tot.max_months, f"{path}.time_on_treatment.max_months", is_median=False
            )
        return out

    def probability(self, prob, path: str) -> Value:
        if prob.value is not None:
            prov = Provenance(
                path,
                prob.value,
                "assumption",
                note=_with_uncertainty_note(prob.assumption or "", prob.uncertainty),
                uncertainty=stated_uncertainty(prob.uncertainty, prob.value),
            )
            self._note(prov)
            return self.path_values.setdefault(
                path, self._column(f"value:{path}", prov, prob.value)
            )
        rec = self._record(prob.evidence, f"{path}.evidence")
        if rec is None:
            return Value.const(float("nan"))
        if prob.field is not None:
            values = rec.values or {}
            v = values.get(prob.field)
            if not isinstance(v, int | float) or not 0 <= v <= 1:
                self.problems.append(
                    (
                        f"{path}.field",
                        prob.field,
                        f"not a proportion of {rec.id}; it has {sorted(values)}",
                    )
                )
                return Value.const(float("nan"))
            how = f"1 - {prob.field} {v}" if prob.complement else f"{prob.field} {v}"
            how = _with_uncertainty_note(how, prob.uncertainty)
            p = 1.0 - v if prob.complement else float(v)
            drawn = stated_uncertainty(prob.uncertainty, float(v))
            self._note(Provenance(path, p, "evidence", (rec.id,), how))
            name = f"evidence:{rec.id}:{prob.field}"
            prov = Provenance(path, float(v), "evidence", (rec.id,), how, uncertainty=drawn)
            col = self._column(name, prov, v)
            return self.path_values.setdefault(path, 1.0 - col if prob.complement else col)
        counts = rec.counts or {}
        if prob.count not in counts or not rec.n:
            self.problems.append(
                (f"{path}.count", prob.count, f"record {rec.id} has counts {sorted(counts)} of n")
            )
            return Value.const(float("nan"))
        k, n = counts[prob.count], rec.n
        name = f"beta:{rec.id}:{prob.count}"
        p = k / n
        prov = Provenance(
            path, p, "evidence", (rec.id,), f"{k} of {n}", key=name, uncertainty=Beta(k, n - k)
        )
        self._note(prov if not prob.complement else dataclasses.replace(prov, value=1.0 - p))
        col = self._column(name, prov, p)
        return self.path_values.setdefault(path, 1.0 - col if prob.complement else col)

    def _split(self, name: str, path: str, prov: Provenance, probs: dict) -> dict[str, Value]:
        self._note(dataclasses.replace(prov, value=float("nan"), key=name))
        return self._column(name, prov, probs)

    def line_end(self, reg: Regimen, path: str) -> dict[str, Value]:
        end = reg.line_end
        if end.probabilities is not None:
            prov = Provenance(
                path,
                float("nan"),
                "assumption",
                note=_with_uncertainty_note(end.assumption or "", end.uncertainty),
                uncertainty=stated_uncertainty(end.uncertainty, list(end.probabilities.values())),
            )
            return self._split(f"value:{path}", path, prov, dict(end.probabilities))
        rec = self._record(end.evidence, f"{path}.evidence")
        if rec is None:
            return {}
        counts = rec.counts or {}
        missing = [k for k in end.causes.values() if k not in counts]
        if missing:
            self.problems.append(
                (f"{path}.causes", missing, f"not counts of {rec.id}; it has {sorted(counts)}")
            )
            return {}
        total = sum(counts[k] for k in end.causes.values())
        if total <= 0:
            self.problems.append(
                (f"{path}.causes", dict(end.causes), f"these counts of {rec.id} are all 0")
            )
            return {}
        probs = {cause: counts[k] / total for cause, k in end.causes.items()}
        text = ", ".join(f"{c} {counts[k]}" for c, k in end.causes.items())
        alpha = tuple(float(counts[k]) for k in end.causes.values())
        name = f"dirichlet:{end.evidence}:" + ",".join(f"{c}={k}" for c, k in end.causes.items())
        prov = Provenance(
            path, 0.0, "evidence", (rec.id,), f"{text} of {total}", uncertainty=Dirichlet(alpha)
        )
        if end.death_share is None:
            return self._split(name, path, prov, probs)
        # the record splits the other causes; death takes its share from elsewhere
        death = self.quantity(
            end.death_share,
            f"{path}.death_share",
            is_median=False,
            calib_key=f"{path.split('.')[1]}.line_end.death_share",
        )
        if len(probs) == 1:  # one other cause: no split to draw
            return {next(iter(probs)): 1.0 - death, "death": death}
        others = self._split(name, path, prov, probs)
        return {**{c: (1.0 - death) * p for c, p in others.items()}, "death": death}

    def mix(
        self, line: Line, path: str, sequence: str, line_no: int, out: list
    ) -> dict[str, Value]:
        if line.regimen is not None:
            return {line.regimen: Value.const(1.0)}
        m = line.mix
        if m.probabilities is not None:
            prov = Provenance(f"{path}.mix", float("nan"), "assumption", note=m.assumption or "")
            kept = {r: p for r, p in m.probabilities.items() if p > 0}
            return self._split(f"value:{path}.mix", f"{path}.mix", prov, kept)
        rec = self._record(m.evidence, f"{path}.mix.evidence")
        if rec is None:
            return {}
        counts = rec.counts or {}
        unknown = [k for k in m.regimens if k not in counts]
        if unknown:
            self.problems.append(
                (
                    f"{path}.mix.regimens",
                    unknown,
                    f"not counts of {rec.id}; it has {sorted(counts)}",
                )
            )
            return {}
        kept_total = sum(counts[k] for k in m.regimens)
        if kept_total <= 0:
            self.problems.append(
                (f"{path}.mix.regimens", dict(m.regimens), f"these counts of {rec.id} are all 0")
            )
            return {}
        kept = {m.regimens[k]: counts[k] / kept_total for k in m.regimens}
        dropped = {k: v for k, v in counts.items() if k not in m.regimens}
        if dropped:
            out.append(Renormalised(sequence, line_no, dropped, kept))
        alpha = tuple(float(counts[k]) for k in m.regimens)
        name = f"dirichlet:{m.evidence}:" + ",".join(f"{c}={r}" for c, r in m.regimens.items())
        prov = Provenance(
            f"{path}.mix",
            0.0,
            "evidence",
            (rec.id,),
            f"kept {sorted(m.regimens)}, renormalised away {sorted(dropped)}",
            uncertainty=Dirichlet(alpha),
        )
        return self._split(name, f"{path}.mix", prov, kept)

    def domain_problems(self) -> list[tuple[str, object, str]]:
        """Every number used, against the domain its scenario field declares (explicit values
        were checked on load; this catches evidence, calibrated and overridden ones)."""
        used = {p.path: p for p in self.provenance}
        problems = []
        for path, domain, _ in number_fields(self.sc):
            prov = used.get(path)
            if prov is not None and prov.value == prov.value and prov.value not in domain:
                problems.append((path, prov.value, f"{domain.message()}; {_source(prov)}"))
        return problems

    # -- transport -------------------------------------------------------------
    def regimen_evidence(self, rid: str) -> list[Record]:
        reg = self.sc.regimens[rid]
        ids: list[str] = []
        specs = [reg.time_on_line, reg.after_progression, *(reg.cause_specific or {}).values()]
        for spec in specs:
            if spec is None:
                continue
            for q in [spec.median, *spec.params_given().values()]:
                if q is not None:
                    ids += q.evidence_ids()
        for tgt in self.sc.calibration.targets if self.sc.calibration else []:
            if tgt.regimen == rid:
                ids += tgt.target.evidence_ids()
        return [self.ev.get(i) for i in dict.fromkeys(ids) if i in self.ev]


_FINITE = Domain()  # any finite number


def _base(x: Value | float) -> float:
    """The base value of a Value, or the number itself."""
    return x.base if isinstance(x, Value) else float(x)


def _with_hr(law: Law, hr: Value | float) -> Law:
    """``law`` with the hazard multiplied by ``hr``; a constant 1 changes nothing."""
    return law if not isinstance(hr, Value) and hr == 1.0 else law.ph(hr)


def _source(prov: Provenance) -> str:
    """Where a number came from, for messages."""
    if prov.kind in ("evidence", "pool"):
        return f"from {prov.kind} {', '.join(prov.ids)}"
    if prov.kind == "psa draw":
        return "a sensitivity-analysis value"
    return f"{prov.kind} value"


def quantity_key(q: Quantity, path: str) -> str:
    """Parameter identity: the evidence cited (and how), else the key path."""
    if q.evidence is not None:
        return f"evidence:{q.evidence}" + (f":{q.field}" if q.field else "")
    if q.pool is not None:
        how = q.pooling or Pooling()
        tag = "" if how == Pooling() else f"({how.method},{how.tau2},{how.psa})"
        return f"pool{tag}:" + "+".join(q.pool)
    if q.calibrate is not None:
        return f"calibrated:{path}"
    return f"value:{path}"


def stated_uncertainty(u: Uncertainty | None, value: float | list[float]):
    """The sampling distribution a scenario states for an explicit value (None: none stated).
    ``value``: the number, or a split's probabilities for a Dirichlet."""
    if u is None:
        return None
    if u.distribution == "lognormal":
        se = u.se_log if u.se_log is not None else math.log(u.ci95[1] / u.ci95[0]) / (2 * Z95)
        return LogNormal(se)
    if u.distribution == "beta":
        if u.n is not None:
            return Beta(value * u.n, (1 - value) * u.n)
        return Beta.from_mean_se(value, u.se)
    if u.distribution == "gamma":
        return Gamma(value, u.se)
    return Dirichlet(tuple(p * u.n for p in value))


def _with_uncertainty_note(assumption: str, u: Uncertainty | None) -> str:
    """The assumption's reason, and the reason for its stated uncertainty."""
    if u is None:
        return assumption
    return f"{assumption}; uncertainty ({u.distribution}): {u.assumption}"


def _record_uncertainty(rec: Record) -> LogNormal | Beta | None:
    """Sampling uncertainty a record supports: medians via their CI, events or n (SE of log
    median); hazard ratios via their CI; utilities via their reported range (a Beta with
    the range as its 95% interval's width)."""
    if rec.value is None:
        return None
    if rec.quantity == "median":
        try:
            return LogNormal(se_log_median(rec.value, rec.ci95, rec.events, rec.n))
        except FitError:
            return None
    if rec.quantity == "hazard_ratio" and rec.ci95 and None not in rec.ci95:
        lo, hi = rec.ci95
        return LogNormal((math.log(hi) - math.log(lo)) / (2 * Z95))
    if rec.quantity == "utility" and rec.range:
        lo, hi = rec.range
        try:
            return Beta.from_mean_se(rec.value, (hi - lo) / (2 * Z95))
        except ValueError:
            return None
    return None


# (group, unit) of an economics input by its key: groups gather inputs for EVPPI and tables
_ECONOMICS_GROUP_UNIT = {
    "willingness_to_pay": ("decision", "currency per QALY"),
    "ae_disutility": ("utilities", "utility decrement"),
    "utility": ("utilities", "per year"),
    "post_progression_utility": ("utilities", "per year"),
    "start_age": ("utilities", "years"),
    "intercept": ("utilities", "coefficient"),
    "age": ("utilities", "coefficient"),
    "age_squared": ("utilities", "coefficient"),
    "grade3_ae_rate": ("adverse events", "probability"),
    "ae_duration_months": ("adverse events", "months"),
    "relative_dose_intensity": ("costs", "fraction"),
    "units_per_dose": ("costs", "units per dose"),
    "doses_per_month": ("costs", "doses per month"),
    "unit_price": ("costs", "currency per unit"),
}
# the same for the survival and probability inputs of regimens, sequences and population
_MODEL_GROUP_UNIT = {
    "hazard_ratio": ("hazard ratios", "ratio"),
    "transport_hazard_ratio": ("hazard ratios", "ratio"),
    "next_line": ("probabilities", "probability"),
    "prevalence": ("probabilities", "probability"),
    "line_end": ("probabilities", "probability"),
    "death_share": ("probabilities", "probability"),
    "mix": ("probabilities", "probability"),
    "median": ("survival", "months"),
    "target": ("survival", "months"),  # a calibration target (a median)
    "scale": ("survival", "months"),
    "rate": ("survival", "per month"),
}


def _group_and_unit(path: str, kind: str) -> tuple[str, str]:
    """(group, unit) of the parameter first used at key ``path``."""
    last = path.rsplit(".", 1)[-1]
    if kind == "calibrated":
        return "calibrated", "probability" if last == "death_share" else "months"
    if path == "simulation.horizon":
        return "settings", "months"
    if path.startswith("economics."):
        if last.startswith("discount"):
            return "discounting", "per year"
        per_month = ("costs", "currency per month")
        return _ECONOMICS_GROUP_UNIT.get(
            last, per_month if last.endswith("per_month") else ("costs", "currency")
        )
    return _MODEL_GROUP_UNIT.get(last, ("survival", "(shape)"))


def _why_fixed(prov: Provenance) -> str:
    """Why an input without a sampling distribution is held fixed in a PSA."""
    if prov.kind == "calibrated":
        return ""
    if prov.path == "simulation.horizon":
        return "model setting, not an uncertain quantity"
    if prov.path.startswith("economics.") and "discount" in prov.path.rsplit(".", 1)[-1]:
        return "discount rates are set by the decision maker's reference case"
    if prov.path.endswith("willingness_to_pay"):
        return "the threshold is a decision rule, not an uncertain quantity"
    if prov.kind == "assumption":
        if prov.path.rsplit(".", 1)[-1] in ("units_per_dose", "doses_per_month"):
            return "a dosing schedule (the label dose), not an estimate"
        group, _ = _group_and_unit(prov.path, prov.kind)
        if group in ("costs", "utilities"):
            return (
                "an assumption with no stated uncertainty (psa: can give it a relative SE, "
                "or 'uncertainty:' a distribution)"
            )
        return "an assumption with no stated uncertainty ('uncertainty:' would draw it)"
    return (
        "its evidence reports no uncertainty (no CI, events, n or range; 'uncertainty:' "
        "can state one)"
    )


def _measured_after(rec: Record) -> str | None:
    """Line the evidence followed: its prior_line, ATZ/BEV for second-line records, else None."""
    if rec.prior_line:
        return rec.prior_line
    return "atz_bev" if rec.id.startswith("second_line.") else None


def _agent(sc: Scenario, rid: str) -> str:
    return sc.regimens[rid].agent or rid


# Records about what follows a first line (supportive care after its failure) and the
# first line they were measured after (hepatolint2022: after first-line ATZ/BEV)
_MEASURED_AFTER_FIRST_LINE = {"best_supportive_care_after_1l.": "atz_bev"}


def _measured_on(evidence_id: str) -> str | None:
    """The agent a line's record is about: <agent> of first_line.<agent>.* and
    second_line.<agent>[_after_<line>].*; None for records about no one regimen."""
    parts = evidence_id.split(".")
    if parts[0] in ("first_line", "second_line") and len(parts) > 2:
        return parts[1].split("_after_")[0]
    return None


def borrowed_evidence(sc: Scenario, provenance: list[Provenance]) -> list[Borrowed]:
    """Numbers whose evidence was measured on another agent than the regimen (or line) they
    are used for: a regimen's inputs, a line's next-line share, the mix after a line, and
    supportive care after a first line it was not measured after."""
    out: dict[tuple[str, str], Borrowed] = {}

    def check(path: str, evidence_id: str, agents: set[str], measured_on: str | None) -> None:
        for agent in sorted(agents):
            if measured_on is not None and measured_on != agent:
                out.setdefault((path, evidence_id), Borrowed(path, evidence_id, measured_on, agent))

    first_lines = {
        _agent(sc, r) for seq in sc.sequences.values() for r in seq.lines[0].regimen_ids()
    }
    for prov in provenance:
        parts = prov.path.split(".")
        for evidence_id in prov.ids:
            if parts[0] == "regimens" and parts[1] in sc.regimens:
                check(prov.path, evidence_id, {_agent(sc, parts[1])}, _measured_on(evidence_id))
            elif parts[0] == "sequences" and len(parts) > 4 and parts[4] in ("next_line", "mix"):
                lines = sc.sequences[parts[1]].lines
                line = int(parts[3]) - (parts[4] == "mix")  # a mix is what followed the line before
                agents = {_agent(sc, r) for r in lines[line].regimen_ids()}
                check(prov.path, evidence_id, agents, _measured_on(evidence_id))
            elif parts[0] == "supportive_care":
                after = next(
                    (v for k, v in _MEASURED_AFTER_FIRST_LINE.items() if evidence_id.startswith(k)),
                    None,
                )
                check(
                    prov.path,
                    evidence_id,
                    {f"patients after first-line {a}" for a in first_lines},
                    after and f"patients after first-line {after}",
                )
    return list(out.values())


def _state_name(line_no: int, rid: str) -> str:
    return f"L{line_no}:{rid}"


def resolve(
    scenario: Scenario,
    evidence: EvidenceBase,
    calibrated: Mapping[str, float] | None = None,
    file: str = "<scenario>",
    *,
    cohort_regimen: str | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Resolved:
    """Build the model sequences of ``scenario``.

    ``calibrated`` maps "<regimen>.<part>" (e.g. "lenvatinib.after_progression")
    to solved medians. With ``cohort_regimen`` the result is instead a single
    sequence that starts every patient on that regimen, as the source cohort of
    its evidence did (used by calibration; no transport adjustment). ``overrides``
    replaces parameters by their ``Provenance.key`` (one PSA or DSA draw).
    """
    r = _Resolver(scenario, evidence, calibrated, file, overrides)
    horizon = r.quantity(scenario.simulation.horizon, "simulation.horizon", is_median=False).base
    sc_dist = r.distribution(scenario.supportive_care, "supportive_care")
    transports: list[Transport] = []
    renorm: list[Renormalised] = []
    cache: dict[str, dict] = {}
    covariates: list[Covariate] = []
    log_hr: dict[tuple[str, str], dict[str, float]] = {}  # (regimen, part) -> covariate -> log HR
    for name, cov in (scenario.population.covariates if scenario.population else {}).items():
        path = f"population.covariates.{name}"
        covariates.append(Covariate(name, r.probability(cov.prevalence, f"{path}.prevalence")))
        for j, effect in enumerate(cov.effects):
            hr = r.quantity(
                effect.hazard_ratio, f"{path}.effects.{j}.hazard_ratio", is_median=False
            )
            if not hr.base > 0 or math.isinf(hr.base):
                continue  # reported with every number outside its domain
            for rid in effect.regimens:
                for part in effect.clocks:
                    log_hr.setdefault((rid, part), {})[name] = hr.log()

    cohort_populations: dict[str, dict[str, Value]] = {}
    for rid, reg in scenario.regimens.items():
        prevalence = {c.name: c.prevalence for c in covariates}
        for name, prob in (reg.cohort_population or {}).items():
            if name in prevalence:
                where = f"regimens.{rid}.cohort_population.{name}"
                prevalence[name] = r.probability(prob, where)
        cohort_populations[rid] = prevalence

    def regimen_parts(rid: str) -> dict:
        """Fitted clocks of a regimen: list of (cause or None, Distribution), split, pps."""
        if rid in cache:
            return cache[rid]
        reg = scenario.regimens[rid]
        path = f"regimens.{rid}"
        parts: dict = {"clocks": [], "split": None, "pps": None}
        if reg.time_on_line is not None:
            d = r.distribution(reg.time_on_line, f"{path}.time_on_line", f"{rid}.time_on_line")
            parts["clocks"] = [(None, d)]
            parts["split"] = r.line_end(reg, f"{path}.line_end")
        else:
            for cause, spec in reg.cause_specific.items():
                d = r.distribution(spec, f"{path}.cause_specific.{cause}", f"{rid}.cause_specific")
                parts["clocks"].append((cause, d))
        if reg.after_progression is not None:
            parts["pps"] = r.distribution(
                reg.after_progression, f"{path}.after_progression", f"{rid}.after_progression"
            )
        parts["treatment"] = r.time_on_treatment(reg.time_on_treatment, path)
        cache[rid] = parts
        return parts

    def effects_of(rid: str, part: str, cohort: bool) -> dict[str, float]:
        """Covariate name -> log HR on a clock of ``rid``; in its calibration cohort, keyed
        by the cohort's own copy of each covariate (``cohort_covariate``)."""
        effects = log_hr.get((rid, part), {})
        return {cohort_covariate(k, rid): v for k, v in effects.items()} if cohort else effects

    def line_states(
        rid, line_no, hr, progression_to, bsc_name, prog_event=EVENT_PROGRESSION, cohort=False
    ):
        """The state of regimen ``rid`` on line ``line_no``; progression goes to ``progression_to``
        (list of (state, prob)), deterioration to ``bsc_name``."""
        parts = regimen_parts(rid)
        clocks = []
        for cause, dist in parts["clocks"]:
            if dist is None:
                continue
            dist = _with_hr(dist, hr)
            causes = parts["split"] if cause is None else {cause: 1.0}
            dests = []
            for c, p in (causes or {}).items():
                if _base(p) <= 0:
                    continue
                if c == "progression":
                    dests += [
                        Destination(s, prog_event, p * q) for s, q in progression_to if _base(q) > 0
                    ]
                elif c == "death":
                    dests.append(Destination(None, EVENT_DEATH, p))
                else:
                    dests.append(Destination(bsc_name, EVENT_DETERIORATION, p))
            if dests:
                part = "time_on_line" if cause is None else "cause_specific"
                clocks.append(Clock(dist, tuple(dests), effects_of(rid, part, cohort)))
        return State(
            _state_name(line_no, rid),
            tuple(clocks),
            line=line_no,
            regimen=rid,
            **parts["treatment"],
        )

    def pps_state(rid, line_no, hr, cohort=False):
        dist = regimen_parts(rid)["pps"]
        clocks = ()
        if dist is not None:
            dist = _with_hr(dist, hr)
            effects = effects_of(rid, "after_progression", cohort)
            clocks = (Clock(dist, (Destination(None, EVENT_DEATH, 1.0),), effects),)
        return State(
            f"PPS after L{line_no}:{rid}", clocks, line=0, regimen=rid, role="post_progression"
        )

    def bsc_state(line_no):
        clocks = (
            () if sc_dist is None else (Clock(sc_dist, (Destination(None, EVENT_DEATH, 1.0),)),)
        )
        return State(f"BSC after L{line_no}", clocks, line=0, role="no_further_therapy")

    def after_last_line(rid, line_no, hr, cohort=False) -> tuple[list, list[State]]:
        """Where progression on ``rid``, the last modelled line, leads ((state, probability)
        pairs) and the states that adds: its post-progression survival, and its explicit
        third line (``Regimen.third_line``) with that line's own states."""
        pps = f"PPS after L{line_no}:{rid}"
        third = scenario.regimens[rid].third_line
        if third is None:
            return [(pps, 1.0)], [pps_state(rid, line_no, hr, cohort)]
        share = r.probability(third.share, f"regimens.{rid}.third_line.share")
        nxt, t = line_no + 1, third.regimen
        states = [
            pps_state(rid, line_no, hr, cohort),
            line_states(
                t, nxt, 1.0, [(f"PPS after L{nxt}:{t}", 1.0)], f"BSC after L{nxt}", cohort=cohort
            ),  # fmt: skip
            pps_state(t, nxt, 1.0, cohort),
            bsc_state(nxt),
        ]
        return [(_state_name(nxt, t), share), (pps, 1.0 - share)], states

    def cohort_sequence(rid: str) -> SequenceModel:
        """Every patient starts on ``rid``, as the source cohort of its evidence did (no
        earlier line, no transport adjustment): what calibration targets are about."""
        progression_to, after = after_last_line(rid, 2, 1.0, cohort=True)
        states = [
            line_states(rid, 2, 1.0, progression_to, "BSC after L2", cohort=True),
            *after,
            bsc_state(2),
        ]
        return SequenceModel(f"cohort:{rid}", tuple(states))

    sequences: list[SequenceModel] = []
    if cohort_regimen is not None:
        sequences.append(cohort_sequence(cohort_regimen))
    else:
        for sid, seq in scenario.sequences.items():
            states: list[State] = []
            n_lines = len(seq.lines)
            line_regimens = [
                r.mix(line, f"sequences.{sid}.lines.{i}", sid, i + 1, renorm)
                for i, line in enumerate(seq.lines)
            ]
            for i, line in enumerate(seq.lines):
                line_no = i + 1
                path = f"sequences.{sid}.lines.{i}"
                bsc = f"BSC after L{line_no}"
                if i + 1 < n_lines:
                    p_next = r.probability(line.next_line, f"{path}.next_line")
                    prog_to = [
                        (_state_name(line_no + 1, nr), p_next * q)
                        for nr, q in line_regimens[i + 1].items()
                    ]
                    prog_to.append((bsc, 1.0 - p_next))
                elif line.then == "post_progression":
                    prog_to = None
                else:
                    prog_to = [(bsc, 1.0)]
                prior = {_agent(scenario, x) for x in line_regimens[i - 1]} if i else {"none"}
                for rid in line_regimens[i]:
                    hr = 1.0
                    moved = [
                        rec
                        for rec in r.regimen_evidence(rid)
                        if _measured_after(rec) is not None and _measured_after(rec) not in prior
                    ]
                    if moved:
                        reg = scenario.regimens[rid]
                        if reg.transport_hazard_ratio is not None:
                            hr = r.quantity(
                                reg.transport_hazard_ratio,
                                f"regimens.{rid}.transport_hazard_ratio",
                                is_median=False,
                            )
                            if not hr.base > 0:
                                hr = 1.0  # reported with every number outside its domain
                        transports.append(
                            Transport(
                                sid,
                                line_no,
                                rid,
                                tuple(x.id for x in moved),
                                ", ".join(sorted({_measured_after(x) for x in moved})),
                                ", ".join(sorted(prior)),
                                _base(hr),
                            )
                        )
                    targets, after = (prog_to, []) if prog_to else after_last_line(rid, line_no, hr)
                    states.append(line_states(rid, line_no, hr, targets, bsc))
                    named = {st.name for st in states}
                    # a third line the regimens of a mix share is one set of states
                    states += [st for st in after if st.name not in named]
                states.append(bsc_state(line_no))
            # drop supportive-care states nobody can reach (e.g. no deterioration, p_next = 1)
            reachable = {states[0].name}
            for st in states:
                for c in st.clocks:
                    reachable.update(d.state for d in c.destinations if d.state)
            states = [st for st in states if st.name in reachable]
            sequences.append(SequenceModel(sid, tuple(states)))
    cohorts: dict[str, SequenceModel] = {}
    cal_targets: list[CalibrationTarget] = []
    bayes = scenario.calibration is not None and scenario.calibration.method == "bayes"
    for i, tgt in enumerate(scenario.calibration.targets if scenario.calibration else []):
        if cohort_regimen is not None:
            break
        if bayes:
            if tgt.regimen is not None and tgt.regimen not in cohorts:
                cohorts[tgt.regimen] = cohort_sequence(tgt.regimen)
            cal_targets.append(_bayes_target(r, i, tgt))
            continue
        landmark = tgt.quantity == "os_landmark_from_sequence_start"
        if landmark:
            # the whole sequence, first line on: calibrated beside the cohorts it depends on
            key = f"sequence:{tgt.sequence}"
            if key not in cohorts:
                cohorts[key] = next(s for s in sequences if s.name == tgt.sequence)
        elif tgt.regimen not in cohorts:
            cohorts[tgt.regimen] = cohort_sequence(tgt.regimen)
        path = f"calibration.targets.{i}.target"
        new = quantity_key(tgt.target, path) not in r.table
        value = r.quantity(tgt.target, path, is_median=not landmark)
        name = quantity_key(tgt.target, path)
        if new and name in r.table:
            # a target is uncertain data: drawn from its evidence (a median's log-normal
            # from its CI, events or n) and re-solved in every row
            r.table.replace(name, group="calibration targets")
        if landmark and name in r.table:
            # not drawn: a proportion near its ceiling (base_case.yaml's IMbrave150 CI
            # reaches past the OS its sequence can give) would leave draws unsolvable
            r.table.replace(
                name,
                group="calibration targets",
                unit="probability",
                distribution=None,
                fixed_because="a landmark target of a point calibration: held at its "
                "published value (its CI enters a Bayesian calibration's likelihood)",
            )
        if landmark and not 0 < value.base < 1:
            r.problems.append((path, value.base, "a landmark survival must be in (0, 1)"))
        bounds = freed_quantity(scenario.regimens[tgt.regimen], tgt.free).calibrate.bounds
        cal_targets.append(
            CalibrationTarget(
                i,
                tgt,
                value,
                f"{tgt.regimen}.{free_key(tgt.free)}",
                tuple(bounds),
                unit="probability" if landmark else "months",
            )
        )
    if horizon in HORIZON:
        r.problems += simulation_problems(scenario.simulation, horizon)
        n_bins = math.ceil(horizon / scenario.simulation.bin_width - 1e-9)
        n_states = sum(len(seq.states) for seq in sequences)
        if n_states * n_bins * TALLY_BYTES_PER_BIN > MAX_TALLY_BYTES:
            r.problems.append(
                (
                    "sequences",
                    f"{n_states:,} model states",
                    f"with {n_bins:,} histogram bins the engine would keep "
                    f"{n_states * n_bins * TALLY_BYTES_PER_BIN / 1e9:.3g} GB of tallies per "
                    f"thread (n_states x 6 tallies x 2 x n_bins int64); at most "
                    f"{MAX_TALLY_BYTES / 1e9:g} GB: fewer sequences or a wider bin_width",
                )
            )
    economics, econ_inputs = None, {}
    if scenario.economics is not None:
        economics, per_state, econ_inputs = _resolve_economics(r, scenario.economics)
        sequences = [
            dataclasses.replace(seq, states=tuple(per_state(st) for st in seq.states))
            for seq in sequences
        ]
    r.problems += r.domain_problems()
    if r.problems:
        raise ScenarioError(file, r.problems)
    # the priors' key paths are looked up in a table known to be complete
    free_columns = _free_columns(r, scenario) if bayes and cohort_regimen is None else {}
    if r.problems:
        raise ScenarioError(file, r.problems)
    targets = scenario.calibration.targets if scenario.calibration else []
    target_ids = [i for t in targets for i in t.target.evidence_ids()]
    used = dict.fromkeys([*(i for p in r.provenance for i in p.ids), *target_ids])
    resolved = Resolved(
        scenario,
        sequences,
        horizon,
        covariates,
        economics,
        econ_inputs,
        r.provenance,
        transports,
        renorm,
        borrowed_evidence(scenario, r.provenance),
        {i: evidence.origin(i) for i in used if evidence.origin(i) != "simseq"},
        r.table,
        r.calibrated_columns,
        r.path_values,
        list(cohorts.values()),
        [] if bayes else cal_targets,
        cal_targets if bayes else [],
        free_columns,
        cohort_populations,
    )
    if cohort_regimen is not None:  # the cohort's clocks name its own covariates
        resolved.covariates = resolved.cohort_covariates(cohort_regimen)
    return resolved


def _bayes_target(r: "_Resolver", i: int, tgt: Target) -> CalibrationTarget:
    """A target of a Bayesian calibration, with the SE its likelihood uses. Its value is a
    parameter held fixed: its uncertainty enters through the likelihood, not PSA draws."""
    path = f"calibration.targets.{i}.target"
    landmark = tgt.quantity == "os_landmark_from_sequence_start"
    value = r.quantity(tgt.target, path, is_median=not landmark)
    name = quantity_key(tgt.target, path)
    se = math.nan
    if tgt.se is not None:
        se = float(tgt.se.value)
    elif name in r.table:
        p = r.table[name]
        if isinstance(p.distribution, LogNormal) and not landmark:
            se = p.distribution.se_log
        elif landmark and tgt.target.evidence is not None:
            rec = r.ev.get(tgt.target.evidence)
            if rec.ci95 is not None and None not in rec.ci95:
                se = (rec.ci95[1] - rec.ci95[0]) / (2 * Z95)
            elif rec.n:
                se = math.sqrt(value.base * (1.0 - value.base) / rec.n)  # binomial
    if name in r.table:
        r.table.replace(
            name,
            group="calibration targets",
            unit="probability" if landmark else "months",
            distribution=None,
            fixed_because="a Bayesian calibration target: its SE enters the likelihood",
        )
    if not se > 0 and math.isfinite(value.base):
        scale = "the proportion" if landmark else "the log median"
        r.problems.append(
            (
                f"calibration.targets.{i}",
                None,
                f"its evidence gives no SE (no CI, events or n): give 'se:' (the SE of {scale}) "
                "as a value with an assumption",
            )
        )
    if landmark and not 0 < value.base < 1:
        r.problems.append((path, value.base, "a landmark survival must be in (0, 1)"))
    return CalibrationTarget(i, tgt, value, "", (), se, "probability" if landmark else "months")


def _free_columns(r: "_Resolver", scenario: Scenario) -> dict[str, int]:
    """Key path of each prior's parameter -> its column; the parameter is then taken from
    the posterior, not drawn from its own distribution."""
    out = {}
    for path in scenario.calibration.priors:
        try:
            p = r.table.find(path)
        except KeyError:
            r.problems.append(
                (
                    f"calibration.priors.{path}",
                    None,
                    "not the key path of a number of this scenario (e.g. "
                    "regimens.atz_bev.time_on_line.shape)",
                )
            )
            continue
        if len(p.columns) != 1:
            r.problems.append((f"calibration.priors.{path}", None, "a split cannot be free"))
            continue
        out[path] = r.table.column(p.columns[0])
        r.table.replace(
            p.name,
            group="calibrated",
            distribution=None,
            fixed_because="drawn from the Bayesian calibration's posterior",
        )
    return out


def _resolve_economics(r: "_Resolver", spec):
    """(Economics, function State -> State with costs/utilities, reported inputs)."""
    base = "economics"

    def num(q, path, default=None):
        if q is None:
            return default
        return r.quantity(q, f"{base}.{path}", is_median=False)

    drug_month = {}
    for name, drug in spec.drugs.items():
        p = f"drugs.{name}"
        drug_month[name] = (
            num(drug.unit_price, f"{p}.unit_price")
            * num(drug.units_per_dose, f"{p}.units_per_dose")
            * num(drug.doses_per_month, f"{p}.doses_per_month")
        )
    regimen = {}
    for rid, reg in spec.regimens.items():
        p = f"regimens.{rid}"
        rdi = num(reg.relative_dose_intensity, f"{p}.relative_dose_intensity", 1.0)
        drugs = rdi * sum(drug_month.get(d, 0.0) for d in reg.drugs)
        rate = num(reg.grade3_ae_rate, f"{p}.grade3_ae_rate", 0.0)
        qaly_loss = (
            rate
            * num(reg.ae_disutility, f"{p}.ae_disutility", 0.0)
            * num(reg.ae_duration_months, f"{p}.ae_duration_months", 0.0)
            / 12.0
        )
        regimen[rid] = {
            "drug_cost_per_month": drugs,
            "treatment_cost_per_month": drugs
            + num(reg.administration_cost_per_month, f"{p}.administration_cost_per_month", 0.0),
            "monitoring_cost_per_month": num(
                reg.monitoring_cost_per_month, f"{p}.monitoring_cost_per_month", 0.0
            ),
            "utility": num(reg.utility, f"{p}.utility"),
            "entry_cost": rate * num(reg.ae_cost, f"{p}.ae_cost", 0.0),
            "entry_qalys": -qaly_loss,
            "pps_cost_per_month": num(
                reg.post_progression_cost_per_month, f"{p}.post_progression_cost_per_month", 0.0
            ),
            "pps_utility": num(reg.post_progression_utility, f"{p}.post_progression_utility", None),
        }
    sc_cost = num(spec.supportive_care.cost_per_month, "supportive_care.cost_per_month")
    sc_utility = num(spec.supportive_care.utility, "supportive_care.utility")
    trend = (0.0, 0.0)
    if spec.age_adjustment is not None:
        age = spec.age_adjustment
        a0 = num(age.start_age, "age_adjustment.start_age")
        c0 = num(age.intercept, "age_adjustment.intercept")
        c1 = num(age.age, "age_adjustment.age")
        c2 = num(age.age_squared, "age_adjustment.age_squared")
        u0 = c0 + c1 * a0 + c2 * a0 * a0
        if not u0.base > 0:
            r.problems.append(
                (f"{base}.age_adjustment", u0.base, "utility at the start age must be > 0")
            )
        else:
            # U(a0 + t/12) / U(a0) = 1 + b1 t + b2 t^2, t in months
            trend = ((c1 + 2 * c2 * a0) / (12 * u0), c2 / (144 * u0))
    economics = Economics(
        discount_costs=num(spec.discount_costs, "discount_costs"),
        discount_qalys=num(spec.discount_qalys, "discount_qalys"),
        death_cost=num(spec.terminal_care_cost, "terminal_care_cost"),
        utility_trend=trend,
    )

    def per_state(st: State) -> State:
        if st.role == "no_further_therapy":
            return dataclasses.replace(st, cost_per_month=sc_cost, utility=sc_utility)
        e = regimen.get(st.regimen)
        if e is None:
            return st
        if st.role == "post_progression":
            utility = e["pps_utility"] if e["pps_utility"] is not None else sc_utility
            return dataclasses.replace(st, cost_per_month=e["pps_cost_per_month"], utility=utility)
        if r.sc.regimens[st.regimen].time_on_treatment is None:  # treated to the line's end
            costs = {
                "cost_per_month": e["treatment_cost_per_month"] + e["monitoring_cost_per_month"]
            }
        else:
            costs = {
                "cost_per_month": e["monitoring_cost_per_month"],
                "treatment_cost_per_month": e["treatment_cost_per_month"],
            }
        return dataclasses.replace(
            st,
            **costs,
            utility=e["utility"],
            entry_cost=e["entry_cost"],
            entry_qalys=e["entry_qalys"],
        )

    inputs = {
        "currency": spec.currency,
        "price_year": spec.price_year,
        "willingness_to_pay": _base(num(spec.willingness_to_pay, "willingness_to_pay")),
        "discount_costs": _base(economics.discount_costs),
        "discount_qalys": _base(economics.discount_qalys),
        "reference": spec.reference,
        "regimens": {
            rid: {k: _base(v) for k, v in e.items() if v is not None} for rid, e in regimen.items()
        },
        "supportive_care": {"cost_per_month": _base(sc_cost), "utility": _base(sc_utility)},
    }
    return economics, per_state, inputs


def resolve_median(
    scenario: Scenario, evidence: EvidenceBase, q: Quantity, path: str, file: str = "<scenario>"
) -> tuple[float, list[Provenance]]:
    """The median (months) a cited or pooled Quantity stands for, with its provenance."""
    r = _Resolver(scenario, evidence, None, file)
    value = r.quantity(q, path, is_median=True).base
    if r.problems:
        raise ScenarioError(file, r.problems)
    return value, r.provenance
