"""The continuous adjoint (docs/theory/continuous-adjoint.md) against the closed forms of refimpl.problems.analytic_ode,
its error estimate against the true error, the DOP853 route against the independent RK4 + Richardson route, input
validation, and the convergence of normalised discrete gradients (tape through refimpl.ode.integrators) to the
closed-form δL/δθ(t).
"""
import numpy as np
import pytest

from refimpl.ad import grad
from refimpl.problems.analytic_ode import LinearSystemCase, LogisticCase, ScalarLinearCase, analytic_cases
from refimpl.ode.adjoint_ode import (AdjointErrorEstimate, ContinuousAdjointResult, continuous_adjoint,
                                     continuous_adjoint_rk4)
from refimpl.ode.fields import QuadraticLoss, TanhField, UserLoss
from refimpl.ode.integrators import discrete_loss
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import FORWARD_EULER, RK4

CASES = analytic_cases()
IDS = [c.name for c in CASES]
QUANTITIES = ("x", "p", "functional_gradient", "integrated_gradient", "x_final")


def _theta_arg(case):
    """Constant cases are passed as a (p,) array (the integrated gradient is then dL/dθ), others as a callable."""
    return case.constant_theta if case.theta_is_constant else case.theta


def _true_errors(case, res):
    t = res.times
    exact = {
        "x": case.x_exact(t),
        "p": case.adjoint_exact(t),
        "functional_gradient": case.functional_gradient_exact(t),
        "integrated_gradient": case.integrated_gradient_exact(),
        "x_final": case.x_final_exact(),
    }
    errors = {q: float(np.max(np.abs(getattr(res, q) - exact[q]))) for q in QUANTITIES}
    scales = {q: max(1.0, float(np.max(np.abs(exact[q])))) for q in QUANTITIES}
    return errors, scales


@pytest.fixture(scope="module")
def dop853_results():
    times = {c.name: np.linspace(0.0, c.T, 17) for c in CASES}
    return {c.name: continuous_adjoint(c.field, _theta_arg(c), c.x0, c.T, c.loss, times=times[c.name]) for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_dop853_adjoint_matches_closed_form(case, dop853_results):
    # Stated tolerance 1e-10 relative (to max(1, |exact|)) at rtol = 1e-12: DOP853's global error is ≈ κ·rtol with κ
    # the error amplification over [0, T] (≤ e^{∫|∂ₓf|} ≤ e³ here), plus the dense-output interpolation error of x(t)
    # (same order) fed into the backward solve; 100·rtol covers both. Measured worst: 1.4e-11 (scalar-growth-sin).
    res = dop853_results[case.name]
    errors, scales = _true_errors(case, res)
    for q in QUANTITIES:
        assert errors[q] <= 1e-10 * scales[q], (q, errors[q])
    assert abs(res.loss - case.loss_exact()) <= 1e-10 * max(1.0, case.loss_exact())


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_error_estimate_bounds_true_error_at_default_tolerance(case, dop853_results):
    res = dop853_results[case.name]
    errors, _ = _true_errors(case, res)
    assert isinstance(res.error, AdjointErrorEstimate)
    for q in QUANTITIES:
        assert errors[q] <= getattr(res.error, q), (q, errors[q], getattr(res.error, q))
    # and it is informative: within a factor 1e3 of the true error or at the rounding floor (≈ 256·eps·scale)
    assert res.error.p <= max(1e3 * errors["p"], 1e-12)


@pytest.mark.parametrize("rtol", [1e-5, 1e-8])
@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[6]], ids=lambda c: c.name)
def test_error_estimate_bounds_true_error_at_loose_tolerances(case, rtol):
    # at loose tolerances DOP853 takes a handful of steps and the dense-output error dominates; the estimate's step
    # cap (module docstring) is what keeps it an upper bound here (without it: a 4× underestimate at rtol 1e-5).
    res = continuous_adjoint(case.field, _theta_arg(case), case.x0, case.T, case.loss,
                             times=np.linspace(0, case.T, 17), rtol=rtol)
    errors, _ = _true_errors(case, res)
    for q in QUANTITIES:
        assert errors[q] <= getattr(res.error, q), (q, errors[q], getattr(res.error, q))
    assert errors["p"] > 10 * 1e-12  # the loose solve really is inaccurate: the bound is tested, not the floor


@pytest.mark.parametrize("case", [c for c in CASES if c.theta_is_constant], ids=lambda c: c.name)
def test_constant_theta_quadrature_gives_dL_dtheta(case, dop853_results):
    # dL/dθ from the augmented backward quadrature vs the closed-form dL/dθ (the derivative of the closed-form loss,
    # itself checked by complex step in test_ode_analytic.py); same 1e-10 relative tolerance as above
    res = dop853_results[case.name]
    exact = case.coefficient_gradient_exact()
    assert np.max(np.abs(res.integrated_gradient - exact)) <= 1e-10 * max(1.0, np.max(np.abs(exact)))
    assert np.max(np.abs(res.integrated_gradient - exact)) <= res.error.integrated_gradient


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rk4_richardson_route_matches_closed_form_within_its_estimate(case):
    n = 128
    res = continuous_adjoint_rk4(case.field, _theta_arg(case), case.x0, case.T, case.loss, n_steps=n,
                                 times=np.linspace(0, case.T, 17))
    errors, scales = _true_errors(case, res)
    for q in QUANTITIES:
        assert errors[q] <= getattr(res.error, q), (q, errors[q], getattr(res.error, q))
        # RK4 error at h = T/128 is ≈ 1e-9 before extrapolation; the estimate |A_2N − A_N|/15 is of that size
        assert getattr(res.error, q) <= 1e-8 * scales[q]
    assert res.times.shape == (17,) and res.method.startswith("fixed-step RK4")


def test_rk4_route_is_fourth_order_before_extrapolation():
    # the estimate |A_2N − A_N|/15 ∝ h⁴ for classical RK4, so it falls 16× per doubling of N (far from rounding)
    case = LogisticCase(time_dependent=True)
    est = [continuous_adjoint_rk4(case.field, case.theta, case.x0, case.T, case.loss, n_steps=n).error.p
           for n in (8, 16, 32)]
    orders = np.log2(np.array(est[:-1]) / np.array(est[1:]))
    assert np.all(np.abs(orders - 4.0) < 0.3), orders


def test_dop853_and_rk4_routes_agree_on_tanh_field():
    # no closed form: two independent routes must agree within the sum of their error bounds
    field = TanhField(2)
    W0 = np.array([[0.3, -1.1], [0.8, 0.2]])
    b0 = np.array([0.1, -0.4])

    def theta(t):
        return np.concatenate([(W0 * np.cos(1.5 * t) + 0.2 * t).ravel(), b0 + 0.3 * np.sin(2.0 * t)])

    loss = QuadraticLoss(np.array([0.5, -0.2]))
    x0, T = np.array([1.0, 0.5]), 1.0
    times = np.linspace(0, T, 9)
    a = continuous_adjoint(field, theta, x0, T, loss, times=times)
    b = continuous_adjoint_rk4(field, theta, x0, T, loss, n_steps=256, times=times)
    for q in QUANTITIES:
        diff = np.max(np.abs(getattr(a, q) - getattr(b, q)))
        assert diff <= getattr(a.error, q) + getattr(b.error, q), (q, diff)
    assert a.functional_gradient.shape == (9, 6)


def test_result_repr_and_determinism():
    case = LinearSystemCase()
    r1 = continuous_adjoint(case.field, case.theta, case.x0, case.T, case.loss, times=[0.0, 1.0, 2.0])
    r2 = continuous_adjoint(case.field, case.theta, case.x0, case.T, case.loss, times=[0.0, 1.0, 2.0])
    assert isinstance(r1, ContinuousAdjointResult)
    for q in QUANTITIES:
        assert np.array_equal(getattr(r1, q), getattr(r2, q))
    text = repr(r1)
    assert "DOP853" in text and "loss" in text and "integrated gradient" in text and "error" in text
    assert "tighter" in repr(r1.error)
    assert r1.stats["forward_nfev"] > 0 and r1.stats["rtol"] == 1e-12
    # end points are the solver's own nodes: p(T) = ∇Φ(x(T)) exactly, x(0) = x0 exactly
    assert np.array_equal(r1.p[-1], case.loss.grad(r1.x_final))
    assert np.array_equal(r1.x[0], case.x0)
    assert continuous_adjoint(case.field, case.theta, case.x0, case.T, case.loss, error_estimate=None).error is None


def test_user_loss_is_accepted():
    case = ScalarLinearCase()
    y = case.loss.y
    loss = UserLoss(lambda x: 0.5 * float(np.sum((x - y) ** 2)), lambda x: x - y)
    res = continuous_adjoint(case.field, case.theta, case.x0, case.T, loss, times=[0.5], error_estimate=None)
    np.testing.assert_allclose(res.functional_gradient[0], case.functional_gradient_exact(0.5), rtol=1e-10)


class TestValidation:
    case = ScalarLinearCase()

    def call(self, **kw):
        args = dict(field=self.case.field, theta=self.case.theta, x0=self.case.x0, T=self.case.T, loss=self.case.loss)
        args.update(kw)
        return continuous_adjoint(args.pop("field"), args.pop("theta"), args.pop("x0"), args.pop("T"),
                                  args.pop("loss"), error_estimate=None, **args)

    def test_x0(self):
        with pytest.raises(ValueError, match="x0"):
            self.call(x0=np.array([np.nan]))
        with pytest.raises(ValueError, match="x0"):
            self.call(x0=np.zeros(2))
        with pytest.raises(TypeError, match="x0"):
            self.call(x0="a")

    def test_T(self):
        with pytest.raises(ValueError, match="T"):
            self.call(T=0.0)
        with pytest.raises(ValueError, match="T"):
            self.call(T=np.inf)
        with pytest.raises(TypeError, match="T"):
            self.call(T="1")

    def test_theta(self):
        with pytest.raises(ValueError, match="theta"):
            self.call(theta=lambda t: np.zeros(2))
        with pytest.raises(ValueError, match="theta"):
            self.call(theta=lambda t: np.array([np.inf]))
        with pytest.raises(ValueError, match="theta"):
            self.call(theta=np.zeros(3))

    def test_field_and_loss(self):
        with pytest.raises(TypeError, match="field"):
            self.call(field=object())
        with pytest.raises(TypeError, match="loss"):
            self.call(loss=lambda x: x)
        class BadLoss:
            def value(self, x):
                return 0.0

            def grad(self, x):
                return np.zeros(3)

        with pytest.raises(ValueError, match="loss.grad"):
            self.call(loss=BadLoss())

        class BadField:
            dim, n_params = 1, 1

            def f(self, x, th):
                return np.zeros(2)

            dfdx = dfdtheta = vjp_x = vjp_theta = f

        with pytest.raises(ValueError, match="field.f"):
            self.call(field=BadField())

    def test_times_and_tolerances(self):
        with pytest.raises(ValueError, match="times"):
            self.call(times=[0.0, 2.0 * self.case.T])
        with pytest.raises(ValueError, match="times"):
            self.call(times=[0.5, 0.2])
        with pytest.raises(ValueError, match="rtol"):
            self.call(rtol=1e-17)
        with pytest.raises(ValueError, match="atol"):
            self.call(atol=-1.0)
        with pytest.raises(ValueError, match="error_estimate"):
            continuous_adjoint(self.case.field, self.case.theta, self.case.x0, self.case.T, self.case.loss,
                               error_estimate="bogus")
        with pytest.raises(ValueError, match="rtol"):
            continuous_adjoint(self.case.field, self.case.theta, self.case.x0, self.case.T, self.case.loss,
                               rtol=1e-13)
        with pytest.raises(ValueError, match="n_steps"):
            continuous_adjoint_rk4(self.case.field, self.case.theta, self.case.x0, self.case.T, self.case.loss,
                                   n_steps=0)
        with pytest.raises(ValueError, match="times"):
            continuous_adjoint_rk4(self.case.field, self.case.theta, self.case.x0, self.case.T, self.case.loss,
                                   n_steps=8, times=[0.1])


# ----------------------------------------------------------------------------------------------------------------------
# discrete gradients → continuous gradient (the "control" cases of docs/theory/oscillations-and-corrections.md)


def _normalised_gradient_errors(case, method, layout, Ns, at_midpoint=False):
    """max over samples of |G/(h·w) − δL/δθ(τ)| for each N (G by the tape through refimpl.ode.integrators).

    τ is the sample time, or (``at_midpoint``, one-θ-per-step layout) the middle of the sample's step."""
    errors = []
    for N in Ns:
        smp = parameter_samples(method, case.T, N, layout)
        theta = np.array([case.theta(t) for t in smp.times])
        G = grad(lambda th: discrete_loss(case.field, method, case.x0, th, case.T, N, case.loss, layout=layout))(theta)
        h = case.T / N
        tau = smp.times + (h / 2 if at_midpoint else 0.0)
        g = G / (h * smp.weights[:, None])
        errors.append(float(np.max(np.abs(g - case.functional_gradient_exact(tau)))))
    errors = np.array(errors)
    return errors, np.log2(errors[:-1] / errors[1:])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_euler_one_theta_per_step_converges_at_first_order(case):
    # docs/theory/oscillations-and-corrections.md: forward Euler with θ_n = θ(t_n), g_n = G_n/h (w = 1) → δL/δθ(t_n) at
    # first order. Measured orders for
    # N = 64 → 128 → 256 are 0.99–1.06 on every case; the issue asks for |order − 1| ≤ 0.15.
    errors, orders = _normalised_gradient_errors(case, FORWARD_EULER, "step", [64, 128, 256])
    assert abs(orders[-1] - 1.0) <= 0.15, (errors, orders)
    assert errors[-1] < 0.05 * max(1.0, np.max(np.abs(case.functional_gradient_exact(np.linspace(0, case.T, 5)))))


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[6]], ids=lambda c: c.name)
def test_rk4_stage_samples_normalised_gradient_converges_at_third_order(case):
    # Observed, not derived (reported as a finding): RK4 with θ sampled at the distinct stage times (weights 1/3 at
    # grid times, 2/3 at half steps), g = G/(h·w) converges to δL/δθ at order 3, not 4; no oscillation between grid
    # and half-step samples. Measured orders for N = 32 → 64 → 128: 2.95–3.33 on all seven cases (3.2 → 3 from above
    # for scalar-linear-forcing, where the half-step samples are more accurate). We assert |order − 3| ≤ 0.35 and
    # that the order is clearly not 4.
    errors, orders = _normalised_gradient_errors(case, RK4, "stage", [32, 64, 128])
    assert abs(orders[-1] - 3.0) <= 0.35, (errors, orders)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rk4_one_theta_per_step(case):
    # Observed: with one θ per step (θ_n = θ(t_n) used in all four stages), G_n/h compared at the step midpoint
    # converges at order 2 when θ is constant in time (midpoint-rule averaging of δL/δθ over the step) and at order 1
    # when θ varies (the discrete problem freezes θ at t_n: an O(h) perturbation of the problem itself). Where
    # δL/δθ is constant in t (scalar growth, constant θ) the error is the RK4 error itself: order 4.
    errors, orders = _normalised_gradient_errors(case, RK4, "step", [32, 64, 128], at_midpoint=True)
    if case.name == "scalar-growth-constant":
        expected = 4.0
    else:
        expected = 2.0 if case.theta_is_constant else 1.0
    assert abs(orders[-1] - expected) <= 0.2, (errors, orders)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_rk4_stage_samples_all_cases(case):
    errors, orders = _normalised_gradient_errors(case, RK4, "stage", [32, 64, 128])
    assert abs(orders[-1] - 3.0) <= 0.35, (errors, orders)
