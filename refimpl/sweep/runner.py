"""Run a task list on any executor; collect the outcomes in task order.

:func:`run_sweep` submits :func:`~refimpl.sweep.task.execute` for each task to the executor, takes the futures as
they complete (storing each success in the results directory at once, drawing the progress bar), and returns a
:class:`SweepResult` whose outcomes are in *task order* — so whatever assembles a report from them reads the same
values in the same order on every executor, and the report is byte-identical.

Failures come in two kinds. A task whose function raises is a failed :class:`~refimpl.sweep.task.TaskOutcome` (key,
exception, traceback summary); the others run on. A task whose *worker* was lost (a killed process breaks a local
pool; a dask worker that dies after dask's own retries) is resubmitted on a restarted executor, up to
``lost_retries`` rounds, and reported as failed only if it is still lost after that.

Submission order (:func:`submission_order`) is longest first by ``Task.cost`` (tasks without an estimate before all
others, in task order): the longest-processing-time rule, whose makespan on m workers is at most 4/3 − 1/(3m) times
the optimum (Graham 1969), where task order can leave one long task to run alone at the end. It changes when a task
runs, never what it computes or where its outcome is stored.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import CancelledError, FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path

from refimpl.sweep.executors import SerialExecutor
from refimpl.sweep.results import ResultStore
from refimpl.sweep.task import Task, TaskOutcome, execute

__all__ = ["run_sweep", "submission_order", "SweepResult", "SweepFailed"]


class SweepFailed(RuntimeError):
    """Raised by :meth:`SweepResult.values` when some task failed; the message lists each key and error."""


@dataclass
class SweepResult:
    """The outcome of every task, in task order; how many were ``computed`` and how many ``reused`` from the results
    directory; ``seconds`` of wall time of the sweep."""

    tasks: list
    outcomes: list
    computed: int = 0
    reused: int = 0
    seconds: float = 0.0
    retried: list = field(default_factory=list)

    @property
    def failures(self) -> list:
        """The failed outcomes, in task order."""
        return [o for o in self.outcomes if not o.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    def failure_report(self) -> str:
        """Each failure: ``key: ExceptionType: message`` and its indented traceback summary."""
        out = []
        for o in self.failures:
            out.append(o.summary())
            if o.traceback:
                out += ["    " + line for line in o.traceback.rstrip().splitlines()]
        return "\n".join(out)

    def values(self) -> dict:
        """{key: value} in task order; raises :class:`SweepFailed` listing the failures if any task failed."""
        if not self.ok:
            raise SweepFailed(f"{len(self.failures)} of {len(self.tasks)} tasks failed:\n" + self.failure_report())
        return {o.key: o.value for o in self.outcomes}

    def durations(self) -> dict:
        """{key: seconds} of each task's call where it ran (reused results keep their original duration)."""
        return {o.key: o.seconds for o in self.outcomes}

    def __repr__(self):
        return (f"SweepResult({len(self.tasks)} tasks: {self.computed} computed, {self.reused} reused, "
                f"{len(self.failures)} failed; {self.seconds:.1f} s)")


def _check_tasks(tasks) -> list:
    tasks = list(tasks)
    seen = {}
    for k, t in enumerate(tasks):
        if not isinstance(t, Task):
            raise TypeError(f"tasks[{k}] must be a Task, got {type(t).__name__}")
        if t.key in seen:
            raise ValueError(f"tasks: key {t.key!r} appears twice (positions {seen[t.key]} and {k})")
        seen[t.key] = k
    return tasks


def run_sweep(tasks, executor=None, *, results=None, resume: bool = False, progress=None, sys_path=(),
              lost_retries: int = 2) -> SweepResult:
    """Run ``tasks`` (a list of :class:`Task`, unique keys) on ``executor`` (any
    :class:`concurrent.futures.Executor`; default :class:`SerialExecutor`).

    ``results``  a folder: each successful outcome is written there atomically as it completes
                 (:class:`~refimpl.sweep.results.ResultStore`); None stores nothing.
    ``resume``   reuse the outcomes already in ``results`` and compute only the missing (or failed) tasks.
    ``progress`` a :class:`~refimpl.sweep.progress.ProgressBar` (or anything with ``update(done, failed)``).
    ``sys_path`` folders a worker puts on ``sys.path`` before importing a task's target.
    ``lost_retries`` rounds of resubmission for tasks whose worker was lost (needs ``executor.restart()`` for a
                 local pool; a dask executor resubmits as it is).
    """
    tasks = _check_tasks(tasks)
    if resume and results is None:
        raise ValueError("resume: needs a results directory (results=...)")
    if isinstance(lost_retries, bool) or not isinstance(lost_retries, int) or lost_retries < 0:
        raise ValueError(f"lost_retries must be an int ≥ 0, got {lost_retries!r}")
    executor = SerialExecutor() if executor is None else executor
    if not callable(getattr(executor, "submit", None)):
        raise TypeError(f"executor must have the concurrent.futures.Executor interface (submit), "
                        f"got {type(executor).__name__}")
    store = ResultStore(Path(results)) if results is not None else None
    t0 = time.perf_counter()
    outcomes: list = [None] * len(tasks)
    if store is not None:
        store.write_manifest(tasks)
    reused = 0
    if resume:
        for i, task in enumerate(tasks):
            outcomes[i] = store.load(task)
            reused += outcomes[i] is not None
        if progress is not None and reused:
            progress.update(reused, 0)
    todo = submission_order(tasks, [i for i, o in enumerate(outcomes) if o is None])
    sys_path = tuple(str(p) for p in sys_path)
    retried = []
    lost: dict = {}
    for attempt in range(lost_retries + 1):
        lost = _round(tasks, todo, executor, outcomes, store, progress, sys_path)
        if not lost:
            break
        retried += [tasks[i].key for i in lost]
        if attempt == lost_retries:
            break
        if hasattr(executor, "restart"):
            executor.restart()
        todo = submission_order(tasks, sorted(lost))
    for i, reason in lost.items():
        outcomes[i] = TaskOutcome(tasks[i].key, tasks[i].hash, None, 0.0, f"WorkerLost: {reason}", None, "")
        if progress is not None:
            progress.update(1, 1)
    return SweepResult(tasks, outcomes, computed=len(tasks) - reused, reused=reused,
                       seconds=time.perf_counter() - t0, retried=retried)


def submission_order(tasks, indices) -> list:
    """``indices`` (into ``tasks``) longest first: decreasing ``cost``, a task without a cost before every estimated
    one, ties in the given order (a stable sort)."""
    return sorted(indices, key=lambda i: -math.inf if tasks[i].cost is None else -float(tasks[i].cost))


def _round(tasks, todo, executor, outcomes, store, progress, sys_path) -> dict:
    """Submit ``todo`` (at most ``executor.max_pending`` in flight), collect as they complete; return {index: reason}
    of the tasks whose future failed without an outcome (worker lost, executor broken)."""
    max_pending = getattr(executor, "max_pending", None) or max(1, len(todo))
    pending, lost = {}, {}
    queue = iter(todo)

    def fill():
        while len(pending) < max_pending:
            i = next(queue, None)
            if i is None:
                return
            try:
                pending[executor.submit(execute, tasks[i], sys_path)] = i
            except Exception as exc:  # noqa: BLE001 - a broken executor refuses submissions: the task is lost
                lost[i] = f"{type(exc).__name__}: {exc}"

    fill()
    while pending:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in sorted(done, key=pending.get):
            i = pending.pop(future)
            try:
                outcome = future.result()
            except (CancelledError, Exception) as exc:  # noqa: BLE001 - infrastructure, not the task: resubmitted
                lost[i] = f"{type(exc).__name__}: {exc}"
                continue
            outcomes[i] = outcome
            if store is not None and outcome.ok:
                store.save(tasks[i], outcome)
            if progress is not None:
                progress.update(1, 0 if outcome.ok else 1)
        fill()
    return lost
