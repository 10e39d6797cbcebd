"""Results are never lost: each command owns its outputs, another scenario's results are not
overwritten without --force, simseq writes only into its own directories, one writer at a
time, and caches are verified before they are trusted."""

import json
import multiprocessing
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from simseq.cli import main
from simseq.results_dir import LOCK, ResultsError, ScenarioIdentity, results_writer

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"
CEA = ROOT / "scenarios" / "cea_base_case.yaml"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def tiny_copy(directory: Path, name: str = "tiny.yaml", edit=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    text = TINY.read_text()
    path = directory / name
    path.write_text(edit(text) if edit else text)
    return path


def run_tiny(scenario, *extra):
    return invoke("run", scenario, "--quiet", "--patients", 2000, *extra)


def visible(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir() if not p.name.startswith(".")}


# ------------------------------------------------------------- each command owns its outputs


def test_run_keeps_the_psa_results(tmp_path, monkeypatch):
    """Rerun a scenario after a PSA: psa/ (and anything else in the folder) is untouched."""
    monkeypatch.chdir(tmp_path)
    scenario = tmp_path / "cea.yaml"
    scenario.write_text(f"extends: {CEA}\n")
    psa = invoke("psa", scenario, "--draws", 3, "--patients", 200, "--quiet")
    assert psa.exit_code == 0, psa.output
    psa_dir = tmp_path / "results" / "cea_base_case" / "psa"
    before = {p.name: p.read_bytes() for p in psa_dir.iterdir() if p.is_file()}
    assert "psa_summary.json" in before
    run = invoke("run", scenario, "--quiet", "--patients", 500)
    assert run.exit_code == 0, run.output
    after = {p.name: p.read_bytes() for p in psa_dir.iterdir() if p.is_file()}
    assert after == before
    assert {"summary.json", "manifest.json", "psa"} <= visible(psa_dir.parent)


def test_run_removes_only_what_its_previous_run_wrote(tmp_path):
    scenario, out = tiny_copy(tmp_path), tmp_path / "out"
    assert run_tiny(scenario, "--out", out, "--trajectories", 5).exit_code == 0
    assert (out / "trajectories.csv").exists()
    (out / "notes.txt").write_text("mine")  # a user's file in a simseq directory
    assert run_tiny(scenario, "--out", out).exit_code == 0
    assert not (out / "trajectories.csv").exists()  # stale output of the same command
    assert (out / "notes.txt").read_text() == "mine"  # never simseq's to delete
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "run" and "trajectories.csv" not in manifest["files"]
    assert set(manifest["files"]) == visible(out) - {"notes.txt", "manifest.json"}


# -------------------------------------------------- another scenario's results are not overwritten


def test_another_scenario_with_the_same_name_needs_force(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mine = tiny_copy(tmp_path / "a")
    copied = tiny_copy(tmp_path / "b", edit=lambda t: t.replace("seed: 7", "seed: 8"))
    assert run_tiny(mine).exit_code == 0
    summary = (tmp_path / "results" / "tiny" / "summary.json").read_bytes()
    refused = run_tiny(copied)
    assert refused.exit_code == 2
    assert "another scenario file" in refused.output and "--force" in refused.output
    assert str(mine.resolve()) in refused.output
    assert (tmp_path / "results" / "tiny" / "summary.json").read_bytes() == summary
    # the same file edited, or the same content elsewhere, is the same scenario
    mine.write_text(mine.read_text().replace("seed: 7", "seed: 9"))
    assert run_tiny(mine).exit_code == 0
    moved = tiny_copy(tmp_path / "c", edit=lambda t: t.replace("seed: 7", "seed: 9"))
    assert run_tiny(moved).exit_code == 0
    forced = run_tiny(copied, "--force")
    assert forced.exit_code == 0, forced.output
    manifest = json.loads((tmp_path / "results" / "tiny" / "manifest.json").read_text())
    assert manifest["scenario_path"] == str(copied.resolve())


def test_psa_of_another_scenario_is_refused_by_the_run_it_would_sit_beside(tmp_path):
    scenario = tmp_path / "cea.yaml"
    scenario.write_text(f"extends: {CEA}\n")
    other = tmp_path / "other.yaml"
    other.write_text(f"extends: {CEA}\nsimulation: {{seed: 5}}\n")
    out = tmp_path / "res"
    assert invoke("run", scenario, "--out", out, "--quiet", "--patients", 300).exit_code == 0
    refused = invoke("psa", other, "--out", out / "psa", "--draws", 2, "--patients", 200)
    assert refused.exit_code == 2 and "another scenario file" in refused.output
    assert not (out / "psa").exists()


# ------------------------------------------------------ simseq writes only into its directories


@pytest.mark.parametrize("where", ["thesis", "scenarios", "dot"])
def test_foreign_directories_are_refused_before_simulating(where, tmp_path, monkeypatch):
    import simseq.backend

    monkeypatch.setattr(simseq.backend, "run_simulation", lambda *a, **k: pytest.fail("simulated"))
    scenario = tiny_copy(tmp_path / "scenarios")
    target = {"thesis": tmp_path / "thesis", "scenarios": tmp_path / "scenarios"}.get(where)
    if where == "thesis":
        target.mkdir()
        (target / "thesis.tex").write_text("\\documentclass{book}")
    if where == "dot":
        monkeypatch.chdir(tmp_path / "scenarios")
        target = Path(".")
    before = sorted(p.name for p in (target or tmp_path).iterdir())
    result = run_tiny(scenario, "--out", target)
    assert result.exit_code == 2
    assert "simseq did not write" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in target.iterdir()) == before  # not even a lock file
    assert (target / "thesis.tex").exists() if where == "thesis" else scenario.exists()


def test_an_empty_directory_and_dot_in_one_are_fine(tmp_path, monkeypatch):
    scenario = tiny_copy(tmp_path)
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    result = run_tiny(scenario, "--out", ".")
    assert result.exit_code == 0, result.output
    assert "summary.json" in visible(Path("."))
    assert run_tiny(scenario, "--out", ".").exit_code == 0  # and again: it is simseq's now


def test_empty_and_unwritable_out_are_refused_before_simulating(tmp_path, monkeypatch):
    import simseq.backend

    monkeypatch.setattr(simseq.backend, "run_simulation", lambda *a, **k: pytest.fail("simulated"))
    scenario = tiny_copy(tmp_path)
    empty = run_tiny(scenario, "--out", "")
    assert empty.exit_code == 2 and "--out is empty" in empty.output
    (tmp_path / "a_file").write_text("x")
    under_file = run_tiny(scenario, "--out", tmp_path / "a_file" / "res")
    assert under_file.exit_code == 2 and "cannot create" in under_file.output
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        denied = run_tiny(scenario, "--out", locked / "res")
        assert denied.exit_code == 2 and "Permission denied" in denied.output


# ----------------------------------------------------------------- one writer per directory


def _hold_lock(directory, ready, release):
    with results_writer(directory, "run", scenario=None):
        ready.set()
        release.wait(30)


def test_a_second_writer_gets_a_clear_error(tmp_path):
    out = tmp_path / "out"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(out, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        result = run_tiny(tiny_copy(tmp_path), "--out", out)
        assert result.exit_code == 2
        assert "being written by another simseq process" in result.output
        assert f"pid {holder.pid}" in result.output
    finally:
        release.set()
        holder.join(30)
    assert run_tiny(tiny_copy(tmp_path), "--out", out).exit_code == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".simseq-staging")]


def test_a_killed_writer_never_blocks_and_its_leftovers_are_removed(tmp_path):
    out = tmp_path / "out"
    script = (
        "import os, sys\n"
        "from simseq.results_dir import results_writer\n"
        "with results_writer(sys.argv[1], 'run', scenario=None) as stage:\n"
        "    (stage.path / 'summary.json').write_text('{half')\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    killed = subprocess.run(["python", "-c", script, str(out)], check=False)
    assert killed.returncode == -9
    assert [p.name for p in out.iterdir() if p.name.startswith(".simseq-staging")]
    (tmp_path / ".out.partial-abc").mkdir()  # what versions before 0.1 left beside it
    (tmp_path / ".out.old-def").mkdir()
    result = invoke("run", tiny_copy(tmp_path), "--out", out, "--patients", 2000)
    assert result.exit_code == 0, result.output
    assert "removed 3 unfinished output folder(s)" in result.output
    assert {p.name for p in out.iterdir() if p.name.startswith(".")} == {LOCK}
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name or ".old-" in p.name]
    json.loads((out / "summary.json").read_text())  # complete, not the half-written one


def test_a_failed_command_leaves_the_directory_as_it_was(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        with results_writer(out, "run", scenario=None) as stage:
            (stage.path / "summary.json").write_text("{}")
            raise RuntimeError("boom")
    assert not out.exists()  # created for this command, and nothing committed
    identity = ScenarioIdentity.of(TINY)
    with results_writer(out, "run", scenario=identity) as stage:
        (stage.path / "summary.json").write_text("{}")
        stage.write_manifest({"simseq_version": "x", "scenario_sha256": identity.sha256})
    with pytest.raises(ResultsError, match="another scenario"):
        with results_writer(out, "run", scenario=ScenarioIdentity("o.yaml", "/o.yaml", "0")):
            pass


# --------------------------------------------------------------- caches are verified, not trusted


def test_an_edited_calibration_cache_is_recomputed_with_a_note(tmp_path):
    scenario, out = tiny_copy(tmp_path), tmp_path / "out"
    assert run_tiny(scenario, "--out", out).exit_code == 0
    honest = json.loads((out / "summary.json").read_text())
    cache = json.loads((out / "calibration.json").read_text())
    cache["values"] = {k: 5 * v for k, v in cache["values"].items()}  # hash kept
    (out / "calibration.json").write_text(json.dumps(cache))
    result = invoke("run", scenario, "--out", out, "--patients", 2000)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # notes wrap at 100 columns
    assert "does not match its checksum" in output and "calibrated again" in output
    assert json.loads((out / "summary.json").read_text()) == honest
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["calibration"]["from_cache"] is False
    assert "checksum" in manifest["calibration"]["note"]


@pytest.mark.parametrize(
    "damage",
    ["{not json", "[]", '{"simseq_version": "0.1.0"}', ""],
    ids=["malformed", "list", "fields missing", "empty"],
)
def test_a_damaged_calibration_cache_is_recomputed_without_a_traceback(damage, tmp_path):
    scenario, out = tiny_copy(tmp_path), tmp_path / "out"
    assert run_tiny(scenario, "--out", out).exit_code == 0
    honest = (out / "summary.json").read_bytes()
    (out / "calibration.json").write_text(damage)
    result = run_tiny(scenario, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").read_bytes() == honest


def test_a_forged_cache_with_a_fresh_checksum_still_cannot_disagree_with_itself(tmp_path):
    from simseq.calibrate import _checksum

    scenario, out = tiny_copy(tmp_path), tmp_path / "out"
    assert run_tiny(scenario, "--out", out).exit_code == 0
    cache = json.loads((out / "calibration.json").read_text())
    cache["values"] = {k: 5 * v for k, v in cache["values"].items()}
    cache["checksum"] = _checksum(cache)
    (out / "calibration.json").write_text(json.dumps(cache))
    result = invoke("run", scenario, "--out", out, "--patients", 2000)
    assert result.exit_code == 0 and "disagree" in result.output


# ------------------------------------------------------------------------ optional dependencies


def test_parquet_without_pyarrow_is_refused_in_one_line_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", str(TINY), "--out", str(out), "--trajectories", "5"]
        + ["--trajectories-format", "parquet"],
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "simseq[parquet]" in lines[0], result.output
    assert not out.exists()


def test_dask_without_distributed_is_refused_before_any_work(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "distributed" else real(name, *a),
    )
    out = tmp_path / "out"
    for command in (["run", TINY], ["psa", CEA, "--draws", 2]):
        result = invoke(*command, "--out", out, "--backend", "dask", "--quiet")
        assert result.exit_code == 2 and "simseq[dask]" in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not out.exists()


# ------------------------------------------------------------------------------------ manifest


def test_manifest_records_the_scenarios_git_commit_and_dirty_state(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "project"
    scenario = tiny_copy(repo)
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "tiny.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "scenario"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    out = tmp_path / "out"
    assert run_tiny(scenario, "--out", out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["simseq_version"]
    assert manifest["scenario_git"] == {
        "repository": str(repo.resolve()),
        "commit": head,
        "dirty": False,
    }
    scenario.write_text(scenario.read_text() + "\n# edited\n")
    assert run_tiny(scenario, "--out", out).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario_git"]["dirty"] is True
    outside = tiny_copy(tmp_path / "loose")
    assert run_tiny(outside, "--out", tmp_path / "out2").exit_code == 0
    manifest = json.loads((tmp_path / "out2" / "manifest.json").read_text())
    assert manifest["scenario_git"] is None and manifest["simseq_version"]


# --------------------------------------------------------------- finite outputs, always


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_line_nobody_reaches_gives_nulls_and_a_note_not_nan(tmp_path, seed):
    """One patient, or an uptake of 0.0001: the second line's outcomes cannot be estimated;
    summary.json once failed with 'Out of range float values are not JSON compliant'."""
    scenario = tiny_copy(
        tmp_path,
        edit=lambda t: t.replace(
            "{evidence: first_line.atz_bev.after_progression.chon2024, count: received_2l}",
            "{value: 0.0001, assumption: almost nobody starts second line}",
        ),
    )
    unreached = 0
    for n in (1, 500):
        out = tmp_path / f"out{n}"
        result = invoke("run", scenario, "--out", out, "--patients", n, "--seed", seed)
        assert result.exit_code == 0, result.output
        summary = json.loads((out / "summary.json").read_text())  # strict JSON: no NaN
        block = summary["sequences"]["atzbev_len"]["second_line"]["lenvatinib"]
        if block["fraction_started"] == 0:
            unreached += 1
            assert block["line_end"]["death"] is None and block["os_from_2l"]["median"] is None
            assert any("no simulated patient started lenvatinib" in w for w in summary["warnings"])
    assert unreached  # the case this test is about did occur


def test_psa_and_dsa_where_median_os_is_never_reached(tmp_path):
    """A 12-month horizon: median OS from first line (about 16 months) is reached in no
    draw and no one-way case. The PSA reports it as not reached with its count (it once
    failed on formatting None), the DSA writes nulls (it once failed on JSON inf)."""
    pps = "after_progression: {median: {calibrate: null, value: 6.0, assumption: test}}"
    scenario = tmp_path / "short.yaml"
    scenario.write_text(
        f"extends: {CEA}\n"
        "name: short\n"
        "calibration: null\n"
        "simulation:\n"
        "  horizon: {value: 12, assumption: too short on purpose}\n"
        "  landmarks: [6, 12]\n"
        "regimens:\n"
        + "".join(f"  {r}: {{{pps}}}\n" for r in ("lenvatinib", "sorafenib", "tki_ici"))
    )
    psa = invoke("psa", scenario, "--draws", 3, "--patients", 200, "--out", tmp_path / "psa")
    assert psa.exit_code == 0, psa.output
    assert "(NR-NR)" in psa.output  # the interval, under the mean
    summary = json.loads((tmp_path / "psa" / "psa_summary.json").read_text())
    block = summary["sequences"]["atzbev_len"]["os_median"]
    assert block == {"mean": None, "ci95": [None, None], "n_draws_reached": 0}
    assert any(
        "median OS not reached within the horizon in 3 of 3" in w for w in summary["warnings"]
    )
    dsa = invoke("dsa", scenario, "--patients", 200, "--out", tmp_path / "dsa", "--quiet")
    assert dsa.exit_code == 0, dsa.output
    rows = json.loads((tmp_path / "dsa" / "dsa_summary.json").read_text())["rows"]
    assert rows and all(r["os_median_low"] is None for r in rows)


def test_a_psa_too_large_to_hold_is_refused_before_preparing_its_draws(tmp_path, monkeypatch):
    import simseq.study

    monkeypatch.setattr(simseq.study, "solve_rows", lambda *a, **k: pytest.fail("prepared"))
    out = tmp_path / "psa"
    result = invoke("psa", CEA, "--draws", 100_000, "--patients", 100, "--out", out, "--quiet")
    assert result.exit_code == 2
    # 100,000 x 5 x (2 x 6,000 bins of 0.02 months over 120 + 768 sums) x 8 bytes
    assert "100,000 cases x 5 sequences would keep 51.1 GB" in result.output
    assert not out.exists()


def test_python_api_bounds_patients_and_seed(tmp_path):
    from simseq.commands import run_scenario

    for kwargs in ({"n_patients": 10**11}, {"n_patients": 0}, {"seed": -1}, {"seed": 2**63}):
        with pytest.raises(ValueError, match="allowed"):
            run_scenario(TINY, out=tmp_path / "out", quiet=True, **kwargs)
        assert not (tmp_path / "out").exists()
