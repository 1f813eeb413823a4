"""Argument checks shared by every public entry point: each raises TypeError/ValueError naming the argument.

Dtype policy (one rule for every array argument; implemented once, by :func:`as_float_array`):

* refimpl computes in float64. A float64 array is used as given (no copy unless one is asked for).
* complex128 is accepted only where a function says it accepts complex input (``allow_complex=True``).
* Integer inputs (integer arrays, Python ints, lists of ints) are promoted to float64, which is exact: an integer of
  magnitude above 2**53, which float64 cannot hold exactly, is a ``ValueError``.
* Other float precisions (float16, float32, longdouble; complex64, clongdouble) are refused with a ``TypeError`` that
  says to cast explicitly (``x.astype(np.float64)``): a precision is never silently changed.
* bool, object (e.g. ``Fraction``), string and bytes values, and ``None``, are refused with a ``TypeError``.
* A NaN or inf entry is refused with a ``ValueError`` naming the argument and the index of the first such entry.

The AD package applies the same policy to the inputs of ``grad`` & co. with its own NumPy-only check
(:func:`refimpl.ad.api.as_input`), because it imports nothing above it. Scalar parameters (:func:`as_real_scalar`) are
returned as Python floats and accept any real number type. :func:`as_real_array` is the kind check alone (real numbers,
any precision, no conversion): it serves data that are compared rather than computed with, such as the float32 output
of another implementation handed to the oracle.

Every public function validates what it is given before any arithmetic: a wrong *kind* of value (a string, ``None``, an
object/bool/complex array, a float where an integer is needed, a float32 array) raises ``TypeError``; a value of the
right kind but the wrong shape, a non-finite entry, or a parameter out of range raises ``ValueError``. Each message
starts with the argument's name, so ``pytest.raises(..., match=name)`` finds it.

Sections: general checks; particle clouds (:mod:`refimpl.wasserstein`); ODE arrays (:mod:`refimpl.ode`: fixed
coefficients, states and parameter tables in float64, complex128 or exact ``Fraction`` arithmetic, user-callback outputs,
the compiled kernels' float64/int64 arguments). Values on the AD tape (:class:`refimpl.ad.Variable`) are seen through
:func:`underlying_array`.
"""
from __future__ import annotations

import numbers

import numpy as np

from refimpl.ad import Variable, getvalue

__all__ = [
    "as_choice",
    "as_coordinate",
    "as_float_array",
    "as_length_scale",
    "as_points_1d",
    "as_positive_integer",
    "as_real_array",
    "as_real_scalar",
    "as_symmetric_matrix",
    "as_vector",
    "check_finite",
    "first_nonfinite",
    "NonFiniteError",
    "underlying_array",
]


def underlying_array(x):
    """The ndarray under ``x``: ``x`` itself, or the value of a (possibly nested) tape :class:`Variable`."""
    while isinstance(x, Variable):
        x = x.value
    return x


def as_real_array(x, name: str, what: str) -> np.ndarray:
    """``np.asarray(x)`` if it holds real numbers (a floating or integer dtype, not bool/complex/object/str), of any
    precision: the kind check alone, without the dtype policy (use :func:`as_float_array` for values computed with).

    ``what`` describes the expected value for the ``TypeError`` message, e.g. ``"a real 1-D array"``. No shape or
    finiteness check, no conversion: callers add those.
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be {what}, got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be {what}, got dtype {arr.dtype}")
    return arr


_EXACT_INTEGER_BOUND = 2 ** 53  # every integer of magnitude ≤ 2**53 is a float64, exactly


def as_float_array(x, name: str, *, what: str | None = None, allow_complex: bool = False, ndim: int | None = None,
                   shape: tuple | None = None, finite: bool = True) -> np.ndarray:
    """``x`` as a float64 (or, with ``allow_complex``, complex128) ndarray, by the dtype policy of this module.

    ``what`` describes the expected value for the ``TypeError`` message (default ``"a real array"`` or ``"a real or
    complex array"``). ``ndim`` / ``shape`` (entries ``None`` = any length) are checked when given. ``finite=False``
    leaves the NaN/inf check to the caller (:func:`check_finite`), for checks that report a wrong shape first. The
    result shares memory with ``x`` when no conversion was needed (a float64/complex128 ndarray in native byte order).
    """
    if what is None:
        what = "a real or complex array" if allow_complex else "a real array"
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name} must be {what}, got {type(x).__name__}")
    arr = np.asarray(x)
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind in "iu":
        if arr.size and (np.any(arr > _EXACT_INTEGER_BOUND) or np.any(arr < -_EXACT_INTEGER_BOUND)):
            raise ValueError(f"{name} holds integers of magnitude above 2**53, which float64 cannot represent "
                             f"exactly; convert them deliberately")
        arr = arr.astype(np.float64)
    elif (kind == "f" and size == 8) or (kind == "c" and size == 16 and allow_complex):
        arr = np.asarray(arr, dtype=np.complex128 if kind == "c" else np.float64)  # native byte order; exact
    elif kind == "f" or (kind == "c" and allow_complex):
        want = "float64 or complex128" if allow_complex else "float64"
        target = "np.complex128" if kind == "c" else "np.float64"
        raise TypeError(f"{name} has dtype {arr.dtype}; refimpl computes in {want} and does not change a precision "
                        f"silently: cast explicitly, e.g. {name}.astype({target})")
    else:
        raise TypeError(f"{name} must be {what}, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if shape is not None and (arr.ndim != len(shape)
                              or any(n is not None and n != m for n, m in zip(shape, arr.shape))):
        want = "(" + ", ".join("n" if n is None else str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    if finite:
        check_finite(arr, name)
    return arr


class NonFiniteError(ValueError):
    """A computation on finite arguments produced NaN or inf (an overflow, or what follows one), and refimpl raises
    instead of returning it. Unlike the argument checks, the message says what *became* non-finite and where (e.g. "the
    solution became non-finite at step n, time t"), with a stability hint when a known step-size bound is exceeded. A
    ``ValueError``: the arguments are out of the range the computation can represent in float64."""


def first_nonfinite(arr) -> tuple | None:
    """The index (a tuple) of the first NaN/inf entry of a float/complex ``arr`` in C order, or None (also for
    ``object`` arrays: exact arithmetic does not overflow)."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), arr.shape))


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` and the index of the first NaN/inf entry of the float array ``arr``."""
    finite = np.isfinite(arr)
    if not np.all(finite):
        bad = np.unravel_index(int(np.argmax(~finite)), arr.shape)
        where = int(bad[0]) if arr.ndim == 1 else tuple(int(b) for b in bad)
        raise ValueError(f"{name} has a non-finite entry (NaN or inf) at index {where}")


def as_real_scalar(value, name: str, *, positive: bool = False, nonnegative: bool = False,
                   nonzero: bool = False) -> float:
    """Check a finite real scalar (optionally > 0, ≥ 0 or ≠ 0) and return it as a float.

    Accepted: Python/NumPy reals and integers (an integer only if float64 holds it exactly, as the dtype policy), and
    0-d real ndarrays; rejected with ``TypeError``: bools, complex numbers, strings, arrays of other shapes.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
            value = value.item()
        else:
            raise TypeError(f"{name} must be a real scalar, got {type(value).__name__}")
    if isinstance(value, (numbers.Integral, np.integer)) and int(value) != float(value):
        raise ValueError(f"{name} = {int(value)} is an integer that float64 cannot hold exactly (|{name}| > 2**53 "
                         f"and not representable); pass the float you mean")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if nonzero and value == 0.0:
        raise ValueError(f"{name} must be nonzero, got {value}")
    return value


#: a length scale ℓ (kernel bandwidth, interaction width) enters as 1/ℓ² and ℓ²: both are normal float64 numbers for
#: ℓ in [LENGTH_SCALE_MIN, LENGTH_SCALE_MAX]
LENGTH_SCALE_MIN, LENGTH_SCALE_MAX = 1e-150, 1e150


def as_length_scale(value, name: str) -> float:
    """A positive finite length scale ℓ whose square and inverse square are finite and nonzero in float64
    (1e-150 ≤ ℓ ≤ 1e150); outside that range a kernel exp(−|x|²/(2ℓ²)) would divide by zero or lose its scale."""
    value = as_real_scalar(value, name, positive=True)
    if not LENGTH_SCALE_MIN <= value <= LENGTH_SCALE_MAX:
        raise ValueError(f"{name} must be in [{LENGTH_SCALE_MIN:g}, {LENGTH_SCALE_MAX:g}] ({name}**2 and 1/{name}**2 "
                         f"enter the kernel and must be finite and nonzero in float64), got {value:g}")
    return value


def _as_integer(value, name: str, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return int(value)


def as_positive_integer(value, name: str) -> int:
    """Check an integer ≥ 1 (a dimension, a count; not a bool, not a float) and return it as an int."""
    value = _as_integer(value, name, "an integer")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def as_choice(value, choices: tuple, name: str) -> str:
    """Return ``value`` if it is one of the strings ``choices``; ``TypeError`` (not a string) or ``ValueError`` (not
    one of them) naming ``name`` and listing the choices otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def as_coordinate(i, d: int, name: str = "i") -> int:
    """Check a coordinate index 0 ≤ i < d (an integer, not a bool)."""
    i = _as_integer(i, name, "an integer coordinate index")
    if not 0 <= i < d:
        raise ValueError(f"{name} must satisfy 0 <= {name} < d = {d}, got {i}")
    return i


def _owned(arr: np.ndarray, copy: bool, read_only: bool) -> np.ndarray:
    """``arr``, or a private copy of it (``copy``), or a private copy that cannot be written (``read_only``).

    Freezing always works on a copy, so the caller's array is never made read-only.
    """
    if copy or read_only:
        arr = arr.copy()
    if read_only:
        arr.flags.writeable = False
    return arr


def as_points_1d(x, name: str = "x", *, copy: bool = False, read_only: bool = False) -> np.ndarray:
    """Check a non-empty 1-D array of finite reals (a 1-D particle cloud, a grid, a list of times); returns float64
    (by the dtype policy of :func:`as_float_array`: integers promoted, other float precisions refused).

    The result shares memory with ``x`` when no conversion was needed, unless ``copy`` (a private copy) or
    ``read_only`` (a private copy that cannot be written) is asked for.
    """
    arr = as_float_array(x, name, what="a real 1-D array", finite=False)
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    out = np.ascontiguousarray(arr)
    check_finite(out, name)
    return _owned(out, copy, read_only)


def as_vector(v, d: int | None, name: str, *, copy: bool = False, read_only: bool = False) -> np.ndarray:
    """Check a finite real vector of length d (any length ≥ 1 when d is None); returns float64 (by the dtype policy
    of :func:`as_float_array`).

    ``copy`` / ``read_only`` as in :func:`as_points_1d`.
    """
    arr = as_float_array(v, name, what="a real vector", finite=False)
    if arr.ndim != 1 or arr.size < 1 or (d is not None and arr.shape[0] != d):
        want = f"({d},)" if d is not None else "(d,)"
        raise ValueError(f"{name} must have shape {want}, got shape {arr.shape}")
    out = np.ascontiguousarray(arr)
    check_finite(out, name)
    return _owned(out, copy, read_only)


def as_symmetric_matrix(M, d: int | None, name: str, *, positive_definite: bool = False,
                        positive_semidefinite: bool = False) -> np.ndarray:
    """Check a finite real symmetric (d, d) matrix; optionally SPD (Cholesky succeeds) or PSD (eigenvalues ≥ −tol).
    The dtype policy is :func:`as_float_array`'s.

    Symmetry is required to relative precision 1e-12 (‖M − Mᵀ‖_max ≤ 1e-12 ‖M‖_max); the exactly symmetrised
    ½(M + Mᵀ) is returned (a new array), so downstream closed forms see an exactly symmetric matrix.
    """
    arr = as_float_array(M, name, what="a real matrix", finite=False)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1 or (d is not None and arr.shape[0] != d):
        want = f"({d}, {d})" if d is not None else "(d, d)"
        raise ValueError(f"{name} must be a square matrix of shape {want}, got shape {arr.shape}")
    check_finite(arr, name)
    scale = float(np.max(np.abs(arr)))
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


# ---------------------------------------------------------------------------------------------------------------------
# particle clouds (refimpl.wasserstein)
# ---------------------------------------------------------------------------------------------------------------------

def as_particles(X, name: str = "X", *, allow_variable: bool = False):
    """Check a particle cloud: a real ``(N, d)`` array, N ≥ 1, d ≥ 1, all entries finite.

    Returns the float64 C-contiguous ndarray (a copy only if a conversion was needed; dtype policy above: float32
    clouds are refused, integer clouds promoted). With ``allow_variable`` a tape
    :class:`Variable` is accepted, checked through its value, and returned unchanged.
    """
    if isinstance(X, Variable):
        if not allow_variable:
            raise TypeError(f"{name} must be an ndarray here, not a tape Variable")
        as_particles(underlying_array(X), name)
        return X
    arr = as_float_array(X, name, what="a real (N, d) array of particles", finite=False)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d) (one particle per row), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one particle in at least one dimension, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr)
    check_finite(arr, name)
    return arr


__all__ += ["as_particles"]


# ---------------------------------------------------------------------------------------------------------------------
# ODE arrays (refimpl.ode): the one documented exception to the dtype policy is exact mode — the ODE code also runs on
# complex128 (complex step) and on object arrays of fractions.Fraction (exact arithmetic), and on tape Variables; the
# compiled kernels take exactly float64 / int64.
# ---------------------------------------------------------------------------------------------------------------------

def as_fixed_array(M, name: str, ndim: int = 2, shape=None) -> np.ndarray:
    """A fixed (non-parameter) coefficient array: float64/complex128/object ndarray, finite, ``ndim``-D, read-only copy.

    Object (Fraction) arrays are allowed for exact mode, so this is not :func:`refimpl.arguments.as_vector`.
    """
    if not isinstance(M, np.ndarray):
        M = np.asarray(M)
    if M.dtype.kind in "iu":
        M = as_float_array(M, name, finite=False)  # exact promotion (integers above 2**53 refused)
    elif M.dtype.kind == "b":
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


def nonfinite_state_error(v: np.ndarray, name: str) -> ValueError:
    """The error of :func:`check_state_array` for a float/complex array ``v`` with a NaN or inf entry (located: the
    first in C order), for callers that find out later that it has one (the compiled ODE adjoint checks θ in its
    forward sweep)."""
    bad = np.argwhere(~np.isfinite(v))[0]
    return ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def check_state_array(a, name: str, shape: tuple, shape_hint: str = "", *, finite: bool = True):
    """Validate x0 / theta: ndarray (or list), Variable; dtype float64, complex128, int (promoted) or object; finite
    (``finite=False``: a float/complex array's NaN/inf check is left to the caller, who raises
    :func:`nonfinite_state_error`)."""
    if not isinstance(a, Variable):
        if isinstance(a, (list, tuple)) or np.isscalar(a):
            a = np.asarray(a)
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array or a refimpl.ad.Variable, got {type(a).__name__}")
        if a.dtype.kind in "iu":
            a = as_float_array(a, name, finite=False)  # exact promotion (integers above 2**53 refused)
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
    elif finite and not np.all(np.isfinite(v)):
        raise nonfinite_state_error(v, name)
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


__all__ += ["as_fixed_array", "check_state_array", "checked_output", "f64_array", "index_array",
            "nonfinite_state_error"]
