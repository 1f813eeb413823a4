r"""RWCD and RWCP on particle clouds, with the full-gradient baselines (paper [B] arXiv 2604.01606;
docs/theory/coordinate-descent.md §3–§6).

A cloud X (N, d) stands for ρ_X = (1/N)Σ δ_{x_k}; u = δF/δρ[ρ_X].

* **RWCD step** (coordinate i, step η): ρ⁺ = (Id − η eᵢ ∂ᵢu)#ρ, i.e. x_kᵢ ← x_kᵢ − η ∂ᵢu(x_k) for every k, all
  partials at the state before the step (``energy.coordinate_gradient``); the other coordinates do not move.
* **RWCP step** for F = G + H (H a separable prox term, :mod:`~refimpl.wasserstein.composite`): the RWCD step on G, then
  the JKO step of ηH restricted to eᵢ-displacements, which for a separable potential is the pointwise prox of ηhᵢ on
  coordinate i (derived in :mod:`~refimpl.wasserstein.composite`). An entropic H is not supported on particles: the
  conditionals of an empirical measure along eᵢ are single atoms, so the coordinate entropy JKO (1-D JKO of each
  conditional, docs/theory/coordinate-descent.md §4) has no particle analogue without a density model; use the
  Gaussian representation (:mod:`~refimpl.wasserstein.rwcd_gaussian`).
* **Full Wasserstein GD**: x_k ← x_k − η∇u(x_k) (:func:`refimpl.wasserstein.particle_steps.forward_euler_step`).
* **Full Wasserstein proximal gradient**: GD step on G, then x_k ← prox_{ηh}(x_k) (the JKO step of ηH).

Drivers draw coordinates by :mod:`~refimpl.wasserstein.coordinate_descent` and return a ``DescentTrace`` with the cost
in gradient equivalents (1/d per coordinate step, 1 per full step) and wall time. ``backend`` ("auto" | "numpy" |
"numba", :mod:`refimpl.backends`): the sweep kernels of :mod:`~refimpl.wasserstein._numba` run blocks of coordinate
steps when every term of the smooth part, and the prox term, has a descriptor the kernels step (quadratic potentials /
quadratic interactions, at most one Gaussian interaction, a weighted-L1 prox term: O(Nd) resp. O(N²) per coordinate
step); "auto" takes them where they apply; "numpy", and "auto" elsewhere, call ``energy.coordinate_gradient`` at each
step (the reference path the tests compare the kernels against); "numba" where they do not apply is a ``ValueError``.
"""
from __future__ import annotations

import numpy as np

from refimpl.arguments import as_coordinate, as_particles, as_real_scalar
from refimpl.backends import check_backend, resolve_backend
from refimpl.wasserstein import _numba
from refimpl.wasserstein.composite import split_composite
from refimpl.wasserstein.coordinate_descent import (TraceRecorder, check_count, check_step_sizes,
                                                    coordinate_constants, coordinate_probabilities,
                                                    coordinate_sequence, coordinate_step_sizes)
from refimpl.wasserstein.energies import Energy, weighted_terms
from refimpl.wasserstein.particle_steps import forward_euler_step
from refimpl.wasserstein.term_descriptors import (GaussianInteractionDescriptor, QuadraticDescriptor,
                                                  WeightedL1Descriptor)


def _split(energy, X):
    """(G, prox term or None), checked for the particle representation."""
    G, sigma, prox = split_composite(energy)
    if sigma != 0.0:
        raise NotImplementedError("an entropy term in the prox part is not supported on particles (module docstring); "
                                  "use refimpl.wasserstein.rwcd_gaussian, or put a blob Entropy in the smooth part")
    if len(prox) > 1:
        raise NotImplementedError("at most one prox term: the prox of a sum is not the composition of the proxes")
    if G is None:
        raise ValueError("energy has no smooth part: nothing for a forward step to act on")
    H = prox[0] if prox else None
    if H is not None and H.dim is not None and H.dim != X.shape[1]:
        raise ValueError(f"prox term {H.name} is defined on R^{H.dim}, the particles are in R^{X.shape[1]}")
    return G, H


def _check(energy, X):
    if not isinstance(energy, Energy):
        raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")
    X = as_particles(X, "X")
    if energy.dim is not None and energy.dim != X.shape[1]:
        raise ValueError(f"energy is defined on R^{energy.dim}, X has d = {X.shape[1]} columns")
    return X


# ------------------------------------------------------------------------------------------------------ steps
def rwcd_step(energy: Energy, X, i, eta):
    """One RWCD step along eᵢ: a copy of X with column i replaced by X[:, i] − η ∂ᵢu(X)."""
    X = _check(energy, X)
    i = as_coordinate(i, X.shape[1])
    eta = as_real_scalar(eta, "eta", positive=True)
    out = X.copy()
    out[:, i] = X[:, i] - eta * energy.coordinate_gradient(X, i)
    return out


def rwcp_step(energy: Energy, X, i, eta):
    """One RWCP step for F = G + H: RWCD step on G along eᵢ, then the coordinate prox of ηH on column i."""
    X = _check(energy, X)
    G, H = _split(energy, X)
    i = as_coordinate(i, X.shape[1])
    eta = as_real_scalar(eta, "eta", positive=True)
    out = X.copy()
    col = X[:, i] - eta * G.coordinate_gradient(X, i)
    out[:, i] = col if H is None else H.coordinate_prox(col, i, eta)
    return out


def wgd_step(energy: Energy, X, eta):
    """One full Wasserstein gradient (forward Euler) step."""
    return forward_euler_step(energy, _check(energy, X), eta)


def wpg_step(energy: Energy, X, eta):
    """One full Wasserstein proximal-gradient step for F = G + H: GD step on G, then prox_{ηh} on every particle."""
    X = _check(energy, X)
    G, H = _split(energy, X)
    Y = forward_euler_step(G, X, eta)
    return Y if H is None else H.prox(Y, as_real_scalar(eta, "eta", positive=True))


# ------------------------------------------------------------------------------------- sweep kernel dispatch
_NO_SWEEP_KERNEL = ("the sweep kernels step quadratic potentials and interactions, at most one Gaussian interaction "
                    "and a weighted-L1 prox term")


class SweepArrays:
    """The arguments of the sweep kernels (:mod:`~refimpl.wasserstein._numba`) for F = quadratic part + (≤ 1)
    Gaussian interaction + (optional) weighted-L1 prox term in ℝᵈ: ∂ᵢu(x) = (A x)ᵢ − rᵢ + (B(x − m))ᵢ (+ the Gaussian
    interaction ``gauss`` = (a, s) or ``None``), prox weights/centre ``l1w``/``l1c`` when ``use_l1``."""

    def __init__(self, d: int):
        self.A, self.r, self.B = np.zeros((d, d)), np.zeros(d), np.zeros((d, d))
        self.has_quad = False
        self.gauss = None
        self.l1w, self.l1c, self.use_l1 = np.zeros(d), np.zeros(d), False


def sweep_arrays(G, H, d: int):
    """The :class:`SweepArrays` of F = G + H read from the terms' descriptors
    (:mod:`~refimpl.wasserstein.term_descriptors`): every term of G quadratic or a Gaussian interaction (at most one),
    H ``None`` or a weighted-L1 prox term; ``None`` otherwise (then the reference path runs). The terms are summed in
    the order of :func:`~refimpl.wasserstein.energies.weighted_terms`."""
    arrays, gauss = SweepArrays(d), []
    for c, e in weighted_terms(G):
        part = e.descriptor(c)
        if isinstance(part, QuadraticDescriptor):
            if part.A is not None:
                arrays.A += part.A
            if part.r is not None:
                arrays.r += part.r
            if part.B is not None:
                arrays.B += part.B
            arrays.has_quad = True
        elif isinstance(part, GaussianInteractionDescriptor):
            gauss.append((part.amplitude, part.width))
        else:
            return None
    if len(gauss) > 1:
        return None
    arrays.gauss = gauss[0] if gauss else None
    if H is not None:
        part = H.descriptor(1.0)
        if not isinstance(part, WeightedL1Descriptor):
            return None
        arrays.l1w, arrays.l1c, arrays.use_l1 = part.weights, part.center, True
    return arrays


# ------------------------------------------------------------------------------------------------------ drivers
def _check_common(n_steps, record_every, backend):
    n_steps = check_count(n_steps, "n_steps")
    record_every = check_count(record_every, "record_every")
    if record_every < 1:
        raise ValueError("record_every must be >= 1")
    check_backend(backend)
    return n_steps, record_every


def _coordinate_driver(method, energy, X0, n_steps, *, sampling, seed, step_sizes, coordinate_smoothness,
                       record_every, backend, proximal, stop_at=None):
    X = _check(energy, X0).copy()
    n_steps, record_every = _check_common(n_steps, record_every, backend)
    n, d = X.shape
    G, H = _split(energy, X) if proximal else (energy, None)
    L = coordinate_constants(G.coordinate_smoothness(d) if coordinate_smoothness is None else coordinate_smoothness,
                             d, "coordinate_smoothness")
    p = coordinate_probabilities(L, sampling)
    eta = coordinate_step_sizes(L, step_sizes)
    coords = coordinate_sequence(p, n_steps, seed)
    # the kernels' arrays, read from the terms' descriptors (None: some term has none, the reference path runs)
    struct = sweep_arrays(G, H, d) if backend != "numpy" else None
    backend = resolve_backend(backend, kernel_applies=struct is not None, why_not=_NO_SWEEP_KERNEL)
    rec = TraceRecorder(energy.value(X))
    if struct is not None:
        mean = X.mean(axis=0)
        D = _numba.squared_distances(X) if struct.gauss is not None else None
    for start in range(0, n_steps, record_every):
        block = coords[start:start + record_every]
        rec.start()
        if struct is None:
            for i in block:
                col = X[:, i] - eta[i] * G.coordinate_gradient(X, i)
                X[:, i] = col if H is None else H.coordinate_prox(col, i, eta[i])
        elif struct.gauss is None:
            _numba.quadratic_sweep(X, struct.A, struct.r, struct.B, mean, block, eta, struct.l1w, struct.l1c,
                                   struct.use_l1)
        else:
            a, s = struct.gauss
            _numba.pairwise_sweep(X, D, struct.A, struct.r, struct.B, mean, struct.has_quad, a, s, block, eta,
                                  struct.l1w, struct.l1c, struct.use_l1)
        rec.stop()
        rec.record((start + block.shape[0]) / d, energy.value(X))
        if stop_at is not None and rec.energy[-1] <= stop_at:
            coords = coords[:start + block.shape[0]]
            break
    return rec.trace(method, coords, X, probabilities=p, step_sizes=eta, sampling=sampling,
                     backend=backend)


def rwcd(energy: Energy, X0, n_steps: int, *, sampling: str = "uniform", seed: int = 0, step_sizes=None,
         coordinate_smoothness=None, record_every: int = 1, backend: str = "auto", stop_at=None):
    """``n_steps`` RWCD steps from the cloud X0; ηᵢ = 1/Lᵢ (Lᵢ = ``energy.coordinate_smoothness`` unless given)
    unless ``step_sizes``. F is recorded every ``record_every`` steps. Returns a ``DescentTrace`` (``final`` = X).

    Every term is stepped explicitly (a blob :class:`~refimpl.wasserstein.energies.Entropy` is smooth at fixed
    bandwidth, but has no known Lᵢ: pass ``coordinate_smoothness``); non-smooth prox terms are refused (use rwcp).
    With ``stop_at`` the run ends at the first record with F ≤ stop_at."""
    _, _, prox = split_composite(energy)
    if prox:
        raise ValueError("energy has a non-smooth prox term: use rwcp")
    return _coordinate_driver(f"RWCD ({sampling})", energy, X0, n_steps, sampling=sampling, seed=seed,
                              step_sizes=step_sizes, coordinate_smoothness=coordinate_smoothness,
                              record_every=record_every, backend=backend, proximal=False, stop_at=_stop(stop_at))


def _stop(stop_at):
    return None if stop_at is None else as_real_scalar(stop_at, "stop_at")


def rwcp(energy: Energy, X0, n_steps: int, *, sampling: str = "uniform", seed: int = 0, step_sizes=None,
         coordinate_smoothness=None, record_every: int = 1, backend: str = "auto", stop_at=None):
    """``n_steps`` RWCP steps for F = G + H from X0 (Lᵢ those of G); ``stop_at`` as in :func:`rwcd`. Returns a
    ``DescentTrace``."""
    return _coordinate_driver(f"RWCP ({sampling})", energy, X0, n_steps, sampling=sampling, seed=seed,
                              step_sizes=step_sizes, coordinate_smoothness=coordinate_smoothness,
                              record_every=record_every, backend=backend, proximal=True, stop_at=_stop(stop_at))


def _full_driver(method, energy, X0, n_steps, step, smoothness, proximal, record_every=1, stop_at=None):
    X = _check(energy, X0).copy()
    n_steps, record_every = _check_common(n_steps, record_every, "numpy")
    G, H = _split(energy, X) if proximal else (energy, None)
    if not proximal:
        _, sigma, prox = split_composite(energy)
        if prox:
            raise ValueError("energy has a non-smooth prox term: use wpg")
    L = G.smoothness(X.shape[1]) if smoothness is None else as_real_scalar(smoothness, "smoothness", positive=True)
    if step is None:
        if L is None:
            raise ValueError("step is required: the energy has no finite smoothness constant L")
        eta = 1.0 / L
    else:
        eta = as_real_scalar(step, "step", positive=True)
        if L is not None:
            check_step_sizes(eta, L, "step")
    rec = TraceRecorder(energy.value(X))
    for k in range(1, n_steps + 1):
        rec.start()
        X = X - eta * G.wasserstein_gradient(X)
        if H is not None:
            X = H.prox(X, eta)
        rec.stop()
        if k % record_every == 0 or k == n_steps:
            rec.record(float(k), energy.value(X))
            if stop_at is not None and rec.energy[-1] <= stop_at:
                break
    return rec.trace(method, [], X, step=eta)


def wgd(energy: Energy, X0, n_steps: int, *, step=None, smoothness=None, record_every: int = 1, stop_at=None):
    """Full Wasserstein gradient descent on particles, η = 1/L (``energy.smoothness`` unless ``smoothness``);
    optional early stop at F ≤ ``stop_at``."""
    return _full_driver("WGD", energy, X0, n_steps, step, smoothness, proximal=False, record_every=record_every,
                        stop_at=_stop(stop_at))


def wpg(energy: Energy, X0, n_steps: int, *, step=None, smoothness=None, record_every: int = 1, stop_at=None):
    """Full Wasserstein proximal gradient for F = G + H on particles, η = 1/L(G) by default; optional early stop."""
    return _full_driver("WPG", energy, X0, n_steps, step, smoothness, proximal=True, record_every=record_every,
                        stop_at=_stop(stop_at))


__all__ = ["rwcd_step", "rwcp_step", "wgd_step", "wpg_step", "rwcd", "rwcp", "wgd", "wpg"]
