r"""Re-derive a case from its own description: recompute every reference quantity from ``case.json``'s problem section
and the input arrays with the installed refimpl, and compare with the stored arrays (``docs/case-format.md``).

A case directory is data that may have travelled (or been edited); ``load_case`` checks its *form*, this checks its
*content*: that the references are what refimpl computes for the problem the metadata describes. Each case kind does
the recomputation (:meth:`refimpl.oracle.case.CaseKind.recompute`). It checks the inputs first — ODE:
``sample_times``/``stage_weights``/index maps against :func:`refimpl.ode.samples.parameter_samples`, ``theta`` against
the stored θ(t) (sinusoid or analytic case); Wasserstein: ``particles0`` against the stored seed, the RWCD
coordinates and step sizes — and a disagreement there is a :class:`~refimpl.oracle.safe_io.CaseFormatError`. The
references are then compared with the case tolerances (:func:`refimpl.oracle.compare`); on the machine that exported
the battery they agree exactly.

Recomputed: ODE — ``trajectory``, ``loss``, ``discrete_gradient``, ``grad_x0`` (hand adjoint),
``normalised_gradient``, ``corrected_gradient`` (:mod:`refimpl.ode.corrections`), ``continuous_gradient`` (DOP853 for
a sinusoid θ, the closed form for an analytic case); Wasserstein — every reference of
:mod:`refimpl.oracle.wasserstein_cases`. Not recomputable: a continuous gradient whose θ(t) was a user callable
(``theta_function.kind == "callable"``): it is reported in ``not_provided``.
"""
from __future__ import annotations

from refimpl.oracle.case import Case, load_case
from refimpl.oracle.comparison import Comparison, compare

__all__ = ["recompute", "verify_case"]


def recompute(case) -> dict:
    """The reference quantities of ``case`` (a :class:`Case` or a directory) recomputed by refimpl (module docstring);
    CaseFormatError if the inputs disagree with the problem section."""
    if not isinstance(case, Case):
        case = load_case(case)
    return case.kind.recompute(case)


def verify_case(case) -> Comparison:
    """:func:`recompute` the references of ``case`` and :func:`~refimpl.oracle.compare` them with the stored ones;
    ``report.passed`` says whether the case is what refimpl computes for the problem it describes."""
    if not isinstance(case, Case):
        case = load_case(case)
    return compare(case, recompute(case))
