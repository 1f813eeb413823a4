"""Energies on particles and Gaussians: Wasserstein gradients against the tape, finite differences, closed forms and
Monte Carlo; argument checks."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.stats import multivariate_normal

from refimpl.ad import grad, ops
from refimpl.ad.checks import richardson_difference, taylor_test
from refimpl.testing.strategies_wasserstein import gaussian_measures, particle_clouds, spd_matrices
from refimpl.wasserstein.energies import (Entropy, GaussianInteraction, KLDivergence, Potential, QuadraticInteraction,
                                          QuadraticPotential, ScaledEnergy, SumEnergy, kl_to_gaussian,
                                          silverman_bandwidth)
from refimpl.wasserstein.measures import GaussianMeasure

SETTINGS = settings(max_examples=25, deadline=None)


def _rng_matrix(d, seed, spd=True):
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d, d))
    return M @ M.T + 0.5 * np.eye(d) if spd else 0.5 * (M + M.T)


def _cos_potential(d):
    """V(x) = Σ cos(x_j) + ½|x|²: a non-quadratic potential with its closed-form gradient."""
    return Potential(lambda X: ops.sum(ops.cos(X), axis=1) + 0.5 * ops.sum(X * X, axis=1),
                     lambda X: -np.sin(X) + X, lambda X, i: -np.sin(X[:, i]) + X[:, i],
                     coordinate_smoothness=np.full(d, 2.0), smoothness=2.0, name="cos-potential")


def _energies(d, backend):
    """One energy of every kind (and compositions), in dimension d."""
    return [
        QuadraticPotential(_rng_matrix(d, 1, spd=False), np.arange(d, dtype=float)),
        _cos_potential(d),
        QuadraticInteraction(_rng_matrix(d, 2)),
        GaussianInteraction(0.7, 1.3, backend=backend),
        GaussianInteraction(-1.1, 0.6, backend=backend),
        Entropy(0.5, backend=backend),
        kl_to_gaussian(np.ones(d), _rng_matrix(d, 3), bandwidth=0.4, backend=backend),
        2.5 * Entropy(0.7, backend=backend) + GaussianInteraction(1.0, 1.0, backend=backend) + _cos_potential(d),
    ]


# ------------------------------------------------------------------------------------------------ three routes agree
@pytest.mark.parametrize("backend", ["numba", "numpy"])
@SETTINGS
@given(X=particle_clouds(n=(2, 10), d=(1, 3)))
def test_wasserstein_gradient_equals_tape_gradients(backend, X):
    """wasserstein_gradient == N·(tape ∇ of the particle energy) == tape ∇_y of the first variation at the particles.

    Tolerance 1e-12·(1 + max|∇|): the routes sum the same ≤ N·d·N terms in different orders; with N ≤ 10 and terms
    bounded by max|∇|·N the rounding is ≤ ~N²·2.2e-16·max|∇| ≈ 2e-14·max|∇|, far below."""
    n, d = X.shape
    for E in _energies(d, backend):
        g = E.wasserstein_gradient(X)
        tol = 1e-12 * (1.0 + np.max(np.abs(g)))
        g_tape = n * grad(E.value)(X)
        g_fv = grad(lambda Y: ops.sum(E.first_variation(X, Y)))(X)
        assert np.max(np.abs(g - g_tape)) <= tol, E.name
        assert np.max(np.abs(g - g_fv)) <= tol, E.name
        for i in range(d):
            gi = E.coordinate_gradient(X, i)
            assert gi.shape == (n,)
            assert np.max(np.abs(gi - g[:, i])) <= tol, E.name


@pytest.mark.parametrize("k", range(8))
def test_wasserstein_gradient_taylor_and_fd(k):
    """Rate-2 Taylor test of N·F(ρ_X) along a random particle perturbation, and a Richardson FD directional derivative
    (error O(h⁴) ≈ 1e-12 relative at its default step; asserted at 1e-8 relative to the size of the derivative)."""
    rng = np.random.default_rng(10 + k)
    X = rng.standard_normal((9, 2))
    E = _energies(2, "numba")[k]
    g = E.wasserstein_gradient(X)
    result = taylor_test(lambda Y: X.shape[0] * E.value(Y), X, g, seed=k)
    assert result.passed, repr(result)
    V = rng.standard_normal(X.shape)
    fd = richardson_difference(lambda Y: X.shape[0] * E.value(Y), X, V)
    assert abs(fd - np.sum(g * V)) <= 1e-8 * (1.0 + np.sum(np.abs(g * V))), E.name


def test_second_order_tape_through_energy():
    """hvp-free sanity: the tape differentiates the first variation twice (∇² of the potential's first variation
    summed over Y is the block-diagonal A), so higher-order tape routes work on these energies."""
    A = _rng_matrix(2, 4)
    E = QuadraticPotential(A, [0.5, -0.5])
    X = np.random.default_rng(0).standard_normal((4, 2))
    g2 = grad(lambda Y: ops.sum(grad(lambda Z: ops.sum(E.first_variation(X, Z)))(Y) * np.array([1.0, 0.0])))(X)
    assert np.allclose(g2, np.tile(A[0], (4, 1)), rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------------------------ composition
def test_sum_and_scale_compose():
    """(c·F + G) gives c·∇F + ∇G, c·F + G values, added smoothness constants; SumEnergy flattens; sum() works."""
    X = np.random.default_rng(5).standard_normal((7, 2))
    F, G = QuadraticPotential(_rng_matrix(2, 6)), QuadraticInteraction(_rng_matrix(2, 7))
    H = 3.0 * F + G
    assert isinstance(H, SumEnergy) and isinstance(H.terms[0], ScaledEnergy)
    assert np.array_equal(H.wasserstein_gradient(X), 3.0 * F.wasserstein_gradient(X) + G.wasserstein_gradient(X))
    assert H.value(X) == pytest.approx(3.0 * F.value(X) + G.value(X), rel=1e-15)
    assert np.allclose(H.coordinate_smoothness(2), 3.0 * np.diag(F.A) + np.diag(G.B), rtol=1e-15)
    assert sum([F, G]).wasserstein_gradient(X) == pytest.approx(F.wasserstein_gradient(X) + G.wasserstein_gradient(X))
    assert (F + (G + F)).terms == (F, G, F)
    assert (F + Entropy(1.0)).coordinate_smoothness(2) is None
    assert (-1.0 * F).smoothness(2) is None


# ------------------------------------------------------------------------------------------------ smoothness constants
@pytest.mark.parametrize("a, s", [(0.7, 1.3), (-1.1, 0.6)])
def test_gaussian_interaction_smoothness_is_sup_of_second_derivative(a, s):
    """Lᵢ = sup_z ∂ᵢᵢW(z): the derived formula vs a brute maximisation over a fine grid of z (the sup is attained on
    the eᵢ axis, |zᵢ|² = 3s² for a > 0, z = 0 for a < 0; grid step 1e-4·s → relative error ≤ ~1e-8)."""
    t = np.linspace(-5 * s, 5 * s, 100_001)
    d2 = a * np.exp(-t ** 2 / (2 * s * s)) * (t ** 2 / s ** 4 - 1 / s ** 2)
    E = GaussianInteraction(a, s)
    assert E.coordinate_smoothness(3) == pytest.approx(np.full(3, d2.max()), rel=1e-7)
    assert E.smoothness(3) == pytest.approx(d2.max(), rel=1e-7)


def test_coordinate_descent_lemma_holds_with_L_i():
    """Condition (C): F((Id + eᵢφ)#ρ) ≤ F(ρ) + ∫∂ᵢu φ dρ + (Lᵢ/2)∫φ² dρ for random clouds and displacements φ, for the
    cos-potential + Gaussian interaction + quadratic interaction (all Lᵢ known); slack ≥ −1e-12 (rounding)."""
    rng = np.random.default_rng(11)
    E = _cos_potential(3) + GaussianInteraction(0.8, 0.9) + QuadraticInteraction(_rng_matrix(3, 12))
    L = E.coordinate_smoothness(3)
    for _ in range(20):
        X = rng.standard_normal((15, 3)) * 1.5
        i = int(rng.integers(3))
        phi = rng.standard_normal(15) * rng.uniform(0.01, 2.0)
        Xp = X.copy()
        Xp[:, i] += phi
        bound = E.value(X) + np.mean(E.coordinate_gradient(X, i) * phi) + 0.5 * L[i] * np.mean(phi ** 2)
        assert E.value(Xp) <= bound + 1e-12


# ------------------------------------------------------------------------------------------------ Gaussian closed forms
def _sym_direction(d, seed):
    M = np.random.default_rng(seed).standard_normal((d, d))
    return 0.5 * (M + M.T)


def _gaussian_energies(d):
    return [QuadraticPotential(_rng_matrix(d, 21, spd=False), np.linspace(-1, 1, d)),
            QuadraticInteraction(_rng_matrix(d, 22, spd=False)), GaussianInteraction(0.9, 1.4),
            GaussianInteraction(-0.5, 0.7), Entropy(), kl_to_gaussian(np.zeros(d), _rng_matrix(d, 23))]


@SETTINGS
@given(g=gaussian_measures(dims=(1, 3)), seed=st.integers(0, 2 ** 16))
def test_bures_wasserstein_gradient_matches_fd(g, seed):
    """⟨∇_m F, δm⟩ + ⟨∇_Σ F, δΣ⟩ against Richardson FD along a random (δm, symmetric δΣ); the step 7e-4 keeps
    Σ ± hδΣ SPD (eig(Σ) ≥ 0.2, |δΣ| ≲ 3); Richardson error O(h⁴) ~ 1e-12, asserted at 1e-8 relative."""
    d = g.dim
    rng = np.random.default_rng(seed)
    dm, dS = rng.standard_normal(d), _sym_direction(d, seed)
    for E in _gaussian_energies(d):
        gm, gS = E.bures_wasserstein_gradient(g)
        assert np.array_equal(gS, gS.T)
        fm = richardson_difference(lambda m: E.gaussian_value(GaussianMeasure(m, g.cov)), g.mean, dm)
        fS = richardson_difference(lambda S: E.gaussian_value(GaussianMeasure(g.mean, S)), g.cov, dS)
        assert abs(fm - gm @ dm) <= 1e-8 * (1 + abs(fm)), E.name
        assert abs(fS - np.sum(gS * dS)) <= 1e-8 * (1 + abs(fS)), E.name


@SETTINGS
@given(g=gaussian_measures(dims=(1, 4)), target=gaussian_measures(dims=4))
def test_gaussian_entropy_and_kl_closed_forms(g, target):
    """Entropy and KL against independent formulas: scipy's multivariate_normal entropy (ℋ = −scipy entropy), and
    the KL trace formula written again with solve/slogdet (a second implementation); rounding-level tolerances."""
    assert Entropy().gaussian_value(g) == pytest.approx(-multivariate_normal(g.mean, g.cov).entropy(), rel=1e-12,
                                                        abs=1e-12)
    if g.dim == 4:
        P = np.linalg.inv(target.cov)
        dm = g.mean - target.mean
        kl = 0.5 * (np.trace(np.linalg.solve(target.cov, g.cov)) + dm @ P @ dm - 4
                    - np.linalg.slogdet(g.cov)[1] + np.linalg.slogdet(target.cov)[1])
        assert kl_to_gaussian(target.mean, target.cov).gaussian_value(g) == pytest.approx(kl, rel=1e-10, abs=1e-12)
        assert kl_to_gaussian(target.mean, target.cov).gaussian_value(target) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_velocity_is_the_particle_gradient_for_affine_fields():
    """For potentials, quadratic interaction and entropy the Wasserstein gradient at a Gaussian is affine and equals
    b + M(x − m): the quadratic potential's particle gradient equals it identically (same formula, rounding 1e-14)."""
    g = GaussianMeasure([0.3, -0.2], _rng_matrix(2, 30))
    E = QuadraticPotential(_rng_matrix(2, 31), [1.0, 2.0])
    b, M = E.gaussian_velocity(g)
    X = np.random.default_rng(0).standard_normal((6, 2))
    assert np.allclose(E.wasserstein_gradient(X), b + (X - g.mean) @ M.T, rtol=0, atol=1e-13)
    bH, MH = Entropy().gaussian_velocity(g)  # ∇ log ρ = −Σ⁻¹(x − m)
    assert np.allclose(MH, -np.linalg.inv(g.cov), rtol=0, atol=1e-14) and np.all(bH == 0)


@pytest.mark.parametrize("E", [QuadraticPotential(np.array([[2.0, 0.5], [0.5, 1.0]]), [0.2, -0.1]),
                               QuadraticInteraction(np.array([[1.0, 0.3], [0.3, 2.0]])),
                               GaussianInteraction(0.8, 1.1), GaussianInteraction(-0.6, 0.5)],
                         ids=lambda E: E.name)
def test_gaussian_value_matches_monte_carlo(E):
    """Particle value on N = 4000 samples (seed 0) vs the Gaussian closed form, within 5 standard errors.

    Potential: SE = std(V(x_k))/√N. Interaction (a V-statistic with the self pairs): its mean is
    ½[(1 − 1/N)E W(x − y) + W(0)/N], corrected exactly; SE by the Hoeffding projection, 2·½·std(h₁)/√N with
    h₁(x_k) = (1/N)Σ_j W(x_k − x_j)."""
    g = GaussianMeasure([0.5, -1.0], np.array([[1.0, 0.4], [0.4, 0.6]]))
    n = 4000
    X = g.sample(n, seed=0)
    exact = E.gaussian_value(g)
    if isinstance(E, QuadraticPotential):
        v = E.first_variation(X, X)
        est, se = v.mean(), v.std(ddof=1) / math.sqrt(n)
    else:
        # unbiased: GaussianInteraction E V_N = (1 − 1/N)F + W(0)/(2N); QuadraticInteraction E V_N = (1 − 1/N)F
        w0 = E.amplitude if isinstance(E, GaussianInteraction) else 0.0
        est = (E.value(X) - 0.5 * w0 / n) / (1 - 1 / n)
        # F̂ = ½U with U the U-statistic of W: SE = ½·2·std(g)/√N, g = W * ρ = the first variation
        se = np.std(E.first_variation(X, X), ddof=1) / math.sqrt(n)
    assert abs(est - exact) <= 5 * se, (est, exact, se)


def test_blob_entropy_tends_to_entropy():
    """Blob entropy of N(0, 1) samples vs its population value ∫ρ log(φ_ε*ρ) = −½log(2π(1+ε²)) − ½/(1+ε²) (derived:
    φ_ε*ρ = N(0, 1+ε²)). N = 4000, ε = Silverman's ≈ 0.19: MC error of the mean of log ρ̃ ≈ std(log ρ)/√N ≈ 0.011,
    self-pair bias ≈ φ_ε(0)/(Nρ) ≈ 2e-3; tolerance 0.05 ≈ 4 SE. The population value is within ε²/2 ≈ 0.02 of ℋ."""
    X = GaussianMeasure([0.0], [[1.0]]).sample(4000, seed=1)
    eps = silverman_bandwidth(X)
    H = Entropy().gaussian_value(GaussianMeasure([0.0], [[1.0]]))
    pop = -0.5 * math.log(2 * math.pi * (1 + eps ** 2)) - 0.5 / (1 + eps ** 2)
    assert abs(Entropy(eps).value(X) - pop) < 0.05
    assert abs(pop - H) < 0.5 * eps ** 2 + 1e-3


# ------------------------------------------------------------------------------------------------ bad input
def test_bad_input_raises_clear_errors():
    E = QuadraticPotential(np.eye(2))
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match="X has a non-finite"):
        E.wasserstein_gradient(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="X has a non-finite"):
        E.value(np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        E.wasserstein_gradient(np.zeros(3))
    with pytest.raises(ValueError, match="defined on R\\^2"):
        E.wasserstein_gradient(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="X must be a real"):
        E.value("abc")
    with pytest.raises(ValueError, match="i must satisfy"):
        E.coordinate_gradient(X, 2)
    with pytest.raises(TypeError, match="i must be an integer"):
        E.coordinate_gradient(X, 1.0)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        Entropy(0.0)
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        Entropy(-1.0)
    with pytest.raises(ValueError, match="needs a bandwidth"):
        Entropy().wasserstein_gradient(X)
    with pytest.raises(ValueError, match="width must be > 0"):
        GaussianInteraction(1.0, 0.0)
    with pytest.raises(ValueError, match="A must be symmetric"):
        QuadraticPotential(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="cov must be symmetric positive definite"):
        GaussianMeasure([0.0, 0.0], np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="cov must be a square matrix"):
        GaussianMeasure([0.0, 0.0], np.eye(3))
    with pytest.raises(ValueError, match="mean has a non-finite"):
        GaussianMeasure([0.0, np.nan], np.eye(2))
    with pytest.raises(ValueError, match="backend must be one of"):
        Entropy(1.0, backend="cuda")
    with pytest.raises(TypeError, match="potential must be an Energy"):
        KLDivergence(lambda x: x)
    with pytest.raises(ValueError, match="Y must have d = 2"):
        E.first_variation(X, np.zeros((2, 3)))
    with pytest.raises(NotImplementedError, match="no closed form"):
        _cos_potential(2).gaussian_value(GaussianMeasure([0.0, 0.0], np.eye(2)))
    with pytest.raises(ValueError, match="zero spread"):
        silverman_bandwidth(np.ones((5, 2)))


@SETTINGS
@given(S=spd_matrices(3))
def test_spd_strategy_and_measure_validation(S):
    """The strategy yields exactly symmetric SPD matrices that GaussianMeasure accepts unchanged."""
    assert np.array_equal(S, S.T) and np.linalg.eigvalsh(S)[0] > 0
    g = GaussianMeasure(np.zeros(3), S)
    assert np.array_equal(g.cov, S)
    with pytest.raises(ValueError):
        g.cov[0, 0] = 1.0


def test_pair_kernel_energies_take_and_check_exp():
    from refimpl.wasserstein import pairwise_sums
    from refimpl.wasserstein.energies import Entropy, GaussianInteraction, energy_from_terms, kl_to_gaussian

    with pytest.raises(ValueError, match="exp"):
        GaussianInteraction(0.5, 0.7, exp="fast")
    with pytest.raises(TypeError, match="exp"):
        Entropy(0.3, exp=1)
    with pytest.raises(ValueError, match="exp"):
        kl_to_gaussian([0.0], [[1.0]], bandwidth=0.3, exp="")
    terms = [{"kind": "gaussian_interaction", "amplitude": 0.5, "width": 0.7}, {"kind": "entropy", "bandwidth": 0.3}]
    with pytest.raises(ValueError, match="exp"):
        energy_from_terms(terms, exp="vector")
    with pytest.raises(ValueError, match="backend"):
        energy_from_terms(terms, backend="cuda")
    X = np.random.default_rng(5).normal(size=(30, 2))
    built = energy_from_terms(terms, backend="numba", exp="libm")
    assert [(t.backend, t.exp) for t in built.terms] == [("numba", "libm")] * 2
    # the option reaches the kernel: the same bits as calling the kernel with it directly
    expected = (pairwise_sums.gaussian_interaction_gradient(X, 0.5, 0.7, "numba", "libm")
                + pairwise_sums.blob_score(X, 0.3, "numba", "libm"))
    assert built.wasserstein_gradient(X).tobytes() == expected.tobytes()
    # the NumPy reference calls np.exp whatever exp says
    ref = [energy_from_terms(terms, backend="numpy", exp=e).wasserstein_gradient(X) for e in ("libm", "polynomial")]
    assert ref[0].tobytes() == ref[1].tobytes()
