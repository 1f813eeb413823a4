r"""Random coordinate descent on Wasserstein space: sampling, step sizes, cost accounting (paper [B] arXiv 2604.01606;
docs/theory/coordinate-descent.md).

The pieces every RWCD / RWCP driver shares, on particles (:mod:`~refimpl.wasserstein.rwcd_particles`) and on
Gaussians (:mod:`~refimpl.wasserstein.rwcd_gaussian`):

* **Coordinate sampling** (docs/theory/coordinate-descent.md §3; after [B] and Ding–Li–Lu–Wright 2021):
  at step k draw iₖ ∈ {0, …, d−1} i.i.d. with pᵢ = 1/d ("uniform") or pᵢ = Lᵢ/ΣⱼLⱼ ("lipschitz"), Lᵢ the
  coordinate-wise smoothness constants of condition (C). The sequence comes from ``numpy.random.default_rng(seed)``,
  so a run is a deterministic function of its seed.
* **Step sizes.** Default ηᵢ = 1/Lᵢ (the step the descent lemma F(ρ⁺) ≤ F(ρ) − ‖∂ᵢu‖²/(2Lᵢ) and all rate bounds
  use). Stability bound (derived, the 1-D analogue of gradient descent): along eᵢ, (C) gives
  F(ρ⁺) ≤ F(ρ) − ηᵢ(1 − ηᵢLᵢ/2)‖∂ᵢu‖², so ηᵢ < 2/Lᵢ still decreases F and ηᵢ ≥ 2/Lᵢ may increase it (it does, for a
  quadratic with Lᵢ attained). Policy: ηᵢ ≥ 2/Lᵢ raises ``ValueError``; 1/Lᵢ < ηᵢ < 2/Lᵢ is allowed with a
  :class:`StepSizeWarning` (outside the range the rate bounds cover); ηᵢ ≤ 0, Lᵢ ≤ 0 or non-finite raise.
* **Cost** in the paper's unit (docs/theory/coordinate-descent.md §6): one coordinate partial at every particle = 1/d
  of a full Wasserstein gradient, so a coordinate step costs 1/d and a full-gradient (or proximal-gradient) step
  costs 1 "gradient equivalent"; an *epoch* is d coordinate steps. Evaluating F for the record is not counted (it is bookkeeping, not part of the
  method). Wall time is measured separately, around the steps only.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from refimpl.arguments import NonFiniteError, as_real_scalar, as_vector

#: coordinate sampling rules
SAMPLINGS = ("uniform", "lipschitz")


class StepSizeWarning(UserWarning):
    """A step size in (1/Lᵢ, 2/Lᵢ): F still decreases, but the rate bounds (which assume ηᵢ ≤ 1/Lᵢ) do not apply; or
    a flow step (forward Euler) h ≥ 2/L, above its stability bound (:func:`warn_above_flow_stability_bound`)."""


def coordinate_constants(L_coord, d: int | None = None, name: str = "L_coord") -> np.ndarray:
    """Check coordinate-wise smoothness constants: a finite (d,) vector with every Lᵢ > 0."""
    if L_coord is None:
        raise ValueError(f"{name} is None: the energy has no finite coordinate-wise smoothness constants; "
                         "pass them explicitly (or use RWCP with the non-smooth part in the prox)")
    L = as_vector(L_coord, d, name)
    if np.any(L <= 0.0):
        bad = int(np.argmax(L <= 0.0))
        raise ValueError(f"{name} must be > 0 for every coordinate, got {name}[{bad}] = {L[bad]}")
    return L


def coordinate_probabilities(L_coord, sampling: str = "uniform") -> np.ndarray:
    """pᵢ = 1/d (``"uniform"``) or pᵢ = Lᵢ/ΣLⱼ (``"lipschitz"``); a (d,) array summing to 1."""
    L = coordinate_constants(L_coord)
    if sampling == "uniform":
        return np.full(L.shape[0], 1.0 / L.shape[0])
    if sampling == "lipschitz":
        return L / np.sum(L)
    raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")


def coordinate_sequence(probabilities, n_steps: int, seed: int) -> np.ndarray:
    """``n_steps`` i.i.d. coordinates drawn with ``probabilities`` from ``default_rng(seed)`` (int64 array)."""
    p = as_vector(probabilities, None, "probabilities")
    if np.any(p < 0) or abs(float(np.sum(p)) - 1.0) > 1e-12:
        raise ValueError("probabilities must be non-negative and sum to 1")
    n_steps = check_count(n_steps, "n_steps")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    rng = np.random.default_rng(int(seed))
    return rng.choice(p.shape[0], size=n_steps, p=p).astype(np.int64)


def coordinate_step_sizes(L_coord, step_sizes=None) -> np.ndarray:
    """ηᵢ: ``1/Lᵢ`` by default; a scalar η (common step) or a (d,) vector otherwise, checked against the stability
    bound of the module docstring (ValueError at ηᵢ ≥ 2/Lᵢ, :class:`StepSizeWarning` in (1/Lᵢ, 2/Lᵢ))."""
    L = coordinate_constants(L_coord)
    if step_sizes is None:
        return 1.0 / L
    eta = np.full(L.shape[0], as_real_scalar(step_sizes, "step_sizes", positive=True)) if np.ndim(step_sizes) == 0 \
        else as_vector(step_sizes, L.shape[0], "step_sizes")
    return check_step_sizes(eta, L)


def check_step_sizes(eta, L, name: str = "step_sizes") -> np.ndarray:
    """Validate step sizes η against smoothness constants L (same shape; scalars allowed), by the stability policy."""
    eta = np.asarray(eta, dtype=np.float64)
    L = np.asarray(L, dtype=np.float64)
    if not np.all(np.isfinite(eta)) or np.any(eta <= 0.0):
        raise ValueError(f"{name} must be finite and > 0, got {eta}")
    if np.any(eta * L >= 2.0):
        j = int(np.argmax(eta * L))
        raise ValueError(f"{name} violates the stability bound eta < 2/L (eta*L = {float((eta * L).flat[j]):.4g} >= 2 "
                         f"at index {j}): the step can increase the energy")
    if np.any(eta * L > 1.0 + 1e-12):
        j = int(np.argmax(eta * L))
        warnings.warn(f"{name}: eta*L = {float((eta * L).flat[j]):.4g} > 1 at index {j}; the energy still decreases "
                      "but the rate bounds assume eta <= 1/L", StepSizeWarning, stacklevel=3)
    return eta


def warn_above_flow_stability_bound(h: float, L, method: str, name: str = "h") -> None:
    """The flow discretisations (forward Euler on particles and on Gaussians) by the same policy: the explicit step
    x ← x − h∇(δF/δρ) is stable for h < 2/L (the bound of the module docstring, with ηᵢ = h), so h·L ≥ 2 warns with a
    :class:`StepSizeWarning` — a warning, not an error, since showing what an unstable step does is a legitimate use
    of a flow scheme. ``L`` = None (no known smoothness constant): nothing to check."""
    if L is not None and h * L >= 2.0:
        warnings.warn(f"{name}: h*L = {h * L:.4g} >= 2, above the {method} stability bound h < 2/L (L = {L:.4g}): the "
                      "iterates can grow without bound", StepSizeWarning, stacklevel=3)


def nonfinite_flow_error(n: int, h: float, what: str, where: str, previous: float, L) -> NonFiniteError:
    """The error of a flow scheme whose iterate n became non-finite (``what`` names the state, ``where`` the first
    bad entry, ``previous`` = max |state_{n−1}|), with the stability hint when h·L ≥ 2."""
    hint = "" if L is None or h * L < 2.0 else \
        f"; h*L = {h * L:.4g} exceeds the stability bound h < 2/L (L = {L:.4g}): take a smaller step"
    return NonFiniteError(f"the solution became non-finite at step {n}, time t = {n * h:.6g}: {what}_{n} has a "
                          f"non-finite entry {where} (max |{what}_{n - 1}| = {previous:.3g}){hint}")


def check_count(n, name: str) -> int:
    """A non-negative integer (not a bool)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {n!r}")
    return int(n)


@dataclass(eq=False)
class DescentTrace:
    """The record of one run: what was measured after each recorded step.

    ``cost[k]`` is the cumulative cost in gradient equivalents (module docstring) at record k, ``energy[k]`` the energy
    there, ``wall_time[k]`` the cumulative seconds spent in steps, ``coordinates`` the coordinate sequence used (empty
    for full-gradient methods); ``final`` the last state (particle array or GaussianMeasure). Record 0 is the start.
    """

    method: str
    cost: np.ndarray
    energy: np.ndarray
    wall_time: np.ndarray
    coordinates: np.ndarray
    final: object
    extra: dict = field(default_factory=dict)

    def cost_to_reach(self, threshold: float) -> float:
        """The first recorded cost at which ``energy ≤ threshold`` (``inf`` if never)."""
        hit = np.nonzero(self.energy <= threshold)[0]
        return float(self.cost[hit[0]]) if hit.size else float("inf")

    def time_to_reach(self, threshold: float) -> float:
        """The wall time (seconds) at the first record with ``energy ≤ threshold`` (``inf`` if never)."""
        hit = np.nonzero(self.energy <= threshold)[0]
        return float(self.wall_time[hit[0]]) if hit.size else float("inf")

    def __repr__(self):
        return (f"DescentTrace({self.method}: {self.energy.size - 1} records, cost {self.cost[-1]:.4g} gradient "
                f"equivalents, energy {self.energy[0]:.4g} -> {self.energy[-1]:.4g}, wall {self.wall_time[-1]:.3g} s)")


class TraceRecorder:
    """Accumulates (cost, energy, wall time) records for a :class:`DescentTrace`; the clock runs only inside
    ``with recorder.timing():`` blocks, so energy evaluations for the record are excluded."""

    def __init__(self, energy0: float):
        self.cost, self.energy, self.wall = [0.0], [float(energy0)], [0.0]
        self._elapsed = 0.0
        self._t0 = None

    def start(self):
        self._t0 = time.perf_counter()

    def stop(self):
        self._elapsed += time.perf_counter() - self._t0

    def record(self, cost: float, energy: float):
        self.cost.append(float(cost))
        self.energy.append(float(energy))
        self.wall.append(self._elapsed)

    def trace(self, method, coordinates, final, **extra) -> DescentTrace:
        return DescentTrace(method, np.asarray(self.cost), np.asarray(self.energy), np.asarray(self.wall),
                            np.asarray(coordinates, dtype=np.int64), final, dict(extra))


__all__ = ["SAMPLINGS", "StepSizeWarning", "warn_above_flow_stability_bound", "nonfinite_flow_error", "coordinate_constants", "coordinate_probabilities", "coordinate_sequence",
           "coordinate_step_sizes", "check_step_sizes", "check_count", "DescentTrace", "TraceRecorder"]

