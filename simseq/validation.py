"""External validation: published figures the model is not fitted to, read against it.

A scenario's ``validation:`` names evidence records (a median in months, or a landmark
survival, measured from first-line start) and the curve each is read against: OS or
first-line PFS. They change nothing in the model; ``run`` reports each beside the
model's value (summary.json ``validation``) and draws the OS ones on survival.png.
"""

from __future__ import annotations

import math

from simseq.fit import Z95
from simseq.scenario import Scenario, ScenarioError

QUANTITIES = ("median", "landmark_survival")


def check(scenario: Scenario, evidence, path: str) -> list[tuple]:
    """(point, record) per ``validation:`` entry; ScenarioError naming the key path of
    an unknown id, a figure not measured from first-line start or not a median or
    landmark, or an unknown sequence."""
    problems, out = [], []
    for i, point in enumerate(scenario.validation):
        where = f"validation.{i}"
        try:
            record = evidence.get(point.evidence)
        except KeyError as err:
            problems.append((f"{where}.evidence", point.evidence, str(err).strip("'\"")))
            continue
        if record.quantity not in QUANTITIES or record.measured_from != "1l_start":
            problems.append(
                (
                    f"{where}.evidence",
                    point.evidence,
                    f"is a {record.quantity} measured from {record.measured_from}; validation "
                    "takes a median or landmark survival measured from 1l_start",
                )
            )
            continue
        unknown = sorted(set(point.sequences or ()) - set(scenario.sequences))
        if unknown:
            problems.append(
                (f"{where}.sequences", unknown, f"unknown; allowed {sorted(scenario.sequences)}")
            )
            continue
        out.append((point, record))
    if problems:
        raise ScenarioError(path, problems)
    return out


def published_ci95(record) -> tuple[float, float] | None:
    """The record's 95% CI; for a landmark without one but with n, the normal
    approximation to the binomial; None where neither is reported."""
    if record.ci95 is not None and None not in record.ci95:
        return float(record.ci95[0]), float(record.ci95[1])
    if record.quantity == "landmark_survival" and record.n:
        half = Z95 * math.sqrt(record.value * (1.0 - record.value) / record.n)
        return max(0.0, record.value - half), min(1.0, record.value + half)
    return None


def rows(points: list[tuple], curves: dict[str, dict], labels: dict[str, str]) -> list[dict]:
    """One row per (point, sequence): the published figure and its CI, the model's value
    with its Monte Carlo 95% interval. ``curves``: {outcome: {sequence id: SurvivalCurve}}."""
    out = []
    for point, record in points:
        for sid in point.sequences or list(labels):
            curve = curves[point.outcome][sid]
            if record.quantity == "median":
                model, model_ci = curve.median(), curve.median_ci95()
                what = "median, months"
            else:
                model, model_ci = curve.at(record.month), curve.at_ci95(record.month)
                what = f"survival at {record.month:g} months"
            out.append(
                {
                    "evidence": record.id,
                    "source": record.source,
                    "outcome": point.outcome,
                    "quantity": what,
                    "month": record.month,
                    "published": record.value,
                    "published_ci95": published_ci95(record),
                    "sequence": sid,
                    "label": labels[sid],
                    "model": _finite(model),
                    "model_ci95": [_finite(v) for v in model_ci],
                    "note": point.note,
                }
            )
    return out


def _finite(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def os_points(validation_rows: list[dict]) -> list[tuple]:
    """The OS figures to draw on survival.png, once each: (label, x, y, (x low, x high) or
    None, (y low, y high) or None), times in months."""
    seen, points = set(), []
    for r in validation_rows:
        if r["outcome"] != "os" or r["evidence"] in seen:
            continue
        seen.add(r["evidence"])
        ci = r["published_ci95"]
        if r["month"] is None:  # a median: at S = 0.5, its CI along time
            points.append((f"{r['source']} (median)", r["published"], 0.5, ci, None))
        else:
            label = f"{r['source']} ({r['month']:g}-month survival)"
            points.append((label, r["month"], r["published"], None, ci))
    return points
