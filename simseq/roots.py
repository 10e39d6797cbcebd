"""Root finding for many independent problems at once: one per parameter draw.

``solve_monotone`` takes a bracket with a sign change per draw and narrows all of
them together, so that each step evaluates the function for every draw still
searching in one vectorised call. The steps are Brent's (secant or inverse
quadratic interpolation, falling back to bisection whenever a step would not
shrink the bracket fast enough; R. P. Brent, Algorithms for Minimization
without Derivatives, 1973, ch. 4), arranged as in SciPy's ``brentq``: given the
same function values, each draw takes exactly the iterates ``scipy.optimize.brentq``
would, and stops at the same point. Every branch is a ``np.where`` on the draw's
own values, so a draw's answer is bit for bit the same whichever other draws are
solved with it.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# relative part of the tolerance, as scipy's brentq: keeps the minimum step above
# rounding of x where |x| is large
_RTOL = 4.0 * np.finfo(float).eps


@dataclass(frozen=True)
class RootResult:
    """Roots of one problem per draw, and which draws have none.

    Attributes
    ----------
    x : ndarray(float64, shape=(n,))
        The root: the bracket end with the smaller |f| once the bracket is narrower
        than ``xtol`` (on log x with ``log_space``), so within ``xtol`` of the exact
        root; nan where not bracketed or not converged.
    f_lo, f_hi : ndarray(float64, shape=(n,))
        f at the two ends of the bracket.
    not_bracketed : ndarray(bool, shape=(n,))
        f(lo) and f(hi) have the same sign, or one is nan: no root was searched for.
    not_converged : ndarray(bool, shape=(n,))
        f was nan inside the bracket, or ``max_iter`` steps did not narrow it.
    n_evals : ndarray(int64, shape=(n,))
        Evaluations of f per draw, the two ends included.
    n_calls : int
        Calls of f (each for every draw still searching).
    """

    x: np.ndarray
    f_lo: np.ndarray
    f_hi: np.ndarray
    not_bracketed: np.ndarray
    not_converged: np.ndarray
    n_evals: np.ndarray
    n_calls: int

    @property
    def ok(self) -> np.ndarray:
        """bool (n,): a root was found."""
        return ~(self.not_bracketed | self.not_converged)


def solve_monotone(
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    lo,
    hi,
    *,
    xtol: float = 1e-7,
    log_space: bool = True,
    max_iter: int = 200,
    n_draws: int | None = None,
) -> RootResult:
    """Solve f(x) = 0 for every draw, between per-draw brackets.

    Parameters
    ----------
    f : callable
        ``f(x, rows)``: values at ``x`` (float64, (m,)) of the draws ``rows`` (int64,
        (m,), indices into 0..n-1), as float64 (m,). Called for every draw still
        searching at once; one root per draw is assumed (f monotone in x), found
        wherever f changes sign. A function of x alone can ignore ``rows``.
    lo, hi : float or array_like (n,)
        Bracket ends, lo < hi (> 0 with ``log_space``); n is their broadcast length,
        or ``n_draws``.
    xtol : float
        Accuracy of the root: of log x (relative, ~xtol * x) with ``log_space``, of x
        otherwise.
    log_space : bool
        Search on log x (for medians and other scales spanning decades).
    max_iter : int
        Steps after the two ends before a draw counts as not converged (Brent's
        method needs at most about (log2(width / xtol))^2, and on smooth functions
        some 10).
    n_draws : int, optional
        The number of problems when ``lo`` and ``hi`` are both scalars.

    Returns
    -------
    RootResult
    """
    shape = () if n_draws is None else (n_draws,)
    lo, hi, _ = np.broadcast_arrays(
        np.asarray(lo, np.float64), np.asarray(hi, np.float64), np.empty(shape)
    )
    lo, hi = np.atleast_1d(lo).copy(), np.atleast_1d(hi).copy()
    if lo.ndim != 1:
        raise ValueError(f"lo and hi must be scalars or 1-d arrays, got shape {lo.shape}")
    if not (xtol > 0 and np.isfinite(xtol)):
        raise ValueError(f"xtol must be finite and > 0, got {xtol}")
    bad = ~(lo < hi) | ~np.isfinite(lo) | ~np.isfinite(hi) | (log_space & ~(lo > 0))
    if bad.any():
        i = int(np.argmax(bad))
        need = "0 < lo < hi" if log_space else "lo < hi"
        raise ValueError(f"draw {i}: bracket [{lo[i]:g}, {hi[i]:g}]; need finite {need}")
    n = lo.shape[0]
    everyone = np.arange(n)
    n_calls = 0

    def call(x, rows):
        nonlocal n_calls
        n_calls += 1
        y = np.asarray(f(x, rows), dtype=np.float64)
        if y.shape != x.shape:
            raise ValueError(f"f returned shape {y.shape} for {x.shape[0]} draws")
        return y

    # on log x every point is exp(iterate), the ends too: brentq on log x, exactly
    a, b = (np.log(lo), np.log(hi)) if log_space else (lo, hi)
    f_lo = call(np.exp(a) if log_space else a, everyone)
    f_hi = call(np.exp(b) if log_space else b, everyone)
    n_evals = np.full(n, 2, np.int64)
    not_bracketed = ~(f_lo * f_hi <= 0.0)  # same sign, or nan
    x = np.full(n, np.nan)
    # an end that is a root is the answer, exactly
    at_lo = ~not_bracketed & (f_lo == 0.0)
    at_hi = ~not_bracketed & (f_hi == 0.0) & ~at_lo
    x[at_lo], x[at_hi] = a[at_lo], b[at_hi]
    searching = ~not_bracketed & ~at_lo & ~at_hi
    not_converged = np.zeros(n, bool)

    # Brent's state per draw: the iterate (cur, f_cur), the previous one (pre), the
    # other end of the bracket (blk), the last two steps (s_pre, s_cur)
    x_pre, x_cur = a.copy(), b.copy()
    f_pre, f_cur = f_lo.copy(), f_hi.copy()
    x_blk, f_blk = np.zeros(n), np.zeros(n)
    s_pre, s_cur = np.zeros(n), np.zeros(n)
    for step_no in range(max_iter + 1):
        rows = np.flatnonzero(searching)
        if rows.size == 0:
            break
        xp, xc, xb = x_pre[rows], x_cur[rows], x_blk[rows]
        fp, fc, fb = f_pre[rows], f_cur[rows], f_blk[rows]
        sp, sc = s_pre[rows], s_cur[rows]
        # the bracket is [cur, blk]: re-anchor blk where the sign changed
        change = (fp != 0.0) & (fc != 0.0) & (np.signbit(fp) != np.signbit(fc))
        xb, fb = np.where(change, xp, xb), np.where(change, fp, fb)
        sp, sc = np.where(change, xc - xp, sp), np.where(change, xc - xp, sc)
        # cur is the end with the smaller |f|
        swap = np.abs(fb) < np.abs(fc)
        xp, xc, xb = np.where(swap, xc, xp), np.where(swap, xb, xc), np.where(swap, xc, xb)
        fp, fc, fb = np.where(swap, fc, fp), np.where(swap, fb, fc), np.where(swap, fc, fb)
        tol = 0.5 * (xtol + _RTOL * np.abs(xc))
        s_bis = 0.5 * (xb - xc)
        converged = (fc == 0.0) | (np.abs(s_bis) < tol)
        # interpolation: secant through pre and cur, or inverse quadratic through all three
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            secant = -fc * (xc - xp) / (fc - fp)
            d_pre = (fp - fc) / (xp - xc)
            d_blk = (fb - fc) / (xb - xc)
            quadratic = -fc * (fb * d_blk - fp * d_pre) / (d_blk * d_pre * (fb - fp))
            s_try = np.where(xp == xb, secant, quadratic)
            short = 2.0 * np.abs(s_try) < np.minimum(np.abs(sp), 3.0 * np.abs(s_bis) - tol)
        interpolate = (np.abs(sp) > tol) & (np.abs(fc) < np.abs(fp)) & short
        # a step that did not shrink fast enough the last time falls back to bisection
        sp, sc = np.where(interpolate, sc, s_bis), np.where(interpolate, s_try, s_bis)
        xp, fp = xc, fc
        # never step by less than tol, so the bracket keeps shrinking
        x_new = xc + np.where(np.abs(sc) > tol, sc, np.where(s_bis > 0.0, tol, -tol))
        x_pre[rows], f_pre[rows], x_blk[rows], f_blk[rows] = xp, fp, xb, fb
        s_pre[rows], s_cur[rows] = sp, sc
        x_cur[rows] = np.where(converged, xc, x_new)
        f_cur[rows] = fc
        done = rows[converged]
        x[done] = xc[converged]
        searching[done] = False
        step_rows = rows[~converged]
        if step_rows.size == 0 or step_no == max_iter:
            break
        x_step = x_cur[step_rows]
        g = call(np.exp(x_step) if log_space else x_step, step_rows)
        n_evals[step_rows] += 1
        f_cur[step_rows] = g
        nan = np.isnan(g)
        not_converged[step_rows[nan]] = True
        searching[step_rows[nan]] = False
    not_converged |= searching  # max_iter steps were not enough
    if log_space:
        x = np.exp(x)
    return RootResult(x, f_lo, f_hi, not_bracketed, not_converged, n_evals, n_calls)
