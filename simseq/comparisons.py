"""Sequences compared in the common population and as observed.

Regimens' evidence comes from cohorts with different patient mixes (chon2024: Child-Pugh
A in 92.5% of the lenvatinib and 62.8% of the sorafenib patients). Calibrated within its
own cohort's mix (``Regimen.cohort_population``), a regimen's survival is adjusted for
the covariates the scenario models, and a run simulates every sequence in one common
population. A ``comparisons:`` entry reports, for two sequences, the difference in median
OS from first-line start in that common population beside the difference as observed,
each sequence simulated in the cohort population of its second-line regimen: what the
unadjusted cohorts would have shown. The gap between the two is what the different
patient mix did (confounding by the modelled covariates, not by any other).
"""

from __future__ import annotations

import math

from simseq.fit import Z95
from simseq.outcomes import SurvivalCurve


def observed_regimen(scenario, sequence: str) -> str:
    """The regimen whose cohort population is ``sequence``'s as observed: its second line."""
    return scenario.sequences[sequence].lines[1].regimen


def _median(curve: SurvivalCurve) -> tuple[float, float]:
    """Median (months) and the standard error implied by its Monte Carlo 95% interval."""
    lo, hi = curve.median_ci95()
    return curve.median(), (hi - lo) / (2 * Z95)


def _difference(a: SurvivalCurve, b: SurvivalCurve) -> dict:
    """Median of a, of b, and a - b with a 95% interval from the two medians' SEs added
    in quadrature: conservative, as the sequences share random numbers (their errors
    are positively correlated)."""
    (ma, sa), (mb, sb) = _median(a), _median(b)
    diff, se = ma - mb, math.hypot(sa, sb)
    rounded = [round(x, 4) if math.isfinite(x) else None for x in (ma, mb, diff)]
    ci = [diff - Z95 * se, diff + Z95 * se]
    return {
        "median_os_months": rounded[:2],
        "difference_months": rounded[2],
        "difference_ci95": [round(x, 4) if math.isfinite(x) else None for x in ci],
    }


def comparison_rows(
    scenario, common: dict[str, SurvivalCurve], observed: dict[str, SurvivalCurve], populations
) -> list[dict]:
    """One row per ``comparisons:`` entry (summary.json "comparisons").

    ``common``: sequence id -> OS from first-line start in the run (common population);
    ``observed``: the same, each simulated in its second-line regimen's cohort population;
    ``populations``: regimen id -> covariate name -> prevalence in its cohorts."""
    rows = []
    for cid, comp in scenario.comparisons.items():
        a, b = comp.sequences
        in_common = _difference(common[a], common[b])
        as_observed = _difference(observed[a], observed[b])
        gap = None
        if None not in (in_common["difference_months"], as_observed["difference_months"]):
            gap = round(as_observed["difference_months"] - in_common["difference_months"], 4)
        rows.append(
            {
                "comparison": cid,
                "label": comp.label,
                "sequences": [a, b],
                "labels": [scenario.sequences[s].label for s in (a, b)],
                "quantity": "median OS from first-line start, months; difference first - second",
                "common_population": in_common,
                "as_observed": as_observed,
                "as_observed_minus_common": gap,
                "observed_populations": {
                    s: {
                        "regimen": observed_regimen(scenario, s),
                        **{
                            k: round(v, 6)
                            for k, v in populations[observed_regimen(scenario, s)].items()
                        },
                    }
                    for s in (a, b)
                },
                "note": comp.note,
            }
        )
    return rows
