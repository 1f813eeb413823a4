r"""Building oracle cases (SPEC §5): an :class:`OdeProblem` → a :class:`~refimpl.oracle.case_io.Case` holding the
reference outputs, and the curated battery :func:`battery` / :func:`export_battery`.

How each reference is computed (also written into every case's ``provenance.how``):

``trajectory``, ``loss``, ``discrete_gradient``, ``grad_x0``
    :func:`refimpl.ode.discrete_adjoint.discrete_adjoint` — the hand-derived backward recursion (Numba kernel for the
    tanh/linear fields, NumPy for the others). *Second route*, checked at build time: the tape
    (``refimpl.ad.grad`` through the generic integrator :func:`refimpl.ode.integrate.discrete_loss`) for the gradients
    and :func:`refimpl.ode.integrate.integrate` for the trajectory; the normwise relative disagreement is stored in
    ``provenance.route_checks`` and a case is refused if it exceeds :data:`ROUTE_AGREEMENT` (SPEC §3 asks ≤ 1e-13).
``normalised_gradient``
    :math:`g_r = G_r/(h w_r)` (SPEC §3); omitted when some stage weight is 0 (midpoint stage layout).
``continuous_gradient``
    :math:`\delta L/\delta\theta(t_r)` at the sample times: in closed form for the analytic cases
    (:mod:`refimpl.ode.analytic`), else by :func:`refimpl.ode.continuous_adjoint.continuous_adjoint` (DOP853, rtol
    1e-12, with its "tighter" error estimate, which must be ≤ 1/100 of the tolerance).
``corrected_gradient`` (with ``corrected_times``)
    the ``"corrected"`` estimate of :func:`refimpl.ode.corrections.applicable_estimates` (leapfrog pair sum at the
    midpoints, Runge–Kutta :math:`G_r/(h b_i)` with reconstruction where :math:`b_i = 0`) where one applies (not for
    AB2–AB4: SPEC §3 proposes none); its measured distance to the continuous gradient is written in
    ``provenance.notes``. Tolerance: the discrete one (it is a fixed post-processing of the discrete gradient).

Tolerances (a foreign array passes when :math:`|x - x_{ref}| \le atol + rtol|x_{ref}|` entrywise):

* discrete quantities: ``rtol = 1e-10``, ``atol = 1e-12·max(1, max|ref|)``. Why: a different but valid float64
  evaluation order changes each of the :math:`N s` stage evaluations by a few ulps; the accumulated difference is
  about :math:`N s\,\varepsilon\,\kappa \approx 64·4·2.2·10^{-16}\kappa \approx 6·10^{-14}\kappa` (κ: amplification
  by the flow and its adjoint), so 1e-10 leaves three orders of magnitude for κ while any modelling error (wrong
  starter, wrong stage time, a missing factor 2) is O(h) ≥ 1e-3 here. Float32 implementations need a looser tolerance
  (``compare(..., tolerances=...)``).
* continuous gradient: ``rtol = 1e-7``, ``atol = 1e-7·max|ref|``: a continuous-adjoint solver run at rtol ~1e-8
  passes; a discrete gradient (error O(h) or, for the phenomenon of [A], O(1)) does not.
"""
from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import scipy

import refimpl
from refimpl import ad
from refimpl.ode import schemes
from refimpl.ode.adjoint_ode import continuous_adjoint
from refimpl.ode.corrections import applicable_estimates
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import (LinearField, LinearForcingField, PolynomialField, QuadraticLoss, ScaledLinearField,
                                TanhField, TwoLayerTanhField)
from refimpl.ode.integrators import discrete_loss, integrate
from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.samples import parameter_samples
from refimpl.ode.tableau import ButcherTableau
from refimpl.problems import analytic_ode as analytic
from refimpl.oracle.case_io import ODE_INPUTS, ODE_REFERENCES, Case, save_case

__all__ = ["OdeProblem", "Sinusoid", "build_case", "battery", "export_battery", "problem_objects", "field_spec",
           "field_from_spec", "corrected_estimate", "ROUTE_AGREEMENT"]

#: largest normwise relative disagreement between the hand recursion and the tape/integrator accepted at build time
ROUTE_AGREEMENT = 1e-12
DISCRETE_RTOL, DISCRETE_ATOL = 1e-10, 1e-12
CONTINUOUS_TOL = 1e-7
CONTINUOUS_RTOL_SOLVE = 1e-12

_FORMULAS = {
    "tanh": "f(x, theta) = tanh(W x + b), theta = (W row-major, b)",
    "linear": "f(x, theta) = A x + b, theta = (A row-major, b)",
    "two_layer_tanh": "f(x, theta) = W2 tanh(W1 x + b), theta = (W1 row-major (hidden x d), b, W2 row-major "
                      "(d x hidden)) or (W1, b) when W2 is fixed",
    "polynomial": "f_i(x, theta) = c_i + sum_j B_ij x_j + q_i x_i^2, theta = (c, B row-major, q)",
    "linear_forcing": "f(x, theta) = A x + theta, A fixed",
    "scaled_linear": "f(x, theta) = theta_0 A x, A fixed",
    "logistic": "f(x, theta) = r x (1 - x/K), theta = (r, K), d = 1",
}


# ---------------------------------------------------------------------------------------------------------------------
# fields, schemes and losses as data


def field_spec(field) -> dict:
    """The JSON description of a built-in vector field (ValueError for a field that cannot be stored as data)."""
    kinds = {TanhField: "tanh", LinearField: "linear", TwoLayerTanhField: "two_layer_tanh",
             PolynomialField: "polynomial", LinearForcingField: "linear_forcing", ScaledLinearField: "scaled_linear",
             analytic.LogisticField: "logistic"}
    family = kinds.get(type(field))
    if family is None:
        raise ValueError(f"field: {type(field).__name__} cannot be stored in a case (built-in fields only: "
                         f"{sorted(kinds.values())})")
    spec = {"family": family, "dim": int(field.dim), "n_params": int(field.n_params), "formula": _FORMULAS[family]}
    if family == "two_layer_tanh":
        spec["hidden"] = int(field.hidden)
        if field.W2 is not None:
            spec["fixed"] = {"W2": np.asarray(field.W2, dtype=np.float64).tolist()}
    if family in ("linear_forcing", "scaled_linear"):
        spec["fixed"] = {"A": np.asarray(field.A, dtype=np.float64).tolist()}
    return spec


def field_from_spec(spec: dict):
    """The refimpl vector field described by ``spec`` (inverse of :func:`field_spec`)."""
    family, d, fixed = spec["family"], spec["dim"], spec.get("fixed", {})
    if family == "tanh":
        field = TanhField(d)
    elif family == "linear":
        field = LinearField(d)
    elif family == "polynomial":
        field = PolynomialField(d)
    elif family == "two_layer_tanh":
        field = TwoLayerTanhField(d, spec["hidden"], None if "W2" not in fixed else np.array(fixed["W2"]))
    elif family == "linear_forcing":
        field = LinearForcingField(np.array(fixed["A"], dtype=np.float64))
    elif family == "scaled_linear":
        field = ScaledLinearField(np.array(fixed["A"], dtype=np.float64))
    elif family == "logistic":
        field = analytic.LogisticField()
    else:
        raise ValueError(f"field.family: unknown family {family!r}")
    if field.dim != d or field.n_params != spec["n_params"]:
        raise ValueError(f"field: the spec says dim = {d}, n_params = {spec['n_params']}, the {family} field built "
                         f"from it has dim = {field.dim}, n_params = {field.n_params}")
    return field


def _rational_text(v) -> str | float:
    return str(v) if isinstance(v, Fraction) else float(v)


def scheme_spec(method) -> dict:
    """JSON description of a tableau or multistep method (exact coefficients as "p/q" strings)."""
    if isinstance(method, ButcherTableau):
        return {"family": "runge_kutta", "name": method.name, "order": method.order,
                "A": [[_rational_text(v) for v in row] for row in method.A], "b": [_rational_text(v) for v in method.b],
                "c": [_rational_text(v) for v in method.c]}
    return {"family": "multistep", "name": method.name, "order": method.order,
            "alpha": [_rational_text(v) for v in method.alpha], "beta": [_rational_text(v) for v in method.beta]}


def scheme_from_spec(spec: dict):
    """The :class:`ButcherTableau` / :class:`LinearMultistep` described by ``spec`` (validated on construction)."""
    def num(v):
        return Fraction(v) if isinstance(v, str) else float(v)
    if spec["family"] == "runge_kutta":
        return ButcherTableau(spec["name"], tuple(tuple(num(v) for v in row) for row in spec["A"]),
                              tuple(num(v) for v in spec["b"]), tuple(num(v) for v in spec["c"]))
    return LinearMultistep(spec["name"], tuple(num(v) for v in spec["alpha"]), tuple(num(v) for v in spec["beta"]))


def problem_objects(case: Case) -> dict:
    """refimpl objects for a case's problem: ``field``, ``method``, ``starter`` (tableau or None), ``loss``, ``layout``,
    ``T``, ``N``, ``x0``, ``theta`` — the arguments of :func:`refimpl.ode.discrete_adjoint.discrete_adjoint`."""
    p = case.problem
    return {"field": field_from_spec(p["field"]), "method": scheme_from_spec(p["scheme"]),
            "starter": None if p["starter"] is None else scheme_from_spec(p["starter"]),
            "loss": QuadraticLoss(np.array(p["loss"]["y"], dtype=np.float64)), "layout": p["layout"], "T": p["T"],
            "N": p["N"], "x0": np.array(case.x0), "theta": np.array(case.theta)}


# ---------------------------------------------------------------------------------------------------------------------
# problems


@dataclass(frozen=True)
class Sinusoid:
    r""":math:`\theta(t) = a + b\sin(\omega t)` (componentwise), a smooth parameter path to sample."""

    a: tuple
    b: tuple
    omega: float

    def __call__(self, t: float) -> np.ndarray:
        return np.asarray(self.a, dtype=np.float64) + np.asarray(self.b, dtype=np.float64) * np.sin(self.omega * t)

    def spec(self) -> dict:
        return {"kind": "sinusoid", "formula": "theta(t) = a + b sin(omega t)", "a": [float(v) for v in self.a],
                "b": [float(v) for v in self.b], "omega": float(self.omega)}


@dataclass(frozen=True, eq=False)
class OdeProblem:
    r"""An ODE problem to turn into a case: ẋ = f(x, θ(t)), x(0) = x₀, L = ½|x(T) − y|².

    ``field`` a built-in vector field; ``method`` a scheme or its name (:func:`refimpl.ode.schemes.scheme`);
    ``starter`` for a multistep method ("forward_euler", "matched" or a tableau); ``layout`` "stage"/"step";
    ``theta``: a :class:`Sinusoid`, an analytic case of :mod:`refimpl.ode.analytic` (its θ(t) and closed forms are
    used), a callable t ↦ (p,) array, or an (n_samples, p) array of samples (then no continuous gradient).
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
        return schemes.scheme(self.method) if isinstance(self.method, str) else self.method


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")


def corrected_estimate(grad, samples):
    """(the ``"corrected"`` estimate of :func:`refimpl.ode.corrections.applicable_estimates`, None) — or (None, why)
    when refimpl defines no correction for the scheme or the grid is too short for it."""
    try:
        est = applicable_estimates(grad, samples).get("corrected")
    except ValueError as e:  # e.g. N = 1: fewer than two usable samples
        return None, f"the correction does not apply on this grid ({e})"
    if est is None:
        return None, f"refimpl.ode.corrections defines no correction for {samples.method.name}"
    return est, ""


def _tolerance(kind: str, ref: np.ndarray) -> dict:
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    if kind == "continuous":
        return {"rtol": CONTINUOUS_TOL, "atol": CONTINUOUS_TOL * scale if scale > 0 else CONTINUOUS_TOL,
                "why": "reference error <= 1/100 of this; a continuous-adjoint solver at rtol ~1e-8 passes, an O(h) "
                       "discrete gradient does not (refimpl.oracle.cases docstring)"}
    return {"rtol": DISCRETE_RTOL, "atol": DISCRETE_ATOL * max(1.0, scale),
            "why": "float64 rounding of a different evaluation order, ~N s eps kappa (refimpl.oracle.cases docstring)"}


def _normwise(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny) if b.size else 1.0
    return float(np.max(np.abs(a - b)) / scale) if a.size else 0.0


def build_case(problem: OdeProblem, *, continuous=None, description: str = "") -> Case:
    """Compute every reference of ``problem`` (module docstring) and return the validated :class:`Case`.

    ``continuous``: optional callable ``times -> (functional_gradient (m, p), error bound)`` replacing the DOP853 solve
    (the battery uses it to solve once per base problem on a fine grid)."""
    if not isinstance(problem, OdeProblem):
        raise TypeError(f"problem must be an OdeProblem, got {type(problem).__name__}")
    if not isinstance(problem.name, str) or not _NAME.fullmatch(problem.name):
        raise ValueError(f"problem.name must match {_NAME.pattern}, got {problem.name!r}")
    field, method = problem.field, problem.resolved_method()
    fspec = field_spec(field)
    x0 = np.asarray(problem.x0, dtype=np.float64)
    loss = QuadraticLoss(np.asarray(problem.y, dtype=np.float64))
    T, N, layout = problem.T, problem.N, problem.layout
    starter = problem.starter  # part of the problem (SPEC §2): required for a multistep method, refused for ERK
    smp = parameter_samples(method, T, N, layout, starter)
    theta_src = problem.theta
    analytic_case = theta_src if isinstance(theta_src, analytic.AnalyticCase) else None
    if analytic_case is not None:
        theta_fn, tspec = analytic_case.theta, {"kind": "analytic", "case": analytic_case.name,
                                                "formula": "theta(t) = B(t) c of the refimpl.ode.analytic case"}
    elif isinstance(theta_src, Sinusoid):
        theta_fn, tspec = theta_src, theta_src.spec()
    elif callable(theta_src):
        theta_fn, tspec = theta_src, {"kind": "callable", "formula": "a user callable; samples in theta"}
    else:
        theta_fn, tspec = None, {"kind": "samples", "formula": "only the samples in theta are given"}
    if theta_fn is None:
        theta = np.asarray(theta_src, dtype=np.float64)
    else:
        theta = np.array([np.asarray(theta_fn(float(t)), dtype=np.float64) for t in smp.times]).reshape(
            smp.n_samples, field.n_params)

    da = discrete_adjoint(field, method, x0, theta, T, N, loss, layout=layout, starter=starter)
    grad = np.asarray(da.grad_theta, dtype=np.float64)
    # the second route: tape through the generic integrator
    d = x0.shape[0]

    def packed_loss(z):  # one tape pass for both gradients: z = (x0, theta row-major)
        return discrete_loss(field, method, z[:d], ad.ops.reshape(z[d:], theta.shape), T, N, loss, layout=layout,
                             starter=starter)
    tape = ad.grad(packed_loss)(np.concatenate([x0, theta.ravel()]))
    tape_x0, tape_grad = tape[:d], tape[d:].reshape(theta.shape)
    traj2 = np.asarray(integrate(field, method, x0, theta, T, N, layout=layout, starter=starter).x)
    checks = {"discrete_gradient": _normwise(tape_grad, grad), "grad_x0": _normwise(tape_x0, da.grad_x0),
              "trajectory": _normwise(traj2, da.trajectory)}
    worst = max(checks.values())
    if worst > ROUTE_AGREEMENT:
        raise RuntimeError(f"case {problem.name!r}: the hand adjoint and the tape disagree by {worst:.3g} "
                           f"(> {ROUTE_AGREEMENT}); refusing to export an untrustworthy reference ({checks})")

    arrays = {"x0": x0, "theta": theta, "sample_times": np.array(smp.times), "stage_weights": np.array(smp.weights),
              "stage_index": np.array(smp.stage_index, dtype=np.int64),
              "trajectory": np.asarray(da.trajectory, dtype=np.float64),
              "loss": np.asarray(float(da.loss)), "discrete_gradient": grad,
              "grad_x0": np.asarray(da.grad_x0, dtype=np.float64)}
    if smp.grid_index is not None:
        arrays["grid_index"] = np.array(smp.grid_index, dtype=np.int64)
    how_discrete = (f"refimpl.ode.discrete_adjoint.discrete_adjoint (hand-derived recursion, backend {da.backend}); "
                    f"cross-checked against the tape (refimpl.ad.grad through refimpl.ode.integrate.discrete_loss), "
                    f"normwise relative disagreement in provenance.route_checks")
    how = {"trajectory": "refimpl.ode.discrete_adjoint forward pass; cross-checked against "
                         "refimpl.ode.integrate.integrate", "loss": how_discrete, "discrete_gradient": how_discrete,
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
        how["normalised_gradient"] = "discrete_gradient[r] / (h * stage_weights[r]) (SPEC §3)"
    else:
        notes.append("normalised_gradient omitted: some stage weights are 0 (those samples carry no information)")
    if theta_fn is not None:
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
            how["continuous_gradient"] = (f"closed form: refimpl.ode.analytic case {analytic_case.name!r}, "
                                          f"functional_gradient_exact at sample_times")
        else:
            checks["continuous_gradient"] = float(bound)
            how["continuous_gradient"] = (f"refimpl.ode.continuous_adjoint.continuous_adjoint (DOP853, rtol "
                                          f"{CONTINUOUS_RTOL_SOLVE:g}); its 'tighter' error bound (absolute) in "
                                          f"provenance.route_checks")
        if corrected is not None:
            ct = np.array(corrected.times)
            inside = (ct >= 0) & (ct <= T)
            at_ct = np.asarray(continuous(ct[inside])[0]).reshape(-1, field.n_params)
            err = float(np.max(np.abs(np.asarray(corrected.values)[inside] - at_ct)))
            notes.append(f"corrected_gradient: max |corrected - deltaL/deltatheta| = {err:.3e} at N = {N} "
                         f"(a first-order estimate; SPEC §3)")

    declared = {}
    for name, a in arrays.items():
        role = "input" if name in ODE_INPUTS else "reference"
        declared[name] = {"role": role, "shape": list(a.shape), "dtype": str(a.dtype),
                          "description": ODE_INPUTS.get(name) or ODE_REFERENCES[name]}
    tolerances = {name: _tolerance("continuous" if name == "continuous_gradient" else "discrete", arrays[name])
                  for name, e in declared.items() if e["role"] == "reference"}
    metadata = {
        "format": "refimpl-case", "format_version": 1, "name": problem.name, "kind": "ode",
        "description": description or f"{fspec['family']} field, {method.name}"
                                      f"{'' if smp.starter is None else ' (starter ' + smp.starter.name + ')'}, "
                                      f"{layout} layout, N = {N}",
        "problem": {"field": fspec, "scheme": scheme_spec(method),
                    "starter": None if smp.starter is None else scheme_spec(smp.starter), "layout": layout,
                    "T": float(T), "N": int(N), "h": float(T) / int(N),
                    "loss": {"kind": "quadratic", "y": loss.y.astype(float).tolist(),
                             "formula": "L = Phi(x_N) = 1/2 |x_N - y|^2"},
                    "theta_function": tspec},
        "arrays": declared, "tolerances": tolerances,
        "provenance": {"refimpl_version": refimpl.__version__, "numpy_version": np.__version__,
                       "scipy_version": scipy.__version__, "created_by": "refimpl.oracle.cases.build_case",
                       "how": how, "route_checks": checks, "notes": notes},
    }
    return Case(metadata, arrays, source=problem.name)


# ---------------------------------------------------------------------------------------------------------------------
# the battery

#: battery grid size (small: the battery must export in seconds and stay small on disk)
BATTERY_N = 16
#: the phenomenon cases of SPEC §3 use a larger N
PHENOMENON_N = 64


def _neural_bases():
    """(name, field, x0, y, θ path) of the neural/base problems, T = 1."""
    rng = np.random.default_rng(20240607)  # fixed seed: the battery is reproducible bit for bit

    def path(p, scale=0.6):
        return Sinusoid(tuple(np.round(rng.uniform(-scale, scale, p), 3)),
                        tuple(np.round(rng.uniform(-scale, scale, p), 3)), 2.0)
    tanh, lin = TanhField(2), LinearField(2)
    two, poly = TwoLayerTanhField(2, 3), PolynomialField(2)
    return [
        ("tanh-d2", tanh, (0.6, -0.4), (0.2, 0.5), path(tanh.n_params, 0.9)),
        ("linear-d2", lin, (1.0, -0.5), (0.3, 0.1), path(lin.n_params, 0.5)),
        ("twolayer-d2h3", two, (0.5, 0.3), (-0.2, 0.4), path(two.n_params, 0.8)),
        ("poly-d2", poly, (0.4, -0.3), (0.1, 0.2), path(poly.n_params, 0.3)),
    ]


def _closed_form(case):
    """times -> (δL/δθ at times in closed form, error bound 0) for an analytic case."""
    def evaluate(times):
        return np.asarray(case.functional_gradient_exact(np.asarray(times))).reshape(len(times), -1), 0.0
    return evaluate


def _dop853(field, theta_fn, x0, T, loss):
    """times -> (δL/δθ at times by DOP853 at rtol 1e-12, its 'tighter' error bound)."""
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
    return _on_fine_grid(_dop853(field, theta_fn, x0, T, QuadraticLoss(np.asarray(y, dtype=np.float64))), T, N)


def _scheme_variants():
    """(method name, starter, label) for every named scheme; multistep methods with both starters."""
    out = [(name, None, name) for name in schemes.TABLEAUX]
    for name in schemes.MULTISTEP_METHODS:
        out += [(name, "forward_euler", f"{name}-fe"), (name, "matched", f"{name}-matched")]
    return out


def battery(*, quick: bool = False):
    """Yield the curated battery of cases: every named scheme (multistep methods with the forward-Euler and the matched
    starter) × both layouts × four neural/base fields (tanh, linear, two-layer tanh, polynomial; d = 2) at
    N = :data:`BATTERY_N`; the phenomenon cases of [A] (tanh, leapfrog/Ralston/midpoint/forward Euler, N =
    :data:`PHENOMENON_N`); and every analytic case × (forward Euler, Heun, RK4, leapfrog, AB2) with closed-form
    continuous gradients; then the Wasserstein cases of
    :func:`refimpl.oracle.wasserstein_cases.wasserstein_battery`. ``quick`` keeps only the tanh field and two analytic
    cases, and no Wasserstein case (for tests)."""
    bases = _neural_bases()[:1] if quick else _neural_bases()
    for base, field, x0, y, theta in bases:
        cont = _fine_grid_solver(field, theta, x0, y, 1.0, BATTERY_N)
        for method, starter, label in _scheme_variants():
            for layout in ("stage", "step"):
                yield build_case(OdeProblem(f"{base}__{label}__{layout}__N{BATTERY_N}", field, method, x0, y, 1.0,
                                            BATTERY_N, theta, layout, starter), continuous=cont)
    field, x0, y, theta = _neural_bases()[0][1:]
    cont = _fine_grid_solver(field, theta, x0, y, 1.0, PHENOMENON_N)
    for method, starter in (("leapfrog", "forward_euler"), ("ralston", None), ("midpoint", None),
                            ("forward_euler", None)):
        label = method + ("-fe" if starter else "")
        yield build_case(OdeProblem(f"phenomenon-tanh-d2__{label}__stage__N{PHENOMENON_N}", field, method, x0, y, 1.0,
                                    PHENOMENON_N, theta, "stage", starter), continuous=cont,
                         description="the phenomenon of [A] (SPEC §3): compare normalised_gradient with "
                                     "continuous_gradient")
    cases = analytic.analytic_cases()
    for case in (cases[:2] if quick else cases):
        cont = _on_fine_grid(_closed_form(case), case.T, BATTERY_N)
        for method, starter in (("forward_euler", None), ("heun", None), ("rk4", None),
                                ("leapfrog", "forward_euler"), ("ab2", "matched")):
            yield build_case(OdeProblem(f"analytic-{case.name}__{method}__stage__N{BATTERY_N}", case.field, method,
                                        case.x0, case.loss.y, case.T, BATTERY_N, case, "stage", starter),
                             continuous=cont)
    if not quick:
        from refimpl.oracle.wasserstein_cases import wasserstein_battery

        yield from wasserstein_battery()


def export_battery(directory, *, quick: bool = False) -> list:
    """Write :func:`battery` under ``directory`` (one sub-folder per case, plus ``index.json``); return the names."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory: {directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for case in battery(quick=quick):
        save_case(case, directory / case.name)
        names.append(case.name)
    index = {"format": "refimpl-case-index", "refimpl_version": refimpl.__version__,
             "python": platform.python_version(), "cases": names}
    (directory / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    (directory / "README.md").write_text(_EXPORT_README.format(n=len(names), version=refimpl.__version__),
                                         encoding="utf-8")
    return names


_EXPORT_README = """# refimpl oracle cases

{n} cases exported by refimpl {version} (`python -m refimpl cases export DIR`); their names are in `index.json`.

Each folder is one case:

* `case.json` — the problem (ODE: vector field, scheme coefficients as exact rationals "p/q", starter, parameter
  layout, T, N, h, loss, the parameter path theta(t); Wasserstein: energy terms, representation, step, h, steps,
  initial measure), what every array is (`arrays`: role input/reference, shape, dtype, description), the tolerance
  of every reference quantity, and how each reference was computed (`provenance`). Its JSON Schema ships with
  refimpl (`refimpl/oracle/case_schema.json`).
* `arrays.npz` — the inputs (e.g. `x0`, `theta`, `sample_times`, `stage_index`; `particles0`) and the reference
  quantities (e.g. `trajectory`, `loss`, `discrete_gradient`, `continuous_gradient`; `wasserstein_gradient`).
  Plain `.npy` members: load with `numpy.load(path, allow_pickle=False)`.

To check your implementation: compute some reference quantities from the inputs, save them under the same names in
an `.npz`, and run `python -m refimpl check CASE_DIR yours.npz` (add `--json` for a machine-readable report). Exit
code 0: every provided quantity is within tolerance; 1: some is not (the report names the worst index); 2: bad input.
"""
