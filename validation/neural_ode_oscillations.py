"""Paper [A] (Xu, Chen, Li, arXiv 2306.02192): AD oscillations in neural-ODE training and their corrections
(derivations: docs/theory/oscillations-and-corrections.md).

For forward Euler, leapfrog (forward-Euler and Heun starters), AB2/AB3, the 2-stage ERK family (Heun, midpoint, Ralston,
an α sweep) and RK4 (stage-time and one-θ-per-step samples), the exact gradient G = ∂L_h/∂θ of the discrete loss
(hand adjoint, checked against the tape) is turned into estimates of the continuous δL/δθ(t):
G/h ("per step"), G/(h w) ("normalised", docs/theory/discrete-adjoint.md), and the corrections of
refimpl.ode.corrections; each is compared with δL/δθ over N = 2^k (k = 5…12; quick: 5…9) on
"linear": an analytic linear case (refimpl.problems.analytic_ode.LinearSystemCase, δL/δθ in closed form), and
"neural": the neural field ẋ = tanh(W(t)x + b(t)), d = 2, T = 1, random smooth W(t), b(t) (fixed seed), δL/δθ by DOP853 at
    rtol 1e-12.
Then a small training experiment: gradient descent on the leapfrog samples θ(t_n) to fit x(T) from several initial
conditions, with raw-AD, corrected and continuous-adjoint updates.
"""
from __future__ import annotations

import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from refimpl.ad import grad
from refimpl.ode import corrections as C
from refimpl.ode.adjoint_ode import continuous_adjoint, continuous_adjoint_rk4
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import QuadraticLoss
from refimpl.ode.integrators import discrete_loss
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import AB2, AB3, FORWARD_EULER, HEUN, LEAPFROG, MIDPOINT, RALSTON, RK4, two_stage
from refimpl.ode.tableau import ButcherTableau
from refimpl.problems.neural_ode import SEED, LinearCase, NeuralCase
from refimpl.sweep import Task, seed_from_key
from validation.claims import Claim
from validation.experiment import measured_cost, run_in_process
from validation.walltime import wall

NAME = "neural_ode_oscillations"

#: where the claims of this experiment are derived (the "source" column of the report)
DISCRETE_ADJOINT_DOC = "docs/theory/discrete-adjoint.md"
OSCILLATIONS_DOC = "docs/theory/oscillations-and-corrections.md"
PAPER_A = "[A] arXiv 2306.02192"


#: (label, method, starter, layout)
SCHEMES = [
    ("forward Euler", FORWARD_EULER, None, "stage"),
    ("leapfrog (Euler starter)", LEAPFROG, "forward_euler", "stage"),
    ("leapfrog (Heun starter)", LEAPFROG, "matched", "stage"),
    ("AB2 (Heun starter)", AB2, "matched", "stage"),
    ("AB3 (RK3 starter)", AB3, "matched", "stage"),
    ("Heun α=1 (shared)", HEUN, None, "stage"),
    ("midpoint α=1/2", MIDPOINT, None, "stage"),
    ("Ralston α=2/3", RALSTON, None, "stage"),
    ("2-stage α=0.4", two_stage(Fraction(2, 5)), None, "stage"),
    ("2-stage α=0.55", two_stage(Fraction(11, 20)), None, "stage"),
    ("2-stage α=0.6", two_stage(Fraction(3, 5)), None, "stage"),
    ("2-stage α=0.75", two_stage(Fraction(3, 4)), None, "stage"),
    ("2-stage α=0.9", two_stage(Fraction(9, 10)), None, "stage"),
    ("RK4 (stage times)", RK4, None, "stage"),
    ("RK4 (one θ per step)", RK4, None, "step"),
]




# ----------------------------------------------------------------------------------------------------------------------
# convergence study


def _stage_rows(smp):
    """For a Runge–Kutta stage layout with distinct stage times: {stage i: sample rows} (by the offset's fraction)."""
    if not isinstance(smp.method, ButcherTableau) or smp.layout != "stage" or smp.method.stages < 2:
        return {}
    c = [Fraction(ci) for ci in smp.method.c]
    if len(set(c)) != len(c) or any(ci >= 1 for ci in c):
        return {}
    frac = np.array([float(o - int(o)) for o in smp.offsets])
    return {i + 1: np.flatnonzero(np.isclose(frac, float(ci))) for i, ci in enumerate(c)}


def _restricted(est, rows_times):
    keep = np.isin(est.times, rows_times)
    return C.GradientSamples(est.times[keep], est.values[keep], est.label, est.reconstructed[keep])


#: extra 2-stage members of the large profile: a finer α sweep in (0, 1] (stage times inside the step), closer to
#: the midpoint's α = ½ where the stage-1 constant of the correction grows
LARGE_EXTRA_SCHEMES = [(f"2-stage α={a}", two_stage(Fraction(a)), None, "stage")
                       for a in ("0.3", "0.35", "0.45", "0.52", "0.65", "0.7", "0.8", "0.85", "0.95")]
#: extra neural cases of the large profile (θ(t), x₀, y drawn from a seed derived from the task key)
LARGE_NEURAL_SEEDS = 8


def schemes(profile: str) -> list:
    """The (label, method, starter, layout) list of a profile: :data:`SCHEMES`, plus :data:`LARGE_EXTRA_SCHEMES` in
    the large profile."""
    return SCHEMES + LARGE_EXTRA_SCHEMES if profile == "large" else SCHEMES


def refinements(profile: str) -> list:
    """N = 2^5 … 2^9 (quick), 2^12 (full), 2^16 (large)."""
    return [2 ** k for k in range(5, {"quick": 10, "full": 13, "large": 17}[profile])]


def case_ids(profile: str) -> list:
    """The cases of a profile: "linear", "neural" (seed :data:`SEED`), and in the large profile
    :data:`LARGE_NEURAL_SEEDS` more neural cases "neural/seed=<s>" with s = seed_from_key of their key."""
    ids = ["linear", "neural"]
    if profile == "large":
        ids += [f"neural/seed={seed_from_key(f'{NAME}/neural-extra/{k}')}" for k in range(LARGE_NEURAL_SEEDS)]
    return ids


def make_case(case_id: str):
    """The case object named by ``case_id`` (see :func:`case_ids`)."""
    if case_id == "linear":
        return LinearCase()
    if case_id == "neural":
        return NeuralCase()
    if case_id.startswith("neural/seed="):
        case = NeuralCase(int(case_id.split("=", 1)[1]))
        case.name = f"neural tanh, d=2, seed {case_id.split('=', 1)[1]}"
        return case
    raise ValueError(f"case_id: unknown case {case_id!r}")


def _estimates(case, N, scheme, grad_theta=None):
    """The estimates of one scheme at one N: {name: GradientSamples} (``grad_theta`` None: the exact discrete gradient
    by the hand adjoint; an array: that gradient, e.g. zeros when only the estimates' times are wanted)."""
    label, method, starter, layout = scheme
    smp = parameter_samples(method, case.T, N, layout, starter)
    if grad_theta is None:
        grad_theta = discrete_adjoint(case.field, method, case.x0, case.theta(smp.times), case.T, N, case.loss,
                                      layout=layout, starter=starter).grad_theta
    elif np.isscalar(grad_theta) and grad_theta == 0:
        grad_theta = np.zeros((smp.n_samples, case.field.n_params))
    with np.errstate(invalid="ignore", divide="ignore"):  # zero gradients (times only) may meet zero weights
        ests = C.applicable_estimates(grad_theta, smp)
    for i, rows in _stage_rows(smp).items():
        for name in ("per_step", "corrected"):
            ests[f"{name} stage {i}"] = _restricted(ests[name], smp.times[rows])
    return ests


def estimates_task(case_id: str, N: int, scheme_index: int, profile: str) -> dict:
    """Task: {estimate name: GradientSamples} of scheme ``schemes(profile)[scheme_index]`` on ``case_id`` at N."""
    return _estimates(make_case(case_id), N, schemes(profile)[scheme_index])


def reference_task(case_id: str, N: int, profile: str, estimate_error: bool) -> tuple:
    """Task: (times, δL/δθ at times, reference error estimate or None) — times = the union of every estimate's times
    at N over the profile's schemes (the estimates' times depend only on the samples, so they are taken from a zero
    gradient; the assembly checks each estimate's times against them)."""
    case = make_case(case_id)
    times = np.unique(np.concatenate([e.times for scheme in schemes(profile)
                                      for e in _estimates(case, N, scheme, 0).values()]))
    ref = case.reference(times, estimate_error=estimate_error)
    return times, ref, case.reference_error


def study(case, Ns, values, profile, case_id):
    """{(scheme label, estimate name): [GradientError per N]} and the N = 64 estimates for plots, from the task
    values of the refinement study."""
    table, keep = {}, {}
    for N in Ns:
        times, ref, ref_err = values[f"{NAME}/{case_id}/N={N}/reference"]
        if N == Ns[-1]:
            case.reference_error = ref_err
        for k, (label, *_rest) in enumerate(schemes(profile)):
            ests = values[f"{NAME}/{case_id}/N={N}/{k}"]
            for name, e in ests.items():
                idx = np.searchsorted(times, e.times)
                if not np.array_equal(times[np.minimum(idx, times.size - 1)], e.times):
                    raise RuntimeError(f"{label} {name} at N={N}: estimate times missing from the reference times")
                err = C.gradient_error(e, ref[idx])
                table.setdefault((label, name), []).append(err)
            if N == 64:
                keep[label] = (ests, lambda t, times=times, ref=ref: ref[np.searchsorted(times, t)])
    return table, keep


def _rate(Ns, errs):
    return float(-np.polyfit(np.log(Ns), np.log(errs), 1)[0])


def _table_md(Ns, table, attr):
    head = "| scheme | estimate | " + " | ".join(f"N={N}" for N in Ns) + " | rate |"
    lines = [head, "|" + "---|" * (len(Ns) + 3)]
    for (label, name), errs in table.items():
        vals = [getattr(e, attr) for e in errs]
        lines.append(f"| {label} | {name} | " + " | ".join(f"{v:.2e}" for v in vals) + f" | {_rate(Ns, vals):.2f} |")
    return lines


# ----------------------------------------------------------------------------------------------------------------------
# training


#: the three update rules of the training experiment, in report order
TRAINING_UPDATES = ("raw AD G/(h w)", "corrected (pair sum)", "continuous adjoint")


def training_task(update: str, quick: bool) -> tuple:
    """Task: (history, info) of the training run with one update rule (see :func:`_training`)."""
    if update not in TRAINING_UPDATES:
        raise ValueError(f"update: one of {TRAINING_UPDATES}, got {update!r}")
    out, info = _training(quick, only=update)
    return out[update], info


def _training(quick: bool, only: str | None = None):
    """Fit x_j(T) ≈ y_j (j = 1..M) with leapfrog (Euler starter), θ sampled on t_0..t_{N−1}, by gradient descent
    θ_n ← θ_n − η ĝ_n for three choices of ĝ: raw normalised AD gradient G/(2h), the corrected gradient at the grid
    (pair sums, interpolated), and the continuous δL/δθ(t_n) of the piecewise-linear θ (RK4 + Richardson route).
    Targets y_j from a smooth teacher θ*(t) (exact flow by DOP853)."""
    rng = np.random.default_rng(SEED + 1)
    teacher = NeuralCase(SEED + 2)
    field, T = teacher.field, 1.0
    N, M, iters, eta, every = (32, 3, 40, 0.5, 10) if quick else (64, 4, 120, 0.5, 10)
    x0s = rng.standard_normal((M, 2))
    ys = [continuous_adjoint(field, lambda t: teacher.theta(t), x0, T, QuadraticLoss(np.zeros(2)),
                             times=[T], error_estimate=None).x_final for x0 in x0s]
    losses = [QuadraticLoss(y) for y in ys]
    smp = parameter_samples(LEAPFROG, T, N, "stage", "forward_euler")
    tg = smp.times

    def theta_fn(th):
        return lambda t: np.array([np.interp(t, tg, th[:, k]) for k in range(th.shape[1])])

    def discrete(th):
        G, L = np.zeros_like(th), 0.0
        for x0, loss in zip(x0s, losses):
            adj = discrete_adjoint(field, LEAPFROG, x0, th, T, N, loss, starter="forward_euler")
            G += adj.grad_theta
            L += float(adj.loss)
        return L, G

    def continuous(th):
        g, L = np.zeros_like(th), 0.0
        for x0, loss in zip(x0s, losses):
            res = continuous_adjoint_rk4(field, theta_fn(th), x0, T, loss, n_steps=N, times=tg)
            g += res.functional_gradient
            L += res.loss
        return L, g

    updates = {
        "raw AD G/(h w)": lambda th, G: C.normalised_gradient(G, smp).values,
        "corrected (pair sum)": lambda th, G: C.at_times(C.leapfrog_corrected_gradient(G, smp), tg).values,
        "continuous adjoint": None,
    }
    out = {}
    for name, upd in updates.items():
        if only is not None and name != only:
            continue
        th = np.zeros((smp.n_samples, field.n_params))
        hist = {"L_h": [], "L": [], "L_iter": []}
        t0 = time.perf_counter()
        for it in range(iters + 1):
            Lh, G = discrete(th)
            hist["L_h"].append(Lh)
            if upd is None or it % every == 0 or it == iters:
                Lc, gc = continuous(th)
                hist["L"].append(Lc)
                hist["L_iter"].append(it)
            if it == iters:
                break
            step = gc if upd is None else upd(th, G)
            th = th - eta * step
        hist["seconds"] = time.perf_counter() - t0  # wall time: masked in report comparisons (validation/walltime.py)
        hist["theta"] = th
        scale = max(np.max(np.abs(th)), 1e-300)
        rms = max(float(np.sqrt(np.mean(np.sum(th * th, axis=1)))), 1e-300)
        hist["oscillation"] = float(np.sqrt(np.mean(C.alternating_component(th) ** 2))) / rms
        hist["roughness"] = float(np.sqrt(np.mean(np.sum(np.diff(th, axis=0) ** 2, axis=1))) / (float(smp.h) * scale))
        out[name] = hist
    return out, dict(N=N, M=M, iters=iters, eta=eta, times=tg)


# ----------------------------------------------------------------------------------------------------------------------
# plots


def _plots(outdir, keep, train, train_info):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    files = []
    panels = [("leapfrog (Euler starter)", ["normalised", "average", "corrected"]),
              ("Ralston α=2/3", ["per_step", "corrected"]),
              ("midpoint α=1/2", ["per_step", "corrected"]),
              ("RK4 (stage times)", ["per_step", "normalised"])]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (label, names) in zip(axes.ravel(), panels):
        ests, ref = keep[label]
        comp = int(np.argmax(np.max(np.abs(ests["normalised"].values[np.isfinite(ests["normalised"].values[:, 0])]),
                                    axis=0)))
        tt = np.unique(np.concatenate([ests[n].times for n in names]))
        ax.plot(tt, ref(tt)[:, comp], "k-", lw=2, label="δL/δθ (continuous)")
        for n in names:
            e = ests[n]
            ax.plot(e.times, e.values[:, comp], ".-", ms=3, lw=0.7, label=f"{n}: {e.label}")
        ax.set_title(f"{label}, N=64, component {comp}")
        ax.set_xlabel("t")
        ax.legend(fontsize=7)
    fig.tight_layout()
    f = outdir / "neural_ode_oscillations_gradients.png"
    fig.savefig(f, dpi=110)
    plt.close(fig)
    files.append(f.name)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for name, h in train.items():
        axes[0].semilogy(h["L_h"], label=name)
        axes[1].semilogy(h["L_iter"], h["L"], "o-", ms=3, label=name)
        comp = 0
        axes[2].plot(train_info["times"], h["theta"][:, comp], ".-", ms=3, label=name)
    axes[0].set_title("discrete loss L_h (leapfrog)")
    axes[1].set_title("continuous loss L(θ interpolated)")
    axes[2].set_title("learned θ(t), component 0")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.set_xlabel("iteration" if ax is not axes[2] else "t")
    fig.tight_layout()
    f = outdir / "neural_ode_oscillations_training.png"
    fig.savefig(f, dpi=110)
    plt.close(fig)
    files.append(f.name)
    return files


# ----------------------------------------------------------------------------------------------------------------------


def _tape_check(case, N=7):
    """max over schemes of |hand − tape| / max|tape| for the discrete gradient at a small N."""
    worst = 0.0
    for label, method, starter, layout in SCHEMES:
        smp = parameter_samples(method, case.T, N, layout, starter)
        th = case.theta(smp.times)
        hand = discrete_adjoint(case.field, method, case.x0, th, case.T, N, case.loss, layout=layout,
                                starter=starter).grad_theta
        tape = grad(lambda v: discrete_loss(case.field, method, case.x0, v, case.T, N, case.loss, layout=layout,
                                            starter=starter))(th)
        worst = max(worst, float(np.max(np.abs(hand - tape)) / np.max(np.abs(tape))))
    return worst


def reference_check_task() -> float:
    """Task: max |vectorised closed form − expm route| of the linear case's δL/δθ at 9 times."""
    linear = LinearCase()
    tt = np.linspace(0, linear.T, 9)
    return float(np.max(np.abs(linear.reference(tt) - linear.case.functional_gradient_exact(tt))))


def tape_check_task(case_id: str) -> float:
    """Task: :func:`_tape_check` of one case."""
    return _tape_check(make_case(case_id))


def _task_cost(case_id: str, N: int, part, profile: str, estimate_error: bool = False):
    """Estimated CPU seconds of a refinement task (``part``: scheme index or "reference"), for the core-hour estimate
    only: the measured cost of the same task in the full profile (validation/task_costs.json); beyond the full profile
    scaled linearly in N from N = 4096 (the sweeps and the reference's dense output are O(N)), a reference without the
    error estimate from N = 2048 (the full profile estimates the error at 4096 only: a second, tighter solve), extra
    neural seeds costed as the default neural case, extra schemes as the mean of the measured 2-stage ones."""
    if profile == "quick":
        return None
    base = "linear" if case_id == "linear" else "neural"
    n_ref = min(N, 4096)
    if part == "reference":
        n_ref = min(N, 4096 if estimate_error else 2048)
        measured = measured_cost(f"{NAME}/{base}/N={n_ref}/reference")
        widen = len(schemes(profile)) / len(SCHEMES)
    elif part < len(SCHEMES):
        measured, widen = measured_cost(f"{NAME}/{base}/N={n_ref}/{part}"), 1.0
    else:
        two_stage_costs = [measured_cost(f"{NAME}/{base}/N={n_ref}/{k}") for k in range(8, 13)]
        measured = None if None in two_stage_costs else sum(two_stage_costs) / len(two_stage_costs)
        widen = 1.0
    return None if measured is None else measured * widen * N / n_ref


def tasks(profile: str) -> list:
    """The independent parts of the experiment: per case × N, one task per scheme (hand adjoint + estimates) and
    one reference task; the tape and closed-form checks; one training run per update rule."""
    quick = profile == "quick"
    out = [Task.make(f"{NAME}/reference-check", f"{__name__}:reference_check_task")]
    out += [Task.make(f"{NAME}/tape-check/{c}", f"{__name__}:tape_check_task", c) for c in ("neural", "linear")]
    Ns = refinements(profile)
    for c in case_ids(profile):
        for N in Ns:
            out += [Task.make(f"{NAME}/{c}/N={N}/{k}", f"{__name__}:estimates_task", c, N, k, profile,
                              cost=_task_cost(c, N, k, profile)) for k in range(len(schemes(profile)))]
            out.append(Task.make(f"{NAME}/{c}/N={N}/reference", f"{__name__}:reference_task", c, N, profile,
                                 N == Ns[-1], cost=_task_cost(c, N, "reference", profile, N == Ns[-1])))
    out += [Task.make(f"{NAME}/training/{u}", f"{__name__}:training_task", u, quick) for u in TRAINING_UPDATES]
    return out


def run(outdir: Path, quick: bool) -> list[Claim]:
    """Run the experiment's tasks in this process and assemble the section (``python -m refimpl validate`` runs the
    tasks through refimpl.sweep instead)."""
    return run_in_process(sys.modules[__name__], outdir, "quick" if quick else "full")


def assemble(outdir: Path, profile: str, values: dict, seconds: dict) -> list[Claim]:
    """Write ``neural_ode_oscillations.md`` (and plots) from the task values; return the claims."""
    outdir = Path(outdir)
    Ns = refinements(profile)
    span = f"N={Ns[0]}..{Ns[-1]}"
    ids = case_ids(profile)
    cases = [make_case(c) for c in ids]
    linear, neural = cases[0], cases[1]
    lin_check = values[f"{NAME}/reference-check"]
    tape_worst = max(values[f"{NAME}/tape-check/neural"], values[f"{NAME}/tape-check/linear"])

    results = {}
    for c, case in zip(ids, cases):
        table, keep = study(case, Ns, values, profile, c)
        secs = sum(v for k, v in seconds.items() if k.startswith(f"{NAME}/{c}/N="))
        results[case.name] = (table, keep, secs)
    train = {u: values[f"{NAME}/training/{u}"][0] for u in TRAINING_UPDATES}
    train_info = values[f"{NAME}/training/{TRAINING_UPDATES[0]}"][1]

    lines = ["# Paper [A]: AD oscillations in neural-ODE training and their corrections", "",
             "Estimates of δL/δθ(t) from the exact discrete gradient G = ∂L_h/∂θ (hand adjoint; tape agreement "
             f"{tape_worst:.1e} relative at N = 7 for every scheme): `per_step` = G/h, `normalised` = G/(h w) "
             f"({DISCRETE_ADJOINT_DOC}), `corrected` = leapfrog pair sum (G_n + G_{{n+1}})/(2h) at t_{{n+½}} or "
             "the ERK stage-weight correction G/(h b_i) (midpoint: stage-1 samples reconstructed by interpolation), "
             "`average` = ½(g_n + g_{n+1}) (leapfrog; wrong by the factor ½ derived in "
             f"{OSCILLATIONS_DOC}). `stage i` rows restrict to the samples of stage i. Errors against the continuous "
             "δL/δθ at the estimate's own times; rate = least-squares slope "
             f"of log error vs log N over {span}.", ""]
    for k, case in enumerate(cases):
        table, keep, secs = results[case.name]
        ref_note = ("closed form (eigendecomposition; agrees with the expm route of refimpl.problems.analytic_ode to "
                    f"{lin_check:.1e})" if case is linear else
                    f"DOP853 rtol 1e-12, estimated error ≤ {case.reference_error:.1e} at N={Ns[-1]}")
        lines += [f"## ({chr(ord('a') + k)}) {case.name}", "", f"Reference: {ref_note}. "
                  f"max|δL/δθ| = {table[(SCHEMES[0][0], 'normalised')][0].reference_max:.3f}. "
                  f"({wall(f'{secs:.1f} s')} of task time)", "",
                  "### max error", "", *_table_md(Ns, table, "max_error"), "",
                  "### L² error", "", *_table_md(Ns, table, "l2_error"), "",
                  "### (−1)ⁿ amplitude of the estimate (max over samples; O(h) on non-uniform sample grids)", "",
                  *_table_md(Ns, table, "alternating"), ""]

    # comparison with the reference numbers of the neural case
    nt = results[neural.name][0]
    ref_max = nt[(SCHEMES[0][0], "normalised")][0].reference_max
    def row(key, attr="max_error"):
        return [getattr(e, attr) for e in nt[key]]
    lf_raw = row(("leapfrog (Euler starter)", "normalised"))
    lf_avg = row(("leapfrog (Euler starter)", "average"))
    lf_cor = row(("leapfrog (Euler starter)", "corrected"))
    lines += ["## Comparison with the reference numbers (neural case)", "",
              f"Reference numbers: those of the oscillation experiment in {OSCILLATIONS_DOC}, for other (unknown) "
              f"W(t), b(t), x₀, y. Here max|δL/δθ| = {ref_max:.3f} (the reference numbers "
              "imply ≈ 1.23: averaging wrong by 0.61 ≈ ½·1.23, Ralston raw 0.92 ≈ ¾·1.23, 0.31 ≈ ¼·1.23). So compare "
              "errors relative to max|δL/δθ|, and rates.", "",
              "| quantity | reference | ours (abs) | ours / max|δL/δθ| | reference / 1.23 |", "|---|---|---|---|---|",
              f"| leapfrog raw g, N={Ns[0]}..{Ns[-1]} | 0.82–0.84 | {min(lf_raw):.3f}–{max(lf_raw):.3f} | "
              f"{min(lf_raw) / ref_max:.3f}–{max(lf_raw) / ref_max:.3f} | 0.67–0.68 |",
              f"| leapfrog ½(g_n+g_(n+1)) | ≈ 0.61 | {lf_avg[-1]:.3f} | {lf_avg[-1] / ref_max:.3f} | 0.50 |",
              f"| leapfrog corrected, N=32 → {Ns[-1]} | 4.5e-3 → (1.3e-4 at 1024) | {lf_cor[0]:.2e} → {lf_cor[-1]:.2e} "
              f"| {lf_cor[0] / ref_max:.1e} → {lf_cor[-1] / ref_max:.1e} | 3.7e-3 → 1.1e-4 |"]
    for i, spec_raw, spec_cor in ((1, "0.92", "9.0e-3 → 5.6e-4 (64→1024)"), (2, "0.31", "3.0e-3 → 1.9e-4")):
        r = row(("Ralston α=2/3", f"per_step stage {i}"))
        c = row(("Ralston α=2/3", f"corrected stage {i}"))
        lines.append(f"| Ralston stage {i}: raw G/h; corrected | {spec_raw}; {spec_cor} | {r[-1]:.3f}; "
                     f"{c[0]:.2e} → {c[-1]:.2e} | {r[-1] / ref_max:.3f}; rate {_rate(Ns, c):.2f} | "
                     f"{float(spec_raw) / 1.23:.2f}; rate 1 |")
    lines += ["", "Rates of the corrected / normalised estimates (neural case, max error):", "",
              "| scheme | estimate | rate |", "|---|---|---|"]
    for (label, name), errs in nt.items():
        if name in ("corrected", "normalised"):
            lines.append(f"| {label} | {name} | {_rate(Ns, [e.max_error for e in errs]):.2f} |")

    lines += ["", "Stage-1 constant of the 2-stage correction (derived: G⁽¹⁾/(h b₁) = δL/δθ + O(h) with a term "
              "h·(α b₂/b₁)·∂_θfᵀJᵀλ, so the constant grows as α → ½):", "",
              "| α | b₁ | α b₂/|b₁| | N·(corrected stage-1 max error) at N = " + f"{Ns[-1]} |", "|---|---|---|---|"]
    for label, method, _, _ in SCHEMES:
        if (label, "corrected stage 1") in nt and method is not MIDPOINT:
            b1, b2, a = float(method.b[0]), float(method.b[1]), float(method.c[1])
            lines.append(f"| {a:.3g} | {b1:.3g} | {a * b2 / abs(b1):.3g} | "
                         f"{Ns[-1] * nt[(label, 'corrected stage 1')][-1].max_error:.3g} |")
    lines += ["", "## Training: leapfrog, gradient descent on θ(t_n)", "",
              f"N = {train_info['N']}, {train_info['M']} initial conditions, targets from a smooth teacher θ*(t) "
              f"(exact flow), θ₀ ≡ 0, step η = {train_info['eta']}, {train_info['iters']} iterations. L_h: the "
              "leapfrog loss being trained; L: the continuous loss of the piecewise-linear θ(t) (RK4 + Richardson). "
              "Oscillation: rms of the (−1)ⁿ component of the learned samples / rms|θ|; roughness: rms |θ_(n+1) − θ_n|/(h max|θ|).",
              "", "| update | L_h start | L_h end | L end | oscillation | roughness | seconds |",
              "|---|---|---|---|---|---|---|"]
    for name, h in train.items():
        lines.append(f"| {name} | {h['L_h'][0]:.3e} | {h['L_h'][-1]:.3e} | {h['L'][-1]:.3e} | "
                     f"{h['oscillation']:.2e} | {h['roughness']:.2f} | {wall(format(h['seconds'], '.1f'))} |")
    lt = results[linear.name][0]
    ab2_w0 = parameter_samples(AB2, 1.0, 8, "stage", "matched").weights[0]
    lines += ["", "## Findings", "",
              f"* Leapfrog: g = G/(2h) oscillates around ½δL/δθ and never converges (max error / max|δL/δθ| = "
              f"{lf_raw[-1] / ref_max:.2f} (neural), {lt[('leapfrog (Euler starter)', 'normalised')][-1].max_error / lt[('leapfrog (Euler starter)', 'normalised')][-1].reference_max:.2f} (linear)); "
              "in the linear case it exceeds 1 because the parasitic adjoint mode obeys v′ = +Jᵀv and grows backward in time "
              "for the dissipative A (T = 2). The starter (Euler vs Heun) does not matter: the adjoint's parasitic "
              "mode is excited by the terminal data λ_N = ∇Φ, λ_(N+1) = 0, not by the starter.",
              "* The pair *sum* converges at first order; the pair *average* converges to ½δL/δθ (error → "
              f"{lf_avg[-1] / ref_max:.2f}·max|δL/δθ|), confirming the factor ½ of the derivation.",
              "* 2-stage ERK: G/h → b_i δL/δθ (errors (1 − b_i)·max|δL/δθ| exactly as derived); G/(h b_i) converges at "
              "first order for every α tried, including α = 0.4 (b₁ < 0) and the midpoint rule with reconstructed "
              "stage-1 samples. The stage-1 constant grows as α → ½ (table above).",
              "* Controls: Euler and one-θ-per-step RK4 converge at first order; Heun with shared grid samples at "
              "*second* order, and RK4 with stage-time samples, normalised by w (⅓ at grid times, ⅔ at half steps), "
              "at *third* order — more than the first order the general statement guarantees. RK4 stage samples *do* "
              "oscillate "
              "raw (G/h alternates between ⅓ and ⅔ of δL/δθ), not after normalisation.",
              "* AB2/AB3 (parasitic roots 0): no persistent (−1)ⁿ mode; G/(h w) converges at first order. G/h is "
              "wrong only near the ends, where the summed β weights differ from 1; with the Heun starter the AB2 "
              f"sample at t₀ has weight w = {ab2_w0:g} (starter b₁ = ½ cancels β₀ = −½) and carries no first-order "
              "information (excluded, like midpoint stage 1).",
              "* Training: raw-AD descent lowers L_h but learns a sawtooth θ(t) whose continuous loss stalls; corrected "
              "updates follow the continuous-adjoint updates closely at a fraction of the cost."]
    files = _plots(outdir, results[neural.name][1], train, train_info)
    lines += [""] + [f"![{f}]({f})" for f in files] + [""]
    (outdir / "neural_ode_oscillations.md").write_text("\n".join(lines))

    # claims
    claims = [Claim(DISCRETE_ADJOINT_DOC, "discrete gradient = exact gradient of L_h (tape == hand adjoint ≤ 1e-13)",
                    tape_worst <= 1e-13, f"worst {tape_worst:.1e} over {len(SCHEMES)} schemes × 2 cases, N=7")]
    for case in cases:
        t = results[case.name][0]
        tag = "(linear)" if case is linear else "(neural)" if case is neural else f"({case.name})"
        raw = [e.max_error / e.reference_max for e in t[("leapfrog (Euler starter)", "normalised")]]
        claims.append(Claim(f"{PAPER_A}; {OSCILLATIONS_DOC}",
                            f"{tag} leapfrog raw AD gradient does not converge to δL/δθ",
                            min(raw) >= 0.45, f"max err / max|δL/δθ| = {min(raw):.2f}..{max(raw):.2f} over {span}"))
        for label in ("leapfrog (Euler starter)", "leapfrog (Heun starter)", "Ralston α=2/3", "midpoint α=1/2",
                      "2-stage α=0.4", "2-stage α=0.6", "2-stage α=0.75", "2-stage α=0.9"):
            r = _rate(Ns, [e.max_error for e in t[(label, "corrected")]])
            claims.append(Claim(OSCILLATIONS_DOC, f"{tag} {label}: corrected gradient converges at first order",
                                abs(r - 1) <= 0.15, f"rate {r:.2f} over {span}"))
        r = [e.max_error / e.reference_max for e in t[("Ralston α=2/3", "per_step")]]
        claims.append(Claim(f"{PAPER_A}; {OSCILLATIONS_DOC}",
                            f"{tag} Ralston raw G/h does not converge (stage weights)",
                            min(r) >= 0.6, f"max err / max|δL/δθ| = {min(r):.2f}..{max(r):.2f}"))
        for label in ("forward Euler", "RK4 (one θ per step)", "AB2 (Heun starter)", "AB3 (RK3 starter)",
                      "RK4 (stage times)", "Heun α=1 (shared)"):
            r = _rate(Ns, [e.max_error for e in t[(label, "normalised")]])
            claims.append(Claim(OSCILLATIONS_DOC, f"{tag} {label}: G/(h w) converges without correction", r >= 0.85,
                                f"rate {r:.2f} over {span}"))
    fin = {k: v["L"][-1] for k, v in train.items()}
    osc = {k: v["oscillation"] for k, v in train.items()}
    claims.append(Claim("[A] (training)", "raw-AD training learns an oscillating θ(t); corrected and continuous "
                        "updates learn a smooth one", osc["raw AD G/(h w)"] > 5 * max(osc["corrected (pair sum)"],
                                                                                   osc["continuous adjoint"]),
                        "oscillation " + ", ".join(f"{k}: {v:.1e}" for k, v in osc.items())))
    L0 = train["corrected (pair sum)"]["L"][0]
    claims.append(Claim("[A] (training)", "raw-AD updates stall on the continuous loss (final L ≥ 10× that of "
                        "corrected updates), corrected updates reduce it ≥ 20× like continuous-adjoint updates",
                        fin["raw AD G/(h w)"] >= 10 * fin["corrected (pair sum)"]
                        and fin["corrected (pair sum)"] <= 0.05 * L0,
                        f"initial L {L0:.2e}; final L " + ", ".join(f"{k}: {v:.2e}" for k, v in fin.items())))
    return claims
