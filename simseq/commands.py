"""What each command does around a Study: its results directory, progress bar and console.

``simseq.cli`` parses arguments and calls these; tests and the benchmarks call
them too. The numbers come from ``simseq.study``; this module adds only what a
command needs beyond them: a checked, locked, staged results directory
(``simseq.results_dir``), a progress bar, the printed tables.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numba

from simseq.calibrate import CACHE_FILE, CalibrationResult, save_cached
from simseq.extras import check_optional_dependencies
from simseq.report import (
    print_bayes_table,
    print_calibration_table,
    print_cea_table,
    print_comparisons,
    print_dsa_table,
    print_held_fixed,
    print_psa_table,
    print_run_table,
    print_structural_table,
    print_validation_mape,
    write_csv,
    write_json,
)
from simseq.results import calibration_rows
from simseq.results_dir import Staging, out_directory, results_writer
from simseq.scenario import Scenario, alternative_scenario
from simseq.simulator import COMPILE_NOTICE, DEFAULT_CHUNK
from simseq.study import Study, load, parse_sweep

if TYPE_CHECKING:
    from rich.console import Console

MAX_TRAJECTORY_PATIENTS = 100_000


def make_console(quiet: bool = False, width: int = 100) -> Console:
    """A console of the terminal's width, or ``width`` columns when the output is piped
    to a file (100: what the results tables fit)."""
    from rich.console import Console

    probe = Console()
    return Console(quiet=quiet, width=None if probe.is_terminal else width)


def default_out(scenario: Scenario) -> Path:
    return Path("results") / scenario.name


class _Command:
    """One command's session: console, study, and its staged results directory."""

    def __init__(
        self, name: str, path, out, *, quiet, console, force, subdir: str = "", method=None
    ):
        self.name = name
        if console is not None:
            self.console = console
        self.quiet = quiet
        self.say = None if quiet else self.console.print
        self.study: Study = load(path, method=method)
        default = default_out(self.study.scenario)
        self.out_dir = out_directory(out, default / subdir if subdir else default)
        self.force = force
        self.started = time.perf_counter()

    @functools.cached_property
    def console(self) -> Console:
        """The caller's console, else one made on first use: a ``--quiet`` command that
        prints nothing never imports rich (~40 ms)."""
        return make_console(self.quiet)

    @contextlib.contextmanager
    def staged(self, manifest: str | None = "manifest.json") -> Iterator[Staging]:
        with results_writer(
            self.out_dir,
            self.name,
            scenario=self.study.identity,
            force=self.force,
            manifest=manifest,
            say=self.say,
        ) as stage:
            yield stage

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None):
        """A callback advancing a transient progress bar by its argument (none if quiet)."""
        if self.quiet:
            yield lambda k: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        bar = Progress(
            TextColumn(description),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        with bar:
            task = bar.add_task(description, total=total)
            yield lambda k: bar.advance(task, k)

    def seconds(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    def notes(self, warnings: list[str]) -> None:
        if self.quiet:
            return
        for w in warnings:
            self.console.print(f"[yellow]note:[/yellow] {w}")


def run_scenario(
    path: str | Path,
    *,
    n_patients: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    out: str | Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    trajectories: int = 0,
    trajectories_format: str = "csv",
    outputs: str | None = None,
    quiet: bool = False,
    console: Console | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    x_max: float | None = None,
    draw=None,
) -> tuple[dict, Path]:
    """``simseq run``: simulate the base case and write its results directory; returns
    (summary, out_dir). ``backend="dask"`` (or ``resume``) splits the patients into
    checkpointed tasks of ``chunk_size`` (``simseq.backend``), bitwise equal to a local
    run; ``outputs`` overrides ``simulation.outputs``; ``force`` replaces another
    scenario's results; ``draw`` draws survival.png."""
    check_optional_dependencies(
        trajectories_format=trajectories_format if trajectories else "csv", backend=backend
    )
    if trajectories > MAX_TRAJECTORY_PATIENTS:
        raise ValueError(
            f"--trajectories {trajectories}: the event log is for small runs, at most "
            f"{MAX_TRAJECTORY_PATIENTS:,} patients"
        )
    cmd = _Command("run", path, out, quiet=quiet, console=console, force=force)
    study = cmd.study
    n = study.scenario.simulation.n_patients if n_patients is None else n_patients
    distributed = (
        dict(backend=backend, scheduler=scheduler, workers=workers, resume=resume)
        if backend != "local" or resume
        else None
    )
    with cmd.staged() as stage:
        # calibration depends on the scenario file only, not on --patients/--seed
        study.calibrate(threads=threads, say=cmd.say, cache_dir=cmd.out_dir)
        with cmd.progress("simulating", n) as advance:
            result = study.run(
                n_patients,
                seed,
                threads=threads,
                chunk_size=chunk_size,
                progress=advance,
                on_compile=None if quiet else (lambda: cmd.console.print(COMPILE_NOTICE)),
                distributed=distributed,
                checkpoints_root=stage.checkpoints,
                say=cmd.say,
                outputs=outputs,
            )
        result.write(
            stage,
            draw=draw,
            trajectories=trajectories,
            trajectories_format=trajectories_format,
            x_max=x_max,
            manifest={
                "threads": threads or numba.get_num_threads(),
                "chunk_size": chunk_size,
                "seconds": cmd.seconds(),
            },
        )
    if result.checkpoints is not None:
        result.checkpoints.clear()  # the results are written: the tasks' work is not needed
    if not quiet:
        print_run_table(cmd.console, result.summary_dict)
        if "comparisons" in result.summary_dict:
            print_comparisons(cmd.console, result.summary_dict["comparisons"])
        if "cea" in result.summary_dict:
            print_cea_table(
                cmd.console,
                result.summary_dict["cea"],
                {sid: s["label"] for sid, s in result.summary_dict["sequences"].items()},
            )
        print_validation_mape(cmd.console, result.summary_dict)
        cmd.console.print(f"results written to {cmd.out_dir}/")
    return result.summary_dict, cmd.out_dir


def run_calibration(
    path: str | Path,
    out: str | Path | None = None,
    *,
    threads=None,
    quiet=False,
    force: bool = False,
    console: Console | None = None,
    method: str | None = None,
) -> tuple[CalibrationResult, Path]:
    """``simseq calibrate``: solve the targets and write calibration.csv (+ the cache); with
    ``calibration.method: bayes`` (or ``method="bayes"``, which overrides the scenario's)
    sample the posterior and write posterior.csv, calibration.csv,
    calibration_summary.json and its figures."""
    cmd = _Command("calibrate", path, out, quiet=quiet, console=console, force=force, method=method)
    if cmd.study.bayes:
        return _bayes_calibration(cmd), cmd.out_dir
    with cmd.staged(manifest=None) as stage:
        cal = cmd.study.calibrate(threads=threads, say=cmd.say)
        rows = calibration_rows(cal)
        if rows:
            write_csv(stage.path / "calibration.csv", rows)
        else:
            (stage.path / "calibration.csv").write_text(
                "target_id,quantity,regimen,free,target,achieved,rel_error,method,solved_median,n_patients\n"
            )
        save_cached(stage.path, cal)
    if not quiet:
        print_calibration_table(cmd.console, rows)
        cmd.console.print(
            f"written {cmd.out_dir / 'calibration.csv'} and {cmd.out_dir / CACHE_FILE}"
        )
    return cal, cmd.out_dir


def _bayes_calibration(cmd: _Command) -> CalibrationResult:
    """The Bayesian branch of ``run_calibration``: every output staged, then moved in."""
    from simseq.calibration_plots import plot_marginals, plot_pairs, plot_predictive

    with cmd.staged(manifest=None) as stage:
        cal = cmd.study.calibrate(say=cmd.say)
        posterior = cmd.study.posterior
        write_csv(stage.path / "posterior.csv", posterior.sample_rows())
        write_csv(stage.path / "calibration.csv", posterior.target_rows())
        # with simseq's version and the scenario's identity, as calibration.json: it marks
        # the directory as simseq's results of this scenario
        write_json(
            stage.path / "calibration_summary.json",
            {**cmd.study.manifest_header(), **posterior.summary()},
        )
        plot_marginals(stage.path / "posterior_marginals.png", posterior)
        plot_pairs(stage.path / "posterior_pairs.png", posterior)
        plot_predictive(stage.path / "posterior_predictive.png", posterior)
    if not cmd.quiet:
        print_bayes_table(cmd.console, posterior)
        cmd.console.print(
            f"written posterior.csv, calibration.csv, calibration_summary.json and 3 figures "
            f"in {cmd.out_dir}"
        )
    return cal


def _analysis(
    name: str,
    path,
    compute,
    *,
    check=None,
    seed: int | None = None,
    threads: int | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    console: Console | None = None,
    distributed: dict | None = None,
    force: bool = False,
):
    """A PSA, DSA or sweep: (result, command session). The scenario is checked (economics,
    optional backends, ``check(study)``) before the directory is touched; calibration
    reuses the cache `simseq run` keeps beside psa/, dsa/ and sweep/; ``compute(study,
    seed, **how)`` runs the analysis."""
    check_optional_dependencies(backend=(distributed or {}).get("backend", "local"))
    cmd = _Command(name, path, out, quiet=quiet, console=console, force=force, subdir=name)
    cmd.study.need_economics()
    if check is not None:
        check(cmd.study)
    with cmd.staged() as stage:
        cmd.study.calibrate(threads=threads, say=cmd.say, cache_dir=cmd.out_dir.parent)
        result = compute(
            cmd.study,
            seed,
            threads=threads,
            distributed=distributed,
            checkpoints_root=stage.checkpoints,
            say=cmd.say,
        )
        result.write(stage, manifest={"seconds": cmd.seconds()})
    if cmd.study.checkpoints is not None:
        cmd.study.checkpoints.clear()  # the results are written: drop the distributed tasks'
    return result, cmd


def run_psa(
    path: str | Path,
    *,
    n_draws: int | None = None,
    n_patients: int | None = None,
    model_average: bool = False,
    **options,
) -> tuple[dict, Path]:
    """``simseq psa``: draw parameters, recalibrate per draw, simulate, summarise, write.
    ``options``: seed, threads, out, quiet, console, distributed, force."""

    def compute(study, seed, **how):
        analysis = study.averaged_psa if model_average else study.psa
        return analysis(n_draws, n_patients, seed, **how)

    result, cmd = _analysis("psa", path, compute, **options)
    if not cmd.quiet:
        print_psa_table(cmd.console, result.summary_dict)
        averaging = result.summary_dict.get("model_averaging")
        if averaging is not None:
            draws = ", ".join(f"{k} {n:,}" for k, n in averaging["draws"].items())
            wtp = result.summary_dict["willingness_to_pay"]
            at = averaging["evppi_structure"]["wtp"].index(wtp)
            cmd.console.print(
                f"model-averaged over the structures (draws: {draws}); EVPPI of the "
                f"structural choice at the WTP: {averaging['evppi_structure']['value'][at]:,.0f} "
                f"{result.summary_dict['currency']} per patient"
            )
        print_held_fixed(cmd.console, result.summary_dict["held_fixed"])
        cmd.console.print(f"PSA results written to {cmd.out_dir}/ ({cmd.seconds():.1f} s)")
    return result.summary_dict, cmd.out_dir


def run_structural(
    path: str | Path,
    *,
    n_patients: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    console: Console | None = None,
    force: bool = False,
):
    """``simseq structural``: the base case and each structural alternative, side by side
    (structural.csv). Returns the StructuralResult and the directory written."""
    cmd = _Command(
        "structural", path, out, quiet=quiet, console=console, force=force, subdir="structural"
    )
    with cmd.staged() as stage:
        result = cmd.study.structural(n_patients, seed, threads=threads, say=cmd.say)
        result.write(stage, manifest={"seconds": cmd.seconds()})
    if not quiet:
        print_structural_table(cmd.console, result.row_dicts)
        cmd.console.print(f"structural results written to {cmd.out_dir}/")
    return result, cmd.out_dir


def run_dsa(
    path: str | Path, *, n_patients: int = 100_000, sequence: str | None = None, **options
) -> tuple[dict, Path]:
    """``simseq dsa``: every uncertain input at its low and high value, the others at base,
    with common random numbers; tornado diagrams for NMB and median OS."""
    result, cmd = _analysis(
        "dsa",
        path,
        lambda study, seed, **how: study.dsa(n_patients, seed, sequence=sequence, **how),
        check=lambda study: study.focus_sequence(sequence),
        **options,
    )
    if not cmd.quiet:
        print_dsa_table(cmd.console, result.summary_dict)
        cmd.console.print(f"DSA results written to {cmd.out_dir}/")
    return result.summary_dict, cmd.out_dir


def run_sweep(
    path: str | Path, specs: list[str], *, n_patients: int = 100_000, **options
) -> tuple[list[dict], Path]:
    """``simseq sweep``: a grid over named parameters (common random numbers) to a tidy
    table. ``specs``: NAME=LO:HI:STEPS each."""
    grid = dict(parse_sweep(s) for s in specs)

    def check(study: Study) -> None:
        for name in grid:
            try:
                study.scalar_parameter(name)
            except ValueError as err:
                raise ValueError(f"--param {err}") from None

    result, cmd = _analysis(
        "sweep",
        path,
        lambda study, seed, **how: study.sweep(grid, n_patients, seed, **how),
        check=check,
        **options,
    )
    if not cmd.quiet:
        for name, paths in result.moved.items():
            cmd.console.print(
                f"sweep: {name} moves {len(paths)} input(s), which share its evidence: "
                + ", ".join(paths)
            )
        cmd.notes(cmd.study.warnings())
        cmd.console.print(
            f"sweep: {len(result.points)} points x {len(result.names)} sequences written to "
            f"{cmd.out_dir / 'sweep.csv'}"
        )
    return result.row_dicts, cmd.out_dir


def validate_file(path: str | Path):
    """Load, validate and resolve a scenario, and everything ``run`` checks before it
    simulates: the bound models (the calibration cohorts too) and the calibration itself,
    solved by the one calibrator (by quadrature where exact: milliseconds), so what
    validate accepts runs; each structural alternative parsed with its changes merged.
    Returns the resolution."""
    study = load(path)
    for name in study.scenario.structural_alternatives:
        alternative_scenario(study.scenario, name, study.path)
    base = study.table.base_row()
    study.model(base)
    if study.cohorts is not None:
        study.model_of(study.cohorts, base)
    study.calibrate()
    return study.resolved
