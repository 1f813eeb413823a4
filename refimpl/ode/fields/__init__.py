r"""Vector fields :math:`\dot x = f(x, \theta)` with hand-written Jacobians and vector-Jacobian products, and terminal
losses :math:`L = \Phi(x_N)`.

One module per kind of field; this package only re-exports them:

``base``        the :class:`VectorField` protocol, the :class:`HandField` base class, the kernel descriptor
                :class:`NumbaKernel`, the registry :data:`FIELDS`;
``linear``      :class:`LinearField` (:math:`Ax + b`), :class:`LinearForcingField` (:math:`Ax + \theta`),
                :class:`ScaledLinearField` (:math:`\theta_0 Ax`);
``neural``      :class:`TanhField` (:math:`\tanh(Wx + b)`), :class:`TwoLayerTanhField` (:math:`W_2\tanh(W_1x + b)`);
``polynomial``  :class:`PolynomialField` (:math:`c + Bx + q\circ x\circ x`, exact on Fractions);
``logistic``    :class:`LogisticField` (:math:`rx(1 - x/K)`);
``user``        :class:`UserField` (a user's taped ``f``, derivatives by the tape);
``losses``      :class:`TerminalLoss` (protocol), :class:`QuadraticLoss`, :class:`UserLoss`; registry
                :data:`LOSSES`.

A new storable field family is one :class:`HandField` subclass with ``family``, ``formula`` (and, if its constructor
needs more than ``dim``, ``_spec_extra`` / ``_from_spec``), registered with ``@FIELDS.register``.
"""
from refimpl.ode.fields.base import FIELDS, HandField, NumbaKernel, VectorField
from refimpl.ode.fields.linear import LinearField, LinearForcingField, ScaledLinearField
from refimpl.ode.fields.logistic import LogisticField
from refimpl.ode.fields.losses import LOSSES, QuadraticLoss, TerminalLoss, UserLoss
from refimpl.ode.fields.neural import TanhField, TwoLayerTanhField
from refimpl.ode.fields.polynomial import PolynomialField
from refimpl.ode.fields.user import UserField

__all__ = [
    "VectorField",
    "HandField",
    "NumbaKernel",
    "FIELDS",
    "LinearField",
    "LinearForcingField",
    "ScaledLinearField",
    "TanhField",
    "TwoLayerTanhField",
    "PolynomialField",
    "LogisticField",
    "UserField",
    "TerminalLoss",
    "QuadraticLoss",
    "UserLoss",
    "LOSSES",
]
