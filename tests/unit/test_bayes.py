"""IMIS against normal-normal conjugate posteriors (simseq.bayes).

The model: one free log-median x with prior N(mu0, s0^2); the model's value of the
target is the free median itself, and the target is observed on the log scale with
its SE, y ~ N(x, se^2). The posterior of x is normal with precision
1/s0^2 + 1/se^2 and mean (mu0/s0^2 + y/se^2) / precision.

Tolerances. An importance-sampling estimate of the posterior mean has Monte Carlo
SE ~ sd / sqrt(ESS) (Kong's effective sample size: the variance of a weighted mean
of ESS equally weighted independent draws); of the posterior SD, for a normal
posterior, ~ sd / sqrt(2 ESS) (the SE of a sample SD). The equal-weight resample
adds multinomial noise: its mean has SE ~ sd * sqrt(1/ESS + 1/n_resample). Each
check allows 4 SE (a two-sided normal tail of 6e-5), at a fixed seed.
"""

import numpy as np
import pytest
from scipy.stats import norm

from simseq.bayes import STOP_ESS, STOP_MAX_ITERATIONS, imis

Z = 4.0


def _normal_problem(mu0, s0, y, se):
    """(sample_prior, log_prior, log_likelihood) of independent conjugate pairs:
    every argument float64 (n_free,)."""
    mu0, s0, y, se = (np.atleast_1d(np.asarray(a, np.float64)) for a in (mu0, s0, y, se))

    def sample_prior(rng, n):
        return mu0 + s0 * rng.standard_normal((n, len(mu0)))

    def log_prior(x):
        return norm.logpdf(x, mu0, s0).sum(axis=1)

    def log_likelihood(x):
        # the model value of each target is the free parameter itself
        return norm.logpdf(y, x, se).sum(axis=1)

    precision = 1 / s0**2 + 1 / se**2
    mean = (mu0 / s0**2 + y / se**2) / precision
    return (sample_prior, log_prior, log_likelihood), mean, np.sqrt(1 / precision)


def _check(result, mean, sd):
    ess = result.ess
    assert np.all(np.abs(result.mean() - mean) < Z * sd / np.sqrt(ess))
    assert np.all(np.abs(result.sd() - sd) < Z * sd / np.sqrt(2 * ess))
    n = len(result.sample)
    assert np.all(np.abs(result.sample.mean(axis=0) - mean) < Z * sd * np.sqrt(1 / ess + 1 / n))


def test_one_log_median_matches_the_conjugate_posterior():
    # prior: median 6 months, 95% within x/÷ 7; target 9 months with se_log 0.1
    problem, mean, sd = _normal_problem(np.log(6.0), 1.0, np.log(9.0), 0.1)
    result = imis(*problem, n_initial=1000, n_per_iteration=200, target_ess=500, seed=11)
    assert result.stopped == STOP_ESS
    assert result.ess >= 500
    assert result.n_iterations >= 1  # a prior sample alone does not reach ESS 500 here
    assert result.n_evaluations == 1000 + 200 * result.n_iterations == len(result.points)
    assert np.isclose(result.weights.sum(), 1.0)
    assert 0 < result.expected_unique <= len(result.sample)
    _check(result, mean, sd)


def test_two_independent_conjugate_pairs():
    problem, mean, sd = _normal_problem(
        [np.log(6.0), 0.0], [1.0, 0.5], [np.log(3.0), 0.3], [0.15, 0.05]
    )
    result = imis(*problem, n_initial=2000, n_per_iteration=300, target_ess=800, seed=3)
    assert result.stopped == STOP_ESS and result.ess >= 800
    _check(result, mean, sd)
    # independent pairs: the posterior correlation is 0, within its SE ~ 1/sqrt(ESS)
    c = np.cov(result.points.T, aweights=result.weights)
    assert abs(c[0, 1] / np.sqrt(c[0, 0] * c[1, 1])) < Z / np.sqrt(result.ess)


def test_the_same_seed_gives_the_same_sample():
    problem, _, _ = _normal_problem(0.0, 1.0, 0.5, 0.1)
    a = imis(*problem, n_initial=300, n_per_iteration=100, target_ess=200, seed=5)
    b = imis(*problem, n_initial=300, n_per_iteration=100, target_ess=200, seed=5)
    np.testing.assert_array_equal(a.sample, b.sample)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_max_iterations_is_reported_as_the_stopping_rule():
    problem, _, _ = _normal_problem(0.0, 1.0, 0.5, 0.01)
    result = imis(*problem, n_initial=200, n_per_iteration=50, target_ess=10_000, max_iterations=2)
    assert result.stopped == STOP_MAX_ITERATIONS
    assert result.n_iterations == 2 and result.n_evaluations == 300


def test_points_the_model_cannot_evaluate_get_no_weight():
    problem, mean, sd = _normal_problem(0.0, 1.0, 0.5, 0.2)
    sample_prior, log_prior, log_likelihood = problem

    def partly_nan(x):
        out = log_likelihood(x)
        return np.where(x[:, 0] < -1.5, np.nan, out)  # ~11 SD below the posterior mean

    result = imis(sample_prior, log_prior, partly_nan, n_initial=1000, n_per_iteration=200, seed=2)
    assert np.all(result.weights[result.points[:, 0] < -1.5] == 0)
    _check(result, mean, sd)


def test_no_overlap_between_prior_and_likelihood_is_refused():
    problem, _, _ = _normal_problem(0.0, 1.0, 0.5, 0.1)
    sample_prior, log_prior, _ = problem
    with pytest.raises(ValueError, match="do not overlap"):
        imis(sample_prior, log_prior, lambda x: np.full(len(x), -np.inf), n_initial=100)


def test_a_correlated_ridge_matches_the_linear_gaussian_posterior():
    # two free log-parameters, one target on their sum: x ~ N(0, I), y ~ N(x1 + x2, se^2).
    # The posterior is normal with precision I + a a' / se^2 (a = (1, 1)) and mean
    # cov a y / se^2: a narrow ridge (correlation ~ -0.98) the mixture must follow.
    se, y = 0.1, 0.8
    a = np.ones(2)
    cov = np.linalg.inv(np.eye(2) + np.outer(a, a) / se**2)
    mean = cov @ a * y / se**2
    sd = np.sqrt(np.diag(cov))

    def sample_prior(rng, n):
        return rng.standard_normal((n, 2))

    def log_prior(x):
        return norm.logpdf(x).sum(axis=1)

    def log_likelihood(x):
        return norm.logpdf(y, x.sum(axis=1), se)

    result = imis(
        sample_prior, log_prior, log_likelihood, n_initial=2000, n_per_iteration=300, seed=4
    )
    assert result.stopped == STOP_ESS
    _check(result, mean, sd)
    c = np.cov(result.points.T, aweights=result.weights)
    r = c[0, 1] / np.sqrt(c[0, 0] * c[1, 1])
    r_true = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    # SE of a sample correlation ~ (1 - r^2) / sqrt(n), n = ESS
    assert abs(r - r_true) < Z * (1 - r_true**2) / np.sqrt(result.ess)
