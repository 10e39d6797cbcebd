"""Draw a plot in a forked child that imports matplotlib while the run computes.

matplotlib's import costs about 0.4 s, a quarter of a small ``simseq run``. A
``ForkedPlotter`` made at the very start of the command (before numba and SciPy
load, while the process has no threads) forks a child that imports matplotlib on
the other core, then waits for one drawing job on a pipe: a picklable function of
a module that imports little (``simseq.survival_plot``) and its arguments. The
parent sends the job when its results are ready, writes its other files while the
child draws (~0.15 s), then waits for the file.

Without ``os.fork``, or once numba or matplotlib is imported (tests, notebooks,
anything that may run threads, which make forking unsafe), the plotter draws in
this process instead.
"""

import functools
import os
import pickle
import signal
import sys
import threading
import traceback
from types import TracebackType


def _drawn() -> None:
    """What ``ForkedPlotter.draw`` returns when it drew in this process: nothing to wait for."""


class ForkedPlotter:
    """One drawing job, done in a forked child when that pays. A context manager:
    leaving the block stops a child that got no job."""

    def __init__(self) -> None:
        self._pid = 0
        self._sent = False
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
        self._pid, self._job, self._result = pid, job_write, result_read

    def draw(self, fn, *args):
        """Start ``fn(*args)``: send it to the child if there is one, else run it here.
        Returns a function that waits until the drawing is done (call it before the
        file is needed) and raises RuntimeError with the child's traceback if the
        drawing failed there; the parent writes its other files meanwhile."""
        if not self._pid or self._sent:
            fn(*args)
            return _drawn
        self._sent = True
        try:
            with os.fdopen(self._job, "wb") as job:
                pickle.dump((fn, args), job)
        except BrokenPipeError:  # the child died early; its traceback follows
            pass
        return functools.partial(self._wait, fn.__qualname__)

    def _wait(self, what: str) -> None:
        pid, self._pid = self._pid, 0
        with os.fdopen(self._result, "rb") as result:
            error = result.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if status != 0 or error:
            raise RuntimeError(f"drawing with {what} failed in the plot process:\n{error}")

    def close(self) -> None:
        """Stop a child that never got a job or was never waited for (the run failed
        or was interrupted)."""
        if not self._pid:
            return
        pid, self._pid = self._pid, 0
        if not self._sent:
            os.close(self._job)
        os.close(self._result)
        os.kill(pid, signal.SIGKILL)
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
    """The child: import matplotlib, run the job read from ``job_fd``, report any
    traceback on ``result_fd``, and leave with os._exit (none of the parent's exit
    handlers may run twice)."""
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)  # the terminal belongs to the parent
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        # read the job as soon as it comes: it is larger than a pipe holds (~0.2 MB a
        # sequence), and the parent would wait on its write until matplotlib is imported
        payload = []
        reader = threading.Thread(target=lambda: payload.append(_read_all(job_fd)))
        reader.start()
        import matplotlib.backends.backend_agg  # noqa: F401  (the import is the point)
        import matplotlib.figure  # noqa: F401

        reader.join()
        payload = payload[0]
        if payload:  # empty when the parent closed without a job
            fn, args = pickle.loads(payload)
            fn(*args)
        code = 0
    except BaseException:  # noqa: BLE001  (everything goes back to the parent)
        os.write(result_fd, traceback.format_exc().encode())
    finally:
        os._exit(code)


def _read_all(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as stream:
        return stream.read()
