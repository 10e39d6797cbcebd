"""The Dask backend gives bitwise the local numbers, survives a killed worker, and resumes.

A LocalCluster with 2 worker processes (one thread each) stands in for a real cluster.
"""

import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from simseq.backend import (
    Checkpoints,
    DaskBackend,
    LocalBackend,
    Task,
    simulate_tasks,
)
from simseq.bench import ref_hcc_model
from simseq.cli import main
from simseq.outcomes import sequence_os_tallies
from simseq.simulator import simulate

distributed = pytest.importorskip("dask.distributed")

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny.yaml"
CEA = ROOT / "scenarios" / "cea_base_case.yaml"


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as lc:
        with distributed.Client(lc) as client:
            yield lc, client


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_run_is_bitwise_the_local_run(cluster, tmp_path):
    lc, _ = cluster
    local = invoke("run", TINY, "--out", tmp_path / "local", "--quiet")
    dask = invoke(
        "run",
        TINY,
        "--out",
        tmp_path / "dask",
        "--quiet",
        "--backend",
        "dask",
        "--scheduler",
        lc.scheduler_address,
        "--chunk-size",
        3_000,
    )
    assert local.exit_code == dask.exit_code == 0, dask.output
    assert (tmp_path / "local" / "summary.json").read_bytes() == (
        tmp_path / "dask" / "summary.json"
    ).read_bytes()
    assert not (tmp_path / "dask" / ".checkpoints").exists()  # cleared once written


def test_psa_is_bitwise_the_local_psa(cluster, tmp_path):
    lc, _ = cluster
    args = ["psa", CEA, "--draws", 12, "--patients", 300, "--quiet"]
    local = invoke(*args, "--out", tmp_path / "local")
    dask = invoke(
        *args, "--out", tmp_path / "dask", "--scheduler", lc.scheduler_address, "--task-draws", 5
    )
    assert local.exit_code == dask.exit_code == 0, dask.output
    a = json.loads((tmp_path / "local" / "psa_summary.json").read_text())
    b = json.loads((tmp_path / "dask" / "psa_summary.json").read_text())
    assert a == b


def test_a_killed_worker_loses_and_duplicates_nothing(cluster, tmp_path):
    lc, client = cluster
    model = ref_hcc_model().repeat_draws(24)
    os_only = sequence_os_tallies(model)
    expected = simulate(model, 20_000, 7, horizon=120.0, bin_width=0.25, tallies=os_only)
    pids = client.run(os.getpid)
    killed = []

    def kill_one(task: Task) -> None:
        if not killed:  # after the first result, kill a worker with tasks still queued
            victim = next(iter(pids.values()))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    backend = DaskBackend(client=client)
    try:
        got = simulate_tasks(
            backend,
            model,
            20_000,
            7,
            horizon=120.0,
            bin_width=0.25,
            tallies=os_only,
            task_draws=1,
            checkpoints=Checkpoints("kill", tmp_path),
            progress=kill_one,
        )
    finally:
        backend.close()
    assert killed
    np.testing.assert_array_equal(got.hist, expected.hist)
    np.testing.assert_array_equal(got.exit_counts, expected.exit_counts)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the other tests


class _Recording(LocalBackend):
    def __init__(self):
        super().__init__()
        self.computed: list[Task] = []

    def map(self, fn, tasks, model, args, on_done):
        self.computed += tasks
        super().map(fn, tasks, model, args, on_done)


def test_interrupted_run_resumes_without_recomputing(cluster, tmp_path):
    _, client = cluster
    model = ref_hcc_model()
    n, size = 60_000, 10_000
    expected = simulate(model, n, 3, horizon=120.0)
    checkpoints = Checkpoints("resume", tmp_path)
    done: list[Task] = []

    def interrupt_after_two(task: Task) -> None:
        done.append(task)
        if len(done) == 2:
            raise KeyboardInterrupt

    backend = DaskBackend(client=client)
    with pytest.raises(KeyboardInterrupt):
        simulate_tasks(
            backend,
            model,
            n,
            3,
            horizon=120.0,
            bin_width=0.02,
            task_patients=size,
            checkpoints=checkpoints,
            progress=interrupt_after_two,
        )
    backend.close()
    saved = sorted(p.name for p in checkpoints.directory.glob("*.npz"))
    assert len(saved) >= 2
    resumed = _Recording()
    got = simulate_tasks(
        resumed,
        model,
        n,
        3,
        horizon=120.0,
        bin_width=0.02,
        task_patients=size,
        checkpoints=checkpoints,
    )
    assert len(resumed.computed) == n // size - len(saved)  # only the missing tasks ran
    np.testing.assert_array_equal(got.hist, expected.hist)
    np.testing.assert_array_equal(got.exit_counts, expected.exit_counts)


def test_cli_resume_after_interruption(tmp_path, monkeypatch):
    """Ctrl-C during a checkpointed PSA, then --resume: the same psa_summary.json."""
    import simseq.backend

    args = ["psa", CEA, "--draws", 10, "--patients", 300, "--quiet", "--task-draws", 2]
    whole = invoke(*args, "--out", tmp_path / "whole")
    assert whole.exit_code == 0
    real = simseq.backend._execute
    calls = threading.local()

    def interrupted(backend, fn, tasks, model, args_, checkpoints, progress, check=None):
        calls.n = 0

        def stop_after_two(task):
            calls.n += 1
            if calls.n == 2:
                raise KeyboardInterrupt
            if progress is not None:
                progress(task)

        return real(backend, fn, tasks, model, args_, checkpoints, stop_after_two, check)

    monkeypatch.setattr(simseq.backend, "_execute", interrupted)
    resumed = tmp_path / "resumed"
    cut = invoke(*args, "--out", resumed, "--resume")
    assert cut.exit_code == 130
    # only the checkpoints are kept: no results, nothing staged
    assert [p.name for p in resumed.iterdir() if p.name != ".simseq.lock"] == [".checkpoints"]
    assert len(list((resumed / ".checkpoints").glob("*/*.npz"))) == 2  # saved, then Ctrl-C
    monkeypatch.setattr(simseq.backend, "_execute", real)
    loud = [a for a in args if a != "--quiet"]  # to see what --resume says it reused
    again = CliRunner().invoke(main, [str(a) for a in (*loud, "--out", resumed, "--resume")])
    assert again.exit_code == 0
    assert "resuming: 2 of 5 tasks reused" in again.output
    assert json.loads((tmp_path / "whole" / "psa_summary.json").read_text()) == json.loads(
        (tmp_path / "resumed" / "psa_summary.json").read_text()
    )
    assert not (resumed / ".checkpoints").exists()  # cleared once written


def test_draw_tasks_split_by_patient_block_add_up():
    """(draw range, patient block) tasks: blocks of a draw add up to the whole, bitwise."""
    from simseq.evidence import load_evidence
    from simseq.model import Economics, compile_model
    from simseq.resolve import resolve
    from simseq.scenario import load_scenario

    sc = load_scenario(CEA)
    values = {
        "lenvatinib.after_progression": 6.45,
        "sorafenib.after_progression": 4.75,
        "tki_ici.after_progression": 5.78,
    }
    res = resolve(sc, load_evidence(), values)
    model = compile_model(res.sequences, res.covariates, res.economics).repeat_draws(5)
    assert isinstance(res.economics, Economics)
    whole = simulate(model, 3_000, 9, horizon=120.0, bin_width=0.25)
    split = simulate_tasks(
        LocalBackend(),
        model,
        3_000,
        9,
        horizon=120.0,
        bin_width=0.25,
        task_draws=2,
        task_patients=700,
    )
    np.testing.assert_array_equal(split.hist, whole.hist)
    np.testing.assert_array_equal(split.exit_counts, whole.exit_counts)
    np.testing.assert_array_equal(split.econ, whole.econ)


def test_unreachable_or_malformed_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(DaskBackend, "CONNECT_TIMEOUT", "2s")
    for address in ("tcp://127.0.0.1:9", "no such address"):
        out = tmp_path / "out"
        result = CliRunner().invoke(
            main, ["run", str(TINY), "--out", str(out), "--quiet", "--scheduler", address]
        )
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: cannot use the Dask scheduler at")
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert not out.exists()


def test_workers_that_keep_dying_end_in_a_clear_error_not_a_traceback(cluster, tmp_path):
    """Every attempt of the task kills its worker: Dask gives up (KilledWorker); simseq
    says so, and that finished tasks are checkpointed for --resume."""
    from simseq.backend import BackendFailed

    _, client = cluster

    def die(model, task, *args):
        os._exit(1)

    backend = DaskBackend(client=client)
    with pytest.raises(BackendFailed, match="--resume"):
        backend.map(die, [Task(0, 1, 0, 1)], ref_hcc_model(), (), lambda t, r: None)
    client.wait_for_workers(2, timeout=60)  # the nannies restart them for the other tests
