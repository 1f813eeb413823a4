"""diffrax reproduces the diffrax-convention adaptive cases from the case files alone, and ``refimpl check`` says so.

The user-side code is the worked example ``examples/diffrax_adaptive_crosscheck.py`` (it imports nothing from refimpl:
``json`` + ``numpy`` read the case, diffrax 0.7.2 solves it, ``python -m refimpl check`` judges it in a subprocess).
The cases are built by refimpl and written as an export writes them (``save_case``: case.json + arrays.npz):

* every diffrax-convention case of the battery (Dopri5 and Tsit5; PIDController's default I controller and the PI
  controller pcoeff = 0.4, icoeff = 0.3; dt0 given) passes — accepted grid, rejected count, trajectory, loss and the
  frozen-grid gradient (a), which is what ``RecursiveCheckpointAdjoint`` returns — with exit 0;
* a case in refimpl's own convention, solved as a diffrax user would (``dt0=None``, ``PIDController(rtol, atol)``),
  fails with the grid-mismatch report (exit 1, the first differing step, nothing else compared).

Skipped, with the reason, where JAX or diffrax is not installed.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("JAX_ENABLE_X64", "1")
pytest.importorskip("jax", reason="the diffrax cross-check needs jax (pip install jax diffrax)")
pytest.importorskip("diffrax", reason="the diffrax cross-check needs diffrax (pip install jax diffrax)")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "diffrax_adaptive_crosscheck.py"
LIBRARY_REFERENCES = {"accepted_grid", "rejected_count", "trajectory", "loss", "frozen_grid_gradient",
                      "frozen_grid_grad_x0"}


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("diffrax_adaptive_crosscheck_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # equinox modules defined in the example look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """The diffrax-convention cases of the full battery and one refimpl-convention case, saved as an export saves
    them; name -> folder."""
    from refimpl.oracle.adaptive_cases import AdaptiveCaseProblem, _battery_problem, build_adaptive_case, \
        diffrax_battery
    from refimpl.oracle.case import save_case

    root = tmp_path_factory.mktemp("adaptive_cases")
    field, theta, x0, y, T = _battery_problem()
    own = build_adaptive_case(AdaptiveCaseProblem("adaptive-tanh-d2__dormand_prince_54__I__rtol1e-06", field,
                                                  "dormand_prince_54", x0, theta, T, y, 1e-6, 1e-6))
    out = {}
    for case in [*diffrax_battery(), own]:
        save_case(case, root / case.name)
        out[case.name] = root / case.name
    return out


#: one XLA compilation per solver (~6 s Dopri5, ~10 s Tsit5 on one core): the Tsit5 cases run with -m slow, keeping
#: the default run of this file under ~30 s
SOLVERS = ["Dopri5", pytest.param("Tsit5", marks=pytest.mark.slow)]


def _diffrax_cases(cases, solver):
    return {name: path for name, path in cases.items() if f"diffrax-{solver}__" in name}


def test_the_battery_has_each_solver_and_controller(cases):
    names = "\n".join(cases)
    for part in ("diffrax-Dopri5__I", "diffrax-Tsit5__I", "diffrax-Dopri5__PI0.4-0.3", "diffrax-Tsit5__PI0.4-0.3"):
        assert part in names, (part, names)


def test_the_case_pair_is_diffrax_tableau_bit_for_bit(example, cases):
    import diffrax

    for name, path in cases.items():
        if "diffrax-" not in name:
            continue
        meta, _ = example.read_case(path)
        conv = meta["problem"]["convention"]
        assert conv["family"] == "diffrax" and conv["version"] == diffrax.__version__
        assert example.tableau_disagreement(meta["problem"]["pair"], getattr(diffrax, conv["solver"])()) == 0.0


@pytest.mark.parametrize("solver", SOLVERS)
def test_diffrax_reproduces_every_diffrax_convention_case(example, cases, solver, tmp_path):
    mine = _diffrax_cases(cases, solver)
    assert len(mine) >= 3
    for name, path in mine.items():
        row = example.run_case(path, tmp_path)
        rep = row["report"]
        assert row["status"] == "reproduced" and rep["exit_code"] == 0 and rep["status"] == "pass", (name, rep)
        q = {x["name"]: x for x in rep["quantities"]}
        assert set(q) == LIBRARY_REFERENCES, (name, sorted(q))
        assert q["rejected_count"]["max_abs_error"] == 0.0  # the same accept/reject sequence
        # the loss and the gradient at T are the same arithmetic in another order, on grids that agree to the
        # rounding of the error estimate (measured <= 4.3e-10 relative): N s <= 40 * 7 stage evaluations round to
        # ~ 280 eps ~ 6e-14, and a relative grid change delta moves them by ~ delta x (the global error, <= 1e-4),
        # so 1e-12 is the rounding level with room (measured <= 5.5e-15), far inside the case tolerance (>= 1e-10)
        for key in ("loss", "frozen_grid_gradient", "frozen_grid_grad_x0"):
            assert q[key]["max_rel_error"] <= 1e-12, (name, key, q[key])


@pytest.mark.parametrize("solver", SOLVERS)
def test_diffrax_gradient_is_not_the_full_discrete_adjoint(example, cases, solver, tmp_path):
    """Control: the gradient diffrax returns, submitted as the full discrete adjoint (b), fails where (b) and (a)
    differ beyond the case tolerance — the match with (a) is a statement, not a tolerance."""
    from refimpl.oracle.case import load_case

    failing = 0
    for name, path in _diffrax_cases(cases, solver).items():
        case = load_case(path)
        a, b = case.arrays["frozen_grid_gradient"], case.arrays["full_discrete_gradient"]
        tol = case.tolerances["full_discrete_gradient"]
        if not np.any(np.abs(a - b) > 10 * (tol["atol"] + tol["rtol"] * np.abs(b))):
            continue  # (b) - (a) within the tolerance here (every factor clipped, or a tight rtol): nothing to show
        meta, arrays = example.read_case(path)
        theirs = example.diffrax_quantities(meta, arrays)
        np.savez(tmp_path / "b.npz", full_discrete_gradient=theirs["frozen_grid_gradient"])
        rep = example.refimpl_check(path, tmp_path / "b.npz")
        assert rep["exit_code"] == 1 and not rep["quantities"][0]["passed"], (name, rep)
        failing += 1
    assert failing >= 2  # measured: 3 of the 4 Dopri5 cases, 2 of the 3 Tsit5 cases


def test_refimpl_convention_with_diffrax_defaults_is_a_grid_mismatch(example, cases, tmp_path):
    name = "adaptive-tanh-d2__dormand_prince_54__I__rtol1e-06"
    row = example.run_case(cases[name], tmp_path, defaults=True)
    rep = row["report"]
    assert row["status"] == "mismatch" and rep["exit_code"] == 1, rep
    # the grid is compared first and nothing else: diffrax's first step is its dt0=None value 0.01, refimpl's the HNW
    # starting step (0.0517 here), so the grids part at step 1
    assert rep["failure"] == "accepted_grid" and rep["step"] == 1 and rep["theirs"] == 0.01, rep
    assert "quantities" not in rep
    text = subprocess.run([sys.executable, "-m", "refimpl", "check", str(cases[name]),
                           str(tmp_path / f"{name}.defaults.npz")], capture_output=True, text=True)
    assert text.returncode == 1 and "accepted grid differs" in text.stdout and "at step 1" in text.stdout, text.stdout


def test_cases_without_a_diffrax_convention_are_skipped_with_the_reason(example, cases, tmp_path):
    row = example.run_case(cases["adaptive-tanh-d2__dormand_prince_54__I__rtol1e-06"], tmp_path)
    assert row["status"] == "skipped" and "not a diffrax-convention case" in row["reason"]
    meta, _ = example.read_case(cases["adaptive-tanh-d2__dormand_prince_54__I__rtol1e-06"])
    assert meta["problem"]["convention"] is None and meta["problem"]["pair"]["name"] == "dormand_prince_54"


@pytest.mark.slow
def test_the_documented_diffrax_recipe_passes_check(cases, tmp_path):
    """The Python block of docs/case-format.md § "Map your solver: diffrax" (adaptive section), run as printed on a
    PI case (its own XLA compilation, ~6 s: with -m slow), writes a theirs.npz that ``refimpl check`` passes."""

    doc = (Path(__file__).resolve().parents[1] / "docs" / "case-format.md").read_text(encoding="utf-8")
    section = doc.split("### Map your solver: diffrax\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    case = cases["adaptive-tanh-d2__diffrax-Dopri5__PI0.4-0.3__rtol1e-06__dt0-0.5"]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(block, "case-format.md", "exec"), {"CASE": case})
    finally:
        os.chdir(cwd)
    r = subprocess.run([sys.executable, "-m", "refimpl", "check", str(case), str(tmp_path / "theirs.npz"), "--json"],
                       capture_output=True, text=True)
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and {q["name"] for q in rep["quantities"]} == LIBRARY_REFERENCES, rep
