"""Up-front validation of a Segment mapping, message for message as mapping-kit's `validate.ts`.

Segment validates the whole mapping before resolving any event. Messages read
`/<field path>/<directive>[/<key>] <problem>.` and sibling problems are reported together,
but some checks stop at the first problem, exactly as Segment's do. Validation does not
look inside plain arrays, nor inside the raw objects given to `@literal` and
`@excludeWhenNull`: directives there only fail when resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from acoustic_pipelines.actions.js_values import (
    UNDEFINED,
    js_length,
    js_own_keys,
    js_stringify,
    js_type_of,
)

MAX_PATTERN_LENGTH = 10
MAX_REPLACEMENT_LENGTH = 10

Path = tuple[str, ...]
Validator = Callable[[Any, Path], None]
# (field name, validator when the field is required, validator when it is optional)
FieldSpec = tuple[str, Validator | None, Validator | None]


class _Invalid(Exception):
    """Carries one or more finished validation messages up the mapping."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


def validation_errors(mapping: Any) -> list[str]:
    """Return every message Segment's validator reports for this mapping; empty when valid."""
    try:
        _validate(mapping, ())
    except _Invalid as invalid:
        return invalid.messages
    return []


def is_directive(value: Any) -> bool:
    """Return True for an object with an @-key whose other keys are @-keys or `_metadata`."""
    if type(value) is not dict:
        return False
    has_directive_key = False
    for key in value:
        if _is_at_key(key):
            has_directive_key = True
        elif key != "_metadata":
            return False
    return has_directive_key


def _is_at_key(key: Any) -> bool:
    """Return True for keys that start with "@"."""
    return isinstance(key, str) and key.startswith("@")


def _fail(problem: str, path: Path) -> NoReturn:
    """Raise one message in Segment's `/<path> <problem>.` format."""
    raise _Invalid([f"/{'/'.join(path)} {problem}."])


def _article(type_name: str) -> str:
    """Return "an" before a vowel and "a" otherwise, as Segment's messages do."""
    return "an" if type_name[:1] in ("a", "e", "i", "o", "u") else "a"


def _type_or_directive(value: Any) -> str:
    """Return the value's type name, or "directive" for an object with any @-key."""
    type_name = js_type_of(value)
    if type_name == "object" and any(_is_at_key(key) for key in value):
        return "directive"
    return type_name


def _validate(value: Any, path: Path) -> None:
    """Validate any mapping value: directives and objects in depth, arrays not at all."""
    type_name = _type_or_directive(value)
    if type_name == "directive":
        _validate_directive(value, path)
    elif type_name == "object":
        _validate_object(value, path)


def _validate_directive(value: dict[str, Any], path: Path) -> None:
    """Check the directive's shape, then its options with the directive's own validator."""
    keys = list(value)
    at_keys = [key for key in keys if _is_at_key(key)]
    if len(at_keys) > 1:
        _fail(f"should only have one @-prefixed key but it has {len(at_keys)} keys", path)
    if any(not _is_at_key(key) and key != "_metadata" for key in keys):
        _fail(f"should only have one @-prefixed key but it has {len(keys)} keys", path)
    name = at_keys[0]
    validator = _DIRECTIVE_VALIDATORS.get(name)
    if validator is None:
        _fail(f"has an invalid directive: {name}", path)
    validator(value[name], (*path, name))


def _validate_object(value: Any, path: Path) -> None:
    """Require a plain object and validate every value in it, reporting all problems."""
    type_name = _type_or_directive(value)
    if type_name != "object":
        _fail(f"should be an object but it is {_article(type_name)} {type_name}", path)
    messages: list[str] = []
    for key in js_own_keys(value):
        try:
            _validate(value[key], (*path, str(key)))
        except _Invalid as invalid:
            messages.extend(invalid.messages)
    if messages:
        raise _Invalid(messages)


def _validate_fields(value: Any, path: Path, fields: Sequence[FieldSpec]) -> None:
    """Validate a directive's options object, then each named field, reporting all problems."""
    _validate_object(value, path)
    messages: list[str] = []
    for name, required, optional in fields:
        try:
            if required is not None:
                if name not in value:
                    _fail(f"should have field {js_stringify(name)} but it doesn't", path)
                required(value[name], (*path, name))
            elif optional is not None and name in value:
                optional(value[name], (*path, name))
        except _Invalid as invalid:
            messages.extend(invalid.messages)
    if messages:
        raise _Invalid(messages)


def _validate_directive_or_raw(value: Any, path: Path) -> None:
    """Accept any JSON value; validate it only when it is a directive."""
    type_name = _type_or_directive(value)
    if type_name == "directive":
        _validate_directive(value, path)
    elif type_name == "undefined":
        problem = "should be a mapping directive or a JSON value but it is"
        _fail(f"{problem} {_article(type_name)} {type_name}", path)


def _validate_directive_or_string(value: Any, path: Path) -> None:
    """Accept a string or a valid directive."""
    type_name = _type_or_directive(value)
    if type_name == "directive":
        _validate_directive(value, path)
    elif type_name != "string":
        problem = "should be a string or a mapping directive but it is"
        _fail(f"{problem} {_article(type_name)} {type_name}", path)


def _validate_directive_or_object(value: Any, path: Path) -> None:
    """Accept a valid directive or a valid plain object."""
    type_name = _type_or_directive(value)
    if type_name == "directive":
        _validate_directive(value, path)
    elif type_name == "object":
        _validate_object(value, path)
    else:
        # Segment's message says "a object"; kept word for word.
        problem = "should be a object or a mapping directive but it is"
        _fail(f"{problem} {_article(type_name)} {type_name}", path)


def _validate_string(value: Any, path: Path) -> None:
    """Accept only a string (a directive is refused)."""
    type_name = _type_or_directive(value)
    if type_name != "string":
        _fail(f"should be a string but it is {_article(type_name)} {type_name}", path)


def _validate_boolean(value: Any, path: Path) -> None:
    """Accept only true or false."""
    type_name = _type_or_directive(value)
    if type_name != "boolean":
        _fail(f"should be a boolean but it is {_article(type_name)} {type_name}", path)


def _validate_array(value: Any, path: Path) -> None:
    """Accept only an array; its items are not looked at."""
    type_name = js_type_of(value)
    if type_name != "array":
        _fail(f"should be an array but it is {_article(type_name)} {type_name}", path)


def _string_length(minimum: int, maximum: int) -> Validator:
    """Build a check that a string's JavaScript length is within bounds."""

    def validate_length(value: Any, path: Path) -> None:
        if isinstance(value, str) and js_length(value) < minimum:
            _fail(f"should be a string of length {minimum} or greater", path)
        if isinstance(value, str) and js_length(value) > maximum:
            _fail(f"should be a string of length {maximum} or less", path)

    return validate_length


def _allowed_strings(*allowed: str) -> Validator:
    """Build a check for one of a few strings, compared case-insensitively as Segment does."""

    def validate_allowed(value: Any, path: Path) -> None:
        _validate_string(value, path)
        if value.lower() not in allowed:
            _fail(f"should be one of {', '.join(allowed)} but it is {js_stringify(value)}", path)

    return validate_allowed


def _chain(*validators: Validator) -> Validator:
    """Run validators in order; the first problem stops the chain."""

    def validate_all(value: Any, path: Path) -> None:
        for validator in validators:
            validator(value, path)

    return validate_all


def _validate_if(value: Any, path: Path) -> None:
    """`@if`: only exists/then/else are checked (`blank` is resolved unchecked)."""
    _validate_fields(
        value,
        path,
        (
            ("exists", None, _validate_directive_or_raw),
            ("then", None, _validate_directive_or_raw),
            ("else", None, _validate_directive_or_raw),
        ),
    )


def _validate_case(value: Any, path: Path) -> None:
    """`@case`: operator must be a string, value a string or directive; both optional here."""
    _validate_fields(
        value,
        path,
        (
            ("operator", None, _validate_string),
            ("value", None, _validate_directive_or_string),
        ),
    )


def _validate_replace(value: Any, path: Path) -> None:
    """`@replace`: pattern 1-10 characters, replacement up to 10; pattern2 is not checked."""
    _validate_fields(
        value,
        path,
        (
            ("pattern", _chain(_validate_string, _string_length(1, MAX_PATTERN_LENGTH)), None),
            (
                "replacement",
                None,
                _chain(_validate_string, _string_length(0, MAX_REPLACEMENT_LENGTH)),
            ),
            ("value", _validate_directive_or_string, None),
            ("ignorecase", None, _validate_boolean),
            ("global", None, _validate_boolean),
        ),
    )


def _validate_array_path(value: Any, path: Path) -> None:
    """`@arrayPath`: [path, itemShape?]; problems are reported at the directive's own path."""
    _validate_array(value, path)
    _validate_directive_or_string(value[0] if value else UNDEFINED, path)
    _validate(value[1] if len(value) > 1 else UNDEFINED, path)


def _validate_json(value: Any, path: Path) -> None:
    """`@json`: value required, mode one of encode/decode in any letter case."""
    _validate_fields(
        value,
        path,
        (
            ("value", _validate_directive_or_raw, None),
            ("mode", _allowed_strings("encode", "decode"), None),
        ),
    )


def _validate_flatten(value: Any, path: Path) -> None:
    """`@flatten`: value required; separator optional here though required when resolving."""
    _validate_fields(
        value,
        path,
        (
            ("separator", None, _validate_string),
            ("value", _validate_directive_or_raw, None),
        ),
    )


def _validate_merge(value: Any, path: Path) -> None:
    """`@merge`: objects must be an array of objects or directives, direction left/right."""
    _validate_fields(
        value,
        path,
        (
            ("direction", None, _allowed_strings("left", "right")),
            ("objects", _validate_array, None),
        ),
    )
    for entry in value["objects"]:
        # Segment checks the entries without a path, so these messages start with "/ ".
        _validate_directive_or_object(entry, ())


def _validate_transform(value: Any, path: Path) -> None:
    """`@transform`: apply and mapping are both required objects or directives."""
    _validate_fields(
        value,
        path,
        (
            ("apply", _validate_directive_or_object, None),
            ("mapping", _validate_directive_or_object, None),
        ),
    )


_DIRECTIVE_VALIDATORS: dict[str, Validator] = {
    "@if": _validate_if,
    "@case": _validate_case,
    "@replace": _validate_replace,
    "@arrayPath": _validate_array_path,
    "@path": _validate_directive_or_string,
    "@json": _validate_json,
    "@flatten": _validate_flatten,
    "@merge": _validate_merge,
    "@template": _validate_directive_or_string,
    "@literal": _validate_directive_or_raw,
    "@transform": _validate_transform,
    "@excludeWhenNull": _validate_directive_or_raw,
    "@liquid": _validate_string,
}
