"""The public AD functions: second derivatives, jacobian/vjp, input validation, and a cross-check against HIPS autograd."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl.ad import grad, hvp, jacobian, ops, value_and_grad, vjp
from refimpl.ad.checks import central_difference, fd_gradient, richardson_difference, taylor_test
from refimpl.testing import strategies as rst


# -- random compositions -------------------------------------------------------------------------------------------
# Each composition maps x (shape (n,)) to a scalar through several primitives, with fixed matrices drawn from a seed.
def _composition(kind, n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    b = rng.standard_normal(n)
    c = rng.uniform(0.5, 1.5, n)

    def f(x):
        if kind == "tanh_layer":
            return ops.sum(ops.tanh(ops.matmul(A, x) + b) * c)
        if kind == "logsumexp":
            return ops.log(ops.sum(ops.exp(ops.matmul(A, x))))
        if kind == "rational":
            return ops.sum((x * x + b) / (1.0 + c * x * x)) + ops.dot(x, ops.matmul(A, x))
        if kind == "trig_pow":
            return ops.sum(ops.sin(x) * ops.cos(ops.matmul(A, x)) + ops.power(c + x * x, 1.5))
        if kind == "stack_index":
            y = ops.stack([x[0] * x[-1], ops.sum(ops.sigmoid(x)), ops.mean(ops.sqrt(1.0 + x * x))])
            return ops.sum(ops.concatenate([y, ops.exp(x[1:] * 0.5)]) * ops.concatenate([y, c[1:]]))
        raise ValueError(kind)

    return f


KINDS = ["tanh_layer", "logsumexp", "rational", "trig_pow", "stack_index"]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 5), data=st.data())
def test_hvp_matches_fd_of_grad(kind, seed, n, data):
    """H v by reverse-over-reverse vs Richardson FD of the tape gradient along v: d/dε ∇f(x + εv) = H v. The FD error
    is O(h⁴) + ε·|∇f|/h ≈ 1e-12 on these O(1) functions; 1e-8 relative (unit floor) leaves margin, an error in a
    second-order rule shows at O(1)."""
    x = data.draw(rst.float_arrays(shape=(n,), bound=1.5))
    v = data.draw(rst.float_arrays(shape=(n,), bound=1.0, min_abs=0.1))
    f = _composition(kind, n, seed)
    Hv = hvp(f)(x, v)
    ref = richardson_difference(grad(f), x, v)
    assert np.max(np.abs(Hv - ref)) <= 1e-8 * max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("kind", KINDS)
def test_grad_of_grad_and_hessian_symmetry(kind):
    """The Hessian by jacobian(grad(f)) is symmetric (to rounding) and each column equals hvp with a unit vector."""
    n = 4
    f = _composition(kind, n, 7)
    x = np.linspace(-0.7, 0.9, n)
    H = jacobian(grad(f))(x)
    assert H.shape == (n, n)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-13 * max(1.0, np.max(np.abs(H))))
    for k in range(n):
        np.testing.assert_allclose(hvp(f)(x, np.eye(n)[k]), H[:, k], rtol=0, atol=1e-13 * max(1.0, np.max(np.abs(H))))


def test_third_derivative_scalar():
    """grad³ of sin is −cos (three nested traces)."""
    x = np.array(0.37)
    assert abs(grad(grad(grad(ops.sin)))(x) - (-np.cos(0.37))) <= 1e-15


def test_jacobian_and_vjp_against_fd():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((3, 4))

    def f(x):
        return ops.tanh(ops.matmul(A, x)) * ops.sum(x * x)

    x = rng.standard_normal(4)
    J = jacobian(f)(x)
    J_fd = np.stack([richardson_difference(f, x, e) for e in np.eye(4)], axis=-1)
    np.testing.assert_allclose(J, J_fd, rtol=0, atol=1e-9)  # Richardson error ≈ 1e-12 at this O(1) scale
    value, pullback = vjp(f, x)
    g = rng.standard_normal(3)
    np.testing.assert_allclose(value, f(x), rtol=0, atol=0)
    np.testing.assert_allclose(pullback(g)[0], g @ J, rtol=0, atol=1e-13)


def test_vjp_multiple_arguments_and_unused_argument():
    def f(a, b, c):
        return a * ops.sin(b) + 0.0 * a

    a, b, c = np.array([1.0, 2.0]), np.array([0.3, -0.4]), np.array([5.0])
    _, pullback = vjp(f, a, b, c)
    ga, gb, gc = pullback(np.ones(2))
    np.testing.assert_allclose(ga, np.sin(b), rtol=1e-15)
    np.testing.assert_allclose(gb, a * np.cos(b), rtol=1e-15)
    np.testing.assert_array_equal(gc, np.zeros(1))


def test_value_and_grad_argnum_and_constant_output():
    v, g = value_and_grad(lambda a, x: ops.sum(a * x * x), argnum=1)(np.array([1.0, 2.0]), np.array([3.0, -1.0]))
    assert v == 11.0  # 1·3² + 2·(−1)²
    np.testing.assert_array_equal(g, [6.0, -4.0])
    np.testing.assert_array_equal(grad(lambda x: 3.0)(np.ones(3)), np.zeros(3))  # output independent of x


def test_taylor_rates_on_tape_gradient():
    """Taylor test (docs/theory/autodiff.md): r0 falls at rate 1 and r1 at rate 2 for the correct gradient; a wrong
    gradient gives r1 rate 1."""
    f = _composition("trig_pow", 5, 3)
    x = np.linspace(-1.0, 1.0, 5)
    good = taylor_test(f, x, grad(f)(x), seed=1)
    assert abs(good.observed_rate0 - 1.0) <= 0.1 and abs(good.observed_rate1 - 2.0) <= 0.1
    bad = taylor_test(f, x, grad(f)(x) * 1.01, seed=1)
    assert abs(bad.observed_rate1 - 1.0) <= 0.1 and not bad.passed


# -- input validation at the entry point --------------------------------------------------------------------------
def test_rejects_bad_inputs():
    f = lambda x: ops.sum(x * x)  # noqa: E731
    with pytest.raises(TypeError, match=r"args\[0\]"):
        grad(f)([1.0, 2.0])  # a list is not an array
    with pytest.raises(TypeError, match=r"float32"):
        grad(f)(np.ones(3, dtype=np.float32))  # no silent change of precision
    with pytest.raises(TypeError, match=r"args\[0\]"):
        grad(f)(np.array(["a"]))
    with pytest.raises(TypeError, match="bool"):
        grad(f)(True)
    with pytest.raises(ValueError, match=r"args\[0\].*NaN or inf"):
        grad(f)(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"args\[0\].*NaN or inf"):
        grad(f)(np.array([np.inf]))
    with pytest.raises(ValueError, match="scalar-valued"):
        grad(lambda x: x * 2.0)(np.ones(3))
    with pytest.raises(ValueError, match="non-finite"), np.errstate(divide="ignore"):
        grad(lambda x: ops.sum(ops.log(x)))(np.array([0.0, 1.0]))
    for bad in ("a", None, {"x": 1.0}):
        with pytest.raises(TypeError, match="`f` must return a number"):
            grad(lambda x, bad=bad: bad)(np.ones(2))
    with pytest.raises(TypeError, match="`f` must be callable"):
        grad(3.0)(np.ones(2))
    with pytest.raises(ValueError, match="argnum"):
        grad(f, argnum=2)(np.ones(2))
    with pytest.raises(ValueError, match="`v` has shape"):
        hvp(f)(np.ones(3), np.ones(2))
    _, pullback = vjp(lambda x: x * 2.0, np.ones(3))
    with pytest.raises(ValueError, match="`g` has shape"):
        pullback(np.ones(2))
    with pytest.raises(ValueError, match="operands"):
        ops.einsum("ij,jk,kl->il", np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        ops.stack([np.ones(2), np.ones(3)])


def test_integer_inputs_are_promoted_not_truncated():
    g = grad(lambda x: ops.sum(x * x))(np.array([1, 2, 3]))
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [2.0, 4.0, 6.0])


def test_variable_refuses_silent_conversion():
    with pytest.raises(TypeError, match="cannot be converted"):
        grad(lambda x: float(np.sum(np.asarray(x))))(np.ones(2))
    with pytest.raises(TypeError, match="truth value"):
        grad(lambda x: ops.sum(x) if x[0] else 0.0)(np.ones(2))


def test_deep_graph_has_no_recursion_limit():
    """The backward pass is iterative: a chain of 20 000 primitives differentiates (a recursive sort would overflow)."""
    def f(x):
        for _ in range(10_000):
            x = x * 1.0001 + 0.0
        return ops.sum(x)

    np.testing.assert_allclose(grad(f)(np.ones(2)), np.full(2, 1.0001 ** 10_000), rtol=1e-11)


# -- cross-check against an implementation no one here wrote ------------------------------------------------------
autograd = pytest.importorskip("autograd", reason="HIPS autograd not installed (pip install -e .[test])")
anp = pytest.importorskip("autograd.numpy")


def _pair(kind, n, seed):
    """The same composition written for refimpl (ops) and for autograd (autograd.numpy)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n)) / np.sqrt(n)
    b = rng.standard_normal(n)
    c = rng.uniform(0.5, 1.5, n)
    forms = {
        "tanh_layer": lambda m, x: m.sum(m.tanh(m.matmul(A, x) + b) * c),
        "logsumexp": lambda m, x: m.log(m.sum(m.exp(m.matmul(A, x)))),
        "rational": lambda m, x: m.sum((x * x + b) / (1.0 + c * x * x)) + m.dot(x, m.matmul(A, x)),
        "trig_pow": lambda m, x: m.sum(m.sin(x) * m.cos(m.matmul(A, x)) + m.power(c + x * x, 1.5)),
        "sqrt_max": lambda m, x: m.sum(m.sqrt(1.0 + x * x) * m.maximum(x, b) - m.minimum(x, 0.5 * b) ** 2),
        "abs_where": lambda m, x: m.sum(m.abs(x - b) * m.where(b > 0, x, m.exp(x))),
        "reshape_transpose": lambda m, x: m.sum(m.transpose(m.reshape(m.concatenate([x, x * x]), (2, n))) ** 3
                                                 * m.mean(m.stack([x, c]), axis=0)[:, None]),
    }
    f = forms[kind]
    return (lambda x: f(ops, x)), (lambda x: f(anp, x))


@pytest.mark.parametrize("kind", ["tanh_layer", "logsumexp", "rational", "trig_pow", "sqrt_max", "abs_where",
                                  "reshape_transpose"])
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), data=st.data())
def test_same_gradient_as_hips_autograd(kind, seed, n, data):
    """Gradients and Hessian-vector products agree with autograd to 1e-13 relative (two implementations of the same
    rules differ only by rounding in differently ordered sums)."""
    x = data.draw(rst.float_arrays(shape=(n,), bound=1.5, min_abs=0.05))
    ours, theirs = _pair(kind, n, seed)
    b = np.random.default_rng(seed).standard_normal(n)  # kinks of abs/max/min sit at x = b, 0.5b: keep away
    if kind in ("sqrt_max", "abs_where") and np.min(np.abs(np.concatenate([x - b, x - 0.5 * b]))) < 1e-3:
        return
    g_ours, g_theirs = grad(ours)(x), autograd.grad(theirs)(x)
    assert np.max(np.abs(g_ours - g_theirs)) <= 1e-13 * max(1.0, np.max(np.abs(g_theirs)))
    v = np.cos(np.arange(n) + 0.5)
    h_ours = hvp(ours)(x, v)
    h_theirs = autograd.grad(lambda y: anp.sum(autograd.grad(theirs)(y) * v))(x)
    assert np.max(np.abs(h_ours - h_theirs)) <= 1e-13 * max(1.0, np.max(np.abs(h_theirs)))


# -- the in-place accumulation of indexing cotangents (tape.backward's fast path) ---------------------------------
def test_indexing_fast_path_matches_the_rule_path():
    """Many reads x[n], slices, repeated fancy indices and whole-array uses of the same x: the first-order gradient
    (accumulated in place) equals the closed form, and equals the gradient computed through the rule path (the
    gradient of ⟨∇f, e⟩ w.r.t. a dummy scale, which runs backward on Variable cotangents)."""
    rng = np.random.default_rng(5)
    c = rng.standard_normal((6, 3))
    idx = np.array([0, 0, 5, 2])

    def f(x):
        terms = [ops.sum(x[n] * c[n]) for n in range(6)]  # basic-index reads
        terms.append(ops.sum(x[1:4, ::2] ** 2))  # a slice
        terms.append(ops.sum(x[idx] * 0.5))  # advanced index with a repeat
        terms.append(ops.sum(ops.sin(x)))  # a dense use of the whole array
        return ops.sum(ops.stack(terms))

    x = rng.standard_normal((6, 3))
    expected = c + np.cos(x)
    expected[1:4, ::2] += 2 * x[1:4, ::2]
    np.add.at(expected, idx, 0.5)
    np.testing.assert_allclose(grad(f)(x), expected, rtol=1e-14, atol=1e-14)
    # rule path: d/ds of ⟨∇f(x), 1⟩ evaluated at a Variable-valued cotangent chain (second-order trace)
    g_rule = grad(lambda s: ops.sum(grad(lambda y: f(y * s))(x)))(np.array(1.0))
    fd = richardson_difference(lambda s: np.sum(grad(lambda y: f(y * s))(x)), np.array(1.0), np.array(1.0))
    assert abs(g_rule - fd) <= 1e-8 * max(1.0, abs(fd))


def test_indexing_fast_path_complex():
    """A real input read through indices with complex cotangents keeps the real part (JAX convention); a complex
    input accumulates complex cotangents."""
    x = np.array([0.3, -0.2, 1.1])
    g = grad(lambda v: ops.real(ops.sum(ops.exp(1j * v[np.array([0, 0, 2])]))))(x)
    np.testing.assert_allclose(g, [-2 * np.sin(0.3), 0.0, -np.sin(1.1)], rtol=1e-15, atol=1e-16)
    z = np.array([0.3 + 0.1j, -0.2 + 0.4j])
    gz = grad(lambda v: v[0] * v[1] + v[0] ** 2)(z)  # holomorphic: ∂/∂z₀ = z₁ + 2z₀, ∂/∂z₁ = z₀
    np.testing.assert_allclose(gz, [z[1] + 2 * z[0], z[0]], rtol=1e-15)
