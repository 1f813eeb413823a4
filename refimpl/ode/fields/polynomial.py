r"""A quadratic vector field built from ``+``, ``*`` and ``matmul`` only, so it runs exactly on Fractions."""
from __future__ import annotations

import numpy as np

from refimpl.ad import ops
from refimpl.arguments import as_positive_integer
from refimpl.ode.fields.base import FIELDS, HandField, _result_dtype

__all__ = ["PolynomialField"]


@FIELDS.register
class PolynomialField(HandField):
    r"""Quadratic field :math:`f(x,\theta) = c + B x + q\circ x\circ x`, :math:`\theta = (c, \mathrm{vec}\,B, q)`,
    :math:`p = d^2 + 2d`.

    :math:`\partial_x f = B + \mathrm{diag}(2 q\circ x)`; :math:`\partial_x f^{\mathsf T} v = B^{\mathsf T} v +
    2 q\circ x\circ v`; :math:`\partial_\theta f^{\mathsf T} v = (v, \mathrm{vec}(v x^{\mathsf T}), x\circ x\circ v)`.
    Only ``+``, ``*`` and ``matmul``: it runs exactly on ``object`` arrays of :class:`fractions.Fraction` (exact mode,
    docs/theory/discrete-adjoint.md) and on any commutative ring elements (e.g. dual numbers).
    """

    family = "polynomial"
    formula = "f_i(x, theta) = c_i + sum_j B_ij x_j + q_i x_i^2, theta = (c, B row-major, q)"

    def __init__(self, dim: int):
        self.dim = as_positive_integer(dim, "dim")
        self.n_params = self.dim * self.dim + 2 * self.dim

    def __repr__(self) -> str:
        return f"PolynomialField(dim={self.dim})"

    def pack(self, c, B, q) -> np.ndarray:
        d = self.dim
        c, B, q = np.asarray(c), np.asarray(B), np.asarray(q)
        for a, name, shp in ((c, "c", (d,)), (B, "B", (d, d)), (q, "q", (d,))):
            if a.shape != shp:
                raise ValueError(f"{name} must have shape {shp}, got {a.shape}")
        return np.concatenate([c, B.ravel(), q])

    def unpack(self, theta):
        d = self.dim
        return theta[:d], ops.reshape(theta[d: d + d * d], (d, d)), theta[d + d * d:]

    def f(self, x, theta):
        self._check_f_args(x, theta)
        c, B, q = self.unpack(theta)
        return c + ops.matmul(B, x) + q * x * x

    def dfdx(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        _, B, q = self.unpack(theta)
        J = np.array(B, dtype=_result_dtype(x, theta))
        for i in range(self.dim):
            J[i, i] = J[i, i] + 2 * q[i] * x[i]
        return J

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        d = self.dim
        J = np.zeros((d, self.n_params), dtype=_result_dtype(x, theta))
        for i in range(d):
            J[i, i] = 1
            J[i, d + i * d: d + (i + 1) * d] = x
            J[i, d + d * d + i] = x[i] * x[i]
        return J

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        _, B, q = self.unpack(theta)
        return B.T @ v + 2 * q * x * v

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return np.concatenate([v, np.outer(v, x).ravel(), x * x * v])


