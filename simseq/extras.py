"""Optional dependencies (pip extras), checked before any work starts.

Imports nothing heavy, so the CLI can check before loading the engine."""

import importlib.util


class MissingExtra(Exception):
    """An option needs an optional dependency: the message names the extra to install."""

    def __init__(self, what: str, extra: str):
        super().__init__(f"{what}: pip install 'simseq[{extra}]'")


def check_optional_dependencies(*, trajectories_format: str = "csv", backend: str = "local"):
    """Raise ``MissingExtra`` for an option whose optional dependency is not installed."""
    if trajectories_format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise MissingExtra("--trajectories-format parquet needs pyarrow", "parquet")
    if backend == "dask" and importlib.util.find_spec("distributed") is None:
        raise MissingExtra("the dask backend needs Dask (dask.distributed)", "dask")
