"""The `connections/<model>` assets: built from the config's models (with a schedule when the model
has one), a materialization is one sync against the Tracking API sandbox whose counts are the
metadata; a dry run sends nothing; a missing write key fails the run naming the variable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from acoustic_pipelines.config.loading import load_config
from acoustic_pipelines.sandbox.tracking_api import TrackingApiSandbox, serve_tracking_api
from assets.connections import build_connections
from resources.connections import SegmentConnectionsResource
from resources.pipeline_config import PipelineConfigResource

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
    assert [a.key for a in assets] == [
        dg.AssetKey(["connections", "customers"]),
        dg.AssetKey(["connections", "orders"]),
    ]
    assert [j.name for j in jobs] == ["connections_customers_sync", "connections_orders_sync"]
    assert [(s.name, s.cron_schedule) for s in schedules] == [
        ("connections_customers_schedule", "0 * * * *")
    ]
    resources = {
        "pipeline_config": PipelineConfigResource(path=str(config_file)),
        "segment_connections": SegmentConnectionsResource(),
    }
    defs = dg.Definitions(assets=assets, jobs=jobs, schedules=schedules, resources=resources)
    dg.Definitions.validate_loadable(defs)
    assert build_connections(None) == ([], [], [])


def test_a_materialization_is_one_sync(
    config_file: Path, sandbox: TrackingApiSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assets, _, _ = build_connections(load_config(config_file).connections)
    resources = {
        "pipeline_config": PipelineConfigResource(path=str(config_file)),
        "segment_connections": SegmentConnectionsResource(
            ledger=str(tmp_path / "ledger.sqlite"), max_attempts=2
        ),
    }
    dry = dg.materialize(
        [assets[0]],
        resources=resources,
        run_config={"ops": {"connections__customers": {"config": {"dry_run": True}}}},
    )
    metadata = dry.asset_materializations_for_node("connections__customers")[0].metadata
    assert (metadata["added"].value, metadata["Traits/would_send"].value) == (7, 6)
    assert sandbox.messages() == []

    result = dg.materialize([assets[0]], resources=resources)
    metadata = result.asset_materializations_for_node("connections__customers")[0].metadata
    assert (metadata["extracted"].value, metadata["Traits/sent"].value) == (7, 6)
    assert metadata["Traits/rejected"].value == 1
    assert "must be defined" in metadata["failed_or_rejected_messages"].value
    assert len(sandbox.messages()) == 6

    monkeypatch.delenv("RETL_WRITE_KEY")
    failed = dg.materialize([assets[0]], resources=resources, raise_on_error=False)
    assert not failed.success
    assert "RETL_WRITE_KEY" in str(failed.all_events)
