r"""Kernel descriptors of the RWCD / RWCP coordinate sweeps: what an energy term contributes to the sweep kernels.

The sweep kernels of :mod:`refimpl.wasserstein._numba` step F = quadratic part + (at most one) Gaussian interaction,
followed by the coordinate prox of a weighted L1 term (docs/theory/coordinate-descent.md):

* quadratic part: ∂ᵢu(x) = (A x)ᵢ − rᵢ + (B(x − m))ᵢ — a potential ½(x − b)ᵀA(x − b) contributes A and r = A b,
  a quadratic interaction ½ zᵀBz contributes B (factors c multiply each);
* Gaussian interaction W(z) = a exp(−|z|²/(2s²)): (a, s) (a factor c multiplies a);
* weighted-L1 prox term Σⱼ λⱼ|xⱼ − cⱼ|: (λ, c) (a factor multiplies λ).

A term says what it contributes through its method ``sweep_part(factor) -> part | None`` (``None``: the kernels cannot
step it; the default of :class:`~refimpl.wasserstein.energies.Energy`). Each part adds itself to a
:class:`SweepArrays`; the sweep dispatch (:func:`sweep_arrays`) only walks the terms and collects their parts, so a new
term that is quadratic (or a Gaussian interaction, or an L1 prox term) needs no edit outside its own class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QuadraticSweepPart", "GaussianInteractionSweepPart", "WeightedL1SweepPart", "SweepArrays",
           "sweep_arrays"]


class SweepArrays:
    """The arguments of the sweep kernels for one energy in ℝᵈ, accumulated from the terms' parts (all zero/empty at
    the start): ``A``, ``r``, ``B``, ``has_quad``; ``gaussian`` the list of (a, s); ``l1w``, ``l1c``, ``use_l1``."""

    def __init__(self, d: int):
        self.A, self.r, self.B = np.zeros((d, d)), np.zeros(d), np.zeros((d, d))
        self.has_quad = False
        self.gaussian: list = []
        self.l1w, self.l1c, self.use_l1 = np.zeros(d), np.zeros(d), False

    @property
    def gauss(self):
        """The one Gaussian interaction (a, s), or ``None`` (the pairwise sweep takes at most one)."""
        return self.gaussian[0] if self.gaussian else None


@dataclass(frozen=True, eq=False)
class QuadraticSweepPart:
    """Contributes to the quadratic part: A (potential Hessian), r (linear term A b), B (interaction matrix)."""

    A: np.ndarray | None = None
    r: np.ndarray | None = None
    B: np.ndarray | None = None
    role = "smooth"

    def add_to(self, arrays: SweepArrays) -> None:
        if self.A is not None:
            arrays.A += self.A
        if self.r is not None:
            arrays.r += self.r
        if self.B is not None:
            arrays.B += self.B
        arrays.has_quad = True


@dataclass(frozen=True, eq=False)
class GaussianInteractionSweepPart:
    """A Gaussian interaction W(z) = a exp(−|z|²/(2s²)) with the factor already in ``amplitude``."""

    amplitude: float
    width: float
    role = "smooth"

    def add_to(self, arrays: SweepArrays) -> None:
        arrays.gaussian.append((self.amplitude, self.width))


@dataclass(frozen=True, eq=False)
class WeightedL1SweepPart:
    """The prox term Σⱼ λⱼ|xⱼ − cⱼ| with the factor already in ``weights``."""

    weights: np.ndarray
    center: np.ndarray
    role = "prox"

    def add_to(self, arrays: SweepArrays) -> None:
        arrays.l1w, arrays.l1c, arrays.use_l1 = self.weights, self.center, True


def sweep_arrays(weighted_terms, prox_term, d: int):
    """The :class:`SweepArrays` of F = Σ c_k F_k (``weighted_terms``: the (c_k, F_k) of the smooth part) + the prox
    term (or ``None``), or ``None`` if some term has no sweep part, a smooth term is a prox part or vice versa, or
    there is more than one Gaussian interaction."""
    arrays = SweepArrays(d)
    for c, e in weighted_terms:
        part = e.sweep_part(c)
        if part is None or part.role != "smooth":
            return None
        part.add_to(arrays)
    if len(arrays.gaussian) > 1:
        return None
    if prox_term is not None:
        part = prox_term.sweep_part(1.0)
        if part is None or part.role != "prox":
            return None
        part.add_to(arrays)
    return arrays
