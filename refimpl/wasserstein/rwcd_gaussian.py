r"""RWCD and RWCP on Gaussians in closed form, with the full-gradient baselines (paper [B] arXiv 2604.01606;
docs/theory/coordinate-descent.md §7, G1–G7).

Energies: those of :func:`refimpl.wasserstein.gaussian_flows.quadratic_structure` (quadratic potentials, quadratic
interactions, entropy, so KL to a Gaussian): on N(m, Σ),
F = ½mᵀA_m m − rᵀm + ½tr(GΣ) − (σ/2) log det Σ + const, with Wasserstein gradient the affine field
v(x) = (A_m m − r) + (G − σΣ⁻¹)(x − m). Every step below is an affine push-forward, so Gaussians stay Gaussian.

**Degenerate laws.** With ηᵢ = 1/Lᵢ = 1/Gᵢᵢ the coordinate map x ↦ x − ηᵢeᵢ(G(x − m))ᵢ has det(I − ηᵢeᵢGᵢᵀ) =
1 − ηᵢGᵢᵢ = 0: it sends xᵢ to its conditional minimiser given x₋ᵢ, and the law becomes *singular* (G7). So the
state here is :class:`GaussianMoments` (m, Σ) with Σ symmetric positive **semi**-definite, not
:class:`~refimpl.wasserstein.measures.GaussianMeasure` (which requires Σ ≻ 0); F is finite on it when σ = 0, and the
entropy prox restores a non-degenerate conditional.

Steps (i a coordinate, η > 0):

* **RWCD** (G1): x ↦ x − η eᵢ vᵢ(x): m' = m − η bᵢ eᵢ, Σ' = TΣTᵀ with T = I − η eᵢ Mᵢᵀ, (b, M) = (A_m m − r, G − σΣ⁻¹);
  written as the rank-two update Σ' = Σ − η(eᵢsᵀ + seᵢᵀ) + η²(Mᵢᵀs) eᵢeᵢᵀ, s = ΣMᵢ (O(d²)).
* **Coordinate entropy prox** (G4/G5, derived in docs/theory/coordinate-descent.md §7): the JKO step of τℋ restricted
  to eᵢ-displacements splits into 1-D entropy JKO steps of the conditionals N(·, s),
  s = Σᵢᵢ − Σᵢ,₋ᵢΣ₋ᵢ,₋ᵢ⁻¹Σ₋ᵢ,ᵢ (Schur complement; may be 0), each N(c, s) ↦ N(c, s') with √s' = (√s + √(s + 4τ))/2. Mean and every covariance entry except Σᵢᵢ are unchanged,
  Σᵢᵢ ← Σᵢᵢ + s' − s.
* **RWCP**: for F = G + σℋ, the RWCD step on G (σ = 0 in the field) then the coordinate entropy prox with τ = ση.
  For KL(·‖N(b, A⁻¹)) with η = 1/Aᵢᵢ this is the law-level random-scan Gibbs update (G7).
* **Full Wasserstein GD**: x ↦ x − ηv(x): m' = m − ηb, Σ' = (I − ηM)Σ(I − ηM).
* **Full Wasserstein proximal gradient** (Salim–Korba–Luise 2020): GD step on G, then the full entropy JKO step
  Σ' = ¼(Σ^{1/2} + (Σ + 4τI)^{1/2})² (G6), τ = ση.

Drivers record F after every ``record_every`` steps with the cost of :mod:`~refimpl.wasserstein.coordinate_descent`
(coordinate step 1/d, full step 1). The *expected* RWCD dynamics over the coordinate choice are exact and linear in the
moments (G3): :func:`expected_rwcd_energy`; the expected one-step decrease has the closed form of
:func:`expected_one_step_decrease`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from refimpl.ad import Variable, linalg, ops
from refimpl.arguments import as_coordinate, as_real_scalar
from refimpl.wasserstein.composite import split_composite
from refimpl.wasserstein.coordinate_descent import (TraceRecorder, check_count, check_step_sizes,
                                                    coordinate_probabilities, coordinate_sequence,
                                                    coordinate_step_sizes)
from refimpl.wasserstein.energies import Energy
from refimpl.wasserstein.gaussian_flows import quadratic_structure
from refimpl.wasserstein.measures import GaussianMeasure, freeze_mean_cov


@dataclass(frozen=True, eq=False)
class GaussianMoments:
    """N(mean, cov) with cov symmetric positive *semi*-definite (degenerate laws allowed; module docstring)."""

    mean: np.ndarray
    cov: np.ndarray

    def __post_init__(self):
        freeze_mean_cov(self, positive_semidefinite=True)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def measure(self) -> GaussianMeasure:
        """The :class:`GaussianMeasure` (raises if cov is singular)."""
        return GaussianMeasure(self.mean, self.cov)

    def __repr__(self):
        return f"GaussianMoments(d={self.dim})"


def as_moments(state, name: str = "state") -> GaussianMoments:
    """A :class:`GaussianMoments` from a GaussianMoments or a GaussianMeasure."""
    if isinstance(state, GaussianMoments):
        return state
    if isinstance(state, GaussianMeasure):
        return GaussianMoments(state.mean, state.cov)
    raise TypeError(f"{name} must be a GaussianMeasure or GaussianMoments, got {type(state).__name__}")


class QuadraticGaussianEnergy:
    r"""F on Gaussians through its quadratic structure (A_m, r, G, σ) (module docstring), valid on PSD covariances.

    ``const`` is fixed so that :meth:`value` equals ``energy.gaussian_value`` (checked at N(0, I) on construction).
    Smoothness constants (derived, docs/theory/coordinate-descent.md §2): Lᵢ = Gᵢᵢ and L = λ_max(G), valid for the
    smooth part when the interaction matrices are positive semidefinite (then A_m ⪯ G); the entropy part has none.
    """

    def __init__(self, energy: Energy, d: int):
        if not isinstance(energy, Energy):
            raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")
        q = quadratic_structure(energy, d)
        self.energy, self.d = energy, d
        self.Am, self.r, self.G, self.sigma = q.mean_hessian, q.mean_linear, q.cov_hessian, q.entropy_weight
        ref = GaussianMeasure(np.zeros(d), np.eye(d))
        self.const = energy.gaussian_value(ref) - self._structural(ref.mean, ref.cov)

    def _structural(self, m, S):
        """Written with refimpl.ad ops/linalg: m, S may be tape Variables (:meth:`value`)."""
        val = 0.5 * m @ self.Am @ m - self.r @ m + 0.5 * ops.sum(self.G * S)
        if self.sigma != 0.0:
            sign, logdet = linalg.slogdet(S)
            if sign <= 0:
                if isinstance(S, Variable):
                    raise ValueError("S is singular: the entropy term has no derivative there")
                return math.inf if self.sigma > 0 else -math.inf
            val = val - 0.5 * self.sigma * logdet
        return val

    def value(self, m, S):
        """F(N(m, S)): a float for arrays; for tape Variables m, S a Variable, whose gradient is (b, M/2) of
        :meth:`velocity` (the symmetric part of the S-gradient)."""
        val = self._structural(m, S) + self.const
        return val if isinstance(val, Variable) else float(val)

    def velocity(self, m, S):
        """(b, M) of v(x) = b + M(x − m)."""
        M = self.G.copy()
        if self.sigma != 0.0:
            M = M - self.sigma * np.linalg.inv(S)
        return self.Am @ m - self.r, M

    def coordinate_smoothness(self) -> np.ndarray:
        return np.diag(self.G).copy()

    def smoothness(self) -> float:
        return float(np.linalg.eigvalsh(self.G)[-1])


# ---------------------------------------------------------------------------------------------------------- kernels
def _coordinate_push(m, S, i, eta, bi, Mi):
    m2 = m.copy()
    m2[i] -= eta * bi
    s = S @ Mi
    S2 = S.copy()
    S2[i, :] -= eta * s
    S2[:, i] -= eta * s
    S2[i, i] += eta * eta * float(Mi @ s)
    return m2, S2


def _conditional_variance(S, i):
    d = S.shape[0]
    if d == 1:
        return max(float(S[0, 0]), 0.0)
    rest = np.r_[0:i, i + 1:d]
    c = S[rest, i]
    sol = np.linalg.solve(S[np.ix_(rest, rest)], c)
    return max(float(S[i, i] - c @ sol), 0.0)


def _entropy_coordinate_prox(S, i, tau, s=None):
    s = _conditional_variance(S, i) if s is None else s
    root = 0.5 * (math.sqrt(s) + math.sqrt(s + 4.0 * tau))
    S2 = S.copy()
    S2[i, i] += root * root - s
    return S2


def _entropy_full_prox(S, tau):
    lam, V = np.linalg.eigh(0.5 * (S + S.T))
    lam = np.clip(lam, 0.0, None)
    new = 0.25 * (np.sqrt(lam) + np.sqrt(lam + 4.0 * tau)) ** 2
    S2 = (V * new) @ V.T
    return 0.5 * (S2 + S2.T)


def _full_push(m, S, eta, b, M):
    T = np.eye(S.shape[0]) - eta * M
    S2 = T @ S @ T.T
    return m - eta * b, 0.5 * (S2 + S2.T)


# ------------------------------------------------------------------------------------------------- public steps
def _model(energy, state, *, smooth_only=False):
    st = as_moments(state)
    if smooth_only:
        G, sigma, prox = split_composite(energy)
        if prox:
            raise NotImplementedError("Gaussian RWCP handles an entropic prox part only (separable non-smooth "
                                      "potentials leave the Gaussian family): use the particle representation")
        model = QuadraticGaussianEnergy(G, st.dim) if G is not None else None
        return st, model, sigma
    return st, QuadraticGaussianEnergy(energy, st.dim), 0.0


def gaussian_rwcd_step(energy: Energy, state, i, eta) -> GaussianMoments:
    """One RWCD step along eᵢ with step η on N(m, Σ) (module docstring, G1)."""
    st, model, _ = _model(energy, state)
    i = as_coordinate(i, st.dim)
    eta = as_real_scalar(eta, "eta", positive=True)
    if model.sigma != 0.0 and np.linalg.matrix_rank(st.cov) < st.dim:
        raise ValueError("state is degenerate and the energy has an entropy term: its gradient is undefined")
    b, M = model.velocity(st.mean, st.cov)
    return GaussianMoments(*_coordinate_push(st.mean, st.cov, i, eta, b[i], M[i]))


def gaussian_coordinate_entropy_prox(state, i, tau) -> GaussianMoments:
    """The JKO step of τℋ restricted to eᵢ-displacements (G5; module docstring).

    Conditioning: s' = ((√s + √(s + 4τ))/2)² has ds'/ds = ∞ at s = 0, so on a (nearly) degenerate state the result
    carries an absolute error ~√(ε‖Σ‖τ) from the rounding of the Schur complement; :func:`gaussian_rwcp_step` avoids
    this by carrying s through the forward step exactly."""
    st = as_moments(state)
    i = as_coordinate(i, st.dim)
    tau = as_real_scalar(tau, "tau", positive=True)
    return GaussianMoments(st.mean, _entropy_coordinate_prox(st.cov, i, tau))


def gaussian_entropy_prox(state, tau) -> GaussianMoments:
    """The full JKO step of τℋ: Σ' = ¼(Σ^{1/2} + (Σ + 4τI)^{1/2})² (G6), mean unchanged."""
    st = as_moments(state)
    tau = as_real_scalar(tau, "tau", positive=True)
    return GaussianMoments(st.mean, _entropy_full_prox(st.cov, tau))


#: RWCP prox variants: the two readings of the entropy prox of an RWCP step (docs/theory/coordinate-descent.md §4);
#: both exist
PROX_VARIANTS = ("coordinate", "full")


def _check_prox(prox):
    if prox not in PROX_VARIANTS:
        raise ValueError(f"prox must be one of {PROX_VARIANTS}, got {prox!r}")
    return prox


def gaussian_rwcp_step(energy: Energy, state, i, eta, *, prox: str = "coordinate") -> GaussianMoments:
    """One RWCP step for F = G + σℋ: RWCD step on G along eᵢ, then the entropy prox with τ = ση — restricted to
    eᵢ-displacements (``prox="coordinate"``, our reading) or the full JKO step G6 (``prox="full"``, the alternative
    reading of docs/theory/coordinate-descent.md §4; it gives the entropy d times the weight of the smooth part per
    epoch, so the target is not a fixed point: the tests measure the bias)."""
    st, model, sigma = _model(energy, state, smooth_only=True)
    i = as_coordinate(i, st.dim)
    eta = as_real_scalar(eta, "eta", positive=True)
    if _check_prox(prox) == "full":
        m, S = st.mean, st.cov
        if model is not None:
            b, M = model.velocity(m, S)
            m, S = _coordinate_push(m, S, i, eta, b[i], M[i])
        return GaussianMoments(m, _entropy_full_prox(S, sigma * eta) if sigma > 0 else S)
    return GaussianMoments(*_rwcp_update(model, sigma, st.mean, st.cov, i, eta))


def _rwcp_update(model, sigma, m, S, i, eta):
    """Forward coordinate step on G, then the coordinate entropy prox. The conditional variance of xᵢ | x₋ᵢ after
    the forward step is computed as (1 − ηMᵢᵢ)² s (x₋ᵢ does not move, xᵢ is scaled by 1 − ηMᵢᵢ given x₋ᵢ), not
    from the new Σ: at η = 1/Mᵢᵢ that Σ is singular and its Schur complement is pure rounding (~ε‖Σ‖), which the
    square root in G4 would amplify to ~√ε."""
    s = _conditional_variance(S, i) if sigma > 0 else None
    if model is not None:
        b, M = model.velocity(m, S)
        m, S = _coordinate_push(m, S, i, eta, b[i], M[i])
        if s is not None:
            s = (1.0 - eta * M[i, i]) ** 2 * s
    if sigma > 0:
        S = _entropy_coordinate_prox(S, i, sigma * eta, s)
    return m, S


def gaussian_wgd_step(energy: Energy, state, eta) -> GaussianMoments:
    """One full Wasserstein gradient (forward Euler) step: m' = m − ηb, Σ' = (I − ηM)Σ(I − ηM)."""
    st, model, _ = _model(energy, state)
    eta = as_real_scalar(eta, "eta", positive=True)
    return GaussianMoments(*_full_push(st.mean, st.cov, eta, *model.velocity(st.mean, st.cov)))


def gaussian_wpg_step(energy: Energy, state, eta) -> GaussianMoments:
    """One full Wasserstein proximal-gradient step for F = G + σℋ: GD step on G, then the entropy JKO (τ = ση)."""
    st, model, sigma = _model(energy, state, smooth_only=True)
    eta = as_real_scalar(eta, "eta", positive=True)
    m, S = st.mean, st.cov
    if model is not None:
        m, S = _full_push(m, S, eta, *model.velocity(m, S))
    if sigma > 0:
        S = _entropy_full_prox(S, sigma * eta)
    return GaussianMoments(m, S)


# ------------------------------------------------------------------------------------------------------ drivers
def _check_driver(energy, g0, n_steps, record_every):
    if not isinstance(energy, Energy):
        raise TypeError(f"energy must be an Energy, got {type(energy).__name__}")
    st = as_moments(g0, "g0")
    n_steps = check_count(n_steps, "n_steps")
    record_every = check_count(record_every, "record_every")
    if record_every < 1:
        raise ValueError("record_every must be >= 1")
    return st, n_steps, record_every


def _coordinate_driver(method, energy, g0, n_steps, *, sampling, seed, step_sizes, record_every, proximal, stop_at):
    st, n_steps, record_every = _check_driver(energy, g0, n_steps, record_every)
    d = st.dim
    full = QuadraticGaussianEnergy(energy, d)
    if proximal:
        _, smooth, sigma = _model(energy, st, smooth_only=True)
        L = None if smooth is None else smooth.coordinate_smoothness()
    else:
        smooth, sigma = full, 0.0
        if full.sigma != 0.0:
            raise ValueError("energy has an entropy term: RWCD needs finite coordinate-wise constants; use gaussian_rwcp")
        L = full.coordinate_smoothness()
    if L is None:
        raise ValueError("energy has no smooth part: nothing for a coordinate step to act on")
    p = coordinate_probabilities(L, sampling)
    eta = coordinate_step_sizes(L, step_sizes)
    coords = coordinate_sequence(p, n_steps, seed)
    m, S = st.mean.copy(), st.cov.copy()
    rec = TraceRecorder(full.value(m, S))
    for k, i in enumerate(coords, start=1):
        rec.start()
        m, S = _rwcp_update(smooth, sigma, m, S, i, eta[i])
        rec.stop()
        if k % record_every == 0 or k == n_steps:
            rec.record(k / d, full.value(m, S))
            if stop_at is not None and rec.energy[-1] <= stop_at:
                coords = coords[:k]
                break
    return rec.trace(method, coords, GaussianMoments(m, S), probabilities=p, step_sizes=eta, sampling=sampling)


def gaussian_rwcd(energy: Energy, g0, n_steps: int, *, sampling: str = "uniform", seed: int = 0, step_sizes=None,
                  record_every: int = 1, stop_at=None):
    """``n_steps`` RWCD steps from g0 (coordinates i.i.d. by ``sampling``; ηᵢ = 1/Lᵢ unless ``step_sizes``);
    stops early at the first record with F ≤ ``stop_at`` if given.

    Returns a :class:`~refimpl.wasserstein.coordinate_descent.DescentTrace` (cost in gradient equivalents: 1/d a step).
    """
    return _coordinate_driver(f"RWCD ({sampling})", energy, g0, n_steps, sampling=sampling, seed=seed,
                              step_sizes=step_sizes, record_every=record_every, proximal=False,
                              stop_at=_stop(stop_at))


def gaussian_rwcp(energy: Energy, g0, n_steps: int, *, sampling: str = "uniform", seed: int = 0, step_sizes=None,
                  record_every: int = 1, stop_at=None):
    """``n_steps`` RWCP steps for F = G + σℋ from g0 (Lᵢ those of G; ηᵢ = 1/Lᵢ unless ``step_sizes``); ``stop_at``
    as in :func:`gaussian_rwcd`."""
    return _coordinate_driver(f"RWCP ({sampling})", energy, g0, n_steps, sampling=sampling, seed=seed,
                              step_sizes=step_sizes, record_every=record_every, proximal=True,
                              stop_at=_stop(stop_at))


def _stop(stop_at):
    return None if stop_at is None else as_real_scalar(stop_at, "stop_at")


def _full_driver(method, energy, g0, n_steps, step, proximal, stop_at=None):
    st, n_steps, _ = _check_driver(energy, g0, n_steps, 1)
    full = QuadraticGaussianEnergy(energy, st.dim)
    if proximal:
        _, smooth, sigma = _model(energy, st, smooth_only=True)
    else:
        smooth, sigma = full, 0.0
    if step is None:
        if smooth is None or (not proximal and full.sigma != 0.0):
            raise ValueError("step is required: the energy has no finite smoothness constant L (entropy term)")
        eta = 1.0 / smooth.smoothness()
    else:
        eta = as_real_scalar(step, "step", positive=True)
        if smooth is not None and (proximal or full.sigma == 0.0):
            check_step_sizes(eta, smooth.smoothness(), "step")
    m, S = st.mean.copy(), st.cov.copy()
    rec = TraceRecorder(full.value(m, S))
    for k in range(1, n_steps + 1):
        rec.start()
        if smooth is not None:
            m, S = _full_push(m, S, eta, *smooth.velocity(m, S))
        if sigma > 0:
            S = _entropy_full_prox(S, sigma * eta)
        rec.stop()
        rec.record(float(k), full.value(m, S))
        if stop_at is not None and rec.energy[-1] <= stop_at:
            break
    return rec.trace(method, [], GaussianMoments(m, S), step=eta)


def gaussian_wgd(energy: Energy, g0, n_steps: int, *, step=None, stop_at=None):
    """Full Wasserstein gradient descent (forward Euler), η = 1/L by default (L = λ_max(G)); optional early stop."""
    return _full_driver("WGD", energy, g0, n_steps, step, proximal=False, stop_at=_stop(stop_at))


def gaussian_wpg(energy: Energy, g0, n_steps: int, *, step=None, stop_at=None):
    """Full Wasserstein proximal gradient for F = G + σℋ, η = 1/L(G) by default; optional early stop."""
    return _full_driver("WPG", energy, g0, n_steps, step, proximal=True, stop_at=_stop(stop_at))


# ------------------------------------------------------------------------------------------- exact expectations
def _moments_of(state):
    """(m, Σ) of a Gaussian state or, for an (N, d) particle array, the empirical mean and 1/N covariance."""
    if isinstance(state, (GaussianMoments, GaussianMeasure)):
        return state.mean, state.cov
    from refimpl.arguments import as_particles
    X = as_particles(state, "state")
    m = X.mean(axis=0)
    D = X - m
    return m, D.T @ D / X.shape[0]


def expected_one_step_decrease(energy: Energy, state, *, sampling: str = "uniform", step_sizes=None) -> float:
    r"""E_i[F(ρ) − F(ρ⁺)] for one RWCD step, in closed form (derived; quadratic energies without entropy).

    Along eᵢ with φ = −ηgᵢ, gᵢ = ∂ᵢu = μᵢ + (G(x − m))ᵢ, μ = A_m m − r: F is exactly quadratic in the displacement,
    F(ρ⁺) − F(ρ) = −η(μᵢ² + vᵢ) + ½η²((A_m)ᵢᵢ μᵢ² + Gᵢᵢ vᵢ), vᵢ = (GΣG)ᵢᵢ = Var gᵢ, so
    E_i[decrease] = Σᵢ pᵢ [ηᵢ(μᵢ² + vᵢ) − ½ηᵢ²((A_m)ᵢᵢμᵢ² + Gᵢᵢvᵢ)].
    ``state`` is a Gaussian (m, Σ) or particles (empirical mean and 1/N covariance: the particle energy of a quadratic
    energy is the same formula in the empirical moments).
    """
    m, S = _moments_of(state)
    model = QuadraticGaussianEnergy(energy, m.shape[0])
    if model.sigma != 0.0:
        raise ValueError("energy has an entropy term: no finite coordinate-wise constants")
    L = model.coordinate_smoothness()
    p = coordinate_probabilities(L, sampling)
    eta = coordinate_step_sizes(L, step_sizes)
    mu = model.Am @ m - model.r
    v = np.einsum("ij,jk,ki->i", model.G, S, model.G)
    dec = eta * (mu * mu + v) - 0.5 * eta * eta * (np.diag(model.Am) * mu * mu + np.diag(model.G) * v)
    return float(p @ dec)


def expected_rwcd_energy(energy: Energy, g0, n_steps: int, *, sampling: str = "uniform", step_sizes=None):
    r"""E F(ρ_k), k = 0 … n_steps, over the i.i.d. coordinate choice, exactly (G3 generalised; derived).

    Each RWCD step is linear in Z = E[m̃m̃ᵀ] (m̃ = (m, 1)) and in Σ: m̃' = (I − eᵢwᵢᵀ)m̃ with wᵢ = ηᵢ((A_m)ᵢ, −rᵢ),
    Σ' = (I − ηᵢeᵢGᵢᵀ)Σ(·)ᵀ. Averaging over i with weights pᵢ:
    E Z' = Z − PWZ − ZWᵀP + diag(pᵢ wᵢᵀZwᵢ), E Σ' = Σ − PHΣ − ΣHᵀP + diag(pᵢηᵢ²(GΣG)ᵢᵢ), P = diag(p), W rows wᵢ,
    H = diag(η)G; and E F = ½tr(A_m Z_mm) − rᵀE m + ½tr(G EΣ) + const is linear in (Z, EΣ).
    """
    st = as_moments(g0, "g0")
    n_steps = check_count(n_steps, "n_steps")
    d = st.dim
    model = QuadraticGaussianEnergy(energy, d)
    if model.sigma != 0.0:
        raise ValueError("energy has an entropy term: the RWCD dynamics are not linear in the moments")
    L = model.coordinate_smoothness()
    p = coordinate_probabilities(L, sampling)
    eta = coordinate_step_sizes(L, step_sizes)
    mt = np.append(st.mean, 1.0)
    Z = np.outer(mt, mt)
    W = np.zeros((d + 1, d + 1))
    W[:d, :d] = eta[:, None] * model.Am
    W[:d, d] = -eta * model.r
    pe = np.append(p, 0.0)
    H = eta[:, None] * model.G
    S = st.cov.copy()

    def value(Z, S):
        return 0.5 * float(np.sum(model.Am * Z[:d, :d])) - model.r @ Z[:d, d] + 0.5 * float(np.sum(model.G * S)) \
            + model.const

    out = [value(Z, S)]
    for _ in range(n_steps):
        WZ = W @ Z
        Z = Z - pe[:, None] * WZ - (pe[:, None] * WZ).T + np.diag(pe * np.einsum("ij,ij->i", WZ, W))
        HS = H @ S
        S = S - p[:, None] * HS - (p[:, None] * HS).T + np.diag(p * np.einsum("ij,ij->i", HS, H))
        out.append(value(Z, S))
    return np.asarray(out)


__all__ = ["GaussianMoments", "as_moments", "QuadraticGaussianEnergy", "gaussian_rwcd_step",
           "gaussian_coordinate_entropy_prox", "gaussian_entropy_prox", "gaussian_rwcp_step", "gaussian_wgd_step",
           "gaussian_wpg_step", "gaussian_rwcd", "gaussian_rwcp", "gaussian_wgd", "gaussian_wpg",
           "expected_one_step_decrease", "expected_rwcd_energy"]
