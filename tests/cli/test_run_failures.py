"""Scenarios the loader accepts (rightly) whose run then fails outside the loader.

Found by tests/fuzz/test_scenario_fuzz.py; each reproducer is a YAML file in
tests/fixtures/run_failures/ with a comment saying what goes wrong. Marked
xfail(strict=True): when the cause is fixed the test passes, fails as XPASS,
and the marker should go.
"""

import json
import math
from pathlib import Path

import pytest
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


@pytest.mark.xfail(
    strict=True,
    reason="summary.json writing: an infinite upper CI bound of a calibrated median (not "
    "reached within the horizon) is not JSON; run exits 2 with no file or key path",
)
def test_infinite_ci_bound_is_written(tmp_path):
    _run("infinite_ci_bound", tmp_path)


@pytest.mark.xfail(
    strict=True,
    reason="economics accumulators: int64 fixed-point cost sums overflow at 1e18 a month "
    "and the mean costs come out negative",
)
def test_huge_costs_do_not_overflow(tmp_path):
    summary = _run("huge_cost_overflows", tmp_path)
    for block in summary["cea"]["sequences"].values():
        assert block["costs"]["mean"] > 0


@pytest.mark.xfail(
    strict=True,
    reason="calibration: Gauss-Seidel stops after the first sweep although solving the second "
    "target moved the first (OS target off by ~11%, silently)",
)
def test_two_targets_on_one_regimen_both_hit(tmp_path):
    _run("two_targets_one_regimen", tmp_path)
    import pandas as pd

    cal = pd.read_csv(tmp_path / "out" / "calibration.csv")
    assert (cal.rel_error.abs() < 0.01).all(), cal
