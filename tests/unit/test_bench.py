"""simseq.bench without timing anything: the NumPy baseline, the integrated
reference values and the report rows (built from fake timings).

`simseq bench` itself is not run here (it takes minutes); its output path is
checked with run_headline replaced by fake rows.
"""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.signal import fftconvolve

from simseq import bench
from simseq.bench import Measurement
from simseq.cli import main


def test_numpy_baseline_histograms():
    events, censored = bench.numpy_ref_hcc(5000, 3, chunk=1500)
    assert events.dtype == censored.dtype == np.int64
    assert events.shape == censored.shape == (6000,)  # 120 months / 0.02
    assert events.sum() + censored.sum() == 5000
    assert censored[:-1].sum() == 0  # alive at the horizon: censored in the last bin
    again = bench.numpy_ref_hcc(5000, 3, chunk=1500)
    assert np.array_equal(events, again[0]) and np.array_equal(censored, again[1])
    with pytest.raises(ValueError, match="n_patients"):
        bench.numpy_ref_hcc(0, 3)


def test_numpy_baseline_bins_agree_with_the_engine():
    """numpy_baseline repeats the engine's bin width and bin count so that it need not
    import numba; they must stay the same numbers."""
    from simseq import numpy_baseline
    from simseq.simulator import DEFAULT_BIN_WIDTH, n_bins_for

    assert numpy_baseline.BIN_WIDTH == DEFAULT_BIN_WIDTH
    for horizon in (120.0, 60.0, 0.05, 119.99):
        for width in (DEFAULT_BIN_WIDTH, 0.1, 1.0 / 3.0):
            assert numpy_baseline.n_bins(horizon, width) == n_bins_for(horizon, width)


def test_numpy_script_outputs_equal_the_kaplan_meier_reduction():
    """The script's NumPy-only reduction gives the outputs simseq's KM curve gives."""
    from simseq import numpy_baseline

    events, censored = bench.numpy_ref_hcc(20_000, 5)
    script = numpy_baseline.outputs_from_histogram(events, censored)
    full = bench.numpy_ref_hcc_outputs(20_000, 5)
    assert set(script) == {"median", "rmst_120", "s12", "s24"}
    for key, value in script.items():
        assert value == pytest.approx(full[key], rel=1e-12, abs=1e-12), key


def test_numpy_script_runs_as_its_own_process_importing_only_numpy():
    """`python -m simseq.numpy_baseline` prints REF-HCC's outputs and loads neither
    numba nor scipy nor the rest of simseq (its start-up is Python's and NumPy's)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-X", "importtime", "-m", "simseq.numpy_baseline"]
    cmd += ["--patients", "20000", "--seed", "5", "--inverse-cdf"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "inverse CDF" in out.stdout and "20,000 patients" in out.stdout
    assert "median OS" in out.stdout and "S(12)" in out.stdout
    # -X importtime lists every module the process imported, one a line on stderr
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "numpy" in imported
    heavy = {"numba", "scipy", "pandas", "click", "rich", "pydantic", "matplotlib", "llvmlite"}
    assert not heavy & {m.split(".")[0] for m in imported}
    assert {m for m in imported if m.startswith("simseq")} == {"simseq"}  # and __main__


def test_numpy_psa_shape():
    hist = bench.numpy_ref_hcc_psa(3, 100, 1)
    assert hist.shape == (3, 2, 6000)  # 120 months / 0.02, the one default bin width
    assert (hist.sum(axis=(1, 2)) == 100).all()


def test_numpy_baseline_agrees_with_reference_at_small_n():
    """N = 50,000, seed 11: each output within 3 Monte Carlo SEs of the integral."""
    ref = bench.ref_hcc_reference()
    out = bench.numpy_ref_hcc_outputs(50_000, 11)
    for key in ("median", "rmst_120", "s12", "s24"):
        assert abs(out[key] - ref[key]) <= 3 * out[f"{key}_se"], key


def _surv(t, shape_scale):
    shape, scale = shape_scale
    return np.exp(-((t / scale) ** shape))


def _grid_survival(h: float) -> tuple[np.ndarray, np.ndarray]:
    """S_OS on t = 0, h, ..., 120 by an independent route: a midpoint convolution
    with exact interval probabilities. Both pairs of competing causes share a
    Weibull shape, so the share leaving by progression is a constant."""
    n = round(bench.REF_HORIZON / h)
    t = np.arange(n + 1) * h
    s1 = _surv(t, bench.REF_L1_PROG) * _surv(t, bench.REF_L1_DEATH)
    a, b = (1 / bench.REF_L1_PROG[1]) ** 1.1, (1 / bench.REF_L1_DEATH[1]) ** 1.1
    prog1 = a / (a + b) * (s1[:-1] - s1[1:])  # progression on L1 within [t_j, t_j+1)
    v = np.arange(2 * n + 1) * (h / 2)
    s2 = _surv(v, bench.REF_L2_PROG) * _surv(v, bench.REF_L2_DEATH)
    a, b = (1 / bench.REF_L2_PROG[1]) ** 1.2, (1 / bench.REF_L2_DEATH[1]) ** 1.2
    prog2 = a / (a + b) * (s2[:-1] - s2[1:])
    mid = v[:-1] + h / 4
    pps_scale = bench.REF_PPS_DEATH[1]  # exponential: the convolution is a running sum
    pps = np.concatenate(([0.0], np.cumsum(prog2 * np.exp(mid / pps_scale))))
    alive_l2 = s2 + pps * np.exp(-v / pps_scale)
    p = bench.REF_P_SECOND_LINE
    after_prog1 = p * alive_l2 + (1 - p) * _surv(v, bench.REF_BSC_DEATH)
    survival = s1.copy()
    survival[1:] += fftconvolve(prog1, after_prog1[1::2])[:n]  # at (m + 1/2) h
    return t, survival


def test_reference_matches_an_independent_grid_convolution():
    """quad vs a grid at h = 0.02 and 0.005 months: the grid converges onto quad
    (measured gaps at h = 0.005: < 2e-9 for S, 2e-8 for RMST, 7e-8 for the median)."""
    ref = bench.ref_hcc_reference()
    gaps = []
    for h in (0.02, 0.005):
        t, s = _grid_survival(h)
        gaps.append(
            {
                "s12": s[round(12 / h)] - ref["s12"],
                "s24": s[round(24 / h)] - ref["s24"],
                "rmst_120": np.trapezoid(s, t) - ref["rmst_120"],
                "median": np.interp(-0.5, -s, t) - ref["median"],
            }
        )
    coarse, fine = gaps
    tol = {"s12": 1e-8, "s24": 1e-8, "rmst_120": 1e-7, "median": 1e-6}
    for key, limit in tol.items():
        assert abs(fine[key]) < limit, (key, fine[key])
        assert abs(fine[key]) <= abs(coarse[key]) + 1e-9, key


def fake_measurements() -> list[Measurement]:
    m = Measurement
    return [
        m(bench.REF_NUMPY, 10**6, 1, 0.20, 5, 10**6),
        m(bench.REF_SIMSEQ, 10**6, 1, 0.10, 5, 10**6),
        m(bench.REF_SIMSEQ, 10**6, 2, 0.06, 5, 10**6),
        m(bench.REF_NUMPY, 10**7, 1, 2.0, 5, 10**7),
        m(bench.REF_SIMSEQ, 10**7, 1, 0.5, 5, 10**7),  # 4x NumPy; 50 ns a patient: missed
        m(bench.REF_SIMSEQ, 10**7, 2, 0.4, 5, 10**7),  # 5x NumPy: met; 1.25x one thread: missed
        m(bench.BASE_SIMSEQ, 10**6, 1, 0.75, 5, 5 * 10**6),  # 1.5x REF per trajectory
        m(bench.PSA_NUMPY, 1000, 1, 1.0, 5, 10**6),
        m(bench.PSA_SIMSEQ, 1000, 1, 0.5, 5, 10**6),
        m(bench.PSA_SIMSEQ, 1000, 2, 0.3, 5, 10**6),
        m(bench.MEMORY, 10**8, None, 30.0, 1, 10**8, peak_rss_mb=450.0),
        m(bench.STARTUP, 1000, None, 0.8, 5, 1000),
    ]


def test_build_rows_on_fake_timings():
    rows = bench.build_rows(fake_measurements())
    by = {(r["name"], r["n_patients"], r["threads"]): r for r in rows}
    assert len(rows) == 13  # 12 measurements + the thread-scaling row
    assert set(rows[0]) >= {
        "name", "n_patients", "threads", "seconds", "trajectories_per_s", "ns_per_patient",
        "ratio_vs_numpy", "target", "measured", "meets_target", "note",
    }  # fmt: skip

    # the engine target: 1 thread at the largest N, in ns a patient
    r = by[(bench.REF_SIMSEQ, 10**7, 1)]
    assert r["trajectories_per_s"] == pytest.approx(2e7)
    assert r["ns_per_patient"] == pytest.approx(50.0)
    assert r["ratio_vs_numpy"] == pytest.approx(4.0)
    assert r["measured"] == pytest.approx(50.0) and r["meets_target"] is False
    assert "30 ns" in r["target"] and "(set at 1e8)" in r["target"]
    # the in-process NumPy target: the engine's default (most) threads
    r = by[(bench.REF_SIMSEQ, 10**7, 2)]
    assert r["measured"] == pytest.approx(5.0) and r["meets_target"] is True
    # the targets apply at the largest N only
    assert by[(bench.REF_SIMSEQ, 10**6, 1)]["meets_target"] is None
    assert by[(bench.REF_SIMSEQ, 10**6, 1)]["ratio_vs_numpy"] == pytest.approx(2.0)
    assert by[(bench.REF_SIMSEQ, 10**6, 2)]["speedup_vs_1_thread"] == pytest.approx(0.1 / 0.06)
    r = by[(bench.THREAD_SCALING, 10**7, 2)]
    assert r["measured"] == pytest.approx(1.25) and r["meets_target"] is False
    assert "1.8x" in r["target"]
    assert by[(bench.REF_NUMPY, 10**7, 1)]["target"] is None

    r = by[(bench.BASE_SIMSEQ, 10**6, 1)]
    assert r["ns_per_patient"] == pytest.approx(150.0)  # per patient-sequence
    assert r["measured"] == pytest.approx(1.5) and r["meets_target"] is True

    assert by[(bench.PSA_SIMSEQ, 1000, 1)]["meets_target"] is None  # only the most threads
    r = by[(bench.PSA_SIMSEQ, 1000, 2)]
    assert r["ratio_vs_numpy"] == pytest.approx(1.0 / 0.3)
    assert r["measured"] == pytest.approx(0.3) and r["meets_target"] is True

    r = by[(bench.MEMORY, 10**8, None)]
    assert r["trajectories_per_s"] is None and r["meets_target"] is False
    assert "(set at 1e9)" in r["target"]
    r = by[(bench.STARTUP, 1000, None)]
    assert r["meets_target"] is True and "< 1 s" in r["target"]  # 0.8 s: met (aim 0.6)
    assert bench.build_rows([Measurement(bench.STARTUP, 1000, None, 1.2, 5, 1000)])[0][
        "meets_target"
    ] is False  # fmt: skip

    missed = bench.missed_targets(rows)
    assert len(missed) == 3
    assert "ref_hcc.simseq" in missed[0] and "50" in missed[0]
    assert "memory" in missed[1] and "450" in missed[1]
    assert "threads" in missed[2] and "1.25" in missed[2]
    assert bench.targets_not_run(rows) == []
    json.dumps(rows, allow_nan=False)  # the --json payload is plain JSON


def whole_process_measurements(large: bool) -> list[Measurement]:
    """Whole processes at a development N (2e6) and, if ``large``, at 2e8 and 5e8;
    else the 2e8 and 5e8 cases marked not run."""
    m = Measurement
    ms = [
        m(bench.PROCESS_NUMPY, 2 * 10**6, None, 3.0, 5, 2 * 10**6),
        m(bench.PROCESS_NUMPY_INVCDF, 2 * 10**6, None, 2.0, 5, 2 * 10**6),
        m(bench.PROCESS_SIMSEQ, 2 * 10**6, None, 1.5, 5, 2 * 10**6),
    ]
    if not large:
        return ms + [bench.process_not_run(n, 5) for n in bench.PROCESS_LARGE_NS]
    return ms + [
        m(bench.PROCESS_NUMPY, 2 * 10**8, None, 20.0, 5, 2 * 10**8),
        m(bench.PROCESS_SIMSEQ, 2 * 10**8, None, 4.0, 5, 2 * 10**8),  # 5x: met (>= 4x)
        m(bench.PROCESS_NUMPY, 5 * 10**8, None, 50.0, 5, 5 * 10**8),
        m(bench.PROCESS_NUMPY_INVCDF, 5 * 10**8, None, 25.0, 5, 5 * 10**8),
        m(bench.PROCESS_SIMSEQ, 5 * 10**8, None, 10.0, 5, 5 * 10**8),  # 5x: missed; 2.5x: met
    ]


def test_whole_process_targets_pair_simseq_run_with_each_script():
    rows = bench.build_rows(whole_process_measurements(large=True))
    by = {(r["name"], r["n_patients"]): r for r in rows}
    r = by[(bench.PROCESS_SIMSEQ, 2 * 10**6)]  # development N: ratios, no target
    assert r["ratio_vs_numpy"] == pytest.approx(2.0)
    assert r["ratio_vs_numpy_inverse_cdf"] == pytest.approx(2.0 / 1.5)
    assert r["target"] is None
    assert (bench.PROCESS_VS[bench.PROCESS_NUMPY], 2 * 10**6) not in by

    r = by[("process.vs_numpy", 2 * 10**8)]
    assert r["measured"] == pytest.approx(5.0) and r["meets_target"] is True
    assert ">= 4x" in r["target"]
    r = by[("process.vs_numpy", 5 * 10**8)]
    assert r["measured"] == pytest.approx(5.0) and r["meets_target"] is False
    assert ">= 6x" in r["target"]
    r = by[("process.vs_numpy_inverse_cdf", 5 * 10**8)]
    assert r["measured"] == pytest.approx(2.5) and r["meets_target"] is True
    assert by[(bench.PROCESS_SIMSEQ, 5 * 10**8)]["ratio_vs_numpy_inverse_cdf"] == pytest.approx(2.5)
    assert len(bench.missed_targets(rows)) == 1 and bench.targets_not_run(rows) == []


def test_whole_process_targets_not_run_are_listed_with_how_to_run_them():
    rows = bench.build_rows(whole_process_measurements(large=False))
    checks = [r for r in rows if r["name"].startswith("process.vs_")]
    assert [(r["name"], r["n_patients"]) for r in checks] == [
        ("process.vs_numpy", 2 * 10**8),
        ("process.vs_numpy", 5 * 10**8),
        ("process.vs_numpy_inverse_cdf", 5 * 10**8),
    ]
    for r in checks:
        assert r["measured"] is None and r["meets_target"] is None
        assert r["note"].startswith("not run (needs --large / SIMSEQ_BENCH_LARGE=1, about ")
    # the placeholders themselves are no rows of their own
    assert sum(r["name"] == bench.PROCESS_SIMSEQ for r in rows) == 1
    assert len(bench.targets_not_run(rows)) == 3 and bench.missed_targets(rows) == []
    text = bench.rows_text(rows)
    assert re.search(r"not run \(needs --large / SIMSEQ_BENCH_LARGE=1, about \d+ min\)", text)
    json.dumps(rows, allow_nan=False)


def test_whole_process_baselines_and_time_estimates():
    assert bench.process_baselines(2 * 10**8) == (bench.PROCESS_NUMPY,)
    assert bench.process_baselines(5 * 10**8) == (bench.PROCESS_NUMPY, bench.PROCESS_NUMPY_INVCDF)
    assert bench.process_baselines(2 * 10**6) == (bench.PROCESS_NUMPY, bench.PROCESS_NUMPY_INVCDF)
    # the large cases take minutes, the development ones seconds
    assert 5 < sum(bench.process_minutes(n, 5) for n in bench.PROCESS_LARGE_NS) < 30
    assert bench.process_minutes(2 * 10**6, 3) < 0.5


def test_whole_process_commands():
    from pathlib import Path

    run = bench.run_command(Path("/tmp/out"), 2 * 10**8)
    assert run[-7:] == [
        "run", str(bench.SCENARIO_DIR / "ref_hcc.yaml"), "--patients", "200000000",
        "--out", "/tmp/out", "--quiet",
    ]  # fmt: skip
    script = bench.numpy_command(5 * 10**8, inverse_cdf=True)
    assert script[1:5] == ["-m", "simseq.numpy_baseline", "--patients", "500000000"]
    assert script[-1] == "--inverse-cdf" and "--inverse-cdf" not in bench.numpy_command(10)


def test_rows_without_counterparts_have_no_ratio():
    rows = bench.build_rows([Measurement(bench.REF_SIMSEQ, 10**5, 2, 0.01, 3, 10**5)])
    assert rows[0]["ratio_vs_numpy"] is None and rows[0]["speedup_vs_1_thread"] is None
    assert rows[0]["meets_target"] is None
    assert bench.missed_targets(rows) == []


def test_rows_text_lists_every_row():
    rows = bench.build_rows(fake_measurements())
    text = bench.rows_text(rows)
    assert "MISSED" in text and "met" in text and "1000x1000" in text and "5.00x" in text
    assert bench.fmt_n(10**7) == "1e7" and bench.fmt_n(2500) == "2,500"
    assert bench.fmt_n(2 * 10**8) == "2e8" and bench.fmt_n(500) == "500"


def test_bench_command_json_with_fake_rows(monkeypatch):
    rows = bench.build_rows(fake_measurements())
    monkeypatch.setattr(bench, "run_headline", lambda quick=False, large=False, progress=None: rows)
    result = CliRunner().invoke(main, ["bench", "--quick", "--json"], catch_exceptions=False)
    assert result.exit_code == 0  # a missed target is reported, not a failure
    data = json.loads(result.stdout)
    assert data["quick"] is True and data["large"] is False and data["rows"] == rows
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["numba_threads"] >= 1
    assert len(data["missed"]) == 3 and data["not_run"] == []
    assert "target missed" in result.stderr


def test_bench_command_table_with_fake_rows(monkeypatch):
    rows = [r for r in bench.build_rows(fake_measurements()) if r["meets_target"] is not False]
    monkeypatch.setattr(bench, "run_headline", lambda quick=False, large=False, progress=None: rows)
    result = CliRunner().invoke(main, ["bench"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "ref_hcc.simseq" in result.stdout and "all targets met" in result.stdout


def test_bench_command_passes_large_and_lists_targets_not_run(monkeypatch):
    seen = {}

    def fake(quick=False, large=False, progress=None):
        seen.update(quick=quick, large=large)
        return bench.build_rows(whole_process_measurements(large=large))

    monkeypatch.setattr(bench, "run_headline", fake)
    result = CliRunner().invoke(main, ["bench", "--quick"], catch_exceptions=False)
    assert result.exit_code == 0 and seen == {"quick": True, "large": False}
    not_run = re.findall(
        r"target process.vs_numpy\S* N=\de8: .*: not run \(needs --large", result.stdout
    )
    assert len(not_run) == 3
    assert "every target run was met" in result.stdout
    result = CliRunner().invoke(main, ["bench", "--large", "--json"], catch_exceptions=False)
    assert result.exit_code == 0 and seen == {"quick": False, "large": True}
    data = json.loads(result.stdout)
    assert data["large"] is True and data["not_run"] == [] and len(data["missed"]) == 1


def test_numpy_target_at_the_largest_n_with_a_numpy_run():
    """A 1e8 simseq run without NumPy moves the thread and engine targets, not the NumPy one."""
    m = Measurement
    rows = bench.build_rows(
        [
            m(bench.REF_NUMPY, 10**7, 1, 2.0, 5, 10**7),
            m(bench.REF_SIMSEQ, 10**7, 2, 1.0, 5, 10**7),
            m(bench.REF_SIMSEQ, 10**8, 1, 10.0, 5, 10**8),
            m(bench.REF_SIMSEQ, 10**8, 2, 5.0, 5, 10**8),
        ]
    )
    assert rows[1]["measured"] == pytest.approx(2.0) and rows[1]["meets_target"] is False
    assert rows[2]["target"] == "<= 30 ns/patient/thread (aim 25)"  # at its own N: no "set at"
    assert rows[2]["measured"] == pytest.approx(100.0) and rows[2]["meets_target"] is False
    assert rows[3]["target"] is None
    assert rows[4]["name"] == bench.THREAD_SCALING and rows[4]["n_patients"] == 10**8
    assert rows[4]["measured"] == pytest.approx(2.0) and rows[4]["meets_target"] is True


def test_large_runs_are_opt_in(monkeypatch):
    monkeypatch.delenv(bench.LARGE_ENV, raising=False)
    assert not bench.large_requested()
    monkeypatch.setenv(bench.LARGE_ENV, "0")
    assert not bench.large_requested()
    monkeypatch.setenv(bench.LARGE_ENV, "1")
    assert bench.large_requested()


def test_child_peak_rss_is_its_own_not_the_parents():
    """A fresh interpreter reports tens of MB even when its parent holds 400 MB (the
    forked parent's pages must not count, as they can in ru_maxrss after exec)."""
    import subprocess
    import sys

    ballast = np.ones(50_000_000)  # 400 MB, touched
    code = "from simseq.bench import own_peak_rss_mb; print(own_peak_rss_mb())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 5 < float(out.stdout) < 200
    assert ballast.sum() == 50_000_000
