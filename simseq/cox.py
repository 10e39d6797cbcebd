"""A naive Cox proportional-hazards model: one binary covariate, Breslow's ties.

What a published study reports as "the hazard ratio of A vs B" when it compares two
groups without adjustment. Fitted to simulated patients, it is the model's value of
that statistic, estimator and all (``simseq.validation``); its standard error is the
model-based one (the inverse observed information), so the 95% interval is the Monte
Carlo interval at the number of patients simulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simseq.fit import Z95

MAX_LOG_HR = 30.0
"""Search bracket of the log hazard ratio: beyond it the partial likelihood has no
finite maximum (one group without events) and the fit is refused."""


@dataclass(frozen=True)
class CoxFit:
    """Log hazard ratio of group 1 against group 0, with its model-based SE."""

    log_hr: float
    se: float
    n: int
    """Patients in both groups."""
    events: int
    """Events in both groups."""

    @property
    def hazard_ratio(self) -> float:
        return math.exp(self.log_hr)

    def ci95(self) -> tuple[float, float]:
        """Wald 95% interval of the hazard ratio (on the log scale, exponentiated)."""
        half = Z95 * self.se
        return math.exp(self.log_hr - half), math.exp(self.log_hr + half)


def _risk_sets(time: np.ndarray, event: np.ndarray, group: np.ndarray):
    """Per distinct event time: (events, events in group 1, at risk in group 0, at risk
    in group 1), each float64 (n_times,). At risk at t: time >= t (Breslow's convention:
    a censoring at t counts as still at risk at t)."""
    order = np.argsort(-time, kind="stable")
    t, d, g = time[order], event[order], group[order]
    # cumulative counts from the longest time down: the risk set grows as t falls
    at_risk_1 = np.cumsum(g)
    at_risk_0 = np.cumsum(1.0 - g)
    last = np.r_[t[1:] != t[:-1], True]  # the last row of each tie block, in this order
    times_d = np.cumsum(d)[last]
    times_d1 = np.cumsum(d * g)[last]
    d_all = np.diff(np.r_[0.0, times_d])
    d_1 = np.diff(np.r_[0.0, times_d1])
    keep = d_all > 0
    return d_all[keep], d_1[keep], at_risk_0[last][keep], at_risk_1[last][keep]


def fit_binary(time, event, group) -> CoxFit:
    """Maximum partial likelihood (Breslow's ties) of the log hazard ratio of ``group``
    == 1 against ``group`` == 0.

    Parameters
    ----------
    time : array_like(float64, ndim=1)
        Follow-up, months (any unit).
    event : array_like(bool, ndim=1)
        True for an event, False for a censoring.
    group : array_like(bool or int, ndim=1)
        1 (or True) for the group whose hazard is in the numerator.

    The score is monotone in the log hazard ratio, so its root is bracketed and found by
    Brent's method; ValueError when a group is empty or has no events (no finite MLE).
    """
    time = np.asarray(time, np.float64)
    event = np.asarray(event, np.float64)
    group = np.asarray(group, np.float64)
    if not (time.shape == event.shape == group.shape and time.ndim == 1):
        raise ValueError("time, event and group must be 1-d arrays of one length")
    for g in (0.0, 1.0):
        if not np.any((group == g) & (event > 0)):
            raise ValueError(
                f"group {int(g)} has no events: the hazard ratio has no finite estimate"
            )
    d, d1, r0, r1 = _risk_sets(time, event, group)

    def share_1(beta: float) -> np.ndarray:
        """Expected share of each time's events in group 1."""
        w = r1 * math.exp(beta)
        return w / (r0 + w)

    def score(beta: float) -> float:
        return float(np.sum(d1 - d * share_1(beta)))

    from scipy.optimize import brentq  # on first use: 0.3 s of start-up otherwise

    beta = brentq(score, -MAX_LOG_HR, MAX_LOG_HR, xtol=1e-12)
    p = share_1(beta)
    information = float(np.sum(d * p * (1.0 - p)))
    return CoxFit(float(beta), 1.0 / math.sqrt(information), int(time.size), int(d.sum()))
