"""A dask worker killed mid-sweep: the scheduler reschedules its tasks (and the executor's retries cover them), the
sweep completes, and its outcomes are those of a serial run. Skipped without the optional extra [distributed]."""
import os
import signal
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed "
                                                        "(pip install 'refimpl[distributed]')")

from refimpl.sweep import Task, dask_executor, run_sweep  # noqa: E402

HERE = Path(__file__).resolve().parent


class KillAfter:
    """A progress sink that, once ``after`` tasks are done, SIGKILLs the worker process ``pid`` (from a thread, so the
    sweep's collection loop keeps running)."""

    def __init__(self, after, pid):
        self.after, self.pid, self.done, self.failed = after, pid, 0, 0
        self.killed_at = None

    def update(self, done=1, failed=0):
        self.done += done
        self.failed += failed
        if self.killed_at is None and self.done >= self.after:
            self.killed_at = self.done
            threading.Thread(target=os.kill, args=(self.pid, signal.SIGKILL)).start()


def test_a_killed_dask_worker_loses_no_task():
    tasks = [Task.make(f"toy/draw/{k}", "sweep_toy_tasks:draw", 4, delay=0.3, seeded=True) for k in range(12)]
    serial = run_sweep(tasks)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        client.run(lambda: __import__("sys").path.insert(0, str(HERE)))
        pids = client.run(os.getpid)  # {worker address: pid}
        victim = sorted(pids.values())[0]
        sink = KillAfter(2, victim)
        t0 = time.perf_counter()
        result = run_sweep(tasks, dask_executor(client, warm=False), progress=sink, sys_path=[str(HERE)])
        elapsed = time.perf_counter() - t0
        assert sink.killed_at is not None and sink.killed_at < len(tasks)  # the kill happened mid-sweep
        assert victim not in client.run(os.getpid).values()  # that process is gone (the nanny started another)
    assert result.ok, result.failure_report()
    assert result.values() == serial.values()
    assert elapsed < 60
