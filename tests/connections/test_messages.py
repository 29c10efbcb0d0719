"""Contract of `acoustic_pipelines.connections.messages`: Spec messages as Segment Connections builds them.

- Every vector of ../shared/conformance/connections_vectors.jsonl (Segment's own destination code)
  is reproduced: the message equals the expected one as a JavaScript value (numbers as doubles,
  booleans apart, objects as unordered maps), and a refused record raises MessageRejected whose
  reason is Segment's message word for word.
- A compiled message gives the same result as build_message and never changes the event.
- The hidden defaults put the event's messageId into the message; a mapping Segment's validation
  refuses fails at compile time, an unknown action too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from acoustic_pipelines.actions import MappingValidationError
from acoustic_pipelines.connections.messages import (
    MISSING_ID,
    MessageRejected,
    build_message,
    compile_message,
    with_hidden_defaults,
)
from tests.conformance import js_value, vector_params

VECTORS, VECTOR_PARAMS = vector_params("connections_vectors.jsonl")


def test_every_vector_is_read(conformance_dir: Path) -> None:
    """The file holds the 300 cases the README announces, each with a unique id."""
    assert len(VECTORS) == 300
    assert len({vector["id"] for vector in VECTORS}) == 300


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_vector(vector: dict[str, Any] | None, conformance_dir: Path) -> None:
    """The message (or the refusal) of Segment's own destination code, exactly."""
    assert vector is not None
    event_before = copy.deepcopy(vector["event"])
    expected = vector["expected"]
    build = compile_message(vector["action"], vector["mapping"])
    if "message" in expected:
        message = build(vector["event"])
        assert js_value(message) == js_value(expected["message"])
        assert json.loads(json.dumps(message)) == message  # plain JSON, nothing else
        assert js_value(build_message(vector["action"], vector["mapping"], vector["event"])) == (
            js_value(message)
        )
    else:
        with pytest.raises(MessageRejected) as refused:
            build(vector["event"])
        assert refused.value.reason == expected["error"]
        assert refused.value.action == vector["action"]
        assert refused.value.fields
    assert vector["event"] == event_before


EVENT = {
    "type": "track",
    "event": "new",
    "messageId": "retl-abc",
    "properties": {"id": 42, "email": "ann@example.com", "plan": "pro", "ltv": "12.50"},
}


def test_hidden_defaults_put_the_message_id_and_an_empty_consent() -> None:
    """Segment's UI fills message_id ← $.messageId and consent ← $.context.consent."""
    mapping = with_hidden_defaults(
        {"user_id": {"@path": "$.properties.id"}, "event_name": "Plan Changed"}
    )
    message = build_message("sendTrack", mapping, EVENT)
    assert message == {
        "userId": "42",
        "event": "Plan Changed",
        "messageId": "retl-abc",
        "context": {"traits": {}, "consent": {}},
        "properties": {},
        "type": "track",
    }


def test_identify_places_the_address_under_traits_and_coerces_text() -> None:
    """address overrides traits.address; a numeric string in a number field becomes a number."""
    mapping = {
        "user_id": {"@path": "$.properties.email"},
        "traits": {"plan": {"@path": "$.properties.plan"}, "address": "old"},
        "address": {"city": "Paris", "zip": "75001"},
        "location": {"latitude": {"@path": "$.properties.ltv"}},
    }
    message = build_message("sendIdentify", mapping, EVENT)
    assert message["traits"] == {"plan": "pro", "address": {"city": "Paris"}}
    assert message["context"]["location"] == {"latitude": 12.5}


def test_refusal_names_the_fields_and_values() -> None:
    """The error carries Segment's reason and says which mapping keys and values are at fault."""
    mapping = {"anonymous_id": {"@path": "$.properties"}, "group_id": "g"}
    with pytest.raises(MessageRejected) as refused:
        build_message("sendGroup", mapping, EVENT)
    assert refused.value.reason == "Anonymous ID must be a string but it was an object."
    assert refused.value.fields == ("anonymous_id",)
    assert "anonymous_id = {" in str(refused.value)
    with pytest.raises(MessageRejected, match="must be defined") as missing:
        build_message("sendPage", {"page_name": "Home"}, EVENT)
    assert missing.value.reason == MISSING_ID


def test_invalid_mapping_and_unknown_action_fail_at_compile_time() -> None:
    """Nothing is resolved when the mapping or the action is wrong."""
    with pytest.raises(MappingValidationError):
        compile_message("sendTrack", {"event_name": {"@path": 3}})
    with pytest.raises(ValueError, match="sendAlias"):
        compile_message("sendAlias", {})
