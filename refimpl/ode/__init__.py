"""Explicit ODE schemes as data, generic integrators, vector fields and discrete adjoints.

Submodules (import them directly; nothing heavy is imported here):

``refimpl.ode.fields``            vector fields with hand-written Jacobians/VJPs, terminal losses.
"""
