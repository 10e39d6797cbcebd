"""Draw plots in a forked child that imports matplotlib while the run computes.

matplotlib's import costs about 0.4 s, a quarter of a small ``simseq run``. A
``ForkedPlotter`` made at the very start of the command (before numba and SciPy
load, while the process has no threads) forks a child that imports matplotlib on
the other core, then runs the drawing jobs it reads from a pipe, in order: each a
picklable function of a module that imports little (``simseq.survival_plot``,
``simseq.validation_plot``) and its arguments. The parent sends the jobs when its
results are ready, writes its other files while the child draws (survival.png ~0.15
s, the base case's validation.png ~0.7 s), then waits for the files.

Without ``os.fork``, or once numba or matplotlib is imported (tests, notebooks,
anything that may run threads, which make forking unsafe), the plotter draws in
this process instead.
"""

import os
import pickle
import queue
import signal
import sys
import threading
import traceback
from types import TracebackType

_FRAME_HEADER = 8  # bytes: the length of the pickled job that follows, little-endian


def draw_here(fn, *args):
    """Run ``fn(*args)`` in this process; returns the function that waits, which has
    nothing to wait for. What ``ForkedPlotter.draw`` does without a child, and the
    default ``draw`` of the plotting functions that take one."""
    fn(*args)
    return _drawn


def _drawn() -> None:
    """Nothing to wait for: the drawing was done in this process."""


class ForkedPlotter:
    """Drawing jobs, done in order in a forked child when that pays. A context manager:
    leaving the block stops a child that was not waited for."""

    def __init__(self) -> None:
        self._pid = 0
        self._sent: list[str] = []  # the jobs' function names, for the error message
        if not hasattr(os, "fork") or {"numba", "matplotlib.figure"} & sys.modules.keys():
            return
        job_read, job_write = os.pipe()
        result_read, result_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(job_write)
            os.close(result_read)
            _serve(job_read, result_write)
        os.close(job_read)
        os.close(result_write)
        self._pid, self._result = pid, result_read
        self._jobs = os.fdopen(job_write, "wb")

    def draw(self, fn, *args):
        """Start ``fn(*args)``: send it to the child if there is one, else run it here.
        Returns a function that waits until every job sent is done (call it before the
        files are needed; calling it again does nothing) and raises RuntimeError with the
        child's traceback if a drawing failed there; the parent writes its other files
        meanwhile. Once waited for, the child is gone and later jobs run here."""
        if not self._pid:
            return draw_here(fn, *args)
        self._sent.append(fn.__qualname__)
        job = pickle.dumps((fn, args))
        try:
            self._jobs.write(len(job).to_bytes(_FRAME_HEADER, "little") + job)
            self._jobs.flush()
        except BrokenPipeError:  # the child died early; its traceback follows
            pass
        return self._wait

    def _wait(self) -> None:
        if not self._pid:
            return
        pid, self._pid = self._pid, 0
        self._close_jobs()  # no more jobs: the child leaves after the last
        with os.fdopen(self._result, "rb") as result:
            error = result.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if status != 0 or error:
            raise RuntimeError(
                f"drawing with {', '.join(self._sent)} failed in the plot process:\n{error}"
            )

    def _close_jobs(self) -> None:
        try:
            self._jobs.close()
        except BrokenPipeError:  # the child died with bytes unread
            pass

    def close(self) -> None:
        """Stop a child that was never waited for (the run failed or was interrupted)."""
        if not self._pid:
            return
        pid, self._pid = self._pid, 0
        os.kill(pid, signal.SIGKILL)
        self._close_jobs()
        os.close(self._result)
        os.waitpid(pid, 0)

    def __enter__(self) -> "ForkedPlotter":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _serve(job_fd: int, result_fd: int) -> None:
    """The child: import matplotlib, run the jobs read from ``job_fd`` in order until the
    parent closes it, report any traceback on ``result_fd``, and leave with os._exit
    (none of the parent's exit handlers may run twice)."""
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)  # the terminal belongs to the parent
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        # read each job as soon as it comes: it can be larger than a pipe holds (~0.2 MB
        # a sequence), and the parent would wait on its write until matplotlib is imported
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=_read_jobs, args=(job_fd, jobs), daemon=True).start()
        import matplotlib.backends.backend_agg  # noqa: F401  (the import is the point)
        import matplotlib.figure  # noqa: F401

        while (job := jobs.get()) is not None:
            fn, args = pickle.loads(job)
            fn(*args)
        code = 0
    except BaseException:  # noqa: BLE001  (everything goes back to the parent)
        os.write(result_fd, traceback.format_exc().encode())
    finally:
        os._exit(code)


def _read_jobs(fd: int, jobs: queue.SimpleQueue) -> None:
    """Put each pickled job read from ``fd`` on ``jobs``, then None at the end of the pipe."""
    with os.fdopen(fd, "rb") as stream:
        while len(header := stream.read(_FRAME_HEADER)) == _FRAME_HEADER:
            jobs.put(stream.read(int.from_bytes(header, "little")))
    jobs.put(None)
