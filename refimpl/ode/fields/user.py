r"""A user's vector field: any taped function ``f(x, theta)``, its Jacobians and VJPs by the tape."""
from __future__ import annotations

from typing import Callable

import numpy as np

from refimpl.arguments import as_positive_integer
from refimpl.ode.fields.base import HandField, _shape

__all__ = ["UserField"]


class UserField(HandField):
    r"""A user's taped function ``f(x, theta)`` (written with :mod:`refimpl.ad.ops`), Jacobians by the tape.

    ``dfdx``/``dfdtheta`` are :func:`refimpl.ad.jacobian`, the VJPs :func:`refimpl.ad.vjp`; so a discrete adjoint on a
    ``UserField`` is only as trustworthy as the tape (the built-in fields have hand-written derivatives instead).
    """

    def __init__(self, f: Callable, dim: int, n_params: int, name: str = "user"):
        if not callable(f):
            raise TypeError(f"f must be callable, got {type(f).__name__}")
        self._f = f
        self.dim = as_positive_integer(dim, "dim")
        self.n_params = as_positive_integer(n_params, "n_params")
        self.name = str(name)

    def __repr__(self) -> str:
        return f"UserField({self.name!r}, dim={self.dim}, n_params={self.n_params})"

    def f(self, x, theta):
        self._check_f_args(x, theta)
        out = self._f(x, theta)
        if _shape(out) != (self.dim,):
            raise ValueError(f"the user's f returned shape {_shape(out)}, expected ({self.dim},)")
        return out

    def dfdx(self, x, theta) -> np.ndarray:
        from refimpl.ad import jacobian

        x, theta = self._checked(x, theta)
        return np.asarray(jacobian(lambda xx: self._f(xx, theta))(x))

    def dfdtheta(self, x, theta) -> np.ndarray:
        from refimpl.ad import jacobian

        x, theta = self._checked(x, theta)
        return np.asarray(jacobian(lambda tt: self._f(x, tt))(theta))

    def vjp_x(self, x, theta, v) -> np.ndarray:
        from refimpl.ad import vjp

        x, theta, v = self._checked(x, theta, v)
        _, back = vjp(lambda xx: self._f(xx, theta), x)
        return _single_cotangent(back(v))

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        from refimpl.ad import vjp

        x, theta, v = self._checked(x, theta, v)
        _, back = vjp(lambda tt: self._f(x, tt), theta)
        return _single_cotangent(back(v))


def _single_cotangent(out) -> np.ndarray:
    if isinstance(out, (tuple, list)):
        if len(out) != 1:
            raise RuntimeError("refimpl.ad.vjp returned several cotangents for a one-argument function")
        out = out[0]
    return np.asarray(out)


