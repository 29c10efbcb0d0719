"""With a `connections:` section, the sandbox environment also serves the Tracking API: its
variables aim Segment Connections' sender at it (endpoint and write key) and name a sample
warehouse it writes (unless one is set), and what it accepts lands in the archive
`segment/raw_events` reads, on the demo's day when given. Without the section nothing changes."""

from __future__ import annotations

import gzip
import json
import re
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from acoustic_pipelines import settings
from acoustic_pipelines.cli.main import main
from acoustic_pipelines.config.loading import parse_config
from acoustic_pipelines.connections.sender import Outgoing, message_size
from acoustic_pipelines.sandbox.environment import sandbox_environment
from acoustic_pipelines.segment.archive import day_folder
from resources.connections import SegmentConnectionsResource

DESTINATION = {
    "name": "acoustic",
    "customer_prefix": "Acme_Prod_",
    "access_point_alias": "alias-s3alias",
}


def test_the_tracking_api_writes_into_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.ARCHIVE_ENV, str(tmp_path / "archive"))
    config = parse_config(
        yaml.safe_dump(
            {"destinations": [DESTINATION], "connections": {"write_key_env": "RETL_KEY"}}
        )
    )
    assert config.connections is not None
    with sandbox_environment(config, folder=tmp_path / "sandbox") as variables:
        endpoint = variables[settings.SEGMENT_TRACKING_API_ENDPOINT_ENV]
        assert endpoint.startswith("http://127.0.0.1:") and variables["RETL_KEY"]
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        sender = SegmentConnectionsResource().sender(config.connections)
        assert sender.host == endpoint.removesuffix("/v1")
        message = {"type": "identify", "userId": "u1", "messageId": "m-env", "traits": {}}
        assert sender.send_batch([Outgoing("m-env", message, message_size(message))]).sent
    today = datetime.now(UTC).date()
    files = list(
        (tmp_path / "archive" / "segment-logs" / "retl_sandbox" / day_folder(today)).glob("*.gz")
    )
    assert len(files) == 1


def test_no_tracking_api_without_connections(tmp_path: Path) -> None:
    config = parse_config(yaml.safe_dump({"destinations": [DESTINATION]}))
    with sandbox_environment(config, folder=tmp_path / "sandbox") as variables:
        assert settings.SEGMENT_TRACKING_API_ENDPOINT_ENV not in variables


def test_the_demo_day_a_sample_warehouse_and_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`received_day` stamps what the API accepts on that day (so it lands in that day of the
    archive), and the sample warehouse of that day is written and named by the config's variable."""
    monkeypatch.setenv(settings.ARCHIVE_ENV, str(tmp_path / "archive"))
    monkeypatch.delenv("RETL_WAREHOUSE", raising=False)
    config = parse_config(
        yaml.safe_dump(
            {
                "destinations": [DESTINATION],
                "connections": {"write_key_env": "RETL_KEY", "warehouse_env": "RETL_WAREHOUSE"},
            }
        )
    )
    day = date(2026, 11, 20)
    with sandbox_environment(config, folder=tmp_path / "sandbox", received_day=day) as variables:
        warehouse = variables["RETL_WAREHOUSE"]
        assert warehouse == str(tmp_path / "sandbox" / "warehouse.duckdb")
        with duckdb.connect(warehouse, read_only=True) as con:
            tables = dict(
                con.execute(
                    "SELECT 'customers', count(*) FROM customers UNION ALL "
                    "SELECT 'subscriptions', count(*) FROM subscriptions UNION ALL "
                    "SELECT 'orders', count(*) FROM orders"
                ).fetchall()
            )
            days = con.execute(
                "SELECT DISTINCT CAST(ordered_at AS DATE) FROM orders ORDER BY 1"
            ).fetchall()
        assert tables["customers"] == tables["subscriptions"] > 0 and tables["orders"] > 0
        assert [d for (d,) in days] == [day - timedelta(days=n) for n in (2, 1, 0)]
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        sender = SegmentConnectionsResource().sender(config.connections)
        message = {"type": "identify", "userId": "u1", "messageId": "m-day", "traits": {}}
        assert sender.send_batch([Outgoing("m-day", message, message_size(message))]).sent
    folder = tmp_path / "archive" / "segment-logs" / "retl_sandbox" / day_folder(day)
    (path,) = folder.glob("*.gz")
    (stored,) = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
    assert stored["receivedAt"].startswith("2026-11-20T12:")

    monkeypatch.setenv("RETL_WAREHOUSE", "/data/own.duckdb")  # a warehouse of one's own is kept
    with sandbox_environment(config, folder=tmp_path / "again", received_day=day) as variables:
        assert "RETL_WAREHOUSE" not in variables
    assert not (tmp_path / "again" / "warehouse.duckdb").exists()


def test_the_sandbox_command_prints_the_tracking_api_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`acoustic-pipelines sandbox -- COMMAND` with the default config: the Tracking API's
    variables are printed and set for COMMAND, which reaches the API with them."""
    monkeypatch.setenv(settings.ARCHIVE_ENV, str(tmp_path / "archive"))
    monkeypatch.delenv("ACOUSTIC_PIPELINES_WAREHOUSE", raising=False)
    probe = (
        "import base64, os, sys, urllib.request; "
        "request = urllib.request.Request(os.environ['SEGMENT_TRACKING_API_ENDPOINT'] + '/track', "
        'data=b\'{"userId": "u1", "event": "Probe", "messageId": "m-probe"}\', '
        "headers={'Content-Type': 'application/json', 'Authorization': 'Basic ' + "
        "base64.b64encode((os.environ['SEGMENT_WRITE_KEY'] + ':').encode()).decode()}); "
        "print(urllib.request.urlopen(request).status, "
        "os.path.isfile(os.environ['ACOUSTIC_PIPELINES_WAREHOUSE']))"
    )
    code = main(
        [
            "sandbox",
            "--dir",
            str(tmp_path / "sandbox"),
            "--received-day",
            "2026-11-20",
            "--",
            sys.executable,
            "-c",
            probe,
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    for name in (
        "SEGMENT_TRACKING_API_ENDPOINT",
        "SEGMENT_WRITE_KEY",
        "ACOUSTIC_PIPELINES_WAREHOUSE",
    ):
        assert re.search(rf"^export {name}=\S+$", out, re.MULTILINE), name
    folder = tmp_path / "archive" / "segment-logs" / "retl_sandbox" / day_folder(date(2026, 11, 20))
    (path,) = folder.glob("*.gz")
    assert json.loads(gzip.decompress(path.read_bytes()))["event"] == "Probe"


def test_the_loop_through_an_s3_archive(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an `s3://` archive, a sync of the shipped `orders` model (Dagster, the sample
    warehouse) lands in that bucket in Segment's layout — `segment-logs/<source>/<day-ms>/…gz`,
    nothing aside — and `segment/raw_events` reads every call of it for the day."""
    import boto3
    import dagster as dg

    from acoustic_pipelines.config.loading import load_config
    from acoustic_pipelines.sandbox.environment import SANDBOX_SOURCE_ID
    from assets.connections import build_connections
    from assets.segment import raw_events
    from resources import LakeResource, SegmentArchiveResource
    from resources.pipeline_config import PipelineConfigResource

    archive, day = f"s3://{s3_bucket}/archive", date(2026, 11, 20)
    monkeypatch.setenv(settings.ARCHIVE_ENV, archive)
    monkeypatch.setenv(settings.S3_ENDPOINT_ENV, s3_endpoint)
    monkeypatch.delenv("ACOUSTIC_PIPELINES_WAREHOUSE", raising=False)
    config_path = Path(__file__).resolve().parents[2] / settings.DEFAULT_CONFIG
    config = load_config(config_path)
    assert config.connections is not None
    (orders,) = [
        a for a in build_connections(config.connections)[0] if a.op.name.endswith("orders")
    ]
    lake = LakeResource(location=str(tmp_path / "lake"))
    with sandbox_environment(config, folder=tmp_path / "sandbox", received_day=day) as variables:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        synced = dg.materialize(
            [orders],
            resources={
                "pipeline_config": PipelineConfigResource(path=str(config_path)),
                "segment_connections": SegmentConnectionsResource(
                    ledger=str(tmp_path / "ledger.sqlite")
                ),
                "lake": lake,
            },
        )
    (sync,) = [
        m.materialization.metadata
        for m in synced.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["connections", "orders"])
    ]
    sent = sync["Order Completed/sent"].value
    assert sent > 0

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    keys = [
        o["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
        for o in page.get("Contents", [])
    ]
    prefix = f"archive/segment-logs/{SANDBOX_SOURCE_ID}/{day_folder(day)}/"
    assert keys and all(k.startswith(prefix) and k.endswith(".gz") for k in keys), keys
    assert not any(k.rsplit("/", 1)[1].startswith(".") for k in keys), keys
    archived = [
        json.loads(line)
        for k in keys
        for line in gzip.decompress(
            client.get_object(Bucket=s3_bucket, Key=k)["Body"].read()
        ).splitlines()
    ]
    assert len(archived) == len({m["messageId"] for m in archived}) == sent
    assert all(m["receivedAt"].startswith("2026-11-20T") for m in archived)

    read = dg.materialize(
        [raw_events],
        partition_key=day.isoformat(),
        resources={"segment_archive": SegmentArchiveResource(), "lake": lake},
    )
    assert read.success
    rows = lake.get_lake().read_partition("segment/raw_events", day).to_table().to_pylist()
    assert sorted(r["message_id"] for r in rows) == sorted(m["messageId"] for m in archived)
    assert {r["source_id"] for r in rows} == {SANDBOX_SOURCE_ID}
