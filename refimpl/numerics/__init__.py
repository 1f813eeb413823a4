"""Elementary functions written for Numba so that loops of them vectorise, with derived, tested error bounds.

:mod:`refimpl.numerics.polynomial_exp` — a branch-free float64 exp (Cody–Waite reduction, degree-11 minimax
polynomial, explicit fused multiply-adds; ≤ 2 ulp), and the LLVM intrinsics it is built from;
:mod:`refimpl.numerics.exp_minimax` — the Remez fit that computes that polynomial's coefficients;
:mod:`refimpl.numerics.polynomial_tanh` — tanh and sech² on top of it (cancellation-free near 0 and where tanh
saturates).

This package imports only NumPy, Numba and llvmlite; the ODE and Wasserstein kernels import it, never the reverse.
"""
