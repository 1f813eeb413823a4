"""Gradient checks that return evidence: finite differences, complex step, Taylor test, ``check_grad``.

Independent routes to a derivative, each with a known error law (``h`` = step, ``ε`` = machine epsilon 2.2e-16):

* central difference  D(h) = (f(x+hv) − f(x−hv)) / 2h = f'(x)·v + f'''[v,v,v] h²/6 + O(h⁴),  rounding ~ ε|f|/h;
* Richardson          R(h) = (4 D(h/2) − D(h)) / 3     = f'(x)·v + O(h⁴)   (the h² terms cancel);
* complex step        C(h) = Im f(x + i h v) / h       = f'(x)·v + O(h²)   with no subtraction, so h = 1e-30 makes it
  exact to rounding (Squire & Trapp, SIAM Rev. 40 (1998); Martins, Sturdza & Alonso, ACM TOMS 29 (2003)).
  It requires ``f`` to be the *holomorphic extension* of the real function: no ``abs``, ``real``, ``conj``, no
  comparisons on complex values, no casts to float.  A ``ComplexWarning`` raised inside ``f`` is turned into an error.
* Taylor test (pyadjoint's ``taylor_test``; Farrell et al., SIAM J. Sci. Comput. 35 (2013)): along a direction d,
  r0(h) = |J(x+hd) − J(x)| = O(h) and r1(h) = |J(x+hd) − J(x) − h⟨g,d⟩| = O(h²) iff g = ∇J(x); as h halves the
  observed rates log2(r(h)/r(h/2)) must approach 1 and 2.  A gradient error δ leaves r1 ≈ h|⟨δ,d⟩|: rate 1.

Every check validates its inputs and returns numbers or a result object with a readable ``repr``; only
``GradCheckResult.raise_if_failed()`` raises on a failed check.  At import time this module needs only NumPy;
:func:`check_grad` takes its default gradient from :func:`refimpl.ad.api.grad`.
"""
from dataclasses import dataclass, field
import warnings

import numpy as np

__all__ = ["central_difference", "richardson_difference", "complex_step", "fd_gradient", "complex_step_gradient",
           "taylor_test", "check_grad", "TaylorResult", "GradCheckResult"]
_EPS = np.finfo(np.float64).eps
_ComplexWarning = getattr(np, "exceptions", np).ComplexWarning
# Default steps balance truncation against rounding for O(1) derivatives (Nocedal & Wright §8.1): central difference
# h²/6 ~ ε/h → h ~ ε^(1/3) ≈ 6.1e-6; Richardson h⁴ ~ ε/h → h ~ ε^(1/5) ≈ 7.4e-4 (and h/2), error ≈ 1e-12 relative.
CENTRAL_STEP = _EPS ** (1 / 3)
RICHARDSON_STEP = _EPS ** (1 / 5)
COMPLEX_STEP = 1e-30
TAYLOR_NOISE_FACTOR = 1e3  # r1 below 1e3·ε·(|J(x)| + |J(x+hd)| + h|⟨g,d⟩|) is rounding noise: no rate is read from it


# ---------------------------------------------------------------------------------------------- input validation
def _as_array(x, name, allow_complex=False):
    """x as a non-empty finite float64 (or complex128) array; TypeError/ValueError naming ``name``."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise TypeError(f"{name} must be a numeric array or scalar ({exc})") from None
    if arr.dtype.kind not in "iuf" + ("c" if allow_complex else ""):
        kind = "real or complex" if allow_complex else "real"
        raise TypeError(f"{name} must be a {kind} numeric array or scalar, got dtype {arr.dtype}")
    arr = arr.astype(np.complex128 if arr.dtype.kind == "c" else np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {np.sum(~np.isfinite(arr))} non-finite entries")
    return arr


def _as_point(f, x, allow_complex=False):
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    return _as_array(x, "x", allow_complex)


def _as_direction(v, x, name, allow_complex=False):
    v = _as_array(v, name, allow_complex)
    if v.shape != x.shape:
        raise ValueError(f"{name} must have the shape of x {x.shape}, got {v.shape}")
    if not np.any(v):
        raise ValueError(f"{name} must be non-zero")
    return v


def _as_step(eps, name="eps"):
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(eps).__name__}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"{name} must be finite and > 0, got {eps}")
    return float(eps)


def _default_step(x, v, base):
    """base · max(1, |x|_∞) / |v|_∞: the step moves x by ``base`` relative to its size (absolute near 0)."""
    return base * max(1.0, float(np.max(np.abs(x)))) / float(np.max(np.abs(v)))


def _evaluate(f, x, scalar):
    """f(x) on a copy of x (f cannot corrupt the caller's array), checked numeric and finite (and 0-d if scalar)."""
    out = np.asarray(f(x.copy()))
    if out.dtype.kind not in "iufc":
        raise TypeError(f"f must return a numeric value, got dtype {out.dtype} (a taped Variable? use .value)")
    if scalar and out.ndim != 0:
        raise ValueError(f"f must return a scalar, got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError("f returned a non-finite value at an evaluation point")
    return out


def _real_scalar(f, x):
    out = _evaluate(f, x, scalar=True)
    if out.dtype.kind == "c" and out.imag != 0:
        raise ValueError(f"f must be real-valued at real x, got {out[()]}")
    return float(out.real)


# ---------------------------------------------------------------------------------------- directional derivatives
def _central(f, x, v, h, scalar):
    plus, minus = _evaluate(f, x + h * v, scalar), _evaluate(f, x - h * v, scalar)
    if plus.shape != minus.shape:
        raise ValueError(f"f must return the same shape at every point, got {plus.shape} and {minus.shape}")
    return (plus - minus) / (2 * h)


def central_difference(f, x, v, eps=None):
    """Directional derivative f'(x)·v by D(h) = (f(x+hv) − f(x−hv)) / 2h, error f'''[v,v,v]h²/6 + O(ε|f|/h).

    ``f`` may return an array (the result has its shape); x and v may be complex.  Default ``eps`` =
    ε^(1/3)·max(1, |x|_∞)/|v|_∞ (≈ 6.1e-6 for unit x, v) balances the h² truncation against the ε/h rounding:
    expect ≈ 1e-10 relative accuracy for well-scaled f.
    """
    x = _as_point(f, x, allow_complex=True)
    v = _as_direction(v, x, "v", allow_complex=True)
    h = _default_step(x, v, CENTRAL_STEP) if eps is None else _as_step(eps)
    return _central(f, x, v, h, scalar=False)[()]


def richardson_difference(f, x, v, eps=None):
    """Richardson-extrapolated central difference R(h) = (4 D(h/2) − D(h)) / 3 = f'(x)·v + O(h⁴).

    D(h) = f'·v + c₂h² + c₄h⁴ + …, so 4D(h/2) − D(h) = 3f'·v − (3/4)c₄h⁴.  Default ``eps`` = ε^(1/5)·max(1, |x|_∞)/|v|_∞
    (≈ 7.4e-4): h⁴ ≈ 3e-13 matches the rounding ε/h ≈ 3e-13.  Array outputs and complex x, v as in ``central_difference``.
    """
    x = _as_point(f, x, allow_complex=True)
    v = _as_direction(v, x, "v", allow_complex=True)
    h = _default_step(x, v, RICHARDSON_STEP) if eps is None else _as_step(eps)
    return ((4 * _central(f, x, v, h / 2, False) - _central(f, x, v, h, False)) / 3)[()]


def _complex_step(f, x, v, h, scalar):
    with warnings.catch_warnings():
        warnings.simplefilter("error", _ComplexWarning)
        try:
            out = _evaluate(f, x + 1j * h * v, scalar)
        except _ComplexWarning as exc:
            raise TypeError(f"f discarded an imaginary part ({exc}); complex step needs the holomorphic "
                            "extension of f") from None
    if out.dtype.kind != "c":
        raise TypeError(f"f returned dtype {out.dtype} for a complex argument; complex step needs the holomorphic "
                        "extension of f (it must propagate the imaginary part)")
    return out.imag / h


def complex_step(f, x, v, eps=COMPLEX_STEP):
    """Directional derivative f'(x)·v ≈ Im f(x + i·eps·v) / eps for real x, v (Squire & Trapp 1998).

    Im f(x+ihv) = h f'(x)·v − h³ f'''[v,v,v]/6 + …: no difference is taken, so eps = 1e-30 leaves the h² term at
    1e-60 and the result is exact to rounding.  ``f`` must be the holomorphic extension of the real function (see the
    module docstring); a real-dtype result or a ComplexWarning inside f raises TypeError.  Array outputs allowed.
    """
    x = _as_point(f, x)
    return _complex_step(f, x, _as_direction(v, x, "v"), _as_step(eps), scalar=False)[()]


# ------------------------------------------------------------------------------------------------- full gradients
def _unit_vectors(x):
    for index in np.ndindex(x.shape):
        e = np.zeros(x.shape)
        e[index] = 1.0
        yield e


def _coordinate_differences(f, x, h):
    """D_k(h) = (f(x + h e_k) − f(x − h e_k)) / 2h for every entry k of x (scalar f), as an array of x's shape."""
    return np.array([_central(f, x, e, h, True) for e in _unit_vectors(x)]).reshape(x.shape)


def fd_gradient(f, x, eps=None, method="richardson"):
    """Gradient of a scalar f by finite differences along each coordinate (array of x's shape).

    ``method`` = "richardson" (4 evaluations per entry, O(h⁴)) or "central" (2 per entry, O(h²)); default ``eps`` as in
    ``richardson_difference`` / ``central_difference`` with |v|_∞ = 1.  For complex x the steps are real, so a
    holomorphic f gives ∂f/∂z_k.
    """
    x = _as_point(f, x, allow_complex=True)
    if method not in ("richardson", "central"):
        raise ValueError(f"method must be 'richardson' or 'central', got {method!r}")
    base = RICHARDSON_STEP if method == "richardson" else CENTRAL_STEP
    h = base * max(1.0, float(np.max(np.abs(x)))) if eps is None else _as_step(eps)
    if method == "central":
        return _coordinate_differences(f, x, h)
    return (4 * _coordinate_differences(f, x, h / 2) - _coordinate_differences(f, x, h)) / 3


def complex_step_gradient(f, x, eps=COMPLEX_STEP):
    """Gradient of a real scalar f at real x by complex step, one evaluation per entry (see ``complex_step``)."""
    x, h = _as_point(f, x), _as_step(eps)
    return np.array([_complex_step(f, x, e, h, True) for e in _unit_vectors(x)]).reshape(x.shape)


# -------------------------------------------------------------------------------------------------- Taylor test
def _last_finite(rates):
    finite = rates[np.isfinite(rates)]
    return float(finite[-1]) if finite.size else float("nan")


@dataclass(eq=False)
class TaylorResult:
    """Remainders r0, r1 of J along ``direction`` over the halving steps ``eps``, and their observed rates.

    ``rate1[k]`` = log2(r1[k]/r1[k+1]), NaN where either remainder is below ``noise_floor``; ``observed_rate1`` is the
    last resolved rate (the most asymptotic).  ``passed``: observed_rate1 ≥ 2 − rate_tol, or every r1 is at the noise
    floor (the linearisation is exact to rounding, e.g. J linear).
    """
    eps: np.ndarray
    direction: np.ndarray
    value: float
    directional_derivative: float
    remainder0: np.ndarray
    remainder1: np.ndarray
    rate0: np.ndarray
    rate1: np.ndarray
    noise_floor: np.ndarray
    rate_tol: float

    observed_rate0 = property(lambda self: _last_finite(self.rate0))
    observed_rate1 = property(lambda self: _last_finite(self.rate1))

    @property
    def passed(self):
        return bool(np.isnan(self.observed_rate1) or self.observed_rate1 >= 2 - self.rate_tol)

    def __repr__(self):
        lines = [f"TaylorResult({'passed' if self.passed else 'FAILED'}: r1 rate {self.observed_rate1:.3f} "
                 f"(need >= {2 - self.rate_tol:g}), r0 rate {self.observed_rate0:.3f} (expect 1))",
                 f"  {'eps':>10} {'r0':>11} {'rate0':>7} {'r1':>11} {'rate1':>7}"]
        for k, h in enumerate(self.eps):
            r0, r1 = (f"{r[k - 1]:7.3f}" if k else " " * 7 for r in (self.rate0, self.rate1))
            lines.append(f"  {h:10.3e} {self.remainder0[k]:11.3e} {r0} {self.remainder1[k]:11.3e} {r1}")
        return "\n".join(lines)


def _rates(r, resolved):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(resolved[:-1] & resolved[1:], np.log2(r[:-1] / r[1:]), np.nan)


def taylor_test(f, x, gradient, direction=None, *, eps0=None, n_eps=14, seed=0, rate_tol=0.2):
    """Taylor test of ``gradient`` = ∇J(x) for a real scalar J = f (pyadjoint-style; see the module docstring).

    Steps h_k = eps0·2^-k, k < n_eps; default eps0 = 2^-6·max(1, |x|_∞)/|d|_∞ and 14 steps, so h runs 1.6e-2 … 1.9e-6
    (relative): r1 = b·h² (b = dᵀ∇²J d/2) stays above the rounding floor ~1e3·ε|J| down to h_min when |b| ≳ 0.06|J|,
    and a gradient error a = ⟨δ,d⟩ shows as rate ≈ 1 once h ≪ |a/b|.  The default ``rate_tol`` 0.2 accepts rate 1.8:
    r1 = |a·h + b·h²| gives rate ≥ 1.8 only if |a| < |b|·h_min/5.7, so errors |a| ≳ 3e-7·|b|·scale are flagged (the
    componentwise comparison in ``check_grad`` is far more sensitive).  Limitation: if dᵀ∇²J d ≈ 0 but the third
    derivative is not, r1 can cross zero and a correct gradient can show a low rate; try another ``seed``.
    ``direction`` defaults to a standard normal draw from ``seed`` (int or numpy Generator).
    """
    x = _as_point(f, x)
    g = _as_array(gradient, "gradient")
    if g.shape != x.shape:
        raise ValueError(f"gradient must have the shape of x {x.shape}, got {g.shape}")
    if direction is None:
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer, np.random.Generator)):
            raise TypeError(f"seed must be an int or a numpy Generator, got {type(seed).__name__}")
        direction = np.random.default_rng(seed).standard_normal(x.shape)
    d = _as_direction(direction, x, "direction")
    h0 = _default_step(x, d, 2.0 ** -6) if eps0 is None else _as_step(eps0, "eps0")
    if isinstance(n_eps, (bool, np.bool_)) or not isinstance(n_eps, (int, np.integer)) or n_eps < 3:
        raise ValueError(f"n_eps must be an integer >= 3, got {n_eps!r}")
    if not (isinstance(rate_tol, (int, float)) and 0 < rate_tol < 1):
        raise ValueError(f"rate_tol must be in (0, 1), got {rate_tol!r}")
    J0, dJ = _real_scalar(f, x), float(np.sum(g * d))
    eps = h0 * 2.0 ** -np.arange(n_eps)
    J = np.array([_real_scalar(f, x + h * d) for h in eps])
    r0, r1 = np.abs(J - J0), np.abs(J - J0 - eps * dJ)
    floor = TAYLOR_NOISE_FACTOR * _EPS * (abs(J0) + np.abs(J) + eps * abs(dJ))
    return TaylorResult(eps, d, J0, dJ, r0, r1, _rates(r0, r0 > floor), _rates(r1, r1 > floor), floor, float(rate_tol))


# ---------------------------------------------------------------------------------------------------- check_grad
def _errors(g, ref):
    """(per-entry |g − ref|, max abs error, max abs error / |ref|_∞)."""
    err, scale = np.abs(g - ref), float(np.max(np.abs(ref)))
    worst = float(np.max(err))
    return err, worst, (worst / scale if scale > 0 else (0.0 if worst == 0 else float("inf")))


@dataclass(eq=False)
class GradCheckResult:
    """Evidence from ``check_grad``: the gradient under test against Richardson FD, complex step and a Taylor test.

    ``fd_errors`` / ``complex_step_errors`` are (per-entry |g − ref|, max abs, max abs / |ref|_∞); ``worst_index`` is
    the entry farthest from the most accurate reference (complex step if computed, else FD); ``failures`` lists the
    criteria that failed (empty = ``passed``).
    """
    gradient: np.ndarray
    value: float
    fd_gradient: np.ndarray
    fd_error_estimate: np.ndarray   # |R(h) − R(2h)| per entry: a conservative estimate of the FD error
    fd_eps: float
    complex_step_gradient: np.ndarray | None
    complex_step_note: str          # why complex step was skipped, or ""
    taylor: TaylorResult | None
    rtol: float
    complex_rtol: float
    atol: float
    failures: list = field(default_factory=list)

    passed = property(lambda self: not self.failures)
    fd_errors = property(lambda self: _errors(self.gradient, self.fd_gradient))
    complex_step_errors = property(lambda self: None if self.complex_step_gradient is None
                                   else _errors(self.gradient, self.complex_step_gradient))
    reference = property(lambda self: self.fd_gradient if self.complex_step_gradient is None
                         else self.complex_step_gradient)

    @property
    def worst_index(self):
        flat = np.argmax(np.abs(self.gradient - self.reference))
        return tuple(int(i) for i in np.unravel_index(flat, self.gradient.shape))

    def __repr__(self):
        _, fd_abs, fd_rel = self.fd_errors
        lines = [f"GradCheckResult: {'PASSED' if self.passed else 'FAILED'} (shape {self.gradient.shape}, "
                 f"f(x) = {self.value:.6g}, atol {self.atol:.2e})",
                 f"  vs Richardson FD (eps {self.fd_eps:.2e}, est. FD error {np.max(self.fd_error_estimate):.1e}): "
                 f"max abs err {fd_abs:.3e}, max rel err {fd_rel:.3e} (rtol {self.rtol:g})"]
        if self.complex_step_gradient is None:
            lines.append(f"  vs complex step: skipped ({self.complex_step_note})")
        else:
            _, cs_abs, cs_rel = self.complex_step_errors
            lines.append(f"  vs complex step (eps {COMPLEX_STEP:g}): max abs err {cs_abs:.3e}, max rel err "
                         f"{cs_rel:.3e} (rtol {self.complex_rtol:g})")
        i = self.worst_index
        lines.append(f"  worst index {i}: gradient {self.gradient[i]:.17g}, reference {self.reference[i]:.17g}")
        if self.taylor is not None:
            lines.append("  Taylor test: " + repr(self.taylor).replace("\n", "\n  "))
        return "\n".join(lines + [f"  failure: {msg}" for msg in self.failures])

    def raise_if_failed(self):
        """Raise AssertionError carrying this report if the check failed; return self otherwise."""
        if not self.passed:
            raise AssertionError("gradient check failed\n" + repr(self))
        return self


def check_grad(f, x, grad=None, *, rtol=1e-6, complex_rtol=1e-10, atol=None, eps=None, use_complex_step=None,
               taylor=True, seed=0):
    """Check ``grad`` (callable x ↦ ∇f(x), or the gradient array) of a real scalar f at real x; returns evidence.

    ``grad`` defaults to the tape gradient ``refimpl.ad.grad(f)``.  Criteria, each recorded in ``failures``:
    |g − g_fd| ≤ atol + rtol·|g_fd|_∞ entrywise against Richardson FD (step ``eps``, default as in ``fd_gradient``;
    its error is ≈ 1e-12·scale, so rtol 1e-6 leaves margin for badly scaled f); the same against complex step with
    ``complex_rtol`` (exact to rounding); the Taylor r1 rate (``taylor_test``, direction from ``seed``).
    ``atol`` defaults to the FD resolution 10·max_k |R_k(h) − R_k(2h)| + 100·ε·(|f(x)|/h + |g_fd|_∞): the difference
    overestimates the truncation error 15× (it falls 16× per halving) and samples the rounding error, which the
    factor 10 covers when f cancels internally; the last term is the rounding ε·|f(x ± h e_k)|/h.  It matters only
    where ∇f ≈ 0 (below rtol·|g_fd|_∞).  ``use_complex_step``: True = required, False = skipped, None = used if f
    accepts complex input and its complex-step gradient agrees with FD (else f is not holomorphically extended; the
    reason is recorded).  Cost: 6 evaluations per entry for FD, 1 for complex step, 15 for the Taylor test.
    """
    x = _as_point(f, x)
    for name, tol in (("rtol", rtol), ("complex_rtol", complex_rtol)):
        _as_step(tol, name)
    if use_complex_step not in (None, True, False):
        raise TypeError(f"use_complex_step must be None, True or False, got {use_complex_step!r}")
    value = _real_scalar(f, x)
    if grad is None:
        from refimpl.ad.api import grad as tape_grad  # lazy: at import time this module needs only NumPy
        grad = tape_grad(f)
    g = _as_array(grad(x.copy()) if callable(grad) else grad, "grad", allow_complex=True)
    if g.shape != x.shape:
        raise ValueError(f"grad must have the shape of x {x.shape}, got {g.shape}")
    if np.any(g.imag):
        raise ValueError("grad must be real for a real f at real x, got non-zero imaginary parts")
    g = g.real
    h = RICHARDSON_STEP * max(1.0, float(np.max(np.abs(x)))) if eps is None else _as_step(eps)
    # R(h) and R(2h) share D(h): two more calls per entry buy the error estimate |R(h) − R(2h)|
    d_half, d_one, d_two = (_coordinate_differences(f, x, s) for s in (h / 2, h, 2 * h))
    g_fd = (4 * d_half - d_one) / 3
    fd_error_estimate = np.abs(g_fd - (4 * d_one - d_two) / 3)
    if atol is None:
        atol = 10 * np.max(fd_error_estimate) + 100 * _EPS * (abs(value) / h + np.max(np.abs(g_fd)))
    elif isinstance(atol, (bool, np.bool_)) or not isinstance(atol, (int, float)) or not 0 <= atol < np.inf:
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}")
    g_cs, note = None, "not requested"
    if use_complex_step is not False:
        try:
            g_cs = complex_step_gradient(f, x)
        except (TypeError, ValueError) as exc:
            if use_complex_step:
                raise
            note = f"f does not accept complex input: {exc}"
        if use_complex_step is None and g_cs is not None and np.any(np.abs(g_cs - g_fd) > atol + rtol * np.max(
                np.abs(g_fd))):
            g_cs, note = None, "complex step disagrees with Richardson FD: f is not its holomorphic extension"
    result = GradCheckResult(g, value, g_fd, fd_error_estimate, h, g_cs, note if g_cs is None else "",
                             taylor_test(f, x, g, seed=seed) if taylor else None, float(rtol), float(complex_rtol),
                             float(atol))
    if np.any(result.fd_errors[0] > atol + rtol * np.max(np.abs(g_fd))):
        result.failures.append("gradient differs from Richardson FD beyond atol + rtol·|g_fd|_∞")
    if g_cs is not None and np.any(result.complex_step_errors[0] > atol + complex_rtol * np.max(np.abs(g_cs))):
        result.failures.append("gradient differs from complex step beyond atol + complex_rtol·|g_cs|_∞")
    if result.taylor is not None and not result.taylor.passed:
        result.failures.append(f"Taylor test: r1 rate {result.taylor.observed_rate1:.3f} < {2 - result.taylor.rate_tol}")
    return result
