"""What a study's analyses return: numbers as DataFrames, and the files each command writes.

``RunResult``, ``PSAResult``, ``DSAResult`` and ``SweepResult`` hold the outcomes of
``Study.run/psa/dsa/sweep`` in memory. ``.write(stage)`` writes exactly the files of
the matching command into a staged results directory (``simseq.results_dir``);
``.save(directory)`` does the same for a notebook user, with the same protections
(an existing directory of another scenario is refused unless ``force``).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simseq import econ, validation
from simseq.comparisons import comparison_rows
from simseq.engine.codes import TALLY_OS_GIVEN_ENTRY
from simseq.outcomes import (
    Z95,
    econ_means,
    line_curves,
    line_key,
    sequence_summary,
    tally_curve,
)
from simseq.report import plain_number, plot_survival, survival_rows, write_csv, write_json
from simseq.resolve import Resolved
from simseq.results_dir import Staging, results_writer
from simseq.scenario import Scenario, ScenarioError

if TYPE_CHECKING:
    import pandas

    from simseq.calibrate import CalibrationResult
    from simseq.study import Study

CALIBRATION_WARN = 0.01  # a target reproduced worse than this (relative) is flagged
MC_NOISE_WARNING = 0.05  # warn when patient-level noise is >5% of an output's PSA variance
HETEROGENEITY_WARNING = 0.5  # warn when a pool's I^2 is above 50% (Cochrane Handbook 10.10.2)
# Regression EVPPI overfits with few draws and reads noise as value; Strong, Oakley & Brennan
# (2014) used 1,000 to 10,000. Below this the output says so.
EVPPI_MIN_DRAWS = 1000
OUTPUTS_NOTE = {  # summary.json's "outputs", by simulation.outputs
    "full": "every line's outcomes and the state curves (curves.csv)",
    "sequence_os": "OS from the start of each sequence only (simulation.outputs: "
    "sequence_os): no per-line outcomes, no curves.csv; run with --outputs full for them",
}
OUTPUTS = ("lys", "qalys", "costs", "os_median")  # per case and sequence; discounted LYs etc.


class _Result:
    """What every result shares: its study, the command whose files it writes, and how
    long it took."""

    command = ""

    def write(self, stage: Staging, **options) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def save(self, directory: str | Path, *, force: bool = False, **options) -> Path:
        """Write this result's files into ``directory`` (created if needed): the files
        ``simseq <command>`` writes, committed together with a manifest."""
        directory = Path(directory)
        with results_writer(
            directory, self.command, scenario=self.study.identity, force=force
        ) as stage:
            self.write(stage, **options)
        return directory


class RunResult(_Result):
    """One simulated scenario (the base case, or the base with inputs set by name)."""

    command = "run"

    def __init__(
        self,
        study: Study,
        rows,
        model,
        tallies,
        n_patients,
        seed,
        checkpoints=None,
        observed=None,
        outputs: str = "full",
    ):
        self.study = study
        self.rows = rows
        """float64 (1, n_columns): the parameter row simulated."""
        self.model = model
        self.tallies = tallies
        self.n_patients = n_patients
        self.seed = seed
        self.checkpoints = checkpoints
        sc = study.scenario
        self.scenario = sc.model_copy(
            update={
                "simulation": sc.simulation.model_copy(
                    update={"n_patients": n_patients, "seed": seed, "outputs": outputs}
                )
            }
        )
        self.curves = {
            sid: tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, [int(model.seq_start_state[q])])
            for q, sid in enumerate(model.seq_names)
        }
        """Sequence id -> OS from the start of first line (``outcomes.SurvivalCurve``)."""
        self.summary_dict = build_summary(
            self.scenario,
            study.resolved,
            model,
            tallies,
            study.calibration,
            study.resolved.provenance_at(rows[0]),
            self._validation_rows(),
        )
        """The content of summary.json."""
        if sc.comparisons:
            populations = {
                rid: {name: float(v.of(rows)[0]) for name, v in prevalence.items()}
                for rid, prevalence in study.resolved.cohort_populations.items()
            }
            self.summary_dict["comparisons"] = comparison_rows(
                sc, self.curves, observed or {}, populations
            )

    @property
    def outputs(self) -> str:
        """What was tallied: "full" or "sequence_os" (OS from each sequence's start)."""
        return self.scenario.simulation.outputs

    def _validation_rows(self) -> list[dict]:
        """The scenario's published results, each with its study's estimator applied to
        this run's simulated patients (``simseq.validation``)."""
        sim = self.scenario.simulation
        return validation.rows(
            self.study.validation,
            self.model,
            self.n_patients,
            self.seed,
            horizon=self.study.horizon,
            bin_width=sim.bin_width,
            labels={sid: self.scenario.sequences[sid].label for sid in self.model.seq_names},
        )

    @property
    def summary(self) -> pandas.DataFrame:
        """One row per sequence id: label, median OS with its Monte Carlo 95% interval,
        RMST, survival at the landmarks, undiscounted life-years and, with economics,
        discounted LYs, QALYs and costs with their intervals (months, years, currency)."""
        import pandas as pd

        rows = []
        cea = self.summary_dict.get("cea")
        for sid, s in self.summary_dict["sequences"].items():
            os_ = s["os_from_1l"]
            row = {
                "sequence": sid,
                "label": s["label"],
                "os_median_months": os_["median"],
                "os_median_ci95_low": os_["median_ci95"][0],
                "os_median_ci95_high": os_["median_ci95"][1],
                "rmst_months": os_["rmst"],
                "rmst_ci95_low": os_["rmst_ci95"][0],
                "rmst_ci95_high": os_["rmst_ci95"][1],
                **{f"survival_at_{t}_months": v for t, v in os_["survival_at"].items()},
                "life_years_undiscounted": s["life_years_undiscounted"],
            }
            if cea is not None:
                for name in ("lys_discounted", "qalys_discounted", "costs_discounted"):
                    block = cea["sequences"][sid][name]
                    row[name] = block["mean"]
                    row[f"{name}_ci95_low"], row[f"{name}_ci95_high"] = block["ci95"]
            rows.append(row)
        return pd.DataFrame(rows).set_index("sequence")

    @property
    def validation(self) -> pandas.DataFrame:
        """validation.csv as a DataFrame: one row per ``validation:`` entry and sequence,
        the published value beside the same estimator on the simulated patients."""
        import pandas as pd

        rows = self.summary_dict.get("validation", [])
        return pd.DataFrame(rows, columns=list(validation.COLUMNS))

    @property
    def survival(self) -> pandas.DataFrame:
        """Tidy OS curves: sequence, time (months), survival and its Monte Carlo 95%
        interval (lower, upper)."""
        import pandas as pd

        frame = pd.DataFrame(survival_rows(self.curves))
        return frame.rename(
            columns={"time_months": "time", "ci95_low": "lower", "ci95_high": "upper"}
        )

    def write(
        self,
        stage: Staging,
        *,
        draw=None,
        trajectories: int = 0,
        trajectories_format: str = "csv",
        x_max: float | None = None,
        manifest: dict | None = None,
    ) -> None:
        """summary.json, survival.csv and .png (x axis to ``x_max`` months; default where
        1% remain), validation.csv and .png with a ``validation:`` section, curves.csv
        (PFS per line, state occupancy; not with ``outputs="sequence_os"``), inputs.csv
        (every input with its provenance), cea.csv with economics, the calibration (cache
        and table), the event log of ``trajectories`` patients if asked, and the manifest."""
        from simseq.calibrate import save_cached

        study, tmp = self.study, stage.path
        sc = self.scenario
        # first: a forked ``draw`` draws the figures while the files below are written
        figures_written = [  # functions that wait for each figure's file
            plot_survival(
                tmp / "survival.png",
                self.curves,
                {sid: sc.sequences[sid].label for sid in self.curves},
                f"{sc.title}\nN = {self.n_patients:,} simulated patients per sequence",
                {t.sequence for t in study.resolved.transports},
                x_max,
                points=validation.os_points(self.summary_dict.get("validation", [])),
                draw=draw,
            )
        ]
        checks = self.summary_dict.get("validation")
        if checks:
            from simseq.validation_plot import plot_validation

            figures_written.append(
                plot_validation(
                    tmp / "validation.png",
                    checks,
                    sc.title,
                    min(self.n_patients, validation.VALIDATION_PATIENTS),
                    self.summary_dict["validation_mape"],
                    draw=draw,
                )
            )
        write_json(tmp / "summary.json", self.summary_dict)
        write_csv(tmp / "survival.csv", survival_rows(self.curves))
        if checks:
            write_csv(tmp / "validation.csv", validation.csv_rows(checks))
        if self.outputs == "full":
            write_csv(tmp / "curves.csv", line_curves(self.model, self.tallies))
        write_csv(tmp / "inputs.csv", input_rows(study, self.rows[0]))
        if "cea" in self.summary_dict:
            write_csv(tmp / "cea.csv", cea_rows(self.summary_dict))
        cal = study.calibration
        save_cached(tmp, cal)
        if cal.targets:
            write_csv(tmp / "calibration.csv", calibration_rows(cal))
            write_csv(tmp / "targets.csv", target_rows(study))
        if trajectories:
            from simseq.simulator import simulate_trajectories

            log = simulate_trajectories(self.model, trajectories, self.seed, horizon=study.horizon)
            if trajectories_format == "parquet":
                log.to_parquet(tmp / "trajectories.parquet", index=False)
            else:
                log.to_csv(tmp / "trajectories.csv", index=False)
        fields = {
            **study.manifest_header(),  # git's answers (~30 ms) while the plot is drawn
            "evidence_records": len(study.evidence),
            "seed": self.seed,
            "n_patients": self.n_patients,
            "outputs": self.outputs,
            "checkpointed_tasks_reused": None
            if self.checkpoints is None
            else self.checkpoints.reused,
            "calibration": {
                "input_hash": cal.input_hash,
                "from_cache": study.calibration_cached,
                "note": study.calibration_note,
                "values": cal.values,
                "n_patients": cal.n_patients,
                "seed": cal.seed,
                **_bayes_note(study, "base_case", "each free parameter at its posterior mean"),
            },
            **(manifest or {}),
        }
        for written in figures_written:
            written()
        stage.write_manifest(fields)


class _CasesResult(_Result):
    """Results over many rows of the parameter table (PSA draws, DSA bounds, sweep points)."""

    def _manifest(self, **extra) -> dict:
        study = self.study
        cal = study.calibration
        return {
            **study.manifest_header(),
            "calibration": {
                "input_hash": cal.input_hash,
                "base_values": cal.values,
                "note": study.calibration_note,
                "per_case": "re-solved for every row by the one calibrator (simseq.calibrate)",
                **_bayes_note(
                    study,
                    "per_case",
                    "PSA draw d takes posterior draw d (resampled with the seed when n_draws "
                    "differs); one-way bounds and sweep points the posterior mean",
                ),
            },
            "checkpointed_tasks_reused": None
            if study.checkpoints is None
            else study.checkpoints.reused,
            **extra,
        }


class PSAResult(_CasesResult):
    """A probabilistic sensitivity analysis: outcomes per random draw, the base case beside."""

    command = "psa"

    def __init__(self, study, base, draws, names, outputs, noise, n_patients, seed, redrawn=0):
        self.study = study
        self.base: RunResult = base
        """The deterministic base case: ``study.run`` at the same N and seed."""
        self.rows = draws
        """float64 (n_draws, n_columns): the drawn rows of the parameter table."""
        self.names = names
        self.outputs = outputs
        """{output: float64 (n_draws, n_seq)}: discounted LYs, QALYs, costs; median OS."""
        self.n_patients = n_patients
        self.seed = seed
        base_outputs = _base_outputs(base, names)
        self.redrawn = redrawn
        """Rows redrawn because their calibration targets were out of their inputs' reach."""
        self.summary_dict = psa_summary(
            study, names, outputs, noise, draws, n_patients, seed, base_outputs, redrawn
        )
        """The content of psa_summary.json."""

    @property
    def draws(self) -> pandas.DataFrame:
        """One row per (draw, sequence): lys, qalys, costs (discounted), os_median (months)."""
        import pandas as pd

        return pd.DataFrame(_draw_rows(self.names, self.outputs))

    calibration = None
    """The ``solve.DrawCalibration`` of the draws (None without calibration targets)."""

    @property
    def parameters(self) -> pandas.DataFrame:
        """One row per draw: the value of every drawn input (column per table column)."""
        return self.study.table.rows_frame(self.rows)

    def calibration_rows(self) -> list[dict]:
        """One row per (draw, target): the target drawn, the summary achieved, the free
        median solved (months), and the method."""
        cal, targets = self.calibration, self.study.resolved.targets
        return [
            {
                "draw": d,
                "target": f"calibration.targets.{t.index}",
                "regimen": t.spec.regimen,
                "free": t.spec.free,
                "target_drawn": float(cal.targets[i].value[d]),
                "achieved": float(cal.achieved[d, i]),
                "solved_median": float(cal.values[d, i]),
                "method": cal.methods[i],
            }
            for d in range(cal.values.shape[0])
            for i, t in enumerate(targets)
        ]

    def write(self, stage: Staging, *, manifest: dict | None = None) -> None:
        """psa_summary.json, psa_draws.csv, psa_parameters.csv, the CE plane, CEAC and EVPI
        plots, and the manifest."""
        tmp = stage.path
        summary = self.summary_dict
        write_json(tmp / "psa_summary.json", summary)
        write_csv(tmp / "psa_draws.csv", _draw_rows(self.names, self.outputs))
        self.parameters.to_csv(tmp / "psa_parameters.csv")
        if self.calibration is not None:
            write_csv(tmp / "calibration_draws.csv", self.calibration_rows())
        _psa_plots(tmp, self.study.scenario, self.names, self.outputs, summary)
        stage.write_manifest(
            self._manifest(
                seed=self.seed,
                n_draws=len(self.rows),
                n_patients_per_draw=self.n_patients,
                **(manifest or {}),
            )
        )


class AveragedPSAResult(_Result):
    """A model-averaged PSA: each structure's own PSA (``components``: {"base" or
    alternative name: PSAResult}) with draws in proportion to its weight, pooled into one
    sample of the decision."""

    command = "psa"

    def __init__(self, study, components: dict, weights: dict[str, float]):
        self.study = study
        self.components = components
        self.weights = weights
        first = next(iter(components.values()))
        self.names = first.names
        for name, c in components.items():
            if c.names != self.names:
                raise ScenarioError(
                    study.path,
                    [
                        (
                            f"structural_alternatives.{name}",
                            c.names,
                            f"compares other sequences than the base case ({self.names}): "
                            "a model-averaged PSA pools draws of the same decision",
                        )
                    ],
                )
        self.n_patients = first.n_patients
        self.seed = first.seed
        self.structure = np.concatenate([[n] * len(c.rows) for n, c in components.items()])
        """str (n_draws,): the structure each pooled draw comes from."""
        self.outputs = {
            k: np.concatenate([c.outputs[k] for c in components.values()]) for k in OUTPUTS
        }
        """{output: float64 (n_draws, n_seq)}, pooled over the structures."""
        self.summary_dict = averaged_psa_summary(self)

    def write(self, stage: Staging, *, manifest: dict | None = None) -> None:
        """psa_summary.json, psa_draws.csv, psa_parameters.csv and calibration_draws.csv
        (each row with its structure), the plots of the pooled draws, and the manifest."""
        import pandas as pd

        tmp = stage.path
        summary = self.summary_dict
        write_json(tmp / "psa_summary.json", summary)
        rows = _draw_rows(self.names, self.outputs)
        n_seq = len(self.names)
        for i, row in enumerate(rows):
            row["structure"] = str(self.structure[i // n_seq])
        write_csv(tmp / "psa_draws.csv", rows)
        frames = [c.parameters.assign(structure=n) for n, c in self.components.items()]
        pd.concat(frames, ignore_index=True).to_csv(tmp / "psa_parameters.csv")
        calibration = [
            row | {"structure": n}
            for n, c in self.components.items()
            if c.calibration is not None
            for row in c.calibration_rows()
        ]
        if calibration:
            write_csv(tmp / "calibration_draws.csv", calibration)
        _psa_plots(tmp, self.study.scenario, self.names, self.outputs, summary)
        stage.write_manifest(
            {
                **self.study.manifest_header(),
                "command": "psa",
                "model_averaging": summary["model_averaging"],
                "seed": self.seed,
                "n_draws": len(self.structure),
                "n_patients_per_draw": self.n_patients,
                **(manifest or {}),
            }
        )


def averaged_psa_summary(result: AveragedPSAResult) -> dict:
    """psa_summary.json of a model-averaged PSA: statistics over the pooled draws, each
    structure's own summary beside them, and the EVPPI of the structural choice."""
    st, names, outputs = result.study, result.names, result.outputs
    wtp = st.resolved.econ_inputs["willingness_to_pay"]
    wtp_grid = np.linspace(0.0, 3.0 * wtp, 61)
    costs, qalys = outputs["costs"], outputs["qalys"]
    table = econ.icer_table(names, costs.mean(axis=0), qalys.mean(axis=0))
    n = len(result.structure)
    shares = {k: len(c.rows) / n for k, c in result.components.items()}
    # the structure is a discrete parameter: E over structures of the best decision within
    # each, minus the best decision on average (exact, no regression), per WTP
    within = np.stack(
        [
            econ.nmb(c.outputs["costs"], c.outputs["qalys"], wtp_grid).mean(axis=1)
            for c in result.components.values()
        ]
    )  # (n_structures, n_wtp, n_seq)
    w = np.array(list(shares.values()))[:, None]
    evppi_structure = (w * within.max(axis=2)).sum(axis=0) - (w[:, :, None] * within).sum(
        axis=0
    ).max(axis=1)
    components = {k: c.summary_dict for k, c in result.components.items()}
    # a warning every structure gives once; one of some structures only, with their name
    every = set.intersection(*(set(c["warnings"]) for c in components.values()))
    warnings = [w for w in next(iter(components.values()))["warnings"] if w in every] + [
        f"{k}: {w}" for k, c in components.items() for w in c["warnings"] if w not in every
    ]
    held = {h["name"]: h for c in components.values() for h in c["held_fixed"]}
    rounded = [round(float(x), 6) for x in wtp_grid]
    return {
        "scenario": st.scenario.name,
        "n_draws": n,
        "n_patients_per_draw": result.n_patients,
        "seed": result.seed,
        "currency": st.resolved.econ_inputs["currency"],
        "willingness_to_pay": wtp,
        "effects": "discounted QALYs",
        "costs": "discounted",
        "statistics": "over the pooled draws of every structure, each structure drawn in "
        "proportion to its weight; each structure's own PSA summary is under structures",
        "model_averaging": {
            "weights": result.weights,
            "assumption": st.settings.model_averaging.assumption,
            "draws": {k: len(c.rows) for k, c in result.components.items()},
            "evppi_structure": {
                "wtp": rounded,
                "value": [round(float(v), 6) for v in evppi_structure],
                "method": "exact for a discrete parameter: sum_k w_k max_d E[NMB_d | k] - "
                "max_d sum_k w_k E[NMB_d | k]",
            },
        },
        "sequences": {
            s: {k: _interval(outputs[k][:, q]) for k in OUTPUTS} for q, s in enumerate(names)
        },
        "icer_table": [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in table.to_dict(orient="records")
        ],
        "ceac": {
            "wtp": rounded,
            "prob_best": {
                s: [round(float(v), 6) for v in col]
                for s, col in zip(names, econ.ceac(costs, qalys, wtp_grid).T, strict=True)
            },
        },
        "evpi": {
            "wtp": rounded,
            "value": [round(float(v), 6) for v in econ.evpi(costs, qalys, wtp_grid)],
            "unit": "currency per patient",
            "population": _evpi_population(st.settings, st.resolved.econ_inputs["discount_costs"]),
        },
        "evppi": {
            "wtp": rounded,
            "method": "the structural choice, exact for a discrete parameter (parameter "
            "groups: per structure, structures.<name>.evppi)",
            "groups": {"structural choice": [round(float(v), 6) for v in evppi_structure]},
            "caption": "EVPPI of the structural choice, exact for a discrete parameter, on "
            "the draws pooled over the structures.",
        },
        "warnings": warnings,
        "held_fixed": list(held.values()),
        "structures": components,
    }


class DSAResult(_CasesResult):
    """A one-way sensitivity analysis: each uncertain input at its bounds."""

    command = "dsa"

    def __init__(self, study, params, cases, names, outputs, n_patients, seed, focus, reference):
        self.study = study
        self.params = params
        self.rows = cases
        self.names = names
        self.outputs = outputs
        self.n_patients = n_patients
        self.seed = seed
        self.summary_dict = dsa_summary(
            study, params, cases, names, outputs, n_patients, seed, focus, reference
        )

    @property
    def table(self) -> pandas.DataFrame:
        """One row per input, largest swing in incremental NMB first."""
        import pandas as pd

        return pd.DataFrame(self.summary_dict["rows"])

    def write(self, stage: Staging, *, manifest: dict | None = None) -> None:
        """dsa_summary.json, dsa.csv, tornado_nmb.png, tornado_os.png and the manifest."""
        tmp = stage.path
        summary = self.summary_dict
        write_json(tmp / "dsa_summary.json", summary)
        write_csv(tmp / "dsa.csv", summary["rows"])
        _tornado_plots(tmp, summary)
        stage.write_manifest(
            self._manifest(seed=self.seed, n_patients_per_case=self.n_patients, **(manifest or {}))
        )


class SweepResult(_CasesResult):
    """Outcomes over a grid of inputs."""

    command = "sweep"

    def __init__(self, study, swept, points, names, outputs, n_patients, seed):
        self.study = study
        self.swept = swept
        """{name as given: Parameter}."""
        self.points = points
        self.names = names
        self.outputs = outputs
        self.n_patients = n_patients
        self.seed = seed
        wtp = study.resolved.econ_inputs["willingness_to_pay"]
        self.moved = {name: list(p.paths) for name, p in swept.items()}
        """{name: the key paths it moves}: a parameter cited at several places moves at all."""
        nmb = econ.nmb(outputs["costs"], outputs["qalys"], wtp)[0]  # (n_points, n_seq)
        rows = []
        for c, pt in enumerate(points):
            for q, s in enumerate(names):
                row = {name: float(v) for name, v in zip(swept, pt, strict=True)}
                row.update({f"{name} moves": "; ".join(p) for name, p in self.moved.items()})
                row["sequence"] = s
                row.update({k: _finite_or_none(outputs[k][c, q]) for k in OUTPUTS})
                row["nmb"] = float(nmb[c, q])
                rows.append(row)
        self.row_dicts = rows
        self.willingness_to_pay = wtp

    @property
    def table(self) -> pandas.DataFrame:
        """Tidy: one row per (grid point, sequence)."""
        import pandas as pd

        return pd.DataFrame(self.row_dicts)

    def write(self, stage: Staging, *, manifest: dict | None = None) -> None:
        """sweep.csv and the manifest."""
        write_csv(stage.path / "sweep.csv", self.row_dicts)
        stage.write_manifest(
            self._manifest(
                seed=self.seed,
                n_patients_per_case=self.n_patients,
                keys=[p.name for p in self.swept.values()],
                moved=self.moved,
                willingness_to_pay=self.willingness_to_pay,
                warnings=self.study.warnings(),
                **(manifest or {}),
            )
        )


class StructuralResult:
    """The base case and each structural alternative, side by side (a scenario-analysis
    table): OS from the start of first line and, with economics, discounted QALYs, costs,
    net monetary benefit and the incremental analysis, per alternative and sequence."""

    command = "structural"

    def __init__(self, study, runs: dict):
        self.study = study
        self.runs = runs
        """{"base" or alternative name: RunResult}."""
        alternatives = study.scenario.structural_alternatives
        rows = []
        for name, run in runs.items():
            summary = run.summary_dict
            cea = summary.get("cea")
            status = {r["sequence"]: r for r in cea["icer_table"]} if cea else {}
            for sid, seq in summary["sequences"].items():
                os_ = seq["os_from_1l"]
                row = {
                    "alternative": name,
                    "alternative_label": alternatives[name].label
                    if name != "base"
                    else "base case",
                    "sequence": sid,
                    "sequence_label": seq["label"],
                    "median_os_months": os_["median"],
                    "rmst_months": os_["rmst"],
                    "rmst_horizon_months": os_["rmst_horizon"],
                    **{f"os_{t}_months": v for t, v in os_["survival_at"].items()},
                }
                if cea:
                    means = cea["sequences"][sid]
                    row["qalys_discounted"] = means["qalys_discounted"]["mean"]
                    row[f"costs_discounted_{cea['currency']}"] = means["costs_discounted"]["mean"]
                    row["nmb"] = cea["nmb"][sid]
                    row["icer"] = status[sid]["icer"]
                    row["status"] = status[sid]["status"]
                rows.append(row)
        self.row_dicts = rows

    @property
    def table(self) -> pandas.DataFrame:
        """Tidy: one row per (alternative, sequence)."""
        import pandas as pd

        return pd.DataFrame(self.row_dicts)

    def write(self, stage: Staging, *, manifest: dict | None = None) -> None:
        """structural.csv and the manifest (each alternative's changes, reason and
        warnings)."""
        write_csv(stage.path / "structural.csv", self.row_dicts)
        alternatives = self.study.scenario.structural_alternatives
        stage.write_manifest(
            self.study.manifest_header()
            | {
                "command": "structural",
                "intervals": "none: each cell is a base-case run (Monte Carlo 95% intervals in "
                "each alternative's own run); structural uncertainty is the spread across rows",
                "alternatives": {
                    name: {"label": a.label, "assumption": a.assumption, "changes": a.changes}
                    for name, a in alternatives.items()
                },
                "warnings": {name: run.summary_dict["warnings"] for name, run in self.runs.items()},
                **(manifest or {}),
            }
        )


def _draw_rows(names, outputs) -> list[dict]:
    n_draws = next(iter(outputs.values())).shape[0]
    return [
        {"draw": d, "sequence": s, **{k: float(outputs[k][d, q]) for k in outputs}}
        for d in range(n_draws)
        for q, s in enumerate(names)
    ]


def _base_outputs(base: RunResult, names) -> dict[str, np.ndarray]:
    """The PSA outputs of the base-case run: {output: (n_seq,)}."""
    cea = base.summary_dict["cea"]["sequences"]
    out = {
        k: np.array([cea[s][f"{k}_discounted"]["mean"] for s in names])
        for k in ("lys", "qalys", "costs")
    }
    medians = [base.summary_dict["sequences"][s]["os_from_1l"]["median"] for s in names]
    out["os_median"] = np.array([np.inf if m is None else m for m in medians])
    return out


def dsa_summary(st, params, cases, names, outputs, n_patients, seed, focus, reference) -> dict:
    """The content of dsa_summary.json: rows sorted by the swing in incremental NMB."""
    wtp = st.resolved.econ_inputs["willingness_to_pay"]
    currency = st.resolved.econ_inputs["currency"]
    nmb = econ.nmb(outputs["costs"], outputs["qalys"], wtp)[0]
    f, r = names.index(focus), names.index(reference)
    inc_nmb = nmb[:, f] - nmb[:, r]
    rows = []
    for i, p in enumerate(params):
        a, b = 1 + 2 * i, 2 + 2 * i
        cols = st.table.column_slice(p)
        rows.append(
            {
                "parameter": p.label,
                "key": p.name,
                "unit": p.display_unit(currency),
                "illustrative": p.illustrative,
                "low_input": _fmt_input(cases[a, cols]),
                "high_input": _fmt_input(cases[b, cols]),
                "inc_nmb_low": float(inc_nmb[a]),
                "inc_nmb_high": float(inc_nmb[b]),
                "os_median_low": _finite_or_none(outputs["os_median"][a, f]),
                "os_median_high": _finite_or_none(outputs["os_median"][b, f]),
                **{f"nmb_low.{s}": float(nmb[a, q]) for q, s in enumerate(names)},
                **{f"nmb_high.{s}": float(nmb[b, q]) for q, s in enumerate(names)},
            }
        )
    rows.sort(key=lambda x: -abs(x["inc_nmb_high"] - x["inc_nmb_low"]))
    return {
        "scenario": st.scenario.name,
        "n_patients_per_case": n_patients,
        "seed": seed,
        "common_random_numbers": True,
        "focus": focus,
        "reference": reference,
        "willingness_to_pay": wtp,
        "currency": currency,
        "labels": {s: st.scenario.sequences[s].label for s in names},
        "base": {
            "inc_nmb": float(inc_nmb[0]),
            "os_median": {
                s: _finite_or_none(outputs["os_median"][0, q]) for q, s in enumerate(names)
            },
            "nmb": {s: float(nmb[0, q]) for q, s in enumerate(names)},
        },
        "ranges": "2.5% and 97.5% points of each parameter's PSA distribution",
        "rows": rows,
        "held_fixed": st.held_fixed(),
        "warnings": st.warnings(),
    }


def _tornado_plots(directory: Path, summary: dict) -> None:
    """tornado_nmb.png and tornado_os.png: inputs by label with their unit, the sequences
    by label, illustrative inputs marked."""
    from simseq import cea_plots

    rows, cur, wtp = summary["rows"], summary["currency"], summary["willingness_to_pay"]
    labels = summary["labels"]
    focus, reference = summary["focus"], summary["reference"]

    def bars(low: str, high: str) -> list[dict]:
        return [
            {
                "parameter": f"{x['parameter']}, {x['unit']}" if x["unit"] else x["parameter"],
                "illustrative": x["illustrative"],
                "low_label": x["low_input"],
                "high_label": x["high_input"],
                "low": _nan_if_none(x[low]),
                "high": _nan_if_none(x[high]),
            }
            for x in rows
        ]

    cea_plots.plot_tornado(
        directory / "tornado_nmb.png",
        bars("inc_nmb_low", "inc_nmb_high"),
        outcome_label=f"Incremental NMB ({cur}) at WTP {_money(wtp, cur)} per QALY",
        base_value=summary["base"]["inc_nmb"],
        title=f"{labels[focus]} vs {labels[reference]}",
    )
    cea_plots.plot_tornado(
        directory / "tornado_os.png",
        bars("os_median_low", "os_median_high"),
        outcome_label="Median OS from the start of first line (months)",
        base_value=_nan_if_none(summary["base"]["os_median"][focus]),
        title=labels[focus],
    )


def _money(x: float, currency: str) -> str:
    return f"{currency} {x:,.0f}"


def _fmt_input(values: np.ndarray) -> str:
    """A parameter's value in a row: a split by its first part (which its label names)."""
    return plain_number(values[0])


def target_rows(study: Study) -> list[dict]:
    """targets.csv: each calibration target as a published point to overlay: regimen,
    quantity, the median (months) and its 95% interval from the distribution the PSA
    draws it from (none when the evidence reports no uncertainty)."""
    rows = []
    for t in study.resolved.targets:
        p = study.table.find(f"calibration.targets.{t.index}.target")
        median = float(p.base[0])
        se = getattr(p.distribution, "se_log", None)  # medians are log-normal
        rows.append(
            {
                "regimen": t.spec.regimen,
                "quantity": t.spec.quantity,
                "evidence": p.label,
                "median_months": median,
                "ci95_low_months": None if se is None else median * math.exp(-Z95 * se),
                "ci95_high_months": None if se is None else median * math.exp(Z95 * se),
            }
        )
    return rows


def _bayes_note(study, key: str, use: str) -> dict:
    """A Bayesian calibration's entries of a manifest's "calibration" (none for point):
    ``key`` ("base_case" or "per_case") says how its posterior is used."""
    if study.posterior is None:
        return {}
    summary = study.posterior.summary()
    return {
        "method": summary["method"],
        "posterior_mean": summary["posterior_mean"],
        "ess": summary["ess"],
        key: use,
    }


def calibration_rows(result: CalibrationResult) -> list[dict]:
    return [asdict(t) for t in result.targets]


def resolved_warnings(resolved: Resolved) -> list[str]:
    """What every output must say about its inputs: transported and borrowed evidence,
    renormalised mixes, illustrative (evidence-free) numbers."""
    warnings = [
        f"{t.sequence}: {t.regimen} at line {t.line} uses evidence measured after "
        f"{t.measured_after} ({', '.join(t.evidence_ids)}) but follows {t.used_after} here "
        f"(transported; hazard ratio {t.hazard_ratio:g})"
        for t in resolved.transports
    ]
    borrowed: dict[tuple[str, str, str], list[str]] = {}
    for b in resolved.borrowed:
        borrowed.setdefault((b.evidence_id, b.measured_on, b.used_for), []).append(b.path)
    warnings += [
        f"borrowed evidence: {eid} (measured on {on}) stands for {used} at {', '.join(paths)}"
        for (eid, on, used), paths in borrowed.items()
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
    for p in resolved.table.parameters:
        pooled = p.pooling.pooled if p.pooling is not None else None
        if pooled is not None and pooled.i2 is not None and pooled.i2 > HETEROGENEITY_WARNING:
            carried = (
                f"tau^2 = {pooled.tau2:.3g} is carried into the pooled SE ({pooled.se:.3g})"
                if pooled.method == "random_effects"
                else "pooled with fixed effect, so its SE understates the uncertainty "
                "(pooling: {method: random_effects} carries it)"
            )
            warnings.append(
                f"heterogeneous pool at {', '.join(p.paths)}: I^2 = {pooled.i2:.0%} across "
                f"{pooled.k} sources ({', '.join(p.ids)}): they disagree beyond sampling "
                f"error; {carried}"
            )
    targets = resolved.scenario.calibration.targets if resolved.scenario.calibration else []
    warnings += [
        f"calibration target of {t.regimen} is an assumption, not evidence: {t.target.value:g} "
        f"months ({t.target.assumption})"
        for t in targets
        if t.target.value is not None
    ]
    return warnings


def pooling_rows(table) -> list[dict]:
    """Every pooled median of the parameter table: sources, weights, method, tau^2, I^2, Q,
    the pooled value (months) and the SE of its log that a PSA draws with."""
    rows = []
    for p in table.parameters:
        if p.pooling is None:
            continue
        pooled = p.pooling.pooled
        rows.append(
            {
                "parameter": p.name,
                "used_at": list(p.paths),
                "sources": list(p.pooling.ids),
                "weights": [round(w, 6) for w in pooled.weights],
                "se_from": list(p.pooling.se_rules),
                "method": pooled.method,
                "tau2_estimator": pooled.tau2_estimator,
                "pooled_median": round(p.pooling.value, 6),
                "se_log_pooled": round(pooled.se, 6),
                "tau2": round(pooled.tau2, 6),
                "i2": None if pooled.i2 is None else round(pooled.i2, 6),
                "cochran_q": None if pooled.q is None else round(pooled.q, 6),
                "psa_se_log": None if p.distribution is None else p.distribution.se_log,
            }
        )
    return rows


def build_summary(
    scenario: Scenario, resolved: Resolved, model, tallies, cal, provenance: list, checks=()
) -> dict:
    """The content of summary.json: deterministic for a given scenario, N and seed."""
    sim = scenario.simulation
    landmarks = tuple(sim.landmarks)
    sequences = {}
    for sid in model.seq_names:
        s = {"label": scenario.sequences[sid].label}
        s.update(
            sequence_summary(model, tallies, sid, resolved.horizon, landmarks, outputs=sim.outputs)
        )
        moved = [asdict(t) for t in resolved.transports if t.sequence == sid]
        s["transported"] = moved
        s["renormalised"] = [asdict(r) for r in resolved.renormalised if r.sequence == sid]
        sequences[sid] = s
    warnings = resolved_warnings(resolved)
    for t in cal.targets:
        if abs(t.rel_error) > CALIBRATION_WARN:
            warnings.append(
                f"calibration: {t.target_id} reproduced to {t.rel_error:+.1%} only ("
                f"{t.achieved:.3g} vs {t.target:.3g} months by {t.method}"
                + (
                    f"; at N = {t.n_patients:,} the simulated median moves in steps): raise "
                    "calibration.n_patients"
                    if t.method == "simulation"
                    else ")"
                )
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
        "outputs": {"tallied": sim.outputs, "note": OUTPUTS_NOTE[sim.outputs]},
        "warnings": warnings,
        "sequences": sequences,
        "calibration": calibration_rows(cal),
        "provenance": [
            {k: v for k, v in asdict(p).items() if k != "pooling"}
            | {"value": None if p.value != p.value else p.value}
            for p in provenance
        ],
        "pooling": pooling_rows(resolved.table),
        "user_evidence": resolved.user_evidence,
    }
    if checks:
        summary["validation"] = list(checks)
        summary["validation_mape"] = validation.mape(checks)
    if resolved.economics is not None:
        summary["cea"] = cea_summary(resolved, model, tallies)
    return summary


def cea_summary(resolved: Resolved, model, tallies) -> dict:
    """Per-sequence LYs, QALYs and costs (means with MC 95% intervals), the incremental
    analysis on discounted costs and QALYs, and net monetary benefit at the WTP."""
    inputs = resolved.econ_inputs
    wtp = inputs["willingness_to_pay"]
    per_seq = {}
    for q, sid in enumerate(model.seq_names):
        means = econ_means(tallies.econ[0, q], tallies.n_patients)
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
        "nmb": {
            s: round(float(v), 6)
            for s, v in zip(names, econ.nmb(costs, qalys, wtp)[0, 0], strict=True)
        },
        "inputs": inputs,
    }


def input_rows(study: Study, row: np.ndarray) -> list[dict]:
    """inputs.csv: every input of the parameter table with the value simulated (``row``),
    its unit, where it comes from, how a PSA draws it (or why it is held fixed), and
    whether it is illustrative or transported from another prior line."""
    econ_inputs = study.resolved.econ_inputs if study.resolved.economics is not None else {}
    currency = econ_inputs.get("currency", "currency")
    transported = {i for t in study.resolved.transports for i in t.evidence_ids}
    rows = []
    for p in study.table.parameters:
        values = row[study.table.column_slice(p)]
        parts = [c[len(p.name) + 1 : -1] for c in p.columns] if len(p.columns) > 1 else [""]
        rows.append(
            {
                "input": p.label,
                "unit": p.display_unit(currency),
                "value": "; ".join(
                    f"{part} {plain_number(v)}".strip()
                    for part, v in zip(parts, values, strict=True)
                ),
                "group": p.group,
                "source": p.kind,
                "evidence": ", ".join(p.ids),
                "assumption_or_derivation": p.note,
                "psa_distribution": p.distribution.describe()
                if p.distribution is not None
                else f"held fixed: {p.fixed_because}"
                if p.fixed_because
                else "held fixed",
                "illustrative": p.illustrative,
                "transported": bool(transported & set(p.ids)),
                "used_at": "; ".join(p.paths),
                "key": p.name,
            }
        )
    return rows


def cea_rows(summary: dict) -> list[dict]:
    """cea.csv: one row per sequence in order of cost, with discounted LYs, QALYs and
    costs (means and Monte Carlo 95% intervals), increments against the reference and
    against the previous option on the frontier, ICER, dominance status and NMB."""
    cea = summary["cea"]
    cur = cea["currency"]
    rows = []
    for row in cea["icer_table"]:
        sid = row["sequence"]
        per, vs = cea["sequences"][sid], cea["versus_reference"][sid]
        out = {"sequence": sid, "label": summary["sequences"][sid]["label"]}
        for name, unit in (("lys", "years"), ("qalys", "QALYs"), ("costs", cur)):
            block = per[f"{name}_discounted"]
            out[f"{name}_discounted ({unit})"] = block["mean"]
            out[f"{name}_ci95_low ({unit})"], out[f"{name}_ci95_high ({unit})"] = block["ci95"]
        out[f"inc_costs_vs_reference ({cur})"] = vs["inc_costs"]
        out["inc_qalys_vs_reference (QALYs)"] = vs["inc_qalys"]
        out[f"icer_vs_reference ({cur} per QALY)"] = vs["icer"]
        out[f"inc_costs_vs_previous_on_frontier ({cur})"] = row["inc_cost"]
        out["inc_qalys_vs_previous_on_frontier (QALYs)"] = row["inc_effect"]
        out[f"icer_frontier ({cur} per QALY)"] = row["icer"]
        out["status"] = row["status"]
        out[f"nmb_at_wtp_{cea['willingness_to_pay']:g} ({cur})"] = cea["nmb"][sid]
        rows.append(out)
    return rows


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


def psa_summary(
    st, names, outputs, noise, draws, n_patients, seed, base_outputs, redrawn=0
) -> dict:
    """The content of psa_summary.json: statistics over the random draws, the base case
    beside them (``base_outputs``: {output: (n_seq,)}; ``redrawn``: rows redrawn because
    their calibration targets were out of reach)."""
    base = st.resolved
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
    for p in st.table.uncertain:
        groups.setdefault(p.group, []).append(p)
    for name, patterns in st.settings.evppi_groups.items():
        members = [p for p in st.table.uncertain if _matches(p, patterns)]
        if not members:
            raise ScenarioError(
                st.path, [(f"psa.evppi_groups.{name}", patterns, "matches no uncertain parameter")]
            )
        groups[name] = members
    evppi, warnings = {}, []
    if len(draws) < EVPPI_MIN_DRAWS:
        warnings.append(
            f"EVPPI from {len(draws):,} draws: the regression needs about {EVPPI_MIN_DRAWS:,} "
            "or more (Strong, Oakley & Brennan 2014) and overstates EVPPI with fewer; run "
            f"with --draws {EVPPI_MIN_DRAWS} or more before reading it"
        )
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
    if redrawn:
        warnings.append(
            f"{redrawn} drawn rows had calibration targets their own drawn inputs cannot reach "
            "(e.g. an OS median below what the drawn PFS allows) and were redrawn: the PSA "
            "samples the inputs' joint distribution truncated to consistent rows"
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
        "labels": {s: st.scenario.sequences[s].label for s in names},
        "effects": "discounted QALYs",
        "costs": "discounted",
        "statistics": "over the random draws only; the base case (every input at its base "
        "value, the same N and seed) is reported beside them, not mixed in",
        "sequences": {
            s: {k: _interval(outputs[k][:, q]) for k in OUTPUTS} for q, s in enumerate(names)
        },
        "base_case": {
            s: {k: _finite_or_none(base_outputs[k][q]) for k in OUTPUTS}
            for q, s in enumerate(names)
        },
        "icer_table": icer_rows,
        "ceac": {
            "wtp": rounded,
            "prob_best": {
                s: [round(float(v), 6) for v in prob_best[:, q]] for q, s in enumerate(names)
            },
        },
        "evpi": {
            "wtp": rounded,
            "value": [round(float(v), 6) for v in evpi],
            "unit": "currency per patient",
            "population": _evpi_population(st.settings, base.econ_inputs["discount_costs"]),
        },
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
            for p in st.table.uncertain
        ],
        "held_fixed": st.held_fixed(),
        "pooling": pooling_rows(st.table),
        "psa_settings": settings_used,
        "calibration": "calibration targets drawn from their evidence and the calibrated "
        "medians re-solved for every draw",
        "redrawn_draws": redrawn,
    }


def _evpi_population(settings, discount: float) -> dict | None:
    """Discounted patients the decision affects: ``population_per_year`` in each of
    ``decision_years`` years (a part year counts pro rata), year k discounted by
    (1 + rate)^-k; None when the scenario states no population."""
    if settings.population_per_year is None:
        return None
    per_year = float(settings.population_per_year.value)
    years = float(settings.decision_years.value)
    whole = int(years)
    weights = [(1.0 + discount) ** -k for k in range(whole)]
    if years > whole:
        weights.append((years - whole) * (1.0 + discount) ** -whole)
    return {
        "patients_per_year": per_year,
        "patients_per_year_assumption": settings.population_per_year.assumption,
        "decision_years": years,
        "decision_years_assumption": settings.decision_years.assumption,
        "discount_rate": discount,
        "discounted_patients": round(per_year * sum(weights), 6),
    }


def _psa_plots(directory, scenario, names, outputs, summary) -> None:
    """CE plane with the frontier, CEAC with the frontier and the stated WTP, EVPI (per
    patient and, with a stated population, for it) and EVPPI by parameter group, from the
    draws' ``outputs`` and their psa_summary.json content."""
    from simseq import cea_plots, econ

    wtp_grid = np.asarray(summary["ceac"]["wtp"])
    labels = [scenario.sequences[s].label or s for s in names]
    ref = names.index(scenario.economics.reference)
    inc_c = outputs["costs"] - outputs["costs"][:, [ref]]
    inc_q = outputs["qalys"] - outputs["qalys"][:, [ref]]
    cur, wtp = summary["currency"], summary["willingness_to_pay"]
    cea_plots.plot_ce_plane(
        directory / "ce_plane.png",
        inc_c,
        inc_q,
        labels,
        currency=cur,
        wtp=wtp,
        reference=labels[ref],
        ids=names,
    )
    prob = np.array([summary["ceac"]["prob_best"][s] for s in names]).T
    frontier = econ.ceaf(outputs["costs"], outputs["qalys"], wtp_grid, labels)
    cea_plots.plot_ceac(
        directory / "ceac.png",
        wtp_grid,
        prob,
        labels,
        currency=cur,
        frontier=frontier,
        wtp=wtp,
        ids=names,
    )
    evpi = np.array(summary["evpi"]["value"])
    population = summary["evpi"]["population"]
    cea_plots.plot_evpi(
        directory / "evpi.png",
        wtp_grid,
        evpi,
        currency=cur,
        wtp=wtp,
        population=None if population is None else population["discounted_patients"],
        population_note=""
        if population is None
        else f"Population: {population['patients_per_year']:,.0f} patients a year for "
        f"{population['decision_years']:g} years, discounted at "
        f"{population['discount_rate']:.1%} a year (psa.population_per_year, decision_years).",
    )
    evppi = summary["evppi"]
    cea_plots.plot_evppi(
        directory / "evppi.png",
        evppi["wtp"],
        evppi["groups"],
        np.interp(evppi["wtp"], wtp_grid, evpi),
        currency=cur,
        wtp=wtp,
        **({"method": evppi["caption"]} if "caption" in evppi else {}),
    )
