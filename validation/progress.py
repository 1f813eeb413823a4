"""A dependency-free progress bar for the long sweeps of the validation report (written to stderr)."""
from __future__ import annotations

import sys
import time


def progress(items, label: str, stream=None):
    """Yield from ``items`` while drawing ``label [#####.....] k/n  elapsed`` on ``stream`` (stderr by default).

    On a terminal the bar is redrawn in place; otherwise (CI logs) one line is written per item, so a log shows how far
    a sweep got. ``items`` must have a length.
    """
    stream = sys.stderr if stream is None else stream
    items = list(items)
    n, t0 = len(items), time.perf_counter()
    tty = hasattr(stream, "isatty") and stream.isatty()
    for k, item in enumerate(items, 1):
        yield item
        filled = int(20 * k / n) if n else 20
        line = f"      {label} [{'#' * filled}{'.' * (20 - filled)}] {k}/{n}  {time.perf_counter() - t0:.1f} s"
        stream.write(("\r" + line + ("\n" if k == n else "")) if tty else line + "\n")
        stream.flush()
