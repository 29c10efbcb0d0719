"""Spec messages built from warehouse records exactly as Segment Connections builds them.

Segment's `actions-segment` destination (segment.md §7) turns one Reverse ETL record into one
Spec call per mapping: the mapping (Segment's mapping directives, resolved by this project's
engine in `actions/`) gives a payload of the action's fields, Segment's runtime cleans and
checks it (`payload.py`), then the action lays the fields out as a Spec message (`perform`
below, after `sendTrack/index.ts` and its four siblings). The event a mapping reads is
`{"type": "track", "event": <change>, "messageId": ..., "properties": {<the row's columns>}}`.

Public API: `compile_message(action, mapping)` compiles once and returns a function of one
event; `build_message(action, mapping, event)` does both at once. Where Segment refuses the
record, both raise :class:`MessageRejected`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from acoustic_pipelines.actions import (
    MappingInputError,
    MappingRuntimeError,
    compile_mapping,
)
from acoustic_pipelines.actions.js_values import js_truthy
from acoustic_pipelines.connections.fields import ACTION_FIELDS, ACTIONS
from acoustic_pipelines.connections.payload import FieldProblem, check_payload

__all__ = [
    "ACTIONS",
    "HIDDEN_DEFAULTS",
    "MISSING_ID",
    "MessageRejected",
    "build_message",
    "compile_message",
    "with_hidden_defaults",
]

MISSING_ID: Final = "Either `Anonymous ID` or `User ID` must be defined."
# Fields Segment's UI fills in on every new mapping of this destination (hidden from the user).
HIDDEN_DEFAULTS: Final[dict[str, Any]] = {
    "message_id": {"@path": "$.messageId"},
    "consent": {"@path": "$.context.consent"},
}
_SHOWN_VALUE_LENGTH: Final = 80

Message = dict[str, Any]


class MessageRejected(ValueError):
    """Segment refuses the record for this mapping: nothing is sent for it.

    `reason` is Segment's own sentence (fields named by their label, several problems joined by
    spaces), `fields` the dotted mapping keys at fault, in the same order.
    """

    def __init__(
        self, reason: str, *, action: str, fields: tuple[str, ...], values: tuple[Any, ...] = ()
    ) -> None:
        shown = ", ".join(
            [f"{field} = {_show(value)}" for field, value in zip(fields, values, strict=False)]
            + list(fields[len(values) :])
        )
        super().__init__(f"{action}: {reason} (field {shown})")
        self.reason = reason
        self.action = action
        self.fields = fields


def _show(value: Any) -> str:
    """A value as short JSON text for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _SHOWN_VALUE_LENGTH:
        text = text[: _SHOWN_VALUE_LENGTH - 1] + "…"
    return text


def with_hidden_defaults(mapping: dict[str, Any]) -> dict[str, Any]:
    """The mapping as Segment's UI saves it: `message_id` and `consent` filled in when absent."""
    return {**HIDDEN_DEFAULTS, **mapping}


def compile_message(action: str, mapping: dict[str, Any]) -> Callable[[dict[str, Any]], Message]:
    """Compile a mapping for one action; the result builds the Spec message of one event.

    Raises:
        ValueError: the action is not one of Segment Connections' five.
        MappingValidationError: the mapping is refused by Segment's mapping validation.
    """
    if action not in ACTION_FIELDS:
        raise ValueError(
            f"action {action!r} is not one of Segment Connections': {', '.join(ACTIONS)}"
        )
    if type(mapping) is not dict:
        raise ValueError(f"the mapping of {action} must be an object; got {_show(mapping)}")
    resolve = compile_mapping(mapping)
    fields = ACTION_FIELDS[action]
    perform = _PERFORM[action]

    def build(event: dict[str, Any]) -> Message:
        try:
            resolved = resolve(event)
        except (MappingRuntimeError, MappingInputError) as error:
            raise MessageRejected(str(error), action=action, fields=("mapping",)) from error
        payload, problems = check_payload(resolved, fields)
        if problems:
            raise _rejected(action, problems)
        if not js_truthy(payload.get("anonymous_id")) and not js_truthy(payload.get("user_id")):
            raise MessageRejected(MISSING_ID, action=action, fields=("user_id", "anonymous_id"))
        return perform(payload)

    return build


def build_message(action: str, mapping: dict[str, Any], event: dict[str, Any]) -> Message:
    """Build the Spec message Segment's `action` makes of `event` with `mapping`.

    Raises:
        MessageRejected: Segment refuses the record (a required field missing, no user or
            anonymous id, a value of the wrong type).
    """
    return compile_message(action, mapping)(event)


def _rejected(action: str, problems: list[FieldProblem]) -> MessageRejected:
    """One error for all problems, worded as Segment's AggregateAjvError."""
    return MessageRejected(
        " ".join(problem.message for problem in problems),
        action=action,
        fields=tuple(problem.field for problem in problems),
        values=tuple(problem.value for problem in problems),
    )


# ---------------------------------------------------------------------------------------
# The five actions' perform functions: the payload laid out as a Spec message.


def _defined(**values: Any) -> dict[str, Any]:
    """An object without the keys whose value is absent (JavaScript undefined)."""
    return {key: value for key, value in values.items() if value is not _ABSENT}


class _Absent:
    """Marks a payload field that was not mapped (left out of the message)."""

    __slots__ = ()


_ABSENT: Final = _Absent()


def _consent(payload: dict[str, Any]) -> dict[str, Any]:
    """`context.consent`: the mapped consent if its categoryPreferences are all booleans, else {}."""
    consent = payload.get("consent", _ABSENT)
    if consent is _ABSENT:
        return {}
    preferences = consent.get("categoryPreferences", _ABSENT)
    if type(preferences) is dict:
        values: Any = preferences.values()
    elif type(preferences) is list:
        values = preferences
    else:
        return {}
    return dict(consent) if all(type(value) is bool for value in values) else {}


def _context(payload: dict[str, Any], *, timezone: bool, group_id: bool) -> dict[str, Any]:
    """The `context` every action builds from the same fields."""
    get = payload.get
    context = _defined(
        app=get("application", _ABSENT),
        campaign=get("campaign_parameters", _ABSENT),
        consent=_consent(payload),
        device=get("device", _ABSENT),
        ip=get("ip_address", _ABSENT),
        locale=get("locale", _ABSENT),
        location=get("location", _ABSENT),
        network=get("network", _ABSENT),
        os=get("operating_system", _ABSENT),
        page=get("page", _ABSENT),
        screen=get("screen", _ABSENT),
        userAgent=get("user_agent", _ABSENT),
    )
    if timezone and "timezone" in payload:
        context["timezone"] = payload["timezone"]
    if group_id and "group_id" in payload:
        context["groupId"] = payload["group_id"]
    return context


def _ids(payload: dict[str, Any]) -> dict[str, Any]:
    """userId, anonymousId and timestamp as mapped."""
    get = payload.get
    return _defined(
        userId=get("user_id", _ABSENT),
        anonymousId=get("anonymous_id", _ABSENT),
        timestamp=get("timestamp", _ABSENT),
    )


def _track(payload: dict[str, Any]) -> Message:
    """sendTrack: event, properties and the traits under context.traits."""
    context = {
        "traits": dict(payload.get("traits", {})),
        **_context(payload, timezone=True, group_id=True),
    }
    return {
        **_ids(payload),
        **_defined(
            event=payload.get("event_name", _ABSENT), messageId=payload.get("message_id", _ABSENT)
        ),
        "context": context,
        "properties": dict(payload.get("properties", {})),
        "type": "track",
    }


def _identify(payload: dict[str, Any]) -> Message:
    """sendIdentify: traits, with the mapped address placed at traits.address."""
    traits = dict(payload.get("traits", {}))
    if "address" in payload:
        traits["address"] = payload["address"]
    return {
        **_ids(payload),
        **_defined(messageId=payload.get("message_id", _ABSENT)),
        "context": _context(payload, timezone=True, group_id=True),
        "traits": traits,
        "type": "identify",
    }


def _page(payload: dict[str, Any]) -> Message:
    """sendPage: name and category, the page field's parts, then the mapped properties."""
    page = payload.get("page", {})
    properties = _defined(
        name=payload.get("page_name", _ABSENT),
        category=payload.get("page_category", _ABSENT),
        path=page.get("path", _ABSENT),
        referrer=page.get("referrer", _ABSENT),
        search=page.get("search", _ABSENT),
        title=page.get("title", _ABSENT),
        url=page.get("url", _ABSENT),
    )
    properties.update(payload.get("properties", {}))
    return {
        **_ids(payload),
        **_defined(
            name=payload.get("page_name", _ABSENT), messageId=payload.get("message_id", _ABSENT)
        ),
        "context": _context(payload, timezone=True, group_id=True),
        "properties": properties,
        "type": "page",
    }


def _screen(payload: dict[str, Any]) -> Message:
    """sendScreen: name and the mapped properties; the timezone field is accepted, then dropped."""
    properties = _defined(name=payload.get("screen_name", _ABSENT))
    properties.update(payload.get("properties", {}))
    return {
        **_ids(payload),
        **_defined(
            name=payload.get("screen_name", _ABSENT), messageId=payload.get("message_id", _ABSENT)
        ),
        "context": _context(payload, timezone=False, group_id=True),
        "properties": properties,
        "type": "screen",
    }


def _group(payload: dict[str, Any]) -> Message:
    """sendGroup: groupId and traits; context without groupId."""
    return {
        **_ids(payload),
        **_defined(
            groupId=payload.get("group_id", _ABSENT), messageId=payload.get("message_id", _ABSENT)
        ),
        "context": _context(payload, timezone=True, group_id=False),
        "traits": dict(payload.get("traits", {})),
        "type": "group",
    }


_PERFORM: Final[dict[str, Callable[[dict[str, Any]], Message]]] = {
    "sendTrack": _track,
    "sendIdentify": _identify,
    "sendPage": _page,
    "sendScreen": _screen,
    "sendGroup": _group,
}
