r"""Forward Euler for the Gaussian-regularised KL in 1-D (the remedy of arXiv 2509.13260 for [C];
docs/theory/forward-euler-breakdown.md §8).

F_ε(ρ) = KL(ρ * φ_ε ‖ π), φ_ε = N(0, ε²). Derived: δF_ε/δρ = φ_ε * log(ρ_ε/π) with ρ_ε = ρ * φ_ε, so the velocity

    v(y) = ∂_y δF_ε/δρ (y) = (φ_ε * u)(y),   u = ∂ log(ρ_ε/π) = ρ_ε′/ρ_ε + U′,

is a Gaussian average of u: smooth, with v′ = φ_ε′ * u and v″ = φ_ε″ * u bounded on the support, for *any* ρ (no
derivative of ρ is consumed). The step Tₙ = Id − h vₙ is then smooth and, for h·sup vₙ′ < 1, increasing, so ρₙ₊₁ keeps
the regularity of ρₙ: I(ρₙ₊₁|π) < ∞ whenever I(ρₙ|π) < ∞.

Lagrangian implementation on a :class:`~refimpl.wasserstein.one_dimensional.LogGrid` (as the exact scheme): the masses
m_i = ρ₀(x_i)·weight_i sit at Φₙ(x_i); they are deposited (linear cloud-in-cell) on a uniform z-grid of spacing
Δz = ε/``points_per_epsilon`` reaching 12ε beyond the outermost position; ρ_ε, ρ_ε′ and then v, v′, v″ are discrete
convolutions with φ_ε, φ_ε′, φ_ε″ sampled on ±12ε (truncation e^{−72}); v, v′, v″ are interpolated to Φₙ(x_i) by cubic
splines. Errors: deposit and quadrature O((Δz/ε)²), spline O((Δz/ε)⁴); the tests halve Δz to bound them. The map
derivatives are propagated exactly: Φₙ₊₁′ = Φₙ′(1 − h vₙ′(Φₙ)), Φₙ₊₁″ = Φₙ″(1 − h vₙ′(Φₙ)) − h vₙ″(Φₙ)Φₙ′², which is
all the change-of-variables formulas of :mod:`one_dimensional` need (states are returned as ``LagrangianState``).

Truncation: the grid stops at |x| = x_max, so ρ₀ is replaced by ρ₀·1_{|x| ≤ x_max}; in log scale that is a cliff
whatever the tail mass, and the regularised velocity (a log-derivative) reacts to it at O(1/ε) within a few ε of the
edge, where the map may even fold. That region carries mass ~ρ₀(x_max); judge monotonicity on a core |x| ≤ x_core
well inside (``LagrangianState.monotone_on``), with x_max chosen so that the mass outside the core is negligible.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import CubicSpline

from refimpl.arguments import as_real_scalar
from refimpl.wasserstein.jets import Jet
from refimpl.wasserstein.one_dimensional import Density1D, GaussianTarget1D, LagrangianState, LogGrid

_HALF_WIDTH = 12.0  # kernel truncation in units of ε


def _kernels(eps, dz):
    K = int(math.ceil(_HALF_WIDTH * eps / dz))
    s = np.arange(-K, K + 1) * dz
    phi = np.exp(-0.5 * (s / eps) ** 2) / (math.sqrt(2 * math.pi) * eps)
    return phi, -s / eps ** 2 * phi, (s * s / eps ** 4 - 1.0 / eps ** 2) * phi, K


def regularized_velocity(positions, masses, target: GaussianTarget1D, eps: float, points_per_epsilon: int = 40):
    """v, v′, v″ at ``positions`` and F_ε, for the measure Σ masses·δ_positions (module docstring)."""
    dz = eps / points_per_epsilon
    phi, dphi, d2phi, K = _kernels(eps, dz)
    lo, hi = positions.min() - (K + 2) * dz, positions.max() + (K + 2) * dz
    nz = int(math.ceil((hi - lo) / dz)) + 1
    z = lo + dz * np.arange(nz)
    # linear cloud-in-cell deposit: conserves mass and the first moment
    s = (positions - lo) / dz
    k = np.floor(s).astype(np.int64)
    frac = s - k
    dep = np.zeros(nz)
    np.add.at(dep, k, masses * (1.0 - frac))
    np.add.at(dep, k + 1, masses * frac)
    rho = np.convolve(dep, phi, mode="same")
    drho = np.convolve(dep, dphi, mode="same")
    inside = rho > 0
    u = np.zeros(nz)
    u[inside] = drho[inside] / rho[inside] + target.potential_derivative(z[inside])
    v = dz * np.convolve(u, phi, mode="same")
    dv = dz * np.convolve(u, dphi, mode="same")
    d2v = dz * np.convolve(u, d2phi, mode="same")
    out = [CubicSpline(z, f)(positions) for f in (v, dv, d2v)]
    with np.errstate(divide="ignore", invalid="ignore"):
        integrand = np.where(inside, rho * (np.log(np.where(inside, rho, 1.0)) + target.potential(z)
                                            + target.log_normalizer), 0.0)
    reg_kl = float(np.sum(0.5 * dz * (integrand[1:] + integrand[:-1])))
    return out[0], out[1], out[2], reg_kl


def regularized_forward_euler_lagrangian(density: Density1D, target: GaussianTarget1D, h, n_steps: int,
                                         grid: LogGrid, eps, *, points_per_epsilon: int = 40):
    """States n = 0..n_steps of forward Euler on F_ε from ρ₀ on ``grid`` (module docstring), and F_ε(ρₙ) for each.

    Returns (states, regularized_kl): states are ``LagrangianState`` with order-2 position jets (Φ, Φ′, Φ″) and
    order-0 velocity jets w = ∂ log(ρₙ/π)∘Φₙ (the *unregularised* KL velocity, for I(ρₙ|π)).
    """
    if not isinstance(density, Density1D):
        raise TypeError(f"density must be a Density1D, got {type(density).__name__}")
    if not isinstance(target, GaussianTarget1D):
        raise TypeError(f"target must be a GaussianTarget1D, got {type(target).__name__}")
    if not isinstance(grid, LogGrid):
        raise TypeError(f"grid must be a LogGrid, got {type(grid).__name__}")
    h = as_real_scalar(h, "h", positive=True)
    eps = as_real_scalar(eps, "eps", positive=True)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    if isinstance(points_per_epsilon, bool) or not isinstance(points_per_epsilon, (int, np.integer)) \
            or points_per_epsilon < 4:
        raise ValueError(f"points_per_epsilon must be an integer >= 4, got {points_per_epsilon!r}")
    x = grid.x
    ell = density.log_density_jet(x, 1)
    ell0, dell0 = ell.value.copy(), ell.derivative_value(1)
    masses = np.exp(ell0) * grid.weights
    phi, dphi, d2phi = x.copy(), np.ones_like(x), np.zeros_like(x)
    states, reg_kl = [], []
    for n in range(int(n_steps) + 1):
        w = (dell0 - d2phi / dphi) / dphi + target.potential_derivative(phi)
        states.append(LagrangianState(n, x, Jet.from_derivatives([phi, dphi, d2phi]), Jet(w[None]), ell0, target))
        v, dv, d2v, F = regularized_velocity(phi, masses, target, eps, int(points_per_epsilon))
        reg_kl.append(F)
        if n < n_steps:
            a = 1.0 - h * dv
            phi, dphi, d2phi = phi - h * v, dphi * a, d2phi * a - h * d2v * dphi * dphi
    return states, reg_kl
