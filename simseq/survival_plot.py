"""The survival figure itself, from plain arrays (imports only NumPy, matplotlib and
``simseq.colours``).

Kept apart from ``simseq.report`` so that a process which has imported nothing
else of simseq (``simseq.forked_plot``'s child) can draw it cheaply.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np


class Line(NamedTuple):
    """One curve: its label, colour and line style, times (months), survival and its
    interval, each float64 (n_points,)."""

    label: str
    colour: str
    style: str
    times: np.ndarray
    survival: np.ndarray
    low: np.ndarray
    high: np.ndarray


def draw_survival(
    path: Path,
    lines: list[Line],
    title: str,
    x_max: float,
    notes: list[str],
    y_label: str = "Proportion alive (overall survival)",
    points: list[tuple] = (),
) -> None:
    """Write a PNG of survival curves with shaded intervals: x axis 0..``x_max``
    months, ``notes`` as caption lines under the axes, ``points`` (label, x, y, x CI or
    None, y CI or None) as black diamonds with error bars."""
    import matplotlib

    # labels and titles are the user's text: a "$" is a dollar, never mathtext to parse
    with matplotlib.rc_context({"text.parse_math": False}):
        # zlib level 1: encoding took a third of the drawing that `simseq run` waits
        # for (~45 ms of ~140); the file grows from about 60 to 80 kB
        fig = figure(lines, title, x_max, notes, y_label, points)
        fig.savefig(path, pil_kwargs={"compress_level": 1})


def figure(lines, title, x_max, notes, y_label, points=()):
    """The matplotlib Figure (tests query its artists)."""
    # Figure + Agg canvas rather than pyplot: no global state, no GUI backend, faster start-up
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for line in lines:
        ax.fill_between(line.times, line.low, line.high, color=line.colour, alpha=0.3, lw=0)
        ax.plot(
            line.times, line.survival, lw=1.6, color=line.colour, ls=line.style, label=line.label
        )
    for label, x, y, x_ci, y_ci in points:
        ax.errorbar(
            [x],
            [y],
            xerr=None if x_ci is None else [[x - x_ci[0]], [x_ci[1] - x]],
            yerr=None if y_ci is None else [[y - y_ci[0]], [y_ci[1] - y]],
            fmt="D",
            color="black",
            ms=5,
            capsize=3,
            zorder=5,
            label=label,
        )
    ax.set_xlim(0, x_max)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("Months since start of first-line treatment")
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    for k, note in enumerate(notes):
        fig.text(0.01, 0.01 + 0.03 * (len(notes) - 1 - k), note, fontsize=7, style="italic")
    # fixed margins for this fixed size: tight_layout would cost a second draw (~0.1 s)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.1 + 0.03 * len(notes), top=0.9)
    return fig
