"""Random coordinate descent on Wasserstein space, paper [B] (Xu & Li, arXiv 2604.01606): random coordinate descent
(RWCD) and coordinate proximal gradient (RWCP) against full-gradient Wasserstein GD (WGD) and proximal gradient (WPG).

The algorithms, rate forms and experiments follow [B] as written out and derived in docs/theory/coordinate-descent.md
(which states what is derived here); the claims below check those derivations numerically, and the predicted
speed-ups of its §9:

* exactness: particle RWCD on quadratic energies moves the empirical moments by the Gaussian closed form (G1); the
  expected one-step decrease averaged over all coordinates equals its closed form;
* rates: PL (exact expectation, G3), geodesically convex (log-cosh potential, particles), non-convex (gradient-norm
  average) — observed against the derived bounds;
* speed-up in gradient equivalents to a fixed accuracy, RWCD vs WGD and RWCP vs WPG, side by side, against
  L/max Lᵢ (uniform) and L/mean Lᵢ (pᵢ ∝ Lᵢ), on ill-conditioned quadratic potentials (κ = 10 … 10⁴, d = 50), KL to
  coupled Gaussian targets (entropic composite) and a lasso-type composite (non-smooth L1 part) on particles;
* wall time on particles with the Numba coordinate sweeps.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from refimpl.ad import ops
from refimpl.wasserstein.composite import WeightedL1Potential
from refimpl.wasserstein.coordinate_descent import coordinate_probabilities, coordinate_sequence
from refimpl.wasserstein.energies import GaussianInteraction, Potential, QuadraticInteraction, QuadraticPotential, \
    kl_to_gaussian
from refimpl.wasserstein.measures import GaussianMeasure
from refimpl.wasserstein.rwcd_gaussian import (GaussianMoments, expected_one_step_decrease, expected_rwcd_energy,
                                               gaussian_rwcd, gaussian_rwcd_step, gaussian_rwcp, gaussian_wgd,
                                               gaussian_wpg)
from refimpl.wasserstein.rwcd_particles import rwcd, rwcd_step, rwcp, wgd, wpg
from refimpl.wasserstein.rwcd_rates import (geodesic_convex_bound, nonconvex_gradient_bound, pl_bound,
                                            pl_contraction_per_step, predicted_speedup)
from refimpl.sweep import Task
from validation.claims import Claim
from validation.experiment import measured_cost, run_in_process
from validation.walltime import wall

CD = "docs/theory/coordinate-descent.md"  # the derivations the claims refer to
ACCURACY = 1e-6  # relative energy (or KL) gap at which cost is measured


def _rotated(d, eigs, seed=0):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return Q @ np.diag(eigs) @ Q.T


def _spread(values):
    v = np.asarray(values, dtype=float)
    return float(np.median(v)), float(np.min(v)), float(np.max(v))


# ------------------------------------------------------------------------------------------------ exactness
def _exactness():
    d, n = 6, 400
    rng = np.random.default_rng(0)
    M = rng.standard_normal((d, d))
    A = M @ M.T / d + 0.5 * np.eye(d)
    B = 0.5 * np.eye(d) + 0.1 * np.ones((d, d))
    E = QuadraticPotential(A, rng.standard_normal(d)) + QuadraticInteraction(B)
    X0 = 1.5 * rng.standard_normal((n, d)) + 0.3
    L = E.coordinate_smoothness(d)
    tr = rwcd(E, X0, 200, seed=5, step_sizes=0.9 / L, record_every=200)
    st = GaussianMoments(X0.mean(0), (X0 - X0.mean(0)).T @ (X0 - X0.mean(0)) / n)
    for i in tr.coordinates:
        st = gaussian_rwcd_step(E, st, i, 0.9 / L[i])
    X = tr.final
    err_mom = max(float(np.max(np.abs(X.mean(0) - st.mean))),
                  float(np.max(np.abs((X - X.mean(0)).T @ (X - X.mean(0)) / n - st.cov))))
    worst = 0.0
    F0 = E.value(X0)
    for sampling in ("uniform", "lipschitz"):
        p = coordinate_probabilities(L, sampling)
        avg = 0.0
        for i in range(d):
            Y = X0.copy()
            Y[:, i] -= E.coordinate_gradient(X0, i) / L[i]
            avg += p[i] * (F0 - E.value(Y))
        worst = max(worst, abs(avg - expected_one_step_decrease(E, X0, sampling=sampling)) / abs(F0))
    return err_mom, worst


# ------------------------------------------------------------------------------------------------------ rates
def _pl_rates():
    d, K = 20, 2000
    A = _rotated(d, np.geomspace(1, 50, d))
    E = QuadraticPotential(A)
    g = GaussianMeasure(np.ones(d) / math.sqrt(d), np.eye(d))
    L = np.diag(A)
    rows = []
    for s in ("uniform", "lipschitz"):
        ex = expected_rwcd_energy(E, g, K, sampling=s)
        b = pl_bound(np.arange(K + 1), ex[0], 1.0, L, s)
        rows.append((s, float(np.max(ex[1:] / b[1:])), (ex[-1] / ex[0]) ** (d / K),
                     pl_contraction_per_step(1.0, L, s) ** d))
    tr = gaussian_wgd(E, g, 400)
    rows.append(("WGD (per step)", float(np.max(tr.energy[1:] / pl_bound(np.arange(1, 401), tr.energy[0], 1.0, L,
                                                                             "full", L=50.0))),
                 (tr.energy[-1] / tr.energy[0]) ** (1 / 400), 1 - 1 / 50))
    return rows


def _rwcp_lsi_rates(n_seeds):
    """KL(·‖N(0, A⁻¹)), A rotated eig geomspace(1, 50), d = 10: E KL_k (mean of sequences) vs (1 − μ/Λ)ᵏ KL₀,
    μ = λ_min(A) (LSI constant), Λ from Lᵢ = Aᵢᵢ; WPG vs (1 − μ/L)ᵏ."""
    d, K = 10, 400
    A = _rotated(d, np.geomspace(1, 50, d))
    kl = kl_to_gaussian(np.zeros(d), np.linalg.inv(A))
    g = GaussianMeasure(np.ones(d), 3.0 * np.eye(d))
    L = np.diag(A)
    rows = []
    for s in ("uniform", "lipschitz"):
        mean = np.array([gaussian_rwcp(kl, g, K, sampling=s, seed=k).energy for k in range(n_seeds)]).mean(0)
        b = pl_bound(np.arange(K + 1), mean[0], 1.0, L, s)
        rows.append((f"RWCP {s}", float(np.max(mean[1:] / b[1:])), (mean[-1] / mean[0]) ** (d / K),
                     pl_contraction_per_step(1.0, L, s) ** d))
    w = gaussian_wpg(kl, g, 100)
    b = pl_bound(np.arange(101), w.energy[0], 1.0, L, "full", L=50.0)
    rows.append(("WPG (per step)", float(np.max(w.energy[1:] / b[1:])), (w.energy[-1] / w.energy[0]) ** (1 / 100),
                 1 - 1 / 50))
    return rows


def _logcosh(d, seed=1):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    c = np.geomspace(1.0, 30.0, d)
    V = Potential(lambda X: ops.sum((ops.log(ops.exp(ops.matmul(X, Q.T)) + ops.exp(-ops.matmul(X, Q.T)))
                                     - math.log(2.0)) * c, axis=1),
                  lambda X: (np.tanh(X @ Q.T) * c) @ Q, coordinate_smoothness=np.einsum("ji,j,ji->i", Q, c, Q),
                  smoothness=float(c.max()), dim=d, name="logcosh")
    return V, c


def _geodesic_rates(n_seeds):
    d, n, K = 8, 100, 400
    V, c = _logcosh(d)
    X0 = 4.0 * np.random.default_rng(2).standard_normal((n, d))
    R2 = float(np.mean(np.sum(np.arccosh(np.exp(V.function(X0)[:, None] / c[None, :])) ** 2, axis=1)))
    L = V.coordinate_smoothness(d)
    rows, curves = [], {}
    for s in ("uniform", "lipschitz"):
        runs = np.array([rwcd(V, X0, K, sampling=s, seed=k, backend="numpy").energy for k in range(n_seeds)])
        mean = runs.mean(0)
        b = geodesic_convex_bound(np.arange(K + 1), mean[0], R2, L, s)
        rows.append((s, float(np.max(mean[1:] / b[1:])), float(mean[-1]), float(b[-1])))
        curves[s] = (mean, b)
    return rows, curves


def _nonconvex_rates(n_seeds):
    d, n, K = 5, 300, 300
    A = _rotated(d, np.geomspace(0.5, 20, d), seed=3)
    B = 0.5 * _rotated(d, np.geomspace(1, 4, d), seed=4)
    V = Potential(lambda X: 0.5 * ops.sum(X * ops.matmul(X, A), axis=1) + 0.5 * ops.sum(ops.cos(3.0 * X), axis=1),
                  lambda X: X @ A - 1.5 * np.sin(3.0 * X), lambda X, i: X @ A[i] - 1.5 * np.sin(3.0 * X[:, i]),
                  coordinate_smoothness=np.diag(A) + 4.5, smoothness=np.linalg.eigvalsh(A)[-1] + 4.5, dim=d)
    F = V + QuadraticInteraction(B)
    L = F.coordinate_smoothness(d)
    X0 = 2.0 * np.random.default_rng(5).standard_normal((n, d))
    gap = F.value(X0) + d / 2
    rows, violations = [], 0
    for s in ("uniform", "lipschitz"):
        p = coordinate_probabilities(L, s)
        avgs = []
        for seed in range(n_seeds):
            X, acc = X0, 0.0
            for i in coordinate_sequence(p, K, seed):
                G = F.wasserstein_gradient(X)
                acc += float(np.mean(np.sum(G * G, axis=1)))
                Y = rwcd_step(F, X, i, 1.0 / L[i])
                violations += F.value(Y) > F.value(X) - np.mean(G[:, i] ** 2) / (2 * L[i]) + 1e-12 * abs(F.value(X))
                X = Y
            avgs.append(acc / K)
        rows.append((s, float(np.mean(avgs)), nonconvex_gradient_bound(K, gap, L, s)))
    return rows, violations


# ----------------------------------------------------------------------------------------------- speed-ups
def _quadratic_setup(A):
    d = A.shape[0]
    E = QuadraticPotential(A)
    g = GaussianMeasure(np.ones(d) / math.sqrt(d), np.eye(d))
    lam = np.linalg.eigvalsh(A)
    return d, E, g, E.gaussian_value(g), float(lam[-1]), np.diag(A), float(lam[-1]) / float(lam[0]), float(lam[0])


def _samplings(A):
    """The samplings run on ½xᵀAx: pᵢ ∝ Lᵢ = Aᵢᵢ is uniform when the diagonal is constant (same sequences, same runs)."""
    L = np.diag(A)
    return ("uniform",) if np.all(L == L[0]) else ("uniform", "lipschitz")


def _quadratic_wgd(A):
    """The full-gradient run (WGD) on ½xᵀAx, to the accuracy."""
    d, E, g, F0, Lfull, L, kappa, mu = _quadratic_setup(A)
    return gaussian_wgd(E, g, int(40 * kappa * math.log(10) + 10), stop_at=ACCURACY * F0)


def _quadratic_run(A, sampling, seed):
    """One RWCD coordinate sequence (``seed``) on ½xᵀAx, to the accuracy."""
    d, E, g, F0, Lfull, L, kappa, mu = _quadratic_setup(A)
    return gaussian_rwcd(E, g, _max_epochs(L, mu) * d, sampling=sampling, seed=seed, stop_at=ACCURACY * F0)


def _quadratic_row(name, A, gd, runs):
    """The table row of one quadratic case from its WGD run and its RWCD runs {sampling: [trace per seed]}."""
    d, E, g, F0, Lfull, L, kappa, mu = _quadratic_setup(A)
    row = dict(name=name, d=d, kappa=kappa, gd=gd.cost_to_reach(ACCURACY * F0), curves={"WGD": [gd]})
    for s in ("uniform", "lipschitz"):
        rs = runs[s] if s in runs else runs["uniform"]  # pᵢ ∝ Lᵢ uniform: same runs (_samplings)
        row[s] = _spread([r.cost_to_reach(ACCURACY * F0) for r in rs])
        row["pred_" + s] = predicted_speedup(Lfull, L, s)
        row["curves"][f"RWCD {s}"] = rs
    return row


def _speedup_quadratic(name, A, n_seeds):
    """WGD vs RWCD (``n_seeds`` sequences per sampling) on ½xᵀAx: the table row (the sweep runs the parts as separate
    tasks and joins them with :func:`_quadratic_row`)."""
    runs = {s: [_quadratic_run(A, s, k) for k in range(n_seeds)] for s in _samplings(A)}
    return _quadratic_row(name, A, _quadratic_wgd(A), runs)


def _max_epochs(L, mu):
    """Twice the epochs the PL bound needs for the accuracy (uniform, the larger of the two bounds): L_max/μ·ln(1/ε)."""
    return int(2 * float(np.max(L)) / mu * math.log(1 / ACCURACY)) + 10


def _kl_case(A, seed=1):
    d = A.shape[0]
    kl = kl_to_gaussian(np.zeros(d), np.linalg.inv(A))
    rng = np.random.default_rng(seed)
    lam, V = np.linalg.eigh(A)
    Ainvh = (V / np.sqrt(lam)) @ V.T
    Gm = rng.standard_normal((d, d)) / math.sqrt(d)
    return kl, GaussianMeasure(Ainvh @ rng.standard_normal(d), Ainvh @ (2 * np.eye(d) + Gm @ Gm.T) @ Ainvh)


def _speedup_kl(name, A, n_seeds):
    d = A.shape[0]
    kl, g = _kl_case(A)
    K0 = kl.gaussian_value(g)
    lam = np.linalg.eigvalsh(A)
    wp = gaussian_wpg(kl, g, int(40 * lam[-1] / lam[0] * math.log(10) + 10), stop_at=ACCURACY * K0)
    row = dict(name=name, d=d, kappa=lam[-1] / lam[0], gd=wp.cost_to_reach(ACCURACY * K0), curves={"WPG": [wp]})
    max_epochs = _max_epochs(np.diag(A), float(lam[0]))
    for s in ("uniform", "lipschitz"):
        if s == "lipschitz" and np.all(np.diag(A) == A[0, 0]):  # pᵢ ∝ Lᵢ is uniform: same runs
            runs = row["curves"]["RWCP uniform"]
        else:
            runs = [gaussian_rwcp(kl, g, max_epochs * d, sampling=s, seed=k, stop_at=ACCURACY * K0)
                    for k in range(n_seeds)]
        row[s] = _spread([r.cost_to_reach(ACCURACY * K0) for r in runs])
        row["pred_" + s] = predicted_speedup(lam[-1], np.diag(A), s)
        row["curves"][f"RWCP {s}"] = runs
    return row


def _lasso_particles(n_seeds, quick):
    """Particles, F = ∫½(x−b)ᵀA(x−b) + λ‖x‖₁ dρ with A = I + 10·11ᵀ: every particle converges to the same lasso point,
    F* = its objective value (computed by 20 000 WPG steps on one point)."""
    d, n = (30, 200) if quick else (50, 500)
    A = np.eye(d) + 10.0 * np.ones((d, d))
    b = np.random.default_rng(3).standard_normal(d) * 2
    lam = 0.5
    F = QuadraticPotential(A, b) + WeightedL1Potential(np.full(d, lam))
    Lfull = float(np.linalg.eigvalsh(A)[-1])
    ref = wpg(F, b[None, :], 20000, smoothness=Lfull, record_every=20000)  # one particle: the lasso point
    Fstar = float(ref.energy[-1])
    X0 = np.random.default_rng(4).standard_normal((n, d)) + b
    gap0 = F.value(X0) - Fstar
    wp = wpg(F, X0, 6000, smoothness=Lfull, record_every=5, stop_at=Fstar + ACCURACY * gap0)
    row = dict(name=f"lasso particles (N={n})", d=d, kappa=1 + 10 * d,
               gd=_cost_to_gap(wp, Fstar, gap0), curves={"WPG": [wp]}, Fstar=Fstar, gap0=gap0)
    for s in ("uniform", "lipschitz"):
        if s == "lipschitz":  # all Aᵢᵢ equal: pᵢ ∝ Lᵢ is uniform, same runs
            runs = row["curves"]["RWCP uniform"]
        else:
            runs = [rwcp(F, X0, 150 * d, sampling=s, seed=k, record_every=max(1, d // 10),
                         stop_at=Fstar + ACCURACY * gap0) for k in range(n_seeds)]
        row[s] = _spread([_cost_to_gap(r, Fstar, gap0) for r in runs])
        row["pred_" + s] = predicted_speedup(Lfull, np.diag(A), s)
        row["curves"][f"RWCP {s}"] = runs
    return row


def _cost_to_gap(trace, Fstar, gap0):
    return trace.cost_to_reach(Fstar + ACCURACY * gap0)


def _wall_time_particles(quick):
    """Side by side on particles: wall time of the Numba coordinate sweeps vs full-gradient steps, same accuracy."""
    out = []
    # quadratic, O(Nd) per coordinate step
    d, n = (50, 500) if quick else (50, 2000)
    A = np.eye(d) + 10.0 * np.ones((d, d))
    E = QuadraticPotential(A)
    X0 = np.random.default_rng(0).standard_normal((n, d)) + 1 / math.sqrt(d)
    F0 = E.value(X0)
    rwcd(E, X0[:5], 5)  # compile / load the kernels outside the timing
    gd = wgd(E, X0, 4000, record_every=10, stop_at=ACCURACY * F0)
    cd = rwcd(E, X0, 120 * d, record_every=d // 5, stop_at=ACCURACY * F0)
    out.append((f"½xᵀ(I+10·11ᵀ)x, N={n}, d={d}", gd.cost_to_reach(ACCURACY * F0), cd.cost_to_reach(ACCURACY * F0),
                gd.time_to_reach(ACCURACY * F0), cd.time_to_reach(ACCURACY * F0)))
    # anisotropic confinement + Gaussian repulsion, O(N²) per coordinate step (cached distances)
    d, n = (20, 300) if quick else (20, 800)
    A = _rotated(d, np.r_[np.ones(d - 1), 100.0], seed=6) + np.eye(d)
    F = QuadraticPotential(A) + GaussianInteraction(0.5, 1.0)
    X0 = np.random.default_rng(1).standard_normal((n, d))
    Lf = float(np.linalg.eigvalsh(A)[-1]) + F.terms[1].smoothness(d)
    rwcd(F, X0[:5], 5)  # compile / load both routes' kernels outside the timing
    wgd(F, X0[:5], 2, smoothness=Lf)
    n_gd = 200 if quick else 600
    gd = wgd(F, X0, n_gd, smoothness=Lf, record_every=10)
    cd = rwcd(F, X0, 40 * d, record_every=d)
    Fbest = min(gd.energy.min(), cd.energy.min())
    thr = Fbest + 1e-3 * (F.value(X0) - Fbest)
    out.append((f"confinement + Gaussian repulsion, N={n}, d={d} (gap to best, 1e-3)", gd.cost_to_reach(thr),
                cd.cost_to_reach(thr), gd.time_to_reach(thr), cd.time_to_reach(thr), n, d))
    return out


def pair_kernel_exponentials(cost: float, n: int, d: int, coordinate: bool) -> float:
    """Kernel exponentials a run of ``cost`` gradient equivalents evaluates on the Gaussian interaction (docs/theory/
    coordinate-descent.md §6): a full gradient and a coordinate step each evaluate exp at all N² ordered pairs
    (refimpl.wasserstein._numba: the pair kernel and ``pairwise_sweep``, diagonal included), and a coordinate step
    counts 1/d of a gradient equivalent — so cost c is c full steps (c·N² exps) or c·d coordinate steps (c·d·N²)."""
    steps = cost * d if coordinate else cost
    return steps * n * n


# ------------------------------------------------------------------------------------------------------ plots
def _plot(outdir, rows, title, fname, gap_of):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001 - plots are optional
        return None
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.6), squeeze=False)
    for ax, row in zip(axes[0], rows):
        for label, runs in row["curves"].items():
            grid = np.geomspace(min(r.cost[1] for r in runs), max(r.cost[-1] for r in runs), 300)
            ys = np.array([np.interp(grid, r.cost, np.maximum(gap_of(row, r), 1e-300), right=np.nan) for r in runs])
            med = np.nanmedian(ys, axis=0)
            line, = ax.loglog(grid, med, label=label)
            if len(runs) > 1:
                ax.fill_between(grid, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), color=line.get_color(), alpha=0.2)
        ax.axhline(ACCURACY, color="k", lw=0.5, ls=":")
        ax.set_title(row["name"], fontsize=8)
        ax.set_xlabel("cost (gradient equivalents)")
        ax.set_ylabel("relative gap")
        ax.set_ylim(ACCURACY / 100, 2)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(outdir / fname, dpi=110)
    plt.close(fig)
    return fname


def _verdict(claim):
    text = "yes" if claim.passed else "**NO**"
    return wall(text) if claim.timed else text


def _fmt_row(row):
    gd = row["gd"]
    cells = [row["name"], str(row["d"]), f"{row['kappa']:.3g}", f"{gd:.4g}"]
    for s in ("uniform", "lipschitz"):
        med, lo, hi = row[s]
        cells.append(f"{med:.4g} [{lo:.4g}, {hi:.4g}]")
        cells.append(f"×{gd / med:.3g} (pred ×{row['pred_' + s]:.3g})")
    return "| " + " | ".join(cells) + " |"


NAME = "wasserstein_coordinate_descent"


#: coordinate sequences per method (speed-up tables) and per rate check, by profile
SEEDS = {"quick": dict(speedup=3, lsi=8, geodesic=4, nonconvex=3),
         "full": dict(speedup=10, lsi=24, geodesic=16, nonconvex=8),
         "large": dict(speedup=40, lsi=96, geodesic=64, nonconvex=32)}


def _quad_cases(quick):
    """(name, A) of the quadratic speed-up table (the §9 table case first)."""
    d = 50
    cases = [("I + 10·11ᵀ (coordinate-descent.md §9)", np.eye(d) + 10 * np.ones((d, d)))]
    cases += [(f"I + c·11ᵀ, κ = {1 + c * d:.0f}", np.eye(d) + c * np.ones((d, d)))
              for c in ((0.18, 2.0, 20.0) if quick else (0.18, 2.0, 20.0, 200.0))]
    if not quick:
        cases.append(("rotated eig geomspace(1,10⁴)", _rotated(d, np.geomspace(1, 1e4, d))))
    cases += [("rotated eig (1,…,1,100)", _rotated(d, np.r_[np.ones(d - 1), 100.0])),
              ("diag geomspace(1,100) (separable)", np.diag(np.geomspace(1, 100, d)))]
    return cases


def _kl_cases(quick):
    d_kl = 20 if quick else 30  # small dense eigh is slow under BLAS thread contention; quick mode stays smaller
    cases = [("KL, I + 10·11ᵀ, d = 10", np.eye(10) + 10 * np.ones((10, 10))),
             (f"KL, I + 10·11ᵀ, d = {d_kl}", np.eye(d_kl) + 10 * np.ones((d_kl, d_kl)))]
    if not quick:
        cases.append(("KL, rotated eig (1,…,1,100), d = 30", _rotated(30, np.r_[np.ones(29), 100.0])))
    return cases


def part_task(part: str, quick: bool, index: int = 0, profile: str | None = None):
    """Task: one independent part of the experiment (``index``: which quadratic / KL case; ``profile`` sets the
    numbers of coordinate sequences, :data:`SEEDS`; default quick or full)."""
    seeds = SEEDS[profile or ("quick" if quick else "full")]
    n_seeds = seeds["speedup"]
    if part == "exactness":
        return _exactness()
    if part == "pl":
        return _pl_rates()
    if part == "lsi":
        return _rwcp_lsi_rates(seeds["lsi"])
    if part == "geodesic":
        return _geodesic_rates(seeds["geodesic"])
    if part == "nonconvex":
        return _nonconvex_rates(seeds["nonconvex"])
    if part == "quadratic-wgd":
        return _quadratic_wgd(_quad_cases(quick)[index][1])
    if part in ("quadratic-uniform", "quadratic-lipschitz"):
        case, seed = divmod(index, _MAX_SEEDS)
        return _quadratic_run(_quad_cases(quick)[case][1], part.split("-")[1], seed)
    if part == "kl":
        name, A = _kl_cases(quick)[index]
        return _speedup_kl(name, A, n_seeds)
    if part == "lasso":
        return _lasso_particles(n_seeds, quick)
    if part == "wall":
        return _wall_time_particles(quick)
    if part == "exact-expectation":
        d = 50
        return expected_rwcd_energy(QuadraticPotential(np.eye(d) + 10 * np.ones((d, d))),
                                    GaussianMeasure(np.ones(d) / math.sqrt(d), np.eye(d)), 100 * d)
    raise ValueError(f"part: unknown part {part!r}")


def tasks(profile: str) -> list:
    """One task per part (rates, each speed-up case, lasso, wall time). The large profile runs 4× the coordinate
    sequences of the full one (:data:`SEEDS`); its cost estimate is the full run's measured cost × 4 for the seeded
    parts."""
    quick = profile == "quick"
    extra = {} if profile != "large" else {"profile": "large"}
    parts = [(p, p, 0) for p in ("exactness", "pl", "lsi", "geodesic", "nonconvex")]
    for k, (name, A) in enumerate(_quad_cases(quick)):
        parts.append((f"quadratic/{k}/wgd", "quadratic-wgd", k))
        parts += [(f"quadratic/{k}/{s}/{seed}", f"quadratic-{s}", k * _MAX_SEEDS + seed) for s in _samplings(A)
                  for seed in range(_quadratic_seeds(name, profile))]
    parts += [(f"kl/{k}", "kl", k) for k in range(len(_kl_cases(quick)))]
    parts += [(p, p, 0) for p in ("lasso", "wall", "exact-expectation")]
    out = []
    for key, part, k in parts:
        out.append(Task.make(f"{NAME}/{key}", f"{__name__}:part_task", part, quick, k,
                             cost=_task_cost(key, part, profile), **extra))
    return out


#: seeds are packed into a quadratic-run task's index as case × _MAX_SEEDS + seed
_MAX_SEEDS = 1000


def _quadratic_seeds(name, profile):
    """Coordinate sequences per sampling of a quadratic case (4 for the κ = 10⁴ coupled case, whose runs are long)."""
    return SEEDS[profile]["speedup"] if "10001" not in name else 4


def _task_cost(key, part, profile):
    """Estimated CPU seconds (core-hour estimate only): the measured full-profile cost of the task (a per-run share of
    its quadratic case's measured total where only the total is known), × 4 for the seeded parts of the large
    profile."""
    if profile == "quick":
        return None
    measured = measured_cost(f"{NAME}/{key}")
    if measured is None and key.startswith("quadratic/"):
        case = int(key.split("/")[1])
        total = measured_cost(f"{NAME}/quadratic/{case}")
        name, A = _quad_cases(False)[case]
        measured = None if total is None else total / (1 + len(_samplings(A)) * _quadratic_seeds(name, "full"))
    if measured is None or profile != "large":
        return measured
    repeated = part in ("lsi", "geodesic", "nonconvex", "kl", "lasso")  # their seed counts grow 4×
    return measured * (SEEDS["large"]["speedup"] / SEEDS["full"]["speedup"] if repeated else 1.0)


def run(outdir: Path, quick: bool) -> list[Claim]:
    """Run the parts in this process and write the section (``python -m refimpl validate`` runs them as sweep
    tasks)."""
    return run_in_process(sys.modules[__name__], outdir, "quick" if quick else "full")


def assemble(outdir: Path, profile: str, values: dict, seconds: dict) -> list[Claim]:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    quick = profile == "quick"
    n_seeds = SEEDS[profile]["speedup"]
    d = 50
    d_kl = 20 if quick else 30
    claims = []

    err_mom, err_dec = values[f"{NAME}/exactness"]
    claims.append(Claim(f"{CD} §7 (G1, derived)", "particle RWCD on V + quadratic W moves the empirical moments "
                        "exactly by the Gaussian coordinate recursion (≤ 1e-12)", err_mom <= 1e-12,
                        f"max abs error {err_mom:.1e} after 200 steps, N = 400, d = 6"))
    claims.append(Claim(f"{CD} §7 (G2, derived)", "expected one-step decrease, averaged over all coordinates, "
                        "== closed form (≤ 1e-12 relative)", err_dec <= 1e-12, f"worst {err_dec:.1e}"))

    pl = values[f"{NAME}/pl"]
    pl_ok = all(r[1] <= 1.0 and r[2] <= r[3] for r in pl)
    claims.append(Claim(f"[B] arXiv 2604.01606, PL regime (form derived in {CD} §8)",
                        "E Δₖ ≤ (1 − μ/Λ)ᵏ Δ₀ for RWCD (Λ = d·L_max "
                        "uniform, ΣLᵢ ∝ Lᵢ) and GD (Λ = L); exact expectation", pl_ok,
                        "; ".join(f"{r[0]}: contraction {r[2]:.4f} vs bound {r[3]:.4f}, max ratio {r[1]:.3f}"
                                  for r in pl)))
    lsi = values[f"{NAME}/lsi"]
    claims.append(Claim(f"[B] arXiv 2604.01606, RWCP linear rate (composite PL/LSI form derived in {CD} §8)",
                        "E KLₖ ≤ (1 − μ/Λ)ᵏ KL₀ for "
                        "RWCP on KL to a Gaussian (μ = LSI constant), and for WPG with Λ = L",
                        all(r[1] <= 1.0 for r in lsi),
                        "; ".join(f"{r[0]}: contraction {r[2]:.4f} vs bound {r[3]:.4f}, max ratio {r[1]:.3f}"
                                  for r in lsi)))
    geo, geo_curves = values[f"{NAME}/geodesic"]
    claims.append(Claim(f"[B] arXiv 2604.01606, geodesically convex regime (form derived in {CD} §8)",
                        "E Δₖ ≤ 2ΛR²/(k + 2ΛR²/Δ₀) (log-cosh "
                        "potential, particles)", all(r[1] <= 1.0 for r in geo),
                        "; ".join(f"{r[0]}: max E Δ/bound {r[1]:.3f}" for r in geo)))
    nc, viol = values[f"{NAME}/nonconvex"]
    claims.append(Claim(f"[B] arXiv 2604.01606, non-convex regime (form derived in {CD} §8)",
                        "(1/K)Σ E‖∇_W F‖² ≤ 2Λ(F₀ − F_inf)/K, and the "
                        "per-step descent lemma never fails", all(r[1] <= r[2] for r in nc) and viol == 0,
                        "; ".join(f"{r[0]}: {r[1]:.3g} vs bound {r[2]:.3g}" for r in nc) + f"; violations {viol}"))

    quad_rows = [_quadratic_row(name, A, values[f"{NAME}/quadratic/{k}/wgd"],
                                {s: [values[f"{NAME}/quadratic/{k}/{s}/{seed}"]
                                     for seed in range(_quadratic_seeds(name, profile))] for s in _samplings(A)})
                 for k, (name, A) in enumerate(_quad_cases(quick))]
    kl_rows = [values[f"{NAME}/kl/{k}"] for k in range(len(_kl_cases(quick)))]
    lasso = values[f"{NAME}/lasso"]
    walls = values[f"{NAME}/wall"]
    ex = values[f"{NAME}/exact-expectation"]

    table_case = quad_rows[0]
    sp = table_case["gd"] / table_case["uniform"][0]
    sp_exact = table_case["gd"] / (int(np.argmax(ex <= ACCURACY * ex[0])) / d)
    claims.append(Claim(f"{CD} §9", "RWCD speed-up over WGD on ½xᵀ(I+10·11ᵀ)x, d = 50, ≈ L/L_max = 45.5 "
                        f"({CD} §9: ×38.3); within a factor 1.5",
                        table_case["pred_uniform"] / 1.5 <= sp <= table_case["pred_uniform"] * 1.5,
                        f"×{sp:.1f} (median of {n_seeds} paths), ×{sp_exact:.1f} (exact expectation), predicted "
                        f"×{table_case['pred_uniform']:.1f}"))
    coupled = [r for r in quad_rows if r["name"].startswith("I + c")]
    ratios = [r["gd"] / r["uniform"][0] / r["pred_uniform"] for r in coupled]
    claims.append(Claim(f"{CD} §9 (refined: '≈' is close only for large κ)", "coupled quadratics I + c·11ᵀ, d = 50: "
                        "speed-up ≤ L/L_max for every κ; speed-up/(L/L_max) ≥ 0.75 for κ ≥ 10³ (≈ 0.6–0.75 below)",
                        all(q <= 1.0 for q in ratios)
                        and all(q >= 0.75 for q, r in zip(ratios, coupled) if r["kappa"] >= 1e3),
                        ", ".join(f"κ={r['kappa']:.0f}: ×{r['gd'] / r['uniform'][0]:.1f} vs ×{r['pred_uniform']:.1f}"
                                  for r in coupled)))
    rot = next(r for r in quad_rows if r["name"].startswith("rotated eig (1"))
    sp_l = rot["gd"] / rot["lipschitz"][0]
    claims.append(Claim(f"{CD} §9", "pᵢ ∝ Lᵢ tracks L/mean Lᵢ (rotated single stiff direction, d = 50), beating "
                        "uniform", sp_l > rot["gd"] / rot["uniform"][0] and rot["pred_lipschitz"] / 1.5 <= sp_l
                        <= rot["pred_lipschitz"] * 1.5,
                        f"∝Lᵢ ×{sp_l:.1f} (pred ×{rot['pred_lipschitz']:.1f}); uniform "
                        f"×{rot['gd'] / rot['uniform'][0]:.1f} (pred ×{rot['pred_uniform']:.1f})"))
    sep = quad_rows[-1]
    claims.append(Claim(f"{CD} §9 (finding)", "separable case: no speed-up predicted (L/L_max = 1) yet RWCD "
                        "uniform is far faster (exact coordinate minimisation); ∝ Lᵢ is worse than uniform",
                        sep["uniform"][0] < sep["lipschitz"][0] and sep["gd"] / sep["uniform"][0] > 1.5,
                        f"WGD {sep['gd']:.0f}, uniform {sep['uniform'][0]:.1f}, ∝Lᵢ {sep['lipschitz'][0]:.1f} "
                        "gradient equivalents"))
    kl30 = kl_rows[1]
    sp_kl = kl30["gd"] / kl30["uniform"][0]
    claims.append(Claim(f"{CD} §9", f"RWCP speed-up over WPG on KL(·‖N(0,(I+10·11ᵀ)⁻¹)), d = {d_kl}, "
                        f"≈ L/L_max ({CD} §9, d = 30: ×25.5 vs 27.4); within a factor 1.5",
                        kl30["pred_uniform"] / 1.5 <= sp_kl <= kl30["pred_uniform"] * 1.5,
                        f"×{sp_kl:.1f} vs predicted ×{kl30['pred_uniform']:.1f}"))
    sp_la = lasso["gd"] / lasso["uniform"][0]
    claims.append(Claim(f"[B] arXiv 2604.01606, RWCP on a non-smooth composite ({CD} §4)",
                        "RWCP speed-up over WPG on a lasso-type "
                        "composite on particles (A = I + 10·11ᵀ), ≈ L/L_max; within a factor 1.5",
                        lasso["pred_uniform"] / 1.5 <= sp_la <= lasso["pred_uniform"] * 1.5,
                        f"×{sp_la:.1f} vs predicted ×{lasso['pred_uniform']:.1f} (d = {lasso['d']})"))
    wq, wp = walls
    claims.append(Claim(f"{CD} §6 (cost model)",
                        "quadratic energy: with the O(Nd) Numba coordinate sweep RWCD is faster "
                        "than WGD in wall time too (wall times are load-dependent; the cost ratio is the robust number)",
                        wq[3] / wq[4] > 1.0, f"{wq[0]}: cost ×{wq[1] / wq[2]:.1f}, wall {wall(f'×{wq[3] / wq[4]:.1f}')}",
                        timed=True))
    exp_gd = pair_kernel_exponentials(wp[1], wp[5], wp[6], coordinate=False)
    exp_cd = pair_kernel_exponentials(wp[2], wp[5], wp[6], coordinate=True)
    claims.append(Claim(f"finding vs the cost model of {CD} §6",
                        "Gaussian interaction: the 1/d cost unit overstates the saving — a coordinate step still "
                        "evaluates all N² kernel exponentials (only the O(N²d) flops shrink), so in exponentials "
                        "RWCD's speed-up is the cost speed-up / d, here below 1: RWCD evaluates more exponentials "
                        "than WGD to reach the same gap (an operation count; wall times in the table)",
                        exp_gd / exp_cd < wp[1] / wp[2] and exp_gd / exp_cd < 1.0,
                        f"{wp[0]}: cost ×{wp[1] / wp[2]:.1f}; exponentials WGD {exp_gd:.3g}, RWCD {exp_cd:.3g}: "
                        f"×{exp_gd / exp_cd:.2f}; wall {wall(f'×{wp[3] / wp[4]:.1f}')}"))

    # ------------------------------------------------------------------------------------------- report
    header = ("| case | d | κ | full-gradient cost | RWC· uniform cost, median [min, max] | speed-up | "
              "RWC· ∝Lᵢ cost | speed-up |")
    lines = ["# Random coordinate descent on Wasserstein space (paper [B], arXiv 2604.01606)", "",
             "Derivations: docs/theory/coordinate-descent.md. Cost in gradient "
             "equivalents (one coordinate partial per particle = 1/d of a full Wasserstein gradient), to reach a "
             f"relative gap ≤ {ACCURACY:g}; {n_seeds} coordinate sequences per method (median, [min, max]). Step sizes "
             "ηᵢ = 1/Lᵢ (coordinate methods), η = 1/L (full methods). Predicted speed-ups: L/max Lᵢ (uniform), "
             "L/mean Lᵢ (∝ Lᵢ).", "",
             "## Exactness", "", f"- particle RWCD vs Gaussian recursion on the empirical moments: {err_mom:.1e}",
             f"- expected one-step decrease (enumerated over coordinates) vs closed form: {err_dec:.1e} relative", "",
             "## Rates against the derived bounds", "", "| regime / method | observed | bound | max observed/bound |",
             "|---|---|---|---|"]
    lines += [f"| PL, {r[0]} | contraction per epoch {r[2]:.4f} | {r[3]:.4f} | {r[1]:.3f} |" for r in pl[:2]]
    lines += [f"| PL, {pl[2][0]} | {pl[2][2]:.4f} | {pl[2][3]:.4f} | {pl[2][1]:.3f} |"]
    lines += [f"| PL/LSI (KL, d = 10), {r[0]} | contraction {r[2]:.4f} | {r[3]:.4f} | {r[1]:.3f} |" for r in lsi]
    lines += [f"| geodesically convex, {r[0]} | E Δ_K = {r[2]:.4g} | {r[3]:.4g} | {r[1]:.3f} |" for r in geo]
    lines += [f"| non-convex, {r[0]} | mean E‖∇F‖² = {r[1]:.4g} | {r[2]:.4g} | {r[1] / r[2]:.3f} |" for r in nc]
    lines += ["", "## RWCD vs WGD: quadratic potentials ½xᵀAx, Gaussian representation, ρ₀ = N(𝟙/√d, I)", "", header,
              "|---|---|---|---|---|---|---|---|", *[_fmt_row(r) for r in quad_rows], "",
              "## RWCP vs WPG: KL to N(0, A⁻¹) (entropic composite), Gaussian representation", "", header,
              "|---|---|---|---|---|---|---|---|", *[_fmt_row(r) for r in kl_rows], "",
              "## RWCP vs WPG: lasso-type composite on particles (non-smooth L1 prox)", "", header,
              "|---|---|---|---|---|---|---|---|", _fmt_row(lasso), "",
              "## Wall time on particles (Numba coordinate sweeps vs NumPy/Numba full gradients)", "",
              "| case | WGD cost | RWCD cost | WGD wall (s) | RWCD wall (s) | cost speed-up | wall speed-up |",
              "|---|---|---|---|---|---|---|",
              *[f"| {w[0]} | {w[1]:.4g} | {w[2]:.4g} | {wall(f'{w[3]:.3g}')} | {wall(f'{w[4]:.3g}')} | "
                f"×{w[1] / w[2]:.1f} | {wall(f'×{w[3] / w[4]:.1f}')} |" for w in walls], "",
              "The Gaussian-interaction row's wall speed-up follows the exponential count, not the cost: both routes "
              "evaluate N² exponentials per step (the full gradient with the vectorised polynomial exp, the coordinate "
              "sweep with the C library's scalar exp), so it moves with the machine's load and is not a claim.", ""]

    def rel_gap(row, r):
        if "Fstar" in row:
            return (r.energy - row["Fstar"]) / row["gap0"]
        return r.energy / r.energy[0]

    pngs = [_plot(outdir, quad_rows[:4], "RWCD vs WGD (relative energy gap vs cost)",
                  "wasserstein_coordinate_descent_rwcd.png", rel_gap),
            _plot(outdir, kl_rows + [lasso], "RWCP vs WPG (relative KL / objective gap vs cost)",
                  "wasserstein_coordinate_descent_rwcp.png", rel_gap)]
    for png in pngs:
        if png:
            lines += [f"![{png}]({png})", ""]
    lines += ["## Claims", "", "| source | statement | passed | evidence |", "|---|---|---|---|",
              *[f"| {c.source} | {c.statement} | {_verdict(c)} | {c.evidence} |" for c in claims],
              "", f"Task time {wall(format(sum(seconds.values()), '.1f'))} s ({'quick' if quick else 'full'} mode).",
              ""]
    (outdir / "wasserstein_coordinate_descent.md").write_text("\n".join(lines))
    return claims
