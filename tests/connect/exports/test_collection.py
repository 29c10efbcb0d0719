"""Contract of `connect/exported_signals.py`: one export file split by day, and which jobs to collect.

- `split_export_file` hands each asked-for day the rows whose UTC day of `SIGNAL_TIMESTAMP` (else
  `TIMESTAMP`, which marketing rows carry) is that day; rows of the job's other days are counted
  as "other days" and not handed over; rows per signal type count the whole file. A header-only
  file gives its schema and no rows.
- A row with neither timestamp, or one outside the job's window, raises `ExportFileError` naming
  the row's line in the file and the day found: nothing is dropped silently.
- `jobs_to_collect` picks, per definition and day, the newest live job covering it, and raises
  `MissingExportJobError` naming every definition and day no live job covers.
"""

from __future__ import annotations

import gzip
from collections import Counter, defaultdict
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acoustic_pipelines.connect.exports.collection import (
    PARQUET_FILE,
    DayWriters,
    MissingExportJobError,
    jobs_to_collect,
    split_export_file,
)
from acoustic_pipelines.connect.exports.files import ExportFileError, export_schema
from acoustic_pipelines.connect.exports.ledger import RESERVED, ExportLedger, LedgerJob
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.sandbox.connect.exports import (
    EXPORT_COLUMNS,
    export_row,
    write_export_file,
)
from acoustic_pipelines.sandbox.connect.store import StoredSignal
from acoustic_pipelines.storage import open_location
from tests.ledger_jobs import reserve_job

NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)


def day(n: int) -> date:
    return date(2026, 3, n)


def job(first: int = 1, last: int = 3, name: str = "acoustic-pipelines-behavior-1") -> LedgerJob:
    return LedgerJob(
        job_name=name,
        definition="behavior",
        window_start=day(first),
        window_end=day(last),
        attempt=1,
        signal_types=("order", "pageView", "emailOpen"),
        requested_path="Export/Signals/test/x.csv",
        status=RESERVED,
        estimated_rows=0,
        estimated_bytes=0,
        reserved_at=NOW,
    )


def row(signal_id: str, signal_type: str, signal_at: str = "", at: str = "") -> dict[str, str]:
    """An export row; only the columns the split reads, the rest is empty."""
    return {
        "SIGNAL_ID": signal_id,
        "SIGNAL_TYPE": signal_type,
        "SIGNAL_TIMESTAMP": signal_at,
        "TIMESTAMP": at,
    }


class Written:
    """The `write` callback: every batch handed over, by day."""

    def __init__(self) -> None:
        self.batches: dict[date, list[pa.RecordBatch]] = defaultdict(list)

    def __call__(self, day: date, batch: pa.RecordBatch) -> None:
        self.batches[day].append(batch)

    def ids(self) -> dict[date, list[str]]:
        return {
            d: [i for b in batches for i in b.column("SIGNAL_ID").to_pylist()]
            for d, batches in self.batches.items()
        }


def split(
    tmp_path: Path, rows: list[dict[str, str]], the_job: LedgerJob, days: list[date]
) -> tuple[pa.Schema | None, Counter[str], Counter[date], int, Written]:
    """Write `rows` as an export file and split it: schema, by type, by day, other, written."""
    source = tmp_path / "export.csv.gz"
    write_export_file(source, iter(rows))
    written = Written()
    schema, by_type, by_day, other = split_export_file(source, the_job, days, written)
    return schema, by_type, by_day, other, written


def test_rows_are_split_by_the_utc_day_of_their_signal(tmp_path: Path) -> None:
    rows = [
        row("a", "order", "2026-03-01T00:00:00.000Z", "2026-03-02T09:00:00.000Z"),
        row("b", "pageView", "2026-03-01T23:59:59.999Z", "2026-03-02T00:00:01.000Z"),
        row("c", "emailOpen", "", "2026-03-02T10:00:00.000Z"),  # marketing: TIMESTAMP only
        row("d", "order", "2026-03-02T00:00:00.000Z", "2026-03-01T12:00:00.000Z"),
        row("e", "pageView", "2026-03-03T08:00:00.000Z", "2026-03-03T08:00:00.000Z"),
        row("f", "emailOpen", "", "2026-03-03T23:59:59.999Z"),
        row("g", "pageView", "2026-03-01T12:00:00.000Z", ""),
        row("h", "order", "2026-03-02T01:30:00.000+02:00", ""),  # 2026-03-01 23:30 UTC
    ]
    schema, by_type, by_day, other, written = split(tmp_path, rows, job(1, 3), [day(1), day(2)])
    assert written.ids() == {day(1): ["a", "b", "g", "h"], day(2): ["c", "d"]}
    assert by_day == {day(1): 4, day(2): 2}
    assert other == 2  # e and f: day 3 is in the job's window, but not asked for
    assert by_type == {"order": 3, "pageView": 3, "emailOpen": 2}  # the whole file
    assert schema == export_schema(list(EXPORT_COLUMNS))
    for batches in written.batches.values():
        assert all(b.schema == schema for b in batches)
    (first_day,) = written.batches[day(1)]
    assert first_day.column("SIGNAL_TIMESTAMP").to_pylist()[2] == datetime(
        2026, 3, 1, 12, tzinfo=UTC
    )


def test_every_day_asked_for_and_none_asked_for(tmp_path: Path) -> None:
    rows = [
        row("a", "order", "2026-03-01T10:00:00.000Z"),
        row("b", "order", "2026-03-03T10:00:00.000Z"),
    ]
    _, by_type, by_day, other, written = split(tmp_path, rows, job(1, 3), [day(1), day(2), day(3)])
    assert written.ids() == {day(1): ["a"], day(3): ["b"]}  # nothing handed over for day 2
    assert (by_day, other) == ({day(1): 1, day(3): 1}, 0)
    _, by_type, by_day, other, written = split(tmp_path, rows, job(1, 3), [])
    assert (dict(by_day), other, written.ids(), dict(by_type)) == ({}, 2, {}, {"order": 2})


def test_rows_of_a_stored_signal_land_on_its_signal_day(tmp_path: Path) -> None:
    signal = StoredSignal(
        signal_id="s-1",
        signal_type="order",
        app_key="app",
        identity={"email": "ann@example.com"},
        session_id=None,
        content='{"name": "Order", "orderId": "o-1"}',
        test=False,
        signal_timestamp="2026-03-02T23:00:00.000Z",
        received_at="2026-03-03T00:05:00.000Z",  # TIMESTAMP: received the next day
    )
    _, by_type, by_day, other, written = split(
        tmp_path, [export_row(signal)], job(1, 3), [day(2), day(3)]
    )
    assert written.ids() == {day(2): ["s-1"]}
    assert (dict(by_type), dict(by_day), other) == ({"order": 1}, {day(2): 1}, 0)


def test_a_header_only_file_gives_the_schema_and_no_rows(tmp_path: Path) -> None:
    schema, by_type, by_day, other, written = split(tmp_path, [], job(1, 3), [day(1)])
    assert schema == export_schema(list(EXPORT_COLUMNS))
    assert (dict(by_type), dict(by_day), other, written.ids()) == ({}, {}, 0, {})


def test_a_file_with_only_the_timestamp_column_is_split_by_it(tmp_path: Path) -> None:
    source = tmp_path / "marketing.csv.gz"
    source.write_bytes(
        gzip.compress(
            b"SIGNAL_ID,SIGNAL_TYPE,TIMESTAMP\n"
            b"m-1,emailOpen,2026-03-02T01:00:00.000Z\n"
            b"m-2,emailSend,2026-03-01T01:00:00.000Z\n"
        )
    )
    written = Written()
    schema, by_type, by_day, other = split_export_file(source, job(1, 2), [day(2)], written)
    assert schema is not None and schema.names == ["SIGNAL_ID", "SIGNAL_TYPE", "TIMESTAMP"]
    assert written.ids() == {day(2): ["m-1"]}
    assert (dict(by_type), dict(by_day), other) == (
        {"emailOpen": 1, "emailSend": 1},
        {day(2): 1},
        1,
    )


GOOD = row("ok", "order", "2026-03-02T10:00:00.000Z")


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (
            row("late", "order", "2026-03-04T00:00:00.000Z"),
            "the signal's day 2026-03-04 is outside the job's window 2026-03-01..2026-03-03",
        ),
        (
            row("early", "order", "2026-02-28T23:59:59.999Z", "2026-03-01T00:00:00.000Z"),
            "the signal's day 2026-02-28 is outside the job's window 2026-03-01..2026-03-03",
        ),
        (
            row("fallback", "emailOpen", "", "2026-03-05T00:00:00.000Z"),
            "the signal's day 2026-03-05 is outside the job's window",
        ),
        (row("none", "order"), "SIGNAL_TIMESTAMP and TIMESTAMP are both empty"),
    ],
)
def test_a_row_without_a_day_of_the_window_fails_naming_it(
    tmp_path: Path, bad: dict[str, str], words: str
) -> None:
    with pytest.raises(ExportFileError) as caught:
        split(tmp_path, [GOOD, GOOD, bad, GOOD], job(1, 3), [day(2)])
    message = str(caught.value)
    # line 1 is the header: the third row is line 4
    assert "export.csv.gz" in message and "job acoustic-pipelines-behavior-1" in message
    assert " row 4: " in message and words in message


def test_the_row_named_is_counted_across_batches(tmp_path: Path) -> None:
    # about 1 kB a row: 6,000 rows are more than one 4 MB batch of the reader
    good = {**GOOD, "SIGNAL_CONTENT": "x" * 1_000}
    rows = [good] * 6_000 + [row("late", "order", "2026-03-09T00:00:00.000Z")]
    with pytest.raises(ExportFileError, match=r" row 6002: the signal's day 2026-03-09 "):
        split(tmp_path, rows, job(1, 3), [day(2)])
    _, by_type, by_day, _, written = split(tmp_path, rows[:-1], job(1, 3), [day(2)])
    assert len(written.batches[day(2)]) > 1  # the file did span several batches
    assert (dict(by_type), dict(by_day)) == ({"order": 6_000}, {day(2): 6_000})


# -- jobs_to_collect ---------------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path) -> ExportLedger:
    return ExportLedger(tmp_path / "exports.sqlite")


def add(
    ledger: ExportLedger,
    name: str,
    first: int,
    last: int,
    *,
    minutes: int,
    definition: str = "behavior",
    attempt: int = 1,
) -> str:
    reserve_job(
        ledger,
        name,
        window=(day(first), day(last)),
        now=NOW + timedelta(minutes=minutes),
        definition=definition,
        attempt=attempt,
    )
    return name


def test_the_newest_live_job_is_collected_for_each_day(ledger: ExportLedger) -> None:
    add(ledger, "b-1-3", 1, 3, minutes=0)
    add(ledger, "b-2", 2, 2, minutes=1)  # newer, for day 2
    add(ledger, "b-3-failed", 3, 3, minutes=2)
    ledger.mark_failed("b-3-failed", error="BAD_USER_INPUT")  # newer, but not live
    add(ledger, "b-4-old", 4, 4, minutes=3)
    ledger.mark_collected("b-4-old", rows=1, bytes=1, rows_by_type={}, collected_at=NOW)
    add(ledger, "b-4-new", 4, 4, minutes=4, attempt=2)
    ledger.mark_unknown("b-4-new", error="timeout")  # may exist: still the newest
    add(ledger, "m-1-4", 1, 4, minutes=0, definition="marketing")

    chosen = jobs_to_collect(ledger, ["behavior", "marketing"], [day(1), day(2), day(3), day(4)])
    assert sorted(chosen) == ["b-1-3", "b-2", "b-4-new", "m-1-4"]
    assert all(name == j.job_name for name, j in chosen.items())
    assert chosen["b-4-new"].status == "unknown"
    assert sorted(jobs_to_collect(ledger, ["behavior"], [day(2)])) == ["b-2"]
    assert sorted(jobs_to_collect(ledger, ["behavior"], [day(3)])) == ["b-1-3"]
    assert jobs_to_collect(ledger, [], [day(1)]) == {}


def test_a_later_attempt_reserved_at_the_same_moment_wins(ledger: ExportLedger) -> None:
    add(ledger, "b-1", 1, 1, minutes=0, attempt=1)
    add(ledger, "b-2", 1, 1, minutes=0, attempt=2)
    assert sorted(jobs_to_collect(ledger, ["behavior"], [day(1)])) == ["b-2"]


def test_a_day_no_live_job_covers_is_named(ledger: ExportLedger) -> None:
    add(ledger, "b-1-2", 1, 2, minutes=0)
    add(ledger, "m-2", 2, 2, minutes=0, definition="marketing")
    add(ledger, "m-3", 3, 3, minutes=0, definition="marketing")
    ledger.defer(["m-3"], reason="DAILY_LIMIT_EXCEEDED", now=NOW, until=NOW)
    with pytest.raises(MissingExportJobError) as caught:
        jobs_to_collect(ledger, ["behavior", "marketing"], [day(2), day(3)])
    message = str(caught.value)
    assert "behavior 2026-03-03" in message
    assert "marketing 2026-03-03" in message
    assert "2026-03-02" not in message
    assert "connect/export_jobs" in message


def test_day_writers_gather_small_interleaved_batches_into_few_row_groups(tmp_path: Path) -> None:
    """A CSV block split over days gives small batches: they are written as large row groups."""
    lake = Lake(open_location(str(tmp_path)))
    schema = pa.schema([("n", pa.int64())])
    days = [day(1), day(2), day(3)]
    counts = {day(1): 40_000, day(2): 500, day(3): 0}
    with ExitStack() as stack:
        staged = {d: stack.enter_context(lake.stage("exported", d)) for d in days}
        writers = stack.enter_context(DayWriters(lake, staged, "behavior"))
        for start in range(0, 40_000, 100):  # day 1 and day 2 interleaved, 100 rows a batch
            writers.write(day(1), pa.record_batch([pa.array(range(start, start + 100))], schema))
            if start < 500:
                writers.write(
                    day(2), pa.record_batch([pa.array(range(start, start + 100))], schema)
                )
        writers.close(schema, days)
        files = {
            d: pq.ParquetFile(staged[d].file(f"definition=behavior/{PARQUET_FILE}")) for d in days
        }
        assert {d: f.metadata.num_rows for d, f in files.items()} == counts
        assert [f.metadata.num_row_groups for f in files.values()] == [2, 1, 1]
        assert files[day(1)].read().column("n").to_pylist() == list(range(40_000))
        assert files[day(3)].schema_arrow == schema  # a day without rows: empty, with the schema
