"""Contract of `acoustic_pipelines.connections.sync`: a warehouse model synced through the Tracking
API sandbox (HTTP on 127.0.0.1, which writes the archive), with its ledger in SQLite or in a real
PostgreSQL server:

- The first sync sends every row as added; an unchanged re-sync sends nothing; updates and
  deletes reach the mappings that send them; `reset` sends everything again, with new ids.
- Every committed move of a record is sent under new message ids: a row that returns to an
  earlier state (A → B → A) is sent again, so is a key deleted then added again (and deleted
  again); a run killed while sending such moves, then re-run, still sends nothing twice.
- A lost answer, then a re-run: the record is stored once at the sandbox and settled.
- A run killed mid-sync, then re-run: nothing is sent twice, nothing is lost.
- Failed records are retried on later syncs, then given up after `retry_days` with their reason;
  records Segment refuses are recorded as rejected with Segment's reason; a dry run sends and
  records nothing.
- PostgreSQL as the warehouse (and the ledger), end to end, never skipped.
- The snapshot file a sync leaves is read by the next only while it is the committed snapshot:
  another machine's sync in between, or a run killed after its last commit, makes the next sync
  read the database; a dry run writes none, a reset drops them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from acoustic_pipelines.config.connections import ConnectionModelConfig
from acoustic_pipelines.connections.ledger import SyncLedger
from acoustic_pipelines.connections.sender import BatchOutcome, Outgoing, TrackingApiSender
from acoustic_pipelines.connections.sync import SyncReport, sync_model
from acoustic_pipelines.connections.warehouse import read_model
from acoustic_pipelines.database import open_database
from acoustic_pipelines.sandbox.connect.faults import Fault
from acoustic_pipelines.sandbox.tracking_api import TrackingApiSandbox
from tests.connections.models import parse_model
from tests.connections.tracking import WRITE_KEY, sender_for
from tests.postgres import ENGINES, ledger_location, new_database, postgres_url  # noqa: F401

NOW = 1_795_132_800.0  # 2026-11-20T00:00:00Z
DAY = 86_400
MODEL = {
    "name": "customers",
    "table": "customers",
    "primary_key": "id",
    "mappings": [
        {
            "name": "Customer Traits",
            "send": "added_or_updated",
            "action": "sendIdentify",
            "mapping": {
                "user_id": {"@path": "$.properties.email"},
                "traits": {"@path": "$.properties"},
            },
        },
        {
            "name": "Customer Deleted",
            "send": "deleted",
            "action": "sendTrack",
            "mapping": {"user_id": {"@path": "$.properties.id"}, "event_name": "Customer Deleted"},
        },
    ],
}


def model_config() -> ConnectionModelConfig:
    return parse_model(MODEL)


class Warehouse:
    """A DuckDB warehouse file holding `customers`."""

    def __init__(self, path: Path, rows: int = 10) -> None:
        self.location = str(path)
        self.run(
            "CREATE TABLE customers AS SELECT range AS id, 'u' || range || '@example.com' AS email, "
            f"'pro' AS plan FROM range({rows})"
        )

    def run(self, sql: str) -> None:
        with duckdb.connect(self.location) as con:
            con.execute(sql)


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "warehouse.duckdb")


@pytest.fixture
def ledger(tmp_path: Path) -> SyncLedger:
    return SyncLedger(open_database(tmp_path / "ledger.sqlite", name="connections"))


@pytest.fixture(params=ENGINES)
def any_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> SyncLedger:
    """A new ledger in SQLite, then in the real PostgreSQL server."""
    location = ledger_location(request.param, request, tmp_path)
    return SyncLedger(open_database(location, name="connections"))


def sync(
    location: str,
    ledger: SyncLedger,
    sender: TrackingApiSender | None,
    *,
    now: float = NOW,
    **options: Any,
) -> SyncReport:
    model = model_config()
    return sync_model(
        model,
        read_model(location, model.sql),
        ledger=ledger,
        sender=sender,
        retry_days=14,
        now=now,
        **options,
    )


def stored_ids(sandbox: TrackingApiSandbox) -> Counter[str]:
    return Counter(m["messageId"] for m in sandbox.messages())


def test_first_sync_then_changes_then_reset(
    warehouse: Warehouse, ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    sender = sender_for(sandbox)
    first = sync(warehouse.location, ledger, sender)
    assert (first.changes.added, first.mappings["Customer Traits"].sent, first.requests) == (
        10,
        10,
        1,
    )
    assert ledger.snapshot_size("customers") == 10
    identify = next(m for m in sandbox.messages() if m["userId"] == "u3@example.com")
    assert identify["type"] == "identify"
    assert identify["traits"] == {"id": 3, "email": "u3@example.com", "plan": "pro"}

    again = sync(warehouse.location, ledger, sender)
    assert (again.changes.unchanged, again.requests) == (10, 0)

    warehouse.run("UPDATE customers SET plan = 'max' WHERE id IN (1, 2)")
    warehouse.run("DELETE FROM customers WHERE id = 9")
    changed = sync(warehouse.location, ledger, sender)
    assert (changed.changes.updated, changed.changes.deleted) == (2, 1)
    assert changed.mappings["Customer Traits"].sent == 2
    assert changed.mappings["Customer Deleted"].sent == 1
    deleted = next(m for m in sandbox.messages() if m["type"] == "track")
    assert (deleted["userId"], deleted["event"]) == ("9", "Customer Deleted")
    assert ledger.snapshot_size("customers") == 9

    reset = sync(warehouse.location, ledger, sender, reset=True)
    assert (reset.generation, reset.changes.added, reset.mappings["Customer Traits"].sent) == (
        1,
        9,
        9,
    )
    counts = stored_ids(sandbox)
    assert len(counts) == 10 + 2 + 1 + 9 and set(counts.values()) == {1}


def test_a_lost_answer_then_a_rerun_stores_once(
    warehouse: Warehouse, ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    sandbox.lose_answers(1)
    lost = sync(warehouse.location, ledger, sender_for(sandbox, max_attempts=1))
    assert lost.mappings["Customer Traits"].failed == 10
    assert ledger.snapshot_size("customers") == 0  # nothing recorded as sent: nothing moved
    assert len(stored_ids(sandbox)) == 10  # yet the sandbox kept the request
    rerun = sync(warehouse.location, ledger, sender_for(sandbox))
    assert rerun.mappings["Customer Traits"].sent == 10
    assert sandbox.counts["duplicates"] == 10
    assert set(stored_ids(sandbox).values()) == {1} and len(stored_ids(sandbox)) == 10
    assert ledger.snapshot_size("customers") == 10


def plans_of(sandbox: TrackingApiSandbox, user: str) -> list[str]:
    """The plans the sandbox stored for one user's identify calls, in the order it took them."""
    return [
        m["traits"]["plan"]
        for m in sandbox.messages()
        if m["type"] == "identify" and m["userId"] == user
    ]


def test_a_row_that_returns_to_an_earlier_state_is_sent_each_time(
    warehouse: Warehouse, any_ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    sender = sender_for(sandbox)
    sync(warehouse.location, any_ledger, sender)
    for plan in ("max", "pro", "max"):
        warehouse.run(f"UPDATE customers SET plan = '{plan}' WHERE id = 1")
        moved = sync(warehouse.location, any_ledger, sender)
        assert moved.changes.updated == 1
        assert (moved.mappings["Customer Traits"].sent, moved.requests) == (1, 1)
        assert moved.mappings["Customer Traits"].already_settled == 0
    assert plans_of(sandbox, "u1@example.com") == ["pro", "max", "pro", "max"]
    counts = stored_ids(sandbox)
    assert len(counts) == 10 + 3 and set(counts.values()) == {1}
    assert sync(warehouse.location, any_ledger, sender).requests == 0


def test_a_key_deleted_then_added_again_is_sent_again(
    warehouse: Warehouse, any_ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    sender = sender_for(sandbox)
    sync(warehouse.location, any_ledger, sender)
    for _ in range(2):
        warehouse.run("DELETE FROM customers WHERE id = 9")
        gone = sync(warehouse.location, any_ledger, sender)
        assert (gone.changes.deleted, gone.mappings["Customer Deleted"].sent) == (1, 1)
        assert any_ledger.snapshot_size("customers") == 9
        warehouse.run("INSERT INTO customers VALUES (9, 'u9@example.com', 'pro')")
        back = sync(warehouse.location, any_ledger, sender)
        assert (back.changes.added, back.mappings["Customer Traits"].sent) == (1, 1)
        assert any_ledger.snapshot_size("customers") == 10
    assert plans_of(sandbox, "u9@example.com") == ["pro"] * 3
    deletions = [m for m in sandbox.messages() if m["type"] == "track"]
    assert [m["userId"] for m in deletions] == ["9", "9"]
    counts = stored_ids(sandbox)
    assert len(counts) == 10 + 4 and set(counts.values()) == {1}
    again = sync(warehouse.location, any_ledger, sender)
    assert (again.changes.unchanged, again.changes.deleted, again.requests) == (10, 0, 0)


class KilledAfter(TrackingApiSender):
    """A sender whose process dies right after its n-th request went through."""

    def __init__(self, requests: int, **options: Any) -> None:
        super().__init__(**options)
        self.left = requests

    def send_batch(self, batch: list[Outgoing]) -> BatchOutcome:
        outcome = super().send_batch(batch)
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt("killed mid-sync")
        return outcome


def test_a_run_killed_mid_sync_then_rerun(
    warehouse: Warehouse, ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    killed = KilledAfter(3, endpoint=sandbox.endpoint, write_key=WRITE_KEY, sleep=lambda _: None)
    with pytest.raises(KeyboardInterrupt):
        sync(warehouse.location, ledger, killed, page_rows=3)
    assert len(stored_ids(sandbox)) == 9  # three requests of 3 made it, the third unrecorded
    settled = ledger.snapshot_size("customers")
    assert settled == 6
    rerun_sender = sender_for(sandbox)
    rerun = sync(warehouse.location, ledger, rerun_sender, page_rows=3)
    assert (rerun.changes.unchanged, rerun.changes.added) == (6, 4)  # settled: not sent again
    assert rerun.mappings["Customer Traits"].sent == 4  # 3 resent (deduped) + 1 never sent
    assert sandbox.counts["duplicates"] == 3
    counts = stored_ids(sandbox)
    assert len(counts) == 10 and set(counts.values()) == {1}
    assert ledger.snapshot_size("customers") == 10


def test_reverts_killed_mid_sync_then_rerun_are_sent_once(
    warehouse: Warehouse, any_ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    sync(warehouse.location, any_ledger, sender_for(sandbox))
    warehouse.run("UPDATE customers SET plan = 'max'")
    sync(warehouse.location, any_ledger, sender_for(sandbox))
    warehouse.run("UPDATE customers SET plan = 'pro'")  # every row back to its first state
    killed = KilledAfter(2, endpoint=sandbox.endpoint, write_key=WRITE_KEY, sleep=lambda _: None)
    with pytest.raises(KeyboardInterrupt):
        sync(warehouse.location, any_ledger, killed, page_rows=3)
    assert any_ledger.snapshot_size("customers") == 10
    rerun = sync(warehouse.location, any_ledger, sender_for(sandbox), page_rows=3)
    assert (rerun.changes.updated, rerun.changes.unchanged) == (7, 3)
    assert rerun.mappings["Customer Traits"].sent == 7  # 3 resent (deduped) + 4 never sent
    assert sandbox.counts["duplicates"] == 3
    counts = stored_ids(sandbox)
    assert len(counts) == 30 and set(counts.values()) == {1}
    assert all(plans_of(sandbox, f"u{i}@example.com") == ["pro", "max", "pro"] for i in range(10))


def test_failures_are_retried_then_given_up(
    warehouse: Warehouse, ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    warehouse.run("DELETE FROM customers WHERE id > 0")
    sandbox.inject(Fault("503", count=100))
    sender = sender_for(sandbox, max_attempts=2)
    first = sync(warehouse.location, ledger, sender)
    assert (first.mappings["Customer Traits"].failed, first.requests) == (1, 2)
    later = sync(warehouse.location, ledger, sender, now=NOW + 13 * DAY)
    assert (later.mappings["Customer Traits"].failed, later.requests) == (1, 2)
    assert ledger.snapshot_size("customers") == 0
    given_up = sync(warehouse.location, ledger, sender, now=NOW + 15 * DAY)
    assert (given_up.mappings["Customer Traits"].given_up, given_up.requests) == (1, 0)
    (record,) = ledger.sends("customers")
    assert record.outcome == "given_up" and record.attempts == 4
    assert record.first_failure_at == int(NOW)
    assert "more than 14 days" in (record.reason or "") and "503" in (record.reason or "")
    assert ledger.snapshot_size("customers") == 1


def test_rejected_records_and_a_dry_run(
    warehouse: Warehouse, ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    warehouse.run("UPDATE customers SET email = NULL WHERE id = 4")
    dry = sync(warehouse.location, ledger, None, dry_run=True)
    assert (
        dry.mappings["Customer Traits"].would_send,
        dry.mappings["Customer Traits"].rejected,
    ) == (9, 1)
    assert len(dry.samples["Customer Traits"]) == 3
    assert sandbox.messages() == [] and ledger.sends("customers") == []
    assert ledger.snapshot_size("customers") == 0
    assert ledger.snapshot_token("customers", create=False) == ""
    assert not ledger.snapshot_cache.exists()

    real = sync(warehouse.location, ledger, sender_for(sandbox))
    assert (real.mappings["Customer Traits"].sent, real.mappings["Customer Traits"].rejected) == (
        9,
        1,
    )
    (rejected,) = ledger.sends("customers", outcomes=["rejected"])
    assert rejected.record_key == "4"
    assert "Either `Anonymous ID` or `User ID` must be defined." in (rejected.reason or "")
    assert (
        ledger.snapshot_size("customers") == 10
    )  # a refusal is settled; retried if the row changes


def test_postgres_warehouse_and_ledger_end_to_end(
    postgres_url: str,  # noqa: F811 (fixture)
    sandbox: TrackingApiSandbox,
) -> None:
    import psycopg

    warehouse = new_database(postgres_url, "retl_warehouse")
    with psycopg.connect(warehouse, autocommit=True) as con:
        con.execute(
            "CREATE TABLE customers (id bigint PRIMARY KEY, email text, plan text, "
            "ltv numeric(10, 2), signed_up timestamptz, attrs jsonb)"
        )
        con.execute(
            "INSERT INTO customers SELECT g, 'u' || g || '@example.com', 'pro', g * 1.5, "
            "'2026-11-01T10:00:00Z', jsonb_build_object('tier', g) FROM generate_series(1, 2500) g"
        )
    ledger = SyncLedger(
        open_database(new_database(postgres_url, "retl_ledger"), name="connections")
    )
    sender = sender_for(sandbox)
    first = sync(warehouse, ledger, sender)
    assert (first.changes.added, first.mappings["Customer Traits"].sent) == (2500, 2500)
    traits = next(m["traits"] for m in sandbox.messages() if m["userId"] == "u2@example.com")
    assert traits == {
        "id": 2,
        "email": "u2@example.com",
        "plan": "pro",
        "ltv": 3.0,
        "signed_up": "2026-11-01 10:00:00+00",
        "attrs": '{"tier":2}',
    }
    with psycopg.connect(warehouse, autocommit=True) as con:
        con.execute("UPDATE customers SET plan = 'max' WHERE id <= 10")
        con.execute("DELETE FROM customers WHERE id = 2500")
    second = sync(warehouse, ledger, sender)
    assert (second.changes.updated, second.changes.deleted, second.changes.unchanged) == (
        10,
        1,
        2489,
    )
    assert ledger.snapshot_size("customers") == 2499
    counts = stored_ids(sandbox)
    assert len(counts) == 2500 + 10 + 1 and set(counts.values()) == {1}


class DiesBeforeAdvancing(SyncLedger):
    """A ledger whose process dies after recording the sends, before moving the snapshot."""

    def record(self, sends: Any, *, advance: Any = (), now: float | None = None) -> None:
        advance = list(advance)
        if advance:
            raise KeyboardInterrupt("killed before the snapshot moved")
        super().record(sends, advance=advance, now=now)


def test_killed_after_recording_before_the_snapshot_moved(
    warehouse: Warehouse, ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    with pytest.raises(KeyboardInterrupt):
        sync(warehouse.location, DiesBeforeAdvancing(ledger.database), sender_for(sandbox))
    assert ledger.snapshot_size("customers") == 0 and len(stored_ids(sandbox)) == 10
    rerun = sync(warehouse.location, ledger, sender_for(sandbox))
    assert rerun.changes.added == 10
    assert (rerun.mappings["Customer Traits"].already_settled, rerun.requests) == (10, 0)
    assert ledger.snapshot_size("customers") == 10


def snapshot_files(ledger: SyncLedger) -> list[str]:
    return sorted(p.name for p in ledger.snapshot_cache.glob("*.parquet"))


def test_another_machines_sync_makes_the_snapshot_file_stale(
    warehouse: Warehouse, tmp_path: Path, sandbox: TrackingApiSandbox
) -> None:
    database = open_database(tmp_path / "shared.sqlite", name="connections")
    here = SyncLedger(database, snapshot_cache=tmp_path / "here")
    there = SyncLedger(database, snapshot_cache=tmp_path / "there")
    assert sync(warehouse.location, here, sender_for(sandbox)).changes.added == 10
    (first_file,) = snapshot_files(here)
    assert first_file.endswith(f".{here.snapshot_token('customers')}.parquet")

    warehouse.run("UPDATE customers SET plan = 'max' WHERE id IN (1, 2)")
    elsewhere = sync(warehouse.location, there, sender_for(sandbox))
    assert elsewhere.changes.updated == 2 and snapshot_files(here) == [first_file]

    warehouse.run("UPDATE customers SET plan = 'max' WHERE id = 3")
    back_here = sync(warehouse.location, here, sender_for(sandbox))
    assert (back_here.changes.updated, back_here.changes.unchanged) == (1, 9)
    assert back_here.mappings["Customer Traits"].sent == 1
    counts = stored_ids(sandbox)
    assert len(counts) == 10 + 2 + 1 and set(counts.values()) == {1}
    assert snapshot_files(here) == [
        f"{first_file.split('.')[0]}.{here.snapshot_token('customers')}.parquet"
    ]


class DiesBeforeTheSnapshotFile(SyncLedger):
    """A ledger whose process dies after the sync's last commit, before its snapshot file."""

    looked_up = 0

    def snapshot_file(self, model: str, token: str) -> Path:
        self.looked_up += 1
        if self.looked_up == 2:  # the first is the sync's look for a file to read
            raise KeyboardInterrupt("killed before the snapshot file was written")
        return super().snapshot_file(model, token)


def test_killed_before_the_snapshot_file_then_rerun(
    warehouse: Warehouse, ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    sync(warehouse.location, ledger, sender_for(sandbox))
    (stale,) = snapshot_files(ledger)
    warehouse.run("UPDATE customers SET plan = 'max' WHERE id IN (1, 2)")
    with pytest.raises(KeyboardInterrupt):
        sync(
            warehouse.location,
            DiesBeforeTheSnapshotFile(ledger.database, snapshot_cache=ledger.snapshot_cache),
            sender_for(sandbox),
        )
    assert snapshot_files(ledger) == [stale] and ledger.snapshot_size("customers") == 10
    warehouse.run("DELETE FROM customers WHERE id = 9")
    rerun = sync(warehouse.location, ledger, sender_for(sandbox))
    assert (rerun.changes.updated, rerun.changes.deleted, rerun.changes.unchanged) == (0, 1, 9)
    assert rerun.requests == 1  # the deletion alone
    counts = stored_ids(sandbox)
    assert len(counts) == 10 + 2 + 1 and set(counts.values()) == {1}
    assert snapshot_files(ledger) != [stale] and len(snapshot_files(ledger)) == 1

    reset = sync(warehouse.location, ledger, sender_for(sandbox), reset=True)
    assert reset.changes.added == 9 and len(snapshot_files(ledger)) == 1
