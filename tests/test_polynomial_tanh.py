"""refimpl.numerics.polynomial_tanh: the derived error bounds checked against correctly rounded values (mpmath at 120
bits) on random points over every range the two tanh routes and sech² meet, the route boundary a = ½, tiny and
saturated arguments and the subnormal range of sech²; the compiled functions bit-identical to the pure-Python route;
signs, infinities, NaN; the loops vectorise."""
import math
import re

import mpmath
import numpy as np
import pytest

from refimpl.numerics.polynomial_tanh import (SECH2_ULP_BOUND, SMALL_ROUTE_BELOW, TANH_ULP_BOUND, error_bound,
                                              polynomial_sech2_array, polynomial_sech2_reference,
                                              polynomial_tanh_array, polynomial_tanh_reference)

U = 2.0 ** -53
TINY = 2.0 ** -1074


def _points():
    """Random points on both sides of 0 over the small route [0, ½), the large route up to saturation and beyond, the
    typical pre-activations of a neural field, and log-uniform magnitudes from 1e-300 to 400; plus the route boundary
    and its neighbours, the thresholds where tanh returns z or ±1, and where sech² turns subnormal."""
    rng = np.random.default_rng(23)
    sign = rng.choice([-1.0, 1.0], 2000)
    c = SMALL_ROUTE_BELOW
    edges = [0.0, c, np.nextafter(c, 0.0), np.nextafter(c, 1.0), 2.0 ** -54, 2.0 ** -53, 1e-300, TINY, 1e-8,
             0.25, 1.0, 10.0, 18.5, 19.1, 20.0, 354.0, 354.2, 354.5, 372.0, 373.0, 700.0, 1e300]
    edges = np.array(edges + [-e for e in edges])
    return np.concatenate([rng.uniform(-c, c, 2000), rng.uniform(-25.0, 25.0, 2000), rng.normal(0.0, 1.0, 2000),
                           sign * np.exp(rng.uniform(math.log(1e-300), math.log(400.0), 2000)), edges])


POINTS = _points()


def _exact(fn, z):
    mpmath.mp.prec = 120
    return [fn(mpmath.mpf(float(v))) for v in z]


def test_tanh_within_the_derived_bound():
    """|computed − tanh z| ≤ TANH_ULP_BOUND·u·|tanh z| (the module's derived relative bound, which implies the ulp
    bound) at every point; tanh z is normal or 0 at all of them."""
    got = polynomial_tanh_array(POINTS)
    exact = _exact(mpmath.tanh, POINTS)
    worst = max(float(abs(mpmath.mpf(float(g)) - e) / abs(e)) if e != 0 else float(g != 0)
                for g, e in zip(got, exact))
    assert worst <= TANH_ULP_BOUND * U, worst / U


def test_sech2_within_the_derived_bound():
    """Normal results: |computed − sech² z| ≤ SECH2_ULP_BOUND·u·sech² z; subnormal ones (|z| > 354.2): at most 10
    units of 2⁻¹⁰⁷⁴ (4 times the exp's subnormal bound of 2.43, module docstring); sech² of ≥ 373 rounds to 0."""
    got = polynomial_sech2_array(POINTS)
    exact = _exact(lambda v: mpmath.sech(v) ** 2, POINTS)
    for z, g, e in zip(POINTS, got, exact):
        err = abs(mpmath.mpf(float(g)) - e)
        if e >= 2.0 ** -1022:
            assert err <= SECH2_ULP_BOUND * U * e, (z, float(err / e) / U)
        else:
            assert err <= 10 * TINY, (z, float(err / TINY))


def test_the_evaluated_bounds_are_the_stated_ones():
    """error_bound() evaluates the derivation: tanh 6.70u (small route at a = ½), large route 4.60u, sech² 7.76u;
    the constants are these rounded up."""
    b = error_bound()
    assert 6.6 < b.tanh_small_u <= TANH_ULP_BOUND and 4.5 < b.tanh_large_u < b.tanh_small_u
    assert 7.7 < b.sech2_u <= SECH2_ULP_BOUND  # 2·(exp bound 1.882u) + 4u
    assert "tanh" in repr(b)


def test_compiled_is_the_pure_python_route_bit_for_bit():
    """Every operation is one IEEE rounding (fused multiply-adds explicit, no fastmath), so the compiled SIMD loop
    and the scalar pure-Python route (exact-rational FMAs) give the same bits."""
    z = POINTS[::9]
    t, s = polynomial_tanh_array(z), polynomial_sech2_array(z)
    for v, tv, sv in zip(z, t, s):
        assert np.float64(polynomial_tanh_reference(float(v))).tobytes() == tv.tobytes(), v
        assert np.float64(polynomial_sech2_reference(float(v))).tobytes() == sv.tobytes(), v


def test_special_values():
    z = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-300, -1e-300, 30.0, -30.0])
    t, s = polynomial_tanh_array(z), polynomial_sech2_array(z)
    assert np.signbit(t[1]) and not np.signbit(t[0]) and t[0] == 0.0
    assert t[2] == 1.0 and t[3] == -1.0 and np.isnan(t[4])
    assert t[5] == 1e-300 and t[6] == -1e-300                  # tanh z = z below 2⁻⁵⁴
    assert t[7] == 1.0 and t[8] == -1.0
    assert s[0] == 1.0 and s[1] == 1.0 and s[2] == 0.0 and s[3] == 0.0 and np.isnan(s[4])
    assert s[7] > 0.0 and s[7] == s[8]                          # e^{-60}: no cancellation, unlike 1 − tanh²


def test_arrays_keep_their_shape_and_reject_bad_input():
    z = np.linspace(-3.0, 3.0, 12).reshape(3, 4)
    assert polynomial_tanh_array(z).shape == (3, 4) and polynomial_sech2_array(z.T).shape == (4, 3)
    with pytest.raises(TypeError, match="x"):
        polynomial_tanh_array([0.0, 1.0])
    with pytest.raises(TypeError, match="x"):
        polynomial_sech2_array(np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="z"):
        polynomial_tanh_reference(1)
    with pytest.raises(TypeError, match="z"):
        polynomial_sech2_reference(1)
    with pytest.raises(ValueError, match="grid"):
        error_bound(grid=1)


def test_the_loops_vectorise():
    """The LLVM IR of the loops (compiled here, uncached, to be inspectable) holds vector FMAs on doubles and no call
    of the C library's tanh or exp."""
    from numba import njit

    from refimpl.numerics import polynomial_tanh as pt

    for loop_fn in (pt._tanh_loop, pt._sech2_loop):
        loop = njit(loop_fn.py_func)
        x = np.linspace(-5.0, 5.0, 64)
        out = np.empty_like(x)
        loop(x, out)
        ir_text = "\n".join(loop.inspect_llvm().values())
        assert re.search(r"llvm\.fma\.v\d+f64", ir_text), f"{loop_fn.__name__} did not vectorise"
        assert "@tanh(" not in ir_text and "@exp(" not in ir_text and "llvm.exp" not in ir_text
