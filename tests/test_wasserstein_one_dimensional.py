"""Paper [C] in 1-D: jets, exact Lagrangian forward Euler, the counter-examples of
docs/theory/forward-euler-breakdown.md and their controls."""
import math

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad

from refimpl.wasserstein.counterexamples import (FISHER_CUTOFFS, derivative_consumption_example, fold_example,
                                                 fold_mixture, gaussian_control, pushforward_particle_check)
from refimpl.wasserstein.energies import kl_to_gaussian
from refimpl.wasserstein.gaussian_flows import gaussian_jko_step
from refimpl.wasserstein.jets import Jet, abs_power_jet, logsumexp_jets
from refimpl.wasserstein.jko_1d import jko_step_1d, quantile_points
from refimpl.wasserstein.measures import GaussianMeasure
from refimpl.wasserstein.one_dimensional import (AbsPowerDensity, GaussianDensity1D, GaussianMixtureDensity,
                                                 GaussianTarget1D, LogGrid, TiltedGaussianDensity, fisher_information,
                                                 forward_euler_lagrangian, kl_divergence)
from refimpl.wasserstein.regularized_1d import regularized_forward_euler_lagrangian

TARGET = GaussianTarget1D(0.0, 1.0)


@pytest.fixture(scope="module")
def grid():
    return LogGrid(1e-24, 12.0, 20_001)


@pytest.fixture(scope="module")
def abs_power_states(grid):
    return forward_euler_lagrangian(AbsPowerDensity(1.5), TARGET, 0.1, 2, grid.x)


# ------------------------------------------------------------------------------------------------ jets
def test_jets_match_autograd_derivatives():
    """Jet arithmetic (product, quotient, log, exp, logsumexp, |x|^p) vs autograd's nested derivatives (an independent
    AD) up to order 4, to 1e-10 relative (rounding in the recurrences)."""
    x = np.array([-1.3, -0.4, 0.25, 0.9, 2.0])

    def f(t):
        return anp.log(1 + t ** 2) * anp.exp(anp.sin(t)) / (2 + anp.cos(t)) + anp.abs(t) ** 2.5 + \
            anp.log(anp.exp(-(t - 1) ** 2) + anp.exp(-(t + 1) ** 2 / 0.5))

    X = Jet.variable(x, 4)
    J = ((1 + X * X).log() * Jet.from_derivatives([np.sin(x), np.cos(x), -np.sin(x), -np.cos(x), np.sin(x)]).exp()
         / (2 + Jet.from_derivatives([np.cos(x), -np.sin(x), -np.cos(x), np.sin(x), np.cos(x)]))
         + abs_power_jet(x, 2.5, 4) + logsumexp_jets([-(X - 1) * (X - 1), -(X + 1) * (X + 1) / 0.5]))
    g = f
    for k in range(5):
        assert np.allclose(J.derivative_value(k), g(x), rtol=1e-10, atol=1e-10), k
        g = elementwise_grad(g)
    assert np.allclose(J.derivative().derivative_value(1), J.derivative_value(2), rtol=1e-14)
    with pytest.raises(ValueError, match="order 0"):
        Jet.variable(x, 0).derivative()


# ------------------------------------------------------------------------------------------------ |x|^{3/2} example
def test_abs_power_rho0_fisher_information(grid, abs_power_states):
    """I(ρ₀) = (9/4)Γ(4/3)/Γ(2/3) ≈ 1.4838 (docs/theory/forward-euler-breakdown.md §4: ≈ 1.48): Lagrangian quadrature
    vs the Gamma formula to 1e-9 (trapezoid in t, Δt ≈ 2.9e-3 on a smooth-in-t integrand); mass 1 to 1e-12."""
    st0 = abs_power_states[0]
    assert fisher_information(st0, grid, relative=False) == pytest.approx(2.25 * math.gamma(4 / 3) / math.gamma(2 / 3),
                                                                          rel=1e-9)
    assert AbsPowerDensity(1.5).fisher_information() == pytest.approx(1.48377319, rel=1e-8)
    assert grid.integral(np.exp(st0.log_rho0)) == pytest.approx(1.0, abs=1e-12)


def test_abs_power_truncated_fisher_numbers_and_log_divergence(grid, abs_power_states):
    """docs/theory/forward-euler-breakdown.md §4: at h = 0.1 the truncated I(ρ₁) grows ≈ 2.9, 71, 261, 483 as the
    cut-off shrinks 1e-2 → 1e-8.
    Reproduced for the *plain* Fisher information I(ρ₁) = ∫|∂log ρ₁|² dρ₁ with a *Lagrangian* cut-off |x| ≥ δ
    (2.858, 70.56, 260.78, 483.32); the docs round to 2–3 digits (asserted to ±0.5%). Derived asymptotics: ρ₁ ≈ κ|y|,
    κ = 8ρ₀(0)/(9h²), so each factor 100 in δ adds κ·ln 100 (Lagrangian) — the increments reach it to 1e-4."""
    st1 = abs_power_states[1]
    I = fisher_information(st1, grid, relative=False, cutoffs=FISHER_CUTOFFS)
    assert I == pytest.approx([2.858, 70.56, 260.78, 483.32], rel=5e-3)
    cut = 10.0 ** -np.arange(8, 22, 2)
    inc = np.diff(fisher_information(st1, grid, relative=False, cutoffs=cut))
    kappa = 8 * math.exp(-AbsPowerDensity(1.5).log_z) / (9 * 0.1 ** 2)
    assert inc[-3:] == pytest.approx(kappa * math.log(100), rel=1e-4)
    # relative Fisher information diverges identically (they differ by a finite amount)
    Irel = fisher_information(st1, grid, relative=True, cutoffs=cut)
    assert np.ptp(Irel - fisher_information(st1, grid, relative=False, cutoffs=cut)) < 1e-6
    assert st1.monotone


def test_abs_power_second_map_swaps_half_lines(abs_power_states, grid):
    """Velocity of step 2 ~ 1/y: Φ₂ sends 0⁻ far right and 0⁺ far left (not monotone, not a transport map of
    finite cost: the W₂ cost of the step is h²·I(ρ₁|π) = ∞)."""
    st2 = abs_power_states[2]
    n = grid.t.size
    assert not st2.monotone
    assert st2.positions.value[n - 1] > 1e6 and st2.positions.value[n] < -1e6


@pytest.mark.parametrize("h", [0.01, 0.5])
def test_abs_power_diverges_for_every_h(grid, h):
    """Small and large h alike: increments per factor 100 of δ tend to κ(h)·ln 100 (to 1e-3 at δ ≤ 1e-14)."""
    st1 = forward_euler_lagrangian(AbsPowerDensity(1.5), TARGET, h, 1, grid.x)[1]
    cut = 10.0 ** -np.arange(14, 22, 2)
    inc = np.diff(fisher_information(st1, grid, relative=False, cutoffs=cut))
    kappa = 8 * math.exp(-AbsPowerDensity(1.5).log_z) / (9 * h * h)
    assert inc == pytest.approx(kappa * math.log(100), rel=1e-3)


@pytest.mark.parametrize("density, h", [(AbsPowerDensity(1.5), 0.1), (fold_mixture(0.1), 0.1),
                                        (TiltedGaussianDensity(TARGET, 1.0, 3.5), 0.3)],
                         ids=["abs-power", "fold", "tilted"])
def test_change_of_variables_matches_particles(density, h):
    """ρ₁ = Σ_branches ρ₀/|T′| integrated to a CDF vs 1e5 pushed samples (seed 0): KS ≤ the DKW bound at α = 1e-6
    (a correct density fails with probability ≤ 1e-6); the Eulerian density integrates to 1 within 1e-5 (trapezoid
    on grids refined around the cusp and the caustics, where ρ₁ ~ |y| resp. |y − y*|^{−1/2}; measured ≤ 1.1e-6)."""
    r = pushforward_particle_check(density, h, n_samples=100_000, seed=0)
    assert r["ks"] <= r["dkw_bound"], r
    assert r["mass"] == pytest.approx(1.0, abs=1e-5)


# ------------------------------------------------------------------------------------------------ fold example
def test_fold_example():
    """Tuned mixtures fold for every h (T₀′(0) = 1 − 2 = −1 by construction); the fixed mixture folds iff h > h*;
    the Eulerian truncated I(ρ₁|π) around the caustics grows like δ^{−3/2} (ρ₁ ~ |y − y*|^{−1/2}, derived): the
    last log-log slope within 0.1 of −1.5."""
    hs = [0.005, 0.05, 0.5]
    out = fold_example(hs, n_uniform=20_001)
    for row in out["rows"]:
        if row["case"] == "tuned":
            assert row["folded"] and row["min_jacobian"] == pytest.approx(-1.0, abs=1e-9)
        else:
            assert row["folded"] == (row["h"] > out["h_star_fixed"])
        if row["folded"]:
            assert row["loglog_slopes"][-1] == pytest.approx(-1.5, abs=0.1), row["loglog_slopes"]
            assert row["caustics"].size == 2


# ------------------------------------------------------------------------------------------------ derivative consumption
def test_derivative_consumption():
    """ρ₀ ∝ π exp(−|x|^p), p = 3/2 + 2k: I(ρₙ|π) truncated at 1e-2 … 1e-8 converges for n ≤ k (last increment
    ≤ 1e-6 relative) and diverges at n = k + 1 (increments per factor 100 of δ ≥ 1 and not shrinking) — h = 0.1."""
    out = derivative_consumption_example([0.1], powers=(3.5, 5.5), n_steps=3, grid=LogGrid(1e-24, 12.0, 10_001))
    for row in out["rows"]:
        k1 = row["predicted_failure_step"]
        for n, f in enumerate(row["fisher"][: k1 + 1]):
            inc = np.diff(f)
            if n < k1:  # converged: the last factor 100 of cut-off adds nothing (integrand integrable at 0)
                assert abs(inc[-1]) <= 1e-6 * f[-1], (row["p"], n, f)
            else:  # diverging: increments per factor 100 do not shrink (logarithmic divergence or faster)
                assert row["monotone"][n] and inc[-1] >= 1.0 and inc[-1] >= 0.5 * inc[-2], (row["p"], n, f)


# ------------------------------------------------------------------------------------------------ controls
def test_jko_1d_matches_gaussian_closed_form():
    """Quantile-form JKO from N(−1, 0.3) to π = N(0.5, 2) vs the closed-form Gaussian JKO: mean exact to 1e-12
    (the discrete scheme preserves the affine structure of the mean), variance error O(1/M) (×10 more points →
    error ÷ 10 ± 20%)."""
    target = GaussianTarget1D(0.5, 2.0)
    exact = gaussian_jko_step(kl_to_gaussian([0.5], [[2.0]]), GaussianMeasure([-1.0], [[0.3]]), 0.2)
    errs = []
    for M in (1000, 10_000):
        r = jko_step_1d(quantile_points(GaussianDensity1D(-1.0, 0.3), M), target, 0.2)
        assert r.residual <= 1e-8  # relative to the largest gradient term ~ M·ρ: rounding floor ≈ M·1e-16·cond
        assert r.X.mean() == pytest.approx(exact.mean[0], abs=1e-12)
        errs.append(abs(r.X.var() - exact.cov[0, 0]))
    assert 8.0 <= errs[0] / errs[1] <= 12.0


@pytest.mark.parametrize("h", [0.01, 0.1, 1.0])
def test_jko_does_not_fail_on_abs_power(h):
    """JKO from ρ₀ ∝ exp(−|x|^{3/2}): its Fisher information W₂²/h² is finite and converges as M grows (relative
    change ≤ 1e-3 from M = 1e4 to 4e4), and the velocity near the cusp stays bounded (max over |X| < 1 changes
    ≤ 1e-3); the iterate is a monotone rearrangement by construction."""
    res = [jko_step_1d(quantile_points(AbsPowerDensity(1.5), M), TARGET, h) for M in (10_000, 40_000)]
    assert res[1].fisher == pytest.approx(res[0].fisher, rel=1e-3)
    vmax = [np.max(np.abs(r.velocity[np.abs(r.X) < 1])) for r in res]
    assert vmax[1] == pytest.approx(vmax[0], rel=1e-3)
    assert all(np.all(np.diff(r.X) > 0) for r in res)


def test_regularized_forward_euler_does_not_fail(grid):
    """Forward Euler on KL(ρ*N(0, ε²)‖π), ε = 0.3, from the |x|^{3/2} density: three steps at h ∈ {0.01, 0.1, 0.5}
    stay monotone on the core |x| ≤ 7 and I(ρₙ|π) is finite (truncations converged to 1e-6); KL and F_ε decrease; the
    z-grid refinement (20 → 40 points per ε) changes I(ρ₃|π) by ≤ 1e-3 relative."""
    core = np.abs(grid.x) <= 7
    rho0 = AbsPowerDensity(1.5)
    for h in (0.01, 0.1, 0.5):
        states, F = regularized_forward_euler_lagrangian(rho0, TARGET, h, 3, grid, 0.3, points_per_epsilon=20)
        assert all(s.monotone_on(core) for s in states)
        fis = [fisher_information(s, grid, cutoffs=FISHER_CUTOFFS) for s in states]
        assert all(abs(f[-1] - f[-2]) <= 1e-6 * f[-1] for f in fis), fis
        kls = [kl_divergence(s, grid, core) for s in states]
        assert np.all(np.diff(kls) < 0) and np.all(np.diff(F) < 0)
    fine, _ = regularized_forward_euler_lagrangian(rho0, TARGET, 0.5, 3, grid, 0.3, points_per_epsilon=40)
    assert fisher_information(fine[3], grid) == pytest.approx(fisher_information(states[3], grid), rel=1e-3)


def test_regularized_forward_euler_needs_small_steps(grid):
    """Finding (not in [C]): the regularised scheme is stable only for h small against its smoothness scale. With
    ε = 0.1 and h = 0.5 the first step expands the cusp (T₀′(0) > 1 makes a dip in ρ₁ of width ~ε), and the second
    map folds near 0 (Φ₂′ < 0); at h = 0.1 it does not."""
    core = np.abs(grid.x) <= 7
    bad, _ = regularized_forward_euler_lagrangian(AbsPowerDensity(1.5), TARGET, 0.5, 2, grid, 0.1)
    good, _ = regularized_forward_euler_lagrangian(AbsPowerDensity(1.5), TARGET, 0.1, 2, grid, 0.1)
    assert bad[1].monotone_on(core) and not bad[2].monotone_on(core)
    assert good[2].monotone_on(core)


def test_gaussian_control():
    """Gaussian ρ₀ and π: the jet-exact Lagrangian FE maps are the recursion's affine maps pointwise (1e-13
    relative), its moments agree with m⁺ = m − h(m − μ)/s², v⁺ = (1 + h(1/v − 1/s²))²v (quadrature 1e-7), and the
    Fisher information is finite and equals (m − μ)²/s⁴ + v(1/v − 1/s²)² (1e-7)."""
    out = gaussian_control([0.1, 0.5, 1.5], n_steps=5)
    for row in out["rows"]:
        assert np.max(row["affine_error"]) <= 1e-13
        assert np.allclose(row["lagrangian"], row["recursion"], rtol=1e-7, atol=1e-8)
        assert np.allclose(row["fisher"], row["fisher_exact"], rtol=1e-7, atol=1e-8)


# ------------------------------------------------------------------------------------------------ bad input
def test_one_dimensional_bad_input(grid):
    with pytest.raises(ValueError, match="h must be > 0"):
        forward_euler_lagrangian(AbsPowerDensity(), TARGET, 0.0, 1, grid.x)
    with pytest.raises(ValueError, match="non-smooth point"):
        forward_euler_lagrangian(AbsPowerDensity(), TARGET, 0.1, 1, np.array([-1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="x has a non-finite"):
        forward_euler_lagrangian(AbsPowerDensity(), TARGET, 0.1, 1, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="delta_min must be < x_max"):
        LogGrid(1.0, 0.5, 10)
    with pytest.raises(ValueError, match="var must be > 0"):
        GaussianTarget1D(0.0, -1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        jko_step_1d(np.array([0.0, 0.0, 1.0]), TARGET, 0.1)
    with pytest.raises(ValueError, match="eps must be > 0"):
        regularized_forward_euler_lagrangian(AbsPowerDensity(), TARGET, 0.1, 1, grid, 0.0)
    with pytest.raises(ValueError, match="cutoffs must lie"):
        fisher_information(forward_euler_lagrangian(AbsPowerDensity(), TARGET, 0.1, 0, grid.x)[0], grid,
                           cutoffs=[1e-30])
    with pytest.raises(ValueError, match="sds and weights must be > 0"):
        GaussianMixtureDensity([0.0], [0.0], [1.0])
