r"""Benchmark 3: RWCD against full Wasserstein gradient descent, wall time to a fixed accuracy, on the ill-conditioned
validation case of docs/theory/coordinate-descent.md (``tests/test_rwcd_rates.py``): :math:`F(\rho) = \int \tfrac12 x^{\mathsf T}
Ax\,d\rho`, :math:`A = I + 10\cdot\mathbb 1\mathbb 1^{\mathsf T}`, d = 50 (κ = 501), here on a particle cloud
:math:`x_k \sim N(\mathbb 1/\sqrt d, I)` (N particles, fixed seed). :math:`F^* = 0`; target :math:`F \le 10^{-6}F_0`.

Routes (all refimpl, :mod:`refimpl.wasserstein.rwcd_particles`): ``wgd`` (η = 1/L, L = λ_max(A)), ``rwcd`` with
uniform coordinate sampling (ηᵢ = 1/Lᵢ = 1/Aᵢᵢ) on the Numba sweep kernels and on the NumPy reference path.
The wall time to the target is :meth:`DescentTrace.time_to_reach` (clock running inside the steps only; energy
evaluations for the record excluded), the cost in gradient equivalents :meth:`DescentTrace.cost_to_reach`; RWCD is the
median over seeds. The records are every 10 steps (WGD) / every epoch of d coordinate steps (RWCD), so times are
resolved to that.
"""
from __future__ import annotations

import math
import time

import numpy as np

from refimpl.wasserstein.energies import QuadraticPotential
from refimpl.wasserstein.rwcd_particles import rwcd, wgd
from refimpl.wasserstein.rwcd_rates import predicted_speedup

__all__ = ["run_case"]

TARGET = 1e-6


def run_case(d: int = 50, n_particles: int = 2000, *, seeds=(0, 1, 2), wgd_steps: int = 3500,
             rwcd_epochs: int = 150, numpy_path: bool = True) -> dict:
    """Run WGD and RWCD (numba; the NumPy reference path for the first seed) to F ≤ 1e-6 F₀; report time and cost to
    reach it, the measured and predicted speed-ups."""
    A = np.eye(d) + 10.0 * np.ones((d, d))
    E = QuadraticPotential(A)
    X0 = np.ones(d) / math.sqrt(d) + np.random.default_rng(7).standard_normal((n_particles, d))
    F0 = float(E.value(X0))
    target = TARGET * F0
    L_full, L_coord = float(np.linalg.eigvalsh(A)[-1]), np.diag(A)
    out = {"d": d, "N": n_particles, "F0": F0, "target": target,
           "predicted_speedup_cost": predicted_speedup(L_full, L_coord, "uniform"), "routes": {}}

    t0 = time.perf_counter()
    tr = wgd(E, X0, wgd_steps, record_every=10)
    out["routes"]["wgd"] = {"time_to_target_s": tr.time_to_reach(target), "cost_to_target": tr.cost_to_reach(target),
                            "end_to_end_s": time.perf_counter() - t0, "final_rel_energy": float(tr.energy[-1] / F0)}

    rwcd(E, X0, d, record_every=d, backend="numba")  # warm-up: compile / load the sweep kernels
    for backend in ("numba", "numpy") if numpy_path else ("numba",):
        times, costs, e2e = [], [], []
        for seed in (seeds if backend == "numba" else seeds[:1]):
            t0 = time.perf_counter()
            tr = rwcd(E, X0, rwcd_epochs * d, seed=seed, record_every=d, backend=backend)
            e2e.append(time.perf_counter() - t0)
            times.append(tr.time_to_reach(target))
            costs.append(tr.cost_to_reach(target))
        out["routes"][f"rwcd uniform ({backend})"] = {
            "time_to_target_s": float(np.median(times)), "cost_to_target": float(np.median(costs)),
            "end_to_end_s": float(np.median(e2e)), "seeds": len(times)}
    g = out["routes"]["wgd"]
    for name, r in out["routes"].items():
        r["speedup_time_vs_wgd"] = g["time_to_target_s"] / r["time_to_target_s"]
        r["speedup_cost_vs_wgd"] = g["cost_to_target"] / r["cost_to_target"]
    return out
