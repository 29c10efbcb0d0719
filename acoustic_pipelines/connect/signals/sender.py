"""Concurrent `createSignals` calls, each batch recorded in the day's ledger around its call.

A :class:`BatchSender` runs a pool of `concurrency` threads, each with its own
:class:`ConnectClient` (made by the caller's factory on first use), and keeps at most
2 × `concurrency` batches submitted, so the caller's memory stays bounded. For every batch a
worker writes the ledger entry `sending`, makes the call, then rewrites the entry `sent` (with
the signal ids), `failed` (Connect answered with an error: nothing was stored) or `unknown` (no
answer came back, though the request may have reached Connect). After any error other than a
refused input, no further batch is started: those not begun come back `not_sent`.

Before its `sending` entry, each batch confirms the day's lease (`Lease.confirm`, an atomic
check-and-extend in the lease store): a run whose lease expired or was taken over sends nothing
more (`LeaseLost`), so two runs of one day never have batches in flight at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from acoustic_pipelines.connect.client import ConnectClient, outcome_unknown
from acoustic_pipelines.connect.errors import (
    ConnectError,
    ForbiddenError,
    InvalidInputError,
)
from acoustic_pipelines.connect.signals.ledger import FAILED, SENT, UNKNOWN, PushLedger
from acoustic_pipelines.connect.signals.rules import BuiltSignal
from acoustic_pipelines.leases import Lease

__all__ = ["NOT_SENT", "BatchOutcome", "BatchSender", "ClientFactory"]

ClientFactory = Callable[[], ConnectClient]
NOT_SENT = "not_sent"


@dataclass(frozen=True)
class BatchOutcome:
    """How one batch's call ended."""

    signals: tuple[BuiltSignal, ...]
    retry: bool
    status: str
    error: ConnectError | None = None
    resend: bool = False

    @property
    def refused(self) -> bool:
        """Connect (or the client's own checks) refused the batch for its content."""
        return isinstance(self.error, InvalidInputError | ForbiddenError)


class BatchSender:
    """Sends batches from a thread pool, one client per thread, recording each in the ledger."""

    def __init__(
        self,
        ledger: PushLedger,
        client_factory: ClientFactory,
        concurrency: int,
        *,
        secrets: Sequence[str],
        lease: Lease | None = None,
    ) -> None:
        self._ledger = ledger
        self._lease = lease
        self._client_factory = client_factory
        self._secrets = tuple(s for s in secrets if s)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="signal-push")
        self._max_in_flight = 2 * concurrency
        self._futures: set[Future[BatchOutcome]] = set()
        self._local = threading.local()
        self._clients: list[ConnectClient] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._numbers = iter(range(1, 1 << 62))

    def __enter__(self) -> BatchSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._stopped.set()
        self._pool.shutdown(wait=True, cancel_futures=exc_type is not None)
        for client in self._clients:
            client.close()

    @property
    def in_flight(self) -> int:
        """Batches submitted whose outcome was not handed back yet."""
        return len(self._futures)

    def stop(self) -> None:
        """Start no more batches (those already in a call finish)."""
        self._stopped.set()

    def stats(self) -> tuple[int, int]:
        """HTTP calls and retries of every client so far."""
        with self._lock:
            stats = [c.stats for c in self._clients]
        return sum(s.calls for s in stats), sum(s.retries for s in stats)

    def submit(
        self, signals: tuple[BuiltSignal, ...], *, retry: bool, resend: bool = False
    ) -> list[BatchOutcome]:
        """Queue one batch; the outcomes of batches that ended while waiting for room.

        `resend`: the batch sends again signals whose earlier outcome is unknown.
        """
        number = next(self._numbers)
        self._futures.add(self._pool.submit(self._send, number, signals, retry, resend))
        outcomes = []
        while len(self._futures) >= self._max_in_flight:
            outcomes += self.wait()
        return outcomes

    def wait(self) -> list[BatchOutcome]:
        """Wait until at least one batch in flight ends; the outcomes of those that ended."""
        done, self._futures = wait(self._futures, return_when=FIRST_COMPLETED)
        return [future.result() for future in done]

    def _client(self) -> ConnectClient:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._client_factory()
            with self._lock:
                self._clients.append(client)
        return client

    def _send(
        self, number: int, signals: tuple[BuiltSignal, ...], retry: bool, resend: bool
    ) -> BatchOutcome:
        """Confirm the lease, record the batch as sending, call createSignals, record the end."""
        if self._stopped.is_set():
            return BatchOutcome(signals, retry, NOT_SENT, resend=resend)
        if self._lease is not None:
            try:
                self._lease.confirm()
            except BaseException:
                self._stopped.set()
                raise
        keys = [(s.message_id, s.rule) for s in signals]
        types = [s.signal_type for s in signals]
        entry = self._ledger.start_batch(number, keys, types, resend=resend)
        try:
            ids = self._client().create_signals([s.signal for s in signals])
        except ConnectError as exc:
            status = UNKNOWN if outcome_unknown(exc) else FAILED
            self._ledger.record(entry.with_status(status, error=self._error_record(exc)))
            outcome = BatchOutcome(signals, retry, status, exc, resend)
            if not outcome.refused:  # start no other batch: the push stops
                self._stopped.set()
            return outcome
        self._ledger.record(entry.with_status(SENT, signal_ids=ids))
        return BatchOutcome(signals, retry, SENT, resend=resend)

    def _error_record(self, error: ConnectError) -> dict[str, Any]:
        """The error as the ledger keeps it: code, HTTP status and message, secrets removed."""
        message = error.message
        for secret in self._secrets:
            message = message.replace(secret, "[redacted]")
        return {"code": error.code, "http_status": error.status, "message": message}
