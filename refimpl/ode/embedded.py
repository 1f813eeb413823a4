r"""Embedded explicit Runge–Kutta pairs as data: a solution tableau and a second weight vector for the error estimate.

An embedded pair (Hairer–Nørsett–Wanner I, §II.4 "Embedded Runge–Kutta formulas") shares the stages
:math:`k_i = f(x_n + h\sum_{j<i} a_{ij}k_j, \theta)` of one explicit tableau between two solutions

.. math::
    x_{n+1} = x_n + h\sum_i b_i k_i \quad(\text{order } p),\qquad
    \hat x_{n+1} = x_n + h\sum_i \hat b_i k_i \quad(\text{order } \hat p),

and estimates the local error by their difference :math:`e_{n+1} = x_{n+1} - \hat x_{n+1} = h\sum_i (b_i - \hat b_i)k_i`
(the *error weights* :math:`b^{\mathrm{err}} = b - \hat b`). The propagated solution is always the one with weights
``b``; whether that is the higher-order one ("local extrapolation", Dormand–Prince, Tsitouras, Bogacki–Shampine) or the
lower-order one (Fehlberg 4(5), Fehlberg 2(1) as torchdiffeq uses it with ``b`` of order 2) is read from the orders. The
estimate is :math:`O(h^{q+1})` with :math:`q = \min(p, \hat p)`; ``estimate_order`` is q, and a step-size controller
divides its exponents by :math:`q + 1` (docs/theory/adaptive-steps.md §2).

**Order conditions** (Butcher, *Numerical Methods for ODEs*, §31; HNW I, §II.2, Theorem 2.13): a weight vector
:math:`w` has order :math:`\ge p` iff :math:`w^{\mathsf T}\Phi(t) = 1/\gamma(t)` for every rooted tree :math:`t` with
:math:`|t| \le p`, where (assuming :math:`c = A\mathbf 1`) the stage vector of a tree is
:math:`\Phi(\bullet) = \mathbf 1` and :math:`\Phi([t_1,\dots,t_m]) = \prod_k A\Phi(t_k)` (elementwise product), and
:math:`\gamma(\bullet) = 1`, :math:`\gamma([t_1..t_m]) = |t|\prod_k\gamma(t_k)`. :func:`rooted_trees` generates the
trees (1, 1, 2, 4, 9, 20 of orders 1..6); both ``b`` and ``b_hat`` are checked up to order :data:`MAX_CHECKED_ORDER`
— exactly for rational coefficients, to :data:`~refimpl.ode.tableau.FLOAT_CONDITION_TOL` relative to the size of the
terms for floats. A claimed ``order``/``embedded_order`` that differs from the computed one is a ``ValueError``.

**FSAL** ("first same as last") is detected from the data: the last row of A equals ``b`` (so the last stage is
:math:`f(x_{n+1})`, and it is the first stage of the next step: one evaluation saved per accepted step).

Named instances (coefficients and their provenance):

=========================  ====  =====  =====  ======================================================================
name                       p     p̂      FSAL   source; number type
=========================  ====  =====  =====  ======================================================================
``heun_euler_21``          2     1      no     Heun's method with the Euler step as estimate (HNW I §II.4); exact
``fehlberg_21``            2     1      no     Fehlberg, NASA TR R-315 (1969), RKF1(2) with the order-2 weights
                                               propagated (torchdiffeq's ``fehlberg2``); exact
``bogacki_shampine_32``    3     2      yes    Bogacki & Shampine, Appl. Math. Lett. 2 (1989) 321–325; exact
``fehlberg_45``            4     5      no     Fehlberg, NASA TR R-315 (1969), RKF4(5) (HNW I Table II.5.1); exact
``dormand_prince_54``      5     4      yes    Dormand & Prince, J. Comput. Appl. Math. 6 (1980) 19–26 (HNW I
                                               Table II.5.2); exact
``tsitouras_54``           5     4      yes    Tsitouras, Comput. Math. Appl. 62 (2011) 770–775; *decimals*: the
                                               paper's c₂ = 0.161, c₃ = 0.327, c₄ = 0.9, b₂ = 0.01 and b̂₇ = 1/66 are
                                               exact, every other coefficient is a decimal (the 80-digit values
                                               OrdinaryDiffEq.jl and diffrax 0.7 ``_solver/tsit5.py`` print, which
                                               solve the paper's simplifying conditions to high precision), stored
                                               as the nearest float64
=========================  ====  =====  =====  ======================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import NamedTuple

from refimpl.ode.coefficients import (coefficient_array, coefficient_from_text, coefficient_text,
                                      normalise_coefficients)
from refimpl.ode.tableau import FLOAT_CONDITION_TOL, ButcherTableau
from refimpl.registry import Registry

__all__ = ["EmbeddedTableau", "TreeCondition", "rooted_trees", "MAX_CHECKED_ORDER", "EMBEDDED_PAIRS",
           "PAIR_FAMILIES", "embedded_pair",
           "HEUN_EULER_21", "FEHLBERG_21", "BOGACKI_SHAMPINE_32", "FEHLBERG_45", "DORMAND_PRINCE_54",
           "TSITOURAS_54"]

#: order conditions are checked for every rooted tree with at most this many vertices (37 trees)
MAX_CHECKED_ORDER = 6


@lru_cache(maxsize=None)
def rooted_trees(order: int) -> tuple:
    """All rooted trees with exactly ``order`` vertices, each a sorted tuple of its children's subtrees (``()`` is the
    single vertex •). Built as multisets of subtrees whose sizes sum to ``order - 1``; counts 1, 1, 2, 4, 9, 20."""
    if order < 1:
        return ()
    if order == 1:
        return ((),)
    out = set()

    def forests(total: int, max_tree) -> list:
        # multisets of trees of total size `total`, children listed in non-increasing (size, tree) order
        if total == 0:
            return [()]
        res = []
        for size in range(min(total, max_tree[0]), 0, -1):
            for t in rooted_trees(size):
                if (size, t) > max_tree:
                    continue
                for rest in forests(total - size, (size, t)):
                    res.append(((size, t),) + rest)
        return res

    for forest in forests(order - 1, (order, ())):
        out.add(tuple(sorted(t for _, t in forest)))
    return tuple(sorted(out))


def _tree_size(t) -> int:
    return 1 + sum(_tree_size(u) for u in t)


def _gamma(t) -> int:
    g = _tree_size(t)
    for u in t:
        g *= _gamma(u)
    return g


def _tree_text(t) -> str:
    return "•" if not t else "[" + ",".join(_tree_text(u) for u in t) + "]"


class TreeCondition(NamedTuple):
    """One order condition :math:`w^{\\mathsf T}\\Phi(t) = 1/\\gamma(t)` for the weights named ``weights``."""

    weights: str
    order: int
    tree: str
    value: float | Fraction
    required: Fraction
    residual: float | Fraction
    satisfied: bool

    def __repr__(self) -> str:
        mark = "holds" if self.satisfied else "does not hold"
        return (f"{self.weights}, order {self.order}, tree {self.tree}: {self.value} (required {self.required}, "
                f"residual {float(self.residual):.3g}) {mark}")


def _conditions(A, c, w, exact: bool, label: str) -> list[TreeCondition]:
    s = len(w)
    zero = Fraction(0) if exact else 0.0
    one = Fraction(1) if exact else 1.0
    cache = {}

    def phi(t):
        if t not in cache:
            v = [one] * s
            for u in t:
                pu = phi(u)
                Apu = [sum((A[i][j] * pu[j] for j in range(s)), zero) for i in range(s)]
                v = [vi * ai for vi, ai in zip(v, Apu)]
            cache[t] = v
        return cache[t]

    out = []
    for p in range(1, MAX_CHECKED_ORDER + 1):
        for t in rooted_trees(p):
            terms = [wi * ph for wi, ph in zip(w, phi(t))]
            value = sum(terms, zero)
            required = Fraction(1, _gamma(t))
            residual = value - (required if exact else float(required))
            if exact:
                ok = residual == 0
            else:
                scale = max([abs(float(x)) for x in terms] + [float(required)])
                ok = abs(residual) <= FLOAT_CONDITION_TOL * max(1.0, scale)
            out.append(TreeCondition(label, p, _tree_text(t), value, required, residual, ok))
    return out


def _order_of(conditions: list[TreeCondition]) -> int:
    order = 0
    for p in range(1, MAX_CHECKED_ORDER + 1):
        if all(cd.satisfied for cd in conditions if cd.order == p):
            order = p
        else:
            break
    return order


@dataclass(frozen=True)
class EmbeddedTableau:
    r"""An embedded explicit Runge–Kutta pair: ``name``, strictly lower-triangular ``A``, solution weights ``b``, and
    the embedded weights ``b_hat`` *or* the error weights ``b_err`` = b − b̂ (give one; giving both checks that they
    agree), nodes ``c`` (default A·1), and optionally the claimed ``order`` and ``embedded_order`` (checked).

    Derived: ``tableau`` (the :class:`~refimpl.ode.tableau.ButcherTableau` of the propagated solution — it validates
    explicitness, c = A·1 and Σb = 1), ``exact``, ``order`` (p of ``b``), ``embedded_order`` (p̂ of ``b_hat``),
    ``estimate_order`` (q = min(p, p̂)), ``fsal``, ``stages``. The error weights given as floats are kept exactly as
    given (a library that stores b − b̂ rounded, as torchdiffeq and diffrax do, is reproduced bit for bit);
    otherwise ``b_err`` is formed from ``b`` and ``b_hat`` (exactly for rationals).
    """

    name: str
    A: tuple
    b: tuple
    b_hat: tuple | None = None
    c: tuple | None = None
    b_err: tuple | None = None
    order: int | None = None
    embedded_order: int | None = None
    tableau: ButcherTableau = field(init=False, compare=False, repr=False)
    exact: bool = field(init=False, compare=False)
    fsal: bool = field(init=False, compare=False)

    family = "embedded_runge_kutta"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("name must be a non-empty string")
        tab = ButcherTableau(self.name, self.A, self.b, self.c)
        s = tab.stages
        if self.b_hat is None and self.b_err is None:
            raise ValueError(f"b_hat: the embedded pair {self.name!r} needs the embedded weights b_hat or the error "
                             f"weights b_err = b - b_hat")
        given = {}
        for key in ("b_hat", "b_err"):
            v = getattr(self, key)
            if v is not None:
                vals, ex = normalise_coefficients(v, key)
                if len(vals) != s:
                    raise ValueError(f"{key} must have {s} entries (one per stage), got {len(vals)}")
                given[key] = (vals, ex)
        exact = tab.exact and all(ex for _, ex in given.values())
        conv = Fraction if exact else float
        b = tuple(conv(v) for v in tab.b)
        if "b_hat" in given:
            b_hat = tuple(conv(v) for v in given["b_hat"][0])
            b_err_from_hat = tuple(bi - bh for bi, bh in zip(b, b_hat))
        if "b_err" in given:
            b_err = tuple(conv(v) for v in given["b_err"][0])
            if "b_hat" in given:
                for i, (e1, e2) in enumerate(zip(b_err, b_err_from_hat)):
                    ok = e1 == e2 if exact else abs(e1 - e2) <= FLOAT_CONDITION_TOL * max(1.0, abs(b[i]))
                    if not ok:
                        raise ValueError(f"b_err: b_err[{i}] = {e1} but b[{i}] - b_hat[{i}] = {e2} (pair "
                                         f"{self.name!r}); give one of them, or consistent values")
            else:
                b_hat = tuple(bi - ei for bi, ei in zip(b, b_err))
        else:
            b_err = b_err_from_hat
        if all(e == 0 for e in b_err):
            raise ValueError(f"b_hat: the embedded weights of {self.name!r} equal b, so the error estimate is "
                             f"identically zero")
        A = tuple(tuple(conv(v) for v in row) for row in tab.A)
        c = tuple(conv(v) for v in tab.c)
        sum_hat = sum(b_hat, conv(0))
        if not (sum_hat == 1 if exact else abs(sum_hat - 1) <= FLOAT_CONDITION_TOL * max(1.0, max(map(abs, b_hat)))):
            raise ValueError(f"b_hat: the embedded weights of {self.name!r} are not consistent: sum(b_hat) = "
                             f"{sum_hat} != 1 (sum(b_err) must be 0)")
        object.__setattr__(self, "tableau", tab)
        object.__setattr__(self, "exact", exact)
        for key, val in (("A", A), ("b", b), ("b_hat", b_hat), ("b_err", b_err), ("c", c)):
            object.__setattr__(self, key, val)
        p = _order_of(_conditions(A, c, b, exact, "b"))
        p_hat = _order_of(_conditions(A, c, b_hat, exact, "b_hat"))
        for key, claimed, computed in (("order", self.order, p), ("embedded_order", self.embedded_order, p_hat)):
            if claimed is not None and claimed != computed:
                raise ValueError(f"{key}: pair {self.name!r} claims {key} {claimed}, the order conditions give "
                                 f"{computed} (checked up to order {MAX_CHECKED_ORDER})")
        object.__setattr__(self, "order", p)
        object.__setattr__(self, "embedded_order", p_hat)
        fsal = s > 1 and all(A[s - 1][j] == b[j] for j in range(s))
        object.__setattr__(self, "fsal", fsal)

    # -- derived -------------------------------------------------------------------------------------------------------
    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def estimate_order(self) -> int:
        r"""q = min(p, p̂): the error estimate :math:`e = h\sum (b_i - \hat b_i)k_i` is :math:`O(h^{q+1})`."""
        return min(self.order, self.embedded_order)

    def order_conditions(self) -> list[TreeCondition]:
        """Every order condition up to :data:`MAX_CHECKED_ORDER` for ``b`` and for ``b_hat``, with residuals."""
        return (_conditions(self.A, self.c, self.b, self.exact, "b")
                + _conditions(self.A, self.c, self.b_hat, self.exact, "b_hat"))

    def arrays(self, exact: bool = False):
        """``(A, b, b_err, c)`` as read-only arrays (float64, or Fraction object arrays with ``exact=True``)."""
        if exact and not self.exact:
            raise ValueError(f"pair {self.name!r} has float coefficients; exact mode needs rational coefficients")
        return tuple(coefficient_array(v, exact) for v in (self.A, self.b, self.b_err, self.c))

    # -- as data -------------------------------------------------------------------------------------------------------
    def to_spec(self) -> dict:
        """JSON description: ``family``, ``name``, ``order``, ``embedded_order``, ``fsal``, ``A``, ``b``, ``b_hat``,
        ``b_err``, ``c`` (exact coefficients as "p/q" strings, floats as numbers: a round trip is bit-exact)."""
        text = coefficient_text
        return {"family": self.family, "name": self.name, "order": self.order,
                "embedded_order": self.embedded_order, "fsal": self.fsal,
                "A": [[text(v) for v in row] for row in self.A], "b": [text(v) for v in self.b],
                "b_hat": [text(v) for v in self.b_hat], "b_err": [text(v) for v in self.b_err],
                "c": [text(v) for v in self.c]}

    @classmethod
    def from_spec(cls, spec: dict) -> "EmbeddedTableau":
        """The pair described by ``spec`` (inverse of :meth:`to_spec`; validated on construction, and the stored
        ``order``/``embedded_order`` checked against the order conditions)."""
        if not isinstance(spec, dict):
            raise TypeError(f"spec must be a dict, got {type(spec).__name__}")
        if spec.get("family") != cls.family:
            raise ValueError(f"pair.family: an EmbeddedTableau is {cls.family!r}, the spec says {spec.get('family')!r}")
        num = coefficient_from_text
        pair = cls(spec["name"], tuple(tuple(num(v) for v in row) for row in spec["A"]),
                   tuple(num(v) for v in spec["b"]), tuple(num(v) for v in spec["b_hat"]),
                   tuple(num(v) for v in spec["c"]), b_err=tuple(num(v) for v in spec["b_err"]),
                   order=spec.get("order"), embedded_order=spec.get("embedded_order"))
        if "fsal" in spec and bool(spec["fsal"]) != pair.fsal:
            raise ValueError(f"pair.fsal: the spec says fsal = {spec['fsal']}, the coefficients give {pair.fsal}")
        return pair

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "float"
        return (f"EmbeddedTableau({self.name!r}, stages={self.stages}, order={self.order}({self.embedded_order}), "
                f"fsal={self.fsal}, {kind})")


Fr = Fraction

HEUN_EULER_21 = EmbeddedTableau("heun_euler_21", ((0, 0), (1, 0)), (Fr(1, 2), Fr(1, 2)), (1, 0),
                                order=2, embedded_order=1)

FEHLBERG_21 = EmbeddedTableau("fehlberg_21",
                              ((0, 0, 0), (Fr(1, 2), 0, 0), (Fr(1, 256), Fr(255, 256), 0)),
                              (Fr(1, 512), Fr(255, 256), Fr(1, 512)),
                              (Fr(1, 256), Fr(255, 256), 0), order=2, embedded_order=1)

BOGACKI_SHAMPINE_32 = EmbeddedTableau("bogacki_shampine_32",
                                      ((0, 0, 0, 0),
                                       (Fr(1, 2), 0, 0, 0),
                                       (0, Fr(3, 4), 0, 0),
                                       (Fr(2, 9), Fr(1, 3), Fr(4, 9), 0)),
                                      (Fr(2, 9), Fr(1, 3), Fr(4, 9), 0),
                                      (Fr(7, 24), Fr(1, 4), Fr(1, 3), Fr(1, 8)), order=3, embedded_order=2)

FEHLBERG_45 = EmbeddedTableau("fehlberg_45",
                              ((0, 0, 0, 0, 0, 0),
                               (Fr(1, 4), 0, 0, 0, 0, 0),
                               (Fr(3, 32), Fr(9, 32), 0, 0, 0, 0),
                               (Fr(1932, 2197), Fr(-7200, 2197), Fr(7296, 2197), 0, 0, 0),
                               (Fr(439, 216), -8, Fr(3680, 513), Fr(-845, 4104), 0, 0),
                               (Fr(-8, 27), 2, Fr(-3544, 2565), Fr(1859, 4104), Fr(-11, 40), 0)),
                              (Fr(25, 216), 0, Fr(1408, 2565), Fr(2197, 4104), Fr(-1, 5), 0),
                              (Fr(16, 135), 0, Fr(6656, 12825), Fr(28561, 56430), Fr(-9, 50), Fr(2, 55)),
                              order=4, embedded_order=5)

_DP_B = (Fr(35, 384), 0, Fr(500, 1113), Fr(125, 192), Fr(-2187, 6784), Fr(11, 84), 0)
DORMAND_PRINCE_54 = EmbeddedTableau("dormand_prince_54",
                                    ((0, 0, 0, 0, 0, 0, 0),
                                     (Fr(1, 5), 0, 0, 0, 0, 0, 0),
                                     (Fr(3, 40), Fr(9, 40), 0, 0, 0, 0, 0),
                                     (Fr(44, 45), Fr(-56, 15), Fr(32, 9), 0, 0, 0, 0),
                                     (Fr(19372, 6561), Fr(-25360, 2187), Fr(64448, 6561), Fr(-212, 729), 0, 0, 0),
                                     (Fr(9017, 3168), Fr(-355, 33), Fr(46732, 5247), Fr(49, 176), Fr(-5103, 18656), 0,
                                      0),
                                     _DP_B),
                                    _DP_B,
                                    (Fr(5179, 57600), 0, Fr(7571, 16695), Fr(393, 640), Fr(-92097, 339200),
                                     Fr(187, 2100), Fr(1, 40)),
                                    order=5, embedded_order=4)

# Tsitouras (2011): decimals (see the module docstring); parsed from their decimal text by float() (correct rounding)
_D = float
_TS_A = (
    (0.0,) * 7,
    (0.161,) + (0.0,) * 6,
    (_D("-0.8480655492356988544426874250230774675121177393430391537369234245294192976164141156943e-2"),
     _D("0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569")) + (0.0,) * 5,
    (_D("2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289"),
     _D("-6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366"),
     _D("4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077")) + (0.0,) * 4,
    (_D("5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791"),
     _D("-11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589"),
     _D("7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753"),
     _D("-0.9249506636175524925650207933207191611349983406029535244034750452930469056411389539635e-1")) + (0.0,) * 3,
    (_D("5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748"),
     _D("-12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452"),
     _D("8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986"),
     _D("-0.7158497328140099722453054252582973869127213147363544882721139659546372402303777878835e-1"),
     _D("-0.2826905039406838290900305721271224146717633626879770007617876201276764571291579142206e-1"),
     0.0, 0.0),
)
_TS_B = (_D("0.9646076681806522951816731316512876333711995238157997181903319145764851595234062815396e-1"),
         0.01,
         _D("0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509"),
         _D("1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331"),
         _D("-3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677"),
         _D("2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841"),
         0.0)
_TS_B_HAT = (_D("0.9468075576583945807478876255758922856117527357724631226139574065785592789071067303271e-1"),
             _D("0.9183565540343253096776363936645313759813746240984095238905939532922955247253608687270e-2"),
             _D("0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813"),
             _D("1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761"),
             _D("-2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702"),
             _D("1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089"),
             1.0 / 66.0)
_TS_C = (0.0, 0.161, 0.327, 0.9,
         _D("0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604"), 1.0, 1.0)
TSITOURAS_54 = EmbeddedTableau("tsitouras_54", (_TS_A[0],) + _TS_A[1:] + (_TS_B,), _TS_B, _TS_B_HAT, _TS_C,
                               order=5, embedded_order=4)
del _D

#: the named pairs: name -> instance
EMBEDDED_PAIRS = Registry("embedded pair")
for _pair in (HEUN_EULER_21, FEHLBERG_21, BOGACKI_SHAMPINE_32, FEHLBERG_45, DORMAND_PRINCE_54, TSITOURAS_54):
    EMBEDDED_PAIRS.register(_pair, name=_pair.name)
del _pair

#: the pair families of a case file: ``PAIR_FAMILIES.from_spec(spec)`` rebuilds a pair from its ``to_spec()``
PAIR_FAMILIES = Registry("embedded pair family")
PAIR_FAMILIES.register(EmbeddedTableau)


def embedded_pair(pair) -> EmbeddedTableau:
    """Resolve ``pair``: an :class:`EmbeddedTableau` is returned as is, a string is looked up in
    :data:`EMBEDDED_PAIRS`, a dict is read with :meth:`EmbeddedTableau.from_spec`."""
    if isinstance(pair, EmbeddedTableau):
        return pair
    if isinstance(pair, str):
        return EMBEDDED_PAIRS.get(pair)
    if isinstance(pair, dict):
        return PAIR_FAMILIES.from_spec(pair)
    raise TypeError(f"pair must be an EmbeddedTableau, a registered name ({EMBEDDED_PAIRS.names()}) or a spec dict, "
                    f"got {type(pair).__name__}")
