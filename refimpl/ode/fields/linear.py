r"""Linear vector fields: the affine field :math:`Ax + b` with trainable :math:`(A, b)`, and two fields with a fixed
matrix (forcing :math:`Ax + \theta`, scaling :math:`\theta_0 Ax`) whose flows are known in closed form.
"""
from __future__ import annotations

import numpy as np

from refimpl.ad import ops
from refimpl.arguments import as_positive_integer
from refimpl.arguments import as_fixed_array
from refimpl.ode.fields.base import FIELDS, HandField, NumbaKernel, _fixed_list, _raw, _result_dtype

__all__ = ["LinearField", "LinearForcingField", "ScaledLinearField"]


def affine_n_params(d: int) -> int:
    """Parameter length :math:`d^2 + d` of :math:`\\theta = (\\mathrm{vec}\\,M, b)` (the affine and tanh fields)."""
    return d * d + d


@FIELDS.register
class LinearField(HandField):
    r"""Affine field :math:`f(x,\theta) = A x + b`, :math:`\theta = (\mathrm{vec}\,A, b)`, :math:`p = d^2 + d`.

    :math:`\partial_x f = A`; :math:`\partial f_i/\partial A_{kl} = \delta_{ik} x_l`, :math:`\partial_b f = I`; so
    :math:`\partial_x f^{\mathsf T} v = A^{\mathsf T} v` and :math:`\partial_\theta f^{\mathsf T} v =
    (\mathrm{vec}(v x^{\mathsf T}), v)`. Polynomial, so it also runs on Fraction ``object`` arrays.
    """

    family = "linear"
    formula = "f(x, theta) = A x + b, theta = (A row-major, b)"
    kernel = NumbaKernel("refimpl.ode._numba", "linear_f", "linear_vjp", affine_n_params, vjp_reads_fx=False,
                         vjp_x="linear_vjp_x", vjp_theta="affine_vjp_theta")

    def __init__(self, dim: int):
        self.dim = as_positive_integer(dim, "dim")
        self.n_params = self.dim * self.dim + self.dim

    def __repr__(self) -> str:
        return f"LinearField(dim={self.dim})"

    def pack(self, A, b) -> np.ndarray:
        A, b = np.asarray(A), np.asarray(b)
        if A.shape != (self.dim, self.dim):
            raise ValueError(f"A must have shape ({self.dim}, {self.dim}), got {A.shape}")
        if b.shape != (self.dim,):
            raise ValueError(f"b must have shape ({self.dim},), got {b.shape}")
        return np.concatenate([A.ravel(), b])

    def unpack(self, theta):
        d = self.dim
        return ops.reshape(theta[: d * d], (d, d)), theta[d * d:]

    def f(self, x, theta):
        self._check_f_args(x, theta)
        A, b = self.unpack(theta)
        return ops.matmul(A, x) + b

    def dfdx(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        return np.array(self.unpack(theta)[0])

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        d = self.dim
        J = np.zeros((d, self.n_params), dtype=_result_dtype(x, theta))
        for i in range(d):
            J[i, i * d:(i + 1) * d] = x
            J[i, d * d + i] = 1
        return J

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        A = self.unpack(theta)[0]
        return A.T @ v

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return np.concatenate([np.outer(v, x).ravel(), v])


class _FixedMatrixField(HandField):
    """Base of the fields with one fixed square matrix ``A`` (stored in a case as ``fixed.A``); a subclass sets
    :meth:`_params_for` (the parameter count for dimension d) and the formula."""

    def __init__(self, A):
        self.A = as_fixed_array(A, "A")
        if self.A.shape[0] != self.A.shape[1]:
            raise ValueError(f"A must be square, got shape {self.A.shape}")
        self.dim = self.A.shape[0]
        self.n_params = self._params_for(self.dim)

    @staticmethod
    def _params_for(dim: int) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"

    def _spec_extra(self) -> dict:
        return {"fixed": {"A": _fixed_list(self.A)}}

    @classmethod
    def _from_spec(cls, spec: dict):
        return cls(np.array(spec.get("fixed", {})["A"], dtype=np.float64))


@FIELDS.register
class LinearForcingField(_FixedMatrixField):
    r"""Fixed matrix, parameter = forcing: :math:`f(x,\theta) = A x + \theta`, :math:`p = d`.

    :math:`\partial_x f = A`, :math:`\partial_\theta f = I`. Exact solution for piecewise-known :math:`\theta(t)` by the
    variation-of-constants formula, which makes it the field for analytic cases.
    """

    family = "linear_forcing"
    formula = "f(x, theta) = A x + theta, A fixed"

    @staticmethod
    def _params_for(dim: int) -> int:
        return dim

    def f(self, x, theta):
        self._check_f_args(x, theta)
        return ops.matmul(self.A, x) + theta

    def dfdx(self, x, theta) -> np.ndarray:
        self._checked(x, theta)
        return np.array(self.A)

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        J = np.zeros((self.dim, self.dim), dtype=_result_dtype(x, theta, self.A))
        for i in range(self.dim):
            J[i, i] = 1
        return J

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return self.A.T @ v

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        self._checked(x, theta, v)
        return np.array(_raw(v))


@FIELDS.register
class ScaledLinearField(_FixedMatrixField):
    r"""Fixed matrix, scalar parameter: :math:`f(x,\theta) = \theta_0 A x`, :math:`p = 1`.

    :math:`\partial_x f = \theta_0 A`, :math:`\partial_\theta f = A x` (one column). For constant :math:`\theta_0 = s`,
    :math:`x(T) = e^{sTA}x_0` (``scipy.linalg.expm``); with :math:`d = 1` this is :math:`\dot x = \lambda x`.
    """

    family = "scaled_linear"
    formula = "f(x, theta) = theta_0 A x, A fixed"

    @staticmethod
    def _params_for(dim: int) -> int:
        return 1

    def f(self, x, theta):
        self._check_f_args(x, theta)
        return theta[0] * ops.matmul(self.A, x)

    def dfdx(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        return theta[0] * self.A

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        return (self.A @ x).reshape(self.dim, 1)

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return theta[0] * (self.A.T @ v)

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return np.array([np.dot(v, self.A @ x)])


