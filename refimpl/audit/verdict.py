r"""From a solver's outputs and refimpl's references over a refinement family to a verdict (docs/theory/audit.md).

Three questions, in this order, each answered with numbers:

1. **Is it the exact gradient of some discrete loss?** For every candidate (a scheme, its starter, the layout) the
   normwise relative differences of the trajectory, the loss and the gradient (θ and :math:`x_0` together) at every
   member must lie under the rounding bound :math:`\tau(N) = 4\,N s (p + s)\,\varepsilon\,A` (§3: N steps of s stages,
   each evaluating f with at most p + s rounded operations per component, two implementations × forward and backward
   sweep, the backward sweep's amplification A = max(1, max_n |λ_n|/|λ_N|) measured on the reference). Two different
   schemes differ by :math:`O(h^{q})`, far above τ at the coarse members, so a match identifies the scheme. A solver
   that lies under :math:`\tau\,\varepsilon_{32}/\varepsilon` but not under τ computed something in single precision.
2. **What does it converge to?** The normwise relative distance from the continuous gradient (piecewise-constant for
   the step and constant layouts; :math:`\delta L/\delta\theta(\tau_r)` against the normalised gradient
   :math:`G_r/(h w_r)` for the stage layout) at each member, and the observed orders
   :math:`\log(e_k/e_{k+1})/\log(N_{k+1}/N_k)`; "converges at order q" needs the last two orders ≥ ½ (each halving
   of h cuts the error by at least √2) — q is their mean. A (−1)ⁿ component of the normalised gradient that does not
   decay (§4: at the finest member ≥ half its size at the coarsest, and ten times what the continuous gradient's own
   second difference allows) is reported as an oscillation, with the leapfrog correction's convergence when it is the
   leapfrog parasitic mode.
3. **Where does it go wrong?** Against the candidate whose forward pass matches (or the stated scheme), at the
   coarsest failing member: the first trajectory row n over the bound for n steps, then the loss, then the gradient
   sample by sample (first sample, how many, whether only the starter's samples), then :math:`\partial L/\partial x_0`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Evidence", "rounding_bound", "fixed_step_evidence", "adaptive_evidence", "EPS", "EPS32",
           "MIN_ORDER"]

EPS = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)
#: an observed order below this between two refinements is not convergence (the error shrinks by < √2 per halving)
MIN_ORDER = 0.5


def rounding_bound(n_steps: int, stages: int, n_params: int, amplification: float = 1.0, eps: float = EPS) -> float:
    r""":math:`\tau = 4\,n s (p + s)\,\varepsilon\,A` — the normwise relative difference two float implementations of
    the same n-step, s-stage computation may show (module docstring; docs/theory/audit.md §3)."""
    for name, value, low in (("n_steps", n_steps, 0), ("stages", stages, 1), ("n_params", n_params, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (np.isfinite(amplification) and amplification >= 1) or not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"amplification must be a finite number >= 1 and eps > 0, got {amplification!r}, {eps!r}")
    return 4.0 * max(int(n_steps), 1) * int(stages) * (int(n_params) + int(stages)) * eps * float(amplification)


def _rel(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return diff / scale if scale > 0 else diff


def _grad_vec(out) -> np.ndarray:
    return np.concatenate([np.ravel(out["grad_theta"]), np.ravel(out["grad_x0"])]).astype(np.float64)


def _grad_rel(a, b) -> float:
    """max of the normwise relative differences of dL/dθ and of dL/dx0, each against its own size (in the step
    layout every θ_n has a gradient O(h) while dL/dx0 is O(1): one norm over both would hide the θ part)."""
    return max(_rel(a["grad_theta"], b["grad_theta"]), _rel(a["grad_x0"], b["grad_x0"]))


def _orders(values, errors) -> list:
    out = []
    for k in range(len(errors) - 1):
        e0, e1 = errors[k], errors[k + 1]
        if not (np.isfinite(e0) and np.isfinite(e1)) or e0 <= 0 or e1 <= 0:
            out.append(float("nan"))
        else:
            out.append(float(np.log(e0 / e1) / np.log(values[k + 1] / values[k])))
    return out


def _converges(errors, orders, floor: float = 0.0):
    """(kind, order): "converges" with the mean of the last two orders measured above the reference's error floor
    (both ≥ MIN_ORDER), "tolerance" when the finest error is already at that floor, or "no"."""
    above = [k for k, e in enumerate(errors) if np.isfinite(e) and e > floor]
    valid = [orders[k] for k in range(len(orders)) if k in above and k + 1 in above and np.isfinite(orders[k])]
    if len(valid) >= 2 and min(valid[-2:]) >= MIN_ORDER and (len(above) == len(errors) or errors[-1] <= floor):
        return "converges", float(np.mean(valid[-2:]))
    if errors and np.isfinite(errors[-1]) and errors[-1] <= floor:
        return "tolerance", float("nan")
    return "no", float("nan")


def _fmt(x: float) -> str:
    return f"{x:.1e}".replace("e-0", "e-").replace("e+0", "e+")


@dataclass
class Evidence:
    """What an audit found. ``verdict`` (one paragraph), ``recognised`` (the gradient is identified — the exact
    gradient of a named discrete loss or a consistent approximation of the continuous one — and every check is
    consistent), ``family`` (the N or rtol of each member), ``match`` (the candidate it equals, or None), ``errors``
    (candidate label -> per-member max relative difference), ``bounds`` (the rounding bound τ of the match or the
    stated scheme per member), ``continuous`` (per-member distance to the continuous gradient and the observed
    orders), ``localisation`` (where it first goes wrong, or None), ``oscillation``, ``estimate`` (dicts or None),
    ``failures`` (members whose solver raised), ``problem`` and ``adapter`` descriptions, ``seconds`` of wall time,
    and the raw ``outputs`` (the solver's, per member) and ``references`` (refimpl's, per member)."""

    verdict: str
    recognised: bool
    family: list
    kind: str
    match: str | None = None
    errors: dict = field(default_factory=dict)
    bounds: list = field(default_factory=list)
    continuous: dict = field(default_factory=dict)
    localisation: str | None = None
    oscillation: dict | None = None
    estimate: dict | None = None
    failures: list = field(default_factory=list)
    problem: str = ""
    adapter: str = ""
    seconds: float = 0.0
    outputs: list = field(default_factory=list, repr=False)
    references: list = field(default_factory=list, repr=False)

    def __repr__(self) -> str:
        status = "recognised" if self.recognised else "NOT recognised"
        return f"Evidence({status}: {self.verdict})"

    def raise_if_unrecognised(self) -> "Evidence":
        if not self.recognised:
            raise AssertionError(self.verdict)
        return self


# ---------------------------------------------------------------------------------------------------------------------
# fixed steps


def fixed_step_evidence(problem, family, outputs, references) -> Evidence:
    """The evidence of a fixed-step audit (module docstring). ``outputs[k]``: the solver's data for N = family[k]
    (or an error string); ``references[k]``: :func:`refimpl.audit.references.fixed_step_references`."""
    Ns = [int(n) for n in family]
    failures = [(N, o) for N, o in zip(Ns, outputs) if isinstance(o, str)]
    if failures:
        N, msg = failures[0]
        return Evidence(f"the solver failed at N = {N}: {msg}", False, Ns, "fixed", failures=failures)
    p = problem.field.n_params
    labels = [c["label"] for c in references[0]["candidates"]]
    labels = [lab for lab in labels if all(any(c["label"] == lab for c in r["candidates"]) for r in references)]

    def cand(k, label):
        return next(c for c in references[k]["candidates"] if c["label"] == label)

    table, bounds_of = {}, {}
    for lab in labels:
        rows = []
        for k, (out, ref) in enumerate(zip(outputs, references)):
            c = cand(k, lab)
            traj = np.asarray(out["trajectory"], dtype=np.float64)
            rtraj = c["trajectory"] if traj.shape[0] != 1 else c["trajectory"][-1:]
            rows.append((_rel(traj, rtraj), _rel(out["loss"], c["loss"]),
                         _grad_rel(out, c) if np.shape(out["grad_theta"]) == c["grad_theta"].shape
                         else float("inf")))
        table[lab] = rows
        bounds_of[lab] = [rounding_bound(N, cand(k, lab)["stages"], p, cand(k, lab)["amplification"])
                          for k, N in enumerate(Ns)]

    def under(lab, scale=1.0, quantities=(0, 1, 2)):
        return all(table[lab][k][q] <= scale * bounds_of[lab][k] for k in range(len(Ns)) for q in quantities)

    errors = {lab: [max(r) for r in table[lab]] for lab in labels}
    matches = [lab for lab in labels if under(lab)]
    stated = next((c["label"] for c in references[0]["candidates"]
                   if c["scheme"] == problem.scheme and c["starter"] == problem.starter), labels[0])
    if stated in matches:  # several candidates equal on this problem: the one the solver claims is named first
        matches = [stated] + [lab for lab in matches if lab != stated]
    cont = _continuous_convergence(problem, Ns, outputs, references)
    osc = _oscillation(problem, Ns, outputs, references, matches[0] if matches else stated)
    est = _estimate_check(problem, Ns, outputs, references, matches[0] if matches else stated)
    parts, recognised, localisation, match = [], False, None, None
    if matches:
        match = matches[0]
        worst = max(max(r) for r in table[match])
        text = f"equals the discrete adjoint of {_scheme_name(match)}, {problem.layout} layout, to {_fmt(worst)}"
        if len(matches) > 1:
            text += (" — and equally that of " + ", ".join(_scheme_name(m) for m in matches[1:])
                     + " (indistinguishable on this problem)")
        stated_name = problem.scheme
        if cand(0, match)["scheme"] != stated_name and stated not in matches:
            text += f" (your '{stated_name}' is {_scheme_name(match)})"
        parts.append(text)
        recognised = True
    else:
        fwd = sorted((lab for lab in labels if under(lab, 1.0, (0, 1))), key=lambda lab: lab != stated)
        best = min(labels, key=lambda lab: max(errors[lab]))
        f32 = (under(best, EPS32 / EPS) and _converges(errors[best], _orders(Ns, errors[best]))[0] == "no")
        if fwd:
            lab = fwd[0]
            tw = max(max(r[0], r[1]) for r in table[lab])
            gw = [r[2] for r in table[lab]]
            localisation = _localise(problem, Ns, outputs, references, lab, table, bounds_of)
            if cont["kind"] in ("converges", "tolerance"):
                parts.append(f"is not the exact gradient of the discrete loss: the trajectory and loss equal "
                             f"{_scheme_name(lab)}'s to {_fmt(tw)}, but the gradient differs from its discrete "
                             f"adjoint by {_fmt(gw[0])} … {_fmt(gw[-1])} (order "
                             f"{_order_text(_orders(Ns, gw))}) — a discretised continuous (backsolve) adjoint")
                recognised = True
            else:
                parts.append(f"wrong gradient: the trajectory and loss equal {_scheme_name(lab)}'s to {_fmt(tw)}, "
                             f"but {localisation}")
        elif f32:
            lab = best
            worst = max(errors[lab])
            parts.append(f"equals the discrete adjoint of {_scheme_name(lab)} only to float32 precision: it differs "
                         f"by up to {_fmt(worst)}, above the float64 rounding bound ({_fmt(max(bounds_of[lab]))}), "
                         f"under the float32 one, and does not shrink as h → 0 — a float32 computation somewhere "
                         f"(eps32 = {_fmt(EPS32)})")
            localisation = _localise(problem, Ns, outputs, references, lab, table, bounds_of)
            parts.append(localisation)
        else:
            localisation = _localise(problem, Ns, outputs, references, stated, table, bounds_of)
            parts.append(f"matches nothing: {localisation}")
            tr = _trajectory_order(problem, Ns, outputs, references)
            if tr is not None:
                parts.append(tr)
    if cont["kind"] == "converges":
        parts.append(f"converges to the continuous gradient at order {cont['order']:.2f}")
    elif cont["kind"] == "tolerance":
        parts.append(f"agrees with the continuous gradient to its tolerance ({_fmt(cont['errors'][-1])})")
    elif cont["errors"]:
        parts.append(f"does not converge to the continuous gradient (distance {_fmt(cont['errors'][0])} at "
                     f"N = {Ns[0]}, {_fmt(cont['errors'][-1])} at N = {Ns[-1]}; orders "
                     f"{_order_text(cont['orders'])})")
    if osc is not None and osc["oscillates"]:
        text = (f"its normalised gradient oscillates with (−1)^n amplitude {osc['amplitude']:.2f}·max at "
                f"N = {Ns[-1]}")
        if osc.get("leapfrog"):
            text += " — leapfrog parasitic mode"
            if osc.get("corrected_kind") == "converges":
                text += f"; corrected gradient converges at order {osc['corrected_order']:.1f}"
        parts.append(text)
    if est is not None:
        parts.append(est["text"])
        recognised = recognised and est["consistent"]
    if not matches and cont["kind"] == "no":
        recognised = False
    verdict = "; ".join(parts)
    bounds = bounds_of.get(match or stated, [])
    return Evidence(verdict, recognised, Ns, "fixed", match, errors, bounds, cont, localisation, osc, est,
                    problem=problem.describe())


def _scheme_name(label: str) -> str:
    names = {"rk4": "RK4", "rk38": "RK38 (Kutta's 3/8 rule)", "forward_euler": "forward Euler", "midpoint": "midpoint",
             "heun": "Heun", "ralston": "Ralston", "kutta_rk3": "Kutta's RK3"}
    head, _, rest = label.partition(" ")
    return names.get(head, head) + (" " + rest if rest else "")


def _order_text(orders) -> str:
    return ", ".join("nan" if not np.isfinite(o) else f"{o:.2f}" for o in orders)


def _normalised(G, weights, h):
    G = np.asarray(G, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    keep = w != 0
    return G[keep] / (h * w[keep, None]), keep


def _continuous_convergence(problem, Ns, outputs, references) -> dict:
    errors, floors = [], []
    for out, ref in zip(outputs, references):
        C = ref["continuous"]
        G = np.asarray(out["grad_theta"], dtype=np.float64)
        if G.shape != C["grad_theta"].shape:
            return {"kind": "no", "errors": [], "orders": [], "note": "gradient shape differs from the layout's"}
        if C["normalised"]:
            g, keep = _normalised(G, ref["stated_weights"], ref["h"])
            ct = C["grad_theta"][keep]
            et = _rel(g, ct)
            ct_scale = float(np.max(np.abs(ct))) * ref["h"]  # the error bound is of dL/dθ(t); compare per h
        else:
            ct = C["grad_theta"]
            et = _rel(G, ct)
            ct_scale = float(np.max(np.abs(ct)))
        errors.append(max(et, _rel(out["grad_x0"], C["grad_x0"])))
        scale = min(ct_scale, float(np.max(np.abs(C["grad_x0"]))))
        floors.append(10 * C["error_bound"] / scale if scale > 0 else 0.0)
    orders = _orders(Ns, errors)
    floor = max(floors)
    kind, order = _converges(errors, orders, floor)
    return {"kind": kind, "order": order, "errors": errors, "orders": orders, "floor": floor,
            "what": references[0]["continuous"]["what"]}


def _samples_of(problem, scheme: str, starter, N: int):
    from refimpl.ode.samples import parameter_samples
    from refimpl.ode.schemes import scheme as named_scheme
    return parameter_samples(named_scheme(scheme), problem.T, N, problem.layout, starter)


def _oscillation(problem, Ns, outputs, references, label) -> dict | None:
    r"""The (−1)ⁿ component of the normalised gradient (:func:`refimpl.ode.corrections.oscillation_amplitude`)
    against the continuous gradient's own (a smooth function's second difference is :math:`O(h^2)`)."""
    from refimpl.ode.corrections import leapfrog_corrected_gradient, oscillation_amplitude
    from refimpl.audit.references import continuous_at
    if problem.layout == "constant":
        return None
    amps, ref_amps = [], []
    c0 = next(c for c in references[0]["candidates"] if c["label"] == label)
    for out, ref in zip(outputs, references):
        c = next(c for c in ref["candidates"] if c["label"] == label)
        G = np.asarray(out["grad_theta"], dtype=np.float64)
        if G.shape != c["grad_theta"].shape or G.shape[0] < 4:
            return None
        g, keep = _normalised(G, c["weights"], ref["h"])
        C = ref["continuous"]["grad_theta"]
        Cn = C[keep] if ref["continuous"]["normalised"] else _normalised(C, np.ones(C.shape[0]), ref["h"])[0][keep]
        scale = max(float(np.max(np.abs(g))), 1e-300)
        amps.append(oscillation_amplitude(g) / scale)
        ref_amps.append(oscillation_amplitude(Cn) / max(float(np.max(np.abs(Cn))), 1e-300))
    oscillates = amps[-1] >= 0.5 * amps[0] and amps[-1] > 10 * ref_amps[-1] + 1e-12
    result = {"amplitudes": amps, "reference_amplitudes": ref_amps, "amplitude": amps[-1], "oscillates": oscillates,
              "leapfrog": c0["scheme"] == "leapfrog"}
    if oscillates and result["leapfrog"]:
        errs = []
        for N, out in zip(Ns, outputs):
            samples = _samples_of(problem, "leapfrog", c0["starter"], N)
            try:
                corr = leapfrog_corrected_gradient(np.asarray(out["grad_theta"], dtype=np.float64), samples, "sum")
            except ValueError:
                errs.append(float("nan"))
                continue
            errs.append(_rel(corr.values, continuous_at(problem, corr.times)))
        orders = _orders(Ns, errs)
        kind, order = _converges(errs, orders)
        result.update(corrected_errors=errs, corrected_orders=orders, corrected_kind=kind, corrected_order=order)
    return result


def _estimate_check(problem, Ns, outputs, references, label) -> dict | None:
    """The solver's own estimate of δL/δθ(t), if it gave one: which refimpl estimate it equals, what it converges
    to (δL/δθ, or a multiple c·δL/δθ — the scale fitted by least squares, reported when |c − 1| is more than
    twice the scaled residual)."""
    from refimpl.audit.references import continuous_at
    from refimpl.ode.corrections import applicable_estimates
    if outputs[0].get("estimate") is None:
        return None
    errs, scales, resid, named = [], [], [], None
    for k, (N, out, ref) in enumerate(zip(Ns, outputs, references)):
        t = np.asarray(out["estimate_times"], dtype=np.float64)
        e = np.asarray(out["estimate"], dtype=np.float64)
        r = continuous_at(problem, t)
        errs.append(_rel(e, r))
        c = float(np.sum(e * r) / np.sum(r * r))
        scales.append(c)
        resid.append(_rel(e, c * r))
        c0 = next(c for c in ref["candidates"] if c["label"] == label)
        try:
            est = applicable_estimates(np.asarray(out["grad_theta"], dtype=np.float64),
                                       _samples_of(problem, c0["scheme"], c0["starter"], N))
        except ValueError:
            est = {}
        bound = rounding_bound(N, c0["stages"], problem.field.n_params, c0["amplification"])
        here = [name for name, g in est.items() if g.values.shape == e.shape
                and np.array_equal(g.times, t) and _rel(e, g.values) <= bound]
        named = here if k == 0 else [n for n in (named or []) if n in here]
    c0 = next(c for c in references[0]["candidates"] if c["label"] == label)
    corrected = "the leapfrog pair sum" if c0["scheme"] == "leapfrog" else "the stage-weight correction G/(h b_i)"
    names = {"corrected": corrected,
             "average": "the leapfrog pair average", "normalised": "the normalised gradient G/(h w)",
             "per_step": "G/h", "time_average": "G/T"}
    which = f"equals {names.get(named[0], named[0])} of refimpl.ode.corrections; " if named else ""
    kind, order = _converges(errs, _orders(Ns, errs))
    rkind, rorder = _converges(resid, _orders(Ns, resid))
    c = scales[-1]
    if kind == "converges":
        text, ok = f"your estimate of dL/dtheta(t) {which}it converges to dL/dtheta at order {order:.1f}", True
    elif rkind == "converges" and abs(c - 1) > 2 * resid[-1]:
        text = (f"your estimate of dL/dtheta(t) {which}it converges to {c:.2f} × dL/dtheta, not to dL/dtheta "
                f"(residual order {rorder:.1f})")
        if named and named[0] == "average":
            text += " — the leapfrog pair average instead of the sum"
        ok = False
    else:
        text = (f"your estimate of dL/dtheta(t) {which}it does not converge to dL/dtheta (distance "
                f"{_fmt(errs[-1])} at N = {Ns[-1]})")
        ok = False
    return {"errors": errs, "scales": scales, "residuals": resid, "named": named, "text": text, "consistent": ok}


def _trajectory_order(problem, Ns, outputs, references) -> str | None:
    """The observed order of the solver's x_N against the exact x(T) (the continuous reference)."""
    errs = []
    for out, ref in zip(outputs, references):
        traj = np.asarray(out["trajectory"], dtype=np.float64)
        errs.append(_rel(traj[-1], ref["continuous"]["trajectory"][-1]))
    orders = _orders(Ns, errs)
    kind, order = _converges(errs, orders)
    from refimpl.ode.schemes import scheme as named_scheme
    p = named_scheme(problem.scheme).order
    if kind == "converges":
        return f"your x_N converges at order {order:.2f} ({problem.scheme} has order {p})"
    return f"your x_N does not converge to x(T) (orders {_order_text(orders)})"


def _localise(problem, Ns, outputs, references, label, table, bounds_of) -> str:
    k = next((k for k in range(len(Ns)) if max(table[label][k]) > bounds_of[label][k]), 0)
    N, out, ref = Ns[k], outputs[k], references[k]
    c = next(c for c in ref["candidates"] if c["label"] == label)
    p = problem.field.n_params
    traj = np.asarray(out["trajectory"], dtype=np.float64)
    rt = c["trajectory"]
    name = _scheme_name(label)
    if traj.shape[0] not in (1, rt.shape[0]) or traj.shape[1:] != rt.shape[1:]:
        return (f"at N = {N} the trajectory has {traj.shape[0]} rows, expected N + 1 = {rt.shape[0]} (or 1: the "
                f"final state)")
    if traj.shape[0] == rt.shape[0]:
        scale = float(np.max(np.abs(rt)))
        dev = np.max(np.abs(traj - rt), axis=1) / scale
        tol = np.array([rounding_bound(n, c["stages"], p, c["amplification"]) for n in range(rt.shape[0])])
        bad = np.flatnonzero(dev > tol)
        if bad.size:
            n = int(bad[0])
            steps = "step 0" if n == 1 else f"steps 0–{n - 1}"
            agree = f"; it agrees to {_fmt(float(np.max(dev[:n])))} at {steps}" if n > 0 else ""
            return (f"at N = {N} the trajectory already differs from {name}'s at step {n} "
                    f"(t = {ref['grid'][n]:.6g}) by {_fmt(float(dev[n]))}{agree}")
    eloss = table[label][k][1]
    if eloss > bounds_of[label][k]:
        return f"at N = {N} the trajectory agrees with {name}'s but the loss differs by {_fmt(eloss)}"
    G = np.asarray(out["grad_theta"], dtype=np.float64)
    if G.shape != c["grad_theta"].shape:
        return (f"at N = {N} the gradient has shape {G.shape}, the {problem.layout} layout of {name} has "
                f"{c['grad_theta'].shape}")
    scale = max(float(np.max(np.abs(c["grad_theta"]))), float(np.max(np.abs(c["grad_x0"]))))
    tol = bounds_of[label][k] * scale
    rows = np.flatnonzero(np.max(np.abs(G - c["grad_theta"]), axis=1) > tol)
    dx0 = float(np.max(np.abs(np.asarray(out["grad_x0"], dtype=np.float64) - c["grad_x0"])))
    text = f"at N = {N} the gradient"
    if rows.size:
        r = int(rows[0])
        where = "" if problem.layout == "constant" else f" (t = {c['sample_times'][r]:.6g})"
        worst = float(np.max(np.abs(G - c["grad_theta"]))) / scale
        text += (f" differs first at sample {r}{where}, at {rows.size} of {G.shape[0]} samples, by up to "
                 f"{_fmt(worst)}")
        if c["starter_rows"] and set(rows.tolist()) <= set(c["starter_rows"]):
            text += " — only at the samples the starter uses (the starter's adjoint terms)"
        text += "; " + ("dL/dx0 differs too" if dx0 > tol else "dL/dx0 agrees")
    elif dx0 > tol:
        text += f" wrt theta agrees, dL/dx0 differs by {_fmt(dx0 / scale)}"
    else:
        text += " agrees at this member"
    return text


# ---------------------------------------------------------------------------------------------------------------------
# adaptive


def adaptive_evidence(problem, family, outputs, references) -> Evidence:
    """The evidence of an adaptive audit: the loss and gradient against every variant of the stated convention at
    every tolerance (bound τ with n = accepted + rejected steps, plus the effect (q+1)·rtol·M·δ/h_min of the
    measured drift δ of the accepted grid when rounding explains it, docs/theory/audit.md §6), the accepted grid against the convention's (δ from
    :func:`refimpl.audit.references.grid_rounding`), and the distance to the continuous gradient as rtol → 0 (order
    in rtol)."""
    rtols = [float(r) for r in family]
    failures = [(r, o) for r, o in zip(rtols, outputs) if isinstance(o, str)]
    if failures:
        r, msg = failures[0]
        return Evidence(f"the solver failed at rtol = {r:g}: {msg}", False, rtols, "adaptive", failures=failures)
    p = problem.field.n_params
    labels = [c["label"] for c in references[0]["candidates"]]
    errors, bounds = {}, []
    for k, (out, ref) in enumerate(zip(outputs, references)):
        n = len(ref["grid"]) - 1 + ref["n_rejected"]
        # rounding of the arithmetic, plus what the measured drift of the accepted grid does to the loss when that
        # drift is one rounding explains (§6); a solver that reports no grid gets the arithmetic's bound only
        t = out.get("times")
        drift = 0.0
        if t is not None and np.shape(t) == ref["grid"].shape:
            drift = min(float(np.max(np.abs(np.asarray(t, dtype=float) - ref["grid"]))), ref["grid_tolerance"])
        bounds.append(rounding_bound(n, ref["stages"], p) + ref["grid_sensitivity"] * drift)
    for lab in labels:
        errors[lab] = []
        for out, ref in zip(outputs, references):
            c = next(c for c in ref["candidates"] if c["label"] == lab)
            errors[lab].append(max(_rel(out["loss"], c["loss"]), _rel(_grad_vec(out), _grad_vec(c))))
    matches = [lab for lab in labels if all(e <= b for e, b in zip(errors[lab], bounds))]
    library = [lab for lab in matches if next(c for c in references[0]["candidates"] if c["label"] == lab)["library"]]
    matches = library + [lab for lab in matches if lab not in library]  # the library's own variant named first
    # every variant with the same gradient on this problem is the same quantity: group them by equality
    cerr = [_rel(_grad_vec(o), _grad_vec(r["continuous"])) for o, r in zip(outputs, references)]
    corders = [float("nan")] * (len(rtols) - 1)
    for k in range(len(rtols) - 1):
        if cerr[k] > 0 and cerr[k + 1] > 0:
            corders[k] = float(np.log(cerr[k] / cerr[k + 1]) / np.log(rtols[k] / rtols[k + 1]))
    grid_note = _grid_note(outputs, references)
    parts, recognised, match = [], False, None
    conv = problem.convention
    if matches:
        match = matches[0]
        c = next(c for c in references[0]["candidates"] if c["label"] == match)
        worst = max(max(errors[m]) for m in matches[:1])
        parts.append(f"equals refimpl's {match} of the {conv} convention, to {_fmt(worst)}")
        if len(matches) > 1:
            parts[-1] += " (equally: " + "; ".join(matches[1:]) + ")"
        lib = set(references[0]["library_detach"])
        if any(next(cc for cc in references[0]["candidates"] if cc["label"] == m)["library"] for m in matches):
            parts.append(f"this is {conv}'s own gradient")
            recognised = True
        else:
            det = set(c["detach"])
            extra, missing = sorted(det - lib), sorted(lib - det)
            text = f"it is not {conv}'s own gradient (which detaches {', '.join(sorted(lib)) or 'nothing'})"
            if extra:
                text += f": it detaches {', '.join(extra)} where {conv.split(':')[0]} attaches it"
            if missing:
                text += f"{':' if not extra else ';'} it attaches {', '.join(missing)} where {conv.split(':')[0]} " \
                        f"detaches it"
            parts.append(text)
    else:
        best = min(labels, key=lambda lab: max(errors[lab]))
        kind, order = "no", float("nan")
        last = [o for o in corders[-2:] if np.isfinite(o)]
        if len(last) == 2 and min(last) >= MIN_ORDER:
            kind, order = "converges", float(np.mean(last))
        if kind == "converges":
            parts.append(f"is not a discrete gradient of the {conv} solve (nearest: {best}, "
                         f"{_fmt(max(errors[best]))} away); it converges to the continuous gradient (c) as "
                         f"rtol^{order:.2f}")
            recognised = True
        else:
            parts.append(f"matches nothing: nearest {best}, {_fmt(errors[best][0])} away at rtol = {rtols[0]:g}, "
                         f"and it does not converge to the continuous gradient (distance {_fmt(cerr[0])} … "
                         f"{_fmt(cerr[-1])})")
    if grid_note:
        parts.append(grid_note)
    return Evidence("; ".join(parts), recognised, rtols, "adaptive", match, errors, bounds,
                    {"errors": cerr, "orders": corders, "what": "continuous gradient (c)"}, None, None, None,
                    problem=problem.describe())


def _grid_note(outputs, references) -> str:
    """How the solver's accepted grid compares with the convention's (only when the solver reports its times)."""
    diffs = []
    for out, ref in zip(outputs, references):
        t = out.get("times")
        if t is None:
            return ""
        t = np.asarray(t, dtype=np.float64)
        if t.shape != ref["grid"].shape:
            return (f"its accepted grid has {t.size - 1} steps at rtol = {ref['rtol']:g} where the convention takes "
                    f"{ref['grid'].size - 1}")
        diffs.append(float(np.max(np.abs(t - ref["grid"]))))
        if diffs[-1] > ref["grid_tolerance"]:
            return (f"its accepted grid differs from the convention's beyond rounding at rtol = {ref['rtol']:g} "
                    f"({_fmt(diffs[-1])} > {_fmt(ref['grid_tolerance'])}): another controller")
    return f"accepted grids equal the convention's (step counts equal, times to {_fmt(max(diffs))})"
