"""refimpl.ode.dop853.DOP853: SciPy's DOP853 with an error norm that survives underflow."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from refimpl.ode.dop853 import DOP853

Y0 = 1.12756083e-155  # the state hypothesis found: a tiny x0 under parameters of 1e-5 (tests/test_oracle_properties.py)


def _tiny_linear_system():
    # y = (λ, a, g, b): λ' = −1e-10 λ, g' = −1e-5 λ, a' = −1e-160 λ (subnormal), b' = 0; solved from t = 1 back to 0
    A = np.zeros((4, 4))
    A[0, 0], A[2, 0], A[1, 0] = -1e-10, -1e-5, -1e-160
    return A, np.array([Y0, 0.0, 0.0, 0.0])


def test_scipy_fails_where_the_guarded_norm_completes_with_the_exact_answer():
    A, y0 = _tiny_linear_system()
    opts = dict(rtol=1e-13, atol=1e-14)
    with np.errstate(all="ignore"):
        plain = solve_ivp(lambda t, y: A @ y, (1.0, 0.0), y0, method="DOP853", **opts)
        ours = solve_ivp(lambda t, y: A @ y, (1.0, 0.0), y0, method=DOP853, **opts)
    assert not plain.success and "spacing" in plain.message  # the failure this class exists for
    assert ours.success
    # closed form: λ(0) = Y0 e^{1e-10}, g(0) = 1e-5 ∫_0^1 λ = 1e-5 Y0 (e^{1e-10} − 1)/1e-10; relative 1e-12 is the
    # solver's tolerance (rtol 1e-13) with a margin of 10 for its global error
    lam0 = Y0 * np.exp(1e-10)
    g0 = 1e-5 * Y0 * np.expm1(1e-10) / 1e-10
    assert ours.y[0, -1] == pytest.approx(lam0, rel=1e-12)
    assert ours.y[2, -1] == pytest.approx(g0, rel=1e-12)
    assert ours.y[3, -1] == 0.0


@pytest.mark.parametrize("rtol", [1e-6, 1e-10, 1e-13])
def test_bit_identical_to_scipy_wherever_scipy_completes(rtol):
    # van der Pol (mu = 2): the guarded norm returns SciPy's own value whenever it is finite, so every step is the same
    def f(t, y):
        return np.array([y[1], 2.0 * (1 - y[0] ** 2) * y[1] - y[0]])

    a = solve_ivp(f, (0.0, 6.0), np.array([2.0, 0.0]), method="DOP853", rtol=rtol, atol=rtol, dense_output=True)
    b = solve_ivp(f, (0.0, 6.0), np.array([2.0, 0.0]), method=DOP853, rtol=rtol, atol=rtol, dense_output=True)
    assert a.success and b.success
    assert np.array_equal(a.t, b.t) and np.array_equal(a.y, b.y)
    ts = np.linspace(0.0, 6.0, 37)
    assert np.array_equal(a.sol(ts), b.sol(ts))
