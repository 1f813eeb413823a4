r"""Step-size control as data: the error norm, the I / PI / PID controllers, the initial step, the tolerances.

Every formula below is written once and evaluated on whatever the integrator carries — float64, complex128 (complex
step) or tape :class:`~refimpl.ad.Variable` s — so the *derivative* of the controller is part of the full discrete
adjoint (docs/theory/adaptive-steps.md §3). Two rules make the complex-step derivative valid: a comparison looks at real
parts only, and :math:`|y|` is evaluated as the holomorphic :math:`\operatorname{sign}(\operatorname{Re} y)\,y`
(:func:`re_abs`), equal to :math:`|y|` on real numbers; clipping to a bound replaces the value by the (constant) bound.

**Error ratio** (HNW I, §II.4, eq. (4.11)). With the error estimate :math:`e = h\sum_i (b_i-\hat b_i)k_i` of an
attempted step :math:`y_n \to y_{n+1}` and the scale :math:`s_j = \mathrm{atol} + \mathrm{rtol}\cdot m_j`,

.. math::
    r = \Big\|\frac{e}{s}\Big\|,\qquad \|v\|_{\mathrm{rms}} = \Big(\frac1d\sum_j v_j^2\Big)^{1/2},\quad
    \|v\|_{\max} = \max_j |v_j|,

with :math:`m_j = \max(|y_{n,j}|, |y_{n+1,j}|)` (``scale="max"``: HNW, torchdiffeq ``_compute_error_ratio``, diffrax
``PIDController``, SciPy), :math:`|y_{n,j}|` (``"start"``) or :math:`|y_{n+1,j}|` (``"end"``).
:class:`ErrorNorm` carries the choice.

**Controller** (Söderlind, "Digital filters in adaptive time-stepping", ACM TOMS 29 (2003) 1–26; the I controller is
HNW I (4.12), the PI controller HNW II, §IV.2 (2.43c) after Gustafsson). With the error ratios :math:`r_n, r_{n-1},
r_{n-2}` of the current and the two previous *accepted* steps (1 before the first), the exponent order :math:`k` (the
estimate is :math:`O(h^k)`; :math:`k = q + 1`, :math:`q = \min(p, \hat p)` by default) and the coefficients
:math:`\beta = (\beta_1, \beta_2, \beta_3)`,

.. math::
    \mathrm{fac} = \mathrm{safety}\cdot r_n^{-\beta_1/k}\, r_{n-1}^{-\beta_2/k}\, r_{n-2}^{-\beta_3/k},\qquad
    h_{\mathrm{new}} = h\cdot\min(\mathrm{fac}_{\max}, \max(\mathrm{fac}_{\min}, \mathrm{fac})),

the I controller :math:`\beta = (1, 0, 0)`; PI :math:`(\beta_1, \beta_2, 0)`; PID all three. The PID form with
proportional/integral/derivative coefficients (diffrax's ``pcoeff, icoeff, dcoeff``) is :math:`\beta_1 = p + i + d`,
:math:`\beta_2 = -(p + 2d)`, :math:`\beta_3 = d` (:meth:`Controller.from_pid`). A step is accepted when
:math:`r \le 1` (``accept="le"``) or :math:`r < 1` (``"lt"``). Options that real libraries differ in:
``grow_on_reject`` (False: after a rejection the factor is at most 1), ``shrink_on_accept`` (False: after an accepted
step it is at least 1), ``on_reject`` ("same": the formula above with the rejected :math:`r_n`; "integral": the I
controller :math:`\mathrm{safety}\cdot r_n^{-1/k}`), ``history_on_reject`` (whether a rejected ratio becomes
:math:`r_{n-1}`), ``hold_after_reject`` (the first accepted step after a rejection may not grow: HNW's DOPRI5 code,
SciPy's ``RungeKutta._step_impl``). :math:`r_n = 0` gives :math:`\mathrm{fac}_{\max}` (a constant). Consistency
(``ValueError`` naming the
field otherwise): :math:`\beta_1 > 0`, :math:`\sum\beta > 0` (so a constant ratio :math:`r \ne 1` drives h back to
:math:`r = 1`), :math:`0 < \mathrm{safety} \le 1`, :math:`0 < \mathrm{fac}_{\min} \le 1 \le \mathrm{fac}_{\max}`,
:math:`\mathrm{fac}_{\min} < \mathrm{fac}_{\max}`.

**Initial step** (HNW I, §II.4, "Starting step size", p. 169; their code DOPRI5 ``HINIT``). With
:math:`s = \mathrm{atol} + \mathrm{rtol}|y_0|` and the norm above:
:math:`d_0 = \|y_0/s\|`, :math:`d_1 = \|f(y_0)/s\|`; :math:`h_0 = 0.01\,d_0/d_1` (:math:`10^{-6}` if
:math:`d_0 < 10^{-5}` or :math:`d_1 < 10^{-5}`); :math:`y_1 = y_0 + h_0 f(y_0)`, :math:`d_2 = \|(f(y_1) -
f(y_0))/s\|/h_0`; :math:`h_1 = (0.01/\max(d_1, d_2))^{1/(p+1)}` (:math:`\max(10^{-6}, 10^{-3}h_0)` if
:math:`\max(d_1,d_2) \le 10^{-15}`); :math:`h = \min(100h_0, h_1)`. :class:`InitialStep` holds the constants and the
exponent order (default the propagated order p, as HNW; a library may use another).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from refimpl.ad import getvalue, ops
from refimpl.registry import Registry

__all__ = ["ErrorNorm", "Controller", "InitialStep", "Tolerances", "re_abs", "re_max", "re_value",
           "RMS_NORM", "MAX_NORM", "I_CONTROLLER", "PI_HNW", "PI_H211", "PID_H312", "CONTROLLERS",
           "STEP_CONTROL_FAMILIES", "check_tolerance"]


# ---------------------------------------------------------------------------------------------------------------------
# generic arithmetic on float / complex / Variable values (comparisons on real parts)


def re_value(v) -> float:
    """The real part of a scalar value (float, complex or Variable) as a Python float: what decisions look at."""
    return float(np.real(getvalue(v)))


def re_abs(v):
    r"""Elementwise :math:`\operatorname{sign}(\operatorname{Re} v)\,v` (sign(0) = +1): :math:`|v|` on reals, and the
    holomorphic continuation of :math:`|\cdot|` off the real axis, so complex-step derivatives of it are right."""
    return ops.where(np.real(getvalue(v)) >= 0, v, -v)


def re_max(a, b):
    """Elementwise ``a`` where Re a ≥ Re b, else ``b`` (chosen by real parts; the derivative of the chosen one)."""
    return ops.where(np.real(getvalue(a)) >= np.real(getvalue(b)), a, b)


def _finite_float(value, name: str, *, positive=False, at_most=None, at_least=None) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if at_most is not None and v > at_most:
        raise ValueError(f"{name} must be <= {at_most}, got {value!r}")
    if at_least is not None and v < at_least:
        raise ValueError(f"{name} must be >= {at_least}, got {value!r}")
    return v


def check_tolerance(value, name: str) -> float:
    """A tolerance (``rtol``/``atol``): a finite real number > 0; ``ValueError`` naming it otherwise (NaN included)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number > 0, got {type(value).__name__}")
    v = float(value)
    if math.isnan(v):
        raise ValueError(f"{name} must be a number > 0, got NaN")
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


@dataclass(frozen=True)
class Tolerances:
    """``rtol`` and ``atol``, each a finite number > 0 (checked on construction, errors name the argument)."""

    rtol: float
    atol: float

    def __post_init__(self):
        object.__setattr__(self, "rtol", check_tolerance(self.rtol, "rtol"))
        object.__setattr__(self, "atol", check_tolerance(self.atol, "atol"))


# ---------------------------------------------------------------------------------------------------------------------


#: the step-control families of a case file (class name -> class): ``STEP_CONTROL_FAMILIES.from_spec(spec)``
STEP_CONTROL_FAMILIES = Registry("step-control family")


@STEP_CONTROL_FAMILIES.register
@dataclass(frozen=True)
class ErrorNorm:
    r"""The error ratio :math:`r = \|e/(\mathrm{atol} + \mathrm{rtol}\,m)\|` (module docstring): ``kind`` "rms" or
    "max", ``scale`` "max" (:math:`m = \max(|y_n|,|y_{n+1}|)`), "start" (:math:`|y_n|`) or "end" (:math:`|y_{n+1}|`)."""

    kind: str = "rms"
    scale: str = "max"

    family = "error_norm"
    KINDS = ("rms", "max")
    SCALES = ("max", "start", "end")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {self.kind!r}")
        if self.scale not in self.SCALES:
            raise ValueError(f"scale must be one of {self.SCALES}, got {self.scale!r}")

    def norm(self, v):
        """:math:`\\|v\\|` of a 1-D vector (rms: :math:`\\sqrt{\\sum v_j^2/d}`, holomorphic, and the constant 0 at
        v = 0; max: the entry of largest real :func:`re_abs`)."""
        if self.kind == "rms":
            d = int(np.shape(getvalue(v))[0])
            sq = ops.sum(v * v)
            if re_value(sq) == 0.0:
                # v = 0: the norm is 0 with the subgradient 0 (sqrt' is infinite there; a taped sqrt would send
                # 0 * inf = NaN into the gradient even from an unused branch)
                return 0.0
            return ops.sqrt(sq / d)
        a = re_abs(v)
        j = int(np.argmax(np.real(getvalue(a))))
        return a[j]

    def ratio(self, e, y_start, y_end, atol: float, rtol: float):
        """The error ratio r of an attempted step with estimate ``e`` from ``y_start`` to ``y_end``."""
        if self.scale == "max":
            m = re_max(re_abs(y_start), re_abs(y_end))
        elif self.scale == "start":
            m = re_abs(y_start)
        else:
            m = re_abs(y_end)
        return self.norm(e / (atol + rtol * m))

    def to_spec(self) -> dict:
        return {"family": self.family, "kind": self.kind, "scale": self.scale}

    @classmethod
    def from_spec(cls, spec: dict) -> "ErrorNorm":
        _check_family(spec, cls)
        return cls(spec["kind"], spec["scale"])


def _check_family(spec, cls):
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a dict, got {type(spec).__name__}")
    if spec.get("family") != cls.family:
        raise ValueError(f"spec.family: a {cls.__name__} is {cls.family!r}, the spec says {spec.get('family')!r}")


RMS_NORM = ErrorNorm("rms", "max")
MAX_NORM = ErrorNorm("max", "max")


@STEP_CONTROL_FAMILIES.register
@dataclass(frozen=True)
class Controller:
    r"""A step-size controller (module docstring): ``beta`` = (β₁, β₂, β₃), ``safety``, ``factor_min``,
    ``factor_max``, ``error_order`` k (None: the pair's q + 1), ``accept`` ("le": r ≤ 1, "lt": r < 1),
    ``grow_on_reject``, ``shrink_on_accept``, ``on_reject`` ("same" | "integral"), ``history_on_reject``,
    ``hold_after_reject``, ``name``."""

    name: str = "integral"
    beta: tuple = (1.0, 0.0, 0.0)
    safety: float = 0.9
    factor_min: float = 0.2
    factor_max: float = 10.0
    error_order: int | None = None
    accept: str = "le"
    grow_on_reject: bool = False
    shrink_on_accept: bool = True
    on_reject: str = "same"
    history_on_reject: bool = False
    hold_after_reject: bool = False

    family = "controller"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError("name must be a non-empty string")
        if isinstance(self.beta, (str, bytes)) or not hasattr(self.beta, "__len__") or not 1 <= len(self.beta) <= 3:
            raise ValueError(f"beta must be a sequence of 1 to 3 coefficients (beta1, beta2, beta3), got {self.beta!r}")
        beta = tuple(_finite_float(b, f"beta[{i}]") for i, b in enumerate(self.beta))
        beta = beta + (0.0,) * (3 - len(beta))
        if not beta[0] > 0:
            raise ValueError(f"beta: beta1 must be > 0 (the factor must fall as the current error grows), got "
                             f"beta = {beta}")
        if not sum(beta) > 0:
            raise ValueError(f"beta: beta1 + beta2 + beta3 must be > 0 (at a constant error ratio r != 1 the "
                             f"controller must move h towards r = 1), got sum {sum(beta)!r} for beta = {beta}")
        object.__setattr__(self, "beta", beta)
        safety = _finite_float(self.safety, "safety", positive=True, at_most=1.0)
        fmin = _finite_float(self.factor_min, "factor_min", positive=True, at_most=1.0)
        fmax = _finite_float(self.factor_max, "factor_max", at_least=1.0)
        if not fmin < fmax:
            raise ValueError(f"factor_min must be < factor_max, got factor_min = {fmin}, factor_max = {fmax}")
        object.__setattr__(self, "safety", safety)
        object.__setattr__(self, "factor_min", fmin)
        object.__setattr__(self, "factor_max", fmax)
        if self.error_order is not None:
            if isinstance(self.error_order, bool) or not isinstance(self.error_order, (numbers.Integral, float)) \
                    or not self.error_order > 0 or not math.isfinite(self.error_order):
                raise ValueError(f"error_order must be None (the pair's estimate order + 1) or a number > 0, got "
                                 f"{self.error_order!r}")
        if self.accept not in ("le", "lt"):
            raise ValueError(f"accept must be 'le' (accept r <= 1) or 'lt' (accept r < 1), got {self.accept!r}")
        if self.on_reject not in ("same", "integral"):
            raise ValueError(f"on_reject must be 'same' or 'integral', got {self.on_reject!r}")
        for key in ("grow_on_reject", "shrink_on_accept", "history_on_reject", "hold_after_reject"):
            if not isinstance(getattr(self, key), bool):
                raise TypeError(f"{key} must be a bool, got {type(getattr(self, key)).__name__}")

    @classmethod
    def from_pid(cls, pcoeff: float, icoeff: float, dcoeff: float = 0.0, **options) -> "Controller":
        r"""The controller with proportional/integral/derivative coefficients: :math:`\beta = (p + i + d,
        -(p + 2d), d)` (module docstring)."""
        p = _finite_float(pcoeff, "pcoeff")
        i = _finite_float(icoeff, "icoeff")
        d = _finite_float(dcoeff, "dcoeff")
        options.setdefault("name", f"pid(p={p:g}, i={i:g}, d={d:g})")
        return cls(beta=(p + i + d, -(p + 2 * d), d), **options)

    def exponent_order(self, pair) -> float:
        """k: ``error_order`` or the pair's ``estimate_order + 1``."""
        return float(self.error_order) if self.error_order is not None else float(pair.estimate_order + 1)

    def accepts(self, r) -> bool:
        """Whether a step with error ratio ``r`` (real part) is accepted."""
        v = re_value(r)
        return v <= 1.0 if self.accept == "le" else v < 1.0

    def factor(self, r, history: tuple, k: float, accepted: bool, after_reject: bool = False):
        r"""The step factor after a step with ratio ``r`` (accepted or not) and the previous accepted ratios
        ``history`` = (r_{n-1}, r_{n-2}) (module docstring); ``after_reject``: the attempt before this one was
        rejected. A value of the carrier's type, or a float when clipped."""
        if re_value(r) == 0.0:
            fac = self.factor_max
        else:
            b1, b2, b3 = (1.0, 0.0, 0.0) if (not accepted and self.on_reject == "integral") else self.beta
            fac = self.safety * r ** (-b1 / k)
            for beta, rr in ((b2, history[0]), (b3, history[1])):
                # a previous ratio of exactly 0 (an error estimate that vanished identically, e.g. x0 = 0 with
                # f(0) = 0 on the first step) says nothing about the error's trend: it counts as 1, like the steps
                # before the first (0 ** (-beta/k) would be inf or 0: a ZeroDivisionError, or factor_min after an
                # exact step)
                if beta != 0.0 and re_value(rr) != 0.0:
                    fac = fac * rr ** (-beta / k)
        lo, hi = self.factor_min, self.factor_max
        if not accepted and not self.grow_on_reject:
            hi = min(hi, 1.0)
        if accepted and not self.shrink_on_accept:
            lo = max(lo, 1.0)
        if accepted and after_reject and self.hold_after_reject:
            hi = min(hi, 1.0)
        v = re_value(fac)
        if v > hi:
            return hi
        if v < lo:
            return lo
        return fac

    def next_history(self, r, history: tuple, accepted: bool) -> tuple:
        """(r_n, r_{n-1}) after this step if it enters the history (accepted, or ``history_on_reject``)."""
        if accepted or self.history_on_reject:
            return (r, history[0])
        return history

    def to_spec(self) -> dict:
        return {"family": self.family, "name": self.name, "beta": list(self.beta), "safety": self.safety,
                "factor_min": self.factor_min, "factor_max": self.factor_max, "error_order": self.error_order,
                "accept": self.accept, "grow_on_reject": self.grow_on_reject,
                "shrink_on_accept": self.shrink_on_accept, "on_reject": self.on_reject,
                "history_on_reject": self.history_on_reject, "hold_after_reject": self.hold_after_reject}

    @classmethod
    def from_spec(cls, spec: dict) -> "Controller":
        _check_family(spec, cls)
        keys = ("name", "beta", "safety", "factor_min", "factor_max", "error_order", "accept", "grow_on_reject",
                "shrink_on_accept", "on_reject", "history_on_reject", "hold_after_reject")
        kw = {k: spec[k] for k in keys if k in spec}
        if "beta" in kw:
            kw["beta"] = tuple(kw["beta"])
        return cls(**kw)


#: the I controller of HNW I (4.12)
I_CONTROLLER = Controller("integral", (1.0, 0.0, 0.0))
#: the PI controller of HNW II §IV.2 (Gustafsson): fac = err_n^{-0.7/k} err_{n-1}^{0.4/k}
PI_HNW = Controller("pi_hnw", (0.7, -0.4, 0.0))
#: Söderlind (2003) H211PI: beta = (1/6, 1/6)
PI_H211 = Controller("pi_h211", (1 / 6, 1 / 6, 0.0))
#: Söderlind (2003) H312PID: beta = (1/18, 1/9, 1/18)
PID_H312 = Controller("pid_h312", (1 / 18, 1 / 9, 1 / 18))

#: the named controllers: name -> instance
CONTROLLERS = Registry("controller")
for _c in (I_CONTROLLER, PI_HNW, PI_H211, PID_H312):
    CONTROLLERS.register(_c, name=_c.name)
del _c


@STEP_CONTROL_FAMILIES.register
@dataclass(frozen=True)
class InitialStep:
    r"""The HNW II.4 starting step (module docstring), its constants as fields: ``order`` (the exponent is
    1/(order + 1); None: the pair's propagated order p), ``factor`` 0.01, ``small`` 1e-5 (threshold on d₀, d₁),
    ``fallback`` 1e-6, ``growth`` 100, ``tiny`` 1e-15, ``tiny_factor`` 1e-3. ``norm_kind`` None uses the solver's
    norm kind; ``clip_to_interval`` caps h₀ and the result by T (SciPy)."""

    order: int | None = None
    factor: float = 0.01
    small: float = 1e-5
    fallback: float = 1e-6
    growth: float = 100.0
    tiny: float = 1e-15
    tiny_factor: float = 1e-3
    norm_kind: str | None = None
    clip_to_interval: bool = False

    family = "initial_step"

    def __post_init__(self):
        if self.order is not None and (isinstance(self.order, bool) or not isinstance(self.order, numbers.Integral)
                                       or self.order < 0):
            raise ValueError(f"order must be None or an integer >= 0, got {self.order!r}")
        for key in ("factor", "small", "fallback", "growth", "tiny", "tiny_factor"):
            object.__setattr__(self, key, _finite_float(getattr(self, key), key, positive=True))
        if not isinstance(self.clip_to_interval, bool):
            raise TypeError(f"clip_to_interval must be a bool, got {type(self.clip_to_interval).__name__}")
        if self.norm_kind not in (None,) + ErrorNorm.KINDS:
            raise ValueError(f"norm_kind must be None or one of {ErrorNorm.KINDS}, got {self.norm_kind!r}")

    def select(self, f, x0, f0, atol: float, rtol: float, norm: ErrorNorm, pair, T: float | None = None):
        """The starting step from ``x0`` with ``f0 = f(x0)``; ``f`` evaluates the field (one more evaluation).
        Returns ``h`` (a value of the carrier's type: it depends on x0 and θ). With ``clip_to_interval`` (SciPy's
        ``select_initial_step``) :math:`h_0` and the result are also capped by the interval length ``T``."""
        nrm = norm if self.norm_kind is None else ErrorNorm(self.norm_kind, norm.scale)
        scale = atol + rtol * re_abs(x0)
        d0 = nrm.norm(x0 / scale)
        d1 = nrm.norm(f0 / scale)
        if re_value(d0) < self.small or re_value(d1) < self.small:
            h0 = self.fallback
        else:
            h0 = self.factor * d0 / d1
        if self.clip_to_interval and T is not None and re_value(h0) > T:
            h0 = float(T)
        x1 = x0 + h0 * f0
        f1 = f(x1)
        d2 = nrm.norm((f1 - f0) / scale) / h0
        dmax = re_max(d1, d2)
        p = pair.order if self.order is None else self.order
        if re_value(dmax) <= self.tiny:
            h_tiny = h0 * self.tiny_factor
            h1 = h_tiny if re_value(h_tiny) >= self.fallback else self.fallback
        else:
            h1 = (self.factor / dmax) ** (1.0 / (p + 1))
        h_big = self.growth * h0
        h = h_big if re_value(h_big) <= re_value(h1) else h1
        if self.clip_to_interval and T is not None and re_value(h) > T:
            h = float(T)
        return h

    def to_spec(self) -> dict:
        return {"family": self.family, "order": self.order, "factor": self.factor, "small": self.small,
                "fallback": self.fallback, "growth": self.growth, "tiny": self.tiny,
                "tiny_factor": self.tiny_factor, "norm_kind": self.norm_kind,
                "clip_to_interval": self.clip_to_interval}

    @classmethod
    def from_spec(cls, spec: dict) -> "InitialStep":
        _check_family(spec, cls)
        return cls(**{k: v for k, v in spec.items() if k != "family"})
