"""Collect export files over SFTP and land them as typed Parquet, one partition per UTC day.

`connect/exported_signals/date=YYYY-MM-DD/definition=<name>/part-0.parquet`: the rows of that
definition's export whose `SIGNAL_TIMESTAMP` (else `TIMESTAMP`, which marketing rows carry) falls
on that day, typed by :mod:`~acoustic_pipelines.connect.exports.files`. A packed job covering
several days fills each of them; a day without rows gets an empty file with the export's schema,
so every day shows as landed.

Per (definition, day) the newest live job of the ledger covering the day is collected. Its file
is awaited on SFTP (backoff up to a timeout), downloaded aside, verified (size, whole gzip
stream), streamed through the CSV reader and split by day; the partitions are committed together
at the end, and only then are the days recorded as collected in the ledger, per job and day,
with the file's actual rows and bytes. A range job becomes `collected` once every day of its
window has landed (from it, or from a newer job covering the day): collecting one day of a
range job leaves the rest of its window to be collected, never marked done. A row
with no timestamp or one outside the job's window fails the collection naming the row: nothing
is dropped silently.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acoustic_pipelines.connect.exports.files import ExportFileError, read_export_csv
from acoustic_pipelines.connect.exports.ledger import DEFERRED, ExportLedger, LedgerJob
from acoustic_pipelines.connect.sftp import Download, RemoteFileMissingError, SftpSession
from acoustic_pipelines.lake import Lake, StagedPartition

__all__ = [
    "EXPORTED_SIGNALS",
    "CollectReport",
    "CollectedJob",
    "DayWriters",
    "MissingExportJobError",
    "collect_exports",
    "jobs_to_collect",
    "split_export_file",
]

EXPORTED_SIGNALS = "connect/exported_signals"
PARQUET_FILE = "part-0.parquet"
_PARQUET_OPTIONS = {"compression": "zstd"}

log = logging.getLogger(__name__)


class MissingExportJobError(LookupError):
    """No live export job covers a day that is to be collected."""


@dataclass(frozen=True)
class CollectedJob:
    """One job's file: downloaded, verified and split into days."""

    job: LedgerJob
    download: Download
    rows: int
    rows_by_type: dict[str, int]
    rows_by_day: dict[date, int]
    rows_for_other_days: int
    landed: tuple[date, ...] = ()
    superseded: tuple[date, ...] = ()  # run days of its window a newer job of its definition landed


@dataclass
class CollectReport:
    """What a collection landed: per job, per day, per definition and signal type."""

    days: list[date]
    jobs: list[CollectedJob] = field(default_factory=list)
    rows_by_day: Counter[date] = field(default_factory=Counter)
    rows_by_type: Counter[str] = field(default_factory=Counter)
    rows_by_definition: Counter[str] = field(default_factory=Counter)
    seconds_waiting: float = 0.0

    @property
    def rows(self) -> int:
        """Rows landed in the collected days."""
        return sum(self.rows_by_day.values())

    @property
    def rows_for_other_days(self) -> int:
        """Rows of the files that belong to days of their windows outside this collection."""
        return sum(c.rows_for_other_days for c in self.jobs)

    @property
    def bytes_downloaded(self) -> int:
        """Compressed bytes downloaded over SFTP."""
        return sum(c.download.size for c in self.jobs)

    @property
    def download_seconds(self) -> float:
        """Seconds spent downloading (successful attempts)."""
        return sum(c.download.seconds for c in self.jobs)

    @property
    def mb_per_s(self) -> float:
        """Download throughput over every file, MB/s (10**6 bytes)."""
        seconds = self.download_seconds
        return self.bytes_downloaded / 1e6 / seconds if seconds > 0 else 0.0


def jobs_to_collect(
    ledger: ExportLedger, definitions: Sequence[str], days: Sequence[date]
) -> dict[str, LedgerJob]:
    """Per job name, the newest live job of each definition covering each day.

    Raises:
        MissingExportJobError: A definition has no live job for some day (naming them).
    """
    chosen: dict[str, LedgerJob] = {}
    missing: list[str] = []
    for definition in definitions:
        live = ledger.live_jobs_covering(definition, days)
        waiting = ledger.live_jobs_covering(definition, days, statuses=[DEFERRED])
        for day in days:
            covering = [j for j in live if j.covers(day)]
            if not covering:
                deferred = next((j for j in waiting if j.covers(day)), None)
                missing.append(
                    f"{definition} {day}"
                    + (
                        f" (job {deferred.job_name} is deferred until {deferred.deferred_until}: "
                        f"{deferred.error})"
                        if deferred
                        else ""
                    )
                )
                continue
            newest = max(covering, key=_age)
            chosen[newest.job_name] = newest
    if missing:
        raise MissingExportJobError(
            "no export job was submitted for " + ", ".join(missing) + "; materialize "
            "connect/export_jobs for these days first"
        )
    return chosen


def _age(job: LedgerJob) -> tuple[datetime, int]:
    return job.reserved_at, job.attempt


def _days_for(job: LedgerJob, chosen: Iterable[LedgerJob], days: Sequence[date]) -> list[date]:
    """The days `job` lands: those it covers where no newer chosen job of its definition does."""
    newer = [o for o in chosen if o.definition == job.definition and _age(o) > _age(job)]
    return [d for d in days if job.covers(d) and not any(o.covers(d) for o in newer)]


def _signal_days(batch: pa.RecordBatch) -> pa.Array:
    """The UTC day of each row: SIGNAL_TIMESTAMP, else TIMESTAMP (marketing rows)."""
    names = batch.schema.names
    moments = [batch.column(n) for n in ("SIGNAL_TIMESTAMP", "TIMESTAMP") if n in names]
    if not moments:
        return pa.nulls(batch.num_rows, pa.date32())
    moment = pc.coalesce(*moments) if len(moments) > 1 else moments[0]
    return pc.cast(moment, pa.date32())


class DayWriters:
    """One Parquet writer per day of one definition, created on first use.

    Rows are held back per day and written as row groups of up to `GROUP_ROWS` rows (a CSV
    block split over several days would otherwise give many small row groups: a larger file,
    slower to write and to read); at most `PENDING_ROWS` rows wait in memory over all days.
    Row groups are encoded and compressed on a writer thread (pyarrow releases the GIL) while
    the next CSV block is parsed, one group in flight at a time. Use it as a context manager.
    """

    GROUP_ROWS = 32_768
    PENDING_ROWS = 65_536

    def __init__(self, lake: Lake, staged: dict[date, StagedPartition], definition: str) -> None:
        self._lake = lake
        self._staged = staged
        self._definition = definition
        self._writers: dict[date, pq.ParquetWriter] = {}
        self._pending: defaultdict[date, list[pa.RecordBatch]] = defaultdict(list)
        self._pending_rows: Counter[date] = Counter()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._in_flight: Future[None] | None = None

    def __enter__(self) -> DayWriters:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)

    def write(self, day: date, batch: pa.RecordBatch) -> None:
        """Take a batch of `day`'s rows; write a row group once enough are held back."""
        self._pending[day].append(batch)
        self._pending_rows[day] += batch.num_rows
        if self._pending_rows[day] >= self.GROUP_ROWS:
            self._flush(day)
        elif self._pending_rows.total() >= self.PENDING_ROWS:
            self._flush(max(self._pending_rows, key=self._pending_rows.__getitem__))

    def _flush(self, day: date) -> None:
        batches = self._pending.pop(day)
        self._pending_rows.pop(day)
        writer = self._writers.get(day)
        if writer is None:
            folder = self._lake.stage_subfolder(self._staged[day], f"definition={self._definition}")
            writer = pq.ParquetWriter(
                f"{folder}/{PARQUET_FILE}",
                batches[0].schema,
                filesystem=self._lake.fs,
                **_PARQUET_OPTIONS,
            )
            self._writers[day] = writer
        table = pa.Table.from_batches(batches)
        self._wait()
        self._in_flight = self._thread.submit(
            writer.write_table, table, row_group_size=self.GROUP_ROWS * 2
        )

    def _wait(self) -> None:
        """Wait for the row group being written (its error, if any, is raised here)."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()

    def close(self, schema: pa.Schema | None, days: Sequence[date]) -> None:
        """Write what is held back and close every writer; days without rows get an empty file."""
        for day in days:
            if day not in self._writers and day not in self._pending and schema is not None:
                self.write(day, pa.RecordBatch.from_pylist([], schema=schema))
        for day in list(self._pending):
            self._flush(day)
        self._wait()
        for writer in self._writers.values():
            writer.close()


def split_export_file(
    source: Path,
    job: LedgerJob,
    days: Sequence[date],
    write: Callable[[date, pa.RecordBatch], None],
) -> tuple[pa.Schema | None, Counter[str], Counter[date], int]:
    """Read one export file and hand each run day's rows to `write`.

    Returns:
        The file's schema, rows per signal type (whole file), rows per run day, and rows of
        days outside `days` (still inside the job's window: landed by those days' runs).

    Raises:
        ExportFileError: The file is not the documented CSV, or a row has no timestamp or one
            outside the job's window.
    """
    wanted = set(days)
    by_type: Counter[str] = Counter()
    by_day: Counter[date] = Counter()
    other = 0
    schema = None
    first_row = 2
    for batch in read_export_csv(source):
        schema = batch.schema
        if batch.num_rows == 0:
            continue
        row_days = _signal_days(batch)
        _check_days(row_days, job, source, first_row)
        if "SIGNAL_TYPE" in batch.schema.names:
            counts = pc.value_counts(batch.column("SIGNAL_TYPE")).to_pylist()
            by_type.update({c["values"] or "(none)": c["counts"] for c in counts})
        for entry in pc.value_counts(row_days).to_pylist():
            day, count = entry["values"], entry["counts"]
            if day in wanted:
                write(day, batch.filter(pc.equal(row_days, pa.scalar(day, pa.date32()))))
                by_day[day] += count
            else:
                other += count
        first_row += batch.num_rows
    return schema, by_type, by_day, other


def _check_days(row_days: pa.Array, job: LedgerJob, source: Path, first_row: int) -> None:
    """Every row has a day inside the job's window, else ExportFileError naming the row."""
    start = pa.scalar(job.window_start, pa.date32())
    end = pa.scalar(job.window_end, pa.date32())
    outside = pc.or_kleene(pc.less(row_days, start), pc.greater(row_days, end))
    bad = pc.or_kleene(pc.is_null(row_days), outside)
    if not pc.any(bad).as_py():
        return
    index = pc.index(bad, True).as_py()
    value = row_days[index].as_py()
    raise ExportFileError(
        f"export file {source.name} (job {job.job_name}) row {first_row + index}: "
        + (
            "SIGNAL_TIMESTAMP and TIMESTAMP are both empty"
            if value is None
            else f"the signal's day {value} is outside the job's window "
            f"{job.window_start}..{job.window_end}"
        )
    )


def _fetch(
    session: SftpSession, job: LedgerJob, folder: Path, *, timeout: float
) -> tuple[Download, float]:
    """Wait for the job's file, download and verify it; the download and seconds waited."""
    started = time.monotonic()
    candidates = [job.remote_path]
    if job.path is None:  # no answer from Connect: the requested path, as written or gzipped
        candidates.append(job.requested_path)
    try:
        session.wait_for(candidates[0], timeout)
        remote = candidates[0]
    except RemoteFileMissingError:
        remote = next((c for c in candidates[1:] if _exists(session, c)), None)
        if remote is None:
            raise
    waited = time.monotonic() - started
    local = folder / f"{job.job_name}.csv.gz"
    return session.download(remote, local, gzip_check=True), waited


def _exists(session: SftpSession, path: str) -> bool:
    try:
        session.stat(path)
    except RemoteFileMissingError:
        return False
    return True


def collect_exports(
    lake: Lake,
    ledger: ExportLedger,
    *,
    definitions: Sequence[str],
    days: Sequence[date],
    open_sftp: Callable[[], AbstractContextManager[SftpSession]],
    timeout: float,
    on_progress: Callable[[str], None] = log.info,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CollectReport:
    """Collect every job covering `days` and land those days, committed together at the end.

    Raises:
        MissingExportJobError: Some definition has no live job for some day.
        WaitTimeoutError: A job's file did not appear within `timeout` seconds.
        IntegrityError: A file failed verification on every download attempt.
        ExportFileError: A file is not the documented export CSV.
    """
    days = sorted(set(days))
    jobs = jobs_to_collect(ledger, definitions, days)
    report = CollectReport(days=days)
    schemas: dict[str, pa.Schema | None] = {}
    writers: dict[str, DayWriters] = {}
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="exports-")))
        staged = {d: stack.enter_context(lake.stage(EXPORTED_SIGNALS, d)) for d in days}
        session = stack.enter_context(open_sftp())
        for job in jobs.values():
            on_progress(
                f"waiting for {job.job_name} ({job.data_job_id or 'no job id'}) at {job.remote_path}"
            )
            download, waited = _fetch(session, job, folder, timeout=timeout)
            report.seconds_waiting += waited
            on_progress(
                f"{job.job_name}: {download.size:,} bytes downloaded and verified "
                f"({download.mb_per_s:,.1f} MB/s, {download.attempts} attempt(s))"
            )
            writer = writers.get(job.definition)
            if writer is None:
                writer = stack.enter_context(DayWriters(lake, staged, job.definition))
                writers[job.definition] = writer
            job_days = _days_for(job, jobs.values(), days)
            schema, by_type, by_day, other = split_export_file(
                download.local, job, job_days, writer.write
            )
            schemas[job.definition] = schemas.get(job.definition) or schema
            download.local.unlink()
            collected = CollectedJob(
                job,
                download,
                sum(by_type.values()),
                dict(by_type),
                dict(by_day),
                other,
                landed=tuple(job_days),
                superseded=tuple(d for d in days if job.covers(d) and d not in job_days),
            )
            report.jobs.append(collected)
            report.rows_by_day.update(by_day)
            report.rows_by_definition[job.definition] += sum(by_day.values())
            report.rows_by_type.update(by_type)
            on_progress(
                f"{job.job_name}: {collected.rows:,} rows, {sum(by_day.values()):,} for these days"
            )
        for definition, writer in writers.items():
            writer.close(schemas.get(definition), days)
        for day in days:
            lake.commit(staged[day], _summary(report, day))
    for collected in report.jobs:
        landed: dict[date, int | None] = {
            d: collected.rows_by_day.get(d, 0) for d in collected.landed
        }
        ledger.mark_collected(
            collected.job.job_name,
            rows=collected.rows,
            bytes=collected.download.size,
            rows_by_type=collected.rows_by_type,
            collected_at=now(),
            days=landed | dict.fromkeys(collected.superseded),
        )
    return report


def _summary(report: CollectReport, day: date) -> dict[str, object]:
    return {
        "rows": report.rows_by_day.get(day, 0),
        "jobs": [
            {
                "job_name": c.job.job_name,
                "data_job_id": c.job.data_job_id,
                "rows": c.rows_by_day.get(day, 0),
            }
            for c in report.jobs
            if c.job.covers(day)
        ],
    }
