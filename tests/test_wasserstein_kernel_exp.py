"""The pair kernels' two exp paths (refimpl.wasserstein._numba, ``exp="polynomial"`` default, ``exp="libm"``):

* each path is bit-identical to a pure-Python per-row loop of the scalar formula with the same exp and the same
  roundings (libm: ``math.exp`` — the C library's, which Numba calls — products and sums rounded separately, exponent
  (−0.5·r²)·(1/s²); polynomial: the polynomial exp one value at a time, itself bit-identical to its pure-Python route
  in tests/test_polynomial_exp.py, squared distances and accumulations by exactly rounded fused multiply-adds,
  exponent r²·(−0.5/s²)): the row blocks, the SIMD lanes and the two-j passes change the speed, not a bit;
* the two paths differ by no more than the bound derived from the exp ulp bounds, the squared distances' rounding
  and the number of terms;
* both are bit-identical for 1 and all threads, and for 256- and 512-bit vectors; the loops of the default path
  vectorise (LLVM IR);
* ``exp`` is checked.
"""
import math
import re
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given, settings

from refimpl.testing.strategies_wasserstein import particle_clouds
from refimpl.wasserstein import _numba, pairwise_sums
from refimpl.numerics.polynomial_exp import ULP_BOUND, _fma_exact, polynomial_exp_array

U = 2.0 ** -53
LIBM_ULPS = 1.0  # the C library's exp: ≤ 1 ulp (glibc's documented bound for exp on x86-64)


# --- pure-Python routes: the scalar formula helpers of _numba.py, row by row, j in order -----------------------------

def _squared_distance(X, k, j, fused):
    r2 = 0.0
    for ell in range(X.shape[1]):
        z = float(X[k, ell]) - float(X[j, ell])
        r2 = _fma_exact(z, z, r2) if fused else r2 + z * z
    return r2


def _kernel(r2, exp, inv_s2, fused):
    return exp(r2 * (-0.5 * inv_s2)) if fused else exp(-0.5 * r2 * inv_s2)


def _row_sums(X, exp, scale, inv_s2, factor=None, cols=None, fused=False):
    n, d = X.shape
    cols = range(d) if cols is None else cols
    out = np.empty((n, len(cols)))
    for k in range(n):
        acc = [0.0] * len(cols)
        for j in range(n):
            w = scale * _kernel(_squared_distance(X, k, j, fused), exp, inv_s2, fused)
            if factor is not None:
                w = w * (factor[k] + factor[j])
            for c, ell in enumerate(cols):
                z = float(X[k, ell]) - float(X[j, ell])
                acc[c] = _fma_exact(w, z, acc[c]) if fused else acc[c] + w * z
        for c in range(len(cols)):
            out[k, c] = acc[c] / n
    return out


def python_interaction(X, a, s, exp, cols=None, fused=False):
    inv_s2 = 1.0 / (s * s)
    return _row_sums(X, exp, -a * inv_s2, inv_s2, cols=cols, fused=fused)


def python_mean_kernel(X, eps, exp, fused=False):
    n, d = X.shape
    inv = 1.0 / (eps * eps)
    out = np.empty(n)
    for k in range(n):
        acc = 0.0
        for j in range(n):
            acc += _kernel(_squared_distance(X, k, j, fused), exp, inv, fused)
        out[k] = acc / n
    return out


def python_blob_score(X, eps, exp, cols=None, fused=False):
    inv = 1.0 / (eps * eps)
    kbar = python_mean_kernel(X, eps, exp, fused)
    return _row_sums(X, exp, -1.0 * inv, inv, factor=[1.0 / v for v in kbar], cols=cols, fused=fused)


def _polynomial_exp_scalar(v):
    return float(polynomial_exp_array(np.array([v]))[0])


EXPS = {"libm": math.exp, "polynomial": _polynomial_exp_scalar}


@pytest.mark.parametrize("exp", ["libm", "polynomial"])
def test_each_path_is_bit_identical_to_the_scalar_formula(exp):
    """N = 37 and 39 (odd: the single-j tail runs; 39 ≡ 3 mod 4: after the polynomial path's four-j passes a two-j
    pass runs too), d = 3 (odd: the one-coordinate tail of the two-coordinate passes), and N = 300 > ROWS_PER_BLOCK at
    d = 2 (a full block and a partial one)."""
    f, fused = EXPS[exp], exp == "polynomial"
    for n, d in ((37, 3), (39, 3), (300, 2)):
        X = np.random.default_rng(n).standard_normal((n, d))
        assert np.array_equal(_numba.gaussian_interaction_gradient(X, 0.7, 1.1, exp),
                              python_interaction(X, 0.7, 1.1, f, fused=fused))
        assert np.array_equal(_numba.mean_kernel(X, 0.35, exp), python_mean_kernel(X, 0.35, f, fused))
        if n > 100:
            continue  # the blob score's pure-Python route costs 2N² exps: the small case covers it
        assert np.array_equal(_numba.blob_score(X, 0.35, exp), python_blob_score(X, 0.35, f, fused=fused))
        assert np.array_equal(_numba.gaussian_interaction_partial(X, 1, -0.4, 0.8, exp),
                              python_interaction(X, -0.4, 0.8, f, cols=[1], fused=fused)[:, 0])
        assert np.array_equal(_numba.blob_score_partial(X, 2, 0.35, exp),
                              python_blob_score(X, 0.35, f, cols=[2], fused=fused)[:, 0])


def _abs_terms(X, scale, inv_s2, factor=None):
    """(S, SA): S[k, ℓ] = Σ_j |t_kjℓ|, SA[k, ℓ] = Σ_j A_kj·|t_kjℓ| with t_kjℓ = w_kj (x_kℓ − x_jℓ) and the exponent
    A_kj = |x_k − x_j|²/(2s²) (NumPy, for the bound)."""
    Z = X[:, None, :] - X[None, :, :]
    A = 0.5 * np.sum(Z * Z, axis=2) * inv_s2
    w = np.abs(scale) * np.exp(-A)
    if factor is not None:
        w = w * (factor[:, None] + factor[None, :])
    T = np.abs(w[:, :, None] * Z)
    return np.sum(T, axis=1), np.sum(A[:, :, None] * T, axis=1)


@settings(max_examples=25, deadline=None)
@given(X=particle_clouds(n=(1, 40), d=(1, 4), bound=3.0))
def test_paths_differ_within_the_derived_bound(X):
    """Bound (first order in u = 2⁻⁵³). Both paths form the same differences z_ℓ = x_kℓ − x_jℓ. Squared distance:
    libm sums rounded products, polynomial runs fused steps; each is within d·u·R of R = Σ z_ℓ² (d roundings), so
    they differ by ≤ 2d·u·R. Exponent: (−0.5·r²)·(1/s²) and r²·(−0.5/s²) each round once (the halvings are exact), so
    the exponents differ by ≤ (2d + 2)·u·A, A = R/(2s²), and e^{−A} by that much relative. Exp values: e_P, e_L within
    ULP_BOUND and LIBM_ULPS ulp, ≤ 2(ULP_BOUND + LIBM_ULPS)·u relative. A term t_j = (scale·e)·z (times
    (1/K̄_k + 1/K̄_j) for the score; accumulated by a fused step in the polynomial path) then differs by
    ≤ (2(ULP_BOUND + LIBM_ULPS) + 4 + (2d + 2)A_j)·u·|t_j| (the scale product on each side, the libm path's rounded
    product, one more for the polynomial path's N-th rounding), and each recursive sum of N terms adds
    ≤ (N − 1)u·Σ|t_j| per path, so |out_P − out_L| ≤ u·(1/N)·[bracket·Σ_j|t_j| + (2d + 2)·Σ_j A_j|t_j|] with
    bracket = (2(ULP_BOUND + LIBM_ULPS) + 4) + 2(N − 1) + 2 (+2: the final divisions). K̄ (positive terms, scale 1)
    differs by that bound relative to K̄_k, δ_k; it enters the score's factor 1/K̄_k + 1/K̄_j by ≤ max_k δ_k relative:
    add max_k δ_k/u + 3 to the score's bracket. Second-order terms: A ≤ 4·6²/(2·0.35²) < 600 here, so
    ((2d + 2)·u·A)² < 10⁻²⁴ against first-order terms ≥ u: inside the 10⁻¹² slack."""
    n, d = X.shape
    per_term = 2 * (ULP_BOUND + LIBM_ULPS) + 4
    bracket = per_term + 2 * (n - 1) + 2
    distance = 2 * d + 2
    a, s, eps = 0.7, 1.1, 0.35

    P = _numba.gaussian_interaction_gradient(X, a, s, "polynomial")
    L = _numba.gaussian_interaction_gradient(X, a, s, "libm")
    S, SA = _abs_terms(X, -a / (s * s), 1.0 / (s * s))
    assert np.all(np.abs(P - L) <= (bracket * S + distance * SA) / n * U * (1 + 1e-12))

    kP = _numba.mean_kernel(X, eps, "polynomial")
    kL = _numba.mean_kernel(X, eps, "libm")
    Z = X[:, None, :] - X[None, :, :]
    A = 0.5 * np.sum(Z * Z, axis=2) / (eps * eps)
    K_bound = (bracket * kL + distance * np.sum(A * np.exp(-A), axis=1) / n) * U * (1 + 1e-12)
    assert np.all(np.abs(kP - kL) <= K_bound)  # K̄ = (1/N)Σ|terms|

    P = _numba.blob_score(X, eps, "polynomial")
    L = _numba.blob_score(X, eps, "libm")
    delta_K = np.max(K_bound / kL) / U
    S, SA = _abs_terms(X, -1.0 / (eps * eps), 1.0 / (eps * eps), factor=1.0 / kL)
    assert np.all(np.abs(P - L) <= ((bracket + delta_K + 3) * S + distance * SA) / n * U * (1 + 1e-12))


@pytest.mark.parametrize("exp", ["libm", "polynomial"])
def test_bit_reproducible_across_thread_counts(exp):
    """prange over row blocks only; each row's sum in j order: identical bits for 1 thread and all threads, N = 601
    (three blocks, the last partial)."""
    X = np.random.default_rng(3).standard_normal((601, 3))
    calls = [lambda: pairwise_sums.gaussian_interaction_gradient(X, 0.7, 1.1, "numba", exp),
             lambda: pairwise_sums.blob_score(X, 0.4, "numba", exp),
             lambda: pairwise_sums.blob_score_partial(X, 1, 0.4, "numba", exp)]
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = [c() for c in calls]
    finally:
        numba.set_num_threads(threads)
    many = [c() for c in calls]
    for a, b in zip(one, many):
        assert np.array_equal(a, b)


def test_exp_is_checked():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match="exp"):
        pairwise_sums.gaussian_interaction_gradient(X, 1.0, 1.0, exp="sleef")
    with pytest.raises(TypeError, match="exp"):
        pairwise_sums.blob_score(X, 1.0, exp=None)
    with pytest.raises(ValueError, match="exp"):
        pairwise_sums.mean_kernel(X, 1.0, backend="numpy", exp="fast")  # checked on the reference path too
    with pytest.raises(ValueError, match="exp"):
        _numba.blob_score_partial(X, 0, 1.0, exp="")


@pytest.fixture(scope="module")
def fresh_interaction_kernel():
    """The interaction kernel compiled here, uncached (a dispatcher loaded from Numba's cache cannot be inspected)."""
    from numba import njit

    return njit(_numba._pair_force_numba.py_func, parallel=True)


def _interaction(kernel, X, ell0, ell1, amplitude, width, use_libm):
    """The Gaussian interaction force by a compiled copy of the pair-force kernel, with the arguments
    ``_numba.gaussian_interaction_gradient`` passes it."""
    inv_s2 = 1.0 / (width * width)
    return kernel(X, ell0, ell1, -amplitude * inv_s2, inv_s2, _numba._NO_KBAR, False, use_libm)


def test_default_kernel_loops_vectorise(fresh_interaction_kernel):
    """The interaction kernel's IR (compiled here, uncached, to inspect it) has vector FMAs on doubles — the inlined
    polynomial exp in SIMD lanes — and no call to the C library's exp; the libm path calls it."""
    kernel = fresh_interaction_kernel
    X = np.random.default_rng(0).standard_normal((50, 2))
    for use_libm in (False, True):
        assert np.array_equal(_interaction(kernel, X, 0, 2, 0.7, 1.1, use_libm),
                              _numba.gaussian_interaction_gradient(X, 0.7, 1.1, "libm" if use_libm else "polynomial"))
    sigs = kernel.signatures
    polynomial = "\n".join(v for k, v in kernel.inspect_llvm().items() if k == sigs[0])
    assert re.search(r"llvm\.fma\.v\d+f64", polynomial)
    assert re.search(r"fmul <\d+ x double>", polynomial)


def _kernel_without_wide_vectors(fn):
    """The kernel's Python function compiled (uncached) with ``prefer_wide_vectors`` replaced by an explicit
    ``"prefer-vector-width"="256"``, for the width comparison. (Not a no-op: LLVM's default width depends on the CPU —
    256-bit on AVX-512 Xeons, 512-bit on Zen 4 — so without the attribute both kernels can be 512-bit code.)"""
    import types as pytypes

    from numba import njit, types
    from numba.extending import intrinsic

    @intrinsic
    def prefer_256_bit(typingctx):
        def codegen(context, builder, signature, args):
            set.add(builder.function.attributes, '"prefer-vector-width"="256"')
            return context.get_dummy_value()
        return types.none(), codegen

    py = fn.py_func
    glb = dict(py.__globals__, prefer_wide_vectors=prefer_256_bit)
    return njit(pytypes.FunctionType(py.__code__, glb, py.__name__, py.__defaults__, py.__closure__), parallel=True)


def test_bit_identical_across_vector_widths(fresh_interaction_kernel):
    """Each lane runs the same IEEE operations at any vector width: the pair-force kernel (interaction force and
    blob score) compiled for 256-bit vectors gives the same bits as the default one (on a CPU without AVX-512 both are
    the same code; the mean kernel is built from the same block helpers and is not recompiled here, to keep the test
    short). N = 301 and d = 3 exercise full and partial vectors and the odd tails."""
    from refimpl.numerics.polynomial_exp import target_has_avx512

    X = np.random.default_rng(11).standard_normal((301, 3))
    narrow = _kernel_without_wide_vectors(_numba._pair_force_numba)
    assert np.array_equal(_interaction(narrow, X, 0, 3, 0.7, 1.1, False),
                          _numba.gaussian_interaction_gradient(X, 0.7, 1.1))
    # the blob score runs through the same compiled kernel (with the K̄ factor)
    kbar = _numba.mean_kernel(X, 0.45)
    assert np.array_equal(narrow(X, 0, 3, -1.0 * (1.0 / 0.45 ** 2), 1.0 / 0.45 ** 2, kbar, True, False),
                          _numba.blob_score(X, 0.45))
    if target_has_avx512():
        # compiled here (uncached dispatchers can be inspected): the comparison is between 512- and 256-bit code
        wide = fresh_interaction_kernel
        assert np.array_equal(_interaction(wide, X, 0, 3, 0.7, 1.1, False),
                              _interaction(narrow, X, 0, 3, 0.7, 1.1, False))
        asm = "\n".join(wide.inspect_asm().values())
        narrow_asm = "\n".join(narrow.inspect_asm().values())
        # the loops' arithmetic (fused multiply-adds on packed doubles) runs on zmm in the one and on ymm in the
        # other; plain "zmm" anywhere is not the test (argument copies to the stack may use zmm at either width)
        packed_fma = r"vfn?m(?:add|sub)\d+pd\s[^\n]*%{}"
        assert re.search(packed_fma.format("zmm"), asm) and not re.search(packed_fma.format("zmm"), narrow_asm)
        assert re.search(packed_fma.format("ymm"), narrow_asm)


def test_bit_identical_without_avx512(tmp_path):
    """Compiled for a CPU without AVX-512 (NUMBA_CPU_NAME=haswell in a subprocess), the exp scales by exponent bits
    instead of ldexp and vectorises 4-wide: the polynomial exp and the default interaction kernel give the same bits
    as in this process. (~20 s: the subprocess compiles the kernels.)"""
    import os
    import subprocess
    import sys

    x = np.concatenate([np.linspace(-746.0, 710.0, 4001), np.linspace(-40.0, 0.0, 999), [-745.5, -744.0, -708.5]])
    X = np.random.default_rng(12).standard_normal((67, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "X.npy", X)
    script = (
        "import sys, numpy as np\n"
        "from refimpl.numerics.polynomial_exp import polynomial_exp_array, target_has_avx512\n"
        "from refimpl.wasserstein import _numba\n"
        "assert not target_has_avx512()\n"
        "d = sys.argv[1]\n"
        "np.save(d + '/e.npy', polynomial_exp_array(np.load(d + '/x.npy')))\n"
        "np.save(d + '/f.npy', _numba.gaussian_interaction_gradient(np.load(d + '/X.npy'), 0.7, 1.1))\n")
    features = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+popcnt,+sse,+sse2,"
                "+sse3,+sse4.1,+sse4.2,+ssse3,+xsave,-avx512f")
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=features,
               NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, check=True, cwd=root, timeout=300)
    assert np.array_equal(np.load(tmp_path / "e.npy").view(np.int64), polynomial_exp_array(x).view(np.int64))
    assert np.array_equal(np.load(tmp_path / "f.npy"), _numba.gaussian_interaction_gradient(X, 0.7, 1.1))
