"""Contract of `connections/sync_lease.py`: one sync of a model at a time through a lease in the
ledger database itself (SQLite here), and a sync that lost its lease sends nothing more — checked
against the Tracking API sandbox on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from acoustic_pipelines.connections.ledger import SyncLedger
from acoustic_pipelines.connections.sender import Outgoing, message_size
from acoustic_pipelines.connections.sync_lease import LeasedSender, hold_sync_lease, sync_lease_name
from acoustic_pipelines.database import open_database
from acoustic_pipelines.leases import DatabaseLeaseStore, LeaseHeld, LeaseLost
from acoustic_pipelines.sandbox.tracking_api import serve_tracking_api

WRITE_KEY = "wk_lease_test"


def _outgoing(message_id: str) -> list[Outgoing]:
    message = {"type": "identify", "userId": "u1", "messageId": message_id, "traits": {}}
    return [Outgoing(message_id, message, message_size(message))]


def test_a_second_sync_of_the_model_waits_then_fails_naming_the_first(tmp_path: Path) -> None:
    ledger = SyncLedger(open_database(tmp_path / "ledger.sqlite", name="segment_connections"))
    with hold_sync_lease(ledger, "customers", label="run A"):
        with (
            pytest.raises(LeaseHeld, match="run A"),
            hold_sync_lease(ledger, "customers", label="run B", wait_seconds=0.3),
        ):
            pass
        with hold_sync_lease(ledger, "orders", label="run C", wait_seconds=0.3):
            pass  # another model's sync runs meanwhile
    with hold_sync_lease(ledger, "customers", label="run B", wait_seconds=0.3):
        pass  # free again


def test_a_sync_that_lost_its_lease_stops_sending(tmp_path: Path) -> None:
    ledger = SyncLedger(open_database(tmp_path / "ledger.sqlite", name="segment_connections"))
    with serve_tracking_api(archive=tmp_path / "archive", write_key=WRITE_KEY) as sandbox:
        with hold_sync_lease(ledger, "customers", label="run A") as lease:
            sender = LeasedSender(
                lease, endpoint=sandbox.endpoint, write_key=WRITE_KEY, sleep=lambda _: None
            )
            assert sender.send_batch(_outgoing("m-1")).sent
            # Another run takes the lease over (as after this one's expiry).
            DatabaseLeaseStore(ledger.database).release(
                sync_lease_name("customers"), lease.record.token
            )
            with hold_sync_lease(ledger, "customers", label="run B"), pytest.raises(LeaseLost):
                sender.send_batch(_outgoing("m-2"))
        assert [m["messageId"] for m in sandbox.messages()] == ["m-1"]
