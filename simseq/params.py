"""The parameter table: every input of a scenario as a named column with a draw axis.

A scenario resolves once into a structure (states, clocks, destinations) and
this table. Every number the model uses is a :class:`Value`: a function of one
row of the table. A deterministic run binds the base row, a probabilistic
sensitivity analysis binds the rows of :meth:`ParameterTable.draw`, a one-way
analysis the rows of :meth:`ParameterTable.one_way_rows`; nothing is resolved
again (after hesim's ``params_surv``: parameters are an n_draws x n_params
matrix and a draw is a row).

Each parameter says where it comes from (evidence ids or the assumption it
rests on), which scenario key paths it feeds, its group and unit, and its
sampling distribution, or why it is held fixed.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from simseq.fit import Z95

if TYPE_CHECKING:
    import pandas

    from simseq.meta_analysis import PooledMedian

# --------------------------------------------------------------------------- #
# Sampling distributions
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class LogNormal:
    """``base * exp(se_log * Z)``: medians (SE of log median) and hazard ratios (from a CI)."""

    se_log: float
    width = 1

    def sample(self, rng: np.random.Generator, base: np.ndarray, n: int) -> np.ndarray:
        return (base[0] * np.exp(self.se_log * rng.standard_normal(n)))[:, None]

    def bounds(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return base * math.exp(-Z95 * self.se_log), base * math.exp(Z95 * self.se_log)

    def describe(self) -> str:
        return f"log-normal (SE of log {self.se_log:.4g})"


@dataclass(frozen=True)
class Beta:
    """Beta(a, b): a proportion from k of n (a = k, b = n - k) or from a mean and SE."""

    a: float
    b: float
    width = 1

    @classmethod
    def from_mean_se(cls, mean: float, se: float) -> Beta:
        """Beta with this mean and SE (method of moments); ValueError where none has them."""
        common = mean * (1 - mean) / (se * se) - 1 if se > 0 else -1.0
        if not 0 < mean < 1 or common <= 0:
            raise ValueError(f"no Beta distribution has mean {mean} and SE {se}")
        return cls(mean * common, (1 - mean) * common)

    def sample(self, rng: np.random.Generator, base: np.ndarray, n: int) -> np.ndarray:
        if not (self.a > 0 and self.b > 0):  # 0 of n or n of n: the base is certain
            return np.full((n, 1), base[0])
        return rng.beta(self.a, self.b, n)[:, None]

    def bounds(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy import stats

        if not (self.a > 0 and self.b > 0):
            return base.copy(), base.copy()
        lo, hi = stats.beta.ppf([0.025, 0.975], self.a, self.b)
        return np.array([lo]), np.array([hi])

    def describe(self) -> str:
        return f"beta (a {self.a:.4g}, b {self.b:.4g})"


@dataclass(frozen=True)
class Gamma:
    """Gamma with this mean and SE: costs with an assumed relative SE."""

    mean: float
    se: float
    width = 1

    @property
    def _shape_scale(self) -> tuple[float, float]:
        shape = (self.mean / self.se) ** 2
        return shape, self.mean / shape

    def sample(self, rng: np.random.Generator, base: np.ndarray, n: int) -> np.ndarray:
        return rng.gamma(*self._shape_scale, n)[:, None]

    def bounds(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from scipy import stats

        shape, scale = self._shape_scale
        lo, hi = stats.gamma.ppf([0.025, 0.975], shape, scale=scale)
        return np.array([lo]), np.array([hi])

    def describe(self) -> str:
        return f"gamma (mean {self.mean:.4g}, SE {self.se:.4g})"


@dataclass(frozen=True)
class Dirichlet:
    """Dirichlet(alpha): a split over categories from their counts (one column each)."""

    alpha: tuple[float, ...]

    @property
    def width(self) -> int:
        return len(self.alpha)

    def sample(self, rng: np.random.Generator, base: np.ndarray, n: int) -> np.ndarray:
        alpha = np.asarray(self.alpha)
        positive = alpha > 0
        out = np.zeros((n, len(alpha)))
        out[:, positive] = rng.dirichlet(alpha[positive], n)
        return out

    def bounds(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first part between its marginal Beta's 2.5% and 97.5% points, the others
        rescaled so that they keep their proportions."""
        from scipy import stats

        alpha = np.asarray(self.alpha)
        total, first = alpha.sum(), alpha[0]
        rest = total - first
        lo, hi = stats.beta.ppf([0.025, 0.975], first, rest)

        def at(share: float) -> np.ndarray:
            row = (1 - share) * alpha / rest
            row[0] = share
            return row

        return at(lo), at(hi)

    def describe(self) -> str:
        return "Dirichlet (" + ", ".join(f"{a:.4g}" for a in self.alpha) + ")"


@dataclass(frozen=True)
class Empirical:
    """A parameter's posterior draws (a Bayesian calibration, ``simseq.posterior``):
    sampled with replacement, bounded by their 2.5% and 97.5% quantiles. A PSA takes
    a calibration's free parameters jointly, row d from posterior draw d
    (``Posterior.with_draws``), over what these marginal samples give."""

    draws: tuple[float, ...]
    width = 1

    def sample(self, rng: np.random.Generator, base: np.ndarray, n: int) -> np.ndarray:
        return np.asarray(self.draws)[rng.integers(0, len(self.draws), n)][:, None]

    def bounds(self, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.quantile(self.draws, [0.025, 0.975])
        return np.array([lo]), np.array([hi])

    def describe(self) -> str:
        return f"posterior ({len(self.draws)} draws of the Bayesian calibration)"


SamplingDistribution = LogNormal | Beta | Gamma | Dirichlet | Empirical


# --------------------------------------------------------------------------- #
# Parameters and the table
# --------------------------------------------------------------------------- #


# an evidence id's source segment (author + year, e.g. chon2024) and what labels drop
_SOURCE = re.compile(r"[a-z]+20\d\d[a-z]?")
_SKIP = {"economics", "health_economics", "regimens", "drugs", "unadjusted"}
_WORDS = {
    "first_line": "1L",
    "second_line": "2L",
    "os": "OS",
    "pfs": "PFS",
    "atz_bev": "ATZ/BEV",
    "tki_ici": "TKI + ICI",
    "ae": "AE",
    "grade3_ae_rate": "grade 3-4 AE rate",
    "ae_cost": "AE cost",
    "best_supportive_care_after_1l": "supportive care after 1L",
    "grade3_4_ae": "grade 3-4 AE rate",
    "ae_disutility": "AE disutility",
    "grade_3plus": "grade 3+",
    "ae_duration_months": "AE duration",
    "discount_costs": "discount rate, costs",
    "discount_qalys": "discount rate, QALYs",
    "received_2l": "received 2L",
}


def _word(segment: str) -> str:
    return _WORDS.get(segment, segment.replace("_", " "))


@dataclass(frozen=True)
class Parameter:
    """One input: its stable name, base value(s), distribution and where it comes from."""

    name: str
    """Stable identity: the evidence cited and how (``evidence:<id>``, ``pool:<ids>``,
    ``beta:<id>:<count>:<complement>``, ``dirichlet:<id>:...``), else ``value:<key path>``.
    Numbers citing the same evidence the same way share one parameter, hence one draw."""
    columns: tuple[str, ...]
    """Column names: the name, or ``name[category]`` for each part of a split."""
    base: tuple[float, ...]
    kind: str
    """"evidence", "pool", "assumption" or "calibrated" (solved per row by the calibrator)."""
    paths: tuple[str, ...]
    """Scenario key paths this parameter feeds."""
    ids: tuple[str, ...] = ()
    """Evidence ids it comes from (none for an assumption)."""
    note: str = ""
    """How it was derived from the evidence, or the assumption's reason."""
    group: str = "other"
    unit: str = ""
    distribution: SamplingDistribution | None = None
    """How it is drawn in a PSA; None: held fixed (``fixed_because`` says why)."""
    fixed_because: str = ""
    illustrative: bool = False
    pooling: PooledMedian | None = None
    """For a pooled median: the pool (method, tau^2, I^2, weights)."""

    @property
    def label(self) -> str:
        """A name a reviewer reads, with its sources: ``"2L lenvatinib OS median
        (pooled: chon2024, cheon2025)"`` for ``pool:second_line.lenvatinib.os...``."""
        kind, _, rest = self.name.partition(":")
        rest, _, part = rest.partition(":")
        words, sources = [], []
        for k, record in enumerate(rest.split("+")):
            for segment in record.split("."):
                if _SOURCE.fullmatch(segment):
                    sources.append(segment)
                elif segment not in _SKIP and k == 0:  # pooled records share their words
                    words.append(_word(segment))
        if self.unit == "months" and words and words[-1] in ("OS", "PFS"):
            words.append("median")
        text = " ".join(words)
        if kind in ("beta", "dirichlet") and part:
            text += f": {_word(part.split(',')[0].split('=')[0])} share"
        elif part:  # a named field of the record
            text += f" {_word(part)}"
        if sources:
            text += f" ({'pooled: ' if kind == 'pool' else ''}{', '.join(sources)})"
        return text

    def display_unit(self, currency: str) -> str:
        """The unit for a table header or axis label, currency named ("USD per month")."""
        if self.group == "utilities" and self.unit == "per year":
            return "0-1 scale"
        return self.unit.replace("currency", currency).strip("()")

    @property
    def source(self) -> str:
        """Evidence ids, or the assumption it rests on, for tables."""
        if self.ids:
            return ", ".join(self.ids)
        return f"assumption: {self.note}" if self.note else self.kind


class ParameterTable:
    """Every parameter of a resolved scenario; rows of values have shape (n_draws, n_columns)."""

    def __init__(self, parameters: Sequence[Parameter] = ()):
        self.parameters: list[Parameter] = []
        self.columns: list[str] = []
        self._column: dict[str, int] = {}
        self._by_name: dict[str, Parameter] = {}
        # a key path -> the parameter first used there
        self._by_path: dict[str, Parameter] = {}
        for p in parameters:
            self.add(p)

    def add(self, p: Parameter) -> int:
        """Append a parameter; returns the index of its first column."""
        if p.name in self._by_name:
            raise ValueError(f"parameter {p.name!r} is already in the table")
        first = len(self.columns)
        self.parameters.append(p)
        self._by_name[p.name] = p
        for path in p.paths:
            self._by_path.setdefault(path, p)
        for c in p.columns:
            self._column[c] = len(self.columns)
            self.columns.append(c)
        return first

    def replace(self, name: str, **changes) -> None:
        """Change fields of parameter ``name`` (its columns stay where they are)."""
        old = self._by_name[name]
        new = replace(old, **changes)
        if new.columns != old.columns:
            raise ValueError(f"{name}: a parameter's columns cannot change")
        self.parameters[self.parameters.index(old)] = new
        self._by_name[name] = new
        for path in new.paths:
            if self._by_path.get(path) is old or path not in self._by_path:
                self._by_path[path] = new

    def __len__(self) -> int:
        return len(self.columns)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Parameter:
        return self._by_name[name]

    def find(self, name_or_path: str) -> Parameter:
        """A parameter by its name or by a scenario key path it feeds; KeyError listing
        examples otherwise."""
        p = self._by_name.get(name_or_path) or self._by_path.get(name_or_path)
        if p is None:
            examples = ", ".join(q.paths[0] for q in self.parameters[:4])
            raise KeyError(
                f"{name_or_path!r} is not a parameter name or a key path of this scenario; "
                f"e.g. {examples} (see Study.parameters)"
            )
        return p

    def column(self, name: str) -> int:
        return self._column[name]

    def column_slice(self, p: Parameter) -> slice:
        first = self._column[p.columns[0]]
        return slice(first, first + len(p.columns))

    @property
    def uncertain(self) -> list[Parameter]:
        """Parameters drawn in a PSA (they have a distribution)."""
        return [p for p in self.parameters if p.distribution is not None]

    @property
    def held_fixed(self) -> list[Parameter]:
        """Parameters a PSA holds at their base value (not calibrated ones: those are solved)."""
        return [p for p in self.parameters if p.distribution is None and p.kind != "calibrated"]

    def assume_uncertainty(
        self,
        cost_se_fraction: float | None = None,
        utility_se_fraction: float | None = None,
        median_se_log: float | None = None,
    ) -> None:
        """Give held-fixed inputs the uncertainty a scenario's ``psa:`` section assumes:
        costs a gamma with SE = ``cost_se_fraction`` x value, utilities a Beta with SE =
        ``utility_se_fraction`` x value, medians from evidence that reports no CI, events
        or n a log-normal with SE of log ``median_se_log``. Each stays an assumption,
        which the parameter's note says."""
        for p in list(self.parameters):
            if p.distribution is not None or len(p.base) != 1:
                continue
            value = p.base[0]
            dist, why = None, ""
            if p.group == "costs" and p.unit.startswith("currency") and cost_se_fraction:
                if value > 0:
                    dist = Gamma(value, cost_se_fraction * value)
                    why = f"SE {cost_se_fraction:g} x value (psa.cost_se_fraction)"
            elif p.group == "utilities" and p.unit == "per year" and utility_se_fraction:
                try:
                    dist = Beta.from_mean_se(value, utility_se_fraction * value)
                    why = f"SE {utility_se_fraction:g} x value (psa.utility_se_fraction)"
                except ValueError:
                    dist = None
            elif (
                p.kind in ("evidence", "pool")
                and p.paths[0].endswith(".median")
                and median_se_log
                and value > 0
            ):
                dist = LogNormal(median_se_log)
                why = f"SE of log median {median_se_log:g} (psa.median_se_log)"
            if dist is not None:
                note = "; ".join(x for x in (p.note, f"uncertainty assumed: {why}") if x)
                self.replace(p.name, distribution=dist, fixed_because="", note=note)

    # -- rows -----------------------------------------------------------------
    def base_row(self) -> np.ndarray:
        """float64 (1, n_columns): every parameter at its base value."""
        return np.array([[v for p in self.parameters for v in p.base]], np.float64).reshape(
            1, len(self.columns)
        )

    def rows_with(self, values: Mapping[str, object]) -> np.ndarray:
        """The base row with parameters set by name or key path: float64 (1, n_columns).

        A split takes a mapping {category: probability} or a sequence in column order."""
        row = self.base_row()
        for name, value in values.items():
            p = self.find(name)
            cols = self.column_slice(p)
            if isinstance(value, Mapping):
                cats = [c[len(p.name) + 1 : -1] for c in p.columns]
                unknown = set(value) - set(cats)
                if unknown:
                    raise KeyError(f"{p.name}: no categories {sorted(unknown)}; it has {cats}")
                value = [value.get(c, 0.0) for c in cats]
            arr = np.atleast_1d(np.asarray(value, np.float64))
            if arr.shape != (len(p.columns),):
                raise ValueError(
                    f"{p.name} takes {len(p.columns)} number(s) ({', '.join(p.columns)}), "
                    f"got {value!r}"
                )
            row[0, cols] = arr
        return row

    def values_of(self, row: np.ndarray) -> dict[str, float | dict[str, float]]:
        """One row (n_columns,) as {parameter name: value, or {category: value} for a split}."""
        out: dict[str, float | dict[str, float]] = {}
        for p in self.parameters:
            values = row[self.column_slice(p)]
            if p.columns == (p.name,):
                out[p.name] = float(values[0])
            else:
                cats = [c[len(p.name) + 1 : -1] for c in p.columns]
                out[p.name] = dict(zip(cats, map(float, values), strict=True))
        return out

    def draw(self, n_draws: int, seed: int, attempt: int = 0) -> np.ndarray:
        """float64 (n_draws, n_columns): random draws of every uncertain parameter, the
        others at their base values.

        Each parameter has its own stream keyed by (seed, name), so adding or removing
        another parameter does not change its draws. ``attempt`` > 0 gives fresh,
        independent streams, for redrawing rows a PSA rejects."""
        rows = np.repeat(self.base_row(), n_draws, axis=0)
        for p in self.uncertain:
            rows[:, self.column_slice(p)] = p.distribution.sample(
                _stream(seed, p.name, attempt), np.asarray(p.base), n_draws
            )
        return rows

    def one_way_rows(self) -> tuple[list[Parameter], np.ndarray]:
        """(uncertain parameters, float64 (1 + 2 k, n_columns)): the base row, then each
        uncertain parameter at its low and at its high value (2.5% and 97.5% points of
        its distribution; for a median from its CI, the CI) with the others at base."""
        params = self.uncertain
        base = self.base_row()
        rows = np.repeat(base, 1 + 2 * len(params), axis=0)
        for i, p in enumerate(params):
            lo, hi = p.distribution.bounds(np.asarray(p.base))
            rows[1 + 2 * i, self.column_slice(p)] = lo
            rows[2 + 2 * i, self.column_slice(p)] = hi
        return params, rows

    def frame(self) -> pandas.DataFrame:
        """One row per parameter: name, value, distribution, group, unit, source, paths."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "name": p.name,
                    "value": p.base[0]
                    if p.columns == (p.name,)
                    else dict(zip(p.columns, p.base, strict=True)),
                    "distribution": p.distribution.describe()
                    if p.distribution is not None
                    else ("solved by calibration" if p.kind == "calibrated" else "fixed"),
                    "held_fixed_because": p.fixed_because,
                    "group": p.group,
                    "unit": p.unit,
                    "kind": p.kind,
                    "source": p.source,
                    "illustrative": p.illustrative,
                    "paths": "; ".join(p.paths),
                }
                for p in self.parameters
            ]
        ).set_index("name")

    def rows_frame(self, rows: np.ndarray, *, uncertain_only: bool = True) -> pandas.DataFrame:
        """Rows of values as a DataFrame, one column per (uncertain) parameter column."""
        import pandas as pd

        params = self.uncertain if uncertain_only else self.parameters
        cols = [c for p in params for c in p.columns]
        idx = [self._column[c] for c in cols]
        out = pd.DataFrame(rows[:, idx], columns=cols)
        out.index.name = "draw"
        return out


def _stream(seed: int, name: str, attempt: int = 0) -> np.random.Generator:
    """A generator for one parameter, keyed by (seed, parameter name[, attempt])."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    key = [seed, digest, 0x5EA] + ([attempt] if attempt else [])
    return np.random.default_rng(key)


# --------------------------------------------------------------------------- #
# Values: model numbers as functions of a row
# --------------------------------------------------------------------------- #


class Value:
    """A number of the model as a function of the parameter rows.

    ``base`` is its value at the base row (Python arithmetic, for checks, structure
    decisions and messages); :meth:`of` evaluates it for every row at once
    (float64 (n_draws,)). Arithmetic with numbers and other Values builds new Values,
    so the resolver computes with them as with floats. ``columns`` are the table
    columns it depends on.
    """

    __slots__ = ("base", "columns", "_fn")

    def __init__(
        self, base: float, fn: Callable[[np.ndarray], np.ndarray], columns: frozenset = frozenset()
    ):
        self.base = float(base)
        self._fn = fn
        self.columns = columns

    @classmethod
    def const(cls, x: float) -> Value:
        x = float(x)
        return cls(x, lambda rows: np.full(rows.shape[0], x))

    @classmethod
    def column(cls, index: int, base: float) -> Value:
        return cls(base, lambda rows: rows[:, index], frozenset([index]))

    @staticmethod
    def lift(x: Value | float) -> Value:
        return x if isinstance(x, Value) else Value.const(x)

    @property
    def is_constant(self) -> bool:
        return not self.columns

    def of(self, rows: np.ndarray | None) -> np.ndarray:
        """float64 (n_draws,): the value at each row of ``rows`` (n_draws, n_columns);
        None: (1,), the base value."""
        if rows is None:
            return np.array([self.base])
        return np.asarray(self._fn(rows), np.float64)

    def _combine(self, other, base_op, array_op, swap=False) -> Value:
        other = Value.lift(other)
        a, b = (other, self) if swap else (self, other)
        return Value(
            base_op(a.base, b.base),
            lambda rows: array_op(a.of(rows), b.of(rows)),
            a.columns | b.columns,
        )

    def __add__(self, o):
        return self._combine(o, float.__add__, np.add)

    def __radd__(self, o):
        return self._combine(o, float.__add__, np.add, swap=True)

    def __sub__(self, o):
        return self._combine(o, float.__sub__, np.subtract)

    def __rsub__(self, o):
        return self._combine(o, float.__sub__, np.subtract, swap=True)

    def __mul__(self, o):
        return self._combine(o, float.__mul__, np.multiply)

    def __rmul__(self, o):
        return self._combine(o, float.__mul__, np.multiply, swap=True)

    def __truediv__(self, o):
        return self._combine(o, _div, _array_div)

    def __rtruediv__(self, o):
        return self._combine(o, _div, _array_div, swap=True)

    def __neg__(self):
        return Value(-self.base, lambda rows: -self.of(rows), self.columns)

    def log(self) -> Value:
        base = math.log(self.base) if self.base > 0 else float("nan")
        return Value(base, lambda rows: _array_log(self.of(rows)), self.columns)

    def __repr__(self) -> str:
        return f"Value({self.base!r}, columns={sorted(self.columns)})"


def _div(a: float, b: float) -> float:
    return a / b if b != 0 else float("nan")


def _array_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(a, b)


def _array_log(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(a)
