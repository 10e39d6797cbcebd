"""validation.png: each published result beside the same estimator on simulated patients.

A forest plot with one panel per statistic, each on its own scale (medians in months,
survival and proportions from 0 to 1, hazard ratios on a log axis about 1). Per row:
the published value with its 95% CI (black diamond) and the simulated value with its
Monte Carlo 95% CI (a dot in the sequence's colour). Calibration targets are drawn
hollow and say so: they are not validation.
"""

from __future__ import annotations

from pathlib import Path

from simseq.colours import sequence_colour
from simseq.validation_roles import ROLE_TARGET

PANELS = (
    ("median", "Median, months"),
    ("landmark_survival", "Survival at the landmark (proportion alive)"),
    ("proportion", "Proportion of patients"),
    ("hazard_ratio", "Hazard ratio (log scale)"),
)
OUTCOMES = {"os": "OS", "pfs": "PFS"}
HR_TICKS = (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 10.0)


def _origin(origin: str | None) -> str:
    if origin == "sequence_start":
        return "1L start"
    return f"{origin.removeprefix('line_')}L start"


def _starters(subgroup: str) -> str:
    """ "started lenvatinib at line 2" -> "lenvatinib 2L starters"."""
    regimen, line = subgroup.removeprefix("started ").split(" at line ")
    regimen = "" if regimen == "any regimen" else f"{regimen} "
    return f"{regimen}{line}L starters"


def row_label(r: dict) -> str:
    """Three lines: who reported it, what, and in which simulated sequence it was read."""
    stat = r["statistic"]
    if stat == "proportion":
        line = int(r["subgroup"].rsplit(" ", 1)[1])
        what = f"share starting {line}L of those alive at the end of {line - 1}L"
    else:
        what = f"{OUTCOMES[r['outcome']]} from {_origin(r['origin'])}"
        if stat == "landmark_survival":
            what = f"{what} at {r['month']:g} months"
        if stat == "hazard_ratio":
            what = f"{what}, {_starters(r['subgroup'])} vs {_starters(r['reference'])}"
        elif r["subgroup"]:
            what = f"{what}, {_starters(r['subgroup'])}"
    target = " [calibration target]" if r["role"] == ROLE_TARGET else ""
    return f"{r['label']}{target}:\n{what}\nin {r['sequence_label']}"


def figure(validation_rows: list[dict], title: str, n_patients: int, mape: dict):
    """The matplotlib Figure of validation.png (rows as in summary.json)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    panels = [(s, name) for s, name in PANELS if any(r["statistic"] == s for r in validation_rows)]
    counts = [sum(r["statistic"] == s for r in validation_rows) for s, _ in panels]
    height = 1.8 + sum(0.75 * n + 0.9 for n in counts)
    fig = Figure(figsize=(8.0, height), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=[n + 1.2 for n in counts])
    for ax, (stat, name) in zip(axes[:, 0], panels, strict=True):
        rows = [r for r in validation_rows if r["statistic"] == stat]
        _panel(ax, rows, stat, name)
    shown = (
        f"mean absolute percentage error {mape['percent']:.1f}% over {mape['n_rows']} "
        "validation rows\n(calibration targets left out)"
        if mape.get("percent") is not None
        else "no validation rows with a simulated value"
    )
    fig.suptitle(
        f"{title}\nPublished results vs their study's estimator (origin, subgroup) applied\n"
        f"to up to {n_patients:,} simulated patients per sequence\n{shown}",
        fontsize=9,
    )
    handles = [
        Line2D(
            [], [], color="black", marker="D", linestyle="-",
            label="published (95% CI where reported)",
        ),
        Line2D(
            [], [], color="grey", marker="o", linestyle="-", label="simulated (Monte Carlo 95% CI)"
        ),
        Line2D(
            [], [], color="grey", marker="o", markerfacecolor="white", linestyle="",
            label="hollow: calibration target",
        ),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return fig


def _panel(ax, rows: list[dict], stat: str, name: str) -> None:
    n = len(rows)
    for i, r in enumerate(rows):
        y = n - 1 - i
        hollow = r["role"] == ROLE_TARGET
        colour = sequence_colour(r["sequence"])
        lo, hi = r["published_ci95_low"], r["published_ci95_high"]
        xerr = None
        if lo is not None or hi is not None:  # an NA bound (not reached) is drawn open
            xerr = [[r["published"] - (r["published"] if lo is None else lo)], [0.0]]
            xerr[1][0] = 0.0 if hi is None else hi - r["published"]
            if hi is None:
                ax.annotate(
                    "NR", (r["published"], y + 0.17), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=7,
                )  # fmt: skip
        ax.errorbar(
            r["published"], y + 0.17, xerr=xerr, fmt="D", color="black", markersize=6,
            markerfacecolor="white" if hollow else "black", capsize=3, linewidth=1.2,
        )  # fmt: skip
        if r["predicted"] is not None:
            plo, phi = r["predicted_ci95_low"], r["predicted_ci95_high"]
            perr = (
                None
                if plo is None or phi is None
                else [[r["predicted"] - plo], [phi - r["predicted"]]]
            )
            ax.errorbar(
                r["predicted"], y - 0.17, xerr=perr, fmt="o", color=colour, markersize=6,
                markerfacecolor="white" if hollow else colour, capsize=3, linewidth=1.2,
            )  # fmt: skip
            if r["relative_error"] is not None:
                ax.annotate(
                    f"{100 * r['relative_error']:+.0f}%",
                    (1.0, y),
                    xycoords=("axes fraction", "data"),
                    xytext=(4, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=8,
                    color="dimgrey",
                )
    ax.set_yticks(range(n), [row_label(r) for r in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_title(name, fontsize=9, loc="left")
    ax.set_title("relative\nerror", fontsize=8, loc="right", color="dimgrey")
    ax.grid(axis="x", color="0.9")
    if stat == "hazard_ratio":
        from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

        ax.set_xscale("log")
        ax.axvline(1.0, color="0.5", linewidth=0.8, linestyle="--")
        ax.xaxis.set_major_locator(FixedLocator(HR_TICKS))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
        lo, hi = ax.get_xlim()
        ax.set_xlim(min(lo, 0.8), max(hi, 1.25))
    elif stat in ("landmark_survival", "proportion"):
        ax.set_xlim(0.0, 1.0)
    else:
        ax.set_xlim(left=0.0)


def plot_validation(
    path: Path, validation_rows: list[dict], title: str, n_patients: int, mape: dict, *, draw=None
):
    """Write validation.png. ``draw`` starts the drawing and returns a function that waits
    for the file (as in ``report.plot_survival``: ``simseq run`` passes its
    ``ForkedPlotter``'s); default: draw here and now. Returns the function that waits."""
    from simseq.forked_plot import draw_here

    return (draw or draw_here)(draw_validation, path, validation_rows, title, n_patients, mape)


def draw_validation(
    path: Path, validation_rows: list[dict], title: str, n_patients: int, mape: dict
) -> None:
    """Write the PNG of ``figure``."""
    fig = figure(validation_rows, title, n_patients, mape)
    # zlib level 1, as survival.png: the base case's 1200 x 2600 px figure encodes in about a
    # third of the time (~0.1 s saved) and grows by 5%
    fig.savefig(path, dpi=150, pil_kwargs={"compress_level": 1})
