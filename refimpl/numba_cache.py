"""Numba compilation with its on-disk cache where possible, in memory where not.

``numba.njit(cache=True)`` raises at decoration time (``RuntimeError: cannot cache function ...: no locator
available``) when none of Numba's cache locations is writable — the ``__pycache__`` beside a read-only installed
package, the user-wide cache under a read-only ``$HOME``, and ``NUMBA_CACHE_DIR`` unset — which made
``import refimpl.wasserstein`` fail. :func:`njit_cached` decorates with ``cache=True`` while that works and, the first
time it does not, warns once (:class:`NumbaCacheWarning`) and compiles in memory from then on (``cache=False``): the
kernels are the same, only every new process compiles them again (~20 s for the ODE sweeps). Setting
``NUMBA_CACHE_DIR`` to a writable folder restores the cache.

Freshness: Numba keys a cached function on the stamp (modification time and size) of its own source file only, so a
kernel that inlines a function of another module (the polynomial exp of :mod:`refimpl.numerics` inside the pair and
ODE kernels, the point functions inside the generic sweeps) would keep its old machine code — and old bits — after
only that other module changed. :func:`njit_cached` therefore salts every cached function's stamp with
:func:`package_digest`, the SHA-256 of the source of every module of the ``refimpl`` package: any change to refimpl's
code invalidates all of its cached kernels (they compile again once, ~20 s).

This module imports Numba only when a function is decorated; it knows nothing about the kernels it compiles.
"""
from __future__ import annotations

import functools
import hashlib
import warnings
from pathlib import Path

__all__ = ["njit_cached", "NumbaCacheWarning", "caching_enabled", "package_digest"]

#: None until the first decoration, then whether Numba's on-disk cache is used in this process
_CACHE: bool | None = None


class NumbaCacheWarning(RuntimeWarning):
    """No writable Numba cache directory: kernels are compiled in memory (again in every process)."""


def caching_enabled() -> bool | None:
    """Whether the kernels compiled so far use Numba's on-disk cache (None before the first one)."""
    return _CACHE


@functools.lru_cache(maxsize=None)
def package_digest() -> str:
    """SHA-256 (hex) of the ``refimpl`` package's source: every ``*.py`` below the package folder, in sorted relative
    path order, each as its path, a NUL, its bytes and a NUL (computed once per process)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _salt_source_stamp(compiled) -> None:
    """Make ``compiled``'s on-disk cache entry depend on :func:`package_digest` as well as on its own file (module
    docstring, "Freshness"). Numba keeps the stamp in the dispatcher's cache file object and compares it, by equality,
    with the one pickled in the index; a dispatcher without that structure (another Numba version) is left alone."""
    cache_file = getattr(getattr(compiled, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, package_digest())


def njit_cached(**options):
    """``numba.njit(cache=True, **options)``, or ``numba.njit(cache=False, **options)`` once Numba has found no
    writable cache location in this process (module docstring; one :class:`NumbaCacheWarning` per process)."""
    if "cache" in options:
        raise TypeError("njit_cached decides cache= itself; do not pass it")

    def decorate(fn):
        global _CACHE
        from numba import njit

        if _CACHE is not False:
            try:
                compiled = njit(cache=True, **options)(fn)
            except RuntimeError as e:
                if "no locator available" not in str(e):
                    raise
                _CACHE = False
                warnings.warn(f"refimpl: Numba found no writable cache directory ({e}); compiling the kernels in "
                              f"memory, so every new process compiles them again. Set NUMBA_CACHE_DIR to a writable "
                              f"folder to cache them.", NumbaCacheWarning, stacklevel=2)
            else:
                _CACHE = True
                _salt_source_stamp(compiled)
                return compiled
        return njit(cache=False, **options)(fn)

    return decorate
