"""Records a Segment Connections sync did not deliver, with their reasons.

One `RejectedRecord` per record the diff refused (null or duplicate primary key, too many columns,
a column name too long, a record or value too big: no mapping sees it) and per (record, mapping)
message that was refused (Segment's validation of the mapping, over 32 KB), failed (retried by
later syncs) or given up. `sync_model(on_rejected=...)` hands them over a page at a time; the
sync report itself keeps only the first ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from acoustic_pipelines.connections.changes import Change, Rejection
from acoustic_pipelines.connections.ledger import SendRecord

__all__ = ["RejectedRecord", "rejected_row", "rejected_send"]


@dataclass(frozen=True)
class RejectedRecord:
    """One record (or one of its messages) not delivered, and why.

    `outcome` is `rejected` (the diff or Segment refused it), `failed` (retried by later syncs)
    or `given_up`; `mapping`, `change` and `message_id` are None for a record the diff refused.
    """

    record_key: str | None
    outcome: str
    reason: str
    row: str | None
    mapping: str | None = None
    change: str | None = None
    message_id: str | None = None


def rejected_row(rejection: Rejection) -> RejectedRecord:
    """A row the diff refused (no mapping saw it)."""
    return RejectedRecord(
        record_key=rejection.key, outcome="rejected", reason=rejection.reason, row=rejection.row
    )


def rejected_send(record: SendRecord, change: Change) -> RejectedRecord:
    """A message refused, failed or given up, with the row its mapping read."""
    return RejectedRecord(
        record_key=record.record_key,
        outcome=record.outcome,
        reason=record.reason or "",
        row=orjson.dumps(change.properties).decode("utf-8"),
        mapping=record.mapping,
        change=record.change,
        message_id=record.message_id,
    )
