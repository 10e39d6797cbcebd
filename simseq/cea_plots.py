"""Report-ready PNG plots of the economic results: CE plane, CEAC/CEAF, EVPI, tornado.

Every function writes one 8 x 5 in, 150 dpi PNG and returns its ``Figure`` (tests
read the artists drawn). Sequences are named by their labels and coloured by
their ids (``simseq.colours``), the same in every figure. Figures are
built on a ``Figure`` with an Agg canvas, imported inside each function, never
through pyplot: no global figure registry to close, no GUI backend, and the
package imports without matplotlib. Inputs follow :mod:`simseq.econ` (draws
first, options last; WTP in currency per QALY; EVPI per patient).

Degenerate inputs (a single option, zero EVPI, non-finite tornado rows, nothing
to plot) still give a figure, with a note that says what is missing, so a report
pipeline never stops on a plot.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from simseq.colours import sequence_styles

__all__ = [
    "plot_ce_plane",
    "plot_ceac",
    "plot_evpi",
    "plot_evppi",
    "plot_tornado",
    "tornado_order",
]

FIGSIZE = (8.0, 5.0)  # inches
DPI = 150
# Okabe-Ito blue and orange: distinguishable with the common colour-vision deficiencies
LOW_COLOUR, HIGH_COLOUR = "#0072B2", "#E69F00"
EVPI_COLOUR = "#000000"
# parameter groups are not sequences: Okabe-Ito, so they are not read as sequence colours
EVPPI_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442")
LINE_STYLES = ("-", "--", "-.")
NOTE_STYLE = {"fontsize": 7, "style": "italic", "color": "0.3"}
LEGEND_WRAP = 32  # characters per legend line; sequence names can be long
TORNADO_WRAP = 40  # characters per y-axis label line (two lines at most)
TORNADO_END_LABEL = 18  # characters of an input label printed at a bar end


# --------------------------------------------------------------------------- helpers


def _literal_text(plot):
    """Draw with mathtext off: names, labels and currencies are the user's text, where a
    "$" is a dollar (``$\\frac{1}{$`` in a label once failed the plot after simulating)."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return plot(*args, **kwargs)

    return wrapper


def _new_figure():
    """A Figure on an Agg canvas with constrained layout (handles outside legends)."""
    # Figure + Agg canvas rather than pyplot: no global state, no GUI backend, faster start-up
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path):
    fig.savefig(Path(path), format="png", dpi=DPI)
    return fig


def _prefix(currency: str) -> str:
    """``"GBP "`` or ``"£"``: a symbol sits against the number, a code does not."""
    return currency if len(currency) == 1 else f"{currency} "


def _money(value: float, currency: str) -> str:
    return f"{_prefix(currency)}{value:,.0f}"


def _money_short(value: float, currency: str) -> str:
    """Three significant figures with a word for large amounts: ``"GBP 65.5 million"``."""
    for divisor, word in ((1e9, "billion"), (1e6, "million")):
        if abs(value) >= divisor:
            return f"{_prefix(currency)}{value / divisor:.3g} {word}"
    return _money(value, currency)


def _format_axis(axis, n_ticks: int = 6) -> None:
    """At most ``n_ticks`` round ticks with thousands separators (WTP labels are wide)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(nbins=n_ticks, steps=[1, 2, 2.5, 5, 10]))
    axis.set_major_formatter(_number_formatter())


def _number_formatter():
    """Tick labels with thousands separators and only as many decimals as the tick step needs."""
    from matplotlib.ticker import Formatter

    class _Thousands(Formatter):
        decimals = 0

        def set_locs(self, locs):
            # the tick step sets the decimals: 0.25 apart needs two, 5,000 apart none
            locs = np.asarray(locs, dtype=np.float64)
            step = float(np.min(np.abs(np.diff(locs)))) if locs.size > 1 else 1.0
            self.decimals = next(
                (d for d in range(7) if abs(round(step, d) - step) <= 1e-9 * max(step, 1.0)), 6
            )

        def __call__(self, x, pos=None):
            text = f"{x:,.{self.decimals}f}"
            return "0" if float(text.replace(",", "")) == 0.0 else text  # never "-0"

    return _Thousands()


def _number(x: float) -> str:
    """A value for a label: separators for large numbers, 3 significant figures otherwise."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def _wtp_line(ax, wtp: float, currency: str) -> None:
    """The stated willingness to pay as a dotted vertical line, above the curves."""
    ax.axvline(
        wtp,
        color="black",
        ls=":",
        lw=1.2,
        zorder=4,
        label=_wrap(f"Stated WTP: {_money(wtp, currency)} per QALY", LEGEND_WRAP),
    )


def _wrap(text: str, width: int, max_lines: int = 2) -> str:
    """Wrap to ``max_lines`` lines of ``width`` characters, ending in an ellipsis if cut."""
    lines = textwrap.wrap(str(text), width) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: width - 1].rstrip() + "…"
    return "\n".join(lines)


def _truncate(text: str, width: int) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _styles(names: list[str], ids: Sequence[str] | None) -> list[tuple[str, str]]:
    """(colour, line style) per option, keyed by its id (by its name without ids)."""
    keys = [str(k) for k in (names if ids is None else ids)]
    if len(keys) != len(names):
        raise ValueError(f"ids must have one entry per name ({len(names)}), got {len(keys)}")
    styles = sequence_styles(keys)
    return [styles[k] for k in keys]


def _centre_note(ax, text: str, y: float = 0.5) -> None:
    ax.text(
        0.5, y, text, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="0.3"
    )


def _footnote(fig, text: str) -> None:
    """A small italic note under the axes (constrained layout leaves room for it)."""
    fig.supxlabel(text, x=0.01, ha="left", **NOTE_STYLE)


def _padded_limits(values: np.ndarray, pad: float = 0.08) -> tuple[float, float]:
    """Limits that include 0 and all finite ``values``, padded by ``pad`` of the span."""
    finite = values[np.isfinite(values)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(0.0, float(finite.max())) if finite.size else 0.0
    span = hi - lo
    if span == 0.0:
        span = max(abs(lo), 1.0)
    return lo - pad * span, hi + pad * span


# ------------------------------------------------------------------------- cost-effectiveness plane


@_literal_text
def plot_ce_plane(
    path,
    inc_costs,
    inc_qalys,
    names: Sequence[str],
    *,
    currency: str,
    wtp: float | None,
    reference: str,
    ids: Sequence[str] | None = None,
):
    """Incremental cost-effectiveness plane of the PSA draws, with the efficiency
    frontier through the options' means (PNG).

    Parameters
    ----------
    path : str or Path
        Output PNG.
    inc_costs, inc_qalys : ndarray(float64), (n_draws, n_options)
        Per-draw costs (currency) and QALYs (discounted) of each option minus
        those of the reference in the same draw. The reference column is all
        zeros and is drawn as the origin, not as a cloud; non-finite draws are
        left out (and counted in a note).
    names : sequence of str, length n_options
        Option labels; ``reference`` should be one of them.
    currency : str
        Currency code or symbol for the labels.
    wtp : float or None
        Willingness to pay, currency per QALY; draws a threshold line through
        the origin (points below it are cost-effective at that WTP).
    reference : str
        Label of the reference sequence, for the title.
    ids : sequence of str, optional
        Sequence ids, which set the colours (default: the names).
    """
    names = [str(n) for n in names]
    styles = _styles(names, ids)
    c = np.asarray(inc_costs, dtype=np.float64)
    e = np.asarray(inc_qalys, dtype=np.float64)
    if c.ndim == 1:  # one draw: a deterministic analysis
        c, e = c[None], e[None]
    if c.ndim != 2 or c.shape != e.shape or c.shape[1] != len(names):
        raise ValueError(
            f"inc_costs and inc_qalys must be (n_draws, n_options) with one column per name "
            f"({len(names)}), got {np.shape(inc_costs)} and {np.shape(inc_qalys)}"
        )
    is_reference = [n == reference for n in names]
    comparators = [
        j
        for j in range(len(names))
        if not is_reference[j]
        # without a name match, a column that is all zeros is the reference
        and not (not any(is_reference) and np.all(c[:, j] == 0.0) and np.all(e[:, j] == 0.0))
    ]

    fig = _new_figure()
    ax = fig.add_subplot()
    n_dropped = 0
    xs, ys = [np.zeros(1)], [np.zeros(1)]
    for j in comparators:
        ok = np.isfinite(c[:, j]) & np.isfinite(e[:, j])
        n_dropped += int((~ok).sum())
        x, y = e[ok, j], c[ok, j]
        if x.size == 0:
            continue
        xs.append(x)
        ys.append(y)
        colour = styles[j][0]
        # small, translucent draws so the density shows; the mean on top, outlined
        ax.scatter(x, y, s=6, alpha=0.3, color=colour, linewidths=0, rasterized=True)
        ax.scatter(
            x.mean(),
            y.mean(),
            s=90,
            color=colour,
            edgecolors="black",
            linewidths=0.8,
            zorder=4,
            label=_wrap(f"{names[j]} (mean)", LEGEND_WRAP, max_lines=3),
        )
    ax.scatter(
        0,
        0,
        marker="s",
        s=50,
        color="white",
        edgecolors="black",
        zorder=5,
        label=_wrap(f"{reference} (reference)", LEGEND_WRAP),
    )
    front = _frontier(c, e)
    if len(front) > 1:
        ax.plot(
            [_mean(e[:, j]) for j in front],
            [_mean(c[:, j]) for j in front],
            color="black",
            lw=1.4,
            zorder=3,
            label="Efficiency frontier (means)",
        )

    x_lim = _padded_limits(np.concatenate(xs))
    y_lim = _padded_limits(np.concatenate(ys))
    ax.set_xlim(*x_lim)
    ax.set_ylim(*y_lim)
    ax.axhline(0.0, color="0.2", lw=0.8, zorder=1)
    ax.axvline(0.0, color="0.2", lw=0.8, zorder=1)
    if wtp is not None and comparators:
        line_x = np.array(x_lim)
        ax.plot(
            line_x,
            wtp * line_x,
            color="0.35",
            ls="--",
            lw=1.2,
            zorder=2,
            label=f"WTP {_money(wtp, currency)} per QALY\n(below the line: cost-effective)",
        )
        ax.set_ylim(*y_lim)  # the threshold line must not rescale the plane

    ax.set_xlabel("Incremental QALYs (discounted)")
    ax.set_ylabel(f"Incremental costs ({currency}, discounted)")
    ax.set_title(_wrap(f"Cost-effectiveness plane vs {reference}", 80), fontsize=11)
    _format_axis(ax.xaxis)
    _format_axis(ax.yaxis)
    ax.grid(alpha=0.3)
    if not comparators:
        _centre_note(ax, f"No comparator: only the reference ({reference})", y=0.75)
    # outside the axes: a legend inside would hide part of the clouds
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)

    if comparators:
        note = (
            f"Small dots: {c.shape[0]:,} PSA draws per option; large markers: means; the "
            "frontier joins the options not dominated (strictly or extendedly) on the means."
        )
        if n_dropped:
            note += f" {n_dropped:,} non-finite draws left out."
        _footnote(fig, note)
    return _save(fig, path)


def _mean(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(finite.mean()) if finite.size else float("nan")


def _frontier(inc_costs: np.ndarray, inc_qalys: np.ndarray) -> list[int]:
    """Columns on the efficiency frontier of the mean costs and QALYs, cheapest first
    (``simseq.econ.icer_table``'s dominance rules)."""
    from simseq import econ

    costs = [_mean(inc_costs[:, j]) for j in range(inc_costs.shape[1])]
    qalys = [_mean(inc_qalys[:, j]) for j in range(inc_qalys.shape[1])]
    if not all(np.isfinite(costs + qalys)):
        return []
    table = econ.icer_table(list(range(len(costs))), costs, qalys)
    on = table[table["status"].isin(["reference", "non-dominated"])]
    return [int(j) for j in on["sequence"]]


# --------------------------------------------------------------------------- CEAC / CEAF


@_literal_text
def plot_ceac(
    path,
    wtp_grid,
    prob_best,
    names: Sequence[str],
    *,
    currency: str,
    frontier: pd.DataFrame | None = None,
    wtp: float | None = None,
    ids: Sequence[str] | None = None,
):
    """Cost-effectiveness acceptability curves, optionally with the frontier and the
    stated willingness to pay (PNG).

    Parameters
    ----------
    path : str or Path
        Output PNG.
    wtp_grid : ndarray(float64, ndim=1), (n_wtp,)
        Willingness to pay, currency per QALY.
    prob_best : ndarray(float64), (n_wtp, n_options)
        Probability each option is cost-effective, from :func:`simseq.econ.ceac`.
    names : sequence of str, length n_options
        Option labels.
    currency : str
        Currency code or symbol for the axis label.
    frontier : pandas.DataFrame, optional
        :func:`simseq.econ.ceaf` output (columns ``wtp``, ``option_idx``,
        ``sequence``, ``expected_nmb``, ``probability``); drawn as a wide grey
        band under the curves, so no curve hides beneath it.
    wtp : float, optional
        The stated willingness to pay (currency per QALY): a vertical line, and each
        option's probability there in the legend.
    ids : sequence of str, optional
        Sequence ids, which set the colours (default: the names).
    """
    names = [str(n) for n in names]
    styles = _styles(names, ids)
    w = np.asarray(wtp_grid, dtype=np.float64)
    p = np.asarray(prob_best, dtype=np.float64)
    if p.ndim == 1 and len(names) == 1:
        p = p[:, None]
    if w.ndim != 1 or p.shape != (w.size, len(names)):
        raise ValueError(
            f"prob_best must be (n_wtp, n_options) = ({w.size}, {len(names)}), got {p.shape}"
        )

    fig = _new_figure()
    ax = fig.add_subplot()
    at_wtp = None
    if wtp is not None and w.size:
        at_wtp = int(np.argmin(np.abs(w - wtp)))
    for j, name in enumerate(names):
        label = name if at_wtp is None else f"{name} ({p[at_wtp, j]:.2f} at the WTP)"
        # clip_on=False: a curve sitting at exactly 0 or 1 stays fully visible on the frame
        ax.plot(
            w,
            p[:, j],
            color=styles[j][0],
            ls=styles[j][1],
            lw=1.8,
            clip_on=False,
            zorder=3,
            label=_wrap(label, LEGEND_WRAP, max_lines=3),
        )
    if frontier is not None and len(frontier):
        # under the curves: the option on the frontier shows through it
        ax.plot(
            frontier["wtp"].to_numpy(dtype=np.float64),
            frontier["probability"].to_numpy(dtype=np.float64),
            color="0.55",
            lw=7,
            alpha=0.45,
            solid_capstyle="butt",
            clip_on=False,
            zorder=2,
            label="Frontier (CEAF): the option\nwith the highest expected NMB",
        )
    if at_wtp is not None:
        _wtp_line(ax, wtp, currency)
    if w.size:
        ax.set_xlim(float(np.nanmin(w)), float(np.nanmax(w)) if w.size > 1 else float(w[0]) + 1)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(f"Willingness to pay ({currency} per QALY)")
    ax.set_ylabel("Probability cost-effective")
    ax.set_title("Cost-effectiveness acceptability curves", fontsize=11)
    _format_axis(ax.xaxis)
    ax.grid(alpha=0.3)
    # outside the axes: the curves cross everywhere, so no corner inside is free
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    return _save(fig, path)


# --------------------------------------------------------------------------- EVPI


def _scale(max_abs: float) -> tuple[float, str]:
    """Divisor and word for an axis whose values reach ``max_abs``."""
    for divisor, word in ((1e9, "billions"), (1e6, "millions"), (1e3, "thousands")):
        if max_abs >= 10 * divisor:
            return divisor, word
    return 1.0, ""


@_literal_text
def plot_evpi(
    path,
    wtp_grid,
    evpi_values,
    *,
    currency: str,
    population: float | None = None,
    population_note: str = "",
    wtp: float | None = None,
):
    """Per-patient EVPI against WTP, with population EVPI on a second axis (PNG).

    Parameters
    ----------
    path : str or Path
        Output PNG.
    wtp_grid : ndarray(float64, ndim=1), (n_wtp,)
        Willingness to pay, currency per QALY.
    evpi_values : ndarray(float64, ndim=1), (n_wtp,)
        Per-patient EVPI in currency, from :func:`simseq.econ.evpi`.
    currency : str
        Currency code or symbol for the labels.
    population : float, optional
        (Discounted) number of patients the decision affects; adds a right-hand
        axis of population EVPI and a note of its maximum.
    population_note : str
        How ``population`` was reached (patients a year, years, discounting): a footnote.
    wtp : float, optional
        The stated willingness to pay: a vertical line, with the EVPI there.
    """
    w = np.asarray(wtp_grid, dtype=np.float64)
    v = np.asarray(evpi_values, dtype=np.float64)
    if w.ndim != 1 or v.shape != w.shape:
        raise ValueError(
            f"wtp_grid and evpi_values must be 1-D of one length, got {w.shape} and {v.shape}"
        )
    if population is not None and not (np.isfinite(population) and population > 0):
        raise ValueError(f"population must be a positive number of patients, got {population!r}")

    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(w, v, color=EVPI_COLOUR, lw=2.0, clip_on=False)
    finite = np.isfinite(v)
    v_max = float(v[finite].max()) if finite.any() else 0.0
    if w.size:
        ax.set_xlim(float(np.nanmin(w)), float(np.nanmax(w)) if w.size > 1 else float(w[0]) + 1)
    ax.set_ylim(0.0, 1.1 * v_max if v_max > 0 else 1.0)
    ax.set_xlabel(f"Willingness to pay ({currency} per QALY)")
    ax.set_ylabel(f"EVPI per patient ({currency})")
    ax.set_title("Expected value of perfect information", fontsize=11)
    _format_axis(ax.xaxis)
    _format_axis(ax.yaxis)
    ax.grid(alpha=0.3)

    if not finite.any():
        _centre_note(ax, "No finite EVPI values")
    elif v_max == 0.0:
        _centre_note(
            ax, "EVPI is zero across the WTP range:\nthe same option is best in every draw"
        )
    else:
        i_max = int(np.flatnonzero(finite)[np.argmax(v[finite])])
        ax.plot(w[i_max], v_max, "o", color=EVPI_COLOUR, ms=6, clip_on=False, zorder=4)
        text = (
            f"Maximum: {_money(v_max, currency)} per patient\nat WTP {_money(w[i_max], currency)}"
        )
        if population is not None:
            text += f"\nPopulation: {_money_short(v_max * population, currency)}"
        if wtp is not None and w.size:
            at = float(np.interp(wtp, w, np.where(finite, v, 0.0)))
            text += f"\n\nAt the stated WTP ({_money(wtp, currency)}, dotted):"
            text += f"\n{_money(at, currency)} per patient"
            if population is not None:
                text += f", {_money_short(at * population, currency)} in all"
        # in the top corner away from the peak, which is where the curve is lower
        left = w[i_max] > 0.5 * (np.nanmin(w) + np.nanmax(w))
        ax.text(
            0.02 if left else 0.98,
            0.97,
            text,
            transform=ax.transAxes,
            ha="left" if left else "right",
            va="top",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "0.7"},
        )
    if population is not None:
        divisor, word = _scale(v_max * population)
        factor = population / divisor
        sec = ax.secondary_yaxis("right", functions=(lambda y: y * factor, lambda y: y / factor))
        unit = f"{currency} {word}" if word else currency
        sec.set_ylabel(f"Population EVPI ({unit}; {population:,.0f} patients)")
        _format_axis(sec.yaxis)
    if wtp is not None:
        ax.axvline(wtp, color="black", ls=":", lw=1.2)
    if population_note:
        _footnote(fig, population_note)
    return _save(fig, path)


@_literal_text
def plot_evppi(
    path,
    wtp_grid,
    groups: dict[str, Sequence[float] | None],
    evpi_values,
    *,
    currency: str,
    wtp: float | None = None,
    method: str = "Regression EVPPI (Strong, Oakley & Brennan 2014) on the PSA draws.",
):
    """Per-patient EVPPI of each parameter group against WTP, under the EVPI (PNG).
    ``method``: how it was computed, for the footnote.

    Parameters
    ----------
    path : str or Path
        Output PNG.
    wtp_grid : ndarray(float64, ndim=1), (n_wtp,)
        Willingness to pay, currency per QALY.
    groups : dict of str to sequence of float (n_wtp,) or None
        EVPPI per patient (currency) per group; a None (not computed) is named in a note.
    evpi_values : ndarray(float64, ndim=1), (n_wtp,)
        Per-patient EVPI on the same grid: the ceiling of every EVPPI, drawn dashed.
    currency : str
        Currency code or symbol for the labels.
    wtp : float, optional
        The stated willingness to pay: a vertical line.
    """
    w = np.asarray(wtp_grid, dtype=np.float64)
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(
        w,
        np.asarray(evpi_values, dtype=np.float64),
        color=EVPI_COLOUR,
        ls="--",
        lw=1.4,
        marker="o",
        ms=3,
        label="EVPI (all parameters)",
    )
    drawn = {k: np.asarray(v, dtype=np.float64) for k, v in groups.items() if v is not None}
    # the order of the groups' colours is fixed: largest EVPPI at the stated WTP first
    at = int(np.argmin(np.abs(w - wtp))) if wtp is not None and w.size else -1
    order = sorted(drawn, key=lambda k: -float(np.nan_to_num(drawn[k][at])))
    for k, name in enumerate(order):
        ax.plot(
            w,
            drawn[name],
            lw=1.8,
            color=EVPPI_COLOURS[k % len(EVPPI_COLOURS)],
            ls=LINE_STYLES[(k // len(EVPPI_COLOURS)) % len(LINE_STYLES)],
            label=_wrap(name.replace("_", " "), LEGEND_WRAP),
        )
    if wtp is not None:
        _wtp_line(ax, wtp, currency)
    if w.size:
        ax.set_xlim(float(np.nanmin(w)), float(np.nanmax(w)) if w.size > 1 else float(w[0]) + 1)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(f"Willingness to pay ({currency} per QALY)")
    ax.set_ylabel(f"EVPPI per patient ({currency})")
    ax.set_title("EVPPI by parameter group", fontsize=11)
    _format_axis(ax.xaxis)
    _format_axis(ax.yaxis)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    missing = [k for k, v in groups.items() if v is None]
    note = method
    if missing:
        note += f" Not computed: {', '.join(missing)} (see the warnings)."
    _footnote(fig, note)
    return _save(fig, path)


# --------------------------------------------------------------------------- tornado


def _row_is_finite(row: dict) -> bool:
    try:
        return bool(np.isfinite(float(row["low"])) and np.isfinite(float(row["high"])))
    except (TypeError, ValueError):
        return False


def tornado_order(rows: Sequence[dict]) -> list[int]:
    """Indexes of the rows to draw, widest range ``|high - low|`` first.

    Rows whose ``low`` or ``high`` is missing or not finite are left out. Ties
    keep their input order.

    Parameters
    ----------
    rows : sequence of dict
        Each with numeric ``low`` and ``high`` (outcome at the parameter's low
        and high input).

    Returns
    -------
    list of int
        0-based indexes into ``rows``.
    """
    keep = [i for i, row in enumerate(rows) if _row_is_finite(row)]
    return sorted(keep, key=lambda i: -abs(float(rows[i]["high"]) - float(rows[i]["low"])))


@_literal_text
def plot_tornado(
    path,
    rows: Sequence[dict],
    *,
    outcome_label: str,
    base_value: float,
    title: str | None = None,
    max_rows: int = 20,
) -> None:
    """One-way sensitivity tornado diagram (PNG).

    Parameters
    ----------
    path : str or Path
        Output PNG.
    rows : sequence of dict
        One per parameter: ``parameter`` (name, with its unit), ``low_label`` and
        ``high_label`` (the input values, as text), ``low`` and ``high`` (the
        outcome at those inputs), optionally ``illustrative`` (a placeholder
        input: its label is marked). Rows with a non-finite outcome are skipped
        and named in a note; rows with no effect (``low == high`` to within 1e-6
        of the outcome's scale) are left out and counted in a note.
    outcome_label : str
        x-axis label, with units (e.g. ``"Incremental NMB (GBP)"``).
    base_value : float
        Outcome at the base case; bars start here.
    title : str, optional
        Figure title; default "One-way sensitivity analysis".
    max_rows : int
        At most this many bars (the widest) are drawn, so labels stay legible
        at 8 x 5 in; the rest are counted in a note.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    order = tornado_order(rows)
    skipped = [str(r.get("parameter", "?")) for r in rows if not _row_is_finite(r)]
    ends = [abs(float(rows[i][k])) for i in order for k in ("low", "high")]
    # common random numbers make an input that cannot move the outcome move it by
    # rounding only (1e-6 of a NMB of thousands): such rows are empty bars
    tolerance = 1e-6 * max(
        [abs(float(base_value)) if np.isfinite(base_value) else 0.0, *ends, 1e-300]
    )
    no_effect = [
        i for i in order if abs(float(rows[i]["high"]) - float(rows[i]["low"])) <= tolerance
    ]
    order = [i for i in order if i not in no_effect]
    n_hidden = max(0, len(order) - max_rows)
    order = order[:max_rows]

    fig = _new_figure()
    ax = fig.add_subplot()
    # a figure title, so the legend can sit between it and the axes
    fig.suptitle(_wrap(title or "One-way sensitivity analysis", 80), fontsize=11)
    ax.set_xlabel(outcome_label)
    notes = []
    if skipped:
        notes.append(_truncate(f"Skipped (non-finite outcome): {', '.join(skipped)}.", 150))
    if n_hidden:
        notes.append(f"{n_hidden} parameter(s) with smaller ranges not shown.")
    if no_effect:
        notes.append(f"{len(no_effect)} parameter(s) with no effect on this outcome not shown.")
    if any(rows[i].get("illustrative") for i in order[:max_rows]):
        notes.append("ILLUSTRATIVE: a placeholder input with no evidence behind it.")

    if not order:
        _centre_note(
            ax,
            "No parameters varied"
            if not rows
            else "No parameter changes this outcome"
            if no_effect
            else "No parameter has a finite outcome",
        )
        ax.set_yticks([])
        ax.set_xticks([])
        if notes:
            _footnote(fig, " ".join(notes))
        return _save(fig, path)

    base = float(base_value)
    lows = np.array([float(rows[i]["low"]) for i in order])
    highs = np.array([float(rows[i]["high"]) for i in order])
    y = np.arange(len(order))
    font = 8 if len(order) <= 10 else 7
    # Both ends on one side of the base (a non-monotone or saturating outcome): the two bars
    # share the row in halves, so neither hides the other nor its end label.
    offsets = np.zeros((len(order), 2))
    heights = np.full((len(order), 2), 0.7)
    same_side = (lows - base) * (highs - base) > 0
    offsets[same_side] = (-0.175, 0.175)
    heights[same_side] = 0.35
    for k, i in enumerate(order):
        row = rows[i]
        ends = (
            (lows[k], row.get("low_label", ""), LOW_COLOUR),
            (highs[k], row.get("high_label", ""), HIGH_COLOUR),
        )
        for side, (end, label, colour) in enumerate(ends):
            y_bar = k + offsets[k, side]
            ax.barh(y_bar, end - base, left=base, height=heights[k, side], color=colour)
            if not str(label):
                continue
            right = end > base or (end == base and side == 1)
            ax.annotate(
                _truncate(label, TORNADO_END_LABEL),
                (end, y_bar),
                xytext=(3 if right else -3, 0),
                textcoords="offset points",
                ha="left" if right else "right",
                va="center",
                fontsize=font - 1,
                color="0.25",
            )
    ax.axvline(base, color="black", lw=1.0)
    span = max(float(np.max(np.abs(np.concatenate([lows, highs]) - base))), abs(base) * 1e-3, 1e-9)
    lo = min(base, float(lows.min()), float(highs.min()))
    hi = max(base, float(lows.max()), float(highs.max()))
    ax.set_xlim(lo - 0.3 * span, hi + 0.3 * span)

    # two-line names fit up to about a dozen rows at 5 in; beyond that, one truncated line
    names = [
        ("ILLUSTRATIVE " if rows[i].get("illustrative") else "")
        + str(rows[i].get("parameter", "?"))
        for i in order
    ]
    if len(order) <= 12:
        labels = [_wrap(name, TORNADO_WRAP) for name in names]
    else:
        labels = [_truncate(name, 2 * TORNADO_WRAP) for name in names]
    ax.set_yticks(y, labels)
    ax.tick_params(axis="y", labelsize=font, length=0)
    for tick, i in zip(ax.get_yticklabels(), order, strict=True):
        if rows[i].get("illustrative"):
            tick.set_color("#D55E00")  # Okabe-Ito vermillion: the placeholder stands out
    ax.set_ylim(len(order) - 0.5, -0.5)  # widest on top
    _format_axis(ax.xaxis)
    ax.grid(axis="x", alpha=0.3)
    handles = [
        Patch(color=LOW_COLOUR, label="low input"),
        Patch(color=HIGH_COLOUR, label="high input"),
        Line2D([], [], color="black", lw=1.0, label=f"base case ({_number(base)})"),
    ]
    # above the axes: inside, any corner may hold a bar or an end label
    ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    if notes:
        _footnote(fig, " ".join(notes))
    return _save(fig, path)
