"""What mapping directives do to resolved values, with Segment's JavaScript semantics.

These functions work on values already resolved from an event: literal text replacement
(`@replace`), `Object.assign` (`@merge`), flattening (`@flatten`), null cleaning
(`@excludeWhenNull`), JSON decoding (`@json`) and the final removal of `undefined` (copy on
write: what needs no change is not copied).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum
from typing import Any

import orjson

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
    """Like remove_undefined, but undefined in an array (or alone) is None and 10.0 is 10.

    Copy on write: a dict or list that needs no change is returned itself, not copied, and a
    changed one is a new container that shares its unchanged children with the input.
    """
    # The top level is usually the payload object just built, with a few keys; the bulk is in
    # its values (whole sections such as `context`), so that is where the fast check pays.
    return _result(value, fast_check=False, below=True)


def field_result(value: Any) -> Any:
    """What :func:`to_result` makes of one (defined) value of a mapping's top-level object."""
    return _result(value, fast_check=True, below=False)


def _result(value: Any, *, fast_check: bool, below: bool) -> Any:
    """to_result, trying :func:`_surely_unchanged` on this container or the ones just below."""
    if value is UNDEFINED:
        return None  # a top-level directive that resolved to undefined
    kind = type(value)
    if kind is dict or kind is list:
        if fast_check and _surely_unchanged(value):
            return value
        if kind is dict:
            return _dict_result(value, below)
        return _list_result(value, below)
    if kind is float and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        return int(value)
    return value


def _dict_result(value: dict[str, Any], fast_check: bool) -> dict[str, Any]:
    """to_result of a dict: itself when nothing in it changes, else a changed copy."""
    copy = None
    for key, item in value.items():
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue  # the common leaves, which never change
        if kind is float and not item.is_integer():
            continue
        changed = _result(item, fast_check=fast_check, below=False)
        if changed is not item:
            if copy is None:
                copy = value.copy()
            if item is UNDEFINED:
                del copy[key]
            else:
                copy[key] = changed  # keeps the key's place
    return value if copy is None else copy


def _list_result(value: list[Any], fast_check: bool) -> list[Any]:
    """to_result of a list: itself when nothing in it changes, else a changed copy."""
    copy = None
    for index, item in enumerate(value):
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float and not item.is_integer():
            continue
        changed = _result(item, fast_check=fast_check, below=False)
        if changed is not item:
            if copy is None:
                copy = value.copy()
            copy[index] = changed
    return value if copy is None else copy


_INTEGRAL_FLOAT_TEXT = re.compile(rb"\.0[,\]}]")
# The fast check relies on how orjson writes floats; should that ever change, it is not used.
_ORJSON_WRITES_POINT_ZERO = (
    orjson.dumps([1.0, -0.0, float(MAX_SAFE_INTEGER)]) == b"[1.0,-0.0,9007199254740992.0]"
)


def _surely_unchanged(container: dict[str, Any] | list[Any]) -> bool:
    """True when to_result has nothing to change in a dict or list; found by orjson, in C.

    orjson writes every integral float up to 1e16 (so every one to_result turns into an int)
    as digits then ".0", and fails on `undefined`; inside a container a number is followed by
    a delimiter. Text such as "v1.0," inside a string only sends the value the slower way.
    """
    if not _ORJSON_WRITES_POINT_ZERO:
        return False
    try:
        text = orjson.dumps(container)
    except orjson.JSONEncodeError:  # undefined, non-text keys, huge ints, deep nesting, ...
        return False
    return _INTEGRAL_FLOAT_TEXT.search(text) is None


def copy_json(value: Any) -> Any:
    """A fresh copy of every dict and list in a JSON value; other values are shared."""
    kind = type(value)
    if kind is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if kind is list:
        return [copy_json(item) for item in value]
    return value
