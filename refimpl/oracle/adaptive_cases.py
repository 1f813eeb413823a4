r"""The adaptive ODE case kind: ẋ = f(x, θ) with one constant θ on [0, T], integrated adaptively by an embedded
Runge–Kutta pair with a step-size controller (docs/theory/adaptive-steps.md), L = ½|x_N − y|², and the references a
foreign adaptive solver and its gradient are compared on.

The problem section stores everything that decides the accepted grid as data: the field (``FIELDS`` spec), the pair
(:meth:`~refimpl.ode.embedded.EmbeddedTableau.to_spec`), the controller, the error norm and the starting step
(:mod:`refimpl.ode.step_control` specs), ``h0`` (null: the starting-step heuristic), T, rtol, atol, max_steps,
``end`` (``"clip"``: the last step ends at T; an interpolated end is not storable yet), ``reuse_last_stage``
(``"fsal"`` or ``"always"``), the loss, ``gradients``: which detachments the full discrete gradient of the case
uses, and ``convention``: null (refimpl's own rules, which no library follows exactly) or the spec of the library
convention (:mod:`refimpl.ode.conventions`) whose rules the other keys spell out — checked on load: the pair,
controller, norm, first step, end rule and stage reuse must be the convention's (:func:`_convention_disagreements`), so a case that
names diffrax is one diffrax reproduces. A convention the format cannot store is refused when the case is built
(:meth:`AdaptiveCaseProblem.from_convention`): torchdiffeq's interpolated end (``end="overshoot"``) and its starting
step on the autodiff graph (docs/case-format.md, "Adaptive ODE cases", says why). The kind is registered in
:data:`refimpl.oracle.case.CASE_KINDS` as ``"ode_adaptive"``.

How each reference is computed (also written into ``provenance.how``):

``accepted_grid``, ``rejected_steps``, ``rejected_count``, ``trajectory``, ``loss``
    :func:`refimpl.ode.adaptive.adaptive_solve` (float64).
``frozen_grid_gradient``, ``frozen_grid_grad_x0``
    (a) the hand discrete adjoint on the accepted grid (:func:`refimpl.ode.adjoint_recursions.discrete_adjoint`,
    ``layout="constant"``, ``grid=accepted_grid``); second route at build time: the tape on the frozen grid.
``full_discrete_gradient``, ``full_discrete_grad_x0``
    (b) ``refimpl.ad`` through the whole adaptive loop (:func:`refimpl.ode.adaptive.full_discrete_gradient`) with the
    detachments named in ``problem.gradients.full_discrete_detach``; second route at build time: the complex step of
    the whole adaptive loss along two random directions (recorded in ``provenance.notes``; agreement required:
    1e-12 relative, or 10·max κ·ε times the relative size of (b) − (a) when larger — both routes differentiate the
    error ratio, whose rounding is amplified by κ, docs/theory/adaptive-steps.md §4).

**Checking.** :func:`check_adaptive` compares the accepted grid *first*: if the foreign grid has another length or some
:math:`|t_n - t_n^{ref}|` exceeds the grid tolerance, it reports the first step n where they differ and by how much
— a different grid makes every other comparison meaningless (the losses differ by O(rtol), the gradients are
derivatives of different functions) — and compares nothing else. Otherwise it compares the remaining references with
:func:`refimpl.oracle.comparison.compare`.

Tolerances (a foreign array passes when :math:`|x - x_{ref}| \le atol + rtol|x_{ref}|`):

* ``accepted_grid``: rtol :math:`= \max(10^{-12}, 10\sum_n(\kappa_n + t_{n+1}/h_n)\varepsilon)`, atol
  :math:`10^{-14}T`, with κ_n the rounding amplification of the error estimate of step n
  (docs/theory/adaptive-steps.md §4): a correct implementation that sums the estimate in another order moves each step
  size by up to ~Σκε relative, and one that proposes the next step from the rounded times,
  :math:`(t_{n+1} - t_n)\cdot\mathrm{fac}` (diffrax), by ε t_{n+1}/h_n more at each step; the relative changes add
  up along the grid, so :math:`|\delta t_n| \lesssim t_n\sum_{m<n}(\kappa_m + t_{m+1}/h_m)\varepsilon` (the
  exponent 1/k of the controller only shrinks this);
* ``rejected_count`` exact (atol 0.5);
* trajectory, loss, (a): ``rtol = 1e-10``, ``atol = 1e-12·max(1, max|ref|)`` (the discrete ODE tolerance,
  docs/case-format.md), plus the grid tolerance's effect on x (a relative change δ of the step sizes changes x by ≲ δ);
* (b): the same, ×10 (the controller's derivative goes through the error estimate, whose rounding is amplified by κ).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field as dataclass_field

import numpy as np

import refimpl
from refimpl.oracle.arithmetic import pinned_field
from refimpl.oracle.case import CASE_KINDS, Case, CaseKind
from refimpl.oracle.comparison import compare_arrays, normwise_disagreement
from refimpl.oracle.safe_io import CaseFormatError

__all__ = ["AdaptiveCaseKind", "AdaptiveCaseProblem", "build_adaptive_case", "check_adaptive", "GridMismatch",
           "adaptive_battery", "diffrax_battery", "DIFFRAX_CASES",
           "ADAPTIVE_INPUTS", "ADAPTIVE_REFERENCES"]

ROUTE_AGREEMENT = 1e-12
DISCRETE_RTOL, DISCRETE_ATOL = 1e-10, 1e-12
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")

ADAPTIVE_INPUTS = {
    "x0": "initial state x_0, shape (d,)",
    "theta": "the constant parameter theta (constant layout), shape (1, p)",
}
ADAPTIVE_REFERENCES = {
    "accepted_grid": "accepted times t_0 = 0 < ... < t_N = T, shape (N+1,)",
    "rejected_count": "number of rejected attempts, shape ()",
    "rejected_steps": "for each rejected attempt the index n of the accepted step it tried to become, shape (R,)",
    "trajectory": "x_0..x_N at the accepted grid, shape (N+1, d)",
    "loss": "L = Phi(x_N), shape ()",
    "frozen_grid_gradient": "(a) dL/dtheta with the accepted grid held fixed, shape (p,)",
    "frozen_grid_grad_x0": "(a) dL/dx0 with the accepted grid held fixed, shape (d,)",
    "full_discrete_gradient": "(b) dL/dtheta through the whole adaptive loop (controller included; detachments in "
                              "problem.gradients), shape (p,)",
    "full_discrete_grad_x0": "(b) dL/dx0 through the whole adaptive loop, shape (d,)",
}

_SPEC = {"type": "object"}
_PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["field", "pair", "controller", "norm", "initial_step", "h0", "T", "rtol", "atol", "max_steps", "loss",
                 "gradients", "end", "reuse_last_stage"],
    "additionalProperties": False,
    "properties": {
        "field": _SPEC, "pair": _SPEC, "controller": _SPEC, "norm": _SPEC,
        "initial_step": {"anyOf": [_SPEC, {"type": "null"}]},
        "h0": {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]},
        "T": {"type": "number", "exclusiveMinimum": 0},
        "rtol": {"type": "number", "exclusiveMinimum": 0},
        "atol": {"type": "number", "exclusiveMinimum": 0},
        "max_steps": {"type": "integer", "minimum": 1},
        "end": {"enum": ["clip"]},
        "reuse_last_stage": {"enum": ["fsal", "always"]},
        "loss": _SPEC,
        "convention": {"anyOf": [_SPEC, {"type": "null"}]},
        "gradients": {"type": "object", "required": ["frozen_grid", "full_discrete", "full_discrete_detach"],
                      "additionalProperties": False,
                      "properties": {"frozen_grid": {"type": "string", "maxLength": 400},
                                     "full_discrete": {"type": "string", "maxLength": 400},
                                     "full_discrete_detach": {"type": "array", "maxItems": 8,
                                                              "items": {"type": "string", "maxLength": 32}}}},
    },
}


def problem_objects(case: Case) -> dict:
    """refimpl objects for an adaptive case: ``field``, ``pair``, ``controller``, ``norm``, ``initial_step``,
    ``loss``, and the keyword arguments ``options`` of :func:`refimpl.ode.adaptive.adaptive_solve`."""
    from refimpl.ode.embedded import PAIR_FAMILIES
    from refimpl.ode.fields import FIELDS, LOSSES
    from refimpl.ode.step_control import STEP_CONTROL_FAMILIES

    p = case.problem
    init = None if p["initial_step"] is None else STEP_CONTROL_FAMILIES.from_spec(p["initial_step"])
    objs = {"field": FIELDS.from_spec(p["field"]), "pair": PAIR_FAMILIES.from_spec(p["pair"]),
            "controller": STEP_CONTROL_FAMILIES.from_spec(p["controller"]),
            "norm": STEP_CONTROL_FAMILIES.from_spec(p["norm"]), "initial_step": init,
            "loss": LOSSES.from_spec(p["loss"], key="kind"), "T": p["T"],
            "x0": np.array(case.x0), "theta": np.array(case.theta),
            "detach": tuple(p["gradients"]["full_discrete_detach"])}
    objs["options"] = dict(rtol=p["rtol"], atol=p["atol"], controller=objs["controller"], norm=objs["norm"],
                           initial_step=init, h0=p["h0"], max_steps=p["max_steps"],
                           reuse_last_stage=p["reuse_last_stage"])
    return objs


@CASE_KINDS.register
class AdaptiveCaseKind(CaseKind):
    """``kind = "ode_adaptive"``: arrays, consistency rules and recomputation of adaptive cases (module docstring)."""

    family = "ode_adaptive"
    problem_schema = _PROBLEM_SCHEMA
    inputs = ADAPTIVE_INPUTS
    references = ADAPTIVE_REFERENCES
    required = ("x0", "theta", "accepted_grid", "rejected_count", "trajectory", "loss")

    @classmethod
    def summary(cls, case: Case) -> str:
        p = case.problem
        n = case.arrays["accepted_grid"].shape[0] - 1
        return (f"{p['field']['family']} d={p['field']['dim']}, {p['pair']['name']}, {p['controller']['name']}, "
                f"rtol={p['rtol']:g}, atol={p['atol']:g}, N={n} accepted")

    @classmethod
    def check_problem(cls, case: Case, where: str) -> None:
        p, a = case.problem, case.arrays
        fld = p["field"]
        d, n_p = fld.get("dim"), fld.get("n_params")
        if not isinstance(d, int) or not isinstance(n_p, int):
            raise CaseFormatError(f"{where}: problem.field needs integer dim and n_params")
        grid = a["accepted_grid"]
        if grid.ndim != 1 or grid.shape[0] < 2:
            raise CaseFormatError(f"{where}: array 'accepted_grid' must be 1-D with at least 2 times")
        N = grid.shape[0] - 1
        expected = {"x0": (d,), "theta": (1, n_p), "trajectory": (N + 1, d), "loss": (), "rejected_count": (),
                    "frozen_grid_gradient": (n_p,), "frozen_grid_grad_x0": (d,), "full_discrete_gradient": (n_p,),
                    "full_discrete_grad_x0": (d,)}
        for name, shape in expected.items():
            if name in a and a[name].shape != shape:
                raise CaseFormatError(f"{where}: array {name!r} must have shape {shape} (d = {d}, p = {n_p}, N = {N}), "
                                      f"got {a[name].shape}")
        if grid[0] != 0.0 or grid[-1] != p["T"] or not np.all(np.diff(grid) > 0):
            raise CaseFormatError(f"{where}: array 'accepted_grid' must increase strictly from 0 to problem.T = "
                                  f"{p['T']!r}")
        if "rejected_steps" in a:
            rs = a["rejected_steps"]
            if rs.ndim != 1 or rs.shape[0] != int(a["rejected_count"]) or (rs.size and (rs.min() < 0 or rs.max() > N)):
                raise CaseFormatError(f"{where}: array 'rejected_steps' must hold rejected_count indices in [0, {N}]")
        if len(p["loss"].get("y", [])) != d:
            raise CaseFormatError(f"{where}: problem.loss.y must have dim = {d} entries")
        if p.get("convention") is not None:
            try:
                off = _convention_disagreements(p)
            except (ValueError, TypeError, KeyError) as e:
                raise CaseFormatError(f"{where}: problem.convention does not rebuild: {e}") from None
            if off:
                raise CaseFormatError(f"{where}: problem.convention ({p['convention'].get('family')}) disagrees with "
                                      f"problem.{', problem.'.join(off)}: a library following the convention would "
                                      f"not solve this problem")
        try:  # the pair, controller, norm and starting step are data: they must rebuild (and validate) themselves
            problem_objects(case)
        except (ValueError, TypeError, KeyError) as e:
            raise CaseFormatError(f"{where}: the problem section does not rebuild: {e}") from None

    @classmethod
    def recompute(cls, case: Case) -> dict:
        refs = _references(**{k: v for k, v in problem_objects(case).items() if k != "T"}, T=case.problem["T"])[0]
        return {k: np.asarray(v).reshape(case.arrays[k].shape).astype(case.arrays[k].dtype) for k, v in refs.items()
                if k in case.arrays}

    @classmethod
    def battery(cls, *, quick: bool = False):
        return adaptive_battery(quick=quick)

    @classmethod
    def compare(cls, case: Case, theirs, **options):
        """The kind's own comparison, :func:`check_adaptive` (the accepted grid first);
        :func:`refimpl.oracle.comparison.compare` dispatches here."""
        return check_adaptive(case, theirs, **options)


def _references(field, pair, controller, norm, initial_step, loss, x0, theta, T, detach, options):
    """Every reference and the route checks (module docstring)."""
    from refimpl.ode.adaptive import frozen_grid_gradient, full_discrete_gradient, adaptive_solve

    sol = adaptive_solve(field, pair, x0, theta, T, loss=loss, **options)
    b = full_discrete_gradient(field, pair, x0, theta, T, loss, detach=detach, **options)
    # route auto = the compiled sweeps, with the pinned point functions (refimpl.oracle.arithmetic)
    a = frozen_grid_gradient(pinned_field(field), pair, x0, theta, sol.grid, loss, route="auto")
    a_tape = frozen_grid_gradient(field, pair, x0, theta, sol.grid, loss, route="tape")
    rng = np.random.default_rng(0)
    cs_err = 0.0
    if not detach:
        for _ in range(2):
            vx, vt = rng.normal(size=x0.shape), rng.normal(size=theta.shape)
            eps = 1e-30
            cs = adaptive_solve(field, pair, x0 + 1j * eps * vx, theta + 1j * eps * vt, T, loss=loss, **options)
            d_cs = float(np.imag(cs.loss)) / eps
            d_b = float(b.grad_x0 @ vx + b.grad_theta @ vt.ravel())
            scale = float(np.abs(b.grad_x0) @ np.abs(vx) + np.abs(b.grad_theta) @ np.abs(vt.ravel()))
            cs_err = max(cs_err, abs(d_cs - d_b) / scale if scale > 0 else abs(d_cs - d_b))
    refs = {"accepted_grid": np.array(sol.grid), "rejected_count": np.asarray(sol.n_rejected, dtype=np.int64),
            "rejected_steps": np.array([r.step for r in sol.rejected], dtype=np.int64),
            "trajectory": np.asarray(sol.xs, dtype=np.float64), "loss": np.asarray(float(sol.loss)),
            "frozen_grid_gradient": np.asarray(a.grad_theta, dtype=np.float64),
            "frozen_grid_grad_x0": np.asarray(a.grad_x0, dtype=np.float64),
            "full_discrete_gradient": np.asarray(b.grad_theta, dtype=np.float64),
            "full_discrete_grad_x0": np.asarray(b.grad_x0, dtype=np.float64)}
    checks = {"frozen_grid_gradient": normwise_disagreement(a_tape.grad_theta, a.grad_theta),
              "frozen_grid_grad_x0": normwise_disagreement(a_tape.grad_x0, a.grad_x0)}
    allowed = {k: ROUTE_AGREEMENT for k in checks}
    if not detach:
        checks["full_discrete_gradient"] = cs_err
        # both routes differentiate the error ratio, whose rounding is amplified by kappa (docs/theory/adaptive-steps.md
        # §4): they may differ by ~kappa eps times the controller's share (b) - (a) of the gradient
        share = normwise_disagreement(a.grad_theta, b.grad_theta)
        allowed["full_discrete_gradient"] = max(ROUTE_AGREEMENT,
                                                10 * float(np.max(sol.cancellation)) * np.finfo(float).eps * share)
    return refs, checks, allowed, sol, a.convention


@dataclass(frozen=True, eq=False)
class AdaptiveCaseProblem:
    """An adaptive problem to turn into a case: the arguments of :func:`refimpl.ode.adaptive.adaptive_solve` with a
    quadratic loss ½|x_N − y|²; ``detach`` names the quantities (b) stops the gradient through (default none)."""

    name: str
    field: object
    pair: object
    x0: object
    theta: object
    T: float
    y: object
    rtol: float
    atol: float
    controller: object = None
    norm: object = None
    initial_step: object = None
    h0: float | None = None
    max_steps: int = 100_000
    detach: tuple = dataclass_field(default_factory=tuple)
    reuse_last_stage: str = "fsal"
    convention: object = None

    @classmethod
    def from_convention(cls, name: str, convention, field, x0, theta, T: float, y, rtol: float, atol: float, *,
                        max_steps: int = 4096, detach: tuple = ()) -> "AdaptiveCaseProblem":
        """The problem a library solves with ``convention`` (a :mod:`refimpl.ode.conventions` convention, its spec,
        or a name such as ``"diffrax:Tsit5"``): the pair with the library's float coefficients, its controller, norm,
        first step, end rule and stage reuse. Refused (ValueError) for a convention the case format cannot store:
        one that starts from a heuristic step on the autodiff graph or interpolates at T (``end="overshoot"``,
        torchdiffeq; docs/case-format.md, "Adaptive ODE cases")."""
        from refimpl.ode.conventions import convention as resolve

        conv = resolve(convention)
        if conv.end != "clip":
            raise ValueError(f"convention: {conv.family} ends past T and interpolates (end={conv.end!r}); an "
                             f"ode_adaptive case stores only end='clip' (the last step clipped to T)")
        if conv.h0 is None:
            raise ValueError(f"convention: {conv.family} chooses its first step by a heuristic on the autodiff graph; "
                             f"give the convention a fixed first step")
        return cls(name, field, conv.pair, x0, theta, T, y, rtol, atol, controller=conv.controller, norm=conv.norm,
                   h0=conv.h0, max_steps=max_steps, detach=tuple(detach), reuse_last_stage=conv.reuse_last_stage,
                   convention=conv)


def build_adaptive_case(problem: AdaptiveCaseProblem, *, description: str = "") -> Case:
    """Compute every reference of ``problem`` (module docstring) and return the validated :class:`Case`; refused
    (RuntimeError) if a second route disagrees by more than :data:`ROUTE_AGREEMENT`."""
    import scipy

    from refimpl.ode.embedded import embedded_pair
    from refimpl.ode.fields import QuadraticLoss
    from refimpl.ode.step_control import I_CONTROLLER, RMS_NORM, InitialStep

    if not isinstance(problem, AdaptiveCaseProblem):
        raise TypeError(f"problem must be an AdaptiveCaseProblem, got {type(problem).__name__}")
    if not isinstance(problem.name, str) or not _NAME.fullmatch(problem.name):
        raise ValueError(f"problem.name must match {_NAME.pattern}, got {problem.name!r}")
    field, pair = problem.field, embedded_pair(problem.pair)
    controller = problem.controller or I_CONTROLLER
    norm = problem.norm or RMS_NORM
    init = None if problem.h0 is not None else (problem.initial_step or InitialStep())
    x0 = np.asarray(problem.x0, dtype=np.float64)
    theta = np.asarray(problem.theta, dtype=np.float64).reshape(1, field.n_params)
    loss = QuadraticLoss(np.asarray(problem.y, dtype=np.float64))
    T = float(problem.T)
    options = dict(rtol=problem.rtol, atol=problem.atol, controller=controller, norm=norm, initial_step=init,
                   h0=problem.h0, max_steps=problem.max_steps, reuse_last_stage=problem.reuse_last_stage)
    detach = tuple(sorted(problem.detach))
    refs, checks, allowed, sol, conv_a = _references(field, pair, controller, norm, init, loss, x0, theta, T, detach,
                                                     options)
    over = {k: v for k, v in checks.items() if v > allowed[k]}
    if over:
        raise RuntimeError(f"case {problem.name!r}: a second route disagrees beyond its bound ({over}; bounds "
                           f"{allowed}); refusing to export an untrustworthy reference")
    arrays = {"x0": x0, "theta": theta, **refs}
    declared = AdaptiveCaseKind.declare(arrays)
    kappa = float(np.sum(sol.cancellation))
    # t_{n+1}/h_n: a solver that proposes the next step from the rounded times, (t_{n+1} - t_n) * fac (diffrax), moves
    # h_n by up to eps t_{n+1}/h_n relative at each step (refimpl multiplies h_n itself)
    time_rounding = float(np.sum(sol.grid[1:] / sol.steps))
    grid_rtol = max(1e-12, 10 * (kappa + time_rounding) * np.finfo(float).eps)
    tolerances = {}
    for name, e in declared.items():
        if e["role"] != "reference":
            continue
        ref = arrays[name]
        scale = float(np.max(np.abs(ref))) if ref.size else 0.0
        if name == "accepted_grid":
            tolerances[name] = {"rtol": min(grid_rtol, 1.0), "atol": 1e-14 * T,
                                "why": "10 x sum of (kappa_n + t_{n+1}/h_n) eps: the rounding of the error estimate, "
                                       "amplified by its cancellation kappa_n, and of the times a step is proposed "
                                       "from, moves each step size (docs/theory/adaptive-steps.md §4)"}
        elif name in ("rejected_count", "rejected_steps"):
            tolerances[name] = {"rtol": 0.0, "atol": 0.5, "why": "integers: exact"}
        else:
            factor = 10.0 if name.startswith("full_discrete") else 1.0
            tolerances[name] = {"rtol": min(factor * max(DISCRETE_RTOL, grid_rtol), 1.0),
                                "atol": factor * DISCRETE_ATOL * max(1.0, scale),
                                "why": "float64 rounding of another evaluation order (docs/case-format.md) and of the "
                                       "grid (its tolerance)" + ("; x10 for the controller's derivative through the "
                                                                 "error estimate" if factor > 1 else "")}
    det = ", ".join(detach) or "nothing"
    conv = problem.convention
    if conv is not None:
        from refimpl.ode.conventions import convention as resolve
        conv = resolve(conv)
    how_run = "refimpl.ode.adaptive.adaptive_solve (float64)"
    how = {"accepted_grid": how_run, "rejected_count": how_run, "rejected_steps": how_run, "trajectory": how_run,
           "loss": how_run,
           "frozen_grid_gradient": f"(a) {conv_a} on accepted_grid, layout constant; checked against the tape on the "
                                   f"frozen grid (provenance.route_checks)",
           "full_discrete_gradient": f"(b) refimpl.ad through the whole adaptive loop, detached: {det}; checked "
                                     f"against the complex step of the adaptive loss (provenance.notes)"}
    how["frozen_grid_grad_x0"] = how["frozen_grid_gradient"]
    how["full_discrete_grad_x0"] = how["full_discrete_gradient"]
    fspec = field.to_spec()
    metadata = {
        "format": "refimpl-case", "format_version": 1, "name": problem.name, "kind": AdaptiveCaseKind.family,
        "description": description or (f"{_convention_text(conv)}: " if conv is not None else "") + (
            f"{fspec['family']} field, {pair.name}, {controller.name} controller, rtol {problem.rtol:g}, atol "
            f"{problem.atol:g}: {sol.N} accepted, {sol.n_rejected} rejected"),
        "problem": {"field": fspec, "pair": pair.to_spec(), "controller": controller.to_spec(),
                    "norm": norm.to_spec(), "initial_step": None if init is None else init.to_spec(),
                    "h0": None if problem.h0 is None else float(problem.h0), "T": T, "rtol": float(problem.rtol),
                    "atol": float(problem.atol), "max_steps": int(problem.max_steps), "end": "clip",
                    "reuse_last_stage": problem.reuse_last_stage, "loss": loss.to_spec(),
                    "convention": None if conv is None else conv.to_spec(),
                    "gradients": {"frozen_grid": "(a) frozen-grid discrete adjoint (docs/theory/adaptive-steps.md §5)",
                                  "full_discrete": "(b) full discrete adjoint (docs/theory/adaptive-steps.md §5)",
                                  "full_discrete_detach": list(detach)}},
        "arrays": declared, "tolerances": tolerances,
        "provenance": {"refimpl_version": refimpl.__version__, "numpy_version": np.__version__,
                       "scipy_version": scipy.__version__,
                       "created_by": "refimpl.oracle.adaptive_cases.build_adaptive_case", "how": how,
                       "route_checks": {k: v for k, v in checks.items() if k != "full_discrete_gradient"},
                       "notes": [f"sum of the error-estimate rounding amplification over the accepted steps: "
                                 f"{kappa:.3e}"] + ([f"full_discrete_gradient vs the complex step of the adaptive loss "
                                                     f"(two random directions): {checks['full_discrete_gradient']:.3e} "
                                                     f"relative (bound {allowed['full_discrete_gradient']:.3e})"]
                                                    if "full_discrete_gradient" in checks else [])},
    }
    if conv is not None:
        off = _convention_disagreements(json.loads(json.dumps(metadata["problem"])))
        if off:
            raise ValueError(f"problem.convention: the {conv.family} convention does not describe this problem: it "
                             f"disagrees on {', '.join(off)} (build it with AdaptiveCaseProblem.from_convention)")
    return Case(metadata, arrays, source=problem.name)


def _convention_disagreements(problem: dict) -> list:
    """The keys of an adaptive ``problem`` section (JSON, as stored) on which its ``convention`` disagrees: every rule
    that decides the accepted grid must be the convention's own, so that the library reproduces the case."""
    from refimpl.ode.conventions import CONVENTIONS

    conv = CONVENTIONS.from_spec(problem["convention"])
    want = {"pair": conv.pair.to_spec(), "controller": conv.controller.to_spec(), "norm": conv.norm.to_spec(),
            "initial_step": None, "h0": conv.h0, "end": conv.end, "reuse_last_stage": conv.reuse_last_stage}
    want = json.loads(json.dumps(want))
    return [k for k, v in want.items() if problem.get(k) != v]


def _convention_text(conv) -> str:
    """One line naming the library call a convention case reproduces and which reference its gradient is."""
    spec = conv.to_spec()
    if spec["family"] == "diffrax":
        pid = ", ".join(f"{k}={spec[k]:g}" for k in ("pcoeff", "icoeff", "dcoeff", "safety", "factormin",
                                                      "factormax"))
        return (f"diffrax {spec['version']} convention, diffeqsolve(ODETerm, {spec['solver']}(), dt0={conv.h0!r}, "
                f"PIDController(rtol, atol, {pid})) + RecursiveCheckpointAdjoint = frozen_grid_gradient")
    keys = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k not in ("family", "version"))
    return f"{spec['family']} {spec['version']} convention ({keys})"


# ---------------------------------------------------------------------------------------------------------------------
# checking: the grid first


@dataclass(frozen=True)
class GridMismatch:
    """The foreign accepted grid differs: ``step`` (first index n where it differs, or where one grid ends),
    ``theirs``/``reference`` t_n there (None past an end), ``difference``, ``tolerance``, the two lengths."""

    case: str
    step: int
    theirs: float | None
    reference: float | None
    difference: float
    tolerance: float
    n_theirs: int
    n_reference: int

    @property
    def passed(self) -> bool:
        return False

    @property
    def exit_code(self) -> int:
        return 1

    def table(self) -> str:
        if self.theirs is None or self.reference is None:
            where = (f"their grid has {self.n_theirs - 1} steps, the reference {self.n_reference - 1}; they agree up "
                     f"to t_{self.step - 1}")
        else:
            where = (f"at step {self.step}: t_{self.step} = {self.theirs!r} (theirs) vs {self.reference!r} "
                     f"(reference), difference {self.difference:.3e} > tolerance {self.tolerance:.3e}")
        return (f"case {self.case}: FAIL (accepted grid differs; nothing else compared: on another grid the loss and "
                f"the gradients are those of another discrete problem)\n  {where}")

    def to_dict(self) -> dict:
        """The machine-readable report (``check --json``)."""
        return {"case": self.case, "status": "mismatch", "exit_code": 1, "failure": "accepted_grid",
                "step": self.step, "theirs": self.theirs, "reference": self.reference,
                "difference": self.difference if np.isfinite(self.difference) else "inf",
                "tolerance": self.tolerance, "n_steps_theirs": self.n_theirs - 1,
                "n_steps_reference": self.n_reference - 1}

    def __repr__(self) -> str:
        return self.table()


def check_adaptive(case, theirs, *, quantities=None, tolerances=None, rtol=None, atol=None,
                   precision: str = "float64"):
    """Compare ``theirs`` (a mapping name → array, or an .npz path) with an adaptive ``case``: the accepted grid
    first (a :class:`GridMismatch` if it differs — also in length), then every provided reference
    (:func:`refimpl.oracle.comparison.compare_arrays` with the same options, a
    :class:`~refimpl.oracle.comparison.Comparison`). The grid's tolerance is the one ``compare_arrays`` would use
    (the case's, the precision profile's, then the overrides)."""
    from collections.abc import Mapping

    from refimpl.oracle.case import load_case
    from refimpl.oracle.precision import precision_profile
    from refimpl.oracle.safe_io import read_npz

    if not isinstance(case, Case):
        case = load_case(case)
    if case.metadata["kind"] != AdaptiveCaseKind.family:
        raise CaseFormatError(f"case {case.name!r} is a {case.metadata['kind']!r} case, not "
                              f"{AdaptiveCaseKind.family!r}")
    if isinstance(theirs, (str, os.PathLike)):
        theirs = read_npz(theirs, native=True, names=case.references)
    if not isinstance(theirs, Mapping):
        raise TypeError(f"theirs must be a mapping name -> array or an .npz path, got {type(theirs).__name__}")
    if "accepted_grid" in theirs and (quantities is None or "accepted_grid" in quantities):
        mine = np.asarray(theirs["accepted_grid"], dtype=np.float64).reshape(-1)
        ref = case.arrays["accepted_grid"]
        case_tol = case.tolerances["accepted_grid"]
        r, a = precision_profile(case, precision).tolerance(case_tol["rtol"], case_tol["atol"], ref)
        override = dict((tolerances or {}).get("accepted_grid", {}))
        r = rtol if rtol is not None else override.get("rtol", r)
        a = atol if atol is not None else override.get("atol", a)
        n = min(len(mine), len(ref))
        allowed = a + r * np.abs(ref[:n])
        diff = np.abs(mine[:n] - ref[:n])
        bad = np.flatnonzero(~(diff <= allowed))
        if bad.size:
            k = int(bad[0])
            return GridMismatch(case.name, k, float(mine[k]), float(ref[k]), float(diff[k]), float(allowed[k]),
                                len(mine), len(ref))
        if len(mine) != len(ref):
            return GridMismatch(case.name, n, None, None, float("inf"), 0.0, len(mine), len(ref))
    return compare_arrays(case, theirs, quantities=quantities, tolerances=tolerances, rtol=rtol, atol=atol,
                          precision=precision)


# ---------------------------------------------------------------------------------------------------------------------
# the battery


def _battery_problem():
    """The battery's adaptive problem: tanh field, d = 2, constant θ, T = 2, L = ½|x_N − y|²."""
    from refimpl.ode.fields import TanhField

    field = TanhField(2)
    theta = field.pack(np.array([[-0.6, -2.0], [2.0, -0.6]]), np.array([0.3, -0.2]))
    return field, theta, np.array([1.0, 0.5]), np.array([0.2, -0.4]), 2.0


#: the diffrax-convention cases: (solver, (pcoeff, icoeff), rtol = atol, dt0, in the quick battery). (0, 1) is
#: PIDController's default (an I controller); (0.4, 0.3) is a PI controller its documentation suggests, which is HNW's
#: beta = (0.7, -0.4). Each case has 2 to 8 rejected attempts (dt0 = 0.5 is rejected at once; later rejections follow
#: steps that grew too fast), so the rejection branch and its factor clip are part of what is compared.
DIFFRAX_CASES = (("Dopri5", (0.0, 1.0), 1e-4, 0.1, False), ("Dopri5", (0.0, 1.0), 1e-6, 0.5, True),
                 ("Dopri5", (0.0, 1.0), 1e-9, 0.5, False), ("Tsit5", (0.0, 1.0), 1e-6, 0.5, False),
                 ("Dopri5", (0.4, 0.3), 1e-6, 0.5, False), ("Tsit5", (0.4, 0.3), 1e-6, 0.5, True),
                 ("Tsit5", (0.4, 0.3), 1e-8, 0.5, False))


def diffrax_battery(*, quick: bool = False):
    """The battery's cases in diffrax 0.7.2's convention (:class:`refimpl.ode.conventions.DiffraxConvention`):
    what ``diffeqsolve(ODETerm, Dopri5()/Tsit5(), dt0=h0, PIDController(...), RecursiveCheckpointAdjoint())``
    computes, accepted grid included (:data:`DIFFRAX_CASES`; ``quick``: the two marked)."""
    from refimpl.ode.conventions import DiffraxConvention

    field, theta, x0, y, T = _battery_problem()
    for solver, (pc, ic), rtol, dt0, in_quick in DIFFRAX_CASES:
        if quick and not in_quick:
            continue
        conv = DiffraxConvention(solver, pcoeff=pc, icoeff=ic, dt0=dt0)
        ctrl = "I" if pc == 0.0 else f"PI{pc:g}-{ic:g}"
        name = f"adaptive-tanh-d2__diffrax-{solver}__{ctrl}__rtol{rtol:.0e}__dt0-{dt0:g}"
        yield build_adaptive_case(AdaptiveCaseProblem.from_convention(name, conv, field, x0, theta, T, y, rtol, rtol))


def adaptive_battery(*, quick: bool = False):
    """The adaptive cases of the battery: the tanh problem (d = 2, constant θ) × every named pair × rtol 1e-3 and 1e-6
    (1e-5 for the pairs with a first-order estimate) (I controller), plus Dormand–Prince with the PI controller of HNW
    and with the starting step detached in (b) — refimpl's own conventions — then the diffrax-convention cases of
    :func:`diffrax_battery`.
    ``quick``: Dormand–Prince and Bogacki–Shampine at rtol 1e-4 only, and two diffrax cases."""
    from refimpl.ode.embedded import EMBEDDED_PAIRS
    from refimpl.ode.step_control import PI_HNW

    field, theta, x0, y, T = _battery_problem()
    pairs = ["dormand_prince_54", "bogacki_shampine_32"] if quick else EMBEDDED_PAIRS.names()
    for name in pairs:
        # a first-order estimate needs ~rtol^(-1/2) steps: 1e-5 keeps those cases at a few hundred steps
        low = 1e-6 if EMBEDDED_PAIRS.get(name).estimate_order >= 2 else 1e-5
        for rtol in ([1e-4] if quick else [1e-3, low]):
            yield build_adaptive_case(AdaptiveCaseProblem(f"adaptive-tanh-d2__{name}__I__rtol{rtol:.0e}", field, name,
                                                          x0, theta, T, y, rtol, rtol))
    if not quick:
        yield build_adaptive_case(AdaptiveCaseProblem("adaptive-tanh-d2__dormand_prince_54__pi_hnw__rtol1e-06", field,
                                                      "dormand_prince_54", x0, theta, T, y, 1e-6, 1e-6,
                                                      controller=PI_HNW))
        yield build_adaptive_case(AdaptiveCaseProblem("adaptive-tanh-d2__dormand_prince_54__I__rtol1e-06__h0-detached",
                                                      field, "dormand_prince_54", x0, theta, T, y, 1e-6, 1e-6,
                                                      detach=("h0",)))
    yield from diffrax_battery(quick=quick)
