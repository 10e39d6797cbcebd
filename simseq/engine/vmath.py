"""log and exp written as plain arithmetic, so that LLVM can vectorise loops calling them.

Numba calls libm for ``np.log``/``np.exp``, one element at a time, and the
llvmlite wheels have no SVML. These versions use only integer/float arithmetic
and bit casts, so a loop over an array of them compiles to SIMD code (AVX2 or
AVX-512), about twice the throughput of libm in the engine's sampling loop.
Accuracy: within 1 ulp of libm for normal, finite arguments (tested against
NumPy); callers guarantee the domain (log: x > 0 normal; exp: clamped).

The algorithms and coefficients are those of fdlibm's e_log.c and e_exp.c
(Sun Microsystems, freely redistributable), as in most C libraries. Callers
must compile with ``error_model="numpy"``: Python's error model adds a
division-by-zero branch that blocks vectorisation.
"""

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def float_bits(typingctx, x):
    """The IEEE-754 bits of a float64 as int64 (a bit cast, no conversion)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@intrinsic
def bits_float(typingctx, x):
    """The float64 whose IEEE-754 bits are the int64 x (a bit cast, no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_SQRT_HALF_BITS = (
    0x3FE6A09E667F3BCD  # bits of sqrt(2)/2: the mantissa is reduced to [sqrt(.5), sqrt(2))
)
_MANTISSA = 0x000FFFFFFFFFFFFF
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
EXP_MIN = -708.0  # exp(x) for x below this is returned as exp(EXP_MIN) ~ 3e-308
EXP_MAX = 709.0  # and above this as exp(EXP_MAX) ~ 8e307


@njit(inline="always", nogil=True, error_model="numpy")
def vlog(x):
    """Natural log of a positive, normal, finite float64. Jit-compiled; not validated."""
    ix = float_bits(x) - _SQRT_HALF_BITS
    k = ix >> 52
    f = bits_float((ix & _MANTISSA) + _SQRT_HALF_BITS) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = w * (_LG2 + w * (_LG4 + w * _LG6)) + z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    hfsq = 0.5 * f * f
    dk = np.float64(k)
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)


@njit(inline="always", nogil=True, error_model="numpy")
def vexp(x):
    """exp(x) for x clamped to [EXP_MIN, EXP_MAX]. Jit-compiled; not validated."""
    x = min(max(x, EXP_MIN), EXP_MAX)
    kf = np.floor(x * _INV_LN2 + 0.5)
    hi = x - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    return bits_float(float_bits(y) + (np.int64(kf) << 52))


@njit(nogil=True, error_model="numpy")
def vlog_array(x, out):
    """out[i] = vlog(x[i]) over ndarray(float64, ndim=1) (for tests). Jit-compiled."""
    for i in range(x.shape[0]):
        out[i] = vlog(x[i])


@njit(nogil=True, error_model="numpy")
def vexp_array(x, out):
    """out[i] = vexp(x[i]) over ndarray(float64, ndim=1) (for tests). Jit-compiled."""
    for i in range(x.shape[0]):
        out[i] = vexp(x[i])
