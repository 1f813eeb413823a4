r"""The quadratic Wasserstein distance W₂: closed form between Gaussians, exact between small particle clouds.

* Gaussians (Bures–Wasserstein; Dowson & Landau 1982, Givens & Shortt 1984):
  W₂²(N(m₁, Σ₁), N(m₂, Σ₂)) = |m₁ − m₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^{1/2} Σ₂ Σ₁^{1/2})^{1/2}.
* Two clouds of N equally weighted particles: an optimal plan may be taken to be a permutation (Birkhoff–von Neumann),
  so W₂² = min_σ (1/N) Σ_k |x_k − y_σ(k)|², solved exactly by the Hungarian algorithm
  (``scipy.optimize.linear_sum_assignment``, O(N³): limited to N ≤ ``MAX_ASSIGNMENT``).
* In 1-D the monotone (sorted) matching is optimal, W₂² = (1/N) Σ_k |x_(k) − y_(k)|², for any N.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from refimpl.arguments import as_particles, as_points_1d
from refimpl.wasserstein.measures import GaussianMeasure, as_gaussian_measure

#: largest N for the exact assignment (O(N³) time, O(N²) memory)
MAX_ASSIGNMENT = 3000


def spd_sqrt(S):
    """Symmetric square root of a symmetric positive semidefinite matrix, by ``eigh`` (negative rounding → 0)."""
    lam, V = np.linalg.eigh(0.5 * (S + S.T))
    return (V * np.sqrt(np.clip(lam, 0.0, None))) @ V.T


def gaussian_w2(g1: GaussianMeasure, g2: GaussianMeasure) -> float:
    """W₂(N(m₁, Σ₁), N(m₂, Σ₂)) in closed form (module docstring)."""
    for name, g in (("g1", g1), ("g2", g2)):
        as_gaussian_measure(g, name)
    if g1.dim != g2.dim:
        raise ValueError(f"g1 and g2 must have the same dimension, got {g1.dim} and {g2.dim}")
    r1 = spd_sqrt(g1.cov)
    cross = spd_sqrt(r1 @ g2.cov @ r1)
    w2sq = float(np.sum((g1.mean - g2.mean) ** 2) + np.trace(g1.cov) + np.trace(g2.cov) - 2.0 * np.trace(cross))
    return float(np.sqrt(max(w2sq, 0.0)))


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
