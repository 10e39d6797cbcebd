"""A scenario's Bayesian calibration: priors, the targets' likelihood, IMIS, the predictive.

``calibration.method: bayes`` frees the parameters named in ``calibration.priors``
(key paths: a median declared ``{calibrate: ...}``, a Weibull shape, ...) and
weighs every target at once (Menzies et al. 2017): a median's log is normal about
the log of the model's median with the SE of the log median its evidence gives (CI,
events or n, as for a drawn target); a landmark proportion is normal about the
model's OS at that month with the SE from its CI or n, or the target's stated
``se:``. The sampler works on the log of every free parameter, where each prior is
normal; each likelihood evaluation binds one row of the parameter table per point
and computes every target by quadrature (``simseq.quadrature``: exact up to the
O(step^2) grid error, no Monte Carlo noise), all points at once.

The result is an equal-weight posterior sample, the posterior mean (the base
case's values, months or the parameter's own unit) and, per target, the posterior
predictive: the model quantity at each posterior draw, and replicated data (the
model quantity plus the target's sampling noise), whose 95% interval is the honest
check of "the published value is inside".
"""

import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from simseq.bayes import STOP_MAX_ITERATIONS, IMISResult, imis
from simseq.calibrate import target_id
from simseq.fit import Z95
from simseq.model import BindError, bind, structure_of
from simseq.quadrature import os_landmark, os_median, quadrature_problem, sojourn_median
from simseq.scenario import Prior, ScenarioError

LANDMARK = "os_landmark_from_sequence_start"
# streams of their own beside the sampler's (seed): resampling PSA draws, replicating data
RESAMPLE_STREAM, REPLICATE_STREAM = 1, 2


@dataclass(frozen=True)
class FreeParameter:
    """A parameter the Bayesian calibration gives a posterior."""

    path: str
    """Key path in the scenario (a key of ``calibration.priors``)."""
    column: int
    """Its column in the parameter table."""
    unit: str
    prior: Prior


@dataclass(frozen=True)
class TargetFit:
    """One target against its posterior predictive (a row of calibration.csv)."""

    target: str
    """Key path, "calibration.targets.<i>"."""
    target_id: str
    quantity: str
    where: str
    """The cohort regimen or the sequence and month."""
    unit: str
    published: float
    published_lo: float
    published_hi: float
    """The 95% CI implied by the SE the likelihood uses (on its scale: log for a median)."""
    se: float
    se_scale: str
    """"log" (SE of the log median) or "probability"."""
    model_mean: float
    model_lo: float
    model_hi: float
    """Posterior mean and 95% interval of the model quantity."""
    replicated_lo: float
    replicated_hi: float
    """95% interval of replicated data: the model quantity plus the target's sampling
    noise (its SE); the interval a published value is checked against."""
    inside: bool
    """Whether the published value lies in the replicated-data interval."""


@dataclass(frozen=True)
class Posterior:
    """A Bayesian calibration's result.

    Attributes
    ----------
    free : tuple of FreeParameter
    sample : ndarray(float64, shape=(n_resample, n_free))
        Equal-weight posterior draws, each parameter in its unit (months, or none for a
        shape).
    mean : ndarray(float64, shape=(n_free,))
        Importance-weighted posterior mean, in the parameters' units: the base case.
    imis : IMISResult
        The sampler's points (log scale), weights and diagnostics.
    targets : tuple of TargetFit
    model_values : ndarray(float64, shape=(n_resample, n_targets))
        Each target's model quantity at each posterior draw (months or probability).
    replicated : ndarray(float64, shape=(n_resample, n_targets))
        ``model_values`` with the targets' sampling noise.
    seconds : float
        Wall time of the calibration.
    """

    free: tuple[FreeParameter, ...]
    sample: np.ndarray
    mean: np.ndarray
    imis: IMISResult
    targets: tuple[TargetFit, ...]
    model_values: np.ndarray
    replicated: np.ndarray
    seconds: float

    def with_draws(self, rows: np.ndarray, seed: int) -> np.ndarray:
        """``rows`` (n_draws, n_columns) with the free parameters of row d from posterior
        draw d: the sample itself when it has n_draws rows, else resampled from it with
        ``seed`` (with replacement)."""
        out = np.array(rows, np.float64)
        n = len(out)
        if n == len(self.sample):
            draws = self.sample
        else:
            rng = np.random.default_rng((seed, RESAMPLE_STREAM))
            draws = self.sample[rng.integers(0, len(self.sample), n)]
        out[:, [f.column for f in self.free]] = draws
        return out

    def sample_rows(self) -> list[dict]:
        """posterior.csv: one row per posterior draw, each free parameter by its key path
        with its unit, e.g. "regimens.lenvatinib.after_progression.median [months]"."""
        names = [f"{f.path} [{f.unit}]" for f in self.free]
        return [
            {"draw": d, **{n: float(v) for n, v in zip(names, row, strict=True)}}
            for d, row in enumerate(self.sample)
        ]

    def target_rows(self) -> list[dict]:
        """calibration.csv of a Bayesian calibration: one row per target."""
        return [
            {
                "target": t.target,
                "target_id": t.target_id,
                "quantity": t.quantity,
                "where": t.where,
                "unit": t.unit,
                "published": t.published,
                "published_lo95": t.published_lo,
                "published_hi95": t.published_hi,
                "se": t.se,
                "se_scale": t.se_scale,
                "model_mean": t.model_mean,
                "model_lo95": t.model_lo,
                "model_hi95": t.model_hi,
                "replicated_lo95": t.replicated_lo,
                "replicated_hi95": t.replicated_hi,
                "published_inside_replicated95": t.inside,
            }
            for t in self.targets
        ]

    def summary(self) -> dict:
        """The diagnostics and the posterior mean, for calibration_summary.json."""
        r = self.imis
        return {
            "method": "bayes (IMIS, Raftery & Bao 2010)",
            "ess": r.ess,
            "target_ess": r.target_ess,
            "likelihood_evaluations": r.n_evaluations,
            "expected_unique_points": r.expected_unique,
            "n_resample": len(self.sample),
            "iterations": r.n_iterations,
            "stopped": r.stopped,
            "seed": r.seed,
            "seconds": self.seconds,
            "base_case": "posterior mean of each free parameter",
            "posterior_mean": {f.path: float(m) for f, m in zip(self.free, self.mean, strict=True)},
            "targets_inside_replicated_95": int(sum(t.inside for t in self.targets)),
            "n_targets": len(self.targets),
            "intervals": (
                "calibration.csv: model_* is the posterior of the model quantity; "
                "replicated_* adds each target's sampling noise (its SE) and is the interval "
                "the published value is checked against"
            ),
        }


class TargetModel:
    """Every target's model quantity for rows of the parameter table, by quadrature."""

    def __init__(self, resolved, file: str):
        self.resolved = resolved
        self.horizon = resolved.horizon
        cohorts = resolved.cohort_structure()
        self.cohorts = cohorts
        self.plans = []  # (kind, structure, index, month) per target
        sequences = {s.name: s for s in resolved.sequences}
        base = resolved.table.base_row()
        for t in resolved.bayes_targets:
            spec = t.spec
            if spec.quantity == LANDMARK:
                structure = structure_of([sequences[spec.sequence]], resolved.covariates)
                plan = ("landmark", structure, 0, float(spec.month))
            elif spec.quantity == "median_time_on_line":
                index = cohorts.template.state_index(f"cohort:{spec.regimen}", f"L2:{spec.regimen}")
                plan = ("sojourn", cohorts, index, 0.0)
            else:
                index = cohorts.template.seq_names.index(f"cohort:{spec.regimen}")
                plan = ("os", cohorts, index, 0.0)
            problem = quadrature_problem(bind(plan[1], base))
            if problem is not None:
                raise ScenarioError(
                    file,
                    [
                        (
                            f"calibration.targets.{t.index}",
                            None,
                            "method: bayes computes its targets by quadrature, which is not "
                            f"exact for this model: {problem}",
                        )
                    ],
                )
            self.plans.append(plan)

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """float64 (n_rows, n_targets): months for medians, a probability for landmarks
        (inf where a median is beyond the horizon)."""
        out = np.full((len(rows), len(self.plans)), np.nan)
        bound = {}
        for j, (kind, structure, index, month) in enumerate(self.plans):
            key = id(structure)
            if key not in bound:
                bound[key] = _bind_valid(structure, rows)
            model, ok = bound[key]
            if model is None:
                continue
            if kind == "os":
                out[ok, j] = os_median(model, index, self.horizon)
            elif kind == "sojourn":
                out[ok, j] = sojourn_median(model, index, self.horizon)
            else:
                out[ok, j] = os_landmark(model, index, month)
        return out


def _bind_valid(structure, rows: np.ndarray):
    """(ModelArrays of the rows the kernels can use or None, bool mask of those rows): a
    prior can propose points no clock can take (a Weibull shape of 3e-4), which get no
    likelihood rather than stopping the sampler. Bad rows are found by halving."""
    try:
        return bind(structure, rows), np.ones(len(rows), bool)
    except BindError:
        pass
    ok = _valid_mask(structure, rows)
    return (bind(structure, rows[ok]) if ok.any() else None), ok


def _valid_mask(structure, rows: np.ndarray) -> np.ndarray:
    try:
        bind(structure, rows)
        return np.ones(len(rows), bool)
    except BindError:
        if len(rows) == 1:
            return np.zeros(1, bool)
    half = len(rows) // 2
    return np.concatenate(
        [_valid_mask(structure, rows[:half]), _valid_mask(structure, rows[half:])]
    )


def calibrate_bayes(resolved, *, file: str = "<scenario>", say=None) -> Posterior:
    """Sample the posterior of ``resolved``'s free parameters given its targets.

    ``resolved``: a ``Resolved`` of a scenario with ``calibration.method: bayes``; every
    other parameter is held at its base value. ``say`` gets progress notes. A sampler
    that stops at ``max_iterations`` short of the target ESS is a ``ScenarioError``.
    """
    started = time.perf_counter()
    cal = resolved.scenario.calibration
    settings = cal.imis
    seed = resolved.scenario.simulation.seed if settings.seed is None else settings.seed
    table = resolved.table
    free = tuple(
        FreeParameter(path, col, _unit(table.find(path).unit), cal.priors[path])
        for path, col in resolved.free_columns.items()
    )
    targets = resolved.bayes_targets
    mu = np.log([f.prior.median for f in free])
    sd = np.array([f.prior.se_log for f in free])
    base = table.base_row()
    observed = np.array([float(t.value.of(base)[0]) for t in targets])
    se = np.array([t.se for t in targets])
    is_landmark = np.array([t.spec.quantity == LANDMARK for t in targets])
    model = TargetModel(resolved, file)
    evaluated: list[np.ndarray] = []

    def rows_at(points: np.ndarray) -> np.ndarray:
        rows = np.repeat(base, len(points), axis=0)
        rows[:, [f.column for f in free]] = np.exp(points)
        return rows

    def log_likelihood(points: np.ndarray) -> np.ndarray:
        values = model(rows_at(points))
        evaluated.append(values)
        with np.errstate(divide="ignore", invalid="ignore"):
            centre = np.where(is_landmark, values, np.log(values))
            data = np.where(is_landmark, observed, np.log(observed))
            out = norm.logpdf(data, centre, se).sum(axis=1)
        return np.where(np.isfinite(out), out, -np.inf)

    if say is not None:
        say(f"Bayesian calibration: {len(free)} free parameters, {len(targets)} targets (IMIS)")
    result = imis(
        lambda rng, n: mu + sd * rng.standard_normal((n, len(free))),
        lambda x: norm.logpdf(x, mu, sd).sum(axis=1),
        log_likelihood,
        n_initial=settings.n_initial,
        n_per_iteration=settings.n_per_iteration,
        target_ess=settings.target_ess,
        max_iterations=settings.max_iterations,
        n_resample=settings.n_resample,
        seed=seed,
    )
    if result.stopped == STOP_MAX_ITERATIONS:
        raise ScenarioError(
            file,
            [
                (
                    "calibration.imis",
                    None,
                    f"IMIS reached max_iterations ({settings.max_iterations}) with an effective "
                    f"sample size of {result.ess:.0f} < target_ess {settings.target_ess}: raise "
                    "max_iterations, or check that the priors and targets are compatible",
                )
            ],
        )
    values = np.vstack(evaluated)[result.sample_index]
    # replicated data: the model quantity plus each target's sampling noise
    z = np.random.default_rng((seed, REPLICATE_STREAM)).standard_normal(values.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        replicated = np.where(is_landmark, values + se * z, values * np.exp(se * z))
    fits = tuple(
        _fit(t, observed[j], values[:, j], replicated[:, j]) for j, t in enumerate(targets)
    )
    posterior = Posterior(
        free=free,
        sample=np.exp(result.sample),
        mean=result.weights @ np.exp(result.points),
        imis=result,
        targets=fits,
        model_values=values,
        replicated=replicated,
        seconds=time.perf_counter() - started,
    )
    if say is not None:
        say(
            f"  ESS {result.ess:.0f}, {result.n_evaluations:,} likelihood evaluations, "
            f"{result.n_iterations} iterations, {posterior.seconds:.1f} s"
        )
    return posterior


def _unit(unit: str) -> str:
    """The table's unit of a free parameter; "no unit" for a shape ("(shape)")."""
    return "no unit" if not unit or unit.startswith("(") else unit


def _fit(t, published: float, values: np.ndarray, replicated: np.ndarray) -> TargetFit:
    landmark = t.spec.quantity == LANDMARK
    if landmark:
        lo, hi = published - Z95 * t.se, published + Z95 * t.se
        where = f"{t.spec.sequence}, month {t.spec.month:g}"
    else:
        lo, hi = published * np.exp(-Z95 * t.se), published * np.exp(Z95 * t.se)
        where = f"cohort:{t.spec.regimen}"
    r_lo, r_hi = np.quantile(replicated, [0.025, 0.975])
    m_lo, m_hi = np.quantile(values, [0.025, 0.975])
    return TargetFit(
        target=f"calibration.targets.{t.index}",
        target_id=target_id(t.spec),
        quantity=t.spec.quantity,
        where=where,
        unit=t.unit,
        published=float(published),
        published_lo=float(lo),
        published_hi=float(hi),
        se=float(t.se),
        se_scale="probability" if landmark else "log",
        model_mean=float(values.mean()),
        model_lo=float(m_lo),
        model_hi=float(m_hi),
        replicated_lo=float(r_lo),
        replicated_hi=float(r_hi),
        inside=bool(r_lo <= published <= r_hi),
    )
