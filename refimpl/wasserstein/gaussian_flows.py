r"""Wasserstein gradient-flow steps on Gaussians N(m, Σ): forward Euler, JKO in closed form, and the exact flow.

**Quadratic energies.** For F built (by sum and non-negative factors) from terms whose descriptors
(:mod:`~refimpl.wasserstein.term_descriptors`) are quadratic or the entropy — :class:`QuadraticPotential`,
:class:`QuadraticInteraction`, :class:`Entropy`, so KL to a Gaussian too — F restricted to Gaussians is

    F(N(m, Σ)) = ½ mᵀA_m m − rᵀm + ½ tr(GΣ) − (σ/2) log det Σ + const,

with A_m = Σ A (potentials), r = Σ A b, G = Σ A + Σ B (potentials and interactions), σ ≥ 0 the entropy weight
(:func:`quadratic_structure`). Its Wasserstein gradient at N(m, Σ) is the affine field
v(x) = (A_m m − r) + (G − σΣ⁻¹)(x − m) (the sum of the terms' closed forms in :mod:`energies`), so Gaussians stay
Gaussian under the flow, its JKO step and its forward Euler step.

* Forward Euler (docs/theory/wasserstein-gradients.md §7; any energy with a Bures–Wasserstein gradient): the
  push-forward by x ↦ x − h v(x) = (m − hb) + (I − hM)(x − m), with (b, M) = ``energy.gaussian_velocity``, gives
  m⁺ = m − hb, Σ⁺ = (I − hM)Σ(I − hM). For KL(·‖N(μ, Σ_π)) this is the recursion of
  docs/theory/forward-euler-breakdown.md §9, Σ⁺ = (I + h(Σ⁻¹ − Σ_π⁻¹))Σ(I + h(Σ⁻¹ − Σ_π⁻¹)),
  m⁺ = m − hΣ_π⁻¹(m − μ) (derived).
* JKO: ρ⁺ = argmin F(ρ) + W₂²(ρ, ρₙ)/(2h). Derived: the minimiser is Gaussian; the optimal map from ρ⁺ back to ρₙ is
  x ↦ x + h v⁺(x) (first-order optimality), affine with linear part S = K − hσΣ⁺⁻¹, K = I + hG, which must be
  symmetric positive definite and satisfy SΣ⁺S = Σₙ. With Σ⁺ = K^{−1/2} X K^{−1/2} this is X + h²σ²X⁻¹ = C,
  C = K^{−1/2}ΣₙK^{−1/2} + 2hσI, whose solution with X > hσI (S ≻ 0) is X = ½(C + (C² − 4h²σ²I)^{1/2}), computed
  as ½(B + 2hσI + (B² + 4hσB)^{1/2}) with B = K^{−1/2}ΣₙK^{−1/2} (the same matrix, C² − 4h²σ²I = B(B + 4hσI),
  without cancellation or an h² that could overflow).
  The mean solves (I + hA_m)m⁺ = mₙ + hr. Requires K ≻ 0 and I + hA_m ≻ 0 (the JKO problem is then strictly convex).
  For the entropy alone (G = 0, σ = 1) it reduces to Σ⁺ = ¼(Σ^{1/2} + (Σ + 4hI)^{1/2})²
  (docs/theory/coordinate-descent.md §7, G6).
* Exact flow: ṁ = −(A_m m − r), Σ̇ = −(GΣ + ΣG) + 2σI. In the eigenbasis A_m = QΛQᵀ, G = VμVᵀ:
  m(t) = Q[e^{−tΛ}Qᵀm₀ + t φ₁(−tΛ) Qᵀr], and S̃ = VᵀΣV evolves entrywise
  S̃ᵢⱼ(t) = e^{−t(μᵢ+μⱼ)} S̃ᵢⱼ(0) + 2σ δᵢⱼ t φ₁(−2tμᵢ), φ₁(z) = (e^z − 1)/z. For KL(·‖N(μ, Σ_π)) (the
  Fokker–Planck / Ornstein–Uhlenbeck flow dX = −Σ_π⁻¹(X − μ)dt + √2 dW) this is m(t) = μ + e^{−tP}(m₀ − μ),
  Σ(t) = Σ_π + e^{−tP}(Σ₀ − Σ_π)e^{−tP}, P = Σ_π⁻¹.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.ad import Variable, getvalue, linalg
from refimpl.arguments import NonFiniteError, as_real_scalar, first_nonfinite
from refimpl.wasserstein.coordinate_descent import check_count, nonfinite_flow_error, warn_above_flow_stability_bound
from refimpl.wasserstein.distances import spd_sqrt
from refimpl.wasserstein.energies import Energy, kl_to_gaussian, weighted_terms
from refimpl.wasserstein.measures import GaussianMeasure, as_gaussian_measure
from refimpl.wasserstein.term_descriptors import EntropyDescriptor, QuadraticDescriptor


@dataclass(frozen=True)
class QuadraticStructure:
    """F(N(m, Σ)) = ½mᵀA_m m − rᵀm + ½tr(GΣ) − (σ/2)log det Σ + const (module docstring)."""

    mean_hessian: np.ndarray   # A_m
    mean_linear: np.ndarray    # r
    cov_hessian: np.ndarray    # G
    entropy_weight: float      # σ


def quadratic_structure(energy: Energy, d: int) -> QuadraticStructure:
    """Decompose an energy made of quadratic potentials, quadratic interactions and entropy into (A_m, r, G, σ), read
    from the terms' descriptors (:mod:`~refimpl.wasserstein.term_descriptors`).

    Raises ``NotImplementedError`` for any other term (e.g. a Gaussian interaction: its flow leaves the Gaussians).
    """
    if not isinstance(energy, Energy):
        raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")
    Am, r, G = np.zeros((d, d)), np.zeros(d), np.zeros((d, d))
    sigma = 0.0
    if energy.dim is not None and energy.dim != d:
        raise ValueError(f"{energy.name} is defined on R^{energy.dim}, the Gaussian on R^{d}")
    for c, e in weighted_terms(energy):
        if e.dim is not None and e.dim != d:
            raise ValueError(f"{e.name} is defined on R^{e.dim}, the Gaussian on R^{d}")
        part = e.descriptor(c)
        if isinstance(part, QuadraticDescriptor):
            if part.A is not None:  # a potential: ∇_m = A m − r, ∇_Σ = ½A
                Am += part.A
                r += part.r
                G += part.A
            if part.B is not None:  # an interaction: ∇_Σ = ½B
                G += part.B
        elif isinstance(part, EntropyDescriptor):
            sigma += part.weight
        else:
            raise NotImplementedError(f"{e.name}: closed-form Gaussian steps need quadratic potentials, quadratic "
                                      "interactions and entropy only")
    return QuadraticStructure(Am, r, 0.5 * (G + G.T), sigma)


def _check(energy, g, h, name="h"):
    as_gaussian_measure(g, "g")
    if not isinstance(energy, Energy):
        raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")
    return as_real_scalar(h, name, positive=True)


def gaussian_forward_euler_step(energy: Energy, g: GaussianMeasure, h) -> GaussianMeasure:
    """One forward Euler step (Id − h v)#N(m, Σ) with v the Bures–Wasserstein gradient field (module docstring); a
    result that overflows raises :class:`~refimpl.arguments.NonFiniteError`."""
    try:
        return _forward_euler_step(energy, g, h)
    except _Overflow as e:
        what, bad = e.args
        raise NonFiniteError(f"the step's result became non-finite: its {what} has a non-finite entry at index {bad} "
                             f"(an overflow: the step is too large for this measure)") from None
    except _NotSPD as e:
        raise _not_spd_error("the step's result", e.args[0], float(h), None) from None


def _forward_euler_step(energy, g, h):
    h = _check(energy, g, h)
    b, M = energy.gaussian_velocity(g)
    with np.errstate(over="ignore", invalid="ignore"):
        T = np.eye(g.dim) - h * M
        if np.all(np.isfinite(T)) and np.linalg.matrix_rank(T) < g.dim:
            raise ValueError(f"forward Euler map I - h M is singular at h = {h}: the step collapses the Gaussian")
        cov = T @ g.cov @ T.T
        mean = g.mean - h * b
        return _finite_measure(mean, 0.5 * (cov + cov.T))


def gaussian_forward_euler(energy: Energy, g: GaussianMeasure, h, n_steps: int) -> list[GaussianMeasure]:
    """The forward Euler iterates [ρ₀, ρ₁, …, ρ_{n_steps}]. h·L ≥ 2 (L = ``energy.smoothness(d)`` when known) warns
    with a :class:`StepSizeWarning`; an iterate that overflows raises :class:`~refimpl.arguments.NonFiniteError`
    ("the solution became non-finite at step n, time t")."""
    L = energy.smoothness(g.dim) if isinstance(energy, Energy) and isinstance(g, GaussianMeasure) else None
    if L is not None:
        warn_above_flow_stability_bound(_check(energy, g, h), L, "forward Euler")
    return _iterate(_forward_euler_step, energy, g, h, n_steps, L)


def _iterate(step, energy, g, h, n_steps, L=None):
    """[ρ₀, step(ρ₀), step(step(ρ₀)), …] with n_steps steps of size h (arguments checked once); a step whose mean or
    covariance overflows raises :class:`~refimpl.arguments.NonFiniteError` naming the step."""
    h = _check(energy, g, h)
    n_steps = check_count(n_steps, "n_steps")
    out = [g]
    for n in range(1, n_steps + 1):
        try:
            out.append(step(energy, out[-1], h))
        except _Overflow as e:
            what, bad = e.args
            prev = out[-1].mean if what == "mean" else out[-1].cov
            raise nonfinite_flow_error(n, h, what, f"at index {bad}", float(np.max(np.abs(prev))), L) from None
        except _NotSPD as e:
            raise _not_spd_error(f"the solution left the Gaussians at step {n}, time t = {n * h:.6g}", e.args[0], h,
                                 L) from None
    return out


class _Overflow(Exception):
    """Internal: a step's (name, index) of the first non-finite entry of its mean or covariance."""


class _NotSPD(Exception):
    """Internal: a step's covariance is finite but not positive definite in float64 (args: the smallest eigenvalue)."""


def _finite_measure(mean, cov) -> GaussianMeasure:
    """GaussianMeasure(mean, cov) of a step's result; _Overflow if an entry overflowed, _NotSPD if the covariance is not
    positive definite in float64 (the caller names the step: a step's result is not an argument to blame)."""
    for name, a in (("mean", mean), ("cov", cov)):
        bad = first_nonfinite(a)
        if bad is not None:
            raise _Overflow(name, bad[0] if len(bad) == 1 else bad)
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise _NotSPD(float(np.linalg.eigvalsh(cov)[0])) from None
    return GaussianMeasure(mean, cov)


def _not_spd_error(where: str, smallest: float, h: float, L) -> ValueError:
    hint = "" if L is None or h * L < 2.0 else f"; h*L = {h * L:.4g} exceeds the stability bound h < 2/L (L = {L:.4g})"
    return ValueError(f"{where}: the forward Euler covariance (I - hM) Sigma (I - hM) is not positive definite in "
                      f"float64 (smallest eigenvalue {smallest:.3g}): I - hM is (nearly) singular at h = {h:g}{hint}")


def _sym_fn(S, fn):
    lam, V = np.linalg.eigh(0.5 * (S + S.T))
    return (V * fn(lam)) @ V.T


def gaussian_jko_step(energy: Energy, g: GaussianMeasure, h) -> GaussianMeasure:
    """One JKO step argmin_ρ F(ρ) + W₂²(ρ, g)/(2h) in closed form, for quadratic energies (module docstring)."""
    h = _check(energy, g, h)
    q = quadratic_structure(energy, g.dim)
    if q.entropy_weight < 0:
        raise ValueError("the JKO step needs a non-negative entropy weight (the problem is otherwise unbounded)")
    I = np.eye(g.dim)
    with np.errstate(over="ignore", invalid="ignore"):
        Km = I + h * q.mean_hessian
        K = I + h * q.cov_hessian
        rhs = g.mean + h * q.mean_linear
        hs = h * q.entropy_weight
    for name, M in (("I + h * (potential Hessian)", Km), ("I + h * (covariance Hessian)", K),
                    ("m + h * r (the mean's right-hand side)", rhs), ("h * (entropy weight)", hs)):
        if not np.all(np.isfinite(M)):
            raise ValueError(f"h = {h:g} is too large for this energy: {name} overflows float64")
    for name, M in (("I + h * (potential Hessian)", Km), ("I + h * (covariance Hessian)", K)):
        if np.linalg.eigvalsh(0.5 * (M + M.T))[0] <= 0:
            raise ValueError(f"{name} is not positive definite at h = {h}: the JKO problem is not convex; reduce h")
    mean = np.linalg.solve(Km, rhs)
    K_inv_half = _sym_fn(K, lambda lam: 1.0 / np.sqrt(lam))
    # X = ½(C + (C² − 4h²σ²I)^{1/2}), C = B + 2hσI, B = K^{−1/2}ΣK^{−1/2}, written with C² − 4h²σ²I = B² + 4hσB (SPD):
    # no cancellation, and no h² that could overflow
    B = K_inv_half @ g.cov @ K_inv_half
    B = 0.5 * (B + B.T)
    with np.errstate(over="ignore", invalid="ignore"):
        X = 0.5 * (B + 2.0 * hs * I + _sym_fn(B @ B + 4.0 * hs * B, lambda lam: np.sqrt(np.clip(lam, 0.0, None))))
        cov = K_inv_half @ X @ K_inv_half
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        raise NonFiniteError(f"h = {h:g} is too large for this measure: the JKO step's "
                             f"{'mean' if not np.all(np.isfinite(mean)) else 'covariance'} overflows float64")
    cov = 0.5 * (cov + cov.T)
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise NonFiniteError(f"h = {h:g} is too large for this measure: the JKO step's covariance is not positive "
                             f"definite in float64 (largest entry {np.max(np.abs(cov)):.3g}; the step contracts it "
                             f"below the float64 range, or leaves it too ill-conditioned)") from None
    return GaussianMeasure(mean, cov)


def gaussian_jko(energy: Energy, g: GaussianMeasure, h, n_steps: int) -> list[GaussianMeasure]:
    """The JKO iterates [ρ₀, ρ₁, …, ρ_{n_steps}]."""
    return _iterate(gaussian_jko_step, energy, g, h, n_steps)


def _phi1(z):
    """φ₁(z) = (e^z − 1)/z, = 1 at z = 0 (expm1 keeps it accurate for small |z|)."""
    z = np.asarray(z, dtype=np.float64)
    safe = np.where(z == 0.0, 1.0, z)
    return np.where(z == 0.0, 1.0, np.expm1(safe) / safe)


def gaussian_exact_flow(energy: Energy, g0: GaussianMeasure, t) -> GaussianMeasure:
    """The exact Wasserstein gradient flow of a quadratic energy at time t ≥ 0 from N(m₀, Σ₀) (module docstring)."""
    as_gaussian_measure(g0, "g0")
    t = as_real_scalar(t, "t", nonnegative=True)
    q = quadratic_structure(energy, g0.dim)
    lam, Q = np.linalg.eigh(q.mean_hessian)
    mean = Q @ (np.exp(-t * lam) * (Q.T @ g0.mean) + t * _phi1(-t * lam) * (Q.T @ q.mean_linear))
    mu, V = np.linalg.eigh(q.cov_hessian)
    S = V.T @ g0.cov @ V
    S = np.exp(-t * (mu[:, None] + mu[None, :])) * S + np.diag(2.0 * q.entropy_weight * t * _phi1(-2.0 * t * mu))
    cov = V @ S @ V.T
    return GaussianMeasure(mean, 0.5 * (cov + cov.T))


def ou_flow(g0: GaussianMeasure, target: GaussianMeasure, t) -> GaussianMeasure:
    """The Fokker–Planck (Ornstein–Uhlenbeck) flow of KL(·‖target) at time t from g0:
    m(t) = μ + e^{−tP}(m₀ − μ), Σ(t) = Σ_π + e^{−tP}(Σ₀ − Σ_π)e^{−tP}, P = Σ_π⁻¹ (module docstring)."""
    as_gaussian_measure(target, "target")
    as_gaussian_measure(g0, "g0")
    if g0.dim != target.dim:
        raise ValueError(f"g0 and target must have the same dimension, got {g0.dim} and {target.dim}")
    t = as_real_scalar(t, "t", nonnegative=True)
    E = _sym_fn(np.linalg.inv(target.cov), lambda lam: np.exp(-t * lam))
    cov = target.cov + E @ (g0.cov - target.cov) @ E
    return GaussianMeasure(target.mean + E @ (g0.mean - target.mean), 0.5 * (cov + cov.T))


def gaussian_kl(g: GaussianMeasure, target: GaussianMeasure) -> float:
    """KL(g ‖ target) in closed form (the value of :func:`kl_to_gaussian` on g)."""
    as_gaussian_measure(target, "target")
    return kl_to_gaussian(target.mean, target.cov).gaussian_value(g)


def gaussian_kl_divergence(m1, S1, m2, S2):
    r"""KL(N(m₁, Σ₁) ‖ N(m₂, Σ₂)) = ½[tr(Σ₂⁻¹Σ₁) + δᵀΣ₂⁻¹δ − d + log det Σ₂ − log det Σ₁], δ = m₁ − m₂, with the
    moments as arrays (a float) or tape Variables (a Variable, differentiable in all four; Σ₂⁻¹ enters through solves).

    Its gradient (standard; Petersen & Pedersen, *The Matrix Cookbook*, §8.1.3 for the matrix derivatives), P = Σ₂⁻¹:
    ∇_{m₁} = Pδ = −∇_{m₂}, ∇_{Σ₁} = ½(P − Σ₁⁻¹), ∇_{Σ₂} = ½(P − P(Σ₁ + δδᵀ)P). The same number as :func:`gaussian_kl`
    up to rounding (that one goes through the energy terms)."""
    for m, S, name in ((m1, S1, "1"), (m2, S2, "2")):
        GaussianMeasure(getvalue(m), getvalue(S))  # validation of the values (symmetric positive definite)
    d = int(np.shape(getvalue(m1))[0])
    if np.shape(getvalue(m2)) != (d,):
        raise ValueError(f"the two Gaussians must have the same dimension, got {d} and {np.shape(getvalue(m2))[0]}")
    delta = m1 - m2
    _, logdet1 = linalg.slogdet(S1)
    _, logdet2 = linalg.slogdet(S2)
    out = 0.5 * (linalg.trace(linalg.solve(S2, S1)) + delta @ linalg.solve(S2, delta) - d + logdet2 - logdet1)
    return out if isinstance(out, Variable) else float(out)


__all__ = ["QuadraticStructure", "quadratic_structure", "gaussian_forward_euler_step", "gaussian_forward_euler",
           "gaussian_jko_step", "gaussian_jko", "gaussian_exact_flow", "ou_flow", "gaussian_kl", "gaussian_kl_divergence",
           "spd_sqrt"]
