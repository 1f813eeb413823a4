r"""The exp-aware roof of an N² pair kernel, with every rate measured in the same run.

A dgemm roof says how fast multiply-adds can go; a Gaussian pair kernel spends most of its time in ``exp``, which is
20–40 instructions of range reduction and polynomial, not one flop. The roof used here charges each ordered pair its
exps at a measured exp rate and its other arithmetic at the dgemm rate:

.. math::  t_\mathrm{roof}(N, d) = N^2 \Big(\frac{n_\mathrm{exp}}{R_\mathrm{exp}} + \frac{k(d)}{R_\mathrm{fma}}\Big)

(the two costs added, as if exp and the other arithmetic could not overlap — a roof, not a prediction).

* :math:`R_\mathrm{fma}`: float64 dgemm GFLOP/s, best repeat (:func:`benchmarks.machine.matmul_roof`), all cores.
* :math:`R_\mathrm{exp}`, exps per second on all the cores the kernels use (``numba.get_num_threads()``): a per-core
  rate measured on one thread over an in-cache array (2¹⁵ doubles, arguments uniform in [−30, 0] as in a Gaussian
  kernel), times that thread count (exp is core-local work: no shared resource but the core):

  - **scalar**: Numba's ``math.exp`` in a loop — the C library's scalar exp, what the ``exp="libm"`` kernels call;
    ``np.exp`` is measured too and reported (NumPy dispatches to its own SIMD exp on AVX-512 machines, to the C
    library's on AVX2 ones);
  - **vector**: the fastest of refimpl's :func:`~refimpl.numerics.polynomial_exp.polynomial_exp` loop (what the
    default kernels inline, compiled with the same 512-bit preference on AVX-512) and ``torch.exp`` on one thread
    (Sleef), when torch is installed.

* Per ordered pair (k, j), counted in the kernels of ``refimpl/wasserstein/_numba.py`` with the difference
  z = x_k − x_j counted once (the kernels form it twice, an implementation choice, not work the formula needs):

  - interaction: z (d), |z|² (2d), exponent r²·(−0.5/s²) (1), weight ((−a)/s²)·k (1), acc += w·z (2d):
    n_exp = 1, **k = 5d + 2**;
  - KDE score = K̄ pass + score pass: K̄ pass z, |z|², exponent, sum (3d + 2); score pass z, |z|², exponent,
    weight scale, 1/K̄_k + 1/K̄_j, their product, acc (5d + 4): n_exp = 2, **k = 8d + 6**.

  A fused multiply-add counts as two flops (as in dgemm's rate). The ``exp="libm"`` kernels form the exponent as
  (−0.5·r²)·(1/s²), one multiply more per exp; the roof counts the default kernels' work (the smaller k: the stricter
  roof).

A kernel's *fraction of a roof* is t_roof / t_measured (1 = at the roof).
"""
from __future__ import annotations

import math
import time

import numpy as np

__all__ = ["EXP_PER_PAIR", "other_flops_per_pair", "exp_rates", "roof_seconds", "fraction_of_roof"]

#: exps per ordered pair, per kernel
EXP_PER_PAIR = {"interaction": 1, "kde_score": 2}

ARRAY_LENGTH = 1 << 15  # 256 KB: L2-resident, so the rate is the exp's, not memory's


def other_flops_per_pair(kernel: str, d: int) -> int:
    """k(d): the non-exp flops per ordered pair (module docstring)."""
    if kernel not in EXP_PER_PAIR:
        raise ValueError(f"kernel must be one of {tuple(EXP_PER_PAIR)}, got {kernel!r}")
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be a positive int, got {d!r}")
    return {"interaction": 5 * d + 2, "kde_score": 8 * d + 6}[kernel]


def _best_rate(fn, n_elements: int, min_total_s: float) -> float:
    """Elements per second of the best repeat of ``fn()`` (after one warm-up call)."""
    fn()
    best = math.inf
    start = time.perf_counter()
    reps = 0
    while reps < 5 or time.perf_counter() - start < min_total_s:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return n_elements / best


def _numba_loops():
    import numba

    from refimpl.numerics.polynomial_exp import polynomial_exp, prefer_wide_vectors

    @numba.njit
    def libm_loop(x, out, reps):
        for _ in range(reps):
            for i in range(x.shape[0]):
                out[i] = math.exp(x[i])

    @numba.njit
    def polynomial_loop(x, out, reps):
        prefer_wide_vectors()  # as in the pair kernels: 512-bit vectors on AVX-512
        for _ in range(reps):
            for i in range(x.shape[0]):
                out[i] = polynomial_exp(x[i])
    return libm_loop, polynomial_loop


def exp_rates(*, min_total_s: float = 0.3, threads: int | None = None) -> dict:
    """Per-core exp rates (exps/s, one thread) and the all-core rates R_exp used by the roofs.

    Returns ``{"per_core": {...}, "threads": t, "scalar": R, "vector": R, "vector_source": name, "own": R}``
    (``own``: refimpl's polynomial exp, the exp the default kernels run — its roof separates the kernels' loop
    overhead from the speed of their exp); ``per_core``
    holds ``numba math.exp (libm)``, ``np.exp``, ``refimpl polynomial_exp`` and (if installed) ``torch.exp``."""
    import numba

    if threads is None:
        threads = numba.get_num_threads()
    x = np.random.default_rng(0).uniform(-30.0, 0.0, ARRAY_LENGTH)
    out = np.empty_like(x)
    reps = 32
    libm_loop, polynomial_loop = _numba_loops()
    per_core = {
        "numba math.exp (libm)": _best_rate(lambda: libm_loop(x, out, reps), reps * x.size, min_total_s),
        "refimpl polynomial_exp": _best_rate(lambda: polynomial_loop(x, out, reps), reps * x.size, min_total_s),
        "np.exp": _best_rate(lambda: np.exp(x, out=out), x.size, min_total_s),
    }
    try:
        import torch
    except ImportError:
        pass
    else:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            tx, tout = torch.from_numpy(x), torch.from_numpy(out)
            per_core["torch.exp"] = _best_rate(lambda: torch.exp(tx, out=tout), x.size, min_total_s)
        finally:
            torch.set_num_threads(before)
    vector_names = [k for k in ("refimpl polynomial_exp", "torch.exp") if k in per_core]
    vector_source = max(vector_names, key=per_core.get)
    return {"per_core": per_core, "threads": threads,
            "scalar": per_core["numba math.exp (libm)"] * threads,
            "vector": per_core[vector_source] * threads, "vector_source": vector_source,
            "own": per_core["refimpl polynomial_exp"] * threads}


def roof_seconds(kernel: str, n: int, d: int, r_exp: float, r_fma: float) -> float:
    """t_roof = N²·(n_exp/R_exp + k(d)/R_fma), rates in operations per second."""
    if r_exp <= 0 or r_fma <= 0:
        raise ValueError(f"rates must be positive, got r_exp={r_exp!r}, r_fma={r_fma!r}")
    return float(n) * n * (EXP_PER_PAIR[kernel] / r_exp + other_flops_per_pair(kernel, d) / r_fma)


def fraction_of_roof(seconds: float, kernel: str, n: int, d: int, r_exp: float, r_fma: float) -> float:
    """t_roof / t_measured."""
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    return roof_seconds(kernel, n, d, r_exp, r_fma) / seconds
