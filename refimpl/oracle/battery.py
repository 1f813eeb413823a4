"""The battery of oracle cases and its export: every registered case kind's cases (kinds in name order: ``ode``, then
``wasserstein``), written one folder per case with ``index.json`` and ``README.md``.

The export is atomic (:func:`export_battery`): the battery is written into a temporary sibling directory of the
target (``.NAME.export-PID-XXXX``; ``index.json`` last), which then takes the target's place in one step — an atomic
exchange of the two directories (Linux ``renameat2(RENAME_EXCHANGE)``), or ``os.replace`` when the target does not
exist or is empty — with SIGINT/SIGTERM blocked during the swap. Whatever interrupts the exporter (Ctrl-C, SIGTERM,
SIGKILL, a crash), the target is the old export or the complete new one; an interrupted run leaves at most its
temporary sibling, which the next export removes once its process is gone. Where the exchange is not available (other
systems) the old target is first renamed aside: a SIGKILL between the two renames then leaves the old export under
that name rather than at the target.

The exported ``README.md`` is ``docs/case-format.md``, byte for byte: it ships inside the package as
``refimpl/oracle/case-format.md`` (a symbolic link to the docs file in the source tree, a copy in a built wheel).
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import re
import shutil
import signal
import tempfile
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import refimpl
from refimpl.oracle.case import CASE_KINDS, save_case

__all__ = ["battery", "battery_tasks", "compute_battery", "export_battery", "ExportInterrupted", "case_format_text",
           "INDEX_JSON", "README"]

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


def export_battery(directory, *, quick: bool = False, force: bool = False, executor=None) -> list:
    """Write the battery (:func:`compute_battery` on ``executor``, default serial) to ``directory`` atomically
    (module docstring): one sub-folder per case, ``README.md``, and ``index.json`` last; return the case names.

    ``directory`` must not be empty text; an existing non-empty ``directory`` is refused unless ``force``, which
    replaces it whole (never the current directory, one of its ancestors, the home directory or ``/``)."""
    if isinstance(directory, str) and not directory.strip():
        raise ValueError("directory: empty path (name the folder to export to, e.g. cases/)")
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory must be a path, got {type(directory).__name__}")
    target = Path(os.path.abspath(directory))
    if target.exists() and not target.is_dir():
        raise ValueError(f"directory: {directory} exists and is not a directory")
    occupied = target.is_dir() and any(target.iterdir())
    if occupied and not force:
        raise ValueError(f"directory: {directory} is not empty; refusing to mix a new export with what is there "
                         f"(pass --force to replace it whole)")
    if occupied:
        here = Path(os.path.abspath(os.getcwd()))
        if target == Path(target.anchor) or target == Path.home().absolute() or here == target \
                or target in here.parents:
            raise ValueError(f"directory: refusing to replace {target} (the current directory, one of its "
                             f"ancestors, the home directory or the root) with an export")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_exports(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.export-{os.getpid()}-", dir=target.parent))
    done = False
    try:
        names = []
        for case in compute_battery(quick=quick, executor=executor):
            save_case(case, tmp / case.name)
            names.append(case.name)
        (tmp / README).write_bytes(case_format_text())
        index = {"format": "refimpl-case-index", "refimpl_version": refimpl.__version__,
                 "python": platform.python_version(), "cases": names}
        (tmp / INDEX_JSON).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        with _signals_blocked():  # a signal that arrives now is delivered when the block ends, after the cleanup
            if occupied:
                _swap(tmp, target)  # tmp now holds the old export
            else:
                os.replace(tmp, target)  # absent or empty: one rename
            done = True
            shutil.rmtree(tmp, ignore_errors=True)
    except KeyboardInterrupt:
        raise ExportInterrupted(target, done) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return names


class ExportInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM during :func:`export_battery`; ``completed`` says whether the new export was already in place
    (the signal arrived during the swap and was delivered after it) — otherwise the target is unchanged."""

    def __init__(self, target, completed: bool):
        super().__init__(str(target))
        self.target, self.completed = target, completed


_EXPORT_TMP = re.compile(r"\.(?P<name>.+)\.export-(?P<pid>\d+)-[^/]*")


def _remove_stale_exports(target: Path) -> None:
    """Remove the temporary siblings of ``target`` left by exporters that no longer run (killed: SIGKILL)."""
    for p in target.parent.iterdir():
        m = _EXPORT_TMP.fullmatch(p.name)
        if not m or m["name"] != target.name or not p.is_dir():
            continue
        pid = int(m["pid"])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
            continue  # still running: another export in progress
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:
            continue


@contextmanager
def _signals_blocked():
    """SIGINT and SIGTERM held (delivered after the block) while the target is swapped."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _swap(new: Path, target: Path) -> None:
    """Put ``new`` at ``target`` and the old ``target`` at ``new``, atomically where the system allows."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        renameat2 = None
    if renameat2 is not None:
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        if renameat2(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(err, f"cannot exchange {new} and {target}: {os.strerror(err)}")
    aside = new.with_name(new.name + "-old")  # fallback: two renames (module docstring)
    os.replace(target, aside)
    os.replace(new, target)
    os.replace(aside, new)
