"""Ingest one received-day of the Segment archive into the lake's raw and rejected datasets.

Two streaming passes, bounded memory whatever the day's size:

1. every line of every file is decoded and checked against the Spec; rejects go to the rejected
   table, valid events are appended in batches to an LZ4 Arrow IPC scratch file on local disk,
   and their dedupe keys to a `KeySpill` (dedupe.py);
2. the duplicates are found from the keys alone (the first by receivedAt wins, then file and
   line order; a messageId already accepted on one of the `dedupe_lookback_days` previous days
   is a duplicate too, see `dedupe.seen_earlier`), the scratch file is streamed into the lake's
   Parquet file without them, they go to the rejected table with reason DUPLICATE_MESSAGE_ID,
   and the accepted rows' statistics are counted on the way.

Before anything is committed, the row counts of the written files are checked against the lines
read: every line lands in exactly one of accepted, rejected or duplicate. Both datasets are then
committed together (`Lake.commit_together`): visible together or not at all.

One writer per day: the ingest holds the partition's lease (`Lake.lease`) from before it stages
until after it commits; a second run of the same day waits for it (or fails naming the holder
after `lease_wait_seconds`). The scratch folder (`raw-events-<pid>@<host>-*` in the temp dir) is
removed on success and failure, and by the next ingest when a killed run left it.
"""

from __future__ import annotations

import collections
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acoustic_pipelines.lake import Lake, PartitionNotFound, StagedPartition
from acoustic_pipelines.leases import DEFAULT_WAIT_SECONDS
from acoustic_pipelines.owners import owned_scratch
from acoustic_pipelines.segment import spec
from acoustic_pipelines.segment.archive import (
    ArchiveDay,
    ArchiveReadError,
    UnreadableArchiveError,
    list_archive_day,
    read_lines,
)
from acoustic_pipelines.segment.dedupe import (
    IdBatches,
    KeySpill,
    distinct_ids,
    find_duplicates,
    seen_earlier,
)
from acoustic_pipelines.storage import Location

RAW_EVENTS = "segment/raw_events"
REJECTED_EVENTS = "segment/rejected_events"
UNREADABLE_FILES = "segment/unreadable_files"
FAIL, QUARANTINE = "fail", "quarantine"
UNREADABLE_POLICIES = (FAIL, QUARANTINE)
DATA_FILE = "part-00000.parquet"

_TS = pa.timestamp("ms", tz="UTC")
RAW_EVENTS_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("type", pa.string()),
        ("event", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("timestamp", _TS),
        ("received_at", _TS),
        ("source_id", pa.string()),
        ("payload", pa.string()),
    ]
)
REJECTED_EVENTS_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("line_number", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
    ]
)
UNREADABLE_FILES_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("reason", pa.string()),  # archive.NOT_GZIP, TRUNCATED, CORRUPT or READ_FAILED
        ("detail", pa.string()),
        ("lines_kept", pa.int64()),  # complete lines read before the failure (ingested)
        ("compressed_bytes", pa.int64()),
        ("bytes_unread", pa.int64()),
    ]
)
# Dictionary-encode only the repetitive columns and skip min/max statistics of the big texts.
_RAW_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["type", "event", "source_id"],
    "write_statistics": ["message_id", "type", "event", "timestamp", "received_at", "source_id"],
}
_REJECTED_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["file", "reason"],
    "write_statistics": ["file", "line_number", "reason"],
}
PREVIEW_ROWS = 5
_UTF8_BOM = b"\xef\xbb\xbf"
DEFAULT_DEDUPE_LOOKBACK_DAYS = 1  # Segment dedupes over at least ~24 h (reference §1.3)
SCRATCH_PREFIX = "raw-events-"
PROGRESS_SECONDS = 5.0

log = logging.getLogger(__name__)
ProgressCallback = Callable[[str], None]


def parse_payload(payload: str | None) -> dict[str, Any] | None:
    """The event of a stored `payload`, or None when it is not a JSON object."""
    try:
        event = orjson.loads(payload) if payload is not None else None
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


class AccountingError(RuntimeError):
    """The written row counts do not add up to the lines read; nothing was committed."""


@dataclass(frozen=True)
class IngestReport:
    """What one day's ingestion read, kept, rejected and wrote."""

    day: date
    files: int
    skipped_objects: tuple[str, ...]
    compressed_bytes: int
    uncompressed_bytes: int
    lines_read: int
    accepted: int
    rejected_by_reason: dict[str, int]  # invalid lines only; duplicates are counted apart
    duplicates: int  # within the day and across days
    duplicates_across_days: int  # accepted on one of the look-back days already
    lookback_days_missing: tuple[date, ...]  # look-back days with no committed partition
    events_by_type: dict[str, int]
    distinct_user_ids: int
    distinct_anonymous_ids: int
    received_outside_day: int
    raw_events_uri: str
    rejected_events_uri: str
    raw_events_bytes: int
    unreadable_files: tuple[ArchiveReadError, ...]  # quarantined: their readable lines were kept
    preview: tuple[dict[str, str], ...]
    seconds: float

    @property
    def rejected(self) -> int:
        """Lines rejected as invalid (duplicates not included)."""
        return sum(self.rejected_by_reason.values())

    @property
    def reject_rate(self) -> float:
        """Share of lines read that were rejected as invalid."""
        return self.rejected / self.lines_read if self.lines_read else 0.0

    @property
    def events_per_second(self) -> float:
        """Lines processed per second of wall time."""
        return self.lines_read / self.seconds if self.seconds else 0.0


def ingest_day(
    archive: Location,
    lake: Lake,
    day: date,
    *,
    batch_rows: int = 8192,
    scratch_dir: str | None = None,
    on_progress: ProgressCallback | None = None,
    lease_wait_seconds: float = DEFAULT_WAIT_SECONDS,
    dedupe_lookback_days: int = DEFAULT_DEDUPE_LOOKBACK_DAYS,
    on_unreadable_file: str = FAIL,
) -> IngestReport:
    """Read `day` of the archive and replace that day's raw and rejected partitions in the lake.

    Args:
        archive: the archive root (the folder or S3 prefix holding `segment-logs/`).
        lake: where `segment/raw_events` and `segment/rejected_events` are written.
        day: the UTC received-day to ingest.
        batch_rows: rows per Arrow batch and Parquet row group.
        scratch_dir: local folder for the intermediate files (default: the system's temp dir).
        on_progress: called with a one-line progress message every few seconds and at the end.
        lease_wait_seconds: how long to wait for another run writing the same day.
        dedupe_lookback_days: a messageId accepted on one of this many previous received-days
            (their committed partitions) is a duplicate; 0 dedupes within the day only.
        on_unreadable_file: `fail` (default): a day with a file that cannot be read to its end
            (truncated or corrupt gzip, not gzip) fails, naming every such file, and nothing is
            committed; `quarantine`: the readable lines of those files are kept and each file is
            recorded in `segment/unreadable_files` with its reason and the bytes left unread.

    Raises:
        LeaseHeld: another run still writes the day after `lease_wait_seconds` (it is named).
        UnreadableArchiveError: archive files cannot be read (each named; nothing is committed).
        AccountingError: the written rows do not add up to the lines read (nothing is committed).
    """
    if dedupe_lookback_days < 0:
        raise ValueError(f"dedupe_lookback_days = {dedupe_lookback_days}: expected 0 or more")
    if on_unreadable_file not in UNREADABLE_POLICIES:
        raise ValueError(
            f"on_unreadable_file = {on_unreadable_file!r}: expected one of "
            f"{', '.join(UNREADABLE_POLICIES)}"
        )
    quarantine = on_unreadable_file == QUARANTINE
    started = time.perf_counter()
    listing = list_archive_day(archive, day)
    progress = on_progress or (lambda message: log.info("%s", message))
    progress(
        f"{day}: {len(listing.files)} archive files, {listing.compressed_bytes:,} bytes compressed"
    )
    with (
        lake.lease(
            RAW_EVENTS, day, label="segment/raw_events ingest", wait_seconds=lease_wait_seconds
        ),
        owned_scratch(SCRATCH_PREFIX, scratch_dir) as scratch,
        lake.stage(RAW_EVENTS, day) as raw_stage,
        lake.stage(REJECTED_EVENTS, day) as rejected_stage,
        lake.stage(UNREADABLE_FILES, day) as unreadable_stage,
    ):
        rejected = _RejectedWriter(lake, rejected_stage.file(DATA_FILE), batch_rows)
        scan = _Scanner(
            archive, listing, scratch, rejected, batch_rows, progress, quarantine=quarantine
        )
        scan.run()
        if scan.unreadable and not quarantine:
            raise UnreadableArchiveError(day, scan.unreadable)
        _write_unreadable(lake, unreadable_stage, scan.unreadable)
        lookback = _lookback(lake, day, dedupe_lookback_days)
        stats = _write_deduplicated(lake, raw_stage, scan, day, lookback)
        duplicates = stats.duplicates
        rejected.close()
        _check_accounting(lake, scan, raw_stage, rejected_stage, duplicates)
        summary = {
            "lines_read": scan.lines_read,
            "accepted": stats.rows,
            "duplicates": duplicates,
            "duplicates_across_days": stats.duplicates_across_days,
        }
        lake.commit_together(
            [
                (raw_stage, summary),
                (rejected_stage, {**summary, "rejected": rejected.rows}),
                (unreadable_stage, {"files": len(scan.unreadable)}),
            ]
        )
    report = IngestReport(
        day=day,
        files=len(listing.files),
        skipped_objects=listing.skipped,
        compressed_bytes=listing.compressed_bytes,
        uncompressed_bytes=scan.uncompressed_bytes,
        lines_read=scan.lines_read,
        accepted=stats.rows,
        rejected_by_reason=dict(sorted(scan.rejected_by_reason.items())),
        duplicates=duplicates,
        duplicates_across_days=stats.duplicates_across_days,
        lookback_days_missing=tuple(d for d, ids in lookback if ids is None),
        events_by_type=stats.by_type,
        distinct_user_ids=stats.distinct_user_ids,
        distinct_anonymous_ids=stats.distinct_anonymous_ids,
        received_outside_day=stats.received_outside_day,
        raw_events_uri=lake.partition_uri(RAW_EVENTS, day),
        rejected_events_uri=lake.partition_uri(REJECTED_EVENTS, day),
        raw_events_bytes=stats.bytes,
        unreadable_files=tuple(scan.unreadable),
        preview=stats.preview,
        seconds=time.perf_counter() - started,
    )
    progress(
        f"{day}: {report.lines_read:,} lines → {report.accepted:,} accepted, {report.rejected:,} rejected, "
        f"{report.duplicates:,} duplicates in {report.seconds:.1f}s ({report.events_per_second:,.0f} lines/s)"
    )
    return report


def _write_unreadable(lake: Lake, stage: StagedPartition, errors: list[ArchiveReadError]) -> None:
    """The day's unreadable files, one row each (an empty file when every file was read)."""
    rows = {
        "file": [e.key for e in errors],
        "reason": [e.reason for e in errors],
        "detail": [str(e) for e in errors],
        "lines_kept": [e.lines_read for e in errors],
        "compressed_bytes": [e.size for e in errors],
        "bytes_unread": [e.bytes_unread for e in errors],
    }
    table = pa.Table.from_pydict(rows, schema=UNREADABLE_FILES_SCHEMA)
    pq.write_table(table, stage.file(DATA_FILE), filesystem=lake.fs)


class _RejectedWriter:
    """Collects rejected rows as tuples and writes them to Parquet, one row group per batch."""

    def __init__(self, lake: Lake, path: str, batch_rows: int) -> None:
        self.schema = REJECTED_EVENTS_SCHEMA
        self.batch_rows = batch_rows
        self.pending: list[tuple[Any, ...]] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            path, self.schema, filesystem=lake.fs, **_REJECTED_PARQUET_OPTIONS
        )

    def add(self, row: tuple[Any, ...]) -> None:
        """Add one row (values in schema order)."""
        self.pending.append(row)
        if len(self.pending) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as one row group."""
        if self.pending and self._writer is not None:
            columns = zip(*self.pending, strict=True)
            arrays = [pa.array(c, type=f.type) for c, f in zip(columns, self.schema, strict=True)]
            self._writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))
            self.rows += len(self.pending)
            self.pending = []

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _Scanner:
    """Pass 1: decode, validate and route every line of the day."""

    def __init__(
        self,
        archive: Location,
        listing: ArchiveDay,
        scratch: Path,
        rejected: _RejectedWriter,
        batch_rows: int,
        progress: ProgressCallback,
        *,
        quarantine: bool = False,
    ) -> None:
        self.archive = archive
        self.listing = listing
        self.quarantine = quarantine
        self.unreadable: list[ArchiveReadError] = []
        self.rejected = rejected
        self.batch_rows = batch_rows
        self.progress = progress
        self.lines_read = 0
        self.uncompressed_bytes = 0
        self.rejected_by_reason: Counter[str] = Counter()
        self.candidates_path = scratch / "candidates.arrow"
        self._candidates = pa.ipc.new_file(
            str(self.candidates_path),
            RAW_EVENTS_SCHEMA,
            options=pa.ipc.IpcWriteOptions(compression="lz4"),
        )
        self.keys = KeySpill(scratch / "keys")
        self._rows: list[tuple[Any, ...]] = []

    def run(self) -> None:
        """Scan every file, then close the scratch files."""
        last_report = time.monotonic()
        with _cyclic_gc_paused():
            for file_index, file in enumerate(self.listing.files):
                try:
                    if self.unreadable and not self.quarantine:  # only find the other bad files
                        collections.deque(read_lines(self.archive, file), maxlen=0)
                    else:
                        self._scan_file(
                            file_index, file.key, file.source_id, read_lines(self.archive, file)
                        )
                except ArchiveReadError as exc:
                    self.unreadable.append(exc)
                if time.monotonic() - last_report >= PROGRESS_SECONDS:
                    last_report = time.monotonic()
                    self.progress(
                        f"{file_index + 1}/{len(self.listing.files)} files, {self.lines_read:,} lines read, "
                        f"{sum(self.rejected_by_reason.values()):,} rejected so far"
                    )
            self._flush()
        self._candidates.close()
        self.keys.close()

    def _scan_file(self, file_index: int, key: str, source_id: str, lines: Iterable[bytes]) -> None:
        # The hot loop: local names only, one tuple per accepted line.
        loads, validate, max_bytes = orjson.loads, spec.validate_event, spec.MAX_EVENT_BYTES
        rows, batch_rows, reject = self._rows, self.batch_rows, self._reject
        line_number = 0
        size = 0
        try:  # the lines read before an unreadable part are counted (and kept)
            for line in lines:
                line_number += 1
                size += len(line)
                if len(line) > max_bytes:
                    reject(
                        key,
                        line_number,
                        spec.TOO_LARGE,
                        f"{len(line):,} bytes, the limit is {max_bytes:,}",
                        line,
                    )
                    continue
                try:
                    event = loads(line)
                except orjson.JSONDecodeError as exc:
                    reject(key, line_number, *_decode_problem(line, exc), line)
                    continue
                if event.__class__ is not dict:
                    reject(
                        key,
                        line_number,
                        spec.NOT_AN_OBJECT,
                        f"a JSON {spec.json_type(event)}",
                        line,
                    )
                    continue
                try:
                    timestamp, received_at = validate(event)
                except spec.SpecViolation as exc:
                    reject(key, line_number, exc.reason, exc.detail, line)
                    continue
                get = event.get
                rows.append(
                    (
                        event["messageId"],
                        event["type"],
                        get("event"),
                        get("userId"),
                        get("anonymousId"),
                        timestamp,
                        received_at,
                        source_id,
                        line,
                        file_index,
                        line_number,
                    )
                )
                if len(rows) >= batch_rows:
                    self._flush()
                    rows = self._rows
        finally:
            self.lines_read += line_number
            self.uncompressed_bytes += size + line_number  # + the line breaks

    def _flush(self) -> None:
        if not self._rows:
            return
        columns = list(zip(*self._rows, strict=True))
        self._rows = []
        message_id = pa.array(columns[0], pa.string())
        received_at = pa.array(columns[6], _TS)
        self._candidates.write_batch(
            pa.RecordBatch.from_arrays(
                [
                    message_id,
                    pa.array(columns[1], pa.string()),
                    pa.array(columns[2], pa.string()),
                    pa.array(columns[3], pa.string()),
                    pa.array(columns[4], pa.string()),
                    pa.array(columns[5], _TS),
                    received_at,
                    pa.array(columns[7], pa.string()),
                    _utf8_array(columns[8]),
                ],
                schema=RAW_EVENTS_SCHEMA,
            )
        )
        self.keys.append(
            message_ids=columns[0],
            received_at=received_at,
            file_index=columns[9],
            line_number=columns[10],
            user_ids=columns[3],
            anonymous_ids=columns[4],
        )

    def _reject(self, key: str, line_number: int, reason: str, detail: str, line: bytes) -> None:
        self.rejected_by_reason[reason] += 1
        self.rejected.add(
            (key, line_number, reason, detail, line.decode("utf-8", "backslashreplace"))
        )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the scan.

    Decoded events are freed by reference counting (they form no cycles), but each one allocates
    dozens of containers, so the collector would otherwise run thousands of useless passes over
    the pending batch (~20 % of the scan time, measured).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _utf8_array(lines: tuple[bytes, ...]) -> pa.Array:
    """A string array over lines already proven valid UTF-8 by the JSON decoder.

    Built from one joined buffer and an offsets array: several times faster than `pa.array` on a
    sequence of large `bytes` objects, which dominated the ingest profile.
    """
    offsets = np.zeros(len(lines) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, lines), dtype=np.int32, count=len(lines)), out=offsets[1:])
    data = pa.py_buffer(b"".join(lines))
    return pa.Array.from_buffers(pa.string(), len(lines), [None, pa.py_buffer(offsets), data])


def _decode_problem(line: bytes, exc: orjson.JSONDecodeError) -> tuple[str, str]:
    message = str(exc)
    if not line.strip():
        return spec.MALFORMED_JSON, "empty line"
    if line.startswith(_UTF8_BOM):
        # Valid UTF-8, but JSON text must not start with a BOM (RFC 8259 §8.1), and Segment's
        # reference (segment.md) gives no sign that it accepts one: rejected, precisely named.
        return (
            spec.MALFORMED_JSON,
            "starts with a UTF-8 byte order mark (EF BB BF), which JSON text must not have",
        )
    if "UTF-8" in message:
        return spec.INVALID_ENCODING, "not valid UTF-8"
    if "depth limit" in message or "recursion" in message.lower():
        return spec.TOO_DEEP, "nested deeper than 1,024 levels"
    return spec.MALFORMED_JSON, message


def _lookback(lake: Lake, day: date, days: int) -> list[tuple[date, IdBatches | None]]:
    """The previous `days` received-days, latest first, each with its accepted ids (None: absent)."""
    result: list[tuple[date, IdBatches | None]] = []
    for back in range(1, days + 1):
        earlier = day - timedelta(days=back)
        try:
            lake.summary(RAW_EVENTS, earlier)
        except PartitionNotFound:
            log.warning(
                "dedupe look-back: %s of %s is not committed; not checked", earlier, RAW_EVENTS
            )
            result.append((earlier, None))
            continue

        def ids(earlier: date = earlier) -> Iterator[pa.Array]:
            for batch in lake.iter_batches(
                RAW_EVENTS, earlier, columns=["message_id"], batch_rows=65536
            ):
                yield batch.column(0)

        result.append((earlier, ids))
    return result


def _write_deduplicated(
    lake: Lake,
    raw_stage: StagedPartition,
    scan: _Scanner,
    day: date,
    lookback: list[tuple[date, IdBatches | None]],
) -> _AcceptedStats:
    """Pass 2: stream the candidates into the lake's Parquet file, diverting duplicates."""
    duplicate_of = find_duplicates(scan.keys)
    present = [(d, ids) for d, ids in lookback if ids is not None]
    earlier = seen_earlier(scan.keys, [ids for _, ids in present])
    is_dup = (duplicate_of >= 0) | (earlier >= 0)
    file_index, line_number = scan.keys.column("file_index"), scan.keys.column("line_number")
    files = [f.key for f in scan.listing.files]
    stats = _StatsCollector(day)
    offset = 0
    path = raw_stage.file(DATA_FILE)
    with (
        pa.OSFile(str(scan.candidates_path)) as source,
        pq.ParquetWriter(
            path, RAW_EVENTS_SCHEMA, filesystem=lake.fs, **_RAW_PARQUET_OPTIONS
        ) as writer,
    ):
        # One thread: decompressing on the pool's threads leaves memory in each thread's heap.
        reader = pa.ipc.open_file(source, options=pa.ipc.IpcReadOptions(use_threads=False))
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            mask = is_dup[offset : offset + batch.num_rows]
            kept = batch.filter(pa.array(~mask)) if mask.any() else batch
            writer.write_batch(kept)
            stats.add(kept)
            for row in np.flatnonzero(mask) + offset:
                message_id = batch.column(0)[row - offset].as_py()
                if earlier[row] >= 0:
                    accepted_on = present[earlier[row]][0]
                    detail = f"messageId {message_id!r} already accepted on {accepted_on}"
                else:
                    winner = duplicate_of[row]
                    detail = (
                        f"messageId {message_id!r} first seen at "
                        f"{files[file_index[winner]]}:{line_number[winner]}"
                    )
                scan.rejected.add(
                    (
                        files[file_index[row]],
                        int(line_number[row]),
                        spec.DUPLICATE_MESSAGE_ID,
                        detail,
                        batch.column("payload")[row - offset].as_py(),
                    )
                )
            offset += batch.num_rows
    return stats.result(
        duplicates=int(is_dup.sum()),
        duplicates_across_days=int((earlier >= 0).sum()),
        distinct_user_ids=distinct_ids(scan.keys, "user", ~is_dup),
        distinct_anonymous_ids=distinct_ids(scan.keys, "anonymous", ~is_dup),
        rows=pq.ParquetFile(path, filesystem=lake.fs).metadata.num_rows,
        bytes=lake.fs.get_file_info(path).size,
    )


@dataclass(frozen=True)
class _AcceptedStats:
    rows: int
    bytes: int
    duplicates: int
    duplicates_across_days: int
    by_type: dict[str, int]
    distinct_user_ids: int
    distinct_anonymous_ids: int
    received_outside_day: int
    preview: tuple[dict[str, str], ...]


class _StatsCollector:
    """Counts over the accepted batches as they are written."""

    def __init__(self, day: date) -> None:
        self.day = pa.scalar(day, pa.date32())
        self.by_type: Counter[str] = Counter()
        self.outside = 0
        self.preview: tuple[dict[str, str], ...] = ()

    def add(self, batch: pa.RecordBatch) -> None:
        """Count one written batch."""
        for item in pc.value_counts(batch.column("type")).to_pylist():
            self.by_type[item["values"]] += item["counts"]
        received_day = pc.cast(batch.column("received_at"), pa.date32())
        self.outside += pc.sum(pc.not_equal(received_day, self.day)).as_py() or 0
        if len(self.preview) < PREVIEW_ROWS and batch.num_rows:
            columns = ["message_id", "type", "event", "user_id", "anonymous_id", "timestamp"]
            head = batch.select(columns).slice(0, PREVIEW_ROWS - len(self.preview)).to_pylist()
            self.preview += tuple(
                {k: "" if v is None else str(v) for k, v in row.items()} for row in head
            )

    def result(self, **counts: int) -> _AcceptedStats:
        """The collected statistics with the counts known only at the end."""
        return _AcceptedStats(
            by_type=dict(sorted(self.by_type.items())),
            received_outside_day=self.outside,
            preview=self.preview,
            **counts,
        )


def _check_accounting(
    lake: Lake,
    scan: _Scanner,
    raw_stage: StagedPartition,
    rejected_stage: StagedPartition,
    duplicates: int,
) -> None:
    """Every line read is in exactly one of accepted, rejected or duplicate, by the files' own counts."""
    accepted = pq.ParquetFile(raw_stage.file(DATA_FILE), filesystem=lake.fs).metadata.num_rows
    rejected_file = pq.ParquetFile(rejected_stage.file(DATA_FILE), filesystem=lake.fs)
    rejected_rows = rejected_file.metadata.num_rows
    reasons = rejected_file.read(columns=["reason"]).column("reason")
    dup_rows = pc.sum(pc.equal(reasons, spec.DUPLICATE_MESSAGE_ID)).as_py() or 0
    invalid = sum(scan.rejected_by_reason.values())
    problems = []
    if accepted + rejected_rows != scan.lines_read:
        problems.append(
            f"{scan.lines_read:,} lines read but {accepted:,} accepted + {rejected_rows:,} rejected rows written"
        )
    if dup_rows != duplicates:
        problems.append(f"{duplicates:,} duplicates found but {dup_rows:,} duplicate rows written")
    if rejected_rows - dup_rows != invalid:
        problems.append(
            f"{invalid:,} invalid lines counted but {rejected_rows - dup_rows:,} written"
        )
    if problems:
        raise AccountingError(
            f"{scan.listing.day}: " + "; ".join(problems) + " — nothing was committed"
        )
