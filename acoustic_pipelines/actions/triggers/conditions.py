"""Structured trigger conditions (Segment's trigger builder UI) and the FQL its generator writes.

A :class:`Condition` is one row of the builder (``event`` ``is`` ``"Signed Up"``) and a
:class:`ConditionGroup` is ALL or ANY of them. Each is validated as Segment's UI validates it.
:func:`render_fql` writes the trigger text Segment writes; :func:`compile_conditions` builds
the same condition tree that text parses to and compiles it, so both match the same events.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal

from acoustic_pipelines.actions.js_values import (
    has_surrogate,
    is_decimal_literal,
    js_int_as_double,
    js_length,
)
from acoustic_pipelines.actions.triggers.compiler import Predicate, compile_predicate
from acoustic_pipelines.actions.triggers.errors import InvalidConditionError
from acoustic_pipelines.actions.triggers.lexer import MAX_LITERAL_LENGTH
from acoustic_pipelines.actions.triggers.parser import FIELD_KINDS, Group, Leaf

__all__ = ["OPERATORS", "Condition", "ConditionGroup", "compile_conditions", "render_fql"]

_STRING_OPERATORS = {
    "contains": ("contains", "contains({field}, {value})"),
    "does not contain": ("not_contains", "!contains({field}, {value})"),
    "starts with": ("starts_with", 'match({field}, "{text}*")'),
    "does not start with": ("not_starts_with", '!match({field}, "{text}*")'),
    "ends with": ("ends_with", 'match({field}, "*{text}")'),
    "does not end with": ("not_ends_with", '!match({field}, "*{text}")'),
}
_VALUELESS_OPERATORS = {
    "exists": ("exists", "{field} != null"),
    "does not exist": ("not_exists", "{field} = null"),
    "is true": ("is_true", "{field} = true"),
    "is false": ("is_false", "{field} = false"),
}
_NUMBER_OPERATORS = ("<", "<=", ">", ">=")
OPERATORS: Final = (
    "is",
    "is not",
    *_STRING_OPERATORS,
    *_VALUELESS_OPERATORS,
    *_NUMBER_OPERATORS,
)

_NAME_OPERATORS = frozenset(("is", "is not", *_STRING_OPERATORS))
_ALLOWED_OPERATORS = {
    "type": frozenset(("is", "is not")),
    "event": _NAME_OPERATORS,
    "name": _NAME_OPERATORS | {"exists", "does not exist"},
    "userId": _NAME_OPERATORS | set(_VALUELESS_OPERATORS),
    "path": frozenset(OPERATORS),
}
_PATH_PREFIXES = ("properties.", "traits.", "context.")
_PLAIN_PATH_CHAR = re.compile(r"[A-Za-z0-9_-]")
# Values must stay shorter than this so that, with a `*` added, they still lex as one string.
_MAX_VALUE_LENGTH = MAX_LITERAL_LENGTH - 1


def _field_kind(field_path: str) -> str | None:
    """``type``/``event``/``name``/``userId``, ``path`` for properties/traits/context, or None."""
    if field_path in ("type", "event", "name", "userId"):
        return field_path
    if field_path.startswith(_PATH_PREFIXES):
        return "path"
    return None


def _field_problem(field_path: Any) -> str | None:
    """Why a structured field cannot be written as a trigger path (None when it can)."""
    if not isinstance(field_path, str) or _field_kind(field_path) is None:
        return (
            "the field must be type, event, name, userId or a dot path starting with "
            "properties., traits. or context."
        )
    for key in field_path.split(".")[1:]:
        if not key:
            return "the path has an empty key"
        if "[" in key or "]" in key:
            return f"key `{key}` has a bracket, which Segment reads as a path separator"
        if any(ord(char) > 0xFFFF or 0xD800 <= ord(char) <= 0xDFFF for char in key):
            return f"key `{key}` has a character the FQL lexer cannot escape (above U+FFFF)"
    return None


def _operator_problem(field_path: str, operator: Any) -> str | None:
    """Why an operator does not apply to a field in Segment's UI (None when it does)."""
    if operator not in OPERATORS:
        return f"unknown operator (one of {', '.join(OPERATORS)})"
    allowed = _ALLOWED_OPERATORS[_field_kind(field_path) or "path"]
    if operator not in allowed:
        return (
            f"the operator does not apply to `{field_path}` (allowed: {', '.join(sorted(allowed))})"
        )
    return None


def _as_number(value: Any) -> float | None:
    """A finite number from a number or numeric text ("value forced to a number"), else None."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(js_int_as_double(value)) if isinstance(value, int) else value
    elif isinstance(value, str) and is_decimal_literal(value.strip()):
        number = float(value)
    return number if number is not None and math.isfinite(number) else None


def _text_problem(operator: str, value: Any) -> str | None:
    """Why a value cannot be wrapped in double quotes unchanged (None when it can)."""
    if not isinstance(value, str):
        return f"the value must be a string, got {type(value).__name__}"
    if '"' in value or "~" in value:
        return "the value cannot hold `\"` or `~` (Segment's UI refuses them)"
    if has_surrogate(value):
        return "the value holds an unpaired surrogate"
    if js_length(value) >= _MAX_VALUE_LENGTH:
        return f"the value is longer than an FQL string may be ({len(value)} characters)"
    if operator in ("ends with", "does not end with") and value.endswith("*"):
        return "the value cannot end with `*` (match() would read it as starts-with)"
    return None


def _value_problem(condition: Condition) -> str | None:
    """Why a condition's value does not suit its operator (None when it does)."""
    if condition.operator in _VALUELESS_OPERATORS:
        return None if condition.value is None else "this operator takes no value"
    if condition.operator in _NUMBER_OPERATORS:
        return None if _as_number(condition.value) is not None else "a finite number is needed"
    if condition._is_numeric_is():
        return None if _as_number(condition.value) is not None else "a finite number is needed"
    return _text_problem(condition.operator, condition.value)


def _plain_decimal(value: float) -> str:
    """A number as FQL can lex it: no exponent (``1e-7`` → ``0.0000001``)."""
    if value == 0:
        return "0"
    return format(Decimal(repr(value)).normalize(), "f")


@dataclass(frozen=True)
class Condition:
    """One condition of Segment's trigger builder, e.g. ``Condition("event", "is", "Signed Up")``.

    ``field`` is ``type``, ``event``, ``name``, ``userId`` or a dot path starting with
    ``properties.``, ``traits.`` or ``context.``. ``operator`` is one of :data:`OPERATORS`.
    ``value`` is a string (``is``/``is not``/text operators), a number (``<`` … ``>=``, and
    ``is``/``is not`` on paths) or None (``exists``, ``is true``, …). Invalid combinations raise
    :class:`InvalidConditionError` when the condition is created.
    """

    field: str
    operator: str
    value: Any = None

    def __post_init__(self) -> None:
        problem = (
            _field_problem(self.field)
            or _operator_problem(self.field, self.operator)
            or _value_problem(self)
        )
        if problem:
            raise InvalidConditionError(
                f"condition `{self.field}` `{self.operator}` {self.value!r}: {problem}",
                field=str(self.field),
                value=self.value,
            )

    def _is_numeric_is(self) -> bool:
        """``is``/``is not`` with a number on a path: Segment's number (not) equals."""
        return (
            self.operator in ("is", "is not")
            and _field_kind(self.field) == "path"
            and isinstance(self.value, int | float)
            and not isinstance(self.value, bool)
        )

    def _number(self) -> float:
        number = _as_number(self.value)
        assert number is not None  # checked in __post_init__
        return number

    def _leaf(self) -> Leaf:
        """The condition as Segment's parser builds it from :func:`render_fql`'s text."""
        kind, name = _leaf_kind(self.field)
        if self.operator in _VALUELESS_OPERATORS:
            return Leaf(kind, _VALUELESS_OPERATORS[self.operator][0], None, name)
        if self.operator in _NUMBER_OPERATORS:
            return Leaf(kind, self.operator, self._number(), name)
        if self._is_numeric_is():
            operator = "number_equals" if self.operator == "is" else "number_not_equals"
            return Leaf(kind, operator, self._number(), name)
        if self.operator in ("is", "is not"):
            return Leaf(kind, "=" if self.operator == "is" else "!=", self.value, name)
        operator = _STRING_OPERATORS[self.operator][0]
        if operator.endswith("ends_with") and not self.value:
            # `match(x, "*")` reads as starts-with "" (the same truth value as ends-with "").
            operator = operator.replace("ends_with", "starts_with")
        return Leaf(kind, operator, self.value, name)

    def to_fql(self) -> str:
        """The FQL Segment's generator writes for this condition."""
        field_fql = _escape_field(self.field)
        if self.operator in _VALUELESS_OPERATORS:
            return _VALUELESS_OPERATORS[self.operator][1].format(field=field_fql)
        if self.operator in _NUMBER_OPERATORS or self._is_numeric_is():
            symbol = {"is": "=", "is not": "!="}.get(self.operator, self.operator)
            return f"{field_fql} {symbol} {_plain_decimal(self._number())}"
        if self.operator in ("is", "is not"):
            symbol = "=" if self.operator == "is" else "!="
            return f'{field_fql} {symbol} "{self.value}"'
        template = _STRING_OPERATORS[self.operator][1]
        return template.format(field=field_fql, value=f'"{self.value}"', text=self.value)


def _leaf_kind(field_path: str) -> tuple[str, str | None]:
    if field_path in ("type", "event", "name", "userId"):
        return FIELD_KINDS[field_path], None
    root, _, name = field_path.partition(".")
    return FIELD_KINDS[root], name


def _escape_field(field_path: str) -> str:
    """Backslash-escape path characters outside ``[A-Za-z0-9_-]`` so the lexer reads one path.

    Also escapes a key's first character when it would start a number (digit, ``-``) or make a
    keyword (a key named ``and``, ``or`` or ``null``).
    """
    if "." not in field_path:
        return field_path
    root, *keys = field_path.split(".")
    escaped = []
    for key in keys:
        chars = [char if _PLAIN_PATH_CHAR.fullmatch(char) else "\\" + char for char in key]
        if key[0].isdigit() or key[0] == "-" or key in ("and", "or", "null"):
            chars[0] = "\\" + key[0]
        escaped.append("".join(chars))
    return ".".join([root, *escaped])


@dataclass(frozen=True)
class ConditionGroup:
    """Segment's trigger builder: one group, ALL (``and``) or ANY (``or``) of its conditions."""

    match: Literal["all", "any"]
    conditions: tuple[Condition, ...]

    def __post_init__(self) -> None:
        if self.match not in ("all", "any"):
            raise InvalidConditionError(
                f'condition group match must be "all" or "any", got {self.match!r}',
                field="match",
                value=self.match,
            )
        conditions = tuple(self.conditions)
        if not conditions:
            raise InvalidConditionError(
                "a condition group needs at least one condition (an empty trigger matches "
                "nothing in Segment)",
                field="conditions",
                value=self.conditions,
            )
        for condition in conditions:
            if not isinstance(condition, Condition):
                raise InvalidConditionError(
                    f"a condition group holds Condition objects, got {condition!r}",
                    field="conditions",
                    value=condition,
                )
        object.__setattr__(self, "conditions", conditions)


def render_fql(conditions: Condition | ConditionGroup) -> str:
    """The FQL trigger Segment's UI writes for a condition or a condition group."""
    if isinstance(conditions, Condition):
        return conditions.to_fql()
    if isinstance(conditions, ConditionGroup):
        conjunction = " and " if conditions.match == "all" else " or "
        return conjunction.join(condition.to_fql() for condition in conditions.conditions)
    raise TypeError(f"render_fql takes a Condition or ConditionGroup, got {conditions!r}")


def compile_conditions(conditions: Condition | ConditionGroup) -> Predicate:
    """Compile structured conditions to a predicate equal to ``compile_trigger(render_fql(…))``."""
    if isinstance(conditions, Condition):
        conditions = ConditionGroup("all", (conditions,))
    if not isinstance(conditions, ConditionGroup):
        raise TypeError(f"compile_conditions takes a ConditionGroup, got {conditions!r}")
    operator = "and" if conditions.match == "all" else "or"
    tree = Group(operator, tuple(condition._leaf() for condition in conditions.conditions))
    fql = render_fql(conditions)  # only used in error messages
    return compile_predicate(tree, fql)
