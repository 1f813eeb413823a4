"""Every primitive's VJP against complex step (holomorphic ones) and Richardson finite differences (all).

Each test differentiates L(x) = Σ w ∘ op(x) with fixed nonzero weights w (so every output entry matters) and compares the
tape gradient with an independent route:

* complex step (``complex_step_gradient``, step 1e-30): exact to rounding, so the tolerance 1e-13 relative (‖·‖∞) is
  ~500 ulps — room for the rounding of both routes in sums of ≤ 64 terms, no room for a wrong rule;
* Richardson FD (``fd_gradient``): truncation O(h⁴) ≈ 1e-12 and rounding ≈ ε/h ≈ 3e-13 relative for the bounded,
  well-conditioned inputs drawn here (|x| ≤ 2, denominators and log/sqrt arguments ≥ 0.5), so 1e-8 has a wide margin
  (the issue's bar) while a wrong rule shows an O(1) error.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl.ad import grad, ops
from refimpl.ad.checks import complex_step_gradient, fd_gradient
from refimpl.testing import strategies as rst

CS_RTOL = 1e-13
FD_RTOL = 1e-8
SETTINGS = settings(max_examples=30, deadline=None)


def weights(shape):
    """Fixed weights 1 + ½cos(1.3k + 0.7) ∈ [½, 3/2]: nonzero, unequal, and positive so that reductions in the VJPs
    (Σ over broadcast axes) do not cancel — a 1e-13 relative bar is then a statement about the rule, not about the
    conditioning of a sum."""
    k = np.arange(int(np.prod(shape, dtype=int)))
    return (1.0 + 0.5 * np.cos(1.3 * k + 0.7)).reshape(shape)


def rel_err(g, ref):
    """‖g − ref‖∞ / max(‖ref‖∞, 1). The inputs (|x| ≤ 2) and weights (≤ 3/2) are O(1), so every gradient entry is a
    sum of O(1) terms whose rounding is ~ε in absolute terms, whatever the entry's own size: where the exact gradient
    is 0 (hypothesis finds such points) the tape returns ±1e-16 from cancellation and the complex step 0 or its
    truncation h²f‴/6 ≈ 1e-60. Below unit size the bar is therefore absolute (1e-13), above it relative."""
    scale = max(np.max(np.abs(ref), initial=0.0), 1.0)
    return np.max(np.abs(np.asarray(g) - ref), initial=0.0) / scale


def loss_of(op, *others, argnum=0):
    """L(x) = Σ w ∘ op(…, x at position argnum, …) with the other operands fixed."""
    def L(x):
        args = list(others)
        args.insert(argnum, x)
        out = op(*args)
        return ops.sum(ops.multiply(weights(np.shape(out.value if hasattr(out, "value") else out)), out))
    return L


def check(L, x, holomorphic=True):
    g = grad(L)(x)
    assert g.shape == x.shape and g.dtype == np.float64
    if holomorphic:
        assert rel_err(g, complex_step_gradient(L, x)) <= CS_RTOL
    assert fd_err(L, x, g) <= FD_RTOL


def fd_err(L, x, g):
    """‖g − g_fd‖∞ / max(‖g_fd‖∞, |L(x)|, 1). FD's error is absolute — rounding ε·|L(x ± h)|/h plus truncation
    O(h⁴) on the O(1) scale of these inputs (|x| ≤ 2, weights in [½, 3/2]) — whatever the gradient's own size, so a
    gradient that happens to be ≈ 0 is measured on the unit scale rather than relative to itself."""
    g_fd = fd_gradient(L, x)
    return np.max(np.abs(g - g_fd)) / max(np.max(np.abs(g_fd)), abs(complex(L(x))), 1.0)


UNARY_HOLOMORPHIC = {
    "negative": (ops.negative, rst.float_arrays()),
    "exp": (ops.exp, rst.float_arrays()),
    "log": (ops.log, rst.positive_arrays(low=0.5)),
    "sqrt": (ops.sqrt, rst.positive_arrays(low=0.5)),
    "sin": (ops.sin, rst.float_arrays()),
    "cos": (ops.cos, rst.float_arrays()),
    "tanh": (ops.tanh, rst.float_arrays()),
    "sigmoid": (ops.sigmoid, rst.float_arrays(bound=4.0)),
    "power_const_2": (lambda x: ops.power(x, 2), rst.float_arrays()),
    "power_const_-1.5": (lambda x: ops.power(x, -1.5), rst.positive_arrays(low=0.5)),
    "power_operator_3": (lambda x: x ** 3, rst.float_arrays()),
    "sum_all": (ops.sum, rst.float_arrays()),
    "sum_axis0": (lambda x: ops.sum(x, axis=0), rst.float_arrays(shape=rst.shapes(min_dims=1))),
    "sum_last_keepdims": (lambda x: ops.sum(x, axis=-1, keepdims=True), rst.float_arrays(shape=rst.shapes(min_dims=1))),
    "mean_axis0": (lambda x: ops.mean(x, axis=0), rst.float_arrays(shape=rst.shapes(min_dims=1))),
    "mean_all": (ops.mean, rst.float_arrays()),
    "reshape_flat": (lambda x: ops.reshape(x, (-1,)), rst.float_arrays()),
    "transpose": (ops.transpose, rst.float_arrays()),
    "T": (lambda x: ops.multiply(1.0, x).T if np.ndim(x) else x, rst.float_arrays()),
    "broadcast_to": (lambda x: ops.broadcast_to(x, (3,) + np.shape(x)), rst.float_arrays()),
    "getitem_slice": (lambda x: x[1:], rst.float_arrays(shape=rst.shapes(min_dims=1))),
    "getitem_repeated_index": (lambda x: ops.getitem(x, np.array([0, 0, -1, 0])),
                               rst.float_arrays(shape=rst.shapes(min_dims=1))),
    "getitem_int_then_step": (lambda x: ops.getitem(x, (0, slice(None, None, 2))),
                              rst.float_arrays(shape=rst.shapes(min_dims=2))),
    "stack_self": (lambda x: ops.stack([x, ops.sin(x), x], axis=-1), rst.float_arrays()),
    "concatenate_self": (lambda x: ops.concatenate([x, ops.exp(x)], axis=0),
                         rst.float_arrays(shape=rst.shapes(min_dims=1))),
}


@pytest.mark.parametrize("name", sorted(UNARY_HOLOMORPHIC))
@SETTINGS
@given(data=st.data())
def test_unary_holomorphic(name, data):
    op, strategy = UNARY_HOLOMORPHIC[name]
    x = data.draw(strategy)
    check(loss_of(op), x)


BINARY_HOLOMORPHIC = {
    "add": (ops.add, {}),
    "subtract": (ops.subtract, {}),
    "multiply": (ops.multiply, {}),
    "divide": (ops.divide, {"min_abs": 0.5}),
    "operators": (lambda a, b: (a + 2.0 * b) * a - b / 3.0 - a / (1.5 + b * b), {}),
}


@pytest.mark.parametrize("name", sorted(BINARY_HOLOMORPHIC))
@pytest.mark.parametrize("argnum", [0, 1])
@SETTINGS
@given(data=st.data())
def test_binary_broadcasting(name, argnum, data):
    op, kw = BINARY_HOLOMORPHIC[name]
    a, b = data.draw(rst.broadcast_pairs(**kw))
    x, other = (a, b) if argnum == 0 else (b, a)
    check(loss_of(op, other, argnum=argnum), x)


@pytest.mark.parametrize("argnum", [0, 1])
@SETTINGS
@given(data=st.data())
def test_power_both_variable(argnum, data):
    a, expo = data.draw(rst.broadcast_pairs())
    base = np.abs(a) + 0.5  # positive base: x^y = exp(y log x) is smooth in both
    x, other = (base, expo) if argnum == 0 else (expo, base)
    check(loss_of(ops.power, other, argnum=argnum), x)


MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                 ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2)), ((3,), (5, 3, 2)),
                 ((5, 2, 3), (3,))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
@pytest.mark.parametrize("argnum", [0, 1])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_matmul(shapes, argnum, data):
    a = data.draw(rst.float_arrays(shape=shapes[0]))
    b = data.draw(rst.float_arrays(shape=shapes[1]))
    x, other = (a, b) if argnum == 0 else (b, a)
    check(loss_of(ops.matmul, other, argnum=argnum), x)
    if all(len(s) <= 2 for s in shapes):
        check(loss_of(ops.dot, other, argnum=argnum), x)


EINSUMS = [("ij,jk->ik", (2, 3), (3, 4)), ("ij,ij->i", (2, 3), (2, 3)), ("i,j->ij", (3,), (4,)),
           ("bij,bj->bi", (2, 3, 4), (2, 4)), ("ij,ij->", (2, 3), (2, 3))]


@pytest.mark.parametrize("spec", EINSUMS, ids=lambda s: s[0])
@pytest.mark.parametrize("argnum", [0, 1])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_einsum(spec, argnum, data):
    sub, sa, sb = spec
    a, b = data.draw(rst.float_arrays(shape=sa)), data.draw(rst.float_arrays(shape=sb))
    np.testing.assert_allclose(ops.einsum(sub, a, b), np.einsum(sub, a, b), rtol=1e-15, atol=1e-15)
    x, other = (a, b) if argnum == 0 else (b, a)
    check(loss_of(lambda p, q: ops.einsum(sub, p, q), other, argnum=argnum), x)


# -- non-holomorphic primitives: Richardson FD, away from kinks; complex step where the primitive is piecewise
#    holomorphic (maximum/minimum/where select by real part, so away from ties they are locally holomorphic) ---------
@SETTINGS
@given(x=rst.float_arrays(min_abs=0.1))
def test_abs_away_from_zero(x):
    check(loss_of(ops.abs), x, holomorphic=False)


def test_abs_subgradient_at_zero_is_zero():
    """Documented choice: d|x|/dx at 0 is the subgradient 0 (the midpoint of [−1, 1])."""
    np.testing.assert_array_equal(grad(lambda x: ops.sum(ops.abs(x)))(np.array([0.0, -2.0, 3.0])), [0.0, -1.0, 1.0])


@pytest.mark.parametrize("op", [ops.maximum, ops.minimum], ids=["maximum", "minimum"])
@pytest.mark.parametrize("argnum", [0, 1])
@SETTINGS
@given(data=st.data())
def test_maximum_minimum(op, argnum, data):
    # a on the grid ½ℤ + ¼, b on ½ℤ: |a − b| ≥ ¼ everywhere, so the FD stencil (≤ 1.5e-3) never crosses a tie
    a, b = data.draw(rst.broadcast_pairs())
    a, b = np.round(2 * a) / 2 + 0.25, np.round(2 * b) / 2
    x, other = (a, b) if argnum == 0 else (b, a)
    check(loss_of(op, other, argnum=argnum), x)


def test_maximum_tie_splits_evenly():
    g = grad(lambda x: ops.sum(ops.maximum(x, np.array([1.0, 0.0]))))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(g, [0.5, 1.0])


@pytest.mark.parametrize("argnum", [1, 2])
@SETTINGS
@given(data=st.data())
def test_where(argnum, data):
    a, b = data.draw(rst.broadcast_pairs())
    cond = np.cos(3.0 * np.broadcast_to(a, np.broadcast_shapes(a.shape, b.shape))) > 0  # a fixed mask
    others = [cond, a, b]
    x = others.pop(argnum)
    check(loss_of(ops.where, *others, argnum=argnum), x)


# -- complex inputs: holomorphic f: ℂⁿ → ℂ has grad(f)(z) = ∂f/∂z, checked by Richardson FD along real directions ----
HOLOMORPHIC_COMPLEX = {
    "exp": ops.exp, "log": ops.log, "sqrt": ops.sqrt, "sin": ops.sin, "cos": ops.cos, "tanh": ops.tanh,
    "sigmoid": ops.sigmoid, "square": lambda z: z * z, "reciprocal": lambda z: 1.0 / (2.5 + z),
    "power": lambda z: ops.power(z + 2.5, 1.5), "matmul": lambda z: ops.matmul(ops.reshape(z, (-1,)),
                                                                               ops.reshape(z, (-1,))),
}


@pytest.mark.parametrize("name", sorted(HOLOMORPHIC_COMPLEX))
@settings(max_examples=15, deadline=None)
@given(z=rst.complex_arrays(bound=1.0))
def test_complex_holomorphic(name, z):
    op = HOLOMORPHIC_COMPLEX[name]
    if name in ("log", "sqrt"):
        z = z + 2.5  # stay off the branch cut (−∞, 0]
    L = loss_of(op)
    g = grad(L)(z)
    assert g.dtype == np.complex128
    assert fd_err(L, z, g) <= FD_RTOL


def test_nonholomorphic_complex_convention():
    """Real-valued f of z = x + iy: grad = ∂f/∂x − i ∂f/∂y (JAX convention), checked against FD on x and y."""
    z = np.array([0.3 + 0.4j, -1.2 + 0.5j])
    c = np.array([1.5 - 0.5j, 0.25 + 2.0j])

    def f(z):
        return ops.sum(ops.abs(z) ** 2 * 0.5 + ops.real(ops.multiply(c, ops.conj(z))) + ops.imag(z * z) * 0.3)

    g = grad(f)(z)
    dx = fd_gradient(lambda x: f(x + 1j * z.imag), z.real)
    dy = fd_gradient(lambda y: f(z.real + 1j * y), z.imag)
    assert rel_err(g, dx - 1j * dy) <= FD_RTOL
