"""Wall-clock timing with warm-up: the first call (Numba / XLA compile, cache loads) is timed separately, then the
median of repeated calls is the reported time.

The machine is shared (2 cores, other jobs running), so single timings are noisy: we report medians and the
inter-quartile spread, and compare implementations only through ratios measured in the same run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Timing", "time_call", "time_repeats", "first_call"]


@dataclass(frozen=True)
class Timing:
    """``first_s``: the first (warm-up) call; ``median_s``, ``q25_s``, ``q75_s`` over ``repeats`` later calls.
    ``overhead_first_s`` = first − median: compile / cache-load / first-touch cost (≥ 0 up to noise)."""

    first_s: float
    median_s: float
    q25_s: float
    q75_s: float
    repeats: int

    @property
    def overhead_first_s(self) -> float:
        return self.first_s - self.median_s

    def as_dict(self) -> dict:
        return {"first_s": self.first_s, "median_s": self.median_s, "q25_s": self.q25_s, "q75_s": self.q75_s,
                "repeats": self.repeats, "overhead_first_s": self.overhead_first_s}


def time_repeats(fn, first_s: float, *, min_repeats: int = 3, max_repeats: int = 50,
                 min_total_s: float = 0.3) -> Timing:
    """Time ``fn()`` after a warm-up call that the caller already made (and timed as ``first_s``): repeats until at
    least ``min_repeats`` calls and ``min_total_s`` seconds, or ``max_repeats`` calls."""
    times = []
    start = time.perf_counter()
    while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < min_total_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    q25, med, q75 = np.percentile(times, [25, 50, 75])
    return Timing(first_s, float(med), float(q25), float(q75), len(times))


def first_call(fn) -> tuple[float, object]:
    """(seconds, result) of one call of ``fn()``: the warm-up."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def time_call(fn, *, min_repeats: int = 3, max_repeats: int = 50, min_total_s: float = 0.3,
              warmup: bool = True) -> tuple[Timing, object]:
    """Time ``fn()``: one warm-up call (timed as ``first_s``), then :func:`time_repeats`. Returns (Timing, result of
    the warm-up call). ``warmup=False`` (for calls too slow to run twice): the single call is both ``first_s`` and
    the median."""
    first, result = first_call(fn)
    if not warmup:
        return Timing(first, first, first, first, 1), result
    return time_repeats(fn, first, min_repeats=min_repeats, max_repeats=max_repeats, min_total_s=min_total_s), result
