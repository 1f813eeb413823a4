"""Public differentiation functions: ``grad``, ``value_and_grad``, ``vjp``, ``jacobian``, ``hvp``.

Inputs are validated here, at the entry point: arrays or scalars of dtype float64 or complex128 (integer/bool arrays and
Python numbers are promoted to float64, exactly: integers above 2**53 in magnitude are refused; lower-precision floats are
refused rather than silently changed), all finite.
"""
from __future__ import annotations

import numbers

import numpy as np

from refimpl.ad import ops
from refimpl.ad.tape import Node, Variable, backward, getvalue, new_trace_id

_ACCEPTED = (np.dtype(np.float64), np.dtype(np.complex128))
_EXACT_INTEGER_BOUND = 2 ** 53  # every integer of magnitude ≤ 2**53 is a float64, exactly


def as_input(x, name: str):
    """Validate one differentiation input and return it as a float64/complex128 ndarray (or the Variable itself when
    called inside an outer trace, for higher-order derivatives)."""
    if isinstance(x, Variable):
        value = getvalue(x)
        if not np.all(np.isfinite(value)):
            raise ValueError(f"`{name}` contains NaN or inf")
        return x
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a float64/complex128 array or a number, got a bool")
    if isinstance(x, numbers.Integral) and not isinstance(x, np.generic):
        if abs(x) > _EXACT_INTEGER_BOUND:
            raise ValueError(f"`{name}` is an integer of magnitude above 2**53, which float64 cannot represent "
                             f"exactly; convert it deliberately")
        x = np.asarray(x, dtype=np.float64)
    elif isinstance(x, numbers.Number) and not isinstance(x, np.generic):
        x = np.asarray(x, dtype=np.complex128 if isinstance(x, complex) else np.float64)
    elif isinstance(x, (np.ndarray, np.generic)):
        x = np.asarray(x)
        if x.dtype.kind in "iu":
            x = _exact_float(x, name)
        elif x.dtype not in _ACCEPTED:
            raise TypeError(f"`{name}` has dtype {x.dtype}; refimpl differentiates float64 or complex128 only "
                            f"(cast explicitly, e.g. `{name}.astype(np.float64)`)")
    else:
        raise TypeError(f"`{name}` must be a NumPy array or a number, got {type(x).__name__}")
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(np.atleast_1d(x)))[0]
        raise ValueError(f"`{name}` contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    return x


def _exact_float(x, name):
    """An integer array as float64 — exact for |x| ≤ 2**53, a promotion, never a rounding: larger integers (which
    float64 cannot hold exactly) are refused."""
    if x.size and (np.any(x > _EXACT_INTEGER_BOUND) or np.any(x < -_EXACT_INTEGER_BOUND)):
        raise ValueError(f"`{name}` holds integers of magnitude above 2**53, which float64 cannot represent exactly; "
                         f"convert them deliberately")
    return x.astype(np.float64)


def _check_callable(f):
    if not callable(f):
        raise TypeError(f"`f` must be callable, got {type(f).__name__}")


def _check_argnum(argnum, args):
    if not isinstance(argnum, (int, np.integer)) or isinstance(argnum, bool):
        raise TypeError(f"`argnum` must be an int, got {type(argnum).__name__}")
    if not -len(args) <= argnum < len(args):
        raise ValueError(f"`argnum`={argnum} is out of range for {len(args)} positional argument(s)")
    return int(argnum) % len(args)


def _trace(f, args, argnums):
    """Evaluate f with ``args[argnums]`` on a fresh trace. Returns (output, start nodes, trace id)."""
    trace = new_trace_id()
    args = list(args)
    starts = []
    for i in argnums:
        args[i] = as_input(args[i], f"args[{i}]")
        node = Node({}, (), {}, args[i], [])
        starts.append(node)
        args[i] = Variable(args[i], trace, node)
    return f(*args), starts, trace


def _cotangent(g, x):
    """The final cotangent for input ``x``: zeros if the output did not depend on it, real part for a real input."""
    if g is None:
        return np.zeros(np.shape(getvalue(x)), dtype=getvalue(x).dtype) if not isinstance(x, Variable) \
            else x * 0.0
    if not np.iscomplexobj(getvalue(x)) and np.iscomplexobj(getvalue(g)):
        g = ops.real(g)
    if not isinstance(g, Variable):
        g = np.asarray(g, dtype=getvalue(x).dtype)
        if g.shape != np.shape(x):
            raise AssertionError(f"internal error: cotangent shape {g.shape} != input shape {np.shape(x)}")
    return g


def _output_value(out, trace):
    """(value, end node) of f's output, or (value, None) when it does not depend on the traced input."""
    raw = getvalue(out)
    if raw is None or isinstance(raw, (str, bytes)) or np.asarray(raw).dtype.kind not in "biufc":
        raise TypeError(f"`f` must return a number or a numeric array, got {type(raw).__name__}")
    if isinstance(out, Variable) and out._trace == trace:
        return out._value, out._node
    return out, None


def vjp(f, *args):
    """Evaluate ``f(*args)`` and return ``(value, vjp_fn)`` where ``vjp_fn(g)`` is the tuple of cotangents
    ``(J_0ᵀ g, J_1ᵀ g, …)`` for every positional argument (J_i the Jacobian of f w.r.t. ``args[i]``)."""
    _check_callable(f)
    if not args:
        raise ValueError("vjp needs at least one positional argument to differentiate")
    out, starts, trace = _trace(f, args, range(len(args)))
    value, end = _output_value(out, trace)
    inputs = [a if isinstance(a, Variable) else as_input(a, f"args[{i}]") for i, a in enumerate(args)]

    def vjp_fn(g):
        if not isinstance(g, Variable):
            g = as_input(g, "g")
        if np.shape(getvalue(g)) != np.shape(getvalue(value)):
            raise ValueError(f"`g` has shape {np.shape(getvalue(g))}, the output has shape {np.shape(getvalue(value))}")
        cots = backward(end, g, starts, add=ops.add) if end is not None else [None] * len(starts)
        return tuple(_cotangent(c, x) for c, x in zip(cots, inputs))

    return value, vjp_fn


def value_and_grad(f, argnum: int = 0):
    """``value_and_grad(f)(*args)`` → ``(f(*args), ∇_{args[argnum]} f)`` for a scalar-valued f.

    A complex scalar output is allowed; for holomorphic f it gives f'(z) (see :mod:`refimpl.ad.tape`).
    """
    _check_callable(f)

    def value_and_grad_f(*args):
        i = _check_argnum(argnum, args)
        out, starts, trace = _trace(f, args, [i])
        value, end = _output_value(out, trace)
        shape = np.shape(getvalue(value))
        if shape != ():
            raise ValueError(f"grad needs a scalar-valued `f`; it returned shape {shape} (use vjp or jacobian)")
        if not np.isfinite(getvalue(value)):
            raise ValueError(f"`f` returned a non-finite value ({getvalue(value)}) at the given point")
        x = starts[0].ans
        with np.errstate(over="ignore", invalid="ignore"):
            g = backward(end, 1.0, starts, add=ops.add)[0] if end is not None else None
        g = _cotangent(g, x)
        finite = np.isfinite(getvalue(g))
        if not np.all(finite):
            bad = np.unravel_index(int(np.argmax(~finite)), np.shape(finite))
            raise ValueError(f"the gradient became non-finite in the backward pass (first at index "
                             f"{tuple(int(i) for i in bad)}) although `f` returned a finite value: an overflow of "
                             f"the chain-rule products, or a derivative that is infinite at the given point")
        return value, g

    return value_and_grad_f


def grad(f, argnum: int = 0):
    """``grad(f)(*args)``: the gradient of a scalar-valued f w.r.t. ``args[argnum]``, same shape and dtype."""
    vg = value_and_grad(f, argnum)

    def grad_f(*args):
        return vg(*args)[1]

    return grad_f


def jacobian(f, argnum: int = 0):
    """``jacobian(f)(*args)``: dense Jacobian of shape ``out.shape + in.shape`` (one VJP per output entry: small
    problems only)."""
    _check_callable(f)

    def jacobian_f(*args):
        i = _check_argnum(argnum, args)
        value, pullback = vjp(lambda x: f(*args[:i], x, *args[i + 1:]), args[i])
        vshape = np.shape(getvalue(value))
        dtype = np.result_type(getvalue(value), np.float64)
        rows = []
        for k in range(int(np.prod(vshape, dtype=int))):
            e = np.zeros(vshape, dtype=dtype)
            e[np.unravel_index(k, vshape)] = 1.0
            rows.append(pullback(e)[0])
        xshape = np.shape(getvalue(args[i]))
        if not rows:  # an empty output: the Jacobian is the empty array of shape out.shape + in.shape
            return np.zeros(vshape + xshape, dtype=np.result_type(dtype, getvalue(as_input(args[i], f"args[{i}]"))))
        return ops.reshape(ops.stack(rows), vshape + xshape)

    return jacobian_f


def hvp(f, argnum: int = 0):
    """``hvp(f)(*args, v)``: the Hessian-vector product ∇²f(x)·v with x = ``args[argnum]``, by reverse-over-reverse
    (the gradient of x ↦ ⟨∇f(x), v⟩). For complex x it is the product with the (unconjugated) complex Hessian."""
    _check_callable(f)

    def hvp_f(*args_and_v):
        if len(args_and_v) < 2:
            raise ValueError("hvp(f)(*args, v) needs the point and the direction `v`")
        *args, v = args_and_v
        i = _check_argnum(argnum, args)
        v = as_input(v, "v")
        if np.shape(getvalue(v)) != np.shape(getvalue(args[i])):
            raise ValueError(f"`v` has shape {np.shape(getvalue(v))}, args[{i}] has shape {np.shape(getvalue(args[i]))}")
        g = grad(f, i)

        def directional(*a):
            return ops.sum(ops.multiply(g(*a), v))

        return grad(directional, i)(*args)

    return hvp_f
