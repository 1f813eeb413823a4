"""The two problems on which the oscillation phenomenon of [A] (arXiv 2306.02192;
docs/theory/oscillations-and-corrections.md) is measured, with vectorised references δL/δθ(t).

Shared by ``validation/neural_ode_oscillations.py`` and ``tests/test_corrections.py`` (and usable by anyone
reproducing [A]):

* :class:`NeuralCase` — ẋ = tanh(W(t)x + b(t)), d = 2, T = 1, random smooth θ(t) from a seed; reference by the
  continuous adjoint (DOP853, rtol 1e-12);
* :class:`LinearCase` — :class:`refimpl.problems.analytic_ode.LinearSystemCase` with its closed form evaluated for
  many times at once.
"""
from __future__ import annotations

import numpy as np

from refimpl.problems.analytic_ode import LinearSystemCase
from refimpl.ode.adjoint_ode import continuous_adjoint
from refimpl.ode.fields import QuadraticLoss, TanhField

#: default seed of :class:`NeuralCase` (the paper's arXiv number)
SEED = 2306_02192

__all__ = ["NeuralCase", "LinearCase", "SEED"]


class NeuralCase:
    """The neural case of the oscillation experiment: ẋ = tanh(W(t)x + b(t)), d = 2, T = 1, Φ = ½|x(T) − y|²; θ = (vec W, b),
    θ(t) = θ̄ + Σ_{k=0}^{2} a_k/(2(k+1)) sin((k+1)πt + φ_k), θ̄ ~ 0.7·N(0, I), a_k ~ N(0, I), φ_k ~ U(0, 2π), x₀, y ~
    N(0, I), all from one fixed seed. Reference: refimpl.ode.adjoint_ode (DOP853, rtol 1e-12)."""

    name = "neural tanh, d=2"

    def __init__(self, seed: int = SEED):
        rng = np.random.default_rng(seed)
        self.field = TanhField(2)
        p = self.field.n_params
        self.base = 0.7 * rng.standard_normal(p)
        self.amp = rng.standard_normal((3, p))
        self.phase = rng.uniform(0, 2 * np.pi, (3, p))
        self.x0 = rng.standard_normal(2)
        self.loss = QuadraticLoss(rng.standard_normal(2))
        self.T = 1.0
        self.reference_error = None

    def theta(self, t):
        t = np.asarray(t, dtype=np.float64)[..., None]
        return self.base + sum(self.amp[k] * 0.5 / (k + 1) * np.sin((k + 1) * np.pi * t + self.phase[k])
                               for k in range(3))

    def reference(self, times, estimate_error: bool = False):
        res = continuous_adjoint(self.field, lambda t: self.theta(t), self.x0, self.T, self.loss, times=times,
                                 error_estimate="tighter" if estimate_error else None)
        if estimate_error:
            self.reference_error = res.error.functional_gradient
        return res.functional_gradient


class LinearCase:
    """The linear case of the oscillation experiment: refimpl.problems.analytic_ode.LinearSystemCase (ẋ = Ax + b₀ + b₁t, d = 2,
    T = 2, θ = (vec A, b)). Its closed form evaluated for many times at once through A = VΛV⁻¹ (derived, checked against
    the case's expm route in tests/test_corrections.py): x(t) = e^{At}x₀ + A⁻¹(e^{At} − I)b₀ + (A⁻²(e^{At} − I) −
    A⁻¹t)b₁, p(t) = e^{Aᵀ(T−t)}(x(T) − y), δL/δθ = (vec(p xᵀ), p)."""

    name = "analytic linear, d=2"

    def __init__(self):
        self.case = LinearSystemCase()
        self.field, self.x0, self.loss, self.T = self.case.field, self.case.x0, self.case.loss, self.case.T
        c = self.case.coefficients
        self.A, self.b0, self.b1 = c[:4].reshape(2, 2), c[4:6], c[6:8]
        self.reference_error = None

    def theta(self, t):
        return np.array([self.case.theta(s) for s in np.atleast_1d(t)])

    def _expA(self, t, transpose=False):
        lam, V = np.linalg.eig(self.A.T if transpose else self.A)
        E = np.exp(np.multiply.outer(t, lam))
        return np.real(np.einsum("ij,mj,jk->mik", V, E, np.linalg.inv(V)))

    def _x(self, t):
        Ainv = np.linalg.inv(self.A)
        EmI = self._expA(t) - np.eye(2)
        return (self._expA(t) @ self.x0 + (Ainv @ EmI) @ self.b0 + (Ainv @ Ainv @ EmI) @ self.b1
                - np.multiply.outer(t, Ainv @ self.b1))

    def reference(self, times, estimate_error: bool = False):
        t = np.asarray(times, dtype=np.float64)
        r = self._x(np.array([self.T]))[0] - self.loss.y
        p = self._expA(self.T - t, transpose=True) @ r
        return np.concatenate([np.einsum("mi,mj->mij", p, self._x(t)).reshape(t.size, 4), p], axis=1)
