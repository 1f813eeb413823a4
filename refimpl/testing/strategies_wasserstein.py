"""Hypothesis strategies for Wasserstein-flow property tests: SPD matrices, Gaussian measures, particle clouds.

>>> from hypothesis import given
>>> from refimpl.testing.strategies_wasserstein import gaussian_measures, particle_clouds
>>> @given(gaussian_measures(dims=(1, 3)), particle_clouds())
... def test_my_flow(g, X): ...

Matrices are built as Q diag(λ) Qᵀ with eigenvalues λ drawn in [low, high] (so the condition number is at most
high/low) and Q orthogonal (QR of a drawn matrix, signs fixed by the diagonal of R); particle coordinates are bounded
(|x| ≤ bound) so pairwise kernels neither underflow completely nor overflow.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.wasserstein.measures import GaussianMeasure

__all__ = ["spd_matrices", "symmetric_matrices", "gaussian_measures", "particle_clouds"]


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


@st.composite
def _orthogonal(draw, d):
    M = draw(hnp.arrays(np.float64, (d, d), elements=_floats(-1.0, 1.0)))
    M = M + 3.0 * np.eye(d)  # keeps QR well conditioned; Q still ranges over many rotations
    Q, R = np.linalg.qr(M)
    return Q * np.sign(np.where(np.diag(R) == 0, 1.0, np.diag(R)))


@st.composite
def spd_matrices(draw, d: int, low: float = 0.2, high: float = 4.0):
    """Symmetric positive definite (d, d) matrices with eigenvalues in [low, high] (exactly symmetric)."""
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    lam = np.array(draw(st.lists(_floats(low, high), min_size=d, max_size=d)))
    Q = draw(_orthogonal(d))
    S = (Q * lam) @ Q.T
    return 0.5 * (S + S.T)


@st.composite
def symmetric_matrices(draw, d: int, bound: float = 2.0):
    """Symmetric (d, d) matrices with eigenvalues in [−bound, bound] (indefinite in general)."""
    lam = np.array(draw(st.lists(_floats(-bound, bound), min_size=d, max_size=d)))
    Q = draw(_orthogonal(d))
    S = (Q * lam) @ Q.T
    return 0.5 * (S + S.T)


@st.composite
def gaussian_measures(draw, dims=(1, 4), mean_bound: float = 2.0, low: float = 0.2, high: float = 4.0):
    """:class:`GaussianMeasure` N(m, Σ) with d in ``dims`` (inclusive range or a fixed int), |mᵢ| ≤ mean_bound and
    eig(Σ) in [low, high]."""
    d = dims if isinstance(dims, int) else draw(st.integers(dims[0], dims[1]))
    m = draw(hnp.arrays(np.float64, (d,), elements=_floats(-mean_bound, mean_bound)))
    return GaussianMeasure(m, draw(spd_matrices(d, low, high)))


@st.composite
def particle_clouds(draw, n=(2, 12), d=(1, 3), bound: float = 2.0):
    """(N, d) float64 particle arrays with N in ``n``, d in ``d`` (inclusive ranges or fixed ints), |x| ≤ bound."""
    nn = n if isinstance(n, int) else draw(st.integers(n[0], n[1]))
    dd = d if isinstance(d, int) else draw(st.integers(d[0], d[1]))
    return draw(hnp.arrays(np.float64, (nn, dd), elements=_floats(-bound, bound)))
