"""One day of raw Segment events through every destination's mappings, into flat Parquet tables.

:func:`map_day` streams the day's ``segment/raw_events`` partition in record batches and runs
every event through each destination's enabled mappings in config order, as Segment does
(reference ``segment.md`` §8): for each mapping whose trigger matches, the mapping resolves a
payload, :func:`~acoustic_pipelines.acoustic.rows.build_row_with_stats` flattens it into an
Acoustic row, and the destination's column allow-list (``columns``) keeps the header keys and the
listed keys. One row per (event, matching mapping).

What lands in the lake, replaced whole on every run (``Lake.stage``/``Lake.commit_together``):

- ``acoustic/mapped_events/date=YYYY-MM-DD/destination=NAME/part-NNNNN.parquet``, one file per
  part of the day (see below) and destination: ``message_id``, ``mapping``, ``uniqueRecipient``,
  ``eventSource``, ``timestamp``, then one column per flat key seen that day for that
  destination, typed and ordered by :mod:`~acoustic_pipelines.acoustic.flat_columns` (every
  part has the day's columns). The five fixed columns are strings (an epoch number
  ``timestamp`` as its JSON text). A flat key named ``message_id`` or ``mapping`` would clash
  with those columns: it is dropped and counted in ``dropped_keys`` like a key outside the
  allow-list. A number that is not finite (only a mapping can make one, e.g. ``@json`` decoding
  ``1e400``) is stored as null, as ``JSON.stringify`` sends it in Segment.
- ``acoustic/rejected_events/date=YYYY-MM-DD/part-NNNNN.parquet``: ``destination``, ``mapping``,
  ``message_id``, ``code``, ``detail``, ``field``; join on ``message_id`` with
  ``segment/raw_events`` for the event itself. Codes: the Acoustic codes of
  :class:`~acoustic_pipelines.acoustic.rows.AcousticReject`, :data:`MAPPING_FAILED` (the
  mapping raised a ``MappingError``), :data:`TRIGGER_FAILED` (the trigger could not be evaluated
  on the event) and :data:`UNREADABLE_PAYLOAD` (the payload is not a JSON object; ``mapping`` is
  null and the reject is counted once per destination).

When every enabled mapping's trigger starts with a test of ``type`` (``type = "track" and …``,
as Segment's presets do), an event whose ``type`` column no trigger tests for is counted as
"no matching mapping" without its payload being read: no mapping can match it. (Its payload is
then not checked either: an unreadable payload of such a type is "no matching mapping", not an
``UNREADABLE_PAYLOAD`` reject. Ingest accepts only lines that are JSON objects, so only a raw
table written by other means can hold one.)

Nothing is lost: per destination, every event read is either matched by at least one mapping,
"no matching mapping", or an unreadable payload; every (event, matching mapping) is either a row
or a reject (a trigger that fails counts as a match that is rejected).
:meth:`MappedDayReport.accounting_problems` checks this against the counts read back from the
written files, and the report is saved in the partition's ``_SUCCESS`` marker
(:func:`read_mapped_day_report`).

Workers: the day is cut into parts of consecutive raw row groups
(:mod:`~acoustic_pipelines.acoustic.mapped_parts`, ~131,072 events each; the cut depends on the
raw files only). ``workers`` processes (:func:`~acoustic_pipelines.settings.worker_count`) map
the parts, each spilling its rows as typed Arrow batches to a local scratch folder; once every
part is mapped the day's column types are known, and the workers write each part's Parquet
files with them. Read in file order, the tables are the same whatever the number of workers
(the files too), and memory stays bounded by one batch per destination and worker. If the run
dies, its workers stop at their next batch and nothing is committed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from acoustic_pipelines import settings
from acoustic_pipelines.acoustic.flat_columns import FlatColumn, json_text
from acoustic_pipelines.acoustic.mapped_parts import (
    FIXED_COLUMNS,
    MAPPING_FAILED,
    PART_EVENTS,
    REJECTED_EVENTS_SCHEMA,
    TRIGGER_FAILED,
    UNREADABLE_PAYLOAD,
    DestinationPart,
    MappedEventsError,
    MappedPart,
    MappingPart,
    PartPlan,
    PartWork,
    fixed_columns,
    map_part,
    plan_parts,
    write_empty_parts,
    write_part,
)
from acoustic_pipelines.config.loading import DestinationConfig
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.owners import owned_scratch
from acoustic_pipelines.segment.raw_events import RAW_EVENTS
from acoustic_pipelines.segment.raw_events import REJECTED_EVENTS as INGEST_REJECTS

__all__ = [
    "FIXED_COLUMNS",
    "MAPPED_EVENTS",
    "MAPPING_FAILED",
    "REJECTED_EVENTS",
    "REJECTED_EVENTS_SCHEMA",
    "TRIGGER_FAILED",
    "UNREADABLE_PAYLOAD",
    "DestinationOverview",
    "MappedDayReport",
    "MappedEventsError",
    "MappingOverview",
    "destination_subpath",
    "map_day",
    "read_mapped_day_report",
    "iter_mapped_batches",
    "read_mapped_destination",
]

MAPPED_EVENTS = "acoustic/mapped_events"
REJECTED_EVENTS = "acoustic/rejected_events"
_FIXED_SET = frozenset(FIXED_COLUMNS)
PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 10
PROGRESS_SECONDS = 5.0
WATCH_SECONDS = 0.25  # how often a worker checks that its run is alive

log = logging.getLogger(__name__)
ProgressCallback = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MappingOverview:
    """What one mapping did with the day: events its trigger matched, rows, rejects per code."""

    name: str
    matched: int
    rows: int
    rejected_by_code: dict[str, int]

    @property
    def rejected(self) -> int:
        """Matches that became a reject instead of a row."""
        return sum(self.rejected_by_code.values())


@dataclass(frozen=True)
class DestinationOverview:
    """The delivery overview of one destination for one day.

    Attributes:
        name: the destination's name.
        considered: raw events run through the destination's mappings.
        matched_events: events at least one enabled mapping matched.
        no_matching_mapping: events no enabled mapping matched (Segment's "No matching mapping").
        unreadable_payloads: events whose payload is not a JSON object (also a reject).
        rejected_by_code: reject rows written for this destination, per code.
        rows: rows delivered (one per event and matching mapping that was not rejected).
        rows_written: rows in the destination's Parquet file, read back from it.
        dropped_keys: flat keys left out of rows, per key, with the rows they were left out of.
        key_collisions: writes to a key a row already held while flattening (a later section
            overwrote an earlier one, or a header key was protected).
        mappings: per mapping, in config order.
        uri: the destination's Parquet folder.
        columns: the table's columns, in order.
        preview: the first rows, as text, limited to the first columns.
    """

    name: str
    considered: int
    matched_events: int
    no_matching_mapping: int
    unreadable_payloads: int
    rejected_by_code: dict[str, int]
    rows: int
    rows_written: int
    dropped_keys: dict[str, int]
    key_collisions: int
    mappings: tuple[MappingOverview, ...]
    uri: str
    columns: tuple[str, ...]
    preview: tuple[dict[str, str], ...] = ()

    @property
    def rejected(self) -> int:
        """Reject rows of this destination, all codes."""
        return sum(self.rejected_by_code.values())

    @property
    def no_matching_share(self) -> float:
        """Share of the events considered that no mapping matched."""
        return self.no_matching_mapping / self.considered if self.considered else 0.0

    @property
    def reject_share(self) -> float:
        """Share of the attempts (matches plus unreadable payloads) that were rejected."""
        attempts = self.rows + self.rejected
        return self.rejected / attempts if attempts else 0.0


@dataclass(frozen=True)
class MappedDayReport:
    """The delivery overview of one day: received → ingest → mappings → rows, per destination.

    Attributes:
        day: the partition's UTC day.
        received: lines read from the archive (``segment/raw_events``'s ``_SUCCESS``).
        rejected_at_ingest: lines rejected as invalid at ingest.
        duplicates: lines dropped at ingest as duplicate messageIds.
        accepted: raw events in the partition, by its ``_SUCCESS``.
        events_read: raw events actually read from the partition by this run.
        destinations: one overview per destination, in config order.
        mapped_events_uri: the day's ``acoustic/mapped_events`` folder.
        rejected_events_uri: the day's ``acoustic/rejected_events`` folder.
        rejected_rows_written: rows in the rejected-events file, read back from it.
        seconds: wall time of the run.
    """

    day: date
    received: int
    rejected_at_ingest: int
    duplicates: int
    accepted: int
    events_read: int
    destinations: tuple[DestinationOverview, ...]
    mapped_events_uri: str
    rejected_events_uri: str
    rejected_rows_written: int
    seconds: float

    @property
    def rows(self) -> int:
        """Rows delivered over all destinations."""
        return sum(d.rows for d in self.destinations)

    @property
    def rejected(self) -> int:
        """Reject rows over all destinations."""
        return sum(d.rejected for d in self.destinations)

    @property
    def events_per_second(self) -> float:
        """Raw events mapped per second of wall time (all destinations)."""
        return self.events_read / self.seconds if self.seconds else 0.0

    def destination(self, name: str) -> DestinationOverview:
        """The overview of the destination of that name (KeyError if it was not mapped)."""
        for overview in self.destinations:
            if overview.name == name:
                return overview
        raise KeyError(f"destination {name!r} is not in the report of {self.day}")

    def accounting_problems(self) -> list[str]:
        """Every way the overview fails to add up, as sentences (empty when every event is accounted for)."""
        problems = _ingest_problems(self)
        for overview in self.destinations:
            problems += _destination_problems(overview, self.events_read)
        if self.rejected_rows_written != self.rejected:
            problems.append(
                f"{self.rejected:,} rejects counted but {self.rejected_rows_written:,} rows in "
                f"{self.rejected_events_uri}"
            )
        return problems

    def to_summary(self) -> dict[str, Any]:
        """The report as JSON-ready data, as saved in the partition's ``_SUCCESS`` (no preview)."""
        data = asdict(self)
        data["day"] = self.day.isoformat()
        for destination in data["destinations"]:
            del destination["preview"]
        return data


def _ingest_problems(report: MappedDayReport) -> list[str]:
    """The raw partition's own counts, and what this run read from it."""
    problems = []
    ingested = report.accepted + report.rejected_at_ingest + report.duplicates
    if ingested != report.received:
        problems.append(
            f"{report.received:,} lines received but {report.accepted:,} accepted + "
            f"{report.rejected_at_ingest:,} rejected + {report.duplicates:,} duplicates at ingest"
        )
    if report.events_read != report.accepted:
        problems.append(
            f"{RAW_EVENTS} for {report.day} says {report.accepted:,} events but "
            f"{report.events_read:,} were read"
        )
    return problems


def _destination_problems(overview: DestinationOverview, events_read: int) -> list[str]:
    """One destination: events, matches, rows and rejects each add up."""
    name = f'destination "{overview.name}"'
    problems = []
    if overview.considered != events_read:
        problems.append(f"{name}: {overview.considered:,} events considered of {events_read:,}")
    outcomes = overview.matched_events + overview.no_matching_mapping + overview.unreadable_payloads
    if outcomes != overview.considered:
        problems.append(
            f"{name}: {overview.considered:,} events but {overview.matched_events:,} matched + "
            f"{overview.no_matching_mapping:,} no matching mapping + "
            f"{overview.unreadable_payloads:,} unreadable"
        )
    mapping_rejects: Counter[str] = Counter({UNREADABLE_PAYLOAD: overview.unreadable_payloads})
    for mapping in overview.mappings:
        mapping_rejects.update(mapping.rejected_by_code)
        if mapping.matched != mapping.rows + mapping.rejected:
            problems.append(
                f'{name} mapping "{mapping.name}": {mapping.matched:,} matched but '
                f"{mapping.rows:,} rows + {mapping.rejected:,} rejects"
            )
    if +mapping_rejects != Counter(overview.rejected_by_code):
        problems.append(f"{name}: rejects per code differ from the sum over its mappings")
    mapped_rows = sum(m.rows for m in overview.mappings)
    if not overview.rows == mapped_rows == overview.rows_written:
        problems.append(
            f"{name}: {overview.rows:,} rows counted, {mapped_rows:,} over its mappings, "
            f"{overview.rows_written:,} in {overview.uri}"
        )
    return problems


def read_mapped_day_report(lake: Lake, day: date) -> MappedDayReport:
    """The report saved with a committed ``acoustic/mapped_events`` partition (without previews).

    Raises:
        PartitionNotFound: the day is not materialized.
    """
    data = dict(lake.summary(MAPPED_EVENTS, day))
    destinations = tuple(
        DestinationOverview(
            **{
                **item,
                "mappings": tuple(MappingOverview(**m) for m in item["mappings"]),
                "columns": tuple(item["columns"]),
            }
        )
        for item in data.pop("destinations")
    )
    day_text = data.pop("day")
    return MappedDayReport(day=date.fromisoformat(day_text), destinations=destinations, **data)


# --------------------------------------------------------------------------------------------
# Where the tables are
# --------------------------------------------------------------------------------------------


def destination_subpath(name: str) -> str:
    """The sub-folder of a destination inside a day's partition: ``destination=NAME``."""
    return f"destination={name}"


def read_mapped_destination(lake: Lake, day: date, destination: str) -> pads.Dataset:
    """A pyarrow dataset over one destination's mapped rows of a committed day."""
    return lake.read_partition(MAPPED_EVENTS, day, subpath=destination_subpath(destination))


def iter_mapped_batches(
    lake: Lake, day: date, destination: str, *, batch_rows: int = 8192
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """One destination's mapped rows of a committed day: the schema and the rows, streamed."""
    subpath = destination_subpath(destination)
    schema = lake.read_partition(MAPPED_EVENTS, day, subpath=subpath).schema
    return schema, lake.iter_batches(MAPPED_EVENTS, day, subpath=subpath, batch_rows=batch_rows)


# --------------------------------------------------------------------------------------------
# Mapping a day
# --------------------------------------------------------------------------------------------


def map_day(
    lake: Lake,
    day: date,
    destinations: list[DestinationConfig] | tuple[DestinationConfig, ...],
    *,
    batch_rows: int = 8192,
    scratch_dir: str | None = None,
    on_progress: ProgressCallback | None = None,
    workers: int | None = None,
    part_events: int = PART_EVENTS,
) -> MappedDayReport:
    """Map one day of raw events for every destination and replace that day's mapped and rejected partitions.

    Args:
        lake: holds ``segment/raw_events`` and receives ``acoustic/mapped_events`` and
            ``acoustic/rejected_events``.
        day: the UTC day (partition) to map.
        destinations: the destinations to map for (``PipelineConfig.destinations``).
        batch_rows: raw events per record batch.
        scratch_dir: local folder for the spilled batches (default: the system's temp dir).
        on_progress: called with a one-line progress message every few seconds and at the end.
        workers: worker processes (:func:`~acoustic_pipelines.settings.worker_count`: None =
            ``$ACOUSTIC_PIPELINES_WORKERS``, else the machine's cores); 1 maps in this process.
            The files written are the same whatever the number.
        part_events: events per part (one Parquet file per part and destination); the cut
            depends on the raw files only.

    Returns:
        The delivery overview; check it with :meth:`MappedDayReport.accounting_problems`.

    Raises:
        PartitionNotFound: the day's ``segment/raw_events`` is not materialized.
        MappedEventsError: the engine failed on an event in an unexpected way (nothing committed).
    """
    started = time.perf_counter()
    progress = on_progress or (lambda message: log.info("%s", message))
    raw = lake.summary(RAW_EVENTS, day)
    # Counted by the rejected table's own commit, so the ingest equation is checked, not assumed.
    ingest_rejects = lake.summary(INGEST_REJECTS, day)
    plans = plan_parts(lake, day, part_events=part_events)
    processes = min(settings.worker_count(workers), max(len(plans), 1))
    with (
        owned_scratch("mapped-events-", scratch_dir) as scratch,
        lake.stage(MAPPED_EVENTS, day) as mapped_stage,
        lake.stage(REJECTED_EVENTS, day) as rejected_stage,
    ):
        folders = tuple(
            lake.stage_subfolder(mapped_stage, destination_subpath(d.name)) for d in destinations
        )
        work = PartWork(
            lake=lake,
            day=day,
            destinations=tuple(destinations),
            scratch=str(scratch),
            rejected_folder=rejected_stage.path,
            mapped_folders=folders,
            batch_rows=batch_rows,
            parent_pid=os.getpid(),
        )
        with _Runner(work, processes) as runner:
            totals, events_read = _map_parts(runner, plans, day, raw["accepted"], progress)
            columns = [
                fixed_columns() + [c for c in t.types.columns() if c.name not in _FIXED_SET]
                for t in totals
            ]
            for destination, total in zip(destinations, totals, strict=True):
                progress(f"{day}: writing {total.rows:,} rows of destination {destination.name!r}")
            if plans:
                runner.write_parts(plans, totals_by_part=runner.mapped, columns=columns)
            else:
                write_empty_parts(work)
        overviews = tuple(
            _overview(lake, day, destination, total, folder, column_list)
            for destination, total, folder, column_list in zip(
                destinations, totals, folders, columns, strict=True
            )
        )
        report = MappedDayReport(
            day=day,
            received=raw["lines_read"],
            rejected_at_ingest=ingest_rejects["rejected"] - ingest_rejects["duplicates"],
            duplicates=raw["duplicates"],
            accepted=raw["accepted"],
            events_read=events_read,
            destinations=overviews,
            mapped_events_uri=lake.partition_uri(MAPPED_EVENTS, day),
            rejected_events_uri=lake.partition_uri(REJECTED_EVENTS, day),
            rejected_rows_written=_rows_in(lake, _parquet_in(lake, rejected_stage.path)),
            seconds=time.perf_counter() - started,
        )
        _warn_about_accounting(report)
        lake.commit_together(  # both visible, or neither (a run killed between the swaps)
            [
                (mapped_stage, report.to_summary()),
                (rejected_stage, {"rows": report.rejected_rows_written}),
            ]
        )
    progress(
        f"{day}: {report.events_read:,} events → {report.rows:,} rows, {report.rejected:,} rejects "
        f"for {len(overviews)} destination(s) in {report.seconds:.1f}s "
        f"({report.events_per_second:,.0f} events/s, {processes} worker(s))"
    )
    return report


def _warn_about_accounting(report: MappedDayReport) -> None:
    # Committed anyway: the asset check reports it and blocks what reads the day.
    for problem in report.accounting_problems():
        log.warning("%s: the overview does not add up: %s", report.day, problem)


def _map_parts(
    runner: _Runner,
    plans: list[PartPlan],
    day: date,
    expected: int,
    progress: ProgressCallback,
) -> tuple[list[DestinationPart], int]:
    """Map every part; the day's counters per destination (summed in part order), events read."""
    totals = [DestinationPart() for _ in runner.work.destinations]
    read = 0
    last_report = time.monotonic()
    for part in runner.map_parts(plans):
        read += part.events_read
        if time.monotonic() - last_report >= PROGRESS_SECONDS:
            last_report = time.monotonic()
            rows = sum(t.rows for t in totals) + sum(d.rows for d in part.destinations)
            progress(f"{day}: {read:,}/{expected:,} events mapped, {rows:,} rows so far")
        for total, destination in zip(totals, part.destinations, strict=True):
            total.add(destination)
    for total, destination in zip(totals, runner.work.destinations, strict=True):
        if not total.mappings:
            total.mappings = [MappingPart() for _ in destination.rules]
    return totals, read


class _Runner:
    """Runs the parts' two steps here (one worker) or on a pool of worker processes."""

    def __init__(self, work: PartWork, processes: int) -> None:
        self.work = work
        self.processes = processes
        self.mapped: dict[int, MappedPart] = {}
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Runner:
        if self.processes > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(
                    replace(self.work, destinations=()),
                    [d.model_dump(mode="json") for d in self.work.destinations],
                ),
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def map_parts(self, plans: list[PartPlan]) -> Iterator[MappedPart]:
        """Each part's result, in part order, as soon as it and those before it are done."""
        if self._pool is None:
            results: Iterator[MappedPart] = (map_part(self.work, plan) for plan in plans)
        else:
            results = self._pool.map(_map_in_worker, plans)
        for part in results:
            self.mapped[part.number] = part
            yield part

    def write_parts(
        self,
        plans: list[PartPlan],
        *,
        totals_by_part: dict[int, MappedPart],
        columns: list[list[FlatColumn]],
    ) -> None:
        """Write every part's spilled rows with the day's columns."""
        jobs = [
            (plan.number, [d.batches for d in totals_by_part[plan.number].destinations])
            for plan in plans
        ]
        if self._pool is None:
            for number, batches in jobs:
                write_part(self.work, number, batches, columns)
            return
        futures = [
            self._pool.submit(_write_in_worker, number, batches, columns)
            for number, batches in jobs
        ]
        for future in futures:
            future.result()


_WORKER: dict[str, PartWork] = {}


def _start_worker(work: PartWork, destinations: list[dict[str, Any]]) -> None:
    """A worker process's set-up: the destinations compiled once, and a watch on the run."""
    threading.Thread(target=_exit_with_run, args=(work.parent_pid,), daemon=True).start()
    configs = tuple(DestinationConfig.model_validate(d) for d in destinations)
    _WORKER["work"] = replace(work, destinations=configs)


def _exit_with_run(run_pid: int) -> None:
    """End this worker once the run that started it is gone (kill -9): busy or idle, it stops."""
    while os.getppid() == run_pid:
        time.sleep(WATCH_SECONDS)
    os._exit(1)


def _map_in_worker(plan: PartPlan) -> MappedPart:
    return map_part(_WORKER["work"], plan)


def _write_in_worker(number: int, batches: list[int], columns: list[list[FlatColumn]]) -> None:
    write_part(_WORKER["work"], number, batches, columns)


def _parquet_in(lake: Lake, folder: str) -> list[str]:
    """The Parquet files of a staged folder, sorted."""
    selector = pafs.FileSelector(folder)
    return sorted(i.path for i in lake.fs.get_file_info(selector) if i.path.endswith(".parquet"))


def _rows_in(lake: Lake, paths: list[str]) -> int:
    """Rows in these Parquet files, read back from their footers."""
    return sum(pq.ParquetFile(p, filesystem=lake.fs).metadata.num_rows for p in paths)


def _overview(
    lake: Lake,
    day: date,
    destination: DestinationConfig,
    total: DestinationPart,
    folder: str,
    columns: list[FlatColumn],
) -> DestinationOverview:
    """The destination's overview, rows read back from the written files, with a preview."""
    files = _parquet_in(lake, folder)
    rejected = Counter({UNREADABLE_PAYLOAD: total.unreadable})
    for counts in total.mappings:
        rejected.update(counts.rejected)
    return DestinationOverview(
        name=destination.name,
        considered=total.considered,
        matched_events=total.matched_events,
        no_matching_mapping=total.no_matching,
        unreadable_payloads=total.unreadable,
        rejected_by_code=dict(sorted((+rejected).items())),
        rows=total.rows,
        rows_written=_rows_in(lake, files),
        dropped_keys=dict(sorted(total.dropped.items())),
        key_collisions=total.collisions,
        mappings=tuple(
            MappingOverview(
                name=rule.name,
                matched=counts.matched,
                rows=counts.rows,
                rejected_by_code=dict(sorted(counts.rejected.items())),
            )
            for rule, counts in zip(destination.rules, total.mappings, strict=True)
        ),
        uri=lake.partition_uri(MAPPED_EVENTS, day, destination_subpath(destination.name)),
        columns=tuple(c.name for c in columns),
        preview=_preview(lake, files),
    )


def _preview(lake: Lake, files: list[str]) -> tuple[dict[str, str], ...]:
    """The first rows as text: the fixed columns, then the first data columns they fill."""
    for path in files:
        with pq.ParquetFile(path, filesystem=lake.fs) as file:
            for batch in file.iter_batches(batch_size=PREVIEW_ROWS, use_threads=False):
                if batch.num_rows:
                    return _preview_rows(batch)
    return ()


def _preview_rows(batch: pa.RecordBatch) -> tuple[dict[str, str], ...]:
    head = batch.slice(0, PREVIEW_ROWS)
    fixed = len(FIXED_COLUMNS)
    filled = [i for i in range(fixed, head.num_columns) if head.column(i).null_count < len(head)]
    head = head.select([*range(fixed), *filled[: PREVIEW_COLUMNS - fixed]])
    return tuple(
        {key: json_text(value) or "" for key, value in row.items()} for row in head.to_pylist()
    )
