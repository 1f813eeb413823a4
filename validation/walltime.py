"""Wall-clock measurements in the validation report, marked so that a comparison of two reports can leave them out.

Everything else in the report is a deterministic function of the experiments' inputs — the same bytes whether the
tasks ran serially, on local processes or on a cluster. Wall times (section run times, training seconds, the
Numba-vs-NumPy timings, the wall-time speed-ups of coordinate descent and the PASS/FAIL of the claims that compare wall
times) are not. Each such text is written through :func:`wall`, which wraps it in the HTML comments
``<!--wall-->…<!--/wall-->`` (invisible when the markdown is rendered), and :func:`mask_wall_times` replaces every
marked text by ``…`` — the comparison used by the tests (tests/test_sweep_validation.py) and described in
docs/sweeps.md §3.
"""
from __future__ import annotations

import re

__all__ = ["OPEN", "CLOSE", "wall", "mask_wall_times", "unmarked"]

OPEN, CLOSE = "<!--wall-->", "<!--/wall-->"
_MARKED = re.compile(re.escape(OPEN) + ".*?" + re.escape(CLOSE), re.S)


def wall(text) -> str:
    """``text`` marked as a wall-clock measurement (or a verdict that depends on one)."""
    text = str(text)
    if OPEN in text or CLOSE in text:
        raise ValueError("text: already contains a wall-time marker")
    return f"{OPEN}{text}{CLOSE}"


def mask_wall_times(report: str) -> str:
    """``report`` with every :func:`wall`-marked text replaced by ``…`` (for byte comparison of reports)."""
    return _MARKED.sub(OPEN + "…" + CLOSE, report)


def unmarked(text: str) -> str:
    """``text`` with the markers removed and the marked texts kept (for the console)."""
    return text.replace(OPEN, "").replace(CLOSE, "")
