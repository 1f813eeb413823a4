"""Adaptive solvers: which derivative an adaptive Runge–Kutta loss has (docs/theory/adaptive-steps.md).

Problem: tanh field f(x, θ) = tanh(Wx + b), d = 2, one constant θ = (W, b) (p = 6), x0 = (1, 0.5), T = 4,
Φ(x) = ½|x − y|², Dormand–Prince 5(4), I controller (safety 0.9, factors [0.2, 10]), RMS norm, HNW starting step,
atol = rtol.

1. Table (a) frozen-grid discrete adjoint vs (b) full discrete adjoint vs (c) continuous adjoint for rtol 1e-3 … 1e-10
   (relative 2-norm differences of dL/dθ), with the checks (b) == complex step of the whole adaptive loss, hand (a) ==
   tape (a), and (b) with every h detached == (a).
2. The loss L(θ + s·v) along one direction (v = the first bias): piecewise smooth, jumping where the accept/reject
   pattern changes; (b) is the exact derivative of each piece (complex step inside a piece), a central difference
   inside a piece agrees with it, one across a jump measures the jump, not a derivative.

Claims are checked numbers (thresholds stated in each claim's text).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from refimpl.ode.adaptive import (adaptive_solve, continuous_gradient, frozen_grid_gradient, full_discrete_gradient)
from refimpl.ode.fields import QuadraticLoss, TanhField
from validation.claims import Claim

SOURCE = "docs/theory/adaptive-steps.md"
PAIR = "dormand_prince_54"


def _problem():
    field = TanhField(2)
    theta = field.pack(np.array([[-0.6, -2.0], [2.0, -0.6]]), np.array([0.3, -0.2]))
    return field, theta, np.array([1.0, 0.5]), QuadraticLoss(np.array([0.2, -0.4])), 4.0


def _rel(u, ref):
    return float(np.linalg.norm(u - ref) / np.linalg.norm(ref))


def _complex_step_directional(field, theta, x0, loss, T, v, **opts):
    eps = 1e-30
    sol = adaptive_solve(field, PAIR, x0 + 0j, theta + 1j * eps * v, T, loss=loss, **opts)
    return float(np.imag(sol.loss)) / eps


def _pattern(sol):
    return (sol.N, tuple(r.step for r in sol.rejected))


def _rtol_table(quick):
    field, theta, x0, loss, T = _problem()
    rtols = [1e-3, 1e-5, 1e-7, 1e-9] if quick else [10.0 ** -k for k in range(3, 11)]
    c = continuous_gradient(field, x0, theta, T, loss, rtol=1e-12)
    rng = np.random.default_rng(11)
    v = rng.normal(size=theta.size)
    rows = []
    for rtol in rtols:
        opts = dict(rtol=rtol, atol=rtol)
        b = full_discrete_gradient(field, PAIR, x0, theta, T, loss, **opts)
        a = frozen_grid_gradient(field, PAIR, x0, theta, b.grid, loss)
        a_hand = frozen_grid_gradient(field, PAIR, x0, theta, b.grid, loss, route="auto")
        b_h = full_discrete_gradient(field, PAIR, x0, theta, T, loss, detach={"h"}, **opts)
        cs = _complex_step_directional(field, theta, x0, loss, T, v, **opts)
        rows.append(dict(rtol=rtol, N=b.solution.N, rejected=b.solution.n_rejected, nfev=b.solution.nfev,
                         ab=_rel(a.grad_theta, b.grad_theta), ac=_rel(a.grad_theta, c.grad_theta),
                         bc=_rel(b.grad_theta, c.grad_theta), loss_err=abs(b.loss - c.loss),
                         cs=abs(cs - b.grad_theta @ v) / (np.abs(b.grad_theta) @ np.abs(v)),
                         hand=float(np.max(np.abs(a_hand.grad_theta - a.grad_theta)) / np.max(np.abs(a.grad_theta))),
                         detached=float(np.max(np.abs(b_h.grad_theta - a.grad_theta)) / np.max(np.abs(a.grad_theta)))))
    return rows, c


def _scan(quick):
    """L(θ + s v) on a grid of s, the pattern at each s, and the full discrete derivative dL/ds there."""
    field, theta, x0, loss, T = _problem()
    v = np.zeros(theta.size)
    v[4] = 1.0  # the first bias b_1
    opts = dict(rtol=1e-3, atol=1e-3)
    S = np.linspace(-0.3, 0.3, 61 if quick else 241)
    L, dL, pat = [], [], []
    for s in S:
        g = full_discrete_gradient(field, PAIR, x0, theta + s * v, T, loss, **opts)
        L.append(g.loss)
        dL.append(float(g.grad_theta @ v))
        pat.append(_pattern(g.solution))
    return dict(S=S, L=np.array(L), dL=np.array(dL), pattern=pat, v=v, opts=opts, field=field, theta=theta, x0=x0,
                loss=loss, T=T)


def _locate(scan, i):
    """Bisect the pattern change between scan points i-1 and i to ~1e-13 in s; returns (s_left, s_right)."""
    field, theta, x0, loss, T, v, opts = (scan[k] for k in ("field", "theta", "x0", "loss", "T", "v", "opts"))
    lo, hi = scan["S"][i - 1], scan["S"][i]
    p_lo = scan["pattern"][i - 1]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        sol = adaptive_solve(field, PAIR, x0, theta + mid * v, T, **opts)
        if _pattern(sol) == p_lo:
            lo = mid
        else:
            hi = mid
    return lo, hi


def _jump_analysis(scan):
    """At each pattern change: the jump of L (one-sided limits by the pieces' exact derivatives), and a central
    difference centred on the change; inside the widest piece: central difference and complex step vs (b)."""
    field, theta, x0, loss, T, v, opts = (scan[k] for k in ("field", "theta", "x0", "loss", "T", "v", "opts"))
    S, pat = scan["S"], scan["pattern"]
    changes = [i for i in range(1, len(S)) if pat[i] != pat[i - 1]]
    jumps = []
    delta = 1e-6
    for i in changes:
        lo, hi = _locate(scan, i)
        gl = full_discrete_gradient(field, PAIR, x0, theta + lo * v, T, loss, **opts)
        gr = full_discrete_gradient(field, PAIR, x0, theta + hi * v, T, loss, **opts)
        jump = gr.loss - gl.loss  # hi - lo ~ 1e-16: the piece slopes add nothing measurable
        s_star = 0.5 * (lo + hi)
        Lp = adaptive_solve(field, PAIR, x0, theta + (s_star + delta) * v, T, loss=loss, **opts).loss
        Lm = adaptive_solve(field, PAIR, x0, theta + (s_star - delta) * v, T, loss=loss, **opts).loss
        fd = (Lp - Lm) / (2 * delta)
        slope = 0.5 * (gl.grad_theta @ v + gr.grad_theta @ v)
        jumps.append(dict(s=s_star, left=pat[i - 1], right=pat[i], jump=jump, fd=fd, slope_left=gl.grad_theta @ v,
                          slope_right=gr.grad_theta @ v, fd_err=abs(fd - slope) / abs(slope)))
    # the widest piece: its midpoint
    bounds = [0] + changes + [len(S)]
    k = int(np.argmax(np.diff(bounds)))
    mid = 0.5 * (S[bounds[k]] + S[bounds[k + 1] - 1])
    g = full_discrete_gradient(field, PAIR, x0, theta + mid * v, T, loss, **opts)
    b_dir = float(g.grad_theta @ v)
    cs = _complex_step_directional(field, theta + mid * v, x0, loss, T, v, **opts)
    Lp = adaptive_solve(field, PAIR, x0, theta + (mid + delta) * v, T, loss=loss, **opts)
    Lm = adaptive_solve(field, PAIR, x0, theta + (mid - delta) * v, T, loss=loss, **opts)
    same = _pattern(Lp) == _pattern(Lm) == _pattern(g.solution)
    fd = (Lp.loss - Lm.loss) / (2 * delta)
    inside = dict(s=mid, b=b_dir, cs_err=abs(cs - b_dir) / abs(b_dir), fd_err=abs(fd - b_dir) / abs(b_dir),
                  same_pattern=same)
    # smoothness inside pieces: trapezoid residual of L between neighbours with the same pattern (O(ds^3))
    ds = S[1] - S[0]
    res_in = [abs(scan["L"][i] - scan["L"][i - 1] - 0.5 * (scan["dL"][i] + scan["dL"][i - 1]) * ds)
              for i in range(1, len(S)) if pat[i] == pat[i - 1]]
    return jumps, inside, max(res_in)


def _plots(outdir, rows, scan, jumps):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    files = []
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    r = np.array([row["rtol"] for row in rows])
    for key, label in (("ab", "|(a) − (b)| / |(b)|"), ("ac", "|(a) − (c)| / |(c)|"), ("bc", "|(b) − (c)| / |(c)|")):
        ax.loglog(r, [row[key] for row in rows], "o-", label=label)
    ax.set_xlabel("rtol (= atol)")
    ax.set_ylabel("relative difference of dL/dθ")
    ax.set_title("frozen-grid (a), full discrete (b), continuous (c)")
    ax.invert_xaxis()
    ax.legend()
    fig.tight_layout()
    f = outdir / "adaptive_solvers_rtol.png"
    fig.savefig(f, dpi=110)
    plt.close(fig)
    files.append(f.name)

    fig, axes = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    S, L, dL = scan["S"], scan["L"], scan["dL"]
    trend = np.polyval(np.polyfit(S, L, 3), S)
    axes[0].plot(S, L - trend, ".-", ms=3, lw=0.8, label="L(θ + s v) − (its least-squares cubic)")
    for j in jumps:
        for ax in axes:
            ax.axvline(j["s"], color="0.7", lw=0.8, ls="--")
    axes[0].set_ylabel("loss, cubic trend removed")
    axes[0].set_title(f"Dormand–Prince 5(4), rtol = atol = {scan['opts']['rtol']:g}: pattern changes dashed")
    axes[0].legend()
    fd = np.gradient(L, S)
    axes[1].plot(S, dL, "-", lw=1.2, label="(b) full discrete adjoint (exact derivative of each piece)")
    axes[1].plot(S, fd, ".", ms=3, label=f"central differences on the scan grid (ds = {S[1] - S[0]:.2g})")
    axes[1].set_xlabel("s")
    axes[1].set_ylabel("dL/ds")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    f = outdir / "adaptive_solvers_loss_scan.png"
    fig.savefig(f, dpi=110)
    plt.close(fig)
    files.append(f.name)
    return files


def run(outdir: Path, quick: bool) -> list[Claim]:
    outdir = Path(outdir)
    rows, c = _rtol_table(quick)
    scan = _scan(quick)
    jumps, inside, res_in = _jump_analysis(scan)
    files = _plots(outdir, rows, scan, jumps)

    lines = ["# Adaptive solvers: which derivative?", "",
             "tanh field, d = 2, constant θ (p = 6), T = 4, Dormand–Prince 5(4), I controller, RMS norm, HNW "
             "starting step, atol = rtol. (a) frozen-grid discrete adjoint (the accepted grid as constants), (b) full "
             "discrete adjoint (the controller on the tape), (c) continuous adjoint (DOP853, rtol 1e-12). Relative "
             "2-norm differences of dL/dθ.", "",
             "| rtol | N | rejected | nfev | (a)−(b) | (a)−(c) | (b)−(c) | |L−L(c)| | (b) vs complex step | "
             "hand (a) vs tape (a) | (b, h detached) vs (a) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['rtol']:.0e} | {r['N']} | {r['rejected']} | {r['nfev']} | {r['ab']:.2e} | {r['ac']:.2e} | "
                     f"{r['bc']:.2e} | {r['loss_err']:.1e} | {r['cs']:.1e} | {r['hand']:.1e} | {r['detached']:.1e} |")
    lines += ["", "## The loss along a line: piecewise smooth with jumps", "",
              f"L(θ + s v), v = first bias, s ∈ [{scan['S'][0]:g}, {scan['S'][-1]:g}] ({len(scan['S'])} points), "
              f"rtol = atol = {scan['opts']['rtol']:g}. Pattern = (accepted steps, indices of the rejected attempts). "
              "Each change located by bisection to ~1e-13; jump = L just right − L just left; the central difference "
              "(δ = 1e-6) centred on the change compared with the mean of the two one-sided exact slopes.", "",
              "| s* | pattern left → right | jump of L | slope left | slope right | central difference | rel. error |",
              "|---|---|---|---|---|---|---|"]
    for j in jumps:
        lines.append(f"| {j['s']:.12f} | {j['left']} → {j['right']} | {j['jump']:.3e} | {j['slope_left']:.6g} | "
                     f"{j['slope_right']:.6g} | {j['fd']:.6g} | {j['fd_err']:.1e} |")
    lines += ["", f"Inside the widest piece (s = {inside['s']:.4f}): (b) = {inside['b']:.15g}; complex step relative "
                  f"error {inside['cs_err']:.1e}; central difference (δ = 1e-6, same pattern at s ± δ: "
                  f"{inside['same_pattern']}) relative error {inside['fd_err']:.1e}.",
              f"Between neighbouring scan points with the same pattern the trapezoid residual |ΔL − ½(L′ᵢ + L′ᵢ₋₁)Δs| "
              f"is at most {res_in:.1e} (smooth: O(Δs³)).", ""]
    lines += [f"![{f}]({f})" for f in files]
    (outdir / "adaptive_solvers.md").write_text("\n".join(lines) + "\n")

    worst_cs = max(r["cs"] for r in rows)
    worst_hand = max(r["hand"] for r in rows)
    worst_det = max(r["detached"] for r in rows)
    big_jumps = [j for j in jumps if abs(j["jump"]) > 1e-6]
    ac_first, ac_last = rows[0]["ac"], rows[-1]["ac"]
    bc_first, bc_last = rows[0]["bc"], rows[-1]["bc"]
    return [
        Claim(SOURCE, "(b) full discrete adjoint == complex step of the whole adaptive loss (≤ 1e-12 rel.)",
              worst_cs <= 1e-12 and inside["cs_err"] <= 1e-12,
              f"worst {max(worst_cs, inside['cs_err']):.1e} over {len(rows)} tolerances and one scan point"),
        Claim(SOURCE, "(a) hand discrete adjoint on the accepted grid == tape on the frozen grid (≤ 1e-13 rel.)",
              worst_hand <= 1e-13, f"worst {worst_hand:.1e}"),
        Claim(SOURCE, "(b) with every step size detached == (a) (≤ 1e-13 rel.)", worst_det <= 1e-13,
              f"worst {worst_det:.1e}"),
        Claim(SOURCE, "(a) − (b) ≠ 0: the controller's dependence on θ is part of the derivative (> 1e-12 at every "
                      "rtol)", min(r["ab"] for r in rows) > 1e-12,
              ", ".join(f"{r['rtol']:.0e}: {r['ab']:.1e}" for r in rows)),
        Claim(SOURCE, "(a) and (b) approach (c) as rtol falls (rel. diff. shrinks ≥ 1e4× from the loosest to the "
                      "tightest rtol)", ac_last * 1e4 <= ac_first and bc_last * 1e4 <= bc_first,
              f"(a)−(c) {ac_first:.1e} → {ac_last:.1e}, (b)−(c) {bc_first:.1e} → {bc_last:.1e}"),
        Claim(SOURCE, "L(θ + s v) jumps where the accept/reject pattern changes (≥ 1 jump > 1e-6 in the scan)",
              len(big_jumps) >= 1,
              f"{len(jumps)} pattern changes, jumps " + ", ".join(f"{j['jump']:.1e}" for j in jumps)),
        Claim(SOURCE, "inside a piece a central difference agrees with (b) (≤ 1e-6 rel.); centred on a jump it is off "
                      "by > 10× the derivative", inside["same_pattern"] and inside["fd_err"] <= 1e-6
              and all(j["fd_err"] > 10 for j in big_jumps),
              f"inside {inside['fd_err']:.1e}; across jumps " + ", ".join(f"{j['fd_err']:.1e}" for j in big_jumps)),
    ]
