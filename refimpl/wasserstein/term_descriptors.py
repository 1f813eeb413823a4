r"""Term descriptors: what an energy term *is*, as plain data, for the code that specialises on its structure.

Two consumers step an energy faster, or in closed form, when its terms have a known structure:

* the RWCD / RWCP coordinate-sweep kernels (:mod:`refimpl.wasserstein._numba`, dispatched in
  :mod:`refimpl.wasserstein.rwcd_particles`; docs/theory/coordinate-descent.md §3–§6) step a quadratic part, at most
  one Gaussian interaction and a weighted-L1 prox term;
* the closed-form Gaussian steps (:func:`refimpl.wasserstein.gaussian_flows.quadratic_structure`;
  docs/theory/wasserstein-gradients.md §5, §7) need F(N(m, Σ)) = ½mᵀA_m m − rᵀm + ½tr(GΣ) − (σ/2) log det Σ + const,
  i.e. quadratic potentials, quadratic interactions and the entropy.

A term says what it is through its method ``descriptor(factor)``, which returns one of the descriptors below for
``factor`` × the term, or ``None`` (the default of :class:`~refimpl.wasserstein.energies.Energy`: no known structure).
The consumers read only descriptors — they know no energy classes — so a new term with one of these structures (say,
another quadratic potential) runs on the kernels and the closed forms with no edit outside its own class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["QuadraticDescriptor", "GaussianInteractionDescriptor", "WeightedL1Descriptor", "EntropyDescriptor"]


@dataclass(frozen=True, eq=False)
class QuadraticDescriptor:
    r"""A quadratic term, factor included: the potential ½(x − b)ᵀA(x − b) contributes ``A`` and ``r`` = A b (its
    first variation has ∇ = A x − r), the interaction ½∬½(x − y)ᵀB(x − y) contributes ``B`` (∇ = B(x − m)); ``None``
    for a part the term does not have."""

    A: np.ndarray | None = None
    r: np.ndarray | None = None
    B: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class GaussianInteractionDescriptor:
    """The Gaussian interaction W(z) = a exp(−|z|²/(2s²)), factor included in ``amplitude`` a; ``width`` s."""

    amplitude: float
    width: float


@dataclass(frozen=True, eq=False)
class WeightedL1Descriptor:
    """The separable prox term Σⱼ λⱼ|xⱼ − cⱼ|, factor included in ``weights`` λ; ``center`` c."""

    weights: np.ndarray
    center: np.ndarray


@dataclass(frozen=True, eq=False)
class EntropyDescriptor:
    """σℋ, the entropy with weight ``weight`` σ (the factor)."""

    weight: float
