"""The JSON schemas in specs/ match the code and describe the files the code writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentrm.adapters.schemas import SCHEMA_FILES, SPECS_DIR, dumps_schema

GOLDEN = Path(__file__).resolve().parent / "golden"


def conforms(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    """A tiny validator for the subset of draft 2020-12 the schemas use."""
    if "$ref" in schema:
        return conforms(value, root["$defs"][schema["$ref"].rsplit("/", 1)[1]], root)
    if "oneOf" in schema:
        return sum(conforms(value, s, root) for s in schema["oneOf"]) == 1
    if "anyOf" in schema:
        return any(conforms(value, s, root) for s in schema["anyOf"])
    if "const" in schema:
        return bool(value == schema["const"]) and type(value) is type(schema["const"])
    if "enum" in schema:
        return value in schema["enum"]
    kind = schema.get("type")
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) and value >= schema.get("minimum", value)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list) and all(conforms(v, schema["items"], root) for v in value)
    if kind == "object":
        if not isinstance(value, dict) or not set(schema["required"]) <= set(value):
            return False
        props = schema["properties"]
        if schema.get("additionalProperties") is False and not set(value) <= set(props):
            return False
        return all(conforms(v, props[k], root) for k, v in value.items() if k in props)
    raise AssertionError(f"validator does not know {schema}")


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_checked_in_schema_is_generated_from_the_classes(name: str) -> None:
    """specs/<name> equals what adapters/schemas.py derives from the format's classes today."""
    assert (SPECS_DIR / name).read_text(encoding="utf-8") == dumps_schema(SCHEMA_FILES[name]())


@pytest.mark.parametrize(("schema_name", "pattern"), [
    ("eventlog-v1.schema.json", "*.log.jsonl"),
    ("workload-v1.schema.json", "*.workload.jsonl"),
])
def test_golden_files_conform_to_their_schema(schema_name: str, pattern: str) -> None:
    """Every line of every golden file validates against its format's schema."""
    schema = json.loads((SPECS_DIR / schema_name).read_text(encoding="utf-8"))
    files = sorted(GOLDEN.glob(pattern))
    assert files
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            assert conforms(json.loads(line), schema, schema), f"{path.name}:{number}"


def test_validator_rejects_bad_lines() -> None:
    """The schema (and the mini validator) reject a wrong discriminator, a float and an extra field."""
    schema = json.loads((SPECS_DIR / "eventlog-v1.schema.json").read_text(encoding="utf-8"))
    good = {"seq": 1, "event": {"type": "clock_advanced", "at_ms": 5}, "effects": [{"type": "wake_at", "at_ms": 9}]}
    assert conforms(good, schema, schema)
    assert not conforms({**good, "event": {"type": "clock_skipped", "at_ms": 5}}, schema, schema)
    assert not conforms({**good, "event": {"type": "clock_advanced", "at_ms": 5.5}}, schema, schema)
    assert not conforms({**good, "extra": 1}, schema, schema)
    assert not conforms({**good, "seq": 0}, schema, schema)
