"""Validation experiments: each module reproduces paper claims as tables and plots.

Every experiment module listed in :data:`EXPERIMENTS` exposes ``run(outdir, quick) -> list[Claim]``: it writes its
markdown section ``outdir/<module>.md`` (and PNGs, when matplotlib is available) and returns one :class:`Claim` per
paper claim it checks. A module that also exposes ``tasks(profile)`` and ``assemble(outdir, profile, values, seconds)``
is split into independent sweep tasks (validation/experiment.py; docs/sweeps.md §7). ``python -m refimpl validate``
runs every experiment's tasks as one sweep and writes ``outdir/index.md`` (validation/report.py).
"""
from validation.claims import Claim

#: experiment modules, in report order (module names inside the ``validation`` package)
EXPERIMENTS = [
    "ad_selfcheck",  # docs/theory/autodiff.md: every primitive's VJP, Taylor rates, hvp
    "neural_ode_oscillations",  # [A]: AD oscillations in neural-ODE training and their corrections
    "wasserstein_flows",  # [C]: forward Euler for Wasserstein gradient flows can be wrong; Gaussian controls
    "wasserstein_coordinate_descent",  # [B]: random coordinate descent on the Wasserstein space (RWCD, RWCP)
    "adaptive_solvers",  # docs/theory/adaptive-steps.md: frozen-grid vs full discrete vs continuous; loss jumps
]

__all__ = ["Claim", "EXPERIMENTS"]
