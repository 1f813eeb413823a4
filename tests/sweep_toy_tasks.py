"""Task functions for the sweep tests (importable by worker processes: tests/ is put on their sys.path)."""
import os
import signal
import time
from pathlib import Path

import numpy as np


def draw(n: int, seed: int, delay: float = 0.0, log: str | None = None) -> list:
    """n standard normals from ``seed`` (rounded-trip exact floats), after ``delay`` seconds; appends ``seed`` to
    ``log`` (one line per call) so a test can count how often each task really ran."""
    if log is not None:
        with open(log, "a") as handle:
            handle.write(f"{seed}\n")
    time.sleep(delay)
    return np.random.default_rng(seed).standard_normal(n).tolist()


def fail_unless(marker: str, value: int) -> int:
    """Raise ValueError until the file ``marker`` exists."""
    if not Path(marker).exists():
        raise ValueError(f"marker {Path(marker).name} missing")
    return value


def interrupt_unless(marker: str, value: int) -> int:
    """Raise KeyboardInterrupt (as a user's Ctrl-C would) until the file ``marker`` exists."""
    if not Path(marker).exists():
        raise KeyboardInterrupt
    return value


def die_once(marker: str, value: int) -> int:
    """Kill this worker process (SIGKILL) the first time any task calls it (the marker file records it)."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return value
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)  # not reached
    return value
