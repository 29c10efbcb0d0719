"""Contract of `sync_model(on_rejected=...)` (`connections/rejected.py`): every record a sync did
not deliver reaches the sink with its reason, mapping, change and row — beyond the first rows the
report keeps — against a real DuckDB warehouse and the Tracking API sandbox on 127.0.0.1:

- rows the diff refuses (null key, duplicated key) with the row as JSON and no mapping;
- messages Segment refuses (no user id), with the mapping, the change and the row;
- failed sends (503s), then the same records given up after `retry_days`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from acoustic_pipelines.config.connections import ConnectionModelConfig
from acoustic_pipelines.connections.ledger import SyncLedger
from acoustic_pipelines.connections.rejected import RejectedRecord
from acoustic_pipelines.connections.sender import TrackingApiSender
from acoustic_pipelines.connections.sync import SyncReport, sync_model
from acoustic_pipelines.connections.warehouse import read_model
from acoustic_pipelines.database import open_database
from acoustic_pipelines.sandbox.connect.faults import Fault
from acoustic_pipelines.sandbox.tracking_api import TrackingApiSandbox
from tests.connections.models import parse_model
from tests.connections.tracking import WRITE_KEY

NOW = 1_795_132_800.0
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
            "mapping": {"user_id": {"@path": "$.properties.email"}},
        }
    ],
}


def model_config() -> ConnectionModelConfig:
    return parse_model(MODEL)


@pytest.fixture
def warehouse(tmp_path: Path) -> str:
    location = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(location) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT range AS id, "
            "CASE WHEN range % 100 = 7 THEN NULL ELSE 'u' || range || '@example.com' END AS email "
            "FROM range(1200)"
        )
        con.execute("INSERT INTO customers VALUES (NULL, 'nokey@example.com'), (3, 'again@x.io')")
    return location


@pytest.fixture
def ledger(tmp_path: Path) -> SyncLedger:
    return SyncLedger(open_database(tmp_path / "ledger.sqlite", name="connections"))


def sync(
    location: str, ledger: SyncLedger, sandbox: TrackingApiSandbox, **options: Any
) -> tuple[SyncReport, list[RejectedRecord]]:
    """One sync; what the sink received."""
    received: list[RejectedRecord] = []
    model = model_config()
    sender = TrackingApiSender(
        endpoint=sandbox.endpoint, write_key=WRITE_KEY, sleep=lambda _: None, max_attempts=1
    )
    report = sync_model(
        model,
        read_model(location, model.sql),
        ledger=ledger,
        sender=sender,
        retry_days=14,
        page_rows=250,
        max_rejections_kept=1,
        on_rejected=received.extend,
        **{"now": NOW, **options},
    )
    return report, received


def test_every_rejected_record_reaches_the_sink_with_its_reason(
    warehouse: str, ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    report, received = sync(warehouse, ledger, sandbox)
    assert len(report.rejections) == 1  # the report keeps one; the sink gets them all
    by_diff = [r for r in received if r.mapping is None]
    assert report.changes.rejected == len(by_diff) == 3
    assert sorted((r.record_key or "", r.reason) for r in by_diff) == [
        ("", "the primary key is null"),
        ("3", "the primary key 3 is not unique: 2 rows have it"),
        ("3", "the primary key 3 is not unique: 2 rows have it"),
    ]
    assert {orjson.loads(r.row or "")["email"] for r in by_diff} == {
        "nokey@example.com",
        "u3@example.com",
        "again@x.io",
    }
    refused = [r for r in received if r.mapping is not None]
    assert report.mappings["Customer Traits"].rejected == len(refused) == 12
    assert {r.record_key for r in refused} == {str(n) for n in range(7, 1200, 100)}
    for record in refused:
        assert (record.outcome, record.change, record.mapping) == (
            "rejected",
            "added",
            "Customer Traits",
        )
        assert "Either `Anonymous ID` or `User ID` must be defined." in record.reason
        assert orjson.loads(record.row or "") == {"id": int(record.record_key or ""), "email": None}
        assert record.message_id and record.message_id.startswith("retl-")


def test_failed_then_given_up_sends_reach_the_sink(
    warehouse: str, ledger: SyncLedger, sandbox: TrackingApiSandbox
) -> None:
    sandbox.inject(Fault("503", count=1))
    first, received = sync(warehouse, ledger, sandbox)
    failed = [r for r in received if r.outcome == "failed"]
    sent = first.mappings["Customer Traits"].sent
    assert len(failed) == first.mappings["Customer Traits"].failed > 0
    assert len(failed) + sent + 12 == 1202 - 3  # every keyed, unique record is accounted for
    assert all("503" in r.reason and r.change == "added" for r in failed)
    sandbox.inject(Fault("503", count=100))
    _, later = sync(warehouse, ledger, sandbox, now=NOW + 15 * DAY)
    given_up = [r for r in later if r.outcome == "given_up"]
    assert sorted(r.record_key or "" for r in given_up) == sorted(
        r.record_key or "" for r in failed
    )
    assert all("more than 14 days" in r.reason for r in given_up)
