"""Embedded pairs: orders from the tree conditions against an independent empirical local-error order, FSAL, the spec
round trip, and the validation errors."""
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings

from refimpl.ode.embedded import (BOGACKI_SHAMPINE_32, DORMAND_PRINCE_54, EMBEDDED_PAIRS, FEHLBERG_21, FEHLBERG_45,
                                  HEUN_EULER_21, PAIR_FAMILIES, TSITOURAS_54, EmbeddedTableau, embedded_pair,
                                  rooted_trees)
from refimpl.testing.strategies_adaptive import random_embedded_pairs

# (name, p, p_hat, fsal, exact) as published (module docstring of refimpl.ode.embedded)
PUBLISHED = [("heun_euler_21", 2, 1, False, True), ("fehlberg_21", 2, 1, False, True),
             ("bogacki_shampine_32", 3, 2, True, True), ("fehlberg_45", 4, 5, False, True),
             ("dormand_prince_54", 5, 4, True, True), ("tsitouras_54", 5, 4, True, False)]


def test_rooted_tree_counts():
    # the number of rooted trees with n vertices: 1, 1, 2, 4, 9, 20 (OEIS A000081)
    assert [len(rooted_trees(n)) for n in range(1, 7)] == [1, 1, 2, 4, 9, 20]


@pytest.mark.parametrize("name, p, p_hat, fsal, exact", PUBLISHED)
def test_named_pairs_have_the_published_orders(name, p, p_hat, fsal, exact):
    pair = EMBEDDED_PAIRS.get(name)
    assert (pair.order, pair.embedded_order, pair.fsal, pair.exact) == (p, p_hat, fsal, exact)
    assert pair.estimate_order == min(p, p_hat)
    # the first failing condition exists (order is not capped by the check) for every pair here
    failing = [cd for cd in pair.order_conditions() if cd.weights == "b" and not cd.satisfied]
    assert failing and min(cd.order for cd in failing) == p + 1


def _f(x):
    return np.array([math.sin(x[1]) + 0.5 * x[0] * x[1], math.cos(x[0]) - x[1] * x[1] / 3.0])


def _local_error(weights, pair, h):
    """max-norm of (one step of ``weights`` - exact step) for x' = (sin x2 + x1 x2/2, cos x1 - x2^2/3), x(0) =
    (0.3, -0.2) (reference: 256 classical RK4 substeps, error ~ h^5/256^4, far below the h^(p+1) errors measured)."""
    A = [[float(v) for v in row] for row in pair.A]
    x0 = np.array([0.3, -0.2])
    k = []
    for i in range(pair.stages):
        k.append(_f(x0 + h * sum((A[i][j] * k[j] for j in range(i)), np.zeros(2))))
    x1 = x0 + h * sum(float(w) * kk for w, kk in zip(weights, k))
    y, m = x0.copy(), 256
    dt = h / m
    for _ in range(m):
        a = _f(y)
        b = _f(y + dt / 2 * a)
        c = _f(y + dt / 2 * b)
        d = _f(y + dt * c)
        y = y + dt / 6 * (a + 2 * b + 2 * c + d)
    return float(np.max(np.abs(x1 - y)))


@pytest.mark.parametrize("name", [n for n, *_ in PUBLISHED])
def test_orders_agree_with_the_empirical_local_error_order(name):
    # independent route: the local error of a weight vector of order p is C h^(p+1); the slope of log err vs log h
    # between h = 0.05 and 0.025 is p + 1 up to the next term (tolerance 0.25: an O(h) relative correction)
    # RKF1(2)'s b_hat misses the order-2 condition only by b_hat.c - 1/2 = -1/512, so its h^2 term dominates the h^3
    # term only for h << 1/100: measured at h = 2e-3 (local error ~1e-9, far above the ~1e-16 rounding)
    pair = EMBEDDED_PAIRS.get(name)
    for weights, p in ((pair.b, pair.order), (pair.b_hat, pair.embedded_order)):
        h = 2e-3 if (name == "fehlberg_21" and weights is pair.b_hat) else 0.05
        e1, e2 = _local_error(weights, pair, h), _local_error(weights, pair, h / 2)
        slope = math.log2(e1 / e2)
        assert abs(slope - (p + 1)) < 0.25, (name, p, slope)


def test_fsal_pairs_reuse_the_last_stage():
    for pair in (BOGACKI_SHAMPINE_32, DORMAND_PRINCE_54, TSITOURAS_54):
        assert tuple(pair.A[-1]) == tuple(pair.b) and pair.b[-1] == 0
    for pair in (HEUN_EULER_21, FEHLBERG_21, FEHLBERG_45):
        assert tuple(pair.A[-1]) != tuple(pair.b)


def test_exact_pairs_have_rational_error_weights():
    assert DORMAND_PRINCE_54.b_err[-1] == Fraction(-1, 40)
    assert sum(DORMAND_PRINCE_54.b_err) == 0
    assert BOGACKI_SHAMPINE_32.b_err == (Fraction(2, 9) - Fraction(7, 24), Fraction(1, 12), Fraction(1, 9),
                                         Fraction(-1, 8))


@pytest.mark.parametrize("name", EMBEDDED_PAIRS.names())
def test_spec_round_trip_through_json_is_exact(name):
    pair = EMBEDDED_PAIRS.get(name)
    back = PAIR_FAMILIES.from_spec(json.loads(json.dumps(pair.to_spec())))
    assert back == pair and back.b_err == pair.b_err and back.fsal == pair.fsal
    assert embedded_pair(name) is pair and embedded_pair(pair.to_spec()) == pair


def test_float_error_weights_are_kept_as_given():
    # a library that stores b - b_hat rounded (torchdiffeq's c_error) must be reproducible bit for bit
    b_err = (35 / 384 - 1951 / 21600, 0.0, 500 / 1113 - 22642 / 50085, 125 / 192 - 451 / 720,
             -2187 / 6784 - -12231 / 42400, 11 / 84 - 649 / 6300, -1.0 / 60.0)
    A = tuple(tuple(float(v) for v in row) for row in DORMAND_PRINCE_54.A)
    pair = EmbeddedTableau("dopri5_torch", A, A[-1], b_err=b_err)
    assert pair.b_err == b_err and pair.order == 5 and pair.embedded_order == 4


def test_validation_errors_name_the_argument():
    A = ((0, 0), (1, 0))
    with pytest.raises(ValueError, match="b_hat"):
        EmbeddedTableau("x", A, (Fraction(1, 2), Fraction(1, 2)))
    with pytest.raises(ValueError, match="b_hat"):
        EmbeddedTableau("x", A, (Fraction(1, 2), Fraction(1, 2)), (Fraction(1, 2), Fraction(1, 2)))  # zero estimate
    with pytest.raises(ValueError, match="b_hat"):
        EmbeddedTableau("x", A, (Fraction(1, 2), Fraction(1, 2)), (1, 1))  # sum(b_hat) = 2
    with pytest.raises(ValueError, match="b_err"):
        EmbeddedTableau("x", A, (Fraction(1, 2), Fraction(1, 2)), (1, 0), b_err=(0, 0))
    with pytest.raises(ValueError, match="order"):
        EmbeddedTableau("x", A, (Fraction(1, 2), Fraction(1, 2)), (1, 0), order=3)
    with pytest.raises(ValueError, match="embedded_order"):
        EmbeddedTableau("x", A, (Fraction(1, 2), Fraction(1, 2)), (1, 0), embedded_order=2)
    with pytest.raises(ValueError, match="b_hat must have 2 entries"):
        EmbeddedTableau("x", A, (Fraction(1, 2), Fraction(1, 2)), (1, 0, 0))
    with pytest.raises(ValueError, match="explicit"):
        EmbeddedTableau("x", ((0, 1), (1, 0)), (Fraction(1, 2), Fraction(1, 2)), (1, 0))
    with pytest.raises(ValueError, match="pair.family"):
        EmbeddedTableau.from_spec({"family": "runge_kutta"})
    spec = DORMAND_PRINCE_54.to_spec()
    spec["order"] = 4
    with pytest.raises(ValueError, match="order"):
        EmbeddedTableau.from_spec(spec)
    with pytest.raises(TypeError, match="pair"):
        embedded_pair(3)


@settings(max_examples=40, deadline=None)
@given(random_embedded_pairs())
def test_random_pairs_round_trip_and_have_consistent_weights(pair):
    assert abs(sum(pair.b_err)) <= 1e-12 and pair.embedded_order >= 1
    assert EmbeddedTableau.from_spec(json.loads(json.dumps(pair.to_spec()))) == pair
