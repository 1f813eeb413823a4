"""Numba's on-disk cache under concurrency: one compile per cache, the other workers load.

Why a lock. Numba saves a compiled overload by reading the cache index, choosing the first free data-file number,
writing the data file and rewriting the index (``numba.core.caching.IndexDataCacheFile.save``). Each file is written
atomically (temporary name, then rename), but the read–modify–write of the index is not: two processes that compile
*different* signatures of one function at the same moment can both pick data file 1, and the index that survives may
map a signature to the other's machine code. Compiling the *same* signature twice is only wasted work.

So every sweep worker, when it starts, takes an exclusive lock on a file beside the cache (:func:`cache_lock`) and
runs :func:`warm_kernels`: it calls each compiled kernel of refimpl once on tiny inputs with the argument types the
library passes. The first worker compiles and writes the cache; the others wait, then load the cached code (a fraction
of a second) — the kernels are warmed once per worker and compiled once per cache. Later calls in tasks find the
kernels in memory.

The lock is ``fcntl.flock`` (POSIX); where ``fcntl`` is absent it is a no-op. On a cluster whose workers share a
cache on a network file system, give each node its own ``NUMBA_CACHE_DIR`` (flock over NFS is not reliable).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["cache_lock", "lock_path", "warm_kernels"]


def _cache_root() -> Path:
    """Where this process's Numba cache lives: Numba's configured cache folder (``NUMBA_CACHE_DIR``) if set, else the
    ``__pycache__`` folder of the refimpl package (Numba's default is the ``__pycache__`` next to each source file)."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    try:
        from numba import config

        configured = config.CACHE_DIR or configured
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    if configured:
        return Path(configured)
    import refimpl

    return Path(refimpl.__file__).resolve().parent / "__pycache__"


def lock_path() -> Path:
    """The lock file for this process's cache: ``refimpl-numba.lock`` in the cache root (:func:`_cache_root`) when
    that folder is writable, else a file in the temporary folder named after the cache root (so two caches never share
    a lock)."""
    root = _cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root / "refimpl-numba.lock"
    except OSError:
        pass
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"refimpl-numba-{tag}.lock"


@contextlib.contextmanager
def cache_lock():
    """Hold an exclusive lock on :func:`lock_path` (blocking) for the duration of the ``with`` block."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = lock_path()
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


_WARM = False


def warm_kernels() -> None:
    """Call every compiled kernel of refimpl once (tiny inputs, the library's own argument types), under
    :func:`cache_lock`; once per process (later calls return at once). Does nothing if Numba is unavailable."""
    global _WARM
    if _WARM:
        return
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a dependency; a broken install falls back to NumPy
        _WARM = True
        return
    with cache_lock():
        _warm_ode()
        _warm_wasserstein()
    _WARM = True


def _warm_ode() -> None:
    """The ERK and LMM forward/backward sweeps of each built-in field with a compiled path (tanh, linear)."""
    import numpy as np

    from refimpl.ode.adjoint_recursions import discrete_adjoint
    from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField
    from refimpl.ode.samples import parameter_samples
    from refimpl.ode.schemes import LEAPFROG, RK4

    x0, loss = np.array([0.3, -0.2]), QuadraticLoss(np.zeros(2))
    for field in (TanhField(2), LinearField(2)):
        for method, starter in ((RK4, None), (LEAPFROG, "forward_euler")):
            smp = parameter_samples(method, 1.0, 4, "stage", starter)
            theta = np.full((smp.n_samples, field.n_params), 0.1)
            discrete_adjoint(field, method, x0, theta, 1.0, 4, loss, starter=starter, backend="numba")


def _warm_wasserstein() -> None:
    """The pairwise sums and the coordinate sweeps (quadratic with and without the L1 prox; pairwise)."""
    import numpy as np

    from refimpl.wasserstein import pairwise_sums
    from refimpl.wasserstein.composite import WeightedL1Potential
    from refimpl.wasserstein.energies import GaussianInteraction, QuadraticPotential
    from refimpl.wasserstein.rwcd_particles import rwcd, rwcp

    X = np.linspace(-1.0, 1.0, 12).reshape(6, 2)
    pairwise_sums.gaussian_interaction_gradient(X, 0.7, 1.1, backend="numba")
    pairwise_sums.gaussian_interaction_partial(X, 0, 0.7, 1.1, backend="numba")
    pairwise_sums.mean_kernel(X, 0.3, backend="numba")
    pairwise_sums.blob_score(X, 0.3, backend="numba")
    pairwise_sums.blob_score_partial(X, 0, 0.3, backend="numba")
    quad = QuadraticPotential(np.eye(2))
    rwcd(quad, X, 4, backend="numba")
    rwcp(quad + WeightedL1Potential(np.full(2, 0.1)), X, 4, backend="numba")
    rwcd(quad + GaussianInteraction(0.5, 1.0), X, 4, backend="numba")
