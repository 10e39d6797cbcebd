"""Where the engine's work runs: here (threads of this process) or on a Dask cluster.

Work is split into tasks, each a patient range (single runs) or a draw range
(PSA, DSA, sweeps). Every task runs the same numba engine and returns integer
reductions; because random streams are keyed by (seed, draw, patient) and the
reductions are integers, merging the tasks in a fixed order gives bitwise the
same numbers as one local run, whatever the number of workers, the scheduling,
or retries after a worker dies (a retried task recomputes the same result and
the merge is keyed by task id, so nothing is counted twice).

Completed tasks are checkpointed in the results directory, under
``.checkpoints/<run>/`` (one ``.npz`` per task, written atomically, carrying its
run key, task id and a checksum); ``resume=True`` reuses the ones that verify, so
an interrupted run continues without recomputing finished work. The checkpoint
directory is removed once the run's results are written.
"""

import concurrent.futures
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simseq.engine.codes import N_BATCHES, N_ECON, N_EVENTS, N_TALLIES
from simseq.model import ModelArrays
from simseq.simulator import (
    DrawTallies,
    Tallies,
    check_econ_range,
    econ_sum,
    merge_tallies,
    n_bins_for,
    simulate,
    simulate_draws,
    tally_mask,
    thread_count,
)


class BackendUnavailable(RuntimeError):
    """The requested backend cannot be used here (Dask not installed, scheduler
    unreachable, a malformed address): exit status 2."""


class BackendFailed(RuntimeError):
    """The backend lost work it could not recover (e.g. every worker died): exit status 1."""


@dataclass(frozen=True)
class Task:
    """A unit of work: patients or draws ``lo`` (inclusive) to ``hi`` (exclusive); a draws
    task also covers patients ``p_lo`` to ``p_hi`` of each of its draws."""

    kind: str  # "patients" | "draws"
    lo: int
    hi: int
    p_lo: int = 0
    p_hi: int = 0

    @property
    def task_id(self) -> str:
        patients = f"-p{self.p_lo:012d}-{self.p_hi:012d}" if self.kind == "draws" else ""
        return f"{self.kind}-{self.lo:012d}-{self.hi:012d}{patients}"


def split(kind: str, n: int, size: int) -> list[Task]:
    """Tasks covering 0..n in pieces of ``size``."""
    return [Task(kind, lo, min(lo + size, n)) for lo in range(0, n, size)]


# --------------------------------------------------------------------------- #
# Task functions (module level: Dask pickles them by reference)
# --------------------------------------------------------------------------- #


def run_patient_task(
    model: ModelArrays, task: Task, seed: int, horizon: float, bin_width: float, tallies
) -> dict:
    """Patients task.lo .. task.hi of a single run: its integer reductions."""
    t = simulate(
        model,
        task.hi - task.lo,
        seed,
        horizon=horizon,
        bin_width=bin_width,
        patient_lo=task.lo,
        tallies=tallies,
        chunk_size=task.hi - task.lo,
    )
    out = {"hist": t.hist, "exit_counts": t.exit_counts}
    if t.econ is not None:
        out["econ"] = t.econ
    return out


def run_draw_task(
    model: ModelArrays,
    task: Task,
    seed: int,
    horizon: float,
    bin_width: float,
    common_streams: bool,
) -> dict:
    """Draws task.lo .. task.hi, patients task.p_lo .. task.p_hi: per-draw reductions."""
    part = model.select_draws(task.lo, task.hi)
    t = simulate_draws(
        part,
        task.p_hi - task.p_lo,
        seed,
        horizon=horizon,
        bin_width=bin_width,
        draw_lo=0 if common_streams else task.lo,
        common_streams=common_streams,
        patient_lo=task.p_lo,
    )
    out = {"os_hist": t.os_hist}
    if t.econ is not None:
        out["econ"] = t.econ
    return out


# --------------------------------------------------------------------------- #
# Checkpoints
# --------------------------------------------------------------------------- #


class Checkpoints:
    """Completed task results of one run, one atomic ``.npz`` per task.

    Each file carries the run key, its task id and a checksum of its arrays; on
    loading, a file that belongs to another run or task, does not match its
    checksum, cannot be read, or fails the caller's shape and count check is
    discarded (and the task recomputed), never trusted.
    """

    def __init__(self, run_key: str, root: Path, say: Callable[[str], None] | None = None):
        self.run_key = run_key
        self.directory = Path(root) / run_key
        self.say = say
        self.reused = 0
        self.discarded: list[str] = []

    def load(self, task: Task, check: Callable[[Task, dict], str | None] | None = None):
        """The checkpointed result of ``task``, or None (absent or discarded)."""
        path = self.directory / f"{task.task_id}.npz"
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(str(arrays.pop("__meta__")))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            return self._discard(path, f"unreadable ({type(err).__name__})")
        if not isinstance(meta, dict) or (meta.get("run"), meta.get("task")) != (
            self.run_key,
            task.task_id,
        ):
            return self._discard(path, "belongs to another run or task")
        if meta.get("checksum") != _checksum(arrays):
            return self._discard(path, "does not match its checksum")
        problem = check(task, arrays) if check is not None else None
        if problem:
            return self._discard(path, problem)
        self.reused += 1
        return arrays

    def _discard(self, path: Path, why: str) -> None:
        self.discarded.append(f"{path.name}: {why}")
        path.unlink(missing_ok=True)
        return None

    def save(self, task: Task, result: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        meta = {"run": self.run_key, "task": task.task_id, "checksum": _checksum(result)}
        fd, tmp = tempfile.mkstemp(prefix=".task-", suffix=".npz", dir=self.directory)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **result, __meta__=np.array(json.dumps(meta)))
        os.replace(tmp, self.directory / f"{task.task_id}.npz")

    def report(self, n_tasks: int) -> None:
        """Say how many tasks a resumed run reused and why any checkpoint was discarded."""
        if self.say is None or not (self.reused or self.discarded):
            return
        self.say(f"resuming: {self.reused} of {n_tasks} tasks reused from {self.directory}")
        for line in self.discarded:
            self.say(f"  discarded checkpoint {line}; recomputing it")

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.directory.parent.rmdir()  # .checkpoints/, if no other run's are left


def _checksum(arrays: dict) -> str:
    """sha256 of named arrays: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def run_key(**parts) -> str:
    """A short stable id for a run from everything its results depend on (and the
    version of simseq that computed them)."""
    from simseq import __version__

    text = json.dumps({**parts, "simseq": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- #
# Backends
# --------------------------------------------------------------------------- #


class LocalBackend:
    """Tasks one after another in this process; each uses the numba thread pool."""

    name = "local"

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def map(
        self,
        fn: Callable,
        tasks: list[Task],
        model: ModelArrays,
        args: tuple,
        on_done: Callable[[Task, dict], None],
    ) -> None:
        with thread_count(self.threads):
            for task in tasks:
                on_done(task, fn(model, task, *args))

    def close(self) -> None:
        pass


class DaskBackend:
    """Tasks on a Dask cluster: an existing scheduler, or a LocalCluster started here."""

    name = "dask"
    RETRIES = 3  # a task lost with its worker is recomputed (same inputs, same result)
    CONNECT_TIMEOUT = "15s"  # an unreachable scheduler fails in seconds, not minutes

    def __init__(self, scheduler: str | None = None, workers: int | None = None, client=None):
        """An existing ``client``, a ``scheduler`` address, or a new LocalCluster of ``workers``
        processes (default 2)."""
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise BackendUnavailable(
                "the dask backend needs Dask: pip install 'simseq[dask]'"
            ) from None
        self.cluster = None
        self.own_client = client is None
        if client is not None:
            self.client = client
        elif scheduler:
            try:
                self.client = Client(scheduler, timeout=self.CONNECT_TIMEOUT)
            except Exception as err:  # noqa: BLE001 (OSError, TimeoutError, ValueError ...)
                reason = " ".join(str(err).split()) or type(err).__name__
                raise BackendUnavailable(
                    f"cannot use the Dask scheduler at {scheduler!r}: {reason[:300]} (an "
                    "address looks like tcp://host:8786)"
                ) from None
        else:
            # one thread per worker process: numba parallelises inside each task
            self.cluster = LocalCluster(
                n_workers=workers or 2, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            self.client = Client(self.cluster)

    @property
    def dashboard(self) -> str | None:
        return getattr(self.client, "dashboard_link", None)

    def map(
        self,
        fn: Callable,
        tasks: list[Task],
        model: ModelArrays,
        args: tuple,
        on_done: Callable[[Task, dict], None],
    ) -> None:
        from dask.distributed import as_completed

        if not tasks:
            return
        # hash=False: a fresh key per call, so a re-scatter never races the release of the last
        model_future = self.client.scatter(model, broadcast=True, hash=False)
        run = run_key(args=args, fn=fn.__name__, model=model.digest())
        futures = {
            self.client.submit(
                fn,
                model_future,
                task,
                *args,
                key=f"simseq-{run}-{task.task_id}",
                retries=self.RETRIES,
                pure=False,
            ): task
            for task in tasks
        }
        from dask.distributed import KilledWorker

        for future in as_completed(futures):
            try:
                result = future.result()
            except (KilledWorker, concurrent.futures.CancelledError, OSError) as err:
                raise BackendFailed(
                    f"the Dask cluster lost task {futures[future].task_id} "
                    f"({type(err).__name__}: workers died or the scheduler went away); the "
                    "tasks already finished are checkpointed: run the same command again "
                    "with --resume"
                ) from None
            on_done(futures[future], result)

    def close(self) -> None:
        if self.own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


@contextlib.contextmanager
def task_session(
    run: str,
    root: Path,
    *,
    resume: bool,
    backend: str = "local",
    threads=None,
    scheduler=None,
    workers=None,
    say: Callable[[str], None] | None = None,
):
    """(backend, checkpoints) for one task-based run; checkpoints of ``run`` under ``root``
    are kept only with ``resume``; the backend is closed on exit."""
    checkpoints = Checkpoints(run, root, say)
    if not resume:
        checkpoints.clear()
    engine = make_backend(backend, threads=threads, scheduler=scheduler, workers=workers)
    if getattr(engine, "dashboard", None) and say is not None:
        say(f"Dask dashboard: {engine.dashboard}")
    try:
        yield engine, checkpoints
    finally:
        engine.close()


def make_backend(name: str = "local", *, threads=None, scheduler=None, workers=None):
    if name == "local":
        return LocalBackend(threads)
    if name == "dask":
        return DaskBackend(scheduler, workers)
    raise ValueError(f"unknown backend {name!r}; use local or dask")


# --------------------------------------------------------------------------- #
# Distributed versions of the engine's two entry points
# --------------------------------------------------------------------------- #


def _execute(backend, fn, tasks, model, args, checkpoints, progress, check=None) -> dict[str, dict]:
    """Run the tasks not already checkpointed (``check(task, arrays)`` returns why a
    checkpoint's content cannot be right, or None); return every result by task id."""
    results: dict[str, dict] = {}
    todo = []
    for task in tasks:
        done = checkpoints.load(task, check) if checkpoints is not None else None
        if done is not None:
            results[task.task_id] = done
            if progress is not None:
                progress(task)
        else:
            todo.append(task)
    if checkpoints is not None:
        checkpoints.report(len(tasks))

    def on_done(task: Task, result: dict) -> None:
        if task.task_id in results:  # a duplicate (e.g. a retry that also finished): same
            return
        results[task.task_id] = result
        if checkpoints is not None:
            checkpoints.save(task, result)
        if progress is not None:
            progress(task)

    backend.map(fn, todo, model, args, on_done)
    return results


def _shape_problem(result: dict, shapes: dict) -> str | None:
    """Why a checkpointed result cannot be this run's (wrong arrays or shapes), or None."""
    if set(result) != set(shapes):
        return f"holds arrays {sorted(result)}, expected {sorted(shapes)}"
    for name, shape in shapes.items():
        if result[name].shape != shape or result[name].dtype != np.int64:
            return f"{name} has shape {result[name].shape}, expected {shape} (int64)"
    return None


def simulate_tasks(
    backend,
    model: ModelArrays,
    n_patients: int,
    seed: int,
    *,
    horizon: float,
    bin_width: float,
    task_size: int,
    tallies=None,
    checkpoints=None,
    progress=None,
) -> Tallies:
    """``simulate`` split into patient tasks on ``backend``; bitwise equal to ``simulate``."""
    check_econ_range(model, horizon)  # here, not only in the tasks: before any is sent
    tasks = split("patients", n_patients, task_size)
    tally_on = tally_mask(tallies, model.n_states)
    n_bins = n_bins_for(horizon, bin_width)
    starts = model.seq_start_state

    def check(task: Task, r: dict) -> str | None:
        shapes = {
            "hist": (N_TALLIES, model.n_states, 2, n_bins),
            "exit_counts": (model.n_states, N_EVENTS + 1),
        }
        if model.has_economics:
            shapes["econ"] = (len(model.seq_names), N_ECON, N_BATCHES, 2)
        problem = _shape_problem(r, shapes)
        if problem is None and (r["exit_counts"][starts].sum(axis=1) != task.hi - task.lo).any():
            problem = "its patient counts do not add up to the task's patients"
        return problem

    results = _execute(
        backend,
        run_patient_task,
        tasks,
        model,
        (seed, horizon, bin_width, tally_on),
        checkpoints,
        progress,
        check,
    )
    parts = [
        Tallies(r["hist"], r["exit_counts"], t.hi - t.lo, bin_width, horizon, r.get("econ"))
        for t in tasks
        for r in [results[t.task_id]]
    ]
    return merge_tallies(parts)


def simulate_draw_tasks(
    backend,
    model: ModelArrays,
    n_patients: int,
    seed: int,
    *,
    horizon: float,
    bin_width: float,
    task_draws: int,
    task_patients: int | None = None,
    common_streams: bool = False,
    checkpoints=None,
    progress=None,
) -> DrawTallies:
    """``simulate_draws`` split into (draw range, patient block) tasks on ``backend``;
    bitwise equal. Patient blocks of a draw range add up (integer reductions)."""
    check_econ_range(model, horizon)  # here, not only in the tasks: before any is sent
    block = task_patients or n_patients
    tasks = [
        Task("draws", d.lo, d.hi, p.lo, p.hi)
        for d in split("draws", model.n_draws, task_draws)
        for p in split("patients", n_patients, block)
    ]
    args = (seed, horizon, bin_width, common_streams)
    n_seq, n_bins = len(model.seq_names), n_bins_for(horizon, bin_width)

    def check(task: Task, r: dict) -> str | None:
        shapes = {"os_hist": (task.hi - task.lo, n_seq, 2, n_bins)}
        if model.has_economics:
            shapes["econ"] = (task.hi - task.lo, n_seq, N_ECON, N_BATCHES, 2)
        problem = _shape_problem(r, shapes)
        if problem is None and (r["os_hist"].sum(axis=(2, 3)) != task.p_hi - task.p_lo).any():
            problem = "its patient counts do not add up to the task's patients"
        return problem

    results = _execute(backend, run_draw_task, tasks, model, args, checkpoints, progress, check)
    os_hist, econ = [], []
    for d in split("draws", model.n_draws, task_draws):
        parts = [results[t.task_id] for t in tasks if (t.lo, t.hi) == (d.lo, d.hi)]
        os_hist.append(sum(r["os_hist"] for r in parts))
        if "econ" in parts[0]:
            econ.append(econ_sum(np.stack([r["econ"] for r in parts])))
    return DrawTallies(
        np.concatenate(os_hist), np.concatenate(econ) if econ else None, n_patients, bin_width
    )
