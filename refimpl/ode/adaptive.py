r"""The adaptive explicit Runge–Kutta integrator and its three gradients (docs/theory/adaptive-steps.md).

:func:`adaptive_solve` integrates :math:`\dot x = f(x, \theta)` (one constant θ) on :math:`[0, T]` with an
:class:`~refimpl.ode.embedded.EmbeddedTableau`, an :class:`~refimpl.ode.step_control.ErrorNorm`, a
:class:`~refimpl.ode.step_control.Controller` and (unless ``h0`` is given) the HNW starting step
:class:`~refimpl.ode.step_control.InitialStep`. Attempt :math:`m` from the current accepted :math:`(t_n, x_n)` with step
:math:`h`:

1. clip: if a stop time :math:`\tau` (``stop_times``, the next one after :math:`t_n`) has :math:`t_n + h \ge \tau`
   then :math:`h = \tau - t_n` and the step ends exactly at :math:`\tau`; otherwise if :math:`t_n + h \ge T` then
   :math:`h = T - t_n` (the last step ends exactly at T);
2. stages :math:`k_i = f(x_n + h\sum_{j<i}a_{ij}k_j, \theta)` (:math:`k_1 = f(x_n)` reused across rejections, and equal
   to the previous step's last stage for an FSAL pair); :math:`x^{\ast} = x_n + h\sum_i b_ik_i`,
   :math:`e = h\sum_i b^{\mathrm{err}}_i k_i`;
3. :math:`r = \|e/(\mathrm{atol} + \mathrm{rtol}\,m(x_n, x^\ast))\|`; accept iff the controller says so;
4. :math:`h \leftarrow h\cdot\mathrm{fac}(r, r_{n-1}, r_{n-2})` with the :math:`h` used, clipped or not; if accepted,
   :math:`t_{n+1} = t_n + h_{\text{used}}` (:math:`= \tau` or :math:`T` exactly after a clipped step),
   :math:`x_{n+1} = x^\ast`.

After a step clipped to a stop time the next step is the controller's factor times the *clipped* step (not the
step the controller had proposed before clipping): torchdiffeq 0.2.5 (``rk_common.py:_adaptive_step``,
``options={"step_t": ts}``: ``dt_next = _optimal_step_size(dt, ...)`` with the clipped ``dt``) and diffrax 0.7.2
(``_step_size_controller/clip.py:ClipStepSizeController.adapt_step_size``, what ``PIDController(step_ts=ts)``
builds: the inner ``pid.py:adapt_step_size`` scales ``prev_dt = t1 - t0`` of the clipped step, then ``_clip_t``
clips the next ``t1`` to the next stop time) both do this; docs/theory/adaptive-steps.md §2.

The same code runs on float64, on complex128 (every decision on real parts, :math:`|\cdot|` by its holomorphic
continuation: complex step gives the derivative of the adaptive loss wherever the accept/reject pattern and the clipping
choices do not change) and on tape :class:`~refimpl.ad.Variable` s, where *everything* is recorded: the stages, the
error estimate, the norm, the controller's factor, the starting-step heuristic, the clipped last step. ``refimpl.ad``'s
gradient of the loss is then (b), the full discrete adjoint. ``detach`` stops the gradient through named quantities
(:data:`DETACHABLE`): ``"h0"`` (the starting step), ``"error_ratio"`` (every r), ``"h_next"`` (every step size the
controller proposes, the starting step kept), ``"h"`` (``"h_next"`` and the starting step). With ``{"h"}`` the grid is a
constant and (b) reduces to (a).

Two library rules are options: ``end="overshoot"`` (no clip to T: the run stops at the first accepted
:math:`t_N \ge T` and an ``output`` interpolant of the last step gives the value at T, its abscissa
:math:`s = (T - t_{N-1})/(t_N - t_{N-1})` on the carrier) and ``reuse_last_stage="always"`` (every step starts with the
previous accepted step's last stage, FSAL or not).

Gradients: :func:`full_discrete_gradient` (b); :func:`frozen_grid_gradient` (a: the fixed-step discrete adjoint on the
accepted grid, by the tape or by the hand adjoint of :mod:`refimpl.ode.adjoint_recursions`);
:func:`continuous_gradient` (c: :func:`refimpl.ode.adjoint_ode.continuous_adjoint`).

Errors: ``max_steps`` attempts used up (naming the attempts, accepted/rejected counts, the time reached), a step size
below ``min_step`` (underflow), a non-finite error estimate or state (naming the attempt, the accepted step and time):
:class:`~refimpl.arguments.NonFiniteError` / ``ValueError``, never a silently truncated answer.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field as dataclass_field
from typing import NamedTuple

import numpy as np

from refimpl.ad import Variable, getvalue, ops, value_and_grad
from refimpl.arguments import NonFiniteError, check_state_array, first_nonfinite
from refimpl.ode.embedded import EmbeddedTableau, embedded_pair
from refimpl.ode.fields import TerminalLoss, VectorField
from refimpl.ode.step_control import (I_CONTROLLER, RMS_NORM, Controller, ErrorNorm, InitialStep, Tolerances,
                                      re_value)
from refimpl.ode.tableau import ButcherTableau

__all__ = ["adaptive_solve", "AdaptiveSolution", "grid_rounding", "RejectedStep", "DETACHABLE", "AdaptiveGradient",
           "full_discrete_gradient", "frozen_grid_gradient", "continuous_gradient", "AdaptiveStepError",
           "DEFAULT_MAX_STEPS", "check_stop_times"]

#: quantities whose gradient :func:`adaptive_solve` can stop (``detach=``); "h_next": the controller's outputs only
#: (every h after the first), leaving the starting step on the tape
DETACHABLE = ("h0", "h", "error_ratio", "h_next")
#: how the value at T is formed: "clip" (the last step ends at T) or "overshoot" (no clipping: the last step ends at
#: or past T and ``output`` interpolates it at T)
ENDS = ("clip", "overshoot")
#: which stage starts the next step: "fsal" (the last stage if the pair is FSAL, else f(x_{n+1})) or "always" (the
#: last stage, FSAL or not)
REUSE_LAST_STAGE = ("fsal", "always")
#: default cap on step attempts (accepted + rejected)
DEFAULT_MAX_STEPS = 100_000


class AdaptiveStepError(ValueError):
    """The adaptive integration could not finish: ``max_steps`` used up, or the step size underflowed."""


class RejectedStep(NamedTuple):
    """A rejected attempt: ``step`` (the accepted step it tried to become, 0-based), ``t`` (its start), ``h``, the
    error ``ratio`` r > 1 (real parts, float)."""

    step: int
    t: float
    h: float
    ratio: float


@dataclass(frozen=True, eq=False)
class AdaptiveSolution:
    """Result of :func:`adaptive_solve`.

    ``grid`` (N+1,) accepted times (float64; real parts), ``steps`` (N,) the step sizes used (float64; real parts;
    ``grid[n+1] = grid[n] + steps[n]`` rounded, and ``grid[-1] = T`` exactly), ``xs`` (N+1, d) states at the grid
    (ndarray, complex, or Variable), ``ratios`` (N,) accepted error ratios, ``rejected`` the
    :class:`RejectedStep` s, ``nfev`` field evaluations (starting step included), ``loss`` (Φ(x_N) or None),
    ``h0`` the starting step (carrier value), and the data used: ``pair``, ``controller``, ``norm``,
    ``tolerances``, ``initial_step``, ``detach``; ``cancellation`` (N,) the rounding amplification κ of each accepted
    step's error estimate (:func:`_cancellation`: r carries a relative rounding error ≈ κε, and the next step size
    inherits it — the scale on which two correct implementations' grids may differ)."""

    grid: np.ndarray
    steps: np.ndarray
    xs: object
    ratios: np.ndarray
    rejected: tuple
    nfev: int
    loss: object
    h0: object
    pair: EmbeddedTableau
    controller: Controller
    norm: ErrorNorm
    tolerances: Tolerances
    initial_step: InitialStep | None
    detach: frozenset = dataclass_field(default_factory=frozenset)
    cancellation: np.ndarray | None = None
    #: the value at T: ``xs[-1]`` with ``end="clip"``, the interpolated value with ``end="overshoot"``
    x_end: object = None
    #: the requested stop times (float64, strictly increasing in (0, T); empty without ``stop_times``)
    stop_times: np.ndarray = dataclass_field(default_factory=lambda: _read_only(()))
    #: grid indices of the stop times: ``grid[stop_indices[i]] == stop_times[i]`` exactly
    stop_indices: np.ndarray = dataclass_field(default_factory=lambda: _read_only((), np.intp))

    @property
    def N(self) -> int:
        """Number of accepted steps."""
        return len(self.steps)

    @property
    def n_rejected(self) -> int:
        return len(self.rejected)

    @property
    def final(self):
        """x_N."""
        return self.xs[-1]

    @property
    def at_stops(self):
        """The states at the stop times, (len(stop_times), d) on the solution's carrier (ndarray, complex or tape
        Variables: a loss on them is differentiated like the terminal loss); None without stop times."""
        if len(self.stop_indices) == 0:
            return None
        return ops.stack([self.xs[int(i)] for i in self.stop_indices])

    def __repr__(self) -> str:
        return (f"AdaptiveSolution({self.pair.name}, {self.controller.name}, rtol={self.tolerances.rtol:g}, "
                f"atol={self.tolerances.atol:g}: {self.N} accepted, {self.n_rejected} rejected, nfev={self.nfev})")


def _detached(v):
    return getvalue(v) if isinstance(v, Variable) else v


def _check_detach(detach) -> frozenset:
    if isinstance(detach, str):
        detach = (detach,)
    try:
        names = frozenset(detach)
    except TypeError:
        raise TypeError(f"detach must be a collection of names from {DETACHABLE}, got {type(detach).__name__}") \
            from None
    unknown = sorted(n for n in names if n not in DETACHABLE)
    if unknown:
        raise ValueError(f"detach: unknown quantities {unknown}; known: {list(DETACHABLE)}")
    return names


def _theta_row(theta, p: int):
    """The constant θ as a (p,) vector (accepts (p,) or the constant layout (1, p))."""
    shape = np.shape(getvalue(theta))
    if shape == (1, p):
        theta = theta[0]
    elif shape != (p,):
        raise ValueError(f"theta must have shape ({p},) or (1, {p}) (one constant parameter vector; field.n_params = "
                         f"{p}), got {shape}")
    return check_state_array(theta, "theta", (p,))


def _check_T(T) -> float:
    if isinstance(T, bool) or not isinstance(T, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"T must be a real number, got {type(T).__name__}")
    T = float(T)
    if not math.isfinite(T) or not T > 0:
        raise ValueError(f"T must be finite and > 0, got {T!r}")
    return T


def check_stop_times(stop_times, T) -> np.ndarray:
    """``stop_times`` as a read-only float64 array, validated: 1-D, finite, strictly increasing, every time in
    (0, T) (None or an empty array: no stop times)."""
    if stop_times is None:
        return _read_only(())
    if isinstance(stop_times, Variable):
        raise TypeError("stop_times must be constants (an array of float times), got a tape Variable")
    try:
        a = np.asarray(stop_times)
    except Exception as exc:  # a ragged sequence, say
        raise ValueError(f"stop_times must be a 1-D array of times, got {stop_times!r}") from exc
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"stop_times must be real numbers, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"stop_times must be a 1-D array of times, got shape {a.shape}")
    a = a.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise ValueError(f"stop_times must be finite; stop_times[{bad[0]}] = {float(a[bad[0]])!r}")
    if a.size > 1 and not np.all(np.diff(a) > 0):
        n = int(np.argmax(~(np.diff(a) > 0)))
        raise ValueError(f"stop_times must be strictly increasing; stop_times[{n + 1}] = {float(a[n + 1])!r} <= "
                         f"stop_times[{n}] = {float(a[n])!r}")
    outside = np.flatnonzero(~((a > 0) & (a < T)))
    if outside.size:
        i = outside[0]
        raise ValueError(f"stop_times must lie in the open interval (0, T) = (0, {T!r}); stop_times[{i}] = "
                         f"{float(a[i])!r}")
    return _read_only(a)


def _check_field(field):
    if not isinstance(field, VectorField):
        raise TypeError(f"field must implement the VectorField protocol (dim, n_params, f, ...), got "
                        f"{type(field).__name__}")


def adaptive_solve(field, pair, x0, theta, T, *, rtol, atol, controller: Controller = I_CONTROLLER,
                   norm: ErrorNorm = RMS_NORM, initial_step: InitialStep | None = None, h0=None,
                   max_steps: int = DEFAULT_MAX_STEPS, min_step: float | None = None, loss=None,
                   detach=(), end: str = "clip", output=None, reuse_last_stage: str = "fsal",
                   stop_times=None) -> AdaptiveSolution:
    r"""Integrate :math:`\dot x = f(x,\theta)` on [0, T] adaptively (module docstring) and return an
    :class:`AdaptiveSolution`.

    ``pair``: an :class:`EmbeddedTableau` or a registered name; ``rtol``, ``atol`` > 0; ``h0`` a fixed starting step
    (a float > 0, a constant) or None for the HNW heuristic ``initial_step`` (default :class:`InitialStep()`);
    ``max_steps`` caps the attempts (accepted + rejected); ``min_step`` (default :math:`10\,\epsilon\max(|t|, T)`)
    is the underflow bound; ``loss`` a :class:`~refimpl.ode.fields.TerminalLoss` (then ``loss`` of the result is
    Φ(x_end)); ``detach`` a subset of :data:`DETACHABLE`. ``end`` (:data:`ENDS`): "clip" (default) or "overshoot":
    no clipping, the integration stops at the first accepted :math:`t_{N} \ge T` and ``x_end = output(x_{N-1}, x_N,
    ks, h, s)`` with the last step's stages ``ks``, size ``h`` and :math:`s = (T - t_{N-1})/(t_N - t_{N-1})`, all
    carried values (torchdiffeq's rule; ``output`` e.g. :class:`refimpl.ode.conventions.QuarticInterpolant`).
    ``reuse_last_stage`` (:data:`REUSE_LAST_STAGE`): "always" starts every step with the previous accepted step's
    last stage even for a pair that is not FSAL (torchdiffeq's rule). ``stop_times``: strictly increasing times in
    (0, T) that the accepted grid hits exactly (a step that would reach past the next one ends on it; the next
    proposal is the controller's factor times the clipped step, as in torchdiffeq's ``step_t`` and diffrax's
    ``step_ts``); the result records their grid indices (``stop_indices``) and the states there (``at_stops``).
    ``x0``/``theta`` float64, complex128 or Variables; theta of shape (p,) or (1, p).
    """
    _check_field(field)
    pair = embedded_pair(pair)
    tol = Tolerances(rtol, atol)
    if not isinstance(controller, Controller):
        raise TypeError(f"controller must be a Controller, got {type(controller).__name__}")
    if not isinstance(norm, ErrorNorm):
        raise TypeError(f"norm must be an ErrorNorm, got {type(norm).__name__}")
    if initial_step is None:
        initial_step = InitialStep()
    elif not isinstance(initial_step, InitialStep):
        raise TypeError(f"initial_step must be an InitialStep, got {type(initial_step).__name__}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, got {max_steps!r}")
    if min_step is not None:
        min_step = float(min_step)
        if not math.isfinite(min_step) or min_step < 0:
            raise ValueError(f"min_step must be a finite number >= 0, got {min_step!r}")
    if loss is not None and not isinstance(loss, TerminalLoss):
        raise TypeError(f"loss must implement value(x) and grad(x), got {type(loss).__name__}")
    detach = _check_detach(detach)
    T = _check_T(T)
    stops = check_stop_times(stop_times, T)
    x0 = check_state_array(x0, "x0", (field.dim,))
    theta = _theta_row(theta, field.n_params)
    if h0 is not None:
        if isinstance(h0, bool) or not isinstance(h0, (numbers.Real, np.floating, np.integer)) \
                or not math.isfinite(float(h0)) or not float(h0) > 0:
            raise ValueError(f"h0 must be None (the starting-step heuristic) or a finite number > 0, got {h0!r}")
    if end not in ENDS:
        raise ValueError(f"end must be one of {ENDS}, got {end!r}")
    if (output is not None) != (end == "overshoot"):
        raise ValueError(f"output: end='overshoot' needs an output(x_prev, x_last, ks, h, s) callable and "
                         f"end='clip' takes none, got end={end!r}, output={output!r}")
    if output is not None and not callable(output):
        raise TypeError(f"output must be callable, got {type(output).__name__}")
    if reuse_last_stage not in REUSE_LAST_STAGE:
        raise ValueError(f"reuse_last_stage must be one of {REUSE_LAST_STAGE}, got {reuse_last_stage!r}")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _solve(field, pair, x0, theta, T, tol, controller, norm, initial_step, h0, int(max_steps), min_step,
                      loss, detach, output, reuse_last_stage == "always" or pair.fsal, stops)


def _solve(field, pair, x0, theta, T, tol, controller, norm, initial_step, h0, max_steps, min_step, loss, detach,
           output=None, reuse_last=None, stops=()):
    reuse_last = pair.fsal if reuse_last is None else reuse_last
    nfev = 0

    def f(x):
        nonlocal nfev
        nfev += 1
        return field.f(x, theta)

    A, b, b_err, s = pair.A, pair.b, pair.b_err, pair.stages
    conv = float
    A = [[conv(v) for v in row] for row in A]
    b = [conv(v) for v in b]
    b_err = [conv(v) for v in b_err]
    k_order = controller.exponent_order(pair)
    atol, rtol = tol.atol, tol.rtol

    k1 = f(x0)
    if h0 is None:
        h = initial_step.select(f, x0, k1, atol, rtol, norm, pair, T)
        if re_value(h) <= 0 or not math.isfinite(re_value(h)):
            raise NonFiniteError(f"the starting-step heuristic gave h0 = {re_value(h)!r} (x0, f(x0) and the "
                                 f"tolerances must be finite); give h0 explicitly")
        if "h0" in detach or "h" in detach:
            h = _detached(h)
    else:
        h = float(h0)
    h_start = h

    t = 0.0
    x = x0
    xs = [x0]
    grid, steps, ratios, rejected, kappas = [0.0], [], [], [], []
    history = (1.0, 1.0)
    stops = [float(v) for v in stops]
    next_stop = 0  # index of the first stop time not yet reached
    stop_indices = []
    attempts = 0
    after_reject = False
    while True:
        if attempts >= max_steps:
            raise AdaptiveStepError(
                f"max_steps = {max_steps} step attempts used up ({len(steps)} accepted, {len(rejected)} rejected) "
                f"at t = {re_value(t):.17g} of T = {T:.17g}: the integration did not reach T (raise max_steps or "
                f"loosen rtol/atol)")
        attempts += 1
        t_re = re_value(t)
        at_stop = next_stop < len(stops) and t_re + re_value(h) >= stops[next_stop]
        if at_stop:
            h = stops[next_stop] - t
        last = not at_stop and output is None and t_re + re_value(h) >= T
        if last:
            h = T - t
        h_re = re_value(h)
        bound = min_step if min_step is not None else 10 * np.finfo(float).eps * max(abs(t_re), T)
        if not h_re > bound:
            raise AdaptiveStepError(
                f"step-size underflow at attempt {attempts} (accepted step {len(steps)}), t = {t_re:.17g}: h = "
                f"{h_re:.3g} is not above min_step = {bound:.3g} (the error estimate cannot be met in float64; "
                f"loosen rtol/atol)")
        ks = [k1]
        for i in range(1, s):
            xi = x
            for j in range(i):
                if A[i][j] != 0.0:
                    xi = xi + (h * A[i][j]) * ks[j]
            if pair.fsal and i == s - 1:
                x_new = xi
            ks.append(f(xi))
        if not pair.fsal:
            x_new = x
            for i in range(s):
                if b[i] != 0.0:
                    x_new = x_new + (h * b[i]) * ks[i]
        e = None
        for i in range(s):
            if b_err[i] != 0.0:
                term = b_err[i] * ks[i]
                e = term if e is None else e + term
        e = h * e
        kappa = _cancellation(b_err, ks)
        r = norm.ratio(e, x, x_new, atol, rtol)
        r_re = re_value(r)
        if not math.isfinite(r_re):
            where = first_nonfinite(np.asarray(getvalue(x_new)))
            what = (f"the attempted state is non-finite at index {where[0]}" if where is not None
                    else "the error estimate is non-finite")
            raise NonFiniteError(
                f"non-finite error estimate at attempt {attempts} (accepted step {len(steps)}), t = {t_re:.17g}, "
                f"h = {h_re:.3g}: r = {r_re}; {what} (the field overflows along this step)")
        if "error_ratio" in detach:
            r = _detached(r)
        accepted = controller.accepts(r)
        fac = controller.factor(r, history, k_order, accepted, after_reject)
        after_reject = not accepted
        history = controller.next_history(r, history, accepted)
        if accepted:
            steps.append(h_re)
            ratios.append(r_re)
            kappas.append(kappa)
            t_prev, x_prev = t, x
            if at_stop:
                t = stops[next_stop]
                next_stop += 1
                stop_indices.append(len(grid))
            else:
                t = T if last else t + h
            grid.append(T if last else re_value(t))
            x = x_new
            xs.append(x)
            if last:
                break
            if output is not None and re_value(t) >= T:
                x_end = output(x_prev, x, ks, h, (T - t_prev) / (t - t_prev))
                break
            k1 = ks[-1] if reuse_last else f(x)
        else:
            rejected.append(RejectedStep(len(steps), t_re, h_re, r_re))
        h = h * fac
        if "h" in detach or "h_next" in detach:
            h = _detached(h)
    if output is None:
        x_end = xs[-1]
    value = None
    if loss is not None:
        value = loss.value(x_end)
        if first_nonfinite(np.asarray(getvalue(value))) is not None:
            raise NonFiniteError(f"the loss became non-finite: Phi(x_N) = {getvalue(value)} at the final state "
                                 f"(accepted step N = {len(steps)}, T = {T:.6g})")
    return AdaptiveSolution(_read_only(grid), _read_only(steps), ops.stack(xs), _read_only(ratios), tuple(rejected),
                            nfev, value, h_start, pair, controller, norm, tol, initial_step if h0 is None else None,
                            detach, _read_only(kappas), x_end, _read_only(stops),
                            _read_only(stop_indices, np.intp))


def _cancellation(b_err, ks) -> float:
    r""":math:`\kappa = \max_j \sum_i |b^{\mathrm{err}}_i k_{i,j}| / \max_j |\sum_i b^{\mathrm{err}}_i k_{i,j}|`: how
    much the rounding of the stages is amplified in the error estimate (relative error of r ≈ κ·ε; inf for e = 0)."""
    vals = [np.real(np.asarray(getvalue(k))) for k in ks]
    num = sum(abs(w) * np.abs(v) for w, v in zip(b_err, vals) if w != 0.0)
    den = np.abs(sum(w * v for w, v in zip(b_err, vals) if w != 0.0))
    top = float(np.max(den))
    return float(np.max(num)) / top if top > 0 else math.inf


def _read_only(values, dtype=np.float64) -> np.ndarray:
    a = np.array(values, dtype=dtype)
    a.flags.writeable = False
    return a


# ---------------------------------------------------------------------------------------------------------------------
# gradients


@dataclass(frozen=True, eq=False)
class AdaptiveGradient:
    """A gradient of the adaptive loss: ``kind`` ("frozen_grid" (a), "full_discrete" (b), "continuous" (c)),
    ``loss``, ``grad_x0`` (d,), ``grad_theta`` (p,), ``grid`` (the accepted grid it belongs to; None for (c)),
    ``convention`` (what was detached / which route), ``solution`` (the :class:`AdaptiveSolution` or None)."""

    kind: str
    loss: float
    grad_x0: np.ndarray
    grad_theta: np.ndarray
    grid: np.ndarray | None
    convention: str
    solution: AdaptiveSolution | None = None

    def __repr__(self) -> str:
        n = "" if self.grid is None else f", N={len(self.grid) - 1}"
        return (f"AdaptiveGradient({self.kind}, {self.convention}{n}: loss={self.loss:.16g}, "
                f"|grad_theta|={np.linalg.norm(self.grad_theta):.6g})")


def _split(z, d):
    return z[:d], z[d:]


def full_discrete_gradient(field, pair, x0, theta, T, loss, *, detach=(), **options) -> AdaptiveGradient:
    r"""(b) the full discrete adjoint: :math:`\mathrm dL/\mathrm d(x_0,\theta)` of the adaptive loss
    :math:`L = \Phi(x_N)` with everything the controller does on the tape (module docstring), by ``refimpl.ad``.
    ``detach`` names quantities whose gradient is stopped (:data:`DETACHABLE`); ``options`` are those of
    :func:`adaptive_solve` (rtol, atol, controller, norm, initial_step, h0, max_steps, min_step, stop_times, ...)."""
    _check_field(field)
    if not isinstance(loss, TerminalLoss):
        raise TypeError(f"loss must implement value(x) and grad(x), got {type(loss).__name__}")
    d, p = field.dim, field.n_params
    x0 = np.asarray(check_state_array(x0, "x0", (d,)), dtype=np.float64)
    th = np.asarray(getvalue(_theta_row(theta, p)), dtype=np.float64)
    holder = {}

    def objective(z):
        xz, tz = _split(z, d)
        sol = adaptive_solve(field, pair, xz, tz, T, loss=loss, detach=detach, **options)
        holder["solution"] = sol
        return sol.loss

    value, g = value_and_grad(objective)(np.concatenate([x0, th]))
    sol = holder["solution"]
    plain = AdaptiveSolution(sol.grid, sol.steps, getvalue(sol.xs), sol.ratios, sol.rejected, sol.nfev,
                             float(getvalue(sol.loss)), float(getvalue(sol.h0)), sol.pair, sol.controller, sol.norm,
                             sol.tolerances, sol.initial_step, sol.detach, sol.cancellation, getvalue(sol.x_end),
                             sol.stop_times, sol.stop_indices)
    det = ",".join(sorted(_check_detach(detach))) or "nothing"
    return AdaptiveGradient("full_discrete", float(value), np.asarray(g[:d]), np.asarray(g[d:]), sol.grid,
                            f"tape through the whole loop, detached: {det}", plain)


def _frozen_tape_loss(field, tableau: ButcherTableau, x0, theta, steps, loss):
    A = [[float(v) for v in row] for row in tableau.A]
    b = [float(v) for v in tableau.b]
    s = tableau.stages
    x = x0
    for h in steps:
        ks = []
        for i in range(s):
            xi = x
            for j in range(i):
                if A[i][j] != 0.0:
                    xi = xi + (h * A[i][j]) * ks[j]
            ks.append(field.f(xi, theta))
        for i in range(s):
            if b[i] != 0.0:
                x = x + (h * b[i]) * ks[i]
    return loss.value(x)


def _check_grid(grid) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or len(g) < 2:
        raise ValueError(f"grid must be a 1-D array of at least 2 times, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("grid must be finite")
    if g[0] != 0.0:
        raise ValueError(f"grid[0] must be 0, got {g[0]!r}")
    if not np.all(np.diff(g) > 0):
        n = int(np.argmax(~(np.diff(g) > 0)))
        raise ValueError(f"grid must be strictly increasing; grid[{n + 1}] = {g[n + 1]!r} <= grid[{n}] = {g[n]!r}")
    return g


def frozen_grid_gradient(field, method, x0, theta, grid, loss, *, route: str = "tape",
                         stop_times=None) -> AdaptiveGradient:
    r"""(a) the frozen-grid discrete adjoint: the gradient of the fixed-step loss of ``method`` (an
    :class:`EmbeddedTableau` — its propagated solution — or a :class:`ButcherTableau`) on the non-uniform ``grid``
    (0 = t₀ < … < t_N = T, step n of size :math:`h_n = t_{n+1} - t_n`, every h a constant) with one constant θ.
    ``route``: "tape" (``refimpl.ad`` through the fixed-step loop) or "numpy" / "numba" / "auto" (the hand
    discrete adjoint of :mod:`refimpl.ode.adjoint_recursions` with ``layout="constant"`` and ``grid=``).
    ``stop_times`` (optional, as in :func:`adaptive_solve`): times the grid must contain exactly — a ValueError names
    the first one it misses (a grid from a solve without them, or one whose times were rounded)."""
    _check_field(field)
    if not isinstance(loss, TerminalLoss):
        raise TypeError(f"loss must implement value(x) and grad(x), got {type(loss).__name__}")
    tableau = method.tableau if isinstance(method, EmbeddedTableau) else method
    if isinstance(method, str):
        tableau = embedded_pair(method).tableau
    if not isinstance(tableau, ButcherTableau):
        raise TypeError(f"method must be an EmbeddedTableau or a ButcherTableau, got {type(method).__name__}")
    g = _check_grid(grid)
    stops = check_stop_times(stop_times, float(g[-1]))
    missing = np.flatnonzero(~np.isin(stops, g))
    if missing.size:
        i = missing[0]
        raise ValueError(f"stop_times[{i}] = {float(stops[i])!r} is not a point of the grid (the grid was not "
                         f"computed with these stop times)")
    d, p = field.dim, field.n_params
    x0 = np.asarray(check_state_array(x0, "x0", (d,)), dtype=np.float64)
    th = np.asarray(getvalue(_theta_row(theta, p)), dtype=np.float64)
    if route == "tape":
        steps = [float(v) for v in np.diff(g)]

        def objective(z):
            xz, tz = _split(z, d)
            return _frozen_tape_loss(field, tableau, xz, tz, steps, loss)

        with np.errstate(over="ignore", invalid="ignore"):
            value, gz = value_and_grad(objective)(np.concatenate([x0, th]))
        return AdaptiveGradient("frozen_grid", float(value), np.asarray(gz[:d]), np.asarray(gz[d:]), g,
                                "tape on the frozen grid")
    if route in ("numpy", "numba", "auto"):
        from refimpl.ode.adjoint_recursions import discrete_adjoint
        res = discrete_adjoint(field, tableau, x0, th[None, :], float(g[-1]), len(g) - 1, loss, layout="constant",
                               grid=g, backend=route)
        return AdaptiveGradient("frozen_grid", float(res.loss), np.asarray(res.grad_x0),
                                np.asarray(res.grad_theta).reshape(-1), g, f"hand discrete adjoint ({route})")
    raise ValueError(f"route must be 'tape', 'numpy', 'numba' or 'auto', got {route!r}")


def continuous_gradient(field, x0, theta, T, loss, *, rtol: float = 1e-12, atol: float | None = None):
    r"""(c) the continuous adjoint :math:`\mathrm dL/\mathrm d\theta = \int_0^T \partial_\theta f^{\mathsf T}p\,dt`,
    :math:`\mathrm dL/\mathrm dx_0 = p(0)` of the exact flow (DOP853 forward and backward,
    :func:`refimpl.ode.adjoint_ode.continuous_adjoint`), independent of any grid."""
    from refimpl.ode.adjoint_ode import continuous_adjoint
    _check_field(field)
    th = np.asarray(getvalue(_theta_row(theta, field.n_params)), dtype=np.float64)
    res = continuous_adjoint(field, th, np.asarray(x0, dtype=np.float64), T, loss, times=[0.0, float(T)],
                             rtol=rtol, atol=atol)
    return AdaptiveGradient("continuous", float(res.loss), np.asarray(res.p[0]), np.asarray(res.integrated_gradient),
                            None, f"continuous adjoint (DOP853, rtol={rtol:g})")


def grid_rounding(solution) -> float:
    r"""How far the accepted grid of another correct implementation of the same rules may drift from ``solution``'s
    (an :class:`AdaptiveSolution`), in time units (docs/theory/adaptive-steps.md §4). Summation order changes the
    error estimate of step n by about :math:`\kappa_n\varepsilon` relative (κ_n its cancellation factor,
    ``solution.cancellation``); the controller passes :math:`1/k` of a relative change of r into the next step size
    unless its factor is clipped (then the next step does not depend on r); relative step changes add up along the
    grid: :math:`|\delta t| \le t_N\tfrac1k\sum_n c\,\kappa_n\varepsilon` over the unclipped steps before the
    last, a rejected attempt counting with the largest κ, plus 4 ulps of :math:`t_N`. c = 64 covers the O(s)
    roundings of the s-stage estimate and of the norm (s ≤ 7). A stop time resets the drift; the bound keeps the
    whole sum (an upper bound)."""
    if not isinstance(solution, AdaptiveSolution):
        raise TypeError(f"solution must be an AdaptiveSolution, got {type(solution).__name__}")
    eps = float(np.finfo(float).eps)
    c = solution.controller
    k = c.exponent_order(solution.pair)
    used = slice(0, len(solution.ratios) - 1)  # the last step's factor proposes no further step
    total = 0.0
    for r, kappa in zip(solution.ratios[used], solution.cancellation[used]):
        factor = c.safety * r ** (-1.0 / k) if r > 0 else np.inf
        if 1.0 < factor < c.factor_max:
            total += kappa
    if solution.rejected:
        total += len(solution.rejected) * float(np.max(solution.cancellation[used], initial=1.0))
    t_end = float(solution.grid[-1])
    return t_end / k * 64 * eps * total + 4 * eps * t_end
