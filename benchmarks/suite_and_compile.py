"""Benchmark 4: wall time of the default test run, and Numba compile time cold vs warm (``cache=True``).

Test suite: ``python -m pytest -q -p no:cacheprovider`` from the repository root in a subprocess (the default run of
setup.cfg, i.e. ``-m "not slow"``); wall time and pytest's closing line.

Numba: a fresh subprocess with ``NUMBA_CACHE_DIR`` pointing at an empty temporary directory times the first call of
each kernel group (cold: type inference + LLVM compile + writing the cache), then a second fresh subprocess with the
same directory times it again (warm: loading the cached machine code), and a third call in that process gives the
steady-state time of the call itself. The repository's own ``__pycache__`` is not touched.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["test_suite_wall_time", "numba_compile_times"]

ROOT = Path(__file__).resolve().parent.parent

# Run in the subprocess: first-call time of each kernel group, then one more call (steady state).
_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from refimpl.ode import _numba as K
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import QuadraticLoss, TanhField
from refimpl.ode.schemes import LEAPFROG, RK4
from refimpl.wasserstein import Entropy, GaussianInteraction
import_s = time.perf_counter() - t0
rng = np.random.default_rng(0)
d, N = 4, 10
x0, y = rng.standard_normal(d), rng.standard_normal(d)
th = rng.standard_normal((N, d * d + d)) * 0.3
X = rng.standard_normal((200, 2))
groups = {
    "ode ERK adjoint (erk_forward+erk_backward)": lambda: discrete_adjoint(TanhField(d), RK4, x0, th, 1.0, N,
        QuadraticLoss(y), layout="step", backend="numba"),
    "ode LMM adjoint (lmm_forward+lmm_backward)": lambda: discrete_adjoint(TanhField(d), LEAPFROG, x0, th, 1.0, N,
        QuadraticLoss(y), layout="step", starter="forward_euler", backend="numba"),
    "gaussian interaction force": lambda: GaussianInteraction(0.7, 1.1).wasserstein_gradient(X),
    "KDE score (mean kernel + blob score)": lambda: Entropy(0.3).wasserstein_gradient(X),
}
out = {"import_s": import_s}
for name, fn in groups.items():
    t0 = time.perf_counter(); fn(); first = time.perf_counter() - t0
    t0 = time.perf_counter(); fn(); again = time.perf_counter() - t0
    out[name] = {"first_s": first, "steady_s": again}
print("PROBE" + json.dumps(out))
"""


def _probe(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    wall = time.perf_counter() - t0
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("PROBE")), None)
    if res.returncode != 0 or line is None:
        return {"error": (res.stderr or res.stdout)[-2000:], "wall_s": wall}
    data = json.loads(line[len("PROBE"):])
    data["process_wall_s"] = wall
    return data


def numba_compile_times() -> dict:
    """{"cold": probe, "warm": probe} with an empty, then populated, private Numba cache directory."""
    with tempfile.TemporaryDirectory(prefix="refimpl-numba-cache-") as cache_dir:
        cold = _probe(cache_dir)
        warm = _probe(cache_dir)
    return {"cold": cold, "warm": warm}


def test_suite_wall_time(timeout_s: float = 1500.0) -> dict:
    """Wall time of the default ``pytest`` run and its summary line (passed/failed/skipped counts as printed)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"wall_s": time.perf_counter() - t0, "summary": f"timed out after {timeout_s:.0f} s", "returncode": None}
    wall = time.perf_counter() - t0
    lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
    summary = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed|error)", ln)), lines[-1] if lines
                   else "")
    failed = [ln.split(" - ")[0] for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    return {"wall_s": wall, "summary": summary.strip("= "), "returncode": res.returncode, "failed": failed}
