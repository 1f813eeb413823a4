r"""One oracle case — ``CASE_DIR/case.json`` (metadata) + ``CASE_DIR/arrays.npz`` (arrays) — and the registry of case
kinds that gives each kind its own rules.

:class:`Case` holds the parsed metadata and the arrays and validates them on construction. The checks every case gets
(whatever its kind): the metadata satisfies the shipped JSON Schema (:func:`refimpl.oracle.safe_io.case_schema`); its
``kind`` is registered in :data:`CASE_KINDS`; its ``problem`` section satisfies that kind's schema; every array the kind
requires is declared; every declared array is a known input or reference of the kind; ``arrays.npz`` holds exactly the
declared arrays, each with its declared shape and dtype and finite; a tolerance is given for exactly the reference
arrays. Then the kind checks its own rules (:meth:`CaseKind.check_problem`: shapes that agree with the problem's
dimensions, coefficients that parse, ...).

A case kind is one class registered in :data:`CASE_KINDS` (see :class:`CaseKind`); refimpl registers ``"ode"``
(:mod:`refimpl.oracle.ode_cases`) and ``"wasserstein"`` (:mod:`refimpl.oracle.wasserstein_cases`). The format of both is
defined in ``docs/case-format.md``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from refimpl.oracle.json_schema import SchemaViolation, validate
from refimpl.oracle.safe_io import CaseFormatError, case_schema, read_json, read_npz, write_npz
from refimpl.registry import Registry

__all__ = ["Case", "CaseKind", "CASE_KINDS", "load_case", "save_case", "CASE_JSON", "CASE_ARRAYS"]

CASE_JSON = "case.json"
CASE_ARRAYS = "arrays.npz"

#: case kinds by name (the ``kind`` of case.json) → the :class:`CaseKind` subclass that owns their rules
CASE_KINDS = Registry("case kind")


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
    :meth:`battery` the kind's cases in the exported battery.
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
        kind.check_problem(self, where)


# ---------------------------------------------------------------------------------------------------------------------
# directories


def load_case(directory) -> Case:
    """Load and validate ``directory/case.json`` + ``directory/arrays.npz``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CaseFormatError(f"{directory}: not a case directory (expected a folder with {CASE_JSON} and "
                              f"{CASE_ARRAYS})")
    meta = read_json(directory / CASE_JSON)
    arrays = read_npz(directory / CASE_ARRAYS)
    return Case(meta, arrays, source=str(directory))


def save_case(case: Case, directory) -> Path:
    """Write ``case`` to ``directory`` (created if needed; its two files are overwritten). Returns the directory."""
    if not isinstance(case, Case):
        raise TypeError(f"case must be a refimpl.oracle.Case, got {type(case).__name__}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(case.metadata, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    (directory / CASE_JSON).write_text(text, encoding="utf-8")
    write_npz(directory / CASE_ARRAYS, case.arrays)
    return directory
