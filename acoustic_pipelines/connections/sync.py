"""One sync of a Segment Connections model: diff, build each mapping's messages, send, record.

Per page of changes (`changes.py`), for each enabled mapping that sends that kind of change:
the record's message id is derived from (model, record key, row checksum, mapping, generation,
the record's committed version: `derive_message_id`);
the ledger says whether an earlier run already settled it (sent, rejected, given up) — then it is
not sent again; a record that kept failing for longer than `retry_days` is given up with its
reason; otherwise the mapping builds the message (Segment's refusal → `rejected`, over 32 KB →
`rejected`) and the sender posts it. Each request's outcome is recorded as soon as it is known;
once a page is through, the snapshot moves for the records whose messages are all settled. A run
killed anywhere therefore leaves nothing lost (unsettled records are diffed again) and nothing
sent twice (settled ids are skipped; an id sent without its answer is resent and Segment's
messageId dedupe drops the copy).

Three threads share the work, each in order: this one builds a page's messages; a sender
thread makes the requests; a recorder thread records each request's outcome as soon as it
comes, then moves the page's snapshot. While one page is sent and recorded, the next is built
(building is Python work; a request mostly waits for the API, a ledger write for the database);
at most two pages are under way. A request or a record that raises (the write key refused, the
process interrupted) stops the requests after it, and its page's snapshot does not move.

The snapshot: the ledger database keeps it; after a sync the diff also writes it as a file
named by the ledger's snapshot token (`ledger.py`), which the next sync reads instead of the
database when that token is still the committed one.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from acoustic_pipelines.config.connections import ConnectionMappingConfig, ConnectionModelConfig
from acoustic_pipelines.connections.changes import Change, ChangeCounts, ChangeSet, detect_changes
from acoustic_pipelines.connections.ledger import (
    FINAL_OUTCOMES,
    Advance,
    SendRecord,
    SyncLedger,
    chain_token,
)
from acoustic_pipelines.connections.messages import MessageRejected
from acoustic_pipelines.connections.rejected import RejectedRecord, rejected_row, rejected_send
from acoustic_pipelines.connections.sender import (
    MAX_MESSAGE_BYTES,
    BatchOutcome,
    Outgoing,
    TrackingApiSender,
    message_size,
    pack,
)

__all__ = ["MappingCounts", "SyncReport", "derive_message_id", "sync_model"]

log = logging.getLogger(__name__)

#: The `event` a mapping reads for each change (Segment's Reverse ETL names).
CHANGE_EVENTS: Final = {"added": "new", "updated": "updated", "deleted": "deleted"}
SAMPLES_PER_MAPPING: Final = 3
DAY_SECONDS: Final = 86_400

RejectedSink = Callable[[list[RejectedRecord]], None]


def derive_message_id(
    model: str, key: str, checksum: str, mapping: str, generation: int, version: int = 0
) -> str:
    """The message id of a record's message: the same for the same move of the record (row,
    mapping, generation and the committed version the move starts from), new for every other.

    A re-run of a move not yet committed derives the same ids (Segment drops the copies); once a
    move is committed the record's version rises, so a row that returns to an earlier state, or
    a key deleted and added again, is sent again. Version 0 (a record's first move, or any
    record of a snapshot from before versions) derives the ids earlier code derived.
    """
    parts = [model, key, checksum, mapping, str(generation)]
    if version:
        parts.append(f"v{version}")
    text = "\x1f".join(parts)
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


@dataclass
class _Page:
    """One page of changes, planned: what to send and what each message belongs to."""

    pending: dict[str, _Pending]
    known: dict[str, SendRecord]
    meta: dict[str, tuple[Change, ConnectionMappingConfig]]
    batches: list[list[Outgoing]]
    tasks: list[Future[None]] = field(default_factory=list)  # its records, then its advance
    refused: list[RejectedRecord] = field(default_factory=list)  # failed sends, for the sink
    moved: list[Advance] = field(default_factory=list)  # the records its advance moved
    broken: bool = False  # a request or a record of the page raised: no advance


class _Sync:
    """The state of one sync across its pages."""

    def __init__(
        self,
        model: ConnectionModelConfig,
        *,
        report: SyncReport,
        ledger: SyncLedger,
        sender: TrackingApiSender | None,
        change_set: ChangeSet,
        token: str,
        retry_seconds: int,
        now: float,
        on_rejected: RejectedSink | None,
    ) -> None:
        self.model = model
        self.mappings = model.enabled_mappings
        self.report = report
        self.ledger = ledger
        self.sender = sender
        self.change_set = change_set
        self.token = token  # the snapshot token once this sync's own moves are committed
        self.retry_seconds = retry_seconds
        self.now = now
        self.on_rejected = on_rejected
        self.stopped = threading.Event()  # a request raised: send nothing after it

    def plan(self, page: list[Change]) -> _Page:
        """Build the page's messages; settle at once what needs no request (refused, given up)."""
        model, report, now = self.model, self.report, self.now
        generation = report.generation
        planned: list[tuple[Change, ConnectionMappingConfig, str]] = []
        for change in page:
            for mapping in self.mappings:
                if mapping.sends(change.kind):
                    message_id = derive_message_id(
                        model.name,
                        change.key,
                        change.checksum,
                        mapping.name,
                        generation,
                        change.version,
                    )
                    planned.append((change, mapping, message_id))
        known = self.ledger.lookup(
            model.name, [(change.key, mapping.name, mid) for change, mapping, mid in planned]
        )
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
            failing_since = record.first_failure_at if record is not None else None
            if failing_since is not None and now - failing_since > self.retry_seconds:
                days = self.retry_seconds // DAY_SECONDS
                last_reason = record.reason if record is not None else None
                reason = f"given up after failing for more than {days} days: {last_reason}"
                settled_now.append(
                    _settled(model, change, mapping, message_id, record, "given_up", reason)
                )
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
                settled_now.append(
                    _settled(model, change, mapping, message_id, record, "rejected", str(rejected))
                )
                counts.rejected += 1
                continue
            size = message_size(message)
            if size > MAX_MESSAGE_BYTES:
                reason = f"the message is {size:,} bytes; the Tracking API takes at most {MAX_MESSAGE_BYTES:,}"
                settled_now.append(
                    _settled(model, change, mapping, message_id, record, "rejected", reason)
                )
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
        if self.on_rejected is not None and settled_now:
            self.on_rejected([rejected_send(r, pending[r.record_key].change) for r in settled_now])
        if settled_now and not report.dry_run:
            self.ledger.record(settled_now, now=now)
        return _Page(pending, known, meta, list(pack(outgoing)))

    def start(
        self, page: _Page, sending: ThreadPoolExecutor, recording: ThreadPoolExecutor
    ) -> None:
        """Queue the page's requests (sender thread), their records and its advance (recorder
        thread); each thread works through its queue in order."""
        for batch in page.batches:
            request = sending.submit(self._send, batch)
            page.tasks.append(recording.submit(self._record, page, request))
        page.tasks.append(recording.submit(self._advance, page))

    def _send(self, batch: list[Outgoing]) -> BatchOutcome:
        """One request on the sender thread, unless an earlier one raised."""
        if self.stopped.is_set():
            raise _Stopped
        assert self.sender is not None
        try:
            return self.sender.send_batch(batch)
        except BaseException:
            self.stopped.set()
            raise

    def _record(self, page: _Page, request: Future[BatchOutcome]) -> None:
        """Record one request's outcome as soon as it is known (recorder thread)."""
        try:
            outcome = request.result()
            model, report = self.model, self.report
            records = []
            for message_id in outcome.message_ids:
                change, mapping = page.meta[message_id]
                counts = report.mappings[mapping.name]
                previous = page.known.get(message_id)
                records.append(
                    SendRecord(
                        message_id=message_id,
                        model=model.name,
                        record_key=change.key,
                        mapping=mapping.name,
                        change=change.kind,
                        checksum=change.checksum,
                        outcome="sent" if outcome.sent else "failed",
                        reason=outcome.reason,
                        attempts=outcome.attempts,
                        first_failure_at=previous.first_failure_at
                        if previous is not None
                        else None,
                    )
                )
                state = page.pending[change.key]
                state.open.discard(message_id)
                if outcome.sent:
                    counts.sent += 1
                else:
                    counts.failed += 1
                    state.failed = True
            self.ledger.record(records, now=self.now)
            if self.on_rejected is not None and not outcome.sent:
                page.refused.extend(
                    rejected_send(r, page.pending[r.record_key].change) for r in records
                )
        except BaseException:
            page.broken = True
            raise

    def _advance(self, page: _Page) -> None:
        """Move the snapshot for the page's records whose messages are all settled (recorder
        thread, after the page's records)."""
        if page.broken:
            raise _Stopped
        advance = [
            (
                self.model.name,
                state.change.key,
                None if state.change.kind == "deleted" else state.change.checksum,
                state.change.version + 1,
            )
            for state in page.pending.values()
            if not state.failed and not state.open
        ]
        if advance:
            self.ledger.record([], advance=advance, now=self.now)
        page.moved = advance

    def finish(self, page: _Page) -> None:
        """Wait for the page's records and advance; hand the failed ones to the sink."""
        error: BaseException | None = None
        for task in page.tasks:
            try:
                task.result()
            except _Stopped:
                continue
            except BaseException as exc:
                error = exc
                break
        if self.on_rejected is not None and page.refused:
            self.on_rejected(page.refused)
        if error is not None:
            raise error
        if page.moved:
            self.token = chain_token(self.token, page.moved)
            self.change_set.advance([move[1:] for move in page.moved])
            self.report.advanced += len(page.moved)


class _Stopped(Exception):
    """A request not made because an earlier one raised."""


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
    on_rejected: RejectedSink | None = None,
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
    token, cached = ledger.cached_snapshot(model.name, create=not dry_run)
    snapshot: Any = [] if reset else (cached or ledger.snapshot_batches(model.name))
    report = SyncReport(
        model=model.name,
        generation=generation,
        dry_run=dry_run,
        changes=ChangeCounts(0, 0, 0, 0, 0, 0),
        mappings={m.name: MappingCounts() for m in model.enabled_mappings},
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
        sync = _Sync(
            model,
            report=report,
            ledger=ledger,
            sender=sender,
            change_set=change_set,
            token=token,
            retry_seconds=retry_days * DAY_SECONDS,
            now=clock,
            on_rejected=on_rejected,
        )
        if dry_run:
            for page in change_set.changes(page_rows=page_rows):
                sync.plan(page)
        else:
            with ledger.held():  # one connection for the sync's many small transactions
                _send_pages(sync, change_set.changes(page_rows=page_rows))
                _cache_snapshot(sync, had_file=cached is not None or reset)
    if sender is not None:
        report.requests = sender.requests_made - requests_before
    log.info(
        "model %s: %s; %s",
        model.name,
        report.changes,
        {name: vars(counts) for name, counts in report.mappings.items()},
    )
    return report


def _send_pages(sync: _Sync, pages: Iterable[list[Change]]) -> None:
    """Plan each page while the one before is sent and recorded; at most two pages at a time."""
    sending = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracking-api")
    recording = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-ledger")
    outstanding: deque[_Page] = deque()
    try:
        for changes in pages:
            page = sync.plan(changes)
            sync.start(page, sending, recording)
            outstanding.append(page)
            if len(outstanding) == 2:
                sync.finish(outstanding.popleft())
        while outstanding:
            sync.finish(outstanding.popleft())
    finally:
        sync.stopped.set()  # on an error: nothing more goes out
        sending.shutdown(wait=True, cancel_futures=True)
        recording.shutdown(wait=True, cancel_futures=True)


def _cache_snapshot(sync: _Sync, *, had_file: bool) -> None:
    """Write the snapshot file for the next sync, if this sync's snapshot is the committed one."""
    change_set, ledger, name = sync.change_set, sync.ledger, sync.model.name
    if had_file and not sync.report.advanced and not change_set.rehashed:
        return  # the file already holds this snapshot
    if ledger.snapshot_token(name) != sync.token:
        log.info("model %s: the snapshot moved in another sync; no snapshot file written", name)
        return
    change_set.write_snapshot(ledger.snapshot_file(name, sync.token))
    ledger.drop_cached_snapshots(name, keep=sync.token)


def _settled(
    model: ConnectionModelConfig,
    change: Change,
    mapping: ConnectionMappingConfig,
    message_id: str,
    previous: SendRecord | None,
    outcome: str,
    reason: str,
) -> SendRecord:
    """A message settled without a request (refused or given up)."""
    return SendRecord(
        message_id=message_id,
        model=model.name,
        record_key=change.key,
        mapping=mapping.name,
        change=change.kind,
        checksum=change.checksum,
        outcome=outcome,
        reason=reason,
        attempts=0,
        first_failure_at=previous.first_failure_at if previous is not None else None,
    )


def summarize(report: SyncReport) -> dict[str, int]:
    """Flat counts of a sync (for metadata): the diff's and the sends' over all mappings."""
    totals: Counter[str] = Counter()
    for counts in report.mappings.values():
        totals.update({k: v for k, v in vars(counts).items()})
    return {**vars(report.changes), **dict(totals)}
