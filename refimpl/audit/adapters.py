r"""The adapter protocol: a user's solver as a callable ``member -> SolverOutput``.

An adapter receives one member of a refinement family (:mod:`refimpl.audit.problem`: the field by formula and
parameters, :math:`x_0`, θ in the stated layout, T, the scheme and N — or the adaptive convention and its
tolerances) and returns a :class:`SolverOutput`: the trajectory it computed, its loss, and its gradients with respect
to θ (same shape as ``member.theta``) and to :math:`x_0`. Optionally an estimate of :math:`\delta L/\delta\theta(t)`
(``estimate_times``, ``estimate``) when the solver post-processes its gradient (e.g. a leapfrog correction).

Adapters are a family (registry :data:`ADAPTERS`): ``"callable"`` (:class:`CallableAdapter`: your own Python
function), ``"tape"`` (:class:`TapeAdapter`: a forward pass written in NumPy, differentiated by refimpl's tape through
the NumPy dispatch), ``"torchdiffeq"`` and ``"diffrax"`` (:mod:`refimpl.audit.torchdiffeq_adapter`,
:mod:`refimpl.audit.diffrax_adapter`; optional dependencies, imported when the adapter is built). Each adapter has a
``to_spec()`` so a sweep task can rebuild it in a worker; a function that cannot be imported by name (a closure) is
kept in this process and audits run on the serial executor only.
"""
from __future__ import annotations

import importlib
import itertools
import uuid
from dataclasses import dataclass

import numpy as np

from refimpl.registry import Registry

__all__ = ["SolverOutput", "Adapter", "CallableAdapter", "TapeAdapter", "ADAPTERS", "adapter_from_spec",
           "resolve_callable", "MissingDependency"]

#: adapter kinds: name -> class
ADAPTERS = Registry("audit adapter")

_LOCAL: dict = {}
_COUNTER = itertools.count()


class MissingDependency(ImportError):
    """An adapter's optional library is not installed (the message says what to install)."""


def _array(value, name: str, shape=None) -> np.ndarray:
    try:
        a = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - whatever the solver returned, say which field
        raise TypeError(f"SolverOutput.{name}: cannot be read as an array ({type(value).__name__})") from e
    if a.dtype.kind not in "fiu":
        raise TypeError(f"SolverOutput.{name} must be real numbers, got dtype {a.dtype}")
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"SolverOutput.{name} must have shape {tuple(shape)}, got {a.shape}")
    return a


@dataclass(frozen=True, eq=False)
class SolverOutput:
    r"""What a solver returns for one member. ``trajectory``: the states it computed, (N+1, d) at the grid times
    for a fixed-step member, (M+1, d) at its accepted times ``times`` for an adaptive one (or just the final state,
    (1, d), if that is all the library gives); ``loss`` :math:`L`; ``grad_theta`` (shape of ``member.theta``);
    ``grad_x0`` (d,); ``times`` the times of the trajectory rows (fixed: optional), or — with a single final row —
    an adaptive solver's accepted grid;
    ``estimate_times``/``estimate`` an optional estimate of :math:`\delta L/\delta\theta` at times (m, p).
    The arrays keep the dtype the solver used (a float32 result is audited as such)."""

    trajectory: np.ndarray
    loss: float
    grad_theta: np.ndarray
    grad_x0: np.ndarray
    times: np.ndarray | None = None
    estimate_times: np.ndarray | None = None
    estimate: np.ndarray | None = None

    def __post_init__(self):
        traj = _array(self.trajectory, "trajectory")
        if traj.ndim == 1:
            traj = traj[None, :]
        if traj.ndim != 2:
            raise ValueError(f"SolverOutput.trajectory must be 2-D (rows = states), got shape {traj.shape}")
        object.__setattr__(self, "trajectory", traj)
        loss = _array(self.loss, "loss")
        if loss.shape not in ((), (1,)):
            raise ValueError(f"SolverOutput.loss must be a scalar, got shape {loss.shape}")
        object.__setattr__(self, "loss", loss.reshape(()))
        object.__setattr__(self, "grad_theta", _array(self.grad_theta, "grad_theta"))
        object.__setattr__(self, "grad_x0", _array(self.grad_x0, "grad_x0", (traj.shape[1],)))
        if self.times is not None:  # the rows' times; with a single (final) row, an adaptive solver's accepted grid
            object.__setattr__(self, "times", _array(self.times, "times",
                                                     None if traj.shape[0] == 1 else (traj.shape[0],)))
        if (self.estimate is None) != (self.estimate_times is None):
            raise ValueError("SolverOutput: estimate and estimate_times go together")
        if self.estimate is not None:
            t = _array(self.estimate_times, "estimate_times")
            object.__setattr__(self, "estimate_times", t)
            e = _array(self.estimate, "estimate")
            if e.ndim != 2 or e.shape[0] != t.shape[0]:
                raise ValueError(f"SolverOutput.estimate must have shape ({t.shape[0]}, p), got {e.shape}")
            object.__setattr__(self, "estimate", e)

    def to_data(self) -> dict:
        """Plain arrays (what a sweep task returns)."""
        return {k: getattr(self, k) for k in ("trajectory", "loss", "grad_theta", "grad_x0", "times",
                                              "estimate_times", "estimate")}


class Adapter:
    """Base of the adapters: ``name`` (what the report calls the solver), ``__call__(member) -> SolverOutput``,
    ``to_spec()`` (rebuildable by :func:`adapter_from_spec`), ``local`` (True: lives in this process only)."""

    family: str = ""
    name: str = ""
    local: bool = False

    def __call__(self, member) -> SolverOutput:
        raise NotImplementedError

    def to_spec(self) -> dict:
        raise NotImplementedError

    def scheme_hint(self):
        """What the solver says its scheme is (a refimpl scheme name or convention), for the report; or None."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _callable_spec(fn, kind: str) -> dict:
    module, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if module and qual and "<" not in qual and module != "__main__":
        try:
            obj = importlib.import_module(module)
            for part in qual.split("."):
                obj = getattr(obj, part)
            if obj is fn:
                return {"target": f"{module}:{qual}"}
        except (ImportError, AttributeError):
            pass
    # unique beyond this process: a results folder reused later must never match another function's token
    token = f"{kind}-{uuid.uuid4().hex}-{next(_COUNTER)}"
    _LOCAL[token] = fn
    return {"token": token}


def resolve_callable(spec: dict):
    """The function a callable spec names: ``{"target": "module:qualname"}`` (imported) or a local token."""
    if not isinstance(spec, dict):
        raise TypeError(f"spec must be a dict with 'target' or 'token', got {type(spec).__name__}")
    if "target" in spec:
        module, _, qual = spec["target"].partition(":")
        obj = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
        return obj
    token = spec.get("token")
    if token not in _LOCAL:
        raise ValueError(f"adapter: the local function {token!r} is not in this process (a closure or a function of "
                         f"__main__ runs on the serial executor only; give an importable module:function)")
    return _LOCAL[token]


@ADAPTERS.register(name="callable")
class CallableAdapter(Adapter):
    """Your own solver: ``solve(member) -> SolverOutput`` (or a dict with its fields). ``name`` for the report."""

    family = "callable"

    def __init__(self, solve, name: str | None = None):
        if not callable(solve):
            raise TypeError(f"solve must be callable (member -> SolverOutput), got {type(solve).__name__}")
        self.solve = solve
        self.name = str(name) if name is not None else getattr(solve, "__name__", "callable")
        self._spec = _callable_spec(solve, "callable")
        self.local = "token" in self._spec

    def __call__(self, member) -> SolverOutput:
        out = self.solve(member)
        if isinstance(out, dict):
            out = SolverOutput(**out)
        if not isinstance(out, SolverOutput):
            raise TypeError(f"{self.name}: the solver returned {type(out).__name__}, expected a SolverOutput or a "
                            f"dict of its fields")
        return out

    def to_spec(self) -> dict:
        return {"family": "callable", "name": self.name, **self._spec}

    @classmethod
    def from_spec(cls, spec: dict) -> "CallableAdapter":
        return cls(resolve_callable(spec), spec.get("name"))


@ADAPTERS.register(name="tape")
class TapeAdapter(Adapter):
    r"""A forward pass written with NumPy, differentiated by refimpl's tape (``refimpl.ad`` through its NumPy
    dispatch, docs/numpy-dispatch.md): ``forward(member, x0, theta) -> list of states`` (x_0..x_N), called with tape
    Variables; the loss :math:`\tfrac12|x_N - y|^2` and both gradients come from one reverse sweep."""

    family = "tape"

    def __init__(self, forward, name: str | None = None):
        if not callable(forward):
            raise TypeError(f"forward must be callable (member, x0, theta) -> states, got {type(forward).__name__}")
        self.forward = forward
        self.name = str(name) if name is not None else getattr(forward, "__name__", "tape")
        self._spec = _callable_spec(forward, "tape")
        self.local = "token" in self._spec

    def __call__(self, member) -> SolverOutput:
        from refimpl.ad import getvalue, ops, value_and_grad
        x0 = np.asarray(member.x0, dtype=np.float64)
        theta = np.asarray(member.theta, dtype=np.float64)
        d, shape = x0.size, theta.shape
        y = np.asarray(member.y, dtype=np.float64)
        holder = {}

        def objective(z):
            states = self.forward(member, z[:d], ops.reshape(z[d:], shape))
            holder["states"] = [np.asarray(getvalue(s), dtype=np.float64) for s in states]
            r = states[-1] - y
            return 0.5 * ops.sum(r * r)

        value, g = value_and_grad(objective)(np.concatenate([x0, theta.ravel()]))
        g = np.asarray(g)
        return SolverOutput(np.stack(holder["states"]), float(getvalue(value)), g[d:].reshape(shape), g[:d])

    def to_spec(self) -> dict:
        return {"family": "tape", "name": self.name, **self._spec}

    @classmethod
    def from_spec(cls, spec: dict) -> "TapeAdapter":
        return cls(resolve_callable(spec), spec.get("name"))


def adapter_from_spec(spec: dict) -> Adapter:
    """Rebuild an adapter from its ``to_spec()`` (the family's module is imported on demand)."""
    if not isinstance(spec, dict) or "family" not in spec:
        raise TypeError(f"spec must be an adapter spec dict with a 'family', got {spec!r}")
    family = spec["family"]
    if family not in ADAPTERS:
        if family == "torchdiffeq":
            importlib.import_module("refimpl.audit.torchdiffeq_adapter")
        elif family == "diffrax":
            importlib.import_module("refimpl.audit.diffrax_adapter")
    return ADAPTERS.get(family).from_spec(spec)
