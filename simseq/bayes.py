"""Incremental mixture importance sampling (IMIS) of a posterior, arrays in, arrays out.

Raftery & Bao (2010, Biometrics 66:1162), as Menzies et al. (2017,
PharmacoEconomics 35:613) use it to calibrate health-economic models: sample the
prior, then, until the importance sample is good enough, put a multivariate normal
at the point of highest weight (its covariance from that point's nearest
neighbours) and sample it too. Every point ever drawn keeps its place in the
sample; its weight is likelihood x prior / the density of the mixture of the prior
and all normals so far, so one expensive model evaluation per point is all the
sampler asks for.

The caller works on an unconstrained scale of its choosing (simseq: log months and
log shapes) and supplies three vectorised functions of a (n_points, n_free)
matrix: a prior sampler, the log prior density and the log likelihood.
Randomness comes from one ``numpy.random.Generator`` seeded once: the same seed
gives the same sample.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

STOP_ESS = "ess"
STOP_MAX_ITERATIONS = "max_iterations"


@dataclass(frozen=True)
class IMISResult:
    """An importance sample of the posterior and how it was reached.

    Attributes
    ----------
    points : ndarray(float64, shape=(n_points, n_free))
        Every point the likelihood was evaluated at, on the sampler's scale.
    weights : ndarray(float64, shape=(n_points,))
        Normalised importance weights (sum 1).
    log_likelihood : ndarray(float64, shape=(n_points,))
    sample : ndarray(float64, shape=(n_resample, n_free))
        Equal-weight posterior sample: ``points`` resampled with replacement by weight.
    sample_index : ndarray(int64, shape=(n_resample,))
        Row of ``points`` each sample row is.
    ess : float
        Effective sample size, 1 / sum(weights^2).
    expected_unique : float
        Expected distinct points in a resample of ``n_resample``:
        sum(1 - (1 - w)^n_resample) (Raftery & Bao's stopping statistic).
    n_evaluations : int
        Points the likelihood was evaluated at (== n_points).
    n_iterations : int
        Mixture components added after the prior sample.
    stopped : str
        ``"ess"`` (ESS reached ``target_ess``) or ``"max_iterations"`` (it did not).
    target_ess : float
    seed : int
    """

    points: np.ndarray
    weights: np.ndarray
    log_likelihood: np.ndarray
    sample: np.ndarray
    sample_index: np.ndarray
    ess: float
    expected_unique: float
    n_evaluations: int
    n_iterations: int
    stopped: str
    target_ess: float
    seed: int

    def mean(self) -> np.ndarray:
        """(n_free,) importance estimate of the posterior mean."""
        return self.weights @ self.points

    def sd(self) -> np.ndarray:
        """(n_free,) importance estimate of the posterior SD."""
        centred = self.points - self.mean()
        return np.sqrt(self.weights @ centred**2)


def imis(
    sample_prior: Callable[[np.random.Generator, int], np.ndarray],
    log_prior: Callable[[np.ndarray], np.ndarray],
    log_likelihood: Callable[[np.ndarray], np.ndarray],
    *,
    n_initial: int = 2000,
    n_per_iteration: int = 500,
    target_ess: float = 500.0,
    max_iterations: int = 50,
    n_resample: int = 1000,
    seed: int = 0,
) -> IMISResult:
    """Sample a posterior by incremental mixture importance sampling.

    Parameters
    ----------
    sample_prior : callable
        ``sample_prior(rng, n)`` -> float64 (n, n_free) draws from the prior.
    log_prior : callable
        float64 (n, n_free) -> (n,) log prior density on the same scale; -inf outside
        the support.
    log_likelihood : callable
        float64 (n, n_free) -> (n,) log likelihood; -inf (or nan, taken as -inf) where
        the model cannot be evaluated.
    n_initial : int
        Prior draws before the first mixture component.
    n_per_iteration : int
        Draws from each new component; also the number of nearest neighbours whose
        weighted spread sets its covariance.
    target_ess : float
        Stop once the effective sample size reaches this.
    max_iterations : int
        Stop after this many components even if ``target_ess`` was not reached
        (``stopped == "max_iterations"``: the sample is then not to be trusted).
    n_resample : int
        Rows of the equal-weight posterior sample.
    seed : int
        Seed of the one generator every random number comes from.

    Returns
    -------
    IMISResult
    """
    rng = np.random.default_rng(seed)
    points = np.atleast_2d(np.asarray(sample_prior(rng, n_initial), np.float64))
    prior_lp = _finite_or_ninf(log_prior(points))
    loglik = _finite_or_ninf(log_likelihood(points))
    if not np.isfinite(loglik).any():
        raise ValueError(
            f"the likelihood is zero (or not computable) at all {n_initial} prior draws: "
            "the prior and the targets do not overlap"
        )
    # neighbours are near on the prior's scale, as in Raftery & Bao
    metric = np.linalg.inv(np.atleast_2d(np.cov(points, rowvar=False)))
    # log density of each point under each mixture component, one column per component
    component_lp = np.empty((len(points), 0))
    centres: list[np.ndarray] = []
    covariances: list[np.ndarray] = []
    n_iterations = 0
    while True:
        weights = _weights(prior_lp, loglik, component_lp, n_initial, n_per_iteration)
        ess = 1.0 / np.sum(weights**2)
        if ess >= target_ess:
            stopped = STOP_ESS
            break
        if n_iterations == max_iterations:
            stopped = STOP_MAX_ITERATIONS
            break
        centre, cov = _next_component(points, weights, metric, n_per_iteration)
        centres.append(centre)
        covariances.append(cov)
        new = rng.multivariate_normal(centre, cov, size=n_per_iteration, method="cholesky")
        # the new component's density at the old points, every component's at the new
        old_on_new = multivariate_normal(centre, cov, allow_singular=True).logpdf(points)
        new_lp = np.column_stack(
            [
                multivariate_normal(c, s, allow_singular=True).logpdf(new).reshape(-1)
                for c, s in zip(centres, covariances, strict=True)
            ]
        )
        component_lp = np.vstack(
            (np.column_stack((component_lp, np.reshape(old_on_new, (-1, 1)))), new_lp)
        )
        points = np.vstack((points, new))
        prior_lp = np.concatenate((prior_lp, _finite_or_ninf(log_prior(new))))
        loglik = np.concatenate((loglik, _finite_or_ninf(log_likelihood(new))))
        n_iterations += 1
    index = rng.choice(len(points), size=n_resample, replace=True, p=weights)
    return IMISResult(
        points=points,
        weights=weights,
        log_likelihood=loglik,
        sample=points[index],
        sample_index=index,
        ess=float(ess),
        expected_unique=float(np.sum(1.0 - (1.0 - weights) ** n_resample)),
        n_evaluations=len(points),
        n_iterations=n_iterations,
        stopped=stopped,
        target_ess=float(target_ess),
        seed=int(seed),
    )


def _finite_or_ninf(values) -> np.ndarray:
    """float64 (n,) with nan as -inf: a point the model cannot evaluate has no weight."""
    out = np.asarray(values, np.float64).reshape(-1)
    return np.where(np.isnan(out), -np.inf, out)


def _weights(prior_lp, loglik, component_lp, n_initial: int, n_per_iteration: int) -> np.ndarray:
    """(n_points,) normalised weights: likelihood x prior / the sampling mixture.

    The mixture draws each point from the prior with probability n_initial / n_points
    and from each component with n_per_iteration / n_points."""
    n_points = len(loglik)
    if component_lp.shape[1] == 0:
        log_q = prior_lp  # pure prior sample: the weight is the likelihood
    else:
        terms = np.column_stack(
            (
                np.log(n_initial / n_points) + prior_lp,
                np.log(n_per_iteration / n_points) + component_lp,
            )
        )
        log_q = logsumexp(terms, axis=1)
    log_w = loglik + prior_lp - log_q
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    return np.exp(log_w - logsumexp(log_w))


def _next_component(points, weights, metric, n_near: int):
    """Centre and covariance of the next normal: the highest-weight point, and the
    spread about it of its ``n_near`` nearest points (Mahalanobis on the prior's
    covariance), each weighted by the mean of its weight and 1 / n_points so that
    zero-weight neighbours still widen it (Raftery & Bao 2010, section 3)."""
    centre = points[np.argmax(weights)]
    d = points - centre
    distance = np.einsum("ij,jk,ik->i", d, metric, d)
    near = np.argsort(distance, kind="stable")[:n_near]
    w = (weights[near] + 1.0 / len(points)) / 2.0
    w = w / w.sum()
    cov = (d[near] * w[:, None]).T @ d[near]
    # a component collapsed onto a line (all neighbours equal in some direction) is
    # widened a little on the prior's scale so that it can still be sampled
    cov = cov + 1e-9 * np.linalg.inv(metric)
    return centre, cov
