"""``python -m refimpl …``: see :mod:`refimpl.cli`.

The experiments run many tiny matrix operations; a BLAS thread pool only slows them (see tests/conftest.py), so the
CLI process uses one BLAS thread unless the environment already says otherwise. Set before NumPy is imported.
"""
import os
import sys

for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

try:
    from refimpl.cli import main  # noqa: E402  (after the environment is set)
except KeyboardInterrupt:  # Ctrl-C while importing: nothing was written yet
    print("interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
