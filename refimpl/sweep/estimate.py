r"""Projected wall time of a sweep on P workers, from measured task durations (docs/sweeps.md §4).

With task durations :math:`d_1, \dots, d_n` (seconds of one core each), total parallelisable work
:math:`W = \sum_i d_i`, and a serial part :math:`S` (setup and report assembly, run once by the client):

* parallel share (Amdahl 1967) :math:`p = W / (S + W)`; Amdahl's projection
  :math:`T_{\mathrm{A}}(P) = S + W/P`, speed-up :math:`(S + W)/T_{\mathrm{A}}(P) = 1/((1-p) + p/P)`;
* the granularity bound: no schedule beats :math:`S + \max(W/P, \max_i d_i)` — the longest task is a floor;
* a realistic projection: the makespan of the *longest-processing-time-first* list schedule (each task, longest
  first, to the least-loaded worker; Graham 1969: within :math:`4/3 - 1/(3P)` of the optimal makespan),
  :math:`T_{\mathrm{LPT}}(P) = S + \mathrm{LPT}(d; P)`.

Dispatch overhead per task (scheduler round trip, pickling) is not modelled; docs/sweeps.md gives its measured size.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

__all__ = ["estimate", "SweepEstimate", "lpt_makespan"]


def lpt_makespan(durations, workers: int) -> float:
    """Makespan of the longest-processing-time-first list schedule of ``durations`` on ``workers`` identical workers."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int ≥ 1, got {workers!r}")
    loads = [0.0] * min(workers, max(1, len(durations)))
    heapq.heapify(loads)
    for d in sorted(durations, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + d)
    return max(loads)


@dataclass(frozen=True)
class SweepEstimate:
    """The numbers of the module docstring for each worker count in ``rows``: (P, Amdahl time, granularity bound,
    LPT time), all in seconds."""

    n_tasks: int
    work: float
    serial: float
    longest: float
    rows: tuple

    @property
    def parallel_share(self) -> float:
        return self.work / (self.work + self.serial) if self.work + self.serial > 0 else 0.0

    @property
    def core_hours(self) -> float:
        return (self.work + self.serial) / 3600.0

    def table(self) -> str:
        lines = [f"{self.n_tasks} tasks, work W = {self.work:.1f} s, serial S = {self.serial:.1f} s, "
                 f"parallel share p = {self.parallel_share:.4f}, longest task {self.longest:.1f} s",
                 "| workers | Amdahl S + W/P | bound S + max(W/P, max d) | LPT schedule | speed-up (LPT) |",
                 "|---|---|---|---|---|"]
        for P, amdahl, bound, lpt in self.rows:
            lines.append(f"| {P} | {amdahl:.1f} s | {bound:.1f} s | {lpt:.1f} s | "
                         f"×{(self.work + self.serial) / lpt:.1f} |")
        return "\n".join(lines)

    def __repr__(self):
        return self.table()


def estimate(durations, serial: float = 0.0, workers=(8, 64, 512)) -> SweepEstimate:
    """:class:`SweepEstimate` of tasks with these ``durations`` (seconds) and a ``serial`` part (seconds) on each
    worker count in ``workers``."""
    durations = [float(d) for d in durations]
    if any(not math.isfinite(d) or d < 0 for d in durations):
        raise ValueError("durations must be finite and ≥ 0 (seconds)")
    if not math.isfinite(serial) or serial < 0:
        raise ValueError(f"serial must be finite and ≥ 0 (seconds), got {serial!r}")
    W, longest = sum(durations), max(durations, default=0.0)
    rows = tuple((P, serial + W / P, serial + max(W / P, longest), serial + lpt_makespan(durations, P))
                 for P in workers)
    return SweepEstimate(len(durations), W, float(serial), longest, rows)
