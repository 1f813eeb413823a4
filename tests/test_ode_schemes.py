"""Scheme data: ButcherTableau / LinearMultistep validation, order reports, named instances, starters.

Independent routes used here: order conditions recomputed with NumPy matrix algebra from the coefficient arrays; the
order of a multistep method checked by exact (Fraction) integration of polynomial solutions, which an order-p method
reproduces exactly for degree ≤ p and not for degree p+1; zero-stability checked by the growth of powers of the
companion matrix. (The measured convergence orders of every named scheme are in test_ode_integrate.py.)
"""
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.schemes import (AB2, AB3, AB4, FORWARD_EULER, HEUN, KUTTA_RK3, LEAPFROG, MIDPOINT,
                                 MULTISTEP_METHODS, RALSTON, RK4, RK38, TABLEAUX, scheme, starter)
from refimpl.ode.tableau import ButcherTableau, two_stage
from refimpl.testing.strategies_ode import explicit_tableaux, multistep_methods

SETTINGS = settings(max_examples=40, deadline=None)


# ------------------------------------------------------------------------------------------------------- tableaux
def numpy_order_conditions(tab):
    """The eight tree conditions of order ≤ 4 evaluated with float matrix algebra (a second implementation)."""
    A, b, c = tab.arrays()
    Ac = A @ c
    return {1: [b.sum() - 1], 2: [b @ c - 1 / 2], 3: [b @ c ** 2 - 1 / 3, b @ Ac - 1 / 6],
            4: [b @ c ** 3 - 1 / 4, b @ (c * Ac) - 1 / 8, b @ (A @ c ** 2) - 1 / 12, b @ (A @ Ac) - 1 / 24]}


def order_from_numpy(tab, tol=1e-12):
    res = numpy_order_conditions(tab)
    p = 0
    for q in (1, 2, 3, 4):
        if max(abs(r) for r in res[q]) > tol:
            break
        p = q
    return p


@pytest.mark.parametrize("name,order,stages", [
    ("forward_euler", 1, 1), ("midpoint", 2, 2), ("heun", 2, 2), ("ralston", 2, 2), ("kutta_rk3", 3, 3),
    ("rk4", 4, 4), ("rk38", 4, 4)])
def test_named_tableaux_orders(name, order, stages):
    tab = TABLEAUX[name]
    assert tab.stages == stages and tab.exact
    assert tab.order == order
    assert order_from_numpy(tab) == order   # second implementation of the conditions agrees
    # exact coefficients: the conditions up to the order hold exactly, the next one (if ≤ 4) fails
    report = tab.order_conditions()
    for oc in report:
        if oc.order <= order:
            assert oc.satisfied and oc.residual == 0 and isinstance(oc.residual, Fraction)
    if order < 4:
        assert not all(oc.satisfied for oc in report if oc.order == order + 1)
    assert scheme(name) is tab


def test_two_stage_family_instances():
    assert MIDPOINT == two_stage(Fraction(1, 2), name="midpoint")
    assert HEUN.A == ((0, 0), (1, 0)) and HEUN.b == (Fraction(1, 2), Fraction(1, 2)) and HEUN.c == (0, 1)
    assert RALSTON.b == (Fraction(1, 4), Fraction(3, 4)) and RALSTON.c == (0, Fraction(2, 3))
    assert MIDPOINT.b == (0, 1)


@SETTINGS
@given(st.one_of(st.fractions(-3, 3, max_denominator=20), st.floats(-3, 3)).filter(lambda a: abs(a) > 1e-3))
def test_two_stage_family_is_second_order(alpha):
    tab = two_stage(alpha)
    assert tab.exact == isinstance(alpha, Fraction)
    assert tab.order >= 2
    b2 = 1 / (2 * alpha)
    assert tab.b[1] == b2 and tab.b[0] == 1 - b2 and tab.c == (0, alpha)
    assert order_from_numpy(tab) == tab.order


def test_two_stage_rejects_zero_alpha():
    with pytest.raises(ValueError, match="alpha"):
        two_stage(0)


@SETTINGS
@given(st.one_of(explicit_tableaux(stages=(2, 3), min_order=1), explicit_tableaux(stages=(2, 3), min_order=2),
                 explicit_tableaux(stages=(3,), min_order=3), explicit_tableaux(stages=(2, 3), exact=True)))
def test_random_tableaux_order_report_matches_numpy(tab):
    assert tab.order >= 1
    assert order_from_numpy(tab, tol=1e-11) == tab.order  # tol: a touch looser than the report's 1e-12·scale
    res = numpy_order_conditions(tab)
    report = tab.order_conditions()
    flat = [r for q in (1, 2, 3, 4) for r in res[q]]
    for oc, r in zip(report, flat):
        # same quantity by two routes: float sums in different order agree to a few ulps of the O(10) terms
        assert abs(float(oc.residual) - r) <= 1e-13 * 10


def test_tableau_coefficients_exact_and_float():
    A, b, c = RK4.arrays(exact=True)
    assert A.dtype == object and all(isinstance(v, Fraction) for v in b)
    Af, bf, cf = RK4.arrays()
    assert Af.dtype == np.float64 and np.array_equal(bf, [1 / 6, 1 / 3, 1 / 3, 1 / 6])
    assert not Af.flags.writeable
    flt = ButcherTableau("float_heun", ((0, 0), (1.0, 0)), (0.5, 0.5))
    assert not flt.exact and flt.order == 2
    with pytest.raises(ValueError, match="exact mode"):
        flt.arrays(exact=True)


@pytest.mark.parametrize("kwargs,match", [
    (dict(A=((0, 1), (1, 0)), b=(0.5, 0.5)), "not explicit"),            # upper part
    (dict(A=((1, 0), (1, 0)), b=(0.5, 0.5)), "not explicit"),            # diagonal
    (dict(A=((0, 0), (1, 0)), b=(0.5, 0.6)), "not consistent"),          # sum b != 1
    (dict(A=((0, 0), (1, 0)), b=(0.5, 0.5), c=(0, 0.5)), "row-sum"),     # c != A 1
    (dict(A=((0, 0),), b=(0.5, 0.5)), "rows"),                           # shape
    (dict(A=((0, 0), (1,)), b=(0.5, 0.5)), "square"),
    (dict(A=((0, 0), (float("nan"), 0)), b=(0.5, 0.5)), "finite"),
    (dict(A=((0, 0), (1, 0)), b=(0.5, 0.5), c=(0, 1, 2)), "c must have"),
])
def test_tableau_rejects_bad_coefficients(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ButcherTableau("bad", **kwargs)


def test_tableau_rejects_non_numbers():
    with pytest.raises(TypeError, match="A\\[1\\]"):
        ButcherTableau("bad", ((0, 0), ("1", 0)), (0.5, 0.5))
    with pytest.raises(TypeError, match="name"):
        ButcherTableau("", ((0,),), (1,))


def test_tableau_is_frozen():
    with pytest.raises(AttributeError):
        RK4.b = (1, 0, 0, 0)


# ----------------------------------------------------------------------------------------------- multistep methods
def exact_polynomial_error(method, degree, N=7):
    """Run ``method`` exactly (Fractions) on x' = degree·t^(degree−1), x = t^degree, from exact starting values, h = 1/2;
    return x_N − t_N^degree (zero iff the method integrates this polynomial exactly)."""
    h = Fraction(1, 2)
    k = method.steps
    exact = [(n * h) ** degree for n in range(N + 1)]
    f = [degree * (n * h) ** (degree - 1) if degree else Fraction(0) for n in range(N + 1)]
    x = exact[:k]
    for n in range(N - k + 1):
        x.append(-sum(Fraction(method.alpha[j]) * x[n + j] for j in range(k))
                 + h * sum(Fraction(method.beta[j]) * f[n + j] for j in range(k)))
    return x[N] - exact[N]


@pytest.mark.parametrize("name,order,steps", [("leapfrog", 2, 2), ("ab2", 2, 2), ("ab3", 3, 3), ("ab4", 4, 4)])
def test_named_multistep_orders(name, order, steps):
    m = MULTISTEP_METHODS[name]
    assert m.steps == steps and m.order == order and m.exact and m.zero_stable
    for q in range(order + 1):
        assert exact_polynomial_error(m, q) == 0
    assert exact_polynomial_error(m, order + 1) != 0
    assert scheme(name) is m


def test_multistep_roots():
    assert LEAPFROG.parasitic_roots == (-1,) and not LEAPFROG.strongly_stable
    for m in (AB2, AB3, AB4):
        assert m.strongly_stable and all(abs(r) < 1e-12 for r in m.parasitic_roots)


def companion_power_growth(m, n_max=400):
    """max_n |C^n|_inf for the companion matrix of rho: bounded iff the root condition holds."""
    k = m.steps
    C = np.zeros((k, k))
    C[:-1, 1:] = np.eye(k - 1)
    C[-1, :] = -np.array([float(a) for a in m.alpha[:k]])
    P, worst = np.eye(k), 0.0
    for _ in range(n_max):
        P = P @ C
        worst = max(worst, np.abs(P).max())
    return worst


@SETTINGS
@given(st.one_of(multistep_methods(steps=(1, 2, 3), min_order=1, weakly_stable=True),
                 multistep_methods(steps=(2, 3), min_order=2), multistep_methods(steps=(3, 4), min_order=3)))
def test_random_multistep_methods_are_consistent_and_zero_stable(m):
    assert m.zero_stable and m.order >= 1
    rho1 = sum(m.alpha)
    drho1 = sum(j * a for j, a in enumerate(m.alpha))
    assert abs(rho1) < 1e-12 and abs(drho1 - sum(m.beta)) < 1e-11
    # each reported root is a root of rho
    for r in m.roots:
        assert abs(np.polyval(list(reversed(m.alpha)), r)) < 1e-9
    # bounded companion powers (parasitic roots |r| <= 0.9 or a simple -1): |C^n| stays O(k / (1 - 0.9)) — 1e3 is
    # a generous bound, while a double root on the unit circle grows linearly past it (test below)
    assert companion_power_growth(m) < 1e3


def test_zero_unstable_method_is_refused_unless_allowed():
    # rho = (z-1)(z+1)^2 (double root on the unit circle), consistent: rho'(1) = 4 = sigma(1)
    with pytest.raises(ValueError, match="zero-stable"):
        LinearMultistep("double_root", (-1, -1, 1, 1), (0, 0, 4))
    m = LinearMultistep("double_root", (-1, -1, 1, 1), (0, 0, 4), allow_zero_unstable=True)
    assert not m.zero_stable and companion_power_growth(m) > 1e2   # grows like n
    # rho = (z-1)(z-2): root outside the disc
    with pytest.raises(ValueError, match="outside the unit circle"):
        LinearMultistep("outside", (2, -3, 1), (-1, 0))


@pytest.mark.parametrize("alpha,beta,match", [
    ((-1, 0, 1), (0, 2, 1), "implicit"),
    ((-1, 0, 2), (0, 2), "alpha_k = 1"),
    ((0, -1, 1), (1, 1), "not consistent"),
    ((1, -1, 1), (0, 1), "not consistent"),
    ((0, -1, 1), (1,), "beta must have"),
    ((1,), (), "alpha must have"),
    ((1, -2, 1), (-1, 1), "sigma"),
])
def test_multistep_rejects_bad_coefficients(alpha, beta, match):
    with pytest.raises(ValueError, match=match):
        LinearMultistep("bad", alpha, beta, allow_zero_unstable=True)


def test_starters():
    assert starter(LEAPFROG, "forward_euler") is FORWARD_EULER
    assert starter(LEAPFROG, "matched") is HEUN and starter(AB2, "matched") is HEUN
    assert starter(AB3, "matched") is KUTTA_RK3 and starter(AB4, "matched") is RK4
    assert starter(AB4, RK38) is RK38
    for m in (LEAPFROG, AB2, AB3, AB4):
        assert starter(m, "matched").order == m.order
    with pytest.raises(ValueError, match="starter"):
        starter(AB2, "rk4")
    with pytest.raises(TypeError, match="method"):
        starter(RK4, "matched")
    with pytest.raises(ValueError, match="name"):
        scheme("rk5")
