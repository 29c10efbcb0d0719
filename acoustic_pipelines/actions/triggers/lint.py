"""FQL lint: warnings for triggers whose Segment meaning is likely not what their author meant.

:func:`lint_trigger` merges the parser's notes (what Segment silently drops) with checks on the
tokens: single quotes, upper-case keywords, ``!(``, number exponents, and conjunctions that are
mixed, leading, trailing or doubled at one nesting level.
"""

from __future__ import annotations

from acoustic_pipelines.actions.triggers.errors import TriggerSyntaxError
from acoustic_pipelines.actions.triggers.lexer import Source, Token
from acoustic_pipelines.actions.triggers.parser import is_cased_keyword, parse_trigger

__all__ = ["lint_trigger"]


def lint_trigger(fql: str) -> list[str]:
    """Warnings for a trigger whose Segment meaning is likely not what its author meant.

    Covers mixed ``and``/``or`` without parentheses, single-quoted strings, upper-case
    keywords, ``!(`` (ignored negation), fields and function arguments Segment drops, trailing
    or doubled conjunctions, empty groups and a few comparisons with surprising results.
    A trigger that does not parse yields one warning saying so. Each warning names the text.
    """
    if not isinstance(fql, str):
        return [f"a trigger must be a string, got {type(fql).__name__}"]
    source = Source.of(fql)
    try:
        parsed = parse_trigger(source)
    except TriggerSyntaxError as exc:
        return [f"{exc.message}; Segment matches no event with it"]
    tokens = parsed.tokens
    glued = {t.start for p, t in zip(tokens, tokens[1:], strict=False) if _is_exponent(p, t)}
    found = [(note.position, note.message) for note in parsed.notes if note.position not in glued]
    found += _lint_tokens(source, tokens)
    found.sort(key=lambda item: item[0])
    return [message for _, message in found]


def _lint_tokens(source: Source, tokens: list[Token]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []

    def warn(token: Token, message: str) -> None:
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
        elif token.kind == "ident" and is_cased_keyword(token.value):
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


def _is_exponent(previous: Token, token: Token) -> bool:
    """``1e3``: the lexer reads the number ``1`` and then the word ``e3``."""
    return previous.kind == "number" and token.kind == "ident" and previous.end == token.start


def _levels(tokens: list[Token]) -> list[list[Token]]:
    """Tokens per nesting level: the top level (groups left out) and each ``( … )`` group."""
    top: list[Token] = []
    groups: list[list[Token]] = []
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


def _lint_conjunctions(source: Source, level: list[Token]) -> list[tuple[Token, str]]:
    found: list[tuple[Token, str]] = []

    def where(token: Token) -> str:
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
