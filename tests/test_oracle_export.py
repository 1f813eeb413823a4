"""``cases export DIR`` is atomic (refimpl.oracle.battery): whatever stops the exporter — SIGKILL, SIGINT, SIGTERM at
any moment — DIR is afterwards either the old export or the complete new one; a non-empty DIR is refused without
--force and replaced whole with it; an empty path is refused; an interrupt is one line and exit 130.

"Complete" is checked from the files alone: index.json lists exactly the case folders present, every one of them loads
(schema, integrity: no torn or half-written case), README.md is there, and nothing else is (but the old export's
marker file, which tells the old export from the new one).
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from refimpl import cli
from refimpl.oracle import load_case

REPO = Path(__file__).resolve().parents[1]
MARKER = "OLD-EXPORT-MARKER"


def _exporter(target: Path, *extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "refimpl", "cases", "export", str(target), "--quick", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/"),
                                 **({"NUMBA_CACHE_DIR": os.environ["NUMBA_CACHE_DIR"]}
                                    if "NUMBA_CACHE_DIR" in os.environ else {})})


def _state(target: Path) -> str:
    """'old' or 'new' if ``target`` is a complete export (with or without the marker); fails otherwise."""
    index = json.loads((target / "index.json").read_text())
    names = index["cases"]
    entries = {p.name for p in target.iterdir()}
    extra = entries - set(names) - {"index.json", "README.md", MARKER}
    assert not extra and set(names) <= entries, (sorted(extra), sorted(set(names) - entries))
    for name in names:
        load_case(target / name)  # schema + integrity: no torn case
    return "old" if MARKER in entries else "new"


@pytest.fixture(scope="module")
def old_export(tmp_path_factory):
    """A complete export with the marker, and how long one export takes here."""
    root = tmp_path_factory.mktemp("atomic")
    target = root / "cases"
    t0 = time.perf_counter()
    proc = _exporter(target)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    (target / MARKER).write_text("old")
    return target, time.perf_counter() - t0


def _interrupt_many(target: Path, duration: float, iterations: int, seed: int):
    rng = random.Random(seed)
    outcomes = []
    for i in range(iterations):
        if _state(target) == "new":
            (target / MARKER).write_text("old")
        sig = [signal.SIGKILL, signal.SIGINT, signal.SIGTERM][i % 3]
        delay = duration * rng.uniform(0.2, 1.2)  # the writing and the swap happen in the second half
        proc = _exporter(target, "--force")
        time.sleep(delay)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=600)
        state = _state(target)
        outcomes.append((sig, state, proc.returncode))
        if proc.returncode == 0:
            assert state == "new"
        elif sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:  # before Python handles the signal the default action ends it; after, one line and 130
            assert proc.returncode in (130, -sig), (proc.returncode, err)
            if proc.returncode == 130:
                lines = [ln for ln in err.strip().splitlines() if not ln.startswith("loading Numba")]
                assert len(lines) == 1 and lines[0].startswith("interrupted") and "Traceback" not in err, err
                assert ("is complete" in lines[0]) == (state == "new"), (lines[0], state)
    # the next export removes the temporary siblings SIGKILL left behind, and completes
    proc = _exporter(target, "--force")
    assert proc.wait(timeout=600) == 0
    assert _state(target) == "new"
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    return outcomes


def test_an_interrupted_export_leaves_the_old_or_the_new_export(old_export):
    target, duration = old_export
    outcomes = _interrupt_many(target, duration, iterations=3, seed=12)
    assert {sig for sig, _, _ in outcomes} == {signal.SIGKILL, signal.SIGINT, signal.SIGTERM}


@pytest.mark.slow
def test_an_export_killed_at_many_random_moments_is_always_old_or_new(old_export):
    target, duration = old_export
    outcomes = _interrupt_many(target, duration, iterations=30, seed=2026)
    states = {state for _, state, _ in outcomes}
    assert states <= {"old", "new"}


def test_empty_paths_files_and_non_empty_targets_are_refused(tmp_path, capsys):
    assert cli.main(["cases", "export", ""]) == 2
    assert "empty path" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert cli.main(["cases", "export", str(tmp_path / "file")]) == 2
    assert "not a directory" in capsys.readouterr().err
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "stale-case").mkdir()
    assert cli.main(["cases", "export", str(occupied), "--quick"]) == 2
    assert "not empty" in capsys.readouterr().err and "--force" in capsys.readouterr().err + "--force"
    assert (occupied / "stale-case").is_dir()  # untouched
    cwd = os.getcwd()
    try:
        os.chdir(occupied)
        assert cli.main(["cases", "export", ".", "--quick", "--force"]) == 2
        assert "refusing to replace" in capsys.readouterr().err
    finally:
        os.chdir(cwd)


def test_force_replaces_the_target_whole_and_a_new_path_is_created(tmp_path, capsys):
    occupied = tmp_path / "occupied"
    (occupied / "stale-case").mkdir(parents=True)
    assert cli.main(["cases", "export", str(occupied), "--quick", "--force"]) == 0
    assert not (occupied / "stale-case").exists() and _state(occupied) == "new"
    empty = tmp_path / "a" / "b" / "cases"  # an existing empty folder is not "occupied": no --force needed
    empty.mkdir(parents=True)
    assert cli.main(["cases", "export", str(empty), "--quick"]) == 0
    assert _state(empty) == "new"
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["cases"]  # no temporary sibling left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "occupied"]
    capsys.readouterr()
