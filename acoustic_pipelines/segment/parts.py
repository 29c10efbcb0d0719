"""Write one part of the day's raw and rejected datasets: what each worker does after the dedupe.

A part covers a run of consecutive archive files (in the day's file order), so the parts read in
name order hold the rows in the same order whatever the number of workers. For each file, its
rejected lines (with their Spec reason) come first, then its duplicates, each in line order; its
valid events stream into the raw part without the duplicates. Batch by batch: bounded memory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acoustic_pipelines.segment import spec
from acoustic_pipelines.segment.dedupe import FileDuplicates
from acoustic_pipelines.segment.tables import (
    RAW_EVENTS_SCHEMA,
    RAW_PARQUET_OPTIONS,
    REJECTED_EVENTS_SCHEMA,
    REJECTED_PARQUET_OPTIONS,
)
from acoustic_pipelines.storage import Location

PREVIEW_ROWS = 5
_PREVIEW_COLUMNS = ["message_id", "type", "event", "user_id", "anonymous_id", "timestamp"]


@dataclass(frozen=True)
class PartFile:
    """One archive file of a part: its scratch files and its duplicates."""

    key: str
    candidates_path: str | None
    rejected_path: str | None
    duplicates: FileDuplicates | None


@dataclass(frozen=True)
class PartTask:
    """The files of one part and where the part's two Parquet files go (in the staged lake)."""

    lake: Location
    raw_path: str
    rejected_path: str
    files: tuple[PartFile, ...]
    day: date
    batch_rows: int


@dataclass(frozen=True)
class PartResult:
    """What one part holds."""

    rows: int
    bytes: int
    rejected_rows: int
    duplicate_rows: int
    by_type: dict[str, int]
    received_outside_day: int
    preview: tuple[dict[str, str], ...]


def write_part(task: PartTask) -> PartResult:
    """Write one raw part and one rejected part from the files' scratch files."""
    fs = task.lake.fs
    stats = _Stats(task.day)
    rejected_rows = duplicate_rows = 0
    with (
        pq.ParquetWriter(
            task.raw_path, RAW_EVENTS_SCHEMA, filesystem=fs, **RAW_PARQUET_OPTIONS
        ) as raw,
        pq.ParquetWriter(
            task.rejected_path, REJECTED_EVENTS_SCHEMA, filesystem=fs, **REJECTED_PARQUET_OPTIONS
        ) as rejected,
    ):
        for file in task.files:
            if file.rejected_path is not None:
                with pq.ParquetFile(file.rejected_path) as invalid:
                    for batch in invalid.iter_batches(
                        batch_size=task.batch_rows, use_threads=False
                    ):
                        rejected.write_batch(batch)
                        rejected_rows += batch.num_rows
            if file.candidates_path is None:
                continue
            with pq.ParquetFile(file.candidates_path) as candidates:
                for batch in candidates.iter_batches(batch_size=task.batch_rows, use_threads=False):
                    kept, dups = _split(batch, file)
                    raw.write_batch(kept)
                    stats.add(kept)
                    if dups is not None:
                        rejected.write_batch(dups)
                        rejected_rows += dups.num_rows
                        duplicate_rows += dups.num_rows
    return PartResult(
        rows=stats.rows,
        bytes=fs.get_file_info(task.raw_path).size,
        rejected_rows=rejected_rows,
        duplicate_rows=duplicate_rows,
        by_type=dict(stats.by_type),
        received_outside_day=stats.outside,
        preview=stats.preview,
    )


def _split(batch: pa.RecordBatch, file: PartFile) -> tuple[pa.RecordBatch, pa.RecordBatch | None]:
    """The batch's kept rows (raw schema) and its duplicates as rejected rows (or None)."""
    raw = batch.select(RAW_EVENTS_SCHEMA.names)
    if file.duplicates is None:
        return raw, None
    line_numbers = batch.column("line_number").to_numpy()
    is_dup = np.isin(line_numbers, file.duplicates.lines, assume_unique=True)
    if not is_dup.any():
        return raw, None
    dup_lines = line_numbers[is_dup]
    mask = pa.array(is_dup)
    dups = pa.RecordBatch.from_arrays(
        [
            pa.array([file.key] * len(dup_lines), pa.string()),
            pa.array(dup_lines, pa.int64()),
            pa.array([spec.DUPLICATE_MESSAGE_ID] * len(dup_lines), pa.string()),
            pa.array(file.duplicates.detail_of(dup_lines), pa.string()),
            batch.column("payload").filter(mask),
        ],
        schema=REJECTED_EVENTS_SCHEMA,
    )
    return raw.filter(pc.invert(mask)), dups


class _Stats:
    """Counts over the kept batches as they are written."""

    def __init__(self, day: date) -> None:
        self.day = pa.scalar(day, pa.date32())
        self.rows = 0
        self.by_type: Counter[str] = Counter()
        self.outside = 0
        self.preview: tuple[dict[str, str], ...] = ()

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for item in pc.value_counts(batch.column("type")).to_pylist():
            self.by_type[item["values"]] += item["counts"]
        received_day = pc.cast(batch.column("received_at"), pa.date32())
        self.outside += pc.sum(pc.not_equal(received_day, self.day)).as_py() or 0
        if len(self.preview) < PREVIEW_ROWS and batch.num_rows:
            head: list[dict[str, Any]] = (
                batch.select(_PREVIEW_COLUMNS)
                .slice(0, PREVIEW_ROWS - len(self.preview))
                .to_pylist()
            )
            self.preview += tuple(
                {k: "" if v is None else str(v) for k, v in row.items()} for row in head
            )
