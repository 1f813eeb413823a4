"""The compiled adjoint's inner loop (refimpl.ode._numba): the point VJPs taken four rows at a time, the plumbing of
discrete_adjoint that calls the sweeps without re-checking θ, and the compiled finiteness scan.

Every comparison here is exact (``np.array_equal`` / identical bytes): the blocked VJP performs, on every entry, the
same floating-point operations in the same order as the row-by-row loop written below (z_i = b_i + W_i0 x_0 + …;
out_x[j] = 0 + W_0j u_0 + W_1j u_1 + … in row order; g_W[i, j] += u_i x_j once), so no rounding difference is
allowed; and the public wrappers and the prepared path run the same compiled sweeps on the same arrays.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from refimpl.ode import _numba as kernels
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import LinearField, QuadraticLoss, TanhField
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import LEAPFROG, RK4
from refimpl.testing.strategies import float_arrays

_sech2 = kernels._sech2


@njit
def _row_by_row_vjp(x, th, v, out_x, g_th, tanh):
    """The VJP through z = W x + b (and tanh when ``tanh``), one row at a time: the reference order."""
    d = x.shape[0]
    dd = d * d
    for j in range(d):
        out_x[j] = 0.0
    for i in range(d):
        z = th[dd + i]
        for j in range(d):
            z += th[i * d + j] * x[j]
        u = _sech2(z) * v[i] if tanh else v[i]
        g_th[dd + i] += u
        for j in range(d):
            g_th[i * d + j] += u * x[j]
            out_x[j] += th[i * d + j] * u


@njit
def _blocked(x, fx, th, v, out_x, g_th, tanh):
    if tanh:
        kernels.tanh_vjp(x, fx, th, v, out_x, g_th)
    else:
        kernels.linear_vjp(x, fx, th, v, out_x, g_th)


@pytest.mark.parametrize("tanh", [True, False], ids=["tanh", "linear"])
@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_blocked_vjp_is_the_row_by_row_vjp_bit_for_bit(d, tanh):
    rng = np.random.default_rng(d)
    for scale in (0.3, 3.0, 30.0):                     # 30: tanh saturated (sech² down to e^-60 and below)
        x, v = rng.standard_normal(d), rng.standard_normal(d)
        th = scale * rng.standard_normal(d * d + d)
        g0 = rng.standard_normal(d * d + d)             # the VJP accumulates into g_th
        out_a, out_b = np.full(d, np.nan), np.full(d, np.nan)   # overwritten, whatever they held
        g_a, g_b = g0.copy(), g0.copy()
        _blocked(x, np.zeros(d), th, v, out_a, g_a, tanh)
        _row_by_row_vjp(x, th, v, out_b, g_b, tanh)
        assert out_a.tobytes() == out_b.tobytes() and g_a.tobytes() == g_b.tobytes()


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
