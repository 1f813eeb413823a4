r"""ODE problems driven by sinusoidal parameter paths :math:`\theta(t) = a + b\sin(\omega t)`: the base problems of the
oracle's case battery (``refimpl.oracle.ode_cases``), one per built-in field family with a d = 2 state.

Their continuous gradients have no closed form; the battery computes them with the continuous adjoint
(docs/theory/continuous-adjoint.md). The coefficients are drawn once from a fixed seed and rounded to three decimals,
so every exported case is reproducible bit for bit and its θ(t) can be written into ``case.json`` exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Sinusoid", "oracle_base_problems", "BASES_SEED"]

#: seed of the base problems' parameter paths (fixed: the battery is reproducible bit for bit)
BASES_SEED = 20240607


@dataclass(frozen=True)
class Sinusoid:
    r""":math:`\theta(t) = a + b\sin(\omega t)` (componentwise), a smooth parameter path to sample."""

    a: tuple
    b: tuple
    omega: float

    def __call__(self, t: float) -> np.ndarray:
        return np.asarray(self.a, dtype=np.float64) + np.asarray(self.b, dtype=np.float64) * np.sin(self.omega * t)

    def spec(self) -> dict:
        return {"kind": "sinusoid", "formula": "theta(t) = a + b sin(omega t)", "a": [float(v) for v in self.a],
                "b": [float(v) for v in self.b], "omega": float(self.omega)}


def oracle_base_problems():
    """``(name, field, x0, y, θ path)`` of the battery's base problems, T = 1: tanh, linear, two-layer tanh (3 hidden
    units) and polynomial fields, d = 2, each with its own :class:`Sinusoid` of frequency ω = 2."""
    from refimpl.ode.fields import LinearField, PolynomialField, TanhField, TwoLayerTanhField

    rng = np.random.default_rng(BASES_SEED)

    def path(p, scale=0.6):
        return Sinusoid(tuple(np.round(rng.uniform(-scale, scale, p), 3)),
                        tuple(np.round(rng.uniform(-scale, scale, p), 3)), 2.0)
    tanh, lin = TanhField(2), LinearField(2)
    two, poly = TwoLayerTanhField(2, 3), PolynomialField(2)
    return [
        ("tanh-d2", tanh, (0.6, -0.4), (0.2, 0.5), path(tanh.n_params, 0.9)),
        ("linear-d2", lin, (1.0, -0.5), (0.3, 0.1), path(lin.n_params, 0.5)),
        ("twolayer-d2h3", two, (0.5, 0.3), (-0.2, 0.4), path(two.n_params, 0.8)),
        ("poly-d2", poly, (0.4, -0.3), (0.1, 0.2), path(poly.n_params, 0.3)),
    ]
