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
  1/d: every coordinate step still evaluates all N² kernel values (D changed), as a full gradient does, so per
  gradient equivalent a coordinate method evaluates d times as many exponentials (counted in
  validation/wasserstein_coordinate_descent.py; docs/theory/coordinate-descent.md §6);
* then x_kᵢ ← x_kᵢ − η ∂ᵢu(x_k) for every k (all partials use the state before the step), and with the L1 term
  x_kᵢ ← cᵢ + sign(x_kᵢ − cᵢ) max(|x_kᵢ − cᵢ| − ηλᵢ, 0).

Pairwise kernels, layout and exp: output particles are processed in blocks of :data:`ROWS_PER_BLOCK` rows, one SIMD
lane per row (section "row blocks" below; docs/theory/wasserstein-gradients.md §9). Two paths, chosen by ``exp``:

* ``exp="polynomial"`` (default): the kernel value is
  :func:`refimpl.numerics.polynomial_exp.polynomial_exp` (straight-line code LLVM vectorises, ≤ 2 ulp) of the
  exponent r²·(−0.5·(1/s²)) (one multiply; halving 1/s² is exact), the squared distances and the accumulations are fused
  multiply-adds (r² = fma(z, z, r²), acc = fma(w, z, acc): one rounding instead of two, fewer operations), the
  accumulators take four j per pass, and the block loops are compiled for 512-bit vectors on AVX-512 CPUs
  (:func:`~refimpl.numerics.polynomial_exp.prefer_wide_vectors`; any width gives the same bits);
* ``exp="libm"``: the C library's scalar exp of (−0.5·r²)·(1/s²), products and sums rounded separately — what
  ``np.exp``/``math.exp`` compile to in Numba, bit-identical to the per-row kernels this module had before.

The two paths differ by the exp values and the roundings of r² and of the accumulation, within the bound derived and
tested in tests/test_wasserstein_kernel_exp.py.

Determinism: the pairwise kernels run ``prange`` over blocks of *output* particles only; each k sums its own row in
the order j = 0, 1, …, N−1 (two or four j per pass, added in that order), and no reduction crosses threads or lanes.
The sweeps are serial (a sweep is a sequence of short O(N)/O(N²) steps, where thread start-up per step costs more
than it saves on a shared machine); ``squared_distances`` runs ``prange`` over the output row only. Every sum runs
in a fixed order, no ``fastmath``: bit-identical results for any thread count and vector width. The cached D drifts
from a fresh computation only by rounding (≈ √T·ε·max D after T steps).

These functions do **no** argument checking; they are called only through the checked energy methods and drivers.
"""
from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.arguments import as_choice
from refimpl.numba_cache import njit_cached  # njit(cache=True), or in memory when no cache dir is writable
from refimpl.numerics.polynomial_exp import _fma, polynomial_exp, prefer_wide_vectors

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
# pairwise sums: row blocks, one SIMD lane per output particle
#
# A block of ROWS_PER_BLOCK output particles k0 … k0+m−1 is one prange iteration. For each j = 0 … N−1 in order, the
# block's helpers below run short loops over the rows q (the SIMD lanes, reading the block's rows transposed,
# Xb[ℓ, q] = x_{k0+q, ℓ}):
# squared distances, kernel values, accumulation. Row k performs exactly the operations of its path's scalar formula
# (the libm path: the helpers above; the polynomial path: the same with fused steps), in the same order, whatever
# block or lane it lands in — the blocking changes speed, not bits.
# =====================================================================================================================

#: output particles per block: the lanes of the vectorised loops (r2, w and the (d, 256) accumulators stay in L1/L2;
#: 64 and 1024 were slower at N = 4000, d ∈ {2, 10}; with 512-bit vectors 128 and 512 were within the noise of 256
#: at N = 10⁴)
ROWS_PER_BLOCK = 256


@njit_cached(inline="always")
def _block_rows(X, k0, m):
    """Xb (d, ROWS_PER_BLOCK) with Xb[ℓ, q] = x_{k0+q, ℓ} (q < m; the rest 0): a block's rows, transposed and
    contiguous, indexed from 0 — so every lane loop below is a unit-stride loop LLVM vectorises without gathers."""
    d = X.shape[1]
    Xb = np.zeros((d, ROWS_PER_BLOCK))
    for q in range(m):
        for ell in range(d):
            Xb[ell, q] = X[k0 + q, ell]
    return Xb


@njit_cached(inline="always")
def _block_squared_distances(Xb, X, j, m, r2, fused):
    """r2[q] = |x_{k0+q} − x_j|² for q < m (Xb: :func:`_block_rows`), summed over ℓ = 0 … d−1 in order (as
    :func:`_squared_distance`; its first step 0 + z₀² = z₀² is exact): r2 += z·z with the product rounded, or, when
    ``fused``, r2 = fma(z, z, r2) (one rounding per coordinate). The branch is taken outside the lane loops."""
    d = X.shape[1]
    for q in range(m):
        r2[q] = 0.0
    for ell in range(d):
        xj = X[j, ell]
        if fused:
            for q in range(m):
                z = Xb[ell, q] - xj
                r2[q] = _fma(z, z, r2[q])
        else:
            for q in range(m):
                z = Xb[ell, q] - xj
                r2[q] += z * z


@njit_cached(inline="always")
def _block_squared_distances_2(Xb, X, j, m, r2a, r2b, fused):
    """:func:`_block_squared_distances` for j and j + 1 at once, two coordinates per pass: each row's sum is still
    (((z₀² + z₁²) + z₂²) + …) in order — one load of Xb and of r2 serves two j and two ℓ."""
    d = X.shape[1]
    for q in range(m):
        r2a[q] = 0.0
        r2b[q] = 0.0
    ell = 0
    while ell + 1 < d:
        xa0, xa1 = X[j, ell], X[j, ell + 1]
        xb0, xb1 = X[j + 1, ell], X[j + 1, ell + 1]
        if fused:
            for q in range(m):
                x0 = Xb[ell, q]
                x1 = Xb[ell + 1, q]
                za0 = x0 - xa0
                za1 = x1 - xa1
                zb0 = x0 - xb0
                zb1 = x1 - xb1
                r2a[q] = _fma(za1, za1, _fma(za0, za0, r2a[q]))
                r2b[q] = _fma(zb1, zb1, _fma(zb0, zb0, r2b[q]))
        else:
            for q in range(m):
                x0 = Xb[ell, q]
                x1 = Xb[ell + 1, q]
                za0 = x0 - xa0
                za1 = x1 - xa1
                zb0 = x0 - xb0
                zb1 = x1 - xb1
                r2a[q] = (r2a[q] + za0 * za0) + za1 * za1
                r2b[q] = (r2b[q] + zb0 * zb0) + zb1 * zb1
        ell += 2
    if ell < d:
        xa0, xb0 = X[j, ell], X[j + 1, ell]
        if fused:
            for q in range(m):
                x0 = Xb[ell, q]
                za0 = x0 - xa0
                zb0 = x0 - xb0
                r2a[q] = _fma(za0, za0, r2a[q])
                r2b[q] = _fma(zb0, zb0, r2b[q])
        else:
            for q in range(m):
                x0 = Xb[ell, q]
                za0 = x0 - xa0
                zb0 = x0 - xb0
                r2a[q] += za0 * za0
                r2b[q] += zb0 * zb0


@njit_cached(inline="always")
def _block_kernel_values(r2, m, scale, inv_s2, use_libm, w):
    """w[q] = scale·k(r2[q]): with ``use_libm`` the C library's exp of (−0.5·r2[q])·inv_s2 (a call per value, the
    loop stays scalar); else :func:`~refimpl.numerics.polynomial_exp.polynomial_exp` (inlined, the loop is
    vectorised) of r2[q]·(−0.5·inv_s2), one multiply (−0.5·inv_s2 is exact for a normal inv_s2). The branch is taken
    once per call, outside the loops."""
    if use_libm:
        for q in range(m):
            w[q] = scale * math.exp(-0.5 * r2[q] * inv_s2)
    else:
        c = -0.5 * inv_s2
        for q in range(m):
            w[q] = scale * polynomial_exp(r2[q] * c)


@njit_cached(inline="always")
def _block_accumulate(Xb, X, j, m, w, acc, ell0, ell1, fused):
    """acc[ℓ − ell0, q] += w[q]·(x_{k0+q,ℓ} − x_{j,ℓ}) for ℓ in [ell0, ell1): the product rounded and added, or,
    when ``fused``, acc = fma(w, x − x_j, acc)."""
    for ell in range(ell0, ell1):
        xj = X[j, ell]
        if fused:
            for q in range(m):
                acc[ell - ell0, q] = _fma(w[q], Xb[ell, q] - xj, acc[ell - ell0, q])
        else:
            for q in range(m):
                acc[ell - ell0, q] += w[q] * (Xb[ell, q] - xj)


@njit_cached(inline="always")
def _block_accumulate_2(Xb, X, j, m, wa, wb, acc, ell0, ell1, fused):
    """:func:`_block_accumulate` for j and j + 1 at once: acc ← (acc + wa·(x − x_j)) + wb·(x − x_{j+1}) (or the two
    fused steps), in the order of the j loop — one load and store of acc serves two j."""
    for ell in range(ell0, ell1):
        xa = X[j, ell]
        xb = X[j + 1, ell]
        if fused:
            for q in range(m):
                x = Xb[ell, q]
                acc[ell - ell0, q] = _fma(wb[q], x - xb, _fma(wa[q], x - xa, acc[ell - ell0, q]))
        else:
            for q in range(m):
                x = Xb[ell, q]
                acc[ell - ell0, q] = (acc[ell - ell0, q] + wa[q] * (x - xa)) + wb[q] * (x - xb)


@njit_cached(inline="always")
def _block_accumulate_4(Xb, X, j, m, wa, wb, wc, wd, acc, ell0, ell1):
    """The polynomial path's accumulation for j … j + 3 at once: four fused steps in the order of the j loop — one
    load and store of acc serves four j."""
    for ell in range(ell0, ell1):
        xa = X[j, ell]
        xb = X[j + 1, ell]
        xc = X[j + 2, ell]
        xd = X[j + 3, ell]
        for q in range(m):
            x = Xb[ell, q]
            acc[ell - ell0, q] = _fma(wd[q], x - xd, _fma(wc[q], x - xc, _fma(wb[q], x - xb,
                                                                             _fma(wa[q], x - xa, acc[ell - ell0, q]))))


@njit_cached(parallel=True)
def _pair_force_numba(X, ell0, ell1, scale, inv_s2, kbar, use_kbar, use_libm):
    """out[k, ℓ − ell0] = (1/N) Σ_j w_kj (x_kℓ − x_jℓ), ℓ ∈ [ell0, ell1), with w_kj = ``scale``·k(|x_k − x_j|²) and
    k(r²) = exp(−½ r²·``inv_s2``), times (1/K̄_k + 1/K̄_j) when ``use_kbar`` (K̄ = ``kbar``). With scale = −a/s²,
    inv_s2 = 1/s² and no K̄ it is the Gaussian interaction force; with scale = −1/ε², inv_s2 = 1/ε² and K̄ the mean
    kernel it is the blob-entropy score (module docstring). One skeleton for both: the K̄ factor is the only
    difference, applied to the kernel values before they are accumulated."""
    n, d = X.shape
    fused = not use_libm  # the polynomial path fuses products into sums (module docstring)
    inv_kbar = np.empty(n if use_kbar else 0)
    for k in range(inv_kbar.shape[0]):
        inv_kbar[k] = 1.0 / kbar[k]
    out = np.empty((n, ell1 - ell0))
    for b in prange((n + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK):
        prefer_wide_vectors()  # 512-bit lanes on AVX-512 (the prange body is a function of its own)
        k0 = b * ROWS_PER_BLOCK
        m = min(ROWS_PER_BLOCK, n - k0)
        Xb = _block_rows(X, k0, m)
        r2a = np.empty(ROWS_PER_BLOCK)
        r2b = np.empty(ROWS_PER_BLOCK)
        wa = np.empty(ROWS_PER_BLOCK)
        wb = np.empty(ROWS_PER_BLOCK)
        wc = np.empty(ROWS_PER_BLOCK)
        wd = np.empty(ROWS_PER_BLOCK)
        acc = np.zeros((ell1 - ell0, ROWS_PER_BLOCK))
        ikb = np.zeros(ROWS_PER_BLOCK)
        if use_kbar:
            for q in range(m):
                ikb[q] = inv_kbar[k0 + q]
        j = 0
        if fused:
            while j + 3 < n:
                _block_squared_distances_2(Xb, X, j, m, r2a, r2b, fused)
                _block_kernel_values(r2a, m, scale, inv_s2, use_libm, wa)
                _block_kernel_values(r2b, m, scale, inv_s2, use_libm, wb)
                _block_squared_distances_2(Xb, X, j + 2, m, r2a, r2b, fused)
                _block_kernel_values(r2a, m, scale, inv_s2, use_libm, wc)
                _block_kernel_values(r2b, m, scale, inv_s2, use_libm, wd)
                if use_kbar:
                    ia, ib, ic, id_ = inv_kbar[j], inv_kbar[j + 1], inv_kbar[j + 2], inv_kbar[j + 3]
                    for q in range(m):
                        wa[q] = wa[q] * (ikb[q] + ia)
                        wb[q] = wb[q] * (ikb[q] + ib)
                        wc[q] = wc[q] * (ikb[q] + ic)
                        wd[q] = wd[q] * (ikb[q] + id_)
                _block_accumulate_4(Xb, X, j, m, wa, wb, wc, wd, acc, ell0, ell1)
                j += 4
        while j + 1 < n:
            _block_squared_distances_2(Xb, X, j, m, r2a, r2b, fused)
            _block_kernel_values(r2a, m, scale, inv_s2, use_libm, wa)
            _block_kernel_values(r2b, m, scale, inv_s2, use_libm, wb)
            if use_kbar:
                ia, ib = inv_kbar[j], inv_kbar[j + 1]
                for q in range(m):
                    wa[q] = wa[q] * (ikb[q] + ia)
                    wb[q] = wb[q] * (ikb[q] + ib)
            _block_accumulate_2(Xb, X, j, m, wa, wb, acc, ell0, ell1, fused)
            j += 2
        if j < n:
            _block_squared_distances(Xb, X, j, m, r2a, fused)
            _block_kernel_values(r2a, m, scale, inv_s2, use_libm, wa)
            if use_kbar:
                ia = inv_kbar[j]
                for q in range(m):
                    wa[q] = wa[q] * (ikb[q] + ia)
            _block_accumulate(Xb, X, j, m, wa, acc, ell0, ell1, fused)
        for q in range(m):
            for ell in range(ell1 - ell0):
                out[k0 + q, ell] = acc[ell, q] / n
    return out


_NO_KBAR = np.empty(0)


def _gaussian_interaction_numba(X, ell0, ell1, amplitude, width, use_libm):
    """out[k, ℓ − ell0] = (1/N) Σ_j w(|x_k − x_j|²)(x_kℓ − x_jℓ), ℓ ∈ [ell0, ell1): the force (all ℓ) or a partial;
    w(r²) = ((−a)·(1/s²))·k(r²), as :func:`_gaussian_force_weight`."""
    inv_s2 = 1.0 / (width * width)
    return _pair_force_numba(X, ell0, ell1, -amplitude * inv_s2, inv_s2, _NO_KBAR, False, use_libm)


@njit_cached(parallel=True)
def _mean_kernel_numba(X, bandwidth, use_libm):
    n, d = X.shape
    fused = not use_libm  # the polynomial path fuses products into sums (module docstring)
    inv_e2 = 1.0 / (bandwidth * bandwidth)
    out = np.empty(n)
    for b in prange((n + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK):
        prefer_wide_vectors()  # 512-bit lanes on AVX-512 (the prange body is a function of its own)
        k0 = b * ROWS_PER_BLOCK
        m = min(ROWS_PER_BLOCK, n - k0)
        Xb = _block_rows(X, k0, m)
        r2a = np.empty(ROWS_PER_BLOCK)
        r2b = np.empty(ROWS_PER_BLOCK)
        ka = np.empty(ROWS_PER_BLOCK)
        kb = np.empty(ROWS_PER_BLOCK)
        acc = np.zeros(ROWS_PER_BLOCK)
        j = 0
        while j + 1 < n:
            _block_squared_distances_2(Xb, X, j, m, r2a, r2b, fused)
            _block_kernel_values(r2a, m, 1.0, inv_e2, use_libm, ka)  # 1.0·k is k exactly
            _block_kernel_values(r2b, m, 1.0, inv_e2, use_libm, kb)
            for q in range(m):
                acc[q] = (acc[q] + ka[q]) + kb[q]
            j += 2
        if j < n:
            _block_squared_distances(Xb, X, j, m, r2a, fused)
            _block_kernel_values(r2a, m, 1.0, inv_e2, use_libm, ka)
            for q in range(m):
                acc[q] += ka[q]
        for q in range(m):
            out[k0 + q] = acc[q] / n
    return out


def _blob_score_numba(X, ell0, ell1, bandwidth, kbar, use_libm):
    """out[k, ℓ − ell0] = (1/N) Σ_j w(|x_k − x_j|²)(1/K̄_k + 1/K̄_j)(x_kℓ − x_jℓ) with a = 1, s = ε:
    w(r²) = ((−1)·(1/ε²))·k(r²), as :func:`_gaussian_force_weight` with a = 1."""
    inv_e2 = 1.0 / (bandwidth * bandwidth)
    return _pair_force_numba(X, ell0, ell1, -1.0 * inv_e2, inv_e2, kbar, True, use_libm)


#: the exp implementations of the pair kernels: "polynomial" (default; vectorised, ≤ 2 ulp, see
#: refimpl.numerics.polynomial_exp) and "libm" (the C library's scalar exp, the kernels' earlier rounding)
EXP_IMPLEMENTATIONS = ("polynomial", "libm")


def _use_libm(exp) -> bool:
    return as_choice(exp, EXP_IMPLEMENTATIONS, "exp") == "libm"


def gaussian_interaction_gradient(X, amplitude, width, exp="polynomial"):
    """(N, d) Gaussian interaction force (1/N) Σ_j ∇W(x_k − x_j)."""
    return _gaussian_interaction_numba(X, 0, X.shape[1], float(amplitude), float(width), _use_libm(exp))


def gaussian_interaction_partial(X, i, amplitude, width, exp="polynomial"):
    """(N,) coordinate-i component of the Gaussian interaction force (needs the full |x_k − x_j|: O(N²d))."""
    i = int(i)
    return _gaussian_interaction_numba(X, i, i + 1, float(amplitude), float(width), _use_libm(exp))[:, 0].copy()


def mean_kernel(X, bandwidth, exp="polynomial"):
    """(N,) K̄(x_k) = (1/N) Σ_j exp(−|x_k − x_j|²/(2ε²))."""
    return _mean_kernel_numba(X, float(bandwidth), _use_libm(exp))


def blob_score(X, bandwidth, exp="polynomial"):
    """(N, d) blob-entropy score."""
    libm = _use_libm(exp)
    kbar = _mean_kernel_numba(X, float(bandwidth), libm)
    return _blob_score_numba(X, 0, X.shape[1], float(bandwidth), kbar, libm)


def blob_score_partial(X, i, bandwidth, exp="polynomial"):
    """(N,) coordinate-i component of the blob-entropy score (O(N²d): K̄ needs full distances)."""
    i = int(i)
    libm = _use_libm(exp)
    kbar = _mean_kernel_numba(X, float(bandwidth), libm)
    return _blob_score_numba(X, i, i + 1, float(bandwidth), kbar, libm)[:, 0].copy()


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
