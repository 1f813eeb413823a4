r"""Every reference refimpl has for one member of a refinement family (docs/theory/audit.md §2).

Fixed steps: the exact gradient of the discrete loss (:func:`refimpl.ode.adjoint_recursions.discrete_adjoint`) of
*every* named scheme of :mod:`refimpl.ode.schemes` (each multistep method with both starters) in the problem's layout,
each with its trajectory and loss — the candidates a solver's gradient can equal — and the continuous gradient of the
same parameterisation: the piecewise-constant continuous gradient (:func:`refimpl.ode.piecewise_adjoint.
piecewise_constant_continuous_gradient`) for the step and constant layouts, the functional derivative
:math:`\delta L/\delta\theta(\tau_r)` of the smooth path (:func:`refimpl.ode.adjoint_ode.continuous_adjoint`) at the
sample times for the stage layout. Adaptive: the stated convention's solve and the gradients of the adaptive loss of
:mod:`refimpl.ode.adaptive` — (b) the full discrete gradient with each detachment set, which includes (a) the frozen
grid (``{"h0", "h"}``) and the library's own choice — and (c) the continuous gradient.

Each function returns plain data (arrays, floats, strings), the value of a sweep task.
"""
from __future__ import annotations

import numpy as np

from refimpl.audit.problem import AdaptiveProblem, FixedStepProblem, problem_from_spec, theta_table
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import MULTISTEP_METHODS, TABLEAUX, starter as resolve_starter

__all__ = ["fixed_step_candidates", "fixed_step_references", "adaptive_references", "reference_member",
           "reference_spec", "continuous_at", "DETACH_SETS", "CONTINUOUS_RTOL"]

#: tolerance of the continuous references (DOP853); their own error estimate is reported with them
CONTINUOUS_RTOL = 1e-11
#: the detachment sets of (b) tried for an adaptive solver (names of refimpl.ode.adaptive.DETACHABLE)
DETACH_SETS = ((), ("h_next",), ("h0", "h_next"), ("h",), ("h0", "h"))


def fixed_step_candidates():
    """(label, scheme name, starter or None) of every discrete candidate: the named tableaux, then each multistep
    method with the forward-Euler and the matched starter (one entry when they coincide)."""
    out = [(name, name, None) for name in TABLEAUX]
    for name, method in MULTISTEP_METHODS.items():
        seen = set()
        for st in ("forward_euler", "matched"):
            tab = resolve_starter(method, st)
            if tab.name in seen:
                continue
            seen.add(tab.name)
            out.append((f"{name} ({tab.name} starter)", name, st))
    return out


def _amplification(lambdas) -> float:
    r"""A = max(1, max_n |λ_n|_∞ / |λ_N|_∞): how much the backward sweep amplifies (docs/theory/audit.md §3)."""
    lam = np.abs(np.asarray(lambdas, dtype=np.float64))
    end = float(np.max(lam[-1]))
    top = float(np.max(lam))
    return max(1.0, top / end) if end > 0 else 1.0


def fixed_step_references(problem: FixedStepProblem, N: int) -> dict:
    """The references of the member N (module docstring)."""
    from refimpl.ode.schemes import scheme as named_scheme
    field, loss = problem.field, problem.loss
    stated = parameter_samples(named_scheme(problem.scheme), problem.T, N, problem.layout, problem.starter)
    stated_times = np.asarray(stated.times, dtype=np.float64)
    candidates = []
    for label, name, st in fixed_step_candidates():
        method = named_scheme(name)
        need = method.steps if isinstance(method, LinearMultistep) else 1
        if N < need + 1:
            continue
        samples = parameter_samples(method, problem.T, N, problem.layout, st)
        if problem.layout == "stage" and (samples.n_samples != stated.n_samples
                                          or not np.array_equal(np.asarray(samples.times, dtype=float),
                                                                stated_times)):
            continue  # the solver was handed the stated scheme's samples: this scheme would need other ones
        theta = theta_table(problem, samples)
        adj = discrete_adjoint(field, method, problem.x0, theta, problem.T, N, loss, layout=problem.layout,
                               starter=st, backend="numpy")
        stages = method.stages if not isinstance(method, LinearMultistep) else 1
        starter_rows = []
        if isinstance(method, LinearMultistep):
            starter_rows = sorted(set(int(r) for r in np.asarray(samples.stage_index).ravel()))
        candidates.append({
            "label": label, "scheme": name, "starter": st, "order": int(method.order), "stages": int(stages),
            "trajectory": np.asarray(adj.trajectory, dtype=np.float64), "loss": float(adj.loss),
            "grad_theta": np.asarray(adj.grad_theta, dtype=np.float64),
            "grad_x0": np.asarray(adj.grad_x0, dtype=np.float64),
            "amplification": _amplification(adj.lambdas), "weights": np.asarray(samples.weights, dtype=float),
            "sample_times": np.asarray(samples.times, dtype=float), "starter_rows": starter_rows,
        })
    grid = np.arange(N + 1) * (problem.T / N)
    continuous = _continuous(problem, N, stated, grid)
    return {"kind": "fixed", "N": N, "h": problem.T / N, "grid": grid, "candidates": candidates,
            "continuous": continuous, "stated_times": stated_times,
            "stated_weights": np.asarray(stated.weights, dtype=float)}


def _continuous(problem: FixedStepProblem, N: int, stated, grid) -> dict:
    field, loss = problem.field, problem.loss
    if problem.layout in ("step", "constant"):
        from refimpl.ode.piecewise_adjoint import piecewise_constant_continuous_gradient
        table = theta_table(problem, stated)
        res = piecewise_constant_continuous_gradient(field, table, problem.x0, problem.T, loss, grid=grid,
                                                     rtol=CONTINUOUS_RTOL, atol=CONTINUOUS_RTOL)
        err = res.error
        bound = float(max(err.grad_theta, err.grad_x0)) if err is not None else 0.0
        return {"what": "piecewise-constant continuous gradient", "trajectory": np.asarray(res.x),
                "loss": float(res.loss), "grad_theta": np.asarray(res.grad_theta), "grad_x0": np.asarray(res.grad_x0),
                "normalised": False, "error_bound": bound}
    from refimpl.ode.adjoint_ode import continuous_adjoint
    times = np.union1d(grid, np.asarray(stated.times, dtype=float))
    res = continuous_adjoint(field, problem.theta, problem.x0, problem.T, loss, times=times,
                             rtol=CONTINUOUS_RTOL, atol=CONTINUOUS_RTOL)
    pick_grid = np.searchsorted(times, grid)
    pick_samples = np.searchsorted(times, np.asarray(stated.times, dtype=float))
    err = res.error
    bound = float(max(np.max(err.functional_gradient) * problem.T / N, np.max(err.p))) if err is not None else 0.0
    return {"what": "continuous gradient dL/dtheta(t) at the sample times", "trajectory": np.asarray(res.x)[pick_grid],
            "loss": float(res.loss), "grad_theta": np.asarray(res.functional_gradient)[pick_samples],
            "grad_x0": np.asarray(res.p[0]), "normalised": True, "error_bound": bound}


def continuous_at(problem: FixedStepProblem, times) -> np.ndarray:
    r""":math:`\delta L/\delta\theta(t)` of the smooth path at ``times`` (continuous adjoint, DOP853)."""
    from refimpl.ode.adjoint_ode import continuous_adjoint
    t = np.unique(np.clip(np.asarray(times, dtype=float), 0.0, problem.T))
    res = continuous_adjoint(problem.field, problem.theta, problem.x0, problem.T, problem.loss, times=t,
                             rtol=CONTINUOUS_RTOL, atol=CONTINUOUS_RTOL, error_estimate=None)
    idx = np.searchsorted(t, np.clip(np.asarray(times, dtype=float), 0.0, problem.T))
    return np.asarray(res.functional_gradient)[idx]


def adaptive_references(problem: AdaptiveProblem, rtol: float) -> dict:
    """The references of the member rtol (= atol) for the stated convention (module docstring)."""
    from refimpl.ode.adaptive import continuous_gradient
    from refimpl.ode.conventions import convention
    conv = convention(problem.convention)
    field, loss = problem.field, problem.loss
    sol = conv.solve(field, problem.x0, problem.theta, problem.T, rtol=rtol, atol=rtol, loss=loss)
    library = frozenset(conv.detach)
    candidates = []
    for det in DETACH_SETS:
        g = conv.full_discrete_gradient(field, problem.x0, problem.theta, problem.T, loss, rtol=rtol, atol=rtol,
                                        detach=det)
        det_set = frozenset(det)
        name = "(b) full discrete gradient, " + ("nothing detached" if not det else "detached: " + ", ".join(det))
        if det_set == frozenset({"h0", "h"}):
            name += " = (a) the frozen grid"
        candidates.append({"label": name, "detach": sorted(det_set), "library": det_set == library,
                           "loss": float(g.loss), "grad_theta": np.asarray(g.grad_theta, dtype=float),
                           "grad_x0": np.asarray(g.grad_x0, dtype=float)})
    cont = continuous_gradient(field, problem.x0, problem.theta, problem.T, loss, rtol=CONTINUOUS_RTOL)
    grid_tol = grid_rounding(sol)
    steps = np.diff(np.asarray(sol.grid, dtype=float))
    # moving a grid time by δ changes the local errors of its two steps, each ≈ rtol·|x|, by a relative (q+1)δ/h:
    # the loss and gradient move by at most (q+1)·rtol·M·δ/h_min relative (docs/theory/audit.md §6)
    # the last step, clipped to T (or interpolated), is excluded: its local error shrinks with it
    inner = steps[:-1] if len(steps) > 1 else steps
    sensitivity = (conv.pair.order + 1) * rtol * len(steps) / float(np.min(inner))
    x_end = np.asarray(sol.x_end if sol.x_end is not None else sol.xs[-1], dtype=float)
    return {"kind": "adaptive", "rtol": rtol, "grid": np.asarray(sol.grid, dtype=float),
            "trajectory": np.asarray(sol.xs, dtype=float), "x_end": x_end, "n_rejected": int(sol.n_rejected),
            "stages": int(conv.pair.stages), "library_detach": sorted(library), "convention": problem.convention,
            "grid_tolerance": grid_tol, "grid_sensitivity": sensitivity,
            "candidates": candidates,
            "continuous": {"what": "continuous gradient (c)", "loss": float(cont.loss),
                           "grad_theta": np.asarray(cont.grad_theta, dtype=float),
                           "grad_x0": np.asarray(cont.grad_x0, dtype=float), "error_bound": 0.0}}


def grid_rounding(sol) -> float:
    """How far two correct implementations' accepted grids may drift apart (docs/theory/audit.md §6):
    :func:`refimpl.ode.adaptive.grid_rounding`."""
    from refimpl.ode.adaptive import grid_rounding as bound

    return bound(sol)


def reference_spec(problem) -> dict:
    """The problem spec a reference task carries: outside the stage layout the stated scheme changes nothing in the
    references (every scheme is a candidate), so it is left out — the audits of several schemes of one problem then
    share their reference tasks (same hash: computed once with a results folder)."""
    spec = problem.to_spec()
    if spec["kind"] == "fixed" and spec["layout"] != "stage":
        spec.update(scheme="forward_euler", starter=None)
    return spec


def reference_member(problem_spec: dict, value) -> dict:
    """Sweep task: the references of one member (N for a fixed-step problem, rtol for an adaptive one)."""
    problem = problem_from_spec(problem_spec)
    if isinstance(problem, FixedStepProblem):
        return fixed_step_references(problem, int(value))
    return adaptive_references(problem, float(value))
