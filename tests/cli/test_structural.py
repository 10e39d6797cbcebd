"""Structural uncertainty: the base case and each declared alternative, side by side."""

import json
from pathlib import Path

import pytest

import simseq
from simseq.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "scenarios" / "base_case.yaml"


def test_alternatives_run_side_by_side(tmp_path):
    from simseq.commands import run_structural

    result, out = run_structural(BASE, n_patients=4_000, seed=3, out=tmp_path / "s", quiet=True)
    table = result.table
    names = ["base", "ps_matched", "uptake_taiwan", "loglogistic_second_line_pfs"]
    assert list(dict.fromkeys(table["alternative"])) == names
    assert len(table) == 4 * 5
    # each alternative is its own study, calibrated to its own targets: the PS-matched
    # cohorts change the second-line medians, the log-logistic family the PFS curves
    study = simseq.load(BASE)
    matched = study.alternative("ps_matched")
    assert matched.resolved.targets[0].value.base != study.resolved.targets[0].value.base
    llogis = study.alternative("loglogistic_second_line_pfs")
    assert llogis.scenario.regimens["sorafenib"].time_on_line.family == "llogis"
    # the base rows are the base case's own run at the same N and seed
    base_run = study.run(n_patients=4_000, seed=3).summary_dict["sequences"]
    first = table[(table.alternative == "base") & (table.sequence == "atzbev_len")].iloc[0]
    assert first.median_os_months == base_run["atzbev_len"]["os_from_1l"]["median"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["alternatives"]) == set(names[1:])
    assert all(a["assumption"] for a in manifest["alternatives"].values())
    assert (out / "structural.csv").read_text().count("\n") == 1 + 20


def test_an_invalid_alternative_is_named():
    data = load_scenario(BASE).model_dump(mode="json", exclude_none=True)
    data["structural_alternatives"]["loglogistic_second_line_pfs"]["changes"][
        "regimens.sorafenib.time_on_line"
    ] = {"family": "no_such_family"}
    study = simseq.Study.from_dict(data)
    with pytest.raises(ScenarioError, match="structural_alternatives.loglogistic_second_line_pfs"):
        study.alternative("loglogistic_second_line_pfs")


def test_changes_index_lists_and_validate_checks_them(tmp_path):
    """A key path can index a list (a sequence's lines); validate parses every
    alternative, so one whose changes break the scenario is refused there, named."""
    from simseq.commands import validate_file

    study = simseq.load(BASE)
    taiwan = study.alternative("uptake_taiwan")
    shares = {p.path: p.value for p in taiwan.resolved.provenance if "next_line" in p.path}
    assert shares["sequences.atzbev_len.lines.0.next_line"] == pytest.approx(30 / 41)
    assert taiwan.scenario.sequences["atzbev_len"].lines[1].regimen == "lenvatinib"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"extends: {BASE}\nname: bad\nstructural_alternatives:\n  broken:\n"
        "    label: x\n    assumption: y\n    changes:\n"
        "      sequences.atzbev_len.lines.7.next_line: {value: 0.5, assumption: z}\n"
    )
    with pytest.raises(ScenarioError, match="structural_alternatives.broken.changes"):
        validate_file(bad)
