"""ODE cases are self-contained: stage_times (and grid_times) say when each evaluation happens, theta_function writes
θ(t) out so that the formula text alone reproduces the samples, the constant layout has one row, and the
piecewise-constant references sit in the step and constant layouts only (docs/case-format.md)."""
import ast
import math
from fractions import Fraction

import numpy as np
import pytest

from refimpl.oracle.ode_cases import OdeProblem, Sinusoid, build_case
from refimpl.problems import analytic_ode as analytic
from refimpl.problems.sinusoid_ode import oracle_base_problems

BASE, FIELD, X0, Y, PATH = oracle_base_problems()[0]
CONSTANT_PATH = Sinusoid(PATH.a, (0.0,) * len(PATH.a), PATH.omega)
GROWTH = [c for c in analytic.analytic_cases() if c.name == "scalar-growth-constant"][0]
FORCING = [c for c in analytic.analytic_cases() if c.name == "scalar-linear-forcing"][0]
LINEAR_RAMP = [c for c in analytic.analytic_cases() if c.name == "linear-system-d2-ramp"][0]

SPECS = {  # name: (field, method, x0, y, T, theta source, layout, starter)
    "rk4-stage": (FIELD, "rk4", X0, Y, 1.0, PATH, "stage", None),
    "rk4-step": (FIELD, "rk4", X0, Y, 1.0, PATH, "step", None),
    "rk4-constant": (FIELD, "rk4", X0, Y, 1.0, CONSTANT_PATH, "constant", None),
    "leapfrog-matched-step": (FIELD, "leapfrog", X0, Y, 1.0, PATH, "step", "matched"),
    "ab3-fe-constant": (FIELD, "ab3", X0, Y, 1.0, CONSTANT_PATH, "constant", "forward_euler"),
    "forcing-heun-stage": (FORCING.field, "heun", FORCING.x0, FORCING.loss.y, FORCING.T, FORCING, "stage", None),
    "ramp-rk38-stage": (LINEAR_RAMP.field, "rk38", LINEAR_RAMP.x0, LINEAR_RAMP.loss.y, LINEAR_RAMP.T, LINEAR_RAMP,
                        "stage", None),
    "growth-rk4-constant": (GROWTH.field, "rk4", GROWTH.x0, GROWTH.loss.y, GROWTH.T, GROWTH, "constant", None),
}


@pytest.fixture(scope="module")
def cases():
    return {name: build_case(OdeProblem(name, *spec[:4], spec[4], 8, *spec[5:])) for name, spec in SPECS.items()}


def _tableaux(case):
    p = case.problem
    return p["starter"] if p["starter"] else p["scheme"]


@pytest.mark.parametrize("name", list(SPECS))
def test_stage_times_are_the_stage_times(cases, name):
    case = cases[name]
    tab = _tableaux(case)
    st, si = case.arrays["stage_times"], case.arrays["stage_index"]
    assert st.shape == si.shape
    # independent route: t_n + c_i h in exact rational arithmetic, rounded once; the case's float64 formula
    # (n + c_i)(T/N) is within 2 ulps of T
    T, N = Fraction(case.T), case.N
    exact = np.array([[float((n + Fraction(c)) * T / N) for c in tab["c"]] for n in range(st.shape[0])])
    np.testing.assert_allclose(st, exact, rtol=0, atol=2 * np.spacing(float(T)))
    if case.problem["layout"] == "stage":  # a function of time: the row of each stage is the sample at its time
        np.testing.assert_array_equal(case.sample_times[si], st)
    if "grid_index" in case.arrays:
        np.testing.assert_array_equal(case.arrays["grid_times"], np.arange(N) * (float(T) / N))


def _evaluate_formula(formula: str, t: float) -> np.ndarray:
    """θ(t) from the text of theta_function.formula alone (numbers, + - *, sin, cos, t)."""
    components = {}
    for clause in formula.split(": ", 1)[1].split("; "):
        lhs, rhs = clause.split(" = ")
        k = int(lhs[len("theta["):lhs.index("]")])
        tree = ast.parse(rhs, mode="eval")
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.USub, ast.Call, ast.Name,
                   ast.Load, ast.Constant)
        assert all(isinstance(node, allowed) for node in ast.walk(tree)), rhs
        components[k] = eval(compile(tree, "<formula>", "eval"), {"__builtins__": {}},
                             {"sin": math.sin, "cos": math.cos, "t": t})
    return np.array([components[k] for k in range(len(components))])


@pytest.mark.parametrize("name", list(SPECS))
def test_the_written_out_formula_reproduces_theta(cases, name):
    case = cases[name]
    tf = case.problem["theta_function"]
    assert "refimpl" not in tf["formula"]  # no pointer to refimpl's code: the case carries θ(t) itself
    for r, t in enumerate(case.sample_times):
        ref = case.theta[r]
        # the formula text and the samples are the same closed form evaluated in another order (and the sine/cosine
        # of math vs numpy): a few ulps of the component scale
        np.testing.assert_allclose(_evaluate_formula(tf["formula"], float(t)), ref, rtol=0,
                                   atol=8 * np.finfo(float).eps * max(1.0, np.max(np.abs(ref))))


@pytest.mark.parametrize("name", list(SPECS))
def test_layouts_and_their_references(cases, name):
    case = cases[name]
    layout = case.problem["layout"]
    has_piecewise = {"piecewise_constant_continuous_gradient", "piecewise_constant_grad_x0"} <= set(case.arrays)
    assert has_piecewise == (layout in ("step", "constant"))
    if layout == "constant":
        assert case.theta.shape[0] == 1 and "continuous_gradient" not in case.arrays
        assert np.all(case.arrays["stage_index"] == 0) and case.sample_times.tolist() == [0.0]
        # the one sample is used by every evaluation: the discrete gradient is the sum of all uses, weight the total
        assert case.stage_weights[0] > case.N - 1
    if layout == "step":  # case.json tells the reader how theta is used in this layout
        assert "not a function of time" in case.metadata["arrays"]["theta"]["description"].lower()


def test_constant_piecewise_reference_is_the_closed_form_dL_dtheta(cases):
    case = cases["growth-rk4-constant"]
    exact = GROWTH.integrated_gradient_exact()  # dL/dθ of the constant-θ problem, in closed form
    ref = case.arrays["piecewise_constant_continuous_gradient"][0]
    tol = case.tolerances["piecewise_constant_continuous_gradient"]
    # the reference must sit within 1/100 of its own tolerance of the closed form (the rule of the case format)
    assert np.all(np.abs(ref - exact) <= tol["atol"] / 100), (ref, exact, tol)
    # and the discrete gradient of RK4 (O(h^4) away, h = 0.15) is a different quantity
    assert np.max(np.abs(case.arrays["discrete_gradient"][0] - exact)) > 1e-9


def test_step_piecewise_reference_sums_to_the_constant_one():
    """A step-layout table whose rows are all equal is the constant problem: the per-step gradients sum to dL/dθ."""
    theta_row = np.asarray(PATH.a, dtype=np.float64)
    step = build_case(OdeProblem("equal-rows-step", FIELD, "heun", X0, Y, 1.0, 8, np.tile(theta_row, (8, 1)), "step"))
    const = build_case(OdeProblem("one-row-constant", FIELD, "heun", X0, Y, 1.0, 8, theta_row[None], "constant"))
    total = step.arrays["piecewise_constant_continuous_gradient"].sum(axis=0)
    ref = const.arrays["piecewise_constant_continuous_gradient"][0]
    # two DOP853 routes (8 pieces vs 1) at 1e-12, each entry within its own error estimate E (route_checks): the sum
    # of 8 rows is within 8 E_step, so the two differ by at most 8 E_step + E_const (plus the rounding of the sum)
    e_step, e_const = (c.metadata["provenance"]["route_checks"]["piecewise_constant_continuous_gradient"]
                       for c in (step, const))
    assert np.max(np.abs(total - ref)) <= 8 * e_step + e_const + 1e-15, (total, ref, e_step, e_const)
