r"""Benchmark: the gradient of an adaptive Dormand–Prince 5(4) solve, :math:`L = \tfrac12|x(T) - y|^2` with respect
to one constant :math:`\theta = (W, b)` and :math:`x_0` of the tanh field :math:`f(x,\theta) = \tanh(Wx + b)`, on
problems with d ≤ 16 and about 1000 accepted steps, by five routes that compute the same number:

``refimpl hand (numba), grid given``  the frozen-grid discrete adjoint (a) on the accepted grid:
                                     :func:`refimpl.ode.adjoint_recursions.discrete_adjoint` with ``grid=``,
                                     ``layout="constant"``, ``backend="numba"`` (a fixed-step forward sweep on the
                                     grid and the hand backward sweep; the adaptive forward solve is not timed);
``refimpl hand kernels, grid given`` the two checked Numba sweeps of :mod:`refimpl.ode._numba` alone, set-up
                                     (samples, tableau arrays) done once outside the timed call;
``refimpl adaptive + hand``          the public hand call plus the adaptive forward solve that finds the grid
                                     (:meth:`refimpl.ode.conventions.DiffraxConvention.solve`, Python/NumPy);
``torchdiffeq odeint + backward``    ``odeint(method="dopri5")`` + ``backward()``, with ``options={"first_step": h0,
                                     "step_t": [T]}`` — a constant first step and the last step clipped to T, so that
                                     its gradient is (a) on its own accepted grid (with the defaults it is a different
                                     derivative: tests/test_adaptive_torchdiffeq.py);
``diffrax RecursiveCheckpointAdjoint (jit)``  ``jit(grad)`` of ``diffeqsolve(Dopri5(),
                                     PIDController(rtol, atol))``, whose gradient is (a) on its accepted grid
                                     (tests/test_adaptive_diffrax.py).

Every route's gradient is first compared with the hand adjoint on *that route's own* accepted grid (they differ only
by the rounding of the error estimate): ``rel_err = max|g − g_hand| / max|g_hand|`` must be ≤ 1e-10 before the route
is timed. All float64 on the CPU; the problem's T is calibrated so that diffrax's convention takes ``target_steps``
accepted steps. Ratios are route time / hand time, measured in the same run. Peers that are not installed are
reported as absent. Timing is for the lead's measured runs (``python -m benchmarks.adaptive_adjoint``);
``--smoke`` is a quick check that every route runs and agrees.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.conventions import DiffraxConvention
from refimpl.ode.fields import QuadraticLoss, TanhField

from benchmarks.timing import first_call, time_repeats

__all__ = ["AdaptiveProblem", "make_problem", "ROUTES", "run_case", "AGREEMENT_TOL"]

#: every route must agree with the hand adjoint on its own grid to this relative error before it is timed
AGREEMENT_TOL = 1e-10
RTOL = ATOL = 1e-8
CONVENTION = DiffraxConvention("Dopri5")


class AdaptiveProblem:
    """tanh field of dimension ``d``, constant θ = (W, b) with W = 2S − 0.05 I (S skew-symmetric with N(0, 1/d)
    entries): an oscillating, weakly damped flow, so the step count grows with T while the adjoint stays O(1) (with a
    non-normal W the gradient grows like e^{λT} and two correct float64 routes differ by its rounding
    amplification, ~1e-10 at d = 16, T ~ 100 — a conditioning effect, not a disagreement), x0, target y, end time T."""

    def __init__(self, d: int, T: float, seed: int = 0):
        rng = np.random.default_rng(seed)
        G = rng.standard_normal((d, d))
        S = (G - G.T) / np.sqrt(2 * d)
        W = 2.0 * S - 0.05 * np.eye(d)
        self.d, self.T = d, float(T)
        self.field = TanhField(d)
        self.theta = self.field.pack(W, 0.1 * rng.standard_normal(d))
        self.x0 = 0.5 * rng.standard_normal(d)
        self.y = rng.standard_normal(d)
        self.loss = QuadraticLoss(self.y)

    def grid(self):
        return CONVENTION.solve(self.field, self.x0, self.theta, self.T, rtol=RTOL, atol=ATOL).grid


def make_problem(d: int, target_steps: int = 1000, seed: int = 0) -> AdaptiveProblem:
    """Calibrate T so that the diffrax convention takes about ``target_steps`` accepted steps (within 10%): start on
    [0, 4] and rescale T by target/steps (the step count grows roughly, not exactly, linearly in T), at most 5 times."""
    T = 4.0
    for _ in range(5):
        problem = AdaptiveProblem(d, T, seed)
        n = len(problem.grid()) - 1
        if abs(n - target_steps) <= 0.1 * target_steps:
            break
        T *= target_steps / max(n, 1)
    return problem


def _hand(p: AdaptiveProblem, grid):
    g = np.asarray(grid, dtype=np.float64)
    theta = p.theta[None, :]
    pair = CONVENTION.pair

    def run():
        res = discrete_adjoint(p.field, pair.tableau, p.x0, theta, float(g[-1]), len(g) - 1, p.loss,
                               layout="constant", grid=g, backend="numba")
        return np.concatenate([np.asarray(res.grad_theta).reshape(-1), res.grad_x0])
    return run


def refimpl_hand(p: AdaptiveProblem):
    return _hand(p, p.grid()), None


def refimpl_hand_kernels(p: AdaptiveProblem):
    """Only the checked Numba kernel wrappers (forward sweep on the grid, ∇Φ, backward sweep), the parameter
    samples and the tableau arrays set up once: what the public call costs once its set-up is cached."""
    from refimpl.ode import _numba as kernels
    from refimpl.ode.samples import parameter_samples

    g = np.asarray(p.grid(), dtype=np.float64)
    tab = CONVENTION.pair.tableau
    smp = parameter_samples(tab, float(g[-1]), len(g) - 1, "constant", grid=g)
    A, b, _ = tab.arrays()
    hA, hb = np.ascontiguousarray(A), np.ascontiguousarray(b)
    steps, theta, y = np.diff(g), p.theta[None, :], p.y
    stage_index = np.asarray(smp.stage_index)

    def run():
        xs, stages = kernels.erk_forward(p.field.kernel, p.x0, theta, stage_index, hA, hb, keep_stages=True,
                                         steps=steps)
        g_theta, lambdas = kernels.erk_backward(p.field.kernel, xs, theta, stage_index, hA, hb, xs[-1] - y,
                                                stages=stages, steps=steps)
        return np.concatenate([g_theta.reshape(-1), lambdas[0]])
    return run, None


def refimpl_adaptive_hand(p: AdaptiveProblem):
    def run():
        return _hand(p, p.grid())()
    return run, None


def torchdiffeq_backward(p: AdaptiveProblem):
    import torch
    import torchdiffeq

    d = p.d
    sol = CONVENTION.solve(p.field, p.x0, p.theta, p.T, rtol=RTOL, atol=ATOL)
    h0 = float(sol.grid[1])  # any constant; the grid's first step keeps the runs comparable
    recorded = []

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.theta = torch.nn.Parameter(torch.tensor(p.theta))

        def forward(self, t, x):
            return torch.tanh(self.theta[: d * d].reshape(d, d) @ x + self.theta[d * d:])

        def callback_accept_step(self, t0, y0, dt):
            recorded.append(float(t0) + float(dt))

    func = Field()
    y = torch.tensor(p.y)
    t = torch.tensor([0.0, p.T], dtype=torch.float64)
    options = {"first_step": torch.tensor(h0, dtype=torch.float64),
               "step_t": torch.tensor([p.T], dtype=torch.float64)}

    def run():
        recorded.clear()
        func.theta.grad = None
        x0 = torch.tensor(p.x0, requires_grad=True)
        out = torchdiffeq.odeint(func, x0, t, rtol=RTOL, atol=ATOL, method="dopri5", options=options)
        (0.5 * torch.sum((out[-1] - y) ** 2)).backward()
        return np.concatenate([func.theta.grad.numpy(), x0.grad.numpy()])

    def own_grid():
        return np.array([0.0] + recorded)
    return run, own_grid


def diffrax_recursive_checkpoint(p: AdaptiveProblem):
    os.environ.setdefault("JAX_ENABLE_X64", "1")
    import diffrax
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    jnp = jax.numpy
    d = p.d
    n_max = 4 * (len(p.grid()) + 16)
    term = diffrax.ODETerm(lambda t, x, th: jnp.tanh(th[: d * d].reshape(d, d) @ x + th[d * d:]))
    y = jnp.asarray(p.y)

    saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), diffrax.SubSaveAt(steps=True)])

    def loss(th, x0):
        sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), 0.0, p.T, None, x0, args=th,
                                  stepsize_controller=diffrax.PIDController(rtol=RTOL, atol=ATOL), saveat=saveat,
                                  adjoint=diffrax.RecursiveCheckpointAdjoint(), max_steps=n_max)
        return 0.5 * jnp.sum((sol.ys[0][-1] - y) ** 2), (sol.ts[1], sol.stats["num_accepted_steps"])

    # the accepted grid comes out of the same compiled program as the gradient (a separately compiled solve may
    # round differently, and the error estimate's cancellation turns that into a slightly different grid)
    grad = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))
    th, x0 = jnp.asarray(p.theta), jnp.asarray(p.x0)
    last = {}

    def run():
        (g_th, g_x0), (ts, n) = grad(th, x0)
        last["grid"] = np.concatenate([[0.0], np.asarray(ts)[:int(n)]])
        return np.concatenate([np.asarray(g_th.block_until_ready()), np.asarray(g_x0)])

    def own_grid():
        return last["grid"]
    return run, own_grid


#: route name -> builder (problem -> (zero-argument callable returning the gradient (θ, x0) flat, callable returning
#: the route's own accepted grid or None for the convention's grid)); order = table order
ROUTES = {
    "refimpl hand (numba), grid given": refimpl_hand,
    "refimpl hand kernels, grid given": refimpl_hand_kernels,
    "refimpl adaptive + hand": refimpl_adaptive_hand,
    "torchdiffeq odeint + backward": torchdiffeq_backward,
    "diffrax RecursiveCheckpointAdjoint (jit)": diffrax_recursive_checkpoint,
}
REFERENCE_ROUTE = "refimpl hand (numba), grid given"


def run_case(d: int, target_steps: int = 1000, *, routes=None, min_total_s: float = 0.3, min_repeats: int = 3,
             time_routes: bool = True) -> dict:
    """Check every route against the hand adjoint on the route's own grid, then time it (first call = warm-up,
    reported as ``first_s``). Returns per route ``rel_err``, ``agrees``, ``steps`` and the timing, and the ratio
    route / hand of the medians."""
    p = make_problem(d, target_steps)
    routes = list(ROUTES) if routes is None else list(routes)
    out = {"d": d, "T": p.T, "steps": len(p.grid()) - 1, "rtol": RTOL, "atol": ATOL, "routes": {}}
    reference_time = None
    for name in [REFERENCE_ROUTE] + [r for r in routes if r != REFERENCE_ROUTE]:
        try:
            fn, own_grid = ROUTES[name](p)
        except ImportError as exc:
            out["routes"][name] = {"absent": f"{type(exc).__name__}: {exc}"}
            continue
        first_s, g = first_call(fn)
        grid = p.grid() if own_grid is None else own_grid()
        want = _hand(p, grid)()
        rel = float(np.max(np.abs(np.asarray(g) - want)) / np.max(np.abs(want)))
        entry = {"rel_err": rel, "agrees": bool(rel <= AGREEMENT_TOL), "steps": len(grid) - 1}
        if time_routes and entry["agrees"]:
            timing = time_repeats(fn, first_s, min_repeats=min_repeats, min_total_s=min_total_s)
            entry["timing"] = timing.as_dict()
            if name == REFERENCE_ROUTE:
                reference_time = timing.median_s
            if reference_time:
                entry["ratio_to_hand"] = timing.median_s / reference_time
        out["routes"][name] = entry
    return out


def _print(case: dict) -> None:
    print(f"d = {case['d']}, T = {case['T']:.3g}, {case['steps']} accepted steps (rtol = atol = {case['rtol']:g})")
    for name, r in case["routes"].items():
        if "absent" in r:
            print(f"  {name:45s} absent ({r['absent']})")
            continue
        t = r.get("timing")
        timing = "not timed" if t is None else (f"median {t['median_s'] * 1e3:9.2f} ms  first {t['first_s']:.2f} s  "
                                                f"x{r.get('ratio_to_hand', float('nan')):.1f} hand")
        print(f"  {name:45s} rel_err {r['rel_err']:.1e}  steps {r['steps']:5d}  {timing}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="d = 2, ~100 steps, one repeat: checks that routes run")
    ap.add_argument("--dims", type=int, nargs="*", default=[2, 8, 16])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args(argv)
    cases = []
    if args.smoke:
        cases.append(run_case(2, 100, min_total_s=0.0, min_repeats=1))
    else:
        for d in args.dims:
            cases.append(run_case(d, args.steps))
    for case in cases:
        _print(case)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(cases, fh, indent=1)
    bad = [(c["d"], n) for c in cases for n, r in c["routes"].items() if "absent" not in r and not r["agrees"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
