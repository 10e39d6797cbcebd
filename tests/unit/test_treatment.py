"""The early-stop rate of time on treatment (simseq.treatment) against closed forms and an
independent quadrature."""

import math

import numpy as np
import pytest
from scipy.integrate import quad

from simseq.distributions import FAMILIES, Distribution
from simseq.engine.codes import EVENT_DEATH, STATE_TREATMENT_STOP_RATE
from simseq.model import (
    BindError,
    Clock,
    Destination,
    Economics,
    SequenceModel,
    State,
    compile_model,
)
from simseq.treatment import stop_rate, stopped_share


def test_exponential_line_has_the_closed_form():
    """With a line ending at rate mu, stop rate r gives share r / (r + mu)."""
    mu = math.log(2) / 4.0
    share = np.array([1e-4, 0.05, 0.186, 0.3, 0.5, 0.0])
    params = np.zeros((share.size, 1, 3))
    params[:, 0, 0] = mu
    rate = stop_rate(share, [FAMILIES["exponential"]], params, np.ones((share.size, 1)))
    np.testing.assert_allclose(rate, mu * share / (1 - share), rtol=1e-9)


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("weibull", (0.7, 6.0)),
        ("weibull", (1.43, 4.0)),
        ("llogis", (1.5, 3.0)),
        ("lnorm", (1.2, 0.9)),
    ],
)
def test_share_matches_an_independent_quadrature(family, params):
    """share(r) = int_0^inf r e^-rt S(t) dt, by scipy.integrate.quad, at the solved rate."""
    fam = FAMILIES[family]
    p = np.zeros((1, 1, 3))
    p[0, 0, : len(params)] = params
    rate = float(stop_rate(np.array([0.3]), [fam], p, np.ones((1, 1)))[0])
    share, _ = quad(lambda t: rate * math.exp(-rate * t) * fam.survival(t, *params), 0, np.inf)
    assert share == pytest.approx(0.3, abs=1e-8)


def test_competing_clocks_and_hazard_ratios_combine():
    """Two exponential clocks (rates a, b) with hazard ratio 2 on the second end the line at
    rate a + 2b."""
    a, b = 0.1, 0.05
    p = np.zeros((1, 2, 3))
    p[0, :, 0] = [a, b]
    hr = np.array([[1.0, 2.0]])
    fams = [FAMILIES["exponential"]] * 2
    rate = stop_rate(np.array([0.25]), fams, p, hr)
    np.testing.assert_allclose(rate, (a + 2 * b) * 0.25 / 0.75, rtol=1e-9)
    np.testing.assert_allclose(stopped_share(rate, fams, p, hr), 0.25, rtol=1e-10)


def test_bind_names_the_state_of_an_impossible_share():
    state = State(
        "L2:x",
        (Clock(Distribution("exponential", (0.1,)), (Destination(None, EVENT_DEATH, 1.0),)),),
        treatment_cost_per_month=100.0,
        treatment_stop_share=1.0,
    )
    with pytest.raises(BindError, match=r"state 'L2:x': draw 0: .* not in \[0, 1\)"):
        compile_model([SequenceModel("s", (state,))], economics=Economics())


def test_rates_are_solved_only_where_costs_use_them():
    state = State(
        "A",
        (Clock(Distribution("exponential", (0.1,)), (Destination(None, EVENT_DEATH, 1.0),)),),
        treatment_stop_share=0.5,
    )
    with_costs = compile_model([SequenceModel("s", (state,))], economics=Economics())
    assert with_costs.state_econ[0, 0, STATE_TREATMENT_STOP_RATE] == pytest.approx(0.1)
    without = compile_model([SequenceModel("s", (state,))])
    assert without.state_econ[0, 0, STATE_TREATMENT_STOP_RATE] == 0.0
