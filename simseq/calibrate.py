"""Solve the parameters papers do not report so that the model's summaries hit published targets.

Post-progression survival is never reported: papers give second-line PFS and OS
from the start of second line. Each calibration target frees one median of one
regimen and is solved on a cohort that starts every patient on that regimen, as
the source cohort did (no first line, no transport adjustment).

There is one calibrator (``solve.calibrate_draws``) for every row of the
parameter table: the base case is one row, a PSA, DSA or sweep many, solved
together. A target's summary is computed by quadrature where that is exact for
the cohort (``simseq.quadrature``: no Monte Carlo noise, grid error O(step^2)),
by the engine with common random numbers where it is not; calibration.csv says
which. Targets of one cohort are swept in turn until their medians stop moving
(Gauss-Seidel). A row's answer does not depend on the other rows, so the base
case is bit for bit draw 0 of the same machinery.

The base case's solved values are cached next to the results with a hash of
everything they depend on; ``run`` reuses them until an input changes.
"""

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from simseq import __version__
from simseq.evidence import EvidenceBase
from simseq.model import Structure, bind
from simseq.scenario import Scenario, ScenarioError, Target, free_key

CACHE_FILE = "calibration.json"
LANDMARK = "os_landmark_from_sequence_start"
CALIBRATOR = "calibrate_draws/1"  # in the input hash: a cache of another calibrator is stale


@dataclass(frozen=True)
class TargetResult:
    """One calibrated target of the base case: what it asked for, what was solved, how
    close it came and how its summary was computed."""

    target_id: str
    quantity: str
    regimen: str
    free: str
    target: float
    achieved: float
    """The target's summary at the solved median (months)."""
    rel_error: float
    method: str
    """"quadrature" (exact up to the grid error) or "simulation" (the engine, common
    random numbers, ``n_patients`` per cohort)."""
    solved_median: float
    """The free parameter solved: a median (months), or a share for a landmark target."""
    n_patients: int | None


@dataclass(frozen=True)
class CalibrationResult:
    values: dict[str, float]  # "<regimen>.<part>" -> solved median (months)
    targets: list[TargetResult]
    input_hash: str
    seed: int
    n_patients: int

    def to_json(self) -> dict:
        return {
            "simseq_version": __version__,
            "input_hash": self.input_hash,
            "seed": self.seed,
            "n_patients": self.n_patients,
            "values": self.values,
            "targets": [asdict(t) for t in self.targets],
        }

    @classmethod
    def from_json(cls, data: dict) -> "CalibrationResult":
        return cls(
            values={k: float(v) for k, v in data["values"].items()},
            targets=[TargetResult(**t) for t in data["targets"]],
            input_hash=data["input_hash"],
            seed=int(data["seed"]),
            n_patients=int(data["n_patients"]),
        )


def target_id(tgt: Target) -> str:
    """The evidence id, the pooled ids, or "assumed <value>" for an assumed target."""
    q = tgt.target
    if q.evidence:
        return q.evidence
    return "pool(" + "+".join(q.pool) + ")" if q.pool else f"assumed {q.value:g}"


def calibration_n(scenario: Scenario) -> int:
    """Patients per cohort where a target is solved with the engine."""
    cal = scenario.calibration
    return cal.n_patients if cal and cal.n_patients else scenario.simulation.n_patients


def input_hash(scenario: Scenario, evidence: EvidenceBase) -> str:
    """sha256 of everything calibration depends on (regimens, supportive care, targets,
    population, seed, N, horizon, binning, the evidence cited, simseq's version and the
    calibrator)."""
    sim = scenario.simulation
    payload = {
        "regimens": {k: v.model_dump(mode="json") for k, v in scenario.regimens.items()},
        "supportive_care": scenario.supportive_care.model_dump(mode="json"),
        "calibration": scenario.calibration.model_dump(mode="json")
        if scenario.calibration
        else None,
        "population": scenario.population.model_dump(mode="json") if scenario.population else None,
        "seed": sim.seed,
        "n": calibration_n(scenario),
        "horizon": sim.horizon.model_dump(mode="json"),
        "bin_width": sim.bin_width,
        "evidence": [r.model_dump(mode="json") for r in evidence],
        "version": __version__,
        "calibrator": CALIBRATOR,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def solve_rows(
    scenario: Scenario,
    resolved,
    cohorts: Structure,
    rows: np.ndarray,
    *,
    file: str = "<scenario>",
    label: str = "",
    keep_unreachable: bool = False,
):
    """``rows`` (n_draws, n_columns) with every calibrated median solved for its row's
    inputs, and the ``solve.DrawCalibration`` behind them.

    ``keep_unreachable``: a draw whose target its own inputs cannot reach is returned
    unsolved (status ``NOT_BRACKETED``, medians nan) instead of raising, for a PSA to
    redraw it.

    ``resolved``: the scenario's ``Resolved`` (its targets and calibrated columns);
    ``cohorts``: ``resolved.cohort_structure()``. A target no row can reach raises
    ``ScenarioError`` naming the target (and the draw, when ``label`` names the analysis
    the rows come from)."""
    from simseq.solve import NOT_BRACKETED, NOT_SOLVED, DrawTarget, calibrate_draws

    rows = np.array(rows, dtype=np.float64)
    targets = resolved.targets
    if not targets:
        return rows, None
    horizon = resolved.horizon
    template = cohorts.template
    draw_targets, columns = [], []
    for t in targets:
        value = t.value.of(rows)
        landmark = t.spec.quantity == LANDMARK
        beyond = np.flatnonzero(~(value < horizon)) if not landmark else np.array([], int)
        if beyond.size:
            d = int(beyond[0])
            raise ScenarioError(
                file,
                [
                    (
                        f"calibration.targets.{t.index}",
                        float(value[d]),
                        f"unreachable{_in(label, d)}: a median of {value[d]:g} months is "
                        f"beyond the horizon ({horizon:g} months), where the simulation stops",
                    )
                ],
            )
        cohort = f"cohort:{t.spec.regimen}"
        if t.spec.quantity == "median_time_on_line":
            index = template.state_index(cohort, f"L2:{t.spec.regimen}")
        elif landmark:
            index = template.seq_names.index(t.spec.sequence)
        else:
            index = template.seq_names.index(cohort)
        draw_targets.append(
            DrawTarget(
                t.spec.quantity,
                index,
                value,
                t.bounds,
                f"calibration.targets.{t.index}",
                month=float(t.spec.month) if landmark else math.nan,
            )
        )
        columns.append(resolved.calibrated_columns[t.free])

    def model_at(free: np.ndarray):
        bound = rows.copy()
        bound[:, columns] = free
        return bind(cohorts, bound)

    sim = scenario.simulation
    tolerance = scenario.calibration.tolerance
    result = calibrate_draws(
        draw_targets,
        model_at,
        horizon=horizon,
        sweep_tol=tolerance,
        n_patients=calibration_n(scenario),
        seed=sim.seed,
        bin_width=sim.bin_width,
    )
    # a target left unsolved because another of its cohort failed is not listed again
    failures = [f for f in result.failures() if result.status[f[0], f[1]] != NOT_SOLVED]
    if keep_unreachable:
        failures = [f for f in failures if result.status[f[0], f[1]] != NOT_BRACKETED]
    if failures:
        problems = []
        for d, i, _ in failures[:5]:
            t = targets[i]
            problems.append(
                (
                    f"calibration.targets.{t.index}",
                    float(draw_targets[i].value[d]),
                    f"{result.reason(d, i).replace(': ', _in(label, d) + ': ', 1)}; widen the "
                    "bounds or check the other inputs",
                )
            )
        raise ScenarioError(file, problems)
    rows[:, columns] = result.values
    return rows, result


def _in(label: str, d: int) -> str:
    """ " in PSA draw 3" (nothing for the base case)."""
    return f" in {label} draw {d}" if label else ""


def base_calibration(
    scenario: Scenario, evidence: EvidenceBase, resolved, cohorts: Structure, row, *, file
) -> CalibrationResult:
    """The base case's calibration (``row``: (1, n_columns) base values)."""
    key, seed, n = input_hash(scenario, evidence), scenario.simulation.seed, calibration_n(scenario)
    if not resolved.targets:
        return CalibrationResult({}, [], key, seed, 0)
    _, result = solve_rows(scenario, resolved, cohorts, row, file=file)
    values, results = {}, []
    for i, t in enumerate(resolved.targets):
        goal = float(result.targets[i].value[0])
        achieved = float(result.achieved[0, i])
        values[t.free] = float(result.values[0, i])
        results.append(
            TargetResult(
                target_id=target_id(t.spec),
                quantity=t.spec.quantity,
                regimen=t.spec.regimen,
                free=t.spec.free,
                target=goal,
                achieved=achieved,
                rel_error=achieved / goal - 1.0 if math.isfinite(achieved) else math.inf,
                method=result.methods[i],
                solved_median=values[t.free],
                n_patients=n if result.methods[i] == "simulation" else None,
            )
        )
    return CalibrationResult(
        values, results, input_hash(scenario, evidence), scenario.simulation.seed, n
    )


def _checksum(data: dict) -> str:
    """sha256 of a cache's content (every field but the checksum), canonical JSON."""
    body = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load_cached(directory: Path, expected_hash: str) -> tuple[CalibrationResult | None, str | None]:
    """(the cached calibration in ``directory``, None) if it is intact and its input hash
    matches; else (None, why it was not used), the reason None when there is no cache.

    The cache is verified, not trusted: a checksum of its content (an edited solved
    median is caught), the key of the inputs it belongs to, its shape, and that the
    solved values agree with the per-target records the summary reports."""
    path = Path(directory) / CACHE_FILE
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return None, f"{path} is not readable JSON ({type(err).__name__})"
    if not isinstance(data, dict) or data.get("checksum") != _checksum(data):
        return None, f"{path} does not match its checksum (edited or damaged)"
    if data.get("input_hash") != expected_hash:
        return None, None  # an input changed: recalibrating is the normal course
    try:
        result = CalibrationResult.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return None, f"{path} is malformed ({type(err).__name__}: {err})"
    if not all(math.isfinite(v) and v > 0 for v in result.values.values()):
        return None, f"{path}: solved values must be positive numbers of months"
    for t in result.targets:
        key = f"{t.regimen}.{free_key(t.free)}"
        if result.values.get(key) != t.solved_median:
            return None, f"{path}: solved values disagree with its target records"
    return result, None


def save_cached(directory: Path, result: CalibrationResult) -> Path:
    """Write the calibration cache atomically (temporary file, then rename), checksummed."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = result.to_json()
    data["checksum"] = _checksum(data)
    fd, tmp = tempfile.mkstemp(prefix=".calibration-", dir=directory)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    path = directory / CACHE_FILE
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, path)
    return path


def calibrate_cached(
    scenario: Scenario,
    evidence: EvidenceBase,
    out_dir: Path | None,
    solve: Callable[[], CalibrationResult],
    *,
    say=None,
) -> tuple[CalibrationResult, bool, str | None]:
    """The cached calibration in ``out_dir`` if intact and its inputs are unchanged, else
    ``solve()``: (result, from_cache, note). A cache that fails verification is not used:
    the note says why, and the calibration is solved again. ``say`` gets progress notes."""
    expected = input_hash(scenario, evidence)
    cached, why_not = (None, None) if out_dir is None else load_cached(out_dir, expected)
    if cached is not None:
        return cached, True, None
    note = None if why_not is None else f"{why_not}: calibrated again"
    if note is not None and say is not None:
        say(f"[yellow]note:[/yellow] {note}")
    result = solve()
    if say is not None:
        for t in result.targets:
            unit = "" if t.quantity == LANDMARK else " months"
            say(
                f"  {t.regimen}.{t.free} = {t.solved_median:.4f}{unit} "
                f"(target {t.target:.4f}, by {t.method})"
            )
    return result, False, note
