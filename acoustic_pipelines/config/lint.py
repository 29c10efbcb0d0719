"""Warnings for a pipeline config that is valid but probably not what its author meant.

Triggers whose Segment meaning is surprising (``triggers.lint_trigger``: mixed and/or without
parentheses, single quotes, upper-case AND/OR, ``!(``, unknown fields), mappings that cannot
produce an Acoustic row or map keys the Send Events action ignores, and destinations that
deliver nothing. Warnings never fail a load; they are only given for the parts that are valid.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from acoustic_pipelines.acoustic.rows import (
    INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
    INVALID_EVENT_TYPE,
    INVALID_NO_DATA_MAPPED,
    INVALID_TIMESTAMP,
    SECTIONS,
)
from acoustic_pipelines.actions.triggers import lint_trigger
from acoustic_pipelines.config.destinations import Loc, raw_list

__all__ = ["config_warnings", "mapping_warnings"]

# The fields of Acoustic's "Send Events" action (segment.md §6.2): what a mapping may produce.
_SEND_EVENTS_FIELDS: Final = ("uniqueRecipientId", "type", "timestamp", *SECTIONS)
_REQUIRED_FIELDS: Final = (
    ("uniqueRecipientId", INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID),
    ("type", INVALID_EVENT_TYPE),
    ("timestamp", INVALID_TIMESTAMP),
)


def mapping_warnings(mapping: Any) -> list[str]:
    """Warnings for an Acoustic mapping object that cannot produce a row, or maps unused keys."""
    if not isinstance(mapping, dict) or any(
        isinstance(key, str) and key.startswith("@") for key in mapping
    ):
        return []  # a directive: what it produces is only known per event
    found = [
        f"`{key}` is not a field of Acoustic's Send Events action "
        f"({', '.join(_SEND_EVENTS_FIELDS)}); it never reaches the row"
        for key in mapping
        if key not in _SEND_EVENTS_FIELDS
    ]
    found += [
        f"`{field}` is not mapped: every event this mapping matches is rejected with {code}"
        for field, code in _REQUIRED_FIELDS
        if field not in mapping
    ]
    if not any(section in mapping for section in SECTIONS):
        found.append(
            f"none of {', '.join(SECTIONS)} is mapped: every event this mapping matches is "
            f"rejected with {INVALID_NO_DATA_MAPPED} (Segment's presets alone do this)"
        )
    return found


def config_warnings(data: Any, failed: Collection[Loc] = ()) -> list[tuple[Loc, str]]:
    """Lint warnings for the raw config data, leaving out the parts in error.

    Args:
        data: the config as read from YAML.
        failed: the locations that have an error; nothing at or below them is linted.

    Returns:
        ``(location, warning)`` per warning, in file order.
    """

    def has_error(loc: Loc) -> bool:
        return any(bad[: len(loc)] == loc for bad in failed)

    destinations = raw_list(data, "destinations")
    found: list[tuple[Loc, str]] = []
    if isinstance(data, dict) and "destinations" in data and not destinations:
        found.append((("destinations",), "no destination: nothing is delivered to Acoustic"))
    for d_index, destination in enumerate(destinations):
        mappings_at: Loc = ("destinations", d_index, "mappings")
        enabled = 0
        for m_index, mapping in enumerate(raw_list(destination, "mappings")):
            if not isinstance(mapping, dict):
                continue
            enabled += mapping.get("enabled", True) is True
            at = (*mappings_at, m_index)
            trigger_at, mapping_at = (*at, "trigger"), (*at, "mapping")
            trigger = mapping.get("trigger")
            if isinstance(trigger, str) and not has_error(trigger_at):
                found.extend((trigger_at, warning) for warning in lint_trigger(trigger))
            if "mapping" in mapping and not has_error(mapping_at):
                found.extend((mapping_at, w) for w in mapping_warnings(mapping["mapping"]))
        if isinstance(destination, dict) and not enabled and not has_error(mappings_at):
            message = 'no enabled mapping: every event is counted as "no matching mapping"'
            found.append((mappings_at, message))
    return found
