r"""SciPy's DOP853 with an error norm that survives underflow.

SciPy (1.17, ``scipy/integrate/_ivp/rk.py``, ``DOP853._estimate_error_norm``) measures a step's error as

.. math:: \mathrm{err} = |h|\,\frac{\|e_5\|^2}{\sqrt{(\|e_5\|^2 + 0.01\,\|e_3\|^2)\,n}},
   \qquad e_k = \frac{K^\top E_k}{\mathrm{scale}},

(Hairer–Nørsett–Wanner I, §II.10, the 5th/3rd-order combination of DOP853). When every component of the solution's
derivative is tiny against the tolerance (a state of 1e-155 with atol = 1e-14), the squares :math:`\|e_5\|^2` and
:math:`0.01\|e_3\|^2` underflow: :math:`0/0` gives NaN, the step is rejected, and the solver shrinks h until it stops
with "Required step size is less than spacing between numbers" — on a problem whose true error is zero to 150 digits.

:class:`DOP853` here returns SciPy's value whenever that is finite (so every solve SciPy completes is bit-identical)
and otherwise evaluates the same expression after dividing :math:`e_5, e_3` by :math:`m = \max(|e_5|_\infty,
|e_3|_\infty)`: the expression is homogeneous of degree 1 in :math:`(e_5, e_3)`, so
:math:`\mathrm{err}(e) = m\,\mathrm{err}(e/m)` exactly in real arithmetic, and :math:`e/m` has entries in
:math:`[-1, 1]`, at least one of modulus 1, whose squares cannot all underflow. Pass the class as
``solve_ivp(..., method=DOP853)``.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import DOP853 as _ScipyDOP853

__all__ = ["DOP853"]


class DOP853(_ScipyDOP853):
    """:class:`scipy.integrate.DOP853` whose error norm does not turn into NaN by underflow (module docstring)."""

    def _estimate_error_norm(self, K, h, scale):
        with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
            value = super()._estimate_error_norm(K, h, scale)
        if np.isfinite(value):
            return value
        err5 = np.dot(K.T, self.E5) / scale
        err3 = np.dot(K.T, self.E3) / scale
        m = float(max(np.max(np.abs(err5)), np.max(np.abs(err3))))
        if not np.isfinite(m):
            return value  # a non-finite stage: SciPy's rejection path (the caller reports it)
        if m == 0.0:
            return 0.0
        err5, err3 = err5 / m, err3 / m
        err5_norm_2 = float(np.dot(err5, err5))
        denom = err5_norm_2 + 0.01 * float(np.dot(err3, err3))
        return float(np.abs(h)) * m * err5_norm_2 / np.sqrt(denom * len(scale))
