"""The oracle face of refimpl (SPEC §5): cases as data, and comparing a foreign implementation's arrays with them.

``refimpl.oracle.cases``      build ODE cases (:class:`OdeProblem` → :class:`Case`) and the curated battery.
``refimpl.oracle.wasserstein_cases``  Wasserstein cases (particles, Gaussians) for the battery.
``refimpl.oracle.case_io``    load/save a case directory (``case.json`` + ``arrays.npz``, never unpickled).
``refimpl.oracle.compare``    :func:`compare` a foreign implementation's arrays with a case.
``refimpl.oracle.verify``     :func:`verify_case`: recompute a case's references from its own description.
``refimpl.oracle.json_schema`` the small JSON Schema validator the loader uses (``case_schema.json`` ships here).

CLI: ``python -m refimpl cases export DIR`` and ``python -m refimpl check CASE_DIR THEIRS.npz [--json]``.
"""
from refimpl.oracle.case_io import Case, CaseFormatError, load_case, save_case
from refimpl.oracle.compare import Comparison, compare  # rebinds the name ``compare`` from the module to the function

__all__ = ["Case", "CaseFormatError", "load_case", "save_case", "compare", "Comparison", "build_case", "OdeProblem",
           "Sinusoid", "export_battery", "verify_case"]


def __getattr__(name):  # the builders import the ODE stack (Numba, SciPy); load them on first use only
    if name in ("build_case", "OdeProblem", "Sinusoid", "export_battery"):
        from refimpl.oracle import cases
        return getattr(cases, name)
    if name == "verify_case":
        from refimpl.oracle.verify import verify_case
        return verify_case
    raise AttributeError(f"module 'refimpl.oracle' has no attribute {name!r}")
