"""The oracle face of refimpl: cases as data, and comparing a foreign implementation's arrays with them. The case
format is defined in ``docs/case-format.md``.

``refimpl.oracle.safe_io``     defensive reading/writing of JSON and ``.npz`` (never unpickled), the case schema.
``refimpl.oracle.case``        :class:`Case` (generic checks), ``load_case``/``save_case``, the case-kind registry
                               :data:`CASE_KINDS` and its interface :class:`CaseKind`.
``refimpl.oracle.ode_cases``   the ``"ode"`` kind: arrays, rules, builder (:class:`OdeProblem` → :func:`build_case`),
                               battery, recomputation.
``refimpl.oracle.wasserstein_cases``  the ``"wasserstein"`` kind (particles, Gaussians, RWCD), likewise.
``refimpl.oracle.adaptive_cases``  the ``"ode_adaptive"`` kind (adaptive Runge–Kutta; the grid is checked first).
``refimpl.oracle.comparison``  :func:`compare` a foreign implementation's arrays with a case.
``refimpl.oracle.verify``      :func:`verify_case`: recompute a case's references from its own description.
``refimpl.oracle.battery``     the battery of every kind and :func:`export_battery` (README = docs/case-format.md).
``refimpl.oracle.json_schema`` the small JSON Schema validator the loader uses (``case_schema.json`` ships here).

CLI: ``python -m refimpl cases export DIR`` and ``python -m refimpl check CASE_DIR THEIRS.npz [--json]``.
The kind modules import the ODE and Wasserstein stacks (Numba, SciPy) only when a case is built or recomputed.
"""
from refimpl.oracle.safe_io import CaseFormatError
from refimpl.oracle.case import CASE_KINDS, Case, CaseKind, load_case, save_case
from refimpl.oracle.comparison import Comparison, compare
from refimpl.oracle.ode_cases import OdeProblem, Sinusoid, build_case  # registers the "ode" kind
from refimpl.oracle.wasserstein_cases import WassersteinProblem, build_wasserstein_case  # the "wasserstein" kind
from refimpl.oracle.adaptive_cases import AdaptiveCaseProblem, build_adaptive_case, check_adaptive  # "ode_adaptive"
from refimpl.oracle.verify import verify_case
from refimpl.oracle.battery import export_battery

__all__ = ["Case", "CaseFormatError", "load_case", "save_case", "compare", "Comparison", "build_case", "OdeProblem",
           "Sinusoid", "export_battery", "verify_case", "CASE_KINDS", "CaseKind", "WassersteinProblem",
           "build_wasserstein_case", "AdaptiveCaseProblem", "build_adaptive_case", "check_adaptive"]
