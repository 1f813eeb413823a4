"""``assert_gradient_matches``: check your own gradient code against an oracle case inside your pytest suite.

Example (``test_my_solver.py``; the case folders come from ``python -m refimpl cases export cases/``)::

    import numpy as np
    from refimpl.testing import assert_gradient_matches

    def my_leapfrog_gradient(case):
        # your code: integrate x' = tanh(W(t) x + b(t)) from case.x0 with the parameter samples case.theta
        # (one row per sample time case.sample_times) on case.N steps of size case.h, backpropagate
        # L = 1/2 |x_N - y|^2 (y = case.problem["loss"]["y"]), and return dL/dtheta, shape case.theta.shape
        ...
        return grad

    def test_my_gradient_is_the_exact_discrete_gradient():
        assert_gradient_matches(my_leapfrog_gradient, "cases/tanh-d2__leapfrog-fe__stage__N16")

    def test_my_trajectory_too():  # a dict checks several quantities at once
        assert_gradient_matches(lambda case: {"trajectory": my_solve(case), "discrete_gradient": ...}, "cases/...")

On failure the ``AssertionError`` message is the per-quantity report of :func:`refimpl.oracle.compare` (max abs/rel
error, worst index, tolerance). On success the report is returned, e.g. to log the errors.
"""
from __future__ import annotations

import os
from typing import Mapping

from refimpl.oracle.case import Case, load_case
from refimpl.oracle.comparison import Comparison, compare

__all__ = ["assert_gradient_matches"]


def assert_gradient_matches(their_grad_fn, case_or_problem, *, quantity: str = "discrete_gradient",
                            tolerances: Mapping | None = None) -> Comparison:
    """Call ``their_grad_fn(case)`` and assert that its output matches the case's reference within the case tolerance.

    ``case_or_problem``: a :class:`refimpl.oracle.Case`, a case directory (str/path), or a
    :class:`refimpl.oracle.ode_cases.OdeProblem` (its references are computed first with
    :func:`refimpl.oracle.ode_cases.build_case`). ``their_grad_fn`` receives the :class:`~refimpl.oracle.Case` (inputs:
    ``x0``, ``theta``, ``sample_times``, ``stage_weights``, ``T``, ``N``, ``h``, ``problem``; the reference arrays in
    ``arrays``) and returns an array — compared as ``quantity`` (default ``"discrete_gradient"``, i.e.
    ∂L_h/∂θ_r of shape ``case.theta.shape``) — or a mapping quantity → array. ``tolerances`` overrides the case's
    per quantity (``{"discrete_gradient": {"rtol": 1e-6, "atol": 1e-8}}``, e.g. for float32 code).

    Raises ``AssertionError`` (with the report) on a mismatch; :class:`~refimpl.oracle.CaseFormatError` (a
    ``ValueError``) if the output has the wrong shape or names an unknown quantity; ``TypeError`` for bad arguments.
    """
    if not callable(their_grad_fn):
        raise TypeError(f"their_grad_fn must be callable, got {type(their_grad_fn).__name__}")
    if isinstance(case_or_problem, Case):
        case = case_or_problem
    elif isinstance(case_or_problem, (str, os.PathLike)):
        case = load_case(case_or_problem)
    else:
        from refimpl.oracle.ode_cases import OdeProblem, build_case  # the ODE stack, only when a problem is given

        if not isinstance(case_or_problem, OdeProblem):
            raise TypeError(f"case_or_problem must be a Case, a case directory or an OdeProblem, got "
                            f"{type(case_or_problem).__name__}")
        case = build_case(case_or_problem)
    out = their_grad_fn(case)
    theirs = dict(out) if isinstance(out, Mapping) else {quantity: out}
    report = compare(case, theirs, tolerances=tolerances)
    if not report.passed:
        raise AssertionError(f"the gradient does not match refimpl's reference\n{report.table()}")
    return report
