"""Numba pairwise kernels vs their NumPy reference; determinism across thread counts."""
import numba
import numpy as np
from hypothesis import given, settings

from refimpl.testing.strategies_wasserstein import particle_clouds
from refimpl.wasserstein import pairwise_sums


def _cases(X):
    return {
        "interaction": lambda b: pairwise_sums.gaussian_interaction_gradient(X, 0.7, 1.1, b),
        "interaction_partial": lambda b: pairwise_sums.gaussian_interaction_partial(X, X.shape[1] - 1, -0.4, 0.8, b),
        "mean_kernel": lambda b: pairwise_sums.mean_kernel(X, 0.35, b),
        "blob_score": lambda b: pairwise_sums.blob_score(X, 0.35, b),
        "blob_partial": lambda b: pairwise_sums.blob_score_partial(X, 0, 0.35, b),
    }


@settings(max_examples=30, deadline=None)
@given(X=particle_clouds(n=(1, 40), d=(1, 4), bound=3.0))
def test_numba_matches_numpy_reference(X):
    """Not bit-identical (NumPy's exp and its reductions round differently), but the same terms in the same order:
    |numba − numpy| ≤ 1e-14·max|numpy| (each output is a sum of ≤ 40 terms of size ≤ max; measured ≤ 2e-15 with
    the default polynomial path, see benchmarks/bench_wasserstein_kernels.py)."""
    for name, f in _cases(X).items():
        a, b = f("numba"), f("numpy")
        assert a.shape == b.shape
        assert np.max(np.abs(a - b)) <= 1e-14 * max(np.max(np.abs(b)), 1e-300), name


def test_partials_are_the_columns_bit_for_bit():
    """The coordinate kernels perform the same operations in the same order as the full ones: bit-identical."""
    X = np.random.default_rng(1).standard_normal((60, 3))
    full = pairwise_sums.gaussian_interaction_gradient(X, 0.7, 1.1)
    blob = pairwise_sums.blob_score(X, 0.4)
    for i in range(3):
        assert np.array_equal(pairwise_sums.gaussian_interaction_partial(X, i, 0.7, 1.1), full[:, i])
        assert np.array_equal(pairwise_sums.blob_score_partial(X, i, 0.4), blob[:, i])


def test_bit_reproducible_across_thread_counts():
    """prange only over output particles, each summing its row serially: identical bits for 1 and all threads, and on
    repeated calls."""
    X = np.random.default_rng(2).standard_normal((301, 2))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = [f("numba") for f in _cases(X).values()]
    finally:
        numba.set_num_threads(threads)
    many = [f("numba") for f in _cases(X).values()]
    again = [f("numba") for f in _cases(X).values()]
    for a, b, c in zip(one, many, again):
        assert np.array_equal(a, b) and np.array_equal(b, c)
