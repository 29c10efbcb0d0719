"""Ingesting one day: every line lands in exactly one of accepted, rejected or duplicate, exactly."""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import orjson
import pyarrow.parquet as pq
import pytest

from acoustic_pipelines.lake import Lake
from acoustic_pipelines.segment import spec
from acoustic_pipelines.segment.archive import (
    ArchiveReadError,
    day_folder,
    list_archive_day,
    read_lines,
)
from acoustic_pipelines.segment.raw_events import (
    DATA_FILE,
    RAW_EVENTS,
    REJECTED_EVENTS,
    AccountingError,
    _check_accounting,
    ingest_day,
)
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location

DAY = date(2026, 11, 20)


@pytest.fixture
def archive_and_lake(tmp_path: Path) -> tuple:
    return open_location(str(tmp_path / "archive")), Lake(open_location(str(tmp_path / "lake")))


def test_counts_match_what_the_generator_wrote(archive_and_lake: tuple) -> None:
    archive, lake = archive_and_lake
    sample = write_sample_archive(archive, DAY, events=4_000, bad_rate=0.05, seed=7)
    expected = sample.expected_rejects
    duplicates = expected.pop(spec.DUPLICATE_MESSAGE_ID)
    assert len(expected) >= 10 and duplicates > 0  # the sample really exercises the rules

    report = ingest_day(archive, lake, DAY, batch_rows=500)  # small batches: many row groups

    assert report.lines_read == sample.lines == 4_000
    assert report.accepted == sample.expected_accepted
    assert report.rejected_by_reason == dict(sorted(expected.items()))
    assert report.duplicates == duplicates
    assert report.accepted + report.rejected + report.duplicates == report.lines_read
    assert sum(report.events_by_type.values()) == report.accepted
    assert report.uncompressed_bytes == sample.uncompressed_bytes
    assert report.files == len(sample.files)
    raw = lake.read_partition(RAW_EVENTS, DAY).to_table()
    rejected = lake.read_partition(REJECTED_EVENTS, DAY).to_table()
    assert raw.num_rows == report.accepted
    assert len(set(raw.column("message_id").to_pylist())) == raw.num_rows
    assert Counter(rejected.column("reason").to_pylist()) == Counter(sample.expected_rejects)


def test_rows_keep_the_original_lines(archive_and_lake: tuple) -> None:
    archive, lake = archive_and_lake
    write_sample_archive(archive, DAY, events=1_500, bad_rate=0.05, seed=3)
    ingest_day(archive, lake, DAY)
    lines = {
        (f.key, n): line
        for f in list_archive_day(archive, DAY).files
        for n, line in enumerate(read_lines(archive, f), start=1)
    }
    rejected = lake.read_partition(REJECTED_EVENTS, DAY).to_table().to_pylist()
    for row in rejected:
        original = lines.pop((row["file"], row["line_number"]))
        assert row["raw"] == original.decode("utf-8", "backslashreplace")
        assert row["detail"]
    payloads = sorted(lake.read_partition(RAW_EVENTS, DAY).to_table().column("payload").to_pylist())
    assert payloads == sorted(line.decode() for line in lines.values())  # the rest, untouched


def test_accepted_columns_come_from_the_event(archive_and_lake: tuple) -> None:
    archive, lake = archive_and_lake
    write_sample_archive(archive, DAY, events=300, seed=5)
    ingest_day(archive, lake, DAY)
    for row in lake.read_partition(RAW_EVENTS, DAY).to_table().to_pylist():
        event = orjson.loads(row["payload"])
        assert row["message_id"] == event["messageId"]
        assert row["type"] == event["type"]
        assert row["event"] == event.get("event")
        assert row["user_id"] == event.get("userId")
        assert row["anonymous_id"] == event.get("anonymousId")
        assert (
            row["received_at"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
            == event["receivedAt"]
        )
        assert row["source_id"] in {"Wb7x3TqkLp", "Io5mQz8vRa"}


def event_line(message_id: str, received_at: str, marker: str) -> bytes:
    return orjson.dumps(
        {
            "type": "track",
            "event": "E",
            "messageId": message_id,
            "userId": "u",
            "receivedAt": received_at,
            "properties": {"copy": marker},
        }
    )


def write_files(root: Path, files: dict[str, list[bytes]]) -> None:
    folder = root / "segment-logs" / "src" / day_folder(DAY)
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        (folder / name).write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))


def test_first_by_received_at_wins_across_files(tmp_path: Path) -> None:
    write_files(
        tmp_path / "archive",
        {
            "a.gz": [
                event_line("m1", "2026-11-20T10:05:00.000Z", "late"),
                event_line("m2", "2026-11-20T09:00:00.000Z", "a"),
            ],
            "b.gz": [
                event_line("m1", "2026-11-20T10:00:00.000Z", "early"),
                event_line("m2", "2026-11-20T09:00:00.000Z", "b"),
            ],
        },
    )
    archive, lake = (
        open_location(str(tmp_path / "archive")),
        Lake(open_location(str(tmp_path / "lake"))),
    )
    report = ingest_day(archive, lake, DAY)
    assert (report.accepted, report.duplicates) == (2, 2)
    kept = {
        r["message_id"]: orjson.loads(r["payload"])["properties"]["copy"]
        for r in lake.read_partition(RAW_EVENTS, DAY).to_table().to_pylist()
    }
    assert kept == {"m1": "early", "m2": "a"}  # m2: same receivedAt, so file order decides
    dups = {
        (r["file"].rsplit("/", 1)[1], r["line_number"]): r["detail"]
        for r in lake.read_partition(REJECTED_EVENTS, DAY).to_table().to_pylist()
    }
    assert set(dups) == {("a.gz", 1), ("b.gz", 2)}
    assert dups[("a.gz", 1)].endswith("b.gz:1") and dups[("b.gz", 2)].endswith("a.gz:2")


def test_empty_day_commits_empty_partitions(archive_and_lake: tuple) -> None:
    archive, lake = archive_and_lake
    report = ingest_day(archive, lake, DAY)
    assert (report.files, report.lines_read, report.accepted, report.rejected) == (0, 0, 0, 0)
    assert lake.read_partition(RAW_EVENTS, DAY).count_rows() == 0
    assert lake.read_partition(RAW_EVENTS, DAY).schema.names[-1] == "payload"


def test_corrupt_file_fails_and_keeps_the_previous_partition(tmp_path: Path) -> None:
    archive, lake = (
        open_location(str(tmp_path / "archive")),
        Lake(open_location(str(tmp_path / "lake"))),
    )
    write_files(tmp_path / "archive", {"a.gz": [event_line("m1", "2026-11-20T10:00:00.000Z", "x")]})
    ingest_day(archive, lake, DAY)
    folder = tmp_path / "archive" / "segment-logs" / "src" / day_folder(DAY)
    data = gzip.compress(
        b"\n".join(event_line(f"n{i}", "2026-11-20T11:00:00.000Z", "y") for i in range(20_000))
    )
    (folder / "b.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveReadError, match="b.gz"):
        ingest_day(archive, lake, DAY)
    assert lake.read_partition(RAW_EVENTS, DAY).count_rows() == 1


def test_accounting_check_refuses_counts_that_do_not_add_up(archive_and_lake: tuple) -> None:
    archive, lake = archive_and_lake
    write_sample_archive(archive, DAY, events=200, bad_rate=0.1, seed=1)
    ingest_day(archive, lake, DAY)
    # Re-check the committed files against a scan that claims one line more than was written.
    summary = lake.summary(RAW_EVENTS, DAY)
    reasons = Counter(
        lake.read_partition(REJECTED_EVENTS, DAY).to_table().column("reason").to_pylist()
    )
    duplicates = reasons.pop(spec.DUPLICATE_MESSAGE_ID, 0)
    raw = SimpleNamespace(file=lambda name: lake.parquet_files(RAW_EVENTS, DAY)[0])
    rejected = SimpleNamespace(file=lambda name: lake.parquet_files(REJECTED_EVENTS, DAY)[0])
    honest = SimpleNamespace(
        lines_read=summary["lines_read"],
        rejected_by_reason=reasons,
        listing=SimpleNamespace(day=DAY),
    )
    _check_accounting(lake, honest, raw, rejected, duplicates)
    lying = SimpleNamespace(
        lines_read=summary["lines_read"] + 1,
        rejected_by_reason=reasons,
        listing=SimpleNamespace(day=DAY),
    )
    with pytest.raises(AccountingError, match="lines read but"):
        _check_accounting(lake, lying, raw, rejected, duplicates)
    with pytest.raises(AccountingError, match="duplicates found"):
        _check_accounting(lake, honest, raw, rejected, duplicates + 1)


def test_archive_and_lake_on_s3(s3_endpoint: str, s3_bucket: str) -> None:
    archive = open_location(f"s3://{s3_bucket}/archive", s3_endpoint_url=s3_endpoint)
    lake = Lake(open_location(f"s3://{s3_bucket}/lake", s3_endpoint_url=s3_endpoint))
    sample = write_sample_archive(archive, DAY, events=1_000, bad_rate=0.05, seed=11)
    report = ingest_day(archive, lake, DAY)
    assert report.accepted == sample.expected_accepted
    assert report.rejected + report.duplicates == sum(sample.expected_rejects.values())
    assert report.raw_events_uri == f"s3://{s3_bucket}/lake/{RAW_EVENTS}/date=2026-11-20"
    assert lake.read_partition(RAW_EVENTS, DAY).count_rows() == report.accepted
    again = ingest_day(archive, lake, DAY)
    assert again.accepted == report.accepted
    assert [p.rsplit("/", 1)[1] for p in lake.parquet_files(RAW_EVENTS, DAY)] == [DATA_FILE]
    assert (
        pq.ParquetFile(lake.parquet_files(RAW_EVENTS, DAY)[0], filesystem=lake.fs).metadata.num_rows
        == report.accepted
    )
