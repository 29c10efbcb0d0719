"""FQL compiler: a condition tree → one predicate of small closures (a port of ``validate()``).

Compile once, run many: :func:`compile_predicate` fixes each condition's operator, expected
value and path reader at compile time, so evaluating an event only walks dicts and compares
values. ``and``/``or`` short-circuit exactly as Segment's ``Array.every``/``some`` do, which
decides whether a condition that throws (``()``, a path of separators only) is ever reached.
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable
from typing import Any, TypeAlias

from acoustic_pipelines.actions.js_values import (
    has_surrogate,
    js_int_as_double,
    js_to_number,
    js_to_string,
    js_utf16_units,
)
from acoustic_pipelines.actions.triggers.errors import TriggerEvaluationError, excerpt
from acoustic_pipelines.actions.triggers.parser import (
    PATH_ROOTS,
    TOP_LEVEL_FIELDS,
    EmptyGroup,
    Group,
    Leaf,
    Node,
)
from acoustic_pipelines.actions.triggers.paths import key_getter, path_getter, path_keys

__all__ = ["Predicate", "compile_predicate", "trigger_guard", "trigger_guards"]

Predicate: TypeAlias = Callable[[dict], bool]

_NUMERIC_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "<": op.lt,
    "<=": op.le,
    ">": op.gt,
    ">=": op.ge,
    "number_equals": op.eq,
    "number_not_equals": op.ne,
}
_STRING_TESTS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda actual, text: text in actual,
    "not_contains": lambda actual, text: text not in actual,
    "starts_with": str.startswith,
    "not_starts_with": lambda actual, text: not actual.startswith(text),
    "ends_with": str.endswith,
    "not_ends_with": lambda actual, text: not actual.endswith(text),
}


def _never(_actual: Any) -> bool:
    return False


def _value_test(operator: str, expected: Any) -> Callable[[Any], bool]:
    """validateValue(actual, operator, expected) with the operator and expected value fixed."""
    if operator in ("=", "!="):
        text = js_to_string(expected)
        if operator == "=":
            return lambda actual: isinstance(actual, str) and actual == text
        return lambda actual: not (isinstance(actual, str) and actual == text)
    if operator in _NUMERIC_COMPARISONS:
        return _numeric_test(_NUMERIC_COMPARISONS[operator], js_to_number(expected))
    if operator in _STRING_TESTS:
        return _string_test(_STRING_TESTS[operator], js_to_string(expected))
    if operator == "exists":
        return lambda actual: actual is not None
    if operator == "not_exists":
        return lambda actual: actual is None
    if operator == "is_true":
        return lambda actual: actual is True
    if operator == "is_false":
        return lambda actual: actual is False
    return _never  # any other token in operator position (`type and x`): validate() says false


def _numeric_test(compare: Callable[[Any, Any], bool], bound: float) -> Callable[[Any], bool]:
    """Only JSON numbers qualify: numeric strings and booleans never compare."""

    def test(actual: Any) -> bool:
        kind = type(actual)
        if kind is float:
            return compare(actual, bound)
        if kind is int:
            return compare(js_int_as_double(actual), bound)
        return False

    return test


def _string_test(check: Callable[[str, str], bool], text: str) -> Callable[[Any], bool]:
    """Only strings qualify; missing values are false for the negated forms too."""
    if has_surrogate(text):  # match() sliced a UTF-16 unit off: compare code units as JS does
        units = js_utf16_units(text)
        return lambda actual: isinstance(actual, str) and check(js_utf16_units(actual), units)
    return lambda actual: isinstance(actual, str) and check(actual, text)


def _getter(leaf: Leaf, fql: str) -> Callable[[dict], Any]:
    """Where validate() reads the actual value; None stands for both null and undefined."""
    if leaf.kind in TOP_LEVEL_FIELDS:
        key = TOP_LEVEL_FIELDS[leaf.kind]
        return lambda event: event.get(key)
    root = PATH_ROOTS[leaf.kind]
    if not leaf.name:
        return lambda event: None  # get(obj, "") returns undefined
    keys = path_keys(leaf.name)
    if not keys:
        return _failing_getter(leaf, fql)
    if len(keys) == 1:
        return key_getter(root, keys[0])
    return path_getter(root, keys)


def _failing_getter(leaf: Leaf, fql: str) -> Callable[[dict], Any]:
    message = (
        f"trigger `{excerpt(fql)}`: the path `{leaf.name}` (position {leaf.position}) has no "
        "key between its separators; Segment's get() throws when it evaluates it"
    )
    return _throwing(message, fql, leaf.position)


def _throwing(message: str, fql: str, position: int | None) -> Callable[[dict], Any]:
    """A reader or predicate that throws, as validate() does once evaluation reaches it."""

    def throw(event: dict) -> Any:
        raise TriggerEvaluationError(message, fql=fql, position=position)

    return throw


def _compile_node(node: Node, fql: str) -> Predicate:
    """Closures for a condition tree; and/or short-circuit like Array.every/some."""
    if isinstance(node, Group):
        children = tuple(_compile_node(child, fql) for child in node.children)
        return _joined(children, every=node.operator == "and")
    if isinstance(node, EmptyGroup):
        return _empty_group(node, fql)
    if node.kind in TOP_LEVEL_FIELDS and node.operator in ("=", "!="):
        return _top_level_equality(TOP_LEVEL_FIELDS[node.kind], node.operator, node.value)
    get = _getter(node, fql)
    test = _value_test(node.operator, node.value)
    return lambda event: test(get(event))


def _top_level_equality(key: str, operator: str, expected: Any) -> Predicate:
    """`type = "track"` and the like in one closure: the hot path of most triggers."""
    text = js_to_string(expected)
    if operator == "=":
        return lambda event: isinstance(value := event.get(key), str) and value == text
    return lambda event: not (isinstance(value := event.get(key), str) and value == text)


def _joined(children: tuple[Predicate, ...], *, every: bool) -> Predicate:
    """``and`` (every) or ``or`` (some) of the children; one or two children need no loop."""
    if len(children) == 1:
        return children[0]
    if len(children) == 2:
        first, second = children
        if every:
            return lambda event: first(event) and second(event)
        return lambda event: first(event) or second(event)
    combine = all if every else any

    def joined(event: dict) -> bool:
        return combine(child(event) for child in children)

    return joined


def _empty_group(node: EmptyGroup, fql: str) -> Predicate:
    message = (
        f"trigger `{excerpt(fql)}`: the empty group `()` at position {node.position} has no "
        "condition; Segment's validate() throws when it reaches it"
    )
    return _throwing(message, fql, node.position)


def compile_predicate(tree: Group, fql: str) -> Predicate:
    """Compile a condition tree into the public predicate (``fql`` names it in errors).

    The predicate refuses a non-dict event and raises nothing but
    :class:`~acoustic_pipelines.actions.triggers.errors.TriggerEvaluationError`.
    """
    root = _compile_node(tree, fql)
    guard = _guard(tree)

    def predicate(event: dict) -> bool:
        if type(event) is not dict and not isinstance(event, dict):
            raise TriggerEvaluationError(
                f"trigger `{excerpt(fql)}`: an event must be a JSON object (dict), "
                f"got {type(event).__name__}",
                fql=fql,
                position=None,
            )
        try:
            return root(event)
        except TriggerEvaluationError:
            raise
        except Exception as exc:  # a dict subclass misbehaving; keep the documented contract
            raise TriggerEvaluationError(
                f"trigger `{excerpt(fql)}`: evaluating the event failed: {exc!r}",
                fql=fql,
                position=None,
            ) from exc

    predicate.guard = guard  # type: ignore[attr-defined]  # see trigger_guard
    predicate.guards = _guards(tree) if guard is not None else ()  # type: ignore[attr-defined]
    return predicate


def _guards(node: Node) -> tuple[tuple[str, str], ...]:
    """The run of top-level `field = "text"` tests an ``and`` chain starts with, in order.

    The first is :func:`_guard`'s. Each later one is reached (the ones before it hold, and none
    of them can throw on a plain dict) and, when false, makes ``and`` false; the run stops at
    the first condition of another kind.
    """
    guards: list[tuple[str, str]] = []
    pending = [node]
    while pending:
        node = pending.pop()
        if isinstance(node, Group) and node.children:
            if node.operator != "and" and len(node.children) > 1:
                break
            pending.extend(reversed(node.children))
        elif isinstance(node, Leaf) and node.kind in TOP_LEVEL_FIELDS and node.operator == "=":
            guards.append((TOP_LEVEL_FIELDS[node.kind], js_to_string(node.value)))
        else:
            break
    return tuple(guards)


def _guard(node: Node) -> tuple[str, str] | None:
    """The top-level `field = "text"` the trigger tests first, when its falsity decides the trigger.

    That is the first condition of an ``and`` chain (or of a group of one): it cannot throw on a
    plain dict, and when it is false ``and`` short-circuits to false, so a caller that sees
    another value may skip the trigger without evaluating it (see ``dispatch.py``).
    """
    while isinstance(node, Group) and node.children:
        if node.operator != "and" and len(node.children) > 1:
            return None
        node = node.children[0]
    if isinstance(node, Leaf) and node.kind in TOP_LEVEL_FIELDS and node.operator == "=":
        return TOP_LEVEL_FIELDS[node.kind], js_to_string(node.value)
    return None


def trigger_guard(predicate: Predicate) -> tuple[str, str] | None:
    """``(field, text)`` when ``predicate`` is false for every plain dict whose top-level ``field``
    is not the string ``text`` (a compiled trigger starting with ``field = "text" and …``)."""
    return getattr(predicate, "guard", None)


def trigger_guards(predicate: Predicate) -> tuple[tuple[str, str], ...]:
    """Every ``(field, text)`` of the ``field = "text" and …`` run a compiled trigger starts with:
    for a plain dict, the trigger is false as soon as one of those fields is not its text (the
    first is :func:`trigger_guard`'s; none when it has none)."""
    return getattr(predicate, "guards", ())
