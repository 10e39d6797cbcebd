"""The vectorisable log/exp against NumPy's libm, to within 1-2 ulp."""

import numpy as np
import pytest

from simseq.engine.vmath import EXP_MAX, EXP_MIN, vexp_array, vlog_array


def ulp_error(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


@pytest.mark.parametrize(
    "x",
    [
        np.exp(np.random.default_rng(0).uniform(-700, 700, 200_000)),
        np.random.default_rng(1).uniform(1e-17, 1.0, 200_000),  # the engine's uniforms
        np.random.default_rng(2).uniform(0.5, 2.0, 200_000),  # around 1, where log cancels
        np.array([np.finfo(float).tiny, 1e-300, 1.0 - 2**-53, 1.0, 1.0 + 2**-52, 2.0, 1e300]),
    ],
)
def test_vlog_matches_libm(x):
    out = np.empty_like(x)
    vlog_array(x, out)
    want = np.log(x)
    nonzero = want != 0
    assert np.all(out[~nonzero] == 0)
    assert ulp_error(out[nonzero], want[nonzero]).max() <= 2


@pytest.mark.parametrize(
    "x",
    [
        np.random.default_rng(3).uniform(EXP_MIN, EXP_MAX, 200_000),
        np.random.default_rng(4).uniform(-5, 5, 200_000),
        np.array([0.0, -0.0, 1e-20, -1e-20, 1.0, -1.0, EXP_MIN, EXP_MAX]),
    ],
)
def test_vexp_matches_libm(x):
    out = np.empty_like(x)
    vexp_array(x, out)
    assert ulp_error(out, np.exp(x)).max() <= 2


def test_vexp_clamps_instead_of_overflowing():
    out = np.empty(2)
    vexp_array(np.array([-1e4, 1e4]), out)
    assert out[0] == pytest.approx(np.exp(EXP_MIN)) and out[1] == pytest.approx(np.exp(EXP_MAX))
