"""The hand-derived discrete adjoint against independent routes: the tape gradient through the integrator
(refimpl.ad.grad), the complex-step derivative of L_h (numpy integrator in complex128), the Taylor test, and the leapfrog
recursion written in docs/theory/discrete-adjoint.md.

Tolerances. Hand adjoint vs tape: the same sums of products, accumulated in a different order; the rounding
difference is a few ulps times the number of accumulated terms (N·s ≲ 50 here) times the conditioning of the backward
recursion (O(1) on these short horizons), i.e. ≲ 1e-14 relative — the required 1e-13 holds with margin. Errors are
measured norm-wise: max|a − b| / max|b| over the whole array (a per-entry relative error is meaningless for entries
that vanish, e.g. the O(h²) stage-1 gradients of the midpoint rule). Complex step is exact to rounding (no
subtraction), so the same argument gives ≤ 1e-12 with margin.
"""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ad import grad, ops
from refimpl.ad.checks import complex_step, complex_step_gradient, taylor_test
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import (LinearField, PolynomialField, QuadraticLoss, TanhField, TwoLayerTanhField, UserField,
                                UserLoss)
from refimpl.ode.integrators import discrete_loss
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import LEAPFROG, MIDPOINT, MULTISTEP_METHODS, RALSTON, RK4, TABLEAUX, FORWARD_EULER
from refimpl.testing.strategies_ode import explicit_tableaux, multistep_methods, ode_problems, vector_fields

TAPE_RTOL = 1e-13
CS_RTOL = 1e-12


def rel_err(a, b):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.max(np.abs(b))
    return np.max(np.abs(a - b)) / scale if scale > 0 else np.max(np.abs(a - b))


def tape_gradients(p):
    def L(theta, x0):
        return discrete_loss(p.field, p.method, x0, theta, p.T, p.N, p.loss, **p.kwargs())

    return grad(L, 0)(p.theta, p.x0), grad(L, 1)(p.theta, p.x0), L(p.theta, p.x0)


def check_against_tape(p, backends=("numpy", "numba")):
    g_theta, g_x0, value = tape_gradients(p)
    for backend in backends:
        if backend == "numba" and getattr(p.field, "kernel", None) is None:
            continue
        adj = discrete_adjoint(p.field, p.method, p.x0, p.theta, p.T, p.N, p.loss, backend=backend, **p.kwargs())
        assert adj.backend == backend
        assert rel_err(adj.grad_theta, g_theta) <= TAPE_RTOL, (backend, rel_err(adj.grad_theta, g_theta))
        assert rel_err(adj.grad_x0, g_x0) <= TAPE_RTOL, (backend, rel_err(adj.grad_x0, g_x0))
        assert abs(adj.loss - value) <= 1e-14 * max(1.0, abs(value))


# ---------------------------------------------------------------------------------------- hand adjoint == tape
ERK_RANDOM = st.one_of(explicit_tableaux(stages=(2, 3), min_order=1), explicit_tableaux(stages=(2, 3), min_order=2))
LMM_RANDOM = multistep_methods(steps=(2, 3), min_order=1, weakly_stable=True)


@settings(max_examples=40, deadline=None)
@given(ode_problems(methods=ERK_RANDOM, N=(1, 8)))
def test_hand_adjoint_equals_tape_random_tableaux(p):
    check_against_tape(p)


@settings(max_examples=40, deadline=None)
@given(ode_problems(methods=LMM_RANDOM, N=(2, 10)))
def test_hand_adjoint_equals_tape_random_multistep(p):
    check_against_tape(p)


NAMED = [(m, None) for m in TABLEAUX.values()] + \
        [(m, s) for m in MULTISTEP_METHODS.values() for s in ("forward_euler", "matched")]


@pytest.mark.parametrize("layout", ["stage", "step"])
@pytest.mark.parametrize("method,starter", NAMED, ids=[f"{m.name}-{s}" for m, s in NAMED])
def test_hand_adjoint_equals_tape_named_schemes(method, starter, layout):
    rng = np.random.default_rng(zlib.crc32(f"{method.name}-{starter}-{layout}".encode()))
    from refimpl.testing.strategies_ode import ODEProblem
    for field in (TanhField(3), LinearField(2)):
        N = 7
        smp = parameter_samples(method, 1.3, N, layout, starter)
        theta = 0.6 * rng.standard_normal((smp.n_samples, field.n_params))
        p = ODEProblem(field, method, None if starter is None else smp.starter, layout,
                       rng.standard_normal(field.dim), theta, 1.3, N, QuadraticLoss(rng.standard_normal(field.dim)))
        check_against_tape(p)


# -------------------------------------------------------------------------------- complex step and Taylor test
@settings(max_examples=15, deadline=None)
@given(ode_problems(fields=vector_fields(dims=(1, 2)), N=(1, 4)), st.integers(0, 2 ** 31))
def test_hand_adjoint_equals_complex_step(p, seed):
    """Directional derivatives along random directions (and, for x0, the full gradient) by complex step through the
    numpy integrator in complex128."""
    adj = discrete_adjoint(p.field, p.method, p.x0, p.theta, p.T, p.N, p.loss, backend="numpy", **p.kwargs())

    def L_theta(th):
        return discrete_loss(p.field, p.method, p.x0.astype(complex), th, p.T, p.N, p.loss, **p.kwargs())

    def L_x0(x0):
        return discrete_loss(p.field, p.method, x0, p.theta.astype(complex), p.T, p.N, p.loss, **p.kwargs())

    rng = np.random.default_rng(seed)
    for _ in range(3):
        v = rng.standard_normal(p.theta.shape)
        d_cs = complex_step(L_theta, p.theta, v)
        d_adj = np.sum(adj.grad_theta * v)
        # scale: |grad|·|v| bounds the size of the terms summed in <grad, v>; the absolute 1e-50 covers complex step's
        # own truncation term eps²·f'''/6 ~ 1e-60 when the gradient vanishes identically (e.g. x_N = y)
        assert abs(d_adj - d_cs) <= CS_RTOL * np.abs(adj.grad_theta).sum() * np.abs(v).max() + 1e-50
    g_cs = complex_step_gradient(L_x0, p.x0)
    assert np.max(np.abs(adj.grad_x0 - g_cs)) <= CS_RTOL * np.max(np.abs(g_cs)) + 1e-50


def test_hand_adjoint_full_gradient_complex_step_rk4_and_leapfrog():
    rng = np.random.default_rng(7)
    field, loss = TanhField(2), QuadraticLoss(np.array([0.4, -0.3]))
    for method, starter in ((RK4, None), (LEAPFROG, "forward_euler"), (RALSTON, None)):
        smp = parameter_samples(method, 1.0, 4, "stage", starter)
        theta = rng.standard_normal((smp.n_samples, field.n_params))
        x0 = np.array([0.7, -0.2])
        adj = discrete_adjoint(field, method, x0, theta, 1.0, 4, loss, starter=starter)
        g_cs = complex_step_gradient(
            lambda th: discrete_loss(field, method, x0.astype(complex), th, 1.0, 4, loss, starter=starter), theta)
        assert rel_err(adj.grad_theta, g_cs) <= CS_RTOL


@pytest.mark.parametrize("method,starter", [(RK4, None), (MIDPOINT, None), (LEAPFROG, "forward_euler")],
                         ids=["rk4", "midpoint", "leapfrog"])
def test_taylor_rate_two(method, starter):
    rng = np.random.default_rng(3)
    field, loss = TanhField(2), QuadraticLoss(np.array([0.4, -0.3]))
    x0 = np.array([0.5, 1.0])
    smp = parameter_samples(method, 1.0, 6, "stage", starter)
    theta = rng.standard_normal((smp.n_samples, field.n_params))
    adj = discrete_adjoint(field, method, x0, theta, 1.0, 6, loss, starter=starter)
    res = taylor_test(lambda th: discrete_loss(field, method, x0, th, 1.0, 6, loss, starter=starter), theta,
                      adj.grad_theta, seed=1)
    assert res.passed and abs(res.observed_rate1 - 2) < 0.2 and abs(res.observed_rate0 - 1) < 0.2, res
    wrong = adj.grad_theta.copy()
    wrong[1, 1] += 1e-3 * np.abs(adj.grad_theta).max()   # the test must be able to fail: a small error gives rate 1
    bad = taylor_test(lambda th: discrete_loss(field, method, x0, th, 1.0, 6, loss, starter=starter), theta, wrong,
                      direction=res.direction)
    assert not bad.passed


# ------------------------------------------------------------------ leapfrog example of docs/theory/discrete-adjoint.md
def spec_leapfrog(field, xs, theta, h, grad_phi):
    """docs/theory/discrete-adjoint.md: λ_N = ∇Φ, λ_{N+1} = 0, λ_n = λ_{n+2} + 2h ∂ₓf(xₙ,θₙ)ᵀλ_{n+1}, ∂L_h/∂θₙ = 2h
    ∂_θf(xₙ,θₙ)ᵀλ_{n+1}, for n = N−1 … 1 (the recursion as written; no starter terms)."""
    N = len(xs) - 1
    lam = {N + 1: np.zeros_like(xs[0]), N: grad_phi}
    G = {}
    for n in range(N - 1, 0, -1):
        lam[n] = lam[n + 2] + 2 * h * field.dfdx(xs[n], theta[n]).T @ lam[n + 1]
        G[n] = 2 * h * field.dfdtheta(xs[n], theta[n]).T @ lam[n + 1]
    return lam, G


@pytest.mark.parametrize("field", [TanhField(2), TwoLayerTanhField(2, 3), PolynomialField(2)], ids=repr)
def test_spec_leapfrog_recursion_agrees_with_general_recursion(field):
    rng = np.random.default_rng(11)
    N, T = 16, 1.0
    h = T / N
    loss = QuadraticLoss(np.array([0.3, -0.1]))
    x0 = np.array([0.4, 0.8])
    smp = parameter_samples(LEAPFROG, T, N, "stage", "forward_euler")
    theta = 0.5 * rng.standard_normal((smp.n_samples, field.n_params))
    adj = discrete_adjoint(field, LEAPFROG, x0, theta, T, N, loss, starter="forward_euler", backend="numpy")
    xs = adj.trajectory
    assert np.array_equal(smp.times, h * np.arange(N))          # θ_n is the sample at t_n, n = 0..N−1
    lam, G = spec_leapfrog(field, xs, theta, h, loss.grad(xs[-1]))
    # same recursion evaluated by two codes (different Jacobian routes): agreement to rounding
    for n in range(1, N):
        assert rel_err(adj.lambdas[n], lam[n]) <= 1e-13
        assert rel_err(adj.grad_theta[n], G[n]) <= 1e-13
    # the starter terms (derived, see refimpl.ode.adjoint_recursions): forward-Euler start x_1 = x_0 + h f(x_0, θ_0)
    lam0 = lam[2] + lam[1] + h * field.dfdx(xs[0], theta[0]).T @ lam[1]
    G0 = h * field.dfdtheta(xs[0], theta[0]).T @ lam[1]
    assert rel_err(adj.lambdas[0], lam0) <= 1e-13 and rel_err(adj.grad_theta[0], G0) <= 1e-13
    # and the interior formula continued to n = 0 is *not* the gradient (λ_1 enters with weight I + h∂f, not 2h∂f)
    naive0 = lam[2] + 2 * h * field.dfdx(xs[0], theta[0]).T @ lam[1]
    assert rel_err(naive0, adj.lambdas[0]) > 1e-3


# ----------------------------------------------------------------------------------------------- the result object
def test_normalised_gradient_and_weights():
    rng = np.random.default_rng(5)
    field, loss = TanhField(2), QuadraticLoss(np.array([0.1, 0.2]))
    smp = parameter_samples(MIDPOINT, 1.0, 8)
    theta = rng.standard_normal((smp.n_samples, field.n_params))
    adj = discrete_adjoint(field, MIDPOINT, np.array([1.0, 0.0]), theta, 1.0, 8, loss)
    g = adj.normalised_gradient()
    w = smp.weights
    assert np.all(np.isnan(g[w == 0])) and np.all(w[::2] == 0)            # midpoint: stage-1 samples carry b_1 = 0
    assert np.allclose(g[w != 0], adj.grad_theta[w != 0] / (adj.h * w[w != 0, None]), rtol=1e-15, atol=0)
    # b_1 = 0 does not make those gradients zero: θ at t_n still enters through the stage-2 state (O(h²) influence)
    assert np.all(np.abs(adj.grad_theta[::2]) < np.abs(adj.grad_theta[1::2]).max())


def test_user_field_and_loss_match_builtin():
    """A UserField (Jacobians by the tape) and a UserLoss reproduce the hand-coded TanhField adjoint."""
    rng = np.random.default_rng(9)
    d = 2
    builtin = TanhField(d)
    user = UserField(lambda x, th: ops.tanh(ops.matmul(ops.reshape(th[:d * d], (d, d)), x) + th[d * d:]), d, d * d + d)
    y = np.array([0.3, 0.1])
    uloss = UserLoss(lambda x: ops.sum((x - y) * (x - y)) / 2, lambda x: x - y)
    smp = parameter_samples(RK4, 1.0, 5)
    theta = rng.standard_normal((smp.n_samples, builtin.n_params))
    a = discrete_adjoint(builtin, RK4, np.ones(d), theta, 1.0, 5, QuadraticLoss(y), backend="numpy")
    b = discrete_adjoint(user, RK4, np.ones(d), theta, 1.0, 5, uloss)
    assert b.backend == "numpy" and rel_err(b.grad_theta, a.grad_theta) <= 1e-14


def test_deterministic_and_auto_backend():
    rng = np.random.default_rng(4)
    field, loss = TanhField(2), QuadraticLoss(np.zeros(2))
    smp = parameter_samples(FORWARD_EULER, 1.0, 10)
    theta = rng.standard_normal((smp.n_samples, 6))
    a = discrete_adjoint(field, FORWARD_EULER, np.ones(2), theta, 1.0, 10, loss)
    b = discrete_adjoint(field, FORWARD_EULER, np.ones(2), theta.copy(), 1.0, 10, loss)
    assert a.backend == "numba" and np.array_equal(a.grad_theta, b.grad_theta)
    assert discrete_adjoint(PolynomialField(2), FORWARD_EULER, np.ones(2), np.zeros((10, 8)), 1.0, 10,
                            loss).backend == "numpy"


def test_discrete_adjoint_rejects_bad_input():
    field, loss = TanhField(2), QuadraticLoss(np.zeros(2))
    theta = np.zeros((parameter_samples(RK4, 1.0, 3).n_samples, 6))
    with pytest.raises(ValueError, match="backend"):
        discrete_adjoint(field, RK4, np.ones(2), theta, 1.0, 3, loss, backend="gpu")
    with pytest.raises(ValueError, match="backend: 'numba'"):
        discrete_adjoint(PolynomialField(2), RK4, np.ones(2), np.zeros((theta.shape[0], 8)), 1.0, 3, loss,
                         backend="numba")
    with pytest.raises(TypeError, match="loss"):
        discrete_adjoint(field, RK4, np.ones(2), theta, 1.0, 3, lambda x: x)
    with pytest.raises(ValueError, match="x0"):
        discrete_adjoint(field, RK4, np.array([1.0, np.nan]), theta, 1.0, 3, loss)
    with pytest.raises(ValueError, match="theta"):
        discrete_adjoint(field, RK4, np.ones(2), theta[:, :5], 1.0, 3, loss)
    with pytest.raises(ValueError, match="N"):
        discrete_adjoint(field, LEAPFROG, np.ones(2), theta, 1.0, 1, loss, starter="forward_euler")
    with pytest.raises(ValueError, match="T"):
        discrete_adjoint(field, RK4, np.ones(2), theta, -1.0, 3, loss)

    def taped(th):
        return discrete_adjoint(field, RK4, np.ones(2), th, 1.0, 3, loss).loss

    with pytest.raises(TypeError, match="not tape Variables"):
        grad(taped)(theta)


# ---------------------------------------------------------------------------------------- memoised parameter samples
def _samples_fields(s):
    return (s.method, s.starter, s.layout, type(s.T), s.T, s.N, s.times, s.weights, s.stage_index, s.grid_index,
            s.offsets, s.exact_weights)


def _same_samples(a, b):
    for x, y in zip(_samples_fields(a), _samples_fields(b)):
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            assert x is not None and y is not None and x.dtype == y.dtype and np.array_equal(x, y)
        else:
            assert x == y


@pytest.mark.parametrize("method, starter", [(RK4, None), (MIDPOINT, None), (LEAPFROG, "forward_euler"),
                                             (LEAPFROG, "matched")])
@pytest.mark.parametrize("layout", ["stage", "step"])
def test_parameter_samples_cache_returns_what_a_fresh_build_returns(method, starter, layout):
    from fractions import Fraction

    from refimpl.ode.samples import _build_samples
    from refimpl.ode.schemes import starter as resolve_starter

    resolved = None if starter is None else resolve_starter(method, starter)
    for T in (1.0, 0.3, Fraction(3, 10), 2):
        a = parameter_samples(method, T, 7, layout, starter)
        assert parameter_samples(method, T, 7, layout, starter) is a           # a hit returns the shared object
        exact_T = Fraction(T) if not isinstance(T, float) else T
        _same_samples(a, _build_samples(method, resolved, exact_T, 7, layout))   # the uncached build (independent)
        assert all(not arr.flags.writeable for arr in (a.times, a.weights, a.stage_index, a._codes))
        with pytest.raises(ValueError):
            a.times.flags.writeable = True                                     # read-only view of a read-only base
        with pytest.raises(ValueError):
            a.weights[0] = 0.0
    # T compared exactly and by kind: 1 (exact) and 1.0 (float) must not share an entry, nor 0.3 and 3/10
    assert isinstance(parameter_samples(method, 1, 7, layout, starter).T, Fraction)
    assert isinstance(parameter_samples(method, 1.0, 7, layout, starter).T, float)
    assert parameter_samples(method, 0.3, 7, layout, starter).T == 0.3
    assert parameter_samples(method, Fraction(3, 10), 7, layout, starter).T == Fraction(3, 10)


def test_parameter_samples_cache_separates_float_and_exact_tableaux():
    from fractions import Fraction

    from refimpl.ode.tableau import ButcherTableau

    exact = ButcherTableau("heun2", ((0, 0), (1, 0)), (Fraction(1, 2), Fraction(1, 2)))
    floats = ButcherTableau("heun2", ((0.0, 0.0), (1.0, 0.0)), (0.5, 0.5))
    assert exact == floats and hash(exact) == hash(floats)       # equal numbers: dataclass equality cannot tell
    a, b = parameter_samples(exact, 1.0, 5), parameter_samples(floats, 1.0, 5)
    assert a.method.exact and a.exact_weights is not None
    assert not b.method.exact and b.exact_weights is None


# ---------------------------------------------------------------------------------------- Numba kernel variants
@pytest.mark.parametrize("method, starter", [(RK4, None), (RALSTON, None), (LEAPFROG, "forward_euler"),
                                             (MULTISTEP_METHODS["ab3"], "matched")])
@pytest.mark.parametrize("field", [TanhField(5), LinearField(5)])
def test_stored_stages_give_bit_identical_adjoint(method, starter, field, monkeypatch):
    """Keeping the forward stage slopes for the backward sweep only skips re-evaluating f on the same inputs, so the
    result must be bit-identical to the recomputing sweep (and both still equal the tape to TAPE_RTOL). d = 5 also
    exercises the remainder row of the 4-row matvec."""
    import refimpl.ode.adjoint_recursions as da

    rng = np.random.default_rng(11)
    N = 9
    smp = parameter_samples(method, 1.0, N, "stage", starter)
    theta = rng.standard_normal((smp.n_samples, field.n_params)) / 2
    x0, loss = rng.standard_normal(5), QuadraticLoss(rng.standard_normal(5))
    kept = discrete_adjoint(field, method, x0, theta, 1.0, N, loss, starter=starter, backend="numba")
    monkeypatch.setattr(da, "KEEP_STAGES_MAX_ENTRIES", -1)
    again = discrete_adjoint(field, method, x0, theta, 1.0, N, loss, starter=starter, backend="numba")
    for a, b in ((kept.grad_theta, again.grad_theta), (kept.lambdas, again.lambdas),
                 (kept.trajectory, again.trajectory)):
        assert np.array_equal(a, b)
    ref = discrete_adjoint(field, method, x0, theta, 1.0, N, loss, starter=starter, backend="numpy")
    assert rel_err(kept.grad_theta, ref.grad_theta) <= TAPE_RTOL


def test_lmm_grid_index_check_matches_its_definition():
    """The vectorised check of refimpl.ode._numba rejects exactly the grid indices that leave a used F_m without a
    sample; the definition is the double loop over steps n and nonzero beta_j (checked on random patterns)."""
    from refimpl.ode import _numba as kernels

    rng = np.random.default_rng(3)
    d, N = 2, 8
    theta = np.zeros((N, d * d + d))
    for _ in range(60):
        k = int(rng.integers(2, 4))
        hbeta = rng.integers(0, 2, size=k).astype(float)
        grid_index = np.where(rng.random(N) < 0.2, -1, rng.integers(0, N, size=N)).astype(np.int64)
        s_index = np.zeros((k - 1, 1), dtype=np.int64)
        bad = [n + j for n in range(N - k + 1) for j in range(k) if hbeta[j] != 0 and grid_index[n + j] < 0]
        args = (TanhField.kernel, np.zeros(d), theta, s_index, np.zeros((1, 1)), np.ones(1), -np.ones(k) / k, hbeta,
                grid_index)
        if bad:
            with pytest.raises(ValueError, match=rf"grid_index\[{min(bad)}\] = -1"):
                kernels.lmm_forward(*args)
        else:
            assert kernels.lmm_forward(*args).shape == (N + 1, d)


def test_kernel_wrappers_check_stored_stages():
    from refimpl.ode import _numba as kernels

    rng = np.random.default_rng(0)
    smp = parameter_samples(RK4, 1.0, 4, "step")
    A, b, _ = RK4.arrays()
    theta, x0 = rng.standard_normal((4, 6)), rng.standard_normal(2)
    xs, K = kernels.erk_forward(TanhField.kernel, x0, theta, smp.stage_index, A / 4, b / 4, keep_stages=True)
    assert K.shape == (4, 4, 2)
    with pytest.raises(ValueError, match="stages must have shape"):
        kernels.erk_backward(TanhField.kernel, xs, theta, smp.stage_index, A / 4, b / 4, xs[-1], stages=K[:3])
    with pytest.raises(ValueError, match="stages must be finite"):
        kernels.erk_backward(TanhField.kernel, xs, theta, smp.stage_index, A / 4, b / 4, xs[-1], stages=K * np.nan)
    smp = parameter_samples(LEAPFROG, 1.0, 4, "step", "forward_euler")
    args = (TanhField.kernel, x0, theta, smp.stage_index, np.zeros((1, 1)), np.ones(1) / 4, np.array([1.0, 0.0]),
            np.array([0.0, 0.5]), smp.grid_index)
    xs, (F, have_F) = kernels.lmm_forward(*args, keep_slopes=True)
    with pytest.raises(TypeError, match="have_F"):
        kernels.lmm_backward(*args[:1], xs, *args[2:], xs[-1], slopes=(F, have_F.astype(int)))
    with pytest.raises(TypeError, match="slopes must be"):
        kernels.lmm_backward(*args[:1], xs, *args[2:], xs[-1], slopes=F)
