"""How the parameter samples of a uniform grid are built (refimpl.ode.samples): the vectorised construction (integer
sample codes marked over their range, stage weights as int64 counts times integer coefficients) against an
independent exact route written here — every (step, stage) use keyed by its exact time n + c_i as a Fraction, rows
in increasing time, weights summed as Fractions.

Indices, offsets and exact weights must be *equal*; the float64 weights must be the correctly rounded exact weights
(equal to ``float(Fraction)``), since the construction divides integers below 2**53. The float64 times are
t̂ = fl(fl(m + fl(φ)) · ĥ), ĥ = fl(fl(T)/N), for the sample at offset m + φ (m integer, φ ∈ [0, 1)); with unit
roundoff u = 2**-53 each of the k roundings (φ, the sum, the quotient, the product, and T itself when it is an exact
Fraction: k = 5, else k = 4) contributes a factor (1 + δ), |δ| ≤ u, so

    |t̂ − t| ≤ ((1 + u)^k − 1) · (|m| + |φ|) · T/N,

(the sum's error is at most u|φ| + u|m + φ| ≤ u(|m| + |φ|)); for samples at offsets ≥ 0 this is the relative bound
≈ k·u·|t|. When T is a float, N a power of two and the nodes dyadic, every step is exact and t̂ = t.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ode import samples as samples_module
from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.samples import _build_samples, _unique_codes, parameter_samples
from refimpl.ode.schemes import MULTISTEP_METHODS, TABLEAUX, starter as resolve_starter
from refimpl.testing.strategies import explicit_tableaux

U = Fraction(1, 2 ** 53)
LAYOUTS = ("stage", "step", "constant")
NAMED = [(m, None) for m in TABLEAUX.values()] + \
        [(m, s) for m in MULTISTEP_METHODS.values() for s in ("forward_euler", "matched")]


def exact_reference(method, starter, N, layout):
    """(offsets, exact weights, stage_index, grid_index) from the definition (module docstring of
    refimpl.ode.samples): one row per distinct use key, rows in increasing key, weights = sum of the coefficients of
    the uses of the row."""
    erk = not isinstance(method, LinearMultistep)
    tab = method if erk else starter
    n_rk = N if erk else method.steps - 1
    uses = []                                         # (key, coefficient, where)
    for n in range(n_rk):
        for i, c in enumerate(tab.c):
            key = n + Fraction(c) if layout == "stage" else Fraction(n)
            uses.append((key, Fraction(tab.b[i]), ("rk", n, i)))
    if not erk:
        k = method.steps
        for n in range(N - k + 1):
            for j in range(k):
                if method.beta[j] != 0:
                    uses.append((Fraction(n + j), Fraction(method.beta[j]), ("grid", n + j)))
    keys = {u[0] for u in uses}
    if layout == "step":
        keys |= {Fraction(n) for n in range(N)}       # one row per step, used or not
    if layout == "constant":
        keys, uses = {Fraction(0)}, [(Fraction(0), c, w) for _, c, w in uses]
    order = sorted(keys)
    row = {key: r for r, key in enumerate(order)}
    weights = [Fraction(0)] * len(order)
    stage_index = np.zeros((n_rk, tab.stages), dtype=np.int64)
    grid_index = None if erk else np.full(N, -1, dtype=np.int64)
    for key, c, where in uses:
        weights[row[key]] += c
        if where[0] == "rk":
            stage_index[where[1], where[2]] = row[key]
        else:
            grid_index[where[1]] = row[key]
    return tuple(order), tuple(weights), stage_index, grid_index


def check_against_reference(method, starter, N, layout, T):
    resolved = None if starter is None else resolve_starter(method, starter)
    smp = parameter_samples(method, T, N, layout, starter)
    offsets, weights, stage_index, grid_index = exact_reference(method, resolved, N, layout)
    assert np.array_equal(smp.stage_index, stage_index)
    assert (smp.grid_index is None) == (grid_index is None)
    if grid_index is not None:
        assert np.array_equal(smp.grid_index, grid_index)
    if layout != "constant":
        assert smp.offsets == offsets
    if smp.exact_weights is not None:                  # rational coefficients: exact, and correctly rounded
        assert smp.exact_weights == weights
        assert np.array_equal(smp.weights, [float(w) for w in weights])
    return smp, offsets


def check_time_bound(smp, offsets, T):
    """|t̂ − t| ≤ ((1 + u)^k − 1)(|m| + |φ|)·T/N for every sample (module docstring)."""
    k = 5 if isinstance(T, Fraction) else 4
    h = Fraction(T) / smp.N
    factor = (1 + U) ** k - 1
    for t_hat, off in zip(smp.times, offsets):
        m = off.numerator // off.denominator
        phi = off - m
        assert abs(Fraction(float(t_hat)) - off * h) <= factor * (abs(m) + phi) * h, (off, t_hat)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("method,starter", NAMED, ids=[f"{m.name}-{s}" for m, s in NAMED])
def test_named_schemes_equal_the_exact_route(method, starter, layout):
    for N in (method.steps if isinstance(method, LinearMultistep) else 1, 5, 64):
        for T in (1.0, 0.7, Fraction(3, 7)):
            smp, offsets = check_against_reference(method, starter, N, layout, T)
            if layout != "constant":
                check_time_bound(smp, offsets, T)


@settings(max_examples=40, deadline=None)
@given(explicit_tableaux(stages=(2, 3, 4), exact=True), st.integers(1, 40), st.sampled_from(LAYOUTS),
       st.sampled_from([1.0, 0.3, Fraction(5, 3)]))
def test_random_rational_tableaux_equal_the_exact_route(tableau, N, layout, T):
    """Random rational tableaux have nodes anywhere in [-2, 2] (offsets below 0 and several steps ahead) and
    denominators up to 8³: the marking of codes and the int64 weights must still match the exact route."""
    smp, offsets = check_against_reference(tableau, None, N, layout, T)
    if layout != "constant":
        check_time_bound(smp, offsets, T)


@pytest.mark.parametrize("method", [TABLEAUX["rk4"], TABLEAUX["heun"], TABLEAUX["midpoint"],
                                    MULTISTEP_METHODS["leapfrog"]], ids=lambda m: m.name)
def test_dyadic_times_are_exact(method):
    """T = 1.0, N = 2^10, nodes in {0, 1/2, 1}: h = 2^-10, m + φ and their product are exact, so t̂ = t."""
    starter = "forward_euler" if isinstance(method, LinearMultistep) else None
    smp = parameter_samples(method, 1.0, 1024, "stage", starter)
    assert all(Fraction(float(t)) == off / 1024 for t, off in zip(smp.times, smp.offsets))


@pytest.mark.parametrize("method,starter", NAMED, ids=[f"{m.name}-{s}" for m, s in NAMED])
def test_python_integer_route_gives_the_same_samples(method, starter, monkeypatch):
    """Above the int64 bound the weights are summed in Python integers; forcing that route must change nothing."""
    resolved = None if starter is None else resolve_starter(method, starter)
    for layout in LAYOUTS:
        fast = _build_samples(method, resolved, 1.0, 50, layout)
        with monkeypatch.context() as mp:
            mp.setattr(samples_module, "_EXACT_INT64_BOUND", 0)
            slow = _build_samples(method, resolved, 1.0, 50, layout)
        assert np.array_equal(fast.weights, slow.weights)
        assert fast.exact_weights == slow.exact_weights
        assert np.array_equal(fast.stage_index, slow.stage_index) and np.array_equal(fast.times, slow.times)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-50, 400), min_size=1, max_size=200))
def test_unique_codes_is_np_unique(values):
    a = np.array(values, dtype=np.int64)
    codes, inverse = _unique_codes(a)
    want, want_inverse = np.unique(a, return_inverse=True)
    assert codes.dtype == np.int64 and inverse.dtype == np.int64
    assert np.array_equal(codes, want) and np.array_equal(inverse, want_inverse.reshape(-1))
