"""Solve the parameters papers do not report so that simulated summaries hit published targets.

Post-progression survival is never reported: papers give second-line PFS and
OS from the start of second line. Each calibration target frees one median of
one regimen. It is solved on a cohort that starts every patient on that
regimen, as the source cohort did (no first line, no transport adjustment), by
Brent's method over the engine with common random numbers, so the simulated
summary is a continuous, monotone function of the free median. Targets are
swept in order until all agree (Gauss-Seidel), which handles two targets on one
regimen.

Solved values are cached next to the results with a hash of everything they
depend on; ``run`` reuses them until an input changes.
"""

import hashlib
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from simseq import __version__
from simseq.engine.codes import TALLY_OS_FROM_ENTRY, TALLY_SOJOURN
from simseq.evidence import EvidenceBase
from simseq.model import compile_model
from simseq.outcomes import tally_curve
from simseq.resolve import resolve, resolve_median
from simseq.scenario import Scenario, ScenarioError, Target
from simseq.simulator import COMPILE_NOTICE, simulate

MAX_SWEEPS = 10
CACHE_FILE = "calibration.json"

_TALLY_OF = {
    "median_os_from_line_start": TALLY_OS_FROM_ENTRY,
    "median_time_on_line": TALLY_SOJOURN,
}


@dataclass(frozen=True)
class TargetResult:
    """One calibrated target: what it asked for, what was solved, and how close it came."""

    target_id: str
    quantity: str
    regimen: str
    free: str
    target: float
    simulated: float
    rel_error: float
    simulated_ci95_low: float | None
    simulated_ci95_high: float | None
    solved_median: float
    n_patients: int


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


def _finite_or_none(x: float) -> float | None:
    """A bound of the simulated median's interval; None where it is not reached."""
    return x if math.isfinite(x) else None


def _target_id(tgt: Target) -> str:
    """The evidence id, the pooled ids, or "assumed <value>" for an assumed target."""
    q = tgt.target
    if q.evidence:
        return q.evidence
    return "pool(" + "+".join(q.pool) + ")" if q.pool else f"assumed {q.value:g}"


def calibration_n(scenario: Scenario) -> int:
    cal = scenario.calibration
    return cal.n_patients if cal and cal.n_patients else scenario.simulation.n_patients


def input_hash(scenario: Scenario, evidence: EvidenceBase) -> str:
    """sha256 of everything calibration depends on (regimens, supportive care, targets,
    seed, N, horizon, binning, the evidence cited, simseq's version)."""
    sim = scenario.simulation
    payload = {
        "regimens": {k: v.model_dump(mode="json") for k, v in scenario.regimens.items()},
        "supportive_care": scenario.supportive_care.model_dump(mode="json"),
        "calibration": scenario.calibration.model_dump(mode="json")
        if scenario.calibration
        else None,
        "seed": sim.seed,
        "n": calibration_n(scenario),
        "horizon": sim.horizon.model_dump(mode="json"),
        "bin_width": sim.bin_width,
        "evidence": [r.model_dump(mode="json") for r in evidence],
        "version": __version__,
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _simulated(scenario, evidence, file, values, tgt: Target, n, threads, on_compile=None):
    """Simulated summary of ``tgt`` with the current ``values``: (median, (lo, hi))."""
    res = resolve(scenario, evidence, values, file, cohort_regimen=tgt.regimen)
    model = compile_model(res.sequences, res.covariates)
    tallies = simulate(
        model,
        n,
        scenario.simulation.seed,
        horizon=res.horizon,
        bin_width=scenario.simulation.bin_width,
        threads=threads,
        tallies=[_TALLY_OF[tgt.quantity]],  # the one it needs: less bookkeeping per step
        on_compile=on_compile,
    )
    curve = tally_curve(tallies, _TALLY_OF[tgt.quantity], [int(model.seq_start_state[0])])
    return curve.median(), curve.median_ci95()


def calibrate(
    scenario: Scenario,
    evidence: EvidenceBase,
    file: str = "<scenario>",
    *,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> CalibrationResult:
    """Solve every declared target; raise ScenarioError when a target cannot be reached."""
    cal = scenario.calibration
    if cal is None:
        return CalibrationResult(
            {}, [], input_hash(scenario, evidence), scenario.simulation.seed, 0
        )
    from scipy.optimize import brentq  # only calibration needs it; keeps start-up short

    n = calibration_n(scenario)
    notice = None if progress is None else lambda: progress(COMPILE_NOTICE)
    # start each free median at the geometric mean of its bracket
    values: dict[str, float] = {}
    specs = {}
    for i, tgt in enumerate(cal.targets):
        part = tgt.free.split(".")[0]
        key = f"{tgt.regimen}.{part}"
        bounds = getattr(scenario.regimens[tgt.regimen], part).median.calibrate.bounds
        values.setdefault(key, math.sqrt(bounds[0] * bounds[1]))
        specs[i] = (key, bounds)

    targets = [
        resolve_median(scenario, evidence, t.target, f"calibration.targets.{i}.target", file)[0]
        for i, t in enumerate(cal.targets)
    ]
    # A target's cohort starts on its regimen, so only targets of one regimen move each
    # other: those are swept in turn until their medians stop moving (Gauss-Seidel); a
    # regimen's only target is solved once.
    per_regimen = Counter(t.regimen for t in cal.targets)
    for sweep in range(MAX_SWEEPS):
        before = dict(values)
        for i, tgt in enumerate(cal.targets):
            if sweep and per_regimen[tgt.regimen] == 1:
                continue
            key, (lo, hi) = specs[i]
            goal = targets[i]

            def gap(x, key=key, tgt=tgt, goal=goal):
                trial = {**values, key: x}
                median, _ = _simulated(scenario, evidence, file, trial, tgt, n, threads, notice)
                return median - goal

            g_lo, g_hi = gap(lo), gap(hi)
            if g_lo * g_hi > 0:
                raise ScenarioError(
                    file,
                    [
                        (
                            f"calibration.targets.{i}",
                            goal,
                            f"unreachable: with {key}.median in [{lo:g}, {hi:g}] the simulated "
                            f"{tgt.quantity} spans [{g_lo + goal:.4g}, {g_hi + goal:.4g}]; "
                            "widen the "
                            "bounds or check the other inputs",
                        )
                    ],
                )
            if math.isnan(g_lo) or math.isnan(g_hi):
                raise ScenarioError(
                    file,
                    [
                        (
                            f"calibration.targets.{i}",
                            goal,
                            f"the simulated {tgt.quantity} is undefined with {key}.median at "
                            f"{lo if math.isnan(g_lo) else hi:g}; check the other inputs",
                        )
                    ],
                )
            try:
                values[key] = brentq(gap, lo, hi, xtol=1e-9, rtol=cal.tolerance / 10)
            except (RuntimeError, ValueError) as err:  # no convergence, or an undefined median
                raise ScenarioError(
                    file,
                    [
                        (
                            f"calibration.targets.{i}",
                            goal,
                            f"the search for {key}.median in [{lo:g}, {hi:g}] failed ({err}); "
                            "narrow the bounds or check the other inputs",
                        )
                    ],
                ) from None
            if progress is not None:
                progress(f"{key}.median = {values[key]:.4f} months (target {goal:.4f})")
        moved = max(abs(values[k] / before[k] - 1.0) for k in values)
        if moved <= cal.tolerance:
            break
    else:
        raise ScenarioError(
            file,
            [
                (
                    "calibration.targets",
                    sorted(per_regimen),
                    f"no joint solution after {MAX_SWEEPS} sweeps (the medians still moved "
                    f"by {moved:.2%}, tolerance {cal.tolerance:.2%}): two targets of one "
                    "regimen may pull its medians in opposite directions; check them and "
                    "their bounds",
                )
            ],
        )

    results = []
    for i, tgt in enumerate(cal.targets):
        key, _ = specs[i]
        sim, (clo, chi) = _simulated(scenario, evidence, file, values, tgt, n, threads)
        results.append(
            TargetResult(
                target_id=_target_id(tgt),
                quantity=tgt.quantity,
                regimen=tgt.regimen,
                free=tgt.free,
                target=targets[i],
                simulated=sim,
                rel_error=sim / targets[i] - 1.0,
                simulated_ci95_low=_finite_or_none(clo),
                simulated_ci95_high=_finite_or_none(chi),
                solved_median=values[key],
                n_patients=n,
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
        key = f"{t.regimen}.{t.free.split('.')[0]}"
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
