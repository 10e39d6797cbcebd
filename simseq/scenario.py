"""Scenario YAML -> validated, frozen config (pydantic, ``extra="forbid"``).

A scenario names its regimens (what happens on a line of therapy), the survival
with no further therapy, and the sequences to compare (first line, then a rule
for each later line). Every number either cites an evidence id, pools several,
is marked as an assumption with its reason, or is left to calibration.

Structural checks live here; whether cited evidence ids exist and fit their use
is checked when the scenario is resolved (``simseq.resolve``), with the same
error format: file, key path, value, what is allowed.
"""

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simseq.distributions import FAMILIES


class ScenarioError(ValueError):
    """A scenario problem, located by file and key path."""

    def __init__(self, file: str, problems: list[tuple[str, Any, str]]):
        self.file = file
        self.problems = problems
        super().__init__("\n".join(f"{file}: {loc}: {msg}{_got(v)}" for loc, v, msg in problems))


def _got(value: Any) -> str:
    if value is None:
        return ""
    text = repr(value)
    return f" (got {text if len(text) <= 100 else text[:97] + '...'})"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalibrateSpec(_Frozen):
    """A parameter left to calibration: the search bracket (months)."""

    bounds: tuple[float, float] = (0.1, 120.0)
    """Lower and upper bound of the root search."""

    @model_validator(mode="after")
    def _ordered(self) -> "CalibrateSpec":
        lo, hi = self.bounds
        if not 0 < lo < hi:
            raise ValueError(f"bounds must satisfy 0 < low < high, got {list(self.bounds)}")
        return self


class Quantity(_Frozen):
    """One number and where it comes from: exactly one of evidence, pool, value, calibrate."""

    evidence: str | None = None
    """Evidence id whose headline value is used."""
    pool: list[str] | None = Field(default=None, min_length=2)
    """Evidence ids of medians to pool (inverse-variance on log-median, else weights by n)."""
    value: float | None = None
    """An explicit number; requires ``assumption``."""
    assumption: str | None = None
    """Why an explicit value was chosen (required with ``value``)."""
    calibrate: CalibrateSpec | None = None
    """Solved by ``simseq calibrate`` against a declared target."""
    field: str | None = None
    """With evidence: take the record's named value (e.g. grade3_4_ae) instead of its headline."""
    illustrative: bool = False
    """A placeholder with no evidence behind it (e.g. a price not in the evidence file);
    every output that uses it says so."""
    note: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "Quantity":
        given = [
            k for k in ("evidence", "pool", "value", "calibrate") if getattr(self, k) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of evidence, pool, value (with assumption) or calibrate; "
                f"got {given or 'none'}"
            )
        if self.value is not None and not (self.assumption and self.assumption.strip()):
            raise ValueError("an explicit value needs an 'assumption:' saying why")
        if self.field is not None and self.evidence is None:
            raise ValueError("'field:' goes with 'evidence:'")
        if self.illustrative and self.value is None:
            raise ValueError("only an explicit value can be illustrative")
        return self


class Probability(_Frozen):
    """A probability: ``evidence`` + ``count`` (count / n) or + ``field`` (a named proportion),
    or value + assumption."""

    evidence: str | None = None
    count: str | None = None
    """Key of the record's counts (e.g. received_2l): probability = counts[count] / n."""
    field: str | None = None
    """Key of the record's values holding a proportion (e.g. child_pugh_a)."""
    complement: bool = False
    """Use 1 - the cited proportion (e.g. Child-Pugh B = 1 - Child-Pugh A)."""
    value: float | None = Field(default=None, ge=0.0, le=1.0)
    assumption: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "Probability":
        if (self.evidence is None) == (self.value is None):
            raise ValueError("give either evidence + count, or value + assumption")
        if self.evidence is not None and (self.count is None) == (self.field is None):
            raise ValueError("an evidence probability needs either 'count:' or 'field:'")
        if self.value is not None and not (self.assumption and self.assumption.strip()):
            raise ValueError("an explicit value needs an 'assumption:' saying why")
        return self


def _check_assumed_probabilities(probabilities: dict[str, float], assumption: str | None) -> None:
    """Explicit probabilities: an assumption saying why, each >= 0, summing to 1."""
    if not (assumption and assumption.strip()):
        raise ValueError("explicit probabilities need an 'assumption:' saying why")
    probs = list(probabilities.values())
    if any(p < 0 for p in probs) or abs(sum(probs) - 1.0) > 1e-9:
        raise ValueError(f"probabilities must be >= 0 and sum to 1, got sum {sum(probs):g}")


_PARAM_FIELDS = ("rate", "shape", "scale", "meanlog", "sdlog", "mu", "sigma", "Q")


class DistSpec(_Frozen):
    """A parametric time-to-event distribution (months), flexsurv parameter names.

    Either ``median`` plus every other parameter of the family (the remaining
    one is solved so the median is hit), or every parameter explicitly.
    """

    family: Literal["exponential", "weibull", "llogis", "lnorm", "gompertz", "gamma", "gengamma"]
    median: Quantity | None = None
    rate: Quantity | None = None
    shape: Quantity | None = None
    scale: Quantity | None = None
    meanlog: Quantity | None = None
    sdlog: Quantity | None = None
    mu: Quantity | None = None
    sigma: Quantity | None = None
    Q: Quantity | None = None
    hazard_ratio: Quantity | None = None
    """Proportional-hazards adjustment applied after fitting."""

    @model_validator(mode="after")
    def _params_fit_family(self) -> "DistSpec":
        names = FAMILIES[self.family].param_names
        given = [p for p in _PARAM_FIELDS if getattr(self, p) is not None]
        wrong = [p for p in given if p not in names]
        if wrong:
            raise ValueError(
                f"{self.family} takes {', '.join(names)}; {', '.join(wrong)} not allowed"
            )
        n_needed = len(names) - (1 if self.median is not None else 0)
        if len(given) != n_needed:
            need = "a median plus all but one of" if self.median is not None else "all of"
            raise ValueError(
                f"{self.family} needs {need} its parameters ({', '.join(names)}); given: "
                f"{', '.join(['median'] * (self.median is not None) + given) or 'none'}"
            )
        for p in given:
            if getattr(self, p).calibrate is not None:
                raise ValueError(f"only the median can be calibrated, not {p}")
        return self

    def params_given(self) -> dict[str, Quantity]:
        return {p: getattr(self, p) for p in _PARAM_FIELDS if getattr(self, p) is not None}


Cause = Literal["progression", "death", "deterioration"]


class LineEnd(_Frozen):
    """How a line ends: cause probabilities from evidence counts, or explicit with an assumption."""

    evidence: str | None = None
    causes: dict[Cause, str] | None = None
    """Model cause -> count key of the evidence record (e.g. death: died_on_treatment)."""
    probabilities: dict[Cause, float] | None = None
    assumption: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "LineEnd":
        if (self.evidence is None) == (self.probabilities is None):
            raise ValueError("give either evidence + causes, or probabilities + assumption")
        if self.evidence is not None and not self.causes:
            raise ValueError("evidence needs 'causes:' mapping progression/death/... to count keys")
        if self.probabilities is not None:
            _check_assumed_probabilities(self.probabilities, self.assumption)
        return self


class Regimen(_Frozen):
    """What happens on one line of therapy with this regimen."""

    label: str
    agent: str | None = None
    """Drug(s) as the evidence names the arm (atz_bev, lenvatinib, ...); default: the regimen id.
    Used to tell when evidence measured after another prior line is transported."""
    time_on_line: DistSpec | None = None
    """Time to the first of progression, death or deterioration (fitted to PFS)."""
    line_end: LineEnd | None = None
    """Cause split at the end of ``time_on_line``."""
    cause_specific: dict[Cause, DistSpec] | None = None
    """Alternative to time_on_line + line_end: latent competing clocks, one per cause."""
    after_progression: DistSpec | None = None
    """Survival from progression to death when no further modelled line follows (includes
    any later therapy the source cohort received)."""
    transport_hazard_ratio: Quantity | None = None
    """Hazard ratio applied to this regimen's clocks when its evidence is transported
    (measured after a different prior line than the sequence gives it)."""
    note: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> "Regimen":
        split = self.time_on_line is not None
        if split == (self.cause_specific is not None):
            raise ValueError("give either time_on_line (+ line_end) or cause_specific, not both")
        if split and self.line_end is None:
            raise ValueError("time_on_line needs line_end (the cause split)")
        if not split and self.line_end is not None:
            raise ValueError("line_end goes with time_on_line, not cause_specific")
        if self.cause_specific is not None and "progression" not in self.cause_specific:
            raise ValueError("cause_specific needs at least a progression clock")
        return self


class Mix(_Frozen):
    """Several regimens at one line, chosen with probabilities."""

    evidence: str | None = None
    """Evidence id of a counts record holding the mix (e.g. the 2L regimens received)."""
    regimens: dict[str, str] | None = None
    """Evidence category -> regimen id; categories not mapped have no evidence in the
    scenario and are renormalised away (reported in the output)."""
    probabilities: dict[str, float] | None = None
    """Regimen id -> probability, with an assumption."""
    assumption: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "Mix":
        if (self.evidence is None) == (self.probabilities is None):
            raise ValueError("give either evidence + regimens, or probabilities + assumption")
        if self.evidence is not None and not self.regimens:
            raise ValueError("an evidence mix needs 'regimens:' mapping count keys to regimen ids")
        if self.probabilities is not None:
            _check_assumed_probabilities(self.probabilities, self.assumption)
        return self

    def regimen_ids(self) -> list[str]:
        return list((self.regimens or {}).values()) + list(self.probabilities or {})


class Line(_Frozen):
    """One line of a sequence: a regimen or a mix, and what follows progression."""

    regimen: str | None = None
    mix: Mix | None = None
    next_line: Probability | None = None
    """P(start the next line | progression on this one); required unless this is the last line."""
    then: Literal["post_progression", "supportive_care"] = "post_progression"
    """Last line only: after progression, the regimen's after_progression survival or
    supportive care."""

    @model_validator(mode="after")
    def _one(self) -> "Line":
        if (self.regimen is None) == (self.mix is None):
            raise ValueError("give either regimen or mix")
        return self

    def regimen_ids(self) -> list[str]:
        return [self.regimen] if self.regimen is not None else self.mix.regimen_ids()


class SequenceSpec(_Frozen):
    label: str
    lines: list[Line] = Field(min_length=1)
    note: str | None = None

    @model_validator(mode="after")
    def _next_lines(self) -> "SequenceSpec":
        for i, line in enumerate(self.lines[:-1]):
            if line.next_line is None:
                raise ValueError(f"lines.{i}: next_line is required when another line follows")
            if line.then != "post_progression":
                raise ValueError(f"lines.{i}: 'then' applies to the last line only")
        if self.lines[-1].next_line is not None:
            raise ValueError(f"lines.{len(self.lines) - 1}: the last line has no next_line")
        return self


CalibrationQuantity = Literal["median_os_from_line_start", "median_time_on_line"]


class Target(_Frozen):
    """A published summary the simulation must reproduce by solving one free parameter."""

    target: Quantity
    """The published value (evidence or pool)."""
    quantity: CalibrationQuantity
    regimen: str
    free: Literal["after_progression.median", "time_on_line.median"]

    @model_validator(mode="after")
    def _sourced(self) -> "Target":
        if self.target.evidence is None and self.target.pool is None:
            raise ValueError("a calibration target must cite evidence or pool")
        return self


class Calibration(_Frozen):
    n_patients: int | None = Field(default=None, ge=1000)
    """Patients per evaluation (default: simulation.n_patients)."""
    tolerance: float = Field(default=1e-4, gt=0, lt=0.01)
    """Relative tolerance of the root search."""
    targets: list[Target] = Field(min_length=1)


class Simulation(_Frozen):
    n_patients: int = Field(ge=1)
    seed: int = Field(ge=0, lt=2**63)
    horizon: Quantity
    """Months from the start of first line (administrative censoring)."""
    bin_width: float = Field(default=0.02, gt=0, le=1.0)
    """Histogram resolution in months."""
    landmarks: list[float] = Field(default=[12.0, 24.0, 36.0])
    """Months at which OS is reported."""


class Effect(_Frozen):
    """A covariate's proportional-hazards effect on some regimens' clocks."""

    regimens: list[str] = Field(min_length=1)
    clocks: list[Literal["time_on_line", "after_progression", "cause_specific"]] = Field(
        min_length=1
    )
    """Which clocks of those regimens the hazard ratio multiplies."""
    hazard_ratio: Quantity


class CovariateSpec(_Frozen):
    """A binary patient characteristic, drawn once per patient at the start of the sequence."""

    prevalence: Probability
    effects: list[Effect] = Field(min_length=1)
    note: str | None = None


class Population(_Frozen):
    covariates: dict[str, CovariateSpec] = Field(min_length=1)


class Drug(_Frozen):
    """A drug's cost: unit price x units per dose x doses per month (x the regimen's RDI)."""

    unit_price: Quantity
    units_per_dose: Quantity
    doses_per_month: Quantity
    note: str | None = None


class RegimenEconomics(_Frozen):
    """Costs and utilities of one regimen: on the line, and after progression on it."""

    drugs: list[str] = Field(default_factory=list)
    relative_dose_intensity: Quantity | None = None
    """Share of the planned dose actually given (default 1)."""
    administration_cost_per_month: Quantity | None = None
    monitoring_cost_per_month: Quantity | None = None
    utility: Quantity
    """Utility while progression-free on this line (per year)."""
    grade3_ae_rate: Quantity | None = None
    """Probability of at least one grade 3-4 adverse event on the line."""
    ae_cost: Quantity | None = None
    """One-off cost per patient with a grade 3-4 adverse event."""
    ae_disutility: Quantity | None = None
    """Utility decrement while affected by a grade 3-4 adverse event."""
    ae_duration_months: Quantity | None = None
    """How long the decrement lasts (months); with the rate gives a one-off QALY loss."""
    post_progression_cost_per_month: Quantity | None = None
    post_progression_utility: Quantity | None = None

    @model_validator(mode="after")
    def _ae_complete(self) -> "RegimenEconomics":
        ae = [self.ae_cost, self.ae_disutility, self.ae_duration_months]
        if self.grade3_ae_rate is None and any(q is not None for q in ae):
            raise ValueError("adverse-event costs or disutilities need grade3_ae_rate")
        if self.ae_disutility is not None and self.ae_duration_months is None:
            raise ValueError("ae_disutility needs ae_duration_months")
        return self


class StateEconomics(_Frozen):
    cost_per_month: Quantity
    utility: Quantity


class AgeAdjustment(_Frozen):
    """Utilities scaled as patients age by general-population utility at their age relative to
    the start: U(age) = intercept + age * years + age_squared * years^2 (the form of, e.g.,
    Ara & Brazier 2010); its coefficients are inputs like any other."""

    start_age: Quantity
    """Age (years) at the start of the sequence."""
    intercept: Quantity
    age: Quantity
    age_squared: Quantity


class EconomicsSpec(_Frozen):
    """Costs, utilities and decision settings for cost-effectiveness analysis."""

    currency: str
    price_year: int
    discount_costs: Quantity
    """Annual discount rate for costs (continuous-time, exact)."""
    discount_qalys: Quantity
    """Annual discount rate for QALYs and life-years."""
    willingness_to_pay: Quantity
    """Currency per QALY, for net monetary benefit."""
    reference: str
    """Sequence id that incremental results are computed against first."""
    drugs: dict[str, Drug] = Field(default_factory=dict)
    regimens: dict[str, RegimenEconomics]
    supportive_care: StateEconomics
    terminal_care_cost: Quantity
    """One-off cost at death."""
    age_adjustment: AgeAdjustment | None = None
    """Optional: utilities decline with age as in the general population."""


class PSASettings(_Frozen):
    """Uncertainty for inputs whose evidence reports none (each an explicit assumption)."""

    cost_se_fraction: Quantity | None = None
    """SE of costs as a fraction of their value (gamma distributed)."""
    utility_se_fraction: Quantity | None = None
    """SE of utilities without a reported range, as a fraction of their value (Beta)."""
    median_se_log: Quantity | None = None
    """SE of log(median) for medians reported without CI, events or n (log-normal)."""
    n_draws: int = Field(default=1000, ge=2)
    n_patients: int = Field(default=10_000, ge=100)
    """Patients per draw and sequence."""
    evppi_groups: dict[str, list[str]] = Field(default_factory=dict)
    """Named parameter groups for EVPPI: each entry a parameter key, an evidence id, or a
    scenario key path (prefixes match), e.g. {second_line_survival: [second_line.]}.
    Groups by kind of parameter (survival, costs, utilities, ...) are always reported."""


class Scenario(_Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    title: str
    description: str | None = None
    simulation: Simulation
    regimens: dict[str, Regimen] = Field(min_length=1)
    supportive_care: DistSpec
    """Survival (months) from failure of a line with no further therapy."""
    sequences: dict[str, SequenceSpec] = Field(min_length=1)
    population: Population | None = None
    """Optional patient heterogeneity; calibrated medians are re-solved for the mixed population."""
    calibration: Calibration | None = None
    economics: EconomicsSpec | None = None
    """Optional cost-effectiveness inputs; without them only survival is reported."""
    psa: PSASettings | None = None
    """Probabilistic sensitivity analysis settings (``simseq psa``)."""


def cross_references(sc: Scenario) -> list[tuple[str, Any, str]]:
    """Problems between sections: unknown regimens, missing after_progression, calibration links."""
    problems = []
    known = sorted(sc.regimens)
    for sid, seq in sc.sequences.items():
        for i, line in enumerate(seq.lines):
            where = f"sequences.{sid}.lines.{i}"
            for rid in line.regimen_ids():
                if rid not in sc.regimens:
                    problems.append((where, rid, f"unknown regimen; defined: {', '.join(known)}"))
        last = seq.lines[-1]
        if last.then == "post_progression":
            for rid in last.regimen_ids():
                if rid in sc.regimens and sc.regimens[rid].after_progression is None:
                    problems.append(
                        (
                            f"sequences.{sid}.lines.{len(seq.lines) - 1}",
                            rid,
                            "this regimen ends the sequence but has no after_progression "
                            "(define it, or set then: supportive_care)",
                        )
                    )
    for name, cov in (sc.population.covariates if sc.population else {}).items():
        for j, effect in enumerate(cov.effects):
            for rid in effect.regimens:
                if rid not in sc.regimens:
                    problems.append(
                        (
                            f"population.covariates.{name}.effects.{j}.regimens",
                            rid,
                            f"unknown regimen; defined: {', '.join(known)}",
                        )
                    )
    if sc.economics is not None:
        econ = sc.economics
        if econ.reference not in sc.sequences:
            problems.append(
                (
                    "economics.reference",
                    econ.reference,
                    f"unknown sequence; defined: {', '.join(sc.sequences)}",
                )
            )
        used = {
            rid for seq in sc.sequences.values() for line in seq.lines for rid in line.regimen_ids()
        }
        for rid in sorted(used - set(econ.regimens)):
            if rid in sc.regimens:
                problems.append(
                    (
                        "economics.regimens",
                        rid,
                        "a regimen used by a sequence has no economics entry",
                    )
                )
        for rid, reg in econ.regimens.items():
            if rid not in sc.regimens:
                problems.append(
                    (
                        f"economics.regimens.{rid}",
                        rid,
                        f"unknown regimen; defined: {', '.join(known)}",
                    )
                )
            for j, drug in enumerate(reg.drugs):
                if drug not in econ.drugs:
                    problems.append(
                        (
                            f"economics.regimens.{rid}.drugs.{j}",
                            drug,
                            f"unknown drug; defined: {', '.join(econ.drugs) or 'none'}",
                        )
                    )
    calibrated = set()
    for i, tgt in enumerate(sc.calibration.targets if sc.calibration else []):
        if tgt.regimen not in sc.regimens:
            problems.append(
                (
                    f"calibration.targets.{i}.regimen",
                    tgt.regimen,
                    f"unknown regimen; defined: {', '.join(known)}",
                )
            )
            continue
        part, _ = tgt.free.split(".")
        spec = getattr(sc.regimens[tgt.regimen], part)
        if spec is None or spec.median is None or spec.median.calibrate is None:
            problems.append(
                (
                    f"calibration.targets.{i}.free",
                    tgt.free,
                    f"regimens.{tgt.regimen}.{tgt.free} must be declared as {{calibrate: ...}}",
                )
            )
        calibrated.add((tgt.regimen, part))
    for rid, reg in sc.regimens.items():
        for part in ("time_on_line", "after_progression"):
            spec = getattr(reg, part)
            if spec is not None and spec.median is not None and spec.median.calibrate:
                if (rid, part) not in calibrated:
                    problems.append(
                        (
                            f"regimens.{rid}.{part}.median",
                            "calibrate",
                            "marked calibrate but no calibration target frees it",
                        )
                    )
    return problems


def _yaml_error(path: str, err: yaml.YAMLError) -> ScenarioError:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
    problem = getattr(err, "problem", None) or str(err)
    return ScenarioError(path, [(where, None, f"invalid YAML: {problem}")])


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Field names allowed at the parent of ``loc`` (for 'extra key' errors)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = _inner_model(field.annotation)
        else:
            current = None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside Optional/list/dict annotations, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _dig(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def parse_scenario(data: Any, file: str = "<scenario>") -> Scenario:
    """Validate a loaded YAML mapping; raise ScenarioError naming each bad key path."""
    if not isinstance(data, dict):
        raise ScenarioError(file, [("(top level)", type(data).__name__, "expected a mapping")])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = tuple(e["loc"])
            path = ".".join(str(p) for p in loc) or "(top level)"
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                allowed = _allowed_keys(Scenario, loc)
                msg = f"unknown key; allowed: {', '.join(allowed) if allowed else 'see docs'}"
            elif e["type"] == "missing":
                msg = "required key is missing"
            problems.append((path, _dig(data, loc) if e["type"] != "missing" else None, msg))
        raise ScenarioError(file, problems) from None
    problems = cross_references(scenario)
    if problems:
        raise ScenarioError(file, problems)
    return scenario


def _deep_merge(base: dict, override: dict) -> dict:
    """``override`` on ``base``: mappings merge key by key, a null deletes, others replace."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: str, chain: tuple[str, ...] = ()) -> Any:
    """Load a scenario file, following ``extends: other.yaml`` (relative to this file)."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ScenarioError(path, [("(file)", None, f"cannot read: {err.strerror}")]) from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise _yaml_error(path, err) from None
    if not isinstance(data, dict) or "extends" not in data:
        return data
    parent = data.pop("extends")
    if not isinstance(parent, str):
        raise ScenarioError(
            path, [("extends", parent, "must be the path of another scenario file")]
        )
    parent_path = str((Path(path).parent / parent).resolve())
    if parent_path in chain:
        raise ScenarioError(path, [("extends", parent, "circular extends chain")])
    base = _read_yaml(parent_path, (*chain, str(Path(path).resolve())))
    if not isinstance(base, dict):
        raise ScenarioError(parent_path, [("(top level)", None, "expected a mapping")])
    return _deep_merge(base, data)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file (with ``extends:`` resolved)."""
    path = str(path)
    return parse_scenario(_read_yaml(path), path)
