"""How an FQL condition reads its value: Segment's ``get()`` over ``properties``/``traits``/``context``.

Segment's ``validate()`` walks ``obj && obj[key]`` in JavaScript, so a key missing from an object
can still find a member inherited from a prototype (``constructor``, ``toString``; ``length`` and
indexes on strings and arrays). We emulate that one level deep: such a member reads as
:data:`INHERITED`, a value that exists but is neither string, number nor boolean. Members of
those inherited functions (``constructor.name``) read as missing. ``None`` stands for both null
and undefined, which ``validate()`` never tells apart.

Mapping-kit reads paths differently on purpose (own keys only, ``undefined`` kept apart from
null): see ``actions/mappings/paths.py`` and :func:`~acoustic_pipelines.actions.js_values.js_get_property`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from acoustic_pipelines.actions.js_values import (
    UNDEFINED,
    js_array_property,
    js_string_property,
    js_truthy,
)

__all__ = [
    "INHERITED",
    "OBJECT_MEMBERS",
    "inherited_object_member",
    "key_getter",
    "path_getter",
    "path_keys",
    "read_member",
]


def _names(text: str) -> frozenset[str]:
    """A set of names written as one space-separated string (keeps long tables short)."""
    return frozenset(text.split())


# Members every JS value inherits; `obj[key]` finds them when the object has no own `key`.
OBJECT_MEMBERS: Final = _names(
    "constructor __defineGetter__ __defineSetter__ hasOwnProperty __lookupGetter__"
    " __lookupSetter__ isPrototypeOf propertyIsEnumerable toString valueOf __proto__"
    " toLocaleString"
)
_STRING_MEMBERS: Final = OBJECT_MEMBERS | _names(
    "anchor at big blink bold charAt charCodeAt codePointAt concat endsWith fontcolor fontsize"
    " fixed includes indexOf isWellFormed italics lastIndexOf link localeCompare match matchAll"
    " normalize padEnd padStart repeat replace replaceAll search slice small split strike sub"
    " substr substring sup startsWith toWellFormed trim trimStart trimLeft trimEnd trimRight"
    " toLocaleLowerCase toLocaleUpperCase toLowerCase toUpperCase"
)
_ARRAY_MEMBERS: Final = OBJECT_MEMBERS | _names(
    "at concat copyWithin fill find findIndex findLast findLastIndex lastIndexOf pop push"
    " reverse shift unshift slice sort splice includes indexOf join keys entries values forEach"
    " filter flat flatMap map every some reduce reduceRight toReversed toSorted toSpliced"
    " with"
)
_NUMBER_MEMBERS: Final = OBJECT_MEMBERS | {"toExponential", "toFixed", "toPrecision"}
_PATH_KEY = re.compile(r"[^[.\]]+")


class _Inherited:
    """An inherited JS member (a function or prototype object): it exists, but is no string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<inherited JS member>"


INHERITED: Final = _Inherited()
_MISSING = object()


def inherited_object_member(key: str) -> Any:
    """Return what ``{}[key]`` gives in JavaScript: :data:`INHERITED` or undefined (None)."""
    return INHERITED if key in OBJECT_MEMBERS else None


def read_member(value: Any, key: str) -> Any:
    """Return JavaScript's ``value && value[key]`` for a value that is not a dict nor None."""
    if not js_truthy(value):
        return value  # `0 && x` is 0: Segment's get() keeps walking with the falsy value
    if isinstance(value, str):
        found, members = js_string_property(value, key), _STRING_MEMBERS
    elif isinstance(value, list):
        found, members = js_array_property(value, key), _ARRAY_MEMBERS
    elif isinstance(value, bool):
        found, members = UNDEFINED, OBJECT_MEMBERS
    elif isinstance(value, int | float):
        found, members = UNDEFINED, _NUMBER_MEMBERS
    else:
        return None
    if found is not UNDEFINED:
        return found
    return INHERITED if key in members else None


def path_keys(name: str) -> tuple[str, ...]:
    """Split a condition's path as Segment's get() does: on ``.``, ``[`` and ``]``."""
    return tuple(_PATH_KEY.findall(name))


def key_getter(root: str, key: str) -> Callable[[dict], Any]:
    """Return a reader of ``event[root][key]`` (the common one-key path, kept short)."""
    inherited = inherited_object_member(key)

    def get(event: dict) -> Any:
        container = event.get(root)
        if isinstance(container, dict):
            value = container.get(key, _MISSING)
            return inherited if value is _MISSING else value
        return None if container is None else read_member(container, key)

    return get


def path_getter(root: str, keys: tuple[str, ...]) -> Callable[[dict], Any]:
    """Return a reader of ``event[root][key1][key2]…`` that stops at null or undefined."""

    def get(event: dict) -> Any:
        value = event.get(root)
        for key in keys:
            if isinstance(value, dict):
                found = value.get(key, _MISSING)
                value = inherited_object_member(key) if found is _MISSING else found
            elif value is None:
                return None
            else:
                value = read_member(value, key)
        return value

    return get
