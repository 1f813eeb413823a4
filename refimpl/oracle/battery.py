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

__all__ = ["battery", "export_battery", "case_format_text", "INDEX_JSON", "README"]

INDEX_JSON = "index.json"
README = "README.md"


def battery(*, quick: bool = False):
    """Yield the battery: for each registered case kind, in name order, the cases of its ``battery(quick=...)``.

    ``quick`` (for tests): only the tanh ODE cases and two analytic cases, no Wasserstein case."""
    for name in CASE_KINDS.names():
        yield from CASE_KINDS.get(name).battery(quick=quick)


def case_format_text() -> bytes:
    """The text of ``docs/case-format.md`` (shipped as the package data file ``refimpl/oracle/case-format.md``)."""
    return resources.files("refimpl.oracle").joinpath("case-format.md").read_bytes()


def export_battery(directory, *, quick: bool = False) -> list:
    """Write :func:`battery` under ``directory`` (one sub-folder per case, plus ``index.json`` and ``README.md``);
    return the case names."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory: {directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for case in battery(quick=quick):
        save_case(case, directory / case.name)
        names.append(case.name)
    index = {"format": "refimpl-case-index", "refimpl_version": refimpl.__version__,
             "python": platform.python_version(), "cases": names}
    (directory / INDEX_JSON).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    (directory / README).write_bytes(case_format_text())
    return names
