r"""Exact 1-D forward-Euler push-forwards of KL(·‖π), in Lagrangian coordinates (paper [C] arXiv 2406.08209;
docs/theory/forward-euler-breakdown.md §2).

Target π = N(μ, s²), U(y) = (y − μ)²/(2s²). A density ρ₀ on ℝ is given by the Taylor jets of its normalised
log-density ℓ₀ = log ρ₀ (:class:`Density1D`). Forward Euler for KL(·‖π) moves mass by Tₙ = Id − h ∂_y log(ρₙ/π).
Label mass by its initial position x (Lagrangian coordinate): Φ₀(x) = x, Φₙ₊₁ = Φₙ − h wₙ with

    wₙ(x) = ∂_y log(ρₙ/π)(Φₙ(x)) = [ℓ₀′(x) − Φₙ″(x)/Φₙ′(x)] / Φₙ′(x) + U′(Φₙ(x))              (derived)

because, while Φₙ is increasing, the change of variables gives ρₙ(Φₙ(x)) = ρ₀(x)/Φₙ′(x) (ρ₁(T(x)) = ρ₀(x)/T′(x)),
so log ρₙ∘Φₙ = ℓ₀ − log Φₙ′ and the chain rule divides by Φₙ′. Every quantity is a :class:`~refimpl.wasserstein.jets.Jet`
in x, so no numerical differentiation is involved; each step consumes two orders of the jet (w needs Φ″, and Φₙ₊₁′
needs wₙ′) — the "derivative consumption" of [C]/arXiv 2509.13260, made literal.

Quantities (all exact up to quadrature, for increasing Φₙ):

* relative Fisher information I(ρₙ|π) = ∫ |∂ log(ρₙ/π)|² dρₙ = ∫ wₙ(x)² ρ₀(x) dx; plain Fisher information
  I(ρₙ) = ∫ (wₙ − U′(Φₙ))² ρ₀ dx; truncated versions integrate over |x| > δ (Lagrangian cut-off) or over
  |Φₙ(x) − Φₙ(x₀)| > δ (Eulerian cut-off around the image of x₀);
* KL(ρₙ‖π) = ∫ ρ₀ [ℓ₀ − log Φₙ′ + U(Φₙ) + log Z_π] dx;
* if Φₙ′ < 0 somewhere, Tₙ₋₁ folds: ρₙ(y) = Σ_{x: Φₙ(x) = y} ρ₀(x)/|Φₙ′(x)| (:func:`branch_density`), and at the
  fold points (Φₙ′ = 0) ρₙ ~ |y − y*|^{−1/2} (caustics).

Quadrature: :class:`LogGrid` puts x = ±e^t on a uniform t-grid, δ_min ≤ |x| ≤ x_max, and integrates ∫ g dx =
∫ g(±e^t) e^t dt by the trapezoid rule in t; that resolves integrands ~1/|x| (logarithmic divergences) and gives
every Lagrangian cut-off δ ∈ [δ_min, x_max] from one cumulative sum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import special
from scipy.integrate import quad

from refimpl.arguments import as_points_1d, as_real_scalar
from refimpl.wasserstein.jets import Jet, abs_power_jet, logsumexp_jets
from refimpl.wasserstein.measures import check_sample_request


# =================================================================================================================
# target and initial densities
# =================================================================================================================

@dataclass(frozen=True)
class GaussianTarget1D:
    """π = N(mean, var): U(y) = (y − mean)²/(2 var), U′(y) = (y − mean)/var, log Z = ½ log(2π var)."""

    mean: float = 0.0
    var: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "mean", as_real_scalar(self.mean, "mean"))
        object.__setattr__(self, "var", as_real_scalar(self.var, "var", positive=True))

    def potential(self, y):
        return (np.asarray(y) - self.mean) ** 2 / (2.0 * self.var)

    def potential_derivative(self, y):
        """U′ on arrays or jets (it is affine, so it composes with a jet exactly)."""
        return (y - self.mean) * (1.0 / self.var)

    @property
    def log_normalizer(self) -> float:
        return 0.5 * math.log(2.0 * math.pi * self.var)


class Density1D:
    """A probability density on ℝ through its normalised log-density jets; subclasses implement
    ``log_density_jet(x, order)``, ``cdf(x)`` and ``sample(n, seed)``. ``singular_points`` lists where ℓ₀ is not smooth
    (the grids must avoid them)."""

    name = "density"
    singular_points: tuple = ()

    def log_density_jet(self, x, order: int) -> Jet:
        raise NotImplementedError

    def density(self, x):
        return np.exp(self.log_density_jet(as_points_1d(x, "x"), 0).value)

    def cdf(self, x):
        raise NotImplementedError

    def sample(self, n: int, seed: int):
        raise NotImplementedError

    def quantile(self, u, *, tabulation=None):
        """F⁻¹(u) for u ∈ (0, 1), by bisection on the (monotone) :meth:`cdf` to machine precision."""
        u = np.asarray(u, dtype=np.float64)
        if np.any((u <= 0) | (u >= 1)):
            raise ValueError("u must lie in (0, 1)")
        lo, hi = np.full(u.shape, -1.0), np.full(u.shape, 1.0)
        while np.any(self.cdf(lo) > u):
            lo = np.where(self.cdf(lo) > u, 2 * lo, lo)
        while np.any(self.cdf(hi) < u):
            hi = np.where(self.cdf(hi) < u, 2 * hi, hi)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            below = self.cdf(mid) < u
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
            if np.all(hi - lo <= 4e-16 * np.maximum(1.0, np.abs(mid))):
                break
        return 0.5 * (lo + hi)


class AbsPowerDensity(Density1D):
    r"""ρ₀(x) = exp(−|x|^p)/Z, Z = 2Γ(1 + 1/p) (p > 1). For p = 3/2: the [C] example of
    docs/theory/forward-euler-breakdown.md §4.

    Fisher information I(ρ₀) = p² E|x|^{2p−2} = p² Γ((2p−1)/p)/Γ(1/p) (derived with u = |x|^p; p = 3/2 gives
    (9/4)Γ(4/3)/Γ(2/3) ≈ 1.4838). CDF ½ ± ½ P(1/p, |x|^p) (regularised incomplete gamma); samples ±G^{1/p}, G ~ Gamma(1/p).
    """

    singular_points = (0.0,)

    def __init__(self, p: float = 1.5):
        self.p = as_real_scalar(p, "p", positive=True)
        if self.p <= 1:
            raise ValueError(f"p must be > 1 (finite Fisher information), got {self.p}")
        self.log_z = math.log(2.0) + math.lgamma(1.0 + 1.0 / self.p)
        self.name = f"exp(-|x|^{self.p:g})"

    def log_density_jet(self, x, order):
        return -abs_power_jet(x, self.p, order) - self.log_z

    def cdf(self, x):
        x = np.asarray(x, dtype=np.float64)
        return 0.5 + 0.5 * np.sign(x) * special.gammainc(1.0 / self.p, np.abs(x) ** self.p)

    def sample(self, n, seed):
        check_sample_request(n, seed)
        rng = np.random.default_rng(int(seed))
        g = rng.gamma(1.0 / self.p, size=int(n))
        return np.where(rng.random(int(n)) < 0.5, -1.0, 1.0) * g ** (1.0 / self.p)

    def fisher_information(self) -> float:
        """I(ρ₀) = p² Γ((2p − 1)/p)/Γ(1/p) (class docstring)."""
        p = self.p
        return p * p * math.exp(math.lgamma((2 * p - 1) / p) - math.lgamma(1 / p))


class TiltedGaussianDensity(Density1D):
    r"""ρ₀ ∝ π(x) exp(−c|x − μ|^p), π = N(μ, s²): log(ρ₀/π) = −c|x − μ|^p + const has exactly one non-smooth point.

    With p = 3/2 + 2k, log(ρ₀/π) is C^{k+1} at μ; each forward Euler step turns a |x|^q singularity of log(ρ/π) into a
    |x|^{q−2} one (derived: Tₙ′ = 1 − h ∂² log(ρₙ/π) ~ 1 + C|x|^{q−2} enters log ρₙ₊₁ through −log Tₙ′), so I(ρₙ|π) is
    finite for n ≤ k and infinite at n = k + 1 (the q = 3/2 → ρ ~ |y| mechanism of the first example).
    Normaliser by adaptive quadrature; CDF from a tabulated cumulative integral; samples by rejection from π.
    """

    def __init__(self, target: GaussianTarget1D, c: float, p: float):
        if not isinstance(target, GaussianTarget1D):
            raise TypeError("target must be a GaussianTarget1D")
        self.target = target
        self.c = as_real_scalar(c, "c", positive=True)
        self.p = as_real_scalar(p, "p", positive=True)
        self.singular_points = (target.mean,)
        mu, s = target.mean, math.sqrt(target.var)
        f = lambda x: math.exp(-(x - mu) ** 2 / (2 * s * s) - self.c * abs(x - mu) ** self.p)
        half = quad(f, mu, mu + 40 * s, epsabs=0, epsrel=1e-13, limit=200)[0]
        self.log_z = math.log(2.0 * half)
        # tabulated CDF on a fine grid (trapezoid error ~1e-12 at this spacing for this smooth-away-from-μ integrand)
        self._grid = np.linspace(mu - 40 * s, mu + 40 * s, 400_001)
        dens = np.exp(self.log_density_jet(np.where(self._grid == mu, mu + 1e-300, self._grid), 0).value)
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(self._grid))])
        self._cum = cum / cum[-1]
        self.name = f"N({mu:g},{target.var:g})*exp(-{self.c:g}|x|^{self.p:g})"

    def log_density_jet(self, x, order):
        x = np.asarray(x, dtype=np.float64)
        mu, v = self.target.mean, self.target.var
        X = Jet.variable(x, order)
        return (-(X - mu) * (X - mu) * (0.5 / v) - self.c * abs_power_jet(x - mu, self.p, order) - self.log_z)

    def cdf(self, x):
        return np.interp(np.asarray(x, dtype=np.float64), self._grid, self._cum)

    def sample(self, n, seed):
        check_sample_request(n, seed)
        rng = np.random.default_rng(int(seed))
        out = np.empty(0)
        while out.size < n:
            y = self.target.mean + math.sqrt(self.target.var) * rng.standard_normal(2 * int(n))
            keep = rng.random(y.size) < np.exp(-self.c * np.abs(y - self.target.mean) ** self.p)
            out = np.concatenate([out, y[keep]])
        return out[: int(n)]


class GaussianMixtureDensity(Density1D):
    """ρ₀ = Σ_c w_c N(a_c, s_c²): smooth, finite Fisher information; log-density jets by a stable log-sum-exp."""

    def __init__(self, means, sds, weights):
        self.means = as_points_1d(means, "means")
        self.sds = as_points_1d(sds, "sds")
        self.weights = as_points_1d(weights, "weights")
        if not (self.means.shape == self.sds.shape == self.weights.shape):
            raise ValueError("means, sds and weights must have the same length")
        if np.any(self.sds <= 0) or np.any(self.weights <= 0):
            raise ValueError("sds and weights must be > 0")
        self.weights = self.weights / self.weights.sum()
        self.name = "mixture(" + ", ".join(f"{w:.2g}N({a:g},{s:.3g}^2)" for a, s, w in
                                           zip(self.means, self.sds, self.weights)) + ")"

    def log_density_jet(self, x, order):
        x = np.asarray(x, dtype=np.float64)
        X = Jet.variable(x, order)
        comps = [(X - a) * (X - a) * (-0.5 / (s * s)) + (math.log(w) - math.log(s) - 0.5 * math.log(2 * math.pi))
                 for a, s, w in zip(self.means, self.sds, self.weights)]
        return logsumexp_jets(comps)

    def cdf(self, x):
        x = np.asarray(x, dtype=np.float64)
        return sum(w * special.ndtr((x - a) / s) for a, s, w in zip(self.means, self.sds, self.weights))

    def sample(self, n, seed):
        check_sample_request(n, seed)
        rng = np.random.default_rng(int(seed))
        c = rng.choice(self.means.size, size=int(n), p=self.weights)
        return self.means[c] + self.sds[c] * rng.standard_normal(int(n))


class GaussianDensity1D(GaussianMixtureDensity):
    """N(mean, var) — the control case: every forward Euler map is affine."""

    def __init__(self, mean: float, var: float):
        var = as_real_scalar(var, "var", positive=True)
        super().__init__([mean], [math.sqrt(var)], [1.0])
        self.name = f"N({float(mean):g},{var:g})"


# =================================================================================================================
# quadrature grid
# =================================================================================================================

@dataclass(frozen=True)
class LogGrid:
    """x = c ± e^t, t uniform on [log δ_min, log x_max] (``n_per_side`` points a side); trapezoid weights in t.

    ``x`` is sorted increasingly (negative side first); ``weights`` integrate ∫_{δ_min ≤ |x−c| ≤ x_max} g dx.
    """

    delta_min: float
    x_max: float
    n_per_side: int
    center: float = 0.0
    x: np.ndarray = field(init=False, repr=False)
    weights: np.ndarray = field(init=False, repr=False)
    t: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        dmin = as_real_scalar(self.delta_min, "delta_min", positive=True)
        xmax = as_real_scalar(self.x_max, "x_max", positive=True)
        if not dmin < xmax:
            raise ValueError(f"delta_min must be < x_max, got {dmin} and {xmax}")
        n = self.n_per_side
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 3:
            raise ValueError(f"n_per_side must be an integer >= 3, got {n!r}")
        t = np.linspace(math.log(dmin), math.log(xmax), int(n))
        dt = t[1] - t[0]
        wt = np.full(t.size, dt)
        wt[0] = wt[-1] = 0.5 * dt
        r = np.exp(t)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "x", np.concatenate([self.center - r[::-1], self.center + r]))
        object.__setattr__(self, "weights", np.concatenate([(wt * r)[::-1], wt * r]))

    def integral(self, values) -> float:
        return float(np.sum(self.weights * values))

    def truncated_integrals(self, values, cutoffs):
        """∫_{δ ≤ |x − c| ≤ x_max} g dx for every δ in ``cutoffs`` (δ_min ≤ δ ≤ x_max): cumulative trapezoid in t
        from the outside in, interpolated linearly in t at log δ."""
        cut = np.asarray(cutoffs, dtype=np.float64)
        if np.any(cut < self.delta_min * (1 - 1e-12)) or np.any(cut > self.x_max):
            raise ValueError(f"cutoffs must lie in [{self.delta_min:g}, {self.x_max:g}]")
        n = self.t.size
        r = np.exp(self.t)
        dt = self.t[1] - self.t[0]
        out = np.zeros(cut.shape)
        for side in (values[:n][::-1], values[n:]):
            f = side * r  # integrand in t
            seg = 0.5 * dt * (f[1:] + f[:-1])
            tail = np.concatenate([np.cumsum(seg[::-1])[::-1], [0.0]])  # ∫_{t_k}^{t_max}
            out += np.interp(np.log(cut), self.t, tail)
        return out


# =================================================================================================================
# Lagrangian forward Euler
# =================================================================================================================

@dataclass(eq=False)
class LagrangianState:
    """Forward Euler iterate n in Lagrangian coordinates at the points x.

    ``positions`` Φₙ (a Jet), ``velocity`` wₙ = ∂ log(ρₙ/π)∘Φₙ (a Jet, or None once the jet order is used up),
    ``log_rho0`` ℓ₀ (order-0 values). ``monotone``: Φₙ increasing (then the change of variables holds)."""

    n: int
    x: np.ndarray
    positions: Jet
    velocity: Jet | None
    log_rho0: np.ndarray
    target: GaussianTarget1D

    @property
    def jacobian(self):
        return self.positions.derivative_value(1)

    @property
    def monotone(self) -> bool:
        """Φₙ increasing on the points: Φₙ′ > 0 everywhere *and* the positions in order (a map can be increasing on
        each side of a singular point and still swap the sides, as the second step of the |x|^{3/2} example does)."""
        return self.monotone_on(None)

    def monotone_on(self, where) -> bool:
        """:attr:`monotone` restricted to the points selected by the boolean mask ``where`` (None: all points).

        Order violations smaller than 1e-12·max(1, max|Φₙ|) are rounding (points 1e-22 apart moved by a velocity
        computed to ~1e-17), not folds; Φₙ′ > 0 is required strictly."""
        j, p = self.jacobian, self.positions.value
        if where is not None:
            where = np.asarray(where, dtype=bool)
            j, p = j[where], p[where]
        tol = 1e-12 * max(1.0, float(np.max(np.abs(p)))) if p.size else 0.0
        return bool(np.all(j > 0) and np.all(np.diff(p) > -tol))

    @property
    def density_at_positions(self):
        """ρₙ(Φₙ(x)) = ρ₀(x)/Φₙ′(x) (valid where Φₙ is increasing)."""
        return np.exp(self.log_rho0) / self.jacobian


def forward_euler_lagrangian(density: Density1D, target: GaussianTarget1D, h, n_steps: int, x, *,
                             order: int | None = None) -> list[LagrangianState]:
    """States n = 0..n_steps of forward Euler for KL(·‖π) from ρ₀ = ``density`` (module docstring).

    ``order`` (default 2·n_steps + 3) is the jet order of ℓ₀; the velocity of state n needs order ≥ 2n + 2 and
    the Jacobian of state n order ≥ 2n + 1. Points x must avoid ``density.singular_points``. Once a map has folded
    (Φₙ′ ≤ 0 somewhere) the formulas no longer describe ρₙ and the velocity is NaN where Φₙ′ ≤ 0: check
    ``state.monotone`` before reading Fisher informations.
    """
    if not isinstance(density, Density1D):
        raise TypeError(f"density must be a Density1D, got {type(density).__name__}")
    if not isinstance(target, GaussianTarget1D):
        raise TypeError(f"target must be a GaussianTarget1D, got {type(target).__name__}")
    h = as_real_scalar(h, "h", positive=True)
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    x = as_points_1d(x, "x")
    for s in density.singular_points:
        if np.any(x == s):
            raise ValueError(f"x contains the non-smooth point {s} of {density.name}")
    K = 2 * int(n_steps) + 3 if order is None else int(order)
    if K < 2 * int(n_steps) + 1:
        raise ValueError(f"order must be >= 2*n_steps + 1 = {2 * int(n_steps) + 1}, got {K}")
    ell = density.log_density_jet(x, K)
    phi = Jet.variable(x, K)
    states = []
    for n in range(int(n_steps) + 1):
        w = None
        if phi.order >= 2:
            dphi = phi.derivative()
            with np.errstate(invalid="ignore", divide="ignore"):  # after a fold, w is NaN where Φ′ ≤ 0
                w = (ell - dphi.log()).derivative() / dphi + target.potential_derivative(phi)
        states.append(LagrangianState(n, x, phi, w, ell.value.copy(), target))
        if n < n_steps:
            if w is None:
                raise ValueError("jet order exhausted: raise `order`")
            phi = phi - w * h
    return states


def fisher_information(state: LagrangianState, grid: LogGrid, *, relative: bool = True, cutoffs=None,
                       eulerian_center=None):
    """(Truncated) Fisher information of ρₙ by Lagrangian quadrature on ``grid`` (state.x must be grid.x).

    relative=True: I(ρₙ|π) = ∫ wₙ² ρ₀ dx; False: I(ρₙ) = ∫ (wₙ − U′(Φₙ))² ρ₀ dx. ``cutoffs`` None → the integral
    over δ_min ≤ |x| ≤ x_max; else an array of truncated integrals, over |x − c| ≥ δ (Lagrangian cut-off), or, with
    ``eulerian_center`` = y₀, over |Φₙ(x) − y₀| ≥ δ (Φₙ must be increasing; δ mapped back to x by interpolation).
    """
    if state.velocity is None:
        raise ValueError("state has no velocity jet (order exhausted)")
    if state.x.shape != grid.x.shape or not np.array_equal(state.x, grid.x):
        raise ValueError("state.x must be the grid points grid.x")
    w = state.velocity.value
    if not relative:
        w = w - state.target.potential_derivative(state.positions.value)
    integrand = w * w * np.exp(state.log_rho0)
    if cutoffs is None:
        return grid.integral(integrand)
    if eulerian_center is None:
        return grid.truncated_integrals(integrand, cutoffs)
    if not state.monotone:
        raise ValueError("an Eulerian cut-off needs an increasing map")
    n = grid.t.size
    y = state.positions.value - eulerian_center
    cut = np.asarray(cutoffs, dtype=np.float64)
    # Lagrangian radii r± with Φ(c ± r±) = y₀ ± δ (interpolation in t on each monotone side)
    out = np.zeros(cut.shape)
    r = np.exp(grid.t)
    dt = grid.t[1] - grid.t[0]
    for side, sgn in ((slice(None, n), -1.0), (slice(n, None), 1.0)):
        yy = sgn * y[side]
        f = integrand[side]
        if sgn < 0:
            yy, f = yy[::-1], f[::-1]
        g = f * r
        tail = np.concatenate([np.cumsum((0.5 * dt * (g[1:] + g[:-1]))[::-1])[::-1], [0.0]])
        if np.any(cut < yy[0]) or np.any(cut > yy[-1]):
            raise ValueError(f"Eulerian cut-offs must lie in the image [{yy[0]:.3g}, {yy[-1]:.3g}] of the grid on each "
                             "side: refine delta_min or reduce the cut-offs")
        t_cut = np.interp(cut, yy, grid.t)
        out += np.interp(t_cut, grid.t, tail)
    return out


def kl_divergence(state: LagrangianState, grid: LogGrid, where=None) -> float:
    """KL(ρₙ‖π) = ∫ ρ₀ [ℓ₀ − log Φₙ′ + U(Φₙ) + log Z_π] dx (increasing Φₙ; Lagrangian quadrature), optionally
    restricted to the Lagrangian points ``where`` (a boolean mask; the map must be increasing there)."""
    if not state.monotone_on(where):
        raise ValueError("KL by change of variables needs an increasing map")
    t = state.target
    with np.errstate(invalid="ignore", divide="ignore"):
        integrand = np.exp(state.log_rho0) * (state.log_rho0 - np.log(state.jacobian)
                                              + t.potential(state.positions.value) + t.log_normalizer)
    if where is not None:
        integrand = np.where(where, integrand, 0.0)
    return grid.integral(integrand)


# =================================================================================================================
# Eulerian densities: change of variables and branch sums
# =================================================================================================================

def branch_density(y, x, positions, jacobian, rho0):
    r"""ρ(y) = Σ_{x: Φ(x) = y} ρ₀(x)/|Φ′(x)| for a map Φ tabulated at sorted points x (any number of monotone
    pieces, split where Φ′ changes sign); each piece is inverted by linear interpolation. Points y outside a piece's
    range get no contribution from it. For an increasing Φ this is the change of variables ρ₁(Φ(x)) = ρ₀(x)/Φ′(x)."""
    y = as_points_1d(y, "y")
    x = as_points_1d(x, "x")
    positions, jacobian, rho0 = (np.asarray(a, dtype=np.float64) for a in (positions, jacobian, rho0))
    if not (positions.shape == jacobian.shape == rho0.shape == x.shape):
        raise ValueError("positions, jacobian and rho0 must have the shape of x")
    sign = np.sign(jacobian)
    cuts = np.flatnonzero(sign[1:] != sign[:-1]) + 1
    out = np.zeros(y.shape)
    for piece in np.split(np.arange(x.size), cuts):
        if piece.size < 2:
            continue
        p, q = positions[piece], rho0[piece] / np.abs(jacobian[piece])
        if p[0] > p[-1]:
            p, q = p[::-1], q[::-1]
        inside = (y >= p[0]) & (y <= p[-1])
        out[inside] += np.interp(y[inside], p, q)
    return out


def fold_points(x, jacobian):
    """Lagrangian points where Φ′ changes sign (linear interpolation of Φ′ between grid points)."""
    x = as_points_1d(x, "x")
    j = np.asarray(jacobian, dtype=np.float64)
    k = np.flatnonzero(np.sign(j[1:]) != np.sign(j[:-1]))
    return x[k] - j[k] * (x[k + 1] - x[k]) / (j[k + 1] - j[k])
