r"""Post-processing of discrete (AD) gradients into estimates of the continuous gradient δL/δθ(t), and a diagnostic of
the oscillations the raw ones carry — the phenomenon and the corrections of [A] (Xu, Chen, Li, *Correcting
auto-differentiation in neural-ODE training*, arXiv 2306.02192), in the form derived in
docs/theory/oscillations-and-corrections.md.

Input is always the exact gradient :math:`G_r = \partial L_h/\partial\theta_r` of the discrete loss with respect to the
parameter samples of :mod:`refimpl.ode.samples` (from :func:`refimpl.ode.adjoint_recursions.discrete_adjoint` or from
the tape), together with its :class:`~refimpl.ode.samples.ParameterSamples` (sample times :math:`\tau_r`, stage weights
:math:`w_r`, index maps). Every function returns a :class:`GradientSamples` — values at times — so all estimates are
compared with :math:`\delta L/\delta\theta` the same way (:func:`gradient_error`, :func:`oscillation_amplitude`).

Estimates (formulas; provenance in brackets):

``per_step_gradient``       :math:`G_r/h` — the gradient read "per unit step", the "raw" reading for the 2-stage
                            ERK with stage-time samples (it carries the stage weight :math:`b_i`).
``normalised_gradient``     :math:`g_r = G_r/(h\,w_r)` [docs/theory/discrete-adjoint.md]; NaN where :math:`w_r = 0`.
``leapfrog_corrected_gradient``  :math:`\hat g(t_{n+1/2}) = (G_n + G_{n+1})/(2h) = g_n + g_{n+1}` [derived below;
                            docs/theory/oscillations-and-corrections.md]; ``variant="average"`` gives
                            :math:`\tfrac12(g_n + g_{n+1})` for comparison.
``erk_corrected_gradient``  :math:`\hat g = G_r/(h\,w_r)` at every stage sample (:math:`w_r = b_i` for a stage time
                            used by one stage only) [docs/theory/oscillations-and-corrections.md]; samples with
                            :math:`w_r = 0` (stage 1 of the midpoint rule) carry no first-order information and are
                            *reconstructed* by linear interpolation in time from the neighbouring samples with :math:`w
                            \ne 0` (linear extrapolation at the ends).
``time_average_gradient``   constant layout only: :math:`G/T`, the time average of :math:`\delta L/\delta\theta` over
                            [0, T] [derived below].
``applicable_estimates``    all of the above that apply to a scheme and layout, by name.
``at_times``                piecewise-linear interpolation (linear extrapolation beyond the ends) of any estimate to
                            requested times, e.g. the grid points a training loop updates.

Non-uniform grids (Runge–Kutta only): :math:`h\,w_r` becomes :math:`\sum h_n b_i` over the uses of sample r
(``samples.step_weights``), so ``normalised_gradient`` and ``erk_corrected_gradient`` apply unchanged; "G/h" has no
single h and is not formed.

**Constant layout** (one θ for every evaluation; docs/theory/discrete-adjoint.md §10). Its gradient is the sum of all
evaluations' contributions, :math:`G = \partial L_h/\partial\theta \to dL/d\theta = \int_0^T \delta L/\delta\theta\,dt`
(the discrete loss converges with its θ-derivative for a fixed θ), so :math:`G/T` is the time average of
:math:`\delta L/\delta\theta` (``time_average_gradient``); for every consistent scheme the end point of
:math:`\dot x = \theta` is :math:`x_0 + T\theta` exactly, i.e. T is the sensitivity that normalises. The general
:math:`G/(h\,w_0)` coincides with it when :math:`h\,w_0 = T`: every ERK (:math:`w_0 = N`) and every LMM with
:math:`\sigma(1) = 1` (Adams); leapfrog has :math:`w_0 = 2N - 1`, so :math:`G/(h\,w_0) \approx \tfrac12 G/T`. There is
no oscillation between samples to correct: the leapfrog and ERK corrections and "G/h" do not apply (ValueError).

The leapfrog correction is the pair *sum* (derived below: it converges to δL/δθ); the pair *average*, which converges
to ½δL/δθ, is implemented too for comparison, and the validation (``validation/neural_ode_oscillations.py``) reports
both.

**Derivation, leapfrog** (derived here; docs/theory/oscillations-and-corrections.md). For :math:`x_{n+1} = x_{n-1} +
2hf(x_n,\theta_n)` the discrete adjoint is
:math:`\lambda_n = \lambda_{n+2} + 2h\,J_n^{\mathsf T}\lambda_{n+1}` (:math:`J_n = \partial_x f(x_n, \theta_n)`), :math:`\lambda_N =
\nabla\Phi`, :math:`\lambda_{N+1} = 0`, and :math:`G_n = 2h\,\partial_\theta f(x_n,\theta_n)^{\mathsf T}\lambda_{n+1}`
(see :mod:`refimpl.ode.adjoint_recursions`). Insert :math:`\lambda_n = u(t_n) + (-1)^n v(t_n)` with smooth :math:`u, v`:
the smooth part gives :math:`-2hu' = 2hJ^{\mathsf T}u`, i.e. :math:`u' = -J^{\mathsf T}u`, the alternating part
:math:`v' = +J^{\mathsf T}v`, up to :math:`O(h)`. The terminal data give :math:`u + (-1)^N v = \nabla\Phi` and
:math:`u - (-1)^N v = 0` at :math:`T`, so :math:`u(T) = \nabla\Phi/2` and :math:`u = p/2` (:math:`p` the continuous
adjoint). Hence :math:`g_n = G_n/(2h) = \partial_\theta f_n^{\mathsf T}(p/2 + (-1)^{n+1}v)(t_{n+1}) + O(h)`: the AD
gradient oscillates around *half* of :math:`\delta L/\delta\theta` and never converges. In :math:`g_n + g_{n+1}` the
alternating parts cancel to :math:`O(h)` and the smooth parts add up to :math:`\partial_\theta f^{\mathsf T}p =
\delta L/\delta\theta` at :math:`t_{n+1/2}`, error :math:`O(h)`: first order. The average :math:`\tfrac12(g_n +
g_{n+1})` converges to :math:`\tfrac12\delta L/\delta\theta` instead. Only pairs of samples used *only* by leapfrog steps
(weight exactly 2, untouched by the starter) are combined; the starter's samples are not (their weight and adjoint
differ), and :func:`at_times` extrapolates there.

**Derivation, 2-stage ERK** (derived here; docs/theory/oscillations-and-corrections.md). With samples at :math:`t_n` and
:math:`t_n + \alpha h`, the ERK adjoint (:mod:`refimpl.ode.adjoint_recursions`) gives :math:`\bar k_2 =
hb_2\lambda_{n+1}`, :math:`\bar k_1 = hb_1\lambda_{n+1} + h\alpha J_2^{\mathsf T}\bar k_2`, so :math:`G^{(2)} =
hb_2\,\partial_\theta f(X_2)^{\mathsf T}\lambda_{n+1}` and
:math:`G^{(1)} = hb_1\,\partial_\theta f(x_n)^{\mathsf T}\lambda_{n+1} + h^2\alpha b_2\,\partial_\theta
f^{\mathsf T}J_2^{\mathsf T}\lambda_{n+1}`. The one-step adjoint :math:`\lambda_{n+1}` converges to :math:`p` (no
parasitic mode), so :math:`G/h \approx b_i\,\delta L/\delta\theta` (wrong by the factor :math:`b_i`, alternating between
consecutive samples), while :math:`G^{(i)}/(hb_i) = \delta L/\delta\theta + O(h)`, with the stage-1 constant containing
:math:`\alpha b_2/b_1`, which blows up as :math:`\alpha \to 1/2` (:math:`b_1 \to 0`). At :math:`\alpha = 1/2`
(midpoint), :math:`G^{(1)} = O(h^2)` holds no information on :math:`\delta L/\delta\theta(t_n)`: reconstructed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refimpl.ode.multistep import LinearMultistep
from refimpl.ode.samples import ParameterSamples
from refimpl.ode.tableau import ButcherTableau

__all__ = [
    "GradientSamples",
    "GradientError",
    "per_step_gradient",
    "normalised_gradient",
    "leapfrog_corrected_gradient",
    "erk_corrected_gradient",
    "at_times",
    "alternating_component",
    "oscillation_amplitude",
    "gradient_error",
    "observed_rates",
    "applicable_estimates",
    "time_average_gradient",
    "LEAPFROG_VARIANTS",
]

LEAPFROG_VARIANTS = ("sum", "average")


@dataclass(frozen=True, eq=False)
class GradientSamples:
    """An estimate of δL/δθ at ``times`` (m,), increasing: ``values`` (m, p); ``label`` says which estimate;
    ``reconstructed`` (m,) bool marks values obtained by interpolation rather than from their own sample."""

    times: np.ndarray
    values: np.ndarray
    label: str
    reconstructed: np.ndarray

    def __repr__(self) -> str:
        return (f"GradientSamples({self.label!r}, m={self.times.size}, p={self.values.shape[1]}, "
                f"reconstructed={int(self.reconstructed.sum())})")


@dataclass(frozen=True)
class GradientError:
    """Distance of an estimate from the reference: ``max_error`` = max over samples and components of |ĝ − δL/δθ|,
    ``l2_error`` = (∫|ĝ − δL/δθ|² dt)^{1/2} by the trapezoidal rule over the sample times (|·| Euclidean over the
    components), ``worst_time`` where the max is attained, ``reference_max`` = max|δL/δθ| (scale), and
    ``alternating`` = :func:`oscillation_amplitude` of the estimate."""

    max_error: float
    l2_error: float
    worst_time: float
    reference_max: float
    alternating: float

    def __repr__(self) -> str:
        return (f"GradientError(max {self.max_error:.3e} at t={self.worst_time:.4g}, L2 {self.l2_error:.3e}, "
                f"(-1)^n amplitude {self.alternating:.3e}, max|ref| {self.reference_max:.3g})")


# ----------------------------------------------------------------------------------------------------------------------
# argument checks


def _check(grad_theta, samples) -> np.ndarray:
    if not isinstance(samples, ParameterSamples):
        raise TypeError(f"samples must be a refimpl.ode.samples.ParameterSamples, got {type(samples).__name__}")
    if isinstance(grad_theta, (str, bytes)) or grad_theta is None:
        raise TypeError(f"grad_theta must be a real 2-D array, got {type(grad_theta).__name__}")
    G = np.asarray(grad_theta)
    if G.dtype == object:
        G = G.astype(np.float64)  # exact (Fraction) gradients: the estimates are float
    if not (np.issubdtype(G.dtype, np.floating) or np.issubdtype(G.dtype, np.integer)):
        raise TypeError(f"grad_theta must be a real array, got dtype {G.dtype}")
    if G.ndim != 2 or G.shape[0] != samples.n_samples:
        raise ValueError(f"grad_theta must have shape (n_samples, p) = ({samples.n_samples}, p) for {samples!r}, "
                         f"got {G.shape}")
    G = np.array(G, dtype=np.float64)
    if not np.all(np.isfinite(G)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(G))[0])
        raise ValueError(f"grad_theta contains NaN or inf (first at index {bad})")
    return G


def _result(times, values, label, reconstructed=None) -> GradientSamples:
    times = np.asarray(times, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    rec = np.zeros(times.size, dtype=bool) if reconstructed is None else np.asarray(reconstructed, dtype=bool)
    out = GradientSamples(times[order].copy(), np.asarray(values, dtype=np.float64)[order].copy(), label,
                          rec[order].copy())
    for a in (out.times, out.values, out.reconstructed):
        a.flags.writeable = False
    return out


# ----------------------------------------------------------------------------------------------------------------------
# estimates


def _not_constant(samples: ParameterSamples, what: str) -> None:
    if samples.layout == "constant":
        raise ValueError(f"samples: {what} does not apply to the constant layout (one sample for every step; nothing "
                         f"oscillates between samples): use normalised_gradient or time_average_gradient")


def per_step_gradient(grad_theta, samples: ParameterSamples) -> GradientSamples:
    r""":math:`G_r/h` at the sample times :math:`\tau_r` (no stage weight; the "raw" reading for stage-time ERK).
    Uniform grid, stage or step layout only (ValueError naming ``samples`` otherwise)."""
    G = _check(grad_theta, samples)
    _not_constant(samples, "G/h")
    if samples.grid is not None:
        raise ValueError("samples: G/h needs a single step h; on a non-uniform grid use normalised_gradient "
                         "(G_r / sum of h_n b_i)")
    return _result(samples.times, G / float(samples.h), "G/h")


def normalised_gradient(grad_theta, samples: ParameterSamples) -> GradientSamples:
    r"""The normalised AD gradient :math:`g(\tau_r) = G_r/(h\,w_r)` (docs/theory/discrete-adjoint.md): :math:`w_r` is
    the stage weight of sample :math:`r` summed over every step that uses it (:mod:`refimpl.ode.samples`). NaN rows
    where :math:`w_r = 0`. On a non-uniform grid :math:`h\,w_r` is :math:`\sum h_n b_i` over the uses of r
    (``samples.step_weights``). Same formula as
    :meth:`refimpl.ode.adjoint_recursions.DiscreteAdjoint.normalised_gradient`."""
    G = _check(grad_theta, samples)
    w = samples.weights
    out = np.full(G.shape, np.nan)
    nz = w != 0
    out[nz] = G[nz] / samples.step_weights[nz, None]
    return _result(samples.times, out, "G/(h w)")


def time_average_gradient(grad_theta, samples: ParameterSamples) -> GradientSamples:
    r"""Constant layout: :math:`G/T \approx \frac1T\int_0^T \delta L/\delta\theta\,dt` (module docstring: the
    gradient of a constant θ is the integral of the continuous gradient), one row at ``samples.times[0]`` = 0 (the
    constant sample has no time). ValueError naming ``samples`` for other layouts."""
    G = _check(grad_theta, samples)
    if samples.layout != "constant":
        raise ValueError(f"samples: the time average G/T is for the constant layout, got layout {samples.layout!r}")
    return _result(samples.times, G / float(samples.T), "G/T (time average)")


def _is_leapfrog(method) -> bool:
    return (isinstance(method, LinearMultistep) and [float(a) for a in method.alpha] == [-1.0, 0.0, 1.0]
            and [float(b) for b in method.beta] == [0.0, 2.0])


def leapfrog_corrected_gradient(grad_theta, samples: ParameterSamples, variant: str = "sum") -> GradientSamples:
    r"""Leapfrog correction (docs/theory/oscillations-and-corrections.md; phenomenon [A]):
    :math:`\hat g(t_{m+1/2}) = (G_m + G_{m+1})/(2h)` for every pair of consecutive grid samples used only by leapfrog
    steps (stage weight 2, not used by the starter), at the midpoint :math:`t_{m+1/2}`. ``variant="average"``:
    :math:`(G_m + G_{m+1})/(4h) = \tfrac12(g_m + g_{m+1})` (wrong by the factor ½, kept for comparison). Derivation in
    the module docstring. Values at grid points:
    :func:`at_times`.
    """
    G = _check(grad_theta, samples)
    _not_constant(samples, "the leapfrog correction")
    if not _is_leapfrog(samples.method):
        raise ValueError(f"samples: the leapfrog correction needs the leapfrog method (alpha = (-1, 0, 1), beta = "
                         f"(0, 2)), got {samples.method!r}")
    if variant not in LEAPFROG_VARIANTS:
        raise ValueError(f"variant must be one of {LEAPFROG_VARIANTS}, got {variant!r}")
    starter_rows = set(int(r) for r in np.asarray(samples.stage_index).ravel())
    gi = samples.grid_index
    pure = [gi[m] >= 0 and int(gi[m]) not in starter_rows and samples.weights[int(gi[m])] == 2.0
            for m in range(samples.N)]
    h = float(samples.h)
    scale = 2.0 * h if variant == "sum" else 4.0 * h
    times, values = [], []
    for m in range(samples.N - 1):
        if pure[m] and pure[m + 1]:
            times.append(0.5 * (samples.times[int(gi[m])] + samples.times[int(gi[m + 1])]))
            values.append((G[int(gi[m])] + G[int(gi[m + 1])]) / scale)
    if len(times) < 2:
        raise ValueError(f"samples: N = {samples.N} leaves fewer than two leapfrog-only sample pairs")
    return _result(times, np.array(values), f"leapfrog pair-{variant}")


def erk_corrected_gradient(grad_theta, samples: ParameterSamples) -> GradientSamples:
    r"""Runge–Kutta stage-weight correction (docs/theory/oscillations-and-corrections.md): :math:`\hat g(\tau_r) =
    G_r/(h\,w_r)` at every sample with
    :math:`w_r \ne 0` (:math:`w_r = b_i` for a stage time used by stage :math:`i` of one step; shared grid times sum
    their weights). Samples with :math:`w_r = 0` (stage 1 of the midpoint rule) are *reconstructed*: linear
    interpolation in time between the nearest samples with :math:`w \ne 0` on each side, linear extrapolation from the
    two nearest at an end (marked in ``reconstructed``). On a non-uniform grid :math:`h\,w_r` is
    ``samples.step_weights`` (:math:`\sum h_n b_i`)."""
    G = _check(grad_theta, samples)
    _not_constant(samples, "the stage-weight correction")
    if not isinstance(samples.method, ButcherTableau):
        raise ValueError(f"samples: the stage-weight correction is for Runge-Kutta samples, got {samples.method!r}")
    w = samples.weights
    nz = w != 0
    if nz.sum() < 2:
        raise ValueError("samples: fewer than two samples with nonzero stage weight")
    out = np.empty(G.shape)
    out[nz] = G[nz] / samples.step_weights[nz, None]
    if not nz.all():
        good = GradientSamples(samples.times[nz], out[nz], "", np.zeros(int(nz.sum()), dtype=bool))
        out[~nz] = _interpolate(good, samples.times[~nz])
    return _result(samples.times, out, "ERK G/(h b_i)" + (" + reconstruction" if not nz.all() else ""), ~nz)


def _interpolate(est: GradientSamples, t: np.ndarray) -> np.ndarray:
    tt, v = est.times, est.values
    idx = np.clip(np.searchsorted(tt, t, side="right") - 1, 0, tt.size - 2)
    t0, t1 = tt[idx], tt[idx + 1]
    lam = ((t - t0) / (t1 - t0))[:, None]
    return (1.0 - lam) * v[idx] + lam * v[idx + 1]


def at_times(estimate: GradientSamples, times) -> GradientSamples:
    """``estimate`` at ``times`` by piecewise-linear interpolation in time (linear extrapolation from the two end
    samples beyond them); error O(h²·max|ĝ''|) on top of the estimate's own, so first-order estimates stay first
    order. Values that were NaN in ``estimate`` are ignored."""
    if not isinstance(estimate, GradientSamples):
        raise TypeError(f"estimate must be a GradientSamples, got {type(estimate).__name__}")
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if t.ndim != 1 or not np.all(np.isfinite(t)):
        raise ValueError("times must be a finite 1-D array")
    ok = np.all(np.isfinite(estimate.values), axis=1)
    if ok.sum() < 2:
        raise ValueError("estimate: fewer than two finite samples to interpolate")
    good = GradientSamples(estimate.times[ok], estimate.values[ok], estimate.label, estimate.reconstructed[ok])
    inside = np.isin(t, good.times)
    return _result(t, _interpolate(good, t), estimate.label + " (interpolated)", ~inside)


# ----------------------------------------------------------------------------------------------------------------------
# diagnostics


def alternating_component(values) -> np.ndarray:
    r"""The :math:`(-1)^n` component of a sequence :math:`g_n = s_n + (-1)^n q_n` with smooth :math:`s, q`:
    :math:`q_n \approx -(-1)^n(g_{n-1} - 2g_n + g_{n+1})/4` at the interior indices (derived: the second difference of
    the smooth part is :math:`O(h^2)`, that of the alternating part is :math:`-4(-1)^n q_n + O(h^2)`). Returns
    :math:`|q_n|` (Euclidean over components), shape (m − 2,). Rows with NaN are dropped first."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise ValueError(f"values must be 1-D or 2-D, got shape {v.shape}")
    v = v[np.all(np.isfinite(v), axis=1)]
    if v.shape[0] < 3:
        raise ValueError("values: need at least three finite rows")
    d2 = v[:-2] - 2.0 * v[1:-1] + v[2:]
    return np.linalg.norm(d2, axis=1) / 4.0


def oscillation_amplitude(values) -> float:
    """max of :func:`alternating_component`: the size of the (−1)ⁿ component of a sample sequence."""
    return float(np.max(alternating_component(values)))


def gradient_error(estimate: GradientSamples, reference) -> GradientError:
    """Distance of ``estimate`` from ``reference`` (an array (m, p) of δL/δθ at ``estimate.times``, or a callable
    times ↦ (m, p)). Rows where the estimate is NaN (zero stage weight, unreconstructed) are excluded."""
    if not isinstance(estimate, GradientSamples):
        raise TypeError(f"estimate must be a GradientSamples, got {type(estimate).__name__}")
    ref = np.asarray(reference(estimate.times) if callable(reference) else reference, dtype=np.float64)
    if ref.shape != estimate.values.shape:
        raise ValueError(f"reference must have shape {estimate.values.shape} (the estimate's), got {ref.shape}")
    if not np.all(np.isfinite(ref)):
        raise ValueError("reference contains NaN or inf")
    ok = np.all(np.isfinite(estimate.values), axis=1)
    if ok.sum() < 3:
        raise ValueError("estimate: fewer than three finite samples")
    t, e = estimate.times[ok], estimate.values[ok] - ref[ok]
    absmax = np.max(np.abs(e), axis=1)
    e2 = np.sum(e * e, axis=1)
    l2 = float(np.sqrt(np.sum(0.5 * (e2[1:] + e2[:-1]) * np.diff(t))))
    return GradientError(float(absmax.max()), l2, float(t[int(np.argmax(absmax))]), float(np.max(np.abs(ref[ok]))),
                         oscillation_amplitude(estimate.values[ok]))


def observed_rates(Ns, errors) -> np.ndarray:
    """Observed orders log(e_k/e_{k+1})/log(N_{k+1}/N_k) between consecutive refinements."""
    N = np.asarray(Ns, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    if N.shape != e.shape or N.ndim != 1 or N.size < 2:
        raise ValueError("Ns and errors must be 1-D of the same length ≥ 2")
    if np.any(N <= 0) or np.any(e <= 0) or not np.all(np.isfinite(e)):
        raise ValueError("Ns and errors must be positive and finite")
    return np.log(e[:-1] / e[1:]) / np.log(N[1:] / N[:-1])


def applicable_estimates(grad_theta, samples: ParameterSamples) -> dict:
    r"""Every estimate of δL/δθ this module defines that applies to the samples' scheme and layout, by name.

    Constant layout: ``"normalised"`` (:func:`normalised_gradient`, :math:`G/(h\,w_0)`) and ``"time_average"``
    (:func:`time_average_gradient`, :math:`G/T`) only. Otherwise:
    ``"per_step"`` (:func:`per_step_gradient`; uniform grid only) and ``"normalised"`` (:func:`normalised_gradient`);
    ``"corrected"``: :func:`leapfrog_corrected_gradient` (sum) for leapfrog, :func:`erk_corrected_gradient` for a
    Runge–Kutta method, absent for other multistep methods (refimpl proposes no correction there,
    docs/theory/oscillations-and-corrections.md; their normalised gradient is the candidate); ``"average"``: the
    leapfrog pair average (leapfrog only)."""
    if samples.layout == "constant":
        return {"normalised": normalised_gradient(grad_theta, samples),
                "time_average": time_average_gradient(grad_theta, samples)}
    out = {} if samples.grid is not None else {"per_step": per_step_gradient(grad_theta, samples)}
    out["normalised"] = normalised_gradient(grad_theta, samples)
    if _is_leapfrog(samples.method):
        out["corrected"] = leapfrog_corrected_gradient(grad_theta, samples, "sum")
        out["average"] = leapfrog_corrected_gradient(grad_theta, samples, "average")
    elif isinstance(samples.method, ButcherTableau):
        out["corrected"] = erk_corrected_gradient(grad_theta, samples)
    return out
