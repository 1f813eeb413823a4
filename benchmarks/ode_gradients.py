r"""Benchmark 1: the gradient of :math:`L_h = \tfrac12|x_N - y|^2` with respect to the per-step parameters
:math:`\theta_0..\theta_{N-1}` (``layout="step"``) of the tanh neural field :math:`f(x,\theta_n) = \tanh(W_nx + b_n)`,
for leapfrog (forward-Euler starter), Heun and RK4, by five routes:

``refimpl tape``         :func:`refimpl.ad.grad` through :func:`refimpl.ode.integrators.discrete_loss`;
``refimpl hand (numba)`` :func:`refimpl.ode.adjoint_recursions.discrete_adjoint` with ``backend="numba"`` (the public
                         call: argument checks, parameter-sample construction, forward and backward kernels);
``refimpl hand kernels`` the same two checked kernel wrappers of :mod:`refimpl.ode._numba` with the
                         problem set up once outside the timed call (what the public call costs once its set-up
                         is cached);
``HIPS autograd``        the same scheme written in ``autograd.numpy`` (Python loop over steps);
``torch CPU autograd``   the same scheme in PyTorch (Python loop, ``unbind`` to get the per-step weights);
``jax jit(grad)``        the same scheme in JAX with ``lax.scan`` over the steps, ``jit(grad(loss))``, CPU, x64.

All in float64. Before timing, every route's gradient is compared with the hand adjoint:
``rel_err = max|g − g_hand| / max|g_hand|`` must be ≤ 1e-10 (all routes compute the same discrete gradient exactly
in exact arithmetic; only rounding differs, and it stays many orders below 1e-10 at these sizes).

Peer routes are optional: a peer that is not installed is reported as absent, never installed on the fly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.ad import grad as tape_grad
from refimpl.ode import _numba as adjoint_kernels
from refimpl.ode.adjoint_recursions import discrete_adjoint
from refimpl.ode.fields import QuadraticLoss, TanhField
from refimpl.ode.integrators import discrete_loss
from refimpl.ode.samples import parameter_samples
from refimpl.ode.schemes import HEUN, LEAPFROG, RK4

from benchmarks.timing import Timing, first_call, time_repeats

__all__ = ["GradientProblem", "make_problem", "ROUTES", "SCHEMES", "AGREEMENT_TOL", "run_case"]

#: scheme name -> (method, starter); leapfrog starts with one forward-Euler step (docs/theory/discrete-adjoint.md)
SCHEMES = {"leapfrog": (LEAPFROG, "forward_euler"), "heun": (HEUN, None), "rk4": (RK4, None)}

#: every route must agree with the hand adjoint to this relative error before it is timed
AGREEMENT_TOL = 1e-10


@dataclass(frozen=True, eq=False)
class GradientProblem:
    """One benchmark problem: tanh field of dimension ``d``, ``N`` steps on [0, T], per-step parameters ``theta``
    (N, d² + d), start ``x0``, target ``y``."""

    scheme: str
    d: int
    N: int
    T: float
    x0: np.ndarray
    theta: np.ndarray
    y: np.ndarray

    @property
    def method(self):
        return SCHEMES[self.scheme][0]

    @property
    def starter(self):
        return SCHEMES[self.scheme][1]

    @property
    def h(self) -> float:
        return self.T / self.N


def make_problem(scheme: str, d: int, N: int, seed: int = 0, T: float = 1.0) -> GradientProblem:
    """Random problem with W_n ~ N(0, 1/d) entries (so W x = O(1)), b_n ~ N(0, 0.1²), x0, y ~ N(0, I)."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
    if d < 1 or N < 2:
        raise ValueError(f"need d >= 1 and N >= 2, got d={d}, N={N}")
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((N, d, d)) / np.sqrt(d)
    b = 0.1 * rng.standard_normal((N, d))
    theta = np.concatenate([W.reshape(N, d * d), b], axis=1)
    samples = parameter_samples(SCHEMES[scheme][0], T, N, "step", SCHEMES[scheme][1])
    assert samples.n_samples == N, "step layout: one sample per step"
    return GradientProblem(scheme, d, N, T, rng.standard_normal(d), theta, rng.standard_normal(d))


def _float_tableau(method):
    A, b, _ = method.arrays()
    return A.tolist(), b.tolist()


# --- refimpl routes --------------------------------------------------------------------------------------------------

def refimpl_tape(p: GradientProblem):
    field, loss = TanhField(p.d), QuadraticLoss(p.y)
    def f(th):
        return discrete_loss(field, p.method, p.x0, th, p.T, p.N, loss, layout="step", starter=p.starter)

    g = tape_grad(f)
    return lambda: g(p.theta)


def refimpl_hand(p: GradientProblem):
    field, loss = TanhField(p.d), QuadraticLoss(p.y)
    return lambda: discrete_adjoint(field, p.method, p.x0, p.theta, p.T, p.N, loss, layout="step",
                                    starter=p.starter, backend="numba").grad_theta


def refimpl_hand_kernels(p: GradientProblem):
    """Only the checked kernel wrappers (forward sweep, ∇Φ, backward sweep); samples and coefficients set up once."""
    smp = parameter_samples(p.method, p.T, p.N, "step", p.starter)
    kernel, h, x0, theta, y = TanhField.kernel, p.h, p.x0, p.theta, p.y
    if p.scheme == "leapfrog":
        A, b, _ = smp.starter.arrays()
        hA, hb = np.ascontiguousarray(h * A), np.ascontiguousarray(h * b)
        k = p.method.steps
        malpha = np.array([-float(a) for a in p.method.alpha[:k]])
        hbeta = np.array([h * float(c) for c in p.method.beta])
        s_index, g_index = np.asarray(smp.stage_index), np.asarray(smp.grid_index)

        def run():
            xs = adjoint_kernels.lmm_forward(kernel, x0, theta, s_index, hA, hb, malpha, hbeta, g_index)
            return adjoint_kernels.lmm_backward(kernel, xs, theta, s_index, hA, hb, malpha, hbeta, g_index,
                                                xs[-1] - y)[0]
    else:
        A, b, _ = p.method.arrays()
        hA, hb = np.ascontiguousarray(h * A), np.ascontiguousarray(h * b)
        s_index = np.asarray(smp.stage_index)

        def run():
            xs = adjoint_kernels.erk_forward(kernel, x0, theta, s_index, hA, hb)
            return adjoint_kernels.erk_backward(kernel, xs, theta, s_index, hA, hb, xs[-1] - y)[0]
    return run


# --- peers: the same discrete scheme written in each library ---------------------------------------------------------

def _python_loop_loss(Ws, bs, x0, y, hA, hb, h, leapfrog, tanh, total):
    """L_h of the scheme, per-step weights ``Ws[n]``, ``bs[n]`` (sequences), as a Python loop (autograd, torch)."""
    N = len(Ws)

    def f(x, n):
        return tanh(Ws[n] @ x + bs[n])

    if leapfrog:  # x1 = x0 + h f(x0, θ0); x_{n+1} = x_{n-1} + 2h f(x_n, θ_n)
        x_prev, x = x0, x0 + h * f(x0, 0)
        for n in range(1, N):
            x_prev, x = x, x_prev + (2.0 * h) * f(x, n)
    else:
        x = x0
        s = len(hb)
        for n in range(N):
            ks = []
            for i in range(s):
                Xi = x
                for j in range(i):
                    if hA[i][j] != 0.0:
                        Xi = Xi + hA[i][j] * ks[j]
                ks.append(f(Xi, n))
            for i in range(s):
                if hb[i] != 0.0:
                    x = x + hb[i] * ks[i]
    r = x - y
    return 0.5 * total(r * r)


def _scaled_tableau(p: GradientProblem):
    if p.scheme == "leapfrog":
        return None, None
    A, b = _float_tableau(p.method)
    return [[p.h * a for a in row] for row in A], [p.h * c for c in b]


def hips_autograd(p: GradientProblem):
    import autograd
    import autograd.numpy as anp

    d, N = p.d, p.N
    hA, hb = _scaled_tableau(p)

    def loss(theta):
        W = anp.reshape(theta[:, : d * d], (N, d, d))
        b = theta[:, d * d:]
        return _python_loop_loss(W, b, p.x0, p.y, hA, hb, p.h, p.scheme == "leapfrog", anp.tanh, anp.sum)

    g = autograd.grad(loss)
    return lambda: g(p.theta)


def torch_autograd(p: GradientProblem):
    import torch

    d, N = p.d, p.N
    hA, hb = _scaled_tableau(p)
    x0, y = torch.from_numpy(p.x0), torch.from_numpy(p.y)

    def run():
        theta = torch.from_numpy(p.theta).requires_grad_(True)
        W = theta[:, : d * d].reshape(N, d, d).unbind(0)
        b = theta[:, d * d:].unbind(0)
        loss = _python_loop_loss(W, b, x0, y, hA, hb, p.h, p.scheme == "leapfrog", torch.tanh, torch.sum)
        loss.backward()
        return theta.grad.numpy()

    return run


def jax_jit_grad(p: GradientProblem):
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    import jax.numpy as jnp

    d, N, h = p.d, p.N, p.h
    hA, hb = _scaled_tableau(p)
    x0, y = jnp.asarray(p.x0), jnp.asarray(p.y)

    def f(x, Wn, bn):
        return jnp.tanh(Wn @ x + bn)

    def loss(theta):
        W = theta[:, : d * d].reshape(N, d, d)
        b = theta[:, d * d:]
        if p.scheme == "leapfrog":
            def step(carry, wb):
                x_prev, x = carry
                return (x, x_prev + (2.0 * h) * f(x, *wb)), None

            x1 = x0 + h * f(x0, W[0], b[0])
            (_, xN), _ = jax.lax.scan(step, (x0, x1), (W[1:], b[1:]))
        else:
            s = len(hb)

            def step(x, wb):
                ks = []
                for i in range(s):
                    Xi = x
                    for j in range(i):
                        if hA[i][j] != 0.0:
                            Xi = Xi + hA[i][j] * ks[j]
                    ks.append(f(Xi, *wb))
                for i in range(s):
                    if hb[i] != 0.0:
                        x = x + hb[i] * ks[i]
                return x, None

            xN, _ = jax.lax.scan(step, x0, (W, b))
        r = xN - y
        return 0.5 * jnp.sum(r * r)

    g = jax.jit(jax.grad(loss))
    theta = jnp.asarray(p.theta)
    return lambda: np.asarray(g(theta).block_until_ready())


#: route name -> builder (problem -> zero-argument callable returning the (N, p) gradient); order = table order
ROUTES = {
    "refimpl hand (numba)": refimpl_hand,
    "refimpl hand kernels": refimpl_hand_kernels,
    "refimpl tape": refimpl_tape,
    "HIPS autograd": hips_autograd,
    "torch CPU autograd": torch_autograd,
    "jax jit(grad)": jax_jit_grad,
}
REFERENCE_ROUTE = "refimpl hand (numba)"
#: routes whose first call compiles or loads compiled code (Numba cache, XLA); the others are timed from their first
#: call when it is slow (they have nothing to warm up but the allocator)
NEEDS_WARMUP = {"refimpl hand (numba)": True, "refimpl hand kernels": True, "refimpl tape": False,
                "HIPS autograd": False, "torch CPU autograd": False, "jax jit(grad)": True}


def run_case(scheme: str, d: int, N: int, *, routes=None, min_total_s: float = 0.3, min_repeats: int = 3,
             single_call_above_s: float = 3.0, time_routes: bool = True) -> dict:
    """Check every route against the hand adjoint, then time it. Returns a dict per route with ``rel_err``,
    ``agrees`` and (if ``time_routes`` and it agrees) the :class:`~benchmarks.timing.Timing`; a peer that cannot be
    imported gets ``{"absent": reason}``. The first call of each route is the warm-up (compile / trace), reported
    separately as ``first_s``. A route without compilation whose first call exceeds ``single_call_above_s`` is timed
    by that call alone (``repeats`` = 1), to keep the run short."""
    p = make_problem(scheme, d, N)
    routes = list(ROUTES) if routes is None else list(routes)
    if REFERENCE_ROUTE not in routes:
        routes.insert(0, REFERENCE_ROUTE)
    out = {"scheme": scheme, "d": d, "N": N, "n_params": int(p.theta.size), "routes": {}}
    reference = None
    for name in [REFERENCE_ROUTE] + [r for r in routes if r != REFERENCE_ROUTE]:
        try:
            fn = ROUTES[name](p)
        except ImportError as exc:
            out["routes"][name] = {"absent": f"{type(exc).__name__}: {exc}"}
            continue
        first_s, g = first_call(fn)
        g = np.asarray(g, dtype=np.float64)
        if reference is None:
            reference = g
        scale = float(np.max(np.abs(reference)))
        rel = float(np.max(np.abs(g - reference))) / scale if g.shape == reference.shape else float("inf")
        entry = {"rel_err": rel, "agrees": bool(rel <= AGREEMENT_TOL)}
        if time_routes and entry["agrees"]:  # only a route that agrees is timed
            if first_s > single_call_above_s and not NEEDS_WARMUP[name]:
                timing = Timing(first_s, first_s, first_s, first_s, 1)
            elif first_s > single_call_above_s:
                timing = time_repeats(fn, first_s, min_repeats=1, max_repeats=1)
            else:
                timing = time_repeats(fn, first_s, min_repeats=min_repeats, min_total_s=min_total_s)
            entry["timing"] = timing.as_dict()
        out["routes"][name] = entry
    return out
