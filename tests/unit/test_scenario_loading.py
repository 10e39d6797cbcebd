"""Reading and validating scenario files: every bad input is a located ScenarioError.

Each test is a regression test for a finding of fuzzing ``simseq validate`` and
``simseq run`` (the fixtures in tests/fixtures/broken/ cover the cases where a
file is natural; these cover the rest).
"""

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from simseq.cli import main
from simseq.commands import validate_file
from simseq.evidence import load_evidence
from simseq.limits import (
    MAX_EXTENDS_DEPTH,
    MAX_SCENARIO_BYTES,
    MAX_YAML_DEPTH,
    TALLY_BYTES_PER_BIN,
)
from simseq.resolve import resolve
from simseq.scenario import ScenarioError, brief, load_scenario
from simseq.yamlio import load_yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"
BASE = ROOT / "scenarios" / "base_case.yaml"
CEA = ROOT / "scenarios" / "cea_base_case.yaml"
REF = ROOT / "scenarios" / "ref_hcc.yaml"
STUB = {f"{r}.after_progression": 6.0 for r in ("lenvatinib", "sorafenib", "tki_ici")}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _variant(tmp_path: Path, old: str, new: str, source: Path = TINY) -> Path:
    text = source.read_text()
    assert text.count(old) == 1, old
    return _write(tmp_path, "variant.yaml", text.replace(old, new))


def _error(path: Path, file: Path | None = None) -> str:
    """The text of the ScenarioError validating ``path`` raises; it names ``file`` (default:
    ``path``; an extends chain's problem names the file whose extends: is at fault)."""
    with pytest.raises(ScenarioError) as info:
        validate_file(path)
    text = str(info.value)
    assert text.startswith(f"{file or path}: "), text
    return text


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #


def test_echoed_values_are_bounded_cheaply():
    """An error message quotes at most 100 characters of a value, at a cost bounded by that,
    even for a structure of 10^12 values (what an alias bomb expands to)."""
    bomb: object = ["lol"] * 10
    for _ in range(11):
        bomb = [bomb] * 10
    started = time.perf_counter()
    text = brief({"a": bomb, "b": "x" * 10**7, "c": 10**5000})
    assert time.perf_counter() - started < 0.1
    assert len(text) == 100 and text.endswith("...")
    assert brief(10**5000).startswith("<an integer of about 5000 digits")
    assert brief({"a": [1.5, None, True]}) == "{'a': [1.5, None, True]}"


def test_alias_bomb_is_refused_fast():
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 30)]
    started = time.perf_counter()
    with pytest.raises(yaml.YAMLError, match="more than 100,000 values"):
        load_yaml("\n".join(lines))  # 10^30 values expanded
    assert time.perf_counter() - started < 1.0


def test_aliases_within_reason_are_fine():
    data = load_yaml("a: &x {v: 1}\nb: *x\nc: [*x, *x]\n")
    assert data["c"][1] == {"v": 1}
    assert load_scenario(CEA).economics.drugs["sorafenib"].doses_per_month.value == 30.4375


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: 1\nb: 2\na: 3\n", "duplicate key 'a' (first given on line 1)"),
        ("? [1, 2]\n: 3\n", "unhashable key"),
        ("a: &x [1, *x]\n", "recursive structure"),
        ("a: " + "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1), "nested more than"),
        (f"n: {'9' * 5000}\n", "invalid integer"),
        ("d: 2024-13-45\n", "invalid date"),
        ("x: !!python/object:os.system [ls]\n", "could not determine a constructor"),
    ],
)
def test_bad_yaml_is_a_located_yaml_error(text, message):
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml(text)
    assert message in str(info.value)


def test_merge_keys_may_be_overridden_but_explicit_keys_not_repeated():
    assert load_yaml("base: &b {x: 1, y: 2}\nc: {<<: *b, y: 3}\n")["c"] == {"x": 1, "y": 3}
    with pytest.raises(yaml.YAMLError, match="duplicate key 'y'"):
        load_yaml("base: &b {x: 1}\nc: {<<: *b, y: 3, y: 4}\n")


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (("  seed: 7\n", "  seed: 7\n  seed: 8\n"), ["line 7", "duplicate key 'seed'"]),
        (("title: Tiny", "title: !secret Tiny"), ["line 3", "invalid YAML", "'!secret'"]),
        (("  seed: 7\n", "  seed: 7\n  when: 2024-02-30\n"), ["line 7", "invalid date"]),
        (("  seed: 7\n", "  seed: &s [*s]\n"), ["recursive"]),
    ],
)
def test_yaml_problems_in_a_scenario_are_located(tmp_path, edit, fragments):
    text = _error(_variant(tmp_path, *edit))
    for fragment in fragments:
        assert fragment in text


def test_file_size_is_capped(tmp_path):
    big = _write(tmp_path, "big.yaml", TINY.read_text() + "#" * MAX_SCENARIO_BYTES)
    started = time.perf_counter()
    text = _error(big)
    assert time.perf_counter() - started < 1.0
    assert "file too large" in text and f"{MAX_SCENARIO_BYTES:,} bytes" in text
    parent = _write(tmp_path, "child.yaml", "extends: big.yaml\nname: c\n")
    assert "file too large" in _error(parent)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_never_read(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in _error(fifo)  # used to block forever
    child = _write(tmp_path, "child.yaml", "extends: pipe.yaml\nname: c\n")
    assert "not a regular file" in _error(child)


def test_extends_must_name_a_regular_yaml_file(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    _write(tmp_path, "notes.txt", "name: x\n")
    for target, message in [
        ("/dev/zero", "not a .yaml or .yml file"),
        ("zero.yaml", "/dev/zero: not a .yaml or .yml file"),  # the file a link points to
        ("dir.yaml", "is a directory"),
        ("notes.txt", "not a .yaml or .yml file"),
        ("missing.yaml", "No such file"),
        ('"a\\0b.yaml"', "not a valid file path"),  # a NUL byte
        ("''", "must be the path of another scenario file"),
        ("[a.yaml]", "must be the path of another scenario file"),
    ]:
        child = _write(tmp_path, "child.yaml", f"extends: {target}\nname: c\n")
        text = _error(child)
        assert message in text and "extends" in text, (target, text)
    assert "not a .yaml or .yml file" in _error(tmp_path / "notes.txt")


def test_extends_chain_depth_is_capped(tmp_path):
    for i in range(1200):  # used to end in RecursionError
        _write(tmp_path, f"c{i}.yaml", f"extends: c{i + 1}.yaml\n")
    _write(tmp_path, "c1200.yaml", "name: c\n")
    text = _error(tmp_path / "c0.yaml", tmp_path / f"c{MAX_EXTENDS_DEPTH - 1}.yaml")
    assert f"more than {MAX_EXTENDS_DEPTH} files in the extends chain" in text
    assert f"starting at {tmp_path / 'c0.yaml'}" in text


def test_extends_chain_at_the_cap_works(tmp_path):
    _write(tmp_path, "c0.yaml", f"extends: {TINY}\nname: chained\n")
    for i in range(1, MAX_EXTENDS_DEPTH - 1):
        _write(tmp_path, f"c{i}.yaml", f"extends: c{i - 1}.yaml\n")
    top = tmp_path / f"c{MAX_EXTENDS_DEPTH - 2}.yaml"  # the chain has MAX_EXTENDS_DEPTH files
    assert load_scenario(top).name == "chained"


def test_extends_cycles_are_refused(tmp_path):
    _write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    _write(tmp_path, "b.yaml", "extends: a.yaml\ntitle: b\n")
    text = _error(tmp_path / "a.yaml", tmp_path / "b.yaml")
    assert "extends: circular extends chain" in text
    assert f"{tmp_path / 'a.yaml'} -> {tmp_path / 'b.yaml'} -> {tmp_path / 'a.yaml'}" in text


def test_a_parent_that_is_not_a_scenario_is_not_quoted(tmp_path):
    _write(tmp_path, "settings.yaml", "api_token: sk-live-42\npassword: hunter2\n")
    _write(tmp_path, "list.yaml", "- api_token: sk-live-42\n")
    for parent in ("settings.yaml", "list.yaml"):
        child = _write(tmp_path, "child.yaml", f"extends: {parent}\nname: c\n")
        text = _error(child)
        assert "not a scenario file" in text
        assert "sk-live" not in text and "hunter2" not in text and "api_token" not in text
    # the file itself, passed directly: refused the same way
    text = _error(tmp_path / "settings.yaml")
    assert "not a scenario file" in text and "sk-live" not in text and "api_token" not in text


def test_a_parent_with_a_typo_gets_a_suggestion(tmp_path):
    _write(tmp_path, "parent.yaml", "regimen: {}\ntitle: t\n")
    child = _write(tmp_path, "child.yaml", "extends: parent.yaml\nname: c\n")
    assert "'regimen' (did you mean 'regimens'?)" in _error(child)


def test_values_of_unknown_keys_are_not_echoed(tmp_path):
    path = _variant(tmp_path, "title: Tiny test scenario\n", "title: t\napi_token: sk-live-42\n")
    text = _error(path)
    assert "api_token: unknown key 'api_token'" in text and "sk-live" not in text


def test_many_problems_are_counted_not_all_listed(tmp_path):
    extra = "".join(f"  key{i}: 1\n" for i in range(100))
    text = _error(_variant(tmp_path, "  seed: 7\n", "  seed: 7\n" + extra))
    assert "... and 60 more problems" in text and len(text.splitlines()) == 41


# --------------------------------------------------------------------------- #
# Numbers
# --------------------------------------------------------------------------- #

NON_FINITE = {
    "float field": ("shape: {value: 1.2,", "shape: {value: {x},", "time_on_line.shape.value"),
    "dict value": (
        "probabilities: {progression: 0.9,",
        "probabilities: {progression: {x},",
        "line_end.probabilities.progression",
    ),
    "list value": ("  seed: 7\n", "  seed: 7\n  landmarks: [12, {x}]\n", "simulation.landmarks.1"),
    "tuple value": ("bounds: [0.5, 40]", "bounds: [0.5, {x}]", "calibrate.bounds.1"),
    "int field": ("n_patients: 20000", "n_patients: {x}", "simulation.n_patients"),
}


@pytest.mark.parametrize("kind", sorted(NON_FINITE))
@pytest.mark.parametrize("x", [".nan", ".inf", "-.inf"])
def test_nan_and_inf_are_refused_everywhere(tmp_path, kind, x):
    old, new, where = NON_FINITE[kind]
    text = _error(_variant(tmp_path, old, new.replace("{x}", x)))
    assert where in text


def test_nan_clock_parameter_is_refused_not_dropped(tmp_path):
    """REF-HCC with a NaN death scale used to run with that clock silently dropped
    (median OS 15.68 instead of 12.89) and validate said it was valid."""
    path = _variant(tmp_path, "scale: {value: 45.0,", "scale: {value: .nan,", REF)
    assert "regimens.first.cause_specific.death.scale.value" in _error(path)


def test_booleans_are_not_numbers(tmp_path):
    text = _error(_variant(tmp_path, "n_patients: 20000", "n_patients: yes"))
    assert "simulation.n_patients" in text and "boolean" in text
    text = _error(
        _variant(tmp_path, "probabilities: {progression: 0.9,", "probabilities: {progression: on,")
    )
    assert "line_end.probabilities" in text and "boolean" in text


@pytest.mark.parametrize(
    "edit, where, allowed",
    [
        (("horizon: {value: 60,", "horizon: {value: 100000,"), "simulation.horizon", "(0, 1200]"),
        (("horizon: {value: 60,", "horizon: {value: -1,"), "simulation.horizon", "(0, 1200]"),
        (
            ("  seed: 7\n", "  seed: 7\n  bin_width: 1.0e-9\n"),
            "simulation.bin_width",
            "greater than or equal to 0.001",
        ),
        (
            (
                "horizon: {value: 60, assumption: test horizon}",
                "horizon: {value: 0.5, assumption: x}\n  bin_width: 1\n  landmarks: [0.5]",
            ),
            "simulation.bin_width",
            "at most the horizon",
        ),
        (("seed: 7", "seed: 9223372036854775808"), "simulation.seed", "[0, 2^63)"),
        (
            ("  targets:", "  n_patients: 100000000000\n  targets:"),
            "calibration.n_patients",
            "10000000000",
        ),
    ],
)
def test_time_grid_and_counts_are_bounded(tmp_path, edit, where, allowed):
    text = _error(_variant(tmp_path, *edit))
    assert where in text and allowed in text, text


def test_bin_count_error_states_the_memory(tmp_path):
    path = _variant(tmp_path, "  seed: 7\n", "  seed: 7\n  bin_width: 0.0005\n")
    assert "greater than or equal to 0.001" in _error(path)
    path = _variant(
        tmp_path,
        "horizon: {value: 60, assumption: test horizon}",
        "horizon: {value: 1200, assumption: test horizon}\n  bin_width: 0.001",
    )
    text = _error(path)
    assert "1,200,000 histogram bins" in text
    assert f"{1_200_000 * TALLY_BYTES_PER_BIN / 1e6:.3g} MB per model state and thread" in text


def test_tally_memory_of_the_whole_model_is_bounded(tmp_path):
    """Many sequences at a fine binning: n_states x n_bins x 96 bytes over 1 GB a thread."""
    seqs = "".join(
        f"  s{i}:\n    label: s{i}\n    lines:\n      - regimen: atz_bev\n"
        "        then: supportive_care\n"
        for i in range(80)
    )
    text = TINY.read_text().replace("sequences:\n", "sequences:\n" + seqs)
    text = text.replace(
        "horizon: {value: 60, assumption: test horizon}",
        "horizon: {value: 1000, assumption: test horizon}\n  bin_width: 0.01",
    )
    message = _error(_write(tmp_path, "many.yaml", text))
    assert "sequences" in message and "GB of tallies per thread" in message


def test_landmarks_must_lie_within_the_horizon(tmp_path):
    text = _error(_variant(tmp_path, "  seed: 7\n", "  seed: 7\n  landmarks: [0, 60, 61]\n"))
    assert "simulation.landmarks.0" in text and "simulation.landmarks.2" in text
    assert "simulation.landmarks.1" not in text  # S(horizon) is known


@pytest.mark.parametrize(
    "edit, where, allowed",
    [
        (
            ("shape: {value: 1.2, assumption: test shape}", "shape: {value: 0, assumption: x}"),
            "regimens.atz_bev.time_on_line.shape.value",
            "> 0 (weibull shape)",
        ),
        (
            (
                "median: {calibrate: {bounds: [0.5, 40]}}",
                "median: {calibrate: {bounds: [40, 0.5]}}",
            ),
            "after_progression.median.calibrate.bounds",
            "low < high",
        ),
        (
            (
                "next_line: {evidence: first_line.atz_bev.after_progression.chon2024, "
                "count: received_2l}",
                "next_line: {value: 1.2, assumption: x}",
            ),
            "sequences.atzbev_len.lines.0.next_line.value",
            "less than or equal to 1",
        ),
    ],
)
def test_nonsensical_values_are_refused(tmp_path, edit, where, allowed):
    text = _error(_variant(tmp_path, *edit))
    assert where in text and allowed in text, text


def test_negative_gompertz_shape_is_allowed(tmp_path):
    """Gompertz shape < 0 is a cured fraction, not an error."""
    path = _variant(
        tmp_path,
        "      family: weibull\n      median: {evidence: first_line.atz_bev.pfs.inoue2026}\n"
        "      shape: {value: 1.2, assumption: test shape}",
        "      family: gompertz\n      median: {evidence: first_line.atz_bev.pfs.inoue2026}\n"
        "      shape: {value: -0.05, assumption: a cured fraction}",
    )
    validate_file(path)


def test_evidence_and_overrides_are_checked_where_they_are_used():
    """A sweep or PSA value reaches resolve as an override: a hazard ratio of -1 is a
    located ScenarioError (it was a ValueError from Distribution.ph), a utility of 2 too."""
    sc, ev = load_scenario(CEA), load_evidence()
    with pytest.raises(
        ScenarioError, match=r"regimens.tki_ici.transport_hazard_ratio: must be > 0"
    ):
        resolve(sc, ev, STUB, overrides={"value:regimens.tki_ici.transport_hazard_ratio": -1.0})
    key = "evidence:health_economics.utility.progressed.su2021"
    with pytest.raises(ScenarioError, match=r"economics.supportive_care.utility: must be <= 1"):
        resolve(sc, ev, STUB, overrides={key: 2.0})
    with pytest.raises(ScenarioError, match="finite"):
        resolve(sc, ev, STUB, overrides={key: math.nan})


def test_counts_that_are_all_zero_are_an_error(tmp_path):
    """Causes mapped to count keys that are all 0 were a ZeroDivisionError."""
    data = yaml.safe_load(
        (ROOT / "simseq" / "data" / "hcc_evidence.yaml").read_text(encoding="utf-8")
    )
    for rec in data["records"]:
        if rec["id"] == "first_line.atz_bev.discontinuation.chon2024":
            rec["counts"] = {"progression": 194, "died_on_treatment": 0, "other": 0}
    evidence = load_evidence(_write(tmp_path, "evidence.yaml", yaml.safe_dump(data)))
    path = _variant(
        tmp_path,
        "causes: {progression: progression, death: died_on_treatment, "
        "deterioration: liver_or_clinical_deterioration}",
        "causes: {death: died_on_treatment, deterioration: other}",
    )
    stub = {"lenvatinib.after_progression": 6.0}
    with pytest.raises(ScenarioError, match=r"regimens.atz_bev.line_end.causes: .* all 0"):
        resolve(load_scenario(path), evidence, stub, str(path))


def test_one_median_cannot_be_freed_by_two_targets(tmp_path):
    text = TINY.read_text() + (
        "    - regimen: lenvatinib\n      quantity: median_os_from_line_start\n"
        "      free: after_progression.median\n"
        "      target: {evidence: second_line.lenvatinib.os.cheon2025.unadjusted}\n"
    )
    message = _error(_write(tmp_path, "two.yaml", text))
    assert "calibration.targets.1.free" in message and "already freed" in message


# --------------------------------------------------------------------------- #
# Unknown keys and values
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (
            ("title: Tiny", "titel: Tiny"),
            ["titel: unknown key 'titel' (did you mean 'title'?); allowed: extends, name, title"],
        ),
        (
            ("progression: progression,", "progresion: progression,"),
            ["line_end.causes.progresion", "did you mean 'progression'?", "allowed: progression"],
        ),
        (
            ("      free: after_progression.median", "      fre: after_progression.median"),
            ["calibration.targets.0.fre", "did you mean 'free'?", "allowed: target, quantity"],
        ),
        (
            ("family: weibull", "family: Weibul"),
            ["time_on_line.family", "did you mean 'weibull'?", "'Weibul'"],
        ),
        (
            ("n_patients: 20000", "N_Patients: 20000"),
            ["simulation.N_Patients", "did you mean 'n_patients'?"],
        ),
        (
            ("n_patients: 20000", "n_patients: 20000\n  zzz: 1"),
            ["simulation.zzz: unknown key 'zzz'; allowed: n_patients, seed, horizon"],
        ),
    ],
)
def test_unknown_keys_get_a_suggestion_and_the_allowed_keys(tmp_path, edit, fragments):
    text = _error(_variant(tmp_path, *edit))
    for fragment in fragments:
        assert fragment in text, (fragment, text)


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "args",
    [
        ["run", TINY, "--patients", 2**63],
        ["run", TINY, "--patients", 10**10 + 1],
        ["run", TINY, "--seed", 2**63],
        ["psa", CEA, "--draws", 100_001],
        ["psa", CEA, "--patients", 10**10 + 1],
        ["psa", CEA, "--draws", 100_000, "--patients", 1_000_000],
        ["dsa", CEA, "--patients", 10**11],
        ["sweep", CEA, "--param", "x=1:2:2", "--patients", 10**11],
    ],
)
def test_cli_counts_are_bounded(args, tmp_path):
    result = CliRunner().invoke(main, [str(a) for a in args] + ["--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_psa_settings_are_bounded(tmp_path):
    path = _write(
        tmp_path,
        "psa.yaml",
        f"extends: {CEA}\nname: p\npsa:\n  n_draws: 100000\n  n_patients: 1000000\n",
    )
    assert "n_draws x n_patients" in _error(path)


# --------------------------------------------------------------------------- #
# Calibration
# --------------------------------------------------------------------------- #


def test_tally_bytes_match_the_engine():
    from simseq.engine.codes import N_TALLIES

    assert TALLY_BYTES_PER_BIN == N_TALLIES * 2 * np.dtype(np.int64).itemsize


def test_a_target_beyond_the_horizon_is_unreachable(tmp_path):
    path = _variant(
        tmp_path,
        "horizon: {value: 60, assumption: test horizon}",
        "horizon: {value: 8, assumption: test horizon}\n  landmarks: [6]",
    )
    text = _error(path)
    assert "calibration.targets.0: unreachable" in text and "beyond the horizon (8" in text


def test_keys_that_are_not_text_or_not_printable(tmp_path):
    text = _error(_variant(tmp_path, "title: Tiny test scenario\n", "title: t\nnull: 1\n"))
    assert "(top level): key None is not text" in text
    text = _error(_variant(tmp_path, "  atz_bev:\n", "  1.5:\n"))
    assert "regimens: key 1.5 is not text" in text
    path = _variant(tmp_path, "  seed: 7\n", '  seed: 7\n  "a\\nb": 1\n  ' + "k" * 500 + ": 1\n")
    lines = _error(path).splitlines()
    assert len(lines) == 2 and all(len(line) < 1500 for line in lines)
    assert "simulation.'a\\nb': unknown key" in lines[0]


def test_a_yaml_error_in_a_parent_quotes_nothing_of_it(tmp_path):
    _write(tmp_path, "settings.yaml", "api_token: sk-live-42\napi_token: sk-live-43\n")
    child = _write(tmp_path, "child.yaml", "extends: settings.yaml\nname: c\n")
    text = _error(child, tmp_path / "settings.yaml")
    assert "line 2, column 1: invalid YAML: duplicate key '...'" in text
    assert "api_token" not in text and "sk-live" not in text


def test_psa_settings_are_explicit_values(tmp_path):
    """sensitivity.py refuses them with a message naming '<scenario>', after calibrating."""
    path = _write(
        tmp_path,
        "psa.yaml",
        f"extends: {CEA}\nname: p\npsa:\n  cost_se_fraction: "
        "{evidence: health_economics.cost.terminal_care_once.su2021, value: null, "
        "assumption: null}\n",
    )
    assert "psa.cost_se_fraction: a PSA setting is an explicit value" in _error(path)


def test_recalibration_that_fails_in_a_row_is_located():
    """A row whose inputs put a target out of its bracket names the target and the draw."""
    import simseq

    study = simseq.load(CEA)
    rows = np.concatenate(
        [
            study.table.base_row(),
            study.table.rows_with({"regimens.lenvatinib.time_on_line.median": 200.0}),
        ]
    )
    with pytest.raises(ScenarioError, match=r"calibration.targets.0: unreachable in PSA draw 1"):
        study.calibrated_rows(rows, "PSA")


def test_validate_rehearses_calibration_of_two_medians_of_one_regimen(tmp_path):
    """Calibration solves targets in order from the geometric means of their brackets;
    validate does the same by quadrature, so both accept or both refuse."""
    fixture = ROOT / "tests" / "fixtures" / "run_failures" / "two_targets_one_regimen.yaml"
    validate_file(fixture)  # time_on_line.median starts at sqrt(0.5 x 40) = 4.47 months
    text = fixture.read_text().replace("bounds: [0.5, 40]}}", "bounds: [0.5, 1000]}}")
    wide = _write(tmp_path, "wide.yaml", text.replace("extends: ../tiny.yaml", f"extends: {TINY}"))
    text = _error(wide)  # it starts at 22.4 months: OS cannot fall to the target
    assert "calibration.targets.0: unreachable: its free median in [0.5, 40] gives [23.02" in text
    assert "targets.1" not in text  # not solved because targets.0 failed: not listed again
    run = CliRunner().invoke(main, ["run", str(wide), "--out", str(tmp_path / "o"), "--quiet"])
    assert run.exit_code == 2 and "calibration.targets.0: unreachable" in run.output


def test_a_mix_mapping_two_categories_to_one_regimen_is_refused(tmp_path):
    """The second category's share overwrote the first's, the destination probabilities no
    longer summed to 1, and validate ended in compile_model's ValueError traceback."""
    path = _variant(
        tmp_path,
        "regimens: {sorafenib: sorafenib, lenvatinib: lenvatinib}",
        "regimens: {sorafenib: sorafenib, lenvatinib: sorafenib}",
        BASE,
    )
    text = _error(path)
    assert "sequences.atzbev_real_world.lines.1.mix" in text and "its own regimen" in text
