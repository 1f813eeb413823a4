r"""Where the parameters live: the parameter samples of a scheme on a grid, their times and stage weights.

Grid :math:`h = T/N`, :math:`t_n = nh`. A parameter array has shape ``(n_samples, p)``; row :math:`r` is the sample
:math:`\theta_r` and ``samples.times[r]`` its time. Two layouts (SPEC §2):

``"stage"``  one sample per *distinct* time at which the scheme evaluates :math:`f`. ERK: the stage times
             :math:`t_n + c_i h`; a stage time that is a grid time is shared by the two steps that touch it (exact
             comparison of :math:`n + c_i` as rationals). Forward Euler: :math:`t_0..t_{N-1}`; Heun:
             :math:`t_0..t_N`; midpoint: :math:`t_0, t_{1/2}, \dots, t_{N-1/2}`; RK4: :math:`t_0, t_{1/2}, t_1, \dots,
             t_N`. LMM: the stage times of the k − 1 starter steps, and every grid time :math:`t_m` whose value
             :math:`f(x_m, \theta(t_m))` enters some step with :math:`\beta_j \ne 0` (leapfrog with forward-Euler
             starter: :math:`t_0..t_{N-1}`).
``"step"``   one sample per step, :math:`\theta_n` for :math:`[t_n, t_{n+1})` (the ResNet view): ERK step n uses
             :math:`\theta_n` in all its stages; for an LMM, :math:`\theta_n` is used by starter step n (if
             :math:`n < k-1`) and by the evaluation :math:`f(x_n, \theta_n)` at grid time :math:`t_n`.
             ``times[n]`` is :math:`t_n`, the left end of the interval.

Stage weight (SPEC §3): :math:`w_r = \sum` of :math:`b_i` over the (step, stage) pairs that use sample :math:`r`
(starter steps included), plus :math:`\sum \beta_j` over the LMM steps whose :math:`f` value at :math:`t_{n+j}` uses it.
The normalised gradient is :math:`g_r = (\partial L_h/\partial\theta_r)/(h\,w_r)`. Interior weights: forward Euler,
one-per-step ERK: 1; Heun (shared endpoints): 1; RK4: 1/3 at grid times, 2/3 at half steps; leapfrog: 2; Adams–
Bashforth: σ(1) = 1.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.schemes import starter as resolve_starter
from refimpl.ode.tableau import ButcherTableau

__all__ = ["ParameterSamples", "parameter_samples", "LAYOUTS", "check_grid"]

LAYOUTS = ("stage", "step")


def check_grid(method, T, N):
    """Validate ``T`` (> 0, finite, real) and ``N`` (int ≥ the method's step count); return (T, N, exact T?)."""
    if isinstance(N, bool) or not isinstance(N, numbers.Integral):
        raise TypeError(f"N must be an integer, got {type(N).__name__}")
    N = int(N)
    need = method.steps if isinstance(method, LinearMultistep) else 1
    if N < need:
        raise ValueError(f"N = {N} is smaller than the number of steps the method {method.name!r} needs ({need})")
    if isinstance(T, bool) or not isinstance(T, numbers.Real):
        raise TypeError(f"T must be a real number, got {type(T).__name__}")
    exact_T = isinstance(T, numbers.Rational)
    if not exact_T and not math.isfinite(float(T)):
        raise ValueError(f"T must be finite, got {T}")
    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    return (Fraction(T) if exact_T else float(T)), N, exact_T


def _check_method(method, starter):
    if isinstance(method, ButcherTableau):
        if starter is not None:
            raise ValueError(f"starter: a Runge-Kutta method ({method.name!r}) takes no starter")
        return None
    if isinstance(method, LinearMultistep):
        if starter is None:
            raise ValueError(f"starter: the multistep method {method.name!r} needs a starter (a ButcherTableau, "
                             f"'forward_euler' or 'matched'); it is part of the problem")
        return resolve_starter(method, starter)
    raise TypeError(f"method must be a ButcherTableau or a LinearMultistep, got {type(method).__name__}")


@dataclass(frozen=True, eq=False)
class ParameterSamples:
    r"""The parameter samples of one (method, starter, T, N, layout).

    ``offsets[r]`` = sample time / h (exact Fraction), ``times`` (float64), ``weights`` (float64 stage weights),
    ``exact_weights`` (Fractions, when all coefficients are rational, else None). Index maps: ``stage_index``
    ``(N, s)`` for an ERK — or ``(k-1, s_starter)`` for the starter steps of an LMM — giving the sample row used by
    stage i of step n; ``grid_index`` ``(N,)`` for an LMM: the row used by :math:`f(x_m,\cdot)` at :math:`t_m`, or −1
    where that value is never used.
    """

    method: object
    starter: ButcherTableau | None
    layout: str
    T: float | Fraction
    N: int
    offsets: tuple
    times: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    exact_weights: tuple | None = field(repr=False)
    stage_index: np.ndarray = field(repr=False)
    grid_index: np.ndarray | None = field(repr=False)

    @property
    def n_samples(self) -> int:
        return len(self.offsets)

    @property
    def h(self):
        """Step size T/N (a Fraction when T is exact)."""
        return self.T / self.N

    def __repr__(self) -> str:
        st = f", starter={self.starter.name!r}" if self.starter is not None else ""
        return (f"ParameterSamples({self.method.name!r}{st}, layout={self.layout!r}, N={self.N}, "
                f"n_samples={self.n_samples})")


def _key(n: int, c) -> Fraction:
    return Fraction(n) + Fraction(c)


def parameter_samples(method, T, N, layout: str = "stage", starter=None) -> ParameterSamples:
    """The :class:`ParameterSamples` of ``method`` on ``N`` steps over ``[0, T]`` (see the module docstring)."""
    starter = _check_method(method, starter)
    T, N, _ = check_grid(method, T, N)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if isinstance(method, ButcherTableau):
        s = method.stages
        if layout == "stage":
            keys = sorted({_key(n, c) for n in range(N) for c in method.c})
            where = {k: r for r, k in enumerate(keys)}
            stage_index = np.array([[where[_key(n, c)] for c in method.c] for n in range(N)], dtype=np.int64)
        else:
            keys = [Fraction(n) for n in range(N)]
            stage_index = np.repeat(np.arange(N, dtype=np.int64)[:, None], s, axis=1)
        grid_index = None
        uses = [(stage_index[n, i], method.b[i]) for n in range(N) for i in range(s)]
        exact = method.exact
    else:
        k = method.steps
        used_grid = sorted({n + j for n in range(N - k + 1) for j in range(k) if method.beta[j] != 0})
        if layout == "stage":
            keys = sorted({_key(n, c) for n in range(k - 1) for c in starter.c} | {Fraction(m) for m in used_grid})
            where = {kk: r for r, kk in enumerate(keys)}
            stage_index = np.array([[where[_key(n, c)] for c in starter.c] for n in range(k - 1)],
                                   dtype=np.int64).reshape(k - 1, starter.stages)
            grid_index = np.full(N, -1, dtype=np.int64)
            for m in used_grid:
                grid_index[m] = where[Fraction(m)]
        else:
            keys = [Fraction(n) for n in range(N)]
            stage_index = np.repeat(np.arange(k - 1, dtype=np.int64)[:, None], starter.stages, axis=1)
            grid_index = np.full(N, -1, dtype=np.int64)
            for m in used_grid:
                grid_index[m] = m
        uses = [(stage_index[n, i], starter.b[i]) for n in range(k - 1) for i in range(starter.stages)]
        uses += [(grid_index[n + j], method.beta[j]) for n in range(N - k + 1) for j in range(k) if method.beta[j] != 0]
        exact = method.exact and starter.exact
    n_samples = len(keys)
    if exact:
        w = [Fraction(0)] * n_samples
        for r, wt in uses:
            w[r] += wt
        exact_weights = tuple(w)
        weights = np.array([float(v) for v in w], dtype=np.float64)
    else:
        exact_weights = None
        weights = np.zeros(n_samples, dtype=np.float64)
        for r, wt in uses:
            weights[r] += float(wt)
    times = np.array([float(kk * T / N) if isinstance(T, Fraction) else float(kk) * T / N for kk in keys],
                     dtype=np.float64)
    for a in (times, weights, stage_index) + ((grid_index,) if grid_index is not None else ()):
        a.flags.writeable = False
    return ParameterSamples(method, starter, layout, T, N, tuple(keys), times, weights, exact_weights, stage_index,
                            grid_index)
