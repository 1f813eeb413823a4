"""Scheme coefficients as exact rationals or floats: the one conversion rule shared by tableaux and multistep methods.

A coefficient list is *exact* when every entry is an ``int`` or a :class:`fractions.Fraction` (or a NumPy integer);
it is then stored as Fractions, and the scheme can run in exact mode on ``object`` arrays. As soon as one entry is a
float, every entry is stored as a Python float (float64) and the scheme is float-only.
"""
from __future__ import annotations

import math
import numbers
from fractions import Fraction

import numpy as np

#: the largest coefficient magnitude accepted: a product of five (the order-4 conditions b_i a_ij a_jk c_k) stays far
#: inside float64, and an exact coefficient converts to float64 without overflow
MAX_COEFFICIENT = 1e60

__all__ = ["MAX_COEFFICIENT", "normalise_coefficients", "coefficient_array", "coefficient_text", "coefficient_from_text"]


def _is_exact(v) -> bool:
    return isinstance(v, (numbers.Rational, np.integer)) and not isinstance(v, (bool, np.bool_))


def normalise_coefficients(values, name: str) -> tuple[tuple, bool]:
    """Flatten-free conversion of a 1-D sequence of real coefficients: (tuple of Fractions or floats, exact?)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence of real numbers, got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.integer, np.floating)):
            raise TypeError(f"{name}[{i}] must be a real number (int, Fraction or float), got {type(v).__name__}")
        if not _is_exact(v) and not math.isfinite(float(v)):
            raise ValueError(f"{name}[{i}] must be finite, got {v}")
        if abs(v) > MAX_COEFFICIENT:
            raise ValueError(f"{name}[{i}] = {float(v):.3g} is too large: scheme coefficients must have magnitude <= "
                             f"{MAX_COEFFICIENT:g} (the order conditions multiply up to five of them, and the scheme "
                             f"runs in float64)")
        out.append(v)
    exact = all(_is_exact(v) for v in out)
    if exact:
        return tuple(Fraction(int(v)) if isinstance(v, np.integer) else Fraction(v) for v in out), True
    return tuple(float(v) for v in out), False


def coefficient_array(values, exact: bool) -> np.ndarray:
    """A read-only array of the coefficients: ``object`` array of Fractions (exact) or float64."""
    if exact:
        arr = np.empty(np.shape(values), dtype=object)
        flat = arr.reshape(-1)
        for i, v in enumerate(np.asarray(values, dtype=object).reshape(-1)):
            flat[i] = Fraction(v)
    else:
        arr = np.array(values, dtype=np.float64)
    arr.flags.writeable = False
    return arr


def coefficient_text(v) -> str | float:
    """A coefficient as it is written into a case file: an exact one as the string ``"p/q"`` (or ``"p"``), a float
    as a JSON number."""
    return str(v) if isinstance(v, Fraction) else float(v)


def coefficient_from_text(v) -> Fraction | float:
    """Inverse of :func:`coefficient_text`: a string is an exact rational, a number a float."""
    return Fraction(v) if isinstance(v, str) else float(v)
