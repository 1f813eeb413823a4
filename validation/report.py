"""The validation report: run the experiments' tasks as one sweep (refimpl.sweep) and write ``index.md``.

``write_report`` lists every experiment's tasks (validation/experiment.py), runs them all on the given executor with
one progress bar, assembles each experiment's section from its values in task order, and writes ``index.md`` — one
PASS/FAIL line per claim, the deterministic claims counted apart from the wall-time ones (validation/walltime.py) — and
``sweep-timings.json`` (each task's wall and CPU seconds, the serial part; docs/sweeps.md §5). An experiment whose
tasks cannot be listed, one of whose tasks raised, or whose assembly raised is one failed claim "experiment runs to
completion" (the failing task's key and error as evidence, the traceback in its section).
"""
from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import refimpl
from refimpl.sweep import ProgressBar, run_sweep
from validation.claims import Claim
from validation.experiment import assemble_experiment, experiment_tasks
from validation.walltime import unmarked, wall

__all__ = ["write_report"]


def _verdict(claim) -> str:
    text = "PASS" if claim.passed else "FAIL"
    return wall(text) if claim.timed else text


def write_report(out, names, profile: str, executor, *, results=None, resume: bool = False, sys_path=(),
                 stream=None) -> int:
    """Run experiments ``names`` in ``profile`` on ``executor``; write ``out/index.md``; return 0 (every claim passed)
    or 1. ``results``: the per-task results folder (default ``out/sweep-results``); ``resume``: reuse it;
    ``sys_path``: folders the workers put on ``sys.path`` (the source checkout); ``stream``: the progress bar's
    stream (default stderr)."""
    out = Path(out)
    stream = sys.stderr if stream is None else stream
    out.mkdir(parents=True, exist_ok=True)
    results = out / "sweep-results" if results is None else Path(results)
    t_start = time.perf_counter()
    tasks, broken = {}, {}
    for name in names:
        try:
            tasks[name] = experiment_tasks(name, profile)
        except Exception:  # an experiment that cannot list its tasks is a failed claim, like one that crashes
            broken[name] = traceback.format_exc()
            tasks[name] = []
    all_tasks = [t for name in names for t in tasks[name]]
    known = [t.cost for t in all_tasks if t.cost is not None]
    estimate = (f"; estimated {sum(known) / 3600:.2f} core-hours" + ("" if len(known) == len(all_tasks) else
                f" for the {len(known)} tasks with a cost estimate")) if known else ""
    print(f"{len(all_tasks)} tasks ({profile} profile){estimate}", flush=True)
    sweep = run_sweep(all_tasks, executor, results=results, resume=resume,
                      progress=ProgressBar(len(all_tasks), "tasks", stream), sys_path=sys_path)
    if sweep.reused:
        print(f"reused {sweep.reused} task results from {results}; computed {sweep.computed}", flush=True)
    if not sweep.ok:
        print(f"{len(sweep.failures)} task(s) failed:\n{sweep.failure_report()}", file=sys.stderr, flush=True)
    outcomes = {o.key: o for o in sweep.outcomes}
    rows, sections, timings = [], [], {}
    for name in names:
        own = [outcomes[t.key] for t in tasks[name]]
        failed = [o for o in own if not o.ok]
        seconds = {o.key: o.seconds for o in own}
        t0 = time.perf_counter()
        try:
            if name in broken:
                raise RuntimeError(f"listing the tasks raised:\n{broken[name]}")
            if failed:
                raise RuntimeError("\n".join(o.summary() + ("\n" + o.traceback if o.traceback else "")
                                             for o in failed))
            claims = assemble_experiment(name, out, profile, {o.key: o.value for o in own}, seconds)
        except Exception as exc:  # an experiment that crashes is a failed claim, reported with its traceback
            tb = str(exc) if isinstance(exc, RuntimeError) and (failed or name in broken) else traceback.format_exc()
            (out / f"{name}.md").write_text(f"# {name}\n\nThe experiment raised:\n\n```\n{tb}\n```\n")
            evidence = ("; ".join(o.summary() for o in failed) if failed and name not in broken
                        else tb.strip().splitlines()[-1])
            claims = [Claim(name, "experiment runs to completion", False, evidence)]
        timings[name] = {"tasks": seconds, "tasks_cpu": {o.key: o.cpu_seconds for o in own},
                         "assemble": time.perf_counter() - t0}
        for c in claims:
            rows.append((name, c))
            print(f"    {'PASS' if c.passed else 'FAIL'}  {c.source}: {c.statement} — {unmarked(c.evidence)}",
                  flush=True)
        sections.append(f"- [{name}]({name}.md) ({wall(f'{sum(seconds.values()):.1f} s')} of task time)")
    n_fail = sum(not c.passed for _, c in rows)
    fixed = [c for _, c in rows if not c.timed]
    timed = [c for _, c in rows if c.timed]
    summary = f"{sum(c.passed for c in fixed)}/{len(fixed)} claims pass"
    if timed:
        summary += f"; wall-time claims: {wall(f'{sum(c.passed for c in timed)}/{len(timed)} pass')}"
    lines = ["# refimpl validation report", "", f"refimpl {refimpl.__version__}; mode: {profile}; {summary}.", "",
             "| result | experiment | source | claim | evidence |", "|---|---|---|---|---|"]
    lines += [f"| {_verdict(c)} | {n} | {c.source} | {c.statement} | {c.evidence} |" for n, c in rows]
    lines += ["", "## Sections", ""] + sections + [""]
    (out / "index.md").write_text("\n".join(lines))
    timings["total_wall_seconds"] = time.perf_counter() - t_start
    timings["sweep_wall_seconds"] = sweep.seconds
    (out / "sweep-timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    print(f"{'PASS' if n_fail == 0 else 'FAIL'}: {len(rows) - n_fail}/{len(rows)} claims pass; report in "
          f"{out / 'index.md'}")
    return 0 if n_fail == 0 else 1
