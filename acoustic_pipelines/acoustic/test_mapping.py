"""Segment's "Test Mapping", offline: one event through every mapping of the pipeline config.

For each destination and mapping of a loaded :class:`~acoustic_pipelines.config.loading.PipelineConfig`,
:func:`run_test_mapping` reports whether the trigger matches the event, the mapped payload, and
the flat Acoustic row or the reject code (``build_row``). Nothing is sent anywhere. The mapping is
resolved even when the trigger does not match, so a mapping can be tried on any event; the
outcome says whether the pipeline would run it (``delivered``).

The event comes from a JSON file (or stdin) with :func:`read_event`, or from the raw Segment
archive of one received-day by its ``messageId`` with :func:`find_archived_event`.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from acoustic_pipelines.acoustic.rows import AcousticReject, build_row_with_stats
from acoustic_pipelines.actions.mappings.kit import MappingError
from acoustic_pipelines.actions.triggers import TriggerError
from acoustic_pipelines.config.loading import DestinationConfig, MappingConfig, PipelineConfig
from acoustic_pipelines.segment.archive import day_folder, list_archive_day, read_lines
from acoustic_pipelines.storage import Location, StorageError

__all__ = [
    "DestinationTest",
    "LoadedEvent",
    "MappingOutcome",
    "MappingTestError",
    "MappingTestResult",
    "find_archived_event",
    "read_event",
    "run_test_mapping",
]

log = logging.getLogger(__name__)

# A message id made only of these characters is written as-is by every JSON encoder (some escape
# `<`, `>`, `&`, `/` or non-ASCII), so a substring test can skip lines without parsing them.
_PLAIN_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


class MappingTestError(ValueError):
    """The event to test cannot be loaded: unreadable, not a JSON object, or not in the archive."""


@dataclass(frozen=True)
class LoadedEvent:
    """An event to test and where it came from (``source`` is shown to the user)."""

    event: dict[str, Any]
    source: str


@dataclass(frozen=True)
class MappingOutcome:
    """What one mapping does with the event.

    Attributes:
        name: the mapping's name.
        enabled: whether the pipeline runs this mapping at all.
        trigger: the trigger as FQL text.
        matched: whether the trigger matches the event.
        payload: the mapped payload (None when ``error`` is set).
        row: the flat Acoustic row (all keys, before the destination's column allow-list), or
            None when the payload is rejected or the mapping failed.
        delivered_columns: the row's keys the destination delivers (its ``columns`` allow-list).
        collisions: keys written more than once while flattening.
        reject_code: the Acoustic error code when ``build_row`` rejects the payload.
        reject_detail: what was received and expected, for a reject.
        error: why the trigger or the mapping could not be evaluated on this event.
    """

    name: str
    enabled: bool
    trigger: str
    matched: bool
    payload: Any = None
    row: dict[str, Any] | None = None
    delivered_columns: tuple[str, ...] = ()
    collisions: tuple[str, ...] = ()
    reject_code: str | None = None
    reject_detail: str | None = None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """Whether the pipeline would deliver a row for this mapping and event."""
        return self.enabled and self.matched and self.row is not None


@dataclass(frozen=True)
class DestinationTest:
    """The outcomes of one destination's mappings, in config order."""

    name: str
    customer_prefix: str
    outcomes: tuple[MappingOutcome, ...]

    @property
    def no_matching_mapping(self) -> bool:
        """True when no enabled mapping matches: the pipeline counts "no matching mapping"."""
        return not any(o.enabled and o.matched for o in self.outcomes)


@dataclass(frozen=True)
class MappingTestResult:
    """Every destination's outcomes for one event."""

    event: dict[str, Any]
    source: str
    destinations: tuple[DestinationTest, ...]

    @property
    def rows(self) -> int:
        """Rows the pipeline would deliver for this event, over all destinations."""
        return sum(o.delivered for d in self.destinations for o in d.outcomes)


def read_event(path: str | Path, *, stdin: BinaryIO | None = None) -> LoadedEvent:
    """Read one event (a JSON object) from a file, or from stdin when ``path`` is ``-``.

    Raises:
        MappingTestError: the file cannot be read, is not JSON, or is not a JSON object.
    """
    from_stdin = str(path) == "-"
    name = "stdin" if from_stdin else str(path)
    try:
        data = (stdin or sys.stdin.buffer).read() if from_stdin else Path(path).read_bytes()
    except OSError as exc:
        raise MappingTestError(f"event file {name}: cannot read it: {exc}") from None
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MappingTestError(f"event file {name}: not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise MappingTestError(
            f"event file {name}: holds a JSON {type(event).__name__}; expected one event, "
            'a JSON object like {"type": "track", ...}'
        )
    return LoadedEvent(event=event, source=name)


def find_archived_event(archive: Location, day: date, message_id: str) -> LoadedEvent:
    """The first event with that ``messageId`` in the raw archive of one received-day.

    Streams the day's files in key order and stops at the first match; lines that are not JSON
    objects are skipped.

    Raises:
        MappingTestError: the day has no files, no line has that messageId, or a file is unreadable.
    """
    try:
        listing = list_archive_day(archive, day)
    except StorageError as exc:
        raise MappingTestError(f"cannot list the archive {archive.uri}: {exc}") from None
    if not listing.files:
        raise MappingTestError(
            f"the archive {archive.uri} has no files for {day} "
            f"(looked for segment-logs/*/{day_folder(day)}/*.gz)"
        )
    needle = message_id.encode() if set(message_id) <= _PLAIN_ID_CHARS else None
    lines = 0
    for file in listing.files:
        try:
            for number, line in enumerate(read_lines(archive, file), start=1):
                lines += 1
                if needle is not None and needle not in line:
                    continue
                try:
                    event = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(event, dict) and event.get("messageId") == message_id:
                    log.debug("found messageId %s in %s line %d", message_id, file.key, number)
                    return LoadedEvent(event=event, source=f"{file.key} line {number}")
        except StorageError as exc:
            raise MappingTestError(str(exc)) from None
    raise MappingTestError(
        f"messageId {message_id!r} is not in the archive {archive.uri} for {day} "
        f"({len(listing.files)} files, {lines:,} lines searched)"
    )


def run_test_mapping(
    config: PipelineConfig, event: dict[str, Any], *, source: str = "event"
) -> MappingTestResult:
    """Run one event through every destination and mapping of the config; sends nothing.

    Raises:
        MappingTestError: the event is not a JSON object.
    """
    if not isinstance(event, dict):
        raise MappingTestError(f"{source}: an event is a JSON object; got {type(event).__name__}")
    return MappingTestResult(
        event=event,
        source=source,
        destinations=tuple(_test_destination(d, event) for d in config.destinations),
    )


def _test_destination(destination: DestinationConfig, event: dict[str, Any]) -> DestinationTest:
    return DestinationTest(
        name=destination.name,
        customer_prefix=destination.customer_prefix,
        outcomes=tuple(_test_mapping(destination, m, event) for m in destination.mappings),
    )


def _test_mapping(
    destination: DestinationConfig, mapping: MappingConfig, event: dict[str, Any]
) -> MappingOutcome:
    """One mapping's outcome: trigger, payload, then row or reject (each step may fail)."""
    base = {"name": mapping.name, "enabled": mapping.enabled, "trigger": mapping.trigger.fql}
    try:
        matched = mapping.matches(event)
    except TriggerError as exc:
        return MappingOutcome(**base, matched=False, error=f"the trigger failed: {exc}")
    try:
        payload = mapping.apply(event)
    except MappingError as exc:
        return MappingOutcome(**base, matched=matched, error=f"the mapping failed: {exc}")
    try:
        flat = build_row_with_stats(payload)
    except AcousticReject as exc:
        return MappingOutcome(
            **base,
            matched=matched,
            payload=payload,
            reject_code=exc.code,
            reject_detail=exc.detail,
        )
    return MappingOutcome(
        **base,
        matched=matched,
        payload=payload,
        row=flat.row,
        delivered_columns=tuple(destination.select_columns(flat.row)),
        collisions=flat.collisions,
    )
