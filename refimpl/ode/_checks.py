"""Argument checks of the ODE package that :mod:`refimpl.arguments` does not cover (one home for all of them).

They differ from the general validators on purpose: the ODE code runs on float64, complex128 *and* exact
``object`` arrays of :class:`fractions.Fraction` (and on tape ``Variable``\\ s), and the compiled kernels accept only
contiguous float64 / int64 arrays.

``as_fixed_array``     a fixed field/loss coefficient (float64, complex128 or Fraction), read-only copy;
``check_state_array``  ``x0`` / ``theta`` of a problem (ndarray, list or Variable; float64, complex128 or exact);
``checked_output``     a user callback's return value as float64 of a given shape, finite;
``f64_array``          a compiled kernel's float64 argument (exact dtype and ndim, finite, contiguous);
``index_array``        a compiled kernel's int64 index argument (entries in range, -1 allowed where asked).
"""
from __future__ import annotations

import numpy as np

from refimpl.ad import Variable, getvalue
from refimpl.arguments import check_finite

__all__ = ["as_fixed_array", "check_state_array", "checked_output", "f64_array", "index_array"]


def as_fixed_array(M, name: str, ndim: int = 2, shape=None) -> np.ndarray:
    """A fixed (non-parameter) coefficient array: float64/complex128/object ndarray, finite, ``ndim``-D, read-only copy.

    Object (Fraction) arrays are allowed for exact mode, so this is not :func:`refimpl.arguments.as_vector`.
    """
    if not isinstance(M, np.ndarray):
        M = np.asarray(M)
    if M.dtype.kind in "iub":
        M = M.astype(np.float64)
    if M.dtype.kind not in "fcO":
        raise TypeError(f"{name} must be a real, complex or object (Fraction) array, got dtype {M.dtype}")
    if M.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {M.shape}")
    if shape is not None and M.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {M.shape}")
    if M.dtype.kind in "fc":
        check_finite(M, name)
    M = M.copy()
    M.flags.writeable = False
    return M


def check_state_array(a, name: str, shape: tuple, shape_hint: str = ""):
    """Validate x0 / theta: ndarray (or list), Variable; dtype float64, complex128, int (promoted) or object; finite."""
    if not isinstance(a, Variable):
        if isinstance(a, (list, tuple)) or np.isscalar(a):
            a = np.asarray(a)
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array or a refimpl.ad.Variable, got {type(a).__name__}")
        if a.dtype.kind in "iu":
            a = a.astype(np.float64)
        elif a.dtype not in (np.float64, np.complex128, np.dtype(object)):
            raise TypeError(f"{name} has dtype {a.dtype}; use float64, complex128, or an object array of Fractions "
                            f"(exact mode)")
    v = np.asarray(getvalue(a) if isinstance(a, Variable) else a)
    if v.shape != shape:
        raise ValueError(f"{name} must have shape {shape}{shape_hint}, got {v.shape}")
    if v.dtype == object:
        bad = [i for i, e in enumerate(v.reshape(-1)) if isinstance(e, (float, complex)) or e is None]
        if bad:
            raise TypeError(f"{name} is an object array (exact mode) but entry {np.unravel_index(bad[0], shape)} is "
                            f"{v.reshape(-1)[bad[0]]!r}; exact mode needs Fractions/ints (or other exact numbers)")
    elif not np.all(np.isfinite(v)):
        bad = np.argwhere(~np.isfinite(v))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return a


def checked_output(value, what: str, shape: tuple, where: str = "") -> np.ndarray:
    """A user callback's return value as float64, checked to have ``shape`` and finite entries (``what`` names it)."""
    v = np.asarray(value, dtype=np.float64)
    if v.shape != shape:
        raise ValueError(f"{what} must return shape {shape}, got {v.shape}{where}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{what} returned a non-finite value{where}")
    return v


def f64_array(a, name, ndim):
    """A compiled kernel's float64 argument: exactly a ``ndim``-D float64 ndarray, finite; returned contiguous."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.ndim != ndim:
        raise TypeError(f"{name} must be a {ndim}-D float64 ndarray")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return np.ascontiguousarray(a)


def index_array(a, name, ndim, n_samples, allow_unused=False):
    """A compiled kernel's int64 index argument: entries in ``[0, n_samples)`` (or -1 with ``allow_unused``)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.int64 or a.ndim != ndim:
        raise TypeError(f"{name} must be a {ndim}-D int64 ndarray")
    lo = -1 if allow_unused else 0
    if a.size and (a.min() < lo or a.max() >= n_samples):
        raise ValueError(f"{name} has entries outside [{lo}, {n_samples})")
    return np.ascontiguousarray(a)
