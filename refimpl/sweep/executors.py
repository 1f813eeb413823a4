"""The executors a sweep runs on — anything with the :class:`concurrent.futures.Executor` interface:

* :class:`SerialExecutor` — in this process, one task at a time (the default; no dependency, no pickling);
* :func:`local_processes` — a :class:`~concurrent.futures.ProcessPoolExecutor` of ``N`` fresh processes;
* :func:`dask_executor` — a ``dask.distributed`` cluster at an address (``Client(address).get_executor()``), from the
  optional extra ``refimpl[distributed]``.

:func:`open_executor` picks one from the CLI's options (``--workers N``, ``--scheduler ADDRESS``, or the environment
variable :data:`SCHEDULER_ENV`).

Local processes are **spawned**, not forked: a fork copies a parent that may hold Numba's threading-layer state, an
OpenMP/TBB pool or BLAS threads mid-operation, and a child of such a fork can deadlock; a spawned child starts a fresh
interpreter and imports what the task needs. Each worker, when it starts, pins its BLAS pool to one thread (as the CLI
does, so tiny matrix operations give the same bits as a serial run), gives Numba ``cores // workers`` threads, and
warms the compiled kernels once under the cache lock (:mod:`refimpl.sweep.numba_cache`). Dask workers are warmed the
same way by a worker plugin, including workers that join or restart later.
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import Executor, Future, ProcessPoolExecutor

__all__ = ["SerialExecutor", "LocalProcesses", "local_processes", "dask_executor", "open_executor", "SCHEDULER_ENV",
           "DASK_MISSING", "worker_setup"]

#: environment variable naming a dask scheduler address, used when ``--scheduler`` is not given
SCHEDULER_ENV = "REFIMPL_SCHEDULER"

#: what ``--scheduler`` prints when dask.distributed is not installed
DASK_MISSING = ("--scheduler needs dask.distributed, which is not installed: "
                "pip install 'refimpl[distributed]'  (or: pip install 'dask[distributed]')")


class SerialExecutor(Executor):
    """Runs each submitted call at once, in this process, and returns an already-completed future.

    A sweep on it submits one task at a time (:attr:`max_pending` = 1), so each result is stored before the next task
    starts — an interrupted serial run loses at most the task it was in."""

    max_pending = 1

    def __init__(self):
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if self._shutdown:
            raise RuntimeError("cannot submit to a SerialExecutor after shutdown")
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - a future carries the exception, as every executor's does
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True


def worker_setup(numba_threads: int | None = None, warm: bool = True) -> None:
    """What every worker process does once when it starts: one BLAS thread (unless the environment says otherwise),
    ``numba_threads`` Numba threads (if given; before Numba is imported), and — with ``warm`` — the compiled kernels
    warmed under the cache lock (:func:`refimpl.sweep.numba_cache.warm_kernels`)."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if numba_threads is not None:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(int(numba_threads)))
    if warm:
        from refimpl.sweep.numba_cache import warm_kernels

        warm_kernels()


class LocalProcesses(Executor):
    """A pool of ``workers`` spawned processes (:class:`~concurrent.futures.ProcessPoolExecutor`), each set up by
    :func:`worker_setup` — Numba threads: the machine's cores divided among the workers, at least one.

    A worker that dies (killed, out of memory) breaks a ``ProcessPoolExecutor`` for good; :meth:`restart` replaces the
    pool, which the sweep runner does before it resubmits the tasks that were lost."""

    def __init__(self, workers: int, *, warm: bool = True):
        if isinstance(workers, bool) or not isinstance(workers, int):
            raise TypeError(f"workers must be an int, got {type(workers).__name__}")
        if workers < 1:
            raise ValueError(f"workers must be ≥ 1, got {workers}")
        self.workers, self.warm = workers, warm
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=worker_setup, initargs=(threads, self.warm))

    def submit(self, fn, /, *args, **kwargs) -> Future:
        return self._pool.submit(fn, *args, **kwargs)

    def restart(self) -> None:
        """Shut the current pool down (without waiting for a broken one) and start a fresh one."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def local_processes(workers: int, *, warm: bool = True) -> LocalProcesses:
    """:class:`LocalProcesses` of ``workers`` spawned processes."""
    return LocalProcesses(workers, warm=warm)


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(DASK_MISSING) from exc
    return distributed


def dask_executor(client, *, retries: int = 2, warm: bool = True):
    """An Executor over a ``dask.distributed`` client: ``client.get_executor(retries=retries, pure=False)``.

    ``retries``: how often dask re-runs a task whose worker was lost (a task's own exception never reaches dask: it is
    a failed :class:`~refimpl.sweep.task.TaskOutcome`). The scheduler also reschedules the tasks of a lost worker by
    itself (``distributed.scheduler.allowed-failures``). With ``warm``, a worker plugin runs :func:`worker_setup` on
    every worker, present and future."""
    distributed = _distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int ≥ 0, got {retries!r}")
    if warm:
        client.register_plugin(_WarmPlugin(distributed), name="refimpl-warm-kernels")
    return client.get_executor(retries=retries, pure=False)


def _WarmPlugin(distributed):
    class WarmKernels(distributed.WorkerPlugin):
        """Warm refimpl's compiled kernels once per worker process (under the Numba cache lock)."""

        def setup(self, worker):
            worker_setup(None, True)

    return WarmKernels()


@contextlib.contextmanager
def open_executor(workers: int | None = None, scheduler: str | None = None, *, warm: bool = True):
    """The executor for the CLI's options, as a context manager that shuts it down (and closes a dask client) on exit.

    ``scheduler`` (or, when it and ``workers`` are None, the environment variable :data:`SCHEDULER_ENV`): a dask
    scheduler address (``tcp://host:8786``); ``workers``: a local pool of that many processes; neither: serial. Raises
    ImportError with :data:`DASK_MISSING` when a scheduler is asked for and dask.distributed is not installed."""
    if workers is not None and scheduler is not None:
        raise ValueError("workers/scheduler: give at most one of --workers and --scheduler")
    if scheduler is None and workers is None:
        scheduler = os.environ.get(SCHEDULER_ENV) or None
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise ValueError(f"scheduler must be an address such as tcp://host:8786, got {scheduler!r}")
        distributed = _distributed()
        client = distributed.Client(scheduler)
        try:
            yield dask_executor(client, warm=warm)
        finally:
            client.close()
        return
    if workers is None:
        yield SerialExecutor()
        return
    pool = local_processes(workers, warm=warm)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
