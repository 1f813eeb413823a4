r"""The 1-D JKO step for KL(·‖π) in quantile (monotone-map) form.

In 1-D, W₂²(ρ, ν) = ∫₀¹ |F_ρ⁻¹(u) − F_ν⁻¹(u)|² du, so the JKO step ρ⁺ = argmin KL(ρ‖π) + W₂²(ρ, ρ₀)/(2h) is a
convex problem for the quantile function X(u) of ρ⁺ (Jordan–Kinderlehrer–Otto 1998; the Lagrangian discretisation of
Kinderlehrer & Walkington, M2AN 33 (1999)). Discretise mass into M equal parts: x_i = F₀⁻¹((i − ½)/M) and unknowns
X_1 < … < X_M, with ρ⁺ taking mass 1/M uniformly on each cell [X_i, X_{i+1}]. Multiplying by M,

    J(X) = Σ_i [U(X_i) + (X_i − x_i)²/(2h)] − Σ_{i<M} log(X_{i+1} − X_i)      (entropy: Σ (1/M) log(1/(M D_i)))

is strictly convex (U convex), with gradient  U′(X_i) + (X_i − x_i)/h + 1/D_i − 1/D_{i−1}  (D_i = X_{i+1} − X_i,
absent terms dropped) and a tridiagonal Hessian; Newton's method with a fraction-to-boundary backtracking line
search keeps X increasing. At the optimum the discrete Euler–Lagrange equation reads
(x_i − X_i)/h = U′(X_i) + (1/D_i − 1/D_{i−1}) ≈ ∂ log(ρ⁺/π)(X_i) (for a smooth ρ⁺, 1/D_i − 1/D_{i−1} ≈ ρ′/ρ), so the
step's velocity lives on the particles and its relative Fisher information is
I(ρ⁺|π) ≈ (1/M) Σ_i ((x_i − X_i)/h)² = W₂²(ρ₀, ρ⁺)/h² — finite for every h, the JKO slope bound
|∂F|(ρ⁺) ≤ W₂(ρ₀, ρ⁺)/h (Ambrosio–Gigli–Savaré, Lemma 3.1.3).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_banded

from refimpl.arguments import as_points_1d, as_real_scalar
from refimpl.wasserstein.one_dimensional import Density1D, GaussianTarget1D


def quantile_points(density: Density1D, M: int) -> np.ndarray:
    """x_i = F₀⁻¹((i − ½)/M), i = 1..M: equal-mass particles of ρ₀ (the discrete quantile function)."""
    if not isinstance(density, Density1D):
        raise TypeError(f"density must be a Density1D, got {type(density).__name__}")
    if isinstance(M, bool) or not isinstance(M, (int, np.integer)) or M < 2:
        raise ValueError(f"M must be an integer >= 2, got {M!r}")
    return density.quantile((np.arange(int(M)) + 0.5) / int(M))


@dataclass(eq=False)
class JKO1DResult:
    """X (the new quantile points), ``velocity`` (x − X)/h = ∂ log(ρ⁺/π)(X) (discrete), ``fisher`` = mean(velocity²),
    ``residual`` (max |∇J|, relative to the largest gradient term), ``iterations``."""

    X: np.ndarray
    velocity: np.ndarray
    fisher: float
    residual: float
    iterations: int

    def __repr__(self):
        return (f"JKO1DResult(M={self.X.size}, fisher={self.fisher:.6g}, residual={self.residual:.2e}, "
                f"iterations={self.iterations})")


def _objective(X, x, h, target):
    D = np.diff(X)
    if np.any(D <= 0):
        return np.inf
    return float(np.sum(target.potential(X) + (X - x) ** 2 / (2 * h)) - np.sum(np.log(D)))


def jko_step_1d(x, target: GaussianTarget1D, h, *, tol: float = 1e-11, max_iter: int = 100) -> JKO1DResult:
    """One JKO step of KL(·‖π) from the equal-mass points x (sorted increasingly), by Newton (module docstring).

    Converged when max|∇J| ≤ tol·s, s = the largest term of the gradient (1, |U′|, |X − x|/h, 1/D): the gradient is a
    difference of such terms, so rounding alone leaves ~M·2e-16·s; also stops when the line search stalls."""
    x = as_points_1d(x, "x")
    if x.size < 2 or np.any(np.diff(x) <= 0):
        raise ValueError("x must hold at least 2 strictly increasing points")
    if not isinstance(target, GaussianTarget1D):
        raise TypeError(f"target must be a GaussianTarget1D, got {type(target).__name__}")
    h = as_real_scalar(h, "h", positive=True)
    tol = as_real_scalar(tol, "tol", positive=True)
    X = x.copy()
    M = x.size
    upp = 1.0 / target.var
    J = _objective(X, x, h, target)
    it = 0
    for it in range(1, int(max_iter) + 1):
        D = np.diff(X)
        inv = 1.0 / D
        g = target.potential_derivative(X) + (X - x) / h
        g[:-1] += inv
        g[1:] -= inv
        scale = max(1.0, float(np.max(np.abs(target.potential_derivative(X)))), float(np.max(inv)),
                    float(np.max(np.abs(X - x))) / h)
        if np.max(np.abs(g)) <= tol * scale:
            break
        inv2 = inv * inv
        diag = np.full(M, upp + 1.0 / h)
        diag[:-1] += inv2
        diag[1:] += inv2
        ab = np.zeros((3, M))
        ab[0, 1:] = -inv2
        ab[1] = diag
        ab[2, :-1] = -inv2
        step = solve_banded((1, 1), ab, -g)
        dD = np.diff(step)
        shrink = dD < 0
        alpha = min(1.0, 0.99 * float(np.min(-D[shrink] / dD[shrink]))) if np.any(shrink) else 1.0
        slope = float(g @ step)
        while True:
            Xn = X + alpha * step
            Jn = _objective(Xn, x, h, target)
            if Jn <= J + 1e-4 * alpha * slope or alpha < 1e-12:
                break
            alpha *= 0.5
        if not Jn < J:  # no decrease left at rounding level: converged as far as float64 allows
            break
        X, J = Xn, Jn
    D = np.diff(X)
    g = target.potential_derivative(X) + (X - x) / h
    g[:-1] += 1.0 / D
    g[1:] -= 1.0 / D
    v = (x - X) / h
    scale = max(1.0, float(np.max(np.abs(target.potential_derivative(X)))), float(np.max(1.0 / D)),
                float(np.max(np.abs(X - x))) / h)
    return JKO1DResult(X, v, float(np.mean(v * v)), float(np.max(np.abs(g))) / scale, it)
