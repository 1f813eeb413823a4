r"""One generic integrator per family (explicit Runge–Kutta, explicit linear multistep), the same code for

* NumPy arrays: float64, complex128 (complex-step checks), or ``object`` arrays of :class:`fractions.Fraction`
  (exact mode: rational coefficients and a polynomial field make every step exact);
* tape :class:`refimpl.ad.Variable` s: then ``refimpl.ad.grad`` of :math:`L_h = \Phi(x_N)` through the solver *is* the
  discrete adjoint (discretise-then-optimise), which :mod:`refimpl.ode.adjoint_recursions` reproduces by hand.

All array math goes through :mod:`refimpl.ad.ops` and Python operators; the trajectory is built from a list with
``ops.stack`` (no in-place writes).

ERK (docs/theory/explicit-schemes.md), step n with the parameter rows of :class:`~refimpl.ode.samples.ParameterSamples`:

.. math::
    X_{n,i} = x_n + h\sum_{j<i} a_{ij} k_{n,j},\quad k_{n,i} = f(X_{n,i}, \theta_{r(n,i)}),\quad
    x_{n+1} = x_n + h\sum_i b_i k_{n,i}.

LMM: :math:`x_1..x_{k-1}` by k − 1 starter ERK steps, then for :math:`n = 0..N-k`

.. math::
    x_{n+k} = -\sum_{j<k}\alpha_j x_{n+j} + h\sum_{j<k}\beta_j F_{n+j},\qquad F_m = f(x_m, \theta_{g(m)}),

each :math:`F_m` evaluated once. Zero coefficients are skipped (no term is formed), in both families.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from refimpl.ad import Variable, getvalue, ops
from refimpl.arguments import check_state_array
from refimpl.ode.fields import TerminalLoss, VectorField
from refimpl.ode.samples import ParameterSamples, parameter_samples
from refimpl.ode.tableau import ButcherTableau

__all__ = ["Trajectory", "integrate", "discrete_loss", "Problem", "prepare_problem"]


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Result of :func:`integrate`: states ``x`` (N+1, d) (ndarray or Variable), the parameter ``samples`` (times,
    stage weights, index maps), the step ``h``."""

    x: object
    samples: ParameterSamples
    h: object

    @property
    def final(self):
        """x_N."""
        return self.x[-1]


@dataclass(frozen=True, eq=False)
class Problem:
    """A validated problem: what :func:`prepare_problem` returns and both the integrator and the adjoints run on.

    ``exact`` is True in exact mode (object arrays; coefficients and h are Fractions)."""

    field: VectorField
    method: object
    samples: ParameterSamples
    x0: object
    theta: object
    h: object
    exact: bool


def _value(a):
    return getvalue(a) if isinstance(a, Variable) else a


def prepare_problem(field, method, x0, theta, T, N, layout="stage", starter=None) -> Problem:
    """Validate every argument of a problem at the entry point (errors name the argument) and fix the mode."""
    if not isinstance(field, VectorField):
        raise TypeError(f"field must implement the VectorField protocol (dim, n_params, f, dfdx, dfdtheta, vjp_x, "
                        f"vjp_theta), got {type(field).__name__}")
    samples = parameter_samples(method, T, N, layout, starter)
    x0 = check_state_array(x0, "x0", (field.dim,))
    hint = (f" (layout {layout!r} of {method.name!r} on N = {samples.N} steps has {samples.n_samples} samples; "
            f"field.n_params = {field.n_params})")
    theta = check_state_array(theta, "theta", (samples.n_samples, field.n_params), hint)
    kinds = {np.asarray(_value(a)).dtype == object for a in (x0, theta)}
    if kinds == {True, False}:
        raise TypeError("x0 and theta: one is an object (exact) array and the other is not; give both as object "
                        "arrays of Fractions for exact mode, or neither")
    exact = kinds == {True}
    if exact:
        for m in (method, samples.starter):
            if m is not None and not m.exact:
                raise ValueError(f"method: exact mode (object arrays) needs rational coefficients, and {m.name!r} has "
                                 f"float coefficients")
        h = Fraction(samples.T) / samples.N
    else:
        h = float(samples.T) / samples.N
    return Problem(field, method, samples, x0, theta, h, exact)


def _scaled(coefs, h, exact: bool):
    """h times each coefficient, in the mode's number type (Fraction or float)."""
    return [h * (Fraction(c) if exact else float(c)) for c in coefs]


def erk_step(field, hA, hb, x, thetas):
    """One ERK step from ``x`` with stage parameters ``thetas`` (one row per stage) and pre-scaled ``hA = h*A``,
    ``hb = h*b``. Returns (x_next, stage states X, stage slopes k)."""
    s = len(hb)
    X, k = [], []
    for i in range(s):
        xi = x
        for j in range(i):
            if hA[i][j] != 0:
                xi = xi + hA[i][j] * k[j]
        X.append(xi)
        k.append(field.f(xi, thetas[i]))
    x_next = x
    for i in range(s):
        if hb[i] != 0:
            x_next = x_next + hb[i] * k[i]
    return x_next, X, k


def _erk_coefficients(tableau: ButcherTableau, h, exact: bool):
    hA = [_scaled(row, h, exact) for row in tableau.A]
    hb = _scaled(tableau.b, h, exact)
    return hA, hb


def run(problem: Problem) -> list:
    """The states x_0..x_N of a validated problem, as a list (arrays or Variables)."""
    field, method, smp, theta = problem.field, problem.method, problem.samples, problem.theta
    h, exact = problem.h, problem.exact
    xs = [problem.x0]
    if isinstance(method, ButcherTableau):
        hA, hb = _erk_coefficients(method, h, exact)
        for n in range(smp.N):
            xs.append(erk_step(field, hA, hb, xs[-1], [theta[int(r)] for r in smp.stage_index[n]])[0])
        return xs
    k = method.steps
    hA, hb = _erk_coefficients(smp.starter, h, exact)
    for n in range(k - 1):
        xs.append(erk_step(field, hA, hb, xs[-1], [theta[int(r)] for r in smp.stage_index[n]])[0])
    malpha = [-(Fraction(a) if exact else float(a)) for a in method.alpha[:k]]
    hbeta = _scaled(method.beta, h, exact)
    F = {}
    for n in range(smp.N - k + 1):
        x_new = None
        for j in range(k):
            if malpha[j] != 0:
                term = malpha[j] * xs[n + j]
                x_new = term if x_new is None else x_new + term
        for j in range(k):
            if hbeta[j] != 0:
                m = n + j
                if m not in F:
                    F[m] = field.f(xs[m], theta[int(smp.grid_index[m])])
                term = hbeta[j] * F[m]
                x_new = term if x_new is None else x_new + term
        xs.append(x_new)
    return xs


def integrate(field, method, x0, theta, T, N, *, layout: str = "stage", starter=None) -> Trajectory:
    """Integrate :math:`\\dot x = f(x,\\theta(t))` on :math:`[0, T]` with ``N`` steps of ``method`` (a
    :class:`ButcherTableau`, or a :class:`LinearMultistep` with its ``starter``). ``theta`` has shape
    ``(n_samples, p)`` for the ``layout`` (see :mod:`refimpl.ode.samples`; :func:`parameter_samples` gives n_samples
    and the sample times). Returns a :class:`Trajectory`."""
    problem = prepare_problem(field, method, x0, theta, T, N, layout, starter)
    return Trajectory(ops.stack(run(problem)), problem.samples, problem.h)


def discrete_loss(field, method, x0, theta, T, N, loss, *, layout: str = "stage", starter=None):
    """:math:`L_h = \\Phi(x_N)` of the discrete problem (taped when x0/theta are Variables)."""
    if not isinstance(loss, TerminalLoss):
        raise TypeError(f"loss must implement value(x) and grad(x), got {type(loss).__name__}")
    problem = prepare_problem(field, method, x0, theta, T, N, layout, starter)
    return loss.value(run(problem)[-1])
