"""The pair kernels' two exp paths (refimpl.wasserstein._numba, ``exp="polynomial"`` default, ``exp="libm"``):

* each path is bit-identical to a pure-Python per-row loop of the scalar formula with the same exp (``math.exp`` —
  the C library's, which Numba calls — or the polynomial exp one value at a time, itself bit-identical to its
  pure-Python route in tests/test_polynomial_exp.py): the row blocks, the SIMD lanes and the two-j passes change
  the speed, not a bit;
* the two paths differ by no more than the bound derived from the exp ulp bounds and the number of terms;
* both are bit-identical for 1 and all threads; the loops of the default path vectorise (LLVM IR);
* ``exp`` is checked.
"""
import math
import re

import numba
import numpy as np
import pytest
from hypothesis import given, settings

from refimpl.testing.strategies_wasserstein import particle_clouds
from refimpl.wasserstein import _numba, pairwise_sums
from refimpl.wasserstein.polynomial_exp import ULP_BOUND, polynomial_exp_array

U = 2.0 ** -53
LIBM_ULPS = 1.0  # the C library's exp: ≤ 1 ulp (glibc's documented bound for exp on x86-64)


# --- pure-Python routes: the scalar formula helpers of _numba.py, row by row, j in order -----------------------------

def _row_sums(X, exp, scale, inv_s2, factor=None, cols=None):
    n, d = X.shape
    cols = range(d) if cols is None else cols
    out = np.empty((n, len(cols)))
    for k in range(n):
        acc = [0.0] * len(cols)
        for j in range(n):
            r2 = 0.0
            for ell in range(d):
                z = float(X[k, ell]) - float(X[j, ell])
                r2 += z * z
            w = scale * exp(-0.5 * r2 * inv_s2)
            if factor is not None:
                w = w * (factor[k] + factor[j])
            for c, ell in enumerate(cols):
                acc[c] += w * (float(X[k, ell]) - float(X[j, ell]))
        for c in range(len(cols)):
            out[k, c] = acc[c] / n
    return out


def python_interaction(X, a, s, exp, cols=None):
    inv_s2 = 1.0 / (s * s)
    return _row_sums(X, exp, -a * inv_s2, inv_s2, cols=cols)


def python_mean_kernel(X, eps, exp):
    n, d = X.shape
    inv = 1.0 / (eps * eps)
    out = np.empty(n)
    for k in range(n):
        acc = 0.0
        for j in range(n):
            r2 = 0.0
            for ell in range(d):
                z = float(X[k, ell]) - float(X[j, ell])
                r2 += z * z
            acc += exp(-0.5 * r2 * inv)
        out[k] = acc / n
    return out


def python_blob_score(X, eps, exp, cols=None):
    inv = 1.0 / (eps * eps)
    kbar = python_mean_kernel(X, eps, exp)
    return _row_sums(X, exp, -1.0 * inv, inv, factor=[1.0 / v for v in kbar], cols=cols)


def _polynomial_exp_scalar(v):
    return float(polynomial_exp_array(np.array([v]))[0])


EXPS = {"libm": math.exp, "polynomial": _polynomial_exp_scalar}


@pytest.mark.parametrize("exp", ["libm", "polynomial"])
def test_each_path_is_bit_identical_to_the_scalar_formula(exp):
    """N = 37 (odd: the single-j tail runs), d = 3 (odd: the one-coordinate tail of the two-coordinate passes), and
    N = 300 > ROWS_PER_BLOCK at d = 2 (a full block and a partial one)."""
    f = EXPS[exp]
    for n, d in ((37, 3), (300, 2)):
        X = np.random.default_rng(n).standard_normal((n, d))
        assert np.array_equal(_numba.gaussian_interaction_gradient(X, 0.7, 1.1, exp),
                              python_interaction(X, 0.7, 1.1, f))
        assert np.array_equal(_numba.mean_kernel(X, 0.35, exp), python_mean_kernel(X, 0.35, f))
        if n > 100:
            continue  # the blob score's pure-Python route costs 2N² exps: the small case covers it
        assert np.array_equal(_numba.blob_score(X, 0.35, exp), python_blob_score(X, 0.35, f))
        assert np.array_equal(_numba.gaussian_interaction_partial(X, 1, -0.4, 0.8, exp),
                              python_interaction(X, -0.4, 0.8, f, cols=[1])[:, 0])
        assert np.array_equal(_numba.blob_score_partial(X, 2, 0.35, exp), python_blob_score(X, 0.35, f, cols=[2])[:, 0])


def _abs_terms(X, scale, inv_s2, factor=None):
    """S[k, ℓ] = Σ_j |w_kj (x_kℓ − x_jℓ)| (NumPy, for the bound)."""
    Z = X[:, None, :] - X[None, :, :]
    w = np.abs(scale) * np.exp(-0.5 * np.sum(Z * Z, axis=2) * inv_s2)
    if factor is not None:
        w = w * (factor[:, None] + factor[None, :])
    return np.sum(np.abs(w[:, :, None] * Z), axis=1)


@settings(max_examples=25, deadline=None)
@given(X=particle_clouds(n=(1, 40), d=(1, 4), bound=3.0))
def test_paths_differ_within_the_derived_bound(X):
    """Bound (first order in u = 2⁻⁵³). Both paths run the same operations on exp values e_P, e_L with
    |e_P − e_L| ≤ (ULP_BOUND + LIBM_ULPS) ulp(e) ≤ 2(ULP_BOUND + LIBM_ULPS)·u·e. A term t_j = (scale·e)·z (times
    (1/K̄_k + 1/K̄_j) for the score) then differs by ≤ (2(ULP_BOUND + LIBM_ULPS) + 4)u·|t_j| (two products rounding
    differently on each side), and each recursive sum of N terms adds ≤ (N − 1)u·Σ|t_j| per path, so
    |out_P − out_L| ≤ [(2(ULP_BOUND + LIBM_ULPS) + 4) + 2(N − 1) + 2]·u·(1/N)·Σ_j|t_j| (+2: the final divisions).
    K̄ (positive terms) differs by δ_K ≤ that bracket's relative size, which enters the score's factor: add
    δ_K/u + 3 to the bracket."""
    n = X.shape[0]
    per_term = 2 * (ULP_BOUND + LIBM_ULPS) + 4
    bracket = per_term + 2 * (n - 1) + 2
    a, s, eps = 0.7, 1.1, 0.35

    P = _numba.gaussian_interaction_gradient(X, a, s, "polynomial")
    L = _numba.gaussian_interaction_gradient(X, a, s, "libm")
    S = _abs_terms(X, -a / (s * s), 1.0 / (s * s)) / n
    assert np.all(np.abs(P - L) <= bracket * U * S * (1 + 1e-12))

    kP = _numba.mean_kernel(X, eps, "polynomial")
    kL = _numba.mean_kernel(X, eps, "libm")
    assert np.all(np.abs(kP - kL) <= bracket * U * kL * (1 + 1e-12))  # K̄ = (1/N)Σ|terms|

    P = _numba.blob_score(X, eps, "polynomial")
    L = _numba.blob_score(X, eps, "libm")
    S = _abs_terms(X, -1.0 / (eps * eps), 1.0 / (eps * eps), factor=1.0 / kL) / n
    assert np.all(np.abs(P - L) <= (bracket + bracket + 3) * U * S * (1 + 1e-12))


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


def test_default_kernel_loops_vectorise():
    """The interaction kernel's IR (compiled here, uncached, to inspect it) has vector FMAs on doubles — the inlined
    polynomial exp in SIMD lanes — and no call to the C library's exp; the libm path calls it."""
    from numba import njit

    kernel = njit(_numba._gaussian_interaction_numba.py_func, parallel=True)
    X = np.random.default_rng(0).standard_normal((50, 2))
    for use_libm in (False, True):
        assert np.array_equal(kernel(X, 0, 2, 0.7, 1.1, use_libm),
                              _numba.gaussian_interaction_gradient(X, 0.7, 1.1, "libm" if use_libm else "polynomial"))
    sigs = kernel.signatures
    polynomial = "\n".join(v for k, v in kernel.inspect_llvm().items() if k == sigs[0])
    assert re.search(r"llvm\.fma\.v\d+f64", polynomial)
    assert re.search(r"fmul <\d+ x double>", polynomial)
