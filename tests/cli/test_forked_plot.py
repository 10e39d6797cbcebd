"""survival.png and validation.png drawn by `simseq run`'s forked child: the same files as
drawn in-process, jobs run in order, failures reported, and no child left behind. Each
case runs in a fresh interpreter, because a process that has imported numba (as pytest's
has) never forks."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simseq.commands import run_scenario

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "fixtures" / "tiny.yaml")
# tiny with a validation: section, so that the run draws validation.png as well
LEN_OS_FROM_2L = {
    "evidence": "second_line.lenvatinib.os.chon2024.unadjusted",
    "statistic": "median",
    "outcome": "os",
    "origin": "line_2",
    "subgroup": {"line": 2, "regimen": "lenvatinib"},
}


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_run_draws_the_same_pngs_as_in_process(tmp_path):
    scenario = yaml.safe_load(Path(TINY).read_text())
    scenario["validation"] = [LEN_OS_FROM_2L]
    path = tmp_path / "tiny_validated.yaml"
    path.write_text(yaml.safe_dump(scenario))
    out = subprocess.run(
        [sys.executable, "-m", "simseq", "run", str(path), "--patients", "2000", "--quiet",
         "--out", str(tmp_path / "forked")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    run_scenario(path, n_patients=2000, quiet=True, out=tmp_path / "here")
    for name in ("survival.png", "validation.png"):
        forked = (tmp_path / "forked" / name).read_bytes()
        assert forked[:8] == b"\x89PNG\r\n\x1a\n"
        assert forked == (tmp_path / "here" / name).read_bytes(), name


def test_jobs_run_in_order_and_one_wait_waits_for_all(tmp_path):
    """Two jobs that append to one file: both done, in the order sent, once either
    waiter returns; the second waiter then returns at once."""
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from simseq.forked_plot import ForkedPlotter\n"
        "def append(path, text, pause):\n"
        "    time.sleep(pause)\n"
        "    with open(path, 'a') as f:\n"
        "        f.write(text)\n"
        "with ForkedPlotter() as plotter:\n"
        "    assert plotter._pid, 'expected a child'\n"
        "    first = plotter.draw(append, 'log.txt', 'first ', 0.3)\n"
        "    second = plotter.draw(append, 'log.txt', 'second', 0.0)\n"
        "    first()\n"
        "    print(Path('log.txt').read_text())\n"
        "    second()\n"
    )
    out = _python(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "first second"


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
