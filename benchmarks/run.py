"""One entry point for the benchmarks:

    python benchmarks/run.py [--quick] [--json out.json] [--no-write] [--sections ode,particles,rwcd,suite]

Runs, in one process and one sitting (so that ratios compare numbers measured under the same machine load):

1. ``ode``        gradient of L_h w.r.t. per-step parameters, tanh field (:mod:`benchmarks.ode_gradients`);
2. ``particles``  interaction force and KDE score kernels with a matmul roof (:mod:`benchmarks.particle_kernels`);
3. ``rwcd``       RWCD vs full Wasserstein GD, wall time to F ≤ 1e-6 F₀ (:mod:`benchmarks.rwcd_vs_wgd`);
4. ``suite``      default test-run wall time and Numba compile cold vs warm (:mod:`benchmarks.suite_and_compile`).

Writes the tables into ``benchmarks/RESULTS.md`` between the generated-section markers (the hand-written analysis
around them is kept), unless ``--no-write``; ``--json`` also dumps every number. ``--quick`` (≈ 1 min) runs small
sizes only and skips the test suite and the cold compile; its tables are labelled as quick.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/run.py` puts benchmarks/ first on sys.path, not the repo root
    sys.path.insert(0, str(ROOT))

from benchmarks import ode_gradients, particle_kernels  # noqa: E402
from benchmarks.machine import describe_machine, matmul_roof  # noqa: E402
from benchmarks.results_markdown import render, write_into  # noqa: E402

SECTIONS = ("ode", "particles", "rwcd", "suite")

#: sizes and timing budgets per profile ("smoke" is the tiny profile of tests/test_benchmarks_smoke.py)
PROFILES = {
    "full": {"ode": {"d": (4, 16, 64), "N": (100, 1000), "min_total_s": 0.3, "min_repeats": 3},
             "particles": {"N": (1000, 10000, 30000), "d": (2, 10), "all_routes_up_to_N": 10000,
                           "min_total_s": 0.3, "min_repeats": 3},
             "roof_n": 2000,
             "rwcd": {"d": 50, "n_particles": 500, "wgd_steps": 3500, "rwcd_epochs": 150},
             "suite": True},
    "quick": {"ode": {"d": (4, 16), "N": (100,), "min_total_s": 0.05, "min_repeats": 3},
              "particles": {"N": (1000,), "d": (2, 10), "all_routes_up_to_N": 1000, "min_total_s": 0.05,
                            "min_repeats": 2},
              "roof_n": 1000,
              "rwcd": {"d": 20, "n_particles": 200, "wgd_steps": 1500, "rwcd_epochs": 100},
              "suite": False},
    "smoke": {"ode": {"d": (4,), "N": (10,), "min_total_s": 0.0, "min_repeats": 1},
              "particles": {"N": (200,), "d": (2,), "all_routes_up_to_N": 200, "min_total_s": 0.0,
                            "min_repeats": 1},
              "roof_n": 200,
              "rwcd": None,
              "suite": False},
}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def collect(profile: str = "full", sections=SECTIONS, log=_log) -> dict:
    """Run the chosen sections with the sizes of ``profile``; return every number as a JSON-able dict."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"sections: unknown {sorted(unknown)}; known: {SECTIONS}")
    cfg = PROFILES[profile]
    t_start = time.perf_counter()
    res = {"profile": profile, "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
           "machine": describe_machine()}
    try:
        import numba
        res["machine"]["numba_threads"] = numba.get_num_threads()
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    try:
        import torch
        res["machine"]["torch_threads"] = torch.get_num_threads()
    except ImportError:
        res["machine"]["torch_threads"] = None

    if "ode" in sections:
        c = cfg["ode"]
        res["ode"] = []
        for N in c["N"]:
            for d in c["d"]:
                for scheme in ode_gradients.SCHEMES:
                    log(f"ode gradient: {scheme} d={d} N={N}")
                    res["ode"].append(ode_gradients.run_case(scheme, d, N, min_total_s=c["min_total_s"],
                                                             min_repeats=c["min_repeats"]))

    if "particles" in sections:
        c = cfg["particles"]
        log("matmul roof")
        res["roof"] = matmul_roof(cfg["roof_n"], min_total_s=0.5 if profile == "full" else 0.1)
        res["particles"] = []
        for n in c["N"]:
            for d in c["d"]:
                for kernel in particle_kernels.KERNELS:
                    routes = particle_kernels.CORE_ROUTES if n <= c["all_routes_up_to_N"] else ["numba"]
                    log(f"particle kernel: {kernel} N={n} d={d} ({', '.join(routes)})")
                    res["particles"].append(particle_kernels.run_case(kernel, n, d, routes=routes,
                                                                      min_total_s=c["min_total_s"],
                                                                      min_repeats=c["min_repeats"]))
        log("matmul roof (again, after the kernels)")
        res["roof_after"] = matmul_roof(cfg["roof_n"], min_total_s=0.5 if profile == "full" else 0.1)

    if "rwcd" in sections and cfg["rwcd"] is not None:
        try:
            from benchmarks import rwcd_vs_wgd
        except ImportError as exc:
            res["rwcd"] = {"absent": f"RWCD module not importable: {exc}"}
        else:
            log("RWCD vs WGD")
            res["rwcd"] = rwcd_vs_wgd.run_case(**cfg["rwcd"])

    if "suite" in sections and cfg["suite"]:
        from benchmarks import suite_and_compile
        log("Numba compile, cold vs warm cache")
        res["numba_compile"] = suite_and_compile.numba_compile_times()
        log("default test run")
        res["test_suite"] = suite_and_compile.test_suite_wall_time()

    res["total_wall_s"] = time.perf_counter() - t_start
    return res


def all_agree(res: dict) -> list[str]:
    """The (case, route) pairs that failed the agreement check (empty list: everything agreed)."""
    bad = []
    for case in res.get("ode", []):
        for name, r in case["routes"].items():
            if "absent" not in r and not r["agrees"]:
                bad.append(f"ode {case['scheme']} d={case['d']} N={case['N']} {name}: rel_err {r['rel_err']:.2e}")
    for case in res.get("particles", []):
        for name, r in case["routes"].items():
            if "absent" not in r and not r["agrees"]:
                bad.append(f"{case['kernel']} N={case['N']} d={case['d']} {name}: rel_err {r['rel_err']:.2e}")
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (about a minute)")
    ap.add_argument("--json", metavar="OUT", help="also write every number to this JSON file")
    ap.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    args = ap.parse_args(argv)
    sections = tuple(s for s in args.sections.split(",") if s)
    res = collect("quick" if args.quick else "full", sections)
    md = render(res)
    print(md)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=float))
    if not args.no_write:
        write_into(ROOT / "benchmarks" / "RESULTS.md", md, quick=args.quick)
    bad = all_agree(res)
    for line in bad:
        print("DISAGREEMENT:", line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
