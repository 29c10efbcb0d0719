"""Find the duplicate messageIds of one day, exactly, whatever the number of workers.

The workers leave each archive file's valid events in a scratch Parquet file (`scan.py`); one
DuckDB pass over their messageId, receivedAt, file and line columns finds every duplicate of the
day: the first copy by receivedAt wins, then file order, then line order (Segment's archive has no
other order). The comparison is on the messageId text itself, never a hash, so it is exact.

Across days: a messageId accepted on one of the previous received-days (the look-back; Segment's
own is at least 24 h) is a duplicate too. Each earlier day's committed message ids are streamed
into DuckDB from the lake (wherever it is) and semi-joined with the day's.

DuckDB keeps its memory under `memory_limit` and spills to the scratch folder beyond it, so the
dedupe of a day of any size runs in bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

MEMORY_LIMIT = "256MB"
_ID_SCHEMA = pa.schema([("message_id", pa.string())])

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
    """Every duplicate of a day, by archive file index."""

    by_file: dict[int, FileDuplicates] = field(default_factory=dict)
    within_day: int = 0
    across_days: int = 0
    distinct_user_ids: int = 0
    distinct_anonymous_ids: int = 0

    @property
    def total(self) -> int:
        """Duplicate lines of the day (within the day and across days)."""
        return self.within_day + self.across_days


def find_duplicates(
    candidates: Sequence[str],
    file_keys: Sequence[str],
    earlier_days: Sequence[tuple[date, IdBatches]],
    *,
    scratch: Path,
    threads: int = 1,
) -> DayDuplicates:
    """The day's duplicates among the valid events of the `candidates` scratch files.

    Args:
        candidates: the scratch Parquet files (`scan.CANDIDATES_SCHEMA`) of the day.
        file_keys: the archive file keys by file index (for the details).
        earlier_days: the look-back days, latest first, each with its accepted message ids; a
            messageId found on several is reported against the latest.
        scratch: a local folder DuckDB may spill to.
        threads: DuckDB's threads.
    """
    result = DayDuplicates()
    if not candidates:
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
        con.read_parquet(list(candidates)).create_view("candidates")
        found: dict[tuple[int, int], str] = {}
        for day, id_batches in earlier_days:
            reader = pa.RecordBatchReader.from_batches(
                _ID_SCHEMA,
                (
                    pa.record_batch([ids.cast(pa.string())], schema=_ID_SCHEMA)
                    for ids in id_batches()
                ),
            )
            con.register("earlier", reader)
            rows = con.execute(
                "SELECT file_index, line_number, message_id FROM candidates "
                "WHERE message_id IN (SELECT message_id FROM earlier)"
            ).fetchall()
            con.unregister("earlier")
            for file_index, line_number, message_id in rows:
                found.setdefault(
                    (file_index, line_number),
                    f"messageId {message_id!r} already accepted on {day}",
                )
        result.across_days = len(found)
        within = con.execute(
            """
            WITH repeated AS (
                SELECT message_id FROM candidates GROUP BY message_id HAVING count(*) > 1
            ), ranked AS (
                SELECT file_index, line_number, message_id,
                    row_number() OVER w AS rank,
                    first_value(file_index) OVER w AS first_file,
                    first_value(line_number) OVER w AS first_line
                FROM candidates WHERE message_id IN (SELECT message_id FROM repeated)
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
        result.distinct_user_ids, result.distinct_anonymous_ids = _distinct_ids(con, found)
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


def _distinct_ids(
    con: duckdb.DuckDBPyConnection, found: dict[tuple[int, int], str]
) -> tuple[int, int]:
    """Distinct userId and anonymousId values among the kept events (exact)."""
    dropped = pa.table(
        {
            "file_index": pa.array([k[0] for k in found], pa.int32()),
            "line_number": pa.array([k[1] for k in found], pa.int64()),
        }
    )
    con.register("dropped", dropped)
    [(users, anonymous)] = con.execute(
        "SELECT count(DISTINCT user_id), count(DISTINCT anonymous_id) FROM candidates "
        "ANTI JOIN dropped USING (file_index, line_number)"
    ).fetchall()
    con.unregister("dropped")
    return int(users), int(anonymous)
