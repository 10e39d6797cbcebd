"""Model compilation: exact merging of same-shape competing clocks, and what is left alone."""

import numpy as np
import pytest

from simseq.distributions import FAMILIES, Distribution
from simseq.engine.codes import EVENT_DEATH, EVENT_PROGRESSION
from simseq.model import Clock, Covariate, Destination, SequenceModel, State, compile_model

TIMES = np.array([0.5, 3.0, 10.0, 40.0])


def clock(dist, state, event, log_hr=None):
    return Clock(dist, (Destination(state, event, 1.0),), log_hr or {})


class Compiled:
    """One compiled clock of state "L1" (or "A"): its distribution and destinations."""

    def __init__(self, distribution, destinations):
        self.distribution = distribution
        self.destinations = destinations


def compiled_clocks(state):
    """The clocks ``compile_model`` makes of ``state`` (its targets added as absorbing)."""
    targets = {d.state for c in state.clocks for d in c.destinations if d.state is not None}
    sink = clock(Distribution("exponential", (1.0,)), None, EVENT_DEATH)
    others = tuple(State(name, (sink,)) for name in sorted(targets))
    covariates = [Covariate(name, 0.5) for c in state.clocks for name in c.covariate_log_hr]
    m = compile_model([SequenceModel("s", (state, *others))], covariates)
    by_code = {f.code: name for name, f in FAMILIES.items()}
    out = []
    for c in range(m.state_clock_lo[0], m.state_clock_hi[0]):
        family = by_code[int(m.clock_family[c])]
        n = len(FAMILIES[family].param_names)
        dist = Distribution(family, tuple(m.clock_params[0, c, :n]), m.clock_hr[0, c])
        lo, hi = m.clock_dest_lo[c], m.clock_dest_hi[c]
        probs = np.diff(m.dest_cumprob[0, lo:hi], prepend=0.0)
        names = [None if s < 0 else m.state_names[s] for s in m.dest_state[lo:hi]]
        out.append(
            Compiled(
                dist,
                [
                    Destination(name, int(e), float(p))
                    for name, e, p in zip(names, m.dest_event[lo:hi], probs, strict=True)
                ],
            )
        )
    return out


def test_same_shape_weibulls_merge_exactly():
    prog = Distribution("weibull", (1.1, 10.0))
    death = Distribution("weibull", (1.1, 45.0), hr=1.3)
    state = State("L1", (clock(prog, "L2", EVENT_PROGRESSION), clock(death, None, EVENT_DEATH)))
    (merged,) = compiled_clocks(state)
    # the minimum's survival is the product of the survivals
    np.testing.assert_allclose(
        merged.distribution.survival(TIMES),
        prog.survival(TIMES) * death.survival(TIMES),
        rtol=1e-12,
    )
    # which clock rang: proportional to the cumulative-hazard coefficients
    a_prog, a_death = 10.0**-1.1, 1.3 * 45.0**-1.1
    probs = {d.state: d.probability for d in merged.destinations}
    assert probs["L2"] == pytest.approx(a_prog / (a_prog + a_death))
    assert probs[None] == pytest.approx(a_death / (a_prog + a_death))


def test_exponentials_merge_to_an_exponential_and_keep_cause_splits():
    a = Clock(
        Distribution("exponential", (0.1,)),
        (Destination("B", EVENT_PROGRESSION, 0.7), Destination("C", EVENT_PROGRESSION, 0.3)),
    )
    b = clock(Distribution("exponential", (0.3,)), None, EVENT_DEATH)
    (merged,) = compiled_clocks(State("A", (a, b)))
    assert merged.distribution.family == "exponential"
    assert merged.distribution.params[0] == pytest.approx(0.4)
    assert [d.probability for d in merged.destinations] == pytest.approx([0.175, 0.075, 0.75])


def test_an_exponential_and_a_shape_one_weibull_merge_to_a_weibull():
    # both have H = a t: the merged clock is a Weibull of shape 1 (mixed families)
    exp = Distribution("exponential", (0.1,))
    weibull = Distribution("weibull", (1.0, 20.0), hr=1.5)
    state = State("L1", (clock(exp, "L2", EVENT_PROGRESSION), clock(weibull, None, EVENT_DEATH)))
    (merged,) = compiled_clocks(state)
    assert merged.distribution.family == "weibull" and merged.distribution.hr == 1.0
    np.testing.assert_allclose(
        merged.distribution.survival(TIMES), exp.survival(TIMES) * weibull.survival(TIMES)
    )
    probs = {d.state: d.probability for d in merged.destinations}
    assert probs["L2"] == pytest.approx(0.1 / (0.1 + 1.5 / 20.0))


@pytest.mark.parametrize(
    "other",
    [
        clock(Distribution("weibull", (1.5, 20.0)), None, EVENT_DEATH),  # different shape
        clock(Distribution("llogis", (1.1, 20.0)), None, EVENT_DEATH),  # not Weibull
        clock(Distribution("weibull", (1.1, 20.0)), None, EVENT_DEATH, {"cp_b": 0.9}),  # covariate
    ],
)
def test_clocks_that_cannot_merge_are_kept(other):
    first = clock(Distribution("weibull", (1.1, 10.0)), "L2", EVENT_PROGRESSION)
    kept = compiled_clocks(State("L1", (first, other)))
    assert [c.distribution for c in kept] == [first.distribution, other.distribution]
