"""torchdiffeq 0.2.5 (CPU, float64) against refimpl's ``torchdiffeq`` convention (refimpl/ode/conventions.py).

``odeint(func, x0, t=[0, T], method=m, rtol, atol)`` + ``backward()`` for m in dopri5, bosh3, fehlberg2,
adaptive_heun: the accepted grid (it ends past T: torchdiffeq does not clip, it interpolates) is the convention's grid
to the rounding of the error estimate, the loss is the convention's, and the gradient is exactly one refimpl variant —
the full discrete adjoint (b) with the controller's step sizes detached and the starting step attached — and neither
the frozen-grid adjoint nor (b) with the starting step detached (which is what ``options={"first_step": h0}`` gives).
``odeint_adjoint`` is the continuous adjoint (c) to the accuracy its tolerances allow. Skipped, with the reason, where
torch or torchdiffeq is not installed.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torchdiffeq cross-check needs torch (pip install torch torchdiffeq)")
torchdiffeq = pytest.importorskip("torchdiffeq", reason="the torchdiffeq cross-check needs torchdiffeq")

from refimpl.ode.adaptive import continuous_gradient, grid_rounding  # noqa: E402
from refimpl.ode.conventions import TorchdiffeqConvention, convention  # noqa: E402
from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField, TwoLayerTanhField  # noqa: E402

EPS = np.finfo(float).eps
T = 2.0
RTOLS = (1e-3, 1e-6, 1e-9)
D = M = 2
X0 = np.array([1.0, -0.5])
Y = np.array([0.3, -0.1])
LOSS = QuadraticLoss(Y)


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


class TorchField(torch.nn.Module):
    """The refimpl field's formula in torch, θ one flat parameter; records torchdiffeq's accepted and rejected
    attempts through its step callbacks (``rk_common.py:_adaptive_step`` calls them with (t0, y0, dt))."""

    def __init__(self, problem, theta):
        super().__init__()
        self.problem = problem
        self.theta = torch.nn.Parameter(torch.tensor(theta, dtype=torch.float64))
        self.accepted, self.rejected = [], []

    def forward(self, t, x):
        th = self.theta
        if self.problem == "linear":
            return th[: D * D].reshape(D, D) @ x + th[D * D:]
        if self.problem == "tanh":
            return torch.tanh(th[: D * D].reshape(D, D) @ x + th[D * D:])
        W1, b, W2 = th[: M * D].reshape(M, D), th[M * D: M * D + M], th[M * D + M:].reshape(D, M)
        return W2 @ torch.tanh(W1 @ x + b)

    def callback_accept_step(self, t0, y0, dt):
        self.accepted.append((float(t0.detach()), float(dt.detach())))

    def callback_reject_step(self, t0, y0, dt):
        self.rejected.append((float(t0.detach()), float(dt.detach())))


def _library(problem, method, rtol, *, adjoint=False, first_step=None):
    _, theta = PROBLEMS[problem]
    func = TorchField(problem, theta)
    x0 = torch.tensor(X0, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0.0, T], dtype=torch.float64)
    options = None if first_step is None else {"first_step": first_step}
    solve = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    out = solve(func, x0, t, rtol=rtol, atol=rtol, method=method, options=options)
    loss = 0.5 * torch.sum((out[-1] - torch.tensor(Y, dtype=torch.float64)) ** 2)
    loss.backward()
    grid = np.array([0.0] + [t0 + dt for t0, dt in func.accepted])
    return {"loss": float(loss.detach()), "grid": grid, "rejected": len(func.rejected),
            "grad": np.concatenate([func.theta.grad.numpy(), x0.grad.numpy()])}


def _relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


def _flat(g):
    return np.concatenate([g.grad_theta, g.grad_x0])


def _grid_tolerance(sol) -> float:
    # how far two correct implementations' grids may drift apart (derivation: refimpl.ode.adaptive.grid_rounding)
    return grid_rounding(sol)


CASES = [(p, "dopri5") for p in PROBLEMS] + [("tanh", m) for m in ("bosh3", "fehlberg2", "adaptive_heun")]
#: rtol 1e-9 costs a 2nd-order pair ~2e4 steps (minutes on the tape): the low-order methods stop at 1e-6
RTOLS_BY_METHOD = {"dopri5": RTOLS, "bosh3": RTOLS, "fehlberg2": RTOLS[:2], "adaptive_heun": RTOLS[:2]}


@pytest.mark.parametrize("problem,method", CASES)
def test_odeint_backward_is_the_full_discrete_adjoint_with_its_detachments(problem, method):
    field, theta = PROBLEMS[problem]
    conv = convention(f"torchdiffeq:{method}")
    for rtol in RTOLS_BY_METHOD[method]:
        lib = _library(problem, method, rtol)
        sol = conv.solve(field, X0, theta, T, rtol=rtol, atol=rtol, loss=LOSS)
        assert (sol.N, sol.n_rejected) == (len(lib["grid"]) - 1, lib["rejected"]), (rtol, sol, lib["grid"])
        assert sol.grid[-1] >= T  # stepped past T, never clipped
        assert np.max(np.abs(sol.grid - lib["grid"])) <= _grid_tolerance(sol), (rtol, sol.grid - lib["grid"])
        # the same arithmetic in another order: each of the N steps of s stages adds O(s) roundings, 4 N s eps relative
        assert abs(float(sol.loss) - lib["loss"]) <= 4 * sol.N * conv.pair.stages * EPS * abs(lib["loss"])
        ref = conv.library_gradient(field, X0, theta, T, LOSS, rtol=rtol, atol=rtol)
        assert ref.kind == "full_discrete"
        # rounding of a chained adjoint (measured <= 1.5e-14); the nearest other variant, the frozen grid, differs by
        # 5.8e-12 (rtol 1e-9) to 2.3e-4 (rtol 1e-3) on these problems (control test below)
        assert _relative(lib["grad"], _flat(ref)) <= 1e-12, (rtol, lib["grad"], _flat(ref))


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_the_starting_step_is_on_the_graph(problem):
    """torchdiffeq differentiates its starting-step heuristic (misc.py:_select_initial_step has no no_grad). Controls:
    the frozen-grid variant ((b) with the starting step detached as well) differs from odeint's gradient far above the
    1e-12 agreement, and it IS what odeint returns when the same starting step is passed as a constant
    (options={"first_step": h0})."""
    field, theta = PROBLEMS[problem]
    conv = convention("torchdiffeq:dopri5")
    rtol = 1e-3
    lib = _library(problem, "dopri5", rtol)
    frozen = conv.full_discrete_gradient(field, X0, theta, T, LOSS, rtol=rtol, atol=rtol, detach={"h0", "h"})
    assert _relative(lib["grad"], _flat(frozen)) > 1e-9
    sol = conv.solve(field, X0, theta, T, rtol=rtol, atol=rtol)
    constant_h0 = _library(problem, "dopri5", rtol, first_step=float(sol.h0))
    assert _relative(constant_h0["grad"], _flat(frozen)) <= 1e-12


ADJOINT_TOL = 1e-10


def _lipschitz(field, theta) -> float:
    """A global bound of ‖∂ₓf‖₂: ‖W‖₂ for tanh(Wx + b) (sech² ≤ 1), ‖W₂‖₂‖W₁‖₂ for W₂ tanh(W₁x + b), ‖A‖₂."""
    if isinstance(field, TwoLayerTanhField):
        W1, _, W2 = field.unpack(theta)
        return float(np.linalg.norm(W2, 2) * np.linalg.norm(W1, 2))
    return float(np.linalg.norm(field.unpack(theta)[0], 2))


@pytest.mark.parametrize("problem", ["tanh", "two_layer"])
def test_odeint_adjoint_is_the_continuous_adjoint(problem):
    r"""``odeint_adjoint`` integrates (y, λ, ∫∂θfᵀλ) backwards with dopri5 at the same tolerances: (c) up to the
    global error of two tolerance-controlled solves, N · tol · max(1, |∇L|) · e^{L T} (N accepted forward steps, L a
    global bound of ‖∂ₓf‖₂). The reference (c) is refimpl's DOP853 solve at rtol 1e-12."""
    field, theta = PROBLEMS[problem]
    lib = _library(problem, "dopri5", ADJOINT_TOL, adjoint=True)
    ref = continuous_gradient(field, X0, theta, T, LOSS, rtol=1e-12)
    want = _flat(ref)
    n = len(lib["grid"]) - 1
    bound = n * ADJOINT_TOL * max(1.0, np.max(np.abs(want))) * np.exp(max(_lipschitz(field, theta), 1.0) * T)
    assert np.max(np.abs(lib["grad"] - want)) <= bound
    assert abs(lib["loss"] - ref.loss) <= bound


def test_convention_data_matches_the_installed_sources():
    """The convention's numbers are torchdiffeq's: the tableau floats, the interpolant weights and the controller
    constants, read from the installed package."""
    from torchdiffeq._impl.adaptive_heun import AdaptiveHeunSolver
    from torchdiffeq._impl.bosh3 import Bosh3Solver
    from torchdiffeq._impl.dopri5 import Dopri5Solver
    from torchdiffeq._impl.fehlberg2 import Fehlberg2
    for method, cls in (("dopri5", Dopri5Solver), ("bosh3", Bosh3Solver), ("fehlberg2", Fehlberg2),
                        ("adaptive_heun", AdaptiveHeunSolver)):
        conv = TorchdiffeqConvention(method)
        tab = cls.tableau
        s = conv.pair.stages
        assert conv.pair.order == cls.order
        assert list(conv.pair.b) == tab.c_sol.tolist()
        assert list(conv.pair.b_err) == tab.c_error.tolist()
        for i, beta in enumerate(tab.beta):
            assert list(conv.pair.A[i + 1][: i + 1]) == beta.tolist()
        assert len(tab.beta) == s - 1
        assert list(conv.output.mid) == cls.mid.tolist()


@pytest.mark.parametrize("method", ["adaptive_heun", "fehlberg2"])
def test_non_fsal_pairs_reuse_the_lower_order_stage(method):
    """Control for ``reuse_last_stage="always"``: torchdiffeq starts each step with the previous step's last stage,
    f at the lower-order solution (rk_common.py:_runge_kutta_step returns k[..., -1] as f1). Chaining the pair as a
    Runge-Kutta method (first stage f(x_n)) gives another loss, by far more than rounding (measured 1e-3, 3e-5)."""
    from refimpl.ode.adaptive import adaptive_solve
    field, theta = PROBLEMS["tanh"]
    conv = convention(f"torchdiffeq:{method}")
    lib = _library("tanh", method, 1e-3)
    options = dict(conv.solve_options(), reuse_last_stage="fsal")
    plain = adaptive_solve(field, conv.pair, X0, theta, T, rtol=1e-3, atol=1e-3, loss=LOSS, **options)
    assert abs(float(plain.loss) - lib["loss"]) > 1e-6 * abs(lib["loss"])
    same = conv.solve(field, X0, theta, T, rtol=1e-3, atol=1e-3, loss=LOSS)
    assert abs(float(same.loss) - lib["loss"]) <= 4 * same.N * conv.pair.stages * EPS * abs(lib["loss"])
