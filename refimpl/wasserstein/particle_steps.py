r"""Wasserstein gradient-flow steps on particle clouds: forward Euler and an inner-solve JKO step.

* Forward Euler (docs/theory/wasserstein-gradients.md §7): ρ_{n+1} = (Id − h∇δF/δρ[ρₙ])#ρₙ, i.e. every particle
  moves x_k ← x_k − h ∇δF/δρ[ρ_X](x_k).
* JKO by an inner solve: ρ_{n+1} = argmin_ρ F(ρ) + W₂²(ρ, ρₙ)/(2h) over empirical measures ρ_Y of N particles.
  We minimise Φ(Y) = N F(ρ_Y) + (1/(2h)) Σ_k |y_k − x_k|² (the identity coupling; N·W₂² ≤ Σ_k|y_k − x_k|²) with
  L-BFGS, using ∇_Y Φ = ∇δF/δρ[ρ_Y](Y) + (Y − X)/h (the identity N∂F(ρ_Y)/∂y_k = ∇δF/δρ[ρ_Y](y_k) of
  :mod:`energies`). A stationary point satisfies the implicit Euler equation Y = X − h∇δF/δρ[ρ_Y](Y); it is the
  particle JKO step when the identity is an optimal assignment between X and Y — reported, and checked exactly
  (Hungarian algorithm) for N ≤ :data:`~refimpl.wasserstein.distances.MAX_ASSIGNMENT`. For small cases only
  (each inner iteration costs a full gradient).

  Stopping on the gradient, not on values. L-BFGS's line search accepts a step by comparing values of Φ. Near the
  minimiser Φ is locally quadratic with Hessian ≈ I/h (plus h-independent terms), so the best step along a gradient g
  lowers Φ by ≈ h|g|²/2 = |r|²/(2h), r = h·g the residual vector. Once that falls below the rounding of Φ (ε|Φ|, ε =
  2⁻⁵²) no decrease is detectable and the line search stops: a residual floor |r| ≈ √(2hε|Φ|), about 1e-9 for the
  tests' clouds — above a tolerance of 1e-10. The solve therefore ends with a *polish* that uses gradients only:
  Barzilai–Borwein iterations y ← y − α g, α = sᵀs/sᵀq (s, q the last changes of y and g; α = h to start, the
  inverse of the dominant Hessian part), at most :data:`POLISH_MAX_ITER` gradients, keeping the iterate of smallest
  max|g|. Near the minimiser BB converges R-linearly on a strongly convex quadratic (Raydan 1993), and only residuals
  are compared, whose rounding floor is ε times the size of the gradient's terms rather than √(ε|Φ|).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment, minimize

from refimpl.arguments import as_particles, as_real_scalar, first_nonfinite
from refimpl.wasserstein.coordinate_descent import nonfinite_flow_error, warn_above_flow_stability_bound
from refimpl.wasserstein.distances import MAX_ASSIGNMENT
from refimpl.wasserstein.energies import Energy


def _check_energy(energy):
    if not isinstance(energy, Energy):
        raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")


def forward_euler_step(energy: Energy, X, h):
    """One forward Euler push-forward of the particles: X − h ∇δF/δρ[ρ_X](X)."""
    _check_energy(energy)
    X = as_particles(X, "X")
    h = as_real_scalar(h, "h", positive=True)
    return X - h * energy.wasserstein_gradient(X)


def forward_euler(energy: Energy, X, h, n_steps: int) -> list[np.ndarray]:
    """The forward Euler iterates [X₀, X₁, …, X_{n_steps}] (particle arrays).

    h·L ≥ 2 (L = ``energy.smoothness(d)`` when known) warns with a :class:`StepSizeWarning` (above the stability
    bound); an iterate that overflows raises :class:`~refimpl.arguments.NonFiniteError` ("the solution became
    non-finite at step n, time t", with the stability hint)."""
    _check_energy(energy)
    X = as_particles(X, "X")
    h = as_real_scalar(h, "h", positive=True)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    L = energy.smoothness(X.shape[1])
    warn_above_flow_stability_bound(h, L, "forward Euler")
    out = [X]
    for n in range(1, int(n_steps) + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            Y = out[-1] - h * energy.wasserstein_gradient(out[-1])
        bad = first_nonfinite(Y)
        if bad is not None:
            raise nonfinite_flow_error(n, h, "X", f"at particle {bad[0]}, coordinate {bad[1]}",
                                       float(np.max(np.abs(out[-1]))), L)
        out.append(Y)
    return out


@dataclass(eq=False)
class ParticleJKOResult:
    """The inner-solve JKO step and its evidence.

    ``residual`` = max_k |y_k − x_k + h∇δF/δρ[ρ_Y](y_k)| (the implicit-Euler equation), ``iterations`` of L-BFGS,
    ``identity_coupling_optimal`` True/False if checked by exact assignment (N ≤ MAX_ASSIGNMENT), else None.
    """

    Y: np.ndarray
    residual: float
    iterations: int
    converged: bool
    identity_coupling_optimal: bool | None

    def __repr__(self):
        return (f"ParticleJKOResult(N={self.Y.shape[0]}, d={self.Y.shape[1]}, residual={self.residual:.2e}, "
                f"iterations={self.iterations}, converged={self.converged}, "
                f"identity_coupling_optimal={self.identity_coupling_optimal})")


#: the most gradients the polish after L-BFGS may spend (module docstring, "stopping on the gradient")
POLISH_MAX_ITER = 200


def _polish(gradient, y, h, target):
    """Barzilai–Borwein iterations on ∇Φ alone from y (module docstring); returns the iterate of smallest max|∇Φ|,
    stopping when h·max|∇Φ| ≤ target, after :data:`POLISH_MAX_ITER` gradients, or at a non-finite gradient."""
    g = gradient(y)
    best_y, best = y, float(np.max(np.abs(g)))
    alpha = h
    for _ in range(POLISH_MAX_ITER):
        if h * best <= target:
            break
        y_new = y - alpha * g
        g_new = gradient(y_new)
        size = float(np.max(np.abs(g_new)))
        if not np.isfinite(size):
            break
        s, q = y_new - y, g_new - g
        sq = float(s @ q)
        alpha = float(s @ s) / sq if sq > 0.0 else h  # BB1 step; a non-positive curvature resets to h
        y, g = y_new, g_new
        if size < best:
            best_y, best = y, size
    return best_y


def particle_jko_step(energy: Energy, X, h, *, tol: float = 1e-10, max_iter: int = 10_000) -> ParticleJKOResult:
    """One JKO step on particles by an inner L-BFGS solve and a gradient-only polish (module docstring); starts from
    the forward Euler point.

    ``tol`` bounds the implicit-Euler residual max_k |y_k − x_k + h∇δF/δρ[ρ_Y](y_k)| relative to max(1, |X|_∞);
    ``converged`` says whether it was met. ``max_iter`` bounds the L-BFGS iterations.
    """
    _check_energy(energy)
    X = as_particles(X, "X")
    h = as_real_scalar(h, "h", positive=True)
    tol = as_real_scalar(tol, "tol", positive=True)
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    n, d = X.shape
    scale = max(1.0, float(np.max(np.abs(X))))

    def objective(y):
        Y = y.reshape(n, d)
        D = Y - X
        val = n * energy.value(Y) + 0.5 / h * float(np.sum(D * D))
        grad = energy.wasserstein_gradient(Y) + D / h
        return val, grad.ravel()

    def gradient(y):
        Y = y.reshape(n, d)
        return (energy.wasserstein_gradient(Y) + (Y - X) / h).ravel()

    Y0 = X - h * energy.wasserstein_gradient(X)
    res = minimize(objective, Y0.ravel(), jac=True, method="L-BFGS-B",
                   options={"maxiter": int(max_iter), "gtol": tol * scale / h, "ftol": 0.0, "maxcor": 30})
    Y = _polish(gradient, res.x, h, tol * scale).reshape(n, d)
    residual = float(np.max(np.abs(Y - X + h * energy.wasserstein_gradient(Y))))
    identity = None
    if n <= MAX_ASSIGNMENT:
        cost = np.sum((Y[:, None, :] - X[None, :, :]) ** 2, axis=2)
        rows, cols = linear_sum_assignment(cost)
        best = float(np.sum(cost[rows, cols]))
        ident = float(np.trace(cost))
        identity = bool(ident <= best * (1.0 + 1e-12) + 1e-300)
    return ParticleJKOResult(Y, residual, int(res.nit), bool(residual <= tol * scale), identity)
