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
from pathlib import Path

__all__ = ["OPEN", "CLOSE", "wall", "mask_wall_times", "unmarked", "report_snapshot", "report_differences"]

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


def report_snapshot(folder) -> dict:
    """{file name: content} of a report folder: each markdown file with its wall-clock text masked, each PNG as bytes;
    the sweep's bookkeeping (``sweep-results/``, ``sweep-timings.json``) is not part of the report."""
    out = {}
    for p in sorted(Path(folder).iterdir()):
        if p.suffix == ".md":
            out[p.name] = mask_wall_times(p.read_text(encoding="utf-8"))
        elif p.suffix == ".png":
            out[p.name] = p.read_bytes()
    return out


def report_differences(a, b) -> list:
    """The file names whose :func:`report_snapshot` differs between report folders ``a`` and ``b`` (empty: the same
    report)."""
    sa, sb = report_snapshot(a), report_snapshot(b)
    return sorted(n for n in set(sa) | set(sb) if sa.get(n) != sb.get(n))
