"""Saturated tanh units (|Wx + b| ≳ 10): every route computes tanh' = sech² without cancellation, so the tape, the hand
Jacobians of the tanh fields and the compiled kernel agree to rounding there too.

1 − tanh² z formed from a rounded tanh has absolute error ~1e-16, i.e. relative error ~1e-16/sech² z: 3e-8 at
|z| = 10, 100 % from |z| ≈ 18. The routes use sech² z = 4w/(1 + w)², w = e^{−2|z|} (relative error a few ulps), so
what is left between them is the summation order (≲ 1e-14 relative, see tests/test_ode_discrete_adjoint.py).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ad import grad, hvp, ops
from refimpl.ad.checks import complex_step
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import QuadraticLoss, TanhField, TwoLayerTanhField
from refimpl.ode.fields.neural import sech2
from refimpl.ode.integrators import discrete_loss
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import LEAPFROG, MULTISTEP_METHODS, RK4, TABLEAUX
from refimpl.testing.strategies_ode import explicit_tableaux, multistep_methods, ode_problems

Z = np.array([-300.0, -40.0, -18.5, -10.0, -1e-3, 0.0, 0.7, 10.0, 18.5, 40.0, 300.0])


def sech2_reference(z):
    """sech² z = 1/cosh² z, in closed form (cosh does not cancel; overflow is avoided for |z| ≤ 300)."""
    return 1.0 / np.cosh(z) ** 2


def test_sech2_is_accurate_where_one_minus_tanh_squared_cancels():
    ref = sech2_reference(Z)
    assert np.max(np.abs(sech2(Z) - ref) / ref) <= 4e-16 * 8
    naive = 1 - np.tanh(Z) ** 2
    assert np.max(np.abs(naive - ref) / ref) > 1e-3  # what the old form did (and 0 from |z| ≈ 19 on)


def test_tape_tanh_derivative_is_sech2_in_the_saturated_regime():
    ref = sech2_reference(Z)
    g = grad(lambda z: ops.sum(ops.tanh(z)))(Z)
    assert np.max(np.abs(g - ref) / ref) <= 4e-16 * 8
    # the VJP is written in primitives: its derivative (an HVP) is −2 tanh z sech² z, relative to rounding where tanh
    # saturates (near z = 0 it is a difference −8w(1 − w)/(1 + w)³, w = e^{−2|z|}: accurate to ~1e-16 sech² z absolutely)
    H = hvp(lambda z: ops.sum(ops.tanh(z)))(Z, np.ones_like(Z))
    href = -2.0 * np.tanh(Z) * ref
    assert np.all(np.abs(H - href) <= 1e-14 * np.abs(href) + 1e-15 * ref)
    # and it stays holomorphic: the complex-step derivative of the gradient equals the HVP
    for z in (-18.5, 10.0, 40.0):
        cs = complex_step(lambda t: grad(lambda u: ops.tanh(u))(t), np.float64(z), np.float64(1.0))
        assert abs(cs - (-2.0 * np.tanh(z) * sech2_reference(z))) <= 1e-14 * abs(cs)


@pytest.mark.parametrize("field", [TanhField(3), TwoLayerTanhField(3, 2, W2=np.ones((3, 2)))], ids=repr)
def test_hand_jacobians_match_tape_when_saturated(field):
    rng = np.random.default_rng(5)
    x, v = rng.standard_normal(field.dim), rng.standard_normal(field.dim)
    theta = 0.5 * rng.standard_normal(field.n_params)
    nb = field.dim if isinstance(field, TanhField) else field.hidden
    b0 = field.dim ** 2 if isinstance(field, TanhField) else field.hidden * field.dim
    theta[b0:b0 + nb] = np.array([12.0, -20.0, 30.0])[:nb]
    tape_x = grad(lambda y: ops.sum(field.f(y, theta) * v))(x)
    tape_th = grad(lambda t: ops.sum(field.f(x, t) * v))(theta)
    assert np.max(np.abs(field.vjp_x(x, theta, v) - tape_x) / np.abs(tape_x)) <= 1e-14
    assert np.max(np.abs(field.vjp_theta(x, theta, v) - tape_th) / np.maximum(np.abs(tape_th), 1e-300)) <= 1e-14


def _relative(a, b):
    """Entry-wise relative error (no entry vanishes here: every θ-gradient entry carries a sech² factor)."""
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


@pytest.mark.parametrize("method,starter", [(RK4, None), (LEAPFROG, "forward_euler")], ids=["rk4", "leapfrog"])
def test_numba_numpy_and_tape_agree_entrywise_when_saturated(method, starter):
    """The case of the reliability probe: units saturated at |z| ≈ 10..20, where the kernel's old 1 − fx² differed from
    the NumPy path by up to 3.6e-4 relative."""
    rng = np.random.default_rng(1)
    d, N = 3, 20
    field, loss = TanhField(d), QuadraticLoss(np.zeros(d))
    smp = parameter_samples(method, 1.0, N, "stage", starter)
    theta = 4.0 * rng.standard_normal((smp.n_samples, field.n_params))
    theta[:, -d:] += 14.0
    x0 = rng.standard_normal(d)
    tape = grad(lambda t: discrete_loss(field, method, x0, t, 1.0, N, loss, starter=starter))(theta)
    for backend in ("numpy", "numba"):
        adj = discrete_adjoint(field, method, x0, theta, 1.0, N, loss, starter=starter, backend=backend)
        assert _relative(adj.grad_theta, tape) <= 1e-13, (backend, _relative(adj.grad_theta, tape))


NAMED = st.sampled_from(list(TABLEAUX.values()) + list(MULTISTEP_METHODS.values()))
SCHEMES = st.one_of(NAMED, explicit_tableaux(stages=(2, 3)), multistep_methods(weakly_stable=True))


@settings(max_examples=30, deadline=None)
@given(ode_problems(methods=SCHEMES, N=(1, 8), saturated=True))
def test_hand_adjoints_equal_tape_saturated_property(p):
    """Property test in the saturated regime: NumPy and Numba hand adjoints == tape ≤ 1e-13 (norm-wise, as in
    tests/test_ode_discrete_adjoint.py; here every θ-gradient entry is O(sech²), so this is a relative statement about
    the sech² factors themselves)."""
    def L(theta):
        return discrete_loss(p.field, p.method, p.x0, theta, p.T, p.N, p.loss, **p.kwargs())

    tape = grad(L)(p.theta)
    scale = np.max(np.abs(tape))
    for backend in ("numpy", "numba") if p.field.kernel is not None else ("numpy",):
        adj = discrete_adjoint(p.field, p.method, p.x0, p.theta, p.T, p.N, p.loss, backend=backend, **p.kwargs())
        assert np.max(np.abs(adj.grad_theta - tape)) <= 1e-13 * scale, backend
