"""Segment's path syntax (`@path`, `@arrayPath`) and `{{placeholders}}` (`@template`).

Paths are dot segments with `[0]`/`.0` indexes and `['quoted key']`; `a[b]` (unquoted,
non-numeric) is a literal key name and a key containing "." cannot be addressed. Walking a
path stops at the first falsy value and returns it, so `a.b` where `a` is null gives null.
Paths are split once and kept as tuples of keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from acoustic_pipelines.actions.js_values import (
    UNDEFINED,
    js_get_property,
    js_is_nullish,
    js_to_string,
    js_trim,
    js_truthy,
)

# Segment's get.ts splits on "[" before a quote or digit, on ".", and on "]" after one.
_PATH_SEPARATORS = re.compile(r"""\[(?=["'0-9])|\.|(?<=["'0-9])\]+""")
_QUOTES = re.compile(r"""['"]""")
_TRIPLE_PLACEHOLDER = re.compile(r"\{\{\{([^}]+)\}\}\}")
_DOUBLE_PLACEHOLDER = re.compile(r"\{\{([^}]+)\}\}")

Keys = tuple[str, ...]
# A compiled template: literal text, or the keys of a placeholder.
TemplatePart = str | Keys


@lru_cache(maxsize=4096)
def split_path(path: str) -> Keys:
    """Split a path into keys; "" and "." (the whole payload) give no keys."""
    if path in ("", "."):
        return ()
    chunks = [chunk for chunk in _PATH_SEPARATORS.split(path) if chunk]
    return tuple(_QUOTES.sub("", chunk) for chunk in chunks)


def split_directive_path(path: str) -> Keys:
    """Split a `@path`/`@arrayPath` path, after removing the first "$." as Segment does."""
    return split_path(path.replace("$.", "", 1))


def get_path(payload: Any, keys: Keys) -> Any:
    """Walk keys from the payload; a falsy value on the way is returned as it is."""
    value = payload
    for key in keys:
        if type(value) is dict:
            value = value.get(key, UNDEFINED)
        elif js_truthy(value):
            value = js_get_property(value, key)
        else:
            return value
    return value


def compile_get_path(keys: Keys) -> Callable[[Any], Any]:
    """`get_path(payload, keys)` as one function, unrolled for the common paths of 1 to 3 keys."""
    if len(keys) == 1:
        (first,) = keys

        def get_one(payload: Any) -> Any:
            if type(payload) is dict:
                return payload.get(first, UNDEFINED)
            return get_path(payload, keys)

        return get_one
    if len(keys) == 2:
        first, second = keys

        def get_two(payload: Any) -> Any:
            if type(payload) is dict:
                value = payload.get(first, UNDEFINED)
                if type(value) is dict:
                    return value.get(second, UNDEFINED)
            return get_path(payload, keys)  # walks again from the start: same answer

        return get_two
    if len(keys) == 3:
        first, second, third = keys

        def get_three(payload: Any) -> Any:
            if type(payload) is dict:
                value = payload.get(first, UNDEFINED)
                if type(value) is dict:
                    value = value.get(second, UNDEFINED)
                    if type(value) is dict:
                        return value.get(third, UNDEFINED)
            return get_path(payload, keys)  # walks again from the start: same answer

        return get_three
    return lambda payload: get_path(payload, keys)


def _placeholder_text(payload: Any, keys: Keys) -> str:
    """Text for one placeholder: missing and null give "", others JavaScript's String()."""
    value = get_path(payload, keys)
    return "" if js_is_nullish(value) else js_to_string(value)


def _compile_parts(template: str, placeholder: re.Pattern[str]) -> list[TemplatePart]:
    """Split a template into literal text and placeholder keys."""
    parts: list[TemplatePart] = []
    position = 0
    for match in placeholder.finditer(template):
        parts.append(template[position : match.start()])
        parts.append(split_path(js_trim(match.group(1))))
        position = match.end()
    parts.append(template[position:])
    return [part for part in parts if part != ""]


def _render_parts(parts: list[TemplatePart], payload: Any) -> str:
    """Join literal text and the text of each placeholder."""
    return "".join(
        part if type(part) is str else _placeholder_text(payload, part) for part in parts
    )


@lru_cache(maxsize=1024)
def compile_template(template: str) -> Callable[[Any], str]:
    """Compile a `@template` string into a function of the payload.

    Segment replaces `{{{path}}}` first and then `{{path}}` in the result, so text
    inserted by a triple placeholder can itself be expanded by the second pass.
    """
    if not _TRIPLE_PLACEHOLDER.search(template):
        parts = _compile_parts(template, _DOUBLE_PLACEHOLDER)
        return lambda payload: _render_parts(parts, payload)

    first_pass = _compile_parts(template, _TRIPLE_PLACEHOLDER)

    def render_two_passes(payload: Any) -> str:
        text = _render_parts(first_pass, payload)
        return _DOUBLE_PLACEHOLDER.sub(
            lambda match: _placeholder_text(payload, split_path(js_trim(match.group(1)))), text
        )

    return render_two_passes
