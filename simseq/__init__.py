"""simseq: Monte Carlo simulator of treatment sequences in advanced HCC."""

import os
import sys

__version__ = "0.1.0"
NUMBA_CACHE_DIR_FROM_USER = os.environ.get("NUMBA_CACHE_DIR") or None
"""The user's own NUMBA_CACHE_DIR, if they set one (it wins; simseq then never clears it)."""


def numba_cache_dir() -> str:
    """Where numba keeps simseq's compiled kernels: ``$NUMBA_CACHE_DIR`` if set, else
    ``$XDG_CACHE_HOME/simseq/numba`` (default ``~/.cache/simseq/numba``).

    Never inside the installed package: a cache there outlives ``pip uninstall`` (pip
    removes only the files it installed), and the leftover ``simseq/engine/__pycache__``
    turns ``simseq`` into an empty namespace package that breaks every later import."""
    chosen = os.environ.get("NUMBA_CACHE_DIR")
    if chosen:
        return chosen
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "simseq", "numba")


def _use_own_numba_cache() -> None:
    """Point numba at ``numba_cache_dir()`` before any kernel is defined (numba reads
    NUMBA_CACHE_DIR when it is imported, so set it too if numba is already loaded)."""
    path = numba_cache_dir()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # e.g. a read-only home: a private temporary folder instead
        import tempfile

        user = getattr(os, "getuid", lambda: "user")()
        path = os.path.join(tempfile.gettempdir(), f"simseq-numba-{user}")
    os.environ["NUMBA_CACHE_DIR"] = path
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.CACHE_DIR = path


_use_own_numba_cache()

__all__ = [
    "DSAResult",
    "PSAResult",
    "RunResult",
    "Study",
    "SweepResult",
    "__version__",
    "load",
]

_API = {
    "load": "simseq.study",
    "Study": "simseq.study",
    "RunResult": "simseq.results",
    "PSAResult": "simseq.results",
    "DSAResult": "simseq.results",
    "SweepResult": "simseq.results",
}


def __getattr__(name: str):
    """The Python API (``simseq.load``, ``simseq.Study``, the result types), imported on
    first use so that ``simseq --version`` and the CLI's start-up do not pay for it."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'simseq' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
