"""The arithmetic the stored references are computed with, pinned.

A case's arrays are a function of its problem *and* of the rounding of the routes that computed them. The compiled
kernels get faster over time (vectorised exp, other operation orders), and each such change may move the last bits of
a result while staying within its stated error bound. A golden vector must not move with them: a case's bytes — and
the SHA-256 digests its ``case.json`` stores — change only when its mathematics does. So the oracle names here, once,
the arithmetic of every kernel it calls, and the exporters pass these options explicitly instead of taking the
library defaults.

* :data:`PAIR_KERNEL_EXP` — the exp of the particle pair kernels (:mod:`refimpl.wasserstein.pairwise_sums`):
  ``"libm"``, the C library's exp, the arithmetic of the particle cases since the case format's first version. The
  default ``"polynomial"`` exp of the kernels is within 2 ulp of it but not bit-identical.
* :func:`pinned_field` — the built-in linear and tanh fields with the point functions of
  :mod:`refimpl.ode._numba_pinned` (separate multiply and add roundings, the C library's tanh and exp) in the compiled
  sweeps, instead of the faster defaults of :mod:`refimpl.ode._numba` (vectorised tanh, fused multiply-adds).

``tests/test_oracle_pinned_arithmetic.py`` rebuilds cases and compares them with digests recorded from an export, so
a kernel change that moved a stored reference fails there rather than in a user's regression suite.
"""
from __future__ import annotations

import copy

__all__ = ["PAIR_KERNEL_EXP", "pinned_field"]

#: exp of the particle pair kernels in every exported case (module docstring)
PAIR_KERNEL_EXP = "libm"


def pinned_field(field):
    """``field`` as the oracle computes with it: for a built-in field whose family has pinned point functions
    (``refimpl.ode._numba_pinned.PINNED_KERNELS``) a shallow copy whose ``kernel`` descriptor names them; any other
    field unchanged (the same object)."""
    from refimpl.ode.fields import FIELDS

    family = getattr(field, "family", None)
    if family is None or family not in FIELDS or type(field) is not FIELDS.get(family):
        return field
    from refimpl.ode._numba_pinned import PINNED_KERNELS  # imports Numba: only when a case is built

    if family not in PINNED_KERNELS:
        return field
    pinned = copy.copy(field)
    pinned.kernel = PINNED_KERNELS[family]
    return pinned
