"""The survival figure itself, from plain arrays (imports only NumPy and matplotlib).

Kept apart from ``simseq.report`` so that a process which has imported nothing
else of simseq (``simseq.forked_plot``'s child) can draw it cheaply.
"""

from pathlib import Path

import numpy as np


def draw_survival(
    path: Path,
    lines: list[tuple[str, np.ndarray, np.ndarray]],
    title: str,
    x_max: float,
    note: str = "",
) -> None:
    """Write a PNG of survival curves: ``lines`` of (label, times in months, survival),
    x axis 0..``x_max`` months, ``note`` as a footnote when given."""
    import matplotlib

    # labels and titles are the user's text: a "$" is a dollar, never mathtext to parse
    with matplotlib.rc_context({"text.parse_math": False}):
        _draw(path, lines, title, x_max, note)


def _draw(path, lines, title, x_max, note) -> None:
    # Figure + Agg canvas rather than pyplot: no global state, no GUI backend, faster start-up
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, times, survival in lines:
        ax.plot(times, survival, lw=1.6, label=label)
    ax.set_xlim(0, x_max)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("Months since start of first-line treatment")
    ax.set_ylabel("Proportion alive (overall survival)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, style="italic")
    # fixed margins for this fixed size: tight_layout would cost a second draw (~0.1 s)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.13, top=0.9)
    fig.savefig(path)
