"""Test-session setup.

BLAS threads: the suite is dominated by many tiny matrix operations (d ≤ 64), for which OpenBLAS's thread pool only adds
synchronisation; on a loaded 2-core machine it slowed a 4×4 ``expm`` sweep ~40× (10 s vs 0.24 s). One thread per process
unless the caller says otherwise. This must run before NumPy is imported, which conftest does (pytest imports it first).
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Hypothesis: locally every run draws new examples (and replays the failures it has stored in .hypothesis/); under CI
# (the CI environment variable, which .ci/run sets) the examples are derived from each test's name
# (derandomize=True), so a CI verdict is reproducible and a red run can be re-run locally with CI=1. Every
# counter-example found locally is fixed or kept as an explicit @example, so CI still runs it.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")
