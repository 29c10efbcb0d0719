"""Segment Spec validation of one archived message: reject reasons and the dedupe key.

Facts come from Segment's Spec (reference/segment.md §1): the six call types, `messageId`
(≤ 100 characters, the dedupe key), `userId`/`anonymousId` (one required except on alias), the
per-call required fields, ISO-8601 timestamps and the 32 KB per-event limit of the Tracking API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

# Reject reasons, in the order a line is checked. Stable strings: they are stored in the lake.
INVALID_ENCODING: Final = "INVALID_ENCODING"
MALFORMED_JSON: Final = "MALFORMED_JSON"
TOO_LARGE: Final = "TOO_LARGE"
TOO_DEEP: Final = "TOO_DEEP"
NOT_AN_OBJECT: Final = "NOT_AN_OBJECT"
UNKNOWN_TYPE: Final = "UNKNOWN_TYPE"
MISSING_MESSAGE_ID: Final = "MISSING_MESSAGE_ID"
MESSAGE_ID_TOO_LONG: Final = "MESSAGE_ID_TOO_LONG"
MISSING_IDENTITY: Final = "MISSING_IDENTITY"
MISSING_EVENT_NAME: Final = "MISSING_EVENT_NAME"
MISSING_GROUP_ID: Final = "MISSING_GROUP_ID"
MISSING_PREVIOUS_ID: Final = "MISSING_PREVIOUS_ID"
INVALID_FIELD_TYPE: Final = "INVALID_FIELD_TYPE"
INVALID_TIMESTAMP: Final = "INVALID_TIMESTAMP"
MISSING_RECEIVED_AT: Final = "MISSING_RECEIVED_AT"
DUPLICATE_MESSAGE_ID: Final = "DUPLICATE_MESSAGE_ID"

REJECT_REASONS: Final = (
    INVALID_ENCODING,
    MALFORMED_JSON,
    TOO_LARGE,
    TOO_DEEP,
    NOT_AN_OBJECT,
    UNKNOWN_TYPE,
    MISSING_MESSAGE_ID,
    MESSAGE_ID_TOO_LONG,
    MISSING_IDENTITY,
    MISSING_EVENT_NAME,
    MISSING_GROUP_ID,
    MISSING_PREVIOUS_ID,
    INVALID_FIELD_TYPE,
    INVALID_TIMESTAMP,
    MISSING_RECEIVED_AT,
    DUPLICATE_MESSAGE_ID,
)

EVENT_TYPES: Final = frozenset({"identify", "track", "page", "screen", "group", "alias"})
MAX_EVENT_BYTES: Final = 32 * 1024  # Tracking API: ≤ 32 KB per call
MAX_MESSAGE_ID_CHARS: Final = 100

_TYPED_FIELDS: Final[dict[str, type]] = {
    **dict.fromkeys(("userId", "anonymousId", "event", "name", "groupId", "previousId"), str),
    **dict.fromkeys(("properties", "traits", "context", "integrations"), dict),
}
_OTHER_TIMESTAMPS: Final = ("originalTimestamp", "sentAt")
fromisoformat = datetime.fromisoformat


class SpecViolation(ValueError):
    """A line breaks the Segment Spec; `reason` is one of REJECT_REASONS, `detail` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def describe(value: Any, limit: int = 60) -> str:
    """A short, printable rendering of a JSON value for reject details."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value (`string`, `number`, `object`, …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def parse_timestamp(field: str, value: Any) -> datetime:
    """Parse an ISO-8601 timestamp field to an aware UTC datetime (naive times are taken as UTC)."""
    if not isinstance(value, str):
        raise SpecViolation(
            INVALID_TIMESTAMP,
            f"{field} = {describe(value)} is a {json_type(value)}, not an ISO-8601 string",
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SpecViolation(
            INVALID_TIMESTAMP, f"{field} = {describe(value)} is not an ISO-8601 timestamp"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def validate_event(event: dict[str, Any]) -> tuple[datetime, datetime]:
    """Check one decoded message against the Spec; return its (timestamp, receivedAt) in UTC.

    Raises:
        SpecViolation: the first rule the message breaks, with the field and value named.
    """
    # Hot path (every archived line): one C-level set intersection finds the typed fields present.
    event_type = event.get("type")
    if event_type not in EVENT_TYPES:
        raise SpecViolation(
            UNKNOWN_TYPE,
            f"type = {describe(event_type)} is not one of {', '.join(sorted(EVENT_TYPES))}",
        )
    message_id = event.get("messageId")
    if message_id.__class__ is not str or not 0 < len(message_id) <= MAX_MESSAGE_ID_CHARS:
        _message_id_problem(message_id)
    for field in event.keys() & _TYPED_FIELDS:
        value = event[field]
        if value is not None and value.__class__ is not _TYPED_FIELDS[field]:
            _field_type_problem(field, value)
    if event_type == "alias":
        # alias links previousId to userId; it needs both, and no anonymousId (Spec §1.2).
        if not event.get("userId"):
            raise SpecViolation(MISSING_IDENTITY, "alias has no userId (the new id)")
        if not event.get("previousId"):
            raise SpecViolation(MISSING_PREVIOUS_ID, "alias has no previousId")
    elif not event.get("userId") and not event.get("anonymousId"):
        raise SpecViolation(MISSING_IDENTITY, "neither userId nor anonymousId is set")
    elif event_type == "track" and not event.get("event"):
        raise SpecViolation(MISSING_EVENT_NAME, "track call has no event name")
    elif event_type == "group" and not event.get("groupId"):
        raise SpecViolation(MISSING_GROUP_ID, "group call has no groupId")
    return _timestamps(event)


def _message_id_problem(message_id: Any) -> None:
    if message_id is None or message_id == "":
        raise SpecViolation(MISSING_MESSAGE_ID, "messageId is missing or empty")
    if not isinstance(message_id, str):
        _field_type_problem("messageId", message_id)
    raise SpecViolation(
        MESSAGE_ID_TOO_LONG,
        f"messageId has {len(message_id)} characters, the Spec allows {MAX_MESSAGE_ID_CHARS}",
    )


def _field_type_problem(field: str, value: Any) -> None:
    expected = "an object" if _TYPED_FIELDS.get(field) is dict else "a string"
    raise SpecViolation(
        INVALID_FIELD_TYPE, f"{field} = {describe(value)} is a {json_type(value)}, not {expected}"
    )


def _timestamps(event: dict[str, Any]) -> tuple[datetime, datetime]:
    raw_received = event.get("receivedAt")
    if raw_received is None:
        raise SpecViolation(
            MISSING_RECEIVED_AT, "receivedAt is missing (every archived message has it)"
        )
    try:
        received_at = utc(fromisoformat(raw_received))
        raw = event.get("timestamp")
        timestamp = received_at if raw is None else utc(fromisoformat(raw))
        for field in _OTHER_TIMESTAMPS:
            if (raw := event.get(field)) is not None:
                fromisoformat(raw)
    except (TypeError, ValueError):
        _timestamp_problem(event)
    return timestamp, received_at


def utc(moment: datetime) -> datetime:
    """`moment` in UTC (naive times are taken as UTC)."""
    # Segment writes "...Z"; only other offsets or naive times need converting.
    if moment.tzinfo is UTC:
        return moment
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _timestamp_problem(event: dict[str, Any]) -> None:
    """Name the first timestamp field that does not parse (the slow path, for rejects only)."""
    for field in ("receivedAt", "timestamp", *_OTHER_TIMESTAMPS):
        if (value := event.get(field)) is not None:
            parse_timestamp(field, value)
    raise AssertionError("unreachable: a timestamp failed to parse but none is invalid")
