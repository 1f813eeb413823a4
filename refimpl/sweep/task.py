"""A sweep task: a key, a callable named by import path, and JSON-able arguments — pure data, so it pickles to any
process or machine and hashes to the same name everywhere.

A task names its function as ``"package.module:function"`` (resolved where it runs, so the worker imports the code
rather than receiving a pickled closure) and carries only JSON-able arguments (``None``, ``bool``, ``int``, ``float``,
``str``, lists/tuples and string-keyed dicts of these). Two consequences:

* the task's **hash** is the SHA-256 of one canonical JSON text (key, target, arguments, refimpl version), identical in
  every process — it names the task's result file, so a resumed sweep finds what an interrupted one finished;
* the task's **seed** is derived from its key alone (:func:`seed_from_key`), so a stochastic task draws the same
  numbers whichever worker runs it and whatever else the sweep contains.

:func:`execute` runs a task where it lands and returns a :class:`TaskOutcome`: the value, the wall time of the call,
and — if the call raised — the exception's type, message and a traceback summary instead of raising, so one failing
task never stops the others.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import refimpl

__all__ = ["Task", "TaskOutcome", "seed_from_key", "resolve", "execute", "task_hash"]


def seed_from_key(key: str) -> int:
    r"""The seed of the task with this key: the first 8 bytes of SHA-256(``"refimpl-sweep-seed\0" + key``) as an
    unsigned little-endian integer, shifted right by one (a non-negative int64, accepted by
    :func:`numpy.random.default_rng` and by every NumPy seeding API).

    Derived from the key alone, so it does not depend on the task's position in a sweep, on the worker, or on the
    other tasks (a seed drawn from one generator in submission order would)."""
    if not isinstance(key, str) or not key:
        raise TypeError(f"key must be a non-empty string, got {key!r}")
    digest = hashlib.sha256(b"refimpl-sweep-seed\0" + key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _check_json_able(value, where: str):
    """Raise TypeError (naming ``where``) unless ``value`` is made of None, bool, int, finite float, str, lists/tuples
    and string-keyed dicts; return it with tuples kept (JSON writes them as lists)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where}: non-finite float {value!r} has no canonical JSON form")
        return value
    if isinstance(value, (list, tuple)):
        for k, v in enumerate(value):
            _check_json_able(v, f"{where}[{k}]")
        return value
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: dict keys must be strings, got {k!r}")
            _check_json_able(v, f"{where}[{k!r}]")
        return value
    raise TypeError(f"{where}: {type(value).__name__} is not JSON-able data (use None, bool, int, float, str, "
                    "lists and string-keyed dicts; pass objects by name and rebuild them in the task)")


@dataclass(frozen=True)
class Task:
    """One independent unit of a sweep.

    ``key``     unique, human-readable name within the sweep (``"neural_ode_oscillations/linear/N=64/rk4"``): reported
                with failures, used for the seed.
    ``target``  ``"package.module:function"``; the function is called as ``function(*args, **kwargs)``.
    ``args``, ``kwargs``  JSON-able data (see the module docstring).
    ``cost``    an estimate of the call's wall time in seconds (for planning and core-hour estimates only; not part of
                the hash), or None.

    Build with :meth:`make` to pass ``seed=`` derived from the key.
    """

    key: str
    target: str
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    cost: float | None = None

    def __post_init__(self):
        if not isinstance(self.key, str) or not self.key:
            raise TypeError(f"key must be a non-empty string, got {self.key!r}")
        if not isinstance(self.target, str) or self.target.count(":") != 1 or not all(self.target.split(":")):
            raise ValueError(f"target must be 'package.module:function', got {self.target!r}")
        if not isinstance(self.args, tuple):
            raise TypeError(f"args must be a tuple, got {type(self.args).__name__}")
        if not isinstance(self.kwargs, Mapping):
            raise TypeError(f"kwargs must be a mapping, got {type(self.kwargs).__name__}")
        _check_json_able(self.args, "args")
        _check_json_able(dict(self.kwargs), "kwargs")
        if self.cost is not None and (not isinstance(self.cost, (int, float)) or not self.cost >= 0
                                      or not math.isfinite(self.cost)):
            raise ValueError(f"cost must be a finite number ≥ 0 (seconds) or None, got {self.cost!r}")

    @classmethod
    def make(cls, key: str, target: str, *args, seeded: bool = False, cost: float | None = None, **kwargs) -> "Task":
        """``Task(key, target, args, kwargs, cost)``; with ``seeded=True`` the call also receives
        ``seed=seed_from_key(key)`` (visible in ``kwargs``, so it is part of the hash)."""
        if seeded:
            if "seed" in kwargs:
                raise ValueError("seed: pass either seeded=True or an explicit seed=, not both")
            kwargs["seed"] = seed_from_key(key)
        return cls(key, target, tuple(args), kwargs, cost)

    def __hash__(self):  # kwargs is a dict: hash the canonical text instead of the fields
        return hash(self.canonical())

    @property
    def seed(self) -> int:
        """:func:`seed_from_key` of this task's key."""
        return seed_from_key(self.key)

    def canonical(self) -> str:
        """The canonical JSON text the hash is taken of (sorted keys, no whitespace, floats by ``repr``)."""
        return json.dumps({"key": self.key, "target": self.target, "args": list(self.args),
                           "kwargs": dict(self.kwargs), "refimpl": refimpl.__version__},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

    @property
    def hash(self) -> str:
        """SHA-256 hex digest of :meth:`canonical`: the name of the task's result file."""
        return task_hash(self)


def task_hash(task: Task) -> str:
    """SHA-256 hex digest of ``task.canonical()``."""
    return hashlib.sha256(task.canonical().encode("ascii")).hexdigest()


def resolve(target: str) -> Callable:
    """The function named ``"package.module:function"`` (attribute path after the colon may be dotted)."""
    module_name, _, qualname = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"target {target!r} is not callable")
    return obj


@dataclass(frozen=True)
class TaskOutcome:
    """What running a task produced: ``value`` (None if it raised), ``seconds`` (wall time of the call where it ran),
    ``error`` (None, or ``"ExceptionType: message"``), ``traceback`` (the formatted traceback's last frames, or None),
    ``worker`` (``host:pid`` that ran it), ``cpu_seconds`` (CPU time of the worker process during the call, all its
    threads: less sensitive than ``seconds`` to other load on a shared machine)."""

    key: str
    hash: str
    value: Any
    seconds: float
    error: str | None = None
    traceback: str | None = None
    worker: str = ""
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """One line: ``key: ExceptionType: message`` (failures) or ``key: ok (1.2 s)``."""
        return f"{self.key}: {self.error}" if self.error else f"{self.key}: ok ({self.seconds:.2f} s)"


#: how many innermost frames a failure's traceback summary keeps
TRACEBACK_FRAMES = 6


def execute(task: Task, sys_path: tuple = ()) -> TaskOutcome:
    """Run ``task`` here: resolve its target, call it, time it; an exception becomes a failed :class:`TaskOutcome`
    (type, message, the last :data:`TRACEBACK_FRAMES` frames), never a raise — so a sweep reports it with its key and
    the other tasks complete. ``sys_path``: folders to put on ``sys.path`` first if they exist here (e.g. the source
    checkout holding ``validation/``, for workers started elsewhere)."""
    import sys

    for folder in sys_path:
        if folder not in sys.path and os.path.isdir(folder):
            sys.path.insert(0, folder)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    digest = task.hash
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        value = resolve(task.target)(*task.args, **dict(task.kwargs))
    except Exception as exc:  # noqa: BLE001 - reported with the task's key, the sweep goes on
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-TRACEBACK_FRAMES))
        return TaskOutcome(task.key, digest, None, time.perf_counter() - t0,
                           f"{type(exc).__name__}: {exc}", tb, worker, time.process_time() - c0)
    return TaskOutcome(task.key, digest, value, time.perf_counter() - t0, None, None, worker,
                       time.process_time() - c0)
