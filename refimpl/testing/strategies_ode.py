r"""Hypothesis strategies for ODE-scheme property tests: explicit tableaux of a given order, consistent zero-stable
explicit multistep methods, vector fields, and whole discrete problems.

>>> from hypothesis import given
>>> from refimpl.testing.strategies_ode import explicit_tableaux, ode_problems
>>> @given(ode_problems())
... def test_my_adjoint(problem): ...

Constructions (every drawn object also passes the library's own validation on construction):

* :func:`explicit_tableaux`: strictly lower-triangular A with entries in [−1, 1] (:math:`|a_{21}| \ge 0.2`), c = A·1;
  b drawn freely except for the entries that the order conditions then fix: order 1 fixes :math:`b_1` by
  :math:`\sum b = 1`; order 2 fixes :math:`(b_1, b_2)` by :math:`\sum b = 1`, :math:`\sum bc = 1/2` (solvable as
  :math:`c_1 = 0`, :math:`c_2 = a_{21} \ne 0`); order 3 (three stages) uses the two-parameter family of Kutta:
  b from the Vandermonde system :math:`\sum b c^q = 1/(q+1)`, q = 0, 1, 2, then :math:`a_{32} = 1/(6 b_3 c_2)`,
  :math:`a_{31} = c_3 - a_{32}`. Draws whose fixed entries exceed 10 in size are rejected. ``exact=True`` draws rational
  entries (small denominators) so the tableau can run in exact mode.
* :func:`multistep_methods`: :math:`\rho(\zeta) = (\zeta-1)\prod(\zeta - r_i)` with parasitic roots drawn strictly
  inside the disc :math:`|r| \le 0.9` (real, or conjugate pairs); with ``weakly_stable=True`` one parasitic root may be
  :math:`-1` (as in leapfrog). :math:`\beta` drawn in [−2, 2] except for ``min_order`` entries fixed by the linear
  order conditions :math:`C_1 = \dots = C_{\rm min\_order} = 0`.
* :func:`step_grids`: non-uniform grids :math:`0 = t_0 < \dots < t_N = T` whose steps are T times normalised positive
  weights drawn in [1, ``ratio``] (so the largest step is at most ``ratio`` times the smallest, before rounding); the
  end point is set to T exactly.
* :func:`ode_problems`: every layout of :data:`refimpl.ode.samples.LAYOUTS` ("stage", "step", "constant") by default;
  ``nonuniform=True`` gives the Runge–Kutta problems a :func:`step_grids` grid (multistep problems keep the uniform one:
  a non-uniform grid is for Runge–Kutta methods only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.ode.fields import (LinearField, PolynomialField, QuadraticLoss, TanhField, TwoLayerTanhField,
                                VectorField)
from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.samples import LAYOUTS, parameter_samples
from refimpl.ode.schemes import MULTISTEP_METHODS, TABLEAUX, starter as resolve_starter
from refimpl.ode.tableau import ButcherTableau

__all__ = ["explicit_tableaux", "multistep_methods", "vector_fields", "step_grids", "ODEProblem", "ode_problems"]

_MAX_FIXED = 10.0


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _fractions(lo, hi, max_den=8):
    return st.builds(Fraction, st.integers(int(lo * max_den), int(hi * max_den)), st.just(max_den)).map(
        lambda f: f.limit_denominator(max_den))


@st.composite
def explicit_tableaux(draw, stages=(2, 3), min_order: int = 1, exact: bool = False):
    """Random explicit Runge–Kutta tableaux with ``stages`` stages (an int or a tuple to choose from) and order
    ≥ ``min_order`` (1, 2, or 3 for three stages or more with the Kutta family)."""
    choices = tuple(stages) if isinstance(stages, (tuple, list)) else (int(stages),)
    if min_order not in (1, 2, 3):
        raise ValueError(f"min_order must be 1, 2 or 3, got {min_order}")
    if min(choices) < min_order:
        raise ValueError(f"stages: {min(choices)} stages cannot reach order {min_order}")
    s = draw(st.sampled_from(choices))
    num = _fractions(-1, 1) if exact else _floats(-1.0, 1.0)
    one = Fraction(1) if exact else 1.0
    A = [[one * 0] * s for _ in range(s)]
    for i in range(1, s):
        for j in range(i):
            A[i][j] = draw(num)
    if s >= 2:
        assume(abs(A[1][0]) >= 0.2)
    if min_order == 3 and s >= 3:
        c2, c3 = A[1][0], A[2][0] + A[2][1]
        assume(abs(c3) >= 0.2 and abs(c2 - c3) >= 0.2)
        rest = [draw(num) for _ in range(s - 3)]
        # b_4.. free (with their A rows); then b_1..b_3 from sum b c^q = 1/(q+1) - sum_{i>3} b_i c_i^q
        c_rest = [sum(A[i], one * 0) for i in range(3, s)]
        rhs = [one / (q + 1) - sum((bi * ci ** q for bi, ci in zip(rest, c_rest)), one * 0) for q in range(3)]
        # Vandermonde with nodes 0, c2, c3 solved by hand (Cramer)
        b3 = (rhs[2] - c2 * rhs[1]) / (c3 * (c3 - c2))
        b2 = (rhs[1] - b3 * c3) / c2
        b1 = rhs[0] - b2 - b3
        assume(abs(b3) >= 0.05)
        # a32 from sum_i b_i (A c)_i = 1/6, with (Ac)_1 = (Ac)_2 = 0, (Ac)_3 = a32 c2 and (Ac)_i, i > 3, fixed
        c = [sum(row, one * 0) for row in A]
        Ac_rest = [sum((A[i][j] * c[j] for j in range(s)), one * 0) for i in range(3, s)]
        A[2][1] = (one / 6 - sum((bi * aci for bi, aci in zip(rest, Ac_rest)), one * 0)) / (b3 * c2)
        A[2][0] = c3 - A[2][1]
        b = [b1, b2, b3] + rest
        assume(all(abs(float(v)) <= _MAX_FIXED for v in b + A[2][:2]))
    else:
        b = [one * 0] + [draw(num) for _ in range(s - 1)]
        c = [sum(row, one * 0) for row in A]
        if min_order == 1:
            b[0] = one - sum(b[1:], one * 0)
        else:
            tail = b[2:]
            b2 = (one / 2 - sum((bi * ci for bi, ci in zip(tail, c[2:])), one * 0)) / c[1]
            b[1] = b2
            b[0] = one - b2 - sum(tail, one * 0)
        assume(all(abs(float(v)) <= _MAX_FIXED for v in b))
    tab = ButcherTableau(f"random_{s}stage", tuple(map(tuple, A)), tuple(b))
    assume(tab.order >= min_order)  # float rounding of a fixed entry can only lose a condition at ~1e-16 level
    return tab


@st.composite
def multistep_methods(draw, steps=(2, 3), min_order: int = 1, weakly_stable: bool = False):
    """Random consistent, zero-stable explicit k-step methods (float coefficients) of order ≥ ``min_order``."""
    k = draw(st.sampled_from(steps)) if isinstance(steps, (tuple, list)) else int(steps)
    if not 1 <= min_order <= k:
        raise ValueError(f"min_order must be in 1..{k} for a {k}-step method, got {min_order}")
    roots = []
    if weakly_stable and k >= 2 and draw(st.booleans()):
        roots.append(-1.0)
    while len(roots) < k - 1:
        if len(roots) <= k - 3 and draw(st.booleans()):
            rad, ang = draw(_floats(0.0, 0.9)), draw(_floats(0.1, math.pi - 0.1))
            roots += [rad * complex(math.cos(ang), math.sin(ang)), rad * complex(math.cos(ang), -math.sin(ang))]
        else:
            roots.append(draw(_floats(-0.9, 0.9)))
    rho = np.real(np.poly([1.0] + roots))[::-1]  # alpha_0..alpha_k, alpha_k = 1
    alpha = [float(a) for a in rho]
    # order conditions C_q = 0, q = 1..min_order: sum_j beta_j j^{q-1}/(q-1)! = sum_j alpha_j j^q/q!
    M = np.array([[j ** (q - 1) / math.factorial(q - 1) for j in range(k)] for q in range(1, min_order + 1)])
    rhs = np.array([sum(alpha[j] * j ** q / math.factorial(q) for j in range(k + 1)) for q in range(1, min_order + 1)])
    beta = np.array([draw(_floats(-2.0, 2.0)) for _ in range(k)])
    fixed = list(range(k - min_order, k))  # solve for the last min_order betas
    free = [j for j in range(k) if j not in fixed]
    sol = np.linalg.solve(M[:, fixed], rhs - M[:, free] @ beta[free])
    beta[fixed] = sol
    assume(np.all(np.abs(beta) <= _MAX_FIXED))
    assume(abs(beta.sum()) >= 0.05)
    try:
        m = LinearMultistep(f"random_{k}step", tuple(alpha), tuple(float(b) for b in beta))
    except ValueError:  # float rounding made a condition fail at the 1e-12 level: reject this draw
        assume(False)
    assume(m.order >= min_order)
    return m


def vector_fields(dims=(1, 3), kinds=("tanh", "linear", "two_layer", "two_layer_fixed", "polynomial")):
    """Built-in fields of dimension in ``dims`` (inclusive range)."""
    lo, hi = dims

    @st.composite
    def draw_field(draw):
        d = draw(st.integers(lo, hi))
        kind = draw(st.sampled_from(kinds))
        if kind == "tanh":
            return TanhField(d)
        if kind == "linear":
            return LinearField(d)
        if kind == "polynomial":
            return PolynomialField(d)
        m = draw(st.integers(1, 3))
        if kind == "two_layer":
            return TwoLayerTanhField(d, m)
        W2 = draw(hnp.arrays(np.float64, (d, m), elements=_floats(-1.0, 1.0)))
        return TwoLayerTanhField(d, m, W2=W2)

    return draw_field()


def _theta_scale(field: VectorField) -> np.ndarray:
    """Per-component scale keeping the flows tame on [0, 1] (quadratic coefficients of PolynomialField small)."""
    scale = np.ones(field.n_params)
    if isinstance(field, PolynomialField):
        scale[field.dim + field.dim * field.dim:] = 0.25
    return scale


def _bias_columns(field: VectorField) -> np.ndarray:
    """The θ columns of the tanh biases b (``saturated=True`` of :func:`ode_problems`)."""
    if isinstance(field, TanhField):
        return np.arange(field.dim ** 2, field.dim ** 2 + field.dim)
    if isinstance(field, TwoLayerTanhField):
        m, d = field.hidden, field.dim
        return np.arange(m * d, m * d + m)
    raise ValueError(f"fields: saturated=True needs tanh fields (TanhField, TwoLayerTanhField), got {field!r}")


@st.composite
def step_grids(draw, T: float, N: int, ratio: float = 4.0):
    """A float64 grid of N + 1 strictly increasing times from 0 to T (exactly) with step ratios ≤ ``ratio`` (module
    docstring)."""
    if not ratio >= 1.0:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    w = draw(hnp.arrays(np.float64, (N,), elements=_floats(1.0, ratio)))
    grid = np.concatenate([[0.0], np.cumsum(w) / np.sum(w) * T])
    grid[-1] = T
    assume(np.all(np.diff(grid) > 0))
    return grid


@dataclass(frozen=True, eq=False)
class ODEProblem:
    """A drawn discrete problem: arguments of ``integrate`` / ``discrete_adjoint`` plus the loss (``grid`` None for
    the uniform grid)."""

    field: VectorField
    method: object
    starter: ButcherTableau | None
    layout: str
    x0: np.ndarray
    theta: np.ndarray
    T: float
    N: int
    loss: QuadraticLoss
    grid: np.ndarray | None = None

    def kwargs(self) -> dict:
        out = dict(layout=self.layout, starter=self.starter)
        if self.grid is not None:
            out["grid"] = self.grid
        return out


@st.composite
def ode_problems(draw, fields=None, methods=None, N=(1, 8), T=(0.25, 1.5), layouts=LAYOUTS, bound: float = 1.0,
                 saturated: bool = False, nonuniform: bool = False):
    r"""Whole problems: a field (default :func:`vector_fields`), a method (default: a named scheme, a random tableau
    or a random multistep method with a forward-Euler or matched starter), a layout, ``N`` in the given range (raised
    to the method's step count), T, x0, θ with entries in [−bound, bound] (scaled per field) and a quadratic loss.

    ``saturated=True``: the tanh units saturate — the biases are drawn with :math:`|b| \in [15, 30]`, so
    :math:`|Wx + b| \gtrsim 8` all along (|f| ≤ 1 per unit keeps |x| small) and :math:`\operatorname{sech}^2` is
    :math:`10^{-7}..10^{-26}`, where :math:`1 - \tanh^2` from a rounded tanh would have lost most or all of its digits;
    the fields default to the tanh kinds whose θ-gradient is all through :math:`\operatorname{sech}^2` (one layer, and
    two layers with fixed :math:`W_2`).

    ``nonuniform=True``: Runge–Kutta problems get a non-uniform grid (:func:`step_grids`, step ratio ≤ 4)."""
    if fields is None:
        fields = vector_fields(kinds=("tanh", "two_layer_fixed")) if saturated else vector_fields()
    field = draw(fields)
    if methods is None:
        methods = st.one_of(st.sampled_from(list(TABLEAUX.values()) + list(MULTISTEP_METHODS.values())),
                            explicit_tableaux(), multistep_methods(weakly_stable=True))
    method = draw(methods)
    starter = None
    if isinstance(method, LinearMultistep):
        kind = draw(st.sampled_from(["forward_euler", "matched"])) if method.order <= 4 else "forward_euler"
        starter = resolve_starter(method, kind)
    n_steps = max(draw(st.integers(*N)), getattr(method, "steps", 1))
    t_end = draw(_floats(*T))
    layout = draw(st.sampled_from(tuple(layouts)))
    grid = draw(step_grids(t_end, n_steps)) if nonuniform and isinstance(method, ButcherTableau) else None
    smp = parameter_samples(method, t_end, n_steps, layout, starter, grid=grid)
    el = _floats(-bound, bound)
    x0 = draw(hnp.arrays(np.float64, (field.dim,), elements=el))
    theta = draw(hnp.arrays(np.float64, (smp.n_samples, field.n_params), elements=el)) * _theta_scale(field)
    if saturated:
        bias = _bias_columns(field)
        magnitude = draw(hnp.arrays(np.float64, (smp.n_samples, len(bias)), elements=_floats(15.0, 30.0)))
        sign = draw(hnp.arrays(np.float64, (len(bias),), elements=st.sampled_from([-1.0, 1.0])))
        theta[:, bias] = magnitude * sign
    y = draw(hnp.arrays(np.float64, (field.dim,), elements=el))
    return ODEProblem(field, method, starter, layout, x0, theta, t_end, n_steps, QuadraticLoss(y), grid)
