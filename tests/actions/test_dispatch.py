"""Contract of `actions/triggers/dispatch.py` and `trigger_guard`: running only the candidates.

- `trigger_guard(compile_trigger(fql))` is `(field, text)` only when the trigger is false for every
  plain dict whose top-level `field` is not the string `text`: checked on every conformance
  vector's trigger, on the vector's event and on that event with the field changed or removed.
- `GuardedRules(rules).candidates(event)` keeps the rules' order and leaves out only rules whose
  trigger is false for the event: the matching rules are the same as with every rule evaluated,
  for the conformance triggers together and for generated events.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acoustic_pipelines.actions.triggers import (
    GuardedRules,
    TriggerError,
    compile_trigger,
    trigger_guard,
    trigger_guards,
)
from tests.conformance import CONFORMANCE

VECTORS_FILE = CONFORMANCE / "fql_vectors.jsonl"
VECTORS = (
    [json.loads(line) for line in VECTORS_FILE.read_text(encoding="utf-8").splitlines() if line]
    if VECTORS_FILE.is_file()
    else []
)
COMPILED = []
for _vector in VECTORS:
    with contextlib.suppress(TriggerError):
        COMPILED.append((_vector, compile_trigger(_vector["fql"])))


def outcome(predicate: Any, event: Any) -> Any:
    try:
        return predicate(event)
    except TriggerError as exc:
        return type(exc).__name__


def variants(event: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """The event, and the event with `field` removed, null, a number and another text."""
    found = [event]
    for value in (None, 3, "other", "track", "identify"):
        changed = copy.deepcopy(event)
        changed[field] = value
        found.append(changed)
    missing = copy.deepcopy(event)
    missing.pop(field, None)
    return [*found, missing]


def test_the_default_triggers_have_guards() -> None:
    assert trigger_guard(compile_trigger('type = "track"')) == ("type", "track")
    guard = trigger_guard(compile_trigger('type = "track" and event = "Order Completed"'))
    assert guard == ("type", "track")
    assert trigger_guard(compile_trigger('(event = "A") and type = "x"')) == ("event", "A")
    assert trigger_guard(compile_trigger('type = "a" or type = "b"')) is None
    assert trigger_guard(compile_trigger('properties.x = "a"')) is None
    assert trigger_guard(compile_trigger('type != "a"')) is None


@pytest.mark.skipif(not COMPILED, reason=f"conformance vectors not found in {CONFORMANCE}")
def test_a_guard_is_only_given_when_its_field_decides() -> None:
    """Every vector's trigger on its event and on variants: outside the guard, never a match."""
    checked = 0
    for vector, predicate in COMPILED:
        guard = trigger_guard(predicate)
        if guard is None or type(vector["event"]) is not dict:
            continue
        field, text = guard
        for event in variants(vector["event"], field):
            if event.get(field) != text:
                assert outcome(predicate, event) is False, (vector["id"], event.get(field))
                checked += 1
    assert checked > 50


@pytest.mark.skipif(not COMPILED, reason=f"conformance vectors not found in {CONFORMANCE}")
def test_the_candidates_match_what_every_rule_matches() -> None:
    """All the vectors' triggers as one rule list: the same matches, in the same order."""
    predicates = [predicate for _, predicate in COMPILED]
    guarded = GuardedRules(predicates, lambda predicate: predicate)
    for vector, _ in COMPILED:
        for event in variants(vector["event"], "type") if type(vector["event"]) is dict else []:
            every = [(i, outcome(p, event)) for i, p in enumerate(predicates)]
            chosen = set(map(id, guarded.candidates(event)))
            run = [(i, outcome(p, event)) for i, p in enumerate(predicates) if id(p) in chosen]
            assert [r for r in every if r[1] is not False] == [r for r in run if r[1] is not False]


TRIGGERS = [
    'type = "track"',
    'type = "identify"',
    'type = "track" and event = "Order Completed"',
    'type = "track" and event = "Other" and properties.total > 10',
    '(type = "track" and event = "Other") and name = "x"',
    'type = "track" and name = "x"',
    'type = "identify" and event = "Order Completed"',
    'type = "track" and properties.total > 10',
    'event = "Order Completed"',
    'type = "page" or type = "screen"',
    "properties.email exists",
]


@settings(max_examples=200, deadline=None)
@given(
    triggers=st.lists(st.sampled_from(TRIGGERS), min_size=1, max_size=5),
    event_type=st.one_of(st.sampled_from(["track", "identify", "page", "screen"]), st.none()),
    name=st.sampled_from(["Order Completed", "Other", None]),
    total=st.one_of(st.none(), st.integers(0, 20)),
)
def test_generated_rule_lists(triggers: list[str], event_type: Any, name: Any, total: Any) -> None:
    predicates = [compile_trigger(t) for t in triggers]
    guarded = GuardedRules(list(enumerate(predicates)), lambda rule: rule[1])
    event: dict[str, Any] = {"properties": {"total": total}}
    if event_type is not None:
        event["type"] = event_type
    if name is not None:
        event["event"] = name
    every = [i for i, p in enumerate(predicates) if p(event)]
    assert [i for i, p in guarded.candidates(event) if p(event)] == every
    assert list(guarded.rules) == list(enumerate(predicates))


def test_the_leading_tests_of_a_trigger() -> None:
    """trigger_guards: the run of top-level equalities an `and` chain starts with, in order."""
    assert trigger_guards(compile_trigger('type = "track"')) == (("type", "track"),)
    two = compile_trigger('type = "track" and event = "Order Completed"')
    assert trigger_guards(two) == (("type", "track"), ("event", "Order Completed"))
    nested = compile_trigger('(type = "a" and event = "b") and name = "c" and properties.x = 1')
    assert trigger_guards(nested) == (("type", "a"), ("event", "b"), ("name", "c"))
    assert trigger_guards(compile_trigger('type = "a" and (event = "b" or event = "c")')) == (
        ("type", "a"),
    )
    assert trigger_guards(compile_trigger('type = "a" and properties.x = 1 and event = "b"')) == (
        ("type", "a"),
    )
    assert trigger_guards(compile_trigger('type = "a" or event = "b"')) == ()
    assert trigger_guards(compile_trigger('properties.x = "a" and type = "b"')) == ()


@pytest.mark.skipif(not COMPILED, reason=f"conformance vectors not found in {CONFORMANCE}")
def test_every_leading_test_decides() -> None:
    """Every vector's trigger on its event and on variants of each leading test's field: where
    one of those fields is not its text, never a match."""
    checked = 0
    for vector, predicate in COMPILED:
        if type(vector["event"]) is not dict:
            continue
        for field, text in trigger_guards(predicate):
            for event in variants(vector["event"], field):
                if event.get(field) != text:
                    assert outcome(predicate, event) is False, (vector["id"], field)
                    checked += 1
    assert checked > 50


def test_rules_are_grouped_by_their_second_test() -> None:
    """Rules of one first value sharing a second field: only those whose second test passes."""
    triggers = [
        'type = "track" and event = "A"',
        'type = "track"',
        'type = "track" and event = "B" and properties.n > 1',
        'type = "identify"',
    ]
    rules = [(t, compile_trigger(t)) for t in triggers]
    guarded = GuardedRules(rules, lambda rule: rule[1])
    names = [t for t, _ in guarded.candidates({"type": "track", "event": "A"})]
    assert names == ['type = "track" and event = "A"', 'type = "track"']
    assert [t for t, _ in guarded.candidates({"type": "track", "event": 3})] == ['type = "track"']
    assert [t for t, _ in guarded.candidates({"type": "track"})] == ['type = "track"']
    assert [t for t, _ in guarded.candidates({"type": "identify", "event": "A"})] == [
        'type = "identify"'
    ]


def test_anything_but_a_dict_gets_every_rule() -> None:
    predicates = [compile_trigger('type = "track"')]
    guarded = GuardedRules(predicates, lambda predicate: predicate)
    assert guarded.candidates(["track"]) == tuple(predicates)
    assert guarded.candidates({"type": "identify"}) == ()
