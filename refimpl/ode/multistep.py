r"""Explicit linear multistep methods as data: a frozen, self-validating ``LinearMultistep``.

A :math:`k`-step method (docs/theory/explicit-schemes.md), normalised so that :math:`\alpha_k = 1`, explicit
(:math:`\beta_k = 0`):

.. math::
    \sum_{j=0}^{k} \alpha_j x_{n+j} = h \sum_{j=0}^{k-1} \beta_j f(x_{n+j}, \theta(t_{n+j})),
    \qquad \rho(\zeta) = \sum_j \alpha_j \zeta^j,\quad \sigma(\zeta) = \sum_j \beta_j \zeta^j .

On construction it checks (Hairer–Nørsett–Wanner I, §III.2–III.3; Butcher §41):

* explicitness: ``beta`` has :math:`k` entries, or :math:`k+1` with :math:`\beta_k = 0`; :math:`\alpha_k = 1`;
* consistency: :math:`\rho(1) = 0` and :math:`\rho'(1) = \sigma(1) \ne 0`;
* order: with :math:`C_0 = \sum_j \alpha_j`, :math:`C_q = \sum_j \alpha_j j^q/q! - \sum_j \beta_j j^{q-1}/(q-1)!`,
  the method has order :math:`p` iff :math:`C_0 = \dots = C_p = 0`; ``order`` is computed for :math:`q \le 2k+1`
  (an explicit :math:`k`-step method has order :math:`\le 2k-1`), ``order_conditions()`` lists every :math:`C_q`;
* the root condition (zero-stability): every root of :math:`\rho` has :math:`|\zeta| \le 1` and those with
  :math:`|\zeta| = 1` are simple. A zero-unstable method is refused unless ``allow_zero_unstable=True``.
  ``parasitic_roots`` are the roots other than the principal root :math:`\zeta = 1` (leapfrog: :math:`-1`); they decide
  the oscillating modes of both the numerical solution and its discrete adjoint
  (docs/theory/oscillations-and-corrections.md).

Roots are computed in float64 (``numpy.roots``); roots closer than 1e-6 are treated as one multiple root and
:math:`|\zeta|` within 1e-9 of 1 counts as on the unit circle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from refimpl.ode.coefficients import (coefficient_array, coefficient_from_text, coefficient_text,
                                      normalise_coefficients)

__all__ = ["LinearMultistep", "MultistepCondition"]

_FLOAT_TOL = 1e-12
_ROOT_CLUSTER = 1e-6
_UNIT_CIRCLE = 1e-9


class MultistepCondition(NamedTuple):
    """The order constant :math:`C_q` of an LMM and whether it vanishes."""

    q: int
    value: float | Fraction
    satisfied: bool

    def __repr__(self) -> str:
        return f"C_{self.q} = {self.value} ({'ok' if self.satisfied else 'nonzero'})"


@dataclass(frozen=True)
class LinearMultistep:
    r"""An explicit linear multistep method: ``name``, ``alpha`` = :math:`(\alpha_0..\alpha_k)` with
    :math:`\alpha_k = 1`, ``beta`` = :math:`(\beta_0..\beta_{k-1})` (a trailing :math:`\beta_k = 0` is accepted).

    Derived attributes: ``steps`` (k), ``order``, ``exact``, ``roots`` (of ρ, float complex), ``parasitic_roots``,
    ``zero_stable``, ``strongly_stable`` (all parasitic roots strictly inside the unit disc).
    """

    name: str
    alpha: tuple
    beta: tuple
    allow_zero_unstable: bool = False
    exact: bool = field(init=False, compare=False)
    order: int = field(init=False, compare=False)
    roots: tuple = field(init=False, compare=False, repr=False)
    zero_stable: bool = field(init=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("name must be a non-empty string")
        if not isinstance(self.allow_zero_unstable, bool):
            raise TypeError("allow_zero_unstable must be a bool")
        alpha, exact_a = normalise_coefficients(self.alpha, "alpha")
        beta, exact_b = normalise_coefficients(self.beta, "beta")
        k = len(alpha) - 1
        if k < 1:
            raise ValueError(f"alpha must have k+1 >= 2 entries (alpha_0..alpha_k), got {len(alpha)}")
        if alpha[k] != 1:
            raise ValueError(f"alpha: the method must be normalised to alpha_k = 1, got alpha_{k} = {alpha[k]}")
        if len(beta) == k + 1:
            if beta[k] != 0:
                raise ValueError(f"beta: method {self.name!r} is implicit (beta_{k} = {beta[k]} != 0); only explicit "
                                 f"multistep methods are supported")
            beta = beta[:k]
        elif len(beta) != k:
            raise ValueError(f"beta must have k = {k} entries (beta_0..beta_{k - 1}), or k+1 with beta_k = 0; "
                             f"got {len(beta)}")
        exact = exact_a and exact_b
        conv = Fraction if exact else float
        alpha = tuple(conv(v) for v in alpha)
        beta = tuple(conv(v) for v in beta)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "exact", exact)
        conds = self.order_conditions()
        scale = max(abs(float(v)) for v in alpha + beta)
        if not conds[0].satisfied:
            raise ValueError(f"alpha: method {self.name!r} is not consistent: rho(1) = sum(alpha) = {conds[0].value} "
                             f"!= 0 (scale {scale:g})")
        if not conds[1].satisfied:
            raise ValueError(f"beta: method {self.name!r} is not consistent: rho'(1) - sigma(1) = {conds[1].value} "
                             f"!= 0")
        sigma1 = sum(beta, conv(0))
        if (sigma1 == 0) if exact else abs(sigma1) <= _FLOAT_TOL * scale:
            raise ValueError(f"beta: method {self.name!r} has sigma(1) = 0 (then rho has a double root at 1)")
        order = 0
        for cq in conds[1:]:
            if cq.satisfied:
                order = cq.q
            else:
                break
        object.__setattr__(self, "order", order)
        roots = tuple(complex(r) for r in np.roots([float(a) for a in reversed(alpha)]))
        object.__setattr__(self, "roots", roots)
        problems = self._root_condition_violations()
        object.__setattr__(self, "zero_stable", not problems)
        if problems and not self.allow_zero_unstable:
            raise ValueError(f"alpha: method {self.name!r} is not zero-stable ({'; '.join(problems)}); pass "
                             f"allow_zero_unstable=True to build it anyway")

    @property
    def steps(self) -> int:
        """Number of steps k."""
        return len(self.alpha) - 1

    def _clustered_roots(self):
        """Roots of ρ grouped into (mean root, multiplicity)."""
        groups: list[list[complex]] = []
        for r in self.roots:
            for g in groups:
                if abs(r - g[0]) < _ROOT_CLUSTER:
                    g.append(r)
                    break
            else:
                groups.append([r])
        return [(sum(g) / len(g), len(g)) for g in groups]

    def _root_condition_violations(self) -> list[str]:
        out = []
        for r, m in self._clustered_roots():
            if m > 1 and abs(abs(r) - 1) < _ROOT_CLUSTER:
                out.append(f"root {r:.6g} of rho on the unit circle has multiplicity {m}")
            elif abs(r) > 1 + _UNIT_CIRCLE:
                out.append(f"root {r:.6g} of rho outside the unit circle")
        return out

    @property
    def parasitic_roots(self) -> tuple:
        """Roots of ρ other than the principal root ζ = 1 (one copy of 1 removed)."""
        rs = list(self.roots)
        i = min(range(len(rs)), key=lambda j: abs(rs[j] - 1))
        del rs[i]
        return tuple(rs)

    @property
    def strongly_stable(self) -> bool:
        """Zero-stable with every parasitic root strictly inside the unit disc."""
        return self.zero_stable and all(abs(r) < 1 - _UNIT_CIRCLE for r in self.parasitic_roots)

    def arrays(self, exact: bool = False):
        """``(alpha, beta)`` as read-only arrays (float64, or Fraction ``object`` arrays with ``exact=True``)."""
        if exact and not self.exact:
            raise ValueError(f"method {self.name!r} has float coefficients; exact mode needs rational coefficients")
        return coefficient_array(self.alpha, exact), coefficient_array(self.beta, exact)

    def order_conditions(self) -> list[MultistepCondition]:
        r""":math:`C_0, \dots, C_{2k+2}` (see the module docstring), exact for rational coefficients."""
        k = self.steps
        alpha, beta = self.alpha, self.beta + ((Fraction(0) if self.exact else 0.0),)
        zero = Fraction(0) if self.exact else 0.0
        out = []
        for q in range(0, 2 * k + 3):
            ta = [alpha[j] * Fraction(j ** q, math.factorial(q)) if self.exact else alpha[j] * j ** q / math.factorial(q)
                  for j in range(k + 1)]
            if q == 0:
                tb = []
            else:
                tb = [beta[j] * Fraction(j ** (q - 1), math.factorial(q - 1)) if self.exact
                      else beta[j] * j ** (q - 1) / math.factorial(q - 1) for j in range(k + 1)]
            value = sum(ta, zero) - sum(tb, zero)
            if self.exact:
                ok = value == 0
            else:
                scale = max([abs(t) for t in ta + tb] + [1.0])
                ok = abs(value) <= _FLOAT_TOL * scale
            out.append(MultistepCondition(q, value, ok))
        return out

    # -- as data -------------------------------------------------------------------------------------------------------
    #: the scheme family name in a case file (``SCHEME_FAMILIES`` of :mod:`refimpl.ode.schemes`)
    family = "multistep"

    def to_spec(self) -> dict:
        """JSON description: ``family``, ``name``, ``order``, ``alpha``, ``beta`` (exact coefficients as "p/q")."""
        return {"family": self.family, "name": self.name, "order": self.order,
                "alpha": [coefficient_text(v) for v in self.alpha], "beta": [coefficient_text(v) for v in self.beta]}

    @classmethod
    def from_spec(cls, spec: dict) -> "LinearMultistep":
        """The method described by ``spec`` (inverse of :meth:`to_spec`; validated on construction)."""
        if spec["family"] != cls.family:
            raise ValueError(f"scheme.family: a LinearMultistep is {cls.family!r}, the spec says {spec['family']!r}")
        num = coefficient_from_text
        return cls(spec["name"], tuple(num(v) for v in spec["alpha"]), tuple(num(v) for v in spec["beta"]))

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "float"
        stab = "zero-stable" if self.zero_stable else "ZERO-UNSTABLE"
        return f"LinearMultistep({self.name!r}, steps={self.steps}, order={self.order}, {stab}, {kind})"
