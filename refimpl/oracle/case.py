r"""One oracle case — ``CASE_DIR/case.json`` (metadata) + ``CASE_DIR/arrays.npz`` (arrays) — and the registry of case
kinds that gives each kind its own rules.

:class:`Case` holds the parsed metadata and the arrays and validates them on construction. The checks every case gets
(whatever its kind): the metadata satisfies the shipped JSON Schema (:func:`refimpl.oracle.safe_io.case_schema`); its
``kind`` is registered in :data:`CASE_KINDS`; its ``problem`` section satisfies that kind's schema; every array the kind
requires is declared; every declared array is a known input or reference of the kind; ``arrays.npz`` holds exactly the
declared arrays, each with its declared shape and dtype and finite; a tolerance is given for exactly the reference
arrays; every tolerance is within the bounds :data:`MAX_RTOL` and :func:`max_atol` (relative to the reference's
scale). Then the kind checks its own rules (:meth:`CaseKind.check_problem`: shapes that agree with the problem's
dimensions, coefficients that parse, ...), and last the **integrity** section: the SHA-256 of each array's canonical
bytes (:func:`array_sha256`) and of the canonical JSON of ``problem`` and of ``tolerances`` (:func:`json_sha256`)
must be the ones recorded (:func:`integrity_of`). A case built in memory without an integrity section gets one on
construction; :func:`load_case` refuses a case file without one. Integrity guards against corruption and edits of a
case (a torn copy, an array changed in place, a problem changed without recomputing the references); it is not a
signature.

A case kind is one class registered in :data:`CASE_KINDS` (see :class:`CaseKind`); refimpl registers ``"ode"``
(:mod:`refimpl.oracle.ode_cases`) and ``"wasserstein"`` (:mod:`refimpl.oracle.wasserstein_cases`). The format of both is
defined in ``docs/case-format.md``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from refimpl.oracle.json_schema import SchemaViolation, validate
from refimpl.oracle.safe_io import CaseFormatError, case_schema, read_json, read_npz, write_npz
from refimpl.registry import Registry

__all__ = ["Case", "CaseKind", "CASE_KINDS", "load_case", "save_case", "CASE_JSON", "CASE_ARRAYS", "array_sha256",
           "json_sha256", "integrity_of", "max_atol", "MAX_RTOL", "ATOL_SCALE", "ATOL_FLOOR"]

CASE_JSON = "case.json"
CASE_ARRAYS = "arrays.npz"

#: case kinds by name (the ``kind`` of case.json) → the :class:`CaseKind` subclass that owns their rules
CASE_KINDS = Registry("case kind")

#: largest ``rtol`` a case may declare. Tolerances absorb rounding and reference errors: the loosest a battery case
#: declares is 1e-7 (continuous gradients), the loosest check refimpl makes the float32 profile (docs/case-format.md
#: § Precision), at most 2.3e-4 over the battery (rounding depth D ≤ 384). 1e-2 is a factor 40 above that and looser
#: than any rounding check needs, so a larger value can only be a mistake or an edit (edits inside the bounds are
#: caught by the integrity hashes).
MAX_RTOL = 1e-2
#: ``atol`` may be at most ``ATOL_SCALE · max|ref| + ATOL_FLOOR`` (:func:`max_atol`): relative to the reference's scale
#: with the same reasoning as :data:`MAX_RTOL`, plus a floor for references that are (nearly) zero. The floor 1e-6 is
#: above every absolute floor the battery uses (1e-12 for discrete, 1e-7 for continuous quantities) and far below the
#: O(1) quantities a zero array must not match (an ``atol`` of 1e300 accepted a zero gradient).
ATOL_SCALE = 1e-2
ATOL_FLOOR = 1e-6
#: the atol bound of an integer reference: |x - r| ≤ ½ for integers means x = r
INTEGER_ATOL = 0.5


def max_atol(reference) -> float:
    """The largest ``atol`` a case may declare for ``reference``: ``ATOL_SCALE · max|ref| + ATOL_FLOOR``; for an
    integer reference (counts, indices) at least ``INTEGER_ATOL`` = ½, the tolerance that means "equal" for integers."""
    given = np.asarray(reference)
    ref = given.astype(np.float64)
    bound = ATOL_SCALE * (float(np.max(np.abs(ref))) if ref.size else 0.0) + ATOL_FLOOR
    return max(bound, INTEGER_ATOL) if given.dtype.kind in "iu" else bound


def array_sha256(a) -> str:
    """SHA-256 (hex) of an array's canonical bytes: the UTF-8 text ``'{dtype}{shape}\n'`` (dtype name such as
    ``float64``, shape as a Python tuple, e.g. ``float64(17, 2)\n``; ``int64()\n`` for a scalar) followed by the
    entries in C order as little-endian bytes: ``hashlib.sha256(header + a.astype(a.dtype.newbyteorder("<"))
    .tobytes())``."""
    a = np.asarray(a)
    header = f"{a.dtype.name}{tuple(int(n) for n in a.shape)}\n".encode("utf-8")
    data = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
    return hashlib.sha256(header + data).hexdigest()


def json_sha256(value) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``: ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)`` encoded as UTF-8 (floats in their shortest round-trip form)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def integrity_of(metadata: Mapping, arrays: Mapping) -> dict:
    """The ``integrity`` section for ``metadata`` and ``arrays``: ``{"arrays": {name: array_sha256}, "problem":
    json_sha256(problem), "tolerances": json_sha256(tolerances)}``."""
    return {"arrays": {name: array_sha256(arrays[name]) for name in sorted(arrays)},
            "problem": json_sha256(metadata["problem"]), "tolerances": json_sha256(metadata["tolerances"])}


class CaseKind:
    """What a case kind provides; subclass it, set the class attributes, register the class in :data:`CASE_KINDS`.

    ``family``
        the name written as ``kind`` in case.json.
    ``problem_schema``
        the JSON Schema of the ``problem`` section (it may refer to the ``$defs`` of the shipped case schema, e.g.
        ``{"$ref": "#/$defs/ode_problem"}``).
    ``inputs``, ``references``
        array name → description, for the arrays a foreign implementation is given and the ones it is compared on.
    ``required``
        the array names every case of the kind declares.

    Methods (class methods; only :meth:`check_problem` is needed to load and check a case):
    :meth:`check_problem` the kind's own consistency rules; :meth:`summary` one line for ``repr``; :meth:`recompute`
    the references recomputed from the case's own description (used by :func:`refimpl.oracle.verify.verify_case`);
    :meth:`battery` the kind's cases in the exported battery; :meth:`rounding_depth` and :meth:`condition` the
    rounding model of the float32 tolerance profile (:mod:`refimpl.oracle.precision`).
    """

    family: str = ""
    problem_schema: Mapping = {"type": "object"}
    inputs: Mapping[str, str] = {}
    references: Mapping[str, str] = {}
    required: tuple = ()

    @classmethod
    def check_problem(cls, case: "Case", where: str) -> None:
        """Raise :class:`CaseFormatError` (naming ``where``) if the problem and the arrays disagree."""

    @classmethod
    def summary(cls, case: "Case") -> str:
        return f"{cls.family} case"

    @classmethod
    def recompute(cls, case: "Case") -> dict:
        """The reference quantities of ``case`` recomputed by refimpl (name → array)."""
        raise NotImplementedError(f"the {cls.family!r} case kind cannot recompute its references")

    @classmethod
    def rounding_depth(cls, case: "Case") -> int:
        """The number :math:`D` of dependent floating-point operations whose rounding a reference accumulates (the
        float32 profile, :mod:`refimpl.oracle.precision`). Default: the number of entries of the largest array of the
        case (a generic over-estimate); kinds override it with their own count (ODE: steps × stages)."""
        return max([1] + [int(a.size) for a in case.arrays.values()])

    @classmethod
    def condition(cls, case: "Case", depth: int, unit_roundoff: float) -> float:
        r"""The condition :math:`\kappa \ge 1` of the case, measured by the case itself: the largest route check
        (``provenance.route_checks``, the normwise disagreement of two float64 routes) of a rounding-level reference
        (case ``rtol`` ≤ 1e-9; a continuous gradient's route check is a solver error, not rounding) divided by
        ``depth · unit_roundoff``; 1 when that is smaller or there is no route check."""
        checks = case.metadata["provenance"].get("route_checks", {})
        rounding = [float(v) for k, v in checks.items() if k in case.tolerances and case.tolerances[k]["rtol"] <= 1e-9]
        return max([1.0] + [d / (depth * unit_roundoff) for d in rounding])

    @classmethod
    def battery(cls, *, quick: bool = False) -> Iterator["Case"]:
        """The kind's cases in the exported battery (none by default)."""
        return iter(())

    @classmethod
    def declare(cls, arrays: Mapping) -> dict:
        """The ``arrays`` section of case.json for ``arrays`` (in their order): role, shape, dtype, description."""
        return {name: {"role": "input" if name in cls.inputs else "reference", "shape": list(a.shape),
                       "dtype": str(a.dtype), "description": cls.inputs.get(name) or cls.references[name]}
                for name, a in arrays.items()}


@dataclass(frozen=True, eq=False)
class Case:
    """One oracle case: ``metadata`` (the parsed, validated case.json) and ``arrays`` (name → read-only ndarray).

    Construction validates everything (see the module docstring and :meth:`check`), so a ``Case`` in hand is well
    formed. Accessors: ``name``, ``kind`` (the registered :class:`CaseKind`), ``problem`` (the metadata's problem
    section), ``tolerances``, ``references`` (names of the reference quantities); for ODE cases also ``x0``,
    ``theta``, ``T``, ``N``, ``h``, ``sample_times``, ``stage_weights``. Rebuild refimpl objects (field, scheme, loss)
    with :func:`refimpl.oracle.ode_cases.problem_objects`.
    """

    metadata: dict
    arrays: dict = field(repr=False)
    source: str = ""

    def __post_init__(self):
        arrays = {}
        for k, v in dict(self.arrays).items():
            a = np.array(v, copy=True)
            a.flags.writeable = False
            arrays[k] = a
        object.__setattr__(self, "arrays", arrays)
        meta = self.metadata
        if isinstance(meta, dict) and "integrity" not in meta:  # built in memory: seal it (load_case requires one)
            try:
                object.__setattr__(self, "metadata", {**meta, "integrity": integrity_of(meta, arrays)})
            except (KeyError, TypeError, ValueError):
                pass  # malformed metadata: check() says what is wrong
        self.check()

    # accessors --------------------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.metadata["name"]

    @property
    def kind(self) -> type:
        return CASE_KINDS.get(self.metadata["kind"])

    @property
    def problem(self) -> dict:
        return self.metadata["problem"]

    @property
    def tolerances(self) -> dict:
        return self.metadata["tolerances"]

    @property
    def references(self) -> list:
        return [k for k, e in self.metadata["arrays"].items() if e["role"] == "reference"]

    @property
    def x0(self) -> np.ndarray:
        return self.arrays["x0"]

    @property
    def theta(self) -> np.ndarray:
        return self.arrays["theta"]

    @property
    def sample_times(self) -> np.ndarray:
        return self.arrays["sample_times"]

    @property
    def stage_weights(self) -> np.ndarray:
        return self.arrays["stage_weights"]

    @property
    def T(self) -> float:
        return self.metadata["problem"]["T"]

    @property
    def N(self) -> int:
        return self.metadata["problem"]["N"]

    @property
    def h(self) -> float:
        return self.metadata["problem"]["h"]

    def __repr__(self) -> str:
        return f"Case({self.name!r}: {self.kind.summary(self)}; references {self.references})"

    # validation -------------------------------------------------------------------------------------------------------
    def check(self) -> None:
        """The generic checks (module docstring), then the kind's own; CaseFormatError naming the offending item."""
        where = self.source or "case"
        schema = case_schema()
        try:
            validate(self.metadata, schema)
        except SchemaViolation as e:
            raise CaseFormatError(f"{where}: {CASE_JSON} does not satisfy the case schema: {e}") from None
        meta, arrays = self.metadata, self.arrays
        try:
            kind = CASE_KINDS.get(meta["kind"])
        except ValueError as e:
            raise CaseFormatError(f"{where}: {CASE_JSON}: {e}") from None
        try:  # the problem section against the kind's schema (its $refs resolve in the case schema's $defs)
            validate({"problem": meta["problem"]}, {"type": "object", "properties": {"problem": kind.problem_schema},
                                                    "$defs": schema.get("$defs", {})})
        except SchemaViolation as e:
            raise CaseFormatError(f"{where}: the problem section does not describe a {kind.family!r} case: "
                                  f"{e}") from None
        declared = meta["arrays"]
        for name in kind.required:
            if name not in declared:
                raise CaseFormatError(f"{where}: required array {name!r} is not declared in {CASE_JSON}")
        for name, entry in declared.items():
            known = kind.inputs if entry["role"] == "input" else kind.references
            if name not in known:
                raise CaseFormatError(f"{where}: array {name!r} is not a known {entry['role']} (known: "
                                      f"{sorted(known)})")
        missing, extra = sorted(set(declared) - set(arrays)), sorted(set(arrays) - set(declared))
        if missing or extra:
            raise CaseFormatError(f"{where}: {CASE_ARRAYS} and {CASE_JSON} disagree (declared but missing: {missing}; "
                                  f"present but undeclared: {extra})")
        refs = {k for k, e in declared.items() if e["role"] == "reference"}
        if set(meta["tolerances"]) != refs:
            raise CaseFormatError(f"{where}: tolerances must be given for exactly the reference arrays {sorted(refs)}, "
                                  f"got {sorted(meta['tolerances'])}")
        for name, entry in declared.items():
            a = arrays[name]
            if list(a.shape) != entry["shape"]:
                raise CaseFormatError(f"{where}: array {name!r} has shape {list(a.shape)}, declared {entry['shape']}")
            if a.dtype != np.dtype(entry["dtype"]):
                raise CaseFormatError(f"{where}: array {name!r} has dtype {a.dtype}, declared {entry['dtype']}")
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise CaseFormatError(f"{where}: array {name!r} contains NaN or inf")
        for name, tol in meta["tolerances"].items():
            if tol["rtol"] > MAX_RTOL:
                raise CaseFormatError(f"{where}: tolerances.{name}.rtol = {tol['rtol']!r} exceeds the bound "
                                      f"{MAX_RTOL!r} (docs/case-format.md § Tolerances)")
            bound = max_atol(arrays[name])
            if tol["atol"] > bound:
                raise CaseFormatError(f"{where}: tolerances.{name}.atol = {tol['atol']!r} exceeds the bound "
                                      f"{ATOL_SCALE!r}·max|{name}| + {ATOL_FLOOR!r} = {bound!r} "
                                      f"(docs/case-format.md § Tolerances)")
        kind.check_problem(self, where)
        self._check_integrity(where)

    def _check_integrity(self, where: str) -> None:
        """CaseFormatError naming the array, ``problem`` or ``tolerances`` whose SHA-256 is not the recorded one."""
        recorded = self.metadata.get("integrity")
        if recorded is None:
            raise CaseFormatError(f"{where}: {CASE_JSON} has no integrity section (re-export the case)")
        actual = integrity_of(self.metadata, self.arrays)
        if set(recorded["arrays"]) != set(actual["arrays"]):
            raise CaseFormatError(f"{where}: integrity: the hashed arrays {sorted(recorded['arrays'])} are not the "
                                  f"arrays of the case {sorted(actual['arrays'])}")
        for name in actual["arrays"]:
            if recorded["arrays"][name] != actual["arrays"][name]:
                raise CaseFormatError(f"{where}: integrity: array {name!r} does not match its SHA-256 in {CASE_JSON} "
                                      f"(the array or its record was modified)")
        for section in ("problem", "tolerances"):
            if recorded[section] != actual[section]:
                raise CaseFormatError(f"{where}: integrity: the {section!r} section of {CASE_JSON} does not match "
                                      f"its SHA-256 (it was modified after the references were computed)")


# ---------------------------------------------------------------------------------------------------------------------
# directories


def load_case(directory) -> Case:
    """Load and validate ``directory/case.json`` + ``directory/arrays.npz``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CaseFormatError(f"{directory}: not a case directory (expected a folder with {CASE_JSON} and "
                              f"{CASE_ARRAYS})")
    meta = read_json(directory / CASE_JSON)
    if isinstance(meta, dict) and "integrity" not in meta:
        raise CaseFormatError(f"{directory}: {CASE_JSON} has no integrity section (a case written by refimpl always "
                              f"has one; re-export the case)")
    arrays = read_npz(directory / CASE_ARRAYS, native=True)  # declared dtypes are checked before any cast
    return Case(meta, arrays, source=str(directory))


def save_case(case: Case, directory) -> Path:
    """Write ``case`` to ``directory`` (created if needed; its two files are replaced). Returns the directory.

    The ``integrity`` section is recomputed from the arrays being written. Each file is written to a temporary name in
    ``directory`` and renamed into place (``os.replace``), ``arrays.npz`` first and ``case.json`` last, so a reader
    never sees a torn file; a case interrupted between the two renames fails its integrity check instead of loading."""
    if not isinstance(case, Case):
        raise TypeError(f"case must be a refimpl.oracle.Case, got {type(case).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    metadata = {**case.metadata, "integrity": integrity_of(case.metadata, case.arrays)}
    text = json.dumps(metadata, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    tmp_arrays, tmp_json = directory / f".{CASE_ARRAYS}.tmp", directory / f".{CASE_JSON}.tmp"
    try:
        write_npz(tmp_arrays, case.arrays)
        tmp_json.write_text(text, encoding="utf-8")
        os.replace(tmp_arrays, directory / CASE_ARRAYS)
        os.replace(tmp_json, directory / CASE_JSON)
    finally:
        for tmp in (tmp_arrays, tmp_json):
            if tmp.exists():
                tmp.unlink()
    return directory
