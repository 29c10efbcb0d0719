"""Ingesting one day: every line lands in exactly one of accepted, rejected or duplicate, exactly."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.segment import spec
from acoustic_pipelines.segment.archive import (
    UnreadableArchiveError,
    day_folder,
    list_archive_day,
    read_lines,
)
from acoustic_pipelines.segment.raw_events import (
    RAW_EVENTS,
    REJECTED_EVENTS,
    UNREADABLE_FILES,
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


def write_files(root: Path, files: dict[str, list[bytes]], day: date = DAY) -> None:
    folder = root / "segment-logs" / "src" / day_folder(day)
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


def test_a_redelivery_across_midnight_is_a_duplicate_within_the_look_back(tmp_path: Path) -> None:
    before = date(2026, 11, 19)
    write_files(
        tmp_path / "archive",
        {
            "a.gz": [
                event_line("m1", "2026-11-19T23:59:58.000Z", "first"),
                event_line("m0", "2026-11-19T12:00:00.000Z", "x"),
            ]
        },
        before,
    )
    write_files(
        tmp_path / "archive",
        {
            "b.gz": [
                event_line("m2", "2026-11-20T00:00:01.000Z", "new"),
                event_line("m1", "2026-11-20T00:00:02.000Z", "again"),
                event_line("m1", "2026-11-20T00:05:00.000Z", "third"),
            ]
        },
    )
    archive = open_location(str(tmp_path / "archive"))
    lake = Lake(open_location(str(tmp_path / "lake")))
    early = ingest_day(archive, lake, DAY)  # the day before is not ingested yet: not checked
    assert (early.accepted, early.duplicates, early.lookback_days_missing) == (2, 1, (before,))
    ingest_day(archive, lake, before)

    report = ingest_day(archive, lake, DAY)
    assert (report.accepted, report.duplicates, report.duplicates_across_days) == (1, 2, 2)
    assert report.lookback_days_missing == ()
    assert lake.read_partition(RAW_EVENTS, DAY).to_table().column("message_id").to_pylist() == [
        "m2"
    ]
    details = [
        r["detail"] for r in lake.read_partition(REJECTED_EVENTS, DAY).to_table().to_pylist()
    ]
    assert details == ["messageId 'm1' already accepted on 2026-11-19"] * 2
    assert lake.summary(RAW_EVENTS, DAY)["duplicates_across_days"] == 2
    within_day = ingest_day(archive, lake, DAY, dedupe_lookback_days=0)
    assert (within_day.accepted, within_day.duplicates_across_days) == (2, 0)


def test_a_line_with_a_byte_order_mark_is_rejected_naming_it(tmp_path: Path) -> None:
    good = event_line("m1", "2026-11-20T10:00:00.000Z", "x")
    write_files(
        tmp_path / "archive",
        {"a.gz": [b"\xef\xbb\xbf" + event_line("m0", "2026-11-20T09:00:00.000Z", "bom"), good]},
    )
    archive, lake = (
        open_location(str(tmp_path / "archive")),
        Lake(open_location(str(tmp_path / "lake"))),
    )
    report = ingest_day(archive, lake, DAY)
    assert (report.accepted, report.rejected_by_reason) == (1, {spec.MALFORMED_JSON: 1})
    [row] = lake.read_partition(REJECTED_EVENTS, DAY).to_table().to_pylist()
    assert row["line_number"] == 1 and "byte order mark (EF BB BF)" in row["detail"]
    assert row["raw"].startswith("\ufeff{")  # the line kept as it was


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
    with pytest.raises(UnreadableArchiveError, match="b.gz"):
        ingest_day(archive, lake, DAY)
    assert lake.read_partition(RAW_EVENTS, DAY).count_rows() == 1


def bad_files_archive(root: Path) -> dict[str, int]:
    """a.gz and d.gz are fine, b.gz is cut in half, c.gz is not gzip; the lines b.gz still yields."""
    lines = [event_line(f"n{i}", "2026-11-20T11:00:00.000Z", "y") for i in range(20_000)]
    write_files(
        root,
        {
            "a.gz": [event_line("m1", "2026-11-20T10:00:00.000Z", "x")],
            "d.gz": [event_line("m4", "2026-11-20T10:00:00.000Z", "x")],
        },
    )
    folder = root / "segment-logs" / "src" / day_folder(DAY)
    data = gzip.compress(b"\n".join(lines) + b"\n")
    (folder / "b.gz").write_bytes(data[: len(data) // 2])
    (folder / "c.gz").write_bytes(b'{"type": "track"}\n' * 40)
    return {"b.gz": len(data) // 2, "c.gz": 18 * 40}


def test_every_unreadable_file_of_the_day_is_named_in_one_failure(tmp_path: Path) -> None:
    sizes = bad_files_archive(tmp_path / "archive")
    archive = open_location(str(tmp_path / "archive"))
    lake = Lake(open_location(str(tmp_path / "lake")))
    with pytest.raises(UnreadableArchiveError) as failed:
        ingest_day(archive, lake, DAY)
    assert [(e.key.rsplit("/", 1)[1], e.reason) for e in failed.value.errors] == [
        ("b.gz", "TRUNCATED"),
        ("c.gz", "NOT_GZIP"),
    ]
    assert "2 archive file(s) cannot be read" in str(failed.value)
    assert "b.gz" in str(failed.value) and "c.gz" in str(failed.value)
    assert failed.value.errors[1].bytes_unread == sizes["c.gz"]
    with pytest.raises(PartitionNotFound):
        lake.summary(RAW_EVENTS, DAY)


def test_quarantine_keeps_the_readable_lines_and_records_each_bad_file(tmp_path: Path) -> None:
    sizes = bad_files_archive(tmp_path / "archive")
    archive = open_location(str(tmp_path / "archive"))
    lake = Lake(open_location(str(tmp_path / "lake")))
    report = ingest_day(archive, lake, DAY, on_unreadable_file="quarantine")
    [truncated, not_gzip] = report.unreadable_files
    assert 0 < truncated.lines_read < 20_000 and not_gzip.lines_read == 0
    assert report.lines_read == 2 + truncated.lines_read
    assert report.accepted == report.lines_read  # every readable line kept
    rows = lake.read_partition(UNREADABLE_FILES, DAY).to_table().to_pylist()
    assert [(r["file"].rsplit("/", 1)[1], r["reason"], r["lines_kept"]) for r in rows] == [
        ("b.gz", "TRUNCATED", truncated.lines_read),
        ("c.gz", "NOT_GZIP", 0),
    ]
    assert [r["compressed_bytes"] for r in rows] == [sizes["b.gz"], sizes["c.gz"]]
    assert rows[1]["bytes_unread"] == sizes["c.gz"] and "NOT_GZIP" in rows[1]["detail"]
    clean = ingest_day(archive, lake, DAY - timedelta(days=1), on_unreadable_file="quarantine")
    assert clean.unreadable_files == ()
    assert lake.read_partition(UNREADABLE_FILES, DAY - timedelta(days=1)).count_rows() == 0


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
    honest = {
        "raw_files": lake.parquet_files(RAW_EVENTS, DAY),
        "rejected_files": lake.parquet_files(REJECTED_EVENTS, DAY),
        "lines_read": summary["lines_read"],
        "invalid": sum(reasons.values()),
        "duplicates": duplicates,
        "day": DAY,
    }
    _check_accounting(lake, **honest)
    with pytest.raises(AccountingError, match="lines read but"):
        _check_accounting(lake, **{**honest, "lines_read": summary["lines_read"] + 1})
    with pytest.raises(AccountingError, match="duplicates found"):
        _check_accounting(lake, **{**honest, "duplicates": duplicates + 1})
    with pytest.raises(AccountingError, match="invalid lines counted"):
        _check_accounting(lake, **{**honest, "invalid": sum(reasons.values()) - 1})


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
    parts = lake.parquet_files(RAW_EVENTS, DAY)  # one per archive file, the first run's replaced
    assert [p.rsplit("/", 1)[1] for p in parts] == [
        f"part-{n:05d}.parquet" for n in range(len(sample.files))
    ]
    assert (
        sum(pq.ParquetFile(p, filesystem=lake.fs).metadata.num_rows for p in parts)
        == report.accepted
    )


# A real process runs the ingest: it waits for its `go` file (so imports are done before the
# race starts), ingests, and prints its counts. The kill tests SIGKILL it.
INGEST_PROCESS = """
import os, sys, time
from dataclasses import replace
from datetime import date, timedelta
from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.segment.raw_events import ingest_day
from acoustic_pipelines.storage import open_location

archive, lake, scratch, go = sys.argv[1:5]
while not os.path.exists(go):
    time.sleep(0.005)
report = ingest_day(
    open_location(archive),
    Lake(open_location(lake)),
    date(2026, 11, 20),
    scratch_dir=scratch,
)
print(report.lines_read, report.accepted, report.rejected, report.duplicates, flush=True)
"""


def start_ingest(
    archive: Path, lake: Path, scratch: Path, go: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", INGEST_PROCESS, str(archive), str(lake), str(scratch), str(go)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_until(condition: Any, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the ingest ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def leftovers(lake_dir: Path, scratch: Path) -> list[str]:
    """Staging and trash folders in the lake, and scratch folders: what a clean run leaves none of."""
    found = [p.name for p in scratch.glob("raw-events-*")]
    for dataset in (RAW_EVENTS, REJECTED_EVENTS):
        for folder in ("_staging", "_trash"):
            found += [p.name for p in (lake_dir / dataset / folder).glob("*")]
    return found


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_kill_at_the_commit_boundary_leaves_nothing_half_visible(
    tmp_path: Path, workers: str
) -> None:
    archive_dir, lake_dir, scratch = tmp_path / "archive", tmp_path / "lake", tmp_path / "scratch"
    scratch.mkdir()
    archive, lake = open_location(str(archive_dir)), Lake(open_location(str(lake_dir)))
    write_sample_archive(archive, DAY, events=500, bad_rate=0.05, seed=2)
    ingest_day(archive, lake, DAY, scratch_dir=str(scratch))  # yesterday's version of the day
    sample = write_sample_archive(archive, DAY, events=2_000, bad_rate=0.05, seed=9)
    flag, go = tmp_path / "paused", tmp_path / "go"
    go.touch()
    env = {
        "ACOUSTIC_PIPELINES_PAUSE_AT": "lake.commit_together",
        "ACOUSTIC_PIPELINES_PAUSE_FLAG": str(flag),
        "ACOUSTIC_PIPELINES_WORKERS": workers,
    }
    process = start_ingest(archive_dir, lake_dir, scratch, go, env)
    try:
        wait_until(flag.exists, process, "it reached the commit boundary")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    # One dataset was swapped in, the other not: neither reads as committed, old or new.
    for dataset in (RAW_EVENTS, REJECTED_EVENTS):
        with pytest.raises(PartitionNotFound, match="not materialized"):
            lake.read_partition(dataset, DAY)
    assert any(p.name.startswith("raw-events-") for p in scratch.iterdir())  # what the kill left

    report = ingest_day(archive, lake, DAY, scratch_dir=str(scratch))
    assert report.lines_read == 2_000 and report.accepted == sample.expected_accepted
    assert lake.read_partition(RAW_EVENTS, DAY).count_rows() == sample.expected_accepted
    rejected = lake.read_partition(REJECTED_EVENTS, DAY).count_rows()
    assert rejected == sum(sample.expected_rejects.values()) == report.rejected + report.duplicates
    assert leftovers(lake_dir, scratch) == []


@pytest.fixture(scope="module")
def busy_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    root = tmp_path_factory.mktemp("busy-archive")
    sample = write_sample_archive(
        open_location(str(root)), DAY, events=30_000, bad_rate=0.01, seed=4
    )
    return root, sample


def test_two_concurrent_ingests_of_one_day_give_exact_counts(
    tmp_path: Path, busy_archive: tuple[Path, Any]
) -> None:
    archive_dir, sample = busy_archive
    lake_dir, scratch = tmp_path / "lake", tmp_path / "scratch"
    scratch.mkdir()
    go_a, go_b = tmp_path / "go-a", tmp_path / "go-b"
    first = start_ingest(archive_dir, lake_dir, scratch, go_a)
    second = start_ingest(archive_dir, lake_dir, scratch, go_b)
    staging = lake_dir / RAW_EVENTS / "_staging"
    try:
        go_a.touch()
        wait_until(lambda: any(staging.glob("date=*")), first, "the first run staged its files")
        go_b.touch()  # the second starts while the first is writing
        outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    finally:
        for process in (first, second):
            process.kill()
            process.wait()
    assert [first.returncode, second.returncode] == [0, 0]
    expected = (
        f"30000 {sample.expected_accepted} "
        f"{sum(sample.expected_rejects.values()) - sample.expected_rejects[spec.DUPLICATE_MESSAGE_ID]} "
        f"{sample.expected_rejects[spec.DUPLICATE_MESSAGE_ID]}"
    )
    assert [o.strip() for o in outputs] == [expected, expected]
    lake = Lake(open_location(str(lake_dir)))
    assert lake.read_partition(RAW_EVENTS, DAY).count_rows() == sample.expected_accepted
    parts = [p.rsplit("/", 1)[1] for p in lake.parquet_files(RAW_EVENTS, DAY)]
    assert parts == [f"part-{n:05d}.parquet" for n in range(48)]  # one run's, one per file
    assert leftovers(lake_dir, scratch) == []


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """Two days of sample archive; the second also re-delivers lines of the first (a duplicate
    across days, and within the day) and has a truncated file (kept under quarantine)."""
    root = tmp_path_factory.mktemp("two-days")
    archive = open_location(str(root))
    before = write_sample_archive(archive, DAY - timedelta(days=1), events=3_000, bad_rate=0.05)
    sample = write_sample_archive(archive, DAY, events=6_000, bad_rate=0.05, seed=8)
    earlier_file = list_archive_day(archive, DAY - timedelta(days=1)).files[0]
    again = list(read_lines(archive, earlier_file))[:30]
    truncated = gzip.compress(b"\n".join(again * 300))
    write_files(root, {"zz-again.gz": again + again[:5], "zz-cut.gz": []})
    (root / "segment-logs" / "src" / day_folder(DAY) / "zz-cut.gz").write_bytes(
        truncated[: len(truncated) // 2]
    )
    return root, (before, sample)


def ingest_both_days(archive_dir: Path, lake_dir: Path, workers: int) -> list[Any]:
    archive, lake = open_location(str(archive_dir)), Lake(open_location(str(lake_dir)))
    return [
        ingest_day(
            archive,
            lake,
            day,
            workers=workers,
            batch_rows=700,
            on_unreadable_file="quarantine",
        )
        for day in (DAY - timedelta(days=1), DAY)
    ]


def test_one_and_two_workers_write_the_same_tables_and_counts(
    tmp_path: Path, two_days: tuple[Path, Any]
) -> None:
    archive_dir, (before, sample) = two_days
    outputs = {}
    for workers in (1, 2):
        lake_dir = tmp_path / f"lake-{workers}"
        reports = ingest_both_days(archive_dir, lake_dir, workers)
        assert [r.workers for r in reports] == [workers, workers]
        lake = Lake(open_location(str(lake_dir)))
        tables = {
            (dataset, day): lake.read_partition(dataset, day).to_table()
            for dataset in (RAW_EVENTS, REJECTED_EVENTS, UNREADABLE_FILES)
            for day in (DAY - timedelta(days=1), DAY)
        }
        parts = [p.rsplit("/", 1)[1] for p in lake.parquet_files(RAW_EVENTS, DAY)]
        assert parts == [f"part-{n:05d}.parquet" for n in range(50)]  # one per archive file
        # Everything but the timing, the locations and the Parquet bytes (parts differ).
        same = {"seconds": 0.0, "workers": 0, "raw_events_bytes": 0}
        outputs[workers] = (
            [replace(r, **same, raw_events_uri="", rejected_events_uri="") for r in reports],
            tables,
        )
        for report in reports:
            assert report.accepted + report.rejected + report.duplicates == report.lines_read
        first, second = reports
        assert first.accepted == before.expected_accepted
        assert second.duplicates_across_days >= 30  # the re-delivered lines of the day before
        assert second.duplicates > second.duplicates_across_days  # and duplicates within the day
        [cut] = second.unreadable_files
        assert cut.key.endswith("zz-cut.gz") and cut.lines_read > 0
        assert second.lines_read == sample.lines + 35 + cut.lines_read
    (reports_1, tables_1), (reports_2, tables_2) = outputs[1], outputs[2]
    for one, two in zip(reports_1, reports_2, strict=True):
        assert [str(e) for e in one.unreadable_files] == [str(e) for e in two.unreadable_files]
        assert replace(one, unreadable_files=()) == replace(two, unreadable_files=())
    for key, table in tables_1.items():
        assert table.equals(tables_2[key]), key


def test_the_worker_count_comes_from_the_environment_else_the_cores_and_the_size(
    tmp_path: Path, two_days: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive_dir, _ = two_days
    archive, lake = open_location(str(archive_dir)), Lake(open_location(str(tmp_path / "lake")))
    monkeypatch.setenv("ACOUSTIC_PIPELINES_WORKERS", "2")
    report = ingest_day(archive, lake, DAY, on_unreadable_file="quarantine")
    assert report.workers == 2
    monkeypatch.delenv("ACOUSTIC_PIPELINES_WORKERS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    cores = ingest_day(archive, lake, DAY, on_unreadable_file="quarantine", min_bytes_per_worker=0)
    assert cores.workers == 3
    small = ingest_day(archive, lake, DAY, on_unreadable_file="quarantine")  # < 8 MB a worker
    assert small.workers == 1 and small.accepted == cores.accepted == report.accepted


def test_a_failing_file_on_a_worker_names_every_unreadable_file(tmp_path: Path) -> None:
    bad_files_archive(tmp_path / "archive")
    archive = open_location(str(tmp_path / "archive"))
    lake = Lake(open_location(str(tmp_path / "lake")))
    with pytest.raises(UnreadableArchiveError) as failed:
        ingest_day(archive, lake, DAY, workers=2)
    assert [(e.key.rsplit("/", 1)[1], e.reason) for e in failed.value.errors] == [
        ("b.gz", "TRUNCATED"),
        ("c.gz", "NOT_GZIP"),
    ]
    with pytest.raises(PartitionNotFound):
        lake.summary(RAW_EVENTS, DAY)
