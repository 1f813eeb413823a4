r"""Compare a foreign implementation's arrays with an oracle case: per quantity the max abs/rel error, the worst index
and pass/fail against the case tolerance (``docs/case-format.md`` § How ``check`` decides).

For a reference quantity :math:`r` and the foreign array :math:`x` of the same shape, with the tolerances ``rtol``,
``atol`` — the case's; with ``precision="float32"`` the float32 profile of :mod:`refimpl.oracle.precision`; and,
where the caller gives them, the caller's (``tolerances=`` per quantity, ``rtol=``/``atol=`` for all), which are used
as given, even looser than the case's, and marked as the caller's in the report:

* ``max_abs_error`` :math:`= \max_i |x_i - r_i|`;
* ``max_rel_error`` :math:`= \max_i |x_i - r_i| / \max_i |r_i|` (normwise; 0 when both are 0, inf when only the
  error is nonzero);
* ``worst_index``: the entry with the largest *tolerance ratio* :math:`|x_i - r_i| / (atol + rtol|r_i|)`;
* ``passed``: every ratio ≤ 1 (``numpy.isclose`` semantics, ``equal_nan=False``). A NaN or inf in the foreign array is a
  mismatch (ratio inf at its first position), not bad input: it is what the foreign code computed. So is a finite
  difference that overflows float64 (±1e308 against a reference of the other sign), with no RuntimeWarning.

Float32 detection: a failing quantity whose foreign array is float32 (or float16) gets a hint naming
``--precision float32`` (``Comparison.hints``); so does a failing float64 array that was evidently computed in float32
and cast — every entry exactly a float32 number (``float32_exact``), or a normwise error of about float32's precision,
between :math:`u_{32}/8` and :math:`100\,u_{32}` (:math:`u_{32} = 2^{-24}`).

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
from dataclasses import asdict, dataclass, replace
from typing import Mapping

import numpy as np

from refimpl.arguments import as_real_array
from refimpl.oracle.case import Case, load_case
from refimpl.oracle.safe_io import CaseFormatError, read_npz

__all__ = ["QuantityComparison", "Comparison", "compare", "compare_arrays", "normwise_disagreement", "same_input"]


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
    """The comparison of one quantity (see the module docstring for each field). ``dtype`` is the foreign array's
    dtype as given; ``tolerance_source`` says where (rtol, atol) came from ("case", "float32 profile" or "user");
    ``case_rtol``/``case_atol`` are the case's own tolerances."""

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
    dtype: str = "float64"
    float32_exact: bool = False
    tolerance_source: str = "case"
    case_rtol: float = float("nan")
    case_atol: float = float("nan")

    @property
    def looser_than_case(self) -> bool:
        return self.rtol > self.case_rtol or self.atol > self.case_atol

    def row(self) -> str:
        """One row of the report; theirs and the reference at the worst entry in full precision (``repr``: the
        shortest decimal that reads back to the same float64, up to 17 significant digits)."""
        idx = "()" if not self.worst_index else "(" + ", ".join(str(i) for i in self.worst_index) + ")"
        src = "" if self.tolerance_source == "case" else f" ({self.tolerance_source}" + (
            ", looser than the case's" if self.looser_than_case else "") + ")"
        return (f"{'PASS' if self.passed else 'FAIL':4}  {self.name:20} {self.max_abs_error:10.3e} "
                f"{self.max_rel_error:10.3e} {idx:>10} {self.worst_theirs!r:>24} {self.worst_reference!r:>24} "
                f"{self.worst_ratio:9.3g}  {self.n_failing:>6}  rtol={self.rtol:.3g} atol={self.atol:.3g}{src}")


@dataclass(frozen=True)
class Comparison:
    """Evidence of one check: the case name, one :class:`QuantityComparison` per provided quantity, the reference
    quantities not provided, the precision profile used (:class:`refimpl.oracle.precision.PrecisionProfile`) and the
    hints (float32 detection). ``passed`` is True when every provided quantity passes; ``exit_code`` 0/1."""

    case: str
    quantities: tuple
    not_provided: tuple
    profile: object = None
    hints: tuple = ()

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
        """The human report: one row per quantity, the tolerance profile, the hints."""
        head = (f"{'':4}  {'quantity':20} {'max abs':>10} {'max rel':>10} {'worst at':>10} {'theirs':>24} "
                f"{'reference':>24} {'err/tol':>9}  {'#fail':>6}  tolerance used")
        lines = [f"case {self.case}: {'PASS' if self.passed else 'FAIL'} "
                 f"({sum(q.passed for q in self.quantities)}/{len(self.quantities)} quantities within tolerance)",
                 head] + [q.row() for q in self.quantities]
        if self.not_provided:
            lines.append(f"not provided (not checked): {', '.join(self.not_provided)}")
        if self.profile is not None and self.profile.precision != "float64":
            lines.append(self.profile.formula())
        lines += [f"hint: {h}" for h in self.hints]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready dict (non-finite numbers become the strings "inf"/"nan")."""
        def clean(v):
            if isinstance(v, float) and not np.isfinite(v):
                return str(v)
            if isinstance(v, (tuple, list)):
                return [clean(x) for x in v]
            return v
        out = {"case": self.case, "status": "pass" if self.passed else "mismatch", "exit_code": self.exit_code,
               "quantities": [{k: clean(v) for k, v in asdict(q).items()} for q in self.quantities],
               "not_provided": list(self.not_provided), "hints": list(self.hints)}
        if self.profile is not None:
            out["precision"] = {k: clean(v) for k, v in self.profile.to_dict().items()}
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def __repr__(self) -> str:
        return self.table()


def _compare_one(name: str, theirs: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> QuantityComparison:
    if ref.size == 0:
        return QuantityComparison(name, ref.shape, rtol, atol, 0.0, 0.0, (), float("nan"), float("nan"), 0.0, 0, True)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # ±1e308 - ∓1e308 is inf: a mismatch
        err = np.abs(theirs - ref)  # NaN where theirs is NaN, inf where theirs is inf or the difference overflows
        bad = ~np.isfinite(err)
        allowed = atol + rtol * np.abs(ref)
        ratio = np.where(bad, np.inf, np.where(allowed > 0, err / np.where(allowed > 0, allowed, 1.0),
                                               np.where(err > 0, np.inf, 0.0)))
    flat = int(np.argmax(ratio))  # the first inf if there is one
    worst = tuple(int(i) for i in np.unravel_index(flat, ref.shape))
    max_abs = float(np.inf if bad.any() else np.max(err))
    scale = float(np.max(np.abs(ref)))
    with np.errstate(over="ignore"):
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    n_fail = int(np.count_nonzero(ratio > 1))
    return QuantityComparison(name, tuple(ref.shape), rtol, atol, max_abs, max_rel, worst,
                              float(theirs.reshape(-1)[flat]), float(ref.reshape(-1)[flat]),
                              float(ratio.reshape(-1)[flat]), n_fail, n_fail == 0)


def _as_real_array(name: str, value) -> np.ndarray:
    """``theirs[name]`` as a real array of its own dtype, any shape, NaN/inf kept (they are reported as failures, not
    refused).

    The dtype rule is :func:`refimpl.arguments.as_real_array`'s (any floating or integer dtype; not bool, complex,
    object or strings); its errors become :class:`CaseFormatError` (bad input to the oracle), each naming
    ``theirs[name]``.
    """
    where = f"theirs[{name!r}]"
    try:
        a = as_real_array(value, where, "an array of real numbers")
    except (ValueError, TypeError) as e:
        msg = str(e)
        raise CaseFormatError(msg if msg.startswith(where) else f"{where}: not an array ({msg})") from None
    return a


def _tolerance_value(value, where: str, *, upper: float | None = None) -> float:
    """A user tolerance: a finite real number ≥ 0 (and < ``upper``); ValueError/TypeError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where} must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{where} must be a finite number >= 0, got {value!r}")
    if upper is not None and value >= upper:
        raise ValueError(f"{where} must be < {upper:g} (a relative tolerance of 1 accepts anything of the right "
                         f"sign), got {value!r}")
    return value


def _float32_hints(results, profile32) -> list:
    """At most two hints (module docstring): the failing quantities whose foreign array is float32/float16, and the
    failing float64 ones that look computed in float32."""
    low = [q for q in results if not q.passed and q.dtype in ("float32", "float16")]
    u32 = profile32.unit_roundoff
    upcast = [q for q in results if not q.passed and q not in low
              and (q.float32_exact or u32 / 8 <= q.max_rel_error <= 100 * u32)]
    hints = []
    if low:
        names = ", ".join(f"{q.name} ({q.dtype})" for q in low)
        hints.append(f"{names}: a single-precision computation cannot meet float64 tolerances (rtol "
                     f"{min(q.case_rtol for q in low):.3g}); compute in float64, or check with --precision float32 "
                     f"(tolerances derived from float32's unit roundoff and the case's condition, "
                     f"docs/case-format.md § Precision)")
    if upcast:
        worst = max(q.max_rel_error for q in upcast)
        exact = [q.name for q in upcast if q.float32_exact]
        why = (f"every entry of {', '.join(exact)} is exactly a float32 number; " if exact else "")
        hints.append(f"{', '.join(q.name for q in upcast)}: float64 arrays that agree with the references only to "
                     f"{worst:.2g} relative ({why}float32 unit roundoff {u32:.2g}; the float32 profile allows "
                     f"{profile32.rtol_floor:.2g}): they look computed in float32 and cast to float64; if so, check "
                     f"with --precision float32")
    return hints


def compare(case, theirs, *, quantities=None, tolerances: Mapping | None = None, rtol=None, atol=None,
            precision: str = "float64"):
    """Compare ``theirs`` with the reference arrays of ``case``: the case kind's own comparison if it has one (a
    ``compare`` classmethod, e.g. ``ode_adaptive`` checks the accepted grid first), else :func:`compare_arrays`.
    Arguments as :func:`compare_arrays`."""
    if not isinstance(case, Case):
        if not isinstance(case, (str, os.PathLike)):
            raise TypeError(f"case must be a Case or a case directory path, got {type(case).__name__}")
        case = load_case(case)
    own = getattr(case.kind, "compare", None)
    if own is not None:
        return own(case, theirs, quantities=quantities, tolerances=tolerances, rtol=rtol, atol=atol,
                   precision=precision)
    return compare_arrays(case, theirs, quantities=quantities, tolerances=tolerances, rtol=rtol, atol=atol,
                          precision=precision)


def compare_arrays(case, theirs, *, quantities=None, tolerances: Mapping | None = None, rtol=None, atol=None,
                   precision: str = "float64") -> Comparison:
    """Compare ``theirs`` with the reference arrays of ``case``, entry by entry.

    ``case``: a :class:`~refimpl.oracle.case.Case` or a case directory. ``theirs``: a mapping name → array, or the
    path of an ``.npz`` file (read without unpickling). ``quantities``: restrict to these names (each must be provided).
    ``precision``: ``"float64"`` (the case's tolerances) or ``"float32"`` (the float32 profile,
    :mod:`refimpl.oracle.precision`). ``tolerances``: per-quantity overrides ``{name: {"rtol": r, "atol": a}}``;
    ``rtol``, ``atol``: overrides for every quantity (after the per-quantity ones). Overrides are the caller's choice
    and are used as given, even looser than the case's; the report marks them. Returns a :class:`Comparison`; raises
    :class:`~refimpl.oracle.safe_io.CaseFormatError` on bad input and ValueError/TypeError on bad arguments.

    >>> from refimpl.oracle import compare, load_case          # doctest: +SKIP
    >>> report = compare(load_case("cases/tanh-d2__rk4__stage__N16"), {"discrete_gradient": my_grad})
    >>> report.passed, report["discrete_gradient"].worst_index
    """
    from refimpl.oracle.precision import precision_profile

    if not isinstance(case, Case):
        if not isinstance(case, (str, os.PathLike)):
            raise TypeError(f"case must be a Case or a case directory path, got {type(case).__name__}")
        case = load_case(case)
    profile = precision_profile(case, precision)  # validates precision
    rtol = None if rtol is None else _tolerance_value(rtol, "rtol", upper=1.0)
    atol = None if atol is None else _tolerance_value(atol, "atol")
    refs = case.references
    if isinstance(theirs, (str, os.PathLike)):
        theirs = read_npz(theirs, native=True, names=refs)
    if not isinstance(theirs, Mapping):
        raise TypeError(f"theirs must be a mapping name -> array or an .npz path, got {type(theirs).__name__}")
    unknown = sorted(str(k) for k in theirs if k not in refs)
    if unknown:
        raise CaseFormatError(f"theirs: {unknown} are not reference quantities of case {case.name!r} (the valid names: "
                              f"{', '.join(refs)})")
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
    profile32 = precision_profile(case, "float32") if precision == "float64" else profile
    results, hints = [], []
    for name in names:
        ref = case.arrays[name]
        given = _as_real_array(name, theirs[name])
        if given.shape != ref.shape:
            raise CaseFormatError(f"theirs[{name!r}]: shape {given.shape}, the reference has shape {ref.shape} "
                                  f"({case.metadata['arrays'][name]['description']})")
        mine = given.astype(np.float64)
        case_tol = case.tolerances[name]
        r, a = profile.tolerance(case_tol["rtol"], case_tol["atol"], ref)
        source = "case" if profile.precision == "float64" else f"{profile.precision} profile"
        for key, val in tolerances.get(name, {}).items():
            if key not in ("rtol", "atol"):
                raise ValueError(f"tolerances[{name!r}]: unknown key {key!r} (rtol, atol)")
            val = _tolerance_value(val, f"tolerances[{name!r}][{key!r}]", upper=1.0 if key == "rtol" else None)
            r, a, source = (val, a, "user") if key == "rtol" else (r, val, "user")
        if rtol is not None:
            r, source = rtol, "user"
        if atol is not None:
            a, source = atol, "user"
        if a <= 0 and r <= 0:
            raise ValueError(f"tolerances[{name!r}]: rtol and atol cannot both be 0")
        q = _compare_one(name, mine, ref, r, a)
        with np.errstate(over="ignore", invalid="ignore"):
            exact32 = bool(given.dtype.itemsize > 4 and given.dtype.kind == "f" and np.all(np.isfinite(mine))
                           and np.any(mine != np.round(mine))
                           and np.array_equal(mine, mine.astype(np.float32).astype(np.float64)))
        q = replace(q, dtype=str(given.dtype), float32_exact=exact32, tolerance_source=source,
                    case_rtol=float(case_tol["rtol"]), case_atol=float(case_tol["atol"]))
        results.append(q)
    if precision == "float64":
        hints = _float32_hints(results, profile32)
    not_provided = tuple(n for n in refs if n not in theirs)
    return Comparison(case.name, tuple(results), not_provided, profile, tuple(hints))
