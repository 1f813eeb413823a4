r"""Continuous adjoint of a problem whose parameter is a table held constant on each step — the gradient that
backsolve-type adjoints (diffrax ``BacksolveAdjoint``, torchdiffeq ``odeint_adjoint``) return for a per-step-constant
parameter table (derived in docs/theory/continuous-adjoint.md §8).

Problem. A grid 0 = t₀ < t₁ < … < t_N = T (uniform t_n = nT/N unless given) and a table θ₀, …, θ_{N−1} ∈ ℝᵖ:

    ẋ = f(x, θ_n)  on [t_n, t_{n+1}),     x(0) = x₀,     L = Φ(x(T)).

θ(t) jumps at the grid times; x is continuous there (it solves an ODE with a bounded right-hand side), but ẋ is not.
The table is the parameter, and the gradient asked for is ∂L/∂θ_n for each row, together with ∂L/∂x₀.

Formulas (§8 of the theory file; the general adjoint equation is §1 there, Pontryagin / Chen et al. 2018). The adjoint
λ(t) = ∇_{x(t)} L solves, on each piece,

    λ′(t) = −∂ₓf(x(t), θ_n)ᵀ λ(t),   t ∈ (t_n, t_{n+1}),      λ(T) = ∇Φ(x(T)),

and is **continuous at the breakpoints** (λ(t_n) = ∇_{x(t_n)}L and x(t_n) is one state shared by both pieces: there is
no jump condition because the breakpoints do not depend on θ). The gradient of each row is the integral over its piece

    ∂L/∂θ_n = ∫_{t_n}^{t_{n+1}} ∂_θf(x(t), θ_n)ᵀ λ(t) dt,        ∂L/∂x₀ = λ(0).

(The functional derivative δL/δθ(t) = ∂_θfᵀλ of §1, integrated against the indicator of [t_n, t_{n+1}).) Consequences
used by the tests: for a table with N equal rows θ, Σ_n ∂L/∂θ_n is the integrated gradient ∫₀ᵀ∂_θfᵀλ dt = dL/dθ of the
constant-θ problem; for rows sampled from a smooth θ(·), ∂L/∂θ_n / h_n → δL/δθ(t) as the grid is refined.

A table of shape (1, p) is the constant parameter θ: the same θ on every piece, and the gradient (1, p) is the sum of
the per-piece integrals (with a grid of more than two times, the grid only says where the solver must stop).

Numerical route (that of :func:`refimpl.ode.adjoint_ode.continuous_adjoint`, applied piece by piece):

1. Forward, for n = 0 … N−1: SciPy's DOP853 on [t_n, t_{n+1}] from x(t_n) with θ_n, with dense output. No step of the
   integrator crosses a breakpoint, so each solve sees a smooth right-hand side and keeps its order (a step across a
   jump of θ would fall to first order there and mislead its error control).
2. Backward, for n = N−1 … 0: DOP853 on [t_{n+1}, t_n] for the augmented system (λ, s), λ′ = −∂ₓfᵀλ,
   s′ = −∂_θf(x(t), θ_n)ᵀλ, from (λ(t_{n+1}), 0), reading x(t) from piece n's dense output. Then λ(t_n) starts the
   backward solve of piece n − 1, and ∂L/∂θ_n = s(t_n).

With one piece this is the same sequence of SciPy calls as ``continuous_adjoint`` with the constant θ, so the two give
the same numbers at the same tolerances (tested).

Error estimate ("tighter", derived in docs/theory/continuous-adjoint.md §4): the whole computation is repeated with rtol
and atol 100× smaller (rtol floored at SciPy's 100·eps) and with every step of piece n at most half the largest step
of piece n in the first run (forward or backward, whichever is smaller — the cap of ``continuous_adjoint``, per piece).
The bound for each quantity is 2·max|Δ| + 256·eps·max|value|, Δ the difference between the runs: if the tighter run is
at least twice as accurate, the first run's error is at most 2|Δ|.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field

import numpy as np
from scipy.integrate import solve_ivp

from refimpl.arguments import NonFiniteError, as_float_array, as_points_1d, as_real_scalar, check_finite
from refimpl.ode.dop853 import DOP853
from refimpl.ode.adjoint_ode import (EPS, MIN_TIGHTENING, ROUNDING_FLOOR_ULPS, SCIPY_MIN_RTOL, _check_field,
                                     _loss_value, _make_problem)

__all__ = ["PiecewiseAdjointErrorEstimate", "PiecewiseConstantAdjointResult", "piecewise_constant_continuous_gradient"]

_QUANTITIES = ("loss", "x_final", "grad_x0", "grad_theta")


@dataclass(frozen=True)
class PiecewiseAdjointErrorEstimate:
    """Estimated max-abs error of each quantity of a :class:`PiecewiseConstantAdjointResult`.

    ``method`` says how it was obtained; each other field is an absolute error bound (a float) for the quantity of the
    same name in the result (for arrays: for every entry).
    """

    method: str
    loss: float
    x_final: float
    grad_x0: float
    grad_theta: float

    def __repr__(self) -> str:
        parts = ", ".join(f"{q}≤{getattr(self, q):.2e}" for q in _QUANTITIES)
        return f"PiecewiseAdjointErrorEstimate({self.method}: {parts})"


@dataclass(frozen=True, repr=False)
class PiecewiseConstantAdjointResult:
    """The continuous gradient of a problem with a per-step-constant parameter table.

    Attributes
    ----------
    grid : (N+1,) breakpoints 0 = t₀ < … < t_N = T.
    theta_table : (n, p) the table (n = N, or n = 1 for a constant θ).
    x : (N+1, d) states x(t_n) at the breakpoints (x[0] = x₀, x[-1] = x(T)).
    p : (N+1, d) adjoint λ(t_n) = ∇_{x(t_n)} L at the breakpoints (p[-1] = ∇Φ(x(T)), p[0] = grad_x0).
    grad_theta : (n, p) ∂L/∂θ_n = ∫_{t_n}^{t_{n+1}} ∂_θf(x, θ_n)ᵀλ dt (for n = 1: the sum over the pieces).
    grad_x0 : (d,) ∂L/∂x₀ = λ(0).
    x_final : (d,) x(T).
    loss : Φ(x(T)).
    error : :class:`PiecewiseAdjointErrorEstimate` or None (``error_estimate=None``).
    rtol, atol : the DOP853 tolerances of the reported run.
    stats : function evaluations and steps (``forward_nfev``, ``backward_nfev``, ``estimate_nfev``, …).
    """

    grid: np.ndarray
    theta_table: np.ndarray
    x: np.ndarray
    p: np.ndarray
    grad_theta: np.ndarray
    grad_x0: np.ndarray
    x_final: np.ndarray
    loss: float
    error: PiecewiseAdjointErrorEstimate | None
    rtol: float
    atol: float
    stats: dict = dataclass_field(default_factory=dict)

    @property
    def nfev(self) -> int:
        """Field evaluations of all solves (reported run and error-estimate run): f in the forward solves, one
        (vjp_x, vjp_theta) pair per backward right-hand side."""
        return int(self.stats["forward_nfev"] + self.stats["backward_nfev"] + self.stats.get("estimate_nfev", 0))

    def __repr__(self) -> str:
        n_rows, n_p = self.grad_theta.shape
        d = self.grad_x0.shape[0]
        kind = "constant θ" if n_rows == 1 else f"{n_rows} rows"
        pieces = len(self.grid) - 1
        lines = [
            f"PiecewiseConstantAdjointResult(DOP853 per piece; d={d}, p={n_p}, {kind}, {pieces} "
            f"piece{'s' if pieces > 1 else ''} on [0, {self.grid[-1]:.6g}])",
            f"  loss = {self.loss:.15g},  x(T) = {np.array2string(self.x_final, precision=6)}",
            f"  grad_x0 = {np.array2string(self.grad_x0, precision=10)}",
            f"  grad_theta ({n_rows}, {n_p}): max|.| = {np.max(np.abs(self.grad_theta)):.6g}, sum over rows = "
            f"{np.array2string(self.grad_theta.sum(axis=0), precision=8, max_line_width=10**6)}",
            f"  error: {self.error!r}",
            f"  rtol = {self.rtol:.1e}, atol = {self.atol:.1e}, nfev = {self.nfev}",
        ]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------------
# argument checks


def _check_table(theta_table, n_p: int) -> np.ndarray:
    table = as_float_array(theta_table, "theta_table", what="a real (N, p) array", finite=False)
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] != n_p:
        hint = " (one row per step; a constant θ is theta_table.reshape(1, -1))" if table.ndim == 1 else ""
        raise ValueError(f"theta_table must have shape (N, {n_p}) with N ≥ 1 (field.n_params = {n_p}), got shape "
                         f"{table.shape}{hint}")
    check_finite(table, "theta_table")
    out = np.array(table, dtype=np.float64)  # a private copy: the result holds it
    out.flags.writeable = False
    return out


def _check_grid(grid, T: float, n_rows: int) -> np.ndarray:
    if grid is None:
        out = np.linspace(0.0, T, n_rows + 1)
    else:
        out = as_points_1d(grid, "grid", copy=True)
        if out.size < 2:
            raise ValueError(f"grid must hold N + 1 ≥ 2 times 0 = t_0 < … < t_N = T, got {out.size}")
        if n_rows > 1 and out.size != n_rows + 1:
            raise ValueError(f"grid must hold N + 1 = {n_rows + 1} times for a theta_table of {n_rows} rows, got "
                             f"{out.size}")
        if out[0] != 0.0:
            raise ValueError(f"grid must start at 0, got grid[0] = {out[0]!r}")
        if out[-1] != T:
            raise ValueError(f"grid must end at T = {T!r}, got grid[-1] = {out[-1]!r}")
        steps = np.diff(out)
        if np.any(steps <= 0.0):
            n = int(np.argmax(steps <= 0.0))
            raise ValueError(f"grid must be strictly increasing, got grid[{n}] = {out[n]!r} ≥ grid[{n + 1}] = "
                             f"{out[n + 1]!r}")
    out.flags.writeable = False
    return out


# ----------------------------------------------------------------------------------------------------------------------
# one run (forward then backward, piece by piece)


def _piecewise_once(prob, grid: np.ndarray, table: np.ndarray, rtol: float, atol: float, max_steps=None) -> dict:
    field, d, n_p = prob.field, prob.d, prob.n_p
    N = grid.size - 1
    rows = (lambda n: table[n]) if table.shape[0] == N else (lambda n: table[0])
    cap = np.full(N, np.inf) if max_steps is None else max_steps
    xs = np.empty((N + 1, d))
    xs[0] = prob.x0
    sols = []
    fwd_nfev = fwd_steps = 0
    fwd_max = np.zeros(N)
    for n in range(N):
        th = rows(n)

        def forward_rhs(t, x, th=th):
            return np.asarray(field.f(x, th), dtype=np.float64)

        with np.errstate(over="ignore", invalid="ignore"):
            fwd = solve_ivp(forward_rhs, (grid[n], grid[n + 1]), xs[n], method=DOP853, rtol=rtol, atol=atol,
                            max_step=cap[n], dense_output=True)
        if not fwd.success:
            raise RuntimeError(f"forward DOP853 solve failed on step {n} [t_{n}, t_{n + 1}] = [{float(grid[n])!r}, "
                               f"{float(grid[n + 1])!r}] at t = {float(fwd.t[-1])!r}, max |x| = "
                               f"{np.max(np.abs(fwd.y[:, -1])):.3g}: {fwd.message}")
        xs[n + 1] = fwd.y[:, -1]
        if not np.all(np.isfinite(xs[n + 1])):
            raise NonFiniteError(f"the solution became non-finite on step {n}: x(t) at t = {float(grid[n + 1])!r} "
                                 f"has a non-finite entry (max |x(t_{n})| = {np.max(np.abs(xs[n])):.3g})")
        sols.append(fwd.sol)
        fwd_nfev += int(fwd.nfev)
        fwd_steps += fwd.t.size - 1
        fwd_max[n] = np.max(np.diff(fwd.t))

    ps = np.empty((N + 1, d))
    ps[N] = prob.grad_loss(xs[N])
    grads = np.empty((N, n_p))
    bwd_nfev = bwd_steps = 0
    bwd_max = np.zeros(N)
    for n in range(N - 1, -1, -1):
        th, x_of = rows(n), sols[n]

        def backward_rhs(t, y, th=th, x_of=x_of):
            x = x_of(t)
            lam = y[:d]
            out = np.empty(d + n_p)
            out[:d] = -np.asarray(field.vjp_x(x, th, lam), dtype=np.float64)
            out[d:] = -np.asarray(field.vjp_theta(x, th, lam), dtype=np.float64)
            return out

        y_end = np.concatenate([ps[n + 1], np.zeros(n_p)])
        with np.errstate(over="ignore", invalid="ignore"):
            bwd = solve_ivp(backward_rhs, (grid[n + 1], grid[n]), y_end, method=DOP853, rtol=rtol, atol=atol,
                            max_step=cap[n])
        if not bwd.success:
            raise RuntimeError(f"backward DOP853 solve failed on step {n} [t_{n + 1}, t_{n}] = "
                               f"[{float(grid[n + 1])!r}, {float(grid[n])!r}] at t = {float(bwd.t[-1])!r}, max |λ| = "
                               f"{np.max(np.abs(bwd.y[:d, -1])):.3g}: {bwd.message}")
        if not np.all(np.isfinite(bwd.y[:, -1])):
            raise NonFiniteError(f"the adjoint became non-finite on step {n} (backward from t = {float(grid[n + 1])!r} "
                                 f"to {float(grid[n])!r}; max |λ(t_{n + 1})| = {np.max(np.abs(ps[n + 1])):.3g})")
        ps[n] = bwd.y[:d, -1]
        grads[n] = bwd.y[d:, -1]
        bwd_nfev += int(bwd.nfev)
        bwd_steps += bwd.t.size - 1
        bwd_max[n] = np.max(np.abs(np.diff(bwd.t)))

    grad_theta = grads if table.shape[0] == N else grads.sum(axis=0, keepdims=True)
    return {
        "x": xs, "p": ps, "x_final": xs[N].copy(), "grad_x0": ps[0].copy(), "grad_theta": grad_theta,
        "loss": _loss_value(prob, xs[N]),
        "stats": {"forward_nfev": fwd_nfev, "backward_nfev": bwd_nfev, "forward_steps": int(fwd_steps),
                  "backward_steps": int(bwd_steps), "pieces": N},
        "max_step_taken": np.minimum(fwd_max, bwd_max),
    }


def _difference_bound(a: dict, b: dict) -> dict:
    out = {}
    for q in _QUANTITIES:
        scale = max(np.max(np.abs(a[q])), np.max(np.abs(b[q])))
        diff = np.max(np.abs(np.asarray(a[q]) - np.asarray(b[q])))
        out[q] = float(2.0 * diff + ROUNDING_FLOOR_ULPS * EPS * scale)
    return out


def piecewise_constant_continuous_gradient(field, theta_table, x0, T, loss, *, grid=None, rtol: float = 1e-12,
                                           atol: float = 1e-12,
                                           error_estimate: str | None = "tighter") -> PiecewiseConstantAdjointResult:
    r"""∂L/∂θ_n and ∂L/∂x₀ of L = Φ(x(T)), ẋ = f(x, θ_n) on [t_n, t_{n+1}), by the continuous adjoint per piece.

    .. math::
        \frac{\partial L}{\partial\theta_n} = \int_{t_n}^{t_{n+1}} \partial_\theta f(x(t),\theta_n)^{\mathsf T}
        \lambda(t)\,dt,\qquad \lambda' = -\partial_x f(x,\theta_n)^{\mathsf T}\lambda \text{ on each piece},\quad
        \lambda(T) = \nabla\Phi(x(T)),

    λ continuous at the breakpoints, ∂L/∂x₀ = λ(0) (derived in docs/theory/continuous-adjoint.md §8; the route and
    the error estimate in the module docstring). This is what a backsolve adjoint (diffrax ``BacksolveAdjoint``,
    torchdiffeq ``odeint_adjoint``) converges to for a parameter table held constant on each step, when its solver is
    made to stop at the breakpoints.

    Parameters
    ----------
    field : a vector field (protocol of :mod:`refimpl.ode.fields`).
    theta_table : (N, p) array, row n the parameter on [t_n, t_{n+1}); (1, p): a constant θ (then the gradient is one
        row, the sum over the pieces of the grid).
    x0 : (d,) initial state, finite.
    T : final time, > 0.
    loss : terminal loss Φ with ``value(x)`` and ``grad(x)`` (e.g. ``QuadraticLoss(y)``).
    grid : optional (N+1,) strictly increasing times with grid[0] == 0 and grid[-1] == T exactly (a (1, p) table takes
        a grid of any length ≥ 2); default the uniform grid t_n = nT/N (``np.linspace(0, T, N + 1)``).
    rtol, atol : DOP853 tolerances of every piece (rtol ≥ 100·eps, SciPy's floor).
    error_estimate : "tighter" (repeat at 100× tighter tolerances and half the steps; bound 2·|Δ| + rounding floor,
        see the module docstring) or None.
    """
    d, n_p = _check_field(field)
    table = _check_table(theta_table, n_p)
    prob = _make_problem(field, table[0], x0, T, loss)
    grid = _check_grid(grid, prob.T, table.shape[0])
    rtol = as_real_scalar(rtol, "rtol", positive=True)
    if rtol < SCIPY_MIN_RTOL:
        raise ValueError(f"rtol must be ≥ 100·eps = {SCIPY_MIN_RTOL:.3g} (SciPy's floor), got {rtol!r}")
    atol = as_real_scalar(atol, "atol", positive=True)
    if error_estimate not in ("tighter", None):
        raise ValueError(f"error_estimate must be 'tighter' or None, got {error_estimate!r}")
    tight_rtol = max(rtol / 100.0, SCIPY_MIN_RTOL)
    if error_estimate == "tighter" and rtol / tight_rtol < MIN_TIGHTENING:
        raise ValueError(f"rtol={rtol!r} is too close to SciPy's floor {SCIPY_MIN_RTOL:.3g} for the 'tighter' error "
                         f"estimate (needs rtol ≥ {MIN_TIGHTENING * SCIPY_MIN_RTOL:.3g}); use error_estimate=None")

    run = _piecewise_once(prob, grid, table, rtol, atol)
    stats = dict(run["stats"], rtol=rtol, atol=atol)
    error = None
    if error_estimate == "tighter":
        tight = _piecewise_once(prob, grid, table, tight_rtol, atol / 100.0, max_steps=0.5 * run["max_step_taken"])
        error = PiecewiseAdjointErrorEstimate(f"tighter: rtol {rtol:.1e} vs {tight_rtol:.1e}, steps halved",
                                              **_difference_bound(run, tight))
        stats["estimate_nfev"] = tight["stats"]["forward_nfev"] + tight["stats"]["backward_nfev"]
    return PiecewiseConstantAdjointResult(
        grid=grid, theta_table=table, x=run["x"], p=run["p"], grad_theta=run["grad_theta"],
        grad_x0=run["grad_x0"], x_final=run["x_final"], loss=run["loss"], error=error, rtol=rtol, atol=atol,
        stats=stats)
