"""Non-uniform grids for explicit Runge–Kutta methods (``grid=``): validation, sample times and sharing, the uniform
grid given explicitly, and the hand adjoint (NumPy and Numba, per-step h_n) against the tape and complex step.

Tolerances as in tests/test_ode_discrete_adjoint.py: hand vs tape 1e-13 (the same sums of products in another
order; ≲ 1e-14 on these short horizons), complex step 1e-12; norm-wise errors max|a − b| / max|b|.
"""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ad import grad
from refimpl.ad.checks import complex_step_gradient
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.corrections import applicable_estimates, normalised_gradient, per_step_gradient
from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField
from refimpl.ode.integrators import discrete_loss, integrate
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import AB2, FORWARD_EULER, HEUN, LEAPFROG, MIDPOINT, RK4, TABLEAUX
from refimpl.ode.tableau import ButcherTableau
from refimpl.testing.strategies_ode import explicit_tableaux, ode_problems

TAPE_RTOL = 1e-13
CS_RTOL = 1e-12


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def random_grid(rng, T, N):
    w = rng.uniform(1.0, 4.0, N)
    g = np.concatenate([[0.0], np.cumsum(w) / w.sum() * T])
    g[-1] = T
    return g


ERK = [m for m in TABLEAUX.values()]


# ------------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("bad, match", [
    (np.array([0.0, 0.5, 0.4, 1.0]), r"grid must be strictly increasing; grid\[2\] = 0.4 <= grid\[1\] = 0.5"),
    (np.array([0.0, 0.5, 0.5, 1.0]), r"grid must be strictly increasing"),
    (np.array([0.0, 0.5, 1.0]), r"grid must be a 1-D array of N \+ 1 = 4 times, got shape \(3,\)"),
    (np.zeros((4, 1)), r"grid must be a 1-D array of N \+ 1 = 4 times"),
    (np.array([0.1, 0.5, 0.7, 1.0]), r"grid\[0\] must be 0, got 0.1"),
    (np.array([0.0, 0.5, 0.7, 0.9]), r"grid\[-1\] must equal T = 1.0, got 0.9"),
    (np.array([0.0, np.nan, 0.7, 1.0]), r"grid contains NaN or inf \(first at index 1\)"),
    (np.array([0.0, 0.5, np.inf, 1.0]), r"grid contains NaN or inf \(first at index 2\)"),
])
def test_bad_grids_are_value_errors_naming_grid(bad, match):
    field = TanhField(2)
    theta = np.zeros((7, field.n_params))
    loss = QuadraticLoss(np.zeros(2))
    with pytest.raises(ValueError, match=match):
        parameter_samples(RK4, 1.0, 3, grid=bad)
    with pytest.raises(ValueError, match=match):
        integrate(field, RK4, np.zeros(2), theta, 1.0, 3, grid=bad)
    for backend in ("numpy", "numba"):
        with pytest.raises(ValueError, match=match):
            discrete_adjoint(field, RK4, np.zeros(2), theta, 1.0, 3, loss, grid=bad, backend=backend)


def test_grid_with_a_multistep_method_is_a_value_error_naming_grid():
    field = TanhField(2)
    with pytest.raises(ValueError, match=r"^grid: a non-uniform grid is supported for explicit Runge-Kutta methods"):
        parameter_samples(LEAPFROG, 1.0, 3, starter="forward_euler", grid=np.array([0, 0.2, 0.5, 1.0]))
    theta = np.zeros((3, field.n_params))
    with pytest.raises(ValueError, match=r"^grid: "):
        discrete_adjoint(field, AB2, np.zeros(2), theta, 1.0, 3, QuadraticLoss(np.zeros(2)), starter="matched",
                         grid=np.array([0, 0.2, 0.5, 1.0]))


def test_grid_types():
    with pytest.raises(TypeError, match="grid has dtype float32"):
        parameter_samples(RK4, 1.0, 2, grid=np.array([0, 0.5, 1], dtype=np.float32))
    with pytest.raises(TypeError, match="grid must be a 1-D NumPy array"):
        parameter_samples(RK4, 1.0, 2, grid="0 0.5 1")
    with pytest.raises(TypeError, match="grid is an object array .* entry 1 is 0.5"):
        parameter_samples(RK4, 1.0, 2, grid=np.array([0, 0.5, 1], dtype=object))
    # a list is accepted; integers are converted exactly; an exact grid must match an exact T exactly
    assert parameter_samples(RK4, 2.0, 2, grid=[0, 1, 2]).grid.dtype == np.float64
    g = np.array([Fraction(0), Fraction(1, 3), Fraction(1)], dtype=object)
    assert parameter_samples(RK4, 1, 2, grid=g).steps.tolist() == [Fraction(1, 3), Fraction(2, 3)]
    with pytest.raises(ValueError, match=r"grid\[-1\] must equal T = 1/3"):
        parameter_samples(RK4, Fraction(1, 3), 2, grid=g)
    # an exact grid needs exact mode
    field = LinearField(1)
    with pytest.raises(TypeError, match="grid: an exact"):
        integrate(field, RK4, np.zeros(1), np.zeros((5, 2)), 1, 2, grid=g)


# ---------------------------------------------------------------------------------------------- samples and times
def test_stage_times_on_a_grid():
    """t_n + c_i h_n; RK4's c = 1 stage of step n and c = 0 of step n + 1 are the grid time t_{n+1} (one sample);
    stage weights as on the uniform grid; step weights Σ h_n b_i (computed independently in Fractions)."""
    rng = np.random.default_rng(1)
    N, T = 6, 1.7
    g = random_grid(rng, T, N)
    smp = parameter_samples(RK4, T, N, grid=g)
    uni = parameter_samples(RK4, T, N)
    assert smp.n_samples == 2 * N + 1
    assert np.array_equal(smp.stage_index, uni.stage_index) and np.array_equal(smp.weights, uni.weights)
    expect = sorted({float(Fraction(g[n]) + Fraction(c) * (Fraction(g[n + 1]) - Fraction(g[n])))
                     for n in range(N) for c in RK4.c})
    assert np.allclose(smp.times, expect, rtol=0, atol=1e-16 * T)
    assert np.array_equal(smp.times[::2], g)                               # grid times exactly
    hw = [Fraction(0)] * smp.n_samples
    for n in range(N):
        for i, r in enumerate(smp.stage_index[n]):
            hw[r] += (Fraction(g[n + 1]) - Fraction(g[n])) * RK4.b[i]
    assert np.allclose(smp.step_weights, [float(v) for v in hw], rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="non-uniform grid have no single step size h"):
        smp.h
    assert np.array_equal(smp.steps, np.diff(g))
    # step and constant layouts: times are the left ends / 0
    assert np.array_equal(parameter_samples(RK4, T, N, "step", grid=g).times, g[:-1])
    assert parameter_samples(RK4, T, N, "constant", grid=g).times.tolist() == [0.0]


def test_sharing_only_when_stage_times_are_exactly_equal():
    """A node outside [0, 1] (c = 3/2): on the uniform grid t_n + (3/2)h = t_{n+1} + (1/2)h is shared with the c = 1/2
    node of step n + 1; on a non-uniform grid only where h_n = h_{n+1} exactly (dyadic steps: exact sums)."""
    tab = ButcherTableau("overshoot", ((0, 0, 0), (Fraction(3, 2), 0, 0), (Fraction(1, 4), Fraction(1, 4), 0)),
                         (Fraction(1, 2), Fraction(1, 6), Fraction(1, 3)))
    assert tab.c == (0, Fraction(3, 2), Fraction(1, 2))
    N = 4
    uni = parameter_samples(tab, 1.0, N)
    # uniform: t_0, t_{1/2}, ..., t_{N-1/2} (nodes 0 and 1/2, and 3/2 of step n = 1/2 of step n + 1) and t_{N+1/2}
    assert uni.offsets == tuple(Fraction(j, 2) for j in range(2 * N)) + (N + Fraction(1, 2),)
    g = np.array([0.0, 0.25, 0.5, 0.625, 1.0])                          # h = 1/4, 1/4, 1/8, 3/8
    smp = parameter_samples(tab, 1.0, N, grid=g)
    keys = {}
    for n in range(N):
        for i, c in enumerate(tab.c):
            t = Fraction(g[n]) + c * (Fraction(g[n + 1]) - Fraction(g[n]))
            keys.setdefault(t, set()).add(int(smp.stage_index[n, i]))
    assert all(len(rows) == 1 for rows in keys.values())                # equal times -> one row
    assert smp.n_samples == len(keys)                                     # distinct times -> distinct rows
    # step 0's c = 3/2 (t = 0.375) is step 1's c = 1/2 (h_0 = h_1); step 1's c = 3/2 (0.25 + 0.375 = 0.625) is the
    # grid time t_3, step 3's c = 0; step 2's c = 3/2 (0.6875) is not step 3's c = 1/2 (0.8125): h_2 != h_3
    assert smp.stage_index[0, 1] == smp.stage_index[1, 2]
    assert smp.stage_index[1, 1] == smp.stage_index[3, 0]
    assert smp.stage_index[2, 1] != smp.stage_index[3, 2]
    assert np.all(np.diff(smp.times) > 0)
    assert smp.times.tolist() == sorted(float(t) for t in keys)


# ----------------------------------------------------------------------------------------- uniform grid explicitly
@pytest.mark.parametrize("method", [FORWARD_EULER, HEUN, MIDPOINT, RK4])
@pytest.mark.parametrize("layout", ["stage", "step", "constant"])
def test_explicit_uniform_grid_is_bit_identical_when_its_steps_are_T_over_N(method, layout):
    """T = 1, N = 8: grid[n] = n/8 exactly and every difference is exactly T/N, so every h_n·a_ij is the same product
    as h·a_ij: states, loss, gradients and adjoints bit-identical to grid=None, on both backends."""
    field = TanhField(3)
    rng = np.random.default_rng(2)
    N, T = 8, 1.0
    g = np.arange(N + 1) / N
    assert np.all(np.diff(g) == T / N)
    smp = parameter_samples(method, T, N, layout)
    theta = 0.5 * rng.standard_normal((smp.n_samples, field.n_params))
    x0, loss = rng.standard_normal(3), QuadraticLoss(rng.standard_normal(3))
    assert np.array_equal(integrate(field, method, x0, theta, T, N, layout=layout).x,
                          integrate(field, method, x0, theta, T, N, layout=layout, grid=g).x)
    for backend in ("numpy", "numba"):
        a = discrete_adjoint(field, method, x0, theta, T, N, loss, layout=layout, backend=backend)
        b = discrete_adjoint(field, method, x0, theta, T, N, loss, layout=layout, backend=backend, grid=g)
        for x, y in ((a.grad_theta, b.grad_theta), (a.lambdas, b.lambdas), (a.trajectory, b.trajectory)):
            assert np.array_equal(x, y)
        assert a.loss == b.loss
        # the normaliser is not: h·w_r (w_r the correctly rounded exact weight) on the uniform grid, the float sum
        # Σ h_n b_i over the uses on a grid — s ≤ 4 roundings apart, so ≤ 4 eps relative
        na, nb = a.normalised_gradient(), b.normalised_gradient()
        assert np.array_equal(np.isnan(na), np.isnan(nb))
        ok = ~np.isnan(na)
        assert np.all(np.abs(na[ok] - nb[ok]) <= 4 * np.finfo(float).eps * np.abs(na[ok]))


def test_linspace_grid_differs_from_T_over_N_in_the_last_bit():
    """np.linspace(0, 0.3, 8): some differences grid[n+1] − grid[n] are not the float T/N (last-bit differences, and
    the grid points themselves are rounded), so the run is a different discrete problem by O(eps) in h_n: the
    results agree with grid=None to rounding (relative ≲ N·eps·cond; 1e-13 with margin), not bit for bit."""
    field = TanhField(3)
    rng = np.random.default_rng(4)
    N, T = 7, 0.3
    g = np.linspace(0.0, T, N + 1)
    assert np.any(np.diff(g) != T / N)
    theta = 0.5 * rng.standard_normal((parameter_samples(RK4, T, N).n_samples, field.n_params))
    x0, loss = rng.standard_normal(3), QuadraticLoss(rng.standard_normal(3))
    for backend in ("numpy", "numba"):
        a = discrete_adjoint(field, RK4, x0, theta, T, N, loss, backend=backend)
        b = discrete_adjoint(field, RK4, x0, theta, T, N, loss, backend=backend, grid=g)
        assert rel_err(b.grad_theta, a.grad_theta) <= 1e-13
        assert rel_err(b.trajectory, a.trajectory) <= 1e-13


# --------------------------------------------------------------------------------- hand adjoint on random grids
ERK_ANY = st.one_of(st.sampled_from(ERK), explicit_tableaux(stages=(2, 3), min_order=1),
                    explicit_tableaux(stages=(2, 3), min_order=2))


@settings(max_examples=60, deadline=None)
@given(ode_problems(methods=ERK_ANY, N=(1, 8), nonuniform=True))
def test_hand_adjoint_equals_tape_on_random_grids(p):
    assert p.grid is not None

    def L(th, x):
        return discrete_loss(p.field, p.method, x, th, p.T, p.N, p.loss, **p.kwargs())

    g, gx, value = grad(L, 0)(p.theta, p.x0), grad(L, 1)(p.theta, p.x0), L(p.theta, p.x0)
    for backend in ("numpy", "numba") if p.field.kernel is not None else ("numpy",):
        adj = discrete_adjoint(p.field, p.method, p.x0, p.theta, p.T, p.N, p.loss, backend=backend, **p.kwargs())
        assert np.max(np.abs(adj.grad_theta - g)) <= TAPE_RTOL * max(np.max(np.abs(g)), 1e-300), backend
        assert np.max(np.abs(adj.grad_x0 - gx)) <= TAPE_RTOL * max(np.max(np.abs(gx)), 1e-300), backend
        assert abs(adj.loss - value) <= 1e-14 * max(1.0, abs(value))


@pytest.mark.parametrize("method", ERK, ids=[m.name for m in ERK])
@pytest.mark.parametrize("layout", ["stage", "step", "constant"])
def test_hand_adjoint_on_a_grid_equals_tape_and_complex_step_named_schemes(method, layout):
    field = TanhField(2)
    rng = np.random.default_rng(len(method.name) * 7 + len(layout))
    N, T = 6, 1.1
    g = random_grid(rng, T, N)
    smp = parameter_samples(method, T, N, layout, grid=g)
    theta = 0.6 * rng.standard_normal((smp.n_samples, field.n_params))
    x0, loss = rng.standard_normal(2), QuadraticLoss(rng.standard_normal(2))
    kw = dict(layout=layout, grid=g)
    g_tape = grad(lambda th: discrete_loss(field, method, x0, th, T, N, loss, **kw))(theta)
    g_cs = complex_step_gradient(lambda th: discrete_loss(field, method, x0.astype(complex), th, T, N, loss, **kw),
                                 theta)
    for backend in ("numpy", "numba"):
        adj = discrete_adjoint(field, method, x0, theta, T, N, loss, backend=backend, **kw)
        assert rel_err(adj.grad_theta, g_tape) <= TAPE_RTOL
        assert rel_err(adj.grad_theta, g_cs) <= CS_RTOL
        assert np.array_equal(adj.h, np.diff(g))


def test_exact_grid_exact_mode_matches_float_run():
    """Exact mode on a Fraction grid (linear field, rational tableau): the exact gradient, rounded, agrees with the
    float64 run on the float grid of the same values to rounding (≲ 1e-14 relative on this short horizon)."""
    field = LinearField(2)
    rng = np.random.default_rng(6)
    N = 4
    g = np.array([Fraction(0), Fraction(1, 8), Fraction(3, 8), Fraction(1, 2), Fraction(1)], dtype=object)
    smp = parameter_samples(RK4, 1, N, grid=g)
    th = np.array([[Fraction(int(v), 8) for v in row] for row in rng.integers(-3, 4, (smp.n_samples, field.n_params))],
                  dtype=object)
    x0 = np.array([Fraction(1, 2), Fraction(-1, 3)], dtype=object)
    loss = QuadraticLoss(np.array([Fraction(1, 4), Fraction(1, 5)], dtype=object))
    ex = discrete_adjoint(field, RK4, x0, th, 1, N, loss, grid=g)
    assert ex.grad_theta.dtype == object and isinstance(ex.grad_theta[0, 0], Fraction)
    fl = discrete_adjoint(field, RK4, x0.astype(float), th.astype(float), 1.0, N,
                          QuadraticLoss(np.array([0.25, 0.2])), grid=g.astype(float))
    assert rel_err(fl.grad_theta, ex.grad_theta.astype(float)) <= 1e-14
    # and the same exact gradient with a float grid in exact mode (the float values are exact rationals)
    ex2 = discrete_adjoint(field, RK4, x0, th, 1, N, loss, grid=g.astype(float))
    assert list(ex2.grad_theta.ravel()) == list(ex.grad_theta.ravel())


def test_corrections_on_a_grid():
    """normalised_gradient divides by Σ h_n b_i; "G/h" needs one h and is refused; applicable_estimates omits it."""
    rng = np.random.default_rng(8)
    N, T = 6, 1.0
    g = random_grid(rng, T, N)
    smp = parameter_samples(HEUN, T, N, grid=g)
    G = rng.standard_normal((smp.n_samples, 3))
    est = normalised_gradient(G, smp)
    assert np.array_equal(est.values, G / smp.step_weights[:, None])
    with pytest.raises(ValueError, match="samples: G/h needs a single step h"):
        per_step_gradient(G, smp)
    assert set(applicable_estimates(G, smp)) == {"normalised", "corrected"}
