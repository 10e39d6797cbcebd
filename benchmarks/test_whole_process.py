"""Whole processes, what a user waits for: `simseq run scenarios/ref_hcc.yaml
--patients N --quiet` (REF-HCC's OS, as the scripts; and, with no target, the same with
`--outputs full`) against the NumPy baseline run as a script of its own
(`python -m simseq.numpy_baseline --patients N [--inverse-cdf]`, which imports only
NumPy), each a fresh process, interleaved round by round, medians of 5 rounds, warm
numba cache, numba's default threads, a fresh output directory each round.

    pytest benchmarks/test_whole_process.py --benchmark-only          # N = 2e7, 1-2 min
    SIMSEQ_BENCH_LARGE=1 pytest benchmarks/test_whole_process.py --benchmark-only
                                              # + the targets' N = 2e8 and 5e8, ~20 min

The issue's targets (>= 4x the Generator.weibull script at 2e8, 6x at 5e8, 2.5x the
inverse-CDF script at 5e8) are checked in the summary; without SIMSEQ_BENCH_LARGE=1
they are listed as not run.
"""

import pytest

from simseq import bench

ROUNDS = 5
SMALL_N = 2 * 10**7  # both scripts, every run: seconds a round, not minutes
NS = (SMALL_N, *bench.PROCESS_LARGE_NS)


@pytest.mark.parametrize("n", NS, ids=[f"process-{bench.fmt_n(n)}" for n in NS])
def test_whole_process(benchmark, recorder, record_not_run, n):
    if n in bench.PROCESS_LARGE_NS and not bench.large_requested():
        record_not_run(bench.process_not_run(n, ROUNDS))
        pytest.skip(f"N={bench.fmt_n(n)} needs {bench.LARGE_ENV}=1")
    benchmark.group = f"whole process N={bench.fmt_n(n)}"
    # untimed (--benchmark-disable, as CI runs it): one round, to see the commands work
    rounds = ROUNDS if benchmark.enabled else 1
    ms = benchmark.pedantic(bench.measure_whole_process, args=(n, rounds), rounds=1)
    assert {m.name for m in ms} >= {bench.PROCESS_SIMSEQ, bench.PROCESS_NUMPY}
    if benchmark.enabled:
        # simseq's runs last, so that their extra_info holds their ratios to the scripts
        for m in sorted(ms, key=lambda m: m.name.startswith(bench.PROCESS_SIMSEQ)):
            recorder(m)
