"""Contract of ``acoustic_pipelines.actions.triggers`` (Segment subscription FQL triggers).

- ``compile_trigger(fql)`` parses once and returns a predicate ``event -> bool``. A trigger that
  Segment's parser rejects (Segment then silently matches no event) raises ``TriggerSyntaxError``
  carrying ``fql``, ``position`` (index of the offending character, or None) and ``message``.
- The predicate matches exactly the events Segment's ``validate()`` matches: every line of
  ``../shared/conformance/fql_vectors.jsonl`` is a test. Vectors expecting ``error_kind: parse``
  must raise ``TriggerSyntaxError`` from ``compile_trigger``; vectors expecting
  ``error_kind: runtime`` (Segment parsed the trigger but ``validate()`` threw) must compile and
  then raise ``TriggerEvaluationError`` for that event. The file holds no runtime case today;
  the runtime cases we know of (an empty group ``()``, a path made only of separators) are
  tested below from Segment's source.
- A compiled predicate raises nothing but ``TriggerEvaluationError``, whatever the event. An
  event that is not a dict always raises it (our choice: Segment returns false for
  ``undefined`` and throws for ``null``; a non-object event is a data error we surface).
- ``matches(fql, event)`` equals ``compile_trigger(fql)(event)`` and compiles each text once.
- Structured conditions: ``render_fql`` writes the FQL Segment's UI writes, and
  ``compile_conditions(g)(e) == compile_trigger(render_fql(g))(e)`` for every event. Invalid
  conditions raise ``InvalidConditionError`` (a ``ValueError``) naming the field and the value.
- ``lint_trigger`` never raises; each warning names the text it is about.

Expected values in the quirk tables are derived by hand from segment.md §4.2-4.3 and the
upstream parse-fql / fql-ts source, not from running this implementation.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from acoustic_pipelines.actions import triggers
from acoustic_pipelines.actions.triggers import (
    Condition,
    ConditionGroup,
    InvalidConditionError,
    TriggerEvaluationError,
    TriggerSyntaxError,
    compile_conditions,
    compile_trigger,
    lint_trigger,
    matches,
    render_fql,
)
from acoustic_pipelines.actions.triggers import lexer as fql_lexer

FQL_VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
FQL_VECTORS_FILE = FQL_VECTORS / "fql_vectors.jsonl"

# ---------------------------------------------------------------------------------------------
# Conformance vectors (Segment's implementation is the reference)
# ---------------------------------------------------------------------------------------------


def _vector_ids() -> list[Any]:
    """Vector ids read at collection time; one skipped case when the file is not there."""
    if not FQL_VECTORS_FILE.is_file():
        reason = f"conformance vectors not found at {FQL_VECTORS_FILE}"
        return [pytest.param("fql-vectors-missing", marks=pytest.mark.skip(reason=reason))]
    with FQL_VECTORS_FILE.open(encoding="utf-8") as lines:
        return [json.loads(line)["id"] for line in lines if line.strip()]


@pytest.fixture(scope="module")
def fql_vectors(conformance_dir: Path) -> dict[str, dict[str, Any]]:
    """Every trigger vector by id."""
    with (conformance_dir / "fql_vectors.jsonl").open(encoding="utf-8") as lines:
        vectors = [json.loads(line) for line in lines if line.strip()]
    return {vector["id"]: vector for vector in vectors}


@pytest.mark.parametrize("vector_id", _vector_ids())
def test_conformance_vector(vector_id: str, fql_vectors: dict[str, dict[str, Any]]) -> None:
    vector = fql_vectors[vector_id]
    fql, event, expected = vector["fql"], vector["event"], vector["expected"]
    if expected.get("error_kind") == "parse":
        with pytest.raises(TriggerSyntaxError):
            compile_trigger(fql)
        return
    predicate = compile_trigger(fql)
    if expected.get("error_kind") == "runtime":
        with pytest.raises(TriggerEvaluationError):
            predicate(event)
        return
    assert "match" in expected, f"unknown expectation {expected!r}"
    assert predicate(event) is expected["match"]
    assert matches(fql, event) is expected["match"]


# ---------------------------------------------------------------------------------------------
# Quirks of Segment's lexer, parser and validate() (hand-derived expectations)
# ---------------------------------------------------------------------------------------------

EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "name": "Checkout",
    "userId": "u1",
    "anonymousId": "a1",
    "messageId": "m1",
    "properties": {
        "total": 100,
        "price": "100",
        "ratio": 0.5,
        "zero": 0,
        "empty": "",
        "yes": True,
        "no": False,
        "nothing": None,
        "flag_text": "true",
        "sku": "APP-7",
        "email": "Ann@Example.com",
        "tags": ["a", "b"],
        "products": [{"sku": "P1"}],
        "product name": "Tee",
        "a.b": "dotted",
        "a": {"b": "nested"},
        "AND": "upper",
        "backslash": "a\\",
        "huge": 2**53 + 1,
    },
    "traits": {"plan": "pro"},
    "context": {"traits": {"email": "ctx@example.com"}, "page": {"path": "/p/1"}, "active": False},
}

Outcome = bool | type[Exception]

LEXER_QUIRKS: list[tuple[str, Outcome]] = [
    # Whitespace is space, tab and \n; \r between tokens is an invalid character ...
    ('type\t=\t"track"\nand\nevent = "Order Completed"', True),
    ('type = "track" \r\nand event = "Order Completed"', TriggerSyntaxError),
    # ... but a closing quote is only consumed before a terminator; otherwise it opens a new
    # string, so here Segment only sees `type = "track"` (the rest is two stray strings).
    ('type = "track"\r\nand event = "nope"', True),
    ('type = "track"and event = "nope"', True),
    # An identifier must be followed by whitespace, `=`, `!`, `.`, `(`, `,`, `]`, `)` or the end.
    ("properties.total>5", TriggerSyntaxError),
    ("properties.total=100", True),
    # `!=` (like `<=`, `>=`) needs a terminator after it.
    ("properties.total!=5", TriggerSyntaxError),
    ("properties.total != 5", True),
    # `\` escapes any character of an identifier; an escaped dot still splits the path.
    (r'properties.product\ name = "Tee"', True),
    (r'properties.a\.b = "dotted"', False),
    (r'properties.a\.b = "nested"', True),
    # Strings have no escapes: `"a\"` is a whole string (value a\), `b"` a stray one.
    (r'properties.backslash = "a\"b"', True),
    # Numbers: optional sign, one decimal point, no exponent, no leading `.`.
    ("properties.total > +99", True),
    ("properties.total > -1", True),
    ("properties.ratio = 0.5", True),
    ("properties.ratio = .5", False),  # `.` becomes the (string) value
    ("properties.total > 1e3", True),  # reads `> 1`, then a stray word `e3`
    ("properties.total > 5.", TriggerSyntaxError),
    ("properties.total > 1.2.3", TriggerSyntaxError),
    # Keywords are lower-case and need a terminator after them.
    ('type = "track" AND event = "nope"', False),  # AND is a word; the group stays `and`
    ('type = "nope" OR type = "track"', False),
    ('type = "nope" or type = "track"', True),
    ('type = "nope" or(event = "Order Completed")', False),  # `or(` is a word, dropped
    ('type = "nope" or (event = "Order Completed")', True),
    ('properties.AND = "upper"', True),
    ("properties.nothing = NULL", False),  # compares with the text "NULL"
    ("properties.nothing = null", True),
    # `!` is an operator only right before a letter or `(`.
    ('! contains(event, "Order")', TriggerSyntaxError),
    # Brackets are not paths; an index needs escaping to be read as a key.
    ('properties.products[0].sku = "P1"', TriggerSyntaxError),
    ('properties.products.0.sku = "P1"', False),  # `.0.` lexes as a number: operator `.`
    (r'properties.products.\0.sku = "P1"', True),
    (r'properties.products\[0\].sku = "P1"', True),
    ('type = "track', TriggerSyntaxError),
    ('type = "track" & event = "x"', TriggerSyntaxError),
]

GRAMMAR_QUIRKS: list[tuple[str, Outcome]] = [
    # traits.* reads event.traits, not context.traits.
    ("traits.email != null", False),
    ("context.traits.email != null", True),
    # Fields other than type/event/name/userId/properties/traits/context are dropped.
    ('anonymousId = "zzz" and type = "track"', True),
    ('anonymousId = "a1"', TriggerSyntaxError),
    ("messageId != null", TriggerSyntaxError),
    # `!= null` / `= null` are exists / not exists (0, "" and false exist).
    ("properties.nothing != null", False),
    ("properties.zero != null", True),
    ("properties.empty != null", True),
    ("properties.no != null", True),
    ("properties.missing = null", True),
    ("name != null", True),
    ("userId = null", False),
    # ... but on type/event they compare with the text "null".
    ("type = null", False),
    ("type != null", True),
    ("event = null", False),
    # Bare true/false with `=` are is-true/is-false (exact booleans); quoted ones are text.
    ("properties.yes = true", True),
    ("properties.flag_text = true", False),
    ('properties.flag_text = "true"', True),
    ("userId = true", False),
    ("context.active = false", True),
    # `!=` with bare true/false compares with the text: true for booleans either way.
    ("properties.yes != true", True),
    ("properties.no != false", True),
    # Bare numbers are number (not) equals; quoted ones are text.
    ("properties.total = 100", True),
    ("properties.price = 100", False),
    ('properties.total = "100"', False),
    ('properties.price = "100"', True),
    ("properties.missing != 5", False),  # number not equals: missing is false
    ('properties.missing != "x"', True),  # text not equals: missing is true
    # contains() / match(): not on `type`; strings only; match knows `x*` and `*x` only.
    ('contains(event, "Order")', True),
    ('contains(event, "order")', False),
    ('contains(type, "tr")', TriggerSyntaxError),
    ('contains(properties.total, "10")', False),
    ('!contains(properties.missing, "x")', False),
    ('!contains(event, "Refund")', True),
    ('match(event, "Order*")', True),
    ('match(event, "*Completed")', True),
    ('match(event, "Or*ed")', False),  # ends with "r*ed"
    ('match(event, "XOrder Completed")', True),  # no `*`: the first character is dropped
    ('match(event, "Order Complete?")', False),  # `?` is literal
    ('match(event, "*")', True),
    ('!match(event, "Order*")', False),
    ('!match(properties.missing, "x*")', False),
    ('match(properties.sku, "APP-*")', True),
    ("match(context.page.path, '/p/*')", False),  # single quotes are kept: ends with "p/*'"
    # No precedence: the last conjunction of a level applies to all its conditions.
    ('type = "nope" and type = "nope" or type = "track"', True),
    ('type = "track" or event = "nope" and type = "nope"', False),
    ('(type = "nope" or type = "track") and userId != null', True),
    ('((type = "track"))', TriggerSyntaxError),
    ('!(type = "track")', True),  # the `!` is ignored
    # Leading, trailing and doubled conjunctions are ignored.
    ('type = "track" and', True),
    ('and type = "track"', True),
    ('type = "track" and and event = "Order Completed"', True),
    ("type", TriggerSyntaxError),
    ("", TriggerSyntaxError),
    ("   ", TriggerSyntaxError),
    ('type = "track" (', TriggerSyntaxError),
    ("()", TriggerSyntaxError),
    # parseFql looks fields up in a plain JS object: inherited names swallow two tokens.
    ('constructor = 1 and type = "track"', True),
]

EVALUATION_QUIRKS: list[tuple[str, Outcome]] = [
    ("properties.price > 5", False),  # numeric strings never compare
    ('properties.total > "99"', True),  # the right side may be quoted
    ("properties.yes > 0", False),  # booleans are not numbers
    ("properties.total >= 100", True),
    ("properties.total <= 99.5", False),
    ("properties.ratio < 1", True),
    ('event = "order completed"', False),  # case-sensitive
    ('userId != "u1"', False),
    ('name = "Checkout"', True),
    ("properties.tags.length = 2", True),  # JS arrays and strings have a length
    ("properties.sku.length > 3", True),
    ("properties.zero.anything = 0", True),  # get() keeps walking with a falsy value
    ('properties.empty.x = ""', True),
    ("properties.nothing.x = null", True),
    ("properties.huge = 9007199254740992", True),  # JSON numbers are doubles: 2**53 + 1 → 2**53
    ("properties.constructor != null", True),  # inherited JS member
]


@pytest.mark.parametrize(("fql", "outcome"), LEXER_QUIRKS + GRAMMAR_QUIRKS + EVALUATION_QUIRKS)
def test_quirk(fql: str, outcome: Outcome) -> None:
    if outcome is TriggerSyntaxError:
        with pytest.raises(TriggerSyntaxError):
            compile_trigger(fql)
    else:
        assert compile_trigger(fql)(EVENT) is outcome


@pytest.mark.parametrize(
    ("fql", "event", "expected"),
    [
        ("type = 1.50", {"type": "1.5"}, True),  # numbers become text as JavaScript prints them
        ("type = 1.50", {"type": "1.50"}, False),
        ("type = 007", {"type": "7"}, True),
        ("type = ", {"type": "eos"}, True),  # a missing value is the text "eos"
        ("type = ", {"type": "track"}, False),
        ("type = 'track'", {"type": "'track'"}, True),  # single quotes stay in the value
        ("type = 'track'", {"type": "track"}, False),
        ("event != null", {"type": "track"}, True),  # true for every event
        ("properties.total = 5", {"properties": {"total": 5.0}}, True),
        ("properties.total = 5", {"properties": {"total": True}}, False),
        ('properties.a = "x"', {"properties": "not an object"}, False),
    ],
)
def test_quirk_with_event(fql: str, event: dict[str, Any], expected: bool) -> None:
    assert compile_trigger(fql)(event) is expected


@pytest.mark.parametrize(
    ("fql", "outcome"),
    [
        # Segment keeps `()` as an undefined child; validate() throws when it reaches it.
        ('() or type = "track"', TriggerEvaluationError),
        ('type = "track" or ()', True),
        ('type = "nope" or ()', TriggerEvaluationError),
        ('type = "nope" and ()', False),
        # A path of separators only: get() throws (`null.reduce`).
        (r'properties.\. = "x"', TriggerEvaluationError),
        (r'type = "nope" and properties.\. = "x"', False),
        # An empty path is simply undefined.
        (r"properties\. = null", True),
    ],
)
def test_runtime_errors_follow_short_circuits(fql: str, outcome: Outcome) -> None:
    predicate = compile_trigger(fql)
    if outcome is TriggerEvaluationError:
        with pytest.raises(TriggerEvaluationError) as raised:
            predicate(EVENT)
        assert raised.value.fql == fql
    else:
        assert predicate(EVENT) is outcome


@pytest.mark.parametrize("event", [None, [], ["type"], "track", 5, True])
def test_non_dict_events_raise(event: Any) -> None:
    with pytest.raises(TriggerEvaluationError, match="JSON object"):
        compile_trigger('type = "track"')(event)
    with pytest.raises(TriggerEvaluationError):
        matches("event != null", event)


@pytest.mark.parametrize(
    ("fql", "position", "named"),
    [
        ('type = "track" & event = "x"', 15, "`&`"),
        ("properties.total>5", 16, "`>`"),
        ('type = "track', 7, "unterminated"),
        ('type = "😀" & x', 11, "`&`"),  # positions count characters, not UTF-16 units
        ('anonymousId = "a_42"', None, "anonymousId"),
        ("type", 0, "`type`"),
        ('((type = "track"))', 1, "`(`"),
        ("", None, "empty"),
    ],
)
def test_syntax_error_names_problem_and_position(fql: str, position: int | None, named: str):
    with pytest.raises(TriggerSyntaxError) as raised:
        compile_trigger(fql)
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.fql == fql
    assert error.position == position
    assert named in error.message
    assert str(error) == error.message


def test_non_string_trigger_is_a_syntax_error() -> None:
    with pytest.raises(TriggerSyntaxError):
        compile_trigger(None)  # type: ignore[arg-type]
    with pytest.raises(TriggerSyntaxError):
        matches(["type"], EVENT)  # type: ignore[arg-type]


def test_evaluation_does_no_parsing_and_matches_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    lexed: list[str] = []
    real_lex = fql_lexer.Lexer.lex

    def counting_lex(self: fql_lexer.Lexer) -> list[Any]:
        lexed.append(self.units)
        return real_lex(self)

    monkeypatch.setattr(fql_lexer.Lexer, "lex", counting_lex)
    # A text no other test compiled, so matches() cannot find it in its cache yet.
    fql = f'type = "track" and properties.total > 50 and userId != "{uuid.uuid4()}"'
    predicate = compile_trigger(fql)
    assert len(lexed) == 1
    for _ in range(50):
        assert predicate(EVENT) is True
    assert len(lexed) == 1
    assert matches(fql, EVENT) is True
    assert matches(fql, EVENT) is True
    assert len(lexed) == 2  # one more compile for matches(), then served from the cache


# ---------------------------------------------------------------------------------------------
# Robustness (hypothesis)
# ---------------------------------------------------------------------------------------------

FQL_TOKENS = [
    "type", "event", "name", "userId", "properties.total", "properties.a.b", "properties",
    "traits.email", "context.page.path", "anonymousId", "constructor", "=", "!=", "<", "<=",
    ">", ">=", "!", "and", "or", "AND", "null", "NULL", "true", "false", '"track"', '"100"',
    "'x'", '"a*"', '"*b"', '""', "5", "-3.5", "+1", "1e3", "1.", ".", ",", "(", ")", "[", "]",
    "contains", "match", "\\", "\\ ", "\r", '"', "'", "*", "😀", "é", "\t", "\n", "x",
]  # fmt: skip

token_soup = st.lists(st.sampled_from(FQL_TOKENS), max_size=14).flatmap(
    lambda parts: st.sampled_from([" ".join(parts), "".join(parts)])
)
fql_text = st.text(max_size=40) | token_soup
# Mostly well-formed conditions with some noise, so that most examples parse.
FIELDS = [
    "type", "event", "name", "userId", "properties.total", "properties.tags.length",
    "traits.email", "context.page.path", "properties.\\.", "anonymousId",
]  # fmt: skip
COMPARISONS = ["=", "!=", "<", "<=", ">", ">=", "and"]
VALUES = ['"track"', "5", "-2.5", "null", "true", "false", "NULL", "'x'", '"100"', "x", ""]
condition_texts = st.one_of(
    st.tuples(st.sampled_from(FIELDS), st.sampled_from(COMPARISONS), st.sampled_from(VALUES)).map(
        " ".join
    ),
    st.tuples(
        st.sampled_from(["contains", "match", "!contains", "!match"]),
        st.sampled_from(FIELDS),
        st.sampled_from(['"a*"', '"*b"', '"Order"', "5", "'x'"]),
    ).map(lambda parts: f"{parts[0]}({parts[1]}, {parts[2]})"),
    st.sampled_from(["()", '!(type = "track")', "(event != null or userId = null)"]),
)
condition_soup = st.lists(condition_texts, min_size=1, max_size=4).flatmap(
    lambda parts: st.lists(
        st.sampled_from([" and ", " or ", " AND ", " and and "]),
        min_size=len(parts) - 1,
        max_size=len(parts) - 1,
    ).map(lambda joins: parts[0] + "".join(j + p for j, p in zip(joins, parts[1:], strict=True)))
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)
property_keys = st.sampled_from(["total", "a", "b", "email", "length", "0", "constructor"])
property_bags = st.dictionaries(property_keys | st.text(max_size=4), json_values, max_size=5)
dict_events = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page"]) | json_values,
        "event": st.text(max_size=6) | json_values,
        "name": json_values,
        "userId": json_values,
        "properties": property_bags | json_values,
        "traits": property_bags,
        "context": st.fixed_dictionaries({}, optional={"page": property_bags}) | json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(fql=fql_text | condition_soup)
def test_compile_raises_only_syntax_errors(fql: str) -> None:
    try:
        predicate = compile_trigger(fql)
    except TriggerSyntaxError as error:
        assert error.fql == fql
        assert error.message
        assert error.position is None or 0 <= error.position <= len(fql)
    else:
        assert callable(predicate)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(fql=condition_soup | token_soup, event=dict_events | json_values)
def test_evaluation_raises_only_evaluation_errors(fql: str, event: Any) -> None:
    try:
        predicate = compile_trigger(fql)
    except TriggerSyntaxError:
        reject()
    try:
        result = predicate(event)
    except TriggerEvaluationError:
        return
    assert isinstance(event, dict)
    assert isinstance(result, bool)


VALID_TRIGGERS = [
    case for case, outcome in GRAMMAR_QUIRKS + EVALUATION_QUIRKS if outcome in (True, False)
]


@settings(max_examples=300, deadline=None)
@given(fql=st.sampled_from(VALID_TRIGGERS), event=dict_events)
def test_dict_events_always_give_a_bool(fql: str, event: dict[str, Any]) -> None:
    assert isinstance(compile_trigger(fql)(event), bool)


@settings(max_examples=300, deadline=None)
@given(fql=fql_text)
def test_lint_never_raises(fql: str) -> None:
    warnings = lint_trigger(fql)
    assert isinstance(warnings, list)
    assert all(isinstance(warning, str) and warning for warning in warnings)


# ---------------------------------------------------------------------------------------------
# lint_trigger
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fql", "named"),
    [
        ('type = "a" and event = "b" or userId != null', ["`and` and `or` mixed", "`or`"]),
        ("type = 'track'", ["'track'", "never matches"]),
        ('type = "track" AND event = "x"', ["`AND`"]),
        ('type = "nope" OR type = "track"', ["`OR`"]),
        ("properties.x = NULL", ["`NULL`"]),
        ('!(type = "track")', ["`!(`"]),
        ('anonymousId = "a" and type = "track"', ["`anonymousId`"]),
        ('messageId != null and type = "track"', ["`messageId`"]),
        ('contains(anonymousId, "x") and type = "t"', ["`anonymousId`"]),
        ('type = "track" and', ["`and`", "joins nothing"]),
        ('and type = "track"', ["`and`", "joins nothing"]),
        ('type = "track" and and event = "x"', ["`and and`"]),
        ("properties.total > 1e3", ["`1e3`"]),
        ("event != null", ["`event !=`", "null"]),
        ("properties.flag != true", ["`properties.flag !=`"]),
        ('() or type = "track"', ["`()`"]),
    ],
)
def test_lint_names_the_surprise(fql: str, named: list[str]) -> None:
    warnings = lint_trigger(fql)
    assert warnings, f"no warning for {fql!r}"
    text = "\n".join(warnings)
    for part in named:
        assert part in text


@pytest.mark.parametrize(
    "fql",
    [
        'type = "track"',
        'type = "track" and properties.total > 5',
        '(type = "a" or type = "b") and event = "x"',
        'contains(event, "Order") or match(properties.sku, "APP-*")',
        "properties.AND = true",
    ],
)
def test_lint_is_quiet_on_plain_triggers(fql: str) -> None:
    assert lint_trigger(fql) == []


def test_lint_reports_an_unparseable_trigger_once() -> None:
    warnings = lint_trigger('type = "track" & x')
    assert len(warnings) == 1
    assert "not valid FQL" in warnings[0] and "`&`" in warnings[0]


# ---------------------------------------------------------------------------------------------
# Structured conditions (Segment's trigger UI)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "fql"),
    [
        (Condition("type", "is", "track"), 'type = "track"'),
        (Condition("type", "is not", "track"), 'type != "track"'),
        (Condition("event", "is", "Order Completed"), 'event = "Order Completed"'),
        (Condition("event", "is not", "X"), 'event != "X"'),
        (Condition("event", "contains", "Order"), 'contains(event, "Order")'),
        (Condition("event", "does not contain", "Order"), '!contains(event, "Order")'),
        (Condition("event", "starts with", "Order"), 'match(event, "Order*")'),
        (Condition("event", "does not start with", "Order"), '!match(event, "Order*")'),
        (Condition("event", "ends with", "Completed"), 'match(event, "*Completed")'),
        (Condition("event", "does not end with", "Completed"), '!match(event, "*Completed")'),
        (Condition("name", "exists"), "name != null"),
        (Condition("userId", "does not exist"), "userId = null"),
        (Condition("userId", "is", "u1"), 'userId = "u1"'),
        (Condition("properties.plan", "is", "pro"), 'properties.plan = "pro"'),
        (Condition("properties.plan", "is not", "pro"), 'properties.plan != "pro"'),
        (Condition("properties.total", "is", 5), "properties.total = 5"),
        (Condition("properties.total", "is not", 5), "properties.total != 5"),
        (Condition("properties.total", "<", 5), "properties.total < 5"),
        (Condition("properties.total", "<=", 5), "properties.total <= 5"),
        (Condition("properties.total", ">", "10"), "properties.total > 10"),
        (Condition("properties.total", ">=", 2.5), "properties.total >= 2.5"),
        (Condition("properties.ratio", "<", 1e-7), "properties.ratio < 0.0000001"),
        (Condition("properties.big", ">", 1e21), "properties.big > 1000000000000000000000"),
        (Condition("properties.email", "exists"), "properties.email != null"),
        (Condition("properties.email", "does not exist"), "properties.email = null"),
        (Condition("properties.vip", "is true"), "properties.vip = true"),
        (Condition("properties.vip", "is false"), "properties.vip = false"),
        (Condition("traits.address.city", "is", "Berlin"), 'traits.address.city = "Berlin"'),
        (Condition("context.page.path", "starts with", "/p/"), 'match(context.page.path, "/p/*")'),
        (Condition("properties.product name", "is", "Tee"), r'properties.product\ name = "Tee"'),
        (Condition("properties.prénom", "is", "Zoë"), r'properties.pr\énom = "Zoë"'),
        (Condition("properties.1st", "exists"), r"properties.\1st != null"),
        (Condition("properties.and", "exists"), r"properties.\and != null"),
        (Condition("properties.first-name", "is", ""), 'properties.first-name = ""'),
    ],
)
def test_render_fql_per_operator(condition: Condition, fql: str) -> None:
    assert render_fql(condition) == fql
    compile_trigger(fql)  # what we write, Segment parses


def test_render_fql_groups() -> None:
    all_of = ConditionGroup(
        "all", (Condition("type", "is", "track"), Condition("properties.email", "exists"))
    )
    any_of = ConditionGroup(
        "any",
        [Condition("event", "is", "Order Completed"), Condition("event", "is", "Checkout Started")],
    )
    assert render_fql(all_of) == 'type = "track" and properties.email != null'
    assert render_fql(any_of) == 'event = "Order Completed" or event = "Checkout Started"'
    assert isinstance(any_of.conditions, tuple)
    assert compile_conditions(all_of)(EVENT) is True
    assert compile_conditions(all_of)({"type": "track", "properties": {}}) is False
    assert compile_conditions(any_of)(EVENT) is True


@pytest.mark.parametrize(
    ("field", "operator", "value"),
    [
        ("anonymousId", "is", "a1"),  # not a field triggers can test
        ("properties", "exists", None),  # a path needs a key
        ("properties.", "is", "x"),
        ("properties.a..b", "is", "x"),
        ("properties.a[0]", "is", "x"),
        ("properties.😀", "exists", None),
        ("type", "contains", "tr"),  # the UI offers is / is not only
        ("event", "exists", None),  # `event != null` would be a text compare
        ("name", "is true", None),
        ("event", "<", 5),
        ("event", "equals", "x"),  # unknown operator
        ("event", "is", 'say "hi"'),
        ("event", "is", "a~b"),
        ("event", "ends with", "a*"),
        ("type", "is", 5),
        ("properties.total", "<", "ten"),
        ("properties.total", "<", True),
        ("properties.total", "<", float("nan")),
        ("properties.total", "is", True),
        ("properties.x", "exists", "yes"),
    ],
)
def test_invalid_conditions_name_field_and_value(field: str, operator: str, value: Any) -> None:
    with pytest.raises(InvalidConditionError) as raised:
        Condition(field, operator, value)
    error = raised.value
    assert isinstance(error, ValueError)
    assert error.field == field
    assert error.value is value or error.value == value
    assert field in str(error)
    assert repr(value) in str(error)


@pytest.mark.parametrize(
    ("match", "conditions"),
    [("all", ()), ("some", (Condition("type", "is", "track"),)), ("any", ("type = x",))],
)
def test_invalid_condition_groups(match: Any, conditions: Any) -> None:
    with pytest.raises(InvalidConditionError):
        ConditionGroup(match, conditions)


PATH_KEYS = st.sampled_from(
    ["total", "email", "a", "b", "product name", "1st", "-x", "and", "or", "null", "NULL",
     "prénom", "length", "constructor", 'q"', "x\\y", "tab\t"]
) | st.text(
    alphabet=st.characters(max_codepoint=0xFFFF, exclude_characters=".[]"), min_size=1, max_size=5
)  # fmt: skip
TEXT_VALUES = st.text(
    alphabet=st.characters(exclude_characters='"~'), max_size=6
) | st.sampled_from(["Order", "Order Completed", "pro", "", "*", "a*b", "null", "true"])
NUMBER_VALUES = st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False)
ALL_OPERATORS = list(triggers.OPERATORS)


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    """Any condition Segment's UI can build, on fields an event strategy can fill."""
    field = draw(st.sampled_from(["type", "event", "name", "userId", "path"]))
    if field == "path":
        root = draw(st.sampled_from(["properties", "traits", "context"]))
        field = ".".join([root, *draw(st.lists(PATH_KEYS, min_size=1, max_size=3))])
    operator = draw(st.sampled_from(ALL_OPERATORS))
    if operator in ("exists", "does not exist", "is true", "is false"):
        value = None
    elif operator in ("<", "<=", ">", ">="):
        value = draw(NUMBER_VALUES)
    else:
        value = draw(TEXT_VALUES | NUMBER_VALUES)
    try:
        return Condition(field, operator, value)
    except InvalidConditionError:
        reject()


def _set_path(event: dict[str, Any], field: str, value: Any) -> None:
    """Put a value at a condition's field, creating objects along the dot path."""
    *parents, last = field.split(".")
    target = event
    for key in parents:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[last] = value


@st.composite
def groups_and_events(draw: st.DrawFn) -> tuple[ConditionGroup, dict[str, Any]]:
    group = ConditionGroup(
        draw(st.sampled_from(["all", "any"])),
        tuple(draw(st.lists(conditions(), min_size=1, max_size=3))),
    )
    event = draw(dict_events)
    for condition in group.conditions:
        value = condition.value
        candidates = [value, None, True, False, json_values, str(value), 0]
        if isinstance(value, str) and value:
            candidates += [value + "x", "x" + value, value[1:]]
        choice = draw(st.sampled_from(candidates + ["absent"]))
        if choice == "absent":
            continue
        if choice is json_values:
            choice = draw(json_values)
        _set_path(event, condition.field, choice)
    return group, event


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=groups_and_events())
def test_structured_conditions_match_their_rendered_fql(
    case: tuple[ConditionGroup, dict[str, Any]],
) -> None:
    group, event = case
    assert compile_conditions(group)(event) == compile_trigger(render_fql(group))(event)
