"""Contract of `connect/exports/planning.py`: which export jobs a day or a range needs, and their cost.

- Per enabled definition, the requested days are packed into one job per run of consecutive days
  (at most `max_days_per_job` days each); the job's name is
  `<prefix>-<definition>-<YYYYMMDD>-<YYYYMMDD>-<attempt>` and its path
  `<folder>/<naming_prefix><name>_<start>_<end>[_<attempt>].csv`.
- Days a live ledger job covers are not planned again (they are listed in `covered`) unless
  `force`, which plans them again as the next attempt of their window.
- A day's estimate: per signal type of the definition, the larger of its average rows per day in
  collected jobs and the rows pushed that day; the default when neither knows a type; bytes per
  row from the collected jobs' actual bytes (less the header), else the default; rounded up. A
  job adds `HEADER_BYTES`.
- The plan is checked as a whole against what is left today: `breaches` names every limit it
  would pass (none without jobs; every limit once the day is exhausted), `fits_through` is the
  last requested day whose prefix fits. The plan survives a JSON round trip unchanged.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acoustic_pipelines.config.exports import (
    ExportDefinitionConfig,
    ExportEstimate,
    ExportLimits,
    ExportQuantities,
    ExportsConfig,
)
from acoustic_pipelines.connect.exports.ledger import ExportLedger
from acoustic_pipelines.connect.exports.planning import (
    HEADER_BYTES,
    DayEstimate,
    ExportPlan,
    estimate_day,
    job_name,
    plan_exports,
    target_path,
)
from acoustic_pipelines.connect.exports.quota import DailyLimits, Usage, window_days
from tests.ledger_jobs import reserve_job

NOW = datetime(2026, 3, 20, 9, 30, tzinfo=UTC)
TODAY = NOW.date()
ROWS, PER_ROW = 10_000, 300  # the default estimate of ExportsConfig


def day(n: int) -> date:
    """Day `n` of March 2026 (days exported, not the quota day)."""
    return date(2026, 3, n)


def span(first: int, last: int) -> list[date]:
    return [day(n) for n in range(first, last + 1)]


BEHAVIOR = ExportDefinitionConfig(
    name="behavior",
    signal_types=["order", "pageView"],
    folder="Export/Signals/test",
    naming_prefix="signals_",
    notify=["data@example.com"],
)
MARKETING = ExportDefinitionConfig(name="marketing", signal_types=["emailOpen"])
DISABLED = ExportDefinitionConfig(name="off", enabled=False, signal_types=["order"])


def config(*definitions: ExportDefinitionConfig, **settings: object) -> ExportsConfig:
    return ExportsConfig(
        definitions=list(definitions or (BEHAVIOR, MARKETING, DISABLED)),
        **settings,  # type: ignore[arg-type]
    )


@pytest.fixture
def ledger(tmp_path: Path) -> ExportLedger:
    return ExportLedger(tmp_path / "exports.sqlite")


def plan(
    ledger: ExportLedger,
    days: list[date],
    exports: ExportsConfig | None = None,
    *,
    pushed: dict[date, dict[str, int]] | None = None,
    now: datetime = NOW,
    force: bool = False,
) -> ExportPlan:
    return plan_exports(
        exports or config(),
        days,
        ledger=ledger,
        pushed_by_day=pushed or {},
        now=now,
        force=force,
    )


def add_job(
    ledger: ExportLedger,
    definition: str,
    first: int,
    last: int,
    *,
    attempt: int = 1,
    rows: int = 0,
    size: int = 0,
    now: datetime = NOW,
) -> str:
    """Reserve a job in the ledger the way a run would, with Acoustic's limits."""
    name = job_name("acoustic-pipelines", definition, day(first), day(last), attempt)
    reserve_job(
        ledger,
        name,
        window=(day(first), day(last)),
        now=now,
        rows=rows,
        size=size,
        definition=definition,
        attempt=attempt,
    )
    return name


def collect(ledger: ExportLedger, name: str, by_type: dict[str, int], size: int) -> None:
    ledger.mark_collected(
        name, rows=sum(by_type.values()), bytes=size, rows_by_type=by_type, collected_at=NOW
    )


def windows(found: ExportPlan, definition: str = "behavior") -> list[tuple[date, date]]:
    return [(j.window_start, j.window_end) for j in found.jobs if j.definition == definition]


def test_a_day_is_one_job_per_enabled_definition(ledger: ExportLedger) -> None:
    found = plan(ledger, [day(1)])
    behavior, marketing = found.jobs
    assert behavior.job_name == "acoustic-pipelines-behavior-20260301-20260301-1"
    assert behavior.path == "Export/Signals/test/signals_behavior_2026-03-01_2026-03-01.csv"
    assert (behavior.definition, behavior.window_start, behavior.window_end) == (
        "behavior",
        day(1),
        day(1),
    )
    assert (behavior.attempt, behavior.days, behavior.signal_types, behavior.notify) == (
        1,
        1,
        ("order", "pageView"),
        ("data@example.com",),
    )
    assert (behavior.estimated_rows, behavior.estimated_bytes) == (
        ROWS,
        ROWS * PER_ROW + HEADER_BYTES,
    )
    assert behavior.estimate_sources == ("default",)
    assert marketing.job_name == "acoustic-pipelines-marketing-20260301-20260301-1"
    assert marketing.path == "Export/Signals/acoustic-pipelines/marketing_2026-03-01_2026-03-01.csv"
    assert marketing.notify == ()
    assert (found.first_day, found.last_day, found.quota_day) == (day(1), day(1), TODAY)
    assert found.covered == () and found.exhausted is None and not found.forced
    assert found.planned == Usage(jobs=2, bytes=2 * (ROWS * PER_ROW + HEADER_BYTES), rows=2 * ROWS)
    assert found.used == Usage() and found.breaches == []
    assert found.limits == DailyLimits() and found.reserve == Usage()
    assert ledger.jobs() == []  # planning sends and reserves nothing


def test_a_contiguous_range_is_one_job_per_definition(ledger: ExportLedger) -> None:
    month = span(1, 31)
    found = plan(ledger, list(reversed(month)) + month[:3])  # any order, repeats
    assert windows(found) == [(day(1), day(31))] == windows(found, "marketing")
    (behavior, _) = found.jobs
    assert behavior.job_name == "acoustic-pipelines-behavior-20260301-20260331-1"
    assert behavior.path == "Export/Signals/test/signals_behavior_2026-03-01_2026-03-31.csv"
    assert (behavior.days, behavior.estimated_rows) == (31, 31 * ROWS)
    assert behavior.estimated_bytes == 31 * ROWS * PER_ROW + HEADER_BYTES
    assert (found.first_day, found.last_day) == (day(1), day(31))


def test_a_gap_and_the_job_size_split_a_range(ledger: ExportLedger) -> None:
    assert windows(plan(ledger, span(1, 3) + span(6, 7))) == [(day(1), day(3)), (day(6), day(7))]
    limited = config(max_days_per_job=4)
    assert windows(plan(ledger, span(1, 10), limited)) == [
        (day(1), day(4)),
        (day(5), day(8)),
        (day(9), day(10)),
    ]
    assert windows(plan(ledger, span(1, 5) + [day(7)], limited)) == [
        (day(1), day(4)),
        (day(5), day(5)),
        (day(7), day(7)),
    ]


@settings(
    max_examples=60,
    deadline=None,
    # the ledger is only read: one empty ledger serves every example
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    offsets=st.sets(st.integers(0, 60), min_size=1, max_size=30),
    max_days=st.one_of(st.none(), st.integers(1, 10)),
)
def test_every_requested_day_is_in_exactly_one_job_per_definition(
    ledger: ExportLedger, offsets: set[int], max_days: int | None
) -> None:
    requested = [day(1) + timedelta(days=o) for o in offsets]
    found = plan(ledger, requested, config(max_days_per_job=max_days))
    for definition in ("behavior", "marketing"):
        jobs = [j for j in found.jobs if j.definition == definition]
        covered = [d for j in jobs for d in window_days(j.window_start, j.window_end)]
        assert covered == sorted(requested)
        assert sum(j.estimated_rows for j in jobs) == ROWS * len(requested)
        assert len({j.job_name for j in jobs}) == len(jobs)
        for job in jobs:
            assert max_days is None or job.days <= max_days
        # fewest jobs: the next job starts only after a gap, or when the last one is full
        for last, following in zip(jobs, jobs[1:], strict=False):
            gap = following.window_start > last.window_end + timedelta(days=1)
            assert gap or last.days == max_days


def test_days_a_live_job_covers_are_not_planned_again(ledger: ExportLedger) -> None:
    covering = add_job(ledger, "behavior", 2, 3)
    failed = add_job(ledger, "behavior", 4, 4)
    ledger.mark_failed(failed, error="BAD_USER_INPUT")  # released: day 4 is to export again
    found = plan(ledger, span(1, 5))
    assert windows(found) == [(day(1), day(1)), (day(4), day(5))]
    assert windows(found, "marketing") == [(day(1), day(5))]
    [covered] = found.covered
    assert (covered.definition, covered.job_name, covered.status) == (
        "behavior",
        covering,
        "reserved",
    )
    assert (covered.window_start, covered.window_end) == (day(2), day(3))
    assert found.notes == ()

    only_covered = plan(ledger, [day(2), day(3)], config(BEHAVIOR))
    assert only_covered.jobs == () and len(only_covered.covered) == 1
    assert only_covered.notes == ("behavior: every requested day is already exported",)


def test_force_plans_covered_days_again_as_the_next_attempt(ledger: ExportLedger) -> None:
    add_job(ledger, "behavior", 2, 3)
    found = plan(ledger, [day(2), day(3)], config(BEHAVIOR), force=True)
    [again] = found.jobs
    assert found.forced and found.covered == ()
    assert (again.window_start, again.window_end, again.attempt) == (day(2), day(3), 2)
    assert again.job_name == "acoustic-pipelines-behavior-20260302-20260303-2"
    assert again.path == "Export/Signals/test/signals_behavior_2026-03-02_2026-03-03_2.csv"

    # a failed attempt is an attempt too: the third one gets _3
    add_job(ledger, "behavior", 2, 3, attempt=2)
    ledger.mark_failed(again.job_name, error="BAD_USER_INPUT")
    [third] = plan(ledger, [day(2), day(3)], config(BEHAVIOR), force=True).jobs
    assert third.attempt == 3
    assert third.job_name == "acoustic-pipelines-behavior-20260302-20260303-3"
    assert third.path == "Export/Signals/test/signals_behavior_2026-03-02_2026-03-03_3.csv"


def test_a_window_whose_job_failed_is_planned_as_its_next_attempt(ledger: ExportLedger) -> None:
    ledger.mark_failed(add_job(ledger, "marketing", 2, 3), error="BAD_USER_INPUT")
    found = plan(ledger, [day(2), day(3)], config(MARKETING))
    [retry] = found.jobs
    assert found.covered == () and not found.forced
    assert (retry.attempt, retry.job_name) == (
        2,
        "acoustic-pipelines-marketing-20260302-20260303-2",
    )
    assert retry.path.endswith("/marketing_2026-03-02_2026-03-03_2.csv")


def test_names_and_paths() -> None:
    assert job_name("p", "behavior", day(1), day(9), 3) == "p-behavior-20260301-20260309-3"
    assert target_path(BEHAVIOR, day(1), day(9), 1) == (
        "Export/Signals/test/signals_behavior_2026-03-01_2026-03-09.csv"
    )
    assert target_path(BEHAVIOR, day(1), day(9), 2) == (
        "Export/Signals/test/signals_behavior_2026-03-01_2026-03-09_2.csv"
    )


DEFAULT = ExportEstimate(rows_per_day=500, bytes_per_row=7)


def test_the_default_estimate_when_nothing_is_known() -> None:
    assert estimate_day(BEHAVIOR, history=[], pushed={}, default=DEFAULT) == DayEstimate(
        rows=500, bytes=3_500, source="default"
    )
    # pushes of other types, or none of the definition's, say nothing about it
    assert estimate_day(
        BEHAVIOR, history=[], pushed={"emailOpen": 90, "order": 0}, default=DEFAULT
    ) == DayEstimate(rows=500, bytes=3_500, source="default")


def test_pushes_estimate_the_day_of_the_definitions_types() -> None:
    assert estimate_day(
        BEHAVIOR, history=[], pushed={"order": 30, "pageView": 12, "emailOpen": 99}, default=DEFAULT
    ) == DayEstimate(rows=42, bytes=42 * 7, source="pushes")


def test_history_estimates_rows_per_type_per_day_and_bytes_per_row(ledger: ExportLedger) -> None:
    # two collected jobs over 3 days: order 70 rows, pageView 160 rows; 230 rows in
    # 2 * HEADER_BYTES + 11,500 bytes, so 50 bytes per row
    two_days = add_job(ledger, "behavior", 1, 2)
    collect(ledger, two_days, {"order": 40, "pageView": 160}, 200 * 50 + HEADER_BYTES)
    one_day = add_job(ledger, "behavior", 3, 3)
    collect(ledger, one_day, {"order": 30}, 30 * 50 + HEADER_BYTES)
    elsewhere = add_job(ledger, "marketing", 1, 1)
    collect(ledger, elsewhere, {"emailOpen": 10_000}, 10**6)  # another definition's history
    history = ledger.collected_history("behavior")
    assert len(history) == 2

    # order 70 / 3 + pageView 160 / 3 = 76.67, rounded up
    assert estimate_day(BEHAVIOR, history=history, pushed={}, default=DEFAULT) == DayEstimate(
        rows=77, bytes=77 * 50, source="history"
    )
    # per type the larger: order max(23.3, 50), pageView max(53.3, 10) = 103.3, rounded up
    assert estimate_day(
        BEHAVIOR, history=history, pushed={"order": 50, "pageView": 10}, default=DEFAULT
    ) == DayEstimate(rows=104, bytes=104 * 50, source="history+pushes")

    # in a plan: a day with pushes and a day without, the job adds the header bytes
    [job] = plan(ledger, [day(10), day(11)], config(BEHAVIOR), pushed={day(10): {"order": 50}}).jobs
    assert (job.estimated_rows, job.estimated_bytes) == (
        104 + 77,
        (104 + 77) * 50 + HEADER_BYTES,
    )
    assert job.estimate_sources == ("history", "history+pushes")


def test_bytes_are_rounded_up() -> None:
    estimate = estimate_day(
        BEHAVIOR,
        history=[],
        pushed={"order": 3},
        default=ExportEstimate(rows_per_day=1, bytes_per_row=1),
    )
    assert estimate == DayEstimate(rows=3, bytes=3, source="pushes")


def test_a_definitions_own_estimate_defaults_are_used(ledger: ExportLedger) -> None:
    own = ExportDefinitionConfig(
        name="own", signal_types=["order"], estimate=ExportEstimate(rows_per_day=5, bytes_per_row=2)
    )
    section = config(own, estimate=ExportEstimate(rows_per_day=7, bytes_per_row=3))
    [job] = plan(ledger, [day(1)], section).jobs
    assert (job.estimated_rows, job.estimated_bytes) == (5, 10 + HEADER_BYTES)
    [job] = plan(ledger, [day(1)], config(MARKETING, estimate=section.estimate)).jobs
    assert (job.estimated_rows, job.estimated_bytes) == (7, 21 + HEADER_BYTES)


def test_fits_through_is_the_last_day_whose_prefix_fits(ledger: ExportLedger) -> None:
    # one definition, 10,000 rows a day, 35,000 rows left: days 1-3 fit, day 4 does not
    section = config(BEHAVIOR, limits=ExportLimits(rows=35_000))
    found = plan(ledger, span(1, 5), section)
    assert found.fits_through == day(3)
    rows = found.breach("rows")
    assert rows is not None and rows.over == 50_000 - 35_000 and rows.maximum == 35_000
    assert found.breach("jobs") is None and found.breach("bytes") is None
    assert [b.limit for b in found.breaches] == ["rows"]

    # used today counts: 6,000 rows reserved leave 29,000, so days 1-2
    add_job(ledger, "marketing", 20, 20, rows=6_000, size=1)
    found = plan(ledger, span(1, 5), section)
    assert found.used == Usage(jobs=1, bytes=1, rows=6_000)
    assert found.fits_through == day(2)
    rows = found.breach("rows")
    assert rows is not None and rows.over == 6_000 + 50_000 - 35_000
    assert plan(ledger, span(1, 2), section).fits_through == day(2)
    assert plan(ledger, span(1, 2), section).breaches == []


def test_fits_through_counts_jobs_of_every_definition(ledger: ExportLedger) -> None:
    # two definitions and a gap: days 1-2 take 2 jobs, day 4 two more; 3 jobs are left
    section = config(
        BEHAVIOR, MARKETING, limits=ExportLimits(jobs=5), reserve=ExportQuantities(jobs=2)
    )
    found = plan(ledger, [day(1), day(2), day(4)], section)
    assert found.fits_through == day(2)
    assert [(b.limit, b.maximum, b.over) for b in found.breaches] == [("jobs", 3, 1)]
    assert found.shares["jobs"] == pytest.approx(4 / 3)
    assert found.remaining == Usage(jobs=3, bytes=10**9, rows=2_000_000)


def test_fits_through_is_none_when_not_even_the_first_day_fits(ledger: ExportLedger) -> None:
    section = config(BEHAVIOR, limits=ExportLimits(rows=9_999))
    assert plan(ledger, span(1, 2), section).fits_through is None
    roomy = plan(ledger, span(1, 2), config(BEHAVIOR))
    assert roomy.fits_through == day(2) and roomy.breaches == []


def test_a_plan_without_jobs_breaches_nothing(ledger: ExportLedger) -> None:
    # day 1 is covered by a job of yesterday whose rows (still counting today) pass the limit,
    # and today is exhausted
    add_job(ledger, "behavior", 1, 1, rows=3_000, now=NOW - timedelta(days=1))
    ledger.defer(
        [add_job(ledger, "behavior", 9, 9)], reason="DAILY_LIMIT_EXCEEDED", now=NOW, until=NOW
    )
    found = plan(ledger, [day(1)], config(BEHAVIOR, limits=ExportLimits(rows=1_000)))
    assert found.jobs == () and found.exhausted is not None
    assert found.used.rows == 3_000
    assert found.breaches == [] and found.breach("jobs") is None


def test_an_exhausted_day_makes_every_limit_a_breach(ledger: ExportLedger) -> None:
    name = add_job(ledger, "marketing", 9, 9, rows=10, size=20)
    add_job(ledger, "marketing", 8, 8, rows=1, size=2)
    ledger.defer([name], reason="DAILY_LIMIT_EXCEEDED: no more today", now=NOW, until=NOW)
    found = plan(ledger, [day(1)], config(BEHAVIOR))
    assert found.exhausted is not None and "DAILY_LIMIT_EXCEEDED: no more today" in found.exhausted
    assert [(b.limit, b.maximum, b.used, b.planned) for b in found.breaches] == [
        ("jobs", 0, 1, 1),
        ("bytes", 0, 2, ROWS * PER_ROW + HEADER_BYTES),
        ("rows", 0, 1, ROWS),
    ]
    tomorrow = plan(ledger, [day(1)], config(BEHAVIOR), now=NOW + timedelta(days=1))
    assert tomorrow.exhausted is None and tomorrow.breaches == []


def test_the_plan_survives_a_json_round_trip(ledger: ExportLedger) -> None:
    add_job(ledger, "behavior", 2, 2, rows=7, size=9)
    section = config(
        max_days_per_job=2,
        limits=ExportLimits(rows=25_000),
        reserve=ExportQuantities(jobs=1, rows=100, bytes=1_000),
    )
    found = plan(ledger, span(1, 5), section, pushed={day(4): {"emailOpen": 3}})
    assert found.jobs and found.covered and found.fits_through == day(1)
    again = ExportPlan.from_json(found.to_json())
    assert again == found
    assert again.to_json() == found.to_json()

    nothing = plan(ledger, [day(2)], config(BEHAVIOR))
    assert nothing.jobs == () and nothing.fits_through == day(2)
    assert ExportPlan.from_json(nothing.to_json().encode()) == nothing

    ledger.defer(
        [add_job(ledger, "behavior", 9, 9)], reason="DAILY_LIMIT_EXCEEDED", now=NOW, until=NOW
    )
    forced = plan(ledger, [day(2)], config(BEHAVIOR), force=True)
    assert forced.exhausted and forced.forced
    assert ExportPlan.from_json(forced.to_json()) == forced


def test_nothing_fits_on_an_exhausted_day(ledger: ExportLedger) -> None:
    refused = add_job(ledger, "marketing", 9, 9)
    ledger.defer([refused], reason="DAILY_LIMIT_EXCEEDED", now=NOW, until=NOW)
    found = plan(ledger, span(1, 2), config(BEHAVIOR))
    assert found.jobs and found.exhausted and found.breaches
    assert found.fits_through is None


def test_a_plan_needs_at_least_one_day(ledger: ExportLedger) -> None:
    with pytest.raises(ValueError, match="at least one day"):
        plan(ledger, [], config(BEHAVIOR))
