"""`validate` and `cases export` through the sweep: the same bytes serially, on local processes and on a dask
LocalCluster (report tables with the wall-clock text masked — validation/walltime.py — plots, and exported cases);
resume recomputes only missing tasks; --scheduler without dask says what to install.

The default run validates a subset (ad_selfcheck and wasserstein_flows, quick); the whole quick report is compared in
the slow test."""
import contextlib
import io
import sys
from pathlib import Path

import pytest

from refimpl import cli
from refimpl.oracle.battery import export_battery
from refimpl.sweep import local_processes

sys.path.insert(0, str(cli.REPO_ROOT))
from validation.walltime import (CLOSE, OPEN, mask_wall_times, report_differences, report_snapshot,  # noqa: E402
                                 unmarked, wall)

SUBSET = ["ad_selfcheck", "wasserstein_flows"]

try:
    import distributed
except ImportError:  # the optional extra: pip install 'refimpl[distributed]'
    distributed = None
needs_dask = pytest.mark.skipif(distributed is None, reason="dask.distributed is not installed "
                                                             "(pip install 'refimpl[distributed]')")


def snapshot(folder: Path) -> dict:
    """The report as compared: markdown with wall-clock text masked, PNG bytes (validation.walltime.report_snapshot)."""
    return report_snapshot(folder)


def files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_validate(out, **kw):
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        code = cli.validate(out, only=kw.pop("only", SUBSET), profile=kw.pop("profile", "quick"),
                            stream=io.StringIO(), **kw)
    return code, stdout.getvalue()


@pytest.fixture(scope="module")
def serial_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    code, _ = run_validate(out)
    assert code == 0
    return out, snapshot(out)


@pytest.fixture(scope="module")
def serial_cases(tmp_path_factory):
    out = tmp_path_factory.mktemp("cases-serial")
    export_battery(out, quick=True)
    return files(out)


@pytest.fixture(scope="module")
def pool():
    with local_processes(2) as executor:
        yield executor


@pytest.fixture(scope="module")
def cluster_executor():
    """A LocalCluster of two worker processes (one thread each) and the sweep's executor on it."""
    if distributed is None:
        pytest.skip("dask.distributed is not installed (pip install 'refimpl[distributed]')")
    from refimpl.sweep import open_executor

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        with open_executor(scheduler=c.scheduler_address) as executor:
            yield executor


def test_wall_markers_mask_only_the_marked_text(tmp_path):
    text = f"a {wall('1.2 s')} b | {wall('PASS')} |"
    assert mask_wall_times(text) == f"a {OPEN}…{CLOSE} b | {OPEN}…{CLOSE} |"
    assert unmarked(text) == "a 1.2 s b | PASS |"
    assert mask_wall_times(text.replace("1.2", "9.9")) == mask_wall_times(text)
    for folder, body in (("a", "x"), ("b", "x"), ("c", "y")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "index.md").write_text(f"{body} {wall(folder)}")
    assert report_differences(tmp_path / "a", tmp_path / "b") == []  # only the wall-clock text differs
    assert report_differences(tmp_path / "a", tmp_path / "c") == ["index.md"]
    with pytest.raises(ValueError, match="marker"):
        wall(wall("x"))


def test_the_report_marks_its_wall_times(serial_report):
    out, snap = serial_report
    index = (out / "index.md").read_text(encoding="utf-8")
    assert index.count(OPEN) == len(SUBSET)  # one per section line, "(… s of task time)"
    flows = (out / "wasserstein_flows.md").read_text(encoding="utf-8")
    assert flows.count(OPEN) == 6  # the Numba-vs-NumPy timings: 2 kernels × (NumPy s, Numba s, speed-up)
    assert set(snap) >= {"index.md", "ad_selfcheck.md", "wasserstein_flows.md", "wasserstein_gaussian_kl.png"}


def test_report_and_cases_are_identical_on_local_processes(serial_report, serial_cases, pool, tmp_path):
    code, _ = run_validate(tmp_path / "report", executor=pool)
    assert code == 0
    assert snapshot(tmp_path / "report") == serial_report[1]
    export_battery(tmp_path / "cases", quick=True, executor=pool)
    assert files(tmp_path / "cases") == serial_cases


@needs_dask
def test_report_and_cases_are_identical_on_a_local_cluster(serial_report, serial_cases, cluster_executor, tmp_path):
    code, _ = run_validate(tmp_path / "report", executor=cluster_executor)
    assert code == 0
    assert snapshot(tmp_path / "report") == serial_report[1]
    export_battery(tmp_path / "cases", quick=True, executor=cluster_executor)
    assert files(tmp_path / "cases") == serial_cases


def test_resume_recomputes_only_the_missing_tasks(serial_report, tmp_path):
    from validation.experiment import experiment_tasks

    out, snap = serial_report
    results = out / "sweep-results"
    stored = sorted(results.glob("*.pkl"))
    assert len(stored) == 1 + 9  # ad_selfcheck: one task; wasserstein_flows: one per section
    tasks = {t.key: t for name in SUBSET for t in experiment_tasks(name, "quick")}
    missing = {tasks[k].hash for k in ("ad_selfcheck/run", "wasserstein_flows/kernels")}  # two cheap ones
    copy = tmp_path / "results"
    copy.mkdir()
    for p in stored:  # as if the run had been interrupted before those two tasks finished
        if p.stem not in missing:
            (copy / p.name).write_bytes(p.read_bytes())
    code, stdout = run_validate(tmp_path, resume=True, results=copy)
    assert code == 0 and f"reused {len(stored) - 2} task results" in stdout and "computed 2" in stdout
    assert sorted(p.name for p in copy.glob("*.pkl")) == [p.name for p in stored]  # the two are stored now
    assert snapshot(tmp_path) == snap


def test_scheduler_without_dask_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code = cli.main(["validate", "--only", "ad_selfcheck", "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2
    assert "pip install 'refimpl[distributed]'" in capsys.readouterr().err
    monkeypatch.setenv("REFIMPL_SCHEDULER", "tcp://127.0.0.1:9")  # the environment variable asks for dask too
    assert cli.main(["cases", "export", str(tmp_path / "c"), "--quick"]) == 2
    assert "dask.distributed" in capsys.readouterr().err


def test_large_profile_prints_its_size_before_running(capsys):
    assert cli.main(["validate", "--profile", "large", "--dry-run"]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert "tasks (large profile)" in last and "core-hours" in last
    n_large = int(last.split()[0])
    assert cli.main(["validate", "--dry-run"]) == 0
    n_full = int(capsys.readouterr().out.strip().splitlines()[-1].split()[0])
    assert n_large > 3 * n_full


@pytest.mark.slow
def test_whole_quick_report_is_identical_serial_and_on_local_processes(tmp_path):
    a, b = tmp_path / "serial", tmp_path / "workers"
    assert run_validate(a, only=None)[0] == 0
    assert run_validate(b, only=None, workers=2)[0] == 0
    assert snapshot(a) == snapshot(b) and report_differences(a, b) == []


def test_a_failing_task_fails_its_experiment_with_the_key_and_the_others_complete(monkeypatch, tmp_path, capsys):
    import types

    import validation
    from refimpl.sweep import Task

    fake = types.ModuleType("validation.sweep_fake")  # an experiment whose second task raises
    fake.ok = lambda: 1
    fake.broken = lambda: 1 / 0
    fake.tasks = lambda profile: [Task.make("sweep_fake/ok", "validation.sweep_fake:ok"),
                                  Task.make("sweep_fake/broken", "validation.sweep_fake:broken")]
    fake.assemble = lambda outdir, profile, values, seconds: []
    monkeypatch.setitem(sys.modules, "validation.sweep_fake", fake)
    monkeypatch.setattr(validation, "sweep_fake", fake, raising=False)
    monkeypatch.setattr(validation, "EXPERIMENTS", validation.EXPERIMENTS + ["sweep_fake"])
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = cli.validate(tmp_path, only=["ad_selfcheck", "sweep_fake"], profile="quick", stream=io.StringIO())
    assert code == 1
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert ("| FAIL | sweep_fake | sweep_fake | experiment runs to completion | "
            "sweep_fake/broken: ZeroDivisionError: division by zero |") in index
    assert "sweep_fake/broken: ZeroDivisionError: division by zero" in (tmp_path / "sweep_fake.md").read_text()
    assert "| PASS | ad_selfcheck |" in index  # the other experiment completed
    err = stderr.getvalue()
    assert "1 task(s) failed" in err and "sweep_fake/broken: ZeroDivisionError" in err and "1 / 0" in err
