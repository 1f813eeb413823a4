"""The primitives: each NumPy function stands beside its VJP rules.

Every function here accepts ndarrays, Python scalars or :class:`~refimpl.ad.tape.Variable` s. On plain arrays it is
just NumPy (so code written with these functions runs at NumPy speed outside a trace); on Variables it is recorded on the
tape. VJP rules have the signature ``rule(g, ans, *args)`` and are written with these same functions, so they can be
differentiated again. Broadcasting is undone in one place, :func:`unbroadcast`.

This module also installs the operators and array methods onto :class:`~refimpl.ad.tape.Variable` (last section, the
pattern of HIPS autograd's ``numpy_boxes.py``): the engine in :mod:`refimpl.ad.tape` imports nothing from here.

Complex numbers: holomorphic primitives use the plain (unconjugated) derivative, e.g. ``exp``: ``g * ans`` — the JAX
convention, see :mod:`refimpl.ad.tape`. ``abs``, ``maximum``, ``minimum``, ``real``, ``imag`` and ``conj`` are not
holomorphic; their rules follow from the same convention (a real-valued f of z = x + iy gets ``∂f/∂x − i ∂f/∂y``).
The convention and the subgradients chosen at kinks are written out in docs/theory/autodiff.md.
"""
from __future__ import annotations

import numpy as np

from refimpl.ad.tape import Variable, getvalue, primitive

__all__ = [
    "add", "subtract", "multiply", "divide", "negative", "power", "exp", "log", "sqrt", "sin", "cos", "tanh",
    "sigmoid", "abs", "maximum", "minimum", "where", "matmul", "dot", "einsum", "sum", "mean", "reshape", "transpose",
    "swapaxes", "broadcast_to", "getitem", "stack", "concatenate", "real", "imag", "conj", "unbroadcast",
]


def _shape(x):
    return np.shape(getvalue(x))


def _is_complex(x):
    return np.iscomplexobj(getvalue(x))


def unbroadcast(g, target):
    """Reduce a cotangent ``g`` of a broadcast result to the shape of the argument ``target``.

    Sums over the leading axes broadcasting added and over axes where ``target`` had length 1; for a real ``target``
    keeps the real part (a real input's cotangent is real under the JAX convention).
    """
    shape = _shape(target)
    gshape = _shape(g)
    if gshape != shape:
        extra = len(gshape) - len(shape)
        if extra > 0:
            g = sum(g, axis=tuple(range(extra)))
        axes = tuple(i for i, n in enumerate(shape) if n == 1 and _shape(g)[i] != 1)
        if axes:
            g = sum(g, axis=axes, keepdims=True)
    if _is_complex(g) and not _is_complex(target):
        g = real(g)
    return g


# -- arithmetic ------------------------------------------------------------------------------------------------------
add = primitive(np.add,
                vjp0=lambda g, ans, x, y: unbroadcast(g, x),
                vjp1=lambda g, ans, x, y: unbroadcast(g, y))
subtract = primitive(np.subtract,
                     vjp0=lambda g, ans, x, y: unbroadcast(g, x),
                     vjp1=lambda g, ans, x, y: unbroadcast(negative(g), y))
multiply = primitive(np.multiply,
                     vjp0=lambda g, ans, x, y: unbroadcast(multiply(g, y), x),
                     vjp1=lambda g, ans, x, y: unbroadcast(multiply(g, x), y))
divide = primitive(np.true_divide,
                   vjp0=lambda g, ans, x, y: unbroadcast(divide(g, y), x),
                   vjp1=lambda g, ans, x, y: unbroadcast(negative(divide(multiply(g, ans), y)), y))
negative = primitive(np.negative, vjp0=lambda g, ans, x: negative(g))


def _log_base(x):
    """log x where x ≠ 0, and 0 where x = 0 (d(x^y)/dy = x^y log x → 0 there since x^y = 0 for y > 0)."""
    xv = getvalue(x)
    return log(where(xv == 0, 1.0, x))


power = primitive(np.power,
                  vjp0=lambda g, ans, x, y: unbroadcast(multiply(g, multiply(y, power(x, subtract(y, 1)))), x),
                  vjp1=lambda g, ans, x, y: unbroadcast(multiply(g, multiply(ans, _log_base(x))), y))

# -- elementwise functions ------------------------------------------------------------------------------------------
exp = primitive(np.exp, vjp0=lambda g, ans, x: multiply(g, ans))
log = primitive(np.log, vjp0=lambda g, ans, x: divide(g, x))
sqrt = primitive(np.sqrt, vjp0=lambda g, ans, x: divide(g, multiply(2.0, ans)))
sin = primitive(np.sin, vjp0=lambda g, ans, x: multiply(g, cos(x)))
cos = primitive(np.cos, vjp0=lambda g, ans, x: negative(multiply(g, sin(x))))


def _sech2(x):
    r"""sech² x = 4w/(1 + w)², w = e^{−2σx}, σ = sign(Re x) (+1 at 0; a constant, not taped): the derivative of tanh
    without the cancellation of 1 − tanh² x (which, from a rounded tanh, keeps no correct digit once |x| ≳ 18 and few
    from |x| ≈ 10). Both choices of σ are the same entire function, so the form is holomorphic (complex step) and, being
    written with primitives, differentiable again (HVPs)."""
    sigma = np.where(np.real(getvalue(x)) < 0, 2.0, -2.0)
    w = exp(multiply(sigma, x))
    q = add(1.0, w)
    return divide(multiply(4.0, w), multiply(q, q))


tanh = primitive(np.tanh, vjp0=lambda g, ans, x: multiply(g, _sech2(x)))


def _sigmoid(x):
    """σ(x) = 1/(1 + e^{−x}) = (1 + tanh(x/2))/2: the tanh form never overflows and is holomorphic (complex step)."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


sigmoid = primitive(_sigmoid, vjp0=lambda g, ans, x: multiply(g, multiply(ans, subtract(1.0, ans))))


def _abs_vjp(g, ans, x):
    """|x|' = sign(x) for real x, with the subgradient 0 at x = 0; conj(z)/|z| for complex z (0 at z = 0)."""
    safe = where(getvalue(ans) == 0, 1.0, ans)
    return multiply(g, divide(conj(x), safe))


abs = primitive(np.abs, vjp0=_abs_vjp)


def _select_weights(x, y):
    """Weight of x in max(x, y): 1 where Re x > Re y, 1/2 at ties (the subgradient splits evenly), 0 elsewhere."""
    xr, yr = np.real(getvalue(x)), np.real(getvalue(y))
    return (xr > yr) + 0.5 * (xr == yr)


def _maximum(x, y):
    """Elementwise max by real part (for real inputs np.maximum; complex-step safe for complex ones)."""
    return np.where(np.real(x) >= np.real(y), x, y) if np.iscomplexobj(x) or np.iscomplexobj(y) else np.maximum(x, y)


def _minimum(x, y):
    """Elementwise min by real part (for real inputs np.minimum; complex-step safe for complex ones)."""
    return np.where(np.real(x) <= np.real(y), x, y) if np.iscomplexobj(x) or np.iscomplexobj(y) else np.minimum(x, y)


maximum = primitive(_maximum,
                    vjp0=lambda g, ans, x, y: unbroadcast(multiply(g, _select_weights(x, y)), x),
                    vjp1=lambda g, ans, x, y: unbroadcast(multiply(g, _select_weights(y, x)), y))
minimum = primitive(_minimum,
                    vjp0=lambda g, ans, x, y: unbroadcast(multiply(g, _select_weights(y, x)), x),
                    vjp1=lambda g, ans, x, y: unbroadcast(multiply(g, _select_weights(x, y)), y))


def _where(cond, x, y):
    return np.where(cond, x, y)


where = primitive(_where,
                  vjp1=lambda g, ans, c, x, y: unbroadcast(where(c, g, 0.0), x),
                  vjp2=lambda g, ans, c, x, y: unbroadcast(where(c, 0.0, g), y))
where.__doc__ = "where(cond, x, y): cond is a constant boolean array; the cotangent is routed to the selected branch."

real = primitive(np.real, vjp0=lambda g, ans, x: g)
imag = primitive(np.imag, vjp0=lambda g, ans, x: unbroadcast(multiply(-1j, g), x))
conj = primitive(np.conj, vjp0=lambda g, ans, x: conj(g))


# -- shapes ------------------------------------------------------------------------------------------------------------
def _reshape(x, shape):
    return np.reshape(x, shape)


reshape = primitive(_reshape, vjp0=lambda g, ans, x, shape: reshape(g, _shape(x)))


def _transpose(x, axes=None):
    return np.transpose(x, axes)


def _transpose_vjp(g, ans, x, axes=None):
    return transpose(g, None if axes is None else tuple(np.argsort(axes)))


transpose = primitive(_transpose, vjp0=_transpose_vjp)


def swapaxes(x, a1=-2, a2=-1):
    """Swap two axes (a transpose; default: the last two)."""
    axes = list(range(len(_shape(x))))
    axes[a1], axes[a2] = axes[a2], axes[a1]
    return transpose(x, tuple(axes))


def _broadcast_to(x, shape):
    return np.broadcast_to(x, shape).copy()


broadcast_to = primitive(_broadcast_to, vjp0=lambda g, ans, x, shape: unbroadcast(g, x))


def _sum(x, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


def _sum_vjp(g, ans, x, axis=None, keepdims=False):
    shape = _shape(x)
    if not keepdims and axis is not None:
        axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
        kept = [1 if i in {a % len(shape) for a in axes} else n for i, n in enumerate(shape)]
        g = reshape(g, tuple(kept))
    return broadcast_to(g, shape)


sum = primitive(_sum, vjp0=_sum_vjp)


def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over ``axis`` (sum divided by the number of summed entries)."""
    shape = _shape(x)
    axes = range(len(shape)) if axis is None else ((axis,) if np.ndim(axis) == 0 else axis)
    count = int(np.prod([shape[a] for a in axes]))
    return divide(sum(x, axis=axis, keepdims=keepdims), float(count))


def _getitem(x, idx):
    return np.asarray(x)[idx]


def _scatter_add(g, idx, shape):
    """Zeros of ``shape`` with ``g`` added at ``idx`` (repeated indices accumulate): the transpose of indexing."""
    out = np.zeros(shape, dtype=np.result_type(g, np.float64))
    np.add.at(out, idx, g)
    return out


def _is_basic_index(idx):
    """True for ints/slices/None/Ellipsis (and tuples of them): such an index selects each element at most once."""
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def _getitem_add_into(buf, g, x, idx):
    """buf[idx] += g in place (np.add.at for advanced indices, which may repeat); the real part for a real input."""
    g = g if np.iscomplexobj(buf) else np.real(g)
    if _is_basic_index(idx):
        buf[idx] += g
    else:
        np.add.at(buf, idx, g)


getitem = primitive(_getitem, vjp0=lambda g, ans, x, idx: scatter_add(g, idx, _shape(x)),
                    accumulate={0: _getitem_add_into})
scatter_add = primitive(_scatter_add, vjp0=lambda g, ans, h, idx, shape: getitem(g, idx))


def _concatenate(axis, *arrays):
    return np.concatenate(arrays, axis=axis)


def _concatenate_vjp(i, g, ans, axis, *arrays):
    start = int(np.sum([_shape(a)[axis] for a in arrays[:i - 1]], dtype=int))
    stop = start + _shape(arrays[i - 1])[axis]
    idx = [slice(None)] * len(_shape(g))
    idx[axis] = slice(start, stop)
    return getitem(g, tuple(idx))


_concatenate_p = primitive(_concatenate, vjpn=_concatenate_vjp)


def concatenate(arrays, axis=0):
    """Join arrays along an existing axis; the cotangent of each is its slice of the output's."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concatenate: `arrays` must be a non-empty sequence")
    axis = axis % len(_shape(arrays[0])) if len(_shape(arrays[0])) else axis
    return _concatenate_p(axis, *arrays)


def stack(arrays, axis=0):
    """Join arrays along a new axis (reshape each, then :func:`concatenate`)."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack: `arrays` must be a non-empty sequence")
    shape = _shape(arrays[0])
    if any(_shape(a) != shape for a in arrays):
        raise ValueError(f"stack: all arrays must have the same shape, got {[_shape(a) for a in arrays]}")
    axis = axis % (len(shape) + 1)
    new = shape[:axis] + (1,) + shape[axis:]
    return concatenate([reshape(a, new) for a in arrays], axis=axis)


# -- products ------------------------------------------------------------------------------------------------------
def _matmul_vjp0(g, ans, a, b):
    na, nb = len(_shape(a)), len(_shape(b))
    if na == 1 and nb == 1:
        return multiply(g, b)
    if na == 1:  # (k,) @ (..., k, n) -> (..., n)
        return unbroadcast(reshape(matmul(b, reshape(g, _shape(g) + (1,))), _shape(g)[:-1] + (_shape(a)[0],)), a)
    if nb == 1:  # (..., m, k) @ (k,) -> (..., m)
        return unbroadcast(multiply(reshape(g, _shape(g) + (1,)), b), a)
    return unbroadcast(matmul(g, swapaxes(b)), a)


def _matmul_vjp1(g, ans, a, b):
    na, nb = len(_shape(a)), len(_shape(b))
    if na == 1 and nb == 1:
        return multiply(g, a)
    if na == 1:  # (k,) @ (..., k, n): cotangent of b is a ⊗ g
        return unbroadcast(multiply(reshape(a, (_shape(a)[0], 1)), reshape(g, _shape(g)[:-1] + (1,) + _shape(g)[-1:])), b)
    if nb == 1:  # (..., m, k) @ (k,): cotangent of b is aᵀ g summed over the batch
        return unbroadcast(reshape(matmul(swapaxes(a), reshape(g, _shape(g) + (1,))), _shape(g)[:-1] + _shape(b)), b)
    return unbroadcast(matmul(swapaxes(a), g), b)


matmul = primitive(np.matmul, vjp0=_matmul_vjp0, vjp1=_matmul_vjp1)


def dot(a, b):
    """``np.dot`` for 1-D and 2-D operands (where it equals ``matmul``)."""
    if len(_shape(a)) > 2 or len(_shape(b)) > 2 or not _shape(a) or not _shape(b):
        raise ValueError("dot: only 1-D and 2-D operands are supported; use matmul or einsum")
    return matmul(a, b)


def _einsum_parse(subscripts):
    if not isinstance(subscripts, str) or "->" not in subscripts or "." in subscripts:
        raise ValueError(f"einsum: `subscripts` must be 'ab,bc->ac' style with an explicit output, got {subscripts!r}")
    ins, out = subscripts.replace(" ", "").split("->")
    ins = ins.split(",")
    if len(ins) != 2:
        raise ValueError("einsum: exactly two operands are supported")
    for k, s in enumerate(ins):
        if len(set(s)) != len(s):
            raise ValueError(f"einsum: repeated index within one operand ({s!r}) is not supported")
        others = set(out) | set(ins[1 - k])
        if not set(s) <= others:
            raise ValueError(f"einsum: every index of {s!r} must appear in the other operand or the output")
    return ins, out


def _einsum(subscripts, a, b):
    return np.einsum(subscripts, a, b)


def _einsum_vjp(i, g, ans, subscripts, a, b):
    (sa, sb), out = _einsum_parse(subscripts)
    if i == 1:
        return _einsum_p(f"{out},{sb}->{sa}", g, b)
    return _einsum_p(f"{sa},{out}->{sb}", a, g)


_einsum_p = primitive(_einsum, vjpn=_einsum_vjp)


def einsum(subscripts, a, b):
    """Two-operand einsum with explicit output; each index of an operand appears in the other operand or the output,
    so each VJP is again such an einsum (``'ij,jk->ik'``: ḡ_a = einsum('ik,jk->ij', g, b))."""
    _einsum_parse(subscripts)
    return _einsum_p(subscripts, a, b)


# -- operators and array methods of Variable ---------------------------------------------------------------------------
# The engine's Variable defines no arithmetic; the primitive layer installs it here, once, when this module is imported
# (``import refimpl.ad`` always imports it). ``x + y`` on a Variable is exactly ``add(x, y)``, and so on.
def _install(name, method):
    method.__name__ = name
    method.__qualname__ = f"Variable.{name}"
    setattr(Variable, name, method)


_install("__add__", lambda self, o: add(self, o))
_install("__radd__", lambda self, o: add(o, self))
_install("__sub__", lambda self, o: subtract(self, o))
_install("__rsub__", lambda self, o: subtract(o, self))
_install("__mul__", lambda self, o: multiply(self, o))
_install("__rmul__", lambda self, o: multiply(o, self))
_install("__truediv__", lambda self, o: divide(self, o))
_install("__rtruediv__", lambda self, o: divide(o, self))
_install("__pow__", lambda self, o: power(self, o))
_install("__rpow__", lambda self, o: power(o, self))
_install("__matmul__", lambda self, o: matmul(self, o))
_install("__rmatmul__", lambda self, o: matmul(o, self))
_install("__neg__", lambda self: negative(self))
_install("__abs__", lambda self: abs(self))
_install("__getitem__", lambda self, idx: getitem(self, idx))
_install("reshape", lambda self, *shape: reshape(self, shape[0] if len(shape) == 1 else shape))
_install("sum", lambda self, axis=None, keepdims=False: sum(self, axis=axis, keepdims=keepdims))
_install("mean", lambda self, axis=None, keepdims=False: mean(self, axis=axis, keepdims=keepdims))
_install("transpose", lambda self, *axes: transpose(self, axes if axes else None))
_install("conj", lambda self: conj(self))
Variable.T = property(lambda self: transpose(self), doc="The transpose (all axes reversed).")
Variable.real = property(lambda self: real(self), doc="The real part.")
