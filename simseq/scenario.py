"""Scenario YAML -> validated, frozen config (pydantic, ``extra="forbid"``).

A scenario names its regimens (what happens on a line of therapy), the survival
with no further therapy, and the sequences to compare (first line, then a rule
for each later line). Every number either cites an evidence id, pools several,
is marked as an assumption with its reason, or is left to calibration.

Structural checks live here; whether cited evidence ids exist and fit their use
is checked when the scenario is resolved (``simseq.resolve``), with the same
error format: file, key path, value, what is allowed.
"""

import datetime
import difflib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from simseq.distributions import FAMILIES
from simseq.limits import (
    CALIBRATION_BOUNDS,
    MAX_BINS,
    MAX_DRAWS,
    MAX_EXTENDS_DEPTH,
    MAX_HORIZON,
    MAX_PATIENTS,
    MAX_SCENARIO_BYTES,
    MAX_SEED,
    MIN_BIN_WIDTH,
    TALLY_BYTES_PER_BIN,
)
from simseq.yamlio import FileProblem, load_yaml, read_text_file

DOCS = "docs/scenario.md"
"""The scenario reference (generated from these models by ``python -m simseq.scenario_docs``)."""

MAX_PROBLEMS_SHOWN = 40
"""Problems listed in one error message; the rest are counted."""

MAX_VALIDATION_LINE = 9
"""Highest line number a validation entry can name (``origin: line_9``)."""


class ScenarioError(ValueError):
    """A scenario problem, located by file and key path."""

    def __init__(self, file: str, problems: list[tuple[str, Any, str]]):
        self.file = file
        self.problems = problems
        lines = [
            f"{file}: {_one_line(loc, 200)}: {_one_line(msg, 600)}{_got(v)}"
            for loc, v, msg in problems[:MAX_PROBLEMS_SHOWN]
        ]
        if len(problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"{file}: ... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
        super().__init__("\n".join(lines))


def _one_line(text: str, limit: int) -> str:
    """``text`` on one line (control characters escaped), cut to ``limit`` characters: a key
    path or message quoting a user's key must not break the one-problem-a-line format."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _got(value: Any) -> str:
    if value is None:
        return ""
    return f" (got {brief(value)})"


class _Full(Exception):
    pass


_PLAIN_REPR = (bool, float, type(None), datetime.date, datetime.time)


def brief(value: Any, limit: int = 100) -> str:
    """``repr(value)`` cut to ``limit`` characters, at a cost bounded by ``limit``.

    Unlike ``repr(value)[:limit]`` it never walks more of ``value`` than it shows, so a
    huge (or alias-expanded) structure cannot make an error message slow.
    """
    parts: list[str] = []
    room = [limit + 1]

    def put(text: str) -> None:
        parts.append(text[: room[0]])
        room[0] -= len(text)
        if room[0] <= 0:
            raise _Full

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            put("{")
            for i, (k, x) in enumerate(v.items()):
                put(", " if i else "")
                walk(k)
                put(": ")
                walk(x)
            put("}")
        elif isinstance(v, list | tuple | set | frozenset):
            left, right = {list: "[]", tuple: "()"}.get(type(v), "{}")
            put(left)
            for i, x in enumerate(v):
                put(", " if i else "")
                walk(x)
            put(right)
        elif isinstance(v, str | bytes):
            put(repr(v[: limit + 1]))
        elif isinstance(v, int) and not isinstance(v, bool):
            digits = v.bit_length() * 0.30103
            put(repr(v) if digits < 200 else f"<an integer of about {digits:.0f} digits>")
        elif isinstance(v, _PLAIN_REPR):
            put(repr(v))
        else:
            put(f"<{type(v).__name__}>")

    try:
        walk(value)
    except _Full:
        pass
    text = "".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Domain:
    """Where a number must lie; attached to a field with ``Annotated[..., Domain(...)]``.

    Explicit values are checked when the scenario is read (``value_problems``); numbers
    from evidence, calibration or a sensitivity-analysis override where the resolver uses
    them (``simseq.resolve``).
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    what: str = ""

    def __contains__(self, x: float) -> bool:
        if not (isinstance(x, int | float) and math.isfinite(x)):
            return False
        above = x > self.low if self.low_open else x >= self.low
        below = x < self.high if self.high_open else x <= self.high
        return above and below

    def text(self) -> str:
        """e.g. "> 0", "in [0, 1)", "<= 1"."""
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low == -math.inf:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"

    def message(self) -> str:
        return f"must be {self.text()}" + (f" ({self.what})" if self.what else "")


POSITIVE = Domain(0.0, low_open=True)
NON_NEGATIVE = Domain(0.0)
PROBABILITY = Domain(0.0, 1.0, what="a probability")
MEDIAN = Domain(0.0, low_open=True, what="a median in months")
HAZARD_RATIO = Domain(0.0, low_open=True, what="a hazard ratio")
COST = Domain(0.0, what="a cost")
UTILITY = Domain(high=1.0, what="a utility: 1 is full health")
DISCOUNT_RATE = Domain(0.0, 1.0, high_open=True, what="an annual rate")
HORIZON = Domain(
    0.0, MAX_HORIZON, low_open=True, what=f"months; {MAX_HORIZON:g} months is 100 years"
)
AGE = Domain(0.0, 120.0, what="years")


def _numeric(annotation: Any) -> bool:
    """Whether a field holds numbers (int or float), possibly in a list, tuple or dict."""
    origin = get_origin(annotation)
    if origin in (Union, type(int | None)):
        return any(_numeric(a) for a in get_args(annotation) if a is not type(None))
    if origin in (list, tuple, dict):
        args = get_args(annotation)
        return bool(args) and _numeric(args[-1] if origin is dict else args[0])
    return annotation in (int, float)


def _has_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, list | tuple):
        return any(isinstance(x, bool) for x in v)
    if isinstance(v, dict):
        return any(isinstance(x, bool) for x in v.values())
    return False


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        # YAML reads yes/no/on/off/true/false as booleans, which pydantic would take as 1/0
        if _has_bool(v) and _numeric(cls.model_fields[info.field_name].annotation):
            raise ValueError(
                "expected a number, got a boolean (YAML reads true/false/yes/no/on/off as booleans)"
            )
        return v


class CalibrateSpec(_Frozen):
    """A parameter left to calibration: the search bracket (months)."""

    bounds: tuple[float, float] = (0.1, 120.0)
    """Lower and upper bound of the root search (months), each in [0.01, 1200]."""

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        lo, hi = bounds
        low, high = CALIBRATION_BOUNDS
        if not low <= lo < hi <= high:
            raise ValueError(
                f"must satisfy {low:g} <= low < high <= {high:g} (months: a median shorter "
                "than ~7 hours or longer than the longest horizon cannot be calibrated)"
            )
        return bounds


class Uncertainty(_Frozen):
    """The uncertainty of an explicit value (an assumption), drawn in a PSA: a distribution
    whose centre is the value, with a stated spread and the reason for it."""

    distribution: Literal["lognormal", "beta", "gamma", "dirichlet"]
    """lognormal (positive numbers: shapes, hazard ratios, medians), beta (a probability),
    gamma (a cost), dirichlet (a split over causes)."""
    se_log: float | None = Field(default=None, gt=0, le=5)
    """lognormal: SE of the log value."""
    ci95: tuple[float, float] | None = None
    """lognormal: a 95% range (SE of the log = log(high / low) / 3.92); it must contain
    the value, which stays the distribution's median."""
    se: float | None = Field(default=None, gt=0)
    """beta or gamma: SE on the value's own scale."""
    n: float | None = Field(default=None, gt=0)
    """beta or dirichlet: the number of patients the value is as certain as (Beta(p n,
    (1 - p) n); Dirichlet(p_i n))."""
    assumption: str
    """Why this spread: what range is plausible and on what grounds."""

    @model_validator(mode="after")
    def _one_spread(self) -> "Uncertainty":
        allowed = {
            "lognormal": ("se_log", "ci95"),
            "beta": ("n", "se"),
            "gamma": ("se",),
            "dirichlet": ("n",),
        }[self.distribution]
        given = [k for k in ("se_log", "ci95", "se", "n") if getattr(self, k) is not None]
        if len(given) != 1 or given[0] not in allowed:
            raise ValueError(
                f"a {self.distribution} uncertainty needs exactly one of "
                f"{' or '.join(allowed)}; got {given or 'none'}"
            )
        if self.ci95 is not None and not 0 < self.ci95[0] < self.ci95[1]:
            raise ValueError("ci95 must be [low, high] with 0 < low < high")
        if not self.assumption.strip():
            raise ValueError("an uncertainty needs an 'assumption:' saying why this spread")
        return self


class Pooling(_Frozen):
    """How the medians of a ``pool:`` are combined (on the log scale, inverse-variance)."""

    method: Literal["random_effects", "fixed_effect"] = "random_effects"
    """random_effects (default: the sources' disagreement beyond their sampling error,
    tau^2, widens the pooled SE) or fixed_effect (an explicit choice: the sources estimate
    one common median)."""
    tau2: Literal["reml", "dl"] = "reml"
    """Estimator of the between-study variance: REML (default) or DerSimonian-Laird."""
    psa: Literal["mean", "predictive"] = "mean"
    """What a PSA draws: the pooled (average) median with its SE (default), or the
    predictive distribution of the median in a new setting, which adds tau^2 (Riley et al.
    2011); predictive suits a decision population unlike any of the pooled cohorts."""


class Quantity(_Frozen):
    """One number and where it comes from: exactly one of evidence, pool, value, calibrate."""

    evidence: str | None = None
    """Evidence id whose headline value is used."""
    pool: list[str] | None = Field(default=None, min_length=2)
    """Evidence ids of medians to pool (inverse-variance on the log median; each source's SE
    from its CI, else its events, else its n; all of one cohort)."""
    pooling: Pooling | None = None
    """With pool: how to pool (default random effects, REML)."""
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
    uncertainty: Uncertainty | None = None
    """With value, or evidence that reports no uncertainty of its own (e.g. a proportion
    without its n): its distribution in a PSA (else it is held fixed, and listed so)."""
    note: str | None = None
    """Free text for readers; not used by the model."""

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
        if self.pooling is not None and self.pool is None:
            raise ValueError("'pooling:' goes with 'pool:'")
        if self.uncertainty is not None:
            if self.value is None and self.evidence is None:
                raise ValueError("'uncertainty:' goes with 'value:' or 'evidence:'")
            if self.value is not None:
                check_centre(self.uncertainty, self.value)
        if self.illustrative and self.value is None:
            raise ValueError("only an explicit value can be illustrative")
        return self

    def evidence_ids(self) -> list[str]:
        """The evidence ids this number cites (its record, or the records it pools)."""
        return [self.evidence] if self.evidence else list(self.pool or [])


class Probability(_Frozen):
    """A probability: ``evidence`` + ``count`` (count / n) or + ``field`` (a named proportion),
    or value + assumption."""

    evidence: str | None = None
    """Evidence id of the record the probability comes from."""
    count: str | None = None
    """Key of the record's counts (e.g. received_2l): probability = counts[count] / n."""
    field: str | None = None
    """Key of the record's values holding a proportion (e.g. child_pugh_a)."""
    complement: bool = False
    """Use 1 - the cited proportion (e.g. Child-Pugh B = 1 - Child-Pugh A)."""
    value: float | None = Field(default=None, ge=0.0, le=1.0)
    """An explicit probability; requires ``assumption``."""
    assumption: str | None = None
    """Why an explicit value was chosen (required with ``value``)."""
    uncertainty: Uncertainty | None = None
    """With value, or evidence + field (a proportion reported without its n): its
    distribution in a PSA (beta; else it is held fixed, and listed so). A count carries
    its own (beta from count and n)."""
    note: str | None = None
    """Free text for readers; not used by the model."""

    @model_validator(mode="after")
    def _one_source(self) -> "Probability":
        if (self.evidence is None) == (self.value is None):
            raise ValueError("give either evidence + count, or value + assumption")
        if self.uncertainty is not None:
            if self.uncertainty.distribution != "beta" or self.count is not None:
                raise ValueError(
                    "'uncertainty:' of a probability is a beta, with 'value:' or with "
                    "evidence + field (a count's beta comes from its count and n)"
                )
            if self.value is not None:
                check_centre(self.uncertainty, self.value)
        if self.evidence is not None and (self.count is None) == (self.field is None):
            raise ValueError("an evidence probability needs either 'count:' or 'field:'")
        if self.value is not None and not (self.assumption and self.assumption.strip()):
            raise ValueError("an explicit value needs an 'assumption:' saying why")
        return self


def check_centre(u: Uncertainty, value: float) -> None:
    """A stated uncertainty must be able to centre on its value."""
    if u.distribution in ("lognormal", "gamma") and not value > 0:
        raise ValueError(f"a {u.distribution} uncertainty needs a positive value, not {value:g}")
    if u.distribution == "beta" and not 0 < value < 1:
        raise ValueError(f"a beta uncertainty needs a value in (0, 1), not {value:g}")
    if u.distribution == "beta" and u.se is not None and u.se**2 >= value * (1 - value):
        raise ValueError(
            f"no beta distribution has mean {value:g} and SE {u.se:g}: the SE must be below "
            f"sqrt(p (1 - p)) = {(value * (1 - value)) ** 0.5:.3g}"
        )
    if u.ci95 is not None and not u.ci95[0] < value < u.ci95[1]:
        raise ValueError(f"ci95 {list(u.ci95)} must contain the value {value:g}")


def _check_assumed_probabilities(probabilities: dict[str, float], assumption: str | None) -> None:
    """Explicit probabilities need an assumption saying why."""
    if not (assumption and assumption.strip()):
        raise ValueError("explicit probabilities need an 'assumption:' saying why")


def _check_probabilities(probabilities: dict[str, float] | None) -> dict[str, float] | None:
    """Explicit probabilities: each in [0, 1], summing to 1."""
    if probabilities is None:
        return None
    outside = [k for k, p in probabilities.items() if not 0 <= p <= 1]
    if outside:
        raise ValueError(f"each probability must be in [0, 1], not so: {', '.join(outside)}")
    total = sum(probabilities.values())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"probabilities must be >= 0 and sum to 1, got sum {total:g}")
    return probabilities


_PARAM_FIELDS = ("rate", "shape", "scale", "meanlog", "sdlog", "mu", "sigma", "Q")


class DistSpec(_Frozen):
    """A parametric time-to-event distribution (months), flexsurv parameter names.

    Either ``median`` plus every other parameter of the family (the remaining
    one is solved so the median is hit), or every parameter explicitly.
    """

    family: Literal["exponential", "weibull", "llogis", "lnorm", "gompertz", "gamma", "gengamma"]
    """Parametric family, with R flexsurv's parameterisation."""
    median: Annotated[Quantity | None, MEDIAN] = None
    """Median (months); the family's scale parameter is solved to hit it."""
    rate: Quantity | None = None
    """exponential, gompertz, gamma (> 0)."""
    shape: Quantity | None = None
    """weibull, llogis, gamma (> 0); gompertz (any real: < 0 gives a cured fraction)."""
    scale: Quantity | None = None
    """weibull, llogis (> 0, months)."""
    meanlog: Quantity | None = None
    """lnorm: mean of log time."""
    sdlog: Quantity | None = None
    """lnorm: SD of log time (> 0)."""
    mu: Quantity | None = None
    """gengamma: location."""
    sigma: Quantity | None = None
    """gengamma: scale (> 0)."""
    Q: Quantity | None = None
    """gengamma: shape."""
    hazard_ratio: Annotated[Quantity | None, HAZARD_RATIO] = None
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
RunOutputs = Literal["full", "sequence_os"]
"""What a run tallies (``simulation.outputs``); ``simseq run --outputs`` overrides it."""


class LineEnd(_Frozen):
    """How a line ends: cause probabilities from evidence counts, or explicit with an assumption."""

    evidence: str | None = None
    """Evidence id of a counts record of how the line ended."""
    causes: dict[Cause, str] | None = None
    """Model cause -> count key of the evidence record (e.g. death: died_on_treatment)."""
    probabilities: dict[Cause, float] | None = None
    """Cause -> probability (each in [0, 1], summing to 1), with an assumption."""
    death_share: Annotated[Quantity | None, PROBABILITY] = None
    """With evidence: P(the line ends by death) taken from elsewhere than the record (a
    value with an assumption, or ``{calibrate: ...}`` solved by a calibration target
    freeing ``line_end.death_share``); the other causes share the rest in the proportions
    of their counts. ``causes`` then maps the other causes only."""
    assumption: str | None = None
    """Why explicit probabilities were chosen (required with ``probabilities``)."""
    uncertainty: Uncertainty | None = None
    """With probabilities: their distribution in a PSA (dirichlet; else held fixed, and
    listed so)."""
    note: str | None = None
    """Free text for readers; not used by the model."""

    _probabilities_sum_to_one = field_validator("probabilities")(_check_probabilities)

    @model_validator(mode="after")
    def _one_source(self) -> "LineEnd":
        if self.uncertainty is not None and (
            self.probabilities is None or self.uncertainty.distribution != "dirichlet"
        ):
            raise ValueError("'uncertainty:' of a line end is a dirichlet, with 'probabilities:'")
        if (self.evidence is None) == (self.probabilities is None):
            raise ValueError("give either evidence + causes, or probabilities + assumption")
        if self.evidence is not None and not self.causes:
            raise ValueError("evidence needs 'causes:' mapping progression/death/... to count keys")
        if self.causes and len(set(self.causes.values())) < len(self.causes):
            raise ValueError("each cause needs its own count key (two causes share one)")
        if self.probabilities is not None:
            _check_assumed_probabilities(self.probabilities, self.assumption)
        if self.death_share is not None:
            if self.evidence is None:
                raise ValueError("death_share goes with evidence + causes (the other causes)")
            if "death" in self.causes:
                raise ValueError(
                    "with death_share, 'causes:' maps the other causes only (the record's "
                    "death count is not used)"
                )
        return self


class TimeOnTreatment(_Frozen):
    """When treatment stops before its line ends. Drug and administration costs accrue
    while on treatment; the line (progression-free time, its utility and monitoring)
    runs to progression, death or deterioration as before."""

    stop_for_adverse_events: Annotated[
        Quantity | None, Domain(0.0, 1.0, high_open=True, what="a share of patients")
    ] = None
    """Share of patients starting the line who stop treatment for adverse events before the
    line ends (e.g. a safety record's ae_discontinuation). Modelled as a constant hazard
    independent of the line's clocks, its rate solved in every draw so that this share
    stops before the line ends (for a patient without the population covariates)."""
    max_months: Annotated[Quantity | None, Domain(0.0, low_open=True, what="months")] = None
    """Stopping rule: treatment stops after this many months on the line."""
    note: str | None = None
    """Free text for readers; not used by the model."""

    @model_validator(mode="after")
    def _something(self) -> "TimeOnTreatment":
        if self.stop_for_adverse_events is None and self.max_months is None:
            raise ValueError("give stop_for_adverse_events, max_months or both")
        return self


class ThirdLine(_Frozen):
    """A further line of therapy after progression on a regimen that ends a sequence."""

    share: Probability
    """Probability of starting it after progression (e.g. a third_line_received record)."""
    regimen: str
    """Regimen id of that line (its time on line, line end and after_progression)."""
    note: str | None = None
    """Free text for readers; not used by the model."""


class Regimen(_Frozen):
    """What happens on one line of therapy with this regimen."""

    label: str
    """Name shown in tables and plots."""
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
    transport_hazard_ratio: Annotated[Quantity | None, HAZARD_RATIO] = None
    """Hazard ratio applied to this regimen's clocks when its evidence is transported
    (measured after a different prior line than the sequence gives it)."""
    time_on_treatment: TimeOnTreatment | None = None
    """When treatment stops before the line ends (default: at the line's end). Drug and
    administration costs follow it."""
    third_line: ThirdLine | None = None
    """An explicit further line after progression on this regimen when it ends a sequence
    (and in its calibration cohort). Those who do not start it follow ``after_progression``,
    which is then survival without further therapy (default: no explicit line; any later
    therapy stays inside ``after_progression``)."""
    cohort_population: dict[str, Probability] | None = None
    """Prevalence of each ``population`` covariate in the cohorts this regimen's evidence
    was measured in (default: the scenario's). Its calibration targets are simulated in
    this mix, so its calibrated survival is adjusted for it; sequences are then simulated
    in the scenario's population, common to all (``comparisons:`` reports both)."""
    note: str | None = None
    """Free text for readers; not used by the model."""

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
    """Regimen id -> probability (each in [0, 1], summing to 1), with an assumption."""
    assumption: str | None = None
    """Why explicit probabilities were chosen (required with ``probabilities``)."""
    note: str | None = None
    """Free text for readers; not used by the model."""

    _probabilities_sum_to_one = field_validator("probabilities")(_check_probabilities)

    @model_validator(mode="after")
    def _one_source(self) -> "Mix":
        if (self.evidence is None) == (self.probabilities is None):
            raise ValueError("give either evidence + regimens, or probabilities + assumption")
        if self.evidence is not None and not self.regimens:
            raise ValueError("an evidence mix needs 'regimens:' mapping count keys to regimen ids")
        if self.regimens and len(set(self.regimens.values())) < len(self.regimens):
            raise ValueError("each category needs its own regimen (two map to the same one)")
        if self.probabilities is not None:
            _check_assumed_probabilities(self.probabilities, self.assumption)
        return self

    def regimen_ids(self) -> list[str]:
        return list((self.regimens or {}).values()) + list(self.probabilities or {})


class Line(_Frozen):
    """One line of a sequence: a regimen or a mix, and what follows progression."""

    regimen: str | None = None
    """Regimen id (a key of ``regimens``), or give ``mix``."""
    mix: Mix | None = None
    """Several regimens at this line, chosen with probabilities."""
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
    """A treatment sequence: its lines of therapy, first line first."""

    label: str
    """Name shown in tables and plots."""
    lines: list[Line] = Field(min_length=1)
    """The lines of therapy, in order."""
    note: str | None = None
    """Free text for readers; not used by the model."""

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


CalibrationQuantity = Literal[
    "median_os_from_line_start", "median_time_on_line", "os_landmark_from_sequence_start"
]
COHORT_QUANTITIES = ("median_os_from_line_start", "median_time_on_line")
"""Targets about a calibration cohort: every patient starts on ``regimen``."""


class Target(_Frozen):
    """A published summary the simulation must reproduce: by solving one free median
    (``method: point``), or through the likelihood of the free parameters' posterior
    (``method: bayes``)."""

    target: Quantity
    """The value to reproduce: published (evidence or pool), or an explicit value with an
    assumption saying where it comes from (e.g. expert opinion for a new regimen)."""
    quantity: CalibrationQuantity
    """What the target measures: the median OS from the start of the regimen's line, the
    median time on the line (both in a cohort that starts every patient on ``regimen``),
    or OS at ``month`` from the start of a whole ``sequence`` (a proportion; bayes only)."""
    regimen: str | None = None
    """Regimen id of a cohort target; it is simulated alone, from the start of its line,
    as its source cohort was. For a point-calibrated ``os_landmark_from_sequence_start``
    target: the regimen (a line of ``sequence``) whose ``free`` parameter is solved."""
    sequence: str | None = None
    """Sequence id of an ``os_landmark_from_sequence_start`` target."""
    month: Annotated[float, Field(gt=0)] | None = None
    """Landmark time (months from the start of ``sequence``) of an
    ``os_landmark_from_sequence_start`` target."""
    free: (
        Literal["after_progression.median", "time_on_line.median", "line_end.death_share"] | None
    ) = None
    """``method: point``: the parameter of ``regimen`` solved for (a median, or for an
    ``os_landmark_from_sequence_start`` target the regimen's ``line_end.death_share``); it
    must be declared ``{calibrate: ...}`` in the regimen. Not used by ``method: bayes``
    (its free parameters are the keys of ``priors``)."""
    se: Annotated[Quantity | None, POSITIVE] = None
    """``method: bayes``: the target's standard error where its evidence gives none (SE
    of the log median for a median, the SE of the proportion for a landmark), as a
    value with an assumption."""

    @model_validator(mode="after")
    def _sourced(self) -> "Target":
        if self.target.calibrate is not None:
            raise ValueError(
                "a calibration target is a value to reproduce: cite evidence or pool, or give "
                "a value with an assumption saying where it comes from"
            )
        if self.se is not None and self.se.value is None:
            raise ValueError("se: is an explicit value with an assumption saying why")
        if self.quantity in COHORT_QUANTITIES:
            if self.regimen is None or self.sequence is not None or self.month is not None:
                raise ValueError(f"{self.quantity} needs 'regimen:' (not sequence or month)")
            if self.free == "line_end.death_share":
                raise ValueError(
                    f"{self.quantity} frees a median; line_end.death_share is freed by an "
                    "os_landmark_from_sequence_start target"
                )
        elif self.sequence is None or self.month is None:
            raise ValueError(f"{self.quantity} needs 'sequence:' and 'month:'")
        elif (self.free is None) != (self.regimen is None):
            raise ValueError(
                f"{self.quantity}: give 'regimen:' and 'free:' together (method: point), or "
                "neither (method: bayes)"
            )
        elif self.free is not None and self.free != "line_end.death_share":
            raise ValueError(
                f"{self.quantity} frees line_end.death_share of a line of its sequence (a "
                f"median is freed by a cohort target), not {self.free}"
            )
        if (
            self.quantity == "median_time_on_line"
            and self.free is not None
            and self.free != "time_on_line.median"
        ):
            raise ValueError(
                "median_time_on_line depends on time_on_line.median only: free that one "
                "(after_progression.median cannot move it)"
            )
        return self


class EvidenceSpec(_Frozen):
    """Evidence of your own beside simseq's packaged figures: files with the schema of
    simseq/data/hcc_evidence.yaml, and records written here. Their ids must be new (a
    user's record never replaces a packaged one); every output lists the user evidence
    it used."""

    files: list[str] = Field(default_factory=list)
    """Evidence files (``sources:``, ``records:``, optional ``notes:``), relative to the
    scenario file that lists them."""
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Sources of the records below: id -> {cite, setting}. Records may also cite a source
    simseq already has (e.g. chon2024). Checked as the packaged file's are."""
    records: list[dict[str, Any]] = Field(default_factory=list)
    """Records as in an evidence file: id, source, quantity, value, unit, ci95, n, ...
    (the fields and rules of ``simseq.evidence.Record``). Checked as the packaged file's
    are."""


class Prior(_Frozen):
    """A prior of a free parameter of a Bayesian calibration: log-normal, with a reason."""

    distribution: Literal["lognormal"] = "lognormal"
    """Log-normal: log(parameter) ~ normal(log(median), se_log^2)."""
    median: Annotated[float, Field(gt=0)]
    """Prior median, in the parameter's unit (months for a median)."""
    se_log: Annotated[float, Field(gt=0, le=5)]
    """SD of the log of the parameter (1.0: the 95% interval spans x/÷ 7.1)."""
    assumption: str
    """Why this prior: what is known about the parameter before the targets."""

    @field_validator("assumption")
    @classmethod
    def _said(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("a prior needs an assumption saying why")
        return text


class IMISSettings(_Frozen):
    """Incremental mixture importance sampling (Raftery & Bao 2010) of a Bayesian
    calibration's posterior."""

    n_initial: int = Field(default=2000, ge=100, le=1_000_000)
    """Prior draws before the first mixture component."""
    n_per_iteration: int = Field(default=500, ge=10, le=1_000_000)
    """Draws from each new mixture component."""
    target_ess: int = Field(default=500, ge=100, le=1_000_000)
    """Stop once the effective sample size of the importance weights reaches this."""
    max_iterations: int = Field(default=50, ge=0, le=1000)
    """Mixture components at most; reaching it without the target ESS is an error."""
    n_resample: int = Field(default=1000, ge=100, le=1_000_000)
    """Draws of the equal-weight posterior sample (posterior.csv)."""
    seed: int | None = Field(default=None, ge=0, lt=MAX_SEED)
    """Seed of the sampler (default: simulation.seed)."""


class Calibration(_Frozen):
    """Parameters solved, or given a posterior, so the simulation reproduces published
    summaries."""

    method: Literal["point", "bayes"] = "point"
    """``point``: each target solves one free median exactly (in every PSA row).
    ``bayes``: the free parameters (keys of ``priors``) get a posterior given every
    target's estimate and SE, sampled by IMIS; the base case uses the posterior mean
    and PSA draw d posterior draw d."""
    n_patients: int | None = Field(default=None, ge=1000, le=MAX_PATIENTS)
    """Patients per evaluation (default: simulation.n_patients)."""
    tolerance: float = Field(default=1e-4, gt=0, lt=0.01)
    """Relative tolerance of the root search."""
    targets: list[Target] = Field(min_length=1)
    """The published summaries to reproduce (``point``: one free median each)."""
    priors: dict[str, Prior] = Field(default_factory=dict)
    """``bayes``: key path of each free parameter (e.g.
    regimens.atz_bev.time_on_line.shape, or a median declared ``{calibrate: ...}``) ->
    its prior."""
    imis: IMISSettings = Field(default_factory=IMISSettings)
    """``bayes``: the sampler's settings."""

    @model_validator(mode="after")
    def _method(self) -> "Calibration":
        if self.method == "point":
            if self.priors:
                raise ValueError("priors go with method: bayes")
            for i, t in enumerate(self.targets):
                if t.free is None:
                    raise ValueError(
                        f"targets.{i}: method: point solves one free median per target: "
                        "give 'free:' (or use method: bayes)"
                    )
                if t.se is not None:
                    raise ValueError(f"targets.{i}: 'se:' goes with method: bayes")
        else:
            if not self.priors:
                raise ValueError("method: bayes needs priors on its free parameters")
            for i, t in enumerate(self.targets):
                if t.free is not None:
                    raise ValueError(
                        f"targets.{i}: method: bayes frees the keys of priors, not 'free:'"
                    )
        return self


class Alternative(_Frozen):
    """A structural alternative: the scenario with some key paths set otherwise (e.g. a
    clock's family), run beside the base case in ``simseq structural``."""

    label: str
    """Name shown in the scenario-analysis table."""
    changes: dict[str, Any] = Field(min_length=1)
    """Key path -> YAML value, merged into the scenario as ``extends:`` merges (mappings
    key by key; null deletes a key; a number indexes a list), e.g.
    ``regimens.lenvatinib.time_on_line: {family: llogis, shape: {value: 1.5, assumption:
    ...}}`` or ``sequences.atzbev_len.lines.0.next_line: {...}``."""
    assumption: str
    """Why this alternative is plausible (what the evidence or guidance allows)."""


class Simulation(_Frozen):
    """How many patients, which random streams, and the time grid."""

    n_patients: int = Field(ge=1, le=MAX_PATIENTS)
    """Patients per sequence."""
    seed: int = Field(ge=0, lt=MAX_SEED)
    """Random seed; the same seed gives the same numbers on any machine and thread count."""
    horizon: Annotated[Quantity, HORIZON]
    """Months from the start of first line (administrative censoring)."""
    bin_width: float = Field(default=0.02, ge=MIN_BIN_WIDTH, le=1.0)
    """Histogram resolution in months; horizon / bin_width is at most 100,000 bins."""
    landmarks: list[float] = Field(default=[12.0, 24.0, 36.0])
    """Months at which OS is reported, each in (0, horizon]."""
    outputs: RunOutputs = "full"
    """What ``simseq run`` tallies: ``full`` (every line's PFS, OS from its start,
    post-progression survival, how lines end, state occupancy: curves.csv and the report's
    figures) or ``sequence_os`` (OS from the start of each sequence alone, with economics
    and validation as usual; about half a run's engine time at large N)."""


class Effect(_Frozen):
    """A covariate's proportional-hazards effect on some regimens' clocks."""

    regimens: list[str] = Field(min_length=1)
    """Regimen ids whose clocks the effect acts on."""
    clocks: list[Literal["time_on_line", "after_progression", "cause_specific"]] = Field(
        min_length=1
    )
    """Which clocks of those regimens the hazard ratio multiplies."""
    hazard_ratio: Annotated[Quantity, HAZARD_RATIO]
    """Hazard ratio for patients with the characteristic."""


class CovariateSpec(_Frozen):
    """A binary patient characteristic, drawn once per patient at the start of the sequence."""

    prevalence: Probability
    """Share of patients with the characteristic."""
    effects: list[Effect] = Field(min_length=1)
    """Its effects on the regimens' clocks."""
    note: str | None = None
    """Free text for readers; not used by the model."""


class Population(_Frozen):
    """Patient heterogeneity: binary characteristics drawn per patient."""

    covariates: dict[str, CovariateSpec] = Field(min_length=1, max_length=63)
    """Characteristic name -> prevalence and effects (at most 63: the engine keeps them as
    bits of one integer)."""


class Drug(_Frozen):
    """A drug's cost: unit price x units per dose x doses per month (x the regimen's RDI)."""

    unit_price: Annotated[Quantity, COST]
    """Price of one unit (tablet, vial, 100 mg, ...)."""
    units_per_dose: Annotated[Quantity, NON_NEGATIVE]
    """Units in one dose."""
    doses_per_month: Annotated[Quantity, NON_NEGATIVE]
    """Doses per month (e.g. 30.4375 for daily, 1.449405 for every 3 weeks)."""
    note: str | None = None
    """Free text for readers; not used by the model."""


class RegimenEconomics(_Frozen):
    """Costs and utilities of one regimen: on the line, and after progression on it."""

    drugs: list[str] = Field(default_factory=list)
    """Drug ids (keys of ``economics.drugs``) given on the line."""
    relative_dose_intensity: Annotated[
        Quantity | None, Domain(0.0, 1.0, what="a share of the planned dose")
    ] = None
    """Share of the planned dose actually given (default 1)."""
    administration_cost_per_month: Annotated[Quantity | None, COST] = None
    """Cost of administering the drugs, per month on the line."""
    monitoring_cost_per_month: Annotated[Quantity | None, COST] = None
    """Cost of monitoring, per month on the line."""
    utility: Annotated[Quantity, UTILITY]
    """Utility while progression-free on this line (per year)."""
    grade3_ae_rate: Annotated[Quantity | None, PROBABILITY] = None
    """Probability of at least one grade 3-4 adverse event on the line."""
    ae_cost: Annotated[Quantity | None, COST] = None
    """One-off cost per patient with a grade 3-4 adverse event."""
    ae_disutility: Annotated[Quantity | None, Domain(0.0, 1.0, what="a utility decrement")] = None
    """Utility decrement while affected by a grade 3-4 adverse event."""
    ae_duration_months: Annotated[Quantity | None, NON_NEGATIVE] = None
    """How long the decrement lasts (months); with the rate gives a one-off QALY loss."""
    post_progression_cost_per_month: Annotated[Quantity | None, COST] = None
    """Cost per month after progression on this regimen (when it ends the sequence)."""
    post_progression_utility: Annotated[Quantity | None, UTILITY] = None
    """Utility after progression on this regimen (default: supportive care's)."""

    @model_validator(mode="after")
    def _ae_complete(self) -> "RegimenEconomics":
        ae = [self.ae_cost, self.ae_disutility, self.ae_duration_months]
        if self.grade3_ae_rate is None and any(q is not None for q in ae):
            raise ValueError("adverse-event costs or disutilities need grade3_ae_rate")
        if self.ae_disutility is not None and self.ae_duration_months is None:
            raise ValueError("ae_disutility needs ae_duration_months")
        return self


class StateEconomics(_Frozen):
    """Cost and utility of a health state."""

    cost_per_month: Annotated[Quantity, COST]
    """Cost per month in the state."""
    utility: Annotated[Quantity, UTILITY]
    """Utility in the state (per year)."""


class AgeAdjustment(_Frozen):
    """Utilities scaled as patients age by general-population utility at their age relative to
    the start: U(age) = intercept + age * years + age_squared * years^2 (the form of, e.g.,
    Ara & Brazier 2010); its coefficients are inputs like any other."""

    start_age: Annotated[Quantity, AGE]
    """Age (years) at the start of the sequence."""
    intercept: Quantity
    """Coefficient: general-population utility at age 0."""
    age: Quantity
    """Coefficient of age (years)."""
    age_squared: Quantity
    """Coefficient of age squared."""


class EconomicsSpec(_Frozen):
    """Costs, utilities and decision settings for cost-effectiveness analysis."""

    currency: str
    """Currency of every cost, e.g. USD."""
    price_year: int
    """Year the prices refer to."""
    discount_costs: Annotated[Quantity, DISCOUNT_RATE]
    """Annual discount rate for costs (continuous-time, exact)."""
    discount_qalys: Annotated[Quantity, DISCOUNT_RATE]
    """Annual discount rate for QALYs and life-years."""
    willingness_to_pay: Annotated[Quantity, Domain(0.0, what="currency per QALY")]
    """Currency per QALY, for net monetary benefit."""
    reference: str
    """Sequence id that incremental results are computed against first."""
    drugs: dict[str, Drug] = Field(default_factory=dict)
    """Drug id -> its cost per month."""
    regimens: dict[str, RegimenEconomics]
    """Regimen id -> its costs and utilities (every regimen a sequence uses)."""
    supportive_care: StateEconomics
    """Cost and utility under supportive care."""
    terminal_care_cost: Annotated[Quantity, COST]
    """One-off cost at death."""
    age_adjustment: AgeAdjustment | None = None
    """Optional: utilities decline with age as in the general population."""


class ModelAveraging(_Frozen):
    """Weights of the base case and the structural alternatives in a model-averaged PSA
    (``simseq psa --model-average``): draw shares, one structure per draw."""

    weights: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(min_length=2)
    """"base" and structural alternative names -> weight (summing to 1)."""
    assumption: str
    """Why these weights (e.g. equal, or the base case favoured as the analysis the
    evidence was chosen for)."""

    @field_validator("weights")
    @classmethod
    def _sum_to_one(cls, weights: dict[str, float]) -> dict[str, float]:
        if abs(sum(weights.values()) - 1.0) > 1e-6:
            raise ValueError(f"must sum to 1, not {sum(weights.values()):.6g}")
        return weights


class PSASettings(_Frozen):
    """Uncertainty for inputs whose evidence reports none (each an explicit assumption)."""

    cost_se_fraction: Annotated[Quantity | None, NON_NEGATIVE] = None
    """SE of costs as a fraction of their value (gamma distributed)."""
    utility_se_fraction: Annotated[Quantity | None, Domain(0.0, 1.0, high_open=True)] = None
    """SE of utilities without a reported range, as a fraction of their value (Beta)."""
    median_se_log: Annotated[Quantity | None, NON_NEGATIVE] = None
    """SE of log(median) for medians reported without CI, events or n (log-normal)."""
    n_draws: int = Field(default=1000, ge=2, le=MAX_DRAWS)
    """Parameter draws."""
    n_patients: int = Field(default=10_000, ge=100, le=MAX_PATIENTS)
    """Patients per draw and sequence."""
    evppi_groups: dict[str, list[str]] = Field(default_factory=dict)
    """Named parameter groups for EVPPI: each entry a parameter key, an evidence id, or a
    scenario key path (prefixes match), e.g. {second_line_survival: [second_line.]}.
    Groups by kind of parameter (survival, costs, utilities, ...) are always reported."""
    model_averaging: ModelAveraging | None = None
    """Weights for a model-averaged PSA over the structural alternatives."""
    population_per_year: Annotated[
        Quantity | None, Domain(0.0, low_open=True, what="patients a year")
    ] = None
    """Patients a year the decision applies to, for population EVPI (value + assumption)."""
    decision_years: Annotated[Quantity | None, Domain(0.0, 100.0, low_open=True, what="years")] = (
        None
    )
    """Years the decision applies for; each year's patients are discounted at the cost
    rate in population EVPI (value + assumption; needs ``population_per_year``)."""

    @field_validator(
        "cost_se_fraction",
        "utility_se_fraction",
        "median_se_log",
        "population_per_year",
        "decision_years",
    )
    @classmethod
    def _explicit(cls, q: Quantity | None) -> Quantity | None:
        if q is not None and q.value is None:
            raise ValueError("a PSA setting is an explicit value with an assumption saying why")
        return q

    @model_validator(mode="after")
    def _total(self) -> "PSASettings":
        if (self.population_per_year is None) != (self.decision_years is None):
            raise ValueError("population EVPI needs both population_per_year and decision_years")
        if self.n_draws * self.n_patients > MAX_PATIENTS:
            raise ValueError(
                f"n_draws x n_patients = {self.n_draws * self.n_patients:,} patients per "
                f"sequence; at most {MAX_PATIENTS:,} (already hours at ~25 million a second)"
            )
        return self


class ValidationGroup(_Frozen):
    """Simulated patients who started a line of therapy, optionally on one regimen."""

    line: int = Field(ge=1, le=MAX_VALIDATION_LINE)
    """Line number, 1 for first line."""
    regimen: str | None = None
    """Regimen id (a key of ``regimens``) they started it on; default: any."""


class ValidationPoint(_Frozen):
    """A published result and the estimator a study applied to get it, applied to the
    simulated patients of a run (like-for-like external validation).

    One row of validation.csv per sequence: the published value (and its 95% CI) beside
    the same statistic of simulated patients (and its Monte Carlo 95% CI). Statistics:

    - ``median``: Kaplan-Meier median of ``outcome`` from ``origin``, in months;
    - ``landmark_survival``: Kaplan-Meier survival at the record's ``month``;
    - ``proportion``: the share of patients who ended the line before ``subgroup.line``
      alive (progression or deterioration) and started it (on ``subgroup.regimen``,
      when given), against the record's ``counts[field] / n``;
    - ``hazard_ratio``: a naive Cox model (one binary covariate, Breslow's ties) of
      ``outcome`` from ``origin``, ``subgroup`` against ``reference``.

    A time statistic is taken among patients who started the line ``origin`` names and
    are in ``subgroup``; ``origin`` must be where the study measured from (the record's
    ``measured_from``). A result whose evidence id is a calibration target is reported
    but marked so, and left out of the mean absolute percentage error."""

    evidence: str
    """Evidence id of the published result."""
    field: str | None = None
    """Which figure of a record holding several: a key of its ``values`` (a ``medians``
    record, e.g. ``os``) or of its ``counts`` (the numerator of a proportion)."""
    statistic: Literal["median", "landmark_survival", "proportion", "hazard_ratio"]
    """The estimator (see above); it must be what the record reports."""
    outcome: Literal["os", "pfs"] | None = None
    """``os``: time to death; ``pfs``: time on the line ``origin`` starts, to its end
    (progression, deterioration or death). Not for a proportion."""
    origin: str | None = Field(default=None, pattern=r"^(sequence_start|line_[2-9])$")
    """Time zero: ``sequence_start`` (start of first line) or ``line_<k>`` (start of
    line k). Not for a proportion."""
    subgroup: ValidationGroup | None = None
    """The patients the study took (default: every patient with the origin); for a
    hazard ratio, the group in the numerator."""
    reference: ValidationGroup | None = None
    """For a hazard ratio: the group in the denominator."""
    sequences: list[str] | None = Field(default=None, min_length=1)
    """Sequence ids it is read in, a row each (default: every sequence where the
    origin and the groups can occur)."""
    label: str | None = None
    """Short name in tables and validation.png (default: the evidence id)."""
    note: str | None = None
    """How like-for-like the comparison is (trial vs real world, other cohorts, ...)."""

    @model_validator(mode="after")
    def _estimator(self) -> "ValidationPoint":
        timed = self.statistic != "proportion"
        if timed and (self.outcome is None or self.origin is None):
            raise ValueError(f"statistic: {self.statistic} needs outcome: and origin:")
        if not timed:
            if self.outcome is not None or self.origin is not None:
                raise ValueError(
                    "a proportion has no outcome: or origin: (it counts who started a line)"
                )
            if self.subgroup is None or self.subgroup.line < 2:
                raise ValueError(
                    "a proportion needs subgroup: {line: k} with k >= 2 (the line started)"
                )
        if (self.statistic == "hazard_ratio") != (self.reference is not None):
            raise ValueError(
                "reference: goes with statistic: hazard_ratio, which needs it"
                if self.reference is not None
                else "statistic: hazard_ratio needs subgroup: and reference: (the two groups)"
            )
        if self.statistic == "hazard_ratio" and self.subgroup is None:
            raise ValueError("statistic: hazard_ratio needs subgroup: and reference:")
        return self

    @property
    def origin_line(self) -> int:
        """The line whose start is time zero (1 for the sequence start)."""
        if self.origin is None or self.origin == "sequence_start":
            return 1
        return int(self.origin.removeprefix("line_"))


class Comparison(_Frozen):
    """Two sequences compared in the common population and as observed, to show what
    confounding between the regimens' cohorts does to their difference."""

    label: str
    """Name shown in tables."""
    sequences: list[str] = Field(min_length=2, max_length=2)
    """The two sequence ids; the difference is the first minus the second. Each sequence's
    second line must be one regimen (its cohort population gives "as observed")."""
    note: str | None = None
    """Free text for readers; not used by the model."""


class Scenario(_Frozen):
    """A scenario file: the regimens, the sequences to compare and how to simulate them.

    ``extends: other.yaml`` (a path relative to this file) takes every key of another
    scenario file and overrides those given here: mappings merge key by key, a null
    deletes a key, anything else replaces."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    """Identifier: lowercase letters, digits, _ and -; names the results directory."""
    title: str
    """Title shown in tables and plots."""
    description: str | None = None
    """A paragraph on what the scenario models."""
    simulation: Simulation
    """Patients, seed, horizon and time grid."""
    regimens: dict[str, Regimen] = Field(min_length=1)
    """Regimen id -> what happens on a line of therapy with it."""
    supportive_care: DistSpec
    """Survival (months) from failure of a line with no further therapy."""
    sequences: dict[str, SequenceSpec] = Field(min_length=1)
    """Sequence id -> the lines of therapy to compare."""
    population: Population | None = None
    """Optional patient heterogeneity; calibrated medians are re-solved for the mixed population."""
    calibration: Calibration | None = None
    """Medians solved so simulated summaries reproduce published ones."""
    economics: EconomicsSpec | None = None
    """Optional cost-effectiveness inputs; without them only survival is reported."""
    psa: PSASettings | None = None
    """Probabilistic sensitivity analysis settings (``simseq psa``)."""
    evidence: EvidenceSpec | None = None
    """Evidence of your own (files and records) beside simseq's packaged figures."""
    structural_alternatives: dict[str, Alternative] = Field(default_factory=dict)
    """Structural uncertainty: named alternatives (another family for a clock, another
    cohort, ...) that ``simseq structural`` runs beside the base case, side by side."""
    validation: list[ValidationPoint] = Field(default_factory=list)
    """Published results, each with the study's estimator to apply to the simulated
    patients (external validation; nothing in the model changes)."""
    comparisons: dict[str, Comparison] = Field(default_factory=dict)
    """Named pairs of sequences whose median OS from first-line start is compared in the
    common population (the run) and as observed (each sequence simulated in the cohort
    population of its second-line regimen): the difference between the two is what the
    cohorts' different patient mix did."""


def _suggest(word: Any, choices: list[str]) -> str:
    """ " (did you mean 'x'?)" for the closest of ``choices`` to ``word``, or ""."""
    if not isinstance(word, str) or not choices:
        return ""
    lowered = {c.lower().replace("-", "_"): c for c in choices}
    exact = lowered.get(word.lower().replace("-", "_").strip())
    close = [exact] if exact else difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(kind: str, value: Any, known: list[str]) -> str:
    return f"unknown {kind}{_suggest(value, known)}; defined: {', '.join(known) or 'none'}"


def cross_references(sc: Scenario) -> list[tuple[str, Any, str]]:
    """Problems between sections: unknown regimens, missing after_progression, calibration links."""
    problems = []
    averaging = sc.psa.model_averaging if sc.psa is not None else None
    if averaging is not None:
        structures = ["base", *sc.structural_alternatives]
        for name in averaging.weights:
            if name not in structures:
                problems.append(
                    (
                        "psa.model_averaging.weights",
                        name,
                        _unknown("structure (base or a structural alternative)", name, structures),
                    )
                )
    known = sorted(sc.regimens)
    for sid, seq in sc.sequences.items():
        for i, line in enumerate(seq.lines):
            where = f"sequences.{sid}.lines.{i}"
            for rid in line.regimen_ids():
                if rid not in sc.regimens:
                    problems.append((where, rid, _unknown("regimen", rid, known)))
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
    for rid, reg in sc.regimens.items():
        third = reg.third_line
        if third is None:
            continue
        where = f"regimens.{rid}.third_line.regimen"
        if third.regimen not in sc.regimens:
            problems.append((where, third.regimen, _unknown("regimen", third.regimen, known)))
        elif sc.regimens[third.regimen].third_line is not None:
            problems.append((where, third.regimen, "a third line cannot have a third line"))
        elif sc.regimens[third.regimen].after_progression is None:
            problems.append((where, third.regimen, "it needs after_progression"))
    covariates = sorted(sc.population.covariates) if sc.population else []
    for rid, reg in sc.regimens.items():
        for name in reg.cohort_population or {}:
            if name not in covariates:
                problems.append(
                    (
                        f"regimens.{rid}.cohort_population",
                        name,
                        _unknown("population covariate", name, covariates),
                    )
                )
    for cid, comp in sc.comparisons.items():
        for j, sid in enumerate(comp.sequences):
            where = f"comparisons.{cid}.sequences.{j}"
            if sid not in sc.sequences:
                problems.append((where, sid, _unknown("sequence", sid, list(sc.sequences))))
            elif len(sc.sequences[sid].lines) < 2 or sc.sequences[sid].lines[1].regimen is None:
                problems.append(
                    (
                        where,
                        sid,
                        "its second line must be one regimen (not a mix, not supportive "
                        "care): that regimen's cohort population is the sequence's as observed",
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
                            _unknown("regimen", rid, known),
                        )
                    )
    if sc.economics is not None:
        econ = sc.economics
        if econ.reference not in sc.sequences:
            problems.append(
                (
                    "economics.reference",
                    econ.reference,
                    _unknown("sequence", econ.reference, list(sc.sequences)),
                )
            )
        used = {
            rid for seq in sc.sequences.values() for line in seq.lines for rid in line.regimen_ids()
        }
        used |= {
            r.third_line.regimen
            for rid, r in sc.regimens.items()
            if rid in used and r.third_line is not None
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
                problems.append((f"economics.regimens.{rid}", rid, _unknown("regimen", rid, known)))
            for j, drug in enumerate(reg.drugs):
                if drug not in econ.drugs:
                    problems.append(
                        (
                            f"economics.regimens.{rid}.drugs.{j}",
                            drug,
                            _unknown("drug", drug, list(econ.drugs)),
                        )
                    )
    if sc.calibration is not None and sc.calibration.method == "bayes":
        return problems + _bayes_references(sc, known)
    calibrated: dict[tuple[str, str], int] = {}
    for i, tgt in enumerate(sc.calibration.targets if sc.calibration else []):
        if tgt.regimen not in sc.regimens:
            problems.append(
                (
                    f"calibration.targets.{i}.regimen",
                    tgt.regimen,
                    _unknown("regimen", tgt.regimen, known),
                )
            )
            continue
        key = free_key(tgt.free)
        reg = sc.regimens[tgt.regimen]
        quantity = freed_quantity(reg, tgt.free)
        if tgt.sequence is not None:
            problems += _landmark_references(sc, i, tgt)
        if quantity is None or quantity.calibrate is None:
            problems.append(
                (
                    f"calibration.targets.{i}.free",
                    tgt.free,
                    f"regimens.{tgt.regimen}.{tgt.free} must be declared as {{calibrate: ...}}",
                )
            )
        elif tgt.sequence is None and reg.after_progression is None:
            problems.append(
                (
                    f"calibration.targets.{i}.regimen",
                    tgt.regimen,
                    "the calibration cohort is followed after progression on this regimen: "
                    "it needs after_progression",
                )
            )
        if (tgt.regimen, key) in calibrated:
            problems.append(
                (
                    f"calibration.targets.{i}.free",
                    tgt.free,
                    f"already freed by calibration.targets.{calibrated[tgt.regimen, key]}: one "
                    "parameter cannot be solved for two targets",
                )
            )
        calibrated.setdefault((tgt.regimen, key), i)
    for path in calibrate_marked(sc):
        rid, rest = path.split(".", 2)[1:]
        if (rid, free_key(rest)) not in calibrated:
            problems.append(
                (path, "calibrate", "marked calibrate but no calibration target frees it")
            )
    return problems


def _landmark_references(sc: Scenario, i: int, tgt: Target) -> list[tuple[str, Any, str]]:
    """A point-calibrated landmark target's sequence exists and gives its regimen a line."""
    where = f"calibration.targets.{i}"
    if tgt.sequence not in sc.sequences:
        known = list(sc.sequences)
        return [(f"{where}.sequence", tgt.sequence, _unknown("sequence", tgt.sequence, known))]
    lines = sc.sequences[tgt.sequence].lines
    if not any(tgt.regimen in line.regimen_ids() for line in lines):
        return [
            (
                f"{where}.regimen",
                tgt.regimen,
                f"not a regimen of sequence {tgt.sequence!r}: its free parameter would not move "
                "the landmark",
            )
        ]
    return []


def free_key(free: str) -> str:
    """What a target's ``free`` is solved under after "<regimen>.": "after_progression" and
    "time_on_line" for their medians (as calibrated values have always been keyed),
    "line_end.death_share" for a death share."""
    return free.removesuffix(".median")


def freed_quantity(reg: Regimen, free: str) -> Quantity | None:
    """The Quantity of ``reg`` that ``free`` ("time_on_line.median", ...) names, or None."""
    part, name = free.split(".")
    spec = getattr(reg, part)
    return None if spec is None else getattr(spec, name)


def calibrate_marked(sc: Scenario) -> list[str]:
    """Key paths of the parameters declared ``{calibrate: ...}``: medians and death shares."""
    out = []
    for rid, reg in sc.regimens.items():
        for free in ("time_on_line.median", "after_progression.median", "line_end.death_share"):
            q = freed_quantity(reg, free)
            if q is not None and q.calibrate is not None:
                out.append(f"regimens.{rid}.{free}")
    return out


def _bayes_references(sc: Scenario, known: list[str]) -> list[tuple[str, Any, str]]:
    """A Bayesian calibration's links: its targets' regimens and sequences exist, and every
    median declared calibrate has a prior (whether the other priors' key paths are
    numbers of the scenario is checked when it is resolved)."""
    problems = []
    for i, tgt in enumerate(sc.calibration.targets):
        where = f"calibration.targets.{i}"
        if tgt.regimen is not None and tgt.regimen not in sc.regimens:
            problems.append(
                (f"{where}.regimen", tgt.regimen, _unknown("regimen", tgt.regimen, known))
            )
        elif tgt.regimen is not None and sc.regimens[tgt.regimen].after_progression is None:
            problems.append(
                (
                    f"{where}.regimen",
                    tgt.regimen,
                    "the calibration cohort is followed after progression on this regimen: "
                    "it needs after_progression",
                )
            )
        if tgt.sequence is not None and tgt.sequence not in sc.sequences:
            problems.append(
                (
                    f"{where}.sequence",
                    tgt.sequence,
                    _unknown("sequence", tgt.sequence, list(sc.sequences)),
                )
            )
    for path in calibrate_marked(sc):
        if path not in sc.calibration.priors:
            problems.append(
                (path, "calibrate", "marked calibrate but calibration.priors has no prior for it")
            )
    return problems


# --------------------------------------------------------------------------- #
# Numbers: where each must lie
# --------------------------------------------------------------------------- #


def field_domain(model: type[BaseModel], name: str) -> Domain | None:
    """The ``Domain`` a model field is annotated with, if any."""
    for meta in model.model_fields[name].metadata:
        if isinstance(meta, Domain):
            return meta
    return None


_FAMILY_PARAM_DOMAIN = {
    (family, name): Domain(0.0, low_open=True, what=f"{family} {name}")
    for family, fam in FAMILIES.items()
    for name, kind in zip(fam.param_names, fam._domains, strict=True)
    if kind == "positive"
}


def number_fields(obj: Any, path: str = "") -> Iterator[tuple[str, Domain, Any]]:
    """(key path, domain, Quantity or Probability) for every number of ``obj`` (a scenario or
    any part of one) that has a domain: annotated fields, every probability, and the
    positive parameters of each distribution's family."""
    if isinstance(obj, BaseModel):
        cls = type(obj)
        for name in cls.model_fields:
            value = getattr(obj, name)
            if value is None:
                continue
            where = f"{path}.{name}" if path else name
            if isinstance(value, Quantity | Probability):
                domain = field_domain(cls, name)
                if domain is None and isinstance(value, Probability):
                    domain = PROBABILITY
                if domain is None and isinstance(obj, DistSpec):
                    domain = _FAMILY_PARAM_DOMAIN.get((obj.family, name))
                if domain is not None:
                    yield where, domain, value
            else:
                yield from number_fields(value, where)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from number_fields(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from number_fields(value, f"{path}.{i}")


def _size(n_bytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n_bytes < 1000 or unit == "PB":
            return f"{n_bytes:.3g} {unit}" if unit != "bytes" else f"{n_bytes:.0f} bytes"
        n_bytes /= 1000
    return ""  # unreachable


def simulation_problems(sim: Simulation, horizon: float) -> list[tuple[str, Any, str]]:
    """Bin width and landmarks against a valid horizon (months)."""
    problems = []
    if sim.bin_width > horizon:
        problems.append(
            ("simulation.bin_width", sim.bin_width, f"must be at most the horizon ({horizon:g})")
        )
    n_bins = math.ceil(horizon / sim.bin_width - 1e-9)
    if n_bins > MAX_BINS:
        problems.append(
            (
                "simulation.bin_width",
                sim.bin_width,
                f"horizon {horizon:g} / bin_width {sim.bin_width:g} = {n_bins:,} histogram bins; "
                f"the engine keeps n_threads x 6 tallies x n_states x 2 x n_bins int64 "
                f"counters, {_size(n_bins * TALLY_BYTES_PER_BIN)} per model state and thread "
                f"at this binning. At most {MAX_BINS:,} bins: a bin_width of at least "
                f"{horizon / MAX_BINS:.3g} months, or a shorter horizon",
            )
        )
    for i, t in enumerate(sim.landmarks):
        if not 0 < t <= horizon:
            problems.append(
                (
                    f"simulation.landmarks.{i}",
                    t,
                    f"must be in (0, {horizon:g}] months: survival is only simulated up to "
                    "the horizon",
                )
            )
    return problems


def value_problems(sc: Scenario) -> list[tuple[str, Any, str]]:
    """Explicit numbers outside their domain, and the time grid against an explicit horizon
    (numbers from evidence are checked where they are resolved)."""
    problems = []
    for path, domain, q in number_fields(sc):
        if q.value is not None and q.value not in domain:
            problems.append((f"{path}.value", q.value, domain.message()))
    horizon = sc.simulation.horizon.value
    if horizon is not None and horizon in HORIZON:
        problems += simulation_problems(sc.simulation, horizon)
    return problems


# --------------------------------------------------------------------------- #
# Reading: YAML -> data -> Scenario, with every problem located
# --------------------------------------------------------------------------- #

SCENARIO_KEYS = ("extends", *Scenario.model_fields)
"""Top-level keys a scenario file may have."""

_SUFFIXES = (".yaml", ".yml")


def _yaml_error(path: str, err: yaml.YAMLError) -> ScenarioError:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
    if isinstance(err, yaml.reader.ReaderError):
        problem = f"{err.reason} (character #x{err.character:04x} at position {err.position})"
        if isinstance(err.character, bytes):
            problem = f"{err.reason} at position {err.position}"
    else:
        problem = getattr(err, "problem", None) or str(err)
    return ScenarioError(path, [(where, None, f"invalid YAML: {problem}")])


def strip_optional(annotation: Any) -> Any:
    """``X`` from ``X | None`` (the annotation itself otherwise)."""
    if get_origin(annotation) in (Union, type(int | None)):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _type_at(loc: tuple) -> Any:
    """The annotation at key path ``loc`` of a Scenario (None if the path leaves the model)."""
    current: Any = Scenario
    for part in loc:
        current = strip_optional(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif origin is dict:
            current = get_args(current)[1]
        elif origin in (list, tuple):
            current = get_args(current)[0]
        else:
            return None
    return strip_optional(current)


def _allowed_keys(loc: tuple) -> list[str] | None:
    """Keys allowed in the mapping at key path ``loc`` (for 'unknown key' errors)."""
    current = _type_at(loc)
    if isinstance(current, type) and issubclass(current, BaseModel):
        keys = list(current.model_fields)
        return ["extends", *keys] if current is Scenario else keys
    if get_origin(current) is dict:
        key_type = get_args(current)[0]
        if get_origin(key_type) is Literal:
            return [str(a) for a in get_args(key_type)]
    return None


def _dig(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _unknown_key(key: Any, allowed: list[str] | None) -> str:
    if not allowed:
        return f"unknown key; see {DOCS}"
    return (
        f"unknown key {brief(key, 60)}{_suggest(key, allowed)}; allowed: {', '.join(allowed)} "
        f"(see {DOCS})"
    )


_PATIENTS_REASON = (
    "the engine simulates ~25 million patients a second on 2 cores: 1e10 is already hours"
)
_BOUND_REASONS = {
    ("Simulation", "n_patients"): _PATIENTS_REASON,
    ("Calibration", "n_patients"): _PATIENTS_REASON,
    ("PSASettings", "n_patients"): _PATIENTS_REASON,
    ("PSASettings", "n_draws"): "HTA guidance asks for 1,000-10,000 draws",
    ("Simulation", "seed"): "seeds are in [0, 2^63)",
    ("Simulation", "bin_width"): f"months; {MIN_BIN_WIDTH:g} is about 45 minutes, the default 0.02",
    ("Population", "covariates"): "the engine keeps a patient's covariates as bits of one integer",
}
_BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_long")


def _key_text(part: Any) -> str:
    """One part of a key path, as written unless it is long or not printable (then quoted,
    escaped and cut), so that a path is always one short line."""
    text = str(part)
    if len(text) <= 60 and text.isprintable() and " " not in text:
        return text
    return brief(text, 60)


def _path(loc: tuple) -> str:
    return ".".join(_key_text(p) for p in loc) or "(top level)"


def _actual_key(data: Any, loc: tuple) -> Any:
    """The key as YAML read it (pydantic's location may hold it as a string)."""
    parent = _dig(data, loc[:-1])
    if isinstance(parent, dict):
        for key in parent:
            if key == loc[-1] or str(key) == str(loc[-1]):
                return key
    return loc[-1]


def _not_text_key(key: Any) -> str:
    return (
        f"key {brief(key, 60)} is not text (YAML reads unquoted null, ~, true, no, on and "
        "numbers as such): quote it, or use a name"
    )


def _problem(e: dict, data: Any) -> tuple[str, Any, str]:
    """A pydantic error as (key path, value, message)."""
    loc = tuple(e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    if loc and loc[-1] == "[key]":  # a mapping key failed (e.g. a cause not in the list)
        loc = loc[:-1]
        if e["type"] == "literal_error":
            return _path(loc), None, _unknown_key(loc[-1], _allowed_keys(loc[:-1]))
        return _path(loc[:-1]), None, _not_text_key(_actual_key(data, loc))
    if e["type"] == "invalid_key":  # a key of a model that is not a string
        return _path(loc[:-1]), None, _not_text_key(_actual_key(data, loc))
    path = _path(loc)
    if e["type"] == "extra_forbidden":
        return path, None, _unknown_key(loc[-1], _allowed_keys(loc[:-1]))
    if e["type"] == "missing":
        return path, None, "required key is missing"
    value = _dig(data, loc)
    if e["type"] == "literal_error":
        expected = re.findall(r"'([^']*)'", str((e.get("ctx") or {}).get("expected", "")))
        msg += _suggest(value, expected)
    elif e["type"] == "finite_number":
        msg = "must be a finite number (not .nan, .inf or -.inf)"
    elif e["type"] in _BOUND_ERRORS:
        model = _type_at(loc[:-1])
        reason = _BOUND_REASONS.get((getattr(model, "__name__", ""), loc[-1]))
        msg += f" ({reason})" if reason else ""
    if e["type"] == "too_long":
        value = f"{len(value)} entries" if hasattr(value, "__len__") else None
    return path, value, msg


def parse_scenario(data: Any, file: str = "<scenario>") -> Scenario:
    """Validate a loaded YAML mapping; raise ScenarioError naming each bad key path."""
    if not isinstance(data, dict):
        raise ScenarioError(file, [("(top level)", type(data).__name__, "expected a mapping")])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(file, [_problem(e, data) for e in err.errors()]) from None
    problems = cross_references(scenario) + value_problems(scenario)
    if problems:
        raise ScenarioError(file, problems)
    return scenario


def alternative_scenario(scenario: Scenario, name: str, file: str = "<scenario>") -> Scenario:
    """The scenario with structural alternative ``name``'s changes merged in (itself
    without alternatives); a change that makes it invalid raises ScenarioError naming the
    alternative."""
    alt = scenario.structural_alternatives[name]
    data = scenario.model_dump(mode="json", exclude_none=True)
    data.pop("structural_alternatives", None)
    data.get("psa", {}).pop("model_averaging", None)  # weights over the alternatives
    try:
        for path, value in alt.changes.items():
            data = _merged_at(data, path.split("."), value)
    except (KeyError, IndexError, TypeError) as err:
        where = f"structural_alternatives.{name}.changes"
        raise ScenarioError(file, [(where, path, f"no such key path ({err})")]) from None
    data["name"] = f"{scenario.name}-{name}"
    try:
        return parse_scenario(data, file)
    except ScenarioError as err:
        raise ScenarioError(
            file,
            [
                (f"structural_alternatives.{name}.changes: {p}", v, why)
                for p, v, why in err.problems
            ],
        ) from None


def _merged_at(data: Any, keys: list[str], value: Any) -> Any:
    """``data`` with ``value`` merged in at the key path ``keys`` (as ``_deep_merge``
    merges); a number indexes a list (sequences.x.lines.0.next_line)."""
    if not keys:
        both = isinstance(data, dict) and isinstance(value, dict)
        return _deep_merge(data, value) if both else value
    key, rest = keys[0], keys[1:]
    if isinstance(data, list):
        out = list(data)
        out[int(key)] = _merged_at(out[int(key)], rest, value)
        return out
    out = dict(data or {})
    if value is None and not rest:
        out.pop(key, None)
        return out
    out[key] = _merged_at(out.get(key), rest, value)
    return out


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


def _load_file(path: str, *, quote: bool = True) -> Any:
    """One YAML file's data; FileProblem if it cannot be read, ScenarioError if not YAML.
    Without ``quote`` a YAML error quotes nothing of the file (a key, a tag, a value): the
    file extended may not be a scenario at all."""
    text = read_text_file(path, max_bytes=MAX_SCENARIO_BYTES, suffixes=_SUFFIXES)
    try:
        return load_yaml(text)
    except yaml.YAMLError as err:
        error = _yaml_error(path, err)
        if quote:
            raise error from None
        (where, _, message), *_ = error.problems
        message = re.sub(r"'[^']*'|\"[^\"]*\"", "'...'", message)
        raise ScenarioError(path, [(where, None, message)]) from None


def _not_a_scenario(data: Any) -> str | None:
    """Why ``data`` does not look like a scenario file, without quoting its content (None if
    it does): it must be a mapping whose top-level keys are scenario keys."""
    allowed = f"a scenario's top-level keys are {', '.join(SCENARIO_KEYS)} (see {DOCS})"
    if not isinstance(data, dict):
        return f"not a scenario file: its top level is not a mapping; {allowed}"
    unknown = [k for k in data if k not in SCENARIO_KEYS]
    if not unknown:
        return None
    hints = [f"{k!r}{_suggest(k, list(SCENARIO_KEYS))}" for k in unknown]
    hints = [h for h in hints if "did you mean" in h]  # quote only keys that look like typos
    n = len(unknown)
    what = (
        "1 top-level key that is not a scenario key"
        if n == 1
        else (f"{n} top-level keys that are not scenario keys")
    )
    return f"not a scenario file: {what}{' (' + '; '.join(hints) + ')' if hints else ''}; {allowed}"


def _read_yaml(path: str) -> Any:
    """Load a scenario file, following ``extends: other.yaml`` (relative to the file that
    says it) through at most ``MAX_EXTENDS_DEPTH`` files."""
    return _read_chain(path)[0]


def _read_chain(path: str) -> tuple[Any, list[str]]:
    """(the merged data of a scenario file and its ``extends:`` chain, the chain's files)."""
    try:
        data = _load_file(path)
    except FileProblem as err:
        raise ScenarioError(path, [("(file)", None, str(err))]) from None
    if isinstance(data, dict) and not any(k in SCENARIO_KEYS for k in data):
        raise ScenarioError(path, [("(top level)", None, _not_a_scenario(data))])
    layers = [data]
    chain = [_resolved(path)]
    current = path
    while isinstance(data, dict) and "extends" in data:
        parent = data.pop("extends")
        if not isinstance(parent, str) or not parent.strip():
            raise ScenarioError(
                current, [("extends", parent, "must be the path of another scenario file")]
            )
        parent_path = _resolved(Path(current).parent / parent)
        if parent_path in chain:
            loop = " -> ".join([*chain[chain.index(parent_path) :], parent_path])
            raise ScenarioError(current, [("extends", parent, f"circular extends chain: {loop}")])
        if len(chain) >= MAX_EXTENDS_DEPTH:
            raise ScenarioError(
                current,
                [
                    (
                        "extends",
                        parent,
                        f"more than {MAX_EXTENDS_DEPTH} files in the extends chain, starting "
                        f"at {path}",
                    )
                ],
            )
        try:
            data = _load_file(parent_path, quote=False)
        except FileProblem as err:
            raise ScenarioError(current, [("extends", parent, f"{parent_path}: {err}")]) from None
        why = _not_a_scenario(data)
        if why is not None:
            raise ScenarioError(current, [("extends", parent, f"{parent_path}: {why}")])
        layers.append(data)
        chain.append(parent_path)
        current = parent_path
    for layer, file in zip(layers, chain, strict=True):
        _anchor_evidence_files(layer, file)
    merged = layers[-1]
    for layer in reversed(layers[:-1]):
        merged = _deep_merge(merged, layer)
    return merged, chain


def _anchor_evidence_files(layer: Any, file: str) -> None:
    """Make ``evidence.files`` of one file of the chain relative to that file, as
    ``extends:`` is, before the layers merge and forget where each came from."""
    evidence = layer.get("evidence") if isinstance(layer, dict) else None
    files = evidence.get("files") if isinstance(evidence, dict) else None
    if isinstance(files, list):
        evidence["files"] = [
            str(Path(file).parent / f) if isinstance(f, str) and f.strip() else f for f in files
        ]


def _resolved(path: str | Path) -> str:
    """An absolute path with symbolic links resolved (as given if that fails: the read will
    then report why)."""
    try:
        return str(Path(path).resolve())
    except (OSError, RuntimeError, ValueError):
        return str(path)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file (with ``extends:`` resolved)."""
    return load_scenario_files(path)[0]


def load_scenario_files(path: str | Path) -> tuple[Scenario, tuple[str, ...]]:
    """The validated scenario, and every other file it read (absolute paths): its
    ``extends:`` chain and its evidence files, for the manifest."""
    path = str(path)
    data, chain = _read_chain(path)
    scenario = parse_scenario(data, path)
    evidence = tuple(scenario.evidence.files) if scenario.evidence else ()
    return scenario, (*chain[1:], *evidence)
