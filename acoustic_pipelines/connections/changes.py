"""Change detection, Segment's way: the model's rows against the last committed snapshot.

A sync reads the model as Arrow record batches; each batch goes into an in-memory DuckDB
database with a memory limit that spills to a temporary folder rather than grow (an on-disk
database was 5x slower: every insert committed to its write-ahead log), which works
out per row, in C++: the primary key as JSON text (the record key), the row as a JSON object
(what the mappings read under `$.properties`), its MD5 (the row checksum) and why Segment would
reject it. The snapshot (record key → checksum) is streamed in from the ledger database the same
way, and one join classifies every record: added, updated, deleted or unchanged. The changes are
then read back a page at a time; nothing holds all keys or rows in Python, so memory stays
bounded for models of millions of rows.

Rejected records (kept with their reason, never sent, never put in the snapshot):
- a null primary key, or a key more than one row has (every such row);
- a model of more than 512 columns, or with a column name over 128 characters (every row);
- a record over 512 KiB, or a column value over 128 KiB, as JSON.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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
    "Rejection",
    "detect_changes",
]

log = logging.getLogger(__name__)

MAX_COLUMNS: Final = 512
MAX_COLUMN_NAME: Final = 128
MAX_RECORD_BYTES: Final = 512 * 1024
MAX_VALUE_BYTES: Final = 128 * 1024
DEFAULT_PAGE_ROWS: Final = 5_000
DUCKDB_MEMORY_LIMIT: Final = "256MB"

ChangeKind = Literal["added", "updated", "deleted"]


@dataclass(frozen=True)
class Change:
    """One record to act on: its change, record key (JSON text), checksum and columns.

    For a deleted record the checksum is the snapshot's and the columns are the primary key
    alone (the snapshot keeps no other column, as Segment's does not).
    """

    kind: ChangeKind
    key: str
    checksum: str
    properties: dict[str, Any]


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

    def changes(self, *, page_rows: int = DEFAULT_PAGE_ROWS) -> Iterator[list[Change]]:
        """Every change, a page at a time (added and updated rows with all their columns)."""
        cursor = self._connection.cursor()  # its own stream: one pass over the table
        try:
            cursor.execute("SELECT kind, record_key, checksum, row_json FROM changes ORDER BY n")
            while rows := cursor.fetchmany(page_rows):
                yield [self._change(*row) for row in rows]
        finally:
            cursor.close()

    def _change(self, kind: ChangeKind, key: str, checksum: str, row_json: str | None) -> Change:
        if row_json is None:  # deleted: the snapshot keeps the key alone
            return Change(kind, key, checksum, {self.primary_key: orjson.loads(key)})
        return Change(kind, key, checksum, orjson.loads(row_json))

    def rejections(self, *, page_rows: int = DEFAULT_PAGE_ROWS) -> Iterator[list[Rejection]]:
        """The rejected rows with their reasons, a page at a time."""
        cursor = self._connection.cursor()
        try:
            cursor.execute(
                "SELECT record_key, reason, row_json FROM current WHERE reason IS NOT NULL ORDER BY n"
            )
            while rows := cursor.fetchmany(page_rows):
                yield [Rejection(*row) for row in rows]
        finally:
            cursor.close()

    def close(self) -> None:
        """Drop the DuckDB database and its folder."""
        self._connection.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> ChangeSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quote(name: str) -> str:
    """A DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


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


def _batch_sql(schema: pa.Schema, primary_key: str, model_problem: str | None) -> str:
    """The per-row computation on one Arrow batch registered as `batch`."""
    columns = list(schema.names)
    if model_problem is not None:
        key = f"to_json(b.{_quote(primary_key)})::VARCHAR" if primary_key in columns else "NULL"
        reason = "'" + model_problem.replace("'", "''") + "'"
    else:
        key = f"to_json(b.{_quote(primary_key)})::VARCHAR"
        too_big = " ".join(
            f"WHEN strlen(to_json(b.{_quote(c)})::VARCHAR) > {MAX_VALUE_BYTES} "
            f"THEN {_sql_text(f'column {c} is over 128 KiB as JSON')}"
            for c in columns
        )
        reason = (
            f"CASE WHEN b.{_quote(primary_key)} IS NULL THEN 'the primary key is null' "
            f"WHEN strlen(b.__row_json) > {MAX_RECORD_BYTES} THEN 'the record is over 512 KiB as JSON' "
            f"{too_big} END"
        )
    return (
        f"SELECT {key} AS record_key, b.__row_json, md5(b.__row_json) AS checksum, "
        f"{reason} AS reason FROM (SELECT b.*, to_json(b)::VARCHAR AS __row_json FROM batch b) b"
    )


def _sql_text(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def detect_changes(
    batches: Iterable[pa.RecordBatch],
    snapshot: Iterable[pa.RecordBatch],
    *,
    primary_key: str,
    workdir: str | Path | None = None,
) -> ChangeSet:
    """Compare the model's rows with the snapshot (record_key, checksum batches).

    Args:
        batches: the model's rows (all batches share one schema).
        snapshot: the last committed snapshot; empty on the first sync (everything is added).
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
        connection.execute(f"SET temp_directory = '{folder / 'spill'}'")
        connection.execute("SET preserve_insertion_order = false")
        connection.execute(
            "CREATE TABLE current_raw (record_key VARCHAR, row_json VARCHAR, checksum VARCHAR, "
            "reason VARCHAR)"
        )
        sql: str | None = None
        schema: pa.Schema | None = None
        for batch in batches:
            if sql is None or schema is None or not batch.schema.equals(schema):
                schema = batch.schema
                sql = _batch_sql(schema, primary_key, _model_problem(schema, primary_key))
            connection.register("batch", batch)
            connection.execute(f"INSERT INTO current_raw {sql}")
            connection.unregister("batch")
        connection.execute("CREATE TABLE snapshot (record_key VARCHAR, checksum VARCHAR)")
        for part in snapshot:
            connection.register("part", part)
            connection.execute("INSERT INTO snapshot SELECT record_key, checksum FROM part")
            connection.unregister("part")
        counts = _classify(connection)
    except BaseException:
        connection.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    log.debug("diff of %s rows: %s", counts.extracted, counts)
    return ChangeSet(connection, folder, primary_key, counts)


def _classify(connection: Any) -> ChangeCounts:
    """Mark duplicate keys, then build the `changes` table and count each kind."""
    connection.execute(
        "CREATE TABLE current AS WITH repeated AS (SELECT record_key, count(*) AS copies "
        "FROM current_raw WHERE record_key IS NOT NULL GROUP BY record_key HAVING count(*) > 1) "
        "SELECT row_number() OVER () AS n, c.record_key, c.row_json, c.checksum, "
        "CASE WHEN c.reason IS NULL AND r.copies IS NOT NULL "
        "THEN 'the primary key ' || c.record_key || ' is not unique: ' || r.copies || ' rows have it' "
        "ELSE c.reason END AS reason "
        "FROM current_raw c LEFT JOIN repeated r ON r.record_key = c.record_key"
    )
    connection.execute("DROP TABLE current_raw")
    connection.execute(
        "CREATE TABLE changes AS SELECT row_number() OVER () AS n, * FROM ("
        "SELECT 'added' AS kind, c.record_key, c.checksum, c.row_json FROM current c "
        "ANTI JOIN snapshot s ON s.record_key = c.record_key WHERE c.reason IS NULL "
        "UNION ALL "
        "SELECT 'updated', c.record_key, c.checksum, c.row_json FROM current c "
        "JOIN snapshot s ON s.record_key = c.record_key "
        "WHERE c.reason IS NULL AND s.checksum <> c.checksum "
        "UNION ALL "
        "SELECT 'deleted', s.record_key, s.checksum, NULL FROM snapshot s "
        "ANTI JOIN current c ON c.record_key = s.record_key)"
    )
    extracted, rejected = connection.execute(
        "SELECT count(*), count(reason) FROM current"
    ).fetchone()
    by_kind = dict(
        connection.execute("SELECT kind, count(*) FROM changes GROUP BY kind").fetchall()
    )
    added, updated, deleted = (
        int(by_kind.get(kind, 0)) for kind in ("added", "updated", "deleted")
    )
    unchanged = int(extracted) - int(rejected) - added - updated
    return ChangeCounts(
        extracted=int(extracted),
        added=added,
        updated=updated,
        deleted=deleted,
        unchanged=unchanged,
        rejected=int(rejected),
    )
