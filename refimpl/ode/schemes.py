r"""The named schemes (docs/theory/explicit-schemes.md), as *instances* of :class:`ButcherTableau` /
:class:`LinearMultistep`, with exact (rational) coefficients; and the named starters of a multistep method.

Runge–Kutta (Hairer–Nørsett–Wanner I, §II.1; Butcher §23): ``FORWARD_EULER`` (order 1), ``MIDPOINT``, ``HEUN``,
``RALSTON`` (the two-stage family :func:`~refimpl.ode.tableau.two_stage` at α = 1/2, 1, 2/3; order 2), ``KUTTA_RK3``
(Kutta's third-order method, c = (0, 1/2, 1)), ``RK4`` (the classical method), ``RK38`` (Kutta's 3/8 rule).

Multistep (HNW I, §III.1): ``LEAPFROG`` :math:`x_{n+1} = x_{n-1} + 2h f_n` (explicit midpoint rule, order 2, parasitic
root −1), ``AB2``, ``AB3``, ``AB4`` (Adams–Bashforth, orders 2–4, parasitic roots 0).

Starters (the starter is part of the problem; docs/theory/explicit-schemes.md): a multistep method with k steps needs
:math:`x_1..x_{k-1}`; refimpl computes them with k − 1 steps of an explicit Runge–Kutta method of the same step size h.
:func:`starter` resolves ``"forward_euler"`` or ``"matched"`` (an ERK of the method's order: FORWARD_EULER, HEUN,
KUTTA_RK3, RK4 for orders 1..4) or passes a :class:`ButcherTableau` through.
"""
from __future__ import annotations

from fractions import Fraction as Fr

from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.tableau import ButcherTableau, two_stage
from refimpl.registry import Registry

__all__ = [
    "FORWARD_EULER", "MIDPOINT", "HEUN", "RALSTON", "KUTTA_RK3", "RK4", "RK38",
    "LEAPFROG", "AB2", "AB3", "AB4",
    "TABLEAUX", "MULTISTEP_METHODS", "STARTER_NAMES", "two_stage", "starter", "scheme",
    "SCHEME_FAMILIES", "SCHEMES",
]

#: the scheme families of a case file: family name -> class (``SCHEME_FAMILIES.from_spec(spec)`` rebuilds a scheme)
SCHEME_FAMILIES = Registry("scheme family")
SCHEME_FAMILIES.register(ButcherTableau)
SCHEME_FAMILIES.register(LinearMultistep)

FORWARD_EULER = ButcherTableau("forward_euler", ((0,),), (1,))
MIDPOINT = two_stage(Fr(1, 2), name="midpoint")
HEUN = two_stage(1, name="heun")
RALSTON = two_stage(Fr(2, 3), name="ralston")
KUTTA_RK3 = ButcherTableau("kutta_rk3",
                           ((0, 0, 0),
                            (Fr(1, 2), 0, 0),
                            (-1, 2, 0)),
                           (Fr(1, 6), Fr(2, 3), Fr(1, 6)))
RK4 = ButcherTableau("rk4",
                     ((0, 0, 0, 0),
                      (Fr(1, 2), 0, 0, 0),
                      (0, Fr(1, 2), 0, 0),
                      (0, 0, 1, 0)),
                     (Fr(1, 6), Fr(1, 3), Fr(1, 3), Fr(1, 6)))
RK38 = ButcherTableau("rk38",
                      ((0, 0, 0, 0),
                       (Fr(1, 3), 0, 0, 0),
                       (Fr(-1, 3), 1, 0, 0),
                       (1, -1, 1, 0)),
                      (Fr(1, 8), Fr(3, 8), Fr(3, 8), Fr(1, 8)))

LEAPFROG = LinearMultistep("leapfrog", (-1, 0, 1), (0, 2))
AB2 = LinearMultistep("ab2", (0, -1, 1), (Fr(-1, 2), Fr(3, 2)))
AB3 = LinearMultistep("ab3", (0, 0, -1, 1), (Fr(5, 12), Fr(-16, 12), Fr(23, 12)))
AB4 = LinearMultistep("ab4", (0, 0, 0, -1, 1), (Fr(-9, 24), Fr(37, 24), Fr(-59, 24), Fr(55, 24)))

#: the Runge–Kutta instances by name
TABLEAUX = {t.name: t for t in (FORWARD_EULER, MIDPOINT, HEUN, RALSTON, KUTTA_RK3, RK4, RK38)}
#: the multistep instances by name
MULTISTEP_METHODS = {m.name: m for m in (LEAPFROG, AB2, AB3, AB4)}
#: every named instance: name -> tableau or multistep method
SCHEMES = Registry("scheme")
for _method in (*TABLEAUX.values(), *MULTISTEP_METHODS.values()):
    SCHEMES.register(_method, name=_method.name)
del _method

#: starter names understood by :func:`starter`
STARTER_NAMES = ("forward_euler", "matched")

_MATCHED = {1: FORWARD_EULER, 2: HEUN, 3: KUTTA_RK3, 4: RK4}


def scheme(name: str):
    """The named scheme (a tableau or a multistep method) by its ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if name in TABLEAUX:
        return TABLEAUX[name]
    if name in MULTISTEP_METHODS:
        return MULTISTEP_METHODS[name]
    raise ValueError(f"name: unknown scheme {name!r}; known: {sorted(TABLEAUX) + sorted(MULTISTEP_METHODS)}")


def starter(method: LinearMultistep, kind="matched") -> ButcherTableau:
    """The starting ERK for ``method``: ``"forward_euler"``, ``"matched"`` (an ERK of the method's order, see the
    module docstring), or a :class:`ButcherTableau` given directly."""
    if not isinstance(method, LinearMultistep):
        raise TypeError(f"method must be a LinearMultistep, got {type(method).__name__}")
    if isinstance(kind, ButcherTableau):
        return kind
    if kind == "forward_euler":
        return FORWARD_EULER
    if kind == "matched":
        if method.order not in _MATCHED:
            raise ValueError(f"starter: no matched ERK for a method of order {method.order} (give a ButcherTableau)")
        return _MATCHED[method.order]
    raise ValueError(f"starter must be a ButcherTableau or one of {STARTER_NAMES}, got {kind!r}")
