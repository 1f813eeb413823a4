"""NumPy's dispatch protocols on :class:`~refimpl.ad.tape.Variable`: plain NumPy code records refimpl primitives.

NumPy hands a call to the arguments' types before computing (NEP 13 ``__array_ufunc__`` for ufuncs such as
``np.tanh`` and the operators of ``ndarray``; NEP 18 ``__array_function__`` for functions such as ``np.sum``,
``np.concatenate``, ``np.linalg.solve``). This module installs both methods onto ``Variable`` (as
:mod:`refimpl.ad.ops` installs the operators; the engine in :mod:`refimpl.ad.tape` imports nothing from here), so that
``np.tanh(x)``, ``W @ x``, ``np.sum(x, axis=0)`` on a Variable are *exactly* ``ops.tanh(x)``, ``ops.matmul(W, x)``,
``ops.sum(x, axis=0)``: the same primitive is recorded, so values, gradients and Hessian-vector products equal those of
``ops``-written code bit for bit, and nested traces (``grad`` of ``grad``) need nothing extra.

One registry, :data:`NUMPY_FUNCTIONS`, maps each supported NumPy function (a ufunc, a ufunc method such as
``np.add.reduce``, or a function) to a :class:`NumpyRule`: what it records and a short note. The linear-algebra rows
(``np.linalg.solve`` …, ``np.trace``, ``np.diagonal``, ``np.outer``) name a function of :mod:`refimpl.ad.linalg`,
looked up by name when called. Anything not in the registry raises ``TypeError`` naming the NumPy function and the
primitives that would express it; unsupported keywords (``out=``, ``where=``, ``initial=``, a ``dtype`` that would
change the result) raise too. Nothing is ever converted to a constant silently: ``np.asarray(x)`` stays an error
(``Variable.__array__``). Value queries (``np.shape``, comparisons, ``np.isfinite`` …) read the value and record
nothing, as the comparison operators of ``Variable`` do; their results are shapes, booleans, dtypes or constant arrays
(``np.zeros_like``), which carry no derivative.

The supported set is the table in docs/numpy-dispatch.md, generated from the registry by :func:`write_dispatch_table`
(``python -c "import refimpl.ad.numpy_dispatch as d; d.write_dispatch_table('docs/numpy-dispatch.md')"``); the theory
is in docs/theory/autodiff.md ("NumPy code on the tape").
"""
from __future__ import annotations

import inspect
import numbers
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from refimpl.ad import linalg, ops
from refimpl.ad.tape import Variable, getvalue

__all__ = ["NumpyRule", "NUMPY_FUNCTIONS", "supported_numpy_functions", "dispatch_table_markdown",
           "write_dispatch_table"]

#: the module the linear-algebra rows name; looked up when such a row is called, so this module does not need it
LINALG_MODULE = "refimpl.ad.linalg"


@dataclass(frozen=True)
class NumpyRule:
    """One supported NumPy function: its public ``name`` (``"numpy.tanh"``, ``"numpy.add.reduce"``), what it
    ``records`` on the tape, a short ``note``, the ``group`` of the table it is listed in, and ``call``, which takes
    NumPy's arguments and calls the primitive."""

    name: str
    records: str
    note: str
    group: str
    call: Callable
    signature: inspect.Signature = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "signature", inspect.signature(self.call))

    def __call__(self, *args, **kwargs):
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}") from None
        return self.call(*args, **kwargs)


#: numpy function (or ``(ufunc, method)``) -> NumpyRule: the one table of what NumPy calls do on Variables
NUMPY_FUNCTIONS: dict = {}

GROUPS = {
    "elementwise": "Elementwise (ufuncs; also reached by the operators of `ndarray` with a Variable operand)",
    "reductions and shapes": "Reductions, shapes, joins",
    "products": "Products",
    "linear algebra": f"Linear algebra (functions of `{LINALG_MODULE}`, looked up by name when called)",
    "value queries": "Value queries (read the value, record nothing; the results carry no derivative)",
}


def _public_name(func, method="__call__"):
    if isinstance(func, np.ufunc):
        return f"numpy.{func.__name__}" + ("" if method == "__call__" else f".{method}")
    return f"{getattr(func, '__module__', None) or 'numpy'}.{func.__name__}"  # NumPy sets the public module


def _register(func, records, note, group, method="__call__"):
    """Decorator: register ``call`` (NumPy's signature) as the rule of ``func`` (or of ``func.method``)."""
    def register(call):
        key = func if method == "__call__" else (func, method)
        if key in NUMPY_FUNCTIONS:
            raise ValueError(f"{_public_name(func, method)} is registered twice")
        NUMPY_FUNCTIONS[key] = NumpyRule(_public_name(func, method), records, note, group, call)
        return call
    return register


# -- the message for everything else -----------------------------------------------------------------------------------
#: how to express some common unsupported functions with the primitives (used in the TypeError only)
UNSUPPORTED_HINTS = {
    "numpy.cumsum": "a running sum of ops.getitem slices with ops.add, or ops.matmul with a triangular matrix of ones",
    "numpy.prod": "ops.multiply over ops.getitem slices (or ops.exp(ops.sum(ops.log(x))) for x > 0)",
    "numpy.max": "ops.maximum over ops.getitem slices", "numpy.amax": "ops.maximum over ops.getitem slices",
    "numpy.min": "ops.minimum over ops.getitem slices", "numpy.amin": "ops.minimum over ops.getitem slices",
    "numpy.clip": "ops.minimum(ops.maximum(x, lo), hi)",
    "numpy.log1p": "ops.log(1.0 + x)", "numpy.expm1": "ops.exp(x) - 1.0",
    "numpy.log2": "ops.log(x) / np.log(2.0)", "numpy.log10": "ops.log(x) / np.log(10.0)",
    "numpy.exp2": "ops.power(2.0, x)", "numpy.tan": "ops.sin(x) / ops.cos(x)",
    "numpy.sinh": "(ops.exp(x) - ops.exp(-x)) / 2", "numpy.cosh": "(ops.exp(x) + ops.exp(-x)) / 2",
    "numpy.float_power": "ops.power", "numpy.tensordot": "ops.einsum", "numpy.inner": "ops.einsum or ops.matmul",
    "numpy.vdot": "ops.sum(ops.conj(a) * b)", "numpy.diff": "ops.getitem slices and ops.subtract",
    "numpy.moveaxis": "ops.transpose", "numpy.linalg.norm": "ops.sqrt(ops.sum(x * x)) for a real x",
    "numpy.var": "ops.mean((x - ops.mean(x)) ** 2)", "numpy.std": "ops.sqrt of the variance",
}


def _unsupported(name: str, why: str = "") -> TypeError:
    hint = UNSUPPORTED_HINTS.get(name, "add, multiply, exp, log, sum, matmul, einsum, where, getitem, concatenate")
    return TypeError(f"{name} is not supported on refimpl Variables{why}; express it with refimpl.ad.ops primitives "
                     f"such as {hint} (the supported NumPy functions: refimpl.ad.numpy_dispatch."
                     f"supported_numpy_functions(), docs/numpy-dispatch.md)")


_KEYWORD_REASONS = {
    "out": "a Variable is immutable; use the returned value, e.g. `y = np.tanh(x)`, "
           "not `np.tanh(x, out=y)` or `y += x`",
    "where": "mask explicitly with np.where(mask, x, fill)",
    "initial": "add the initial value explicitly",
}


def _keyword_error(name, key, value=None):
    reason = _KEYWORD_REASONS.get(key, f"only NumPy's default is accepted, got {value!r}"[:160])
    return TypeError(f"{name}: the keyword `{key}` is not supported on refimpl Variables ({reason})")


def _refuse(name, **given):
    """TypeError for a keyword given a value other than NumPy's default (None, or True for ``where``)."""
    for key, value in given.items():
        default = True if key == "where" else None
        if not (value is default or value is np._NoValue):
            raise _keyword_error(name, key, value)


def _same_dtype_only(name, dtype, *arrays):
    """Accept ``dtype`` only when it is the dtype the result has anyway (e.g. ``dtype=x.dtype``): then it is a no-op."""
    if dtype is None or dtype is np._NoValue:
        return
    natural = np.result_type(*(getvalue(a) for a in arrays))
    if np.dtype(dtype) != natural:
        raise TypeError(f"{name}: dtype={np.dtype(dtype)} would change the result's dtype ({natural}); refimpl "
                        "differentiates float64/complex128 and never casts silently")


# -- elementwise ufuncs ------------------------------------------------------------------------------------------------
_UFUNC_DEFAULTS = {"where": True, "casting": "same_kind", "order": "K", "dtype": None, "subok": True,
                   "signature": None}


def _check_ufunc_kwargs(name, kwargs):
    for key, value in kwargs.items():
        default = _UFUNC_DEFAULTS.get(key, ())
        if key == "out" or not (value is default or (isinstance(value, (bool, np.bool_, str)) and value == default)):
            raise _keyword_error(name, key, value)


def _ufunc_rule(ufunc, primitive: str, note=""):
    """Register ``ufunc`` as the ops function named ``primitive`` (same arity; keywords checked by the protocol)."""
    function = getattr(ops, primitive)
    call = (lambda x: function(x)) if ufunc.nin == 1 else (lambda x1, x2: function(x1, x2))
    call.__name__ = ufunc.__name__
    _register(ufunc, f"ops.{primitive}", note, "elementwise")(call)


_ufunc_rule(np.add, "add", "operator `+`")
_ufunc_rule(np.subtract, "subtract", "operator `-`")
_ufunc_rule(np.multiply, "multiply", "operator `*`")
_ufunc_rule(np.divide, "divide", "`np.true_divide`, operator `/`")
_ufunc_rule(np.power, "power", "operator `**`; d/dy uses log x, with 0 where x = 0")
_ufunc_rule(np.negative, "negative", "unary `-`")
_ufunc_rule(np.exp, "exp")
_ufunc_rule(np.log, "log")
_ufunc_rule(np.sqrt, "sqrt")
_ufunc_rule(np.sin, "sin")
_ufunc_rule(np.cos, "cos")
_ufunc_rule(np.tanh, "tanh")
_ufunc_rule(np.absolute, "abs", "`np.abs`, `abs(x)`; subgradient 0 at 0")
_ufunc_rule(np.maximum, "maximum", "ties split the cotangent evenly (docs/theory/autodiff.md §4)")
_ufunc_rule(np.minimum, "minimum", "ties split the cotangent evenly (docs/theory/autodiff.md §4)")
_ufunc_rule(np.conjugate, "conj", "`np.conj`")
_ufunc_rule(np.matmul, "matmul", "operator `@`")


@_register(np.positive, "nothing (returns x)", "unary `+`", "elementwise")
def _positive(x):
    return x


@_register(np.square, "ops.multiply(x, x)", "the value x·x equals NumPy's square bit for bit", "elementwise")
def _square(x):
    return ops.multiply(x, x)


@_register(np.add, "ops.sum(a, axis)", "only `axis` and `keepdims`", "reductions and shapes", method="reduce")
def _add_reduce(array, axis=0, dtype=None, out=None, keepdims=False, initial=np._NoValue, where=True):
    _refuse("numpy.add.reduce", out=out, initial=initial, where=where)
    _same_dtype_only("numpy.add.reduce", dtype, array)
    return ops.sum(array, axis=axis, keepdims=bool(keepdims))


# -- array functions: reductions, shapes, joins ------------------------------------------------------------------------
def _keepdims(keepdims):
    return False if keepdims is np._NoValue else bool(keepdims)


@_register(np.sum, "ops.sum", "`axis`, `keepdims`; `dtype` only if it is the result's dtype", "reductions and shapes")
def _sum(a, axis=None, dtype=None, out=None, keepdims=np._NoValue, initial=np._NoValue, where=np._NoValue):
    _refuse("numpy.sum", out=out, initial=initial, where=where)
    _same_dtype_only("numpy.sum", dtype, a)
    return ops.sum(a, axis=axis, keepdims=_keepdims(keepdims))


@_register(np.mean, "ops.mean", "sum divided by the count; `axis`, `keepdims`", "reductions and shapes")
def _mean(a, axis=None, dtype=None, out=None, keepdims=np._NoValue, *, where=np._NoValue):
    _refuse("numpy.mean", out=out, where=where)
    _same_dtype_only("numpy.mean", dtype, a, 1.0)
    return ops.mean(a, axis=axis, keepdims=_keepdims(keepdims))


def _c_order_only(name, order):
    if order not in ("C", None):
        raise TypeError(f"{name}: order={order!r} is not supported on refimpl Variables (C order only)")


@_register(np.reshape, "ops.reshape", "C order only", "reductions and shapes")
def _reshape(a, /, shape=None, order="C", *, newshape=None, copy=None):
    _c_order_only("numpy.reshape", order)
    return ops.reshape(a, shape if shape is not None else newshape)


@_register(np.ravel, "ops.reshape(a, (-1,))", "C order only", "reductions and shapes")
def _ravel(a, order="C"):
    _c_order_only("numpy.ravel", order)
    return ops.reshape(a, (-1,))


@_register(np.squeeze, "ops.reshape", "to the shape without the length-1 axes", "reductions and shapes")
def _squeeze(a, axis=None):
    shape = np.shape(getvalue(a))
    return ops.reshape(a, np.squeeze(np.empty(shape, dtype=np.bool_), axis=axis).shape)


@_register(np.expand_dims, "ops.reshape", "to the shape with the new length-1 axes", "reductions and shapes")
def _expand_dims(a, axis):
    shape = np.shape(getvalue(a))
    return ops.reshape(a, np.expand_dims(np.empty(shape, dtype=np.bool_), axis).shape)


@_register(np.transpose, "ops.transpose", "", "reductions and shapes")
def _transpose(a, axes=None):
    return ops.transpose(a, axes)


@_register(np.swapaxes, "ops.transpose", "as `ops.swapaxes`", "reductions and shapes")
def _swapaxes(a, axis1, axis2):
    return ops.swapaxes(a, axis1, axis2)


@_register(np.broadcast_to, "ops.broadcast_to", "the result is a copy (a Variable is immutable)",
           "reductions and shapes")
def _broadcast_to(array, shape, subok=False):
    return ops.broadcast_to(array, shape)


@_register(np.where, "ops.where", "three-argument form; the condition is a constant", "reductions and shapes")
def _where(condition, x=None, y=None):
    if x is None or y is None:
        raise TypeError("numpy.where: only the three-argument form where(condition, x, y) is supported on refimpl "
                        "Variables (the one-argument form returns indices)")
    if isinstance(condition, Variable):
        raise TypeError("numpy.where: the condition must be a constant boolean array, got a Variable "
                        "(compare it first, e.g. np.where(x > 0, x, 0.0))")
    return ops.where(condition, x, y)


@_register(np.concatenate, "ops.concatenate", "`axis` an integer", "reductions and shapes")
def _concatenate(arrays, /, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _refuse("numpy.concatenate", out=out)
    if axis is None:
        raise TypeError("numpy.concatenate: axis=None is not supported on refimpl Variables (flatten each with "
                        "np.reshape(a, -1) first)")
    arrays = list(arrays)
    _same_dtype_only("numpy.concatenate", dtype, *arrays)
    return ops.concatenate(arrays, axis=axis)


@_register(np.stack, "ops.stack", "reshape each, then ops.concatenate", "reductions and shapes")
def _stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    _refuse("numpy.stack", out=out)
    arrays = list(arrays)
    _same_dtype_only("numpy.stack", dtype, *arrays)
    return ops.stack(arrays, axis=axis)


@_register(np.real, "ops.real", "also `x.real`", "elementwise")
def _real(val):
    return ops.real(val)


@_register(np.imag, "ops.imag", "", "elementwise")
def _imag(val):
    return ops.imag(val)


# -- products ----------------------------------------------------------------------------------------------------------
@_register(np.dot, "ops.dot", "1-D and 2-D operands (where dot is matmul)", "products")
def _dot(a, b, out=None):
    _refuse("numpy.dot", out=out)
    try:
        return ops.dot(a, b)
    except ValueError as exc:
        raise TypeError(f"numpy.dot: {exc}") from None


@_register(np.einsum, "ops.einsum", "two operands, explicit output ('ij,jk->ik'), no index repeated within one "
                                    "operand", "products")
def _einsum(*operands, out=None, optimize=False, dtype=None, order="K", casting="safe"):
    _refuse("numpy.einsum", out=out, dtype=dtype)
    if optimize is not False or order != "K" or casting != "safe":
        raise TypeError("numpy.einsum: the keywords `optimize`, `order`, `casting` are not supported on refimpl "
                        "Variables")
    if len(operands) != 3 or not isinstance(operands[0], str):
        raise TypeError("numpy.einsum: refimpl Variables support einsum(subscripts, a, b) with two operands")
    try:
        ops._einsum_parse(operands[0])
    except ValueError as exc:
        raise TypeError(f"numpy.einsum: not supported on refimpl Variables: {exc}") from None
    return ops.einsum(*operands)


# -- linear algebra: by name, from refimpl.ad.linalg -------------------------------------------------------------------
def _linalg_function(numpy_name, attr):
    """refimpl.ad.linalg.<attr>, looked up at call time (a function removed from the module makes the call
    unsupported, with the same TypeError as any function outside the table)."""
    function = getattr(linalg, attr, None)
    if function is None:
        raise _unsupported(numpy_name, f" (its rule names {LINALG_MODULE}.{attr}, which this installation lacks)")
    return function


def _linalg_rule(func, attr, note="", refused=()):
    name = _public_name(func)

    def call(*args, **kwargs):
        _refuse(name, **{k: kwargs.pop(k) for k in refused if k in kwargs})
        return _linalg_function(name, attr)(*args, **kwargs)

    call.__name__ = attr
    call.__signature__ = inspect.signature(func)
    _register(func, f"{LINALG_MODULE.removeprefix('refimpl.ad.')}.{attr}", note, "linear algebra")(call)


_linalg_rule(np.linalg.solve, "solve")
_linalg_rule(np.linalg.inv, "inv")
_linalg_rule(np.linalg.det, "det")
_linalg_rule(np.linalg.slogdet, "slogdet")
_linalg_rule(np.linalg.cholesky, "cholesky")
_linalg_rule(np.linalg.eigh, "eigh", "symmetric input, distinct eigenvalues")
_linalg_rule(np.trace, "trace", refused=("dtype", "out"))
_linalg_rule(np.diagonal, "diagonal")
_linalg_rule(np.outer, "outer", refused=("out",))


# -- value queries: read the value, record nothing ---------------------------------------------------------------------
def _query(func, note, method="__call__"):
    def call(*args, **kwargs):
        return func(*(getvalue(a) for a in args), **{k: getvalue(v) for k, v in kwargs.items()})

    call.__name__ = func.__name__
    try:
        call.__signature__ = inspect.signature(func)
    except (TypeError, ValueError):  # a ufunc or a C function without a signature: NumPy checks the arguments
        pass
    _register(func, "nothing", note, "value queries", method)(call)


for _f in (np.shape, np.ndim, np.size):
    _query(_f, "as on the value")
for _f in (np.iscomplexobj, np.isrealobj, np.result_type):
    _query(_f, "from the value's dtype")
for _f in (np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal):
    _query(_f, "a boolean array, as the comparison operators of Variable")
for _f in (np.isfinite, np.isnan, np.isinf):
    _query(_f, "a boolean array")
for _f in (np.zeros_like, np.ones_like):
    _query(_f, "a constant array of the value's shape and dtype (its entries do not depend on x)")
del _f


# -- the two protocol methods, installed onto Variable -----------------------------------------------------------------
def _foreign(a):
    """An operand of a third array type that has its own ufunc protocol (let NumPy ask it instead)."""
    return not isinstance(a, (Variable, np.ndarray, np.generic, numbers.Number)) and \
        getattr(type(a), "__array_ufunc__", None) is not None


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """NEP 13: ``np.<ufunc>(..., x, ...)`` with a Variable operand (also ``ndarray (op) Variable``)."""
    if any(_foreign(a) for a in inputs):
        return NotImplemented
    name = _public_name(ufunc, method)
    rule = NUMPY_FUNCTIONS.get(ufunc if method == "__call__" else (ufunc, method))
    if rule is None:
        raise _unsupported(name)
    if method == "__call__":
        _check_ufunc_kwargs(name, kwargs)  # only NumPy's defaults remain: nothing to pass on
        return rule.call(*inputs)  # NumPy has checked the number of operands
    return rule(*inputs, **kwargs)


def _array_function(self, func, types, args, kwargs):
    """NEP 18: ``np.<function>(..., x, ...)`` with a Variable among the array arguments."""
    if not all(issubclass(t, (Variable, np.ndarray)) for t in types):
        return NotImplemented
    rule = NUMPY_FUNCTIONS.get(func)
    if rule is None:
        raise _unsupported(_public_name(func))
    return rule(*args, **kwargs)


_array_ufunc.__name__ = _array_ufunc.__qualname__ = "__array_ufunc__"
_array_function.__name__ = _array_function.__qualname__ = "__array_function__"
Variable.__array_ufunc__ = _array_ufunc
Variable.__array_function__ = _array_function


# -- the documented table, generated from the registry -----------------------------------------------------------------
def supported_numpy_functions() -> tuple:
    """The registry's rules, grouped as in docs/numpy-dispatch.md and sorted by name within a group."""
    order = list(GROUPS)
    return tuple(sorted(NUMPY_FUNCTIONS.values(), key=lambda r: (order.index(r.group), r.name)))


_PREAMBLE = """\
# NumPy functions on refimpl Variables

<!-- generated from refimpl.ad.numpy_dispatch.NUMPY_FUNCTIONS by
     `python -c "import refimpl.ad.numpy_dispatch as d; d.write_dispatch_table('docs/numpy-dispatch.md')"`;
     do not edit by hand (tests/test_ad_numpy_dispatch.py checks that this file equals the generated text) -->

Inside `refimpl.ad.grad`, `vjp`, `jacobian` and `hvp` the traced arguments are `Variable`s, and NumPy hands every call
on them to `refimpl.ad.numpy_dispatch` (NumPy's `__array_ufunc__` and `__array_function__` protocols). Each function
below records the same primitive as the `refimpl.ad.ops` function it names, so code written with plain NumPy gets the
values, gradients and Hessian-vector products of the `ops`-written code, bit for bit.
Theory: docs/theory/autodiff.md ("NumPy code on the tape").

Everything else raises `TypeError` naming the NumPy function and primitives that would express it, and so do:
the keyword `out=` (a Variable is immutable; `y += x` on an ndarray `y` is `np.add(y, x, out=y)`), `where=`,
`initial=`, a `dtype=` that would change the result's dtype, and the ufunc methods other than `np.add.reduce`
(`np.add.accumulate`, `np.multiply.outer`, …). A Variable is never converted to a constant array: `np.asarray(x)`,
`np.array([x, y])` and `float(x)` raise (use `np.stack`, or `refimpl.ad.getvalue` to leave the tape deliberately).
"""


def dispatch_table_markdown() -> str:
    """The text of docs/numpy-dispatch.md: one table per group of the registry."""
    rules = supported_numpy_functions()
    lines = [_PREAMBLE]
    lines.append(f"{len(rules)} NumPy functions are supported.\n")
    for group, title in GROUPS.items():
        lines += [f"## {title}", "", "| NumPy | records | note |", "|---|---|---|"]
        lines += [f"| `{r.name}` | `{r.records}` | {r.note} |" for r in rules if r.group == group]
        lines.append("")
    return "\n".join(lines)


def write_dispatch_table(path) -> None:
    """Write :func:`dispatch_table_markdown` to ``path`` (docs/numpy-dispatch.md)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(dispatch_table_markdown())

