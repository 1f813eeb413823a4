"""The sweep seam (refimpl.sweep): tasks as data, outcomes in task order on every executor, failures reported with
their key, atomic per-task results and resume, a lost local worker, the progress bar, the estimate."""
import io
import pickle
from pathlib import Path

import numpy as np
import pytest

from refimpl.sweep import (ProgressBar, ResultStore, SerialExecutor, SweepFailed, Task, estimate, local_processes,
                           run_sweep, seed_from_key)
from refimpl.sweep.estimate import lpt_makespan

HERE = Path(__file__).resolve().parent
TOY = "sweep_toy_tasks"


def draws(n_tasks=6, delay=0.0, log=None):
    return [Task.make(f"toy/draw/{k}", f"{TOY}:draw", 3, delay=delay, log=log, seeded=True)
            for k in range(n_tasks)]


# ---------------------------------------------------------------------------------------------------------------------
# tasks


def test_task_seed_is_a_function_of_the_key_alone():
    a = Task.make("exp/x/1", f"{TOY}:draw", 3, seeded=True)
    b = Task.make("exp/x/1", f"{TOY}:draw", 5, seeded=True, cost=2.0)
    assert a.kwargs["seed"] == b.kwargs["seed"] == seed_from_key("exp/x/1") == a.seed
    assert seed_from_key("exp/x/2") != a.seed
    assert 0 <= a.seed < 2 ** 63  # a non-negative int64: every NumPy seeding API takes it
    # the derivation is the documented one: SHA-256 of the tagged key, first 8 bytes little-endian, shifted by one
    import hashlib
    digest = hashlib.sha256(b"refimpl-sweep-seed\0exp/x/1").digest()
    assert a.seed == int.from_bytes(digest[:8], "little") >> 1


def test_task_hash_covers_key_target_and_arguments_but_not_the_cost():
    base = Task.make("k", "m:f", 1, x=2.5)
    assert base.hash == Task.make("k", "m:f", 1, x=2.5, cost=9.0).hash
    assert len({base.hash, Task.make("k2", "m:f", 1, x=2.5).hash, Task.make("k", "m:g", 1, x=2.5).hash,
                Task.make("k", "m:f", 2, x=2.5).hash, Task.make("k", "m:f", 1, x=2.25).hash}) == 5
    assert pickle.loads(pickle.dumps(base)) == base and pickle.loads(pickle.dumps(base)).hash == base.hash
    assert len({base, Task.make("k", "m:f", 1, x=2.5)}) == 1  # usable in sets and as dict keys


def test_task_rejects_what_cannot_be_hashed_or_shipped():
    with pytest.raises(TypeError, match="args"):
        Task.make("k", "m:f", np.zeros(2))
    with pytest.raises(TypeError, match="kwargs"):
        Task.make("k", "m:f", f=lambda: 0)
    with pytest.raises(TypeError, match="non-finite"):
        Task.make("k", "m:f", float("nan"))
    with pytest.raises(ValueError, match="target"):
        Task.make("k", "module.function")
    with pytest.raises(TypeError, match="key"):
        Task.make("", "m:f")
    with pytest.raises(ValueError, match="seed"):
        Task.make("k", "m:f", seed=1, seeded=True)
    with pytest.raises(ValueError, match="twice"):
        run_sweep([Task.make("k", "m:f"), Task.make("k", "m:g")])


# ---------------------------------------------------------------------------------------------------------------------
# running


def test_serial_and_local_processes_give_the_same_outcomes_in_task_order():
    tasks = draws(6, delay=0.05)
    serial = run_sweep(tasks)
    with local_processes(2, warm=False) as pool:
        parallel = run_sweep(tasks, pool, sys_path=[HERE])
    assert [o.key for o in serial.outcomes] == [t.key for t in tasks] == [o.key for o in parallel.outcomes]
    assert serial.values() == parallel.values()
    # each value is the task's own seeded draw (independent route: NumPy directly)
    for t, o in zip(tasks, serial.outcomes):
        assert o.value == np.random.default_rng(seed_from_key(t.key)).standard_normal(3).tolist()
    assert len({o.worker for o in parallel.outcomes}) >= 1 and all(o.worker for o in parallel.outcomes)


def test_a_failing_task_is_reported_with_its_key_and_the_others_complete(tmp_path):
    tasks = draws(3) + [Task.make("toy/fails", f"{TOY}:fail_unless", str(tmp_path / "never"), 1)] + draws(5)[3:]
    result = run_sweep(tasks)
    assert [o.ok for o in result.outcomes] == [True, True, True, False, True, True]
    (failure,) = result.failures
    assert failure.key == "toy/fails" and failure.error == "ValueError: marker never missing"
    assert "fail_unless" in failure.traceback and "raise ValueError" in failure.traceback
    assert "toy/fails: ValueError: marker never missing" in result.failure_report()
    with pytest.raises(SweepFailed, match="toy/fails"):
        result.values()


def test_results_are_written_per_task_and_resume_recomputes_only_what_is_missing(tmp_path):
    log = tmp_path / "calls.log"
    marker = tmp_path / "go"
    tasks = draws(5, log=str(log))
    tasks.insert(3, Task.make("toy/interrupt", f"{TOY}:interrupt_unless", str(marker), 7))
    with pytest.raises(KeyboardInterrupt):  # the user interrupts the sweep at its fourth task
        run_sweep(tasks, results=tmp_path / "res")
    stored = sorted(p.name for p in (tmp_path / "res").glob("*.pkl"))
    assert stored == sorted(f"{t.hash}.pkl" for t in tasks[:3])  # finished tasks are on disk, nothing else
    assert not list((tmp_path / "res").glob("*.tmp"))  # no temporary file left behind
    marker.touch()
    resumed = run_sweep(tasks, results=tmp_path / "res", resume=True)
    assert (resumed.reused, resumed.computed) == (3, 3) and resumed.ok
    calls = log.read_text().split()
    assert len(calls) == 5 and len(set(calls)) == 5  # every draw ran exactly once over both runs
    fresh = run_sweep(tasks)
    assert resumed.values() == fresh.values()
    # a damaged result file counts as missing and is recomputed
    ResultStore(tmp_path / "res").path(tasks[0]).write_bytes(b"truncated")
    again = run_sweep(tasks, results=tmp_path / "res", resume=True)
    assert (again.reused, again.computed) == (5, 1) and again.values() == fresh.values()
    with pytest.raises(ValueError, match="resume"):
        run_sweep(tasks, resume=True)


def test_a_killed_local_worker_loses_no_task(tmp_path):
    tasks = draws(6, delay=0.05)
    tasks.insert(2, Task.make("toy/dies", f"{TOY}:die_once", str(tmp_path / "died"), 11))
    with local_processes(2, warm=False) as pool:
        result = run_sweep(tasks, pool, sys_path=[HERE])
    assert (tmp_path / "died").exists()  # the worker really was killed
    assert result.ok and "toy/dies" in result.retried
    assert result.values() == run_sweep(tasks).values()


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from refimpl.sweep import results

    target = tmp_path / "r.pkl"
    results.atomic_write_bytes(target, b"old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        results.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["r.pkl"]


def test_serial_executor_runs_each_task_before_the_next_is_submitted():
    ex = SerialExecutor()
    assert ex.submit(lambda: 3).result() == 3
    assert isinstance(ex.submit(lambda: 1 / 0).exception(), ZeroDivisionError)
    ex.shutdown()
    with pytest.raises(RuntimeError):
        ex.submit(lambda: 1)


def test_progress_bar_counts_done_and_failed():
    stream = io.StringIO()  # not a terminal: a line per 5 % step, per failure, and at the end
    bar = ProgressBar(4, "tasks", stream)
    run_sweep(draws(3) + [Task.make("toy/fails", f"{TOY}:fail_unless", "/nonexistent/marker", 1)], progress=bar)
    lines = stream.getvalue().splitlines()
    assert [line.split("]")[1].split()[0] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert lines[-1].count("#") == 20 and "failed 1" in lines[-1] and "failed" not in lines[-2]


# ---------------------------------------------------------------------------------------------------------------------
# the estimate


def test_estimate_amdahl_and_list_schedule():
    durations = [4.0, 3.0, 3.0, 2.0, 2.0, 2.0]  # W = 16
    est = estimate(durations, serial=1.0, workers=(1, 2, 3, 100))
    rows = {P: (a, b, l) for P, a, b, l in est.rows}
    assert est.parallel_share == pytest.approx(16 / 17)
    assert rows[1] == (17.0, 17.0, 17.0)
    # LPT by hand, longest first to the least-loaded worker: 2 workers 4+2+2 | 3+3+2 = 8; 3 workers 4+2 | 3+2 | 3+2 = 6
    assert rows[2][0] == 9.0 and rows[2][2] == 1.0 + 8.0
    assert rows[3][2] == 1.0 + 6.0
    assert rows[100][1] == rows[100][2] == 1.0 + 4.0  # the longest task is the floor
    assert lpt_makespan([], 4) == 0.0
    with pytest.raises(ValueError, match="durations"):
        estimate([-1.0])


def test_tasks_are_submitted_longest_first_and_collected_in_task_order():
    from refimpl.sweep.runner import submission_order

    costs = [1.0, None, 5.0, 2.0, 5.0]
    tasks = [Task.make(f"t/{k}", "builtins:abs", -k, cost=c) for k, c in enumerate(costs)]
    # unestimated first, then decreasing cost, ties (5.0, 5.0) in task order
    assert submission_order(tasks, range(5)) == [1, 2, 4, 3, 0]
    submitted = []

    class Recording(SerialExecutor):
        def submit(self, fn, task, *args):
            submitted.append(task.key)
            return super().submit(fn, task, *args)

    result = run_sweep(tasks, Recording())
    assert submitted == ["t/1", "t/2", "t/4", "t/3", "t/0"]
    assert [o.key for o in result.outcomes] == [t.key for t in tasks]
    assert list(result.values().items()) == [(f"t/{k}", k) for k in range(5)]
