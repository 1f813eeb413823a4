"""One execution seam for every sweep (docs/sweeps.md).

A sweep is a list of :class:`Task` — pure data: a key, a function named by import path, JSON-able arguments, a seed
derived from the key — run by :func:`run_sweep` on any :class:`concurrent.futures.Executor`: in this process
(:class:`SerialExecutor`, the default), on local processes (:func:`local_processes`), or on a ``dask.distributed``
cluster (:func:`dask_executor`; optional extra ``refimpl[distributed]``). Outcomes come back in task order, each
success is stored atomically under the task's hash (so ``resume`` recomputes only what is missing), a task that raises
is reported with its key and traceback while the others complete.

``python -m refimpl validate`` and ``python -m refimpl cases export`` run through it (``--workers N``,
``--scheduler ADDRESS`` or ``REFIMPL_SCHEDULER``, ``--resume``). Benchmarks do not: their timings must not share the
machine.
"""
from refimpl.sweep.estimate import SweepEstimate, estimate
from refimpl.sweep.executors import (DASK_MISSING, SCHEDULER_ENV, LocalProcesses, SerialExecutor, dask_executor,
                                     local_processes, open_executor)
from refimpl.sweep.progress import ProgressBar
from refimpl.sweep.results import ResultStore
from refimpl.sweep.runner import SweepFailed, SweepResult, run_sweep
from refimpl.sweep.task import Task, TaskOutcome, execute, seed_from_key

__all__ = ["Task", "TaskOutcome", "execute", "seed_from_key", "run_sweep", "SweepResult", "SweepFailed",
           "ResultStore", "ProgressBar", "SerialExecutor", "LocalProcesses", "local_processes", "dask_executor",
           "open_executor", "SCHEDULER_ENV", "DASK_MISSING", "estimate", "SweepEstimate"]
