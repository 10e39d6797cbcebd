"""survival.png drawn by `simseq run`'s forked child: the same file as drawn in-process,
failures reported, and no child left behind. Each case runs in a fresh interpreter,
because a process that has imported numba (as pytest's has) never forks."""

import subprocess
import sys
from pathlib import Path

import pytest

from simseq.commands import run_scenario

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "fixtures" / "tiny.yaml")


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_run_draws_the_same_png_as_in_process(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "simseq", "run", TINY, "--patients", "2000", "--quiet",
         "--out", str(tmp_path / "forked")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    run_scenario(TINY, n_patients=2000, quiet=True, out=tmp_path / "here")
    forked = (tmp_path / "forked" / "survival.png").read_bytes()
    assert forked[:8] == b"\x89PNG\r\n\x1a\n"
    assert forked == (tmp_path / "here" / "survival.png").read_bytes()


def test_a_failing_job_raises_with_the_childs_traceback(tmp_path):
    code = (
        "import json\n"
        "from simseq.forked_plot import ForkedPlotter\n"
        "with ForkedPlotter() as plotter:\n"
        "    assert plotter._pid, 'expected a child'\n"
        "    try:\n"
        "        wait = plotter.draw(json.loads, '{not json')\n"
        "        wait()\n"
        "    except RuntimeError as err:\n"
        "        print('JSONDecodeError' in str(err))\n"
    )
    out = _python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize(
    "job", ["    plotter.draw(time.sleep, 60)\n", ""], ids=["job-never-waited-for", "no-job"]
)
def test_a_child_left_behind_is_stopped_and_reaped(tmp_path, job):
    code = (
        "import os, time\n"
        "from simseq.forked_plot import ForkedPlotter\n"
        "with ForkedPlotter() as plotter:\n"
        "    pid = plotter._pid\n"
        f"{job}"
        "assert pid\n"
        "try:\n"
        "    os.waitpid(pid, os.WNOHANG)\n"
        "except ChildProcessError:\n"
        "    print('reaped')\n"
    )
    out = _python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "reaped"
