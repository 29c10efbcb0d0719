"""The parts of a day's ``acoustic/mapped_events``: runs of raw row groups, each mapped by one worker.

:func:`plan_parts` cuts the day's ``segment/raw_events`` files into parts of consecutive row
groups (about :data:`PART_EVENTS` events each; the cut depends on the raw files only, never on
the number of workers, so every worker count writes the same files with the same rows). A part
goes through two steps, each run by any worker process:

1. :func:`map_part` streams the part's events through every destination's mappings, counts
   everything, writes the part's rejects (``acoustic/rejected_events/…/part-NNNNN.parquet``)
   and spills each destination's rows, one Arrow record batch per raw batch, typed by that
   batch alone, to the scratch folder (Arrow IPC, lz4);
2. once the day's column types are known (the union of every part's), :func:`write_part`
   casts each spilled batch to the destination's columns and writes
   ``destination=NAME/part-NNNNN.parquet`` (zstd, row groups of up to :data:`ROW_GROUP_ROWS`).

The mapping itself is :func:`~acoustic_pipelines.acoustic.row_builder.compile_row_builder`
(trigger, mapping and Acoustic row), and memory stays bounded by one batch per destination.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from itertools import repeat
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from acoustic_pipelines.acoustic.flat_columns import (
    ColumnTypes,
    FlatColumn,
    column_arrays,
    fits_int64,
    json_text,
)
from acoustic_pipelines.acoustic.row_builder import compile_row_builder
from acoustic_pipelines.acoustic.rows import HEADER_KEYS, AcousticReject
from acoustic_pipelines.actions.mappings.kit import MappingError
from acoustic_pipelines.actions.triggers import GuardedRules, TriggerError, trigger_guard
from acoustic_pipelines.config.loading import DestinationConfig
from acoustic_pipelines.gc_pause import cyclic_gc_paused
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.segment.raw_events import RAW_EVENTS, parse_payload

__all__ = [
    "FIXED_COLUMNS",
    "MAPPING_FAILED",
    "PART_EVENTS",
    "REJECTED_EVENTS_SCHEMA",
    "TRIGGER_FAILED",
    "UNREADABLE_PAYLOAD",
    "DestinationPart",
    "MappedEventsError",
    "MappedPart",
    "MappingPart",
    "PartPlan",
    "PartWork",
    "fixed_columns",
    "map_part",
    "part_file",
    "plan_parts",
    "write_empty_parts",
    "write_part",
]

# Reject codes of our own, beside the Acoustic codes.
MAPPING_FAILED = "MAPPING_FAILED"
TRIGGER_FAILED = "TRIGGER_FAILED"
UNREADABLE_PAYLOAD = "UNREADABLE_PAYLOAD"

FIXED_COLUMNS = ("message_id", "mapping", *HEADER_KEYS)
_FIXED_SET = frozenset(FIXED_COLUMNS)
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
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd"}
# The mapped tables: statistics and dictionaries for the fixed columns only. Over a hundred data
# columns, per-column min/max and dictionary pages cost more time than the zstd pass itself
# and save almost nothing on these columns (measured: 4.7 → 3.2 µs per event, files the same
# size within 10 %).
MAPPED_PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["mapping", "eventSource"],
    "write_statistics": list(FIXED_COLUMNS),
}
#: Rows per row group of the mapped tables, at most. Each row group costs a column chunk (pages,
#: statistics, metadata) per column of the day, over a hundred: one group per ~3,600-row batch
#: made writing 2.5x slower and the files 50 % larger than groups of 32k rows, and larger groups
#: cost memory (65,536: +20 MB per process) for little more.
ROW_GROUP_ROWS = 32_768
# Spilled batches live seconds in the local scratch folder and are memory-mapped back:
# uncompressed, they cost a copy to write and nothing to read (lz4 cost ~2 µs per event).
_SPILL_OPTIONS = pa.ipc.IpcWriteOptions()
#: Events per part, about: enough to keep a worker busy, few enough files per day.
PART_EVENTS = 131_072


class MappedEventsError(RuntimeError):
    """A trigger, mapping or row builder failed in a way no event should cause; nothing committed."""


def part_file(number: int) -> str:
    """The file name of a part inside a partition folder: ``part-NNNNN.parquet``."""
    return f"part-{number:05d}.parquet"


def fixed_columns() -> list[FlatColumn]:
    """The five leading columns: always strings, ``timestamp`` as JSON text when it is a number."""
    return [FlatColumn(name, pa.string(), name == "timestamp") for name in FIXED_COLUMNS]


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartPlan:
    """One part: which row groups of which raw files it maps, and how many events they hold."""

    number: int
    slices: tuple[tuple[str, tuple[int, ...]], ...]
    events: int


def plan_parts(lake: Lake, day: date, *, part_events: int = PART_EVENTS) -> list[PartPlan]:
    """Cut the day's raw files into parts of consecutive row groups, ~``part_events`` events each.

    The cut depends on the raw files alone (never on the number of workers).
    """
    parts: list[PartPlan] = []
    slices: list[tuple[str, tuple[int, ...]]] = []
    groups: list[int] = []
    events = 0

    def close_file(path: str) -> None:
        nonlocal groups
        if groups:
            slices.append((path, tuple(groups)))
            groups = []

    for path in lake.parquet_files(RAW_EVENTS, day):
        metadata = pq.ParquetFile(path, filesystem=lake.fs).metadata
        for group in range(metadata.num_row_groups):
            groups.append(group)
            events += metadata.row_group(group).num_rows
            if events >= part_events:
                close_file(path)
                parts.append(PartPlan(len(parts), tuple(slices), events))
                slices, events = [], 0
        close_file(path)
    if slices:
        parts.append(PartPlan(len(parts), tuple(slices), events))
    return parts


# --------------------------------------------------------------------------------------------
# What a part reports
# --------------------------------------------------------------------------------------------


@dataclass
class MappingPart:
    """One mapping's counters over one part (or, summed, over the day)."""

    matched: int = 0
    rows: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, other: MappingPart) -> None:
        """Add another part's counters."""
        self.matched += other.matched
        self.rows += other.rows
        self.rejected.update(other.rejected)


@dataclass
class DestinationPart:
    """One destination's counters and column types over one part (or, summed, over the day)."""

    considered: int = 0
    matched_events: int = 0
    no_matching: int = 0
    unreadable: int = 0
    rows: int = 0
    collisions: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    mappings: list[MappingPart] = field(default_factory=list)
    types: ColumnTypes = field(default_factory=ColumnTypes)
    batches: int = 0

    def add(self, other: DestinationPart) -> None:
        """Add another part's counters and column types."""
        self.considered += other.considered
        self.matched_events += other.matched_events
        self.no_matching += other.no_matching
        self.unreadable += other.unreadable
        self.rows += other.rows
        self.collisions += other.collisions
        self.dropped.update(other.dropped)
        if not self.mappings:
            self.mappings = [MappingPart() for _ in other.mappings]
        for mine, theirs in zip(self.mappings, other.mappings, strict=True):
            mine.add(theirs)
        self.types.update(other.types)


@dataclass(frozen=True)
class MappedPart:
    """What :func:`map_part` did with one part."""

    number: int
    events_read: int
    destinations: tuple[DestinationPart, ...]


@dataclass(frozen=True)
class PartWork:
    """What every step of every part needs: where to read and write, and the destinations."""

    lake: Lake
    day: date
    destinations: tuple[DestinationConfig, ...]
    scratch: str
    rejected_folder: str
    mapped_folders: tuple[str, ...]
    batch_rows: int
    parent_pid: int

    def spill_path(self, part: int, destination: int, batch: int) -> Path:
        """The scratch file of one spilled batch."""
        return (
            Path(self.scratch) / f"part-{part:05d}-destination-{destination:03d}-{batch:06d}.arrow"
        )


# --------------------------------------------------------------------------------------------
# Step 1: mapping a part
# --------------------------------------------------------------------------------------------


def map_part(work: PartWork, plan: PartPlan) -> MappedPart:
    """Map one part's events for every destination: counters, rejects written, rows spilled."""
    reject_path = f"{work.rejected_folder}/{part_file(plan.number)}"
    with cyclic_gc_paused(), _RejectWriter(work.lake, reject_path, work.batch_rows) as rejects:
        mappers = [
            _DestinationMapper(index, destination, rejects, work, plan.number)
            for index, destination in enumerate(work.destinations)
        ]
        types = _mapped_types(work.destinations)
        read = 0
        for message_ids, payloads, mapped in _raw_batches(work.lake, plan, work.batch_rows, types):
            _stop_if_orphaned(work.parent_pid)
            for message_id, payload, read_it in zip(message_ids, payloads, mapped, strict=True):
                if not read_it:
                    for mapper in mappers:
                        mapper.not_mapped()
                    continue
                event = parse_payload(payload)
                for mapper in mappers:
                    mapper.map_event(message_id, event)
            for mapper in mappers:
                mapper.spill()
            read += len(message_ids)
    return MappedPart(plan.number, read, tuple(m.part for m in mappers))


def _stop_if_orphaned(parent_pid: int) -> None:
    """A worker whose run died (kill -9) stops instead of writing on into its staging folder."""
    if parent_pid != os.getpid() and os.getppid() != parent_pid:
        raise SystemExit(f"the run (pid {parent_pid}) is gone; stopping")


def _mapped_types(destinations: Sequence[DestinationConfig]) -> pa.Array | None:
    """The event types some enabled mapping can match, when every trigger starts with a test of
    ``type`` (Segment's presets do); None when an event of any type may match."""
    types = set()
    for destination in destinations:
        for rule in destination.rules:
            guard = trigger_guard(rule.matches)
            if guard is None or guard[0] != "type":
                return None
            types.add(guard[1])
    return pa.array(sorted(types), pa.string())


def _raw_batches(
    lake: Lake, plan: PartPlan, batch_rows: int, types: pa.Array | None
) -> Iterator[tuple[list, list, Iterable[bool]]]:
    """(message ids, payloads, whether to read each) of the part's raw events, a batch at a time.

    With ``types``, an event of another type (its ``type`` column) is not read: no mapping can
    match it, and its payload is left unparsed.
    """
    for path, groups in plan.slices:
        with pq.ParquetFile(path, filesystem=lake.fs) as file:
            for batch in file.iter_batches(
                batch_size=batch_rows,
                row_groups=list(groups),
                columns=["message_id", "payload", "type"],
                use_threads=False,
            ):
                if types is None:
                    read: Iterable[bool] = repeat(True, batch.num_rows)
                else:
                    found = pc.is_in(batch.column(2), value_set=types)
                    read = pc.fill_null(found, True).to_pylist()
                yield batch.column(0).to_pylist(), batch.column(1).to_pylist(), read


class _DestinationMapper:
    """One destination over one part: runs its rules on each event, batches rows, counts."""

    def __init__(
        self,
        index: int,
        destination: DestinationConfig,
        rejects: _RejectWriter,
        work: PartWork,
        part: int,
    ) -> None:
        self.index = index
        self.name = destination.name
        self.allow = destination.select_columns if destination.columns is not None else None
        rules = [
            (rule.name, rule.matches, compile_row_builder(rule.apply), MappingPart())
            for rule in destination.rules
        ]
        self.rules = GuardedRules(rules, lambda rule: rule[1])  # only the candidates run
        self.part = DestinationPart(mappings=[counts for *_, counts in rules])
        self.rejects = rejects
        self.work = work
        self.part_number = part
        self.batch_types = ColumnTypes()
        self.ids: list[str] = []
        self.names: list[str] = []
        self.rows: list[dict[str, Any]] = []

    def not_mapped(self) -> None:
        """Count an event no mapping can match (by its type), left unread."""
        self.part.considered += 1
        self.part.no_matching += 1

    def map_event(self, message_id: str, event: dict[str, Any] | None) -> None:
        """Run every enabled mapping on one event; keep its rows, write its rejects."""
        part = self.part
        part.considered += 1
        if event is None:
            part.unreadable += 1
            detail = "the raw payload is not a JSON object"
            self.rejects.add(self.name, None, message_id, UNREADABLE_PAYLOAD, detail, "payload")
            return
        matched = False
        for name, matches, build, counts in self.rules.candidates(event):
            try:
                if not matches(event):
                    continue
            except TriggerError as exc:
                matched = True
                counts.matched += 1
                self._reject(counts, name, message_id, TRIGGER_FAILED, str(exc), None)
                continue
            except Exception as exc:
                raise self._failure(name, message_id, exc) from exc
            matched = True
            counts.matched += 1
            try:
                flat = build(event)
            except MappingError as exc:
                self._reject(counts, name, message_id, MAPPING_FAILED, str(exc), None)
                continue
            except AcousticReject as exc:
                self._reject(counts, name, message_id, exc.code, exc.detail, exc.field)
                continue
            except Exception as exc:
                raise self._failure(name, message_id, exc) from exc
            counts.rows += 1
            if flat.collisions:
                part.collisions += len(flat.collisions)
            row = self._selected(flat.row)
            self.batch_types.observe(row)
            self.ids.append(message_id)
            self.names.append(name)
            self.rows.append(row)
        if matched:
            part.matched_events += 1
        else:
            part.no_matching += 1

    def _failure(self, mapping: str, message_id: str, exc: Exception) -> MappedEventsError:
        return MappedEventsError(
            f'destination "{self.name}", mapping "{mapping}": '
            f"failed on messageId {message_id!r} with {type(exc).__name__}: {exc}"
        )

    def _reject(
        self, counts: MappingPart, mapping: str, message_id: str, code: str, detail: str, at: Any
    ) -> None:
        counts.rejected[code] += 1
        self.rejects.add(self.name, mapping, message_id, code, detail, at)

    def _selected(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row as delivered: the allow-list applied, our own column names taken out."""
        if self.allow is not None:
            selected = self.allow(row)
            if len(selected) != len(row):
                self.part.dropped.update(row.keys() - selected.keys())
            row = selected
        for key in _RESERVED_KEYS:
            if key in row:
                row = {k: v for k, v in row.items() if k != key}
                self.part.dropped[key] += 1
        return row

    def spill(self) -> None:
        """Write the rows of this batch to the scratch folder as one typed Arrow batch."""
        if not self.rows:
            return
        batch = _typed_batch(self.ids, self.names, self.rows, self.batch_types)
        path = self.work.spill_path(self.part_number, self.index, self.part.batches)
        with pa.ipc.new_file(str(path), batch.schema, options=_SPILL_OPTIONS) as writer:
            writer.write_batch(batch)
        self.part.batches += 1
        self.part.rows += len(self.rows)
        self.part.types.update(self.batch_types)
        self.batch_types = ColumnTypes()
        self.ids, self.names, self.rows = [], [], []


def _typed_batch(
    ids: list[str], names: list[str], rows: list[dict[str, Any]], types: ColumnTypes
) -> pa.RecordBatch:
    """The rows as one record batch typed by these rows alone (the day's types come later)."""
    try:
        data = _data_arrays(rows, types)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        _make_portable(rows, types)  # integers outside int64 (text) or beyond doubles (rounded)
        data = _data_arrays(rows, types)
    names_out = [*FIXED_COLUMNS[:2]]
    arrays = [pa.array(ids, pa.string()), pa.array(names, pa.string())]
    for column, array in zip(*data, strict=True):
        # A key null in every row of the batch is left out: typed by the batch it would be
        # text, which the day's type (say int64, from another batch) cannot take; the write
        # step fills it in with nulls of the day's type.
        if array.null_count < len(array) or column.name in _FIXED_SET:
            names_out.append(column.name)
            arrays.append(array)
    return pa.RecordBatch.from_arrays(arrays, names=names_out)


def _data_arrays(
    rows: list[dict[str, Any]], types: ColumnTypes
) -> tuple[list[FlatColumn], list[pa.Array]]:
    """The header and data columns of the rows, non-finite numbers as nulls."""
    header = fixed_columns()[2:]
    columns = header + [c for c in types.columns() if c.name not in _FIXED_SET]
    arrays = column_arrays(columns, rows)
    for index, column in enumerate(columns):
        array = arrays[index]
        if column.arrow_type == pa.float64() and array.null_count < len(array):
            finite = pc.is_finite(array)
            if not pc.all(finite).as_py():
                arrays[index] = pc.if_else(finite, array, pa.scalar(None, pa.float64()))
    return columns, arrays


def _make_portable(rows: list[dict[str, Any]], types: ColumnTypes) -> None:
    """Integers outside int64 make their column text; integers in float columns become floats."""
    for row in rows:
        for key, value in row.items():
            if type(value) is int and not fits_int64(value):
                types.mark_text(key)
    floats = {c.name for c in types.columns() if c.arrow_type == pa.float64()}
    for row in rows:
        for key in floats.intersection(row):
            value = row[key]
            if isinstance(value, int) and not isinstance(value, bool):
                row[key] = float(value)
            elif isinstance(value, float):
                row[key] = float(value)  # a subclass as a plain float


# --------------------------------------------------------------------------------------------
# Step 2: writing a part with the day's columns
# --------------------------------------------------------------------------------------------


def write_part(
    work: PartWork, number: int, batches: Sequence[int], columns: Sequence[Sequence[FlatColumn]]
) -> None:
    """Write one part's spilled rows, per destination, as Parquet with the day's columns."""
    for index, folder in enumerate(work.mapped_folders):
        _stop_if_orphaned(work.parent_pid)
        schema = pa.schema([(c.name, c.arrow_type) for c in columns[index]])
        path = f"{folder}/{part_file(number)}"
        with pq.ParquetWriter(
            path, schema, filesystem=work.lake.fs, **MAPPED_PARQUET_OPTIONS
        ) as writer:
            pending: list[pa.RecordBatch] = []
            with ExitStack() as maps:  # the spilled batches stay mapped until written
                for batch_number in range(batches[index]):
                    spill = work.spill_path(number, index, batch_number)
                    source = maps.enter_context(pa.memory_map(str(spill)))
                    spilled = pa.ipc.open_file(source).get_batch(0)
                    pending.append(_conformed(spilled, columns[index], schema))
                    spill.unlink()
                    if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                        _write_row_groups(writer, pending, schema)
                        pending = []
                        maps.close()
                _write_row_groups(writer, pending, schema)


def _write_row_groups(
    writer: pq.ParquetWriter, batches: list[pa.RecordBatch], schema: pa.Schema
) -> None:
    """Write batches as row groups of ROW_GROUP_ROWS rows (the last one shorter)."""
    if batches:
        table = pa.Table.from_batches(batches, schema=schema)
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)


def _conformed(
    batch: pa.RecordBatch, columns: Sequence[FlatColumn], schema: pa.Schema
) -> pa.RecordBatch:
    """A spilled batch with the day's columns: cast, text where the day says text, nulls added."""
    rows = batch.num_rows
    arrays = []
    for column in columns:
        position = batch.schema.get_field_index(column.name)
        if position < 0:
            arrays.append(pa.nulls(rows, column.arrow_type))
            continue
        array = batch.column(position)
        if array.type == column.arrow_type:
            arrays.append(array)
        elif array.type == pa.null():
            arrays.append(pa.nulls(rows, column.arrow_type))
        elif column.text and pa.types.is_floating(array.type):
            arrays.append(pa.array([_text(v) for v in array.to_pylist()], pa.string()))
        elif column.text:  # integers and booleans write as JavaScript does: 12, true
            arrays.append(array.cast(pa.string()))
        elif column.arrow_type == pa.float64() and pa.types.is_integer(array.type):
            arrays.append(array.cast(pa.float64(), safe=False))  # beyond 2**53: rounded
        else:
            raise MappedEventsError(
                f"column {column.name!r}: a batch holds {array.type}, the day's type is "
                f"{column.arrow_type}; no rule converts one to the other"
            )
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _text(value: float | None) -> str | None:
    return None if value is None or not math.isfinite(value) else json_text(value)


# --------------------------------------------------------------------------------------------
# Rejects
# --------------------------------------------------------------------------------------------


class _RejectWriter:
    """Reject rows, written to one Parquet file a row group per batch."""

    def __init__(self, lake: Lake, path: str, batch_rows: int) -> None:
        self.batch_rows = batch_rows
        self.pending: list[tuple[str, str | None, str, str, str, str | None]] = []
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
            path, REJECTED_EVENTS_SCHEMA, filesystem=lake.fs, **PARQUET_OPTIONS
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


def write_empty_parts(work: PartWork) -> None:
    """A day without events still gets its files: no row, the fixed columns (part 0)."""
    with _RejectWriter(work.lake, f"{work.rejected_folder}/{part_file(0)}", work.batch_rows):
        pass
    write_part(
        work, 0, [0] * len(work.mapped_folders), [fixed_columns()] * len(work.mapped_folders)
    )
