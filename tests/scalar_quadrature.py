"""A scalar reference for the calibrator's tests and benchmarks: the 3-state cohort's OS
median by quadrature, one draw at a time, and brentq on it per draw.

This was simseq's PSA recalibration before ``simseq.solve.calibrate_draws`` (which is
vectorised over draws and handles any acyclic cohort); it stays here as an
independent implementation to compare against.
"""

import math
from collections.abc import Mapping

import numpy as np
import scipy.fft

from simseq.distributions import Distribution, get_family
from simseq.engine.codes import EVENT_DETERIORATION, EVENT_PROGRESSION
from simseq.evidence import EvidenceBase
from simseq.fit import fit_median
from simseq.resolve import Resolved, quantity_key, resolve, resolve_median
from simseq.scenario import COHORT_QUANTITIES, Scenario, ScenarioError

QUAD_STEP = 0.05  # months: grid of the calibration quadrature (error O(step^2))


# --------------------------------------------------------------------------- #
# Recalibration by quadrature
# --------------------------------------------------------------------------- #


def _cohort_parts(res: Resolved, file: str = "<scenario>"):
    """(time-on-line distribution, P(progression), P(deterioration), PPS, BSC) of a cohort."""
    seq = res.sequences[0]
    line = seq.states[0]
    if len(line.clocks) != 1:
        raise ScenarioError(
            file,
            [
                (
                    f"regimens.{line.regimen}",
                    "cause_specific",
                    "recalibration by quadrature needs a time_on_line regimen (one clock with a "
                    "cause split); calibrated cause_specific regimens are not supported in the "
                    "PSA yet",
                )
            ],
        )
    (clock,) = line.clocks
    p_prog = sum(d.probability.base for d in clock.destinations if d.event == EVENT_PROGRESSION)
    p_det = sum(d.probability.base for d in clock.destinations if d.event == EVENT_DETERIORATION)
    pps = next((st for st in seq.states if st.role == "post_progression"), None)
    bsc = next((st for st in seq.states if st.role == "no_further_therapy"), None)
    return (
        clock.law.base_distribution(),
        p_prog,
        p_det,
        pps.clocks[0].law.base_distribution() if pps is not None and pps.clocks else None,
        bsc.clocks[0].law.base_distribution() if bsc is not None and bsc.clocks else None,
    )


def fftconvolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Full linear convolution of two 1-D float arrays by FFT: bitwise what
    ``scipy.signal.fftconvolve(a, b)`` returns, without importing scipy.signal (about a
    second of start-up, which ``simseq validate`` would pay for this one function)."""
    n = len(a) + len(b) - 1
    size = scipy.fft.next_fast_len(n, True)
    return scipy.fft.irfft(scipy.fft.rfft(a, size) * scipy.fft.rfft(b, size), size)[:n]


def os_median_by_quadrature(
    time_on_line: Distribution,
    p_prog: float,
    p_det: float,
    pps: Distribution,
    bsc: Distribution | None,
    horizon: float,
    step: float = QUAD_STEP,
) -> float:
    """Median OS from the start of a line: S(t) = S_L(t) + int f_L(u) [p_prog S_PPS(t - u)
    + p_det S_BSC(t - u)] du, on a grid of ``step`` months (mass of each step at its middle)."""
    n = int(math.ceil(horizon / step))
    t = np.arange(n + 1) * step
    mass = -np.diff(time_on_line.survival(t))  # (n,) probability of leaving in each step
    lags = (np.arange(n) + 0.5) * step
    after = p_prog * pps.survival(lags)
    if bsc is not None and p_det > 0:
        after = after + p_det * bsc.survival(lags)
    conv = fftconvolve(mass, after)[:n]  # conv[j] ~ sum_{k <= j} mass[k] after[j - k]
    surv = time_on_line.survival(t[1:]) + conv
    below = np.flatnonzero(surv <= 0.5)
    if below.size == 0:
        return math.inf
    j = int(below[0])
    s_prev = 1.0 if j == 0 else surv[j - 1]
    t_prev = 0.0 if j == 0 else t[j]
    return float(t_prev + (s_prev - 0.5) / (s_prev - surv[j]) * (t[j + 1] - t_prev))


def solve_by_quadrature(
    scenario: Scenario,
    evidence: EvidenceBase,
    calibrated: Mapping[str, float],
    overrides: Mapping[str, object],
    horizon: float,
    file: str = "<scenario>",
) -> dict[str, float]:
    """Calibrated medians for one draw: each target's free post-progression median solved
    so the quadrature OS median from line start equals the drawn target."""
    from scipy.optimize import brentq  # only solving needs it; keeps start-up short

    values = dict(calibrated)
    targets = scenario.calibration.targets if scenario.calibration else []
    if targets and scenario.population is not None:
        raise ScenarioError(
            file,
            [
                (
                    "population",
                    sorted(scenario.population.covariates),
                    "recalibration by quadrature does not model population covariates yet; run "
                    "the PSA on the scenario without population heterogeneity",
                )
            ],
        )
    for i, tgt in enumerate(targets):
        if tgt.quantity != "median_os_from_line_start" or tgt.free != "after_progression.median":
            raise ScenarioError(
                file,
                [
                    (
                        f"calibration.targets.{i}",
                        tgt.quantity,
                        "PSA recalibration supports median_os_from_line_start with a free "
                        "after_progression.median",
                    )
                ],
            )
        key = f"{tgt.regimen}.after_progression"
        res = resolve(scenario, evidence, values, cohort_regimen=tgt.regimen, overrides=overrides)
        target = _target_value(scenario, evidence, tgt, overrides)
        tol, p_prog, p_det, pps0, bsc = _cohort_parts(res, file)
        family = pps0.family
        fixed = {k: v for k, v in pps0.param_dict.items() if k != get_family(family).scale_param}

        def pps_with(median, family=family, fixed=fixed):
            return fit_median(family, median, fixed).distribution

        def gap(log_m, tol=tol, p_prog=p_prog, p_det=p_det, bsc=bsc, target=target):
            m = math.exp(log_m)
            return os_median_by_quadrature(tol, p_prog, p_det, pps_with(m), bsc, horizon) - target

        lo, hi = scenario.regimens[tgt.regimen].after_progression.median.calibrate.bounds
        g_lo, g_hi = gap(math.log(lo)), gap(math.log(hi))
        if g_lo * g_hi > 0:
            raise ScenarioError(
                file,
                [
                    (
                        f"calibration.targets.{i}",
                        target,
                        f"unreachable in a PSA draw: {key}.median in [{lo:g}, {hi:g}] gives OS "
                        f"medians [{g_lo + target:.3g}, {g_hi + target:.3g}]",
                    )
                ],
            )
        try:
            values[key] = math.exp(brentq(gap, math.log(lo), math.log(hi), xtol=1e-7))
        except (RuntimeError, ValueError) as err:  # no convergence, or an undefined median
            raise ScenarioError(
                file,
                [
                    (
                        f"calibration.targets.{i}",
                        target,
                        f"recalibration in a PSA draw failed: {key}.median in [{lo:g}, {hi:g}] "
                        f"({err})",
                    )
                ],
            ) from None
    return values


def cohort_scenario(scenario: Scenario) -> Scenario:
    """``scenario`` with its cohort targets only: a landmark target of a whole sequence
    (base_case.yaml's first-line death share) is ``simseq.solve``'s alone; this scalar
    reference knows the 3-state cohorts."""
    cal = scenario.calibration
    kept = [t for t in cal.targets if t.quantity in COHORT_QUANTITIES]
    return scenario.model_copy(update={"calibration": cal.model_copy(update={"targets": kept})})


def _target_value(scenario, evidence, tgt, overrides) -> float:
    q = tgt.target
    key = quantity_key(q, "calibration.target")
    if key in overrides:
        return float(overrides[key])
    return resolve_median(scenario, evidence, q, "calibration.target")[0]


def drawn_overrides(sc, ev, n_draws: int, seed: int) -> list[dict[str, float]]:
    """``n_draws`` override mappings for ``resolve``: each calibration target and each
    target regimen's time-on-line median drawn log-normally (SE of log 0.15) around its
    base value, keyed as the resolver keys them; draw 0 is the base case."""
    rng = np.random.default_rng(seed)
    quantities = []
    for t in sc.calibration.targets:
        quantities.append((t.target, "calibration.target"))
        quantities.append((sc.regimens[t.regimen].time_on_line.median,
                           f"regimens.{t.regimen}.time_on_line.median"))  # fmt: skip
    draws = [{} for _ in range(n_draws)]
    for q, path in quantities:
        base = resolve_median(sc, ev, q, path)[0]
        values = base * np.exp(0.15 * rng.standard_normal(n_draws))
        for d in range(1, n_draws):
            draws[d][quantity_key(q, path)] = float(values[d])
    return draws
