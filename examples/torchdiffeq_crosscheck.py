r"""Worked example: ``torchdiffeq``'s two gradients of a neural ODE against refimpl's discrete and continuous ones.

Problem. :math:`\dot x = \tanh(W(t)x + b(t))`, :math:`d = 2`, :math:`T = 1`, :math:`L = \tfrac12|x(T) - y|^2`, with
*one parameter vector per step* (refimpl's ``layout="step"``, the ResNet view): :math:`\theta(t) = \theta_n` on step
:math:`n`, :math:`\theta_n = \Theta(t_n + h/2)` sampled from a smooth path :math:`\Theta` (a ``Sinusoid``). The
parameters are the N rows :math:`\theta_n`; both torchdiffeq routes differentiate with respect to the same tensor.

Two torchdiffeq gradients (torchdiffeq 0.2.5, source read in ``torchdiffeq/_impl``):

* ``odeint`` on the grid ``t = (t_0..t_N)`` with ``method`` ``"euler"`` / ``"midpoint"`` / ``"rk4"`` and
  ``options={"perturb": True}``, then ``loss.backward()`` (backprop through the solver = discretise-then-optimise).
  Without ``step_size`` the fixed-grid solver steps exactly on ``t`` (``grid_constructor`` returns ``t``).
  Mapping onto refimpl, exact: ``"euler"`` is ``FORWARD_EULER``; ``"midpoint"`` is ``MIDPOINT``
  (:math:`y_{1/2} = y_0 + \tfrac h2 f_0`, :math:`y_1 = y_0 + h f(t_0 + \tfrac h2, y_{1/2})`); torchdiffeq's ``"rk4"``
  is **not** the classical RK4 but Kutta's 3/8 rule (``rk4_alt_step_func``: :math:`k_2 = f(y_0 + \tfrac h3 k_1)`,
  :math:`k_3 = f(y_0 + h(k_2 - \tfrac13 k_1))`, :math:`k_4 = f(y_0 + h(k_1 - k_2 + k_3))`,
  :math:`y_1 = y_0 + \tfrac h8(k_1 + 3k_2 + 3k_3 + k_4)`), i.e. refimpl's ``RK38``.
  Which :math:`\theta_n` a stage uses: the field looks its parameter up from the time it is called with,
  :math:`n(t)` with :math:`t \in (t_n, t_{n+1}]` (left-continuous, :math:`n(t_0) = 0`). The stage at :math:`t_n`
  (c = 0) and the RK38 stage at :math:`t_{n+1}` (c = 1) sit on jumps of :math:`\theta(t)`; with ``perturb=True``
  torchdiffeq calls them at ``nextafter(t_n, +inf)`` and ``nextafter(t_{n+1}, -inf)``, so every stage of step n gets
  :math:`\theta_n` — exactly refimpl's ``"step"`` layout (checked: ``odeint`` = refimpl's discrete adjoint to
  rounding). Without ``perturb`` the c = 0 stage would read :math:`\theta_{n-1}`: a different discretisation.
  T = 1 and N a power of two make :math:`t_n = n h` and :math:`t_{n+1} - t_n = h` exact in binary.
* ``odeint_adjoint`` with the adaptive ``"dopri8"`` solver at ``rtol = atol = 1e-12`` for the forward *and* the
  backward (augmented adjoint) solve, ``options={"jump_t": t}`` so that steps land on every grid time and the
  stages at a jump are evaluated on the correct side (torchdiffeq perturbs the c = 1 stage to ``PREV`` and re-evaluates
  :math:`f` at ``NEXT`` after a jump; the backward solve, one ``odeint`` per output interval, starts at
  :math:`t_{n+1}` exactly, which the left-continuous lookup assigns to step n). This is the continuous adjoint
  (optimise-then-discretise) of the piecewise-constant-parameter ODE, solved to ~1e-12; it does *not* depend on the
  fixed-grid method.
* For contrast, ``odeint_adjoint`` on the *same fixed grid* (same method, ``perturb=True``, the backward solve on
  the reversed grid, where ``perturb`` again puts every stage inside step n): it re-integrates x backward and the
  augmented adjoint with the scheme, so it is O(h^p) away from *both* the discrete and the continuous gradient —
  consistent, but the exact gradient of neither :math:`L_h` nor :math:`L`.

refimpl references: the discrete adjoint :math:`\partial L_h/\partial\theta_n` by
:func:`refimpl.ode.adjoint_recursions.discrete_adjoint` (``layout="step"``), and the continuous gradient with respect
to :math:`\theta_n`, :math:`G_n = \int_{t_n}^{t_{n+1}} \partial_\theta f(x(t), \theta_n)^{\mathsf T} p(t)\,dt`
(derived: :math:`\theta_n` enters only on step n, and :math:`\delta L/\delta\theta(t) = \partial_\theta f^{\mathsf T}p`,
refimpl.ode.adjoint_ode), by :func:`continuous_gradient_per_step`: the ODE is smooth on each step, so it is
solved step by step with :func:`refimpl.ode.adjoint_ode.continuous_adjoint` (DOP853, rtol 1e-12) on
:math:`[0, h]` with the constant :math:`\theta_n` — forward to chain :math:`x(t_n)`, then backward with the linear
terminal loss :math:`p(t_{n+1})^{\mathsf T}x`, whose adjoint at the start is :math:`p(t_n)` and whose integrated
gradient is :math:`G_n`.

What it shows (printed; ``tests/test_oracle_torchdiffeq_example.py`` asserts it):

1. ``odeint`` + ``backward()`` = refimpl's discrete adjoint to rounding, for euler / midpoint / rk4(=RK38).
2. ``odeint_adjoint`` (adaptive) = refimpl's continuous :math:`G_n` to the solver tolerance, and differs from the
   discrete gradient by :math:`O(h^p)` relative (:math:`O(h^{p+1})` per component, the components being
   :math:`O(h)`), p the scheme's order: both are consistent, only the ``odeint`` one is the exact gradient of
   :math:`L_h`.
3. ``odeint_adjoint`` on the fixed grid is O(h^p) from both references.

Run: ``python examples/torchdiffeq_crosscheck.py``. Needs ``torch`` and ``torchdiffeq``; everything is float64.
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from torchdiffeq import odeint, odeint_adjoint

from refimpl.ode.adjoint_ode import continuous_adjoint
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import QuadraticLoss, TanhField, UserLoss
from refimpl.ode.schemes import FORWARD_EULER, MIDPOINT, RK38
from refimpl.oracle.ode_cases import Sinusoid

torch.set_default_dtype(torch.float64)

#: torchdiffeq fixed-grid method -> the refimpl tableau it implements (see the module docstring for "rk4")
METHODS = {"euler": FORWARD_EULER, "midpoint": MIDPOINT, "rk4": RK38}
ORDERS = {"euler": 1, "midpoint": 2, "rk4": 4}
D = 2
T = 1
X0 = (0.6, -0.4)
Y = (0.2, 0.5)
THETA_PATH = Sinusoid((0.5, -0.8, 0.9, 0.3, 0.1, -0.2), (0.3, 0.2, -0.4, 0.5, 0.2, 0.1), 2.0)
#: tolerance of the adaptive odeint_adjoint solves and of refimpl's DOP853 reference
ADAPTIVE_TOL = 1e-12


def step_parameters(N: int) -> np.ndarray:
    r""":math:`\theta_n = \Theta(t_n + h/2)`, shape (N, d² + d)."""
    if not isinstance(N, int) or N < 1:
        raise ValueError(f"N must be a positive integer, got {N!r}")
    h = T / N
    return np.stack([THETA_PATH((n + 0.5) * h) for n in range(N)])


# ---------------------------------------------------------------------------------------------------------------------
# the foreign implementation: a torch Module for torchdiffeq, nothing from refimpl


class PerStepTanhField(torch.nn.Module):
    r"""f(t, x) = tanh(W_n x + b_n) with (vec W_n, b_n) = ``theta[n(t)]``, n(t) = n for t in (t_n, t_{n+1}]."""

    def __init__(self, theta: np.ndarray, grid: torch.Tensor):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.tensor(theta))
        self.grid = grid
        self.d = D

    def forward(self, t, x):
        n = torch.clamp(torch.searchsorted(self.grid, t.reshape(1), right=False) - 1, 0, self.theta.shape[0] - 1)
        th = self.theta[int(n)]
        d = self.d
        return torch.tanh(th[: d * d].reshape(d, d) @ x + th[d * d:])


def _grid(N: int) -> torch.Tensor:
    return torch.arange(N + 1, dtype=torch.float64) * (T / N)  # exact for N a power of two


def _loss(xT):
    return 0.5 * torch.sum((xT - torch.tensor(Y)) ** 2)


def torchdiffeq_backprop_gradient(method: str, theta: np.ndarray) -> np.ndarray:
    """d loss / d theta by ``odeint`` on the fixed grid + ``loss.backward()``."""
    grid = _grid(theta.shape[0])
    func = PerStepTanhField(theta, grid)
    xs = odeint(func, torch.tensor(X0), grid, method=method, options={"perturb": True})
    _loss(xs[-1]).backward()
    return func.theta.grad.numpy().copy()


def torchdiffeq_adjoint_gradient(theta: np.ndarray, tol: float = ADAPTIVE_TOL) -> np.ndarray:
    """d loss / d theta by ``odeint_adjoint`` (dopri8 forward and backward, jumps at the grid times)."""
    grid = _grid(theta.shape[0])
    func = PerStepTanhField(theta, grid)
    xs = odeint_adjoint(func, torch.tensor(X0), grid, method="dopri8", rtol=tol, atol=tol,
                        options={"jump_t": grid})
    _loss(xs[-1]).backward()
    return func.theta.grad.numpy().copy()


def torchdiffeq_fixed_grid_adjoint_gradient(method: str, theta: np.ndarray) -> np.ndarray:
    """d loss / d theta by ``odeint_adjoint`` with the fixed-grid ``method`` forward and backward on the grid."""
    grid = _grid(theta.shape[0])
    func = PerStepTanhField(theta, grid)
    xs = odeint_adjoint(func, torch.tensor(X0), grid, method=method, options={"perturb": True})
    _loss(xs[-1]).backward()
    return func.theta.grad.numpy().copy()


# ---------------------------------------------------------------------------------------------------------------------
# refimpl's references


def discrete_gradient(method: str, theta: np.ndarray) -> np.ndarray:
    r"""refimpl's :math:`\partial L_h/\partial\theta_n`, ``layout="step"``."""
    return discrete_adjoint(TanhField(D), METHODS[method], np.array(X0), theta, T, theta.shape[0],
                            QuadraticLoss(np.array(Y)), layout="step").grad_theta


def continuous_gradient_per_step(theta: np.ndarray, rtol: float = ADAPTIVE_TOL) -> np.ndarray:
    r""":math:`G_n = \int_{t_n}^{t_{n+1}} \delta L/\delta\theta\,dt` for the piecewise-constant :math:`\theta`, step by
    step with refimpl's DOP853 continuous adjoint (module docstring)."""
    theta = np.asarray(theta, dtype=np.float64)
    N = theta.shape[0]
    h = T / N
    field = TanhField(D)
    xs = [np.array(X0, dtype=np.float64)]
    zero = QuadraticLoss(np.zeros(D))
    for n in range(N):  # forward chain x(t_n)
        xs.append(continuous_adjoint(field, theta[n], xs[-1], h, zero, times=[0.0, h], rtol=rtol,
                                     error_estimate=None).x_final)
    p = xs[-1] - np.array(Y)  # p(T) = grad of 1/2|x - y|^2
    G = np.empty_like(theta)
    for n in range(N - 1, -1, -1):
        pn = p.copy()
        linear = UserLoss(lambda x, pn=pn: float(pn @ np.asarray(x)), lambda x, pn=pn: pn, name="p(t_{n+1}).x")
        r = continuous_adjoint(field, theta[n], xs[n], h, linear, times=[0.0, h], rtol=rtol, error_estimate=None)
        G[n] = r.integrated_gradient
        p = r.p[0]
    return G


# ---------------------------------------------------------------------------------------------------------------------


def relative_max(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a − ref| / max |ref|."""
    return float(np.max(np.abs(a - ref)) / np.max(np.abs(ref)))


def comparison(Ns=(8, 16, 32), methods=tuple(METHODS)) -> list[dict]:
    """One row per (method, N): the relative max differences of the table."""
    rows = []
    for N in Ns:
        theta = step_parameters(N)
        cont = continuous_gradient_per_step(theta)
        adj = torchdiffeq_adjoint_gradient(theta)
        for m in methods:
            disc = discrete_gradient(m, theta)
            bp = torchdiffeq_backprop_gradient(m, theta)
            fixed = torchdiffeq_fixed_grid_adjoint_gradient(m, theta)
            rows.append({"method": m, "N": N, "odeint-discrete": relative_max(bp, disc),
                         "adjoint-discrete": relative_max(adj, disc), "adjoint-continuous": relative_max(adj, cont),
                         "odeint-adjoint": relative_max(bp, adj), "fixed_adjoint-discrete": relative_max(fixed, disc),
                         "fixed_adjoint-continuous": relative_max(fixed, cont)})
    return rows


def table(rows) -> str:
    """The comparison as text: adaptive ``odeint_adjoint`` in the middle columns, fixed-grid on the right."""
    head = (f"{'method':>9} {'N':>4}  {'|odeint-discrete|':>18} {'|odeint_adjoint-discrete|':>26} "
            f"{'|odeint_adjoint-continuous|':>28}  {'|fixed_adj-discrete|':>21} {'|fixed_adj-continuous|':>23}")
    lines = [head, "(relative: max abs difference / max abs reference; discrete = refimpl dL_h/dtheta_n, "
                   "continuous = refimpl int_step dL/dtheta dt; odeint_adjoint = adaptive dopri8 at 1e-12, "
                   "fixed_adj = odeint_adjoint on the same fixed grid)"]
    for r in sorted(rows, key=lambda r: (list(METHODS).index(r["method"]), r["N"])):
        lines.append(f"{r['method']:>9} {r['N']:>4}  {r['odeint-discrete']:>18.2e} {r['adjoint-discrete']:>26.2e} "
                     f"{r['adjoint-continuous']:>28.2e}  {r['fixed_adjoint-discrete']:>21.2e} "
                     f"{r['fixed_adjoint-continuous']:>23.2e}")
    return "\n".join(lines)


def main() -> int:
    torch.set_num_threads(1)
    print(table(comparison()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
