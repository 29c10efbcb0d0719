"""What Segment Connections remembers between syncs: each model's snapshot and its sync ledger.

Both live in the ledger database (`acoustic_pipelines/database.py`: a SQLite file by default, a
PostgreSQL server every machine sees by one setting), in the same database so that one
transaction records what was sent and moves the snapshot for exactly those records:

- `connections_snapshot` (model, record_key, checksum): the last committed state of each record
  (Segment keeps the same: a record id and a small checksum per row, never the columns).
- `connections_sends` (one row per message: model, record, mapping, change, checksum, outcome,
  reason, attempts, first failure time), keyed by the message id derived from (model, key,
  checksum, mapping, generation), so a re-run finds what an earlier run already sent.
- `connections_models` (model, generation): `reset` raises the generation, which gives every
  record new message ids (Segment would otherwise drop the resend as a duplicate).

Outcomes: `sent` (the Tracking API answered 200), `rejected` (Segment refuses the record: the
mapping's validation, or over 32 KB), `failed` (retried on later syncs), `given_up` (failed for
longer than `retry_days`). The snapshot of a record moves only once each of its messages is sent,
rejected or given up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa

from acoustic_pipelines.database import Database

__all__ = ["FINAL_OUTCOMES", "Outcome", "SendRecord", "SyncLedger"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS connections_models (
    model TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS connections_snapshot (
    model TEXT NOT NULL,
    record_key TEXT NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (model, record_key)
);
CREATE TABLE IF NOT EXISTS connections_sends (
    message_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    record_key TEXT NOT NULL,
    mapping TEXT NOT NULL,
    change TEXT NOT NULL,
    checksum TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    attempts BIGINT NOT NULL,
    first_failure_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS connections_sends_by_model ON connections_sends (model, outcome)
"""
FINAL_OUTCOMES: Final = frozenset(("sent", "rejected", "given_up"))
_LOOKUP_CHUNK: Final = 500
SNAPSHOT_SCHEMA: Final = pa.schema([("record_key", pa.string()), ("checksum", pa.string())])

Outcome = str


@dataclass(frozen=True)
class SendRecord:
    """What the ledger knows of one message."""

    message_id: str
    model: str
    record_key: str
    mapping: str
    change: str
    checksum: str
    outcome: Outcome
    reason: str | None
    attempts: int
    first_failure_at: int | None


class SyncLedger:
    """The snapshot and sync ledger of Segment Connections models in one ledger database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        database.create(SCHEMA)

    # -- generations -------------------------------------------------------------------------

    def generation(self, model: str) -> int:
        """The model's generation (0 until the first reset)."""
        with self.database.read() as db:
            row = db.execute(
                "SELECT generation FROM connections_models WHERE model = ?", (model,)
            ).fetchone()
        return int(row[0]) if row else 0

    def reset(self, model: str) -> int:
        """Forget the model's snapshot: the next sync sends every record as added, with new ids."""
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT generation FROM connections_models WHERE model = ?", (model,)
            ).fetchone()
            generation = (int(row[0]) if row else 0) + 1
            db.execute("DELETE FROM connections_models WHERE model = ?", (model,))
            db.execute(
                "INSERT INTO connections_models (model, generation) VALUES (?, ?)",
                (model, generation),
            )
            db.execute("DELETE FROM connections_snapshot WHERE model = ?", (model,))
        return generation

    # -- the snapshot ------------------------------------------------------------------------

    def snapshot_batches(self, model: str, *, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """The model's snapshot as Arrow batches of (record_key, checksum), a page at a time."""
        after = ""  # every key is JSON text, never empty: the first page starts above ""
        while True:
            with self.database.read() as db:
                rows = db.execute(
                    "SELECT record_key, checksum FROM connections_snapshot "
                    "WHERE model = ? AND record_key > ? ORDER BY record_key LIMIT ?",
                    (model, after, batch_rows),
                ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            keys, checksums = zip(*rows, strict=True)
            yield pa.RecordBatch.from_arrays(
                [pa.array(keys, pa.string()), pa.array(checksums, pa.string())],
                schema=SNAPSHOT_SCHEMA,
            )
            if len(rows) < batch_rows:
                return

    def snapshot_size(self, model: str) -> int:
        """How many records the model's snapshot holds."""
        with self.database.read() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM connections_snapshot WHERE model = ?", (model,)
            ).fetchone()
        return int(row[0]) if row else 0

    # -- sends -------------------------------------------------------------------------------

    def lookup(self, message_ids: Sequence[str]) -> dict[str, SendRecord]:
        """What the ledger holds for these message ids (absent: never tried)."""
        found: dict[str, SendRecord] = {}
        with self.database.read() as db:
            for start in range(0, len(message_ids), _LOOKUP_CHUNK):
                chunk = message_ids[start : start + _LOOKUP_CHUNK]
                marks = ", ".join("?" for _ in chunk)
                rows = db.execute(
                    "SELECT message_id, model, record_key, mapping, change, checksum, outcome, "
                    f"reason, attempts, first_failure_at FROM connections_sends "
                    f"WHERE message_id IN ({marks})",
                    tuple(chunk),
                ).fetchall()
                for row in rows:
                    found[row[0]] = SendRecord(*row[:8], int(row[8]), row[9])
        return found

    def record(
        self,
        sends: Iterable[SendRecord],
        *,
        advance: Iterable[tuple[str, str, str | None]] = (),
        now: float | None = None,
    ) -> None:
        """Record send outcomes and move the snapshot, in one transaction.

        Args:
            sends: the outcomes; a `failed` one keeps the first failure time already recorded.
            advance: (model, record_key, checksum) per record whose messages are all recorded;
                checksum None removes the record from the snapshot (it was deleted).
            now: the time to record (Unix seconds), for tests.
        """
        stamp = int(now if now is not None else time.time())
        with self.database.transaction() as db:
            for send in sends:
                first_failure = send.first_failure_at
                if send.outcome == "failed" and first_failure is None:
                    first_failure = stamp
                db.execute(
                    "INSERT INTO connections_sends (message_id, model, record_key, mapping, change, "
                    "checksum, outcome, reason, attempts, first_failure_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO UPDATE SET "
                    "outcome = excluded.outcome, reason = excluded.reason, "
                    "attempts = connections_sends.attempts + excluded.attempts, "
                    "first_failure_at = COALESCE(connections_sends.first_failure_at, "
                    "excluded.first_failure_at), updated_at = excluded.updated_at",
                    (
                        send.message_id,
                        send.model,
                        send.record_key,
                        send.mapping,
                        send.change,
                        send.checksum,
                        send.outcome,
                        send.reason,
                        send.attempts,
                        first_failure,
                        stamp,
                    ),
                )
            for model, record_key, checksum in advance:
                if checksum is None:
                    db.execute(
                        "DELETE FROM connections_snapshot WHERE model = ? AND record_key = ?",
                        (model, record_key),
                    )
                else:
                    db.execute(
                        "INSERT INTO connections_snapshot (model, record_key, checksum) "
                        "VALUES (?, ?, ?) ON CONFLICT (model, record_key) DO UPDATE SET "
                        "checksum = excluded.checksum",
                        (model, record_key, checksum),
                    )

    def sends(
        self, model: str, *, outcomes: Iterable[str] | None = None, limit: int | None = None
    ) -> list[SendRecord]:
        """The model's recorded messages (optionally only some outcomes, at most `limit`), oldest first."""
        wanted = tuple(outcomes) if outcomes is not None else None
        sql = (
            "SELECT message_id, model, record_key, mapping, change, checksum, outcome, reason, "
            "attempts, first_failure_at FROM connections_sends WHERE model = ?"
        )
        params: list[object] = [model]
        if wanted is not None:
            sql += f" AND outcome IN ({', '.join('?' for _ in wanted)})"
            params.extend(wanted)
        sql += " ORDER BY updated_at, message_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self.database.read() as db:
            rows = db.execute(sql, tuple(params)).fetchall()
        return [SendRecord(*row[:8], int(row[8]), row[9]) for row in rows]
