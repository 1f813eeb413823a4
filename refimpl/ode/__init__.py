"""Explicit ODE schemes as data, generic integrators, vector fields and discrete and continuous adjoints.

Submodules (each holds one kind of thing):

``refimpl.ode.tableau``             :class:`ButcherTableau` (explicit RK, self-validating), :func:`two_stage`.
``refimpl.ode.multistep``           :class:`LinearMultistep` (explicit LMM, self-validating, root condition).
``refimpl.ode.schemes``             the named instances (FORWARD_EULER … RK38, LEAPFROG, AB2–AB4), starters, and the
                                    registries ``SCHEMES`` (name -> instance) and ``SCHEME_FAMILIES``.
``refimpl.ode.fields``              vector fields with hand-written Jacobians/VJPs (registry ``FIELDS``), terminal
                                    losses (registry ``LOSSES``).
``refimpl.ode.samples``             parameter sample layouts ("stage", "step", "constant"), sample times and stage
                                    weights, non-uniform grids (Runge–Kutta).
``refimpl.ode.integrators``         the generic ERK / LMM integrator (NumPy, complex, Fraction, tape Variables).
``refimpl.ode.adjoint_recursions``  the hand-derived discrete adjoints (NumPy path for any field; compiled path for a
                                    field with a kernel descriptor, :mod:`refimpl.ode._numba`).
``refimpl.ode.embedded``            :class:`EmbeddedTableau` (embedded pairs, both orders checked), the named pairs,
                                    registry ``EMBEDDED_PAIRS``.
``refimpl.ode.step_control``        error norms, I/PI/PID controllers, the HNW starting step (data).
``refimpl.ode.adaptive``            ``adaptive_solve`` (float, complex, tape) and the gradients of an adaptive loss.
``refimpl.ode.conventions``         torchdiffeq's and diffrax's rules as data (registry ``CONVENTIONS``).
``refimpl.ode.adjoint_ode``         the backward adjoint ODE p′ = −∂ₓfᵀp (DOP853 + error estimate; RK4+Richardson).
``refimpl.ode.piecewise_adjoint``   the same, piece by piece, for a parameter table held constant on each step (the
                                    gradient backsolve adjoints return), with its error estimate.
``refimpl.ode.corrections``         normalised AD gradients, leapfrog / 2-stage ERK corrections, diagnostics ([A]).

The test problems with closed-form answers live in :mod:`refimpl.problems`.

The names below are loaded lazily on first access, so ``import refimpl.ode`` stays cheap (no Numba compilation).
The main functions are imported from their modules::

    from refimpl.ode.integrators import integrate
    from refimpl.ode.adjoint_recursions import discrete_adjoint
    from refimpl.ode.adjoint_ode import continuous_adjoint
    from refimpl.ode.piecewise_adjoint import piecewise_constant_continuous_gradient
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "ButcherTableau": "tableau", "OrderCondition": "tableau", "two_stage": "tableau",
    "LinearMultistep": "multistep", "MultistepCondition": "multistep",
    "FORWARD_EULER": "schemes", "MIDPOINT": "schemes", "HEUN": "schemes", "RALSTON": "schemes",
    "KUTTA_RK3": "schemes", "RK4": "schemes", "RK38": "schemes", "LEAPFROG": "schemes", "AB2": "schemes",
    "AB3": "schemes", "AB4": "schemes", "TABLEAUX": "schemes", "MULTISTEP_METHODS": "schemes", "starter": "schemes",
    "scheme": "schemes", "SCHEMES": "schemes", "SCHEME_FAMILIES": "schemes",
    "VectorField": "fields", "LinearField": "fields", "LinearForcingField": "fields", "ScaledLinearField": "fields",
    "TanhField": "fields", "TwoLayerTanhField": "fields", "PolynomialField": "fields", "LogisticField": "fields",
    "UserField": "fields", "TerminalLoss": "fields", "QuadraticLoss": "fields", "UserLoss": "fields",
    "FIELDS": "fields", "LOSSES": "fields",
    "ParameterSamples": "samples", "parameter_samples": "samples",
    "Trajectory": "integrators", "integrate": "integrators", "discrete_loss": "integrators",
    "DiscreteAdjoint": "adjoint_recursions", "discrete_adjoint": "adjoint_recursions",
    "continuous_adjoint": "adjoint_ode",
    "piecewise_constant_continuous_gradient": "piecewise_adjoint",
    "EmbeddedTableau": "embedded", "EMBEDDED_PAIRS": "embedded", "HEUN_EULER_21": "embedded", "FEHLBERG_21": "embedded",
    "BOGACKI_SHAMPINE_32": "embedded", "FEHLBERG_45": "embedded", "DORMAND_PRINCE_54": "embedded",
    "TSITOURAS_54": "embedded",
    "ErrorNorm": "step_control", "Controller": "step_control", "InitialStep": "step_control",
    "CONTROLLERS": "step_control",
    "adaptive_solve": "adaptive", "AdaptiveSolution": "adaptive", "full_discrete_gradient": "adaptive",
    "frozen_grid_gradient": "adaptive", "continuous_gradient": "adaptive", "grid_rounding": "adaptive",
    "CONVENTIONS": "conventions", "convention": "conventions",
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
