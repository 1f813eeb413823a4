"""refimpl.numerics.polynomial_exp: the derived ulp bound, checked against correctly rounded values (mpmath) and
np.exp on many points including the edge ranges of a Gaussian kernel (underflow, large negatives, exp(0)); the
compiled function bit-identical to the pure-Python route; the loop of it vectorised."""
import math
import re

import numpy as np
import pytest

from refimpl.numerics.polynomial_exp import (COEFFICIENTS, ULP_BOUND, error_bound, polynomial_exp_array,
                                                polynomial_exp_reference)

LN2 = math.log(2.0)
TINY = 2.0 ** -1074  # the least subnormal


def _points():
    """Random points over the whole range and over the Gaussian-kernel range, plus edges: the reduction boundaries
    x = (k + ½) ln 2 and their neighbours, exp(0), tiny arguments, the subnormal and overflow thresholds."""
    rng = np.random.default_rng(17)
    ks = np.arange(-1076, 1025)
    boundaries = (ks + 0.5) * LN2
    edges = [0.0, -0.0, 1e-300, -1e-300, TINY, -TINY, 1e-17, -1e-17, 0.5 * LN2, -0.5 * LN2,
             -708.3964185322641, -708.4, -709.0, -744.4, -745.0, -745.1332191019411, -745.2, -746.0,
             709.782712893384, 709.78, 709.79]
    return np.concatenate([rng.uniform(-746.0, 710.0, 3000), rng.uniform(-40.0, 0.0, 3000),
                           rng.uniform(-1.0, 1.0, 1000), boundaries[::7], np.nextafter(boundaries[::11], np.inf),
                           np.array(edges)])


def test_error_bound_derivation():
    """The derived bound (module docstring) is below ULP_BOUND, and the Horner evaluation dominates it."""
    b = error_bound()
    assert b.ulps <= ULP_BOUND
    assert b.horner_u > b.reduction_u > b.approximation_u > 0
    assert "ulp" in repr(b)


def test_approximation_error_against_mpmath():
    """error_bound's approximation source (decimal, 2001 points) against an independent evaluation of
    |p(r)/e^r − 1| with mpmath on 4× as many points (refimpl.numerics.exp_minimax.relative_error): the denser grid
    may find a slightly larger maximum between the coarse points; the error curve is flat at its extrema (ten of them,
    ≥ 0.01 apart, against a coarse spacing of 3.5·10⁻⁴), so the two agree to 1 %."""
    pytest.importorskip("mpmath")
    from refimpl.numerics.exp_minimax import relative_error

    dense = relative_error(COEFFICIENTS, points=8001)
    assert abs(dense - error_bound().approximation_u) <= 0.01 * dense
    assert COEFFICIENTS[0] == 1.0 and COEFFICIENTS[1] == 1.0  # p(0) = 1: exp(0) exactly


@pytest.mark.slow
def test_coefficients_are_the_documented_fit():
    """Re-running the two-stage Remez fit of refimpl.numerics.exp_minimax gives the stored coefficients bit for bit
    (≈ 12 s of mpmath)."""
    pytest.importorskip("mpmath")
    from refimpl.numerics.exp_minimax import fit

    assert fit() == COEFFICIENTS


def test_compiled_is_bit_identical_to_the_python_route():
    """Same operations, each one rounding (the FMAs exactly rounded by rational arithmetic in the Python route)."""
    x = _points()[::5]
    x = np.concatenate([x, [np.inf, -np.inf, np.nan, -1e5, 1e5]])
    ours = polynomial_exp_array(x)
    ref = np.array([polynomial_exp_reference(float(v)) for v in x])
    nan = np.isnan(ref)
    assert np.array_equal(nan, np.isnan(ours)) and nan.sum() == 1  # a NaN's sign bit is not specified by IEEE
    assert np.array_equal(ours[~nan].view(np.int64), ref[~nan].view(np.int64))


def test_special_values():
    out = polynomial_exp_array(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -746.0, -1e300, 710.0, 1e300]))
    assert out[0] == 1.0 and out[1] == 1.0  # exp(0) exactly: r = 0, p = c0
    assert out[2] == np.inf and out[3] == 0.0 and np.isnan(out[4])
    assert out[5] == 0.0 and out[6] == 0.0  # e^−746 < 2⁻¹⁰⁷⁶: rounds to 0
    assert out[7] == np.inf and out[8] == np.inf


def test_within_the_derived_bound_of_correctly_rounded_values():
    """|ours − e^x| ≤ error_bound() ulp of e^x for normal results, ≤ bound + ½ ulp of 2⁻¹⁰⁷⁴ for subnormal ones,
    e^x computed to 120 bits by mpmath (an independent route). Results rounding to 0 or inf must do so exactly."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 120
    x = _points()
    ours = polynomial_exp_array(x)
    bound = error_bound().ulps
    worst = 0.0
    for xi, yi in zip(x.tolist(), ours.tolist()):
        exact = mpmath.exp(mpmath.mpf(xi))
        cr = float(exact)  # correctly rounded
        if cr == 0.0 or math.isinf(cr):
            assert yi == cr, xi
            continue
        if cr < 2.0 ** -1022:  # subnormal: the last product rounds once more
            err = abs(float((mpmath.mpf(yi) - exact) / TINY))
            assert err <= bound + 0.5, (xi, err)
            continue
        err = abs(float((mpmath.mpf(yi) - exact) / math.ulp(cr)))
        worst = max(worst, err)
        assert err <= bound, (xi, err)
    assert worst > 0.0  # not vacuous: the comparison saw rounding differences


def test_against_np_exp():
    """|ours − np.exp| ≤ (our bound + np.exp's own error) ulp on 10⁵ points (triangle inequality through e^x); np.exp's
    error is measured against mpmath on a subsample here rather than assumed (NumPy picks its own SIMD exp or the C
    library's, by CPU)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.prec = 120
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-708.0, 709.0, 50_000), rng.uniform(-50.0, 0.0, 50_000)])
    ours, theirs = polynomial_exp_array(x), np.exp(x)
    sub = x[::97]
    np_err = max(abs(float((mpmath.mpf(float(np.exp(v))) - mpmath.exp(mpmath.mpf(float(v)))) /
                           math.ulp(float(np.exp(v))))) for v in sub)
    diff_ulps = np.abs(ours - theirs) / np.spacing(theirs)
    # np_err is a sample maximum, so allow one more ulp for np.exp's unsampled points
    assert np.max(diff_ulps) <= error_bound().ulps + max(np_err, 0.5) + 1.0


def test_rejects_bad_input():
    with pytest.raises(TypeError, match="x"):
        polynomial_exp_array([0.0, 1.0])
    with pytest.raises(TypeError, match="x"):
        polynomial_exp_array(np.zeros(3, dtype=np.float32))
    with pytest.raises(TypeError, match="x"):
        polynomial_exp_reference(1)
    with pytest.raises(ValueError, match="grid"):
        error_bound(grid=1)


def test_the_loop_vectorises():
    """The LLVM IR of a loop of polynomial_exp (compiled here, uncached, so it can be inspected) holds vector FMAs on
    doubles: the exp runs in SIMD lanes, not as scalar calls."""
    from numba import njit

    from refimpl.numerics import polynomial_exp as pe

    loop = njit(pe._polynomial_exp_loop.py_func)
    x = np.linspace(-5.0, 0.0, 64)
    out = np.empty_like(x)
    loop(x, out)
    assert np.array_equal(out, polynomial_exp_array(x))
    ir_text = "\n".join(loop.inspect_llvm().values())
    assert re.search(r"llvm\.fma\.v\d+f64", ir_text), "no vector FMA: the polynomial loop did not vectorise"
    assert "@exp(" not in ir_text and "llvm.exp" not in ir_text
