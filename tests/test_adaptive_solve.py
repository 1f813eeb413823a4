"""The adaptive integrator and its gradients.

Independent routes: SciPy's ``solve_ivp`` (RK45 / RK23) for the accepted grid, the rejections and nfev; the complex
step of the whole adaptive loss for the full discrete adjoint (b); the complex step of the fixed-step loss on the
frozen grid and the hand discrete adjoint (when it supports a grid) for (a); DOP853's continuous adjoint for (c)."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from scipy.integrate import solve_ivp

from refimpl.ad import Variable
from refimpl.arguments import NonFiniteError
from refimpl.ode.adaptive import (AdaptiveStepError, adaptive_solve, continuous_gradient, frozen_grid_gradient,
                                  full_discrete_gradient)
from refimpl.ode.embedded import EMBEDDED_PAIRS
from refimpl.ode.fields import LinearField, PolynomialField, QuadraticLoss, TanhField
from refimpl.ode.step_control import PI_HNW, PID_H312, Controller, ErrorNorm, InitialStep
from refimpl.testing.strategies_adaptive import adaptive_problems

EPS = np.finfo(float).eps


def _tanh_problem(d=2, seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    field = TanhField(d)
    theta = rng.normal(size=field.n_params) * scale
    return field, theta, rng.normal(size=d), QuadraticLoss(rng.normal(size=d))


@pytest.mark.parametrize("method, pair, q", [("RK45", "dormand_prince_54", 4), ("RK23", "bogacki_shampine_32", 2)])
@pytest.mark.parametrize("rtol", [1e-3, 1e-6, 1e-9])
def test_scipy_solve_ivp_is_reproduced(method, pair, q, rtol):
    # SciPy's RungeKutta._step_impl: I controller, safety 0.9, factors [0.2, 10], accept r < 1, no growth right after
    # a rejection, HNW initial step with the estimator order and the interval clip. The error estimate sum_i E_i k_i
    # cancels (by a factor kappa up to ~1e8), so its rounding — different summation order in SciPy — changes each r
    # by ~kappa*eps relative and each later h by as much; the grids agree to the accumulated sum_n kappa_n * eps.
    field, theta, x0, _ = _tanh_problem(3, seed=1)
    T = 3.0
    ref = solve_ivp(lambda t, x: field.f(x, theta), (0.0, T), x0, method=method, rtol=rtol, atol=rtol * 1e-2)
    ctl = Controller("scipy", accept="lt", hold_after_reject=True)
    sol = adaptive_solve(field, pair, x0, theta, T, rtol=rtol, atol=rtol * 1e-2, controller=ctl,
                         initial_step=InitialStep(order=q, clip_to_interval=True))
    assert sol.N + 1 == len(ref.t) and sol.nfev == ref.nfev
    drift = 4 * EPS * np.cumsum(sol.cancellation)
    assert np.all(np.abs(np.diff(ref.t) / sol.steps - 1) <= drift + 4 * EPS)
    assert np.max(np.abs(ref.y.T - sol.xs)) <= T * np.max(drift) + 1e-14


def test_nfev_accounting():
    field, theta, x0, _ = _tanh_problem()
    for name in EMBEDDED_PAIRS.names():
        pair = EMBEDDED_PAIRS.get(name)
        sol = adaptive_solve(field, pair, x0, theta, 2.0, rtol=1e-5, atol=1e-7)
        attempts = sol.N + sol.n_rejected
        # f(x0) and the starting step's f(x0 + h0 f0); s - 1 new stages per attempt; a non-FSAL pair evaluates
        # f(x_{n+1}) after each accepted step but the last
        expected = 2 + (pair.stages - 1) * attempts + (0 if pair.fsal else sol.N - 1)
        assert sol.nfev == expected, name


def test_grid_ends_exactly_at_T_and_records_rejections():
    field, theta, x0, loss = _tanh_problem(seed=4, scale=3.0)
    sol = adaptive_solve(field, "bogacki_shampine_32", x0, theta, 5.0, rtol=1e-4, atol=1e-6, h0=1.0, loss=loss)
    assert sol.grid[0] == 0.0 and sol.grid[-1] == 5.0 and np.all(np.diff(sol.grid) > 0)
    assert sol.n_rejected >= 1 and all(r.ratio > 1 for r in sol.rejected)
    assert np.all(sol.ratios <= 1)


def test_complex_run_follows_the_real_run():
    # with zero imaginary parts the complex carrier takes the same decisions; complex tanh/power round differently
    # from the real ones by ulps, amplified in r by the estimate's cancellation kappa (see the SciPy test)
    field, theta, x0, loss = _tanh_problem()
    a = adaptive_solve(field, "tsitouras_54", x0, theta, 2.0, rtol=1e-7, atol=1e-9, loss=loss)
    b = adaptive_solve(field, "tsitouras_54", x0 + 0j, theta + 0j, 2.0, rtol=1e-7, atol=1e-9, loss=loss)
    assert (a.N, a.n_rejected, a.nfev) == (b.N, b.n_rejected, b.nfev)
    drift = 4 * EPS * np.cumsum(a.cancellation)
    assert np.all(np.abs(b.steps / a.steps - 1) <= drift + 4 * EPS)
    assert np.max(np.abs(a.xs - b.xs)) <= 2.0 * np.max(drift) + 1e-14 and np.all(np.imag(b.xs) == 0)


def _complex_step(field, pair, x0, theta, T, loss, vx, vt, **options):
    h = 1e-30
    sol = adaptive_solve(field, pair, x0 + 1j * h * vx, theta + 1j * h * vt, T, loss=loss, **options)
    return float(np.imag(sol.loss)) / h, sol


@pytest.mark.parametrize("pair", EMBEDDED_PAIRS.names())
@pytest.mark.parametrize("controller", [None, PI_HNW, PID_H312])
def test_full_discrete_adjoint_equals_complex_step(pair, controller):
    # (b) is the derivative of the adaptive loss; complex step (h = 1e-30, no subtraction) is its directional
    # derivative up to rounding, valid because every decision is taken on real parts (the pattern cannot change)
    field, theta, x0, loss = _tanh_problem(seed=2)
    opts = dict(rtol=1e-6, atol=1e-8)
    if controller is not None:
        opts["controller"] = controller
    g = full_discrete_gradient(field, pair, x0, theta, 2.0, loss, **opts)
    rng = np.random.default_rng(5)
    vx, vt = rng.normal(size=2), rng.normal(size=theta.size)
    cs, sol = _complex_step(field, pair, x0, theta, 2.0, loss, vx, vt, **opts)
    # the same accept/reject pattern (the grids agree to the rounding amplification of the estimate, SciPy test)
    assert (sol.N, [r.step for r in sol.rejected]) == (g.solution.N, [r.step for r in g.solution.rejected])
    tape = g.grad_x0 @ vx + g.grad_theta @ vt
    scale = np.abs(g.grad_x0) @ np.abs(vx) + np.abs(g.grad_theta) @ np.abs(vt)
    assert abs(cs - tape) <= 1e-12 * scale


def test_gradient_variants_differ_and_converge():
    # (b) with every h detached is (a); (a) approaches (c) as rtol falls
    field, theta, x0, loss = _tanh_problem(seed=3)
    gaps = []
    for rtol in (1e-4, 1e-8):
        b = full_discrete_gradient(field, "dormand_prince_54", x0, theta, 2.0, loss, rtol=rtol, atol=rtol * 1e-2)
        a = frozen_grid_gradient(field, "dormand_prince_54", x0, theta, b.grid, loss)
        bh = full_discrete_gradient(field, "dormand_prince_54", x0, theta, 2.0, loss, rtol=rtol, atol=rtol * 1e-2,
                                    detach={"h"})
        # same fixed-step computation, the step sizes h_n vs grid differences (equal to rounding): 1e-13
        assert np.max(np.abs(bh.grad_theta - a.grad_theta)) <= 1e-13 * np.max(np.abs(a.grad_theta))
        assert a.loss == pytest.approx(b.loss, rel=4 * EPS)  # grid differences vs h_n: rounding
        gaps.append(np.max(np.abs(a.grad_theta - b.grad_theta)))
    c = continuous_gradient(field, x0, theta, 2.0, loss)
    # (b) - (a) is the controller's dependence on theta: present at every rtol (its decay is measured in the
    # validation experiment, it need not be monotone); (a) at rtol 1e-8 is within the discretisation error of (c)
    assert min(gaps) > 0
    assert np.max(np.abs(a.grad_theta - c.grad_theta)) < 1e-6 * np.max(np.abs(c.grad_theta))


def test_detached_starting_step_changes_only_the_starting_step_terms():
    field, theta, x0, loss = _tanh_problem(seed=6)
    full = full_discrete_gradient(field, "bogacki_shampine_32", x0, theta, 1.0, loss, rtol=1e-5, atol=1e-7)
    det = full_discrete_gradient(field, "bogacki_shampine_32", x0, theta, 1.0, loss, rtol=1e-5, atol=1e-7,
                                 detach={"h0"})
    fixed = full_discrete_gradient(field, "bogacki_shampine_32", x0, theta, 1.0, loss, rtol=1e-5, atol=1e-7,
                                   h0=float(full.solution.h0))
    # a constant h0 equal to the heuristic's value is exactly "h0 detached"
    assert np.array_equal(det.grad_theta, fixed.grad_theta) and np.array_equal(det.grid, full.grid)
    assert not np.array_equal(det.grad_theta, full.grad_theta)


def _frozen_loss_complex_step(field, pair, x0, theta, grid, loss, vx, vt):
    from refimpl.ode.adaptive import _frozen_tape_loss
    h = 1e-30
    val = _frozen_tape_loss(field, EMBEDDED_PAIRS.get(pair).tableau if isinstance(pair, str) else pair.tableau,
                            x0 + 1j * h * vx, theta.reshape(-1) + 1j * h * vt, list(np.diff(grid)), loss)
    return float(np.imag(val)) / h


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(adaptive_problems())
def test_property_tape_gradients_against_complex_step(problem):
    p = problem
    try:
        b = full_discrete_gradient(p.field, p.pair, p.x0, p.theta, p.T, p.loss, **p.options())
    except (AdaptiveStepError, NonFiniteError) as e:
        event(f"solver refused: {type(e).__name__}")
        return  # a drawn random pair may be unstable or too slow for the problem: that is reported, not tested
    # an error estimate that is rounding noise (kappa * eps ~ 1: e.g. theta = 0 makes x(t) linear in t and e = 0
    # identically) has no derivative: near such a theta the pattern follows |e(theta)|, a kink. Smooth pieces only.
    assume(np.max(b.solution.cancellation) * EPS <= 1e-4)
    # The error norm is not analytic (|x| in the scale, sqrt in the RMS): the complex step stays exact only while the
    # imaginary perturbation (1e-30 |v| times O(1) sensitivities) is negligible against every nonzero state entry.
    # A drawn x0 of 1e-218 makes the perturbation 1e188 times the value and the complex step meaningless there.
    xs = np.abs(np.asarray(b.solution.xs))
    assume(np.all((xs == 0) | (xs > 1e-12)))
    event("checked: " + ("named pair" if p.pair.name in EMBEDDED_PAIRS else "random pair"))
    rng = np.random.default_rng(0)
    vx, vt = rng.normal(size=p.x0.size), rng.normal(size=p.theta.size)
    cs, _ = _complex_step(p.field, p.pair, p.x0, p.theta, p.T, p.loss, vx, vt.reshape(p.theta.shape), **p.options())
    # 1e-12 of the size of the terms, plus the complex step's own O(eps^2) = 1e-60 truncation (seen when the gradient
    # is exactly 0, e.g. x0 = theta = y = 0), plus the rounding of the controller's share: both routes differentiate
    # the error estimate, whose rounding is amplified by its cancellation kappa (docs/theory/adaptive-steps.md §4), so
    # they may differ by ~kappa eps times the controller's part (b) - (a) of the derivative — the bound the oracle's
    # adaptive cases use (10 kappa eps share). Found by hypothesis: fehlberg_45 on a two-layer field, 4.3e-12 where
    # 1e-12 of the terms allowed 2.8e-12.
    a = frozen_grid_gradient(p.field, p.pair, p.x0, p.theta, b.grid, p.loss)
    scale = np.abs(b.grad_x0) @ np.abs(vx) + np.abs(b.grad_theta) @ np.abs(vt) + 1e-40
    share = np.abs(b.grad_x0 - a.grad_x0) @ np.abs(vx) + np.abs(b.grad_theta - a.grad_theta) @ np.abs(vt)
    kappa = float(np.max(b.solution.cancellation))
    assert abs(cs - (b.grad_x0 @ vx + b.grad_theta @ vt)) <= 1e-12 * scale + 10 * kappa * EPS * share
    cs_a = _frozen_loss_complex_step(p.field, p.pair, p.x0, p.theta, b.grid, p.loss, vx, vt)
    scale_a = np.abs(a.grad_x0) @ np.abs(vx) + np.abs(a.grad_theta) @ np.abs(vt) + 1e-40
    assert abs(cs_a - (a.grad_x0 @ vx + a.grad_theta @ vt)) <= 1e-12 * scale_a
    # the hand discrete adjoint on the frozen (non-uniform) grid, constant layout, == the tape: both evaluate the same
    # recursion in a different order, so they agree to a few ulps of the largest term (1e-13 relative)
    for route in ("numpy",) + (("numba",) if getattr(p.field, "kernel", None) is not None else ()):
        hand = frozen_grid_gradient(p.field, p.pair, p.x0, p.theta, b.grid, p.loss, route=route)
        for mine, ref in ((hand.grad_theta, a.grad_theta), (hand.grad_x0, a.grad_x0)):
            assert np.max(np.abs(mine - ref)) <= 1e-13 * max(np.max(np.abs(ref)), 1e-300) + 1e-300


# ---------------------------------------------------------------------------------------------------------------------
# bad input and failures


def test_bad_arguments_name_themselves():
    field, theta, x0, loss = _tanh_problem()
    ok = dict(rtol=1e-6, atol=1e-8)
    for kw, name in ((dict(rtol=0.0, atol=1e-8), "rtol"), (dict(rtol=1e-6, atol=-1.0), "atol"),
                     (dict(rtol=float("nan"), atol=1e-8), "rtol")):
        with pytest.raises(ValueError, match=name):
            adaptive_solve(field, "dormand_prince_54", x0, theta, 1.0, **kw)
    with pytest.raises(ValueError, match="detach"):
        adaptive_solve(field, "dormand_prince_54", x0, theta, 1.0, detach={"t"}, **ok)
    with pytest.raises(ValueError, match="theta"):
        adaptive_solve(field, "dormand_prince_54", x0, np.zeros((2, 6)), 1.0, **ok)
    with pytest.raises(ValueError, match="h0"):
        adaptive_solve(field, "dormand_prince_54", x0, theta, 1.0, h0=-0.1, **ok)
    with pytest.raises(ValueError, match="max_steps"):
        adaptive_solve(field, "dormand_prince_54", x0, theta, 1.0, max_steps=0, **ok)
    with pytest.raises(ValueError, match="T"):
        adaptive_solve(field, "dormand_prince_54", x0, theta, -1.0, **ok)
    with pytest.raises(ValueError, match="x0"):
        adaptive_solve(field, "dormand_prince_54", np.array([np.nan, 0.0]), theta, 1.0, **ok)
    with pytest.raises(ValueError, match="embedded pair"):
        adaptive_solve(field, "dopri", x0, theta, 1.0, **ok)
    with pytest.raises(TypeError, match="controller"):
        adaptive_solve(field, "dormand_prince_54", x0, theta, 1.0, controller="pi", **ok)


def test_max_steps_names_the_count_and_the_time():
    field, theta, x0, _ = _tanh_problem()
    with pytest.raises(AdaptiveStepError, match=r"max_steps = 5 step attempts used up \(\d+ accepted, \d+ rejected\) "
                                                r"at t = [0-9.e-]+ of T = 2"):
        adaptive_solve(field, "heun_euler_21", x0, theta, 2.0, rtol=1e-8, atol=1e-10, max_steps=5)


def test_step_size_underflow_names_the_step_and_time():
    field, theta, x0, _ = _tanh_problem()
    with pytest.raises(AdaptiveStepError, match=r"step-size underflow at attempt \d+ \(accepted step \d+\), t = "):
        adaptive_solve(field, "dormand_prince_54", x0, theta, 2.0, rtol=1e-8, atol=1e-10, min_step=0.5)


def test_non_finite_error_estimate_names_the_step_and_time():
    # x' = x^2 from x0 = 10 blows up at t = 0.1; a fixed first step h0 = 1 overflows the stages
    field = PolynomialField(1)
    theta = field.pack(c=[0.0], B=[[0.0]], q=[1.0]) if hasattr(field, "pack") else None
    if theta is None:
        pytest.skip("PolynomialField has no pack()")
    with pytest.raises(NonFiniteError, match=r"non-finite error estimate at attempt 1 \(accepted step 0\), t = 0"):
        adaptive_solve(field, "dormand_prince_54", np.array([1e80]), theta, 1.0, rtol=1e-6, atol=1e-8, h0=1.0)


# ---------------------------------------------------------------------------------------------------------------------
# library rules as options: overshoot-and-interpolate, reuse of the last stage, "h_next"


def _linear_output(x_prev, x_last, ks, h, s):
    return x_prev + s * (x_last - x_prev)


def test_overshoot_interpolates_at_T_and_its_gradient_is_exact():
    field, theta, x0, loss = _tanh_problem(seed=8)
    opts = dict(rtol=1e-5, atol=1e-7, end="overshoot", output=_linear_output)
    sol = adaptive_solve(field, "dormand_prince_54", x0, theta, 2.0, loss=loss, **opts)
    assert sol.grid[-2] < 2.0 <= sol.grid[-1]
    s = (2.0 - sol.grid[-2]) / (sol.grid[-1] - sol.grid[-2])
    assert np.array_equal(sol.x_end, sol.xs[-2] + s * (sol.xs[-1] - sol.xs[-2]))
    g = full_discrete_gradient(field, "dormand_prince_54", x0, theta, 2.0, loss, **opts)
    frozen = full_discrete_gradient(field, "dormand_prince_54", x0, theta, 2.0, loss, detach={"h"}, **opts)
    v = np.random.default_rng(1).normal(size=theta.size)
    cs, _ = _complex_step(field, "dormand_prince_54", x0, theta, 2.0, loss, np.zeros(2), v, **opts)
    # both routes differentiate r, known to a relative kappa*eps only (docs/theory/adaptive-steps.md §4): the
    # controller's share (b) - (a) of the derivative carries that relative error. Here the first step has r ~ 1e-5 and
    # kappa ~ 1e8, and with an interpolated output dL/dh is O(h), not O(local error): the share matters.
    share = abs((g.grad_theta - frozen.grad_theta) @ v)
    bound = 1e-12 * (np.abs(g.grad_theta) @ np.abs(v)) + 4 * EPS * np.max(g.solution.cancellation) * share
    assert abs(cs - g.grad_theta @ v) <= bound


def test_reuse_last_stage_always_saves_one_evaluation_per_step():
    field, theta, x0, _ = _tanh_problem()
    sol = adaptive_solve(field, "heun_euler_21", x0, theta, 1.0, rtol=1e-4, atol=1e-6, reuse_last_stage="always")
    assert sol.nfev == 2 + (2 - 1) * (sol.N + sol.n_rejected)


def test_h_next_keeps_the_starting_step_on_the_tape():
    field, theta, x0, loss = _tanh_problem(seed=9)
    opts = dict(rtol=1e-4, atol=1e-6)
    nxt = full_discrete_gradient(field, "bogacki_shampine_32", x0, theta, 1.0, loss, detach={"h_next"}, **opts)
    allh = full_discrete_gradient(field, "bogacki_shampine_32", x0, theta, 1.0, loss, detach={"h"}, **opts)
    assert np.array_equal(nxt.grid, allh.grid) and not np.array_equal(nxt.grad_theta, allh.grad_theta)
    fixed = full_discrete_gradient(field, "bogacki_shampine_32", x0, theta, 1.0, loss, detach={"h_next"},
                                   h0=float(allh.solution.h0), **opts)
    assert np.array_equal(fixed.grad_theta, allh.grad_theta)
