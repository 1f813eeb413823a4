r"""Explicit Runge–Kutta methods as data: a frozen, self-validating Butcher tableau.

An :math:`s`-stage explicit Runge–Kutta (ERK) step for :math:`\dot x = f(x, \theta(t))`
(docs/theory/explicit-schemes.md):

.. math::
    k_i = f\Big(x_n + h\sum_{j<i} a_{ij} k_j,\ \theta(t_n + c_i h)\Big),\qquad x_{n+1} = x_n + h\sum_i b_i k_i .

On construction the tableau checks

* explicitness: :math:`a_{ij} = 0` for :math:`j \ge i` (anything else is an implicit method and is refused);
* consistency: :math:`\sum_i b_i = 1` and the row-sum condition :math:`c = A\mathbf 1` (both refused if violated);
* the order conditions up to order 4 (Butcher, *Numerical Methods for ODEs*, §31; Hairer–Nørsett–Wanner I, §II.2),
  one per rooted tree, assuming :math:`c = A\mathbf 1`:

  ====== ===================================================== =======
  order  condition                                              value
  ====== ===================================================== =======
  1      :math:`\sum b_i`                                       1
  2      :math:`\sum b_i c_i`                                   1/2
  3      :math:`\sum b_i c_i^2`                                 1/3
  3      :math:`\sum b_i a_{ij} c_j`                            1/6
  4      :math:`\sum b_i c_i^3`                                 1/4
  4      :math:`\sum b_i c_i a_{ij} c_j`                        1/8
  4      :math:`\sum b_i a_{ij} c_j^2`                          1/12
  4      :math:`\sum b_i a_{ij} a_{jk} c_k`                     1/24
  ====== ===================================================== =======

  ``order`` is the largest :math:`p \le 4` for which all conditions of order :math:`\le p` hold (exactly for rational
  coefficients, to :math:`10^{-12}` relative for floats); ``order_conditions()`` returns every residual.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple


from refimpl.ode.coefficients import (coefficient_array, coefficient_from_text, coefficient_text,
                                      normalise_coefficients)

__all__ = ["ButcherTableau", "OrderCondition", "two_stage"]

#: float tolerance (relative to the size of the terms) for consistency and order conditions
FLOAT_CONDITION_TOL = 1e-12


class OrderCondition(NamedTuple):
    """One order condition: its order, the tree's formula, the achieved value, the required value, the residual."""

    order: int
    condition: str
    value: float | Fraction
    required: Fraction
    residual: float | Fraction
    satisfied: bool

    def __repr__(self) -> str:
        mark = "holds" if self.satisfied else "does not hold"
        return (f"order {self.order}: {self.condition} = {self.value} (required {self.required}, "
                f"residual {float(self.residual):.3g}) {mark}")


def _holds(residual, scale, exact: bool) -> bool:
    if exact:
        return residual == 0
    return abs(residual) <= FLOAT_CONDITION_TOL * max(1.0, float(scale))


@dataclass(frozen=True)
class ButcherTableau:
    r"""An explicit Runge–Kutta method: ``name``, strictly lower-triangular ``A`` (:math:`s\times s`), weights ``b``,
    nodes ``c`` (default :math:`c = A\mathbf 1`).

    Coefficients given as ``int``/:class:`~fractions.Fraction` are kept exact (``exact`` is True and the method can run
    on Fraction ``object`` arrays); any float makes the whole tableau float64. Derived attributes: ``stages``,
    ``order`` (≤ 4), ``exact``. Arrays: :meth:`arrays` (float64 or exact object arrays).
    """

    name: str
    A: tuple
    b: tuple
    c: tuple | None = None
    exact: bool = field(init=False, compare=False)
    order: int = field(init=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("name must be a non-empty string")
        b, exact_b = normalise_coefficients(self.b, "b")
        s = len(b)
        if s < 1:
            raise ValueError("b must have at least one entry (one stage)")
        if isinstance(self.A, (str, bytes)) or not hasattr(self.A, "__len__") or len(self.A) != s:
            raise ValueError(f"A must have {s} rows (one per stage, matching len(b) = {s})")
        rows, exact_rows = [], []
        for i, row in enumerate(self.A):
            r, ex = normalise_coefficients(row, f"A[{i}]")
            if len(r) != s:
                raise ValueError(f"A must be square {s}x{s}; row A[{i}] has {len(r)} entries")
            rows.append(r)
            exact_rows.append(ex)
        if self.c is None:
            c, exact_c = None, True
        else:
            c, exact_c = normalise_coefficients(self.c, "c")
            if len(c) != s:
                raise ValueError(f"c must have {s} entries (one per stage), got {len(c)}")
        exact = exact_b and exact_c and all(exact_rows)
        conv = Fraction if exact else float
        A = tuple(tuple(conv(v) for v in r) for r in rows)
        b = tuple(conv(v) for v in b)
        # explicitness
        for i in range(s):
            for j in range(i, s):
                if A[i][j] != 0:
                    raise ValueError(f"A: tableau {self.name!r} is not explicit: a[{i}][{j}] = {A[i][j]} on or above "
                                     f"the diagonal (only explicit Runge-Kutta methods are supported)")
        row_sums = tuple(sum(A[i], conv(0)) for i in range(s))
        if c is None:
            c = row_sums
        else:
            c = tuple(conv(v) for v in c)
            for i in range(s):
                if not _holds(c[i] - row_sums[i], max(abs(v) for v in A[i]) if s > 1 else 1, exact):
                    raise ValueError(f"c: tableau {self.name!r} violates the row-sum condition c = A·1 at stage {i}: "
                                     f"c[{i}] = {c[i]}, sum of A[{i}] = {row_sums[i]}")
        sum_b = sum(b, conv(0))
        if not _holds(sum_b - 1, max(abs(v) for v in b), exact):
            raise ValueError(f"b: tableau {self.name!r} is not consistent: sum(b) = {sum_b} != 1")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "exact", exact)
        order = 0
        for p in range(1, 5):
            if all(oc.satisfied for oc in self.order_conditions() if oc.order == p):
                order = p
            else:
                break
        object.__setattr__(self, "order", order)

    @property
    def stages(self) -> int:
        """Number of stages s."""
        return len(self.b)

    def arrays(self, exact: bool = False):
        """``(A, b, c)`` as read-only arrays: float64 by default, Fraction ``object`` arrays with ``exact=True``."""
        if exact and not self.exact:
            raise ValueError(f"tableau {self.name!r} has float coefficients; exact mode needs rational coefficients "
                             f"(give them as int/Fraction)")
        return (coefficient_array(self.A, exact), coefficient_array(self.b, exact), coefficient_array(self.c, exact))

    def order_conditions(self) -> list[OrderCondition]:
        """Every order condition up to order 4 with its residual (see the module docstring for the list)."""
        s, A, b, c = self.stages, self.A, self.b, self.c
        zero = Fraction(0) if self.exact else 0.0
        Ac = [sum((A[i][j] * c[j] for j in range(s)), zero) for i in range(s)]
        Ac2 = [sum((A[i][j] * c[j] ** 2 for j in range(s)), zero) for i in range(s)]
        AAc = [sum((A[i][j] * Ac[j] for j in range(s)), zero) for i in range(s)]
        trees = [
            (1, "sum b_i", [1] * s, Fraction(1)),
            (2, "sum b_i c_i", c, Fraction(1, 2)),
            (3, "sum b_i c_i^2", [ci ** 2 for ci in c], Fraction(1, 3)),
            (3, "sum b_i a_ij c_j", Ac, Fraction(1, 6)),
            (4, "sum b_i c_i^3", [ci ** 3 for ci in c], Fraction(1, 4)),
            (4, "sum b_i c_i a_ij c_j", [ci * aci for ci, aci in zip(c, Ac)], Fraction(1, 8)),
            (4, "sum b_i a_ij c_j^2", Ac2, Fraction(1, 12)),
            (4, "sum b_i a_ij a_jk c_k", AAc, Fraction(1, 24)),
        ]
        out = []
        for order, text, phi, required in trees:
            terms = [bi * ph for bi, ph in zip(b, phi)]
            value = sum(terms, zero)
            target = required if self.exact else float(required)
            residual = value - target
            scale = max([abs(float(t)) for t in terms] + [float(required)])
            out.append(OrderCondition(order, text, value, required, residual, _holds(residual, scale, self.exact)))
        return out

    # -- as data -------------------------------------------------------------------------------------------------------
    #: the scheme family name in a case file (``SCHEME_FAMILIES`` of :mod:`refimpl.ode.schemes`)
    family = "runge_kutta"

    def to_spec(self) -> dict:
        """JSON description: ``family``, ``name``, ``order``, ``A``, ``b``, ``c`` (exact coefficients as "p/q")."""
        return {"family": self.family, "name": self.name, "order": self.order,
                "A": [[coefficient_text(v) for v in row] for row in self.A], "b": [coefficient_text(v) for v in self.b],
                "c": [coefficient_text(v) for v in self.c]}

    @classmethod
    def from_spec(cls, spec: dict) -> "ButcherTableau":
        """The tableau described by ``spec`` (inverse of :meth:`to_spec`; validated on construction)."""
        if spec["family"] != cls.family:
            raise ValueError(f"scheme.family: a ButcherTableau is {cls.family!r}, the spec says {spec['family']!r}")
        num = coefficient_from_text
        return cls(spec["name"], tuple(tuple(num(v) for v in row) for row in spec["A"]),
                   tuple(num(v) for v in spec["b"]), tuple(num(v) for v in spec["c"]))

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "float"
        return f"ButcherTableau({self.name!r}, stages={self.stages}, order={self.order}, {kind})"


def two_stage(alpha, name: str | None = None) -> ButcherTableau:
    r"""The two-stage, second-order family: :math:`c_2 = a_{21} = \alpha`, :math:`b = (1 - 1/(2\alpha), 1/(2\alpha))`.

    :math:`\alpha = 1/2` is the midpoint rule, :math:`\alpha = 1` Heun's method, :math:`\alpha = 2/3` Ralston's. An
    ``int``/``Fraction`` alpha gives an exact tableau. Every :math:`\alpha \ne 0` gives order 2 (order conditions
    :math:`b_1+b_2 = 1`, :math:`b_2\alpha = 1/2`).
    """
    (alpha,), exact = normalise_coefficients([alpha], "alpha")
    if alpha == 0:
        raise ValueError("alpha must be nonzero (c2 = alpha, b2 = 1/(2 alpha))")
    one = Fraction(1) if exact else 1.0
    b2 = one / (2 * alpha)
    return ButcherTableau(name or f"two_stage(alpha={alpha})", ((0, 0), (alpha, 0)), (one - b2, b2), (0, alpha))
