"""Tables, JSON/CSV writers and plots (written into a results directory's staging
folder: see ``simseq.results_dir``)."""

import csv
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from simseq.fit import Z95
from simseq.outcomes import SurvivalCurve


def write_json(path: Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows of equal keys to CSV (header from the first row)."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def survival_rows(curves: dict[str, SurvivalCurve], step: float = 0.1) -> list[dict]:
    """Tidy OS curves: sequence, time (months), survival and its Monte Carlo 95% interval."""
    rows = []
    for seq, curve in curves.items():
        grid = np.round(np.arange(0.0, curve.times[-1] + 1e-9, step), 6)
        s = np.interp(grid, curve.times, curve.survival)
        half = Z95 * np.interp(grid, curve.times, curve.se)
        low, high = np.clip(s - half, 0, 1), np.clip(s + half, 0, 1)
        rows += [
            {
                "sequence": seq,
                "time_months": float(t),
                "survival": round(float(v), 6),
                "ci95_low": round(float(lo), 6),
                "ci95_high": round(float(hi), 6),
            }
            for t, v, lo, hi in zip(grid, s, low, high, strict=True)
        ]
    return rows


def plot_survival(
    path: Path,
    curves: dict[str, SurvivalCurve],
    labels: dict[str, str],
    title: str,
    transported: set[str],
    x_max: float | None = None,
    *,
    draw=None,
) -> None:
    """OS from the start of first line, one labelled line per sequence (PNG).

    ``draw`` runs the drawing (``survival_plot.draw_survival`` and its arguments);
    default: here. ``simseq run`` passes a ``ForkedPlotter``'s, which draws in a
    child process that has imported matplotlib meanwhile.
    """
    from simseq.survival_plot import draw_survival

    lines = [
        (f"{labels.get(seq, seq)}{' †' if seq in transported else ''}", c.times, c.survival)
        for seq, c in curves.items()
    ]
    if x_max is None:
        # stop where every curve is below 2%: the tail is uninformative on a report page
        horizon = max(float(c.times[-1]) for c in curves.values())
        x_max = min(horizon, 1.05 * max(c.quantile_time(0.02) for c in curves.values()))
    note = "† transported evidence: measured after a different prior line" if transported else ""
    (draw or (lambda fn, *args: fn(*args)))(draw_survival, path, lines, title, x_max, note)


def _fmt(x, digits=1) -> str:
    return "NR" if x is None else f"{x:.{digits}f}"


def print_run_table(console: Console, summary: dict) -> None:
    """One row per sequence: OS from first line, first-line PFS and what followed."""
    landmarks = summary["landmarks"]
    table = Table(
        title=f"{summary['title']}  (N = {summary['n_patients']:,} per sequence, "
        f"seed {summary['seed']})",
        title_style="bold",
    )
    table.add_column("sequence")
    table.add_column("median OS (95% MC CI)", justify="right")
    table.add_column(f"RMST {summary['horizon']:g} mo", justify="right")
    for t in landmarks:
        table.add_column(f"OS {t:g} mo", justify="right")
    table.add_column("median PFS 1L", justify="right")
    table.add_column("2L started", justify="right")
    table.add_column("median OS from 2L", justify="right")
    for seq, s in summary["sequences"].items():
        os_ = s["os_from_1l"]
        lo, hi = os_["median_ci95"]
        second = s.get("second_line_any")
        table.add_row(
            seq + (" †" if s.get("transported") else ""),
            f"{_fmt(os_['median'], 2)} ({_fmt(lo, 2)}-{_fmt(hi, 2)})",
            _fmt(os_["rmst"], 2),
            *[_fmt(os_["survival_at"][f"{t:g}"], 3) for t in landmarks],
            _fmt(s["pfs_1l"]["median"], 2),
            f"{second['fraction_started']:.1%}" if second else "-",
            _fmt(second["os_from_2l"]["median"], 2) if second else "-",
        )
    console.print(table)
    for w in summary.get("warnings", []):
        console.print(f"[yellow]note:[/yellow] {w}")


def print_bayes_table(console: Console, posterior) -> None:
    """The posterior mean of each free parameter and each target's predictive check."""
    r = posterior.imis
    free = Table(
        title=f"Bayesian calibration: ESS {r.ess:.0f}, {r.n_evaluations:,} evaluations, "
        f"{r.n_iterations} IMIS iterations, {posterior.seconds:.1f} s",
        title_style="bold",
    )
    for col in ("free parameter", "unit", "prior median", "posterior mean", "95% interval"):
        free.add_column(col, justify="left" if col in ("free parameter", "unit") else "right")
    for j, f in enumerate(posterior.free):
        lo, hi = np.quantile(posterior.sample[:, j], [0.025, 0.975])
        free.add_row(
            f.path, f.unit, f"{f.prior.median:.4g}", f"{posterior.mean[j]:.4g}",
            f"{lo:.4g} - {hi:.4g}",
        )  # fmt: skip
    console.print(free)
    fit = Table(title="Targets: published vs posterior predictive", title_style="bold")
    for col in ("target", "unit", "published", "model 95%", "replicated 95%", "inside"):
        fit.add_column(col, justify="left" if col in ("target", "unit") else "right")
    for t in posterior.targets:
        fit.add_row(
            t.where, t.unit, f"{t.published:.4g}", f"{t.model_lo:.4g} - {t.model_hi:.4g}",
            f"{t.replicated_lo:.4g} - {t.replicated_hi:.4g}", "yes" if t.inside else "NO",
        )  # fmt: skip
    console.print(fit)


def print_calibration_table(console: Console, rows: list[dict]) -> None:
    table = Table(title="Calibration", title_style="bold")
    columns = (
        "target_id",
        "quantity",
        "regimen",
        "target",
        "achieved",
        "rel_error",
        "solved",
        "method",
    )
    for col in columns:
        table.add_column(
            col, justify="left" if col in ("target_id", "quantity", "regimen") else "right"
        )
    for r in rows:
        table.add_row(
            r["target_id"],
            r["quantity"],
            r["regimen"],
            f"{r['target']:.4f}",
            f"{r['achieved']:.4f}",
            f"{r['rel_error']:+.3%}",
            f"{r['solved_median']:.4f}",
            r["method"],
        )
    console.print(table)


def print_cea_table(console: Console, cea: dict) -> None:
    """Discounted costs and QALYs per sequence, the incremental analysis and NMB."""
    cur = cea["currency"]
    table = Table(
        title=f"Cost-effectiveness ({cur} {cea['price_year']}, discounted "
        f"{cea['discount_costs']:.1%} costs / {cea['discount_qalys']:.1%} QALYs, "
        f"WTP {cea['willingness_to_pay']:,.0f} {cur}/QALY)",
        title_style="bold",
    )
    for col in ("sequence", "costs", "QALYs", "LYs", "status", "ICER (frontier)", "NMB"):
        table.add_column(col, justify="left" if col in ("sequence", "status") else "right")
    per_seq = cea["sequences"]
    for row in cea["icer_table"]:
        s = row["sequence"]
        table.add_row(
            s,
            f"{per_seq[s]['costs_discounted']['mean']:,.0f}",
            f"{per_seq[s]['qalys_discounted']['mean']:.3f}",
            f"{per_seq[s]['lys_discounted']['mean']:.3f}",
            row["status"],
            "-" if row["icer"] is None else f"{row['icer']:,.0f}",
            f"{cea['nmb'][s]:,.0f}",
        )
    console.print(table)


def print_structural_table(console: Console, rows: list[dict]) -> None:
    """The scenario-analysis table: one row per (alternative, sequence)."""
    econ = "qalys_discounted" in rows[0]
    table = Table(title="Structural alternatives side by side (base-case inputs each)")
    table.add_column("alternative")
    table.add_column("sequence")
    table.add_column("median OS (months)", justify="right")
    table.add_column("RMST (months)", justify="right")
    if econ:
        table.add_column("QALYs (disc.)", justify="right")
        table.add_column("NMB", justify="right")
    for r in rows:
        cells = [r["alternative"], r["sequence_label"], f"{r['median_os_months']:.2f}"]
        cells.append(f"{r['rmst_months']:.2f}")
        if econ:
            cells += [f"{r['qalys_discounted']:.3f}", f"{r['nmb']:,.0f}"]
        table.add_row(*cells)
    console.print(table)


def print_held_fixed(console: Console, held_fixed: list[dict]) -> None:
    """The inputs a PSA held at their base value, grouped by why (psa_summary.json has each)."""
    if not held_fixed:
        console.print("held fixed in this PSA: nothing (every input is drawn or calibrated)")
        return
    by_reason: dict[str, list[str]] = {}
    for h in held_fixed:
        by_reason.setdefault(h["because"], []).append(h["name"].removeprefix("value:"))
    console.print(
        f"held fixed in this PSA ({len(held_fixed)} inputs; each with its reason in "
        "psa_summary.json held_fixed):"
    )
    for reason, names in by_reason.items():
        console.print(f"  - {reason}: {', '.join(names)}")


def print_psa_table(console: Console, summary: dict) -> None:
    """The PSA's means and 95% intervals across draws, and P(best) at the stated WTP."""
    cur = summary["currency"]
    table = Table(
        title=f"PSA: {summary['n_draws']:,} draws x {summary['n_patients_per_draw']:,} "
        f"patients (means, 95% intervals across draws)",
        title_style="bold",
    )
    for col in ("sequence", f"costs ({cur})", "QALYs", "median OS (months)", "P(best) at WTP"):
        table.add_column(col, justify="left" if col == "sequence" else "right")
    wtp_idx = summary["ceac"]["wtp"].index(
        min(summary["ceac"]["wtp"], key=lambda w: abs(w - summary["willingness_to_pay"]))
    )

    def show(block: dict, spec: str) -> str:
        def num(v):
            return "NR" if v is None else format(v, spec)

        lo, hi = block["ci95"]
        return f"{num(block['mean'])} ({num(lo)}-{num(hi)})"

    for s, block in summary["sequences"].items():
        table.add_row(
            s,
            show(block["costs"], ",.0f"),
            show(block["qalys"], ".3f"),
            show(block["os_median"], ".2f"),
            f"{summary['ceac']['prob_best'][s][wtp_idx]:.2f}",
        )
    console.print(table)
    for w in summary["warnings"]:
        console.print(f"[yellow]note:[/yellow] {w}")


def print_dsa_table(console: Console, summary: dict) -> None:
    """The 15 inputs that move incremental NMB most, at their low and high values."""
    focus, reference, cur = summary["focus"], summary["reference"], summary["currency"]
    table = Table(
        title=f"One-way sensitivity: incremental NMB of {focus} vs {reference} "
        f"({cur}; base {summary['base']['inc_nmb']:,.0f})",
        title_style="bold",
    )
    for col in ("parameter", "low input", "high input", "NMB at low", "NMB at high"):
        table.add_column(col, justify="left" if col == "parameter" else "right")
    for x in summary["rows"][:15]:
        table.add_row(
            x["parameter"],
            x["low_input"],
            x["high_input"],
            f"{x['inc_nmb_low']:,.0f}",
            f"{x['inc_nmb_high']:,.0f}",
        )
    console.print(table)
    for w in summary["warnings"]:
        console.print(f"[yellow]note:[/yellow] {w}")
