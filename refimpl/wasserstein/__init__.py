"""Wasserstein gradient flows on particles and Gaussians (SPEC §4, papers [B], [C]).

Modules: :mod:`~refimpl.wasserstein.energies` (energies, first variations, Wasserstein and Bures–Wasserstein
gradients), :mod:`~refimpl.wasserstein.measures` (the Gaussian representation), :mod:`~refimpl.wasserstein.kernels`
(Numba pairwise loops and their NumPy reference), :mod:`~refimpl.wasserstein.arguments` (argument checks).
"""
from refimpl.wasserstein.energies import (Energy, Entropy, GaussianInteraction, KLDivergence, Potential,
                                          QuadraticInteraction, QuadraticPotential, ScaledEnergy, SumEnergy,
                                          kl_to_gaussian, silverman_bandwidth)
from refimpl.wasserstein.measures import GaussianMeasure

__all__ = ["Energy", "Entropy", "GaussianInteraction", "KLDivergence", "Potential", "QuadraticInteraction",
           "QuadraticPotential", "ScaledEnergy", "SumEnergy", "kl_to_gaussian", "silverman_bandwidth",
           "GaussianMeasure"]
