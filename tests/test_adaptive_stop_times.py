"""Stop times in the adaptive loop (``adaptive_solve(..., stop_times=ts)``).

Independent routes: the accepted grid itself (every stop time a grid point, bit for bit); the same solve without stop
times (bit-identical); the complex step of the whole adaptive loss (b) and of the frozen-grid loss (a); the hand
discrete adjoint on the frozen grid against the tape; torchdiffeq 0.2.5 ``odeint(..., options={"step_t": ts})`` and
diffrax 0.7.2 ``PIDController(step_ts=ts)`` (skipped, with the reason, where they are not installed), whose grids and
gradients the matching refimpl convention reproduces with the tolerances of test_adaptive_torchdiffeq.py and
test_adaptive_diffrax.py.
"""
import os

os.environ.setdefault("JAX_ENABLE_X64", "1")

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from refimpl.ad import value_and_grad
from refimpl.arguments import NonFiniteError
from refimpl.ode.adaptive import (AdaptiveStepError, adaptive_solve, frozen_grid_gradient, full_discrete_gradient,
                                  grid_rounding)
from refimpl.ode.conventions import convention
from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField, TwoLayerTanhField
from refimpl.ode.step_control import PI_HNW
from refimpl.testing.strategies_adaptive import adaptive_problems, stop_times

EPS = np.finfo(float).eps
T = 2.0
#: 0.30 and 0.31 are closer than any step the controller takes at rtol <= 1e-3, 1.7 sits in the middle of a step
STOPS = np.array([0.3, 0.31, 1.0, 1.7])
D = M = 2
X0 = np.array([1.0, -0.5])
Y = np.array([0.3, -0.1])
LOSS = QuadraticLoss(Y)


def _problems():
    rng = np.random.default_rng(1307)
    tanh, two, lin = TanhField(D), TwoLayerTanhField(D, M), LinearField(D)
    return {
        "tanh": (tanh, tanh.pack([[0.5, -1.0], [1.2, 0.3]], [0.1, -0.2])),
        "two_layer": (two, two.pack(rng.normal(size=(M, D)), rng.normal(size=M) * 0.3, rng.normal(size=(D, M)))),
        "linear": (lin, lin.pack([[-0.5, 1.0], [-1.0, -0.3]], [0.2, 0.1])),
    }


PROBLEMS = _problems()


def _relative(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _flat(g):
    return np.concatenate([g.grad_theta, g.grad_x0])


# ---------------------------------------------------------------------------------------------------------------------
# the grid


@pytest.mark.parametrize("name", ["torchdiffeq:dopri5", "diffrax:Tsit5", "plain"])
@pytest.mark.parametrize("rtol", [1e-3, 1e-7])
def test_every_stop_time_is_an_accepted_grid_point(name, rtol):
    field, theta = PROBLEMS["tanh"]
    if name == "plain":
        sol = adaptive_solve(field, "dormand_prince_54", X0, theta, T, rtol=rtol, atol=rtol, controller=PI_HNW,
                             stop_times=STOPS)
    else:
        sol = convention(name).solve(field, X0, theta, T, rtol=rtol, atol=rtol, stop_times=STOPS)
    # exactly, not to rounding: the clipped step ends on the stop time itself
    assert np.array_equal(sol.grid[sol.stop_indices], STOPS) and np.array_equal(sol.stop_times, STOPS)
    assert np.all(np.diff(sol.grid) > 0) and len(np.unique(sol.stop_indices)) == len(STOPS)
    assert np.array_equal(sol.at_stops, sol.xs[sol.stop_indices])
    # a clipped step uses h = tau - t_n: the recorded step sizes add up to the stop times to rounding
    assert np.allclose(np.cumsum(sol.steps)[sol.stop_indices - 1], STOPS, rtol=0, atol=64 * EPS * T)


def test_the_step_after_a_stop_time_grows_from_the_clipped_step():
    """The rule of both libraries (rk_common.py:_adaptive_step, clip.py/pid.py:adapt_step_size): the proposal after an
    accepted step clipped to a stop time is the clipped step times the controller's factor. torchdiffeq's I controller
    after an accepted step: fac = min(ifactor, max(1, safety r^(-1/p))), so where the next attempt is neither clipped
    nor rejected, steps[i] = steps[i-1] * fac(r_{i-1}) to the rounding of r^(-1/p) (4 eps)."""
    field, theta = PROBLEMS["tanh"]
    conv = convention("torchdiffeq:dopri5")
    checked = 0
    for rtol in (1e-4, 1e-6, 1e-8):
        sol = conv.solve(field, X0, theta, T, rtol=rtol, atol=rtol, stop_times=STOPS)
        rejected_at = {r.step for r in sol.rejected}
        ends = set(sol.stop_indices.tolist())
        for i in sol.stop_indices:
            if i >= sol.N or i in rejected_at or (i + 1) in ends:
                continue  # the next step was rejected or is itself clipped: the factor does not show in it
            fac = min(conv.ifactor, max(1.0, conv.safety * sol.ratios[i - 1] ** (-1.0 / conv.pair.order)))
            assert sol.steps[i] == pytest.approx(sol.steps[i - 1] * fac, rel=4 * EPS, abs=0)
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("name", ["torchdiffeq:dopri5", "diffrax:Dopri5"])
def test_without_stop_times_nothing_changes(name):
    """None and an empty array are the solve without stop times, bit for bit (grid, states, loss, gradients)."""
    field, theta = PROBLEMS["two_layer"]
    conv = convention(name)
    runs = [conv.full_discrete_gradient(field, X0, theta, T, LOSS, rtol=1e-6, atol=1e-6, **kw)
            for kw in ({}, {"stop_times": None}, {"stop_times": np.array([])})]
    for g in runs[1:]:
        assert np.array_equal(g.grid, runs[0].grid) and np.array_equal(g.solution.xs, runs[0].solution.xs)
        assert g.loss == runs[0].loss and np.array_equal(_flat(g), _flat(runs[0]))
        assert len(g.solution.stop_indices) == 0 and g.solution.at_stops is None


# ---------------------------------------------------------------------------------------------------------------------
# the gradients on grids with stop times


def _complex_step(field, pair, x0, theta, T, loss, vx, vt, **options):
    h = 1e-30
    sol = adaptive_solve(field, pair, x0 + 1j * h * vx, theta + 1j * h * vt, T, loss=loss, **options)
    return float(np.imag(sol.loss)) / h, sol


def _frozen_loss_complex_step(field, pair, x0, theta, grid, loss, vx, vt):
    from refimpl.ode.adaptive import _frozen_tape_loss
    h = 1e-30
    val = _frozen_tape_loss(field, pair.tableau, x0 + 1j * h * vx, theta.reshape(-1) + 1j * h * vt,
                            list(np.diff(grid)), loss)
    return float(np.imag(val)) / h


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(adaptive_problems(), st.data())
def test_property_gradients_on_grids_with_stop_times(problem, data):
    p = problem
    ts = data.draw(stop_times(p.T), label="stop_times")
    try:
        b = full_discrete_gradient(p.field, p.pair, p.x0, p.theta, p.T, p.loss, stop_times=ts, **p.options())
    except (AdaptiveStepError, NonFiniteError) as e:
        event(f"solver refused: {type(e).__name__}")
        return  # a drawn random pair may be unstable or too slow for the problem: reported, not tested
    assert np.array_equal(b.grid[b.solution.stop_indices], ts)
    # smooth pieces only (test_adaptive_solve.py: an estimate that is rounding noise, or a state entry so small that
    # the 1e-30 imaginary perturbation is not negligible against it, leaves the complex step meaningless)
    assume(np.max(b.solution.cancellation) * EPS <= 1e-4)
    xs = np.abs(np.asarray(b.solution.xs))
    assume(np.all((xs == 0) | (xs > 1e-12)))
    rng = np.random.default_rng(0)
    vx, vt = rng.normal(size=p.x0.size), rng.normal(size=p.theta.size)
    # (b) == complex step: a clipped step h = tau - t_n is analytic in t_n (tau a constant), the decision to clip is
    # taken on real parts; 1e-12 of the size of the terms (+ the complex step's own 1e-60 truncation at a zero gradient)
    cs, sol = _complex_step(p.field, p.pair, p.x0, p.theta, p.T, p.loss, vx, vt.reshape(p.theta.shape),
                            stop_times=ts, **p.options())
    # The complex run decides on the real parts of complex arithmetic, which round differently from the real run's
    # (complex tanh/power): an error ratio within rounding of 1 can then be accepted by one and rejected by the other —
    # theta sits on a jump of the loss (docs/theory/adaptive-steps.md §5), where no derivative exists. Found by
    # hypothesis (bogacki_shampine_32, a random I controller). Smooth pieces only:
    assume((sol.N, [r.step for r in sol.rejected]) == (b.solution.N, [r.step for r in b.solution.rejected]))
    assert np.array_equal(sol.stop_indices, b.solution.stop_indices)
    # (a) on that grid: tape == complex step of the fixed-step loss, and the hand adjoint == tape to a few ulps of the
    # largest term (the same recursion in another order: 1e-13 relative, as in test_adaptive_solve.py)
    a = frozen_grid_gradient(p.field, p.pair, p.x0, p.theta, b.grid, p.loss, stop_times=ts)
    # (b): plus the rounding of the controller's share, 10 kappa eps |(b) - (a)| (as in test_adaptive_solve.py)
    scale = np.abs(b.grad_x0) @ np.abs(vx) + np.abs(b.grad_theta) @ np.abs(vt) + 1e-40
    share = np.abs(b.grad_x0 - a.grad_x0) @ np.abs(vx) + np.abs(b.grad_theta - a.grad_theta) @ np.abs(vt)
    kappa = float(np.max(b.solution.cancellation))
    assert abs(cs - (b.grad_x0 @ vx + b.grad_theta @ vt)) <= 1e-12 * scale + 10 * kappa * EPS * share
    cs_a = _frozen_loss_complex_step(p.field, p.pair, p.x0, p.theta, b.grid, p.loss, vx, vt)
    scale_a = np.abs(a.grad_x0) @ np.abs(vx) + np.abs(a.grad_theta) @ np.abs(vt) + 1e-40
    assert abs(cs_a - (a.grad_x0 @ vx + a.grad_theta @ vt)) <= 1e-12 * scale_a
    for route in ("numpy",) + (("numba",) if getattr(p.field, "kernel", None) is not None else ()):
        hand = frozen_grid_gradient(p.field, p.pair, p.x0, p.theta, b.grid, p.loss, route=route, stop_times=ts)
        for mine, ref in ((hand.grad_theta, a.grad_theta), (hand.grad_x0, a.grad_x0)):
            assert np.max(np.abs(mine - ref)) <= 1e-13 * max(np.max(np.abs(ref)), 1e-300) + 1e-300
    event("checked")


def test_a_loss_on_the_states_at_the_stop_times():
    """``at_stops`` carries the tape: the gradient of sum_i Phi(x(tau_i)) + Phi(x(T)) through the whole adaptive loop
    equals its complex step (1e-12 of the size of the terms, as for the terminal loss)."""
    field, theta = PROBLEMS["tanh"]
    opts = dict(rtol=1e-6, atol=1e-6, stop_times=STOPS)

    def total(sol):
        out = LOSS.value(sol.xs[-1])
        for i in range(len(STOPS)):
            out = out + LOSS.value(sol.at_stops[i])
        return out

    def objective(z):
        return total(adaptive_solve(field, "dormand_prince_54", z[:D], z[D:], T, **opts))

    z = np.concatenate([X0, theta])
    _, g = value_and_grad(objective)(z)
    v = np.random.default_rng(3).normal(size=z.size)
    h = 1e-30
    cs = float(np.imag(objective(z + 1j * h * v))) / h
    assert abs(cs - g @ v) <= 1e-12 * (np.abs(g) @ np.abs(v))


# ---------------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("bad, what", [
    (np.array([[0.5, 1.0]]), "1-D"), (np.array([1.0, 0.5]), "strictly increasing"), (np.array([0.5, 0.5]), "strictly"),
    (np.array([0.0, 1.0]), "(0, T)"), (np.array([0.5, 2.0]), "(0, T)"), (np.array([-0.1]), "(0, T)"),
    (np.array([0.5, np.nan]), "finite"), (np.array([np.inf]), "finite")])
def test_bad_stop_times_name_themselves(bad, what):
    field, theta = PROBLEMS["linear"]
    with pytest.raises(ValueError, match="stop_times") as info:
        adaptive_solve(field, "dormand_prince_54", X0, theta, T, rtol=1e-3, atol=1e-3, stop_times=bad)
    assert what in str(info.value)
    with pytest.raises(TypeError, match="stop_times"):
        adaptive_solve(field, "dormand_prince_54", X0, theta, T, rtol=1e-3, atol=1e-3, stop_times=["a", "b"])
    # a frozen grid that misses a stop time (computed without it) is refused, naming the time
    sol = adaptive_solve(field, "dormand_prince_54", X0, theta, T, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match=r"stop_times\[0\] = 0.777"):
        frozen_grid_gradient(field, "dormand_prince_54", X0, theta, sol.grid, LOSS, stop_times=[0.777])


# ---------------------------------------------------------------------------------------------------------------------
# the libraries


def _grid_tolerance(sol) -> float:
    # how far two correct implementations' grids may drift apart (derivation: refimpl.ode.adaptive.grid_rounding)
    return grid_rounding(sol)


def _torch_field(torch, problem, theta):
    class TorchField(torch.nn.Module):
        """The refimpl field's formula in torch; records the accepted attempts' (t0, dt) and the rejections."""

        def __init__(self):
            super().__init__()
            self.theta = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float64))
            self.accepted, self.rejected = [], []

        def forward(self, t, x):
            th = self.theta
            if problem == "linear":
                return th[: D * D].reshape(D, D) @ x + th[D * D:]
            if problem == "tanh":
                return torch.tanh(th[: D * D].reshape(D, D) @ x + th[D * D:])
            W1, b, W2 = th[: M * D].reshape(M, D), th[M * D: M * D + M], th[M * D + M:].reshape(D, M)
            return W2 @ torch.tanh(W1 @ x + b)

        def callback_accept_step(self, t0, y0, dt):
            self.accepted.append((float(t0.detach()), float(dt.detach())))

        def callback_reject_step(self, t0, y0, dt):
            self.rejected.append(float(t0.detach()))

    return TorchField()


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_torchdiffeq_step_t_is_the_convention_with_stop_times(problem):
    torch = pytest.importorskip("torch", reason="the torchdiffeq cross-check needs torch")
    torchdiffeq = pytest.importorskip("torchdiffeq", reason="the torchdiffeq cross-check needs torchdiffeq")
    field, theta = PROBLEMS[problem]
    conv = convention("torchdiffeq:dopri5")
    for rtol in (1e-3, 1e-6, 1e-9):
        func = _torch_field(torch, problem, theta)
        x0 = torch.tensor(X0, dtype=torch.float64, requires_grad=True)
        out = torchdiffeq.odeint(func, x0, torch.tensor([0.0, T], dtype=torch.float64), rtol=rtol, atol=rtol,
                                 method="dopri5", options={"step_t": torch.tensor(STOPS, dtype=torch.float64)})
        loss = 0.5 * torch.sum((out[-1] - torch.tensor(Y, dtype=torch.float64)) ** 2)
        loss.backward()
        # the accepted steps' start times (a clipped step's successor starts at the stop time itself), then the end
        lib_grid = np.array([t0 for t0, _ in func.accepted] + [func.accepted[-1][0] + func.accepted[-1][1]])
        assert np.all(np.isin(STOPS, lib_grid))  # torchdiffeq hits them exactly too
        sol = conv.solve(field, X0, theta, T, rtol=rtol, atol=rtol, loss=LOSS, stop_times=STOPS)
        assert (sol.N, sol.n_rejected) == (len(lib_grid) - 1, len(func.rejected)), (rtol, sol, lib_grid)
        assert np.max(np.abs(sol.grid - lib_grid)) <= _grid_tolerance(sol), (rtol, sol.grid - lib_grid)
        # the same arithmetic in another order: O(s) roundings per step, 4 N s eps relative
        lib_loss = float(loss.detach())
        assert abs(float(sol.loss) - lib_loss) <= 4 * sol.N * conv.pair.stages * EPS * abs(lib_loss)
        ref = conv.library_gradient(field, X0, theta, T, LOSS, rtol=rtol, atol=rtol, stop_times=STOPS)
        got = np.concatenate([func.theta.grad.numpy(), x0.grad.numpy()])
        # rounding of a chained adjoint, as in test_adaptive_torchdiffeq.py (1e-12)
        assert _relative(got, _flat(ref)) <= 1e-12, (rtol, got, _flat(ref))


def _generic_field(jnp, y, g):
    """f(y) = A y + c + W2 tanh(W1 y + b), as in test_adaptive_diffrax.py (exact zeros select the problem)."""
    A = g[: D * D].reshape(D, D)
    c = g[D * D: D * D + D]
    o = D * D + D
    W1 = g[o: o + M * D].reshape(M, D)
    b = g[o + M * D: o + M * D + M]
    W2 = g[o + M * D + M:].reshape(D, M)
    return A @ y + c + W2 @ jnp.tanh(W1 @ y + b)


def _embed(problem, theta):
    o = D * D + D
    if problem == "linear":
        return np.concatenate([theta, np.zeros(M * D + M + D * M)]), np.arange(D * D + D)
    W2 = np.eye(D).ravel() if problem == "tanh" else theta[M * D + M:]
    g = np.concatenate([np.zeros(o), theta[: M * D + M], W2])
    return g, (np.arange(o, o + M * D + M) if problem == "tanh" else np.arange(o, o + M * D + M + D * M))


def test_diffrax_step_ts_is_the_convention_with_stop_times():
    jax = pytest.importorskip("jax", reason="the diffrax cross-check needs jax")
    diffrax = pytest.importorskip("diffrax", reason="the diffrax cross-check needs diffrax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    term = diffrax.ODETerm(lambda t, y, g: _generic_field(jnp, y, g))
    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), diffrax.SubSaveAt(steps=True)])

    def loss(g, x0, rtol, ts):
        sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), 0.0, T, None, x0, args=g,
                                  stepsize_controller=diffrax.PIDController(rtol=rtol, atol=rtol, step_ts=ts),
                                  saveat=saveat, adjoint=diffrax.RecursiveCheckpointAdjoint(), max_steps=512)
        return 0.5 * jnp.sum((sol.ys[0][-1] - Y) ** 2), (sol.ts[1], sol.stats["num_accepted_steps"],
                                                         sol.stats["num_rejected_steps"])

    run = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    conv = convention("diffrax:Dopri5")
    for problem in PROBLEMS:
        field, theta = PROBLEMS[problem]
        g, idx = _embed(problem, theta)
        for rtol in (1e-3, 1e-6, 1e-9):
            (value, (ts, n_acc, n_rej)), (g_g, g_x0) = run(jnp.asarray(g), jnp.asarray(X0), rtol, jnp.asarray(STOPS))
            lib_grid = np.concatenate([[0.0], np.asarray(ts)[: int(n_acc)]])
            assert np.all(np.isin(STOPS, lib_grid))
            sol = conv.solve(field, X0, theta, T, rtol=rtol, atol=rtol, loss=LOSS, stop_times=STOPS)
            assert (sol.N, sol.n_rejected) == (len(lib_grid) - 1, int(n_rej)), (problem, rtol, sol, lib_grid)
            assert np.max(np.abs(sol.grid - lib_grid)) <= _grid_tolerance(sol), (problem, rtol, sol.grid - lib_grid)
            # as in test_adaptive_diffrax.py: the same arithmetic in another order over N <= 70 steps, 1e-13
            assert abs(sol.loss - float(value)) <= 1e-13 * abs(float(value))
            ref = conv.library_gradient(field, X0, theta, T, LOSS, rtol=rtol, atol=rtol, stop_times=STOPS)
            got = np.concatenate([np.asarray(g_g)[idx], np.asarray(g_x0)])
            # rounding of a chained N-step adjoint (1e-12, as in test_adaptive_diffrax.py)
            assert _relative(got, _flat(ref)) <= 1e-12, (problem, rtol, got, _flat(ref))
