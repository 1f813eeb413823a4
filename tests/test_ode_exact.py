"""Exact mode (docs/theory/discrete-adjoint.md): rational tableaux, the polynomial field and Fraction ``object`` arrays.

The discrete adjoint computed exactly (NumPy path on Fractions) is compared with an exact independent route: forward-mode
differentiation with dual numbers a + bε (ε² = 0) over the rationals, run through the *integrator* — L_h(θ + εδ) =
L_h(θ) + ε⟨∇L_h, δ⟩ exactly, because L_h is a polynomial in θ and x0. Equality is asserted as Fraction equality (no
tolerance). The exact result, rounded, must match the float64 run to ≈ 1e-14 relative (float rounding of O(N·s)
operations of O(1) size).
"""
import zlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import LinearField, PolynomialField, QuadraticLoss
from refimpl.ode.integrators import discrete_loss, integrate
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import AB2, HEUN, KUTTA_RK3, LEAPFROG, MIDPOINT, RALSTON, RK4, RK38
from refimpl.testing.strategies_ode import explicit_tableaux


class Dual:
    """a + b ε with ε² = 0, over any exact number type (here Fractions)."""

    __slots__ = ("a", "b")

    def __init__(self, a, b=0):
        self.a, self.b = a, b

    @staticmethod
    def _lift(o):
        return o if isinstance(o, Dual) else Dual(o, 0)

    def __add__(self, o):
        o = self._lift(o)
        return Dual(self.a + o.a, self.b + o.b)

    __radd__ = __add__

    def __sub__(self, o):
        o = self._lift(o)
        return Dual(self.a - o.a, self.b - o.b)

    def __rsub__(self, o):
        return self._lift(o) - self

    def __mul__(self, o):
        o = self._lift(o)
        return Dual(self.a * o.a, self.a * o.b + self.b * o.a)

    __rmul__ = __mul__

    def __neg__(self):
        return Dual(-self.a, -self.b)

    def __truediv__(self, o):
        if isinstance(o, Dual):
            raise TypeError("division by a dual number is not needed here")
        return Dual(self.a / o, self.b / o)


def fr_array(values):
    out = np.empty(np.shape(values), dtype=object)
    for idx, v in np.ndenumerate(np.asarray(values, dtype=object)):
        out[idx] = Fraction(v)
    return out


def dual_array(base, direction):
    out = np.empty(base.shape, dtype=object)
    for idx in np.ndindex(base.shape):
        out[idx] = Dual(base[idx], direction[idx])
    return out


def small_fractions(rng, shape, den=8, lo=-4, hi=4):
    return fr_array(np.vectorize(lambda k: Fraction(int(k), den))(rng.integers(lo, hi + 1, size=shape)))


CASES = [(HEUN, None, 3), (MIDPOINT, None, 3), (RALSTON, None, 2), (KUTTA_RK3, None, 2), (RK4, None, 2),
         (RK38, None, 2), (LEAPFROG, "forward_euler", 4), (AB2, "matched", 3)]


@pytest.mark.parametrize("layout", ["stage", "step"])
@pytest.mark.parametrize("method,starter,N", CASES, ids=[c[0].name for c in CASES])
def test_exact_adjoint_equals_dual_number_derivative(method, starter, N, layout):
    rng = np.random.default_rng(zlib.crc32(f"{method.name}-{layout}".encode()))
    field = PolynomialField(2)
    T = Fraction(1)
    smp = parameter_samples(method, T, N, layout, starter)
    theta = small_fractions(rng, (smp.n_samples, field.n_params))
    x0 = small_fractions(rng, (2,))
    loss = QuadraticLoss(small_fractions(rng, (2,)))
    adj = discrete_adjoint(field, method, x0, theta, T, N, loss, layout=layout, starter=starter)
    assert adj.grad_theta.dtype == object and all(isinstance(v, Fraction) for v in adj.grad_theta.ravel())
    assert isinstance(adj.h, Fraction) and isinstance(adj.loss, Fraction)
    for _ in range(2):
        d_theta = small_fractions(rng, theta.shape, den=3, lo=-3, hi=3)
        d_x0 = small_fractions(rng, x0.shape, den=3, lo=-3, hi=3)
        out = discrete_loss(field, method, dual_array(x0, d_x0), dual_array(theta, d_theta), T, N, loss,
                            layout=layout, starter=starter)
        assert out.a == adj.loss
        assert out.b == np.sum(adj.grad_theta * d_theta) + np.sum(adj.grad_x0 * d_x0)   # exact equality


@pytest.mark.parametrize("method,starter,N", CASES, ids=[c[0].name for c in CASES])
def test_exact_agrees_with_float64(method, starter, N):
    rng = np.random.default_rng(1)
    field = PolynomialField(2)
    smp = parameter_samples(method, 1, N, "stage", starter)
    theta = small_fractions(rng, (smp.n_samples, field.n_params))
    x0 = small_fractions(rng, (2,))
    y = small_fractions(rng, (2,))
    ex = discrete_adjoint(field, method, x0, theta, 1, N, QuadraticLoss(y), starter=starter)
    fl = discrete_adjoint(field, method, x0.astype(float), theta.astype(float), 1.0, N, QuadraticLoss(y.astype(float)),
                          starter=starter)
    g_exact = ex.grad_theta.astype(float)
    scale = np.max(np.abs(g_exact))
    assert np.max(np.abs(fl.grad_theta - g_exact)) <= 1e-14 * scale
    assert np.max(np.abs(fl.trajectory - ex.trajectory.astype(float))) <= 1e-14 * np.max(np.abs(fl.trajectory))


@settings(max_examples=15, deadline=None)
@given(explicit_tableaux(stages=(2, 3), min_order=1, exact=True), st.integers(1, 2), st.sampled_from(["stage", "step"]),
       st.integers(0, 2 ** 31))
def test_exact_adjoint_random_rational_tableaux(tab, N, layout, seed):
    rng = np.random.default_rng(seed)
    field = LinearField(2)    # linear field: L_h is still a polynomial in θ, x0
    smp = parameter_samples(tab, Fraction(1, 2), N, layout)
    theta = small_fractions(rng, (smp.n_samples, field.n_params))
    x0 = small_fractions(rng, (2,))
    loss = QuadraticLoss(small_fractions(rng, (2,)))
    adj = discrete_adjoint(field, tab, x0, theta, Fraction(1, 2), N, loss, layout=layout)
    d_theta = small_fractions(rng, theta.shape, den=2, lo=-2, hi=2)
    out = discrete_loss(field, tab, x0, dual_array(theta, d_theta), Fraction(1, 2), N, loss, layout=layout)
    assert out.b == np.sum(adj.grad_theta * d_theta)


def test_exact_difference_quotients_approach_the_adjoint():
    """The plainest check: exact quotients (L_h(θ + ε e) − L_h(θ))/ε for ε = 10^-k differ from the exact adjoint by
    exactly O(ε) (the quadratic Taylor term), so the error must shrink by ≈ 10 per step."""
    rng = np.random.default_rng(3)
    field, N = PolynomialField(1), 2
    smp = parameter_samples(RK4, 1, N)
    theta = small_fractions(rng, (smp.n_samples, 3))
    x0 = fr_array([Fraction(1, 2)])
    loss = QuadraticLoss(fr_array([Fraction(1, 3)]))
    adj = discrete_adjoint(field, RK4, x0, theta, 1, N, loss)
    e = np.zeros(theta.shape, dtype=object)
    e[:] = Fraction(0)
    e[2, 2] = Fraction(1)
    L0 = discrete_loss(field, RK4, x0, theta, 1, N, loss)
    errs = []
    for k in range(2, 6):
        eps = Fraction(1, 10 ** k)
        q = (discrete_loss(field, RK4, x0, theta + eps * e, 1, N, loss) - L0) / eps
        errs.append(abs(q - adj.grad_theta[2, 2]))
    ratios = [float(errs[i] / errs[i + 1]) for i in range(len(errs) - 1)]
    assert all(9 < r < 11 for r in ratios), ratios


def test_exact_trajectory_is_exact():
    """x' = θ0 x (polynomial field with c = 0, B = θ0, q = 0), forward Euler with h = 1/4: x_N = (1 + θ0/4)^N x0."""
    field = PolynomialField(1)
    theta = fr_array([[0, Fraction(1, 3), 0]] * 4)
    from refimpl.ode.schemes import FORWARD_EULER
    x = integrate(field, FORWARD_EULER, fr_array([Fraction(2)]), theta, 1, 4).x
    assert x[-1, 0] == Fraction(2) * (1 + Fraction(1, 12)) ** 4
