"""Mapping a day: every raw event is accounted for per destination, every match is a row or a
reject, rows land in one typed Parquet table per destination, and a re-run replaces the day."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from acoustic_pipelines.acoustic.mapped_events import (
    FIXED_COLUMNS,
    MAPPED_EVENTS,
    MAPPING_FAILED,
    REJECTED_EVENTS,
    TRIGGER_FAILED,
    UNREADABLE_PAYLOAD,
    MappedDayReport,
    map_day,
    read_mapped_day_report,
    read_mapped_destination,
)
from acoustic_pipelines.acoustic.rows import (
    INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
    INVALID_NO_DATA_MAPPED,
)
from acoustic_pipelines.config.loading import PipelineConfig, load_config, parse_config
from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.segment.raw_events import RAW_EVENTS, RAW_EVENTS_SCHEMA, ingest_day
from acoustic_pipelines.segment.raw_events import REJECTED_EVENTS as INGEST_REJECTS
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location

DAY = date(2026, 11, 20)
REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_EVENTS = 3_000


@pytest.fixture(scope="module")
def sample_lake_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake holding one ingested sample day (with bad lines and duplicates); copy, never write."""
    root = tmp_path_factory.mktemp("mapped")
    archive = open_location(str(root / "archive"))
    write_sample_archive(archive, DAY, events=SAMPLE_EVENTS, bad_rate=0.02, seed=11)
    ingest_day(archive, Lake(open_location(str(root / "lake"))), DAY)
    return root / "lake"


@pytest.fixture
def sample_lake(sample_lake_dir: Path, tmp_path: Path) -> Lake:
    shutil.copytree(sample_lake_dir, tmp_path / "lake")
    return Lake(open_location(str(tmp_path / "lake")))


@pytest.fixture(scope="module")
def default_config() -> PipelineConfig:
    return load_config(REPO_ROOT / "config" / "pipeline.yaml")


def config(*destinations: str) -> PipelineConfig:
    """A config from destination YAML blocks (name, mappings, ...); settings filled in."""
    blocks = "".join(
        f"  - customer_prefix: Test_\n    access_point_alias: alias\n{block}"
        for block in destinations
    )
    return parse_config(f"destinations:\n{blocks}")


ALL_SECTIONS = """
        mapping:
          uniqueRecipientId: {"@path": "$.properties.email"}
          type: {"@path": "$.type"}
          timestamp: {"@path": "$.timestamp"}
          properties: {"@path": "$.properties"}
"""


def tracks_destination(name: str, *, columns: str = "", also_map: str = "") -> str:
    """A destination whose one mapping, "Tracks", delivers every track call with its properties."""
    listed = f"    columns: {columns}\n" if columns else ""
    return (
        f"    name: {name}\n{listed}    mappings:\n      - name: Tracks\n"
        f"        trigger: 'type = \"track\"'{ALL_SECTIONS}{also_map}"
    )


def write_raw(
    lake: Lake,
    payloads: list[dict[str, Any] | str],
    *,
    row_group_size: int | None = None,
    text_type: str = "track",
) -> None:
    """Write `segment/raw_events` for DAY by hand: one row per payload (a str is written as is,
    its `type` column is `text_type`)."""
    moment = datetime(2026, 11, 20, 12, tzinfo=UTC)
    rows = []
    for index, payload in enumerate(payloads):
        event = payload if isinstance(payload, dict) else {}
        rows.append(
            {
                "message_id": event.get("messageId", f"raw-{index}"),
                "type": event.get("type", text_type),
                "event": event.get("event"),
                "user_id": None,
                "anonymous_id": "anon",
                "timestamp": moment,
                "received_at": moment,
                "source_id": "src",
                "payload": payload if isinstance(payload, str) else orjson.dumps(payload).decode(),
            }
        )
    with lake.stage(RAW_EVENTS, DAY) as staged:
        table = pa.Table.from_pylist(rows, schema=RAW_EVENTS_SCHEMA)
        path = staged.file("part-00000.parquet")
        pq.write_table(table, path, filesystem=lake.fs, row_group_size=row_group_size)
        summary = {"lines_read": len(rows) + 3, "accepted": len(rows), "duplicates": 1}
        lake.commit(staged, summary)
    with lake.stage(INGEST_REJECTS, DAY) as staged:  # 2 invalid lines + 1 duplicate, as counted
        lake.commit(staged, {**summary, "rejected": 3})


def track(message_id: str, /, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": message_id,
        "timestamp": "2026-11-20T10:00:00.000Z",
        "properties": properties,
    }


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(open_location(str(tmp_path / "lake")))


def table_of(lake: Lake, destination: str) -> pa.Table:
    return read_mapped_destination(lake, DAY, destination).to_table()


def rejects_of(lake: Lake) -> list[dict[str, Any]]:
    return lake.read_partition(REJECTED_EVENTS, DAY).to_table().to_pylist()


def without_timing(report: MappedDayReport) -> dict[str, Any]:
    summary = report.to_summary()
    summary.pop("seconds")
    return summary


# --- the sample day through the default config ------------------------------------------------


def test_default_config_counts_match_the_raw_partition(
    sample_lake: Lake, default_config: PipelineConfig
) -> None:
    raw = sample_lake.read_partition(RAW_EVENTS, DAY).to_table()
    is_track = pc.equal(raw.column("type"), "track")
    is_identify = pc.equal(raw.column("type"), "identify")
    # Sample events hold an email (properties, traits or context.traits) only where the mapping
    # finds one; no other key is named "email".
    has_email = pc.match_substring(raw.column("payload"), '"email":')
    tracks = pc.sum(is_track).as_py()
    identifies = pc.sum(is_identify).as_py()
    tracks_with_email = pc.sum(pc.and_(is_track, has_email)).as_py()
    assert tracks and identifies and tracks_with_email < tracks  # the sample exercises rejects

    report = map_day(sample_lake, DAY, default_config.destinations, batch_rows=700)

    summary = sample_lake.summary(RAW_EVENTS, DAY)
    assert (report.received, report.accepted, report.duplicates) == (
        summary["lines_read"],
        raw.num_rows,
        summary["duplicates"],
    )
    rejected = sample_lake.read_partition(INGEST_REJECTS, DAY).count_rows()
    assert report.rejected_at_ingest == rejected - report.duplicates
    assert report.rejected_at_ingest == summary["lines_read"] - raw.num_rows - report.duplicates
    assert report.rejected_at_ingest > 0 and report.duplicates > 0
    overview = report.destination("acoustic")
    track_calls, identify_calls = overview.mappings
    assert (track_calls.name, track_calls.matched, track_calls.rows) == (
        "Track Calls",
        tracks,
        tracks_with_email,
    )
    assert track_calls.rejected_by_code == {
        INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID: tracks - tracks_with_email
    }
    assert (identify_calls.matched, identify_calls.rows) == (identifies, identifies)
    assert overview.no_matching_mapping == raw.num_rows - tracks - identifies
    assert overview.rows == overview.rows_written == tracks_with_email + identifies
    assert report.accounting_problems() == []

    table = table_of(sample_lake, "acoustic")
    assert Counter(table.column("mapping").to_pylist()) == {
        "Track Calls": tracks_with_email,
        "Identify Calls": identifies,
    }
    expected_ids = pc.filter(
        raw.column("message_id"), pc.or_(pc.and_(is_track, has_email), is_identify)
    )
    assert sorted(table.column("message_id").to_pylist()) == sorted(expected_ids.to_pylist())
    rejects = rejects_of(sample_lake)
    assert Counter((r["destination"], r["mapping"], r["code"]) for r in rejects) == {
        ("acoustic", "Track Calls", INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID): tracks
        - tracks_with_email
    }
    assert all(r["detail"] and r["field"] == "uniqueRecipientId" for r in rejects)


def test_the_table_has_the_fixed_columns_then_typed_keys_in_order(
    sample_lake: Lake, default_config: PipelineConfig
) -> None:
    report = map_day(sample_lake, DAY, default_config.destinations)
    schema = table_of(sample_lake, "acoustic").schema
    assert tuple(schema.names[:5]) == FIXED_COLUMNS
    assert all(schema.field(name).type == pa.string() for name in FIXED_COLUMNS)
    assert schema.field("total").type == pa.float64()
    assert schema.field("products.0.quantity").type == pa.int64()
    assert schema.field("userAgentData.mobile").type == pa.bool_()
    assert schema.field("products.0.sku").type == pa.string()
    names = schema.names[5:]
    assert names.index("products.0.sku") < names.index("products.1.brand")
    assert names == sorted(names, key=lambda n: [(not p.isdigit(), p) for p in n.split(".")])
    assert tuple(schema.names) == report.destination("acoustic").columns
    preview = report.destination("acoustic").preview
    assert len(preview) == 5 and list(preview[0])[:5] == list(FIXED_COLUMNS)


def test_a_rerun_replaces_the_day_with_the_same_result(
    sample_lake: Lake, default_config: PipelineConfig
) -> None:
    first = map_day(sample_lake, DAY, default_config.destinations)
    table = table_of(sample_lake, "acoustic")
    second = map_day(sample_lake, DAY, default_config.destinations, batch_rows=333)
    assert without_timing(second) == without_timing(first)
    assert table_of(sample_lake, "acoustic").equals(table)
    assert len(sample_lake.parquet_files(MAPPED_EVENTS, DAY, "destination=acoustic")) == 1
    assert len(rejects_of(sample_lake)) == first.rejected

    other = config(tracks_destination("other"))
    map_day(sample_lake, DAY, other.destinations)
    assert sample_lake.subfolders(MAPPED_EVENTS, DAY) == ["destination=other"]
    assert {r["destination"] for r in rejects_of(sample_lake)} == {"other"}


def test_the_report_is_saved_with_the_partition(
    sample_lake: Lake, default_config: PipelineConfig
) -> None:
    with pytest.raises(PartitionNotFound):
        read_mapped_day_report(sample_lake, DAY)
    report = map_day(sample_lake, DAY, default_config.destinations)
    saved = read_mapped_day_report(sample_lake, DAY)
    assert saved.to_summary() == report.to_summary()
    assert saved.destination("acoustic").preview == ()
    assert saved.accounting_problems() == []


def test_progress_is_reported_through_the_callback(
    sample_lake: Lake, default_config: PipelineConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    messages: list[str] = []
    report = map_day(sample_lake, DAY, default_config.destinations, on_progress=messages.append)
    assert any("rows of destination 'acoustic'" in m for m in messages)
    assert messages[-1].startswith(f"{DAY}: {report.events_read:,} events → {report.rows:,} rows")
    assert capsys.readouterr().out == ""


def test_missing_raw_partition_is_not_found(lake: Lake, default_config: PipelineConfig) -> None:
    with pytest.raises(PartitionNotFound, match="segment/raw_events"):
        map_day(lake, DAY, default_config.destinations)


# --- hand-written raw events through inline configs -------------------------------------------

TWO_MAPPINGS = f"""    name: shop
    mappings:
      - name: Orders
        trigger: 'type = "track" and event = "Order Completed"'{ALL_SECTIONS}
      - name: Tracks
        trigger: 'type = "track"'{ALL_SECTIONS}
      - name: Disabled
        enabled: false
        trigger: 'type = "track"'{ALL_SECTIONS}
"""


def test_an_event_matching_two_mappings_gives_two_rows(lake: Lake) -> None:
    write_raw(
        lake,
        [
            track("m-1", email="a@x.io", total=30),
            {**track("m-2", email="b@x.io"), "event": "Product Viewed"},
            {"type": "page", "messageId": "m-3", "properties": {}},
        ],
    )
    report = map_day(lake, DAY, config(TWO_MAPPINGS).destinations)
    table = table_of(lake, "shop")
    assert list(
        zip(table["message_id"].to_pylist(), table["mapping"].to_pylist(), strict=True)
    ) == [
        ("m-1", "Orders"),
        ("m-1", "Tracks"),
        ("m-2", "Tracks"),
    ]
    shop = report.destination("shop")
    assert [(m.name, m.matched, m.rows) for m in shop.mappings] == [
        ("Orders", 1, 1),
        ("Tracks", 2, 2),
    ]
    assert (shop.matched_events, shop.no_matching_mapping, shop.rows) == (2, 1, 3)
    assert report.accounting_problems() == []


def test_rejects_carry_their_code_and_every_match_is_accounted_for(lake: Lake) -> None:
    destination = (
        """    name: shop
    mappings:
      - name: No data
        trigger: 'event = "No Data"'
        mapping:
          uniqueRecipientId: {"@path": "$.properties.email"}
          type: {"@path": "$.type"}
          timestamp: {"@path": "$.timestamp"}
      - name: Path from event
        trigger: 'event = "Dynamic"'
        mapping:
          uniqueRecipientId: {"@path": "$.properties.email"}
          type: {"@path": "$.type"}
          timestamp: {"@path": "$.timestamp"}
          properties: {"@path": {"@path": "$.properties.where"}}
      - name: Broken trigger
        trigger: 'event = "Broken" and ()'
        mapping: {properties: {}}
      - name: Tracks
        trigger: 'type = "track"'"""
        + ALL_SECTIONS
    )
    write_raw(
        lake,
        [
            {**track("m-1", email="a@x.io"), "event": "No Data"},
            {**track("m-2", email="a@x.io", where="$.properties"), "event": "Dynamic"},
            {**track("m-3", email="a@x.io", where=7), "event": "Dynamic"},
            {**track("m-4", email="a@x.io"), "event": "Broken"},
            track("m-5"),
            "this is not JSON",
            "[1, 2]",
        ],
    )
    report = map_day(lake, DAY, config(destination).destinations)
    shop = report.destination("shop")
    assert {(r["message_id"], r["mapping"], r["code"]) for r in rejects_of(lake)} == {
        ("m-1", "No data", INVALID_NO_DATA_MAPPED),
        ("m-3", "Path from event", MAPPING_FAILED),
        ("m-4", "Broken trigger", TRIGGER_FAILED),
        ("m-5", "Tracks", INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID),
        ("raw-5", None, UNREADABLE_PAYLOAD),
        ("raw-6", None, UNREADABLE_PAYLOAD),
    }
    assert shop.rejected_by_code == {
        INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID: 1,
        INVALID_NO_DATA_MAPPED: 1,
        MAPPING_FAILED: 1,
        TRIGGER_FAILED: 1,
        UNREADABLE_PAYLOAD: 2,
    }
    # m-1..m-4 are tracks too: the Tracks mapping delivers them (m-5 has no email).
    assert [(m.name, m.matched, m.rows, m.rejected) for m in shop.mappings] == [
        ("No data", 1, 0, 1),
        ("Path from event", 2, 1, 1),
        ("Broken trigger", 1, 0, 1),
        ("Tracks", 5, 4, 1),
    ]
    assert (shop.considered, shop.matched_events, shop.unreadable_payloads) == (7, 5, 2)
    assert shop.no_matching_mapping == 0
    assert report.accounting_problems() == []
    assert report.rejected_rows_written == 6


@pytest.mark.parametrize("trigger", ['type = "track"', 'event = "Order Completed"'])
def test_an_event_no_trigger_can_match_by_its_type_is_not_read(lake: Lake, trigger: str) -> None:
    """With every trigger testing `type` first, a page event is no match, its payload unread; a
    trigger that does not start with `type` reads every payload (an unreadable one is a reject)."""
    write_raw(lake, ["[not an object]"], text_type="page")
    destination = (
        "    name: shop\n    mappings:\n      - name: Orders\n"
        f"        trigger: '{trigger}'{ALL_SECTIONS}"
    )
    report = map_day(lake, DAY, config(destination).destinations)
    shop = report.destination("shop")
    assert report.accounting_problems() == []
    if trigger.startswith("type"):
        assert (shop.no_matching_mapping, shop.unreadable_payloads, shop.rejected) == (1, 0, 0)
    else:
        assert (shop.no_matching_mapping, shop.unreadable_payloads) == (0, 1)
        assert shop.rejected_by_code == {UNREADABLE_PAYLOAD: 1}


@pytest.mark.parametrize("one_part", [True, False], ids=["one part", "a part per event"])
def test_values_of_mixed_types_become_json_text_and_other_columns_keep_their_type(
    lake: Lake, one_part: bool
) -> None:
    """The day's types decide, even when each part (and each batch) saw only one of them."""
    products = [{"sku": f"S{i}", "qty": i} for i in range(12)]
    write_raw(
        lake,
        [
            track("m-1", email="a@x.io", code=7, flag=True, price=10, gone=None, products=products),
            track("m-2", email="b@x.io", code="A7", flag=False, price=9.5, big=2**63),
            {**track("m-3", email="c@x.io", code=1.5), "timestamp": 1_763_632_800_000},
        ],
        row_group_size=None if one_part else 1,
    )
    report = map_day(
        lake, DAY, config(tracks_destination("shop")).destinations, part_events=1, workers=1
    )
    files = lake.parquet_files(MAPPED_EVENTS, DAY, "destination=shop")
    assert len(files) == (1 if one_part else 3)
    assert report.accounting_problems() == []
    table = table_of(lake, "shop")
    types = {f.name: f.type for f in table.schema}
    assert (types["code"], types["flag"], types["price"], types["big"]) == (
        pa.string(),
        pa.bool_(),
        pa.float64(),
        pa.string(),
    )
    assert (types["gone"], types["products.11.qty"]) == (pa.string(), pa.int64())
    rows = table.to_pylist()
    assert [r["code"] for r in rows] == ["7", "A7", "1.5"]
    assert [r["price"] for r in rows] == [10.0, 9.5, None]
    assert [r["big"] for r in rows] == [None, str(2**63), None]
    assert [r["gone"] for r in rows] == [None, None, None]
    assert [r["timestamp"] for r in rows][2] == "1763632800000"
    data = table.schema.names[5:]
    assert data.index("products.2.sku") < data.index("products.10.qty")


def test_a_key_null_in_every_row_of_a_part_takes_the_days_type(lake: Lake) -> None:
    """A part (and batch) where a key is only ever null does not stand in the way of its type."""
    write_raw(
        lake,
        [track("m-1", email="a@x.io", n=None, ok=None), track("m-2", email="b@x.io", n=5, ok=True)],
        row_group_size=1,
    )
    report = map_day(
        lake, DAY, config(tracks_destination("shop")).destinations, part_events=1, workers=1
    )
    assert report.accounting_problems() == []
    table = table_of(lake, "shop")
    assert (table.schema.field("n").type, table.schema.field("ok").type) == (pa.int64(), pa.bool_())
    assert table.column("n").to_pylist() == [None, 5]
    assert table.column("ok").to_pylist() == [None, True]


def test_the_allow_list_drops_other_keys_and_counts_them(lake: Lake) -> None:
    write_raw(
        lake,
        [
            track("m-1", email="a@x.io", total=30, coupon="X", products=[{"sku": "S1"}]),
            track("m-2", email="b@x.io", total=5, mapping="ours", message_id="theirs"),
        ],
    )
    destination = tracks_destination("shop", columns="[total, products.0.sku, mapping]")
    report = map_day(lake, DAY, config(destination).destinations)
    table = table_of(lake, "shop")
    assert table.schema.names == [*FIXED_COLUMNS, "products.0.sku", "total"]
    assert table.column("total").to_pylist() == [30, 5]
    assert table.column("mapping").to_pylist() == ["Tracks", "Tracks"]  # never the event's key
    assert report.destination("shop").dropped_keys == {
        "coupon": 1,
        "email": 2,
        "mapping": 1,
        "message_id": 1,
    }


def test_key_collisions_are_counted(lake: Lake) -> None:
    event = {**track("m-1", email="a@x.io", plan="gold"), "traits": {"plan": "silver"}}
    write_raw(lake, [event])
    traits = '          traits: {"@path": "$.traits"}\n'
    destination = tracks_destination("shop", also_map=traits)
    report = map_day(lake, DAY, config(destination).destinations)
    assert report.destination("shop").key_collisions == 1
    assert table_of(lake, "shop").column("plan").to_pylist() == ["gold"]  # properties win


def test_a_destination_without_rows_still_gets_its_table(lake: Lake) -> None:
    write_raw(lake, [{"type": "page", "messageId": "m-1", "properties": {}}])
    report = map_day(lake, DAY, config(TWO_MAPPINGS).destinations)
    table = table_of(lake, "shop")
    assert (table.num_rows, tuple(table.schema.names)) == (0, FIXED_COLUMNS)
    assert report.destination("shop").no_matching_mapping == 1
    assert report.accounting_problems() == []


def test_accounting_problems_name_what_does_not_add_up(lake: Lake) -> None:
    write_raw(lake, [track("m-1", email="a@x.io")])
    report = map_day(lake, DAY, config(TWO_MAPPINGS).destinations)
    shop = report.destinations[0]
    broken = MappedDayReport(
        **{
            **report.__dict__,
            "events_read": 2,
            "destinations": (
                type(shop)(**{**shop.__dict__, "rows_written": 5, "no_matching_mapping": 3}),
            ),
        }
    )
    problems = broken.accounting_problems()
    assert any("says 1 events but 2 were read" in p for p in problems)
    assert any("1 events considered of 2" in p for p in problems)
    assert any("3 no matching mapping" in p for p in problems)
    assert any("5 in" in p for p in problems)


def test_two_destinations_each_get_their_folder(lake: Lake) -> None:
    write_raw(lake, [track("m-1", email="a@x.io"), track("m-2")])
    report = map_day(lake, DAY, config(TWO_MAPPINGS, tracks_destination("other")).destinations)
    assert lake.subfolders(MAPPED_EVENTS, DAY) == ["destination=other", "destination=shop"]
    assert table_of(lake, "other").num_rows == 1 and table_of(lake, "shop").num_rows == 2
    assert Counter(r["destination"] for r in rejects_of(lake)) == {"shop": 2, "other": 1}
    assert report.accounting_problems() == []


# --- worker processes ---------------------------------------------------------------------------


def test_the_same_files_whatever_the_number_of_workers(
    sample_lake: Lake, default_config: PipelineConfig, tmp_path: Path
) -> None:
    """1 and 2 worker processes write the same parts with the same rows, and count the same."""
    raw = sample_lake.read_partition(RAW_EVENTS, DAY).to_table()
    for raw_file in sample_lake.parquet_files(RAW_EVENTS, DAY):  # one per archive file
        part = pq.read_table(raw_file, filesystem=sample_lake.fs)
        pq.write_table(part, raw_file, filesystem=sample_lake.fs, row_group_size=250)
    second_root = tmp_path / "second"
    shutil.copytree(sample_lake.location.root, second_root)
    second = Lake(open_location(str(second_root)))
    destinations = [*default_config.destinations, *config(tracks_destination("shop")).destinations]

    reports = [
        map_day(lake, DAY, destinations, workers=workers, part_events=500)
        for lake, workers in ((sample_lake, 1), (second, 2))
    ]

    summaries = [without_timing(r) for r in reports]
    for summary in summaries:
        for destination in summary["destinations"]:
            destination.pop("uri")
        summary.pop("mapped_events_uri")
        summary.pop("rejected_events_uri")
    assert summaries[0] == summaries[1]
    one, two = reports
    assert one.accounting_problems() == [] == two.accounting_problems()
    assert one.accepted + one.rejected_at_ingest + one.duplicates == one.received
    assert one.events_read == one.accepted == raw.num_rows
    for name in ("acoustic", "shop"):
        subpath = f"destination={name}"
        names = [
            [p.rsplit("/", 1)[1] for p in lake.parquet_files(MAPPED_EVENTS, DAY, subpath)]
            for lake in (sample_lake, second)
        ]
        assert names[0] == names[1] == [f"part-{n:05d}.parquet" for n in range(6)]
        assert table_of(sample_lake, name).equals(table_of(second, name))
    assert rejects_of(sample_lake) == rejects_of(second)
    assert len(rejects_of(second)) == two.rejected > 0


# A real run, killed with SIGKILL while its two workers map: they stop, nothing is committed.
MAP_PROCESS = """
import sys
from datetime import date
from acoustic_pipelines.acoustic.mapped_events import map_day
from acoustic_pipelines.config.loading import load_config
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.storage import open_location

lake, scratch, config = sys.argv[1:4]
destinations = load_config(config).destinations
map_day(
    Lake(open_location(lake)), date(2026, 11, 20), destinations,
    workers=2, part_events=50, scratch_dir=scratch,
)
"""


def test_a_killed_run_stops_its_workers_and_commits_nothing(
    sample_lake: Lake, default_config: PipelineConfig, tmp_path: Path
) -> None:
    for raw_file in sample_lake.parquet_files(RAW_EVENTS, DAY):  # one per archive file
        part = pq.read_table(raw_file, filesystem=sample_lake.fs)
        pq.write_table(part, raw_file, filesystem=sample_lake.fs, row_group_size=25)
    map_day(sample_lake, DAY, default_config.destinations, workers=1)  # a committed day before
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config_path = REPO_ROOT / "config" / "pipeline.yaml"
    command = [sys.executable, "-c", MAP_PROCESS, sample_lake.location.root, str(scratch)]
    process = subprocess.Popen([*command, str(config_path)])
    try:
        deadline = time.monotonic() + 120
        while not any(scratch.glob("mapped-events-*/*.arrow")):  # the workers are mapping
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.005)
        workers = psutil.Process(process.pid).children(recursive=True)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert len(workers) >= 2
    gone, alive = psutil.wait_procs(workers, timeout=60)
    assert alive == []
    for dataset in (MAPPED_EVENTS, REJECTED_EVENTS):  # the old day is still the committed one
        assert sample_lake.summary(dataset, DAY)

    report = map_day(
        sample_lake, DAY, default_config.destinations, workers=1, scratch_dir=str(scratch)
    )
    assert report.accounting_problems() == []
    assert table_of(sample_lake, "acoustic").num_rows == report.rows
    assert list(scratch.iterdir()) == []  # the dead run's scratch was removed
    for dataset in (MAPPED_EVENTS, REJECTED_EVENTS):
        assert list((Path(sample_lake.location.root) / dataset / "_staging").iterdir()) == []


# --- S3 ------------------------------------------------------------------------------------------


def test_a_day_on_s3(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path, default_config: PipelineConfig
) -> None:
    archive = open_location(str(tmp_path / "archive"))
    write_sample_archive(archive, DAY, events=400, bad_rate=0.02, seed=3)
    lake = Lake(open_location(f"s3://{s3_bucket}/lake", s3_endpoint_url=s3_endpoint))
    ingest_day(archive, lake, DAY)
    first = map_day(lake, DAY, default_config.destinations, workers=1, part_events=100)
    table = table_of(lake, "acoustic")
    # Again on 2 worker processes, each opening the lake on S3 itself: the same day.
    second = map_day(lake, DAY, default_config.destinations, workers=2, part_events=100)
    assert without_timing(second) == without_timing(first)
    assert second.accounting_problems() == []
    assert len(lake.parquet_files(MAPPED_EVENTS, DAY, "destination=acoustic")) > 1
    assert table_of(lake, "acoustic").equals(table)
    assert second.destination("acoustic").uri == (
        f"s3://{s3_bucket}/lake/acoustic/mapped_events/date=2026-11-20/destination=acoustic"
    )
    assert lake.subfolders(MAPPED_EVENTS, DAY) == ["destination=acoustic"]
    assert table_of(lake, "acoustic").num_rows == second.rows > 0
    assert len(rejects_of(lake)) == second.rejected
