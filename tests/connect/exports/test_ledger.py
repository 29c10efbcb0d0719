"""Contract of `connect/export_ledger.py`: the SQLite ledger of export jobs and today's usage.

- `reserve` creates a `reserved` job that counts against today's quota; a known job name returns
  the existing row unchanged (`created=False`), whatever the limits say.
- A job that would take today's usage past a limit less the reserve is refused with a
  `QuotaRefusedError` whose breaches name the limit and the overage; nothing is written.
- Usage of a UTC day T: jobs reserved on T; rows and bytes of live jobs reserved on T, plus those
  reserved on T-1 and not collected before T began; actual rows and bytes once collected, else
  the estimates. `failed`, `refused` and `deferred` jobs do not count.
- `defer` marks the UTC day of `now` exhausted: every reservation of that UTC day (and only
  that day) raises `DayExhaustedError`.
- `live_jobs_covering` finds live jobs of one definition whose window touches any given day;
  `attempts` counts the jobs of exactly one window, whatever their status.
- Reservation is atomic across processes: runs racing for the last jobs of the day never pass the
  limit together. `reserve_all` reserves a run's jobs together or none of them.
- `defer` keeps jobs unsent and uncounted, covering their days; a later `reserve_all` reserves a
  deferred job again exactly once.
- `verdicts` gives each day's latest plan verdict; `mark_collected` records collection per day,
  and a range job is `collected` once every day of its window landed.
- A ledger file from before these columns is upgraded when opened.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from acoustic_pipelines.connect.exports.ledger import (
    COLLECTED,
    DEFERRED,
    FAILED,
    LIVE_STATUSES,
    RESERVED,
    SUBMITTED,
    UNKNOWN,
    DayExhaustedError,
    DaysTakenError,
    ExportLedger,
    JobRequest,
    QuotaRefusedError,
    Reservation,
)
from acoustic_pipelines.connect.exports.quota import DailyLimits, LimitBreach, Usage
from tests.ledger_jobs import reserve_job
from tests.postgres import ENGINES, ledger_location, postgres_url  # noqa: F401 (fixture)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
YESTERDAY = TODAY - timedelta(days=1)
DAY = date(2026, 3, 1)  # a day exported (the window of the jobs), not the quota day
LIMITS = DailyLimits(jobs=5, bytes=10_000, rows=1_000)
ROOM = DailyLimits()  # Acoustic's limits: room for every job of a test that is not about limits
NO_RESERVE = Usage()


def days(first: int, last: int) -> tuple[date, date]:
    """The window from day `first` to day `last` of March 2026."""
    return date(2026, 3, first), date(2026, 3, last)


def at(day: date, hour: int, minute: int = 0, second: int = 0, ms: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, ms * 1000, tzinfo=UTC)


@pytest.fixture(params=ENGINES)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> ExportLedger:
    """A new ledger on each engine: a SQLite file, and a PostgreSQL database on a real server."""
    return ExportLedger(ledger_location(request.param, request, tmp_path))


def reserve(
    ledger: ExportLedger,
    name: str,
    *,
    now: datetime = NOW,
    rows: int = 100,
    size: int = 1_000,
    limits: DailyLimits = LIMITS,
    held_back: Usage = NO_RESERVE,
    definition: str = "behavior",
    window: tuple[date, date] = (DAY, DAY),
    attempt: int = 1,
) -> Reservation:
    return reserve_job(
        ledger,
        name,
        window=window,
        now=now,
        rows=rows,
        size=size,
        definition=definition,
        attempt=attempt,
        limits=limits,
        held_back=held_back,
        signal_types=("order", "pageView"),
    )


def test_a_reservation_creates_a_reserved_job_that_counts(ledger: ExportLedger) -> None:
    made = reserve(ledger, "job-1", rows=100, size=1_000, window=days(1, 3))
    assert made.created
    job = made.job
    assert (job.job_name, job.status, job.definition, job.attempt) == (
        "job-1",
        RESERVED,
        "behavior",
        1,
    )
    assert (job.window_start, job.window_end, job.days) == (
        date(2026, 3, 1),
        date(2026, 3, 3),
        [date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)],
    )
    assert (job.estimated_rows, job.estimated_bytes, job.run_id) == (100, 1_000, "run-1")
    assert job.signal_types == ("order", "pageView")
    assert job.remote_path == "Export/Signals/test/job-1.csv.gz"
    assert ledger.job("job-1") == job  # what was returned is what was stored
    assert ledger.job("job-2") is None
    assert ledger.usage(TODAY) == Usage(jobs=1, bytes=1_000, rows=100)
    # the next day: not a job of that day, but it may complete then (it is not collected)
    assert ledger.usage(TODAY + timedelta(days=1)) == Usage(jobs=0, bytes=1_000, rows=100)
    assert ledger.usage(TODAY + timedelta(days=2)) == Usage()
    assert ledger.usage(YESTERDAY) == Usage()


def test_a_known_job_name_returns_the_existing_row_unchanged(ledger: ExportLedger) -> None:
    first = reserve(ledger, "job-1", rows=100, size=1_000)
    submitted = ledger.mark_submitted(
        "job-1", data_job_id="dj-1", path="Export/Signals/x.csv.gz", submitted_at=NOW
    )
    for index in range(4):
        reserve(ledger, f"other-{index}")  # the day's 5 jobs are now taken
    # again, with other estimates, a later time and limits that would refuse a new job
    again = reserve(
        ledger, "job-1", rows=999, size=9_999, now=NOW + timedelta(hours=1), window=days(2, 4)
    )
    assert again == Reservation(submitted, created=False)
    assert (again.job.status, again.job.estimated_rows, again.job.reserved_at) == (
        SUBMITTED,
        100,
        first.job.reserved_at,
    )
    assert ledger.usage(TODAY) == Usage(jobs=5, bytes=5_000, rows=500)
    assert len(ledger.jobs()) == 5


@pytest.mark.parametrize(
    ("earlier", "job", "held_back", "limit", "maximum", "over"),
    [
        # five jobs taken: a sixth is one too many
        ([(100, 1_000)] * 5, (1, 1), Usage(), "jobs", 5, 1),
        ([(900, 10)], (200, 10), Usage(), "rows", 1_000, 100),
        ([(1, 9_000)], (1, 1_500), Usage(), "bytes", 10_000, 500),
        # the reserve is held back: 3 of the 5 jobs, 600 of the 1,000 rows are the pipeline's
        ([(1, 1)] * 3, (1, 1), Usage(jobs=2), "jobs", 3, 1),
        ([(500, 1)], (101, 1), Usage(rows=400), "rows", 600, 1),
    ],
)
def test_a_job_past_a_limit_is_refused_naming_the_limit_and_overage(
    ledger: ExportLedger,
    earlier: list[tuple[int, int]],
    job: tuple[int, int],
    held_back: Usage,
    limit: str,
    maximum: int,
    over: int,
) -> None:
    for index, (rows, size) in enumerate(earlier):
        reserve(ledger, f"earlier-{index}", rows=rows, size=size, held_back=held_back)
    before = ledger.usage(TODAY)
    with pytest.raises(QuotaRefusedError) as caught:
        reserve(ledger, "too-much", rows=job[0], size=job[1], held_back=held_back)
    refused = caught.value
    assert refused.job_names == ("too-much",)
    assert [(b.limit, b.maximum, b.over) for b in refused.breaches] == [(limit, maximum, over)]
    assert "too-much" in str(refused)
    assert f"daily export {limit}" in str(refused)
    assert f"over the {maximum:,} available by {over:,}" in str(refused)
    assert ledger.job("too-much") is None
    assert ledger.usage(TODAY) == before


def test_a_job_that_exactly_fills_the_limits_fits(ledger: ExportLedger) -> None:
    for index in range(4):
        reserve(ledger, f"job-{index}", rows=200, size=2_000)
    assert reserve(ledger, "last", rows=200, size=2_000).created
    assert ledger.usage(TODAY) == Usage(jobs=5, bytes=10_000, rows=1_000)


def test_failed_and_deferred_jobs_release_their_quota(ledger: ExportLedger) -> None:
    for index in range(5):
        reserve(ledger, f"job-{index}", rows=100, size=1_000)
    ledger.mark_unknown("job-0", error="read timeout")  # may exist at Connect: still counts
    assert ledger.usage(TODAY) == Usage(jobs=5, bytes=5_000, rows=500)
    with pytest.raises(QuotaRefusedError):
        reserve(ledger, "job-5")

    failed = ledger.mark_failed("job-1", error="BAD_USER_INPUT")
    assert (failed.status, failed.error) == (FAILED, "BAD_USER_INPUT")
    assert ledger.usage(TODAY) == Usage(jobs=4, bytes=4_000, rows=400)
    assert reserve(ledger, "job-5").created  # the failed job's place is free again

    [deferred] = ledger.defer(
        ["job-2"], reason="DAILY_LIMIT_EXCEEDED", now=NOW, until=at(TODAY + timedelta(days=1), 0)
    )
    assert deferred.status == DEFERRED
    assert ledger.usage(TODAY) == Usage(jobs=4, bytes=4_000, rows=400)
    # neither counts on the next day either
    assert ledger.usage(TODAY + timedelta(days=1)) == Usage(jobs=0, bytes=4_000, rows=400)


def test_jobs_reserved_yesterday_count_until_collected_before_today(ledger: ExportLedger) -> None:
    # reserved yesterday 23:00, collected today 00:30: its actual rows and bytes count today
    reserve(ledger, "late", now=at(YESTERDAY, 23), rows=100, size=1_000, limits=ROOM)
    ledger.mark_collected(
        "late", rows=300, bytes=3_000, rows_by_type={"order": 300}, collected_at=at(TODAY, 0, 30)
    )
    # reserved yesterday 22:00 and collected yesterday 23:30: done before today began
    reserve(ledger, "done", now=at(YESTERDAY, 22), rows=50, size=500, limits=ROOM)
    ledger.mark_collected(
        "done", rows=70, bytes=700, rows_by_type={"order": 70}, collected_at=at(YESTERDAY, 23, 30)
    )
    # reserved yesterday, never collected: it may complete today, its estimate counts
    reserve(ledger, "pending", now=at(YESTERDAY, 1), rows=20, size=200, limits=ROOM)
    # collected at exactly 00:00:00.000 today: not before today began, so it counts
    reserve(ledger, "midnight", now=at(YESTERDAY, 5), rows=1, size=10, limits=ROOM)
    ledger.mark_collected(
        "midnight", rows=4, bytes=40, rows_by_type={"order": 4}, collected_at=at(TODAY, 0)
    )
    # reserved two days ago, never collected: not counted any more
    reserve(ledger, "old", now=at(YESTERDAY - timedelta(days=1), 23), rows=9, size=90, limits=ROOM)
    # a job of today, reserved at 00:00:00.000: a job of today
    reserve(ledger, "today", now=at(TODAY, 0), rows=5, size=50, limits=ROOM)

    assert ledger.usage(TODAY) == Usage(jobs=1, bytes=3_000 + 200 + 40 + 50, rows=300 + 20 + 4 + 5)
    # yesterday: four jobs reserved then (their rows as now known), plus "old" (pending from
    # the day before)
    assert ledger.usage(YESTERDAY) == Usage(
        jobs=4, bytes=3_000 + 700 + 200 + 40 + 90, rows=300 + 70 + 20 + 4 + 9
    )


def test_actual_rows_and_bytes_replace_the_estimates_once_collected(
    ledger: ExportLedger,
) -> None:
    reserve(ledger, "big", rows=900, size=9_000)
    with pytest.raises(QuotaRefusedError):
        reserve(ledger, "next", rows=800, size=100)
    collected = ledger.mark_collected(
        "big",
        rows=100,
        bytes=700,
        rows_by_type={"pageView": 60, "order": 40},
        collected_at=NOW + timedelta(minutes=5),
    )
    assert (collected.status, collected.rows, collected.bytes) == (COLLECTED, 100, 700)
    assert collected.rows_by_type == {"order": 40, "pageView": 60}
    assert collected.collected_at == NOW + timedelta(minutes=5)
    assert ledger.usage(TODAY) == Usage(jobs=1, bytes=700, rows=100)
    assert reserve(ledger, "next", rows=800, size=100).created  # fits by the actual figures
    # an actual figure above the estimate counts too
    ledger.mark_collected("next", rows=850, bytes=200, rows_by_type={}, collected_at=NOW)
    assert ledger.usage(TODAY) == Usage(jobs=2, bytes=900, rows=950)


def test_an_exhausted_day_refuses_every_reservation_of_that_utc_day_only(
    ledger: ExportLedger,
) -> None:
    reserve(ledger, "sent")
    ledger.defer(["sent"], reason="DAILY_LIMIT_EXCEEDED: 20 jobs", now=NOW, until=NOW)
    exhausted = ledger.exhausted(TODAY)
    assert exhausted is not None and "DAILY_LIMIT_EXCEEDED: 20 jobs" in exhausted
    assert ledger.exhausted(YESTERDAY) is None
    assert ledger.exhausted(TODAY + timedelta(days=1)) is None

    later_today = [
        at(TODAY, 0),
        at(TODAY, 23, 59, 59, 999),
        # 2026-03-11 01:00 at +05:00 is 2026-03-10 20:00 UTC
        datetime(2026, 3, 11, 1, 0, tzinfo=timezone(timedelta(hours=5))),
    ]
    for index, moment in enumerate(later_today):
        with pytest.raises(DayExhaustedError) as caught:
            reserve(ledger, f"again-{index}", now=moment, limits=ROOM)
        assert f"again-{index}" in str(caught.value) and str(TODAY) in str(caught.value)
        assert "DAILY_LIMIT_EXCEEDED: 20 jobs" in str(caught.value)
    assert [j.job_name for j in ledger.jobs()] == ["sent"]
    # a known job name is still answered with its row: a retried run learns what happened
    with pytest.raises(DayExhaustedError):  # a deferred job waits for the next UTC day too
        reserve(ledger, "sent", now=at(TODAY, 13), limits=ROOM)
    assert ledger.job("sent").status == DEFERRED

    # 2026-03-10 20:00 at -05:00 is 2026-03-11 01:00 UTC: the next UTC day
    next_day = datetime(2026, 3, 10, 20, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert reserve(ledger, "tomorrow", now=next_day, limits=ROOM).created
    assert reserve(ledger, "yesterday", now=at(YESTERDAY, 12), limits=ROOM).created


def test_live_jobs_covering_some_days(ledger: ExportLedger) -> None:
    reserve(ledger, "b-1-3", window=days(1, 3), limits=ROOM)
    reserve(ledger, "b-5", window=days(5, 5), limits=ROOM)
    ledger.mark_failed("b-5", error="BAD_USER_INPUT")
    reserve(ledger, "b-7-9", window=days(7, 9), now=NOW + timedelta(minutes=1), limits=ROOM)
    ledger.mark_collected("b-7-9", rows=1, bytes=1, rows_by_type={}, collected_at=NOW)
    reserve(ledger, "b-8", window=days(8, 8), now=NOW + timedelta(minutes=2), limits=ROOM)
    ledger.mark_unknown("b-8", error="timeout")
    reserve(ledger, "m-1-9", window=days(1, 9), definition="marketing", limits=ROOM)

    def covering(*numbers: int, definition: str = "behavior") -> list[str]:
        found = ledger.live_jobs_covering(definition, [date(2026, 3, n) for n in numbers])
        return [j.job_name for j in found]

    assert covering(2) == ["b-1-3"]
    assert covering(1, 3) == ["b-1-3"]
    assert covering(4) == []
    assert covering(5) == []  # only a failed job covers it
    assert covering(4, 6) == []  # the windows around the days, not between them
    assert covering(3, 7) == ["b-1-3", "b-7-9"]
    assert covering(9, 1) == ["b-1-3", "b-7-9"]
    assert covering(8) == ["b-7-9", "b-8"]  # in reservation order
    assert covering() == []
    assert covering(5, definition="marketing") == ["m-1-9"]
    assert covering(5, definition="other") == []


def test_attempts_count_every_job_of_exactly_one_window(ledger: ExportLedger) -> None:
    assert ledger.attempts("behavior", *days(1, 3)) == 0
    reserve(ledger, "b-1", attempt=1, limits=ROOM, window=days(1, 3))
    ledger.mark_failed("b-1", error="BAD_USER_INPUT")
    reserve(ledger, "b-2", attempt=2, limits=ROOM, window=days(1, 3))
    reserve(ledger, "m-1", definition="marketing", limits=ROOM, window=days(1, 3))
    reserve(ledger, "b-1-4", limits=ROOM, window=days(1, 4))
    assert ledger.attempts("behavior", *days(1, 3)) == 2
    assert ledger.attempts("behavior", *days(1, 4)) == 1
    assert ledger.attempts("behavior", *days(2, 3)) == 0
    assert ledger.attempts("marketing", *days(1, 3)) == 1


def test_collected_history_is_the_newest_collected_jobs_of_a_definition(
    ledger: ExportLedger,
) -> None:
    for index in range(4):
        reserve(ledger, f"b-{index}", limits=ROOM, window=days(index + 1, index + 1))
    reserve(ledger, "m-0", limits=ROOM, definition="marketing")
    # collected out of reservation order; b-3 stays submitted
    for name, minute in (("b-1", 10), ("b-0", 20), ("b-2", 30), ("m-0", 40)):
        ledger.mark_collected(
            name, rows=1, bytes=1, rows_by_type={}, collected_at=NOW + timedelta(minutes=minute)
        )
    history = ledger.collected_history("behavior")
    assert [j.job_name for j in history] == ["b-2", "b-0", "b-1"]
    assert [j.job_name for j in ledger.collected_history("behavior", limit=2)] == ["b-2", "b-0"]
    assert [j.job_name for j in ledger.collected_history("marketing")] == ["m-0"]


def test_status_changes_are_recorded_and_unknown_names_refused(ledger: ExportLedger) -> None:
    reserve(ledger, "job")
    submitted = ledger.mark_submitted(
        "job",
        data_job_id="dj-7",
        path="Export/Signals/test/answer.csv.gz",
        submitted_at=NOW + timedelta(seconds=2),
    )
    assert (submitted.status, submitted.data_job_id, submitted.submitted_at) == (
        SUBMITTED,
        "dj-7",
        NOW + timedelta(seconds=2),
    )
    assert submitted.remote_path == "Export/Signals/test/answer.csv.gz"  # Connect's answer
    assert ledger.mark_unknown("job", error="timeout").status == UNKNOWN
    assert [j.job_name for j in ledger.jobs(statuses=[UNKNOWN])] == ["job"]
    assert ledger.jobs(statuses=[RESERVED]) == []
    assert ledger.jobs(definition="marketing") == []
    for mark in (
        lambda: ledger.mark_failed("nope", error="x"),
        lambda: ledger.mark_unknown("nope", error="x"),
        lambda: ledger.mark_collected("nope", rows=1, bytes=1, rows_by_type={}, collected_at=NOW),
    ):
        with pytest.raises(KeyError, match="nope"):
            mark()


def test_the_ledger_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "exports.sqlite"
    reserve(ExportLedger(path), "job")
    again = ExportLedger(path)
    assert [j.job_name for j in again.jobs()] == ["job"]
    assert again.usage(TODAY) == Usage(jobs=1, bytes=1_000, rows=100)


# One process of the race: open the ledger, say "ready", wait for "go" on stdin, reserve one job
# against limits of 5 jobs, print the outcome.
RACER = textwrap.dedent(
    """
    import json, sys
    from datetime import date, datetime

    from acoustic_pipelines.connect.exports.ledger import ExportLedger, QuotaRefusedError
    from acoustic_pipelines.connect.exports.quota import DailyLimits, Usage

    path, name, now = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
    ledger = ExportLedger(path)
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        made = ledger.reserve(
            job_name=name, definition="behavior", window=(date(2026, 3, 1), date(2026, 3, 1)),
            attempt=1, signal_types=["order"], requested_path=name + ".csv",
            estimated=Usage(rows=10, bytes=10), limits=DailyLimits(jobs=5),
            reserve=Usage(), now=now,
        )
        outcome = {"created": made.created, "job": made.job.job_name}
    except QuotaRefusedError as exc:
        outcome = {"refused": [[b.limit, b.over] for b in exc.breaches]}
    print(json.dumps(outcome), flush=True)
    """
)


RACERS = 12


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("same_name", [False, True], ids=["different-jobs", "one-job"])
def test_parallel_processes_never_pass_a_limit_together(
    request: pytest.FixtureRequest, tmp_path: Path, same_name: bool, engine: str
) -> None:
    path = ledger_location(engine, request, tmp_path)
    ledger = ExportLedger(path)
    names = ["job"] * RACERS if same_name else [f"job-{i:02d}" for i in range(RACERS)]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(path), name, NOW.isoformat()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    try:
        for racer in processes:  # every process has its ledger open ...
            assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        for racer in processes:  # ... before any is told to go
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outcomes = []
        for racer in processes:
            out, err = racer.communicate(timeout=60)
            assert racer.returncode == 0, err
            outcomes.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for racer in processes:
            if racer.poll() is None:
                racer.kill()

    created = [o["job"] for o in outcomes if o.get("created")]
    live = ledger.jobs(statuses=list(LIVE_STATUSES))
    if same_name:
        assert len(created) == 1
        assert sum(1 for o in outcomes if o.get("created") is False) == RACERS - 1
        assert [j.job_name for j in live] == ["job"]
        return
    refused = [o["refused"] for o in outcomes if "refused" in o]
    assert len(created) == 5 and len(set(created)) == 5
    assert refused == [[["jobs", 1]]] * (RACERS - 5)
    assert sorted(j.job_name for j in live) == sorted(created)
    assert ledger.usage(TODAY) == Usage(jobs=5, bytes=50, rows=50)


# One process opening a ledger file that does not exist yet, once told to go.
OPENER = textwrap.dedent(
    """
    import sys
    from acoustic_pipelines.connect.exports.ledger import ExportLedger

    print("ready", flush=True)
    sys.stdin.readline()
    ExportLedger(sys.argv[1])
    print("opened", flush=True)
    """
)


@pytest.mark.parametrize("engine", ENGINES)
def test_processes_creating_a_new_ledger_together_all_succeed(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str
) -> None:
    """Several first runs at once: creating the tables (and switching a new SQLite file to WAL)
    must not fail any of them."""
    path = ledger_location(engine, request, tmp_path)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(RACERS)
    ]
    try:
        for opener in processes:
            assert opener.stdout is not None and opener.stdout.readline().strip() == "ready"
        for opener in processes:
            assert opener.stdin is not None
            opener.stdin.write("go\n")
            opener.stdin.flush()
        for opener in processes:
            out, err = opener.communicate(timeout=60)
            assert opener.returncode == 0 and out.strip() == "opened", err
    finally:
        for opener in processes:
            if opener.poll() is None:
                opener.kill()
    assert ExportLedger(path).jobs() == []


def test_a_deferral_of_an_unknown_job_records_nothing(ledger: ExportLedger) -> None:
    with pytest.raises(KeyError, match="nope"):
        ledger.defer(["nope"], reason="DAILY_LIMIT_EXCEEDED", now=NOW, until=NOW)
    assert ledger.exhausted(TODAY) is None


def request(name: str, *, rows: int = 100, size: int = 1_000, first: int = 1) -> JobRequest:
    return JobRequest(
        job_name=name,
        definition="behavior",
        window=days(first, first),
        attempt=1,
        signal_types=("order",),
        requested_path=f"Export/Signals/test/{name}.csv",
        estimated=Usage(rows=rows, bytes=size),
    )


def test_a_runs_jobs_are_reserved_together_or_not_at_all(ledger: ExportLedger) -> None:
    reserve(ledger, "elsewhere-1")
    reserve(ledger, "elsewhere-2")
    before = ledger.jobs()
    with pytest.raises(QuotaRefusedError) as caught:
        ledger.reserve_all(
            [request(f"run-{i}", first=i) for i in (1, 2, 3, 4)],
            limits=LIMITS,
            reserve=NO_RESERVE,
            now=NOW,
        )
    assert ledger.jobs() == before  # not the 3 that would have fitted
    assert "none of the 4 export jobs (run-1, run-2, run-3, run-4) reserved" in str(caught.value)
    assert "daily export jobs: 2 used + 4 planned = 6, over the 5 available by 1" in str(
        caught.value
    )
    made = ledger.reserve_all(
        [request("elsewhere-1"), request("run-1"), request("run-2"), request("run-3")],
        limits=LIMITS,
        reserve=NO_RESERVE,
        now=NOW,
    )
    assert [(r.job.job_name, r.created) for r in made] == [
        ("elsewhere-1", False),
        ("run-1", True),
        ("run-2", True),
        ("run-3", True),
    ]
    assert ledger.usage(TODAY).jobs == 5


def test_deferred_jobs_wait_uncounted_and_are_reserved_again_once(ledger: ExportLedger) -> None:
    ledger.reserve_all(
        [request("a"), request("b", first=2)], limits=LIMITS, reserve=NO_RESERVE, now=NOW
    )
    midnight = at(TODAY + timedelta(days=1), 0)
    deferred = ledger.defer(
        ["a", "b"], reason="DAILY_LIMIT_EXCEEDED: 20 jobs", now=NOW, until=midnight
    )
    assert [(j.status, j.deferred_until, j.error) for j in deferred] == [
        (DEFERRED, midnight, "DAILY_LIMIT_EXCEEDED: 20 jobs")
    ] * 2
    assert ledger.usage(TODAY).jobs == 0 and ledger.exhausted(TODAY)
    assert [
        j.job_name for j in ledger.live_jobs_covering("behavior", [DAY], statuses=[DEFERRED])
    ] == ["a"]
    tomorrow = NOW + timedelta(days=1)
    first = ledger.reserve_all(
        [request("a"), request("b", first=2)], limits=LIMITS, reserve=NO_RESERVE, now=tomorrow
    )
    second = ledger.reserve_all(
        [request("a"), request("b", first=2)], limits=LIMITS, reserve=NO_RESERVE, now=tomorrow
    )
    assert [r.created for r in first] == [True, True] and [r.created for r in second] == [
        False,
        False,
    ]
    assert {(j.status, j.reserved_at, j.error) for j in ledger.jobs()} == {
        (RESERVED, tomorrow, None)
    }
    assert ledger.usage(tomorrow.date()).jobs == 2


def test_the_latest_verdict_of_each_day_binds(ledger: ExportLedger) -> None:
    assert ledger.verdicts([DAY]) == {DAY: None}
    breach = LimitBreach("jobs", 1, 0, 2)
    ledger.record_verdict(
        plan_id="p1",
        days=[DAY, DAY + timedelta(days=1)],
        passed=False,
        breaches=[breach],
        forced=False,
        now=NOW,
        run_id="r1",
    )
    found = ledger.verdicts([DAY, DAY + timedelta(days=1)])
    assert {v.plan_id for v in found.values()} == {"p1"}
    assert not found[DAY].passed and found[DAY].breaches == (breach,)
    assert "over the 1 available by 1" in str(found[DAY])
    ledger.record_verdict(
        plan_id="p2",
        days=[DAY],
        passed=True,
        breaches=[],
        forced=True,
        now=NOW + timedelta(seconds=1),
        run_id="r2",
    )
    found = ledger.verdicts([DAY, DAY + timedelta(days=1)])
    assert (found[DAY].plan_id, found[DAY].passed, found[DAY].forced) == ("p2", True, True)
    assert found[DAY + timedelta(days=1)].plan_id == "p1"


def test_a_range_job_is_collected_once_every_day_of_its_window_landed(ledger: ExportLedger) -> None:
    reserve(ledger, "range", window=days(1, 3))
    middle = date(2026, 3, 2)
    job = ledger.mark_collected(
        "range", rows=9, bytes=500, rows_by_type={"order": 9}, collected_at=NOW, days={middle: 3}
    )
    assert job.status == RESERVED and ledger.collected_days("range") == {middle}
    job = ledger.mark_collected(
        "range",
        rows=9,
        bytes=500,
        rows_by_type={"order": 9},
        collected_at=NOW,
        days={date(2026, 3, 1): 2, date(2026, 3, 3): None},
    )
    assert job.status == COLLECTED and job.rows == 9
    assert ledger.collected_days("range") == set(job.days)


def test_a_ledger_written_before_deferral_is_upgraded_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute(
            "INSERT INTO export_jobs VALUES ('old', 'behavior', '2026-03-01', '2026-03-01', 1, "
            "'[\"order\"]', 'p.csv', 'submitted', 1, 1, '2026-03-10T12:00:00.000+00:00', "
            "NULL, 'dj', 'p.csv.gz', NULL, NULL, NULL, NULL, NULL, NULL)"
        )
    ledger = ExportLedger(path)
    [job] = ledger.jobs()
    assert (job.job_name, job.status, job.deferred_until) == ("old", SUBMITTED, None)
    ledger.defer(["old"], reason="r", now=NOW, until=NOW)
    assert ledger.job("old").status == DEFERRED


OLD_SCHEMA = """
CREATE TABLE export_jobs (
    job_name TEXT PRIMARY KEY, definition TEXT NOT NULL, window_start TEXT NOT NULL,
    window_end TEXT NOT NULL, attempt INTEGER NOT NULL, signal_types TEXT NOT NULL,
    requested_path TEXT NOT NULL, status TEXT NOT NULL, estimated_rows INTEGER NOT NULL,
    estimated_bytes INTEGER NOT NULL, reserved_at TEXT NOT NULL, run_id TEXT, data_job_id TEXT,
    path TEXT, submitted_at TEXT, rows INTEGER, bytes INTEGER, rows_by_type TEXT,
    collected_at TEXT, error TEXT
);
"""


def test_an_exclusive_reservation_refuses_days_another_run_took_meanwhile(
    ledger: ExportLedger,
) -> None:
    """Two runs planned overlapping ranges at once (a backfill and the schedule): the second
    to reserve is refused whole, so no day is exported twice; a forced plan may overlap."""
    ledger.reserve_all([request("range", first=1)], limits=ROOM, reserve=NO_RESERVE, now=NOW)
    single = request("day-1", first=1)
    other = request("day-5", first=5)
    with pytest.raises(DaysTakenError) as caught:
        ledger.reserve_all(
            [other, single], limits=ROOM, reserve=NO_RESERVE, now=NOW, exclusive=True
        )
    assert "day-1 covers range (2026-03-01..2026-03-01, reserved)" in str(caught.value)
    assert "Run it again" in str(caught.value)
    assert [j.job_name for j in ledger.jobs()] == ["range"]  # day-5 not reserved either
    forced = ledger.reserve_all([single], limits=ROOM, reserve=NO_RESERVE, now=NOW)
    assert forced[0].created
