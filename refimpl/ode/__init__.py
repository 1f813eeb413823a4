"""Explicit ODE schemes as data, generic integrators, vector fields and discrete adjoints.

Submodules (each does one thing):

``refimpl.ode.tableau``            :class:`ButcherTableau` (explicit RK, self-validating), :func:`two_stage`.
``refimpl.ode.multistep``          :class:`LinearMultistep` (explicit LMM, self-validating, root condition).
``refimpl.ode.schemes``            the named instances (FORWARD_EULER … RK38, LEAPFROG, AB2–AB4) and starters.
``refimpl.ode.fields``             vector fields with hand-written Jacobians/VJPs, terminal losses.
``refimpl.ode.samples``            parameter sample layouts ("stage", "step"), sample times and stage weights.
``refimpl.ode.integrate``          the generic ERK / LMM integrator (NumPy, complex, Fraction, tape Variables).
``refimpl.ode.discrete_adjoint``   hand-derived discrete adjoints (NumPy path for any field, Numba for tanh/linear).

``refimpl.ode.continuous_adjoint`` the backward adjoint ODE p′ = −∂ₓfᵀp (DOP853 with an error estimate; RK4+Richardson).
``refimpl.ode.analytic``           closed-form cases (trajectory, loss, δL/δθ) the gradients are measured against.
``refimpl.ode.corrections``        paper [A]: normalised AD gradients, leapfrog / 2-stage ERK corrections, diagnostics.

These further modules are imported directly from their submodules.
The names below are loaded lazily on first access, so ``import refimpl.ode`` stays cheap (no Numba compilation).
The two main functions share their module's name, so import them from the module (a package attribute of that name is
the submodule once it has been imported)::

    from refimpl.ode.integrate import integrate
    from refimpl.ode.discrete_adjoint import discrete_adjoint
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "ButcherTableau": "tableau", "OrderCondition": "tableau", "two_stage": "tableau",
    "LinearMultistep": "multistep", "MultistepCondition": "multistep",
    "FORWARD_EULER": "schemes", "MIDPOINT": "schemes", "HEUN": "schemes", "RALSTON": "schemes",
    "KUTTA_RK3": "schemes", "RK4": "schemes", "RK38": "schemes", "LEAPFROG": "schemes", "AB2": "schemes",
    "AB3": "schemes", "AB4": "schemes", "TABLEAUX": "schemes", "MULTISTEP_METHODS": "schemes", "starter": "schemes",
    "scheme": "schemes",
    "VectorField": "fields", "LinearField": "fields", "LinearForcingField": "fields", "ScaledLinearField": "fields",
    "TanhField": "fields", "TwoLayerTanhField": "fields", "PolynomialField": "fields", "UserField": "fields",
    "TerminalLoss": "fields", "QuadraticLoss": "fields", "UserLoss": "fields",
    "ParameterSamples": "samples", "parameter_samples": "samples",
    "Trajectory": "integrate", "discrete_loss": "integrate",
    "DiscreteAdjoint": "discrete_adjoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"refimpl.ode.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'refimpl.ode' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
