"""diffrax 0.7 (JAX, float64, CPU) against refimpl's ``diffrax`` convention (refimpl/ode/conventions.py).

``diffeqsolve(ODETerm, Dopri5()/Tsit5()/Bosh3()/Heun(), PIDController(rtol, atol), SaveAt(t1=True),
RecursiveCheckpointAdjoint())``:
the accepted grid is the convention's grid (to the rounding of the error estimate), the loss is the convention's, and
the gradient is exactly one refimpl variant — the frozen-grid discrete adjoint (a) on the accepted grid — and not the
full discrete adjoint (b). ``BacksolveAdjoint`` is the continuous adjoint (c) to the accuracy its tolerances allow.
Skipped, with the reason, where JAX or diffrax is not installed.
"""
import os

os.environ.setdefault("JAX_ENABLE_X64", "1")

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="the diffrax cross-check needs jax (pip install jax diffrax)")
diffrax = pytest.importorskip("diffrax", reason="the diffrax cross-check needs diffrax (pip install diffrax)")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

from refimpl.ode.adaptive import continuous_gradient, grid_rounding  # noqa: E402
from refimpl.ode.conventions import DiffraxConvention, convention  # noqa: E402
from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField, TwoLayerTanhField  # noqa: E402

EPS = np.finfo(float).eps
T = 2.0
RTOLS = (1e-3, 1e-6, 1e-9)
MAX_STEPS = 512


D = M = 2  # state dimension; hidden width of the two-layer field


def _generic_field(y, g):
    r"""One JAX field for all three problems, so each solver compiles once:
    :math:`f(y) = Ay + c + W_2\tanh(W_1y + b)` with g = (A, c, W₁, b, W₂) flattened. tanh: A = 0, c = 0, W₂ = I;
    two-layer: A = 0, c = 0; linear: W₂ = 0. The extra terms are exact zeros (0·v = 0, v + 0 = v, I·v = v in floating
    point), so the values are bit for bit those of the problem's own formula."""
    A = g[: D * D].reshape(D, D)
    c = g[D * D: D * D + D]
    o = D * D + D
    W1 = g[o: o + M * D].reshape(M, D)
    b = g[o + M * D: o + M * D + M]
    W2 = g[o + M * D + M:].reshape(D, M)
    return A @ y + c + W2 @ jnp.tanh(W1 @ y + b)


def _embed(problem, theta):
    """(the generic parameter vector g of :func:`_generic_field`, the indices of g that are the problem's θ)."""
    zeros = np.zeros
    o = D * D + D
    if problem == "linear":
        g = np.concatenate([theta, zeros(M * D + M + D * M)])
        return g, np.arange(D * D + D)
    W1b = theta[: M * D + M]
    W2 = np.eye(D).ravel() if problem == "tanh" else theta[M * D + M:]
    g = np.concatenate([zeros(o), W1b, W2])
    idx = np.arange(o, o + M * D + M) if problem == "tanh" else np.arange(o, o + M * D + M + D * M)
    return g, idx


def _problems():
    rng = np.random.default_rng(1307)
    tanh = TanhField(D)
    two = TwoLayerTanhField(D, M)
    lin = LinearField(D)
    return {
        "tanh": (tanh, tanh.pack([[0.5, -1.0], [1.2, 0.3]], [0.1, -0.2])),
        "two_layer": (two, two.pack(rng.normal(size=(M, D)), rng.normal(size=M) * 0.3, rng.normal(size=(D, M)))),
        "linear": (lin, lin.pack([[-0.5, 1.0], [-1.0, -0.3]], [0.2, 0.1])),
    }


PROBLEMS = _problems()
X0 = np.array([1.0, -0.5])
Y = np.array([0.3, -0.1])
LOSS = QuadraticLoss(Y)


def _relative(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


_COMPILED = {}


def _diffrax_run(solver: str):
    """jit(value_and_grad) of the diffrax loss, returning the accepted grid and the step counts as auxiliary output
    (compiled once per solver; the problem's parameters, rtol and atol are traced)."""
    key = solver
    if key not in _COMPILED:
        term = diffrax.ODETerm(lambda t, y, g: _generic_field(y, g))
        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), diffrax.SubSaveAt(steps=True)])

        def loss(th, x0, rtol, atol):
            sol = diffrax.diffeqsolve(term, getattr(diffrax, solver)(), 0.0, T, None, x0, args=th,
                                      stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                                      saveat=saveat, adjoint=diffrax.RecursiveCheckpointAdjoint(),
                                      max_steps=MAX_STEPS)
            xT = sol.ys[0][-1]
            return 0.5 * jnp.sum((xT - Y) ** 2), (sol.ts[1], sol.stats["num_accepted_steps"],
                                                 sol.stats["num_rejected_steps"])

        _COMPILED[key] = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    return _COMPILED[key]


def _library(problem, solver, rtol):
    field, theta = PROBLEMS[problem]
    g, idx = _embed(problem, theta)
    (value, (ts, accepted, rejected)), (g_g, g_x0) = _diffrax_run(solver)(jnp.asarray(g), jnp.asarray(X0), rtol, rtol)
    g_theta = np.asarray(g_g)[idx]
    n = int(accepted)
    grid = np.concatenate([[0.0], np.asarray(ts)[:n]])
    return {"loss": float(value), "grid": grid, "rejected": int(rejected), "grad_theta": np.asarray(g_theta),
            "grad_x0": np.asarray(g_x0)}


def _grid_tolerance(sol) -> float:
    # how far two correct implementations' grids may drift apart (derivation: refimpl.ode.adaptive.grid_rounding)
    return grid_rounding(sol)


#: Bosh3 and Heun cost one XLA compilation each (~5 s CPU): in the slow run (-m slow), keeping this file < 60 s
CASES = [(p, s) for p in PROBLEMS for s in ("Dopri5", "Tsit5")] + [
    pytest.param(p, s, marks=pytest.mark.slow) for p in ("tanh", "linear") for s in ("Bosh3", "Heun")]
#: the low-order pairs stop at rtol 1e-5 (Heun needs ~300 steps there, more than MAX_STEPS beyond)
RTOLS_BY_SOLVER = {"Dopri5": RTOLS, "Tsit5": RTOLS, "Bosh3": (1e-3, 1e-5), "Heun": (1e-3, 1e-5)}


@pytest.mark.parametrize("problem,solver", CASES)
def test_recursive_checkpoint_adjoint_is_the_frozen_grid_adjoint(problem, solver):
    field, theta = PROBLEMS[problem]
    conv = convention(f"diffrax:{solver}")
    for rtol in RTOLS_BY_SOLVER[solver]:
        lib = _library(problem, solver, rtol)
        sol = conv.solve(field, X0, theta, T, rtol=rtol, atol=rtol, loss=LOSS)
        # the same accept/reject sequence ...
        assert (sol.N, sol.n_rejected) == (len(lib["grid"]) - 1, lib["rejected"]), (rtol, sol, lib["grid"])
        # ... on the same grid, to the rounding of the error estimate (see _grid_tolerance)
        assert np.max(np.abs(sol.grid - lib["grid"])) <= _grid_tolerance(sol), (rtol, sol.grid - lib["grid"])
        # loss: the same arithmetic in another order, over N <= 60 steps of s <= 7 stages: 1e-13 relative is ~ N s eps
        # with room (measured <= 2e-15)
        assert abs(sol.loss - lib["loss"]) <= 1e-13 * abs(lib["loss"])
        ref = conv.library_gradient(field, X0, theta, T, LOSS, rtol=rtol, atol=rtol)
        assert ref.kind == "frozen_grid"
        got = np.concatenate([lib["grad_theta"], lib["grad_x0"]])
        want = np.concatenate([ref.grad_theta, ref.grad_x0])
        # same arithmetic in another order: the rounding of a chained N-step adjoint, far below 1e-12 (measured
        # <= 5.3e-14); the grid dependence of (b) differs by 1.3e-11 to 4.9e-3 wherever the factors are not clipped
        # (control below)
        assert _relative(got, want) <= 1e-12, (rtol, got, want)
        # the hand adjoint on the non-uniform grid (NumPy recursion, layout "constant") is the same gradient
        hand = conv.library_gradient(field, X0, theta, T, LOSS, rtol=rtol, atol=rtol, route="numpy")
        assert _relative(got, np.concatenate([hand.grad_theta, hand.grad_x0])) <= 1e-12


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_the_library_gradient_is_not_the_full_discrete_adjoint(problem):
    """Control: (b) with nothing detached (the controller's dependence on θ, x0 on the tape) differs from what
    diffrax returns by far more than the 1e-12 agreement above — the match with (a) is a statement, not a tolerance."""
    field, theta = PROBLEMS[problem]
    conv = convention("diffrax:Dopri5")
    # at rtol 1e-3 every accepted factor is clipped at factormax (r ~ 1e-6) and the last step is clipped to T: (b)
    # and (a) then coincide; at 1e-6 the factors are r-dependent
    rtol = 1e-6
    lib = _library(problem, "Dopri5", rtol)
    full = conv.full_discrete_gradient(field, X0, theta, T, LOSS, rtol=rtol, atol=rtol)
    got = np.concatenate([lib["grad_theta"], lib["grad_x0"]])
    assert _relative(got, np.concatenate([full.grad_theta, full.grad_x0])) > 1e-9
    # and (b) with diffrax's detachments (h0 and every controller output) is (a) again
    det = conv.full_discrete_gradient(field, X0, theta, T, LOSS, rtol=rtol, atol=rtol, detach=conv.detach)
    assert _relative(got, np.concatenate([det.grad_theta, det.grad_x0])) <= 1e-12


def test_diffeqsolve_first_step_is_0_01():
    """diffrax 0.7.2 with dt0=None: the first attempted step is 0.01 on every problem (pid.py:_select_initial_step
    returns 0.01 for the WrapTerm diffeqsolve passes it), which the convention encodes as h0 = 0.01."""
    assert DiffraxConvention().h0 == DiffraxConvention.UNWRAPPED_DT0 == 0.01
    for problem in PROBLEMS:
        lib = _library(problem, "Dopri5", 1e-6)
        # the first step 0.01 is accepted on these problems (its error ratio is tiny at rtol 1e-3)
        assert lib["grid"][1] == 0.01


BACKSOLVE_TOL = 1e-10


def _lipschitz(field, theta) -> float:
    """A global bound of ‖∂ₓf‖₂: ‖W‖₂ for tanh(Wx + b) (sech² ≤ 1), ‖W₂‖₂‖W₁‖₂ for W₂ tanh(W₁x + b), ‖A‖₂."""
    if isinstance(field, TwoLayerTanhField):
        W1, _, W2 = field.unpack(theta)
        return float(np.linalg.norm(W2, 2) * np.linalg.norm(W1, 2))
    return float(np.linalg.norm(field.unpack(theta)[0], 2))


def test_backsolve_adjoint_is_the_continuous_adjoint():
    r"""``BacksolveAdjoint`` solves the adjoint ODE backwards with the same PID controller, so it is (c) up to the
    global error of two tolerance-controlled solves (forward y(T), backward (y, λ, ∫∂θfᵀλ)). A local error ≤ tol per
    step (RMS-scaled by atol + rtol|y|, so absolute ~ tol·max(1, |y|)) accumulates over the N accepted steps and is
    carried by the adjoint's growth; bound: N · tol · max(1, |∇L|) · e^{L T} with L a global bound of ‖∂ₓf‖₂
    (:func:`_lipschitz`). The reference (c) is refimpl's DOP853 solve at rtol 1e-12."""
    term = diffrax.ODETerm(lambda t, y, g: _generic_field(y, g))

    def loss(g, x0):
        sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), 0.0, T, None, x0, args=g,
                                  stepsize_controller=diffrax.PIDController(rtol=BACKSOLVE_TOL, atol=BACKSOLVE_TOL),
                                  adjoint=diffrax.BacksolveAdjoint(), max_steps=4096)
        return 0.5 * jnp.sum((sol.ys[-1] - Y) ** 2), sol.stats["num_accepted_steps"]

    run = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    for problem in ("tanh", "two_layer"):
        field, theta = PROBLEMS[problem]
        g, idx = _embed(problem, theta)
        (value, n_acc), (g_g, g_x0) = run(jnp.asarray(g), jnp.asarray(X0))
        g_theta = np.asarray(g_g)[idx]
        ref = continuous_gradient(field, X0, theta, T, LOSS, rtol=1e-12)
        got = np.concatenate([np.asarray(g_theta), np.asarray(g_x0)])
        want = np.concatenate([ref.grad_theta, ref.grad_x0])
        lip = _lipschitz(field, theta)
        bound = int(n_acc) * BACKSOLVE_TOL * max(1.0, np.max(np.abs(want))) * np.exp(max(lip, 1.0) * T)
        err = float(np.max(np.abs(got - want)))
        assert err <= bound, (problem, err, bound)
        assert abs(float(value) - ref.loss) <= bound
