"""The PyTorch worked example (examples/torch_leapfrog.py): ``loss.backward()`` of a plain torch leapfrog / RK2 neural
ODE is refimpl's discrete adjoint, and — read as the gradient at time t — disagrees with the continuous gradient as
[A] predicts (leapfrog: O(1) at every N; its pair-sum correction: first order). Skipped when torch is absent."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from refimpl.oracle import compare, save_case  # noqa: E402
from refimpl.oracle.ode_cases import build_case  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch_leapfrog.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("torch_leapfrog_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.set_num_threads(1)
    return module


@pytest.fixture(scope="module")
def cases(example):
    return {(m, N): build_case(example.example_problem(m, N)) for m in ("leapfrog", "ralston") for N in (32, 128)}


@pytest.mark.parametrize("key", [("leapfrog", 32), ("leapfrog", 128), ("ralston", 32)])
def test_torch_backward_is_the_discrete_adjoint(example, cases, key):
    case = cases[key]
    report = compare(case, example.torch_gradient(case))
    assert report.passed
    # same arithmetic, another evaluation order: N s eps ~ 128 * 2 * 2.2e-16 ~ 6e-14 relative at most (measured ~4e-16)
    assert report["discrete_gradient"].max_rel_error <= 6e-14
    assert report["trajectory"].max_rel_error <= 6e-14


def test_leapfrog_gradient_disagrees_with_the_continuous_one_and_the_correction_converges(example, cases):
    e32 = example.continuous_errors(cases["leapfrog", 32],
                                    example.torch_gradient(cases["leapfrog", 32])["discrete_gradient"])
    e128 = example.continuous_errors(cases["leapfrog", 128],
                                     example.torch_gradient(cases["leapfrog", 128])["discrete_gradient"])
    # [A]: g_n = G_n/(2h) oscillates around half of deltaL/deltatheta: O(1) error, not decreasing with N
    assert e32["normalised"] > 0.3 and e128["normalised"] > 0.8 * e32["normalised"]
    # the pair sum (docs/theory/oscillations-and-corrections.md) is first order:
    # N x4 -> error /4 (accept observed order 0.7..1.4)
    order = np.log(e32["corrected"] / e128["corrected"]) / np.log(4)
    assert 0.7 <= order <= 1.4, (e32, e128)
    # the pair *average* stays wrong by O(1) (docs/theory/oscillations-and-corrections.md: the factor matters)
    assert e128["average"] > 0.3


def test_rk2_stage_samples_carry_the_stage_weight(example, cases):
    e32 = example.continuous_errors(cases["ralston", 32],
                                    example.torch_gradient(cases["ralston", 32])["discrete_gradient"])
    e128 = example.continuous_errors(cases["ralston", 128],
                                     example.torch_gradient(cases["ralston", 128])["discrete_gradient"])
    assert e32["per_step"] > 0.3 and e128["per_step"] > 0.8 * e32["per_step"]  # G/h: off by the factor b_i
    order = np.log(e32["corrected"] / e128["corrected"]) / np.log(4)  # G/(h b_i): first order
    assert 0.7 <= order <= 1.4, (e32, e128)


def test_the_example_script_checks_a_case_directory(example, cases, tmp_path, capsys):
    save_case(cases["leapfrog", 32], tmp_path / "case")
    assert example.main([str(tmp_path / "case")]) == 0
    assert "PASS" in capsys.readouterr().out
