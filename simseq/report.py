"""Tables, JSON/CSV writers and plots (written into a results directory's staging
folder: see ``simseq.results_dir``).

rich is imported by the table printers only: a ``--quiet`` command prints none and
writes its files through this module without it."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simseq.fit import Z95
from simseq.outcomes import SurvivalCurve

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


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


def survival_xmax(curves: dict[str, SurvivalCurve], remaining: float = 0.01) -> float:
    """Months where every curve has fallen to ``remaining`` (the horizon if one never
    does): beyond it the curves are flat at zero on a report page."""
    horizon = max(float(c.times[-1]) for c in curves.values())
    return min(horizon, max(c.quantile_time(remaining) for c in curves.values()))


def plot_survival(
    path: Path,
    curves: dict[str, SurvivalCurve],
    labels: dict[str, str],
    title: str,
    transported: set[str],
    x_max: float | None = None,
    *,
    points=(),
    draw=None,
):
    """OS from the start of first line, one labelled line per sequence with its Monte
    Carlo 95% band (PNG), x axis to ``x_max`` months (default ``survival_xmax``), and
    published ``points`` (``validation.os_points``) as black diamonds with their CIs.

    ``draw`` starts the drawing (``survival_plot.draw_survival`` and its arguments)
    and returns a function that waits for the file; default: draw here and now.
    ``simseq run`` passes a ``ForkedPlotter``'s, which draws in a child process that
    has imported matplotlib meanwhile. Returns ``draw``'s function that waits.
    """
    from simseq.forked_plot import draw_here
    from simseq.survival_plot import draw_survival

    args = survival_figure_args(curves, labels, title, transported, x_max, points)
    return (draw or draw_here)(draw_survival, path, *args)


def survival_figure_args(curves, labels, title, transported, x_max=None, points=()):
    """The arguments of ``survival_plot.draw_survival`` after ``path`` (see ``plot_survival``)."""
    from simseq.colours import sequence_styles
    from simseq.survival_plot import Line

    styles = sequence_styles(curves)
    lines, widest = [], 0.0
    for seq, c in curves.items():
        half = Z95 * c.se
        widest = max(widest, float(np.nanmax(half)))
        lines.append(
            Line(
                f"{labels.get(seq) or seq}{' †' if seq in transported else ''}",
                *styles[seq],
                c.times,
                c.survival,
                np.clip(c.survival - half, 0, 1),
                np.clip(c.survival + half, 0, 1),
            )
        )
    if x_max is None:
        x_max = survival_xmax(curves)
    n = min(c.n for c in curves.values())
    noise = "below ±0.1%" if widest < 0.0005 else f"at most ±{widest:.1%}"  # never "±0.0%"
    notes = [  # two lines: one is wider than the figure at large N
        f"Shaded: Monte Carlo 95% intervals (simulation noise at N = {n:,}; {noise} here).",
        "Input (parameter) uncertainty is not included in them: see the PSA.",
    ]
    horizon = max(float(c.times[-1]) for c in curves.values())
    if x_max < horizon:
        notes.append(
            f"Drawn to {x_max:.0f} months, where every curve is at or below 1%; "
            f"RMST, costs and QALYs run to the {horizon:g}-month horizon."
        )
    if points:
        notes.append(
            "Diamonds: published figures the model is not fitted to (validation), with their "
            "95% CIs where reported."
        )
    if transported:
        notes.append("† transported evidence: measured after a different prior line")
    return lines, title, x_max, notes, "Proportion alive (overall survival)", list(points)


def plain_number(x: float) -> str:
    """A number as a reader writes it: separators from 1,000 up, 4 significant figures
    below, never an exponent for the magnitudes of a model's inputs."""
    x = float(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:.4g}"  # no exponent between 1e-3 and 1,000


def _fmt(x, digits=1) -> str:
    return "NR" if x is None else f"{x:.{digits}f}"


def _pct(x, sign: bool = True) -> str:
    """Survival and proportions in one format: percent with one decimal (the sign left
    out under a header that says %)."""
    return "-" if x is None else f"{100 * x:.1f}" + ("%" if sign else "")


def _name(sid: str, label: str | None, transported: bool = False) -> str:
    """A sequence as a reader knows it: its label (its id when it has none)."""
    return (label or sid) + (" †" if transported else "")


def _table(title: str) -> Table:
    """A table without vertical rules: their columns buy the content room at 100 columns."""
    from rich import box
    from rich.table import Table

    return Table(title=title, title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)


def _legend(console: Console, text: str) -> None:
    console.print(text, style="dim")


def print_run_table(console: Console, summary: dict) -> None:
    """One row per sequence: OS from first line, first-line PFS and what followed (fits
    100 columns; abbreviations explained below the table)."""
    landmarks = summary["landmarks"]
    horizon = summary["horizon"]
    table = _table(
        f"{summary['title']}\n(N = {summary['n_patients']:,} per sequence, seed {summary['seed']})"
    )
    # numbers get fixed widths (their headers wrap), the labels what is left of 100 columns
    table.add_column("Sequence", min_width=16)
    table.add_column("Median OS, months (95% MC CI)", justify="right", width=11)
    table.add_column(f"RMST to month {horizon:g}, months", justify="right", width=8)
    table.add_column(
        "OS at " + "/".join(f"{t:g}" for t in landmarks) + " months, %",
        justify="right",
        width=max(8, 5 * len(landmarks) - 1),
    )
    table.add_column("Median 1L PFS, months", justify="right", width=7)
    table.add_column("Started 2L, %", justify="right", width=7)
    table.add_column("Median OS from 2L, months", justify="right", width=9)
    any_transported = False
    for seq, s in summary["sequences"].items():
        os_ = s["os_from_1l"]
        lo, hi = os_["median_ci95"]
        second = s.get("second_line_any")
        any_transported |= bool(s.get("transported"))
        table.add_row(
            _name(seq, s.get("label"), bool(s.get("transported"))),
            f"{_fmt(os_['median'])}\n({_fmt(lo)}-{_fmt(hi)})",
            _fmt(os_["rmst"]),
            "/".join(_pct(os_["survival_at"][f"{t:g}"], sign=False) for t in landmarks),
            _fmt(s["pfs_1l"]["median"]) if "pfs_1l" in s else "-",
            _pct(second["fraction_started"], sign=False) if second else "-",
            _fmt(second["os_from_2l"]["median"]) if second else "-",
        )
    console.print(table)
    _legend(
        console,
        "MC CI: Monte Carlo 95% interval (simulation noise at this N, not input uncertainty). "
        f"RMST: restricted mean survival, the mean months alive within the {horizon:g}-month "
        "horizon. 1L, 2L: first, second line. NR: not reached."
        + (
            " †: transported evidence (measured after a different prior line)."
            if any_transported
            else ""
        ),
    )
    if not per_line_outputs(summary):
        console.print(f"[yellow]note:[/yellow] {summary['outputs']['note']}")
    for w in summary.get("warnings", []):
        console.print(f"[yellow]note:[/yellow] {w}")


def per_line_outputs(summary: dict) -> bool:
    """Whether a run's summary holds every line's outcomes (``simulation.outputs: full``;
    summaries written before that key existed always did)."""
    return summary.get("outputs", {}).get("tallied", "full") == "full"


def print_validation_mape(console: Console, summary: dict) -> None:
    """One line: the mean absolute percentage error of the validation rows (nothing
    without a ``validation:`` section)."""
    mape = summary.get("validation_mape")
    if mape is None:
        return
    rows = summary["validation"]
    n_targets = sum(r["role"] != "validation" for r in rows)
    left_out = f"; {n_targets} calibration target rows left out" if n_targets else ""
    if mape["percent"] is None:
        console.print(f"validation: no row has a simulated value{left_out} (validation.csv)")
        return
    console.print(
        f"validation: mean absolute percentage error {mape['percent']:.1f}% over "
        f"{mape['n_rows']} rows ({len({r['evidence'] for r in rows if r['role'] == 'validation'})} "
        f"published results"
        f"{left_out}); each row in validation.csv and validation.png"
    )


def print_bayes_table(console: Console, posterior) -> None:
    """The posterior mean of each free parameter and each target's predictive check."""
    from rich.table import Table

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
    """Each calibration target against the value the model achieves (months)."""
    table = _table("Calibration")
    table.add_column("Target (evidence)", max_width=30)
    table.add_column("Quantity", max_width=18)
    for col in ("Target, months", "Achieved, months", "Rel. error", "Solved median, months"):
        table.add_column(col, justify="right", max_width=9)
    table.add_column("Method")
    for r in rows:
        table.add_row(
            f"{r['regimen']} ({', '.join(_sources(r['target_id'])) or r['target_id']})",
            r["quantity"].replace("_", " ").replace(" os ", " OS "),
            f"{r['target']:.4f}",
            f"{r['achieved']:.4f}",
            f"{r['rel_error']:+.3%}",
            f"{r['solved_median']:.4f}",
            r["method"],
        )
    console.print(table)


def _sources(evidence: str) -> list[str]:
    """The sources (author + year) an evidence id or a pool of them cites."""
    return re.findall(r"(?<=\.)[a-z]+20\d\d[a-z]?(?=\.|\)|$)", evidence)


_STATUS = {"extendedly dominated": "ext. dominated", "non-dominated": "on frontier"}


def print_cea_table(console: Console, cea: dict, labels: dict[str, str] | None = None) -> None:
    """Discounted costs and QALYs per sequence, the incremental analysis and NMB."""
    cur = cea["currency"]
    labels = labels or {}
    table = _table(
        f"Cost-effectiveness ({cur} {cea['price_year']}; discounted "
        f"{cea['discount_costs']:.1%} costs, {cea['discount_qalys']:.1%} QALYs)"
    )
    table.add_column("Sequence", max_width=26, overflow="fold")
    table.add_column(f"Costs, {cur}", justify="right")
    table.add_column("QALYs", justify="right")
    table.add_column("LYs", justify="right")
    table.add_column("Status", max_width=14)
    table.add_column(f"ICER, {cur}/QALY", justify="right", max_width=10)
    table.add_column(f"NMB, {cur}", justify="right")
    per_seq = cea["sequences"]
    for row in cea["icer_table"]:
        s = row["sequence"]
        table.add_row(
            _name(s, labels.get(s)),
            f"{per_seq[s]['costs_discounted']['mean']:,.0f}",
            f"{per_seq[s]['qalys_discounted']['mean']:.3f}",
            f"{per_seq[s]['lys_discounted']['mean']:.3f}",
            _STATUS.get(row["status"], row["status"]),
            "-" if row["icer"] is None else f"{row['icer']:,.0f}",
            f"{cea['nmb'][s]:,.0f}",
        )
    console.print(table)
    _legend(
        console,
        "Sorted by cost. ICER: against the previous option on the efficiency frontier; "
        "ext. dominated: extendedly dominated. LYs: discounted life-years. "
        f"NMB: net monetary benefit at a WTP of {cea['willingness_to_pay']:,.0f} {cur} per QALY.",
    )


def print_structural_table(console: Console, rows: list[dict]) -> None:
    """The scenario-analysis table: one row per (alternative, sequence)."""
    from rich.table import Table

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


def print_comparisons(console: Console, rows: list[dict]) -> None:
    """Each comparison's difference in median OS, common population beside as observed."""
    from rich.table import Table

    table = Table(
        title="Median OS from first-line start (months): difference, first minus second",
        caption=(
            "Common population: every sequence in the scenario's patient mix, each regimen "
            "adjusted to it (the model's answer). As observed: each sequence in its "
            "second-line regimen's cohort mix, as the unadjusted cohorts compared them. "
            "Intervals: Monte Carlo 95%."
        ),
    )
    for name in ("comparison", "common population", "as observed", "as observed - common"):
        table.add_column(name, justify="left" if name == "comparison" else "right")

    def cell(block: dict) -> str:
        d, (lo, hi) = block["difference_months"], block["difference_ci95"]
        return "-" if d is None else f"{d:.2f} ({lo:.2f} to {hi:.2f})"

    for r in rows:
        gap = r["as_observed_minus_common"]
        table.add_row(
            r["label"],
            cell(r["common_population"]),
            cell(r["as_observed"]),
            "-" if gap is None else f"{gap:+.2f}",
        )
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
    cur, wtp = summary["currency"], summary["willingness_to_pay"]
    labels = summary.get("labels", {})
    table = _table(
        f"PSA: {summary['n_draws']:,} draws x {summary['n_patients_per_draw']:,} patients "
        "(means, 95% intervals across draws)"
    )
    table.add_column("Sequence", max_width=26, overflow="fold")
    table.add_column(f"Costs, {cur}", justify="right")
    table.add_column("QALYs", justify="right")
    table.add_column("Median OS, months", justify="right", max_width=12)
    table.add_column(f"P(best) at WTP {wtp:,.0f} {cur}/QALY", justify="right", max_width=14)
    wtp_idx = summary["ceac"]["wtp"].index(min(summary["ceac"]["wtp"], key=lambda w: abs(w - wtp)))

    def show(block: dict, spec: str) -> str:
        def num(v):
            return "NR" if v is None else format(v, spec)

        lo, hi = block["ci95"]
        return f"{num(block['mean'])}\n({num(lo)}-{num(hi)})"

    for s, block in summary["sequences"].items():
        table.add_row(
            _name(s, labels.get(s)),
            show(block["costs"], ",.0f"),
            show(block["qalys"], ".3f"),
            show(block["os_median"], ".1f"),
            _pct(summary["ceac"]["prob_best"][s][wtp_idx]),
        )
    console.print(table)
    _legend(
        console,
        "P(best): share of draws in which the sequence has the highest net monetary benefit. "
        "NR: not reached within the horizon.",
    )
    for w in summary["warnings"]:
        console.print(f"[yellow]note:[/yellow] {w}")


def print_dsa_table(console: Console, summary: dict) -> None:
    """The 15 inputs that move incremental NMB most, at their low and high values."""
    focus, reference, cur = summary["focus"], summary["reference"], summary["currency"]
    labels = summary.get("labels", {})
    table = _table(
        f"One-way sensitivity: incremental NMB, {_name(focus, labels.get(focus))} vs "
        f"{_name(reference, labels.get(reference))} ({cur}; base {summary['base']['inc_nmb']:,.0f})"
    )
    table.add_column("Input (unit)", max_width=44, overflow="fold")
    table.add_column("Low input", justify="right")
    table.add_column("High input", justify="right")
    table.add_column(f"NMB at low, {cur}", justify="right", max_width=10)
    table.add_column(f"NMB at high, {cur}", justify="right", max_width=10)
    # an input that cannot move the NMB moves it by rounding only: not listed
    moved = [x for x in summary["rows"] if round(x["inc_nmb_low"]) != round(x["inc_nmb_high"])]
    for x in moved[:15]:
        name = x["parameter"] + (f", {x['unit']}" if x.get("unit") else "")
        table.add_row(
            ("ILLUSTRATIVE " if x.get("illustrative") else "") + name,
            x["low_input"],
            x["high_input"],
            f"{x['inc_nmb_low']:,.0f}",
            f"{x['inc_nmb_high']:,.0f}",
        )
    console.print(table)
    _legend(
        console,
        f"The {min(15, len(moved))} of {len(summary['rows'])} inputs that move it most, at "
        "the 2.5% and 97.5% points of their PSA distributions, the others at base. "
        "ILLUSTRATIVE: a placeholder with no evidence behind it.",
    )
    for w in summary["warnings"]:
        console.print(f"[yellow]note:[/yellow] {w}")
