r"""Scaling of the compiled (Numba) hand discrete adjoint in the number of steps N, per parameter layout.

    python benchmarks/ode_scaling.py [--N 1000,10000,100000,1000000] [--schemes leapfrog,rk4]
                                     [--layouts stage,step,constant] [--d 16] [--peers] [--json out.json]

Problem: the tanh field :math:`f(x,\theta) = \tanh(Wx + b)` of dimension d (p = d² + d parameters per sample), the
loss :math:`\tfrac12|x_N - y|^2`, leapfrog (forward-Euler starter) and RK4 on N steps over [0, 1], the public call
``discrete_adjoint(..., backend="numba")`` (argument checks, parameter samples, forward and backward sweeps, result
checks). Each (scheme, layout, N) runs in a fresh child process, so that its **first call** is what a user's first call
costs: the parameter samples are built (nothing is memoised yet), the compiled sweeps are loaded from Numba's on-disk
cache, and every array is touched for the first time. Numba itself is imported before, as any caller of a compiled
path has, and its CPU target initialised by one tiny compiled call (column ``Numba init``: what the first compiled
call of any Numba user pays once per process, 0.25–0.5 s here; add it to the first call for a process's very first
compiled call). The **steady calls** are the later calls: at least ``MIN_REPEATS`` and at least ``--min-total-s`` seconds
of them (at most ``MAX_REPEATS``), so a row at N = 10³ (≈ 1 ms per call) takes hundreds of calls and a row at
N = 10⁶ (≈ 1 s) five. Reported per row: the first call, the **minimum** and the median of the steady calls, first /
minimum, the time per step of the minimum (min / N) and its ratio to the smallest N's (flat = 1), and memory.

Why the minimum. On this shared machine other jobs take the CPU and the memory bandwidth at random moments; a call
can only be slowed by them, never sped up, so the smallest of many calls estimates what the code attains on the
machine, and the median of a few calls mixes in how loaded the machine happened to be (at N = 10³ the median of 20
calls moved between 1.26 and 2.13 µs/step from run to run). The minimum is not the typical user's wall time — the
median is printed next to it for that — and both are per call of the public function, nothing excluded. The memory
columns:

* ``traced``: the peak of the bytes the call allocates through NumPy and Python (``tracemalloc`` during one more steady
  call; Numba's per-call work buffers, O(s·d), are not traced), plus θ itself (the caller's input);
* ``RSS``: the child's peak resident set size (``ru_maxrss``) minus its size before the first call (θ already built,
  Numba imported; the growth includes the compiled sweeps loaded by the first call, ≈ 20–30 MiB);
* ``model``: the formula of README.md "Memory" (float64, s stages, n samples: leapfrog stage/step N, RK4 stage
  2N + 1, RK4 step N, constant 1):

      bytes ≈ 16·n·p  (θ and its gradient)  +  16·(N+1)·d  (states and adjoints)  +  8·N·s  (stage index)

  plus what the forward sweep keeps for the backward sweep when it fits in 2²³ entries: the stage slopes 8·N·s·d
  (ERK); for leapfrog the map of the F values, 8·N, and a ring of 2 rows of F values, 16·d (the tanh field's VJP
  does not read f(x, θ), so the forward sweep keeps no more of them).

``--prefault`` runs every row a second time, in another fresh child that, right before its first call, writes and
frees a buffer of the bytes the first call will take (the model minus θ, plus 64 MiB), and reports that first call
too ("first, host-backed"). On a virtual machine whose memory balloon returns freed guest memory to the host (free
page reporting, as on the machine of benchmarks/RESULTS.md), the first touch of memory that was free for more than
about a second costs ≈ 2 s/GiB of host work; the buffer brings those pages back just before the call, as they are on a
machine without ballooning. What the column then measures is the first call's own cost: the compiled sweeps loaded
from Numba's cache, the parameter samples built, and pages the guest kernel clears.

A configuration whose model exceeds 60 % of the memory available (``MemAvailable``) is skipped with that reason.

``--peers`` also runs the fixed-step comparison of :mod:`benchmarks.ode_gradients` (per-step parameters, N = 1000,
d ∈ {4, 16}, leapfrog, Heun, RK4) for the routes hand (numba), torch CPU autograd and JAX jit(grad), in one process,
and prints torch/hand and jax/hand (targets: ≥ 10 and ≥ 1).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/ode_scaling.py` puts benchmarks/ first on sys.path
    sys.path.insert(0, str(ROOT))

__all__ = ["SCHEMES", "LAYOUTS", "n_samples", "model_bytes", "measure", "peers", "main"]

SCHEMES = ("leapfrog", "rk4")
#: the steady calls of a row: at least MIN_REPEATS and at least --min-total-s seconds of them, at most MAX_REPEATS
MIN_REPEATS = 5
MAX_REPEATS = 500
LAYOUTS = ("stage", "step", "constant")
KEEP = 1 << 23   # refimpl.ode.adjoint_recursions.KEEP_STAGES_MAX_ENTRIES


def n_samples(scheme: str, layout: str, N: int) -> int:
    """Number of parameter samples (rows of θ) of the scheme and layout on N steps (refimpl.ode.samples)."""
    if layout == "constant":
        return 1
    if scheme == "rk4" and layout == "stage":
        return 2 * N + 1
    return N


def model_bytes(scheme: str, layout: str, N: int, d: int) -> dict:
    """The memory model of the module docstring, by term (bytes)."""
    s = 4 if scheme == "rk4" else 1
    p = d * d + d
    n = n_samples(scheme, layout, N)
    n_rk = N if scheme == "rk4" else 1                 # leapfrog: one forward-Euler starter step
    out = {"theta and gradient": 16 * n * p, "states and adjoints": 16 * (N + 1) * d, "stage index": 8 * n_rk * s}
    if scheme == "rk4":
        out["stage slopes"] = 8 * N * s * d if N * s * d <= KEEP else 0
    else:
        out["F values"] = 8 * 2 * d        # the ring of the LMM forward sweep (TanhField: vjp_reads_fx False)
        out["F index"] = 8 * N
    out["total"] = sum(out.values())
    return out


#: the bytes --prefault writes beyond the first call's model (slack for the interpreter's own allocations)
PREFAULT_SLACK = 64 << 20


def _child(scheme: str, layout: str, N: int, d: int, min_total_s: float, prefault: bool = False) -> dict:
    """In the child process: one problem, first call, steady calls, memory. Returns the row. ``prefault``: write and
    free the first call's bytes right before it (module docstring, ``--prefault``)."""
    import tracemalloc

    import numpy as np

    from refimpl.ode.adjoint_recursions import discrete_adjoint
    from refimpl.ode.fields import QuadraticLoss, TanhField
    from refimpl.ode.schemes import LEAPFROG, RK4

    method, starter = {"leapfrog": (LEAPFROG, "forward_euler"), "rk4": (RK4, None)}[scheme]
    field = TanhField(d)
    rng = np.random.default_rng(0)
    theta = rng.standard_normal((n_samples(scheme, layout, N), field.n_params))
    theta *= 1.0 / np.sqrt(d)
    x0, loss = rng.standard_normal(d), QuadraticLoss(rng.standard_normal(d))

    def call():
        return discrete_adjoint(field, method, x0, theta, 1.0, N, loss, layout=layout, starter=starter,
                                backend="numba")

    import numba  # noqa: F401  (imported here: a process cost, not the call's; the compiled sweeps load lazily)

    # Numba's own once-per-process start: the first compiled call of any Numba user initialises its CPU target
    # (typing and lowering registries, a SciPy BLAS import). Timed apart, on one tiny compiled call of refimpl's.
    from refimpl.ode._numba import all_finite

    t0 = time.perf_counter()
    all_finite(np.zeros((1, 1)))
    numba_init = time.perf_counter() - t0

    prefault_s = 0.0
    if prefault:
        t0 = time.perf_counter()
        buffer = np.ones(max(model_bytes(scheme, layout, N, d)["total"] - theta.nbytes, 0) // 8 + PREFAULT_SLACK // 8)
        del buffer
        prefault_s = time.perf_counter() - t0
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    res = call()
    first = time.perf_counter() - t0
    checksum = float(np.sum(res.grad_theta))
    del res
    times = []
    start = time.perf_counter()
    while len(times) < MIN_REPEATS or (time.perf_counter() - start < min_total_s and len(times) < MAX_REPEATS):
        t0 = time.perf_counter()
        res = call()
        times.append(time.perf_counter() - t0)
        assert float(np.sum(res.grad_theta)) == checksum      # run to run: the same numbers
        del res
    tracemalloc.start()
    call()
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"first_s": first, "prefault_s": prefault_s, "numba_init_s": numba_init,
            "steady_s": float(np.min(times)), "median_s": float(np.median(times)),
            "repeats": len(times),
            "traced_bytes": int(traced + theta.nbytes), "rss_bytes": int(rss - rss0), "theta_bytes": int(theta.nbytes)}


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def measure(scheme: str, layout: str, N: int, d: int = 16, min_total_s: float = 1.0, prefault: bool = False) -> dict:
    """One configuration in a fresh child process: the row (times, memory, model), or the reason it was skipped.
    ``prefault``: also a second child whose first call follows the prefault buffer (``first_host_backed_s``)."""
    model = model_bytes(scheme, layout, N, d)
    row = {"scheme": scheme, "layout": layout, "N": N, "d": d, "model": model}
    avail = _available_bytes()
    if avail is not None and model["total"] > 0.6 * avail:
        row["skipped"] = f"model {model['total'] / 2**30:.2f} GiB > 60% of available {avail / 2**30:.2f} GiB"
        return row
    if avail is not None and prefault and model["total"] + PREFAULT_SLACK > 0.6 * avail:
        prefault = False                    # the buffer and θ would not fit beside each other: no second child
    runs = []
    for pre in ((False, True) if prefault else (False,)):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", scheme, layout, str(N), str(d),
               str(min_total_s), str(int(pre))]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
        if out.returncode != 0:
            tail = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else str(out.returncode)
            row["skipped"] = f"child failed: {tail}"
            return row
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    row.update(runs[0])
    if len(runs) == 2:
        row["first_host_backed_s"] = runs[1]["first_s"]
        row["steady_host_backed_s"] = runs[1]["steady_s"]
        row["prefault_s"] = runs[1]["prefault_s"]
    row["per_step_us"] = 1e6 * row["steady_s"] / N
    return row


def _table(rows) -> str:
    mib = 2 ** 20
    backed = any("first_host_backed_s" in r for r in rows)
    head = ("| scheme | layout | N | Numba init (s) | first (s) | steady min (s) | steady median (s) | calls | "
            "first/min | µs/step (min) | /µs/step at smallest N | traced + θ (MiB) | RSS growth (MiB) | model (MiB) |")
    if backed:
        head += " first, host-backed (s) | its first/min |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    base = {}
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['scheme']} | {r['layout']} | {r['N']} | skipped: {r['skipped']} | | | | | | | | | | "
                         f"{r['model']['total'] / mib:.0f} |" + (" | |" if backed else ""))
            continue
        key = (r["scheme"], r["layout"])
        base.setdefault(key, r["per_step_us"])
        line = (f"| {r['scheme']} | {r['layout']} | {r['N']} | {r['numba_init_s']:.3g} | {r['first_s']:.3g} | "
                f"{r['steady_s']:.3g} | "
                f"{r['median_s']:.3g} | {r['repeats']} | {r['first_s'] / r['steady_s']:.2f} | "
                f"{r['per_step_us']:.3g} | "
                f"{r['per_step_us'] / base[key]:.2f} | {r['traced_bytes'] / mib:.1f} | "
                f"{r['rss_bytes'] / mib:.1f} | {r['model']['total'] / mib:.1f} |")
        if backed:
            if "first_host_backed_s" in r:
                line += (f" {r['first_host_backed_s']:.3g} | "
                         f"{r['first_host_backed_s'] / r['steady_host_backed_s']:.2f} |")
            else:
                line += " | |"
        lines.append(line)
    return "\n".join(lines)


def peers(d_values=(4, 16), N: int = 1000) -> list[dict]:
    """The fixed-step comparison of benchmarks.ode_gradients for hand (numba), torch and JAX: one row per case with
    the medians and the ratios torch/hand and jax/hand (None where a peer is absent)."""
    os.environ.setdefault("JAX_ENABLE_X64", "1")
    from benchmarks.ode_gradients import SCHEMES as GRADIENT_SCHEMES, run_case

    rows = []
    for d in d_values:
        for scheme in GRADIENT_SCHEMES:
            case = run_case(scheme, d, N, routes=["refimpl hand (numba)", "torch CPU autograd", "jax jit(grad)"])
            med = {name: r["timing"]["median_s"] for name, r in case["routes"].items() if "timing" in r}
            hand = med.get("refimpl hand (numba)")
            rows.append({"scheme": scheme, "d": d, "N": N, "medians_s": med,
                         "agree": {name: r.get("agrees") for name, r in case["routes"].items()},
                         "torch/hand": med["torch CPU autograd"] / hand if "torch CPU autograd" in med else None,
                         "jax/hand": med["jax jit(grad)"] / hand if "jax jit(grad)" in med else None})
    return rows


def _peer_table(rows) -> str:
    def ratio(v):
        return "absent" if v is None else f"{v:.3g}"

    lines = ["| scheme | d | N | hand (ms) | torch (ms) | jax jit (ms) | torch/hand | jax/hand |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["medians_s"]
        ms = [f"{1e3 * m[k]:.3g}" if k in m else "—" for k in ("refimpl hand (numba)", "torch CPU autograd",
                                                               "jax jit(grad)")]
        lines.append(f"| {r['scheme']} | {r['d']} | {r['N']} | {ms[0]} | {ms[1]} | {ms[2]} | "
                     f"{ratio(r['torch/hand'])} | {ratio(r['jax/hand'])} |")
    return "\n".join(lines)


def _int_list(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",") if v.strip()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", default="1000,10000,100000,1000000", help="comma-separated step counts")
    ap.add_argument("--schemes", default=",".join(SCHEMES))
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--min-total-s", type=float, default=1.0, help="steady calls: at least this long in total")
    ap.add_argument("--peers", action="store_true", help="also the torch / JAX comparison at N = 1000")
    ap.add_argument("--no-scaling", action="store_true", help="only the peer comparison")
    ap.add_argument("--json", default=None, help="also write every row to this file")
    ap.add_argument("--prefault", action="store_true",
                    help="also each row's first call right after its memory was written and freed (docstring)")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        scheme, layout, N, d, min_total_s, pre = args.child
        print(json.dumps(_child(scheme, layout, int(N), int(d), float(min_total_s), bool(int(pre)))))
        return 0
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    layouts = [s.strip() for s in args.layouts.split(",") if s.strip()]
    Ns = _int_list(args.N)
    if not set(schemes) <= set(SCHEMES) or not set(layouts) <= set(LAYOUTS):
        ap.error(f"--schemes from {SCHEMES}, --layouts from {LAYOUTS}")
    if not Ns or min(Ns) < 2 or args.d < 1:
        ap.error("--N must list step counts >= 2 and --d must be >= 1")
    out = {"scaling": [], "peers": []}
    if not args.no_scaling:
        for scheme in schemes:
            for layout in layouts:
                for N in Ns:
                    row = measure(scheme, layout, N, args.d, args.min_total_s, args.prefault)
                    out["scaling"].append(row)
                    print(_table([row]).splitlines()[-1], flush=True)
        print()
        print(f"d = {args.d} (p = {args.d ** 2 + args.d}), Numba hand adjoint (public call), fresh process per row; "
              f"steady = the minimum over the calls after the first (at least {MIN_REPEATS} and {args.min_total_s:g} s "
              f"of calls), the median beside it; µs/step and its ratio from the minimum")
        print(_table(out["scaling"]))
    if args.peers:
        out["peers"] = peers()
        print()
        print(_peer_table(out["peers"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
