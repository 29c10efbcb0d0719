"""FQL lexer: a port of ``@segment/fql-ts`` 1.10.1, quirks included, on UTF-16 code units.

:func:`lex` turns a trigger into :class:`Token` objects (or raises :class:`LexError`);
:func:`join_paths` then glues ``properties . a . b`` into one identifier as parseFql does.
:class:`Source` keeps the trigger beside its UTF-16 code units, which is what the ported
lexer reads, and maps code-unit indexes back to character positions for messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from acoustic_pipelines.actions.js_values import (
    has_surrogate,
    js_from_utf16_units,
    js_utf16_units,
)

__all__ = ["MAX_LITERAL_LENGTH", "LexError", "Lexer", "Source", "Token", "join_paths", "lex"]

MAX_LITERAL_LENGTH: Final = 100_000  # fql-ts refuses identifiers, strings and numbers this long


@dataclass(frozen=True, slots=True)
class Token:
    """One lexed token; ``start``/``end`` index UTF-16 code units of the trigger."""

    kind: str  # ident dot operator conditional string number null brackleft brackright
    #            parenleft parenright comma eos
    value: str
    start: int  # index of the first UTF-16 code unit in the trigger
    end: int


class LexError(Exception):
    """fql-ts's lexer refuses the trigger; ``position`` is a UTF-16 code-unit index."""

    def __init__(self, message: str, position: int) -> None:
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


def _printable(units: str) -> str:
    """Text for a message: surrogate pairs joined, lone surrogates written as ``\\udXXX``."""
    text = js_from_utf16_units(units)
    if not has_surrogate(text):
        return text
    return "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


class Lexer:
    """Character-by-character port of fql-ts's Lexer; ``None`` stands for end of input."""

    def __init__(self, units: str) -> None:
        self.units = units
        self.pos = 0

    def next(self) -> str | None:
        """Consume and return the next code unit (None at the end)."""
        if self.pos >= len(self.units):
            return None
        char = self.units[self.pos]
        self.pos += 1
        return char

    def peek(self) -> str | None:
        """Return the next code unit without consuming it (None at the end)."""
        return self.units[self.pos] if self.pos < len(self.units) else None

    def describe(self, index: int) -> str:
        """The character at ``index`` for an error message (a surrogate pair shown whole)."""
        if index >= len(self.units):
            return "the end of the trigger"
        char = js_from_utf16_units(self.units[index : index + 2])[0]
        shown = char if char.isprintable() else repr(char)[1:-1]
        return f"`{shown}` (U+{ord(char):04X})"

    def backup(self, count: int) -> None:
        """Step back ``count`` code units (never before the start)."""
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

    def lex(self) -> list[Token]:
        """Return every token up to and including ``eos``, or raise :class:`LexError`."""
        tokens: list[Token] = []
        while True:
            start = self.pos
            char = self.next()
            if char is None:
                tokens.append(Token("eos", "eos", start, start))
                return tokens
            if char in (" ", "\t", "\n"):
                continue
            tokens.append(self._token(char, start))

    def _token(self, char: str, start: int) -> Token:
        if char == "!" and (_is_alpha(self.peek()) or self.peek() == "("):
            return Token("operator", "!", start, self.pos)
        if _is_alpha(char) or char in ("!", "=", ">", "<", "\\", "_"):
            kind, value = self._operator_or_word(char, start)
        elif _is_digit(char) or char in ("-", "+"):
            kind, value = "number", self._number(char)
        elif char in ('"', "'"):
            kind, value = "string", self._string(char, start)
        elif char in _SINGLE_CHAR_TOKENS:
            kind, value = _SINGLE_CHAR_TOKENS[char], char
        else:
            raise LexError(f"invalid character {self.describe(start)}", start)
        return Token(kind, value, start, self.pos)

    def _string(self, quote: str, start: int) -> str:
        content = []
        while self.peek() != quote:
            char = self.next()
            if char is None:
                raise LexError("unterminated string", start)
            content.append(char)
            if len(content) >= MAX_LITERAL_LENGTH:
                raise LexError("unreasonably long string", start)
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
                    raise LexError("a number ends with a decimal point", self.pos - 1)
                if is_decimal:
                    raise LexError("a number has two decimal points", self.pos - 1)
                is_decimal = True
            if len(text) >= MAX_LITERAL_LENGTH:
                raise LexError("unreasonably long number", self.pos)
            coming = self.peek()
        return first + text

    def _operator_or_word(self, char: str, start: int) -> tuple[str, str]:
        if char == "=":
            return "operator", "="
        if char == "!":
            if self.accept("="):
                return "operator", "!="
            raise LexError(
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
                    raise LexError("`\\` at the end of the trigger escapes nothing", self.pos - 1)
                char = self.next()
            chars.append(char or "")
            if len(chars) >= MAX_LITERAL_LENGTH:
                raise LexError("unreasonably long identifier", self.pos)
            if not _is_ident_char(self.peek()):
                break
            char = self.next()
        coming = self.peek()
        if not (_is_terminator(coming) or coming in (".", "(", "=", "!")):
            hint = "; put a space before `<` and `>`" if coming in ("<", ">") else ""
            name = _printable("".join(chars))
            raise LexError(
                f"identifier `{name}` is followed by {self.describe(self.pos)}{hint}", self.pos
            )
        return "".join(chars)


@dataclass(frozen=True)
class Source:
    """A trigger and the same text as UTF-16 code units (what the ported lexer reads)."""

    text: str
    units: str

    @classmethod
    def of(cls, text: str) -> Source:
        """Return the source of a trigger text."""
        return cls(text, js_utf16_units(text))

    def position(self, unit_index: int | None) -> int | None:
        """Index in ``text`` of the code unit at ``unit_index``."""
        if unit_index is None or self.units is self.text or self.units == self.text:
            return unit_index
        if 0 < unit_index < len(self.units) and "\udc00" <= self.units[unit_index] <= "\udfff":
            unit_index -= 1  # the second half of a surrogate pair: point at the character
        return len(js_from_utf16_units(self.units[:unit_index]))

    def snippet(self, token: Token) -> str:
        """The trigger text a token was read from."""
        return js_from_utf16_units(self.units[token.start : token.end])


def lex(source: Source) -> list[Token]:
    """Tokens of a trigger (values as Python strings), or :class:`LexError`."""
    tokens = Lexer(source.units).lex()
    if source.units == source.text:
        return tokens
    return [Token(t.kind, js_from_utf16_units(t.value), t.start, t.end) for t in tokens]


def join_paths(tokens: list[Token]) -> list[Token]:
    """parseFql's normalize(): ``ident . ident`` becomes one ident (``properties.a.b``)."""
    joined: list[Token] = []
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
            joined.append(Token("ident", value, previous.start, following.end))
            index += 2
        else:
            joined.append(current)
            index += 1
    return joined
