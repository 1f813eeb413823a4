"""What the benchmarks ran on: core count, CPU model, NumPy's BLAS, library versions, and a measured float64
matmul roof (the peak the particle kernels are compared with).

Roof: GFLOP/s of ``A @ B`` for square float64 matrices of size n (2n³ flops, OpenBLAS dgemm, all the threads NumPy's
BLAS uses, i.e. both cores), measured in the same run as the kernels. On a shared machine the median moves with the
other jobs' load (we saw 15–80 GFLOP/s); the roof is the *best* repeat (a peak is a capability, and a higher roof
makes the kernels' fraction of it smaller, not larger). For reference the nominal peak is
cores × clock × 16 (two 4-wide float64 FMA units per core on AVX2): 2 × 2.6 GHz × 16 ≈ 83 GFLOP/s here.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import time

import numpy as np

from benchmarks.timing import time_call

__all__ = ["describe_machine", "matmul_roof"]

PEERS = ("numpy", "scipy", "numba", "autograd", "torch", "jax", "jaxlib")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return " ".join(f for f in ("avx", "avx2", "fma", "avx512f") if f in flags)
    except OSError:
        pass
    return "unknown"


def _cpu_mhz() -> float | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("cpu MHz"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def _blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')} ({blas.get('openblas configuration', '')})".strip()
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:  # a missing peer is reported as absent
        return None


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def describe_machine() -> dict:
    """nproc, CPU model and SIMD flags, NumPy BLAS, Python and library versions, load average at start."""
    return {
        "nproc": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "cpu_mhz": _cpu_mhz(),
        "numpy_blas": _blas(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in PEERS},
        "loadavg_at_start": _load(),
    }


def matmul_roof(n: int = 2000, *, min_total_s: float = 1.0) -> dict:
    """Measured float64 matmul throughput (GFLOP/s) of ``A @ B``, n×n, 2n³ flops: the best repeat (the roof) and the
    median."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    times = []
    timing, _ = time_call(lambda: times.append(_timed(A, B)), min_repeats=5, min_total_s=min_total_s)
    flops = 2.0 * n ** 3
    return {"n": n, "gflops_best": flops / min(times[1:]) / 1e9, "gflops_median": flops / timing.median_s / 1e9,
            "timing": timing.as_dict()}


def _timed(A, B) -> float:
    t0 = time.perf_counter()
    A @ B
    return time.perf_counter() - t0
