r"""Linear algebra on the tape: each primitive beside its VJP, the VJPs written with primitives (so HVPs work).

Like :mod:`refimpl.ad.ops`, every function accepts ndarrays or :class:`~refimpl.ad.tape.Variable` s; on plain arrays it
is NumPy (``solve``, ``inv``, ``det``, ``slogdet``, ``cholesky``, ``eigh``, ``trace``, ``diagonal``, ``outer`` return
exactly what ``numpy``/``numpy.linalg`` return on symmetric input), on Variables it is recorded. Stacks of matrices
(leading batch axes) are accepted where NumPy accepts them, except by :func:`expm` (one matrix).

Notation: Ā is the cotangent of an argument A, Ḡ (``g``) that of the output, Xᵀ the plain transpose of the last two
axes. The rules follow Giles, "Collected matrix derivative results for forward and reverse mode algorithmic
differentiation" (2008; "Giles §n" below) unless another source is named.

**Complex numbers** (JAX convention, docs/theory/autodiff.md §3: plain transposes, no conjugation). ``solve``, ``inv``,
``det``, ``trace``, ``diagonal``, ``outer`` and ``expm`` are holomorphic and accept complex input, so complex step
checks them. ``slogdet``, ``cholesky``, ``eigh`` and ``sqrtm_spd`` are not holomorphic (absolute values, Hermitian
factorisations): ``cholesky``, ``eigh`` and ``sqrtm_spd`` accept real input only, ``slogdet`` real input on the tape
(``TypeError`` otherwise; on plain complex arrays it is NumPy's).

**Symmetric-input functions.** ``cholesky``, ``eigh`` and ``sqrtm_spd`` are defined on the symmetric part
sym(A) = (A + Aᵀ)/2 of their argument, and their VJPs return the gradient as a symmetric matrix (JAX's convention).
On an exactly symmetric A (the only input where they are meaningful) sym(A) = A bit for bit, so the values equal
NumPy's; NumPy itself reads only the lower triangle, whose gradient is a different representative of the same
derivative along symmetric directions.

**eigh at a degeneracy.** The eigenvector derivative has the factors 1/(w_j − w_i) (Giles §3.1); it does not exist when
two eigenvalues coincide (the eigenvectors are then not functions of A). :func:`eigh`'s VJP raises ``ValueError`` when
the eigenvectors carry a non-zero cotangent and two eigenvalues are closer than :data:`EIGH_MIN_RELATIVE_GAP`·max|w|:
below that gap the computed eigenvectors themselves carry relative errors ≳ ε/gap ≈ 2·10⁻⁸, so a derivative ∝ 1/gap
would be noise. A loss of the eigenvalues alone is differentiated at any spectrum (rule V diag(w̄) Vᵀ; at a
degeneracy this is the derivative when w̄ is equal within each cluster of equal eigenvalues — e.g. any symmetric
function of the spectrum — and one element of the generalised gradient otherwise). :func:`sqrtm_spd` does not go
through the eigenvector derivative (its VJP solves a Lyapunov equation), so it is differentiable at repeated
eigenvalues too, e.g. at A = I.
"""
from __future__ import annotations

import numpy as np

from refimpl.ad import ops
from refimpl.ad.tape import Variable, getvalue, primitive

__all__ = ["solve", "inv", "det", "slogdet", "cholesky", "eigh", "trace", "diagonal", "outer", "sqrtm_spd", "expm",
           "sylvester_spd", "EIGH_MIN_RELATIVE_GAP"]

#: eigh's VJP refuses eigenvector cotangents when min_{i≠j} |w_i − w_j| < EIGH_MIN_RELATIVE_GAP · max_k |w_k|
EIGH_MIN_RELATIVE_GAP = 1e-8


def _shape(x):
    return np.shape(getvalue(x))


def _is_traced(*args):
    return any(isinstance(a, Variable) for a in args)


def _mT(x):
    """Transpose of the last two axes (a primitive: differentiable)."""
    return ops.swapaxes(x, -2, -1)


def _sym(x):
    """(X + Xᵀ)/2 of the last two axes."""
    return ops.multiply(0.5, ops.add(x, _mT(x)))


def _real_only(name, a):
    if np.iscomplexobj(getvalue(a)):
        raise TypeError(f"{name}: complex input is not supported (the function is not holomorphic; "
                        f"see refimpl.ad.linalg)")


def _square(name, a):
    shape = _shape(a)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name}: expected a square matrix (or a stack of them), got shape {shape}")
    return shape[-1]


def _expand_last2(x):
    """x[..., None, None] with primitives."""
    return ops.reshape(x, _shape(x) + (1, 1))


# -- solve: X = A⁻¹B --------------------------------------------------------------------------------------------------
def _solve_vjp_b(g, ans, a, b):
    """B̄ = A⁻ᵀ Ḡ (Giles §2.3.1)."""
    return ops.unbroadcast(_solve_p(_mT(a), g), b)


def _solve_vjp_a(g, ans, a, b):
    """Ā = −B̄ Xᵀ (Giles §2.3.1)."""
    return ops.unbroadcast(ops.negative(ops.matmul(_solve_p(_mT(a), g), _mT(ans))), a)


_solve_p = primitive(np.linalg.solve, vjp0=_solve_vjp_a, vjp1=_solve_vjp_b)


def solve(a, b):
    r"""X = A⁻¹B for a square nonsingular A (..., n, n); B (..., n, k), or (n,) for one right-hand side (NumPy 2
    semantics: B is a vector exactly when it is 1-D).

    VJP (Giles 2008 §2.3.1): B̄ = A⁻ᵀḠ, Ā = −B̄Xᵀ. Holomorphic.
    """
    _square("solve", a)
    if len(_shape(b)) == 1:
        if not _is_traced(a, b):
            return np.linalg.solve(a, b)
        n = _shape(b)[0]
        x = _solve_p(a, ops.reshape(b, (n, 1)))
        return ops.reshape(x, _shape(x)[:-1])
    return _solve_p(a, b)


# -- inv ----------------------------------------------------------------------------------------------------------
inv = primitive(np.linalg.inv,
                vjp0=lambda g, ans, a: ops.negative(ops.matmul(_mT(ans), ops.matmul(g, _mT(ans)))))
inv.__doc__ = r"""A⁻¹ of a square nonsingular A (..., n, n).

VJP (Giles 2008 §2.2.3): Ā = −A⁻ᵀ Ḡ A⁻ᵀ. Holomorphic."""


# -- det, slogdet ----------------------------------------------------------------------------------------------------
det = primitive(np.linalg.det,
                vjp0=lambda g, ans, a: ops.multiply(_expand_last2(ops.multiply(g, ans)), _mT(inv(a))))
det.__doc__ = r"""det A of a square A (..., n, n).

VJP (Giles 2008 §2.2.4): Ā = ḡ det(A) A⁻ᵀ — requires A nonsingular (the adjugate form is not used). Holomorphic."""


def _logabsdet(a):
    _real_only("slogdet", a)
    return np.linalg.slogdet(a)[1]


_logabsdet_p = primitive(_logabsdet, vjp0=lambda g, ans, a: ops.multiply(_expand_last2(g), _mT(inv(a))))


def slogdet(a):
    r"""(sign, log|det A|) of a real square A (..., n, n), like ``numpy.linalg.slogdet``.

    ``sign`` is piecewise constant and returned as a plain array (not on the tape); log|det A| has the VJP
    Ā = ḡ A⁻ᵀ (Giles 2008 §2.2.4: d log|det A| = tr(A⁻¹dA)), A nonsingular. Real input only on the tape.
    """
    _square("slogdet", a)
    if not _is_traced(a):
        return np.linalg.slogdet(a)
    return np.linalg.slogdet(getvalue(a))[0], _logabsdet_p(a)


# -- cholesky ----------------------------------------------------------------------------------------------------
def _cholesky(a):
    _real_only("cholesky", a)
    return np.linalg.cholesky(0.5 * (a + np.swapaxes(a, -1, -2)))


def _phi_mask(n):
    """Φ of Murray (2016): the lower triangle with the diagonal halved, as a mask."""
    return np.tril(np.ones((n, n))) - 0.5 * np.eye(n)


def _cholesky_vjp(g, ans, a):
    r"""Σ̄ = sym(L⁻ᵀ Φ(LᵀL̄) L⁻¹) (Murray 2016, arXiv 1602.07527, eq. 10, symmetrised)."""
    n = _shape(a)[-1]
    P = ops.multiply(_phi_mask(n), ops.matmul(_mT(ans), g))
    Y = _solve_p(_mT(ans), P)                      # L⁻ᵀ P
    S = _mT(_solve_p(_mT(ans), _mT(Y)))            # (L⁻ᵀ Yᵀ)ᵀ = Y L⁻¹
    return _sym(S)


cholesky = primitive(_cholesky, vjp0=_cholesky_vjp)
cholesky.__doc__ = r"""The lower Cholesky factor L of sym(A) = LLᵀ, A real symmetric positive definite (..., n, n).

VJP (Murray 2016, "Differentiation of the Cholesky decomposition", arXiv 1602.07527, eq. 10): with Φ(X) the lower
triangle of X with its diagonal halved, Ā = sym(L⁻ᵀ Φ(LᵀL̄) L⁻¹) (symmetric gradient, module docstring). The two
triangular solves are general solves (:func:`solve`), so the rule is itself differentiable. Real input only."""


# -- eigh ---------------------------------------------------------------------------------------------------------
def _eigh_packed(a):
    """[w; V] stacked along axis −2 ((..., n + 1, n)) for sym(A) = V diag(w) Vᵀ: one tape value for both outputs."""
    _real_only("eigh", a)
    w, v = np.linalg.eigh(0.5 * (a + np.swapaxes(a, -1, -2)))
    return np.concatenate([w[..., None, :], v], axis=-2)


def _check_gap(w):
    w = np.asarray(getvalue(w))
    n = w.shape[-1]
    if n < 2:
        return
    gaps = np.where(np.eye(n, dtype=bool), np.inf, np.abs(w[..., :, None] - w[..., None, :]))
    scale = np.max(np.abs(w), axis=-1, keepdims=True)[..., None]
    bad = gaps < EIGH_MIN_RELATIVE_GAP * scale
    if np.any(bad):
        idx = np.argwhere(bad)[0]
        i, j = int(idx[-2]), int(idx[-1])
        wi, wj = w[tuple(idx[:-2]) + (i,)], w[tuple(idx[:-2]) + (j,)]
        raise ValueError(f"eigh: eigenvalues w[{i}] = {wi!r} and w[{j}] = {wj!r} are closer than "
                         f"EIGH_MIN_RELATIVE_GAP = {EIGH_MIN_RELATIVE_GAP:g} times max|w|: the eigenvectors are not "
                         f"differentiable there (the derivative has the factor 1/(w_j - w_i)). Differentiate a "
                         f"function of the eigenvalues alone, or a spectral function such as sqrtm_spd")


def _eigh_vjp(g, ans, a):
    r"""Ā = sym(V (diag(w̄) + F ∘ (VᵀV̄)) Vᵀ), F_ij = 1/(w_j − w_i) (i ≠ j), F_ii = 0 (Giles 2008 §3.1)."""
    n = _shape(a)[-1]
    w, V = ops.getitem(ans, (Ellipsis, 0, slice(None))), ops.getitem(ans, (Ellipsis, slice(1, None), slice(None)))
    gw, gV = ops.getitem(g, (Ellipsis, 0, slice(None))), ops.getitem(g, (Ellipsis, slice(1, None), slice(None)))
    inner = ops.multiply(ops.reshape(gw, _shape(gw)[:-1] + (1, n)), np.eye(n))          # diag(w̄)
    if np.any(getvalue(gV)):
        _check_gap(w)
        diff = ops.subtract(ops.reshape(w, _shape(w)[:-1] + (1, n)), ops.reshape(w, _shape(w) + (1,)))  # w_j − w_i
        F = ops.divide(1.0 - np.eye(n), ops.add(diff, np.eye(n)))
        inner = ops.add(inner, ops.multiply(F, ops.matmul(_mT(V), gV)))
    return _sym(ops.matmul(V, ops.matmul(inner, _mT(V))))


_eigh_p = primitive(_eigh_packed, vjp0=_eigh_vjp)


def eigh(a):
    r"""(w, V): eigenvalues (ascending) and orthonormal eigenvectors (columns) of the real symmetric sym(A), as
    ``numpy.linalg.eigh`` returns them.

    VJP (Giles 2008 §3.1): Ā = sym(V (diag(w̄) + F ∘ (VᵀV̄)) Vᵀ), F_ij = 1/(w_j − w_i) for i ≠ j, F_ii = 0. Raises
    ``ValueError`` at (near-)repeated eigenvalues when the eigenvectors are differentiated (module docstring,
    :data:`EIGH_MIN_RELATIVE_GAP`). Real input only.
    """
    _square("eigh", a)
    if not _is_traced(a):
        packed = _eigh_packed(np.asarray(a))
        return packed[..., 0, :], packed[..., 1:, :]
    packed = _eigh_p(a)
    return (ops.getitem(packed, (Ellipsis, 0, slice(None))),
            ops.getitem(packed, (Ellipsis, slice(1, None), slice(None))))


# -- trace, diagonal, outer ---------------------------------------------------------------------------------------
def _norm_axes(shape, axis1, axis2):
    nd = len(shape)
    a1, a2 = axis1 % nd, axis2 % nd
    if a1 == a2:
        raise ValueError("axis1 and axis2 must differ")
    return a1, a2


def _diagonal(a, offset=0, axis1=0, axis2=1):
    return np.diagonal(a, offset, axis1, axis2).copy()


def _diagonal_scatter(h, shape, offset=0, axis1=0, axis2=1):
    """Zeros of ``shape`` with ``h`` written on the diagonal (offset, axis1, axis2): the transpose of :func:`diagonal`."""
    a1, a2 = _norm_axes(shape, axis1, axis2)
    rest = [s for k, s in enumerate(shape) if k not in (a1, a2)]
    n1, n2 = shape[a1], shape[a2]
    out = np.zeros(tuple(rest) + (n1, n2), dtype=np.result_type(h, np.float64))
    k = np.shape(h)[-1]
    i = np.arange(k)
    out[..., i + max(-offset, 0), i + max(offset, 0)] = h
    return np.moveaxis(out, [-2, -1], [a1, a2])


diagonal = primitive(_diagonal, vjp0=lambda g, ans, a, offset=0, axis1=0, axis2=1:
                     _diagonal_scatter_p(g, _shape(a), offset, axis1, axis2))
diagonal.__doc__ = r"""``numpy.diagonal(a, offset, axis1, axis2)`` (a copy). VJP: Ḡ written back on the diagonal of
zeros (the transpose of a selection, as for indexing). Holomorphic."""
_diagonal_scatter_p = primitive(_diagonal_scatter, vjp0=lambda g, ans, h, shape, offset=0, axis1=0, axis2=1:
                                diagonal(g, offset, axis1, axis2))


def _trace(a, offset=0, axis1=0, axis2=1):
    return np.trace(a, offset, axis1, axis2)


def _trace_vjp(g, ans, a, offset=0, axis1=0, axis2=1):
    k = np.diagonal(np.empty(_shape(a), dtype=np.uint8), offset, axis1, axis2).shape[-1]
    gk = ops.broadcast_to(ops.reshape(g, _shape(g) + (1,)), _shape(g) + (k,))
    return _diagonal_scatter_p(gk, _shape(a), offset, axis1, axis2)


trace = primitive(_trace, vjp0=_trace_vjp)
trace.__doc__ = r"""``numpy.trace(a, offset, axis1, axis2)``. VJP (Giles 2008 §2.2.1, d tr A = tr dA): Ā = ḡ on the
diagonal (I for a square matrix), zeros elsewhere. Holomorphic."""


outer = primitive(np.outer,
                  vjp0=lambda g, ans, a, b: ops.reshape(ops.matmul(g, ops.reshape(b, (-1,))), _shape(a)),
                  vjp1=lambda g, ans, a, b: ops.reshape(ops.matmul(ops.reshape(a, (-1,)), g), _shape(b)))
outer.__doc__ = r"""``numpy.outer(a, b)`` = vec(a) vec(b)ᵀ. VJP: ā = Ḡ vec(b), b̄ = Ḡᵀ vec(a) (reshaped). Holomorphic."""


# -- Lyapunov equation and the SPD square root -------------------------------------------------------------------
def _sylvester_spd(x, c):
    """Y with XY + YX = C for a symmetric positive definite X, in the eigenbasis X = U diag(s) Uᵀ:
    Y = U ((UᵀCU) ⊘ (s_i + s_j)) Uᵀ (Bhatia, *Matrix Analysis*, §VII.2)."""
    _real_only("sylvester_spd", x)
    s, U = np.linalg.eigh(0.5 * (x + np.swapaxes(x, -1, -2)))
    denom = s[..., :, None] + s[..., None, :]
    if np.any(denom <= 0):
        raise ValueError("sylvester_spd: X must be positive definite (s_i + s_j > 0 for all eigenvalue pairs); "
                         f"smallest eigenvalue {np.min(s)!r}")
    return U @ ((np.swapaxes(U, -1, -2) @ c @ U) / denom) @ np.swapaxes(U, -1, -2)


def _sylvester_vjp_x(g, ans, x, c):
    """X̄ = −(Z Yᵀ + Yᵀ Z), Z = L⁻¹(Ḡ), L(Y) = XY + YX (self-adjoint for symmetric X).
    Derived: X dY + dY X = −(dX Y + Y dX), so ⟨Ḡ, dY⟩ = −⟨Z, dX Y + Y dX⟩ = −⟨ZYᵀ + YᵀZ, dX⟩."""
    Z = sylvester_spd(x, g)
    return ops.negative(ops.add(ops.matmul(Z, _mT(ans)), ops.matmul(_mT(ans), Z)))


sylvester_spd = primitive(_sylvester_spd, vjp0=_sylvester_vjp_x,
                          vjp1=lambda g, ans, x, c: ops.unbroadcast(sylvester_spd(x, g), c))
sylvester_spd.__doc__ = r"""Y solving the Lyapunov equation XY + YX = C, X symmetric positive definite.

Forward in the eigenbasis of X (Bhatia, *Matrix Analysis*, §VII.2). VJPs (derived): C̄ = L⁻¹(Ḡ) with L(Y) = XY + YX
(L is self-adjoint for symmetric X), X̄ = −(ZYᵀ + YᵀZ) with Z = L⁻¹(Ḡ). Real input only."""


def _sqrtm_spd(a):
    _real_only("sqrtm_spd", a)
    lam, V = np.linalg.eigh(0.5 * (a + np.swapaxes(a, -1, -2)))
    return (V * np.sqrt(np.clip(lam, 0.0, None))[..., None, :]) @ np.swapaxes(V, -1, -2)


sqrtm_spd = primitive(_sqrtm_spd, vjp0=lambda g, ans, a: sylvester_spd(ans, _sym(g)))
sqrtm_spd.__doc__ = r"""The symmetric square root X = sym(A)^{1/2} of a symmetric positive (semi)definite A:
X = V diag(√λ) Vᵀ from ``eigh`` (eigenvalues below 0 from rounding are set to 0).

VJP: differentiating X² = A gives X dX + dX X = dA, so Ā = L_X⁻¹(sym Ḡ) with L_X(Y) = XY + YX (the Daleckiĭ–Kreĭn
divided differences 1/(√λ_i + √λ_j) in the eigenbasis; Higham, *Functions of Matrices*, 2008, §6.1), computed by
:func:`sylvester_spd` — which needs A positive definite, and is well defined at repeated eigenvalues. Real input only."""


# -- expm ---------------------------------------------------------------------------------------------------------
_PADE13 = (64764752532480000., 32382376266240000., 7771770303897600., 1187353796428800., 129060195264000.,
           10559470521600., 670442572800., 33522128640., 1323241920., 40840800., 960960., 16380., 182., 1.)
_THETA13 = 5.371920351148152


def _expm(a):
    """e^A by scaling and squaring with the [13/13] Padé approximant (Higham, SIAM J. Matrix Anal. Appl. 26 (2005),
    Algorithm 2.3, with m = 13 always): s = max(0, ⌈log₂(‖A‖₁/θ₁₃)⌉), r₁₃(A/2ˢ)^(2ˢ). Rational in A with a
    piecewise-constant s, so holomorphic away from the switching points of s (complex step applies)."""
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"expm: expected one square matrix, got shape {a.shape}")
    b = _PADE13
    norm = float(np.max(np.sum(np.abs(a), axis=0), initial=0.0))  # ‖A‖₁ (a complex step of 1e-30 leaves it)
    s = max(0, int(np.ceil(np.log2(norm / _THETA13)))) if norm > _THETA13 else 0
    A = a / 2.0 ** s
    ident = np.eye(a.shape[0], dtype=A.dtype)
    A2 = A @ A
    A4 = A2 @ A2
    A6 = A4 @ A2
    U = A @ (A6 @ (b[13] * A6 + b[11] * A4 + b[9] * A2) + b[7] * A6 + b[5] * A4 + b[3] * A2 + b[1] * ident)
    V = A6 @ (b[12] * A6 + b[10] * A4 + b[8] * A2) + b[6] * A6 + b[4] * A4 + b[2] * A2 + b[0] * ident
    R = np.linalg.solve(V - U, V + U)
    for _ in range(s):
        R = R @ R
    return R


def _expm_vjp(g, ans, a):
    """Ā = L(Aᵀ, Ḡ), the Fréchet derivative of exp at Aᵀ in the direction Ḡ, read off the upper-right block of
    exp([[Aᵀ, cḠ], [0, Aᵀ]]) / c (Higham, *Functions of Matrices*, 2008, Thm. 3.6 / eq. (3.16); Najfeld & Havel
    1995). L is linear in Ḡ, so the scale c = max(‖A‖₁, 1)/‖Ḡ‖₁ (a constant, chosen on values) changes nothing
    but keeps the block's norm — hence the scaling s — that of A."""
    n = _shape(a)[0]
    gn = float(np.max(np.sum(np.abs(getvalue(g)), axis=0), initial=0.0))
    if gn == 0.0:
        return ops.multiply(0.0, g)
    an = float(np.max(np.sum(np.abs(getvalue(a)), axis=0), initial=0.0))
    c = max(an, 1.0) / gn
    at = ops.transpose(a)
    zero = np.zeros((n, n))
    block = ops.concatenate([ops.concatenate([at, ops.multiply(c, g)], axis=1),
                             ops.concatenate([zero, at], axis=1)], axis=0)
    return ops.divide(ops.getitem(expm(block), (slice(0, n), slice(n, 2 * n))), c)


expm = primitive(_expm, vjp0=_expm_vjp)
expm.__doc__ = r"""The matrix exponential e^A of one square matrix (scaling and squaring, [13/13] Padé; Higham 2005).

VJP (exact, not a difference quotient): Ā = L(Aᵀ, Ḡ), the Fréchet derivative at Aᵀ — the JAX-convention transpose of
the JVP dA ↦ L(A, dA), since ⟨Ḡ, L(A, E)⟩ = ⟨L(Aᵀ, Ḡ), E⟩ — computed as the upper-right block of
exp([[Aᵀ, Ḡ], [0, Aᵀ]]) (Higham, *Functions of Matrices*, 2008, eq. (3.16)); the rule calls ``expm`` itself, so it is
differentiable again. Holomorphic."""
