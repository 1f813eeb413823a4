r"""Numba kernels for the RWCD / RWCP particle sweep: a block of coordinate steps at O(Nd) resp. O(N²) per step.

Both kernels run the coordinate steps t = 0 … T−1 (coordinate i = coords[t], step η = etas[i]) in place on the
particle array X (N, d), for F = quadratic part + (optional) Gaussian interaction, followed (RWCP) by the coordinate
prox of a weighted L1 term:

* quadratic part: ∂ᵢu(x_k) = (A x_k)ᵢ − rᵢ + (B(x_k − m))ᵢ, m the empirical mean (kept up to date: only mᵢ changes
  in a step, O(N)) — O(d) per particle, O(Nd) per step against O(Nd²) for a full gradient (1/d);
* Gaussian interaction W(z) = a exp(−|z|²/(2s²)): ∂ᵢu(x_k) = (1/N) Σ_j −(a/s²) e^{−D_kj/(2s²)} (x_kᵢ − x_jᵢ) with the
  **cached** squared distances D_kj = |x_k − x_j|², updated after the step by D_kj += (x'_kᵢ − x'_jᵢ)² − (x_kᵢ − x_jᵢ)²:
  O(N²) per step against O(N²d) for a full gradient (notes/rwcd-derivations.md §3, "Cost"). Only the flops scale
  by 1/d: every coordinate step still evaluates all N² kernel values e^{−D/(2s²)} (D changed), as a full gradient
  does, so the wall-time saving is well below d (measured in validation/paper_b.py);
* then x_kᵢ ← x_kᵢ − η ∂ᵢu(x_k) for every k (all partials use the state before the step), and with the L1 term
  x_kᵢ ← cᵢ + sign(x_kᵢ − cᵢ) max(|x_kᵢ − cᵢ| − ηλᵢ, 0).

Determinism: the sweeps are serial (a sweep is a sequence of short O(N)/O(N²) steps, where thread start-up per step
costs more than it saves on a shared machine); ``squared_distances`` runs ``prange`` over the output row only. Every
sum runs in a fixed order, no ``fastmath``: bit-identical results for any thread count. The cached D drifts from a fresh
computation only by rounding (≈ √T·ε·max D after T steps). No argument checks here: these are called only through
the checked drivers of :mod:`refimpl.wasserstein.rwcd_particles`.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.wasserstein.kernels import _squared_distance


@njit(inline="always", cache=True)
def _add_quadratic_partial(g, A, r, B, X, mean, i, k):
    """g + ∂ᵢu(x_k) of the quadratic part, (A x_k)ᵢ − rᵢ + (B(x_k − m))ᵢ, added term by term in a fixed order
    (−rᵢ first, then j = 0 … d−1); with g = 0 the first addition is exact, so both sweeps round identically."""
    g += -r[i]
    for j in range(X.shape[1]):
        g += A[i, j] * X[k, j] + B[i, j] * (X[k, j] - mean[j])
    return g


@njit(inline="always", cache=True)
def _soft_threshold(v, center, thr):
    """The prox of thr·|· − center|: center + sign(v − center)·max(|v − center| − thr, 0)."""
    z = v - center
    if z > thr:
        return center + (z - thr)
    if z < -thr:
        return center + (z + thr)
    return center


@njit(cache=True)
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


@njit(parallel=True, cache=True)
def squared_distances(X):
    n, d = X.shape
    D = np.empty((n, n))
    for k in prange(n):
        for j in range(n):
            D[k, j] = _squared_distance(X, k, j)
    return D


@njit(cache=True)
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
                acc += -amplitude * inv_s2 * np.exp(-0.5 * D[k, j] * inv_s2) * (X[k, i] - X[j, i])
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
