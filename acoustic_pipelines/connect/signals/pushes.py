"""Push one day's behavior signals to Acoustic Connect (`createSignals`), resuming from a ledger.

:func:`push_day` streams the day's `segment/raw_events` partition one record batch at a time,
runs each event through the signal rules (:func:`signals_for_event` validates every signal),
and sends the valid signals in batches of at most 500 from a pool of `concurrency` threads,
each with its own :class:`ConnectClient`, holding at most 2 × `concurrency` batches in flight:
memory stays bounded whatever the day's size.

Never twice: the push holds the day's lease (`Lake.lease`) from before it reads the ledger until
it ends, so a second push of the same day — by hand, a backfill and a schedule at once, another
machine on the same lease store — waits for it (then sends only what is left) or fails naming
it, whatever the orchestrator's pool settings; each batch confirms the lease before its call.
Every batch is recorded in the day's ledger (:mod:`~acoustic_pipelines.connect.signals.ledger`)
as `sending` before its call and as `sent`, `failed` or `unknown` after it. A re-run skips keys
already sent and does not send again keys whose outcome is unknown (a call whose answer never
came: dropped connection, a run killed mid-call): it counts them as `unknown_outcome`.

Recovering lost answers: `resend_unknown=True` sends the keys of unknown outcome again, in
batches of their own (never with keys known to be sent, which are skipped). This is
at-least-once for those signals only — Connect has no idempotency key, so a signal whose lost
answer had in fact been stored is then held twice; `resent_unknown` counts them.
`force_resend=True` sends everything again.

A batch Connect refuses (`BAD_USER_INPUT`, `FORBIDDEN`): the signals its errors name go to
`connect/rejected_signals` with those errors and the others are sent once more in a batch of
their own. Any other error (authentication, daily limit, or rate limits and unavailability
outlasting the client's retries) stops the push: no batch is started any more, those in flight
finish, and :class:`SignalPushError` carries the report so far; a re-run resumes.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any

from acoustic_pipelines.config.signals import SignalRule
from acoustic_pipelines.connect.errors import (
    ConnectError,
    RateLimitedError,
    UnavailableError,
)
from acoustic_pipelines.connect.signals.content import MAX_SIGNALS_PER_CALL
from acoustic_pipelines.connect.signals.ledger import (
    SENT,
    SIGNAL_PUSHES,
    UNKNOWN,
    LedgerState,
    PushLedger,
    signal_key,
)
from acoustic_pipelines.connect.signals.rejected import Reject, RejectWriter, reason_of
from acoustic_pipelines.connect.signals.rules import (
    BuiltSignal,
    RejectedSignal,
    SignalSettings,
    guarded_rules,
    signals_for_event,
)
from acoustic_pipelines.connect.signals.sender import (
    NOT_SENT,
    BatchOutcome,
    BatchSender,
    ClientFactory,
)
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.leases import DEFAULT_WAIT_SECONDS
from acoustic_pipelines.segment.raw_events import RAW_EVENTS, parse_payload

__all__ = ["PushReport", "SignalPushError", "push_day"]

ProgressCallback = Callable[[str], None]

UNREADABLE_PAYLOAD = "UNREADABLE_PAYLOAD"
PROGRESS_SECONDS = 5.0
READ_BATCH_ROWS = 2048
_SIGNAL_INDEX = re.compile(r"^signals\[(\d+)\]")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushReport:
    """What one push of a day did; the signal counts add up (:meth:`accounting_problems`).

    Attributes:
        built_by_type: valid signals built by the rules, by signal type.
        rejected_by_reason: rejects by reason (field path, mapping error type, Connect code).
        rejected_by_rule: rejects by rule.
        batches_sent: batches Connect accepted in this run.
        batches_failed: batches Connect refused or that failed in this run.
        batches_skipped: earlier runs' batches sent or of unknown outcome, not sent again.
        signals_sent: signals Connect accepted in this run.
        signals_skipped: signals an earlier run had sent.
        unknown_outcome: signals whose call may or may not have been stored (not sent again).
        resent_unknown: signals of unknown outcome sent again (`resend_unknown`) and stored
            now: at-least-once, Connect may hold them twice.
        signals_refused: signals Connect refused (also counted as rejected).
        signals_not_sent: built but not sent: a dry run, or a push stopped by an error.
        calls, retries: HTTP requests made and retries among them (the clients' stats).
    """

    day: date
    dry_run: bool
    force_resend: bool
    resend_unknown: bool
    events_read: int
    built_by_type: Mapping[str, int]
    rejected_by_reason: Mapping[str, int]
    rejected_by_rule: Mapping[str, int]
    batches_sent: int
    batches_failed: int
    batches_skipped: int
    signals_sent: int
    signals_skipped: int
    unknown_outcome: int
    resent_unknown: int
    signals_refused: int
    signals_not_sent: int
    calls: int
    retries: int
    seconds: float
    ledger_uri: str | None
    rejected_uri: str | None

    @property
    def signals_built(self) -> int:
        """Valid signals the rules built."""
        return sum(self.built_by_type.values())

    @property
    def rejected(self) -> int:
        """Signals rejected, by the rules or by Connect."""
        return sum(self.rejected_by_reason.values())

    @property
    def signals_per_second(self) -> float:
        """Signals sent per second of the run."""
        return self.signals_sent / self.seconds if self.seconds > 0 else 0.0

    def accounting_problems(self) -> list[str]:
        """Empty when every built signal is sent, skipped, of unknown outcome, refused or unsent."""
        outcomes = (
            self.signals_sent
            + self.signals_skipped
            + self.unknown_outcome
            + self.signals_refused
            + self.signals_not_sent
        )
        if outcomes == self.signals_built:
            return []
        return [f"{self.signals_built:,} signals built but {outcomes:,} outcomes counted"]

    def to_summary(self) -> dict[str, Any]:
        """The report as JSON-ready values (the ledger's `_SUCCESS` summary)."""
        summary = asdict(self)
        summary["day"] = self.day.isoformat()
        summary["signals_per_second"] = round(self.signals_per_second, 1)
        return summary


class SignalPushError(RuntimeError):
    """A push stopped by an error that retrying now would not fix; `report` is what it did."""

    def __init__(self, report: PushReport, error: ConnectError) -> None:
        self.report = report
        self.error = error
        unknown = (
            f"; {report.unknown_outcome:,} signals of unknown outcome are not sent again unless "
            "a run sets resend_unknown (at-least-once for them: Connect has no idempotency key)"
            if report.unknown_outcome
            else ""
        )
        super().__init__(
            f"pushing the signals of {report.day} stopped after {report.signals_sent:,} signals "
            f"in {report.batches_sent:,} batches were sent: {error}; the ledger at "
            f"{report.ledger_uri} keeps what was sent, so a re-run resumes{unknown}"
        )

    @property
    def retryable(self) -> bool:
        """Whether a later re-run may succeed as is (rate limited or unavailable)."""
        return isinstance(self.error, RateLimitedError | UnavailableError)


def push_day(
    lake: Lake,
    day: date,
    *,
    rules: Sequence[SignalRule],
    settings: SignalSettings,
    client_factory: ClientFactory | None,
    batch_size: int = MAX_SIGNALS_PER_CALL,
    concurrency: int = 4,
    force_resend: bool = False,
    resend_unknown: bool = False,
    dry_run: bool = False,
    on_progress: ProgressCallback | None = None,
    lease_wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> PushReport:
    """Send the day's signals once each; return what was built, sent, skipped and rejected.

    Args:
        lake: The lake holding `segment/raw_events` for `day`; the ledger and rejects go there.
        rules: The compiled signal rules (`SignalsConfig.compiled_rules`).
        settings: The application key, tier, test flag and default currency of every signal.
        client_factory: Makes one Connect client per worker thread (None only for a dry run).
        batch_size: Signals per `createSignals` call, at most 500.
        concurrency: Calls in flight at once.
        force_resend: Send every signal again, whatever the ledger says.
        resend_unknown: Send again the signals whose outcome is unknown, in batches of their
            own; those known to be sent are skipped (at-least-once for the resent ones).
        dry_run: Build, validate and count only: nothing is sent or written.
        on_progress: Called with a progress line every few seconds.
        lease_wait_seconds: How long to wait for another push of the same day.

    Raises:
        PartitionNotFound: `segment/raw_events` has no committed partition for `day`.
        LeaseHeld: another push of the day still runs after `lease_wait_seconds` (named).
        LeaseLost: this push's lease expired or was taken over; it stopped sending.
        SignalPushError: an error stopped the push (its report says what was done).
    """
    _check_options(batch_size, concurrency, client_factory, dry_run)
    lake.summary(RAW_EVENTS, day)  # PartitionNotFound before anything is touched
    started = time.monotonic()
    ledger = None if dry_run else PushLedger(lake, day)
    with ExitStack() as stack:
        lease = None
        if ledger is not None:
            label = f"signal push {ledger.run}"
            lease = stack.enter_context(
                lake.lease(SIGNAL_PUSHES, day, label=label, wait_seconds=lease_wait_seconds)
            )
        state = LedgerState() if ledger is None or force_resend else ledger.load()
        tally = _Tally(batches_skipped=0 if force_resend else state.batches_kept)
        rejects = None if dry_run else stack.enter_context(RejectWriter(lake, day))
        sender = None
        if ledger is not None and client_factory is not None:
            secrets = (settings.app_key,)
            sender = stack.enter_context(
                BatchSender(ledger, client_factory, concurrency, secrets=secrets, lease=lease)
            )
            ledger.begin()
        push = _Push(
            tally,
            state,
            rejects,
            sender,
            batch_size,
            _Progress(on_progress, tally),
            resend_unknown=resend_unknown and not force_resend,
        )
        push.run(_day_signals(lake, day, rules, settings, tally))
        elapsed = time.monotonic() - started
        report = tally.report(day, dry_run, force_resend, push.resend_unknown, sender, elapsed)
        if push.error is not None:
            uri = ledger.uri if ledger is not None else None
            raise SignalPushError(replace(report, ledger_uri=uri), push.error)
        if rejects is not None and ledger is not None:
            report = _finish(report, rejects, ledger, started)
    log.info("signal push of %s: %s", day, _progress_line(tally))
    return report


def _check_options(
    batch_size: int, concurrency: int, client_factory: ClientFactory | None, dry_run: bool
) -> None:
    if not 1 <= batch_size <= MAX_SIGNALS_PER_CALL:
        raise ValueError(f"batch_size = {batch_size}: expected 1 to {MAX_SIGNALS_PER_CALL}")
    if concurrency < 1:
        raise ValueError(f"concurrency = {concurrency}: expected 1 or more")
    if client_factory is None and not dry_run:
        raise ValueError("client_factory is None: pass one, or dry_run=True to send nothing")


def _finish(
    report: PushReport, rejects: RejectWriter, ledger: PushLedger, started: float
) -> PushReport:
    """Commit the rejects and consolidate the ledger (its `_SUCCESS` last); the final report."""
    report = replace(report, ledger_uri=ledger.uri, rejected_uri=rejects.uri)
    rejects.commit({"day": report.day.isoformat(), "rejected_by_reason": report.rejected_by_reason})
    ledger.consolidate(report.to_summary())
    return replace(report, seconds=time.monotonic() - started)


def _day_signals(
    lake: Lake,
    day: date,
    rules: Sequence[SignalRule],
    settings: SignalSettings,
    tally: _Tally,
) -> Iterator[BuiltSignal | RejectedSignal]:
    """Every signal and reject of the day's raw events, in file order."""
    columns = ["message_id", "payload"]
    guarded = guarded_rules(rules)
    for batch in lake.iter_batches(RAW_EVENTS, day, columns=columns, batch_rows=READ_BATCH_ROWS):
        message_ids = batch.column(0).to_pylist()
        for message_id, payload in zip(message_ids, batch.column(1).to_pylist(), strict=True):
            tally.events_read += 1
            event = parse_payload(payload)
            if event is None:
                problem = f"{UNREADABLE_PAYLOAD}: the raw payload is not a JSON object"
                yield RejectedSignal("", str(message_id), "", (problem,))
                continue
            yield from signals_for_event(event, guarded, settings)


@dataclass
class _Tally:
    """The counts of a push under way."""

    events_read: int = 0
    built: Counter[str] = field(default_factory=Counter)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    rejected_by_rule: Counter[str] = field(default_factory=Counter)
    batches_sent: int = 0
    batches_failed: int = 0
    batches_skipped: int = 0
    signals_sent: int = 0
    signals_skipped: int = 0
    unknown_outcome: int = 0
    resent_unknown: int = 0
    signals_refused: int = 0
    signals_not_sent: int = 0

    def reject(self, reject: Reject) -> None:
        """Count one reject."""
        self.rejected_by_reason[reject.reason] += 1
        self.rejected_by_rule[reject.rule] += 1

    def report(
        self,
        day: date,
        dry_run: bool,
        force_resend: bool,
        resend_unknown: bool,
        sender: BatchSender | None,
        seconds: float,
    ) -> PushReport:
        """The report of these counts."""
        calls, retries = sender.stats() if sender is not None else (0, 0)
        return PushReport(
            day=day,
            dry_run=dry_run,
            force_resend=force_resend,
            resend_unknown=resend_unknown,
            events_read=self.events_read,
            built_by_type=dict(sorted(self.built.items())),
            rejected_by_reason=dict(self.rejected_by_reason.most_common()),
            rejected_by_rule=dict(sorted(self.rejected_by_rule.items())),
            batches_sent=self.batches_sent,
            batches_failed=self.batches_failed,
            batches_skipped=self.batches_skipped,
            signals_sent=self.signals_sent,
            signals_skipped=self.signals_skipped,
            unknown_outcome=self.unknown_outcome,
            resent_unknown=self.resent_unknown,
            signals_refused=self.signals_refused,
            signals_not_sent=self.signals_not_sent,
            calls=calls,
            retries=retries,
            seconds=seconds,
            ledger_uri=None,
            rejected_uri=None,
        )


def _progress_line(tally: _Tally) -> str:
    return (
        f"{tally.events_read:,} events read, {sum(tally.built.values()):,} signals built, "
        f"{tally.signals_sent:,} sent, {tally.signals_skipped:,} already sent, "
        f"{tally.unknown_outcome:,} of unknown outcome, {tally.resent_unknown:,} resent, "
        f"{sum(tally.rejected_by_reason.values()):,} rejected"
    )


class _Progress:
    """Calls `on_progress` with the counts every PROGRESS_SECONDS."""

    def __init__(self, on_progress: ProgressCallback | None, tally: _Tally) -> None:
        self._on_progress = on_progress
        self._tally = tally
        self._next = time.monotonic() + PROGRESS_SECONDS

    def tick(self) -> None:
        """Report if it is time to."""
        if self._on_progress is not None and time.monotonic() >= self._next:
            self._on_progress(_progress_line(self._tally))
            self._next = time.monotonic() + PROGRESS_SECONDS


@dataclass
class _Push:
    """The main thread's side of a push: batch the signals, settle each batch's outcome."""

    tally: _Tally
    state: LedgerState
    rejects: RejectWriter | None
    sender: BatchSender | None
    batch_size: int
    progress: _Progress
    resend_unknown: bool = False
    pending: list[BuiltSignal] = field(default_factory=list)
    pending_unknown: list[BuiltSignal] = field(default_factory=list)  # resent in their own batches
    error: ConnectError | None = None

    def run(self, signals: Iterable[BuiltSignal | RejectedSignal]) -> None:
        """Take every signal, then send what is pending and wait for every batch."""
        for item in signals:
            if isinstance(item, RejectedSignal):
                self._reject([_rule_reject(item)])
            else:
                self._take(item)
            if self.error is not None:
                break
            self.progress.tick()
        for pending, resend in ((self.pending, False), (self.pending_unknown, True)):
            if pending and self.error is None:
                self._submit(pending, resend=resend)
            elif pending:
                self.tally.signals_not_sent += len(pending)
        self.pending, self.pending_unknown = [], []
        while self.sender is not None and self.sender.in_flight:
            for outcome in self.sender.wait():
                self._settle(outcome)

    def _take(self, signal: BuiltSignal) -> None:
        self.tally.built[signal.signal_type] += 1
        status = self.state.status_of(signal_key(signal.message_id, signal.rule))
        if status == SENT:
            self.tally.signals_skipped += 1
        elif status == UNKNOWN and not self.resend_unknown:
            self.tally.unknown_outcome += 1
        elif self.sender is None:
            self.tally.signals_not_sent += 1
        elif status == UNKNOWN:
            self.pending_unknown.append(signal)
            if len(self.pending_unknown) >= self.batch_size:
                batch, self.pending_unknown = self.pending_unknown, []
                self._submit(batch, resend=True)
        else:
            self.pending.append(signal)
            if len(self.pending) >= self.batch_size:
                batch, self.pending = self.pending, []
                self._submit(batch)

    def _submit(
        self, signals: Sequence[BuiltSignal], *, retry: bool = False, resend: bool = False
    ) -> None:
        assert self.sender is not None
        for outcome in self.sender.submit(tuple(signals), retry=retry, resend=resend):
            self._settle(outcome)

    def _reject(self, rejects: Sequence[Reject]) -> None:
        for reject in rejects:
            self.tally.reject(reject)
        if self.rejects is not None:
            self.rejects.add(rejects)

    def _settle(self, outcome: BatchOutcome) -> None:
        count = len(outcome.signals)
        if outcome.status == SENT:
            self.tally.batches_sent += 1
            self.tally.signals_sent += count
            if outcome.resend:
                self.tally.resent_unknown += count
            return
        if outcome.status == NOT_SENT:
            self.tally.signals_not_sent += count
            return
        self.tally.batches_failed += 1
        if outcome.refused:
            self._refused(outcome)
            return
        if outcome.status == UNKNOWN:
            self.tally.unknown_outcome += count
        else:
            self.tally.signals_not_sent += count
        self._stop(outcome.error)

    def _stop(self, error: ConnectError | None) -> None:
        assert error is not None and self.sender is not None
        if self.error is None:
            self.error = error
            self.sender.stop()

    def _refused(self, outcome: BatchOutcome) -> None:
        """Reject the signals Connect's errors name; send the others once more on their own."""
        assert outcome.error is not None
        named = _problems_by_index(outcome.error, len(outcome.signals))
        resend = bool(named) and len(named) < len(outcome.signals) and not outcome.retry
        rejects, again = [], []
        for index, signal in enumerate(outcome.signals):
            if resend and index not in named:
                again.append(signal)
                continue
            problems = named.get(index) or [f"refused with its batch: {outcome.error.message}"]
            rejects.append(
                Reject(
                    signal.rule,
                    signal.message_id,
                    signal.signal_type,
                    outcome.error.code,
                    tuple(problems),
                )
            )
        self.tally.signals_refused += len(rejects)
        self._reject(rejects)
        if again:
            self._submit(again, retry=True, resend=outcome.resend)


def _rule_reject(rejected: RejectedSignal) -> Reject:
    reason = reason_of(rejected.problems[0]) if rejected.problems else "signal"
    return Reject(
        rejected.rule, rejected.message_id, rejected.signal_type, reason, rejected.problems
    )


def _problems_by_index(error: ConnectError, size: int) -> dict[int, list[str]]:
    """The problems of a refused batch by signal index, from Connect's errors or local checks."""
    named: dict[int, list[str]] = {}
    found = [(p.path, p.message) for p in error.problems]
    for entry in error.errors:
        extensions = entry.get("extensions")
        path = extensions.get("field") if isinstance(extensions, Mapping) else None
        found.append((str(path or ""), str(entry.get("message", ""))))
    for path, message in found:
        match = _SIGNAL_INDEX.match(path)
        if match and int(match.group(1)) < size:
            named.setdefault(int(match.group(1)), []).append(f"{path}: {message}")
    return named
