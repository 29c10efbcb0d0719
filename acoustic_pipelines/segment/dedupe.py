"""Find the duplicate messageIds of one day, exactly, whatever the number of workers.

The workers leave each archive file's dedupe keys in a scratch Parquet file (`scan.py`: every raw
column but the payload, with file and line). One DuckDB pass over them finds every duplicate of
the day: the first copy by receivedAt wins, then file order, then line order (Segment's archive
has no other order). The comparison is on the messageId text itself, never a hash, so it is exact.
The same pass counts what the day keeps (types, distinct ids, rows received outside the day) and
takes its first rows for the preview.

Across days: a messageId accepted on one of the previous received-days (the look-back; Segment's
own is at least 24 h) is a duplicate too. Each earlier day's committed message ids are streamed
into DuckDB from the lake (wherever it is) and semi-joined with the day's.

DuckDB keeps its memory under `MEMORY_LIMIT` (160 MB) and spills to the scratch folder beyond it, so the
dedupe of a day of any size runs in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from acoustic_pipelines.segment.tables import TIMESTAMP

MEMORY_LIMIT = "160MB"
PREVIEW_ROWS = 5
_ID_SCHEMA = pa.schema([("message_id", pa.string())])
_DAY_MS = 86_400_000

IdBatches = Callable[[], Iterator[pa.Array]]


@dataclass
class FileDuplicates:
    """The duplicates of one archive file: their line numbers (ascending) and reject details."""

    lines: np.ndarray
    details: list[str]

    def detail_of(self, line_numbers: np.ndarray) -> list[str]:
        """The details of these duplicate lines (each must be one of `lines`)."""
        return [self.details[i] for i in np.searchsorted(self.lines, line_numbers)]


@dataclass
class DayDuplicates:
    """Every duplicate of a day, by archive file index, and what the day keeps."""

    by_file: dict[int, FileDuplicates] = field(default_factory=dict)
    within_day: int = 0
    across_days: int = 0
    kept: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    distinct_user_ids: int = 0
    distinct_anonymous_ids: int = 0
    received_outside_day: int = 0
    preview: tuple[dict[str, str], ...] = ()

    @property
    def total(self) -> int:
        """Duplicate lines of the day (within the day and across days)."""
        return self.within_day + self.across_days


def find_duplicates(
    keys: Sequence[str],
    file_keys: Sequence[str],
    earlier_days: Sequence[tuple[date, IdBatches]],
    *,
    day: date,
    scratch: Path,
    threads: int = 1,
) -> DayDuplicates:
    """The day's duplicates among the valid events whose keys are in the `keys` files.

    Args:
        keys: the scratch Parquet files (`tables.KEYS_SCHEMA`) of the day.
        file_keys: the archive file keys by file index (for the details).
        earlier_days: the look-back days, latest first, each with its accepted message ids; a
            messageId found on several is reported against the latest.
        day: the received-day (rows received on another day are counted).
        scratch: a local folder DuckDB may spill to.
        threads: DuckDB's threads.
    """
    result = DayDuplicates()
    if not keys:
        return result
    spill = scratch / "duckdb"
    spill.mkdir(exist_ok=True)
    with duckdb.connect(
        config={
            "threads": max(1, threads),
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
        }
    ) as con:
        con.read_parquet(list(keys)).create_view("keys")
        found: dict[tuple[int, int], str] = {}
        for earlier, id_batches in earlier_days:
            reader = pa.RecordBatchReader.from_batches(
                _ID_SCHEMA,
                (
                    pa.record_batch([ids.cast(pa.string())], schema=_ID_SCHEMA)
                    for ids in id_batches()
                ),
            )
            con.register("earlier", reader)
            rows = con.execute(
                "SELECT file_index, line_number, message_id FROM keys "
                "WHERE message_id IN (SELECT message_id FROM earlier)"
            ).fetchall()
            con.unregister("earlier")
            for file_index, line_number, message_id in rows:
                found.setdefault(
                    (file_index, line_number),
                    f"messageId {message_id!r} already accepted on {earlier}",
                )
        result.across_days = len(found)
        within = con.execute(
            """
            WITH repeated AS (
                SELECT message_id FROM keys GROUP BY message_id HAVING count(*) > 1
            ), ranked AS (
                SELECT file_index, line_number, message_id,
                    row_number() OVER w AS rank,
                    first_value(file_index) OVER w AS first_file,
                    first_value(line_number) OVER w AS first_line
                FROM keys WHERE message_id IN (SELECT message_id FROM repeated)
                WINDOW w AS (
                    PARTITION BY message_id ORDER BY received_at, file_index, line_number
                )
            )
            SELECT file_index, line_number, message_id, first_file, first_line
            FROM ranked WHERE rank > 1
            """
        ).fetchall()
        for file_index, line_number, message_id, first_file, first_line in within:
            if (file_index, line_number) not in found:
                result.within_day += 1
                found[(file_index, line_number)] = (
                    f"messageId {message_id!r} first seen at {file_keys[first_file]}:{first_line}"
                )
        result.by_file = _by_file(found)
        _count_kept(con, found, day, result)
    return result


def _by_file(found: dict[tuple[int, int], str]) -> dict[int, FileDuplicates]:
    grouped: dict[int, list[tuple[int, str]]] = {}
    for (file_index, line_number), detail in found.items():
        grouped.setdefault(file_index, []).append((line_number, detail))
    result = {}
    for file_index, rows in grouped.items():
        rows.sort()
        result[file_index] = FileDuplicates(
            lines=np.array([line for line, _ in rows], dtype=np.int64),
            details=[detail for _, detail in rows],
        )
    return result


def _count_kept(
    con: duckdb.DuckDBPyConnection,
    found: dict[tuple[int, int], str],
    day: date,
    result: DayDuplicates,
) -> None:
    """Fill in what the kept events (all but the duplicates) hold: counts and the preview."""
    dropped = pa.table(
        {
            "file_index": pa.array([k[0] for k in found], pa.int32()),
            "line_number": pa.array([k[1] for k in found], pa.int64()),
        }
    )
    con.register("dropped", dropped)
    con.execute(
        "CREATE VIEW kept AS SELECT * FROM keys ANTI JOIN dropped USING (file_index, line_number)"
    )
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000
    [(kept, users, anonymous, outside)] = con.execute(
        "SELECT count(*), count(DISTINCT user_id), count(DISTINCT anonymous_id), "
        "count(*) FILTER (WHERE epoch_ms(received_at) < ? OR epoch_ms(received_at) >= ?) "
        "FROM kept",
        [start, start + _DAY_MS],
    ).fetchall()
    result.kept, result.received_outside_day = int(kept), int(outside)
    result.distinct_user_ids, result.distinct_anonymous_ids = int(users), int(anonymous)
    result.by_type = dict(
        sorted(con.execute("SELECT type, count(*) FROM kept GROUP BY type").fetchall())
    )
    head = con.sql(
        "SELECT message_id, type, event, user_id, anonymous_id, timestamp FROM kept "
        f"ORDER BY file_index, line_number LIMIT {PREVIEW_ROWS}"
    ).to_arrow_table()
    head = head.set_column(5, "timestamp", head.column("timestamp").cast(TIMESTAMP))
    result.preview = tuple(
        {k: "" if v is None else str(v) for k, v in row.items()} for row in head.to_pylist()
    )
    con.unregister("dropped")
