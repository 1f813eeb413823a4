r"""Energies on P₂(ℝᵈ): values, first variations, Wasserstein and Bures–Wasserstein gradients, coordinate partials
and smoothness constants (docs/theory/wasserstein-gradients.md). A façade over the package's modules:

* :mod:`~refimpl.wasserstein.energies.algebra`      the :class:`Energy` base, sums and factors, :func:`weighted_terms`,
  the registry :data:`ENERGIES` of storable terms and :func:`energy_to_terms` / :func:`energy_from_terms`;
* :mod:`~refimpl.wasserstein.energies.potentials`   :class:`QuadraticPotential`, the user :class:`Potential`;
* :mod:`~refimpl.wasserstein.energies.interactions` :class:`QuadraticInteraction`, :class:`GaussianInteraction`;
* :mod:`~refimpl.wasserstein.energies.entropy`      :class:`Entropy` (blob entropy on particles),
  :func:`silverman_bandwidth`, :class:`KLDivergence`, :class:`KLToGaussian` / :func:`kl_to_gaussian`.

The storable terms (registered in :data:`ENERGIES` under their case-format ``kind``): ``quadratic_potential``,
``quadratic_interaction``, ``gaussian_interaction``, ``entropy``, ``kl_to_gaussian``.
"""
from refimpl.wasserstein.energies.algebra import (ENERGIES, Energy, ScaledEnergy, SumEnergy, energy_from_terms,
                                                  energy_to_terms, weighted_terms)
from refimpl.wasserstein.energies.entropy import (Entropy, KLDivergence, KLToGaussian, kl_to_gaussian,
                                                  silverman_bandwidth)
from refimpl.wasserstein.energies.interactions import GaussianInteraction, QuadraticInteraction
from refimpl.wasserstein.energies.potentials import Potential, QuadraticPotential

__all__ = ["ENERGIES", "Energy", "SumEnergy", "ScaledEnergy", "weighted_terms", "energy_to_terms",
           "energy_from_terms", "QuadraticPotential", "Potential", "QuadraticInteraction", "GaussianInteraction",
           "Entropy", "silverman_bandwidth", "KLDivergence", "KLToGaussian", "kl_to_gaussian"]
