"""O(N²d) pairwise loops of the particle energies: Numba kernels and their NumPy reference.

Two sums over all particle pairs dominate the cost of a particle Wasserstein gradient:

* the Gaussian interaction force, for W(z) = a exp(−|z|²/(2s²)),
  ``out[k] = (1/N) Σ_j ∇W(x_k − x_j)``,  ∇W(z) = −(a/s²) z exp(−|z|²/(2s²));
* the blob-entropy score (see :class:`refimpl.wasserstein.energies.Entropy`), with the unnormalised kernel
  k(z) = exp(−|z|²/(2ε²)) and K̄(x) = (1/N) Σ_j k(x − x_j),
  ``out[k] = (1/N) Σ_j (−(x_k − x_j)/ε²) k(x_k − x_j) (1/K̄(x_k) + 1/K̄(x_j))``.

Determinism: the Numba kernels run ``prange`` over the *output* particle k only; each k sums its own row serially in
the order j = 0, 1, …, N−1, and no reduction crosses threads, so the result is bit-identical for any thread count.
No ``fastmath``. The NumPy reference computes the same terms with the same operation order on (N, N, d) broadcast
arrays (memory O(N²d): for tests and small N); the two agree to rounding (the exp implementations may differ in the
last bit) — the tests bound the difference.

These functions do **no** argument checking; they are called only through the checked energy methods.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(inline="always", cache=True)
def _squared_distance(X, k, j):
    """|x_k − x_j|², summed over the coordinates in order ℓ = 0 … d−1 (the order every kernel relies on)."""
    r2 = 0.0
    for ell in range(X.shape[1]):
        z = X[k, ell] - X[j, ell]
        r2 += z * z
    return r2


# --- Gaussian interaction ------------------------------------------------------------------------------------------

@njit(parallel=True, cache=True)
def _gaussian_interaction_gradient_numba(X, amplitude, width):
    n, d = X.shape
    inv_s2 = 1.0 / (width * width)
    out = np.empty((n, d))
    for k in prange(n):
        acc = np.zeros(d)
        for j in range(n):
            r2 = _squared_distance(X, k, j)
            w = -amplitude * inv_s2 * np.exp(-0.5 * r2 * inv_s2)
            for ell in range(d):
                acc[ell] += w * (X[k, ell] - X[j, ell])
        for ell in range(d):
            out[k, ell] = acc[ell] / n
    return out


@njit(parallel=True, cache=True)
def _gaussian_interaction_partial_numba(X, i, amplitude, width):
    n, d = X.shape
    inv_s2 = 1.0 / (width * width)
    out = np.empty(n)
    for k in prange(n):
        acc = 0.0
        for j in range(n):
            r2 = _squared_distance(X, k, j)
            w = -amplitude * inv_s2 * np.exp(-0.5 * r2 * inv_s2)
            acc += w * (X[k, i] - X[j, i])
        out[k] = acc / n
    return out


def gaussian_interaction_gradient_numpy(X, amplitude, width):
    """NumPy reference of the Gaussian interaction force (same terms, same order of operations)."""
    n = X.shape[0]
    Z = X[:, None, :] - X[None, :, :]
    r2 = np.sum(Z * Z, axis=2)
    inv_s2 = 1.0 / (width * width)
    w = -amplitude * inv_s2 * np.exp(-0.5 * r2 * inv_s2)
    return np.sum(w[:, :, None] * Z, axis=1) / n


def gaussian_interaction_gradient(X, amplitude, width, backend="numba"):
    """(N, d) Gaussian interaction force; ``backend`` "numba" (default) or "numpy" (reference)."""
    if backend == "numba":
        return _gaussian_interaction_gradient_numba(X, float(amplitude), float(width))
    return gaussian_interaction_gradient_numpy(X, amplitude, width)


def gaussian_interaction_partial(X, i, amplitude, width, backend="numba"):
    """(N,) coordinate-i component of the Gaussian interaction force (needs the full |x_k − x_j|: O(N²d))."""
    if backend == "numba":
        return _gaussian_interaction_partial_numba(X, int(i), float(amplitude), float(width))
    return gaussian_interaction_gradient_numpy(X, amplitude, width)[:, i].copy()


# --- blob entropy --------------------------------------------------------------------------------------------------

@njit(parallel=True, cache=True)
def _mean_kernel_numba(X, bandwidth):
    n, d = X.shape
    inv_e2 = 1.0 / (bandwidth * bandwidth)
    out = np.empty(n)
    for k in prange(n):
        acc = 0.0
        for j in range(n):
            r2 = _squared_distance(X, k, j)
            acc += np.exp(-0.5 * r2 * inv_e2)
        out[k] = acc / n
    return out


@njit(parallel=True, cache=True)
def _blob_score_numba(X, bandwidth, kbar):
    n, d = X.shape
    inv_e2 = 1.0 / (bandwidth * bandwidth)
    out = np.empty((n, d))
    for k in prange(n):
        acc = np.zeros(d)
        for j in range(n):
            r2 = _squared_distance(X, k, j)
            w = -inv_e2 * np.exp(-0.5 * r2 * inv_e2) * (1.0 / kbar[k] + 1.0 / kbar[j])
            for ell in range(d):
                acc[ell] += w * (X[k, ell] - X[j, ell])
        for ell in range(d):
            out[k, ell] = acc[ell] / n
    return out


@njit(parallel=True, cache=True)
def _blob_score_partial_numba(X, i, bandwidth, kbar):
    n, d = X.shape
    inv_e2 = 1.0 / (bandwidth * bandwidth)
    out = np.empty(n)
    for k in prange(n):
        acc = 0.0
        for j in range(n):
            r2 = _squared_distance(X, k, j)
            w = -inv_e2 * np.exp(-0.5 * r2 * inv_e2) * (1.0 / kbar[k] + 1.0 / kbar[j])
            acc += w * (X[k, i] - X[j, i])
        out[k] = acc / n
    return out


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


def mean_kernel(X, bandwidth, backend="numba"):
    """(N,) K̄ at the particles; ``backend`` "numba" (default) or "numpy" (reference)."""
    if backend == "numba":
        return _mean_kernel_numba(X, float(bandwidth))
    return mean_kernel_numpy(X, bandwidth)


def blob_score(X, bandwidth, backend="numba"):
    """(N, d) blob-entropy score; ``backend`` "numba" (default) or "numpy" (reference)."""
    if backend == "numba":
        return _blob_score_numba(X, float(bandwidth), _mean_kernel_numba(X, float(bandwidth)))
    return blob_score_numpy(X, bandwidth)


def blob_score_partial(X, i, bandwidth, backend="numba"):
    """(N,) coordinate-i component of the blob-entropy score (O(N²d): K̄ needs full distances)."""
    if backend == "numba":
        return _blob_score_partial_numba(X, int(i), float(bandwidth), _mean_kernel_numba(X, float(bandwidth)))
    return blob_score_numpy(X, bandwidth)[:, i].copy()


BACKENDS = ("numba", "numpy")
