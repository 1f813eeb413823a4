"""The closed forms of refimpl.problems.analytic_ode, each checked against an independent route.

* trajectory: a DOP853 forward solve of the case's own field at rtol 1e-13 (SciPy, not our adjoint code), and the ODE
  residual x′ − f(x, θ(t)) by a Richardson difference quotient in t;
* adjoint: terminal condition p(T) = ∇Φ(x(T)) and the ODE residual p′ + ∂ₓfᵀp (Richardson in t) — together they
  determine p uniquely;
* gradients: dL/dc by complex step (exact to rounding) and Richardson differences of the closed-form loss, against
  the closed-form dL/dc and against quadrature of B(t)ᵀ δL/δθ(t); ∫δL/δθ against quadrature; for constant θ,
  ∫δL/δθ dt = dL/dθ;
* the LogisticField's hand derivatives against complex step and the tape.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad, solve_ivp

from refimpl.ad import jacobian
from refimpl.ad.checks import complex_step_gradient, fd_gradient
from refimpl.ode.fields import LogisticField
from refimpl.problems.analytic_ode import (LinearSystemCase, LogisticCase, ScalarGrowthCase, ScalarLinearCase,
                                           analytic_cases)

CASES = analytic_cases()
IDS = [c.name for c in CASES]


def _rel(err, scale):
    return float(np.max(np.abs(err)) / max(1.0, float(np.max(np.abs(scale)))))


def _richardson_dt(fun, t, h=1e-3):
    """d/dt fun at t by Richardson-extrapolated central differences: error O(h⁴) ≈ 1e-12 + rounding ε/h ≈ 1e-13."""
    def central(k):
        return (fun(t + k) - fun(t - k)) / (2 * k)

    return (4 * central(h / 2) - central(h)) / 3


def test_there_are_at_least_four_families_with_constant_and_time_dependent_theta():
    families = {type(c) for c in CASES}
    assert len(families) >= 4
    assert any(c.theta_is_constant for c in CASES) and any(not c.theta_is_constant for c in CASES)
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_trajectory_matches_dop853_forward_solve(case):
    # DOP853 at rtol 1e-13, atol 1e-15 on these short horizons (growth factors ≤ e³) has global error ≲ 1e-11 relative;
    # the closed forms are exact to rounding, so 1e-10 relative is a safe bound that still detects any formula slip.
    times = np.linspace(0.0, case.T, 13)
    sol = solve_ivp(lambda t, x: case.field.f(x, case.theta(t)), (0.0, case.T), case.x0, method="DOP853",
                    rtol=1e-13, atol=1e-15, t_eval=times)
    exact = case.x_exact(times)
    assert exact.shape == (13, case.field.dim)
    assert _rel(sol.y.T - exact, exact) < 1e-10
    assert np.array_equal(case.x_exact(0.0), case.x0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_trajectory_and_adjoint_solve_their_odes(case):
    # residuals by Richardson differences with h = 1e-3: truncation ~ |x⁽⁵⁾| h⁴/480 < 1e-12, rounding ~ ε|x|/h ~ 1e-13;
    # 1e-9 leaves room for the fifth derivatives (frequencies ω ≤ 3) without masking an O(1) formula error.
    for t in np.linspace(0.01, case.T - 0.01, 7):
        xt, pt, th = case.x_exact(t), case.adjoint_exact(t), case.theta(t)
        dx = _richardson_dt(case.x_exact, t)
        dp = _richardson_dt(case.adjoint_exact, t)
        assert _rel(dx - case.field.f(xt, th), xt) < 1e-9
        assert _rel(dp + case.field.vjp_x(xt, th, pt), pt) < 1e-9
    # terminal condition p(T) = ∇Φ(x(T)), exact to rounding
    np.testing.assert_allclose(case.adjoint_exact(case.T), case.loss.grad(case.x_final_exact()), rtol=1e-14,
                               atol=1e-15)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_coefficient_gradient_matches_complex_step_and_richardson(case):
    c = case.coefficients
    exact = case.coefficient_gradient_exact()
    cs = complex_step_gradient(case.loss_at, c)
    # complex step (eps = 1e-30) has no truncation error: agreement to a few ulps of the gradient scale
    np.testing.assert_allclose(cs, exact, rtol=1e-12, atol=1e-14 * max(1.0, np.max(np.abs(exact))))
    # Richardson differences do not rely on the holomorphic extension; O(h⁴) + rounding ≈ 1e-11
    fd = fd_gradient(lambda cc: float(np.real(case.loss_at(cc))), c, method="richardson")
    np.testing.assert_allclose(fd, exact, rtol=1e-8, atol=1e-10)
    assert np.isclose(case.loss_exact(), float(case.loss.value(case.x_final_exact())), rtol=1e-14)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_coefficient_gradient_is_quadrature_of_functional_gradient(case):
    # dL/dc = ∫ B(t)ᵀ δL/δθ(t) dt (chain rule through θ = Bc): adaptive Gauss–Kronrod on smooth integrands reaches its
    # epsabs/epsrel = 1e-13 requests; 1e-11 relative allows for its error estimate being approximate.
    q = case.coefficients.size
    quadrature = np.array([
        quad(lambda t, k=k: (case.theta_basis(t).T @ case.functional_gradient_exact(t))[k], 0.0, case.T,
             epsabs=1e-14, epsrel=1e-13, limit=200)[0] for k in range(q)])
    exact = case.coefficient_gradient_exact()
    assert _rel(quadrature - exact, exact) < 1e-11
    n_p = case.field.n_params
    integrated = np.array([quad(lambda t, k=k: case.functional_gradient_exact(t)[k], 0.0, case.T,
                                epsabs=1e-14, epsrel=1e-13, limit=200)[0] for k in range(n_p)])
    assert _rel(integrated - case.integrated_gradient_exact(), integrated) < 1e-11


@pytest.mark.parametrize("case", [c for c in CASES if c.theta_is_constant], ids=lambda c: c.name)
def test_constant_theta_dL_dtheta_equals_integrated_gradient(case):
    # for θ ≡ c (B = I) the two closed forms are the same quantity, written differently; rounding only
    np.testing.assert_array_equal(case.constant_theta, case.coefficients)
    assert np.allclose(case.theta(0.3 * case.T), case.coefficients, rtol=0, atol=0)
    np.testing.assert_allclose(case.integrated_gradient_exact(), case.coefficient_gradient_exact(), rtol=1e-13,
                               atol=1e-15)


def test_growth_rate_gradient_is_constant_in_time():
    # derived in the module docstring: L depends on the growth rate only through its integral
    for case in (ScalarGrowthCase(time_dependent=True), LogisticCase(time_dependent=True)):
        g = case.functional_gradient_exact(np.linspace(0, case.T, 9))[:, 0]
        np.testing.assert_allclose(g, g[0], rtol=1e-13)
    # …but the capacity gradient of the logistic case and the forcing gradients are not
    g = LogisticCase(time_dependent=True).functional_gradient_exact(np.linspace(0, 2.0, 9))[:, 1]
    assert np.ptp(g) > 0.1 * np.max(np.abs(g))


@settings(max_examples=25, deadline=None)
@given(a=st.floats(-2.0, 2.0).filter(lambda v: abs(v) > 0.05), omega=st.floats(0.5, 4.0),
       c0=st.floats(-1.0, 1.0), c1=st.floats(-1.0, 1.0), T=st.floats(0.2, 2.0))
def test_scalar_linear_closed_form_gradient_property(a, omega, c0, c1, T):
    case = ScalarLinearCase(a=a, omega=omega, coefficients=(c0, c1), T=T)
    exact = case.coefficient_gradient_exact()
    cs = complex_step_gradient(case.loss_at, case.coefficients)
    np.testing.assert_allclose(cs, exact, rtol=1e-12, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(r0=st.floats(-1.5, 1.5), r1=st.floats(-1.0, 1.0), K=st.floats(0.5, 3.0), frac=st.floats(0.05, 0.95),
       T=st.floats(0.2, 2.0))
def test_logistic_closed_form_gradient_property(r0, r1, K, frac, T):
    case = LogisticCase(time_dependent=True, coefficients=(r0, r1, K), x0=frac * K, T=T)
    exact = case.coefficient_gradient_exact()
    cs = complex_step_gradient(case.loss_at, case.coefficients)
    np.testing.assert_allclose(cs, exact, rtol=1e-11, atol=1e-14)


def test_linear_system_van_loan_integrals_match_quadrature_of_expm():
    # the Van Loan block formula against direct quadrature of the integrands built from scipy.linalg.expm
    from scipy.linalg import expm

    case = LinearSystemCase()
    A = case.coefficients[:4].reshape(2, 2)
    r = case.x_final_exact() - case.loss.y

    def p(t):
        return expm(A.T * (case.T - t)) @ r

    int_tp = np.array([quad(lambda t, k=k: t * p(t)[k], 0, case.T, epsabs=1e-14, epsrel=1e-13)[0] for k in range(2)])
    np.testing.assert_allclose(case.coefficient_gradient_exact()[6:8], int_tp, rtol=1e-11)


def test_logistic_field_derivatives():
    field = LogisticField()
    x, th, v = np.array([0.7]), np.array([1.3, 2.1]), np.array([0.9])
    # complex step on f is exact to rounding
    dfdx_cs = np.array([np.imag(field.f(x + 1e-30j, th.astype(complex))) / 1e-30])
    dfdth_cs = np.array([[np.imag(field.f(x.astype(complex), th + 1e-30j * e))[0] / 1e-30 for e in np.eye(2)]])
    np.testing.assert_allclose(field.dfdx(x, th), dfdx_cs.reshape(1, 1), rtol=1e-14)
    np.testing.assert_allclose(field.dfdtheta(x, th), dfdth_cs, rtol=1e-14)
    np.testing.assert_allclose(field.vjp_x(x, th, v), field.dfdx(x, th).T @ v, rtol=1e-15)
    np.testing.assert_allclose(field.vjp_theta(x, th, v), field.dfdtheta(x, th).T @ v, rtol=1e-15)
    # the taped f (written with operators) gives the same Jacobian through the AD engine
    np.testing.assert_allclose(jacobian(lambda tt: field.f(x, tt))(th), field.dfdtheta(x, th), rtol=1e-14)
    with pytest.raises(ValueError, match="theta"):
        field.f(x, np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="x"):
        field.f(np.array([0.1, 0.2]), th)


def test_invalid_case_arguments_are_named():
    with pytest.raises(ValueError, match="x0"):
        LogisticCase(x0=5.0)
    with pytest.raises(ValueError, match="coefficients"):
        ScalarLinearCase(coefficients=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="a"):
        ScalarLinearCase(a=0.0)
    with pytest.raises(ValueError, match="T"):
        ScalarGrowthCase(T=-1.0)
    with pytest.raises(ValueError, match="A"):
        LinearSystemCase(A=np.ones((2, 3)))
    with pytest.raises(ValueError, match="t must"):
        ScalarLinearCase().x_exact(5.0)
    with pytest.raises(ValueError, match="time-dependent"):
        ScalarLinearCase().constant_theta
    with pytest.raises(ValueError, match="coefficients"):
        ScalarLinearCase().loss_at(np.zeros(3))


def test_repr_names_the_case():
    text = repr(LinearSystemCase())
    assert "LinearSystemCase" in text and "time-dependent" in text and "LinearField" in text


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_theta_terms_write_out_theta_basis(case):
    # the written-out θ(t) = a + b sin ωt + c cos ωt + slope·t (what an oracle case stores) is B(t) c, evaluated in
    # another order: a sum of at most 3 products per component, so a few ulps of the component scale
    terms = {k: np.asarray(v) for k, v in case.theta_terms().items()}
    for t in np.linspace(0.0, case.T, 13):
        written = terms["a"] + terms["b"] * np.sin(terms["omega"] * t) + terms["c"] * np.cos(terms["omega"] * t) \
            + terms["slope"] * t
        ref = case.theta(t)
        np.testing.assert_allclose(written, ref, rtol=0, atol=8 * np.finfo(float).eps * max(1.0, np.max(np.abs(ref))))
