r"""Peak memory of the compiled (Numba) hand discrete adjoint, per parameter layout, with and without checkpointing.

    python benchmarks/memory_adjoint.py [--N 1000000] [--d 16] [--checkpoint 1000] [--json out.json]

Problem: the tanh field :math:`f(x,\theta) = \tanh(Wx + b)` of dimension d (p = d² + d parameters per sample), the
loss :math:`\tfrac12|x_N - y|^2`, forward Euler, RK4 and leapfrog (forward-Euler starter) on N steps over [0, 1],
``discrete_adjoint(..., backend="numba")`` — the public call, with everything it allocates (argument checks, samples, result).

Each configuration runs in a fresh child process, which first solves a tiny problem of the same kind (so Numba's
compiled code is loaded and the interpreter, NumPy and Numba are resident: the *baseline*), then builds θ and runs the
adjoint once. Reported: the child's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the
high-water mark, which includes the input θ the caller holds), the baseline, and the model below. A configuration
whose model exceeds 80% of the memory the machine has available (``MemAvailable`` of /proc/meminfo) is skipped with
that reason instead of run.

Model (bytes, float64, int64 indices; s stages, n the number of samples: forward Euler and leapfrog stage/step N,
RK4 stage 2N + 1, RK4 step N, constant 1):

* θ and its gradient: :math:`2\cdot 8np`;
* states and adjoints kept: :math:`2\cdot 8(N+1)d` without checkpointing; with checkpoint k, the
  :math:`\lceil N/k\rceil + 1` checkpoints of each, plus the segment being recomputed, :math:`8kd`, and its stage
  slopes :math:`8ksd` (kept when :math:`ksd \le 2^{23}`);
* the forward sweep's stage slopes :math:`8Nsd`, kept only when :math:`Nsd \le 2^{23}` (64 MiB) — not at N = 10⁶;
* the stage index map :math:`8Ns` (which sample each stage uses; all zeros in the constant layout).

Leapfrog (k = 2 steps): the map of the F values :math:`8N` and a ring of 2 F values, :math:`16d` (the tanh field's VJP
does not read :math:`f(x,\theta)`, so the forward sweep keeps no more; the cotangents :math:`\bar F` are kept for
k + 2 indices only); with checkpoint K: windows of k states :math:`8\lceil N/K\rceil kd`, the
checkpoints of x and λ :math:`2\cdot 8(\lceil N/K\rceil + 1)d`, the segment's states and F values :math:`2\cdot 8(K+k)d`.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/memory_adjoint.py` puts benchmarks/ first on sys.path
    sys.path.insert(0, str(ROOT))

__all__ = ["CONFIGS", "model_bytes", "measure", "main"]

#: (scheme, layout, checkpoint?) in the order reported
CONFIGS = [("forward_euler", "stage", False), ("forward_euler", "step", False), ("forward_euler", "constant", False),
           ("forward_euler", "constant", True), ("rk4", "stage", False), ("rk4", "step", False),
           ("rk4", "constant", False), ("rk4", "constant", True), ("rk4", "step", True),
           ("leapfrog", "constant", False), ("leapfrog", "constant", True)]

# the sample count and the stage-keeping threshold, shared with the scaling benchmark (which tests both against the
# library: tests/test_benchmarks_ode_scaling.py)
from benchmarks.ode_scaling import KEEP, n_samples as _n_samples  # noqa: E402


def model_bytes(scheme: str, layout: str, N: int, d: int, checkpoint: int | None) -> dict:
    """The model of the module docstring, by term (bytes)."""
    s = 4 if scheme == "rk4" else 1
    p = d * d + d
    n = _n_samples(scheme, layout, N)
    if scheme == "leapfrog":
        out = {"theta and gradient": 2 * 8 * n * p, "F index": 8 * N}
        if checkpoint is None:
            out["states and adjoints"] = 2 * 8 * (N + 1) * d
            out["F values"] = 8 * 2 * d        # the LMM forward sweep's ring (TanhField: vjp_reads_fx False)
        else:
            K = min(checkpoint, N)
            out["states and adjoints"] = 8 * -(-N // K) * 2 * d + 2 * 8 * (-(-N // K) + 1) * d + 2 * 8 * (K + 2) * d
        out["total"] = sum(out.values())
        return out
    out = {"theta and gradient": 2 * 8 * n * p, "stage index": 8 * N * s}
    if checkpoint is None:
        out["states and adjoints"] = 2 * 8 * (N + 1) * d
        out["stage slopes"] = 8 * N * s * d if N * s * d <= KEEP else 0
    else:
        k = min(checkpoint, N)
        out["states and adjoints"] = 2 * 8 * (-(-N // k) + 1) * d + 8 * k * d
        out["stage slopes"] = 8 * k * s * d if k * s * d <= KEEP else 0
    out["total"] = sum(out.values())
    return out


def _problem(scheme, layout, N, d, seed=0):
    import numpy as np

    from refimpl.ode.fields import QuadraticLoss, TanhField
    from refimpl.ode.samples import parameter_samples
    from refimpl.ode.schemes import FORWARD_EULER, LEAPFROG, RK4

    method, starter = {"forward_euler": (FORWARD_EULER, None), "rk4": (RK4, None),
                       "leapfrog": (LEAPFROG, "forward_euler")}[scheme]
    field = TanhField(d)
    rng = np.random.default_rng(seed)
    n = parameter_samples(method, 1.0, N, layout, starter).n_samples
    theta = rng.standard_normal((n, field.n_params))
    theta *= 0.5 / np.sqrt(d)
    x0, y = rng.standard_normal(d), rng.standard_normal(d)
    return field, method, starter, x0, theta, QuadraticLoss(y)


def _child(scheme, layout, N, d, checkpoint):
    """Run in the child process: baseline, then one adjoint; prints one JSON line."""
    from refimpl.ode.adjoint_recursions import discrete_adjoint

    field, method, starter, x0, theta, loss = _problem(scheme, layout, 8, d)
    discrete_adjoint(field, method, x0, theta, 1.0, 8, loss, layout=layout, starter=starter, backend="numba",
                     checkpoint=None if checkpoint is None else 2)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    field, method, starter, x0, theta, loss = _problem(scheme, layout, N, d)
    res = discrete_adjoint(field, method, x0, theta, 1.0, N, loss, layout=layout, starter=starter, backend="numba",
                           checkpoint=checkpoint)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"baseline": baseline, "peak": peak, "loss": float(res.loss),
                      "rows_kept": int(res.trajectory.shape[0])}))


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def measure(scheme, layout, N, d, checkpoint=None) -> dict:
    """One configuration in a child process: model, baseline and peak (bytes), or the reason it was skipped."""
    model = model_bytes(scheme, layout, N, d, checkpoint)
    row = {"scheme": scheme, "layout": layout, "N": N, "d": d, "checkpoint": checkpoint, "model": model}
    avail = _available_bytes()
    if avail is not None and model["total"] > 0.8 * avail:
        row["skipped"] = f"model {model['total'] / 2**30:.2f} GiB > 80% of available {avail / 2**30:.2f} GiB"
        return row
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", scheme, layout, str(N), str(d),
           "none" if checkpoint is None else str(checkpoint)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    if out.returncode != 0:
        row["skipped"] = f"child failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"
        return row
    row.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return row


def _table(rows) -> str:
    mib = 2 ** 20
    lines = ["| scheme | layout | checkpoint | model (MiB) | baseline (MiB) | peak RSS (MiB) | peak − baseline (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ck = "—" if r["checkpoint"] is None else str(r["checkpoint"])
        if "skipped" in r:
            lines.append(f"| {r['scheme']} | {r['layout']} | {ck} | {r['model']['total'] / mib:.0f} | — | "
                         f"skipped: {r['skipped']} | — |")
        else:
            lines.append(f"| {r['scheme']} | {r['layout']} | {ck} | {r['model']['total'] / mib:.0f} | "
                         f"{r['baseline'] / mib:.0f} | {r['peak'] / mib:.0f} | {(r['peak'] - r['baseline']) / mib:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--N", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--checkpoint", type=int, default=1000, help="k of the checkpointed rows")
    ap.add_argument("--only", default="", help="comma-separated scheme:layout[:ck] to run (default: all)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        scheme, layout, N, d, ck = args.child
        _child(scheme, layout, int(N), int(d), None if ck == "none" else int(ck))
        return 0
    if args.N < 1 or args.d < 1 or args.checkpoint < 1:
        ap.error("--N, --d and --checkpoint must be >= 1")
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    rows = []
    for scheme, layout, ck in CONFIGS:
        tag = f"{scheme}:{layout}" + (":ck" if ck else "")
        if wanted and tag not in wanted:
            continue
        row = measure(scheme, layout, args.N, args.d, args.checkpoint if ck else None)
        rows.append(row)
        print(_table([row]).splitlines()[-1], flush=True)
    print()
    print(f"N = {args.N}, d = {args.d} (p = {args.d ** 2 + args.d}), Numba hand adjoint, peak resident set size")
    print(_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
