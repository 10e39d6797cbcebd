"""calibrate_draws: every draw's calibration at once, by quadrature or the engine.

Tolerances: solved medians are within xtol (1e-7) of the root on log scale, so two
solvers of the same equation agree within 2 xtol; a draw solved with others must
equal the draw solved alone exactly. Simulation is compared with quadrature within
4 Monte Carlo SEs of the solved median (Brookmeyer-Crowley SE of the simulated
summary, carried to the free median through the quadrature's slope).
"""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scalar_quadrature import _target_value, cohort_scenario, drawn_overrides, solve_by_quadrature
from scipy.optimize import brentq

from simseq.distributions import Distribution
from simseq.engine.codes import EVENT_DEATH, EVENT_PROGRESSION
from simseq.evidence import load_evidence
from simseq.model import Clock, Destination, SequenceModel, State, compile_model, stack_draws
from simseq.quadrature import median_of, os_median, os_survival, sojourn_survival, take_draws
from simseq.resolve import resolve
from simseq.scenario import load_scenario
from simseq.solve import (
    NO_JOINT_SOLUTION,
    NOT_BRACKETED,
    NOT_SOLVED,
    OK,
    DrawTarget,
    bind_medians,
    calibrate_draws,
)

ROOT = Path(__file__).resolve().parents[2]
CEA = ROOT / "scenarios" / "cea_base_case.yaml"
BASE_VALUES = {"lenvatinib.after_progression": 6.45, "sorafenib.after_progression": 4.75,
               "tki_ici.after_progression": 5.78}  # fmt: skip
HORIZON = 120.0
XTOL = 1e-7
N_DRAWS = 50


class Cohorts:
    """The three calibration cohorts of cea_base_case for N_DRAWS drawn inputs (seed 7), as
    one model with three sequences, its targets, and psa.solve_by_quadrature's answers;
    without the population covariate, as the scalar reference has no mixtures."""

    def __init__(self):
        sc, ev = (
            cohort_scenario(load_scenario(CEA).model_copy(update={"population": None})),
            load_evidence(),
        )
        self.draws = drawn_overrides(sc, ev, N_DRAWS, seed=7)
        tgts = sc.calibration.targets
        models = []
        for ov in self.draws:
            seqs = [resolve(sc, ev, BASE_VALUES, cohort_regimen=t.regimen, overrides=ov)
                    .sequences[0] for t in tgts]  # fmt: skip
            models.append(compile_model(seqs))
        self.model = stack_draws(models)
        self.pps = [
            int(self.model.state_clock_lo[
                self.model.state_index(f"cohort:{t.regimen}", f"PPS after L2:{t.regimen}")])
            for t in tgts
        ]  # fmt: skip
        self.targets = [
            DrawTarget(
                "median_os_from_line_start",
                q,
                np.array([_target_value(sc, ev, t, ov) for ov in self.draws]),
                tuple(sc.regimens[t.regimen].after_progression.median.calibrate.bounds),
                f"calibration.targets.{q}",
            )
            for q, t in enumerate(tgts)
        ]
        keys = [f"{t.regimen}.after_progression" for t in tgts]
        self.psa = np.array(
            [[solve_by_quadrature(sc, ev, BASE_VALUES, ov, HORIZON)[k] for k in keys]
             for ov in self.draws]
        )  # fmt: skip

    def model_at(self, rows=None):
        model = self.model if rows is None else take_draws(self.model, np.asarray(rows))
        return lambda free: bind_medians(model, self.pps, free)

    def targets_of(self, rows, value=None):
        return [
            DrawTarget(
                t.kind,
                t.index,
                t.value[rows] if value is None else value(t.value[rows]),
                t.bounds,
                t.label,
            )  # fmt: skip
            for t in self.targets
        ]


@pytest.fixture(scope="module")
def cohorts():
    return Cohorts()


@pytest.fixture(scope="module")
def solved(cohorts):
    return calibrate_draws(cohorts.targets, cohorts.model_at(), horizon=HORIZON, xtol=XTOL)


def test_the_drawn_inputs_reach_the_models(cohorts):
    """The drawn targets and time-on-line medians do vary across draws (the comparisons
    below would be weak otherwise): targets by ~15%, time on line changes the models."""
    for t in cohorts.targets:
        assert 0.1 < np.std(np.log(t.value)) < 0.2
    time_on_line = cohorts.model.clock_params[:, 0, 1]  # the lenvatinib line's Weibull scale
    assert 0.1 < np.std(np.log(time_on_line)) < 0.2


def test_reproduces_the_scalar_quadrature_recalibration(cohorts, solved):
    """50 drawn targets per cohort: the same medians as psa.solve_by_quadrature (brentq on
    log median, xtol 1e-7, per draw), within 2 xtol on log scale (each is within xtol of
    the root; the two OS medians differ by rounding only)."""
    assert solved.ok.all() and solved.methods == ("quadrature",) * 3
    assert (solved.n_sweeps == 1).all()  # three independent cohorts: solved once each
    np.testing.assert_allclose(np.log(solved.values), np.log(cohorts.psa), rtol=0, atol=2 * XTOL)


def test_solved_medians_hit_the_targets(cohorts, solved):
    """The OS median's elasticity in the post-progression median is below 1, so a median
    within xtol (relative) puts the OS median within xtol (relative) of its target."""
    want = np.stack([t.value for t in cohorts.targets], axis=1)
    np.testing.assert_allclose(solved.achieved, want, rtol=XTOL, atol=0)
    model = cohorts.model_at()(solved.values)
    for q in range(3):
        assert np.array_equal(os_median(model, q, HORIZON), solved.achieved[:, q])


def test_a_draw_solved_alone_is_bit_for_bit_the_same(cohorts, solved):
    """Draw 0 (the base case) alone, and three draws in another order, give exactly the
    values they get among all 50: every operation is row-wise."""
    for rows in ([0], [17, 3, 42]):
        alone = calibrate_draws(cohorts.targets_of(rows), cohorts.model_at(rows),
                                horizon=HORIZON, xtol=XTOL)  # fmt: skip
        assert np.array_equal(alone.values, solved.values[rows])
        assert np.array_equal(alone.achieved, solved.achieved[rows])


def test_an_unreachable_draw_is_located_and_leaves_the_others_alone(cohorts, solved):
    """Draw 3's second target is set beyond what its bracket reaches: that draw and
    target fail with a message naming both; every other value is unchanged, bit for bit."""
    bad = [t.value.copy() for t in cohorts.targets]
    bad[1][3] = 200.0
    targets = [DrawTarget(t.kind, t.index, v, t.bounds, t.label)
               for t, v in zip(cohorts.targets, bad, strict=True)]  # fmt: skip
    res = calibrate_draws(targets, cohorts.model_at(), horizon=HORIZON, xtol=XTOL)
    assert res.status[3, 1] == NOT_BRACKETED
    assert (np.delete(res.status.ravel(), 3 * 3 + 1) == OK).all()
    ((d, i, message),) = res.failures()
    assert (d, i) == (3, 1)
    assert message.startswith("draw 3: calibration.targets.1 (median_os_from_line_start of OS")
    assert "'cohort:sorafenib'" in message and "unreachable" in message
    assert "in [0.1, 60] gives [" in message
    assert np.isnan(res.values[3, 1])
    same = np.ones_like(res.status, bool)
    same[3, 1] = False
    assert np.array_equal(res.values[same], solved.values[same])


# --------------------------------------------------------------- Gauss-Seidel


def _coupled_model(tol_medians, pps_medians):
    """One cohort: L runs a Weibull(1.3) progression clock (-> PPS, exponential) against
    an exponential death clock (rate 0.02). Time on L depends on the progression median
    only, OS on both: two targets on one cohort, to be swept."""
    models = []
    for m1, m2 in zip(tol_medians, pps_medians, strict=True):
        prog = Distribution("weibull", (1.3, m1 / math.log(2) ** (1 / 1.3)))
        states = (
            State("L", (Clock(prog, (Destination("PPS", EVENT_PROGRESSION, 1.0),)),
                        Clock(Distribution("exponential", (0.02,)),
                              (Destination(None, EVENT_DEATH, 1.0),)))),
            State("PPS", (Clock(Distribution("exponential", (math.log(2) / m2,)),
                                (Destination(None, EVENT_DEATH, 1.0),)),)),
        )  # fmt: skip
        models.append(compile_model([SequenceModel("cohort", states)]))
    return stack_draws(models)


def _brentq_log(f, lo, hi):
    """exp of brentq's root of f(exp(y)) on [log lo, log hi], xtol as calibrate_draws'."""
    return math.exp(brentq(lambda y: f(math.exp(y)), math.log(lo), math.log(hi), xtol=XTOL))


def _one_after_the_other(one, state, tol_goal, os_goal):
    """(progression median, PPS median) of a one-draw coupled model by scalar brentq: the
    time-on-line target first (it does not depend on the PPS median), then the OS."""

    def at(m1, m2):
        return bind_medians(one, [2, 0], [[m2, m1]])  # clocks: 0 progression, 2 PPS

    m1 = _brentq_log(
        lambda m: median_of(*sojourn_survival(at(m, 5.0), state, HORIZON))[0] - tol_goal, 0.5, 40.0
    )
    m2 = _brentq_log(
        lambda m: median_of(*os_survival(at(m1, m), 0, HORIZON))[0] - os_goal, 0.1, 60.0
    )
    return m1, m2


def test_targets_sharing_a_cohort_are_swept_to_a_joint_solution():
    """OS target (free: PPS median) listed before the time-on-line target (free:
    progression median), which moves the OS: the first sweep solves the OS with the
    progression median at its start, so more sweeps are needed. The joint solution
    matches solving them in the other order with brentq (time on line first, then OS
    given it), within the sweep tolerance (1e-6) and 2 xtol."""
    os_goal, tol_goal = np.array([11.0, 14.0]), np.array([4.0, 6.5])
    model = _coupled_model([5.0, 5.0], [5.0, 5.0])
    state = model.state_index("cohort", "L")
    targets = [
        DrawTarget("median_os_from_line_start", 0, os_goal, (0.1, 60.0), "os"),
        DrawTarget("median_time_on_line", state, tol_goal, (0.5, 40.0), "tol"),
    ]
    prog_clock, pps_clock = 0, 2

    def model_at(free):
        return bind_medians(model, [pps_clock, prog_clock], free)

    res = calibrate_draws(targets, model_at, horizon=HORIZON, xtol=XTOL)
    assert res.ok.all() and (res.n_sweeps >= 3).all()
    for d in range(2):
        m1, m2 = _one_after_the_other(take_draws(model, [d]), state, tol_goal[d], os_goal[d])
        np.testing.assert_allclose(res.values[d], [m2, m1], rtol=1e-6 + 2 * XTOL)
    alone = calibrate_draws(
        [DrawTarget(t.kind, t.index, t.value[1:], t.bounds, t.label) for t in targets],
        lambda free: bind_medians(take_draws(model, [1]), [pps_clock, prog_clock], free),
        horizon=HORIZON,
        xtol=XTOL,
    )
    assert np.array_equal(alone.values[0], res.values[1])


def test_targets_that_pull_apart_have_no_joint_solution():
    """Two OS targets on one cohort with different values (11 and 12 months), one freeing
    the PPS median and one the progression median: each sweep undoes the other. After 3
    sweeps both are reported as having no joint solution; given more, the progression
    median runs longer and longer until no PPS median reaches 11 months: that target is
    unreachable and the other is not solved, both in draw 0."""
    model = _coupled_model([5.0], [5.0])
    targets = [
        DrawTarget("median_os_from_line_start", 0, np.array([11.0]), (0.1, 60.0), "a"),
        DrawTarget("median_os_from_line_start", 0, np.array([12.0]), (0.5, 40.0), "b"),
    ]

    def model_at(free):
        return bind_medians(model, [2, 0], free)

    res = calibrate_draws(targets, model_at, horizon=HORIZON, max_sweeps=3)
    assert res.status.tolist() == [[NO_JOINT_SOLUTION, NO_JOINT_SOLUTION]]
    assert res.n_sweeps.tolist() == [3] and np.isnan(res.values).all()
    messages = [m for _, _, m in res.failures()]
    assert messages[0].startswith("draw 0: a (median_os_from_line_start of OS of sequence")
    assert "no joint solution with the other targets of its cohort after 3 sweeps" in messages[0]
    res = calibrate_draws(targets, model_at, horizon=HORIZON, max_sweeps=30)
    assert res.status.tolist() == [[NOT_BRACKETED, NOT_SOLVED]]
    assert "another target of its cohort failed" in res.failures()[1][2]


def test_a_free_median_that_moves_nothing_is_refused():
    model = _coupled_model([5.0], [5.0])
    targets = [DrawTarget("median_os_from_line_start", 0, np.array([11.0]), (0.1, 60.0), "x")]
    with pytest.raises(ValueError, match="x: model_at does not change OS of sequence 'cohort'"):
        calibrate_draws(targets, lambda free: model, horizon=HORIZON)


def test_targets_are_validated():
    model = _coupled_model([5.0], [5.0])
    at = lambda free: bind_medians(model, [2], free)  # noqa: E731
    with pytest.raises(ValueError, match="unknown kind 'median_pfs'"):
        calibrate_draws([DrawTarget("median_pfs", 0, np.array([1.0]), (1, 2))], at, horizon=12)
    with pytest.raises(ValueError, match=r"bounds \(2, 1\) must satisfy 0 < lo < hi"):
        calibrate_draws([DrawTarget("median_time_on_line", 0, np.array([1.0]), (2, 1))], at,
                        horizon=12)  # fmt: skip
    with pytest.raises(ValueError, match="t: draw 1's value is nan; it must be > 0 months"):
        calibrate_draws([DrawTarget("median_time_on_line", 0, np.array([1.0, np.nan]), (1, 2),
                                    "t")], at, horizon=12)  # fmt: skip
    other = _coupled_model([5.0], [5.0])
    other = dataclasses.replace(other, dest_state=other.dest_state[::-1].copy())
    with pytest.raises(ValueError, match=r"changes the model's structure \(dest_state\)"):
        calibrate_draws([DrawTarget("median_time_on_line", 0, np.array([4.0]), (1, 20))],
                        lambda free: other if free[0, 0] > 5 else at(free), horizon=12,
                        start=np.array([[4.5]]))  # fmt: skip


# --------------------------------------------------------------- the engine


def _se_of_free_median(model_at, free, summary, n_patients):
    """Monte Carlo SE of a free median solved by simulation, per draw: Brookmeyer-Crowley
    SE of the simulated median, sqrt(1/4 / n) / f(median), over d summary / d free median,
    both from the quadrature curve ``summary(model) -> (t, S)`` at the solution."""
    t, surv = summary(model_at(free))
    m = median_of(t, surv)
    j = np.searchsorted(t, m)
    rows = np.arange(len(m))
    density = (surv[rows, j - 1] - surv[rows, j]) / (t[j] - t[j - 1])
    bumped = free.copy()
    bumped[:, 0] *= 1.01
    slope = (median_of(*summary(model_at(bumped))) - m) / (0.01 * free[:, 0])
    return math.sqrt(0.25 / n_patients) / density / slope


def test_simulation_agrees_with_quadrature_within_monte_carlo_error(cohorts):
    """Three draws of the lenvatinib cohort solved by the engine (20k patients, seed 3,
    common random numbers) and by quadrature: the post-progression medians differ by
    less than 4 Monte Carlo SEs of the simulated solution."""
    rows = [0, 1, 2]
    targets = cohorts.targets_of(rows)[:1]
    model = take_draws(cohorts.model, np.array(rows))

    def model_at(free):
        return bind_medians(model, cohorts.pps[:1], free)

    sim = calibrate_draws(targets, model_at, horizon=HORIZON, method="simulation",
                          n_patients=20_000, seed=3)  # fmt: skip
    quad = calibrate_draws(targets, model_at, horizon=HORIZON)
    assert sim.methods == ("simulation",) and sim.ok.all()
    se = _se_of_free_median(model_at, quad.values, lambda m: os_survival(m, 0, HORIZON), 20_000)
    assert np.all(np.abs(sim.values[:, 0] - quad.values[:, 0]) < 4 * se)


def test_time_on_line_by_simulation(cohorts):
    """The progression median of the coupled model solved for a time-on-line target by
    the engine (20k patients, seed 4) is within 4 SEs of the quadrature solution."""
    model = _coupled_model([5.0, 5.0], [5.0, 5.0])
    state = model.state_index("cohort", "L")
    targets = [DrawTarget("median_time_on_line", state, np.array([4.0, 6.5]), (0.5, 40.0))]

    def model_at(free):
        return bind_medians(model, [0], free)

    sim = calibrate_draws(targets, model_at, horizon=HORIZON, method="simulation",
                          n_patients=20_000, seed=4)  # fmt: skip
    quad = calibrate_draws(targets, model_at, horizon=HORIZON)
    assert sim.ok.all()
    se = _se_of_free_median(
        model_at, quad.values, lambda m: sojourn_survival(m, state, HORIZON), 20_000
    )
    assert np.all(np.abs(sim.values[:, 0] - quad.values[:, 0]) < 4 * se)


def test_simulation_is_chosen_where_quadrature_is_not_exact():
    """Nine covariates acting on the clock are more patterns than quadrature mixes (2^8 at
    most): the engine solves the target, here with 2000 patients (only the choice is
    checked)."""
    from simseq.model import Covariate

    covs = tuple(Covariate(f"c{k}", 0.1) for k in range(9))
    clock = Clock(Distribution("weibull", (1.2, 5.0)), (Destination(None, EVENT_DEATH, 1.0),),
                  {c.name: 0.5 for c in covs})  # fmt: skip
    model = compile_model([SequenceModel("s", (State("L", (clock,)),))], covs)
    targets = [DrawTarget("median_time_on_line", 0, np.array([4.0]), (0.5, 40.0))]
    res = calibrate_draws(targets, lambda free: bind_medians(model, [0], free), horizon=60.0,
                          n_patients=2000)  # fmt: skip
    assert res.methods == ("simulation",) and res.ok.all()
    assert res.achieved[0, 0] == pytest.approx(4.0, abs=0.02)  # one 0.02-month bin
