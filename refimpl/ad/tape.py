"""The tape: variables, nodes, primitives and the backward pass.

This is the whole reverse-mode engine; it knows nothing of what the primitives compute, and it imports only NumPy.
The primitive layer (:mod:`refimpl.ad.ops`) is built on this module and never the reverse: it installs the arithmetic
operators and array methods onto :class:`Variable` (the pattern of HIPS autograd's ``numpy_boxes.py``), and the caller
of :func:`backward` passes in the primitive that sums two cotangents.

* A :class:`Variable` wraps a value (an ``ndarray``, or a ``Variable`` of an *outer* trace) together with the
  :class:`Node` that produced it and the id of the trace it belongs to.
* A *primitive* (:func:`primitive`) is a plain NumPy function plus one VJP rule per differentiable argument. Called on
  Variables it unwraps the arguments of the innermost trace, evaluates itself on the unwrapped values (recursively, so an
  outer trace records the same call), and wraps the result in a new node whose parents are the argument nodes.
* :func:`backward` walks the nodes reachable from the output in reverse topological order and accumulates cotangents
  with the ``add`` it is given (a primitive, so sums of Variable cotangents are recorded on outer traces). The VJP
  rules are written with primitives, so while an inner trace is differentiated the cotangent computation is itself
  recorded on every outer trace: ``grad(grad(f))`` and Hessian-vector products need nothing extra.

This is the design of HIPS autograd (``tracer.py``/``core.py``) and micrograd, reduced to what refimpl needs.

Complex convention (as JAX): a VJP is the plain transpose of the (complex-linear) JVP, without conjugation. For a
holomorphic f, ``grad(f)(z) = f'(z)``; for a real-valued f of a complex z = x + iy it is ``∂f/∂x − i ∂f/∂y``.
The conventions are written out in docs/theory/autodiff.md.
"""
from __future__ import annotations

import itertools

import numpy as np

_trace_ids = itertools.count(1)


def new_trace_id() -> int:
    """A fresh trace id; later traces are nested inside earlier ones (higher id = inner)."""
    return next(_trace_ids)


class Node:
    """One recorded primitive application: the VJP rules and the parent nodes they feed."""

    __slots__ = ("vjps", "args", "kwargs", "ans", "parents", "accumulate")

    def __init__(self, vjps, args, kwargs, ans, parents, accumulate=None):
        self.vjps = vjps  # {argnum: rule(g, ans, *args, **kwargs) -> cotangent of args[argnum]}
        self.args = args  # argument values, unwrapped at this node's trace
        self.kwargs = kwargs
        self.ans = ans  # output value, unwrapped at this node's trace
        self.parents = parents  # [(argnum, parent Node)]
        self.accumulate = accumulate  # {argnum: add_into(buf, g, *args, **kwargs)} in-place fast paths, or None


class Variable:
    """A value on the tape.

    The arithmetic operators (``+ - * / ** @``, unary ``-``, ``abs``, indexing), the properties ``T`` and ``real`` and
    the methods ``reshape``, ``sum``, ``mean``, ``transpose`` and ``conj`` are installed onto this class by
    :mod:`refimpl.ad.ops`, which ``import refimpl.ad`` always loads; see that module for the functions. NumPy's dispatch
    protocols (``__array_ufunc__``, ``__array_function__``: ``np.tanh(x)``, ``np.sum(x)``) are installed by
    :mod:`refimpl.ad.numpy_dispatch`, also loaded by ``import refimpl.ad``.
    """

    __slots__ = ("_value", "_node", "_trace")
    __array_priority__ = 100.0  # ndarray (op) Variable defers to Variable.__r<op>__

    def __init__(self, value, trace, node):
        self._value = value
        self._node = node
        self._trace = trace

    # -- array attributes ------------------------------------------------------------------------------------------
    @property
    def value(self):
        """The wrapped value: an ndarray, or a Variable of an outer trace during higher-order differentiation."""
        return self._value

    shape = property(lambda self: self._value.shape)
    ndim = property(lambda self: self._value.ndim)
    size = property(lambda self: self._value.size)
    dtype = property(lambda self: self._value.dtype)

    def __len__(self):
        return len(self._value)

    def __repr__(self):
        return f"Variable({getvalue(self)!r}, trace={self._trace})"

    def __bool__(self):
        raise TypeError("the truth value of a Variable is undefined: branch on getvalue(x) explicitly")

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a Variable cannot be converted to an ndarray inside a traced function "
                        "(use refimpl.ad.ops functions, or getvalue() to leave the tape deliberately)")

    def __pos__(self):
        return self

    # comparisons act on values and return plain boolean arrays (they are not differentiable)
    def __lt__(self, o): return getvalue(self) < getvalue(o)
    def __le__(self, o): return getvalue(self) <= getvalue(o)
    def __gt__(self, o): return getvalue(self) > getvalue(o)
    def __ge__(self, o): return getvalue(self) >= getvalue(o)


def getvalue(x):
    """Strip every trace: the plain ndarray (or scalar) inside ``x``."""
    while isinstance(x, Variable):
        x = x._value
    return x


def primitive(fun, vjpn=None, accumulate=None, **vjps):
    """Make ``fun`` a taped primitive.

    Each keyword ``vjp<i>`` is the VJP rule of positional argument ``i``: ``rule(g, ans, *args, **kwargs)`` returns the
    cotangent of ``args[i]`` (already reduced to its shape). Rules are written with primitives, so they are themselves
    differentiable. Arguments without a rule are constants (passing a Variable there is a ``TypeError``).
    ``vjpn(i, g, ans, *args, **kwargs)`` is one rule for every positional argument (variadic primitives).
    ``accumulate`` (optional) maps an argument number to ``add_into(buf, g, *args, **kwargs)``, which adds that
    argument's cotangent into the array ``buf`` in place. :func:`backward` uses it for plain-array cotangents (first
    order) so that e.g. N reads ``x[n]`` cost O(N + size) instead of N full-size scatter arrays; the rule stays the
    definition (and the path for Variable cotangents, i.e. higher order).
    """
    rules = {int(k[3:]): v for k, v in vjps.items()}

    def rule_of(i):
        if i in rules:
            return rules[i]
        if vjpn is None:
            raise TypeError(f"{fun.__name__}: argument {i} is not differentiable")
        return lambda g, ans, *a, **kw: vjpn(i, g, ans, *a, **kw)

    def wrapped(*args, **kwargs):
        traces = [a._trace for a in args if isinstance(a, Variable)]
        if not traces:
            return fun(*args, **kwargs)
        top = max(traces)
        argvals = list(args)
        parents, node_rules = [], {}
        for i, a in enumerate(args):
            if isinstance(a, Variable) and a._trace == top:
                argvals[i] = a._value
                node_rules[i] = rule_of(i)
                parents.append((i, a._node))
        ans = wrapped(*argvals, **kwargs)  # records the same call on outer traces, if any
        return Variable(ans, top, Node(node_rules, tuple(argvals), kwargs, ans, parents, accumulate))

    wrapped.__name__ = fun.__name__
    wrapped.__qualname__ = fun.__name__
    wrapped.__doc__ = fun.__doc__
    wrapped.fun = fun
    wrapped.vjps = rules
    return wrapped


def _toposort(end):
    """Nodes reachable from ``end``, each after every node that consumes it (Kahn's algorithm on child counts)."""
    n_children, stack, seen = {}, [end], {id(end)}
    while stack:
        for _, parent in stack.pop().parents:
            n_children[id(parent)] = n_children.get(id(parent), 0) + 1
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    ready, order = [end], []
    while ready:
        node = ready.pop()
        order.append(node)
        for _, parent in node.parents:
            n_children[id(parent)] -= 1
            if n_children[id(parent)] == 0:
                ready.append(parent)
    return order


# -- fast path: in-place accumulation of plain-array cotangents ---------------------------------------------------------
# A cotangent the backward pass owns (a _Buffer) is summed into in place instead of by the ``add`` primitive, and a node
# whose primitive declares ``accumulate`` (indexing) adds its cotangent into that buffer directly, so N reads x[n] cost
# O(N + size) instead of N full-size scatter arrays. Only plain arrays take this path (first order); Variable cotangents
# (higher order) always go through ``add`` so that outer traces record the sum. The VJP rule stays the definition: the
# fast path adds the same terms (with an index repeated within one read, the partial sums may associate differently).


class _Buffer:
    """A cotangent owned by the backward pass and accumulated in place (no other reference to ``array`` exists)."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


def _add_cotangent(cot, key, g, add):
    """cot[key] += g: in place into an owned buffer when the types allow it, else with the ``add`` primitive (which
    records on outer traces when g or the running sum is a Variable)."""
    existing = cot.get(key)
    if existing is None:
        cot[key] = g
    elif (isinstance(existing, _Buffer) and not isinstance(g, Variable) and np.shape(g) == existing.array.shape
          and np.result_type(existing.array, g) == existing.array.dtype):
        existing.array += g
    else:
        cot[key] = add(existing.array if isinstance(existing, _Buffer) else existing, g)


def _buffer_for(cot, key, like):
    """The owned buffer for cot[key] (shape and real/complex kind of ``like``), created with the running sum if any;
    None if the running sum is a Variable (then the ordinary rule path must be taken)."""
    existing = cot.get(key)
    if isinstance(existing, _Buffer):
        return existing
    if isinstance(existing, Variable):
        return None
    buf = np.zeros(np.shape(like), dtype=np.result_type(like, np.float64))
    if existing is not None:
        buf += existing if np.iscomplexobj(buf) else np.real(existing)  # a real input's cotangent is real
    cot[key] = _Buffer(buf)
    return cot[key]


# -- the backward pass -------------------------------------------------------------------------------------------------
def backward(end_node, g, start_nodes, *, add):
    """Cotangents at ``start_nodes`` given the cotangent ``g`` at ``end_node`` (None where the output does not depend on
    a start node).

    ``add(a, b)`` sums two cotangents; the callers (:mod:`refimpl.ad.api`) pass the ``add`` primitive of the
    primitive layer, so that the sum is recorded on outer traces when a cotangent is a Variable (higher-order
    derivatives).
    """
    wanted = {id(n): k for k, n in enumerate(start_nodes)}
    result = [None] * len(start_nodes)
    cot = {id(end_node): g}
    for node in _toposort(end_node):
        g_node = cot.pop(id(node), None)
        if g_node is None:
            continue
        if isinstance(g_node, _Buffer):
            g_node = g_node.array
        if id(node) in wanted:
            result[wanted[id(node)]] = g_node
        for argnum, parent in node.parents:
            key = id(parent)
            fast = node.accumulate.get(argnum) if node.accumulate and not isinstance(g_node, Variable) else None
            buf = _buffer_for(cot, key, node.args[argnum]) if fast is not None else None
            if buf is not None:
                fast(buf.array, g_node, *node.args, **node.kwargs)
            else:
                _add_cotangent(cot, key, node.vjps[argnum](g_node, node.ans, *node.args, **node.kwargs), add)
    return result
