"""Argument checks specific to :mod:`refimpl.wasserstein`: particle clouds.

The general checks (scalars, vectors, symmetric matrices, 1-D point sets, coordinate indices) live in
:mod:`refimpl.arguments` and are re-exported here, so ``from refimpl.wasserstein.arguments import as_vector`` keeps
working. Every check raises a ``ValueError`` or ``TypeError`` whose message names the offending argument; values on the
AD tape (:class:`refimpl.ad.Variable`) are checked through their underlying array.
"""
from __future__ import annotations

import numpy as np

from refimpl.ad import Variable
from refimpl.arguments import (as_coordinate, as_points_1d, as_real_array, as_real_scalar, as_symmetric_matrix,
                               as_vector, check_finite, underlying_array)

__all__ = [
    "as_coordinate",
    "as_particles",
    "as_points_1d",
    "as_real_scalar",
    "as_symmetric_matrix",
    "as_vector",
    "underlying_array",
]


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
    arr = as_real_array(X, name, "a real (N, d) array of particles")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d) (one particle per row), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one particle in at least one dimension, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    check_finite(arr, name)
    return arr
