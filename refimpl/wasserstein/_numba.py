r"""Every Numba kernel of :mod:`refimpl.wasserstein`: the O(N²d) pairwise sums and the RWCD / RWCP coordinate sweeps.

The NumPy reference of each pairwise sum, and the backend dispatch between the two, are in
:mod:`refimpl.wasserstein.pairwise_sums`; the sweeps' reference path is the per-step loop of
:mod:`refimpl.wasserstein.rwcd_particles` (``backend="numpy"``). Formulas are written once, as inlined helpers:

* :func:`_squared_distance` |x_k − x_j|², summed over ℓ = 0 … d−1;
* :func:`_gaussian_kernel` k(r²) = exp(−r²/(2s²)) (written with 1/s² = ``inv_s2``: exp(−0.5·r²·inv_s2));
* :func:`_gaussian_force_weight` w(r²) = −(a/s²) k(r²), so that ∇W(z) = w(|z|²) z for the Gaussian interaction
  W(z) = a exp(−|z|²/(2s²)), and a = 1, s = ε gives the blob-entropy kernel derivative ∇k(z) = w z;
* :func:`_add_quadratic_partial` and :func:`_soft_threshold` of the sweeps.

**Pairwise sums** (docs/theory/wasserstein-gradients.md):

* the Gaussian interaction force ``out[k] = (1/N) Σ_j w(|x_k − x_j|²) (x_k − x_j)``;
* the mean kernel K̄(x_k) = (1/N) Σ_j k(|x_k − x_j|²) and the blob-entropy score
  ``out[k] = (1/N) Σ_j w(|x_k − x_j|²) (1/K̄(x_k) + 1/K̄(x_j)) (x_k − x_j)`` with a = 1, s = ε
  (see :class:`refimpl.wasserstein.energies.Entropy`).

**Coordinate sweeps** (docs/theory/coordinate-descent.md; paper [B] arXiv 2604.01606): run the coordinate steps
t = 0 … T−1 (coordinate i = coords[t], step η = etas[i]) in place on the particle array X (N, d), for F = quadratic part
+ (optional) Gaussian interaction, followed (RWCP) by the coordinate prox of a weighted L1 term:

* quadratic part: ∂ᵢu(x_k) = (A x_k)ᵢ − rᵢ + (B(x_k − m))ᵢ, m the empirical mean (kept up to date: only mᵢ changes
  in a step, O(N)) — O(d) per particle, O(Nd) per step against O(Nd²) for a full gradient (1/d);
* Gaussian interaction: ∂ᵢu(x_k) = (1/N) Σ_j w(D_kj)(x_kᵢ − x_jᵢ) with the **cached** squared distances
  D_kj = |x_k − x_j|², updated after the step by D_kj += (x'_kᵢ − x'_jᵢ)² − (x_kᵢ − x_jᵢ)²: O(N²) per step against
  O(N²d) for a full gradient (docs/theory/coordinate-descent.md, cost of a coordinate step). Only the flops scale by
  1/d: every coordinate step still evaluates all N² kernel values (D changed), as a full gradient does, so the
  wall-time saving is well below d (measured in validation/wasserstein_coordinate_descent.py);
* then x_kᵢ ← x_kᵢ − η ∂ᵢu(x_k) for every k (all partials use the state before the step), and with the L1 term
  x_kᵢ ← cᵢ + sign(x_kᵢ − cᵢ) max(|x_kᵢ − cᵢ| − ηλᵢ, 0).

Determinism: the pairwise kernels run ``prange`` over the *output* particle k only; each k sums its own row serially in
the order j = 0, 1, …, N−1, and no reduction crosses threads. The sweeps are serial (a sweep is a sequence of short
O(N)/O(N²) steps, where thread start-up per step costs more than it saves on a shared machine); ``squared_distances``
runs ``prange`` over the output row only. Every sum runs in a fixed order, no ``fastmath``: bit-identical results for
any thread count. The cached D drifts from a fresh computation only by rounding (≈ √T·ε·max D after T steps).

These functions do **no** argument checking; they are called only through the checked energy methods and drivers.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.numba_cache import njit_cached  # njit(cache=True), or in memory when no cache dir is writable

# =====================================================================================================================
# formulas, each written once (inlined into every kernel that uses it)
# =====================================================================================================================


@njit_cached(inline="always")
def _squared_distance(X, k, j):
    """|x_k − x_j|², summed over the coordinates in order ℓ = 0 … d−1 (the order every kernel relies on)."""
    r2 = 0.0
    for ell in range(X.shape[1]):
        z = X[k, ell] - X[j, ell]
        r2 += z * z
    return r2


@njit_cached(inline="always")
def _gaussian_kernel(r2, inv_s2):
    """k(r²) = exp(−r²/(2s²)), written exp(−0.5·r²·inv_s2) with inv_s2 = 1/s²."""
    return np.exp(-0.5 * r2 * inv_s2)


@njit_cached(inline="always")
def _gaussian_force_weight(r2, amplitude, inv_s2):
    """w(r²) = −(a/s²) exp(−r²/(2s²)), evaluated ((−a)·inv_s2)·k(r²): ∇[a exp(−|z|²/(2s²))] = w(|z|²) z."""
    return -amplitude * inv_s2 * _gaussian_kernel(r2, inv_s2)


@njit_cached(inline="always")
def _add_quadratic_partial(g, A, r, B, X, mean, i, k):
    """g + ∂ᵢu(x_k) of the quadratic part, (A x_k)ᵢ − rᵢ + (B(x_k − m))ᵢ, added term by term in a fixed order
    (−rᵢ first, then j = 0 … d−1); with g = 0 the first addition is exact, so both sweeps round identically."""
    g += -r[i]
    for j in range(X.shape[1]):
        g += A[i, j] * X[k, j] + B[i, j] * (X[k, j] - mean[j])
    return g


@njit_cached(inline="always")
def _soft_threshold(v, center, thr):
    """The prox of thr·|· − center|: center + sign(v − center)·max(|v − center| − thr, 0)."""
    z = v - center
    if z > thr:
        return center + (z - thr)
    if z < -thr:
        return center + (z + thr)
    return center


# =====================================================================================================================
# pairwise sums: Gaussian interaction
# =====================================================================================================================

@njit_cached(parallel=True)
def _gaussian_interaction_gradient_numba(X, amplitude, width):
    n, d = X.shape
    inv_s2 = 1.0 / (width * width)
    out = np.empty((n, d))
    for k in prange(n):
        acc = np.zeros(d)
        for j in range(n):
            w = _gaussian_force_weight(_squared_distance(X, k, j), amplitude, inv_s2)
            for ell in range(d):
                acc[ell] += w * (X[k, ell] - X[j, ell])
        for ell in range(d):
            out[k, ell] = acc[ell] / n
    return out


@njit_cached(parallel=True)
def _gaussian_interaction_partial_numba(X, i, amplitude, width):
    n, d = X.shape
    inv_s2 = 1.0 / (width * width)
    out = np.empty(n)
    for k in prange(n):
        acc = 0.0
        for j in range(n):
            w = _gaussian_force_weight(_squared_distance(X, k, j), amplitude, inv_s2)
            acc += w * (X[k, i] - X[j, i])
        out[k] = acc / n
    return out


# =====================================================================================================================
# pairwise sums: blob entropy (a = 1, s = ε)
# =====================================================================================================================

@njit_cached(parallel=True)
def _mean_kernel_numba(X, bandwidth):
    n, d = X.shape
    inv_e2 = 1.0 / (bandwidth * bandwidth)
    out = np.empty(n)
    for k in prange(n):
        acc = 0.0
        for j in range(n):
            acc += _gaussian_kernel(_squared_distance(X, k, j), inv_e2)
        out[k] = acc / n
    return out


@njit_cached(parallel=True)
def _blob_score_numba(X, bandwidth, kbar):
    n, d = X.shape
    inv_e2 = 1.0 / (bandwidth * bandwidth)
    out = np.empty((n, d))
    for k in prange(n):
        acc = np.zeros(d)
        for j in range(n):
            w = _gaussian_force_weight(_squared_distance(X, k, j), 1.0, inv_e2) * (1.0 / kbar[k] + 1.0 / kbar[j])
            for ell in range(d):
                acc[ell] += w * (X[k, ell] - X[j, ell])
        for ell in range(d):
            out[k, ell] = acc[ell] / n
    return out


@njit_cached(parallel=True)
def _blob_score_partial_numba(X, i, bandwidth, kbar):
    n, d = X.shape
    inv_e2 = 1.0 / (bandwidth * bandwidth)
    out = np.empty(n)
    for k in prange(n):
        acc = 0.0
        for j in range(n):
            w = _gaussian_force_weight(_squared_distance(X, k, j), 1.0, inv_e2) * (1.0 / kbar[k] + 1.0 / kbar[j])
            acc += w * (X[k, i] - X[j, i])
        out[k] = acc / n
    return out


def gaussian_interaction_gradient(X, amplitude, width):
    """(N, d) Gaussian interaction force (1/N) Σ_j ∇W(x_k − x_j)."""
    return _gaussian_interaction_gradient_numba(X, float(amplitude), float(width))


def gaussian_interaction_partial(X, i, amplitude, width):
    """(N,) coordinate-i component of the Gaussian interaction force (needs the full |x_k − x_j|: O(N²d))."""
    return _gaussian_interaction_partial_numba(X, int(i), float(amplitude), float(width))


def mean_kernel(X, bandwidth):
    """(N,) K̄(x_k) = (1/N) Σ_j exp(−|x_k − x_j|²/(2ε²))."""
    return _mean_kernel_numba(X, float(bandwidth))


def blob_score(X, bandwidth):
    """(N, d) blob-entropy score."""
    return _blob_score_numba(X, float(bandwidth), _mean_kernel_numba(X, float(bandwidth)))


def blob_score_partial(X, i, bandwidth):
    """(N,) coordinate-i component of the blob-entropy score (O(N²d): K̄ needs full distances)."""
    return _blob_score_partial_numba(X, int(i), float(bandwidth), _mean_kernel_numba(X, float(bandwidth)))


# =====================================================================================================================
# RWCD / RWCP coordinate sweeps
# =====================================================================================================================

@njit_cached()
def quadratic_sweep(X, A, r, B, mean, coords, etas, l1_weights, l1_center, use_l1):
    n, d = X.shape
    new = np.empty(n)
    for t in range(coords.shape[0]):
        i = coords[t]
        eta = etas[i]
        for k in range(n):
            g = _add_quadratic_partial(0.0, A, r, B, X, mean, i, k)
            v = X[k, i] - eta * g
            if use_l1:
                v = _soft_threshold(v, l1_center[i], eta * l1_weights[i])
            new[k] = v
        s = 0.0
        for k in range(n):
            X[k, i] = new[k]
            s += new[k]
        mean[i] = s / n


@njit_cached(parallel=True)
def squared_distances(X):
    n, d = X.shape
    D = np.empty((n, n))
    for k in prange(n):
        for j in range(n):
            D[k, j] = _squared_distance(X, k, j)
    return D


@njit_cached()
def pairwise_sweep(X, D, A, r, B, mean, has_quadratic, amplitude, width, coords, etas, l1_weights, l1_center,
                   use_l1):
    n, d = X.shape
    inv_s2 = 1.0 / (width * width)
    new = np.empty(n)
    for t in range(coords.shape[0]):
        i = coords[t]
        eta = etas[i]
        for k in range(n):
            acc = 0.0
            for j in range(n):
                acc += _gaussian_force_weight(D[k, j], amplitude, inv_s2) * (X[k, i] - X[j, i])
            g = acc / n
            if has_quadratic:
                g = _add_quadratic_partial(g, A, r, B, X, mean, i, k)
            v = X[k, i] - eta * g
            if use_l1:
                v = _soft_threshold(v, l1_center[i], eta * l1_weights[i])
            new[k] = v
        for k in range(n):
            for j in range(n):
                a = new[k] - new[j]
                b = X[k, i] - X[j, i]
                D[k, j] += a * a - b * b
        s = 0.0
        for k in range(n):
            X[k, i] = new[k]
            s += new[k]
        mean[i] = s / n
