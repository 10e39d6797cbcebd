"""REF-HCC in plain vectorised NumPy: the baseline simseq is measured against.

REF-HCC is defined in shared/bench/REF_MODEL.md (scenarios/ref_hcc.yaml in simseq's
own terms). This module is what a competent NumPy user would write, and it imports
nothing but NumPy, so that it also runs as a standalone process for the
whole-process comparison with ``simseq run`` (``simseq.bench``):

    python -m simseq.numpy_baseline --patients 200000000 [--inverse-cdf] [--seed S]

prints REF-HCC's outputs (median OS, RMST to 120 months, S(12), S(24)) and pays
only for Python and NumPy at start-up (``simseq/__init__.py`` imports only os/sys).
"""

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np

# REF-HCC, months; (shape, scale) of S(t) = exp(-(t / scale) ** shape).
# Benchmark definition (shared/bench/REF_MODEL.md), not clinical evidence.
REF_L1_PROG = (1.1, 10.0)
REF_L1_DEATH = (1.1, 45.0)
REF_L2_PROG = (1.2, 4.5)
REF_L2_DEATH = (1.2, 20.0)
REF_PPS_DEATH = (1.0, 8.0)
REF_BSC_DEATH = (1.0, 2.6)
REF_P_SECOND_LINE = 0.7  # at first-line progression: L2, else BSC
REF_HORIZON = 120.0
REF_LANDMARKS = (12.0, 24.0)

# The histogram bins of simseq's engine (simseq.simulator.DEFAULT_BIN_WIDTH, months),
# repeated here so this module need not import numba; tests/unit/test_bench.py checks
# that the two agree.
BIN_WIDTH = 0.02
DEFAULT_CHUNK = 1_000_000  # patients per vectorised pass (~100 MB of temporaries)


def n_bins(horizon: float, bin_width: float) -> int:
    """Bins of ``bin_width`` covering [0, horizon) (as simseq.simulator.n_bins_for)."""
    return int(math.ceil(horizon / bin_width - 1e-9))


def _weibull(rng: np.random.Generator, shape_scale: tuple[float, float], n: int) -> np.ndarray:
    shape, scale = shape_scale
    return scale * rng.weibull(shape, n)


def _weibull_inverse_cdf(rng: np.random.Generator, shape_scale: tuple[float, float], n: int):
    """A hand-tuned alternative: NumPy's log and power run as SIMD loops (SVML on AVX-512),
    which makes this about 2.5x faster than Generator.weibull on this machine."""
    shape, scale = shape_scale
    return scale * (-np.log(rng.random(n))) ** (1.0 / shape)


def numpy_ref_hcc(
    n_patients: int,
    seed: int | Sequence[int],
    *,
    chunk: int = DEFAULT_CHUNK,
    horizon: float = REF_HORIZON,
    bin_width: float = BIN_WIDTH,
    inverse_cdf: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """REF-HCC in plain vectorised NumPy: binned OS from the start of first line.

    The headline baseline draws with ``Generator.weibull``, as the NumPy API
    intends; ``inverse_cdf=True`` draws ``scale * (-log u)**(1/shape)`` instead,
    the stricter baseline also reported.

    Every latent time is drawn for the whole chunk (also for patients who never
    reach the state), the competing risks resolved with ``np.minimum`` and
    ``np.where``, and death times binned with ``np.bincount`` into the bins
    simseq uses (width ``bin_width`` months; alive at ``horizon`` = censored in
    the last bin). Results depend on ``chunk`` (one stateful generator).

    Returns
    -------
    events, censored : ndarray(int64, ndim=1), each (n_bins,)
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    rng = np.random.default_rng(seed)
    _weibull_draw = _weibull_inverse_cdf if inverse_cdf else _weibull
    bins = n_bins(horizon, bin_width)
    events = np.zeros(bins, np.int64)
    censored = np.zeros(bins, np.int64)
    for lo in range(0, n_patients, chunk):
        m = min(chunk, n_patients - lo)
        l1_prog = _weibull_draw(rng, REF_L1_PROG, m)
        l1_death = _weibull_draw(rng, REF_L1_DEATH, m)
        to_l2 = rng.random(m) < REF_P_SECOND_LINE
        l2_prog = _weibull_draw(rng, REF_L2_PROG, m)
        l2_death = _weibull_draw(rng, REF_L2_DEATH, m)
        pps = _weibull_draw(rng, REF_PPS_DEATH, m)
        bsc = _weibull_draw(rng, REF_BSC_DEATH, m)
        after_l2 = np.minimum(l2_prog, l2_death) + np.where(l2_prog < l2_death, pps, 0.0)
        after_l1 = np.where(to_l2, after_l2, bsc)
        progressed = l1_prog < l1_death
        os_time = np.where(progressed, l1_prog + after_l1, l1_death)
        dead = os_time < horizon
        k = np.minimum((os_time[dead] / bin_width).astype(np.int64), bins - 1)
        events += np.bincount(k, minlength=bins)
        censored[-1] += m - k.size
    return events, censored


def outputs_from_histogram(
    events: np.ndarray, censored: np.ndarray, bin_width: float = BIN_WIDTH
) -> dict[str, float]:
    """REF-HCC's outputs from ``numpy_ref_hcc``'s histograms, in NumPy alone.

    Only the last bin holds censored patients (alive at the horizon), so the
    Kaplan-Meier curve at the bin edges is the empirical 1 - deaths so far / N;
    like simseq's curves it is linear between edges (median, S(12), S(24)) and
    the RMST is its area to the horizon (the last edge).

    Returns
    -------
    dict: ``median`` and ``rmst_120`` (months), ``s12`` and ``s24``.
    """
    n_total = int(events.sum() + censored.sum())
    times = np.arange(events.shape[0] + 1) * bin_width
    survival = np.concatenate(([1.0], 1.0 - np.cumsum(events) / n_total))
    below = np.flatnonzero(survival <= 0.5)
    median = math.inf
    if below.size:
        j = int(below[0])
        s0, s1 = survival[j - 1], survival[j]
        median = float(times[j - 1] + (s0 - 0.5) / (s0 - s1) * bin_width)
    area = float(np.sum(0.5 * (survival[1:] + survival[:-1])) * bin_width)
    out = {"median": median, "rmst_120": area}
    for t in REF_LANDMARKS:
        out[f"s{t:g}"] = float(np.interp(t, times, survival))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """The standalone script: simulate N patients and print REF-HCC's outputs."""
    parser = argparse.ArgumentParser(
        prog="python -m simseq.numpy_baseline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--patients", type=int, required=True, help="patients to simulate")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="patients per pass")
    parser.add_argument(
        "--inverse-cdf",
        action="store_true",
        help="draw scale * (-log u) ** (1 / shape) instead of Generator.weibull",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    events, censored = numpy_ref_hcc(
        args.patients, args.seed, chunk=args.chunk, inverse_cdf=args.inverse_cdf
    )
    out = outputs_from_histogram(events, censored)
    seconds = time.perf_counter() - started
    draws = "inverse CDF" if args.inverse_cdf else "Generator.weibull"
    print(f"REF-HCC in NumPy ({draws}), {args.patients:,} patients, seed {args.seed}")
    print(f"  median OS {out['median']:.4f} months, RMST(120) {out['rmst_120']:.4f} months")
    print(f"  S(12) {out['s12']:.5f}, S(24) {out['s24']:.5f}")
    print(f"  {seconds:.2f} s simulating and reducing")


if __name__ == "__main__":
    main()
