"""Plain NumPy on tape Variables (refimpl.ad.numpy_dispatch): the dispatch table, its errors, and unmodified code.

1. The dispatch table: every supported NumPy function, called on Variables, records the same primitive as the
   ``ops`` function the table names — same value, same gradient, same Hessian-vector product, bit for bit (the array
   operands in the other argument positions also exercise ``ndarray (op) Variable``); value queries record nothing.
   The test's case list must cover the registry exactly, so a new row cannot go untested.
2. Everything else raises a ``TypeError`` naming the NumPy function; nothing is converted to a constant.
3. docs/numpy-dispatch.md is the text generated from the registry.
4. Unmodified NumPy code differentiated with ``refimpl.ad.grad``/``hvp``: SciPy's Rosenbrock function (against
   ``rosen_der`` and ``rosen_hess_prod``), a plain-NumPy RK4 loop (against refimpl's hand discrete adjoint and the tape
   through refimpl.ode), Gaussian log-densities — each also against complex step.
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refimpl.ad import Variable, getvalue, grad, hvp, ops
from refimpl.ad import numpy_dispatch as nd
from refimpl.ad.checks import complex_step_gradient
from refimpl.testing import strategies as rst

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------------------------------
# 1. the dispatch table


def _weights(shape):
    """Fixed, distinct weights of ``shape`` (the scalarisation ⟨w, f(x)⟩ of an array output)."""
    return (1.0 + 0.5 * np.cos(np.arange(int(np.prod(shape, dtype=int))))).reshape(shape)


def _scalar(out):
    """⟨w, out⟩ written with ops (identical on both sides of a comparison); a tuple output sums its taped parts."""
    if isinstance(out, tuple):
        return functools.reduce(ops.add, [_scalar(o) for o in out if isinstance(o, Variable)])
    return ops.sum(ops.multiply(out, _weights(np.shape(getvalue(out)))))


def _arrays(*shapes, positive=(), min_abs=0.0):
    """A strategy of float64 arrays of the given shapes (entries in [0.2, 3] at the indices in ``positive``)."""
    return st.tuples(*(rst.positive_arrays(s) if i in positive else rst.float_arrays(s, min_abs=min_abs)
                       for i, s in enumerate(shapes)))


_pairs = rst.broadcast_pairs(min_abs=0.2)
_cplx = st.tuples(rst.complex_arrays((3, 2)))
# NumPy name -> (function written with NumPy, the same function written with ops, strategy of the argument tuple)
CASES = {
    "numpy.add": (np.add, ops.add, _pairs),
    "numpy.subtract": (np.subtract, ops.subtract, _pairs),
    "numpy.multiply": (np.multiply, ops.multiply, _pairs),
    "numpy.divide": (np.divide, ops.divide, _pairs),
    "numpy.power": (np.power, ops.power, _arrays((3, 2), (2,), positive=(0,))),
    "numpy.negative": (np.negative, ops.negative, _arrays((3, 2))),
    "numpy.positive": (np.positive, lambda x: x, _arrays((3, 2))),
    "numpy.exp": (np.exp, ops.exp, _arrays((3, 2))),
    "numpy.log": (np.log, ops.log, _arrays((3, 2), positive=(0,))),
    "numpy.sqrt": (np.sqrt, ops.sqrt, _arrays((3, 2), positive=(0,))),
    "numpy.sin": (np.sin, ops.sin, _arrays((3, 2))),
    "numpy.cos": (np.cos, ops.cos, _arrays((3, 2))),
    "numpy.tanh": (np.tanh, ops.tanh, _arrays((3, 2))),
    "numpy.absolute": (np.abs, ops.abs, _arrays((3, 2), min_abs=0.1)),
    "numpy.maximum": (np.maximum, ops.maximum, _pairs),
    "numpy.minimum": (np.minimum, ops.minimum, _pairs),
    "numpy.square": (np.square, lambda x: ops.multiply(x, x), _arrays((3, 2))),
    "numpy.conjugate": (np.conj, ops.conj, _cplx),
    "numpy.real": (np.real, ops.real, _cplx),
    "numpy.imag": (np.imag, ops.imag, _cplx),
    "numpy.matmul": (np.matmul, ops.matmul, _arrays((3, 4), (4, 2))),
    "numpy.add.reduce": (lambda x: np.add.reduce(x, axis=1), lambda x: ops.sum(x, axis=1), _arrays((3, 4))),
    "numpy.sum": (lambda x: np.sum(x, axis=0), lambda x: ops.sum(x, axis=0), _arrays((3, 4))),
    "numpy.mean": (lambda x: np.mean(x, axis=1, keepdims=True), lambda x: ops.mean(x, axis=1, keepdims=True),
                   _arrays((3, 4))),
    "numpy.reshape": (lambda x: np.reshape(x, (6, 2)), lambda x: ops.reshape(x, (6, 2)), _arrays((3, 4))),
    "numpy.ravel": (np.ravel, lambda x: ops.reshape(x, (-1,)), _arrays((3, 4))),
    "numpy.squeeze": (np.squeeze, lambda x: ops.reshape(x, (3, 4)), _arrays((3, 1, 4))),
    "numpy.expand_dims": (lambda x: np.expand_dims(x, 1), lambda x: ops.reshape(x, (3, 1, 4)), _arrays((3, 4))),
    "numpy.transpose": (np.transpose, ops.transpose, _arrays((3, 4, 2))),
    "numpy.swapaxes": (lambda x: np.swapaxes(x, 0, 2), lambda x: ops.swapaxes(x, 0, 2), _arrays((3, 4, 2))),
    "numpy.broadcast_to": (lambda x: np.broadcast_to(x, (2, 3, 4)), lambda x: ops.broadcast_to(x, (2, 3, 4)),
                           _arrays((3, 1))),
    "numpy.where": (lambda x, y: np.where(x > 0, x, y), lambda x, y: ops.where(x > 0, x, y), _pairs),
    "numpy.concatenate": (lambda x, y: np.concatenate([x, y], axis=1), lambda x, y: ops.concatenate([x, y], axis=1),
                          _arrays((3, 2), (3, 4))),
    "numpy.stack": (lambda x, y: np.stack([x, y], axis=1), lambda x, y: ops.stack([x, y], axis=1),
                    _arrays((3, 2), (3, 2))),
    "numpy.dot": (np.dot, ops.dot, _arrays((3, 4), (4,))),
    "numpy.einsum": (lambda a, b: np.einsum("ij,kj->ki", a, b), lambda a, b: ops.einsum("ij,kj->ki", a, b),
                     _arrays((3, 4), (2, 4))),
}


_SPD = np.array([[2.0, 0.5, 0.1], [0.5, 1.5, -0.3], [0.1, -0.3, 1.0]])
_spd_and_vector = st.tuples(rst.spd_matrices(3), rst.float_arrays((3,)))  # eigenvalues in [0.2, 4]: condition ≤ 20
_spd_only = st.tuples(rst.spd_matrices(3))


def _separated_spd(seed):
    """An SPD matrix with eigenvalues ≥ 0.5 apart (eigh's eigenvectors are differentiable only for distinct ones)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return ((Q * (np.array([0.5, 1.5, 3.0]) + rng.uniform(0.0, 0.5, 3))) @ Q.T,)


_separated_spd_only = st.integers(0, 2 ** 32 - 1).map(_separated_spd)


def _linalg(name):
    """refimpl.ad.linalg.<name>, looked up at call time (so that this module imports without it)."""
    return lambda *a, **kw: getattr(importlib.import_module("refimpl.ad.linalg"), name)(*a, **kw)


#: the refimpl.ad.linalg function each linear-algebra row calls (its NumPy name's last part)
_LINALG_ATTR = {"numpy.linalg.solve": "solve", "numpy.linalg.inv": "inv", "numpy.linalg.det": "det",
                "numpy.linalg.slogdet": "slogdet", "numpy.linalg.cholesky": "cholesky", "numpy.linalg.eigh": "eigh",
                "numpy.trace": "trace", "numpy.diagonal": "diagonal", "numpy.outer": "outer"}

LINALG_CASES = {
    "numpy.linalg.solve": (np.linalg.solve, _linalg("solve"), _spd_and_vector),
    "numpy.linalg.inv": (np.linalg.inv, _linalg("inv"), _spd_only),
    "numpy.linalg.det": (np.linalg.det, _linalg("det"), _spd_only),
    "numpy.linalg.slogdet": (np.linalg.slogdet, _linalg("slogdet"), _spd_only),
    "numpy.linalg.cholesky": (np.linalg.cholesky, _linalg("cholesky"), _spd_only),
    "numpy.linalg.eigh": (np.linalg.eigh, _linalg("eigh"), _separated_spd_only),
    "numpy.trace": (np.trace, _linalg("trace"), _spd_only),
    "numpy.diagonal": (np.diagonal, _linalg("diagonal"), _spd_only),
    "numpy.outer": (np.outer, _linalg("outer"), _arrays((3,), (4,))),
}

# value queries: f(x) on a Variable must equal f on its value and be no Variable
QUERY_CASES = {
    "numpy.shape": np.shape, "numpy.ndim": np.ndim, "numpy.size": np.size,
    "numpy.iscomplexobj": np.iscomplexobj, "numpy.isrealobj": np.isrealobj,
    "numpy.result_type": lambda x: np.result_type(x, 1.0),
    "numpy.less": lambda x: np.less(np.zeros(np.shape(x)), x), "numpy.less_equal": lambda x: np.less_equal(x, 0.5),
    "numpy.greater": lambda x: np.greater(x, 0.0), "numpy.greater_equal": lambda x: np.ones(np.shape(x)) >= x,
    "numpy.equal": lambda x: np.equal(x, x), "numpy.not_equal": lambda x: np.zeros(np.shape(x)) != x,
    "numpy.isfinite": np.isfinite, "numpy.isnan": np.isnan, "numpy.isinf": np.isinf,
    "numpy.zeros_like": np.zeros_like, "numpy.ones_like": np.ones_like,
}


def test_the_cases_cover_the_registry_exactly():
    names = [r.name for r in nd.supported_numpy_functions()]
    assert len(names) == len(set(names))
    assert set(names) == set(CASES) | set(LINALG_CASES) | set(QUERY_CASES)
    assert not set(CASES) & set(QUERY_CASES) and not set(CASES) & set(LINALG_CASES)
    assert {r.name for r in nd.supported_numpy_functions() if r.group == "value queries"} == set(QUERY_CASES)
    assert {r.name for r in nd.supported_numpy_functions() if r.group == "linear algebra"} == set(LINALG_CASES)
    assert not set(nd.UNSUPPORTED_HINTS) & set(names)  # a hint is for an unsupported function only


def _assert_identical(a, b, what):
    a, b = getvalue(a), getvalue(b)
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), what
        for k, (u, v) in enumerate(zip(a, b)):
            _assert_identical(u, v, f"{what}[{k}]")
        return
    if isinstance(a, np.dtype):
        assert isinstance(b, np.dtype) and a == b, (what, a, b)
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    assert np.array_equal(a, b, equal_nan=True), (what, a, b)


def _check_same_records(numpy_fn, ops_fn, args):
    """Value, gradient w.r.t. every argument and HVP w.r.t. the first: NumPy-written == ops-written, bit for bit."""
    for i in range(len(args)):
        def through(fn, *a):
            return _scalar(fn(*a))

        gn = grad(lambda *a: through(numpy_fn, *a), i)(*args)
        go = grad(lambda *a: through(ops_fn, *a), i)(*args)
        _assert_identical(gn, go, f"gradient w.r.t. argument {i}")
        v = _weights(np.shape(args[i])) - 1.2
        hn = hvp(lambda *a: through(numpy_fn, *a), i)(*args, v)
        ho = hvp(lambda *a: through(ops_fn, *a), i)(*args, v)
        _assert_identical(hn, ho, f"Hessian-vector product w.r.t. argument {i}")

    # the taped value, with the Variable in first position
    def record(fn):
        out = []
        grad(lambda x: (out.append(getvalue(fn(x, *args[1:]))), ops.sum(x * 0.0))[1])(args[0])
        return out[0]

    _assert_identical(record(numpy_fn), record(ops_fn), "taped value")


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_supported_numpy_function_records_the_ops_primitive(name):
    numpy_fn, ops_fn, strategy = CASES[name]

    @SETTINGS
    @given(strategy)
    def check(args):
        _check_same_records(numpy_fn, ops_fn, args)

    check()


@pytest.mark.parametrize("name", sorted(LINALG_CASES))
def test_each_linear_algebra_function_records_the_refimpl_linalg_primitive(name):
    numpy_fn, refimpl_fn, strategy = LINALG_CASES[name]

    @SETTINGS
    @given(strategy)
    def check(args):
        _check_same_records(numpy_fn, refimpl_fn, args)

    check()


@pytest.mark.parametrize("name", sorted(LINALG_CASES))
def test_without_its_refimpl_linalg_function_a_linear_algebra_row_raises_naming_it(name, monkeypatch):
    import refimpl.ad.linalg as linalg_module

    numpy_fn = LINALG_CASES[name][0]
    monkeypatch.delattr(linalg_module, _LINALG_ATTR[name])
    args = {"numpy.linalg.solve": (_SPD, np.ones(3)), "numpy.outer": (np.ones(3), np.ones(2))}.get(name, (_SPD,))
    with pytest.raises(TypeError, match=rf"^{name} is not supported on refimpl Variables .*refimpl\.ad\.linalg\."):
        grad(lambda a: _scalar(numpy_fn(a, *args[1:])))(args[0])


@pytest.mark.parametrize("name", sorted(QUERY_CASES))
def test_value_queries_read_the_value_and_record_nothing(name):
    query = QUERY_CASES[name]
    x = np.array([[0.5, -1.0, 0.0], [2.0, 0.25, -0.5]])
    seen = []

    def f(v):
        seen.append(query(v))
        return ops.sum(v * v)

    grad(f)(x)
    hvp(f)(x, np.ones_like(x))  # inside a nested trace too
    assert len(seen) == 2  # one call under grad, one under hvp (a Variable of a Variable)
    for got in seen:
        assert not isinstance(got, Variable)
        _assert_identical(got, query(x), name)


def test_mixed_arguments_and_operators_of_ndarray_record_the_same_primitives():
    W, b = np.array([[1.0, 2.0], [-0.5, 0.3]]), np.array([0.1, -0.2])
    x = np.array([0.3, -0.7])

    def plain(v):
        return np.sum(np.tanh(W @ v + b) ** 2 / (1.0 + np.float64(2.0) * v), axis=0)

    def taped(v):
        return ops.sum(ops.divide(ops.power(ops.tanh(ops.add(ops.matmul(W, v), b)), 2.0),
                                  ops.add(1.0, ops.multiply(np.float64(2.0), v))), axis=0)

    _assert_identical(grad(plain)(x), grad(taped)(x), "gradient")
    _assert_identical(hvp(plain)(x, x), hvp(taped)(x, x), "hvp")


# ---------------------------------------------------------------------------------------------------------------------
# 2. everything else is a TypeError naming the function


X = np.array([[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]])
UNSUPPORTED = {
    "numpy.cumsum": lambda x: np.cumsum(x),
    "numpy.prod": lambda x: np.prod(x),
    "numpy.max": lambda x: np.max(x),
    "numpy.log1p": lambda x: np.log1p(x),
    "numpy.arctan": lambda x: np.arctan(x),
    "numpy.linalg.norm": lambda x: np.linalg.norm(x),
    "numpy.sort": lambda x: np.sort(x),
    "numpy.add.accumulate": lambda x: np.add.accumulate(x),
    "numpy.multiply.outer": lambda x: np.multiply.outer(x, x),
    "numpy.maximum.reduce": lambda x: np.maximum.reduce(x),
}
BAD_KEYWORDS = {
    "numpy.tanh: the keyword `out`": lambda x: np.tanh(x, out=np.empty((2, 3))),
    "numpy.add: the keyword `out`": lambda x: np.add(np.zeros((2, 3)), x, out=np.zeros((2, 3))),
    "numpy.exp: the keyword `where": lambda x: np.exp(x, where=np.ones((2, 3), bool) & (X > 0)),
    "numpy.multiply: the keyword `dtype": lambda x: np.multiply(x, 2.0, dtype=np.complex128),
    "numpy.sum: the keyword `where`": lambda x: np.sum(x, where=X > 0),
    "numpy.sum: the keyword `initial`": lambda x: np.sum(x, initial=1.0),
    "numpy.sum: the keyword `out`": lambda x: np.sum(x, out=np.zeros(())),
    "numpy.sum: dtype=complex128": lambda x: np.sum(x, dtype=np.complex128),
    "numpy.add.reduce: the keyword `initial`": lambda x: np.add.reduce(x, initial=1.0),
    "numpy.mean: the keyword `where`": lambda x: np.mean(x, where=X > 0),
    "numpy.einsum: not supported": lambda x: np.einsum("ii,i->i", x[:, :2], x[0, :2]),
    "numpy.einsum: refimpl Variables support einsum(subscripts, a, b)": lambda x: np.einsum("ij,jk,kl->il", x, x.T, x),
    "numpy.concatenate: axis=None": lambda x: np.concatenate([x, x], axis=None),
    "numpy.where: only the three-argument form": lambda x: np.where(x),
    "numpy.where: the condition must be a constant": lambda x: np.where(x, 1.0, 0.0),
    "numpy.dot: dot: only 1-D and 2-D": lambda x: np.dot(np.reshape(x, (1, 2, 3)), np.ones(3)),
    "numpy.reshape: order='F'": lambda x: np.reshape(x, (3, 2), order="F"),
    "sum() got an unexpected keyword argument": lambda x: np.sum(x, axes=0),  # NumPy's own check, before dispatch
}


def _call_on_variable(fn):
    return grad(lambda x: _scalar(fn(x)))(X)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_an_unsupported_numpy_function_raises_naming_it(name):
    with pytest.raises(TypeError, match=rf"^{name} is not supported on refimpl Variables; express it with "
                                        rf"refimpl\.ad\.ops primitives such as "):
        _call_on_variable(UNSUPPORTED[name])


@pytest.mark.parametrize("message", sorted(BAD_KEYWORDS))
def test_unsupported_keywords_and_forms_raise_naming_the_function(message):
    with pytest.raises(TypeError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        _call_on_variable(BAD_KEYWORDS[message])


def test_a_variable_is_never_converted_to_a_constant():
    for convert in (np.asarray, np.array, lambda v: np.array([v, v]), float, lambda v: np.float64(v)):
        with pytest.raises(TypeError):
            grad(lambda x: _scalar(convert(x)))(np.array([0.5, 1.5]))

    def in_place(x):
        buf = np.zeros(2)
        buf += x  # np.add(buf, x, out=buf)
        return np.sum(buf)

    with pytest.raises(TypeError, match="numpy.add: the keyword `out`"):
        grad(in_place)(np.array([0.5, 1.5]))


def test_scipy_rosen_called_directly_refuses_rather_than_dropping_the_derivative():
    """SciPy ≥ 1.15 starts ``rosen`` with ``xp_promote``, which converts its argument with ``np.asarray`` — the one
    conversion a Variable refuses; the call must fail loudly, not return a constant."""
    optimize = pytest.importorskip("scipy.optimize")
    with pytest.raises(TypeError):
        grad(optimize.rosen)(np.array([0.5, 1.0, 1.5]))


# ---------------------------------------------------------------------------------------------------------------------
# 3. the documented table


def test_the_committed_table_is_the_one_generated_from_the_registry():
    committed = (ROOT / "docs" / "numpy-dispatch.md").read_text(encoding="utf-8")
    assert committed == nd.dispatch_table_markdown(), (
        "docs/numpy-dispatch.md is stale: regenerate it with "
        "python -c \"import refimpl.ad.numpy_dispatch as d; d.write_dispatch_table('docs/numpy-dispatch.md')\"")
    assert f"{len(nd.NUMPY_FUNCTIONS)} NumPy functions are supported." in committed
    assert "docs/numpy-dispatch.md" in (ROOT / "docs" / "theory" / "autodiff.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------------
# 4. unmodified NumPy code, differentiated


def _scipy_rosen_as_written():
    """scipy.optimize.rosen's own source, run with its array-API prologue (``array_namespace``, ``xp_promote``, which
    coerce the argument with np.asarray) replaced by the identity on NumPy: the arithmetic is SciPy's, unmodified."""
    optimize = pytest.importorskip("scipy.optimize")
    source = textwrap.dedent(inspect.getsource(optimize.rosen))
    source = "\n".join(line for line in source.splitlines() if not line.startswith("@"))
    namespace = {"np": np, "array_namespace": lambda *arrays: np, "xp_promote": lambda x, force_floating, xp: x}
    exec(compile(source, "scipy.optimize.rosen (source)", "exec"), namespace)
    return optimize, namespace["rosen"]


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 7).flatmap(lambda n: st.tuples(rst.float_arrays((n,)), rst.float_arrays((n,)))))
def test_scipy_rosen_gradient_and_hessian_product_as_scipy_writes_them(xp_pair):
    optimize, rosen = _scipy_rosen_as_written()
    x, p = xp_pair
    assert rosen(x) == optimize.rosen(x)  # the source run here is SciPy's function
    g = grad(rosen)(x)
    # rosen_der and complex step compute the same polynomial derivative with other roundings; the entries are sums of
    # terms up to ~|rosen_der|_inf, so the gap is a few ulps of that scale (measured ≤ 4e-16 relative on 300 random
    # points of [-2, 2]^n, n ≤ 7): 1e-14 leaves a margin of 25.
    scale = max(1.0, float(np.max(np.abs(optimize.rosen_der(x)))))
    np.testing.assert_allclose(g, optimize.rosen_der(x), rtol=0, atol=1e-14 * scale)
    np.testing.assert_allclose(g, complex_step_gradient(rosen, x), rtol=0, atol=1e-14 * scale)
    # the tape's reverse-over-reverse HVP against SciPy's hand Hessian-vector product (measured ≤ 7e-16 relative)
    Hp = optimize.rosen_hess_prod(x, p)
    np.testing.assert_allclose(hvp(rosen)(x, p), Hp, rtol=0, atol=1e-14 * max(1.0, float(np.max(np.abs(Hp)))))


def rk4_terminal_loss(x0, W, b, y, T, N):
    """½|x_N − y|² after N classical RK4 steps of dx/dt = tanh(W x + b), written as plain NumPy."""
    h = T / N
    x = x0
    for _ in range(N):
        k1 = np.tanh(W @ x + b)
        k2 = np.tanh(W @ (x + h / 2 * k1) + b)
        k3 = np.tanh(W @ (x + h / 2 * k2) + b)
        k4 = np.tanh(W @ (x + h * k3) + b)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return 0.5 * np.sum((x - y) ** 2)


@st.composite
def _tanh_rk4_problems(draw):
    d, N = draw(st.integers(1, 4)), draw(st.integers(1, 20))
    T = draw(st.floats(0.25, 2.0))
    W, b = draw(rst.float_arrays((d, d), bound=1.5)), draw(rst.float_arrays((d,), bound=1.0))
    x0, y = draw(rst.float_arrays((d,), bound=1.0)), draw(rst.float_arrays((d,), bound=1.0))
    return x0, W, b, y, T, N


@settings(max_examples=20, deadline=None)
@given(_tanh_rk4_problems())
def test_plain_numpy_rk4_loop_gradient_equals_the_discrete_adjoint_and_complex_step(problem):
    from refimpl.ode.adjoint_recursions import discrete_adjoint
    from refimpl.ode.fields.losses import QuadraticLoss
    from refimpl.ode.fields.neural import TanhField
    from refimpl.ode.integrators import discrete_loss
    from refimpl.ode.samples import parameter_samples
    from refimpl.ode.schemes import RK4

    x0, W, b, y, T, N = problem
    loss = functools.partial(rk4_terminal_loss, W=W, b=b, y=y, T=T, N=N)
    g = grad(loss)(x0)
    # refimpl's routes: TanhField is tanh(W x + b) with θ = (W row-major, b), the same θ at every stage sample
    field, phi = TanhField(len(x0)), QuadraticLoss(y)
    theta = np.tile(np.concatenate([W.ravel(), b]), (parameter_samples(RK4, T, N).n_samples, 1))
    adjoint = discrete_adjoint(field, RK4, x0, theta, T, N, phi, backend="numpy")
    tape = grad(lambda x: discrete_loss(field, RK4, x, theta, T, N, phi))(x0)
    # The plain loop sums the stages as h/6·(k1 + 2k2 + 2k3 + k4), refimpl's integrator as h·Σ b_i k_i: the same
    # scheme with other roundings. Each route has x_N to ~ε·|x_N|, so λ_N = x_N − y to ~ε·max(|x_N|, |y|) (absolute:
    # it may cancel), and the adjoint recursion carries these differences back with the Jacobians' growth e^{|W|T}.
    # Measured on 200 random problems (N ≤ 20, |W| ≤ 1.5, T ≤ 2, a third with y within 1e-6 of x_N): ≤ 1.4e-14 of
    # max(|∇|, |x_N|, |y|); 1e-12 leaves a margin of 70. Complex step evaluates this very loop in complex arithmetic
    # (measured ≤ 1.6e-15). The floor 1 (the data are O(1)) keeps complex step's underflow of Im f = h·f'(x) for
    # |f'| ~ 1e-300 (h = 1e-30) out of the comparison.
    scale = max(1.0, float(np.max(np.abs(g))), float(np.max(np.abs(adjoint.trajectory[-1]))),
                float(np.max(np.abs(y))))
    assert abs(loss(x0) - adjoint.loss) <= 1e-13 * max(1.0, abs(loss(x0)))
    np.testing.assert_allclose(g, complex_step_gradient(loss, x0), rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(g, adjoint.grad_x0, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(g, tape, rtol=0, atol=1e-12 * scale)


def gaussian_log_density_diagonal(x, mu, sigma):
    """log N(x; μ, diag σ²), written with np.sum and np.log."""
    z = (x - mu) / sigma
    return -0.5 * np.sum(z ** 2) - np.sum(np.log(sigma)) - 0.5 * np.size(x) * np.log(2 * np.pi)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n: st.tuples(rst.float_arrays((n,)), rst.float_arrays((n,)),
                                                      rst.positive_arrays((n,)))))
def test_diagonal_gaussian_log_density_gradients_against_closed_forms_and_complex_step(point):
    x, mu, sigma = point
    r = x - mu
    known = {0: -r / sigma ** 2, 1: r / sigma ** 2, 2: r ** 2 / sigma ** 3 - 1 / sigma}  # ∂/∂x, ∂/∂μ, ∂/∂σ
    for argnum, expected in known.items():
        g = grad(gaussian_log_density_diagonal, argnum)(x, mu, sigma)

        def along(v, k=argnum):
            args = [x, mu, sigma]
            args[k] = v
            return gaussian_log_density_diagonal(*args)

        # a handful of roundings of terms of size ≤ max(1, |expected|_inf) (σ ≥ 0.2, |r| ≤ 4): measured ≤ 7.6e-16
        # relative to it on 300 random points (closed form and complex step), so 1e-13 leaves a margin of 130
        atol = 1e-13 * max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(g, expected, rtol=0, atol=atol)
        np.testing.assert_allclose(g, complex_step_gradient(along, [x, mu, sigma][argnum]), rtol=0, atol=atol)


def gaussian_log_density(x, mu, S):
    """log N(x; μ, Σ) = −½ rᵀΣ⁻¹r − ½ log det Σ − (d/2) log 2π, r = x − μ, written with np.linalg."""
    r = x - mu
    return -0.5 * (r @ np.linalg.solve(S, r)) - 0.5 * np.linalg.slogdet(S)[1] - 0.5 * len(x) * np.log(2 * np.pi)


def _gaussian_log_density_holomorphic(x, mu, S):
    """The same function with log det Σ in place of slogdet (slogdet's |det| is not holomorphic): for complex step."""
    r = x - mu
    return -0.5 * (r @ np.linalg.solve(S, r)) - 0.5 * np.log(np.linalg.det(S)) - 0.5 * len(x) * np.log(2 * np.pi)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4).flatmap(lambda d: st.tuples(rst.float_arrays((d,)), rst.float_arrays((d,)),
                                                      rst.spd_matrices(d))))
def test_gaussian_log_density_with_numpy_linalg_against_closed_forms_and_complex_step(point):
    x, mu, S = point
    Sinv = np.linalg.inv(S)
    a = Sinv @ (x - mu)
    # ∂/∂x = −Σ⁻¹r; ∂/∂Σ (entries independent, Σ symmetric) = ½(Σ⁻¹ r rᵀ Σ⁻¹ − Σ⁻¹)
    known = {0: -a, 2: 0.5 * (np.outer(a, a) - Sinv)}
    for argnum, expected in known.items():
        g = grad(gaussian_log_density, argnum)(x, mu, S)

        def along(v, k=argnum):
            args = [x, mu, S]
            args[k] = v
            return _gaussian_log_density_holomorphic(*args)

        # Σ has eigenvalues in [0.2, 4] (condition ≤ 20); the closed form (np.linalg.inv) and the tape (solve, the
        # slogdet VJP) factorise differently, so they agree to ~cond(Σ)·ε of the entries' scale. Measured with
        # refimpl.ad.linalg on 200 random points (d ≤ 4): ≤ 1.5e-15 relative to max(1, |expected|_inf), for the
        # closed form and complex step alike; 1e-13 leaves a margin of 65.
        atol = 1e-13 * max(1.0, float(np.max(np.abs(expected))))
        np.testing.assert_allclose(g, expected, rtol=0, atol=atol)
        np.testing.assert_allclose(g, complex_step_gradient(along, [x, mu, S][argnum]), rtol=0, atol=atol)
