"""The figures only the report draws, from a results directory's curves.csv: PFS of each
line, time on each line of treatment, and state occupancy (PNG bytes).

Sequences are named by label and coloured by id (``simseq.colours``), as in every
other figure. Built on a ``Figure`` with an Agg canvas, never through pyplot.
"""

from __future__ import annotations

import io
import textwrap

import numpy as np
import pandas as pd

from simseq.colours import sequence_styles

FIGSIZE = (8.0, 5.0)  # inches
DPI = 150
# occupancy bands: lines in blues and greens, then progression, supportive care, death
OCCUPANCY_COLOURS = ("#0072B2", "#56B4E9", "#009E73", "#E69F00", "#CC79A7", "#D55E00")


def _figure(n_panels: int = 1, *, sharey: bool = True):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, sharey=sharey, squeeze=False)[0]
    return fig, axes


def png(fig) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _note(fig, text: str) -> None:
    """A caption under the axes, wrapped to the figure's width."""
    fig.supxlabel(
        textwrap.fill(text, 150), x=0.01, ha="left", fontsize=7, style="italic", color="0.3"
    )


def _to_one_percent(frame: pd.DataFrame) -> float:
    """Months where every curve of ``frame`` (value column) has fallen to 1%."""
    ends = [
        g.time_months[g.value <= 0.01].min() if (g.value <= 0.01).any() else g.time_months.max()
        for _, g in frame.groupby(["sequence", "curve"])
    ]
    return float(max(ends))


def pfs_figure(curves: pd.DataFrame, labels: dict[str, str]):
    """One panel per line: progression-free survival from the start of that line, one
    curve per sequence that reaches the line, with Monte Carlo 95% bands."""
    pfs = curves[curves.curve.str.startswith("pfs_line_")]
    lines = sorted(pfs.curve.unique(), key=lambda c: int(c.rsplit("_", 1)[1]))
    fig, axes = _figure(max(1, len(lines)))
    styles = sequence_styles(pfs.sequence.unique())
    x_max = _to_one_percent(pfs) if len(pfs) else 1.0
    for ax, curve in zip(axes, lines, strict=False):
        for sid, g in pfs[pfs.curve == curve].groupby("sequence", sort=False):
            colour, style = styles[sid]
            ax.fill_between(g.time_months, g.ci95_low, g.ci95_high, color=colour, alpha=0.3, lw=0)
            ax.plot(
                g.time_months, g.value, color=colour, ls=style, lw=1.6, label=labels.get(sid) or sid
            )
        line_no = int(curve.rsplit("_", 1)[1])
        ax.set_title(f"Line {line_no}: from the start of line {line_no}", fontsize=10)
        ax.set_xlabel("Months since the start of the line")
        ax.set_xlim(0, x_max)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Proportion progression-free and on the line")
    handles, names = [], []
    for ax in axes:
        for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
            if n not in names:
                handles.append(h)
                names.append(n)
    wrapped = [textwrap.fill(n, 28) for n in names]
    fig.legend(handles, wrapped, loc="outside right upper", fontsize=7, frameon=False)
    _note(
        fig,
        "A line ends at progression, death or deterioration: this is the model's PFS and its "
        "time on that line. Shaded: Monte Carlo 95% intervals (input uncertainty not included).",
    )
    return fig


def time_on_line_figure(curves: pd.DataFrame, labels: dict[str, str]):
    """Proportion of all patients on each line of treatment, by months since first-line
    start (from the occupancy of the line states)."""
    on = curves[curves.curve.str.startswith("occupancy: on treatment")]
    fig, (ax,) = _figure()
    styles = sequence_styles(on.sequence.unique())
    line_styles = {}
    for (sid, curve), g in on.groupby(["sequence", "curve"], sort=False):
        colour, _ = styles[sid]
        style = line_styles.setdefault(curve, ("-", "--", ":", "-.")[len(line_styles) % 4])
        line_no = curve.rsplit(" ", 1)[1]
        ax.plot(
            g.time_months,
            g.value,
            color=colour,
            ls=style,
            lw=1.6,
            label=textwrap.fill(f"{labels.get(sid) or sid}: line {line_no}", 40),
        )
    ax.set_xlim(0, _to_one_percent(on) if len(on) else 1.0)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Months since start of first-line treatment")
    ax.set_ylabel("Proportion of patients on the line")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=7, frameon=False)
    _note(
        fig,
        "Time on each line: it ends at progression, death or deterioration. Treatment can "
        "stop earlier (time_on_treatment: the table below). Sequences that share a first "
        "line share its curve.",
    )
    return fig


def occupancy_figure(curves: pd.DataFrame, labels: dict[str, str]):
    """One panel per sequence: the share of patients in each state group over time
    (stacked), the rest dead."""
    occ = curves[curves.curve.str.startswith("occupancy: ")]
    sequences = list(dict.fromkeys(occ.sequence))
    n = len(sequences)
    cols = min(3, max(1, n))
    rows = int(np.ceil(n / cols)) if n else 1
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 2.6 * rows + 1.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False).ravel()
    groups = sorted(occ.curve.unique(), key=_occupancy_order)
    colours = {g: OCCUPANCY_COLOURS[k % len(OCCUPANCY_COLOURS)] for k, g in enumerate(groups)}
    x_max = 1.0
    for ax, sid in zip(axes, sequences, strict=False):
        frame = occ[occ.sequence == sid].pivot(index="time_months", columns="curve", values="value")
        present = [g for g in groups if g in frame]
        alive = frame[present].sum(axis=1)
        below = alive.index[alive <= 0.01]
        x_max = max(x_max, float(below.min()) if len(below) else float(alive.index.max()))
        ax.stackplot(
            frame.index,
            *[frame[g].to_numpy() for g in present],
            colors=[colours[g] for g in present],
            labels=[g.removeprefix("occupancy: ") for g in present],
        )
        ax.set_title(textwrap.fill(labels.get(sid) or sid, 36), fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[:n]:
        ax.set_xlim(0, x_max)
        ax.set_ylim(0, 1)
    fig.supylabel("Proportion of patients (white: dead)", fontsize=9)
    handles, names = axes[0].get_legend_handles_labels()
    seen = dict(zip(names, handles, strict=True))
    for ax in axes[1:n]:
        for h, name in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(name, h)
    fig.legend(
        list(seen.values()), list(seen), loc="outside lower center", ncol=3, fontsize=7,
        frameon=False, title="Months since start of first-line treatment; state:",
        title_fontsize=7,
    )  # fmt: skip
    return fig


def _occupancy_order(curve: str) -> tuple[int, str]:
    """Lines first (in order), then after progression, then supportive care."""
    if "line " in curve:
        return (0, curve)
    return (1 if "progressed" in curve else 2, curve)


def calibration_figure(curves: pd.DataFrame, targets: pd.DataFrame, labels: dict[str, str]):
    """One panel per calibration target: OS from the start of the line of its regimen in
    each sequence that gives it, with the published median and its 95% interval as a
    point at S = 0.5 (what the calibrator solved the post-progression median to meet)."""
    fig, axes = _figure(max(1, len(targets)))
    os_ = curves[curves.curve.str.startswith("os_from_line_")]
    styles = sequence_styles(os_.sequence.unique())
    x_max = 1.0
    for ax, target in zip(axes, targets.itertuples(), strict=False):
        mine = os_[os_.curve.str.endswith(f": {target.regimen}")]
        for (sid, _), g in mine.groupby(["sequence", "curve"], sort=False):
            colour, style = styles[sid]
            ax.fill_between(g.time_months, g.ci95_low, g.ci95_high, color=colour, alpha=0.3, lw=0)
            ax.plot(
                g.time_months, g.value, color=colour, ls=style, lw=1.4,
                label=textwrap.fill(labels.get(sid) or sid, 28),
            )  # fmt: skip
        low, high = target.ci95_low_months, target.ci95_high_months
        has_ci = pd.notna(low) and pd.notna(high)
        ax.errorbar(
            [target.median_months],
            [0.5],
            xerr=[[target.median_months - low], [high - target.median_months]] if has_ci else None,
            fmt="D",
            color="black",
            ms=5,
            capsize=4,
            zorder=5,
            label=textwrap.fill(f"published: {target.evidence}", 28),
        )
        x_max = max(x_max, 3.0 * target.median_months, high if has_ci else 0.0)
        ax.set_title(f"{target.regimen}: OS from line start", fontsize=10)
        ax.set_xlabel("Months since the start of the line")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False, loc="upper right")
    for ax in axes:
        ax.set_xlim(0, x_max)
    axes[0].set_ylabel("Proportion alive")
    _note(
        fig,
        "Diamonds: the published median OS from the start of the line with its 95% interval, "
        "the calibration targets. Curves: the model's OS from the start of that line in each "
        "sequence that gives the regimen there; shaded: Monte Carlo 95% intervals.",
    )
    return fig
