"""A small validator for the subset of JSON Schema (draft 2020-12 keywords) that ``case_schema.json`` uses.

refimpl has no runtime dependency on ``jsonschema``; case metadata is validated by this module instead. Supported
keywords (anything else in a schema is refused when the schema is checked, so the subset cannot silently grow):

``type`` (``object array string number integer boolean null``, or a list of them; ``integer`` excludes booleans and
non-integral floats, ``number`` excludes booleans), ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties`` (``false`` or a schema), ``propertyNames`` (a schema every key must satisfy), ``items`` (one
schema for every item), ``minItems``, ``maxItems``,
``minimum``, ``maximum``, ``exclusiveMinimum``, ``minLength``, ``maxLength``, ``pattern`` (``re.fullmatch``
semantics are *not* used: as in JSON Schema the pattern is searched, so anchor it), ``anyOf``, ``$ref`` (only local
``#/$defs/NAME``), ``$defs``, and the annotations ``$schema``, ``$id``, ``title``, ``description``.

:func:`validate` returns nothing and raises :class:`SchemaViolation` (a ``ValueError``) naming the JSON path of the
first offending value, e.g. ``$.problem.N: -3 is less than the minimum 1``.
"""
from __future__ import annotations

import math
import re

__all__ = ["SchemaViolation", "validate", "check_schema"]

_TYPES = ("object", "array", "string", "number", "integer", "boolean", "null")
_KEYWORDS = {"type", "enum", "const", "properties", "required", "additionalProperties", "propertyNames", "items",
             "minItems", "maxItems", "minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength", "pattern",
             "anyOf", "$ref", "$defs", "$schema", "$id", "title", "description"}


class SchemaViolation(ValueError):
    """A JSON document does not satisfy the schema; the message names the JSON path."""


def _is_type(value, t: str) -> bool:
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "string":
        return isinstance(value, str)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "null":
        return value is None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if t == "number":
        return True
    return isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())  # integer


def check_schema(schema, path: str = "#") -> None:
    """Refuse a schema that uses a keyword outside the supported subset (module docstring)."""
    if not isinstance(schema, dict):
        raise TypeError(f"schema at {path} must be an object, got {type(schema).__name__}")
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise ValueError(f"schema at {path} uses unsupported keyword(s) {sorted(unknown)}")
    types = schema.get("type")
    if types is not None:
        for t in ([types] if isinstance(types, str) else types):
            if t not in _TYPES:
                raise ValueError(f"schema at {path}: unknown type {t!r}")
    for key in ("properties", "$defs"):
        for name, sub in schema.get(key, {}).items():
            check_schema(sub, f"{path}/{key}/{name}")
    for key in ("items", "additionalProperties", "propertyNames"):
        if isinstance(schema.get(key), dict):
            check_schema(schema[key], f"{path}/{key}")
    for i, sub in enumerate(schema.get("anyOf", [])):
        check_schema(sub, f"{path}/anyOf/{i}")
    ref = schema.get("$ref")
    if ref is not None and not (isinstance(ref, str) and re.fullmatch(r"#/\$defs/[A-Za-z0-9_]+", ref)):
        raise ValueError(f"schema at {path}: only local '#/$defs/NAME' references are supported, got {ref!r}")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _validate(value, schema: dict, root: dict, path: str) -> None:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        defs = root.get("$defs", {})
        if name not in defs:
            raise ValueError(f"schema: unresolved reference {schema['$ref']!r}")
        _validate(value, defs[name], root, path)
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        if not any(_is_type(value, t) for t in types):
            raise SchemaViolation(f"{path}: expected {' or '.join(types)}, got {type(value).__name__} {_short(value)}")
    if "const" in schema and not _same(value, schema["const"]):
        raise SchemaViolation(f"{path}: must be {schema['const']!r}, got {_short(value)}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        raise SchemaViolation(f"{path}: must be one of {schema['enum']!r}, got {_short(value)}")
    if "anyOf" in schema:
        reasons = []
        for sub in schema["anyOf"]:
            try:
                _validate(value, sub, root, path)
                break
            except SchemaViolation as e:
                reasons.append(str(e))
        else:
            raise SchemaViolation(f"{path}: matches none of the allowed forms ({'; '.join(reasons)})")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise SchemaViolation(f"{path}: must be a finite number, got {value!r}")
        if "minimum" in schema and value < schema["minimum"]:
            raise SchemaViolation(f"{path}: {value!r} is less than the minimum {schema['minimum']!r}")
        if "maximum" in schema and value > schema["maximum"]:
            raise SchemaViolation(f"{path}: {value!r} is greater than the maximum {schema['maximum']!r}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise SchemaViolation(f"{path}: {value!r} must be greater than {schema['exclusiveMinimum']!r}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise SchemaViolation(f"{path}: string shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise SchemaViolation(f"{path}: string longer than {schema['maxLength']}")
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            raise SchemaViolation(f"{path}: {_short(value)} does not match the pattern {schema['pattern']!r}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise SchemaViolation(f"{path}: needs at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise SchemaViolation(f"{path}: allows at most {schema['maxItems']} items, got {len(value)}")
        if "items" in schema:
            for i, item in enumerate(value):
                _validate(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                raise SchemaViolation(f"{path}: missing required key {key!r}")
        if "propertyNames" in schema:
            for key in value:
                _validate(key, schema["propertyNames"], root, f"{path}[key {_short(key)}]")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                _validate(item, props[key], root, f"{path}.{key}")
            elif extra is False:
                raise SchemaViolation(f"{path}: unexpected key {_short(key)} (allowed: {sorted(props)})")
            elif isinstance(extra, dict):
                _validate(item, extra, root, f"{path}.{key}")


def _same(a, b) -> bool:
    """JSON equality: booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def validate(document, schema: dict) -> None:
    """Raise :class:`SchemaViolation` unless ``document`` (parsed JSON) satisfies ``schema`` (the subset above)."""
    check_schema(schema)
    try:
        _validate(document, schema, schema, "$")
    except RecursionError:
        raise SchemaViolation("$: the document is nested too deeply") from None
