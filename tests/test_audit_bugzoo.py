"""The bug zoo: gradient implementations written the way people get them wrong (tests/audit_zoo.py), each audited
over a refinement family and flagged with its diagnosis — the verdict text is asserted — and the correct
implementations recognised. What each verdict rests on is derived in docs/theory/audit.md (rounding bound τ,
order rule, oscillation rule, localisation)."""
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import audit_zoo as zoo  # noqa: E402

from refimpl.audit import AdaptiveProblem, CallableAdapter, FixedStepProblem, TapeAdapter, audit  # noqa: E402
from refimpl.ode.fields import TanhField  # noqa: E402
from refimpl.problems.sinusoid_ode import oracle_base_problems  # noqa: E402

_, FIELD, X0, Y, PATH = oracle_base_problems()[0]   # tanh, d = 2, θ(t) = a + b sin 2t
NS = (4, 8, 16, 32, 64)
STEP = FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "step", "rk4")
STAGE = FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "stage", "rk4")
#: T = 0.7: h = 0.7/N is not a binary fraction, so a clock t += h drifts off n h
DRIFT = FixedStepProblem(FIELD, X0, Y, PATH, 0.7, "step", "rk4")
LEAP = FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "stage", "leapfrog", "forward_euler")
_TANH = TanhField(2)
ADAPTIVE = AdaptiveProblem(_TANH, [1.0, -0.5], [0.3, -0.1], _TANH.pack([[0.5, -1.0], [1.2, 0.3]], [0.1, -0.2]), 2.0,
                           "torchdiffeq:dopri5")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """One results folder for the module: the references of a problem are computed once and reused (resume)."""
    return tmp_path_factory.mktemp("audit-results")


def _audit(adapter, problem, results, family=NS):
    return audit(adapter, problem, family, results=results, resume=True)


# ---------------------------------------------------------------------------------------------------------------------
# correct implementations: recognised


def test_tape_rk4_is_recognised(results):
    ev = _audit(TapeAdapter(zoo.rk4_tape), STEP, results)
    assert ev.recognised, ev
    assert ev.verdict.startswith("equals the discrete adjoint of RK4, step layout, to "), ev
    assert re.search(r"converges to the continuous gradient at order (3\.[89]|4\.[01])", ev.verdict), ev


def test_plain_numpy_forward_euler_through_the_tape(results):
    problem = FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "step", "forward_euler")
    ev = _audit(TapeAdapter(zoo.euler_plain_numpy), problem, results)
    assert ev.recognised
    # the same primitives as refimpl's hand adjoint, in the same order: bit for bit or within τ
    assert ev.verdict.startswith("equals the discrete adjoint of forward Euler, step layout, to "), ev
    assert re.search(r"converges to the continuous gradient at order (0\.9|1\.0)", ev.verdict), ev


def test_rk38_said_to_be_rk4_is_named(results):
    ev = _audit(TapeAdapter(zoo.rk38_tape), STEP, results)
    assert ev.recognised
    assert "equals the discrete adjoint of RK38 (Kutta's 3/8 rule), step layout" in ev.verdict
    assert "(your 'rk4' is RK38" in ev.verdict


def test_hand_rk4_adjoint_is_recognised(results):
    ev = _audit(CallableAdapter(zoo.rk4_hand), STEP, results)
    assert ev.recognised and ev.match == "rk4", ev
    assert max(ev.errors["rk4"]) <= min(ev.bounds)


def test_leapfrog_is_recognised_with_its_parasitic_mode(results):
    ev = _audit(CallableAdapter(zoo.leapfrog_hand), LEAP, results)
    assert ev.recognised
    assert ev.verdict.startswith("equals the discrete adjoint of leapfrog (forward_euler starter), stage layout")
    assert "does not converge to the continuous gradient" in ev.verdict
    # [A]: the normalised leapfrog gradient oscillates around half the continuous one; the pair sum is first order
    assert re.search(r"oscillates with \(−1\)\^n amplitude 0\.\d\d·max at N = 64 — leapfrog parasitic mode; "
                     r"corrected gradient converges at order 1\.\d", ev.verdict), ev


def test_leapfrog_pair_sum_estimate_is_recognised(results):
    ev = _audit(CallableAdapter(zoo.leapfrog_pair_sum), LEAP, results)
    assert ev.recognised
    assert re.search(r"your estimate of dL/dtheta\(t\) equals the leapfrog pair sum .* converges to "
                     r"dL/dtheta at order 1\.\d", ev.verdict), ev


def test_exact_clock_is_recognised(results):
    ev = _audit(TapeAdapter(zoo.exact_clock), DRIFT, results)
    assert ev.recognised and ev.match == "rk4", ev


def test_torchdiffeq_rule_dopri_is_recognised(results):
    ev = _audit(CallableAdapter(zoo.dopri_starting_step_attached), ADAPTIVE, results, (1e-3, 1e-4, 1e-5))
    assert ev.recognised
    assert "this is torchdiffeq:dopri5's own gradient" in ev.verdict


# ---------------------------------------------------------------------------------------------------------------------
# the bugs: each flagged, with its diagnosis


def test_off_by_one_theta_sample_in_a_stage(results):
    ev = _audit(TapeAdapter(zoo.off_by_one_stage_sample), STAGE, results)
    assert not ev.recognised
    assert ev.verdict.startswith("matches nothing: at N = 4 the trajectory already differs from RK4's at step 1 "
                                 "(t = 0.25)"), ev


def test_wrong_stage_weight(results):
    ev = _audit(TapeAdapter(zoo.wrong_stage_weight), STEP, results)
    assert not ev.recognised
    assert "matches nothing: at N = 4 the trajectory already differs from RK4's at step 1" in ev.verdict
    # b = (1/6, 1/6, 1/2, 1/6) satisfies the order-2 conditions, not Σ b_i a_ij c_j = 1/6: order 2
    assert re.search(r"your x_N converges at order (1\.9|2\.0|2\.1)\d \(rk4 has order 4\)", ev.verdict), ev


def test_swapped_tableau_row(results):
    ev = _audit(TapeAdapter(zoo.swapped_tableau_row), STEP, results)
    assert not ev.recognised
    assert "matches nothing: at N = 4 the trajectory already differs from RK4's at step 1" in ev.verdict
    # X2 = x_n, X3 = x_n + h/2 k1: Σ b_i c_i = 1/3·0 + 1/3·1/2 + 1/6 = 1/3 ≠ 1/2, order 1
    assert re.search(r"your x_N converges at order (0\.9|1\.0|1\.1)\d \(rk4 has order 4\)", ev.verdict), ev


def test_time_grid_drifting_by_rounding(results):
    ev = _audit(TapeAdapter(zoo.drifting_clock), DRIFT, results)
    assert not ev.recognised
    # N = 4, h = 0.175: the clock reads 0.5249999… after three steps, so step 3 uses row 2
    assert ev.verdict.startswith("matches nothing: at N = 4 the trajectory already differs from RK4's at step 4 "
                                 "(t = 0.7)"), ev
    assert "agrees to 0.0e+0 at steps 0–3" in ev.verdict


def test_sign_error_in_one_vjp(results):
    ev = _audit(CallableAdapter(zoo.sign_error_in_one_vjp), STEP, results)
    assert not ev.recognised
    assert ev.verdict.startswith("wrong gradient: the trajectory and loss equal RK4's to "), ev
    assert "the gradient differs first at sample 0 (t = 0)" in ev.verdict
    assert "does not converge to the continuous gradient" in ev.verdict


def test_float32_cast_midway(results):
    ev = _audit(CallableAdapter(zoo.float32_midway), STEP, results)
    assert not ev.recognised
    assert ev.verdict.startswith("equals the discrete adjoint of RK4 only to float32 precision"), ev
    # the cast happens in step N/2 = 2 at N = 4: x_3 is the first state computed from the rounded one
    assert "the trajectory already differs from RK4's at step 3 (t = 0.75)" in ev.verdict


def test_missing_starter_term_in_the_multistep_adjoint(results):
    ev = _audit(CallableAdapter(zoo.leapfrog_missing_starter_term), LEAP, results)
    assert not ev.recognised
    assert ev.verdict.startswith("wrong gradient: the trajectory and loss equal leapfrog (forward_euler starter)'s")
    assert ("differs first at sample 0 (t = 0), at 1 of 4 samples" in ev.verdict
            and "only at the samples the starter uses" in ev.verdict), ev


def test_leapfrog_pair_average_instead_of_sum(results):
    ev = _audit(CallableAdapter(zoo.leapfrog_pair_average), LEAP, results)
    assert not ev.recognised
    assert re.search(r"equals the leapfrog pair average .* converges to 0\.(49|50|51) × dL/dtheta, not to dL/dtheta",
                     ev.verdict), ev
    assert "the leapfrog pair average instead of the sum" in ev.verdict


def test_adjoint_reusing_the_forward_grid_backwards(results):
    ev = _audit(CallableAdapter(zoo.backsolve_on_forward_grid), STEP, results)
    assert ev.verdict.startswith("is not the exact gradient of the discrete loss: the trajectory and loss equal "
                                 "RK4's"), ev
    assert "a discretised continuous (backsolve) adjoint" in ev.verdict
    assert re.search(r"converges to the continuous gradient at order (3\.[89]|4\.[01])", ev.verdict), ev


def test_detached_step_size_where_the_library_attaches_it(results):
    ev = _audit(CallableAdapter(zoo.dopri_step_size_detached), ADAPTIVE, results, (1e-3, 1e-4, 1e-5))
    assert not ev.recognised
    assert "it is not torchdiffeq:dopri5's own gradient" in ev.verdict
    assert "it detaches h0 where torchdiffeq attaches it" in ev.verdict
