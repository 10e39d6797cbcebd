"""Fit a parametric family to the summaries papers publish.

Published survival evidence is usually a median (often with a one-sided CI),
sometimes a landmark survival such as S(12) = 0.45, sometimes quartiles. This
module turns those into a :class:`~simseq.distributions.Distribution`, refusing
requests that are under-identified (one median, two free parameters),
inconsistent (a landmark above the median's 0.5 at a later time) or impossible
(survival outside (0, 1)), with a message that says what to supply instead.

Every fit is reported on the complementary log-log scale, log(-log S) = log H:
the scale on which a Weibull is a straight line in log t, so the residuals of
different points are comparable and neither the early nor the tail points
dominate the least squares the way they would on the survival scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from simseq.distributions import Distribution, Family, get_family


def _optimize():
    """scipy.optimize, imported on first use (~0.5 s of start-up that a run with
    closed-form fits never needs)."""
    from scipy import optimize

    return optimize


__all__ = [
    "FitError",
    "FitResult",
    "fit_median",
    "fit_points",
    "fit_summaries",
    "se_log_median",
]

Z95 = 1.959963984540054  # standard normal 97.5% quantile, for 95% intervals
SCALE = "log(-log S)"

# Residual on the fitting scale when a trial parameter vector overflows: large
# enough to steer the optimiser away, finite so it does not break.
_PENALTY = 1e3
_EXACT_TOL = 1e-7  # largest |residual| on log(-log S) accepted as an exact solution
_FAILED = 50.0  # a residual this large (H off by e^50) means the optimiser failed


class FitError(ValueError):
    """An under-identified, inconsistent or impossible fitting request.

    The message says what was wrong and what to supply instead.
    """


@dataclass(frozen=True)
class FitResult:
    """A fitted distribution and how it was obtained.

    Attributes
    ----------
    family : str
        Family name, e.g. ``"weibull"``.
    params : dict[str, float]
        Fitted parameters keyed by their flexsurv names, in family order.
    distribution : Distribution
        The fitted distribution.
    points : list[tuple[float, float]]
        The (time, survival) targets used, sorted by time; a median m is (m, 0.5).
    residuals : list[float]
        Fitted minus target at each point, on the ``scale`` scale.
    scale : str
        Scale of the least squares and the residuals: ``"log(-log S)"``
        (complementary log-log). Exact solutions have zero residual on it.
    method : str
        ``"median+fixed"``, ``"exact (n points, n params)"`` or ``"least squares (k points)"``.
    """

    family: str
    params: dict[str, float]
    distribution: Distribution
    points: list[tuple[float, float]]
    residuals: list[float]
    scale: str
    method: str

    def to_json_dict(self) -> dict:
        """Plain-JSON form: family, params, median, points, residuals, scale, method."""
        median = float(self.distribution.median())
        return {
            "family": self.family,
            "params": {k: float(v) for k, v in self.params.items()},
            # None when half the cohort is never reached (a gompertz cure fraction >= 0.5)
            "median": median if math.isfinite(median) else None,
            "points": [[float(t), float(s)] for t, s in self.points],
            "residuals": [float(r) for r in self.residuals],
            "scale": self.scale,
            "method": self.method,
        }

    def to_text(self) -> str:
        """Short human summary: family, parameters, then target vs fitted survival."""
        width = max(len(name) for name in [*self.params, "median"])
        lines = [f"{self.family} fitted by {self.method}; residuals on {self.scale}"]
        lines += [f"  {name:<{width}}  {value:.6g}" for name, value in self.params.items()]
        lines.append(f"  {'median':<{width}}  {float(self.distribution.median()):.6g} months")
        lines.append("")
        lines.append(f"  {'time':>8}  {'target S':>9}  {'fitted S':>9}  {'residual':>10}")
        fitted = np.atleast_1d(self.distribution.survival(np.array([t for t, _ in self.points])))
        for (t, s), f, r in zip(self.points, fitted, self.residuals, strict=True):
            lines.append(f"  {t:>8.4g}  {s:>9.4f}  {float(f):>9.4f}  {r:>10.2e}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- #
# Input checks
# --------------------------------------------------------------------------- #


def _family(name: str) -> Family:
    try:
        return get_family(name)
    except ValueError as err:
        raise FitError(str(err)) from None


def _finite(value: object, what: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FitError(f"{what} must be a number; got {value!r}") from None
    if not math.isfinite(x):
        raise FitError(f"{what} must be finite; got {value!r}")
    return x


def _check_fixed(fam: Family, fixed: Mapping[str, float] | None) -> dict[str, float]:
    """Validate fixed parameter names and values; return them as floats."""
    out: dict[str, float] = {}
    for name, value in (fixed or {}).items():
        if name not in fam.param_names:
            if len(fam.param_names) == 1:
                raise FitError(
                    f"{fam.name} has no parameter {name!r}: its only parameter, "
                    f"{fam.param_names[0]}, is the one fitted"
                )
            shapes = [p for p in fam.param_names if p != fam.scale_param]
            raise FitError(
                f"{fam.name} has no parameter {name!r}; its parameters are "
                f"{', '.join(fam.param_names)} (fix one with --fix NAME=VALUE, e.g. "
                f"{' '.join(f'--fix {p}=VALUE' for p in shapes)})"
            )
        x = _finite(value, f"fixed {name}")
        if name not in fam.real_params and x <= 0:
            raise FitError(f"fixed {name} must be > 0 for {fam.name}; got {x:g}")
        out[name] = x
    return out


def _check_point(t: object, s: object, what: str) -> tuple[float, float]:
    tf = _finite(t, f"{what} time")
    sf = _finite(s, f"{what} survival")
    if tf <= 0:
        raise FitError(f"{what} time must be > 0 months; got {tf:g}")
    if not 0 < sf < 1:
        raise FitError(f"{what} survival must lie strictly between 0 and 1; got {sf:g}")
    return tf, sf


def _check_points(
    points: Sequence[tuple[float, float]], labels: Sequence[str] | None = None
) -> list[tuple[float, float]]:
    """Validate (time, survival) points; return them sorted by time.

    Survival must be strictly decreasing in time and times distinct: a survival
    curve cannot rise, and two targets at one time cannot both hold. ``labels``
    (e.g. "the median") name the points in messages; default "point i".
    """
    names = list(labels) if labels is not None else [f"point {i + 1}" for i in range(len(points))]
    checked = []
    for name, point in zip(names, points, strict=True):
        try:
            t, s = point
        except (TypeError, ValueError):
            raise FitError(f"{name} must be a (time, survival) pair; got {point!r}") from None
        checked.append((*_check_point(t, s, name), name))
    checked.sort()
    for (t0, s0, name0), (t1, s1, name1) in zip(checked, checked[1:], strict=False):
        if t0 == t1:
            raise FitError(f"{name0} and {name1} are both at time {t0:g} (S={s0:g} and S={s1:g})")
        if s1 >= s0:
            raise FitError(
                f"{name1} S({t1:g})={s1:g} is not below {name0} S({t0:g})={s0:g} although "
                f"{t1:g} > {t0:g}: survival must decrease with time"
            )
    return [(t, s) for t, s, _ in checked]


def _underidentified(fam: Family, fixed: Mapping[str, float], n_points: int, median_only: bool):
    """The FitError for too few points, naming what would identify the fit."""
    free = [p for p in fam.param_names if p not in fixed]
    k = len(fam.param_names)
    names = ", ".join(fam.param_names)
    what = "a median alone" if median_only else f"{n_points} point{'s' * (n_points != 1)}"
    fixes = "one" if n_points == 1 else str(n_points)
    fixed_part = f" ({', '.join(fixed)} fixed)" if fixed else ""
    to_fix = [p for p in free if p != fam.scale_param]
    missing = len(free) - n_points
    options = " ".join("--shape" if p == "shape" else f"--fix {p}=VALUE" for p in to_fix[:missing])
    more = "a second point" if n_points == 1 and missing == 1 else f"{missing} more point(s)"
    return FitError(
        f"{fam.name} has {k} parameters ({names}){fixed_part} and {what} "
        f"{'fixes' if n_points == 1 else 'fix'} only {fixes}: "
        f"supply {options}, or {more} (--landmark T:S or --quartiles Q1:Q3)"
    )


# --------------------------------------------------------------------------- #
# Building blocks
# --------------------------------------------------------------------------- #


def _loglog(fam: Family, times: np.ndarray, params: Sequence[float]) -> np.ndarray:
    """log(-log S(t)) = log H(t), with overflow turned into a finite penalty."""
    with np.errstate(all="ignore"):
        h = np.asarray(fam.cumhaz(times, *params), dtype=np.float64)
        out = np.log(h)
    return np.where(np.isfinite(out), out, np.copysign(_PENALTY, np.nan_to_num(out)))


def _make_result(
    fam: Family, params: Sequence[float], points: list[tuple[float, float]], method: str
) -> FitResult:
    values = [float(p) for p in params]
    if not all(math.isfinite(p) for p in values):
        raise FitError(f"the {fam.name} fit did not converge to finite parameters: {values}")
    try:
        fam.validate(*values)
        dist = Distribution(fam.name, tuple(values))
    except ValueError as err:
        raise FitError(f"the {fam.name} fit gave invalid parameters {values}: {err}") from None
    times = np.array([t for t, _ in points])
    target = np.log(-np.log(np.array([s for _, s in points])))
    residuals = _loglog(fam, times, values) - target
    return FitResult(
        family=fam.name,
        params=dict(zip(fam.param_names, values, strict=True)),
        distribution=dist,
        points=list(points),
        residuals=[float(r) for r in residuals],
        scale=SCALE,
        method=method,
    )


def _to_x(fam: Family, name: str, value: float) -> float:
    """The optimiser's coordinate for a parameter: positive ones on the log scale (nan for a
    start that underflowed to 0, which the caller skips)."""
    if name in fam.real_params:
        return value
    return math.log(value) if value > 0 else math.nan


def _from_x(fam: Family, name: str, x: float) -> float:
    return x if name in fam.real_params else math.exp(x)


def _solve_one(
    fam: Family, t: float, s: float, fixed: dict[str, float], free: str
) -> tuple[float, ...]:
    """Solve the single free parameter so that S(t) = s exactly."""
    target = math.log(-math.log(s))

    def full(value: float) -> tuple[float, ...]:
        return tuple(value if n == free else fixed[n] for n in fam.param_names)

    if free == fam.scale_param:
        try:
            with np.errstate(all="ignore"):
                params = full(float(fam.solve_scale(t, s, fixed)))
        except (ArithmeticError, ValueError):  # e.g. gengamma with Q ~ 1e-300: 1/Q^2 overflows
            params = (math.nan,)
        if all(map(math.isfinite, params)):
            err = _loglog(fam, np.array([t]), params)[0] - target
            if abs(err) < 1e-12:
                return params

    # No closed form (or it lost precision): bracket a sign change on a grid of
    # the transformed parameter, then brentq.
    def g(x: float) -> float:
        return float(_loglog(fam, np.array([t]), full(_from_x(fam, free, x)))[0] - target)

    real = free in fam.real_params
    # a real-valued scale is a location on log time (meanlog, mu): centre it on log t
    centre = math.log(t) if real and free == fam.scale_param else 0.0
    # real parameters on an asinh grid: fine near the centre, out to +-1500
    grid = centre + (np.sinh(np.linspace(-8.0, 8.0, 401)) if real else np.linspace(-40, 40, 401))
    values = np.array([g(x) for x in grid])
    ok = np.abs(values) < _PENALTY
    for i in range(len(grid) - 1):
        if ok[i] and ok[i + 1] and values[i] * values[i + 1] <= 0:
            x = _optimize().brentq(
                g, grid[i], grid[i + 1], xtol=1e-15, rtol=4 * np.finfo(float).eps
            )
            return full(_from_x(fam, free, x))
    held = "".join(f", {k}={v:g}" for k, v in fixed.items())[1:]
    raise FitError(
        f"no {fam.name} {free} gives S({t:g})={s:g} with{held or ' nothing fixed'}: "
        f"the target is unreachable; fix a different parameter or supply another point"
    )


def _least_squares(
    fam: Family,
    times: np.ndarray,
    target: np.ndarray,
    fixed: dict[str, float],
    free: list[str],
    starts: list[dict[str, float]],
) -> tuple[tuple[float, ...], float]:
    """Minimise the sum of squared log(-log S) residuals over the free parameters."""

    def full(x: np.ndarray) -> tuple[float, ...]:
        values = dict(fixed)
        values.update({n: _from_x(fam, n, float(v)) for n, v in zip(free, x, strict=True)})
        return tuple(values[n] for n in fam.param_names)

    def residuals(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            if not np.all(np.abs(x) < 700):
                return np.full(len(times), _PENALTY)
            return _loglog(fam, times, full(x)) - target

    best: tuple[tuple[float, ...], float] | None = None
    for start in starts:
        x0 = np.array([_to_x(fam, n, start[n]) for n in free])
        if not np.all(np.isfinite(x0)):
            continue
        fit = _optimize().least_squares(
            residuals,
            x0,
            method="trf",
            jac="3-point",  # central differences: the optimum to ~1e-12, not ~1e-8
            xtol=1e-15,
            ftol=1e-15,
            gtol=1e-15,
            max_nfev=4000,
        )
        cost = float(np.sum(fit.fun**2))
        if np.all(np.isfinite(fit.x)) and (best is None or cost < best[1]):
            best = (full(fit.x), cost)
    if best is None:
        raise FitError(f"the {fam.name} least-squares fit found no finite starting point")
    return best


# --------------------------------------------------------------------------- #
# Public fitting API
# --------------------------------------------------------------------------- #


def fit_median(family: str, median: float, fixed: Mapping[str, float] | None = None) -> FitResult:
    """Fit a family to a median, all other parameters fixed.

    exponential needs nothing; weibull, llogis, gompertz and gamma need
    ``shape``; lnorm needs ``sdlog``; gengamma needs ``sigma`` and ``Q``. More
    generally, exactly one parameter must be left free. The family's
    ``scale_param`` (rate, scale, meanlog, mu) is solved in closed form
    (``Family.solve_scale``); any other free parameter by brentq on a bracketed
    sign change. Either way S(median) = 0.5 holds to rounding error (checked on
    log(-log S)).

    A gompertz with negative shape has a cure fraction exp(rate/shape). Any
    median is reachable in exact arithmetic (the solution always leaves the
    cure fraction below 0.5), but when -shape * median is large the cure
    fraction is within rounding of 0.5: S is flat at 0.5 long before the median,
    which the parameters then no longer determine. So the fitted distribution's
    median is checked against the target (1e-9 relative) and a miss raises
    FitError, naming the cure fraction where the family has one.

    Parameters
    ----------
    family : str
        Family name (see ``simseq.distributions.FAMILIES``).
    median : float
        Median time, months, > 0.
    fixed : mapping of str to float, optional
        Values of the parameters not to be fitted, keyed by flexsurv names.

    Returns
    -------
    FitResult
        With method ``"median+fixed"`` and the single point (median, 0.5).

    Raises
    ------
    FitError
        If the median is not a positive finite number, the parameters left
        free are not exactly one, or the fitted median misses the target.
    """
    fam = _family(family)
    m = _finite(median, "median")
    if m <= 0:
        raise FitError(f"median must be > 0 months; got {m:g}")
    held = _check_fixed(fam, fixed)
    free = [p for p in fam.param_names if p not in held]
    if len(free) > 1:
        raise _underidentified(fam, held, 1, median_only=True)
    if not free:
        raise FitError(
            f"every {fam.name} parameter is fixed ({', '.join(held)}): nothing left to fit "
            "to the median; drop one fixed value"
        )
    params = _solve_one(fam, m, 0.5, held, free[0])
    result = _make_result(fam, params, [(m, 0.5)], "median+fixed")
    got = float(result.distribution.median())
    if not abs(got - m) <= 1e-9 * m:
        values = ", ".join(f"{k}={v:.6g}" for k, v in result.params.items())
        cure = float(fam.cure_fraction(*params))
        if cure > 0.0:
            # the cure fraction is set by the shape: 0 (none) at shape 0
            shape = next(p for p in fam.param_names if p != fam.scale_param)
            raise FitError(
                f"{fam.name} median {m:g} is unreachable in practice: the solution ({values}) "
                f"has cure fraction {fam.cure_formula} = 0.5 - {0.5 - cure:.1e}, so S "
                f"is flat at 0.5 and its median comes out as {got:.6g}; "
                + (f"use a {shape} nearer 0" if shape in held else f"fix the {shape} instead")
            )
        raise FitError(
            f"the {fam.name} fit ({values}) gives back the median {m:g} only as {got:.10g}: "
            "the parameters are ill-conditioned there; fix different values"
        )
    return result


def fit_points(
    family: str,
    points: Sequence[tuple[float, float]],
    fixed: Mapping[str, float] | None = None,
) -> FitResult:
    """Fit a family to (time, survival) points by least squares on log(-log S).

    The residual at each point is log H_fit(t) - log(-log s): the complementary
    log-log scale, on which a Weibull is a line in log t. A median m enters as
    (m, 0.5). Points are checked first: times > 0 and distinct, survival
    strictly inside (0, 1) and strictly decreasing in time. The free parameters
    are the family's minus ``fixed``; fewer points than free parameters is
    refused. When points and free parameters are equal in number the fit must
    pass through every point (otherwise FitError): two points and no fixed
    parameter use the family's closed-form solution where it has one
    (``Family.two_point_fit``: weibull, llogis, lnorm), otherwise least squares,
    which then must reach zero residual. With more points than free parameters
    ``scipy.optimize.least_squares`` (trust-region reflective, central-difference
    Jacobian, positive parameters on the log scale) runs from each of the
    family's start values (``Family.starts``: linearised regressions, several for
    gamma, gompertz and gengamma), keeping the best.

    Parameters
    ----------
    family : str
        Family name.
    points : sequence of (float, float)
        (time in months, survival) targets; at least as many as free parameters.
    fixed : mapping of str to float, optional
        Parameters held at given values.

    Returns
    -------
    FitResult

    Raises
    ------
    FitError
        On invalid or inconsistent points, unknown fixed names, too few points,
        or an exactly identified set that no member of the family passes through.
    """
    fam = _family(family)
    held = _check_fixed(fam, fixed)
    pts = _check_points(points)
    free = [p for p in fam.param_names if p not in held]
    if not pts:
        raise FitError("no points to fit: supply at least one (time, survival) pair")
    if not free:
        raise FitError(f"every {fam.name} parameter is fixed: nothing left to fit")
    if len(pts) < len(free):
        raise _underidentified(fam, held, len(pts), median_only=False)
    n_pts, n_free = len(pts), len(free)
    exact = n_pts == n_free
    method = (
        f"exact ({n_pts} point{'s' * (n_pts != 1)}, {n_free} param{'s' * (n_free != 1)})"
        if exact
        else f"least squares ({n_pts} points)"
    )
    closed = fam.two_point_fit(pts) if not held and n_pts == 2 == n_free else None
    if n_free == 1 and exact:
        params = _solve_one(fam, pts[0][0], pts[0][1], held, free[0])
    elif closed is not None:
        params = closed
    else:
        times = np.array([t for t, _ in pts])
        surv = np.array([s for _, s in pts])
        params, _ = _least_squares(
            fam, times, np.log(-np.log(surv)), held, free, fam.starts(times, surv, held)
        )
    result = _make_result(fam, params, pts, method)
    worst = max(abs(r) for r in result.residuals)
    if not worst < _FAILED:
        raise FitError(
            f"the {fam.name} least-squares fit failed (a residual of {worst:.3g} on {SCALE}); "
            "check the points, or fix a parameter"
        )
    if exact and worst > _EXACT_TOL:
        raise FitError(
            f"no {fam.name} curve passes through all {n_pts} points (closest misses by "
            f"{worst:.2g} on {SCALE}); try another family, or fix fewer parameters and "
            "accept a least-squares fit with more points"
        )
    return result


def fit_summaries(
    family: str,
    *,
    median: float | None = None,
    landmarks: Sequence[tuple[float, float]] = (),
    quartiles: tuple[float, float] | None = None,
    fixed: Mapping[str, float] | None = None,
) -> FitResult:
    """Fit a family to whatever summaries a paper reports (the CLI's entry point).

    Collects the median as (median, 0.5), each landmark (t, S(t)), and quartiles
    (q1, q3) as (q1, 0.75) and (q3, 0.25), checks them, then calls
    :func:`fit_median` (a median and one free parameter) or :func:`fit_points`.

    Raises
    ------
    FitError
        Under-identified requests (e.g. weibull with a median and no fixed
        shape) with a message naming what to supply; impossible input (median
        <= 0, landmark survival outside (0, 1), quartiles out of order, a
        landmark inconsistent with the median) naming the offending value.
    """
    fam = _family(family)
    held = _check_fixed(fam, fixed)
    pts: list[tuple[float, float]] = []
    labels: list[str] = []
    if median is not None:
        m = _finite(median, "median")
        if m <= 0:
            raise FitError(f"median must be > 0 months; got {m:g}")
        pts.append((m, 0.5))
        labels.append("the median")
    for i, landmark in enumerate(landmarks):
        label = "the landmark" if len(landmarks) == 1 else f"landmark {i + 1}"
        try:
            t, s = landmark
        except (TypeError, ValueError):
            raise FitError(f"{label} must be a (time, survival) pair; got {landmark!r}") from None
        pts.append(_check_point(t, s, label))
        labels.append(label)
    if quartiles is not None:
        try:
            q1, q3 = quartiles
        except (TypeError, ValueError):
            raise FitError(f"quartiles must be a (Q1, Q3) pair; got {quartiles!r}") from None
        q1, q3 = _finite(q1, "first quartile"), _finite(q3, "third quartile")
        if not 0 < q1 < q3:
            raise FitError(
                f"quartiles must satisfy 0 < Q1 < Q3 (times where S = 0.75 and 0.25); "
                f"got Q1={q1:g}, Q3={q3:g}"
            )
        pts += [(q1, 0.75), (q3, 0.25)]
        labels += ["Q1", "Q3"]
    if not pts:
        raise FitError("nothing to fit: supply --median, --landmark T:S or --quartiles Q1:Q3")
    _check_points(pts, labels)  # consistency across sources before identification
    free = [p for p in fam.param_names if p not in held]
    if len(pts) < len(free):
        raise _underidentified(
            fam, held, len(pts), median_only=median is not None and len(pts) == 1
        )
    if median is not None and len(pts) == 1:
        return fit_median(family, median, held)
    return fit_points(family, pts, held)


# --------------------------------------------------------------------------- #
# Uncertainty of a median, pooling
# --------------------------------------------------------------------------- #


def _positive(value: object, what: str) -> float:
    x = _finite(value, what)
    if x <= 0:
        raise FitError(f"{what} must be > 0; got {x:g}")
    return x


def _count(value: object, what: str) -> int:
    x = _finite(value, what)
    if x < 1 or x != int(x):
        raise FitError(f"{what} must be a whole number >= 1; got {value!r}")
    return int(x)


def _bound(value: float | None) -> float | None:
    """A CI bound; None or NaN means not reported (an upper bound "NA" is common)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return _positive(value, "CI bound")


def se_log_median(
    median: float,
    ci95: tuple[float | None, float | None] | None = None,
    n_events: int | None = None,
    n: int | None = None,
) -> float:
    """Standard error of log(median), for sampling the median in a PSA.

    The first rule whose inputs are present is used:

    1. Both 95% CI bounds: (log hi - log lo) / (2 z), z = 1.959964, assuming
       the interval was symmetric on the log scale (as Brookmeyer-Crowley
       intervals with a log transform are).
    2. One bound (an upper bound "NA" when the curve has not fallen far enough
       below 0.5 is common): |log bound - log median| / z, assuming symmetry.
    3. Events d: an exponential's median is log 2 / rate and the MLE rate is
       d / exposure with Var(log rate) = 1/d, so SE = 1/sqrt(d).
    4. Only patients n: rule 3 with d = n. Since d <= n this is the smallest SE
       the data could support: it understates the uncertainty, the more so the
       heavier the censoring (e.g. n = 40 with 20 deaths gives 0.158 instead of
       0.224). Prefer rules 1-3 whenever anything else is reported.

    Parameters
    ----------
    median : float
        Reported median, months.
    ci95 : (float or None, float or None), optional
        Lower and upper 95% bounds; None or NaN for a bound not reported.
    n_events, n : int, optional
        Number of events, number of patients.

    Returns
    -------
    float
        SE of log(median).

    Raises
    ------
    FitError
        If nothing usable is given, or a bound is on the wrong side of the median.
    """
    m = _positive(median, "median")
    lo, hi = (None, None) if ci95 is None else (_bound(ci95[0]), _bound(ci95[1]))
    if lo is not None and lo >= m:
        raise FitError(f"CI lower bound {lo:g} is not below the median {m:g}")
    if hi is not None and hi <= m:
        raise FitError(f"CI upper bound {hi:g} is not above the median {m:g}")
    if lo is not None and hi is not None:
        return (math.log(hi) - math.log(lo)) / (2 * Z95)
    if lo is not None or hi is not None:
        bound = lo if lo is not None else hi
        return abs(math.log(bound) - math.log(m)) / Z95
    if n_events is not None:
        return 1.0 / math.sqrt(_count(n_events, "n_events"))
    if n is not None:
        return 1.0 / math.sqrt(_count(n, "n"))
    raise FitError("no information on the median's uncertainty: supply ci95, n_events or n")
