"""Ingest one received-day of the Segment archive into the lake's raw and rejected datasets.

The day is split by archive file across a pool of worker processes (`workers`, default
`settings.worker_count`: the run's setting, else `ACOUSTIC_PIPELINES_WORKERS`, else the cores):

1. scan (`scan.py`, one task per file, biggest first): each worker streams its file, decodes and
   checks every line (`decode.py`: msgspec's typed partial decode, the exact orjson path for the
   rest) and writes the file's raw part (final Parquet), its dedupe keys and its rejected part;
2. dedupe (`dedupe.py`, in this process): one exact DuckDB pass over the keys of every file
   finds the duplicates (the first by receivedAt wins, then file and line order; a messageId
   already accepted on one of the `dedupe_lookback_days` previous days is a duplicate too);
3. parts (`parts.py`, one task per file): a file without duplicates has its parts moved into the
   staged partitions as they are; a file with duplicates has them rewritten without (they join
   its rejected part). One part per archive file (`part-<file index>.parquet`): read in name
   order, the parts hold the same rows in the same order whatever the number of workers.

Each worker holds one file's batch at a time (bounded memory for a day or a file of any size);
only counts and the duplicates' line numbers travel between the processes. Before anything is
committed, the row counts of the written files are checked against the lines read: every line
lands in exactly one of accepted, rejected or duplicate. Both datasets are then committed together
(`Lake.commit_together`): visible together or not at all.

One writer per day: the ingest holds the partition's lease (`Lake.lease`) from before it stages
until after it commits; a second run of the same day waits for it (or fails naming the holder
after `lease_wait_seconds`). The scratch folder (`raw-events-<pid>@<host>-*` in the temp dir) is
removed on success and failure, and by the next ingest when a killed run left it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
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
)
from acoustic_pipelines.segment.dedupe import DayDuplicates, IdBatches, find_duplicates
from acoustic_pipelines.segment.parts import PartResult, PartTask, place_parts
from acoustic_pipelines.segment.scan import FileScan, FileTask, scan_file
from acoustic_pipelines.segment.tables import (
    RAW_EVENTS_SCHEMA,
    RAW_PARQUET_OPTIONS,
    REJECTED_EVENTS_SCHEMA,
    REJECTED_PARQUET_OPTIONS,
    UNREADABLE_FILES_SCHEMA,
)
from acoustic_pipelines.settings import WORKERS_ENV, worker_count
from acoustic_pipelines.storage import Location

__all__ = [
    "RAW_EVENTS_SCHEMA",
    "REJECTED_EVENTS_SCHEMA",
    "UNREADABLE_FILES_SCHEMA",
    "AccountingError",
    "IngestReport",
    "ingest_day",
    "parse_payload",
]

RAW_EVENTS = "segment/raw_events"
REJECTED_EVENTS = "segment/rejected_events"
UNREADABLE_FILES = "segment/unreadable_files"
FAIL, QUARANTINE = "fail", "quarantine"
UNREADABLE_POLICIES = (FAIL, QUARANTINE)
DATA_FILE = "part-00000.parquet"
DEFAULT_DEDUPE_LOOKBACK_DAYS = 1  # Segment dedupes over at least ~24 h (reference §1.3)
# Starting worker processes costs ~0.5 s: unless the number of workers is set, a day with less
# compressed data per worker than this gets fewer of them (a small day is read in this process).
DEFAULT_MIN_BYTES_PER_WORKER = 8 << 20
SCRATCH_PREFIX = "raw-events-"
PROGRESS_SECONDS = 5.0

log = logging.getLogger(__name__)
ProgressCallback = Callable[[str], None]
_T = TypeVar("_T")


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
    workers: int = 1  # worker processes that read the day

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
    workers: int | None = None,
    batch_rows: int = 8192,
    scratch_dir: str | None = None,
    on_progress: ProgressCallback | None = None,
    lease_wait_seconds: float = DEFAULT_WAIT_SECONDS,
    dedupe_lookback_days: int = DEFAULT_DEDUPE_LOOKBACK_DAYS,
    on_unreadable_file: str = FAIL,
    min_bytes_per_worker: int = DEFAULT_MIN_BYTES_PER_WORKER,
) -> IngestReport:
    """Read `day` of the archive and replace that day's raw and rejected partitions in the lake.

    Args:
        archive: the archive root (the folder or S3 prefix holding `segment-logs/`).
        lake: where `segment/raw_events` and `segment/rejected_events` are written.
        day: the UTC received-day to ingest.
        workers: worker processes sharing the day's files (None: `settings.worker_count()`);
            never more than the day's files. The output is the same for any number.
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
        min_bytes_per_worker: when the number of workers is not set (neither `workers` nor
            `$ACOUSTIC_PIPELINES_WORKERS`: one per core), fewer are started for a day with less
            compressed data than this per worker (a small day is read in this process).

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
    explicit = workers is not None or bool(os.environ.get(WORKERS_ENV))
    processes = _processes(listing, worker_count(workers), 0 if explicit else min_bytes_per_worker)
    progress = on_progress or (lambda message: log.info("%s", message))
    progress(
        f"{day}: {len(listing.files)} archive files, {listing.compressed_bytes:,} bytes compressed, "
        f"{processes} worker process(es)"
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
        with _worker_pool(processes) as pool:  # stopped before the commit
            scans = _scan_files(pool, archive, listing, scratch, batch_rows, progress)
            unreadable = [
                scan.unreadable.error(listing.files[scan.file_index])
                for scan in scans
                if scan.unreadable is not None
            ]
            if unreadable and not quarantine:
                raise UnreadableArchiveError(day, unreadable)
            _write_unreadable(lake, unreadable_stage, unreadable)
            lookback = _lookback(lake, day, dedupe_lookback_days)
            duplicates = find_duplicates(
                [s.keys_path for s in scans if s.keys_path is not None],
                [f.key for f in listing.files],
                [(d, ids) for d, ids in lookback if ids is not None],
                day=day,
                scratch=scratch,
                threads=processes,
            )
            parts = _place_parts(
                pool, lake, raw_stage, rejected_stage, listing, scans, duplicates, batch_rows
            )
        lines_read = sum(s.lines for s in scans)
        rejected_by_reason: Counter[str] = Counter()
        for scan in scans:
            rejected_by_reason.update(scan.rejected_by_reason)
        accepted = sum(p.rows for p in parts.values())
        _check_accounting(
            lake,
            raw_files=_staged_parts(lake, raw_stage),
            rejected_files=_staged_parts(lake, rejected_stage),
            lines_read=lines_read,
            invalid=sum(rejected_by_reason.values()),
            duplicates=duplicates.total,
            day=day,
        )
        if accepted != duplicates.kept:
            raise AccountingError(
                f"{day}: the dedupe kept {duplicates.kept:,} events but {accepted:,} were "
                "written — nothing was committed"
            )
        summary = {
            "lines_read": lines_read,
            "accepted": accepted,
            "duplicates": duplicates.total,
            "duplicates_across_days": duplicates.across_days,
        }
        lake.commit_together(
            [
                (raw_stage, summary),
                (
                    rejected_stage,
                    {**summary, "rejected": sum(p.rejected_rows for p in parts.values())},
                ),
                (unreadable_stage, {"files": len(unreadable)}),
            ]
        )
    report = IngestReport(
        day=day,
        files=len(listing.files),
        skipped_objects=listing.skipped,
        compressed_bytes=listing.compressed_bytes,
        uncompressed_bytes=sum(s.uncompressed_bytes for s in scans),
        lines_read=lines_read,
        accepted=accepted,
        rejected_by_reason=dict(sorted(rejected_by_reason.items())),
        duplicates=duplicates.total,
        duplicates_across_days=duplicates.across_days,
        lookback_days_missing=tuple(d for d, ids in lookback if ids is None),
        events_by_type=duplicates.by_type,
        distinct_user_ids=duplicates.distinct_user_ids,
        distinct_anonymous_ids=duplicates.distinct_anonymous_ids,
        received_outside_day=duplicates.received_outside_day,
        raw_events_uri=lake.partition_uri(RAW_EVENTS, day),
        rejected_events_uri=lake.partition_uri(REJECTED_EVENTS, day),
        raw_events_bytes=sum(p.bytes for p in parts.values()),
        unreadable_files=tuple(unreadable),
        preview=duplicates.preview,
        seconds=time.perf_counter() - started,
        workers=processes,
    )
    progress(
        f"{day}: {report.lines_read:,} lines → {report.accepted:,} accepted, {report.rejected:,} rejected, "
        f"{report.duplicates:,} duplicates in {report.seconds:.1f}s ({report.events_per_second:,.0f} lines/s, "
        f"{processes} worker process(es))"
    )
    return report


def _processes(listing: ArchiveDay, workers: int, min_bytes_per_worker: int) -> int:
    """Worker processes for the day: at most one per file, and one per `min_bytes_per_worker`."""
    by_size = listing.compressed_bytes // min_bytes_per_worker if min_bytes_per_worker else workers
    return max(1, min(workers, len(listing.files), by_size))


class _InProcess(Executor):
    """Runs each task at once in this process: the pool of a one-worker day."""

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        """Run `fn` now; its result (or error) in a done future."""
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 (handed over through the future)
            future.set_exception(exc)
        return future


@contextmanager
def _worker_pool(processes: int) -> Iterator[Executor]:
    """`processes` worker processes (forked from a clean server process), or this process alone.

    On the way out (an error included) tasks not started are cancelled and the workers stopped.
    """
    if processes <= 1:
        yield _InProcess()
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["acoustic_pipelines.segment.scan", "acoustic_pipelines.segment.parts"]
    )
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=context)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _scan_files(
    pool: Executor,
    archive: Location,
    listing: ArchiveDay,
    scratch: Path,
    batch_rows: int,
    progress: ProgressCallback,
) -> list[FileScan]:
    """Scan every file of the day on the pool, biggest first; the results in file order."""
    order = sorted(range(len(listing.files)), key=lambda i: -listing.files[i].size)
    futures = {
        i: pool.submit(
            scan_file,
            FileTask(
                archive=archive,
                file=listing.files[i],
                file_index=i,
                folder=str(scratch),
                batch_rows=batch_rows,
            ),
        )
        for i in order
    }
    scans: dict[int, FileScan] = {}
    last_report = time.monotonic()
    try:
        for i in order:
            scans[i] = futures[i].result()
            if time.monotonic() - last_report >= PROGRESS_SECONDS:
                last_report = time.monotonic()
                progress(
                    f"{len(scans)}/{len(listing.files)} files, "
                    f"{sum(s.lines for s in scans.values()):,} lines read"
                )
    finally:
        for future in futures.values():
            future.cancel()
    return [scans[i] for i in range(len(listing.files))]


def _place_parts(
    pool: Executor,
    lake: Lake,
    raw_stage: StagedPartition,
    rejected_stage: StagedPartition,
    listing: ArchiveDay,
    scans: Sequence[FileScan],
    duplicates: DayDuplicates,
    batch_rows: int,
) -> dict[int, PartResult]:
    """Place every file's parts in the staged partitions on the pool (an empty part for a dataset
    that would have none, so an empty day reads as empty with its columns)."""
    width = max(5, len(str(len(scans))))
    futures = {
        scan.file_index: pool.submit(
            place_parts,
            PartTask(
                lake=lake.location,
                key=listing.files[scan.file_index].key,
                raw_scratch=scan.raw_path,
                keys_scratch=scan.keys_path,
                rejected_scratch=scan.rejected_path,
                raw_path=raw_stage.file(f"part-{scan.file_index:0{width}d}.parquet"),
                rejected_path=rejected_stage.file(f"part-{scan.file_index:0{width}d}.parquet"),
                duplicates=duplicates.by_file.get(scan.file_index),
                batch_rows=batch_rows,
            ),
        )
        for scan in scans
        if scan.raw_path is not None or scan.rejected_path is not None
    }
    results = {index: future.result() for index, future in futures.items()}
    for stage, schema, options, has_rows in (
        (raw_stage, RAW_EVENTS_SCHEMA, RAW_PARQUET_OPTIONS, any(s.raw_path for s in scans)),
        (
            rejected_stage,
            REJECTED_EVENTS_SCHEMA,
            REJECTED_PARQUET_OPTIONS,
            any(s.rejected_path for s in scans) or duplicates.total,
        ),
    ):
        if not has_rows:
            pq.write_table(
                schema.empty_table(), stage.file(DATA_FILE), filesystem=lake.fs, **options
            )
    return results


def _staged_parts(lake: Lake, stage: StagedPartition) -> list[str]:
    """The Parquet files written into a staged partition, in name order."""
    selector = pafs.FileSelector(stage.path, allow_not_found=True)
    return sorted(i.path for i in lake.fs.get_file_info(selector) if i.path.endswith(".parquet"))


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


def _check_accounting(
    lake: Lake,
    *,
    raw_files: Iterable[str],
    rejected_files: Iterable[str],
    lines_read: int,
    invalid: int,
    duplicates: int,
    day: date,
) -> None:
    """Every line read is in exactly one of accepted, rejected or duplicate, by the files' own counts."""
    accepted = sum(pq.ParquetFile(f, filesystem=lake.fs).metadata.num_rows for f in raw_files)
    rejected_rows = dup_rows = 0
    for path in rejected_files:
        with pq.ParquetFile(path, filesystem=lake.fs) as rejected_file:
            rejected_rows += rejected_file.metadata.num_rows
            reasons = rejected_file.read(columns=["reason"]).column("reason")
            dup_rows += pc.sum(pc.equal(reasons, spec.DUPLICATE_MESSAGE_ID)).as_py() or 0
    problems = []
    if accepted + rejected_rows != lines_read:
        problems.append(
            f"{lines_read:,} lines read but {accepted:,} accepted + {rejected_rows:,} rejected rows written"
        )
    if dup_rows != duplicates:
        problems.append(f"{duplicates:,} duplicates found but {dup_rows:,} duplicate rows written")
    if rejected_rows - dup_rows != invalid:
        problems.append(
            f"{invalid:,} invalid lines counted but {rejected_rows - dup_rows:,} written"
        )
    if problems:
        raise AccountingError(f"{day}: " + "; ".join(problems) + " — nothing was committed")
