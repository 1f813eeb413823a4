"""The compiled adjoint's inner loop (refimpl.ode._numba): the point functions of the built-in fields against exact
arithmetic with derived bounds, their two VJP routes, the compiled adjoint against the NumPy hand adjoint and the tape,
determinism, the plumbing of discrete_adjoint that calls the sweeps without re-checking θ, and the compiled
finiteness scan.

Bounds. u = 2⁻⁵³; γ_n = nu/(1 − nu) bounds the rounding of an n-term sum of products, in any order, fused or not
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1); tanh and sech² are within 7 and 8 ulp
(refimpl.numerics.polynomial_tanh, tested against mpmath in tests/test_polynomial_tanh.py).
"""
from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from refimpl.ad import grad as tape_grad
from refimpl.numerics.polynomial_exp import _fma
from refimpl.numerics.polynomial_tanh import SECH2_ULP_BOUND, TANH_ULP_BOUND, polynomial_sech2
from refimpl.ode import _numba as kernels
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField
from refimpl.ode.integrators import discrete_loss
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import AB3, HEUN, LEAPFROG, RK4
from refimpl.testing.strategies import float_arrays

U = 2.0 ** -53
TINY = 2.0 ** -1074
#: max |d sech²(z)/dz| = max 2 sech² z |tanh z| = 4/(3√3) = 0.7698…, rounded up
SECH2_LIPSCHITZ = 0.77


def _gamma(n):
    return n * U / (1.0 - n * U)


# ---------------------------------------------------------------------------------------------------------------------
# the two VJP routes: one documented order of operations


@njit
def _row_by_row_vjp(x, th, v, out_x, g_th, tanh):
    """The VJP through z = W x + b (and tanh when ``tanh``) one row at a time, in the order refimpl.ode._numba
    documents (before _affine_vjp_rows): z_i = b_i + W_i0 x_0 + … unfused; u_i = sech²(z_i)·v_i; g_b[i] += u_i;
    g_W[i, j] = fma(u_i, x_j, g_W[i, j]); out_x[j] = fma(W_ij, u_i, out_x[j]) for i in row order."""
    d = x.shape[0]
    dd = d * d
    for j in range(d):
        out_x[j] = 0.0
    for i in range(d):
        z = th[dd + i]
        for j in range(d):
            z += th[i * d + j] * x[j]
        u = polynomial_sech2(z) * v[i] if tanh else v[i]
        g_th[dd + i] += u
        for j in range(d):
            g_th[i * d + j] = _fma(u, x[j], g_th[i * d + j])
            out_x[j] = _fma(th[i * d + j], u, out_x[j])


@njit
def _route(x, th, v, out_x, g_th, tanh, rows):
    if tanh and rows:
        kernels._tanh_vjp_rows(x, th, v, out_x, g_th)
    elif tanh:
        kernels._tanh_vjp_blocks(x, th, v, out_x, g_th)
    elif rows:
        kernels._affine_vjp_rows(v, x, th, out_x, g_th)
    else:
        kernels._linear_vjp_blocks(x, v, th, out_x, g_th)


@njit
def _public(x, th, v, out_x, g_th, tanh):
    if tanh:
        kernels.tanh_vjp(x, x, th, v, out_x, g_th)
    else:
        kernels.linear_vjp(x, x, th, v, out_x, g_th)


@njit
def _split(x, th, v, out_x, g_th, tanh):
    """The VJP in its two parts (the descriptors' vjp_x, vjp_theta): the state part leaves u in v."""
    if tanh:
        kernels.tanh_vjp_x(x, x, th, v, out_x)
    else:
        kernels.linear_vjp_x(x, x, th, v, out_x)
    kernels.affine_vjp_theta(v, x, g_th)


@pytest.mark.parametrize("tanh", [True, False], ids=["tanh", "linear"])
@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17])
def test_both_vjp_routes_are_the_documented_order_bit_for_bit(d, tanh):
    """The rows-in-order route (SIMD lanes over j) and the four-row route (u in registers) perform, on every entry,
    the same operations in the same order as the row-by-row loop above, so they give its bits at every d, and so do
    the public VJP whichever route it picks for d and the VJP split in two (state part, then gradient rows)."""
    rng = np.random.default_rng(d)
    for scale in (0.3, 3.0, 30.0):                     # 30: tanh saturated (sech² down to e^-60 and below)
        x, v = rng.standard_normal(d), rng.standard_normal(d)
        th = scale * rng.standard_normal(d * d + d)
        g0 = rng.standard_normal(d * d + d)             # the VJP accumulates into g_th
        out_ref, g_ref = np.full(d, np.nan), g0.copy()
        _row_by_row_vjp(x, th, v.copy(), out_ref, g_ref, tanh)
        for variant in ("rows", "blocks", "public", "split"):
            out, g = np.full(d, np.nan), g0.copy()     # out_x is overwritten, whatever it held
            if variant == "public":
                _public(x, th, v.copy(), out, g, tanh)
            elif variant == "split":
                _split(x, th, v.copy(), out, g, tanh)
            else:
                _route(x, th, v.copy(), out, g, tanh, variant == "rows")
            assert out.tobytes() == out_ref.tobytes() and g.tobytes() == g_ref.tobytes(), variant


# ---------------------------------------------------------------------------------------------------------------------
# the point functions against exact arithmetic


def _exact_affine(x, th):
    """z = W x + b exactly (Fractions) and S_i = Σ_j |W_ij x_j| + |b_i| (the scale of the dot product's rounding)."""
    d = x.shape[0]
    X = [Fraction(float(v)) for v in x]
    z, S = [], []
    for i in range(d):
        terms = [Fraction(float(th[i * d + j])) * X[j] for j in range(d)] + [Fraction(float(th[d * d + i]))]
        z.append(sum(terms))
        S.append(float(sum(abs(t) for t in terms)))
    return z, np.array(S)


@njit
def _tanh_f(x, th, out):
    kernels.tanh_f(x, th, out)


@pytest.mark.parametrize("d", [3, 16])
def test_tanh_f_against_exact_arithmetic(d):
    """tanh_f = tanh(W x + b) with z computed in a fixed order: |ẑ_i − z_i| ≤ γ_{d+1}·S_i (d products and b);
    tanh is 1-Lipschitz and within TANH_ULP_BOUND·u relative of tanh ẑ, so
    |t̂_i − tanh z_i| ≤ γ_{d+1}S_i + TANH_ULP_BOUND·u·(|tanh z_i| + γ_{d+1}S_i)."""
    mpmath.mp.prec = 120
    rng = np.random.default_rng(40 + d)
    for scale in (0.05, 1.0, 30.0):
        x, th = rng.standard_normal(d), scale * rng.standard_normal(d * d + d) / math.sqrt(d)
        t = np.empty(d)
        _tanh_f(x, th, t)
        z, S = _exact_affine(x, th)
        dz = _gamma(d + 1) * S
        for i in range(d):
            exact = mpmath.tanh(mpmath.mpf(z[i].numerator) / z[i].denominator)
            bound = dz[i] + TANH_ULP_BOUND * U * (float(abs(exact)) + dz[i])
            assert float(abs(mpmath.mpf(float(t[i])) - exact)) <= bound, (scale, i)


@pytest.mark.parametrize("tanh", [True, False], ids=["tanh", "linear"])
@pytest.mark.parametrize("d", [3, 16])
def test_point_vjps_against_exact_arithmetic(d, tanh):
    """With exact z, u_i = s_i v_i (s = sech² z, or 1 for the linear field), out_x = Wᵀu and g += (vec(u xᵀ), u):
    * s: |ŝ_i − s_i| ≤ e_s,i = 0.77·Δz_i + SECH2_ULP_BOUND·u·(s_i + 0.77·Δz_i) + 10·2⁻¹⁰⁷⁴ (Lipschitz constant of
      sech², its relative bound, and its subnormal bound), Δz_i = γ_{d+1}S_i as for tanh_f (0 for linear);
    * u: one product, |û_i − u_i| ≤ e_u,i = |v_i|e_s,i + u|v_i|(s_i + e_s,i);
    * out_x_j: d fused steps over exact products, ≤ Σ_i |W_ij|e_u,i + γ_d Σ_i |W_ij|(|u_i| + e_u,i);
    * g_W[i, j] = fma(û_i, x_j, g0): ≤ |x_j|e_u,i + u(|g0_ij| + |x_j|(|u_i| + e_u,i)); g_b[i]: ≤ e_u,i + u(|g0_i| +
      |u_i| + e_u,i)."""
    mpmath.mp.prec = 120
    rng = np.random.default_rng(60 + d)
    for scale in (0.05, 1.0, 30.0):
        x, v = rng.standard_normal(d), rng.standard_normal(d)
        th = scale * rng.standard_normal(d * d + d) / math.sqrt(d)
        g0 = rng.standard_normal(d * d + d)
        out, g = np.empty(d), g0.copy()
        _public(x, th, v.copy(), out, g, tanh)
        z, S = _exact_affine(x, th)
        W = th[:d * d].reshape(d, d)
        if tanh:
            s = [mpmath.sech(mpmath.mpf(zi.numerator) / zi.denominator) ** 2 for zi in z]
            dz = _gamma(d + 1) * S
            e_s = np.array([SECH2_LIPSCHITZ * dz[i] + SECH2_ULP_BOUND * U * (float(s[i]) + SECH2_LIPSCHITZ * dz[i])
                            + 10 * TINY for i in range(d)])
        else:
            s, e_s = [mpmath.mpf(1)] * d, np.zeros(d)
        u_exact = [s[i] * mpmath.mpf(float(v[i])) for i in range(d)]
        au = np.array([float(abs(ui)) for ui in u_exact])
        e_u = np.abs(v) * e_s + U * np.abs(v) * (np.array([float(si) for si in s]) + e_s)
        for j in range(d):
            exact = mpmath.fsum(mpmath.mpf(float(W[i, j])) * u_exact[i] for i in range(d))
            bound = np.sum(np.abs(W[:, j]) * e_u) + _gamma(d) * np.sum(np.abs(W[:, j]) * (au + e_u))
            assert float(abs(mpmath.mpf(float(out[j])) - exact)) <= bound, ("out_x", scale, j)
        for i in range(d):
            for j in range(d):
                exact = mpmath.mpf(float(g0[i * d + j])) + u_exact[i] * mpmath.mpf(float(x[j]))
                bound = abs(x[j]) * e_u[i] + U * (abs(g0[i * d + j]) + abs(x[j]) * (au[i] + e_u[i]))
                assert float(abs(mpmath.mpf(float(g[i * d + j])) - exact)) <= bound, ("g_W", scale, i, j)
            exact = mpmath.mpf(float(g0[d * d + i])) + u_exact[i]
            bound = e_u[i] + U * (abs(g0[d * d + i]) + au[i] + e_u[i])
            assert float(abs(mpmath.mpf(float(g[d * d + i])) - exact)) <= bound, ("g_b", scale, i)


# ---------------------------------------------------------------------------------------------------------------------
# the compiled adjoint against the NumPy hand adjoint and the tape

#: Tolerance (norm-wise, max|a − b| / max|b|). Every route computes the same discrete gradient; they differ by
#: rounding only. Each stage evaluation perturbs its results by at most ε = 8u relative (sech², the worst primitive:
#: 8 ulp compiled, the C library's exp in the NumPy and tape routes ≤ 1 ulp plus 4 roundings) plus γ_{d+1} from each
#: dot product; the differences add up over the N·s ≤ 50 stage evaluations of one path through the recursion and are
#: carried by the recursion's sensitivity, e^{L T} with L ≤ ‖W‖ = O(1) here (entries N(0, 1/d), T = 1). That is
#: (8 + 17)u·50·e ≈ 4·10⁻¹³ at d = 16 (≈ 2·10⁻¹³ at d = 3), and the reference suite's tape tolerance 1e-13 rests on
#: the same argument with ε = u; 5e-13 covers both d.
KERNEL_RTOL = 5e-13

CASES = [(RK4, None, 12), (HEUN, None, 25), (LEAPFROG, "forward_euler", 50)]   # N·s = 48, 50, 50


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("layout", ["step", "stage"])
@pytest.mark.parametrize("d", [3, 16])
@pytest.mark.parametrize("method,starter,N", CASES, ids=["rk4", "heun", "leapfrog"])
def test_compiled_adjoint_against_numpy_hand_adjoint_and_tape(method, starter, N, d, layout):
    rng = np.random.default_rng(d * 7 + N)
    smp = parameter_samples(method, 1.0, N, layout, starter)
    theta = rng.standard_normal((smp.n_samples, d * d + d)) / np.sqrt(d)
    x0, loss = rng.standard_normal(d), QuadraticLoss(rng.standard_normal(d))
    field = TanhField(d)
    args = (field, method, x0, theta, 1.0, N, loss)
    fast = discrete_adjoint(*args, layout=layout, starter=starter, backend="numba")
    ref = discrete_adjoint(*args, layout=layout, starter=starter, backend="numpy")
    tape = tape_grad(lambda th: discrete_loss(field, method, x0, th, 1.0, N, loss, layout=layout,
                                              starter=starter))(theta)
    assert fast.backend == "numba" and ref.backend == "numpy"
    assert _rel(fast.grad_theta, ref.grad_theta) <= KERNEL_RTOL
    assert _rel(fast.grad_theta, tape) <= KERNEL_RTOL
    assert _rel(fast.lambdas, ref.lambdas) <= KERNEL_RTOL
    assert _rel(fast.trajectory, ref.trajectory) <= KERNEL_RTOL


# ---------------------------------------------------------------------------------------------------------------------
# determinism


def _digest(d, N, scheme):
    method, starter = {"rk4": (RK4, None), "leapfrog": (LEAPFROG, "forward_euler")}[scheme]
    rng = np.random.default_rng(5)
    smp = parameter_samples(method, 1.0, N, "step", starter)
    theta = rng.standard_normal((smp.n_samples, d * d + d)) / np.sqrt(d)
    adj = discrete_adjoint(TanhField(d), method, rng.standard_normal(d), theta, 1.0, N,
                           QuadraticLoss(rng.standard_normal(d)), layout="step", starter=starter, backend="numba")
    return hashlib.sha256(adj.grad_theta.tobytes() + adj.lambdas.tobytes() + adj.trajectory.tobytes()).hexdigest()


_DIGEST_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from tests.test_ode_adjoint_kernels import _digest
print(_digest({d}, {N}, {scheme!r}))
"""


@pytest.mark.parametrize("scheme", ["rk4", "leapfrog"])
def test_the_compiled_adjoint_is_deterministic(scheme):
    """The same bits from repeated calls, from eight threads at once, and from a fresh process with one thread
    allowed to every threading layer: the summation order is fixed and nothing depends on timing or threads."""
    import os

    d, N = 16, 40
    first = _digest(d, N, scheme)
    assert _digest(d, N, scheme) == first
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(lambda _: _digest(d, N, scheme), range(16))) == {first}
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT.format(root=root, d=d, N=N, scheme=scheme)],
                         capture_output=True, text=True, cwd=root, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == first


def _problem(method, starter, layout, N, d, seed=0):
    rng = np.random.default_rng(seed)
    smp = parameter_samples(method, 1.0, N, layout, starter)
    theta = rng.standard_normal((smp.n_samples, d * d + d)) / np.sqrt(d)
    return smp, rng.standard_normal(d), theta, QuadraticLoss(rng.standard_normal(d))


@pytest.mark.parametrize("field_cls", [TanhField, LinearField])
@pytest.mark.parametrize("layout", ["stage", "step", "constant"])
@pytest.mark.parametrize("method,starter", [(RK4, None), (LEAPFROG, "forward_euler")], ids=["rk4", "leapfrog"])
def test_discrete_adjoint_equals_the_checked_wrappers(method, starter, layout, field_cls):
    """discrete_adjoint calls the sweeps on arrays prepare_problem checked (no second pass over θ); the result must
    be the public, fully checked wrappers' result, bit for bit."""
    d, N = 5, 13
    smp, x0, theta, loss = _problem(method, starter, layout, N, d)
    field = field_cls(d)
    adj = discrete_adjoint(field, method, x0, theta, 1.0, N, loss, layout=layout, starter=starter, backend="numba")
    h = 1.0 / N
    if method is RK4:
        A, b, _ = RK4.arrays()
        hA, hb = np.ascontiguousarray(h * A), np.ascontiguousarray(h * b)
        xs = kernels.erk_forward(field.kernel, x0, theta, smp.stage_index, hA, hb)
        g, lam = kernels.erk_backward(field.kernel, xs, theta, smp.stage_index, hA, hb, loss.grad(xs[-1]))
    else:
        A, b, _ = smp.starter.arrays()
        hA, hb = np.ascontiguousarray(h * A), np.ascontiguousarray(h * b)
        malpha = np.array([-float(a) for a in LEAPFROG.alpha[:2]])
        hbeta = np.array([h * float(c) for c in LEAPFROG.beta])
        args = (smp.stage_index, hA, hb, malpha, hbeta, smp.grid_index)
        xs = kernels.lmm_forward(field.kernel, x0, theta, *args)
        g, lam = kernels.lmm_backward(field.kernel, xs, theta, *args, loss.grad(xs[-1]))
    assert adj.trajectory.tobytes() == xs.tobytes()
    assert adj.grad_theta.tobytes() == g.tobytes() and adj.lambdas.tobytes() == lam.tobytes()


def test_discrete_adjoint_still_checks_theta_against_the_kernel():
    """θ is not re-checked by the wrappers on this path, so the descriptor's parameter count is checked here."""
    from refimpl.ode.fields.base import NumbaKernel

    class Misdescribed(TanhField):
        kernel = NumbaKernel("refimpl.ode._numba", "tanh_f", "tanh_vjp", lambda d: d * d + d + 1,
                             vjp_reads_fx=False)

    smp, x0, theta, loss = _problem(RK4, None, "step", 4, 3)
    with pytest.raises(ValueError, match="theta must have n_params"):
        discrete_adjoint(Misdescribed(3), RK4, x0, theta, 1.0, 4, loss, layout="step", backend="numba")


@settings(max_examples=60, deadline=None)
@given(float_arrays(st.tuples(st.integers(0, 6), st.integers(1, 5)), bound=1e300),
       st.lists(st.tuples(st.integers(0, 29), st.sampled_from([np.nan, np.inf, -np.inf])), max_size=3))
def test_all_finite_is_numpy_all_isfinite(a, bad):
    a = np.array(a, dtype=np.float64)
    flat = a.reshape(-1)
    for i, value in bad:
        if flat.size:
            flat[i % flat.size] = value
    assert kernels.all_finite(a) == bool(np.all(np.isfinite(a)))
    assert kernels.all_finite(a.T) == bool(np.all(np.isfinite(a)))        # non-contiguous input


def test_all_finite_takes_float64_arrays_only():
    for bad in (np.zeros(3, dtype=np.float32), np.zeros(3, dtype=np.int64), [0.0, 1.0]):
        with pytest.raises(TypeError, match="float64"):
            kernels.all_finite(bad)


_ALLOCATIONS = """
import json, sys
import numpy as np
from numba.core.runtime import rtsys
from refimpl.ode import _numba as K
from refimpl.ode.fields import TanhField
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import LEAPFROG, RK4

d, kernel = 5, TanhField.kernel


def counted(fn):
    before = rtsys.get_allocation_stats().alloc
    fn()
    return rtsys.get_allocation_stats().alloc - before


def sweeps(N):
    out = {}
    smp = parameter_samples(RK4, 1.0, N, "step")
    th = np.full((N, d * d + d), 0.1)
    A, b, _ = RK4.arrays()
    hA, hb = np.ascontiguousarray(A / N), np.ascontiguousarray(b / N)
    x0 = np.ones(d)
    xs, Ks = K.erk_forward(kernel, x0, th, smp.stage_index, hA, hb, keep_stages=True)
    out["erk_forward"] = counted(lambda: K.erk_forward(kernel, x0, th, smp.stage_index, hA, hb))
    out["erk_backward stored"] = counted(lambda: K.erk_backward(kernel, xs, th, smp.stage_index, hA, hb, xs[-1],
                                                                stages=Ks))
    out["erk_backward recomputed"] = counted(lambda: K.erk_backward(kernel, xs, th, smp.stage_index, hA, hb, xs[-1]))
    smp = parameter_samples(LEAPFROG, 1.0, N, "step", "forward_euler")
    A, b, _ = smp.starter.arrays()
    args = (smp.stage_index, np.ascontiguousarray(A / N), np.ascontiguousarray(b / N), np.array([1.0, -0.0]),
            np.array([0.0, 2.0 / N]), smp.grid_index)
    xs = K.lmm_forward(kernel, x0, th, *args)
    out["lmm_forward"] = counted(lambda: K.lmm_forward(kernel, x0, th, *args))
    out["lmm_backward"] = counted(lambda: K.lmm_backward(kernel, xs, th, *args, xs[-1]))
    return out


sweeps(3)                                     # compile / load first
print(json.dumps([sweeps(int(n)) for n in sys.argv[1:]]))
"""


def test_the_sweeps_allocate_nothing_per_step(tmp_path):
    """Numba's runtime counts its allocations (NUMBA_NRT_STATS=1, set before Numba is imported: a child process). The
    checked wrappers allocate the result arrays through NumPy (not counted) and the sweeps their O(s·d) work buffers
    once per call; the count must not grow with N."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, NUMBA_NRT_STATS="1", PYTHONPATH=str(root))
    script = tmp_path / "allocations.py"
    script.write_text(_ALLOCATIONS)
    out = subprocess.run([sys.executable, str(script), "10", "300"], capture_output=True, text=True, cwd=str(root),
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    small, large = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(v > 0 for v in small.values()), small       # the counter is on (each sweep allocates its buffers)
    assert small == large, (small, large)


# ---------------------------------------------------------------------------------------------------------------------
# the backward sweeps' finiteness count and the prefetch hint


@pytest.mark.parametrize("method,starter", [(RK4, None), (LEAPFROG, "forward_euler")], ids=["rk4", "leapfrog"])
@pytest.mark.parametrize("layout", ["stage", "step", "constant"])
def test_the_backward_sweeps_count_nonfinite_gradient_values(method, starter, layout):
    """The count the backward sweep keeps (of inf / NaN values written into gradient rows) is 0 exactly when the
    returned gradient is finite — on a finite problem and on one whose gradient overflows (λ_N = 1e300, states
    ~1e10 with W ~ 1e-20, so sech² z ≈ 1 and u xᵀ ~ 1e309)."""
    d, N = 4, 9
    smp = parameter_samples(method, 1.0, N, layout, starter)
    h = 1.0 / N
    rng = np.random.default_rng(3)
    for lam_scale in (1.0, 1e300):
        theta = rng.standard_normal((smp.n_samples, d * d + d))
        x0 = rng.standard_normal(d)
        lam_N = np.full(d, lam_scale)
        if lam_scale > 1.0:
            theta[:, :d * d] *= 1e-20
            x0 *= 1e10
        nonfinite = np.zeros(1, dtype=np.int64)
        if method is RK4:
            A, b, _ = RK4.arrays()
            hA, hb = np.ascontiguousarray(h * A), np.ascontiguousarray(h * b)
            xs = kernels.erk_forward(TanhField.kernel, x0, theta, smp.stage_index, hA, hb)
            g, _ = kernels._erk_backward_prepared(TanhField.kernel, xs, theta, np.asarray(smp.stage_index), hA, hb,
                                                  np.empty(0), lam_N, np.empty((0, 4, d)), nonfinite)
        else:
            A, b, _ = smp.starter.arrays()
            args = (np.asarray(smp.stage_index), np.ascontiguousarray(h * A), np.ascontiguousarray(h * b),
                    np.array([1.0, -0.0]), np.array([0.0, 2.0 * h]), np.asarray(smp.grid_index))
            xs = kernels.lmm_forward(TanhField.kernel, x0, theta, *args)
            g, _ = kernels._lmm_backward_prepared(TanhField.kernel, xs, theta, *args, lam_N, np.zeros((0, d)),
                                                  np.zeros(0, dtype=np.bool_), nonfinite)
        assert (nonfinite[0] == 0) == bool(np.all(np.isfinite(g)))
        if lam_scale > 1.0:
            assert nonfinite[0] > 0


@njit
def _prefetch_rows(a, rows):
    for r in rows:
        kernels._prefetch(a, r)
    return a.sum()


def test_prefetch_is_only_a_hint():
    """Rows out of range (the −1 of an unused LMM sample, past the end) are skipped, and nothing changes."""
    a = np.arange(30.0).reshape(3, 10)
    assert _prefetch_rows(a, np.array([-1, 0, 2, 3, 10**6])) == np.arange(30.0).sum()
    assert np.array_equal(a, np.arange(30.0).reshape(3, 10))


# ---------------------------------------------------------------------------------------------------------------------
# the backward sweeps' blocks (refimpl.ode._numba, "the backward sweeps' memory order")

@pytest.mark.parametrize("method,starter", [(RK4, None), (HEUN, None), (LEAPFROG, "forward_euler"), (AB3, "matched")],
                         ids=["rk4", "heun", "leapfrog", "ab3"])
@pytest.mark.parametrize("layout", ["stage", "step", "constant"])
@pytest.mark.parametrize("field_cls", [TanhField, LinearField], ids=["tanh", "linear"])
def test_backward_sweep_blocks_change_no_bit(monkeypatch, method, starter, layout, field_cls):
    """Blocking only reorders reads of θ, states and adjoints and the zeroing of gradient rows; every value the
    step adjoints compute is formed by the same operations in the same order. So the gradient and the adjoints are
    the same bits for every block length: one step per block, lengths that do and do not divide the number of steps,
    a single block (the sweep before blocking), and the default. d = 5 makes the rows end off a 64-byte line."""
    d, N = 5, 37
    field = field_cls(d)
    smp = parameter_samples(method, 1.0, N, layout, starter)
    rng = np.random.default_rng(11)
    theta = rng.standard_normal((smp.n_samples, field.n_params)) / np.sqrt(d)
    x0, loss = rng.standard_normal(d), QuadraticLoss(rng.standard_normal(d))

    def run():
        r = discrete_adjoint(field, method, x0, theta, 1.0, N, loss, layout=layout, starter=starter, backend="numba")
        return r.grad_theta, r.grad_x0

    reference = run()
    assert kernels.block_steps(1, field.n_params) >= N    # the default: one block at this size
    for block in (1, 2, 5, 36, 37, 1000):
        monkeypatch.setattr(kernels, "block_steps", lambda rows_per_step, p, b=block: b)
        g, gx = run()
        assert np.array_equal(g, reference[0]) and np.array_equal(gx, reference[1]), block


def test_backward_sweep_default_blocks_at_large_p():
    """At d = 16 (p = 272) the default block is 120 leapfrog steps and 30 RK4 steps (BLOCK_BYTES of θ rows counted
    with multiplicity), so N = 300 runs several blocks and a short last one; the result equals the single-block
    sweep's bits."""
    assert kernels.block_steps(1, 272) == kernels.BLOCK_BYTES // (8 * 272) == 120
    assert kernels.block_steps(4, 272) == 30
    d, N = 16, 300
    field = TanhField(d)
    for method, starter in ((LEAPFROG, "forward_euler"), (RK4, None)):
        smp = parameter_samples(method, 1.0, N, "step", starter)
        rng = np.random.default_rng(5)
        theta = rng.standard_normal((smp.n_samples, field.n_params)) / 4.0
        x0, loss = rng.standard_normal(d), QuadraticLoss(rng.standard_normal(d))
        h = 1.0 / N
        if method is RK4:
            A, b, _ = RK4.arrays()
            hA, hb = np.ascontiguousarray(h * A), np.ascontiguousarray(h * b)
            xs = kernels.erk_forward(field.kernel, x0, theta, smp.stage_index, hA, hb)
            run = lambda block: kernels._erk_backward_prepared(
                field.kernel, xs, theta, np.asarray(smp.stage_index), hA, hb, np.empty(0), xs[-1].copy(),
                np.empty((0, 4, d)), None, block)
        else:
            A, b, _ = smp.starter.arrays()
            args = (np.asarray(smp.stage_index), np.ascontiguousarray(h * A), np.ascontiguousarray(h * b),
                    np.array([1.0, -0.0]), np.array([0.0, 2.0 * h]), np.asarray(smp.grid_index))
            xs = kernels.lmm_forward(field.kernel, x0, theta, *args)
            run = lambda block: kernels._lmm_backward_prepared(
                field.kernel, xs, theta, *args, xs[-1].copy(), np.zeros((0, d)), np.zeros(0, dtype=np.bool_), None,
                block)
        default, single = run(None), run(N + 1)
        assert np.array_equal(default[0], single[0]) and np.array_equal(default[1], single[1])


@pytest.mark.parametrize("block,error", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)])
def test_backward_sweep_block_argument_is_checked(block, error):
    d, N = 3, 4
    smp = parameter_samples(RK4, 1.0, N, "step", None)
    theta = np.zeros((smp.n_samples, d * d + d))
    A, b, _ = RK4.arrays()
    xs = np.zeros((N + 1, d))
    with pytest.raises(error, match="block"):
        kernels._erk_backward_prepared(TanhField.kernel, xs, theta, np.asarray(smp.stage_index), A / N, b / N,
                                       np.empty(0), np.zeros(d), np.empty((0, 4, d)), None, block)


@pytest.mark.parametrize("method,starter", [(RK4, None), (LEAPFROG, "forward_euler")], ids=["rk4", "leapfrog"])
def test_gradient_pages_mapped_on_a_second_thread_change_no_bit(monkeypatch, method, starter):
    """With the threshold at 0 every gradient goes through gradient_buffer's thread (pages mapped while the forward
    sweep runs); the backward sweep still zeroes every row first, so gradient and adjoints are the same bits as
    without the thread. Also with a thread whose array held garbage (NaN) before the sweep."""
    d, N = 6, 50
    field = TanhField(d)
    smp = parameter_samples(method, 1.0, N, "step", starter)
    rng = np.random.default_rng(8)
    theta = rng.standard_normal((smp.n_samples, field.n_params)) / np.sqrt(d)
    x0, loss = rng.standard_normal(d), QuadraticLoss(rng.standard_normal(d))
    run = lambda: discrete_adjoint(field, method, x0, theta, 1.0, N, loss, layout="step", starter=starter,
                                   backend="numba")
    monkeypatch.setattr(kernels, "BACKGROUND_MAP_BYTES", 1 << 62)
    plain = run()
    monkeypatch.setattr(kernels, "BACKGROUND_MAP_BYTES", 0)
    threaded = run()
    original = kernels.gradient_buffer

    def garbage(shape, min_bytes=None):
        out, mapping = original(shape, min_bytes)
        mapping.join()
        out.fill(np.nan)
        return out, mapping
    monkeypatch.setattr(kernels, "gradient_buffer", garbage)
    dirty = run()
    for r in (threaded, dirty):
        assert np.array_equal(r.grad_theta, plain.grad_theta) and np.array_equal(r.grad_x0, plain.grad_x0)


def test_gradient_buffer_threshold_and_errors(monkeypatch):
    assert kernels.gradient_buffer((10, 12)) == (None, None)          # 960 bytes: below the threshold
    out, mapping = kernels.gradient_buffer((10, 12), min_bytes=0)
    mapping.join()
    assert out.shape == (10, 12) and out.dtype == np.float64 and out.flags.c_contiguous
    assert out.reshape(-1)[0] == 0.0                                   # the one entry of its page it wrote
    monkeypatch.setattr(kernels, "_usable_cpus", lambda: 1)
    assert kernels.gradient_buffer((10, 12), min_bytes=0) == (None, None)

    def fails(a):
        raise MemoryError("no page")
    monkeypatch.setattr(kernels, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(kernels, "_map_pages", fails)
    _, mapping = kernels.gradient_buffer((4, 4), min_bytes=0)
    with pytest.raises(MemoryError, match="no page"):                  # the thread's error, in the caller's thread
        mapping.join()


@pytest.mark.parametrize("out", [np.zeros((3, 4)), np.zeros((4, 12), dtype=np.float32), np.zeros((12, 4)).T,
                                 [[0.0] * 12] * 4], ids=["shape", "dtype", "layout", "list"])
def test_backward_sweep_out_argument_is_checked(out):
    d, N = 3, 4
    smp = parameter_samples(RK4, 1.0, N, "step", None)
    theta = np.zeros((smp.n_samples, d * d + d))
    A, b, _ = RK4.arrays()
    with pytest.raises(ValueError, match="out must be"):
        kernels._erk_backward_prepared(TanhField.kernel, np.zeros((N + 1, d)), theta, np.asarray(smp.stage_index),
                                       A / N, b / N, np.empty(0), np.zeros(d), np.empty((0, 4, d)), None, None, out)


@njit
def _touch_rows(a):
    for r in range(a.shape[0]):
        kernels._touch_row(a, r)
    return a.sum()


@pytest.mark.parametrize("p", [1, 7, 8, 9, 272])
def test_touching_rows_reads_only(p):
    """_touch_row reads (and keeps) one entry per 64-byte line and writes nothing, whatever the row length."""
    a = np.arange(3.0 * p).reshape(3, p)
    assert _touch_rows(a) == np.arange(3.0 * p).sum()
    assert np.array_equal(a, np.arange(3.0 * p).reshape(3, p))


# ---------------------------------------------------------------------------------------------------------------------
# θ's finiteness check in the forward sweeps, and the gradient zeroed by the backward sweeps


def _sweep_arguments(method, starter, layout, N, d, seed=0):
    smp, x0, theta, loss = _problem(method, starter, layout, N, d, seed)
    h = 1.0 / N
    if method is RK4:
        A, b, _ = RK4.arrays()
        return smp, x0, theta, loss, (np.asarray(smp.stage_index), np.ascontiguousarray(h * A),
                                      np.ascontiguousarray(h * b))
    A, b, _ = smp.starter.arrays()
    return smp, x0, theta, loss, (np.asarray(smp.stage_index), np.ascontiguousarray(h * A),
                                  np.ascontiguousarray(h * b), np.array([1.0, -0.0]), np.array([0.0, 2.0 * h]),
                                  np.asarray(smp.grid_index))


@pytest.mark.parametrize("method,starter", [(RK4, None), (LEAPFROG, "forward_euler")], ids=["rk4", "leapfrog"])
@pytest.mark.parametrize("layout", ["stage", "step", "constant"])
def test_nonfinite_theta_gives_the_same_error_on_every_path(method, starter, layout):
    """On the compiled path without checkpointing θ's NaN/inf check is the forward sweep's (counted as it reads each
    row); elsewhere it is prepare_problem's. Every path raises the same ValueError, naming θ and its first non-finite
    index, for a bad entry in the first, a middle and the last row (and a second one after it)."""
    from refimpl.ode.adjoint_recursions import _theta_check_fused

    d, N = 3, 9
    smp, x0, theta0, loss = _problem(method, starter, layout, N, d)
    assert _theta_check_fused(TanhField(d), x0, theta0, "auto", None)
    assert not _theta_check_fused(TanhField(d), x0, theta0, "numba", 4)
    assert not _theta_check_fused(TanhField(d), x0, theta0, "numpy", None)
    n = smp.n_samples
    for row in sorted({0, n // 2, n - 1}):
        for value in (np.nan, np.inf, -np.inf):
            theta = theta0.copy()
            theta[row, 5] = value
            theta[n - 1, 7] = np.nan                 # a later one (or, in the last row, after it): not the first
            message = f"theta contains NaN or inf (first at index ({row}, 5))"
            for kw in ({"backend": "numba"}, {"backend": "auto"}, {"backend": "numpy"},
                       {"backend": "numba", "checkpoint": 4}, {"backend": "numpy", "checkpoint": 4}):
                with pytest.raises(ValueError) as err:
                    discrete_adjoint(TanhField(d), method, x0, theta, 1.0, N, loss, layout=layout, starter=starter,
                                     **kw)
                assert str(err.value) == message, kw


def _reversed_rows(grid_index):
    """An LMM grid index map with its rows in reverse order (the unused −1 entries, F values no step reads, kept)."""
    out = grid_index.copy()
    used = out >= 0
    out[used] = out[used][::-1]
    return out


@pytest.mark.parametrize("method,starter", [(RK4, None), (LEAPFROG, "forward_euler")], ids=["rk4", "leapfrog"])
def test_the_forward_sweeps_count_every_theta_row_once_in_any_order(method, starter):
    """The θ check of the forward sweeps (refimpl.ode._numba._rows_nonfinite) counts each row once whatever order the
    sweep reads the rows in (here reversed, with two rows never read) and counts nothing when θ is vouched for; the
    states are those of the unchecked sweep."""
    d, N = 3, 8
    smp, x0, theta, _, args = _sweep_arguments(method, starter, "step", N, d)
    n = theta.shape[0]
    theta = np.vstack([theta, theta[:2]])           # two rows more, never read
    bad = [(1, 0), (n - 1, 3), (n, 2), (n + 1, 11), (n + 1, 4)]
    for r, q in bad:
        theta[r, q] = np.inf if q % 2 else np.nan
    if method is RK4:
        index = np.ascontiguousarray(args[0][::-1])  # rows read from the last to the first
        run = lambda check: kernels._erk_forward_prepared(TanhField.kernel, x0, theta, index, *args[1:], np.empty(0),
                                                          False, check)[0]
    else:
        grid = _reversed_rows(args[-1])
        run = lambda check: kernels._lmm_forward_prepared(TanhField.kernel, x0, theta, *args[:-1], grid, check)[0]
    check = np.zeros(2, dtype=np.int64)
    xs = run(check)
    assert check[1] == len(bad)
    vouched = np.array([theta.shape[0], 0], dtype=np.int64)
    assert run(vouched).tobytes() == xs.tobytes() and vouched[1] == 0


@pytest.mark.parametrize("method,starter", [(RK4, None), (LEAPFROG, "forward_euler")], ids=["rk4", "leapfrog"])
@pytest.mark.parametrize("layout", ["stage", "step", "constant", "reversed"])
def test_the_backward_sweeps_write_every_gradient_entry(method, starter, layout):
    """The backward sweeps take the gradient uninitialised and zero each row as they first reach it
    (refimpl.ode._numba._zero_rows): started on a gradient full of NaN they give the bits they give on zeros, for the
    layouts and for rows reached in reverse order with two rows never reached (which come back 0.0), for blocks of
    one step, of three (a short last block) and one block (the zeroing runs per block, refimpl.ode._numba
    "the backward sweeps' memory order")."""
    d, N = 3, 8
    smp, x0, theta, loss, args = _sweep_arguments(method, starter, "step" if layout == "reversed" else layout, N, d)
    if layout == "reversed":
        theta = np.vstack([theta, theta[:2]])
        if method is RK4:
            args = (np.ascontiguousarray(args[0][::-1]),) + args[1:]
        else:
            args = args[:-1] + (_reversed_rows(args[-1]),)
    sw = kernels.sweeps(TanhField.kernel)
    results = []
    for fill, block in ((0.0, 1000), (np.nan, 1000), (np.nan, 1), (np.nan, 3)):
        g = np.full(theta.shape, fill)
        nonfinite = np.zeros(1, dtype=np.int64)
        if method is RK4:
            xs = kernels.erk_forward(TanhField.kernel, x0, theta, *args)
            lam = np.full(xs.shape, fill)
            lam[-1] = loss.grad(xs[-1])
            sw.erk_backward(xs, theta, args[0], args[1], args[2], np.empty(0), lam, g, np.empty((0, 4, d)),
                            nonfinite, block)
        else:
            xs = kernels.lmm_forward(TanhField.kernel, x0, theta, *args)
            lam = np.zeros(xs.shape)
            lam[-1] = loss.grad(xs[-1])
            sw.lmm_backward(xs, theta, *args, lam, g, np.zeros((0, d)), np.zeros(0, dtype=np.bool_), nonfinite,
                            block)
        assert nonfinite[0] == 0
        results.append((g.tobytes(), lam.tobytes()))
    assert all(r == results[0] for r in results[1:])
    if layout == "reversed":
        assert not np.any(np.frombuffer(results[1][0])[-2 * theta.shape[1]:])


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("order", ["ascending", "random"])
def test_the_lmm_forward_ring_of_F_values_gives_the_states_of_the_full_array(k, order):
    """Without keep_slopes the LMM forward sweep holds F_m in a ring of R = 2^⌈log₂ k⌉ rows (row m & (R − 1)). Step n
    reads F_n … F_{n+k−1}, which are k consecutive indices and so in distinct rows, and F_{m+R} is first evaluated at
    a step after the last one reading F_m; so the states are the same bits as with the full (N, d) array, for any k,
    any pattern of zero β_j (a skipped F_m leaves a gap) and any map of the samples (here ascending or random, rows
    reused)."""
    rng = np.random.default_rng(100 + k)
    d, N = 3, 29
    theta = rng.standard_normal((N, d * d + d)) / np.sqrt(d)
    x0 = rng.standard_normal(d)
    h = 1.0 / N
    malpha = rng.standard_normal(k) / k
    hbeta = h * rng.standard_normal(k) * (rng.random(k) < 0.7)      # some β_j = 0
    grid = np.arange(N) if order == "ascending" else rng.integers(0, N, size=N)
    s_index = np.asarray(np.arange(max(k - 1, 0)).reshape(-1, 1), dtype=np.int64)
    args = (s_index, np.zeros((1, 1)), np.array([h]), malpha, hbeta, np.asarray(grid, dtype=np.int64))
    for field in (TanhField(d), LinearField(d)):
        full, (F, have_F) = kernels._lmm_forward_prepared(field.kernel, x0, theta, *args, keep_slopes=True)
        ring, none = kernels._lmm_forward_prepared(field.kernel, x0, theta, *args, keep_slopes=False)
        assert none is None and ring.tobytes() == full.tobytes()
        assert kernels.lmm_forward(field.kernel, x0, theta, *args).tobytes() == full.tobytes()
        # the kept values are f at the states, against the NumPy field (another summation order, another tanh): a
        # dot product of d + 1 terms differs by at most γ_{d+1}·(|W||x| + |b|) between orders, tanh is 1-Lipschitz
        # and within TANH_ULP_BOUND ulp, so (d + 2)·eps·(|W||x| + |b|) + (TANH_ULP_BOUND + 1)·ulp bounds the gap
        eps = np.finfo(float).eps
        for m in np.flatnonzero(have_F):
            th = theta[grid[m]]
            W, b = th[:d * d].reshape(d, d), th[d * d:]
            ref = field.f(full[m], th)
            bound = (d + 2) * eps * (np.abs(W) @ np.abs(full[m]) + np.abs(b)) + (TANH_ULP_BOUND + 1) * eps * np.abs(ref)
            assert np.all(np.abs(F[m] - ref) <= bound)


# ---------------------------------------------------------------------------------------------------------------------
# the LMM backward sweep on two threads


def _lmm_backward_both_ways(field, method, starter, layout, N, d, chunks, block=None, fill=0.0):
    """(one-thread result, [two-thread results for each (chunk, slots)]) of the compiled LMM backward sweep, each a
    (grad_theta bytes, lambdas bytes, nonfinite) triple; ``layout`` "reversed": the step layout's rows in reverse
    order plus two rows never reached; the gradient starts filled with ``fill`` (it is written before it is read)."""
    smp, x0, theta, loss = _problem(method, starter, "step" if layout == "reversed" else layout, N, d, seed=N + d)
    k = method.steps
    h = 1.0 / N
    A, b, _ = smp.starter.arrays()
    grid = np.asarray(smp.grid_index)
    if layout == "reversed":
        theta = np.vstack([theta, theta[:2]])
        grid = _reversed_rows(grid)
    args = (np.asarray(smp.stage_index), np.ascontiguousarray(h * A), np.ascontiguousarray(h * b),
            np.array([-float(a) for a in method.alpha[:k]]), np.array([h * float(c) for c in method.beta]), grid)
    xs = kernels.lmm_forward(field.kernel, x0, theta, *args)
    block = kernels.block_steps(1, theta.shape[1]) if block is None else block
    sw = kernels.sweeps(field.kernel)

    def run(two, chunk=None, slots=None):
        lam = np.zeros(xs.shape)
        lam[-1] = loss.grad(xs[-1])
        g = np.full(theta.shape, fill)
        nonfinite = np.zeros(1, dtype=np.int64)
        empty = (np.zeros((0, d)), np.zeros(0, dtype=np.bool_))
        if two:
            kernels.lmm_backward_two_threads(sw, xs, theta, *args, lam, g, *empty, nonfinite, block, chunk, slots)
        else:
            sw.lmm_backward(xs, theta, *args, lam, g, *empty, nonfinite, block)
        return g.tobytes(), lam.tobytes(), int(nonfinite[0])

    return run(False), [run(True, c, s) for c, s in chunks]


CHUNKS = [(1, 1), (2, 1), (5, 2), (7, 4), (64, 3), (10 ** 6, 2)]


@pytest.mark.parametrize("field_cls", [TanhField, LinearField])
@pytest.mark.parametrize("layout", ["stage", "step", "constant", "reversed"])
@pytest.mark.parametrize("method,starter", [(LEAPFROG, "forward_euler"), (AB3, "matched")], ids=["leapfrog", "ab3"])
@pytest.mark.parametrize("d", [5, 16])
def test_the_two_thread_lmm_backward_sweep_gives_the_one_thread_bits(method, starter, layout, field_cls, d):
    """Split into the λ pass (calling thread) and the gradient rows (second thread), chunk by chunk, the sweep gives
    every gradient row and every λ the operations of the one-thread sweep in the same order: the same bits, for
    chunks of one step to one chunk for all, one to four slots, gradients started on NaN (every entry is written), and
    rows reached in reverse order with two never reached (which come back 0.0)."""
    one, two = _lmm_backward_both_ways(field_cls(d), method, starter, layout, 37, d, CHUNKS, fill=np.nan)
    assert one[2] == 0
    for (chunk, slots), r in zip(CHUNKS, two):
        assert r == one, (chunk, slots)


@pytest.mark.parametrize("block", [1, 3, 1000])
def test_the_two_thread_sweep_keeps_the_bits_for_any_block_length(block):
    one, two = _lmm_backward_both_ways(TanhField(4), LEAPFROG, "forward_euler", "step", 50, 4, [(4, 2), (9, 3)],
                                       block=block)
    assert all(r == one for r in two)


def test_the_public_call_takes_the_two_thread_sweep_above_its_threshold(monkeypatch):
    """discrete_adjoint routes a large gradient to the two-thread sweep (threshold lowered here) with the same bits;
    with one usable CPU, or a descriptor without the split VJP (the oracle's pinned kernels), it does not."""
    from refimpl.ode._numba_pinned import PINNED_KERNELS

    calls = []
    original = kernels.lmm_backward_two_threads
    monkeypatch.setattr(kernels, "lmm_backward_two_threads", lambda *a, **k: calls.append(1) or original(*a, **k))
    d, N = 6, 300
    smp, x0, theta, loss = _problem(LEAPFROG, "forward_euler", "step", N, d)
    run = lambda: discrete_adjoint(TanhField(d), LEAPFROG, x0, theta, 1.0, N, loss, layout="step",
                                   starter="forward_euler", backend="numba")
    one = run()
    assert calls == []
    monkeypatch.setattr(kernels, "TWO_THREAD_BYTES", 0)
    two = run()
    assert calls == [1] or kernels._usable_cpus() < 2
    assert two.grad_theta.tobytes() == one.grad_theta.tobytes() and two.lambdas.tobytes() == one.lambdas.tobytes()
    monkeypatch.setattr(kernels, "_usable_cpus", lambda: 1)
    assert not kernels.two_threads_apply(TanhField.kernel, 1 << 40)
    monkeypatch.setattr(kernels, "_usable_cpus", lambda: 2)
    assert kernels.two_threads_apply(TanhField.kernel, 1 << 40)
    assert not kernels.two_threads_apply(PINNED_KERNELS["tanh"], 1 << 40)


def test_an_error_in_the_gradient_thread_is_raised_in_the_caller():
    """A failure of the second thread reaches the caller (no hang waiting for a slot it will never free)."""
    from types import SimpleNamespace

    real = kernels.sweeps(TanhField.kernel)

    def broken(*args):
        raise RuntimeError("gradient thread failed")

    sw = SimpleNamespace(lmm_backward_lambdas=real.lmm_backward_lambdas, lmm_backward_gradient=broken,
                         lmm_backward_tail=real.lmm_backward_tail)
    d, N = 3, 40
    smp, x0, theta, loss, args = _sweep_arguments(LEAPFROG, "forward_euler", "step", N, d)
    xs = kernels.lmm_forward(TanhField.kernel, x0, theta, *args)
    lam = np.zeros(xs.shape)
    with pytest.raises(RuntimeError, match="gradient thread failed"):
        kernels.lmm_backward_two_threads(sw, xs, theta, *args, lam, np.zeros(theta.shape), np.zeros((0, d)),
                                         np.zeros(0, dtype=np.bool_), np.zeros(1, dtype=np.int64), 8, 3, 1)
    with pytest.raises(ValueError, match="chunk and slots"):
        kernels.lmm_backward_two_threads(real, xs, theta, *args, lam, np.zeros(theta.shape), np.zeros((0, d)),
                                         np.zeros(0, dtype=np.bool_), np.zeros(1, dtype=np.int64), 8, 0, 1)


def test_a_descriptor_names_both_parts_of_the_split_vjp_or_neither():
    from refimpl.ode.fields.base import NumbaKernel

    with pytest.raises(ValueError, match="both vjp_x and vjp_theta"):
        NumbaKernel("refimpl.ode._numba", "tanh_f", "tanh_vjp", lambda d: d * d + d, vjp_x="tanh_vjp_x")
    assert NumbaKernel("refimpl.ode._numba", "tanh_f", "tanh_vjp", lambda d: d).split_functions() is None
    assert TanhField.kernel.split_functions() == (kernels.tanh_vjp_x, kernels.affine_vjp_theta)


def test_two_thread_chunks():
    assert kernels.two_thread_chunk(10 ** 3) == 1024 and kernels.two_thread_chunk(10 ** 6) == 16384
    assert kernels.two_thread_chunk(10 ** 5) == 3125
