"""Health-economic analysis: discounting, incremental analysis, NMB, CEAC, EVPI, EVPPI.

Conventions
-----------
Time is in months. An annual discount rate ``r`` is converted to the
continuous monthly rate ``delta = ln(1 + r) / 12``, so an amount at 12 months is
discounted by exactly ``1 / (1 + r)`` and one at ``12 k`` months by
``(1 + r) ** -k``: the annual-step convention at whole years, and exact (no
half-cycle or step approximation) inside a year and over any sojourn.

Costs are in the scenario currency, effects in QALYs or life-years (the
functions are unit-agnostic; pass one or the other), willingness to pay (WTP)
in currency per effect unit. Parameters follow the house layout: draws are the
leading axis, ``costs[n_draws, n_options]``; a deterministic analysis is
``n_draws == 1`` and a 1-D ``costs[n_options]`` is read as that one draw.
Value-of-information results are per patient: multiply by the (discounted)
number of patients the decision affects for population values.

The functions are pure NumPy/pandas: no simulation, no I/O.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas

__all__ = [
    "STATUSES",
    "NestedEvppi",
    "ceac",
    "ceaf",
    "conditional_expectation",
    "discount_at",
    "discount_factor_integral",
    "evpi",
    "evppi",
    "evppi_nested",
    "icer_table",
    "monthly_discount_rate",
    "nmb",
]

MONTHS_PER_YEAR = 12.0

REFERENCE = "reference"
NON_DOMINATED = "non-dominated"
DOMINATED = "dominated"
EXTENDEDLY_DOMINATED = "extendedly dominated"
STATUSES = (REFERENCE, NON_DOMINATED, DOMINATED, EXTENDEDLY_DOMINATED)

# NMB arrays are built a block of WTP values at a time so that memory stays
# bounded (~32 MB of float64) for large PSAs and long WTP grids.
_BLOCK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- discounting


def monthly_discount_rate(rate_per_year) -> np.ndarray:
    """Continuous monthly discount rate ``delta = ln(1 + r) / 12``.

    Parameters
    ----------
    rate_per_year : float or ndarray(float64)
        Annual discount rate ``r`` (0.035 for 3.5 %), ``r >= 0``.

    Returns
    -------
    ndarray(float64)
        ``delta`` per month, same shape as ``rate_per_year``.
    """
    r = np.asarray(rate_per_year, dtype=np.float64)
    if not np.all(np.isfinite(r)) or np.any(r < 0.0):
        raise ValueError(
            f"annual discount rate must be finite and >= 0 (0.035 for 3.5%), got {rate_per_year!r}"
        )
    return np.log1p(r) / MONTHS_PER_YEAR


def discount_at(t, rate_per_year):
    """Discount factor ``exp(-delta t)`` for a one-off amount at ``t`` months.

    Use it for one-off costs (a drug switch, a procedure) and one-off QALY
    decrements (an adverse event) that occur at time ``t``.

    Parameters
    ----------
    t : float or ndarray(float64)
        Time in months since the start of the model, ``0 <= t <= inf``.
    rate_per_year : float or ndarray(float64)
        Annual discount rate, broadcast against ``t`` (e.g. shape
        ``(n_draws, 1)`` against ``t[n_draws, n_events]``).

    Returns
    -------
    float64 or ndarray(float64)
        Discount factor in (0, 1]; 0 at ``t = inf`` when the rate is positive.
    """
    t = np.asarray(t, dtype=np.float64)
    if np.any(np.isnan(t)) or np.any(t < 0.0):
        raise ValueError("times must be >= 0 months (and not NaN)")
    delta = monthly_discount_rate(rate_per_year)
    t, delta = np.broadcast_arrays(t, delta)
    with np.errstate(invalid="ignore"):  # 0 * inf at a zero rate
        out = np.where(delta > 0.0, np.exp(-delta * t), 1.0)
    return out[()]


def discount_factor_integral(t0, t1, rate_per_year):
    """Exact discounted length of ``[t0, t1]``: the integral of ``exp(-delta t)`` dt.

    A cost or QALY accruing at a constant rate ``c`` per month over a sojourn
    from ``t0`` to ``t1`` is worth ``c * discount_factor_integral(t0, t1, r)``
    at time 0. Computed as ``exp(-delta t0) * (-expm1(-delta (t1 - t0))) / delta``,
    which stays accurate as ``delta -> 0``; a zero rate gives ``t1 - t0`` exactly.

    Parameters
    ----------
    t0, t1 : float or ndarray(float64)
        Start and end of the sojourn in months, ``0 <= t0 <= t1``; ``t0``
        finite, ``t1`` may be ``inf`` (then the result is
        ``exp(-delta t0) / delta``, or ``inf`` at a zero rate).
    rate_per_year : float or ndarray(float64)
        Annual discount rate ``r >= 0``, broadcast against ``t0`` and ``t1``.

    Returns
    -------
    float64 or ndarray(float64)
        Discounted duration in months, broadcast shape of the inputs.
    """
    t0 = np.asarray(t0, dtype=np.float64)
    t1 = np.asarray(t1, dtype=np.float64)
    delta = monthly_discount_rate(rate_per_year)
    t0, t1, delta = np.broadcast_arrays(t0, t1, delta)
    if not np.all(np.isfinite(t0)) or np.any(t0 < 0.0):
        raise ValueError("t0 must be finite and >= 0 months")
    if np.any(np.isnan(t1)) or np.any(t1 < t0):
        raise ValueError("t1 must be >= t0 (a sojourn cannot end before it starts)")
    length = t1 - t0
    with np.errstate(invalid="ignore", divide="ignore"):
        x = delta * length  # NaN for a zero rate over an infinite sojourn
        # x == 0 covers a zero rate, a zero length and a rate so small that
        # delta * length underflows; in all three the answer is the length.
        scaled = np.where(x > 0.0, -np.expm1(-x) / delta, length)
    return (np.exp(-delta * t0) * scaled)[()]


# --------------------------------------------------------------------------- incremental analysis


def icer_table(names: Sequence[str], costs, effects, *, rtol: float = 1e-9) -> pandas.DataFrame:
    """Full incremental analysis: dominance, extended dominance and ICERs.

    1. Strong dominance: an option is dominated if another costs no more and is
       at least as effective, and is strictly better on one of the two (so of
       two options with equal effect the dearer one is dominated, and of two
       with equal cost the less effective one).
    2. Extended dominance, iteratively: among the rest, sorted by cost, an option
       whose ICER against the previous option exceeds the ICER of the next
       option against it is removed, and ICERs are recomputed, until the ICERs
       increase along the frontier (which is then the lower-right convex hull
       of the cost-effect plane). ICERs equal to within ``rtol`` (collinear
       options) are not treated as extended dominance.
    3. ICERs on the frontier are against the previous frontier option; the
       cheapest frontier option is the reference.

    Options with identical cost and effect cannot be told apart: they share
    one status and one ICER (both may be listed as the reference).

    Parameters
    ----------
    names : sequence of str, length n_options
        Option (treatment-sequence) labels, unique.
    costs : ndarray(float64, ndim=1), (n_options,)
        Expected costs, scenario currency (e.g. ``costs_psa.mean(axis=0)``).
    effects : ndarray(float64, ndim=1), (n_options,)
        Expected effects, QALYs or life-years.
    rtol : float
        Relative tolerance under which two ICERs count as equal.

    Returns
    -------
    pandas.DataFrame
        One row per option, sorted by cost (then effect, then input order),
        with columns ``sequence, cost, effect, inc_cost, inc_effect, icer,
        status``; ``status`` is one of :data:`STATUSES`. ``inc_cost``,
        ``inc_effect`` and ``icer`` (currency per effect unit) are NaN for the
        reference and for dominated options.
    """
    names = [str(n) for n in names]
    costs = np.asarray(costs, dtype=np.float64)
    effects = np.asarray(effects, dtype=np.float64)
    n = len(names)
    if n == 0:
        raise ValueError("icer_table needs at least one option")
    if costs.shape != (n,) or effects.shape != (n,):
        raise ValueError(
            f"costs and effects must be 1-D with one value per name ({n}), "
            f"got shapes {costs.shape} and {effects.shape}"
        )
    if len(set(names)) != n:
        raise ValueError(f"option names must be unique, got {names}")
    if not (np.all(np.isfinite(costs)) and np.all(np.isfinite(effects))):
        raise ValueError("costs and effects must be finite")

    c_i, c_j = costs[:, None], costs[None, :]
    e_i, e_j = effects[:, None], effects[None, :]
    dominated = ((c_j <= c_i) & (e_j >= e_i) & ((c_j < c_i) | (e_j > e_i))).any(axis=1)

    # Undominated options with distinct (cost, effect) have strictly increasing
    # cost and effect once sorted; identical ones are collapsed into one point.
    points, point_of = np.unique(
        np.column_stack([costs, effects])[~dominated], axis=0, return_inverse=True
    )
    frontier = list(range(len(points)))
    while len(frontier) > 2:
        c, e = points[frontier, 0], points[frontier, 1]
        icers = np.diff(c) / np.diff(e)
        worse = np.flatnonzero(icers[:-1] > icers[1:] * (1.0 + rtol))
        if worse.size == 0:
            break
        del frontier[worse[0] + 1]

    point_status = np.full(len(points), EXTENDEDLY_DOMINATED, dtype=object)
    point_status[frontier[0]] = REFERENCE
    point_status[frontier[1:]] = NON_DOMINATED
    point_inc = np.full((len(points), 2), np.nan)
    point_inc[frontier[1:]] = np.diff(points[frontier], axis=0)

    status = np.full(n, DOMINATED, dtype=object)
    inc = np.full((n, 2), np.nan)
    undominated_idx = np.flatnonzero(~dominated)
    status[undominated_idx] = point_status[point_of.ravel()]
    inc[undominated_idx] = point_inc[point_of.ravel()]

    import pandas as pd  # only the two tables need pandas: keep importing econ cheap

    table = pd.DataFrame(
        {
            "sequence": names,
            "cost": costs,
            "effect": effects,
            "inc_cost": inc[:, 0],
            "inc_effect": inc[:, 1],
            "icer": inc[:, 0] / inc[:, 1],
            "status": status.astype(str),
        }
    )
    order = np.lexsort((np.arange(n), effects, costs))
    return table.iloc[order].reset_index(drop=True)


# --------------------------------------------------------------------------- NMB, CEAC, CEAF


def _as_draws(costs, effects, ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validate costs/effects and promote a single draw to the leading axis."""
    c = np.asarray(costs, dtype=np.float64)
    e = np.asarray(effects, dtype=np.float64)
    if ndim == 2 and c.ndim == 1 and e.ndim == 1:  # one draw: a deterministic analysis
        c, e = c[None], e[None]
    if c.ndim != ndim or c.shape != e.shape or c.size == 0:
        raise ValueError(
            f"costs and effects must have the same non-empty shape with {ndim} axes "
            f"(draws first, options last), got {np.shape(costs)} and {np.shape(effects)}"
        )
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(e))):
        raise ValueError("costs and effects must be finite")
    return c, e


def _as_wtp(wtp) -> np.ndarray:
    w = np.atleast_1d(np.asarray(wtp, dtype=np.float64))
    if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0.0):
        raise ValueError("willingness to pay must be a finite, non-negative scalar or 1-D grid")
    return w


def _nmb_blocks(c: np.ndarray, e: np.ndarray, w: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (slice of the WTP grid, NMB[n_block, n_draws, n_options]) in bounded memory."""
    step = max(1, _BLOCK_ELEMENTS // c.size)
    for start in range(0, w.size, step):
        block = w[start : start + step]
        yield slice(start, start + block.size), block[:, None, None] * e - c


def nmb(costs, effects, wtp) -> np.ndarray:
    """Net monetary benefit ``wtp * effect - cost``.

    Parameters
    ----------
    costs, effects : ndarray(float64), (n_draws, n_options)
        Per-draw costs (currency) and effects (QALYs or LYs); a 1-D
        ``(n_options,)`` pair is one draw.
    wtp : float or ndarray(float64, ndim=1), (n_wtp,)
        Willingness to pay, currency per effect unit, ``>= 0``.

    Returns
    -------
    ndarray(float64), (n_wtp, n_draws, n_options)
        NMB in currency; a scalar ``wtp`` gives ``n_wtp == 1``.
    """
    c, e = _as_draws(costs, effects)
    w = _as_wtp(wtp)
    return w[:, None, None] * e - c


def ceac(costs, effects, wtp_grid) -> np.ndarray:
    """Cost-effectiveness acceptability curves.

    Parameters
    ----------
    costs, effects : ndarray(float64), (n_draws, n_options)
        PSA draws of costs (currency) and effects (QALYs or LYs).
    wtp_grid : ndarray(float64, ndim=1), (n_wtp,)
        Willingness to pay, currency per effect unit.

    Returns
    -------
    ndarray(float64), (n_wtp, n_options)
        Share of draws in which each option has the highest NMB. A draw where
        several options tie exactly for the highest NMB counts ``1 / n_tied``
        for each, so every row sums to 1.
    """
    c, e = _as_draws(costs, effects)
    w = _as_wtp(wtp_grid)
    out = np.empty((w.size, c.shape[1]))
    for sl, v in _nmb_blocks(c, e, w):
        is_best = v == v.max(axis=2, keepdims=True)
        out[sl] = (is_best / is_best.sum(axis=2, keepdims=True)).mean(axis=1)
    return out


def ceaf(costs, effects, wtp_grid, names: Sequence[str] | None = None) -> pandas.DataFrame:
    """Cost-effectiveness acceptability frontier.

    At each WTP the decision under current information is the option with the
    highest *expected* NMB; the frontier reports that option and the
    probability that it is cost-effective (its CEAC value). This need not be
    the option most likely to be cost-effective when NMB is skewed
    (Fenwick, Claxton & Sculpher 2001, Health Econ 10:779).

    Parameters
    ----------
    costs, effects : ndarray(float64), (n_draws, n_options)
        PSA draws of costs (currency) and effects (QALYs or LYs).
    wtp_grid : ndarray(float64, ndim=1), (n_wtp,)
        Willingness to pay, currency per effect unit.
    names : sequence of str, optional
        Option labels; default ``"0", "1", ...``.

    Returns
    -------
    pandas.DataFrame
        One row per WTP with columns ``wtp``, ``option_idx`` (0-based; exact
        ties in expected NMB go to the lower index), ``sequence``,
        ``expected_nmb`` (currency) and ``probability``.
    """
    c, e = _as_draws(costs, effects)
    w = _as_wtp(wtp_grid)
    names = [str(i) for i in range(c.shape[1])] if names is None else [str(n) for n in names]
    if len(names) != c.shape[1]:
        raise ValueError(f"{len(names)} names for {c.shape[1]} options")
    expected = w[:, None] * e.mean(axis=0) - c.mean(axis=0)
    best_idx = expected.argmax(axis=1)
    rows = np.arange(w.size)
    import pandas as pd

    return pd.DataFrame(
        {
            "wtp": w,
            "option_idx": best_idx,
            "sequence": [names[i] for i in best_idx],
            "expected_nmb": expected[rows, best_idx],
            "probability": ceac(c, e, w)[rows, best_idx],
        }
    )


# --------------------------------------------------------------------------- value of information


def _regret_moments(
    blocks: Iterator[tuple[slice, np.ndarray]], n_wtp: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Monte Carlo SE over draws of ``max_d NMB - NMB[d*]``, per WTP.

    ``blocks`` yields (slice of the WTP grid, NMB[n_block, n_draws, n_options]).
    ``d*`` is the option with the highest mean NMB. The mean of this regret is
    ``E[max_d NMB] - max_d E[NMB]``; written per draw it is non-negative term
    by term, and exactly zero when ``d*`` is best in every draw.
    """
    mean = np.full(n_wtp, np.nan)
    se = np.full(n_wtp, np.nan)
    for sl, v in blocks:
        best_idx = v.mean(axis=1).argmax(axis=1)
        chosen = np.take_along_axis(v, best_idx[:, None, None], axis=2)[..., 0]
        regret = v.max(axis=2) - chosen
        mean[sl] = regret.mean(axis=1)
        if v.shape[1] > 1:
            se[sl] = regret.std(axis=1, ddof=1) / math.sqrt(v.shape[1])
    return mean, se


def evpi(costs, effects, wtp_grid) -> np.ndarray:
    """Per-patient expected value of perfect information.

    ``EVPI(wtp) = E[max_d NMB_d] - max_d E[NMB_d]`` over the PSA draws.

    Parameters
    ----------
    costs, effects : ndarray(float64), (n_draws, n_options)
        PSA draws of costs (currency) and effects (QALYs or LYs).
    wtp_grid : ndarray(float64, ndim=1), (n_wtp,)
        Willingness to pay, currency per effect unit.

    Returns
    -------
    ndarray(float64), (n_wtp,)
        EVPI in currency per patient; ``>= 0``, and exactly 0 at a WTP where one
        option has the highest NMB in every draw.
    """
    c, e = _as_draws(costs, effects)
    w = _as_wtp(wtp_grid)
    return _regret_moments(_nmb_blocks(c, e, w), w.size)[0]


@dataclass(frozen=True)
class NestedEvppi:
    """Nested Monte Carlo EVPPI and its outer-loop standard error (both per WTP)."""

    evppi: np.ndarray  # float64 (n_wtp,), currency per patient
    se: np.ndarray  # float64 (n_wtp,), outer-loop Monte Carlo SE


def evppi_nested(costs, effects, wtp_grid) -> NestedEvppi:
    """EVPPI from a nested (two-level) Monte Carlo sample.

    The caller draws ``n_outer`` values of the parameters of interest and, for
    each, ``n_inner`` values of the remaining parameters from their conditional
    distribution, and evaluates the model at every pair. Then
    ``EVPPI = mean_outer[max_d mean_inner NMB_d] - max_d mean[NMB_d]``.

    The standard error covers the outer loop only. The inner loop adds a
    positive bias of order ``1 / n_inner`` (the max of noisy inner means
    overshoots the max of the true conditional means; Oakley et al. 2010,
    Med Decis Making 30:E1), so ``n_inner`` should make the inner-mean noise
    small against the spread of the conditional means.

    Parameters
    ----------
    costs, effects : ndarray(float64), (n_outer, n_inner, n_options)
        Costs (currency) and effects (QALYs or LYs).
    wtp_grid : ndarray(float64, ndim=1), (n_wtp,)
        Willingness to pay, currency per effect unit.

    Returns
    -------
    NestedEvppi
        ``evppi`` and ``se``, each ``(n_wtp,)``, currency per patient.
    """
    c, e = _as_draws(costs, effects, ndim=3)
    w = _as_wtp(wtp_grid)
    mean, se = _regret_moments(_nmb_blocks(c.mean(axis=1), e.mean(axis=1), w), w.size)
    return NestedEvppi(evppi=mean, se=se)


def evppi(costs, effects, wtp_grid, params, *, reference_idx: int = 0) -> np.ndarray:
    """Per-patient EVPPI for a parameter group, by regression on a single PSA sample.

    The non-parametric regression method of Strong, Oakley & Brennan (2014,
    Med Decis Making 34:311): at each WTP the incremental NMB of every option
    against ``reference_idx`` is regressed on the group's parameters, and
    ``EVPPI = E[max_d g_d] - max_d E[g_d]`` with ``g_d`` the fitted values.

    The smoother is the one of :func:`conditional_expectation` (see there for
    the candidate bases and their limits), with the basis chosen by GCV for
    each option and each WTP. Because INB is linear in WTP and a fixed basis
    is a linear smoother, the incremental costs and effects are projected once
    per candidate basis and every WTP (its fit and its GCV score) follows in
    closed form, so a long WTP grid costs almost nothing extra.

    Parameters
    ----------
    costs, effects : ndarray(float64), (n_draws, n_options)
        PSA draws of costs (currency) and effects (QALYs or LYs).
    wtp_grid : ndarray(float64, ndim=1), (n_wtp,)
        Willingness to pay, currency per effect unit.
    params : ndarray(float64), (n_draws,) or (n_draws, k)
        PSA draws of the parameter group of interest, row-aligned with ``costs``.
    reference_idx : int
        Option the increments are taken against (the result depends on it
        only through the basis GCV picks).

    Returns
    -------
    ndarray(float64), (n_wtp,)
        EVPPI in currency per patient, ``>= 0``; ``<= evpi(...)`` up to Monte
        Carlo and smoothing error. Use a few thousand draws or more.
    """
    c, e = _as_draws(costs, effects)
    w = _as_wtp(wtp_grid)
    n_draws, n_options = c.shape
    if not 0 <= reference_idx < n_options:
        raise ValueError(f"reference_idx {reference_idx} outside 0..{n_options - 1}")
    projections = _projections(_as_params(params, n_draws))
    inc_c = c - c[:, reference_idx, None]
    inc_e = e - e[:, reference_idx, None]
    fit_c = np.stack([u @ (u.T @ inc_c) for u in projections])  # (n_bases, n_draws, n_options)
    fit_e = np.stack([u @ (u.T @ inc_e) for u in projections])
    res_c, res_e = inc_c - fit_c, inc_e - fit_e
    cc, ce, ee = (res_c**2).sum(axis=1), (res_c * res_e).sum(axis=1), (res_e**2).sum(axis=1)
    dof = n_draws - np.array([u.shape[1] for u in projections], dtype=np.float64)

    def fitted_inb_blocks() -> Iterator[tuple[slice, np.ndarray]]:
        draw_idx = np.arange(n_draws)[None, :, None]
        option_idx = np.arange(n_options)[None, None, :]
        step = max(1, _BLOCK_ELEMENTS // c.size)
        for start in range(0, w.size, step):
            wb = w[start : start + step, None, None]
            # RSS of the INB fit, wtp * res_e - res_c, for every (wtp, basis, option)
            rss = np.maximum(wb**2 * ee - 2.0 * wb * ce + cc, 0.0)
            best = (rss / dof[:, None] ** 2).argmin(axis=1)[:, None, :]  # (n_block, 1, n_options)
            idx = (best, draw_idx, option_idx)
            yield slice(start, start + wb.shape[0]), wb * fit_e[idx] - fit_c[idx]

    return _regret_moments(fitted_inb_blocks(), w.size)[0]


# --------------------------------------------------------------------------- the smoother


def _natural_spline_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Natural cubic spline basis (Hastie, Tibshirani & Friedman, ESL eq. 5.4-5.5).

    ``len(knots)`` columns: 1, x and K - 2 truncated-power terms constrained to
    be linear beyond the boundary knots.
    """
    cols = [np.ones_like(x), x]
    last = knots[-1]

    def d(knot: float) -> np.ndarray:
        return (np.maximum(x - knot, 0.0) ** 3 - np.maximum(x - last, 0.0) ** 3) / (last - knot)

    if knots.size > 2:
        d_penultimate = d(knots[-2])
        cols += [d(k) - d_penultimate for k in knots[:-2]]
    return np.column_stack(cols)


def _spline_basis(x: np.ndarray, n_knots: int) -> np.ndarray:
    """Natural spline basis of ``x`` with knots at its quantiles (fewer if ``x`` has ties)."""
    knots = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n_knots)))
    return _natural_spline_basis(x, knots)


def _polynomial_basis(z: np.ndarray, degree: int) -> np.ndarray:
    """All monomials of total degree <= ``degree`` in the columns of ``z``."""
    cols = [np.ones(z.shape[0])]
    for d in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(range(z.shape[1]), d):
            cols.append(np.prod(z[:, combo], axis=1))
    return np.column_stack(cols)


def _candidate_bases(theta: np.ndarray) -> list[np.ndarray]:
    n, _ = theta.shape
    spread = theta.max(axis=0) - theta.min(axis=0)
    varying = spread > 0.0
    if not varying.any():
        return [np.ones((n, 1))]
    theta = theta[:, varying]
    k = theta.shape[1]
    max_terms = max(k + 1, n // 10)  # at least 10 draws per coefficient, but always the linear fit
    if k <= 2:
        x = (theta - theta.min(axis=0)) / spread[varying]  # to [0, 1], for conditioning
        knot_counts = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20) if k == 1 else (2, 3, 4, 5, 6, 7, 8)
        bases, seen = [], set()
        for n_knots in knot_counts:
            per_dim = [_spline_basis(x[:, j], n_knots) for j in range(k)]
            shape = tuple(b.shape[1] for b in per_dim)
            if shape in seen:  # ties in x left fewer distinct knots than asked for
                continue
            seen.add(shape)
            if k == 1:
                bases.append(per_dim[0])
            else:  # tensor product: all main effects and interactions
                bases.append((per_dim[0][:, :, None] * per_dim[1][:, None, :]).reshape(n, -1))
    else:
        z = (theta - theta.mean(axis=0)) / theta.std(axis=0)
        bases = [_polynomial_basis(z, degree) for degree in (1, 2, 3)]
    return [b for i, b in enumerate(bases) if i == 0 or b.shape[1] <= max_terms]


def _as_params(params, n_draws: int) -> np.ndarray:
    theta = np.asarray(params, dtype=np.float64)
    if theta.ndim == 1:
        theta = theta[:, None]
    if theta.ndim != 2 or theta.shape[0] != n_draws:
        raise ValueError(
            f"params must be (n_draws,) or (n_draws, k) with one row per draw "
            f"(n_draws = {n_draws}), got shape {np.shape(params)}"
        )
    if not np.all(np.isfinite(theta)):
        raise ValueError("params must be finite")
    if n_draws < theta.shape[1] + 3:
        raise ValueError(f"{n_draws} draws are too few to regress on {theta.shape[1]} parameters")
    return theta


def _projections(theta: np.ndarray) -> list[np.ndarray]:
    """Orthonormal bases (n_draws, rank) of the candidate regression spaces.

    Via SVD, so collinear columns (ties, a binary parameter) only lower the rank.
    """
    out = []
    for basis in _candidate_bases(theta):
        u, s, _ = np.linalg.svd(basis, full_matrices=False)
        out.append(u[:, s > s[0] * max(basis.shape) * np.finfo(np.float64).eps])
    return out


def conditional_expectation(params, y) -> np.ndarray:
    """Least-squares estimate of ``E[y | params]`` at each draw, basis chosen by GCV.

    The smoother behind :func:`evppi`. Candidate fixed bases, each fitted by
    least squares (via SVD, so collinear columns are harmless):

    - one parameter: natural cubic regression splines with 2 (a straight line)
      to 20 knots at quantiles of the parameter;
    - two parameters: tensor products of those splines, 2 x 2 to 8 x 8 knots
      (all main effects and interactions);
    - three or more: full polynomials with all interactions, total degree 1,
      2 or 3 in the standardised parameters.

    Candidates with more than ``n_draws / 10`` coefficients are dropped (the
    straight line is always kept), and for each column of ``y`` the basis with
    the lowest generalised cross-validation score ``n RSS / (n - p)^2`` is used.
    Parameters that never vary are ignored; one taking a few values (a binary
    switch) gets at most one coefficient per value, so the fit is the group mean.

    Limits: this is regression on an unpenalised basis, a simpler cousin of the
    GAM Strong et al. use. Too rigid a basis biases EVPPI down; fitting noise
    (too many coefficients for the draws) biases it up by roughly
    ``p / n_draws`` of the residual variance. For three or more parameters only
    effects that a cubic polynomial captures are found; for larger or strongly
    non-linear groups use a Gaussian-process or INLA/SPDE method (Heath,
    Manolopoulou & Baio 2016, Stat Med 35:4264), e.g. in R's ``voi``.

    Parameters
    ----------
    params : ndarray(float64), (n_draws,) or (n_draws, k)
        Regressors, one row per draw.
    y : ndarray(float64), (n_draws,) or (n_draws, m)
        Responses; each column is smoothed separately.

    Returns
    -------
    ndarray(float64), shape of ``y``
        Fitted values. The intercept is always in the basis, so their mean
        equals the mean of ``y`` (up to rounding).
    """
    y = np.asarray(y, dtype=np.float64)
    y2 = y[:, None] if y.ndim == 1 else y
    if y.ndim not in (1, 2) or not np.all(np.isfinite(y2)):
        raise ValueError(f"responses must be finite, (n_draws,) or (n_draws, m), got {y.shape}")
    n = y2.shape[0]
    best_fit = np.empty_like(y2)
    best_gcv = np.full(y2.shape[1], np.inf)
    for u in _projections(_as_params(params, n)):
        fit = u @ (u.T @ y2)
        gcv = np.sum((y2 - fit) ** 2, axis=0) / (n - u.shape[1]) ** 2
        better = gcv < best_gcv
        best_fit[:, better] = fit[:, better]
        best_gcv[better] = gcv[better]
    return best_fit.reshape(y.shape)
