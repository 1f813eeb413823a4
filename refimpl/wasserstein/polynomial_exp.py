"""The polynomial exp of the pair kernels now lives in :mod:`refimpl.numerics.polynomial_exp` (shared with the ODE
kernels); this module re-exports it under its former name."""
from refimpl.numerics.polynomial_exp import (COEFFICIENTS, TAYLOR_DEGREE, ULP_BOUND, ExpErrorBound,  # noqa: F401
                                             _bits_float64, _float64_bits, _fma, _fma_exact,
                                             _polynomial_exp_loop, error_bound, polynomial_exp,
                                             polynomial_exp_array, polynomial_exp_reference)

__all__ = ["polynomial_exp", "polynomial_exp_array", "polynomial_exp_reference", "error_bound", "ExpErrorBound",
           "ULP_BOUND", "TAYLOR_DEGREE"]
