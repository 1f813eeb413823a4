"""The diffrax worked example (examples/diffrax_crosscheck.py): from the case files alone, diffrax reproduces refimpl's
RK, leapfrog and constant-layout cases (``python -m refimpl check`` exit 0), ``BacksolveAdjoint`` matches the
piecewise-constant reference, and a float32 run fails the float64 tolerances with the float32 hint but passes
``--precision float32``. A subset of the battery, one case per recipe, keeps this test short; the example itself runs
every case. Skipped without jax/diffrax."""
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("JAX_ENABLE_X64", "1")
pytest.importorskip("jax", reason="jax is not installed (pip install jax diffrax, or the crosscheck extra)")
pytest.importorskip("diffrax", reason="diffrax is not installed (pip install jax diffrax, or the crosscheck extra)")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "diffrax_crosscheck.py"

#: one case per recipe of the example: a tableau in the stage layout (θ looked up by time), a tableau in the step
#: layout (per-step args; with BacksolveAdjoint), leapfrog with a matched starter in the constant layout (a starter
#: step, then diffrax's LeapfrogMidpoint seeded with (t_0, x_0); with BacksolveAdjoint) and an Adams–Bashforth case
#: (no diffrax solver: skipped)
SUBSET = [("rk4", None, "stage"), ("heun", None, "step"), ("leapfrog", "matched", "constant"),
          ("ab2", "forward_euler", "step")]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("diffrax_crosscheck_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclass-like equinox modules look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """The subset, built by refimpl and written as an export would write it (case.json + arrays.npz)."""
    from refimpl.oracle.case import save_case
    from refimpl.oracle.ode_cases import OdeProblem, Sinusoid, build_case
    from refimpl.problems.sinusoid_ode import oracle_base_problems

    root = tmp_path_factory.mktemp("diffrax_cases")
    base, field, x0, y, path = oracle_base_problems()[0]
    out = {}
    for method, starter, layout in SUBSET:
        theta = Sinusoid(path.a, (0.0,) * len(path.a), path.omega) if layout == "constant" else path
        label = method + {"matched": "-matched", "forward_euler": "-fe"}.get(starter, "")
        name = f"{base}__{label}__{layout}__N16"
        save_case(build_case(OdeProblem(name, field, method, x0, y, 1.0, 16, theta, layout, starter)), root / name)
        out[method, layout] = root / name
    return out


@pytest.fixture(scope="module")
def rows(example, cases, tmp_path_factory):
    work = tmp_path_factory.mktemp("diffrax_theirs")
    # BacksolveAdjoint on the step case only (its constant-layout recipe is the same solve with one row; the example
    # runs it on every step and constant case)
    return {key: example.run_case(path, work, backsolve=key == ("heun", "step")) for key, path in cases.items()}


def _quantities(report):
    return {q["name"]: q for q in report["quantities"]}


@pytest.mark.parametrize("key", [("rk4", "stage"), ("heun", "step"), ("leapfrog", "constant")])
def test_backprop_through_diffrax_is_the_discrete_reference(rows, key):
    row = rows[key]
    assert row["status"] == "reproduced", row
    rep = row["checks"]["RecursiveCheckpointAdjoint"]
    assert rep["exit_code"] == 0 and rep["status"] == "pass", rep
    q = _quantities(rep)
    assert {"trajectory", "loss", "discrete_gradient", "grad_x0", "normalised_gradient"} <= set(q)
    # same arithmetic in another order: rounding only, ~ N s eps = 16 * 4 * 2.2e-16 ~ 1.4e-14 normwise (measured
    # <= 1.5e-15); the case tolerance (1e-10) is far looser, so assert the rounding level itself
    for name in ("trajectory", "discrete_gradient", "grad_x0"):
        assert q[name]["max_rel_error"] <= 1.4e-14, (name, q[name])


def test_backsolve_adjoint_is_the_piecewise_constant_reference(rows):
    rep = rows["heun", "step"]["checks"]["BacksolveAdjoint"]
    assert rep["exit_code"] == 0, rep
    q = _quantities(rep)
    # both sides are adaptive solves at 1e-12 (diffrax Dopri5 forwards and backwards; refimpl DOP853 per step):
    # agreement to ~1e3 x 1e-12 normwise (measured 2e-12 on tanh RK4 step), far inside the case's 1e-7
    for name in ("piecewise_constant_continuous_gradient", "piecewise_constant_grad_x0"):
        assert q[name]["max_rel_error"] <= 1e-9, (name, q[name])


def test_adams_bashforth_is_skipped_with_the_reason(rows):
    row = rows["ab2", "step"]
    assert row["status"] == "skipped" and "Adams" in row["reason"], row


def test_the_step_layout_is_not_a_function_of_time(example, cases):
    """Control: the stage-layout recipe (θ looked up by time) applied to a step-layout case of Heun (c = 1 stage at
    t_{n+1}) reads row n+1 where the case uses row n — a different discretisation, which check rejects."""
    import jax.numpy as jnp

    meta, arrays = example.read_case(cases["heun", "step"])
    p = meta["problem"]
    f = example.make_field(p["field"])
    grid = jnp.asarray(np.arange(17) * (1.0 / 16))
    st = jnp.asarray(arrays["sample_times"])
    xs = example.solve_steps(example.erk_solver(p["scheme"]), f, grid, jnp.asarray(arrays["x0"]),
                             lambda t, a: a[example.nearest_row(st, t)], jnp.asarray(arrays["theta"]))
    off = np.max(np.abs(np.asarray(xs) - arrays["trajectory"])) / np.max(np.abs(arrays["trajectory"]))
    # an O(h) change of half the stages' parameters: measured ~1e-3 relative, 1e7 x the rounding level above
    assert off > 1e-6, off


def test_summary_counts(example, rows):
    text = example.summary(list(rows.values()))
    assert "4 ODE cases: 3 reproduced by diffrax" in text and "1 skipped" in text
    assert "BacksolveAdjoint vs piecewise_constant_continuous_gradient: 1/1 pass" in text


def test_float32_fails_float64_tolerances_with_the_hint_and_passes_the_float32_profile(example, cases, tmp_path):
    demo = example.float32_demo(cases["rk4", "stage"], tmp_path)
    assert demo["dtypes"] == ["float32"]
    strict, relaxed = demo["float64_tolerances"], demo["precision_float32"]
    assert strict["exit_code"] == 1, strict
    assert any("--precision float32" in h for h in strict["hints"]), strict  # the float32 hint, naming the option
    assert relaxed["exit_code"] == 0, relaxed
