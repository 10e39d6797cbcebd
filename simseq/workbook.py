"""results.xlsx: a results directory as one workbook, a sheet per table, units in headers.

Sheets: inputs (with provenance), summary (per sequence), survival (OS curves),
comparisons (common population beside as observed), validation (published results
against the simulated patients), cea, and with a PSA psa_summary and psa_draws.
Written with pandas on openpyxl.
"""

from __future__ import annotations

import json
from pathlib import Path

SHEETS = (
    "inputs",
    "summary",
    "survival",
    "comparisons",
    "validation",
    "cea",
    "psa_summary",
    "psa_draws",
)


def _summary_frame(summary: dict):
    """One row per sequence: OS, PFS and what followed, and the discounted economics."""
    import pandas as pd

    horizon = summary["horizon"]
    cea = summary.get("cea")
    cur = cea["currency"] if cea else ""
    rows = []
    for sid, s in summary["sequences"].items():
        os_ = s["os_from_1l"]
        second = s.get("second_line_any") or {}
        row = {
            "sequence": sid,
            "label": s.get("label") or sid,
            "median OS (months)": os_["median"],
            "median OS, MC 95% CI low (months)": os_["median_ci95"][0],
            "median OS, MC 95% CI high (months)": os_["median_ci95"][1],
            f"RMST to month {horizon:g} (months)": os_["rmst"],
            **{f"OS at {t} months (proportion)": v for t, v in os_["survival_at"].items()},
            "median 1L PFS (months)": (s.get("pfs_1l") or {}).get("median"),
            "started 2L (proportion of all patients)": second.get("fraction_started"),
            "median OS from 2L start (months)": (second.get("os_from_2l") or {}).get("median"),
            "life-years, undiscounted (years)": s["life_years_undiscounted"],
            "transported evidence": bool(s.get("transported")),
        }
        if cea:
            block = cea["sequences"][sid]
            row["LYs, discounted (years)"] = block["lys_discounted"]["mean"]
            row["QALYs, discounted (QALYs)"] = block["qalys_discounted"]["mean"]
            row[f"costs, discounted ({cur})"] = block["costs_discounted"]["mean"]
            row[f"NMB at WTP {cea['willingness_to_pay']:g} ({cur})"] = cea["nmb"][sid]
        rows.append(row)
    return pd.DataFrame(rows)


def _psa_summary_frame(psa: dict):
    """One row per sequence: means and 95% intervals across draws, P(best) at the WTP."""
    import pandas as pd

    cur, wtp = psa["currency"], psa["willingness_to_pay"]
    grid = psa["ceac"]["wtp"]
    at = min(range(len(grid)), key=lambda i: abs(grid[i] - wtp))
    units = {
        "lys": "discounted years",
        "qalys": "discounted QALYs",
        "costs": f"{cur}, discounted",
        "os_median": "months",
    }
    rows = []
    for sid, s in psa["sequences"].items():
        row = {"sequence": sid, "label": psa.get("labels", {}).get(sid, sid)}
        for out, unit in units.items():
            row[f"{out} mean ({unit})"] = s[out]["mean"]
            row[f"{out} 2.5% ({unit})"], row[f"{out} 97.5% ({unit})"] = s[out]["ci95"]
        row[f"P(best) at WTP {wtp:g} {cur}/QALY (proportion)"] = psa["ceac"]["prob_best"][sid][at]
        rows.append(row)
    evpi = dict(zip(grid, psa["evpi"]["value"], strict=True))[grid[at]]
    rows.append({"sequence": "(all)", "label": f"EVPI per patient at WTP ({cur})", "value": evpi})
    population = psa["evpi"].get("population")
    if population:
        rows.append(
            {
                "sequence": "(all)",
                "label": f"population EVPI at WTP ({cur}; "
                f"{population['discounted_patients']:,.0f} discounted patients)",
                "value": evpi * population["discounted_patients"],
            }
        )
    return pd.DataFrame(rows)


def _comparisons_frame(comparisons: list[dict]):
    """One row per comparison and population: both medians and their difference."""
    import pandas as pd

    rows = []
    for c in comparisons:
        for key, name in (("common_population", "common"), ("as_observed", "as observed")):
            block = c[key]
            rows.append(
                {
                    "comparison": c["label"],
                    "population": name,
                    "first": c["labels"][0],
                    "second": c["labels"][1],
                    "median OS first (months)": block["median_os_months"][0],
                    "median OS second (months)": block["median_os_months"][1],
                    "difference (months)": block["difference_months"],
                    "MC 95% CI low (months)": block["difference_ci95"][0],
                    "MC 95% CI high (months)": block["difference_ci95"][1],
                }
            )
    return pd.DataFrame(rows)


def write_workbook(directory: str | Path, path: str | Path) -> None:
    """Write the workbook of results ``directory`` to ``path`` (sheets whose source file
    is absent, e.g. psa_draws without a PSA, are left out)."""
    import pandas as pd

    directory = Path(directory)
    summary = json.loads((directory / "summary.json").read_text())
    cur = summary.get("cea", {}).get("currency", "currency")
    frames = {"summary": _summary_frame(summary)}
    if (directory / "inputs.csv").is_file():
        inputs = pd.read_csv(directory / "inputs.csv", keep_default_na=False)
        frames["inputs"] = inputs.rename(columns={"value": "value (in unit)"})
    survival = pd.read_csv(directory / "survival.csv")
    frames["survival"] = survival.rename(
        columns={
            "time_months": "time (months)",
            "survival": "OS (proportion alive)",
            "ci95_low": "MC 95% CI low (proportion)",
            "ci95_high": "MC 95% CI high (proportion)",
        }
    )
    if summary.get("comparisons"):
        frames["comparisons"] = _comparisons_frame(summary["comparisons"])
    if (directory / "validation.csv").is_file():
        validation = pd.read_csv(directory / "validation.csv")
        frames["validation"] = validation.rename(
            columns={
                "published": "published (in unit)",
                "predicted": "predicted (in unit)",
                "month": "month (landmark, months)",
                "relative_error": "relative error (predicted / published - 1)",
            }
        )
    if (directory / "cea.csv").is_file():
        frames["cea"] = pd.read_csv(directory / "cea.csv")
    psa_path = directory / "psa" / "psa_summary.json"
    if psa_path.is_file():
        frames["psa_summary"] = _psa_summary_frame(json.loads(psa_path.read_text()))
        draws = pd.read_csv(directory / "psa" / "psa_draws.csv")
        frames["psa_draws"] = draws.rename(
            columns={
                "lys": "lys (discounted years)",
                "qalys": "qalys (discounted QALYs)",
                "costs": f"costs ({cur}, discounted)",
                "os_median": "os_median (months)",
            }
        )
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name in SHEETS:
            if name in frames:
                frames[name].to_excel(writer, sheet_name=name, index=False)
