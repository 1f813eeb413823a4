"""Markdown tables of a benchmark run (the dict of :func:`benchmarks.run.collect`), the performance targets, and
the splice into ``benchmarks/RESULTS.md`` between generated-section markers (hand-written text outside them is kept;
a ``--quick`` run has its own markers so it never overwrites the full run's tables)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["render", "targets", "write_into"]

ODE_COLUMNS = ("refimpl hand (numba)", "refimpl hand kernels", "refimpl tape", "HIPS autograd", "torch CPU autograd",
               "jax jit(grad)")
ODE_SHORT = {"refimpl hand (numba)": "hand", "refimpl hand kernels": "hand kernels", "refimpl tape": "tape",
             "HIPS autograd": "autograd", "torch CPU autograd": "torch", "jax jit(grad)": "jax jit"}
PARTICLE_COLUMNS = ("numba", "numpy blocked", "torch mm")


def _median(route: dict):
    return route["timing"]["median_s"] if route and "timing" in route else None


def _ms(route: dict) -> str:
    if route is None:
        return "–"
    if "absent" in route:
        return "absent"
    if "timing" not in route:
        return "DISAGREES" if not route.get("agrees", True) else "–"
    t = route["timing"]
    star = "¹" if t["repeats"] == 1 else ""
    return f"{1e3 * t['median_s']:.3g}{star}"


def _ratio(a, b) -> str:
    return "–" if a is None or b is None else f"{a / b:.3g}"


def _max_err(routes: dict) -> float:
    errs = [r["rel_err"] for r in routes.values() if "rel_err" in r]
    return max(errs) if errs else float("nan")


def _ode_ratio(case, num, den):
    return (_median(case["routes"].get(num)), _median(case["routes"].get(den)))


def roof_gflops(res: dict):
    """The roof: the best matmul repeat of the two roof measurements (before and after the kernels)."""
    best = [r["gflops_best"] for r in (res.get("roof"), res.get("roof_after")) if r and "gflops_best" in r]
    return max(best) if best else None


def targets(res: dict) -> list[dict]:
    """The performance targets (stated in benchmarks/RESULTS.md), each with the per-case measured ratios and whether every case meets it."""
    out = []
    ode = res.get("ode", [])
    small = [c for c in ode if c["d"] <= 16 and c["N"] == 1000]

    def collect(cases, num, den):
        vals = []
        for c in cases:
            a, b = _ode_ratio(c, num, den)
            if a is not None and b is not None:
                vals.append((f"{c['scheme']} d={c['d']} N={c['N']}", a / b))
        return vals

    for name, cases, num, den, ok in (
            ("hand discrete adjoint ≥ 10× faster than torch CPU autograd (d ≤ 16, N = 1000); ratio torch/hand",
             small, "torch CPU autograd", "refimpl hand (numba)", lambda r: r >= 10),
            ("hand discrete adjoint not slower than JAX jit (d ≤ 16, N = 1000); ratio jax/hand",
             small, "jax jit(grad)", "refimpl hand (numba)", lambda r: r >= 1),
            ("tape AD within 1.5× of HIPS autograd (all cases); ratio tape/autograd",
             ode, "refimpl tape", "HIPS autograd", lambda r: r <= 1.5)):
        vals = collect(cases, num, den)
        out.append({"target": name, "values": vals,
                    "met": bool(vals) and all(ok(v) for _, v in vals),
                    "met_in": sum(ok(v) for _, v in vals), "of": len(vals)})
    roof = roof_gflops(res)
    vals = []
    for c in res.get("particles", []):
        r = c["routes"].get("numba", {})
        if c["N"] == 10000 and roof and "gflops" in r:
            vals.append((f"{c['kernel']} d={c['d']}", r["gflops"] / roof))
    out.append({"target": "particle kernels (numba) ≥ 50 % of the measured matmul roof at N = 1e4; fraction of roof",
                "values": vals, "met": bool(vals) and all(v >= 0.5 for _, v in vals),
                "met_in": sum(v >= 0.5 for _, v in vals), "of": len(vals)})
    return out


def render(res: dict) -> str:
    m = res["machine"]
    v = m["versions"]
    lines = [f"_Profile `{res['profile']}`, started {res['started_utc']} UTC, total wall "
             f"{res.get('total_wall_s', float('nan')):.0f} s._", "",
             "### Machine", "",
             "| | |", "|---|---|",
             f"| nproc / affinity | {m['nproc']} / {m['affinity_cpus']} |",
             f"| CPU | {m['cpu_model']} ({m['cpu_flags']}), {m.get('cpu_mhz')} MHz |",
             f"| NumPy BLAS | {m['numpy_blas']} |",
             f"| Python | {m['python']} ({m['platform']}) |",
             "| versions | " + ", ".join(f"{k} {v[k]}" if v[k] else f"{k} absent" for k in v) + " |",
             f"| threads | numba {m.get('numba_threads')}, torch {m.get('torch_threads')} |",
             f"| load average at start | {m['loadavg_at_start']} (shared machine: other jobs ran concurrently) |", ""]

    if res.get("ode"):
        lines += ["### 1. Gradient of L_h w.r.t. per-step parameters, tanh field (float64)", "",
                  "Median wall time per gradient in **ms** after a warm-up call (¹ = single timed call, too slow "
                  "to repeat). `hand` is the public `discrete_adjoint(..., backend=\"numba\")`; `hand kernels` the "
                  "same Numba sweeps with the problem set-up done once outside the timed call. Ratios are of "
                  "medians measured in the same run. `err` = largest relative deviation of any route from the hand "
                  "adjoint (all must be ≤ 1e-10 before timing).", "",
                  "| scheme | d | N | " + " | ".join(ODE_SHORT[c] for c in ODE_COLUMNS)
                  + " | torch/hand | jax/hand | jax/hand kernels | tape/autograd | err |",
                  "|---|---:|---:|" + "---:|" * (len(ODE_COLUMNS) + 5)]
        for c in res["ode"]:
            R = c["routes"]
            lines.append(f"| {c['scheme']} | {c['d']} | {c['N']} | "
                         + " | ".join(_ms(R.get(k)) for k in ODE_COLUMNS) + " | "
                         + " | ".join(_ratio(*_ode_ratio(c, a, b)) for a, b in (
                             ("torch CPU autograd", "refimpl hand (numba)"),
                             ("jax jit(grad)", "refimpl hand (numba)"),
                             ("jax jit(grad)", "refimpl hand kernels"),
                             ("refimpl tape", "HIPS autograd")))
                         + f" | {_max_err(R):.1e} |")
        lines += ["", "First call minus median (compile / cache load / tracing), seconds:", "",
                  "| scheme | d | N | hand (numba cache load) | jax jit (trace + XLA compile) |",
                  "|---|---:|---:|---:|---:|"]
        for c in res["ode"]:
            R = c["routes"]
            cells = []
            for k in ("refimpl hand (numba)", "jax jit(grad)"):
                t = R.get(k, {}).get("timing")
                cells.append(f"{t['overhead_first_s']:.3f}" if t else "–")
            lines.append(f"| {c['scheme']} | {c['d']} | {c['N']} | " + " | ".join(cells) + " |")
        lines.append("")

    if res.get("particles"):
        r1, r2 = res["roof"], res.get("roof_after", {})
        roof = roof_gflops(res)
        lines += ["### 2. Particle kernels (float64)", "",
                  f"Roof: float64 matmul {r1['n']}×{r1['n']} (OpenBLAS, 2 threads) measured in this run, best repeat "
                  f"of the two measurements: **{roof:.1f} GFLOP/s** (before the kernels: best {r1['gflops_best']:.1f}, "
                  f"median {r1['gflops_median']:.1f}"
                  + (f"; after: best {r2['gflops_best']:.1f}, median {r2['gflops_median']:.1f}" if r2 else "")
                  + "; nominal 2 cores × clock × 16 flop/cycle). "
                  "Times in seconds (median; ¹ = single call); GFLOP/s by the FLOP model of "
                  "`benchmarks/particle_kernels.py` (interaction 5d+3, KDE score 8d+9 per ordered pair, exp = 1). "
                  "`err` = largest relative deviation from numba (tolerance 1e-10). NumPy / torch are run up to the "
                  "size stated in the profile (time budget); `–` = not run.", "",
                  "| kernel | N | d | numba s | numba GFLOP/s | % roof | numpy s | numpy GFLOP/s | torch s | "
                  "torch GFLOP/s | numba/numpy speed-up | err |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for c in res["particles"]:
            R = c["routes"]
            cells = []
            for k in PARTICLE_COLUMNS:
                r = R.get(k)
                if r is None or "timing" not in r:
                    cells += ["absent" if r and "absent" in r else "–", "–"] + (["–"] if k == "numba" else [])
                    continue
                t = r["timing"]
                cells += [f"{t['median_s']:.3g}{'¹' if t['repeats'] == 1 else ''}", f"{r['gflops']:.2f}"]
                if k == "numba":
                    cells.append(f"{100 * r['gflops'] / roof:.1f}")
            sp = _ratio(_median(R.get("numpy blocked")), _median(R.get("numba")))
            lines.append(f"| {c['kernel']} | {c['N']} | {c['d']} | " + " | ".join(cells)
                         + f" | {sp} | {_max_err(R):.1e} |")
        refs = [(c["kernel"], c["N"], c["d"], c["numba_vs_unblocked_numpy_reference"]) for c in res["particles"]
                if "numba_vs_unblocked_numpy_reference" in c]
        if refs:
            lines += ["", "numba vs refimpl's unblocked NumPy reference (relative): "
                      + "; ".join(f"{k} N={n} d={d}: {e:.1e}" for k, n, d, e in refs)]
        lines.append("")

    if res.get("rwcd"):
        r = res["rwcd"]
        lines += ["### 3. RWCD vs full Wasserstein GD (ill-conditioned quadratic, particles)", ""]
        if "absent" in r:
            lines += [r["absent"], ""]
        else:
            lines += [f"F = ∫½xᵀAx dρ, A = I + 10·11ᵀ, d = {r['d']}, N = {r['N']} particles, "
                      f"target F ≤ 1e-6 F₀ "
                      f"(F₀ = {r['F0']:.4g}). Predicted cost speed-up L/mean Lᵢ = "
                      f"{r['predicted_speedup_cost']:.1f}.", "",
                      "| method | wall time to target s | cost to target (gradient equivalents) | end-to-end s "
                      "(incl. energy records) | speed-up in time vs WGD | speed-up in cost vs WGD |",
                      "|---|---:|---:|---:|---:|---:|"]
            for name, x in r["routes"].items():
                lines.append(f"| {name} | {x['time_to_target_s']:.3g} | {x['cost_to_target']:.4g} | "
                             f"{x['end_to_end_s']:.3g} | {x['speedup_time_vs_wgd']:.3g} | "
                             f"{x['speedup_cost_vs_wgd']:.3g} |")
            lines.append("")

    if res.get("numba_compile") or res.get("test_suite"):
        lines += ["### 4. Test suite and Numba compile time", ""]
        ts = res.get("test_suite")
        if ts:
            lines += [f"Default test run (`python -m pytest -q`, slow sweeps excluded): **{ts['wall_s']:.0f} s** "
                      f"wall, `{ts['summary']}` (exit code {ts['returncode']})."
                      + (f" Failing: {', '.join(f'`{t}`' for t in ts['failed'])}." if ts.get("failed") else ""), ""]
        nc = res.get("numba_compile")
        if nc:
            cold, warm = nc["cold"], nc["warm"]
            if "error" in cold or "error" in warm:
                lines += [f"Numba probe failed: {cold.get('error') or warm.get('error')}", ""]
            else:
                lines += ["First call of each kernel group in a fresh process, seconds (cold: empty cache dir, "
                          "compiles and writes the cache; warm: same cache dir, loads it; steady: a later call).", "",
                          "| kernel group | cold first call | warm first call | steady call |", "|---|---:|---:|---:|"]
                for k, x in cold.items():
                    if isinstance(x, dict):
                        lines.append(f"| {k} | {x['first_s']:.2f} | {warm[k]['first_s']:.3f} | "
                                     f"{warm[k]['steady_s']:.4f} |")
                lines += [f"| whole probe process (import + all groups) | {cold['process_wall_s']:.1f} | "
                          f"{warm['process_wall_s']:.1f} | |", ""]

    tg = targets(res)
    if any(t["of"] for t in tg):
        lines += ["### Targets (computed from this run)", "", "| target | met? | cases meeting it | values |",
                  "|---|---|---|---|"]
        for t in tg:
            if not t["of"]:
                continue
            vals = "; ".join(f"{k}: {x:.3g}" for k, x in t["values"])
            lines.append(f"| {t['target']} | {'**yes**' if t['met'] else '**no**'} | {t['met_in']}/{t['of']} | "
                         f"{vals} |")
        lines.append("")
    return "\n".join(lines)


def _markers(quick: bool):
    tag = "QUICK" if quick else "FULL"
    return f"<!-- BEGIN GENERATED {tag} -->", f"<!-- END GENERATED {tag} -->"


def write_into(path: Path, md: str, *, quick: bool) -> None:
    """Replace the generated block (full or quick) of ``path`` with ``md``; append the block if it is missing."""
    begin, end = _markers(quick)
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    block = f"{begin}\n{md}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
