"""Segment's conformance vectors (../shared/conformance/*.jsonl) as pytest cases, and JSON values
compared the JavaScript way, for the tests that check our engine against Segment's code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# Same place as the `conformance_dir` fixture of tests/conftest.py; read at collection time.
CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"


def vector_params(file_name: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """The vectors of one file and one pytest case per vector id; without the shared folder, no
    vectors and one placeholder case, which the `conformance_dir` fixture skips."""
    path = CONFORMANCE / file_name
    vectors: list[dict[str, Any]] = []
    if path.is_file():
        with path.open(encoding="utf-8") as lines:
            vectors = [json.loads(line) for line in lines if line.strip()]
    params = [pytest.param(v, id=v["id"]) for v in vectors] or [pytest.param(None, id="no-vectors")]
    return vectors, params


def js_value(value: Any) -> Any:
    """Make a JSON value comparable the JavaScript way: numbers as doubles, booleans apart."""
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, dict):
        return {key: js_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [js_value(item) for item in value]
    return value
