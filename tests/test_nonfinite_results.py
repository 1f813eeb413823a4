"""No silent non-finite results: an overflow inside a computation on finite arguments raises NonFiniteError saying what
became non-finite and where (step, time), the same on every backend — never a NaN/inf result, never a message that
blames an argument the caller did not pass."""
import warnings

import numpy as np
import pytest

from refimpl.ad import grad
from refimpl.arguments import NonFiniteError
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import LinearField, PolynomialField, QuadraticLoss
from refimpl.ode.integrators import discrete_loss, integrate
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import AB2, FORWARD_EULER, LEAPFROG, RK4

SCHEMES = [(FORWARD_EULER, None), (RK4, None), (LEAPFROG, "forward_euler"), (AB2, "forward_euler")]
IDS = ["fe", "rk4", "leapfrog", "ab2"]


def _theta(method, starter, N, row):
    smp = parameter_samples(method, 1.0, N, "stage", starter)
    return np.tile(np.asarray(row, dtype=float), (smp.n_samples, 1))


def _messages(field, method, starter, x0, theta, T, N, loss):
    """The error message of each route (numpy and numba hand adjoints, tape), with warnings turned into errors."""
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for backend in ("numpy", "numba") if field.kernel is not None else ("numpy",):
            with pytest.raises(NonFiniteError) as e:
                discrete_adjoint(field, method, x0, theta, T, N, loss, starter=starter, backend=backend)
            out[backend] = str(e.value)
        with pytest.raises(ValueError) as e:
            grad(lambda t: discrete_loss(field, method, x0, t, T, N, loss, starter=starter))(theta)
        out["tape"] = str(e.value)
    return out


@pytest.mark.parametrize("method,starter", SCHEMES, ids=IDS)
def test_loss_overflow_with_a_finite_trajectory_raises_on_every_backend(method, starter):
    """x_N ≈ 1e160 is finite, Φ(x_N) = |x_N|²/2 is not: the compiled path used to return loss = inf."""
    N = 4
    msgs = _messages(LinearField(1), method, starter, np.zeros(1), _theta(method, starter, N, [0.0, 1e160]), 1.0, N,
                     QuadraticLoss(np.zeros(1)))
    assert len(set(msgs.values())) == 1, msgs
    assert msgs["tape"].startswith("the loss became non-finite: Phi(x_N) = inf at the final state x_N (step N = 4")


@pytest.mark.parametrize("method,starter", SCHEMES, ids=IDS)
def test_unstable_step_reports_step_time_and_stability_bound(method, starter):
    """ẋ = −1000 x with h = 0.25: far outside every explicit scheme's stability region; the overflow is reported at the
    step where it happens, with the stability hint, by integrate and by every route of the adjoint."""
    N, T = 400, 100.0
    field, theta = LinearField(1), _theta(method, starter, N, [-1000.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NonFiniteError) as e:
            integrate(field, method, np.ones(1), theta, T, N, starter=starter)
    msg = str(e.value)
    assert msg.startswith("the solution became non-finite at step ")
    assert ", time t = " in msg and "h*lambda = -250" in msg and f"stability region of {method.name}" in msg
    assert "v has a non-finite" not in msg
    msgs = _messages(field, method, starter, np.ones(1), theta, T, N, QuadraticLoss(np.zeros(1)))
    assert set(msgs.values()) == {msg}, msgs


def test_blow_up_of_the_exact_solution_gets_no_stability_hint():
    """ẋ = x² from x0 = 1e3 blows up at t = 1e-3: the exact flow overflows, no step-size bound is to blame."""
    field = PolynomialField(1)
    smp = parameter_samples(RK4, 1.0, 10, "stage", None)
    theta = np.zeros((smp.n_samples, field.n_params))
    theta[:, -1] = 1.0
    with pytest.raises(NonFiniteError, match=r"^the solution became non-finite at step 2, time t = 0\.2: x_2 has a "
                                             r"non-finite entry at index 0 \(max \|x_1\| = 4\.77e\+28\)$"):
        integrate(field, RK4, np.array([1e3]), theta, 1.0, 10)


@pytest.mark.parametrize("method,starter", SCHEMES, ids=IDS)
def test_adjoint_overflow_with_finite_forward_pass(method, starter):
    """x_N and Φ(x_N) finite, but λ_n = (1 + hW)^{N−n} x_N overflows going backward: both hand backends name the same
    step; the tape says its gradient overflowed in the backward pass (it cannot know the step)."""
    N = 10
    W = 2.2e7 if method is RK4 else 1e26  # growth ≈ 1e25 per step (RK4: (hW)^4/24)
    msgs = _messages(LinearField(1), method, starter, np.array([1e-100]), _theta(method, starter, N, [W, 0.0]),
                     1.0, N, QuadraticLoss(np.zeros(1)))
    assert msgs["numpy"] == msgs["numba"], msgs
    assert msgs["numpy"].startswith("the adjoint became non-finite at step ")
    assert msgs["tape"].startswith("the gradient became non-finite in the backward pass")


# ----------------------------------------------------------------------------------------- Wasserstein flows
def test_particle_forward_euler_warns_above_the_bound_and_names_the_step():
    from refimpl.wasserstein.coordinate_descent import StepSizeWarning
    from refimpl.wasserstein.energies import QuadraticPotential
    from refimpl.wasserstein.particle_steps import forward_euler
    X = np.random.default_rng(0).standard_normal((5, 2))
    E = QuadraticPotential(100.0 * np.eye(2))
    with pytest.warns(StepSizeWarning, match=r"h\*L = 50 >= 2, above the forward Euler stability bound"):
        with pytest.raises(NonFiniteError, match=r"^the solution became non-finite at step 183, time t = 91\.5: "
                                                 r"X_183 has a non-finite entry at particle 0, coordinate 0 .*"
                                                 r"h\*L = 50 exceeds the stability bound h < 2/L"):
            forward_euler(E, X, 0.5, 400)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # below the bound: no warning
        assert len(forward_euler(E, X, 0.019, 3)) == 4


def test_gaussian_forward_euler_warns_above_the_bound_and_names_the_step():
    from refimpl.wasserstein.coordinate_descent import StepSizeWarning
    from refimpl.wasserstein.energies import QuadraticPotential
    from refimpl.wasserstein.gaussian_flows import gaussian_forward_euler
    from refimpl.wasserstein.measures import GaussianMeasure
    E, g = QuadraticPotential(100.0 * np.eye(2)), GaussianMeasure(np.ones(2), np.eye(2))
    with pytest.warns(StepSizeWarning, match=r"h\*L = 50 >= 2"):
        with pytest.raises(NonFiniteError, match=r"^the solution became non-finite at step 92, time t = 46: cov_92 "
                                                 r"has a non-finite entry at index \(0, 0\)"):
            gaussian_forward_euler(E, g, 0.5, 400)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(gaussian_forward_euler(E, g, 0.019, 3)) == 4


# ------------------------------------------------------------------- clear errors naming the argument (or exact)
@pytest.mark.parametrize("make,name", [
    (lambda: __import__("refimpl.wasserstein.energies", fromlist=["x"]).Entropy(1e-300), "bandwidth"),
    (lambda: __import__("refimpl.wasserstein.energies", fromlist=["x"]).GaussianInteraction(1.0, 1e-300), "width"),
    (lambda: __import__("refimpl.wasserstein.energies", fromlist=["x"]).GaussianInteraction(1.0, 1e300), "width"),
], ids=["entropy-bandwidth", "interaction-width", "interaction-width-large"])
def test_length_scales_whose_square_leaves_float64_are_refused(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must be in \[1e-150, 1e\+150\]"):
        make()


def test_huge_tableau_entry_names_the_argument():
    from refimpl.ode.multistep import LinearMultistep
    from refimpl.ode.tableau import ButcherTableau
    with pytest.raises(ValueError, match=r"^A\[1\]\[0\] = 1e\+308 is too large"):
        ButcherTableau("x", ((0, 0), (1e308, 0)), (0.5, 0.5))
    with pytest.raises(ValueError, match=r"^beta\[0\] = 1e\+100 is too large"):
        LinearMultistep("y", (-1.0, 1.0), (1e100,))


def test_jacobian_of_an_empty_output_is_the_empty_jacobian():
    from refimpl.ad import jacobian, ops
    J = jacobian(lambda x: x * 2)(np.zeros(0))
    assert J.shape == (0, 0) and J.dtype == np.float64
    J = jacobian(lambda x: ops.reshape(x, (0, 3)))(np.zeros((0, 3)))
    assert J.shape == (0, 3, 0, 3)
    assert jacobian(lambda x: ops.sum(x))(np.zeros(0)).shape == (0,)


def test_gaussian_jko_with_a_huge_step():
    """h = 1e300: for KL the step is computed without overflow (the closed form no longer squares h); where the
    answer leaves the float64 range the error names h, not a covariance the caller did not pass."""
    from refimpl.wasserstein.energies import KLToGaussian, QuadraticPotential
    from refimpl.wasserstein.gaussian_flows import gaussian_jko_step
    from refimpl.wasserstein.measures import GaussianMeasure
    g = GaussianMeasure(np.ones(2), 2.0 * np.eye(2))
    out = gaussian_jko_step(KLToGaussian(np.zeros(2), np.eye(2)), g, 1e300)
    np.testing.assert_allclose(out.cov, np.eye(2), rtol=1e-12)  # h → ∞: the minimiser of KL, the target
    np.testing.assert_allclose(out.mean, np.zeros(2), atol=1e-250)
    with pytest.raises(ValueError, match=r"^h = 1e\+300 is too large for this measure: the JKO step's covariance"):
        gaussian_jko_step(QuadraticPotential(np.eye(2)), g, 1e300)
    with pytest.raises(ValueError, match=r"^h = 1e\+300 is too large for this energy: I \+ h \* \(potential"):
        gaussian_jko_step(QuadraticPotential(1e10 * np.eye(2)), g, 1e300)


@pytest.mark.parametrize("value", [2 ** 53 + 1, np.array([0, 2 ** 60]), -(2 ** 62)], ids=["int", "array", "negative"])
def test_integers_above_2_53_are_not_rounded_silently(value):
    from refimpl.ad import grad, ops
    from refimpl.arguments import as_fixed_array, check_state_array
    with pytest.raises(ValueError, match=r"^`args\[0\]` (is an integer|holds integers) of magnitude above 2\*\*53"):
        grad(lambda x: ops.sum(x * 1.0))(value)
    arr = np.atleast_1d(value)
    with pytest.raises(ValueError, match=r"^x0 holds integers of magnitude above 2\*\*53"):
        check_state_array(arr, "x0", arr.shape)
    with pytest.raises(ValueError, match=r"^W2 holds integers of magnitude above 2\*\*53"):
        as_fixed_array(arr, "W2", 1)
    assert grad(lambda x: ops.sum(x * x))(np.array([2 ** 53, 3]))[0] == 2.0 ** 54  # exact up to 2**53
