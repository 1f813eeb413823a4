"""The Gaussian closed forms differentiated on the tape equal the hand-derived gradients.

Routes compared (docs/theory/wasserstein-gradients.md §5, §8):

* ``Energy.gaussian_value_at(m, Σ)`` (the value's closed form written with refimpl.ad ops/linalg) → ``refimpl.ad.grad``
  vs ``Energy.bures_wasserstein_gradient`` (∇_m F, ∇_Σ F), for every term with a Gaussian closed form, KL to a
  Gaussian and sums;
* ``QuadraticGaussianEnergy.value(m, S)`` (the RWCD/RWCP model) → grad vs ``velocity`` (b, M): ∇_m = b, ∇_S = M/2;
* ``bures_wasserstein_squared`` → grad vs 2(m₁ − m₂), I − T₁₂, I − T₂₁ (``gaussian_optimal_map``);
* ``gaussian_kl_divergence`` (KL between two Gaussians, differentiable in both) → grad vs Pδ, ½(P − Σ₁⁻¹), −Pδ,
  ½(P − P(Σ₁ + δδᵀ)P) (P = Σ₂⁻¹, δ = m₁ − m₂).

The tape gradient in Σ is that of the formula for a general matrix; its symmetric part is the gradient along symmetric
perturbations, which is what the closed forms give, so sym(·) of it is compared.

Covariances are drawn with condition numbers κ(Σ) up to 1e6 (eigenvalues κ^{t−½}, t ∈ [0, 1] with both ends present).

**Errors and their bounds** (measured over 300 random draws with κ up to 1e6, d ≤ 4; the tests check the bound with the
margin stated):

* sums of quadratic terms, entropy, KL, the RWCD model: the tape and the closed form evaluate the same matrices
  (the same ``inv`` call for Σ⁻¹) and differ only in the order of the additions, so the error is a few ulps of the
  *terms*: measured ≤ 1e-15 relative to Σₖ|cₖ|·max|∇Fₖ| (the scale of the terms; relative to the result itself the
  error is amplified by the cancellation between terms — e.g. ½(Σ_π⁻¹ − Σ⁻¹) near the target — which no route
  avoids). Checked ≤ 1e-13, the issue's bar.
* the Gaussian interaction: the tape computes (I + 2Σ/s²)⁻¹/s², the closed form (s²I + 2Σ)⁻¹ — the same matrix inverted
  after different roundings, so they differ by ≲ κ(I + 2Σ/s²)·ε relative: measured ≤ 1.7·κε. 1e-13 holds only for
  κ(I + 2Σ/s²) ≲ 250; checked ≤ 10·κ(I + 2Σ/s²)·ε (at κ = 1e6: 2e-9).
* W₂²: both routes take square roots of M = Σ₁^{1/2}Σ₂Σ₁^{1/2}, whose condition is up to κ(Σ₁)κ(Σ₂); the small
  eigenvalues of M carry absolute errors ε‖M‖, so both the tape gradient and I − T₁₂ are accurate only to ~κ(M)ε
  (checked against 50-digit mpmath: both routes off by the same 1e-9…1e-7 at κ(Σ) ~ 1e5). Measured
  |tape − closed| ≤ 30·κ(M)ε relative to max(1, ‖T‖); checked ≤ 100·κ(M)ε. This is the conditioning of the
  problem, not of the tape: 1e-13 is out of reach for W₂ gradients at κ(Σ) = 1e6.
* KL between two Gaussians: the tape applies Σ₂⁻¹ through solves, the closed form through ``inv``; the results differ
  by ~κε. Measured ≤ 1.1·(κ(Σ₁) + κ(Σ₂))·ε relative to the size of the terms (≤ 2.2e-12 at κ ≤ 1e6); checked
  ≤ 10·(κ(Σ₁) + κ(Σ₂))·ε (1e-13 holds for κ ≲ 50).
"""
import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.ad import grad
from refimpl.testing import strategies as rst
from refimpl.wasserstein.distances import bures_wasserstein_squared, gaussian_optimal_map, gaussian_w2, spd_sqrt
from refimpl.wasserstein.energies import (Entropy, GaussianInteraction, QuadraticInteraction, QuadraticPotential,
                                          kl_to_gaussian, weighted_terms)
from refimpl.wasserstein.gaussian_flows import gaussian_kl, gaussian_kl_divergence
from refimpl.wasserstein.measures import GaussianMeasure
from refimpl.wasserstein.rwcd_gaussian import QuadraticGaussianEnergy

EPS = np.finfo(np.float64).eps
TERMS_RTOL = 1e-13
SETTINGS = settings(max_examples=30, deadline=None)


@st.composite
def conditioned_spd(draw, d, max_log10_cond=6.0):
    """SPD (d, d) with κ = 10^u, u ∈ [0, max_log10_cond], eigenvalues κ^{t−½} (t₀ = 0, t₁ = 1, the rest in [0, 1])."""
    cond = 10.0 ** draw(st.floats(0.0, max_log10_cond))
    t = np.r_[0.0, 1.0, draw(hnp.arrays(np.float64, (max(d - 2, 0),), elements=st.floats(0.0, 1.0)))][:d]
    _, Q = np.linalg.eigh(draw(rst.spd_matrices(d)))
    S = (Q * cond ** (t - 0.5)) @ Q.T
    return 0.5 * (S + S.T)


@st.composite
def problems(draw, max_log10_cond=6.0):
    d = draw(st.integers(1, 4))
    m = draw(hnp.arrays(np.float64, (d,), elements=st.floats(-2.0, 2.0)))
    return d, m, draw(conditioned_spd(d, max_log10_cond))


def tape_gradients(f, m, S):
    gm = grad(lambda x: f(x, S))(m)
    gS = grad(lambda X: f(m, X))(S)
    return gm, 0.5 * (gS + gS.T)


def energies(d, data):
    A = data.draw(rst.spd_matrices(d, 0.5, 5.0))
    b = data.draw(hnp.arrays(np.float64, (d,), elements=st.floats(-1.0, 1.0)))
    B = data.draw(rst.symmetric_matrices(d))
    mu = data.draw(hnp.arrays(np.float64, (d,), elements=st.floats(-1.0, 1.0)))
    target = data.draw(conditioned_spd(d))
    return {
        "quadratic_potential": QuadraticPotential(A, b),
        "quadratic_interaction": QuadraticInteraction(B),
        "entropy": Entropy(),
        "kl_to_gaussian": kl_to_gaussian(mu, target),
        "sum": QuadraticPotential(A, b) + 0.7 * Entropy() + QuadraticInteraction(B) + 1.5 * kl_to_gaussian(mu, target),
    }


def term_scale(energy, g):
    """Σₖ |cₖ| max(‖∇_m Fₖ‖∞, ‖∇_Σ Fₖ‖∞): the size of the terms whose sum the closed form is."""
    total = 0.0
    for c, e in weighted_terms(energy):
        gm, gS = e.bures_wasserstein_gradient(g)
        total += abs(c) * max(np.max(np.abs(gm)), np.max(np.abs(gS)))
    return total


@SETTINGS
@given(p=problems(), data=st.data())
def test_energy_tape_gradient_equals_the_closed_form(p, data):
    d, m, S = p
    g = GaussianMeasure(m, S)
    for name, E in energies(d, data).items():
        assert E.gaussian_value_at(m, S) == E.gaussian_value(g)  # the same number on arrays
        gm, gS = E.bures_wasserstein_gradient(g)
        tm, tS = tape_gradients(E.gaussian_value_at, m, S)
        scale = max(term_scale(E, g), np.finfo(np.float64).tiny)  # all terms 0 (B = 0): exact equality required
        err = max(np.max(np.abs(tm - gm)), np.max(np.abs(tS - gS))) / scale
        assert err <= TERMS_RTOL, (name, err)


@SETTINGS
@given(p=problems(), amplitude=st.sampled_from([-1.3, 0.8]), width=st.floats(0.3, 3.0))
def test_gaussian_interaction_tape_gradient_within_its_conditioning(p, amplitude, width):
    d, m, S = p
    E = GaussianInteraction(amplitude, width)
    g = GaussianMeasure(m, S)
    _, gS = E.bures_wasserstein_gradient(g)
    tm, tS = tape_gradients(E.gaussian_value_at, m, S)
    assert np.all(tm == 0.0)
    kappa = np.linalg.cond(np.eye(d) + 2.0 * S / width ** 2)
    assert np.max(np.abs(tS - gS)) / np.max(np.abs(gS)) <= 10.0 * kappa * EPS


@SETTINGS
@given(p=problems(), data=st.data())
def test_rwcd_model_tape_gradient_equals_its_velocity(p, data):
    """QuadraticGaussianEnergy (the model the Gaussian RWCD/RWCP steps use): ∇_m F = b, ∇_S F = M/2."""
    d, m, S = p
    for name, E in energies(d, data).items():
        model = QuadraticGaussianEnergy(E, d)
        b, M = model.velocity(m, S)
        M = 0.5 * (M + M.T)  # velocity's M holds inv(S), symmetric only to ~κε; its symmetric part is the gradient
        tm, tS = tape_gradients(model.value, m, S)
        # terms: A_m m, r, G/2 and σS⁻¹/2
        scale = max(np.max(np.abs(model.Am @ m)), np.max(np.abs(model.r)), 0.5 * np.max(np.abs(model.G)),
                    0.5 * model.sigma * np.max(np.abs(np.linalg.inv(S))), np.finfo(np.float64).tiny)
        err = max(np.max(np.abs(tm - b)), np.max(np.abs(tS - 0.5 * M))) / scale
        assert err <= TERMS_RTOL, (name, err)


@SETTINGS
@given(p1=problems(), data=st.data())
def test_bures_wasserstein_tape_gradient_within_its_conditioning(p1, data):
    d, m1, S1 = p1
    m2 = data.draw(hnp.arrays(np.float64, (d,), elements=st.floats(-2.0, 2.0)))
    S2 = data.draw(conditioned_spd(d))
    g1, g2 = GaussianMeasure(m1, S1), GaussianMeasure(m2, S2)
    w2sq = bures_wasserstein_squared(m1, S1, m2, S2)
    assert gaussian_w2(g1, g2) == np.sqrt(max(w2sq, 0.0))
    T12, _ = gaussian_optimal_map(g1, g2)
    T21, _ = gaussian_optimal_map(g2, g1)
    I = np.eye(d)
    f1 = lambda m, S: bures_wasserstein_squared(m, S, m2, S2)  # noqa: E731
    f2 = lambda m, S: bures_wasserstein_squared(m1, S1, m, S)  # noqa: E731
    tm1, tS1 = tape_gradients(f1, m1, S1)
    tm2, tS2 = tape_gradients(f2, m2, S2)
    np.testing.assert_allclose(tm1, 2.0 * (m1 - m2), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(tm2, 2.0 * (m2 - m1), rtol=1e-15, atol=1e-15)
    R = spd_sqrt(S1)
    kappa = np.linalg.cond(R @ S2 @ R)
    err = max(np.max(np.abs(tS1 - (I - T12))) / max(1.0, np.max(np.abs(T12))),
              np.max(np.abs(tS2 - (I - T21))) / max(1.0, np.max(np.abs(T21))))
    assert err <= 100.0 * kappa * EPS


@SETTINGS
@given(p1=problems(), data=st.data())
def test_kl_between_gaussians_tape_gradient_within_its_conditioning(p1, data):
    d, m1, S1 = p1
    m2 = data.draw(hnp.arrays(np.float64, (d,), elements=st.floats(-2.0, 2.0)))
    S2 = data.draw(conditioned_spd(d))
    P, delta = np.linalg.inv(S2), m1 - m2
    bound = 10.0 * (np.linalg.cond(S1) + np.linalg.cond(S2)) * EPS
    kl = gaussian_kl_divergence(m1, S1, m2, S2)
    terms = abs(np.trace(P @ S1)) + abs(delta @ P @ delta) + d + abs(np.linalg.slogdet(S1)[1]) \
        + abs(np.linalg.slogdet(S2)[1])
    assert abs(kl - gaussian_kl(GaussianMeasure(m1, S1), GaussianMeasure(m2, S2))) <= bound * terms
    closed = [P @ delta, 0.5 * (P - np.linalg.inv(S1)), -P @ delta, 0.5 * (P - P @ (S1 + np.outer(delta, delta)) @ P)]
    scales = [np.max(np.abs(P @ delta)), 0.5 * max(np.max(np.abs(P)), np.max(np.abs(np.linalg.inv(S1)))),
              np.max(np.abs(P @ delta)), 0.5 * max(np.max(np.abs(P)), np.max(np.abs(P @ (S1 + np.outer(delta, delta)) @ P)))]
    args = [m1, S1, m2, S2]
    for i in range(4):
        g = grad(gaussian_kl_divergence, i)(*args)
        g = 0.5 * (g + g.T) if g.ndim == 2 else g
        assert np.max(np.abs(g - closed[i])) <= bound * max(scales[i], np.finfo(np.float64).tiny), i


def test_the_map_pushes_the_first_gaussian_onto_the_second():
    """T = Ax + b with A ≻ 0 symmetric: m₂ = Am₁ + b and AΣ₁A = Σ₂ (the defining property of the Brenier map)."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    g1 = GaussianMeasure(rng.standard_normal(3), X @ X.T + np.eye(3))
    g2 = GaussianMeasure(rng.standard_normal(3), Y @ Y.T + 0.5 * np.eye(3))
    A, b = gaussian_optimal_map(g1, g2)
    np.testing.assert_array_equal(A, A.T)
    assert np.all(np.linalg.eigvalsh(A) > 0)
    np.testing.assert_allclose(A @ g1.mean + b, g2.mean, rtol=0, atol=1e-14)
    np.testing.assert_allclose(A @ g1.cov @ A, g2.cov, rtol=0, atol=1e-13)
