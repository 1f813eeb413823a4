"""Audits of torchdiffeq 0.2.5 (optional peer, skipped with the reason when absent) on CPU in float64, through
refimpl.audit's adapter. The verdicts asserted here are the README's table
("What your library's gradient is"); what each rests on is derived in docs/theory/audit.md."""
import re

import pytest

from audit_problems import FAMILY, RTOLS, adaptive as _adaptive, fixed as _fixed
from refimpl.audit import audit


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return tmp_path_factory.mktemp("audit-lib-results")


# ---------------------------------------------------------------------------------------------------------------------
# torchdiffeq


@pytest.fixture(scope="module")
def tdq():
    pytest.importorskip("torch", reason="the torchdiffeq audit needs torch (pip install torch torchdiffeq)")
    pytest.importorskip("torchdiffeq", reason="the torchdiffeq audit needs torchdiffeq")
    from refimpl.audit.torchdiffeq_adapter import TorchdiffeqAdapter
    return TorchdiffeqAdapter


@pytest.mark.parametrize("method,name,order", [("euler", "forward Euler", 1), ("midpoint", "midpoint", 2),
                                               ("rk4", "RK38 (Kutta's 3/8 rule)", 4)])
def test_torchdiffeq_odeint_fixed_grid_is_the_discrete_adjoint(tdq, results, method, name, order):
    adapter = tdq(method)
    ev = audit(adapter, _fixed("step", adapter.scheme_hint()), FAMILY, results=results, resume=True)
    assert ev.recognised, ev
    assert ev.verdict.startswith(f"equals the discrete adjoint of {name}, step layout, to "), ev
    # the step layout's gradient converges to the piecewise-constant continuous one at the scheme's order p
    assert re.search(rf"converges to the continuous gradient at order {order}\.|at order {order - 1}\.9", ev.verdict)
    if method == "rk4":
        assert "(your 'rk4' is RK38" in ev.verdict


def test_torchdiffeq_rk4_in_the_stage_layout_of_rk38(tdq, results):
    ev = audit(tdq("rk4"), _fixed("stage", "rk38"), FAMILY, results=results, resume=True)
    assert ev.recognised and ev.verdict.startswith("equals the discrete adjoint of RK38 (Kutta's 3/8 rule), stage "
                                                   "layout"), ev


def test_torchdiffeq_rk4_in_the_constant_layout(tdq, results):
    ev = audit(tdq("rk4"), _fixed("constant", "rk4"), FAMILY, results=results, resume=True)
    assert ev.recognised and ev.verdict.startswith("equals the discrete adjoint of RK38 (Kutta's 3/8 rule), constant "
                                                   "layout"), ev


def test_torchdiffeq_odeint_adjoint_on_the_grid_is_a_backsolve(tdq, results):
    ev = audit(tdq("rk4", adjoint=True), _fixed("step", "rk4"), FAMILY, results=results, resume=True)
    assert ev.recognised
    assert ev.verdict.startswith("is not the exact gradient of the discrete loss: the trajectory and loss equal RK38")
    assert "a discretised continuous (backsolve) adjoint" in ev.verdict
    assert re.search(r"converges to the continuous gradient at order (3\.9|4\.0)", ev.verdict), ev


def test_torchdiffeq_dopri5_odeint_is_its_convention(tdq, results):
    ev = audit(tdq("dopri5"), _adaptive("torchdiffeq:dopri5"), RTOLS, results=results, resume=True)
    assert ev.recognised
    assert ev.verdict.startswith("equals refimpl's (b) full discrete gradient, detached: h_next of the "
                                 "torchdiffeq:dopri5 convention"), ev
    assert "this is torchdiffeq:dopri5's own gradient" in ev.verdict
    assert "accepted grids equal the convention's (step counts equal" in ev.verdict


def test_torchdiffeq_dopri5_odeint_adjoint_converges_to_the_continuous_gradient(tdq, results):
    ev = audit(tdq("dopri5", adjoint=True), _adaptive("torchdiffeq:dopri5"), RTOLS, results=results, resume=True)
    assert ev.recognised
    assert re.search(r"is not a discrete gradient of the torchdiffeq:dopri5 solve .* it converges to the "
                     r"continuous gradient \(c\) as rtol\^", ev.verdict), ev
