"""Argument checks shared by the public functions of :mod:`refimpl.wasserstein`.

Every public function validates what it is given before any arithmetic, and raises a ``ValueError`` or ``TypeError``
whose message names the offending argument. Values on the AD tape (:class:`refimpl.ad.Variable`) are checked through
their underlying array.
"""
from __future__ import annotations

import numbers

import numpy as np

from refimpl.ad import Variable


def underlying_array(x):
    """The ndarray under ``x``: ``x`` itself, or the value of a (possibly nested) tape :class:`Variable`."""
    while isinstance(x, Variable):
        x = x.value
    return x


def as_particles(X, name: str = "X", *, allow_variable: bool = False):
    """Check a particle cloud: a real ``(N, d)`` array, N ≥ 1, d ≥ 1, all entries finite.

    Returns the float64 ndarray (a copy only if a conversion was needed). With ``allow_variable`` a tape
    :class:`Variable` is accepted, checked through its value, and returned unchanged.
    """
    if isinstance(X, Variable):
        if not allow_variable:
            raise TypeError(f"{name} must be an ndarray here, not a tape Variable")
        as_particles(underlying_array(X), name)
        return X
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name} must be a real (N, d) array of particles, got {type(X).__name__}")
    arr = np.asarray(X)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real (N, d) array of particles, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d) (one particle per row), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one particle in at least one dimension, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} has a non-finite entry (NaN or inf) at index {tuple(int(b) for b in bad)}")
    return arr


def as_points_1d(x, name: str = "x"):
    """Check a 1-D array of finite reals (a 1-D particle cloud or a grid); returns float64."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be a real 1-D array, got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real 1-D array, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has a non-finite entry (NaN or inf) at index {int(np.argmax(~np.isfinite(arr)))}")
    return arr


def as_real_scalar(value, name: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    """Check a finite real scalar (optionally > 0 or ≥ 0) and return it as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        if isinstance(value, np.ndarray) and value.ndim == 0 and np.isrealobj(value):
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real scalar, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def as_coordinate(i, d: int, name: str = "i") -> int:
    """Check a coordinate index 0 ≤ i < d (an integer, not a bool)."""
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer coordinate index, got {type(i).__name__}")
    i = int(i)
    if not 0 <= i < d:
        raise ValueError(f"{name} must satisfy 0 <= {name} < d = {d}, got {i}")
    return i


def as_vector(v, d: int | None, name: str):
    """Check a finite real vector of length d (any length ≥ 1 when d is None); returns float64."""
    arr = np.asarray(v)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real vector, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size < 1 or (d is not None and arr.shape[0] != d):
        want = f"({d},)" if d is not None else "(d,)"
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has a non-finite entry")
    return arr


def as_symmetric_matrix(M, d: int | None, name: str, *, positive_definite: bool = False,
                        positive_semidefinite: bool = False):
    """Check a finite real symmetric (d, d) matrix; optionally SPD (Cholesky succeeds) or PSD (eigenvalues ≥ −tol).

    Symmetry is required to relative precision 1e-12 (‖M − Mᵀ‖_max ≤ 1e-12 ‖M‖_max); the exactly symmetrised
    ½(M + Mᵀ) is returned, so downstream closed forms see an exactly symmetric matrix.
    """
    arr = np.asarray(M)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a real matrix, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1 or (d is not None and arr.shape[0] != d):
        want = f"({d}, {d})" if d is not None else "(d, d)"
        raise ValueError(f"{name} must be a square matrix of shape {want}, got shape {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has a non-finite entry")
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    if float(np.max(np.abs(arr - arr.T))) > 1e-12 * scale:
        raise ValueError(f"{name} must be symmetric (max |{name} - {name}^T| = {np.max(np.abs(arr - arr.T)):.3g})")
    arr = 0.5 * (arr + arr.T)
    if positive_definite:
        try:
            np.linalg.cholesky(arr)
        except np.linalg.LinAlgError:
            raise ValueError(f"{name} must be symmetric positive definite (Cholesky failed; smallest eigenvalue "
                             f"{np.linalg.eigvalsh(arr)[0]:.3g})") from None
    elif positive_semidefinite:
        lam = np.linalg.eigvalsh(arr)
        if lam[0] < -1e-12 * max(scale, 1.0):
            raise ValueError(f"{name} must be positive semidefinite (smallest eigenvalue {lam[0]:.3g})")
    return arr
