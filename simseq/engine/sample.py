"""Inverse-CDF sampling of event times, one parametric family per integer code.

Every family is drawn by inverting its cumulative hazard: a uniform ``u`` becomes
``e = -log(u) / hr`` and the time is the ``t`` with ``H0(t) = e``. Proportional
hazards therefore cost the caller one division and the families never see ``hr``.
Parameters are in flexsurv order (see ``simseq.engine.codes``); the formulas are
documented in ``simseq.distributions``, which implements the same inversions in
NumPy and is the reference these kernels are tested against.

SciPy's special functions are reached through ``scipy.special.cython_special``.
The C addresses are registered as named LLVM symbols (not ctypes pointers)
because Numba refuses to cache functions that hold ctypes pointers, and a cache
miss here would recompile the hot loop in every worker process. They are
registered on demand (``bind_special_functions``), not at import.
"""

import math

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

from simseq.engine.codes import (
    FAMILY_EXPONENTIAL,
    FAMILY_GAMMA,
    FAMILY_GENGAMMA,
    FAMILY_GOMPERTZ,
    FAMILY_LLOGIS,
    FAMILY_LNORM,
    FAMILY_WEIBULL,
)

# Below this |Q| the generalised gamma is evaluated in log-time w through Temme's
# uniform asymptotic expansion of the incomplete gamma function (DLMF 8.12.3-4,
# terms c0 and c1) instead of SciPy's gammainc/gammaincinv at shape 1/Q**2 >= 1e4:
# those lose relative accuracy in the lower tail as the shape grows (1e-8 at
# 1e6, 20% at 1e8 eight sd out). The expansion's relative error is below 1e-12 for
# |Q| < 0.01 and it reduces exactly to the log-normal at Q = 0.
GENGAMMA_Q_TEMME = 0.01

# Taylor coefficients in eta of Temme's c0(eta) and c1(eta), derived symbolically
# from lambda - 1 - log(lambda) = eta**2 / 2 (c0 as in DLMF 8.12.10). Used for
# |eta| < 0.1, where the closed forms cancel; truncation error < 1e-15 there.
TEMME_C0 = (
    -1.0 / 3.0,
    1.0 / 12.0,
    -2.0 / 135.0,
    1.0 / 864.0,
    1.0 / 2835.0,
    -139.0 / 777600.0,
    1.0 / 25515.0,
    -571.0 / 261273600.0,
    -281.0 / 151559100.0,
    163879.0 / 197522841600.0,
    -5221.0 / 29554024500.0,
)
TEMME_C1 = (
    -1.0 / 540.0,
    -1.0 / 288.0,
    1.0 / 378.0,
    -77.0 / 77760.0,
    1.0 / 4860.0,
    -1.0 / 2488320.0,
    -2743.0 / 151559100.0,
    41969.0 / 5486745600.0,
    -11.0 / 6823440.0,
)

_LN2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# scipy.special.cython_special functions the exact samplers call: name -> number of
# double arguments. Cython's name of the float64 specialisation where it is fused.
_SPECIAL_FUNCTIONS = {"ndtri": 1, "gammaincinv": 2, "gammainccinv": 2, "__pyx_fuse_1log_ndtr": 1}


def _symbol(name):
    return f"simseq_cython_special_{name}"


def _external(name):
    """The kernels' handle on ``scipy.special.cython_special.<name>``: a call to a named
    symbol, whose address ``bind_special_functions`` registers."""
    n_args = _SPECIAL_FUNCTIONS[name]
    # The trailing int is Cython's ``__pyx_skip_dispatch`` flag of cpdef functions.
    return types.ExternalFunction(
        _symbol(name), types.float64(*([types.float64] * n_args), types.intc)
    )


_bound = False


def bind_special_functions():
    """Register the C addresses of SciPy's special functions the exact samplers call.

    Must run before compiled code that calls them is compiled or loaded from numba's
    cache (an unregistered symbol crashes the process): ``simulator.kernel_variant``
    calls it for models with non-Weibull clocks, and callers of ``time_at_cumhaz`` or
    ``sample_times`` from Python call it first. Not at import: importing scipy.special
    takes 0.2-0.3 s, a fifth of a small run's start, and Weibull models never need it.
    Idempotent.
    """
    global _bound
    if _bound:
        return
    for name in _SPECIAL_FUNCTIONS:
        address = get_cython_function_address("scipy.special.cython_special", name)
        llvm.add_symbol(_symbol(name), address)
    _bound = True


_ndtri = _external("ndtri")
_gammaincinv = _external("gammaincinv")
_gammainccinv = _external("gammainccinv")
_log_ndtr = _external("__pyx_fuse_1log_ndtr")


@njit(cache=True, nogil=True)
def _lnorm_time(meanlog, sdlog, e):
    # Invert whichever of S = exp(-e) or F = -expm1(-e) is below 1/2: ndtri of the
    # smaller tail probability keeps full relative accuracy at both ends.
    if e < _LN2:
        z = _ndtri(-math.expm1(-e), 0)
    else:
        z = -_ndtri(math.exp(-e), 0)
    return math.exp(meanlog + sdlog * z)


@njit(cache=True, nogil=True)
def _gamma_x_sf(shape, e):
    """x with Q(shape, x) = exp(-e), Q the regularised upper incomplete gamma function."""
    if e < _LN2:
        return _gammaincinv(shape, -math.expm1(-e), 0)
    return _gammainccinv(shape, math.exp(-e), 0)


@njit(cache=True, nogil=True)
def _gamma_x_cdf(shape, e):
    """x with P(shape, x) = exp(-e), P the regularised lower incomplete gamma function."""
    if e < _LN2:
        return _gammainccinv(shape, -math.expm1(-e), 0)
    return _gammaincinv(shape, math.exp(-e), 0)


@njit(cache=True, nogil=True)
def _horner(coeffs, x):
    acc = 0.0
    for i in range(len(coeffs) - 1, -1, -1):
        acc = acc * x + coeffs[i]
    return acc


@njit(cache=True, nogil=True)
def _exp_ratio(x):
    """2 (exp(x) - 1 - x) / x**2, equal to 1 at x = 0, without cancellation.

    Jit-compiled; inputs are not validated.
    """
    if abs(x) < 0.5:
        # sum_n 2 x^n / (n + 2)!; 24 terms leave < 1e-30 at |x| = 0.5.
        acc = 0.0
        term = 1.0
        for n in range(24):
            acc += term
            term *= x / (n + 3)
        return acc
    return 2.0 * (math.expm1(x) - x) / (x * x)


@njit(cache=True, nogil=True)
def _log_tail_plus(log_tail, ratio_term):
    """log(T + d) from log T and d / T; -inf where the truncated expansion cannot resolve it."""
    if ratio_term <= -1.0:
        return -np.inf
    return log_tail + math.log1p(ratio_term)


@njit(cache=True, nogil=True)
def _gengamma_temme(w, q):
    """Generalised gamma at log-time ``w = (log t - mu) / sigma`` for small |Q|.

    With ``lam = exp(Q w)``, ``eta = sign(Q w) sqrt(2 (lam - 1 - log lam))`` and
    ``y = eta / Q`` (which tends to ``w`` as Q -> 0), Temme's uniform expansion of
    the incomplete gamma function gives, for either sign of Q,
    ``S = Phi(-y) + Q phi(y) C`` and ``F = Phi(y) - Q phi(y) C`` with
    ``C = c0(eta) + Q**2 c1(eta)``.

    Returns
    -------
    (log_s, log_f, log_phi) : tuple of float
        ``log_phi`` is ``log phi(y)``; the log-time density is
        ``phi(y) exp(-stirling(Q**2))`` exactly, stirling being the remainder of
        Stirling's series for log Gamma at 1/Q**2. Far out in one tail (below
        exp(-5000) at |Q| = 0.01) the two terms cancel beyond what the truncated
        expansion resolves and that tail is returned as 0.

    Jit-compiled; inputs are not validated.
    """
    x = q * w
    y = w * math.sqrt(_exp_ratio(x))
    eta = q * y
    if abs(eta) < 0.1:
        c = _horner(TEMME_C0, eta) + q * q * _horner(TEMME_C1, eta)
    else:
        lam1 = math.expm1(x)
        c0 = 1.0 / lam1 - 1.0 / eta
        c1 = 1.0 / eta**3 - 1.0 / lam1**3 - 1.0 / lam1**2 - 1.0 / (12.0 * lam1)
        c = c0 + q * q * c1
    log_phi = -0.5 * y * y - _HALF_LOG_2PI
    log_upper = _log_ndtr(-y, 0)
    log_lower = _log_ndtr(y, 0)
    log_s = _log_tail_plus(log_upper, q * c * math.exp(log_phi - log_upper))
    log_f = _log_tail_plus(log_lower, -q * c * math.exp(log_phi - log_lower))
    return log_s, log_f, log_phi


@njit(cache=True, nogil=True)
def _stirling(u):
    """log Gamma(z) - ((z - 1/2) log z - z + log(2 pi)/2) at z = 1/u, for z >= 1e4.

    Jit-compiled; inputs are not validated.
    """
    u2 = u * u
    return u * (1.0 / 12.0 - u2 * (1.0 / 360.0 - u2 / 1260.0))


@njit(cache=True, nogil=True)
def _gengamma_small_q_time(mu, sigma, q, e):
    if e == 0.0:
        return 0.0
    if e == np.inf:
        return np.inf
    # Start from the log-normal (Q = 0) solution, then Newton on log F (left half)
    # or log S (right half), which keeps the steps well scaled deep in either tail.
    left = e < _LN2
    if left:
        log_f_target = math.log(-math.expm1(-e))
        w = _ndtri(-math.expm1(-e), 0)
    elif e < 700.0:
        log_f_target = 0.0
        w = -_ndtri(math.exp(-e), 0)
    else:
        log_f_target = 0.0
        w = math.sqrt(2.0 * e - math.log(4.0 * math.pi * e))
    log_norm = _stirling(q * q)
    for _ in range(50):
        log_s, log_f, log_phi = _gengamma_temme(w, q)
        log_dens = log_phi - log_norm
        if left:
            step = (log_f_target - log_f) * math.exp(log_f - log_dens)
        else:
            step = (log_s + e) * math.exp(log_s - log_dens)
        if not math.isfinite(step):
            return np.inf
        w += step
        if abs(step) <= 1e-13 * max(1.0, abs(w)):
            break
    return math.exp(mu + sigma * w)


@njit(cache=True, nogil=True)
def time_at_cumhaz(code, p0, p1, p2, e):
    """Time at which the baseline cumulative hazard reaches ``e``.

    Returns ``t`` with ``H0(t) = e`` for family ``code`` with parameters
    ``(p0, p1, p2)`` in flexsurv order (unused slots ignored), i.e. the inverse-CDF
    draw for survival probability ``exp(-e)``. ``e = 0`` gives 0, ``e = inf``
    gives inf, and a Gompertz with negative shape returns inf once ``e`` reaches
    its plateau ``-rate / shape`` (the cured fraction). Unknown codes give nan.

    Parameters
    ----------
    code : int
        Family code from ``simseq.engine.codes``.
    p0, p1, p2 : float
        Parameter row.
    e : float
        Target cumulative hazard, ``>= 0``.

    Returns
    -------
    float
        Time in the parameters' unit (months).

    Jit-compiled; inputs are not validated.
    """
    # The common families come first.
    if code == FAMILY_WEIBULL:
        return p1 * e ** (1.0 / p0)
    if code == FAMILY_EXPONENTIAL:
        return e / p0
    if code == FAMILY_LLOGIS:
        # log(expm1(e)), split so neither the small nor the large e end loses digits.
        if e > 1.0:
            log_odds = e + math.log1p(-math.exp(-e))
        else:
            log_odds = math.log(math.expm1(e))
        return p1 * math.exp(log_odds / p0)
    if code == FAMILY_LNORM:
        return _lnorm_time(p0, p1, e)
    if code == FAMILY_GOMPERTZ:
        if p0 == 0.0:
            return e / p1
        x = p0 * e / p1
        if x <= -1.0:
            return np.inf
        return math.log1p(x) / p0
    if code == FAMILY_GAMMA:
        return _gamma_x_sf(p0, e) / p1
    if code == FAMILY_GENGAMMA:
        q = p2
        if abs(q) < GENGAMMA_Q_TEMME:
            return _gengamma_small_q_time(p0, p1, q, e)
        shape = 1.0 / (q * q)
        if q > 0.0:
            g = _gamma_x_sf(shape, e)
        else:
            g = _gamma_x_cdf(shape, e)
        return math.exp(p0 + p1 * math.log(g * q * q) / q)
    return np.nan


@njit(cache=True, nogil=True)
def sample_times(code, params, hr, u):
    """Event times with ``S(t) = u``, where ``S = S0 ** hr``. Called from Python,
    ``bind_special_functions()`` first.

    Parameters
    ----------
    code : int
        Family code from ``simseq.engine.codes``.
    params : ndarray(float64, ndim=1)
        Parameter row of length ``N_PARAMS`` in flexsurv order.
    hr : float
        Proportional-hazards multiplier, ``> 0``.
    u : ndarray(float64, ndim=1)
        Uniforms in ``(0, 1]``; ``u = 0`` maps to ``inf``.

    Returns
    -------
    ndarray(float64, ndim=1)
        Times, same length as ``u``.

    Jit-compiled; inputs are not validated.
    """
    n = u.shape[0]
    out = np.empty(n, dtype=np.float64)
    p0 = params[0]
    p1 = params[1]
    p2 = params[2]
    for i in range(n):
        out[i] = time_at_cumhaz(code, p0, p1, p2, -math.log(u[i]) / hr)
    return out
