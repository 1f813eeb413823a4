r"""Benchmark 2: the two O(N²d) particle kernels of :mod:`refimpl.wasserstein.pairwise_sums`,

* Gaussian interaction force :math:`F_k = \frac1N\sum_j \nabla W(x_k - x_j)`, :math:`\nabla W(z) = -\frac{a}{s^2} z
  e^{-|z|^2/2s^2}` (:meth:`GaussianInteraction.wasserstein_gradient`);
* blob/KDE entropy score :math:`S_k = \frac1N\sum_j -\frac{x_k - x_j}{\varepsilon^2} k(x_k - x_j)
  (\bar K_k^{-1} + \bar K_j^{-1})`, :math:`\bar K_k = \frac1N\sum_j k(x_k - x_j)`,
  :math:`k(z) = e^{-|z|^2/2\varepsilon^2}` (:meth:`Entropy.wasserstein_gradient`),

by these routes:

``numba``          refimpl's public energy method (checked wrapper → ``@njit(parallel=True)`` kernel, prange over
                   blocks of output rows, the polynomial exp of :mod:`refimpl.numerics.polynomial_exp` in SIMD
                   lanes: the default ``exp="polynomial"``);
``numba libm exp`` the same kernels with ``exp="libm"``: the C library's scalar exp, one call per pair
                   (:func:`refimpl.wasserstein.pairwise_sums.gaussian_interaction_gradient` and friends);
``pykeops``        KeOps (``pykeops.numpy.LazyTensor``, CPU, float64): the same formula as a symbolic reduction that
                   KeOps compiles with g++ (first call: compile; later: cached); optional, reported absent when not
                   installed;
``numpy blocked``  the formula of refimpl's NumPy reference (broadcast (B, N, d) differences, same order of operations)
                   applied to row blocks of B particles so that memory stays O(BNd) (the unblocked reference needs
                   O(N²d) memory: 72 GB at N = 3e4, d = 10); at N = 1e3 it is also checked against the unblocked
                   reference :func:`refimpl.wasserstein.pairwise_sums.gaussian_interaction_gradient_numpy`;
``torch mm``       PyTorch, cdist-style: :math:`|x_k - x_j|^2 = |x_k|^2 + |x_j|^2 - 2x_k\cdot x_j` by a matmul (what
                   ``torch.cdist`` does in its ``use_mm_for_euclid_dist`` mode), then
                   :math:`\sum_j w_{kj}(x_k - x_j) = x_k\sum_j w_{kj} - (wX)_k` by a second matmul; row blocks as above.

FLOP model (counted per ordered pair (k, j) from the formula, not from any implementation; exp counted as 1 flop):
interaction: z = x_k − x_j (d), |z|² (2d), w = c·exp(c′|z|²) (3), acc += w z (2d): **5d + 3**. KDE score: the
K̄ pass z, |z|², exp with its scale, acc (3d + 3) plus the score pass z, |z|² (3d), exp and scale (2),
(1/K̄_k + 1/K̄_j) and its product (4), acc (2d): **8d + 9**. Achieved GFLOP/s = flops·N²/time, compared with the
float64 matmul roof measured in the same run (:func:`benchmarks.machine.matmul_roof`). The matmul-based torch route
does a different (fewer-subtraction) computation; its "GFLOP/s" uses the same model so that all routes are rated by
the same work.

Agreement: each route vs numba, ``max|out − out_numba| / max|out_numba|``; tolerance 1e-10 (the routes differ only in
exp/summation rounding, and the torch route in the |x|² expansion, whose rounding error ≈ 1e-16·|x|²/s² ≈ 1e-14
here).
"""
from __future__ import annotations

import numpy as np

from refimpl.wasserstein import Entropy, GaussianInteraction
from refimpl.wasserstein import pairwise_sums

from benchmarks.timing import Timing, first_call, time_repeats

__all__ = ["KERNELS", "ROUTES", "CORE_ROUTES", "run_case", "flops_per_pair", "AGREEMENT_TOL"]

AGREEMENT_TOL = 1e-10
AMPLITUDE, WIDTH = 0.7, 1.1  # interaction W(z) = a exp(−|z|²/(2s²))
BLOCK_ELEMENTS = 4_000_000  # B·N·d doubles per block (32 MB) for the blocked routes


def flops_per_pair(kernel: str, d: int) -> int:
    """The FLOP model of the module docstring."""
    return {"interaction": 5 * d + 3, "kde_score": 8 * d + 9}[kernel]


def bandwidth(X) -> float:
    """The KDE bandwidth used: Silverman's rule (refimpl's :func:`silverman_bandwidth`) of the cloud."""
    from refimpl.wasserstein import silverman_bandwidth

    return silverman_bandwidth(X)


def _blocks(n: int, d: int):
    B = max(1, BLOCK_ELEMENTS // max(1, n * d))
    return [(lo, min(n, lo + B)) for lo in range(0, n, B)]


# --- numba: refimpl's public energy methods ---------------------------------------------------------------------------

def numba_route(kernel: str, X):
    if kernel == "interaction":
        energy = GaussianInteraction(AMPLITUDE, WIDTH, backend="numba")
    else:
        energy = Entropy(bandwidth(X), backend="numba")
    return lambda: energy.wasserstein_gradient(X)


def numba_libm_route(kernel: str, X):
    if kernel == "interaction":
        return lambda: pairwise_sums.gaussian_interaction_gradient(X, AMPLITUDE, WIDTH, "numba", "libm")
    eps = bandwidth(X)
    return lambda: pairwise_sums.blob_score(X, eps, "numba", "libm")


# --- pykeops: the formula as a KeOps lazy reduction ------------------------------------------------------------------

def pykeops_route(kernel: str, X):
    from pykeops.numpy import LazyTensor  # ImportError: reported absent

    n, d = X.shape
    x_i, x_j = LazyTensor(X[:, None, :]), LazyTensor(X[None, :, :])
    Z = x_i - x_j
    r2 = (Z ** 2).sum(-1)
    if kernel == "interaction":
        inv_s2 = 1.0 / (WIDTH * WIDTH)
        return lambda: (((-0.5 * inv_s2) * r2).exp() * Z).sum(axis=1) * (-AMPLITUDE * inv_s2 / n)
    eps = bandwidth(X)
    inv_e2 = 1.0 / (eps * eps)
    K = ((-0.5 * inv_e2) * r2).exp()

    def run():
        inv_kbar = n / K.sum(axis=1)  # (n, 1): 1/K̄
        w = K * (LazyTensor(inv_kbar[:, None, :]) + LazyTensor(inv_kbar[None, :, :]))
        return (w * Z).sum(axis=1) * (-inv_e2 / n)
    return run


# --- numpy: refimpl's reference formula in row blocks ----------------------------------------------------------------

def numpy_route(kernel: str, X):
    n, d = X.shape
    blocks = _blocks(n, d)
    if kernel == "interaction":
        inv_s2 = 1.0 / (WIDTH * WIDTH)

        def run():
            out = np.empty_like(X)
            for lo, hi in blocks:
                Z = X[lo:hi, None, :] - X[None, :, :]
                r2 = np.sum(Z * Z, axis=2)
                w = -AMPLITUDE * inv_s2 * np.exp(-0.5 * r2 * inv_s2)
                out[lo:hi] = np.sum(w[:, :, None] * Z, axis=1) / n
            return out
        return run

    eps = bandwidth(X)
    inv_e2 = 1.0 / (eps * eps)

    def run():
        kbar = np.empty(n)
        for lo, hi in blocks:
            Z = X[lo:hi, None, :] - X[None, :, :]
            kbar[lo:hi] = np.sum(np.exp(-0.5 * np.sum(Z * Z, axis=2) * inv_e2), axis=1) / n
        out = np.empty_like(X)
        for lo, hi in blocks:
            Z = X[lo:hi, None, :] - X[None, :, :]
            r2 = np.sum(Z * Z, axis=2)
            w = -inv_e2 * np.exp(-0.5 * r2 * inv_e2) * (1.0 / kbar[lo:hi, None] + 1.0 / kbar[None, :])
            out[lo:hi] = np.sum(w[:, :, None] * Z, axis=1) / n
        return out
    return run


# --- torch: cdist-style matmul expansion ------------------------------------------------------------------------------

def torch_route(kernel: str, X):
    import torch

    n, d = X.shape
    T = torch.from_numpy(X)
    sq = (T * T).sum(dim=1)
    blocks = [(lo, hi) for lo, hi in _blocks(n, 1)]  # the (B, N) matrices are the memory here, not (B, N, d)

    def r2_block(lo, hi):
        r2 = sq[lo:hi, None] + sq[None, :] - 2.0 * (T[lo:hi] @ T.T)
        return r2.clamp_min_(0.0)

    if kernel == "interaction":
        inv_s2 = 1.0 / (WIDTH * WIDTH)

        def run():
            out = torch.empty_like(T)
            for lo, hi in blocks:
                w = torch.exp(r2_block(lo, hi).mul_(-0.5 * inv_s2)).mul_(-AMPLITUDE * inv_s2)
                out[lo:hi] = (T[lo:hi] * w.sum(dim=1, keepdim=True) - w @ T) / n
            return out.numpy()
        return run

    eps = bandwidth(X)
    inv_e2 = 1.0 / (eps * eps)

    def run():
        kbar = torch.empty(n, dtype=T.dtype)
        for lo, hi in blocks:
            kbar[lo:hi] = torch.exp(r2_block(lo, hi).mul_(-0.5 * inv_e2)).sum(dim=1) / n
        inv_k = 1.0 / kbar
        out = torch.empty_like(T)
        for lo, hi in blocks:
            w = torch.exp(r2_block(lo, hi).mul_(-0.5 * inv_e2)).mul_(-inv_e2)
            w.mul_(inv_k[lo:hi, None] + inv_k[None, :])
            out[lo:hi] = (T[lo:hi] * w.sum(dim=1, keepdim=True) - w @ T) / n
        return out.numpy()
    return run


KERNELS = ("interaction", "kde_score")
ROUTES = {"numba": numba_route, "numba libm exp": numba_libm_route, "numpy blocked": numpy_route,
          "torch mm": torch_route, "pykeops": pykeops_route}
#: the routes of the full benchmark run (benchmarks/run.py); benchmarks/particle_roofs.py runs all of ROUTES
CORE_ROUTES = ("numba", "numpy blocked", "torch mm")
#: routes whose first call includes compilation / cache loading / first-touch set-up (NumPy has none)
NEEDS_WARMUP = {"numba": True, "numba libm exp": True, "numpy blocked": False, "torch mm": True, "pykeops": True}
REFERENCE_ROUTE = "numba"


def _unblocked_reference(kernel: str, X):
    if kernel == "interaction":
        return pairwise_sums.gaussian_interaction_gradient_numpy(X, AMPLITUDE, WIDTH)
    return pairwise_sums.blob_score_numpy(X, bandwidth(X))


def run_case(kernel: str, n: int, d: int, *, routes=None, min_total_s: float = 0.3, min_repeats: int = 3,
             single_call_above_s: float = 3.0, time_routes: bool = True) -> dict:
    """Check each route against numba (and, for N ≤ 2000, numba against refimpl's unblocked NumPy reference), then
    time it. A route whose first call takes longer than ``single_call_above_s`` is timed by one more call (numba,
    torch: the first call includes compile / cache load) or by that first call itself (numpy: nothing to warm up);
    ``repeats`` = 1 says so."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    X = np.random.default_rng(1000 * n + d).standard_normal((n, d))
    routes = list(ROUTES) if routes is None else list(routes)
    out = {"kernel": kernel, "N": n, "d": d, "flops": float(flops_per_pair(kernel, d)) * n * n, "routes": {}}
    reference = None
    for name in [REFERENCE_ROUTE] + [r for r in routes if r != REFERENCE_ROUTE]:
        try:
            fn = ROUTES[name](kernel, X)
        except ImportError as exc:
            out["routes"][name] = {"absent": f"{type(exc).__name__}: {exc}"}
            continue
        first_s, res = first_call(fn)
        res = np.asarray(res, dtype=np.float64)
        if reference is None:
            reference = res
            if n <= 2000:
                ref_np = _unblocked_reference(kernel, X)
                out["numba_vs_unblocked_numpy_reference"] = float(np.max(np.abs(res - ref_np)) /
                                                                   np.max(np.abs(ref_np)))
        rel = float(np.max(np.abs(res - reference)) / np.max(np.abs(reference)))
        entry = {"rel_err": rel, "agrees": bool(rel <= AGREEMENT_TOL)}
        if time_routes and entry["agrees"]:
            if first_s > single_call_above_s and not NEEDS_WARMUP[name]:
                timing = Timing(first_s, first_s, first_s, first_s, 1)
            elif first_s > single_call_above_s:
                timing = time_repeats(fn, first_s, min_repeats=1, max_repeats=1)
            else:
                timing = time_repeats(fn, first_s, min_repeats=min_repeats, min_total_s=min_total_s)
            entry["timing"] = timing.as_dict()
            entry["gflops"] = out["flops"] / timing.median_s / 1e9
        out["routes"][name] = entry
    return out
