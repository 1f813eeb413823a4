"""Tape-based reverse-mode automatic differentiation in pure NumPy (float64 and complex128).

>>> import numpy as np
>>> from refimpl.ad import grad, ops
>>> grad(lambda x: ops.sum(ops.sin(x) * x))(np.array([0.0, 1.0]))   # sin x + x cos x
array([0.        , 1.38177329])

Modules, each importing only NumPy and the ones before it: :mod:`~refimpl.ad.tape` (the engine),
:mod:`~refimpl.ad.ops` (primitives beside their VJPs; installs the operators of :class:`Variable`),
:mod:`~refimpl.ad.linalg` (linear-algebra primitives beside their VJPs),
:mod:`~refimpl.ad.numpy_dispatch` (NumPy's ``np.tanh(x)``, ``np.sum(x)``, ``W @ x`` … on Variables record the same
primitives; the supported table is docs/numpy-dispatch.md),
:mod:`~refimpl.ad.api` (grad, value_and_grad, vjp, jacobian, hvp), :mod:`~refimpl.ad.checks` (finite differences,
complex step, Taylor test, check_grad). The conventions are in docs/theory/autodiff.md.
"""
from refimpl.ad import ops  # first: installs the operators of Variable
from refimpl.ad import linalg  # linear algebra primitives (solve, inv, det, slogdet, cholesky, eigh, expm, ...)
from refimpl.ad import numpy_dispatch  # installs NumPy's dispatch protocols on Variable (np.tanh(x), np.sum(x), ...)
from refimpl.ad.api import grad, hvp, jacobian, value_and_grad, vjp
from refimpl.ad.checks import (GradCheckResult, TaylorResult, central_difference, check_grad, complex_step,
                               complex_step_gradient, fd_gradient, richardson_difference, taylor_test)
from refimpl.ad.tape import Variable, getvalue, primitive

__all__ = [
    "ops", "linalg", "numpy_dispatch", "grad", "value_and_grad", "vjp", "jacobian", "hvp", "Variable", "getvalue", "primitive",
    # refimpl.ad.checks
    "central_difference", "richardson_difference", "complex_step", "fd_gradient", "complex_step_gradient",
    "taylor_test", "check_grad", "TaylorResult", "GradCheckResult",
]
