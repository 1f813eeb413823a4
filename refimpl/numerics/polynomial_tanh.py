r"""tanh and sech² for float64 that LLVM vectorises, built on :func:`~refimpl.numerics.polynomial_exp.polynomial_exp`:
no call, no branch (both routes below are computed and one is selected), so a loop of them compiles to SIMD code and
rounds identically in every lane. Used by the tanh field's compiled point functions (:mod:`refimpl.ode._numba`).
Derivation: docs/theory/discrete-adjoint.md §13.

**tanh** (a = |z|, r = −2a, exact; the sign restored by ``copysign`` at the end, so tanh(−0) = −0):

* small route, a < c = ½: m = e^r − 1 by its Taylor series m = r·q(r), q(r) = Σ_{k=0}^{K−1} r^k/(k+1)!, K = 19 terms
  by Horner's rule with fused steps; then tanh a = −m/(2 + m). No cancellation: for r ∈ (−1, 0] the series
  alternates with terms falling by at least a factor 2 after the first, and −m, 2 + m are far from 0.
* large route, a ≥ c: w = e^r by the polynomial exp, tanh a = (1 − w)/(1 + w); w ≤ e^{−1}, so 1 − w ≥ 0.63 keeps
  the relative error of w (≤ 2 ulp) from growing by more than w/(1 − w) ≤ 0.59.

The textbook (1 − w)/(1 + w) alone loses all relative accuracy as z → 0 (1 − w cancels); 1 − tanh², which the stored
stage slope would offer for sech², cancels where tanh saturates. Neither is used.

**sech²** = 4w/(1 + w)², w = e^{−2a} (the formula of :func:`refimpl.ode.fields.neural.sech2` and of the tape's tanh
VJP, with the polynomial exp in place of the C library's): every operation has operands of one sign, so the
relative errors add without amplification.

**Error bounds** (derived; :func:`error_bound` evaluates them; u = 2⁻⁵³; ε_w ≤ 1.89u the exp's bound, first order):

* tanh, small route: with the Horner running bound e_k = |r|e_{k+1} + u|q_k| + u|c_k| (c_k = 1/(k+1)! rounded,
  exact for k ≤ 1), e_{K−1} = u|c_{K−1}|, the truncation |r|^{K+1}/(K+1)!·(1 + |r|) and the product r·q (one
  rounding): δm ≤ (e_0 + truncation/|r|)/|q| + u. t = −m/(2 + m) has d ln t / d ln m = 2/(2 + m) ≤ 1.46, and the sum
  and the division round once each: δt ≤ 2/(2 + m)·δm + 2u; evaluated, 4.0u as a → 0 rising to 6.70u at a = ½
  (m = e^{−1} − 1, 2/(2 + m) = 1.46, and the Horner bound counts every step's rounding at its worst).
* tanh, large route: δt ≤ ε_w·(w/(1 − w) + w/(1 + w)) + 3u = ε_w·2w/(1 − w²) + 3u ≤ 4.60u at w = e^{−1}.
* sech²: 1 + w, its square, the division: δs ≤ ε_w·(1 + 2w/(1 + w)) + 4u ≤ 2ε_w + 4u = 7.76u (w → 1).

A double y has ulp(y) > u·|y|, so these bound the error in ulps: :data:`TANH_ULP_BOUND` = 7 (evaluated 6.70, the
small route just below a = ½) and :data:`SECH2_ULP_BOUND` = 8 (evaluated 7.76), for normal results. tanh returns z
itself for |z| < 2⁻⁵⁴ (q rounds to 1, m = r, 2 + m rounds to 2) and ±1 where w < u/2. sech² is subnormal for
a > 354.2 (w subnormal): there 1 + w = 1 and 4w is exact, so its error is 4 times the exp's, ≤ 4·2.43 < 10 units
of 2⁻¹⁰⁷⁴. Checked against correctly rounded values (mpmath) in tests/test_polynomial_tanh.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from refimpl.numba_cache import njit_cached
from refimpl.numerics.polynomial_exp import _fma, check_grid, elementwise, error_bound as exp_error_bound
from refimpl.numerics.polynomial_exp import horner_exact, polynomial_exp
from refimpl.numerics.polynomial_exp import polynomial_exp_reference

__all__ = ["polynomial_tanh", "polynomial_sech2", "polynomial_tanh_array", "polynomial_sech2_array",
           "polynomial_tanh_reference", "polynomial_sech2_reference", "error_bound", "TanhErrorBound",
           "TANH_ULP_BOUND", "SECH2_ULP_BOUND", "SMALL_ROUTE_BELOW", "EXPM1_TERMS", "divide"]

#: a = |z| below this takes the expm1 route (module docstring)
SMALL_ROUTE_BELOW = 0.5
#: terms of the expm1 series r·Σ_{k<K} r^k/(k+1)! (truncation ≤ 0.012u relative for |r| ≤ 1)
EXPM1_TERMS = 19
#: 1/(k+1)!, k = 0 … K−1, rounded to double
EXPM1_COEFFICIENTS = tuple(1.0 / math.factorial(k + 1) for k in range(EXPM1_TERMS))
(_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7, _E8, _E9, _E10, _E11, _E12, _E13, _E14, _E15, _E16, _E17,
 _E18) = EXPM1_COEFFICIENTS

#: the derived bounds in ulps for normal results (module docstring; :func:`error_bound` before rounding up)
TANH_ULP_BOUND = 7
SECH2_ULP_BOUND = 8


@intrinsic
def divide(typingctx, a, b):
    """a / b for float64 as the one IEEE division (LLVM ``fdiv``): Numba's ``/`` under its default Python error model
    tests for a zero divisor and raises, and that branch stops a loop from vectorising. Here b = 0 gives ±inf or NaN
    as IEEE arithmetic does (the callers' divisors are ≥ 1)."""
    if not (a == types.float64 and b == types.float64):
        return None

    def codegen(context, builder, signature, args):
        return builder.fdiv(args[0], args[1])
    return types.float64(types.float64, types.float64), codegen


@njit_cached(inline="always")
def polynomial_tanh(z):
    """tanh z for a float64 ``z`` by the two routes of the module docstring (≤ :data:`TANH_ULP_BOUND` ulp);
    inlined, branch-free."""
    a = abs(z)
    r = -2.0 * a
    q = _E18
    q = _fma(r, q, _E17)
    q = _fma(r, q, _E16)
    q = _fma(r, q, _E15)
    q = _fma(r, q, _E14)
    q = _fma(r, q, _E13)
    q = _fma(r, q, _E12)
    q = _fma(r, q, _E11)
    q = _fma(r, q, _E10)
    q = _fma(r, q, _E9)
    q = _fma(r, q, _E8)
    q = _fma(r, q, _E7)
    q = _fma(r, q, _E6)
    q = _fma(r, q, _E5)
    q = _fma(r, q, _E4)
    q = _fma(r, q, _E3)
    q = _fma(r, q, _E2)
    q = _fma(r, q, _E1)
    q = _fma(r, q, _E0)
    m = r * q                         # e^r − 1, small route
    w = polynomial_exp(r)             # e^r, large route
    small = a < SMALL_ROUTE_BELOW     # False for NaN: the large route passes NaN through
    num = -m if small else 1.0 - w
    den = 2.0 + m if small else 1.0 + w
    return math.copysign(divide(num, den), z)


@njit_cached(inline="always")
def polynomial_sech2(z):
    """sech² z = 4w/(1 + w)², w = e^{−2|z|} (≤ :data:`SECH2_ULP_BOUND` ulp); inlined, branch-free."""
    w = polynomial_exp(-2.0 * abs(z))
    q = 1.0 + w
    return divide(4.0 * w, q * q)


@njit_cached()
def _tanh_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = polynomial_tanh(x[i])


@njit_cached()
def _sech2_loop(x, out):
    for i in range(x.shape[0]):
        out[i] = polynomial_sech2(x[i])


def polynomial_tanh_array(x) -> np.ndarray:
    """Elementwise :func:`polynomial_tanh` of a float64 array (any shape; a new C-contiguous array)."""
    return elementwise(_tanh_loop, x)


def polynomial_sech2_array(x) -> np.ndarray:
    """Elementwise :func:`polynomial_sech2` of a float64 array (any shape; a new C-contiguous array)."""
    return elementwise(_sech2_loop, x)


def polynomial_tanh_reference(z: float) -> float:
    """:func:`polynomial_tanh` in pure Python (exact-rational fused multiply-adds, the exp by
    :func:`~refimpl.numerics.polynomial_exp.polynomial_exp_reference`): an independent route to the same bits (slow;
    for tests)."""
    if not isinstance(z, float):
        raise TypeError(f"z must be a float, got {type(z).__name__}")
    a = abs(z)
    r = -2.0 * a
    m = r * horner_exact(r, EXPM1_COEFFICIENTS)
    w = polynomial_exp_reference(r)
    if a < SMALL_ROUTE_BELOW:
        num, den = -m, 2.0 + m
    else:
        num, den = 1.0 - w, 1.0 + w
    return math.copysign(num / den, z)


def polynomial_sech2_reference(z: float) -> float:
    """:func:`polynomial_sech2` in pure Python (the exp by ``polynomial_exp_reference``); for tests."""
    if not isinstance(z, float):
        raise TypeError(f"z must be a float, got {type(z).__name__}")
    w = polynomial_exp_reference(-2.0 * abs(z))
    q = 1.0 + w
    return 4.0 * w / (q * q)


# ---------------------------------------------------------------------------------------------------------------------
# the error bounds, evaluated


@dataclass(frozen=True)
class TanhErrorBound:
    """The first-order bounds of the module docstring, in units of u = 2⁻⁵³ relative (hence ulps for normal
    results): tanh's small and large route (each maximised over its range of a) and sech²."""

    exp_u: float
    tanh_small_u: float
    tanh_large_u: float
    sech2_u: float

    @property
    def tanh_u(self) -> float:
        return max(self.tanh_small_u, self.tanh_large_u)

    def __repr__(self) -> str:
        return (f"TanhErrorBound(exp {self.exp_u:.3f}u; tanh small route {self.tanh_small_u:.3f}u, large route "
                f"{self.tanh_large_u:.3f}u ⇒ ≤ {self.tanh_u:.2f} ulp; sech² ≤ {self.sech2_u:.2f} ulp)")


def error_bound(grid: int = 2001) -> TanhErrorBound:
    """Evaluate the bounds of the module docstring on ``grid`` points of each route's range of a = |z|."""
    check_grid(grid)
    u = 2.0 ** -53
    eps_w = exp_error_bound().total_u * u
    c = [1.0 / math.factorial(k + 1) for k in range(EXPM1_TERMS)]
    small = 0.0
    for a in np.linspace(SMALL_ROUTE_BELOW / grid, SMALL_ROUTE_BELOW, grid):
        r = -2.0 * float(a)
        q, e = c[-1], u * c[-1]
        for k in range(EXPM1_TERMS - 2, -1, -1):
            q = c[k] + r * q
            e = abs(r) * e + u * abs(q) + (u * c[k] if k >= 2 else 0.0)
        truncation = abs(r) ** (EXPM1_TERMS + 1) / math.factorial(EXPM1_TERMS + 1) * (1.0 + abs(r))
        delta_m = (e + truncation / abs(r)) / abs(q) + u
        m = math.expm1(r)
        small = max(small, (2.0 / (2.0 + m) * delta_m + 2.0 * u) / u)
    large = sech2 = 0.0
    for a in np.linspace(SMALL_ROUTE_BELOW, 40.0, grid):
        w = math.exp(-2.0 * float(a))
        large = max(large, (eps_w * 2.0 * w / (1.0 - w * w) + 3.0 * u) / u)
    for a in np.linspace(0.0, 40.0, grid):
        w = math.exp(-2.0 * float(a))
        sech2 = max(sech2, (eps_w * (1.0 + 2.0 * w / (1.0 + w)) + 4.0 * u) / u)
    return TanhErrorBound(eps_w / u, small, large, sech2)
