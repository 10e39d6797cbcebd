"""Figures of a Bayesian calibration: posterior marginals over their priors, pairs, and
each target's posterior predictive against its published value.

Each function writes one 150 dpi PNG from a ``posterior.Posterior`` and returns
nothing; figures are built on a ``Figure`` with an Agg canvas, never through
pyplot (as ``simseq.cea_plots``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import lognorm

from simseq.colours import PALETTE

DPI = 150
PRIOR_COLOUR, POSTERIOR_COLOUR, PUBLISHED_COLOUR = "0.35", PALETTE[0], PALETTE[5]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _label(free, sep: str = " ") -> str:
    """ "lenvatinib after_progression median (months)" from the key path and unit; ``sep``
    between the regimen, the rest and the unit ("\n" for narrow panels)."""
    parts = free.path.split(".")
    name = f"{parts[1]}{sep}{' '.join(parts[2:])}" if parts[0] == "regimens" else free.path
    return f"{name}{sep}({free.unit})"


def plot_marginals(path: Path, posterior) -> None:
    """Histogram of each free parameter's posterior sample with its prior density."""
    n = len(posterior.free)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig = _figure(8.0, 2.8 * rows + 0.6)
    for j, free in enumerate(posterior.free):
        ax = fig.add_subplot(rows, cols, j + 1)
        x = posterior.sample[:, j]
        prior = lognorm(s=free.prior.se_log, scale=free.prior.median)
        # the posterior's range (and some room): the prior's long tail would squash it
        hi = 1.5 * np.quantile(x, 0.995)
        grid = np.linspace(0.0, hi, 400)
        ax.hist(
            x, bins=40, range=(0, hi), density=True, color=POSTERIOR_COLOUR, alpha=0.6,
            label="posterior",
        )  # fmt: skip
        ax.plot(grid, prior.pdf(grid), color=PRIOR_COLOUR, lw=1.5, ls="--", label="prior")
        ax.axvline(posterior.mean[j], color="k", lw=1, label="posterior mean (base case)")
        ax.set_xlabel(_label(free), fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=7)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, frameon=False, ncol=3, loc="upper center",
               bbox_to_anchor=(0.5, 0.95))  # fmt: skip
    r = posterior.imis
    fig.suptitle(
        f"Posterior (IMIS: ESS {r.ess:.0f}, {r.n_evaluations:,} evaluations) and prior",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    fig.savefig(path)


def plot_pairs(path: Path, posterior) -> None:
    """Scatter of every pair of free parameters' posterior draws, histograms on the
    diagonal, the correlation in each panel."""
    n = len(posterior.free)
    fig = _figure(2.2 * n + 0.8, 2.2 * n + 0.6)
    x = posterior.sample
    corr = np.corrcoef(x.T) if n > 1 else np.ones((1, 1))
    for i in range(n):
        for j in range(n):
            ax = fig.add_subplot(n, n, i * n + j + 1)
            if i == j:
                ax.hist(x[:, j], bins=30, color=POSTERIOR_COLOUR, alpha=0.6)
                ax.set_yticks([])
            elif i > j:
                ax.scatter(x[:, j], x[:, i], s=3, alpha=0.3, color=POSTERIOR_COLOUR, lw=0)
            else:
                ax.axis("off")
                ax.text(0.5, 0.5, f"r = {corr[i, j]:+.2f}", ha="center", va="center", fontsize=9)
                continue
            ax.tick_params(labelsize=6)
            if i == n - 1:
                ax.set_xlabel(_label(posterior.free[j], "\n"), fontsize=7)
            if j == 0 and i > 0:
                ax.set_ylabel(_label(posterior.free[i], "\n"), fontsize=7)
    fig.suptitle("Posterior draws of the free parameters, in pairs", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def plot_predictive(path: Path, posterior) -> None:
    """One panel per target, on its own scale: the published value with its 95% CI,
    the 95% interval of replicated data and of the model quantity, the predictive mean."""
    fits = posterior.targets
    fig = _figure(8.0, 1.25 * len(fits) + 1.0)
    for k, t in enumerate(fits):
        ax = fig.add_subplot(len(fits), 1, k + 1)
        ax.plot([t.published_lo, t.published_hi], [2, 2], color=PUBLISHED_COLOUR, lw=2)
        ax.plot(t.published, 2, "D", color=PUBLISHED_COLOUR, label="published, 95% CI")
        ax.plot(
            [t.replicated_lo, t.replicated_hi], [1, 1], color=POSTERIOR_COLOUR, lw=2,
            label="replicated data, 95%",
        )  # fmt: skip
        ax.plot([t.model_lo, t.model_hi], [0, 0], color=PRIOR_COLOUR, lw=4, label="model, 95%")
        ax.plot(t.model_mean, 0, "o", color="k", ms=4, label="model, posterior mean")
        ax.set_ylim(-0.7, 2.7)
        ax.set_yticks([0, 1, 2], ["model", "replicated", "published"], fontsize=7)
        # the evidence ids are in calibration.csv: a pool's would not fit on one line
        ax.set_title(f"{t.target}: {_what(t)}", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        if k == 0:
            handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, frameon=False, ncol=4, loc="upper center",
               bbox_to_anchor=(0.5, 1 - 0.45 / fig.get_figheight()))  # fmt: skip
    fig.suptitle("Posterior predictive against each calibration target (95% intervals)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))
    fig.savefig(path)


def _what(t) -> str:
    """ "OS at month 12 of atzbev_real_world (proportion alive)", "median OS from line
    start, cohort:lenvatinib (months)"."""
    if t.quantity == "os_landmark_from_sequence_start":
        sequence, month = t.where.split(", month ")
        return f"OS at month {month} of {sequence} (proportion alive)"
    what = (
        "median OS from line start" if t.quantity.startswith("median_os") else "median time on line"
    )
    return f"{what}, {t.where} ({t.unit})"
