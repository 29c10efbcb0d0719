"""Sending Spec messages to Segment's Tracking API: `POST /v1/batch`, within §1.5's limits.

The request itself is Segment's own Python library's: `segment.analytics.request.post`
(segment-analytics-python) posts `{"batch": [...]}` to `<host>/v1/batch` with HTTP Basic auth
(the write key as user, an empty password), gzip and `sentAt`, and raises `APIError` with the
status on any answer but 2xx; `parse_retry_after` reads a 429's `Retry-After`. Its `Client` is not
used: it queues messages for a background thread and reports failures only through a callback,
while a sync must know, request by request, which messages Segment accepted before it records
them and moves the snapshot. So the packing and the retries are here:

- a message over 32 KB (Segment's `MAX_MSG_SIZE`) is never sent (the caller rejects it);
- a request holds at most 2,500 messages and 475,000 bytes of JSON (the library's margin under
  Segment's 500 KB, leaving room for `sentAt` and `writeKey`);
- a network error, a 429 (waiting what `Retry-After` says) or a 5xx is retried with capped
  exponential backoff and full jitter, up to `max_attempts`; a 400 (or any other 4xx) never is.
  401 and 403 stop the sync: the write key is refused and nothing else would get through.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import requests
from segment.analytics.consumer import BATCH_SIZE_LIMIT, MAX_MSG_SIZE
from segment.analytics.request import APIError, parse_retry_after, post

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_MESSAGES",
    "MAX_MESSAGE_BYTES",
    "BatchOutcome",
    "Outgoing",
    "TrackingApiError",
    "TrackingApiSender",
    "message_size",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES: Final = MAX_MSG_SIZE  # 32 KB per message (segment.md §1.5)
MAX_BATCH_BYTES: Final = BATCH_SIZE_LIMIT  # under 500 KB per request
MAX_BATCH_MESSAGES: Final = 2_500


class TrackingApiError(Exception):
    """The Tracking API refuses the write key (401/403): no message of this sync can be sent."""


@dataclass(frozen=True)
class Outgoing:
    """One message ready to send, with its JSON size."""

    message_id: str
    message: dict[str, Any]
    size: int


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one request: its messages, whether Segment accepted them, and why not."""

    message_ids: tuple[str, ...]
    sent: bool
    attempts: int
    status: int | None = None
    reason: str | None = None


def message_size(message: dict[str, Any]) -> int:
    """The message's size in the request body, in bytes (what §1.5's 32 KB limit counts).

    Measured as the library writes it (`json.dumps`: ASCII with \\u escapes, ", " separators),
    which for non-ASCII text is larger than UTF-8.
    """
    return len(json.dumps(message, default=str))


class TrackingApiSender:
    """Posts batches to one Tracking API with one write key; safe to reuse across batches."""

    def __init__(
        self,
        *,
        endpoint: str,
        write_key: str,
        timeout: float = 15.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """Args:
        endpoint: the API base, e.g. https://api.segment.io/v1 (the sandbox's for tests).
        write_key: the HTTP API source's write key (from the environment, never the config).
        max_attempts: tries per request before its messages are recorded as failed.
        backoff_base, backoff_cap: the n-th retry waits up to min(cap, base * 2**n) seconds.
        sleep, jitter: injectable for tests (jitter returns a number in [0, 1)).
        """
        self.host = endpoint.rstrip("/").removesuffix("/v1")
        self._write_key = write_key
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._sleep = sleep
        self._jitter = jitter
        self.requests_made = 0

    def __repr__(self) -> str:  # never show the write key
        return f"TrackingApiSender(host={self.host!r})"

    def send(
        self, messages: Iterable[Outgoing], *, on_batch: Callable[[BatchOutcome], None]
    ) -> None:
        """Send every message, packed into requests; `on_batch` hears each request's outcome."""
        for batch in pack(messages):
            on_batch(self.send_batch(batch))

    def send_batch(self, batch: list[Outgoing]) -> BatchOutcome:
        """One request with retries; the outcome says whether Segment accepted the batch."""
        ids = tuple(item.message_id for item in batch)
        body = [item.message for item in batch]
        reason = "not sent"
        status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            try:
                self.requests_made += 1
                post(
                    self._write_key,
                    host=self.host,
                    gzip=True,
                    timeout=self.timeout,
                    retry_count=attempt - 1,
                    batch=body,
                )
                return BatchOutcome(ids, sent=True, attempts=attempt, status=200)
            except APIError as error:
                status = int(error.status)
                reason = f"the Tracking API answered {status}: {error.message}"[:500]
                if status in (401, 403):
                    raise TrackingApiError(
                        f"the Tracking API at {self.host} refused the write key ({status}); "
                        "check the variable the config's connections.write_key_env names"
                    ) from None
                if status == 429:
                    wait = parse_retry_after(error.response) if error.response is not None else None
                elif status < 500:
                    return BatchOutcome(
                        ids, sent=False, attempts=attempt, status=status, reason=reason
                    )
            except requests.RequestException as error:
                status = None
                reason = f"no answer from the Tracking API: {type(error).__name__}: {error}"[:500]
            if attempt < self.max_attempts:
                delay = wait if wait is not None else self._backoff(attempt)
                log.info(
                    "Tracking API batch of %d: %s; retry %d in %.2fs",
                    len(batch),
                    reason,
                    attempt,
                    delay,
                )
                self._sleep(delay)
        return BatchOutcome(
            ids,
            sent=False,
            attempts=self.max_attempts,
            status=status,
            reason=f"{reason} (after {self.max_attempts} attempts)",
        )

    def _backoff(self, attempt: int) -> float:
        """Full jitter over a capped exponential: uniform in [0, min(cap, base * 2**(attempt-1)))."""
        return self._jitter() * min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))


def pack(messages: Iterable[Outgoing]) -> Iterator[list[Outgoing]]:
    """Group messages into requests of at most 2,500 messages and MAX_BATCH_BYTES of JSON."""
    batch: list[Outgoing] = []
    size = 0
    for item in messages:
        if item.size > MAX_MESSAGE_BYTES:
            raise ValueError(
                f"message {item.message_id} is {item.size:,} bytes; the Tracking API takes at "
                f"most {MAX_MESSAGE_BYTES:,} (reject it before sending)"
            )
        # Each message adds its JSON and a ", " to the request body.
        if batch and (len(batch) >= MAX_BATCH_MESSAGES or size + item.size + 2 > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item.size + 2
    if batch:
        yield batch
