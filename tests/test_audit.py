"""refimpl.audit: the problem and output data checks, the family rules, the sweep seam (serial and local processes
give the same evidence), a solver that raises, the command line (exit codes 0/1/2, the report) and the message for a
missing optional library. The verdicts themselves are tested on the bug zoo (test_audit_bugzoo.py) and on the
libraries (test_audit_torchdiffeq.py, test_audit_diffrax.py)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
import audit_zoo as zoo  # noqa: E402

from refimpl.audit import (CallableAdapter, FixedStepProblem, MissingDependency, SolverOutput, TapeAdapter,  # noqa: E402
                           audit, rounding_bound)
from refimpl.audit.adapters import adapter_from_spec  # noqa: E402
from refimpl.cli import main  # noqa: E402
from refimpl.problems.sinusoid_ode import oracle_base_problems  # noqa: E402
from refimpl.sweep import local_processes  # noqa: E402

_, FIELD, X0, Y, PATH = oracle_base_problems()[0]
STEP = FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "step", "rk4")
FAMILY = (4, 8, 16)


def test_problem_checks_name_the_argument():
    with pytest.raises(ValueError, match="layout must be one of"):
        FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "per-stage", "rk4")
    with pytest.raises(ValueError, match="x0 must have shape"):
        FixedStepProblem(FIELD, [1.0], Y, PATH, 1.0, "step", "rk4")
    with pytest.raises(ValueError, match="T must be a finite number > 0"):
        FixedStepProblem(FIELD, X0, Y, PATH, 0.0, "step", "rk4")
    with pytest.raises(ValueError, match="takes no starter"):
        FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "step", "rk4", "matched")
    with pytest.raises(ValueError, match="unknown scheme"):
        FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "step", "rk5")
    with pytest.raises(TypeError, match="theta must be a Sinusoid"):
        FixedStepProblem(FIELD, X0, Y, np.zeros(6), 1.0, "step", "rk4")


def test_member_hands_the_layouts_theta():
    m = STEP.member(8)
    assert m.theta.shape == (8, FIELD.n_params) and np.array_equal(m.theta[3], PATH(3 / 8))
    c = FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "constant", "rk4").member(8)
    assert c.theta.shape == (1, FIELD.n_params) and np.array_equal(c.theta[0], np.asarray(PATH.a))
    s = FixedStepProblem(FIELD, X0, Y, PATH, 1.0, "stage", "rk4").member(8)
    assert s.theta.shape == (17, FIELD.n_params)   # RK4 stage layout: t_0, t_1/2, t_1, …, t_8


def test_solver_output_checks():
    with pytest.raises(ValueError, match="grad_x0 must have shape"):
        SolverOutput(np.zeros((3, 2)), 0.0, np.zeros((2, 6)), np.zeros(3))
    with pytest.raises(TypeError, match="trajectory must be real numbers"):
        SolverOutput(np.zeros((3, 2), dtype=complex), 0.0, np.zeros((2, 6)), np.zeros(2))
    with pytest.raises(ValueError, match="estimate and estimate_times go together"):
        SolverOutput(np.zeros((3, 2)), 0.0, np.zeros((2, 6)), np.zeros(2), estimate=np.zeros((2, 6)))


def test_rounding_bound_is_the_stated_formula():
    eps = np.finfo(float).eps
    assert rounding_bound(64, 4, 6, 2.0) == 4 * 64 * 4 * (6 + 4) * eps * 2.0


def test_family_rules():
    adapter = TapeAdapter(zoo.rk4_tape)
    with pytest.raises(ValueError, match="at least 3 members"):
        audit(adapter, STEP, (4, 8))
    with pytest.raises(ValueError, match="N must increase strictly"):
        audit(adapter, STEP, (8, 4, 16))


def test_a_local_function_needs_the_serial_executor():
    adapter = CallableAdapter(lambda member: zoo.rk4_hand(member))
    assert adapter.local
    with local_processes(1) as executor, pytest.raises(ValueError, match="serial executor"):
        audit(adapter, STEP, FAMILY, executor=executor)


def test_adapter_spec_round_trip():
    spec = TapeAdapter(zoo.rk4_tape).to_spec()
    assert spec == {"family": "tape", "name": "rk4_tape", "target": "audit_zoo:rk4_tape"}
    assert adapter_from_spec(spec).forward is zoo.rk4_tape


def test_a_solver_that_raises_is_reported_not_raised():
    def broken(member):
        if member.N == 8:
            raise ValueError("no convergence")
        return zoo.rk4_hand(member)
    ev = audit(broken, STEP, FAMILY)
    assert not ev.recognised
    assert ev.verdict == "the solver failed at N = 8: ValueError: no convergence"


def test_wrong_gradient_shape_is_a_solver_failure():
    def flat(member):
        out = zoo.rk4_hand(member)
        return SolverOutput(out.trajectory, out.loss, out.grad_theta.ravel(), out.grad_x0)
    ev = audit(flat, STEP, FAMILY)
    assert "grad_theta has shape (24,); theta (the step layout of rk4, N = 4) has shape (4, 6)" in ev.verdict


@pytest.mark.slow
def test_local_processes_give_the_serial_evidence():
    """The sweep seam: the same tasks on two spawned processes give the same verdict and the same numbers."""
    adapter = TapeAdapter(zoo.rk4_tape)
    serial = audit(adapter, STEP, FAMILY)
    with local_processes(2) as executor:
        pooled = audit(adapter, STEP, FAMILY, executor=executor, sys_path=[str(TESTS)])
    assert pooled.verdict == serial.verdict
    assert pooled.errors == serial.errors


# ---------------------------------------------------------------------------------------------------------------------
# command line


def test_cli_recognised_exit_0_and_report(tmp_path, capsys):
    code = main(["audit", "tape", "--target", "audit_zoo:rk4_tape", "--family", "4,8,16", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "audit_zoo:rk4_tape: recognised: equals the discrete adjoint of RK4, step layout" in out
    report = (tmp_path / "audit.md").read_text()
    assert "**Verdict** (recognised): equals the discrete adjoint of RK4, step layout" in report
    assert "| N | rk4 |" in report


def test_cli_unrecognised_exit_1_json(tmp_path, capsys):
    code = main(["audit", "tape", "--target", "audit_zoo:wrong_stage_weight", "--family", "4,8,16", "--out",
                 str(tmp_path), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and summary["exit_code"] == 1
    assert summary["audits"][0]["verdict"].startswith("matches nothing: at N = 4 the trajectory already differs")


@pytest.mark.parametrize("argv,message", [
    (["audit", "tape", "--family", "4,8,16"], "--target package.module:function"),
    (["audit", "tape", "--target", "no_such_module:f"], "cannot be imported"),
    (["audit", "tape", "--target", "audit_zoo:rk4_tape", "--family", "4,8"], "at least 3 members"),
    (["audit", "tape", "--target", "audit_zoo:rk4_tape", "--family", "four"], "not a comma-separated list"),
    (["audit", "tape", "--target", "audit_zoo:rk4_tape", "--problem", "nope"], "--problem must be one of"),
])
def test_cli_bad_input_exit_2(tmp_path, capsys, argv, message):
    assert main(argv + ["--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_missing_library_is_a_clear_message(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "diffrax", None)   # import diffrax raises ImportError
    from refimpl.audit.diffrax_adapter import DiffraxAdapter
    with pytest.raises(MissingDependency, match="pip install jax diffrax"):
        DiffraxAdapter("Heun")
    assert main(["audit", "diffrax", "--method", "Heun", "--out", str(tmp_path)]) == 2
    assert "the diffrax adapter needs jax and diffrax" in capsys.readouterr().err


def test_indistinguishable_candidates_are_all_named():
    """On a linear autonomous field every four-stage fourth-order method is the same polynomial of hA (the Taylor
    polynomial of exp(hA) to degree 4), so RK4 and RK38 give one gradient: both are named, the claimed one first."""
    from refimpl.ode.fields import LinearField
    from refimpl.problems.sinusoid_ode import Sinusoid
    lin = LinearField(2)
    a = tuple(lin.pack([[-0.5, 1.0], [-1.0, -0.3]], [0.0, 0.0]))
    problem = FixedStepProblem(lin, [1.0, -0.5], [0.3, 0.1], Sinusoid(a, (0.0,) * 6, 2.0), 1.0, "constant", "rk4")
    ev = audit(TapeAdapter(zoo.rk4_tape), problem, FAMILY)
    assert ev.recognised
    assert ev.verdict.startswith("equals the discrete adjoint of RK4, constant layout, to ")
    assert "— and equally that of RK38 (Kutta's 3/8 rule) (indistinguishable on this problem)" in ev.verdict
