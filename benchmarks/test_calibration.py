"""Recalibrating 1000 draws of cea_base_case (drawn targets and second-line PFS medians):
calibrate_draws (all draws at once) against the scalar path it replaces, side by side
in one process.

    NUMBA_CACHE_DIR=... pytest benchmarks/test_calibration.py --benchmark-only

Cases, in this order (each later one reports its speed-up over the earlier ones in
``extra_info`` and in the printed summary):

1. ``psa.solve_by_quadrature`` once per draw, as the PSA calls it today (it resolves
   each target's cohort from the scenario, then brentq over the quadrature median);
2. the same scalar numerics without the resolving: brentq per draw and target over
   ``os_median_by_quadrature`` on cohorts resolved beforehand;
3. ``solve.calibrate_draws`` on the 1000 draws bound into one model (built
   beforehand: binding draws is the resolver's job).

Every case is warmed up (one untimed round) and timed over 5 rounds; medians compared.
"""

import math
from pathlib import Path

import numpy as np
import pytest
from scalar_quadrature import (
    _cohort_parts,
    _target_value,
    drawn_overrides,
    os_median_by_quadrature,
    solve_by_quadrature,
)

from simseq.evidence import load_evidence
from simseq.fit import fit_median
from simseq.model import compile_model, stack_draws
from simseq.resolve import resolve
from simseq.scenario import load_scenario
from simseq.solve import DrawTarget, bind_medians, calibrate_draws

ROOT = Path(__file__).resolve().parents[1]
CEA = ROOT / "scenarios" / "cea_base_case.yaml"
BASE_VALUES = {"lenvatinib.after_progression": 6.45, "sorafenib.after_progression": 4.75,
               "tki_ici.after_progression": 5.78}  # fmt: skip
HORIZON = 120.0
N_DRAWS = 1000
ROUNDS = 5
_MEDIANS: dict[str, float] = {}


@pytest.fixture(scope="module")
def psa_draws():
    """1000 drawn inputs (seed 7): overrides, resolved cohorts, targets, the bound model."""
    sc, ev = load_scenario(CEA), load_evidence()
    # without the population (Child-Pugh B per patient): the scalar path this is compared
    # against does not model covariates, and the comparison is of the numerics
    sc = sc.model_copy(update={
        "population": None,
        "regimens": {k: r.model_copy(update={"cohort_population": None})
                     for k, r in sc.regimens.items()},
    })  # fmt: skip
    draws = drawn_overrides(sc, ev, N_DRAWS, seed=7)
    tgts = sc.calibration.targets
    cohorts = [[resolve(sc, ev, BASE_VALUES, cohort_regimen=t.regimen, overrides=ov)
                for t in tgts] for ov in draws]  # fmt: skip
    model = stack_draws([compile_model([r.sequences[0] for r in row]) for row in cohorts])
    states = [model.state_index(f"cohort:{t.regimen}", f"PPS after L2:{t.regimen}") for t in tgts]
    goals = np.array([[_target_value(sc, ev, t, ov) for t in tgts] for ov in draws])
    bounds = [tuple(sc.regimens[t.regimen].after_progression.median.calibrate.bounds) for t in tgts]
    return {
        "sc": sc,
        "ev": ev,
        "draws": draws,
        "cohorts": cohorts,
        "model": model,
        "pps": [int(model.state_clock_lo[s]) for s in states],
        "goals": goals,
        "bounds": bounds,
        "keys": [f"{t.regimen}.after_progression" for t in tgts],
    }


def _time(benchmark, name, fn):
    benchmark.group = f"recalibration of {N_DRAWS} PSA draws (3 targets each)"
    out = benchmark.pedantic(fn, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable
        _MEDIANS[name] = benchmark.stats.stats.median
        for other, seconds in _MEDIANS.items():
            if other != name:
                benchmark.extra_info[f"speedup_vs_{other}"] = round(seconds / _MEDIANS[name], 2)
        print(f"\n{name}: {_MEDIANS[name]:.3f} s median; " + ", ".join(
            f"{other} / {name} = {s / _MEDIANS[name]:.1f}x" for other, s in _MEDIANS.items()
            if other != name))  # fmt: skip
    return out


def test_scalar_solve_by_quadrature(benchmark, psa_draws):
    p = psa_draws

    def run():
        return np.array(
            [[solve_by_quadrature(p["sc"], p["ev"], BASE_VALUES, ov, HORIZON)[k] for k in p["keys"]]
             for ov in p["draws"]]
        )  # fmt: skip

    p["scalar"] = _time(benchmark, "solve_by_quadrature", run)


def test_scalar_core(benchmark, psa_draws):
    """brentq on log median over os_median_by_quadrature (psa's gap), cohorts resolved."""
    from scipy.optimize import brentq

    p = psa_draws
    parts = [[_cohort_parts(r) for r in row] for row in p["cohorts"]]

    def solve_one(tol, p_prog, p_det, pps0, bsc, goal, lo, hi):
        def gap(log_m):
            pps = fit_median(pps0.family, math.exp(log_m)).distribution
            return os_median_by_quadrature(tol, p_prog, p_det, pps, bsc, HORIZON) - goal

        return math.exp(brentq(gap, math.log(lo), math.log(hi), xtol=1e-7))

    def run():
        return np.array(
            [[solve_one(*parts[d][q], p["goals"][d, q], *p["bounds"][q]) for q in range(3)]
             for d in range(N_DRAWS)]
        )  # fmt: skip

    _time(benchmark, "scalar_core", run)


def test_calibrate_draws(benchmark, psa_draws):
    p = psa_draws
    targets = [
        DrawTarget("median_os_from_line_start", q, p["goals"][:, q], p["bounds"][q])
        for q in range(3)
    ]

    def run():
        return calibrate_draws(
            targets, lambda free: bind_medians(p["model"], p["pps"], free), horizon=HORIZON
        )

    res = _time(benchmark, "calibrate_draws", run)
    assert res.ok.all()
    if "scalar" in p:  # the same answers as the scalar path, within 2 xtol on log scale
        np.testing.assert_allclose(np.log(res.values), np.log(p["scalar"]), rtol=0, atol=2e-7)
    benchmark.extra_info["summary_evaluations"] = res.n_evaluations
