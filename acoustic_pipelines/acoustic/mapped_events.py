"""One day of raw Segment events through every destination's mappings, into flat Parquet tables.

:func:`map_day` streams the day's ``segment/raw_events`` partition in record batches and runs
every event through each destination's enabled mappings in config order, as Segment does
(reference ``segment.md`` §8): for each mapping whose trigger matches, the mapping resolves a
payload, :func:`~acoustic_pipelines.acoustic.rows.build_row_with_stats` flattens it into an
Acoustic row, and the destination's column allow-list (``columns``) keeps the header keys and the
listed keys. One row per (event, matching mapping).

What lands in the lake, replaced whole on every run (``Lake.stage``/``Lake.commit``):

- ``acoustic/mapped_events/date=YYYY-MM-DD/destination=NAME/part-00000.parquet``, one per
  destination: ``message_id``, ``mapping``, ``uniqueRecipient``, ``eventSource``, ``timestamp``,
  then one column per flat key seen that day for that destination, typed and ordered by
  :mod:`~acoustic_pipelines.acoustic.flat_columns`. The five fixed columns are strings (an epoch
  number ``timestamp`` as its JSON text). A flat key named ``message_id`` or ``mapping`` would
  clash with those columns: it is dropped and counted in ``dropped_keys`` like a key outside the
  allow-list. A number that is not finite (only a mapping can make one, e.g. ``@json`` decoding
  ``1e400``) is stored as null, as ``JSON.stringify`` sends it in Segment.
- ``acoustic/rejected_events/date=YYYY-MM-DD/part-00000.parquet``: ``destination``, ``mapping``,
  ``message_id``, ``code``, ``detail``, ``field``; join on ``message_id`` with
  ``segment/raw_events`` for the event itself. Codes: the Acoustic codes of
  :class:`~acoustic_pipelines.acoustic.rows.AcousticReject`, :data:`MAPPING_FAILED` (the
  mapping raised a ``MappingError``), :data:`TRIGGER_FAILED` (the trigger could not be evaluated
  on the event) and :data:`UNREADABLE_PAYLOAD` (the payload is not a JSON object; ``mapping`` is
  null and the reject is counted once per destination).

Nothing is lost: per destination, every event read is either matched by at least one mapping,
"no matching mapping", or an unreadable payload; every (event, matching mapping) is either a row
or a reject (a trigger that fails counts as a match that is rejected).
:meth:`MappedDayReport.accounting_problems` checks this against the counts read back from the
written files, and the report is saved in the partition's ``_SUCCESS`` marker
(:func:`read_mapped_day_report`).

Rows are spilled to a local scratch file (orjson lines) while the column types are collected, as
the columns are known only once the whole day is mapped; the Parquet file is then written from
the spill in row groups. Memory stays bounded by the batch size, whatever the day's size.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from acoustic_pipelines.acoustic.flat_columns import (
    ColumnTypes,
    FlatColumn,
    column_arrays,
    fits_int64,
    json_text,
)
from acoustic_pipelines.acoustic.rows import HEADER_KEYS, AcousticReject, build_row_with_stats
from acoustic_pipelines.actions.mappings.kit import MappingError
from acoustic_pipelines.actions.triggers import TriggerError
from acoustic_pipelines.config.loading import DestinationConfig, MappingRule
from acoustic_pipelines.lake import Lake, StagedPartition
from acoustic_pipelines.owners import owned_scratch
from acoustic_pipelines.segment.raw_events import RAW_EVENTS, parse_payload
from acoustic_pipelines.segment.raw_events import REJECTED_EVENTS as INGEST_REJECTS

__all__ = [
    "MAPPED_EVENTS",
    "MAPPING_FAILED",
    "REJECTED_EVENTS",
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
DATA_FILE = "part-00000.parquet"

# Reject codes of our own, beside the Acoustic codes.
MAPPING_FAILED = "MAPPING_FAILED"
TRIGGER_FAILED = "TRIGGER_FAILED"
UNREADABLE_PAYLOAD = "UNREADABLE_PAYLOAD"

FIXED_COLUMNS = ("message_id", "mapping", *HEADER_KEYS)
_RESERVED_KEYS = ("message_id", "mapping")  # our columns, not Acoustic's
REJECTED_EVENTS_SCHEMA = pa.schema(
    [
        ("destination", pa.string()),
        ("mapping", pa.string()),
        ("message_id", pa.string()),
        ("code", pa.string()),
        ("detail", pa.string()),
        ("field", pa.string()),
    ]
)
_PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd"}
PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 10
PROGRESS_SECONDS = 5.0

log = logging.getLogger(__name__)
ProgressCallback = Callable[[str], None]


class MappedEventsError(RuntimeError):
    """A trigger, mapping or row builder failed in a way no event should cause; nothing committed."""


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
) -> MappedDayReport:
    """Map one day of raw events for every destination and replace that day's mapped and rejected partitions.

    Args:
        lake: holds ``segment/raw_events`` and receives ``acoustic/mapped_events`` and
            ``acoustic/rejected_events``.
        day: the UTC day (partition) to map.
        destinations: the destinations to map for (``PipelineConfig.destinations``).
        batch_rows: raw events per record batch, and rows per Parquet row group.
        scratch_dir: local folder for the spill files (default: the system's temp dir).
        on_progress: called with a one-line progress message every few seconds and at the end.

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
    with (
        owned_scratch("mapped-events-", scratch_dir) as scratch,
        lake.stage(MAPPED_EVENTS, day) as mapped_stage,
        lake.stage(REJECTED_EVENTS, day) as rejected_stage,
        _RejectWriter(lake, rejected_stage.file(DATA_FILE), batch_rows) as rejects,
    ):
        mappers = [_DestinationMapper(d, Path(scratch), rejects) for d in destinations]
        events_read = _map_events(lake, day, mappers, batch_rows, raw["accepted"], progress)
        rejects.close()
        overviews = tuple(
            m.finish(lake, mapped_stage, batch_rows=batch_rows, progress=progress) for m in mappers
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
            rejected_rows_written=rejects.rows_written(),
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
        f"({report.events_per_second:,.0f} events/s)"
    )
    return report


def _warn_about_accounting(report: MappedDayReport) -> None:
    # Committed anyway: the asset check reports it and blocks what reads the day.
    for problem in report.accounting_problems():
        log.warning("%s: the overview does not add up: %s", report.day, problem)


def _map_events(
    lake: Lake,
    day: date,
    mappers: list[_DestinationMapper],
    batch_rows: int,
    expected: int,
    progress: ProgressCallback,
) -> int:
    """Stream the raw partition through every destination; the number of events read."""
    read = 0
    last_report = time.monotonic()
    for message_ids, payloads in _raw_batches(lake, day, batch_rows):
        for message_id, payload in zip(message_ids, payloads, strict=True):
            event = parse_payload(payload)
            for mapper in mappers:
                mapper.map_event(message_id, event)
        read += len(message_ids)
        if time.monotonic() - last_report >= PROGRESS_SECONDS:
            last_report = time.monotonic()
            rows = sum(m.rows for m in mappers)
            progress(f"{day}: {read:,}/{expected:,} events mapped, {rows:,} rows so far")
    return read


def _raw_batches(lake: Lake, day: date, batch_rows: int) -> Iterator[tuple[list, list]]:
    """(message ids, payloads) of the day's raw events, one record batch at a time."""
    columns = ["message_id", "payload"]
    for batch in lake.iter_batches(RAW_EVENTS, day, columns=columns, batch_rows=batch_rows):
        yield batch.column(0).to_pylist(), batch.column(1).to_pylist()


@dataclass
class _MappingCounts:
    """Mutable counters of one mapping while the day is mapped."""

    rule: MappingRule
    matched: int = 0
    rows: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def overview(self) -> MappingOverview:
        """The frozen overview of this mapping."""
        return MappingOverview(
            name=self.rule.name,
            matched=self.matched,
            rows=self.rows,
            rejected_by_code=dict(sorted(self.rejected.items())),
        )


class _DestinationMapper:
    """One destination: runs its rules on each event, spills rows, counts everything."""

    def __init__(self, destination: DestinationConfig, scratch: Path, rejects: _RejectWriter):
        self.destination = destination
        self.name = destination.name
        self.mappings = [_MappingCounts(rule) for rule in destination.rules]
        self.rejects = rejects
        self.types = ColumnTypes()
        self.spill_path = scratch / f"{destination.name}.jsonl"
        self._spill: IO[bytes] = self.spill_path.open("wb", buffering=1 << 20)
        self.considered = 0
        self.matched_events = 0
        self.no_matching = 0
        self.unreadable = 0
        self.rows = 0
        self.dropped: Counter[str] = Counter()
        self.collisions = 0

    def map_event(self, message_id: str, event: dict[str, Any] | None) -> None:
        """Run every enabled mapping on one event; write its rows and rejects."""
        self.considered += 1
        if event is None:
            self.unreadable += 1
            detail = "the raw payload is not a JSON object"
            self.rejects.add(self.name, None, message_id, UNREADABLE_PAYLOAD, detail, "payload")
            return
        matched = False
        for index, counts in enumerate(self.mappings):
            try:
                matched = self._run(index, counts, message_id, event) or matched
            except Exception as exc:
                raise MappedEventsError(
                    f'destination "{self.name}", mapping "{counts.rule.name}": '
                    f"failed on messageId {message_id!r} with {type(exc).__name__}: {exc}"
                ) from exc
        if matched:
            self.matched_events += 1
        else:
            self.no_matching += 1

    def _run(self, index: int, counts: _MappingCounts, message_id: str, event: dict) -> bool:
        """One mapping on one event: a row, a reject, or nothing; whether the trigger matched."""
        rule = counts.rule
        try:
            if not rule.matches(event):
                return False
        except TriggerError as exc:
            counts.matched += 1
            self._reject(counts, message_id, TRIGGER_FAILED, str(exc), None)
            return True
        counts.matched += 1
        try:
            flat = build_row_with_stats(rule.apply(event))
        except MappingError as exc:
            self._reject(counts, message_id, MAPPING_FAILED, str(exc), None)
        except AcousticReject as exc:
            self._reject(counts, message_id, exc.code, exc.detail, exc.field)
        else:
            counts.rows += 1
            self.collisions += len(flat.collisions)
            self._write_row(message_id, index, self._selected(flat.row))
        return True

    def _reject(
        self, counts: _MappingCounts, message_id: str, code: str, detail: str, at: str | None
    ) -> None:
        counts.rejected[code] += 1
        self.rejects.add(self.name, counts.rule.name, message_id, code, detail, at)

    def _selected(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row as delivered: the allow-list applied, our own column names taken out."""
        if self.destination.columns is not None:
            selected = self.destination.select_columns(row)
            if len(selected) != len(row):
                self.dropped.update(row.keys() - selected.keys())
            row = selected
        for key in _RESERVED_KEYS:
            if key in row:
                row = {k: v for k, v in row.items() if k != key}
                self.dropped[key] += 1
        return row

    def _write_row(self, message_id: str, index: int, row: dict[str, Any]) -> None:
        self.types.observe(row)
        try:
            line = orjson.dumps((message_id, index, row), option=orjson.OPT_STRICT_INTEGER)
        except TypeError:  # rare: an integer beyond 2**53 or a subclass of float
            line = orjson.dumps((message_id, index, self._portable(row)))
        self._spill.write(line + b"\n")
        self.rows += 1

    def _portable(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with integers outside int64 as text (their column turns text) and float subclasses as floats."""
        portable = {}
        for key, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool) and not fits_int64(value):
                self.types.mark_text(key)
                value = json_text(value)
            elif isinstance(value, float):
                value = float(value)
            portable[key] = value
        return portable

    def finish(
        self,
        lake: Lake,
        staged: StagedPartition,
        *,
        batch_rows: int,
        progress: ProgressCallback,
    ) -> DestinationOverview:
        """Write the spilled rows to the destination's Parquet file; the destination's overview."""
        self._spill.close()
        subpath = destination_subpath(self.name)
        path = f"{lake.stage_subfolder(staged, subpath)}/{DATA_FILE}"
        day = staged.day
        progress(f"{day}: writing {self.rows:,} rows of destination {self.name!r}")
        columns = _fixed_columns() + [c for c in self.types.columns() if c.name not in _FIXED_SET]
        names = [m.rule.name for m in self.mappings]
        preview = _write_table(lake, path, self.spill_path, columns, names, batch_rows)
        self.spill_path.unlink()
        rejected = Counter({UNREADABLE_PAYLOAD: self.unreadable})
        for counts in self.mappings:
            rejected.update(counts.rejected)
        return DestinationOverview(
            name=self.name,
            considered=self.considered,
            matched_events=self.matched_events,
            no_matching_mapping=self.no_matching,
            unreadable_payloads=self.unreadable,
            rejected_by_code=dict(sorted((+rejected).items())),
            rows=self.rows,
            rows_written=pq.ParquetFile(path, filesystem=lake.fs).metadata.num_rows,
            dropped_keys=dict(sorted(self.dropped.items())),
            key_collisions=self.collisions,
            mappings=tuple(c.overview() for c in self.mappings),
            uri=lake.partition_uri(MAPPED_EVENTS, day, subpath),
            columns=tuple(c.name for c in columns),
            preview=preview,
        )


_FIXED_SET = frozenset(FIXED_COLUMNS)


def _fixed_columns() -> list[FlatColumn]:
    """The five leading columns: always strings, ``timestamp`` as JSON text when it is a number."""
    return [FlatColumn(name, pa.string(), name == "timestamp") for name in FIXED_COLUMNS]


def _write_table(
    lake: Lake,
    path: str,
    spill: Path,
    columns: list[FlatColumn],
    mapping_names: list[str],
    batch_rows: int,
) -> tuple[dict[str, str], ...]:
    """Write the spill to one Parquet file, a row group per ``batch_rows`` rows; the preview rows.

    A destination without rows still gets its file: no row, the five fixed columns.
    """
    schema = pa.schema([(c.name, c.arrow_type) for c in columns])
    data_columns = columns[2:]
    preview: tuple[dict[str, str], ...] = ()
    with pq.ParquetWriter(path, schema, filesystem=lake.fs, **_PARQUET_OPTIONS) as writer:
        for chunk in _spill_chunks(spill, batch_rows):
            message_ids = [item[0] for item in chunk]
            mappings = [mapping_names[item[1]] for item in chunk]
            rows = [item[2] for item in chunk]
            arrays = [pa.array(message_ids, pa.string()), pa.array(mappings, pa.string())]
            arrays += column_arrays(data_columns, rows)
            batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
            writer.write_batch(batch)
            if not preview:
                preview = _preview(batch)
    return preview


def _spill_chunks(spill: Path, size: int) -> Iterator[list[list[Any]]]:
    """The spilled ``[message_id, mapping index, row]`` items, ``size`` at a time."""
    loads = orjson.loads
    with spill.open("rb") as lines:
        chunk: list[list[Any]] = []
        for line in lines:
            chunk.append(loads(line))
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _preview(batch: pa.RecordBatch) -> tuple[dict[str, str], ...]:
    """The first rows of a batch as text: the fixed columns, then the first data columns they fill."""
    head = batch.slice(0, PREVIEW_ROWS)
    fixed = len(FIXED_COLUMNS)
    filled = [i for i in range(fixed, head.num_columns) if head.column(i).null_count < len(head)]
    head = head.select([*range(fixed), *filled[: PREVIEW_COLUMNS - fixed]])
    return tuple(
        {key: json_text(value) or "" for key, value in row.items()} for row in head.to_pylist()
    )


class _RejectWriter:
    """Reject rows, written to the rejected-events Parquet file one row group per batch."""

    def __init__(self, lake: Lake, path: str, batch_rows: int) -> None:
        self.lake = lake
        self.path = path
        self.batch_rows = batch_rows
        self.pending: list[tuple[str, str | None, str, str, str, str | None]] = []
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            path, REJECTED_EVENTS_SCHEMA, filesystem=lake.fs, **_PARQUET_OPTIONS
        )

    def __enter__(self) -> _RejectWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(
        self,
        destination: str,
        mapping: str | None,
        message_id: str,
        code: str,
        detail: str,
        at: str | None,
    ) -> None:
        """Add one reject row."""
        self.pending.append((destination, mapping, message_id, code, detail, at))
        if len(self.pending) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self.pending and self._writer is not None:
            columns = zip(*self.pending, strict=True)
            self._writer.write_table(pa.table(list(columns), schema=REJECTED_EVENTS_SCHEMA))
            self.pending = []

    def close(self) -> None:
        """Write what is pending and close the file (again: no-op)."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def rows_written(self) -> int:
        """Rows in the closed file, read back from its footer."""
        return pq.ParquetFile(self.path, filesystem=self.lake.fs).metadata.num_rows
