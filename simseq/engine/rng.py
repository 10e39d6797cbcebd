"""Counter-based random numbers: the uniform for (seed, draw, patient, counter) is a pure function.

Each patient's stream is SplitMix64 (Steele, Lea & Flood 2014) started from a
key hashed from (seed, draw, patient). Because nothing is carried between
patients, results do not depend on thread count, chunking or backend, and two
sequences simulated for the same patient see the same numbers (common random
numbers).
"""

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_TWO_POW_M53 = 1.0 / 9007199254740992.0


@njit(inline="always", nogil=True)
def mix64(z):
    """SplitMix64 finaliser: a bijective avalanche of a uint64. Jit-compiled."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(inline="always", nogil=True)
def patient_key(seed, draw_idx, patient_idx):
    """uint64 stream key for one patient in one parameter draw. Jit-compiled."""
    k = mix64(np.uint64(seed) + _GOLDEN)
    k = mix64(k ^ (np.uint64(draw_idx) * _MIX1 + _ONE))
    return mix64(k ^ (np.uint64(patient_idx) * _MIX2 + _GOLDEN))


@njit(inline="always", nogil=True)
def uniform(key, counter):
    """The counter-th uniform of a stream, strictly inside (0, 1). Jit-compiled."""
    x = mix64(key + (np.uint64(counter) + _ONE) * _GOLDEN)
    return (np.float64(x >> _S11) + 0.5) * _TWO_POW_M53


@njit(nogil=True)
def uniforms(seed, draw_idx, patient_idx, n):
    """ndarray(float64, (n,)) of one patient's first n uniforms (for tests). Jit-compiled."""
    key = patient_key(seed, draw_idx, patient_idx)
    out = np.empty(n)
    for i in range(n):
        out[i] = uniform(key, i)
    return out
