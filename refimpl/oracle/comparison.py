r"""Compare a foreign implementation's arrays with an oracle case: per quantity the max abs/rel error, the worst index
and pass/fail against the case tolerance (``docs/case-format.md`` § How ``check`` decides).

For a reference quantity :math:`r` and the foreign array :math:`x` of the same shape, with the case's (or the
caller's) ``rtol``, ``atol``:

* ``max_abs_error`` :math:`= \max_i |x_i - r_i|`;
* ``max_rel_error`` :math:`= \max_i |x_i - r_i| / \max_i |r_i|` (normwise; 0 when both are 0, inf when only the
  error is nonzero);
* ``worst_index``: the entry with the largest *tolerance ratio* :math:`|x_i - r_i| / (atol + rtol|r_i|)`;
* ``passed``: every ratio ≤ 1 (``numpy.isclose`` semantics, ``equal_nan=False``). A NaN or inf in the foreign array is a
  mismatch (ratio inf at its first position), not bad input: it is what the foreign code computed.

Bad input — a name that is not a reference quantity of the case, a shape that differs from the reference, a
non-real dtype, an unreadable file — raises :class:`~refimpl.oracle.safe_io.CaseFormatError` (exit code 2 in the CLI).
Reference quantities the foreign file does not provide are listed as ``not_provided`` and do not fail the check;
providing none of them is bad input.

Two helpers the case builders and :mod:`refimpl.oracle.verify` share: :func:`normwise_disagreement` (the number stored
in ``provenance.route_checks``) and :func:`same_input` (a stored input against the one its problem section describes).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Mapping

import numpy as np

from refimpl.arguments import as_real_array
from refimpl.oracle.case import Case, load_case
from refimpl.oracle.safe_io import CaseFormatError, read_npz

__all__ = ["QuantityComparison", "Comparison", "compare", "normwise_disagreement", "same_input"]


def normwise_disagreement(a, b) -> float:
    r"""The normwise relative disagreement :math:`\max_i |a_i - b_i| / \max_i |b_i|` of two routes to one quantity
    (``b`` the reference; the denominator is at least the smallest normal float64; 0 for empty arrays)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))), np.finfo(np.float64).tiny) if b.size else 1.0
    return float(np.max(np.abs(a - b)) / scale) if a.size else 0.0


def same_input(name: str, stored, derived, where: str) -> None:
    """CaseFormatError unless the stored input array ``name`` equals ``derived`` (what the problem section describes)
    to within 1e-14·max(1, max|derived|) entrywise, with the same shape."""
    stored, derived = np.asarray(stored), np.asarray(derived)
    scale = max(1.0, float(np.max(np.abs(derived)))) if derived.size else 1.0
    if stored.shape != derived.shape or not np.allclose(stored, derived, rtol=0.0, atol=1e-14 * scale):
        raise CaseFormatError(f"{where}: input {name!r} is not what the problem section describes")


@dataclass(frozen=True)
class QuantityComparison:
    """The comparison of one quantity (see the module docstring for each field)."""

    name: str
    shape: tuple
    rtol: float
    atol: float
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple
    worst_theirs: float
    worst_reference: float
    worst_ratio: float
    n_failing: int
    passed: bool

    def row(self) -> str:
        idx = "()" if not self.worst_index else "(" + ", ".join(str(i) for i in self.worst_index) + ")"
        return (f"{'PASS' if self.passed else 'FAIL':4}  {self.name:20} {self.max_abs_error:10.3e} "
                f"{self.max_rel_error:10.3e} {idx:>10} {self.worst_theirs:>14.7g} {self.worst_reference:>14.7g} "
                f"{self.worst_ratio:9.3g}  {self.n_failing:>6}  rtol={self.rtol:.1e} atol={self.atol:.1e}")


@dataclass(frozen=True)
class Comparison:
    """Evidence of one check: the case name, one :class:`QuantityComparison` per provided quantity, the reference
    quantities not provided. ``passed`` is True when every provided quantity passes; ``exit_code`` 0/1."""

    case: str
    quantities: tuple
    not_provided: tuple

    @property
    def passed(self) -> bool:
        return all(q.passed for q in self.quantities)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def __getitem__(self, name: str) -> QuantityComparison:
        for q in self.quantities:
            if q.name == name:
                return q
        raise KeyError(name)

    def table(self) -> str:
        """The human report: one row per quantity."""
        head = (f"{'':4}  {'quantity':20} {'max abs':>10} {'max rel':>10} {'worst at':>10} {'theirs':>14} "
                f"{'reference':>14} {'err/tol':>9}  {'#fail':>6}  tolerance")
        lines = [f"case {self.case}: {'PASS' if self.passed else 'FAIL'} "
                 f"({sum(q.passed for q in self.quantities)}/{len(self.quantities)} quantities within tolerance)",
                 head] + [q.row() for q in self.quantities]
        if self.not_provided:
            lines.append(f"not provided (not checked): {', '.join(self.not_provided)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready dict (non-finite numbers become the strings "inf"/"nan")."""
        def clean(v):
            if isinstance(v, float) and not np.isfinite(v):
                return str(v)
            if isinstance(v, (tuple, list)):
                return [clean(x) for x in v]
            return v
        return {"case": self.case, "status": "pass" if self.passed else "mismatch", "exit_code": self.exit_code,
                "quantities": [{k: clean(v) for k, v in asdict(q).items()} for q in self.quantities],
                "not_provided": list(self.not_provided)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def __repr__(self) -> str:
        return self.table()


def _compare_one(name: str, theirs: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> QuantityComparison:
    err = np.abs(theirs - ref)  # NaN where theirs is NaN, inf where theirs is inf
    bad = ~np.isfinite(err)
    allowed = atol + rtol * np.abs(ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bad, np.inf, np.where(allowed > 0, err / np.where(allowed > 0, allowed, 1.0),
                                               np.where(err > 0, np.inf, 0.0)))
    if ref.size == 0:
        return QuantityComparison(name, ref.shape, rtol, atol, 0.0, 0.0, (), float("nan"), float("nan"), 0.0, 0, True)
    flat = int(np.argmax(ratio))  # the first inf if there is one
    worst = tuple(int(i) for i in np.unravel_index(flat, ref.shape))
    max_abs = float(np.inf if bad.any() else np.max(err))
    scale = float(np.max(np.abs(ref)))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    n_fail = int(np.count_nonzero(ratio > 1))
    return QuantityComparison(name, tuple(ref.shape), rtol, atol, max_abs, max_rel, worst,
                              float(theirs.reshape(-1)[flat]), float(ref.reshape(-1)[flat]),
                              float(ratio.reshape(-1)[flat]), n_fail, n_fail == 0)


def _as_real_array(name: str, value) -> np.ndarray:
    """``theirs[name]`` as float64, any shape, NaN/inf kept (they are reported as failures, not refused).

    The dtype rule is :func:`refimpl.arguments.as_real_array`'s; its errors become :class:`CaseFormatError` (bad input
    to the oracle), each naming ``theirs[name]``.
    """
    where = f"theirs[{name!r}]"
    try:
        a = as_real_array(value, where, "an array of real numbers")
    except (ValueError, TypeError) as e:
        msg = str(e)
        raise CaseFormatError(msg if msg.startswith(where) else f"{where}: not an array ({msg})") from None
    return a.astype(np.float64)


def compare(case, theirs, *, quantities=None, tolerances: Mapping | None = None) -> Comparison:
    """Compare ``theirs`` with the reference arrays of ``case``.

    ``case``: a :class:`~refimpl.oracle.case.Case` or a case directory. ``theirs``: a mapping name → array, or the
    path of an ``.npz`` file (read without unpickling). ``quantities``: restrict to these names (each must be provided).
    ``tolerances``: per-quantity overrides ``{name: {"rtol": r, "atol": a}}`` (e.g. for a float32 implementation).
    Returns a :class:`Comparison`; raises :class:`~refimpl.oracle.safe_io.CaseFormatError` on bad input.

    >>> from refimpl.oracle import compare, load_case          # doctest: +SKIP
    >>> report = compare(load_case("cases/tanh-d2__rk4__stage__N16"), {"discrete_gradient": my_grad})
    >>> report.passed, report["discrete_gradient"].worst_index
    """
    if not isinstance(case, Case):
        if not isinstance(case, (str, os.PathLike)):
            raise TypeError(f"case must be a Case or a case directory path, got {type(case).__name__}")
        case = load_case(case)
    if isinstance(theirs, (str, os.PathLike)):
        theirs = read_npz(theirs)
    if not isinstance(theirs, Mapping):
        raise TypeError(f"theirs must be a mapping name -> array or an .npz path, got {type(theirs).__name__}")
    refs = case.references
    unknown = sorted(str(k) for k in theirs if k not in refs)
    if unknown:
        raise CaseFormatError(f"theirs: {unknown} are not reference quantities of case {case.name!r} (known: {refs})")
    names = [n for n in refs if n in theirs]
    if quantities is not None:
        missing = sorted(set(quantities) - set(names))
        if missing:
            raise CaseFormatError(f"quantities: {missing} are not provided by theirs (provided: {names})")
        names = [n for n in names if n in set(quantities)]
    if not names:
        raise CaseFormatError(f"theirs provides none of the reference quantities of case {case.name!r} ({refs})")
    tolerances = dict(tolerances or {})
    bad_tol = sorted(set(tolerances) - set(refs))
    if bad_tol:
        raise ValueError(f"tolerances: {bad_tol} are not reference quantities of case {case.name!r}")
    results = []
    for name in names:
        ref = case.arrays[name]
        mine = _as_real_array(name, theirs[name])
        if mine.shape != ref.shape:
            raise CaseFormatError(f"theirs[{name!r}]: shape {mine.shape}, the reference has shape {ref.shape} "
                                  f"({case.metadata['arrays'][name]['description']})")
        tol = dict(case.tolerances[name])
        for key, val in tolerances.get(name, {}).items():
            if key not in ("rtol", "atol") or isinstance(val, bool) or not isinstance(val, (int, float)) \
                    or not np.isfinite(val) or val < 0:
                raise ValueError(f"tolerances[{name!r}][{key!r}] must be rtol/atol, a finite number >= 0, got {val!r}")
            tol[key] = float(val)
        if tol["atol"] <= 0 and tol["rtol"] <= 0:
            raise ValueError(f"tolerances[{name!r}]: rtol and atol cannot both be 0")
        results.append(_compare_one(name, mine, ref, tol["rtol"], tol["atol"]))
    not_provided = tuple(n for n in refs if n not in theirs)
    return Comparison(case.name, tuple(results), not_provided)
