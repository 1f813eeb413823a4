r"""What an audit hands a user's solver: the problem (field by formula and parameters, :math:`x_0`, θ in a stated
layout, T, a terminal loss) and one member of a refinement family (N steps of a named scheme, or the tolerances of an
adaptive solve) — all of it data, so a sweep task can carry it to any process (docs/theory/audit.md §1).

Fixed steps (:class:`FixedStepProblem`): :math:`\dot x = f(x, \theta(t))` on :math:`[0, T]`, uniform grid
:math:`t_n = nT/N`, :math:`L = \tfrac12|x_N - y|^2`. The parameter path is a :class:`~refimpl.problems.sinusoid_ode.
Sinusoid` :math:`\Theta(t) = a + b\sin\omega t`; the solver receives it sampled in the stated layout of
:mod:`refimpl.ode.samples`: ``"stage"`` :math:`\theta_r = \Theta(\tau_r)` at the stated scheme's distinct stage times,
``"step"`` :math:`\theta_n = \Theta(t_n)` used by every stage of step n, ``"constant"`` :math:`\theta = a` for every
evaluation. Adaptive (:class:`AdaptiveProblem`): one constant θ, the stated library convention
(:mod:`refimpl.ode.conventions`) and :math:`\mathrm{rtol} = \mathrm{atol} = 10^{-k}`.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from refimpl.ode.fields import FIELDS, QuadraticLoss
from refimpl.ode.samples import LAYOUTS, parameter_samples
from refimpl.ode.schemes import MULTISTEP_METHODS, STARTER_NAMES, scheme as named_scheme
from refimpl.problems.sinusoid_ode import Sinusoid

__all__ = ["FixedStepProblem", "AdaptiveProblem", "FixedStepMember", "AdaptiveMember", "problem_from_spec",
           "DEFAULT_NS", "DEFAULT_RTOLS"]

#: the default fixed-step family: N = 2^k, k = 2..7 (six refinements)
DEFAULT_NS = (4, 8, 16, 32, 64, 128)
#: the default adaptive family: rtol = atol = 10^-k, k = 3..6
DEFAULT_RTOLS = (1e-3, 1e-4, 1e-5, 1e-6)


def _vector(value, name: str, size: int | None = None) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a 1-D array of real numbers, got {type(value).__name__}") from e
    if a.ndim != 1 or (size is not None and a.shape != (size,)):
        want = "a 1-D array" if size is None else f"shape ({size},)"
        raise ValueError(f"{name} must have {want}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    a.setflags(write=False)
    return a


def _field(field):
    if isinstance(field, dict):
        return FIELDS.from_spec(field)
    if not callable(getattr(field, "to_spec", None)) or getattr(field, "family", None) is None:
        raise TypeError(f"field must be a registered field family (refimpl.ode.fields.FIELDS: {FIELDS.names()}) or "
                        f"its spec dict, got {type(field).__name__}")
    return field


def _positive_T(T) -> float:
    if isinstance(T, bool) or not isinstance(T, numbers.Real) or not math.isfinite(float(T)) or not float(T) > 0:
        raise ValueError(f"T must be a finite number > 0, got {T!r}")
    return float(T)


@dataclass(frozen=True, eq=False)
class FixedStepProblem:
    r"""A fixed-step audit problem. ``field`` a registered field (or its spec), ``x0`` (d,), ``y`` (d,) the target of
    :math:`L = \tfrac12|x_N - y|^2`, ``theta`` a :class:`Sinusoid` (or its spec dict) of n_params components, ``T``,
    ``layout`` (stage | step | constant), ``scheme`` the name of the scheme the solver is *said* to use (stage layout:
    its stage times are the sample times), ``starter`` for a multistep scheme ("forward_euler" | "matched")."""

    field: object
    x0: np.ndarray
    y: np.ndarray
    theta: Sinusoid
    T: float = 1.0
    layout: str = "step"
    scheme: str = "rk4"
    starter: str | None = None

    def __post_init__(self):
        field = _field(self.field)
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "x0", _vector(self.x0, "x0", field.dim))
        object.__setattr__(self, "y", _vector(self.y, "y", field.dim))
        theta = self.theta
        if isinstance(theta, dict):
            if theta.get("kind") != "sinusoid":
                raise ValueError(f"theta: a path spec must have kind 'sinusoid', got {theta.get('kind')!r}")
            theta = Sinusoid(tuple(theta["a"]), tuple(theta["b"]), float(theta["omega"]))
        if not isinstance(theta, Sinusoid):
            raise TypeError(f"theta must be a Sinusoid (refimpl.problems.sinusoid_ode) or its spec, got "
                            f"{type(theta).__name__}")
        if len(theta.a) != field.n_params or len(theta.b) != field.n_params:
            raise ValueError(f"theta: the path has {len(theta.a)} components, the field has n_params = "
                             f"{field.n_params}")
        object.__setattr__(self, "theta", theta)
        object.__setattr__(self, "T", _positive_T(self.T))
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        named_scheme(self.scheme)  # validates the name
        if self.scheme in MULTISTEP_METHODS:
            starter = "forward_euler" if self.starter is None else self.starter
            if starter not in STARTER_NAMES:
                raise ValueError(f"starter must be one of {STARTER_NAMES}, got {starter!r}")
            object.__setattr__(self, "starter", starter)
        elif self.starter is not None:
            raise ValueError(f"starter: {self.scheme!r} is a one-step method and takes no starter")

    kind = "fixed"

    @property
    def loss(self) -> QuadraticLoss:
        return QuadraticLoss(np.array(self.y))

    def member(self, N: int) -> "FixedStepMember":
        if isinstance(N, bool) or not isinstance(N, numbers.Integral) or N < 1:
            raise ValueError(f"N must be an integer >= 1, got {N!r}")
        return FixedStepMember(self, int(N))

    def to_spec(self) -> dict:
        return {"kind": "fixed", "field": self.field.to_spec(), "x0": self.x0.tolist(), "y": self.y.tolist(),
                "theta": self.theta.spec(), "T": self.T, "layout": self.layout, "scheme": self.scheme,
                "starter": self.starter}

    def describe(self) -> str:
        st = f" (starter {self.starter})" if self.starter else ""
        of = f" of {self.scheme}{st}" if self.layout == "stage" else ""
        return (f"{self.field.formula}; x0 = {self.x0.tolist()}, T = {self.T:g}, L = 1/2 |x_N - y|^2 with y = "
                f"{self.y.tolist()}; theta(t) = a + b sin({self.theta.omega:g} t) in the {self.layout} layout{of}")


@dataclass(frozen=True, eq=False)
class FixedStepMember:
    """One refinement: the problem on N uniform steps. What a solver reads: ``field``, ``x0``, ``T``, ``N``,
    ``grid`` (t_0..t_N), ``h``, ``layout``, ``scheme`` (name), ``starter``, ``theta`` (the parameter table,
    (n_samples, p); constant layout: (1, p)), ``sample_times``, ``samples`` (refimpl's index maps: which row each
    stage of each step uses), ``y`` and ``loss``."""

    problem: FixedStepProblem
    N: int

    def __getattr__(self, name):
        if name in ("field", "x0", "y", "T", "layout", "scheme", "starter", "loss"):
            return getattr(self.problem, name)
        raise AttributeError(name)

    @property
    def h(self) -> float:
        return self.problem.T / self.N

    @cached_property
    def grid(self) -> np.ndarray:
        return np.arange(self.N + 1) * self.h

    @cached_property
    def samples(self):
        p = self.problem
        method = named_scheme(p.scheme)
        return parameter_samples(method, p.T, self.N, p.layout, p.starter)

    @cached_property
    def theta(self) -> np.ndarray:
        return theta_table(self.problem, self.samples)

    @property
    def sample_times(self) -> np.ndarray:
        return np.asarray(self.samples.times, dtype=np.float64)

    def theta_at(self, t: float) -> np.ndarray:
        """The row of ``theta`` whose sample time is nearest ``t`` (stage layout; the diffrax recipe of README)."""
        return self.theta[int(np.argmin(np.abs(self.sample_times - t)))]


def theta_table(problem: FixedStepProblem, samples) -> np.ndarray:
    """θ in the samples' layout: Θ at the sample times (stage, step) or the constant ``a`` (constant layout)."""
    if samples.layout == "constant":
        return np.array(problem.theta.a, dtype=np.float64)[None, :]
    return np.stack([problem.theta(float(t)) for t in samples.times])


@dataclass(frozen=True, eq=False)
class AdaptiveProblem:
    r"""An adaptive audit problem: ``field``, ``x0``, ``y``, a constant ``theta`` (p,), ``T`` and the library
    ``convention`` the solver is said to follow (a name of :func:`refimpl.ode.conventions.convention`, e.g.
    ``"torchdiffeq:dopri5"``, ``"diffrax:Tsit5"``); the family is rtol = atol = 10^-k."""

    field: object
    x0: np.ndarray
    y: np.ndarray
    theta: np.ndarray
    T: float = 1.0
    convention: str = "torchdiffeq:dopri5"

    def __post_init__(self):
        from refimpl.ode.conventions import convention
        field = _field(self.field)
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "x0", _vector(self.x0, "x0", field.dim))
        object.__setattr__(self, "y", _vector(self.y, "y", field.dim))
        object.__setattr__(self, "theta", _vector(self.theta, "theta", field.n_params))
        object.__setattr__(self, "T", _positive_T(self.T))
        if not isinstance(self.convention, str):
            raise TypeError(f"convention must be a string such as 'torchdiffeq:dopri5', got "
                            f"{type(self.convention).__name__}")
        convention(self.convention)  # validates

    kind = "adaptive"
    layout = "constant"

    @property
    def loss(self) -> QuadraticLoss:
        return QuadraticLoss(np.array(self.y))

    def member(self, rtol: float) -> "AdaptiveMember":
        if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real) or not 0 < float(rtol) < 1:
            raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
        return AdaptiveMember(self, float(rtol))

    def to_spec(self) -> dict:
        return {"kind": "adaptive", "field": self.field.to_spec(), "x0": self.x0.tolist(), "y": self.y.tolist(),
                "theta": self.theta.tolist(), "T": self.T, "convention": self.convention}

    def describe(self) -> str:
        return (f"{self.field.formula}; x0 = {self.x0.tolist()}, T = {self.T:g}, L = 1/2 |x(T) - y|^2 with y = "
                f"{self.y.tolist()}; constant theta; adaptive, said to follow {self.convention}")


@dataclass(frozen=True, eq=False)
class AdaptiveMember:
    """One refinement of an adaptive family: ``rtol`` (= ``atol``), and the problem's ``field``, ``x0``, ``theta``
    (p,), ``T``, ``y``, ``loss``, ``convention``."""

    problem: AdaptiveProblem
    rtol: float

    @property
    def atol(self) -> float:
        return self.rtol

    def __getattr__(self, name):
        if name in ("field", "x0", "y", "theta", "T", "loss", "convention", "layout"):
            return getattr(self.problem, name)
        raise AttributeError(name)


def problem_from_spec(spec: dict):
    """Rebuild a problem from :meth:`to_spec` (what a sweep task carries)."""
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a dict, got {type(spec).__name__}")
    kind = spec.get("kind")
    args = {k: v for k, v in spec.items() if k != "kind"}
    if kind == "fixed":
        return FixedStepProblem(**args)
    if kind == "adaptive":
        return AdaptiveProblem(**args)
    raise ValueError(f"spec.kind must be 'fixed' or 'adaptive', got {kind!r}")
