"""refimpl's W₂ against POT (Python Optimal Transport; Flamary et al., JMLR 22 (2021)), an independent implementation.

* Gaussians: ``ot.gaussian.bures_wasserstein_distance`` / ``bures_wasserstein_mapping`` vs
  :func:`refimpl.wasserstein.gaussian_w2` / :func:`refimpl.wasserstein.distances.gaussian_optimal_map`. Both take
  symmetric square roots by ``eigh``, but POT forms A = Σ₁^{-1/2}CΣ₁^{-1/2} with an explicit inverse and refimpl with two
  solves, and POT squares the norm of m₁ − m₂ where refimpl sums squares. W₂² is a difference of terms
  (tr Σ₁ + tr Σ₂ − 2 tr C), so its rounding is relative to the size of the terms
  s = |m₁ − m₂|² + tr Σ₁ + tr Σ₂, not to W₂² itself (which → 0 as the Gaussians coincide): compared as
  |W₂²(refimpl) − W₂²(POT)| ≤ 1e-12·s, and the map's linear part as ‖ΔA‖∞ ≤ 1e-12·max(1, ‖A‖∞), for covariances with
  eigenvalues in [0.2, 4] (κ ≤ 20).
* Particles: ``ot.emd2`` (network simplex) on the squared-distance cost with uniform weights vs
  :func:`refimpl.wasserstein.particle_w2` (Hungarian algorithm, or sorting in 1-D): both return the exact optimum of the
  same linear program; the optimal cost is a sum of N terms of the same cost matrix, so W₂² agrees to ~Nε relative:
  checked ≤ 1e-12 relative, plus an absolute floor 10ε·max C + 1e-14 for clouds that (nearly) coincide or have tiny
  costs, where POT's absolute pivoting tolerance leaves a suboptimal plan (it returned 5e-17 for an optimum of 0 with
  cost entries 1e-16).

POT is an optional test dependency (``pip install POT``); these tests are skipped without it.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl.testing import strategies as rst
from refimpl.wasserstein import gaussian_w2, particle_w2
from refimpl.wasserstein import gaussian_optimal_map

ot = pytest.importorskip("ot")

RTOL = 1e-12
SETTINGS = settings(max_examples=50, deadline=None)


@SETTINGS
@given(data=st.data())
def test_bures_wasserstein_distance_and_map_match_pot(data):
    d = data.draw(st.integers(1, 5))
    g1 = data.draw(rst.gaussian_measures(dims=d))
    g2 = data.draw(rst.gaussian_measures(dims=d))
    w_ours = gaussian_w2(g1, g2)
    w_pot = float(ot.gaussian.bures_wasserstein_distance(g1.mean, g2.mean, g1.cov, g2.cov))
    scale = np.sum((g1.mean - g2.mean) ** 2) + np.trace(g1.cov) + np.trace(g2.cov)
    assert abs(w_ours ** 2 - w_pot ** 2) <= RTOL * scale
    A, b = gaussian_optimal_map(g1, g2)
    A_pot, b_pot = ot.gaussian.bures_wasserstein_mapping(g1.mean, g2.mean, g1.cov, g2.cov)
    assert np.max(np.abs(A - A_pot)) <= RTOL * max(1.0, np.max(np.abs(A)))
    assert np.max(np.abs(b - b_pot)) <= RTOL * max(1.0, np.max(np.abs(b)), np.max(np.abs(A)) * np.max(np.abs(g1.mean)))


@SETTINGS
@given(data=st.data())
def test_particle_w2_matches_pot_emd2(data):
    n = data.draw(st.integers(2, 40))
    d = data.draw(st.integers(1, 3))
    X = data.draw(rst.particle_clouds(n=n, d=d))
    Y = data.draw(rst.particle_clouds(n=n, d=d))
    w = np.full(n, 1.0 / n)
    cost = np.sum((X[:, None, :] - Y[None, :, :]) ** 2, axis=2)
    w2sq_pot = float(ot.emd2(w, w, cost))
    w2sq_ours = particle_w2(X, Y) ** 2
    # relative 1e-12, with an absolute floor: POT's network simplex stops when no reduced cost is below an absolute
    # tolerance, so where the costs themselves are tiny its plan can be far from optimal in relative terms (measured:
    # cost 5e-17 for an optimum 0 at cost entries 1e-16; 6e-89 at entries 1e-88). The floor 10ε·max C + 1e-14
    # covers that; on O(1) clouds it is ~1e-14 absolute (the measured agreement there: 1e-15 relative).
    assert abs(w2sq_ours - w2sq_pot) <= RTOL * w2sq_pot + 10.0 * np.finfo(np.float64).eps * np.max(cost) + 1e-14
