r"""The logistic field :math:`f(x,\theta) = r x (1 - x/K)` (d = 1), whose flow is known in closed form
(:class:`refimpl.problems.analytic_ode.LogisticCase`)."""
from __future__ import annotations

import numpy as np

from refimpl.ode.fields.base import FIELDS, HandField, _raw

__all__ = ["LogisticField"]


@FIELDS.register
class LogisticField(HandField):
    r"""Logistic (Riccati/Bernoulli) field f(x, θ) = r·x·(1 − x/K), θ = (r, K), d = 1, p = 2.

    ∂ₓf = r(1 − 2x/K);  ∂f/∂r = x(1 − x/K);  ∂f/∂K = r x²/K².  K must be nonzero.
    """

    family = "logistic"
    formula = "f(x, theta) = r x (1 - x/K), theta = (r, K), d = 1"
    dim = 1
    n_params = 2

    def __repr__(self) -> str:
        return "LogisticField()"

    @classmethod
    def _from_spec(cls, spec: dict):
        return cls()

    def _check_K(self, theta) -> None:
        if _raw(theta)[1] == 0:
            raise ValueError("theta[1] (the capacity K) must be nonzero")

    def f(self, x, theta):
        self._check_f_args(x, theta)
        self._check_K(theta)
        r, K = theta[0], theta[1]
        return r * x * (1 - x / K)

    def dfdx(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        self._check_K(theta)
        r, K = theta
        return np.array([[r * (1 - 2 * x[0] / K)]])

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        self._check_K(theta)
        r, K = theta
        return np.array([[x[0] * (1 - x[0] / K), r * x[0] ** 2 / K**2]])

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        self._check_K(theta)
        return self.dfdx(x, theta).T @ v

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        self._check_K(theta)
        return self.dfdtheta(x, theta).T @ v
