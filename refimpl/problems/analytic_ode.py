r"""Analytic cases: ODE problems whose trajectory, loss and continuous gradient are known in closed form.

Each case is a problem ẋ = f(x, θ(t)), x(0) = x₀, t ∈ [0, T], L = Φ(x(T)) with Φ(x) = ½|x − y|²
(:class:`~refimpl.ode.fields.QuadraticLoss`), in which θ(t) is *linear in a coefficient vector* c ∈ ℝ^q:

    θ(t) = B(t) c,   B(t) ∈ ℝ^{p×q}   (``theta_basis``);   constant θ ⇔ B ≡ I and then c = θ.

Each case provides, in closed form (derivation in each class docstring):

``x_exact(t)``                      the trajectory x(t);
``adjoint_exact(t)``                p(t) = ∇_{x(t)} L, the solution of p′ = −∂ₓfᵀp, p(T) = ∇Φ(x(T));
``functional_gradient_exact(t)``    δL/δθ(t) = ∂_θf(x(t), θ(t))ᵀ p(t);
``integrated_gradient_exact()``     ∫₀ᵀ δL/δθ dt  (= dL/dθ when θ is constant);
``loss_at(c)``                      L as a closed-form function of the coefficients (holomorphic in c, so it can be
                                    complex-stepped);  ``loss_exact()`` = ``loss_at(coefficients)``;
``coefficient_gradient_exact()``    dL/dc = ∫₀ᵀ B(t)ᵀ δL/δθ(t) dt, in closed form.

The last identity (chain rule through θ = Bc and the definition of δL/δθ, see
:mod:`refimpl.ode.adjoint_ode`) is what links the three closed forms, and the tests check it numerically:
dL/dc by complex step of ``loss_at`` vs ``coefficient_gradient_exact`` vs quadrature of
Bᵀ·``functional_gradient_exact``.

A general remark used twice below: if L depends on θ only through Θ(T) = ∫₀ᵀ θ dt (cases :class:`ScalarGrowthCase`
and the growth-rate part of :class:`LogisticCase`), then δL/δθ(t) = dL/dΘ is *constant in t* even though x(t) and
p(t) are not.

:func:`analytic_cases` returns the default instances the tests run on.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import expm

from refimpl.arguments import as_real_scalar, as_vector
from refimpl.ode.fields import LinearField, LinearForcingField, LogisticField, QuadraticLoss, ScaledLinearField

__all__ = [
    "AnalyticCase",
    "ScalarLinearCase",
    "ScalarGrowthCase",
    "LinearSystemCase",
    "LogisticCase",
    "analytic_cases",
]


class AnalyticCase:
    """Base class: the common interface and the vectorisation over times (see the module docstring).

    Subclasses set ``name``, ``field``, ``loss``, ``x0``, ``T``, ``coefficients``, ``theta_is_constant`` and implement
    ``theta_basis``, ``_x``, ``_adjoint``, ``loss_at``, ``coefficient_gradient_exact``, ``integrated_gradient_exact``.
    """

    name: str
    field: object
    loss: QuadraticLoss
    x0: np.ndarray
    T: float
    coefficients: np.ndarray
    theta_is_constant: bool

    def __repr__(self) -> str:
        kind = "constant θ" if self.theta_is_constant else "time-dependent θ"
        return (f"{type(self).__name__}({self.name!r}, {self.field!r}, {kind}, T={self.T:g}, "
                f"c={np.array2string(self.coefficients, precision=4)})")

    # θ(t) -----------------------------------------------------------------------------------------------------------
    def theta_basis(self, t: float) -> np.ndarray:  # pragma: no cover - abstract
        """B(t) with θ(t) = B(t) c, shape (p, q)."""
        raise NotImplementedError

    def theta(self, t: float) -> np.ndarray:
        """θ(t) = B(t) c, shape (p,)."""
        return self.theta_basis(float(t)) @ self.coefficients

    def theta_terms(self) -> dict:  # pragma: no cover - abstract
        r"""θ(t) written out: ``{"a", "b", "c", "slope", "omega"}`` with, componentwise,
        :math:`\theta(t) = a + b\sin(\omega t) + c\cos(\omega t) + \mathrm{slope}\cdot t` (vectors of length p;
        every case's B(t) is a combination of 1, t, cos ωt and sin ωt). Written beside :meth:`theta_basis`, which it
        must equal: ``tests/test_ode_analytic.py`` checks it."""
        raise NotImplementedError

    def _terms(self, a, b=None, c=None, slope=None, omega=0.0) -> dict:
        zero = [0.0] * len(a)
        return {"a": [float(v) for v in a], "b": [float(v) for v in (zero if b is None else b)],
                "c": [float(v) for v in (zero if c is None else c)],
                "slope": [float(v) for v in (zero if slope is None else slope)], "omega": float(omega)}

    @property
    def constant_theta(self) -> np.ndarray:
        """θ for a constant-θ case (= the coefficients); ValueError otherwise."""
        if not self.theta_is_constant:
            raise ValueError(f"case {self.name!r} has a time-dependent theta")
        return self.coefficients

    # closed forms ---------------------------------------------------------------------------------------------------
    def _times(self, t):
        arr = np.asarray(t, dtype=np.float64)
        if arr.ndim > 1 or not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > self.T):
            raise ValueError(f"t must be a time or 1-D array of times in [0, T] = [0, {self.T}], got {t!r}")
        return arr

    def _map(self, fun, t):
        arr = self._times(t)
        if arr.ndim == 0:
            return fun(float(arr))
        return np.array([fun(float(s)) for s in arr])

    def x_exact(self, t):
        """x(t): shape (d,) for a scalar t, (m, d) for m times."""
        return self._map(self._x, t)

    def adjoint_exact(self, t):
        """p(t) = ∇_{x(t)} L: shape (d,) or (m, d)."""
        return self._map(self._adjoint, t)

    def functional_gradient_exact(self, t):
        """δL/δθ(t) = ∂_θf(x(t), θ(t))ᵀ p(t): shape (p,) or (m, p)."""
        return self._map(lambda s: np.asarray(self.field.vjp_theta(self._x(s), self.theta(s), self._adjoint(s))), t)

    def loss_exact(self) -> float:
        return float(np.real(self.loss_at(self.coefficients)))

    def x_final_exact(self) -> np.ndarray:
        return self._x(self.T)

    def _x(self, t: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint(self, t: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss_at(self, coefficients):  # pragma: no cover - abstract
        raise NotImplementedError

    def coefficient_gradient_exact(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def integrated_gradient_exact(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _coefficients_arg(self, c):
        c = np.asarray(c)
        if c.shape != self.coefficients.shape:
            raise ValueError(f"coefficients must have shape {self.coefficients.shape}, got {c.shape}")
        return c


# ----------------------------------------------------------------------------------------------------------------------
# (i) scalar linear with forcing


class ScalarLinearCase(AnalyticCase):
    r"""(i) ẋ = a x + θ(t), θ(t) = c₀ + c₁ cos ωt, Φ = ½(x(T) − y)²; field ``LinearForcingField([[a]])``.

    Variation of constants: x(t) = e^{at} x₀ + c₀ E₀(t) + c₁ E₁(t) with
    E₀(t) = ∫₀ᵗ e^{a(t−s)} ds = (e^{at} − 1)/a,
    E₁(t) = ∫₀ᵗ e^{a(t−s)} cos ωs ds = (a e^{at} − a cos ωt + ω sin ωt)/(a² + ω²)
    (from ∫ e^{−as} cos ωs ds = e^{−as}(ω sin ωs − a cos ωs)/(a² + ω²)).
    Adjoint: p′ = −a p, p(T) = x(T) − y ⇒ p(t) = (x(T) − y) e^{a(T−t)}; ∂_θf = 1 ⇒ δL/δθ(t) = p(t).
    dL/dc = (x(T) − y)(E₀(T), E₁(T)) (x(T) is affine in c); ∫₀ᵀ δL/δθ dt = (x(T) − y) E₀(T).
    """

    def __init__(self, a: float = -0.7, omega: float = 3.0, coefficients=(0.5, 1.2), x0: float = 0.8,
                 T: float = 1.5, y: float = 0.3):
        self.a = as_real_scalar(a, "a", nonzero=True)
        self.omega = as_real_scalar(omega, "omega", positive=True)
        self.coefficients = as_vector(coefficients, 2, "coefficients", read_only=True)
        self.x0 = as_vector([x0], 1, "x0", read_only=True)
        self.T = as_real_scalar(T, "T", positive=True)
        self.loss = QuadraticLoss(np.array([as_real_scalar(y, "y")]))
        self.field = LinearForcingField(np.array([[self.a]]))
        self.theta_is_constant = False
        self.name = "scalar-linear-forcing"

    def theta_basis(self, t: float) -> np.ndarray:
        return np.array([[1.0, np.cos(self.omega * t)]])

    def theta_terms(self) -> dict:
        c = self.coefficients  # θ(t) = c₀ + c₁ cos ωt
        return self._terms([c[0]], c=[c[1]], omega=self.omega)

    def _E(self, t: float):
        a, w = self.a, self.omega
        return (np.exp(a * t) - 1) / a, (a * np.exp(a * t) - a * np.cos(w * t) + w * np.sin(w * t)) / (a * a + w * w)

    def _x_with(self, t: float, c):
        E0, E1 = self._E(t)
        return np.exp(self.a * t) * self.x0 + c[0] * E0 + c[1] * E1

    def _x(self, t: float) -> np.ndarray:
        return self._x_with(t, self.coefficients)

    def _residual(self) -> float:
        return float((self._x(self.T) - self.loss.y)[0])

    def _adjoint(self, t: float) -> np.ndarray:
        return np.array([self._residual() * np.exp(self.a * (self.T - t))])

    def loss_at(self, coefficients):
        c = self._coefficients_arg(coefficients)
        return self.loss.value(self._x_with(self.T, c))

    def coefficient_gradient_exact(self) -> np.ndarray:
        return self._residual() * np.array(self._E(self.T))

    def integrated_gradient_exact(self) -> np.ndarray:
        return np.array([self._residual() * self._E(self.T)[0]])


# ----------------------------------------------------------------------------------------------------------------------
# (ii) scalar growth ẋ = θ x


class ScalarGrowthCase(AnalyticCase):
    r"""(ii) ẋ = θ(t) x, Φ = ½(x(T) − y)²; field ``ScaledLinearField([[1]])`` (f = θ₀·1·x).

    Constant θ (``time_dependent=False``): θ(t) = c₀. Time-dependent: θ(t) = c₀ + c₁ sin ωt.
    With Θ(t) = ∫₀ᵗ θ = c₀ t + c₁ (1 − cos ωt)/ω: x(t) = x₀ e^{Θ(t)};
    p′ = −θ p, p(T) = x(T) − y ⇒ p(t) = (x(T) − y) e^{Θ(T) − Θ(t)};
    ∂_θf = x ⇒ δL/δθ(t) = x(t) p(t) = (x(T) − y) x(T), constant in t (L depends on θ only through Θ(T));
    dL/dc = (x(T) − y) x(T) (T, (1 − cos ωT)/ω); ∫₀ᵀ δL/δθ dt = T (x(T) − y) x(T) (= dL/dθ for constant θ).
    """

    def __init__(self, time_dependent: bool = False, coefficients=None, omega: float = 2.0, x0: float = 0.9,
                 T: float = 1.2, y: float = 1.1):
        self.theta_is_constant = not bool(time_dependent)
        if coefficients is None:
            coefficients = (0.4,) if self.theta_is_constant else (0.4, 0.6)
        self.coefficients = as_vector(coefficients, 1 if self.theta_is_constant else 2, "coefficients", read_only=True)
        self.omega = as_real_scalar(omega, "omega", positive=True)
        self.x0 = as_vector([x0], 1, "x0", read_only=True)
        self.T = as_real_scalar(T, "T", positive=True)
        self.loss = QuadraticLoss(np.array([as_real_scalar(y, "y")]))
        self.field = ScaledLinearField(np.array([[1.0]]))
        self.name = "scalar-growth-" + ("constant" if self.theta_is_constant else "sin")

    def theta_basis(self, t: float) -> np.ndarray:
        if self.theta_is_constant:
            return np.array([[1.0]])
        return np.array([[1.0, np.sin(self.omega * t)]])

    def theta_terms(self) -> dict:
        c = self.coefficients  # θ(t) = c₀ (+ c₁ sin ωt)
        if self.theta_is_constant:
            return self._terms([c[0]])
        return self._terms([c[0]], b=[c[1]], omega=self.omega)

    def _Theta_basis(self, t: float) -> np.ndarray:
        """∫₀ᵗ B(s) ds."""
        if self.theta_is_constant:
            return np.array([t])
        return np.array([t, (1 - np.cos(self.omega * t)) / self.omega])

    def _x_with(self, t: float, c):
        return self.x0 * np.exp(self._Theta_basis(t) @ c)

    def _x(self, t: float) -> np.ndarray:
        return self._x_with(t, self.coefficients)

    def _dL_dTheta(self) -> float:
        xT = self._x(self.T)[0]
        return float((xT - self.loss.y[0]) * xT)

    def _adjoint(self, t: float) -> np.ndarray:
        c = self.coefficients
        xT = self._x(self.T)
        return (xT - self.loss.y) * np.exp((self._Theta_basis(self.T) - self._Theta_basis(t)) @ c)

    def loss_at(self, coefficients):
        c = self._coefficients_arg(coefficients)
        return self.loss.value(self._x_with(self.T, c))

    def coefficient_gradient_exact(self) -> np.ndarray:
        return self._dL_dTheta() * self._Theta_basis(self.T)

    def integrated_gradient_exact(self) -> np.ndarray:
        return np.array([self.T * self._dL_dTheta()])


# ----------------------------------------------------------------------------------------------------------------------
# (iii) linear system with matrix exponential


def _van_loan_block(F: np.ndarray, G: np.ndarray, H: np.ndarray, T: float) -> np.ndarray:
    """∫₀ᵀ e^{F(T−t)} G e^{Ht} dt, the upper-right block of expm([[F, G], [0, H]]·T) (Van Loan 1978, Thm 1)."""
    n, m = F.shape[0], H.shape[0]
    C = np.zeros((n + m, n + m), dtype=np.result_type(F, G, H))
    C[:n, :n], C[:n, n:], C[n:, n:] = F, G, H
    return expm(C * T)[:n, n:]


class LinearSystemCase(AnalyticCase):
    r"""(iii) ẋ = A x + b(t), b(t) = b₀ + b₁ t, Φ = ½|x(T) − y|²; field ``LinearField(d)`` with θ = (vec A, b).

    θ(t) = (vec A, b₀ + b₁ t): coefficients c = (vec A, b₀, b₁) (``time_dependent=False``: c = (vec A, b₀), θ
    constant). A is a *parameter* here (constant in time), so δL/δA(t) is part of the gradient.

    Trajectory (augmented linear system): z = (x, s, w), ẋ = A x + b₁ s + b₀ w, ṡ = w, ẇ = 0, z(0) = (x₀, 0, 1), so
    z(t) = e^{Mt} z₀ with M = [[A, b₁, b₀], [0, 0, 1], [0, 0, 0]] and x(t) = P z(t), P = [I 0 0].
    Adjoint: p′ = −Aᵀp, p(T) = r := x(T) − y ⇒ p(t) = e^{Aᵀ(T−t)} r.
    Gradient (LinearField: ∂_θfᵀp = (vec(p xᵀ), p)): δL/δA(t) = p(t) x(t)ᵀ, δL/δb(t) = p(t).
    Integrals by Van Loan's formula ∫₀ᵀ e^{F(T−t)} G e^{Ht} dt = [expm([[F, G], [0, H]] T)]₁₂:
    ∫ p xᵀ dt = (∫ e^{Aᵀ(T−t)} r z₀ᵀ e^{Mᵀt} dt) Pᵀ  (F = Aᵀ, G = r z₀ᵀ, H = Mᵀ);
    (∫ t p dt, ∫ p dt) = ∫ e^{Aᵀ(T−t)} r (t, 1) dt  (F = Aᵀ, G = r (0, 1), H = [[0, 0], [1, 0]],
    e^{Ht} = [[1, 0], [t, 1]]).
    dL/dc = (vec ∫ p xᵀ dt, ∫ p dt, ∫ t p dt) = ∫ B(t)ᵀ δL/δθ dt; ∫₀ᵀ δL/δθ dt = (vec ∫ p xᵀ dt, ∫ p dt).
    """

    def __init__(self, A=((-0.5, 1.0), (-1.2, -0.3)), b0=(0.3, -0.2), b1=(0.5, 0.4), x0=(1.0, -0.5), T: float = 2.0,
                 y=(0.2, 0.1)):
        A = np.array(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1] or not np.all(np.isfinite(A)):
            raise ValueError(f"A must be a finite square matrix, got {A!r}")
        d = A.shape[0]
        self.d = d
        self.field = LinearField(d)
        self.theta_is_constant = b1 is None
        parts = [A.ravel(), as_vector(b0, d, "b0")]
        if b1 is not None:
            parts.append(as_vector(b1, d, "b1"))
        self.coefficients = as_vector(np.concatenate(parts), None, "coefficients", read_only=True)
        self.x0 = as_vector(x0, d, "x0", read_only=True)
        self.T = as_real_scalar(T, "T", positive=True)
        self.loss = QuadraticLoss(as_vector(y, d, "y", read_only=True))
        self.name = f"linear-system-d{d}-" + ("constant" if self.theta_is_constant else "ramp")

    def theta_basis(self, t: float) -> np.ndarray:
        d = self.d
        p = d * d + d
        if self.theta_is_constant:
            return np.eye(p)
        B = np.zeros((p, p + d))
        B[:, :p] = np.eye(p)
        B[d * d:, p:] = t * np.eye(d)
        return B

    def theta_terms(self) -> dict:
        A, b0, b1 = self._split(np.asarray(self.coefficients))  # θ(t) = (vec A, b₀ + b₁ t)
        d = self.d
        return self._terms(np.concatenate([A.ravel(), b0]), slope=np.concatenate([np.zeros(d * d), b1]))

    def _split(self, c):
        d = self.d
        A = c[: d * d].reshape(d, d)
        b0 = c[d * d: d * d + d]
        b1 = c[d * d + d:] if not self.theta_is_constant else np.zeros(d, dtype=c.dtype)
        return A, b0, b1

    def _M(self, c) -> np.ndarray:
        A, b0, b1 = self._split(c)
        d = self.d
        M = np.zeros((d + 2, d + 2), dtype=np.result_type(c, np.float64))
        M[:d, :d], M[:d, d], M[:d, d + 1], M[d, d + 1] = A, b1, b0, 1.0
        return M

    def _z0(self) -> np.ndarray:
        return np.concatenate([self.x0, [0.0, 1.0]])

    def _x_with(self, t: float, c):
        return (expm(self._M(c) * t) @ self._z0())[: self.d]

    def _x(self, t: float) -> np.ndarray:
        return self._x_with(t, self.coefficients)

    def _r(self) -> np.ndarray:
        return self._x(self.T) - self.loss.y

    def _adjoint(self, t: float) -> np.ndarray:
        A = self._split(self.coefficients)[0]
        return expm(A.T * (self.T - t)) @ self._r()

    def loss_at(self, coefficients):
        c = self._coefficients_arg(coefficients)
        return self.loss.value(self._x_with(self.T, c))

    def _integrals(self):
        c = self.coefficients
        A = self._split(c)[0]
        r = self._r()
        int_pxT = _van_loan_block(A.T, np.outer(r, self._z0()), self._M(c).T, self.T)[:, : self.d]
        tp_p = _van_loan_block(A.T, np.outer(r, [0.0, 1.0]), np.array([[0.0, 0.0], [1.0, 0.0]]), self.T)
        return int_pxT, tp_p[:, 1], tp_p[:, 0]

    def coefficient_gradient_exact(self) -> np.ndarray:
        int_pxT, int_p, int_tp = self._integrals()
        parts = [int_pxT.ravel(), int_p] + ([] if self.theta_is_constant else [int_tp])
        return np.concatenate(parts)

    def integrated_gradient_exact(self) -> np.ndarray:
        int_pxT, int_p, _ = self._integrals()
        return np.concatenate([int_pxT.ravel(), int_p])


# ----------------------------------------------------------------------------------------------------------------------
# (iv) logistic / Riccati


class LogisticCase(AnalyticCase):
    r"""(iv) ẋ = r(t) x (1 − x/K), θ = (r, K), Φ = ½(x(T) − y)²; field :class:`LogisticField`.

    Constant θ (``time_dependent=False``): c = (r, K). Time-dependent: r(t) = c₀ + c₁ cos ωt, K = c₂.
    With R(t) = ∫₀ᵗ r = c₀ t + c₁ sin(ωt)/ω, u = 1/x solves the linear equation u′ = −r u + r/K, so
    u − 1/K = (1/x₀ − 1/K) e^{−R} and

        x(t) = K x₀ e^{R(t)} / (K + x₀ (e^{R(t)} − 1))           (needs K + x₀(e^R − 1) ≠ 0; 0 < x₀ < K suffices).

    Flow map from time t: x(T) = F(x(t), D), D = R(T) − R(t), F(x, D) = K x e^D/(K + x(e^D − 1)), and
    ∂F/∂x = K² e^D/(K + x(e^D − 1))², so p(t) = (x(T) − y) K² e^D/(K + x(t)(e^D − 1))².
    δL/δr(t) = x(1 − x/K) p  (= (x(T) − y) x(T)(1 − x(T)/K), constant: L depends on r only through R(T));
    δL/δK(t) = r(t) x(t)²/K² · p(t)  (time-varying).
    With E = e^{R(T)}, N = K + x₀(E − 1): ∂x(T)/∂R = x(T)(1 − x(T)/K), ∂x(T)/∂K = x₀² E (E − 1)/N².
    dL/dc = (x(T) − y)·(∂x(T)/∂R · (T, sin(ωT)/ω), ∂x(T)/∂K); ∫₀ᵀ δL/δθ dt = (x(T) − y)(T ∂x(T)/∂R, ∂x(T)/∂K).
    """

    def __init__(self, time_dependent: bool = False, coefficients=None, omega: float = 2.5, x0: float = 0.3,
                 T: float = 2.0, y: float = 1.0):
        self.theta_is_constant = not bool(time_dependent)
        if coefficients is None:
            coefficients = (1.3, 2.0) if self.theta_is_constant else (1.3, 0.5, 2.0)
        self.coefficients = as_vector(coefficients, 2 if self.theta_is_constant else 3, "coefficients", read_only=True)
        if self.coefficients[-1] <= 0:
            raise ValueError("the capacity K (last coefficient) must be > 0")
        self.omega = as_real_scalar(omega, "omega", positive=True)
        x0 = as_real_scalar(x0, "x0", positive=True)
        if x0 >= self.coefficients[-1]:
            raise ValueError("x0 must lie in (0, K) so that the closed form has no pole")
        self.x0 = as_vector([x0], 1, "x0", read_only=True)
        self.T = as_real_scalar(T, "T", positive=True)
        self.loss = QuadraticLoss(np.array([as_real_scalar(y, "y")]))
        self.field = LogisticField()
        self.name = "logistic-" + ("constant" if self.theta_is_constant else "cos")

    def theta_basis(self, t: float) -> np.ndarray:
        if self.theta_is_constant:
            return np.eye(2)
        return np.array([[1.0, np.cos(self.omega * t), 0.0], [0.0, 0.0, 1.0]])

    def theta_terms(self) -> dict:
        c = self.coefficients  # θ(t) = (r, K): (c₀, c₁) constant, or (c₀ + c₁ cos ωt, c₂)
        if self.theta_is_constant:
            return self._terms(c)
        return self._terms([c[0], c[2]], c=[c[1], 0.0], omega=self.omega)

    def _R_basis(self, t: float) -> np.ndarray:
        """∫₀ᵗ of the growth-rate row of B (coefficients of R(t))."""
        if self.theta_is_constant:
            return np.array([t, 0.0])
        return np.array([t, np.sin(self.omega * t) / self.omega, 0.0])

    def _x_with(self, t: float, c):
        K = c[-1]
        E = np.exp(self._R_basis(t) @ c)
        x0 = self.x0[0]
        return np.array([K * x0 * E / (K + x0 * (E - 1))])

    def _x(self, t: float) -> np.ndarray:
        return self._x_with(t, self.coefficients)

    def _adjoint(self, t: float) -> np.ndarray:
        c = self.coefficients
        K = c[-1]
        xt = self._x(t)[0]
        eD = np.exp((self._R_basis(self.T) - self._R_basis(t)) @ c)
        rho = self._x(self.T)[0] - self.loss.y[0]
        return np.array([rho * K * K * eD / (K + xt * (eD - 1)) ** 2])

    def loss_at(self, coefficients):
        c = self._coefficients_arg(coefficients)
        return self.loss.value(self._x_with(self.T, c))

    def _partials(self):
        c = self.coefficients
        K, x0 = c[-1], self.x0[0]
        xT = self._x(self.T)[0]
        E = np.exp(self._R_basis(self.T) @ c)
        N = K + x0 * (E - 1)
        rho = xT - self.loss.y[0]
        return rho, xT * (1 - xT / K), x0 * x0 * E * (E - 1) / N**2

    def coefficient_gradient_exact(self) -> np.ndarray:
        rho, dR, dK = self._partials()
        Rb = self._R_basis(self.T)
        g = rho * dR * Rb
        g[-1] = rho * dK
        return g

    def integrated_gradient_exact(self) -> np.ndarray:
        rho, dR, dK = self._partials()
        return np.array([rho * dR * self.T, rho * dK])


def analytic_cases() -> list[AnalyticCase]:
    """The default analytic cases (four families; constant and time-dependent θ where both exist)."""
    return [
        ScalarLinearCase(),
        ScalarGrowthCase(time_dependent=False),
        ScalarGrowthCase(time_dependent=True),
        LinearSystemCase(b1=None),
        LinearSystemCase(),
        LogisticCase(time_dependent=False),
        LogisticCase(time_dependent=True),
    ]
