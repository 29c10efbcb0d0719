"""Contract of `acoustic_pipelines.connections.ledger`, in SQLite and in a real PostgreSQL server:

- A ledger written by earlier code keeps working. The earlier layouts: `connections_snapshot`
  without `version` (and, briefly, with it), every message ever sent in `connections_sends`
  keyed by message ids derived from (model, key, checksum, mapping, generation), a snapshot file
  without versions. Opening one migrates it: the sends it left unsettled keep their ids, so a
  send whose answer was lost is deduplicated by Segment and one recorded as sent before the run
  died is not sent again; sends of committed moves are dropped; a row that then returns to an
  earlier state is sent again.
- The ledger keeps only what a re-run needs: once a record's move is committed its sent
  messages are forgotten; failures and refusals stay until the record's next move.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from acoustic_pipelines.connections.changes import detect_changes
from acoustic_pipelines.connections.ledger import SyncLedger
from acoustic_pipelines.connections.sender import Outgoing, TrackingApiSender, message_size
from acoustic_pipelines.connections.sync import sync_model
from acoustic_pipelines.connections.warehouse import read_model
from acoustic_pipelines.database import open_database
from acoustic_pipelines.sandbox.connect.faults import Fault
from acoustic_pipelines.sandbox.tracking_api import TrackingApiSandbox
from tests.connections.models import parse_model
from tests.connections.test_sync import MODEL
from tests.connections.tracking import sender_for
from tests.postgres import ENGINES, ledger_location, postgres_url  # noqa: F401 (fixture)

NOW = 1_795_132_800.0
DAY = 86_400
TRAITS = "Customer Traits"

#: The ledger layout before record versions, as the earlier code created it.
EARLIER_SCHEMA = """
CREATE TABLE connections_models (model TEXT PRIMARY KEY, generation BIGINT NOT NULL);
CREATE TABLE connections_snapshot (
    model TEXT NOT NULL, record_key TEXT NOT NULL, checksum TEXT NOT NULL,{version}
    PRIMARY KEY (model, record_key)
);
CREATE TABLE connections_sends (
    message_id TEXT PRIMARY KEY, model TEXT NOT NULL, record_key TEXT NOT NULL,
    mapping TEXT NOT NULL, change TEXT NOT NULL, checksum TEXT NOT NULL, outcome TEXT NOT NULL,
    reason TEXT, attempts BIGINT NOT NULL, first_failure_at BIGINT, updated_at BIGINT NOT NULL
);
CREATE INDEX connections_sends_by_model ON connections_sends (model, outcome);
CREATE TABLE connections_snapshot_tokens (model TEXT PRIMARY KEY, token TEXT NOT NULL)
"""


def earlier_message_id(key: str, checksum: str, mapping: str) -> str:
    """The message id the earlier code derived (model customers, generation 0)."""
    text = "\x1f".join(("customers", key, checksum, mapping, "0"))
    return "retl-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def checksums(warehouse: str, tmp_path: Path, snapshot_file: Path | None = None) -> dict[str, str]:
    """Each row's checksum as the diff computes it (optionally writing the settled snapshot)."""
    batches = read_model(warehouse, "SELECT * FROM customers")
    with detect_changes(batches, [], primary_key="id", workdir=tmp_path) as change_set:
        changes = [c for page in change_set.changes() for c in page]
        if snapshot_file is not None:
            change_set.advance([(c.key, c.checksum, 1) for c in changes])
            change_set.write_snapshot(snapshot_file)
    return {c.key: c.checksum for c in changes}


@pytest.mark.parametrize("versions", [False, True], ids=["before-versions", "with-versions"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_ledger_of_an_earlier_layout_keeps_working(
    engine: str,
    versions: bool,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sandbox: TrackingApiSandbox,
) -> None:
    warehouse = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(warehouse) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT range AS id, 'u' || range || '@example.com' "
            "AS email, 'pro' AS plan FROM range(10)"
        )
    snapshot_file = tmp_path / "earlier.parquet"
    before = checksums(warehouse, tmp_path, snapshot_file)
    with duckdb.connect(warehouse) as con:
        con.execute("UPDATE customers SET plan = 'max' WHERE id IN (1, 2)")
    after = checksums(warehouse, tmp_path)

    # What the earlier code left: all ten synced; then records 1 and 2 updated and sent, 1
    # recorded as sent but killed before its snapshot moved, 2's answer lost (recorded failed).
    database = open_database(ledger_location(engine, request, tmp_path), name="connections")
    with database.transaction() as db:
        schema = EARLIER_SCHEMA.format(
            version=" version BIGINT NOT NULL DEFAULT 0," if versions else ""
        )
        for statement in schema.split(";"):
            db.execute(statement)
        db.executemany(
            "INSERT INTO connections_snapshot (model, record_key, checksum) "
            "VALUES ('customers', ?, ?)",
            before.items(),
        )
        sends = [
            (earlier_message_id(k, c, TRAITS), k, "added", c, "sent", None, 1, None)
            for k, c in before.items()
        ]
        sends.append(
            (
                earlier_message_id("1", after["1"], TRAITS),
                "1",
                "updated",
                after["1"],
                "sent",
                None,
                1,
                None,
            )
        )
        sends.append(
            (
                earlier_message_id("2", after["2"], TRAITS),
                "2",
                "updated",
                after["2"],
                "failed",
                "no answer",
                3,
                int(NOW - DAY),
            )
        )
        db.executemany(
            "INSERT INTO connections_sends VALUES (?, 'customers', ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            [
                (mid, k, TRAITS, change, c, outcome, reason, attempts, first)
                for mid, k, change, c, outcome, reason, attempts, first in sends
            ],
        )
        db.execute("INSERT INTO connections_snapshot_tokens VALUES ('customers', 'earlier')")
    ledger = SyncLedger(database, snapshot_cache=tmp_path / "cache")
    migrated = sorted((s.record_key, s.outcome, s.attempts) for s in ledger.sends("customers"))
    assert migrated == [("1", "sent", 1), ("2", "failed", 3)]  # committed sends dropped
    assert not database.columns("connections_sends")
    earlier_file = pq.read_table(snapshot_file).drop_columns(["version"])
    ledger.snapshot_cache.mkdir()
    pq.write_table(earlier_file, ledger.snapshot_file("customers", "earlier"))
    sender = sender_for(sandbox)
    for key in ("1", "2"):  # both reached Segment
        message = {
            "type": "identify",
            "userId": f"u{key}@example.com",
            "messageId": earlier_message_id(key, after[key], TRAITS),
        }
        assert sender.send_batch(
            [Outgoing(message["messageId"], message, message_size(message))]
        ).sent

    model = parse_model(MODEL)

    def sync() -> tuple[int, int, int, int]:
        report = sync_model(
            model,
            read_model(warehouse, model.sql),
            ledger=ledger,
            sender=sender,
            retry_days=14,
            now=NOW,
            workdir=tmp_path,
        )
        counts = report.mappings[TRAITS]
        return report.changes.updated, counts.already_settled, counts.sent, report.requests

    assert sync() == (2, 1, 1, 1)  # 1 settled earlier; 2 resent under its earlier id
    assert sandbox.counts["duplicates"] == 1 and sandbox.counts["messages"] == 2
    assert ledger.sends("customers") == []  # every move committed: nothing left to resend
    assert sync() == (0, 0, 0, 0)
    with duckdb.connect(warehouse) as con:
        con.execute("UPDATE customers SET plan = 'pro' WHERE id IN (1, 2)")
    assert sync() == (2, 0, 2, 1)  # back to the earlier state: sent again
    stored = Counter(m["messageId"] for m in sandbox.messages())
    assert len(stored) == 4 and set(stored.values()) == {1}
    assert ledger.snapshot_size("customers") == 10


@pytest.mark.parametrize("engine", ENGINES)
def test_the_ledger_forgets_the_sent_messages_of_committed_moves(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path, sandbox: TrackingApiSandbox
) -> None:
    warehouse = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(warehouse) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT range AS id, CASE WHEN range = 4 THEN NULL ELSE "
            "'u' || range || '@example.com' END AS email, 'pro' AS plan FROM range(10)"
        )
    location = ledger_location(engine, request, tmp_path)
    ledger = SyncLedger(open_database(location, name="connections"))
    model = parse_model(MODEL)

    def sync(sender: TrackingApiSender, sql: str | None = None) -> list[tuple[str, str]]:
        if sql is not None:
            with duckdb.connect(warehouse) as con:
                con.execute(sql)
        sync_model(
            model,
            read_model(warehouse, model.sql),
            ledger=ledger,
            sender=sender,
            retry_days=14,
            now=NOW,
            workdir=tmp_path,
        )
        return sorted((s.record_key, s.outcome) for s in ledger.sends("customers"))

    assert sync(sender_for(sandbox)) == [("4", "rejected")]  # nine sent, then forgotten
    sandbox.inject(Fault("503", count=1))
    failing = sender_for(sandbox, max_attempts=1)
    changed = "UPDATE customers SET plan = 'max' WHERE id = 5"
    assert sync(failing, changed) == [("4", "rejected"), ("5", "failed")]
    assert sync(sender_for(sandbox)) == [("4", "rejected")]
    fixed = "UPDATE customers SET email = 'u4@example.com' WHERE id = 4"
    assert sync(sender_for(sandbox), fixed) == []
    assert len(sandbox.messages()) == 9 + 1 + 1
