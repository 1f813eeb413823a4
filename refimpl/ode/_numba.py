r"""Compiled (Numba) ERK / LMM forward sweeps and discrete-adjoint backward sweeps — the recursions of
:mod:`refimpl.ode.adjoint_recursions` (derivation: docs/theory/discrete-adjoint.md) — generic over the vector field.

The sweeps know no field. A field with a compiled path carries a :class:`~refimpl.ode.fields.NumbaKernel`
descriptor naming two point functions, ``f(x, th, out)`` and ``vjp(x, fx, th, v, out_x, g_th)``, written for
:func:`numba.extending.register_jitable`; :func:`sweeps` builds the four sweeps for one descriptor (once: the result is
cached per descriptor in the process, and Numba's on-disk cache keeps the compiled code between processes, since the
sweeps close over the point functions by reference only).

The point functions of the built-in fields are here too (section "field point functions"): the affine map
:math:`z = Wx + b` of :class:`~refimpl.ode.fields.LinearField` and :class:`~refimpl.ode.fields.TanhField`
(:math:`\theta = (\mathrm{vec}\,W, b)`), and :math:`\tanh z`. With :math:`s = 1` (linear) or
:math:`s = \operatorname{sech}^2 z` (tanh), :math:`u = s\circ v`: :math:`\partial_xf^{\mathsf T}v = W^{\mathsf T}u`,
:math:`\partial_Wf^{\mathsf T}v = u x^{\mathsf T}`, :math:`\partial_bf^{\mathsf T}v = u`. For tanh the VJP forms
:math:`z` again and takes :math:`\operatorname{sech}^2 z = 4w/(1+w)^2`, :math:`w = e^{-2|z|}`, not :math:`1 - f^2`
from the stored value :math:`f = \tanh z` (the stage slope), which cancels where tanh saturates (|z| ≳ 10). tanh and
sech² are :mod:`refimpl.numerics.polynomial_tanh` (≤ 7 and ≤ 8 ulp, derived in docs/theory/discrete-adjoint.md §13):
branch-free arithmetic on the polynomial exp, so the loops over the state run in SIMD lanes, where the C library's
``tanh`` / ``exp`` are scalar calls that no loop around them vectorises.

Non-uniform grids (Runge–Kutta): the ERK sweeps take the steps :math:`h_n` and form :math:`h_na_{ij}`,
:math:`h_nb_i` per step (:func:`_step_coefficients`), the products the NumPy path forms. Checkpointing
(docs/theory/discrete-adjoint.md §12): ``erk_forward_checkpointed`` keeps every k-th state, and
``erk_backward_checkpointed`` recomputes each segment from its checkpoint with the same step code before running the
step adjoints over it, so its results are bit-identical to ``erk_backward`` on the full trajectory.

Summation order is fixed (no reassociation, no ``fastmath``; fused multiply-adds only where written, as ``llvm.fma``),
so results are deterministic — the same bits for the same inputs, in any thread, at any SIMD width — and do not
depend on the loop structure: :math:`z_i = b_i + W_{i0}x_0 + W_{i1}x_1 + \dots` in that order (unfused; four rows
are summed side by side for instruction-level parallelism, each in this order); the VJP accumulations are fused, row
by row in row order (comment before :func:`_affine_vjp_rows`); vector updates are explicit loops (no temporaries).
The point functions and the step helpers are inlined into the sweeps at the Numba IR level.

The compiled functions are private; the public functions here are the checked wrappers (dtypes, shapes, index ranges,
contiguity), which take the field's descriptor first and are the only way the sweeps are called.

Everything a sweep calls is a module-level ``register_jitable`` function or a closure of :func:`sweeps` over such
functions: Numba keys its on-disk cache of a closure on the pickled closure contents, and module-level plain functions
pickle by reference (the same bytes in every process), whereas a jitted dispatcher pickles with a per-process id. The
closures of one descriptor carry a qualified name of their own (``erk_forward__refimpl_ode__numba_tanh_f_...``), so
the compiled code and the cache files of different fields never share a name.
"""
from __future__ import annotations

import functools
import os
import queue
import re
import threading
from types import SimpleNamespace

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable

from refimpl.numba_cache import njit_cached
from refimpl.numerics.polynomial_exp import _fma
from refimpl.numerics.polynomial_tanh import polynomial_sech2, polynomial_tanh

from refimpl.arguments import f64_array as _f64, index_array as _index
from refimpl.ode.fields.base import NumbaKernel

__all__ = ["sweeps", "erk_forward", "erk_backward", "erk_forward_checkpointed", "erk_backward_checkpointed",
           "checkpoint_steps", "lmm_forward", "lmm_backward", "lmm_forward_checkpointed",
           "lmm_backward_checkpointed", "all_finite",
           "linear_f", "linear_vjp", "tanh_f", "tanh_vjp"]


# ---------------------------------------------------------------------------------------------------------------------
# field point functions (named by the NumbaKernel descriptors of LinearField and TanhField)
#
# The sweeps call f and vjp once per evaluation; a further call inside them costs measurably (~5% at d = 16), so the
# shared affine map is inlined into linear_f and tanh_f at the Numba IR level (inline="always": same operations, same
# order). Only module-level functions are inlined this way; the closures of `sweeps` are not.


@register_jitable(inline="always")
def _affine_rows4(i, x, th):
    """(z_i, z_{i+1}, z_{i+2}, z_{i+3}) of z = W x + b, each z_r = b_r + W_r0 x_0 + W_r1 x_1 + ... summed in this fixed
    order (bit-identical to a plain row loop). The four rows are summed side by side, which gives four independent add
    chains per j instead of one (the strict-order dot product of a single row is one dependent chain that the CPU
    cannot overlap). Shared by :func:`_affine` and the four-row route of :func:`tanh_vjp`, so both form the same z."""
    d = x.shape[0]
    dd = d * d
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
    return z0, z1, z2, z3


@register_jitable(inline="always")
def _affine_row(i, x, th):
    """z_i = b_i + W_i0 x_0 + W_i1 x_1 + ... of z = W x + b, in this order (the rows left over after blocks of four)."""
    d = x.shape[0]
    z = th[d * d + i]
    r = i * d
    for j in range(d):
        z += th[r + j] * x[j]
    return z


@register_jitable(inline="always")
def _affine(x, th, out):
    """out = W x + b, four rows at a time (:func:`_affine_rows4`), then the rows left over (:func:`_affine_row`)."""
    d = x.shape[0]
    i = 0
    while i + 4 <= d:
        z0, z1, z2, z3 = _affine_rows4(i, x, th)
        out[i] = z0
        out[i + 1] = z1
        out[i + 2] = z2
        out[i + 3] = z3
        i += 4
    while i < d:
        out[i] = _affine_row(i, x, th)
        i += 1


@register_jitable(inline="always")
def linear_f(x, th, out):
    """out = W x + b."""
    _affine(x, th, out)


@register_jitable(inline="always")
def tanh_f(x, th, out):
    """out = tanh(W x + b), tanh by :func:`~refimpl.numerics.polynomial_tanh.polynomial_tanh` (≤ 7 ulp; a loop that
    vectorises, where the C library's tanh is a scalar call)."""
    _affine(x, th, out)
    for i in range(x.shape[0]):
        out[i] = polynomial_tanh(out[i])


# The VJPs share the accumulation through z = W x + b for the cotangents u_i = ∂L/∂z_i:
#     g_b[i] += u_i;   g_W[i, j] = fma(u_i, x_j, g_W[i, j]);   out_x[j] = fma(W_ij, u_i, out_x[j])
# for i = 0, 1, … in order, out_x[j] starting from 0. Every entry gets these operations in this order whichever of the two routes below runs, so
# the routes give the same bits:
# * rows in order (d ≥ _VECTOR_ROUTE_FROM): u is formed for all rows first (in v, which the sweeps let a VJP overwrite),
#   then row i updates g_W[i, :] and out_x[:] as two loops over j, which the compiler runs in SIMD lanes over j;
# * four rows at a time (small d): the four u_i stay in registers and one loop over j updates four rows of g_W and
#   out_x (W_ij u_i, W_{i+1,j} u_{i+1}, … fused in row order); nothing is written to v.
# The crossover was measured (the tanh VJP's two routes in a compiled loop, ns per call, on the 2-core Intel Xeon
# of benchmarks/RESULTS.md): d = 4: rows in order 112, four rows 97; d = 6: 189 vs 215; d = 8: 166 vs 216; d = 16: 346 vs 622.

#: state dimension from which the VJPs take the rows-in-order route (the measurement above)
_VECTOR_ROUTE_FROM = 6


@register_jitable(inline="always")
def _affine_vjp_rows(u, x, th, out_x, g_th):
    """The accumulation for all rows in order, u = (u_0, …, u_{d−1}) given: out_x = Wᵀu (overwritten), g_th +=
    (vec(u xᵀ), u) (accumulated), with the fused operations of the comment above."""
    d = x.shape[0]
    dd = d * d
    for j in range(d):
        out_x[j] = 0.0
    for i in range(d):
        g_th[dd + i] += u[i]
    for i in range(d):
        ui = u[i]
        r = i * d
        for j in range(d):
            g_th[r + j] = _fma(ui, x[j], g_th[r + j])
        for j in range(d):
            out_x[j] = _fma(th[r + j], ui, out_x[j])


@register_jitable(inline="always")
def _affine_vjp_rows4(i, u0, u1, u2, u3, x, th, out_x, g_th):
    """Rows i..i+3 of the accumulation for the cotangents u_k = ∂L/∂z_{i+k} (in registers): g_th[b_{i+k}] += u_k,
    g_th[W_{i+k}·] = fma(u_k, x, ·), out_x[j] = fma(W_{i+3,j}, u_3, fma(W_{i+2,j}, u_2, fma(W_{i+1,j}, u_1,
    fma(W_{i,j}, u_0, out_x[j]))))."""
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
        g_th[r0 + j] = _fma(u0, xj, g_th[r0 + j])
        g_th[r1 + j] = _fma(u1, xj, g_th[r1 + j])
        g_th[r2 + j] = _fma(u2, xj, g_th[r2 + j])
        g_th[r3 + j] = _fma(u3, xj, g_th[r3 + j])
        out_x[j] = _fma(th[r3 + j], u3, _fma(th[r2 + j], u2, _fma(th[r1 + j], u1, _fma(th[r0 + j], u0, out_x[j]))))


@register_jitable(inline="always")
def _affine_vjp_row(i, u, x, th, out_x, g_th):
    """Row i of the accumulation (the rows left over after blocks of four): g_th[b_i] += u, g_th[W_i·] = fma(u, x, ·),
    out_x[j] = fma(W_ij, u, out_x[j])."""
    d = x.shape[0]
    g_th[d * d + i] += u
    r = i * d
    for j in range(d):
        g_th[r + j] = _fma(u, x[j], g_th[r + j])
        out_x[j] = _fma(th[r + j], u, out_x[j])


@register_jitable(inline="always")
def _linear_vjp_blocks(x, v, th, out_x, g_th):
    """The four-row route of :func:`linear_vjp` (u = v)."""
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


@register_jitable
def linear_vjp(x, fx, th, v, out_x, g_th):
    """With u = v: out_x = W^T u (overwritten); g_th += (vec(u x^T), u) (accumulated); ``fx`` is not read, nor is
    ``v`` written. Rows in order for d ≥ _VECTOR_ROUTE_FROM, else four at a time (the same bits)."""
    if x.shape[0] >= _VECTOR_ROUTE_FROM:
        _affine_vjp_rows(v, x, th, out_x, g_th)
    else:
        _linear_vjp_blocks(x, v, th, out_x, g_th)


@register_jitable(inline="always")
def _tanh_vjp_rows(x, th, v, out_x, g_th):
    """The rows-in-order route of :func:`tanh_vjp`: z in out_x, u = sech²(z) ∘ v into v (one loop that vectorises),
    then :func:`_affine_vjp_rows`."""
    d = x.shape[0]
    _affine(x, th, out_x)
    for i in range(d):
        v[i] = polynomial_sech2(out_x[i]) * v[i]
    _affine_vjp_rows(v, x, th, out_x, g_th)


@register_jitable(inline="always")
def _tanh_vjp_blocks(x, th, v, out_x, g_th):
    """The four-row route of :func:`tanh_vjp`: per block of four rows, the four z_i (:func:`_affine_rows4`, the same
    operations as :func:`_affine`, in registers), their sech², then :func:`_affine_vjp_rows4`; ``v`` is not
    written."""
    d = x.shape[0]
    for j in range(d):
        out_x[j] = 0.0
    i = 0
    while i + 4 <= d:
        z0, z1, z2, z3 = _affine_rows4(i, x, th)
        _affine_vjp_rows4(i, polynomial_sech2(z0) * v[i], polynomial_sech2(z1) * v[i + 1],
                          polynomial_sech2(z2) * v[i + 2], polynomial_sech2(z3) * v[i + 3], x, th, out_x, g_th)
        i += 4
    while i < d:
        _affine_vjp_row(i, polynomial_sech2(_affine_row(i, x, th)) * v[i], x, th, out_x, g_th)
        i += 1


@register_jitable
def tanh_vjp(x, fx, th, v, out_x, g_th):
    """With u = sech²(z) ∘ v, z = W x + b formed again (in the order of :func:`_affine`, so the same z as tanh_f),
    sech² by :func:`~refimpl.numerics.polynomial_tanh.polynomial_sech2` (4w/(1 + w)², w = e^{−2|z|}, ≤ 8 ulp):
    out_x = W^T u (overwritten); g_th += (vec(u x^T), u) (accumulated). ``fx`` is not read: 1 − fx² would cancel
    where tanh saturates. For d ≥ _VECTOR_ROUTE_FROM rows in order (``v`` is overwritten with u), else four rows at a
    time; the two routes give the same bits."""
    if x.shape[0] >= _VECTOR_ROUTE_FROM:
        _tanh_vjp_rows(x, th, v, out_x, g_th)
    else:
        _tanh_vjp_blocks(x, th, v, out_x, g_th)


# The VJP in two parts, for the LMM backward sweep on two threads (:func:`lmm_backward_two_threads`): ``*_vjp_x``
# forms u and out_x = Wᵀu and leaves u in v; :func:`affine_vjp_theta` then does g_th += (vec(u xᵀ), u). Each entry
# receives the operations of the comment above in the same order (out_x and g_th are separate arrays, so splitting the
# loop over i between two functions reorders nothing that either reads), so the two parts give the bits of the whole.
# Their loops repeat those of :func:`_affine_vjp_rows` on purpose: the one-thread route keeps both updates in one
# pass over i (u_i read once); written as the two parts in a row it measured 0.365–0.377 against 0.341 µs/step
# (leapfrog step, d = 16, N = 10³, backward sweep alone), within this machine's noise but not better.


@register_jitable(inline="always")
def _affine_vjp_x(u, x, th, out_x):
    """out_x = Wᵀu (overwritten): out_x[j] = fma(W_ij, u_i, out_x[j]) for i = 0, 1, … in order."""
    d = x.shape[0]
    for j in range(d):
        out_x[j] = 0.0
    for i in range(d):
        ui = u[i]
        r = i * d
        for j in range(d):
            out_x[j] = _fma(th[r + j], ui, out_x[j])


@register_jitable(inline="always")
def affine_vjp_theta(u, x, g_th):
    """g_th += (vec(u xᵀ), u) (accumulated): g_b[i] += u_i, then g_W[i, j] = fma(u_i, x_j, g_W[i, j]) row by row."""
    d = x.shape[0]
    dd = d * d
    for i in range(d):
        g_th[dd + i] += u[i]
    for i in range(d):
        ui = u[i]
        r = i * d
        for j in range(d):
            g_th[r + j] = _fma(ui, x[j], g_th[r + j])


@register_jitable
def linear_vjp_x(x, fx, th, v, out_x):
    """The state part of :func:`linear_vjp`: out_x = Wᵀv; u = v stays in v."""
    _affine_vjp_x(v, x, th, out_x)


@register_jitable
def tanh_vjp_x(x, fx, th, v, out_x):
    """The state part of :func:`tanh_vjp`: z = W x + b (:func:`_affine`), u = sech²(z) ∘ v into v, out_x = Wᵀu."""
    _affine(x, th, out_x)
    for i in range(x.shape[0]):
        v[i] = polynomial_sech2(out_x[i]) * v[i]
    _affine_vjp_x(v, x, th, out_x)


# ---------------------------------------------------------------------------------------------------------------------
# prefetching the parameter rows of a later step
#
# At N = 10⁶ (d = 16, step layout) θ and its gradient are 2.2 GB each and stream from DRAM, 2 KiB per step: a step's
# rows are read in a burst that the hardware prefetcher, which does not cross 4 KiB pages and needs a few misses to
# start, covers only in part. The forward sweeps therefore ask for the θ rows of the step PREFETCH_STEPS ahead (one
# request per 64-byte line) while computing the current one. A prefetch changes no value. Measured (leapfrog, d = 16,
# step layout, N = 10⁶, the compiled sweeps alone): forward 0.44 → 0.28 µs/step. The backward sweeps, which walk
# memory downwards, no longer prefetch: they read their rows in ascending blocks instead (next section), which
# prefetches did not match (backward sweep at N = 10⁶: 0.72–0.86 µs/step with them, 0.51–0.53 with blocks).

#: how many steps ahead the forward sweeps prefetch their parameter rows
PREFETCH_STEPS = 2


@intrinsic
def _prefetch(typingctx, a, r):
    """Hint the CPU to load the cache lines of row ``r`` of the C-contiguous 2-D float64 array ``a`` (LLVM
    ``llvm.prefetch``: read, keep in all cache levels, data cache); a row out of range is skipped."""
    if not (isinstance(a, types.Array) and a.ndim == 2 and a.dtype == types.float64 and a.layout == "C"
            and isinstance(r, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        rows, cols = cgutils.unpack_tuple(builder, ary.shape, 2)
        row = context.cast(builder, args[1], signature.args[1], types.intp)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch")
        zero = ir.Constant(row.type, 0)
        inside = builder.and_(builder.icmp_signed(">=", row, zero), builder.icmp_signed("<", row, rows))
        with builder.if_then(inside):
            with cgutils.for_range_slice(builder, zero, cols, ir.Constant(row.type, 8)) as (q, _):
                ptr = builder.gep(ary.data, [builder.add(builder.mul(row, cols), q)])
                builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                                  ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(a, r), codegen


# ---------------------------------------------------------------------------------------------------------------------
# the backward sweeps' memory order
#
# A backward sweep runs time downwards, so it reads θ's rows and writes the gradient's in descending memory order
# while reading each row upwards. This CPU's hardware prefetchers follow that pattern badly: a plain compiled loop over
# a (10⁶, 272) float64 array that reads a row of θ and writes a row of a second array takes 0.14 µs/row with the rows
# ascending, 0.42–0.44 with them descending, and 0.15 with descending blocks of 256 rows walked upwards inside each
# block (benchmarks/RESULTS.md). Software prefetches (llvm.prefetch, 2–32 rows ahead, or the next block's rows one
# per step) did not recover it. So the backward sweeps go through time in blocks of steps (the last block first): at
# the start of a block they read one entry of every 64-byte line of the block's θ rows, states and adjoints (and stored
# stage slopes) with the rows ascending (:func:`_touch_row`), which brings them into the cache as ascending streams,
# and zero the block's gradient rows, also ascending (:func:`_zero_rows`); then the step adjoints run downwards
# through the block as before, on rows already in cache. Nothing a step computes changes (the same operations in the
# same order), so the results are the same bits for every block length (tested). Measured (leapfrog, d = 16, step
# layout, the compiled backward sweep alone, fresh gradient): N = 10⁴ 0.81 → 0.44 µs/step, N = 10⁶ 0.72–0.86 →
# 0.51–0.53; against 0.33 at N = 10³, where everything is in cache. Block lengths of 30–240 steps measured alike.

#: θ bytes per block of the backward sweeps (the rows the block's steps read, counted with multiplicity): a block's θ
#: and gradient rows stay in a 1 MiB L2 with room to spare (120 leapfrog steps, 30 RK4 steps at d = 16)
BLOCK_BYTES = 1 << 18


@intrinsic
def _keep(typingctx, value):
    """Use ``value`` (a float64) in an empty inline-assembly statement that the compiler must keep, so the loads that
    produced it are not removed as dead code (the "do not optimise" idiom; the value is passed as its 64-bit pattern
    in a general-purpose register, constraint "r", which x86-64 and AArch64 both accept)."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        asm = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [i64]), "", "r", side_effect=True)
        builder.call(asm, [builder.bitcast(args[0], i64)])
        return context.get_dummy_value()
    return types.void(value), codegen


@register_jitable
def _touch_row(a, r):
    """Read one entry of every 64-byte line of row r of the 2-D float64 array a (from the row's start, every 8th
    entry), and keep the loads (:func:`_keep`): the row is brought into the cache; no value changes."""
    t = 0.0
    for q in range(0, a.shape[1], 8):
        t += a[r, q]
    _keep(t)


@register_jitable
def _touch_block(theta, index, lo, hi, zeroed):
    """Read (:func:`_touch_row`) the θ rows r = index[q, i] ≥ 0 for q = lo..hi−1, i = 0, 1, … in that order (a row
    repeated next to itself is read once), and return the smallest such r, or ``zeroed`` if none is smaller: the
    first row the block's zeroing starts from."""
    last = -1
    rmin = zeroed
    for q in range(lo, hi):
        for i in range(index.shape[1]):
            r = index[q, i]
            if r >= 0:
                if r != last:
                    _touch_row(theta, r)
                    last = r
                if r < rmin:
                    rmin = r
    return rmin


def block_steps(rows_per_step: int, p: int) -> int:
    """Steps per block of a backward sweep: :data:`BLOCK_BYTES` of θ rows of p float64 entries, ``rows_per_step``
    rows per step (at least one step)."""
    return max(1, BLOCK_BYTES // (8 * max(1, p) * max(1, rows_per_step)))


# ---------------------------------------------------------------------------------------------------------------------
# generic sweeps


@register_jitable(inline="always")
def _step_coefficients(n, hs, A, b, hA, hb, hAn, hbn):
    """The pre-scaled coefficients of step n: ``hA, hb`` on the uniform grid (``hs`` empty); on a non-uniform grid
    ``hAn = hs[n]*A``, ``hbn = hs[n]*b`` formed here (the products the NumPy path forms, h_n·a_ij and h_n·b_i)."""
    if hs.shape[0] == 0:
        return hA, hb
    h = hs[n]
    s = b.shape[0]
    for i in range(s):
        hbn[i] = h * b[i]
        for j in range(s):
            hAn[i, j] = h * A[i, j]
    return hAn, hbn


@register_jitable(inline="always")
def _stage_state(i, x, hA, X, K):
    """X_i = x + sum_{j<i} hA_ij K_j (K_0..K_{i-1} given)."""
    d = x.shape[0]
    for m in range(d):
        X[i, m] = x[m]
    for j in range(i):
        a = hA[i, j]
        if a != 0.0:
            for m in range(d):
                X[i, m] += a * K[j, m]


@register_jitable
def record_lambda(m, lam_m, every, lam_marks, bad):
    """A final lambda_m of a checkpointed LMM sweep: kept if m is a checkpoint; bad[0] = the largest non-finite m."""
    for q in range(lam_m.shape[0]):
        if not np.isfinite(lam_m[q]) and bad[0] < m:
            bad[0] = m
    if m % every == 0:
        lam_marks[m // every, :] = lam_m


@register_jitable
def _row_nonfinite(a, r):
    """The number of inf / NaN entries of row r of the 2-D array a (v − v is 0 exactly when v is finite), in a loop
    that vectorises. The backward sweeps count them in every gradient row right after a step writes it: a gradient
    entry only ever changes by g ← g + (finite or not), and an inf or NaN never turns finite that way, so the final
    gradient is finite exactly when every value written was — which spares a pass over the whole gradient afterwards
    (2.2 GB at N = 10⁶, d = 16, step layout), at the cost of re-reading each row while it is in L1. (Not inlined:
    inlined into the sweeps' loops its IR trips a Numba SSA check, NumbaIRAssumptionWarning.)"""
    count = 0
    for q in range(a.shape[1]):
        v = a[r, q]
        count += 0 if v - v == 0.0 else 1
    return count


@register_jitable
def _rows_nonfinite(a, lo, hi):
    """The number of inf / NaN entries of rows lo..hi−1 of the 2-D array a (:func:`_row_nonfinite` row by row).

    The forward sweeps check θ with it as they first read each row (the θ check of the compiled adjoint, fused into
    the sweep): the sweep keeps ``checked``, the number of leading rows already counted, and on reading row r ≥
    checked counts rows checked..r and sets checked = r + 1; after the last step it counts the rows it never read.
    Every row is counted exactly once whatever order the rows are read in, and in the usual order (row indices
    non-decreasing along the sweep: every layout of refimpl.ode.samples) each row is counted right before the point
    function reads it, from L1, so θ is read from memory once for the check and the sweep together instead of
    twice."""
    count = 0
    for r in range(lo, hi):
        count += _row_nonfinite(a, r)
    return count


@register_jitable
def _zero_rows(a, lo, hi):
    """Rows lo..hi−1 of the 2-D array a set to 0.0.

    The backward sweeps take the gradient uninitialised (``np.empty``) and zero its rows as the sweep first reaches
    them: the sweep keeps ``zeroed``, the first row of the zeroed tail (initially the number of rows), and before a
    step accumulates into row r < zeroed it zeroes rows r..zeroed−1 and sets zeroed = r (at the start of each block
    of steps it does so for the block's smallest row, so a block's rows are zeroed ascending, before any of its steps
    runs: "the backward sweeps' memory order"); after the last step it
    zeroes the rows it never reached. Every row is zeroed exactly once before its first accumulation, in any order
    (every row ≥ zeroed is zeroed), so every entry starts from +0.0 exactly as with ``np.zeros`` and the results are
    the same bits; but the fresh pages of the gradient (2.2 GB at N = 10⁶, d = 16, step layout) are first touched by
    a store of the writer, in the order the sweep writes them, instead of by the read of a read-modify-write on
    zero-mapped pages, which faults twice per page (once to map the shared zero page for the read, once to copy it
    on the write)."""
    for r in range(lo, hi):
        for q in range(a.shape[1]):
            a[r, q] = 0.0


@functools.lru_cache(maxsize=None)
def sweeps(kernel: NumbaKernel) -> SimpleNamespace:
    """The compiled sweeps ``erk_forward``, ``erk_backward``, ``erk_forward_checkpointed``,
    ``erk_backward_checkpointed``, ``lmm_forward``, ``lmm_backward`` (unchecked; use the wrappers below) for the field
    point functions named by ``kernel``; built once per descriptor."""
    f, vjp = kernel.functions()
    vjp_reads_fx = bool(kernel.vjp_reads_fx)
    split = kernel.split_functions()
    tag = re.sub(r"\W", "_", f"{kernel.module}.{kernel.f}.{kernel.vjp}.{int(vjp_reads_fx)}"
                 + (f".{kernel.vjp_x}.{kernel.vjp_theta}" if split is not None else ""))

    def named(fn):
        # one qualified name per descriptor: Numba names the compiled symbols and the cache files after it, and two
        # closures of the same name compiled in different processes would otherwise clash when loaded from the cache
        fn.__qualname__ = f"{fn.__qualname__}__{tag}"
        return fn

    def helper(fn):
        # inlined at the Numba IR level: a call per step or stage costs its argument passing and the reference counts
        # of the array views it receives (Numba prunes those only within one function)
        return register_jitable(inline="always")(named(fn))

    def called_helper(fn):
        # not inlined: the F-term helpers, whose inlined IR trips a Numba SSA check (NumbaIRAssumptionWarning)
        return register_jitable(named(fn))

    def entry(fn):
        return njit_cached()(named(fn))  # njit(cache=True), in memory if no cache dir is writable

    def entry_nogil(fn):
        # the forward sweeps release the GIL, so that a second thread can map the gradient's pages meanwhile
        # (:func:`gradient_buffer`)
        return njit_cached(nogil=True)(named(fn))

    @helper
    def erk_stages(x, theta, rows, hA, X, K):
        for i in range(rows.shape[0]):
            _stage_state(i, x, hA, X, K)
            f(X[i], theta[rows[i]], K[i])

    @helper
    def erk_step(x, theta, rows, hA, hb, X, K, out):
        erk_stages(x, theta, rows, hA, X, K)
        d = x.shape[0]
        for m in range(d):
            out[m] = x[m]
        for i in range(rows.shape[0]):
            c = hb[i]
            if c != 0.0:
                for m in range(d):
                    out[m] += c * K[i, m]

    @helper
    def erk_step_adjoint(x, theta, rows, hA, hb, lam_next, lam_out, grad_theta, X, K, Xbar, kb, recompute):
        """lam_out = lam_next + sum_i Xbar_i (overwritten); grad_theta rows accumulated. With ``recompute`` the stage
        slopes K are computed again from x (all but the last when the VJP does not read f); otherwise K holds the
        slopes the forward sweep stored (the same numbers) and only the stage states X are re-formed from them (no f
        evaluation)."""
        s = rows.shape[0]
        d = x.shape[0]
        for i in range(s):
            _stage_state(i, x, hA, X, K)
            # recomputing: K_i is needed by the later stage states, and by the VJP only if it reads f(X_i) — the last
            # stage's slope feeds no stage state, so a VJP that does not read it skips that evaluation
            if recompute and (vjp_reads_fx or i < s - 1):
                f(X[i], theta[rows[i]], K[i])
        for i in range(s - 1, -1, -1):
            c = hb[i]
            for m in range(d):
                kb[m] = c * lam_next[m]
            for l in range(i + 1, s):
                a = hA[l, i]
                if a != 0.0:
                    for m in range(d):
                        kb[m] += a * Xbar[l, m]
            vjp(X[i], K[i], theta[rows[i]], kb, Xbar[i], grad_theta[rows[i]])
        for m in range(d):
            lam_out[m] = lam_next[m]
        for i in range(s):
            for m in range(d):
                lam_out[m] += Xbar[i, m]

    @entry_nogil
    def erk_forward(x0, theta, stage_index, hA, hb, hs, xs, Ks, theta_check):
        """Ks: (N, s, d) to keep every step's stage slopes, or (0, s, d) not to. ``hs``: empty (uniform grid,
        ``hA``/``hb`` pre-scaled) or the steps h_n (``hA``/``hb`` then hold A and b). ``theta_check`` (int64, (2,)):
        on entry [0] = the number of leading θ rows already known finite (0: check every row, n: none); on exit
        [1] = the number of non-finite θ entries in the other rows (:func:`_rows_nonfinite`, as the sweep reads
        them)."""
        N = stage_index.shape[0]
        s = hb.shape[0]
        d = x0.shape[0]
        keep = Ks.shape[0] == N
        X = np.empty((s, d))
        K = np.empty((s, d))
        hAn = np.empty((s, s))
        hbn = np.empty(s)
        checked = theta_check[0]
        bad_theta = 0
        xs[0, :] = x0
        for n in range(N):
            if n + PREFETCH_STEPS < N:
                for i in range(s):
                    _prefetch(theta, stage_index[n + PREFETCH_STEPS, i])
            for i in range(s):
                r = stage_index[n, i]
                if r >= checked:
                    bad_theta += _rows_nonfinite(theta, checked, r + 1)
                    checked = r + 1
            cA, cb = _step_coefficients(n, hs, hA, hb, hA, hb, hAn, hbn)
            erk_step(xs[n], theta, stage_index[n], cA, cb, X, Ks[n] if keep else K, xs[n + 1])
        if checked < theta.shape[0]:
            bad_theta += _rows_nonfinite(theta, checked, theta.shape[0])
        theta_check[1] = bad_theta

    @entry
    def erk_backward(xs, theta, stage_index, hA, hb, hs, lambdas, grad_theta, Ks, nonfinite, block):
        """lambdas[N] holds lambda_N on entry (lambdas[:N] are written, need not be initialised); Ks: the stored
        stage slopes (N, s, d), or (0, s, d) to recompute; ``hs`` as in erk_forward; grad_theta need not be
        initialised (its rows are zeroed as the sweep first reaches them, :func:`_zero_rows`); ``block`` ≥ 1: steps
        per block (:func:`block_steps`; any value gives the same bits). nonfinite[0] += the
        number of non-finite entries met in the gradient rows right after each step writes them
        (:func:`_row_nonfinite`)."""
        N = stage_index.shape[0]
        s = hb.shape[0]
        d = xs.shape[1]
        stored = Ks.shape[0] == N
        X = np.empty((s, d))
        K = np.empty((s, d))
        Xbar = np.empty((s, d))
        kb = np.empty(d)
        hAn = np.empty((s, s))
        hbn = np.empty(s)
        zeroed = grad_theta.shape[0]
        for n in range(N - 1, -1, -1):
            if (N - 1 - n) % block == 0:
                # a block of steps n, n − 1, …, lo: its θ rows read and its gradient rows zeroed, rows ascending
                lo = max(n - block + 1, 0)
                rmin = _touch_block(theta, stage_index, lo, n + 1, zeroed)
                for q in range(lo, n + 1):
                    _touch_row(xs, q)
                    _touch_row(lambdas, q + 1)
                    if stored:
                        for i in range(s):
                            _touch_row(Ks[q], i)
                if rmin < zeroed:
                    _zero_rows(grad_theta, rmin, zeroed)
                    zeroed = rmin
            for i in range(s):
                r = stage_index[n, i]
                if r < zeroed:
                    _zero_rows(grad_theta, r, zeroed)
                    zeroed = r
            cA, cb = _step_coefficients(n, hs, hA, hb, hA, hb, hAn, hbn)
            erk_step_adjoint(xs[n], theta, stage_index[n], cA, cb, lambdas[n + 1], lambdas[n], grad_theta,
                             X, Ks[n] if stored else K, Xbar, kb, not stored)
            for i in range(s):
                nonfinite[0] += _row_nonfinite(grad_theta, stage_index[n, i])
        _zero_rows(grad_theta, 0, zeroed)

    @entry
    def erk_forward_checkpointed(x0, theta, stage_index, hA, hb, hs, every, xck):
        """The forward sweep keeping only the checkpoints: xck[i] = x_{i·every} (i·every ≤ N) and xck[-1] = x_N
        (rows (N + every - 1)//every + 1)."""
        N = stage_index.shape[0]
        s = hb.shape[0]
        d = x0.shape[0]
        X = np.empty((s, d))
        K = np.empty((s, d))
        hAn = np.empty((s, s))
        hbn = np.empty(s)
        x = np.empty(d)
        x_next = np.empty(d)
        x[:] = x0
        xck[0, :] = x0
        for n in range(N):
            cA, cb = _step_coefficients(n, hs, hA, hb, hA, hb, hAn, hbn)
            erk_step(x, theta, stage_index[n], cA, cb, X, K, x_next)
            for m in range(d):
                x[m] = x_next[m]
            if (n + 1) % every == 0:
                xck[(n + 1) // every, :] = x
        xck[xck.shape[0] - 1, :] = x

    @entry
    def erk_backward_checkpointed(xck, theta, stage_index, hA, hb, hs, every, lam_ck, grad_theta, keep_segment):
        """The backward sweep from the checkpoints of erk_forward_checkpointed: segment by segment (last first),
        the states x_c..x_{e-1} (c = i·every, e = min(c + every, N)) are recomputed from xck[i] by the forward step
        (the same code and inputs: the same numbers), the segment's stage slopes kept when ``keep_segment``, then the
        step adjoints run from e − 1 down to c. lam_ck[-1] holds lambda_N on entry; on exit lam_ck[i] =
        lambda_{i·every}."""
        N = stage_index.shape[0]
        s = hb.shape[0]
        d = xck.shape[1]
        seg = np.empty((every, d))
        Kseg = np.empty((every if keep_segment else 0, s, d))
        X = np.empty((s, d))
        K = np.empty((s, d))
        Xbar = np.empty((s, d))
        kb = np.empty(d)
        hAn = np.empty((s, s))
        hbn = np.empty(s)
        lam = np.empty(d)
        lam_prev = np.empty(d)
        lam[:] = lam_ck[lam_ck.shape[0] - 1]
        n_seg = (N + every - 1) // every
        for i in range(n_seg - 1, -1, -1):
            c = i * every
            e = min(c + every, N)
            seg[0, :] = xck[i]
            for n in range(c, e):
                cA, cb = _step_coefficients(n, hs, hA, hb, hA, hb, hAn, hbn)
                if n + 1 < e:
                    erk_step(seg[n - c], theta, stage_index[n], cA, cb, X, Kseg[n - c] if keep_segment else K,
                             seg[n + 1 - c])
                elif keep_segment:
                    erk_stages(seg[n - c], theta, stage_index[n], cA, X, Kseg[n - c])
            for n in range(e - 1, c - 1, -1):
                cA, cb = _step_coefficients(n, hs, hA, hb, hA, hb, hAn, hbn)
                erk_step_adjoint(seg[n - c], theta, stage_index[n], cA, cb, lam, lam_prev, grad_theta,
                                 X, Kseg[n - c] if keep_segment else K, Xbar, kb, not keep_segment)
                for m in range(d):
                    lam[m] = lam_prev[m]
            lam_ck[i, :] = lam

    @entry_nogil
    def lmm_forward(x0, theta, s_index, hA, hb, malpha, hbeta, grid_index, xs, F, have_F, ring_mask, theta_check):
        """have_F (N,) False on entry; F_m = f(x_m, theta) is evaluated once, on first use, into row m & ring_mask of
        F, and have_F[m] set. ``ring_mask`` −1 with F (N, d): on exit F[m] = F_m where have_F[m]. ``ring_mask``
        R − 1 with F (R, d), R a power of two ≥ k: a ring of R rows, for a caller that does not keep the F_m. It is
        enough: step n reads F_n … F_{n+k−1}, k consecutive indices, so distinct rows; and F_{m+R} (m + R ≥ m + k)
        is first used at a step n ≥ m + 1, after the last step that reads F_m. ``theta_check`` as in
        erk_forward."""
        N = xs.shape[0] - 1
        k = malpha.shape[0]
        s = hb.shape[0]
        d = x0.shape[0]
        X = np.empty((s, d))
        K = np.empty((s, d))
        checked = theta_check[0]
        bad_theta = 0
        xs[0, :] = x0
        for n in range(k - 1):
            for i in range(s):
                r = s_index[n, i]
                if r >= checked:
                    bad_theta += _rows_nonfinite(theta, checked, r + 1)
                    checked = r + 1
            erk_step(xs[n], theta, s_index[n], hA, hb, X, K, xs[n + 1])
        for n in range(N - k + 1):
            if n + k + PREFETCH_STEPS < N:
                _prefetch(theta, grid_index[n + k + PREFETCH_STEPS])
            for i in range(d):
                xs[n + k, i] = 0.0
            for j in range(k):
                a = malpha[j]
                if a != 0.0:
                    for i in range(d):
                        xs[n + k, i] += a * xs[n + j, i]
            for j in range(k):
                c = hbeta[j]
                if c != 0.0:
                    m = n + j
                    if not have_F[m]:
                        r = grid_index[m]
                        if r >= checked:
                            bad_theta += _rows_nonfinite(theta, checked, r + 1)
                            checked = r + 1
                        f(xs[m], theta[r], F[m & ring_mask])
                        have_F[m] = True
                    q = m & ring_mask
                    for i in range(d):
                        xs[n + k, i] += c * F[q, i]
        if checked < theta.shape[0]:
            bad_theta += _rows_nonfinite(theta, checked, theta.shape[0])
        theta_check[1] = bad_theta

    @called_helper
    def lmm_add_F_term(m, xs, theta, grid_index, Fbar_m, lam, grad_theta, tmp, fx, F, have_F):
        """lambda_m += df/dx(x_m)^T Fbar_m and grad_theta[g(m)] += df/dtheta^T Fbar_m (``Fbar_m`` the row of F̄_m)."""
        N = grid_index.shape[0]
        r = grid_index[m] if m <= N - 1 else -1
        if r >= 0:
            stored = m < have_F.shape[0] and have_F[m]
            if vjp_reads_fx and not stored:
                f(xs[m], theta[r], fx)      # F_m = f(x_m, theta) again (the forward sweep did not keep it)
            vjp(xs[m], F[m] if stored else fx, theta[r], Fbar_m, tmp, grad_theta[r])
            for i in range(xs.shape[1]):
                lam[m, i] += tmp[i]

    @helper
    def lmm_touch_block(theta, grid_rows, xs, lam, n, m, block, zeroed):
        """At the start of a block of steps n, n − 1, …, lo (F terms m = n + k down to lo + k): read the block's θ
        rows, states and adjoints, rows ascending ("the backward sweeps' memory order"); returns the smallest θ row
        of the block, or ``zeroed`` if none is smaller."""
        N = grid_rows.shape[0]
        k = m - n
        lo = max(n - block + 1, 0)
        rmin = _touch_block(theta, grid_rows, lo + k, min(m + 1, N), zeroed)
        for q in range(lo, m + 1):
            _touch_row(xs, q)
            _touch_row(lam, q)
        return rmin

    @helper
    def lmm_push_adjoint(n, m, malpha, hbeta, lam, Fbar):
        """λ_{n+j} += −α_j λ_m and F̄_{n+j} += hβ_j λ_m for j < k (zero coefficients skipped; F̄ in its ring of
        k + 2 rows)."""
        R = Fbar.shape[0]
        d = lam.shape[1]
        for j in range(malpha.shape[0]):
            a = malpha[j]
            if a != 0.0:
                for i in range(d):
                    lam[n + j, i] += a * lam[m, i]
            c = hbeta[j]
            if c != 0.0:
                for i in range(d):
                    Fbar[(n + j) % R, i] += c * lam[m, i]

    @entry
    def lmm_backward(xs, theta, s_index, hA, hb, malpha, hbeta, grid_index, lam, grad_theta, F, have_F, nonfinite,
                     block):
        """lam[N] holds lambda_N on entry, lam[:N] zeros; grad_theta and ``block`` as in erk_backward;
        F[m] the stored f(x_m, theta) where have_F[m] (have_F may be empty: recompute every F_m). F̄ is kept for the
        k + 2 indices in use only (a ring buffer, row i % (k + 2): index n enters with value 0 at step n, and nothing after step n + 1 reads index n + k + 2), so the sweep
        allocates O(k·d), not O(N·d); every F̄_i receives the same operations as with a full array."""
        N = xs.shape[0] - 1
        k = malpha.shape[0]
        d = xs.shape[1]
        R = k + 2
        Fbar = np.zeros((R, d))
        tmp = np.empty(d)
        fx = np.zeros(d)
        zeroed = grad_theta.shape[0]
        grid_rows = grid_index.reshape((grid_index.shape[0], 1))   # one θ row per F term, for _touch_block
        for n in range(N - k, -1, -1):
            m = n + k
            if (N - k - n) % block == 0:
                # a block of steps: θ rows read, gradient rows zeroed, rows ascending
                rmin = lmm_touch_block(theta, grid_rows, xs, lam, n, m, block, zeroed)
                if rmin < zeroed:
                    _zero_rows(grad_theta, rmin, zeroed)
                    zeroed = rmin
            for i in range(d):
                Fbar[n % R, i] = 0.0
            r = grid_index[m] if m < N else -1
            if 0 <= r < zeroed:
                _zero_rows(grad_theta, r, zeroed)
                zeroed = r
            lmm_add_F_term(m, xs, theta, grid_index, Fbar[m % R], lam, grad_theta, tmp, fx, F, have_F)
            if m < N and grid_index[m] >= 0:
                nonfinite[0] += _row_nonfinite(grad_theta, grid_index[m])
            lmm_push_adjoint(n, m, malpha, hbeta, lam, Fbar)
        lmm_tail(k, xs, theta, s_index, hA, hb, grid_index, lam, grad_theta, Fbar, F, have_F, zeroed, nonfinite)

    @called_helper
    def lmm_tail(k, xs, theta, s_index, hA, hb, grid_index, lam, grad_theta, Fbar, F, have_F, zeroed, nonfinite):
        """The end of :func:`lmm_backward` after its main loop: the F terms m = k − 1 … 0 and the starter's ERK step
        adjoints, then the gradient rows never reached zeroed (rows ≥ ``zeroed`` are zeroed already)."""
        N = xs.shape[0] - 1
        s = hb.shape[0]
        d = xs.shape[1]
        R = k + 2
        tmp = np.empty(d)
        fx = np.zeros(d)
        X = np.empty((s, d))
        K = np.empty((s, d))
        Xbar = np.empty((s, d))
        kb = np.empty(d)
        contrib = np.empty(d)
        for m in range(k - 1, -1, -1):
            r = grid_index[m] if m < N else -1
            if 0 <= r < zeroed:
                _zero_rows(grad_theta, r, zeroed)
                zeroed = r
            lmm_add_F_term(m, xs, theta, grid_index, Fbar[m % R], lam, grad_theta, tmp, fx, F, have_F)
            if m < N and grid_index[m] >= 0:
                nonfinite[0] += _row_nonfinite(grad_theta, grid_index[m])
            if m >= 1:
                for i in range(s):
                    r = s_index[m - 1, i]
                    if r < zeroed:
                        _zero_rows(grad_theta, r, zeroed)
                        zeroed = r
                erk_step_adjoint(xs[m - 1], theta, s_index[m - 1], hA, hb, lam[m], contrib, grad_theta,
                                 X, K, Xbar, kb, True)
                for i in range(s):
                    nonfinite[0] += _row_nonfinite(grad_theta, s_index[m - 1, i])
                for i in range(d):
                    lam[m - 1, i] += contrib[i]
        _zero_rows(grad_theta, 0, zeroed)

    @entry
    def lmm_backward_tail(k, xs, theta, s_index, hA, hb, grid_index, lam, grad_theta, Fbar, F, have_F, zeroed,
                          nonfinite):
        """:func:`lmm_tail` as an entry point, for the two-thread sweep (``zeroed`` a 1-element array)."""
        lmm_tail(k, xs, theta, s_index, hA, hb, grid_index, lam, grad_theta, Fbar, F, have_F, zeroed[0], nonfinite)

    if split is not None:
        vjp_x, vjp_theta = split

        @entry_nogil
        def lmm_backward_lambdas(xs, theta, malpha, hbeta, grid_index, lam, Fbar, U, F, have_F, m_hi, m_lo, block):
            """The main loop of :func:`lmm_backward` for the F terms m = m_hi, m_hi − 1, …, m_lo (steps n = m − k)
            without the gradient: ``vjp_x`` only, and U[m_hi − m] = the vector it leaves, for
            :func:`lmm_backward_gradient`. ``Fbar`` (the ring of F̄) carries over from the previous call."""
            N = xs.shape[0] - 1
            k = malpha.shape[0]
            d = xs.shape[1]
            R = k + 2
            tmp = np.empty(d)
            fx = np.zeros(d)
            grid_rows = grid_index.reshape((grid_index.shape[0], 1))
            for m in range(m_hi, m_lo - 1, -1):
                n = m - k
                if (N - k - n) % block == 0:
                    lmm_touch_block(theta, grid_rows, xs, lam, n, m, block, 0)
                for i in range(d):
                    Fbar[n % R, i] = 0.0
                r = grid_index[m] if m < N else -1
                if r >= 0:
                    stored = m < have_F.shape[0] and have_F[m]
                    if vjp_reads_fx and not stored:
                        f(xs[m], theta[r], fx)
                    vjp_x(xs[m], F[m] if stored else fx, theta[r], Fbar[m % R], tmp)
                    for i in range(d):
                        lam[m, i] += tmp[i]
                        U[m_hi - m, i] = Fbar[m % R, i]
                lmm_push_adjoint(n, m, malpha, hbeta, lam, Fbar)

        @entry_nogil
        def lmm_backward_gradient(xs, U, grid_index, grad_theta, k, m_hi, m_lo, zeroed, nonfinite, block):
            """The gradient of the same F terms: grad_theta[g(m)] += ``vjp_theta``(U[m_hi − m], x_m), m descending, its
            rows zeroed before their first use as in :func:`lmm_backward` (a block's rows ascending at its start;
            ``zeroed`` a 1-element array that carries over), each row's inf / NaN counted into ``nonfinite``."""
            N = xs.shape[0] - 1
            z = zeroed[0]
            for m in range(m_hi, m_lo - 1, -1):
                n = m - k
                if (N - k - n) % block == 0:
                    lo = max(n - block + 1, 0)
                    rmin = z
                    for q in range(lo + k, min(m + 1, N)):
                        rq = grid_index[q]
                        if 0 <= rq < rmin:
                            rmin = rq
                    for q in range(lo + k, m + 1):
                        _touch_row(xs, q)
                    if rmin < z:
                        _zero_rows(grad_theta, rmin, z)
                        z = rmin
                r = grid_index[m] if m < N else -1
                if r >= 0:
                    if r < z:
                        _zero_rows(grad_theta, r, z)
                        z = r
                    vjp_theta(U[m_hi - m], xs[m], grad_theta[r])
                    nonfinite[0] += _row_nonfinite(grad_theta, r)
            zeroed[0] = z
    else:
        lmm_backward_lambdas = lmm_backward_gradient = None

    @helper
    def lmm_segment(window, c, e, theta, grid_index, malpha, hbeta, seg, Fseg, haveF):
        """seg[0:k] = x_c..x_{c+k-1} (the window), then seg[r+k] = x_{c+r+k} for the multistep steps n = c..e-1,
        with the operations of lmm_forward (F evaluated once per index, on first use)."""
        k = malpha.shape[0]
        d = window.shape[1]
        for i in range(k):
            for q in range(d):
                seg[i, q] = window[i, q]
        for i in range(haveF.shape[0]):
            haveF[i] = False
        for n in range(c, e):
            r = n - c
            for q in range(d):
                seg[r + k, q] = 0.0
            for j in range(k):
                a = malpha[j]
                if a != 0.0:
                    for q in range(d):
                        seg[r + k, q] += a * seg[r + j, q]
            for j in range(k):
                cc = hbeta[j]
                if cc != 0.0:
                    mm = r + j
                    if not haveF[mm]:
                        f(seg[mm], theta[grid_index[n + j]], Fseg[mm])
                        haveF[mm] = True
                    for q in range(d):
                        seg[r + k, q] += cc * Fseg[mm, q]

    @entry
    def lmm_forward_checkpointed(x0, theta, s_index, hA, hb, malpha, hbeta, grid_index, every, windows, xmarks, bad):
        """Checkpointed LMM forward sweep: windows[i] = x_{i·every}..x_{i·every+k-1} for the segment starts
        i·every ≤ N − k; xmarks[i] = x_{i·every} (< N) and xmarks[-1] = x_N; bad[0] = the first n with a non-finite
        x_n (or -1)."""
        N = grid_index.shape[0]
        k = malpha.shape[0]
        s = hb.shape[0]
        d = x0.shape[0]
        X = np.empty((s, d))
        K = np.empty((s, d))
        seg = np.empty((every + k, d))
        Fseg = np.empty((every + k, d))
        haveF = np.zeros(every + k, dtype=np.bool_)
        bad[0] = -1
        windows[0, 0, :] = x0
        for n in range(k - 1):
            erk_step(windows[0, n], theta, s_index[n], hA, hb, X, K, windows[0, n + 1])
        n_marks = xmarks.shape[0]
        i = 0
        for c in range(0, N - k + 1, every):
            e = min(c + every, N - k + 1)
            lmm_segment(windows[i], c, e, theta, grid_index, malpha, hbeta, seg, Fseg, haveF)
            for r in range(e - c + k):
                m = c + r
                finite = True
                for q in range(d):
                    if not np.isfinite(seg[r, q]):
                        finite = False
                if not finite and (bad[0] < 0 or m < bad[0]):
                    bad[0] = m
                if m == N:
                    xmarks[n_marks - 1, :] = seg[r]
                elif m % every == 0:
                    xmarks[m // every, :] = seg[r]
            if e <= N - k:
                for j in range(k):
                    windows[i + 1, j, :] = seg[e - c + j]
            i += 1

    @called_helper
    def lmm_F_term_row(m, x_m, theta, grid_index, Fbar_m, lam_m, grad_theta, tmp, fx):
        """lmm_add_F_term for one index on rows (F recomputed when the VJP reads it, as with no stored slopes)."""
        N = grid_index.shape[0]
        r = grid_index[m] if m <= N - 1 else -1
        if r >= 0:
            if vjp_reads_fx:
                f(x_m, theta[r], fx)
            vjp(x_m, fx, theta[r], Fbar_m, tmp, grad_theta[r])
            for i in range(x_m.shape[0]):
                lam_m[i] += tmp[i]

    @entry
    def lmm_backward_checkpointed(windows, theta, s_index, hA, hb, malpha, hbeta, grid_index, every, lam_N,
                                  lam_marks, grad_theta, bad):
        """Checkpointed LMM backward sweep: the recursion of lmm_backward with lambda and Fbar kept for the k + 2
        indices in use (ring buffers), each segment's states recomputed from its window. lam_marks[i] =
        lambda_{i·every} (< N), lam_marks[-1] = lambda_N; bad[0] = the largest m whose lambda_m is non-finite (or
        -1)."""
        N = grid_index.shape[0]
        k = malpha.shape[0]
        s = hb.shape[0]
        d = lam_N.shape[0]
        R = k + 2
        lam = np.zeros((R, d))
        Fbar = np.zeros((R, d))
        seg = np.empty((every + k, d))
        Fseg = np.empty((every + k, d))
        haveF = np.zeros(every + k, dtype=np.bool_)
        tmp = np.empty(d)
        fx = np.zeros(d)
        X = np.empty((s, d))
        K = np.empty((s, d))
        Xbar = np.empty((s, d))
        kb = np.empty(d)
        contrib = np.empty(d)
        bad[0] = -1
        lam[N % R, :] = lam_N
        n_marks = lam_marks.shape[0]
        lam_marks[n_marks - 1, :] = lam_N
        last = (N - k) - (N - k) % every
        for c in range(last, -1, -every):
            e = min(c + every, N - k + 1)
            lmm_segment(windows[c // every], c, e, theta, grid_index, malpha, hbeta, seg, Fseg, haveF)
            for n in range(e - 1, c - 1, -1):
                m = n + k
                for q in range(d):
                    lam[n % R, q] = 0.0
                    Fbar[n % R, q] = 0.0
                if m <= N - 1:
                    lmm_F_term_row(m, seg[m - c], theta, grid_index, Fbar[m % R], lam[m % R], grad_theta, tmp, fx)
                    record_lambda(m, lam[m % R], every, lam_marks, bad)
                for j in range(k):
                    a = malpha[j]
                    if a != 0.0:
                        for q in range(d):
                            lam[(n + j) % R, q] += a * lam[m % R, q]
                    cc = hbeta[j]
                    if cc != 0.0:
                        for q in range(d):
                            Fbar[(n + j) % R, q] += cc * lam[m % R, q]
        for m in range(k - 1, -1, -1):
            lmm_F_term_row(m, windows[0, m], theta, grid_index, Fbar[m % R], lam[m % R], grad_theta, tmp, fx)
            record_lambda(m, lam[m % R], every, lam_marks, bad)
            if m >= 1:
                erk_step_adjoint(windows[0, m - 1], theta, s_index[m - 1], hA, hb, lam[m % R], contrib, grad_theta,
                                 X, K, Xbar, kb, True)
                for q in range(d):
                    lam[(m - 1) % R, q] += contrib[q]

    return SimpleNamespace(erk_forward=erk_forward, erk_backward=erk_backward, lmm_forward=lmm_forward,
                           lmm_backward=lmm_backward, erk_forward_checkpointed=erk_forward_checkpointed,
                           erk_backward_checkpointed=erk_backward_checkpointed,
                           lmm_forward_checkpointed=lmm_forward_checkpointed,
                           lmm_backward_checkpointed=lmm_backward_checkpointed, lmm_backward_tail=lmm_backward_tail,
                           lmm_backward_lambdas=lmm_backward_lambdas, lmm_backward_gradient=lmm_backward_gradient)


# ---------------------------------------------------------------------------------------------------------------------
# a large gradient's pages mapped on a second core while the forward sweep runs
#
# The first write into each page of a freshly allocated array makes the operating system map a page and clear it
# (2.2 GB of gradient at N = 10⁶, d = 16, step layout); in the backward sweep that work lies on the critical path. For
# a large gradient :func:`gradient_buffer` instead allocates the array and starts a thread that writes one entry per
# 4 KiB (:func:`_map_pages`), which maps every page, while the forward sweep (compiled with the GIL released) runs on
# the calling thread; the caller joins it before the backward sweep. The backward sweep zeroes every gradient row
# before its first accumulation either way (:func:`_zero_rows`), so the results are the same bits. Only the mapping is
# moved: writing all the zeros ahead on the other thread made the backward sweep slower, since it then reads the
# gradient rows back from memory instead of finding them in the cache where its own zeroing leaves them
# (benchmarks/RESULTS.md). Small gradients, and single-CPU processes, skip the thread: starting one costs more than it
# saves.

#: gradients of at least this many bytes have their pages mapped on a second thread (:func:`gradient_buffer`)
BACKGROUND_MAP_BYTES = 1 << 26

#: the stride of :func:`_map_pages`, in float64 entries (4 KiB, the smallest page size of the usual platforms)
_PAGE_ENTRIES = 512


@njit_cached(nogil=True)
def _map_pages(a):
    """Write +0.0 into one entry per 4 KiB of the C-contiguous 2-D float64 array a, ascending (the GIL released): every
    page of a is mapped; the other entries keep whatever they held."""
    flat = a.reshape(a.size)
    for q in range(0, flat.shape[0], _PAGE_ENTRIES):
        flat[q] = 0.0


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Mapping:
    """A thread running :func:`_map_pages` on one array; :meth:`join` waits for it and re-raises its error."""

    def __init__(self, a):
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(a,), name="refimpl-map-gradient", daemon=True)
        self.thread.start()

    def _run(self, a):
        try:
            _map_pages(a)
        except BaseException as e:   # re-raised in the caller's thread by join()
            self.error = e

    def join(self):
        self.thread.join()
        if self.error is not None:
            raise self.error


def gradient_buffer(shape, min_bytes=None):
    """(out, mapping) for the gradient of θ of ``shape``: at or above ``min_bytes`` (default
    :data:`BACKGROUND_MAP_BYTES`) with at least two usable CPUs, a new uninitialised float64 array whose pages a second
    thread is mapping, and the :class:`_Mapping` handle whose ``join()`` must return before the array is used (pass the
    array as ``out`` of the backward sweep); otherwise (None, None)."""
    min_bytes = BACKGROUND_MAP_BYTES if min_bytes is None else min_bytes
    if 8 * int(np.prod(shape)) < min_bytes or _usable_cpus() < 2:
        return None, None
    a = np.empty(shape)
    return a, _Mapping(a)


# ---------------------------------------------------------------------------------------------------------------------
# checked wrappers


def _check_common(kernel, x0_or_xs, theta, hA, hb, d):
    if not isinstance(kernel, NumbaKernel):
        raise TypeError(f"kernel must be a field's NumbaKernel descriptor (e.g. TanhField.kernel), got "
                        f"{type(kernel).__name__}")
    theta = _f64(theta, "theta", 2)
    p = kernel.n_params(d)
    if theta.shape[1] != p:
        raise ValueError(f"theta must have n_params = {p} columns for d = {d}, got {theta.shape[1]}")
    hA, hb = _f64(hA, "hA", 2), _f64(hb, "hb", 1)
    s = hb.shape[0]
    if hA.shape != (s, s) or np.any(np.triu(hA) != 0):
        raise ValueError(f"hA must be a strictly lower-triangular ({s}, {s}) array")
    return theta, hA, hb


def _stored(a, name, shape):
    a = _f64(a, name, len(shape))
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return a


def _steps(steps, N):
    """The per-step sizes h_n of a non-uniform grid (positive, finite, (N,)), or an empty array for the uniform grid."""
    if steps is None:
        return np.empty(0)
    steps = _f64(steps, "steps", 1)
    if steps.shape != (N,) or np.any(steps <= 0):
        raise ValueError(f"steps must be N = {N} positive step sizes h_n, got shape {steps.shape}")
    return steps


def _erk_arguments(kernel, x0, theta, stage_index, hA, hb, steps):
    x0 = _f64(x0, "x0", 1)
    theta, hA, hb = _check_common(kernel, x0, theta, hA, hb, x0.shape[0])
    stage_index = _index(stage_index, "stage_index", 2, theta.shape[0])
    if stage_index.shape[1] != hb.shape[0]:
        raise ValueError("stage_index must have one column per stage")
    return x0, theta, hA, hb, stage_index, _steps(steps, stage_index.shape[0])


def erk_forward(kernel, x0, theta, stage_index, hA, hb, keep_stages: bool = False, steps=None):
    """States (N+1, d) of the ERK recursion for the field of ``kernel`` (its NumbaKernel) with pre-scaled ``hA = h*A``,
    ``hb = h*b``; or, with ``steps`` = the step sizes h_n (N,) of a non-uniform grid, ``hA`` = A and ``hb`` = b and step
    n uses h_n·A, h_n·b. With ``keep_stages``, returns ``(xs, K)`` with the stage slopes ``K[n, i] = f(X_i, theta)``
    of every step, shape (N, s, d), for :func:`erk_backward` (which then re-forms the stage states from them instead
    of evaluating f again)."""
    x0, theta, hA, hb, stage_index, hs = _erk_arguments(kernel, x0, theta, stage_index, hA, hb, steps)
    xs, Ks = _erk_forward_prepared(kernel, x0, theta, stage_index, hA, hb, hs, keep_stages)
    return (xs, Ks) if keep_stages else xs


def _theta_vouched(theta) -> np.ndarray:
    """The ``theta_check`` argument of the forward sweeps for a θ already checked finite: every row vouched for."""
    return np.array([theta.shape[0], 0], dtype=np.int64)


def _erk_forward_prepared(kernel, x0, theta, stage_index, hA, hb, hs, keep_stages, theta_check=None):
    """:func:`erk_forward` on arguments already in the form its checks return (``hs`` from :func:`_steps`), except
    θ's finiteness when ``theta_check`` is an int64 array [0, 0]: the sweep then counts θ's non-finite entries into
    theta_check[1] (every row, each as the sweep first reads it; :func:`_rows_nonfinite`), and the caller raises.
    Returns (xs, Ks) with Ks of shape (0, s, d) unless ``keep_stages``."""
    N, s, d = stage_index.shape[0], hb.shape[0], x0.shape[0]
    xs = np.empty((N + 1, d))
    Ks = np.empty((N if keep_stages else 0, s, d))
    theta_check = _theta_vouched(theta) if theta_check is None else theta_check
    sweeps(kernel).erk_forward(x0, theta, stage_index, hA, hb, hs, xs, Ks, theta_check)
    return xs, Ks


def erk_backward(kernel, xs, theta, stage_index, hA, hb, lam_N, stages=None, steps=None):
    """(grad_theta, lambdas) of the ERK discrete adjoint, given the states ``xs`` and ``lam_N`` = ∇Φ(x_N).
    ``stages``: the ``K`` that ``erk_forward(..., keep_stages=True)`` returned for the same arguments (the caller
    vouches for that; the result is then bit-identical to recomputing them), or None to recompute. ``steps`` as in
    :func:`erk_forward`."""
    xs = _f64(xs, "xs", 2)
    d = xs.shape[1]
    theta, hA, hb = _check_common(kernel, xs, theta, hA, hb, d)
    stage_index = _index(stage_index, "stage_index", 2, theta.shape[0])
    N, s = xs.shape[0] - 1, hb.shape[0]
    if stage_index.shape != (N, s):
        raise ValueError(f"stage_index must have shape (N, s) = {(N, s)}")
    lam_N = _f64(lam_N, "lam_N", 1)
    if lam_N.shape != (d,):
        raise ValueError(f"lam_N must have shape ({d},)")
    hs = _steps(steps, N)
    Ks = np.empty((0, s, d)) if stages is None else _stored(stages, "stages", (N, s, d))
    return _erk_backward_prepared(kernel, xs, theta, stage_index, hA, hb, hs, lam_N, Ks)


def _erk_backward_prepared(kernel, xs, theta, stage_index, hA, hb, hs, lam_N, Ks, nonfinite=None, block=None,
                           out=None):
    """:func:`erk_backward` on arguments already in the form its checks return (``Ks`` the stored slopes or an empty
    (0, s, d) array): (grad_theta, lambdas). ``nonfinite``: an int64 array (1,), or None; the sweep adds to it the
    count of non-finite values it wrote into the gradient, 0 exactly when grad_theta is finite (:func:`_row_nonfinite`).
    The gradient and λ_0..λ_{N−1} are allocated uninitialised: the sweep writes every entry (λ_n by the step adjoint,
    the gradient rows zeroed as it first reaches them, :func:`_zero_rows`). ``block``: steps per block of the sweep,
    default :func:`block_steps` (every value gives the same bits; the tests vary it). ``out``: the array to write
    the gradient into (float64, θ's shape, C-contiguous; its contents are ignored: the sweep zeroes each row before
    its first accumulation), e.g. from :func:`gradient_buffer`, or None for a new one."""
    lambdas = np.empty(xs.shape)
    lambdas[-1] = lam_N
    grad_theta = _gradient_out(theta, out)
    nonfinite = np.zeros(1, dtype=np.int64) if nonfinite is None else nonfinite
    block = block_steps(hb.shape[0], theta.shape[1]) if block is None else _block_argument(block)
    sweeps(kernel).erk_backward(xs, theta, stage_index, hA, hb, hs, lambdas, grad_theta, Ks, nonfinite, block)
    return grad_theta, lambdas


def _gradient_out(theta, out):
    """The array a backward sweep writes the gradient into: ``out`` (checked) or a new uninitialised one."""
    if out is None:
        return np.empty(theta.shape)
    if not isinstance(out, np.ndarray) or out.shape != theta.shape or out.dtype != np.float64 \
            or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writeable C-contiguous float64 array of shape {theta.shape}")
    return out


def _block_argument(block) -> int:
    if isinstance(block, (bool, np.bool_)) or not isinstance(block, (int, np.integer)):
        raise TypeError(f"block must be an int, got {type(block).__name__}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    return int(block)


def checkpoint_steps(N: int, every: int) -> np.ndarray:
    """The steps n whose states a checkpointed sweep keeps: 0, every, 2·every, … (< N) and N."""
    return np.append(np.arange(0, N, every, dtype=np.int64), N)


def _check_every(every, N):
    if isinstance(every, (bool, np.bool_)) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")
    return int(min(every, N))


def erk_forward_checkpointed(kernel, x0, theta, stage_index, hA, hb, every: int, steps=None):
    """The ERK forward sweep keeping only the states at :func:`checkpoint_steps` (``every``-th, and x_N): array
    (len(checkpoint_steps), d). Arguments otherwise as :func:`erk_forward`. Memory O((N/every)·d)."""
    x0, theta, hA, hb, stage_index, hs = _erk_arguments(kernel, x0, theta, stage_index, hA, hb, steps)
    N = stage_index.shape[0]
    every = _check_every(every, N)
    xck = np.empty((len(checkpoint_steps(N, every)), x0.shape[0]))
    sweeps(kernel).erk_forward_checkpointed(x0, theta, stage_index, hA, hb, hs, every, xck)
    return xck


def erk_backward_checkpointed(kernel, xck, theta, stage_index, hA, hb, lam_N, every: int, steps=None,
                              keep_segment: bool = True):
    """(grad_theta, lambdas at :func:`checkpoint_steps`) of the ERK discrete adjoint from the checkpoints ``xck`` that
    :func:`erk_forward_checkpointed` returned for the same arguments: each segment's states are recomputed from its
    checkpoint (and, with ``keep_segment``, its stage slopes kept for the segment), so the result is bit-identical to
    :func:`erk_backward` on the full trajectory. Memory O((N/every)·d + every·d) (times s with ``keep_segment``)."""
    xck = _f64(xck, "xck", 2)
    d = xck.shape[1]
    theta, hA, hb = _check_common(kernel, xck, theta, hA, hb, d)
    stage_index = _index(stage_index, "stage_index", 2, theta.shape[0])
    N, s = stage_index.shape[0], hb.shape[0]
    if stage_index.shape != (N, s):
        raise ValueError(f"stage_index must have shape (N, s) = {(N, s)}")
    every = _check_every(every, N)
    if xck.shape[0] != len(checkpoint_steps(N, every)):
        raise ValueError(f"xck must have one row per checkpoint ({len(checkpoint_steps(N, every))}), got "
                         f"{xck.shape[0]}")
    lam_N = _f64(lam_N, "lam_N", 1)
    if lam_N.shape != (d,):
        raise ValueError(f"lam_N must have shape ({d},)")
    hs = _steps(steps, N)
    lam_ck = np.zeros_like(xck)
    lam_ck[-1] = lam_N
    grad_theta = np.zeros(theta.shape)
    sweeps(kernel).erk_backward_checkpointed(xck, theta, stage_index, hA, hb, hs, every, lam_ck, grad_theta,
                                             bool(keep_segment))
    return grad_theta, lam_ck


def lmm_forward_checkpointed(kernel, x0, theta, s_index, hA, hb, malpha, hbeta, grid_index, every: int):
    """The LMM forward sweep keeping only checkpoints (arguments as :func:`lmm_forward`): returns ``(windows, xmarks,
    bad)`` — ``windows[i]`` the k states from step i·every (every segment start ≤ N − k), ``xmarks`` the states at
    :func:`checkpoint_steps`, ``bad`` the first n with a non-finite x_n, or −1 (then the rest is not meaningful).
    Memory O((N/every)·k·d + (every + k)·d)."""
    x0 = _f64(x0, "x0", 1)
    theta, hA, hb = _check_common(kernel, x0, theta, hA, hb, x0.shape[0])
    N = np.shape(grid_index)[0] if np.ndim(grid_index) == 1 else -1
    s_index, malpha, hbeta, grid_index = _check_lmm(theta, s_index, hb, malpha, hbeta, grid_index, N)
    every = _check_every(every, N)
    k, d = malpha.shape[0], x0.shape[0]
    windows = np.empty((len(range(0, N - k + 1, every)), k, d))
    xmarks = np.empty((len(checkpoint_steps(N, every)), d))
    bad = np.full(1, -1, dtype=np.int64)
    sweeps(kernel).lmm_forward_checkpointed(x0, theta, s_index, hA, hb, malpha, hbeta, grid_index, every, windows,
                                            xmarks, bad)
    return windows, xmarks, int(bad[0])


def lmm_backward_checkpointed(kernel, windows, theta, s_index, hA, hb, malpha, hbeta, grid_index, lam_N,
                              every: int):
    """The LMM backward sweep from the ``windows`` of :func:`lmm_forward_checkpointed` (same arguments; the caller
    vouches for that): returns ``(grad_theta, λ at checkpoint_steps, bad)``, bit-identical to :func:`lmm_backward`
    on the full trajectory; ``bad`` the largest m with a non-finite λ_m, or −1."""
    windows = _f64(windows, "windows", 3)
    d = windows.shape[2]
    theta, hA, hb = _check_common(kernel, windows, theta, hA, hb, d)
    N = np.shape(grid_index)[0] if np.ndim(grid_index) == 1 else -1
    s_index, malpha, hbeta, grid_index = _check_lmm(theta, s_index, hb, malpha, hbeta, grid_index, N)
    every = _check_every(every, N)
    k = malpha.shape[0]
    if windows.shape[:2] != (len(range(0, N - k + 1, every)), k):
        raise ValueError("windows must be the windows lmm_forward_checkpointed returned for these arguments")
    lam_N = _f64(lam_N, "lam_N", 1)
    if lam_N.shape != (d,):
        raise ValueError(f"lam_N must have shape ({d},)")
    lam_marks = np.zeros((len(checkpoint_steps(N, every)), d))
    grad_theta = np.zeros(theta.shape)
    bad = np.full(1, -1, dtype=np.int64)
    sweeps(kernel).lmm_backward_checkpointed(windows, theta, s_index, hA, hb, malpha, hbeta, grid_index, every,
                                             lam_N, lam_marks, grad_theta, bad)
    return grad_theta, lam_marks, int(bad[0])


def _check_lmm(theta, s_index, hb, malpha, hbeta, grid_index, N):
    malpha, hbeta = _f64(malpha, "malpha", 1), _f64(hbeta, "hbeta", 1)
    k = malpha.shape[0]
    if hbeta.shape != (k,):
        raise ValueError(f"hbeta must have shape ({k},)")
    if N < k:
        raise ValueError(f"N = {N} must be >= the number of steps k = {k}")
    s_index = _index(s_index, "s_index", 2, theta.shape[0])
    if s_index.shape != (k - 1, hb.shape[0]):
        raise ValueError(f"s_index must have shape (k-1, s) = {(k - 1, hb.shape[0])}")
    grid_index = _index(grid_index, "grid_index", 1, theta.shape[0], allow_unused=True)
    if grid_index.shape != (N,):
        raise ValueError(f"grid_index must have shape ({N},)")
    # F_m is used iff m = n + j for some step n in 0..N-k and some j with beta_j != 0
    used = np.zeros(N, dtype=bool)
    for j in np.flatnonzero(hbeta != 0):
        used[j:j + N - k + 1] = True
    bad = np.flatnonzero(used & (grid_index < 0))
    if bad.size:
        m = int(bad[0])
        j = next(int(j) for j in np.flatnonzero(hbeta != 0) if 0 <= m - j <= N - k)
        raise ValueError(f"grid_index[{m}] = -1 but F at that grid time is used (beta_{j} != 0)")
    return s_index, malpha, hbeta, grid_index


def lmm_forward(kernel, x0, theta, s_index, hA, hb, malpha, hbeta, grid_index, keep_slopes: bool = False):
    """States (N+1, d) of the LMM recursion (``malpha`` = −α_0..−α_{k−1}, ``hbeta`` = hβ_0..hβ_{k−1}) with the
    starter ERK (``hA``, ``hb``, ``s_index``). With ``keep_slopes``, returns ``(xs, (F, have_F))``: the values
    ``F[m] = f(x_m, theta)`` the recursion used (where ``have_F[m]``), for :func:`lmm_backward`. Without it the
    values live in a ring of a few rows (O(k·d) memory, the same states)."""
    x0 = _f64(x0, "x0", 1)
    theta, hA, hb = _check_common(kernel, x0, theta, hA, hb, x0.shape[0])
    N = np.shape(grid_index)[0] if np.ndim(grid_index) == 1 else -1
    s_index, malpha, hbeta, grid_index = _check_lmm(theta, s_index, hb, malpha, hbeta, grid_index, N)
    xs, slopes = _lmm_forward_prepared(kernel, x0, theta, s_index, hA, hb, malpha, hbeta, grid_index,
                                       keep_slopes=keep_slopes)
    return (xs, slopes) if keep_slopes else xs


def _lmm_forward_prepared(kernel, x0, theta, s_index, hA, hb, malpha, hbeta, grid_index, theta_check=None,
                          keep_slopes=True):
    """:func:`lmm_forward` on arguments already in the form its checks return, except θ's finiteness when
    ``theta_check`` is given (as in :func:`_erk_forward_prepared`): (xs, (F, have_F)) with ``keep_slopes``, else
    (xs, None), the F_m held in a ring of R = 2^⌈log₂ k⌉ rows (the compiled ``lmm_forward``'s ``ring_mask``)."""
    N, d = grid_index.shape[0], x0.shape[0]
    xs = np.empty((N + 1, d))
    have_F = np.zeros(N, dtype=np.bool_)
    if keep_slopes:
        F, ring_mask = np.zeros((N, d)), -1
    else:
        R = 1 << max(malpha.shape[0] - 1, 0).bit_length()     # the least power of two ≥ k
        F, ring_mask = np.zeros((R, d)), R - 1
    theta_check = _theta_vouched(theta) if theta_check is None else theta_check
    sweeps(kernel).lmm_forward(x0, theta, s_index, hA, hb, malpha, hbeta, grid_index, xs, F, have_F, ring_mask,
                               theta_check)
    return xs, ((F, have_F) if keep_slopes else None)


def lmm_backward(kernel, xs, theta, s_index, hA, hb, malpha, hbeta, grid_index, lam_N, slopes=None):
    """(grad_theta, lambdas) of the LMM discrete adjoint (starter steps included). ``slopes``: the ``(F, have_F)``
    that ``lmm_forward(..., keep_slopes=True)`` returned for the same arguments (the caller vouches for that; the
    result is then bit-identical to recomputing them), or None to recompute."""
    xs = _f64(xs, "xs", 2)
    d = xs.shape[1]
    theta, hA, hb = _check_common(kernel, xs, theta, hA, hb, d)
    N = xs.shape[0] - 1
    s_index, malpha, hbeta, grid_index = _check_lmm(theta, s_index, hb, malpha, hbeta, grid_index, N)
    lam_N = _f64(lam_N, "lam_N", 1)
    if lam_N.shape != (d,):
        raise ValueError(f"lam_N must have shape ({d},)")
    if slopes is None:
        F, have_F = np.zeros((0, d)), np.zeros(0, dtype=np.bool_)
    else:
        if not isinstance(slopes, tuple) or len(slopes) != 2:
            raise TypeError("slopes must be the (F, have_F) pair returned by lmm_forward(..., keep_slopes=True)")
        F, have_F = _stored(slopes[0], "slopes[0] (F)", (N, d)), slopes[1]
        if not isinstance(have_F, np.ndarray) or have_F.dtype != np.bool_ or have_F.shape != (N,):
            raise TypeError(f"slopes[1] (have_F) must be a bool ndarray of shape ({N},)")
        have_F = np.ascontiguousarray(have_F)
    return _lmm_backward_prepared(kernel, xs, theta, s_index, hA, hb, malpha, hbeta, grid_index, lam_N, F, have_F)


def _lmm_backward_prepared(kernel, xs, theta, s_index, hA, hb, malpha, hbeta, grid_index, lam_N, F, have_F,
                           nonfinite=None, block=None, out=None):
    """:func:`lmm_backward` on arguments already in the form its checks return (``F``, ``have_F`` the stored values
    or empty arrays): (grad_theta, lambdas); ``nonfinite``, ``block`` and ``out`` as in
    :func:`_erk_backward_prepared`. The
    gradient is allocated uninitialised (the sweep zeroes its rows, :func:`_zero_rows`); λ is accumulated into, so
    it starts from zeros (np.zeros: fresh zero pages, no separate pass writing zeros)."""
    lam = np.zeros(xs.shape)
    lam[-1] = lam_N
    grad_theta = _gradient_out(theta, out)
    nonfinite = np.zeros(1, dtype=np.int64) if nonfinite is None else nonfinite
    block = block_steps(1, theta.shape[1]) if block is None else _block_argument(block)
    sw = sweeps(kernel)
    if two_threads_apply(kernel, grad_theta.nbytes):
        lmm_backward_two_threads(sw, xs, theta, s_index, hA, hb, malpha, hbeta, grid_index, lam, grad_theta, F,
                                 have_F, nonfinite, block)
    else:
        sw.lmm_backward(xs, theta, s_index, hA, hb, malpha, hbeta, grid_index, lam, grad_theta, F, have_F, nonfinite,
                        block)
    return grad_theta, lam


# ---------------------------------------------------------------------------------------------------------------------
# the LMM backward sweep on two threads
#
# Per F term the LMM backward sweep does two things that need each other only one way: the state part of the VJP
# (u and Wᵀu, which λ and F̄ need at once, reading θ's row) and the gradient row (vec(u xᵀ), u), which nothing else
# in the sweep reads. With a descriptor that splits its VJP (NumbaKernel ``vjp_x``, ``vjp_theta``) and a large
# gradient, the calling thread runs the first part through time in chunks of steps (:func:`two_thread_chunk`),
# leaving each chunk's u in one of TWO_THREAD_SLOTS buffers, and a second thread writes the gradient rows of each
# finished chunk, m descending, while the first goes on with the next. Each gradient row receives the same operations
# in the same order as in the one-thread sweep, and λ, F̄ the same as well, so the results are the same bits (tested
# for many chunk and slot counts); the starter's steps (m < k) then run as before (:func:`lmm_tail`). At N = 10⁶,
# d = 16, step layout, the one-thread backward sweep streams θ in and the gradient out on one core; split, each core
# streams one of them.

#: gradients of at least this many bytes take the two-thread LMM backward sweep (with two usable CPUs): from there θ
#: and its gradient together exceed a 32 MiB last-level cache and the one-thread sweep streams them from memory.
#: Measured (leapfrog, d = 16, step layout, public call, µs/step, one thread → two): N = 3·10³ (6.5 MB) 0.58 →
#: 0.64–0.71, N = 10⁴ 0.67 → 0.59, 10⁵ 0.73 → 0.58–0.63, 10⁶ 0.71 → 0.57–0.63 (benchmarks/RESULTS.md)
TWO_THREAD_BYTES = 1 << 24
#: how many chunks' u may be finished ahead of the gradient thread
TWO_THREAD_SLOTS = 4


def two_thread_chunk(N: int) -> int:
    """Steps per chunk of the two-thread sweep: N/32 within [1024, 16384]. The gradient thread waits for the first
    chunk only (at most 1/32 of the sweep from N = 32768 on), and the hand-over of at most ~1000 chunks costs a few
    µs each. Measured at N = 10⁴–10⁶, chunks of 1024–32768 (benchmarks/RESULTS.md)."""
    return max(1024, min(16384, N // 32))


def two_threads_apply(kernel, grad_bytes: int) -> bool:
    """Whether the LMM backward sweep runs on two threads: the descriptor splits its VJP, the gradient has at least
    :data:`TWO_THREAD_BYTES` bytes, and the process may use two CPUs or more."""
    return kernel.vjp_x is not None and grad_bytes >= TWO_THREAD_BYTES and _usable_cpus() >= 2


def lmm_backward_two_threads(sw, xs, theta, s_index, hA, hb, malpha, hbeta, grid_index, lam, grad_theta, F, have_F,
                             nonfinite, block, chunk=None, slots=None):
    """The compiled LMM backward sweep with the gradient rows on a second thread (section comment above); arguments
    as the compiled ``lmm_backward`` (``sw`` the :func:`sweeps` namespace), ``chunk``/``slots`` default to
    :func:`two_thread_chunk` and :data:`TWO_THREAD_SLOTS`. An error in the gradient thread is re-raised here."""
    chunk = two_thread_chunk(xs.shape[0] - 1) if chunk is None else int(chunk)
    slots = TWO_THREAD_SLOTS if slots is None else int(slots)
    if chunk < 1 or slots < 1:
        raise ValueError(f"chunk and slots must be >= 1, got {chunk} and {slots}")
    N, d = xs.shape[0] - 1, xs.shape[1]
    k = malpha.shape[0]
    Fbar = np.zeros((k + 2, d))
    zeroed = np.array([grad_theta.shape[0]], dtype=np.int64)
    U = np.empty((slots, min(chunk, max(N - k + 1, 1)), d))
    free = threading.Semaphore(slots)
    work = queue.SimpleQueue()
    error = []

    def gradient_rows():
        try:
            while True:
                item = work.get()
                if item is None:
                    return
                slot, hi, lo = item
                sw.lmm_backward_gradient(xs, U[slot], grid_index, grad_theta, k, hi, lo, zeroed, nonfinite, block)
                free.release()
        except BaseException as e:   # re-raised in the caller's thread below
            error.append(e)
            free.release(slots)        # the caller must not wait for a slot that will never be freed

    thread = threading.Thread(target=gradient_rows, name="refimpl-lmm-gradient", daemon=True)
    thread.start()
    try:
        for c, hi in enumerate(range(N, k - 1, -chunk)):
            lo = max(hi - chunk + 1, k)
            free.acquire()
            if error:
                break
            sw.lmm_backward_lambdas(xs, theta, malpha, hbeta, grid_index, lam, Fbar, U[c % slots], F, have_F, hi, lo,
                                    block)
            work.put((c % slots, hi, lo))
    finally:
        work.put(None)
        thread.join()
    if error:
        raise error[0]
    sw.lmm_backward_tail(k, xs, theta, s_index, hA, hb, grid_index, lam, grad_theta, Fbar, F, have_F, zeroed,
                         nonfinite)


# ---------------------------------------------------------------------------------------------------------------------
# finiteness of a large result without a temporary


@njit_cached()
def _all_finite_compiled(bits):
    """True iff no entry of the float64 bit patterns ``bits`` (uint64) has the exponent field all ones (inf, NaN): an
    integer OR-reduction, which the compiler vectorises (a float test with an early exit it does not)."""
    mask = np.uint64(0x7FF0000000000000)
    flat = bits.reshape(-1)
    bad = np.uint64(0)
    for i in range(flat.shape[0]):
        bad |= np.uint64(1) if (flat[i] & mask) == mask else np.uint64(0)
    return bad == np.uint64(0)


def all_finite(a: np.ndarray) -> bool:
    """``bool(np.all(np.isfinite(a)))`` for a C-contiguous float64 array in one compiled pass, without the boolean
    temporary of a's size that NumPy forms (at N = 10⁶ steps of the step layout, d = 16, that is 272 MB)."""
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        raise TypeError("a must be a float64 ndarray")
    return bool(_all_finite_compiled(np.ascontiguousarray(a).view(np.uint64)))
