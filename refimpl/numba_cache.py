"""Numba compilation with its on-disk cache where possible, in memory where not.

``numba.njit(cache=True)`` raises at decoration time (``RuntimeError: cannot cache function ...: no locator
available``) when none of Numba's cache locations is writable — the ``__pycache__`` beside a read-only installed
package, the user-wide cache under a read-only ``$HOME``, and ``NUMBA_CACHE_DIR`` unset — which made
``import refimpl.wasserstein`` fail. :func:`njit_cached` decorates with ``cache=True`` while that works and, the first
time it does not, warns once (:class:`NumbaCacheWarning`) and compiles in memory from then on (``cache=False``): the
kernels are the same, only every new process compiles them again (~20 s for the ODE sweeps). Setting
``NUMBA_CACHE_DIR`` to a writable folder restores the cache.

This module imports Numba only when a function is decorated; it knows nothing about the kernels it compiles.
"""
from __future__ import annotations

import warnings

__all__ = ["njit_cached", "NumbaCacheWarning", "caching_enabled"]

#: None until the first decoration, then whether Numba's on-disk cache is used in this process
_CACHE: bool | None = None


class NumbaCacheWarning(RuntimeWarning):
    """No writable Numba cache directory: kernels are compiled in memory (again in every process)."""


def caching_enabled() -> bool | None:
    """Whether the kernels compiled so far use Numba's on-disk cache (None before the first one)."""
    return _CACHE


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
                return compiled
        return njit(cache=False, **options)(fn)

    return decorate
