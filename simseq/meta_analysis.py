"""Pool published medians from several sources: fixed-effect or random-effects meta-analysis
on the log scale.

Real-world cohorts of the same regimen disagree (second-line sorafenib OS 5.6 months in
chon2024, 11.5 in cheon2025), more than their sampling errors allow. A fixed-effect pool
treats that disagreement as noise and reports an SE that is far too small; a
random-effects pool estimates the between-study variance tau^2 and carries it into the
pooled SE, and so into the PSA (Cochrane Handbook 6.4, section 10.10.4; NICE DSU TSD 3).

tau^2 is estimated by DerSimonian-Laird (closed form) or by restricted maximum likelihood
(REML, the default: less biased, Veroniki et al. 2016, Res Synth Methods 7:55). With two
or three sources tau^2 is itself very uncertain: the pooled SE is a best estimate, not a
bound, and the outputs say how many sources it rests on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from simseq.fit import FitError, se_log_median

__all__ = ["MedianSource", "Pooled", "PooledMedian", "pool", "pool_medians"]

Method = Literal["random_effects", "fixed_effect"]
Tau2Estimator = Literal["reml", "dl"]

_REML_TOL = 1e-12  # change in tau^2 (log scale squared) at which the REML iteration stops
_REML_MAX_ITER = 500


@dataclass(frozen=True)
class Pooled:
    """An inverse-variance pool of k estimates on one scale (here: log medians).

    Attributes
    ----------
    estimate, se : float
        Pooled estimate and its standard error (including tau^2 when random-effects).
    tau2 : float
        Between-study variance (0 under fixed effect).
    q : float or None
        Cochran's Q (fixed-effect weights); None with one source.
    i2 : float or None
        Share of the total variability that is between studies,
        tau^2 / (tau^2 + s^2) with s^2 the typical within-study variance (Higgins and
        Thompson 2002; for DerSimonian-Laird this equals (Q - df) / Q, truncated at 0).
        None with one source.
    weights : tuple[float, ...]
        Normalised weights, in input order.
    method : str
        "fixed_effect" or "random_effects".
    tau2_estimator : str or None
        "reml" or "dl" (random effects), None (fixed effect).
    """

    estimate: float
    se: float
    tau2: float
    q: float | None
    i2: float | None
    weights: tuple[float, ...]
    method: str
    tau2_estimator: str | None

    @property
    def k(self) -> int:
        return len(self.weights)

    @property
    def predictive_se(self) -> float:
        """SE of a new setting's estimate: sqrt(se^2 + tau^2) (Riley et al. 2011, BMJ 342:d549)."""
        return math.sqrt(self.se**2 + self.tau2)


def pool(
    y: Sequence[float],
    se: Sequence[float],
    method: Method = "random_effects",
    tau2_estimator: Tau2Estimator = "reml",
) -> Pooled:
    """Inverse-variance pool of estimates ``y`` with standard errors ``se`` (same scale).

    Random effects weights each estimate by 1 / (se_i^2 + tau^2); fixed effect by 1 / se_i^2.
    """
    y = np.asarray(y, np.float64)
    v = np.asarray(se, np.float64) ** 2
    k = len(y)
    w_fixed = 1.0 / v
    fixed = float(np.sum(w_fixed * y) / np.sum(w_fixed))
    q = float(np.sum(w_fixed * (y - fixed) ** 2)) if k > 1 else None
    tau2 = 0.0
    if method == "random_effects" and k > 1:
        tau2 = _tau2_dl(y, v) if tau2_estimator == "dl" else _tau2_reml(y, v)
    elif method != "fixed_effect" and method != "random_effects":
        raise ValueError(f"method must be random_effects or fixed_effect, not {method!r}")
    w = 1.0 / (v + tau2)
    estimate = float(np.sum(w * y) / np.sum(w))
    i2 = None
    if k > 1:
        typical = (k - 1) * np.sum(w_fixed) / (np.sum(w_fixed) ** 2 - np.sum(w_fixed**2))
        if method == "fixed_effect":  # no tau^2 estimated: the Q-based statistic
            i2 = max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0
        else:
            i2 = float(tau2 / (tau2 + typical))
    return Pooled(
        estimate=estimate,
        se=float(1.0 / math.sqrt(np.sum(w))),
        tau2=float(tau2),
        q=q,
        i2=i2,
        weights=tuple(float(x) for x in w / np.sum(w)),
        method=method,
        tau2_estimator=tau2_estimator if method == "random_effects" else None,
    )


def _tau2_dl(y: np.ndarray, v: np.ndarray) -> float:
    """DerSimonian-Laird: tau^2 = max(0, (Q - (k-1)) / (sum w - sum w^2 / sum w))."""
    w = 1.0 / v
    mean = np.sum(w * y) / np.sum(w)
    q = np.sum(w * (y - mean) ** 2)
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    return float(max(0.0, (q - (len(y) - 1)) / c))


def _tau2_reml(y: np.ndarray, v: np.ndarray) -> float:
    """REML by the fixed-point iteration of its estimating equation (Viechtbauer 2005,
    J Educ Behav Stat 30:261), tau^2 <- sum w^2 ((y - mu)^2 - v) / sum w^2 + 1 / sum w,
    truncated at 0, started from DerSimonian-Laird."""
    tau2 = _tau2_dl(y, v)
    for _ in range(_REML_MAX_ITER):
        w = 1.0 / (v + tau2)
        mu = np.sum(w * y) / np.sum(w)
        new = max(0.0, float(np.sum(w**2 * ((y - mu) ** 2 - v)) / np.sum(w**2) + 1.0 / np.sum(w)))
        if abs(new - tau2) < _REML_TOL:
            return new
        tau2 = new
    raise FitError(f"REML estimate of tau^2 did not converge in {_REML_MAX_ITER} iterations")


# --------------------------------------------------------------------------- #
# Medians
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class MedianSource:
    """One published median (months) with what it reports of its uncertainty."""

    id: str
    median: float
    ci95: tuple[float | None, float | None] | None = None
    events: int | None = None
    n: int | None = None

    @property
    def se_log(self) -> float:
        """SE of log median by ``fit.se_log_median``'s rules (CI, else events, else n)."""
        try:
            return se_log_median(self.median, self.ci95, self.events, self.n)
        except FitError as err:
            raise FitError(f"{self.id}: {err}") from None

    @property
    def se_rule(self) -> str:
        """Which of the rules gave the SE (for the provenance note)."""
        if self.ci95 is not None and any(b is not None for b in self.ci95):
            return "CI"
        return "events" if self.events is not None else "n (a lower bound: events < n)"


@dataclass(frozen=True)
class PooledMedian:
    """A pooled median (months) and the pool on the log scale it came from."""

    value: float
    ids: tuple[str, ...]
    pooled: Pooled
    se_rules: tuple[str, ...]

    @property
    def se(self) -> float:
        """SE of the pooled log median."""
        return self.pooled.se

    @property
    def description(self) -> str:
        """How it was pooled, with the heterogeneity statistics, for provenance notes."""
        p = self.pooled
        how = (
            f"random-effects ({p.tau2_estimator.upper()}) inverse-variance on log median"
            if p.method == "random_effects"
            else "fixed-effect inverse-variance on log median"
        )
        parts = [how, f"k={p.k}"]
        if p.q is not None:
            parts.append(f"Q={p.q:.3g} on {p.k - 1} df, I^2={100 * p.i2:.0f}%")
        if p.method == "random_effects":
            parts.append(f"tau^2={p.tau2:.4g}")
        parts.append(f"SE of log pooled {p.se:.4g}")
        weights = ", ".join(
            f"{i} {w:.3f} (SE from {r})"
            for i, w, r in zip(self.ids, p.weights, self.se_rules, strict=True)
        )
        return "; ".join(parts) + "; weights " + weights


def pool_medians(
    sources: Sequence[MedianSource],
    method: Method = "random_effects",
    tau2_estimator: Tau2Estimator = "reml",
) -> PooledMedian:
    """Pool medians on the log scale, each weighted by the SE of its log median.

    Raises
    ------
    FitError
        On an empty list, an invalid median, or a source that reports nothing of its
        uncertainty (no CI, events or n).
    """
    if not sources:
        raise FitError("no medians to pool: supply at least one source")
    for s in sources:
        if not (isinstance(s.median, int | float) and math.isfinite(s.median) and s.median > 0):
            raise FitError(f"median of {s.id} must be a positive number, got {s.median!r}")
    result = pool(
        [math.log(s.median) for s in sources],
        [s.se_log for s in sources],
        method,
        tau2_estimator,
    )
    return PooledMedian(
        value=math.exp(result.estimate),
        ids=tuple(s.id for s in sources),
        pooled=result,
        se_rules=tuple(s.se_rule for s in sources),
    )
