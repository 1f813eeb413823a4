"""``python -m refimpl audit LIBRARY …``: build the problem and the adapters from the command line, run the audits,
write the report; return the exit code (0 every audit recognised and consistent, 1 some gradient inconsistent or
unrecognised, 2 bad input — including a missing optional library)."""
from __future__ import annotations

import json
import sys
import tempfile

from refimpl.audit.adapters import CallableAdapter, MissingDependency, TapeAdapter
from refimpl.audit.audit import audit
from refimpl.audit.problem import AdaptiveProblem, FixedStepProblem
from refimpl.audit.report import write_report

__all__ = ["audit_command", "LIBRARIES", "PROBLEMS"]

LIBRARIES = ("torchdiffeq", "diffrax", "callable", "tape")
#: the problems a command-line audit can use: the oracle battery's base problems (d = 2, T = 1)
PROBLEMS = ("tanh-d2", "linear-d2", "twolayer-d2h3")
DEFAULT_METHODS = {"torchdiffeq": ("rk4",), "diffrax": ("Heun",), "callable": ("rk4",), "tape": ("rk4",)}


class BadInput(ValueError):
    """A command-line input the audit cannot use (exit 2)."""


def _problem_parts(name: str):
    from refimpl.problems.sinusoid_ode import oracle_base_problems
    for pname, field, x0, y, path in oracle_base_problems():
        if pname == name:
            return field, x0, y, path
    raise BadInput(f"--problem must be one of {PROBLEMS}, got {name!r}")


def _adapter(library: str, method: str, backsolve: bool, target: str | None):
    if library == "torchdiffeq":
        from refimpl.audit.torchdiffeq_adapter import TorchdiffeqAdapter
        return TorchdiffeqAdapter(method, adjoint=backsolve)
    if library == "diffrax":
        from refimpl.audit.diffrax_adapter import DiffraxAdapter
        return DiffraxAdapter(method, adjoint="backsolve" if backsolve else "recursive_checkpoint")
    if target is None or ":" not in target:
        raise BadInput(f"{library}: give the solver as --target package.module:function")
    from refimpl.audit.adapters import resolve_callable
    try:
        fn = resolve_callable({"target": target})
    except (ImportError, AttributeError) as e:
        raise BadInput(f"--target {target!r} cannot be imported: {e}") from e
    return (CallableAdapter if library == "callable" else TapeAdapter)(fn, name=target)


def _numbers(text: str | None, kind):
    if text is None:
        return None
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise BadInput(f"not a comma-separated list of numbers: {text!r}") from e


def audit_command(args) -> int:
    """Run the command (``args`` from the ``audit`` subparser of refimpl/cli.py)."""
    from refimpl.sweep import open_executor
    try:
        field, x0, y, path = _problem_parts(args.problem)
        methods = args.method or list(DEFAULT_METHODS[args.library])
        jobs = []
        for method in methods:
            adapter = _adapter(args.library, method, args.adjoint == "backsolve", args.target)
            hint = adapter.scheme_hint() if args.scheme is None else args.scheme
            if args.library in ("callable", "tape") and args.scheme is None:
                hint = method
            if isinstance(hint, str) and ":" in hint:   # an adaptive method: the library's convention
                family = _numbers(args.rtols, float)
                problem = AdaptiveProblem(field, x0, y, path.a, args.T, hint)
            else:
                family = _numbers(args.family, int)
                problem = FixedStepProblem(field, x0, y, path, args.T, args.layout, hint,
                                           "forward_euler" if hint in ("leapfrog", "ab2", "ab3", "ab4") else None)
            jobs.append((adapter, problem, family))
    except MissingDependency as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    evidences = []
    with tempfile.TemporaryDirectory(prefix="refimpl-audit-") as shared, \
            open_executor(args.workers, args.scheduler) as executor:
        for adapter, problem, family in jobs:
            try:
                ev = audit(adapter, problem, family, executor=executor, results=shared, resume=True)
            except ValueError as e:   # a family or executor the audit refuses
                print(f"error: {e}", file=sys.stderr)
                return 2
            evidences.append(ev)
            status = "recognised" if ev.recognised else "NOT recognised"
            if not args.json:
                print(f"{adapter.name}: {status}: {ev.verdict}")
    path = write_report(evidences, args.out, title=f"refimpl audit: {args.library}")
    code = 0 if all(ev.recognised for ev in evidences) else 1
    if args.json:
        print(json.dumps({"exit_code": code, "report": str(path),
                          "audits": [{"adapter": ev.adapter, "recognised": ev.recognised, "verdict": ev.verdict,
                                      "match": ev.match, "family": ev.family, "seconds": round(ev.seconds, 2)}
                                     for ev in evidences]}))
    else:
        print(f"report: {path}")
    return code
