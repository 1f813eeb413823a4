"""Smoke test of the benchmark harness (benchmarks/run.py): the smallest profile runs, every route present agrees with
the hand adjoint / the numba kernel to the benchmark's tolerance (1e-10 relative), and the markdown renders. Peers
that are not installed (torch, jax) are reported as absent, which is allowed; the refimpl routes and HIPS autograd
(a test dependency) must be there."""
import pytest

from benchmarks import ode_gradients, particle_kernels
from benchmarks.results_markdown import render
from benchmarks.run import all_agree, collect


def test_smoke_profile_agrees_and_renders():
    res = collect("smoke", ("ode", "particles"), log=lambda msg: None)
    assert all_agree(res) == []
    for case in res["ode"]:
        for name in ("refimpl hand (numba)", "refimpl hand kernels", "refimpl tape", "HIPS autograd"):
            route = case["routes"][name]
            assert route["agrees"] and route["rel_err"] <= ode_gradients.AGREEMENT_TOL, (case["scheme"], name)
            assert route["timing"]["median_s"] > 0
    for case in res["particles"]:
        assert case["routes"]["numba"]["agrees"] and case["routes"]["numpy blocked"]["agrees"]
        # numba vs refimpl's own unblocked NumPy reference: same terms, rounding only
        assert case["numba_vs_unblocked_numpy_reference"] <= particle_kernels.AGREEMENT_TOL
    md = render(res)
    assert "### 1. Gradient" in md and "### 2. Particle kernels" in md


def test_disagreement_is_detected():
    """The agreement check is not vacuous: a route returning a perturbed gradient is flagged."""
    p = ode_gradients.make_problem("heun", 3, 5)
    good = ode_gradients.refimpl_hand(p)()
    ode_gradients.ROUTES["perturbed"] = lambda prob: (lambda: ode_gradients.refimpl_hand(prob)() * (1 + 1e-8))
    try:
        case = ode_gradients.run_case("heun", 3, 5, routes=["perturbed"], time_routes=False)
    finally:
        del ode_gradients.ROUTES["perturbed"]
    assert not case["routes"]["perturbed"]["agrees"]
    assert case["routes"]["perturbed"]["rel_err"] == pytest.approx(1e-8, rel=1e-3)
    assert good.shape == p.theta.shape
