"""The Segment Spec rules of `segment/spec.py`: each rule, the reason it gives, and the field it names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from acoustic_pipelines.segment import spec

RECEIVED = "2026-11-20T10:15:01.000Z"


def good(**changes: Any) -> dict[str, Any]:
    """A valid track message, with `changes` applied (a value of ... removes the key)."""
    event: dict[str, Any] = {
        "type": "track",
        "event": "Product Added",
        "messageId": "api-7f3c2a",
        "userId": "u_123",
        "anonymousId": "a_77",
        "properties": {"sku": "SKU-1", "price": 19.99},
        "context": {"library": {"name": "analytics.js"}},
        "integrations": {},
        "originalTimestamp": "2026-11-20T10:15:00.120Z",
        "sentAt": "2026-11-20T10:15:00.500Z",
        "receivedAt": RECEIVED,
        "timestamp": "2026-11-20T10:15:00.620Z",
    }
    for key, value in changes.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


ACCEPTED = [
    ("track", good()),
    (
        "identify with anonymousId only",
        good(type="identify", event=..., userId=..., traits={"email": "a@b.c"}),
    ),
    ("page without name", good(type="page", event=...)),
    ("screen", good(type="screen", event=..., name="Home")),
    ("group", good(type="group", event=..., groupId="acct_1")),
    ("alias", good(type="alias", event=..., anonymousId=..., previousId="a_77")),
    ("null optional fields", good(properties=None, context=None, sentAt=None, anonymousId=None)),
    ("extra keys beyond the Spec", good(custom={"kept": True})),
    ("messageId of 100 characters", good(messageId="m" * 100)),
    ("timestamp with offset", good(timestamp="2026-11-20T11:15:00+01:00")),
]

REJECTED = [
    ("unknown type", good(type="purchase"), spec.UNKNOWN_TYPE, "type = 'purchase'"),
    ("missing type", good(type=...), spec.UNKNOWN_TYPE, "type = None"),
    ("missing messageId", good(messageId=...), spec.MISSING_MESSAGE_ID, "messageId"),
    ("empty messageId", good(messageId=""), spec.MISSING_MESSAGE_ID, "messageId"),
    (
        "numeric messageId",
        good(messageId=42),
        spec.INVALID_FIELD_TYPE,
        "messageId = 42 is a number",
    ),
    (
        "messageId of 101 characters",
        good(messageId="m" * 101),
        spec.MESSAGE_ID_TOO_LONG,
        "101 characters",
    ),
    ("no identity", good(userId=..., anonymousId=...), spec.MISSING_IDENTITY, "neither userId"),
    (
        "empty identities",
        good(userId="", anonymousId=None),
        spec.MISSING_IDENTITY,
        "neither userId",
    ),
    ("numeric userId", good(userId=12345), spec.INVALID_FIELD_TYPE, "userId = 12345 is a number"),
    (
        "boolean anonymousId",
        good(anonymousId=True),
        spec.INVALID_FIELD_TYPE,
        "anonymousId = True is a boolean",
    ),
    ("track without event", good(event=...), spec.MISSING_EVENT_NAME, "no event name"),
    ("track with empty event", good(event=""), spec.MISSING_EVENT_NAME, "no event name"),
    ("numeric event", good(event=7), spec.INVALID_FIELD_TYPE, "event = 7"),
    ("group without groupId", good(type="group", event=...), spec.MISSING_GROUP_ID, "groupId"),
    (
        "alias without previousId",
        good(type="alias", event=...),
        spec.MISSING_PREVIOUS_ID,
        "previousId",
    ),
    (
        "alias without userId",
        good(type="alias", userId=..., previousId="p"),
        spec.MISSING_IDENTITY,
        "alias",
    ),
    (
        "properties as array",
        good(properties=[1]),
        spec.INVALID_FIELD_TYPE,
        "properties = [1] is a array",
    ),
    (
        "context as string",
        good(context="web"),
        spec.INVALID_FIELD_TYPE,
        "context = 'web' is a string",
    ),
    (
        "bad timestamp",
        good(timestamp="2026-13-45T25:61:00Z"),
        spec.INVALID_TIMESTAMP,
        "timestamp = ",
    ),
    ("empty timestamp", good(timestamp=""), spec.INVALID_TIMESTAMP, "timestamp = ''"),
    (
        "numeric sentAt",
        good(sentAt=1732097700),
        spec.INVALID_TIMESTAMP,
        "sentAt = 1732097700 is a number",
    ),
    (
        "bad originalTimestamp",
        good(originalTimestamp="yesterday"),
        spec.INVALID_TIMESTAMP,
        "originalTimestamp",
    ),
    ("bad receivedAt", good(receivedAt="soon"), spec.INVALID_TIMESTAMP, "receivedAt = 'soon'"),
    ("missing receivedAt", good(receivedAt=...), spec.MISSING_RECEIVED_AT, "receivedAt"),
]


@pytest.mark.parametrize(("name", "event"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_valid_messages_are_accepted(name: str, event: dict[str, Any]) -> None:
    timestamp, received_at = spec.validate_event(event)
    assert received_at == datetime(2026, 11, 20, 10, 15, 1, tzinfo=UTC)
    assert timestamp.tzinfo is UTC


@pytest.mark.parametrize(
    ("name", "event", "reason", "detail"), REJECTED, ids=[c[0] for c in REJECTED]
)
def test_invalid_messages_name_reason_and_field(
    name: str, event: dict[str, Any], reason: str, detail: str
) -> None:
    with pytest.raises(spec.SpecViolation) as raised:
        spec.validate_event(event)
    assert raised.value.reason == reason
    assert detail in raised.value.detail


def test_timestamps_are_converted_to_utc() -> None:
    timestamp, _ = spec.validate_event(good(timestamp="2026-11-20T11:15:00+01:00"))
    assert timestamp == datetime(2026, 11, 20, 10, 15, tzinfo=UTC)


def test_missing_timestamp_defaults_to_received_at() -> None:
    timestamp, received_at = spec.validate_event(good(timestamp=...))
    assert timestamp == received_at


def test_naive_timestamp_is_taken_as_utc() -> None:
    timestamp, _ = spec.validate_event(good(timestamp="2026-11-20T10:00:00"))
    assert timestamp == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_every_reason_is_listed() -> None:
    reasons = {
        getattr(spec, name)
        for name in dir(spec)
        if name.isupper() and isinstance(getattr(spec, name), str)
    }
    assert set(spec.REJECT_REASONS) <= reasons
    assert len(set(spec.REJECT_REASONS)) == len(spec.REJECT_REASONS)
