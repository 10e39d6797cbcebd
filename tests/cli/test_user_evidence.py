"""Users bring their own evidence: files with the packaged schema and inline records, checked
as strictly, never replacing a packaged id, and named in every output; an assumed value
may be a calibration target when it says so."""

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from simseq.cli import main

ROOT = Path(__file__).resolve().parents[2]
USER = ROOT / "tests" / "fixtures" / "user_evidence"
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"
PATIENTS = 20_000


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run(scenario, out):
    result = invoke("run", scenario, "--out", out, "--patients", PATIENTS)
    assert result.exit_code == 0, result.output
    return json.loads((out / "summary.json").read_text()), result.output


@pytest.mark.parametrize("scenario", ["cabozantinib_from_file", "cabozantinib_assumed"])
def test_a_new_regimen_is_calibrated_to_its_own_target(scenario, tmp_path):
    """Cabozantinib, not in simseq's evidence: its PFS and OS medians from a user's file, or
    assumed; its post-progression median is solved so that OS from the start of second
    line reproduces the 9.5-month target. The calibration cohort has 20,000 patients at
    the tiny scenario's N; the solver's tolerance is relative 1e-4 of the root."""
    out = tmp_path / "out"
    summary, printed = run(USER / f"{scenario}.yaml", out)
    rows = {r["regimen"]: r for r in summary["calibration"]}
    cabo = rows["cabozantinib"]
    assert cabo["target"] == 9.5 and abs(cabo["rel_error"]) < 1e-3, cabo
    assert 0.5 < cabo["solved_median"] < 40
    block = summary["sequences"]["atzbev_cabo"]["second_line"]["cabozantinib"]
    # the sequence's OS from 2L reproduces the target within its Monte Carlo interval
    lo, hi = block["os_from_2l"]["median_ci95"]
    assert lo <= 9.5 <= hi, block["os_from_2l"]
    table = pd.read_csv(out / "calibration.csv")
    assert "cabozantinib" in set(table.regimen)
    said = " ".join(printed.split())
    if scenario == "cabozantinib_from_file":
        assert cabo["target_id"] == "second_line.cabozantinib.os.example2026"
        evidence_file = str(USER / "example_evidence.yaml")
        assert summary["user_evidence"] == {
            "second_line.cabozantinib.pfs.example2026": evidence_file,
            "second_line.cabozantinib.os.example2026": evidence_file,
        }
        assert any("user evidence" in w and evidence_file in w for w in summary["warnings"])
        assert "user evidence (not simseq's packaged figures)" in said
    else:
        assert cabo["target_id"] == "assumed 9.5"
        assert summary["user_evidence"] == {}
        assert any("is an assumption, not evidence" in w for w in summary["warnings"])
        assert "calibration target of cabozantinib is an assumption" in said


def test_inline_records_may_cite_a_packaged_source(tmp_path):
    scenario = tmp_path / "inline.yaml"
    scenario.write_text(
        f"extends: {TINY}\n"
        "evidence:\n"
        "  records:\n"
        "    - {id: second_line.lenvatinib.pfs.chon2024.my_subgroup, source: chon2024,\n"
        "       quantity: median, value: 3.9, unit: months, n: 20, measured_from: 2l_start}\n"
        "regimens:\n"
        "  lenvatinib:\n"
        "    time_on_line:\n"
        "      median: {evidence: second_line.lenvatinib.pfs.chon2024.my_subgroup}\n"
    )
    summary, _ = run(scenario, tmp_path / "out")
    origin = summary["user_evidence"]["second_line.lenvatinib.pfs.chon2024.my_subgroup"]
    assert origin == f"{scenario} (evidence.records)"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


EVIDENCE_HEADER = "sources:\n  mine2026: {cite: 'Mine A. 2026', setting: test}\nrecords:\n"


@pytest.mark.parametrize(
    ("evidence_yaml", "fragments"),
    [
        (  # a packaged id may not be replaced
            EVIDENCE_HEADER
            + "  - {id: second_line.lenvatinib.os.chon2024.unadjusted, source: chon2024,\n"
            "     quantity: median, value: 99.0, unit: months, measured_from: 2l_start}\n",
            ["record id 'second_line.lenvatinib.os.chon2024.unadjusted' (simseq has it)"],
        ),
        (  # nor a packaged source
            "sources:\n  chon2024: {cite: 'someone else', setting: x}\nrecords: []\n",
            ["source id 'chon2024'", "ids must be new"],
        ),
        (  # checked as strictly as the packaged file
            EVIDENCE_HEADER + "  - {id: second_line.cabozantinib.pfs.mine2026, source: mine2026,\n"
            "     quantity: median, value: -4.0, unit: months, measured_from: 2l_start}\n",
            ["records[0]", "second_line.cabozantinib.pfs.mine2026", "must be a number > 0"],
        ),
        (
            EVIDENCE_HEADER + "  - {id: second_line.cabozantinib.pfs.mine2026, source: mine2026,\n"
            "     quantity: median, value: .nan, unit: months, measured_from: 2l_start}\n",
            ["records[0]", "finite number"],
        ),
        (
            EVIDENCE_HEADER + "  - {id: x.y, source: nobody, quantity: median}\n",
            ["unknown source 'nobody'"],
        ),
        ("sources: {}\nrecords: []\nrecords: []\n", ["duplicate key"]),
    ],
    ids=["packaged-id", "packaged-source", "negative", "nan", "unknown-source", "duplicate"],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_user_evidence_is_a_located_error(tmp_path, evidence_yaml, fragments, command):
    evidence = write(tmp_path / "mine.yaml", evidence_yaml)
    scenario = write(tmp_path / "s.yaml", f"extends: {TINY}\nevidence: {{files: [mine.yaml]}}\n")
    out = tmp_path / "out"
    extra = ["--out", out, "--quiet"] if command == "run" else []
    result = invoke(command, scenario, *extra)
    assert result.exit_code == 2, result.output
    assert str(scenario) in result.output and str(evidence) in result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, (fragment, result.output)
    assert not out.exists()


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ("[missing.yaml]", "cannot read"),
        ("[/dev/zero.yaml]", "cannot read"),
        ("[notes.txt]", "not a .yaml or .yml file"),
    ],
)
def test_unreadable_evidence_files_are_located_errors(tmp_path, files, fragment):
    write(tmp_path / "notes.txt", "sources: {}\n")
    scenario = write(tmp_path / "s.yaml", f"extends: {TINY}\nevidence: {{files: {files}}}\n")
    result = invoke("validate", scenario)
    assert result.exit_code == 2 and fragment in result.output, result.output
    assert "evidence" in result.output and "Traceback" not in result.output


def test_evidence_files_are_relative_to_the_file_that_lists_them(tmp_path, monkeypatch):
    """A child scenario in another folder extends one that lists an evidence file: the path
    stays relative to the parent, wherever the command runs."""
    child_dir = tmp_path / "elsewhere"
    child_dir.mkdir()
    child = write(
        child_dir / "child.yaml",
        f"extends: {USER / 'cabozantinib_from_file.yaml'}\nname: child\n",
    )
    monkeypatch.chdir(tmp_path)
    result = invoke("validate", child)
    assert result.exit_code == 0, result.output


def test_user_evidence_is_part_of_the_calibration_cache_key(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("cabozantinib_from_file.yaml", "example_evidence.yaml"):
        (folder / name).write_text((USER / name).read_text())
    scenario = folder / "cabozantinib_from_file.yaml"
    scenario.write_text(scenario.read_text().replace("../tiny.yaml", str(TINY)))
    out = tmp_path / "out"
    run(scenario, out)
    assert run(scenario, out)[0]["calibration"][1]["target"] == 9.5  # cached
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["calibration"]["from_cache"] is True
    evidence = folder / "example_evidence.yaml"
    # every file the scenario read, with its sha256: the extends chain and the evidence
    assert set(manifest["scenario_inputs"]) == {str(TINY), str(evidence.resolve())}
    assert all(len(h) == 64 for h in manifest["scenario_inputs"].values())
    evidence.write_text(evidence.read_text().replace("value: 9.5", "value: 10.5"))
    summary, _ = run(scenario, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["calibration"]["from_cache"] is False
    assert summary["calibration"][1]["target"] == 10.5
