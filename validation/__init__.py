"""Validation experiments: each module reproduces paper claims as tables and plots.

Every experiment module listed in :data:`EXPERIMENTS` exposes ``run(outdir, quick) -> list[Claim]``: it writes its
markdown section ``outdir/<module>.md`` (and PNGs, when matplotlib is available) and returns one :class:`Claim` per
paper claim it checks. ``python -m refimpl validate`` assembles them into ``outdir/index.md``.
"""
from validation.claims import Claim

#: experiment modules, in report order (module names inside the ``validation`` package)
EXPERIMENTS = [
    "ad_selfcheck",  # SPEC §1: every primitive's VJP, Taylor rates, hvp
    "paper_a",  # [A]: AD oscillations in neural-ODE training and their corrections
    "wasserstein_flows",  # [C]: forward Euler for Wasserstein gradient flows can be wrong; Gaussian controls
    "paper_b",  # [B]: random coordinate descent on the Wasserstein space (RWCD, RWCP)
]

__all__ = ["Claim", "EXPERIMENTS"]
