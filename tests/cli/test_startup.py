"""What `simseq` imports: a plain `simseq run` of REF-HCC must not load the libraries only
other commands and scenarios need (pandas, matplotlib outside the plot child, rich
when --quiet, scipy's optimisers, statistics and integrators), so a later change cannot
silently add their seconds back to every run. Each case runs in a fresh interpreter
through the real console entry point, which leaves with os._exit after the exit handlers:
an exit handler reports what was imported."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REF_HCC = str(ROOT / "scenarios" / "ref_hcc.yaml")

# scipy.special too: only models with non-Weibull clocks bind its functions (0.2-0.3 s)
NOT_FOR_A_RUN = [
    "scipy.special",
    "pandas",
    "matplotlib",
    "jinja2",
    "openpyxl",
    "scipy.optimize",
    "scipy.stats",
    "scipy.integrate",
    "scipy.fft",
    "simseq.solve",
    "simseq.quadrature",
    "simseq.posterior",
]


def _imported_at_exit(args: list[str], cwd: Path, watch: list[str]):
    """(exit status, the modules of ``watch`` loaded when `simseq args` exits, stderr)."""
    code = (
        "import atexit, json, sys\n"
        "from simseq.cli import console_main\n"
        f"watch = {watch!r}\n"
        "atexit.register(lambda: print(json.dumps([m for m in watch if m in sys.modules])))\n"
        f"sys.argv = ['simseq', *{args!r}]\n"
        "console_main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "null"
    return out.returncode, json.loads(last), out.stderr


def test_the_cli_module_imports_no_numerics(tmp_path):
    code = "import sys, simseq.cli; print(sorted(m for m in sys.modules if m in sys.argv[1:]))"
    heavy = ["numpy", "numba", "scipy", "pydantic", "rich", "yaml", "pandas", "matplotlib"]
    out = subprocess.run(
        [sys.executable, "-c", code, *heavy], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_quiet_run_imports_only_what_it_needs(tmp_path):
    args = ["run", REF_HCC, "--patients", "1000", "--quiet", "--out", str(tmp_path / "out")]
    status, loaded, stderr = _imported_at_exit(args, tmp_path, [*NOT_FOR_A_RUN, "rich"])
    assert status == 0, stderr
    assert loaded == []
    assert (tmp_path / "out" / "survival.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_a_run_that_prints_imports_rich_but_nothing_else_heavy(tmp_path):
    args = ["run", REF_HCC, "--patients", "1000", "--out", str(tmp_path / "out")]
    status, loaded, stderr = _imported_at_exit(args, tmp_path, [*NOT_FOR_A_RUN, "rich"])
    assert status == 0, stderr
    assert loaded == ["rich"]


def test_the_entry_point_keeps_the_exit_status_and_runs_exit_handlers(tmp_path):
    status, loaded, stderr = _imported_at_exit(
        ["run", str(tmp_path / "missing.yaml"), "--quiet"], tmp_path, ["simseq.cli"]
    )
    assert status == 2
    assert loaded == ["simseq.cli"]  # the handler ran before os._exit
    assert "missing.yaml" in stderr
