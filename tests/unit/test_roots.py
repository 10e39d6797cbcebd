"""The vectorised root finder against scipy.optimize.brentq, draw by draw.

Given the same function values, each draw must take brentq's iterates exactly, so
the comparisons below are exact (bitwise), not within a tolerance; on log x the
answers agree within the stated xtol.
"""

import numpy as np
import pytest
from scipy.optimize import brentq

from simseq.roots import solve_monotone

N = 300


@pytest.fixture(scope="module")
def problems():
    """Random monotone functions of y = log x with a root in roughly [-2, 2]: a steep
    tanh step, a cubic and a power of x, increasing or decreasing."""
    rng = np.random.default_rng(20260512)
    c = rng.uniform(-2.0, 2.0, N)
    k = rng.uniform(0.1, 8.0, N)
    p = rng.uniform(0.3, 3.0, N)
    sign = rng.choice([-1.0, 1.0], N)

    def g(y, rows):
        u = y - c[rows]
        return sign[rows] * (np.tanh(k[rows] * u) + 0.1 * u**3 + 0.01 * np.expm1(p[rows] * u))

    return g


def _brentq(g, i, a, b, xtol):
    root, info = brentq(lambda y: g(np.array([y]), np.array([i]))[0], a, b, xtol=xtol,
                        full_output=True)  # fmt: skip
    return root, info.function_calls


@pytest.mark.parametrize("xtol", [1e-7, 1e-12])
def test_each_draw_takes_brentqs_steps(problems, xtol):
    """Same iterates, same answer and same number of evaluations as brentq, per draw."""
    a, b = np.log(0.01), np.log(100.0)
    res = solve_monotone(problems, a, b, xtol=xtol, log_space=False, n_draws=N)
    assert res.ok.all()
    for i in range(N):
        root, calls = _brentq(problems, i, a, b, xtol)
        assert res.x[i] == root
        assert res.n_evals[i] == calls
    # one call of f per step for every draw still searching, not one per draw
    assert res.n_calls == res.n_evals.max()


def test_log_space_roots_are_within_xtol(problems):
    """On log x the same problems give exp(brentq's root on log x), within xtol relative
    (the two differ only in exp(log(lo)) against lo at the ends)."""
    res = solve_monotone(lambda x, rows: problems(np.log(x), rows), 0.01, 100.0, xtol=1e-9,
                         n_draws=N)  # fmt: skip
    want = np.exp([_brentq(problems, i, np.log(0.01), np.log(100.0), 1e-9)[0] for i in range(N)])
    np.testing.assert_allclose(np.log(res.x), np.log(want), rtol=0, atol=2e-9)


def test_a_draw_does_not_depend_on_the_others(problems):
    everyone = solve_monotone(problems, -5.0, 5.0, log_space=False, n_draws=N)
    rows = np.array([3, 17, 250])
    alone = solve_monotone(lambda y, r: problems(y, rows[r]), -5.0, 5.0, log_space=False,
                           n_draws=3)  # fmt: skip
    assert np.array_equal(alone.x, everyone.x[rows])


def test_unbracketed_and_undefined_draws_are_flagged():
    """Row 0: no sign change; row 1: nan inside the bracket; row 2: a root at an end
    (returned exactly); row 3: fine."""

    def f(x, rows):
        out = np.empty(len(x))
        for j, (xi, r) in enumerate(zip(x, rows, strict=True)):
            out[j] = {0: xi + 10.0, 1: np.nan if 0.1 < xi < 0.9 else xi - 0.5,
                      2: xi - 1.0, 3: xi**3 - 0.2}[int(r)]  # fmt: skip
        return out

    res = solve_monotone(f, 0.0, 1.0, log_space=False, n_draws=4)
    assert res.not_bracketed.tolist() == [True, False, False, False]
    assert res.not_converged.tolist() == [False, True, False, False]
    assert np.isnan(res.x[:2]).all() and res.x[2] == 1.0
    assert res.x[3] == pytest.approx(0.2 ** (1 / 3), abs=1e-7)
    assert res.f_lo[0] == 10.0 and res.f_hi[0] == 11.0


def test_brackets_are_validated():
    with pytest.raises(ValueError, match=r"draw 1: bracket \[0, 1\]; need finite 0 < lo < hi"):
        solve_monotone(lambda x, r: x, [0.5, 0.0], 1.0)
    with pytest.raises(ValueError, match="f returned shape"):
        solve_monotone(lambda x, r: x[:1], [0.5, 0.1], 1.0)
