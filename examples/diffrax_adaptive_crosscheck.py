r"""Worked example: reproduce refimpl's adaptive oracle cases (``"kind": "ode_adaptive"``) with diffrax, reading only
the case files.

A user's view: nothing from refimpl is imported. Each case is read with ``json`` (``case.json``) and ``numpy``
(``arrays.npz``, ``allow_pickle=False``), solved with diffrax 0.7.2 on JAX in float64, and the results are written to
``THEIRS.npz`` and judged by ``python -m refimpl check CASE THEIRS.npz`` (the command-line tool, in a subprocess).

Which cases diffrax can reproduce: those whose ``problem.convention`` is ``{"family": "diffrax", ...}``. Their
accepted grid is decided by diffrax's own rules — the solver's tableau with its float coefficients, ``PIDController``
(error ratio, acceptance r < 1, factor and its clipping), the first step ``dt0`` given, the last step clipped to T —
and every one of those rules is in the problem section, so the call is (``docs/case-format.md`` § Adaptive ODE cases,
"Map your solver")::

    conv = problem["convention"]
    diffrax.diffeqsolve(diffrax.ODETerm(lambda t, x, th: f(x, th)), getattr(diffrax, conv["solver"])(),
                        t0=0.0, t1=problem["T"], dt0=problem["h0"], y0=x0, args=theta[0],
                        stepsize_controller=diffrax.PIDController(rtol=problem["rtol"], atol=problem["atol"],
                            pcoeff=conv["pcoeff"], icoeff=conv["icoeff"], dcoeff=conv["dcoeff"],
                            safety=conv["safety"], factormin=conv["factormin"], factormax=conv["factormax"]),
                        saveat=diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), diffrax.SubSaveAt(steps=True)]),
                        adjoint=diffrax.RecursiveCheckpointAdjoint(), max_steps=problem["max_steps"])

and ``jax.grad`` of ½|x(T) − y|² through it is the frozen-grid discrete adjoint (a): ``frozen_grid_gradient``,
``frozen_grid_grad_x0`` (diffrax stops the gradient through dt0 and every step-size factor, so its accepted grid is a
constant for autodiff). The accepted grid is ``[0] + sol.ts[1][:num_accepted_steps]``, the trajectory ``[x0] +
sol.ys[1][:num_accepted_steps]``, and ``rejected_count`` is ``sol.stats["num_rejected_steps"]``. Before solving,
:func:`tableau_disagreement` checks that the case's pair (``problem.pair``: A, b, b_err, c as float64 numbers) is
diffrax's own tableau bit for bit.

The other adaptive cases follow refimpl's conventions (the HNW starting step, acceptance r ≤ 1, the original
Dormand–Prince estimate, ...), which no library follows exactly; ``--defaults`` runs them as a diffrax user would
(``Dopri5()`` or ``Tsit5()``, ``PIDController(rtol, atol)``, ``dt0=None``) to show what ``check`` says then: the
accepted grid differs, at which step and by how much, and nothing else is compared.

Run: ``JAX_ENABLE_X64=1 python examples/diffrax_adaptive_crosscheck.py CASES_DIR`` (export first with ``python -m
refimpl cases export CASES_DIR``), or with no argument to export the quick battery into a temporary directory.
Options: ``--only SUBSTRING`` (repeatable), ``--defaults``, ``--json OUT``. Exit 0 when every diffrax-convention case
passes ``refimpl check``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402

#: the solvers whose tableaux the diffrax-convention cases store
SOLVERS = ("Dopri5", "Tsit5")


class Skip(Exception):
    """A case this example does not reproduce (the reason is the message)."""


def read_case(case_dir: Path):
    """(``case.json`` as a dict, the arrays of ``arrays.npz`` as a dict), read without refimpl."""
    meta = json.loads((Path(case_dir) / "case.json").read_text(encoding="utf-8"))
    with np.load(Path(case_dir) / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return meta, arrays


def make_field(spec: dict):
    """f(x, θ) for ``problem.field`` (docs/case-format.md, the field table: a row of θ is its blocks, row-major)."""
    fam, d = spec["family"], spec["dim"]
    if fam == "tanh":
        return lambda x, th: jnp.tanh(th[:d * d].reshape(d, d) @ x + th[d * d:])
    if fam == "linear":
        return lambda x, th: th[:d * d].reshape(d, d) @ x + th[d * d:]
    if fam == "two_layer_tanh" and "W2" not in spec.get("fixed", {}):
        H = spec["hidden"]
        return lambda x, th: (th[H * d + H:].reshape(d, H) @ jnp.tanh(th[:H * d].reshape(H, d) @ x
                                                                       + th[H * d:H * d + H]))
    raise Skip(f"field family {fam!r} is not written in this example")


def tableau_disagreement(pair: dict, solver) -> float:
    """max |case coefficient − diffrax coefficient| over A, b, b_err and c (0.0: the case's pair is the solver's
    tableau bit for bit). diffrax stores ``ButcherTableau(c=c[1:], b_sol=b, b_error=b − b̂, a_lower=rows of A)``."""
    tab = solver.tableau
    s = len(pair["b"])
    num = lambda v: np.array(v, dtype=np.float64)  # noqa: E731  (the diffrax cases store floats, not "p/q" text)
    parts = [(num(pair["c"])[1:], np.asarray(tab.c)), (num(pair["b"]), np.asarray(tab.b_sol)),
             (num(pair["b_err"]), np.asarray(tab.b_error))]
    parts += [(num(pair["A"][i][:i]), np.asarray(tab.a_lower[i - 1])) for i in range(1, s)]
    return max(float(np.max(np.abs(a - b))) if a.shape == b.shape else np.inf for a, b in parts)


_COMPILED = {}


def _compiled(solver_name: str, field_spec: dict, max_steps: int):
    """jit(value_and_grad) of the loss, with the accepted grid, the trajectory and the step counts as auxiliary output;
    one compilation per solver, field and max_steps (T, dt0, the tolerances and the PID coefficients are traced)."""
    key = (solver_name, json.dumps(field_spec, sort_keys=True), max_steps)
    if key not in _COMPILED:
        f = make_field(field_spec)
        term = diffrax.ODETerm(lambda t, x, th: f(x, th))
        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), diffrax.SubSaveAt(steps=True)])
        solver = getattr(diffrax, solver_name)()

        def loss(theta, x0, y, T, dt0, rtol, atol, pid):
            controller = diffrax.PIDController(rtol=rtol, atol=atol, pcoeff=pid[0], icoeff=pid[1], dcoeff=pid[2],
                                               safety=pid[3], factormin=pid[4], factormax=pid[5])
            sol = diffrax.diffeqsolve(term, solver, 0.0, T, dt0, x0, args=theta, stepsize_controller=controller,
                                      saveat=saveat, adjoint=diffrax.RecursiveCheckpointAdjoint(),
                                      max_steps=max_steps)
            xT = sol.ys[0][-1]
            return 0.5 * jnp.sum((xT - y) ** 2), (sol.ts[1], sol.ys[1], sol.stats["num_accepted_steps"],
                                                 sol.stats["num_rejected_steps"])

        _COMPILED[key] = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    return _COMPILED[key]


#: PIDController's defaults (pcoeff, icoeff, dcoeff, safety, factormin, factormax)
PID_DEFAULTS = (0.0, 1.0, 0.0, 0.9, 0.2, 10.0)


def diffrax_call(meta: dict, *, defaults: bool = False) -> dict:
    """What to pass diffrax for this case: ``solver`` (class name), ``dt0``, ``pid`` (the six PIDController
    coefficients), ``max_steps``. From ``problem.convention``; with ``defaults`` (or a case without a diffrax
    convention) a diffrax user's defaults instead: ``dt0=None``, ``PIDController(rtol, atol)``, and the solver of the
    same order as the case's pair (Dopri5 for a Dormand–Prince pair, Tsit5 for Tsitouras')."""
    p = meta["problem"]
    conv = p.get("convention") or {}
    if conv.get("family") == "diffrax" and not defaults:
        if conv.get("version") != diffrax.__version__:
            raise Skip(f"the case follows diffrax {conv.get('version')}, this is diffrax {diffrax.__version__}")
        pid = tuple(float(conv[k]) for k in ("pcoeff", "icoeff", "dcoeff", "safety", "factormin", "factormax"))
        return {"solver": conv["solver"], "dt0": float(p["h0"]), "pid": pid, "max_steps": int(p["max_steps"])}
    if not defaults:
        raise Skip("not a diffrax-convention case (problem.convention is not diffrax's); run with --defaults to see "
                   "what diffrax's defaults give")
    name = p["pair"]["name"]
    solver = "Tsit5" if "tsit" in name.lower() else "Dopri5" if ("dopri" in name.lower() or "dormand" in name) else None
    if solver is None:
        raise Skip(f"pair {name!r}: no diffrax solver with this pair's order in this example")
    return {"solver": solver, "dt0": None, "pid": PID_DEFAULTS, "max_steps": 4096}


def diffrax_quantities(meta: dict, arrays: dict, *, defaults: bool = False) -> dict:
    """Solve the case with diffrax: the references it computes (``accepted_grid``, ``rejected_count``,
    ``trajectory``, ``loss``, ``frozen_grid_gradient``, ``frozen_grid_grad_x0``), float64 arrays."""
    p = meta["problem"]
    call = diffrax_call(meta, defaults=defaults)
    solver = getattr(diffrax, call["solver"])()
    if not defaults and tableau_disagreement(p["pair"], solver) != 0.0:
        raise Skip(f"problem.pair is not diffrax's {call['solver']} tableau")
    run = _compiled(call["solver"], p["field"], call["max_steps"])
    x0 = jnp.asarray(arrays["x0"])
    theta = jnp.asarray(arrays["theta"][0])  # one constant θ (the case's theta has one row)
    y = jnp.asarray(np.array(p["loss"]["y"], dtype=np.float64))
    # dt0 = None is diffrax's own first-step choice; a traced value cannot be None, so that call compiles separately
    if call["dt0"] is None:
        (value, (ts, ys, n_acc, n_rej)), (g_th, g_x0) = _defaults_run(call, p)(theta, x0, y, p["rtol"], p["atol"])
    else:
        (value, (ts, ys, n_acc, n_rej)), (g_th, g_x0) = run(theta, x0, y, p["T"], call["dt0"], p["rtol"], p["atol"],
                                                             jnp.asarray(call["pid"]))
    n = int(n_acc)
    return {"accepted_grid": np.concatenate([[0.0], np.asarray(ts)[:n]]),
            "rejected_count": np.asarray(int(n_rej), dtype=np.int64),
            "trajectory": np.concatenate([np.asarray(arrays["x0"])[None], np.asarray(ys)[:n]]),
            "loss": np.asarray(float(value)),
            "frozen_grid_gradient": np.asarray(g_th), "frozen_grid_grad_x0": np.asarray(g_x0)}


def _defaults_run(call: dict, p: dict):
    key = ("defaults", call["solver"], json.dumps(p["field"], sort_keys=True), p["T"])
    if key not in _COMPILED:
        f = make_field(p["field"])
        term = diffrax.ODETerm(lambda t, x, th: f(x, th))
        saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), diffrax.SubSaveAt(steps=True)])
        solver = getattr(diffrax, call["solver"])()

        def loss(theta, x0, y, rtol, atol):
            sol = diffrax.diffeqsolve(term, solver, 0.0, p["T"], None, x0, args=theta,
                                      stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), saveat=saveat,
                                      max_steps=call["max_steps"])
            return 0.5 * jnp.sum((sol.ys[0][-1] - y) ** 2), (sol.ts[1], sol.ys[1], sol.stats["num_accepted_steps"],
                                                            sol.stats["num_rejected_steps"])

        _COMPILED[key] = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    return _COMPILED[key]


# ---------------------------------------------------------------------------------------------------------------------
# refimpl check, as a user runs it


def refimpl_check(case_dir: Path, theirs: Path, *extra: str) -> dict:
    """``python -m refimpl check CASE THEIRS --json [extra]``: the parsed report, with ``exit_code`` and ``stderr``."""
    r = subprocess.run([sys.executable, "-m", "refimpl", "check", str(case_dir), str(theirs), "--json", *extra],
                       capture_output=True, text=True)
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        report = {"status": "unreadable report", "stdout": r.stdout[-2000:]}
    report["exit_code"] = r.returncode
    report["stderr"] = r.stderr[-2000:]
    return report


def run_case(case_dir: Path, work: Path, *, defaults: bool = False) -> dict:
    """Reproduce one case; a row {case, status ("reproduced" | "mismatch" | "skipped"), reason, report}."""
    meta, arrays = read_case(case_dir)
    row = {"case": meta["name"], "defaults": defaults, "report": None}
    try:
        theirs = diffrax_quantities(meta, arrays, defaults=defaults)
    except Skip as e:
        return {**row, "status": "skipped", "reason": str(e)}
    path = Path(work) / f"{meta['name']}{'.defaults' if defaults else ''}.npz"
    np.savez(path, **theirs)
    report = refimpl_check(case_dir, path)
    ok = report["exit_code"] == 0
    return {**row, "status": "reproduced" if ok else "mismatch", "reason": "", "report": report}


def adaptive_cases(root: Path, only=()) -> list[Path]:
    index = json.loads((Path(root) / "index.json").read_text(encoding="utf-8"))
    out = []
    for name in index["cases"]:
        meta = json.loads((Path(root) / name / "case.json").read_text(encoding="utf-8"))
        if meta["kind"] == "ode_adaptive" and (not only or any(s in name for s in only)):
            out.append(Path(root) / name)
    return out


def describe(row: dict) -> str:
    """One line per case: the verdict, and for a grid mismatch where the grids part."""
    rep = row.get("report") or {}
    if row["status"] == "skipped":
        return f"   skipped  {row['case']}: {row['reason']}"
    if rep.get("failure") == "accepted_grid":
        return (f"  mismatch  {row['case']}: accepted grid differs at step {rep['step']} (theirs {rep['theirs']!r}, "
                f"reference {rep['reference']!r}; {rep['n_steps_theirs']} vs {rep['n_steps_reference']} steps)")
    worst = [(q["name"], q["max_rel_error"]) for q in rep.get("quantities", []) if not q["passed"]]
    grid = next((q for q in rep.get("quantities", []) if q["name"] == "accepted_grid"), None)
    note = f" (grid max rel error {grid['max_rel_error']:.1e}, rtol {grid['rtol']:.1e})" if grid else ""
    return f"{row['status']:>10}  {row['case']}{note}" + (f": {worst}" if worst else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="?", help="an export of `python -m refimpl cases export` (default: export the quick "
                                             "battery into a temporary directory)")
    ap.add_argument("--only", action="append", default=[], help="only cases whose name contains this (repeatable)")
    ap.add_argument("--defaults", action="store_true", help="solve every Dormand-Prince/Tsitouras case with diffrax's "
                                                            "defaults (dt0=None, PIDController(rtol, atol))")
    ap.add_argument("--json", help="write the per-case rows to this file")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = Path(args.cases) if args.cases else tmp / "cases"
        if not args.cases:
            subprocess.run([sys.executable, "-m", "refimpl", "cases", "export", str(root), "--quick"], check=True)
        rows = [run_case(c, tmp, defaults=args.defaults) for c in adaptive_cases(root, args.only)]
        for row in rows:
            print(describe(row), flush=True)
        n = {s: sum(r["status"] == s for r in rows) for s in ("reproduced", "mismatch", "skipped")}
        print(f"{len(rows)} adaptive cases: {n['reproduced']} reproduced by diffrax (refimpl check exit 0), "
              f"{n['mismatch']} mismatched, {n['skipped']} skipped")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    if args.defaults:
        return 0
    return 0 if n["mismatch"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
