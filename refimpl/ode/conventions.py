r"""Named conventions: the step-size control, output rule and detachments of real adaptive-solver libraries, as data.

A *convention* is everything besides the field that decides what an adaptive solve computes and which derivative the
library's backward pass returns: the embedded pair (with the library's own float coefficients), the error norm, the
controller, the starting-step heuristic, how the output at :math:`T` is formed (last step clipped to :math:`T`, or
stepped past :math:`T` and interpolated), which stage is reused as the next first stage, and which quantities the
library's autodiff does not see. Each convention is built from the data types of :mod:`refimpl.ode.step_control`
(:class:`~refimpl.ode.step_control.Controller`, :class:`~refimpl.ode.step_control.ErrorNorm`,
:class:`~refimpl.ode.step_control.InitialStep`) and :class:`~refimpl.ode.embedded.EmbeddedTableau`, and is run by
:func:`refimpl.ode.adaptive.adaptive_solve`; nothing here integrates.

The two families (registry :data:`CONVENTIONS`; ``to_spec()`` / ``CONVENTIONS.from_spec(spec)`` round-trip by name):

``torchdiffeq`` (0.2.5; ``method`` = ``dopri5``, ``bosh3``, ``fehlberg2``, ``adaptive_heun``)
    read from ``torchdiffeq/_impl/rk_common.py`` (``RKAdaptiveStepsizeODESolver._before_integrate``,
    ``_adaptive_step``, ``_advance``, ``_interp_fit``; ``_runge_kutta_step``), ``misc.py`` (``_select_initial_step``,
    ``_compute_error_ratio``, ``_rms_norm``, ``_optimal_step_size``), ``interp.py`` (``_interp_fit``,
    ``_interp_evaluate``) and the tableaux in ``dopri5.py``, ``bosh3.py``, ``fehlberg2.py``, ``adaptive_heun.py``.

    * error ratio :math:`r = \mathrm{rms}\big(e/(\mathrm{atol} + \mathrm{rtol}\max(|y_n|, |y_{n+1}|))\big)`,
      :math:`e = h\sum_i c^{\mathrm{err}}_i k_i` (``_compute_error_ratio``, ``_rms_norm``);
    * accept iff :math:`r \le 1`; new step :math:`h\cdot\min(10, \max(0.9\,r^{-1/p}, \delta))` with :math:`\delta = 1`
      after an accepted step and :math:`0.2` after a rejected one, :math:`\times 10` when :math:`r = 0`
      (``_optimal_step_size``; :math:`p` the solver's ``order``, the order of the propagated solution);
    * starting step: HNW I §II.4 with exponent :math:`1/p` (``_select_initial_step`` is called with ``order - 1`` and
      raises to ``1/(order + 1)``), **on the autodiff graph** (no ``no_grad``/``detach`` in it);
    * the controller runs under ``@torch.no_grad()``: every step size after the first is a constant for autodiff;
      times accumulate on the graph, :math:`t_{n+1} = t_n + h_n`;
    * **no clipping**: ``_advance`` steps while :math:`t_{n+1} < T` and returns the quartic interpolant of the last
      step at :math:`T` (:class:`QuarticInterpolant`);
    * the last stage :math:`k_s` of every accepted step is the next step's first stage (``_runge_kutta_step`` returns
      ``f1 = k[..., -1]``) — true FSAL for dopri5 and bosh3, but for adaptive_heun and fehlberg2 :math:`k_s` is
      :math:`f` at the *lower-order* solution while the higher-order one is propagated.

    * ``options={"step_t": ts}`` is ``stop_times=ts``: a step reaching past the next stop time is clipped to end on
      it (``_adaptive_step``), the next proposal is the factor times the clipped step.

    Its ``odeint`` + ``backward()`` gradient is refimpl's **full discrete adjoint (b) with the controller's step sizes
    detached and the starting step attached** (``detach={"h_next"}``), of the interpolated output.

``diffrax`` (0.7.x; ``solver`` = ``Dopri5``, ``Tsit5``, ``Bosh3``, ``Heun``; ``PIDController`` coefficients)
    read from ``diffrax/_step_size_controller/pid.py`` (``_select_initial_step``, ``PIDController.init``,
    ``PIDController.adapt_step_size``), ``diffrax/_integrate.py`` (``loop``, ``_clip_to_end``, ``_diffeqsolve``),
    ``diffrax/_solver/runge_kutta.py`` (``ButcherTableau``, ``AbstractRungeKutta.step``), ``_solver/base.py``
    (``AbstractSolver.error_order``), the tableaux in ``_solver/{dopri5,tsit5,bosh3,heun}.py`` and
    ``lineax/_norm.py`` (``rms_norm``).

    * the same error ratio (RMS over all components, :math:`\max(|y_n|, |y_{n+1}|)`);
    * accept iff :math:`r < 1`; factor :math:`\mathrm{safety}\cdot r_n^{-(p_c+i_c+d_c)/k}
      r_{n-1}^{(p_c+2d_c)/k} r_{n-2}^{-d_c/k}` clipped to :math:`[1, \mathrm{factormax}]` after an accepted step and to
      :math:`[\mathrm{factormin}, \mathrm{safety}]` after a rejected one, :math:`k` = the solver's order; the error
      history advances on accepted steps only (initially 1);
    * starting step: ``dt0=None`` gives :math:`h_0 = 0.01` whatever the problem: ``PIDController.init`` calls
      ``_select_initial_step``, whose first line returns 0.01 unless ``terms`` is an ``ODETerm`` — and
      ``_diffeqsolve`` has wrapped every term in a ``WrapTerm`` (``_integrate.py:_diffeqsolve._wrap``) before, so the
      HNW heuristic written there (exponent :math:`1/k`) never runs. The result is ``lax.stop_gradient``-ed
      (``init``); the factor is ``stop_gradient`` too, so with constant :math:`t_0, T` the whole grid is a constant
      for autodiff;
    * the last step is clipped to :math:`T` (``_clip_to_end``), the output is :math:`x_N` at :math:`T`;
    * ``PIDController(step_ts=ts)`` (a ``ClipStepSizeController``, ``_step_size_controller/clip.py``) is
      ``stop_times=ts``: the next step is the factor times the clipped step, then clipped to the next stop time.

    Its ``diffeqsolve(..., RecursiveCheckpointAdjoint())`` gradient is refimpl's **frozen-grid discrete adjoint (a)**
    on the accepted grid.

Both libraries' Dormand–Prince error estimate is Shampine's (L. F. Shampine, Math. Comp. 46 (1986) 135–150, cited
in ``diffrax/_solver/dopri5.py:Dopri5``), not the original pair's: :math:`\hat b = \tfrac13 b + \tfrac23\hat
b_{\mathrm{DP}}`, so the error weights are exactly :math:`\tfrac23` of Dormand–Prince's (HNW I Table II.5.2) — the
same solve as the original pair at tolerances :math:`\tfrac32` as large. refimpl's ``dormand_prince_54`` is the
original; the conventions carry the libraries' floats.

Differences between the two libraries, all of them found in the sources above:

* acceptance :math:`r \le 1` (torchdiffeq) vs :math:`r < 1` (diffrax);
* first step: the HNW heuristic, differentiated (torchdiffeq) vs 0.01 whatever the problem, a constant (diffrax,
  ``dt0=None``);
* output at :math:`T`: interpolated from a last step past :math:`T` (torchdiffeq) vs last step clipped (diffrax);
  diffrax also stretches a step that ends within 100 ulps below :math:`T` to :math:`T`, and after a rejected step
  that would still reach :math:`T` halves the remaining interval (reachable only within that window; not modelled);
* the next first stage: the last stage for every tableau (torchdiffeq) vs only for an FSAL tableau (diffrax);
* a rejected step's factor is capped at ``safety`` (diffrax; binds only for PI/PID coefficients or
  ``factormin > safety``) vs 1 (torchdiffeq, refimpl's controller);
* :math:`r = 1` exactly: torchdiffeq accepts and shrinks the step by 0.9 (refimpl keeps it: a measure-zero event,
  not reproduced); diffrax rejects;
* tuple states: torchdiffeq's mixed norm (max over tensors of each tensor's RMS) vs diffrax's one RMS over the whole
  pytree (the states here are one vector, so they agree);
* a non-finite error estimate: diffrax rejects the step (NaN → inf → ``factormin``), torchdiffeq fails an assertion
  on the next step; refimpl raises naming the step.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from refimpl.ode.embedded import EmbeddedTableau
from refimpl.ode.step_control import RMS_NORM, Controller, InitialStep
from refimpl.registry import Registry

__all__ = ["CONVENTIONS", "QuarticInterpolant", "TorchdiffeqConvention", "DiffraxConvention", "convention",
           "TORCHDIFFEQ_PAIRS", "DIFFRAX_PAIRS"]

#: the library-convention families: family name ("torchdiffeq", "diffrax") -> class
CONVENTIONS = Registry("adaptive-solver convention")


# ---------------------------------------------------------------------------------------------------------------------
# the libraries' tableaux, float for float (Python float literals exactly as the sources write them; the error weights
# are the libraries' rounded differences b - b̂, which EmbeddedTableau keeps as given)

_DP_A = ((0.0,) * 7,
         (1 / 5,) + (0.0,) * 6,
         (3 / 40, 9 / 40) + (0.0,) * 5,
         (44 / 45, -56 / 15, 32 / 9) + (0.0,) * 4,
         (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729) + (0.0,) * 3,
         (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0.0, 0.0),
         (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0))
_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_ERR = (35 / 384 - 1951 / 21600, 0.0, 500 / 1113 - 22642 / 50085, 125 / 192 - 451 / 720,
           -2187 / 6784 - -12231 / 42400, 11 / 84 - 649 / 6300, -1. / 60.)
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)

_BS_A = ((0.0,) * 4, (1 / 2, 0.0, 0.0, 0.0), (0.0, 3 / 4, 0.0, 0.0), (2 / 9, 1 / 3, 4 / 9, 0.0))
_BS_B = (2 / 9, 1 / 3, 4 / 9, 0.0)
_BS_ERR = (2 / 9 - 7 / 24, 1 / 3 - 1 / 4, 4 / 9 - 1 / 3, -1 / 8)
_BS_C = (0.0, 1 / 2, 3 / 4, 1.0)

_HEUN_A = ((0.0, 0.0), (1.0, 0.0))
_HEUN_B = (0.5, 0.5)
_HEUN_ERR = (0.5, -0.5)

_FE2_A = ((0.0,) * 3, (1 / 2, 0.0, 0.0), (1 / 256, 255 / 256, 0.0))
_FE2_B = (1 / 512, 255 / 256, 1 / 512)
_FE2_ERR = (-1 / 512, 0.0, 1 / 512)

# diffrax/_solver/tsit5.py:_tsit5_tableau (the 80-digit decimals parsed by Python's float(), as in the source)
_TS_A = ((0.0,) * 7,
         (161 / 1000,) + (0.0,) * 6,
         (-0.8480655492356988544426874250230774675121177393430391537369234245294192976164141156943e-2,
          0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569) + (0.0,) * 5,
         (2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289,
          -6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366,
          4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077) + (0.0,) * 4,
         (5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791,
          -11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589,
          7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753,
          -0.9249506636175524925650207933207191611349983406029535244034750452930469056411389539635e-1)
         + (0.0,) * 3,
         (5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748,
          -12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452,
          8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986,
          -0.7158497328140099722453054252582973869127213147363544882721139659546372402303777878835e-1,
          -0.2826905039406838290900305721271224146717633626879770007617876201276764571291579142206e-1,
          0.0, 0.0))
_TS_B = (0.9646076681806522951816731316512876333711995238157997181903319145764851595234062815396e-1,
         1 / 100,
         0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509,
         1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331,
         -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677,
         2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841,
         0.0)
_TS_A = _TS_A + (_TS_B,)
_TS_ERR = (0.9646076681806522951816731316512876333711995238157997181903319145764851595234062815396e-1
           - 0.9468075576583945807478876255758922856117527357724631226139574065785592789071067303271e-1,
           1 / 100 - 0.9183565540343253096776363936645313759813746240984095238905939532922955247253608687270e-2,
           0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509
           - 0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813,
           1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331
           - 1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761,
           -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677
           + 2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702,
           2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841
           - 1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089,
           -1 / 66)
_TS_C = (0.0, 161 / 1000, 327 / 1000, 9 / 10,
         0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604, 1.0, 1.0)


def _pair(name, A, b, b_err, c=None):
    return EmbeddedTableau(name, A, b, c=c, b_err=b_err)


#: torchdiffeq 0.2.5 method -> (pair with its float coefficients, the interpolant's ``mid`` weights)
TORCHDIFFEQ_PAIRS = {
    # dopri5.py: _DORMAND_PRINCE_SHAMPINE_TABLEAU, DPS_C_MID
    "dopri5": (_pair("torchdiffeq.dopri5", _DP_A, _DP_B, _DP_ERR, _DP_C),
               (6025192743 / 30085553152 / 2, 0, 51252292925 / 65400821598 / 2, -2691868925 / 45128329728 / 2,
                187940372067 / 1594534317056 / 2, -1776094331 / 19743644256 / 2, 11237099 / 235043384 / 2)),
    # bosh3.py: _BOGACKI_SHAMPINE_TABLEAU, _BS_C_MID
    "bosh3": (_pair("torchdiffeq.bosh3", _BS_A, _BS_B, _BS_ERR, _BS_C), (0., 0.5, 0., 0.)),
    # fehlberg2.py: _FEHLBERG2_TABLEAU, _FE_C_MID
    "fehlberg2": (_pair("torchdiffeq.fehlberg2", _FE2_A, _FE2_B, _FE2_ERR, (0.0, 1 / 2, 1.0)), (0.0, 0.5, 0.0)),
    # adaptive_heun.py: _ADAPTIVE_HEUN_TABLEAU, _AH_C_MID
    "adaptive_heun": (_pair("torchdiffeq.adaptive_heun", _HEUN_A, _HEUN_B, _HEUN_ERR, (0.0, 1.0)), (0.5, 0.)),
}

#: diffrax 0.7.x solver class name -> pair with its float coefficients
DIFFRAX_PAIRS = {
    "Dopri5": _pair("diffrax.Dopri5", _DP_A, _DP_B, _DP_ERR, _DP_C),   # _solver/dopri5.py:_dopri5_tableau
    "Tsit5": _pair("diffrax.Tsit5", _TS_A, _TS_B, _TS_ERR, _TS_C),     # _solver/tsit5.py:_tsit5_tableau
    "Bosh3": _pair("diffrax.Bosh3", _BS_A, _BS_B, _BS_ERR, _BS_C),     # _solver/bosh3.py:_bosh3_tableau
    "Heun": _pair("diffrax.Heun", _HEUN_A, _HEUN_B, _HEUN_ERR, (0.0, 1.0)),  # _solver/heun.py:_heun_tableau
}


# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarticInterpolant:
    r"""torchdiffeq's dense output of one accepted step (``rk_common.py:RKAdaptiveStepsizeODESolver._interp_fit``,
    ``interp.py:_interp_fit``, ``interp.py:_interp_evaluate``): the quartic through :math:`y_0, y_1` and
    :math:`y_{\mathrm{mid}} = y_0 + h\sum_i \mathrm{mid}_i k_i` with end slopes :math:`f_0 = k_1`, :math:`f_1 = k_s`,

    .. math::
        p(x) = e + d x + c x^2 + b x^3 + a x^4,\quad
        \begin{aligned}
        e &= y_0,\quad d = h f_0,\quad c = h(f_1 - 4f_0) - 11y_0 - 5y_1 + 16y_{\mathrm{mid}},\\
        b &= h(5f_0 - 3f_1) + 18y_0 + 14y_1 - 32y_{\mathrm{mid}},\quad
        a = 2h(f_1 - f_0) - 8(y_1 + y_0) + 16y_{\mathrm{mid}},
        \end{aligned}

    at :math:`x = (t - t_n)/(t_{n+1} - t_n)`; :math:`p(0) = y_0`, :math:`p(1) = y_1` (the coefficients of
    :math:`y_0, y_1, y_{\mathrm{mid}}` sum to 0, 1, 0 and those of :math:`hf_0, hf_1` to 0). Evaluated in the source's
    order (``total = e + x d``, then ``x^j`` times each further coefficient), on any carrier (NumPy, complex, tape).
    ``mid`` has one weight per stage."""

    mid: tuple

    def __post_init__(self):
        mid = tuple(float(v) for v in self.mid)
        if not mid or not all(math.isfinite(v) for v in mid):
            raise ValueError(f"mid must be a non-empty sequence of finite numbers, got {self.mid!r}")
        object.__setattr__(self, "mid", mid)

    def __call__(self, y0, y1, ks, h, x):
        """:math:`p(x)` for the step from ``y0`` to ``y1`` of size ``h`` with stage values ``ks`` (k_1..k_s)."""
        if len(ks) != len(self.mid):
            raise ValueError(f"ks must hold {len(self.mid)} stage values (one per mid weight), got {len(ks)}")
        acc = None
        for k, w in zip(ks, self.mid):
            if w != 0.0:
                term = k * (h * w)
                acc = term if acc is None else acc + term
        y_mid = y0 if acc is None else y0 + acc
        f0, f1 = ks[0], ks[-1]
        a = 2 * h * (f1 - f0) - 8 * (y1 + y0) + 16 * y_mid
        b = h * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * y_mid
        c = h * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * y_mid
        d = h * f0
        total = y0 + x * d
        power = x
        for coefficient in (c, b, a):
            power = power * x
            total = total + power * coefficient
        return total


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or not v > 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


class _Convention:
    """What every convention provides (see the module docstring): ``pair``, ``controller``, ``norm``,
    ``initial_step`` (or a fixed first step ``h0``), ``detach`` (the library's autodiff detachments, names of
    :data:`refimpl.ode.adaptive.DETACHABLE`), ``end`` ("clip" | "overshoot"), ``output`` (the interpolant used with
    "overshoot"), ``reuse_last_stage`` ("fsal" | "always"), ``gradient_kind`` (which refimpl gradient the library's
    backward pass equals) and ``solve`` / ``library_gradient`` / ``to_spec``."""

    family: str
    version: str
    gradient_kind: str

    def solve_options(self) -> dict:
        """The keyword arguments of :func:`refimpl.ode.adaptive.adaptive_solve` that make it this library."""
        options = {"controller": self.controller, "norm": self.norm}
        if self.h0 is None:
            options["initial_step"] = self.initial_step
        else:
            options["h0"] = self.h0
        if self.end != "clip":
            options["end"] = self.end
            options["output"] = self.output
        if self.reuse_last_stage != "fsal":
            options["reuse_last_stage"] = self.reuse_last_stage
        return options

    def solve(self, field, x0, theta, T, *, rtol, atol, loss=None, max_steps=None, detach=None, stop_times=None):
        """:func:`~refimpl.ode.adaptive.adaptive_solve` with this convention (``detach`` default: none — the
        forward values do not depend on it; ``stop_times``: the library's ``step_t`` / ``step_ts``)."""
        from refimpl.ode.adaptive import DEFAULT_MAX_STEPS, adaptive_solve
        return adaptive_solve(field, self.pair, x0, theta, T, rtol=rtol, atol=atol, loss=loss,
                              max_steps=DEFAULT_MAX_STEPS if max_steps is None else max_steps,
                              detach=() if detach is None else detach, stop_times=stop_times,
                              **self.solve_options())

    def full_discrete_gradient(self, field, x0, theta, T, loss, *, rtol, atol, detach=(), stop_times=None):
        """(b) on the tape with this convention's solve and the given ``detach`` (default: nothing detached)."""
        from refimpl.ode.adaptive import full_discrete_gradient
        return full_discrete_gradient(field, self.pair, x0, theta, T, loss, detach=detach, rtol=rtol, atol=atol,
                                      stop_times=stop_times, **self.solve_options())

    def library_gradient(self, field, x0, theta, T, loss, *, rtol, atol, route: str = "tape", stop_times=None):
        """The refimpl gradient that equals this library's backward pass (``gradient_kind``; module docstring)."""
        raise NotImplementedError  # each family states its own

    def to_spec(self) -> dict:
        raise NotImplementedError

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.to_spec() == self.to_spec()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_spec().items())))

    def __repr__(self) -> str:
        keys = ", ".join(f"{k}={v!r}" for k, v in self.to_spec().items() if k not in ("family", "version"))
        return f"{type(self).__name__}({keys})"


@CONVENTIONS.register
class TorchdiffeqConvention(_Convention):
    r"""torchdiffeq 0.2.5 ``odeint(func, y0, t=[0, T], method=..., rtol, atol)`` (module docstring for every rule and
    its source). ``method``: ``dopri5`` | ``bosh3`` | ``fehlberg2`` | ``adaptive_heun``; ``safety``, ``ifactor``,
    ``dfactor``: the ``options`` of the same names (defaults 0.9, 10, 0.2).

    Controller (``misc.py:_optimal_step_size``): :math:`h\cdot\min(\mathrm{ifactor}, \max(\mathrm{safety}\,
    r^{-1/p}, \delta))`, :math:`\delta = 1` after acceptance (``shrink_on_accept=False``), ``dfactor`` after rejection
    (``factor_min``); acceptance :math:`r \le 1` (``rk_common.py:_adaptive_step``). Starting step
    (``misc.py:_select_initial_step`` with ``order - 1``): ``InitialStep(order=p - 1)``. Output: ``end="overshoot"``
    with :class:`QuarticInterpolant` (``_advance`` + ``_interp_evaluate``). ``reuse_last_stage="always"``
    (``_runge_kutta_step`` returns ``k[..., -1]`` as the next ``f0``). Gradient of ``odeint`` + ``backward()``: (b)
    with ``detach={"h_next"}`` (``_optimal_step_size`` is ``@torch.no_grad()``; ``_select_initial_step`` is not)."""

    family = "torchdiffeq"
    version = "0.2.5"
    gradient_kind = "full_discrete"
    METHODS = tuple(TORCHDIFFEQ_PAIRS)
    #: the library's autodiff: controller outputs constant, starting step and times on the graph
    detach = frozenset({"h_next"})
    end = "overshoot"
    reuse_last_stage = "always"
    norm = RMS_NORM
    h0 = None

    def __init__(self, method: str = "dopri5", *, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2):
        if not isinstance(method, str):
            raise TypeError(f"method must be a string, got {type(method).__name__}")
        if method not in TORCHDIFFEQ_PAIRS:
            raise ValueError(f"method: torchdiffeq's adaptive Runge-Kutta methods are {list(self.METHODS)}, got "
                             f"{method!r}")
        self.method = method
        self.safety = _positive(safety, "safety")
        self.ifactor = _positive(ifactor, "ifactor")
        self.dfactor = _positive(dfactor, "dfactor")
        self.pair, mid = TORCHDIFFEQ_PAIRS[method]
        self.output = QuarticInterpolant(mid)
        p = self.pair.order
        self.controller = Controller(f"torchdiffeq.{method}", (1.0, 0.0, 0.0), safety=self.safety,
                                     factor_min=self.dfactor, factor_max=self.ifactor, error_order=p, accept="le",
                                     grow_on_reject=False, shrink_on_accept=False, on_reject="same",
                                     history_on_reject=False)
        self.initial_step = InitialStep(order=p - 1)

    def library_gradient(self, field, x0, theta, T, loss, *, rtol, atol, route: str = "tape", stop_times=None):
        """(b) with ``detach={"h_next"}`` on the tape (the only route: the starting step is differentiated);
        ``stop_times``: ``options={"step_t": stop_times}``."""
        if route != "tape":
            raise ValueError(f"route: torchdiffeq's gradient differentiates the starting step, so only the 'tape' "
                             f"route computes it, got {route!r}")
        return self.full_discrete_gradient(field, x0, theta, T, loss, rtol=rtol, atol=atol, detach=self.detach,
                                           stop_times=stop_times)

    def to_spec(self) -> dict:
        return {"family": self.family, "version": self.version, "method": self.method, "safety": self.safety,
                "ifactor": self.ifactor, "dfactor": self.dfactor}

    @classmethod
    def from_spec(cls, spec: dict) -> "TorchdiffeqConvention":
        _check_spec(spec, cls)
        return cls(spec.get("method", "dopri5"), safety=spec.get("safety", 0.9), ifactor=spec.get("ifactor", 10.0),
                   dfactor=spec.get("dfactor", 0.2))


@CONVENTIONS.register
class DiffraxConvention(_Convention):
    r"""diffrax 0.7.x ``diffeqsolve(ODETerm(f), solver, t0=0, t1=T, dt0=None, y0, stepsize_controller=
    PIDController(rtol, atol, pcoeff, icoeff, dcoeff, factormin, factormax, safety), saveat=SaveAt(t1=True))``
    (module docstring for every rule and its source). ``solver``: ``Dopri5`` | ``Tsit5`` | ``Bosh3`` | ``Heun``.

    Controller (``pid.py:PIDController.adapt_step_size``): ``Controller.from_pid(pcoeff, icoeff, dcoeff)`` with
    ``error_order`` = the solver's order (``_solver/base.py:AbstractSolver.error_order``), acceptance
    :math:`r < 1`, no shrinking after acceptance, history on accepted steps only. Starting step
    (``pid.py:_select_initial_step``, exponent ``1/error_order``): ``InitialStep(order=p - 1)``. Output: the last step
    clipped to T (``_integrate.py:_clip_to_end``). Gradient of ``RecursiveCheckpointAdjoint``: (a) on the accepted
    grid (``dt0`` and the factor are ``lax.stop_gradient``; ``detach={"h0", "h"}`` makes (b) equal to it)."""

    family = "diffrax"
    version = "0.7.2"
    gradient_kind = "frozen_grid"
    SOLVERS = tuple(DIFFRAX_PAIRS)
    detach = frozenset({"h0", "h"})
    end = "clip"
    output = None
    reuse_last_stage = "fsal"
    norm = RMS_NORM

    def __init__(self, solver: str = "Dopri5", *, pcoeff: float = 0.0, icoeff: float = 1.0, dcoeff: float = 0.0,
                 safety: float = 0.9, factormin: float = 0.2, factormax: float = 10.0, dt0: float | None = None):
        if not isinstance(solver, str):
            raise TypeError(f"solver must be a string (a diffrax solver class name), got {type(solver).__name__}")
        if solver not in DIFFRAX_PAIRS:
            raise ValueError(f"solver: the diffrax solvers with a convention here are {list(self.SOLVERS)}, got "
                             f"{solver!r}")
        self.solver = solver
        self.pcoeff, self.icoeff, self.dcoeff = (float(pcoeff), float(icoeff), float(dcoeff))
        self.safety = _positive(safety, "safety")
        self.factormin = _positive(factormin, "factormin")
        self.factormax = _positive(factormax, "factormax")
        self.pair = DIFFRAX_PAIRS[solver]
        p = self.pair.order
        self.controller = Controller.from_pid(self.pcoeff, self.icoeff, self.dcoeff, name=f"diffrax.{solver}",
                                              safety=self.safety, factor_min=self.factormin,
                                              factor_max=self.factormax, error_order=p, accept="lt",
                                              grow_on_reject=False, shrink_on_accept=False, on_reject="same",
                                              history_on_reject=False)
        self.initial_step = InitialStep(order=p - 1)
        self.dt0 = None if dt0 is None else _positive(dt0, "dt0")
        self.h0 = self.UNWRAPPED_DT0 if dt0 is None else self.dt0

    #: the first step of ``diffeqsolve(..., dt0=None)`` (pid.py:_select_initial_step on a WrapTerm)
    UNWRAPPED_DT0 = 0.01

    def library_gradient(self, field, x0, theta, T, loss, *, rtol, atol, route: str = "tape", stop_times=None):
        """(a) on this convention's accepted grid (``route`` as in
        :func:`~refimpl.ode.adaptive.frozen_grid_gradient`: "tape", or the hand adjoint "numpy"/"numba"/"auto");
        ``stop_times``: ``PIDController(step_ts=stop_times)``."""
        from refimpl.ode.adaptive import frozen_grid_gradient
        sol = self.solve(field, x0, theta, T, rtol=rtol, atol=atol, stop_times=stop_times)
        return frozen_grid_gradient(field, self.pair, x0, theta, sol.grid, loss, route=route, stop_times=stop_times)

    def to_spec(self) -> dict:
        return {"family": self.family, "version": self.version, "solver": self.solver, "pcoeff": self.pcoeff,
                "icoeff": self.icoeff, "dcoeff": self.dcoeff, "safety": self.safety, "factormin": self.factormin,
                "factormax": self.factormax, "dt0": self.dt0}

    @classmethod
    def from_spec(cls, spec: dict) -> "DiffraxConvention":
        _check_spec(spec, cls)
        keys = ("pcoeff", "icoeff", "dcoeff", "safety", "factormin", "factormax", "dt0")
        return cls(spec.get("solver", "Dopri5"), **{k: spec[k] for k in keys if k in spec})


def _check_spec(spec, cls) -> None:
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a dict, got {type(spec).__name__}")
    if spec.get("family") != cls.family:
        raise ValueError(f"spec.family: a {cls.__name__} is {cls.family!r}, the spec says {spec.get('family')!r}")
    version = spec.get("version", cls.version)
    if version != cls.version:
        raise ValueError(f"spec.version: this convention reproduces {cls.family} {cls.version}, the spec says "
                         f"{version!r}")


def convention(name, **options) -> _Convention:
    """Resolve a convention: an instance is returned as is; a dict is read by ``CONVENTIONS.from_spec``; a string
    ``"torchdiffeq"`` / ``"diffrax"`` (defaults, ``options`` passed on) or ``"torchdiffeq:bosh3"`` /
    ``"diffrax:Tsit5"`` (family:method)."""
    if isinstance(name, _Convention):
        return name
    if isinstance(name, dict):
        return CONVENTIONS.from_spec(name)
    if not isinstance(name, str):
        raise TypeError(f"name must be a convention, a spec dict or a string, got {type(name).__name__}")
    family, _, method = name.partition(":")
    cls = CONVENTIONS.get(family)
    if method:
        return cls(method, **options)
    return cls(**options)
