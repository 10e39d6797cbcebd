"""Load the published figures that ship in ``simseq/data/hcc_evidence.yaml``.

Every number a scenario takes from the literature cites one record id here. Ids
are dotted and lowercase, ``<section>.<arm>.<quantity>.<source>[.<cohort>]``,
for example ``second_line.lenvatinib.os.chon2024.unadjusted``.

The file is validated on load: a broken file raises a ``ValueError`` that names
the file, the record (index and id) or key path, the bad value and what is
allowed, listing every problem found rather than only the first.

Examples
--------
>>> from simseq.evidence import load_evidence
>>> evidence = load_evidence()
>>> rec = evidence.get("second_line.lenvatinib.os.chon2024.unadjusted")
>>> rec.value, rec.ci95, rec.n
(10.3, (6.8, None), 40)
>>> [r.id for r in evidence.find("second_line.tki_ici.pfs")]
['second_line.tki_ici.pfs.yin2025']
"""

import difflib
import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simseq.limits import MAX_EVIDENCE_BYTES
from simseq.yamlio import FileProblem, load_yaml, read_text_file

__all__ = [
    "EvidenceBase",
    "MeasuredFrom",
    "Quantity",
    "Record",
    "Source",
    "Unit",
    "UnknownEvidenceId",
    "load_evidence",
]

Quantity = Literal[
    "median",
    "medians",
    "landmark_survival",
    "follow_up",
    "counts",
    "proportions",
    "response",
    "safety",
    "hazard_ratio",
    "population",
    "regimen",
    "utility",
    "disutility",
    "price",
    "cost",
]
"""What a record reports. The table ``QUANTITY_RULES`` says, per quantity, which
unit it takes, whether ``value`` / ``values`` / ``counts`` are required and the
domain their numbers must lie in."""

Unit = Literal[
    "months",
    "probability",
    "hazard_ratio",
    "utility_per_year",
    "utility_decrement",
    "usd_2019",
]

MeasuredFrom = Literal["1l_start", "2l_start", "1l_failure", "1l_response_onset"]
"""Time origin of a figure: start of first or second line, failure of first line, or the
onset of disease control or response on first line (durations of control and response)."""


@dataclass(frozen=True)
class _Rule:
    """Per-quantity contract checked by ``Record``."""

    unit: str | None
    value: Literal["required", "optional", "forbidden"]
    value_domain: Literal["positive", "probability", "at_most_one", "none"] = "none"
    values: Literal["required", "optional"] = "optional"
    values_domain: Literal["positive", "probability", "population", "text"] = "positive"
    needs_counts: bool = False
    needs_measured_from: bool = False
    needs_month: bool = False


QUANTITY_RULES: Mapping[str, _Rule] = MappingProxyType(
    {
        # A median time to event; ``value`` in months.
        "median": _Rule(
            unit="months", value="required", value_domain="positive", needs_measured_from=True
        ),
        # Several named medians (e.g. pfs, os) in ``values``, in months.
        "medians": _Rule(
            unit="months", value="forbidden", values="required", needs_measured_from=True
        ),
        # Survival proportion ``value`` at ``month``.
        "landmark_survival": _Rule(
            unit="probability",
            value="required",
            value_domain="probability",
            needs_measured_from=True,
            needs_month=True,
        ),
        # Event counts (``counts``, each <= n) and median follow-up times (``values``, months).
        "follow_up": _Rule(unit="months", value="forbidden", needs_measured_from=True),
        # A partition of ``n`` patients: ``counts`` sum to ``n``.
        "counts": _Rule(unit=None, value="forbidden", needs_counts=True),
        # Named proportions in ``values``, optionally with the ``counts`` behind them.
        "proportions": _Rule(
            unit="probability", value="forbidden", values="required", values_domain="probability"
        ),
        # Response rates (orr, dcr, ...) in ``values``.
        "response": _Rule(
            unit="probability", value="forbidden", values="required", values_domain="probability"
        ),
        # Adverse-event proportions in ``values``.
        "safety": _Rule(
            unit="probability", value="forbidden", values="required", values_domain="probability"
        ),
        # ``value`` null means "reported as significant, number not given"; a note must say so.
        "hazard_ratio": _Rule(unit="hazard_ratio", value="optional", value_domain="positive"),
        # Proportions in ``values``, except ``median_*`` entries, which are positive medians.
        "population": _Rule(
            unit=None, value="forbidden", values="required", values_domain="population"
        ),
        # Dose or regimen description: text only.
        "regimen": _Rule(unit=None, value="forbidden", values="required", values_domain="text"),
        "utility": _Rule(unit="utility_per_year", value="required", value_domain="at_most_one"),
        "disutility": _Rule(unit="utility_decrement", value="required", value_domain="probability"),
        "price": _Rule(unit="usd_2019", value="required", value_domain="positive"),
        "cost": _Rule(unit="usd_2019", value="required", value_domain="positive"),
    }
)

_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9][a-z0-9_]*)+$")
_SOURCE_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

_DOMAIN_TEXT = {
    "positive": "a number > 0",
    "probability": "a number in [0, 1]",
    "at_most_one": "a number <= 1",
}

NonNegativeInt = Annotated[int, Field(ge=0)]


def _in_domain(x: float, domain: str) -> bool:
    if domain == "positive":
        return x > 0
    if domain == "probability":
        return 0 <= x <= 1
    if domain == "at_most_one":
        return x <= 1
    return True


class Source(BaseModel, frozen=True, extra="forbid"):
    """One publication. Records cite it by ``id``."""

    id: str
    """Short id, lowercase letters, digits and underscores, e.g. ``chon2024``."""
    cite: str = Field(min_length=1)
    """Full citation (authors, title, journal, year, doi)."""
    setting: str = Field(min_length=1)
    """Country, design, period and what part of the paper is transcribed."""

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not _SOURCE_ID_PATTERN.match(v):
            raise ValueError(
                f"source id {v!r} is not allowed: use lowercase letters, digits and "
                "underscores, e.g. 'chon2024'"
            )
        return v


class Record(BaseModel, frozen=True, extra="forbid"):
    """One published figure (or a small group of figures reported together).

    Treat ``counts`` and ``values`` as read-only: the default ``EvidenceBase`` is
    cached and shared.
    """

    model_config = ConfigDict(allow_inf_nan=False)

    id: str
    """Stable dotted id, ``<section>.<arm>.<quantity>.<source>[.<cohort>]``."""
    source: str
    """Source id; must exist in the file's ``sources`` and appear as an id segment."""
    citation: str
    """Full citation of ``source``, attached by the loader (not written in the YAML)."""
    quantity: Quantity
    """What is reported; see ``QUANTITY_RULES``."""
    value: float | None = None
    """The headline number: median (months), survival proportion, HR, utility, price ..."""
    unit: Unit | None = None
    """Unit of ``value``, or of the numbers in ``values`` when there is no headline value."""
    ci95: tuple[float | None, float | None] | None = None
    """95% confidence interval (low, high); a bound is None where the paper gives NA."""
    range: tuple[float, float] | None = None
    """Range used for sensitivity analysis (low, high), as reported."""
    n: NonNegativeInt | None = None
    """Patients in the arm or cohort."""
    events: NonNegativeInt | None = None
    """Deaths or progressions behind ``value``, where reported."""
    month: float | None = Field(default=None, gt=0)
    """Landmark time in months, for ``landmark_survival``."""
    counts: dict[str, NonNegativeInt] | None = None
    """Named patient counts, e.g. causes of discontinuation, 2L regimen mix."""
    values: dict[str, float | str] | None = None
    """Other named figures: orr, dcr, proportions, follow-up times, schedule text ..."""
    measured_from: MeasuredFrom | None = None
    """Time origin of the figure."""
    prior_line: str | None = None
    """Line before this regimen when it is not ATZ/BEV (e.g. ``lenvatinib`` for yin2025)."""
    cohort: str | None = None
    """Analysis cohort, e.g. ``unadjusted`` or ``ps_matched``."""
    note: str | None = None
    """Free text: caveats, comparator figures, discrepancies in the paper."""

    @property
    def transported(self) -> bool:
        """True for second-line evidence measured after a prior line other than ATZ/BEV."""
        return self.prior_line is not None and self.prior_line != "atz_bev"

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        if not _ID_PATTERN.match(v):
            raise ValueError(
                f"id {v!r} is not well formed: use dotted lowercase segments of letters, "
                "digits and underscores, <section>.<arm>.<quantity>.<source>[.<cohort>], "
                "e.g. 'second_line.lenvatinib.os.chon2024.unadjusted'"
            )
        return v

    @model_validator(mode="after")
    def _check_contract(self) -> "Record":
        rule = QUANTITY_RULES[self.quantity]
        q = f"quantity {self.quantity!r}"

        segments = self.id.split(".")
        if not any(s == self.source or s.endswith("_" + self.source) for s in segments):
            raise ValueError(
                f"source = {self.source!r} does not appear in id {self.id!r}: the id must "
                f"contain the source id as a segment, e.g. '...pfs.{self.source}'"
            )
        if self.unit != rule.unit:
            raise ValueError(f"unit = {self.unit!r} is not allowed for {q}: use {rule.unit!r}")

        if self.value is None:
            if rule.value == "required":
                raise ValueError(f"value is missing: {q} requires a value")
            if self.quantity == "hazard_ratio" and not self.note:
                raise ValueError("value = null for a hazard_ratio needs a note saying why")
        else:
            if rule.value == "forbidden":
                raise ValueError(
                    f"value = {self.value!r} is not allowed for {q}: put named figures in values"
                )
            if not _in_domain(self.value, rule.value_domain):
                raise ValueError(
                    f"value = {self.value!r} is not allowed for {q}: "
                    f"must be {_DOMAIN_TEXT[rule.value_domain]}"
                )

        for name in ("ci95", "range"):
            bounds = getattr(self, name)
            if bounds is None:
                continue
            low, high = bounds
            if low is None and high is None:
                raise ValueError(f"{name} = [null, null] is not allowed: omit {name} instead")
            if low is not None and high is not None and low > high:
                raise ValueError(f"{name} = {list(bounds)} is not allowed: low must be <= high")
            if self.value is not None and not (
                (low is None or low <= self.value) and (high is None or self.value <= high)
            ):
                raise ValueError(
                    f"{name} = {list(bounds)} is not allowed: must satisfy "
                    f"low <= value ({self.value}) <= high"
                )

        if self.events is not None and self.n is not None and self.events > self.n:
            raise ValueError(f"events = {self.events} is not allowed: must be <= n ({self.n})")

        if rule.needs_month and self.month is None:
            raise ValueError(f"month is missing: {q} requires the landmark month")
        if not rule.needs_month and self.month is not None:
            raise ValueError(f"month = {self.month!r} is only allowed for 'landmark_survival'")
        if rule.needs_measured_from and self.measured_from is None:
            raise ValueError(
                f"measured_from is missing: {q} requires one of "
                + ", ".join(repr(m) for m in get_args(MeasuredFrom))
            )

        if rule.needs_counts and not self.counts:
            raise ValueError(f"counts is missing: {q} requires counts")
        if self.counts and self.n is not None:
            total = sum(self.counts.values())
            if self.quantity == "counts" and total != self.n:
                raise ValueError(
                    f"counts = {self.counts} sum to {total}, not n = {self.n}: counts records "
                    "are a partition of n"
                )
            over = {k: c for k, c in self.counts.items() if c > self.n}
            if over:
                raise ValueError(f"counts = {over} are not allowed: each must be <= n ({self.n})")

        if rule.values == "required" and not self.values:
            raise ValueError(f"values is missing: {q} requires named figures in values")
        for key, x in (self.values or {}).items():
            self._check_named_value(key, x, rule, q)
        return self

    @staticmethod
    def _check_named_value(key: str, x: float | str, rule: _Rule, q: str) -> None:
        domain = rule.values_domain
        if domain == "text":
            if not isinstance(x, str):
                raise ValueError(f"values.{key} = {x!r} is not allowed for {q}: text only")
            return
        if isinstance(x, str):
            return
        if domain == "population":
            domain = "positive" if key.startswith("median_") else "probability"
        if not math.isfinite(x) or not _in_domain(x, domain):
            raise ValueError(
                f"values.{key} = {x!r} is not allowed for {q}: must be {_DOMAIN_TEXT[domain]}"
            )


class UnknownEvidenceId(KeyError):
    """An evidence id that is not in the base; the message lists close matches."""

    def __init__(self, record_id: str, known_ids: Iterable[str]) -> None:
        self.record_id = record_id
        known = list(known_ids)
        # An id missing its cohort suffix is the commonest slip: offer its extensions first.
        extensions = [k for k in known if k.startswith(record_id + ".")]
        similar = difflib.get_close_matches(record_id, known, n=5, cutoff=0.6)
        self.close_matches = list(dict.fromkeys(extensions + similar))[:5]
        if self.close_matches:
            hint = "close matches: " + ", ".join(self.close_matches)
        else:
            hint = "no close match; EvidenceBase.ids() lists them all"
        super().__init__(f"unknown evidence id {record_id!r}; {hint}")

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and show it in quotes.
        return str(self.args[0])


class EvidenceBase:
    """Immutable collection of evidence records keyed by id, in file order.

    Parameters
    ----------
    records : iterable of Record
        Ids must be unique and every ``record.source`` a key of ``sources``.
    sources : mapping of str to Source
    notes : mapping of str to str, optional
        Conventions that apply to the whole file.
    """

    __slots__ = ("_notes", "_origins", "_records", "_sources")

    def __init__(
        self,
        records: Iterable[Record],
        sources: Mapping[str, Source],
        notes: Mapping[str, str] | None = None,
        origins: Mapping[str, str] | None = None,
    ) -> None:
        by_id: dict[str, Record] = {}
        for rec in records:
            if rec.id in by_id:
                raise ValueError(f"duplicate evidence id {rec.id!r}")
            if rec.source not in sources:
                raise ValueError(
                    f"record {rec.id!r}: unknown source {rec.source!r}; known: {sorted(sources)}"
                )
            by_id[rec.id] = rec
        self._records = MappingProxyType(by_id)
        self._sources = MappingProxyType(dict(sources))
        self._notes = MappingProxyType(dict(notes or {}))
        self._origins = MappingProxyType(dict(origins or {}))

    def origin(self, record_id: str) -> str:
        """Where a record comes from: ``"simseq"`` (the packaged file) or the user's
        evidence file or scenario that added it."""
        return self._origins.get(record_id, "simseq")

    def extended(self, other: "EvidenceBase", origin: str) -> "EvidenceBase":
        """This base plus ``other``'s records and sources, marked as coming from
        ``origin``. Ids may not collide: a user's record never replaces a packaged one
        (nor a source, unless it is the same one)."""
        clash = [rid for rid in other.ids() if rid in self._records]
        clash_src = [
            k for k, v in other.sources.items() if k in self._sources and self._sources[k] != v
        ]
        if clash or clash_src:
            what = [f"record id {rid!r} ({self.origin(rid)} has it)" for rid in clash]
            what += [f"source id {k!r} (another source has this id)" for k in clash_src]
            raise ValueError(
                f"{origin}: " + "; ".join(what) + ": ids must be new; give yours another id"
            )
        origins = {**self._origins, **{rid: origin for rid in other.ids()}}
        return EvidenceBase(
            [*self, *other], {**self._sources, **other.sources}, self._notes, origins
        )

    @property
    def sources(self) -> Mapping[str, Source]:
        """Source id -> Source."""
        return self._sources

    @property
    def notes(self) -> Mapping[str, str]:
        """Conventions that apply to the whole file (time origin, held-back results ...)."""
        return self._notes

    def get(self, record_id: str) -> Record:
        """The record with this id; raises ``UnknownEvidenceId`` (a ``KeyError``) if absent."""
        try:
            return self._records[record_id]
        except KeyError:
            raise UnknownEvidenceId(record_id, self._records) from None

    def ids(self) -> list[str]:
        """All record ids, in file order."""
        return list(self._records)

    def find(self, prefix: str) -> list[Record]:
        """All records whose id starts with ``prefix``, in file order."""
        return [rec for rid, rec in self._records.items() if rid.startswith(prefix)]

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._records

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"EvidenceBase({len(self._records)} records, {len(self._sources)} sources)"


def load_evidence(path: str | Path | None = None) -> EvidenceBase:
    """Load and validate an evidence file.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file with ``sources:``, ``records:`` and optional ``notes:``.
        Default: the packaged ``simseq/data/hcc_evidence.yaml``, loaded once and cached.

    Returns
    -------
    EvidenceBase

    Raises
    ------
    ValueError
        If the file is not valid; the message names the file and every problem.
    """
    if path is None:
        return _load_packaged()
    return _parse(_read_evidence_file(path), str(path))


def _read_evidence_file(path: str | Path) -> str:
    """The text of a user's evidence file, read as scenario files are (regular *.yaml
    files within a size cap; never a FIFO or device); ValueError naming the file."""
    try:
        return read_text_file(path, max_bytes=MAX_EVIDENCE_BYTES, suffixes=(".yaml", ".yml"))
    except FileProblem as err:
        raise ValueError(f"{path}: {err}") from None


def with_user_evidence(
    files: Sequence[str | Path] = (),
    sources: Mapping[str, Any] | None = None,
    records: Sequence[Any] = (),
    where: str = "<scenario>",
) -> EvidenceBase:
    """The packaged evidence plus a user's: evidence ``files`` (the packaged file's schema)
    and inline ``sources``/``records`` (from the scenario ``where``). User records may
    cite packaged sources; their ids must be new. Each record keeps its origin
    (``EvidenceBase.origin``): the file, or ``where`` for inline records.

    Raises ValueError naming the file (and record) of every problem.
    """
    base = load_evidence()
    for path in files:
        user = _parse(_read_evidence_file(path), str(path), cited=base.sources)
        base = base.extended(user, origin=str(path))
    if sources or records:
        data = {"sources": dict(sources or {}), "records": list(records)}
        user = parse_evidence_data(data, f"{where}: evidence", cited=base.sources)
        base = base.extended(user, origin=f"{where} (evidence.records)")
    return base


@functools.lru_cache(maxsize=1)
def _load_packaged() -> EvidenceBase:
    resource = resources.files("simseq") / "data" / "hcc_evidence.yaml"
    return _parse(resource.read_text(encoding="utf-8"), str(resource))


_TOP_LEVEL_KEYS = ("notes", "sources", "records")
_RECORD_INPUT_KEYS = tuple(k for k in Record.model_fields if k != "citation")


def _format_validation_error(
    where: str, err: ValidationError, allowed_keys: Iterable[str]
) -> list[str]:
    problems = []
    for e in err.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown key; allowed keys: {', '.join(allowed_keys)}"
        if e["loc"]:
            msg = f"{msg} (got {e['input']!r})" if e["type"] != "missing" else msg
        problems.append(f"{where}{loc}: {msg}")
    return problems


def _parse(text: str, filename: str, cited: Mapping[str, Source] | None = None) -> EvidenceBase:
    try:
        data = load_yaml(text)  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as exc:
        raise ValueError(f"{filename}: not valid YAML: {exc}") from None
    return parse_evidence_data(data, filename, cited)


def parse_evidence_data(
    data: Any, filename: str, cited: Mapping[str, Source] | None = None
) -> EvidenceBase:
    """Validate evidence already loaded from YAML (``sources:``, ``records:``, optional
    ``notes:``), as the packaged file is. ``cited``: further sources its records may
    cite without repeating them (a user's file citing a packaged source)."""
    cited = dict(cited or {})

    def fail(problems: list[str]) -> ValueError:
        return ValueError(
            f"{filename}: {len(problems)} problem(s) in the evidence file:\n  "
            + "\n  ".join(problems)
        )

    if not isinstance(data, dict):
        raise fail([f"top level must be a mapping with keys {', '.join(_TOP_LEVEL_KEYS)}"])
    problems: list[str] = []
    unknown = sorted(set(data) - set(_TOP_LEVEL_KEYS), key=str)
    if unknown:
        problems.append(
            f"unknown top-level key(s) {unknown}; allowed: {', '.join(_TOP_LEVEL_KEYS)}"
        )
    data = {"sources": {}, **data} if cited else data  # a user's file may cite only those
    for key, kind in (("sources", dict), ("records", list)):
        if not isinstance(data.get(key), kind):
            problems.append(f"{key}: must be a {'mapping' if kind is dict else 'list'}")
    notes = data.get("notes") or {}
    if not (isinstance(notes, dict) and all(isinstance(v, str) for v in notes.values())):
        problems.append("notes: must be a mapping of name -> text")
    if problems:
        raise fail(problems)

    sources: dict[str, Source] = {}
    for key, raw in data["sources"].items():
        where = f"sources.{key}"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping with keys cite, setting")
            continue
        if "id" in raw:
            problems.append(f"{where}.id: not allowed; the key ({key!r}) is the id")
            continue
        try:
            sources[key] = Source.model_validate({"id": key, **raw})
        except ValidationError as err:
            problems += _format_validation_error(where, err, ("cite", "setting"))

    available = {**cited, **sources}
    records: list[Record] = []
    first_index: dict[str, int] = {}
    for i, raw in enumerate(data["records"]):
        where = f"records[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping of record fields, got {raw!r}")
            continue
        if isinstance(raw.get("id"), str):
            where += f" (id {raw['id']!r})"
        if "citation" in raw:
            problems.append(f"{where}.citation: not allowed; the loader fills it from sources")
            continue
        source = raw.get("source")
        if not isinstance(source, str):
            problems.append(f"{where}.source: must be a source id, one of {', '.join(available)}")
            continue
        if source not in available and source in data["sources"]:
            continue  # the source itself is broken and already reported
        if source not in available:
            problems.append(
                f"{where}.source: unknown source {source!r}; known: {', '.join(available)}"
            )
            continue
        try:
            rec = Record.model_validate({**raw, "citation": available[source].cite})
        except ValidationError as err:
            problems += _format_validation_error(where, err, _RECORD_INPUT_KEYS)
            continue
        if rec.id in first_index:
            problems.append(
                f"{where}.id: duplicate id; first used by records[{first_index[rec.id]}]"
            )
            continue
        first_index[rec.id] = i
        records.append(rec)

    if problems:
        raise fail(problems)
    return EvidenceBase(records, available, notes)
