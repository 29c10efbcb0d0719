"""Place one archive file's parts in the staged raw and rejected datasets, without its duplicates.

Each archive file of the day gives one part of each dataset (`part-<file index>.parquet`), so the
parts read in name order hold the rows in the same order whatever the number of workers. The
scan already wrote them in their final form; a file without duplicates is only moved (or
uploaded) into the staged partition. A file with duplicates is rewritten batch by batch (bounded
memory): its valid events without the duplicates, and its rejected lines (with their Spec reason)
followed by its duplicates, each in line order.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
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


@dataclass(frozen=True)
class PartTask:
    """One archive file's scratch files, its duplicates, and where its parts go."""

    lake: Location
    key: str  # the archive file, as rejected rows name it
    raw_scratch: str | None
    keys_scratch: str | None
    rejected_scratch: str | None
    raw_path: str  # in the staged raw partition
    rejected_path: str  # in the staged rejected partition
    duplicates: FileDuplicates | None
    batch_rows: int


@dataclass(frozen=True)
class PartResult:
    """What one file's parts hold."""

    rows: int
    bytes: int
    rejected_rows: int
    duplicate_rows: int


def place_parts(task: PartTask) -> PartResult:
    """Put the file's raw and rejected parts into the staged partitions (rewritten if needed)."""
    fs = task.lake.fs
    if task.duplicates is None:
        rows = rejected = 0
        if task.raw_scratch is not None:
            rows = pq.ParquetFile(task.raw_scratch).metadata.num_rows
            _place(task.raw_scratch, fs, task.raw_path)
        if task.rejected_scratch is not None:
            rejected = pq.ParquetFile(task.rejected_scratch).metadata.num_rows
            _place(task.rejected_scratch, fs, task.rejected_path)
        size = fs.get_file_info(task.raw_path).size if task.raw_scratch is not None else 0
        return PartResult(rows=rows, bytes=size, rejected_rows=rejected, duplicate_rows=0)
    return _rewrite(task, task.duplicates)


def _rewrite(task: PartTask, duplicates: FileDuplicates) -> PartResult:
    """Write the parts again: the raw rows without the duplicates, which join the rejected rows."""
    assert task.raw_scratch is not None and task.keys_scratch is not None  # noqa: S101 (dups need rows)
    fs = task.lake.fs
    line_numbers = pq.read_table(task.keys_scratch, columns=["line_number"]).column(0).to_numpy()
    is_dup = np.isin(line_numbers, duplicates.lines, assume_unique=True)
    rows = rejected_rows = 0
    with (
        pq.ParquetWriter(
            task.raw_path, RAW_EVENTS_SCHEMA, filesystem=fs, **RAW_PARQUET_OPTIONS
        ) as raw,
        pq.ParquetWriter(
            task.rejected_path, REJECTED_EVENTS_SCHEMA, filesystem=fs, **REJECTED_PARQUET_OPTIONS
        ) as rejected,
    ):
        if task.rejected_scratch is not None:
            with pq.ParquetFile(task.rejected_scratch) as invalid:
                for batch in invalid.iter_batches(batch_size=task.batch_rows, use_threads=False):
                    rejected.write_batch(batch)
                    rejected_rows += batch.num_rows
        offset = 0
        with pq.ParquetFile(task.raw_scratch) as candidates:
            for batch in candidates.iter_batches(batch_size=task.batch_rows, use_threads=False):
                mask = is_dup[offset : offset + batch.num_rows]
                dup_lines = line_numbers[offset : offset + batch.num_rows][mask]
                offset += batch.num_rows
                if not mask.any():
                    raw.write_batch(batch)
                    rows += batch.num_rows
                    continue
                selected = pa.array(mask)
                kept = batch.filter(pc.invert(selected))
                raw.write_batch(kept)
                rows += kept.num_rows
                rejected.write_batch(
                    pa.RecordBatch.from_arrays(
                        [
                            pa.array([task.key] * len(dup_lines), pa.string()),
                            pa.array(dup_lines, pa.int64()),
                            pa.array([spec.DUPLICATE_MESSAGE_ID] * len(dup_lines), pa.string()),
                            pa.array(duplicates.detail_of(dup_lines), pa.string()),
                            batch.column("payload").filter(selected),
                        ],
                        schema=REJECTED_EVENTS_SCHEMA,
                    )
                )
                rejected_rows += len(dup_lines)
    return PartResult(
        rows=rows,
        bytes=fs.get_file_info(task.raw_path).size,
        rejected_rows=rejected_rows,
        duplicate_rows=int(is_dup.sum()),
    )


def _place(local: str, fs: pafs.FileSystem, target: str) -> None:
    """Move a finished local scratch file to `target` on the lake's filesystem."""
    if isinstance(fs, pafs.LocalFileSystem):
        shutil.move(local, target)  # a rename on the same disk
        return
    pafs.copy_files(
        local, target, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
    )
    Path(local).unlink()
