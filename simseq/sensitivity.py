"""Sensitivity analyses end to end: probabilistic (PSA), one-way (DSA, tornado) and sweeps.

All three evaluate the model at many parameter sets ("cases"): each case is a
mapping of parameter keys (``Provenance.key``) to values, resolved into a model
with its calibrated medians re-solved by quadrature (``simseq.psa``), stacked
along the engine's draw axis and simulated in one parallel call. PSA cases use
their own random streams; DSA cases and sweep points share one set (common
random numbers), so differences between them are not Monte Carlo noise.
"""

import itertools
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from simseq.engine.codes import N_BATCHES, N_ECON
from simseq.extras import check_optional_dependencies
from simseq.limits import MAX_PSA_BYTES
from simseq.manifest import manifest_header
from simseq.model import BindError, bind, econ_range_problem
from simseq.outcomes import econ_means, km_curve
from simseq.params import Parameter
from simseq.pipeline import (
    default_out,
    get_calibration,
    make_console,
    resolved_warnings,
)
from simseq.psa import solve_by_quadrature
from simseq.report import write_csv, write_json
from simseq.resolve import Resolved, resolve, scenario_evidence
from simseq.results_dir import ScenarioIdentity, Staging, out_directory, results_writer
from simseq.scenario import PSASettings, Scenario, ScenarioError, load_scenario_files
from simseq.simulator import n_bins_for, simulate_draws

PSA_BIN_WIDTH = 0.1  # months: per-case OS histograms (medians to ~0.01 month)
MC_NOISE_WARNING = 0.10  # warn when patient-level noise is >10% of an output's PSA variance
OUTPUTS = ("lys", "qalys", "costs", "os_median")  # per case and sequence; discounted LYs etc.


def _setting(q) -> float | None:
    """A psa: setting's number (explicit values with an assumption only)."""
    if q is None:
        return None
    if q.value is None:
        raise ScenarioError("<scenario>", [("psa", q, "psa settings take value + assumption")])
    return float(q.value)


class _Study:
    """What every sensitivity analysis starts from: scenario, evidence, base calibration,
    base resolution and the uncertain parameters; and the results directory it writes.

    Use as a context manager: entering checks and locks the results directory (before
    any work), then calibrates and resolves; leaving commits the staged outputs."""

    def __init__(
        self,
        path,
        command: str,
        out,
        threads,
        quiet,
        console,
        distributed: dict | None = None,
        force: bool = False,
    ):
        self.distributed = distributed or {}
        """backend, scheduler, workers, resume, task_draws (see ``simseq.backend``)."""
        check_optional_dependencies(backend=self.distributed.get("backend", "local"))
        self.command = command
        self.path = str(path)
        self.console = console or make_console(quiet)
        self.quiet = quiet
        self.threads = threads
        self.force = force
        self.scenario: Scenario
        self.scenario, self.inputs = load_scenario_files(self.path)
        sc = self.scenario
        if sc.economics is None:
            raise ScenarioError(
                self.path, [("economics", None, "sensitivity analyses need an economics: section")]
            )
        self.settings = sc.psa or PSASettings()
        self.out_dir = out_directory(out, default_out(sc) / command)
        self.identity = ScenarioIdentity.of(self.path)
        self.checkpoints = None

    def __enter__(self) -> "_Study":
        say = None if self.quiet else self.console.print
        self._writer = results_writer(
            self.out_dir, self.command, scenario=self.identity, force=self.force, say=say
        )
        self.stage: Staging = self._writer.__enter__()
        try:
            self._prepare()
        except BaseException:
            self._writer.__exit__(*sys.exc_info())  # nothing staged: leave the directory
            raise
        return self

    def __exit__(self, *exc) -> bool | None:
        committed = self._writer.__exit__(*exc)
        if exc[0] is None and self.checkpoints is not None:
            self.checkpoints.clear()  # the results are written: drop the distributed tasks'
        return committed

    def _prepare(self) -> None:
        sc = self.scenario
        self.evidence = scenario_evidence(sc, self.path)
        self.cal, _, self.cal_note = get_calibration(
            sc,
            self.evidence,
            self.path,
            self.out_dir.parent,  # where `simseq run` keeps it, beside psa/, dsa/, sweep/
            threads=self.threads,
            say=None if self.quiet else self.console.print,
        )
        self.base: Resolved = resolve(sc, self.evidence, self.cal.values, self.path)
        self.table = self.base.table
        self.table.assume_uncertainty(
            _setting(self.settings.cost_se_fraction),
            _setting(self.settings.utility_se_fraction),
            _setting(self.settings.median_se_log),
        )
        self.params: list[Parameter] = self.table.uncertain
        self.fixed = [
            {
                "name": p.name,
                "value": p.base[0] if len(p.base) == 1 else list(p.base),
                "because": p.fixed_because,
            }
            for p in self.table.held_fixed
        ]
        self.structure = self.base.structure()

    def calibrated_rows(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` with each calibrated median re-solved for the row's inputs, by
        quadrature (``simseq.psa.solve_by_quadrature``)."""
        columns = self.base.calibrated_columns
        if not columns:
            return rows
        rows = rows.copy()
        for i, row in enumerate(rows):
            values = solve_by_quadrature(
                self.scenario,
                self.evidence,
                self.cal.values,
                self.table.values_of(row),
                self.base.horizon,
                self.path,
            )
            for key, col in columns.items():
                rows[i, col] = values[key]
        return rows

    def run_cases(
        self, cases: np.ndarray, n_patients: int, seed: int, *, common_streams: bool, label: str
    ) -> tuple[list[str], dict, dict]:
        """Simulate every case (rows of the parameter table, (n_cases, n_columns)): (sequence
        names, outputs, patient-noise variances), each output an array (n_cases, n_seq)."""
        n_seq = len(self.base.sequences)  # checked before any case is prepared
        bins = n_bins_for(self.base.horizon, PSA_BIN_WIDTH)
        need = len(cases) * n_seq * 8 * (2 * bins + N_ECON * N_BATCHES * 2)
        if need > MAX_PSA_BYTES:
            raise ScenarioError(
                self.path,
                [
                    (
                        label,
                        len(cases),
                        f"{len(cases):,} cases x {n_seq} sequences would keep {need / 1e9:.1f} GB "
                        f"of histograms and sums; at most {MAX_PSA_BYTES / 1e9:.0f} GB: fewer "
                        "draws or a shorter horizon",
                    )
                ],
            )
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=self.quiet,
            transient=True,
        )
        with progress:
            progress.add_task(f"{label}: preparing cases", total=None)
            rows = self.calibrated_rows(cases)
            try:
                model = bind(self.structure, rows)
            except BindError as err:
                raise ScenarioError(self.path, [(label, None, str(err))]) from None
        problem = econ_range_problem(model, self.base.horizon)
        if problem is not None:  # a draw's costs beyond what the engine sums exactly
            raise ScenarioError(self.path, [(f"economics ({label})", None, problem)])
        if not self.quiet:
            self.console.print(
                f"{label}: simulating {len(cases):,} cases x {n_patients:,} "
                f"patients x {len(model.seq_names)} sequences ..."
            )
        tallies = self._simulate(model, n_patients, seed, common_streams, label)
        names = list(model.seq_names)
        n_cases, n_seq = len(cases), len(names)
        outputs = {k: np.zeros((n_cases, n_seq)) for k in OUTPUTS}
        noise = {k: np.zeros((n_cases, n_seq)) for k in OUTPUTS[:3]}
        for d in range(n_cases):
            for q in range(n_seq):
                means = econ_means(tallies.econ[d, q], n_patients)
                for k in OUTPUTS[:3]:
                    outputs[k][d, q], se = means[f"{k}_discounted"]
                    noise[k][d, q] = se * se
                h = tallies.os_hist[d, q]
                outputs["os_median"][d, q] = km_curve(h[0], h[1], PSA_BIN_WIDTH).median()
        return names, outputs, noise

    def _simulate(self, model, n_patients, seed, common_streams, label):
        """All cases in one local call, or as draw-range tasks on a backend (checkpointed)."""
        dist = self.distributed
        if dist.get("backend", "local") == "local" and not dist.get("resume"):
            return simulate_draws(
                model,
                n_patients,
                seed,
                horizon=self.base.horizon,
                bin_width=PSA_BIN_WIDTH,
                threads=self.threads,
                common_streams=common_streams,
            )
        from simseq.backend import run_key, simulate_draw_tasks, task_session

        # ~2 million trajectories per task: below ~250k the scheduling overhead (~7 ms a
        # task on a 2-worker LocalCluster) dominates; see README "Running on Dask"
        per_draw = n_patients * len(model.seq_names)
        task_draws = dist.get("task_draws") or max(1, -(-2_000_000 // per_draw))
        key = run_key(
            patients_per_task=dist.get("task_patients"),
            command=label,
            model=model.digest(),
            n=n_patients,
            seed=seed,
            common=common_streams,
            task=task_draws,
            bin_width=PSA_BIN_WIDTH,
        )
        progress = Progress(
            TextColumn(f"{label}: tasks"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=self.quiet,
            transient=True,
        )
        session = task_session(
            key,
            self.stage.checkpoints,
            resume=bool(dist.get("resume")),
            backend=dist.get("backend", "local"),
            threads=self.threads,
            scheduler=dist.get("scheduler"),
            workers=dist.get("workers"),
            say=None if self.quiet else self.console.print,
        )
        with session as (engine, self.checkpoints), progress:
            bar = progress.add_task("tasks", total=-(-model.n_draws // task_draws))
            return simulate_draw_tasks(
                engine,
                model,
                n_patients,
                seed,
                horizon=self.base.horizon,
                bin_width=PSA_BIN_WIDTH,
                task_draws=task_draws,
                task_patients=dist.get("task_patients"),
                common_streams=common_streams,
                checkpoints=self.checkpoints,
                progress=lambda t: progress.advance(bar),
            )

    def manifest(self, started: float, **extra) -> dict:
        return {
            **manifest_header(self.identity, self.inputs),
            "calibration": {
                "input_hash": self.cal.input_hash,
                "base_values": self.cal.values,
                "note": self.cal_note,
                "per_case": "re-solved by quadrature (simseq.psa)",
            },
            "checkpointed_tasks_reused": None
            if self.checkpoints is None
            else self.checkpoints.reused,
            "seconds": round(time.perf_counter() - started, 3),
            **extra,
        }

    def warnings(self) -> list[str]:
        return resolved_warnings(self.base)


def run_psa(
    path: str | Path,
    *,
    n_draws: int | None = None,
    n_patients: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    console: Console | None = None,
    distributed: dict | None = None,
    force: bool = False,
) -> tuple[dict, Path]:
    """``simseq psa``: draw parameters, recalibrate per draw, simulate, summarise, write."""
    started = time.perf_counter()
    with _Study(path, "psa", out, threads, quiet, console, distributed, force) as st:
        n_draws = n_draws or st.settings.n_draws
        n_patients = n_patients or st.settings.n_patients
        seed = st.scenario.simulation.seed if seed is None else seed
        draws = st.table.draw(n_draws, seed)
        names, outputs, noise = st.run_cases(
            draws, n_patients, seed, common_streams=False, label="PSA"
        )
        summary = _psa_summary(st, names, outputs, noise, draws, n_patients, seed)
        wtp_grid = np.asarray(summary["ceac"]["wtp"])
        tmp = st.stage.path
        write_json(tmp / "psa_summary.json", summary)
        rows = [
            {"draw": d, "sequence": s, **{k: float(outputs[k][d, q]) for k in outputs}}
            for d in range(n_draws)
            for q, s in enumerate(names)
        ]
        write_csv(tmp / "psa_draws.csv", rows)
        st.table.rows_frame(draws).to_csv(tmp / "psa_parameters.csv")
        _psa_plots(tmp, st.scenario, names, outputs, summary, wtp_grid)
        st.stage.write_manifest(
            st.manifest(started, seed=seed, n_draws=n_draws, n_patients_per_draw=n_patients)
        )
    if not quiet:
        _print_psa(st.console, summary)
        st.console.print(
            f"PSA results written to {st.out_dir}/ ({time.perf_counter() - started:.1f} s)"
        )
    return summary, st.out_dir


def _finite_or_none(x) -> float | None:
    """A number for JSON/CSV: None where not finite (e.g. a median not reached)."""
    x = float(x)
    return x if np.isfinite(x) else None


def _nan_if_none(x) -> float:
    """For plots: a value not reached (None in JSON) as NaN, which they skip and name."""
    return float("nan") if x is None else float(x)


def _interval(x) -> dict:
    """Mean and 95% interval across draws. A median not reached within the horizon (inf)
    counts as longer than every reached one in the interval's order statistics (a bound
    that is not reached is None), and the mean is over the draws where it was reached,
    with their number, ``n_draws_reached``."""
    finite = x[np.isfinite(x)]
    out = {"mean": None, "ci95": [None, None]}
    if finite.size:
        # linear interpolation as usual; order statistics where some draws are inf
        method = "linear" if finite.size == x.size else "inverted_cdf"
        bounds = np.quantile(np.where(np.isfinite(x), x, np.inf), [0.025, 0.975], method=method)
        out = {
            "mean": round(float(finite.mean()), 6),
            "ci95": [_finite_or_none(round(float(b), 6)) for b in bounds],
        }
    if finite.size < x.size:
        out["n_draws_reached"] = int(finite.size)
    return out


def _matches(p, patterns: list[str]) -> bool:
    """A parameter matches by key, evidence id or scenario key path prefix."""
    names = [p.name.split(":", 1)[-1], *p.ids, *p.paths]
    return any(n.startswith(pat) for pat in patterns for n in names)


def _group_matrix(table, draws, members) -> np.ndarray:
    """(n_draws, k) values of the parameters in a group (a split gives a column per part)."""
    return np.concatenate([draws[:, table.column_slice(p)] for p in members], axis=1)


def _psa_summary(st, names, outputs, noise, draws, n_patients, seed) -> dict:
    from simseq import econ

    base = st.base
    wtp = base.econ_inputs["willingness_to_pay"]
    wtp_grid = np.linspace(0.0, 3.0 * wtp, 61)
    costs, qalys = outputs["costs"], outputs["qalys"]
    table = econ.icer_table(names, costs.mean(axis=0), qalys.mean(axis=0))
    icer_rows = [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in table.to_dict(orient="records")
    ]
    prob_best = econ.ceac(costs, qalys, wtp_grid)
    evpi = econ.evpi(costs, qalys, wtp_grid)
    evppi_grid = wtp_grid[::5]
    groups: dict[str, list] = {}
    for p in st.params:
        groups.setdefault(p.group, []).append(p)
    for name, patterns in st.settings.evppi_groups.items():
        members = [p for p in st.params if _matches(p, patterns)]
        if not members:
            raise ScenarioError(
                st.path, [(f"psa.evppi_groups.{name}", patterns, "matches no uncertain parameter")]
            )
        groups[name] = members
    evppi, warnings = {}, []
    for name, members in groups.items():
        try:
            values = econ.evppi(costs, qalys, evppi_grid, _group_matrix(st.table, draws, members))
        except ValueError as err:  # e.g. fewer draws than the regression needs
            evppi[name] = None
            warnings.append(f"EVPPI for {name!r} not computed: {err}")
            continue
        evppi[name] = [round(float(v), 6) for v in values]
    mc_error = {}
    for k in noise:
        share = noise[k].mean(axis=0) / np.maximum(outputs[k].var(axis=0, ddof=1), 1e-300)
        mc_error[k] = {s: round(float(share[q]), 6) for q, s in enumerate(names)}
        worst = float(share.max())
        if worst > MC_NOISE_WARNING:
            warnings.append(
                f"{k}: patient-level Monte Carlo noise is {worst:.0%} of the variance across "
                f"draws ({names[int(share.argmax())]}); raise --patients above {n_patients:,} "
                "before reading decision uncertainty from this PSA"
            )
    reached = np.isfinite(outputs["os_median"]).sum(axis=0)
    for q, s in enumerate(names):
        if reached[q] < len(draws):
            warnings.append(
                f"{s}: median OS not reached within the horizon in {len(draws) - reached[q]} "
                f"of {len(draws)} draws; its mean is over the {reached[q]} where it was "
                "(n_draws_reached), its interval counts the others as longer"
            )
    warnings += st.warnings()
    settings_used = {
        k: getattr(st.settings, k).model_dump(exclude_none=True)
        for k in ("cost_se_fraction", "utility_se_fraction", "median_se_log")
        if getattr(st.settings, k) is not None
    }
    rounded = [round(float(w), 6) for w in wtp_grid]
    return {
        "scenario": st.scenario.name,
        "n_draws": len(draws),
        "n_patients_per_draw": n_patients,
        "seed": seed,
        "currency": base.econ_inputs["currency"],
        "willingness_to_pay": wtp,
        "effects": "discounted QALYs",
        "costs": "discounted",
        "sequences": {
            s: {k: _interval(outputs[k][:, q]) for k in OUTPUTS} for q, s in enumerate(names)
        },
        "icer_table": icer_rows,
        "ceac": {
            "wtp": rounded,
            "prob_best": {
                s: [round(float(v), 6) for v in prob_best[:, q]] for q, s in enumerate(names)
            },
        },
        "evpi": {"wtp": rounded, "value": [round(float(v), 6) for v in evpi]},
        "evppi": {
            "wtp": [round(float(w), 6) for w in evppi_grid],
            "method": "regression (Strong, Oakley & Brennan 2014), per parameter group",
            "groups": evppi,
        },
        "mc_error_share": mc_error,
        "warnings": warnings,
        "parameters": [
            {
                "key": p.name,
                "distribution": p.distribution.describe(),
                "used_at": list(p.paths),
                "evidence": list(p.ids),
                "group": p.group,
                "unit": p.unit,
            }
            for p in st.params
        ],
        "held_fixed": st.fixed,
        "psa_settings": settings_used,
        "calibration": "calibrated medians re-solved for every draw by quadrature",
    }


def _psa_plots(directory, scenario, names, outputs, summary, wtp_grid) -> None:
    """CE plane, CEAC with frontier and EVPI curve."""
    from simseq import cea_plots, econ

    ref = names.index(scenario.economics.reference)
    inc_c = outputs["costs"] - outputs["costs"][:, [ref]]
    inc_q = outputs["qalys"] - outputs["qalys"][:, [ref]]
    cur = summary["currency"]
    cea_plots.plot_ce_plane(
        directory / "ce_plane.png",
        inc_c,
        inc_q,
        names,
        currency=cur,
        wtp=summary["willingness_to_pay"],
        reference=names[ref],
    )
    prob = np.array([summary["ceac"]["prob_best"][s] for s in names]).T
    frontier = econ.ceaf(outputs["costs"], outputs["qalys"], wtp_grid, names)
    cea_plots.plot_ceac(
        directory / "ceac.png", wtp_grid, prob, names, currency=cur, frontier=frontier
    )
    cea_plots.plot_evpi(
        directory / "evpi.png", wtp_grid, np.array(summary["evpi"]["value"]), currency=cur
    )


def _print_psa(console: Console, summary: dict) -> None:

    cur = summary["currency"]
    table = Table(
        title=f"PSA: {summary['n_draws']:,} draws x {summary['n_patients_per_draw']:,} "
        f"patients (means, 95% intervals across draws)",
        title_style="bold",
    )
    for col in ("sequence", f"costs ({cur})", "QALYs", "median OS (months)", "P(best) at WTP"):
        table.add_column(col, justify="left" if col == "sequence" else "right")
    wtp_idx = summary["ceac"]["wtp"].index(
        min(summary["ceac"]["wtp"], key=lambda w: abs(w - summary["willingness_to_pay"]))
    )

    def show(block: dict, spec: str) -> str:
        def num(v):
            return "NR" if v is None else format(v, spec)

        lo, hi = block["ci95"]
        return f"{num(block['mean'])} ({num(lo)}-{num(hi)})"

    for s, block in summary["sequences"].items():
        table.add_row(
            s,
            show(block["costs"], ",.0f"),
            show(block["qalys"], ".3f"),
            show(block["os_median"], ".2f"),
            f"{summary['ceac']['prob_best'][s][wtp_idx]:.2f}",
        )
    console.print(table)
    for w in summary["warnings"]:
        console.print(f"[yellow]note:[/yellow] {w}")


# --------------------------------------------------------------------------- #
# One-way sensitivity analysis (tornado)
# --------------------------------------------------------------------------- #

DSA_PATIENTS = 100_000  # per case and sequence; common random numbers across cases


def _label(p) -> str:
    """A short readable parameter name for tables and tornado plots."""
    kind, _, rest = p.name.partition(":")
    rest = rest.replace("health_economics.", "").replace("economics.", "")
    if kind == "pool":
        ids = rest.split("+")
        common = ".".join(ids[0].split(".")[:3])
        return f"{common} (pooled: {', '.join(i.split('.')[3] for i in ids)})"
    if kind in ("beta", "dirichlet"):
        record, _, what = rest.partition(":")
        part = what.split(":")[0].split(",")[0].split("=")[0]
        return f"{record} ({part})"
    return rest


def _fmt_input(p: Parameter, values: np.ndarray) -> str:
    """A parameter's value(s) in a row, short: a split by its first part."""
    if p.columns == (p.name,):
        return f"{values[0]:.4g}"
    return f"{p.columns[0][len(p.name) + 1 : -1]} {values[0]:.3g}"


def run_dsa(
    path: str | Path,
    *,
    n_patients: int = DSA_PATIENTS,
    seed: int | None = None,
    sequence: str | None = None,
    threads: int | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    console: Console | None = None,
    distributed: dict | None = None,
    force: bool = False,
) -> tuple[dict, Path]:
    """``simseq dsa``: every uncertain parameter at its low and high value, others at base,
    with common random numbers; tornado diagrams for NMB and median OS."""
    started = time.perf_counter()
    study = _Study(path, "dsa", out, threads, quiet, console, distributed, force)
    names = list(study.scenario.sequences)
    reference = study.scenario.economics.reference
    focus = sequence or next(s for s in names if s != reference)
    if focus not in names:
        raise ScenarioError(
            study.path, [("--sequence", focus, f"not a sequence; use one of {', '.join(names)}")]
        )
    with study as st:
        seed = st.scenario.simulation.seed if seed is None else seed
        params, cases = st.table.one_way_rows()
        names, outputs, _ = st.run_cases(cases, n_patients, seed, common_streams=True, label="DSA")
        wtp = st.base.econ_inputs["willingness_to_pay"]
        nmb = wtp * outputs["qalys"] - outputs["costs"]
        f, r = names.index(focus), names.index(reference)
        inc_nmb = nmb[:, f] - nmb[:, r]
        rows = []
        for i, p in enumerate(params):
            a, b = 1 + 2 * i, 2 + 2 * i
            cols = st.table.column_slice(p)
            rows.append(
                {
                    "parameter": _label(p),
                    "key": p.name,
                    "unit": p.unit,
                    "low_input": _fmt_input(p, cases[a, cols]),
                    "high_input": _fmt_input(p, cases[b, cols]),
                    "inc_nmb_low": float(inc_nmb[a]),
                    "inc_nmb_high": float(inc_nmb[b]),
                    "os_median_low": _finite_or_none(outputs["os_median"][a, f]),
                    "os_median_high": _finite_or_none(outputs["os_median"][b, f]),
                    **{f"nmb_low.{s}": float(nmb[a, q]) for q, s in enumerate(names)},
                    **{f"nmb_high.{s}": float(nmb[b, q]) for q, s in enumerate(names)},
                }
            )
        rows.sort(key=lambda x: -abs(x["inc_nmb_high"] - x["inc_nmb_low"]))
        summary = {
            "scenario": st.scenario.name,
            "n_patients_per_case": n_patients,
            "seed": seed,
            "common_random_numbers": True,
            "focus": focus,
            "reference": reference,
            "willingness_to_pay": wtp,
            "currency": st.base.econ_inputs["currency"],
            "base": {
                "inc_nmb": float(inc_nmb[0]),
                "os_median": {
                    s: _finite_or_none(outputs["os_median"][0, q]) for q, s in enumerate(names)
                },
                "nmb": {s: float(nmb[0, q]) for q, s in enumerate(names)},
            },
            "ranges": "2.5% and 97.5% points of each parameter's PSA distribution",
            "rows": rows,
            "held_fixed": st.fixed,
            "warnings": st.warnings(),
        }
        from simseq import cea_plots

        cur = summary["currency"]
        tmp = st.stage.path
        write_json(tmp / "dsa_summary.json", summary)
        write_csv(tmp / "dsa.csv", rows)
        cea_plots.plot_tornado(
            tmp / "tornado_nmb.png",
            [
                {
                    "parameter": x["parameter"],
                    "low_label": x["low_input"],
                    "high_label": x["high_input"],
                    "low": x["inc_nmb_low"],
                    "high": x["inc_nmb_high"],
                }
                for x in rows
            ],
            outcome_label=f"Incremental NMB, {focus} vs {reference} ({cur}, WTP {wtp:,.0f}/QALY)",
            base_value=summary["base"]["inc_nmb"],
        )
        cea_plots.plot_tornado(
            tmp / "tornado_os.png",
            [
                {
                    "parameter": x["parameter"],
                    "low_label": x["low_input"],
                    "high_label": x["high_input"],
                    "low": _nan_if_none(x["os_median_low"]),
                    "high": _nan_if_none(x["os_median_high"]),
                }
                for x in rows
            ],
            outcome_label=f"Median OS from first line, {focus} (months)",
            base_value=_nan_if_none(summary["base"]["os_median"][focus]),
        )
        st.stage.write_manifest(st.manifest(started, seed=seed, n_patients_per_case=n_patients))
    if not quiet:
        table = Table(
            title=f"One-way sensitivity: incremental NMB of {focus} vs {reference} "
            f"({cur}; base {inc_nmb[0]:,.0f})",
            title_style="bold",
        )
        for col in ("parameter", "low input", "high input", "NMB at low", "NMB at high"):
            table.add_column(col, justify="left" if col == "parameter" else "right")
        for x in rows[:15]:
            table.add_row(
                x["parameter"],
                x["low_input"],
                x["high_input"],
                f"{x['inc_nmb_low']:,.0f}",
                f"{x['inc_nmb_high']:,.0f}",
            )
        st.console.print(table)
        for w in summary["warnings"]:
            st.console.print(f"[yellow]note:[/yellow] {w}")
        st.console.print(f"DSA results written to {st.out_dir}/")
    return summary, st.out_dir


# --------------------------------------------------------------------------- #
# Scenario sweeps
# --------------------------------------------------------------------------- #


def parse_sweep(spec: str) -> tuple[str, float, float, int]:
    """'NAME=LO:HI:STEPS' -> (name, lo, hi, steps)."""
    name, sep, rng = spec.partition("=")
    parts = rng.split(":")
    if not sep or not name or len(parts) != 3:
        raise ValueError(f"--param {spec!r}: expected NAME=LO:HI:STEPS, e.g. {_EXAMPLE}")
    try:
        lo, hi, steps = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"--param {spec!r}: LO and HI must be numbers, STEPS an integer") from None
    if steps < 2:
        raise ValueError(f"--param {spec!r}: STEPS must be >= 2")
    return name, lo, hi, steps


_EXAMPLE = "sequences.atzbev_len.lines.0.next_line=0.5:0.9:5"


def _sweep_parameter(st: "_Study", name: str) -> Parameter:
    """The scalar parameter a sweep names by parameter name or scenario key path."""
    try:
        p = st.table.find(name)
    except KeyError as err:
        raise ValueError(f"--param {name!r}: not a scalar parameter; {err.args[0]}") from None
    if p.columns != (p.name,):
        raise ValueError(
            f"--param {name!r}: {p.name} is a split ({', '.join(p.columns)}); sweeps take "
            "scalar parameters"
        )
    return p


def run_sweep(
    path: str | Path,
    specs: list[str],
    *,
    n_patients: int = DSA_PATIENTS,
    seed: int | None = None,
    threads: int | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    console: Console | None = None,
    distributed: dict | None = None,
    force: bool = False,
) -> tuple[list[dict], Path]:
    """``simseq sweep``: a grid over named parameters (common random numbers) to a tidy table."""
    started = time.perf_counter()
    grid_specs = [parse_sweep(s) for s in specs]
    with _Study(path, "sweep", out, threads, quiet, console, distributed, force) as st:
        seed = st.scenario.simulation.seed if seed is None else seed
        swept = [_sweep_parameter(st, name) for name, *_ in grid_specs]
        keys = [p.name for p in swept]
        # a parameter cited at several places (one evidence record) moves at all of them
        moved = {name: list(p.paths) for (name, *_), p in zip(grid_specs, swept, strict=True)}
        if not quiet:
            for name, paths in moved.items():
                st.console.print(
                    f"sweep: {name} moves {len(paths)} input(s), which share its evidence: "
                    + ", ".join(paths)
                )
        axes = [np.linspace(lo, hi, steps) for _, lo, hi, steps in grid_specs]
        points = list(itertools.product(*axes))
        cases = np.concatenate(
            [st.table.rows_with(dict(zip(keys, map(float, pt), strict=True))) for pt in points]
        )
        names, outputs, _ = st.run_cases(
            cases, n_patients, seed, common_streams=True, label="sweep"
        )
        wtp = st.base.econ_inputs["willingness_to_pay"]
        rows = []
        for c, pt in enumerate(points):
            for q, s in enumerate(names):
                row = {name: float(v) for (name, *_), v in zip(grid_specs, pt, strict=True)}
                row.update({f"{name} moves": "; ".join(paths) for name, paths in moved.items()})
                row["sequence"] = s
                row.update({k: _finite_or_none(outputs[k][c, q]) for k in OUTPUTS})
                row["nmb"] = wtp * row["qalys"] - row["costs"]
                rows.append(row)
        write_csv(st.stage.path / "sweep.csv", rows)
        st.stage.write_manifest(
            st.manifest(
                started,
                seed=seed,
                n_patients_per_case=n_patients,
                parameters=specs,
                keys=keys,
                moved=moved,
                willingness_to_pay=wtp,
                warnings=st.warnings(),
            )
        )
    if not quiet:
        for w in st.warnings():
            st.console.print(f"[yellow]note:[/yellow] {w}")
        st.console.print(
            f"sweep: {len(points)} points x {len(names)} sequences written to "
            f"{st.out_dir / 'sweep.csv'}"
        )
    return rows, st.out_dir
