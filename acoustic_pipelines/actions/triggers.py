"""Segment Destination Actions triggers ("subscription FQL"), compiled to Python predicates.

A mapping's trigger is a string such as ``type = "track" and properties.total > 50``. Segment
parses it with ``parseFql`` from ``@segment/destination-subscriptions`` (lexer: ``@segment/fql-ts``)
and evaluates it with ``validate``. This module re-implements both, quirks included, so that a
trigger matches here exactly the events it matches in Segment (reference: segment.md §4 and the
conformance vectors in ``shared/conformance/fql_vectors.jsonl``, which win over the prose).

Compile once, run many: :func:`compile_trigger` lexes and parses the text once and returns a tree
of small closures; evaluating an event only walks dicts and compares values.

Where we differ from Segment on purpose:

- A trigger Segment cannot parse silently matches nothing there; here it raises
  :class:`TriggerSyntaxError` (a misspelt trigger should fail the config, not drop data).
- An event that is not a ``dict`` raises :class:`TriggerEvaluationError` (Segment returns false
  for ``undefined``, throws for ``null`` and evaluates strings/arrays as empty objects).
- Values inherited from JavaScript prototypes (``properties.x.length`` on a string or array, or a
  missing key named like an ``Object.prototype`` member, e.g. ``constructor``) are emulated only
  one level deep: members of those inherited functions (``constructor.name``) read as missing.

Events are expected to be JSON-shaped (dict, list, str, int, float, bool, None); other values are
treated as opaque objects that exist but are neither strings, numbers nor booleans.
"""

from __future__ import annotations

import functools
import logging
import math
import operator as op
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "OPERATORS",
    "Condition",
    "ConditionGroup",
    "InvalidConditionError",
    "TriggerError",
    "TriggerEvaluationError",
    "TriggerSyntaxError",
    "compile_conditions",
    "compile_trigger",
    "lint_trigger",
    "matches",
    "render_fql",
]

logger = logging.getLogger(__name__)

Predicate: TypeAlias = Callable[[dict], bool]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class TriggerError(ValueError):
    """Root of every error this module raises."""


class TriggerSyntaxError(TriggerError):
    """Raised by :func:`compile_trigger` for a trigger Segment's parser rejects.

    Segment turns such a trigger into one that matches no event; we refuse it instead.
    ``position`` is the index of the offending character in ``fql`` (None when the problem is the
    trigger as a whole, e.g. no condition Segment can evaluate).
    """

    def __init__(self, message: str, *, fql: str, position: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.fql = fql
        self.position = position


class TriggerEvaluationError(TriggerError):
    """Raised by a compiled trigger when Segment's ``validate`` would throw for this event.

    That happens for an event that is not a JSON object, for an empty parenthesised group ``()``
    and for a property path made only of separators (``properties.\\.``) once evaluation reaches
    them (``and``/``or`` short-circuit exactly as in Segment).
    """

    def __init__(self, message: str, *, fql: str, position: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.fql = fql
        self.position = position


class InvalidConditionError(TriggerError):
    """Raised for a structured :class:`Condition` / :class:`ConditionGroup` Segment's UI refuses."""

    def __init__(self, message: str, *, field: str, value: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value


# --------------------------------------------------------------------------------------------
# JavaScript value semantics (String(x), Number(x), UTF-16 strings, prototype members)
# --------------------------------------------------------------------------------------------

_MAX_SAFE_INTEGER = 2**53
# StringToNumber trims WhiteSpace and LineTerminator (ECMA-262), not Python's str.strip() set.
_JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JS_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_JS_RADIX = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")


def _names(text: str) -> frozenset[str]:
    """A set of names written as one space-separated string (keeps long tables short)."""
    return frozenset(text.split())


# Members every JS value inherits; `obj[key]` finds them when the object has no own `key`.
_OBJECT_MEMBERS = _names(
    "constructor __defineGetter__ __defineSetter__ hasOwnProperty __lookupGetter__"
    " __lookupSetter__ isPrototypeOf propertyIsEnumerable toString valueOf __proto__"
    " toLocaleString"
)
_STRING_MEMBERS = _OBJECT_MEMBERS | _names(
    "anchor at big blink bold charAt charCodeAt codePointAt concat endsWith fontcolor fontsize"
    " fixed includes indexOf isWellFormed italics lastIndexOf link localeCompare match matchAll"
    " normalize padEnd padStart repeat replace replaceAll search slice small split strike sub"
    " substr substring sup startsWith toWellFormed trim trimStart trimLeft trimEnd trimRight"
    " toLocaleLowerCase toLocaleUpperCase toLowerCase toUpperCase"
)
_ARRAY_MEMBERS = _OBJECT_MEMBERS | _names(
    "at concat copyWithin fill find findIndex findLast findLastIndex lastIndexOf pop push"
    " reverse shift unshift slice sort splice includes indexOf join keys entries values forEach"
    " filter flat flatMap map every some reduce reduceRight toReversed toSorted toSpliced"
    " with"
)
_NUMBER_MEMBERS = _OBJECT_MEMBERS | {"toExponential", "toFixed", "toPrecision"}
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


class _JsBuiltin:
    """An inherited JS member (a function or prototype object): it exists, but is no string."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<inherited JS member>"


_JS_BUILTIN = _JsBuiltin()
_MISSING = object()


def _int_as_double(value: int) -> float | int:
    """Round a Python int the way JSON.parse would store it (an IEEE double)."""
    if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        return value
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _js_string_to_number(text: str) -> float:
    """JavaScript ``Number(text)``: "" → 0, hex/octal/binary literals, "Infinity", else NaN."""
    text = text.strip(_JS_WHITESPACE)
    if not text:
        return 0.0
    if _JS_DECIMAL.fullmatch(text):
        return float(text)
    if text in ("Infinity", "+Infinity"):
        return math.inf
    if text == "-Infinity":
        return -math.inf
    if _JS_RADIX.fullmatch(text):
        return float(_int_as_double(int(text, 0)))
    return math.nan


def _js_number(value: Any) -> float:
    """JavaScript ``Number(value)`` for the values a parsed trigger can hold."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        return float(_int_as_double(value))
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return _js_string_to_number(value)
    return math.nan


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits ``d`` and exponent ``n`` with ``value == 0.d × 10**n``."""
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + int(exponent or 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point


def _js_number_to_string(value: float) -> str:
    """JavaScript ``String(number)`` (Number::toString): ``1e+21``, ``1e-7``, ``0.5``, ``10``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits, n = _shortest_digits(abs(value))
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    exponent = n - 1
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def _plain_decimal(value: float) -> str:
    """A number as FQL can lex it: no exponent (``1e-7`` → ``0.0000001``)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits, n = _shortest_digits(abs(value))
    if n >= len(digits):
        return sign + digits + "0" * (n - len(digits))
    if n > 0:
        return sign + digits[:n] + "." + digits[n:]
    return sign + "0." + "0" * -n + digits


def _js_string(value: Any) -> str:
    """JavaScript ``String(value)`` for the values a parsed trigger can hold."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _js_number_to_string(_js_number(value))
    return str(value)


def _to_utf16_units(text: str) -> str:
    """The text as JavaScript sees it: characters above U+FFFF split into surrogate pairs."""
    if text.isascii() or all(ord(char) <= 0xFFFF for char in text):
        return text
    units = []
    for char in text:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            units.append(chr(0xD800 + (code >> 10)))
            units.append(chr(0xDC00 + (code & 0x3FF)))
        else:
            units.append(char)
    return "".join(units)


def _from_utf16_units(units: str) -> str:
    """Inverse of :func:`_to_utf16_units`: join surrogate pairs, keep lone surrogates."""
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _printable(units: str) -> str:
    """Text for a message: surrogate pairs joined, lone surrogates written as ``\\udXXX``."""
    text = _from_utf16_units(units)
    if not _has_surrogate(text):
        return text
    return "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def _excerpt(fql: str, limit: int = 200) -> str:
    """A trigger for an error message, cut short when it is very long."""
    return fql if len(fql) <= limit else f"{fql[:limit]}… ({len(fql)} characters)"


def _has_surrogate(text: str) -> bool:
    """Whether the text holds a lone UTF-16 surrogate (only possible after JS-style slicing)."""
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def _utf16_slice(text: str, start: int, stop: int | None = None) -> str:
    """JavaScript ``text.slice(start, stop)``: indexes count UTF-16 code units."""
    return _from_utf16_units(_to_utf16_units(text)[start:stop])


def _js_truthy(value: Any) -> bool:
    """JavaScript truthiness: ``{}`` and ``[]`` are truthy, ``0``, ``""``, NaN and null are not."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float):
        return value == value and value != 0
    if isinstance(value, str):
        return value != ""
    return True


def _js_member(value: Any, key: str) -> Any:
    """JavaScript ``value && value[key]`` for a value that is not a dict."""
    if not _js_truthy(value):
        return value  # `0 && x` is 0: Segment's get() keeps walking with the falsy value
    if isinstance(value, str):
        units = _to_utf16_units(value)
        if key == "length":
            return len(units)
        if _ARRAY_INDEX.fullmatch(key) and int(key) < len(units):
            return _from_utf16_units(units[int(key)])
        return _JS_BUILTIN if key in _STRING_MEMBERS else None
    if isinstance(value, list):
        if key == "length":
            return len(value)
        if _ARRAY_INDEX.fullmatch(key) and int(key) < len(value):
            return value[int(key)]
        return _JS_BUILTIN if key in _ARRAY_MEMBERS else None
    if isinstance(value, bool):
        return _JS_BUILTIN if key in _OBJECT_MEMBERS else None
    if isinstance(value, int | float):
        return _JS_BUILTIN if key in _NUMBER_MEMBERS else None
    return None


def _inherited_object_member(key: str) -> Any:
    """What ``{}[key]`` gives in JavaScript: an inherited member or undefined."""
    return _JS_BUILTIN if key in _OBJECT_MEMBERS else None


# --------------------------------------------------------------------------------------------
# Lexer (a port of @segment/fql-ts 1.10.1, working on UTF-16 code units like JavaScript)
# --------------------------------------------------------------------------------------------

_MAX_LITERAL_LENGTH = 100_000  # fql-ts refuses identifiers, strings and numbers this long


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # ident dot operator conditional string number null brackleft brackright
    #            parenleft parenright comma eos
    value: str
    start: int  # index of the first UTF-16 code unit in the trigger
    end: int


class _LexError(Exception):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class _ParseError(Exception):
    def __init__(self, message: str, position: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _is_alpha(char: str | None) -> bool:
    return char is not None and ("a" <= char <= "z" or "A" <= char <= "Z")


def _is_digit(char: str | None) -> bool:
    return char is not None and "0" <= char <= "9"


def _is_ident_char(char: str | None) -> bool:
    return _is_alpha(char) or _is_digit(char) or char in ("_", "-", "\\")


def _is_terminator(char: str | None) -> bool:
    # Only space, tab and \n are whitespace: "\r" is an invalid character between tokens.
    return char is None or char in (" ", "\t", "\n", ",", "]", ")")


_SINGLE_CHAR_TOKENS = {
    ".": "dot",
    "[": "brackleft",
    "]": "brackright",
    ",": "comma",
    "(": "parenleft",
    ")": "parenright",
}


class _Lexer:
    """Character-by-character port of fql-ts's Lexer; ``None`` stands for end of input."""

    def __init__(self, units: str) -> None:
        self.units = units
        self.pos = 0

    def next(self) -> str | None:
        if self.pos >= len(self.units):
            return None
        char = self.units[self.pos]
        self.pos += 1
        return char

    def peek(self) -> str | None:
        return self.units[self.pos] if self.pos < len(self.units) else None

    def describe(self, index: int) -> str:
        """The character at ``index`` for an error message (a surrogate pair shown whole)."""
        if index >= len(self.units):
            return "the end of the trigger"
        char = _from_utf16_units(self.units[index : index + 2])[0]
        shown = char if char.isprintable() else repr(char)[1:-1]
        return f"`{shown}` (U+{ord(char):04X})"

    def backup(self, count: int) -> None:
        self.pos = max(0, self.pos - count)

    def accept(self, expected: str) -> bool:
        """Consume ``expected`` if it is followed by a terminator; otherwise roll back."""
        seen = ""
        for _ in expected:
            char = self.next()
            if char is None:
                return False  # quirk: fql-ts does not roll back here ("an" at the end → "a")
            seen += char
            if _is_terminator(char):
                break
        if seen == expected and _is_terminator(self.peek()):
            return True
        self.backup(len(seen))
        return False

    def lex(self) -> list[_Token]:
        tokens: list[_Token] = []
        while True:
            start = self.pos
            char = self.next()
            if char is None:
                tokens.append(_Token("eos", "eos", start, start))
                return tokens
            if char in (" ", "\t", "\n"):
                continue
            tokens.append(self._token(char, start))

    def _token(self, char: str, start: int) -> _Token:
        if char == "!" and (_is_alpha(self.peek()) or self.peek() == "("):
            return _Token("operator", "!", start, self.pos)
        if _is_alpha(char) or char in ("!", "=", ">", "<", "\\", "_"):
            kind, value = self._operator_or_word(char, start)
        elif _is_digit(char) or char in ("-", "+"):
            kind, value = "number", self._number(char)
        elif char in ('"', "'"):
            kind, value = "string", self._string(char, start)
        elif char in _SINGLE_CHAR_TOKENS:
            kind, value = _SINGLE_CHAR_TOKENS[char], char
        else:
            raise _LexError(f"invalid character {self.describe(start)}", start)
        return _Token(kind, value, start, self.pos)

    def _string(self, quote: str, start: int) -> str:
        content = []
        while self.peek() != quote:
            char = self.next()
            if char is None:
                raise _LexError("unterminated string", start)
            content.append(char)
            if len(content) >= _MAX_LITERAL_LENGTH:
                raise _LexError("unreasonably long string", start)
        # Quirk: the closing quote is only consumed when a terminator follows it; otherwise it
        # also opens the next string (`"a"and "b"` lexes as "a", "and ", "b").
        self.accept(quote)
        return quote + "".join(content) + quote

    def _number(self, first: str) -> str:
        text = ""
        coming = self.peek()
        is_decimal = False
        while _is_digit(coming) or coming == ".":
            char = self.next()
            text += char or ""
            if coming == ".":
                if _is_terminator(self.peek()):
                    raise _LexError("a number ends with a decimal point", self.pos - 1)
                if is_decimal:
                    raise _LexError("a number has two decimal points", self.pos - 1)
                is_decimal = True
            if len(text) >= _MAX_LITERAL_LENGTH:
                raise _LexError("unreasonably long number", self.pos)
            coming = self.peek()
        return first + text

    def _operator_or_word(self, char: str, start: int) -> tuple[str, str]:
        if char == "=":
            return "operator", "="
        if char == "!":
            if self.accept("="):
                return "operator", "!="
            raise _LexError(
                f"`!` must be followed by `=` and a space, or by a function or `(`; "
                f"got {self.describe(self.pos)}",
                start,
            )
        # Keywords are lower-case only and need a terminator after them.
        if char == "a" and self.accept("nd"):
            return "conditional", "and"
        if char == "o" and self.accept("r"):
            return "conditional", "or"
        if char == "n" and self.accept("ull"):
            return "null", "null"
        if char in ("<", ">"):
            return "operator", char + "=" if self.accept("=") else char
        return "ident", self._identifier(char)

    def _identifier(self, first: str) -> str:
        chars = []
        char: str | None = first
        while True:
            if char == "\\":  # `\x` escapes any character: `product\ name` → "product name"
                if self.peek() is None:
                    raise _LexError("`\\` at the end of the trigger escapes nothing", self.pos - 1)
                char = self.next()
            chars.append(char or "")
            if len(chars) >= _MAX_LITERAL_LENGTH:
                raise _LexError("unreasonably long identifier", self.pos)
            if not _is_ident_char(self.peek()):
                break
            char = self.next()
        coming = self.peek()
        if not (_is_terminator(coming) or coming in (".", "(", "=", "!")):
            hint = "; put a space before `<` and `>`" if coming in ("<", ">") else ""
            name = _printable("".join(chars))
            raise _LexError(
                f"identifier `{name}` is followed by {self.describe(self.pos)}{hint}", self.pos
            )
        return "".join(chars)


@dataclass(frozen=True)
class _Source:
    """A trigger and the same text as UTF-16 code units (what the ported lexer reads)."""

    text: str
    units: str

    @classmethod
    def of(cls, text: str) -> _Source:
        return cls(text, _to_utf16_units(text))

    def position(self, unit_index: int | None) -> int | None:
        """Index in ``text`` of the code unit at ``unit_index``."""
        if unit_index is None or self.units is self.text or self.units == self.text:
            return unit_index
        if 0 < unit_index < len(self.units) and "\udc00" <= self.units[unit_index] <= "\udfff":
            unit_index -= 1  # the second half of a surrogate pair: point at the character
        return len(_from_utf16_units(self.units[:unit_index]))

    def snippet(self, token: _Token) -> str:
        """The trigger text a token was read from."""
        return _from_utf16_units(self.units[token.start : token.end])


def _lex(source: _Source) -> list[_Token]:
    """Tokens of a trigger (values as Python strings), or :class:`_LexError`."""
    tokens = _Lexer(source.units).lex()
    if source.units == source.text:
        return tokens
    return [_Token(t.kind, _from_utf16_units(t.value), t.start, t.end) for t in tokens]


def _join_paths(tokens: list[_Token]) -> list[_Token]:
    """parseFql's normalize(): ``ident . ident`` becomes one ident (``properties.a.b``)."""
    joined: list[_Token] = []
    index = 0
    while index < len(tokens):
        current = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if (
            joined
            and joined[-1].kind == "ident"
            and current.kind == "dot"
            and following is not None
            and following.kind == "ident"
        ):
            previous = joined.pop()
            value = f"{previous.value}.{following.value}"
            joined.append(_Token("ident", value, previous.start, following.end))
            index += 2
        else:
            joined.append(current)
            index += 1
    return joined


# --------------------------------------------------------------------------------------------
# Parser (a port of parseFql from @segment/destination-subscriptions 3.37.0)
# --------------------------------------------------------------------------------------------

_FIELD_KINDS = {
    "type": "event-type",
    "event": "event",
    "name": "name",
    "userId": "userId",
    "properties": "event-property",
    "traits": "event-trait",
    "context": "event-context",
}
_PATH_ROOTS = {"event-property": "properties", "event-trait": "traits", "event-context": "context"}
_TOP_LEVEL_FIELDS = {"event-type": "type", "event": "event", "name": "name", "userId": "userId"}
_FUNCTIONS = ("contains", "match")
# Operator names validate() knows; any other token in operator position never matches.
_VALIDATE_OPERATORS = _names(
    "= != < <= > >= contains not_contains starts_with not_starts_with ends_with not_ends_with"
    " exists not_exists is_true is_false number_equals number_not_equals"
)


@dataclass(frozen=True, slots=True)
class _Leaf:
    """One condition, as Segment's parser builds it."""

    kind: str  # event-type | event | name | userId | event-property | event-trait | event-context
    operator: str  # = != < <= > >= contains ... exists is_true number_equals, or any token text
    value: str | float | bool | None = None
    name: str | None = None  # the path inside properties / traits / context
    position: int | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class _Group:
    operator: str  # "and" | "or" (the last conjunction seen at that level)
    children: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _EmptyGroup:
    """``()``: Segment keeps an undefined child that makes ``validate`` throw when reached."""

    position: int | None


_Node: TypeAlias = _Leaf | _Group | _EmptyGroup


@dataclass(frozen=True, slots=True)
class _Note:
    """Something the parser silently did that a trigger author would not expect."""

    position: int  # UTF-16 index
    message: str


def _is_cased_keyword(word: str) -> bool:
    """``AND``, ``Or``, ``NULL``, ``TRUE``…: keywords only count in lower case."""
    return word != word.lower() and word.lower() in ("and", "or", "null", "true", "false")


def _token_value(token: _Token) -> str | float | bool:
    """parseFql's getTokenValue()."""
    if token.kind == "string":
        # Only double quotes are stripped: a single-quoted 'x' keeps its quotes.
        value = token.value.removeprefix('"')
        return value[:-1] if value.endswith('"') else value
    if token.kind == "number":
        return _js_string_to_number(token.value)
    if token.kind == "ident" and token.value in ("true", "false"):
        return token.value == "true"
    return token.value


def _strip_root(path: str, root: str) -> str:
    """``path.replace(/^(root)\\./, "")``."""
    return path[len(root) + 1 :] if path.startswith(root + ".") else path


class _Parser:
    """Turns tokens into a condition tree exactly as parseFql does, noting what it drops."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.notes: list[_Note] = []

    def parse_trigger(self, tokens: list[_Token]) -> _Group:
        root = self._parse(deque(tokens))
        if root is None or isinstance(root, _EmptyGroup):
            raise _ParseError(self._nothing_to_evaluate(), None)
        if not isinstance(root, _Group):
            return _Group("and", (root,))
        return root

    def _nothing_to_evaluate(self) -> str:
        if not self.source.text.strip(" \t\n"):
            return "the trigger is empty"
        reasons = "; ".join(note.message for note in self.notes)
        return "no condition Segment can evaluate" + (f": {reasons}" if reasons else "")

    def _parse(self, tokens: deque[_Token]) -> _Node | None:
        nodes: list[_Node] = []
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
            return _Group(conjunction, tuple(nodes))
        return nodes[0] if nodes else None

    def _parse_word(self, token: _Token, nodes: list[_Node], tokens: deque[_Token]) -> None:
        head = token.value.split(".")[0]
        # parseFql looks the head up in a plain JS object, so inherited names such as
        # `constructor` are "found": they swallow two tokens and produce nothing.
        if head in _FIELD_KINDS or head in _OBJECT_MEMBERS:
            operator_token = tokens.popleft() if tokens else None
            if operator_token is None:
                raise _ParseError(f"`{token.value}` has no operator", token.start)
            value_token = tokens.popleft() if tokens else None
            if value_token is None:
                raise _ParseError(f"`{token.value}` has no operator and value", token.start)
            if head in _FIELD_KINDS:
                nodes.append(self._condition(token, operator_token, value_token))
            else:
                self._note(token, f"`{token.value}` is not a field; its condition is dropped")
        elif token.value in _FUNCTIONS:
            self._parse_function(token, nodes, tokens, negate=False)
        elif not _is_cased_keyword(token.value):  # lint_trigger reports those itself
            self._note(
                token,
                f"`{token.value}` is not a field triggers can test (type, event, name, userId, "
                "properties.*, traits.*, context.*); Segment drops it",
            )

    def _parse_negation(self, token: _Token, nodes: list[_Node], tokens: deque[_Token]) -> None:
        if not tokens:
            raise _ParseError("`!` is not followed by anything", token.start)
        following = tokens[0]
        if following.kind == "ident" and following.value in _FUNCTIONS:
            tokens.popleft()
            self._parse_function(following, nodes, tokens, negate=True)
        # Otherwise (`!(…)`, `!x`) Segment ignores the `!`.

    def _parse_group(self, opening: _Token, tokens: deque[_Token]) -> _Node:
        inner: list[_Token] = []
        while True:
            if not tokens:
                raise _ParseError("`(` is never closed (or parentheses are nested)", opening.start)
            token = tokens.popleft()
            if token.kind == "parenright":
                break
            inner.append(token)
        inner.append(_Token("eos", "eos", opening.start, opening.start))
        group = self._parse(deque(inner))
        if group is None:
            self._note(opening, "`()` holds no condition; evaluating it raises an error")
            return _EmptyGroup(self.source.position(opening.start))
        return group

    def _parse_function(
        self, token: _Token, nodes: list[_Node], tokens: deque[_Token], *, negate: bool
    ) -> None:
        # parseFql skips "(", "," and ")" by position without checking what they are.
        def shift() -> _Token | None:
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
        text = _js_string(_token_value(value_token))
        if token.value == "contains":
            operator = "not_contains" if negate else "contains"
            value = text
        elif value_token.value.endswith('*"'):
            # match() knows a trailing `*` (starts with) and otherwise assumes a leading `*`.
            operator = "not_starts_with" if negate else "starts_with"
            value = _utf16_slice(text, 0, -1)
        else:
            operator = "not_ends_with" if negate else "ends_with"
            value = _utf16_slice(text, 1)
        position = self.source.position(token.start)
        before = len(nodes)
        if argument.value in ("event", "name", "userId"):
            nodes.append(_Leaf(argument.value, operator, value, position=position))
        for kind, root in _PATH_ROOTS.items():
            if argument.value.startswith(root):  # /^(properties)/: no dot required
                name = _strip_root(argument.value, root)
                nodes.append(_Leaf(kind, operator, value, name, position=position))
        if len(nodes) == before:
            self._note(
                argument,
                f"{token.value}() cannot test `{argument.value}` (only event, name, userId, "
                "properties.*, traits.*, context.*); Segment drops it",
            )

    def _condition(self, field_token: _Token, operator_token: _Token, value_token: _Token) -> _Leaf:
        kind = _FIELD_KINDS[field_token.value.split(".")[0]]
        operator = operator_token.value
        raw = value_token.value
        position = self.source.position(field_token.start)
        self._note_condition(kind, field_token, operator_token, value_token)
        if kind in ("event-type", "event"):
            return _Leaf(kind, operator, _js_string(_token_value(value_token)), position=position)
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
                return _Leaf(kind, special, position=position)
            return _Leaf(kind, operator, _js_string(_token_value(value_token)), position=position)
        name = _strip_root(field_token.value, _PATH_ROOTS[kind])
        if special:
            return _Leaf(kind, special, None, name, position=position)
        if value_token.kind == "number" and operator in ("=", "!="):
            operator = "number_equals" if operator == "=" else "number_not_equals"
        return _Leaf(kind, operator, _token_value(value_token), name, position=position)

    def _note_condition(
        self, kind: str, field_token: _Token, operator_token: _Token, value_token: _Token
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

    def _note(self, token: _Token, message: str) -> None:
        position = self.source.position(token.start) or 0
        self.notes.append(_Note(token.start, f"{message} (position {position})"))


def _parse(source: _Source) -> tuple[_Group, _Parser, list[_Token]]:
    """Lex and parse a trigger; TriggerSyntaxError when Segment's parser fails."""
    try:
        tokens = _join_paths(_lex(source))
        parser = _Parser(source)
        tree = parser.parse_trigger(list(tokens))
    except (_LexError, _ParseError) as exc:
        position = source.position(exc.position)
        where = "" if position is None else f" at position {position}"
        message = f"trigger `{_excerpt(source.text)}` is not valid FQL: {exc.message}{where}"
        raise TriggerSyntaxError(message, fql=source.text, position=position) from None
    return tree, parser, tokens


# --------------------------------------------------------------------------------------------
# Compiler: condition tree → closures (a port of validate())
# --------------------------------------------------------------------------------------------

_PATH_SEPARATORS = re.compile(r"[^[.\]]+")
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
        text = _js_string(expected)
        if operator == "=":
            return lambda actual: isinstance(actual, str) and actual == text
        return lambda actual: not (isinstance(actual, str) and actual == text)
    if operator in _NUMERIC_COMPARISONS:
        return _numeric_test(_NUMERIC_COMPARISONS[operator], _js_number(expected))
    if operator in _STRING_TESTS:
        return _string_test(_STRING_TESTS[operator], _js_string(expected))
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
            return compare(_int_as_double(actual), bound)
        return False

    return test


def _string_test(check: Callable[[str, str], bool], text: str) -> Callable[[Any], bool]:
    """Only strings qualify; missing values are false for the negated forms too."""
    if _has_surrogate(text):  # match() sliced a UTF-16 unit off: compare code units as JS does
        units = _to_utf16_units(text)
        return lambda actual: isinstance(actual, str) and check(_to_utf16_units(actual), units)
    return lambda actual: isinstance(actual, str) and check(actual, text)


def _getter(leaf: _Leaf, fql: str) -> Callable[[dict], Any]:
    """Where validate() reads the actual value; None stands for both null and undefined."""
    if leaf.kind in _TOP_LEVEL_FIELDS:
        key = _TOP_LEVEL_FIELDS[leaf.kind]
        return lambda event: event.get(key)
    root = _PATH_ROOTS[leaf.kind]
    if not leaf.name:
        return lambda event: None  # get(obj, "") returns undefined
    keys = tuple(_PATH_SEPARATORS.findall(leaf.name))
    if not keys:
        return _failing_getter(leaf, fql)
    if len(keys) == 1:
        return _single_key_getter(root, keys[0])
    return _path_getter(root, keys)


def _single_key_getter(root: str, key: str) -> Callable[[dict], Any]:
    inherited = _inherited_object_member(key)

    def get(event: dict) -> Any:
        container = event.get(root)
        if isinstance(container, dict):
            value = container.get(key, _MISSING)
            return inherited if value is _MISSING else value
        return None if container is None else _js_member(container, key)

    return get


def _path_getter(root: str, keys: tuple[str, ...]) -> Callable[[dict], Any]:
    def get(event: dict) -> Any:
        value = event.get(root)
        for key in keys:
            if isinstance(value, dict):
                found = value.get(key, _MISSING)
                value = _inherited_object_member(key) if found is _MISSING else found
            elif value is None:
                return None
            else:
                value = _js_member(value, key)
        return value

    return get


def _failing_getter(leaf: _Leaf, fql: str) -> Callable[[dict], Any]:
    message = (
        f"trigger `{_excerpt(fql)}`: the path `{leaf.name}` (position {leaf.position}) has no "
        "key between its separators; Segment's get() throws when it evaluates it"
    )

    def get(event: dict) -> Any:
        raise TriggerEvaluationError(message, fql=fql, position=leaf.position)

    return get


def _compile_node(node: _Node, fql: str) -> Predicate:
    """Closures for a condition tree; and/or short-circuit like Array.every/some."""
    if isinstance(node, _Group):
        children = tuple(_compile_node(child, fql) for child in node.children)
        return _all_of(children) if node.operator == "and" else _any_of(children)
    if isinstance(node, _EmptyGroup):
        return _empty_group(node, fql)
    get = _getter(node, fql)
    test = _value_test(node.operator, node.value)
    return lambda event: test(get(event))


def _all_of(children: tuple[Predicate, ...]) -> Predicate:
    if len(children) == 1:
        return children[0]
    if len(children) == 2:
        first, second = children
        return lambda event: first(event) and second(event)

    def all_of(event: dict) -> bool:
        return all(child(event) for child in children)

    return all_of


def _any_of(children: tuple[Predicate, ...]) -> Predicate:
    if len(children) == 1:
        return children[0]
    if len(children) == 2:
        first, second = children
        return lambda event: first(event) or second(event)

    def any_of(event: dict) -> bool:
        return any(child(event) for child in children)

    return any_of


def _empty_group(node: _EmptyGroup, fql: str) -> Predicate:
    message = (
        f"trigger `{_excerpt(fql)}`: the empty group `()` at position {node.position} has no "
        "condition; Segment's validate() throws when it reaches it"
    )

    def fail(event: dict) -> bool:
        raise TriggerEvaluationError(message, fql=fql, position=node.position)

    return fail


def _guarded(root: Predicate, fql: str) -> Predicate:
    """The public predicate: refuses non-dict events, never leaks another exception type."""

    def predicate(event: dict) -> bool:
        if not isinstance(event, dict):
            raise TriggerEvaluationError(
                f"trigger `{_excerpt(fql)}`: an event must be a JSON object (dict), "
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
                f"trigger `{_excerpt(fql)}`: evaluating the event failed: {exc!r}",
                fql=fql,
                position=None,
            ) from exc

    return predicate


def compile_trigger(fql: str) -> Predicate:
    """Compile a trigger once into a predicate ``event -> bool`` that matches as Segment does.

    Args:
        fql: the mapping's trigger (subscription FQL), e.g. ``type = "track"``.

    Returns:
        A function taking one event (a dict) and returning whether the trigger matches it.
        It raises :class:`TriggerEvaluationError` for a non-dict event and for the few triggers
        Segment parses but cannot evaluate (see that class).

    Raises:
        TriggerSyntaxError: Segment's parser rejects the trigger (it would match nothing).
    """
    if not isinstance(fql, str):
        raise TriggerSyntaxError(
            f"a trigger must be a string, got {type(fql).__name__} {fql!r}", fql=fql, position=None
        )
    tree, _, _ = _parse(_Source.of(fql))
    logger.debug("compiled trigger %r into %r", fql, tree)
    return _guarded(_compile_node(tree, fql), fql)


@functools.lru_cache(maxsize=4096)
def _compiled(fql: str) -> Predicate:
    return compile_trigger(fql)


def matches(fql: str, event: dict) -> bool:
    """Whether the trigger matches the event (compiled triggers are cached)."""
    if not isinstance(fql, str):
        return compile_trigger(fql)(event)  # raises TriggerSyntaxError
    return _compiled(fql)(event)


# --------------------------------------------------------------------------------------------
# Structured conditions (Segment's trigger UI) and the FQL its generator writes
# --------------------------------------------------------------------------------------------

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
OPERATORS = ("is", "is not", *_STRING_OPERATORS, *_VALUELESS_OPERATORS, *_NUMBER_OPERATORS)

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
_MAX_VALUE_LENGTH = _MAX_LITERAL_LENGTH - 1


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
        number = float(_int_as_double(value)) if isinstance(value, int) else value
    elif isinstance(value, str) and _JS_DECIMAL.fullmatch(value.strip()):
        number = float(value)
    return number if number is not None and math.isfinite(number) else None


def _text_problem(operator: str, value: Any) -> str | None:
    """Why a value cannot be wrapped in double quotes unchanged (None when it can)."""
    if not isinstance(value, str):
        return f"the value must be a string, got {type(value).__name__}"
    if '"' in value or "~" in value:
        return "the value cannot hold `\"` or `~` (Segment's UI refuses them)"
    if _has_surrogate(value):
        return "the value holds an unpaired surrogate"
    if len(_to_utf16_units(value)) >= _MAX_VALUE_LENGTH:
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

    def _leaf(self) -> _Leaf:
        """The condition as Segment's parser builds it from :func:`render_fql`'s text."""
        kind, name = _leaf_kind(self.field)
        if self.operator in _VALUELESS_OPERATORS:
            return _Leaf(kind, _VALUELESS_OPERATORS[self.operator][0], None, name)
        if self.operator in _NUMBER_OPERATORS:
            return _Leaf(kind, self.operator, self._number(), name)
        if self._is_numeric_is():
            operator = "number_equals" if self.operator == "is" else "number_not_equals"
            return _Leaf(kind, operator, self._number(), name)
        if self.operator in ("is", "is not"):
            return _Leaf(kind, "=" if self.operator == "is" else "!=", self.value, name)
        operator = _STRING_OPERATORS[self.operator][0]
        if operator.endswith("ends_with") and not self.value:
            # `match(x, "*")` reads as starts-with "" (the same truth value as ends-with "").
            operator = operator.replace("ends_with", "starts_with")
        return _Leaf(kind, operator, self.value, name)

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
        return _FIELD_KINDS[field_path], None
    root, _, name = field_path.partition(".")
    return _FIELD_KINDS[root], name


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
    tree = _Group(operator, tuple(condition._leaf() for condition in conditions.conditions))
    fql = render_fql(conditions)  # only used in error messages
    return _guarded(_compile_node(tree, fql), fql)


# --------------------------------------------------------------------------------------------
# Lint: triggers whose Segment meaning is surprising
# --------------------------------------------------------------------------------------------


def lint_trigger(fql: str) -> list[str]:
    """Warnings for a trigger whose Segment meaning is likely not what its author meant.

    Covers mixed ``and``/``or`` without parentheses, single-quoted strings, upper-case
    keywords, ``!(`` (ignored negation), fields and function arguments Segment drops, trailing
    or doubled conjunctions, empty groups and a few comparisons with surprising results.
    A trigger that does not parse yields one warning saying so. Each warning names the text.
    """
    if not isinstance(fql, str):
        return [f"a trigger must be a string, got {type(fql).__name__}"]
    source = _Source.of(fql)
    try:
        _, parser, tokens = _parse(source)
    except TriggerSyntaxError as exc:
        return [f"{exc.message}; Segment matches no event with it"]
    glued = {t.start for p, t in zip(tokens, tokens[1:], strict=False) if _is_exponent(p, t)}
    found = [(note.position, note.message) for note in parser.notes if note.position not in glued]
    found += _lint_tokens(source, tokens)
    found.sort(key=lambda item: item[0])
    return [message for _, message in found]


def _lint_tokens(source: _Source, tokens: list[_Token]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []

    def warn(token: _Token, message: str) -> None:
        found.append((token.start, f"{message} (position {source.position(token.start)})"))

    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        previous = tokens[index - 1] if index else None
        if token.kind == "string" and token.value.startswith("'"):
            warn(
                token,
                f"single-quoted {token.value} keeps its quotes in Segment and never "
                "matches; use double quotes",
            )
        elif token.kind == "ident" and _is_cased_keyword(token.value):
            warn(
                token,
                f"`{token.value}` is not a keyword (keywords are lower-case); Segment "
                "reads it as a plain word",
            )
        elif token.value == "!" and following is not None and following.kind == "parenleft":
            warn(token, "`!(` does not negate: Segment ignores the `!` before a group")
        elif previous is not None and _is_exponent(previous, token):
            warn(
                previous,
                f"`{source.snippet(previous)}{token.value}`: FQL numbers have no "
                f"exponent; Segment reads `{source.snippet(previous)}` and drops the rest",
            )
    for level in _levels(tokens):
        found += [(t.start, m) for t, m in _lint_conjunctions(source, level)]
    return found


def _is_exponent(previous: _Token, token: _Token) -> bool:
    """``1e3``: the lexer reads the number ``1`` and then the word ``e3``."""
    return previous.kind == "number" and token.kind == "ident" and previous.end == token.start


def _levels(tokens: list[_Token]) -> list[list[_Token]]:
    """Tokens per nesting level: the top level (groups left out) and each ``( … )`` group."""
    top: list[_Token] = []
    groups: list[list[_Token]] = []
    current = top
    for token in tokens:
        if token.kind == "parenleft":
            top.append(token)  # the group takes one condition's place at the outer level
            current = []
            groups.append(current)
        elif token.kind == "parenright":
            current = top
        elif token.kind != "eos":
            current.append(token)
    return [top, *groups]


def _lint_conjunctions(source: _Source, level: list[_Token]) -> list[tuple[_Token, str]]:
    found: list[tuple[_Token, str]] = []

    def where(token: _Token) -> str:
        return f"(position {source.position(token.start)})"

    conjunctions = [token for token in level if token.kind == "conditional"]
    if {token.value for token in conjunctions} == {"and", "or"}:
        last = conjunctions[-1]
        found.append(
            (
                conjunctions[0],
                f"`and` and `or` mixed without parentheses {where(conjunctions[0])}: Segment has "
                f"no precedence, the last conjunction (`{last.value}` {where(last)}) joins every "
                "condition at this level",
            )
        )
    for index, token in enumerate(level):
        if token.kind != "conditional":
            continue
        following = level[index + 1] if index + 1 < len(level) else None
        if index == 0 or following is None:
            found.append(
                (
                    token,
                    f"`{token.value}` {where(token)} joins nothing; Segment "
                    "ignores a leading or trailing conjunction",
                )
            )
        elif following.kind == "conditional":
            found.append(
                (
                    following,
                    f"`{token.value} {following.value}` {where(following)}: "
                    "a doubled conjunction; Segment ignores the extra one",
                )
            )
    return found
