r"""Rate bounds for RWCD / RWCP and the full-gradient baselines (docs/theory/coordinate-descent.md §8): the forms of
paper [B]'s (arXiv 2604.01606) rate theorems, derived here and checked numerically; the constants follow from the
Nesterov 2012 / Karimi–Nutini–Schmidt 2016 arguments translated to condition (C).

Write Δₖ = F(ρₖ) − F*, S = ΣLᵢ, L_max = maxᵢLᵢ, and let the *effective constant* be
Λ = d·L_max (uniform sampling, ηᵢ = 1/Lᵢ or the common η = 1/L_max) or Λ = S (pᵢ ∝ Lᵢ, ηᵢ = 1/Lᵢ); for full
gradient descent with η = 1/L, Λ = L. The derivation: with ηᵢ = 1/Lᵢ, (C) gives the descent lemma
F(ρ⁺) ≤ F(ρ) − ‖∂ᵢu‖²/(2Lᵢ), whose expectation over i is ≥ ‖∇_W F‖²/(2Λ). Then

* non-convex: (1/K)Σ_{k<K} E‖∇_W F(ρₖ)‖² ≤ 2Λ(F(ρ₀) − F_inf)/K;
* PL(μ) (F − F* ≤ ‖∇_W F‖²/(2μ)): E Δₖ ≤ (1 − μ/Λ)ᵏ Δ₀, i.e. a contraction per epoch (d steps) of (1 − μ/Λ)^d;
* geodesically convex with Δ ≤ ‖∇_W F‖ R along the run (R ≥ W₂(ρₖ, ρ*)): Jensen gives
  EΔₖ₊₁ ≤ EΔₖ − (EΔₖ)²/(2ΛR²), hence E Δₖ ≤ 2ΛR²/(k + 2ΛR²/Δ₀).

Predicted speed-up of a coordinate method over GD in gradient equivalents (epochs of d steps against full steps):
ratio of the effective constants per unit cost, L/(Λ/d) = L/L_max (uniform) or L/mean Lᵢ (pᵢ ∝ Lᵢ)
(docs/theory/coordinate-descent.md §9).
"""
from __future__ import annotations

import numpy as np

from refimpl.arguments import as_real_scalar
from refimpl.wasserstein.coordinate_descent import check_count, coordinate_constants

#: the methods a bound is stated for
METHODS = ("uniform", "lipschitz", "full")


def effective_constant(L_coord, method: str, L: float | None = None) -> float:
    """Λ of the module docstring: d·max Lᵢ ("uniform"), ΣLᵢ ("lipschitz"), or L ("full", needs ``L``)."""
    Lc = coordinate_constants(L_coord)
    if method == "uniform":
        return float(Lc.shape[0] * np.max(Lc))
    if method == "lipschitz":
        return float(np.sum(Lc))
    if method == "full":
        if L is None:
            raise ValueError("L is required for method 'full'")
        return as_real_scalar(L, "L", positive=True)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def pl_contraction_per_step(mu, L_coord, method: str, L=None) -> float:
    """1 − μ/Λ: the bound on E Δₖ₊₁/E Δₖ under PL(μ)."""
    mu = as_real_scalar(mu, "mu", positive=True)
    lam = effective_constant(L_coord, method, L)
    if mu > lam:
        raise ValueError(f"mu = {mu} exceeds the effective smoothness {lam}: inconsistent constants")
    return 1.0 - mu / lam


def pl_bound(k, delta0, mu, L_coord, method: str, L=None) -> np.ndarray:
    """(1 − μ/Λ)ᵏ Δ₀ for k an int or array of step counts."""
    delta0 = as_real_scalar(delta0, "delta0", nonnegative=True)
    return delta0 * pl_contraction_per_step(mu, L_coord, method, L) ** np.asarray(k, dtype=np.float64)


def geodesic_convex_bound(k, delta0, R2, L_coord, method: str, L=None) -> np.ndarray:
    """2ΛR²/(k + 2ΛR²/Δ₀) for k an int or array of step counts (R² ≥ sup W₂²(ρₖ, ρ*))."""
    delta0 = as_real_scalar(delta0, "delta0", positive=True)
    R2 = as_real_scalar(R2, "R2", positive=True)
    c = 2.0 * effective_constant(L_coord, method, L) * R2
    return c / (np.asarray(k, dtype=np.float64) + c / delta0)


def nonconvex_gradient_bound(K, gap, L_coord, method: str, L=None) -> float:
    """2Λ(F(ρ₀) − F_inf)/K, the bound on (1/K)Σ_{k<K} E‖∇_W F(ρₖ)‖²."""
    K = check_count(K, "K")
    if K < 1:
        raise ValueError("K must be >= 1")
    gap = as_real_scalar(gap, "gap", nonnegative=True)
    return 2.0 * effective_constant(L_coord, method, L) * gap / K


def predicted_speedup(L, L_coord, sampling: str) -> float:
    """L/max Lᵢ ("uniform") or L/mean Lᵢ ("lipschitz"): the bound ratio per gradient equivalent
    (docs/theory/coordinate-descent.md §9)."""
    L = as_real_scalar(L, "L", positive=True)
    Lc = coordinate_constants(L_coord)
    if sampling == "uniform":
        return L / float(np.max(Lc))
    if sampling == "lipschitz":
        return L / float(np.mean(Lc))
    raise ValueError(f"sampling must be 'uniform' or 'lipschitz', got {sampling!r}")


__all__ = ["METHODS", "effective_constant", "pl_contraction_per_step", "pl_bound", "geodesic_convex_bound",
           "nonconvex_gradient_bound", "predicted_speedup"]
