"""Tape-based reverse-mode automatic differentiation in pure NumPy (float64 and complex128).

>>> import numpy as np
>>> from refimpl.ad import grad, ops
>>> grad(lambda x: ops.sum(ops.sin(x) * x))(np.array([0.0, 1.0]))   # sin x + x cos x
array([0.        , 1.38177329])

Modules: :mod:`~refimpl.ad.tape` (the engine), :mod:`~refimpl.ad.ops` (primitives beside their VJPs),
:mod:`~refimpl.ad.api` (grad, value_and_grad, vjp, jacobian, hvp), :mod:`~refimpl.ad.checks` (finite differences,
complex step, Taylor test, check_grad).
"""
from refimpl.ad import ops
from refimpl.ad.api import grad, hvp, jacobian, value_and_grad, vjp
from refimpl.ad.tape import Variable, getvalue, primitive

__all__ = ["ops", "grad", "value_and_grad", "vjp", "jacobian", "hvp", "Variable", "getvalue", "primitive"]

try:  # the checks module is public too; re-export its names when present
    from refimpl.ad.checks import *  # noqa: F401,F403
    from refimpl.ad import checks as _checks

    __all__ += list(getattr(_checks, "__all__", []))
except ImportError:  # pragma: no cover - during development only
    pass
