"""How an experiment becomes sweep tasks (refimpl.sweep) and how its report section is assembled from their values.

An experiment module provides either

* ``tasks(profile) -> list[Task]`` — its independent parts, keys starting with ``"<module>/"``, targets importable
  functions of JSON-able arguments — and ``assemble(outdir, profile, values, seconds) -> list[Claim]``, which writes
  ``outdir/<module>.md`` (and plots) from ``values`` ({task key: value}) and may quote ``seconds`` ({task key: wall
  seconds}) only through :func:`validation.walltime.wall`; or
* only ``run(outdir, quick) -> list[Claim]``: then the whole experiment is one task (:func:`run_whole`), run in a
  temporary folder on the worker; the files it writes travel back with its claims.

Profiles: ``"quick"`` (CI sizes), ``"full"`` (the report), ``"large"`` (a cluster's worth: experiments without a
large variant run their full one). A task that writes files (plots) runs through :func:`captured`, so it works on a
worker that shares no file system with the client.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import tempfile
from pathlib import Path

from refimpl.sweep import Task, run_sweep

__all__ = ["PROFILES", "experiment_tasks", "measured_cost", "write_task_costs", "assemble_experiment", "run_whole", "captured", "write_files",
           "run_in_process"]

PROFILES = ("quick", "full", "large")


def _module(name: str):
    return importlib.import_module(f"validation.{name}")


def _check_profile(profile):
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")


#: CPU seconds of each task of the full profile, measured in one serial run (docs/sweeps.md §5)
COSTS_FILE = Path(__file__).with_name("task_costs.json")


def measured_cost(key: str) -> float | None:
    """The measured CPU seconds of the full-profile task ``key`` (:data:`COSTS_FILE`), or None."""
    global _COSTS
    if _COSTS is None:
        _COSTS = json.loads(COSTS_FILE.read_text(encoding="utf-8"))["tasks"] if COSTS_FILE.is_file() else {}
    return _COSTS.get(key)


_COSTS = None


def write_task_costs(timings_json, destination=COSTS_FILE) -> int:
    """Write :data:`COSTS_FILE` from the ``sweep-timings.json`` of a serial full run (``tasks_cpu`` of each
    experiment); return the number of tasks."""
    timings = json.loads(Path(timings_json).read_text(encoding="utf-8"))
    costs = {k: round(v, 3) for name, t in timings.items() if isinstance(t, dict) for k, v in t["tasks_cpu"].items()}
    serial = timings["total_wall_seconds"] - timings["sweep_wall_seconds"]
    Path(destination).write_text(json.dumps({"format": "refimpl-task-costs", "unit": "CPU seconds, one serial full run",
                                             "serial_seconds": round(serial, 3), "tasks": costs}, indent=1) + "\n",
                                 encoding="utf-8")
    return len(costs)


def experiment_tasks(name: str, profile: str) -> list:
    """The tasks of experiment ``name`` in ``profile`` (one :func:`run_whole` task if it defines no ``tasks``). In the
    full profile a task without its own cost estimate gets its measured one (:func:`measured_cost`)."""
    _check_profile(profile)
    module = _module(name)
    if not hasattr(module, "tasks"):
        tasks = [Task.make(f"{name}/run", f"{__name__}:run_whole", name, profile == "quick")]
    else:
        tasks = list(module.tasks(profile))
    for t in tasks:
        if not t.key.startswith(f"{name}/"):
            raise ValueError(f"tasks: key {t.key!r} of experiment {name!r} must start with {name + '/'!r}")
    if profile != "quick":
        tasks = [t if t.cost is not None or measured_cost(t.key) is None else
                 dataclasses.replace(t, cost=measured_cost(t.key)) for t in tasks]
    return tasks


def assemble_experiment(name: str, outdir, profile: str, values: dict, seconds: dict) -> list:
    """Write experiment ``name``'s section from its task values; return its claims."""
    _check_profile(profile)
    module = _module(name)
    outdir = Path(outdir)
    if hasattr(module, "assemble"):
        return module.assemble(outdir, profile, values, seconds)
    claims, files = values[f"{name}/run"]
    write_files(outdir, files)
    return claims


def captured(function, *args) -> tuple:
    """Call ``function(folder, *args)`` with a fresh temporary ``folder``; return (its value, {file name: bytes} of
    the files it wrote there)."""
    with tempfile.TemporaryDirectory(prefix="refimpl-task-") as tmp:
        value = function(Path(tmp), *args)
        files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
    return value, files


def write_files(outdir, files: dict) -> None:
    """Write the captured ``files`` into ``outdir``."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if Path(name).name != name:
            raise ValueError(f"files: {name!r} is not a plain file name")
        (outdir / name).write_bytes(data)


def run_whole(name: str, quick: bool) -> tuple:
    """Task: (claims, files) of ``validation.<name>.run(folder, quick)`` in a temporary folder."""
    return captured(lambda folder: _module(name).run(folder, quick))


def run_in_process(module, outdir, profile: str) -> list:
    """Run ``module``'s tasks serially in this process and assemble its section (what ``module.run`` does)."""
    _check_profile(profile)
    result = run_sweep(module.tasks(profile))
    return module.assemble(Path(outdir), profile, result.values(), result.durations())


def call_with(function, available: dict):
    """Call ``function`` with the entries of ``available`` its signature names (for section functions that take
    some of ``claims``, ``outdir``, ``plt``, ``quick``)."""
    names = inspect.signature(function).parameters
    return function(**{n: available[n] for n in names})
