"""report.html: one self-contained page a reviewer reads, from a results directory.

``build(directory)`` reads what ``run``, ``psa`` and ``dsa`` wrote there (the last two
in ``psa/`` and ``dsa/``, each optional) and renders ``templates/report.html`` with
Jinja2: every figure embedded as base64 PNG (the model diagram as inline SVG), no
network, no files beside it. Lists other commands add to (warnings, inputs held fixed,
extra PSA outputs) are rendered generically, whatever their entries hold.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
from pathlib import Path

SECTIONS = (
    ("model", "Model"),
    ("inputs", "Inputs"),
    ("calibration", "Calibration and validation"),
    ("survival", "Survival"),
    ("pfs", "Progression-free survival"),
    ("time-on-treatment", "Time on treatment"),
    ("occupancy", "State occupancy"),
    ("cea", "Cost-effectiveness"),
    ("psa", "Probabilistic sensitivity analysis"),
    ("dsa", "One-way sensitivity analysis"),
    ("held-fixed", "Inputs held fixed"),
    ("warnings", "Warnings"),
)
"""(id, heading) of every section, in order; a section without results says so."""

# psa_summary.json keys the page shows in their own places; any other is listed as is
_PSA_SHOWN = {
    "scenario", "n_draws", "n_patients_per_draw", "seed", "currency", "willingness_to_pay",
    "labels", "sequences", "base_case", "icer_table", "ceac", "evpi", "evppi", "warnings",
    "parameters", "held_fixed", "effects", "costs", "statistics", "calibration",
}  # fmt: skip


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _read_csv(path: Path) -> list[dict] | None:
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _png(path: Path) -> str | None:
    """A PNG file as a data: URI (None when the command that draws it has not run)."""
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _png_bytes(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def context(directory: Path) -> dict:
    """Everything the template shows, from the files in ``directory``."""
    import pandas as pd

    from simseq import report_figures
    from simseq.report import per_line_outputs

    summary = _read_json(directory / "summary.json")
    if summary is None:
        raise FileNotFoundError(
            f"{directory} has no summary.json: run `simseq run SCENARIO --out {directory}` first"
        )
    labels = {sid: s.get("label") or sid for sid, s in summary["sequences"].items()}
    psa = _read_json(directory / "psa" / "psa_summary.json")
    dsa = _read_json(directory / "dsa" / "dsa_summary.json")
    figures = {
        "survival": _png(directory / "survival.png"),
        "validation": _png(directory / "validation.png"),
    }
    curves_path = directory / "curves.csv"
    if curves_path.is_file():
        curves = pd.read_csv(curves_path)
        for name in ("pfs", "time_on_line", "occupancy"):
            fig = getattr(report_figures, f"{name}_figure")(curves, labels)
            figures[name] = _png_bytes(report_figures.png(fig))
        if (directory / "targets.csv").is_file():
            targets = pd.read_csv(directory / "targets.csv")
            fig = report_figures.calibration_figure(curves, targets, labels)
            figures["calibration"] = _png_bytes(report_figures.png(fig))
    for name in ("ce_plane", "ceac", "evpi", "evppi"):
        figures[name] = _png(directory / "psa" / f"{name}.png")
    for name in ("tornado_nmb", "tornado_os"):
        figures[name] = _png(directory / "dsa" / f"{name}.png")
    warnings = list(
        dict.fromkeys(
            w if isinstance(w, str) else json.dumps(w)
            for block in (summary, psa or {}, dsa or {})
            for w in block.get("warnings", [])
        )
    )
    held_fixed = (psa or dsa or {}).get("held_fixed", [])
    return {
        "title": summary["title"],
        "summary": summary,
        "labels": labels,
        "sections": SECTIONS,
        "manifest": _read_json(directory / "manifest.json") or {},
        "inputs": _read_csv(directory / "inputs.csv"),
        "cea": _read_csv(directory / "cea.csv"),
        "psa": psa,
        "psa_extra": {k: v for k, v in (psa or {}).items() if k not in _PSA_SHOWN},
        "psa_wtp_index": _wtp_index(psa) if psa else 0,
        "dsa": dsa,
        "figures": figures,
        "diagram": diagram(summary),
        # why the figures drawn from curves.csv are missing, when the run says why
        "curves_missing": None
        if per_line_outputs(summary)
        else "this run kept only OS from each sequence's start (simulation.outputs: "
        "sequence_os; run with --outputs full to draw it)",
        "held_fixed": held_fixed,
        "time_on_treatment": time_on_treatment_rows(summary, labels),
        "warnings": warnings,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def time_on_treatment_rows(summary: dict, labels: dict[str, str]) -> list[tuple]:
    """(sequence label, regimen, its line's PFS block, its time-on-treatment block) for
    every line of a run whose treatment can stop before the line ends."""
    rows = []
    for sid, seq in summary["sequences"].items():
        for block in seq.values():
            if not isinstance(block, dict):
                continue
            for rid, line in block.items():
                if not isinstance(line, dict):
                    continue
                for key, tot in line.items():
                    if key.startswith("time_on_treatment_"):
                        pfs = line["pfs_" + key.rsplit("_", 1)[1]]
                        rows.append((labels[sid], rid, pfs, tot))
    return rows


def _wtp_index(psa: dict) -> int:
    """Where the stated WTP is on the CEAC's grid (the nearest point)."""
    grid = psa["ceac"]["wtp"]
    return min(range(len(grid)), key=lambda i: abs(grid[i] - psa["willingness_to_pay"]))


def diagram(summary: dict) -> list[dict]:
    """Per sequence, its states in order and the share of patients each path takes:
    [{sequence, label, first, died_on_first, branches: [{to, share}], transported}]; empty
    for a run that tallied OS alone (``simulation.outputs: sequence_os``)."""
    # here: the report alone needs no numba at import
    from simseq.outcomes import line_key
    from simseq.report import per_line_outputs

    if not per_line_outputs(summary):
        return []
    out = []
    for sid, s in summary["sequences"].items():
        first = s.get("first_line", {})
        ends = first.get("line_end", {})
        branches = []
        line_no = 2
        while (key := line_key(line_no)) in s:
            for regimen, block in s[key].items():
                branches.append(
                    {"to": f"line {line_no}: {regimen}", "share": block["fraction_started"]}
                )
            line_no += 1
        if "no_further_therapy" in s:
            branches.append(
                {"to": "supportive care", "share": s["no_further_therapy"]["fraction_entered"]}
            )
        out.append(
            {
                "sequence": sid,
                "label": s.get("label") or sid,
                "first": f"line 1: {first.get('regimen', '?')}",
                "died_on_first": ends.get("death"),
                "branches": branches,
                "transported": bool(s.get("transported")),
            }
        )
    return out


def render(directory: Path) -> str:
    """The report's HTML text."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("simseq", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = _num
    # the union of the keys of a list of dicts, in order: the columns of a generic table
    env.filters["columns"] = lambda rows: list(dict.fromkeys(k for row in rows for k in row))
    env.filters["pct"] = lambda x: "-" if x in (None, "") else f"{100 * float(x):.1f}%"
    return env.get_template("report.html").render(**context(directory))


def _num(x, digits: int = 0) -> str:
    """A number from JSON or CSV text with separators; text stays text."""
    if x is None or x == "":
        return "-"
    try:
        value = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{value:,.{digits}f}"


def write_report(directory: str | Path, *, xlsx: bool = True) -> list[Path]:
    """Write report.html (and results.xlsx) into ``directory``, a scenario's results
    directory: staged and moved into place, under the directory's lock, replacing only
    these files. Returns the paths written."""
    from simseq.results_dir import results_writer

    directory = Path(directory)
    html = render(directory)  # before the lock: a missing summary.json stops here
    with results_writer(directory, "report", scenario=None, manifest=None) as stage:
        (stage.path / "report.html").write_text(html, encoding="utf-8")
        names = ["report.html"]
        if xlsx:
            from simseq.workbook import write_workbook

            write_workbook(directory, stage.path / "results.xlsx")
            names.append("results.xlsx")
    return [directory / n for n in names]
