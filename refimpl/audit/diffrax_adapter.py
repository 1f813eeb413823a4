r"""The diffrax adapter (optional peer: ``pip install jax diffrax``; tested with diffrax 0.7.2, jax 0.10.2, CPU,
float64 — the adapter switches on ``jax_enable_x64``).

Fixed steps: ``diffeqsolve(ODETerm, solver, 0, T, h, x0, args, stepsize_controller=ConstantStepSize(),
saveat=SaveAt(steps=True))`` (on T = 1 and N = 2^k the times n h are exact: the grid t_n = nT/N) with
``solver`` in ``Euler``, ``Heun``, ``Midpoint``, ``Ralston`` (diffrax's own classes). θ as in
``examples/diffrax_crosscheck.py``: constant layout ``args = θ``; step layout a per-step ``args`` wrapper handing row
n to every stage of the step that starts at :math:`t_n` (the pattern of diffrax's ``HalfSolver``); stage layout the row whose sample time is nearest the stage's time. Adaptive: ``Dopri5``, ``Tsit5``,
``Bosh3``, ``Heun`` with ``PIDController(rtol, atol)``, ``dt0=None``, the value at ``t1`` and the accepted times
(``SubSaveAt(steps=True)``). ``adjoint``: ``"recursive_checkpoint"`` (``RecursiveCheckpointAdjoint``, the default:
backpropagation through the solver) or ``"backsolve"`` (``BacksolveAdjoint()``: the adjoint ODE solved backward with
the forward solver and, on a fixed grid, the same steps h backward from T). Gradients by
``jax.jit(jax.value_and_grad(...))``, compiled once per family: the fixed-step table is padded to a capacity
(:func:`_capacity`) and h, N traced; the adaptive rtol and atol are traced.
"""
from __future__ import annotations

import json

import numpy as np

from refimpl.audit.adapters import ADAPTERS, Adapter, MissingDependency, SolverOutput

__all__ = ["DiffraxAdapter", "FIXED_SOLVERS", "ADAPTIVE_SOLVERS", "ADJOINTS"]

FIXED_SOLVERS = ("Euler", "Heun", "Midpoint", "Ralston")
ADAPTIVE_SOLVERS = ("Dopri5", "Tsit5", "Bosh3", "Heun")
ADJOINTS = ("recursive_checkpoint", "backsolve")
#: the refimpl scheme each fixed solver's name claims
CLAIMED_SCHEME = {"Euler": "forward_euler", "Heun": "heun", "Midpoint": "midpoint", "Ralston": "ralston"}
MAX_STEPS = 16384
def _capacity(n: int) -> int:
    """The padded size of a fixed-step member: 256 rows and steps, or the next power of two above (one compile per
    capacity, so a family N = 4…128 compiles once)."""
    cap = 256
    while cap < n:
        cap *= 2
    return cap


#: compiled loss-and-gradient functions of this process, by (solver, adjoint, field, layout, N) or (…, "adaptive", T)
_COMPILED: dict = {}


def _import():
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import diffrax
        import jax.numpy as jnp
    except ImportError as e:
        raise MissingDependency(f"the diffrax adapter needs jax and diffrax ({e}); install them with "
                                f"`pip install jax diffrax`") from e
    return jax, jnp, diffrax


def jax_field(field_spec: dict, jnp):
    """f(x, θ) of a refimpl field spec, in JAX (families tanh, linear, two_layer_tanh with trainable W2)."""
    family, d = field_spec["family"], int(field_spec["dim"])
    if family == "tanh":
        return lambda x, th: jnp.tanh(th[: d * d].reshape(d, d) @ x + th[d * d:])
    if family == "linear":
        return lambda x, th: th[: d * d].reshape(d, d) @ x + th[d * d:]
    if family == "two_layer_tanh" and int(field_spec["n_params"]) == 2 * int(field_spec["hidden"]) * d \
            + int(field_spec["hidden"]):
        m = int(field_spec["hidden"])
        return lambda x, th: (th[m * d + m:].reshape(d, m) @ jnp.tanh(th[: m * d].reshape(m, d) @ x
                                                                       + th[m * d: m * d + m]))
    raise ValueError(f"field: the diffrax adapter writes the families tanh, linear and two_layer_tanh (with "
                     f"trainable W2) in JAX, got {family!r}")


def _per_step_solver(diffrax, jnp, solver, h, n_rows):
    class PerStepArgs(diffrax.AbstractSolver):
        """Row n of the table ``args`` for every stage of the step starting at t_n (diffrax's HalfSolver pattern)."""

        inner: diffrax.AbstractSolver
        h: object
        n_rows: object

        @property
        def term_structure(self):
            return self.inner.term_structure

        @property
        def interpolation_cls(self):
            return self.inner.interpolation_cls

        def order(self, terms):
            return self.inner.order(terms)

        def _row(self, t, table):
            # t is a step's midpoint (t_n + h/2): floor(t/h) = n exactly, far from rounding either way
            n = jnp.clip(jnp.floor(t / self.h).astype(jnp.int32), 0, self.n_rows - 1)
            return table[n]

        # the step's midpoint picks the row: the same step n forward (t0 = t_n) and backward (t0 = t_{n+1})
        def init(self, terms, t0, t1, y0, args):
            return self.inner.init(terms, t0, t1, y0, self._row(0.5 * (t0 + t1), args))

        def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
            return self.inner.step(terms, t0, t1, y0, self._row(0.5 * (t0 + t1), args), solver_state, made_jump)

        def func(self, terms, t0, y0, args):
            return self.inner.func(terms, t0, y0, self._row(t0, args))

    return PerStepArgs(solver, h, n_rows)


@ADAPTERS.register
class DiffraxAdapter(Adapter):
    """``DiffraxAdapter(solver, adjoint="recursive_checkpoint")`` (module docstring)."""

    family = "diffrax"

    def __init__(self, solver: str = "Heun", *, adjoint: str = "recursive_checkpoint"):
        if solver not in FIXED_SOLVERS + ADAPTIVE_SOLVERS:
            raise ValueError(f"solver must be one of {sorted(set(FIXED_SOLVERS + ADAPTIVE_SOLVERS))}, got {solver!r}")
        if adjoint not in ADJOINTS:
            raise ValueError(f"adjoint must be one of {ADJOINTS}, got {adjoint!r}")
        _import()
        self.solver, self.adjoint = solver, adjoint
        self.name = f"diffrax.diffeqsolve({solver}, {adjoint})"

    def scheme_hint(self):
        return CLAIMED_SCHEME.get(self.solver, f"diffrax:{self.solver}")

    def __call__(self, member) -> SolverOutput:
        jax, jnp, diffrax = _import()
        fixed = hasattr(member, "N")
        if fixed and self.solver not in FIXED_SOLVERS:
            raise ValueError(f"solver {self.solver!r}: the fixed-step audit takes {FIXED_SOLVERS}")
        if not fixed and self.solver not in ADAPTIVE_SOLVERS:
            raise ValueError(f"solver {self.solver!r}: the adaptive audit takes {ADAPTIVE_SOLVERS}")
        spec = member.field.to_spec()
        theta0 = jnp.asarray(np.asarray(member.theta, dtype=np.float64))
        x00 = jnp.asarray(np.asarray(member.x0, dtype=np.float64))
        y = jnp.asarray(np.asarray(member.y, dtype=np.float64))
        if fixed and self.adjoint == "backsolve" and member.layout != "constant":
            raise ValueError(f"layout: diffrax's BacksolveAdjoint differentiates the vector field with the whole "
                             f"args, by time; on a fixed grid no time lookup gives every stage of a step its own row "
                             f"(the c = 1 stage sits on the next step's time), so the {member.layout} layout is not "
                             f"expressible — audit it in the constant layout")
        if fixed:
            theta_np = np.asarray(member.theta, dtype=np.float64)
            cap = _capacity(max(member.N, theta_np.shape[0]))
            key = (self.solver, self.adjoint, json.dumps(spec, sort_keys=True), member.layout, cap)
            if key not in _COMPILED:
                _COMPILED[key] = self._fixed(spec, member.layout, cap)
            rows = np.zeros((cap, theta_np.shape[1]))
            rows[: theta_np.shape[0]] = theta_np
            times = np.full(cap, np.inf)
            times[: theta_np.shape[0]] = member.sample_times
            (value, xs), (g_theta, g_x0) = _COMPILED[key](jnp.asarray(rows), x00, y, float(member.h),
                                                          float(member.T), int(member.N), theta_np.shape[0],
                                                          jnp.asarray(times))
            xs = np.asarray(xs)
            traj = xs[-1:] if self.adjoint == "backsolve" else np.concatenate([np.asarray(member.x0)[None],
                                                                                xs[: member.N]])
            return SolverOutput(traj, float(value), np.asarray(g_theta)[: theta_np.shape[0]], np.asarray(g_x0))
        key = (self.solver, self.adjoint, json.dumps(spec, sort_keys=True), "adaptive", float(member.T))
        if key not in _COMPILED:
            _COMPILED[key] = self._adaptive(spec, float(member.T))
        (value, (xT, ts)), (g_theta, g_x0) = _COMPILED[key](theta0, x00, y, member.rtol, member.atol)
        times = None
        if self.adjoint != "backsolve":
            ts = np.asarray(ts)
            times = np.concatenate([[0.0], ts[np.isfinite(ts)]])
        return SolverOutput(np.asarray(xT), float(value), np.asarray(g_theta), np.asarray(g_x0), times=times)

    def _adjoint(self, diffrax):
        return diffrax.BacksolveAdjoint() if self.adjoint == "backsolve" else diffrax.RecursiveCheckpointAdjoint()

    def _fixed(self, spec, layout: str, cap: int):
        """jit(value_and_grad) of the fixed-step loss for every N ≤ ``cap``: ``ConstantStepSize`` with the traced
        step h (on T = 1, N = 2^k the times n h are exact: the uniform grid), the parameter table and the
        sample times padded to ``cap`` rows, ``max_steps = cap`` — one compile for the whole family."""
        jax, jnp, diffrax = _import()
        f = jax_field(spec, jnp)
        solver = getattr(diffrax, self.solver)()
        backsolve = self.adjoint == "backsolve"

        def run(theta, x0, y, h, T, N, n_rows, times):
            if layout == "constant":
                term, inner = diffrax.ODETerm(lambda t, x, a: f(x, a[0])), solver
            elif layout == "step":
                # a row from the wrapper; diffeqsolve's term-compatibility check calls the field once with the
                # whole table (args as given), of which only the output shape matters: row 0 then
                term = diffrax.ODETerm(lambda t, x, a: f(x, a if a.ndim == 1 else a[0]))
                inner = _per_step_solver(diffrax, jnp, solver, h, n_rows)
            else:
                term = diffrax.ODETerm(lambda t, x, a: f(x, a[jnp.argmin(jnp.abs(times - t))]))
                inner = solver
            controller = diffrax.ConstantStepSize()
            if backsolve:  # BacksolveAdjoint saves t1 only: the final state is the trajectory
                # the backward solve steps h back from T: the same grid, reversed
                sol = diffrax.diffeqsolve(term, inner, 0.0, T, h, x0, theta, stepsize_controller=controller,
                                          saveat=diffrax.SaveAt(t1=True), max_steps=cap,
                                          adjoint=diffrax.BacksolveAdjoint(solver=inner,
                                                                           stepsize_controller=controller))
                return 0.5 * jnp.sum((sol.ys[-1] - y) ** 2), sol.ys[-1:]
            saveat = diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), diffrax.SubSaveAt(steps=True)])
            sol = diffrax.diffeqsolve(term, inner, 0.0, T, h, x0, theta, stepsize_controller=controller,
                                      saveat=saveat, max_steps=cap, adjoint=diffrax.RecursiveCheckpointAdjoint())
            return 0.5 * jnp.sum((sol.ys[0][-1] - y) ** 2), sol.ys[1]

        return jax.jit(jax.value_and_grad(run, argnums=(0, 1), has_aux=True))

    def _adaptive(self, spec, T: float):
        """jit(value_and_grad) of the adaptive loss; rtol and atol are traced (one compile for the family)."""
        jax, jnp, diffrax = _import()
        f = jax_field(spec, jnp)
        solver, adjoint = getattr(diffrax, self.solver)(), self._adjoint(diffrax)
        backsolve = self.adjoint == "backsolve"
        term = diffrax.ODETerm(lambda t, x, a: f(x, a))
        saveat = (diffrax.SaveAt(t1=True) if backsolve
                  else diffrax.SaveAt(subs=[diffrax.SubSaveAt(t1=True), diffrax.SubSaveAt(steps=True)]))

        def run(theta, x0, y, rtol, atol):
            sol = diffrax.diffeqsolve(term, solver, 0.0, T, None, x0, theta,
                                      stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                                      saveat=saveat, max_steps=MAX_STEPS, adjoint=adjoint)
            if backsolve:
                xT = sol.ys[-1]
                return 0.5 * jnp.sum((xT - y) ** 2), (xT[None], jnp.zeros(0))
            xT = sol.ys[0][-1]
            return 0.5 * jnp.sum((xT - y) ** 2), (xT[None], sol.ts[1])

        return jax.jit(jax.value_and_grad(run, argnums=(0, 1), has_aux=True))

    def to_spec(self) -> dict:
        return {"family": "diffrax", "solver": self.solver, "adjoint": self.adjoint}

    @classmethod
    def from_spec(cls, spec: dict) -> "DiffraxAdapter":
        return cls(spec.get("solver", "Heun"), adjoint=spec.get("adjoint", "recursive_checkpoint"))
