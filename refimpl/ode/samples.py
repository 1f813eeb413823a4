r"""Where the parameters live: the parameter samples of a scheme on a grid, their times and stage weights.

Grid: uniform, :math:`h = T/N`, :math:`t_n = nh` (the default), or — for an explicit Runge–Kutta method only — a given
non-uniform grid :math:`0 = t_0 < t_1 < \dots < t_N = T` with steps :math:`h_n = t_{n+1} - t_n` (``grid=``;
docs/theory/discrete-adjoint.md §11). A parameter array has shape ``(n_samples, p)``; row :math:`r` is the sample
:math:`\theta_r` and ``samples.times[r]`` its time. Three layouts (docs/theory/discrete-adjoint.md §1, §10):

``"stage"``     one sample per *distinct* time at which the scheme evaluates :math:`f`. ERK: the stage times
                :math:`t_n + c_i h_n`; a stage time that is a grid time is shared by the two steps that touch it, and
                two stage times are one sample exactly when they are equal as real numbers (exact comparison of
                :math:`n + c_i` as rationals on a uniform grid; on a non-uniform grid a node in (0, 1) lies strictly
                inside its own step, nodes 0 and 1 are the grid times, and a node outside [0, 1] is compared as the
                exact rational :math:`t_n + c_i h_n` of the float grid values). Forward Euler:
                :math:`t_0..t_{N-1}`; Heun: :math:`t_0..t_N`; midpoint: :math:`t_0, t_{1/2}, \dots, t_{N-1/2}`;
                RK4: :math:`t_0, t_{1/2}, t_1, \dots, t_N`. LMM: the stage times of the k − 1 starter steps, and every
                grid time :math:`t_m` whose value :math:`f(x_m, \theta(t_m))` enters some step with
                :math:`\beta_j \ne 0` (leapfrog with forward-Euler starter: :math:`t_0..t_{N-1}`).
``"step"``      one sample per step, :math:`\theta_n` for :math:`[t_n, t_{n+1})` (the ResNet view): ERK step n uses
                :math:`\theta_n` in all its stages; for an LMM, :math:`\theta_n` is used by starter step n (if
                :math:`n < k-1`) and by the evaluation :math:`f(x_n, \theta_n)` at grid time :math:`t_n`.
                ``times[n]`` is :math:`t_n`, the left end of the interval.
``"constant"``  one sample, :math:`\theta` for every evaluation of every step (a time-independent parameter, as in
                most neural ODEs): ``n_samples = 1``, ``stage_index`` all 0, ``grid_index`` 0 where :math:`F_m` is
                used and −1 where not. Its gradient is the sum of the contributions of all evaluations. The sample has
                no time; ``times[0] = 0.0`` by convention.

Stage weight (docs/theory/discrete-adjoint.md §2): :math:`w_r = \sum` of :math:`b_i` over the (step, stage) pairs that
use sample :math:`r` (starter steps included), plus :math:`\sum \beta_j` over the LMM steps whose :math:`f` value at
:math:`t_{n+j}` uses it. The normalised gradient is :math:`g_r = (\partial L_h/\partial\theta_r)/(h\,w_r)`; on a
non-uniform grid :math:`h\,w_r` becomes :math:`\sum h_n b_i` over the same uses (``step_weights``). Interior weights:
forward Euler, one-per-step ERK: 1; Heun (shared endpoints): 1; RK4: 1/3 at grid times, 2/3 at half steps; leapfrog:
2; Adams–Bashforth: σ(1) = 1. Constant layout: the total :math:`N\sum_i b_i = N` (ERK), and for an LMM
:math:`(k-1)\sum_i b^{\rm starter}_i + (N-k+1)\sum_j\beta_j`; so :math:`h\,w_0 = T` for an ERK, and the normalised
gradient :math:`G/T` is the time average of :math:`\delta L/\delta\theta` to the order of the scheme (§10).
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

__all__ = ["ParameterSamples", "parameter_samples", "LAYOUTS", "check_grid", "check_step_grid"]

LAYOUTS = ("stage", "step", "constant")


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


def check_step_grid(method, T, N, grid):
    r"""Validate a non-uniform time grid (``grid=`` of :func:`parameter_samples`, the integrators and the adjoints).

    ``None``: the uniform grid :math:`t_n = nT/N` (returned as None). Otherwise a 1-D array of ``N + 1`` strictly
    increasing times with ``grid[0] == 0`` and ``grid[-1] == T`` (exact comparisons): float64 (integers are converted
    exactly), or an ``object`` array of exact rationals (Fraction/int) for exact mode. Explicit Runge–Kutta methods
    only: a linear multistep formula with constant :math:`\alpha, \beta` assumes a constant step. ``T`` and ``N`` are
    validated first (:func:`check_grid`). Returns a read-only float64 array, or a read-only object array of Fractions.
    Every error names ``grid``."""
    T, N, _ = check_grid(method, T, N)
    if grid is None:
        return None
    if isinstance(method, LinearMultistep):
        raise ValueError(f"grid: a non-uniform grid is supported for explicit Runge-Kutta methods only; "
                         f"{method.name!r} is a linear multistep method, whose coefficients assume a constant step "
                         f"(pass grid=None)")
    if isinstance(grid, (list, tuple)):
        grid = np.asarray(grid)
    if not isinstance(grid, np.ndarray):
        raise TypeError(f"grid must be a 1-D NumPy array of times (or None), got {type(grid).__name__}")
    if grid.dtype == object:
        bad = [i for i, e in enumerate(grid.reshape(-1))
               if isinstance(e, bool) or not isinstance(e, numbers.Rational)]
        if bad:
            raise TypeError(f"grid is an object array (exact mode) but entry {bad[0]} is {grid.reshape(-1)[bad[0]]!r}; "
                            f"an exact grid holds Fractions or ints")
        values = np.empty(grid.shape, dtype=object)
        values.reshape(-1)[:] = [Fraction(e) for e in grid.reshape(-1)]
    elif grid.dtype.kind in "iu":
        values = grid.astype(np.float64)
        if np.any(values.astype(grid.dtype) != grid):
            raise ValueError("grid has integer entries that float64 cannot hold exactly")
    elif grid.dtype == np.float64:
        values = np.array(grid, dtype=np.float64)
    else:
        raise TypeError(f"grid has dtype {grid.dtype}; use float64, or an object array of Fractions (exact mode)")
    if values.ndim != 1 or values.shape[0] != N + 1:
        raise ValueError(f"grid must be a 1-D array of N + 1 = {N + 1} times, got shape {values.shape}")
    if values.dtype != object and not np.all(np.isfinite(values)):
        raise ValueError(f"grid contains NaN or inf (first at index {int(np.flatnonzero(~np.isfinite(values))[0])})")
    if values[0] != 0:
        raise ValueError(f"grid[0] must be 0, got {_show(values[0])}")
    if values[-1] != T:
        raise ValueError(f"grid[-1] must equal T = {_show(T)}, got {_show(values[-1])}")
    if values.dtype == object:
        steps_ok = [b > a for a, b in zip(values[:-1], values[1:])]
        bad = [n for n, ok in enumerate(steps_ok) if not ok]
    else:
        bad = np.flatnonzero(~(values[1:] > values[:-1]))
    if len(bad):
        n = int(bad[0])
        raise ValueError(f"grid must be strictly increasing; grid[{n + 1}] = {_show(values[n + 1])} <= grid[{n}] = "
                         f"{_show(values[n])}")
    return _read_only(values)


def _show(v) -> str:
    """A grid value for a message: a Fraction as p/q, a float with all its digits."""
    return str(v) if isinstance(v, Fraction) else repr(float(v))


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
    r"""The parameter samples of one (method, starter, T, N, layout, grid).

    ``offsets[r]`` = position of the sample in units of the step (exact Fraction): sample time / h on a uniform grid;
    on a non-uniform grid :math:`m + \phi` for the time :math:`t_m + \phi h_m`. ``times`` (float64), ``weights``
    (float64 stage weights, the correctly rounded exact sums when all coefficients are rational), ``exact_weights``
    (Fractions, or None for float coefficients), ``step_weights`` (float64 :math:`h\,w_r`, or :math:`\sum h_n b_i`
    over the uses on a non-uniform grid), ``grid`` (None for the uniform grid, else the read-only times
    :math:`t_0..t_N`) and ``steps`` (:math:`h_n`). Index maps: ``stage_index`` ``(N, s)`` for an ERK — or
    ``(k-1, s_starter)`` for the starter steps of an LMM — giving the sample row used by stage i of step n;
    ``grid_index`` ``(N,)`` for an LMM: the row used by :math:`f(x_m,\cdot)` at :math:`t_m`, or −1 where that value is
    never used.

    Internally a sample time is the integer code ``q·F + j`` for :math:`t = t_q + \phi_j h_q` with the fractional parts
    :math:`0 \le \phi_0 < \phi_1 < \dots` of the nodes (F of them), so building the samples needs no rational
    arithmetic per step: O(N·s) vectorised integer work (codes marked over their range, no sort; exact weights as
    int64 counts times integer coefficients, :func:`_stage_weights`); ``offsets`` and ``exact_weights`` are formed
    on first access. (A non-uniform grid with a
    node outside [0, 1] keys its samples by exact rational times instead and stores the offsets directly.)
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
    _weight_numerators: tuple | np.ndarray | None = field(repr=False)
    _weight_denominator: int | None = field(repr=False)
    grid: np.ndarray | None = field(default=None, repr=False)
    _offsets: tuple | None = field(default=None, repr=False)

    @property
    def n_samples(self) -> int:
        return len(self.times)

    @property
    def h(self):
        """Step size T/N (a Fraction when T is exact). On a non-uniform grid there is no single step: ValueError
        (use :attr:`steps`)."""
        if self.grid is not None:
            raise ValueError("samples on a non-uniform grid have no single step size h; use samples.steps (h_n) or "
                             "samples.step_weights")
        return self.T / self.N

    @cached_property
    def steps(self) -> np.ndarray:
        r"""The steps :math:`h_n`, shape (N,): ``grid[n+1] - grid[n]`` (float64, or Fractions for an exact grid), or
        ``T/N`` repeated (float64) on the uniform grid."""
        if self.grid is None:
            return _read_only(np.full(self.N, float(self.T / self.N)))
        return _read_only(self.grid[1:] - self.grid[:-1])

    @cached_property
    def step_weights(self) -> np.ndarray:
        r""":math:`h\,w_r` (float64), the normaliser of the gradient of sample r (module docstring): on the uniform
        grid ``float(h) * weights``; on a non-uniform grid :math:`\sum h_n b_i` over the (step, stage) uses of r,
        summed in float64 in the order of the steps."""
        if self.grid is None:
            return _read_only(float(self.T / self.N) * self.weights)
        h = np.asarray(self.steps, dtype=np.float64)
        b = np.array([float(c) for c in self.method.b])
        out = np.bincount(self.stage_index.ravel(), weights=(h[:, None] * b[None, :]).ravel(),
                          minlength=self.n_samples)
        return _read_only(out)

    @cached_property
    def offsets(self) -> tuple:
        if self._offsets is not None:
            return self._offsets
        F = len(self._fracs)
        return tuple(int(q) + self._fracs[j] for q, j in zip(self._codes // F, self._codes % F))

    @cached_property
    def exact_weights(self) -> tuple | None:
        if self._weight_numerators is None:
            return None
        return tuple(Fraction(int(w), self._weight_denominator) for w in self._weight_numerators)

    def __repr__(self) -> str:
        st = f", starter={self.starter.name!r}" if self.starter is not None else ""
        gr = ", grid=non-uniform" if self.grid is not None else ""
        return (f"ParameterSamples({self.method.name!r}{st}, layout={self.layout!r}, N={self.N}{gr}, "
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


#: how many distinct (method, starter, T, N, layout, grid) results :func:`parameter_samples` keeps (least recently
#: used dropped first); one result holds O(N·s) int64/float64 entries
SAMPLES_CACHE_SIZE = 16


def parameter_samples(method, T, N, layout: str = "stage", starter=None, *, grid=None) -> ParameterSamples:
    """The :class:`ParameterSamples` of ``method`` on ``N`` steps over ``[0, T]`` (see the module docstring); ``grid``
    a non-uniform grid (:func:`check_step_grid`; Runge–Kutta methods only) or None for :math:`t_n = nT/N`.

    Memoised (the last :data:`SAMPLES_CACHE_SIZE` distinct arguments): building the samples does O(N·s) work, and
    every call of the integrators and adjoints asks for them. Sharing one result is safe: :class:`ParameterSamples` is
    frozen, its arrays are read-only views of read-only buffers, and its other fields are tuples, numbers and the
    (frozen) methods. The key is the *validated* arguments: the method and the resolved starter (frozen dataclasses
    compared by name and coefficients) together with their ``exact`` flags (so a float tableau never matches an exact
    one whose coefficients happen to be equal numbers), T with its type (an exact ``Fraction`` and a float never share
    an entry, and floats are compared exactly), N, the layout and the grid (its dtype and exact values).
    """
    starter = _check_method(method, starter)
    T, N, exact_T = check_grid(method, T, N)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    grid = check_step_grid(method, T, N, grid)
    grid_key = None if grid is None else (
        ("exact", tuple(grid)) if grid.dtype == object else ("float64", grid.tobytes()))
    key = (method, method.exact, starter, None if starter is None else starter.exact, exact_T, T, N, layout, grid_key)
    return _cached_samples(key, _GridHolder(grid))


class _GridHolder:
    """Carries the validated grid array into the memoised builder without being part of the key (the key holds its
    dtype and exact values)."""

    __slots__ = ("grid",)

    def __init__(self, grid):
        self.grid = grid

    def __eq__(self, other):
        return isinstance(other, _GridHolder)

    def __hash__(self):
        return 0


@lru_cache(maxsize=SAMPLES_CACHE_SIZE)
def _cached_samples(key, holder) -> ParameterSamples:
    method, _, starter, _, _, T, N, layout, _ = key
    return _build_samples(method, starter, T, N, layout, grid=holder.grid)


def _build_samples(method, starter, T, N, layout, grid=None) -> ParameterSamples:
    """The samples of validated arguments (``starter`` resolved, ``T`` a Fraction or a float, ``grid`` validated)."""
    erk = isinstance(method, ButcherTableau)
    tab = method if erk else starter
    fracs = _fractional_parts(tab.c)
    F = len(fracs)
    split = _node_split(tab.c, fracs)
    n_rk = N if erk else method.steps - 1                # number of Runge-Kutta steps (all, or the starter's)
    s = tab.stages
    k = None if erk else method.steps
    used_grid = np.zeros(0, dtype=np.int64)
    if not erk:
        beta_used = np.zeros(N, dtype=bool)
        for j in range(k):
            if method.beta[j] != 0:
                beta_used[j:j + N - k + 1] = True
        used_grid = np.flatnonzero(beta_used).astype(np.int64)
    offsets = None
    if layout == "constant":
        codes = np.zeros(1, dtype=np.int64)
        stage_index = np.zeros((n_rk, s), dtype=np.int64)
        grid_index = None
        if not erk:
            grid_index = np.full(N, -1, dtype=np.int64)
            grid_index[used_grid] = 0
    elif grid is not None and layout == "stage" and any(q not in (0, 1) or (q == 1 and j != 0) for q, j in split):
        codes, stage_index, offsets, exact_times = _exact_stage_keys(tab, grid, N)
        grid_index = None
    else:
        if layout == "stage":
            q = np.array([q for q, _ in split], dtype=np.int64)
            j = np.array([j for _, j in split], dtype=np.int64)
            rk_codes = (np.arange(n_rk, dtype=np.int64)[:, None] + q[None, :]) * F + j[None, :]
        else:
            rk_codes = np.repeat(np.arange(n_rk, dtype=np.int64)[:, None] * F, s, axis=1)
        grid_codes = used_grid * F                                 # fractional part 0 has index 0
        # the step layout has one row per step even where an LMM never uses it (a β_j = 0 pattern): weight 0 there
        every_step = np.arange(N, dtype=np.int64) * F if layout == "step" else np.zeros(0, dtype=np.int64)
        codes, inverse = _unique_codes(np.concatenate([rk_codes.ravel(), grid_codes, every_step]))
        stage_index = inverse[:rk_codes.size].reshape(rk_codes.shape).astype(np.int64)
        grid_index = None
        if not erk:
            grid_index = np.full(N, -1, dtype=np.int64)
            grid_index[used_grid] = inverse[rk_codes.size:rk_codes.size + len(used_grid)]
    n_samples = len(codes)
    weights, numerators, denominator = _stage_weights(method, tab, erk, stage_index, grid_index, N, n_samples)
    if layout == "constant":
        times = np.zeros(1)
    elif offsets is not None:
        times = np.array([float(t) for t in exact_times], dtype=np.float64)     # correctly rounded
    else:
        frac_float = np.array([float(f) for f in fracs])
        if grid is None:
            times = ((codes // F) + frac_float[codes % F]) * (float(T) / N)
        else:
            g = np.asarray(grid, dtype=np.float64) if grid.dtype != object else grid
            m, phi = codes // F, frac_float[codes % F]
            right = np.minimum(m + 1, N)
            if grid.dtype == object:
                times = np.array([float(g[a] + Fraction(fracs[jj]) * (g[b] - g[a]))
                                  for a, b, jj in zip(m, right, codes % F)], dtype=np.float64)
            else:
                times = g[m] + phi * (g[right] - g[m])
    times, weights, stage_index, codes = (_read_only(a) for a in (times, weights, stage_index, codes))
    grid_index = None if grid_index is None else _read_only(grid_index)
    return ParameterSamples(method, starter, layout, T, N, times, weights, stage_index, grid_index, codes,
                            tuple(fracs), numerators, denominator, grid, offsets)


def _exact_stage_keys(tab, grid, N):
    """Stage layout on a non-uniform grid for a tableau with a node outside [0, 1]: each stage time
    :math:`t_n + c_i h_n` as an exact rational of the grid values; equal rationals are one sample. Returns (codes =
    0..n_samples−1, stage_index, offsets n + c_i of the first use, the exact times), rows in increasing time."""
    g = [Fraction(v) for v in grid]
    where = {}
    stage_index = np.empty((N, tab.stages), dtype=np.int64)
    first = []
    for n in range(N):
        h = g[n + 1] - g[n]
        for i, c in enumerate(tab.c):
            t = g[n] + Fraction(c) * h
            stage_index[n, i] = where.setdefault(t, len(where))
            if stage_index[n, i] == len(first):
                first.append((t, n + Fraction(c)))
    order = sorted(range(len(first)), key=lambda r: first[r][0])
    rank = np.empty(len(first), dtype=np.int64)
    rank[order] = np.arange(len(first))
    return (np.arange(len(first), dtype=np.int64), rank[stage_index], tuple(first[r][1] for r in order),
            [first[r][0] for r in order])


def _unique_codes(all_codes):
    r"""``np.unique(all_codes, return_inverse=True)`` (sorted distinct codes, and each entry's row among them) by
    marking the codes in a boolean array over their range instead of sorting: the sample codes of a grid fill
    :math:`[\min, \max]` densely (about F codes per step), so this is O(N·F) vectorised work, not O(N log N). Same
    result as ``np.unique``: the marked positions in increasing order are the sorted distinct codes, and the number of
    marks up to a code, minus one, is its row."""
    lo = int(all_codes.min())
    shifted = all_codes - lo
    marks = np.zeros(int(shifted.max()) + 1, dtype=bool)
    marks[shifted] = True
    rank = np.cumsum(marks, dtype=np.int64)
    rank -= 1
    return (np.flatnonzero(marks) + lo).astype(np.int64), rank[shifted]


#: the exact integer numerators of the stage weights are summed in int64 (vectorised) when every partial sum is below
#: this bound; as integers below 2**53 they and the common denominator are exact float64 numbers, so the float64
#: quotient is the correctly rounded w_r, the same number as Python's ``int / int``
_EXACT_INT64_BOUND = 1 << 53


def _stage_weights(method, tab, erk, stage_index, grid_index, N, n_samples):
    r"""Stage weights :math:`w_r` (float64; exact numerators and denominator for rational coefficients, else None):
    every (sample row, coefficient) use — :math:`b_i` of every Runge–Kutta stage, :math:`\beta_j` of every
    multistep use of :math:`F_{n+j}` — added up. Float coefficients are summed in the order of the steps (n outer,
    stage or j inner); rational ones exactly in integers — over the common denominator D, :math:`w_r = \nu_r/D` with
    :math:`\nu_r = \sum_c \mathrm{count}_{r,c}\,(c D)` over the coefficients c — as counts times coefficients
    (for the constant layout, whose one row takes every use, without forming the O(N·s) list of uses). The integer
    sums run vectorised in int64 when :math:`(\text{number of uses})\cdot\max_c|cD| < 2^{53}` and
    :math:`D \le 2^{53}` (then no partial sum overflows, and :math:`\nu_r`, D are exact in float64, so
    ``nu / D`` in float64 is the correctly rounded quotient); otherwise in Python integers (:func:`_add_counts`, exact
    for any size). Both give the same integers and the same float64 weights."""
    exact = tab.exact and (erk or method.exact)
    if exact and n_samples == 1:
        uses = [(stage_index.shape[0], b) for b in tab.b]
        if not erk:
            uses += [(N - method.steps + 1, beta) for beta in method.beta if beta != 0]
        den = math.lcm(*[Fraction(c).denominator for _, c in uses]) if uses else 1
        num = sum(count * Fraction(c).numerator * (den // Fraction(c).denominator) for count, c in uses)
        return np.array([num / den], dtype=np.float64), (num,), den
    rows = [stage_index]
    coefs = [np.broadcast_to(np.arange(tab.stages), stage_index.shape)]
    all_coefs = list(tab.b)
    if not erk:
        k = method.steps
        js = [j for j in range(k) if method.beta[j] != 0]
        n_lmm = N - k + 1
        if js:
            rows.append(np.stack([grid_index[j:j + n_lmm] for j in js], axis=1))
            coefs.append(np.broadcast_to(tab.stages + np.arange(len(js)), (n_lmm, len(js))))
        all_coefs += [method.beta[j] for j in js]
    rows = np.concatenate([r.reshape(-1) for r in rows])
    which = np.concatenate([c.reshape(-1) for c in coefs])
    if exact:
        den = math.lcm(*[Fraction(c).denominator for c in all_coefs]) if all_coefs else 1
        scales = [Fraction(c).numerator * (den // Fraction(c).denominator) for c in all_coefs]
        if den <= _EXACT_INT64_BOUND and rows.size * max([abs(c) for c in scales] + [0]) < _EXACT_INT64_BOUND:
            C = len(all_coefs)
            counts = np.bincount(rows * C + which, minlength=n_samples * C).reshape(n_samples, C)
            nums = counts @ np.array(scales, dtype=np.int64)
            return nums.astype(np.float64) / float(den), _read_only(nums), den
        nums = [0] * n_samples
        for idx, c in enumerate(all_coefs):
            c = Fraction(c)
            if c == 0:
                continue
            counts = np.bincount(rows[which == idx], minlength=n_samples)
            scale = c.numerator * (den // c.denominator)
            nums = _add_counts(nums, counts, scale)
        weights = np.array([w / den for w in nums], dtype=np.float64)     # int/int: correctly rounded
        return weights, tuple(nums), den
    weights = np.bincount(rows, weights=np.array([float(c) for c in all_coefs])[which], minlength=n_samples)
    return weights.astype(np.float64), None, None


def _add_counts(nums, counts, scale):
    """``nums[r] + counts[r]·scale`` for every r, in Python integers (exact for any size)."""
    return [a + int(n) * scale for a, n in zip(nums, counts)]


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of a read-only ``a``: a view's flag cannot be set back to writeable while its base is not,
    so a cached (shared) result cannot be modified through ``flags.writeable = True`` either."""
    a.flags.writeable = False
    v = a.view()
    v.flags.writeable = False
    return v
