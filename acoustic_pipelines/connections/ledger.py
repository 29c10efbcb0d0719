"""What Segment Connections remembers between syncs: each model's snapshot and its sync ledger.

Both live in the ledger database (`acoustic_pipelines/database.py`: a SQLite file by default, a
PostgreSQL server every machine sees by one setting), in the same database so that one
transaction records what was sent and moves the snapshot for exactly those records:

- `connections_snapshot` (model, record_key, checksum, version): the last committed state of each
  record (Segment keeps the same: a record id and a small checksum per row, never the columns)
  and how many moves of it were committed. A deleted record stays as a tombstone (checksum '')
  keeping its version, so a key added again never reuses an old message id.
- `connections_messages` (model, record, mapping → message id, change, checksum, outcome, reason,
  attempts, first failure time): per record and mapping, the message of its latest move, whose
  id is derived from (model, key, checksum, mapping, generation, the version the record's move
  starts from), so a re-run finds what an earlier run already sent, and every committed move gets
  new ids. A re-run needs only the messages of moves not yet committed: the transaction that
  commits a record's move removes its `sent` messages (Segment and the archive hold them, the
  sync history counts them). What stays is small: moves under way, and each record's problems
  (`failed`, `rejected`, `given_up`) until its next move. Keyed by record, not by a random
  message id, so recording a sync's sends writes a small table near where it last wrote.
  (Earlier ledgers kept every message ever sent in `connections_sends`, keyed by message id;
  opening one migrates it: `_migrate`.)
- `connections_models` (model, generation): `reset` raises the generation, which gives every
  record new message ids (Segment would otherwise drop the resend as a duplicate).
- `connections_snapshot_tokens` (model, token): names the snapshot's committed state. Every
  transaction that moves a snapshot chains its token (`chain_token`: a digest of the old token and
  of the records moved), `reset` draws a new one. A sync that knew the old token and what it moved
  computes the new one itself; if the database holds that same token, no other writer came in
  between, and the sync's own copy of the snapshot is the committed one.

The snapshot cache: reading a snapshot of millions of rows out of the database on every sync
would cost more than the diff itself, so after a sync the committed snapshot is also written as
a Parquet file named by its token (`snapshot_cache`, beside a SQLite ledger; for PostgreSQL in
the temporary folder of the machine), with each row's fast hash (`changes.py`). A sync uses the
file only when its token is the database's current one; otherwise (a new machine, a run killed
after its last commit, another writer) it reads the snapshot from the database, as before. The
database stays the only record of what was sent: losing the cache costs time, never a record.

Outcomes: `sent` (the Tracking API answered 200), `rejected` (Segment refuses the record: the
mapping's validation, or over 32 KB), `failed` (retried on later syncs), `given_up` (failed for
longer than `retry_days`). The snapshot of a record moves only once each of its messages is sent,
rejected or given up.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow as pa

from acoustic_pipelines.database import Connection, Database, Session

__all__ = ["FINAL_OUTCOMES", "Advance", "Outcome", "SendRecord", "SyncLedger", "chain_token"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS connections_models (
    model TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS connections_snapshot (
    model TEXT NOT NULL,
    record_key TEXT NOT NULL,
    checksum TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (model, record_key)
);
CREATE TABLE IF NOT EXISTS connections_messages (
    model TEXT NOT NULL,
    record_key TEXT NOT NULL,
    mapping TEXT NOT NULL,
    message_id TEXT NOT NULL,
    change TEXT NOT NULL,
    checksum TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    attempts BIGINT NOT NULL,
    first_failure_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (model, record_key, mapping)
);
CREATE TABLE IF NOT EXISTS connections_snapshot_tokens (
    model TEXT PRIMARY KEY,
    token TEXT NOT NULL
)
"""
FINAL_OUTCOMES: Final = frozenset(("sent", "rejected", "given_up"))
_LOOKUP_CHUNK: Final = 500
SNAPSHOT_SCHEMA: Final = pa.schema(
    [("record_key", pa.string()), ("checksum", pa.string()), ("version", pa.int64())]
)
#: The checksum of a tombstone in `connections_snapshot` (a real one is an MD5 in hex).
TOMBSTONE: Final = ""

Outcome = str
#: A record's committed move: (model, record key, checksum or None when deleted, new version).
Advance = tuple[str, str, str | None, int]

_COLUMNS: Final = (
    "message_id, model, record_key, mapping, change, checksum, outcome, reason, attempts, "
    "first_failure_at"
)
# The same message again (a retry) adds its attempts and keeps its first failure; a message of
# a later move of the record replaces it.
_SAME: Final = "connections_messages.message_id = excluded.message_id"
_UPSERT_SEND: Final = (
    f"INSERT INTO connections_messages ({_COLUMNS}, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (model, record_key, mapping) DO UPDATE SET "
    f"attempts = CASE WHEN {_SAME} THEN connections_messages.attempts + excluded.attempts "
    "ELSE excluded.attempts END, "
    f"first_failure_at = CASE WHEN {_SAME} "
    "THEN COALESCE(connections_messages.first_failure_at, excluded.first_failure_at) "
    "ELSE excluded.first_failure_at END, "
    "message_id = excluded.message_id, change = excluded.change, "
    "checksum = excluded.checksum, outcome = excluded.outcome, reason = excluded.reason, "
    "updated_at = excluded.updated_at"
)
_FORGET_SENT: Final = (
    "DELETE FROM connections_messages WHERE model = ? AND record_key = ? AND outcome = 'sent'"
)
_UPSERT_SNAPSHOT: Final = (
    "INSERT INTO connections_snapshot (model, record_key, checksum, version) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (model, record_key) DO UPDATE SET checksum = excluded.checksum, "
    "version = excluded.version"
)


def chain_token(token: str, advance: Iterable[Advance]) -> str:
    """The snapshot token after these moves (model, key, checksum or None, version) from `token`."""
    digest = hashlib.sha256(token.encode("utf-8"))
    for _model, record_key, checksum, version in advance:
        digest.update(f"\x1e{record_key}\x1f{checksum or ''}\x1f{version}".encode())
    return digest.hexdigest()[:32]


def _default_cache(database: Database) -> Path:
    """Where snapshot files go: beside a SQLite ledger, else in this machine's temporary folder."""
    if database.is_postgres:
        digest = hashlib.sha256(database.display.encode("utf-8")).hexdigest()[:16]
        return (
            Path(tempfile.gettempdir()) / "acoustic-pipelines" / f"connections-snapshots-{digest}"
        )
    path = Path(database.location.removeprefix("sqlite:///"))
    return path.parent / f"{path.stem}-snapshots"


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

    def __init__(self, database: Database, *, snapshot_cache: str | Path | None = None) -> None:
        """Args:
        database: the ledger database.
        snapshot_cache: the folder of snapshot files (default: beside a SQLite ledger, in the
            temporary folder for PostgreSQL).
        """
        self.database = database
        self.snapshot_cache = (
            Path(snapshot_cache) if snapshot_cache is not None else _default_cache(database)
        )
        self._db: Database | Session = database
        database.create(SCHEMA)
        _migrate(database)

    @contextmanager
    def held(self) -> Iterator[SyncLedger]:
        """Use one held connection (`Database.session`) until the block ends: a sync's many
        small transactions then cost no connection set-up and, on SQLite, no checkpoint each."""
        if self._db is not self.database:  # already held
            yield self
            return
        with self.database.session() as session:
            self._db = session
            try:
                yield self
            finally:
                self._db = self.database

    # -- generations -------------------------------------------------------------------------

    def generation(self, model: str) -> int:
        """The model's generation (0 until the first reset)."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT generation FROM connections_models WHERE model = ?", (model,)
            ).fetchone()
        return int(row[0]) if row else 0

    def reset(self, model: str) -> int:
        """Forget the model's snapshot: the next sync sends every record as added, with new ids."""
        with self._db.transaction() as db:
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
            db.execute("DELETE FROM connections_messages WHERE model = ?", (model,))
            _set_token(db, model, uuid.uuid4().hex)
        self.drop_cached_snapshots(model)
        return generation

    # -- the snapshot ------------------------------------------------------------------------

    def snapshot_batches(self, model: str, *, batch_rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """The model's snapshot as Arrow batches of (record_key, checksum, version), a page at a
        time; a tombstone (a deleted record's version) has a null checksum."""
        after = ""  # every key is JSON text, never empty: the first page starts above ""
        while True:
            with self._db.read() as db:
                rows = db.execute(
                    "SELECT record_key, checksum, version FROM connections_snapshot "
                    "WHERE model = ? AND record_key > ? ORDER BY record_key LIMIT ?",
                    (model, after, batch_rows),
                ).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            keys, checksums, versions = zip(*rows, strict=True)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(keys, pa.string()),
                    pa.array([c or None for c in checksums], pa.string()),
                    pa.array(versions, pa.int64()),
                ],
                schema=SNAPSHOT_SCHEMA,
            )
            if len(rows) < batch_rows:
                return

    def snapshot_token(self, model: str, *, create: bool = True) -> str:
        """The token of the model's committed snapshot.

        A model without one gets one drawn now, or "" (no snapshot file has it) with
        `create=False`.
        """
        with self._db.read() as db:
            row = db.execute(
                "SELECT token FROM connections_snapshot_tokens WHERE model = ?", (model,)
            ).fetchone()
        if row:
            return str(row[0])
        if not create:
            return ""
        with self._db.transaction() as db:
            return _token(db, model)

    def snapshot_file(self, model: str, token: str) -> Path:
        """The snapshot file of the model's state `token` (which may not exist)."""
        return self.snapshot_cache / f"{_file_stem(model)}.{token}.parquet"

    def cached_snapshot(self, model: str, *, create: bool = True) -> tuple[str, Path | None]:
        """The committed snapshot's token and its file, when this machine has it."""
        token = self.snapshot_token(model, create=create)
        path = self.snapshot_file(model, token)
        return token, (path if token and path.is_file() else None)

    def drop_cached_snapshots(self, model: str, *, keep: str | None = None) -> None:
        """Remove the model's snapshot files (all but the one of token `keep`)."""
        stem = _file_stem(model)
        if not self.snapshot_cache.is_dir():
            return
        for path in self.snapshot_cache.glob(f"{stem}.*.parquet"):
            if keep is None or path.name != f"{stem}.{keep}.parquet":
                path.unlink(missing_ok=True)

    def snapshot_size(self, model: str) -> int:
        """How many records the model's snapshot holds (tombstones of deleted ones not counted)."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM connections_snapshot WHERE model = ? AND checksum <> ?",
                (model, TOMBSTONE),
            ).fetchone()
        return int(row[0]) if row else 0

    # -- sends -------------------------------------------------------------------------------

    def lookup(self, model: str, wanted: Sequence[tuple[str, str, str]]) -> dict[str, SendRecord]:
        """What the ledger holds for these messages: (record key, mapping, message id) of the
        model; by message id, only those it holds (absent: never tried)."""
        ids = {message_id for _, _, message_id in wanted}
        keys = sorted({key for key, _, _ in wanted})
        found: dict[str, SendRecord] = {}
        with self._db.read() as db:
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                marks = ", ".join("?" for _ in chunk)
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM connections_messages "
                    f"WHERE model = ? AND record_key IN ({marks})",
                    (model, *chunk),
                ).fetchall()
                for row in rows:
                    if row[0] in ids:
                        found[row[0]] = SendRecord(*row[:8], int(row[8]), row[9])
        return found

    def record(
        self,
        sends: Iterable[SendRecord],
        *,
        advance: Iterable[Advance] = (),
        now: float | None = None,
    ) -> None:
        """Record send outcomes and move the snapshot, in one transaction.

        Args:
            sends: the outcomes; a `failed` one keeps the first failure time already recorded.
            advance: (model, record_key, checksum, version) per record whose messages are all
                recorded: its new committed state; checksum None leaves a tombstone (it was
                deleted) keeping the version. The record's `sent` messages are forgotten (a
                re-run derives new ids for its next move); its problems stay.
            now: the time to record (Unix seconds), for tests.
        """
        stamp = int(now if now is not None else time.time())
        rows = []
        for send in sends:
            first_failure = send.first_failure_at
            if send.outcome == "failed" and first_failure is None:
                first_failure = stamp
            rows.append(
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
                )
            )
        rows.sort(key=lambda row: (row[1], row[2], row[3]))  # in key order: nearby pages
        moved: dict[str, list[Advance]] = {}
        for item in advance:
            moved.setdefault(item[0], []).append(item)
        with self._db.transaction() as db:
            if rows:
                db.executemany(_UPSERT_SEND, rows)
            for model, items in moved.items():
                ordered = sorted(items, key=lambda item: item[1])
                db.executemany(
                    _UPSERT_SNAPSHOT,
                    [
                        (model, key, TOMBSTONE if checksum is None else checksum, version)
                        for _, key, checksum, version in ordered
                    ],
                )
                db.executemany(_FORGET_SENT, [(model, key) for _, key, _, _ in ordered])
                _set_token(db, model, chain_token(_token(db, model), items))

    def sends(
        self, model: str, *, outcomes: Iterable[str] | None = None, limit: int | None = None
    ) -> list[SendRecord]:
        """The model's recorded messages, oldest first (optionally only some outcomes, at most
        `limit`): those of moves not yet committed, and each record's problems."""
        wanted = tuple(outcomes) if outcomes is not None else None
        sql = f"SELECT {_COLUMNS} FROM connections_messages WHERE model = ?"
        params: list[object] = [model]
        if wanted is not None:
            sql += f" AND outcome IN ({', '.join('?' for _ in wanted)})"
            params.extend(wanted)
        sql += " ORDER BY updated_at, message_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._db.read() as db:
            rows = db.execute(sql, tuple(params)).fetchall()
        return [SendRecord(*row[:8], int(row[8]), row[9]) for row in rows]


def _migrate(database: Database) -> None:
    """Bring a ledger written by earlier code to this layout (once; safe in many processes).

    - Snapshots from before versions: every record gets version 0, whose message ids are the
      ones the earlier code derived (`sync.derive_message_id`), so the sends it left unsettled
      are retried and deduplicated under the same ids.
    - `connections_sends` (every message ever sent, keyed by message id) becomes
      `connections_messages`: per record and mapping, the row of a move not yet committed if
      there is one (a `sent` one whose snapshot did not move, a `failed` one), else the latest;
      `sent` rows of committed moves are dropped.
    """
    if "version" in database.columns("connections_snapshot") and not database.columns(
        "connections_sends"
    ):
        return
    with database.transaction() as db:
        if "version" not in database.columns("connections_snapshot", db):
            db.execute(
                "ALTER TABLE connections_snapshot ADD COLUMN version BIGINT NOT NULL DEFAULT 0"
            )
        if database.columns("connections_sends", db):
            db.execute(_MIGRATE_SENDS)
            db.execute("DROP TABLE connections_sends")


# A move is committed when the snapshot holds its checksum (or, for a deletion, the record is
# gone or a tombstone).
_MIGRATE_SENDS: Final = (
    f"INSERT INTO connections_messages ({_COLUMNS}, updated_at) "
    f"SELECT {_COLUMNS}, updated_at FROM ("
    "SELECT m.*, ROW_NUMBER() OVER (PARTITION BY model, record_key, mapping "
    "ORDER BY committed, updated_at DESC, message_id) AS pick FROM ("
    "SELECT s.*, CASE WHEN s.change = 'deleted' "
    f"THEN CASE WHEN p.record_key IS NULL OR p.checksum = '{TOMBSTONE}' THEN 1 ELSE 0 END "
    "ELSE CASE WHEN p.checksum = s.checksum THEN 1 ELSE 0 END END AS committed "
    "FROM connections_sends s LEFT JOIN connections_snapshot p "
    "ON p.model = s.model AND p.record_key = s.record_key) m) ranked "
    "WHERE pick = 1 AND NOT (outcome = 'sent' AND committed = 1)"
)


def _token(db: Connection, model: str) -> str:
    """The model's snapshot token inside a transaction (a new random one if it has none)."""
    row = db.execute(
        "SELECT token FROM connections_snapshot_tokens WHERE model = ?", (model,)
    ).fetchone()
    if row:
        return str(row[0])
    token = uuid.uuid4().hex
    _set_token(db, model, token)
    return token


def _set_token(db: Connection, model: str, token: str) -> None:
    """Name the model's snapshot state (inside the transaction that changed it)."""
    db.execute(
        "INSERT INTO connections_snapshot_tokens (model, token) VALUES (?, ?) "
        "ON CONFLICT (model) DO UPDATE SET token = excluded.token",
        (model, token),
    )


def _file_stem(model: str) -> str:
    """A file-name-safe stem for a model name (the name's digest keeps distinct names apart)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", model)[:60]
    return f"{safe}-{hashlib.sha256(model.encode('utf-8')).hexdigest()[:8]}"
