"""Where the engine's work runs: here (threads of this process) or on a Dask cluster.

``run_simulation`` is the one place that chooses: a ``simulate`` call here, or the same
call split into tasks, each a range of draws times a range of patients, on a backend
with checkpoints. Every task runs the same numba engine and returns integer
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

from simseq.engine.codes import (
    EVENT_PROGRESSION,
    N_BATCHES,
    N_ECON,
    N_EVENTS,
    TALLY_EXIT_TIME,
    TALLY_PPS,
)
from simseq.model import ModelArrays
from simseq.simulator import (
    DEFAULT_CHUNK,
    Tallies,
    check_econ_range,
    join_draws,
    merge_tallies,
    n_bins_for,
    simulate,
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
    """A unit of work: draws ``d_lo`` (inclusive) to ``d_hi`` (exclusive) of the model, each
    for patients ``p_lo`` to ``p_hi``."""

    d_lo: int
    d_hi: int
    p_lo: int
    p_hi: int

    @property
    def task_id(self) -> str:
        return f"draws-{self.d_lo:012d}-{self.d_hi:012d}-p{self.p_lo:012d}-{self.p_hi:012d}"

    @property
    def n_trajectories(self) -> int:
        """Patients times draws: what a progress bar counts."""
        return (self.d_hi - self.d_lo) * (self.p_hi - self.p_lo)


def split(n_draws: int, n_patients: int, task_draws: int, task_patients: int) -> list[Task]:
    """Tasks covering draws 0..n_draws x patients 0..n_patients, in pieces of at most
    ``task_draws`` x ``task_patients``, draw range by draw range."""
    return [
        Task(d_lo, min(d_lo + task_draws, n_draws), p_lo, min(p_lo + task_patients, n_patients))
        for d_lo in range(0, n_draws, task_draws)
        for p_lo in range(0, n_patients, task_patients)
    ]


# --------------------------------------------------------------------------- #
# The task function (module level: Dask pickles it by reference)
# --------------------------------------------------------------------------- #


def run_task(
    model: ModelArrays,
    task: Task,
    seed: int,
    horizon: float,
    bin_width: float,
    tally_on: np.ndarray,
    exit_counts: bool,
    draw_lo: int,
    common_streams: bool,
) -> dict:
    """Draws task.d_lo .. task.d_hi, patients task.p_lo .. task.p_hi of a simulation whose
    draw 0 uses the streams of global draw ``draw_lo``: its integer reductions."""
    t = simulate(
        model.select_draws(task.d_lo, task.d_hi),
        task.p_hi - task.p_lo,
        seed,
        horizon=horizon,
        bin_width=bin_width,
        tallies=tally_on,
        exit_counts=exit_counts,
        draw_lo=draw_lo + (0 if common_streams else task.d_lo),
        common_streams=common_streams,
        patient_lo=task.p_lo,
        chunk_size=task.p_hi - task.p_lo,  # one kernel call
    )
    out = {"hist": t.hist}
    if t.exit_counts is not None:
        out["exit_counts"] = t.exit_counts
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


def _the_model(model: ModelArrays) -> ModelArrays:
    """The model as a Dask task result (see DaskBackend.map)."""
    return model


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
        run = run_key(args=args, fn=fn.__name__, model=model.digest())
        # The model is a task, not scattered data: a worker killed while holding it loses only
        # a copy the scheduler can recompute from the task itself (scattered data is lost for
        # good, and every task waiting on it is cancelled). pure=False: a fresh key per call.
        model_future = self.client.submit(_the_model, model, pure=False)
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
# A simulation as tasks, and the one place that chooses where it runs
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


def _counts_add_up(result: dict, model: ModelArrays, slots: np.ndarray, n_patients: int) -> bool:
    """Whether a task's counts are those of ``n_patients`` patients per draw and sequence:
    every patient enters its sequence's start state, and each kept histogram holds one
    count per patient it covers (per entrant; per exit by an event for exit times; per
    exit by progression for post-progression survival). Without exit counts, the
    histograms of start states that count every entrant are checked."""
    kinds, states = slots[:, 0], slots[:, 1]
    totals = result["hist"].sum(axis=(2, 3))  # (n_draws, n_kept)
    if "exit_counts" not in result:
        checked = ~np.isin(kinds, (TALLY_EXIT_TIME, TALLY_PPS)) & np.isin(
            states, model.seq_start_state
        )
        return bool((totals[:, checked] == n_patients).all())
    exits = result["exit_counts"]  # (n_draws, n_states, N_EVENTS + 1)
    entered = exits.sum(axis=2)
    if (entered[:, model.seq_start_state] != n_patients).any():
        return False
    expected = entered[:, states]
    expected = np.where(kinds == TALLY_EXIT_TIME, expected - exits[:, states, N_EVENTS], expected)
    expected = np.where(kinds == TALLY_PPS, exits[:, states, EVENT_PROGRESSION], expected)
    return bool((totals == expected).all())


def simulate_tasks(
    backend,
    model: ModelArrays,
    n_patients: int,
    seed: int,
    *,
    horizon: float,
    bin_width: float,
    tallies=None,
    exit_counts: bool = True,
    draw_lo: int = 0,
    common_streams: bool = False,
    task_draws: int = 1,
    task_patients: int | None = None,
    checkpoints=None,
    progress: Callable[[Task], None] | None = None,
) -> Tallies:
    """``simulate`` split into tasks of ``task_draws`` draws x ``task_patients`` patients
    (default all) on ``backend``; bitwise equal to ``simulate``. ``progress`` is called with
    each task done (checkpointed ones first)."""
    check_econ_range(model, horizon)  # here, not only in the tasks: before any is sent
    tally_on = tally_mask(tallies, model.n_states)
    slots = np.argwhere(tally_on).astype(np.int64)
    tasks = split(model.n_draws, n_patients, task_draws, task_patients or n_patients)
    n_bins, n_seq = n_bins_for(horizon, bin_width), len(model.seq_names)

    def check(task: Task, r: dict) -> str | None:
        n_draws = task.d_hi - task.d_lo
        shapes = {"hist": (n_draws, len(slots), 2, n_bins)}
        if exit_counts:
            shapes["exit_counts"] = (n_draws, model.n_states, N_EVENTS + 1)
        if model.has_economics:
            shapes["econ"] = (n_draws, n_seq, N_ECON, N_BATCHES, 2)
        problem = _shape_problem(r, shapes)
        if problem is None and not _counts_add_up(r, model, slots, task.p_hi - task.p_lo):
            problem = "its patient counts do not add up to the task's patients"
        return problem

    args = (seed, horizon, bin_width, tally_on, exit_counts, draw_lo, common_streams)
    results = _execute(backend, run_task, tasks, model, args, checkpoints, progress, check)
    parts: dict[int, list[Tallies]] = {}  # patient blocks by draw range, in task order
    for t in tasks:
        r = results[t.task_id]
        n = t.p_hi - t.p_lo
        part = Tallies(slots, r["hist"], r.get("exit_counts"), n, bin_width, horizon, r.get("econ"))
        parts.setdefault(t.d_lo, []).append(part)
    return join_draws([merge_tallies(blocks) for blocks in parts.values()])


TASK_TRAJECTORIES = 2_000_000
"""Default trajectories (patients x draws x sequences) per task: below ~250k the scheduling
overhead (~7 ms a task on a 2-worker LocalCluster) dominates; see README "Running on Dask"."""


def run_simulation(
    model: ModelArrays,
    n_patients: int,
    seed: int,
    *,
    horizon: float,
    bin_width: float,
    tallies=None,
    exit_counts: bool = True,
    draw_lo: int = 0,
    common_streams: bool = False,
    threads: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
    on_compile: Callable[[], None] | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    task_draws: int | None = None,
    task_patients: int | None = None,
    checkpoints_root: Path | None = None,
    label: str = "run",
    say: Callable[[str], None] | None = None,
) -> tuple[Tallies, Checkpoints | None]:
    """One ``simulate`` call (same arguments, same numbers), where it should run: here in one
    call when ``backend`` is "local" and nothing is resumed; else split into tasks
    (``simulate_tasks``) on that backend, checkpointed under ``checkpoints_root`` and, with
    ``resume``, reusing the checkpoints of an interrupted run with the same run key.

    ``task_draws`` defaults to about TASK_TRAJECTORIES trajectories a task, ``task_patients``
    to all patients; ``chunk_size`` and ``on_compile`` serve the local call (a task is one
    kernel call, compiled where it runs). ``progress`` is called with the patients
    finished, summed over draws.
    ``label`` names the analysis in the run key; ``say`` prints notes (resumed tasks, the
    Dask dashboard). Returns the tallies and the checkpoints to clear once the results are
    written (None when the run was not split into tasks).
    """
    if backend == "local" and not resume:
        t = simulate(
            model,
            n_patients,
            seed,
            horizon=horizon,
            bin_width=bin_width,
            tallies=tallies,
            exit_counts=exit_counts,
            draw_lo=draw_lo,
            common_streams=common_streams,
            threads=threads,
            chunk_size=chunk_size,
            progress=progress,
            on_compile=on_compile,
        )
        return t, None
    check_econ_range(model, horizon)  # before a cluster is started or a task sent
    per_draw = n_patients * len(model.seq_names)
    task_draws = task_draws or max(1, -(-TASK_TRAJECTORIES // per_draw))
    task_patients = task_patients or n_patients
    tally_on = tally_mask(tallies, model.n_states)
    key = run_key(
        command=label,
        model=model.digest(),
        n=n_patients,
        seed=seed,
        horizon=horizon,
        bin_width=bin_width,
        tallies=tally_on.tolist(),
        exit_counts=exit_counts,
        draw_lo=draw_lo,
        common=common_streams,
        task_draws=task_draws,
        task_patients=task_patients,
    )
    session = task_session(
        key,
        checkpoints_root,
        resume=resume,
        backend=backend,
        threads=threads,
        scheduler=scheduler,
        workers=workers,
        say=say,
    )
    with session as (engine, checkpoints):
        t = simulate_tasks(
            engine,
            model,
            n_patients,
            seed,
            horizon=horizon,
            bin_width=bin_width,
            tallies=tally_on,
            exit_counts=exit_counts,
            draw_lo=draw_lo,
            common_streams=common_streams,
            task_draws=task_draws,
            task_patients=task_patients,
            checkpoints=checkpoints,
            progress=None if progress is None else lambda task: progress(task.n_trajectories),
        )
    return t, checkpoints
