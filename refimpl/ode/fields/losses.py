r"""Terminal losses :math:`L = \Phi(x_N)`: the protocol :class:`TerminalLoss` (``value(x)`` taped via ops, ``grad(x)``
an ndarray), the storable :class:`QuadraticLoss` :math:`\Phi(x) = \tfrac12|x-y|^2` (registered in :data:`LOSSES`), and
the adapter :class:`UserLoss` for a user's :math:`\Phi` and its gradient.
"""
from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np

from refimpl.ad import ops
from refimpl.arguments import as_fixed_array
from refimpl.ode.fields.base import _raw, _shape
from refimpl.registry import Registry

__all__ = ["TerminalLoss", "QuadraticLoss", "UserLoss", "LOSSES"]

#: the storable terminal-loss families: kind name -> loss class (a case file names it under the key "kind")
LOSSES = Registry("terminal loss")


@runtime_checkable
class TerminalLoss(Protocol):
    r"""A terminal loss :math:`L = \Phi(x_N)`: ``value(x)`` (taped, via ops) and ``grad(x)`` (ndarray)."""

    def value(self, x): ...

    def grad(self, x) -> np.ndarray: ...


@LOSSES.register
class QuadraticLoss:
    r""":math:`\Phi(x) = \tfrac12 \sum_i (x_i - y_i)^2`, :math:`\nabla\Phi(x) = x - y`.

    Written without ``abs``/``conj``, so it is holomorphic and complex-step checks see its derivative.
    Its JSON description (``to_spec``) is the case file's ``"loss"`` object, keyed by ``"kind"``.
    """

    family = "quadratic"
    formula = "L = Phi(x_N) = 1/2 |x_N - y|^2"

    def __init__(self, y):
        self.y = as_fixed_array(y, "y", 1)

    def __repr__(self) -> str:
        return f"QuadraticLoss(dim={self.y.shape[0]})"

    def to_spec(self) -> dict:
        """``{"kind": "quadratic", "y": [...], "formula": ...}`` (the case file's ``"loss"`` object)."""
        return {"kind": self.family, "y": self.y.astype(float).tolist(), "formula": self.formula}

    @classmethod
    def from_spec(cls, spec: dict) -> "QuadraticLoss":
        """The loss described by ``spec`` (inverse of :meth:`to_spec`; ``LOSSES.from_spec(spec, key="kind")``)."""
        kind = spec.get("kind", cls.family)
        if kind != cls.family:
            raise ValueError(f"loss.kind: {cls.__name__} is the {cls.family!r} loss, the spec says {kind!r}")
        return cls(np.array(spec["y"], dtype=np.float64))

    def _check(self, x):
        if _shape(x) != self.y.shape:
            raise ValueError(f"x must have shape {self.y.shape}, got {_shape(x)}")

    def value(self, x):
        self._check(x)
        r = x - self.y
        return ops.sum(r * r) / 2

    def grad(self, x) -> np.ndarray:
        self._check(x)
        return _raw(x) - self.y


class UserLoss:
    """A user's terminal loss: ``phi(x)`` (taped, via ops) and its gradient ``grad_phi(x)`` (ndarray)."""

    def __init__(self, phi: Callable, grad_phi: Callable, name: str = "user"):
        if not callable(phi):
            raise TypeError(f"phi must be callable, got {type(phi).__name__}")
        if not callable(grad_phi):
            raise TypeError(f"grad_phi must be callable, got {type(grad_phi).__name__}")
        self._phi, self._grad_phi, self.name = phi, grad_phi, str(name)

    def __repr__(self) -> str:
        return f"UserLoss({self.name!r})"

    def value(self, x):
        return self._phi(x)

    def grad(self, x) -> np.ndarray:
        g = np.asarray(self._grad_phi(_raw(x)))
        if g.shape != _shape(x):
            raise ValueError(f"grad_phi returned shape {g.shape}, expected {_shape(x)}")
        return g
