"""Test-session setup.

BLAS threads: the suite is dominated by many tiny matrix operations (d ≤ 64), for which OpenBLAS's thread pool only adds
synchronisation; on a loaded 2-core machine it slowed a 4×4 ``expm`` sweep ~40× (10 s vs 0.24 s). One thread per process
unless the caller says otherwise. This must run before NumPy is imported, which conftest does (pytest imports it first).
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
