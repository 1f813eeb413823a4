r"""Worked example: reproduce refimpl's exported ODE cases with diffrax, reading only the case files.

A user's view: nothing from refimpl is imported. Each case is read with ``json`` (``case.json``) and ``numpy``
(``arrays.npz``, ``allow_pickle=False``), solved with diffrax 0.7.2 on JAX in float64, and the results are written to
``THEIRS.npz`` and judged by ``python -m refimpl check CASE THEIRS.npz`` (the command-line tool, in a subprocess).

How a case maps onto diffrax (``docs/case-format.md`` § Map your solver):

* **The scheme.** An explicit Runge–Kutta tableau (``problem.scheme``, exact ``"p/q"`` coefficients) becomes diffrax's
  generic explicit RK: a ``diffrax.ButcherTableau(c=c[1:], b_sol=b, b_error=0, a_lower=rows of A below the
  diagonal)`` as the class attribute ``tableau`` of a subclass of ``diffrax.AbstractERK`` (diffrax's own Ralston,
  ``diffrax/_solver/ralston.py``, is written this way). diffrax evaluates stage i at ``t0 + c_i (t1 − t0)`` (and at
  ``t1`` when c_i = 1), ``diffrax/_solver/runge_kutta.py``. A one-stage tableau is forward Euler, ``diffrax.Euler``
  (``ButcherTableau`` needs at least two stages). Steps: ``StepTo(ts=t_0..t_N)``, the grid ``t_n = n T/N``.
* **Leapfrog** (y_{n+1} = y_{n−1} + 2h f(t_n, y_n)) is diffrax's ``LeapfrogMidpoint``, whose first step is a forward
  Euler step (``init`` returns (t0, y0), ``diffrax/_solver/leapfrog_midpoint.py``): the ``-fe`` cases as they are. For
  the ``-matched`` starter, the first step is one step of the starter tableau (the generic ERK above), and leapfrog
  continues from t_1 with a ``LeapfrogMidpoint`` whose ``init`` returns (t_0, x_0) instead of its own Euler start.
  diffrax has no Adams–Bashforth solver: those cases are skipped (counted, with the reason).
* **Which θ each evaluation of f uses** (``problem.layout``):

  - ``"stage"``: θ is a function of time. One ``diffeqsolve`` over [0, T]; the field looks the row up by its time,
    ``theta[argmin |sample_times − t|]`` (diffrax's ``t0 + c_i dt`` is a few ulps from ``stage_times``; distinct
    sample times are ≥ h/6 apart).
  - ``"step"``: θ_n is a per-step argument, not a function of time (the c = 1 stage of step n is at t_{n+1} and uses
    row n). One ``diffeqsolve`` with ``args = theta`` (the table) and the solver wrapped in ``PerStepArgs``, which
    hands row n to every stage of the step that starts at t_n (the wrapper pattern of diffrax's ``HalfSolver``). A
    first-same-as-last tableau would carry a stage across steps: refused there.
  - ``"constant"``: ``args = theta[0]``, one ``diffeqsolve``.
  - multistep starters: one ``diffeqsolve`` per starter step with ``args`` = that step's rows and stage times
    (``stage_index[n]``, ``stage_times[n]``), looked up by time inside the step.

* **Gradients.** ``jax.value_and_grad`` through ``diffeqsolve`` with the default ``RecursiveCheckpointAdjoint``
  (backpropagation through the solver) gives the exact derivative of the discrete loss: ``discrete_gradient`` and
  ``grad_x0`` (and ``normalised_gradient`` = G / (h w)). ``BacksolveAdjoint`` (an adjoint ODE solved backwards) gives
  the continuous gradient of the problem whose θ is held constant on each step: for the step and constant layouts it is
  checked against ``piecewise_constant_continuous_gradient`` / ``piecewise_constant_grad_x0``, with an adaptive
  ``Dopri5`` at rtol = atol = 1e-12 whose ``PIDController`` has ``jump_ts`` at the grid times (so no step straddles a
  jump of θ, and diffrax evaluates each side of a jump with the right row), the field reading
  θ(t) = theta[n] for t in [t_n, t_{n+1}).
* **float32.** ``--float32-demo``: the same computation with JAX's default float32 on one case; ``refimpl check``
  fails it under the case's float64 tolerances (with a hint saying the arrays are float32) and passes it with
  ``--precision float32``.

Run: ``JAX_ENABLE_X64=1 python examples/diffrax_crosscheck.py CASES_DIR`` (export first with
``python -m refimpl cases export CASES_DIR``), or with no argument to export the battery into a temporary directory.
Options: ``--only SUBSTRING`` (repeatable), ``--no-backsolve``, ``--float32-demo``, ``--json OUT``. Exit 0 when every
case diffrax can express passes ``refimpl check``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np

FLOAT32 = os.environ.get("REFIMPL_DIFFRAX_FLOAT32") == "1"  # set by --float32-demo for its child process
if not FLOAT32:
    os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

jax.config.update("jax_enable_x64", not FLOAT32)

import diffrax  # noqa: E402

DTYPE = jnp.float32 if FLOAT32 else jnp.float64
#: tolerance of the adaptive solves behind BacksolveAdjoint (forward and backward)
BACKSOLVE_TOL = 1e-12


class Skip(Exception):
    """The case cannot be expressed with diffrax; the message says why."""


# ---------------------------------------------------------------------------------------------------------------------
# reading a case: json + numpy only


def read_case(case_dir: Path):
    meta = json.loads((case_dir / "case.json").read_text(encoding="utf-8"))
    with np.load(case_dir / "arrays.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return meta, arrays


def number(v) -> float:
    """A case coefficient: an exact "p/q" string, an integer string or a JSON number."""
    return float(Fraction(v)) if isinstance(v, str) else float(v)


# ---------------------------------------------------------------------------------------------------------------------
# the vector fields of docs/case-format.md (problem.field), written in jax.numpy


def make_field(spec: dict):
    """f(x, θ) for ``problem.field`` (the table of docs/case-format.md: a row of θ is the listed blocks, row-major)."""
    fam, d = spec["family"], spec["dim"]
    fixed = {k: jnp.asarray(np.array(v, dtype=np.float64), dtype=DTYPE) for k, v in spec.get("fixed", {}).items()}
    if fam == "tanh":
        return lambda x, th: jnp.tanh(th[:d * d].reshape(d, d) @ x + th[d * d:])
    if fam == "linear":
        return lambda x, th: th[:d * d].reshape(d, d) @ x + th[d * d:]
    if fam == "two_layer_tanh":
        H = spec["hidden"]

        def two_layer(x, th):
            W1, b = th[:H * d].reshape(H, d), th[H * d:H * d + H]
            W2 = fixed["W2"] if "W2" in fixed else th[H * d + H:].reshape(d, H)
            return W2 @ jnp.tanh(W1 @ x + b)
        return two_layer
    if fam == "polynomial":
        return lambda x, th: th[:d] + th[d:d + d * d].reshape(d, d) @ x + th[d + d * d:] * x * x
    if fam == "linear_forcing":
        return lambda x, th: fixed["A"] @ x + th
    if fam == "scaled_linear":
        return lambda x, th: th[0] * (fixed["A"] @ x)
    if fam == "logistic":
        return lambda x, th: th[0] * x * (1 - x / th[1])
    raise Skip(f"field family {fam!r} is not written in this example")


# ---------------------------------------------------------------------------------------------------------------------
# schemes


def erk_solver(tab: dict):
    """diffrax's generic explicit RK for a case tableau (``diffrax.Euler`` for the one-stage one)."""
    A = [[number(v) for v in row] for row in tab["A"]]
    b, c = [number(v) for v in tab["b"]], [number(v) for v in tab["c"]]
    s = len(b)
    if c[0] != 0:
        raise Skip(f"tableau {tab['name']!r}: diffrax's explicit RK evaluates its first stage at t_n (c_1 = 0)")
    if s == 1:
        return diffrax.Euler()
    case_tableau = diffrax.ButcherTableau(c=np.array(c[1:]), b_sol=np.array(b), b_error=np.zeros(s),
                                          a_lower=tuple(np.array(A[i][:i]) for i in range(1, s)))

    class CaseERK(diffrax.AbstractERK):
        """The case's tableau as a diffrax explicit Runge–Kutta solver."""

        tableau: ClassVar[diffrax.ButcherTableau] = case_tableau
        interpolation_cls: ClassVar = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms):
            return int(tab.get("order", 1))

    CaseERK.__name__ = f"CaseERK_{tab['name']}"
    return CaseERK()


class SeededLeapfrog(diffrax.LeapfrogMidpoint):
    """diffrax's leapfrog/midpoint method started from a given previous point (t_{-1}, y_{-1}) instead of its own
    forward-Euler first step: y_{n+1} = y_{n-1} + (t_{n+1} - t_{n-1}) f(t_n, y_n)."""

    t_prev: jax.Array
    y_prev: jax.Array

    def init(self, terms, t0, t1, y0, args):
        return self.t_prev, self.y_prev


class PerStepArgs(diffrax.AbstractSolver):
    """Per-step args: ``diffeqsolve``'s ``args`` is the table (N, p) and step n (the one starting at t_n = ``grid[n]``)
    hands row n to the wrapped solver as its ``args`` (the wrapper pattern of diffrax's ``HalfSolver``,
    ``diffrax/_solver/base.py``). The field then sees one parameter vector per step, whatever the time of a stage."""

    solver: diffrax.AbstractSolver
    grid: jax.Array

    @property
    def term_structure(self):
        return self.solver.term_structure

    @property
    def interpolation_cls(self):
        return self.solver.interpolation_cls

    def order(self, terms):
        return self.solver.order(terms)

    def _row(self, t0, table):
        n = jnp.clip(jnp.searchsorted(self.grid, t0, side="right") - 1, 0, table.shape[0] - 1)
        return table[n]

    def init(self, terms, t0, t1, y0, args):
        return self.solver.init(terms, t0, t1, y0, self._row(t0, args))

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        return self.solver.step(terms, t0, t1, y0, self._row(t0, args), solver_state, made_jump)

    def func(self, terms, t0, y0, args):
        return self.solver.func(terms, t0, y0, self._row(t0, args))


def nearest_row(times, t):
    """The index of the time in ``times`` closest to t (θ as a function of time)."""
    return jnp.argmin(jnp.abs(times - t))


def solve_steps(solver, f, grid, x0, table_fn, args, *, adjoint=None):
    """x_0..x_N of ``solver`` on the fixed ``grid`` with the field f(x, table_fn(t, args)): one ``diffeqsolve``."""
    term = diffrax.ODETerm(lambda t, y, a: f(y, table_fn(t, a)))
    n = grid.shape[0] - 1
    sol = diffrax.diffeqsolve(term, solver, grid[0], grid[-1], None, x0, args,
                              stepsize_controller=diffrax.StepTo(ts=grid), saveat=diffrax.SaveAt(steps=True),
                              max_steps=n, adjoint=adjoint or diffrax.RecursiveCheckpointAdjoint())
    return jnp.concatenate([x0[None], sol.ys[:n]])


def one_step(solver, f, t0, t1, x, rows, times):
    """One step of ``solver`` from (t0, x) to t1, stage at time t using ``rows[nearest(times, t)]`` (per-step args)."""
    term = diffrax.ODETerm(lambda t, y, a: f(y, a[0][nearest_row(a[1], t)]))
    sol = diffrax.diffeqsolve(term, solver, t0, t1, t1 - t0, x, (rows, times),
                              stepsize_controller=diffrax.ConstantStepSize(), saveat=diffrax.SaveAt(t1=True),
                              max_steps=1)
    return sol.ys[0]


# ---------------------------------------------------------------------------------------------------------------------
# a case -> the trajectory function (x0, theta) -> (N+1, d)


def trajectory_function(meta: dict, arrays: dict):
    """(x0, theta) ↦ x_0..x_N as diffrax computes them for this case, or Skip."""
    p = meta["problem"]
    f = make_field(p["field"])
    N, T, layout = p["N"], float(p["T"]), p["layout"]
    grid = jnp.asarray(np.arange(N + 1) * (T / N), dtype=DTYPE)
    scheme = p["scheme"]
    if scheme["family"] == "runge_kutta":
        solver = erk_solver(scheme)
        if layout == "stage":
            st = jnp.asarray(arrays["sample_times"], dtype=DTYPE)
            return lambda x0, th: solve_steps(solver, f, grid, x0, lambda t, a: a[nearest_row(st, t)], th)
        if layout == "constant":
            return lambda x0, th: solve_steps(solver, f, grid, x0, lambda t, a: a, th[0])
        # step layout: per-step args. (A first-same-as-last tableau would hand step n's last stage, computed with
        # row n, to step n+1 as its first stage: not the step layout.)
        if getattr(getattr(solver, "tableau", None), "fsal", False):
            raise Skip(f"tableau {scheme['name']!r} is first-same-as-last: diffrax reuses the last stage of step n "
                       f"(row n) as the first stage of step n+1, which the step layout gives row n+1")
        stepper = PerStepArgs(solver, grid)
        # the field gets row n from the wrapper; diffeqsolve also calls it once with the raw args (the whole table)
        # to check the output's type (diffrax/_integrate.py, filter_eval_shape): any row serves there
        return lambda x0, th: solve_steps(stepper, f, grid, x0, lambda t, a: a if a.ndim == 1 else a[0], th)
    if scheme["name"] != "leapfrog":
        raise Skip(f"diffrax 0.7.2 has no {scheme['name']} (Adams–Bashforth) solver; expressing it would mean "
                   f"writing the multistep method, not using diffrax")
    # leapfrog: evaluations at grid times t_m use theta[grid_index[m]]; the starter's stages theta[stage_index[0]]
    gi = np.asarray(arrays["grid_index"])
    rows_at_grid = jnp.asarray(np.where(gi < 0, 0, gi))
    gt = jnp.asarray(arrays["grid_times"], dtype=DTYPE)
    at_grid = (lambda t, th: th[rows_at_grid[nearest_row(gt, t)]])
    starter = p["starter"]
    if len(starter["b"]) == 1 and number(starter["b"][0]) == 1:  # forward-Euler starter: diffrax's own first step
        # the starter stage at t_0 must use the row f(x_0, .) would use at t_0 (grid_index[0] is -1 for leapfrog)
        r0 = int(arrays["stage_index"][0, 0])
        rows_at_grid = rows_at_grid.at[0].set(r0)
        return lambda x0, th: solve_steps(diffrax.LeapfrogMidpoint(), f, grid, x0,
                                          lambda t, a: a[rows_at_grid[nearest_row(gt, t)]], th)
    start = erk_solver(starter)
    si = jnp.asarray(arrays["stage_index"][0])
    stt = jnp.asarray(arrays["stage_times"][0], dtype=DTYPE)

    def matched(x0, th):
        x1 = one_step(start, f, grid[0], grid[1], x0, th[si], stt)
        rest = solve_steps(SeededLeapfrog(t_prev=grid[0], y_prev=x0), f, grid[1:], x1, at_grid, th)
        return jnp.concatenate([x0[None], rest])
    return matched


def discrete_quantities(meta: dict, arrays: dict) -> dict:
    """trajectory, loss, discrete_gradient, grad_x0 (and normalised_gradient) by backpropagation through diffrax."""
    traj = trajectory_function(meta, arrays)
    y = jnp.asarray(np.array(meta["problem"]["loss"]["y"], dtype=np.float64), dtype=DTYPE)

    def loss(x0, th):
        xs = traj(x0, th)
        return 0.5 * jnp.sum((xs[-1] - y) ** 2), xs

    x0 = jnp.asarray(arrays["x0"], dtype=DTYPE)
    th = jnp.asarray(arrays["theta"], dtype=DTYPE)
    (L, xs), (gx0, gth) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(x0, th)
    out = {"trajectory": np.asarray(xs), "loss": np.asarray(L), "discrete_gradient": np.asarray(gth),
           "grad_x0": np.asarray(gx0)}
    if "normalised_gradient" in meta["arrays"]:
        h = float(meta["problem"]["h"])
        w = np.asarray(arrays["stage_weights"], dtype=out["discrete_gradient"].dtype)
        out["normalised_gradient"] = out["discrete_gradient"] / (out["discrete_gradient"].dtype.type(h) * w[:, None])
    return out


def backsolve_quantities(meta: dict, arrays: dict) -> dict:
    """piecewise_constant_continuous_gradient and piecewise_constant_grad_x0 by ``BacksolveAdjoint`` (adaptive Dopri5
    at 1e-12, ``jump_ts`` at the grid times), θ(t) = theta[n] on [t_n, t_{n+1}) (one row: constant)."""
    p = meta["problem"]
    f = make_field(p["field"])
    N, T = p["N"], float(p["T"])
    grid = jnp.asarray(np.arange(N + 1) * (T / N), dtype=DTYPE)
    y = jnp.asarray(np.array(p["loss"]["y"], dtype=np.float64), dtype=DTYPE)
    rows = arrays["theta"].shape[0]

    def theta_at(t, th):
        if rows == 1:
            return th[0]
        return th[jnp.clip(jnp.searchsorted(grid, t, side="right") - 1, 0, rows - 1)]

    controller = diffrax.PIDController(rtol=BACKSOLVE_TOL, atol=BACKSOLVE_TOL, jump_ts=grid[1:-1])
    solver = diffrax.Dopri5()

    def loss(x0, th):
        sol = diffrax.diffeqsolve(diffrax.ODETerm(lambda t, x, a: f(x, theta_at(t, a))), solver, 0.0, T, T / N, x0,
                                  th, stepsize_controller=controller, max_steps=100_000,
                                  adjoint=diffrax.BacksolveAdjoint(solver=solver, stepsize_controller=controller))
        return 0.5 * jnp.sum((sol.ys[-1] - y) ** 2)

    gx0, gth = jax.jit(jax.grad(loss, argnums=(0, 1)))(jnp.asarray(arrays["x0"], dtype=DTYPE),
                                                      jnp.asarray(arrays["theta"], dtype=DTYPE))
    return {"piecewise_constant_continuous_gradient": np.asarray(gth), "piecewise_constant_grad_x0": np.asarray(gx0)}


# ---------------------------------------------------------------------------------------------------------------------
# refimpl check, as a user runs it


def refimpl_check(case_dir: Path, theirs: Path, *extra: str) -> dict:
    """``python -m refimpl check CASE THEIRS --json [extra]``: the parsed report, with ``exit_code``."""
    r = subprocess.run([sys.executable, "-m", "refimpl", "check", str(case_dir), str(theirs), "--json", *extra],
                       capture_output=True, text=True)
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        report = {"status": "unreadable report", "stdout": r.stdout[-2000:]}
    report["exit_code"] = r.returncode
    report["stderr"] = r.stderr[-2000:]
    return report


def run_case(case_dir: Path, work: Path, *, backsolve: bool = True) -> dict:
    """Reproduce one case; a row {case, status, reason, checks}."""
    meta, arrays = read_case(case_dir)
    row = {"case": meta["name"], "layout": meta["problem"]["layout"], "scheme": meta["problem"]["scheme"]["name"],
           "checks": {}}
    try:
        theirs = discrete_quantities(meta, arrays)
    except Skip as e:
        return {**row, "status": "skipped", "reason": str(e)}
    path = work / f"{meta['name']}.discrete.npz"
    np.savez(path, **theirs)
    rep = refimpl_check(case_dir, path)
    row["checks"]["RecursiveCheckpointAdjoint"] = rep
    ok = rep["exit_code"] == 0
    if backsolve and "piecewise_constant_continuous_gradient" in meta["arrays"]:
        path = work / f"{meta['name']}.backsolve.npz"
        np.savez(path, **backsolve_quantities(meta, arrays))
        rep = refimpl_check(case_dir, path)
        row["checks"]["BacksolveAdjoint"] = rep
        ok = ok and rep["exit_code"] == 0
    return {**row, "status": "reproduced" if ok else "mismatch", "reason": ""}


def float32_demo(case_dir: Path, work: Path) -> dict:
    """Solve ``case_dir`` in a child process with JAX's default float32 and check it twice: with the case's float64
    tolerances (expected: exit 1 with the float32 hint) and with ``--precision float32`` (expected: exit 0)."""
    out = work / "float32.npz"
    env = {**os.environ, "REFIMPL_DIFFRAX_FLOAT32": "1", "JAX_ENABLE_X64": "0"}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--float32-child", str(case_dir), str(out)],
                   env=env, check=True)
    with np.load(out) as z:
        dtypes = sorted({str(z[k].dtype) for k in z.files})
    default = refimpl_check(case_dir, out)
    relaxed = refimpl_check(case_dir, out, "--precision", "float32")
    return {"case": case_dir.name, "dtypes": dtypes, "float64_tolerances": default, "precision_float32": relaxed}


def summary(rows) -> str:
    by = {}
    for r in rows:
        by.setdefault(r["status"], []).append(r)
    lines = [f"{len(rows)} ODE cases: {len(by.get('reproduced', []))} reproduced by diffrax "
             f"(refimpl check exit 0), {len(by.get('mismatch', []))} mismatched, {len(by.get('skipped', []))} "
             f"skipped"]
    n_back = sum("BacksolveAdjoint" in r["checks"] for r in rows)
    back_ok = sum(r["checks"].get("BacksolveAdjoint", {}).get("exit_code") == 0 for r in rows)
    lines.append(f"BacksolveAdjoint vs piecewise_constant_continuous_gradient: {back_ok}/{n_back} pass")
    reasons = {}
    for r in by.get("skipped", []):
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    lines += [f"  skipped {n}: {why}" for why, n in sorted(reasons.items())]
    for r in by.get("mismatch", []):
        for how, rep in r["checks"].items():
            if rep["exit_code"] != 0:
                worst = [(q["name"], q.get("max_rel_error")) for q in rep.get("quantities", []) if not q["passed"]]
                lines.append(f"  MISMATCH {r['case']} [{how}] exit {rep['exit_code']}: {worst or rep.get('error')}")
    return "\n".join(lines)


def ode_cases(root: Path, only=()) -> list[Path]:
    index = json.loads((root / "index.json").read_text(encoding="utf-8"))
    out = []
    for name in index["cases"]:
        meta = json.loads((root / name / "case.json").read_text(encoding="utf-8"))
        if meta["kind"] == "ode" and (not only or any(s in name for s in only)):
            out.append(root / name)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="?", help="an export of `python -m refimpl cases export` (default: export the "
                                             "battery into a temporary directory)")
    ap.add_argument("--only", action="append", default=[], help="only cases whose name contains this (repeatable)")
    ap.add_argument("--no-backsolve", action="store_true", help="skip the BacksolveAdjoint checks")
    ap.add_argument("--float32-demo", action="store_true", help="also run one case in float32 (see the docstring)")
    ap.add_argument("--json", help="write the per-case rows to this file")
    ap.add_argument("--float32-child", nargs=2, metavar=("CASE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.float32_child:  # the child process of --float32-demo (REFIMPL_DIFFRAX_FLOAT32=1: jax in float32)
        meta, arrays = read_case(Path(args.float32_child[0]))
        np.savez(args.float32_child[1], **discrete_quantities(meta, arrays))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = Path(args.cases) if args.cases else tmp / "cases"
        if not args.cases:
            subprocess.run([sys.executable, "-m", "refimpl", "cases", "export", str(root)], check=True)
        rows = []
        for case_dir in ode_cases(root, args.only):
            rows.append(run_case(case_dir, tmp, backsolve=not args.no_backsolve))
            print(f"{rows[-1]['status']:>10}  {rows[-1]['case']}  {rows[-1]['reason']}", flush=True)
        print(summary(rows))
        result = {"rows": rows}
        if args.float32_demo:
            pick = [c for c in ode_cases(root) if "__rk4__stage__" in c.name] or ode_cases(root)
            demo = float32_demo(pick[0], tmp)
            result["float32_demo"] = demo
            print(f"float32 ({', '.join(demo['dtypes'])}) on {demo['case']}: float64 tolerances -> exit "
                  f"{demo['float64_tolerances']['exit_code']}; --precision float32 -> exit "
                  f"{demo['precision_float32']['exit_code']}")
            for hint in demo["float64_tolerances"].get("hints", []):
                print("    hint:", hint)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    return 0 if all(r["status"] != "mismatch" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
