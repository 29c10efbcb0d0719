"""Reading a warehouse model as a stream of Arrow record batches: DuckDB or PostgreSQL.

The warehouse is named by one string that comes from the environment (the variable the config's
`connections.warehouse_env` names), never from the config file: a DuckDB file path (or
`duckdb:///path`), or a `postgresql://` URL (which may hold a password). DuckDB hands Arrow
batches over natively; PostgreSQL rows come through a server-side cursor (psycopg 3), a batch at
a time, typed from the result's column types, so a model of millions of rows is never held whole.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "WarehouseError",
    "display_location",
    "read_model",
    "warehouse_location",
]

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS: Final = 50_000
_POSTGRES_SCHEMES: Final = ("postgresql://", "postgres://")

# PostgreSQL type OIDs → Arrow types; anything else is read as text.
_PG_TYPES: Final[dict[int, pa.DataType]] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int64(),
    23: pa.int64(),
    700: pa.float64(),
    701: pa.float64(),
    1700: pa.float64(),  # numeric: a JSON number, as Segment's warehouses give it
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
}


class WarehouseError(Exception):
    """The warehouse cannot be reached or the model's SQL fails (never shows a password)."""


def display_location(location: str) -> str:
    """The location for messages: a URL without its password."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", location)


def warehouse_location(variable: str) -> str:
    """The warehouse named by an environment variable (raises WarehouseError when unset)."""
    value = os.environ.get(variable, "").strip()
    if not value:
        raise WarehouseError(
            f"the environment variable {variable} names the Segment Connections warehouse "
            "(a DuckDB file path or a postgresql:// URL) and is not set"
        )
    return value


def read_model(
    location: str, sql: str, *, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The rows of `sql` on the warehouse at `location`, as Arrow record batches."""
    if location.startswith(_POSTGRES_SCHEMES):
        yield from _read_postgres(location, sql, batch_rows)
    else:
        yield from _read_duckdb(location.removeprefix("duckdb://"), sql, batch_rows)


def _read_duckdb(path: str, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Stream a DuckDB query's result (the file opened read-only)."""
    import duckdb

    if not Path(path).is_file():
        raise WarehouseError(f"the DuckDB warehouse {path} does not exist")
    try:
        connection = duckdb.connect(path, read_only=True)
    except duckdb.Error as exc:
        raise WarehouseError(f"cannot open the DuckDB warehouse {path}: {exc}") from exc
    try:
        try:
            reader = connection.sql(sql).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise WarehouseError(f"the model's SQL failed on {path}: {exc}") from exc
        yield from reader
    finally:
        connection.close()


def _read_postgres(url: str, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Stream a PostgreSQL query through a server-side cursor, typed from its columns."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise WarehouseError(
            "a PostgreSQL warehouse needs the driver: pip install 'acoustic-pipelines[postgres]'"
        ) from exc
    shown = display_location(url)
    try:
        connection = psycopg.connect(url.replace("postgres://", "postgresql://", 1))
    except psycopg.Error as exc:
        raise WarehouseError(f"cannot connect to the warehouse {shown}: {exc}") from None
    try:
        with connection.transaction(), connection.cursor(name="segment_connections") as cursor:
            try:
                cursor.execute(sql)
            except psycopg.Error as exc:
                raise WarehouseError(f"the model's SQL failed on {shown}: {exc}") from None
            schema = _arrow_schema(cursor.description)
            while rows := cursor.fetchmany(batch_rows):
                yield _record_batch(rows, schema)
    finally:
        connection.close()


def _arrow_schema(description: Any) -> pa.Schema:
    """Arrow fields for a psycopg result description."""
    fields = []
    for column in description:
        kind = _PG_TYPES.get(column.type_code, pa.string())
        fields.append(pa.field(column.name, kind))
    return pa.schema(fields)


def _record_batch(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.RecordBatch:
    """One batch of PostgreSQL rows as Arrow columns of the schema's types."""
    columns = []
    for index, field in enumerate(schema):
        values = [row[index] for row in rows]
        if field.type == pa.string():
            values = [_as_text(value) for value in values]
        elif field.type == pa.float64():
            values = [float(value) if isinstance(value, Decimal) else value for value in values]
        elif pa.types.is_timestamp(field.type) and field.type.tz:
            values = [_utc(value) for value in values]
        columns.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _as_text(value: Any) -> str | None:
    """A value of a type read as text: JSON documents as JSON, others as PostgreSQL prints them."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A timestamptz in UTC."""
    return value.astimezone(dt.UTC) if value is not None else None
