"""Time two versions of simseq side by side in one process: a git revision against the
working tree, interleaved round by round.

    python benchmarks/ab_versions.py HEAD~1 --case engine --patients 1e7 --threads 1

On the project's 2-vCPU machine one unchanged case varies by 10-30% between processes,
and by day; one process holding both versions, alternating which runs first, is what
held up. The revision's ``simseq/`` is copied as ``simseq_base`` (its imports renamed)
into ``<tmp>/simseq-ab/<commit>``, so its numba kernels compile once per commit; its
packaged data files are read from the installed simseq. Reports the minimum and median
ns a patient-sequence of each, and whether their tallies are bitwise equal.
"""

import argparse
import importlib
import io
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASE = "simseq_base"
# module references only: "simseq.x", "from simseq import", "import simseq"
_IMPORTS = re.compile(r"\bsimseq(?=\.\w)|(?<=from )simseq(?= import)|(?<=^import )simseq$", re.M)
PSA_DRAWS = 200
SEED = 20261203


def base_copy(rev: str) -> tuple[str, Path]:
    """(commit, directory holding ``simseq_base`` and a ``scenarios`` link) for ``rev``."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{rev}^{{commit}}"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    home = Path(tempfile.gettempdir()) / "simseq-ab" / commit
    home.mkdir(parents=True, exist_ok=True)
    if not (home / BASE).is_dir():
        archive = subprocess.run(
            ["git", "archive", commit, "simseq"], cwd=ROOT, check=True, capture_output=True
        ).stdout
        staging = Path(tempfile.mkdtemp(dir=home))
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(staging, filter="data")
        for path in (staging / "simseq").rglob("*.py"):
            path.write_text(_IMPORTS.sub(BASE, path.read_text()))
        (staging / "simseq").rename(home / BASE)  # whole or not at all
        shutil.rmtree(staging)
    if not (home / "scenarios").exists():
        (home / "scenarios").symlink_to(ROOT / "scenarios")
    return commit, home


def setup(pkg: str, case: str, n: int, threads: int):
    """(a function simulating the case once -> Tallies, patient-sequences it simulates)."""

    def module(name):
        return importlib.import_module(f"{pkg}.{name}")

    bench, outcomes, simulate = module("bench"), module("outcomes"), module("simulator").simulate
    if case in ("engine", "run"):
        model = bench.ref_hcc_model()
        tallies, exits = (
            (outcomes.sequence_os_tallies(model), False)
            if case == "engine"
            else (outcomes.run_tallies(model), True)
        )
        kwargs = dict(horizon=bench.REF_HORIZON, tallies=tallies, exit_counts=exits)
    elif case == "base":
        model = bench.base_case_model()
        kwargs = dict(horizon=bench.REF_HORIZON, tallies=outcomes.summary_tallies(model))
    else:  # psa-econ: the cea scenario's PSA draws, with costs and QALYs
        study = module("study").load(ROOT / "scenarios" / "cea_base_case.yaml")
        study.calibrate()
        draws, solved, _ = study.psa_rows(PSA_DRAWS, SEED)
        model = study.model(solved[0] if solved else draws)
        n = max(1, n // PSA_DRAWS)
        kwargs = dict(
            horizon=study.horizon, tallies=outcomes.sequence_os_tallies(model), exit_counts=False
        )
    simulate(model, 1000, SEED, threads=threads, **kwargs)  # past compilation
    size = n * model.n_draws * len(model.seq_names)
    return (lambda: simulate(model, n, SEED, threads=threads, **kwargs)), size


def same(a, b) -> bool:
    return all(
        np.array_equal(x, y)
        for x, y in ((a.hist, b.hist), (a.exit_counts, b.exit_counts), (a.econ, b.econ))
        if x is not None or y is not None
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the git revision to compare with the working tree")
    parser.add_argument("--case", choices=["engine", "run", "base", "psa-econ"], default="engine")
    parser.add_argument("--patients", type=float, default=1e7, help="per sequence (and draw)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    commit, home = base_copy(args.rev)
    sys.path.insert(0, str(home))
    runs = {
        pkg: setup(pkg, args.case, int(args.patients), args.threads) for pkg in (BASE, "simseq")
    }
    ns = {pkg: [] for pkg in runs}
    last = {}
    for r in range(args.rounds):
        for pkg in runs if r % 2 else reversed(list(runs)):
            run, size = runs[pkg]
            start = time.perf_counter()
            last[pkg] = run()
            ns[pkg].append((time.perf_counter() - start) / size * 1e9)
    print(
        f"{args.case}, {args.patients:.0e} patients, {args.threads} thread(s), "
        f"{args.rounds} interleaved rounds (ns a patient-sequence):"
    )
    rev = args.rev if commit.startswith(args.rev) else f"{args.rev} ({commit[:7]})"
    for pkg, label in ((BASE, rev), ("simseq", "working tree")):
        print(f"  {label:28s} min {min(ns[pkg]):7.1f}  median {statistics.median(ns[pkg]):7.1f}")
    ratio = statistics.median(ns[BASE]) / statistics.median(ns["simseq"])
    print(f"  speed-up of the medians {ratio:.2f}x; tallies bitwise equal: {same(*last.values())}")


if __name__ == "__main__":
    main()
