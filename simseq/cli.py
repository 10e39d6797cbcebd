"""Command-line interface: ``simseq fit | validate | calibrate | run | psa | dsa | sweep |
report | bench | cache``."""

import atexit
import functools
import os
import sys

import click

from simseq import __version__
from simseq.limits import MAX_DRAWS, MAX_PATIENTS, MAX_SEED


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="simseq")
def main() -> None:
    """simseq: treatment-sequence simulator for advanced HCC."""


def console_main() -> None:
    """The ``simseq`` console command (and ``python -m simseq``): ``main``, then leave
    with ``os._exit`` once the exit handlers have run and stdout/stderr are flushed.

    The interpreter's own teardown (freeing every module and numba's LLVM state) took
    0.35-0.5 s after a run, a third of a small one. Nothing is lost by skipping it:
    each command has written, closed and renamed its files into place before it
    returns. Only the real entry point does this; tests call ``main`` in-process."""
    try:
        main()  # standalone mode: ends in SystemExit, whatever happens
    except SystemExit as done:
        code = done.code
    else:  # pragma: no cover - click always raises SystemExit
        code = 0
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what SystemExit("message") prints, with status 1
        code = 1
    atexit._run_exitfuncs()  # e.g. multiprocessing's and Dask's clean-ups
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. stdout piped into `head`, which has exited: Python's way
        raise SystemExit(code) from None
    os._exit(code or 0)


# --------------------------------------------------------------------------- #
# simseq fit
# --------------------------------------------------------------------------- #


class _InputError(click.ClickException):
    """A bad argument: one line on stderr, exit status 2 (no usage block, no traceback)."""

    exit_code = 2


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _InputError(f"{what}: {text!r} is not a number") from None


def _pair(text: str, option: str, example: str) -> tuple[float, float]:
    left, sep, right = text.partition(":")
    if not sep or not left or not right:
        raise _InputError(f"malformed {option} {text!r}: expected two numbers as in {example}")
    return _number(left, option), _number(right, option)


@main.command("fit")
@click.argument("family")
@click.option("--median", type=float, help="Median time (months): the point (M, 0.5).")
@click.option(
    "--landmark",
    "landmarks",
    multiple=True,
    metavar="T:S",
    help="Survival S at time T months, e.g. 12:0.45. Repeatable.",
)
@click.option("--quartiles", metavar="Q1:Q3", help="Times (months) where S = 0.75 and 0.25.")
@click.option("--shape", type=float, help="Fix the family's parameter named 'shape'.")
@click.option(
    "--fix",
    "fixes",
    multiple=True,
    metavar="NAME=VALUE",
    help="Fix any parameter by its flexsurv name, e.g. sdlog=0.9. Repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the fit as JSON.")
def fit_command(family, median, landmarks, quartiles, shape, fixes, as_json) -> None:
    """Fit parametric FAMILY to published summaries (median, landmarks, quartiles).

    FAMILY is one of exponential, weibull, llogis, lnorm, gompertz, gamma, gengamma.
    Least squares run on the log(-log S) scale; an under-identified request is
    refused with what to supply instead.
    """
    import json

    from simseq.fit import FitError, fit_summaries

    fixed: dict[str, float] = {}
    for text in fixes:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise _InputError(f"malformed --fix {text!r}: expected NAME=VALUE, e.g. sdlog=0.9")
        if name.strip() in fixed:
            raise _InputError(f"--fix {name.strip()} given twice")
        fixed[name.strip()] = _number(value, f"--fix {name.strip()}")
    if shape is not None:
        if "shape" in fixed:
            raise _InputError("shape given both by --shape and --fix shape=...: use one")
        fixed["shape"] = shape
    try:
        result = fit_summaries(
            family,
            median=median,
            landmarks=[_pair(text, "--landmark", "12:0.45") for text in landmarks],
            quartiles=None if quartiles is None else _pair(quartiles, "--quartiles", "4.2:18"),
            fixed=fixed,
        )
    except FitError as err:
        raise _InputError(str(err)) from None
    click.echo(json.dumps(result.to_json_dict()) if as_json else result.to_text())


# --------------------------------------------------------------------------- #
# simseq validate | calibrate | run
# --------------------------------------------------------------------------- #


def _scenario_errors(func):
    """Turn scenario problems into a clean non-zero exit and Ctrl-C into exit 130."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo("interrupted: no results were written", err=True)
            raise SystemExit(130) from None
        except Exception as err:
            # imported only now: `run` must start before the heavy modules load
            from simseq.backend import BackendFailed, BackendUnavailable
            from simseq.extras import MissingExtra
            from simseq.results_dir import ResultsError
            from simseq.scenario import ScenarioError

            if isinstance(err, ScenarioError):
                click.echo(str(err), err=True)
                raise SystemExit(2) from None
            # not available here, or not to be written: before any work was done
            if isinstance(err, BackendUnavailable | MissingExtra | ResultsError):
                click.echo(f"error: {err}", err=True)
                raise SystemExit(2) from None
            if isinstance(err, BackendFailed):
                click.echo(f"error: {err}", err=True)
                raise SystemExit(1) from None
            if isinstance(err, OSError) and err.strerror:  # e.g. disk full while writing
                where = f" {err.filename}" if err.filename else ""
                click.echo(f"error: cannot write{where}: {err.strerror}", err=True)
                raise SystemExit(1) from None
            raise

    return wrapper


_threads = click.option(
    "--threads", type=click.IntRange(min=1), help="Worker threads (results do not depend on it)."
)
_quiet = click.option("--quiet", is_flag=True, help="No progress bar or tables.")
_seed = click.option(
    "--seed", type=click.IntRange(min=0, max=MAX_SEED - 1), help="Random seed, in [0, 2^63)."
)


def _distributed(func=None, *, tasks_of_draws: bool = False):
    """Add --backend/--scheduler/--workers/--resume (and, for draw-based commands,
    --task-draws/--task-patients); the command receives them as one ``distributed`` dict."""
    if func is None:
        return functools.partial(_distributed, tasks_of_draws=tasks_of_draws)

    @functools.wraps(func)
    def wrapper(
        *args, backend, scheduler, workers, resume, task_draws=None, task_patients=None, **kwargs
    ):
        kwargs["distributed"] = {
            "backend": "dask" if scheduler or workers else backend,  # either implies dask
            "scheduler": scheduler,
            "workers": workers,
            "resume": resume,
            "task_draws": task_draws,
            "task_patients": task_patients,
        }
        return func(*args, **kwargs)

    options = [
        click.option(
            "--backend",
            type=click.Choice(["local", "dask"]),
            default="local",
            show_default=True,
            help="Where tasks run: this process, or Dask.",
        ),
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            help="Dask scheduler of an existing cluster, e.g. tcp://host:8786.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            help="Start a local Dask cluster with N worker processes.",
        ),
        click.option(
            "--resume", is_flag=True, help="Reuse the checkpointed tasks of an interrupted run."
        ),
    ]
    if tasks_of_draws:
        options += [
            click.option(
                "--task-draws",
                type=click.IntRange(min=1),
                help="Draws per task with --backend dask or --resume "
                "[about 2 million trajectories].",
            ),
            click.option(
                "--task-patients",
                type=click.IntRange(min=1),
                help="Patients per task (split each draw's patients too) [all].",
            ),
        ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


_out = click.option(
    "--out", type=click.Path(file_okay=False), help="Results directory [results/<scenario name>]."
)
_force = click.option(
    "--force",
    is_flag=True,
    help="Replace results that another scenario file wrote in the results directory.",
)


_report = click.option(
    "--report",
    "with_report",
    is_flag=True,
    help="Also write report.html and results.xlsx in the scenario's results directory.",
)


def _then_report(out_dir) -> None:
    """After run/psa/dsa with --report: the report of the scenario's results directory."""
    from simseq.report_html import write_report

    directory = out_dir if (out_dir / "summary.json").is_file() else out_dir.parent
    try:
        paths = write_report(directory)
    except FileNotFoundError as err:  # e.g. a psa --report before any run
        raise _InputError(f"results written, but no report: {err}") from None
    for path in paths:
        click.echo(f"written {path}")


def _analysis_options(func):
    """--seed, --threads, --out, --force, --quiet and the task options every analysis
    (psa, dsa, sweep) takes; the command passes them on as ``options``."""
    for option in reversed(
        [_seed, _threads, _out, _force, _quiet, _distributed(tasks_of_draws=True), _scenario_errors]
    ):
        func = option(func)
    return func


@main.command("validate")
@click.argument("scenario", type=click.Path(dir_okay=False))
@_scenario_errors
def validate_cmd(scenario: str) -> None:
    """Check a scenario file: schema, evidence ids, probabilities, distributions."""
    from simseq.commands import validate_file

    resolved = validate_file(scenario)
    kinds = [p.kind for p in resolved.provenance]
    cal = resolved.scenario.calibration
    click.echo(
        f"{scenario}: valid: {len(resolved.sequences)} sequences, "
        f"{len(resolved.scenario.regimens)} regimens; numbers from evidence "
        f"{kinds.count('evidence') + kinds.count('pool')}, "
        f"assumptions {kinds.count('assumption')}, calibrated {len(cal.targets) if cal else 0}"
    )
    for t in resolved.transports:
        click.echo(
            f"  transported: {t.sequence} line {t.line} {t.regimen} (evidence measured "
            f"after {t.measured_after}, used after {t.used_after})"
        )
    for b in resolved.borrowed:
        click.echo(f"  borrowed: {b.path} ({b.evidence_id}, measured on {b.measured_on})")
    for r in resolved.renormalised:
        click.echo(f"  renormalised: {r.sequence} line {r.line} drops {sorted(r.dropped)}")


@main.command("calibrate")
@click.argument("scenario", type=click.Path(dir_okay=False))
@_out
@_force
@_threads
@_quiet
@click.option(
    "--method",
    type=click.Choice(["point", "bayes"]),
    help="Override the scenario's calibration.method: point (solve each free median) or "
    "bayes (IMIS posterior; writes posterior.csv and figures too).",
)
@_scenario_errors
def calibrate_cmd(
    scenario: str,
    out: str | None,
    force: bool,
    threads: int | None,
    quiet: bool,
    method: str | None,
) -> None:
    """Solve the scenario's unreported parameters, or sample their posterior
    (calibration.method: bayes); write OUT/calibration.csv."""
    from simseq.commands import run_calibration

    run_calibration(scenario, out, threads=threads, quiet=quiet, force=force, method=method)


@main.command("run")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option(
    "--patients",
    type=click.IntRange(min=1, max=MAX_PATIENTS),
    help=f"Patients per sequence (at most {MAX_PATIENTS:.0e}).",
)
@_seed
@_threads
@_out
@_force
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Patients per engine call (results do not depend on it).",
)
@click.option(
    "--trajectories",
    type=click.IntRange(min=0),
    default=0,
    help="Also write the event log of the first N patients (small runs).",
)
@click.option(
    "--trajectories-format", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@click.option(
    "--outputs",
    # scenario.RunOutputs' values, spelt out: importing it would load pydantic before the
    # plot process forks
    type=click.Choice(["full", "sequence_os"]),
    help="What to tally: every line's outcomes and curves (full), or OS from each "
    "sequence's start alone (sequence_os) [the scenario's simulation.outputs, default full].",
)
@click.option(
    "--xmax",
    "x_max",
    type=click.FloatRange(min=0, min_open=True),
    help="Months shown in survival.png [where every curve is at or below 1%].",
)
@_report
@_quiet
@_distributed
@_scenario_errors
def run_cmd(
    scenario,
    patients,
    seed,
    threads,
    out,
    force,
    chunk_size,
    trajectories,
    trajectories_format,
    outputs,
    x_max,
    with_report,
    quiet,
    distributed,
) -> None:
    """Simulate every sequence of SCENARIO and write summary, curves, plot and manifest."""
    from simseq.extras import check_optional_dependencies
    from simseq.forked_plot import ForkedPlotter

    # first: nothing heavy is loaded yet
    check_optional_dependencies(
        trajectories_format=trajectories_format if trajectories else "csv",
        backend=distributed["backend"],
    )

    # first, while nothing heavy is loaded: matplotlib's import then overlaps the engine's
    with ForkedPlotter() as plotter:
        from simseq.commands import run_scenario

        try:
            _, out_dir = run_scenario(
                scenario,
                n_patients=patients,
                seed=seed,
                threads=threads,
                out=out,
                chunk_size=chunk_size,
                trajectories=trajectories,
                trajectories_format=trajectories_format,
                outputs=outputs,
                quiet=quiet,
                backend=distributed["backend"],
                scheduler=distributed["scheduler"],
                workers=distributed["workers"],
                resume=distributed["resume"],
                force=force,
                x_max=x_max,
                draw=plotter.draw,
            )
        except ValueError as err:
            from simseq.scenario import ScenarioError

            if isinstance(err, ScenarioError):
                raise
            raise _InputError(str(err)) from None
    if with_report:
        _then_report(out_dir)


# --------------------------------------------------------------------------- #
# simseq bench
# --------------------------------------------------------------------------- #


@main.command("bench")
@click.option("--json", "as_json", is_flag=True, help="Print rows and machine info as JSON.")
@click.option("--quick", is_flag=True, help="N up to 1e6 and 3 rounds (about a minute).")
@click.option(
    "--large",
    is_flag=True,
    help="Also the whole-process targets at 2e8 and 5e8 patients and peak RSS at 1e9 "
    "(about 20 minutes more on 2 cores).",
)
def bench_cmd(as_json: bool, quick: bool, large: bool) -> None:
    """Measure throughput on REF-HCC against a NumPy baseline and check the targets.

    Reports and never fails: exit status 0 even when a target is missed (the
    misses are listed). Progress goes to stderr, so --json output can be piped.
    """
    import json

    from simseq import bench

    rows = bench.run_headline(
        quick=quick, large=large, progress=lambda m: click.echo(f"  {m} ...", err=True)
    )
    missed = bench.missed_targets(rows)
    not_run = bench.targets_not_run(rows)
    if as_json:
        out = {"machine": bench.machine_info(), "quick": quick, "large": large, "rows": rows}
        out.update(missed=missed, not_run=not_run)
        click.echo(json.dumps(out, indent=2))
    else:
        from simseq.commands import make_console

        title = "simseq bench" + (" --quick" if quick else "") + (" --large" if large else "")
        make_console(width=bench.TABLE_WIDTH).print(bench.rows_table(rows, title))
    for line in missed:
        click.echo(f"target missed: {line}", err=as_json)
    for line in not_run:
        click.echo(f"target {line}", err=as_json)
    if not missed:
        click.echo("every target run was met" if not_run else "all targets met", err=as_json)


@main.command("psa")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option(
    "--draws",
    type=click.IntRange(min=2, max=MAX_DRAWS),
    help=f"Parameter draws [psa.n_draws] (at most {MAX_DRAWS:,}).",
)
@click.option(
    "--patients",
    type=click.IntRange(min=100, max=MAX_PATIENTS),
    help="Patients per draw [psa.n_patients].",
)
@click.option(
    "--model-average",
    is_flag=True,
    help="Average over the structural alternatives with psa.model_averaging's weights.",
)
@_report
@_analysis_options
def psa_cmd(scenario, draws, patients, model_average, with_report, **options) -> None:
    """Probabilistic sensitivity analysis: costs, QALYs, ICERs, CEAC and EVPI across draws."""
    if draws is not None and patients is not None and draws * patients > MAX_PATIENTS:
        raise _InputError(
            f"--draws {draws} x --patients {patients} = {draws * patients:,} patients per "
            f"sequence; at most {MAX_PATIENTS:,} (already hours at ~25 million a second)"
        )
    from simseq.commands import run_psa

    _, out_dir = run_psa(
        scenario, n_draws=draws, n_patients=patients, model_average=model_average, **options
    )
    if with_report:
        _then_report(out_dir)


@main.command("dsa")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option(
    "--patients",
    type=click.IntRange(min=100, max=MAX_PATIENTS),
    default=100_000,
    show_default=True,
    help="Patients per case (common random numbers across cases).",
)
@click.option("--sequence", help="Sequence the tornado is drawn for [first non-reference].")
@_report
@_analysis_options
def dsa_cmd(scenario, patients, sequence, with_report, **options) -> None:
    """One-way sensitivity analysis: tornado diagrams for incremental NMB and median OS."""
    from simseq.commands import run_dsa

    _, out_dir = run_dsa(scenario, n_patients=patients, sequence=sequence, **options)
    if with_report:
        _then_report(out_dir)


@main.command("sweep")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option(
    "--param",
    "params",
    multiple=True,
    required=True,
    metavar="NAME=LO:HI:STEPS",
    help="Parameter (key or scenario key path) and its grid. Repeatable.",
)
@click.option(
    "--patients",
    type=click.IntRange(min=100, max=MAX_PATIENTS),
    default=100_000,
    show_default=True,
    help="Patients per grid point (common random numbers across points).",
)
@_analysis_options
def sweep_cmd(scenario, params, patients, **options) -> None:
    """Scenario sweep: a grid over named parameters to a tidy table (sweep.csv)."""
    from simseq.commands import run_sweep
    from simseq.scenario import ScenarioError

    try:
        run_sweep(scenario, list(params), n_patients=patients, **options)
    except ValueError as err:
        if isinstance(err, ScenarioError):
            raise
        raise _InputError(str(err)) from None


@main.command("structural")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option(
    "--patients",
    type=click.IntRange(min=100, max=MAX_PATIENTS),
    default=None,
    help="Patients per sequence and alternative [simulation.n_patients].",
)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Random seed [scenario's].")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads [all cores].")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--force", is_flag=True, help="Replace results another scenario wrote there.")
def structural_cmd(scenario, patients, **options) -> None:
    """Structural uncertainty: the base case and each of the scenario's
    structural_alternatives (another family for a clock, ...), side by side."""
    from simseq.commands import run_structural

    run_structural(scenario, n_patients=patients, **options)


@main.command("report")
@click.argument("results_dir", type=click.Path(file_okay=False, exists=True))
@_scenario_errors
def report_cmd(results_dir: str) -> None:
    """Write RESULTS_DIR/report.html (self-contained) and results.xlsx from what run, psa
    and dsa wrote there (psa/ and dsa/ are optional)."""
    from simseq.report_html import write_report

    try:
        paths = write_report(results_dir)
    except FileNotFoundError as err:
        raise _InputError(str(err)) from None
    for path in paths:
        click.echo(f"written {path}")


@main.command("cache")
@click.option("--clear", is_flag=True, help="Delete the compiled kernels (recompiled when needed).")
def cache_cmd(clear: bool) -> None:
    """Show (or clear) where numba keeps simseq's compiled kernels.

    $NUMBA_CACHE_DIR if set, else $XDG_CACHE_HOME/simseq/numba (~/.cache/simseq/numba);
    never inside the installed package."""
    import os
    import shutil

    from simseq import NUMBA_CACHE_DIR_FROM_USER

    path = os.environ["NUMBA_CACHE_DIR"]  # set when simseq was imported
    if not clear:
        click.echo(path)
    elif NUMBA_CACHE_DIR_FROM_USER:
        raise _InputError(
            f"NUMBA_CACHE_DIR is set ({path}) and may hold other programs' kernels: "
            "clear it yourself"
        )
    else:
        shutil.rmtree(path, ignore_errors=True)
        click.echo(f"cleared {path}")
