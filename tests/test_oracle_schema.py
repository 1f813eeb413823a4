"""The small JSON Schema validator (refimpl.oracle.json_schema) keyword by keyword, and the shipped case schema."""
import json

import pytest

from refimpl.oracle.safe_io import case_schema
from refimpl.oracle.json_schema import SchemaViolation, check_schema, validate

S = {
    "type": "object",
    "required": ["n", "tag"],
    "additionalProperties": False,
    "properties": {
        "n": {"type": "integer", "minimum": 1, "maximum": 10},
        "x": {"type": "number", "exclusiveMinimum": 0},
        "tag": {"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5},
        "kind": {"enum": ["a", "b"]},
        "one": {"const": 1},
        "v": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"$ref": "#/$defs/num"}},
        "either": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/num"}]},
        "map": {"type": "object", "propertyNames": {"pattern": "^k"}, "additionalProperties": {"type": "boolean"}},
    },
    "$defs": {"num": {"type": ["integer", "number"]}},
}

GOOD = {"n": 3, "x": 0.5, "tag": "ab", "kind": "a", "one": 1, "v": [1, 2.5], "either": None, "map": {"k1": True}}


def test_a_valid_document_passes():
    validate(GOOD, S)
    validate({**GOOD, "either": 3.0, "n": 4.0}, S)  # 4.0 is an integer in JSON Schema


@pytest.mark.parametrize("change, path", [
    ({"n": 0}, "$.n"), ({"n": 11}, "$.n"), ({"n": 2.5}, "$.n"), ({"n": True}, "$.n"), ({"n": "3"}, "$.n"),
    ({"x": 0}, "$.x"), ({"x": float("nan")}, "$.x"), ({"x": float("inf")}, "$.x"), ({"x": False}, "$.x"),
    ({"tag": "AB"}, "$.tag"), ({"tag": "a"}, "$.tag"), ({"tag": "abcdef"}, "$.tag"), ({"tag": 5}, "$.tag"),
    ({"kind": "c"}, "$.kind"), ({"one": True}, "$.one"), ({"one": 2}, "$.one"),
    ({"v": []}, "$.v"), ({"v": [1, 2, 3, 4]}, "$.v"), ({"v": [1, "2"]}, "$.v[1]"), ({"v": {"0": 1}}, "$.v"),
    ({"either": "s"}, "$.either"), ({"map": {"x": True}}, "$.map[key 'x']"), ({"map": {"k": 1}}, "$.map.k"),
    ({"extra": 1}, "$"),
])
def test_each_violation_is_reported_at_its_path(change, path):
    with pytest.raises(SchemaViolation) as info:
        validate({**GOOD, **change}, S)
    assert str(info.value).startswith(path + ":"), str(info.value)


def test_missing_required_key_and_wrong_root_type():
    with pytest.raises(SchemaViolation, match="missing required key 'tag'"):
        validate({"n": 1}, S)
    with pytest.raises(SchemaViolation, match=r"^\$: expected object"):
        validate([GOOD], S)


def test_unsupported_keywords_and_remote_refs_are_refused():
    with pytest.raises(ValueError, match="unsupported keyword"):
        check_schema({"type": "object", "oneOf": []})
    with pytest.raises(ValueError, match="unsupported keyword"):
        check_schema({"properties": {"a": {"format": "email"}}})
    with pytest.raises(ValueError, match="local"):
        check_schema({"$ref": "http://example.com/s.json"})
    with pytest.raises(ValueError, match="unknown type"):
        check_schema({"type": "float"})


def test_deep_nesting_is_a_violation_not_a_crash():
    doc = []
    for _ in range(5000):
        doc = [doc]
    nested = {"type": "array", "items": {"$ref": "#/$defs/a"}, "$defs": {"a": {"type": "array",
                                                                                "items": {"$ref": "#/$defs/a"}}}}
    with pytest.raises(SchemaViolation, match="nested too deeply"):
        validate(doc, nested)


def test_the_shipped_case_schema_is_in_the_supported_subset_and_is_json():
    schema = case_schema()
    check_schema(schema)
    assert json.loads(json.dumps(schema)) == schema
    assert schema["properties"]["format_version"] == {"const": 1}
