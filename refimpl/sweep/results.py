"""The results directory of a sweep: one file per finished task, named by the task's hash, written atomically.

Layout: ``DIR/<sha256>.pkl`` — a pickled :class:`~refimpl.sweep.task.TaskOutcome` of a task that succeeded (failed
tasks are not stored, so a resumed sweep runs them again) — and ``DIR/tasks.json``, the sweep's task list (key, hash,
target) for a reader. A file is written under a temporary name in the same folder and renamed with :func:`os.replace`
(atomic on POSIX and Windows), so a sweep killed mid-write leaves either the old state or the complete file, never a
truncated one; a file that nevertheless does not load (another tool truncated it) counts as missing.

The files are pickles: load only results directories you wrote yourself.
"""
from __future__ import annotations

import json
import os
import pickle
import tempfile
from pathlib import Path

from refimpl.sweep.task import Task, TaskOutcome

__all__ = ["ResultStore", "atomic_write_bytes"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, flushed and fsynced, then
    :func:`os.replace` (the temporary file is removed if anything fails)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class ResultStore:
    """The results directory ``directory`` (created if missing)."""

    MANIFEST = "tasks.json"

    def __init__(self, directory):
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"directory: {directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory

    def path(self, task: Task) -> Path:
        return self.directory / f"{task.hash}.pkl"

    def load(self, task: Task) -> TaskOutcome | None:
        """The stored outcome of ``task``, or None if there is none (or it does not load, or belongs to another
        task)."""
        path = self.path(task)
        try:
            outcome = pickle.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - an unreadable result is a missing result: recomputed
            return None
        if not isinstance(outcome, TaskOutcome) or outcome.hash != task.hash or not outcome.ok:
            return None
        return outcome

    def save(self, task: Task, outcome: TaskOutcome) -> None:
        """Store a successful ``outcome`` of ``task`` atomically (failures are not stored)."""
        if outcome.hash != task.hash:
            raise ValueError(f"outcome: belongs to task hash {outcome.hash[:12]}…, not to {task.key!r}")
        if outcome.ok:
            atomic_write_bytes(self.path(task), pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))

    def write_manifest(self, tasks) -> None:
        """``tasks.json``: the sweep's tasks in order (key, hash, target, cost)."""
        rows = [{"key": t.key, "hash": t.hash, "target": t.target, "cost": t.cost} for t in tasks]
        atomic_write_bytes(self.directory / self.MANIFEST,
                           (json.dumps({"format": "refimpl-sweep-tasks", "tasks": rows}, indent=1) + "\n").encode())
