r"""Composite objectives F = G + σℋ + Σ H_t for RWCP and the proximal-gradient baselines (paper [B] arXiv 2604.01606;
docs/theory/coordinate-descent.md §4).

G is smooth (finite coordinate-wise constants Lᵢ), ℋ the entropy (weight σ ≥ 0) and each H_t a *prox term*: a
potential energy H(ρ) = ∫ h dρ with a separable convex, possibly non-smooth h(x) = Σⱼ hⱼ(xⱼ).

**The JKO step of a potential energy is the push-forward by the Euclidean prox** (derived; standard): for any plan
between ρ and ν, ∫h dν + W₂²(ρ, ν)/(2τ) ≥ ∫ min_y [h(y) + |y − x|²/(2τ)] dρ(x), with equality for
ν = (prox_{τh})#ρ — and prox_{τh} = ∇(½|x|² − τ h_τ) (Moreau) is the gradient of a convex function, hence an optimal
map, so the coupling (x, prox x) realises W₂. For separable h the prox acts coordinate-wise, so the
*coordinate-restricted* JKO step along eᵢ (docs/theory/coordinate-descent.md §4) is x ↦ x with xᵢ replaced by
prox_{τhᵢ}(xᵢ): exactly what :meth:`WeightedL1Potential.coordinate_prox` returns.
"""
from __future__ import annotations

import numpy as np

from refimpl.ad import ops
from refimpl.arguments import as_coordinate, as_real_scalar, as_vector, underlying_array
from refimpl.wasserstein.energies import Energy, ScaledEnergy, SumEnergy
from refimpl.wasserstein.term_descriptors import EntropyDescriptor, WeightedL1Descriptor


class WeightedL1Potential(Energy):
    r"""H(ρ) = ∫ Σⱼ λⱼ |xⱼ − cⱼ| dρ(x), λⱼ ≥ 0: a separable non-smooth convex potential (the "lasso" prox term).

    Coordinate prox (soft thresholding): prox_{τλᵢ|· − cᵢ|}(v) = cᵢ + sign(v − cᵢ) max(|v − cᵢ| − τλᵢ, 0).
    ``wasserstein_gradient`` returns the minimal-norm subgradient λ ⊙ sign(x − c) (0 at a kink). No finite
    smoothness constants (``coordinate_smoothness`` is None): use it only as the prox part of RWCP / WPG.
    """

    def __init__(self, weights, center=None):
        lam = as_vector(weights, None, "weights")
        if np.any(lam < 0):
            raise ValueError(f"weights must be >= 0, got min {lam.min()}")
        self.weights = lam
        self.dim = lam.shape[0]
        self.center = np.zeros(self.dim) if center is None else as_vector(center, self.dim, "center")
        self.name = f"WeightedL1Potential(d={self.dim})"

    def _value(self, X):
        return ops.sum(ops.abs(X - self.center) * self.weights) / underlying_array(X).shape[0]

    def _first_variation(self, X, Y):
        return ops.sum(ops.abs(Y - self.center) * self.weights, axis=1)

    def _wasserstein_gradient(self, X):
        return np.sign(X - self.center) * self.weights

    def descriptor(self, factor):
        """c·H is the weighted-L1 prox term with weights c·λ (centre unchanged)."""
        return WeightedL1Descriptor(factor * self.weights, self.center.copy())

    def coordinate_prox(self, values, i, tau):
        """prox_{τ hᵢ} applied to the coordinate-i values (a 1-D array): soft thresholding at τλᵢ around cᵢ."""
        i = as_coordinate(i, self.dim)
        tau = as_real_scalar(tau, "tau", nonnegative=True)
        v = np.asarray(values, dtype=np.float64) - self.center[i]
        return self.center[i] + np.sign(v) * np.maximum(np.abs(v) - tau * self.weights[i], 0.0)

    def prox(self, X, tau):
        """prox_{τh} on every particle (all coordinates): the full JKO step of H (module docstring)."""
        tau = as_real_scalar(tau, "tau", nonnegative=True)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"X must have shape (N, {self.dim}), got {X.shape}")
        V = X - self.center
        return self.center + np.sign(V) * np.maximum(np.abs(V) - tau * self.weights, 0.0)


class ScaledProxTerm(ScaledEnergy):
    """c·H for a prox term H and c ≥ 0: prox_{τ(cH)} = prox_{(cτ)H}."""

    def __init__(self, factor, energy):
        super().__init__(factor, energy)
        if self.factor < 0:
            raise ValueError("factor must be >= 0 for a prox term (the prox of a concave term is ill-posed)")

    def coordinate_prox(self, values, i, tau):
        return self.energy.coordinate_prox(values, i, self.factor * as_real_scalar(tau, "tau", nonnegative=True))

    def prox(self, X, tau):
        return self.energy.prox(X, self.factor * as_real_scalar(tau, "tau", nonnegative=True))


def split_composite(energy: Energy):
    """Split F = G + σℋ + Σ H_t into ``(G or None, σ, [H_t])``.

    Walks sums and factors: entropy terms (descriptor :class:`~refimpl.wasserstein.term_descriptors.EntropyDescriptor`,
    weight c ≥ 0) add c to σ; terms with a ``coordinate_prox`` method are prox terms; everything else, and the constant offset, is the smooth part G.
    Negative weights on entropy or prox terms raise ``ValueError`` (their proximal steps would be ill-posed).
    """
    if not isinstance(energy, Energy):
        raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")
    smooth, prox, sigma, offset = [], [], 0.0, 0.0
    stack = [(1.0, energy)]
    while stack:
        c, e = stack.pop()
        if isinstance(e, SumEnergy):
            offset += c * e.offset
            stack.extend((c, t) for t in reversed(e.terms))
        elif isinstance(e, ScaledEnergy) and not hasattr(e, "coordinate_prox"):
            stack.append((c * e.factor, e.energy))
        elif isinstance(e.descriptor(c), EntropyDescriptor):
            if c < 0:
                raise ValueError("energy has a negative entropy weight: its proximal step is ill-posed")
            sigma += c
        elif hasattr(e, "coordinate_prox"):
            if c < 0:
                raise ValueError(f"energy has a negative factor on the prox term {e.name}")
            prox.append(e if c == 1.0 else ScaledProxTerm(c, e))
        else:
            smooth.append(e if c == 1.0 else ScaledEnergy(c, e))
    if not smooth:
        G = None if offset == 0.0 else SumEnergy([ScaledEnergy(0.0, energy)], offset)
    elif len(smooth) == 1 and offset == 0.0:
        G = smooth[0]
    else:
        G = SumEnergy(smooth, offset)
    return G, sigma, prox


__all__ = ["WeightedL1Potential", "ScaledProxTerm", "split_composite"]
