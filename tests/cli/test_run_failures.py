"""Scenarios the loader accepts (rightly) whose run once failed outside the loader.

Found by tests/fuzz/test_scenario_fuzz.py; each reproducer is a YAML file in
tests/fixtures/run_failures/ with a comment saying what went wrong. (A scenario whose
costs exceed what the engine sums exactly is refused instead: it is
tests/fixtures/broken/cost_beyond_exact_sums.yaml.)
"""

import json
import math
from pathlib import Path

from click.testing import CliRunner

from simseq.cli import main

FAILURES = Path(__file__).resolve().parents[1] / "fixtures" / "run_failures"


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def _run(name: str, tmp_path: Path) -> dict:
    path = FAILURES / f"{name}.yaml"
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert all(math.isfinite(x) for x in _numbers(summary))
    return summary


def test_an_extreme_shape_still_writes_strict_json(tmp_path):
    """A time-on-line Weibull of shape 0.01: calibrated (by quadrature, no interval to leave
    open any more) and summary.json stays strict JSON."""
    summary = _run("infinite_ci_bound", tmp_path)
    assert all(row["method"] == "quadrature" for row in summary["calibration"])
    assert all(abs(row["rel_error"]) < 1e-6 for row in summary["calibration"])


def test_two_targets_on_one_regimen_both_hit(tmp_path):
    """Both medians of one regimen freed: Gauss-Seidel once stopped after the first sweep
    although solving the second target had moved the first (OS off by ~11%, silently)."""
    _run("two_targets_one_regimen", tmp_path)
    import pandas as pd

    cal = pd.read_csv(tmp_path / "out" / "calibration.csv")
    assert (cal.rel_error.abs() < 0.01).all(), cal
