"""A resolved mapping checked against an action's fields, as Segment's runtime checks it.

Segment's `@segment/actions-core` (3.170.0) does two things to the object a mapping resolved to
before an action sees it (`Action.execute`):

1. `removeEmptyValues`: a `null` in a typed field is dropped, so is `""` at the top level and
   `""` in a non-string sub-field.
2. Ajv (8.x) with `coerceTypes: "array"`, `removeAdditional: true`, `allErrors: true`: keys the
   action does not declare are dropped (at the top and inside objects that list their sub-keys);
   a value of the wrong type is coerced where Ajv can — numbers and booleans to text in string
   fields, numeric text and booleans to numbers, `"true"`/`"false"`/`1`/`0` to booleans, a
   one-element array to its element — and otherwise reported. Every problem is reported, the
   required fields first, then each field in the action's declaration order, in the words of
   `@segment/ajv-human-errors` ("User ID must be a string but it was an object.").

The payload returned is new; the resolved mapping (which may share objects with the event) is
never changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from acoustic_pipelines.actions.js_values import (
    UNDEFINED,
    js_string_to_number,
    js_to_string,
)
from acoustic_pipelines.connections.fields import Field

__all__ = ["FieldProblem", "check_payload"]


@dataclass(frozen=True)
class FieldProblem:
    """One reason Segment refuses a payload: the field's dotted key and Segment's sentence."""

    field: str
    message: str
    value: Any = None


def check_payload(
    payload: dict[str, Any], fields: tuple[Field, ...]
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """Clean, coerce and check a resolved mapping; returns the new payload and the problems."""
    declared = {field.key: field for field in fields}
    cleaned: dict[str, Any] = {}
    for key, value in payload.items():
        field = declared.get(key)
        if field is None:
            continue  # removeAdditional: the root object declares its fields only
        value = _remove_empty(value, field)
        if value is UNDEFINED or value == "" and type(value) is str:
            continue
        cleaned[key] = value
    problems = [
        FieldProblem(field.key, f"The root value is missing the required field '{field.key}'.")
        for field in fields
        if field.required and field.key not in cleaned
    ]
    result: dict[str, Any] = {}
    checked: dict[str, Any] = {}
    for field in fields:
        if field.key in cleaned:
            checked[field.key] = _check(cleaned[field.key], field, field.key, problems)
    # Keep the payload's own key order (what Segment's object would have).
    for key in cleaned:
        result[key] = checked[key]
    return result, problems


def _remove_empty(value: Any, field: Field) -> Any:
    """Segment's removeEmptyValues for one field (below the top level)."""
    kind = type(value)
    if kind is list:
        return value  # no field declares `items`
    if kind is dict:
        if field.properties is None:
            return value
        declared = {sub.key: sub for sub in field.properties}
        kept: dict[str, Any] = {}
        for key, item in value.items():
            sub = declared.get(key)
            if sub is not None:
                item = _remove_empty(item, sub)
            if item is not UNDEFINED:
                kept[key] = item
        return kept
    if value is None:
        return UNDEFINED  # no field allows null
    if kind is str and value == "" and field.type != "string":
        return UNDEFINED
    return value


def _check(value: Any, field: Field, path: str, problems: list[FieldProblem]) -> Any:
    """Check (and coerce) one value against its field; problems are appended in Ajv's order."""
    if field.type == "object":
        if type(value) is not dict:
            problems.append(_type_problem(field, path, value))
            return value
        if field.properties is None:
            return value
        result: dict[str, Any] = {}
        declared = {sub.key for sub in field.properties}
        checked: dict[str, Any] = {}
        for sub in field.properties:
            if sub.key in value:
                checked[sub.key] = _check(value[sub.key], sub, f"{path}.{sub.key}", problems)
        for key in value:
            if key in declared:
                result[key] = checked[key]
        return result
    if _has_type(value, field.type):
        return value
    data = value
    coerced: Any = UNDEFINED
    if type(data) is list and len(data) == 1:
        data = data[0]  # coerceTypes "array": a one-element array stands for its element
        if _has_type(data, field.type):
            coerced = data
    if coerced is UNDEFINED:
        coerced = _coerce(data, field.type)
    if coerced is UNDEFINED:
        problems.append(_type_problem(field, path, data))
        return value
    return coerced


def _has_type(value: Any, kind: str) -> bool:
    """Ajv's type test (`number` excludes booleans and infinities)."""
    python_type = type(value)
    if kind == "string":
        return python_type is str
    if kind == "boolean":
        return python_type is bool
    if kind == "number":
        return python_type is int or python_type is float and math.isfinite(value)
    return python_type is dict


def _coerce(data: Any, kind: str) -> Any:
    """Ajv's coercion of a scalar to `kind`, or UNDEFINED when Ajv has none."""
    python_type = type(data)
    is_number = python_type is int or python_type is float
    if kind == "string":
        if is_number or python_type is bool:
            return js_to_string(data)
        return "" if data is None else UNDEFINED
    if kind == "number":
        if python_type is bool:
            return 1 if data else 0
        if data is None:
            return 0
        if python_type is str and data:
            number = js_string_to_number(data)
            if number == number:  # `data == +data` is false only for NaN
                return _json_number(number)
        return UNDEFINED
    if kind == "boolean":
        if data == "false" and python_type is str or is_number and data == 0 or data is None:
            return False
        if data == "true" and python_type is str or is_number and data == 1:
            return True
    return UNDEFINED


def _json_number(number: float) -> int | float | None:
    """A JavaScript number as JSON writes it: integral values as integers, infinities as null."""
    if not math.isfinite(number):
        return None
    if number.is_integer() and abs(number) <= 2**53:
        return int(number)
    return number


def _type_problem(field: Field, path: str, data: Any) -> FieldProblem:
    """`<Label> must be a <type> but it was <what>.` as @segment/ajv-human-errors writes it."""
    article = "an" if field.type[0] in "aeiou" else "a"
    return FieldProblem(
        path, f"{field.label} must be {article} {field.type} but it was {_humanize(data)}.", data
    )


def _humanize(value: Any) -> str:
    """ajv-human-errors' humanizeTypeOf: "null", "an array", "an object", "a string", ..."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is list:
        return "an array"
    if kind is dict:
        return "an object"
    if kind is str:
        return "a string"
    if kind is bool:
        return "a boolean"
    return "a number"
