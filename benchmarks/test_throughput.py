"""Throughput on REF-HCC (shared/bench/REF_MODEL.md): simseq against the NumPy
baseline, thread scaling, the base case per patient-sequence, the PSA shape,
peak memory and startup. See conftest.py for how to run and what is recorded.

Cases run in the order listed, so each simseq case finds its NumPy (or
1-thread) counterpart already measured, right before it, for its ratios.
"""

import subprocess
import tempfile
from pathlib import Path

import pytest

from simseq import bench

LARGE = bench.large_requested()  # SIMSEQ_BENCH_LARGE=1
ROUNDS = 5
SEED = bench.BENCH_SEED

REF_NS = (10**5, 10**6, 10**7)
THREADS = (1, 2)
BASE_N = 10**6
RSS_N = bench.RSS_N if LARGE else 10**8


def _ref_cases():
    cases = []
    for n in REF_NS:
        cases.append(pytest.param(bench.REF_NUMPY, n, 1, id=f"numpy-{bench.fmt_n(n)}"))
        cases.append(
            pytest.param(bench.REF_NUMPY_INVCDF, n, 1, id=f"numpy-invcdf-{bench.fmt_n(n)}")
        )
        for t in THREADS:
            cases.append(pytest.param(bench.REF_SIMSEQ, n, t, id=f"simseq-{bench.fmt_n(n)}-t{t}"))
    # The thread-scaling target is set at 1e8 (simseq only: NumPy would take minutes).
    for t in THREADS:
        cases.append(pytest.param(bench.REF_SIMSEQ, 10**8, t, id=f"simseq-1e8-t{t}"))
    return cases


@pytest.mark.parametrize(("name", "n", "threads"), _ref_cases())
def test_ref_hcc(timed, ref_model, name, n, threads):
    """REF-HCC end to end (simulate, bin, reduce to median, RMST, S(12), S(24))."""
    if name in (bench.REF_NUMPY, bench.REF_NUMPY_INVCDF):
        inverse_cdf = name == bench.REF_NUMPY_INVCDF
        out = timed(
            lambda: bench.numpy_ref_hcc_outputs(n, SEED, inverse_cdf=inverse_cdf),
            name,
            n,
            threads,
            n,
            warm=lambda: bench.numpy_ref_hcc_outputs(1000, SEED, inverse_cdf=inverse_cdf),
        )
    else:
        out = timed(
            lambda: bench.simseq_ref_hcc(ref_model, n, SEED, threads=threads),
            name,
            n,
            threads,
            n,
            warm=lambda: bench.simseq_ref_hcc(ref_model, 1000, SEED, threads=threads),
        )
    assert 12.0 < out["median"] < 13.5  # the same model (checked properly in tests/engine)


@pytest.mark.parametrize("threads", THREADS, ids=[f"t{t}" for t in THREADS])
def test_base_case(timed, base_model, threads):
    """The base case, 5 sequences, all tallies (what summary.json needs), at N = 1e6;
    compared per patient-sequence with REF-HCC per patient at the same N and threads."""
    n_seq = len(base_model.seq_names)
    timed(
        lambda: bench.simseq_base_case(base_model, BASE_N, SEED, threads=threads),
        bench.BASE_SIMSEQ,
        BASE_N,
        threads,
        BASE_N * n_seq,
        warm=lambda: bench.simseq_base_case(base_model, 1000, SEED, threads=threads),
    )


_PSA_CASES = [
    pytest.param(bench.PSA_NUMPY, 1, id="numpy"),
    *[pytest.param(bench.PSA_SIMSEQ, t, id=f"simseq-t{t}") for t in THREADS],
]


@pytest.mark.parametrize(("name", "threads"), _PSA_CASES)
def test_psa_shape(timed, ref_model, name, threads):
    """1,000 parameter draws x 1,000 patients to per-draw OS histograms (hesim's shape)."""
    draws, n = bench.PSA_DRAWS, bench.PSA_PATIENTS
    if name == bench.PSA_NUMPY:
        hist = timed(
            lambda: bench.numpy_ref_hcc_psa(draws, n, SEED),
            name,
            n,
            threads,
            draws * n,
            warm=lambda: bench.numpy_ref_hcc_psa(2, 10, SEED),
            group=f"psa {draws}x{n}",
        )
    else:
        psa = ref_model.repeat_draws(draws)
        small = ref_model.repeat_draws(2)
        hist = timed(
            lambda: bench.simseq_psa(psa, n, SEED, threads=threads).hist,
            name,
            n,
            threads,
            draws * n,
            warm=lambda: bench.simseq_psa(small, 10, SEED, threads=threads),
            group=f"psa {draws}x{n}",
        )
    assert hist.reshape(draws, -1).sum(axis=1).tolist() == [n] * draws


def test_peak_memory(benchmark, recorder):
    """Peak RSS of a fresh process simulating REF-HCC at N = 1e8 (1e9 with
    SIMSEQ_BENCH_LARGE=1), warm numba cache; one round (the wall time also
    includes a 1000-patient warm-up process)."""
    benchmark.group = "memory"
    m = benchmark.pedantic(bench.measure_peak_rss, args=(RSS_N,), rounds=1, iterations=1)
    if benchmark.stats is not None:
        recorder(m)
    assert m.peak_rss_mb > 0


def test_startup(benchmark, recorder):
    """`simseq run scenarios/ref_hcc.yaml --patients 1000`, fresh process, warm cache."""
    benchmark.group = "startup"
    with tempfile.TemporaryDirectory(prefix="simseq-bench-") as tmp:
        runs = iter(range(10**6))

        def run():
            out = Path(tmp) / f"run{next(runs)}"
            subprocess.run(
                bench.startup_command(out), cwd=tmp, check=True, stdout=subprocess.DEVNULL
            )

        benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    if benchmark.stats is not None:
        seconds = benchmark.stats.stats.median
        recorder(bench.Measurement(bench.STARTUP, 1000, None, seconds, ROUNDS, 1000))
