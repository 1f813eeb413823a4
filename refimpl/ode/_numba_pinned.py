r"""The point functions of the linear and tanh fields in the arithmetic of the oracle's stored cases (frozen).

The oracle's ODE references (:mod:`refimpl.oracle.ode_cases`) are computed by the compiled sweeps of
:mod:`refimpl.ode._numba` with the point functions below: separate multiply and add roundings in the accumulations
g_W += u xᵀ, out_x += Wᵀu, and the C library's ``tanh`` / ``exp`` (sech² z = 4w/(1 + w)², w = e^{−2|z|}). They are
the built-in fields' kernels as they computed when the case format's first version was exported, kept unchanged so
that faster default kernels (:mod:`refimpl.ode._numba`: vectorised tanh, fused multiply-adds) never move a stored
case; :mod:`refimpl.oracle.arithmetic` names them, and tests/test_oracle_pinned_arithmetic.py rebuilds cases against
digests recorded from that export. Same formulas as the defaults; the two differ by rounding only (bounded in
tests/test_ode_adjoint_kernels.py). Do not edit: a change here changes the bytes of exported cases.
"""
from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from refimpl.ode.fields.base import NumbaKernel
from refimpl.ode.fields.linear import affine_n_params

__all__ = ["linear_f", "linear_vjp", "tanh_f", "tanh_vjp", "PINNED_KERNELS"]

@register_jitable(inline="always")
def _affine(x, th, out):
    """out = W x + b. Each z_i = b_i + W_i0 x_0 + W_i1 x_1 + ... is summed in this fixed order (bit-identical to a
    plain row loop); four rows are summed side by side, which gives four independent add chains per j instead of one
    (the strict-order dot product of a single row is one dependent chain that the CPU cannot overlap)."""
    d = x.shape[0]
    dd = d * d
    i = 0
    while i + 4 <= d:
        r0 = i * d
        r1 = r0 + d
        r2 = r1 + d
        r3 = r2 + d
        z0 = th[dd + i]
        z1 = th[dd + i + 1]
        z2 = th[dd + i + 2]
        z3 = th[dd + i + 3]
        for j in range(d):
            xj = x[j]
            z0 += th[r0 + j] * xj
            z1 += th[r1 + j] * xj
            z2 += th[r2 + j] * xj
            z3 += th[r3 + j] * xj
        out[i] = z0
        out[i + 1] = z1
        out[i + 2] = z2
        out[i + 3] = z3
        i += 4
    while i < d:
        z = th[dd + i]
        r = i * d
        for j in range(d):
            z += th[r + j] * x[j]
        out[i] = z
        i += 1


@register_jitable
def linear_f(x, th, out):
    """out = W x + b."""
    _affine(x, th, out)


@register_jitable
def tanh_f(x, th, out):
    """out = tanh(W x + b)."""
    _affine(x, th, out)
    for i in range(x.shape[0]):
        out[i] = np.tanh(out[i])


# The two VJPs share the accumulation u -> (g_W += u x^T, g_b += u, out_x += W^T u). Rows are taken four at a time
# (_affine_vjp_rows4, inlined at the IR level): the four cotangents u_i..u_{i+3} stay in registers, so no scratch vector
# is needed for u (the point-function signature has none, and allocating one per call would allocate per stage and
# step), and the j loop updates four rows of g_W and out_x in one pass. out_x[j] still receives
# W_0j u_0, W_1j u_1, ... one at a time in row order, so every entry is the same floating-point sum as a row-by-row
# loop.


@register_jitable(inline="always")
def _affine_vjp_rows4(i, u0, u1, u2, u3, x, th, out_x, g_th):
    """Rows i..i+3 of the VJP through z = W x + b (θ = (W row-major, b)) for the cotangents u_k = ∂L/∂z_{i+k}:
    g_th[b_{i+k}] += u_k, g_th[W_{i+k}·] += u_k x, out_x[j] += W_{i,j} u_0, then += W_{i+1,j} u_1, … (in this order)."""
    d = x.shape[0]
    dd = d * d
    g_th[dd + i] += u0
    g_th[dd + i + 1] += u1
    g_th[dd + i + 2] += u2
    g_th[dd + i + 3] += u3
    r0 = i * d
    r1 = r0 + d
    r2 = r1 + d
    r3 = r2 + d
    for j in range(d):
        xj = x[j]
        g_th[r0 + j] += u0 * xj
        g_th[r1 + j] += u1 * xj
        g_th[r2 + j] += u2 * xj
        g_th[r3 + j] += u3 * xj
        out_x[j] = (((out_x[j] + th[r0 + j] * u0) + th[r1 + j] * u1) + th[r2 + j] * u2) + th[r3 + j] * u3


@register_jitable(inline="always")
def _affine_vjp_row(i, u, x, th, out_x, g_th):
    """Row i of the VJP through z = W x + b for the cotangent u = ∂L/∂z_i (the rows left over after blocks of four):
    g_th[b_i] += u, g_th[W_i·] += u x, out_x += W_i·ᵀ u."""
    d = x.shape[0]
    g_th[d * d + i] += u
    r = i * d
    for j in range(d):
        g_th[r + j] += u * x[j]
        out_x[j] += th[r + j] * u


@register_jitable
def linear_vjp(x, fx, th, v, out_x, g_th):
    """With u = v: out_x = W^T u (overwritten); g_th += (vec(u x^T), u) (accumulated); ``fx`` is not read."""
    d = x.shape[0]
    for j in range(d):
        out_x[j] = 0.0
    i = 0
    while i + 4 <= d:
        _affine_vjp_rows4(i, v[i], v[i + 1], v[i + 2], v[i + 3], x, th, out_x, g_th)
        i += 4
    while i < d:
        _affine_vjp_row(i, v[i], x, th, out_x, g_th)
        i += 1


@register_jitable(inline="always")
def _sech2(z):
    """sech² z = 4w/(1 + w)², w = exp(−2|z|): 1 − tanh² z without cancellation (the formula and order of operations of
    refimpl.ode.fields.neural.sech2 and of the tape's tanh VJP)."""
    w = np.exp(-2.0 * abs(z))
    q = 1.0 + w
    return 4.0 * w / (q * q)


@register_jitable
def tanh_vjp(x, fx, th, v, out_x, g_th):
    """With u = sech²(z) v, z = W x + b formed again (each z_i in the order of _affine, four rows side by side as
    there, so the same z as tanh_f): out_x = W^T u (overwritten); g_th += (vec(u x^T), u) (accumulated). Per block of
    four rows: the four z_i, their four sech² (:func:`_sech2`, one exp each), then the four rows of the
    accumulation; no temporaries. ``fx`` is not read: 1 − fx² would cancel where tanh saturates."""
    d = x.shape[0]
    dd = d * d
    for j in range(d):
        out_x[j] = 0.0
    i = 0
    while i + 4 <= d:
        r0 = i * d
        r1 = r0 + d
        r2 = r1 + d
        r3 = r2 + d
        z0 = th[dd + i]
        z1 = th[dd + i + 1]
        z2 = th[dd + i + 2]
        z3 = th[dd + i + 3]
        for j in range(d):
            xj = x[j]
            z0 += th[r0 + j] * xj
            z1 += th[r1 + j] * xj
            z2 += th[r2 + j] * xj
            z3 += th[r3 + j] * xj
        _affine_vjp_rows4(i, _sech2(z0) * v[i], _sech2(z1) * v[i + 1], _sech2(z2) * v[i + 2],
                          _sech2(z3) * v[i + 3], x, th, out_x, g_th)
        i += 4
    while i < d:
        z = th[dd + i]
        r = i * d
        for j in range(d):
            z += th[r + j] * x[j]
        _affine_vjp_row(i, _sech2(z) * v[i], x, th, out_x, g_th)
        i += 1


#: field family → the descriptor of its pinned point functions (the sweeps of refimpl.ode._numba run them)
PINNED_KERNELS = {
    "linear": NumbaKernel(__name__, "linear_f", "linear_vjp", affine_n_params, vjp_reads_fx=False),
    "tanh": NumbaKernel(__name__, "tanh_f", "tanh_vjp", affine_n_params, vjp_reads_fx=False),
}
