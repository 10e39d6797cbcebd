"""Like-for-like external validation: a study's estimator applied to simulated patients.

A scenario's ``validation:`` names published results by evidence id, each with the
estimator the study used (``scenario.ValidationPoint``): a median or landmark survival
of OS or PFS from a stated origin in a stated subgroup, a proportion of patients who
started a line, or a naive Cox hazard ratio between two subgroups. The estimator is
applied to the patient-level event log of the run's first ``min(N, VALIDATION_PATIENTS)``
patients per sequence (``simulator.walk_log`` with the run's seed: the
same random streams, so the same patients), which brings the study's time origin and
selection (immortal time, who reaches a line) into the comparison. Nothing in the
model changes.

``run`` writes validation.csv and validation.png, lists the rows in summary.json
(``validation``) with the mean absolute percentage error over the rows that are not
calibration targets (``validation_mape``), and draws the OS results measured from the
sequence start in the whole sequence on survival.png.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy  # scipy.special is imported on first use (see distributions)

from simseq.cox import fit_binary
from simseq.fit import Z95
from simseq.outcomes import SurvivalCurve, km_curve
from simseq.scenario import Scenario, ScenarioError, ValidationGroup, ValidationPoint
from simseq.validation_roles import ROLE_TARGET, ROLE_VALIDATION

VALIDATION_PATIENTS = 50_000
"""Simulated patients per sequence the estimators see (at most; fewer in a smaller run).
The Monte Carlo SE of an exponential median is median / (ln 2 sqrt(n)): 1.4% of it in a
subgroup of 10,000, well inside any published interval. Walking and reading them takes
about 0.3 s for the base case's 5 sequences."""

STATISTIC_QUANTITIES = {
    "median": ("median", "medians"),
    "landmark_survival": ("landmark_survival",),
    "proportion": ("counts",),
    "hazard_ratio": ("hazard_ratio",),
}
"""Evidence record quantities each statistic can be read against."""

ORIGINS = {"1l_start": "sequence_start", "2l_start": "line_2"}
"""A record's ``measured_from`` -> the origin that measures like it."""

COLUMNS = (
    "evidence",
    "field",
    "label",
    "source",
    "role",
    "statistic",
    "outcome",
    "origin",
    "subgroup",
    "reference",
    "sequence",
    "sequence_label",
    "month",
    "unit",
    "published",
    "published_ci95_low",
    "published_ci95_high",
    "predicted",
    "predicted_ci95_low",
    "predicted_ci95_high",
    "relative_error",
    "inside_published_ci95",
    "n_simulated",
    "note",
)
"""validation.csv's columns, in order (summary.json's rows have the same keys)."""


@dataclass(frozen=True)
class Check:
    """One ``validation:`` entry, checked against the evidence and the scenario."""

    point: ValidationPoint
    record: object
    """The ``evidence.Record`` named."""
    published: float
    published_ci95: tuple[float | None, float | None] | None
    month: float | None
    """Landmark month (``landmark_survival`` only)."""
    sequences: tuple[str, ...]
    role: str
    """``validation``, or ``calibration target`` when its evidence id is one."""


# -- checking -------------------------------------------------------------------------


def calibration_ids(scenario: Scenario) -> set[str]:
    """Evidence ids the scenario's calibration targets cite, inside pools included."""
    ids: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "evidence" and isinstance(value, str):
                    ids.add(value)
                elif key == "pool" and isinstance(value, list):
                    ids.update(v for v in value if isinstance(v, str))
                    walk([v for v in value if not isinstance(v, str)])
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    if scenario.calibration is not None:
        walk(scenario.calibration.model_dump()["targets"])
    return ids


class _Problem(Exception):
    """One entry's problem: (key path, value, what is allowed)."""


def check(scenario: Scenario, evidence, path: str) -> list[Check]:
    """The ``validation:`` entries checked; ScenarioError naming the key path, the value
    and what is allowed for: an unknown evidence id or field, a statistic the record does
    not report, an origin other than the study's, an unknown regimen or sequence, or a
    sequence where the origin or a group cannot occur."""
    problems: list[tuple] = []
    out = []
    targets = calibration_ids(scenario)
    for i, point in enumerate(scenario.validation):
        where = f"validation.{i}"
        try:
            try:
                record = evidence.get(point.evidence)
            except KeyError as err:
                raise _Problem(f"{where}.evidence", point.evidence, str(err).strip("'\"")) from None
            value, ci, month = _published(point, record, where)
            _check_origin(point, record, where)
            _check_groups(scenario, point, where)
            sequences = _sequences(scenario, point, where)
        except _Problem as problem:
            problems.append(problem.args)
            continue
        role = ROLE_TARGET if point.evidence in targets else ROLE_VALIDATION
        out.append(Check(point, record, value, ci, month, sequences, role))
    if problems:
        raise ScenarioError(path, problems)
    return out


def _published(point: ValidationPoint, record, where: str):
    """(value, 95% CI or None, landmark month or None) of the figure the entry names."""
    allowed = STATISTIC_QUANTITIES[point.statistic]
    if record.quantity not in allowed:
        raise _Problem(
            f"{where}.statistic",
            point.statistic,
            f"{record.id} is a {record.quantity} record; statistic: {point.statistic} is "
            f"read against {' or '.join(allowed)} records",
        )
    named = record.values if record.quantity == "medians" else record.counts
    if record.quantity in ("medians", "counts"):
        keys = sorted(k for k, v in (named or {}).items() if not isinstance(v, str))
        if point.field not in keys:
            raise _Problem(f"{where}.field", point.field, f"{record.id} holds {keys}: name one")
    elif point.field is not None:
        raise _Problem(f"{where}.field", point.field, f"{record.id} holds one value: leave it out")
    if record.quantity == "counts":
        if not record.n:
            raise _Problem(f"{where}.evidence", record.id, "a proportion needs the record's n")
        k = int(record.counts[point.field])
        low, high = clopper_pearson(k, record.n)
        return round(k / record.n, 6), (round(low, 6), round(high, 6)), None
    if record.quantity == "medians":
        return float(named[point.field]), None, None
    return float(record.value), published_ci95(record), record.month


def _check_origin(point: ValidationPoint, record, where: str) -> None:
    """Time must be measured from where the study measured it."""
    if point.statistic == "proportion":
        return
    study = ORIGINS.get(record.measured_from)
    if study is None:
        raise _Problem(
            f"{where}.evidence",
            record.id,
            f"is measured from {record.measured_from}; the harness measures from "
            f"{' or '.join(sorted(ORIGINS))} (origin: {' or '.join(ORIGINS.values())})",
        )
    if point.origin != study:
        raise _Problem(
            f"{where}.origin",
            point.origin,
            f"{record.id} is measured from {record.measured_from}: like for like needs "
            f"origin: {study}",
        )


def _check_groups(scenario: Scenario, point: ValidationPoint, where: str) -> None:
    for key in ("subgroup", "reference"):
        group = getattr(point, key)
        if group is not None and group.regimen is not None:
            if group.regimen not in scenario.regimens:
                raise _Problem(
                    f"{where}.{key}.regimen",
                    group.regimen,
                    f"unknown regimen; allowed {sorted(scenario.regimens)}",
                )
    sub, ref = point.subgroup, point.reference
    if ref is not None and not (
        sub.line == ref.line and sub.regimen and ref.regimen and sub.regimen != ref.regimen
    ):
        raise _Problem(
            f"{where}.reference",
            ref.model_dump(),
            "the two groups of a hazard ratio must not overlap: the same line as subgroup:, "
            "each with its own regimen",
        )


def _possible(scenario: Scenario, sid: str, point: ValidationPoint) -> bool:
    """Whether every patient set the entry names can occur in sequence ``sid``."""
    lines = scenario.sequences[sid].lines
    if point.origin_line > len(lines):
        return False
    for group in (point.subgroup, point.reference):
        if group is None:
            continue
        if group.line > len(lines):
            return False
        if group.regimen is not None and group.regimen not in lines[group.line - 1].regimen_ids():
            return False
    return True


def _sequences(scenario: Scenario, point: ValidationPoint, where: str) -> tuple[str, ...]:
    """The sequence ids the entry is read in."""
    known = list(scenario.sequences)
    if point.sequences is None:
        found = tuple(sid for sid in known if _possible(scenario, sid, point))
        if not found:
            raise _Problem(
                f"{where}.subgroup", None, "no sequence has the origin and groups this entry names"
            )
        return found
    if len(set(point.sequences)) < len(point.sequences):
        raise _Problem(f"{where}.sequences", point.sequences, "a sequence is named twice")
    unknown = sorted(set(point.sequences) - set(known))
    if unknown:
        raise _Problem(f"{where}.sequences", unknown, f"unknown; allowed {sorted(known)}")
    impossible = [sid for sid in point.sequences if not _possible(scenario, sid, point)]
    if impossible:
        raise _Problem(
            f"{where}.sequences",
            impossible,
            "no patients there with the origin line or the groups named "
            f"(lines of {impossible[0]}: {_describe_lines(scenario, impossible[0])})",
        )
    return tuple(point.sequences)


def _describe_lines(scenario: Scenario, sid: str) -> str:
    return "; ".join(
        f"{k}: {', '.join(line.regimen_ids())}"
        for k, line in enumerate(scenario.sequences[sid].lines, start=1)
    )


def published_ci95(record) -> tuple[float | None, float | None] | None:
    """The record's 95% CI, a bound None where the paper gives NA (not reached: no upper
    bound within follow-up); for a landmark without one but with n, the normal
    approximation to the binomial; None where neither is reported."""
    if record.ci95 is not None and record.ci95 != (None, None):
        return tuple(None if b is None else float(b) for b in record.ci95)
    if record.quantity == "landmark_survival" and record.n:
        half = Z95 * math.sqrt(record.value * (1.0 - record.value) / record.n)
        return max(0.0, record.value - half), min(1.0, record.value + half)
    return None


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95% interval of a proportion k / n: beta quantiles, the
    interval ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")`` gives
    (scipy.stats itself costs a second of start-up)."""
    low = 0.0 if k == 0 else float(scipy.special.betaincinv(k, n - k + 1, 0.025))
    high = 1.0 if k == n else float(scipy.special.betaincinv(k + 1, n - k, 0.975))
    return low, high


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion k / n (the Monte Carlo interval of a
    simulated share)."""
    p, z2 = k / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def inside(value: float | None, ci: tuple[float | None, float | None] | None) -> bool | None:
    """Whether ``value`` lies in ``ci`` (a None bound is open); None without either."""
    if value is None or ci is None:
        return None
    lo, hi = ci
    return (lo is None or lo <= value) and (hi is None or value <= hi)


# -- simulated patients ---------------------------------------------------------------


@dataclass(frozen=True)
class Patients:
    """The simulated patients of one sequence, one entry per patient (arrays (n,))."""

    death: np.ndarray
    """float64: time of death, or of censoring at the horizon, months from sequence start."""
    died: np.ndarray
    """bool: whether ``death`` is a death."""
    start: dict[int, np.ndarray]
    """line -> float64: when the patient started it (NaN: never)."""
    stop: dict[int, np.ndarray]
    """line -> float64: when the line ended (NaN: never started)."""
    end: dict[int, np.ndarray]
    """line -> object: the event that ended it (progression, death, deterioration,
    censored; None: never started)."""
    regimen: dict[int, np.ndarray]
    """line -> object: the regimen id it was started on (None: never started)."""

    def line_start(self, line: int) -> np.ndarray:
        """float64 (n,): when each patient started ``line`` (NaN: never; all NaN when
        no simulated patient reached it)."""
        return self.start.get(line, np.full(self.death.shape, np.nan))

    def started(self, group: ValidationGroup) -> np.ndarray:
        """bool (n,): in ``group`` (started its line, on its regimen when given)."""
        member = ~np.isnan(self.line_start(group.line))
        if group.regimen is not None and member.any():
            member &= self.regimen[group.line] == group.regimen
        return member


def patients(model, n_patients: int, seed: int, horizon: float) -> dict[str, Patients]:
    """Sequence id -> the event log of its first ``n_patients`` patients, per patient."""
    from simseq.simulator import walk_log

    log = walk_log(model, n_patients, seed, horizon=horizon)
    event = log.event_names()
    line = model.state_line[log.state]
    regimen = np.array(model.state_regimen, dtype=object)[log.state]
    out = {}
    for q, sid in enumerate(model.seq_names):
        rows = np.flatnonzero(log.sequence == q)  # in path order per patient
        p = log.patient[rows]
        last = rows[np.r_[p[1:] != p[:-1], True]]
        death = np.full(n_patients, np.nan)
        died = np.zeros(n_patients, bool)
        death[log.patient[last]] = log.t_stop[last]
        died[log.patient[last]] = event[last] == "death"
        start, stop, end, regimen_of = {}, {}, {}, {}
        lines = line[rows]
        for k in np.unique(lines[lines > 0]):  # 0: not a line of treatment
            on = rows[lines == k]
            who = log.patient[on]
            if np.unique(who).size < who.size:  # a model whose lines span several states
                raise ValueError(f"{sid}: line {k} has several sojourns per patient")
            start[int(k)] = _spread(n_patients, who, log.t_start[on], np.nan)
            stop[int(k)] = _spread(n_patients, who, log.t_stop[on], np.nan)
            end[int(k)] = _spread(n_patients, who, event[on], None)
            regimen_of[int(k)] = _spread(n_patients, who, regimen[on], None)
        out[sid] = Patients(death, died, start, stop, end, regimen_of)
    return out


def _spread(n: int, who: np.ndarray, values: np.ndarray, empty) -> np.ndarray:
    """(n,) array with ``values`` at ``who`` and ``empty`` elsewhere (float or object)."""
    out = np.full(n, empty, dtype=np.float64 if empty is not None else object)
    out[who] = values
    return out


# -- estimators -----------------------------------------------------------------------


def _times(check: Check, pts: Patients, who: np.ndarray):
    """(time from origin, event) of the patients ``who`` (bool (n,)), months."""
    k = check.point.origin_line
    origin = pts.line_start(k)[who]
    if check.point.outcome == "os":
        return pts.death[who] - origin, pts.died[who]
    return pts.stop[k][who] - origin, pts.end[k][who] != "censored"


def _curve(time: np.ndarray, event: np.ndarray, bin_width: float, horizon: float):
    """The project's Kaplan-Meier (``outcomes.km_curve``) on the run's time grid."""
    n_bins = math.ceil(horizon / bin_width - 1e-9)
    bins = np.minimum((time / bin_width).astype(np.int64), n_bins - 1)
    events = np.bincount(bins[event], minlength=n_bins)
    censored = np.bincount(bins[~event], minlength=n_bins)
    return km_curve(events, censored, bin_width)


def estimate(check: Check, pts: Patients, bin_width: float, horizon: float):
    """(predicted value, its Monte Carlo 95% CI, patients it was estimated on) of one
    sequence; a value is None where it cannot be estimated (no patients, a median not
    reached within the horizon)."""
    point = check.point
    if point.statistic == "proportion":
        before = pts.end.get(point.subgroup.line - 1, np.full(pts.death.shape, None))
        alive = np.isin(before, ["progression", "deterioration", "other"])
        n, k = int(alive.sum()), int((alive & pts.started(point.subgroup)).sum())
        if n == 0:
            return None, (None, None), 0
        low, high = wilson(k, n)
        return _finite(k / n), (_finite(low), _finite(high)), n
    has_origin = ~np.isnan(pts.line_start(point.origin_line))
    if point.statistic == "hazard_ratio":
        one = has_origin & pts.started(point.subgroup)
        zero = has_origin & pts.started(point.reference)
        time, event = _times(check, pts, one | zero)
        try:
            fit = fit_binary(time, event, one[one | zero])
        except ValueError:  # a group without events: no finite estimate
            return None, (None, None), int((one | zero).sum())
        return _finite(fit.hazard_ratio), tuple(_finite(v) for v in fit.ci95()), fit.n
    who = has_origin & (pts.started(point.subgroup) if point.subgroup else True)
    if not who.any():
        return None, (None, None), 0
    curve: SurvivalCurve = _curve(*_times(check, pts, who), bin_width, horizon)
    if point.statistic == "median":
        value, ci = curve.median(), curve.median_ci95()
    else:
        value, ci = curve.at(check.month), curve.at_ci95(check.month)
    return _finite(value), tuple(_finite(v) for v in ci), curve.n


def _finite(x: float) -> float | None:
    return round(float(x), 6) if x is not None and math.isfinite(x) else None


def describe(group: ValidationGroup | None) -> str:
    """A group in words, e.g. "started lenvatinib at line 2"."""
    if group is None:
        return ""
    return f"started {group.regimen or 'any regimen'} at line {group.line}"


def rows(
    checks: list[Check],
    model,
    n_patients: int,
    seed: int,
    *,
    horizon: float,
    bin_width: float,
    labels: dict[str, str],
) -> list[dict]:
    """One row (``COLUMNS``) per (entry, sequence): the published value and its CI, the
    simulated patients' value of the same statistic and its Monte Carlo 95% CI."""
    if not checks:
        return []
    m = min(n_patients, VALIDATION_PATIENTS)
    cohort = patients(model, m, seed, horizon)
    out = []
    for c in checks:
        point, record = c.point, c.record
        published_ci = c.published_ci95 or (None, None)
        for sid in c.sequences:
            value, ci, n = estimate(c, cohort[sid], bin_width, horizon)
            rel = None if value is None else (value - c.published) / c.published
            out.append(
                {
                    "evidence": record.id,
                    "field": point.field,
                    "label": point.label or record.id,
                    "source": record.source,
                    "role": c.role,
                    "statistic": point.statistic,
                    "outcome": point.outcome,
                    "origin": point.origin,
                    "subgroup": describe(point.subgroup),
                    "reference": describe(point.reference),
                    "sequence": sid,
                    "sequence_label": labels.get(sid) or sid,
                    "month": c.month,
                    "unit": UNITS[point.statistic],
                    "published": c.published,
                    "published_ci95_low": published_ci[0],
                    "published_ci95_high": published_ci[1],
                    "predicted": value,
                    "predicted_ci95_low": ci[0],
                    "predicted_ci95_high": ci[1],
                    "relative_error": None if rel is None else round(rel, 6),
                    "inside_published_ci95": inside(value, c.published_ci95),
                    "n_simulated": n,
                    "note": point.note,
                }
            )
    return out


UNITS = {
    "median": "months",
    "landmark_survival": "proportion alive",
    "proportion": "proportion",
    "hazard_ratio": "hazard ratio",
}


def mape(validation_rows: list[dict]) -> dict:
    """Mean absolute percentage error over the rows that are not calibration targets and
    have a predicted value: {"percent": float or None, "n_rows": int, "excluded": int}."""
    used = [
        abs(r["relative_error"])
        for r in validation_rows
        if r["role"] == ROLE_VALIDATION and r["relative_error"] is not None
    ]
    return {
        "percent": round(100.0 * float(np.mean(used)), 3) if used else None,
        "n_rows": len(used),
        "excluded": len(validation_rows) - len(used),
    }


def csv_rows(validation_rows: list[dict]) -> list[dict]:
    """validation.csv's rows: ``COLUMNS``, blanks for what does not apply."""
    return [{k: ("" if r[k] is None else r[k]) for k in COLUMNS} for r in validation_rows]


def os_points(validation_rows: list[dict]) -> list[tuple]:
    """The results survival.png can show (OS from the sequence start in the whole
    sequence: a median or a landmark), once each: (label, x, y, (x low, x high) or None,
    (y low, y high) or None), times in months."""
    seen, points = set(), []
    for r in validation_rows:
        if (
            r["outcome"] != "os"
            or r["origin"] != "sequence_start"
            or r["subgroup"]
            or r["statistic"] not in ("median", "landmark_survival")
            or r["evidence"] in seen
        ):
            continue
        seen.add(r["evidence"])
        ci = None
        if r["published_ci95_low"] is not None and r["published_ci95_high"] is not None:
            ci = (r["published_ci95_low"], r["published_ci95_high"])
        if r["statistic"] == "median":  # at S = 0.5, its CI along time
            points.append((f"{r['label']} (median)", r["published"], 0.5, ci, None))
        else:
            label = f"{r['label']} ({r['month']:g}-month survival)"
            points.append((label, r["month"], r["published"], None, ci))
    return points
