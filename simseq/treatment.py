"""Time on treatment: treatment on a line stops at the first of the line's end, an early
stop (for adverse events) and a stopping rule.

The early stop is a constant hazard ``rate`` independent of the line's clocks, so the
share of entrants who stop early, before the line ends, is

    share(rate) = integral_0^inf rate e^(-rate t) S(t) dt = integral_0^1 S(-ln(u) / rate) du,

with S the survival of the line's sojourn (the product of its clocks' survivals). It
rises from 0 to 1 as the rate does, so each draw's rate is found by safeguarded Newton
steps on log(rate). Only the costs of treatment use it: the engine accrues them in
expectation over the stop time given each patient's sojourn (``engine.simulate._accrue``),
which is exact in the mean and adds no random numbers.
"""

import functools

import numpy as np

_LOG_RATE_BOUNDS = (np.log(1e-8), np.log(1e4))  # per month
_TOLERANCE = 1e-12  # on the share
_MAX_STEPS = 100  # Newton takes about 6; each bisection halves a 27.6-wide log bracket


@functools.cache
def _nodes() -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on (0, 1), float64 (256,) each, for the u-integral:
    S(-ln(u)/rate) is smooth inside and bounded in [0, 1]; 256 nodes give an exponential
    line's rate to 1e-10 (relative) for shares from 1e-4 to 0.5, and to 1e-5 up to 0.99.
    Computed on first use: they cost 35 ms, and most models stop no treatment early."""
    nodes, weights = np.polynomial.legendre.leggauss(256)
    return 0.5 * (nodes + 1.0), 0.5 * weights


def _share_and_slope(log_rate, families, params, hr) -> tuple[np.ndarray, np.ndarray]:
    """``stopped_share`` at exp(log_rate) and its derivative in log_rate,
    integral_0^1 t f(t) du at t = -ln(u) / rate (f the sojourn density), per draw."""
    u, w = _nodes()
    t = -np.log(u)[None, :] / np.exp(log_rate)[:, None]  # (n_draws, nodes), months
    cumhaz = np.zeros_like(t)
    hazard = np.zeros_like(t)
    for c, fam in enumerate(families):
        cols = [params[:, c, k][:, None] for k in range(len(fam.param_names))]
        cumhaz += hr[:, c][:, None] * fam.cumhaz(t, *cols)
        hazard += hr[:, c][:, None] * fam.hazard(t, *cols)
    surv = np.exp(-cumhaz)
    return surv @ w, (t * hazard * surv) @ w


def stopped_share(rate, families, params, hr) -> np.ndarray:
    """Share of entrants whose early stop comes before the line ends, per draw.

    Parameters
    ----------
    rate : float64 (n_draws,)
        Early-stop hazard, per month (> 0).
    families : list of Family, one per clock of the line
    params : float64 (n_draws, n_clocks, N_PARAMS)
        The clocks' parameters (flexsurv order, unused slots ignored).
    hr : float64 (n_draws, n_clocks)
        The clocks' hazard ratios.
    """
    return _share_and_slope(np.log(np.asarray(rate, dtype=float)), families, params, hr)[0]


def stop_rate(share, families, params, hr) -> np.ndarray:
    """The early-stop hazard (per month) that makes ``stopped_share`` equal ``share``, per
    draw: float64 (n_draws,); 0 where the share is 0. Newton steps on log(rate), kept
    inside a shrinking bracket (a bisection where a step would leave it). ValueError
    naming the first draw whose share is outside [0, 1) or cannot be reached."""
    share = np.asarray(share, dtype=float)
    bad = np.flatnonzero(~((share >= 0.0) & (share < 1.0)))
    if bad.size:
        d = int(bad[0])
        raise ValueError(f"draw {d}: a share stopping early of {share[d]:g} is not in [0, 1)")
    lo = np.full(share.shape, _LOG_RATE_BOUNDS[0])
    hi = np.full(share.shape, _LOG_RATE_BOUNDS[1])
    need = share > 0.0
    beyond = need & (
        (stopped_share(np.exp(lo), families, params, hr) > share)
        | (stopped_share(np.exp(hi), families, params, hr) < share)
    )
    if beyond.any():
        d = int(np.flatnonzero(beyond)[0])
        raise ValueError(
            f"draw {d}: a share stopping early of {share[d]:g} needs a stop rate outside "
            f"[{np.exp(lo[d]):g}, {np.exp(hi[d]):g}] a month"
        )
    x = np.zeros(share.shape)  # 1 a month: a start inside the bracket
    for _ in range(_MAX_STEPS):
        value, slope = _share_and_slope(x, families, params, hr)
        gap = value - share
        lo = np.where(gap < 0.0, x, lo)
        hi = np.where(gap > 0.0, x, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = x - gap / slope
        x = np.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
        if np.all(np.abs(gap[need]) <= _TOLERANCE):
            break
    else:
        d = int(np.argmax(np.where(need, np.abs(gap), 0.0)))
        raise ValueError(f"draw {d}: no stop rate found for a share of {share[d]:g}")
    return np.where(need, np.exp(x), 0.0)
