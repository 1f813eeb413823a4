r"""Where the parameters live: the parameter samples of a scheme on a grid, their times and stage weights.

Grid :math:`h = T/N`, :math:`t_n = nh`. A parameter array has shape ``(n_samples, p)``; row :math:`r` is the sample
:math:`\theta_r` and ``samples.times[r]`` its time. Two layouts (docs/theory/discrete-adjoint.md):

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

Stage weight (docs/theory/discrete-adjoint.md): :math:`w_r = \sum` of :math:`b_i` over the (step, stage) pairs that use
sample :math:`r` (starter steps included), plus :math:`\sum \beta_j` over the LMM steps whose :math:`f` value at
:math:`t_{n+j}` uses it. The normalised gradient is :math:`g_r = (\partial L_h/\partial\theta_r)/(h\,w_r)`. Interior
weights: forward Euler, one-per-step ERK: 1; Heun (shared endpoints): 1; RK4: 1/3 at grid times, 2/3 at half steps;
leapfrog: 2; Adams–Bashforth: σ(1) = 1.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
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

    ``offsets[r]`` = sample time / h (exact Fraction), ``times`` (float64), ``weights`` (float64 stage weights, the
    correctly rounded exact sums when all coefficients are rational), ``exact_weights`` (Fractions, or None for float
    coefficients). Index maps: ``stage_index`` ``(N, s)`` for an ERK — or ``(k-1, s_starter)`` for the starter steps of
    an LMM — giving the sample row used by stage i of step n; ``grid_index`` ``(N,)`` for an LMM: the row used by
    :math:`f(x_m,\cdot)` at :math:`t_m`, or −1 where that value is never used.

    Internally a sample time is the integer code ``q·F + j`` for :math:`t = (q + \phi_j) h` with the fractional parts
    :math:`0 \le \phi_0 < \phi_1 < \dots` of the nodes (F of them), so building the samples needs no rational
    arithmetic per step; ``offsets`` and ``exact_weights`` are formed on first access.
    """

    method: object
    starter: ButcherTableau | None
    layout: str
    T: float | Fraction
    N: int
    times: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    stage_index: np.ndarray = field(repr=False)
    grid_index: np.ndarray | None = field(repr=False)
    _codes: np.ndarray = field(repr=False)
    _fracs: tuple = field(repr=False)
    _weight_numerators: tuple | None = field(repr=False)
    _weight_denominator: int | None = field(repr=False)

    @property
    def n_samples(self) -> int:
        return len(self.times)

    @property
    def h(self):
        """Step size T/N (a Fraction when T is exact)."""
        return self.T / self.N

    @cached_property
    def offsets(self) -> tuple:
        F = len(self._fracs)
        return tuple(int(q) + self._fracs[j] for q, j in zip(self._codes // F, self._codes % F))

    @cached_property
    def exact_weights(self) -> tuple | None:
        if self._weight_numerators is None:
            return None
        return tuple(Fraction(int(w), self._weight_denominator) for w in self._weight_numerators)

    def __repr__(self) -> str:
        st = f", starter={self.starter.name!r}" if self.starter is not None else ""
        return (f"ParameterSamples({self.method.name!r}{st}, layout={self.layout!r}, N={self.N}, "
                f"n_samples={self.n_samples})")


def _node_split(nodes, fracs):
    """Each node c as (floor(c), index of c − floor(c) in the sorted fractional parts ``fracs``)."""
    out = []
    for c in nodes:
        c = Fraction(c)
        q = math.floor(c)
        out.append((q, fracs.index(c - q)))
    return out


def _fractional_parts(*node_lists):
    parts = {Fraction(0)}
    for nodes in node_lists:
        parts |= {Fraction(c) - math.floor(Fraction(c)) for c in nodes}
    return sorted(parts)


#: how many distinct (method, starter, T, N, layout) results :func:`parameter_samples` keeps (least recently used
#: dropped first); one result holds O(N·s) int64/float64 entries
SAMPLES_CACHE_SIZE = 16


def parameter_samples(method, T, N, layout: str = "stage", starter=None) -> ParameterSamples:
    """The :class:`ParameterSamples` of ``method`` on ``N`` steps over ``[0, T]`` (see the module docstring).

    Memoised (the last :data:`SAMPLES_CACHE_SIZE` distinct arguments): building the samples does O(N·s) exact
    arithmetic in Python, and every call of the integrators and adjoints asks for them. Sharing one result is safe:
    :class:`ParameterSamples` is frozen, its arrays are read-only views of read-only buffers, and its other fields
    are tuples, numbers and the (frozen) methods. The key is the *validated* arguments: the method and the resolved
    starter (frozen dataclasses compared by name and coefficients) together with their ``exact`` flags (so a float
    tableau never matches an exact one whose coefficients happen to be equal numbers), T with its type (an exact
    ``Fraction`` and a float never share an entry, and floats are compared exactly), N and the layout.
    """
    starter = _check_method(method, starter)
    T, N, exact_T = check_grid(method, T, N)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    key = (method, method.exact, starter, None if starter is None else starter.exact, exact_T, T, N, layout)
    return _cached_samples(key)


@lru_cache(maxsize=SAMPLES_CACHE_SIZE)
def _cached_samples(key) -> ParameterSamples:
    method, _, starter, _, _, T, N, layout = key
    return _build_samples(method, starter, T, N, layout)


def _build_samples(method, starter, T, N, layout) -> ParameterSamples:
    """The samples of validated arguments (``starter`` resolved, ``T`` a Fraction or a float)."""
    erk = isinstance(method, ButcherTableau)
    tab = method if erk else starter
    fracs = _fractional_parts(tab.c)
    F = len(fracs)
    split = _node_split(tab.c, fracs)
    n_rk = N if erk else method.steps - 1                # number of Runge-Kutta steps (all, or the starter's)
    if layout == "stage":
        rk_codes = np.array([[(n + q) * F + j for q, j in split] for n in range(n_rk)], dtype=np.int64)
        rk_codes = rk_codes.reshape(n_rk, tab.stages)
    else:
        rk_codes = np.repeat(np.arange(n_rk, dtype=np.int64)[:, None] * F, tab.stages, axis=1)
    if erk:
        used_grid = []
        grid_codes = np.zeros(0, dtype=np.int64)
    else:
        k = method.steps
        used_grid = sorted({n + j for n in range(N - k + 1) for j in range(k) if method.beta[j] != 0})
        grid_codes = np.array(used_grid, dtype=np.int64) * F      # fractional part 0 has index 0
    # the step layout has one row per step even where an LMM never uses it (a β_j = 0 pattern): weight 0 there
    every_step = np.arange(N, dtype=np.int64) * F if layout == "step" else np.zeros(0, dtype=np.int64)
    codes, inverse = np.unique(np.concatenate([rk_codes.ravel(), grid_codes, every_step]), return_inverse=True)
    stage_index = inverse[:rk_codes.size].reshape(rk_codes.shape).astype(np.int64)
    grid_index = None
    if not erk:
        grid_index = np.full(N, -1, dtype=np.int64)
        grid_index[np.array(used_grid, dtype=np.int64)] = inverse[rk_codes.size:rk_codes.size + len(used_grid)]
    # stage weights: every (sample row, coefficient) use
    rows = [int(r) for r in stage_index.ravel()]
    coefs = list(tab.b) * n_rk
    if not erk:
        uses = [(int(grid_index[n + j]), method.beta[j]) for n in range(N - method.steps + 1)
                for j in range(method.steps) if method.beta[j] != 0]
        rows += [r for r, _ in uses]
        coefs += [c for _, c in uses]
    n_samples = len(codes)
    exact = tab.exact and (erk or method.exact)
    if exact:
        den = math.lcm(*[Fraction(c).denominator for c in coefs]) if coefs else 1
        nums = [0] * n_samples
        for r, c in zip(rows, coefs):
            nums[r] += c.numerator * (den // c.denominator)
        weights = np.array([w / den for w in nums], dtype=np.float64)     # int/int: correctly rounded
        numerators, denominator = tuple(nums), den
    else:
        weights = np.zeros(n_samples, dtype=np.float64)
        for r, c in zip(rows, coefs):
            weights[r] += float(c)
        numerators, denominator = None, None
    frac_float = np.array([float(f) for f in fracs])
    times = ((codes // F) + frac_float[codes % F]) * (float(T) / N)
    times, weights, stage_index, codes = (_read_only(a) for a in (times, weights, stage_index, codes))
    grid_index = None if grid_index is None else _read_only(grid_index)
    return ParameterSamples(method, starter, layout, T, N, times, weights, stage_index, grid_index, codes,
                            tuple(fracs), numerators, denominator)


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of a read-only ``a``: a view's flag cannot be set back to writeable while its base is not,
    so a cached (shared) result cannot be modified through ``flags.writeable = True`` either."""
    a.flags.writeable = False
    v = a.view()
    v.flags.writeable = False
    return v
