"""Hypothesis strategies for property tests (refimpl's own, and users').

Arrays: :func:`shapes`, :func:`float_arrays`, :func:`complex_arrays`, :func:`broadcast_pairs`, :func:`positive_arrays`.
ODE schemes and problems, Gaussian measures and particle clouds, embedded pairs and adaptive problems are re-exported
from ``strategies_ode``, ``strategies_wasserstein`` and ``strategies_adaptive`` when those modules are present.

Values are bounded (default |x| ≤ 2) so that compositions of exp/tanh/power stay well conditioned: a property test checks
derivative *rules*, and an overflow would only test the floating-point range.

>>> from hypothesis import given
>>> from refimpl.testing import strategies as rst
>>> @given(rst.float_arrays())
... def test_my_gradient(x): ...
"""
from __future__ import annotations

import importlib
import importlib.util

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["shapes", "float_arrays", "complex_arrays", "positive_arrays", "broadcast_pairs"]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Array shapes with ``min_dims..max_dims`` axes of length ``min_side..max_side``."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def _floats(bound: float, min_abs: float = 0.0):
    f = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False)
    return f.filter(lambda v: abs(v) >= min_abs) if min_abs > 0 else f


def float_arrays(shape=None, bound: float = 2.0, min_abs: float = 0.0):
    """float64 arrays (shape drawn from :func:`shapes` unless given) with finite entries in [−bound, bound] and
    |entry| ≥ ``min_abs`` (use e.g. 0.1 to stay away from kinks and poles)."""
    return hnp.arrays(np.float64, shape if shape is not None else shapes(), elements=_floats(bound, min_abs))


def positive_arrays(shape=None, low: float = 0.2, high: float = 3.0):
    """float64 arrays with entries in [low, high] (domains of log, sqrt, fractional powers)."""
    return hnp.arrays(np.float64, shape if shape is not None else shapes(),
                      elements=st.floats(low, high, allow_nan=False, allow_infinity=False))


def complex_arrays(shape=None, bound: float = 1.5):
    """complex128 arrays with real and imaginary parts in [−bound, bound]."""
    parts = _floats(bound)
    return hnp.arrays(np.complex128, shape if shape is not None else shapes(),
                      elements=st.builds(complex, parts, parts))


@st.composite
def broadcast_pairs(draw, bound: float = 2.0, min_abs: float = 0.0, max_dims: int = 3):
    """Two float64 arrays whose shapes broadcast against each other (NumPy rules, including size-1 and missing axes)."""
    a_shape, b_shape = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=max_dims,
                                                                max_side=4)).input_shapes
    return (draw(float_arrays(a_shape, bound, min_abs)), draw(float_arrays(b_shape, bound, min_abs)))


def _reexport(module_name: str) -> None:
    """Re-export a sibling strategies module when this checkout has it (errors inside it are not swallowed)."""
    if importlib.util.find_spec(module_name) is None:
        return
    module = importlib.import_module(module_name)
    for name in getattr(module, "__all__", []):
        globals()[name] = getattr(module, name)
        __all__.append(name)


_reexport("refimpl.testing.strategies_ode")  # explicit tableaux, LMMs, fields, problems
_reexport("refimpl.testing.strategies_wasserstein")  # Gaussian measures, particle clouds
_reexport("refimpl.testing.strategies_adaptive")  # embedded pairs, controllers, adaptive problems
