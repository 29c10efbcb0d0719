"""`acoustic/mapped_events` and `acoustic/s3_csv_delivery` materialized in-process on a generated
archive, delivering to the S3 sandbox over HTTP, with the overview counted independently."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import boto3
import dagster as dg
import orjson
import pytest

from acoustic_pipelines import settings
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.segment.raw_events import RAW_EVENTS
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location
from assets.acoustic import (
    NO_MATCH_CHECK,
    OVERVIEW_CHECK,
    REJECT_SHARE_CHECK,
    mapped_events,
    s3_csv_delivery,
)
from assets.segment import raw_events
from resources import LakeResource, SegmentArchiveResource
from resources.acoustic_s3 import AcousticS3Resource
from resources.pipeline_config import PipelineConfigResource

DAY = date(2026, 11, 20)
ALIAS = "demo-access-point-alias"  # the default config's access point alias
PREFIX = "DemoOrg_Prod_"


@pytest.fixture
def lake_dir(tmp_path: Path) -> Path:
    write_sample_archive(open_location(str(tmp_path / "archive")), DAY, events=3000, bad_rate=0.01)
    return tmp_path


@pytest.fixture
def s3(s3_endpoint: str) -> boto3.client:
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    if ALIAS not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=ALIAS)
    for item in client.list_objects_v2(Bucket=ALIAS).get("Contents", []):
        client.delete_object(Bucket=ALIAS, Key=item["Key"])
    return client


def run(
    folder: Path,
    s3_endpoint: str,
    *,
    access_key: str = "key",
    day: date = DAY,
    config: Path | None = None,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_events, mapped_events, s3_csv_delivery],
        partition_key=day.isoformat(),
        resources={
            "segment_archive": SegmentArchiveResource(location=str(folder / "archive")),
            "lake": LakeResource(location=str(folder / "lake")),
            "pipeline_config": PipelineConfigResource(path=str(config) if config else None),
            "acoustic_s3": AcousticS3Resource(
                aws_access_key_id=access_key,
                aws_secret_access_key="secret",
                endpoint_url=s3_endpoint,
            ),
        },
        raise_on_error=False,
    )


def metadata_of(result: dg.ExecuteInProcessResult, node: str, asset: str | None = None) -> dict:
    key = dg.AssetKey((asset or node).split("__"))
    (materialization,) = [
        m for m in result.asset_materializations_for_node(node) if m.asset_key == key
    ]
    return {key: value.value for key, value in materialization.metadata.items()}


def expected_overview(folder: Path) -> dict[str, int]:
    """Counted from the raw partition without the engine: what each default mapping must see."""
    events = (
        Lake(open_location(str(folder / "lake")))
        .read_partition(RAW_EVENTS, DAY)
        .to_table(columns=["type", "payload"])
    )
    track = identify = track_rows = identify_rows = 0
    for kind, payload in zip(
        events.column("type").to_pylist(), events.column("payload").to_pylist(), strict=True
    ):
        event = orjson.loads(payload)
        context_email = (event.get("context") or {}).get("traits", {}).get("email")
        if kind == "track":
            track += 1
            track_rows += bool((event.get("properties") or {}).get("email") or context_email)
        elif kind == "identify":
            identify += 1
            identify_rows += bool((event.get("traits") or {}).get("email") or context_email)
    return {
        "events": events.num_rows,
        "no_matching": events.num_rows - track - identify,
        "track": track,
        "identify": identify,
        "track_rows": track_rows,
        "identify_rows": identify_rows,
    }


def delivered_rows(client: boto3.client) -> list[dict[str, str]]:
    rows = []
    for item in client.list_objects_v2(Bucket=ALIAS)["Contents"]:
        if item["Key"].endswith(".csv"):
            body = client.get_object(Bucket=ALIAS, Key=item["Key"])["Body"].read().decode()
            rows += list(csv.DictReader(io.StringIO(body, newline="")))
    return rows


def test_overview_counts_and_delivered_rows(lake_dir: Path, s3_endpoint: str, s3) -> None:
    result = run(lake_dir, s3_endpoint)
    assert result.success
    mapped = metadata_of(result, "acoustic__mapped_events")
    raw = metadata_of(result, "segment__raw_events")
    want = expected_overview(lake_dir)

    assert (mapped["received"], mapped["duplicates"]) == (raw["lines_read"], raw["duplicates"])
    assert mapped["rejected_at_ingest"] == raw["rejected"]
    assert mapped["events"] == raw["accepted"] == want["events"]
    assert mapped["acoustic/no_matching_mapping"] == want["no_matching"]
    assert mapped["acoustic/Track Calls/matched"] == want["track"]
    assert mapped["acoustic/Identify Calls/matched"] == want["identify"]
    assert mapped["acoustic/Track Calls/rows"] == want["track_rows"]
    assert mapped["acoustic/Identify Calls/rows"] == want["identify_rows"]
    no_recipient = want["track"] + want["identify"] - want["track_rows"] - want["identify_rows"]
    assert mapped["acoustic/rejected/INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID"] == no_recipient
    assert mapped["rows"] == want["track_rows"] + want["identify_rows"]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[OVERVIEW_CHECK].passed
    assert checks[NO_MATCH_CHECK].passed and checks[REJECT_SHARE_CHECK].passed

    rejected = metadata_of(result, "acoustic__mapped_events", "acoustic__rejected_events")
    assert rejected["dagster/row_count"] == mapped["rejected"] == no_recipient
    written = Lake(open_location(str(lake_dir / "lake"))).read_partition(
        "acoustic/rejected_events", DAY
    )
    assert written.count_rows() == no_recipient

    # The day's columns: the five fixed ones, then the discovered keys, typed as written.
    schema = mapped["dagster/column_schema"]
    names = [c.name for c in schema.columns]
    assert names[:5] == ["message_id", "mapping", "uniqueRecipient", "eventSource", "timestamp"]
    table = Lake(open_location(str(lake_dir / "lake"))).read_partition(
        "acoustic/mapped_events", DAY, subpath="destination=acoustic"
    )
    assert set(names) == set(table.schema.names)
    # Each column traced to the Segment fields of segment/raw_events that can feed it.
    lineage = mapped["dagster/column_lineage"].deps_by_column
    fed = {c: {d.column_name for d in deps} for c, deps in lineage.items()}
    assert fed["uniqueRecipient"] == {
        "payload.properties.email",
        "payload.traits.email",
        "payload.context.traits.email",
    }
    assert fed["eventSource"] == {"type"} and fed["timestamp"] == {"timestamp"}
    assert fed["message_id"] == {"message_id"}
    assert all(
        d.asset_key == dg.AssetKey(["segment", "raw_events"]) for ds in lineage.values() for d in ds
    )
    discovered = [n for n in names[5:] if n in lineage]
    assert discovered and all(
        fed[n] <= {f"payload.{s}.{n}" for s in ("properties", "traits", "context")}
        for n in discovered
    )

    delivery = metadata_of(result, "acoustic__s3_csv_delivery")
    rows = delivered_rows(s3)
    assert delivery["dagster/row_count"] == len(rows) == mapped["rows"]
    assert {r["eventSource"] for r in rows} == {"track Event", "identify Event"}
    assert all(r["uniqueRecipient"] for r in rows)
    keys = sorted(i["Key"] for i in s3.list_objects_v2(Bucket=ALIAS)["Contents"])
    assert keys == [f"{PREFIX}2026_11_20_0001.csv", f"{PREFIX}2026_11_20_manifest.json"]


def test_rerun_replaces_the_day_without_duplicates(lake_dir: Path, s3_endpoint: str, s3) -> None:
    first = run(lake_dir, s3_endpoint)
    second = run(lake_dir, s3_endpoint)
    assert first.success and second.success
    rows = delivered_rows(s3)
    assert len(rows) == metadata_of(second, "acoustic__mapped_events")["rows"]
    assert len({(r["message_id"], r["mapping"]) for r in rows}) == len(rows)


def test_empty_access_key_is_refused_before_any_upload(
    lake_dir: Path, s3_endpoint: str, s3
) -> None:
    result = run(lake_dir, s3_endpoint, access_key="")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "MISSING_S3_ACCESS_KEY" in failure.event_specific_data.error.message
    assert "secret" not in failure.event_specific_data.error.message.replace("S3 Secret", "")
    assert s3.list_objects_v2(Bucket=ALIAS).get("KeyCount", 0) == 0


def test_reject_share_jump_warns(lake_dir: Path, s3_endpoint: str, s3) -> None:
    """Day 19 delivers with the default config; on day 20 no mapping can find a recipient."""
    before = DAY.replace(day=19)
    write_sample_archive(open_location(str(lake_dir / "archive")), before, events=1000, bad_rate=0)
    assert run(lake_dir, s3_endpoint, day=before).success
    broken = lake_dir / "pipeline.yaml"
    broken.write_text(settings.config_path().read_text().replace('.email"', '.no_such_field"'))

    result = run(lake_dir, s3_endpoint, config=broken)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    share = checks[REJECT_SHARE_CHECK]
    assert not share.passed and share.severity == dg.AssetCheckSeverity.WARN
    assert share.metadata["acoustic/percent"].value == 100.0
    assert share.metadata["acoustic/previous_percent"].value < 90
    assert share.description.startswith("acoustic: ")
    assert checks[NO_MATCH_CHECK].passed and checks[OVERVIEW_CHECK].passed


RANGE = [DAY, DAY.replace(day=21), DAY.replace(day=22)]
RANGE_TAGS = {
    "dagster/asset_partition_range_start": RANGE[0].isoformat(),
    "dagster/asset_partition_range_end": RANGE[-1].isoformat(),
}


def run_range(folder: Path, s3_endpoint: str, assets: list) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        tags=RANGE_TAGS,
        resources={
            "segment_archive": SegmentArchiveResource(location=str(folder / "archive")),
            "lake": LakeResource(location=str(folder / "lake")),
            "pipeline_config": PipelineConfigResource(),
            "acoustic_s3": AcousticS3Resource(
                aws_access_key_id="key", aws_secret_access_key="secret", endpoint_url=s3_endpoint
            ),
        },
        raise_on_error=False,
    )


def per_day(result: dg.ExecuteInProcessResult, node: str) -> dict[str, dict]:
    key = dg.AssetKey(node.split("__"))
    return {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node(node)
        if m.asset_key == key
    }


def test_a_range_run_reports_each_day_and_delivers_each_day(
    lake_dir: Path, s3_endpoint: str, s3
) -> None:
    """Three days in one run: each materialization and check evaluation holds its own day's
    numbers, and each day's files are delivered."""
    archive = open_location(str(lake_dir / "archive"))
    for day, events in zip(RANGE[1:], (1000, 2000), strict=True):
        write_sample_archive(archive, day, events=events, bad_rate=0.01, seed=events)
    result = run_range(lake_dir, s3_endpoint, [raw_events, mapped_events, s3_csv_delivery])
    assert result.success
    partitions = {d.isoformat() for d in RANGE}
    raw = per_day(result, "segment__raw_events")
    mapped = per_day(result, "acoustic__mapped_events")
    delivery = per_day(result, "acoustic__s3_csv_delivery")
    assert set(raw) == set(mapped) == set(delivery) == partitions
    for partition in partitions:
        assert mapped[partition]["events"] == raw[partition]["accepted"]
        assert delivery[partition]["dagster/row_count"] == mapped[partition]["rows"]
    assert len({m["rows"] for m in mapped.values()}) == 3
    evaluations: dict[str, dict[str | None, dg.AssetCheckEvaluation]] = {}
    for e in result.get_asset_check_evaluations():
        evaluations.setdefault(e.check_name, {})[e.partition] = e
    for check in (OVERVIEW_CHECK, NO_MATCH_CHECK, REJECT_SHARE_CHECK):
        assert set(evaluations[check]) == partitions, check
    for partition, evaluation in evaluations[OVERVIEW_CHECK].items():
        assert evaluation.metadata["events_read"].value == raw[partition]["accepted"]
    keys = {i["Key"] for i in s3.list_objects_v2(Bucket=ALIAS)["Contents"]}
    assert {f"{PREFIX}{d:%Y_%m_%d}_manifest.json" for d in RANGE} <= keys


def test_a_failed_blocking_check_on_one_day_stops_the_delivery(
    lake_dir: Path, s3_endpoint: str, s3
) -> None:
    """The middle day's raw partition claims one event more than it holds: its overview fails
    (blocking), the other days pass, and nothing of the range is delivered."""
    archive = open_location(str(lake_dir / "archive"))
    for day in RANGE[1:]:
        write_sample_archive(archive, day, events=500, seed=day.day)
    assert run_range(lake_dir, s3_endpoint, [raw_events]).success
    marker = lake_dir / "lake" / "segment" / "raw_events" / f"date={RANGE[1]}" / "_SUCCESS"
    summary = orjson.loads(marker.read_bytes())
    marker.write_bytes(orjson.dumps({**summary, "accepted": summary["accepted"] + 1}))

    result = run_range(lake_dir, s3_endpoint, [mapped_events, s3_csv_delivery])
    assert not result.success
    overview = {
        e.partition: e.passed
        for e in result.get_asset_check_evaluations()
        if e.check_name == OVERVIEW_CHECK
    }
    assert overview == {
        RANGE[0].isoformat(): True,
        RANGE[1].isoformat(): False,
        RANGE[2].isoformat(): True,
    }
    assert per_day(result, "acoustic__s3_csv_delivery") == {}
    assert s3.list_objects_v2(Bucket=ALIAS).get("KeyCount", 0) == 0
