"""The `connections/<model>` assets: built from the config's models (with a schedule when the model
has one), a materialization is one sync against the Tracking API sandbox whose counts are the
metadata, and `connections/<model>_rejected_records` holds every record it did not deliver (in
the lake, with reasons); a dry run sends and writes nothing; a missing write key fails the run
naming the variable; a sync never overlaps another of the same model (its lease in the ledger
database, whatever the instance's pools)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from acoustic_pipelines.config.loading import load_config
from acoustic_pipelines.connections.ledger import SyncLedger
from acoustic_pipelines.connections.sync_lease import hold_sync_lease
from acoustic_pipelines.database import open_database
from acoustic_pipelines.sandbox.connect.faults import Fault
from acoustic_pipelines.sandbox.tracking_api import TrackingApiSandbox, serve_tracking_api
from assets.connections import build_connections
from resources import LakeResource
from resources.connections import SegmentConnectionsResource
from resources.pipeline_config import PipelineConfigResource

SYNC = "connections__customers"
REJECTED = dg.AssetKey(["connections", "customers_rejected_records"])

WRITE_KEY = "wk_assets_test"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[TrackingApiSandbox]:
    with serve_tracking_api(archive=tmp_path / "archive", write_key=WRITE_KEY) as running:
        yield running


@pytest.fixture
def config_file(
    tmp_path: Path, sandbox: TrackingApiSandbox, monkeypatch: pytest.MonkeyPatch
) -> Path:
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT range AS id, "
            "CASE WHEN range < 6 THEN 'u' || range || '@example.com' END AS email FROM range(7)"
        )
    monkeypatch.setenv("RETL_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("RETL_WRITE_KEY", WRITE_KEY)
    config = {
        "destinations": [],
        "connections": {
            "write_key_env": "RETL_WRITE_KEY",
            "warehouse_env": "RETL_WAREHOUSE",
            "endpoint": sandbox.endpoint,
            "models": [
                {
                    "name": "customers",
                    "table": "customers",
                    "primary_key": "id",
                    "schedule": "0 * * * *",
                    "mappings": [
                        {
                            "name": "Traits",
                            "send": "added_or_updated",
                            "action": "sendIdentify",
                            "mapping": {"user_id": {"@path": "$.properties.email"}},
                        }
                    ],
                },
                {"name": "orders", "query": "SELECT 1 AS id", "primary_key": "id"},
            ],
        },
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_assets_jobs_and_schedules_follow_the_models(config_file: Path) -> None:
    assets, jobs, schedules = build_connections(load_config(config_file).connections)
    assert [sorted(k.to_user_string() for k in a.keys) for a in assets] == [
        ["connections/customers", "connections/customers_rejected_records"],
        ["connections/orders", "connections/orders_rejected_records"],
    ]
    assert [j.name for j in jobs] == ["connections_customers_sync", "connections_orders_sync"]
    assert [(s.name, s.cron_schedule) for s in schedules] == [
        ("connections_customers_schedule", "0 * * * *")
    ]
    resources = {
        "pipeline_config": PipelineConfigResource(path=str(config_file)),
        "segment_connections": SegmentConnectionsResource(),
        "lake": LakeResource(),
    }
    defs = dg.Definitions(assets=assets, jobs=jobs, schedules=schedules, resources=resources)
    dg.Definitions.validate_loadable(defs)
    assert build_connections(None) == ([], [], [])


def _resources(config_file: Path, tmp_path: Path, **options: object) -> dict[str, object]:
    return {
        "pipeline_config": PipelineConfigResource(path=str(config_file)),
        "segment_connections": SegmentConnectionsResource(
            ledger=str(tmp_path / "ledger.sqlite"), **{"max_attempts": 2, **options}
        ),
        "lake": LakeResource(location=str(tmp_path / "lake")),
    }


def _rejected_rows(result: dg.ExecuteInProcessResult) -> list[dict[str, object]]:
    """The rows of the rejected-records file the run's materialization points to."""
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key == REJECTED]
    path = event.materialization.metadata["rejected_records_path"].value
    return pq.read_table(path).to_pylist()


def test_a_materialization_is_one_sync(
    config_file: Path, sandbox: TrackingApiSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets, _, _ = build_connections(load_config(config_file).connections)
    resources = _resources(config_file, tmp_path)
    dry = dg.materialize(
        [assets[0]], resources=resources, run_config={"ops": {SYNC: {"config": {"dry_run": True}}}}
    )
    metadata = dry.asset_materializations_for_node(SYNC)[0].metadata
    assert (metadata["added"].value, metadata["Traits/would_send"].value) == (7, 6)
    assert len(metadata["sample_messages"].value["Traits"]) == 3
    assert sandbox.messages() == []
    assert [m.asset_key for m in dry.get_asset_materialization_events()] == [
        dg.AssetKey(["connections", "customers"])
    ]  # a dry run writes no rejected records
    assert not (tmp_path / "lake" / "connections").exists()

    result = dg.materialize([assets[0]], resources=resources)
    metadata = result.asset_materializations_for_node(SYNC)[0].metadata
    assert (metadata["extracted"].value, metadata["Traits/sent"].value) == (7, 6)
    assert metadata["Traits/rejected"].value == 1
    assert "must be defined" in metadata["failed_or_rejected_messages"].value
    assert len(sandbox.messages()) == 6
    (rejected,) = _rejected_rows(result)
    assert (rejected["record_key"], rejected["outcome"], rejected["mapping"]) == (
        "6",
        "rejected",
        "Traits",
    )
    assert "Either `Anonymous ID` or `User ID` must be defined." in str(rejected["reason"])
    assert json.loads(str(rejected["row"])) == {"id": 6, "email": None}
    assert rejected["sync_id"] == result.run_id

    monkeypatch.delenv("RETL_WRITE_KEY")
    failed = dg.materialize([assets[0]], resources=resources, raise_on_error=False)
    assert not failed.success
    assert "RETL_WRITE_KEY" in str(failed.all_events)


def test_failed_sends_are_in_the_rejected_records(
    config_file: Path, sandbox: TrackingApiSandbox, tmp_path: Path
) -> None:
    assets, _, _ = build_connections(load_config(config_file).connections)
    sandbox.inject(Fault("503", count=2))
    result = dg.materialize([assets[0]], resources=_resources(config_file, tmp_path))
    metadata = result.asset_materializations_for_node(SYNC)[0].metadata
    assert (metadata["Traits/failed"].value, metadata["Traits/sent"].value) == (6, 0)
    rows = _rejected_rows(result)
    assert sorted((r["outcome"], r["record_key"]) for r in rows) == [
        ("failed", str(n)) for n in range(6)
    ] + [("rejected", "6")]
    assert all("503" in str(r["reason"]) for r in rows if r["outcome"] == "failed")
    rejected_metadata = next(
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key == REJECTED
    )
    assert (rejected_metadata["failed"].value, rejected_metadata["rejected"].value) == (6, 1)
    assert rejected_metadata["dagster/row_count"].value == 7


def test_a_sync_waits_for_another_sync_of_the_model_then_fails_naming_it(
    config_file: Path, sandbox: TrackingApiSandbox, tmp_path: Path
) -> None:
    """The lease lives in the ledger database: it holds without any Dagster pool or queue."""
    assets, _, _ = build_connections(load_config(config_file).connections)
    resources = _resources(config_file, tmp_path, lease_wait_seconds=0.5)
    ledger = SyncLedger(open_database(tmp_path / "ledger.sqlite", name="segment_connections"))
    with hold_sync_lease(ledger, "customers", label="the other sync"):
        blocked = dg.materialize([assets[0]], resources=resources, raise_on_error=False)
    assert not blocked.success
    assert "the other sync" in str(blocked.all_events)
    assert sandbox.messages() == [] and ledger.sends("customers") == []
    after = dg.materialize([assets[0]], resources=resources)
    assert after.asset_materializations_for_node(SYNC)[0].metadata["Traits/sent"].value == 6


def test_materializing_the_sync_alone_still_writes_its_rejected_records(
    config_file: Path, sandbox: TrackingApiSandbox, tmp_path: Path
) -> None:
    """As the UI's "Materialize" on `connections/customers` alone: one sync, both written."""
    assets, _, _ = build_connections(load_config(config_file).connections)
    result = dg.materialize(
        [assets[0]],
        resources=_resources(config_file, tmp_path),
        selection=[dg.AssetKey(["connections", "customers"])],
    )
    assert [m.asset_key.to_user_string() for m in result.get_asset_materialization_events()] == [
        "connections/customers"
    ]
    files = list((tmp_path / "lake" / "connections").glob("customers_rejected_records/*/*.parquet"))
    assert [row["record_key"] for row in pq.read_table(files[0]).to_pylist()] == ["6"]
    assert len(sandbox.messages()) == 6
