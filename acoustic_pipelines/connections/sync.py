"""One sync of a Segment Connections model: diff, build each mapping's messages, send, record.

Per page of changes (`changes.py`), for each enabled mapping that sends that kind of change:
the record's message id is derived from (model, record key, row checksum, mapping, generation);
the ledger says whether an earlier run already settled it (sent, rejected, given up) — then it is
not sent again; a record that kept failing for longer than `retry_days` is given up with its
reason; otherwise the mapping builds the message (Segment's refusal → `rejected`, over 32 KB →
`rejected`) and the sender posts it. Each request's outcome is recorded as soon as it is known;
once a page is through, the snapshot moves for the records whose messages are all settled. A run
killed anywhere therefore leaves nothing lost (unsettled records are diffed again) and nothing
sent twice (settled ids are skipped; an id sent without its answer is resent and Segment's
messageId dedupe drops the copy).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from acoustic_pipelines.config.connections import ConnectionMappingConfig, ConnectionModelConfig
from acoustic_pipelines.connections.changes import Change, ChangeCounts, detect_changes
from acoustic_pipelines.connections.ledger import FINAL_OUTCOMES, SendRecord, SyncLedger
from acoustic_pipelines.connections.messages import MessageRejected
from acoustic_pipelines.connections.rejected import RejectedRecord, rejected_row, rejected_send
from acoustic_pipelines.connections.sender import (
    MAX_MESSAGE_BYTES,
    BatchOutcome,
    Outgoing,
    TrackingApiSender,
    message_size,
)

__all__ = ["MappingCounts", "SyncReport", "derive_message_id", "sync_model"]

log = logging.getLogger(__name__)

#: The `event` a mapping reads for each change (Segment's Reverse ETL names).
CHANGE_EVENTS: Final = {"added": "new", "updated": "updated", "deleted": "deleted"}
SAMPLES_PER_MAPPING: Final = 3
DAY_SECONDS: Final = 86_400


def derive_message_id(model: str, key: str, checksum: str, mapping: str, generation: int) -> str:
    """The message id of a record's message: the same for the same row, mapping and generation."""
    text = "\x1f".join((model, key, checksum, mapping, str(generation)))
    return "retl-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


@dataclass
class MappingCounts:
    """What one mapping did in a sync."""

    sent: int = 0
    failed: int = 0
    rejected: int = 0
    given_up: int = 0
    already_settled: int = 0  # settled by an earlier run, not sent again
    would_send: int = 0  # dry run only


@dataclass
class SyncReport:
    """The outcome of one sync: the diff's counts and, per mapping, the sends."""

    model: str
    generation: int
    dry_run: bool
    changes: ChangeCounts
    mappings: dict[str, MappingCounts]
    requests: int = 0
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejections: list[tuple[str | None, str]] = field(default_factory=list)
    advanced: int = 0


@dataclass
class _Pending:
    """The messages of one record still being settled in this page."""

    change: Change
    open: set[str]
    failed: bool = False


def sync_model(
    model: ConnectionModelConfig,
    batches: Iterable[pa.RecordBatch],
    *,
    ledger: SyncLedger,
    sender: TrackingApiSender | None,
    retry_days: int,
    reset: bool = False,
    dry_run: bool = False,
    now: float | None = None,
    workdir: str | Path | None = None,
    page_rows: int = 5_000,
    max_rejections_kept: int = 1_000,
    on_rejected: Callable[[list[RejectedRecord]], None] | None = None,
) -> SyncReport:
    """Sync one model: send its changes through its enabled mappings and record the outcomes.

    Args:
        model: the model's config (table or query, primary key, mappings).
        batches: the model's rows (`warehouse.read_model`).
        ledger: the snapshot and sync ledger.
        sender: the Tracking API sender (None only for a dry run).
        retry_days: failed records are retried this long, then given up.
        reset: send every record as added again (new message ids; no deletes sent).
        dry_run: build the messages and count them, send and record nothing.
        now: the current time (Unix seconds), for tests.
        workdir: where the diff's temporary DuckDB database goes.
        page_rows: changes handled per page (bounds memory).
        max_rejections_kept: rejected rows listed in the report (all are counted).
        on_rejected: receives every rejected, failed and given-up record, a page at a time.
    """
    if sender is None and not dry_run:
        raise ValueError("a sync that sends needs a TrackingApiSender (or dry_run=True)")
    clock = now if now is not None else time.time()
    if reset and not dry_run:
        generation = ledger.reset(model.name)
    elif reset:
        generation = ledger.generation(model.name) + 1
    else:
        generation = ledger.generation(model.name)
    snapshot = [] if reset else ledger.snapshot_batches(model.name)
    mappings = model.enabled_mappings
    report = SyncReport(
        model=model.name,
        generation=generation,
        dry_run=dry_run,
        changes=ChangeCounts(0, 0, 0, 0, 0, 0),
        mappings={m.name: MappingCounts() for m in mappings},
    )
    requests_before = sender.requests_made if sender is not None else 0
    with detect_changes(
        batches, snapshot, primary_key=model.primary_key, workdir=workdir
    ) as change_set:
        report.changes = change_set.counts
        for page in change_set.rejections(page_rows=page_rows):
            room = max_rejections_kept - len(report.rejections)
            report.rejections.extend((r.key, r.reason) for r in page[: max(room, 0)])
            if on_rejected is not None:
                on_rejected([rejected_row(r) for r in page])
        for page in change_set.changes(page_rows=page_rows):
            _sync_page(
                model,
                mappings,
                page,
                report=report,
                ledger=ledger,
                sender=sender,
                generation=generation,
                retry_seconds=retry_days * DAY_SECONDS,
                now=clock,
                on_rejected=on_rejected,
            )
    if sender is not None:
        report.requests = sender.requests_made - requests_before
    log.info(
        "model %s: %s; %s",
        model.name,
        report.changes,
        {name: vars(counts) for name, counts in report.mappings.items()},
    )
    return report


def _sync_page(
    model: ConnectionModelConfig,
    mappings: list[ConnectionMappingConfig],
    page: list[Change],
    *,
    report: SyncReport,
    ledger: SyncLedger,
    sender: TrackingApiSender | None,
    generation: int,
    retry_seconds: int,
    now: float,
    on_rejected: Callable[[list[RejectedRecord]], None] | None = None,
) -> None:
    """Settle one page of changes: build, send and record, then move the snapshot."""
    planned: list[tuple[Change, ConnectionMappingConfig, str]] = []
    for change in page:
        for mapping in mappings:
            if mapping.sends(change.kind):
                message_id = derive_message_id(
                    model.name, change.key, change.checksum, mapping.name, generation
                )
                planned.append((change, mapping, message_id))
    known = ledger.lookup([mid for _, _, mid in planned])
    pending = {change.key: _Pending(change, set()) for change in page}
    settled_now: list[SendRecord] = []
    outgoing: list[Outgoing] = []
    meta: dict[str, tuple[Change, ConnectionMappingConfig]] = {}
    for change, mapping, message_id in planned:
        counts = report.mappings[mapping.name]
        record = known.get(message_id)
        if record is not None and record.outcome in FINAL_OUTCOMES:
            counts.already_settled += 1
            continue
        base = SendRecord(
            message_id=message_id,
            model=model.name,
            record_key=change.key,
            mapping=mapping.name,
            change=change.kind,
            checksum=change.checksum,
            outcome="",
            reason=None,
            attempts=0,
            first_failure_at=record.first_failure_at if record is not None else None,
        )
        failing_since = base.first_failure_at
        if failing_since is not None and now - failing_since > retry_seconds:
            last_reason = record.reason if record is not None else None
            days = retry_seconds // DAY_SECONDS
            reason = f"given up after failing for more than {days} days: {last_reason}"
            settled_now.append(_with(base, "given_up", reason))
            counts.given_up += 1
            continue
        event = {
            "type": "track",
            "event": CHANGE_EVENTS[change.kind],
            "messageId": message_id,
            "properties": change.properties,
        }
        try:
            message = mapping.build(event)
        except MessageRejected as rejected:
            settled_now.append(_with(base, "rejected", str(rejected)))
            counts.rejected += 1
            continue
        size = message_size(message)
        if size > MAX_MESSAGE_BYTES:
            reason = f"the message is {size:,} bytes; the Tracking API takes at most {MAX_MESSAGE_BYTES:,}"
            settled_now.append(_with(base, "rejected", reason))
            counts.rejected += 1
            continue
        if report.dry_run:
            counts.would_send += 1
            samples = report.samples.setdefault(mapping.name, [])
            if len(samples) < SAMPLES_PER_MAPPING:
                samples.append(message)
            continue
        outgoing.append(Outgoing(message_id, message, size))
        meta[message_id] = (change, mapping)
        pending[change.key].open.add(message_id)
    if on_rejected is not None and settled_now:
        on_rejected([rejected_send(r, pending[r.record_key].change) for r in settled_now])
    if report.dry_run:
        return
    if settled_now:
        ledger.record(settled_now, now=now)
    if outgoing:
        assert sender is not None

        def on_batch(outcome: BatchOutcome) -> None:
            records = []
            for message_id in outcome.message_ids:
                change, mapping = meta[message_id]
                counts = report.mappings[mapping.name]
                previous = known.get(message_id)
                record = SendRecord(
                    message_id=message_id,
                    model=model.name,
                    record_key=change.key,
                    mapping=mapping.name,
                    change=change.kind,
                    checksum=change.checksum,
                    outcome="sent" if outcome.sent else "failed",
                    reason=outcome.reason,
                    attempts=outcome.attempts,
                    first_failure_at=previous.first_failure_at if previous is not None else None,
                )
                records.append(record)
                state = pending[change.key]
                state.open.discard(message_id)
                if outcome.sent:
                    counts.sent += 1
                else:
                    counts.failed += 1
                    state.failed = True
            ledger.record(records, now=now)
            if on_rejected is not None and not outcome.sent:
                on_rejected([rejected_send(r, pending[r.record_key].change) for r in records])

        sender.send(outgoing, on_batch=on_batch)
    advance = [
        (
            model.name,
            state.change.key,
            None if state.change.kind == "deleted" else state.change.checksum,
        )
        for state in pending.values()
        if not state.failed and not state.open
    ]
    if advance:
        ledger.record([], advance=advance, now=now)
        report.advanced += len(advance)


def _with(base: SendRecord, outcome: str, reason: str) -> SendRecord:
    """A send record with its outcome and reason."""
    return SendRecord(**{**vars(base), "outcome": outcome, "reason": reason})


def summarize(report: SyncReport) -> dict[str, int]:
    """Flat counts of a sync (for metadata): the diff's and the sends' over all mappings."""
    totals: Counter[str] = Counter()
    for counts in report.mappings.values():
        totals.update({k: v for k, v in vars(counts).items()})
    return {**vars(report.changes), **dict(totals)}
