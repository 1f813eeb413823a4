"""Test problems with known answers, gathered in one place.

``refimpl.problems.analytic_ode``  ODE problems whose trajectory, adjoint and continuous gradient δL/δθ are known in
                                   closed form (docs/theory/continuous-adjoint.md);
``refimpl.problems.neural_ode``    the two problems on which the oscillation phenomenon of [A] (arXiv 2306.02192) is
                                   measured (docs/theory/oscillations-and-corrections.md), with vectorised references;
``refimpl.problems.sinusoid_ode``  the oracle battery's base problems: the built-in fields driven by sinusoidal θ(t).

Import from the submodules (``import refimpl.problems`` loads nothing).
"""

__all__: list[str] = []
