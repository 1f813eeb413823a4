r"""The quadratic Wasserstein distance W₂: closed form between Gaussians, exact between small particle clouds.

* Gaussians (Bures–Wasserstein; Dowson & Landau 1982, Givens & Shortt 1984):
  W₂²(N(m₁, Σ₁), N(m₂, Σ₂)) = |m₁ − m₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}.
* Two clouds of N equally weighted particles: an optimal plan may be taken to be a permutation (Birkhoff–von Neumann),
  so W₂² = min_σ (1/N) Σ_k |x_k − y_σ(k)|², solved exactly by the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment``, O(N³): limited to N ≤ ``MAX_ASSIGNMENT``).
* In 1-D the monotone (sorted) matching is optimal, W₂² = (1/N) Σ_k |x_(k) − y_(k)|², for any N.

The Gaussian formulas are written with :mod:`refimpl.ad.ops` and :mod:`refimpl.ad.linalg`: on arrays they compute the
same numbers as NumPy, and :func:`bures_wasserstein_squared` on tape Variables is differentiated by ``refimpl.ad.grad``.
Its gradient has the closed form (derived from d tr(S^{1/2}) = ½ tr(S^{-1/2} dS) and the map below; Bhatia, Jain & Lim,
Expo. Math. 37 (2019), §3): ∇_{m₁} = 2(m₁ − m₂), ∇_{Σ₁} = I − T₁₂, ∇_{Σ₂} = I − T₂₁ with T₁₂ the linear part of the
optimal map from N(m₁, Σ₁) to N(m₂, Σ₂) (:func:`gaussian_optimal_map`) and T₂₁ = T₁₂⁻¹.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from refimpl.ad import Variable, getvalue, linalg, ops
from refimpl.arguments import as_particles, as_points_1d
from refimpl.wasserstein.measures import GaussianMeasure, as_gaussian_measure

#: largest N for the exact assignment (O(N³) time, O(N²) memory)
MAX_ASSIGNMENT = 3000


def spd_sqrt(S):
    """Symmetric square root of a symmetric positive semidefinite matrix, by ``eigh`` (negative rounding → 0):
    :func:`refimpl.ad.linalg.sqrtm_spd` (also on tape Variables)."""
    return linalg.sqrtm_spd(S)


def _check_pair(g1, g2):
    for name, g in (("g1", g1), ("g2", g2)):
        as_gaussian_measure(g, name)
    if g1.dim != g2.dim:
        raise ValueError(f"g1 and g2 must have the same dimension, got {g1.dim} and {g2.dim}")


def _check_moments(m1, S1, m2, S2):
    """The values of the moments as two GaussianMeasures (validation only; the arguments may be Variables)."""
    _check_pair(GaussianMeasure(getvalue(m1), getvalue(S1)), GaussianMeasure(getvalue(m2), getvalue(S2)))


def _bures_w2_squared(m1, S1, m2, S2):
    r1 = spd_sqrt(S1)
    cross = spd_sqrt(r1 @ S2 @ r1)
    D = m1 - m2
    return ops.sum(D * D) + linalg.trace(S1) + linalg.trace(S2) - 2.0 * linalg.trace(cross)


def bures_wasserstein_squared(m1, S1, m2, S2):
    r"""W₂²(N(m₁, Σ₁), N(m₂, Σ₂)) = |m₁ − m₂|² + tr Σ₁ + tr Σ₂ − 2 tr(Σ₁^{1/2}Σ₂Σ₁^{1/2})^{1/2} (module docstring),
    with the moments as arrays (a float) or tape Variables (a Variable: differentiable in all four, gradient in the
    module docstring). Not clipped at 0: rounding can make it slightly negative when the two Gaussians coincide."""
    _check_moments(m1, S1, m2, S2)
    out = _bures_w2_squared(m1, S1, m2, S2)
    return out if isinstance(out, Variable) else float(out)


def gaussian_w2(g1: GaussianMeasure, g2: GaussianMeasure) -> float:
    """W₂(N(m₁, Σ₁), N(m₂, Σ₂)) in closed form (module docstring); √ of :func:`bures_wasserstein_squared`
    clipped at 0."""
    _check_pair(g1, g2)
    w2sq = float(_bures_w2_squared(g1.mean, g1.cov, g2.mean, g2.cov))
    return float(np.sqrt(max(w2sq, 0.0)))


def gaussian_optimal_map(g1: GaussianMeasure, g2: GaussianMeasure):
    r"""The optimal (Brenier) map from N(m₁, Σ₁) to N(m₂, Σ₂): T(x) = m₂ + A(x − m₁) = Ax + b with
    A = Σ₁^{-1/2}(Σ₁^{1/2}Σ₂Σ₁^{1/2})^{1/2}Σ₁^{-1/2} symmetric positive definite (Knott & Smith, J. Optim. Theory
    Appl. 43 (1984); Bhatia, Jain & Lim 2019). Returns (A, b), b = m₂ − Am₁. A is formed with two solves,
    A = R⁻¹(R⁻¹C)ᵀ (R = Σ₁^{1/2}, C = the cross square root), and symmetrised."""
    _check_pair(g1, g2)
    r1 = spd_sqrt(g1.cov)
    cross = spd_sqrt(r1 @ g2.cov @ r1)
    A = np.linalg.solve(r1, np.linalg.solve(r1, cross).T)
    A = 0.5 * (A + A.T)
    return A, g2.mean - A @ g1.mean


def particle_w2(X, Y) -> float:
    """Exact W₂ between the empirical measures of two clouds of N particles each ((N, d) arrays).

    d = 1 uses sorting (any N); d > 1 the Hungarian algorithm on the squared-distance cost (N ≤ MAX_ASSIGNMENT).
    """
    X = as_particles(X, "X")
    Y = as_particles(Y, "Y")
    if X.shape != Y.shape:
        raise ValueError(f"X and Y must have the same shape (equal weights, same N and d), got {X.shape}, {Y.shape}")
    if X.shape[1] == 1:
        return w2_1d(X[:, 0], Y[:, 0])
    if X.shape[0] > MAX_ASSIGNMENT:
        raise ValueError(f"X has N = {X.shape[0]} particles; the exact assignment is limited to N <= {MAX_ASSIGNMENT}")
    cost = np.sum((X[:, None, :] - Y[None, :, :]) ** 2, axis=2)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(np.mean(cost[rows, cols])))


def w2_1d(x, y) -> float:
    """Exact W₂ between two equally weighted 1-D clouds of the same size: the sorted (monotone) matching."""
    x = as_points_1d(x, "x")
    y = as_points_1d(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}")
    return float(np.sqrt(np.mean((np.sort(x) - np.sort(y)) ** 2)))
