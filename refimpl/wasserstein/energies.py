r"""Energies on P₂(ℝᵈ), their first variations and Wasserstein gradients (SPEC §4).

An :class:`Energy` F is evaluated on two representations of a measure ρ:

**Particles** — an (N, d) array X, the empirical measure ρ_X = (1/N) Σ_k δ_{x_k}:

* ``value(X)`` = F(ρ_X), written with :mod:`refimpl.ad.ops`, so on a tape :class:`~refimpl.ad.Variable` it records
  and ``refimpl.ad.grad(F.value)(X)`` works;
* ``first_variation(X, Y)`` = (δF/δρ)[ρ_X] evaluated at the points Y (M, d) → (M,); written with ops in Y (X is a
  constant ndarray), so ``refimpl.ad.grad(lambda Y: ops.sum(F.first_variation(X, Y)))(X)`` is the tape route to
  the Wasserstein gradient;
* ``wasserstein_gradient(X)`` = ∇ₓ(δF/δρ)[ρ_X](x_k) for every particle → (N, d), closed form (NumPy/Numba);
* ``coordinate_gradient(X, i)`` = ``wasserstein_gradient(X)[:, i]`` → (N,), at the cost of one coordinate where the
  energy allows it (O(Nd) for quadratic potentials and quadratic interaction; the pairwise energies need full
  distances and cost O(N²d) either way);
* ``coordinate_smoothness(d)`` → (d,) constants Lᵢ, ``smoothness(d)`` → L, or ``None`` where unknown/infinite.

Three routes therefore agree (derived; the tests check all three): for every energy below F(ρ_X) is a smooth function
of X and the particle gradient satisfies  N ∂F(ρ_X)/∂x_k = ∇ₓ(δF/δρ)[ρ_X](x_k), which is the tape gradient of the
first variation at the particles, which is ``wasserstein_gradient``. (For the potential and interaction energies this
is the chain rule; for the entropy it holds because the particle entropy is the *blob* entropy, see :class:`Entropy`.)

Coordinate-wise smoothness (notes/rwcd-derivations.md §2, condition (C)): F is Lᵢ-smooth along eᵢ if
F((Id + eᵢφ)#ρ) ≤ F(ρ) + ∫ ∂ᵢ(δF/δρ) φ dρ + (Lᵢ/2) ∫ φ² dρ for all ρ, φ; sufficient constants are
Lᵢ = sup ∂ᵢᵢV for a potential and Lᵢ = sup ∂ᵢᵢW for an interaction (derived there), L = sup λ_max(∇²V) resp.
sup λ_max(∇²W) for the full-gradient analogue. Sums add their constants (an upper bound for L).

**Gaussians** — a :class:`~refimpl.wasserstein.measures.GaussianMeasure` N(m, Σ):

* ``gaussian_value(g)`` = F(N(m, Σ)) in closed form;
* ``bures_wasserstein_gradient(g)`` → (∇_m F, ∇_Σ F) (∇_Σ symmetric), the Euclidean gradients of
  (m, Σ) ↦ F(N(m, Σ));
* ``gaussian_velocity(g)`` → (b, M): the Bures–Wasserstein gradient as an affine vector field
  v(x) = b + M(x − m) with b = ∇_m F, M = 2∇_Σ F. Derived: along the affine displacement x ↦ x + t(c + S(x − m))
  (S symmetric), m ↦ m + tc and Σ ↦ (I + tS)Σ(I + tS), so dF/dt = ⟨∇_m F, c⟩ + 2 tr(∇_Σ F SΣ) = ∫ v·(c + S(x−m)) dρ
  exactly when v = ∇_m F + 2∇_Σ F (x − m). For potentials, quadratic interaction and entropy on a Gaussian this *is*
  the Wasserstein gradient ∇δF/δρ; for the Gaussian interaction it is its L²(ρ) projection on affine fields.

Energies compose by sum (``F + G``, ``sum([...])``) and by a real factor (``c * F``).
"""
from __future__ import annotations

import math

import numpy as np

from refimpl.ad import Variable, ops
from refimpl.backends import check_backend
from refimpl.wasserstein import pairwise_sums
from refimpl.arguments import (as_coordinate, as_particles, as_real_scalar, as_symmetric_matrix,
                                           as_vector, underlying_array)
from refimpl.wasserstein.measures import GaussianMeasure


def _as_float_if_array(v):
    """A float for a plain NumPy result, the Variable itself on a tape."""
    return v if isinstance(v, Variable) else float(v)


def _check_gaussian(g, name="g"):
    if not isinstance(g, GaussianMeasure):
        raise TypeError(f"{name} must be a GaussianMeasure, got {type(g).__name__}")
    return g


class Energy:
    """An energy F: P₂(ℝᵈ) → ℝ. Subclasses implement the underscore methods; the public ones validate first.

    ``dim`` is the dimension the energy is tied to (e.g. the size of A in a quadratic potential), or ``None`` if it
    applies in every dimension.
    """

    dim: int | None = None
    name: str = "energy"

    # -- particles: public, validated ------------------------------------------------------------------------------
    def value(self, X):
        """F(ρ_X) for the empirical measure of the particles X (N, d); float, or a Variable on a tape."""
        X = as_particles(X, "X", allow_variable=True)
        self._check_dim(underlying_array(X).shape[1])
        return _as_float_if_array(self._value(X))

    def first_variation(self, X, Y):
        """(δF/δρ)[ρ_X](y) at each row y of Y (M, d) → (M,). Y may be a tape Variable; X is a constant."""
        X = as_particles(X, "X")
        Y = as_particles(Y, "Y", allow_variable=True)
        if underlying_array(Y).shape[1] != X.shape[1]:
            raise ValueError(f"Y must have d = {X.shape[1]} columns like X, got shape {underlying_array(Y).shape}")
        self._check_dim(X.shape[1])
        return self._first_variation(X, Y)

    def wasserstein_gradient(self, X):
        """∇ₓ(δF/δρ)[ρ_X] at each particle: an (N, d) ndarray (the particle velocity field is its negative)."""
        X = as_particles(X, "X")
        self._check_dim(X.shape[1])
        return self._wasserstein_gradient(X)

    def coordinate_gradient(self, X, i):
        """∂ᵢ(δF/δρ)[ρ_X] at each particle → (N,) = ``wasserstein_gradient(X)[:, i]``, cheaper where possible."""
        X = as_particles(X, "X")
        self._check_dim(X.shape[1])
        i = as_coordinate(i, X.shape[1])
        return self._coordinate_gradient(X, i)

    def coordinate_smoothness(self, d: int):
        """(d,) constants Lᵢ of condition (C) (module docstring), or ``None`` if some Lᵢ is unknown or infinite."""
        d = self._check_d(d)
        L = self._coordinate_smoothness(d)
        return None if L is None else np.asarray(L, dtype=np.float64)

    def smoothness(self, d: int):
        """Full-gradient smoothness constant L (an upper bound for sums), or ``None`` if unknown or infinite."""
        d = self._check_d(d)
        L = self._smoothness(d)
        return None if L is None else float(L)

    # -- Gaussians: public, validated ------------------------------------------------------------------------------
    def gaussian_value(self, g: GaussianMeasure) -> float:
        """F(N(m, Σ)) in closed form."""
        g = _check_gaussian(g)
        self._check_dim(g.dim)
        return float(self._gaussian_value(g))

    def bures_wasserstein_gradient(self, g: GaussianMeasure):
        """(∇_m F, ∇_Σ F) of (m, Σ) ↦ F(N(m, Σ)): a (d,) and a symmetric (d, d) array."""
        g = _check_gaussian(g)
        self._check_dim(g.dim)
        gm, gS = self._bures_wasserstein_gradient(g)
        return np.asarray(gm, dtype=np.float64), 0.5 * (np.asarray(gS) + np.asarray(gS).T)

    def gaussian_velocity(self, g: GaussianMeasure):
        """(b, M) with the Bures–Wasserstein gradient field v(x) = b + M(x − m): b = ∇_m F, M = 2∇_Σ F."""
        gm, gS = self.bures_wasserstein_gradient(g)
        return gm, 2.0 * gS

    # -- composition -----------------------------------------------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        if not isinstance(other, Energy):
            return NotImplemented
        return SumEnergy([self, other])

    def __radd__(self, other):  # so that sum([F, G]) works (starts from 0)
        if isinstance(other, (int, float)) and other == 0:
            return self
        return NotImplemented

    def __mul__(self, c):
        if isinstance(c, Energy):
            return NotImplemented
        return ScaledEnergy(c, self)

    __rmul__ = __mul__

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _check_dim(self, d):
        if self.dim is not None and d != self.dim:
            raise ValueError(f"{self.name} is defined on R^{self.dim}, got points in R^{d}")

    def _check_d(self, d):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
            raise ValueError(f"d must be a positive integer, got {d!r}")
        self._check_dim(int(d))
        return int(d)

    # -- defaults for subclasses -----------------------------------------------------------------------------------
    def _coordinate_gradient(self, X, i):
        return self._wasserstein_gradient(X)[:, i].copy()

    def _coordinate_smoothness(self, d):
        return None

    def _smoothness(self, d):
        return None

    def _gaussian_value(self, g):
        raise NotImplementedError(f"{self.name} has no closed form on Gaussians")

    def _bures_wasserstein_gradient(self, g):
        raise NotImplementedError(f"{self.name} has no closed-form Bures-Wasserstein gradient")

    def __repr__(self):
        return self.name


# =================================================================================================================
# potential energies  V(ρ) = ∫ V dρ,  δV/δρ = V,  ∇δV/δρ = ∇V
# =================================================================================================================

class QuadraticPotential(Energy):
    r"""𝒱(ρ) = ∫ V dρ with V(x) = ½(x − b)ᵀA(x − b), A symmetric (SPEC §4).

    First variation V; Wasserstein gradient ∇V(x) = A(x − b); coordinate partial (A(x − b))ᵢ = A[i]·(x − b) in O(d)
    per particle. Lᵢ = Aᵢᵢ, L = λ_max(A) (exact: ∇²V = A).
    Gaussian closed form (E[xxᵀ] = Σ + mmᵀ): 𝒱(N(m, Σ)) = ½ tr(AΣ) + ½(m − b)ᵀA(m − b),
    ∇_m = A(m − b), ∇_Σ = ½A.
    """

    def __init__(self, A, b=None):
        A = as_symmetric_matrix(A, None, "A")
        d = A.shape[0]
        self.A = A
        self.b = np.zeros(d) if b is None else as_vector(b, d, "b")
        self.dim = d
        self.name = f"QuadraticPotential(d={d})"

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

    def _coordinate_smoothness(self, d):
        return np.diag(self.A).copy()

    def _smoothness(self, d):
        return float(np.linalg.eigvalsh(self.A)[-1])

    def _gaussian_value(self, g):
        D = g.mean - self.b
        return 0.5 * np.trace(self.A @ g.cov) + 0.5 * D @ self.A @ D

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


# =================================================================================================================
# interaction energies  𝒲(ρ) = ½∬ W(x − y) dρ(x)dρ(y),  W even,  δ𝒲/δρ = W * ρ,  ∇δ𝒲/δρ = ∇W * ρ
# =================================================================================================================

class QuadraticInteraction(Energy):
    r"""𝒲(ρ) = ½∬ W(x − y) dρdρ with W(z) = ½ zᵀBz, B symmetric (SPEC §4).

    Derived: W * ρ (y) = ½(y − m_ρ)ᵀB(y − m_ρ) + ½ tr(B C_ρ) (m_ρ, C_ρ the mean and covariance of ρ), so
    𝒲(ρ) = ½ tr(B C_ρ) and ∇δ𝒲/δρ (y) = B(y − m_ρ). On particles m_ρ, C_ρ are the empirical mean and the
    1/N-normalised covariance: O(Nd) for the gradient, O(N) for one coordinate after the mean.
    Lᵢ = Bᵢᵢ, L = λ_max(B) (notes/rwcd-derivations.md §2). Gaussian: ½ tr(BΣ), ∇_m = 0, ∇_Σ = ½B.
    """

    def __init__(self, B):
        B = as_symmetric_matrix(B, None, "B")
        self.B = B
        self.dim = B.shape[0]
        self.name = f"QuadraticInteraction(d={self.dim})"

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

    def _coordinate_smoothness(self, d):
        return np.diag(self.B).copy()

    def _smoothness(self, d):
        return float(np.linalg.eigvalsh(self.B)[-1])

    def _gaussian_value(self, g):
        return 0.5 * np.trace(self.B @ g.cov)

    def _bures_wasserstein_gradient(self, g):
        return np.zeros(g.dim), 0.5 * self.B


class GaussianInteraction(Energy):
    r"""𝒲(ρ) = ½∬ W(x − y) dρdρ with W(z) = a exp(−|z|²/(2s²)) (a > 0 repulsive, a < 0 attractive).

    Particles: 𝒲(ρ_X) = (1/(2N²)) Σ_{k,j} W(x_k − x_j) (self-pairs included), first variation (1/N)Σ_j W(y − x_j),
    gradient (1/N)Σ_j ∇W(x_k − x_j) with ∇W(z) = −(a/s²) z e^{−|z|²/(2s²)} — the O(N²d) loop of
    :mod:`refimpl.wasserstein.kernels` (``backend`` "numba" or the "numpy" reference).
    Smoothness (derived from ∇²W(z) = a e^{−|z|²/2s²}(zzᵀ/s⁴ − I/s²), maximised over z):
    Lᵢ = L = 2a e^{−3/2}/s² for a > 0 (at |zᵢ|² = 3s²), |a|/s² for a < 0 (at z = 0).
    Gaussian closed form (derived: x − y ~ N(0, 2Σ), E e^{−|z|²/2s²} = det(I + 2Σ/s²)^{−1/2}):
    𝒲 = (a/2) det(I + 2Σ/s²)^{−1/2},  ∇_m = 0,  ∇_Σ = −𝒲 (s²I + 2Σ)⁻¹.
    """

    def __init__(self, amplitude, width, *, backend="auto"):
        self.amplitude = as_real_scalar(amplitude, "amplitude")
        self.width = as_real_scalar(width, "width", positive=True)
        self.backend = check_backend(backend)
        self.name = f"GaussianInteraction(a={self.amplitude:g}, s={self.width:g})"

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
        return pairwise_sums.gaussian_interaction_gradient(X, self.amplitude, self.width, self.backend)

    def _coordinate_gradient(self, X, i):
        return pairwise_sums.gaussian_interaction_partial(X, i, self.amplitude, self.width, self.backend)

    def _L(self):
        a, s2 = self.amplitude, self.width ** 2
        return 2.0 * a * math.exp(-1.5) / s2 if a > 0 else abs(a) / s2

    def _coordinate_smoothness(self, d):
        return np.full(d, self._L())

    def _smoothness(self, d):
        return self._L()

    def _gaussian_value(self, g):
        s2 = self.width ** 2
        _, logdet = np.linalg.slogdet(np.eye(g.dim) + 2.0 * g.cov / s2)
        return 0.5 * self.amplitude * math.exp(-0.5 * logdet)

    def _bures_wasserstein_gradient(self, g):
        val = self._gaussian_value(g)
        s2 = self.width ** 2
        return np.zeros(g.dim), -val * np.linalg.inv(s2 * np.eye(g.dim) + 2.0 * g.cov)


# =================================================================================================================
# entropy  ℋ(ρ) = ∫ ρ log ρ
# =================================================================================================================

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


class Entropy(Energy):
    r"""ℋ(ρ) = ∫ ρ log ρ (SPEC §4): exact on Gaussians, the *blob* entropy on particles.

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
    No finite smoothness constants. Coordinate partials cost O(N²d) (K̄ needs full distances).
    """

    def __init__(self, bandwidth=None, *, backend="auto"):
        self.bandwidth = None if bandwidth is None else as_real_scalar(bandwidth, "bandwidth", positive=True)
        self.backend = check_backend(backend)
        self.name = "Entropy" if self.bandwidth is None else f"Entropy(bandwidth={self.bandwidth:g})"

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
        kbar = pairwise_sums.mean_kernel(X, eps, self.backend)
        return float(np.mean(np.log(kbar))) - self._log_normaliser(d)

    def _first_variation(self, X, Y):
        eps = self._eps()
        n, d = X.shape
        kbar_x = pairwise_sums.mean_kernel(X, eps, self.backend)
        Z = ops.reshape(Y, (underlying_array(Y).shape[0], 1, d)) - X.reshape(1, n, d)
        kyx = ops.exp(ops.sum(Z * Z, axis=2) * (-0.5 / eps ** 2))  # (M, N)
        return (ops.log(ops.mean(kyx, axis=1)) - self._log_normaliser(d)
                + ops.mean(kyx * (1.0 / kbar_x).reshape(1, n), axis=1))

    def _wasserstein_gradient(self, X):
        return pairwise_sums.blob_score(X, self._eps(), self.backend)

    def _coordinate_gradient(self, X, i):
        return pairwise_sums.blob_score_partial(X, i, self._eps(), self.backend)

    def _gaussian_value(self, g):
        _, logdet = np.linalg.slogdet(g.cov)
        return -0.5 * g.dim * (1.0 + math.log(2.0 * math.pi)) - 0.5 * logdet

    def _bures_wasserstein_gradient(self, g):
        return np.zeros(g.dim), -0.5 * np.linalg.inv(g.cov)


# =================================================================================================================
# composition
# =================================================================================================================

class SumEnergy(Energy):
    """F = Σ_t F_t + offset (a constant). Every quantity is the sum of the terms'; Lᵢ and L add (L an upper bound);
    unknown if any term's is unknown."""

    def __init__(self, terms, offset=0.0):
        flat = []
        off = as_real_scalar(offset, "offset")
        for t in terms:
            if not isinstance(t, Energy):
                raise TypeError(f"terms must be Energy instances, got {type(t).__name__}")
            if isinstance(t, SumEnergy):
                flat.extend(t.terms)
                off += t.offset
            else:
                flat.append(t)
        if not flat:
            raise ValueError("terms must hold at least one energy")
        dims = {t.dim for t in flat if t.dim is not None}
        if len(dims) > 1:
            raise ValueError(f"terms are defined in different dimensions {sorted(dims)}")
        self.terms = tuple(flat)
        self.offset = off
        self.dim = dims.pop() if dims else None
        self.name = " + ".join(t.name for t in self.terms) + (f" + {off:g}" if off else "")

    def _value(self, X):
        total = self.terms[0]._value(X)
        for t in self.terms[1:]:
            total = total + t._value(X)
        return total + self.offset

    def _first_variation(self, X, Y):
        total = self.terms[0]._first_variation(X, Y)
        for t in self.terms[1:]:
            total = total + t._first_variation(X, Y)
        return total + self.offset

    def _wasserstein_gradient(self, X):
        return sum(t._wasserstein_gradient(X) for t in self.terms)

    def _coordinate_gradient(self, X, i):
        return sum(t._coordinate_gradient(X, i) for t in self.terms)

    def _coordinate_smoothness(self, d):
        parts = [t._coordinate_smoothness(d) for t in self.terms]
        return None if any(p is None for p in parts) else sum(np.asarray(p, dtype=np.float64) for p in parts)

    def _smoothness(self, d):
        parts = [t._smoothness(d) for t in self.terms]
        return None if any(p is None for p in parts) else float(sum(parts))

    def _gaussian_value(self, g):
        return sum(t._gaussian_value(g) for t in self.terms) + self.offset

    def _bures_wasserstein_gradient(self, g):
        grads = [t._bures_wasserstein_gradient(g) for t in self.terms]
        return sum(gm for gm, _ in grads), sum(gS for _, gS in grads)


class ScaledEnergy(Energy):
    """c · F for a finite real c. Lᵢ, L scale by c when c ≥ 0 (unknown for c < 0)."""

    def __init__(self, factor, energy):
        if not isinstance(energy, Energy):
            raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")
        self.factor = as_real_scalar(factor, "factor")
        self.energy = energy
        self.dim = energy.dim
        self.name = f"{self.factor:g}*({energy.name})"

    def _value(self, X):
        return self.factor * self.energy._value(X)

    def _first_variation(self, X, Y):
        return self.factor * self.energy._first_variation(X, Y)

    def _wasserstein_gradient(self, X):
        return self.factor * self.energy._wasserstein_gradient(X)

    def _coordinate_gradient(self, X, i):
        return self.factor * self.energy._coordinate_gradient(X, i)

    def _coordinate_smoothness(self, d):
        L = self.energy._coordinate_smoothness(d)
        return None if (L is None or self.factor < 0) else self.factor * np.asarray(L)

    def _smoothness(self, d):
        L = self.energy._smoothness(d)
        return None if (L is None or self.factor < 0) else self.factor * L

    def _gaussian_value(self, g):
        return self.factor * self.energy._gaussian_value(g)

    def _bures_wasserstein_gradient(self, g):
        gm, gS = self.energy._bures_wasserstein_gradient(g)
        return self.factor * gm, self.factor * gS


class KLDivergence(SumEnergy):
    r"""KL(ρ‖π) = ℋ(ρ) + ∫ U dρ + log Z for π = e^{−U}/Z (SPEC §4): :class:`Entropy` plus the potential energy U.

    ``potential`` is an Energy of potential type (e.g. :class:`QuadraticPotential`, :class:`Potential`);
    ``log_normalizer`` = log Z if known (then the value is the KL itself, ≥ 0), else 0 (value up to a constant;
    gradients unaffected). Wasserstein gradient ∇ log ρ + ∇U = ∇ log(ρ/π). Particles need ``bandwidth``.
    """

    def __init__(self, potential, *, bandwidth=None, log_normalizer=0.0, backend="auto"):
        if not isinstance(potential, Energy):
            raise TypeError(f"potential must be an Energy, got {type(potential).__name__}")
        super().__init__([Entropy(bandwidth, backend=backend), potential], offset=log_normalizer)
        self.potential = potential
        self.entropy = self.terms[0]
        self.name = f"KL(. || exp(-{potential.name}))"


def kl_to_gaussian(mean, cov, *, bandwidth=None, backend="auto") -> KLDivergence:
    r"""KL(· ‖ N(μ, Σ_π)) with its normaliser: U(x) = ½(x − μ)ᵀΣ_π⁻¹(x − μ), log Z = ½ log det(2πΣ_π).

    Gaussian closed form (standard): KL = ½[tr(Σ_π⁻¹Σ) + (m − μ)ᵀΣ_π⁻¹(m − μ) − d − log det(Σ_π⁻¹Σ)],
    ∇_m = Σ_π⁻¹(m − μ), ∇_Σ = ½(Σ_π⁻¹ − Σ⁻¹) (the sum of the entropy and quadratic-potential forms).
    """
    target = GaussianMeasure(mean, cov)
    precision = np.linalg.inv(target.cov)
    _, logdet = np.linalg.slogdet(2.0 * math.pi * target.cov)
    kl = KLDivergence(QuadraticPotential(precision, target.mean), bandwidth=bandwidth, log_normalizer=0.5 * logdet,
                      backend=backend)
    kl.target = target
    kl.name = f"KL(. || N(mu, Sigma), d={target.dim})"
    return kl


def weighted_terms(energy: Energy) -> list:
    """The leaves of a sum/scaled energy tree with their total factors: F = Σ_k c_k F_k + const, as [(c_k, F_k)]
    (constant offsets dropped). Order: the depth-first order of a stack walk (the last term first), fixed, so that sums
    built from the list are reproducible."""
    leaves, stack = [], [(1.0, energy)]
    while stack:
        c, e = stack.pop()
        if isinstance(e, SumEnergy):
            stack.extend((c, t) for t in e.terms)
        elif isinstance(e, ScaledEnergy):
            stack.append((c * e.factor, e.energy))
        else:
            leaves.append((c, e))
    return leaves
