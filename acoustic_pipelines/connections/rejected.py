"""Records a Segment Connections sync did not deliver, with their reasons, as a lake dataset.

One `RejectedRecord` per record the diff refused (null or duplicate primary key, too many columns,
a column name too long, a record or value too big: no mapping sees it) and per (record, mapping)
message that was refused (Segment's validation of the mapping, over 32 KB), failed (retried by
later syncs) or given up. `sync_model(on_rejected=...)` hands them over a page at a time; the
sync report itself keeps only the first ones.

`RejectedRecordsWriter` writes them as they come, one Parquet file per sync:
`connections/<model>_rejected_records/date=<sync's UTC day>/sync-<HHMMSS>-<sync id>.parquet`
(written aside and renamed, or one S3 object: a file is there whole or not at all), then marks
the day's partition. A day holds one file per sync that had anything to report; a failed record
is listed again by every sync that tries it again.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from acoustic_pipelines.connections.changes import Change, Rejection
from acoustic_pipelines.connections.ledger import SendRecord
from acoustic_pipelines.lake import Lake

__all__ = [
    "REJECTED_RECORDS_COLUMNS",
    "REJECTED_RECORDS_SCHEMA",
    "RejectedRecord",
    "RejectedRecordsWriter",
    "rejected_records_dataset",
    "rejected_row",
    "rejected_send",
]

REJECTED_RECORDS_SCHEMA: Final = pa.schema(
    [
        ("synced_at", pa.timestamp("ms", tz="UTC")),
        ("sync_id", pa.string()),
        ("model", pa.string()),
        ("record_key", pa.string()),
        ("outcome", pa.string()),
        ("reason", pa.string()),
        ("mapping", pa.string()),
        ("change", pa.string()),
        ("message_id", pa.string()),
        ("row", pa.string()),
    ]
)
REJECTED_RECORDS_COLUMNS: Final = {
    "synced_at": "when the sync started (UTC)",
    "sync_id": "the sync that reported the record (the Dagster run id)",
    "model": "the warehouse model",
    "record_key": "the primary key as JSON text (null when the key is null)",
    "outcome": "rejected (the diff or Segment refused it), failed (retried by later syncs) or "
    "given_up (failed for longer than retry_days)",
    "reason": "why, in Segment's words where Segment refuses",
    "mapping": "the mapping whose message it is (null: the diff refused the row, no mapping saw it)",
    "change": "added, updated or deleted (null: refused by the diff)",
    "message_id": "the message's id, as the sync ledger and the Tracking API know it",
    "row": "the record's columns as JSON (a deleted record: its primary key alone)",
}
_ROWS_PER_GROUP: Final = 5_000


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


def rejected_records_dataset(model: str) -> str:
    """The lake dataset holding a model's rejected and failed records."""
    return f"connections/{model}_rejected_records"


class RejectedRecordsWriter:
    """Writes one sync's rejected records to the lake as they come (use it as a context manager).

    Nothing is written when the sync has nothing to report; when the block raises, the partial
    file is discarded (the ledger still holds every outcome, and failed records are reported
    again by the next sync).
    """

    def __init__(self, lake: Lake, *, model: str, sync_id: str, synced_at: datetime) -> None:
        self._lake = lake
        self.model = model
        self.dataset = rejected_records_dataset(model)
        self.sync_id = sync_id
        self.synced_at = synced_at.astimezone(UTC)
        self.day = self.synced_at.date()
        self.name = f"sync-{self.synced_at:%H%M%S}-{sync_id[:8] or 'manual'}.parquet"
        self._stack = ExitStack()
        self._writer: pq.ParquetWriter | None = None
        self._rows: list[RejectedRecord] = []
        self.count = 0
        self.by_outcome: Counter[str] = Counter()
        self.by_mapping: Counter[str] = Counter()
        self.written: str | None = None

    @property
    def uri(self) -> str:
        """The file written (or, before anything is, the day's folder), as shown to users."""
        if self.written is not None:
            return self._lake.location.uri_of(self.written)
        return self._lake.partition_uri(self.dataset, self.day)

    def __call__(self, records: list[RejectedRecord]) -> None:
        """Take a page of records (the `on_rejected` sink of `sync_model`)."""
        self._rows.extend(records)
        self.count += len(records)
        self.by_outcome.update(r.outcome for r in records)
        self.by_mapping.update(r.mapping or "(the diff)" for r in records)
        if len(self._rows) >= _ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        if self._writer is None:
            path = self._stack.enter_context(
                self._lake.replacing_file(self.dataset, self.day, self.name)
            )
            self._writer = self._stack.enter_context(
                pq.ParquetWriter(
                    path, REJECTED_RECORDS_SCHEMA, filesystem=self._lake.fs, compression="zstd"
                )
            )
        rows = self._rows
        self._rows = []
        table = pa.Table.from_pydict(
            {
                "synced_at": [self.synced_at] * len(rows),
                "sync_id": [self.sync_id] * len(rows),
                "model": [self.model] * len(rows),
                "record_key": [r.record_key for r in rows],
                "outcome": [r.outcome for r in rows],
                "reason": [r.reason for r in rows],
                "mapping": [r.mapping for r in rows],
                "change": [r.change for r in rows],
                "message_id": [r.message_id for r in rows],
                "row": [r.row for r in rows],
            },
            schema=REJECTED_RECORDS_SCHEMA,
        )
        self._writer.write_table(table)

    def __enter__(self) -> RejectedRecordsWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            self._stack.__exit__(kind, *rest)  # the aside file is removed, nothing shows
            return
        self._flush()
        self._stack.close()  # closes the Parquet file, then renames it into place
        if self.count:
            self.written = f"{self._lake.partition_path(self.dataset, self.day)}/{self.name}"
            self._lake.mark(
                self.dataset,
                self.day,
                {"model": self.model, "last_sync_id": self.sync_id, "last_sync_rows": self.count},
            )
