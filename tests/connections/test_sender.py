"""Contract of `acoustic_pipelines.connections.sender`, against the Tracking API sandbox over HTTP:

- A batch is posted to /v1/batch with Basic auth (the write key, empty password) and gzip.
- Network errors, 429 and 5xx are retried with capped exponential backoff and full jitter, a 429
  waiting exactly its Retry-After; a 400 is never retried; each case with exact request counts.
- Requests hold at most 2,500 messages and under 500 KB; a message over 32 KB is never packed.
- A refused write key (401) stops the sync with an error naming the variable, not the key.
"""

from __future__ import annotations

from typing import Any

import pytest

from acoustic_pipelines.connections.sender import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    BatchOutcome,
    Outgoing,
    TrackingApiError,
    TrackingApiSender,
    message_size,
    pack,
)
from acoustic_pipelines.sandbox.connect.faults import Fault
from acoustic_pipelines.sandbox.tracking_api import TrackingApiSandbox
from tests.connections.tracking import WRITE_KEY


def outgoing(message_id: str, **properties: Any) -> Outgoing:
    message = {
        "type": "track",
        "event": "E",
        "userId": "u",
        "messageId": message_id,
        "properties": properties,
    }
    return Outgoing(message_id, message, message_size(message))


def sender_for(
    sandbox: TrackingApiSandbox, waits: list[float], **options: Any
) -> TrackingApiSender:
    return TrackingApiSender(
        endpoint=sandbox.endpoint,
        write_key=WRITE_KEY,
        sleep=waits.append,
        jitter=lambda: 0.5,
        timeout=5,
        **options,
    )


def test_accepted_batch(sandbox: TrackingApiSandbox) -> None:
    waits: list[float] = []
    outcome = sender_for(sandbox, waits).send_batch([outgoing("a"), outgoing("b")])
    assert outcome == BatchOutcome(("a", "b"), sent=True, attempts=1, status=200)
    assert [m["messageId"] for m in sandbox.messages()] == ["a", "b"]
    assert waits == [] and sandbox.counts["200"] == 1


def test_5xx_and_dropped_connections_are_retried_with_capped_backoff(
    sandbox: TrackingApiSandbox,
) -> None:
    sandbox.inject(Fault("503", count=2))
    sandbox.inject(Fault("drop", count=2))
    waits: list[float] = []
    sender = sender_for(sandbox, waits, backoff_base=1.0, backoff_cap=3.0)
    outcome = sender.send_batch([outgoing("a")])
    assert (outcome.sent, outcome.attempts, sender.requests_made) == (True, 5, 5)
    # jitter 0.5 of min(cap 3, 1 * 2**n): 0.5, 1, 1.5 (capped), 1.5
    assert waits == [0.5, 1.0, 1.5, 1.5]
    assert (sandbox.counts["503"], sandbox.counts["dropped"], sandbox.counts["200"]) == (2, 2, 1)
    assert len(sandbox.messages()) == 1


def test_429_waits_what_retry_after_says(sandbox: TrackingApiSandbox) -> None:
    sandbox.inject(Fault("429", count=2, retry_after=4))
    waits: list[float] = []
    sender = sender_for(sandbox, waits)
    outcome = sender.send_batch([outgoing("a")])
    assert (outcome.sent, outcome.attempts, waits) == (True, 3, [4, 4])


def test_gives_up_after_max_attempts_with_the_last_reason(sandbox: TrackingApiSandbox) -> None:
    sandbox.inject(Fault("503", count=10))
    waits: list[float] = []
    sender = sender_for(sandbox, waits, max_attempts=3)
    outcome = sender.send_batch([outgoing("a")])
    assert (outcome.sent, outcome.attempts, outcome.status, sender.requests_made) == (
        False,
        3,
        503,
        3,
    )
    assert "503" in (outcome.reason or "") and "after 3 attempts" in (outcome.reason or "")
    assert len(waits) == 2 and sandbox.messages() == []


def test_400_is_never_retried(sandbox: TrackingApiSandbox) -> None:
    waits: list[float] = []
    sender = sender_for(sandbox, waits)
    big = outgoing("big", text="x" * 40_000)  # bypasses pack(): the sandbox refuses it
    outcome = sender.send_batch([big])
    assert (outcome.sent, outcome.attempts, outcome.status, sender.requests_made) == (
        False,
        1,
        400,
        1,
    )
    assert waits == [] and sandbox.counts["400"] == 1


def test_a_refused_write_key_stops_without_showing_it(sandbox: TrackingApiSandbox) -> None:
    sender = TrackingApiSender(
        endpoint=sandbox.endpoint, write_key="wrong-key", sleep=lambda s: None
    )
    with pytest.raises(TrackingApiError, match="write_key_env") as refused:
        sender.send_batch([outgoing("a")])
    assert "wrong-key" not in str(refused.value) and "wrong-key" not in repr(sender)


def test_packing_limits() -> None:
    many = [outgoing(f"m{i}") for i in range(MAX_BATCH_MESSAGES * 2 + 1)]
    assert [len(b) for b in pack(many)] == [MAX_BATCH_MESSAGES, MAX_BATCH_MESSAGES, 1]
    large = [outgoing(f"l{i}", text="x" * 30_000) for i in range(40)]
    batches = list(pack(large))
    assert sum(len(b) for b in batches) == 40 and len(batches) > 1
    for batch in batches:
        assert sum(item.size + 2 for item in batch) <= MAX_BATCH_BYTES
    with pytest.raises(ValueError, match="at most 32,768"):
        list(pack([outgoing("huge", text="x" * 40_000)]))


def test_a_full_request_is_accepted_by_the_api(sandbox: TrackingApiSandbox) -> None:
    items = [
        outgoing(f"l{i}", text="é" * 4_000) for i in range(60)
    ]  # non-ASCII: escaped on the wire
    outcomes: list[BatchOutcome] = []
    sender_for(sandbox, []).send(items, on_batch=outcomes.append)
    assert all(o.sent for o in outcomes) and len(outcomes) > 1
    assert len(sandbox.messages()) == 60
