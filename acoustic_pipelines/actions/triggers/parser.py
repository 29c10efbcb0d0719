"""FQL parser: a port of ``parseFql`` from ``@segment/destination-subscriptions`` 3.37.0.

:func:`parse_trigger` turns a trigger into the condition tree Segment builds (:class:`Group`,
:class:`Leaf`, :class:`EmptyGroup`), dropping what Segment drops and writing a :class:`Note`
for each such surprise (``lint.py`` reports them). A trigger Segment's lexer or parser
rejects raises :class:`~acoustic_pipelines.actions.triggers.errors.TriggerSyntaxError`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from acoustic_pipelines.actions.js_values import js_slice, js_string_to_number, js_to_string
from acoustic_pipelines.actions.triggers.errors import TriggerSyntaxError, excerpt
from acoustic_pipelines.actions.triggers.lexer import LexError, Source, Token, join_paths, lex
from acoustic_pipelines.actions.triggers.paths import OBJECT_MEMBERS

__all__ = [
    "FIELD_KINDS",
    "PATH_ROOTS",
    "TOP_LEVEL_FIELDS",
    "EmptyGroup",
    "Group",
    "Leaf",
    "Node",
    "Note",
    "ParsedTrigger",
    "is_cased_keyword",
    "parse_trigger",
]

FIELD_KINDS: Final = {
    "type": "event-type",
    "event": "event",
    "name": "name",
    "userId": "userId",
    "properties": "event-property",
    "traits": "event-trait",
    "context": "event-context",
}
PATH_ROOTS: Final = {
    "event-property": "properties",
    "event-trait": "traits",
    "event-context": "context",
}
TOP_LEVEL_FIELDS: Final = {
    "event-type": "type",
    "event": "event",
    "name": "name",
    "userId": "userId",
}
_FUNCTIONS = ("contains", "match")
# Operator names validate() knows; any other token in operator position never matches.
_VALIDATE_OPERATORS = frozenset(
    ("=", "!=", "<", "<=", ">", ">=", "contains", "not_contains", "starts_with",
     "not_starts_with", "ends_with", "not_ends_with", "exists", "not_exists", "is_true",
     "is_false", "number_equals", "number_not_equals")
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Leaf:
    """One condition, as Segment's parser builds it."""

    kind: str  # event-type | event | name | userId | event-property | event-trait | event-context
    operator: str  # = != < <= > >= contains ... exists is_true number_equals, or any token text
    value: str | float | bool | None = None
    name: str | None = None  # the path inside properties / traits / context
    position: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Group:
    """Conditions joined by one conjunction."""

    operator: str  # "and" | "or" (the last conjunction seen at that level)
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class EmptyGroup:
    """``()``: Segment keeps an undefined child that makes ``validate`` throw when reached."""

    position: int | None


Node: TypeAlias = Leaf | Group | EmptyGroup


@dataclass(frozen=True, slots=True)
class Note:
    """Something the parser silently did that a trigger author would not expect."""

    position: int  # UTF-16 index
    message: str


@dataclass(frozen=True)
class ParsedTrigger:
    """A parsed trigger: its condition tree, the parser's notes and the (path-joined) tokens."""

    tree: Group
    notes: tuple[Note, ...]
    tokens: list[Token]


class _ParseError(Exception):
    """parseFql fails; ``position`` is a UTF-16 code-unit index (None: the whole trigger)."""

    def __init__(self, message: str, position: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def is_cased_keyword(word: str) -> bool:
    """Return True for ``AND``, ``Or``, ``NULL``, ``TRUE``…: keywords only count in lower case."""
    return word != word.lower() and word.lower() in ("and", "or", "null", "true", "false")


def _token_value(token: Token) -> str | float | bool:
    """parseFql's getTokenValue()."""
    if token.kind == "string":
        # Only double quotes are stripped: a single-quoted 'x' keeps its quotes.
        value = token.value.removeprefix('"')
        return value[:-1] if value.endswith('"') else value
    if token.kind == "number":
        return js_string_to_number(token.value)
    if token.kind == "ident" and token.value in ("true", "false"):
        return token.value == "true"
    return token.value


def _strip_root(path: str, root: str) -> str:
    """``path.replace(/^(root)\\./, "")``."""
    return path[len(root) + 1 :] if path.startswith(root + ".") else path


class _Parser:
    """Turns tokens into a condition tree exactly as parseFql does, noting what it drops."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.notes: list[Note] = []

    def parse_root(self, tokens: list[Token]) -> Group:
        """Return the top-level group (one condition is wrapped in an ``and`` group)."""
        root = self._parse(deque(tokens))
        if root is None or isinstance(root, EmptyGroup):
            raise _ParseError(self._nothing_to_evaluate(), None)
        if not isinstance(root, Group):
            return Group("and", (root,))
        return root

    def _nothing_to_evaluate(self) -> str:
        if not self.source.text.strip(" \t\n"):
            return "the trigger is empty"
        reasons = "; ".join(note.message for note in self.notes)
        return "no condition Segment can evaluate" + (f": {reasons}" if reasons else "")

    def _parse(self, tokens: deque[Token]) -> Node | None:
        nodes: list[Node] = []
        conjunction = "and"
        token = tokens.popleft() if tokens else None
        while token is not None and token.kind != "eos":
            if token.kind == "ident":
                self._parse_word(token, nodes, tokens)
            elif token.kind == "operator" and token.value == "!":
                self._parse_negation(token, nodes, tokens)
            elif token.kind == "parenleft":
                nodes.append(self._parse_group(token, tokens))
            elif token.kind == "conditional":
                # No precedence: the last conjunction at this level applies to all its children.
                conjunction = token.value
            token = tokens.popleft() if tokens else None
        if len(nodes) > 1:
            return Group(conjunction, tuple(nodes))
        return nodes[0] if nodes else None

    def _parse_word(self, token: Token, nodes: list[Node], tokens: deque[Token]) -> None:
        head = token.value.split(".")[0]
        # parseFql looks the head up in a plain JS object, so inherited names such as
        # `constructor` are "found": they swallow two tokens and produce nothing.
        if head in FIELD_KINDS or head in OBJECT_MEMBERS:
            operator_token = tokens.popleft() if tokens else None
            if operator_token is None:
                raise _ParseError(f"`{token.value}` has no operator", token.start)
            value_token = tokens.popleft() if tokens else None
            if value_token is None:
                raise _ParseError(f"`{token.value}` has no operator and value", token.start)
            if head in FIELD_KINDS:
                nodes.append(self._condition(token, operator_token, value_token))
            else:
                self._note(token, f"`{token.value}` is not a field; its condition is dropped")
        elif token.value in _FUNCTIONS:
            self._parse_function(token, nodes, tokens, negate=False)
        elif not is_cased_keyword(token.value):  # lint_trigger reports those itself
            self._note(
                token,
                f"`{token.value}` is not a field triggers can test (type, event, name, userId, "
                "properties.*, traits.*, context.*); Segment drops it",
            )

    def _parse_negation(self, token: Token, nodes: list[Node], tokens: deque[Token]) -> None:
        if not tokens:
            raise _ParseError("`!` is not followed by anything", token.start)
        following = tokens[0]
        if following.kind == "ident" and following.value in _FUNCTIONS:
            tokens.popleft()
            self._parse_function(following, nodes, tokens, negate=True)
        # Otherwise (`!(…)`, `!x`) Segment ignores the `!`.

    def _parse_group(self, opening: Token, tokens: deque[Token]) -> Node:
        inner: list[Token] = []
        while True:
            if not tokens:
                raise _ParseError("`(` is never closed (or parentheses are nested)", opening.start)
            token = tokens.popleft()
            if token.kind == "parenright":
                break
            inner.append(token)
        inner.append(Token("eos", "eos", opening.start, opening.start))
        group = self._parse(deque(inner))
        if group is None:
            self._note(opening, "`()` holds no condition; evaluating it raises an error")
            return EmptyGroup(self.source.position(opening.start))
        return group

    def _parse_function(
        self, token: Token, nodes: list[Node], tokens: deque[Token], *, negate: bool
    ) -> None:
        # parseFql skips "(", "," and ")" by position without checking what they are.
        def shift() -> Token | None:
            return tokens.popleft() if tokens else None

        shift()
        argument = shift()
        if argument is None:
            raise _ParseError(f"{token.value}() is missing a 1st argument", token.start)
        shift()
        value_token = shift()
        if value_token is None:
            raise _ParseError(f"{token.value}() is missing a 2nd argument", token.start)
        shift()
        text = js_to_string(_token_value(value_token))
        if token.value == "contains":
            operator = "not_contains" if negate else "contains"
            value = text
        elif value_token.value.endswith('*"'):
            # match() knows a trailing `*` (starts with) and otherwise assumes a leading `*`.
            operator = "not_starts_with" if negate else "starts_with"
            value = js_slice(text, 0, -1)
        else:
            operator = "not_ends_with" if negate else "ends_with"
            value = js_slice(text, 1)
        position = self.source.position(token.start)
        before = len(nodes)
        if argument.value in ("event", "name", "userId"):
            nodes.append(Leaf(argument.value, operator, value, position=position))
        for kind, root in PATH_ROOTS.items():
            if argument.value.startswith(root):  # /^(properties)/: no dot required
                name = _strip_root(argument.value, root)
                nodes.append(Leaf(kind, operator, value, name, position=position))
        if len(nodes) == before:
            self._note(
                argument,
                f"{token.value}() cannot test `{argument.value}` (only event, name, userId, "
                "properties.*, traits.*, context.*); Segment drops it",
            )

    def _condition(self, field_token: Token, operator_token: Token, value_token: Token) -> Leaf:
        kind = FIELD_KINDS[field_token.value.split(".")[0]]
        operator = operator_token.value
        raw = value_token.value
        position = self.source.position(field_token.start)
        self._note_condition(kind, field_token, operator_token, value_token)
        if kind in ("event-type", "event"):
            return Leaf(kind, operator, js_to_string(_token_value(value_token)), position=position)
        if operator == "!=" and raw == "null":
            special = "exists"
        elif operator == "=" and raw == "null":
            special = "not_exists"
        elif kind != "name" and operator == "=" and raw in ("true", "false"):
            special = "is_true" if raw == "true" else "is_false"
        else:
            special = None
        if kind in ("name", "userId"):
            if special:
                return Leaf(kind, special, position=position)
            return Leaf(kind, operator, js_to_string(_token_value(value_token)), position=position)
        name = _strip_root(field_token.value, PATH_ROOTS[kind])
        if special:
            return Leaf(kind, special, None, name, position=position)
        if value_token.kind == "number" and operator in ("=", "!="):
            operator = "number_equals" if operator == "=" else "number_not_equals"
        return Leaf(kind, operator, _token_value(value_token), name, position=position)

    def _note_condition(
        self, kind: str, field_token: Token, operator_token: Token, value_token: Token
    ) -> None:
        written = f"`{field_token.value} {operator_token.value}`"
        if operator_token.value not in _VALIDATE_OPERATORS:
            self._note(
                operator_token,
                f"`{field_token.value}` is followed by `{operator_token.value}`, not a "
                "comparison operator; the condition never matches",
            )
        elif value_token.kind == "eos":
            self._note(
                field_token,
                f"{written} has no value; Segment compares with the text `eos`",
            )
        elif kind in ("event-type", "event") and value_token.value == "null":
            self._note(
                value_token,
                f'{written} null compares with the text "null" (`event != null` is true for '
                "every event); there is no exists test on type or event",
            )
        elif operator_token.value == "!=" and value_token.value in ("true", "false"):
            self._note(
                value_token,
                f'{written} {value_token.value} compares with the text "{value_token.value}": '
                "it is true for boolean true and false alike",
            )

    def _note(self, token: Token, message: str) -> None:
        position = self.source.position(token.start) or 0
        self.notes.append(Note(token.start, f"{message} (position {position})"))


def parse_trigger(source: Source) -> ParsedTrigger:
    """Lex and parse a trigger; raise TriggerSyntaxError when Segment's parser fails."""
    try:
        tokens = join_paths(lex(source))
        parser = _Parser(source)
        tree = parser.parse_root(list(tokens))
    except (LexError, _ParseError) as exc:
        position = source.position(exc.position)
        where = "" if position is None else f" at position {position}"
        message = f"trigger `{excerpt(source.text)}` is not valid FQL: {exc.message}{where}"
        raise TriggerSyntaxError(message, fql=source.text, position=position) from None
    return ParsedTrigger(tree, tuple(parser.notes), tokens)
