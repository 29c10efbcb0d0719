"""Segment's "Test Mapping" for one record: each mapping's message, built and checked, never sent.

`preview_record` reads the one row of a model whose primary key is the given value and shows,
for every enabled mapping, the Spec message it would send (as if the record were added) or
Segment's reason for refusing it — what `acoustic-pipelines connections test-mapping` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acoustic_pipelines.config.connections import ConnectionModelConfig
from acoustic_pipelines.connections.changes import detect_changes
from acoustic_pipelines.connections.messages import MessageRejected
from acoustic_pipelines.connections.sender import MAX_MESSAGE_BYTES, message_size
from acoustic_pipelines.connections.warehouse import read_model

__all__ = ["MappingPreview", "preview_record", "record_sql"]


@dataclass(frozen=True)
class MappingPreview:
    """One mapping's outcome for the record: the message, or why Segment refuses it."""

    mapping: str
    action: str
    send: str
    message: dict[str, Any] | None
    rejected: str | None


def record_sql(model: ConnectionModelConfig, key: str) -> str:
    """The model's SQL narrowed to the row whose primary key is `key` (a number or text)."""
    column = '"' + model.primary_key.replace('"', '""') + '"'
    literal = key if _is_number(key) else "'" + key.replace("'", "''") + "'"
    return f"SELECT * FROM ({model.sql}) AS model WHERE {column} = {literal}"


def _is_number(text: str) -> bool:
    """Whether `text` is a plain integer or decimal literal."""
    body = text[1:] if text[:1] == "-" else text
    return bool(body) and body.replace(".", "", 1).isdigit()


def preview_record(
    model: ConnectionModelConfig, key: str, *, warehouse: str
) -> list[MappingPreview]:
    """Each enabled mapping's message for the record `key` of `model` (LookupError if absent)."""
    with detect_changes(
        read_model(warehouse, record_sql(model, key)), [], primary_key=model.primary_key
    ) as change_set:
        rejections = [r for page in change_set.rejections() for r in page]
        rows = [c.properties for page in change_set.changes() for c in page]
    if rejections:
        raise LookupError(
            f"model {model.name}: the record {key} is rejected: {rejections[0].reason}"
        )
    if not rows:
        raise LookupError(f"model {model.name}: no row has {model.primary_key} = {key}")
    event = {
        "type": "track",
        "event": "new",
        "messageId": f"test-mapping-{model.name}-{key}",
        "properties": rows[0],
    }
    previews = []
    for mapping in model.enabled_mappings:
        try:
            message = mapping.build(event)
        except MessageRejected as rejected:
            previews.append(
                MappingPreview(mapping.name, mapping.action, mapping.send, None, str(rejected))
            )
            continue
        size = message_size(message)
        reason = (
            f"the message is {size:,} bytes; the Tracking API takes at most {MAX_MESSAGE_BYTES:,}"
            if size > MAX_MESSAGE_BYTES
            else None
        )
        previews.append(
            MappingPreview(
                mapping.name, mapping.action, mapping.send, None if reason else message, reason
            )
        )
    return previews
