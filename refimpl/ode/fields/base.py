r"""What every vector field is: the :class:`VectorField` protocol, the :class:`HandField` base class of the built-in
fields (shape checks, the ``to_spec``/``from_spec`` round trip), the accelerated-kernel descriptor :class:`NumbaKernel`,
and the registry :data:`FIELDS` of the storable families.

The protocol:

``dim``                      state dimension :math:`d`;
``n_params``                 parameter dimension :math:`p` (one parameter *sample* is a vector of length :math:`p`);
``f(x, theta)``              :math:`f(x,\theta)\in\mathbb R^d`; written with :mod:`refimpl.ad.ops` (or plain operators),
                             so it runs on NumPy arrays (float64, complex128, ``object`` arrays of
                             :class:`fractions.Fraction` where the formula is polynomial) *and* on tape ``Variable``\ s;
``dfdx(x, theta)``           :math:`\partial_x f\in\mathbb R^{d\times d}` (ndarray);
``dfdtheta(x, theta)``       :math:`\partial_\theta f\in\mathbb R^{d\times p}` (ndarray);
``vjp_x(x, theta, v)``       :math:`\partial_x f^{\mathsf T} v\in\mathbb R^d`;
``vjp_theta(x, theta, v)``   :math:`\partial_\theta f^{\mathsf T} v\in\mathbb R^p`.

The Jacobian methods take and return plain ndarrays. They are *linear transposes* (no complex conjugation), so for
complex128 inputs they are the holomorphic derivatives a complex-step check needs.

Parameter vectors are flat; matrices inside them are stored row-major (``W.ravel()``), and each field has
``pack(...)`` / ``unpack(theta)`` to go between the flat vector and its named pieces.

A storable family (one class, registered in :data:`FIELDS` under its ``family``) also carries its ``formula`` (the text
written into a case file), ``to_spec()`` (its JSON description: ``family``, ``dim``, ``n_params``, ``formula`` and the
family's own keys) and the classmethod ``from_spec(spec)`` (the inverse, which checks that the rebuilt field has the
described ``dim`` and ``n_params``), and ``kernel``: its :class:`NumbaKernel` when the discrete adjoint has a compiled
path for it, else ``None``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from refimpl.arguments import check_finite
from refimpl.registry import Registry

__all__ = ["VectorField", "HandField", "NumbaKernel", "FIELDS"]

#: the storable vector-field families: family name -> field class
FIELDS = Registry("vector field")


@runtime_checkable
class VectorField(Protocol):
    """What the integrators and adjoints need from a vector field (see the module docstring)."""

    dim: int
    n_params: int

    def f(self, x, theta): ...

    def dfdx(self, x, theta) -> np.ndarray: ...

    def dfdtheta(self, x, theta) -> np.ndarray: ...

    def vjp_x(self, x, theta, v) -> np.ndarray: ...

    def vjp_theta(self, x, theta, v) -> np.ndarray: ...


@dataclass(frozen=True)
class NumbaKernel:
    r"""A field's accelerated-kernel descriptor: where its compiled point functions live.

    ``module`` and the names ``f`` / ``vjp`` of two functions in it, written for
    :func:`numba.extending.register_jitable` (plain Python that Numba compiles inline into the generic ERK / LMM
    sweeps of :mod:`refimpl.ode._numba`, which know no field):

    * ``f(x, th, out)`` — ``out[:] = f(x, theta)`` for one flat float64 parameter sample ``th``;
    * ``vjp(x, fx, th, v, out_x, g_th)`` — ``out_x[:] = ∂ₓf(x, θ)ᵀv`` (overwritten) and ``g_th += ∂_θf(x, θ)ᵀv``
      (accumulated); ``fx`` is ``f(x, θ)`` as ``f`` computed it, read only when ``vjp_reads_fx``. ``v`` is the
      sweep's scratch copy of the cotangent: the sweeps never read it after the call, so ``vjp`` may overwrite it
      (the tanh field's VJP keeps ∂L/∂z there).

    Optionally the VJP in two parts, ``vjp_x`` and ``vjp_theta`` (both names or neither), which let the LMM backward
    sweep run its gradient rows on a second thread (refimpl.ode._numba ``lmm_backward_two_threads``):

    * ``vjp_x(x, fx, th, v, out_x)`` — ``out_x[:] = ∂ₓf(x, θ)ᵀv``, leaving in ``v`` a vector w of length d;
    * ``vjp_theta(w, x, g_th)`` — ``g_th += ∂_θf(x, θ)ᵀv`` from that w.

    Together they must give every entry the operations ``vjp`` gives it, in the same order (the same bits).

    ``n_params(d)`` is the parameter length for state dimension ``d`` (the kernels check ``theta`` against it).
    ``register_jitable(inline="always")`` on ``f`` avoids a call per stage evaluation (the built-in fields do this).
    The descriptor is hashable, so the compiled sweeps are built once per descriptor.
    """

    module: str
    f: str
    vjp: str
    n_params: Callable[[int], int]
    vjp_reads_fx: bool = True
    vjp_x: str | None = None
    vjp_theta: str | None = None

    def __post_init__(self):
        if (self.vjp_x is None) != (self.vjp_theta is None):
            raise ValueError("NumbaKernel: give both vjp_x and vjp_theta, or neither")

    def functions(self):
        """``(f, vjp)``, imported from ``module`` (importing it imports Numba)."""
        mod = importlib.import_module(self.module)
        return getattr(mod, self.f), getattr(mod, self.vjp)

    def split_functions(self):
        """``(vjp_x, vjp_theta)`` imported from ``module``, or None when the descriptor names no split VJP."""
        if self.vjp_x is None:
            return None
        mod = importlib.import_module(self.module)
        return getattr(mod, self.vjp_x), getattr(mod, self.vjp_theta)


# ---------------------------------------------------------------------------------------------------------------------
# helpers shared by the built-in fields


def _shape(a):
    return getattr(a, "shape", None)


def _raw(a):
    """The ndarray under a Variable (for the ndarray-only Jacobian methods)."""
    while hasattr(a, "value") and not isinstance(a, np.ndarray):
        a = a.value
    return np.asarray(a)


def _result_dtype(*arrays):
    return np.result_type(*arrays) if all(a.dtype != object for a in arrays) else np.dtype(object)


def _fixed_list(M) -> list:
    """A fixed coefficient matrix as it is written into a case file (float64 nested lists)."""
    return np.asarray(M, dtype=np.float64).tolist()


class HandField:
    """Base of the built-in fields: shape checks (the Jacobian methods also check finiteness) and the spec round trip.

    A subclass sets ``family`` and ``formula`` (class attributes; ``family = None``: not storable), implements the
    protocol, and — when its constructor needs more than ``dim`` — overrides :meth:`_spec_extra` (the keys after
    ``formula``) and :meth:`_from_spec`. ``kernel`` is its :class:`NumbaKernel` or ``None``; a subclass that changes
    the formula of a field with a kernel must set ``kernel = None``.
    """

    family: str | None = None
    formula: str | None = None
    kernel: NumbaKernel | None = None
    dim: int
    n_params: int

    # -- spec round trip ----------------------------------------------------------------------------------------------
    def to_spec(self) -> dict:
        """The JSON description of this field (``ValueError`` for a field that cannot be stored as data)."""
        if self.family is None:
            raise ValueError(f"field: {type(self).__name__} cannot be stored in a case (registered families only: "
                             f"{FIELDS.names()})")
        spec = {"family": self.family, "dim": int(self.dim), "n_params": int(self.n_params), "formula": self.formula}
        spec.update(self._spec_extra())
        return spec

    def _spec_extra(self) -> dict:
        return {}

    @classmethod
    def from_spec(cls, spec: dict):
        """The field described by ``spec`` (inverse of :meth:`to_spec`; checks ``dim`` and ``n_params``)."""
        family, d = spec["family"], spec["dim"]
        if family != cls.family:
            raise ValueError(f"field.family: {cls.__name__} is the {cls.family!r} family, the spec says {family!r}")
        field = cls._from_spec(spec)
        if field.dim != d or field.n_params != spec["n_params"]:
            raise ValueError(f"field: the spec says dim = {d}, n_params = {spec['n_params']}, the {family} field "
                             f"built from it has dim = {field.dim}, n_params = {field.n_params}")
        return field

    @classmethod
    def _from_spec(cls, spec: dict):
        return cls(spec["dim"])

    # -- argument checks ----------------------------------------------------------------------------------------------
    def _check_f_args(self, x, theta) -> None:
        if _shape(x) != (self.dim,):
            raise ValueError(f"x must have shape ({self.dim},), got {_shape(x)}")
        if _shape(theta) != (self.n_params,):
            raise ValueError(f"theta must have shape ({self.n_params},), got {_shape(theta)}")

    def _checked(self, x, theta, v=None):
        self._check_f_args(x, theta)
        out = [_raw(x), _raw(theta)]
        names = ["x", "theta"]
        if v is not None:
            if _shape(v) != (self.dim,):
                raise ValueError(f"v must have shape ({self.dim},), got {_shape(v)}")
            out.append(_raw(v))
            names.append("v")
        for a, name in zip(out, names):
            if a.dtype.kind in "fc":
                check_finite(a, name)
        return out

    def dfdx(self, x, theta) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def dfdtheta(self, x, theta) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

