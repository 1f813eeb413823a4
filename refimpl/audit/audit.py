r"""``audit(adapter, problem, family)``: run a refinement family through the sweep seam and say what the solver's
gradient is (docs/theory/audit.md).

The family is a list of sweep tasks (:mod:`refimpl.sweep`, docs/sweeps.md): one per member to run the solver
(:func:`solve_member`) and one per member to compute refimpl's references (:func:`refimpl.audit.references.
reference_member`), so the audit runs serially, on local processes or on a Dask cluster (``executor=``), and a
``results`` directory keeps each finished task for ``resume``. The outcomes are assembled into an
:class:`~refimpl.audit.verdict.Evidence` by :mod:`refimpl.audit.verdict`.
"""
from __future__ import annotations

import time

from refimpl.audit.adapters import Adapter, CallableAdapter, SolverOutput, adapter_from_spec
from refimpl.audit.problem import (DEFAULT_NS, DEFAULT_RTOLS, AdaptiveProblem, FixedStepProblem,
                                   problem_from_spec)
from refimpl.audit.verdict import Evidence, adaptive_evidence, fixed_step_evidence

__all__ = ["audit", "solve_member", "audit_tasks"]


def solve_member(adapter_spec: dict, problem_spec: dict, value) -> dict:
    """Sweep task: run the adapter on one member (N, or rtol) and return its output as plain arrays."""
    adapter = adapter_from_spec(adapter_spec)
    problem = problem_from_spec(problem_spec)
    member = problem.member(int(value) if problem.kind == "fixed" else float(value))
    out = adapter(member)
    if not isinstance(out, SolverOutput):
        raise TypeError(f"adapter {adapter.name!r} returned {type(out).__name__}, expected a SolverOutput")
    data = out.to_data()
    if problem.kind == "fixed":
        want = member.theta.shape
        if tuple(data["grad_theta"].shape) != tuple(want):
            raise ValueError(f"grad_theta has shape {data['grad_theta'].shape}; theta (the {problem.layout} layout "
                             f"of {problem.scheme}, N = {member.N}) has shape {want}")
    return data


def _family(problem, family) -> list:
    if family is None:
        return list(DEFAULT_NS if problem.kind == "fixed" else DEFAULT_RTOLS)
    values = list(family)
    if len(values) < 3:
        raise ValueError(f"family: an audit needs at least 3 members to measure orders, got {len(values)}")
    for v in values:
        problem.member(v)  # validates each value
    if problem.kind == "fixed":
        if values != sorted(set(values)):
            raise ValueError(f"family: N must increase strictly, got {values}")
    elif values != sorted(set(values), reverse=True):
        raise ValueError(f"family: rtol must decrease strictly, got {values}")
    return values


def audit_tasks(adapter: Adapter, problem, family) -> list:
    """The sweep's tasks: ``solve/<value>`` and ``reference/<value>`` for each member (JSON-able data only)."""
    from refimpl.sweep import Task
    from refimpl.audit.references import reference_spec
    a_spec, p_spec, r_spec = adapter.to_spec(), problem.to_spec(), reference_spec(problem)
    tag = problem.kind
    tasks = []
    for v in family:
        key = f"{v}" if tag == "fixed" else f"{v:g}"
        tasks.append(Task.make(f"audit/{adapter.name}/solve/{key}", "refimpl.audit.audit:solve_member",
                               a_spec, p_spec, v))
        tasks.append(Task.make(f"audit/reference/{key}", "refimpl.audit.references:reference_member", r_spec, v))
    return tasks


def audit(adapter, problem, family=None, *, executor=None, results=None, resume: bool = False,
          sys_path=()) -> Evidence:
    r"""Audit ``adapter`` (an :class:`~refimpl.audit.adapters.Adapter`, or a plain callable ``member ->
    SolverOutput``) on ``problem`` (:class:`~refimpl.audit.problem.FixedStepProblem` or
    :class:`~refimpl.audit.problem.AdaptiveProblem`) over ``family`` (N values, default 4…128, or rtol values,
    default 1e-3…1e-6). ``executor``: any executor of :mod:`refimpl.sweep` (default serial; a solver that lives only
    in this process — a closure — needs the serial one); ``results``/``resume`` as :func:`refimpl.sweep.run_sweep`.
    Returns the :class:`~refimpl.audit.verdict.Evidence` (never raises on a wrong gradient: read ``verdict``, or
    call ``raise_if_unrecognised()``). ``sys_path``: folders a worker process puts on ``sys.path`` to import your
    solver's module."""
    from refimpl.sweep import SerialExecutor, run_sweep
    if not isinstance(adapter, Adapter):
        if callable(adapter):
            adapter = CallableAdapter(adapter)
        else:
            raise TypeError(f"adapter must be an Adapter or a callable member -> SolverOutput, got "
                            f"{type(adapter).__name__}")
    if not isinstance(problem, (FixedStepProblem, AdaptiveProblem)):
        raise TypeError(f"problem must be a FixedStepProblem or an AdaptiveProblem, got {type(problem).__name__}")
    values = _family(problem, family)
    if adapter.local and executor is not None and not isinstance(executor, SerialExecutor):
        raise ValueError(f"executor: the solver {adapter.name!r} is a function of this process only (a closure or "
                         f"defined in __main__); run it with the serial executor or make it importable "
                         f"(module:function)")
    t0 = time.perf_counter()
    tasks = audit_tasks(adapter, problem, values)
    sweep = run_sweep(tasks, executor, results=results, resume=resume, sys_path=sys_path)
    outputs, references = [], []
    for k in range(len(values)):
        so, ro = sweep.outcomes[2 * k], sweep.outcomes[2 * k + 1]
        outputs.append(so.value if so.ok else f"{so.error}")
        if not ro.ok:
            raise RuntimeError(f"refimpl's reference for {values[k]} failed: {ro.error}\n{ro.traceback}")
        references.append(ro.value)
    build = fixed_step_evidence if problem.kind == "fixed" else adaptive_evidence
    evidence = build(problem, values, outputs, references)
    evidence.adapter = adapter.name
    evidence.seconds = time.perf_counter() - t0
    evidence.outputs, evidence.references = outputs, references  # the raw numbers behind the verdict
    return evidence
