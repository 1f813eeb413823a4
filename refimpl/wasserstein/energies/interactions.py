r"""Interaction energies 𝒲(ρ) = ½∬ W(x − y) dρ(x)dρ(y), W even: δ𝒲/δρ = W * ρ, ∇δ𝒲/δρ = ∇W * ρ
(docs/theory/wasserstein-gradients.md)."""
from __future__ import annotations

import math

import numpy as np

from refimpl.ad import Variable, linalg, ops
from refimpl.arguments import as_length_scale, as_real_scalar, as_symmetric_matrix, underlying_array
from refimpl.backends import check_backend
from refimpl.wasserstein import pairwise_sums
from refimpl.wasserstein.energies.algebra import ENERGIES, Energy
from refimpl.wasserstein.term_descriptors import GaussianInteractionDescriptor, QuadraticDescriptor

__all__ = ["QuadraticInteraction", "GaussianInteraction"]


@ENERGIES.register
class QuadraticInteraction(Energy):
    r"""𝒲(ρ) = ½∬ W(x − y) dρdρ with W(z) = ½ zᵀBz, B symmetric (docs/theory/wasserstein-gradients.md).

    Derived: W * ρ (y) = ½(y − m_ρ)ᵀB(y − m_ρ) + ½ tr(B C_ρ) (m_ρ, C_ρ the mean and covariance of ρ), so
    𝒲(ρ) = ½ tr(B C_ρ) and ∇δ𝒲/δρ (y) = B(y − m_ρ). On particles m_ρ, C_ρ are the empirical mean and the
    1/N-normalised covariance: O(Nd) for the gradient, O(N) for one coordinate after the mean.
    Lᵢ = Bᵢᵢ, L = λ_max(B) (docs/theory/coordinate-descent.md). Gaussian: ½ tr(BΣ), ∇_m = 0, ∇_Σ = ½B.

    Term object: ``{"kind": "quadratic_interaction", "B": d×d}``.
    """

    family = "quadratic_interaction"
    formula = "F(rho) = 1/2 int int W(x - y) drho(x) drho(y), W(z) = 1/2 z^T B z, B symmetric"
    spec_keys = ("B",)

    def __init__(self, B):
        B = as_symmetric_matrix(B, None, "B")
        self.B = B
        self.dim = B.shape[0]
        self.name = f"QuadraticInteraction(d={self.dim})"

    def to_spec(self) -> dict:
        return {"kind": self.family, "B": self.B.tolist()}

    @classmethod
    def from_spec(cls, spec: dict) -> "QuadraticInteraction":
        spec = cls._check_spec(spec)
        return cls(np.array(spec["B"], dtype=np.float64))

    def _value(self, X):
        D = X - ops.mean(X, axis=0, keepdims=True)
        return ops.sum(ops.matmul(D, self.B) * D) / (2.0 * X.shape[0])

    def _first_variation(self, X, Y):
        m = X.mean(axis=0)
        C = (X - m).T @ (X - m) / X.shape[0]
        D = Y - m
        return ops.sum(ops.matmul(D, self.B) * D, axis=1) / 2.0 + 0.5 * np.sum(self.B * C)

    def _wasserstein_gradient(self, X):
        return (X - X.mean(axis=0)) @ self.B

    def _coordinate_gradient(self, X, i):
        return (X - X.mean(axis=0)) @ self.B[i]

    def descriptor(self, factor):
        """c·𝒲 is quadratic: B ← cB."""
        return QuadraticDescriptor(B=factor * self.B)

    def _coordinate_smoothness(self, d):
        return np.diag(self.B).copy()

    def _smoothness(self, d):
        return float(np.linalg.eigvalsh(self.B)[-1])

    def _gaussian_value(self, g):
        return 0.5 * linalg.trace(self.B @ g.cov)

    def _bures_wasserstein_gradient(self, g):
        return np.zeros(g.dim), 0.5 * self.B


@ENERGIES.register
class GaussianInteraction(Energy):
    r"""𝒲(ρ) = ½∬ W(x − y) dρdρ with W(z) = a exp(−|z|²/(2s²)) (a > 0 repulsive, a < 0 attractive).

    Particles: 𝒲(ρ_X) = (1/(2N²)) Σ_{k,j} W(x_k − x_j) (self-pairs included), first variation (1/N)Σ_j W(y − x_j),
    gradient (1/N)Σ_j ∇W(x_k − x_j) with ∇W(z) = −(a/s²) z e^{−|z|²/(2s²)} — the O(N²d) loop of
    :mod:`refimpl.wasserstein.pairwise_sums` (``backend`` "auto" | "numpy" | "numba", :mod:`refimpl.backends`;
    ``exp`` "polynomial" | "libm", the exp the Numba kernel uses).
    Smoothness (derived from ∇²W(z) = a e^{−|z|²/2s²}(zzᵀ/s⁴ − I/s²), maximised over z):
    Lᵢ = L = 2a e^{−3/2}/s² for a > 0 (at |zᵢ|² = 3s²), |a|/s² for a < 0 (at z = 0).
    Gaussian closed form (derived: x − y ~ N(0, 2Σ), E e^{−|z|²/2s²} = det(I + 2Σ/s²)^{−1/2}):
    𝒲 = (a/2) det(I + 2Σ/s²)^{−1/2},  ∇_m = 0,  ∇_Σ = −𝒲 (s²I + 2Σ)⁻¹.

    Term object: ``{"kind": "gaussian_interaction", "amplitude": a, "width": s}``.
    """

    family = "gaussian_interaction"
    formula = "F(rho) = 1/2 int int W(x - y) drho(x) drho(y), W(z) = a exp(-|z|^2 / (2 s^2))"
    spec_keys = ("amplitude", "width")
    kernel_options = ("backend", "exp")

    def __init__(self, amplitude, width, *, backend="auto", exp="polynomial"):
        self.amplitude = as_real_scalar(amplitude, "amplitude")
        self.width = as_length_scale(width, "width")
        self.backend = check_backend(backend)
        self.exp = pairwise_sums.check_exp(exp)
        self.name = f"GaussianInteraction(a={self.amplitude:g}, s={self.width:g})"

    def to_spec(self) -> dict:
        return {"kind": self.family, "amplitude": self.amplitude, "width": self.width}

    @classmethod
    def from_spec(cls, spec: dict, *, backend="auto", exp="polynomial") -> "GaussianInteraction":
        spec = cls._check_spec(spec)
        return cls(spec["amplitude"], spec["width"], backend=backend, exp=exp)

    def _pair_values(self, Y, X):
        n, d = X.shape
        Z = ops.reshape(Y, (underlying_array(Y).shape[0], 1, d)) - X.reshape(1, n, d)
        return self.amplitude * ops.exp(ops.sum(Z * Z, axis=2) * (-0.5 / self.width ** 2))

    def _value(self, X):
        n, d = underlying_array(X).shape
        Z = ops.reshape(X, (n, 1, d)) - ops.reshape(X, (1, n, d))
        return ops.sum(self.amplitude * ops.exp(ops.sum(Z * Z, axis=2) * (-0.5 / self.width ** 2))) / (2.0 * n * n)

    def _first_variation(self, X, Y):
        return ops.sum(self._pair_values(Y, X), axis=1) / X.shape[0]

    def _wasserstein_gradient(self, X):
        return pairwise_sums.gaussian_interaction_gradient(X, self.amplitude, self.width, self.backend, self.exp)

    def _coordinate_gradient(self, X, i):
        return pairwise_sums.gaussian_interaction_partial(X, i, self.amplitude, self.width, self.backend, self.exp)

    def descriptor(self, factor):
        """c·𝒲 is the Gaussian interaction with amplitude c·a."""
        return GaussianInteractionDescriptor(factor * self.amplitude, self.width)

    def _L(self):
        a, s2 = self.amplitude, self.width ** 2
        return 2.0 * a * math.exp(-1.5) / s2 if a > 0 else abs(a) / s2

    def _coordinate_smoothness(self, d):
        return np.full(d, self._L())

    def _smoothness(self, d):
        return self._L()

    def _gaussian_value(self, g):
        s2 = self.width ** 2
        _, logdet = linalg.slogdet(np.eye(g.dim) + 2.0 * g.cov / s2)
        # math.exp on the value path (as before: bit-identical results), ops.exp on a tape
        return 0.5 * self.amplitude * (ops.exp(-0.5 * logdet) if isinstance(logdet, Variable)
                                       else math.exp(-0.5 * logdet))

    def _bures_wasserstein_gradient(self, g):
        val = self._gaussian_value(g)
        s2 = self.width ** 2
        return np.zeros(g.dim), -val * np.linalg.inv(s2 * np.eye(g.dim) + 2.0 * g.cov)
