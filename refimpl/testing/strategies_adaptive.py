r"""Hypothesis strategies for adaptive-step property tests: embedded pairs, error norms, controllers, whole adaptive
problems (re-exported by :mod:`refimpl.testing.strategies`).

>>> from hypothesis import given
>>> from refimpl.testing.strategies_adaptive import adaptive_problems
>>> @given(adaptive_problems())
... def test_my_adaptive_gradient(problem): ...

Constructions (every drawn object passes the library's own validation on construction):

* :func:`embedded_pairs`: a named pair (:data:`~refimpl.ode.embedded.EMBEDDED_PAIRS`), or a random one — the
  propagated tableau from :func:`~refimpl.testing.strategies_ode.explicit_tableaux` (2–3 stages, order ≥ 1 or 2) and
  :math:`\hat b = b + \delta` with :math:`\sum\delta = 0` (so :math:`\hat b` is consistent, order ≥ 1) and
  :math:`\max|\delta| \ge 0.05` (a nonzero estimate).
* :func:`controllers`: :math:`\beta_1 \in [0.1, 1]`, :math:`\beta_2 \in [-0.5, 0.5]`, :math:`\beta_3 \in [-0.2, 0.2]`
  with :math:`\sum\beta \ge 0.05`; safety in [0.5, 1], factor_min in [0.1, 0.5], factor_max in [2, 10], and every
  boolean option drawn.
* :func:`stop_times`: 1 to ``max_size`` strictly increasing times in (0, T), drawn as fractions of T in
  [0.02, 0.98] at least 0.01·T apart (so no stop time sits within rounding of another, of 0 or of T).
* :func:`adaptive_problems`: a field from :func:`~refimpl.testing.strategies_ode.vector_fields`, x0 and θ in [−1, 1]
  (θ scaled per field as there), T in [0.25, 1.5], rtol in [1e-6, 1e-2] (log-uniform; at least 1e-4 for pairs whose
  estimate is first order, so a draw stays at a few hundred steps), atol = rtol·10^u, u in [−2, 0], a quadratic loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.ode.embedded import EMBEDDED_PAIRS, EmbeddedTableau
from refimpl.ode.fields import QuadraticLoss, VectorField
from refimpl.ode.step_control import Controller, ErrorNorm
from refimpl.testing.strategies_ode import _floats, _theta_scale, explicit_tableaux, vector_fields

__all__ = ["embedded_pairs", "error_norms", "controllers", "AdaptiveProblem", "adaptive_problems", "stop_times"]


@st.composite
def random_embedded_pairs(draw, stages=(2, 3), min_order: int = 1):
    """Random embedded pairs (float coefficients): see the module docstring."""
    tab = draw(explicit_tableaux(stages=stages, min_order=min_order))
    s = tab.stages
    delta = np.array([draw(_floats(-0.5, 0.5)) for _ in range(s)])
    delta -= delta.mean()
    assume(np.max(np.abs(delta)) >= 0.05)
    b_hat = tuple(float(bi + di) for bi, di in zip(tab.b, delta))
    try:
        pair = EmbeddedTableau(f"random_{s}stage_pair", tab.A, tab.b, b_hat, tab.c)
    except ValueError:  # rounding of the drawn δ broke Σ b̂ = 1 at the 1e-12 level: reject the draw
        assume(False)
    return pair


def embedded_pairs(named: bool = True, random: bool = True):
    """Named pairs and/or random pairs (:func:`random_embedded_pairs`)."""
    options = []
    if named:
        options.append(st.sampled_from([EMBEDDED_PAIRS.get(n) for n in EMBEDDED_PAIRS.names()]))
    if random:
        options.append(random_embedded_pairs())
    if not options:
        raise ValueError("named and random cannot both be False")
    return st.one_of(*options)


def error_norms():
    """Every :class:`ErrorNorm` (kind × scale)."""
    return st.builds(ErrorNorm, st.sampled_from(ErrorNorm.KINDS), st.sampled_from(ErrorNorm.SCALES))


@st.composite
def controllers(draw):
    """Random consistent I/PI/PID controllers (module docstring)."""
    kind = draw(st.sampled_from(["I", "PI", "PID"]))
    b1 = draw(_floats(0.1, 1.0))
    b2 = draw(_floats(-0.5, 0.5)) if kind != "I" else 0.0
    b3 = draw(_floats(-0.2, 0.2)) if kind == "PID" else 0.0
    assume(b1 + b2 + b3 >= 0.05)
    return Controller(f"random_{kind}", (b1, b2, b3), safety=draw(_floats(0.5, 1.0)),
                      factor_min=draw(_floats(0.1, 0.5)), factor_max=draw(_floats(2.0, 10.0)),
                      accept=draw(st.sampled_from(["le", "lt"])), grow_on_reject=draw(st.booleans()),
                      shrink_on_accept=draw(st.booleans()), on_reject=draw(st.sampled_from(["same", "integral"])),
                      history_on_reject=draw(st.booleans()), hold_after_reject=draw(st.booleans()))


@dataclass(frozen=True, eq=False)
class AdaptiveProblem:
    """A drawn adaptive problem: the arguments of :func:`refimpl.ode.adaptive.adaptive_solve` and the loss."""

    field: VectorField
    pair: EmbeddedTableau
    controller: Controller
    norm: ErrorNorm
    x0: np.ndarray
    theta: np.ndarray
    T: float
    rtol: float
    atol: float
    loss: QuadraticLoss

    def options(self) -> dict:
        """Keyword arguments of ``adaptive_solve`` (rtol, atol, controller, norm, max_steps)."""
        return dict(rtol=self.rtol, atol=self.atol, controller=self.controller, norm=self.norm, max_steps=500)


@st.composite
def adaptive_problems(draw, fields=None, pairs=None, bound: float = 1.0):
    """Whole adaptive problems (module docstring); θ has the constant layout shape (1, p)."""
    field = draw(fields if fields is not None else vector_fields(dims=(1, 3)))
    pair = draw(pairs if pairs is not None else embedded_pairs())
    lo = -4.0 if pair.estimate_order <= 1 else -6.0
    rtol = 10.0 ** draw(_floats(lo, -2.0))
    atol = rtol * 10.0 ** draw(_floats(-2.0, 0.0))
    el = _floats(-bound, bound)
    x0 = draw(hnp.arrays(np.float64, (field.dim,), elements=el))
    theta = draw(hnp.arrays(np.float64, (1, field.n_params), elements=el)) * _theta_scale(field)
    y = draw(hnp.arrays(np.float64, (field.dim,), elements=el))
    return AdaptiveProblem(field, pair, draw(controllers()), draw(error_norms()), x0, theta, draw(_floats(0.25, 1.5)),
                           rtol, atol, QuadraticLoss(y))


@st.composite
def stop_times(draw, T: float, max_size: int = 4):
    """Stop times for ``adaptive_solve(..., stop_times=)`` on [0, T] (module docstring)."""
    fractions = draw(st.lists(_floats(0.02, 0.98), min_size=1, max_size=max_size))
    ts = np.unique(np.round(np.asarray(fractions) * T, 12))
    assume(np.all(np.diff(ts) >= 0.01 * T))
    return ts
