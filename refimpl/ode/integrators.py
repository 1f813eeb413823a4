r"""One generic integrator per family (explicit Runge–Kutta, explicit linear multistep), the same code for

* NumPy arrays: float64, complex128 (complex-step checks), or ``object`` arrays of :class:`fractions.Fraction`
  (exact mode: rational coefficients and a polynomial field make every step exact);
* tape :class:`refimpl.ad.Variable` s: then ``refimpl.ad.grad`` of :math:`L_h = \Phi(x_N)` through the solver *is* the
  discrete adjoint (discretise-then-optimise), which :mod:`refimpl.ode.adjoint_recursions` reproduces by hand.

All array math goes through :mod:`refimpl.ad.ops` and Python operators; the trajectory is built from a list with
``ops.stack`` (no in-place writes).

ERK (docs/theory/explicit-schemes.md), step n with the parameter rows of :class:`~refimpl.ode.samples.ParameterSamples`:

.. math::
    X_{n,i} = x_n + h_n\sum_{j<i} a_{ij} k_{n,j},\quad k_{n,i} = f(X_{n,i}, \theta_{r(n,i)}),\quad
    x_{n+1} = x_n + h_n\sum_i b_i k_{n,i},

with :math:`h_n = h = T/N` on the uniform grid, or :math:`h_n = t_{n+1} - t_n` of a given non-uniform ``grid``
(docs/theory/discrete-adjoint.md §11; the products :math:`h_n a_{ij}`, :math:`h_n b_i` are formed per step, in the
mode's number type).

LMM: :math:`x_1..x_{k-1}` by k − 1 starter ERK steps, then for :math:`n = 0..N-k`

.. math::
    x_{n+k} = -\sum_{j<k}\alpha_j x_{n+j} + h\sum_{j<k}\beta_j F_{n+j},\qquad F_m = f(x_m, \theta_{g(m)}),

each :math:`F_m` evaluated once. Zero coefficients are skipped (no term is formed), in both families.

Non-finite results. In floating point each new state is checked: if :math:`x_n` has a NaN/inf entry (an overflow),
:class:`~refimpl.arguments.NonFiniteError` says "the solution became non-finite at step n, time t" — with a stability
hint when :math:`h\lambda`, for an eigenvalue :math:`\lambda` of :math:`\partial_xf` at the last finite state, lies
outside the scheme's linear stability region (:func:`stability_hint`) — instead of returning a NaN trajectory. The loss
:math:`\Phi(x_N)` is checked the same way. The hand adjoints (:mod:`refimpl.ode.adjoint_recursions`, both backends)
raise the same errors at the same places.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from refimpl.ad import Variable, getvalue, ops
from refimpl.arguments import NonFiniteError, check_state_array, first_nonfinite
from refimpl.ode.fields import TerminalLoss, VectorField
from refimpl.ode.samples import ParameterSamples, parameter_samples
from refimpl.ode.tableau import ButcherTableau

__all__ = ["Trajectory", "integrate", "discrete_loss", "Problem", "prepare_problem", "stability_hint"]


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Result of :func:`integrate`: states ``x`` (N+1, d) (ndarray or Variable), the parameter ``samples`` (times,
    stage weights, index maps), the step ``h`` (on a non-uniform grid: the steps :math:`h_n`, an array (N,))."""

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

    ``exact`` is True in exact mode (object arrays; coefficients and h are Fractions). ``steps`` is None on the
    uniform grid (every step is ``h``), else the list of :math:`h_n` in the mode's number type; ``h`` is then the
    array of the steps (as :attr:`ParameterSamples.steps`)."""

    field: VectorField
    method: object
    samples: ParameterSamples
    x0: object
    theta: object
    h: object
    exact: bool
    steps: list | None = None

    def step(self, n: int):
        """:math:`h_n`, the size of step n (the mode's number type)."""
        return self.h if self.steps is None else self.steps[n]

    def time(self, n: int) -> float:
        """:math:`t_n` as a float (for messages)."""
        return n * float(self.h) if self.steps is None else float(self.samples.grid[n])


def _value(a):
    return getvalue(a) if isinstance(a, Variable) else a


def prepare_problem(field, method, x0, theta, T, N, layout="stage", starter=None, grid=None, *,
                    theta_finite: bool = True) -> Problem:
    """Validate every argument of a problem at the entry point (errors name the argument) and fix the mode.
    ``theta_finite=False`` leaves θ's NaN/inf check to the caller (the compiled discrete adjoint, which counts θ's
    non-finite entries in its forward sweep and raises the same error, :func:`refimpl.arguments.nonfinite_state_error`,
    from there)."""
    if not isinstance(field, VectorField):
        raise TypeError(f"field must implement the VectorField protocol (dim, n_params, f, dfdx, dfdtheta, vjp_x, "
                        f"vjp_theta), got {type(field).__name__}")
    samples = parameter_samples(method, T, N, layout, starter, grid=grid)
    x0 = check_state_array(x0, "x0", (field.dim,))
    hint = (f" (layout {layout!r} of {method.name!r} on N = {samples.N} steps has {samples.n_samples} samples; "
            f"field.n_params = {field.n_params})")
    theta = check_state_array(theta, "theta", (samples.n_samples, field.n_params), hint, finite=theta_finite)
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
    steps = None
    if samples.grid is not None:
        g = samples.grid
        if g.dtype == object and not exact:
            raise TypeError("grid: an exact (object array of Fractions) grid needs exact mode (object x0 and theta); "
                            "give a float64 grid for a floating-point run")
        if exact:
            g = [Fraction(t) for t in g]           # a float grid is exactly rational: exact h_n
            steps = [b - a for a, b in zip(g[:-1], g[1:])]
            h = np.empty(len(steps), dtype=object)
            h[:] = steps
        else:
            steps = [float(v) for v in np.asarray(samples.steps, dtype=np.float64)]
            h = samples.steps
    return Problem(field, method, samples, x0, theta, h, exact, steps)


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


# ---------------------------------------------------------------------------------------------------------------------
# non-finite results


def _growth_factor(method, z: complex) -> float:
    r"""How much one step of ``method`` amplifies the mode :math:`e^{\lambda t}` at :math:`z = h\lambda` (test equation
    :math:`\dot x = \lambda x`): :math:`|R(z)|`, :math:`R(z) = 1 + z\,b^{\mathsf T}(I - zA)^{-1}\mathbb 1` for an ERK;
    the largest root modulus of :math:`\sum_j(lpha_j - zeta_j)\zeta^j` for an LMM. The scheme is stable at z when
    this is ≤ 1."""
    if isinstance(method, ButcherTableau):
        A, b, _ = method.arrays()
        s = len(b)
        return float(abs(1 + z * (b @ np.linalg.solve(np.eye(s) - z * A, np.ones(s)))))
    alpha, beta = (np.array([float(c) for c in cs], dtype=complex) for cs in (method.alpha, method.beta))
    beta = np.concatenate([beta, np.zeros(len(alpha) - len(beta))])
    return float(np.max(np.abs(np.roots((alpha - z * beta)[::-1]))))


def stability_hint(method, field, x, theta, h) -> str:
    r"""A sentence for a non-finite error when the step exceeds the scheme's linear stability bound at ``x``: some
    eigenvalue :math:`\lambda` of :math:`\partial_xf(x,	heta)` has :math:`h\lambda` outside the stability region of
    ``method`` (:func:`_growth_factor` > 1, the largest such factor reported); "" when none does (or ∂ₓf is not
    available)."""
    try:
        with np.errstate(all="ignore"):
            J = np.asarray(field.dfdx(x, theta))
            if not np.all(np.isfinite(J)):
                return ""
            lam = np.linalg.eigvals(J)
            factors = [(_growth_factor(method, complex(h * mu)), complex(h * mu)) for mu in lam]
    except Exception:  # the hint is optional: a field without a usable dfdx gets none
        return ""
    # the hint applies when the scheme amplifies a mode more than 1 and more than the exact flow e^{h lambda} does
    # (a mode with Re(h lambda) > 0 grows in the exact solution too: no step-size bound is exceeded then)
    unstable = [(g, z) for g, z in factors
                if z.real < 700 and g > max(1.0, abs(np.exp(z))) * (1 + 1e-12)]
    if not unstable:
        return ""
    g, z = max(unstable, key=lambda t: t[0])
    z_text = f"{z.real:.3g}" if z.imag == 0 else f"{z.real:.3g}{z.imag:+.3g}i"
    return (f"; h*lambda = {z_text} (h = {float(h):.3g}, lambda an eigenvalue of df/dx at the last finite state) lies "
            f"outside the linear stability region of {method.name} (growth factor {g:.3g} per step): the step exceeds "
            f"the scheme's stability bound, take more steps (larger N)")


def _sample_row(problem: Problem, n: int) -> int:
    """The parameter row used by step n (its first stage; an LMM step past the starter: the row of F_n)."""
    smp = problem.samples
    if isinstance(problem.method, ButcherTableau) or n < problem.method.steps - 1:
        return int(smp.stage_index[n][0])
    r = int(smp.grid_index[n]) if n < smp.N else -1
    return r if r >= 0 else int(np.max(smp.grid_index))


def solution_error(problem: Problem, n: int, x_n, x_prev) -> NonFiniteError:
    """The error for a state x_n (n ≥ 1) that became non-finite although x_{n-1} (``x_prev``) is finite."""
    x_n, x_prev = np.asarray(_value(x_n)), np.asarray(_value(x_prev))
    where = first_nonfinite(x_n)
    theta = np.asarray(_value(problem.theta))[_sample_row(problem, n - 1)]
    method = problem.method if isinstance(problem.method, ButcherTableau) or n >= problem.method.steps \
        else problem.samples.starter
    hint = stability_hint(method, problem.field, x_prev, theta, problem.step(n - 1))
    return NonFiniteError(f"the solution became non-finite at step {n}, time t = {problem.time(n):.6g}: x_{n} has "
                          f"a non-finite entry at index {where[0]} (max |x_{n - 1}| = "
                          f"{np.max(np.abs(x_prev)):.3g}){hint}")


def check_state(problem: Problem, xs: list, n: int) -> None:
    """Raise :func:`solution_error` if x_n = ``xs[n]`` (floating point) has a NaN/inf entry."""
    if not problem.exact and first_nonfinite(_value(xs[n])) is not None:
        raise solution_error(problem, n, xs[n], xs[n - 1])


def checked_loss_value(problem: Problem, loss, x_N):
    """Φ(x_N), raising :class:`NonFiniteError` if it is not finite (x_N itself is)."""
    with np.errstate(over="ignore", invalid="ignore"):
        value = loss.value(x_N)
    if not problem.exact and first_nonfinite(_value(value)) is not None:
        raise NonFiniteError(f"the loss became non-finite: Phi(x_N) = {np.asarray(_value(value))} at the final state "
                             f"x_N (step N = {problem.samples.N}, time T = {float(problem.samples.T):.6g}), which is "
                             f"finite with max |x_N| = {np.max(np.abs(np.asarray(_value(x_N)))):.3g}: the loss "
                             f"overflows float64")
    return value


# ---------------------------------------------------------------------------------------------------------------------


def run(problem: Problem) -> list:
    """The states x_0..x_N of a validated problem, as a list (arrays or Variables); :class:`NonFiniteError` (module
    docstring) at the first state that is not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _run(problem)


def _run(problem: Problem) -> list:
    field, method, smp, theta = problem.field, problem.method, problem.samples, problem.theta
    h, exact = problem.h, problem.exact
    xs = [problem.x0]
    if isinstance(method, ButcherTableau):
        hA, hb = _erk_coefficients(method, h, exact) if problem.steps is None else (None, None)
        for n in range(smp.N):
            if problem.steps is not None:
                hA, hb = _erk_coefficients(method, problem.steps[n], exact)
            xs.append(erk_step(field, hA, hb, xs[-1], [theta[int(r)] for r in smp.stage_index[n]])[0])
            check_state(problem, xs, n + 1)
        return xs
    k = method.steps
    hA, hb = _erk_coefficients(smp.starter, h, exact)
    for n in range(k - 1):
        xs.append(erk_step(field, hA, hb, xs[-1], [theta[int(r)] for r in smp.stage_index[n]])[0])
        check_state(problem, xs, n + 1)
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
        check_state(problem, xs, n + k)
    return xs


def integrate(field, method, x0, theta, T, N, *, layout: str = "stage", starter=None, grid=None) -> Trajectory:
    """Integrate :math:`\\dot x = f(x,\\theta(t))` on :math:`[0, T]` with ``N`` steps of ``method`` (a
    :class:`ButcherTableau`, or a :class:`LinearMultistep` with its ``starter``). ``theta`` has shape
    ``(n_samples, p)`` for the ``layout`` ("stage", "step" or "constant"; see :mod:`refimpl.ode.samples`;
    :func:`parameter_samples` gives n_samples and the sample times). ``grid``: None (uniform, :math:`h = T/N`) or the
    N + 1 times of a non-uniform grid, Runge–Kutta methods only (:func:`refimpl.ode.samples.check_step_grid`).
    Returns a :class:`Trajectory`; a state that overflows raises :class:`~refimpl.arguments.NonFiniteError` ("the
    solution became non-finite at step n, time t")."""
    problem = prepare_problem(field, method, x0, theta, T, N, layout, starter, grid)
    return Trajectory(ops.stack(run(problem)), problem.samples, problem.h)


def discrete_loss(field, method, x0, theta, T, N, loss, *, layout: str = "stage", starter=None, grid=None):
    """:math:`L_h = \\Phi(x_N)` of the discrete problem (taped when x0/theta are Variables); arguments as
    :func:`integrate`."""
    if not isinstance(loss, TerminalLoss):
        raise TypeError(f"loss must implement value(x) and grad(x), got {type(loss).__name__}")
    problem = prepare_problem(field, method, x0, theta, T, N, layout, starter, grid)
    return checked_loss_value(problem, loss, run(problem)[-1])
