"""Shared pieces of the pytest-benchmark suites, and a ratio summary at the end.

    pytest benchmarks/ --benchmark-only          # a few minutes on 2 cores
    SIMSEQ_BENCH_LARGE=1 pytest benchmarks/ --benchmark-only
        # + peak RSS at N = 1e9 and `simseq run` against the NumPy scripts as whole
        #   processes at N = 2e8 and 5e8 (about 20 minutes more); without it those
        #   targets are listed as not run

Every case is warmed past compilation (an explicit small call, then one
warm-up round) and timed over >= 5 rounds. Each records trajectories/s and,
when its counterpart ran before it, its ratios in ``benchmark.extra_info``;
the session ends with the same rows and targets as ``simseq bench``, computed
from pytest-benchmark's medians.
"""

import os

import pytest

from simseq import bench

ROUNDS = 5
SEED = bench.BENCH_SEED

_MEASURED: list[bench.Measurement] = []
_RATIO_KEYS = ("ratio_vs_numpy", "speedup_vs_1_thread", "vs_ref_hcc_per_patient")


@pytest.fixture(scope="session")
def ref_model():
    return bench.ref_hcc_model()


@pytest.fixture(scope="session")
def base_model():
    return bench.base_case_model()


def record(benchmark, m: bench.Measurement) -> None:
    """Keep ``m`` for the summary; put its rates and ratios into extra_info."""
    _MEASURED.append(m)
    key = (m.name, m.n_patients, m.threads)
    row = next(
        r for r in bench.build_rows(_MEASURED) if (r["name"], r["n_patients"], r["threads"]) == key
    )
    benchmark.extra_info.update(
        n_patients=m.n_patients,
        threads=m.threads,
        n_trajectories=m.n_trajectories,
    )
    for key in ("trajectories_per_s", "ns_per_patient", "peak_rss_mb", *_RATIO_KEYS):
        if row[key] is not None:
            benchmark.extra_info[key] = round(row[key], 4)


@pytest.fixture
def recorder(benchmark):
    """recorder(m): keep Measurement ``m`` of this benchmark for the summary."""
    return lambda m: record(benchmark, m)


@pytest.fixture
def record_not_run(benchmark):
    """record_not_run(m): report placeholder ``m`` (seconds None) as a target not run
    in the summary (nothing is reported under --benchmark-disable)."""
    return lambda m: _MEASURED.append(m) if benchmark.enabled else None


@pytest.fixture
def timed(benchmark):
    """timed(fn, name, n_patients, threads, n_trajectories, warm=None, group=None)."""

    def run(fn, name, n_patients, threads, n_trajectories, *, warm=None, group=None):
        if warm is not None:
            warm()  # compilation, outside the timing
        benchmark.group = group or f"{name.split('.')[0]} N={bench.fmt_n(n_patients)}"
        result = benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1, iterations=1)
        if benchmark.stats is not None:  # None under --benchmark-disable
            seconds = benchmark.stats.stats.median
            m = bench.Measurement(name, n_patients, threads, seconds, ROUNDS, n_trajectories)
            record(benchmark, m)
        return result

    return run


def pytest_terminal_summary(terminalreporter):
    if not _MEASURED:
        return
    rows = bench.build_rows(sorted(_MEASURED, key=bench.report_order))
    terminalreporter.write_sep("-", "simseq: side-by-side ratios and targets (medians)")
    terminalreporter.write(bench.rows_text(rows, "pytest benchmarks/"))
    if hasattr(os, "getloadavg"):  # a busy machine shows here before it shows in the ratios
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        terminalreporter.write_line(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} cpus")
    for line in bench.missed_targets(rows):
        terminalreporter.write_line(f"target missed: {line}")
    for line in bench.targets_not_run(rows):
        terminalreporter.write_line(f"target {line}")
