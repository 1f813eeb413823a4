"""The torchdiffeq worked example (examples/torchdiffeq_crosscheck.py): ``odeint`` + ``backward()`` is refimpl's
discrete adjoint (layout "step"; torchdiffeq's "rk4" is the 3/8 rule), ``odeint_adjoint`` (adaptive, tight) is
refimpl's continuous gradient, and the two torchdiffeq gradients differ by O(h^p). Skipped without torch/torchdiffeq."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchdiffeq")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torchdiffeq_crosscheck.py"
NS = (8, 16, 32)


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("torchdiffeq_crosscheck_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.set_num_threads(1)
    return module


@pytest.fixture(scope="module")
def rows(example):
    return {(r["method"], r["N"]): r for r in example.comparison(NS)}


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_odeint_backprop_is_the_discrete_adjoint(rows, method):
    # same arithmetic in another evaluation order: rounding grows at most ~ N s eps = 32 * 4 * 2.2e-16 ~ 3e-14
    # relative (measured <= 5e-16); anything above that would be a different discretisation (see the control below).
    for N in NS:
        assert rows[method, N]["odeint-discrete"] <= 3e-14, rows[method, N]


def test_the_mapping_needs_perturb_and_the_three_eighths_rule(example):
    """Controls: the exact agreement is not automatic. Without ``perturb`` the c = 0 stage at t_n reads theta_{n-1};
    and torchdiffeq's "rk4" is not the classical RK4 tableau."""
    from torchdiffeq import odeint

    from refimpl.ode.adjoint_recursions import discrete_adjoint
    from refimpl.ode.fields import QuadraticLoss, TanhField
    from refimpl.ode.schemes import RK4

    theta = example.step_parameters(16)
    grid = example._grid(16)
    func = example.PerStepTanhField(theta, grid)
    xs = odeint(func, torch.tensor(example.X0), grid, method="euler")  # no perturb
    example._loss(xs[-1]).backward()
    off = example.relative_max(func.theta.grad.numpy(), example.discrete_gradient("euler", theta))
    assert off > 1e-3  # a shifted parameter assignment: O(1) relative change of single components
    classical = discrete_adjoint(TanhField(2), RK4, np.array(example.X0), theta, 1, 16,
                                 QuadraticLoss(np.array(example.Y)), layout="step").grad_theta
    bp = example.torchdiffeq_backprop_gradient("rk4", theta)
    assert example.relative_max(bp, classical) > 1e-9  # O(h^4) apart, far above rounding (3e-14)
    assert example.relative_max(bp, example.discrete_gradient("rk4", theta)) <= 3e-14


def test_odeint_adjoint_is_the_continuous_gradient(rows):
    # both sides solved adaptively at rtol = atol = 1e-12 (torchdiffeq dopri8, refimpl DOP853 step by step); global
    # error of a tolerance-controlled solve ~ a few x tol, accumulated over N <= 32 chained steps: 1e-10 = 100 x tol
    # (measured <= 4e-14)
    for r in rows.values():
        assert r["adjoint-continuous"] <= 1e-10, r


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_the_two_torchdiffeq_gradients_differ_at_the_scheme_order(rows, method, order):
    errs = np.array([rows[method, N]["adjoint-discrete"] for N in NS])
    # far above both the rounding level and the adaptive tolerance: a real O(h^p) difference, not noise
    assert np.all(errs > 1e3 * np.array([rows[method, N]["adjoint-continuous"] for N in NS]))
    # observed order between consecutive N (halving h): asymptotic O(h^p); measured 0.87..0.94 (euler),
    # 1.92..1.96 (midpoint), 3.92..3.98 (rk4); accept p +- 0.25 (pre-asymptotic at N = 8)
    rates = np.log2(errs[:-1] / errs[1:])
    assert np.all(np.abs(rates - order) <= 0.25), rates
    # and the odeint gradient is the discrete one, so odeint - odeint_adjoint is the same O(h^p) difference: the
    # numerators differ by <= |odeint - discrete| (<= 3e-14 relative), the normalisations max|adjoint| vs
    # max|discrete| by a factor 1 +- e (e = the relative difference itself), so the two numbers agree to 2 e^2 + 1e-13
    for N in NS:
        r = rows[method, N]
        e = r["adjoint-discrete"]
        assert abs(r["odeint-adjoint"] - e) <= 2 * e * e + 1e-13, r


def test_the_example_script_prints_the_table(example, capsys):
    assert example.main() == 0
    out = capsys.readouterr().out
    assert "|odeint_adjoint-continuous|" in out and "rk4" in out


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("rk4", 4)])
def test_fixed_grid_odeint_adjoint_is_neither_gradient(rows, method, order):
    # it re-integrates x and the adjoint backward with the scheme: O(h^p) from the discrete *and* the continuous
    # gradient (measured >= 5.6e-9 relative at N = 32 for rk4; the rounding level of this comparison is 3e-14)
    for N in NS:
        assert rows[method, N]["fixed_adjoint-discrete"] > 1e-10
        assert rows[method, N]["fixed_adjoint-continuous"] > 1e-10
    errs = np.array([rows[method, N]["fixed_adjoint-continuous"] for N in NS])
    rates = np.log2(errs[:-1] / errs[1:])  # measured 1.01..1.03, 1.97..1.98, 4.00..4.02; accept p +- 0.25
    assert np.all(np.abs(rates - order) <= 0.25), rates
