"""refimpl.testing.assert_gradient_matches: passes an exact gradient from an independent route (complex step of the
discrete loss), fails a wrong one with the report naming the worst index, and accepts a case, a path or a problem."""
import numpy as np
import pytest

from refimpl.ad.checks import complex_step_gradient
from refimpl.ode.fields import TanhField
from refimpl.ode.integrators import discrete_loss
from refimpl.oracle import CaseFormatError, save_case
from refimpl.oracle.ode_cases import OdeProblem, Sinusoid, problem_objects
from refimpl.testing import assert_gradient_matches

PROBLEM = OdeProblem("tanh-leapfrog-small", TanhField(2), "leapfrog", (0.6, -0.4), (0.2, 0.5), 1.0, 8,
                     Sinusoid((0.5, -0.8, 0.9, 0.3, 0.1, -0.2), (0.3, 0.2, -0.4, 0.5, 0.2, 0.1), 2.0),
                     "stage", "forward_euler")


def complex_step_user_gradient(case):
    """A 'user' gradient by an independent route: complex step (eps = 1e-30, exact to rounding) of the discrete
    loss, through refimpl's integrator on complex128 — not the hand adjoint that made the reference."""
    o = problem_objects(case)
    return complex_step_gradient(lambda th: discrete_loss(o["field"], o["method"], o["x0"], th, o["T"], o["N"],
                                                          o["loss"], layout=o["layout"], starter=o["starter"]),
                                 o["theta"])


def test_an_exact_gradient_passes_from_a_problem_a_case_and_a_path(tmp_path):
    report = assert_gradient_matches(complex_step_user_gradient, PROBLEM)
    assert report.passed and report["discrete_gradient"].max_rel_error < 1e-13
    from refimpl.oracle.ode_cases import build_case
    case = build_case(PROBLEM)
    assert assert_gradient_matches(complex_step_user_gradient, case).passed
    save_case(case, tmp_path / "c")
    assert assert_gradient_matches(complex_step_user_gradient, tmp_path / "c").passed
    assert assert_gradient_matches(complex_step_user_gradient, str(tmp_path / "c")).passed


def test_a_gradient_that_forgets_the_starter_fails_with_the_worst_index():
    def forgot_starter(case):
        g = complex_step_user_gradient(case)
        g[0] = 0.0  # sample 0 is used only by the forward-Euler starter step
        return g
    with pytest.raises(AssertionError) as info:
        assert_gradient_matches(forgot_starter, PROBLEM)
    row = [line for line in str(info.value).splitlines() if "discrete_gradient" in line][0]
    assert row.startswith("FAIL") and "(0, " in row


def test_the_continuous_gradient_is_not_the_discrete_one():
    """[A]: a leapfrog 'gradient' G/(2h) compared as the continuous gradient fails (the phenomenon)."""
    def normalised(case):
        return {"continuous_gradient": complex_step_user_gradient(case) / (case.h * case.stage_weights[:, None])}
    with pytest.raises(AssertionError, match="continuous_gradient"):
        assert_gradient_matches(normalised, PROBLEM)


def test_several_quantities_and_tolerance_overrides():
    def float32_user(case):
        return {"discrete_gradient": complex_step_user_gradient(case).astype(np.float32),
                "loss": np.float32(case.arrays["loss"])}
    with pytest.raises(AssertionError):
        assert_gradient_matches(float32_user, PROBLEM)
    # float32 rounding: relative 6e-8 per entry, well inside 1e-6
    loose = {"discrete_gradient": {"rtol": 1e-6, "atol": 1e-7}, "loss": {"rtol": 1e-6}}
    assert assert_gradient_matches(float32_user, PROBLEM, tolerances=loose).passed


def test_bad_arguments():
    with pytest.raises(TypeError, match="their_grad_fn"):
        assert_gradient_matches(None, PROBLEM)
    with pytest.raises(TypeError, match="case_or_problem"):
        assert_gradient_matches(complex_step_user_gradient, 42)
    with pytest.raises(CaseFormatError, match="shape"):
        assert_gradient_matches(lambda case: np.zeros(3), PROBLEM)
    with pytest.raises(CaseFormatError, match="not reference quantities"):
        assert_gradient_matches(lambda case: {"gradient": np.zeros(3)}, PROBLEM)
