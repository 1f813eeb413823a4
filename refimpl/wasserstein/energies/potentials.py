r"""Potential energies 𝒱(ρ) = ∫ V dρ: δ𝒱/δρ = V, ∇δ𝒱/δρ = ∇V (docs/theory/wasserstein-gradients.md)."""
from __future__ import annotations

import numpy as np

from refimpl.ad import linalg, ops
from refimpl.arguments import as_real_scalar, as_symmetric_matrix, as_vector, underlying_array
from refimpl.wasserstein.energies.algebra import ENERGIES, Energy
from refimpl.wasserstein.term_descriptors import QuadraticDescriptor

__all__ = ["QuadraticPotential", "Potential"]


@ENERGIES.register
class QuadraticPotential(Energy):
    r"""𝒱(ρ) = ∫ V dρ with V(x) = ½(x − b)ᵀA(x − b), A symmetric (docs/theory/wasserstein-gradients.md).

    First variation V; Wasserstein gradient ∇V(x) = A(x − b); coordinate partial (A(x − b))ᵢ = A[i]·(x − b) in O(d)
    per particle. Lᵢ = Aᵢᵢ, L = λ_max(A) (exact: ∇²V = A).
    Gaussian closed form (E[xxᵀ] = Σ + mmᵀ): 𝒱(N(m, Σ)) = ½ tr(AΣ) + ½(m − b)ᵀA(m − b),
    ∇_m = A(m − b), ∇_Σ = ½A.

    Term object: ``{"kind": "quadratic_potential", "A": d×d, "b": d}`` (``b`` optional, default 0).
    """

    family = "quadratic_potential"
    formula = "F(rho) = int V drho, V(x) = 1/2 (x - b)^T A (x - b), A symmetric"
    spec_keys = ("A",)

    def __init__(self, A, b=None):
        A = as_symmetric_matrix(A, None, "A")
        d = A.shape[0]
        self.A = A
        self.b = np.zeros(d) if b is None else as_vector(b, d, "b")
        self.dim = d
        self.name = f"QuadraticPotential(d={d})"

    def to_spec(self) -> dict:
        return {"kind": self.family, "A": self.A.tolist(), "b": self.b.tolist()}

    @classmethod
    def from_spec(cls, spec: dict) -> "QuadraticPotential":
        spec = cls._check_spec(spec)
        return cls(np.array(spec["A"], dtype=np.float64),
                   None if "b" not in spec else np.array(spec["b"], dtype=np.float64))

    def _value(self, X):
        D = X - self.b
        return ops.sum(ops.matmul(D, self.A) * D) / (2.0 * X.shape[0])

    def _first_variation(self, X, Y):
        D = Y - self.b
        return ops.sum(ops.matmul(D, self.A) * D, axis=1) / 2.0

    def _wasserstein_gradient(self, X):
        return (X - self.b) @ self.A

    def _coordinate_gradient(self, X, i):
        return (X - self.b) @ self.A[i]

    def descriptor(self, factor):
        """c·V is quadratic: A ← cA, r ← c A b."""
        return QuadraticDescriptor(A=factor * self.A, r=factor * (self.A @ self.b))

    def _coordinate_smoothness(self, d):
        return np.diag(self.A).copy()

    def _smoothness(self, d):
        return float(np.linalg.eigvalsh(self.A)[-1])

    def _gaussian_value(self, g):
        D = g.mean - self.b
        return 0.5 * linalg.trace(self.A @ g.cov) + 0.5 * D @ self.A @ D

    def _bures_wasserstein_gradient(self, g):
        return self.A @ (g.mean - self.b), 0.5 * self.A


class Potential(Energy):
    r"""𝒱(ρ) = ∫ V dρ for a user potential V: ℝᵈ → ℝ.

    ``function(X)`` maps an (N, d) array to the (N,) values V(x_k) and must be written with :mod:`refimpl.ad.ops`
    (so the tape routes work); ``gradient(X)`` → (N, d) is ∇V at the rows, in closed form (it is what the tape and FD
    checks test); optional ``partial(X, i)`` → (N,) is ∂ᵢV (default: a column of ``gradient``).
    ``coordinate_smoothness`` (sup ∂ᵢᵢV, a (d,) array) and ``smoothness`` (sup λ_max ∇²V) are optional; ``dim`` fixes
    the dimension if V only makes sense in one. No Gaussian closed form.
    """

    def __init__(self, function, gradient, partial=None, *, coordinate_smoothness=None, smoothness=None, dim=None,
                 name="Potential"):
        if not callable(function):
            raise TypeError("function must be callable: (N, d) -> (N,) written with refimpl.ad.ops")
        if not callable(gradient):
            raise TypeError("gradient must be callable: (N, d) -> (N, d)")
        if partial is not None and not callable(partial):
            raise TypeError("partial must be callable: (X, i) -> (N,), or None")
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1):
            raise ValueError(f"dim must be a positive integer or None, got {dim!r}")
        self.function, self.gradient, self.partial = function, gradient, partial
        self.dim = None if dim is None else int(dim)
        self._Li = None if coordinate_smoothness is None else as_vector(coordinate_smoothness, self.dim,
                                                                         "coordinate_smoothness")
        self._L = None if smoothness is None else as_real_scalar(smoothness, "smoothness")
        self.name = str(name)

    def _values(self, Y):
        v = self.function(Y)
        shape = underlying_array(v).shape
        if shape != (underlying_array(Y).shape[0],):
            raise ValueError(f"{self.name}: function must return shape (N,), got {shape}")
        return v

    def _value(self, X):
        return ops.sum(self._values(X)) / X.shape[0]

    def _first_variation(self, X, Y):
        return self._values(Y)

    def _wasserstein_gradient(self, X):
        G = np.asarray(self.gradient(X), dtype=np.float64)
        if G.shape != X.shape:
            raise ValueError(f"{self.name}: gradient must return shape {X.shape}, got {G.shape}")
        return G

    def _coordinate_gradient(self, X, i):
        if self.partial is None:
            return self._wasserstein_gradient(X)[:, i].copy()
        g = np.asarray(self.partial(X, i), dtype=np.float64)
        if g.shape != (X.shape[0],):
            raise ValueError(f"{self.name}: partial must return shape ({X.shape[0]},), got {g.shape}")
        return g

    def _coordinate_smoothness(self, d):
        if self._Li is None:
            return None
        if self._Li.shape[0] != d:
            raise ValueError(f"{self.name}: coordinate_smoothness has length {self._Li.shape[0]}, asked for d = {d}")
        return self._Li.copy()

    def _smoothness(self, d):
        return self._L
