r"""Re-derive a case from its own description: recompute every reference quantity from ``case.json``'s problem section
and the input arrays with the installed refimpl, and compare with the stored arrays (SPEC §5).

A case directory is data that may have travelled (or been edited); ``load_case`` checks its *form*, this checks its
*content*: that the references are what refimpl computes for the problem the metadata describes. The inputs are
checked first — ``sample_times``/``stage_weights``/index maps against :func:`refimpl.ode.samples.parameter_samples`,
``theta`` against the stored θ(t) (sinusoid or analytic case), ``particles0`` against the stored seed — and a
disagreement there is a :class:`~refimpl.oracle.case_io.CaseFormatError`. The references are then compared with the
case tolerances (:func:`refimpl.oracle.compare`); on the machine that exported the battery they agree exactly.

Recomputed: ODE — ``trajectory``, ``loss``, ``discrete_gradient``, ``grad_x0`` (hand adjoint),
``normalised_gradient``, ``corrected_gradient`` (:mod:`refimpl.ode.corrections`), ``continuous_gradient`` (DOP853 for
a sinusoid θ, the closed form for an analytic case); Wasserstein — every reference of
:mod:`refimpl.oracle.wasserstein_cases`. Not recomputable: a continuous gradient whose θ(t) was a user callable
(``theta_function.kind == "callable"``): it is reported in ``not_provided``.
"""
from __future__ import annotations

import numpy as np

from refimpl.oracle.case_io import Case, CaseFormatError, load_case
from refimpl.oracle.compare import Comparison, compare

__all__ = ["recompute", "verify_case"]


def _same(name: str, stored, derived, where: str) -> None:
    stored, derived = np.asarray(stored), np.asarray(derived)
    scale = max(1.0, float(np.max(np.abs(derived)))) if derived.size else 1.0
    if stored.shape != derived.shape or not np.allclose(stored, derived, rtol=0.0, atol=1e-14 * scale):
        raise CaseFormatError(f"{where}: input {name!r} is not what the problem section describes")


def _recompute_ode(case: Case) -> dict:
    from refimpl.problems import analytic_ode as analytic
    from refimpl.ode.adjoint_ode import continuous_adjoint
    from refimpl.ode.adjoint_recursions import discrete_adjoint
    from refimpl.ode.samples import parameter_samples
    from refimpl.oracle.cases import Sinusoid, corrected_estimate, problem_objects

    where = case.source or case.name
    o = problem_objects(case)
    smp = parameter_samples(o["method"], o["T"], o["N"], o["layout"], o["starter"])
    _same("sample_times", case.sample_times, smp.times, where)
    _same("stage_weights", case.stage_weights, smp.weights, where)
    if "stage_index" in case.arrays:
        _same("stage_index", case.arrays["stage_index"], smp.stage_index, where)
    if "grid_index" in case.arrays or smp.grid_index is not None:
        _same("grid_index", case.arrays.get("grid_index", np.zeros(0)),
              smp.grid_index if smp.grid_index is not None else np.zeros(0), where)
    tf = case.problem["theta_function"]
    theta_fn = None
    if tf["kind"] == "sinusoid":
        theta_fn = Sinusoid(tuple(tf["a"]), tuple(tf["b"]), tf["omega"])
    elif tf["kind"] == "analytic":
        matches = [c for c in analytic.analytic_cases() if c.name == tf.get("case")]
        if not matches:
            raise CaseFormatError(f"{where}: unknown analytic case {tf.get('case')!r}")
        theta_fn = matches[0]
    if theta_fn is not None:
        at = theta_fn.theta if tf["kind"] == "analytic" else theta_fn
        _same("theta", case.theta, np.array([at(float(t)) for t in smp.times]).reshape(case.theta.shape), where)
    da = discrete_adjoint(o["field"], o["method"], o["x0"], o["theta"], o["T"], o["N"], o["loss"], layout=o["layout"],
                          starter=o["starter"])
    out = {"trajectory": da.trajectory, "loss": np.asarray(float(da.loss)), "discrete_gradient": da.grad_theta,
           "grad_x0": da.grad_x0}
    if "normalised_gradient" in case.arrays:
        out["normalised_gradient"] = da.normalised_gradient()
    corrected, why_not = corrected_estimate(np.asarray(da.grad_theta, dtype=np.float64), smp)
    if "corrected_gradient" in case.arrays:
        if corrected is None:
            raise CaseFormatError(f"{where}: the case has a corrected gradient but {why_not}")
        _same("corrected_times", case.arrays["corrected_times"], corrected.times, where)
        out["corrected_gradient"] = corrected.values
    if "continuous_gradient" in case.arrays and theta_fn is not None:
        if tf["kind"] == "analytic":
            out["continuous_gradient"] = theta_fn.functional_gradient_exact(np.array(smp.times))
        else:
            out["continuous_gradient"] = continuous_adjoint(o["field"], theta_fn, o["x0"], o["T"], o["loss"],
                                                            times=np.array(smp.times), rtol=1e-12,
                                                            error_estimate=None).functional_gradient
    return {k: np.asarray(v, dtype=np.float64).reshape(case.arrays[k].shape) for k, v in out.items()}


def _recompute_wasserstein(case: Case) -> dict:
    from refimpl.oracle.wasserstein_cases import WassersteinProblem, build_wasserstein_case

    p = case.problem
    init = p["initial"]
    problem = WassersteinProblem(case.name, tuple(p["energy"]["terms"]), p["representation"], p["step"], p["h"],
                                 p["n_steps"], tuple(init["mean"]), tuple(tuple(r) for r in init["cov"]),
                                 init.get("n"), init.get("seed", 0), p.get("coordinate_seed", 0),
                                 p.get("step_scale", 1.0))
    fresh = build_wasserstein_case(problem)
    where = case.source or case.name
    for name in ("particles0", "mean0", "cov0", "coordinates", "step_sizes"):
        if name in case.arrays:
            _same(name, case.arrays[name], fresh.arrays[name], where)
    return {k: fresh.arrays[k] for k in fresh.references if k in case.arrays}


def recompute(case) -> dict:
    """The reference quantities of ``case`` (a :class:`Case` or a directory) recomputed by refimpl (module docstring);
    CaseFormatError if the inputs disagree with the problem section."""
    if not isinstance(case, Case):
        case = load_case(case)
    return _recompute_ode(case) if case.metadata["kind"] == "ode" else _recompute_wasserstein(case)


def verify_case(case) -> Comparison:
    """:func:`recompute` the references of ``case`` and :func:`~refimpl.oracle.compare` them with the stored ones;
    ``report.passed`` says whether the case is what refimpl computes for the problem it describes."""
    if not isinstance(case, Case):
        case = load_case(case)
    return compare(case, recompute(case))
