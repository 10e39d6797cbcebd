"""numba's cache never goes inside the installed package (a leftover cache there turned
``simseq`` into an empty namespace package after ``pip install -e``)."""

import os
import subprocess
import sys
from pathlib import Path

import simseq

PACKAGE = Path(simseq.__file__).resolve().parent
PROBE = (
    "import simseq, numba; from simseq.engine.simulate import simulate_kernel as k; "
    "print(numba.config.CACHE_DIR); print(k._cache._cache_path)"
)


def probe(env: dict, code: str = PROBE) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return out.stdout.split()


def test_cache_goes_to_the_user_cache_dir_not_the_package(tmp_path):
    config, kernels = probe({"XDG_CACHE_HOME": str(tmp_path)})
    assert config == str(tmp_path / "simseq" / "numba")
    assert Path(kernels).is_relative_to(tmp_path)
    assert not Path(kernels).is_relative_to(PACKAGE)


def test_home_cache_by_default(tmp_path):
    config, _ = probe({"HOME": str(tmp_path)})
    assert config == str(tmp_path / ".cache" / "simseq" / "numba")


def test_numba_cache_dir_still_wins_even_if_numba_was_imported_first(tmp_path):
    config, kernels = probe({"NUMBA_CACHE_DIR": str(tmp_path / "mine")})
    assert config == str(tmp_path / "mine") and Path(kernels).is_relative_to(tmp_path / "mine")
    first = "import numba, os; os.environ.pop('NUMBA_CACHE_DIR', None); " + PROBE
    config, kernels = probe({"XDG_CACHE_HOME": str(tmp_path)}, first)
    assert Path(kernels).is_relative_to(tmp_path)


def test_unwritable_cache_home_falls_back_to_a_private_temporary_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config, kernels = probe({"XDG_CACHE_HOME": str(blocker)})
    assert "simseq-numba-" in config and not Path(kernels).is_relative_to(PACKAGE)


def test_cache_command_says_where_and_refuses_to_clear_a_users_own_dir(tmp_path):
    from click.testing import CliRunner

    from simseq.cli import main

    shown = CliRunner().invoke(main, ["cache"])
    assert shown.exit_code == 0 and shown.output.strip() == os.environ["NUMBA_CACHE_DIR"]
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}
    refused = subprocess.run(
        [sys.executable, "-m", "simseq", "cache", "--clear"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "clear it yourself" in refused.stderr
    assert tmp_path.exists()
    mine = tmp_path / "home"
    (mine / "simseq" / "numba" / "engine_x").mkdir(parents=True)
    clean = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    cleared = subprocess.run(
        [sys.executable, "-m", "simseq", "cache", "--clear"],
        env={**clean, "XDG_CACHE_HOME": str(mine)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert cleared.returncode == 0 and not (mine / "simseq" / "numba").exists()
