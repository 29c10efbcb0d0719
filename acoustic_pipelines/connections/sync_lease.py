"""One sync of a model at a time, whatever the orchestrator does: a lease in the ledger database.

A sync holds the lease `connections/<model>` (`leases.py`) in the same database as the model's
snapshot and sync ledger, so every machine that shares the ledger sees it. A second sync of the
model waits for it (then fails naming the holder); a holder that died is taken over. The lease
is confirmed before every Tracking API request (`LeasedSender`): a sync that lost it (paused
past its expiry while another took over) stops sending instead of racing the new holder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from acoustic_pipelines.connections.ledger import SyncLedger
from acoustic_pipelines.connections.sender import BatchOutcome, Outgoing, TrackingApiSender
from acoustic_pipelines.leases import (
    DEFAULT_TTL_SECONDS,
    DEFAULT_WAIT_SECONDS,
    DatabaseLeaseStore,
    Lease,
    hold_lease,
)

__all__ = ["LeasedSender", "hold_sync_lease", "sync_lease_name"]


def sync_lease_name(model: str) -> str:
    """The name of a model's sync lease."""
    return f"connections/{model}"


@contextmanager
def hold_sync_lease(
    ledger: SyncLedger,
    model: str,
    *,
    label: str = "",
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> Iterator[Lease]:
    """Hold the model's sync lease for the block (raises `LeaseHeld` after `wait_seconds`)."""
    store = DatabaseLeaseStore(ledger.database)
    with hold_lease(
        store,
        sync_lease_name(model),
        label=label,
        ttl_seconds=ttl_seconds,
        wait_seconds=wait_seconds,
    ) as lease:
        yield lease


class LeasedSender(TrackingApiSender):
    """A Tracking API sender that confirms its sync's lease before every request."""

    def __init__(self, lease: Lease, **options: Any) -> None:
        super().__init__(**options)
        self.lease = lease

    def send_batch(self, batch: list[Outgoing]) -> BatchOutcome:
        """Confirm the lease (raises `LeaseLost`), then send the batch."""
        self.lease.confirm()
        return super().send_batch(batch)
