"""The linear-algebra primitives (refimpl.ad.linalg) against complex step, Richardson FD, FD of the gradient (HVPs),
HIPS autograd, and NumPy's own values.

Each test differentiates L(x) = Σ w ∘ op(x) with fixed weights w ∈ [½, 3/2] (as tests/test_ad_primitives.py) at
well-conditioned inputs: general matrices M + (n + 1)I with |Mᵢⱼ| ≤ 1 (strictly diagonally dominant by ≥ 1, so
‖A⁻¹‖∞ ≤ 1 by Varah's bound and cond∞(A) ≤ 2n + 1), SPD matrices with eigenvalues in [0.5, 3], and for eigh SPD
matrices whose eigenvalues are at least 0.5 apart (the FD error of eigenvector functions grows like h⁴/gap⁵: at gap
0.25 the Richardson reference of an HVP is off by ~1.5e-8; eigh's HVP reference uses a smaller step, HVP_FD_STEP).
Tolerances:

* complex step (holomorphic primitives), 1e-13 relative (unit floor): complex step is exact to rounding; the two
  routes differ by the rounding of O(n³) flops on O(1) numbers with condition ≤ 2n + 1 ≤ 9, i.e. ~1e-15;
* Richardson FD, 1e-8 (the issue's bar): truncation O(h⁴) ≈ 1e-12 and rounding ε/h ≈ 3e-13 on these O(1) functions;
* HVP against Richardson FD of the tape gradient along v, 1e-8, the same error law one derivative higher;
* autograd, 1e-12: the same formulas evaluated in a different order (e.g. solves instead of an inverse), so agreement
  is to rounding times the condition (≤ 9); 1e-12 leaves a factor ~100.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.ad import grad, hvp, ops
from refimpl.ad import linalg as la
from refimpl.ad.checks import complex_step_gradient, fd_gradient, richardson_difference
from refimpl.testing import strategies as rst

CS_RTOL = 1e-13
FD_RTOL = 1e-8
AUTOGRAD_RTOL = 1e-12
SETTINGS = settings(max_examples=15, deadline=None)


def weights(shape):
    k = np.arange(int(np.prod(shape, dtype=int)))
    return (1.0 + 0.5 * np.cos(1.3 * k + 0.7)).reshape(shape)


def rel_err(g, ref):
    """‖g − ref‖∞ / max(‖ref‖∞, 1) (the unit floor of tests/test_ad_primitives.py: entries are O(1) sums)."""
    return np.max(np.abs(np.asarray(g) - ref), initial=0.0) / max(np.max(np.abs(ref), initial=0.0), 1.0)


def loss_of(op):
    """L(x) = Σ w ∘ op(x); a tuple output (slogdet, eigh) contributes each of its parts."""
    def L(x):
        out = op(x)
        parts = out if isinstance(out, tuple) else (out,)
        total = 0.0
        for p in parts:
            total = ops.add(total, ops.sum(ops.multiply(weights(np.shape(getattr(p, "value", p))), p)))
        return total
    return L


def check(L, x, holomorphic):
    g = grad(L)(x)
    assert g.shape == x.shape and g.dtype == x.dtype
    if holomorphic:
        assert rel_err(g, complex_step_gradient(L, x)) <= CS_RTOL
    assert fd_err(L, x, g) <= FD_RTOL
    return g


def fd_err(L, x, g):
    """‖g − g_fd‖∞ / max(‖g_fd‖∞, |L(x)|, 1): FD's error is absolute, ε|L|/h plus O(h⁴) (tests/test_ad_primitives.py)."""
    g_fd = fd_gradient(L, x)
    return np.max(np.abs(g - g_fd)) / max(np.max(np.abs(g_fd)), abs(complex(L(x))), 1.0)


# -- strategies -------------------------------------------------------------------------------------------------------
@st.composite
def well_conditioned(draw, n=None, batch=(), dtype=np.float64):
    """M + (n + 1)I, |Mᵢⱼ| ≤ 1: every eigenvalue has modulus ≥ 1 (Gershgorin)."""
    n = draw(st.integers(1, 4)) if n is None else n
    if dtype == np.complex128:
        M = draw(rst.complex_arrays(shape=batch + (n, n), bound=0.7))
    else:
        M = draw(rst.float_arrays(shape=batch + (n, n), bound=1.0))
    return M + (n + 1) * np.eye(n)


@st.composite
def spd(draw, n=None):
    n = draw(st.integers(1, 4)) if n is None else n
    return draw(rst.spd_matrices(n, low=0.5, high=3.0))


@st.composite
def spd_separated(draw, n=None, gap=0.5):
    """SPD with eigenvalues 0.5 + cumulative gaps in [gap, 1.5] (distinct: eigh's eigenvectors are differentiable)."""
    n = draw(st.integers(1, 4)) if n is None else n
    S = draw(rst.spd_matrices(n))
    _, Q = np.linalg.eigh(S)
    lam = 0.5 + np.cumsum(draw(hnp.arrays(np.float64, (n,), elements=st.floats(gap, 1.5))))
    out = (Q * lam) @ Q.T
    return 0.5 * (out + out.T)


def _eigh_invariants(x):
    """w, V∘V and V diag(1..n) Vᵀ: functions of eigh that do not depend on the eigenvectors' signs."""
    w, V = la.eigh(x)
    n = np.shape(getattr(x, "value", x))[-1]
    return w, V * V, ops.matmul(V * np.arange(1.0, n + 1.0), ops.transpose(V))


# -- each primitive: (op, input strategy, holomorphic) --------------------------------------------------------------
_B = np.array([[0.7, -1.2], [0.3, 0.9], [-0.4, 1.1], [1.3, 0.2]])
_b = np.array([0.5, -1.0, 1.5, 0.25])

PRIMITIVES = {
    "solve_A_matrix": (lambda x: la.solve(x, _B[:np.shape(getattr(x, "value", x))[0]]), well_conditioned(), True),
    "solve_A_vector": (lambda x: la.solve(x, _b[:np.shape(getattr(x, "value", x))[0]]), well_conditioned(), True),
    "solve_B_matrix": (lambda x: la.solve(np.array([[3.0, 0.5, -0.2, 0.1], [0.4, 2.5, 0.3, 0.0], [-0.1, 0.2, 4.0, 0.6],
                                                    [0.3, -0.5, 0.1, 3.5]]), x),
                       rst.float_arrays(shape=(4, 3)), True),
    "solve_B_vector": (lambda x: la.solve(np.diag([2.0, 3.0, 4.0, 5.0]) + 0.3, x), rst.float_arrays(shape=(4,)), True),
    "inv": (la.inv, well_conditioned(), True),
    "det": (la.det, well_conditioned(), True),
    "slogdet": (la.slogdet, well_conditioned(), False),
    "cholesky": (la.cholesky, spd(), False),
    "eigh": (_eigh_invariants, spd_separated(), False),
    "trace": (la.trace, rst.float_arrays(shape=rst.shapes(min_dims=2, max_dims=3)), True),
    "trace_offset_axes": (lambda x: la.trace(x, 1, 2, 0), rst.float_arrays(shape=(3, 2, 4)), True),
    "diagonal": (la.diagonal, rst.float_arrays(shape=rst.shapes(min_dims=2, max_dims=3)), True),
    "diagonal_offset_axes": (lambda x: la.diagonal(x, -1, 0, 2), rst.float_arrays(shape=(4, 2, 3)), True),
    "outer_a": (lambda x: la.outer(x, _b), rst.float_arrays(shape=rst.shapes(min_dims=1, max_dims=2)), True),
    "outer_b": (lambda x: la.outer(_B, x), rst.float_arrays(shape=rst.shapes(min_dims=1, max_dims=2)), True),
    "sqrtm_spd": (la.sqrtm_spd, spd(), False),
    "expm": (la.expm, rst.float_arrays(shape=st.integers(1, 4).map(lambda n: (n, n)), bound=1.0), True),
    "expm_scaled": (lambda x: la.expm(4.0 * x), rst.float_arrays(shape=st.integers(1, 4).map(lambda n: (n, n)),
                                                                   bound=1.0), True),
    "batched_inv_det": (lambda x: (la.inv(x), la.det(x)), well_conditioned(n=3, batch=(2,)), True),
    "batched_solve": (lambda x: la.solve(x, np.ones((2, 3, 2))), well_conditioned(n=3, batch=(2,)), True),
}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
@SETTINGS
@given(data=st.data())
def test_primitive_vs_complex_step_and_richardson(name, data):
    op, strategy, holomorphic = PRIMITIVES[name]
    check(loss_of(op), data.draw(strategy), holomorphic)


#: Richardson steps for the FD reference of an HVP where the default (7.4e-4·max(1, ‖x‖∞), up to 5e-3 for eigenvalues
#: up to 7) is too coarse: the eigenvector terms have derivatives growing like 1/gap^k, and at gap 0.5 the default
#: step leaves a truncation error ~1e-8 in the reference (measured: 8e-9 with the default step, 1e-11 with 3e-4)
HVP_FD_STEP = {"eigh": 3e-4}


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_hvp_vs_fd_of_grad(name, data):
    """∇²L v by reverse over reverse (the VJPs are written in primitives) vs Richardson FD of the tape gradient."""
    op, strategy, _ = PRIMITIVES[name]
    x = data.draw(strategy)
    v = np.cos(np.arange(x.size) * 0.9 + 0.3).reshape(x.shape)
    L = loss_of(op)
    ref = richardson_difference(grad(L), x, v, eps=HVP_FD_STEP.get(name))
    assert rel_err(hvp(L)(x, v), ref) <= FD_RTOL


# -- complex input: the holomorphic primitives give f'(z) (JAX convention) -----------------------------------------
HOLOMORPHIC_COMPLEX = {
    "solve": lambda z: la.solve(z, _B[:np.shape(getattr(z, "value", z))[0]]),
    "inv": la.inv, "det": la.det, "trace": la.trace, "diagonal": la.diagonal,
    "outer": lambda z: la.outer(z, z), "expm": la.expm,
}


@pytest.mark.parametrize("name", sorted(HOLOMORPHIC_COMPLEX))
@settings(max_examples=10, deadline=None)
@given(z=well_conditioned(dtype=np.complex128))
def test_complex_holomorphic(name, z):
    L = loss_of(HOLOMORPHIC_COMPLEX[name])
    g = grad(L)(z)
    assert g.dtype == np.complex128
    assert fd_err(L, z, g) <= FD_RTOL


@pytest.mark.parametrize("op", [la.cholesky, la.eigh, la.sqrtm_spd, lambda z: la.slogdet(z)[1]],
                         ids=["cholesky", "eigh", "sqrtm_spd", "slogdet"])
def test_non_holomorphic_refuse_complex_on_the_tape(op):
    def L(z):
        out = op(z)
        return ops.sum(ops.real(out[0] if isinstance(out, tuple) else out))

    with pytest.raises(TypeError, match="complex input is not supported"):
        grad(L)(np.eye(2) + 0j)


# -- values on plain arrays are NumPy's ------------------------------------------------------------------------------
def test_plain_arrays_give_numpys_values_bit_for_bit():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 4)) + 5 * np.eye(4)
    S = A @ A.T
    B = rng.standard_normal((4, 2))
    assert np.array_equal(la.solve(A, B), np.linalg.solve(A, B))
    assert np.array_equal(la.solve(A, B[:, 0]), np.linalg.solve(A, B[:, 0]))
    assert np.array_equal(la.inv(A), np.linalg.inv(A))
    assert la.det(A) == np.linalg.det(A)
    assert tuple(la.slogdet(A)) == tuple(np.linalg.slogdet(A))
    assert np.array_equal(la.cholesky(S), np.linalg.cholesky(S))
    for ours, theirs in zip(la.eigh(S), np.linalg.eigh(S)):
        assert np.array_equal(ours, theirs)
    assert la.trace(A) == np.trace(A)
    assert np.array_equal(la.diagonal(A, 1), np.diagonal(A, 1))
    assert np.array_equal(la.outer(A[0], B[:, 1]), np.outer(A[0], B[:, 1]))
    lam, V = np.linalg.eigh(S)
    assert np.array_equal(la.sqrtm_spd(S), (V * np.sqrt(lam)) @ V.T)
    scipy_linalg = pytest.importorskip("scipy.linalg")
    np.testing.assert_allclose(la.expm(A / 3), scipy_linalg.expm(A / 3), rtol=1e-13)
    np.testing.assert_allclose(la.expm(4 * A), scipy_linalg.expm(4 * A), rtol=1e-12)
    np.testing.assert_allclose(la.sqrtm_spd(S) @ la.sqrtm_spd(S), S, rtol=1e-13, atol=1e-13 * np.max(np.abs(S)))


# -- degeneracy -------------------------------------------------------------------------------------------------------
def test_eigh_eigenvector_derivative_at_a_repeated_eigenvalue_raises():
    S = np.diag([1.0, 1.0 + 1e-10, 2.0])
    with pytest.raises(ValueError, match="EIGH_MIN_RELATIVE_GAP"):
        grad(lambda x: ops.sum(weights((3, 3)) * la.eigh(x)[1] ** 2))(S)
    with pytest.raises(ValueError, match="not differentiable"):
        grad(lambda x: ops.sum(la.eigh(x)[1][:, 0] ** 2))(np.eye(3))


def test_eigh_eigenvalues_alone_and_sqrtm_are_differentiable_at_a_repeated_eigenvalue():
    """Σ w = tr A has gradient I at any spectrum; sqrt(I + E) = I + E/2 + O(E²), so ∇ Σ sqrtm(A) = ½·11ᵀ at A = I."""
    np.testing.assert_allclose(grad(lambda x: ops.sum(la.eigh(x)[0]))(np.eye(3)), np.eye(3), rtol=0, atol=1e-15)
    np.testing.assert_allclose(grad(lambda x: ops.sum(la.sqrtm_spd(x)))(np.eye(3)), np.full((3, 3), 0.5),
                               rtol=0, atol=1e-15)


def test_square_matrix_required():
    for op in (la.inv, la.det, la.slogdet, la.cholesky, la.eigh, la.sqrtm_spd, la.expm):
        with pytest.raises((ValueError, np.linalg.LinAlgError)):
            op(np.ones((2, 3)))


# -- against HIPS autograd -------------------------------------------------------------------------------------------
def _sym(x):
    return 0.5 * (x + np.swapaxes(x, -1, -2))


AUTOGRAD = {
    # name: (ours, autograd (module anp -> function), strategy, map of autograd's gradient onto ours)
    "solve": (lambda x: la.solve(x, _B[:np.shape(getattr(x, "value", x))[0]]),
              lambda anp: lambda x: anp.linalg.solve(x, _B[:x.shape[0]]), well_conditioned(), None),
    "inv": (la.inv, lambda anp: anp.linalg.inv, well_conditioned(), None),
    "det": (la.det, lambda anp: anp.linalg.det, well_conditioned(), None),
    "slogdet": (lambda x: la.slogdet(x)[1], lambda anp: lambda x: anp.linalg.slogdet(x)[1], well_conditioned(), None),
    "cholesky": (la.cholesky, lambda anp: anp.linalg.cholesky, spd(), None),
    # autograd's eigh reads the lower triangle (its gradient is the lower-triangle representative); refimpl's is the
    # symmetric representative of the same derivative along symmetric directions: compare sym(·) of autograd's
    "eigh": (_eigh_invariants, lambda anp: lambda x: _eigh_invariants_autograd(anp, x), spd_separated(), _sym),
}


def _eigh_invariants_autograd(anp, x):
    w, V = anp.linalg.eigh(x)
    n = x.shape[-1]
    return w, V * V, anp.dot(V * np.arange(1.0, n + 1.0), V.T)


@pytest.mark.parametrize("name", sorted(AUTOGRAD))
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_against_autograd(name, data):
    autograd = pytest.importorskip("autograd")
    anp = pytest.importorskip("autograd.numpy")
    ours, make_theirs, strategy, mapping = AUTOGRAD[name]
    theirs = make_theirs(anp)
    x = data.draw(strategy)

    def L_theirs(y):
        out = theirs(y)
        parts = out if isinstance(out, tuple) else (out,)
        return sum(anp.sum(weights(np.shape(p)) * p) for p in parts)

    g_ref = autograd.grad(L_theirs)(x)
    if mapping is not None:
        g_ref = mapping(g_ref)
    assert rel_err(grad(loss_of(ours))(x), g_ref) <= AUTOGRAD_RTOL
