"""``refimpl audit``: what a solver's gradient is, and where it goes wrong (docs/theory/audit.md).

``refimpl.audit.problem``     the problem handed to a solver and one member of a refinement family (data).
``refimpl.audit.adapters``    the adapter protocol (:class:`SolverOutput`), ``CallableAdapter``, ``TapeAdapter``,
                              the registry ``ADAPTERS``.
``refimpl.audit.torchdiffeq_adapter``, ``refimpl.audit.diffrax_adapter``  the library adapters (optional peers).
``refimpl.audit.references``  every reference refimpl has for one member (a sweep task).
``refimpl.audit.verdict``     from outputs and references to an :class:`Evidence` with its verdict.
``refimpl.audit.audit``       :func:`audit`: the family through the sweep seam.
``refimpl.audit.report``      the Markdown report (and plots) of an :class:`Evidence`.
"""
from refimpl.audit.adapters import (ADAPTERS, Adapter, CallableAdapter, MissingDependency, SolverOutput, TapeAdapter,
                                    adapter_from_spec)
from refimpl.audit.audit import audit
from refimpl.audit.problem import AdaptiveProblem, FixedStepProblem
from refimpl.audit.verdict import Evidence, rounding_bound

__all__ = ["audit", "Evidence", "rounding_bound", "FixedStepProblem", "AdaptiveProblem", "SolverOutput", "Adapter",
           "CallableAdapter", "TapeAdapter", "ADAPTERS", "adapter_from_spec", "MissingDependency"]
