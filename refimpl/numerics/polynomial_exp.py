r"""A float64 exp that LLVM vectorises: Cody–Waite reduction by ln 2, a degree-11 minimax polynomial, the scaling by 2ⁿ
correctly rounded. Used by the pair kernels of :mod:`refimpl.wasserstein._numba` (their default
``exp="polynomial"``) and, through :mod:`refimpl.numerics.polynomial_tanh`, by the tanh kernels of :mod:`refimpl.ode._numba`.

Why: Numba lowers ``math.exp`` / ``np.exp`` to a call of the C library's scalar ``exp``; a loop containing a call is
never vectorised (this llvmlite has no SVML), so an N² pair kernel spends most of its time in scalar exp calls.
:func:`polynomial_exp` is straight-line arithmetic — multiplies, adds, fused multiply-adds, two selects and integer
bit operations, no call, no branch — so a loop of it compiles to SIMD code, and it rounds identically in every lane
and in the scalar remainder loop: no ``fastmath``; each operation is one IEEE-754 rounding, the fused multiply-adds
(``llvm.fma``, written explicitly) included, so the value does not depend on vector width, thread count or CPU. The
same bits are computed by :func:`polynomial_exp_reference` (pure Python, exact rational FMA), for the tests.

**Two choices made per compilation target, neither changing a bit** (:func:`target_has_avx512`: the features Numba
compiles for, ``+avx512f``):

* step 5's scaling p·2ⁿ is emitted as ``llvm.ldexp`` — one ``vscalefpd`` per vector on AVX-512 — instead of the
  two exponent-bit factors (seven integer operations and two multiplies). Both are the correctly rounded p·2ⁿ (step 5:
  p·2^{n₁} is exact, the second product rounds once; ``ldexp`` rounds the exact p·2ⁿ once), so the bits agree; on
  targets without AVX-512, LLVM lowers a vector ``ldexp`` to scalar C-library calls, so there the bit factors stay;
* :func:`prefer_wide_vectors`, called inside a loop's function, marks that function
  ``"prefer-vector-width"="512"``: LLVM's tuning for AVX-512 Xeons otherwise vectorises with 256-bit registers (a
  per-function attribute, so only the functions that ask change). The lanes compute the same operations at any width.

**Algorithm** (Cody & Waite, *Software Manual for the Elementary Functions*, 1980, ch. 6; the constants of
fdlibm's ``e_exp.c``; Muller, *Elementary Functions*, 3rd ed., §11):

1. clamp: x ← max(x, −746), x ← min(x, 710) (NaN passes through both comparisons unchanged);
2. n = round(x·log₂e): t = fma(x, log₂e, S) with the shifter S = 1.5·2⁵², so that the low bits of t's representation
   hold n (bits(t) − bits(S) = n for |n| < 2⁵¹) and t − S = n exactly;
3. r = fma(−n, ln2_lo, fma(−n, ln2_hi, x)) with ln2_hi = 0x3FE62E42FEE00000 (32 significant bits: n·ln2_hi is
   exact for |n| < 2²¹, and x − n·ln2_hi is exact by Sterbenz's lemma, so the inner fma is exact) and
   ln2_lo = ln 2 − ln2_hi rounded; |r| ≤ ln2/2 + 10⁻¹²;
4. p = Σ_{k=0}^{11} c_k r^k by Horner's rule with fused steps q_k = fma(r, q_{k+1}, c_k), p = q₀ ≈ e^r ∈
   [2^{-1/2}, 2^{1/2}]; c₀ = c₁ = 1 exactly, c₂ … c₁₁ the doubles of a minimax fit of the relative error on
   |r| ≤ r_max (:data:`COEFFICIENTS`; computed, and the fit explained, in :mod:`refimpl.numerics.exp_minimax`).
   Two fewer fused steps than the degree-13 Taylor polynomial (1/k!) that reaches the same accuracy;
5. e^x = p·2^{n₁}·2^{n₂} with n₁ = ⌊n/2⌋, n₂ = n − n₁, each 2^{nᵢ} built as the bits (nᵢ + 1023)·2⁵²: with
   n ∈ [−1076, 1025] both factors are normal numbers, p·2^{n₁} is exact, and the last product rounds once — to a
   subnormal, to 0 (x ≤ −746 ⇒ e^x < 2⁻¹⁰⁷⁶, below half the least subnormal) or to +inf (x ≥ 710 > ln DBL_MAX) as
   IEEE arithmetic does, with no special case.

**Error bound** (derived; :func:`error_bound` evaluates it, the tests check it against correctly rounded values).
Let u = 2⁻⁵³ and r_max = ln2/2 + 10⁻¹². First-order sources, relative to e^r (e^r ≥ e^{−r_max}):

* reduction: r carries the one rounding of the outer fma (≤ u·|r|) and the error of ln2_hi + ln2_lo ≈ ln2
  (≤ 1076·2⁻⁸⁵ < 10⁻²²); e^{r+δ} = e^r(1 + δ), so it adds |δ| ≤ u·r_max + 10⁻²²;
* approximation: |p(r) − e^r|/e^r for the polynomial with the double coefficients, evaluated exactly —
  0.0354·u at its maximum (minimax error of the fit, coefficient rounding included; evaluated by :func:`error_bound`
  with 40-digit decimal arithmetic on the grid, and by the tests with mpmath on a denser one);
* Horner: with q₁₁ = c₁₁ and q_k = fma(r, q_{k+1}, c_k) (one rounding per step), the running bound
  e_k = |r|·e_{k+1} + u·|q_k|, e₁₁ = 0, evaluated with the values |q_k(r)|.

Summed and divided by u·e^{−r_max}, this is a bound in units of u relative; a double y in [2ᵉ, 2ᵉ⁺¹) has
ulp(y) = 2ᵉ⁻⁵² > u·|y|, so the same number bounds the error in ulps. Maximised over r (each source at its worst r, so
the sum over-estimates): reduction 0.35 + approximation 0.04 + Horner 1.50 = **1.88 ulp** for every
normal result (:data:`ULP_BOUND` = 2 after rounding up; p·2ⁿ is exact when normal), and ≤ 2.43 ulp of 2⁻¹⁰⁷⁴ for a
subnormal one (the last product adds half an ulp). Measured against correctly rounded values (mpmath): ≤ 0.83 ulp
on 10⁴ points over [−746, 710] and the Gaussian-kernel range (tests/test_polynomial_exp.py).
"""
from __future__ import annotations

import decimal
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
           "ULP_BOUND", "DEGREE", "COEFFICIENTS", "prefer_wide_vectors", "target_has_avx512"]

DEGREE = 11
#: c₀ … c₁₁ of step 4: the minimax fit of refimpl.numerics.exp_minimax (``python -m
#: refimpl.numerics.exp_minimax`` prints them), as exact hex floats
COEFFICIENTS = tuple(float.fromhex(h) for h in (
    "0x1.0000000000000p+0", "0x1.0000000000000p+0", "0x1.000000000000ap-1", "0x1.5555555555503p-3",
    "0x1.5555555550606p-5", "0x1.1111111124c7ap-7", "0x1.6c16c184b57d4p-10", "0x1.a01a013da4019p-13",
    "0x1.a019988c15666p-16", "0x1.71def320b7af5p-19", "0x1.28aedc4571d2dp-22", "0x1.add9e0f0cf250p-26"))
(_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11) = COEFFICIENTS

_LOG2E = 1.4426950408889634            # log₂e rounded
_LN2_HI = 6.93147180369123816490e-01   # 0x3FE62E42FEE00000 (fdlibm ln2HI[0])
_LN2_LO = 1.90821492927058770002e-10   # 0x3DEA39EF35793C76 (fdlibm ln2LO[0])
_SHIFTER = 6755399441055744.0          # 1.5·2⁵²
_SHIFTER_BITS = 0x4338000000000000     # its bit pattern
_X_LOW, _X_HIGH = -746.0, 710.0        # e^x rounds to 0 below, to +inf above (step 1 of the module docstring)
_BIAS = 1023

#: the derived bound, in ulps, for normal results (module docstring; :func:`error_bound` gives 1.88 before rounding up)
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


def target_has_avx512(context=None) -> bool:
    """Whether Numba compiles for a CPU with AVX-512F (the target machine's features: the host's, or
    ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` when set). ``context``: a Numba target context (default: the CPU
    target's)."""
    if context is None:
        from numba.core.registry import cpu_target
        context = cpu_target.target_context
    features = getattr(context.codegen(), "_tm_features", "") or ""
    return "+avx512f" in features.split(",")


@intrinsic
def prefer_wide_vectors(typingctx):
    """Mark the function being compiled ``"prefer-vector-width"="512"`` when the target has AVX-512 (module
    docstring); a no-op elsewhere. Call it once inside the loop nest whose vector width should follow (for a ``prange``
    loop: inside its body, which Numba compiles as a function of its own)."""
    def codegen(context, builder, signature, args):
        if target_has_avx512(context):
            attribute = '"prefer-vector-width"="512"'
            # llvmlite's FunctionAttributes accepts only enum attributes by name; a string attribute is written into
            # the function header verbatim, which is where LLVM's parser reads it
            set.add(builder.function.attributes, attribute)
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def _times_power_of_two(typingctx, p, n):
    """p·2ⁿ, correctly rounded, for p ∈ [2^{-1/2}, 2^{1/2}] and n ∈ [−1076, 1025] (step 5): ``llvm.ldexp`` on AVX-512
    targets (one ``vscalefpd``), else (p·2^{n₁})·2^{n₂} with n₁ = ⌊n/2⌋, n₂ = n − n₁ and each 2^{nᵢ} built from
    exponent bits (module docstring: the same value)."""
    if not (p == types.float64 and n == types.int64):
        return None

    def codegen(context, builder, signature, args):
        x, e = args
        f64, i64 = ir.DoubleType(), ir.IntType(64)
        if target_has_avx512(context):
            fnty = ir.FunctionType(f64, [f64, ir.IntType(32)])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.ldexp.f64.i32")
            return builder.call(fn, [x, builder.trunc(e, ir.IntType(32))])
        e1 = builder.ashr(e, ir.Constant(i64, 1))
        e2 = builder.sub(e, e1)

        def power(k):
            return builder.bitcast(builder.shl(builder.add(k, ir.Constant(i64, _BIAS)), ir.Constant(i64, 52)), f64)
        return builder.fmul(builder.fmul(x, power(e1)), power(e2))
    return types.float64(types.float64, types.int64), codegen


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
    p = _C11
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
    return _times_power_of_two(p, n)


@njit_cached()
def _polynomial_exp_loop(x, out):
    prefer_wide_vectors()
    for i in range(x.shape[0]):
        out[i] = polynomial_exp(x[i])


def elementwise(loop, x) -> np.ndarray:
    """``loop(flat, out)`` (a compiled elementwise loop) applied to the float64 array ``x`` of any shape; a new
    C-contiguous array. ``TypeError`` naming ``x`` for anything but a float64 ndarray."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != np.float64:
        raise TypeError(f"x must have dtype float64, got {x.dtype}")
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    loop(flat, out)
    return out.reshape(x.shape)


def polynomial_exp_array(x) -> np.ndarray:
    """Elementwise :func:`polynomial_exp` of a float64 array (any shape; a new C-contiguous array)."""
    return elementwise(_polynomial_exp_loop, x)


def _fma_exact(a: float, b: float, c: float) -> float:
    """a·b + c rounded once to the nearest double: exact rational arithmetic, then ``int / int`` (correctly rounded
    in Python). Infinite or NaN operands fall back to float arithmetic (no rounding question arises)."""
    if not (math.isfinite(a) and math.isfinite(b) and math.isfinite(c)):
        return a * b + c
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    return exact.numerator / exact.denominator


def horner_exact(r: float, coefficients) -> float:
    """Σ_k c_k r^k by Horner's rule from the highest coefficient, each step one :func:`_fma_exact` — the rounding of
    the compiled, written-out Horner chains (p ← fma(r, p, c_k)), in pure Python."""
    p = coefficients[-1]
    for c in coefficients[-2::-1]:
        p = _fma_exact(r, p, c)
    return p


def check_grid(grid) -> int:
    """The number of evaluation points of an ``error_bound``: an int ≥ 2 (``TypeError``/``ValueError`` naming it)."""
    if not isinstance(grid, int) or isinstance(grid, bool):
        raise TypeError(f"grid must be an int, got {type(grid).__name__}")
    if grid < 2:
        raise ValueError(f"grid must be >= 2, got {grid}")
    return grid


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
    p = horner_exact(r, COEFFICIENTS)
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
    approximation_u: float
    horner_u: float

    @property
    def total_u(self) -> float:
        return self.reduction_u + self.approximation_u + self.horner_u

    @property
    def ulps(self) -> float:
        """Bound on |computed − e^x| in ulps of e^x (normal results): ulp(y) > u·|y|."""
        return self.total_u

    def __repr__(self) -> str:
        return (f"ExpErrorBound(r_max={self.r_max:.6f}: reduction {self.reduction_u:.3f}u + approximation "
                f"{self.approximation_u:.3f}u + Horner {self.horner_u:.3f}u = {self.total_u:.3f}u "
                f"⇒ ≤ {self.ulps:.2f} ulp)")


def error_bound(grid: int = 2001) -> ExpErrorBound:
    """Evaluate the derivation of the module docstring: each source's bound relative to e^r, maximised over ``grid``
    points r ∈ [−r_max, r_max] (the approximation error |p(r) − e^r|/e^r with 40-digit :mod:`decimal` arithmetic —
    exact products of the doubles r and c_k to that precision, a correctly rounded e^r; the Horner magnitudes |q_k(r)|
    are the values at each r; the reduction source is largest at |r| = r_max)."""
    check_grid(grid)
    u = 2.0 ** -53
    r_max = math.log(2.0) / 2 + 1e-12
    c = COEFFICIENTS
    reduction = approximation = horner = 0.0
    ctx = decimal.Context(prec=40)
    cd = [decimal.Decimal(ck) for ck in c]
    for r in np.linspace(-r_max, r_max, grid):
        r = float(r)
        er = math.exp(r)
        a = abs(r)
        reduction = max(reduction, (u * a + 1e-22) / u)  # e^{r+δ} = e^r (1 + δ)
        rd, pd = decimal.Decimal(r), decimal.Decimal(0)
        for ck in reversed(cd):
            pd = ctx.add(ctx.multiply(pd, rd), ck)
        exact = ctx.exp(rd)
        approximation = max(approximation, float(abs(ctx.divide(pd, exact) - 1)) / u)
        q, e = c[DEGREE], 0.0  # q_11 = c_11; q_k = fma(r, q_{k+1}, c_k); e_k its running error bound
        for k in range(DEGREE - 1, -1, -1):
            q = c[k] + r * q
            e = a * e + u * abs(q)
        horner = max(horner, e / er / u)
    return ExpErrorBound(r_max, reduction, approximation, horner)
