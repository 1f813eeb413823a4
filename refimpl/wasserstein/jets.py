r"""Truncated Taylor arithmetic on arrays of points (for the exact 1-D forward-Euler push-forwards of [C]).

A :class:`Jet` of order K holds, at every point x of an array, the normalised Taylor coefficients
c_k = f^{(k)}(x)/k!, k = 0..K, of a function f: shape (K+1,) + x.shape. Arithmetic follows the standard recurrences
(Griewank & Walther, *Evaluating Derivatives*, 2nd ed., §13.2, Table 13.2):

* (f·g)_k = Σ_{j≤k} f_j g_{k−j};  (1/f)_k = −(1/f_0) Σ_{j=1}^{k} f_j (1/f)_{k−j};
* (log f)_0 = log f_0, (log f)_k = (f_k − (1/k)Σ_{j=1}^{k−1} j (log f)_j f_{k−j}) / f_0;
* (exp f)_0 = e^{f_0}, (exp f)_k = (1/k) Σ_{j=1}^{k} j f_j (exp f)_{k−j};
* derivative: (f′)_k = (k+1) f_{k+1} — it lowers the order by one, which is how the "derivative consumption" of
  forward Euler ([C], docs/theory/forward-euler-breakdown.md §6) shows up here: each step needs two more derivatives
  of the previous density.

The result of a binary operation has the lower order of its operands. Exact inputs (like the identity map x ↦ x) are
built with :func:`Jet.variable` at any order.
"""
from __future__ import annotations

import numpy as np


class Jet:
    """Normalised Taylor coefficients c[k] = f^{(k)}(x)/k!, k = 0..order, at every point of an array."""

    __slots__ = ("c",)

    def __init__(self, coefficients):
        c = np.asarray(coefficients, dtype=np.float64)
        if c.ndim < 1 or c.shape[0] < 1:
            raise ValueError(f"coefficients must have shape (order + 1, ...), got {c.shape}")
        self.c = c

    # -- construction ----------------------------------------------------------------------------------------------
    @classmethod
    def constant(cls, value, shape, order):
        c = np.zeros((order + 1,) + tuple(shape))
        c[0] = value
        return cls(c)

    @classmethod
    def variable(cls, x, order):
        """The identity function at the points x: coefficients (x, 1, 0, …, 0)."""
        x = np.asarray(x, dtype=np.float64)
        c = np.zeros((order + 1,) + x.shape)
        c[0] = x
        if order >= 1:
            c[1] = 1.0
        return cls(c)

    @classmethod
    def from_derivatives(cls, derivatives):
        """From a list [f, f′, f″, …] of arrays (plain derivatives, divided here by k!)."""
        fact = 1.0
        rows = []
        for k, dk in enumerate(derivatives):
            fact *= max(k, 1)
            rows.append(np.asarray(dk, dtype=np.float64) / fact)
        return cls(np.stack(rows))

    # -- access ----------------------------------------------------------------------------------------------------
    @property
    def order(self) -> int:
        return self.c.shape[0] - 1

    @property
    def value(self):
        return self.c[0]

    def derivative_value(self, k: int):
        """f^{(k)} at the points (k ≤ order)."""
        if not 0 <= k <= self.order:
            raise ValueError(f"k must be in 0..{self.order}, got {k}")
        return self.c[k] * float(np.prod(np.arange(1, k + 1))) if k else self.c[0]

    def truncate(self, order: int) -> "Jet":
        return Jet(self.c[: order + 1])

    # -- arithmetic ------------------------------------------------------------------------------------------------
    def _pair(self, other):
        if isinstance(other, Jet):
            k = min(self.order, other.order)
            return self.c[: k + 1], other.c[: k + 1]
        o = np.zeros_like(self.c)
        o[0] = other
        return self.c, o

    def __add__(self, other):
        a, b = self._pair(other)
        return Jet(a + b)

    __radd__ = __add__

    def __sub__(self, other):
        a, b = self._pair(other)
        return Jet(a - b)

    def __rsub__(self, other):
        a, b = self._pair(other)
        return Jet(b - a)

    def __neg__(self):
        return Jet(-self.c)

    def __mul__(self, other):
        if not isinstance(other, Jet):
            return Jet(self.c * other)
        a, b = self._pair(other)
        out = np.zeros_like(a)
        for k in range(a.shape[0]):
            for j in range(k + 1):
                out[k] += a[j] * b[k - j]
        return Jet(out)

    __rmul__ = __mul__

    def reciprocal(self):
        a = self.c
        out = np.zeros_like(a)
        out[0] = 1.0 / a[0]
        for k in range(1, a.shape[0]):
            acc = np.zeros_like(a[0])
            for j in range(1, k + 1):
                acc += a[j] * out[k - j]
            out[k] = -acc * out[0]
        return Jet(out)

    def __truediv__(self, other):
        if not isinstance(other, Jet):
            return Jet(self.c / other)
        return self * other.reciprocal()

    def __rtruediv__(self, other):
        return self.reciprocal() * other

    def log(self):
        """log f (f_0 > 0 required where it is used)."""
        a = self.c
        out = np.zeros_like(a)
        out[0] = np.log(a[0])
        for k in range(1, a.shape[0]):
            acc = np.zeros_like(a[0])
            for j in range(1, k):
                acc += j * out[j] * a[k - j]
            out[k] = (a[k] - acc / k) / a[0]
        return Jet(out)

    def exp(self):
        a = self.c
        out = np.zeros_like(a)
        out[0] = np.exp(a[0])
        for k in range(1, a.shape[0]):
            acc = np.zeros_like(a[0])
            for j in range(1, k + 1):
                acc += j * a[j] * out[k - j]
            out[k] = acc / k
        return Jet(out)

    def derivative(self):
        """f′, of order one less."""
        if self.order < 1:
            raise ValueError("cannot differentiate a jet of order 0: the derivatives have been consumed")
        k = np.arange(1, self.order + 1, dtype=np.float64).reshape((-1,) + (1,) * (self.c.ndim - 1))
        return Jet(self.c[1:] * k)

    def __repr__(self):
        return f"Jet(order={self.order}, points={self.c.shape[1:]})"


def logsumexp_jets(jets) -> Jet:
    """log Σ_c exp(f_c) for jets f_c, stably (the common maximum of the values is factored out)."""
    order = min(j.order for j in jets)
    jets = [j.truncate(order) for j in jets]
    m = np.max(np.stack([j.value for j in jets]), axis=0)
    total = None
    for j in jets:
        e = (j - m).exp()
        total = e if total is None else total + e
    return total.log() + m


def abs_power_jet(x, p: float, order: int) -> Jet:
    """|x|^p at points x ≠ 0: derivatives p(p−1)…(p−k+1)|x|^{p−k} sign(x)^k."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(x == 0):
        raise ValueError("abs_power_jet needs x != 0 (|x|^p is not smooth at 0)")
    ax, s = np.abs(x), np.sign(x)
    ders, coef = [], 1.0
    for k in range(order + 1):
        ders.append(coef * ax ** (p - k) * s ** k)
        coef *= (p - k)
    return Jet.from_derivatives(ders)
