r"""Continuous (optimise-then-discretise) gradient of L = Φ(x(T)) for ẋ = f(x, θ(t))
(docs/theory/continuous-adjoint.md).

Problem. ẋ = f(x, θ(t)), x(0) = x₀, t ∈ [0, T], loss L = Φ(x(T)); θ is a callable t ↦ (p,) array (or a constant
(p,) array). The field follows the vector-field protocol of :mod:`refimpl.ode.fields`: ``dim`` (d), ``n_params`` (p),
``f(x, θ)`` → (d,), ``vjp_x(x, θ, v)`` = ∂ₓfᵀv, ``vjp_theta(x, θ, v)`` = ∂_θfᵀv (``dfdx``/``dfdtheta`` are only used
to check shapes).

Formulas (standard; e.g. Pontryagin / Chen et al. 2018; docs/theory/continuous-adjoint.md). The adjoint p(t) = ∇_{x(t)}
L solves

    p′(t) = −∂ₓf(x(t), θ(t))ᵀ p(t),     p(T) = ∇Φ(x(T)),

and the functional derivative of L with respect to θ(·) is

    δL/δθ(t) = ∂_θf(x(t), θ(t))ᵀ p(t).

Derivation (one line): for a perturbation θ + εη, the tangent u = ∂x/∂ε solves u′ = ∂ₓf u + ∂_θf η, u(0) = 0; then
d/dt (pᵀu) = pᵀ∂_θf η, so dL/dε = ∇Φᵀu(T) = p(T)ᵀu(T) − p(0)ᵀu(0) = ∫₀ᵀ (∂_θfᵀp)ᵀ η dt.
With η ≡ e_k constant this gives the *integrated gradient*

    G = ∫₀ᵀ ∂_θf(x(t), θ(t))ᵀ p(t) dt,

which is dL/dθ when θ is constant (and, for a time-dependent θ, the derivative of L along the constant shift θ + c).
G is computed by augmenting the backward ODE with the quadrature s′ = −∂_θfᵀp, s(T) = 0, so G = s(0).

Numerical route (the choice and its error estimate: docs/theory/continuous-adjoint.md):

* :func:`continuous_adjoint` — a forward DOP853 solve with dense output (SciPy ``solve_ivp``) gives x(t) anywhere;
  the augmented backward system (p, s) is then solved by DOP853 from T to 0 reading x(t) from that dense output.
  We do *not* re-integrate x backward jointly with p from x(T): for a contracting forward flow the backward x-equation
  is expanding and amplifies the error of x(T). The price of the dense output is an interpolation error in x(t) of the
  order of the forward tolerance (DOP853's 7th-order interpolant), which enters the backward right-hand side.
  Error estimate (``error_estimate="tighter"``): the whole computation is repeated at 100× tighter rtol and atol
  (rtol floored at SciPy's 100·eps) *and* with every step at most half the largest step of the first run; the
  reported bound for each quantity is 2·max|Δ| + a rounding floor, where Δ is the difference between the two runs.
  Why 2: if the tighter run is at least twice as accurate (e₂ ≤ e₁/2), then e₁ ≤ |Δ| + e₂ ≤ |Δ| + e₁/2, i.e.
  e₁ ≤ 2|Δ|. DOP853 is 8th order with per-step error control, so a 100× tighter tolerance reduces the step error by
  ≈ 100^{8/9} ≈ 60 until rounding dominates; the floor ``ROUNDING_FLOOR_ULPS · eps · max|value|`` covers that regime.
  Why the step cap: at loose tolerances on smooth problems DOP853 takes a handful of steps, the error is then
  dominated by the dense-output interpolant between steps (not controlled by rtol), and the tighter run may take the
  *same* steps — then Δ misses that error (we measured a 4× underestimate at rtol 1e-5 without the cap). Halving the
  steps divides the interpolation error (order 7 interpolant, local error O(h⁸)) by ~2⁸.

* :func:`continuous_adjoint_rk4` — an independent fixed-step path: classical RK4 forward on the grid of step h/2,
  classical RK4 backward for (p, s) on the grid of step h (its stage times t_{n+1}, t_{n+½}, t_n lie on the forward
  grid, so no interpolation), run for N and 2N steps and Richardson-extrapolated, R = (16·A_{2N} − A_N)/15 (global
  error of RK4 expands as C₄h⁴ + C₅h⁵ + …). The reported error of R is |A_{2N} − A_N|/15 = |R − A_{2N}|, the estimated
  error of A_{2N}, which bounds the error of R in the asymptotic regime. Requested times must lie on the N-step grid.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field as dataclass_field

import numpy as np
from scipy.integrate import solve_ivp

from refimpl.arguments import as_points_1d, as_positive_integer, as_real_scalar, as_vector
from refimpl.arguments import checked_output
from refimpl.ode.dop853 import DOP853

__all__ = [
    "AdjointErrorEstimate",
    "ContinuousAdjointResult",
    "continuous_adjoint",
    "continuous_adjoint_rk4",
]

EPS = float(np.finfo(np.float64).eps)
#: SciPy's solve_ivp raises any rtol below this to it (with a warning).
SCIPY_MIN_RTOL = 100.0 * EPS
#: The tighter re-solve must be at least this many times tighter than the requested rtol for the factor-2 argument.
MIN_TIGHTENING = 10.0
#: Floor added to every "tighter"/Richardson bound, in units of eps·max|value|: two runs near the rounding level can
#: agree by chance (Δ ≈ 0), which must not give a zero bound. It is below what DOP853 reaches even at SciPy's minimal
#: rtol (measured true errors 10–860 eps·max|value| on the analytic cases), so it does not hide truncation error.
ROUNDING_FLOOR_ULPS = 256.0

_QUANTITIES = ("x", "p", "functional_gradient", "integrated_gradient", "x_final")


# ----------------------------------------------------------------------------------------------------------------------
# result objects


@dataclass(frozen=True)
class AdjointErrorEstimate:
    """Estimated max-abs error of each quantity of a :class:`ContinuousAdjointResult` (max over the requested times).

    ``method`` says how it was obtained ("tighter: rtol a → b" or "rk4-richardson: N, 2N"); each other field is an
    absolute error bound (a float) for the array of the same name in the result.
    """

    method: str
    x: float
    p: float
    functional_gradient: float
    integrated_gradient: float
    x_final: float

    def __repr__(self) -> str:
        parts = ", ".join(f"{q}≤{getattr(self, q):.2e}" for q in _QUANTITIES)
        return f"AdjointErrorEstimate({self.method}: {parts})"


@dataclass(frozen=True, repr=False)
class ContinuousAdjointResult:
    """Continuous adjoint at the requested times.

    Attributes
    ----------
    times : (m,) requested times in [0, T], increasing.
    x : (m, d) forward state x(tᵢ).
    p : (m, d) adjoint p(tᵢ) = ∇_{x(tᵢ)} L.
    functional_gradient : (m, p) δL/δθ(tᵢ) = ∂_θf(x(tᵢ), θ(tᵢ))ᵀ p(tᵢ).
    integrated_gradient : (p,) ∫₀ᵀ δL/δθ dt (= dL/dθ for a constant θ).
    x_final : (d,) x(T).
    loss : Φ(x(T)).
    error : :class:`AdjointErrorEstimate` or None (``error_estimate=None``).
    method : which solver produced the numbers.
    stats : solver statistics (function evaluations, steps, tolerances).
    """

    times: np.ndarray
    x: np.ndarray
    p: np.ndarray
    functional_gradient: np.ndarray
    integrated_gradient: np.ndarray
    x_final: np.ndarray
    loss: float
    error: AdjointErrorEstimate | None
    method: str
    stats: dict = dataclass_field(default_factory=dict)

    def __repr__(self) -> str:
        m, d = self.x.shape
        n_p = self.functional_gradient.shape[1]
        lines = [
            f"ContinuousAdjointResult({self.method}; d={d}, p={n_p}, {m} times in "
            f"[{self.times[0]:.6g}, {self.times[-1]:.6g}])",
            f"  x(T) = {np.array2string(self.x_final, precision=6)}"
            + f",  loss = {self.loss:.12g}",
            f"  p(t0) = {np.array2string(self.p[0], precision=6)}",
            f"  integrated gradient ∫δL/δθ dt = {np.array2string(self.integrated_gradient, precision=10)}",
            f"  max|δL/δθ(t)| = {np.max(np.abs(self.functional_gradient)):.6g}",
            f"  error: {self.error!r}",
            f"  stats: {self.stats}",
        ]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------------
# argument checks (the general ones come from refimpl.arguments)


def _check_field(field) -> tuple[int, int]:
    for attr in ("dim", "n_params"):
        if not hasattr(field, attr):
            raise TypeError(f"field must have an integer attribute {attr!r} (vector-field protocol)")
    for meth in ("f", "dfdx", "dfdtheta", "vjp_x", "vjp_theta"):
        if not callable(getattr(field, meth, None)):
            raise TypeError(f"field must have a method {meth!r} (vector-field protocol)")
    for attr in ("dim", "n_params"):
        value = getattr(field, attr)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"field.{attr} must be a positive integer, got {value!r}")
    return int(field.dim), int(field.n_params)


def _theta_function(theta, n_p: int):
    """Wrap ``theta`` (callable or constant (p,) array) as a checked callable t ↦ (p,) float64 array."""
    if callable(theta):

        def theta_at(t: float) -> np.ndarray:
            return checked_output(theta(t), "theta(t)", (n_p,), f" at t={t!r}")

        return theta_at, False
    const = as_vector(theta, n_p, "theta", read_only=True)
    return (lambda t: const), True


def _checked_vector_function(fun, name: str, d: int):
    if not callable(fun):
        raise TypeError(f"{name} must be callable x ↦ ({d},) array, got {type(fun).__name__}")

    def checked(x: np.ndarray) -> np.ndarray:
        return checked_output(fun(x), f"{name}(x)", (d,))

    return checked


def _check_field_outputs(field, x0: np.ndarray, th: np.ndarray, d: int, n_p: int) -> None:
    expected = {
        "f": ((x0, th), (d,)),
        "dfdx": ((x0, th), (d, d)),
        "dfdtheta": ((x0, th), (d, n_p)),
        "vjp_x": ((x0, th, np.ones(d)), (d,)),
        "vjp_theta": ((x0, th, np.ones(d)), (n_p,)),
    }
    for meth, (args, shape) in expected.items():
        checked_output(getattr(field, meth)(*args), f"field.{meth}", shape, " at (x0, theta(0))")


def _check_times(times, T: float, default_count: int) -> np.ndarray:
    if times is None:
        return np.linspace(0.0, T, default_count)
    arr = as_points_1d(np.atleast_1d(np.asarray(times)), "times", copy=True)
    if np.any(arr < 0.0) or np.any(arr > T):
        raise ValueError(f"times must lie in [0, T] = [0, {T!r}], got range [{arr.min()!r}, {arr.max()!r}]")
    if arr.size > 1 and np.any(np.diff(arr) <= 0.0):
        raise ValueError("times must be strictly increasing")
    return arr


@dataclass(frozen=True)
class _Problem:
    field: object
    theta: object  # checked callable t -> (p,)
    theta_is_constant: bool
    x0: np.ndarray
    T: float
    grad_loss: object  # checked callable x -> (d,)
    loss: object  # callable x -> Φ(x)
    d: int
    n_p: int


def _make_problem(field, theta, x0, T, loss) -> _Problem:
    d, n_p = _check_field(field)
    x0 = as_vector(x0, d, "x0", copy=True)
    T = as_real_scalar(T, "T", positive=True)
    theta_at, is_const = _theta_function(theta, n_p)
    th0 = theta_at(0.0)
    theta_at(T)
    _check_field_outputs(field, x0, th0, d, n_p)
    if not (callable(getattr(loss, "grad", None)) and callable(getattr(loss, "value", None))):
        raise TypeError("loss must be a terminal loss with methods value(x) and grad(x) (e.g. "
                        f"refimpl.ode.fields.QuadraticLoss or UserLoss), got {type(loss).__name__}")
    grad_checked = _checked_vector_function(loss.grad, "loss.grad", d)
    grad_checked(x0)
    return _Problem(field, theta_at, is_const, x0, T, grad_checked, loss.value, d, n_p)


def _loss_value(prob: _Problem, xT: np.ndarray) -> float:
    v = np.asarray(prob.loss(xT), dtype=np.float64)
    if v.size != 1 or not np.isfinite(v).all():
        raise ValueError(f"loss.value(x) must return one finite real number, got {v!r}")
    return float(v.reshape(()))


# ----------------------------------------------------------------------------------------------------------------------
# DOP853 route


def _dop853_once(prob: _Problem, times: np.ndarray, rtol: float, atol: float, max_step: float = np.inf):
    """One forward (dense) + backward augmented DOP853 solve; returns the arrays and solver stats."""
    field, theta, d, n_p = prob.field, prob.theta, prob.d, prob.n_p

    def forward_rhs(t, x):
        return np.asarray(field.f(x, theta(t)), dtype=np.float64)

    fwd = solve_ivp(forward_rhs, (0.0, prob.T), prob.x0, method=DOP853, rtol=rtol, atol=atol,
                    max_step=max_step, dense_output=True)
    if not fwd.success:
        raise RuntimeError(f"forward DOP853 solve failed: {fwd.message}")
    x_of = fwd.sol
    xT = fwd.y[:, -1].copy()

    def backward_rhs(t, y):
        x = x_of(t)
        th = theta(t)
        p = y[:d]
        out = np.empty(d + n_p)
        out[:d] = -np.asarray(field.vjp_x(x, th, p), dtype=np.float64)
        out[d:] = -np.asarray(field.vjp_theta(x, th, p), dtype=np.float64)
        return out

    y_T = np.concatenate([prob.grad_loss(xT), np.zeros(n_p)])
    bwd = solve_ivp(backward_rhs, (prob.T, 0.0), y_T, method=DOP853, rtol=rtol, atol=atol,
                    max_step=max_step, dense_output=True)
    if not bwd.success:
        raise RuntimeError(f"backward DOP853 solve failed: {bwd.message}")
    integrated = bwd.y[d:, -1].copy()

    # states at the requested times; the end points are taken from the solver's own step values (exact nodes)
    xs = np.array([xT if t == prob.T else (prob.x0 if t == 0.0 else x_of(t)) for t in times])
    ps = np.array([y_T[:d] if t == prob.T else (bwd.y[:d, -1] if t == 0.0 else bwd.sol(t)[:d]) for t in times])
    grads = np.array([field.vjp_theta(x, theta(t), p) for t, x, p in zip(times, xs, ps)], dtype=np.float64)
    stats = {
        "forward_nfev": int(fwd.nfev),
        "forward_steps": int(fwd.t.size - 1),
        "backward_nfev": int(bwd.nfev),
        "backward_steps": int(bwd.t.size - 1),
        "max_step_taken": float(min(np.max(np.diff(fwd.t)), np.max(np.abs(np.diff(bwd.t))))),
        "rtol": rtol,
        "atol": atol,
    }
    arrays = {"x": xs, "p": ps, "functional_gradient": grads.reshape(len(times), n_p),
              "integrated_gradient": integrated, "x_final": xT}
    return arrays, stats


def _difference_bound(a: dict, b: dict, factor: float) -> dict:
    out = {}
    for q in _QUANTITIES:
        scale = max(np.max(np.abs(a[q]), initial=0.0), np.max(np.abs(b[q]), initial=0.0))
        diff = np.max(np.abs(a[q] - b[q]), initial=0.0)
        out[q] = float(factor * diff + ROUNDING_FLOOR_ULPS * EPS * scale)
    return out


def continuous_adjoint(field, theta, x0, T, loss, *, times=None, rtol: float = 1e-12,
                       atol: float | None = None, error_estimate: str | None = "tighter") -> ContinuousAdjointResult:
    r"""Continuous adjoint of L = Φ(x(T)), ẋ = f(x, θ(t)), by DOP853 (forward dense output + augmented backward solve).

    Solves p′ = −∂ₓf(x, θ(t))ᵀp, p(T) = ∇Φ(x(T)) together with s′ = −∂_θfᵀp, s(T) = 0 backward, and returns
    x, p and δL/δθ(t) = ∂_θfᵀp at ``times`` and the integrated gradient ∫₀ᵀ ∂_θfᵀp dt = s(0) (= dL/dθ for a constant
    θ). See the module docstring for the derivation and for why x(t) comes from dense output.

    Parameters
    ----------
    field : a vector field (protocol of :mod:`refimpl.ode.fields`).
    theta : callable t ↦ (p,) array, or a constant (p,) array.
    x0 : (d,) initial state, finite.
    T : final time, > 0.
    loss : terminal loss Φ with ``value(x)`` and ``grad(x)`` → (d,) (protocol ``TerminalLoss`` of
        :mod:`refimpl.ode.fields`, e.g. ``QuadraticLoss(y)``).
    times : increasing times in [0, T] at which to report; default 101 equispaced times.
    rtol, atol : DOP853 tolerances (atol defaults to rtol/100). rtol must be ≥ 100·eps (SciPy's floor).
    error_estimate : "tighter" (repeat at 100× tighter tolerances; bound 2·|Δ| + rounding floor, see module
        docstring) or None. For a fully independent check compare with :func:`continuous_adjoint_rk4`.
    """
    prob = _make_problem(field, theta, x0, T, loss)
    times = _check_times(times, prob.T, 101)
    rtol = as_real_scalar(rtol, "rtol", positive=True)
    if rtol < SCIPY_MIN_RTOL:
        raise ValueError(f"rtol must be ≥ 100·eps = {SCIPY_MIN_RTOL:.3g} (SciPy's floor), got {rtol!r}")
    atol = rtol / 100.0 if atol is None else as_real_scalar(atol, "atol", positive=True)
    if error_estimate not in ("tighter", None):
        raise ValueError(f"error_estimate must be 'tighter' or None, got {error_estimate!r}")

    arrays, stats = _dop853_once(prob, times, rtol, atol)
    error = None
    if error_estimate == "tighter":
        tight_rtol = max(rtol / 100.0, SCIPY_MIN_RTOL)
        if rtol / tight_rtol < MIN_TIGHTENING:
            raise ValueError(
                f"rtol={rtol!r} is too close to SciPy's floor {SCIPY_MIN_RTOL:.3g} for the 'tighter' error estimate "
                f"(needs rtol ≥ {MIN_TIGHTENING * SCIPY_MIN_RTOL:.3g}); use error_estimate=None or "
                "continuous_adjoint_rk4")
        tight, tight_stats = _dop853_once(prob, times, tight_rtol, atol / 100.0,
                                          max_step=0.5 * stats["max_step_taken"])
        bounds = _difference_bound(arrays, tight, 2.0)
        error = AdjointErrorEstimate(f"tighter: rtol {rtol:.1e} vs {tight_rtol:.1e}", **bounds)
        stats["estimate_nfev"] = tight_stats["forward_nfev"] + tight_stats["backward_nfev"]
    return ContinuousAdjointResult(
        times=times, x=arrays["x"], p=arrays["p"], functional_gradient=arrays["functional_gradient"],
        integrated_gradient=arrays["integrated_gradient"], x_final=arrays["x_final"],
        loss=_loss_value(prob, arrays["x_final"]), error=error, method="DOP853 (forward dense output, backward "
        "augmented adjoint)", stats=stats)


# ----------------------------------------------------------------------------------------------------------------------
# fixed-step RK4 + Richardson route


def _rk4_grid(prob: _Problem, n_steps: int) -> dict:
    """Classical RK4: x forward on the 2N-step grid, (p, s) backward on the N-step grid. Values at the N+1 nodes."""
    field, theta, d, n_p, T = prob.field, prob.theta, prob.d, prob.n_p, prob.T
    m = 2 * n_steps
    hf = T / m
    xf = np.empty((m + 1, d))
    xf[0] = prob.x0

    def f(t, x):
        return np.asarray(field.f(x, theta(t)), dtype=np.float64)

    for k in range(m):
        t, x = k * hf, xf[k]
        k1 = f(t, x)
        k2 = f(t + hf / 2, x + hf / 2 * k1)
        k3 = f(t + hf / 2, x + hf / 2 * k2)
        k4 = f(t + hf, x + hf * k3)
        xf[k + 1] = x + hf / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    def g(j, y):
        # backward rhs at forward-grid node j (time j·hf)
        x, th, p = xf[j], theta(j * hf), y[:d]
        out = np.empty(d + n_p)
        out[:d] = -np.asarray(field.vjp_x(x, th, p), dtype=np.float64)
        out[d:] = -np.asarray(field.vjp_theta(x, th, p), dtype=np.float64)
        return out

    h = T / n_steps
    ys = np.empty((n_steps + 1, d + n_p))
    ys[n_steps, :d] = prob.grad_loss(xf[m])
    ys[n_steps, d:] = 0.0
    for n in range(n_steps, 0, -1):  # step from t_n to t_{n-1} with step −h; node of t_n on the fine grid is 2n
        y = ys[n]
        k1 = g(2 * n, y)
        k2 = g(2 * n - 1, y - h / 2 * k1)
        k3 = g(2 * n - 1, y - h / 2 * k2)
        k4 = g(2 * n - 2, y - h * k3)
        ys[n - 1] = y - h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    x_nodes = xf[::2]
    p_nodes = ys[:, :d]
    grads = np.array([field.vjp_theta(x_nodes[n], theta(n * h), p_nodes[n]) for n in range(n_steps + 1)],
                     dtype=np.float64).reshape(n_steps + 1, n_p)
    return {"x": x_nodes, "p": p_nodes, "functional_gradient": grads, "integrated_gradient": ys[0, d:].copy(),
            "x_final": xf[m].copy()}


def _rk4_richardson(prob: _Problem, n_steps: int) -> dict:
    coarse = _rk4_grid(prob, n_steps)
    fine = _rk4_grid(prob, 2 * n_steps)
    out = {}
    err = {}
    for q in _QUANTITIES:
        a = coarse[q]
        b = fine[q][::2] if q in ("x", "p", "functional_gradient") else fine[q]
        out[q] = (16.0 * b - a) / 15.0
        scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
        err[q] = float(np.max(np.abs(b - a), initial=0.0) / 15.0 + ROUNDING_FLOOR_ULPS * EPS * scale)
    out["error"] = err
    return out


def continuous_adjoint_rk4(field, theta, x0, T, loss, *, n_steps: int = 1024,
                           times=None) -> ContinuousAdjointResult:
    r"""Continuous adjoint by fixed-step classical RK4 with Richardson extrapolation (independent of DOP853).

    Same equations as :func:`continuous_adjoint`. x is integrated forward with step h/2 (h = T/N), (p, s) backward with
    step h, using x at the stage times t_{n+1}, t_{n+½}, t_n from the forward grid. This is done for N and 2N; each
    quantity is extrapolated as R = (16·A_{2N} − A_N)/15 and its error reported as |A_{2N} − A_N|/15 (+ rounding
    floor), see the module docstring. ``times`` (default: the N+1 grid nodes) must lie on the N-step grid.
    """
    prob = _make_problem(field, theta, x0, T, loss)
    n_steps = as_positive_integer(n_steps, "n_steps")
    grid = np.linspace(0.0, prob.T, n_steps + 1)
    if times is None:
        times, idx = grid, np.arange(n_steps + 1)
    else:
        times = _check_times(times, prob.T, n_steps + 1)
        idx = np.rint(times / prob.T * n_steps).astype(np.int64)
        if not np.allclose(grid[idx], times, rtol=0.0, atol=1e-12 * prob.T):
            raise ValueError(f"times must lie on the grid T·n/{n_steps} for continuous_adjoint_rk4")
    ref = _rk4_richardson(prob, n_steps)
    err = ref.pop("error")
    return ContinuousAdjointResult(
        times=times, x=ref["x"][idx], p=ref["p"][idx], functional_gradient=ref["functional_gradient"][idx],
        integrated_gradient=ref["integrated_gradient"], x_final=ref["x_final"],
        loss=_loss_value(prob, ref["x_final"]),
        error=AdjointErrorEstimate(f"rk4-richardson: N={n_steps}, {2 * n_steps}", **err),
        method="fixed-step RK4 + Richardson", stats={"rk4_steps": (n_steps, 2 * n_steps)})
