"""Study: a scenario loaded, resolved and calibrated once; run, PSA, DSA and sweeps on it.

This is simseq's Python API (re-exported from ``simseq``)::

    study = simseq.load("scenarios/cea_base_case.yaml")  # validated, resolved
    study.parameters                                     # one row per input
    res = study.run(n_patients=100_000, seed=1)          # in memory, writes nothing
    res.summary, res.survival                            # DataFrames
    res.save("results/x")                                # the files `simseq run` writes
    psa = study.psa(n_draws=200, n_patients=2_000, seed=5)
    psa.draws, psa.parameters, psa.base

A run, a PSA draw, a one-way bound and a sweep point are all rows of one
parameter table (``simseq.params``) bound to one structure (``model.bind``):
nothing is resolved again. A run is the base row; ``psa.base`` is that run.
No user interface here: progress and notes go to callbacks the CLI supplies.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np

from simseq import validation
from simseq.calibrate import (
    CalibrationResult,
    base_calibration,
    calibrate_cached,
    input_hash,
    solve_rows,
)
from simseq.limits import MAX_PATIENTS, MAX_PSA_BYTES, MAX_SEED
from simseq.manifest import manifest_header
from simseq.model import BindError, ModelArrays, bind, econ_range_problem
from simseq.params import Empirical, Parameter
from simseq.resolve import Resolved, resolve, scenario_evidence
from simseq.results import (
    OUTPUTS,
    AveragedPSAResult,
    DSAResult,
    PSAResult,
    RunResult,
    StructuralResult,
    SweepResult,
    resolved_warnings,
)
from simseq.results_dir import ScenarioIdentity
from simseq.scenario import (
    PSASettings,
    RunOutputs,
    Scenario,
    ScenarioError,
    alternative_scenario,
    calibrate_marked,
    free_key,
    freed_quantity,
    load_scenario_files,
    parse_scenario,
)

Progress = Callable[[int], None]
Say = Callable[[str], None]


class Study:
    """A scenario ready to simulate: validated, resolved into a structure and a parameter
    table, calibrated on first use. Build with :func:`load` or :meth:`from_dict`."""

    def __init__(self, scenario: Scenario, *, path: str = "<scenario>", inputs=()):
        self.scenario = scenario
        self.path = str(path)
        self.inputs: tuple[str, ...] = tuple(inputs)
        """The scenario file and every file it extends or reads evidence from."""
        self.evidence = scenario_evidence(scenario, self.path)
        self.settings: PSASettings = scenario.psa or PSASettings()
        self.resolved: Resolved = resolve(scenario, self.evidence, _stub(scenario), self.path)
        self.validation = validation.check(scenario, self.evidence, self.path)
        """``validation.Check`` of each ``validation:`` entry: a published result and the
        estimator ``run`` applies to the simulated patients."""
        self.table = self.resolved.table
        self.table.assume_uncertainty(
            _setting(self.settings.cost_se_fraction),
            _setting(self.settings.utility_se_fraction),
            _setting(self.settings.median_se_log),
        )
        try:
            self.structure = self.resolved.structure()
            self.cohorts = self.resolved.cohort_structure()
        except ValueError as err:  # a model the scenario checks did not foresee
            raise ScenarioError(self.path, [("(model)", None, str(err))]) from None
        self.calibration: CalibrationResult | None = None
        self.calibration_cached = False
        """Whether ``calibration`` came from a cache (``calibrate(cache_dir=...)``)."""
        self.calibration_note: str | None = None
        """Why a cache was not used, when one was found and refused."""
        self.checkpoints = None
        """The task checkpoints of the last distributed analysis (cleared once written)."""
        self.last_calibration = None
        """The ``solve.DrawCalibration`` of the last analysis's rows."""
        self.posterior = None
        """The ``posterior.Posterior`` of a Bayesian calibration (``calibrate()``)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "<dict>") -> Study:
        """A study of a scenario given as a dict (e.g. a YAML file edited in memory);
        ``name`` stands for the file in messages. Evidence files are relative to the
        working directory."""
        return cls(parse_scenario(dict(data), name), path=name)

    # -- inputs ----------------------------------------------------------------
    @property
    def parameters(self):
        """pandas DataFrame, one row per input: value, distribution (or why it is held
        fixed), group, unit, source and the key paths it feeds; indexed by name."""
        return self.table.frame()

    @property
    def horizon(self) -> float:
        return self.resolved.horizon

    def calibrate(
        self,
        *,
        threads: int | None = None,
        say: Say | None = None,
        cache_dir: str | Path | None = None,
    ) -> CalibrationResult:
        """Solve the base case's calibrated medians (once; later calls return the same
        result). With ``cache_dir`` an intact cache of the same inputs there is reused
        (``simseq.calibrate``); ``say`` receives progress notes. ``threads`` is accepted
        for symmetry with the other analyses (quadrature does not use it). With
        ``calibration.method: bayes`` the posterior is sampled instead (``posterior``;
        ~1 s by quadrature, not cached) and ``calibration.values`` holds the posterior
        means of the calibrated medians."""
        if self.calibration is None and self.bayes:
            from simseq.posterior import calibrate_bayes

            self.posterior = calibrate_bayes(self.resolved, file=self.path, say=say)
            # the base case at the posterior mean; one-way bounds at posterior quantiles
            for j, f in enumerate(self.posterior.free):
                self.table.replace(
                    self.table.find(f.path).name,
                    base=(float(self.posterior.mean[j]),),
                    distribution=Empirical(tuple(self.posterior.sample[:, j].tolist())),
                    fixed_because="",
                )
            self.calibration = CalibrationResult(
                {
                    key: float(self.posterior.mean[j])
                    for j, f in enumerate(self.posterior.free)
                    for key, col in self.resolved.calibrated_columns.items()
                    if col == f.column
                },
                [],
                input_hash(self.scenario, self.evidence),
                self.scenario.simulation.seed,
                0,
            )
        if self.calibration is None:
            if say is not None and self.resolved.targets:
                say(f"calibrating {len(self.resolved.targets)} targets ...")
            self.calibration, self.calibration_cached, self.calibration_note = calibrate_cached(
                self.scenario,
                self.evidence,
                Path(cache_dir) if cache_dir is not None else None,
                lambda: base_calibration(
                    self.scenario,
                    self.evidence,
                    self.resolved,
                    self.cohorts,
                    self.table.base_row(),
                    file=self.path,
                ),
                say=say,
            )
        return self.calibration

    @property
    def bayes(self) -> bool:
        """Whether the scenario's calibration is Bayesian (``calibration.method: bayes``)."""
        cal = self.scenario.calibration
        return cal is not None and cal.method == "bayes"

    def rows(self, overrides: Mapping[str, object] | None = None) -> np.ndarray:
        """float64 (1, n_columns): the base row with ``overrides`` (by parameter name or
        key path), its calibrated medians solved (the base case's calibration when
        nothing is overridden)."""
        if self.bayes:
            self.calibrate()  # the table's base row holds the posterior means from then on
            return self.table.rows_with(overrides or {})
        row = self.table.rows_with(overrides or {})
        if overrides:
            return self.calibrated_rows(row)
        values = self.calibrate().values
        for key, col in self.resolved.calibrated_columns.items():
            row[0, col] = values[key]
        return row

    def calibrated_rows(self, rows: np.ndarray, label: str = "") -> np.ndarray:
        """``rows`` with every calibrated median re-solved for its row's inputs, all rows at
        once by the one calibrator (``calibrate.solve_rows``)."""
        return self.solve_rows(rows, label)[0]

    def solve_rows(self, rows: np.ndarray, label: str = "", keep_unreachable: bool = False):
        """(``calibrated_rows``, the ``solve.DrawCalibration`` behind them, or None without
        calibration targets)."""
        return solve_rows(
            self.scenario,
            self.resolved,
            self.cohorts,
            rows,
            file=self.path,
            label=label,
            keep_unreachable=keep_unreachable,
        )

    def model(self, rows: np.ndarray, label: str | None = None) -> ModelArrays:
        """``bind`` with a located ``ScenarioError`` for rows the kernels cannot use
        (``label`` names the analysis the rows come from, e.g. "PSA")."""
        return self.model_of(self.structure, rows, label)

    def model_of(self, structure, rows: np.ndarray, label: str | None = None) -> ModelArrays:
        """``model`` for another structure of this study (e.g. the calibration cohorts)."""
        try:
            model = bind(structure, rows)
        except BindError as err:
            raise ScenarioError(self.path, [(label or "(model)", None, str(err))]) from None
        problem = econ_range_problem(model, self.horizon)
        if problem is not None:
            where = f"economics ({label})" if label else "economics"
            raise ScenarioError(self.path, [(where, None, problem)])
        return model

    # -- analyses --------------------------------------------------------------
    def run(
        self,
        n_patients: int | None = None,
        seed: int | None = None,
        *,
        overrides: Mapping[str, object] | None = None,
        threads: int | None = None,
        chunk_size: int | None = None,
        progress: Progress | None = None,
        on_compile: Callable[[], None] | None = None,
        distributed: dict | None = None,
        checkpoints_root: Path | None = None,
        say: Say | None = None,
        outputs: RunOutputs | None = None,
    ) -> RunResult:
        """Simulate the base case (or the base with ``overrides``): every sequence's
        outcomes with Monte Carlo intervals. ``distributed`` (backend, scheduler, workers,
        resume) runs the patients as checkpointed tasks (``simseq.backend``).
        ``outputs`` ("full" or "sequence_os") overrides ``simulation.outputs``."""
        sim = self.scenario.simulation
        n = _checked_patients(sim.n_patients if n_patients is None else n_patients)
        seed = _checked_seed(sim.seed if seed is None else seed)
        outputs = _checked_outputs(sim.outputs if outputs is None else outputs)
        self.calibrate(threads=threads, say=say)
        rows = self.rows(overrides)
        model = self.model(rows)
        tallies, checkpoints = _simulate_run(
            model,
            n,
            seed,
            outputs=outputs,
            horizon=self.horizon,
            bin_width=sim.bin_width,
            threads=threads,
            chunk_size=chunk_size,
            progress=progress,
            on_compile=on_compile,
            distributed=distributed,
            checkpoints_root=checkpoints_root,
            say=say,
        )
        observed = self.as_observed(rows, n, seed, threads=threads, chunk_size=chunk_size)
        return RunResult(self, rows, model, tallies, n, seed, checkpoints, observed, outputs)

    def as_observed(self, rows: np.ndarray, n_patients: int, seed: int, **how) -> dict:
        """Sequence id -> OS from first-line start (``outcomes.SurvivalCurve``) of each
        sequence of a ``comparisons:`` entry simulated in the cohort population of its
        second-line regimen rather than the common one; the same patient streams as the
        run's (``seed``), row ``rows[0]``."""
        from simseq.comparisons import observed_regimen
        from simseq.engine.codes import TALLY_OS_GIVEN_ENTRY
        from simseq.model import structure_of
        from simseq.outcomes import tally_curve

        wanted = {sid for c in self.scenario.comparisons.values() for sid in c.sequences}
        out = {}
        for seq in self.resolved.sequences:
            if seq.name not in wanted:
                continue
            regimen = observed_regimen(self.scenario, seq.name)
            structure = structure_of([seq], self.resolved.observed_population(regimen))
            model = self.model_of(structure, rows, f"comparisons ({seq.name} as observed)")
            tallies, _ = _simulate_cases(
                model,
                n_patients,
                seed,
                progress=None,
                distributed=None,
                horizon=self.horizon,
                bin_width=self.scenario.simulation.bin_width,
                **{k: v for k, v in how.items() if v is not None},
            )
            out[seq.name] = tally_curve(tallies, TALLY_OS_GIVEN_ENTRY, [0])
        return out

    def psa(
        self,
        n_draws: int | None = None,
        n_patients: int | None = None,
        seed: int | None = None,
        **execution,
    ) -> PSAResult:
        """Probabilistic sensitivity analysis: ``n_draws`` random rows of the parameter
        table (calibrated medians re-solved per row), each simulated with its own random
        streams; statistics over those draws only, with the base case (``run`` at the
        same N and seed) beside them. ``execution``: threads, progress, distributed,
        checkpoints_root, say, as for ``run``."""
        self.need_economics()
        n_draws = n_draws or self.settings.n_draws
        n_patients = n_patients or self.settings.n_patients
        seed = _checked_seed(self.scenario.simulation.seed if seed is None else seed)
        self._check_size(n_draws, "PSA")
        base = self.run(
            n_patients, seed, threads=execution.get("threads"), say=execution.get("say")
        )
        if self.bayes:  # calibration uncertainty: row d carries posterior draw d
            draws = self.posterior.with_draws(self.table.draw(n_draws, seed), seed)
            solved, redrawn = None, 0
        else:
            draws, solved, redrawn = self.psa_rows(n_draws, seed)
        names, outputs, noise = self._cases(
            draws, n_patients, seed, False, "PSA", solved=solved, **execution
        )
        result = PSAResult(
            self, base, draws, names, outputs, noise, n_patients, seed, redrawn=redrawn
        )
        result.calibration = self.last_calibration
        return result

    def averaged_psa(
        self,
        n_draws: int | None = None,
        n_patients: int | None = None,
        seed: int | None = None,
        **execution,
    ) -> AveragedPSAResult:
        """A model-averaged PSA: the base case and each structural alternative get draws in
        proportion to their weights (``psa.model_averaging``), each structure's draws a
        PSA of its own (its own calibration, targets and parameter table), pooled into one
        sample of the decision. ``execution`` as for ``psa``."""
        averaging = self.settings.model_averaging
        if averaging is None:
            raise ScenarioError(
                self.path,
                [("psa.model_averaging", None, "no weights declared: nothing to average")],
            )
        self.need_economics()
        n_draws = n_draws or self.settings.n_draws
        counts = _shares(averaging.weights, n_draws)
        components = {}
        for name, n_k in counts.items():
            if n_k == 0:
                continue
            study = self if name == "base" else self.alternative(name)
            if execution.get("say") is not None:
                execution["say"](f"model averaging: {name}, {n_k:,} of {n_draws:,} draws")
            study.calibrate(threads=execution.get("threads"), say=execution.get("say"))
            components[name] = study.psa(n_k, n_patients, seed, **execution)
        return AveragedPSAResult(self, components, dict(averaging.weights))

    def psa_rows(self, n_draws: int, seed: int):
        """(draws, (calibrated rows, DrawCalibration) or None, number redrawn): ``n_draws``
        random rows of the table whose calibration targets their own inputs can reach.

        A drawn target can be out of reach of the same row's other draws (a second-line OS
        median drawn below what the drawn PFS allows, whatever happens after progression).
        Such a row is not a possible world, so it is redrawn from fresh streams (rejection
        sampling: the joint distribution truncated to consistent rows); the PSA reports
        how many."""
        draws = self.table.draw(n_draws, seed)
        if not self.resolved.targets:
            return draws, None, 0
        rows, cal = self.solve_rows(draws, "PSA", keep_unreachable=True)
        redrawn = 0
        for attempt in range(1, MAX_REDRAW_ROUNDS + 1):
            bad = np.flatnonzero(~cal.ok)
            if bad.size == 0:
                return draws, (rows, cal), redrawn
            redrawn += bad.size
            fresh = self.table.draw(bad.size, seed, attempt)
            fresh_rows, fresh_cal = self.solve_rows(fresh, "PSA", keep_unreachable=True)
            draws[bad], rows[bad] = fresh, fresh_rows
            cal = cal.with_draws(bad, fresh_cal)
        # still unreachable after every round: the scenario, not chance, is at fault
        left = cal.failures()
        raise ScenarioError(
            self.path,
            [
                (
                    "calibration.targets",
                    len({d for d, _, _ in left}),
                    f"draws out of {n_draws} still drew targets their own inputs cannot reach "
                    f"after {MAX_REDRAW_ROUNDS} redraws (e.g. {left[0][2]}): the targets' and "
                    "the inputs' distributions contradict each other; check the bounds and "
                    "the targets' evidence",
                )
            ],
        )

    def dsa(
        self,
        n_patients: int = 100_000,
        seed: int | None = None,
        *,
        sequence: str | None = None,
        **execution,
    ) -> DSAResult:
        """One-way sensitivity analysis: each uncertain input at the 2.5% and 97.5% points
        of its distribution, the others at base, with common random numbers; the tornado
        is for incremental NMB of ``sequence`` (default: the first that is not the
        reference) against the reference."""
        self.need_economics()
        focus = self.focus_sequence(sequence)
        reference = self.scenario.economics.reference
        seed = _checked_seed(self.scenario.simulation.seed if seed is None else seed)
        params, cases = self.table.one_way_rows()
        names, outputs, _ = self._cases(cases, n_patients, seed, True, "DSA", **execution)
        return DSAResult(self, params, cases, names, outputs, n_patients, seed, focus, reference)

    def sweep(
        self,
        grid: Mapping[str, Sequence[float]],
        n_patients: int = 100_000,
        seed: int | None = None,
        **execution,
    ) -> SweepResult:
        """Outcomes over a grid of scalar inputs (by parameter name or key path: each
        value list an axis, every combination a point), common random numbers."""
        self.need_economics()
        seed = _checked_seed(self.scenario.simulation.seed if seed is None else seed)
        swept = {name: self.scalar_parameter(name) for name in grid}
        points = list(itertools.product(*(list(map(float, v)) for v in grid.values())))
        cases = np.concatenate(
            [
                self.table.rows_with(
                    {p.name: v for p, v in zip(swept.values(), point, strict=True)}
                )
                for point in points
            ]
        )
        names, outputs, _ = self._cases(cases, n_patients, seed, True, "sweep", **execution)
        return SweepResult(self, swept, points, names, outputs, n_patients, seed)

    def alternative(self, name: str) -> Study:
        """Structural alternative ``name`` of the scenario, as a study of its own."""
        scenario = alternative_scenario(self.scenario, name, self.path)
        try:
            return Study(scenario, path=self.path, inputs=self.inputs)
        except ScenarioError as err:
            raise ScenarioError(
                self.path,
                [(f"structural_alternatives.{name}: {p}", v, w) for p, v, w in err.problems],
            ) from None

    def structural(
        self, n_patients: int | None = None, seed: int | None = None, **execution
    ) -> StructuralResult:
        """Structural uncertainty: the base case and every structural alternative, each
        calibrated to the same targets and run at the same N and seed, side by side.
        ``execution``: threads, say."""
        if not self.scenario.structural_alternatives:
            raise ScenarioError(
                self.path,
                [("structural_alternatives", None, "none declared: nothing to compare")],
            )
        studies = {"base": self} | {
            name: self.alternative(name) for name in self.scenario.structural_alternatives
        }
        runs = {}
        for name, study in studies.items():
            if execution.get("say") is not None:
                execution["say"](f"structural: {name} ...")
            runs[name] = study.run(n_patients, seed, **execution)
        return StructuralResult(self, runs)

    def focus_sequence(self, sequence: str | None) -> str:
        """The sequence a tornado is drawn for: ``sequence``, or the first that is not the
        economic reference; a located error if it is not a sequence."""
        names = list(self.scenario.sequences)
        reference = self.scenario.economics.reference
        focus = sequence or next(s for s in names if s != reference)
        if focus not in names:
            raise ScenarioError(
                self.path,
                [("--sequence", focus, f"not a sequence; use one of {', '.join(names)}")],
            )
        return focus

    def scalar_parameter(self, name: str) -> Parameter:
        """The scalar parameter called ``name`` (or used at key path ``name``); ValueError
        otherwise."""
        try:
            p = self.table.find(name)
        except KeyError as err:
            raise ValueError(f"{name!r}: not a scalar parameter; {err.args[0]}") from None
        if p.columns != (p.name,):
            raise ValueError(
                f"{name!r}: {p.name} is a split ({', '.join(p.columns)}); give a scalar parameter"
            )
        return p

    # -- shared machinery ------------------------------------------------------
    def _check_size(self, n_cases: int, label: str) -> None:
        """Refuse, before any work, an analysis whose tallies would not fit in memory."""
        n_seq = len(self.structure.template.seq_names)
        need = _case_bytes(n_cases, n_seq, self.horizon, self.scenario.simulation.bin_width)
        if need > MAX_PSA_BYTES:
            raise ScenarioError(
                self.path,
                [
                    (
                        label,
                        n_cases,
                        f"{n_cases:,} cases x {n_seq} sequences would keep {need / 1e9:.1f} GB "
                        f"of histograms and sums; at most {MAX_PSA_BYTES / 1e9:.0f} GB: fewer "
                        "draws or a shorter horizon",
                    )
                ],
            )

    def _cases(
        self,
        cases: np.ndarray,
        n_patients: int,
        seed: int,
        common_streams: bool,
        label: str,
        *,
        threads: int | None = None,
        progress: Progress | None = None,
        distributed: dict | None = None,
        checkpoints_root: Path | None = None,
        say: Say | None = None,
        solved: tuple | None = None,
    ) -> tuple[list[str], dict, dict]:
        """Simulate rows ``cases`` (n_cases, n_columns): (sequence names, outputs,
        patient-noise variances), each output float64 (n_cases, n_seq). ``solved``: the
        rows already calibrated, with their DrawCalibration (else they are solved here)."""
        n_seq = len(self.structure.template.seq_names)
        self._check_size(len(cases), label)
        self.calibrate(threads=threads, say=say)
        if self.bayes:  # nothing to solve: the posterior is in the rows already
            rows = cases
        else:
            rows, self.last_calibration = solved or self.solve_rows(cases, label)
        model = self.model(rows, label)
        if say is not None:
            say(
                f"{label}: simulating {len(cases):,} cases x {n_patients:,} patients x "
                f"{n_seq} sequences ..."
            )
        tallies, self.checkpoints = _simulate_cases(
            model,
            n_patients,
            seed,
            horizon=self.horizon,
            bin_width=self.scenario.simulation.bin_width,
            # PSA draws on their own streams (1, 2, ...: not the base case's 0); one-way
            # bounds and sweep points share the base case's (common random numbers)
            draw_lo=0 if common_streams else 1,
            common_streams=common_streams,
            label=label,
            threads=threads,
            progress=progress,
            distributed=distributed,
            checkpoints_root=checkpoints_root,
            say=say,
        )
        return _case_outputs(model, tallies, n_patients)

    # -- reporting ---------------------------------------------------------------
    @property
    def identity(self) -> ScenarioIdentity | None:
        """The scenario file results belong to (None for a study built from a dict)."""
        return ScenarioIdentity.of(self.path) if Path(self.path).is_file() else None

    def manifest_header(self) -> dict:
        """The fields every manifest of this study's results starts with."""
        identity = self.identity
        if identity is None:
            return {**manifest_header(None), "scenario": self.scenario.model_dump(mode="json")}
        return manifest_header(identity, self.inputs)

    def warnings(self) -> list[str]:
        """What every output must say about its inputs (transported evidence, renormalised
        mixes, illustrative numbers, user evidence, assumed calibration targets)."""
        return resolved_warnings(self.resolved)

    def held_fixed(self) -> list[dict]:
        """Inputs a PSA holds at their base value, each with why."""
        return [
            {
                "name": p.name,
                "value": p.base[0] if p.columns == (p.name,) else list(p.base),
                "because": p.fixed_because,
            }
            for p in self.table.held_fixed
        ]

    def need_economics(self) -> None:
        if self.scenario.economics is None:
            raise ScenarioError(
                self.path, [("economics", None, "sensitivity analyses need an economics: section")]
            )


def load(path: str | Path, *, method: str | None = None) -> Study:
    """A :class:`Study` of the scenario file at ``path`` (validated and resolved; nothing
    is simulated or written). Problems raise ``ScenarioError`` naming file and key path.
    ``method`` ("point" or "bayes") overrides the scenario's ``calibration.method``."""
    scenario, inputs = load_scenario_files(str(path))
    if method is not None:
        scenario = with_method(scenario, method, str(path))
    return Study(scenario, path=str(path), inputs=inputs)


def with_method(scenario: Scenario, method: str, file: str) -> Scenario:
    """``scenario`` with ``calibration.method`` set to ``method``, checked again as if the
    file said so."""
    cal = scenario.calibration
    if cal is None:
        raise ScenarioError(file, [("calibration", None, f"--method {method}: no calibration")])
    if cal.method == method:
        return scenario
    data = scenario.model_dump(exclude_unset=True)
    data["calibration"]["method"] = method
    try:
        return parse_scenario(data, file)
    except ScenarioError as err:
        problems = [(loc, v, f"with --method {method}: {msg}") for loc, v, msg in err.problems]
        raise ScenarioError(file, problems) from None


def parse_sweep(spec: str) -> tuple[str, np.ndarray]:
    """'NAME=LO:HI:STEPS' -> (name, STEPS evenly spaced values from LO to HI)."""
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
    return name, np.linspace(lo, hi, steps)


# Rounds of redrawing PSA rows whose calibration targets are out of their inputs' reach; a
# few per cent of rows need one round, so running out means the scenario is at fault.
MAX_REDRAW_ROUNDS = 20
_EXAMPLE = "sequences.atzbev_len.lines.0.next_line=0.5:0.9:5"


def _shares(weights: Mapping[str, float], n: int) -> dict[str, int]:
    """``n`` draws split in proportion to ``weights`` (largest remainders; sums to n)."""
    exact = {k: w * n for k, w in weights.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    by_remainder = sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)
    for k in by_remainder[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def _stub(scenario: Scenario) -> dict[str, float]:
    """Each calibrated median at the geometric mean of its bracket (at its prior median
    for a Bayesian calibration): the structure does not depend on it, and the
    calibrator replaces it in every row."""
    stub = {}
    cal = scenario.calibration
    if cal is not None and cal.method == "bayes":
        marked = calibrate_marked(scenario)
        for path, prior in cal.priors.items():
            if path in marked:
                rid, rest = path.split(".", 2)[1:]
                stub[f"{rid}.{free_key(rest)}"] = prior.median
        return stub
    for tgt in scenario.calibration.targets if scenario.calibration else []:
        lo, hi = freed_quantity(scenario.regimens[tgt.regimen], tgt.free).calibrate.bounds
        stub[f"{tgt.regimen}.{free_key(tgt.free)}"] = math.sqrt(lo * hi)
    return stub


def _setting(q) -> float | None:
    """A psa: setting's number (explicit values with an assumption only)."""
    if q is None:
        return None
    if q.value is None:
        raise ScenarioError("<scenario>", [("psa", q, "psa settings take value + assumption")])
    return float(q.value)


def _checked_patients(n: int) -> int:
    if not 1 <= n <= MAX_PATIENTS:
        raise ValueError(f"n_patients {n}: allowed 1 to {MAX_PATIENTS:,}")
    return int(n)


def _checked_outputs(outputs: str) -> str:
    if outputs not in get_args(RunOutputs):
        allowed = " or ".join(repr(o) for o in get_args(RunOutputs))
        raise ValueError(f"outputs {outputs!r}: allowed {allowed}")
    return outputs


def _checked_seed(seed: int) -> int:
    if not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed {seed}: allowed 0 to 2^63 - 1")
    return int(seed)


def _case_bytes(n_cases: int, n_seq: int, horizon: float, bin_width: float) -> float:
    """Memory the per-case OS histograms and economic sums take (bytes)."""
    from simseq.engine.codes import N_BATCHES, N_ECON
    from simseq.simulator import n_bins_for

    return n_cases * n_seq * 8 * (2 * n_bins_for(horizon, bin_width) + N_ECON * N_BATCHES * 2)


# --------------------------------------------------------------------------- #
# Simulation: every analysis simulates through backend.run_simulation
# --------------------------------------------------------------------------- #


def _simulate_run(model, n_patients, seed, *, outputs, distributed, **how):
    """(tallies of a run, task checkpoints or None): ``backend.run_simulation`` with the
    histograms the run's summary and report read (``outputs``: "full" or "sequence_os",
    which needs no exit counts either); ``distributed``: backend, scheduler, workers,
    resume (patient tasks of ``chunk_size``)."""
    from simseq.backend import run_simulation
    from simseq.outcomes import run_tallies
    from simseq.simulator import DEFAULT_CHUNK

    how["chunk_size"] = how.get("chunk_size") or DEFAULT_CHUNK
    dist = dict(distributed or {})
    if dist:
        dist.setdefault("task_patients", how["chunk_size"])
    return run_simulation(
        model,
        n_patients,
        seed,
        tallies=run_tallies(model, outputs),
        exit_counts=outputs == "full",
        label="run",
        **how,
        **dist,
    )


def _simulate_cases(model, n_patients, seed, *, progress, distributed, **how):
    """(per-case tallies, task checkpoints or None): OS from each sequence's start and the
    economics for every case (draw) of ``model``, in one call or as tasks."""
    from simseq.backend import run_simulation
    from simseq.outcomes import sequence_os_tallies

    return run_simulation(
        model,
        n_patients,
        seed,
        tallies=sequence_os_tallies(model),
        exit_counts=False,  # nobody reads them: OS is binned from the death time alone
        progress=progress,
        **how,
        **{k: v for k, v in (distributed or {}).items() if v is not None},
    )


def _case_outputs(model, tallies, n_patients) -> tuple[list[str], dict, dict]:
    """(sequence names, outputs, patient-noise variances) of per-case tallies; each output
    float64 (n_cases, n_seq): discounted LYs, QALYs, costs and the median OS (months)."""
    from simseq.engine.codes import ECON_NAMES, TALLY_OS_GIVEN_ENTRY
    from simseq.outcomes import econ_mean_se, km_medians

    means, se = econ_mean_se(tallies.econ, n_patients)  # (n_cases, n_seq, N_ECON)
    outputs, noise = {}, {}
    for k in OUTPUTS[:3]:
        i = ECON_NAMES.index(f"{k}_discounted")
        outputs[k] = means[..., i]
        noise[k] = se[..., i] ** 2
    # OS from each sequence's start: the histogram of its start state, every patient entering
    medians = []
    for start in model.seq_start_state:
        hist = tallies.hist[:, tallies.slot(TALLY_OS_GIVEN_ENTRY, int(start))]  # a view
        medians.append(km_medians(hist[:, 0], hist[:, 1], tallies.bin_width))
    outputs["os_median"] = np.stack(medians, axis=1)
    return list(model.seq_names), outputs, noise
