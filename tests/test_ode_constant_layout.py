"""The constant parameter layout (one θ for every evaluation of every step): samples, hand adjoint (NumPy and Numba)
against the tape and against complex step for every built-in scheme, against the stage layout filled with the same θ
(a second route: the constant gradient is the sum of the stage-layout rows), in exact arithmetic, and the corrections
that apply to it.

Tolerances. Hand vs tape: the same sums of products accumulated in a different order (here all N·s contributions go
into one row); a few ulps times the number of terms (N·s ≤ 7·4 here) times an O(1) conditioning on these short
horizons, ≲ 1e-14 relative — the required 1e-13 holds with margin. Complex step has no subtraction, so the same
argument applies (1e-12 as in tests/test_ode_discrete_adjoint.py). Norm-wise errors max|a − b| / max|b|.
"""
import zlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings

from refimpl.ad import grad
from refimpl.ad.checks import complex_step_gradient
from refimpl.ode.adjoint_ode import continuous_adjoint
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.corrections import (applicable_estimates, erk_corrected_gradient, leapfrog_corrected_gradient,
                                     normalised_gradient, per_step_gradient, time_average_gradient)
from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField
from refimpl.ode.integrators import discrete_loss, integrate
from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.samples import LAYOUTS, parameter_samples
from refimpl.ode.schemes import LEAPFROG, RK4, SCHEMES
from refimpl.ode.tableau import ButcherTableau
from refimpl.testing.strategies_ode import ode_problems

TAPE_RTOL = 1e-13
CS_RTOL = 1e-12

#: every built-in scheme: each ERK alone, each LMM with both of its starters
BUILT_IN = [(m, None) for _, m in SCHEMES.items() if isinstance(m, ButcherTableau)] + \
           [(m, s) for _, m in SCHEMES.items() if isinstance(m, LinearMultistep) for s in ("forward_euler", "matched")]
IDS = [f"{m.name}-{s}" if s else m.name for m, s in BUILT_IN]


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def _problem(method, starter, field, N=7, T=1.3):
    rng = np.random.default_rng(zlib.crc32(f"{method.name}-{starter}-{field!r}".encode()))
    theta = 0.6 * rng.standard_normal((1, field.n_params))
    return rng.standard_normal(field.dim), theta, QuadraticLoss(rng.standard_normal(field.dim)), T, N


def test_layouts_include_constant():
    assert LAYOUTS == ("stage", "step", "constant")


@pytest.mark.parametrize("method,starter", BUILT_IN, ids=IDS)
def test_constant_samples_structure(method, starter):
    """One row; every stage uses it; F_m uses it exactly where the stage layout uses some row; weight = the total
    (independently: the sum of the stage layout's exact weights, which counts every use once)."""
    N = 9
    c = parameter_samples(method, 1.0, N, "constant", starter)
    st = parameter_samples(method, 1.0, N, "stage", starter)
    assert c.n_samples == 1 and c.times.tolist() == [0.0] and c.offsets == (0,)
    assert c.stage_index.shape == st.stage_index.shape and not c.stage_index.any()
    if c.grid_index is None:
        assert st.grid_index is None
    else:
        assert np.array_equal(c.grid_index, np.where(st.grid_index >= 0, 0, -1))
    assert c.exact_weights == (sum(st.exact_weights),)
    if isinstance(method, ButcherTableau):
        assert c.exact_weights == (N,)                                   # N·Σb = N
    else:
        k = method.steps
        assert c.exact_weights == ((k - 1) + (N - k + 1) * sum(Fraction(b) for b in method.beta),)


@pytest.mark.parametrize("method,starter", BUILT_IN, ids=IDS)
@pytest.mark.parametrize("field", [TanhField(3), LinearField(2)], ids=["tanh", "linear"])
def test_constant_hand_adjoint_equals_tape_and_complex_step(method, starter, field):
    x0, theta, loss, T, N = _problem(method, starter, field)
    kw = dict(layout="constant", starter=starter)

    def L(th, x):
        return discrete_loss(field, method, x, th, T, N, loss, **kw)

    g_tape, gx_tape = grad(L, 0)(theta, x0), grad(L, 1)(theta, x0)
    g_cs = complex_step_gradient(lambda th: discrete_loss(field, method, x0.astype(complex), th, T, N, loss, **kw),
                                 theta)
    for backend in ("numpy", "numba"):
        adj = discrete_adjoint(field, method, x0, theta, T, N, loss, backend=backend, **kw)
        assert adj.backend == backend and adj.grad_theta.shape == (1, field.n_params)
        assert rel_err(adj.grad_theta, g_tape) <= TAPE_RTOL, (backend, rel_err(adj.grad_theta, g_tape))
        assert rel_err(adj.grad_x0, gx_tape) <= TAPE_RTOL
        assert rel_err(adj.grad_theta, g_cs) <= CS_RTOL, (backend, rel_err(adj.grad_theta, g_cs))


@pytest.mark.parametrize("method,starter", BUILT_IN, ids=IDS)
def test_constant_gradient_is_the_sum_of_the_stage_rows_exactly(method, starter):
    """Second route, exact arithmetic (rational coefficients, linear field, Fraction θ and x0): filling every row
    of the stage layout with the same θ gives the same trajectory, and each row's gradient is the sum of the
    contributions of the evaluations that use it; so the constant gradient is the sum of all rows — equality, no
    tolerance. Also the same for the step layout."""
    field = LinearField(2)
    rng = np.random.default_rng(zlib.crc32(method.name.encode()))
    theta1 = np.array([[Fraction(int(v), 8) for v in rng.integers(-4, 5, field.n_params)]], dtype=object)
    x0 = np.array([Fraction(1, 3), Fraction(-1, 2)], dtype=object)
    loss = QuadraticLoss(np.array([Fraction(1, 5), Fraction(2, 7)], dtype=object))
    T, N = Fraction(1, 2), 5
    const = discrete_adjoint(field, method, x0, theta1, T, N, loss, layout="constant", starter=starter,
                             backend="numpy")
    for layout in ("stage", "step"):
        smp = parameter_samples(method, T, N, layout, starter)
        table = np.repeat(theta1, smp.n_samples, axis=0)
        full = discrete_adjoint(field, method, x0, table, T, N, loss, layout=layout, starter=starter,
                                backend="numpy")
        assert full.loss == const.loss
        assert list(full.grad_theta.sum(axis=0)) == list(const.grad_theta[0])
        assert list(full.grad_x0) == list(const.grad_x0)


@pytest.mark.parametrize("method,starter", BUILT_IN, ids=IDS)
def test_constant_gradient_float_sum_of_stage_rows(method, starter):
    """The same identity in float64 on the Numba path: the trajectories are bit-identical (same θ values), so the
    rows and the constant gradient sum bit-identical contributions in different groupings; reassociating M = N·s + N
    terms changes the sum by at most M·eps·Σ|terms| (≈ 1e-14 here relative to Σ_r|G_r|, with an O(1) factor since
    the contributions of neighbouring evaluations do not cancel on these short horizons); 1e-13 holds with margin."""
    field = TanhField(3)
    x0, theta1, loss, T, N = _problem(method, starter, field)
    const = discrete_adjoint(field, method, x0, theta1, T, N, loss, layout="constant", starter=starter,
                             backend="numba")
    smp = parameter_samples(method, T, N, "stage", starter)
    full = discrete_adjoint(field, method, x0, np.repeat(theta1, smp.n_samples, axis=0), T, N, loss,
                            starter=starter, backend="numba")
    assert np.array_equal(full.trajectory, const.trajectory)
    assert np.array_equal(full.lambdas[-1], const.lambdas[-1])
    scale = np.max(np.abs(full.grad_theta).sum(axis=0))
    assert np.max(np.abs(full.grad_theta.sum(axis=0) - const.grad_theta[0])) <= TAPE_RTOL * scale


@settings(max_examples=40, deadline=None)
@given(ode_problems(layouts=("constant",), N=(1, 8)))
def test_constant_hand_adjoint_equals_tape_property(p):
    """Random tableaux, random multistep methods with starters, random fields: hand == tape (both backends)."""
    def L(th, x):
        return discrete_loss(p.field, p.method, x, th, p.T, p.N, p.loss, **p.kwargs())

    g, gx = grad(L, 0)(p.theta, p.x0), grad(L, 1)(p.theta, p.x0)
    for backend in ("numpy", "numba") if p.field.kernel is not None else ("numpy",):
        adj = discrete_adjoint(p.field, p.method, p.x0, p.theta, p.T, p.N, p.loss, backend=backend, **p.kwargs())
        assert adj.grad_theta.shape == (1, p.field.n_params)
        assert np.max(np.abs(adj.grad_theta - g)) <= TAPE_RTOL * max(np.max(np.abs(g)), 1e-300)
        assert np.max(np.abs(adj.grad_x0 - gx)) <= TAPE_RTOL * max(np.max(np.abs(gx)), 1e-300)


def test_constant_layout_integrates_like_a_filled_stage_table():
    """integrate: bit-identical states (the same operations on the same values)."""
    field = TanhField(3)
    x0, theta1, _, T, N = _problem(RK4, None, field)
    a = integrate(field, RK4, x0, theta1, T, N, layout="constant").x
    smp = parameter_samples(RK4, T, N, "stage")
    assert np.array_equal(a, integrate(field, RK4, x0, np.repeat(theta1, smp.n_samples, 0), T, N).x)
    with pytest.raises(ValueError, match=r"theta must have shape \(1, 12\).*layout 'constant'"):
        integrate(field, RK4, x0, np.repeat(theta1, 2, 0), T, N, layout="constant")


# ------------------------------------------------------------------------------------------------- corrections
def test_constant_layout_time_average_converges_to_the_continuous_average():
    """G/T → (1/T)∫δL/δθ dt = (dL/dθ)/T for a constant θ (corrections module docstring). Reference: the continuous
    adjoint's integrated gradient (DOP853, rtol 1e-12; its own error estimate is far below the differences here). RK4
    is fourth order: the error must drop by ≈ 16 per halving of h (asserted > 10, i.e. order > 3.3)."""
    field = TanhField(2)
    rng = np.random.default_rng(3)
    theta1, x0, loss = 0.5 * rng.standard_normal((1, field.n_params)), rng.standard_normal(2), QuadraticLoss(
        rng.standard_normal(2))
    ref = continuous_adjoint(field, theta1[0], x0, 1.0, loss)
    avg = ref.integrated_gradient / 1.0
    errs = []
    for N in (8, 16, 32):
        adj = discrete_adjoint(field, RK4, x0, theta1, 1.0, N, loss, layout="constant")
        smp = adj.samples
        est = applicable_estimates(adj.grad_theta, smp)
        assert set(est) == {"normalised", "time_average"}
        # ERK: h·w_0 = h·N = T, so the normalised gradient is the time average (to rounding of h·N)
        assert np.allclose(est["normalised"].values, est["time_average"].values, rtol=1e-15, atol=0)
        assert np.array_equal(adj.normalised_gradient(), normalised_gradient(adj.grad_theta, smp).values)
        errs.append(np.max(np.abs(est["time_average"].values[0] - avg)))
    assert errs[0] / errs[1] > 10 and errs[1] / errs[2] > 10, errs


def test_constant_layout_leapfrog_normalised_is_half_the_average():
    """Leapfrog: w_0 = 1 + 2(N − 1) (starter + σ(1) = 2 per step) while dx_N/dθ = T on ẋ = θ, so G/(h w_0) ≈ ½·G/T —
    the documented reason for time_average_gradient."""
    field = TanhField(2)
    rng = np.random.default_rng(5)
    theta1, x0, loss = 0.5 * rng.standard_normal((1, field.n_params)), rng.standard_normal(2), QuadraticLoss(
        rng.standard_normal(2))
    N = 64
    adj = discrete_adjoint(field, LEAPFROG, x0, theta1, 1.0, N, loss, layout="constant", starter="forward_euler")
    assert adj.samples.exact_weights == (2 * N - 1,)
    ratio = normalised_gradient(adj.grad_theta, adj.samples).values / time_average_gradient(adj.grad_theta,
                                                                                            adj.samples).values
    assert np.allclose(ratio, N / (2 * N - 1), rtol=1e-14)


def test_corrections_that_do_not_apply_to_the_constant_layout_say_so():
    smp = parameter_samples(RK4, 1.0, 8, "constant")
    G = np.ones((1, 6))
    for fn in (per_step_gradient, erk_corrected_gradient):
        with pytest.raises(ValueError, match="samples: .*constant layout"):
            fn(G, smp)
    lf = parameter_samples(LEAPFROG, 1.0, 8, "constant", "forward_euler")
    with pytest.raises(ValueError, match="samples: the leapfrog correction does not apply to the constant layout"):
        leapfrog_corrected_gradient(G, lf)
    with pytest.raises(ValueError, match="samples: the time average G/T is for the constant layout"):
        time_average_gradient(np.ones((17, 6)), parameter_samples(RK4, 1.0, 8, "stage"))
