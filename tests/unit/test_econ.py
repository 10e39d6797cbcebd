"""Tests for simseq.econ: discounting, incremental analysis, NMB, CEAC/CEAF, EVPI, EVPPI.

Closed forms are written out here. Monte Carlo checks use fixed seeds and a
tolerance of 3 Monte Carlo standard errors at the stated N; where a smoother
adds error, the test computes a bound on it from the fitted values rather than
picking a number.
"""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate, stats

from simseq import econ
from simseq.econ import (
    ceac,
    ceaf,
    conditional_expectation,
    discount_at,
    discount_factor_integral,
    evpi,
    evppi,
    evppi_nested,
    icer_table,
    monthly_discount_rate,
    nmb,
)

NICE_RATE = 0.035


# --------------------------------------------------------------------------- discounting


def test_whole_years_discount_by_powers_of_one_plus_r():
    for years in (1, 2, 10):
        assert discount_at(12.0 * years, NICE_RATE) == pytest.approx(1.035**-years, rel=1e-14)
    assert monthly_discount_rate(NICE_RATE) == pytest.approx(math.log(1.035) / 12, rel=1e-15)
    assert discount_at(0.0, NICE_RATE) == 1.0
    assert discount_at(np.inf, NICE_RATE) == 0.0
    assert discount_at(np.inf, 0.0) == 1.0


def test_integral_closed_form_additivity_and_derivative():
    delta = math.log1p(NICE_RATE) / 12
    t0, t1 = 3.0, 40.0
    expected = (math.exp(-delta * t0) - math.exp(-delta * t1)) / delta
    assert discount_factor_integral(t0, t1, NICE_RATE) == pytest.approx(expected, rel=1e-13)
    # one year of a unit rate starting at 0: (1 - 1/(1+r)) / delta
    assert discount_factor_integral(0, 12, NICE_RATE) == pytest.approx(
        (1 - 1 / 1.035) / delta, rel=1e-14
    )
    a, b, c = 0.0, 7.3, 55.0
    assert discount_factor_integral(a, b, NICE_RATE) + discount_factor_integral(
        b, c, NICE_RATE
    ) == pytest.approx(discount_factor_integral(a, c, NICE_RATE), rel=1e-14)
    h = 1e-5
    slope = (
        discount_factor_integral(0, 20 + h, NICE_RATE)
        - discount_factor_integral(0, 20 - h, NICE_RATE)
    ) / (2 * h)
    assert slope == pytest.approx(discount_at(20.0, NICE_RATE), rel=1e-8)
    assert discount_factor_integral(5.0, np.inf, NICE_RATE) == pytest.approx(
        math.exp(-delta * 5) / delta, rel=1e-14
    )


def test_integral_against_quadrature():
    delta = math.log1p(0.05) / 12
    value, _ = integrate.quad(lambda t: math.exp(-delta * t), 2.5, 31.0, epsabs=0, epsrel=1e-13)
    assert discount_factor_integral(2.5, 31.0, 0.05) == pytest.approx(value, rel=1e-12)


def test_zero_and_tiny_rates_give_the_length():
    assert discount_factor_integral(2.0, 7.5, 0.0) == 5.5
    assert discount_factor_integral(2.0, np.inf, 0.0) == np.inf
    assert discount_factor_integral(4.0, 4.0, NICE_RATE) == 0.0
    # first-order expansion: length * (1 - delta * midpoint); expm1 keeps this exact
    rate = 1e-12
    delta = math.log1p(rate) / 12
    got = discount_factor_integral(2.0, 7.5, rate)
    assert got == pytest.approx(5.5 * (1 - delta * 4.75), rel=1e-15)
    assert got < 5.5


def test_discounting_broadcasts_over_draws():
    rates = np.array([[0.0], [0.03], [0.035]])  # (n_draws, 1)
    t0 = np.array([0.0, 6.0, 12.0])
    t1 = np.array([6.0, 12.0, np.inf])
    out = discount_factor_integral(t0, t1, rates)
    assert out.shape == (3, 3)
    for i, r in enumerate(rates[:, 0]):
        for j in range(3):
            assert out[i, j] == discount_factor_integral(t0[j], t1[j], r)
    assert discount_at(np.array([0.0, 12.0]), rates).shape == (3, 2)


@pytest.mark.parametrize(
    ("t0", "t1", "rate"),
    [(5.0, 4.0, 0.03), (0.0, 1.0, -0.01), (np.nan, 1.0, 0.03), (0.0, np.nan, 0.03), (0, 1, np.inf)],
)
def test_discounting_rejects_bad_inputs(t0, t1, rate):
    with pytest.raises(ValueError):
        discount_factor_integral(t0, t1, rate)


def test_discount_at_rejects_negative_times():
    with pytest.raises(ValueError, match="times"):
        discount_at(-1.0, 0.03)


def test_exponential_sojourn_expected_discounted_cost():
    """Sojourn T ~ Exp(lam) from 0 at c per month: E[c D(0, T)] = c / (lam + delta).

    Monte Carlo with N = 200_000 at a fixed seed, tolerance 3 standard errors
    of the sample mean; and the same expectation by quadrature.
    """
    lam, cost_rate = 1 / 9.0, 2500.0
    delta = math.log1p(NICE_RATE) / 12
    rng = np.random.default_rng(20240101)
    sojourn = rng.exponential(1 / lam, 200_000)
    for rate, expected in ((NICE_RATE, cost_rate / (lam + delta)), (0.0, cost_rate / lam)):
        cost = cost_rate * discount_factor_integral(0.0, sojourn, rate)
        se = cost.std(ddof=1) / math.sqrt(cost.size)
        assert abs(cost.mean() - expected) <= 3 * se
        by_quad, _ = integrate.quad(
            lambda t, rate=rate: (
                lam * math.exp(-lam * t) * cost_rate * discount_factor_integral(0.0, t, rate)
            ),
            0,
            np.inf,
            epsrel=1e-11,
        )
        assert by_quad == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------- ICER table


def _row(table: pd.DataFrame, name: str) -> pd.Series:
    return table.set_index("sequence").loc[name]


def test_icer_table_textbook_strong_and_extended_dominance():
    """Hand-built Drummond-style example (costs in currency, effects in QALYs).

    A 10000/1.0 is the cheapest: reference.
    B 12000/1.1: ICER vs A = 2000/0.1 = 20000, but C vs B = 3000/0.4 = 7500 < 20000,
      so B is extendedly dominated (a mix of A and C does better).
    C 15000/1.5: ICER vs A = 5000/0.5 = 10000.
    D 20000/1.4: dearer and less effective than C: dominated.
    E 30000/1.8: ICER vs C = 15000/0.3 = 50000.
    """
    table = icer_table(
        ["E", "D", "C", "B", "A"],
        [30000, 20000, 15000, 12000, 10000],
        [1.8, 1.4, 1.5, 1.1, 1.0],
    )
    assert list(table.columns) == [
        "sequence",
        "cost",
        "effect",
        "inc_cost",
        "inc_effect",
        "icer",
        "status",
    ]
    assert list(table.sequence) == ["A", "B", "C", "D", "E"]  # sorted by cost
    assert list(table.status) == [
        "reference",
        "extendedly dominated",
        "non-dominated",
        "dominated",
        "non-dominated",
    ]
    assert _row(table, "C").icer == pytest.approx(10000.0)
    assert _row(table, "C").inc_cost == pytest.approx(5000.0)
    assert _row(table, "C").inc_effect == pytest.approx(0.5)
    assert _row(table, "E").icer == pytest.approx(50000.0)
    for name in ("A", "B", "D"):
        assert np.isnan(_row(table, name).icer)


def test_extended_dominance_is_iterative():
    """A 0/0, B 10/0.1, C 25/0.2, D 30/0.5.

    First pass: ICERs B 100, C 150, D 16.7; C (150 > 16.7) goes. Recomputed:
    B 100, D vs B 20/0.4 = 50; now B (100 > 50) goes. D vs A = 30/0.5 = 60.
    """
    table = icer_table(list("ABCD"), [0, 10, 25, 30], [0, 0.1, 0.2, 0.5])
    assert list(table.status) == [
        "reference",
        "extendedly dominated",
        "extendedly dominated",
        "non-dominated",
    ]
    assert _row(table, "D").icer == pytest.approx(60.0)


def test_all_dominated_by_one():
    table = icer_table(["X", "Y", "Z"], [100.0, 200.0, 300.0], [5.0, 4.0, 5.0])
    assert dict(zip(table.sequence, table.status, strict=True)) == {
        "X": "reference",
        "Y": "dominated",
        "Z": "dominated",  # equally effective, dearer
    }
    assert table.icer.isna().all()


def test_ties():
    # equal cost: the less effective is dominated; equal effect: the dearer is dominated
    table = icer_table(["P", "Q", "R", "S"], [100, 100, 300, 400], [1.0, 2.0, 3.0, 3.0])
    assert dict(zip(table.sequence, table.status, strict=True)) == {
        "P": "dominated",
        "Q": "reference",
        "R": "non-dominated",
        "S": "dominated",
    }
    assert _row(table, "R").icer == pytest.approx(200.0)
    # identical options are indistinguishable: same status, same ICER, no crash
    table = icer_table(["A", "B", "B2"], [0, 10, 10], [0, 1, 1])
    assert list(table.status) == ["reference", "non-dominated", "non-dominated"]
    assert list(table.icer[1:]) == [10.0, 10.0]
    table = icer_table(["A", "A2"], [5.0, 5.0], [1.0, 1.0])
    assert list(table.status) == ["reference", "reference"]
    assert table.icer.isna().all()


def test_collinear_options_stay_on_the_frontier():
    # equal ICERs (0.1 * 3 rounds differently from 0.3): not extended dominance
    table = icer_table(list("ABC"), [0.0, 1000.0, 3000.0], [0.0, 0.1, 0.3])
    assert list(table.status) == ["reference", "non-dominated", "non-dominated"]
    assert table.icer[1] == pytest.approx(table.icer[2], rel=1e-12)


def test_single_option():
    table = icer_table(["only"], [1234.0], [2.5])
    assert list(table.status) == ["reference"]
    assert table.icer.isna().all()


@pytest.mark.parametrize(
    ("names", "costs", "effects", "match"),
    [
        (["a", "b"], [1.0], [1.0, 2.0], "one value per name"),
        (["a", "a"], [1.0, 2.0], [1.0, 2.0], "unique"),
        (["a", "b"], [1.0, np.nan], [1.0, 2.0], "finite"),
        ([], [], [], "at least one"),
    ],
)
def test_icer_table_rejects_bad_inputs(names, costs, effects, match):
    with pytest.raises(ValueError, match=match):
        icer_table(names, costs, effects)


option_sets = st.lists(
    st.tuples(
        st.integers(0, 20).map(lambda k: 1000.0 * k), st.integers(0, 15).map(lambda k: k / 10)
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(option_sets)
def test_icer_frontier_properties(options):
    costs = np.array([c for c, _ in options])
    effects = np.array([e for _, e in options])
    names = [f"s{i}" for i in range(len(options))]
    table = icer_table(names, costs, effects)
    assert set(table.status) <= set(econ.STATUSES)
    on_frontier = table.status.isin(["reference", "non-dominated"]).to_numpy()
    frontier = table[on_frontier]
    # frontier ICERs increase (ties allowed for collinear options)
    icers = frontier.icer.to_numpy()[frontier.status.to_numpy() == "non-dominated"]
    assert np.all(np.diff(icers) >= -1e-9 * np.abs(icers[1:]))
    assert np.all(icers > 0)
    # strongly dominated options have a dominator
    for _, row in table[table.status == "dominated"].iterrows():
        no_worse = (table.cost <= row.cost) & (table.effect >= row.effect)
        better = (table.cost < row.cost) | (table.effect > row.effect)
        assert (no_worse & better).any()
    # No option beats the frontier at any WTP >= 0. The max NMB over options is
    # convex and piecewise linear in the WTP, with kinks at the frontier ICERs,
    # so checking 0, every ICER and the slope at infinity covers all WTP.
    c, e = table.cost.to_numpy(), table.effect.to_numpy()
    for lam in np.concatenate([[0.0], icers]):
        values = lam * e - c
        tol = 1e-9 * (np.abs(values).max() + 1)
        assert values[on_frontier].max() >= values.max() - tol
    assert e[on_frontier].max() == e.max()
    # ... and every frontier option is best somewhere: the reference at WTP 0,
    # each other at its own ICER (where it ties with its predecessor)
    ref = np.flatnonzero(table.status.to_numpy() == "reference")
    assert np.all(-c[ref] >= (-c).max())
    for i in np.flatnonzero(table.status.to_numpy() == "non-dominated"):
        values = table.icer[i] * e - c
        assert values[i] >= values.max() - 1e-9 * (np.abs(values).max() + 1)


# --------------------------------------------------------------------------- NMB, CEAC, CEAF


def test_nmb_shape_and_values():
    costs = np.array([[100.0, 300.0], [200.0, 250.0], [150.0, 400.0]])
    effects = np.array([[1.0, 1.5], [0.8, 1.2], [1.1, 1.0]])
    out = nmb(costs, effects, [0.0, 1000.0])
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out[0], -costs)
    np.testing.assert_array_equal(out[1], 1000.0 * effects - costs)
    assert nmb(costs, effects, 500.0).shape == (1, 3, 2)
    assert nmb([100.0, 300.0], [1.0, 1.5], 1000.0).shape == (1, 1, 2)  # one draw
    with pytest.raises(ValueError):
        nmb(costs, effects[:, :1], 1000.0)
    with pytest.raises(ValueError):
        nmb(costs, effects, [-1.0])


def test_ceac_two_options_normal_closed_form():
    """INB = wtp * dE - dC with (dC, dE) bivariate normal, so P(INB > 0) = Phi(mu / sd).

    N = 20_000 draws: tolerance 3 * sqrt(p (1 - p) / N).
    """
    rng = np.random.default_rng(11)
    n = 20_000
    mean = np.array([5000.0, 0.2])
    cov = np.array([[3000.0**2, 0.5 * 3000 * 0.15], [0.5 * 3000 * 0.15, 0.15**2]])
    d = rng.multivariate_normal(mean, cov, n)
    base_c, base_e = rng.normal(20000, 4000, n), rng.normal(1.0, 0.2, n)
    costs = np.column_stack([base_c, base_c + d[:, 0]])
    effects = np.column_stack([base_e, base_e + d[:, 1]])
    wtp = np.array([0.0, 10000.0, 25000.0, 50000.0, 100000.0])
    got = ceac(costs, effects, wtp)
    assert got.shape == (5, 2)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    for k, lam in enumerate(wtp):
        mu = lam * mean[1] - mean[0]
        sd = math.sqrt(lam**2 * cov[1, 1] - 2 * lam * cov[0, 1] + cov[0, 0])
        p = stats.norm.cdf(mu / sd)
        assert abs(got[k, 1] - p) <= 3 * math.sqrt(p * (1 - p) / n)


def test_ceac_splits_ties_and_steps_at_the_icer_with_one_draw():
    costs = np.array([[0.0, 1000.0, 1000.0]])  # options 1 and 2 identical
    effects = np.array([[0.0, 0.1, 0.1]])
    got = ceac(costs, effects, [5000.0, 10000.0, 20000.0])
    np.testing.assert_array_equal(got, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0.5, 0.5]])
    # one draw = the deterministic analysis: the switch is at the frontier ICER
    table = icer_table(["A", "B"], [0.0, 1000.0], [0.0, 0.1])
    icer = table.icer[1]
    assert ceac([[0.0, 1000.0]], [[0.0, 0.1]], [icer * 0.99])[0, 0] == 1.0
    assert ceac([[0.0, 1000.0]], [[0.0, 0.1]], [icer * 1.01])[0, 1] == 1.0


def test_ceaf_follows_expected_nmb_not_the_most_likely_option():
    """Skewed NMB (Fenwick et al. 2001): B loses 1 in 7 of 10 draws and gains 10
    in 3, so its expected NMB is higher (+2.3) but it is best in only 30%."""
    nmb_b = np.array([-1.0] * 7 + [10.0] * 3)
    costs = np.column_stack([np.zeros(10), -nmb_b])  # effects 0: NMB = -cost at any WTP
    effects = np.zeros((10, 2))
    frontier = ceaf(costs, effects, [0.0, 1e4], names=["A", "B"])
    assert list(frontier.sequence) == ["B", "B"]
    assert list(frontier.option_idx) == [1, 1]
    np.testing.assert_allclose(frontier.expected_nmb, 2.3)
    np.testing.assert_allclose(frontier.probability, 0.3)
    assert ceac(costs, effects, [0.0])[0, 0] == pytest.approx(0.7)


def test_ceaf_switches_at_the_icer_of_the_means():
    rng = np.random.default_rng(3)
    costs = np.column_stack([rng.normal(1000, 100, 500), rng.normal(6000, 100, 500)])
    effects = np.column_stack([rng.normal(1.0, 0.05, 500), rng.normal(1.2, 0.05, 500)])
    icer = (costs[:, 1].mean() - costs[:, 0].mean()) / (effects[:, 1].mean() - effects[:, 0].mean())
    frontier = ceaf(costs, effects, [0.98 * icer, 1.02 * icer])
    assert list(frontier.option_idx) == [0, 1]
    probs = ceac(costs, effects, [0.98 * icer, 1.02 * icer])
    np.testing.assert_array_equal(frontier.probability, [probs[0, 0], probs[1, 1]])


# --------------------------------------------------------------------------- EVPI


def test_evpi_is_exactly_zero_when_one_option_always_wins():
    rng = np.random.default_rng(5)
    costs = np.column_stack([rng.normal(1000, 200, 400), rng.normal(9000, 200, 400)])
    effects = np.column_stack([rng.normal(2.0, 0.1, 400), rng.normal(1.0, 0.1, 400)])
    assert np.all(evpi(costs, effects, [0.0, 20000.0, 50000.0]) == 0.0)
    assert np.all(evpi(costs[:1], effects[:1], [0.0, 20000.0]) == 0.0)  # one draw


def test_evpi_two_options_normal_closed_form():
    """INB ~ N(mu, sd^2): EVPI = sd phi(mu/sd) - |mu| Phi(-|mu|/sd).

    N = 50_000; tolerance 3 standard errors of the mean per-draw regret.
    """
    rng = np.random.default_rng(17)
    n = 50_000
    d_c = rng.normal(5000.0, 3000.0, n)
    d_e = rng.normal(0.2, 0.15, n)  # independent of d_c
    costs = np.column_stack([np.zeros(n), d_c])
    effects = np.column_stack([np.zeros(n), d_e])
    for lam in (10000.0, 25000.0, 40000.0):
        mu = lam * 0.2 - 5000.0
        sd = math.hypot(lam * 0.15, 3000.0)
        exact = sd * stats.norm.pdf(mu / sd) - abs(mu) * stats.norm.cdf(-abs(mu) / sd)
        inb = lam * d_e - d_c
        regret = np.maximum(inb, 0) - (inb if inb.mean() > 0 else 0)
        se = regret.std(ddof=1) / math.sqrt(n)
        got = evpi(costs, effects, [lam])[0]
        assert got == pytest.approx(regret.mean(), rel=1e-12)
        assert abs(got - exact) <= 3 * se


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
        elements=st.floats(-1e6, 1e6),
    ),
    st.data(),
)
def test_evpi_is_non_negative(costs, data):
    effects = data.draw(
        hnp.arrays(np.float64, costs.shape, elements=st.floats(0.0, 20.0)), label="effects"
    )
    wtp = data.draw(st.lists(st.floats(0.0, 2e5), min_size=1, max_size=4), label="wtp")
    assert np.all(evpi(costs, effects, wtp) >= 0.0)


def test_blocked_wtp_grid_matches_one_block(monkeypatch):
    rng = np.random.default_rng(8)
    costs = rng.normal(1000, 300, (200, 3))
    effects = rng.normal(1.0, 0.2, (200, 3))
    params = rng.normal(size=200)
    wtp = np.linspace(0, 10000, 7)
    whole = ceac(costs, effects, wtp), evpi(costs, effects, wtp), evppi(costs, effects, wtp, params)
    monkeypatch.setattr(econ, "_BLOCK_ELEMENTS", 1000)  # two WTP values per block
    blocked = (
        ceac(costs, effects, wtp),
        evpi(costs, effects, wtp),
        evppi(costs, effects, wtp, params),
    )
    for a, b in zip(whole, blocked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)


# --------------------------------------------------------------------------- EVPPI

WTP = np.array([20000.0, 30000.0, 50000.0, 70000.0, 100000.0])


def toy_model(phi, psi, eta):
    """Two options. Option 1 vs 0: dE = 0.25 + 0.2 phi + 0.05 phi^2 + 0.04 psi (QALYs),
    dC = 12000 + 3000 phi + 1000 psi; eta moves both options alike and cancels in INB."""
    phi, psi, eta = np.broadcast_arrays(phi, psi, eta)
    d_e = 0.25 + 0.2 * phi + 0.05 * phi**2 + 0.04 * psi
    d_c = 12000.0 + 3000.0 * phi + 1000.0 * psi
    c0, e0 = 20000.0 + 5000.0 * eta, 1.0 + 0.2 * eta
    return np.stack([c0, c0 + d_c], axis=-1), np.stack([e0, e0 + d_e], axis=-1)


def toy_inb_given_phi(lam, phi):
    """E[INB | phi] of the toy model (psi has mean 0)."""
    return lam * (0.25 + 0.2 * phi + 0.05 * phi**2) - (12000.0 + 3000.0 * phi)


def regret(inb):
    """Per-draw max(0, INB) - INB[d*], d* the option with the higher mean NMB."""
    return np.maximum(inb, 0.0) - (inb if inb.mean() > 0 else 0.0)


def test_evppi_regression_agrees_with_nested_monte_carlo():
    """EVPPI of phi in the toy model, three ways.

    - Exact: E[max(0, m(phi))] - max(0, E m) by quadrature, m = E[INB | phi].
    - Nested MC: 2000 outer phi x 400 inner (psi, eta). Outer SE from the
      function. The inner loop biases the estimate up by at most
      s / sqrt(2 pi) with s = |0.04 wtp - 1000| / sqrt(400) the SD of an inner
      mean of INB (E[max(0, x + eps)] - max(0, x) <= E[eps+]).
    - Regression on a single PSA sample of 5000. Its error against the exact
      value is (a) outer sampling, SE of the per-draw regret of the true m on
      the same draws, plus (b) smoothing error, bounded by
      mean(|g - m| where either regret is positive), regret being 1-Lipschitz
      and zero elsewhere; (b) is computed from the fitted values g.
    Tolerances: 3 combined SEs plus the bias and smoothing bounds.
    """
    rng = np.random.default_rng(20240601)
    n = 5000
    phi, psi, eta = rng.standard_normal((3, n))
    costs, effects = toy_model(phi, psi, eta)
    by_regression = evppi(costs, effects, WTP, phi)

    rng = np.random.default_rng(7)
    n_outer, n_inner = 2000, 400
    phi_outer = rng.standard_normal(n_outer)[:, None]
    psi_inner, eta_inner = rng.standard_normal((2, n_outer, n_inner))
    nested = evppi_nested(*toy_model(phi_outer, psi_inner, eta_inner), WTP)
    assert nested.evppi.shape == nested.se.shape == WTP.shape

    inb = WTP * (effects[:, 1:] - effects[:, :1]) - (costs[:, 1:] - costs[:, :1])  # (n, n_wtp)
    fitted = conditional_expectation(phi, inb)  # one GCV choice per WTP, as in evppi
    for k, lam in enumerate(WTP):
        g = fitted[:, k]
        # the closed-form-in-WTP fit inside evppi is the same regression
        assert by_regression[k] == pytest.approx(regret(g).mean(), rel=1e-9)
        m = toy_inb_given_phi(lam, phi)
        assert (g.mean() > 0) == (m.mean() > 0)
        r_m = regret(m)
        se_regression = r_m.std(ddof=1) / math.sqrt(n)
        smoothing = np.mean(np.abs(g - m) * ((regret(g) > 0) | (r_m > 0)))
        inner_bias = abs(0.04 * lam - 1000.0) / math.sqrt(n_inner) / math.sqrt(2 * math.pi)
        exact = integrate.quad(
            lambda x, lam=lam: max(0.0, toy_inb_given_phi(lam, x)) * stats.norm.pdf(x),
            -12,
            12,
            points=[-3, -2, -1, 0, 1, 2, 3],
            limit=200,
        )[0] - max(0.0, 0.3 * lam - 12000.0)

        se_both = math.hypot(se_regression, nested.se[k])
        diff = nested.evppi[k] - by_regression[k]
        assert -3 * se_both - smoothing <= diff <= 3 * se_both + smoothing + inner_bias
        assert abs(by_regression[k] - exact) <= 3 * se_regression + smoothing
        assert -3 * nested.se[k] <= nested.evppi[k] - exact <= 3 * nested.se[k] + inner_bias


def test_evppi_at_most_evpi_for_every_group():
    """EVPPI(group) <= EVPI up to Monte Carlo error: EVPI - EVPPI is the mean of
    the per-draw regret(INB) - regret(fitted INB), N = 4000; tolerance 3 SE."""
    rng = np.random.default_rng(99)
    n = 4000
    theta = rng.standard_normal((n, 3))
    costs, effects = toy_model(*theta.T)
    full = evpi(costs, effects, WTP)
    groups = [[0], [1], [2], [0, 1], [1, 2], [0, 2], [0, 1, 2]]
    inb = WTP * (effects[:, 1:] - effects[:, :1]) - (costs[:, 1:] - costs[:, :1])  # (n, n_wtp)
    for group in groups:
        partial = evppi(costs, effects, WTP, theta[:, group])
        assert np.all(partial >= 0.0)
        fitted = conditional_expectation(theta[:, group], inb)  # one GCV choice per WTP
        for k in range(WTP.size):
            per_draw = regret(inb[:, k]) - regret(fitted[:, k])
            se = per_draw.std(ddof=1) / math.sqrt(n)
            # the group of all three spans the quadratic INB: equal up to rounding
            assert partial[k] <= full[k] + 3 * se + 1e-9 * full[k], (group, WTP[k])


def test_evppi_of_all_parameters_equals_evpi_when_nmb_is_a_polynomial():
    """NMB a quadratic with interactions of 3 parameters: the degree-2 (or 3)
    polynomial basis contains it, so the fit is exact and EVPPI = EVPI up to rounding."""
    rng = np.random.default_rng(4)
    n = 2000
    a, b, c = rng.standard_normal((3, n))
    effects = np.column_stack([np.ones(n), 1.2 + 0.2 * a + 0.1 * a * b, 1.3 + 0.1 * c**2 - 0.1 * b])
    costs = np.column_stack([np.full(n, 1000.0), 5000 + 2000 * b + 500 * a * c, 9000 + 800 * c])
    params = np.column_stack([a, b, c])
    full = evpi(costs, effects, WTP)
    assert np.all(full > 0)
    np.testing.assert_allclose(evppi(costs, effects, WTP, params), full, rtol=1e-8)


@pytest.mark.parametrize("n_params", [1, 2])
def test_evppi_of_all_parameters_approaches_evpi_for_smooth_nmb(n_params):
    """NMB a smooth non-polynomial function of 1 or 2 parameters, no noise.

    There is no Monte Carlo error between EVPI and EVPPI here (same draws);
    the gap is the smoother's, bounded by mean(|g - f| where either regret > 0)
    for each option's fitted incremental NMB g against the truth f. The spline
    must also recover f: RMS error under 0.5% of the SD of f (a quality target
    for this smooth f, not a statistical tolerance).
    """
    rng = np.random.default_rng(12)
    n = 3000
    x = rng.uniform(-2, 2, (n, n_params))
    y = x[:, -1]
    d_e = 0.3 * np.tanh(x[:, 0] + 0.5 * x[:, 0] * y)
    d_c = 6000.0 * np.exp(0.3 * y)
    costs = np.column_stack([np.zeros(n), d_c])
    effects = np.column_stack([np.zeros(n), d_e])
    full = evpi(costs, effects, WTP)
    partial = evppi(costs, effects, WTP, x)
    f_all = WTP * d_e[:, None] - d_c[:, None]
    g_all = conditional_expectation(x, f_all)
    for k in range(WTP.size):
        f, g = f_all[:, k], g_all[:, k]
        bound = np.mean(np.abs(g - f) * ((regret(g) > 0) | (regret(f) > 0)))
        assert abs(partial[k] - full[k]) <= bound + 1e-9 * full[k]
        assert np.sqrt(np.mean((g - f) ** 2)) <= 0.005 * f.std()


def test_evppi_of_a_binary_parameter_uses_the_group_means():
    rng = np.random.default_rng(21)
    n = 3000
    switch = (rng.uniform(size=n) < 0.3).astype(float)
    noise = rng.standard_normal((n, 3))
    effects = np.column_stack([np.ones(n), 1.1 + 0.3 * switch, 1.2 - 0.1 * switch]) + 0.1 * noise
    costs = np.column_stack([np.zeros(n), np.full(n, 4000.0), 8000 - 6000 * switch]) + 500 * noise
    got = evppi(costs, effects, WTP, switch)
    for k, lam in enumerate(WTP):
        values = lam * effects - costs
        group_means = np.where(
            switch[:, None] == 1.0,
            values[switch == 1].mean(axis=0),
            values[switch == 0].mean(axis=0),
        )
        expected = group_means.max(axis=1).mean() - values.mean(axis=0).max()
        assert got[k] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_evppi_of_a_constant_parameter_is_zero():
    rng = np.random.default_rng(2)
    costs, effects = toy_model(*rng.standard_normal((3, 500)))
    assert np.all(evppi(costs, effects, WTP, np.full(500, 0.7)) == 0.0)


def test_evppi_rejects_misaligned_params():
    costs, effects = toy_model(*np.random.default_rng(0).standard_normal((3, 50)))
    with pytest.raises(ValueError, match="one row per draw"):
        evppi(costs, effects, WTP, np.zeros(49))
    with pytest.raises(ValueError, match="too few"):
        evppi(costs[:4], effects[:4], WTP, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="reference_idx"):
        evppi(costs, effects, WTP, np.zeros(50), reference_idx=2)
