r"""The ODE case kind: ẋ = f(x, θ(t)) on [0, T], N steps of an explicit scheme, L = ½|x_N − y|², and the
references a foreign solver/adjoint is compared on. The format (every field, every array, the three parameter layouts)
is defined in ``docs/case-format.md``; the discrete adjoint, the sample layouts and the stage weights in
``docs/theory/discrete-adjoint.md``; the continuous adjoint in ``docs/theory/continuous-adjoint.md``.

This module owns everything about ODE cases: the array names (:data:`ODE_INPUTS`, :data:`ODE_REFERENCES`), the
consistency rules (:class:`OdeCaseKind`, registered in :data:`refimpl.oracle.case.CASE_KINDS` as ``"ode"``), the
builder (:class:`OdeProblem` → :func:`build_case`), the ODE part of the battery and the recomputation used by
:func:`refimpl.oracle.verify.verify_case`. Fields, schemes and losses are stored as data through their registries
(``to_spec()`` / ``from_spec()`` of each registered class), so a field family registered anywhere — in a user's own
module — is exported, reloaded and checked with no change here. The ODE stack (Numba, SciPy) is imported on first use, so loading and
checking a case stays light.

How each reference is computed (also written into every case's ``provenance.how``):

``trajectory``, ``loss``, ``discrete_gradient``, ``grad_x0``
    :func:`refimpl.ode.adjoint_recursions.discrete_adjoint` — the hand-derived backward recursion (Numba kernel for the
    tanh/linear fields, NumPy for the others). *Second route*, checked at build time: the tape
    (``refimpl.ad.grad`` through the generic integrator :func:`refimpl.ode.integrators.discrete_loss`) for the gradients
    and :func:`refimpl.ode.integrators.integrate` for the trajectory; the normwise relative disagreement is stored in
    ``provenance.route_checks`` and a case is refused if it exceeds :data:`ROUTE_AGREEMENT`.
``normalised_gradient``
    :math:`g_r = G_r/(h w_r)` (``docs/theory/discrete-adjoint.md``); omitted when some stage weight is 0 (midpoint
    stage layout).
``continuous_gradient``
    :math:`\delta L/\delta\theta(t_r)` at the sample times: in closed form for the analytic cases
    (:mod:`refimpl.problems.analytic_ode`), else by :func:`refimpl.ode.adjoint_ode.continuous_adjoint` (DOP853, rtol
    1e-12, with its "tighter" error estimate, which must be ≤ 1/100 of the tolerance).
``piecewise_constant_continuous_gradient``, ``piecewise_constant_grad_x0`` (step and constant layouts)
    :math:`\partial L/\partial\theta_n = \int_{t_n}^{t_{n+1}} \partial_\theta f(x, \theta_n)^T\lambda\,dt` and
    :math:`\lambda(0)` for the ODE whose parameter is row n of ``theta`` held constant on step n (one row: constant
    on [0, T]) — what a backsolve adjoint returns — by
    :func:`refimpl.ode.piecewise_adjoint.piecewise_constant_continuous_gradient` (DOP853 per step, rtol 1e-12, with
    its "tighter" error estimate E); tolerance ``atol = max(1e-7·max|ref|, 100 E)``, ``rtol = 1e-7``. Constant-θ
    analytic cases are checked against the closed form :math:`dL/d\theta` at build time.
``corrected_gradient`` (with ``corrected_times``)
    the ``"corrected"`` estimate of :func:`refimpl.ode.corrections.applicable_estimates` (leapfrog pair sum at the
    midpoints, Runge–Kutta :math:`G_r/(h b_i)` with reconstruction where :math:`b_i = 0`) where one applies (not for
    AB2–AB4: ``docs/theory/oscillations-and-corrections.md`` proposes none); its measured distance to the continuous
    gradient is written in ``provenance.notes``. Tolerance: the discrete one (it is a fixed post-processing of the
    discrete gradient).

Tolerances (a foreign array passes when :math:`|x - x_{ref}| \le atol + rtol|x_{ref}|` entrywise; the reasoning is
in ``docs/case-format.md``):

* discrete quantities: ``rtol = 1e-10``, ``atol = 1e-12·max(1, max|ref|)``. Why: a different but valid float64
  evaluation order changes each of the :math:`N s` stage evaluations by a few ulps; the accumulated difference is
  about :math:`N s\,\varepsilon\,\kappa \approx 64·4·2.2·10^{-16}\kappa \approx 6·10^{-14}\kappa` (κ: amplification
  by the flow and its adjoint), so 1e-10 leaves three orders of magnitude for κ while any modelling error (wrong
  starter, wrong stage time, a missing factor 2) is O(h) ≥ 1e-3 here. Float32 implementations need a looser tolerance
  (``compare(..., tolerances=...)``).
* continuous gradient: ``rtol = 1e-7``, ``atol = 1e-7·max|ref|``: a continuous-adjoint solver run at rtol ~1e-8
  passes; a discrete gradient (error O(h) or, for the phenomenon of [A], O(1)) does not.

[A] arXiv 2306.02192.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

import refimpl
from refimpl.oracle.arithmetic import pinned_field
from refimpl.oracle.case import CASE_KINDS, Case, CaseKind
from refimpl.oracle.comparison import normwise_disagreement, same_input
from refimpl.oracle.safe_io import CaseFormatError
from refimpl.problems.sinusoid_ode import Sinusoid, oracle_base_problems

__all__ = ["OdeCaseKind", "OdeProblem", "Sinusoid", "build_case", "ode_battery", "problem_objects", "field_spec",
           "field_from_spec", "scheme_spec", "scheme_from_spec", "corrected_estimate", "ROUTE_AGREEMENT",
           "ODE_INPUTS", "ODE_REFERENCES"]

#: largest normwise relative disagreement between the hand recursion and the tape/integrator accepted at build time
ROUTE_AGREEMENT = 1e-12
DISCRETE_RTOL, DISCRETE_ATOL = 1e-10, 1e-12
CONTINUOUS_TOL = 1e-7
CONTINUOUS_RTOL_SOLVE = 1e-12

#: input arrays of an ODE case (what a foreign implementation needs besides case.json)
ODE_INPUTS = {
    "x0": "initial state x_0, shape (d,)",
    "theta": "parameter samples theta_r = theta(sample_times[r]), shape (n_samples, p)",
    "sample_times": "time of each parameter sample, shape (n_samples,)",
    "stage_weights": "stage weight w_r of each sample (docs/theory/discrete-adjoint.md), shape (n_samples,)",
    "stage_index": "ERK: row of theta used by stage i of step n, shape (N, s); LMM: the same for the k-1 starter "
                   "steps, shape (k-1, s_starter)",
    "stage_times": "the time t_n + c_i h at which stage i of step n evaluates f, same shape as stage_index (ERK: "
                   "(N, s); LMM: the k-1 starter steps, (k-1, s_starter))",
    "grid_index": "LMM only: row of theta used by f(x_m, .) at grid time t_m, or -1 where unused, shape (N,)",
    "grid_times": "LMM only: the grid time t_m = m h of the evaluation f(x_m, .) (used or not), shape (N,)",
    "corrected_times": "the times of the rows of corrected_gradient, shape (m,)",
}
#: reference quantities of an ODE case (what a foreign implementation is compared on)
ODE_REFERENCES = {
    "trajectory": "x_0..x_N of the scheme, shape (N+1, d)",
    "loss": "L_h = Phi(x_N), shape ()",
    "discrete_gradient": "dL_h/dtheta_r (discretise-then-optimise), shape (n_samples, p)",
    "grad_x0": "dL_h/dx_0, shape (d,)",
    "normalised_gradient": "g_r = (dL_h/dtheta_r)/(h w_r) (docs/theory/discrete-adjoint.md), shape (n_samples, p)",
    "continuous_gradient": "deltaL/deltatheta(t) at the sample times (optimise-then-discretise), shape (n_samples, p)",
    "corrected_gradient": "post-processed discrete gradient (docs/theory/oscillations-and-corrections.md), "
                          "shape (m, p)",
    "piecewise_constant_continuous_gradient": "step/constant layouts: dL/dtheta_n of the ODE whose parameter is row n "
                                              "of theta held constant on [t_n, t_{n+1}) (one row: constant on [0, T]),"
                                              " = int over the step of d_theta f^T lambda dt (what a backsolve adjoint "
                                              "returns), shape (n_samples, p)",
    "piecewise_constant_grad_x0": "step/constant layouts: dL/dx_0 of the same piecewise-constant ODE, shape (d,)",
}


# ---------------------------------------------------------------------------------------------------------------------
# fields, schemes and losses as data: read from their registries (refimpl.ode.fields.FIELDS, LOSSES;
# refimpl.ode.schemes.SCHEME_FAMILIES), so a family registered anywhere is storable with no change here


def field_families() -> tuple:
    """The field families a case may name (``problem.field.family``): the registered ones."""
    from refimpl.ode.fields import FIELDS

    return tuple(FIELDS.names())


def field_spec(field) -> dict:
    """The JSON description of a vector field: ``field.to_spec()`` (``ValueError`` if it cannot be stored)."""
    to_spec = getattr(field, "to_spec", None)
    if not callable(to_spec):
        raise ValueError(f"field: {type(field).__name__} cannot be stored in a case (it has no to_spec(); register a "
                         f"field family in refimpl.ode.fields.FIELDS)")
    return to_spec()


def field_from_spec(spec: dict):
    """The vector field described by ``spec`` (inverse of :func:`field_spec`), through the field registry."""
    from refimpl.ode.fields import FIELDS

    return FIELDS.from_spec(spec)


def scheme_spec(method) -> dict:
    """JSON description of a tableau or multistep method (exact coefficients as "p/q" strings): ``method.to_spec()``."""
    return method.to_spec()


def scheme_from_spec(spec: dict):
    """The :class:`ButcherTableau` / :class:`LinearMultistep` described by ``spec`` (validated on construction)."""
    from refimpl.ode.schemes import SCHEME_FAMILIES

    return SCHEME_FAMILIES.from_spec(spec)


def loss_spec(loss) -> dict:
    """The case.json "loss" object of a terminal loss: ``loss.to_spec()``."""
    return loss.to_spec()


def loss_from_spec(spec: dict):
    """The terminal loss described by a case.json "loss" object, through the loss registry."""
    from refimpl.ode.fields import LOSSES

    return LOSSES.from_spec(spec, key="kind")


def problem_objects(case: Case) -> dict:
    """refimpl objects for a case's problem: ``field``, ``method``, ``starter`` (tableau or None), ``loss``, ``layout``,
    ``T``, ``N``, ``x0``, ``theta`` — the arguments of :func:`refimpl.ode.adjoint_recursions.discrete_adjoint`."""
    p = case.problem
    return {"field": field_from_spec(p["field"]), "method": scheme_from_spec(p["scheme"]),
            "starter": None if p["starter"] is None else scheme_from_spec(p["starter"]),
            "loss": loss_from_spec(p["loss"]), "layout": p["layout"], "T": p["T"], "N": p["N"],
            "x0": np.array(case.x0), "theta": np.array(case.theta)}


# ---------------------------------------------------------------------------------------------------------------------
# problems


@dataclass(frozen=True, eq=False)
class OdeProblem:
    r"""An ODE problem to turn into a case: ẋ = f(x, θ(t)), x(0) = x₀, L = ½|x(T) − y|².

    ``field`` a vector field :func:`field_spec` can store; ``method`` a scheme or its name (:func:`refimpl.ode.schemes.scheme`);
    ``starter`` for a multistep method ("forward_euler", "matched" or a tableau); ``layout`` "stage", "step" or
    "constant"; ``theta``: a :class:`Sinusoid`, an analytic case of :mod:`refimpl.problems.analytic_ode` (its θ(t) and
    closed forms are used), a callable t ↦ (p,) array, or an (n_samples, p) array of samples (then no continuous
    gradient). In the constant layout θ is evaluated once, at t = 0 (pass a constant path).
    """

    name: str
    field: object
    method: object
    x0: object
    y: object
    T: float
    N: int
    theta: object
    layout: str = "stage"
    starter: object = None

    def resolved_method(self):
        from refimpl.ode import schemes

        return schemes.scheme(self.method) if isinstance(self.method, str) else self.method


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


def corrected_estimate(grad, samples):
    """(the ``"corrected"`` estimate of :func:`refimpl.ode.corrections.applicable_estimates`, None) — or (None, why)
    when refimpl defines no correction for the scheme or the grid is too short for it."""
    from refimpl.ode.corrections import applicable_estimates

    try:
        est = applicable_estimates(grad, samples).get("corrected")
    except ValueError as e:  # e.g. N = 1: fewer than two usable samples
        return None, f"the correction does not apply on this grid ({e})"
    if est is None:
        return None, f"refimpl.ode.corrections defines no correction for {samples.method.name}"
    return est, ""


def stage_times(samples) -> np.ndarray:
    r"""The time at which each Runge–Kutta stage evaluates f, the shape of ``samples.stage_index``: ERK
    :math:`t_n + c_i h` for step n, stage i, shape (N, s); LMM the same for the k − 1 starter steps, shape
    (k − 1, s_starter). Computed as :math:`(n + c_i)\,(T/N)` in float64, the formula of
    :func:`refimpl.ode.samples.parameter_samples`, so in the stage layout ``stage_times[n, i] ==
    sample_times[stage_index[n, i]]``. It does not depend on the layout: in the step and constant layouts it still
    says *when* f is evaluated, while ``stage_index`` says *which row* it uses."""
    tab = samples.method if samples.starter is None else samples.starter
    n_rk = samples.stage_index.shape[0]
    c = np.array([float(v) for v in tab.c])
    return (np.arange(n_rk, dtype=np.float64)[:, None] + c[None, :]) * (float(samples.T) / samples.N)


def grid_times(samples) -> np.ndarray:
    r"""LMM: the grid time :math:`t_m = m h` of each evaluation :math:`f(x_m, \cdot)`, m = 0..N−1 (the shape of
    ``samples.grid_index``; a time whose value is never used, index −1, is listed too)."""
    return np.arange(samples.N, dtype=np.float64) * (float(samples.T) / samples.N)


def _number(v: float) -> str:
    return repr(float(v))


#: longest written-out θ(t) put into ``theta_function.formula`` (the schema allows 1000 characters)
_FORMULA_LIMIT = 1000


def theta_formula(terms: dict) -> str:
    r"""``theta_function.formula`` of a closed-form θ(t): the general form and every component with its numbers
    written in (Python syntax, so it can be read and evaluated), e.g. ``theta[0](t) = 0.5 + 1.2*cos(3.0*t)``.
    ``terms``: ``a``, ``b``, ``c``, ``slope`` (length p) and ``omega``, meaning componentwise
    :math:`\theta(t) = a + b\sin(\omega t) + c\cos(\omega t) + \mathrm{slope}\cdot t`."""
    head = "theta(t) = a + b sin(omega t) + c cos(omega t) + slope t, componentwise"
    w = _number(terms["omega"])
    parts = []
    for k in range(len(terms["a"])):
        expr = _number(terms["a"][k])
        for key, fmt in (("b", "*sin({w}*t)"), ("c", "*cos({w}*t)"), ("slope", "*t")):
            v = float(terms.get(key, [0.0] * len(terms["a"]))[k])
            if v != 0.0:
                expr += (" - " if v < 0 else " + ") + _number(abs(v)) + fmt.format(w=w)
        parts.append(f"theta[{k}](t) = {expr}")
    full = f"{head}: " + "; ".join(parts)
    return full if len(full) <= _FORMULA_LIMIT else f"{head} (too many components to write out: see a, b, c, slope)"


def theta_from_spec(tspec: dict):
    r"""θ(t) (a callable t ↦ (p,) array) from a case's ``theta_function``, or None when it is not in closed form
    (``"callable"``, ``"samples"``). ``"sinusoid"`` and ``"analytic"``: componentwise
    :math:`a + b\sin(\omega t) + c\cos(\omega t) + \mathrm{slope}\cdot t` (absent ``c``/``slope`` are 0)."""
    if tspec.get("kind") not in ("sinusoid", "analytic") or "a" not in tspec:
        return None
    a = np.asarray(tspec["a"], dtype=np.float64)
    zero = np.zeros_like(a)
    b, c, slope = (np.asarray(tspec.get(k, zero), dtype=np.float64) for k in ("b", "c", "slope"))
    if not (a.shape == b.shape == c.shape == slope.shape):
        raise CaseFormatError(f"theta_function: a, b, c, slope must have the same length, got "
                              f"{[len(v) for v in (a, b, c, slope)]}")
    omega = float(tspec.get("omega", 0.0))

    def theta(t: float) -> np.ndarray:
        return a + b * np.sin(omega * t) + c * np.cos(omega * t) + slope * t
    return theta


def _layout_roles(layout: str, lmm: bool) -> dict:
    """How ``theta``, ``sample_times``, ``stage_index`` and ``stage_times`` are used in this layout: the array
    descriptions written into case.json (docs/case-format.md § Parameter samples: the three layouts)."""
    ev = "stage i of starter step n (grid_times: the multistep evaluations)" if lmm else "stage i of step n"
    if layout == "stage":
        return {"theta": "theta_r = theta(sample_times[r]), one row per distinct evaluation time of f; a function "
                         "of time: the evaluation at time t uses the row whose sample time is t, shape (n_samples, p)",
                "sample_times": "the distinct times at which the scheme evaluates f, increasing, shape (n_samples,)",
                "stage_times": "the time of " + ev + "; here stage_times == sample_times[stage_index]"}
    if layout == "step":
        return {"theta": "theta_n, the parameter of step n, used by every evaluation of f belonging to step n "
                         "(per-step args, NOT a function of time: the c = 1 stage of step n sits at t_{n+1} but "
                         "uses row n), shape (N, p)",
                "sample_times": "t_n, the left end of step n (a label: row n also serves t_{n+1} in the c = 1 "
                                "stage of step n), shape (N,)",
                "stage_times": "the time of " + ev + "; the row it uses is stage_index (its step), not its time"}
    return {"theta": "the one parameter vector shared by every evaluation of f (time-independent), shape (1, p)",
            "sample_times": "[0.0]: the constant sample has no time (a placeholder), shape (1,)",
            "stage_times": "the time of " + ev + " (theta does not depend on it: every stage uses row 0)"}


#: the tolerance rule of each reference that is not a discrete quantity
_TOLERANCE_KIND = {"continuous_gradient": "continuous", "piecewise_constant_continuous_gradient": "piecewise",
                   "piecewise_constant_grad_x0": "piecewise"}


def _piecewise_reference(field, theta, x0, T, loss, arrays, how, checks, notes, analytic_case) -> None:
    r"""Add ``piecewise_constant_continuous_gradient`` and ``piecewise_constant_grad_x0``: the continuous adjoint of
    the problem whose parameter is ``theta[n]`` on :math:`[t_n, t_{n+1})` (one row: constant on [0, T]), by
    :func:`refimpl.ode.piecewise_adjoint.piecewise_constant_continuous_gradient` (DOP853 per piece, rtol = atol =
    1e-12), its "tighter" error estimates in ``checks``. For a constant-θ analytic case the closed form
    :math:`dL/d\theta = \int_0^T \delta L/\delta\theta\,dt` is a second route: the distance goes into ``notes``
    and must be within the error estimate's tolerance."""
    from refimpl.ode.piecewise_adjoint import piecewise_constant_continuous_gradient

    res = piecewise_constant_continuous_gradient(field, theta, x0, T, loss, rtol=CONTINUOUS_RTOL_SOLVE,
                                                 atol=CONTINUOUS_RTOL_SOLVE)
    arrays["piecewise_constant_continuous_gradient"] = np.asarray(res.grad_theta, dtype=np.float64)
    arrays["piecewise_constant_grad_x0"] = np.asarray(res.grad_x0, dtype=np.float64)
    checks["piecewise_constant_continuous_gradient"] = float(res.error.grad_theta)
    checks["piecewise_constant_grad_x0"] = float(res.error.grad_x0)
    text = (f"refimpl.ode.piecewise_adjoint.piecewise_constant_continuous_gradient (DOP853 per step, rtol = atol = "
            f"{CONTINUOUS_RTOL_SOLVE:g}, the adjoint continuous across the steps); its 'tighter' error estimate "
            f"(absolute) in provenance.route_checks")
    how["piecewise_constant_continuous_gradient"] = how["piecewise_constant_grad_x0"] = text
    if analytic_case is not None and analytic_case.theta_is_constant:
        exact = np.asarray(analytic_case.integrated_gradient_exact(), dtype=np.float64).reshape(1, -1)
        err = float(np.max(np.abs(exact - arrays["piecewise_constant_continuous_gradient"])))
        tol = _tolerance("piecewise", exact, checks["piecewise_constant_continuous_gradient"])
        if err > tol["atol"] / 100:
            raise RuntimeError(f"piecewise-constant reference {err:.3g} from the closed form dL/dtheta (more than "
                               f"1/100 of the tolerance {tol['atol']:.3g})")
        notes.append(f"piecewise_constant_continuous_gradient: max |ref - closed-form dL/dtheta| = {err:.3e} "
                     f"(refimpl.problems.analytic_ode case {analytic_case.name!r}, integrated_gradient_exact)")


def _tolerance(kind: str, ref: np.ndarray, estimate: float = 0.0) -> dict:
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    if kind == "piecewise":
        floor = CONTINUOUS_TOL * scale if scale > 0 else CONTINUOUS_TOL
        return {"rtol": CONTINUOUS_TOL, "atol": max(floor, 100 * float(estimate)),
                "why": f"atol = max(1e-7 max|ref|, 100 E), E = {float(estimate):.2e} the reference's error estimate "
                       f"(provenance.route_checks): a backsolve adjoint stopping at every t_n, run at rtol ~1e-8, "
                       f"passes (docs/case-format.md)"}
    if kind == "continuous":
        return {"rtol": CONTINUOUS_TOL, "atol": CONTINUOUS_TOL * scale if scale > 0 else CONTINUOUS_TOL,
                "why": "reference error <= 1/100 of this; a continuous-adjoint solver at rtol ~1e-8 passes, an O(h) "
                       "discrete gradient does not (docs/case-format.md)"}
    return {"rtol": DISCRETE_RTOL, "atol": DISCRETE_ATOL * max(1.0, scale),
            "why": "float64 rounding of a different evaluation order, ~N s eps kappa (docs/case-format.md)"}


def build_case(problem: OdeProblem, *, continuous=None, description: str = "") -> Case:
    """Compute every reference of ``problem`` (module docstring) and return the validated :class:`Case`.

    ``continuous``: optional callable ``times -> (functional_gradient (m, p), error bound)`` replacing the DOP853 solve
    (the battery uses it to solve once per base problem on a fine grid)."""
    import scipy

    from refimpl import ad
    from refimpl.problems import analytic_ode as analytic
    from refimpl.ode.adjoint_recursions import discrete_adjoint
    from refimpl.ode.fields import QuadraticLoss
    from refimpl.ode.integrators import discrete_loss, integrate
    from refimpl.ode.samples import parameter_samples

    if not isinstance(problem, OdeProblem):
        raise TypeError(f"problem must be an OdeProblem, got {type(problem).__name__}")
    if not isinstance(problem.name, str) or not _NAME.fullmatch(problem.name):
        raise ValueError(f"problem.name must match {_NAME.pattern}, got {problem.name!r}")
    field, method = problem.field, problem.resolved_method()
    fspec = field_spec(field)
    x0 = np.asarray(problem.x0, dtype=np.float64)
    loss = QuadraticLoss(np.asarray(problem.y, dtype=np.float64))
    T, N, layout = problem.T, problem.N, problem.layout
    starter = problem.starter  # part of the problem: required for a multistep method, refused for ERK
    smp = parameter_samples(method, T, N, layout, starter)
    theta_src = problem.theta
    analytic_case = theta_src if isinstance(theta_src, analytic.AnalyticCase) else None
    if analytic_case is not None:
        terms = analytic_case.theta_terms()
        theta_fn, tspec = analytic_case.theta, {"kind": "analytic", "case": analytic_case.name,
                                                "formula": theta_formula(terms), **terms}
    elif isinstance(theta_src, Sinusoid):
        zero = [0.0] * len(theta_src.a)
        theta_fn, tspec = theta_src, {**theta_src.spec(), "c": zero, "slope": zero}
        tspec["formula"] = theta_formula(tspec)
    elif callable(theta_src):
        theta_fn, tspec = theta_src, {"kind": "callable", "formula": "a user callable; samples in theta"}
    else:
        theta_fn, tspec = None, {"kind": "samples", "formula": "only the samples in theta are given"}
    if theta_fn is None:
        theta = np.asarray(theta_src, dtype=np.float64)
    else:
        theta = np.array([np.asarray(theta_fn(float(t)), dtype=np.float64) for t in smp.times]).reshape(
            smp.n_samples, field.n_params)

    written = theta_from_spec(tspec)
    if written is not None:  # the θ(t) written into case.json reproduces the samples (rounding of another order)
        same_input("theta", theta, np.array([written(float(t)) for t in smp.times]).reshape(theta.shape),
                   problem.name)

    # the compiled sweeps with the pinned point functions: faster default kernels never move a stored case
    da = discrete_adjoint(pinned_field(field), method, x0, theta, T, N, loss, layout=layout, starter=starter)
    grad = np.asarray(da.grad_theta, dtype=np.float64)
    # the second route: tape through the generic integrator
    d = x0.shape[0]

    def packed_loss(z):  # one tape pass for both gradients: z = (x0, theta row-major)
        return discrete_loss(field, method, z[:d], ad.ops.reshape(z[d:], theta.shape), T, N, loss, layout=layout,
                             starter=starter)
    tape = ad.grad(packed_loss)(np.concatenate([x0, theta.ravel()]))
    tape_x0, tape_grad = tape[:d], tape[d:].reshape(theta.shape)
    traj2 = np.asarray(integrate(field, method, x0, theta, T, N, layout=layout, starter=starter).x)
    checks = {"discrete_gradient": normwise_disagreement(tape_grad, grad),
              "grad_x0": normwise_disagreement(tape_x0, da.grad_x0),
              "trajectory": normwise_disagreement(traj2, da.trajectory)}
    worst = max(checks.values())
    if worst > ROUTE_AGREEMENT:
        raise RuntimeError(f"case {problem.name!r}: the hand adjoint and the tape disagree by {worst:.3g} "
                           f"(> {ROUTE_AGREEMENT}); refusing to export an untrustworthy reference ({checks})")

    arrays = {"x0": x0, "theta": theta, "sample_times": np.array(smp.times), "stage_weights": np.array(smp.weights),
              "stage_index": np.array(smp.stage_index, dtype=np.int64), "stage_times": stage_times(smp),
              "trajectory": np.asarray(da.trajectory, dtype=np.float64),
              "loss": np.asarray(float(da.loss)), "discrete_gradient": grad,
              "grad_x0": np.asarray(da.grad_x0, dtype=np.float64)}
    if smp.grid_index is not None:
        arrays["grid_index"] = np.array(smp.grid_index, dtype=np.int64)
        arrays["grid_times"] = grid_times(smp)
    if layout == "stage":  # the stage layout is a function of time: stage (n, i) uses the sample at its own time
        at = np.asarray(smp.times)[arrays["stage_index"]]
        if np.max(np.abs(at - arrays["stage_times"]), initial=0.0) > 4 * np.finfo(float).eps * float(T):
            raise RuntimeError(f"case {problem.name!r}: stage_times and sample_times[stage_index] disagree")
    how_discrete = (f"refimpl.ode.adjoint_recursions.discrete_adjoint (hand-derived recursion, backend {da.backend}); "
                    f"cross-checked against the tape (refimpl.ad.grad through refimpl.ode.integrators.discrete_loss), "
                    f"normwise relative disagreement in provenance.route_checks")
    how = {"trajectory": "refimpl.ode.adjoint_recursions forward pass; cross-checked against "
                         "refimpl.ode.integrators.integrate", "loss": how_discrete, "discrete_gradient": how_discrete,
           "grad_x0": how_discrete}
    notes = []
    corrected, why_not = corrected_estimate(grad, smp)
    if corrected is not None:
        arrays["corrected_times"] = np.array(corrected.times)
        arrays["corrected_gradient"] = np.array(corrected.values)
        how["corrected_gradient"] = (f"refimpl.ode.corrections.applicable_estimates(...)['corrected'] "
                                     f"({corrected.label}) of discrete_gradient")
    else:
        notes.append(f"corrected_gradient omitted: {why_not}")
    if np.all(smp.weights != 0):
        arrays["normalised_gradient"] = da.normalised_gradient()
        how["normalised_gradient"] = "discrete_gradient[r] / (h * stage_weights[r]) (docs/theory/discrete-adjoint.md)"
    else:
        notes.append("normalised_gradient omitted: some stage weights are 0 (those samples carry no information)")
    if layout == "constant":
        notes.append("continuous_gradient omitted: with one theta for all times the continuous counterpart of the "
                     "discrete gradient is dL/dtheta = int_0^T deltaL/deltatheta dt, given as "
                     "piecewise_constant_continuous_gradient")
    if layout in ("step", "constant"):
        _piecewise_reference(field, theta, x0, T, loss, arrays, how, checks, notes,
                             analytic_case if layout == "constant" else None)
    if theta_fn is not None and layout != "constant":
        if continuous is None:
            continuous = (_closed_form(analytic_case) if analytic_case is not None
                          else _dop853(field, theta_fn, x0, T, loss))
        cont, bound = continuous(np.array(smp.times))
        cont = np.asarray(cont, dtype=np.float64).reshape(theta.shape)
        tol = _tolerance("continuous", cont)
        if bound > tol["atol"] / 100:
            raise RuntimeError(f"case {problem.name!r}: continuous reference error bound {bound:.3g} is not below "
                               f"1/100 of the tolerance {tol['atol']:.3g}")
        arrays["continuous_gradient"] = cont
        if analytic_case is not None:
            how["continuous_gradient"] = (f"closed form: refimpl.problems.analytic_ode case {analytic_case.name!r}, "
                                          f"functional_gradient_exact at sample_times")
        else:
            checks["continuous_gradient"] = float(bound)
            how["continuous_gradient"] = (f"refimpl.ode.adjoint_ode.continuous_adjoint (DOP853, rtol "
                                          f"{CONTINUOUS_RTOL_SOLVE:g}); its 'tighter' error bound (absolute) in "
                                          f"provenance.route_checks")
        if corrected is not None:
            ct = np.array(corrected.times)
            inside = (ct >= 0) & (ct <= T)
            at_ct = np.asarray(continuous(ct[inside])[0]).reshape(-1, field.n_params)
            err = float(np.max(np.abs(np.asarray(corrected.values)[inside] - at_ct)))
            notes.append(f"corrected_gradient: max |corrected - deltaL/deltatheta| = {err:.3e} at N = {N} "
                         f"(a first-order estimate; docs/theory/oscillations-and-corrections.md)")

    declared = OdeCaseKind.declare(arrays)
    for name, text in _layout_roles(layout, smp.grid_index is not None).items():
        if name in declared:
            declared[name]["description"] = text
    tolerances = {name: _tolerance(_TOLERANCE_KIND.get(name, "discrete"), arrays[name], checks.get(name, 0.0))
                  for name, e in declared.items() if e["role"] == "reference"}
    metadata = {
        "format": "refimpl-case", "format_version": 1, "name": problem.name, "kind": "ode",
        "description": description or f"{fspec['family']} field, {method.name}"
                                      f"{'' if smp.starter is None else ' (starter ' + smp.starter.name + ')'}, "
                                      f"{layout} layout, N = {N}",
        "problem": {"field": fspec, "scheme": scheme_spec(method),
                    "starter": None if smp.starter is None else scheme_spec(smp.starter), "layout": layout,
                    "T": float(T), "N": int(N), "h": float(T) / int(N),
                    "loss": loss_spec(loss),
                    "theta_function": tspec},
        "arrays": declared, "tolerances": tolerances,
        "provenance": {"refimpl_version": refimpl.__version__, "numpy_version": np.__version__,
                       "scipy_version": scipy.__version__, "created_by": "refimpl.oracle.ode_cases.build_case",
                       "how": how, "route_checks": checks, "notes": notes},
    }
    return Case(metadata, arrays, source=problem.name)


# ---------------------------------------------------------------------------------------------------------------------
# the battery

#: battery grid size (small: the battery must export in seconds and stay small on disk)
BATTERY_N = 16
#: the phenomenon cases of [A] (docs/theory/oscillations-and-corrections.md) use a larger N
PHENOMENON_N = 64


def _closed_form(case):
    """times -> (δL/δθ at times in closed form, error bound 0) for an analytic case."""
    def evaluate(times):
        return np.asarray(case.functional_gradient_exact(np.asarray(times))).reshape(len(times), -1), 0.0
    return evaluate


def _dop853(field, theta_fn, x0, T, loss):
    """times -> (δL/δθ at times by DOP853 at rtol 1e-12, its 'tighter' error bound)."""
    from refimpl.ode.adjoint_ode import continuous_adjoint

    def evaluate(times):
        res = continuous_adjoint(field, theta_fn, np.asarray(x0, dtype=np.float64), T, loss, times=np.asarray(times),
                                 rtol=CONTINUOUS_RTOL_SOLVE)
        return res.functional_gradient, res.error.functional_gradient
    return evaluate


def _on_fine_grid(evaluate, T, N):
    """Evaluate once on the grid t = j T/(6N) (every stage time and midpoint of the named schemes: offsets in
    (1/6)Z) and answer later requests on that grid by lookup — shared by every case of a base problem."""
    grid = np.arange(6 * N + 1) * (T / (6 * N))
    values, bound = evaluate(grid)

    def lookup(times):
        times = np.asarray(times)
        j = np.rint(times * (6 * N) / T).astype(np.int64)
        if np.max(np.abs(grid[j] - times)) > 1e-14 * T:
            raise ValueError("times: not on the 1/6-step grid")
        return values[j], bound
    return lookup


def _fine_grid_solver(field, theta_fn, x0, y, T, N):
    from refimpl.ode.fields import QuadraticLoss

    return _on_fine_grid(_dop853(field, theta_fn, x0, T, QuadraticLoss(np.asarray(y, dtype=np.float64))), T, N)


def _scheme_variants():
    """(method name, starter, label) for every named scheme; multistep methods with both starters."""
    from refimpl.ode import schemes

    out = [(name, None, name) for name in schemes.TABLEAUX]
    for name in schemes.MULTISTEP_METHODS:
        out += [(name, "forward_euler", f"{name}-fe"), (name, "matched", f"{name}-matched")]
    return out


def ode_battery(*, quick: bool = False):
    """Yield the ODE cases of the battery: every named scheme (multistep methods with the forward-Euler and the matched
    starter) × the stage and step layouts × four neural/base fields (tanh, linear, two-layer tanh, polynomial; d = 2) at
    N = :data:`BATTERY_N`; the phenomenon cases of [A] (tanh, leapfrog/Ralston/midpoint/forward Euler, N =
    :data:`PHENOMENON_N`); and every analytic case × (forward Euler, Heun, RK4, leapfrog, AB2) with closed-form
    continuous gradients. The constant layout (one θ for every evaluation): every named scheme × the four base fields
    with θ ≡ a, the constant part of the base problem's path, and the constant-θ analytic cases × (forward Euler,
    Heun, RK4, leapfrog, AB2), whose closed-form dL/dθ checks the piecewise-constant reference. ``quick`` keeps only
    the tanh field and two analytic cases (for tests)."""
    from refimpl.problems import analytic_ode as analytic

    bases = oracle_base_problems()[:1] if quick else oracle_base_problems()
    for base, field, x0, y, theta in bases:
        cont = _fine_grid_solver(field, theta, x0, y, 1.0, BATTERY_N)
        constant = Sinusoid(theta.a, (0.0,) * len(theta.a), theta.omega)  # θ(t) ≡ a
        for method, starter, label in _scheme_variants():
            for layout in ("stage", "step"):
                yield build_case(OdeProblem(f"{base}__{label}__{layout}__N{BATTERY_N}", field, method, x0, y, 1.0,
                                            BATTERY_N, theta, layout, starter), continuous=cont)
            yield build_case(OdeProblem(f"{base}__{label}__constant__N{BATTERY_N}", field, method, x0, y, 1.0,
                                        BATTERY_N, constant, "constant", starter),
                             description=f"{base}: one theta shared by every step and stage (time-independent), "
                                         f"{label}")
    field, x0, y, theta = oracle_base_problems()[0][1:]
    cont = _fine_grid_solver(field, theta, x0, y, 1.0, PHENOMENON_N)
    for method, starter in (("leapfrog", "forward_euler"), ("ralston", None), ("midpoint", None),
                            ("forward_euler", None)):
        label = method + ("-fe" if starter else "")
        yield build_case(OdeProblem(f"phenomenon-tanh-d2__{label}__stage__N{PHENOMENON_N}", field, method, x0, y, 1.0,
                                    PHENOMENON_N, theta, "stage", starter), continuous=cont,
                         description="the phenomenon of [A] (arXiv 2306.02192; see "
                                     "docs/theory/oscillations-and-corrections.md): compare normalised_gradient with "
                                     "continuous_gradient")
    cases = analytic.analytic_cases()
    for case in (cases[:2] if quick else cases):
        cont = _on_fine_grid(_closed_form(case), case.T, BATTERY_N)
        for method, starter in (("forward_euler", None), ("heun", None), ("rk4", None),
                                ("leapfrog", "forward_euler"), ("ab2", "matched")):
            yield build_case(OdeProblem(f"analytic-{case.name}__{method}__stage__N{BATTERY_N}", case.field, method,
                                        case.x0, case.loss.y, case.T, BATTERY_N, case, "stage", starter),
                             continuous=cont)
            if case.theta_is_constant:
                yield build_case(OdeProblem(f"analytic-{case.name}__{method}__constant__N{BATTERY_N}", case.field,
                                            method, case.x0, case.loss.y, case.T, BATTERY_N, case, "constant",
                                            starter))


# ---------------------------------------------------------------------------------------------------------------------
# the case kind


def _rational(v) -> Fraction:
    return Fraction(v) if isinstance(v, str) else Fraction(float(v))


@CASE_KINDS.register
class OdeCaseKind(CaseKind):
    """``kind = "ode"``: the arrays, the consistency rules, the recomputation and the battery of ODE cases."""

    family = "ode"
    problem_schema = {"$ref": "#/$defs/ode_problem"}
    inputs = ODE_INPUTS
    references = ODE_REFERENCES
    required = ("x0", "theta", "sample_times", "stage_weights", "trajectory", "loss", "discrete_gradient", "grad_x0")

    @classmethod
    def summary(cls, case: Case) -> str:
        p = case.problem
        st = f", starter={p['starter']['name']!r}" if p["starter"] else ""
        return (f"{p['field']['family']} d={p['field']['dim']}, {p['scheme']['name']}{st}, layout={p['layout']!r}, "
                f"N={p['N']}")

    @classmethod
    def check_problem(cls, case: Case, where: str) -> None:
        p, a = case.problem, case.arrays
        fld, d, n_p, N = p["field"], p["field"]["dim"], p["field"]["n_params"], p["N"]
        if fld["family"] not in field_families():
            raise CaseFormatError(f"{where}: problem.field.family {fld['family']!r} is not a known vector field "
                                  f"(known: {sorted(field_families())})")
        n_s = a["theta"].shape[0] if a["theta"].ndim == 2 else -1
        expected = {"x0": (d,), "theta": (n_s, n_p), "sample_times": (n_s,), "stage_weights": (n_s,),
                    "trajectory": (N + 1, d), "loss": (), "discrete_gradient": (n_s, n_p), "grad_x0": (d,),
                    "normalised_gradient": (n_s, n_p), "continuous_gradient": (n_s, n_p), "grid_index": (N,),
                    "grid_times": (N,), "piecewise_constant_continuous_gradient": (n_s, n_p),
                    "piecewise_constant_grad_x0": (d,)}
        if "stage_times" in a:
            expected["stage_times"] = a["stage_index"].shape if "stage_index" in a else (-1,)
        for name, shape in expected.items():
            if name in a and a[name].shape != shape:
                raise CaseFormatError(f"{where}: array {name!r} must have shape {shape} (d = {d}, p = {n_p}, N = {N}, "
                                      f"n_samples = {n_s}), got {a[name].shape}")
        for name in ("stage_index", "grid_index"):
            if name in a and a[name].size and (a[name].min() < -1 or a[name].max() >= n_s):
                raise CaseFormatError(f"{where}: array {name!r} holds indices outside [-1, {n_s})")
        if p["layout"] == "stage" and any(k.startswith("piecewise_constant_") for k in a):
            raise CaseFormatError(f"{where}: the piecewise-constant references belong to the step and constant "
                                  f"layouts (in the stage layout theta is not a per-step table)")
        if p["layout"] == "constant" and a["theta"].shape[0] != 1:
            raise CaseFormatError(f"{where}: a constant-layout case has one row of theta, got {a['theta'].shape[0]}")
        for index, times in (("stage_index", "stage_times"), ("grid_index", "grid_times")):
            if (index in a) != (times in a):
                raise CaseFormatError(f"{where}: arrays {index!r} and {times!r} come together")
        if ("corrected_gradient" in a) != ("corrected_times" in a):
            raise CaseFormatError(f"{where}: 'corrected_gradient' and 'corrected_times' come together")
        if "corrected_gradient" in a:
            m = a["corrected_times"].shape[0] if a["corrected_times"].ndim == 1 else -1
            if a["corrected_gradient"].shape != (m, n_p):
                raise CaseFormatError(f"{where}: array 'corrected_gradient' must have shape (m, p) = ({m}, {n_p}) "
                                      f"with m = len(corrected_times)")
        if len(p["loss"]["y"]) != d:
            raise CaseFormatError(f"{where}: problem.loss.y has {len(p['loss']['y'])} entries, expected dim = {d}")
        if not math.isclose(p["h"], p["T"] / N, rel_tol=1e-12):
            raise CaseFormatError(f"{where}: problem.h = {p['h']!r} is not T/N = {p['T'] / N!r}")
        for name, M in fld.get("fixed", {}).items():
            if len({len(row) for row in M}) > 1 or not M:
                raise CaseFormatError(f"{where}: problem.field.fixed.{name} is not a rectangular matrix")
        scheme, starter = p["scheme"], p["starter"]
        if (scheme["family"] == "multistep") != (starter is not None):
            raise CaseFormatError(f"{where}: problem.starter must be a tableau for a multistep scheme and null for a "
                                  f"Runge-Kutta scheme")
        try:
            for tab in [t for t in (scheme, starter) if t and t["family"] == "runge_kutta"]:
                s = len(tab["b"])
                if len(tab["A"]) != s or any(len(r) != s for r in tab["A"]) or len(tab["c"]) != s:
                    raise CaseFormatError(f"{where}: tableau {tab['name']!r}: A must be {s}x{s} and c of length {s}")
                [_rational(v) for row in tab["A"] for v in row + tab["b"] + tab["c"]]
            if scheme["family"] == "multistep":
                [_rational(v) for v in scheme["alpha"] + scheme["beta"]]
        except (ValueError, ZeroDivisionError, OverflowError) as e:
            raise CaseFormatError(f"{where}: a scheme coefficient is not a number ({e})") from None

    @classmethod
    def recompute(cls, case: Case) -> dict:
        from refimpl.problems import analytic_ode as analytic
        from refimpl.ode.adjoint_ode import continuous_adjoint
        from refimpl.ode.adjoint_recursions import discrete_adjoint
        from refimpl.ode.samples import parameter_samples

        where = case.source or case.name
        o = problem_objects(case)
        smp = parameter_samples(o["method"], o["T"], o["N"], o["layout"], o["starter"])
        same_input("sample_times", case.sample_times, smp.times, where)
        same_input("stage_weights", case.stage_weights, smp.weights, where)
        if "stage_index" in case.arrays:
            same_input("stage_index", case.arrays["stage_index"], smp.stage_index, where)
            same_input("stage_times", case.arrays["stage_times"], stage_times(smp), where)
        if "grid_index" in case.arrays or smp.grid_index is not None:
            same_input("grid_index", case.arrays.get("grid_index", np.zeros(0)),
                       smp.grid_index if smp.grid_index is not None else np.zeros(0), where)
            same_input("grid_times", case.arrays.get("grid_times", np.zeros(0)),
                       grid_times(smp) if smp.grid_index is not None else np.zeros(0), where)
        tf = case.problem["theta_function"]
        theta_fn = None
        if tf["kind"] == "sinusoid":
            theta_fn = Sinusoid(tuple(tf["a"]), tuple(tf["b"]), tf["omega"])
            if any(v != 0 for key in ("c", "slope") for v in tf.get(key, ())):
                raise CaseFormatError(f"{where}: a 'sinusoid' theta_function has c = slope = 0")
        elif tf["kind"] == "analytic":
            matches = [c for c in analytic.analytic_cases() if c.name == tf.get("case")]
            if not matches:
                raise CaseFormatError(f"{where}: unknown analytic case {tf.get('case')!r}")
            theta_fn = matches[0]
        written = theta_from_spec(tf)  # the θ(t) written into the case: what a foreign solver reads
        if written is not None:
            same_input("theta", case.theta,
                       np.array([written(float(t)) for t in smp.times]).reshape(case.theta.shape), where)
        if theta_fn is not None:
            at = theta_fn.theta if tf["kind"] == "analytic" else theta_fn
            same_input("theta", case.theta,
                       np.array([at(float(t)) for t in smp.times]).reshape(case.theta.shape), where)
        da = discrete_adjoint(o["field"], o["method"], o["x0"], o["theta"], o["T"], o["N"], o["loss"],
                              layout=o["layout"], starter=o["starter"])
        out = {"trajectory": da.trajectory, "loss": np.asarray(float(da.loss)), "discrete_gradient": da.grad_theta,
               "grad_x0": da.grad_x0}
        if "normalised_gradient" in case.arrays:
            out["normalised_gradient"] = da.normalised_gradient()
        corrected, why_not = corrected_estimate(np.asarray(da.grad_theta, dtype=np.float64), smp)
        if "corrected_gradient" in case.arrays:
            if corrected is None:
                raise CaseFormatError(f"{where}: the case has a corrected gradient but {why_not}")
            same_input("corrected_times", case.arrays["corrected_times"], corrected.times, where)
            out["corrected_gradient"] = corrected.values
        if "piecewise_constant_continuous_gradient" in case.arrays or "piecewise_constant_grad_x0" in case.arrays:
            from refimpl.ode.piecewise_adjoint import piecewise_constant_continuous_gradient

            res = piecewise_constant_continuous_gradient(o["field"], o["theta"], o["x0"], o["T"], o["loss"],
                                                         rtol=CONTINUOUS_RTOL_SOLVE, atol=CONTINUOUS_RTOL_SOLVE,
                                                         error_estimate=None)
            out["piecewise_constant_continuous_gradient"] = res.grad_theta
            out["piecewise_constant_grad_x0"] = res.grad_x0
            out = {k: v for k, v in out.items() if k in case.arrays}
        if "continuous_gradient" in case.arrays and theta_fn is not None:
            if tf["kind"] == "analytic":
                out["continuous_gradient"] = theta_fn.functional_gradient_exact(np.array(smp.times))
            else:
                out["continuous_gradient"] = continuous_adjoint(o["field"], theta_fn, o["x0"], o["T"], o["loss"],
                                                                times=np.array(smp.times), rtol=1e-12,
                                                                error_estimate=None).functional_gradient
        return {k: np.asarray(v, dtype=np.float64).reshape(case.arrays[k].shape) for k, v in out.items()}

    @classmethod
    def battery(cls, *, quick: bool = False):
        return ode_battery(quick=quick)

    @classmethod
    def rounding_depth(cls, case: Case) -> int:
        """N steps × s field evaluations per step (a multistep method: its starter's s, at least 1), the chain the
        forward and adjoint sweeps accumulate rounding along (refimpl.oracle.precision)."""
        p = case.problem
        stages = [len(t["b"]) for t in (p["scheme"], p["starter"]) if t and t["family"] == "runge_kutta"]
        return int(p["N"]) * max([1] + stages)
