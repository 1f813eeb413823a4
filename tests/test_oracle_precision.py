"""Tolerances of ``check``: the caller's --rtol/--atol, the float32 profile (docs/case-format.md § Precision) and the
float32 hint.

Independent route for the float32 profile: a PyTorch float32 implementation of the tanh Runge–Kutta and leapfrog
cases (the foreign code of examples/torch_leapfrog.py, run with float32 tensors) — real single-precision arithmetic,
not a rounding of the reference. Its results must fail under the case's float64 tolerances with the hint, pass under
``--precision float32``, and a modelling error computed the same way (float32, one stage time off) must still fail.
The expected profile rtol is recomputed here from the formula in the docs (10·N·s·2⁻²⁴·κ) and the problem
section.
"""
import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from refimpl import cli
from refimpl.oracle import compare, load_case, save_case
from refimpl.oracle.battery import battery

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tanh_cases():
    return [c for c in battery(quick=True) if c.metadata["kind"] == "ode" and c.problem["field"]["family"] == "tanh"
            and (c.problem["scheme"]["family"] == "runge_kutta" or c.problem["scheme"]["name"] == "leapfrog")]


@pytest.fixture(scope="module")
def case_dir(tanh_cases, tmp_path_factory):
    case = [c for c in tanh_cases if c.name == "tanh-d2__rk4__stage__N16"][0]
    return save_case(case, tmp_path_factory.mktemp("precision") / case.name)


def _expected_rtol32(case):
    p = case.problem
    stages = max(len(t["b"]) for t in (p["scheme"], p["starter"]) if t and t["family"] == "runge_kutta")
    depth = p["N"] * stages
    u32, u64 = 2.0 ** -24, 2.0 ** -53
    rounding = [d for k, d in case.metadata["provenance"]["route_checks"].items() if case.tolerances[k]["rtol"] <= 1e-9]
    kappa = max([1.0] + [d / (depth * u64) for d in rounding])
    return 10 * depth * u32 * kappa


def test_the_float32_profile_is_the_documented_formula(tanh_cases):
    for case in tanh_cases:
        own = {k: case.arrays[k] for k in case.references}
        report = compare(case, own, precision="float32")
        assert report.passed and report.profile.precision == "float32"
        floor = _expected_rtol32(case)
        for q in report.quantities:
            tol = case.tolerances[q.name]
            assert q.rtol == pytest.approx(max(tol["rtol"], floor), rel=1e-15)
            assert q.atol == pytest.approx(max(tol["atol"], q.rtol * np.max(np.abs(case.arrays[q.name]))), rel=1e-15)
            assert q.tolerance_source == "float32 profile"
        assert "10*" in report.table() and "2^-24" in report.table()  # the formula is printed with its numbers


def _torch_float32(example, case, shift_stage_time=False):
    """trajectory, loss, discrete gradient of ``case`` computed by the torch example in float32 throughout."""
    import torch
    p = case.problem
    stage_index = np.array(case.arrays["stage_index"])
    if shift_stage_time:  # a modelling error: every stage uses the parameter row of the next sample
        stage_index = np.minimum(stage_index + 1, case.theta.shape[0] - 1)
    x0 = torch.tensor(np.array(case.x0), dtype=torch.float32)
    theta = torch.tensor(np.array(case.theta), dtype=torch.float32, requires_grad=True)
    xs = example.torch_solve(p, x0, theta, stage_index, case.arrays.get("grid_index"))
    loss = 0.5 * torch.sum((xs[-1] - torch.tensor(p["loss"]["y"], dtype=torch.float32)) ** 2)
    loss.backward()
    out = {"trajectory": torch.stack(xs).detach().numpy(), "loss": loss.detach().numpy(),
           "discrete_gradient": theta.grad.numpy()}
    assert all(v.dtype == np.float32 for v in out.values())
    return out


def test_a_float32_implementation_fails_float64_with_the_hint_and_passes_the_float32_profile(tanh_cases):
    torch = pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("torch_leapfrog_example_f32", REPO / "examples" / "torch_leapfrog.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    torch.set_num_threads(1)
    assert len(tanh_cases) >= 18
    for case in tanh_cases:
        mine = _torch_float32(example, case)
        strict = compare(case, mine)
        assert not strict.passed and strict.hints and "--precision float32" in strict.hints[0], case.name
        assert "(float32)" in strict.hints[0]
        # the same numbers upcast to float64 before saving: the other hint
        upcast = compare(case, {k: v.astype(np.float64) for k, v in mine.items()})
        assert not upcast.passed and "look computed in float32" in upcast.hints[-1]
        assert "exactly a float32 number" in upcast.hints[-1]
        assert all(q.float32_exact for q in upcast.quantities)
        loose = compare(case, mine, precision="float32")
        assert loose.passed, (case.name, loose)
        # measured margin: the float32 error is at most 1/10 of the profile's tolerance (the docs say ~1/40)
        assert max(q.worst_ratio for q in loose.quantities) <= 0.1, (case.name, loose)
        wrong = compare(case, _torch_float32(example, case, shift_stage_time=True), precision="float32")
        if case.problem["layout"] == "stage":  # in the step layout all stages share a row: the shift moves steps
            assert not wrong["discrete_gradient"].passed or not wrong["loss"].passed, case.name


def test_user_tolerances_are_used_as_given_validated_and_marked(case_dir, tmp_path, capsys):
    case = load_case(case_dir)
    g = np.array(case.arrays["discrete_gradient"]) * (1 + 1e-6)
    path = tmp_path / "g.npz"
    np.savez(path, discrete_gradient=g)
    assert cli.main(["check", str(case_dir), str(path)]) == 1
    capsys.readouterr()
    assert cli.main(["check", str(case_dir), str(path), "--rtol", "1e-5"]) == 0
    row = [r for r in capsys.readouterr().out.splitlines() if r.startswith("PASS  discrete_gradient")][0]
    assert "rtol=1e-05" in row and "(user, looser than the case's)" in row
    assert cli.main(["check", str(case_dir), str(path), "--rtol", "0", "--atol", "1e-20"]) == 1
    row = [r for r in capsys.readouterr().out.splitlines() if "discrete_gradient" in r][0]
    assert "rtol=0 atol=1e-20 (user)" in row  # tighter than the case's: not marked looser
    for bad in (["--rtol", "-1"], ["--rtol", "nan"], ["--atol", "inf"], ["--rtol", "1.5"], ["--rtol", "x"],
                ["--precision", "float16"]):
        assert cli.main(["check", str(case_dir), str(path), *bad]) == 2, bad
        err = capsys.readouterr().err
        assert "Traceback" not in err and ("rtol" in err or "atol" in err or "precision" in err), err
    assert cli.main(["check", str(case_dir), str(path), "--json", "--precision", "float32"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"]["precision"] == "float32" and report["precision"]["depth"] == 64
    assert report["quantities"][0]["tolerance_source"] == "float32 profile"


def test_worst_entries_are_printed_in_full_precision(case_dir, tmp_path, capsys):
    case = load_case(case_dir)
    g = np.array(case.arrays["discrete_gradient"])
    g[3, 1] = np.nextafter(np.nextafter(g[3, 1], 1.0), 1.0)  # 2 ulps: invisible with 7 digits
    path = tmp_path / "g.npz"
    np.savez(path, discrete_gradient=g)
    cli.main(["check", str(case_dir), str(path), "--rtol", "0", "--atol", "1e-300"])
    row = [r for r in capsys.readouterr().out.splitlines() if "discrete_gradient" in r][0]
    assert repr(float(g[3, 1])) in row and repr(float(case.arrays["discrete_gradient"][3, 1])) in row
    assert repr(float(g[3, 1])) != repr(float(case.arrays["discrete_gradient"][3, 1]))


def test_huge_values_are_a_mismatch_without_an_overflow_warning(case_dir, tmp_path, capsys):
    path = tmp_path / "huge.npz"
    np.savez(path, loss=np.array(1e308), grad_x0=np.array([-1e308, 1e308]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli.main(["check", str(case_dir), str(path)]) == 1
    assert "Warning" not in capsys.readouterr().err
    run = subprocess.run([sys.executable, "-m", "refimpl", "check", str(case_dir), str(path)], capture_output=True,
                         text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert run.returncode == 1 and "Warning" not in run.stderr, run.stderr


def test_the_float32_hint_is_not_given_to_a_float64_modelling_error(case_dir):
    """A float64 gradient off by O(h) (a modelling error) fails without a float32 hint; one off by ~1e-7 relative
    (float32's precision, not representable in float32) gets it."""
    case = load_case(case_dir)
    g = np.array(case.arrays["discrete_gradient"])
    rng = np.random.default_rng(0)
    off = compare(case, {"discrete_gradient": g * (1 + 1e-2 * rng.standard_normal(g.shape))})
    assert not off.passed and not off.hints
    near = compare(case, {"discrete_gradient": g * (1 + 2e-7 * rng.standard_normal(g.shape))})
    assert not near.passed and not near["discrete_gradient"].float32_exact
    assert len(near.hints) == 1 and "--precision float32" in near.hints[0]
