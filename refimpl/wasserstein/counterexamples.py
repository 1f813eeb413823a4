r"""The counter-examples of paper [C] (arXiv 2406.08209; docs/theory/forward-euler-breakdown.md), built from the
mechanism of arXiv 2509.13260, and their controls.

Each function computes, for a range of step sizes h, the quantity that fails and returns plain data (dicts of
arrays) for tests and the validation report:

* :func:`abs_power_example` — π = N(0, 1), ρ₀ ∝ exp(−|x|^{3/2}) (finite Fisher information ≈ 1.48). Near 0,
  T₀′(x) ≈ (3h/4)|x|^{−1/2} → ρ₁(y) ≈ κ|y| with κ = 8ρ₀(0)/(9h²) (derived: y ≈ (3h/2)|x|^{1/2} and
  ρ₁ = ρ₀/T₀′), so I(ρ₁) = ∞ for every h > 0: its truncation over |x| > δ grows like 2κ·ln(1/√δ)·… — precisely,
  by κ·ln(1/δ) per unit of ln(1/δ) (Lagrangian cut-off: |y| ∝ |x|^{1/2}). The second map Φ₂ swaps the half-lines
  (velocity ~ 1/y): it is not monotone.
* :func:`fold_example` — smooth bimodal ρ₀ with ∂² log(ρ₀/π) > 1/h somewhere: T₀′ < 0 on an interval, ρ₁ has
  caustics ρ₁ ~ |y − y*|^{−1/2}, and the Eulerian truncated I(ρ₁|π) grows like δ^{−3/2}.
* :func:`derivative_consumption_example` — ρ₀ ∝ π exp(−|x|^p), p = 3/2 + 2k: I(ρₙ|π) finite for n ≤ k, infinite at
  n = k + 1.
* Controls: the JKO step (:mod:`jko_1d`) and forward Euler on the Gaussian-regularised KL (:mod:`regularized_1d`)
  from the same ρ₀, and the Gaussian case where forward Euler is exact and affine (:func:`gaussian_control`).
"""
from __future__ import annotations

import math

import numpy as np

from refimpl.arguments import as_points_1d, as_real_scalar
from refimpl.wasserstein.jko_1d import jko_step_1d, quantile_points
from refimpl.wasserstein.one_dimensional import (AbsPowerDensity, GaussianDensity1D, GaussianMixtureDensity,
                                                 GaussianTarget1D, LogGrid, TiltedGaussianDensity, branch_density,
                                                 fisher_information, fold_points, forward_euler_lagrangian,
                                                 kl_divergence)
from refimpl.wasserstein.regularized_1d import regularized_forward_euler_lagrangian

#: the truncation cut-offs of the Fisher information in docs/theory/forward-euler-breakdown.md §4
FISHER_CUTOFFS = np.array([1e-2, 1e-4, 1e-6, 1e-8])


def _h_values(h_values):
    h = as_points_1d(h_values, "h_values")
    if np.any(h <= 0):
        raise ValueError("h_values must be > 0")
    return h


def abs_power_example(h_values, *, cutoffs=FISHER_CUTOFFS, grid: LogGrid | None = None, jko_points: int = 20_000,
                      eps: float = 0.3, points_per_epsilon: int = 20):
    """The |x|^{3/2} example for each h: FE (plain and relative Fisher of ρ₁, Lagrangian and Eulerian cut-offs,
    monotonicity of Φ₁, Φ₂; ``fe_deep_increment`` = I(ρ₁) over |x| ≥ 1e-22 minus over |x| ≥ 1e-20, which tends to
    κ ln 100), the JKO step (Fisher and max |velocity| on |X| < 1), and regularised FE (Fisher of ρ₁). The grid must
    reach δ_min ≤ 1e-22.
    """
    hs = _h_values(h_values)
    cut = as_points_1d(cutoffs, "cutoffs")
    grid = grid or LogGrid(1e-24, 12.0, 40_001)  # Eulerian cut-off δ needs |x| down to ≈ (2δ/(3h))²
    rho0, target = AbsPowerDensity(1.5), GaussianTarget1D(0.0, 1.0)
    x_jko = quantile_points(rho0, jko_points)
    core = np.abs(grid.x) <= 7.0
    out = {"h": hs, "cutoffs": cut, "I_rho0": fisher_information(
        forward_euler_lagrangian(rho0, target, 1.0, 0, grid.x)[0], grid, relative=False),
        "I_rho0_exact": rho0.fisher_information(), "rho0_at_0": math.exp(-rho0.log_z)}
    rows = {k: [] for k in ("fe_plain_lagrangian", "fe_relative_lagrangian", "fe_plain_eulerian", "fe_deep_increment",
                            "fe_monotone_1",
                            "fe_monotone_2", "phi2_at_minus", "phi2_at_plus", "kappa", "jko_fisher",
                            "jko_max_velocity_core", "reg_fisher_relative", "reg_monotone", "kl_fe1", "kl_jko")}
    for h in hs:
        st = forward_euler_lagrangian(rho0, target, h, 2, grid.x)
        rows["fe_plain_lagrangian"].append(fisher_information(st[1], grid, relative=False, cutoffs=cut))
        rows["fe_relative_lagrangian"].append(fisher_information(st[1], grid, relative=True, cutoffs=cut))
        rows["fe_plain_eulerian"].append(fisher_information(st[1], grid, relative=False, cutoffs=cut,
                                                            eulerian_center=0.0))
        deep = fisher_information(st[1], grid, relative=False, cutoffs=[1e-20, 1e-22])
        rows["fe_deep_increment"].append(float(deep[1] - deep[0]))
        rows["fe_monotone_1"].append(st[1].monotone)
        rows["fe_monotone_2"].append(st[2].monotone)
        n = grid.t.size
        rows["phi2_at_minus"].append(float(st[2].positions.value[n - 1]))  # Φ₂(−δ_min)
        rows["phi2_at_plus"].append(float(st[2].positions.value[n]))       # Φ₂(+δ_min)
        rows["kappa"].append(8.0 * out["rho0_at_0"] / (9.0 * h * h))
        rows["kl_fe1"].append(kl_divergence(st[1], grid))
        jko = jko_step_1d(x_jko, target, h)
        rows["jko_fisher"].append(jko.fisher)
        rows["jko_max_velocity_core"].append(float(np.max(np.abs(jko.velocity[np.abs(jko.X) < 1.0]))))
        rows["kl_jko"].append(_kl_quantile(jko.X, target))
        reg, _ = regularized_forward_euler_lagrangian(rho0, target, h, 1, grid, eps,
                                                      points_per_epsilon=points_per_epsilon)
        rows["reg_fisher_relative"].append(fisher_information(reg[1], grid, relative=True, cutoffs=cut))
        rows["reg_monotone"].append(reg[1].monotone_on(core))
    out.update({k: np.array(v) for k, v in rows.items()})
    out["eps"] = eps
    return out


def _kl_quantile(X, target):
    """KL(ρ‖π) of the piecewise-uniform density with mass 1/M on each cell [X_i, X_{i+1}] (the JKO discretisation),
    the mass of the M − 1 cells renormalised to 1: Σ_i (1/(M−1)) [log(1/((M−1)D_i)) + U(mid_i) + log Z]; U on a cell is
    taken at its midpoint (error O(D²))."""
    D = np.diff(X)
    m = 1.0 / D.size
    mid = 0.5 * (X[1:] + X[:-1])
    return float(np.sum(m * (np.log(m / D) + target.potential(mid) + target.log_normalizer)))


def fold_mixture(h, *, separation_in_sds: float = 2.0, factor: float = 2.0) -> GaussianMixtureDensity:
    """½N(−a, s²) + ½N(a, s²), a = c·s, with s chosen so that ∂² log(ρ₀/π)(0) = a²/s⁴ − 1/s² + 1 = (c² − 1)/s² + 1
    = factor/h (π = N(0, 1)): a smooth ρ₀ (finite Fisher information) that forward Euler with step h folds
    (T₀′(0) = 1 − factor < 0). Keeping a/s = c fixed keeps the density at the fold point a fixed fraction
    (e^{−c²/2}) of the peak, so the caustics carry mass for every h."""
    h = as_real_scalar(h, "h", positive=True)
    c = as_real_scalar(separation_in_sds, "separation_in_sds", positive=True)
    if c <= 1.0:
        raise ValueError(f"separation_in_sds must be > 1 (a log-convex valley), got {c}")
    rhs = factor / h - 1.0
    if rhs <= 0:
        raise ValueError(f"factor/h must exceed 1, got factor={factor}, h={h}")
    s = math.sqrt((c * c - 1.0) / rhs)
    return GaussianMixtureDensity([-c * s, c * s], [s, s], [0.5, 0.5])


def fold_example(h_values, *, cutoffs=np.array([1e-2, 1e-3, 1e-4, 1e-5, 1e-6]), fixed_density=None,
                 n_uniform: int = 40_001, half_width: float = 6.0):
    """For each h: (a) the fixed smooth mixture ``fixed_density`` (default ½N(±1, 0.3²)) — fold iff h > h* =
    1/max ∂²log(ρ₀/π); (b) :func:`fold_mixture` (h) — folds by construction (modes ±2s, s ∝ √h). For folded cases: fold points, caustics,
    and the Eulerian truncated I(ρ₁|π) over dist(y, caustics) ≥ δ with its log-log slope (expected −3/2)."""
    hs = _h_values(h_values)
    cut = as_points_1d(cutoffs, "cutoffs")
    target = GaussianTarget1D(0.0, 1.0)
    fixed = fixed_density or GaussianMixtureDensity([-1.0, 1.0], [0.3, 0.3], [0.5, 0.5])
    xs = np.linspace(-half_width, half_width, n_uniform)
    curv = fixed.log_density_jet(xs, 2).derivative_value(2) + 1.0 / target.var
    h_star = 1.0 / float(np.max(curv))
    rows = []
    for h in hs:
        for label, dens in (("fixed", fixed), ("tuned", fold_mixture(h))):
            rows.append({"h": float(h), "case": label, "density": dens.name,
                         **_fold_measurements(dens, target, h, cut, xs)})
    return {"h": hs, "h_star_fixed": h_star, "cutoffs": cut, "rows": rows}


def _fold_refined_grids(density, target, h, xs, n_y=20_001):
    """The first FE map on xs refined by log-spaced offsets (1e-9 … 1e-1) around its fold points and the density's
    singular points, and an Eulerian grid
    refined by offsets 1e-12 … 1 around the caustics (so integrals of ρ₁ ~ |y − y*|^{−1/2} converge)."""
    st = forward_euler_lagrangian(density, target, h, 1, xs, order=4)[1]
    folds = fold_points(xs, st.jacobian)
    off = np.logspace(-9, -1, 1500)
    xr = np.unique(np.concatenate([xs] + [f + s * off for f in list(folds) + list(density.singular_points)
                                          for s in (-1.0, 1.0)]))
    xr = xr[~np.isin(xr, density.singular_points)]
    st = forward_euler_lagrangian(density, target, h, 1, xr, order=4)[1]
    folds = fold_points(xr, st.jacobian)
    caustics = np.interp(folds, xr, st.positions.value)
    y_off = np.logspace(-12, 0, 3000)
    y = np.unique(np.concatenate([np.linspace(st.positions.value.min(), st.positions.value.max(), n_y)]
                                 + [c + s * y_off for c in caustics for s in (-1.0, 1.0)]))
    return xr, st, folds, caustics, y


def _fold_measurements(density, target, h, cut, xs):
    st = forward_euler_lagrangian(density, target, h, 1, xs, order=4)[1]
    res = {"folded": bool(fold_points(xs, st.jacobian).size > 0), "min_jacobian": float(st.jacobian.min())}
    if not res["folded"]:
        return res
    xr, st, folds, caustics, y = _fold_refined_grids(density, target, h, xs)
    rho0 = np.exp(st.log_rho0)
    rho = branch_density(y, xr, st.positions.value, st.jacobian, rho0)
    score_weighted = branch_density(y, xr, st.positions.value, st.jacobian,
                                    rho0 * (st.velocity.value - target.potential_derivative(st.positions.value)))
    dist = np.min(np.abs(y[:, None] - caustics[None, :]), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        integrand = np.where(rho > 0, (score_weighted / rho + target.potential_derivative(y)) ** 2 * rho, 0.0)
    trunc = []
    for d in cut:
        keep = dist >= d
        f = np.where(keep, integrand, 0.0)
        seg = 0.5 * (f[1:] + f[:-1]) * np.diff(y) * (keep[1:] & keep[:-1])
        trunc.append(float(np.sum(seg)))
    trunc = np.array(trunc)
    slope = np.diff(np.log(trunc)) / np.diff(np.log(cut))
    res.update({"fold_points": folds, "caustics": caustics, "fisher_truncated": trunc, "loglog_slopes": slope,
                "y": y, "rho1": rho})
    return res


def derivative_consumption_example(h_values, *, powers=(3.5, 5.5), n_steps: int = 3, cutoffs=FISHER_CUTOFFS,
                                   grid: LogGrid | None = None):
    """ρ₀ ∝ π exp(−|x|^p): the truncated relative Fisher information of ρₙ, n = 0..n_steps, for each p and h
    (module docstring: p = 3/2 + 2k becomes infinite at n = k + 1)."""
    hs = _h_values(h_values)
    cut = as_points_1d(cutoffs, "cutoffs")
    grid = grid or LogGrid(1e-12, 12.0, 20_001)
    target = GaussianTarget1D(0.0, 1.0)
    rows = []
    for p in powers:
        dens = TiltedGaussianDensity(target, 1.0, p)
        for h in hs:
            st = forward_euler_lagrangian(dens, target, h, n_steps, grid.x, order=2 * n_steps + 3)
            fish = np.array([fisher_information(s, grid, relative=True, cutoffs=cut) for s in st])
            rows.append({"p": p, "h": float(h), "fisher": fish, "monotone": [s.monotone for s in st],
                         "predicted_failure_step": int(round((p - 1.5) / 2)) + 1})
    return {"cutoffs": cut, "rows": rows}


def gaussian_control(h_values, *, m0=1.5, var0=0.2, n_steps=5, target=GaussianTarget1D(0.0, 1.0),
                     grid: LogGrid | None = None):
    """Gaussian ρ₀ = N(m0, var0), π Gaussian: the jet-exact Lagrangian FE iterates are affine and match the
    recursion m⁺ = m − h(m − μ)/s², v⁺ = (1 + h(1/v − 1/s²))² v (docs/theory/forward-euler-breakdown.md §9); the
    Fisher information stays finite
    (I(N(m, v)|π) = (m − μ)²/s⁴ + v(1/v − 1/s²)², derived). Returns the recursion and the Lagrangian values."""
    hs = _h_values(h_values)
    grid = grid or LogGrid(1e-9, 12.0, 4001, center=m0)
    dens = GaussianDensity1D(m0, var0)
    rows = []
    for h in hs:
        st = forward_euler_lagrangian(dens, target, h, n_steps, grid.x, order=2 * n_steps + 3)
        m, v = m0, var0
        rec = []
        for n in range(n_steps + 1):
            rec.append((m, v))
            m, v = m - h * (m - target.mean) / target.var, (1 + h * (1 / v - 1 / target.var)) ** 2 * v
        rho0 = np.exp(st[0].log_rho0)
        lag, affine_err, slope = [], [], 1.0
        for n, s in enumerate(st):  # mean and variance of ρₙ = Φₙ#ρ₀ by Lagrangian quadrature
            mean = grid.integral(s.positions.value * rho0)
            lag.append((mean, grid.integral((s.positions.value - mean) ** 2 * rho0)))
            # pointwise: Φₙ(x) = mₙ + (Π_k a_k)(x − m0), a_k = 1 + h(1/v_k − 1/s²) (the recursion's affine map)
            mn = rec[n][0]
            affine_err.append(float(np.max(np.abs(s.positions.value - (mn + slope * (grid.x - m0))))
                                    / (1.0 + np.max(np.abs(s.positions.value)))))
            slope *= 1.0 + h * (1.0 / rec[n][1] - 1.0 / target.var)
        fisher = [fisher_information(s, grid) for s in st]
        fisher_exact = [(mm - target.mean) ** 2 / target.var ** 2 + vv * (1 / vv - 1 / target.var) ** 2
                        for mm, vv in rec]
        rows.append({"h": float(h), "recursion": np.array(rec), "lagrangian": np.array(lag),
                     "affine_error": np.array(affine_err), "fisher": np.array(fisher),
                     "fisher_exact": np.array(fisher_exact)})
    return {"rows": rows}


def pushforward_particle_check(density, h, *, n_samples: int = 100_000, seed: int = 0, xs=None,
                               target=GaussianTarget1D(0.0, 1.0)):
    """Change of variables vs particles: samples of ρ₀ pushed by the exact forward Euler map T₀ (its jets evaluated
    at the samples) against the CDF of the Eulerian density ρ₁ = Σ_branches ρ₀/|T₀′| (trapezoid on a fine image
    grid, refined around caustics). Returns the Kolmogorov–Smirnov distance and the DKW bound √(log(2/α)/(2N)) at α = 1e-6 (a correct
    density exceeds it with probability ≤ 1e-6, plus the quadrature error of the CDF)."""
    h = as_real_scalar(h, "h", positive=True)
    xs = np.linspace(-8.0, 8.0, 160_001) if xs is None else as_points_1d(xs, "xs")
    xs = xs[~np.isin(xs, density.singular_points)]
    xs, st, _, _, y = _fold_refined_grids(density, target, h, xs, n_y=400_001)
    y = np.unique(np.concatenate([y, st.positions.value]))
    rho = branch_density(y, xs, st.positions.value, st.jacobian, np.exp(st.log_rho0))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * np.diff(y))])
    samples = density.sample(n_samples, seed)
    samples = samples[~np.isin(samples, density.singular_points)]
    pushed = np.sort(forward_euler_lagrangian(density, target, h, 1, samples, order=3)[1].positions.value)
    model = np.interp(pushed, y, cdf)
    n = pushed.size
    ks = float(max(np.max(np.arange(1, n + 1) / n - model), np.max(model - np.arange(n) / n)))
    return {"ks": ks, "dkw_bound": math.sqrt(math.log(2e6) / (2 * n)), "mass": float(cdf[-1]),
            "folded": not st.monotone}


__all__ = ["FISHER_CUTOFFS", "pushforward_particle_check", "abs_power_example", "fold_mixture", "fold_example", "derivative_consumption_example",
           "gaussian_control"]
