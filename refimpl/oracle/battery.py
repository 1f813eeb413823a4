"""The battery of oracle cases and its export: every registered case kind's cases (kinds in name order: ``ode``, then
``wasserstein``), written one folder per case with ``index.json`` and ``README.md``.

The exported ``README.md`` is ``docs/case-format.md``, byte for byte: it ships inside the package as
``refimpl/oracle/case-format.md`` (a symbolic link to the docs file in the source tree, a copy in a built wheel).
"""
from __future__ import annotations

import json
import platform
from importlib import resources
from pathlib import Path

import refimpl
from refimpl.oracle.case import CASE_KINDS, save_case

__all__ = ["battery", "battery_tasks", "compute_battery", "export_battery", "case_format_text", "INDEX_JSON", "README"]

INDEX_JSON = "index.json"
README = "README.md"


def battery(*, quick: bool = False):
    """Yield the battery: for each registered case kind, in name order, the cases of its ``battery(quick=...)``.

    ``quick`` (for tests): only the tanh ODE cases and two analytic cases, no Wasserstein case."""
    for name in CASE_KINDS.names():
        yield from CASE_KINDS.get(name).battery(quick=quick)


def battery_tasks(*, quick: bool = False) -> list:
    """The battery as sweep tasks (refimpl.sweep), in battery order: one task per registered case kind — or, for a
    kind that defines ``battery_parts(quick=...)`` (a list of JSON-able part descriptions) and
    ``battery_part(part, quick=...)`` (that part's cases, in order), one task per part."""
    from refimpl.sweep import Task

    tasks = []
    for name in CASE_KINDS.names():
        kind = CASE_KINDS.get(name)
        if hasattr(kind, "battery_parts") and hasattr(kind, "battery_part"):
            tasks += [Task.make(f"cases/{name}/{k}", f"{__name__}:kind_part_cases", name, part, quick)
                      for k, part in enumerate(kind.battery_parts(quick=quick))]
        else:
            tasks.append(Task.make(f"cases/{name}", f"{__name__}:kind_cases", name, quick))
    return tasks


def kind_cases(name: str, quick: bool) -> list:
    """Task: the cases of case kind ``name``'s battery, in order."""
    return list(CASE_KINDS.get(name).battery(quick=quick))


def kind_part_cases(name: str, part, quick: bool) -> list:
    """Task: the cases of one part of case kind ``name``'s battery, in order."""
    return list(CASE_KINDS.get(name).battery_part(part, quick=quick))


def compute_battery(*, quick: bool = False, executor=None, progress=None) -> list:
    """The battery's cases, in battery order (as :func:`battery`), computed as the sweep :func:`battery_tasks` on
    ``executor`` (default: serially in this process; refimpl.sweep.open_executor gives local processes or a dask
    cluster). The same cases, byte for byte once saved, on every executor. Raises refimpl.sweep.SweepFailed (listing
    each failed task's key and error) if a case could not be computed."""
    from refimpl.sweep import run_sweep

    result = run_sweep(battery_tasks(quick=quick), executor, progress=progress)
    return [case for cases in result.values().values() for case in cases]


def case_format_text() -> bytes:
    """The text of ``docs/case-format.md`` (shipped as the package data file ``refimpl/oracle/case-format.md``)."""
    return resources.files("refimpl.oracle").joinpath("case-format.md").read_bytes()


def export_battery(directory, *, quick: bool = False, executor=None) -> list:
    """Write the battery (:func:`compute_battery` on ``executor``) under ``directory`` (one sub-folder per case, plus
    ``index.json`` and ``README.md``); return the case names."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory: {directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for case in compute_battery(quick=quick, executor=executor):
        save_case(case, directory / case.name)
        names.append(case.name)
    index = {"format": "refimpl-case-index", "refimpl_version": refimpl.__version__,
             "python": platform.python_version(), "cases": names}
    (directory / INDEX_JSON).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    (directory / README).write_bytes(case_format_text())
    return names
