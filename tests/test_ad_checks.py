"""Tests of refimpl.ad.checks against gradients derived by hand (closed forms written out below).

Tolerances are justified where they are asserted; ε = 2.2e-16 is the float64 machine epsilon.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.ad.checks import (GradCheckResult, TaylorResult, central_difference, check_grad, complex_step,
                               complex_step_gradient, fd_gradient, richardson_difference, taylor_test)

EPS = np.finfo(np.float64).eps


# ------------------------------------------------------------------- test functions with hand-derived gradients
# Each entry: f (written so that on complex input it is the holomorphic extension), its gradient, and a "term scale"
# per component — the size of the terms summed in the closed form, which bounds the rounding error of every route.
def sin_x2(x):
    return np.sum(np.sin(x) * x**2)


def sin_x2_grad(x):            # d/dx sin(x)x² = cos(x)x² + 2x sin(x)
    return np.cos(x) * x**2 + 2 * x * np.sin(x)


def sin_x2_scale(x):
    return np.abs(np.cos(x)) * x**2 + 2 * np.abs(x * np.sin(x)) + np.abs(np.sin(x) * x**2)


def logsumexp(x):              # shift by the (real) max: lse(x) = m + log Σ exp(x − m) for any constant m
    m = np.max(np.real(x))
    return m + np.log(np.sum(np.exp(x - m)))


def logsumexp_grad(x):         # ∇ lse = softmax(x) = exp(x − lse(x))
    return np.exp(x - logsumexp(x))


def logsumexp_scale(x):
    return np.ones(np.shape(x))  # softmax entries and their rounding are relative to sum(softmax) = 1


def quadratic_data(shape):
    n = int(np.prod(shape))
    rng = np.random.default_rng(n)
    m = rng.standard_normal((n, n))
    return m @ m.T + n * np.eye(n), rng.standard_normal(n)   # A symmetric positive definite, b


def quadratic(x):              # J = ½ xᵀAx + bᵀx on the flattened x
    a, b = quadratic_data(np.shape(x))
    y = np.reshape(x, -1)
    return 0.5 * y @ a @ y + b @ y


def quadratic_grad(x):         # ∇J = ½(A + Aᵀ)x + b = Ax + b (A symmetric)
    a, b = quadratic_data(np.shape(x))
    return np.reshape(a @ np.reshape(x, -1) + b, np.shape(x))


def quadratic_scale(x):
    a, b = quadratic_data(np.shape(x))
    return np.reshape(np.abs(a) @ np.abs(np.reshape(x, -1)) + np.abs(b), np.shape(x))


CASES = {"sin_x2": (sin_x2, sin_x2_grad, sin_x2_scale),
         "logsumexp": (logsumexp, logsumexp_grad, logsumexp_scale),
         "quadratic": (quadratic, quadratic_grad, quadratic_scale)}

points = hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3),
                    elements=st.floats(-2.0, 2.0, allow_nan=False, width=64))
X0 = np.array([[0.3, -1.2, 0.7], [1.9, -0.4, 1.1]])


def rel_error(approx, exact, scale):
    return np.max(np.abs(approx - exact) / scale)


# ------------------------------------------------------------------------------- error laws of the differences
def observed_orders(errors):
    errors = np.asarray(errors)
    return np.log2(errors[:-1] / errors[1:])       # steps halve, so error ∝ h^p gives p


def test_central_difference_error_is_second_order():
    v = np.array([[1.0, -0.5, 0.25], [0.3, 2.0, -1.0]])
    exact = np.sum(sin_x2_grad(X0) * v)
    steps = 2.0 ** -np.arange(4, 10)              # h ≥ 2e-3: truncation ~h²·|f'''| ≥ 1e-7 ≫ rounding ε/h ~ 1e-13
    errors = [abs(central_difference(sin_x2, X0, v, eps=h) - exact) for h in steps]
    np.testing.assert_allclose(observed_orders(errors), 2.0, atol=0.05)


def test_richardson_error_is_fourth_order():
    v = np.array([[1.0, -0.5, 0.25], [0.3, 2.0, -1.0]])
    exact = np.sum(sin_x2_grad(X0) * v)
    steps = 2.0 ** -np.arange(2, 6)               # truncation ~h⁴|f⁽⁵⁾|/4·5! ≥ 1e-9 ≫ rounding ε/h ≤ 1e-14
    errors = [abs(richardson_difference(sin_x2, X0, v, eps=h) - exact) for h in steps]
    np.testing.assert_allclose(observed_orders(errors), 4.0, atol=0.1)


def test_complex_step_error_is_second_order_then_exact():
    # Im f(x+ih)/h = f'(x) − h² f'''(x)/6 + …: for f = sin at x: f' = cos x, f''' = −cos x, error = −h² cos(x)/6·(−1).
    x = 0.7
    for h in (1e-2, 1e-3):
        err = complex_step(np.sin, x, 1.0, eps=h) - np.cos(x)
        assert abs(err - h**2 * np.cos(x) / 6) <= 1e-3 * h**2    # next term is O(h⁴)/120: relative 1e-5 at h=1e-2
    assert abs(complex_step(np.sin, x, 1.0) - np.cos(x)) <= 2 * EPS   # eps = 1e-30: only rounding of cos is left


# ------------------------------------------------------------------------- accuracy against closed forms (hypothesis)
@settings(max_examples=40, deadline=None)
@given(x=points, case=st.sampled_from(sorted(CASES)))
def test_fd_gradients_match_closed_form(x, case):
    f, grad, scale = CASES[case]
    # The steps are absolute (h ∝ max(1,|x|)), so FD errors are absolute ~ h⁴·|f⁽⁵⁾| near x, and the derivatives of
    # these f are O(1) on [−2,2]: measure relative to max(term scale, 1) (at x = 0 the gradient of sin_x2 is 0).
    exact, s = grad(x), np.maximum(scale(x), 1.0)
    # Richardson with h = 7.4e-4·max(1,|x|): truncation h⁴|f⁽⁵⁾|/480 ≲ 1e-13 and rounding ~ n·ε·|terms|/h ≲ 1e-11,
    # so the asked 1e-8 relative leaves three orders of margin.
    assert rel_error(fd_gradient(f, x), exact, s) <= 1e-8
    # Central with h = 6.1e-6·max(1,|x|): truncation h²|f'''|/6 ≲ 1e-9 (|f'''| ≤ 22 on [−2,2]), rounding ~ n·ε/h ≲ 1e-9.
    assert rel_error(fd_gradient(f, x, method="central"), exact, s) <= 1e-7


@settings(max_examples=40, deadline=None)
@given(x=points, case=st.sampled_from(sorted(CASES)))
def test_complex_step_gradient_matches_closed_form(x, case):
    f, grad, scale = CASES[case]
    # No subtraction: error is rounding in f and in the closed form, a few ε·(term scale) — 1e-13 leaves ~100×; the
    # truncation h²|f'''|/6 ~ 1e-60 is covered by the floor 1e-30 (it matters only where the gradient underflows).
    assert rel_error(complex_step_gradient(f, x), grad(x), scale(x) + 1e-30) <= 1e-13


@settings(max_examples=25, deadline=None)
@given(x=points, data=st.data())
def test_directional_versions_work_for_array_outputs(x, data):
    v = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-2.0, -0.25) | st.floats(0.25, 2.0)))
    f = lambda y: np.sin(y) * y               # elementwise, array output; derivative (cos y·y + sin y)·v
    exact = (np.cos(x) * x + np.sin(x)) * v
    scale = (np.abs(x) + 1) * np.abs(v) + 1e-300
    assert np.shape(central_difference(f, x, v)) == x.shape
    assert rel_error(complex_step(f, x, v), exact, scale) <= 1e-14          # rounding only
    assert rel_error(richardson_difference(f, x, v), exact, scale) <= 1e-8  # as in test_fd_gradients_match...
    assert rel_error(central_difference(f, x, v), exact, scale) <= 1e-7


def test_central_difference_at_complex_point_gives_holomorphic_derivative():
    z, f = np.array([0.5 + 1.5j, -1.0 + 0.2j]), (lambda w: w**3)   # d/dz z³ = 3z², along real v = 1
    np.testing.assert_allclose(richardson_difference(f, z, np.ones(2)), 3 * z**2, rtol=1e-10)
    np.testing.assert_allclose(fd_gradient(lambda w: np.sum(w**3), z), 3 * z**2, rtol=1e-10)


# ----------------------------------------------------------------------------------------------------- Taylor test
@pytest.mark.parametrize("case", sorted(CASES))
def test_taylor_rates_for_correct_gradient(case):
    f, grad, _ = CASES[case]
    result = taylor_test(f, X0, grad(X0))
    assert isinstance(result, TaylorResult) and result.passed
    assert abs(result.observed_rate0 - 1.0) <= 0.1      # r0 = h|⟨g,d⟩| + O(h²), ⟨g,d⟩ ≠ 0 here
    assert abs(result.observed_rate1 - 2.0) <= 0.1      # r1 = h²|dᵀHd|/2 + O(h³), dᵀHd ≠ 0 here
    assert np.all(result.eps[1:] == result.eps[:-1] / 2)


def test_taylor_remainder_of_quadratic_is_exact():
    a, _ = quadratic_data(X0.shape)
    result = taylor_test(quadratic, X0, quadratic_grad(X0))
    d = result.direction.reshape(-1)
    # J(x+hd) − J(x) − h⟨∇J,d⟩ = ½h² dᵀAd exactly, up to rounding ~ 30ε·|J| ≈ 1e-14 (J ≈ 20) absolute.
    np.testing.assert_allclose(result.remainder1, 0.5 * result.eps**2 * (d @ a @ d), rtol=1e-9,
                               atol=1e3 * EPS * abs(result.value))
    # that rounding is ≤ 1e-4 of the smallest r1 (1.7e-10), so every rate is 2 to within log2(1 + 2e-4) < 1e-3
    assert np.all(np.isfinite(result.rate1))
    np.testing.assert_allclose(result.rate1, 2.0, atol=1e-3)


def test_taylor_for_linear_function_is_at_noise_and_passes():
    b = np.array([1.5, -2.0, 0.25])
    result = taylor_test(lambda x: b @ x, np.array([0.1, 0.2, 0.3]), b)
    assert np.all(np.isnan(result.rate1)) and np.isnan(result.observed_rate1) and result.passed
    assert np.all(result.remainder1 <= result.noise_floor)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("k", [(0, 0), (1, 2)])
def test_taylor_detects_wrong_gradient_with_rate_one(case, k):
    f, grad, _ = CASES[case]
    wrong = grad(X0).copy()
    wrong[k] += 1e-3 * np.max(np.abs(wrong))        # a 1e-3 relative error in one component
    taylor = taylor_test(f, X0, wrong)
    a = (wrong[k] - grad(X0)[k]) * taylor.direction[k]   # ⟨δ,d⟩
    # r1(h) = |−a·h + b·h² + O(h³)|: r1/h → |a| and the rate → 1 once h ≪ |a/b|.  Here |b|·h_min/|a| ≤ 0.03 for all
    # three f (b ≤ 6, |a| ≥ 1e-4, h_min ≈ 6e-6), so r1/h is |a| within 5% and the last rate is 1 within 0.1.
    assert abs(taylor.remainder1[-1] / taylor.eps[-1] - abs(a)) <= 0.05 * abs(a)
    assert not taylor.passed and abs(taylor.observed_rate1 - 1.0) <= 0.1


def test_taylor_remainder_of_quadratic_with_wrong_gradient_is_exact():
    a, _ = quadratic_data(X0.shape)
    delta = np.zeros(X0.shape)
    delta[0, 1] = 1e-3
    result = taylor_test(quadratic, X0, quadratic_grad(X0) + delta)
    d = result.direction
    # r1(h) = |½h² dᵀAd − h⟨δ,d⟩| exactly (J quadratic); here the two terms cross near h = 2⟨δ,d⟩/dᵀAd, which is
    # why an error this small does not yet show rate 1 at the default h_min — the remainders say so explicitly.
    expected = np.abs(0.5 * result.eps**2 * (d.reshape(-1) @ a @ d.reshape(-1)) - result.eps * np.sum(delta * d))
    np.testing.assert_allclose(result.remainder1, expected, rtol=1e-5, atol=1e3 * EPS * abs(result.value))


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("k", [(0, 0), (1, 2)])
def test_check_grad_detects_wrong_component(case, k):
    f, grad, _ = CASES[case]
    wrong = grad(X0).copy()
    wrong[k] += 1e-3
    result = check_grad(f, X0, lambda x: wrong)
    assert not result.passed and result.worst_index == k
    assert any("Richardson" in msg for msg in result.failures)
    assert any("complex step" in msg for msg in result.failures)
    np.testing.assert_allclose(result.complex_step_errors[1], 1e-3, rtol=1e-9)   # cs is exact to ~1e-16
    with pytest.raises(AssertionError, match="FAILED"):
        result.raise_if_failed()


@pytest.mark.parametrize("use_complex_step", [None, False])
def test_scaled_gradient_is_detected_at_largest_component(use_complex_step):
    g = sin_x2_grad(X0)
    result = check_grad(sin_x2, X0, 1.01 * g, use_complex_step=use_complex_step)
    assert not result.passed
    assert result.worst_index == np.unravel_index(np.argmax(np.abs(g)), g.shape)
    # the error 0.01·|g|_∞ is reported relative to the reference's |·|_∞ to FD accuracy
    assert abs(result.fd_errors[2] - 0.01) <= 1e-8
    assert (result.complex_step_gradient is None) == (use_complex_step is False)


# ------------------------------------------------------------------------------------------------------ check_grad
@settings(max_examples=40, deadline=None)
@given(x=points, case=st.sampled_from(sorted(CASES)))
def test_check_grad_passes_correct_gradient(x, case):
    f, grad, _ = CASES[case]
    result = check_grad(f, x, grad)
    assert isinstance(result, GradCheckResult)
    assert result.passed, repr(result)
    assert result.complex_step_gradient is not None       # these f are holomorphic extensions
    # The default atol is meant to bound the FD error where ∇f ≈ 0: check it does against the closed form.
    assert np.max(np.abs(result.fd_gradient - grad(x))) <= result.atol


@pytest.mark.parametrize("f, grad, x", [(lambda x: np.sum(x**2), lambda x: 2 * x, np.zeros(4)),
                                        (sin_x2, sin_x2_grad, np.zeros((2, 2))),    # f(x) = 0 and ∇f = 0
                                        (quadratic, quadratic_grad, np.zeros(3))])  # f(x) = 0, ∇f = b
def test_check_grad_where_value_or_gradient_vanish(f, grad, x):
    result = check_grad(f, x, grad)
    assert result.passed, repr(result)
    assert result.complex_step_gradient is not None       # cs (exact) must not be mistaken for non-holomorphic


def test_repr_is_readable_report():
    text = repr(check_grad(sin_x2, X0, sin_x2_grad))
    for piece in ("PASSED", "Richardson FD", "est. FD error", "complex step", "worst index", "Taylor test", "rate1"):
        assert piece in text
    assert len(text.splitlines()) >= 6


def test_non_holomorphic_f_skips_or_fails_complex_step():
    cube_abs, cube_abs_grad = (lambda x: np.sum(np.abs(x) ** 3)), (lambda x: 3 * x * np.abs(x))
    result = check_grad(cube_abs, X0, cube_abs_grad)       # np.abs drops the imaginary part: skipped, still passes
    assert result.passed and result.complex_step_gradient is None and "holomorphic" in result.complex_step_note
    with pytest.raises(TypeError, match="holomorphic"):
        check_grad(cube_abs, X0, cube_abs_grad, use_complex_step=True)
    sq = lambda x: np.sum(x * np.conj(x))                  # = Σx² on reals, but Im of it vanishes on complex input
    assert check_grad(sq, X0, lambda x: 2 * x).complex_step_gradient is None
    assert not check_grad(sq, X0, lambda x: 2 * x, use_complex_step=True).passed


def test_complex_warning_inside_f_is_an_error():
    def casts_to_float(x):
        y = np.zeros(np.shape(x))
        y[...] = x                                         # ComplexWarning: imaginary part discarded
        return np.sum(y**2) + 0j * np.sum(x)
    with pytest.raises(TypeError, match="imaginary"):
        complex_step_gradient(casts_to_float, X0)


def test_deterministic_and_seeded():
    a, b = check_grad(sin_x2, X0, sin_x2_grad), check_grad(sin_x2, X0, sin_x2_grad)
    assert np.array_equal(a.taylor.direction, b.taylor.direction)
    assert np.array_equal(a.taylor.remainder1, b.taylor.remainder1) and np.array_equal(a.fd_gradient, b.fd_gradient)
    c = check_grad(sin_x2, X0, sin_x2_grad, seed=1)
    assert not np.array_equal(a.taylor.direction, c.taylor.direction)
    d = taylor_test(sin_x2, X0, sin_x2_grad(X0), seed=np.random.default_rng(1))
    assert np.array_equal(c.taylor.direction, d.direction)


def test_f_cannot_corrupt_the_point():
    x = X0.copy()

    def mutating(y):
        value = np.sum(y**2)
        y += 1.0
        return value
    result = check_grad(mutating, x, lambda y: 2 * y)
    assert np.array_equal(x, X0)
    assert result.passed, repr(result)   # every evaluation saw an uncorrupted point


# --------------------------------------------------------------------------------- default gradient: the tape
def tape_compositions():
    from refimpl.ad import ops
    a = np.random.default_rng(3).standard_normal((3, 3)) / np.sqrt(3)
    return {
        "sin_x2": (lambda x: ops.sum(ops.sin(x) * x**2), (2, 3)),
        "logsumexp": (lambda x: ops.log(ops.sum(ops.exp(x))), (4,)),
        "tanh_matmul_sigmoid": (lambda x: ops.sum(ops.tanh(ops.matmul(a, x)) * ops.sigmoid(x))
                                + ops.mean(ops.sqrt(1.0 + x * x)), (3,)),
        "einsum_transpose": (lambda x: ops.sum(ops.einsum("ij,jk->ik", x, ops.transpose(x)) ** 2) / 10.0, (2, 3)),
        "stack_reshape_power": (lambda x: ops.sum(ops.reshape(ops.stack([x[0] * x[1], ops.exp(x[2])]), (-1,))
                                                  ** 3), (3, 2)),
        "abs_maximum": (lambda x: ops.sum(ops.abs(x) ** 3 + ops.maximum(x, 0.1) ** 2), (5,)),  # not holomorphic
    }


@pytest.mark.parametrize("name", ["sin_x2", "logsumexp", "tanh_matmul_sigmoid", "einsum_transpose",
                                  "stack_reshape_power", "abs_maximum"])
def test_check_grad_with_default_tape_gradient(name):
    f, shape = tape_compositions()[name]
    x = np.random.default_rng(7).uniform(-1.0, 1.0, shape)
    result = check_grad(f, x).raise_if_failed()            # grad=None: refimpl.ad.grad(f)
    assert (result.complex_step_gradient is None) == (name == "abs_maximum"), result.complex_step_note
    if name == "sin_x2":                                   # and the tape agrees with the hand-derived gradient
        assert rel_error(result.gradient, sin_x2_grad(x), sin_x2_scale(x) + 1e-30) <= 1e-13


def test_check_grad_detects_a_wrong_vjp_on_the_tape():
    from refimpl.ad import ops
    from refimpl.ad.tape import primitive
    bad_cube = primitive(lambda x: x**3, vjp0=lambda g, ans, x: ops.multiply(g, 3.03 * x * x))   # 1 % too large
    f = lambda x: ops.sum(bad_cube(x) + ops.sin(x))
    x = np.array([0.5, -1.5, 1.0])
    result = check_grad(f, x)
    assert not result.passed and result.worst_index == (1,)   # |3·0.01·x²| is largest at x = −1.5
    np.testing.assert_allclose(result.fd_errors[0], 0.03 * x**2, rtol=1e-6)
    assert abs(result.taylor.observed_rate1 - 1.0) <= 0.1    # relative error 1e-2 ≫ b·h_min: rate-1 regime


# -------------------------------------------------------------------------------------------------- bad inputs
ONE = np.ones(3)
BAD_INPUTS = [
    (central_difference, (np.sum, ONE, ONE[:2]), ValueError, "v"),
    (central_difference, (np.sum, ONE, np.zeros(3)), ValueError, "v"),
    (central_difference, (np.sum, ONE, ONE, 0.0), ValueError, "eps"),
    (central_difference, (np.sum, ONE, ONE, -1e-3), ValueError, "eps"),
    (central_difference, (np.sum, ONE, ONE, "1e-3"), TypeError, "eps"),
    (central_difference, (np.sum, np.array([1.0, np.nan]), ONE[:2]), ValueError, "x"),
    (richardson_difference, (np.sum, np.array(["a"]), ONE[:1]), TypeError, "x"),
    (richardson_difference, (np.sum, np.array([]), np.array([])), ValueError, "x"),
    (richardson_difference, (np.sum, ONE, ONE, np.inf), ValueError, "eps"),
    (complex_step, (np.sum, ONE + 1j, ONE), TypeError, "x"),
    (complex_step, (np.sum, ONE, ONE + 1j), TypeError, "v"),
    (complex_step, (None, ONE, ONE), TypeError, "f"),
    (fd_gradient, (lambda x: x, ONE), ValueError, "f"),                   # not scalar
    (fd_gradient, (lambda x: np.sum(x) + np.inf, ONE), ValueError, "f"),     # non-finite value
    (fd_gradient, (np.sum, ONE, None, "forward"), ValueError, "method"),
    (complex_step_gradient, (np.sum, [True, False]), TypeError, "x"),
    (taylor_test, (np.sum, ONE, ONE[:2]), ValueError, "gradient"),
    (taylor_test, (np.sum, ONE, ONE, ONE[:1]), ValueError, "direction"),
    (taylor_test, (lambda x: 1j * np.sum(x), ONE, ONE), ValueError, "f"),    # complex-valued J
    (check_grad, (lambda x: x, ONE, ONE), ValueError, "f"),
    (check_grad, (np.sum, ONE, ONE[:2]), ValueError, "grad"),
    (check_grad, (np.sum, ONE, lambda x: x * np.nan), ValueError, "grad"),
    (check_grad, ("sum", ONE, ONE), TypeError, "f"),
]


@pytest.mark.parametrize("func, args, exc, name", BAD_INPUTS)
def test_bad_inputs_raise_naming_the_argument(func, args, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        func(*args)


@pytest.mark.parametrize("kwargs, exc, name", [({"seed": 1.5}, TypeError, "seed"), ({"n_eps": 2}, ValueError, "n_eps"),
                                               ({"eps0": 0.0}, ValueError, "eps0"),
                                               ({"rate_tol": 1.5}, ValueError, "rate_tol")])
def test_bad_taylor_options(kwargs, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        taylor_test(np.sum, ONE, ONE, **kwargs)


@pytest.mark.parametrize("kwargs, exc, name", [({"rtol": -1.0}, ValueError, "rtol"), ({"atol": np.nan}, ValueError, "atol"),
                                               ({"use_complex_step": "yes"}, TypeError, "use_complex_step"),
                                               ({"complex_rtol": 0}, ValueError, "complex_rtol")])
def test_bad_check_grad_options(kwargs, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        check_grad(np.sum, ONE, np.ones_like, **kwargs)
