"""What every manifest.json records: simseq and library versions, the scenario file (path,
sha256, and its git commit and dirty state where it lives in a git repository)."""

import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from simseq import __version__
from simseq.results_dir import ScenarioIdentity, sha256_file


def _git(directory: Path, *args: str) -> str | None:
    """stdout of ``git -C directory args`` (stripped), or None if git fails or is absent."""
    try:
        out = subprocess.run(
            ["git", "-C", str(directory), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(files: Sequence[str | Path]) -> dict | None:
    """The git commit of the repository holding ``files[0]`` and whether any of ``files``
    differs from it (modified, staged or untracked); None outside a git repository."""
    first = Path(files[0]).resolve()
    top = _git(first.parent, "rev-parse", "--show-toplevel")
    if top is None:
        return None
    inside = [str(Path(f).resolve()) for f in files if Path(f).resolve().is_relative_to(top)]
    status = _git(Path(top), "status", "--porcelain", "--untracked-files=all", "--", *inside)
    return {
        "repository": top,
        "commit": _git(Path(top), "rev-parse", "HEAD"),
        "dirty": None if status is None else bool(status),
    }


def manifest_header(scenario: ScenarioIdentity | None, inputs: Sequence[str | Path] = ()) -> dict:
    """The fields every command's manifest starts with. ``inputs``: other files the
    scenario read (``extends:`` parents, evidence files), recorded with their sha256.
    ``scenario`` None: a scenario built in memory (no file to record)."""
    import numba
    import numpy
    import scipy

    simseq_source = Path(__file__).resolve().parent
    return {
        "simseq_version": __version__,
        # only where simseq itself runs from a git checkout (an editable install)
        "simseq_git_commit": _git(simseq_source, "rev-parse", "HEAD")
        if (simseq_source.parent / ".git").exists()
        else None,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "scenario_file": None if scenario is None else scenario.file,
        "scenario_path": None if scenario is None else scenario.path,
        "scenario_sha256": None if scenario is None else scenario.sha256,
        "scenario_inputs": {str(Path(f).resolve()): sha256_file(Path(f)) for f in inputs},
        "scenario_git": None if scenario is None else git_state([scenario.path, *inputs]),
    }
