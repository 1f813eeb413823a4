r"""The entropy ℋ(ρ) = ∫ ρ log ρ (exact on Gaussians, blob-regularised on particles), its bandwidth rule, and the
KL divergences built from it (docs/theory/wasserstein-gradients.md)."""
from __future__ import annotations

import math

import numpy as np

from refimpl.ad import Variable, linalg, ops
from refimpl.arguments import as_length_scale, as_particles, underlying_array
from refimpl.backends import check_backend
from refimpl.wasserstein import pairwise_sums
from refimpl.wasserstein.energies.algebra import ENERGIES, Energy, SumEnergy
from refimpl.wasserstein.energies.potentials import QuadraticPotential
from refimpl.wasserstein.measures import GaussianMeasure
from refimpl.wasserstein.term_descriptors import EntropyDescriptor

__all__ = ["silverman_bandwidth", "Entropy", "KLDivergence", "KLToGaussian", "kl_to_gaussian"]


def silverman_bandwidth(X) -> float:
    r"""Silverman's rule of thumb for a Gaussian kernel in d dimensions (Silverman 1986, eq. 4.14):
    ε = σ̄ (4 / ((d + 2) N))^{1/(d+4)}, σ̄ = the mean over coordinates of the (ddof=1) standard deviations.

    Use it once, on the initial cloud, to fix the bandwidth of :class:`Entropy` (a bandwidth that moved with X would
    make F(ρ_X) a different function and break the gradient identities). Raises if the cloud has zero spread.
    """
    X = as_particles(X, "X")
    n, d = X.shape
    if n < 2:
        raise ValueError("X must hold at least 2 particles for a bandwidth rule")
    sigma = float(np.mean(np.std(X, axis=0, ddof=1)))
    if not sigma > 0:
        raise ValueError("X has zero spread: no bandwidth can be inferred")
    return sigma * (4.0 / ((d + 2) * n)) ** (1.0 / (d + 4))


@ENERGIES.register
class Entropy(Energy):
    r"""ℋ(ρ) = ∫ ρ log ρ (docs/theory/wasserstein-gradients.md): exact on Gaussians, the *blob* entropy on particles.

    Gaussians: ℋ(N(m, Σ)) = −(d/2)(1 + log 2π) − ½ log det Σ; ∇_m = 0, ∇_Σ = −½Σ⁻¹ (Wasserstein gradient
    ∇ log ρ = −Σ⁻¹(x − m)).

    Particles (needs ``bandwidth`` ε > 0; e.g. :func:`silverman_bandwidth` of the initial cloud): the blob
    regularisation of Carrillo, Craig & Patacchini (Calc. Var. 2019), ℋ_ε(ρ) = ∫ ρ log(φ_ε * ρ) with
    φ_ε = N(0, ε²I). On ρ_X, with the kernel-density estimate ρ̃ = φ_ε * ρ_X = (2πε²)^{−d/2} K̄,
    K̄(y) = (1/N)Σ_j e^{−|y − x_j|²/(2ε²)}:

    * ℋ_ε(ρ_X) = (1/N) Σ_k log K̄(x_k) − (d/2) log(2πε²)  (finite, smooth in X);
    * δℋ_ε/δρ (y) = log ρ̃(y) + (φ_ε * (ρ/ρ̃))(y) = log K̄(y) − (d/2) log(2πε²) + (1/N)Σ_j k(y − x_j)/K̄(x_j);
    * ∇δℋ_ε/δρ (x_k) = (1/N) Σ_j ∇k(x_k − x_j) (1/K̄(x_k) + 1/K̄(x_j)),  ∇k(z) = −(z/ε²) k(z):
      the KDE score ∇ log ρ̃(x_k) plus the blob correction; equal to N ∂ℋ_ε(ρ_X)/∂x_k (derived by the chain rule).

    ℋ_ε(ρ) → ℋ(ρ) as ε → 0 for smooth ρ; at fixed ε the particle entropy has a bias O(ε²) + O(1/(Nε^d)).
    No finite smoothness constants. Coordinate partials cost O(N²d) (K̄ needs full distances), in the pair kernels of
    :mod:`refimpl.wasserstein.pairwise_sums` (``backend`` "auto" | "numpy" | "numba"; ``exp`` "polynomial" | "libm",
    the exp the Numba kernel uses).

    Term object: ``{"kind": "entropy", "bandwidth": ε or null}`` (null: Gaussians only).
    """

    family = "entropy"
    formula = ("F(rho) = int rho log rho; particles: the blob entropy int rho log(phi_eps * rho), "
               "phi_eps = N(0, eps^2 I), eps = bandwidth")
    spec_keys = ()
    particle_spec_keys = ("bandwidth",)
    kernel_options = ("backend", "exp")

    def __init__(self, bandwidth=None, *, backend="auto", exp="polynomial"):
        self.bandwidth = None if bandwidth is None else as_length_scale(bandwidth, "bandwidth")
        self.backend = check_backend(backend)
        self.exp = pairwise_sums.check_exp(exp)
        self.name = "Entropy" if self.bandwidth is None else f"Entropy(bandwidth={self.bandwidth:g})"

    def to_spec(self) -> dict:
        return {"kind": self.family, "bandwidth": self.bandwidth}

    @classmethod
    def from_spec(cls, spec: dict, *, backend="auto", exp="polynomial") -> "Entropy":
        spec = cls._check_spec(spec)
        return cls(spec.get("bandwidth"), backend=backend, exp=exp)

    def descriptor(self, factor):
        """c·ℋ: the entropy with weight c."""
        return EntropyDescriptor(factor)

    def _eps(self):
        if self.bandwidth is None:
            raise ValueError("the particle entropy needs a bandwidth: use Entropy(bandwidth=...) "
                             "(blob regularisation; see silverman_bandwidth)")
        return self.bandwidth

    def _log_normaliser(self, d):
        return 0.5 * d * math.log(2.0 * math.pi * self._eps() ** 2)

    def _value(self, X):
        eps = self._eps()
        n, d = underlying_array(X).shape
        if isinstance(X, Variable):
            Z = ops.reshape(X, (n, 1, d)) - ops.reshape(X, (1, n, d))
            kbar = ops.mean(ops.exp(ops.sum(Z * Z, axis=2) * (-0.5 / eps ** 2)), axis=1)
            return ops.mean(ops.log(kbar)) - self._log_normaliser(d)
        kbar = pairwise_sums.mean_kernel(X, eps, self.backend, self.exp)
        return float(np.mean(np.log(kbar))) - self._log_normaliser(d)

    def _first_variation(self, X, Y):
        eps = self._eps()
        n, d = X.shape
        kbar_x = pairwise_sums.mean_kernel(X, eps, self.backend, self.exp)
        Z = ops.reshape(Y, (underlying_array(Y).shape[0], 1, d)) - X.reshape(1, n, d)
        kyx = ops.exp(ops.sum(Z * Z, axis=2) * (-0.5 / eps ** 2))  # (M, N)
        return (ops.log(ops.mean(kyx, axis=1)) - self._log_normaliser(d)
                + ops.mean(kyx * (1.0 / kbar_x).reshape(1, n), axis=1))

    def _wasserstein_gradient(self, X):
        return pairwise_sums.blob_score(X, self._eps(), self.backend, self.exp)

    def _coordinate_gradient(self, X, i):
        return pairwise_sums.blob_score_partial(X, i, self._eps(), self.backend, self.exp)

    def _gaussian_value(self, g):
        _, logdet = linalg.slogdet(g.cov)
        return -0.5 * g.dim * (1.0 + math.log(2.0 * math.pi)) - 0.5 * logdet

    def _bures_wasserstein_gradient(self, g):
        return np.zeros(g.dim), -0.5 * np.linalg.inv(g.cov)


class KLDivergence(SumEnergy):
    r"""KL(ρ‖π) = ℋ(ρ) + ∫ U dρ + log Z for π = e^{−U}/Z (docs/theory/wasserstein-gradients.md): :class:`Entropy`
    plus the potential energy U.

    ``potential`` is an Energy of potential type (e.g. :class:`QuadraticPotential`, :class:`Potential`);
    ``log_normalizer`` = log Z if known (then the value is the KL itself, ≥ 0), else 0 (value up to a constant;
    gradients unaffected). Wasserstein gradient ∇ log ρ + ∇U = ∇ log(ρ/π). Particles need ``bandwidth``.
    """

    def __init__(self, potential, *, bandwidth=None, log_normalizer=0.0, backend="auto", exp="polynomial"):
        if not isinstance(potential, Energy):
            raise TypeError(f"potential must be an Energy, got {type(potential).__name__}")
        super().__init__([Entropy(bandwidth, backend=backend, exp=exp), potential], offset=log_normalizer)
        self.potential = potential
        self.entropy = self.terms[0]
        self.name = f"KL(. || exp(-{potential.name}))"


@ENERGIES.register
class KLToGaussian(KLDivergence):
    r"""KL(· ‖ N(μ, Σ_π)) with its normaliser: U(x) = ½(x − μ)ᵀΣ_π⁻¹(x − μ), log Z = ½ log det(2πΣ_π).

    Gaussian closed form (standard): KL = ½[tr(Σ_π⁻¹Σ) + (m − μ)ᵀΣ_π⁻¹(m − μ) − d − log det(Σ_π⁻¹Σ)],
    ∇_m = Σ_π⁻¹(m − μ), ∇_Σ = ½(Σ_π⁻¹ − Σ⁻¹) (the sum of the entropy and quadratic-potential forms).
    ``target`` is the :class:`GaussianMeasure` N(μ, Σ_π). Particles need ``bandwidth`` (blob entropy).

    Term object: ``{"kind": "kl_to_gaussian", "mean": d, "cov": d×d, "bandwidth": ε or null}``.
    """

    family = "kl_to_gaussian"
    formula = ("F(rho) = KL(rho || N(mean, cov)) = int rho log rho + int U drho + log Z, "
               "U(x) = 1/2 (x - mean)^T cov^-1 (x - mean), log Z = 1/2 log det(2 pi cov)")
    spec_keys = ("mean", "cov")
    particle_spec_keys = ("bandwidth",)
    kernel_options = ("backend", "exp")

    def __init__(self, mean, cov, *, bandwidth=None, backend="auto", exp="polynomial"):
        target = GaussianMeasure(mean, cov)
        precision = np.linalg.inv(target.cov)
        precision = 0.5 * (precision + precision.T)  # inv is symmetric only to ~κε; the potential symmetrises it anyway
        _, logdet = np.linalg.slogdet(2.0 * math.pi * target.cov)
        super().__init__(QuadraticPotential(precision, target.mean), bandwidth=bandwidth,
                         log_normalizer=0.5 * logdet, backend=backend, exp=exp)
        self.target = target
        self.name = f"KL(. || N(mu, Sigma), d={target.dim})"

    def to_spec(self) -> dict:
        return {"kind": self.family, "mean": self.target.mean.tolist(), "cov": self.target.cov.tolist(),
                "bandwidth": self.entropy.bandwidth}

    @classmethod
    def from_spec(cls, spec: dict, *, backend="auto", exp="polynomial") -> "KLToGaussian":
        spec = cls._check_spec(spec)
        return cls(np.array(spec["mean"], dtype=np.float64), np.array(spec["cov"], dtype=np.float64),
                   bandwidth=spec.get("bandwidth"), backend=backend, exp=exp)


def kl_to_gaussian(mean, cov, *, bandwidth=None, backend="auto", exp="polynomial") -> KLToGaussian:
    r"""KL(· ‖ N(μ, Σ_π)) with its normaliser: the :class:`KLToGaussian` term (see there)."""
    return KLToGaussian(mean, cov, bandwidth=bandwidth, backend=backend, exp=exp)
