"""What mapping directives do to resolved values, with Segment's JavaScript semantics.

These functions work on values already resolved from an event: literal text replacement
(`@replace`), `Object.assign` (`@merge`), flattening (`@flatten`), null cleaning
(`@excludeWhenNull`), JSON decoding (`@json`) and the final removal of `undefined`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from acoustic_pipelines.actions.js_values import (
    MAX_SAFE_INTEGER,
    UNDEFINED,
    js_code_units,
    js_own_keys,
    js_parse_json,
    js_regexp_case_fold,
)


class _Insert(Enum):
    """The `$` patterns of a JavaScript replacement string that insert part of the text."""

    MATCH = "$&"
    BEFORE = "$`"
    AFTER = "$'"


def literal_replacer(
    pattern: str, replacement: str, *, replace_all: bool, ignore_case: bool
) -> Callable[[str], str]:
    """Build `text.replace(new RegExp(escaped pattern, flags), replacement)`.

    Segment escapes every RegExp character of the pattern, so it matches literal text;
    `ignore_case` folds case as a non-Unicode JavaScript RegExp does.
    """
    needle = js_regexp_case_fold(pattern) if ignore_case else pattern
    pieces = _replacement_pieces(replacement)

    def replace(text: str) -> str:
        haystack = js_regexp_case_fold(text) if ignore_case else text
        out: list[str] = []
        position = 0
        start = haystack.find(needle)
        while start != -1:
            end = start + len(needle)
            out.append(text[position:start])
            out.extend(_fill(pieces, text, start, end))
            position = end
            if not replace_all:
                break
            start = haystack.find(needle, end)
        out.append(text[position:])
        return "".join(out)

    return replace


def _replacement_pieces(replacement: str) -> list[str | _Insert]:
    """Split a replacement into literal text and `$&`, `` $` ``, `$'` ("$$" is a literal "$")."""
    pieces: list[str | _Insert] = []
    text: list[str] = []
    index = 0
    while index < len(replacement):
        pair = replacement[index : index + 2]
        if pair in ("$&", "$`", "$'"):
            pieces.extend(["".join(text), _Insert(pair)])
            text = []
            index += 2
        elif pair == "$$":
            text.append("$")
            index += 2
        else:
            # "$1" and "$<name>" stay literal: an escaped pattern has no groups.
            text.append(replacement[index])
            index += 1
    pieces.append("".join(text))
    return pieces


def _fill(pieces: list[str | _Insert], text: str, start: int, end: int) -> list[str]:
    """Replacement text for the match text[start:end]."""
    inserts = {
        _Insert.MATCH: text[start:end],
        _Insert.BEFORE: text[:start],
        _Insert.AFTER: text[end:],
    }
    return [inserts[piece] if isinstance(piece, _Insert) else piece for piece in pieces]


def assign(target: dict[str, Any], source: Any) -> None:
    """Copy own keys as Object.assign does: strings spread by index, scalars add nothing."""
    kind = type(source)
    if kind is dict:
        target.update(source)
    elif kind is list:
        target.update((str(index), item) for index, item in enumerate(source))
    elif kind is str:
        target.update((str(index), unit) for index, unit in enumerate(js_code_units(source)))


def flatten(value: Any, separator: str, *, omit_arrays: bool) -> dict[str, Any]:
    """Flatten nested objects (and arrays unless omitted) into one level of joined keys.

    Empty objects and arrays vanish; a value that cannot be flattened (a string, null,
    undefined) comes back under the key "".
    """
    flat: dict[str, Any] = {}
    _flatten_into(flat, value, "", separator, omit_arrays)
    return flat


def _flatten_into(
    flat: dict[str, Any], value: Any, prefix: str, separator: str, omit_arrays: bool
) -> None:
    """Write the leaves of value into flat under prefixed keys."""
    kind = type(value)
    if kind is dict:
        children = [(key, value[key]) for key in js_own_keys(value)]
    elif kind is list and not omit_arrays:
        children = [(str(index), item) for index, item in enumerate(value)]
    else:
        flat[prefix] = value
        return
    for key, child in children:
        child_key = f"{prefix}{separator}{key}" if prefix else key
        _flatten_into(flat, child, child_key, separator, omit_arrays)


def clean_nulls(value: Any) -> Any:
    """Turn null keys of objects (not arrays) into undefined, recursively."""
    if type(value) is not dict:
        return value
    return {key: UNDEFINED if item is None else clean_nulls(item) for key, item in value.items()}


def decode_json(value: Any) -> Any:
    """Parse a string as JSON; anything else, and text that does not parse, is returned as is."""
    if type(value) is not str:
        return value
    try:
        return js_parse_json(value)
    except ValueError:
        return value


def remove_undefined(value: Any) -> Any:
    """Drop undefined keys at every depth; undefined array elements stay, as in Segment."""
    kind = type(value)
    if kind is dict:
        return {key: remove_undefined(item) for key, item in value.items() if item is not UNDEFINED}
    if kind is list:
        return [remove_undefined(item) for item in value]
    return value


def to_result(value: Any) -> Any:
    """Like remove_undefined, but undefined in an array (or alone) is None and 10.0 is 10."""
    if value is UNDEFINED:
        return None  # a top-level directive that resolved to undefined
    kind = type(value)
    if kind is dict:
        return {key: to_result(item) for key, item in value.items() if item is not UNDEFINED}
    if kind is list:
        return [None if item is UNDEFINED else to_result(item) for item in value]
    if kind is float and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        return int(value)
    return value
