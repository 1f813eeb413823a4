r"""The O(N²d) pairwise sums of the particle energies: their NumPy reference and the backend dispatch.

Two sums over all particle pairs dominate the cost of a particle Wasserstein gradient
(docs/theory/wasserstein-gradients.md):

* the Gaussian interaction force, for W(z) = a exp(−|z|²/(2s²)),
  ``out[k] = (1/N) Σ_j ∇W(x_k − x_j)``,  ∇W(z) = −(a/s²) z exp(−|z|²/(2s²));
* the blob-entropy score (see :class:`refimpl.wasserstein.energies.Entropy`), with the unnormalised kernel
  k(z) = exp(−|z|²/(2ε²)) and K̄(x) = (1/N) Σ_j k(x − x_j),
  ``out[k] = (1/N) Σ_j (−(x_k − x_j)/ε²) k(x_k − x_j) (1/K̄(x_k) + 1/K̄(x_j))``.

Each public function takes ``backend`` ("auto" | "numpy" | "numba", :mod:`refimpl.backends`): "numba" runs the
compiled kernel of :mod:`refimpl.wasserstein._numba` (always applicable here: the callers pass checked float64
arrays), "numpy" the reference below, "auto" the kernel. The kernels take ``exp``: ``"polynomial"`` (default)
inlines the vectorisable exp of :mod:`refimpl.numerics.polynomial_exp` (≤ 2 ulp) and forms the squared
distances and sums by fused multiply-adds (see :mod:`refimpl.wasserstein._numba`), ``"libm"`` calls the C
library's scalar exp (bit-identical to the kernels before the polynomial exp existed); the NumPy reference, which
calls ``np.exp``, ignores it (but checks it). The ``*_numpy`` functions are the reference: the same terms
with the same operation order on (N, N, d) broadcast arrays (memory O(N²d): for tests and small N). The two agree to
rounding (the exp implementations and reductions may differ in the last bit); the tests bound the difference.

These functions do **no** argument checking; they are called only through the checked energy methods.
"""
from __future__ import annotations

import numpy as np

from refimpl.arguments import as_choice
from refimpl.backends import resolve_backend
from refimpl.wasserstein import _numba
from refimpl.wasserstein._numba import EXP_IMPLEMENTATIONS

__all__ = ["check_exp", "gaussian_interaction_gradient", "gaussian_interaction_partial", "mean_kernel", "blob_score",
           "blob_score_partial", "gaussian_interaction_gradient_numpy", "mean_kernel_numpy", "blob_score_numpy"]


def check_exp(exp, name: str = "exp") -> str:
    """Return ``exp`` if it is one of :data:`EXP_IMPLEMENTATIONS`; ``TypeError``/``ValueError`` naming ``name``."""
    return as_choice(exp, EXP_IMPLEMENTATIONS, name)


def _use_numba(backend, exp) -> bool:
    """Resolve ``backend``; check ``exp`` (one of :data:`EXP_IMPLEMENTATIONS`) whichever backend runs."""
    check_exp(exp)
    return resolve_backend(backend, kernel_applies=True) == "numba"


# --- NumPy reference -----------------------------------------------------------------------------------------------

def gaussian_interaction_gradient_numpy(X, amplitude, width):
    """NumPy reference of the Gaussian interaction force (same terms, same order of operations)."""
    n = X.shape[0]
    Z = X[:, None, :] - X[None, :, :]
    r2 = np.sum(Z * Z, axis=2)
    inv_s2 = 1.0 / (width * width)
    w = -amplitude * inv_s2 * np.exp(-0.5 * r2 * inv_s2)
    return np.sum(w[:, :, None] * Z, axis=1) / n


def mean_kernel_numpy(X, bandwidth):
    """NumPy reference of K̄(x_k) = (1/N) Σ_j exp(−|x_k − x_j|²/(2ε²))."""
    Z = X[:, None, :] - X[None, :, :]
    r2 = np.sum(Z * Z, axis=2)
    return np.sum(np.exp(-0.5 * r2 * (1.0 / (bandwidth * bandwidth))), axis=1) / X.shape[0]


def blob_score_numpy(X, bandwidth):
    """NumPy reference of the blob-entropy score (same terms, same order of operations)."""
    n = X.shape[0]
    kbar = mean_kernel_numpy(X, bandwidth)
    Z = X[:, None, :] - X[None, :, :]
    r2 = np.sum(Z * Z, axis=2)
    inv_e2 = 1.0 / (bandwidth * bandwidth)
    w = -inv_e2 * np.exp(-0.5 * r2 * inv_e2) * (1.0 / kbar[:, None] + 1.0 / kbar[None, :])
    return np.sum(w[:, :, None] * Z, axis=1) / n


# --- dispatch ------------------------------------------------------------------------------------------------------

def gaussian_interaction_gradient(X, amplitude, width, backend="auto", exp="polynomial"):
    """(N, d) Gaussian interaction force."""
    if _use_numba(backend, exp):
        return _numba.gaussian_interaction_gradient(X, amplitude, width, exp)
    return gaussian_interaction_gradient_numpy(X, amplitude, width)


def gaussian_interaction_partial(X, i, amplitude, width, backend="auto", exp="polynomial"):
    """(N,) coordinate-i component of the Gaussian interaction force (needs the full |x_k − x_j|: O(N²d))."""
    if _use_numba(backend, exp):
        return _numba.gaussian_interaction_partial(X, i, amplitude, width, exp)
    return gaussian_interaction_gradient_numpy(X, amplitude, width)[:, i].copy()


def mean_kernel(X, bandwidth, backend="auto", exp="polynomial"):
    """(N,) K̄ at the particles."""
    if _use_numba(backend, exp):
        return _numba.mean_kernel(X, bandwidth, exp)
    return mean_kernel_numpy(X, bandwidth)


def blob_score(X, bandwidth, backend="auto", exp="polynomial"):
    """(N, d) blob-entropy score."""
    if _use_numba(backend, exp):
        return _numba.blob_score(X, bandwidth, exp)
    return blob_score_numpy(X, bandwidth)


def blob_score_partial(X, i, bandwidth, backend="auto", exp="polynomial"):
    """(N,) coordinate-i component of the blob-entropy score (O(N²d): K̄ needs full distances)."""
    if _use_numba(backend, exp):
        return _numba.blob_score_partial(X, i, bandwidth, exp)
    return blob_score_numpy(X, bandwidth)[:, i].copy()
