"""One backend vocabulary for every computation that has an accelerated kernel.

``backend`` is one of ``"auto"``, ``"numpy"``, ``"numba"``:

* ``"numpy"`` — the plain NumPy (or pure Python) reference path, which every kernel is tested against;
* ``"numba"`` — the compiled kernel; asking for it where no kernel applies is a ``ValueError`` that says why;
* ``"auto"`` (the default everywhere) — the kernel where it applies, the reference path otherwise.

The kernels are deterministic (fixed summation order, parallel only over independent outputs), so the choice changes
speed and, at most, rounding — never the formula.
"""
from __future__ import annotations

from refimpl.arguments import as_choice

__all__ = ["BACKENDS", "check_backend", "resolve_backend"]

BACKENDS = ("auto", "numpy", "numba")


def check_backend(backend, name: str = "backend") -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`; ``TypeError``/``ValueError`` naming ``name`` otherwise."""
    return as_choice(backend, BACKENDS, name)


def resolve_backend(backend, *, kernel_applies: bool, why_not: str = "", name: str = "backend") -> str:
    """Resolve ``backend`` to ``"numpy"`` or ``"numba"``.

    ``kernel_applies`` says whether a compiled kernel exists for this input; ``why_not`` completes the error message
    when ``"numba"`` is asked for and none does (e.g. "needs a field with a kernel descriptor and float64 arrays").
    """
    check_backend(backend, name)
    if backend == "numpy":
        return "numpy"
    if backend == "numba":
        if not kernel_applies:
            raise ValueError(f"{name}: 'numba' does not apply here" + (f" ({why_not})" if why_not else "")
                             + "; use 'numpy' or 'auto'")
        return "numba"
    return "numba" if kernel_applies else "numpy"
