"""One scenario run end to end: load, calibrate (or reuse the cache), simulate, summarise, write.

Kept apart from the CLI so that tests, notebooks and the benchmarks call the
same path the ``simseq run`` command does.
"""

import time
from dataclasses import asdict
from pathlib import Path

import numba
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from simseq.calibrate import (
    CACHE_FILE,
    CalibrationResult,
    calibrate,
    input_hash,
    load_cached,
    save_cached,
)
from simseq.engine.codes import TALLY_OS_GIVEN_ENTRY
from simseq.evidence import EvidenceBase
from simseq.extras import check_optional_dependencies
from simseq.limits import MAX_PATIENTS, MAX_SEED
from simseq.manifest import manifest_header
from simseq.model import ModelArrays, compile_model, econ_range_problem
from simseq.outcomes import (
    Z95,
    econ_means,
    line_key,
    sequence_summary,
    summary_tallies,
    tally_curve,
)
from simseq.report import (
    plot_survival,
    print_calibration_table,
    print_cea_table,
    print_run_table,
    survival_rows,
    write_csv,
    write_json,
)
from simseq.resolve import Resolved, resolve, resolve_median, scenario_evidence
from simseq.results_dir import ScenarioIdentity, out_directory, results_writer
from simseq.scenario import Scenario, load_scenario, load_scenario_files
from simseq.simulator import COMPILE_NOTICE, DEFAULT_CHUNK, simulate, simulate_trajectories

MAX_TRAJECTORY_PATIENTS = 100_000
CALIBRATION_WARN = 0.01  # a target reproduced worse than this (relative) is flagged


def make_console(quiet: bool = False) -> Console:
    """A console wide enough for the results table even when output is piped to a file."""
    probe = Console()
    return Console(quiet=quiet, width=None if probe.is_terminal else 160)


def default_out(scenario: Scenario) -> Path:
    return Path("results") / scenario.name


def get_calibration(
    scenario: Scenario,
    evidence: EvidenceBase,
    path: str,
    out_dir: Path | None,
    *,
    threads=None,
    say=None,
) -> tuple[CalibrationResult, bool, str | None]:
    """Cached calibration in ``out_dir`` if intact and its inputs are unchanged, else a
    fresh one: (result, from_cache, note). A cache that fails verification is not used:
    the note says why, and the calibration is solved again. ``say`` gets progress notes."""
    expected = input_hash(scenario, evidence)
    cached, why_not = (None, None) if out_dir is None else load_cached(out_dir, expected)
    if cached is not None:
        return cached, True, None
    note = None if why_not is None else f"{why_not}: calibrated again"
    if note is not None and say is not None:
        say(f"[yellow]note:[/yellow] {note}")
    if say is not None and scenario.calibration is not None:
        say(f"calibrating {len(scenario.calibration.targets)} targets ...")
    log = (lambda msg: say(f"  {msg}")) if say is not None else None
    return calibrate(scenario, evidence, path, threads=threads, progress=log), False, note


def calibration_rows(result: CalibrationResult) -> list[dict]:
    return [asdict(t) for t in result.targets]


def resolved_warnings(resolved: Resolved) -> list[str]:
    """What every output must say about its inputs: transported evidence, renormalised
    mixes, illustrative (evidence-free) numbers."""
    warnings = [
        f"{t.sequence}: {t.regimen} at line {t.line} uses evidence measured after "
        f"{t.measured_after} ({', '.join(t.evidence_ids)}) but follows {t.used_after} here "
        f"(transported; hazard ratio {t.hazard_ratio:g})"
        for t in resolved.transports
    ]
    warnings += [
        f"{r.sequence}: line {r.line} mix renormalised to "
        + ", ".join(f"{k} {v:.1%}" for k, v in r.kept.items())
        + "; dropped for lack of evidence: "
        + ", ".join(f"{k} (n={v})" for k, v in r.dropped.items())
        for r in resolved.renormalised
    ]
    illustrative = [p.path for p in resolved.provenance if p.illustrative]
    if illustrative:
        warnings.append(
            f"ILLUSTRATIVE inputs (no evidence; set your own): {', '.join(illustrative)}"
        )
    by_origin: dict[str, list[str]] = {}
    for rid, origin in resolved.user_evidence.items():
        by_origin.setdefault(origin, []).append(rid)
    warnings += [
        f"user evidence (not simseq's packaged figures), from {origin}: {', '.join(ids)}"
        for origin, ids in by_origin.items()
    ]
    targets = resolved.scenario.calibration.targets if resolved.scenario.calibration else []
    warnings += [
        f"calibration target of {t.regimen} is an assumption, not evidence: {t.target.value:g} "
        f"months ({t.target.assumption})"
        for t in targets
        if t.target.value is not None
    ]
    return warnings


def build_summary(scenario: Scenario, resolved: Resolved, model, tallies, cal) -> dict:
    """The content of summary.json: deterministic for a given scenario, N and seed."""
    sim = scenario.simulation
    landmarks = tuple(sim.landmarks)
    sequences = {}
    for sid in model.seq_names:
        s = {"label": scenario.sequences[sid].label}
        s.update(sequence_summary(model, tallies, sid, resolved.horizon, landmarks))
        moved = [asdict(t) for t in resolved.transports if t.sequence == sid]
        s["transported"] = moved
        s["renormalised"] = [asdict(r) for r in resolved.renormalised if r.sequence == sid]
        sequences[sid] = s
    warnings = resolved_warnings(resolved)
    for t in cal.targets:
        if abs(t.rel_error) > CALIBRATION_WARN:
            warnings.append(
                f"calibration: {t.target_id} reproduced to {t.rel_error:+.1%} only (simulated "
                f"{t.simulated:.3g} vs {t.target:.3g} months; at N = {t.n_patients:,} the "
                "simulated median moves in steps): raise calibration.n_patients"
            )
    for sid in model.seq_names:
        for line_no in range(2, int(model.state_line.max()) + 1):
            for regimen, block in sequences[sid].get(line_key(line_no), {}).items():
                if block["fraction_started"] == 0:
                    warnings.append(
                        f"{sid}: no simulated patient started {regimen} at line {line_no} "
                        f"(N = {tallies.n_patients:,}): its outcomes are null"
                    )
    summary = {
        "scenario": scenario.name,
        "title": scenario.title,
        "n_patients": tallies.n_patients,
        "seed": sim.seed,
        "horizon": resolved.horizon,
        "landmarks": list(landmarks),
        "time_unit": "months",
        "intervals": "Monte Carlo 95% intervals (simulation noise at this N), "
        "not parameter uncertainty",
        "warnings": warnings,
        "sequences": sequences,
        "calibration": calibration_rows(cal),
        "provenance": [
            asdict(p) | {"value": None if p.value != p.value else p.value}
            for p in resolved.provenance
        ],
        "user_evidence": resolved.user_evidence,
    }
    if resolved.economics is not None:
        summary["cea"] = cea_summary(resolved, model, tallies)
    return summary


def cea_summary(resolved: Resolved, model, tallies) -> dict:
    """Per-sequence LYs, QALYs and costs (means with MC 95% intervals), the incremental
    analysis on discounted costs and QALYs, and net monetary benefit at the WTP."""
    from simseq import econ  # pandas-backed; only needed with economics

    inputs = resolved.econ_inputs
    wtp = inputs["willingness_to_pay"]
    per_seq = {}
    for q, sid in enumerate(model.seq_names):
        means = econ_means(tallies.econ[q], tallies.n_patients)
        per_seq[sid] = {
            name: {"mean": round(m, 6), "ci95": [round(m - Z95 * se, 6), round(m + Z95 * se, 6)]}
            for name, (m, se) in means.items()
        }
    names = list(model.seq_names)
    costs = [per_seq[s]["costs_discounted"]["mean"] for s in names]
    qalys = [per_seq[s]["qalys_discounted"]["mean"] for s in names]
    table = econ.icer_table(names, costs, qalys)
    rows = [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in table.to_dict(orient="records")
    ]
    ref = names.index(inputs["reference"])
    versus = {}
    for k, sid in enumerate(names):
        d_cost, d_qaly = costs[k] - costs[ref], qalys[k] - qalys[ref]
        versus[sid] = {
            "inc_costs": round(d_cost, 6),
            "inc_qalys": round(d_qaly, 6),
            "icer": round(d_cost / d_qaly, 6) if d_qaly > 0 else None,
        }
    return {
        "currency": inputs["currency"],
        "price_year": inputs["price_year"],
        "discount_costs": inputs["discount_costs"],
        "discount_qalys": inputs["discount_qalys"],
        "willingness_to_pay": wtp,
        "reference": inputs["reference"],
        "sequences": per_seq,
        "icer_table": rows,
        "versus_reference": versus,
        "nmb": {s: round(wtp * qalys[k] - costs[k], 6) for k, s in enumerate(names)},
        "inputs": inputs,
    }


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
    quiet: bool = False,
    console: Console | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    force: bool = False,
    draw=None,
) -> tuple[dict, Path]:
    """Run a scenario file and write its results directory. Returns (summary, out_dir).

    ``backend="dask"`` (or ``resume``) splits the patients into tasks of ``chunk_size``
    (see ``simseq.backend``), checkpointed in the results directory's .checkpoints/; the
    numbers are bitwise those of a local run. ``force`` replaces the results of another
    scenario file in ``out`` (see ``simseq.results_dir``). ``draw`` draws survival.png
    (see ``plot_survival``)."""
    console = console or make_console(quiet)
    started = time.perf_counter()
    check_optional_dependencies(
        trajectories_format=trajectories_format if trajectories else "csv", backend=backend
    )
    if trajectories > MAX_TRAJECTORY_PATIENTS:
        raise ValueError(
            f"--trajectories {trajectories}: the event log is for small runs, at most "
            f"{MAX_TRAJECTORY_PATIENTS:,} patients"
        )
    path = str(path)
    file_scenario, inputs = load_scenario_files(path)
    sim_update = {}
    if n_patients is not None:
        if not 1 <= n_patients <= MAX_PATIENTS:
            raise ValueError(f"n_patients {n_patients}: allowed 1 to {MAX_PATIENTS:,}")
        sim_update["n_patients"] = n_patients
    if seed is not None:
        if not 0 <= seed < MAX_SEED:
            raise ValueError(f"seed {seed}: allowed 0 to 2^63 - 1")
        sim_update["seed"] = seed
    out_dir = out_directory(out, default_out(file_scenario))
    identity = ScenarioIdentity.of(path)
    say = None if quiet else console.print
    with results_writer(out_dir, "run", scenario=identity, force=force, say=say) as stage:
        evidence = scenario_evidence(file_scenario, path)
        # calibration depends on the scenario file only, not on --patients/--seed overrides
        cal, cached, cal_note = get_calibration(
            file_scenario,
            evidence,
            path,
            out_dir,
            threads=threads,
            say=None if quiet else console.print,
        )
        scenario = file_scenario.model_copy(
            update={"simulation": file_scenario.simulation.model_copy(update=sim_update)}
        )
        resolved = resolve(scenario, evidence, cal.values, path)
        model = model_of(resolved, path)
        sim = scenario.simulation
        distributed = backend != "local" or resume
        tallies, checkpoints = _simulate_run(
            model,
            sim,
            resolved.horizon,
            console,
            quiet,
            threads=threads,
            chunk_size=chunk_size,
            distributed=dict(backend=backend, scheduler=scheduler, workers=workers, resume=resume)
            if distributed
            else None,
            checkpoints_root=stage.checkpoints,
        )
        summary = build_summary(scenario, resolved, model, tallies, cal)
        curves = {
            sid: tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, [int(model.seq_start_state[q])])
            for q, sid in enumerate(model.seq_names)
        }
        tmp = stage.path
        write_json(tmp / "summary.json", summary)
        write_csv(tmp / "survival.csv", survival_rows(curves))
        plot_survival(
            tmp / "survival.png",
            curves,
            {sid: scenario.sequences[sid].label for sid in curves},
            f"{scenario.title}\nN = {sim.n_patients:,} simulated patients per sequence",
            {t.sequence for t in resolved.transports},
            draw=draw,
        )
        save_cached(tmp, cal)
        if cal.targets:
            write_csv(tmp / "calibration.csv", calibration_rows(cal))
        if trajectories:
            log = simulate_trajectories(model, trajectories, sim.seed, horizon=resolved.horizon)
            if trajectories_format == "parquet":
                log.to_parquet(tmp / "trajectories.parquet", index=False)
            else:
                log.to_csv(tmp / "trajectories.csv", index=False)
        stage.write_manifest(
            {
                **manifest_header(identity, inputs),
                "evidence_records": len(evidence),
                "seed": sim.seed,
                "n_patients": sim.n_patients,
                "threads": threads or numba.get_num_threads(),
                "chunk_size": chunk_size,
                "checkpointed_tasks_reused": None if checkpoints is None else checkpoints.reused,
                "calibration": {
                    "input_hash": cal.input_hash,
                    "from_cache": cached,
                    "note": cal_note,
                    "values": cal.values,
                    "n_patients": cal.n_patients,
                    "seed": cal.seed,
                },
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
    if checkpoints is not None:
        checkpoints.clear()  # the results are written: the tasks' partial work is not needed
    if not quiet:
        print_run_table(console, summary)
        if "cea" in summary:
            print_cea_table(console, summary["cea"])
        console.print(f"results written to {out_dir}/")
    return summary, out_dir


def _simulate_run(
    model, sim, horizon, console, quiet, *, threads, chunk_size, distributed, checkpoints_root
):
    """The tallies of a run and its task checkpoints (None when the run is not split into
    tasks): here in one call, or as patient-range tasks on a backend (``distributed``:
    backend, scheduler, workers, resume)."""
    progress = Progress(
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=True,
    )
    with progress:
        bar = progress.add_task("patients", total=sim.n_patients)
        if distributed is None:
            tallies = simulate(
                model,
                sim.n_patients,
                sim.seed,
                horizon=horizon,
                bin_width=sim.bin_width,
                threads=threads,
                chunk_size=chunk_size,
                progress=lambda k: progress.advance(bar, k),
                tallies=summary_tallies(model),
                on_compile=None if quiet else lambda: console.print(COMPILE_NOTICE),
            )
            return tallies, None
        from simseq.backend import run_key, simulate_tasks, task_session

        key = run_key(
            command="run",
            model=model.digest(),
            n=sim.n_patients,
            seed=sim.seed,
            horizon=horizon,
            bin_width=sim.bin_width,
            task=chunk_size,
        )
        with task_session(
            key,
            checkpoints_root,
            threads=threads,
            say=None if quiet else console.print,
            **distributed,
        ) as (engine, checkpoints):
            tallies = simulate_tasks(
                engine,
                model,
                sim.n_patients,
                sim.seed,
                horizon=horizon,
                bin_width=sim.bin_width,
                task_size=chunk_size,
                tallies=summary_tallies(model),
                checkpoints=checkpoints,
                progress=lambda t: progress.advance(bar, t.hi - t.lo),
            )
        return tallies, checkpoints


def run_calibration(
    path: str | Path,
    out: str | Path | None = None,
    *,
    threads=None,
    quiet=False,
    force: bool = False,
    console: Console | None = None,
) -> tuple[CalibrationResult, Path]:
    """``simseq calibrate``: solve the targets and write calibration.csv (+ the cache) to out."""
    console = console or make_console(quiet)
    path = str(path)
    scenario = load_scenario(path)
    out_dir = out_directory(out, default_out(scenario))
    identity = ScenarioIdentity.of(path)
    say = None if quiet else console.print
    with results_writer(
        out_dir, "calibrate", scenario=identity, force=force, manifest=None, say=say
    ) as stage:
        cal = calibrate(
            scenario,
            scenario_evidence(scenario, path),
            path,
            threads=threads,
            progress=None if quiet else (lambda m: console.print(f"  {m}")),
        )
        rows = calibration_rows(cal)
        if rows:
            write_csv(stage.path / "calibration.csv", rows)
        else:
            (stage.path / "calibration.csv").write_text(
                "target_id,quantity,target,simulated,rel_error\n"
            )
        save_cached(stage.path, cal)
    if not quiet:
        print_calibration_table(console, rows)
        console.print(f"written {out_dir / 'calibration.csv'} and {out_dir / CACHE_FILE}")
    return cal, out_dir


def model_of(resolved: Resolved, path: str) -> ModelArrays:
    """The compiled model of a resolution, or a located ``ScenarioError`` for what the
    scenario checks cannot see alone: a model the compiler refuses, or economics whose
    per-patient totals could exceed what the engine sums exactly."""
    from simseq.scenario import ScenarioError

    try:
        model = compile_model(resolved.sequences, resolved.covariates, resolved.economics)
    except ValueError as err:  # a model the scenario checks did not foresee
        raise ScenarioError(path, [("(model)", None, str(err))]) from None
    problem = econ_range_problem(model, resolved.horizon)
    if problem is not None:
        raise ScenarioError(path, [("economics", None, problem)])
    return model


def validate_file(path: str | Path) -> Resolved:
    """Load, validate and resolve a scenario, and everything ``run`` checks before it
    simulates: the calibration cohorts, the compiled models and, where quadrature can tell
    (``simseq.psa.bracket_problems``), that each calibration target is reachable within
    its bracket. Calibrated medians are stubbed at the geometric mean of their bracket."""
    from simseq.psa import bracket_problems
    from simseq.scenario import ScenarioError

    path = str(path)
    scenario = load_scenario(path)
    evidence = scenario_evidence(scenario, path)
    targets = scenario.calibration.targets if scenario.calibration else []
    stub = {}
    for tgt in targets:
        part = tgt.free.split(".")[0]
        lo, hi = getattr(scenario.regimens[tgt.regimen], part).median.calibrate.bounds
        stub[f"{tgt.regimen}.{part}"] = (lo * hi) ** 0.5
    for i, t in enumerate(targets):
        resolve_median(scenario, evidence, t.target, f"calibration.targets.{i}.target", path)
    resolved = resolve(scenario, evidence, stub, path)
    cohorts = [resolve(scenario, evidence, stub, path, cohort_regimen=t.regimen) for t in targets]
    for res in [resolved, *cohorts]:
        model_of(res, path)
    problems = bracket_problems(scenario, evidence, stub, path)
    if problems:
        raise ScenarioError(path, problems)
    return resolved
