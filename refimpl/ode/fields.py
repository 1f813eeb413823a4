r"""Vector fields :math:`\dot x = f(x, \theta)` with hand-written Jacobians and vector-Jacobian products.

Every field implements the :class:`VectorField` protocol:

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

Terminal losses :math:`L = \Phi(x_N)` implement ``value(x)`` (taped, via ops) and ``grad(x)`` (ndarray);
:class:`QuadraticLoss` is :math:`\Phi(x) = \tfrac12|x-y|^2`, :math:`\nabla\Phi = x - y`.
"""
from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np

from refimpl.ad import ops
from refimpl.arguments import as_positive_integer, check_finite

__all__ = [
    "VectorField",
    "LinearField",
    "LinearForcingField",
    "ScaledLinearField",
    "TanhField",
    "TwoLayerTanhField",
    "PolynomialField",
    "UserField",
    "TerminalLoss",
    "QuadraticLoss",
    "UserLoss",
]


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


# ---------------------------------------------------------------------------------------------------------------------
# argument checking shared by the built-in fields


def _as_fixed_array(M, name: str, ndim: int = 2, shape=None) -> np.ndarray:
    """A fixed (non-parameter) coefficient array: float64/complex128/object ndarray, finite, ``ndim``-D, read-only copy.

    Object (Fraction) arrays are allowed for exact mode, so this is not :func:`refimpl.arguments.as_vector`.
    """
    if not isinstance(M, np.ndarray):
        M = np.asarray(M)
    if M.dtype.kind in "iub":
        M = M.astype(np.float64)
    if M.dtype.kind not in "fcO":
        raise TypeError(f"{name} must be a real, complex or object (Fraction) array, got dtype {M.dtype}")
    if M.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {M.shape}")
    if shape is not None and M.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {M.shape}")
    if M.dtype.kind in "fc":
        check_finite(M, name)
    M = M.copy()
    M.flags.writeable = False
    return M


def _shape(a):
    return getattr(a, "shape", None)


def _raw(a):
    """The ndarray under a Variable (for the ndarray-only Jacobian methods)."""
    while hasattr(a, "value") and not isinstance(a, np.ndarray):
        a = a.value
    return np.asarray(a)


class _HandField:
    """Shape checks shared by the built-in fields (the Jacobian methods also check finiteness)."""

    dim: int
    n_params: int

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


def _result_dtype(*arrays):
    return np.result_type(*arrays) if all(a.dtype != object for a in arrays) else np.dtype(object)


# ---------------------------------------------------------------------------------------------------------------------
# linear fields


class LinearField(_HandField):
    r"""Affine field :math:`f(x,\theta) = A x + b`, :math:`\theta = (\mathrm{vec}\,A, b)`, :math:`p = d^2 + d`.

    :math:`\partial_x f = A`; :math:`\partial f_i/\partial A_{kl} = \delta_{ik} x_l`, :math:`\partial_b f = I`; so
    :math:`\partial_x f^{\mathsf T} v = A^{\mathsf T} v` and :math:`\partial_\theta f^{\mathsf T} v =
    (\mathrm{vec}(v x^{\mathsf T}), v)`. Polynomial, so it also runs on Fraction ``object`` arrays.
    """

    def __init__(self, dim: int):
        self.dim = as_positive_integer(dim, "dim")
        self.n_params = self.dim * self.dim + self.dim

    def __repr__(self) -> str:
        return f"LinearField(dim={self.dim})"

    def pack(self, A, b) -> np.ndarray:
        A, b = np.asarray(A), np.asarray(b)
        if A.shape != (self.dim, self.dim):
            raise ValueError(f"A must have shape ({self.dim}, {self.dim}), got {A.shape}")
        if b.shape != (self.dim,):
            raise ValueError(f"b must have shape ({self.dim},), got {b.shape}")
        return np.concatenate([A.ravel(), b])

    def unpack(self, theta):
        d = self.dim
        return ops.reshape(theta[: d * d], (d, d)), theta[d * d:]

    def f(self, x, theta):
        self._check_f_args(x, theta)
        A, b = self.unpack(theta)
        return ops.matmul(A, x) + b

    def dfdx(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        return np.array(self.unpack(theta)[0])

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        d = self.dim
        J = np.zeros((d, self.n_params), dtype=_result_dtype(x, theta))
        for i in range(d):
            J[i, i * d:(i + 1) * d] = x
            J[i, d * d + i] = 1
        return J

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        A = self.unpack(theta)[0]
        return A.T @ v

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return np.concatenate([np.outer(v, x).ravel(), v])


class LinearForcingField(_HandField):
    r"""Fixed matrix, parameter = forcing: :math:`f(x,\theta) = A x + \theta`, :math:`p = d`.

    :math:`\partial_x f = A`, :math:`\partial_\theta f = I`. Exact solution for piecewise-known :math:`\theta(t)` by the
    variation-of-constants formula, which makes it the field for analytic cases.
    """

    def __init__(self, A):
        self.A = _as_fixed_array(A, "A")
        if self.A.shape[0] != self.A.shape[1]:
            raise ValueError(f"A must be square, got shape {self.A.shape}")
        self.dim = self.A.shape[0]
        self.n_params = self.dim

    def __repr__(self) -> str:
        return f"LinearForcingField(dim={self.dim})"

    def f(self, x, theta):
        self._check_f_args(x, theta)
        return ops.matmul(self.A, x) + theta

    def dfdx(self, x, theta) -> np.ndarray:
        self._checked(x, theta)
        return np.array(self.A)

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        J = np.zeros((self.dim, self.dim), dtype=_result_dtype(x, theta, self.A))
        for i in range(self.dim):
            J[i, i] = 1
        return J

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return self.A.T @ v

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        self._checked(x, theta, v)
        return np.array(_raw(v))


class ScaledLinearField(_HandField):
    r"""Fixed matrix, scalar parameter: :math:`f(x,\theta) = \theta_0 A x`, :math:`p = 1`.

    :math:`\partial_x f = \theta_0 A`, :math:`\partial_\theta f = A x` (one column). For constant :math:`\theta_0 = s`,
    :math:`x(T) = e^{sTA}x_0` (``scipy.linalg.expm``); with :math:`d = 1` this is :math:`\dot x = \lambda x`.
    """

    def __init__(self, A):
        self.A = _as_fixed_array(A, "A")
        if self.A.shape[0] != self.A.shape[1]:
            raise ValueError(f"A must be square, got shape {self.A.shape}")
        self.dim = self.A.shape[0]
        self.n_params = 1

    def __repr__(self) -> str:
        return f"ScaledLinearField(dim={self.dim})"

    def f(self, x, theta):
        self._check_f_args(x, theta)
        return theta[0] * ops.matmul(self.A, x)

    def dfdx(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        return theta[0] * self.A

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        return (self.A @ x).reshape(self.dim, 1)

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return theta[0] * (self.A.T @ v)

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return np.array([np.dot(v, self.A @ x)])


# ---------------------------------------------------------------------------------------------------------------------
# neural fields


class TanhField(_HandField):
    r"""One-layer field :math:`f(x,\theta) = \tanh(W x + b)`, :math:`\theta = (\mathrm{vec}\,W, b)`, :math:`p = d^2+d`.

    With :math:`z = Wx + b`, :math:`s = 1 - \tanh^2 z`: :math:`\partial_x f = \mathrm{diag}(s) W`,
    :math:`\partial_x f^{\mathsf T} v = W^{\mathsf T}(s\circ v)`, :math:`\partial_\theta f^{\mathsf T} v =
    (\mathrm{vec}((s\circ v) x^{\mathsf T}), s\circ v)`. The field of the phenomenon in SPEC §3 / [A].
    """

    def __init__(self, dim: int):
        self.dim = as_positive_integer(dim, "dim")
        self.n_params = self.dim * self.dim + self.dim

    def __repr__(self) -> str:
        return f"TanhField(dim={self.dim})"

    pack = LinearField.pack
    unpack = LinearField.unpack

    def f(self, x, theta):
        self._check_f_args(x, theta)
        W, b = self.unpack(theta)
        return ops.tanh(ops.matmul(W, x) + b)

    def _s(self, x, theta):
        W, b = self.unpack(theta)
        t = np.tanh(W @ x + b)
        return W, 1 - t * t

    def dfdx(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        W, s = self._s(x, theta)
        return s[:, None] * W

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        d = self.dim
        _, s = self._s(x, theta)
        J = np.zeros((d, self.n_params), dtype=np.result_type(x, theta))
        for i in range(d):
            J[i, i * d:(i + 1) * d] = s[i] * x
            J[i, d * d + i] = s[i]
        return J

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        W, s = self._s(x, theta)
        return W.T @ (s * v)

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        _, s = self._s(x, theta)
        sv = s * v
        return np.concatenate([np.outer(sv, x).ravel(), sv])


class TwoLayerTanhField(_HandField):
    r"""Two-layer field :math:`f(x,\theta) = W_2 \tanh(W_1 x + b)`, :math:`W_1\in\mathbb R^{m\times d}`,
    :math:`W_2\in\mathbb R^{d\times m}`.

    ``W2=None``: all weights trainable, :math:`\theta = (\mathrm{vec}\,W_1, b, \mathrm{vec}\,W_2)`, :math:`p = 2md+m`;
    ``W2`` given: it is fixed and :math:`\theta = (\mathrm{vec}\,W_1, b)`, :math:`p = md+m`.
    With :math:`z = W_1x+b`, :math:`s = 1-\tanh^2 z`, :math:`u = s\circ(W_2^{\mathsf T}v)`:
    :math:`\partial_x f^{\mathsf T}v = W_1^{\mathsf T}u`, :math:`\partial_{W_1}: \mathrm{vec}(u x^{\mathsf T})`,
    :math:`\partial_b: u`, :math:`\partial_{W_2}: \mathrm{vec}(v \tanh(z)^{\mathsf T})`.
    """

    def __init__(self, dim: int, hidden: int, W2=None):
        self.dim = as_positive_integer(dim, "dim")
        self.hidden = as_positive_integer(hidden, "hidden")
        d, m = self.dim, self.hidden
        self.W2 = None if W2 is None else _as_fixed_array(W2, "W2", 2, (d, m))
        self.n_params = m * d + m + (m * d if self.W2 is None else 0)

    def __repr__(self) -> str:
        fixed = ", W2 fixed" if self.W2 is not None else ""
        return f"TwoLayerTanhField(dim={self.dim}, hidden={self.hidden}{fixed})"

    def pack(self, W1, b, W2=None) -> np.ndarray:
        d, m = self.dim, self.hidden
        W1, b = np.asarray(W1), np.asarray(b)
        if W1.shape != (m, d):
            raise ValueError(f"W1 must have shape ({m}, {d}), got {W1.shape}")
        if b.shape != (m,):
            raise ValueError(f"b must have shape ({m},), got {b.shape}")
        parts = [W1.ravel(), b]
        if self.W2 is None:
            if W2 is None or np.shape(W2) != (d, m):
                raise ValueError(f"W2 must have shape ({d}, {m}) (it is trainable in this field)")
            parts.append(np.asarray(W2).ravel())
        elif W2 is not None:
            raise ValueError("W2 is fixed in this field; do not pass it to pack")
        return np.concatenate(parts)

    def unpack(self, theta):
        d, m = self.dim, self.hidden
        W1 = ops.reshape(theta[: m * d], (m, d))
        b = theta[m * d: m * d + m]
        W2 = self.W2 if self.W2 is not None else ops.reshape(theta[m * d + m:], (d, m))
        return W1, b, W2

    def f(self, x, theta):
        self._check_f_args(x, theta)
        W1, b, W2 = self.unpack(theta)
        return ops.matmul(W2, ops.tanh(ops.matmul(W1, x) + b))

    def _hidden(self, x, theta):
        W1, b, W2 = self.unpack(theta)
        t = np.tanh(W1 @ x + b)
        return W1, W2, t, 1 - t * t

    def dfdx(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        W1, W2, _, s = self._hidden(x, theta)
        return (W2 * s[None, :]) @ W1

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        d, m = self.dim, self.hidden
        W1, W2, t, s = self._hidden(x, theta)
        J = np.zeros((d, self.n_params), dtype=np.result_type(x, theta))
        for k in range(m):
            # f_i = sum_k W2[i,k] t_k,  dt_k/dW1[k,l] = s_k x_l,  dt_k/db_k = s_k
            J[:, k * d:(k + 1) * d] = np.outer(W2[:, k] * s[k], x)
            J[:, m * d + k] = W2[:, k] * s[k]
        if self.W2 is None:
            off = m * d + m
            for i in range(d):
                J[i, off + i * m: off + (i + 1) * m] = t
        return J

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        W1, W2, _, s = self._hidden(x, theta)
        return W1.T @ (s * (W2.T @ v))

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        W1, W2, t, s = self._hidden(x, theta)
        u = s * (W2.T @ v)
        parts = [np.outer(u, x).ravel(), u]
        if self.W2 is None:
            parts.append(np.outer(v, t).ravel())
        return np.concatenate(parts)


# ---------------------------------------------------------------------------------------------------------------------
# polynomial field (exact mode)


class PolynomialField(_HandField):
    r"""Quadratic field :math:`f(x,\theta) = c + B x + q\circ x\circ x`, :math:`\theta = (c, \mathrm{vec}\,B, q)`,
    :math:`p = d^2 + 2d`.

    :math:`\partial_x f = B + \mathrm{diag}(2 q\circ x)`; :math:`\partial_x f^{\mathsf T} v = B^{\mathsf T} v +
    2 q\circ x\circ v`; :math:`\partial_\theta f^{\mathsf T} v = (v, \mathrm{vec}(v x^{\mathsf T}), x\circ x\circ v)`.
    Only ``+``, ``*`` and ``matmul``: it runs exactly on ``object`` arrays of :class:`fractions.Fraction` (exact mode,
    SPEC §1) and on any commutative ring elements (e.g. dual numbers).
    """

    def __init__(self, dim: int):
        self.dim = as_positive_integer(dim, "dim")
        self.n_params = self.dim * self.dim + 2 * self.dim

    def __repr__(self) -> str:
        return f"PolynomialField(dim={self.dim})"

    def pack(self, c, B, q) -> np.ndarray:
        d = self.dim
        c, B, q = np.asarray(c), np.asarray(B), np.asarray(q)
        for a, name, shp in ((c, "c", (d,)), (B, "B", (d, d)), (q, "q", (d,))):
            if a.shape != shp:
                raise ValueError(f"{name} must have shape {shp}, got {a.shape}")
        return np.concatenate([c, B.ravel(), q])

    def unpack(self, theta):
        d = self.dim
        return theta[:d], ops.reshape(theta[d: d + d * d], (d, d)), theta[d + d * d:]

    def f(self, x, theta):
        self._check_f_args(x, theta)
        c, B, q = self.unpack(theta)
        return c + ops.matmul(B, x) + q * x * x

    def dfdx(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        _, B, q = self.unpack(theta)
        J = np.array(B, dtype=_result_dtype(x, theta))
        for i in range(self.dim):
            J[i, i] = J[i, i] + 2 * q[i] * x[i]
        return J

    def dfdtheta(self, x, theta) -> np.ndarray:
        x, theta = self._checked(x, theta)
        d = self.dim
        J = np.zeros((d, self.n_params), dtype=_result_dtype(x, theta))
        for i in range(d):
            J[i, i] = 1
            J[i, d + i * d: d + (i + 1) * d] = x
            J[i, d + d * d + i] = x[i] * x[i]
        return J

    def vjp_x(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        _, B, q = self.unpack(theta)
        return B.T @ v + 2 * q * x * v

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        x, theta, v = self._checked(x, theta, v)
        return np.concatenate([v, np.outer(v, x).ravel(), x * x * v])


# ---------------------------------------------------------------------------------------------------------------------
# a user's field


class UserField(_HandField):
    r"""A user's taped function ``f(x, theta)`` (written with :mod:`refimpl.ad.ops`), Jacobians by the tape.

    ``dfdx``/``dfdtheta`` are :func:`refimpl.ad.jacobian`, the VJPs :func:`refimpl.ad.vjp`; so a discrete adjoint on a
    ``UserField`` is only as trustworthy as the tape (the built-in fields have hand-written derivatives instead).
    """

    def __init__(self, f: Callable, dim: int, n_params: int, name: str = "user"):
        if not callable(f):
            raise TypeError(f"f must be callable, got {type(f).__name__}")
        self._f = f
        self.dim = as_positive_integer(dim, "dim")
        self.n_params = as_positive_integer(n_params, "n_params")
        self.name = str(name)

    def __repr__(self) -> str:
        return f"UserField({self.name!r}, dim={self.dim}, n_params={self.n_params})"

    def f(self, x, theta):
        self._check_f_args(x, theta)
        out = self._f(x, theta)
        if _shape(out) != (self.dim,):
            raise ValueError(f"the user's f returned shape {_shape(out)}, expected ({self.dim},)")
        return out

    def dfdx(self, x, theta) -> np.ndarray:
        from refimpl.ad import jacobian

        x, theta = self._checked(x, theta)
        return np.asarray(jacobian(lambda xx: self._f(xx, theta))(x))

    def dfdtheta(self, x, theta) -> np.ndarray:
        from refimpl.ad import jacobian

        x, theta = self._checked(x, theta)
        return np.asarray(jacobian(lambda tt: self._f(x, tt))(theta))

    def vjp_x(self, x, theta, v) -> np.ndarray:
        from refimpl.ad import vjp

        x, theta, v = self._checked(x, theta, v)
        _, back = vjp(lambda xx: self._f(xx, theta), x)
        return _single_cotangent(back(v))

    def vjp_theta(self, x, theta, v) -> np.ndarray:
        from refimpl.ad import vjp

        x, theta, v = self._checked(x, theta, v)
        _, back = vjp(lambda tt: self._f(x, tt), theta)
        return _single_cotangent(back(v))


def _single_cotangent(out) -> np.ndarray:
    if isinstance(out, (tuple, list)):
        if len(out) != 1:
            raise RuntimeError("refimpl.ad.vjp returned several cotangents for a one-argument function")
        out = out[0]
    return np.asarray(out)


# ---------------------------------------------------------------------------------------------------------------------
# terminal losses


@runtime_checkable
class TerminalLoss(Protocol):
    r"""A terminal loss :math:`L = \Phi(x_N)`: ``value(x)`` (taped, via ops) and ``grad(x)`` (ndarray)."""

    def value(self, x): ...

    def grad(self, x) -> np.ndarray: ...


class QuadraticLoss:
    r""":math:`\Phi(x) = \tfrac12 \sum_i (x_i - y_i)^2`, :math:`\nabla\Phi(x) = x - y`.

    Written without ``abs``/``conj``, so it is holomorphic and complex-step checks see its derivative.
    """

    def __init__(self, y):
        self.y = _as_fixed_array(y, "y", 1)

    def __repr__(self) -> str:
        return f"QuadraticLoss(dim={self.y.shape[0]})"

    def _check(self, x):
        if _shape(x) != self.y.shape:
            raise ValueError(f"x must have shape {self.y.shape}, got {_shape(x)}")

    def value(self, x):
        self._check(x)
        r = x - self.y
        return ops.sum(r * r) / 2

    def grad(self, x) -> np.ndarray:
        self._check(x)
        return _raw(x) - self.y


class UserLoss:
    """A user's terminal loss: ``phi(x)`` (taped, via ops) and its gradient ``grad_phi(x)`` (ndarray)."""

    def __init__(self, phi: Callable, grad_phi: Callable, name: str = "user"):
        if not callable(phi):
            raise TypeError(f"phi must be callable, got {type(phi).__name__}")
        if not callable(grad_phi):
            raise TypeError(f"grad_phi must be callable, got {type(grad_phi).__name__}")
        self._phi, self._grad_phi, self.name = phi, grad_phi, str(name)

    def __repr__(self) -> str:
        return f"UserLoss({self.name!r})"

    def value(self, x):
        return self._phi(x)

    def grad(self, x) -> np.ndarray:
        g = np.asarray(self._grad_phi(_raw(x)))
        if g.shape != _shape(x):
            raise ValueError(f"grad_phi returned shape {g.shape}, expected {_shape(x)}")
        return g
