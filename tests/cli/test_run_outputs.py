"""`simulation.outputs` / `simseq run --outputs`: a run that tallies OS from each
sequence's start alone reports the same numbers as a full run, bit for bit, for every
output it keeps (OS, economics, validation, comparisons), and says what it left out."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from simseq import load
from simseq.cli import main

ROOT = Path(__file__).resolve().parents[2]
CEA = ROOT / "scenarios" / "cea_base_case.yaml"  # economics, validation and comparisons
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"
PER_LINE_KEYS = {"pfs_1l", "pps_after_1l", "first_line"}  # every sequence has a first line


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same scenario, N and seed run with each --outputs."""
    root = tmp_path_factory.mktemp("outputs")
    out = {}
    for outputs in ("full", "sequence_os"):
        out[outputs] = root / outputs
        args = ("run", CEA, "--patients", 3000, "--out", out[outputs], "--quiet")
        result = invoke(*args, "--outputs", outputs)
        assert result.exit_code == 0, result.output
    return out


def summary(directory: Path) -> dict:
    return json.loads((directory / "summary.json").read_text())


def test_sequence_os_keeps_every_number_it_reports_bit_for_bit(runs):
    full, os_only = summary(runs["full"]), summary(runs["sequence_os"])
    assert [k for k in full if full[k] != os_only[k]] == ["outputs", "sequences"]
    for sid, seq in os_only["sequences"].items():
        assert {k: full["sequences"][sid][k] for k in seq} == seq
        assert PER_LINE_KEYS <= set(full["sequences"][sid]) and not PER_LINE_KEYS & set(seq)
        assert "second_line" not in seq
    assert sum("second_line" in s for s in full["sequences"].values()) >= 4
    for name in ("survival.csv", "cea.csv", "validation.csv", "inputs.csv"):
        assert (runs["full"] / name).read_bytes() == (runs["sequence_os"] / name).read_bytes()


def test_sequence_os_says_what_it_left_out(runs):
    os_only = summary(runs["sequence_os"])
    assert os_only["outputs"]["tallied"] == "sequence_os"
    assert "no per-line outcomes" in os_only["outputs"]["note"]
    assert summary(runs["full"])["outputs"]["tallied"] == "full"
    assert not (runs["sequence_os"] / "curves.csv").exists()
    assert (runs["full"] / "curves.csv").is_file()
    manifest = json.loads((runs["sequence_os"] / "manifest.json").read_text())
    assert manifest["outputs"] == "sequence_os"


def test_report_and_workbook_of_a_sequence_os_run(runs, tmp_path):
    pytest.importorskip("openpyxl")
    result = invoke("report", runs["sequence_os"])
    assert result.exit_code == 0, result.output
    html = (runs["sequence_os"] / "report.html").read_text()
    assert "No shares of patients by path: OS from the start of each sequence only" in html
    # the figures drawn from curves.csv: calibration, PFS, time on line, occupancy
    assert html.count("Not available, because this run kept only OS") == 4
    assert (runs["sequence_os"] / "results.xlsx").is_file()


def tiny_with_outputs(directory: Path, outputs: str) -> Path:
    """tests/fixtures/tiny.yaml at 2,000 patients with ``simulation.outputs: <outputs>``."""
    scenario = directory / "tiny_outputs.yaml"
    scenario.write_text(
        f"extends: {TINY}\nname: tiny_outputs\nsimulation:\n  n_patients: 2000\n  seed: 7\n"
        f"  horizon: {{value: 60, assumption: test horizon}}\n  outputs: {outputs}\n"
    )
    return scenario


def test_the_scenario_key_and_the_option_that_overrides_it(tmp_path):
    scenario = tiny_with_outputs(tmp_path, "sequence_os")
    result = invoke("run", scenario, "--out", tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert "no per-line outcomes" in " ".join(result.output.split())
    assert not (tmp_path / "a" / "curves.csv").exists()
    assert invoke("run", scenario, "--out", tmp_path / "b", "--outputs", "full").exit_code == 0
    assert summary(tmp_path / "b")["outputs"]["tallied"] == "full"
    assert (tmp_path / "b" / "curves.csv").is_file()


def test_an_unknown_outputs_value_is_refused_with_its_key_path(tmp_path):
    scenario = tiny_with_outputs(tmp_path, "os_only")
    result = CliRunner().invoke(main, ["run", str(scenario), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    for fragment in (str(scenario), "simulation.outputs", "os_only", "'full'", "'sequence_os'"):
        assert fragment in text
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["run", str(TINY), "--outputs", "os"])
    assert result.exit_code == 2 and "'os' is not one of 'full', 'sequence_os'" in result.output


def test_python_api_takes_outputs_and_checks_it():
    study = load(TINY)
    result = study.run(2000, outputs="sequence_os")
    assert result.summary_dict["outputs"]["tallied"] == "sequence_os"
    assert set(result.summary.columns) >= {"os_median_months", "rmst_months"}
    with pytest.raises(ValueError, match="outputs 'os': allowed 'full' or 'sequence_os'"):
        study.run(2000, outputs="os")


def test_the_option_offers_what_the_scenario_allows():
    from typing import get_args

    from simseq.cli import run_cmd
    from simseq.scenario import RunOutputs

    option = next(p for p in run_cmd.params if p.name == "outputs")
    assert tuple(option.type.choices) == get_args(RunOutputs)
