"""Throughput benchmarks on REF-HCC, the reference model peers run side by side.

REF-HCC is defined in shared/bench/REF_MODEL.md and expressed as a scenario in
scenarios/ref_hcc.yaml. This module holds what ``simseq bench`` and the
pytest-benchmark suites in benchmarks/ share:

- ``numpy_ref_hcc`` (from ``simseq.numpy_baseline``, which also runs as a script
  of its own): the vectorised NumPy implementation a competent user would write,
  the baseline simseq's engine is compared against, in process and as a whole
  process against ``simseq run`` (``measure_whole_process``);
- ``ref_hcc_reference``: REF-HCC's outputs by numerical integration, which both
  simulators must reproduce within Monte Carlo error (the same-model check);
- ``run_headline``: the headline measurements, and ``build_rows``, which turns
  measurements into report rows with the targets they are checked against.

Throughput is patient trajectories per second (one trajectory = one patient
through one sequence), end to end: sampling plus the reduction to REF-HCC's
outputs (median OS, RMST to 120 months, survival at 12 and 24 months),
excluding one-time compilation. Times are medians over rounds, wall clock.
"""

import functools
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simseq.fit import Z95
from simseq.numpy_baseline import (
    REF_BSC_DEATH,
    REF_HORIZON,
    REF_L1_DEATH,
    REF_L1_PROG,
    REF_L2_DEATH,
    REF_L2_PROG,
    REF_LANDMARKS,
    REF_P_SECOND_LINE,
    REF_PPS_DEATH,
    numpy_ref_hcc,
)
from simseq.simulator import DEFAULT_BIN_WIDTH

BENCH_SEED = 20260101
PSA_DRAWS = 1000
PSA_PATIENTS = 1000

# Targets from the performance issues (15: "Engine at the floor"). A miss is
# reported, never raised. Each applies at the N the issue sets (``*_N``); a run at
# a smaller N still checks it there and says so in the row's target.
TARGET_ENGINE_NS = 30.0  # REF-HCC, 1 thread, in process: ns a patient (aim 25)
AIM_ENGINE_NS = 25.0
ENGINE_N = 10**8
TARGET_VS_NUMPY = 3.0  # engine >= 3x the NumPy baseline in process at the largest N (aim 6x)
AIM_VS_NUMPY = 6.0
TARGET_TWO_THREADS = 1.8  # 2 threads >= 1.8x 1 thread
THREADS_N = 10**8
TARGET_BASE_VS_REF = 2.0  # base case per patient-sequence <= 2x REF-HCC per patient
TARGET_PSA_SECONDS = 0.5  # 1000 draws x 1000 patients
TARGET_PEAK_RSS_MB = 400.0
RSS_N = 10**9
TARGET_STARTUP_SECONDS = 1.0  # `simseq run` of 1000 patients, warm numba cache (aim 0.6)
AIM_STARTUP_SECONDS = 0.6

# Case names: the rows of the report and the keys that pair them for ratios.
REF_SIMSEQ = "ref_hcc.simseq"
REF_NUMPY = "ref_hcc.numpy"
REF_NUMPY_INVCDF = "ref_hcc.numpy_inverse_cdf"
BASE_SIMSEQ = "base_case.simseq"
PSA_SIMSEQ = "psa.simseq"
PSA_NUMPY = "psa.numpy"
MEMORY = "memory.ref_hcc"
STARTUP = "startup.run"
THREAD_SCALING = "ref_hcc.2_threads_vs_1"
# Whole processes: `simseq run scenarios/ref_hcc.yaml --patients N --quiet` against
# `python -m simseq.numpy_baseline --patients N [--inverse-cdf]`. ref_hcc.yaml tallies
# what REF_MODEL.md and the scripts report (simulation.outputs: sequence_os); the same
# run with `--outputs full` (every state's histograms) is timed beside them, no target.
PROCESS_SIMSEQ = "process.simseq_run"
PROCESS_SIMSEQ_FULL = "process.simseq_run_outputs_full"
PROCESS_NUMPY = "process.numpy"
PROCESS_NUMPY_INVCDF = "process.numpy_inverse_cdf"
PROCESS_VS = {
    PROCESS_NUMPY: "process.vs_numpy",
    PROCESS_NUMPY_INVCDF: "process.vs_numpy_inverse_cdf",
}
# (baseline, N) -> simseq run's whole-process speed-up the issue asks for
PROCESS_TARGETS = {
    (PROCESS_NUMPY, 2 * 10**8): 4.0,
    (PROCESS_NUMPY, 5 * 10**8): 6.0,
    (PROCESS_NUMPY_INVCDF, 5 * 10**8): 2.5,
}
PROCESS_LARGE_NS = (2 * 10**8, 5 * 10**8)

# Opt-in for the runs that take minutes (SIMSEQ_BENCH_LARGE=1 in benchmarks/,
# `simseq bench --large`): the whole-process targets at 2e8 and 5e8 patients, and
# peak RSS at 1e9.
LARGE_ENV = "SIMSEQ_BENCH_LARGE"

_ROOT = Path(__file__).resolve().parents[1]
SCENARIO_DIR = _ROOT / "scenarios"


# --------------------------------------------------------------------------- #
# The NumPy baseline
# --------------------------------------------------------------------------- #


def ref_outputs(curve) -> dict[str, float]:
    """REF-HCC's outputs and their Monte Carlo SEs from an OS ``SurvivalCurve``.

    The median's SE is the Brookmeyer-Crowley 95% interval's half-width / 1.96;
    landmark SEs are Greenwood's; the RMST's is the curve's own.
    """
    lo, hi = curve.median_ci95()
    rmst, rmst_se = curve.rmst(REF_HORIZON)
    out = {
        "median": curve.median(),
        "median_se": (hi - lo) / (2 * Z95),
        "rmst_120": rmst,
        "rmst_120_se": rmst_se,
    }
    for t in REF_LANDMARKS:
        out[f"s{t:g}"] = curve.at(t)
        out[f"s{t:g}_se"] = float(np.interp(t, curve.times, curve.se))
    return out


def numpy_ref_hcc_outputs(n_patients: int, seed: int, **kwargs) -> dict[str, float]:
    """The NumPy baseline end to end: simulate, bin, reduce to the REF outputs."""
    from simseq.outcomes import km_curve

    events, censored = numpy_ref_hcc(n_patients, seed, **kwargs)
    return ref_outputs(km_curve(events, censored, kwargs.get("bin_width", DEFAULT_BIN_WIDTH)))


def numpy_ref_hcc_psa(
    n_draws: int, n_patients: int, seed: int, *, bin_width: float = DEFAULT_BIN_WIDTH
) -> np.ndarray:
    """The PSA shape in NumPy: one vectorised run per draw (the parameters would
    differ per draw), int64 (n_draws, 2, n_bins) events / censored."""
    return np.stack(
        [
            np.stack(numpy_ref_hcc(n_patients, (seed, d), bin_width=bin_width))
            for d in range(n_draws)
        ]
    )


# --------------------------------------------------------------------------- #
# simseq on REF-HCC and the base case
# --------------------------------------------------------------------------- #


def large_requested() -> bool:
    """True when SIMSEQ_BENCH_LARGE is set to anything but "" or "0"."""
    return os.environ.get(LARGE_ENV, "") not in ("", "0")


def _scenario_path(name: str) -> Path:
    path = SCENARIO_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the benchmarks run from a source checkout (scenarios/)"
        )
    return path


@functools.cache
def ref_hcc_model():
    """REF-HCC bound from scenarios/ref_hcc.yaml (no calibration needed)."""
    from simseq.study import load

    study = load(_scenario_path("ref_hcc"))
    return study.model(study.rows())


@functools.cache
def base_case_model():
    """The base case (5 sequences), calibrated: the cached calibration under
    results/base_case/ when its inputs are unchanged, else a fresh one (~5 s)."""
    from simseq.commands import default_out
    from simseq.study import load

    study = load(_scenario_path("base_case"))
    study.calibrate(cache_dir=default_out(study.scenario))
    return study.model(study.rows())


def simseq_ref_hcc(
    model,
    n_patients: int,
    seed: int,
    *,
    threads: int | None = None,
    bin_width: float = DEFAULT_BIN_WIDTH,
) -> dict[str, float]:
    """REF-HCC through the engine end to end (sequence OS only) -> the REF outputs."""
    from simseq.engine.codes import TALLY_OS_GIVEN_ENTRY
    from simseq.outcomes import tally_curve

    tallies = simseq_psa(model, n_patients, seed, threads=threads, bin_width=bin_width)
    start = [int(model.seq_start_state[0])]
    return ref_outputs(tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, start))


def simseq_psa(
    model,
    n_patients: int,
    seed: int,
    *,
    threads: int | None = None,
    bin_width: float = DEFAULT_BIN_WIDTH,
):
    """``simulate`` keeping the sequence OS histograms alone (no exit counts), as a PSA does,
    for every draw of ``model`` (REF-HCC's horizon)."""
    from simseq.outcomes import sequence_os_tallies
    from simseq.simulator import simulate

    return simulate(
        model,
        n_patients,
        seed,
        horizon=REF_HORIZON,
        bin_width=bin_width,
        tallies=sequence_os_tallies(model),
        exit_counts=False,
        threads=threads,
    )


def simseq_base_case(model, n_patients: int, seed: int, *, threads: int | None = None):
    """The base case with all the bookkeeping summary.json needs (what `simseq run` keeps)."""
    from simseq.outcomes import summary_tallies
    from simseq.simulator import simulate

    return simulate(
        model,
        n_patients,
        seed,
        horizon=REF_HORIZON,
        threads=threads,
        tallies=summary_tallies(model),
    )


# --------------------------------------------------------------------------- #
# REF-HCC by numerical integration
# --------------------------------------------------------------------------- #

# QUADPACK tolerances; with them every output below is accurate to ~1e-9,
# three orders below the Monte Carlo SE of a 1e6-patient run (~1e-3 .. 1e-2).
_QUAD = {"epsabs": 1e-13, "epsrel": 1e-12, "limit": 200}


def _surv(t: float, shape_scale: tuple[float, float]) -> float:
    shape, scale = shape_scale
    return math.exp(-((t / scale) ** shape))


def _hazard(t: float, shape_scale: tuple[float, float]) -> float:
    shape, scale = shape_scale
    return shape / scale * (t / scale) ** (shape - 1.0)


def _s_l1(t: float) -> float:
    return _surv(t, REF_L1_PROG) * _surv(t, REF_L1_DEATH)


def _f_prog1(u: float) -> float:
    """Density of leaving L1 by progression at u."""
    return _hazard(u, REF_L1_PROG) * _s_l1(u) if u > 0 else 0.0


def _s_l2(s: float) -> float:
    return _surv(s, REF_L2_PROG) * _surv(s, REF_L2_DEATH)


def _f_prog2(v: float) -> float:
    return _hazard(v, REF_L2_PROG) * _s_l2(v) if v > 0 else 0.0


def _alive_after_l2_entry(s: float) -> float:
    """A(s) = S_L2(s) + int_0^s f_prog2(v) S_PPS(s - v) dv."""
    from scipy.integrate import quad

    if s <= 0:
        return 1.0
    pps = quad(lambda v: _f_prog2(v) * _surv(s - v, REF_PPS_DEATH), 0.0, s, **_QUAD)[0]
    return _s_l2(s) + pps


def _alive_after_prog1(s: float) -> float:
    """Alive s months after first-line progression: 0.7 A(s) + 0.3 S_BSC(s)."""
    p = REF_P_SECOND_LINE
    return p * _alive_after_l2_entry(s) + (1 - p) * _surv(s, REF_BSC_DEATH)


def ref_hcc_survival(t: float) -> float:
    """S_OS(t) = S1(t) + int_0^t f_prog1(u) [0.7 A(t-u) + 0.3 S_BSC(t-u)] du, by nested quad."""
    from scipy.integrate import quad

    if t <= 0:
        return 1.0
    conv = quad(lambda u: _f_prog1(u) * _alive_after_prog1(t - u), 0.0, t, **_QUAD)[0]
    return _s_l1(t) + conv


def _area_after_l2_entry(x: float) -> float:
    """int_0^x A(s) ds = int_0^x S_L2 + int_0^x f_prog2(v) int_0^(x-v) S_PPS."""
    from scipy.integrate import quad

    if x <= 0:
        return 0.0
    shape, scale = REF_PPS_DEATH
    assert shape == 1.0  # exponential: int_0^y S_PPS = scale (1 - exp(-y / scale))
    on_l2 = quad(_s_l2, 0.0, x, **_QUAD)[0]
    after = quad(lambda v: _f_prog2(v) * scale * -math.expm1(-(x - v) / scale), 0.0, x, **_QUAD)[0]
    return on_l2 + after


def _area_after_prog1(x: float) -> float:
    p = REF_P_SECOND_LINE
    shape, scale = REF_BSC_DEATH
    assert shape == 1.0
    return p * _area_after_l2_entry(x) + (1 - p) * scale * -math.expm1(-x / scale)


@functools.cache
def ref_hcc_reference() -> dict[str, float]:
    """REF-HCC's outputs computed from the model definition, not by simulation.

    S_OS(t) as in ``ref_hcc_survival`` (nested adaptive Gauss-Kronrod, scipy's
    ``quad``; the integrable u**0.1 and v**0.2 endpoint behaviour of the Weibull
    densities is handled by QUADPACK's extrapolation). RMST(120) swaps the order
    of integration, int_0^T S_OS = int_0^T S1 + int_0^T f_prog1(u) R(T - u) du
    with R(x) = int_0^x [0.7 A + 0.3 S_BSC], so it is a double, not a triple,
    integral. The median solves S_OS(t) = 0.5 with ``brentq`` (xtol 1e-10).

    Accuracy: quad's tolerances (epsabs 1e-13, epsrel 1e-12) bound each output's
    error well below 1e-8; tests/unit/test_bench.py cross-checks S(12), S(24)
    and the RMST against an independent fine-grid convolution refined twice.
    Takes ~2 s; cached.

    Returns
    -------
    dict with ``median`` and ``rmst_120`` (months), ``s12`` and ``s24``.
    """
    from scipy.integrate import quad
    from scipy.optimize import brentq

    tau = REF_HORIZON
    rmst = (
        quad(_s_l1, 0.0, tau, **_QUAD)[0]
        + quad(lambda u: _f_prog1(u) * _area_after_prog1(tau - u), 0.0, tau, **_QUAD)[0]
    )
    median = brentq(lambda t: ref_hcc_survival(t) - 0.5, 1.0, 60.0, xtol=1e-10, rtol=1e-14)
    out = {"median": median, "rmst_120": rmst}
    for t in REF_LANDMARKS:
        out[f"s{t:g}"] = ref_hcc_survival(t)
    return out


# --------------------------------------------------------------------------- #
# Measurements -> rows
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Measurement:
    """One timed case: the median wall time over ``rounds`` after a warm-up.

    ``seconds`` None marks a case that was not run (``note`` says why and how to run
    it), so that its target is reported as not run rather than left out.
    """

    name: str  # a case name (REF_SIMSEQ, REF_NUMPY, ...)
    n_patients: int  # patients per sequence (per draw for the PSA shape)
    threads: int | None  # None: numba's default (all)
    seconds: float | None
    rounds: int
    n_trajectories: int  # patients x sequences (x draws)
    peak_rss_mb: float | None = None
    note: str | None = None


def _find(
    ms: list[Measurement], name: str | None, n: int, threads: int | None = None, *, any_t=False
):
    for m in ms:
        if m.name == name and m.n_patients == n and (any_t or m.threads == threads):
            return m
    return None


def _per_traj(m: Measurement) -> float:
    return m.seconds / m.n_trajectories


def _set_at(n: int, n_set: int) -> str:
    """How a target's text says it was checked at another N than the issue sets."""
    return "" if n == n_set else f" (set at {fmt_n(n_set)})"


# Every row's keys, in the --json output's order.
_ROW_KEYS = (
    "name",
    "n_patients",
    "threads",
    "rounds",
    "n_trajectories",
    "seconds",
    "trajectories_per_s",
    "ns_per_patient",
    "ratio_vs_numpy",
    "ratio_vs_numpy_inverse_cdf",
    "speedup_vs_1_thread",
    "vs_ref_hcc_per_patient",
    "peak_rss_mb",
    "target",
    "measured",
    "meets_target",
    "note",
)
# simseq's case -> the NumPy case it is compared with (Generator.weibull; inverse CDF)
_NUMPY_OF = {
    REF_SIMSEQ: REF_NUMPY,
    PSA_SIMSEQ: PSA_NUMPY,
    PROCESS_SIMSEQ: PROCESS_NUMPY,
    PROCESS_SIMSEQ_FULL: PROCESS_NUMPY,
}
_INVERSE_CDF_OF = {
    REF_SIMSEQ: REF_NUMPY_INVCDF,
    PROCESS_SIMSEQ: PROCESS_NUMPY_INVCDF,
    PROCESS_SIMSEQ_FULL: PROCESS_NUMPY_INVCDF,
}


def _check_row(name: str, n: int, target: str, measured, ok, note=None) -> dict:
    """A row of its own for a target that compares two measurements."""
    row = dict.fromkeys(_ROW_KEYS)
    row.update(name=name, n_patients=n, n_trajectories=n, target=target)
    row.update(measured=measured, meets_target=ok, note=note)
    return row


def build_rows(measurements: list[Measurement]) -> list[dict]:
    """Report rows, pairing measurements for ratios and checking them against targets.

    ``ratio_vs_numpy`` is the NumPy time over simseq's per trajectory (> 1: simseq
    is faster; for the whole-process rows, the NumPy script's time over `simseq run`'s).
    ``measured`` is the number compared with ``target``; rows without a target
    have ``target``, ``measured`` and ``meets_target`` None; a target whose case
    was not run has ``meets_target`` None and a ``note``.

    Which row carries which target:
    - REF-HCC 1 thread at the largest N: ns a patient (engine target);
    - REF-HCC, most threads, at the largest N with an in-process NumPy run: vs NumPy;
    - a row of its own for 2 threads vs 1 at the largest REF-HCC N;
    - base case vs REF-HCC at the same N and threads; PSA shape at the most threads;
      peak RSS; start-up;
    - a row of its own for each whole-process target (``PROCESS_TARGETS``) whose N
      was measured or marked not run.
    """
    ms = [m for m in measurements if m.seconds is not None]
    not_run = [m for m in measurements if m.seconds is None]
    ref_ns = [m.n_patients for m in ms if m.name == REF_SIMSEQ]
    n_max = max(ref_ns, default=None)
    n_max_numpy = max((n for n in ref_ns if _find(ms, REF_NUMPY, n, any_t=True)), default=None)
    psa_threads = [m.threads or 0 for m in ms if m.name == PSA_SIMSEQ]
    # the engine's default is every core; NumPy's vectorised code uses one
    max_threads = max((m.threads or 0 for m in ms if m.name == REF_SIMSEQ), default=0)
    rows = []
    for m in ms:
        row = dict.fromkeys(_ROW_KEYS)
        row.update(name=m.name, n_patients=m.n_patients, threads=m.threads, rounds=m.rounds)
        row.update(n_trajectories=m.n_trajectories, seconds=m.seconds)
        row.update(peak_rss_mb=m.peak_rss_mb, note=m.note)
        if m.name not in (MEMORY, STARTUP):
            row["trajectories_per_s"] = m.n_trajectories / m.seconds
            row["ns_per_patient"] = 1e9 * _per_traj(m)
        numpy_m = _find(ms, _NUMPY_OF.get(m.name), m.n_patients, any_t=True)
        if numpy_m is not None:
            row["ratio_vs_numpy"] = _per_traj(numpy_m) / _per_traj(m)
        strict = _find(ms, _INVERSE_CDF_OF.get(m.name), m.n_patients, any_t=True)
        if strict is not None:
            row["ratio_vs_numpy_inverse_cdf"] = _per_traj(strict) / _per_traj(m)
        if m.name in (REF_SIMSEQ, PSA_SIMSEQ) and (m.threads or 0) > 1:
            one = _find(ms, m.name, m.n_patients, 1)
            if one is not None:
                row["speedup_vs_1_thread"] = one.seconds / m.seconds
        if m.name == REF_SIMSEQ and m.threads == 1 and m.n_patients == n_max:
            at = _set_at(m.n_patients, ENGINE_N)
            row["target"] = f"<= {TARGET_ENGINE_NS:g} ns/patient/thread (aim {AIM_ENGINE_NS:g}){at}"
            row["measured"] = row["ns_per_patient"]
            row["meets_target"] = row["measured"] <= TARGET_ENGINE_NS
        elif m.name == REF_SIMSEQ and m.threads == max_threads and m.n_patients == n_max_numpy:
            row["target"] = f">= {TARGET_VS_NUMPY:g}x NumPy (aim {AIM_VS_NUMPY:g}x)"
            row["measured"] = row["ratio_vs_numpy"]
            row["meets_target"] = row["measured"] >= TARGET_VS_NUMPY
        elif m.name == BASE_SIMSEQ:
            ref = _find(ms, REF_SIMSEQ, m.n_patients, m.threads)
            if ref is not None:
                row["vs_ref_hcc_per_patient"] = _per_traj(m) / _per_traj(ref)
                row["target"] = f"<= {TARGET_BASE_VS_REF:g}x REF-HCC ns/traj"
                row["measured"] = row["vs_ref_hcc_per_patient"]
                row["meets_target"] = row["measured"] <= TARGET_BASE_VS_REF
        elif m.name == PSA_SIMSEQ and (m.threads or 0) == max(psa_threads):
            row["target"] = f"< {TARGET_PSA_SECONDS:g} s"
            row["measured"] = m.seconds
            row["meets_target"] = m.seconds < TARGET_PSA_SECONDS
        elif m.name == MEMORY and m.peak_rss_mb is not None:
            row["target"] = f"peak RSS < {TARGET_PEAK_RSS_MB:g} MB{_set_at(m.n_patients, RSS_N)}"
            row["measured"] = m.peak_rss_mb
            row["meets_target"] = m.peak_rss_mb < TARGET_PEAK_RSS_MB
        elif m.name == STARTUP:
            row["target"] = (
                f"< {TARGET_STARTUP_SECONDS:g} s, warm cache (aim {AIM_STARTUP_SECONDS:g})"
            )
            row["measured"] = m.seconds
            row["meets_target"] = m.seconds < TARGET_STARTUP_SECONDS
        rows.append(row)
    two = _find(ms, REF_SIMSEQ, n_max, 2) if n_max else None
    one = _find(ms, REF_SIMSEQ, n_max, 1) if n_max else None
    if one is not None and two is not None:
        speedup = one.seconds / two.seconds
        target = f">= {TARGET_TWO_THREADS:g}x 1 thread{_set_at(n_max, THREADS_N)}"
        row = _check_row(THREAD_SCALING, n_max, target, speedup, speedup >= TARGET_TWO_THREADS)
        row.update(threads=2, speedup_vs_1_thread=speedup)
        rows.append(row)
    for (baseline, n), ratio in PROCESS_TARGETS.items():
        script = "inverse-CDF script" if baseline == PROCESS_NUMPY_INVCDF else "NumPy script"
        target = f">= {ratio:g}x the {script}, whole process"
        simseq = _find(ms, PROCESS_SIMSEQ, n)
        numpy_m = _find(ms, baseline, n)
        skipped = _find(not_run, PROCESS_SIMSEQ, n)
        if simseq is not None and numpy_m is not None:
            measured = numpy_m.seconds / simseq.seconds
            rows.append(_check_row(PROCESS_VS[baseline], n, target, measured, measured >= ratio))
        elif skipped is not None:
            rows.append(_check_row(PROCESS_VS[baseline], n, target, None, None, skipped.note))
    return rows


def missed_targets(rows: list[dict]) -> list[str]:
    """One line per row whose target was missed."""
    return [
        f"{r['name']} N={fmt_n(r['n_patients'])} threads={r['threads'] or 'all'}: "
        f"{r['target']}, measured {r['measured']:.3g}"
        for r in rows
        if r["meets_target"] is False
    ]


def targets_not_run(rows: list[dict]) -> list[str]:
    """One line per target whose case was not run, ending in its note (how to run it)."""
    return [
        f"{r['name']} N={fmt_n(r['n_patients'])}: {r['target']}: {r['note']}"
        for r in rows
        if r["target"] and r["measured"] is None and r.get("note")
    ]


def fmt_n(n: int) -> str:
    """1e5 / 2e8 for a digit times a power of ten (>= 1000), else 1,234."""
    k = len(str(n)) - 1
    digit, rest = divmod(n, 10**k)
    return f"{digit}e{k}" if n > 0 and k >= 3 and rest == 0 else f"{n:,}"


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _fmt_rows_n(r: dict) -> str:
    if r["name"].startswith("psa."):
        return f"{r['n_trajectories'] // r['n_patients']}x{r['n_patients']}"
    return fmt_n(r["n_patients"])


def rows_table(rows: list[dict], title: str = "simseq bench"):
    """What ``simseq bench`` prints: a rich table of the timed cases, then one of the
    targets (target, measured, met / MISSED / not run and how to run it)."""
    from rich.console import Group
    from rich.table import Table

    cases = Table(title=title, title_style="bold")
    cases.add_column("case", no_wrap=True)
    for col in ("N", "thr", "median s", "traj/s", "ns/traj", "vs NumPy", "vs invCDF"):
        cases.add_column(col, justify="right")
    targets = Table(title=f"{title}: targets", title_style="bold")
    targets.add_column("case", no_wrap=True)
    for col in ("N", "thr"):
        targets.add_column(col, justify="right")
    targets.add_column("target")
    targets.add_column("measured", justify="right")
    targets.add_column("result")
    for r in rows:
        n, threads = _fmt_rows_n(r), str(r["threads"] or "all")
        if r["seconds"] is not None:  # a timed case (the others are checks of two)
            cases.add_row(
                r["name"],
                n,
                threads,
                _fmt(r["seconds"], ".4g"),
                _fmt(r["trajectories_per_s"], ".3g"),
                _fmt(r["ns_per_patient"], ".0f"),
                _fmt_ratio(r["ratio_vs_numpy"]),
                _fmt_ratio(r["ratio_vs_numpy_inverse_cdf"]),
            )
        if r["target"]:
            ok = {True: "met", False: "MISSED", None: r.get("note") or ""}[r["meets_target"]]
            targets.add_row(r["name"], n, threads, r["target"], _fmt(r["measured"], ".3g"), ok)
    return Group(cases, targets)


TABLE_WIDTH = 180  # columns of the tables when not printed to a terminal


def rows_text(rows: list[dict], title: str = "simseq bench", width: int = TABLE_WIDTH) -> str:
    """The rows' tables as plain text."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(rows_table(rows, title))
    return buf.getvalue()


def _cpus_available() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def machine_info() -> dict:
    """CPU, thread and version facts to read the timings against."""
    import numba
    import scipy

    from simseq import __version__

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        git = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        git = ""
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_available": _cpus_available(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.config.THREADING_LAYER,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "simseq": __version__,
        "git": git or None,
    }


# --------------------------------------------------------------------------- #
# Subprocess checks: peak memory and startup
# --------------------------------------------------------------------------- #

_PEAK_RSS_CHILD = (
    "import sys\n"
    "from simseq.bench import engine_cache_misses, own_peak_rss_mb, ref_hcc_model, simseq_ref_hcc\n"
    "t = None if sys.argv[2] == 'all' else int(sys.argv[2])\n"
    "simseq_ref_hcc(ref_hcc_model(), int(sys.argv[1]), 1, threads=t)\n"
    "print(engine_cache_misses(), own_peak_rss_mb())\n"
)


def own_peak_rss_mb() -> float:
    """Peak resident memory of this process's own image, MB.

    Linux's VmHWM, not ``ru_maxrss``: after fork + exec the latter also counts the
    parent's pages that the child mapped before exec, so a large benchmarking
    parent would inflate it. ``ru_maxrss`` elsewhere (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def engine_cache_misses() -> int:
    """How many engine kernels this process compiled instead of loading from numba's cache."""
    from simseq.engine import simulate

    misses = 0
    for obj in vars(simulate).values():
        if hasattr(obj, "py_func"):  # a numba dispatcher
            try:
                misses += sum(obj.stats.cache_misses.values())
            except AttributeError:  # not a cached kernel
                pass
    return misses


def _run_rss_child(n_patients: int, threads: int | None) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, kernels compiled) of one child process."""
    cmd = [sys.executable, "-c", _PEAK_RSS_CHILD, str(n_patients), str(threads or "all")]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"peak-RSS child failed: {out.stderr[-2000:]}")
    compiled, rss_mb = out.stdout.split()[-2:]
    return seconds, float(rss_mb), int(compiled)


def measure_peak_rss(n_patients: int, threads: int | None = None) -> Measurement:
    """Peak resident memory of a fresh process simulating REF-HCC at ``n_patients``.

    The child reports its own peak (``own_peak_rss_mb``), so neither this
    process nor other children count. Compiling takes more memory than simulating, so
    a 1000-patient child first warms numba's cache, and a measured child that
    still compiled (its source changed meanwhile) is run again, up to twice.
    The issue's 1e9-patient check takes minutes and runs only in benchmarks/
    with SIMSEQ_BENCH_LARGE=1.
    """
    _run_rss_child(1000, threads)
    for _attempt in range(3):
        seconds, rss_mb, compiled = _run_rss_child(n_patients, threads)
        if not compiled:
            break
    return Measurement(MEMORY, n_patients, threads, seconds, 1, n_patients, rss_mb)


def _simseq_command() -> list[str]:
    """This interpreter's own `simseq` script (its venv's), else one on PATH, else -m."""
    beside = Path(sys.executable).with_name("simseq")
    exe = str(beside) if beside.is_file() else shutil.which("simseq")
    return [exe] if exe else [sys.executable, "-m", "simseq"]


def startup_command(out_dir: Path, n_patients: int = 1000) -> list[str]:
    """``simseq run scenarios/ref_hcc.yaml --patients N --out OUT_DIR``: the issue's
    command (printing its table too), with an output directory of its own."""
    cmd = [*_simseq_command(), "run", str(_scenario_path("ref_hcc"))]
    return [*cmd, "--patients", str(n_patients), "--out", str(out_dir)]


def measure_startup(rounds: int = 5, n_patients: int = 1000) -> Measurement:
    """Wall time of ``startup_command`` in a fresh process, median over
    ``rounds``; one untimed run first so the numba cache is warm."""
    times = []
    with tempfile.TemporaryDirectory(prefix="simseq-bench-") as tmp:
        for i in range(rounds + 1):
            started = time.perf_counter()
            cmd = startup_command(Path(tmp) / f"run{i}", n_patients)
            subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            if i:
                times.append(time.perf_counter() - started)
    return Measurement(STARTUP, n_patients, None, statistics.median(times), rounds, n_patients)


# --------------------------------------------------------------------------- #
# Whole processes: simseq run against the NumPy script
# --------------------------------------------------------------------------- #

# Rough cost of a round, only to tell the user how long the opt-in cases take: ns a
# patient of each process and simseq's start-up, from the medians at N = 5e8 on this
# project's 2-vCPU VM (2026-12-02: 86.5 s and 34.9 s for the scripts; 2026-12-03: 20.5 s
# for `simseq run` with every histogram; start-up 1.3 s) and a sequence-OS run at 5e7
# (2.4 s).
_ROUGH_NS = {
    PROCESS_SIMSEQ: 22.0,
    PROCESS_SIMSEQ_FULL: 40.0,
    PROCESS_NUMPY: 175.0,
    PROCESS_NUMPY_INVCDF: 70.0,
}
_ROUGH_START_S = 1.3


def process_baselines(n_patients: int) -> tuple[str, ...]:
    """The NumPy scripts timed beside `simseq run` at ``n_patients``: the inverse-CDF
    one only where a target needs it (or at a small development N)."""
    if n_patients in PROCESS_LARGE_NS:
        return tuple(
            b for b in (PROCESS_NUMPY, PROCESS_NUMPY_INVCDF) if (b, n_patients) in PROCESS_TARGETS
        )
    return (PROCESS_NUMPY, PROCESS_NUMPY_INVCDF)


def process_minutes(n_patients: int, rounds: int) -> float:
    """Rough minutes ``measure_whole_process`` takes at ``n_patients`` (see _ROUGH_NS)."""
    names = (PROCESS_SIMSEQ, PROCESS_SIMSEQ_FULL, *process_baselines(n_patients))
    per_round = _ROUGH_START_S + sum(_ROUGH_NS[k] for k in names) * 1e-9 * n_patients
    return rounds * per_round / 60


def process_not_run(n_patients: int, rounds: int) -> Measurement:
    """The placeholder that reports the whole-process targets at ``n_patients`` as not run."""
    minutes = process_minutes(n_patients, rounds)
    note = f"not run (needs --large / {LARGE_ENV}=1, about {minutes:.0f} min)"
    return Measurement(PROCESS_SIMSEQ, n_patients, None, None, 0, n_patients, note=note)


def run_command(out_dir: Path, n_patients: int, *, full: bool = False) -> list[str]:
    """``simseq run scenarios/ref_hcc.yaml --patients N --quiet --out OUT_DIR``, with
    ``--outputs full`` if ``full`` (every state's histograms, not only REF-HCC's OS)."""
    return [*startup_command(out_dir, n_patients), "--quiet", *(["--outputs", "full"] * full)]


def numpy_command(n_patients: int, *, inverse_cdf: bool = False, seed: int = BENCH_SEED):
    """The NumPy baseline as a process of its own: ``python -m simseq.numpy_baseline``."""
    cmd = [sys.executable, "-m", "simseq.numpy_baseline", "--patients", str(n_patients)]
    return [*cmd, "--seed", str(seed), *(["--inverse-cdf"] if inverse_cdf else [])]


def measure_whole_process(
    n_patients: int, rounds: int = 5, baselines: Sequence[str] | None = None
) -> list[Measurement]:
    """`simseq run` of REF-HCC against the NumPy script(s), each a fresh process.

    ``run_command`` (numba's default threads, a fresh output directory each round, in a
    temporary directory), as ref_hcc.yaml asks and with ``--outputs full``, beside
    ``numpy_command`` for each of ``baselines`` (default
    ``process_baselines(n_patients)``), interleaved round by round (``time_interleaved``);
    one untimed 1000-patient run first so numba's cache is warm. Medians of ``rounds``.
    """
    baselines = process_baselines(n_patients) if baselines is None else tuple(baselines)
    with tempfile.TemporaryDirectory(prefix="simseq-bench-") as tmp:
        runs = iter(range(10**9))

        def run(cmd):
            subprocess.run(cmd, cwd=tmp, check=True, stdout=subprocess.DEVNULL)

        def simseq_run(n, full=False):
            return lambda: run(run_command(Path(tmp) / f"run{next(runs)}", n, full=full))

        simseq_run(1000)()  # warm numba's cache (compiles once if the engine changed)
        simseq_run(1000, full=True)()
        cases = {
            b: (lambda b=b: run(numpy_command(n_patients, inverse_cdf=b == PROCESS_NUMPY_INVCDF)))
            for b in baselines
        }
        cases[PROCESS_SIMSEQ] = simseq_run(n_patients)
        cases[PROCESS_SIMSEQ_FULL] = simseq_run(n_patients, full=True)
        medians = time_interleaved(cases, rounds)
    return [Measurement(k, n_patients, None, s, rounds, n_patients) for k, s in medians.items()]


# --------------------------------------------------------------------------- #
# The headline run
# --------------------------------------------------------------------------- #


def time_interleaved(cases: dict, rounds: int) -> dict:
    """Median seconds per case over ``rounds``; every round runs each case once,
    the order rotated round by round, so slow phases of a noisy machine hit
    all cases alike. Cases must already be compiled."""
    keys = list(cases)
    times: dict = {k: [] for k in keys}
    for r in range(rounds):
        for k in keys[r % len(keys) :] + keys[: r % len(keys)]:
            started = time.perf_counter()
            cases[k]()
            times[k].append(time.perf_counter() - started)
    return {k: statistics.median(v) for k, v in times.items()}


def run_headline(
    quick: bool = False,
    threads_list: Sequence[int] = (1, 2),
    *,
    large: bool = False,
    process_ns: Sequence[int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Measure the headline figures and return ``build_rows`` of them.

    Full: REF-HCC at N = 1e5, 1e6, 1e7 (simseq on each of ``threads_list``,
    NumPy alongside, interleaved in this process) and 1e8 (simseq only, for the
    engine and thread-scaling targets: NumPy would take minutes), the base case at
    1e6, the PSA shape 1000 x 1000, peak RSS at 1e8, startup, and `simseq run`
    against the NumPy scripts as whole processes at N = 2e7; 5 rounds each. Quick:
    N = 1e5, 1e6, base case at 1e5, peak RSS at 1e7, whole processes at 2e6, 3 rounds.

    ``large`` adds the whole-process targets' own N (2e8 and 5e8, about 20 minutes)
    and takes peak RSS at 1e9; without it their rows say "not run".
    ``process_ns`` replaces the whole-process N (large or not), for development.
    """
    import numba

    say = progress or (lambda msg: None)
    rounds = 3 if quick else 5
    ns = (10**5, 10**6) if quick else (10**5, 10**6, 10**7, 10**8)
    numpy_n_max = 10**7
    base_n = 10**5 if quick else 10**6
    rss_n = RSS_N if large else 10**7 if quick else 10**8
    if process_ns is None:
        process_ns = (2 * 10**6,) if quick else (2 * 10**7,)
        process_ns += PROCESS_LARGE_NS if large else ()
    threads_list = [t for t in threads_list if t <= numba.config.NUMBA_NUM_THREADS]
    seed = BENCH_SEED
    ref = ref_hcc_model()
    say("loading the base case (calibration from cache or ~5 s)")
    base = base_case_model()
    n_seq_base = len(base.seq_names)
    psa = ref.repeat_draws(PSA_DRAWS)

    def ref_case(n, t):
        return lambda: simseq_ref_hcc(ref, n, seed, threads=t)

    def base_case(n, t):
        return lambda: simseq_base_case(base, n, seed, threads=t)

    def psa_case(t):
        return lambda: simseq_psa(psa, PSA_PATIENTS, seed, threads=t)

    say("warming up (compilation)")
    for t in threads_list:
        ref_case(1000, t)()
        base_case(1000, t)()
        simseq_psa(ref.repeat_draws(2), 10, seed, threads=t)
    numpy_ref_hcc_outputs(1000, seed)

    ms: list[Measurement] = []
    for n in ns:
        with_numpy = n <= numpy_n_max
        also = " and NumPy" if with_numpy else ""
        say(f"REF-HCC N={fmt_n(n)}: simseq on {list(threads_list)} threads{also}")
        cases = {}
        if with_numpy:
            cases[(REF_NUMPY, 1, n)] = lambda n=n: numpy_ref_hcc_outputs(n, seed)
            cases[(REF_NUMPY_INVCDF, 1, n)] = lambda n=n: numpy_ref_hcc_outputs(
                n, seed, inverse_cdf=True
            )
        for t in threads_list:
            cases[(REF_SIMSEQ, t, n)] = ref_case(n, t)
            if n == base_n:
                cases[(BASE_SIMSEQ, t, n)] = base_case(n, t)
        for (name, t, n_), sec in time_interleaved(cases, rounds).items():
            n_traj = n_ * (n_seq_base if name == BASE_SIMSEQ else 1)
            ms.append(Measurement(name, n_, t, sec, rounds, n_traj))

    say(f"PSA shape {PSA_DRAWS} draws x {PSA_PATIENTS} patients")
    cases = {(PSA_NUMPY, 1): lambda: numpy_ref_hcc_psa(PSA_DRAWS, PSA_PATIENTS, seed)}
    for t in threads_list:
        cases[(PSA_SIMSEQ, t)] = psa_case(t)
    for (name, t), sec in time_interleaved(cases, rounds).items():
        ms.append(Measurement(name, PSA_PATIENTS, t, sec, rounds, PSA_DRAWS * PSA_PATIENTS))

    say(f"peak RSS of a REF-HCC run at N={fmt_n(rss_n)} (subprocess)")
    ms.append(measure_peak_rss(rss_n))
    say("startup: simseq run of 1000 patients (subprocess, warm cache)")
    ms.append(measure_startup(rounds))
    for n in process_ns:
        n_rounds = max(rounds, 5) if n in PROCESS_LARGE_NS else rounds  # the issue's >= 5
        scripts = " and ".join(b.split(".")[1] for b in process_baselines(n))
        minutes = process_minutes(n, n_rounds)
        say(f"whole process N={fmt_n(n)}: simseq run vs the {scripts} scripts (~{minutes:.1f} min)")
        ms.extend(measure_whole_process(n, n_rounds))
    ms.extend(process_not_run(n, 5) for n in PROCESS_LARGE_NS if n not in process_ns)
    return build_rows(sorted(ms, key=report_order))


_ORDER = (
    REF_NUMPY,
    REF_NUMPY_INVCDF,
    REF_SIMSEQ,
    BASE_SIMSEQ,
    PSA_NUMPY,
    PSA_SIMSEQ,
    MEMORY,
    STARTUP,
    PROCESS_NUMPY,
    PROCESS_NUMPY_INVCDF,
    PROCESS_SIMSEQ,
    PROCESS_SIMSEQ_FULL,
)


def report_order(m: Measurement) -> tuple:
    """Sort key: REF-HCC by N with NumPy beside simseq, then base case, PSA, checks,
    whole processes by N."""
    group = {
        REF_NUMPY: 0,
        REF_NUMPY_INVCDF: 0,
        REF_SIMSEQ: 0,
        BASE_SIMSEQ: 1,
        PSA_NUMPY: 2,
        PSA_SIMSEQ: 2,
        PROCESS_NUMPY: 3 + len(_ORDER),
        PROCESS_NUMPY_INVCDF: 3 + len(_ORDER),
        PROCESS_SIMSEQ: 3 + len(_ORDER),
        PROCESS_SIMSEQ_FULL: 3 + len(_ORDER),
    }
    rank = _ORDER.index(m.name) if m.name in _ORDER else len(_ORDER)
    return (group.get(m.name, 3 + rank), m.n_patients, rank, m.threads or 0)
