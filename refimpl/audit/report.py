"""The Markdown report of one or more audits (and a convergence plot per audit when matplotlib is installed)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from refimpl.audit.verdict import Evidence

__all__ = ["markdown_report", "write_report"]


def _e(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.2e}"


def _check(evidences) -> list:
    evidences = list(evidences)
    bad = [type(e).__name__ for e in evidences if not isinstance(e, Evidence)]
    if bad:
        raise TypeError(f"evidences must be Evidence objects (refimpl.audit.audit), got {bad[0]}")
    return evidences


def _section(ev: Evidence, plot: str | None) -> list:
    label = "N" if ev.kind == "fixed" else "rtol"
    lines = [f"## {ev.adapter}", "", f"**Verdict** ({'recognised' if ev.recognised else 'NOT recognised'}): "
             f"{ev.verdict}.", ""]
    if ev.failures:
        return lines
    lines += [f"Audit wall time {ev.seconds:.1f} s.", ""]
    if ev.localisation:
        lines += [f"Where it goes wrong: {ev.localisation}.", ""]
    ranked = sorted(ev.errors, key=lambda lab: max(ev.errors[lab]))[:5]
    head = f"| {label} | " + " | ".join(ranked) + " | rounding bound τ | distance to the continuous gradient |"
    lines += ["Normwise relative difference from each candidate (the five nearest; trajectory, loss and gradient, "
              "the largest of the three), the rounding bound of the match (or the stated scheme) and the distance "
              f"to the {ev.continuous.get('what', 'continuous gradient')}:", "", head,
              "|" + "---|" * (len(ranked) + 3)]
    cerr = ev.continuous.get("errors") or [None] * len(ev.family)
    for k, v in enumerate(ev.family):
        bound = ev.bounds[k] if k < len(ev.bounds) else None
        lines.append(f"| {v:g} | " + " | ".join(_e(ev.errors[lab][k]) for lab in ranked)
                     + f" | {_e(bound)} | {_e(cerr[k] if k < len(cerr) else None)} |")
    orders = ev.continuous.get("orders") or []
    if orders:
        lines += ["", "Observed orders of the distance to the continuous gradient: "
                  + ", ".join("—" if not math.isfinite(o) else f"{o:.2f}" for o in orders) + "."]
    if ev.oscillation:
        amps = ", ".join(f"{a:.3f}" for a in ev.oscillation["amplitudes"])
        lines += ["", f"(−1)ⁿ component of the normalised gradient, relative to its maximum: {amps} "
                  f"(the continuous gradient's own: {_e(ev.oscillation['reference_amplitudes'][-1])} at the finest)."]
        if "corrected_errors" in ev.oscillation:
            lines += ["", "Leapfrog-corrected gradient (pair sum) against δL/δθ: "
                      + ", ".join(_e(e) for e in ev.oscillation["corrected_errors"]) + "."]
    if ev.estimate:
        lines += ["", "Your estimate of δL/δθ against the continuous one: distance "
                  + ", ".join(_e(e) for e in ev.estimate["errors"]) + "; fitted scale "
                  + ", ".join(f"{c:.3f}" for c in ev.estimate["scales"]) + "."]
    if plot:
        lines += ["", f"![convergence]({plot})"]
    return lines + [""]


def markdown_report(evidences, plots=None, title: str = "refimpl audit") -> str:
    """The report text: the problem, then one section per audit (verdict, localisation, the table of differences
    per member, orders, oscillation and estimate diagnostics)."""
    evidences = _check(evidences)
    plots = plots or [None] * len(evidences)
    lines = [f"# {title}", ""]
    if evidences:
        lines += [f"Problem: {evidences[0].problem}.", "",
                  "How each verdict is decided (rounding bound, order rule, oscillation rule, localisation): "
                  "docs/theory/audit.md in the refimpl repository.", ""]
    for ev, plot in zip(evidences, plots):
        lines += _section(ev, plot)
    return "\n".join(lines)


def _plot(ev: Evidence, path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if ev.failures or not ev.errors:
        return False
    x = np.asarray(ev.family, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4))
    for lab in sorted(ev.errors, key=lambda lab: max(ev.errors[lab]))[:4]:
        y = np.maximum(np.asarray(ev.errors[lab], dtype=float), 1e-17)
        ax.loglog(x, y, "o-", label=lab)
    if ev.continuous.get("errors"):
        ax.loglog(x, ev.continuous["errors"], "k^--", label="continuous gradient")
    if ev.bounds:
        ax.loglog(x, ev.bounds, "k:", label="rounding bound τ")
    ax.set_xlabel("N" if ev.kind == "fixed" else "rtol")
    ax.set_ylabel("relative difference")
    ax.set_title(ev.adapter, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(evidences, out, title: str = "refimpl audit") -> Path:
    """Write ``out/audit.md`` (and ``out/audit-<k>.png`` per audit with matplotlib); return the Markdown path."""
    evidences = _check(evidences)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    for k, ev in enumerate(evidences):
        name = f"audit-{k}-{re.sub(r'[^A-Za-z0-9]+', '_', ev.adapter).strip('_')}.png"
        plots.append(name if _plot(ev, out / name) else None)
    path = out / "audit.md"
    path.write_text(markdown_report(evidences, plots, title), encoding="utf-8")
    return path
