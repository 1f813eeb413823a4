r"""Neural vector fields: one tanh layer :math:`\tanh(Wx + b)` and two layers :math:`W_2\tanh(W_1x + b)`."""
from __future__ import annotations

import numpy as np

from refimpl.ad import ops
from refimpl.arguments import as_positive_integer
from refimpl.arguments import as_fixed_array
from refimpl.ode.fields.base import FIELDS, HandField, NumbaKernel, _fixed_list
from refimpl.ode.fields.linear import LinearField, affine_n_params

__all__ = ["TanhField", "TwoLayerTanhField", "sech2"]


def sech2(z):
    r""":math:`\operatorname{sech}^2 z = 1 - \tanh^2 z = 4w/(1+w)^2`, :math:`w = e^{-2\sigma z}`, :math:`\sigma =
    \operatorname{sign}\operatorname{Re} z` (+1 at 0), elementwise (float64 or complex128).

    1 − tanh² z formed from a rounded tanh cancels: at |z| ≈ 10 it keeps ~8 digits, from |z| ≈ 18 none. This form has no
    cancellation (w ∈ (0, 1] for real z) and is the one every route uses — the tape's tanh VJP
    (:mod:`refimpl.ad.ops`), these hand Jacobians and the compiled kernel (:mod:`refimpl.ode._numba`), in the same order
    of operations — so the routes agree to rounding in the saturated regime too. Both signs of σ give the same entire
    function, so the form stays holomorphic (complex step)."""
    z = np.asarray(z)
    w = np.exp(np.where(np.real(z) < 0, 2.0, -2.0) * z)
    q = 1.0 + w
    return 4.0 * w / (q * q)


@FIELDS.register
class TanhField(HandField):
    r"""One-layer field :math:`f(x,\theta) = \tanh(W x + b)`, :math:`\theta = (\mathrm{vec}\,W, b)`, :math:`p = d^2+d`.

    With :math:`z = Wx + b`, :math:`s = 1 - \tanh^2 z = \operatorname{sech}^2 z` (computed by :func:`sech2`, without
    cancellation): :math:`\partial_x f = \mathrm{diag}(s) W`,
    :math:`\partial_x f^{\mathsf T} v = W^{\mathsf T}(s\circ v)`, :math:`\partial_\theta f^{\mathsf T} v =
    (\mathrm{vec}((s\circ v) x^{\mathsf T}), s\circ v)`. The field of the oscillation phenomenon of [A] (arXiv
    2306.02192; docs/theory/oscillations-and-corrections.md).
    """

    family = "tanh"
    formula = "f(x, theta) = tanh(W x + b), theta = (W row-major, b)"
    kernel = NumbaKernel("refimpl.ode._numba", "tanh_f", "tanh_vjp", affine_n_params, vjp_reads_fx=False,
                         vjp_x="tanh_vjp_x", vjp_theta="affine_vjp_theta")

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
        return W, sech2(W @ x + b)

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


@FIELDS.register
class TwoLayerTanhField(HandField):
    r"""Two-layer field :math:`f(x,\theta) = W_2 \tanh(W_1 x + b)`, :math:`W_1\in\mathbb R^{m\times d}`,
    :math:`W_2\in\mathbb R^{d\times m}`.

    ``W2=None``: all weights trainable, :math:`\theta = (\mathrm{vec}\,W_1, b, \mathrm{vec}\,W_2)`, :math:`p = 2md+m`;
    ``W2`` given: it is fixed and :math:`\theta = (\mathrm{vec}\,W_1, b)`, :math:`p = md+m`.
    With :math:`z = W_1x+b`, :math:`s = 1-\tanh^2 z` (by :func:`sech2`), :math:`u = s\circ(W_2^{\mathsf T}v)`:
    :math:`\partial_x f^{\mathsf T}v = W_1^{\mathsf T}u`, :math:`\partial_{W_1}: \mathrm{vec}(u x^{\mathsf T})`,
    :math:`\partial_b: u`, :math:`\partial_{W_2}: \mathrm{vec}(v \tanh(z)^{\mathsf T})`.
    """

    family = "two_layer_tanh"
    formula = ("f(x, theta) = W2 tanh(W1 x + b), theta = (W1 row-major (hidden x d), b, W2 row-major "
               "(d x hidden)) or (W1, b) when W2 is fixed")

    def __init__(self, dim: int, hidden: int, W2=None):
        self.dim = as_positive_integer(dim, "dim")
        self.hidden = as_positive_integer(hidden, "hidden")
        d, m = self.dim, self.hidden
        self.W2 = None if W2 is None else as_fixed_array(W2, "W2", 2, (d, m))
        self.n_params = m * d + m + (m * d if self.W2 is None else 0)

    def __repr__(self) -> str:
        fixed = ", W2 fixed" if self.W2 is not None else ""
        return f"TwoLayerTanhField(dim={self.dim}, hidden={self.hidden}{fixed})"

    def _spec_extra(self) -> dict:
        extra = {"hidden": int(self.hidden)}
        if self.W2 is not None:
            extra["fixed"] = {"W2": _fixed_list(self.W2)}
        return extra

    @classmethod
    def _from_spec(cls, spec: dict):
        fixed = spec.get("fixed", {})
        return cls(spec["dim"], spec["hidden"], None if "W2" not in fixed else np.array(fixed["W2"]))

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
        z = W1 @ x + b
        return W1, W2, np.tanh(z), sech2(z)

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


