"""Parametric survival families in R flexsurv's parameterisations; times in months.

Each family supplies three primitives on ``t >= 0``: the cumulative hazard
``H(t)``, the hazard ``h(t)`` and the inverse cumulative hazard ``t(e)`` with
``H(t) = e``. Everything else is derived once, in :class:`Family`:
``S = exp(-H)``, ``F = -expm1(-H)``, ``f = h S``, ``quantile(p) = t(-log1p(-p))``.
Working through ``H`` rather than ``S`` keeps both ends accurate: ``H`` is tiny
(not ``1 - S``) near ``t = 0`` and large (not underflowed) in the far tail.

Families (``Phi`` is the standard normal CDF; ``P``/``Q`` the regularised lower
and upper incomplete gamma functions):

========================  ============================================================
``exponential(rate)``     ``S(t) = exp(-rate t)``
``weibull(shape, scale)`` ``S(t) = exp(-(t/scale)^shape)``
``llogis(shape, scale)``  ``S(t) = 1 / (1 + (t/scale)^shape)``
``lnorm(meanlog, sdlog)`` ``S(t) = 1 - Phi((log t - meanlog) / sdlog)``
``gompertz(shape, rate)`` ``h(t) = rate exp(shape t)``,
                          ``H(t) = rate/shape (exp(shape t) - 1)``; ``shape = 0`` is the
                          exponential; ``shape < 0`` leaves a fraction
                          ``exp(rate/shape)`` that never has the event
``gamma(shape, rate)``    ``S(t) = Q(shape, rate t)``
                          (``scipy.stats.gamma(a=shape, scale=1/rate)``)
``gengamma(mu, sigma, Q)`` Prentice (1974), as flexsurv ``dgengamma``: with
                          ``w = (log t - mu)/sigma``, ``k = Q^-2``,
                          ``G = k exp(Q w) ~ Gamma(k, 1)``; ``S(t) = Q(k, G)`` for
                          ``Q > 0`` and ``P(k, G)`` for ``Q < 0``; ``Q = 0`` is
                          ``lnorm(mu, sigma)``. Equivalently
                          ``scipy.stats.gengamma(a=k, c=Q/sigma,
                          scale=exp(mu + sigma log(Q^2)/Q))``.
========================  ============================================================

For ``|Q| < GENGAMMA_Q_TEMME`` (0.01) the generalised gamma is evaluated in log-time
through Temme's uniform asymptotic expansion of the incomplete gamma function
(DLMF 8.12), which is exact to < 1e-12 there and becomes the log-normal at Q = 0:
SciPy's ``gammainc``/``gammaincinv`` at shape ``1/Q^2`` lose relative accuracy in
the lower tail as the shape grows (1e-8 at 1e6, 20% at 1e8 eight sd out).

Means and restricted means use closed forms where they exist (all families
except the Gompertz RMST, llogis RMST with shape <= 1, and the small-|Q| gengamma
RMST) and numerical integration of ``S`` otherwise, and whenever a stored ``hr``
cannot be folded into the parameters.

Each family also carries what fitting and model building need to know about it,
so that :mod:`simseq.fit` and :mod:`simseq.model` never branch on a family's name:
its real-valued parameters, the scale parameter solved in closed form from one
(t, S) point, start values for least squares, a closed-form two-point fit where
one exists, its proportional-hazards and accelerated-failure-time transforms, its
cured fraction and, for the power-law families, ``H(t) = a t^k``.

:class:`Family` methods do not validate their parameters (they are meant to sit
inside optimisers); :class:`Distribution` validates on construction.

:class:`Distribution` binds a family to parameter values and an optional
proportional-hazards multiplier ``hr`` (``S(t) = S0(t)^hr``). Its
:meth:`~Distribution.code` and :meth:`~Distribution.param_row` are what crosses
into the numba kernels of :mod:`simseq.engine.sample`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy  # scipy.special is imported on first use: 0.2-0.3 s of every start

from simseq.engine import codes
from simseq.engine.sample import GENGAMMA_Q_TEMME, TEMME_C0, TEMME_C1


def _tanhsinh():
    """scipy.integrate.tanhsinh, imported on first use: scipy.integrate costs ~0.5 s of
    start-up that most runs never need (closed forms cover the common cases)."""
    from scipy.integrate import tanhsinh

    return tanhsinh


__all__ = ["FAMILIES", "Distribution", "Family", "get_family"]

_LN2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
# Below this the regularised incomplete gamma functions are replaced by log-space
# tail expansions so that log S (hence H and h) stays finite and accurate.
_TINY = 1e-280
_ERRSTATE = {"divide": "ignore", "invalid": "ignore", "over": "ignore", "under": "ignore"}


def _result(x):
    """Float64 array, or a numpy scalar when the inputs were scalars."""
    return np.asarray(x, dtype=np.float64)[()]


def _floats(*xs):
    return np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in xs))


# --------------------------------------------------------------------------------------
# Special-function helpers (all vectorised, all in log space where it matters)
# --------------------------------------------------------------------------------------


def _log1pmx(x):
    """log(1 + x) - x without cancellation near 0."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(**_ERRSTATE):
        direct = np.log1p(x) - x
    small = np.abs(x) < 0.1
    if not np.any(small):
        return direct
    xs = np.where(small, x, 0.0)
    series = np.zeros_like(xs)
    power = xs * xs
    for n in range(2, 22):
        series += (-1.0) ** (n + 1) * power / n
        power = power * xs
    return np.where(small, series, direct)


def _gamma_log_upper_cf(k, x):
    """log of Lentz's continued fraction C with Q(k, x) = x^k e^-x C / Gamma(k); x >~ k."""
    fpmin = 1e-300
    b = x + 1.0 - k
    c = np.full_like(x, 1.0 / fpmin)
    d = 1.0 / b
    h = d.copy()
    for i in range(1, 1000):
        an = -i * (i - k)
        b = b + 2.0
        d = an * d + b
        d = np.where(np.abs(d) < fpmin, fpmin, d)
        c = b + an / c
        c = np.where(np.abs(c) < fpmin, fpmin, c)
        d = 1.0 / d
        delta = d * c
        h = h * delta
        if np.all(np.abs(delta - 1.0) < 1e-16):
            break
    return np.log(h)


def _gamma_log_lower_series(k, x):
    """log of the Kummer series M with P(k, x) = x^k e^-x M / Gamma(k + 1); x below k."""
    total = np.ones_like(x)
    term = np.ones_like(x)
    for n in range(1, 5000):
        term = term * x / (k + n)
        total = total + term
        if np.all(term < 1e-17 * total):
            break
    return np.log(total)


def _gamma_log_lower_temme(k, x):
    """log P(k, x) from Temme's uniform expansion (leading correction); for k > 1e4."""
    d = (x - k) / k
    eta = np.sign(d) * np.sqrt(-2.0 * _log1pmx(d))
    y = eta * np.sqrt(k)
    log_cdf = scipy.special.log_ndtr(y)
    mills = np.exp(-0.5 * y * y - _HALF_LOG_2PI - log_cdf)
    return log_cdf + np.log1p(-mills / np.sqrt(k) * (1.0 / d - 1.0 / eta))


def _gamma_tails(k, log_x):
    """Both tails of Gamma(k, 1) at x = exp(log_x), accurate where they are near 1 or underflow.

    Returns
    -------
    log_sf, log_cdf : ndarray
        log Q(k, x) and log P(k, x).
    log_xh_sf, log_xh_cdf : ndarray
        log(x f(x) / Q(k, x)) and log(x f(x) / P(k, x)), f the Gamma(k, 1) density:
        the hazard-like ratios the gamma and generalised gamma hazards need,
        computed without the cancellation of log f - log S far out in a tail.
    """
    k, log_x = _floats(k, log_x)
    with np.errstate(**_ERRSTATE):
        x = np.exp(log_x)
        p = scipy.special.gammainc(k, x)
        q = scipy.special.gammaincc(k, x)
        gln = scipy.special.gammaln(k)
        log_x_pdf = np.where(np.isinf(x), -np.inf, k * log_x - x - gln)
        log_sf = np.where(p < 0.5, np.log1p(-p), np.log(q))
        log_cdf = np.where(q < 0.5, np.log1p(-q), np.log(p))
        # Arrays (not numpy scalars) so that the tails below can be filled in place.
        log_xh_sf = np.array(log_x_pdf - log_sf, dtype=np.float64)
        log_xh_cdf = np.array(log_x_pdf - log_cdf, dtype=np.float64)
        log_sf = np.array(log_sf, dtype=np.float64)
        log_cdf = np.array(log_cdf, dtype=np.float64)
        # Upper tail by continued fraction; x overflowed: Q = 0 and the hazard is 1.
        upper = (q < _TINY) & (x > 0.0) & np.isfinite(x)
        if np.any(upper):
            lcf = _gamma_log_upper_cf(k[upper], x[upper])
            log_sf[upper] = -x[upper] + k[upper] * log_x[upper] - gln[upper] + lcf
            log_xh_sf[upper] = -lcf
        overflow = np.isinf(x) & (log_x > 0.0)
        log_sf = np.where(overflow, -np.inf, log_sf)
        log_xh_sf = np.where(overflow, log_x, log_xh_sf)
        # Lower tail by series (x = 0 included: P = 0, x f / P = k), or Temme for
        # k > 1e4 where the series would need ~sqrt(k) terms.
        lower = (p < _TINY) & ~np.isnan(log_x) & (log_x < np.inf)
        if np.any(lower):
            kl, xl, lxl = k[lower], x[lower], log_x[lower]
            big = (kl > 1e4) & (xl > 0.0)
            vals = np.empty_like(xl)
            xh = np.empty_like(xl)
            if np.any(big):
                vals[big] = _gamma_log_lower_temme(kl[big], xl[big])
                xh[big] = lxl[big] * kl[big] - xl[big] - scipy.special.gammaln(kl[big]) - vals[big]
            if np.any(~big):
                ks, xs, lxs = kl[~big], xl[~big], lxl[~big]
                ls = _gamma_log_lower_series(ks, xs)
                vals[~big] = ks * lxs - xs - scipy.special.gammaln(ks + 1.0) + ls
                xh[~big] = np.log(ks) - ls
            log_cdf[lower] = vals
            log_xh_cdf[lower] = xh
    return log_sf, log_cdf, log_xh_sf, log_xh_cdf


def _gamma_logcdf(k, x):
    """log P(k, x), accurate where P is near 1 and where it underflows."""
    with np.errstate(**_ERRSTATE):
        return _gamma_tails(k, np.log(x))[1]


def _gamma_x_sf(k, e):
    """x with Q(k, x) = exp(-e), inverting the smaller of the two tails."""
    k, e = _floats(k, e)
    with np.errstate(**_ERRSTATE):
        return np.where(
            e < _LN2,
            scipy.special.gammaincinv(k, -np.expm1(-e)),
            scipy.special.gammainccinv(k, np.exp(-e)),
        )


def _gamma_x_cdf(k, e):
    """x with P(k, x) = exp(-e), inverting the smaller of the two tails."""
    k, e = _floats(k, e)
    with np.errstate(**_ERRSTATE):
        return np.where(
            e < _LN2,
            scipy.special.gammainccinv(k, -np.expm1(-e)),
            scipy.special.gammaincinv(k, np.exp(-e)),
        )


def _horner(coeffs, x):
    acc = np.zeros_like(x)
    for c in reversed(coeffs):
        acc = acc * x + c
    return acc


def _stirling(u):
    """Remainder of Stirling's series for log Gamma(z) at z = 1/u (z >= 1e4)."""
    u2 = u * u
    return u * (1.0 / 12.0 - u2 * (1.0 / 360.0 - u2 / 1260.0))


def _exp_ratio(x):
    """2 (exp(x) - 1 - x) / x**2, equal to 1 at x = 0, without cancellation."""
    x = np.asarray(x, dtype=np.float64)
    small = np.abs(x) < 0.5
    xs = np.where(small, x, 0.0)
    series = np.zeros_like(xs)
    term = np.ones_like(xs)
    for n in range(24):
        series += term
        term = term * xs / (n + 3)
    xd = np.where(small, 1.0, x)
    with np.errstate(**_ERRSTATE):
        return np.where(small, series, 2.0 * (np.expm1(xd) - xd) / (xd * xd))


def _gengamma_temme(w, q):
    """(y, log S, log F, log phi(y)) of the generalised gamma at log-time w, small |Q|.

    The NumPy twin of ``simseq.engine.sample._gengamma_temme``: with
    ``lam = exp(Q w)``, ``eta = sign(Q w) sqrt(2 (lam - 1 - log lam))`` and
    ``y = eta / Q``, Temme's uniform expansion (DLMF 8.12.3-4) gives
    ``S = Phi(-y) + Q phi(y) C`` and ``F = Phi(y) - Q phi(y) C`` with
    ``C = c0(eta) + Q^2 c1(eta)``; the log-time density is
    ``phi(y) exp(-stirling(Q^2))`` exactly. At Q = 0 this is the log-normal.
    """
    w, q = _floats(w, q)
    finite = np.isfinite(w)
    wf = np.where(finite, w, 0.0)
    with np.errstate(**_ERRSTATE):
        x = q * wf
        y = wf * np.sqrt(_exp_ratio(x))
        eta = q * y
        small = np.abs(eta) < 0.1
        eta_s = np.where(small, eta, 0.0)
        series = _horner(TEMME_C0, eta_s) + q * q * _horner(TEMME_C1, eta_s)
        lam1 = np.expm1(np.where(small, 1.0, x))
        eta_d = np.where(small, 1.0, eta)
        c1 = 1.0 / eta_d**3 - 1.0 / lam1**3 - 1.0 / lam1**2 - 1.0 / (12.0 * lam1)
        direct = 1.0 / lam1 - 1.0 / eta_d + q * q * c1
        qc = q * np.where(small, series, direct)
        log_phi = -0.5 * y * y - _HALF_LOG_2PI
        # Far out in one tail (S or F below exp(-5000) at |Q| = 0.01) the two terms
        # cancel beyond what the truncated expansion resolves; that tail is then 0,
        # exactly as in the kernel.
        log_upper = scipy.special.log_ndtr(-y)
        arg = qc * np.exp(log_phi - log_upper)
        log_s = np.where(arg <= -1.0, -np.inf, log_upper + np.log1p(np.maximum(arg, -1.0)))
        log_lower = scipy.special.log_ndtr(y)
        arg = -qc * np.exp(log_phi - log_lower)
        log_f = np.where(arg <= -1.0, -np.inf, log_lower + np.log1p(np.maximum(arg, -1.0)))
    log_s = np.where(finite, log_s, np.where(w < 0.0, 0.0, -np.inf))
    log_f = np.where(finite, log_f, np.where(w < 0.0, -np.inf, 0.0))
    return np.where(finite, y, w), log_s, log_f, np.where(finite, log_phi, -np.inf)


def _gengamma_temme_w_at(e, q):
    """w with log S(w) = -e for the small-|Q| generalised gamma (Newton, as the kernel).

    Starts from the log-normal solution. Newton runs on log F where F < 1/2 and on
    log S otherwise, so that steps stay well scaled deep in either tail.
    """
    e, q = _floats(e, q)
    with np.errstate(**_ERRSTATE):
        left = e < _LN2
        log_f_target = np.log(-np.expm1(-e))
        w = np.where(
            left,
            scipy.special.ndtri(-np.expm1(-e)),
            np.where(
                e < 700.0,
                -scipy.special.ndtri(np.exp(-e)),
                np.sqrt(2.0 * e - np.log(4.0 * np.pi * e)),
            ),
        )
        active = (e > 0.0) & np.isfinite(e)
        w = np.where(active, w, np.where(e == 0.0, -np.inf, np.inf))
        log_norm = _stirling(q * q)
        for _ in range(50):
            _, log_s, log_f, log_phi = _gengamma_temme(np.where(active, w, 0.0), q)
            log_dens = log_phi - log_norm
            step = np.where(
                left,
                (log_f_target - log_f) * np.exp(log_f - log_dens),
                (log_s + e) * np.exp(log_s - log_dens),
            )
            bad = active & ~np.isfinite(step)
            w = np.where(bad, np.inf, w)
            active = active & ~bad
            w = np.where(active, w + step, w)
            active = active & (np.abs(step) > 1e-13 * np.maximum(1.0, np.abs(w)))
            if not active.any():
                break
    return w


def _gengamma_log_mean(mu, sigma, q):
    """log E[T] of the generalised gamma (+inf when infinite), stable as Q -> 0.

    ``E[T] = exp(mu) k^-r Gamma(k + r) / Gamma(k)`` with ``k = Q^-2``, ``r = sigma/Q``,
    finite iff ``k + r > 0`` (always for Q > 0; ``|Q| sigma < 1`` for Q < 0). For
    small |Q| Stirling's series cancels the ``k log k`` terms analytically:
    ``sigma^2 (log1pmx(x)/x^2 + log1p(x)/x) - log1p(x)/2 + stirling(Q^2/(1+x)) -
    stirling(Q^2)`` with ``x = sigma Q``, which is ``sigma^2 / 2`` at Q = 0.
    """
    mu, sigma, q = _floats(mu, sigma, q)
    x = sigma * q
    finite = 1.0 + x > 0.0
    with np.errstate(**_ERRSTATE):
        small_q = np.abs(q) < GENGAMMA_Q_TEMME
        qb = np.where(small_q, 1.0, q)
        k = 1.0 / (qb * qb)
        r = sigma / qb
        kr = np.where(finite, k + r, 1.0)
        big = scipy.special.gammaln(kr) - scipy.special.gammaln(k) - r * np.log(k)
        xs = np.where(finite, x, 0.0)
        tiny_x = np.abs(xs) < 0.1
        xt = np.where(tiny_x, xs, 0.0)
        xd = np.where(tiny_x, 1.0, xs)
        # log1pmx(x) / x^2 = sum_{n>=2} (-1)^(n+1) x^(n-2) / n
        l2 = np.where(
            tiny_x,
            _horner(tuple((-1.0) ** (n + 1) / n for n in range(2, 22)), xt),
            (np.log1p(xd) - xd) / (xd * xd),
        )
        l1 = np.where(xs == 0.0, 1.0, np.log1p(xs) / np.where(xs == 0.0, 1.0, xs))
        q2 = np.where(small_q, q * q, 0.0)
        small = (
            sigma * sigma * (l2 + l1)
            - 0.5 * np.log1p(xs)
            + _stirling(q2 / (1.0 + xs))
            - _stirling(q2)
        )
        return np.where(finite, mu + np.where(small_q, small, big), np.inf)


def _exp_e1(z):
    """exp(z) E1(z) for z > 0, without overflow for large z."""
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(**_ERRSTATE):
        direct = np.exp(z) * scipy.special.exp1(z)
        zs = np.where(z > 50.0, z, 50.0)
        # Asymptotic series; at z > 50 the 20-term truncation error is < 1e-17.
        series = np.zeros_like(zs)
        term = 1.0 / zs
        for n in range(20):
            series += term
            term = -term * (n + 1) / zs
    return np.where(z > 50.0, series, direct)


# --------------------------------------------------------------------------------------
# Numerical integral of a survival curve (mean / RMST fallback)
# --------------------------------------------------------------------------------------

# Cumulative hazards at which [0, horizon] is split (S = 0.999, 0.9, 0.5, 0.1, 1e-2,
# 1e-4, 1e-8, 1e-16) so that the quadrature sees each scale of the curve separately.
_SPLIT_CUMHAZ = (
    1e-3,
    -math.log(0.9),
    _LN2,
    *(math.log(10.0) * n for n in (1, 2, 4, 8, 16)),
)
_QUAD_RTOL = 1e-11


def _integrate_survival(cumhaz, time_at, horizon, params):
    """Elementwise integral of exp(-cumhaz(t, *params)) over [0, horizon].

    Parameters
    ----------
    cumhaz, time_at : callable
        Vectorised ``H(t, *params)`` and its inverse ``t(e, *params)``.
    horizon : ndarray(float64, ndim=1)
        Upper limits, ``> 0``; ``inf`` for the mean (the caller has checked that
        it is finite).
    params : sequence of ndarray(float64, ndim=1)
        Parameter values, one entry per integral.

    Returns
    -------
    ndarray(float64, ndim=1)

    Uses SciPy's vectorised tanh-sinh quadrature, all integrals at once, over
    pieces cut at fixed survival levels; beyond the last cut the tail is
    integrated on a log-time axis, where a power-law tail ``S ~ t^-a`` becomes
    ``exp(-(a - 1) v)``.
    """

    def surv(t, *p):
        with np.errstate(**_ERRSTATE):
            return np.exp(-cumhaz(t, *p))

    def surv_log_axis(v, start, *p):
        with np.errstate(**_ERRSTATE):
            t = start * np.exp(v)
            s = surv(t, *p)
            return np.where(s == 0.0, 0.0, s * t)

    n = horizon.size
    with np.errstate(**_ERRSTATE):
        cuts = np.array([time_at(np.full(n, e), *params) for e in _SPLIT_CUMHAZ])
    cuts = np.minimum(np.where(np.isnan(cuts), np.inf, cuts), horizon)
    cuts = np.maximum.accumulate(cuts, axis=0)
    finite_end = np.where(np.isinf(horizon), cuts[-1], horizon)
    edges = np.vstack([np.zeros(n), cuts, finite_end])
    total = np.zeros(n)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        piece = a < b
        if piece.any():
            args = tuple(x[piece] for x in params)
            res = _tanhsinh()(surv, a[piece], b[piece], args=args, rtol=_QUAD_RTOL)
            total[piece] += res.integral
    tail = np.isinf(horizon)
    if tail.any():
        args = (finite_end[tail], *(x[tail] for x in params))
        res = _tanhsinh()(surv_log_axis, 0.0, np.inf, args=args, rtol=_QUAD_RTOL)
        total[tail] += res.integral
    return total


# --------------------------------------------------------------------------------------
# Start values and two-point lines for fitting (see Family.starts, Family.two_point_fit)
# --------------------------------------------------------------------------------------


def _brentq():
    """scipy.optimize.brentq, imported on first use (as ``_tanhsinh``)."""
    from scipy.optimize import brentq

    return brentq


def _line(x, y):
    """Least-squares line ``y = a + b x`` as ``(a, b)``; ``b = 1``, ``a = mean(y - x)`` for
    one point."""
    if len(x) < 2:
        return float(np.mean(y - x)), 1.0
    b, a = np.polyfit(x, y, 1)
    return float(a), float(b)


def _weibull_line(times, surv):
    """(shape, scale) of the Weibull line ``log H = shape log t - shape log scale``
    through the points, shape clipped to [0.05, 50]."""
    x, y = np.log(times), np.log(-np.log(surv))
    a, b = _line(x, y)
    shape = min(max(b, 0.05), 50.0)
    if shape != b:  # a clipped slope keeps the line through the points' centroid
        return shape, math.exp(np.mean(x) - np.mean(y) / shape)
    return shape, math.exp(-a / shape)


def _lnorm_line(times, surv):
    """(meanlog, sdlog) of the log-normal line ``probit(1 - S) = (log t - meanlog) / sdlog``
    through the points, 1/sdlog clipped to [0.02, 20]."""
    x, y = np.log(times), scipy.special.ndtri(1 - surv)
    a, b = _line(x, y)
    slope = min(max(b, 0.02), 20.0)
    sdlog = 1.0 / slope
    if slope != b:  # a clipped slope keeps the line through the points' centroid
        return float(np.mean(x) - np.mean(y) * sdlog), sdlog
    return -a * sdlog, sdlog


def _shape_scale_through(points, link):
    """(shape, scale) of the line ``link(S) = shape (log t - log scale)`` through two
    (t, s) points: Weibull with link log(-log S), log-logistic with the log odds."""
    (t1, s1), (t2, s2) = points
    y1, y2 = link(s1), link(s2)
    shape = (y2 - y1) / (math.log(t2) - math.log(t1))
    return (shape, t1 * math.exp(-y1 / shape))


def _gompertz_shapes(times, surv):
    """Gompertz shapes through the first and last points (H2/H1 fixes the shape), then 0."""
    if len(times) < 2:
        return [0.0]
    t1, t2 = float(times[0]), float(times[-1])
    ratio = math.log(surv[-1]) / math.log(surv[0])  # H2 / H1 > 1 for decreasing S

    def g(a: float) -> float:
        # log(expm1(a t2) / expm1(a t1)), continuous through a = 0 where it is log(t2/t1)
        if abs(a) < 1e-12:
            return math.log(t2 / t1) - math.log(ratio)
        return math.log(math.expm1(a * t2) / math.expm1(a * t1)) - math.log(ratio)

    lo, hi = -1.0 / t1, 1.0 / t1
    for _ in range(60):
        try:
            if g(lo) < 0 < g(hi):
                return [_brentq()(g, lo, hi), 0.0]
        except (OverflowError, ZeroDivisionError):
            break
        lo, hi = 2 * lo, 2 * hi
    return [0.0]


# --------------------------------------------------------------------------------------
# Families
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """A parametric survival family in flexsurv's parameterisation.

    Methods are vectorised: ``t`` (or ``p``) and the parameters, given positionally
    in ``param_names`` order, broadcast against each other. Parameters are not
    validated here (call :meth:`validate`; :class:`Distribution` does) so that the
    methods can sit inside optimisers; invalid values give nan.

    Attributes
    ----------
    name : str
        Family name, a key of ``FAMILIES``.
    code : int
        Integer code shared with the kernels (``simseq.engine.codes``).
    param_names : tuple of str
        Parameter names in flexsurv order.

    Each family also declares, for :mod:`simseq.fit` and :mod:`simseq.model`, what
    it knows beyond its curves: which parameters are real-valued (``real_params``),
    which one is the time scale solved from a median or landmark (``scale_param``,
    :meth:`solve_scale`), start values for least squares (:meth:`starts`), its
    closed-form two-point fit (:meth:`two_point_fit`), its proportional-hazards and
    accelerated-failure-time transforms (:meth:`ph_params`, :meth:`aft_params`),
    its cured fraction (:meth:`cure_fraction`) and whether its cumulative hazard is
    a power of t (:meth:`power_form`, :meth:`from_power_form`).
    """

    name: str
    code: int
    param_names: tuple[str, ...]

    # Per-parameter domain, parallel to param_names: "positive" or "real".
    _domains: ClassVar[tuple[str, ...]] = ()
    scale_param: ClassVar[str]
    """The parameter :meth:`solve_scale` solves: a time scale, its reciprocal or its log."""
    cure_formula: ClassVar[str | None] = None
    """``cure_fraction`` in the parameter names, for messages; None without a cure."""

    # --- primitives, one set per family (t >= 0 already broadcast float arrays) ---

    def _cumhaz(self, t, *params):
        raise NotImplementedError

    def _hazard(self, t, *params):
        raise NotImplementedError

    def _time_at(self, e, *params):
        """t with H(t) = e (e >= 0)."""
        raise NotImplementedError

    def _rmst_closed(self, horizon, *params):
        """(rmst, available) arrays; horizon = inf asks for the mean.

        Where ``available`` is False the value is ignored and integrated numerically.
        """
        return np.full(np.shape(horizon), np.nan), np.zeros(np.shape(horizon), bool)

    def _tail_index(self, *params):
        """a with S(t) ~ t^-a as t -> inf (inf for lighter tails, 0 for a cured fraction).

        The mean of S ** hr is finite iff hr * a > 1.
        """
        return np.full(np.shape(params[0]), np.inf)

    def _cure_fraction(self, *params):
        return np.zeros(np.shape(params[0]))

    # --- fitting: what simseq.fit asks of a family (one parameter set, not vectorised) ---

    @property
    def real_params(self) -> tuple[str, ...]:
        """Parameters that may take any real value; the others must be > 0."""
        return tuple(n for n, d in zip(self.param_names, self._domains, strict=True) if d == "real")

    def solve_scale(self, t: float, s: float, params: Mapping[str, float]) -> float:
        """The value of ``scale_param`` with ``S(t) = s``, in closed form.

        ``t`` in months, ``0 < s < 1``; ``params`` holds the other parameters by name
        (an entry for ``scale_param`` itself is ignored). Where the closed form
        breaks down the result is not finite or ArithmeticError/ValueError is
        raised; callers check ``S(t)`` and fall back to root finding.
        """
        raise NotImplementedError

    def solve_scale_array(self, t, s, *params):
        """:meth:`solve_scale` vectorised: the ``scale_param`` value with ``S(t) = s``.

        ``t`` (months), ``s`` and ``params`` (every parameter in ``param_names``
        order; the value in the scale slot is ignored) broadcast against each other,
        e.g. one median per parameter draw. Where the closed form breaks down the
        result is not finite (no exception): callers check it.

        Returns
        -------
        ndarray(float64)
            The broadcast shape of the inputs.
        """
        if len(params) != len(self.param_names):
            raise ValueError(self._count_message(len(params)))
        t, s, *params = _floats(t, s, *params)
        with np.errstate(**_ERRSTATE):
            return _result(self._scale_at(t, s, *params))

    def _scale_at(self, t, s, *params):
        raise NotImplementedError

    def starts(
        self, times: np.ndarray, surv: np.ndarray, fixed: Mapping[str, float]
    ) -> list[dict[str, float]]:
        """Starting parameter sets for least squares through the points ``(times, surv)``.

        ``times``, ``surv`` : ndarray(float64, ndim=1), sorted by time, survival
        strictly inside (0, 1). ``fixed`` holds the parameters not being fitted, by
        name; they may inform the free ones. Each start is a dict by parameter name
        with at least every free parameter (the optimiser uses only those).
        """
        raise NotImplementedError

    def two_point_fit(self, points: Sequence[tuple[float, float]]) -> tuple[float, ...] | None:
        """Parameters through both ``(t, s)`` of ``points`` (sorted by time) in closed
        form, or None where the family has no closed form."""
        return None

    def _through_median_point(self, starts, times, surv, fixed):
        """``starts`` with ``scale_param`` re-solved (unless fixed) so that each passes
        through the point nearest the median: for families whose starts only guess
        the shape, this puts the curve at the right time scale."""
        if self.scale_param in fixed:
            return starts
        target = np.log(-np.log(surv))
        i = int(np.argmin(np.abs(target - math.log(math.log(2)))))
        s_i = math.exp(-math.exp(target[i]))
        anchored = []
        for start in starts:
            start = dict(start, **fixed)
            try:
                start[self.scale_param] = self.solve_scale(float(times[i]), s_i, start)
            except (ArithmeticError, ValueError):
                pass  # e.g. exp(shape t) overflows: keep the start's own value
            anchored.append(start)
        return anchored

    # --- transforms ---

    def ph_params(self, hr, *params) -> tuple | None:
        """Parameters with the hazard multiplied by ``hr`` (``S ** hr``), or None where
        ``S ** hr`` is not a member of the family (``Distribution`` then keeps ``hr``)."""
        return None

    def aft_params(self, time_ratio: float, *params) -> tuple:
        """Parameters of ``T' = time_ratio T``, i.e. ``S'(t) = S(t / time_ratio)``."""
        raise NotImplementedError

    def power_form(self, *params) -> tuple[float, float] | None:
        """``(k, a)`` with ``H(t) = a t^k`` for these parameters, or None where the
        family's cumulative hazard is not a power of t (see ``model.merge_clocks``)."""
        return None

    def from_power_form(self, k: float, a: float) -> tuple[float, ...] | None:
        """Parameters with ``H(t) = a t^k``, or None where the family has none."""
        return None

    # --- derived, public ---

    def _prepare(self, t, params):
        if len(params) != len(self.param_names):
            raise ValueError(self._count_message(len(params)))
        arrays = _floats(t, *params)
        t = arrays[0]
        return np.where(t < 0.0, 0.0, t), t < 0.0, arrays[1:]

    def cumhaz(self, t, *params):
        """Cumulative hazard ``H(t)``; 0 for ``t <= 0``."""
        t, _, params = self._prepare(t, params)
        with np.errstate(**_ERRSTATE):
            return _result(self._cumhaz(t, *params))

    def survival(self, t, *params):
        """Survival ``S(t) = exp(-H(t))``."""
        return _result(np.exp(-self.cumhaz(t, *params)))

    def cdf(self, t, *params):
        """Distribution function ``F(t) = -expm1(-H(t))``."""
        return _result(-np.expm1(-self.cumhaz(t, *params)))

    def hazard(self, t, *params):
        """Hazard ``h(t)``; 0 for ``t < 0``."""
        t, negative, params = self._prepare(t, params)
        with np.errstate(**_ERRSTATE):
            return _result(np.where(negative, 0.0, self._hazard(t, *params)))

    def density(self, t, *params):
        """Density ``f(t) = h(t) S(t)``."""
        t, negative, params = self._prepare(t, params)
        with np.errstate(**_ERRSTATE):
            return _result(_density(self._hazard(t, *params), self._cumhaz(t, *params), negative))

    def quantile(self, p, *params):
        """Time ``t`` with ``F(t) = p``; ``quantile(0) = 0``, ``quantile(1) = inf``.

        Beyond the cured fraction of a Gompertz with negative shape the quantile is
        inf. ``p`` outside [0, 1] gives nan.
        """
        if len(params) != len(self.param_names):
            raise ValueError(self._count_message(len(params)))
        p, *params = _floats(p, *params)
        with np.errstate(**_ERRSTATE):
            t = self._time_at(-np.log1p(-p), *params)
            return _result(np.where((p >= 0.0) & (p <= 1.0), t, np.nan))

    def median(self, *params):
        """Median, ``quantile(0.5)``; inf if half or more never have the event."""
        return self.quantile(0.5, *params)

    def cure_fraction(self, *params):
        """``P(T = inf) = S(inf)``: 0 unless the family has a cured fraction."""
        if len(params) != len(self.param_names):
            raise ValueError(self._count_message(len(params)))
        with np.errstate(**_ERRSTATE):
            return _result(self._cure_fraction(*_floats(*params)))

    def mean(self, *params):
        """Mean ``integral_0^inf S(t) dt``; inf when it diverges.

        Closed forms where they exist, otherwise numerical integration of ``S``.
        """
        return self._integral(math.inf, params, hr=1.0)

    def rmst(self, horizon, *params):
        """Restricted mean survival time ``integral_0^horizon S(t) dt``."""
        return self._integral(horizon, params, hr=1.0)

    def _integral(self, horizon, params, hr):
        if len(params) != len(self.param_names):
            raise ValueError(self._count_message(len(params)))
        horizon, *params = _floats(horizon, *params)
        with np.errstate(**_ERRSTATE):
            if hr == 1.0:
                value, available = self._rmst_closed(horizon, *params)
            else:
                value, available = np.full(horizon.shape, np.nan), np.zeros(horizon.shape, bool)
            value = np.array(value, dtype=np.float64)
            infinite_mean = (hr * self._tail_index(*params) <= 1.0) & np.isinf(horizon)
            value = np.where(~available & (horizon <= 0.0), 0.0, value)
            value = np.where(~available & infinite_mean, np.inf, value)
            numeric = ~available & (horizon > 0.0) & ~infinite_mean
            if numeric.any():
                value[numeric] = _integrate_survival(
                    lambda t, *p: hr * self._cumhaz(t, *p),
                    lambda e, *p: self._time_at(e / hr, *p),
                    horizon[numeric],
                    [x[numeric] for x in params],
                )
        return _result(value)

    def validate(self, *params) -> None:
        """Raise ValueError unless ``params`` are valid (scalars or arrays).

        The message names the family, the parameter, the offending value and what
        is allowed, e.g. ``"weibull: shape must be > 0, got -1.0"``.
        """
        if len(params) != len(self.param_names):
            raise ValueError(self._count_message(len(params)))
        for name, domain, value in zip(self.param_names, self._domains, params, strict=True):
            try:
                arr = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{self.name}: {name} must be a number, got {value!r}") from None
            flat = arr.ravel()
            bad = ~np.isfinite(flat)
            if bad.any():
                raise ValueError(f"{self.name}: {name} must be finite, got {float(flat[bad][0])!r}")
            if domain == "positive":
                bad = ~(flat > 0.0)
                if bad.any():
                    raise ValueError(
                        f"{self.name}: {name} must be > 0, got {float(flat[bad][0])!r}"
                    )

    def _count_message(self, n):
        return (
            f"{self.name}: expected {len(self.param_names)} parameter(s) "
            f"({', '.join(self.param_names)}), got {n}"
        )


def _density(hazard, cumhaz, negative):
    s = np.exp(-cumhaz)
    # Where S has underflowed the density has too; this also avoids inf * 0.
    return np.where(negative | (s == 0.0), 0.0, hazard * s)


@dataclass(frozen=True)
class _Exponential(Family):
    _domains = ("positive",)
    scale_param = "rate"

    def _cumhaz(self, t, rate):
        return rate * t

    def _hazard(self, t, rate):
        return np.broadcast_arrays(t, rate)[1].astype(np.float64)

    def _time_at(self, e, rate):
        return e / rate

    def _rmst_closed(self, horizon, rate):
        return -np.expm1(-rate * horizon) / rate, np.ones(np.shape(horizon), bool)

    def solve_scale(self, t, s, params):
        return -math.log(s) / t

    def _scale_at(self, t, s, rate):
        return -np.log(s) / t

    def starts(self, times, surv, fixed):
        # log H = log rate + log t: the rate from the mean offset
        return [{"rate": math.exp(float(np.mean(np.log(-np.log(surv)) - np.log(times))))}]

    def ph_params(self, hr, rate):
        return (rate * hr,)

    def aft_params(self, tr, rate):
        return (rate / tr,)

    def power_form(self, rate):
        return 1.0, rate

    def from_power_form(self, k, a):
        return (a,) if k == 1.0 else None


@dataclass(frozen=True)
class _Weibull(Family):
    _domains = ("positive", "positive")
    scale_param = "scale"

    def _cumhaz(self, t, shape, scale):
        return (t / scale) ** shape

    def _hazard(self, t, shape, scale):
        return shape / scale * (t / scale) ** (shape - 1.0)

    def _time_at(self, e, shape, scale):
        return scale * e ** (1.0 / shape)

    def _rmst_closed(self, horizon, shape, scale):
        # integral_0^tau S = scale Gamma(1 + 1/shape) P(1/shape, (tau/scale)^shape),
        # in log space so a huge Gamma(1 + 1/shape) times a tiny P stays finite.
        a = 1.0 / shape
        log_value = (
            np.log(scale)
            + scipy.special.gammaln(1.0 + a)
            + _gamma_logcdf(a, (horizon / scale) ** shape)
        )
        return np.exp(log_value), np.ones(np.shape(horizon), bool)

    def solve_scale(self, t, s, params):
        return t / (-math.log(s)) ** (1.0 / params["shape"])

    def _scale_at(self, t, s, shape, scale):
        return t / (-np.log(s)) ** (1.0 / shape)

    def starts(self, times, surv, fixed):
        shape, scale = _weibull_line(times, surv)
        return [{"shape": shape, "scale": scale}]

    def two_point_fit(self, points):
        return _shape_scale_through(points, lambda s: math.log(-math.log(s)))

    def ph_params(self, hr, shape, scale):
        return (shape, scale * hr ** (-1.0 / shape))

    def aft_params(self, tr, shape, scale):
        return (shape, scale * tr)

    def power_form(self, shape, scale):
        return shape, scale ** (-shape)

    def from_power_form(self, k, a):
        return (k, a ** (-1.0 / k))


@dataclass(frozen=True)
class _LogLogistic(Family):
    _domains = ("positive", "positive")
    scale_param = "scale"

    def _cumhaz(self, t, shape, scale):
        return np.logaddexp(0.0, shape * np.log(t / scale))

    def _hazard(self, t, shape, scale):
        y = t / scale
        low = shape / scale * y ** (shape - 1.0) / (1.0 + y**shape)
        # h = (shape / t) * y^shape / (1 + y^shape), which cannot overflow for y > 1.
        high = shape / t * scipy.special.expit(shape * np.log(y))
        return np.where(y <= 1.0, low, high)

    def _time_at(self, e, shape, scale):
        # log(expm1(e)), split so neither the small nor the large e end loses digits.
        big = e > 1.0
        e_big = np.where(big, e, 2.0)
        e_small = np.where(big, 0.5, e)
        log_odds = np.where(big, e_big + np.log1p(-np.exp(-e_big)), np.log(np.expm1(e_small)))
        return scale * np.exp(log_odds / shape)

    def _mean(self, shape, scale):
        a = np.where(shape > 1.0, shape, 2.0)
        return np.where(shape > 1.0, scale * (np.pi / a) / np.sin(np.pi / a), np.inf)

    def _rmst_closed(self, horizon, shape, scale):
        # For shape > 1: with y = x/(1+x), x = (t/scale)^shape, the integral becomes
        # mean * I_y(1/shape, 1 - 1/shape) (regularised incomplete beta).
        a = np.where(shape > 1.0, shape, 2.0)
        y = scipy.special.expit(a * np.log(horizon / scale))
        value = np.where(np.isinf(horizon), 1.0, scipy.special.betainc(1.0 / a, 1.0 - 1.0 / a, y))
        value = self._mean(shape, scale) * value
        available = (shape > 1.0) | np.isinf(horizon)
        return np.where(horizon <= 0.0, 0.0, value), available | (horizon <= 0.0)

    def _tail_index(self, shape, scale):
        return np.asarray(shape, dtype=np.float64)

    def solve_scale(self, t, s, params):
        return t / ((1.0 - s) / s) ** (1.0 / params["shape"])

    def _scale_at(self, t, s, shape, scale):
        return t / ((1.0 - s) / s) ** (1.0 / shape)

    def starts(self, times, surv, fixed):
        # log odds of death, log((1 - S) / S) = shape (log t - log scale), is linear in log t
        a, b = _line(np.log(times), np.log((1 - surv) / surv))
        shape = min(max(b, 0.05), 50.0)
        return [{"shape": shape, "scale": math.exp(-a / shape)}]

    def two_point_fit(self, points):
        return _shape_scale_through(points, lambda s: math.log((1.0 - s) / s))

    def aft_params(self, tr, shape, scale):
        return (shape, scale * tr)


def _lnorm_cumhaz(t, meanlog, sdlog):
    z = (np.log(t) - meanlog) / sdlog
    return -scipy.special.log_ndtr(-z)


def _lnorm_hazard(t, meanlog, sdlog):
    z = (np.log(t) - meanlog) / sdlog
    log_h = -0.5 * z * z - _HALF_LOG_2PI - np.log(sdlog * t) - scipy.special.log_ndtr(-z)
    return np.where((t == 0.0) | np.isinf(t), 0.0, np.exp(log_h))


def _lnorm_time_at(e, meanlog, sdlog):
    # ndtri of the smaller of S = exp(-e) and F = -expm1(-e), as in the kernel.
    z = np.where(e < _LN2, scipy.special.ndtri(-np.expm1(-e)), -scipy.special.ndtri(np.exp(-e)))
    return np.exp(meanlog + sdlog * z)


def _lnorm_rmst(horizon, meanlog, sdlog):
    # integral_0^tau S = tau S(tau) + E[T; T < tau], the partial expectation being
    # exp(meanlog + sdlog^2/2) Phi((log tau - meanlog - sdlog^2) / sdlog).
    mean = np.exp(meanlog + 0.5 * sdlog * sdlog)
    z = (np.log(horizon) - meanlog) / sdlog
    tau_s = np.where(np.isinf(horizon) | (horizon <= 0.0), 0.0, horizon * scipy.special.ndtr(-z))
    return tau_s + mean * scipy.special.ndtr(z - sdlog)


@dataclass(frozen=True)
class _LogNormal(Family):
    _domains = ("real", "positive")
    scale_param = "meanlog"

    def _cumhaz(self, t, meanlog, sdlog):
        return _lnorm_cumhaz(t, meanlog, sdlog)

    def _hazard(self, t, meanlog, sdlog):
        return _lnorm_hazard(t, meanlog, sdlog)

    def _time_at(self, e, meanlog, sdlog):
        return _lnorm_time_at(e, meanlog, sdlog)

    def _rmst_closed(self, horizon, meanlog, sdlog):
        return _lnorm_rmst(horizon, meanlog, sdlog), np.ones(np.shape(horizon), bool)

    def solve_scale(self, t, s, params):
        return math.log(t) - params["sdlog"] * scipy.special.ndtri(1.0 - s)

    def _scale_at(self, t, s, meanlog, sdlog):
        return np.log(t) - sdlog * scipy.special.ndtri(1.0 - s)

    def starts(self, times, surv, fixed):
        meanlog, sdlog = _lnorm_line(times, surv)
        return [{"meanlog": meanlog, "sdlog": sdlog}]

    def two_point_fit(self, points):
        # probit of death linear in log t: z = (log t - meanlog) / sdlog
        (t1, s1), (t2, s2) = points
        z1, z2 = scipy.special.ndtri(1.0 - s1), scipy.special.ndtri(1.0 - s2)
        sdlog = (math.log(t2) - math.log(t1)) / (z2 - z1)
        return (math.log(t1) - sdlog * z1, sdlog)

    def aft_params(self, tr, meanlog, sdlog):
        return (meanlog + math.log(tr), sdlog)


@dataclass(frozen=True)
class _Gompertz(Family):
    _domains = ("real", "positive")
    scale_param = "rate"
    cure_formula = "exp(rate/shape)"

    def _cumhaz(self, t, shape, rate):
        # rate t exprel(shape t) is rate/shape expm1(shape t) without the 0/0 at
        # shape = 0; at t = inf it tends to -rate/shape (shape < 0) or inf.
        finite = rate * t * scipy.special.exprel(shape * t)
        limit = np.where(shape < 0.0, -rate / np.where(shape < 0.0, shape, -1.0), np.inf)
        return np.where(np.isinf(t), limit, finite)

    def _hazard(self, t, shape, rate):
        return np.where(shape == 0.0, rate, rate * np.exp(shape * t))

    def _time_at(self, e, shape, rate):
        safe = np.where(shape == 0.0, 1.0, shape)
        x = shape * e / rate
        t = np.where(x <= -1.0, np.inf, np.log1p(x) / safe)
        return np.where(shape == 0.0, e / rate, t)

    def _rmst_closed(self, horizon, shape, rate):
        # Mean only: (1/shape) exp(z) E1(z) with z = rate/shape for shape > 0, 1/rate
        # at shape = 0, inf when shape < 0 (cured fraction). RMST is integrated.
        positive = shape > 0.0
        z = rate / np.where(positive, shape, 1.0)
        mean = np.where(positive, _exp_e1(z) / np.where(positive, shape, 1.0), 1.0 / rate)
        mean = np.where(shape < 0.0, np.inf, mean)
        return np.where(horizon <= 0.0, 0.0, mean), np.isinf(horizon) | (horizon <= 0.0)

    def _tail_index(self, shape, rate):
        return np.where(shape < 0.0, 0.0, np.inf)

    def _cure_fraction(self, shape, rate):
        negative = shape < 0.0
        return np.where(negative, np.exp(rate / np.where(negative, shape, -1.0)), 0.0)

    def solve_scale(self, t, s, params):
        a = params["shape"]
        h = -math.log(s)
        # H(t) = rate/a (exp(a t) - 1), rate * t as a -> 0. With a < 0, H(inf) =
        # rate/|a| = h/(1 - exp(-|a| t)) > h, so any target is reachable: the
        # cure fraction exp(rate/a) of the solution is always below s.
        return h / t if a == 0 else a * h / math.expm1(a * t)

    def _scale_at(self, t, s, shape, rate):
        h = -np.log(s)
        nonzero = np.where(shape == 0.0, 1.0, shape)
        return np.where(shape == 0.0, h / t, nonzero * h / np.expm1(nonzero * t))

    def starts(self, times, surv, fixed):
        starts = [{"shape": g, "rate": 1.0} for g in _gompertz_shapes(times, surv)]
        return self._through_median_point(starts, times, surv, fixed)

    def ph_params(self, hr, shape, rate):
        return (shape, rate * hr)

    def aft_params(self, tr, shape, rate):
        return (shape / tr, rate / tr)


@dataclass(frozen=True)
class _Gamma(Family):
    _domains = ("positive", "positive")
    scale_param = "rate"

    def _cumhaz(self, t, shape, rate):
        return -_gamma_tails(shape, np.log(rate * t))[0]

    def _hazard(self, t, shape, rate):
        log_x = np.log(rate * t)
        log_xh = _gamma_tails(shape, log_x)[2]
        # At t = 0 the hazard is the density: inf, rate or 0 for shape <, =, > 1.
        at0 = rate * np.exp(scipy.special.xlogy(shape - 1.0, 0.0) - scipy.special.gammaln(shape))
        h = np.where(t == 0.0, at0, rate * np.exp(log_xh - log_x))
        return np.where(np.isinf(t), rate, h)

    def _time_at(self, e, shape, rate):
        return _gamma_x_sf(shape, e) / rate

    def _rmst_closed(self, horizon, shape, rate):
        # integral_0^tau S = tau Q(k, rate tau) + (k / rate) P(k + 1, rate tau).
        x = rate * horizon
        tau_s = np.where(
            np.isinf(horizon) | (horizon <= 0.0), 0.0, horizon * scipy.special.gammaincc(shape, x)
        )
        value = tau_s + shape / rate * scipy.special.gammainc(shape + 1.0, x)
        return value, np.ones(np.shape(horizon), bool)

    def solve_scale(self, t, s, params):
        return scipy.special.gammainccinv(params["shape"], s) / t

    def _scale_at(self, t, s, shape, rate):
        return scipy.special.gammainccinv(shape, s) / t

    def starts(self, times, surv, fixed):
        # Two shape guesses from the Weibull slope, the rate through the median point
        shape = _weibull_line(times, surv)[0]
        starts = [{"shape": shape**2, "rate": 1.0}, {"shape": shape, "rate": 1.0}]
        return self._through_median_point(starts, times, surv, fixed)

    def aft_params(self, tr, shape, rate):
        return (shape, rate / tr)


@dataclass(frozen=True)
class _GenGamma(Family):
    _domains = ("real", "positive", "real")
    scale_param = "mu"

    @staticmethod
    def _split(sigma, q):
        """(small-|Q| mask, Q with the small slots replaced by 1, k = Q^-2 for the rest)."""
        small = np.abs(q) < GENGAMMA_Q_TEMME
        qs = np.where(small, 1.0, q)
        return small, qs, 1.0 / (qs * qs)

    @staticmethod
    def _gamma_parts(log_g, qs, k):
        """(log S, log(g f_Gamma(g) / S)) for |Q| >= GENGAMMA_Q_TEMME.

        G = exp(log_g) ~ Gamma(k); S is its upper tail for Q > 0 and lower tail for
        Q < 0.
        """
        log_sf, log_cdf, log_xh_sf, log_xh_cdf = _gamma_tails(k, log_g)
        positive = qs > 0.0
        return np.where(positive, log_sf, log_cdf), np.where(positive, log_xh_sf, log_xh_cdf)

    def _cumhaz(self, t, mu, sigma, q):
        small, qs, k = self._split(sigma, q)
        w = (np.log(t) - mu) / sigma
        log_s_big = self._gamma_parts(np.log(k) + qs * w, qs, k)[0]
        log_s_small = _gengamma_temme(w, np.where(small, q, 0.0))[1]
        return -np.where(small, log_s_small, log_s_big)

    def _hazard(self, t, mu, sigma, q):
        small, qs, k = self._split(sigma, q)
        w = (np.log(t) - mu) / sigma
        log_st = -np.log(sigma * t)
        # |Q| >= GENGAMMA_Q_TEMME: h = |Q| / (sigma t) * g f_Gamma(g; k) / S.
        log_xh = self._gamma_parts(np.log(k) + qs * w, qs, k)[1]
        log_h_big = np.log(np.abs(qs)) + log_st + log_xh
        # small |Q|: h = phi(y) exp(-stirling(Q^2)) / (sigma t S).
        qt = np.where(small, q, 0.0)
        _, log_s_t, _, log_phi = _gengamma_temme(w, qt)
        log_h_small = log_phi - _stirling(qt * qt) + log_st - log_s_t
        h = np.exp(np.where(small, log_h_small, log_h_big))
        # Limits at t = 0 and t = inf, where the expressions above are 0 * inf. For
        # Q > 0, h ~ t^(1/(Q sigma) - 1) at 0 and ~ t^(Q/sigma - 1) at inf; for Q <= 0
        # h -> 0 at both ends. The boundary cases have finite non-zero limits.
        positive = q > 0.0
        qp = np.where(positive, q, 1.0)
        kp = 1.0 / (qp * qp)
        c0 = 1.0 / (qp * sigma)
        at0_unit = np.exp(np.log(qp / sigma) + kp * np.log(kp) - mu - scipy.special.gammaln(kp))
        at0 = np.where(c0 > 1.0, 0.0, np.where(c0 < 1.0, np.inf, at0_unit))
        c_inf = qp / sigma
        at_inf = np.where(c_inf > 1.0, np.inf, np.where(c_inf < 1.0, 0.0, kp * np.exp(-mu)))
        h = np.where(t == 0.0, np.where(positive, at0, 0.0), h)
        return np.where(np.isinf(t), np.where(positive, at_inf, 0.0), h)

    def _time_at(self, e, mu, sigma, q):
        small, qs, k = self._split(sigma, q)
        g = np.where(qs > 0.0, _gamma_x_sf(k, e), _gamma_x_cdf(k, e))
        w_big = np.log(g * qs * qs) / qs
        w_small = _gengamma_temme_w_at(e, np.where(small, q, 0.0))
        return np.exp(mu + sigma * np.where(small, w_small, w_big))

    def _rmst_closed(self, horizon, mu, sigma, q):
        small, qs, k = self._split(sigma, q)
        mean = np.exp(_gengamma_log_mean(mu, sigma, q))
        finite = np.isfinite(mean)
        # Partial expectation E[T; T < tau] = mean * P(k + r, G(tau)) for Q > 0 and
        # mean * Q(k + r, G(tau)) for Q < 0 (T increases with G iff Q > 0); used
        # for |Q| >= GENGAMMA_Q_TEMME only, where SciPy's gammainc is accurate.
        kr = np.where(finite, k + sigma / qs, 1.0)
        g = np.exp(np.log(k) + qs * (np.log(horizon) - mu) / sigma)
        part = np.where(qs > 0.0, scipy.special.gammainc(kr, g), scipy.special.gammaincc(kr, g))
        surv = np.exp(-self._cumhaz(horizon, mu, sigma, q))
        tau_s = np.where(np.isinf(horizon) | (horizon <= 0.0), 0.0, horizon * surv)
        value = np.where(np.isinf(horizon), mean, tau_s + mean * part)
        available = np.isinf(horizon) | (finite & ~small) | (horizon <= 0.0)
        return np.where(horizon <= 0.0, 0.0, value), available

    def _tail_index(self, mu, sigma, q):
        negative = q < 0.0
        return np.where(negative, 1.0 / (np.abs(np.where(negative, q, -1.0)) * sigma), np.inf)

    def solve_scale(self, t, s, params):
        sigma, q = params["sigma"], params["Q"]
        if q == 0:
            w = scipy.special.ndtri(1.0 - s)
        else:
            k = 1.0 / (q * q)
            # flexsurv: S = Q(k, u) for Q > 0 and P(k, u) for Q < 0, u = k exp(Q w)
            u = scipy.special.gammainccinv(k, s) if q > 0 else scipy.special.gammaincinv(k, s)
            w = math.log(u / k) / q
        return math.log(t) - sigma * w

    def _scale_at(self, t, s, mu, sigma, q):
        zero = q == 0.0
        qs = np.where(zero, 1.0, q)
        k = 1.0 / (qs * qs)
        u = np.where(qs > 0.0, scipy.special.gammainccinv(k, s), scipy.special.gammaincinv(k, s))
        w = np.where(zero, scipy.special.ndtri(1.0 - s), np.log(u / k) / qs)
        return np.log(t) - sigma * w

    def starts(self, times, surv, fixed):
        # The Weibull (Q = 1, sigma = 1/shape) and log-normal (Q = 0) lines
        shape, scale = _weibull_line(times, surv)
        meanlog, sdlog = _lnorm_line(times, surv)
        return [
            {"mu": math.log(scale), "sigma": 1.0 / shape, "Q": 1.0},
            {"mu": meanlog, "sigma": sdlog, "Q": 0.0},
        ]

    def aft_params(self, tr, mu, sigma, q):
        return (mu + math.log(tr), sigma, q)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        _Exponential("exponential", codes.FAMILY_EXPONENTIAL, ("rate",)),
        _Weibull("weibull", codes.FAMILY_WEIBULL, ("shape", "scale")),
        _LogLogistic("llogis", codes.FAMILY_LLOGIS, ("shape", "scale")),
        _LogNormal("lnorm", codes.FAMILY_LNORM, ("meanlog", "sdlog")),
        _Gompertz("gompertz", codes.FAMILY_GOMPERTZ, ("shape", "rate")),
        _Gamma("gamma", codes.FAMILY_GAMMA, ("shape", "rate")),
        _GenGamma("gengamma", codes.FAMILY_GENGAMMA, ("mu", "sigma", "Q")),
    )
}
"""The parametric families by name."""
FAMILIES_BY_CODE: dict[int, Family] = {f.code: f for f in FAMILIES.values()}
"""The parametric families by their kernel code (``codes.FAMILY_*``)."""


def get_family(name: str) -> Family:
    """The family called ``name``; ValueError listing the allowed names otherwise."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown family {name!r}; allowed: {', '.join(FAMILIES)}") from None


# --------------------------------------------------------------------------------------
# Distribution
# --------------------------------------------------------------------------------------


def _check_positive(label: str, value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a number, got {value!r}") from None
    if not (math.isfinite(x) and x > 0.0):
        raise ValueError(f"{label} must be finite and > 0, got {x!r}")
    return x


@dataclass(frozen=True)
class Distribution:
    """A family with parameter values and an optional proportional-hazards multiplier.

    Attributes
    ----------
    family : str
        Key of ``FAMILIES``.
    params : tuple of float
        Parameter values in ``Family.param_names`` order.
    hr : float
        Multiplier on the hazard: ``S(t) = S0(t) ** hr``, ``h = hr h0``.

    All methods honour ``hr``. Construction validates the family name, the
    number and range of the parameters and ``hr > 0``.
    """

    family: str
    params: tuple[float, ...]
    hr: float = 1.0

    def __post_init__(self):
        fam = get_family(self.family)
        if isinstance(self.params, (str, bytes, Mapping)) or np.ndim(self.params) != 1:
            raise ValueError(
                f"{self.family}: params must be a sequence of numbers in the order "
                f"({', '.join(fam.param_names)}), got {self.params!r}"
            )
        fam.validate(*self.params)
        object.__setattr__(self, "params", tuple(float(x) for x in self.params))
        object.__setattr__(self, "hr", _check_positive(f"{self.family}: hr", self.hr))

    @classmethod
    def from_dict(cls, family: str, params: Mapping[str, float], hr: float = 1.0) -> Distribution:
        """Build from ``{name: value}``; the keys must be exactly the family's parameter names."""
        fam = get_family(family)
        unknown = [k for k in params if k not in fam.param_names]
        missing = [k for k in fam.param_names if k not in params]
        if unknown or missing:
            parts = []
            if unknown:
                parts.append(f"unknown parameter(s) {', '.join(map(repr, unknown))}")
            if missing:
                parts.append(f"missing parameter(s) {', '.join(map(repr, missing))}")
            raise ValueError(f"{family}: {'; '.join(parts)}; expected {', '.join(fam.param_names)}")
        return cls(family, tuple(params[k] for k in fam.param_names), hr)

    @property
    def _fam(self) -> Family:
        return FAMILIES[self.family]

    @property
    def code(self) -> int:
        """Integer family code shared with the kernels."""
        return self._fam.code

    @property
    def param_dict(self) -> dict[str, float]:
        """Parameters by name."""
        return dict(zip(self._fam.param_names, self.params, strict=True))

    def param_row(self) -> np.ndarray:
        """Parameters as ``ndarray(float64, shape=(N_PARAMS,))``, unused slots 0.0."""
        row = np.zeros(codes.N_PARAMS, dtype=np.float64)
        row[: len(self.params)] = self.params
        return row

    # --- curves ---

    def cumhaz(self, t):
        """Cumulative hazard ``hr H0(t)``."""
        return _result(self.hr * self._fam.cumhaz(t, *self.params))

    def survival(self, t):
        """Survival ``S0(t) ** hr``."""
        return _result(np.exp(-self.cumhaz(t)))

    def cdf(self, t):
        """Distribution function ``1 - S(t)``."""
        return _result(-np.expm1(-self.cumhaz(t)))

    def hazard(self, t):
        """Hazard ``hr h0(t)``."""
        return _result(self.hr * self._fam.hazard(t, *self.params))

    def density(self, t):
        """Density ``h(t) S(t)``."""
        t = np.asarray(t, dtype=np.float64)
        with np.errstate(**_ERRSTATE):
            return _result(_density(self.hazard(t), self.cumhaz(t), t < 0.0))

    def quantile(self, p):
        """Time ``t`` with ``F(t) = p``."""
        p = np.asarray(p, dtype=np.float64)
        with np.errstate(**_ERRSTATE):
            e = -np.log1p(-p) / self.hr
            t = self._fam._time_at(*_floats(e, *self.params))
            return _result(np.where((p >= 0.0) & (p <= 1.0), t, np.nan))

    def median(self):
        """Median survival time (inf if ``S`` never falls to 1/2)."""
        return self.quantile(0.5)

    def mean(self):
        """Mean survival time (inf if it diverges)."""
        return self.rmst(math.inf)

    def rmst(self, horizon):
        """Restricted mean survival time ``integral_0^horizon S(t) dt``.

        Closed form when ``hr == 1`` (or the family is PH-closed); otherwise
        numerical integration of ``S`` (see ``_integrate_survival``).
        """
        base = self._absorb_hr()
        return base._fam._integral(horizon, base.params, base.hr)

    # --- transformations ---

    def _absorb_hr(self) -> Distribution:
        """The same distribution with hr folded into the parameters where the family allows."""
        folded = None if self.hr == 1.0 else self._fam.ph_params(self.hr, *self.params)
        return self if folded is None else Distribution(self.family, folded)

    def ph(self, hr: float) -> Distribution:
        """Multiply the hazard by ``hr``.

        Folded into the parameters where the family is closed under PH
        (``Family.ph_params``: exponential, weibull, gompertz), otherwise ``self.hr * hr``.
        """
        hr = _check_positive(f"{self.family}: hr", hr)
        folded = self._fam.ph_params(hr, *self.params)
        if folded is None:
            return Distribution(self.family, self.params, self.hr * hr)
        return Distribution(self.family, folded, self.hr)

    def power_form(self) -> tuple[float, float] | None:
        """``(k, a)`` with ``H(t) = a t^k``, ``hr`` included; None if H is not a power of t."""
        form = self._fam.power_form(*self.params)
        return None if form is None else (form[0], self.hr * form[1])

    def aft(self, time_ratio: float) -> Distribution:
        """Stretch time: ``T' = time_ratio T``, so ``S'(t) = S(t / time_ratio)``; keeps hr."""
        tr = _check_positive(f"{self.family}: time_ratio", time_ratio)
        return Distribution(self.family, self._fam.aft_params(tr, *self.params), self.hr)
