r"""Tolerance profiles for ``check --precision``: the case's own tolerances (``float64``) or tolerances derived from
float32's unit roundoff and the case's condition (``float32``); the formula is in ``docs/case-format.md`` § Precision.

A computation in a floating-point format with unit roundoff :math:`u` that accumulates rounding over :math:`D`
dependent operations (the *rounding depth* of the case, :meth:`refimpl.oracle.case.CaseKind.rounding_depth`: for an ODE
case :math:`N s`, the :math:`N` steps of :math:`s` field evaluations that the forward and adjoint sweeps chain) and
amplifies it by :math:`\kappa` (the case's *condition*) differs from the exact result by about
:math:`D\,u\,\kappa` of the quantity's scale (the standard a-priori bound for recursive summation and explicit
one-step recursions, Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1 and §4.2). The
``float32`` profile of a reference quantity :math:`r` with case tolerances :math:`(\mathrm{rtol}_c, \mathrm{atol}_c)` is

.. math::

    \mathrm{rtol} = \min\big(\mathrm{MAX\_RTOL},\ \max(\mathrm{rtol}_c,\ C\,D\,u_{32}\,\kappa)\big), \qquad
    \mathrm{atol} = \max\big(\mathrm{atol}_c,\ \mathrm{rtol}\cdot\max_i|r_i|\big),

with :math:`u_{32} = 2^{-24}`, the safety factor :math:`C = 10` (:data:`SAFETY`), and the condition measured by the case
itself: :math:`\kappa = \max(1, \max_q d_q / (D\,u_{64}))`, :math:`d_q` the route checks of the case (the normwise
disagreement of two float64 routes to a rounding-level reference, ``provenance.route_checks``), :math:`u_{64} = 2^{-53}`
(:meth:`~refimpl.oracle.case.CaseKind.condition`). The absolute part is normwise (``rtol·max|r|``): float32 rounding of
an entry that is small by cancellation is relative to the terms that cancelled, not to the entry.

Calibration (``tests/test_oracle_precision.py``): a PyTorch float32 implementation of every tanh Runge–Kutta and
leapfrog case of the battery disagrees with the references by at most :math:`0.25\,D\,u_{32}` normwise, so the profile
leaves a factor 40 (:math:`C/0.25`); a modelling error computed the same way (every stage reading the next
parameter row) is off by at least 0.11 normwise on the stage-layout cases, over 3000 times the profile's rtol
(3.8e-5 for RK4 at N = 16).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.oracle.case import MAX_RTOL, Case

__all__ = ["PRECISIONS", "U32", "U64", "SAFETY", "PrecisionProfile", "precision_profile"]

#: the accepted ``--precision`` values
PRECISIONS = ("float64", "float32")
#: unit roundoffs (half the machine epsilon) of float32 and float64
U32 = 2.0 ** -24
U64 = 2.0 ** -53
#: the safety factor C of the float32 profile (module docstring: a factor 40 above the measured float32 error)
SAFETY = 10.0


@dataclass(frozen=True)
class PrecisionProfile:
    """How the tolerances of one case are derived for one precision (module docstring).

    ``precision`` "float64" (the case's tolerances) or "float32"; ``depth`` :math:`D`; ``condition`` :math:`\\kappa`;
    ``safety`` :math:`C`; ``unit_roundoff`` :math:`u`; ``rtol_floor`` :math:`\\min(\\mathrm{MAX\\_RTOL}, C D u \\kappa)`
    (0 for float64)."""

    precision: str
    depth: int
    condition: float
    safety: float
    unit_roundoff: float

    @property
    def rtol_floor(self) -> float:
        if self.precision == "float64":
            return 0.0
        return min(MAX_RTOL, self.safety * self.depth * self.unit_roundoff * self.condition)

    @property
    def capped(self) -> bool:
        """True when :math:`C D u \\kappa` exceeded MAX_RTOL (the check can then not separate rounding from errors)."""
        return self.precision != "float64" and self.safety * self.depth * self.unit_roundoff * self.condition > MAX_RTOL

    def tolerance(self, rtol: float, atol: float, reference) -> tuple:
        """(rtol, atol) of the profile for a quantity whose case tolerance is (``rtol``, ``atol``)."""
        if self.precision == "float64":
            return float(rtol), float(atol)
        ref = np.asarray(reference, dtype=np.float64)
        r = max(float(rtol), self.rtol_floor)
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        return r, max(float(atol), r * scale)

    def formula(self) -> str:
        """One line stating the formula and its numbers (printed in the report)."""
        if self.precision == "float64":
            return "float64: the case's tolerances"
        text = (f"float32 profile: rtol = max(rtol_case, C*D*u32*kappa) = max(rtol_case, {self.safety:g}*{self.depth}*"
                f"2^-24*{self.condition:.3g}) = max(rtol_case, {self.rtol_floor:.3g}); atol = max(atol_case, "
                f"rtol*max|ref|) (D = rounding depth of the case, kappa = its measured condition; "
                f"docs/case-format.md § Precision)")
        if self.capped:
            text += f"; capped at {MAX_RTOL:g}: this case is too deep or ill-conditioned to be checked in float32"
        return text

    def to_dict(self) -> dict:
        return {"precision": self.precision, "depth": self.depth, "condition": self.condition, "safety": self.safety,
                "unit_roundoff": self.unit_roundoff, "rtol_floor": self.rtol_floor, "formula": self.formula()}


def precision_profile(case: Case, precision: str = "float64") -> PrecisionProfile:
    """The :class:`PrecisionProfile` of ``case`` for ``precision`` ("float64" or "float32")."""
    if not isinstance(case, Case):
        raise TypeError(f"case must be a refimpl.oracle.Case, got {type(case).__name__}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    depth = int(case.kind.rounding_depth(case))
    if precision == "float64":
        return PrecisionProfile("float64", depth, 1.0, SAFETY, U64)
    return PrecisionProfile("float32", depth, float(case.kind.condition(case, depth, U64)), SAFETY, U32)
