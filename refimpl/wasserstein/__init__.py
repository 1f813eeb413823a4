"""Wasserstein gradient flows on particles and Gaussians (docs/theory/wasserstein-gradients.md,
docs/theory/forward-euler-breakdown.md, docs/theory/coordinate-descent.md; papers [B] arXiv 2604.01606,
[C] arXiv 2406.08209).

Modules
-------
:mod:`~refimpl.wasserstein.energies`        energies F (potential, interaction, entropy, KL), first variations,
                                            Wasserstein / Bures–Wasserstein gradients, coordinate partials, Lᵢ; the
                                            registry ``ENERGIES`` of storable terms (package: algebra, potentials,
                                            interactions, entropy).
:mod:`~refimpl.wasserstein.measures`        the Gaussian representation N(m, Σ).
:mod:`~refimpl.wasserstein.pairwise_sums`   the O(N²d) pairwise sums: NumPy reference and backend dispatch.
:mod:`~refimpl.wasserstein._numba`          every Numba kernel (pairwise sums, RWCD/RWCP sweeps).
:mod:`~refimpl.wasserstein.distances`       W₂: Bures closed form, exact assignment, 1-D sorting.
:mod:`~refimpl.wasserstein.gaussian_flows`  forward Euler, closed-form JKO and the exact flow on Gaussians.
:mod:`~refimpl.wasserstein.particle_steps`  forward Euler and inner-solve JKO on particle clouds.
:mod:`~refimpl.wasserstein.jets`            truncated Taylor arithmetic (exact derivatives for 1-D push-forwards).
:mod:`~refimpl.wasserstein.one_dimensional` exact 1-D Lagrangian forward Euler, Fisher information, branch densities.
:mod:`~refimpl.wasserstein.jko_1d`          the 1-D JKO step in quantile form.
:mod:`~refimpl.wasserstein.regularized_1d`  forward Euler on the Gaussian-regularised KL in 1-D.
:mod:`~refimpl.wasserstein.counterexamples` the [C] counter-examples and their controls.
:mod:`~refimpl.wasserstein.term_descriptors` what a term is as data (quadratic, Gaussian interaction, L1, entropy),
                                            read by the sweep kernels and the Gaussian closed forms.

Random Wasserstein coordinate descent (paper [B]):

:mod:`~refimpl.wasserstein.coordinate_descent` coordinate sampling (uniform, ∝ Lᵢ), step sizes, cost accounting.
:mod:`~refimpl.wasserstein.rwcd_particles`     RWCD / RWCP / WGD / WPG on particle clouds (Numba sweeps).
:mod:`~refimpl.wasserstein.rwcd_gaussian`      the same on Gaussians in closed form, exact expectations.
:mod:`~refimpl.wasserstein.composite`          composite energies G + H (L1 potential, entropy) and their proxes.
:mod:`~refimpl.wasserstein.rwcd_rates`         the derived rate bounds and predicted speed-ups.
"""
from refimpl.wasserstein.distances import (bures_wasserstein_squared, gaussian_optimal_map, gaussian_w2, particle_w2,
                                           w2_1d)
from refimpl.wasserstein.energies import (ENERGIES, Energy, Entropy, GaussianInteraction, KLDivergence, KLToGaussian,
                                          Potential, QuadraticInteraction, QuadraticPotential, ScaledEnergy, SumEnergy,
                                          energy_from_terms, energy_to_terms, kl_to_gaussian, silverman_bandwidth)
from refimpl.wasserstein.gaussian_flows import (gaussian_exact_flow, gaussian_forward_euler,
                                                gaussian_forward_euler_step, gaussian_jko, gaussian_jko_step,
                                                gaussian_kl, ou_flow, quadratic_structure)
from refimpl.wasserstein.measures import GaussianMeasure
from refimpl.wasserstein.particle_steps import forward_euler, forward_euler_step, particle_jko_step
from refimpl.wasserstein.rwcd_gaussian import gaussian_rwcd, gaussian_rwcp, gaussian_wgd, gaussian_wpg
from refimpl.wasserstein.rwcd_particles import rwcd, rwcp, wgd, wpg

__all__ = ["ENERGIES", "Energy", "Entropy", "GaussianInteraction", "KLDivergence", "KLToGaussian", "Potential",
           "QuadraticInteraction", "QuadraticPotential", "ScaledEnergy", "SumEnergy", "energy_from_terms",
           "energy_to_terms", "kl_to_gaussian", "silverman_bandwidth",
           "GaussianMeasure", "gaussian_w2", "bures_wasserstein_squared", "gaussian_optimal_map", "particle_w2", "w2_1d", "gaussian_exact_flow", "gaussian_forward_euler",
           "gaussian_forward_euler_step", "gaussian_jko", "gaussian_jko_step", "gaussian_kl", "ou_flow",
           "quadratic_structure", "forward_euler", "forward_euler_step", "particle_jko_step",
           "rwcd", "rwcp", "wgd", "wpg", "gaussian_rwcd", "gaussian_rwcp", "gaussian_wgd", "gaussian_wpg"]
