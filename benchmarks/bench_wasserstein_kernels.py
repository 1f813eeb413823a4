"""Speed of the O(N²d) Wasserstein kernels: Numba (parallel over output particles) vs the NumPy reference.

Run: ``python benchmarks/bench_wasserstein_kernels.py [--quick]``. Prints, per kernel and N (d = 2), the best-of-r
wall time of the NumPy reference, of Numba with 1 thread and with all threads, the speed-ups, and the max relative
difference Numba vs NumPy (relative to max|out|) — the kernels are deterministic (bit-identical for any thread count,
checked here too) but not bit-identical to NumPy (different exp/summation rounding).
"""
import sys
import time

import numba
import numpy as np

from refimpl.wasserstein import pairwise_sums


def best_time(f, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def main(quick=False):
    sizes = [250, 500, 1000] if quick else [250, 500, 1000, 2000, 4000]
    d, repeat = 2, 3
    threads = numba.get_num_threads()
    cases = {
        "gaussian_interaction_gradient": lambda X, b: pairwise_sums.gaussian_interaction_gradient(X, 0.7, 1.1, b),
        "blob_score (entropy)": lambda X, b: pairwise_sums.blob_score(X, 0.3, b),
    }
    rows = []
    for name, fn in cases.items():
        for n in sizes:
            X = np.random.default_rng(n).standard_normal((n, d))
            fn(X, "numba")  # compile / load cache
            t_np = best_time(lambda: fn(X, "numpy"), repeat) if n <= 2000 else float("nan")
            numba.set_num_threads(1)
            t1 = best_time(lambda: fn(X, "numba"), repeat)
            out1 = fn(X, "numba")
            numba.set_num_threads(threads)
            tp = best_time(lambda: fn(X, "numba"), repeat)
            outp = fn(X, "numba")
            ref = fn(X, "numpy") if n <= 2000 else outp
            rel = float(np.max(np.abs(outp - ref)) / np.max(np.abs(ref)))
            rows.append((name, n, t_np, t1, tp, t_np / t1, t_np / tp, rel, bool(np.array_equal(out1, outp))))
    print(f"threads available to numba: {threads}")
    print(f"{'kernel':32s} {'N':>5s} {'numpy s':>9s} {'numba1 s':>9s} {'numba s':>9s} {'x(1 thr)':>8s} "
          f"{'x(all)':>7s} {'rel diff':>9s} {'thread-det':>10s}")
    for r in rows:
        print(f"{r[0]:32s} {r[1]:5d} {r[2]:9.4f} {r[3]:9.4f} {r[4]:9.4f} {r[5]:8.1f} {r[6]:7.1f} {r[7]:9.1e} "
              f"{str(r[8]):>10s}")
    return rows


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
