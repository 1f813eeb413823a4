r"""A float64 exp that LLVM vectorises: Cody–Waite reduction by ln 2, a degree-13 Taylor polynomial, 2ⁿ built from
exponent bits. Used by the pair kernels of :mod:`refimpl.wasserstein._numba` (their default ``exp="polynomial"``).

Why: Numba lowers ``math.exp`` / ``np.exp`` to a call of the C library's scalar ``exp``; a loop containing a call is
never vectorised (this llvmlite has no SVML), so an N² pair kernel spends most of its time in scalar exp calls.
:func:`polynomial_exp` is straight-line arithmetic — multiplies, adds, fused multiply-adds, two selects and integer
bit operations, no call, no branch — so a loop of it compiles to SIMD code, and it rounds identically in every lane
and in the scalar remainder loop: no ``fastmath``; each operation is one IEEE-754 rounding, the fused multiply-adds
(``llvm.fma``, written explicitly) included, so the value does not depend on vector width, thread count or CPU. The
same bits are computed by :func:`polynomial_exp_reference` (pure Python, exact rational FMA), for the tests.

**Algorithm** (Cody & Waite, *Software Manual for the Elementary Functions*, 1980, ch. 6; the constants of
fdlibm's ``e_exp.c``; Muller, *Elementary Functions*, 3rd ed., §11):

1. clamp: x ← max(x, −746), x ← min(x, 710) (NaN passes through both comparisons unchanged);
2. n = round(x·log₂e): t = fma(x, log₂e, S) with the shifter S = 1.5·2⁵², so that the low bits of t's representation
   hold n (bits(t) − bits(S) = n for |n| < 2⁵¹) and t − S = n exactly;
3. r = fma(−n, ln2_lo, fma(−n, ln2_hi, x)) with ln2_hi = 0x3FE62E42FEE00000 (32 significant bits: n·ln2_hi is
   exact for |n| < 2²¹, and x − n·ln2_hi is exact by Sterbenz's lemma, so the inner fma is exact) and
   ln2_lo = ln 2 − ln2_hi rounded; |r| ≤ ln2/2 + 10⁻¹²;
4. p = Σ_{k=0}^{13} r^k/k! by Horner's rule with fused steps q_k = fma(r, q_{k+1}, c_k), p = q₀ ≈ e^r ∈
   [2^{-1/2}, 2^{1/2}];
5. e^x = p·2^{n₁}·2^{n₂} with n₁ = ⌊n/2⌋, n₂ = n − n₁, each 2^{nᵢ} built as the bits (nᵢ + 1023)·2⁵²: with
   n ∈ [−1076, 1025] both factors are normal numbers, p·2^{n₁} is exact, and the last product rounds once — to a
   subnormal, to 0 (x ≤ −746 ⇒ e^x < 2⁻¹⁰⁷⁶, below half the least subnormal) or to +inf (x ≥ 710 > ln DBL_MAX) as
   IEEE arithmetic does, with no special case.

**Error bound** (derived; :func:`error_bound` evaluates it, the tests check it against correctly rounded values).
Let u = 2⁻⁵³ and r_max = ln2/2 + 10⁻¹². First-order sources, relative to e^r (e^r ≥ e^{−r_max}):

* reduction: r carries the one rounding of the outer fma (≤ u·|r|) and the error of ln2_hi + ln2_lo ≈ ln2
  (≤ 1076·2⁻⁸⁵ < 10⁻²²); e^{r+δ} = e^r(1 + δ), so it adds |δ| ≤ u·r_max + 10⁻²²;
* truncation: Σ_{k≥14} r^k/k! ≤ r_max¹⁴/14!·(1 + r_max) ≈ 5.5·10⁻¹⁸ absolute;
* coefficients: 1/k! rounded to double (exact for k ≤ 2), ≤ u·Σ_{k≥3} r_max^k/k!;
* Horner: with q₁₃ = c₁₃ and q_k = fma(r, q_{k+1}, c_k) (one rounding per step), the running bound
  e_k = |r|·e_{k+1} + u·|q_k|, e₁₃ = 0, evaluated with the values |q_k(r)|.

Summed and divided by u·e^{−r_max}, this is a bound in units of u relative; a double y in [2ᵉ, 2ᵉ⁺¹) has
ulp(y) = 2ᵉ⁻⁵² > u·|y|, so the same number bounds the error in ulps. Maximised over r (each source at its worst r, so
the sum over-estimates): reduction 0.35 + truncation 0.07 + coefficients 0.01 + Horner 1.50 = **1.93 ulp** for every
normal result (:data:`ULP_BOUND` = 2 after rounding up; p·2ⁿ is exact when normal), and ≤ 2.43 ulp of 2⁻¹⁰⁷⁴ for a
subnormal one (the last product adds half an ulp). Measured against correctly rounded values (mpmath): ≤ 0.83 ulp
on 2·10⁴ uniform points of [−745, 709] (tests/test_polynomial_exp.py).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from refimpl.numba_cache import njit_cached

__all__ = ["polynomial_exp", "polynomial_exp_array", "polynomial_exp_reference", "error_bound", "ExpErrorBound",
           "ULP_BOUND", "TAYLOR_DEGREE"]

TAYLOR_DEGREE = 13
#: 1/k!, k = 0 … 13, rounded to double
COEFFICIENTS = tuple(1.0 / math.factorial(k) for k in range(TAYLOR_DEGREE + 1))
(_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13) = COEFFICIENTS

_LOG2E = 1.4426950408889634            # log₂e rounded
_LN2_HI = 6.93147180369123816490e-01   # 0x3FE62E42FEE00000 (fdlibm ln2HI[0])
_LN2_LO = 1.90821492927058770002e-10   # 0x3DEA39EF35793C76 (fdlibm ln2LO[0])
_SHIFTER = 6755399441055744.0          # 1.5·2⁵²
_SHIFTER_BITS = 0x4338000000000000     # its bit pattern
_X_LOW, _X_HIGH = -746.0, 710.0        # e^x rounds to 0 below, to +inf above (step 1 of the module docstring)
_BIAS = 1023

#: the derived bound, in ulps, for normal results (module docstring; :func:`error_bound` gives 1.93 before rounding up)
ULP_BOUND = 2


# ---------------------------------------------------------------------------------------------------------------------
# bit casts (one LLVM bitcast each: no memory round trip, so loops of them vectorise)
# ---------------------------------------------------------------------------------------------------------------------

@intrinsic
def _float64_bits(typingctx, x):
    """The IEEE-754 bit pattern of a float64 as an int64."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_float64(typingctx, i):
    """The float64 whose IEEE-754 bit pattern is the int64 ``i``."""
    if i != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a·b + c with one rounding (LLVM ``llvm.fma.f64``: the FMA instruction, a SIMD one in a vectorised loop; a
    C-library ``fma`` call on a CPU without FMA — the same value, slower)."""
    if not (a == types.float64 and b == types.float64 and c == types.float64):
        return None

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fn, args)
    return types.float64(types.float64, types.float64, types.float64), codegen


# ---------------------------------------------------------------------------------------------------------------------
# the function
# ---------------------------------------------------------------------------------------------------------------------

@njit_cached(inline="always")
def polynomial_exp(x):
    """e^x for a float64 ``x`` by steps 1–5 of the module docstring (≤ :data:`ULP_BOUND` ulp); inlined, branch-free."""
    x = _X_LOW if x < _X_LOW else x
    x = _X_HIGH if x > _X_HIGH else x
    t = _fma(x, _LOG2E, _SHIFTER)
    n = _float64_bits(t) - _SHIFTER_BITS
    nf = t - _SHIFTER
    r = _fma(-nf, _LN2_LO, _fma(-nf, _LN2_HI, x))
    p = _C13
    p = _fma(r, p, _C12)
    p = _fma(r, p, _C11)
    p = _fma(r, p, _C10)
    p = _fma(r, p, _C9)
    p = _fma(r, p, _C8)
    p = _fma(r, p, _C7)
    p = _fma(r, p, _C6)
    p = _fma(r, p, _C5)
    p = _fma(r, p, _C4)
    p = _fma(r, p, _C3)
    p = _fma(r, p, _C2)
    p = _fma(r, p, _C1)
    p = _fma(r, p, _C0)
    n1 = n >> 1
    n2 = n - n1
    return (p * _bits_float64((n1 + _BIAS) << 52)) * _bits_float64((n2 + _BIAS) << 52)


@njit_cached()
def _polynomial_exp_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = polynomial_exp(x[i])


def polynomial_exp_array(x) -> np.ndarray:
    """Elementwise :func:`polynomial_exp` of a float64 array (any shape; a new C-contiguous array)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != np.float64:
        raise TypeError(f"x must have dtype float64, got {x.dtype}")
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    _polynomial_exp_loop(flat, out)
    return out.reshape(x.shape)


def _fma_exact(a: float, b: float, c: float) -> float:
    """a·b + c rounded once to the nearest double: exact rational arithmetic, then ``int / int`` (correctly rounded
    in Python). Infinite or NaN operands fall back to float arithmetic (no rounding question arises)."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    return exact.numerator / exact.denominator


def polynomial_exp_reference(x: float) -> float:
    """Steps 1–5 of the module docstring in pure Python — floats for the single roundings, exact rationals for the
    fused multiply-adds, :mod:`struct` for the bit casts — so an independent route to the same bits as
    :func:`polynomial_exp` (slow: for tests)."""
    if not isinstance(x, float):
        raise TypeError(f"x must be a float, got {type(x).__name__}")
    x = _X_LOW if x < _X_LOW else x
    x = _X_HIGH if x > _X_HIGH else x
    t = _fma_exact(x, _LOG2E, _SHIFTER)
    n = struct.unpack("<q", struct.pack("<d", t))[0] - _SHIFTER_BITS
    nf = t - _SHIFTER
    r = _fma_exact(-nf, _LN2_LO, _fma_exact(-nf, _LN2_HI, x))
    p = _C13
    for c in COEFFICIENTS[-2::-1]:
        p = _fma_exact(r, p, c)
    n1 = n >> 1
    n2 = n - n1

    def scale(e):  # int64 arithmetic wraps modulo 2⁶⁴ (it matters only for NaN, whose n is arbitrary)
        return struct.unpack("<d", struct.pack("<Q", ((e + _BIAS) << 52) & 0xFFFFFFFFFFFFFFFF))[0]
    return (p * scale(n1)) * scale(n2)


# ---------------------------------------------------------------------------------------------------------------------
# the error bound, evaluated
# ---------------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExpErrorBound:
    """The first-order error bound of the module docstring, each source in units of u = 2⁻⁵³ relative to e^r."""

    r_max: float
    reduction_u: float
    truncation_u: float
    coefficients_u: float
    horner_u: float

    @property
    def total_u(self) -> float:
        return self.reduction_u + self.truncation_u + self.coefficients_u + self.horner_u

    @property
    def ulps(self) -> float:
        """Bound on |computed − e^x| in ulps of e^x (normal results): ulp(y) > u·|y|."""
        return self.total_u

    def __repr__(self) -> str:
        return (f"ExpErrorBound(r_max={self.r_max:.6f}: reduction {self.reduction_u:.3f}u + truncation "
                f"{self.truncation_u:.3f}u + coefficients {self.coefficients_u:.3f}u + Horner {self.horner_u:.3f}u "
                f"= {self.total_u:.3f}u ⇒ ≤ {self.ulps:.2f} ulp)")


def error_bound(grid: int = 2001) -> ExpErrorBound:
    """Evaluate the derivation of the module docstring: each source's bound relative to e^r, maximised over ``grid``
    points r ∈ [−r_max, r_max] (the Horner magnitudes |q_k(r)| are the values at each r; the other sources are
    largest at |r| = r_max)."""
    if not isinstance(grid, int) or isinstance(grid, bool):
        raise TypeError(f"grid must be an int, got {type(grid).__name__}")
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    u = 2.0 ** -53
    r_max = math.log(2.0) / 2 + 1e-12
    c = [1.0 / math.factorial(k) for k in range(TAYLOR_DEGREE + 1)]
    reduction = truncation = coefficients = horner = 0.0
    for r in np.linspace(-r_max, r_max, grid):
        r = float(r)
        er = math.exp(r)
        a = abs(r)
        reduction = max(reduction, (u * a + 1e-22) / u)  # e^{r+δ} = e^r (1 + δ)
        tail = a ** (TAYLOR_DEGREE + 1) / math.factorial(TAYLOR_DEGREE + 1) * (1.0 + a)
        truncation = max(truncation, tail / er / u)
        coefficients = max(coefficients, sum(a ** k * c[k] for k in range(3, TAYLOR_DEGREE + 1)) / er)
        q, e = c[TAYLOR_DEGREE], 0.0  # q_13 = c_13; q_k = fma(r, q_{k+1}, c_k); e_k its running error bound
        for k in range(TAYLOR_DEGREE - 1, -1, -1):
            q = c[k] + r * q
            e = a * e + u * abs(q)
        horner = max(horner, e / er / u)
    return ExpErrorBound(r_max, reduction, truncation, coefficients, horner)
