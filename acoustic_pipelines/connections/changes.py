"""Change detection, Segment's way: the model's rows against the last committed snapshot.

A sync reads the model as Arrow record batches; they stream into an in-memory DuckDB database
with a memory limit that spills to a temporary folder rather than grow (an on-disk database was
5x slower: every insert committed to its write-ahead log). Everything per row is DuckDB's, in C++;
Python only ever sees the rows that changed, a page at a time, so memory stays bounded for models
of millions of rows.

Two fingerprints per row:
- the checksum, Segment's stable one: the MD5 of the row as a JSON object (what the mappings read
  under `$.properties`); it goes into the message id and the ledger's snapshot;
- the fast hash: DuckDB's 64-bit `hash()` of the row's values and the model's schema, far
  cheaper than the JSON and its MD5. The snapshot file (`ledger.py`) keeps it beside the
  checksum. A row whose fast hash equals its snapshot's is unchanged (and was accepted before:
  only accepted rows enter a snapshot) and costs nothing more. Only the others (new keys, changed
  rows, snapshots without hashes, a DuckDB whose `hash()` changed) are turned into JSON, checked
  and checksummed, then compared by checksum, so a changed hash function costs time, never a
  resend.

One pass classifies every record: added, updated, deleted or unchanged; `ChangeSet.advance`
then takes note of the records whose sends are recorded, and `write_snapshot` writes the
snapshot they leave, hashes included, for the next sync.

Versions: each snapshot record carries the number of its committed moves (`version`), and a
deleted record stays in the snapshot as a tombstone (checksum NULL) keeping its version. A change
carries the version its move starts from, which goes into the message id (`sync.py`): a row that
returns to an earlier state (A → B → A), or a key deleted and added again, gets new message ids,
while a re-run of the same uncommitted move derives the same ones.

Rejected records (kept with their reason, never sent, never put in the snapshot):
- a null primary key, or a key more than one row has (every such row);
- a model of more than 512 columns, or with a column name over 128 characters (every row);
- a record over 512 KiB, or a column value over 128 KiB, as JSON.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import orjson
import pyarrow as pa

__all__ = [
    "MAX_COLUMN_NAME",
    "MAX_COLUMNS",
    "MAX_RECORD_BYTES",
    "MAX_VALUE_BYTES",
    "Change",
    "ChangeCounts",
    "ChangeSet",
    "SNAPSHOT_FILE_SCHEMA",
    "Rejection",
    "detect_changes",
]

log = logging.getLogger(__name__)

MAX_COLUMNS: Final = 512
MAX_COLUMN_NAME: Final = 128
MAX_RECORD_BYTES: Final = 512 * 1024
MAX_VALUE_BYTES: Final = 128 * 1024
DEFAULT_PAGE_ROWS: Final = 5_000
# With Python, DuckDB, Arrow and a page of changes around it, the sync's peak stays under 500 MB
# for any model size (1M rows: bench_connections.py); past this, DuckDB spills to disk.
DUCKDB_MEMORY_LIMIT: Final = "160MB"

ChangeKind = Literal["added", "updated", "deleted"]
#: A snapshot file's columns: the record key, its checksum (null: a tombstone), its row's fast
#: hash and its version (files written before versions have none: every version is then 0).
SNAPSHOT_FILE_SCHEMA: Final = pa.schema(
    [
        ("record_key", pa.string()),
        ("checksum", pa.string()),
        ("row_hash", pa.uint64()),
        ("version", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Change:
    """One record to act on: its change, record key (JSON text), checksum, columns and version.

    For a deleted record the checksum is the snapshot's and the columns are the primary key
    alone (the snapshot keeps no other column, as Segment's does not). `version` is the record's
    committed version this move starts from (0 for a key the snapshot never held); committing
    the move makes it `version + 1`.
    """

    kind: ChangeKind
    key: str
    checksum: str
    properties: dict[str, Any]
    version: int = 0


@dataclass(frozen=True)
class Rejection:
    """A row Segment would not sync, kept with its reason and the row as JSON text."""

    key: str | None
    reason: str
    row: str


@dataclass(frozen=True)
class ChangeCounts:
    """How the model's rows compare with the snapshot."""

    extracted: int
    added: int
    updated: int
    deleted: int
    unchanged: int
    rejected: int


class ChangeSet:
    """The outcome of one diff, held in DuckDB; read it page by page, then close it."""

    def __init__(self, connection: Any, folder: Path, primary_key: str, counts: ChangeCounts):
        self._connection = connection
        self._folder = folder
        self.primary_key = primary_key
        self.counts = counts

    @property
    def rehashed(self) -> int:
        """Unchanged rows whose fast hash was new to the snapshot (written by `write_snapshot`)."""
        return _count(self._connection, "SELECT count(*) FROM candidates WHERE kind = 'unchanged'")

    def changes(self, *, page_rows: int = DEFAULT_PAGE_ROWS) -> Iterator[list[Change]]:
        """Every change, a page at a time (added and updated rows with all their columns)."""
        cursor = self._connection.cursor()  # its own stream: one pass over the table
        try:
            cursor.execute(
                "SELECT kind, record_key, checksum, row_json, version FROM ("
                "SELECT 0 AS part, n AS position, kind, record_key, checksum, row_json, version "
                "FROM candidates WHERE kind IN ('added', 'updated') UNION ALL "
                "SELECT 1, 0, 'deleted', record_key, checksum, NULL, version FROM deleted) "
                "ORDER BY part, position, record_key"
            )
            while rows := cursor.fetchmany(page_rows):
                yield [self._change(*row) for row in rows]
        finally:
            cursor.close()

    def _change(
        self, kind: ChangeKind, key: str, checksum: str, row_json: str | None, version: int
    ) -> Change:
        if row_json is None:  # deleted: the snapshot keeps the key alone
            return Change(kind, key, checksum, {self.primary_key: orjson.loads(key)}, version)
        return Change(kind, key, checksum, orjson.loads(row_json), version)

    def rejections(self, *, page_rows: int = DEFAULT_PAGE_ROWS) -> Iterator[list[Rejection]]:
        """The rejected rows with their reasons, a page at a time."""
        cursor = self._connection.cursor()
        try:
            cursor.execute(
                "SELECT record_key, reason, row_json FROM candidates WHERE kind = 'rejected' "
                "ORDER BY n"
            )
            while rows := cursor.fetchmany(page_rows):
                yield [Rejection(*row) for row in rows]
        finally:
            cursor.close()

    def advance(self, moved: Sequence[tuple[str, str | None, int]]) -> None:
        """Take note of records whose snapshot moved: (record key, checksum or None when deleted,
        the version the move committed)."""
        if not moved:
            return
        keys, checksums, versions = zip(*moved, strict=True)
        table = pa.table(
            {
                "record_key": pa.array(keys, pa.string()),
                "checksum": pa.array(checksums, pa.string()),
                "version": pa.array(versions, pa.int64()),
            }
        )
        self._connection.register("moved", table)
        try:
            self._connection.execute(
                "INSERT INTO advanced SELECT record_key, checksum, version FROM moved"
            )
        finally:
            self._connection.unregister("moved")

    def write_snapshot(self, path: Path) -> None:
        """Write the snapshot the advanced records leave (the one before, moved) to `path`.

        Deleted records stay as tombstones (no checksum, no hash) with their version. Written
        beside it first, then renamed: a reader sees the whole file or none.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            self._connection.execute(
                "COPY (SELECT a.record_key, a.checksum, c.row_hash, a.version FROM advanced a "
                "JOIN candidates c ON c.record_key = a.record_key "
                "AND c.kind IN ('added', 'updated') AND c.checksum = a.checksum "
                "UNION ALL "
                "SELECT record_key, NULL, NULL, version FROM advanced WHERE checksum IS NULL "
                "UNION ALL "
                "SELECT s.record_key, s.checksum, "
                "CASE WHEN c.kind = 'unchanged' THEN c.row_hash ELSE s.row_hash END, s.version "
                "FROM snapshot s LEFT JOIN candidates c "
                "ON c.record_key = s.record_key AND c.kind = 'unchanged' "
                "ANTI JOIN advanced a ON a.record_key = s.record_key"
                f") TO {_sql_text(str(partial))} (FORMAT parquet)"
            )
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)

    def close(self) -> None:
        """Drop the DuckDB database and its folder."""
        self._connection.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> ChangeSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _count(connection: Any, sql: str) -> int:
    """The one number a query answers (its result read to the end, which frees the connection)."""
    ((count,),) = connection.execute(sql).fetchall()
    return int(count)


def _quote(name: str) -> str:
    """A DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def _sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _model_problem(schema: pa.Schema, primary_key: str) -> str | None:
    """Why every row of a model with this schema is rejected (None when the schema is fine)."""
    if primary_key not in schema.names:
        return f"the primary key column {primary_key!r} is not among the model's columns"
    if len(schema.names) > MAX_COLUMNS:
        return f"the model has {len(schema.names)} columns; Segment syncs at most {MAX_COLUMNS}"
    for name in schema.names:
        if len(name) > MAX_COLUMN_NAME:
            return (
                f"column name {name[:40]!r}… is {len(name)} characters; Segment allows at most "
                f"{MAX_COLUMN_NAME}"
            )
    return None


def _reason_sql(schema: pa.Schema, model_problem: str | None) -> str:
    """Why Segment rejects a candidate row (`record_key`, `row`, `row_json`, `copies`), or NULL."""
    if model_problem is not None:
        return _sql_text(model_problem)
    # A value is part of its row's JSON: only a row over 128 KiB can hold a value over it.
    too_big = " ".join(
        f"WHEN strlen(to_json(struct_extract(row, {_sql_text(c)}))::VARCHAR) > {MAX_VALUE_BYTES} "
        f"THEN {_sql_text(f'column {c} is over 128 KiB as JSON')}"
        for c in schema.names
    )
    return (
        "CASE WHEN record_key IS NULL THEN 'the primary key is null' "
        f"WHEN strlen(row_json) > {MAX_RECORD_BYTES} THEN 'the record is over 512 KiB as JSON' "
        f"WHEN strlen(row_json) > {MAX_VALUE_BYTES} THEN CASE {too_big} END END"
    )


def _runs(
    batches: Iterable[pa.RecordBatch],
) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
    """Consecutive batches of one schema, as (schema, batches) runs (a model has one, usually)."""
    yield from itertools.groupby(batches, key=lambda batch: batch.schema)


def detect_changes(
    batches: Iterable[pa.RecordBatch],
    snapshot: Iterable[pa.RecordBatch] | Path,
    *,
    primary_key: str,
    workdir: str | Path | None = None,
) -> ChangeSet:
    """Compare the model's rows with the snapshot.

    Args:
        batches: the model's rows.
        snapshot: the last committed snapshot: batches of (record_key, checksum[, row_hash]
            [, version]; a null or empty checksum is a tombstone) — empty on the first sync
            (everything is added) — or a snapshot file (`ChangeSet.write_snapshot`).
        primary_key: the column identifying a record.
        workdir: where DuckDB spills past its memory limit (default: a new temporary folder).

    Returns:
        The change set (close it, or use it as a context manager).
    """
    import duckdb

    folder = Path(tempfile.mkdtemp(prefix="connections-diff-", dir=workdir))
    connection = duckdb.connect(":memory:")  # spills to `folder` past DUCKDB_MEMORY_LIMIT
    try:
        connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        connection.execute(f"SET temp_directory = {_sql_text(str(folder / 'spill'))}")
        connection.execute("SET preserve_insertion_order = false")
        _load_snapshot(connection, snapshot)
        runs = _load_rows(connection, batches, primary_key)
        counts = _classify(connection, runs)
    except BaseException:
        connection.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    log.debug("diff of %s rows: %s", counts.extracted, counts)
    return ChangeSet(connection, folder, primary_key, counts)


def _load_snapshot(connection: Any, snapshot: Iterable[pa.RecordBatch] | Path) -> None:
    """The `snapshot` table: record_key, checksum (NULL: a tombstone), row_hash (NULL when not
    known) and version (0 when the source has none: written before versions existed)."""
    connection.execute(
        "CREATE TABLE snapshot (record_key VARCHAR, checksum VARCHAR, row_hash UBIGINT, "
        "version BIGINT)"
    )
    connection.execute(
        "CREATE TABLE advanced (record_key VARCHAR, checksum VARCHAR, version BIGINT)"
    )
    if isinstance(snapshot, Path):
        import pyarrow.parquet as pq

        names = pq.read_schema(snapshot).names
        connection.execute(
            f"INSERT INTO snapshot SELECT {_snapshot_columns(names)} "
            f"FROM read_parquet({_sql_text(str(snapshot))})"
        )
        return
    for part in snapshot:
        connection.register("part", part)
        connection.execute(
            f"INSERT INTO snapshot SELECT {_snapshot_columns(part.schema.names)} FROM part"
        )
        connection.unregister("part")


def _snapshot_columns(names: Sequence[str]) -> str:
    """The `snapshot` table's columns from a source with these column names."""
    hashed = "row_hash" if "row_hash" in names else "NULL"
    version = "coalesce(version, 0)" if "version" in names else "0"
    return f"record_key, nullif(checksum, ''), {hashed}, {version}"


def _load_rows(
    connection: Any, batches: Iterable[pa.RecordBatch], primary_key: str
) -> list[tuple[str, pa.Schema, str | None]]:
    """One `rows_<i>` table per run of batches: position, record key, fast hash, the row."""
    runs: list[tuple[str, pa.Schema, str | None]] = []
    loaded = 0
    for schema, run in _runs(batches):
        table = f"rows_{len(runs)}"
        problem = _model_problem(schema, primary_key)
        key = (
            f"to_json(b.{_quote(primary_key)})::VARCHAR" if primary_key in schema.names else "NULL"
        )
        # The schema is part of the hash: a renamed or retyped column changes every row's.
        fingerprint = _sql_text(str(schema))
        connection.register("stream", pa.RecordBatchReader.from_batches(schema, run))
        try:
            connection.execute(
                f"CREATE TABLE {table} AS SELECT {loaded} + row_number() OVER () AS n, "
                f"{key} AS record_key, hash(b, {fingerprint}) AS row_hash, b AS row "
                "FROM stream b"
            )
        finally:
            connection.unregister("stream")
        loaded += _count(connection, f"SELECT count(*) FROM {table}")
        runs.append((table, schema, problem))
    return runs


def _classify(connection: Any, runs: list[tuple[str, pa.Schema, str | None]]) -> ChangeCounts:
    """Find duplicate keys, turn the rows that may have changed into JSON, and count each kind."""
    keys = " UNION ALL ".join(f"SELECT record_key FROM {table}" for table, _, _ in runs)
    keys = keys or "SELECT NULL::VARCHAR AS record_key WHERE false"
    connection.execute(
        "CREATE TABLE repeated AS SELECT record_key, count(*) AS copies "
        f"FROM ({keys}) WHERE record_key IS NOT NULL GROUP BY record_key HAVING count(*) > 1"
    )
    connection.execute(
        "CREATE TABLE candidates (n BIGINT, record_key VARCHAR, row_hash UBIGINT, "
        "row_json VARCHAR, checksum VARCHAR, kind VARCHAR, reason VARCHAR, version BIGINT)"
    )
    extracted = 0
    for table, schema, problem in runs:
        every_row = "true" if problem is not None else "false"
        connection.execute(
            "INSERT INTO candidates SELECT n, record_key, row_hash, row_json, checksum, "
            "CASE WHEN reason IS NOT NULL THEN 'rejected' WHEN old IS NULL THEN 'added' "
            "WHEN old <> checksum THEN 'updated' ELSE 'unchanged' END, reason, version FROM ("
            f"SELECT *, coalesce({_reason_sql(schema, problem)}, "
            "CASE WHEN copies IS NOT NULL THEN 'the primary key ' || record_key || "
            "' is not unique: ' || copies || ' rows have it' END) AS reason, "
            "md5(row_json) AS checksum FROM ("
            "SELECT r.n, r.record_key, r.row_hash, r.row, to_json(r.row)::VARCHAR AS row_json, "
            "d.copies, s.checksum AS old, coalesce(s.version, 0) AS version "
            f"FROM {table} r LEFT JOIN snapshot s ON s.record_key = r.record_key "
            "LEFT JOIN repeated d ON d.record_key = r.record_key "
            f"WHERE {every_row} OR r.record_key IS NULL OR d.copies IS NOT NULL "
            "OR s.row_hash IS DISTINCT FROM r.row_hash))"
        )
        extracted += _count(connection, f"SELECT count(*) FROM {table}")
    connection.execute(
        "CREATE TABLE deleted AS SELECT s.record_key, s.checksum, s.version FROM snapshot s "
        f"ANTI JOIN ({keys}) r ON r.record_key = s.record_key WHERE s.checksum IS NOT NULL"
    )
    for table, _, _ in runs:
        connection.execute(f"DROP TABLE {table}")
    by_kind = dict(
        connection.execute("SELECT kind, count(*) FROM candidates GROUP BY kind").fetchall()
    )
    added, updated, rejected = (
        int(by_kind.get(kind, 0)) for kind in ("added", "updated", "rejected")
    )
    deleted = _count(connection, "SELECT count(*) FROM deleted")
    return ChangeCounts(
        extracted=extracted,
        added=added,
        updated=updated,
        deleted=int(deleted),
        unchanged=extracted - rejected - added - updated,
        rejected=rejected,
    )
