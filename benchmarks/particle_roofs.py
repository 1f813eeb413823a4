r"""The particle kernels against the exp-aware roofs and their peers, every number from one process:

    python benchmarks/particle_roofs.py [--quick | --profile NAME] [--json out.json] [--no-write]

    # one core, everything single-threaded (less exposed to other jobs on a shared 2-core machine):
    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        python benchmarks/particle_roofs.py --profile one-core

In one sitting (so that ratios compare numbers measured under the same machine load):

1. the rates of :mod:`benchmarks.exp_roof`: dgemm R_fma (best repeat, before and after the kernels), the scalar exp
   rate (Numba ``math.exp``, the C library's), np.exp, and the vector exp rates (refimpl's polynomial exp, torch.exp);
2. the interaction force and the KDE score (:mod:`benchmarks.particle_kernels`) at N ∈ {10³, 10⁴, 2·10⁴},
   d ∈ {2, 10}, by refimpl's default kernels (``numba``: polynomial exp), the same kernels with the C library's exp
   (``numba libm exp``), pykeops on CPU and torch's matmul route (each checked against ``numba`` to 1e-10 before it is
   timed; torch and the libm kernels up to N = 10⁴, to keep the run under 5 minutes);
3. each kernel as a fraction of the scalar-exp roof, of the vector-exp roof
   (:func:`benchmarks.exp_roof.roof_seconds`, vector rate = the fastest vector exp measured) and of the roof with
   refimpl's own polynomial exp rate (what is left once the exp is as fast as it is), and the time ratios
   peer / numba.

Writes its tables into ``benchmarks/RESULTS.md`` between its own generated-section markers unless ``--no-write``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import exp_roof, particle_kernels  # noqa: E402
from benchmarks.machine import describe_machine, matmul_roof  # noqa: E402

PROFILES = {
    "full": {"N": (1000, 10000, 20000), "d": (2, 10), "torch_up_to_N": 10000, "libm_up_to_N": 10000, "roof_n": 2000,
             "min_total_s": 0.2, "min_repeats": 3},
    "quick": {"N": (1000,), "d": (2, 10), "torch_up_to_N": 1000, "libm_up_to_N": 1000, "roof_n": 1000,
              "min_total_s": 0.05, "min_repeats": 2},
    # N = 10⁴ only, numba and pykeops; meant to run with every library on one thread (module docstring)
    "one-core": {"N": (10000,), "d": (2, 10), "torch_up_to_N": 0, "libm_up_to_N": 0, "roof_n": 2000,
                 "min_total_s": 0.2, "min_repeats": 3},
}
ROUTES = ("numba", "numba libm exp", "pykeops", "torch mm")
BEGIN, END = "<!-- BEGIN GENERATED PARTICLE ROOFS -->", "<!-- END GENERATED PARTICLE ROOFS -->"


def _log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def collect(profile: str = "full", log=_log) -> dict:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    import numba

    cfg = PROFILES[profile]
    t0 = time.perf_counter()
    res = {"profile": profile, "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
           "machine": describe_machine(), "numba_threads": numba.get_num_threads()}
    log("dgemm roof")
    res["dgemm_before"] = matmul_roof(cfg["roof_n"], min_total_s=0.5)
    log("exp rates")
    res["exp_rates"] = exp_roof.exp_rates()
    res["cases"] = []
    for n in cfg["N"]:
        for d in cfg["d"]:
            for kernel in particle_kernels.KERNELS:
                routes = [r for r in ROUTES if (r != "torch mm" or n <= cfg["torch_up_to_N"])
                          and (r != "numba libm exp" or n <= cfg["libm_up_to_N"])]
                log(f"{kernel} N={n} d={d} ({', '.join(routes)})")
                res["cases"].append(particle_kernels.run_case(kernel, n, d, routes=routes,
                                                              min_total_s=cfg["min_total_s"],
                                                              min_repeats=cfg["min_repeats"]))
    log("dgemm roof (again)")
    res["dgemm_after"] = matmul_roof(cfg["roof_n"], min_total_s=0.5)
    res["r_fma"] = 1e9 * max(res["dgemm_before"]["gflops_best"], res["dgemm_after"]["gflops_best"])
    for case in res["cases"]:
        for name, route in case["routes"].items():
            if "timing" not in route:
                continue
            t = route["timing"]["median_s"]
            for roof in ("scalar", "vector", "own"):
                route[f"fraction_{roof}_roof"] = exp_roof.fraction_of_roof(
                    t, case["kernel"], case["N"], case["d"], res["exp_rates"][roof], res["r_fma"])
    res["total_wall_s"] = time.perf_counter() - t0
    return res


def _t(case, name):
    r = case["routes"].get(name)
    return r["timing"]["median_s"] if r and "timing" in r else None


def _fmt(x, spec=".3g"):
    return "–" if x is None else format(x, spec)


def render(res: dict) -> str:
    m, rates = res["machine"], res["exp_rates"]
    pc = rates["per_core"]
    lines = [f"_Profile `{res['profile']}`, started {res['started_utc']} UTC, total wall {res['total_wall_s']:.0f} s; "
             f"{m['cpu_model']} ({m['cpu_flags']}), {m['nproc']} cores, Numba threads {res['numba_threads']}, "
             f"load average at start {m['loadavg_at_start']}._", "",
             "Rates measured in this run (exp: one thread, 2¹⁵ arguments in [−30, 0], best repeat; "
             "R_exp = per-core rate × threads):", "",
             "| rate | per core | used as |", "|---|---:|---|"]
    for name, v in pc.items():
        use = ("scalar R_exp" if name == "numba math.exp (libm)" else
               "vector R_exp" if name == rates["vector_source"] else "")
        use = use or ("own R_exp (the default kernels' exp)" if name == "refimpl polynomial_exp" else "")
        lines.append(f"| {name} | {v / 1e6:.0f} M exp/s | {use} |")
    lines += [f"| dgemm (2000², all cores) before / after | {res['dgemm_before']['gflops_best']:.1f} / "
              f"{res['dgemm_after']['gflops_best']:.1f} GFLOP/s | R_fma = the larger |", "",
              "Times in seconds (median after a warm-up call; ¹ one timed call). `% vec roof` / `% own-exp roof` / "
              "`% scalar roof` = t_roof / t with t_roof = N²(n_exp/R_exp + k/R_fma) (benchmarks/exp_roof.py: "
              "interaction n_exp = 1, "
              "k = 5d+2; KDE score n_exp = 2, k = 8d+6). Ratios are peer time / numba time (> 1: refimpl faster). "
              "`err` = largest relative deviation of any route from numba.", "",
              "| kernel | N | d | numba s | % vec roof | % own-exp roof | % scalar roof | numba libm exp s | "
              "libm/numba | pykeops s | pykeops/numba | torch mm s | torch/numba | err |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in res["cases"]:
        nb = c["routes"]["numba"]
        tn = _t(c, "numba")
        star = "¹" if nb.get("timing", {}).get("repeats") == 1 else ""
        cells = [c["kernel"], str(c["N"]), str(c["d"]), _fmt(tn) + star,
                 _fmt(100 * nb.get("fraction_vector_roof", float("nan")), ".1f"),
                 _fmt(100 * nb.get("fraction_own_roof", float("nan")), ".1f"),
                 _fmt(100 * nb.get("fraction_scalar_roof", float("nan")), ".1f")]
        for peer in ("numba libm exp", "pykeops", "torch mm"):
            r = c["routes"].get(peer)
            tp = _t(c, peer)
            cells.append("absent" if r and "absent" in r else _fmt(tp))
            cells.append(_fmt(None if tp is None or tn is None else tp / tn))
        errs = [r["rel_err"] for r in c["routes"].values() if "rel_err" in r]
        cells.append(f"{max(errs):.1e}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_into(path: Path, md: str) -> None:
    text = path.read_text()
    block = f"{BEGIN}\n{md}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 'quick' profile")
    ap.add_argument("--profile", choices=sorted(PROFILES), help="a profile by name (default: full)")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    profile = args.profile or ("quick" if args.quick else "full")
    res = collect(profile)
    md = render(res)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=float))
    if not args.no_write and profile == "full":
        write_into(ROOT / "benchmarks" / "RESULTS.md", md)
    bad = [f"{c['kernel']} N={c['N']} d={c['d']} {name}" for c in res["cases"]
           for name, r in c["routes"].items() if "absent" not in r and not r["agrees"]]
    for line in bad:
        print("DISAGREEMENT:", line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
