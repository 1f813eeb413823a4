"""The generic integrators: convergence orders, parameter sample layouts and weights, array/tape/complex paths, and
bad input.

Independent routes: exact solutions (``scipy.linalg.expm`` for x' = Ax; a manufactured solution x*(t) for the forced
system x' = Ax + θ(t), θ = x*' − Ax*, which also checks that every sample is evaluated at its reported time); for the
stage weights, the closed form x_N − x_0 = h Σ_r w_r θ_r of the integrator on x' = θ(t).
"""
from fractions import Fraction

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ad import Variable, grad, ops
from refimpl.ode.fields import LinearForcingField, PolynomialField, QuadraticLoss, ScaledLinearField, TanhField
from refimpl.ode.integrators import discrete_loss, integrate
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import (AB2, AB3, AB4, FORWARD_EULER, HEUN, LEAPFROG, MIDPOINT, MULTISTEP_METHODS, RK4,
                                 TABLEAUX)
from refimpl.ode.tableau import ButcherTableau
from refimpl.testing.strategies_ode import explicit_tableaux, ode_problems

A_SYS = np.array([[-0.5, 2.0], [-2.0, -0.5]])   # decaying rotation: eigenvalues -0.5 ± 2i
X0 = np.array([1.0, 0.5])
T_END = 1.0
NS = (32, 64, 128)

ALL_SCHEMES = [(m, None) for m in TABLEAUX.values()] + [(m, "matched") for m in MULTISTEP_METHODS.values()]
IDS = [m.name for m, _ in ALL_SCHEMES]


def observed_orders(errors):
    e = np.asarray(errors)
    return np.log2(e[:-1] / e[1:])


def x_star(t):
    return np.array([np.sin(2 * t) + 1, np.cos(3 * t)])


def dx_star(t):
    return np.array([2 * np.cos(2 * t), -3 * np.sin(3 * t)])


# --------------------------------------------------------------------------------------------- convergence orders
@pytest.mark.parametrize("method,starter", ALL_SCHEMES, ids=IDS)
def test_order_on_linear_system(method, starter):
    """x' = θ A x with θ ≡ 1, exact x(T) = expm(TA) x0. Observed order over N = 32, 64, 128 (the last pair is the most
    asymptotic) within 0.1 of the theoretical order; LMMs use a starter of their own order."""
    field = ScaledLinearField(A_SYS)
    exact = scipy.linalg.expm(T_END * A_SYS) @ X0
    errors = []
    for N in NS:
        smp = parameter_samples(method, T_END, N, "stage", starter)
        x = integrate(field, method, X0, np.ones((smp.n_samples, 1)), T_END, N, starter=starter).x
        errors.append(np.max(np.abs(x[-1] - exact)))
    assert min(errors) > 1e-12  # errors far above rounding, so the rates are truncation rates
    assert abs(observed_orders(errors)[-1] - method.order) <= 0.1, (errors, observed_orders(errors))


@pytest.mark.parametrize("method,starter", ALL_SCHEMES, ids=IDS)
def test_order_with_time_dependent_parameter_at_stage_times(method, starter):
    """x' = Ax + θ(t) with θ(t) = x*'(t) − A x*(t) sampled at ``samples.times``: the full order survives only if every
    sample sits at the time the scheme evaluates it."""
    field = LinearForcingField(A_SYS)
    errors = []
    for N in NS:
        smp = parameter_samples(method, T_END, N, "stage", starter)
        theta = np.array([dx_star(t) - A_SYS @ x_star(t) for t in smp.times])
        x = integrate(field, method, x_star(0.0), theta, T_END, N, starter=starter).x
        errors.append(np.max(np.abs(x[-1] - x_star(T_END))))
    assert abs(observed_orders(errors)[-1] - method.order) <= 0.1, (errors, observed_orders(errors))


@pytest.mark.parametrize("method", [m for m in TABLEAUX.values() if m.order >= 2], ids=lambda m: m.name)
def test_one_theta_per_step_is_first_order(method):
    """Piecewise-constant θ_n = θ(t_n) on [t_n, t_{n+1}) (ResNet view) is an O(h) perturbation of θ(t): order 1."""
    field = LinearForcingField(A_SYS)
    errors = []
    for N in NS:
        smp = parameter_samples(method, T_END, N, "step")
        theta = np.array([dx_star(t) - A_SYS @ x_star(t) for t in smp.times])
        x = integrate(field, method, x_star(0.0), theta, T_END, N, layout="step").x
        errors.append(np.max(np.abs(x[-1] - x_star(T_END))))
    assert abs(observed_orders(errors)[-1] - 1.0) <= 0.1


# ------------------------------------------------------------------------------------------- samples and weights
def test_sample_times_of_named_schemes():
    N, T = 4, 2.0
    h = T / N
    t = lambda *offs: np.array(offs) * h  # noqa: E731
    assert np.array_equal(parameter_samples(FORWARD_EULER, T, N).times, t(0, 1, 2, 3))
    assert np.array_equal(parameter_samples(HEUN, T, N).times, t(0, 1, 2, 3, 4))
    assert np.array_equal(parameter_samples(MIDPOINT, T, N).times, t(0, .5, 1, 1.5, 2, 2.5, 3, 3.5))
    assert np.array_equal(parameter_samples(RK4, T, N).times, t(*np.arange(9) / 2))
    assert np.array_equal(parameter_samples(LEAPFROG, T, N, starter="forward_euler").times, t(0, 1, 2, 3))
    assert np.array_equal(parameter_samples(RK4, T, N, "step").times, t(0, 1, 2, 3))
    # RK4's two middle stages share the sample at t_{n+1/2}; its last stage shares t_{n+1} with the next step
    si = parameter_samples(RK4, T, N).stage_index
    assert np.array_equal(si[1], [2, 3, 3, 4])


def test_stage_weights_of_named_schemes():
    """The stage weights (docs/theory/discrete-adjoint.md): FE 1; Heun 1 (1/2 at the ends); RK4 1/3 at grid times, 2/3
    at half steps; midpoint 0 on stage 1; leapfrog 2 (1 for θ_0, used only by the forward-Euler starter); AB2 σ(1) = 1
    in the interior."""
    N = 6
    F = Fraction
    assert parameter_samples(FORWARD_EULER, 1, N).exact_weights == (1,) * N
    assert parameter_samples(HEUN, 1, N).exact_weights == (F(1, 2),) + (1,) * (N - 1) + (F(1, 2),)
    w = parameter_samples(RK4, 1, N).exact_weights
    assert w[0] == w[-1] == F(1, 6) and set(w[2:-2:2]) == {F(1, 3)} and set(w[1::2]) == {F(2, 3)}
    assert parameter_samples(MIDPOINT, 1, N).exact_weights == (0, 1) * N
    assert parameter_samples(LEAPFROG, 1, N, starter="forward_euler").exact_weights == (1,) + (2,) * (N - 1)
    w = parameter_samples(AB2, 1, N, starter="forward_euler").exact_weights
    assert w[0] == 1 - F(1, 2) and set(w[1:-1]) == {1} and w[-1] == F(3, 2)


ADAMS_OR_RK = st.one_of(st.sampled_from(list(TABLEAUX.values()) + [AB2, AB3, AB4]), explicit_tableaux())


@settings(max_examples=30, deadline=None)
@given(ode_problems(methods=ADAMS_OR_RK, N=(1, 6)))
def test_weights_are_the_integrator_sensitivities_for_adams_and_rk(problem):
    """On x' = θ(t) (A = 0), an ERK or an Adams method (α = (0, …, 0, −1, 1)) gives x_N − x_0 = h Σ_r w_r θ_r, so the
    integrator must reproduce that sum up to float rounding (≈ 1e-15·N·s; tolerance 1e-12)."""
    m, d = problem.method, problem.field.dim
    field = LinearForcingField(np.zeros((d, d)))
    smp = parameter_samples(m, problem.T, problem.N, problem.layout, problem.starter)
    theta = problem.theta[:, :d]  # every built-in field has n_params >= dim
    x = integrate(field, m, problem.x0, theta, problem.T, problem.N, **problem.kwargs()).x
    h = problem.T / problem.N
    assert np.allclose(x[-1] - x[0], h * smp.weights @ theta, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------- array / tape / complex
@pytest.mark.parametrize("method,starter", [(RK4, None), (AB3, "matched"), (LEAPFROG, "forward_euler")],
                         ids=["rk4", "ab3", "leapfrog"])
def test_tape_and_complex_paths_run_the_same_code(method, starter):
    rng = np.random.default_rng(0)
    field = TanhField(2)
    smp = parameter_samples(method, 1.0, 5, "stage", starter)
    theta = rng.normal(size=(smp.n_samples, field.n_params))
    x_np = integrate(field, method, X0, theta, 1.0, 5, starter=starter).x
    seen = {}

    def through_tape(th):
        tr = integrate(field, method, X0, th, 1.0, 5, starter=starter)
        assert isinstance(tr.x, Variable)
        seen["x"] = np.array(tr.x.value)
        return ops.sum(tr.final)

    grad(through_tape)(theta)
    assert np.array_equal(seen["x"], x_np)                        # same operations, same rounding: bit-identical
    x_c = integrate(field, method, X0.astype(complex), theta.astype(complex), 1.0, 5, starter=starter).x
    # complex tanh / complex matmul round differently from their real versions: agreement to a few ulps only
    assert x_c.dtype == np.complex128 and not np.any(x_c.imag)
    assert np.max(np.abs(x_c.real - x_np)) <= 1e-14 * np.max(np.abs(x_np))


def test_discrete_loss_matches_trajectory():
    rng = np.random.default_rng(1)
    field, loss = TanhField(2), QuadraticLoss(np.array([0.2, -0.1]))
    smp = parameter_samples(HEUN, 1.0, 4)
    theta = rng.normal(size=(smp.n_samples, 6))
    x = integrate(field, HEUN, X0, theta, 1.0, 4).x
    assert discrete_loss(field, HEUN, X0, theta, 1.0, 4, loss) == 0.5 * np.sum((x[-1] - loss.y) ** 2)


def test_deterministic():
    rng = np.random.default_rng(2)
    smp = parameter_samples(AB4, 1.0, 9, starter="matched")
    theta = rng.normal(size=(smp.n_samples, 6))
    a = integrate(TanhField(2), AB4, X0, theta, 1.0, 9, starter="matched").x
    b = integrate(TanhField(2), AB4, X0, theta.copy(), 1.0, 9, starter="matched").x
    assert np.array_equal(a, b)


# ------------------------------------------------------------------------------------------------------ bad input
def _good():
    field = TanhField(2)
    smp = parameter_samples(RK4, 1.0, 4)
    return field, np.zeros((smp.n_samples, field.n_params))


@pytest.mark.parametrize("change,exc,match", [
    (dict(x0=np.array([np.nan, 0.0])), ValueError, "x0"),
    (dict(x0=np.array([1.0, np.inf])), ValueError, "x0"),
    (dict(x0=np.zeros(3)), ValueError, "x0"),
    (dict(x0=np.zeros(2, dtype=np.float32)), TypeError, "x0"),
    (dict(theta="nan"), ValueError, "theta"),
    (dict(theta="wrong_rows"), ValueError, "theta.*layout 'stage'"),
    (dict(theta="step_layout_shape"), ValueError, "theta"),
    (dict(T=0.0), ValueError, "T"),
    (dict(T=-1.0), ValueError, "T"),
    (dict(T=float("inf")), ValueError, "T"),
    (dict(T="1"), TypeError, "T"),
    (dict(N=0), ValueError, "N"),
    (dict(N=2.0), TypeError, "N"),
    (dict(layout="per_stage"), ValueError, "layout"),
    (dict(method="rk4"), TypeError, "method"),
    (dict(starter="matched"), ValueError, "starter"),
    (dict(field=object()), TypeError, "field"),
])
def test_integrate_rejects_bad_input(change, exc, match):
    field, theta = _good()
    args = dict(field=field, method=RK4, x0=X0, theta=theta, T=1.0, N=4, layout="stage", starter=None)
    if change.get("theta") == "nan":
        theta = theta.copy()
        theta[3, 1] = np.nan
        change = dict(theta=theta)
    elif change.get("theta") == "wrong_rows":
        change = dict(theta=theta[:-1])
    elif change.get("theta") == "step_layout_shape":
        change = dict(theta=np.zeros((4, field.n_params)))   # one per step, but layout is "stage"
    args.update(change)
    with pytest.raises(exc, match=match):
        integrate(args.pop("field"), args.pop("method"), args.pop("x0"), args.pop("theta"), args.pop("T"),
                  args.pop("N"), **args)


def test_multistep_bad_input():
    field = TanhField(2)
    smp = parameter_samples(AB3, 1.0, 3, starter="matched")
    theta = np.zeros((smp.n_samples, field.n_params))
    with pytest.raises(ValueError, match="N = 2"):
        integrate(field, AB3, X0, theta, 1.0, 2, starter="matched")      # fewer steps than the method needs
    with pytest.raises(ValueError, match="starter"):
        integrate(field, AB3, X0, theta, 1.0, 3)                          # the starter is part of the problem
    integrate(field, AB3, X0, theta, 1.0, 3, starter="matched")           # N = k is enough


def test_non_explicit_tableau_is_refused_at_construction():
    with pytest.raises(ValueError, match="A: tableau 'implicit_midpoint' is not explicit"):
        ButcherTableau("implicit_midpoint", ((Fraction(1, 2),),), (1,))


def test_exact_mode_input_rules():
    field = PolynomialField(1)
    smp = parameter_samples(HEUN, 1, 2)
    theta = np.array([[Fraction(1, 2)] * 3] * smp.n_samples, dtype=object)
    x0 = np.array([Fraction(1)], dtype=object)
    with pytest.raises(TypeError, match="x0 and theta"):
        integrate(field, HEUN, np.array([1.0]), theta, 1, 2)             # mixing exact and float
    float_heun = ButcherTableau("float_heun", ((0, 0), (1.0, 0)), (0.5, 0.5))
    with pytest.raises(ValueError, match="method: exact mode"):
        integrate(field, float_heun, x0, theta, 1, 2)
    bad = theta.copy()
    bad[0, 0] = 0.5
    with pytest.raises(TypeError, match="theta is an object array"):
        integrate(field, HEUN, x0, bad, 1, 2)
