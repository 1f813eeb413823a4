"""The progress bar of a sweep: tasks done / total and failures, drawn as futures complete (stderr in the CLI)."""
from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """``label [#########...........] done/total  failed F  12.3 s``.

    On a terminal the line is redrawn in place; otherwise (CI logs) a line is written at each 5 % of the total, at
    each failure and at the end, so a log shows how far a sweep got without one line per task."""

    WIDTH = 20

    def __init__(self, total: int, label: str = "sweep", stream=None):
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"total must be an int ≥ 0, got {total!r}")
        self.total, self.label = total, label
        self.stream = sys.stderr if stream is None else stream
        self.done = self.failed = 0
        self._t0 = time.perf_counter()
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_step = -1

    def line(self) -> str:
        filled = self.WIDTH if self.total == 0 else int(self.WIDTH * self.done / self.total)
        fail = f"  failed {self.failed}" if self.failed else ""
        return (f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total}{fail}  "
                f"{time.perf_counter() - self._t0:.1f} s")

    def update(self, done: int = 1, failed: int = 0) -> None:
        """Count ``done`` more finished tasks, ``failed`` of them failures, and redraw."""
        self.done += done
        self.failed += failed
        finished = self.done >= self.total
        if self._tty:
            self.stream.write("\r" + self.line() + ("\n" if finished else ""))
        else:
            step = 20 * self.done // self.total if self.total else 20
            if step == self._last_step and not failed and not finished:
                return
            self._last_step = step
            self.stream.write(self.line() + "\n")
        self.stream.flush()
