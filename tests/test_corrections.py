"""refimpl.ode.corrections: the AD-gradient phenomenon of [A] and its corrections
(docs/theory/oscillations-and-corrections.md).

Independent routes: the continuous δL/δθ(t) in closed form (refimpl.problems.analytic_ode.LinearSystemCase, matrix
exponentials) and by DOP853 at rtol 1e-12 (refimpl.ode.adjoint_ode) on the neural field tanh(W(t)x + b(t));
the discrete gradient G = ∂L_h/∂θ by the hand adjoint, checked against the tape (refimpl.ad.grad through the
integrator) to 1e-13.

Thresholds: "converges at first order" = least-squares slope of log(max error) against log N within 0.15 of 1
(the brief's criterion); "does not converge" = the error stays above a fixed fraction of max|δL/δθ| at every N, the
fraction taken from the derivation in the module docstring of refimpl.ode.corrections (leapfrog: g → ½δL/δθ ± (−1)ⁿq,
so max error ≥ ½max|δL/δθ| − O(h); 2-stage ERK stage i: G/h → b_i δL/δθ, error ≥ (1 − b_i)max|δL/δθ| − O(h)).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl.ad import grad
from refimpl.ode import corrections as C
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.integrators import discrete_loss
from refimpl.problems.neural_ode import LinearCase, NeuralCase
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import (AB2, AB3, FORWARD_EULER, HEUN, LEAPFROG, MIDPOINT, RALSTON, RK4, two_stage)

QUICK_NS = [2 ** k for k in range(5, 10)]
FULL_NS = [2 ** k for k in range(5, 13)]


NEURAL, LINEAR = NeuralCase(seed=20230603), LinearCase()


def errors(case, method, N, starter=None, layout="stage"):
    """{estimate name: GradientError} of every applicable estimate, against the case's reference."""
    smp = parameter_samples(method, case.T, N, layout, starter)
    theta = case.theta(smp.times)
    adj = discrete_adjoint(case.field, method, case.x0, theta, case.T, N, case.loss, layout=layout, starter=starter)
    ests = C.applicable_estimates(adj.grad_theta, smp)
    times = np.unique(np.concatenate([e.times for e in ests.values()]))
    ref = case.reference(times)
    return {name: C.gradient_error(e, ref[np.searchsorted(times, e.times)]) for name, e in ests.items()}


def sweep(case, method, Ns, starter=None, layout="stage"):
    return [errors(case, method, N, starter, layout) for N in Ns]


def slope(Ns, errs):
    return -np.polyfit(np.log(Ns), np.log(errs), 1)[0]



def test_linear_reference_matches_analytic_case():
    # two closed forms of the same quantity (eigendecomposition here, expm/Van Loan in refimpl.problems.analytic_ode):
    # agreement to rounding amplified by cond(V) (≈ 1 here), 1e-12 relative
    t = np.linspace(0, LINEAR.T, 7)
    ref = LINEAR.case.functional_gradient_exact(t)
    assert np.max(np.abs(LINEAR.reference(t) - ref)) <= 1e-12 * np.max(np.abs(ref))


# ----------------------------------------------------------------------------------------------------------------------
# the discrete gradient used is the exact gradient of L_h

SCHEMES = [(FORWARD_EULER, None, "stage"), (LEAPFROG, "forward_euler", "stage"), (LEAPFROG, "matched", "stage"),
           (AB2, "matched", "stage"), (AB3, "matched", "stage"), (HEUN, None, "stage"), (MIDPOINT, None, "stage"),
           (RALSTON, None, "stage"), (two_stage(0.4), None, "stage"), (RK4, None, "stage"), (RK4, None, "step")]


@pytest.mark.parametrize("method,starter,layout", SCHEMES,
                         ids=[f"{m.name}-{s}-{l}" for m, s, l in SCHEMES])
def test_hand_adjoint_equals_tape(method, starter, layout):
    # docs/theory/discrete-adjoint.md: tape and hand recursion agree to ≤ 1e-13 relative; both evaluate the same float
    # operations up to
    # reassociation, so the difference is a few ulps of max|G|.
    N = 7
    smp = parameter_samples(method, NEURAL.T, N, layout, starter)
    theta = NEURAL.theta(smp.times)
    hand = discrete_adjoint(NEURAL.field, method, NEURAL.x0, theta, NEURAL.T, N, NEURAL.loss, layout=layout,
                            starter=starter).grad_theta
    tape = grad(lambda th: discrete_loss(NEURAL.field, method, NEURAL.x0, th, NEURAL.T, N, NEURAL.loss,
                                         layout=layout, starter=starter))(theta)
    assert np.max(np.abs(hand - tape)) <= 1e-13 * np.max(np.abs(tape))


# ----------------------------------------------------------------------------------------------------------------------
# leapfrog


@pytest.mark.parametrize("case", [NEURAL, LINEAR], ids=["neural", "linear"])
@pytest.mark.parametrize("starter", ["forward_euler", "matched"])
def test_leapfrog_raw_stays_wrong_corrected_converges_first_order(case, starter):
    Ns = QUICK_NS
    res = sweep(case, LEAPFROG, Ns, starter)
    for r in res:
        scale = r["normalised"].reference_max
        assert r["normalised"].max_error >= 0.45 * scale   # ≥ ½ max|δL/δθ| − O(h), see module docstring
        assert r["average"].max_error >= 0.45 * scale      # the pair average converges to ½ δL/δθ
        assert r["normalised"].alternating >= 0.05 * scale  # a (−1)ⁿ component of size O(1) persists
    raw = [r["normalised"].max_error for r in res]
    assert raw[-1] >= 0.9 * raw[0]
    corr = [r["corrected"].max_error for r in res]
    assert abs(slope(Ns, corr) - 1.0) <= 0.15
    assert abs(slope(Ns, [r["corrected"].l2_error for r in res]) - 1.0) <= 0.15
    assert corr[-1] <= 0.05 * res[-1]["corrected"].reference_max


def test_leapfrog_corrected_at_grid_points_converges():
    # the values a training loop uses: pair sums at t_{n+½} interpolated to the grid t_n (extrapolated at t_0, t_1,
    # t_{N-1}); interpolation adds O(h²), so the rate stays 1
    errs = []
    for N in QUICK_NS:
        smp = parameter_samples(LEAPFROG, NEURAL.T, N, "stage", "forward_euler")
        adj = discrete_adjoint(NEURAL.field, LEAPFROG, NEURAL.x0, NEURAL.theta(smp.times), NEURAL.T, N, NEURAL.loss,
                               starter="forward_euler")
        est = C.at_times(C.leapfrog_corrected_gradient(adj.grad_theta, smp), smp.times)
        errs.append(C.gradient_error(est, NEURAL.reference(smp.times)).max_error)
    assert abs(slope(QUICK_NS, errs) - 1.0) <= 0.15


@pytest.mark.slow
def test_leapfrog_full_range():
    res = sweep(NEURAL, LEAPFROG, FULL_NS, "forward_euler")
    assert all(r["normalised"].max_error >= 0.45 * r["normalised"].reference_max for r in res)
    assert abs(slope(FULL_NS, [r["corrected"].max_error for r in res]) - 1.0) <= 0.15


# ----------------------------------------------------------------------------------------------------------------------
# two-stage ERK family


@pytest.mark.parametrize("case", [NEURAL, LINEAR], ids=["neural", "linear"])
@pytest.mark.parametrize("alpha", [0.4, 0.6, 2 / 3, 0.75], ids=["a0.4", "a0.6", "ralston", "a0.75"])
def test_two_stage_raw_carries_weights_corrected_converges(case, alpha):
    method = RALSTON if alpha == 2 / 3 else two_stage(alpha)
    b1, b2 = (float(b) for b in method.b)
    Ns = QUICK_NS
    res = sweep(case, method, Ns)
    for r in res:
        scale = r["per_step"].reference_max
        # G/h ≈ b_i δL/δθ: error ≥ max_i |1 − b_i| · max|δL/δθ| − O(h); 0.8 of it leaves room for the O(h)
        assert r["per_step"].max_error >= 0.8 * max(abs(1 - b1), abs(1 - b2)) * scale
    corr = [r["corrected"].max_error for r in res]
    assert abs(slope(Ns, corr) - 1.0) <= 0.15
    assert corr[-1] <= 0.05 * res[-1]["corrected"].reference_max


@pytest.mark.parametrize("case", [NEURAL, LINEAR], ids=["neural", "linear"])
def test_midpoint_reconstructed_samples_converge(case):
    Ns = QUICK_NS
    res = sweep(case, MIDPOINT, Ns)
    for r in res:
        # stage-1 samples: G = O(h²), so G/h is O(h) while δL/δθ(t_n) is O(1): error ≈ max|δL/δθ|
        assert r["per_step"].max_error >= 0.8 * r["per_step"].reference_max
    corr = [r["corrected"].max_error for r in res]
    assert abs(slope(Ns, corr) - 1.0) <= 0.15
    smp = parameter_samples(MIDPOINT, 1.0, 16)
    est = C.erk_corrected_gradient(np.ones((smp.n_samples, 6)), smp)
    assert est.reconstructed.sum() == 16 and np.all(est.reconstructed == (smp.weights == 0))


@pytest.mark.slow
@pytest.mark.parametrize("method", [RALSTON, MIDPOINT, two_stage(0.6)], ids=lambda m: m.name)
def test_two_stage_full_range(method):
    res = sweep(NEURAL, method, FULL_NS)
    assert abs(slope(FULL_NS, [r["corrected"].max_error for r in res]) - 1.0) <= 0.15


# ----------------------------------------------------------------------------------------------------------------------
# controls and the general statement


@pytest.mark.parametrize("case", [NEURAL, LINEAR], ids=["neural", "linear"])
@pytest.mark.parametrize("method,layout", [(FORWARD_EULER, "stage"), (RK4, "step"), (HEUN, "stage")],
                         ids=["euler", "rk4-step", "heun-shared"])
def test_controls_converge_without_correction(case, method, layout):
    # one θ per step (or shared grid samples with weight 1): G/(h w) converges to δL/δθ without correction. Euler and
    # one-θ-per-step RK4 (the sample stands for [t_n, t_{n+1}) but is compared at t_n): first order. Heun with shared
    # grid samples: measured second order (each grid sample gets b₂ = ½ from the step before and b₁ = ½ from the step
    # after, a centred combination) — more than the "first order" of the general statement, reported as a finding.
    Ns = QUICK_NS
    res = sweep(case, method, Ns, layout=layout)
    expected = 2.0 if method is HEUN else 1.0
    assert abs(slope(Ns, [r["normalised"].max_error for r in res]) - expected) <= 0.15


@pytest.mark.parametrize("case", [NEURAL, LINEAR], ids=["neural", "linear"])
def test_rk4_stage_samples_oscillate_raw_but_not_normalised(case):
    Ns = QUICK_NS
    res = sweep(case, RK4, Ns)
    for r in res:
        # weights 1/3 (grid) and 2/3 (half steps): G/h alternates between ⅓ and ⅔ of δL/δθ
        assert r["per_step"].max_error >= 0.6 * r["per_step"].reference_max
        assert r["per_step"].alternating >= 0.1 * r["per_step"].reference_max
    normalised = [r["normalised"].max_error for r in res]
    assert slope(Ns, normalised) >= 0.85   # measured ≈ 3 (see the validation report)


@pytest.mark.parametrize("case", [NEURAL, LINEAR], ids=["neural", "linear"])
@pytest.mark.parametrize("method", [AB2, AB3], ids=["ab2", "ab3"])
def test_adams_bashforth_normalised_converges(case, method):
    # parasitic roots of ρ are 0: no persistent (−1)ⁿ mode in the adjoint, G/(h w) converges
    assert all(abs(r) < 1e-12 for r in method.parasitic_roots)
    Ns = QUICK_NS
    res = sweep(case, method, Ns, "matched")
    assert abs(slope(Ns, [r["normalised"].max_error for r in res]) - 1.0) <= 0.15
    alt = [r["normalised"].alternating for r in res]
    assert alt[-1] <= 0.25 * alt[0]


# ----------------------------------------------------------------------------------------------------------------------
# building blocks


def test_normalised_gradient_matches_discrete_adjoint_method():
    smp = parameter_samples(MIDPOINT, NEURAL.T, 9)
    adj = discrete_adjoint(NEURAL.field, MIDPOINT, NEURAL.x0, NEURAL.theta(smp.times), NEURAL.T, 9, NEURAL.loss)
    a = C.normalised_gradient(adj.grad_theta, smp).values
    b = adj.normalised_gradient()
    assert np.array_equal(np.isnan(a), np.isnan(b)) and np.allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=0)


def test_leapfrog_pairs_skip_starter_samples():
    smp = parameter_samples(LEAPFROG, 1.0, 10, "stage", "forward_euler")   # samples t_0..t_9, t_0 used by the starter
    G = np.arange(10.0)[:, None] * np.ones((1, 2))
    est = C.leapfrog_corrected_gradient(G, smp)
    assert np.allclose(est.times, (np.arange(1, 9) + 0.5) / 10)
    assert np.allclose(est.values[:, 0], (np.arange(1, 9) + np.arange(2, 10)) / (2 * 0.1))
    avg = C.leapfrog_corrected_gradient(G, smp, "average")
    assert np.allclose(avg.values, est.values / 2)


@settings(max_examples=30, deadline=None)
@given(q=st.floats(0.1, 5.0), s0=st.floats(-3, 3), s1=st.floats(-3, 3), m=st.integers(8, 64))
def test_alternating_component_recovers_amplitude(q, s0, s1, m):
    # g_n = s0 + s1 t_n + (−1)ⁿ q: the second difference kills the affine part exactly, so |q| is recovered to rounding
    t = np.linspace(0, 1, m)
    g = s0 + s1 * t + (-1.0) ** np.arange(m) * q
    assert np.allclose(C.alternating_component(g), q, rtol=1e-9, atol=1e-9 * (abs(s0) + abs(s1)))


def test_at_times_exact_on_affine_data_and_gradient_error_norms():
    est = C.GradientSamples(np.array([0.1, 0.3, 0.6]), np.array([[1.0], [3.0], [6.0]]), "lin", np.zeros(3, bool))
    out = C.at_times(est, [0.0, 0.2, 1.0])   # affine in t (10 t): interpolation and extrapolation are exact
    assert np.allclose(out.values[:, 0], [0.0, 2.0, 10.0]) and out.reconstructed.all()
    e = C.gradient_error(est, np.array([[0.0], [2.0], [6.0]]))   # errors 1, 1, 0 at t = 0.1, 0.3, 0.6
    assert e.max_error == 1.0 and e.worst_time == 0.1
    assert np.isclose(e.l2_error, np.sqrt(0.2 * 1.0 + 0.3 * 0.5))   # trapezoid of |e|² = 1, 1, 0


def test_observed_rates():
    assert np.allclose(C.observed_rates([32, 64, 128], [1.0, 0.5, 0.125]), [1.0, 2.0])


@pytest.mark.parametrize("bad,exc,word", [
    (lambda smp: C.normalised_gradient(np.ones((3, 6)), smp), ValueError, "grad_theta"),
    (lambda smp: C.normalised_gradient(np.full((smp.n_samples, 6), np.nan), smp), ValueError, "grad_theta"),
    (lambda smp: C.normalised_gradient(np.ones((smp.n_samples, 6)), "samples"), TypeError, "samples"),
    (lambda smp: C.leapfrog_corrected_gradient(np.ones((smp.n_samples, 6)), smp), ValueError, "leapfrog"),
    (lambda smp: C.gradient_error(C.per_step_gradient(np.ones((smp.n_samples, 6)), smp), np.ones((2, 6))),
     ValueError, "reference"),
])
def test_bad_input_names_the_argument(bad, exc, word):
    smp = parameter_samples(RALSTON, 1.0, 8)
    with pytest.raises(exc, match=word):
        bad(smp)


def test_leapfrog_correction_rejects_other_methods_and_variants():
    smp = parameter_samples(AB2, 1.0, 8, "stage", "matched")
    with pytest.raises(ValueError, match="leapfrog"):
        C.leapfrog_corrected_gradient(np.ones((smp.n_samples, 6)), smp)
    smp = parameter_samples(LEAPFROG, 1.0, 8, "stage", "forward_euler")
    with pytest.raises(ValueError, match="variant"):
        C.leapfrog_corrected_gradient(np.ones((smp.n_samples, 6)), smp, "mean")
