"""Contract of `connect/quota.py`: the daily export limits as pure arithmetic.

- A plan fits while used + planned ≤ limit - reserve, for jobs, bytes and rows; each breach names
  the limit and by how much. `share_used` is the share of (limit - reserve) a plan would take.
- `pack_range` never plans over what is left today, covers each day at most once with windows of
  consecutive days, leaves only a tail of later days uncovered, and uses one job per run of
  consecutive days (one job for a whole contiguous range that fits).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acoustic_pipelines.connect.exports.quota import (
    DailyLimits,
    ExportWindow,
    Usage,
    check_plan,
    pack_range,
    remaining_today,
    share_used,
)

LIMITS = DailyLimits()
DAY = date(2026, 1, 1)


def days(count: int, first: date = DAY) -> list[date]:
    return [first + timedelta(days=i) for i in range(count)]


def test_the_documented_limits() -> None:
    assert (LIMITS.jobs, LIMITS.bytes, LIMITS.rows) == (20, 10**9, 2_000_000)


@pytest.mark.parametrize(
    ("used", "planned", "reserve", "breaches"),
    [
        (Usage(), Usage(20, 10**9, 2_000_000), Usage(), {}),
        (Usage(19, 0, 0), Usage(1, 0, 0), Usage(), {}),
        (Usage(19, 0, 0), Usage(2, 0, 0), Usage(), {"jobs": 1}),
        (Usage(0, 0, 1_500_000), Usage(1, 0, 600_000), Usage(), {"rows": 100_000}),
        (Usage(1, 999_999_999, 0), Usage(1, 2, 0), Usage(), {"bytes": 1}),
        (Usage(15, 0, 0), Usage(3, 0, 0), Usage(jobs=3), {"jobs": 1}),
        (Usage(), Usage(1, 0, 1), Usage(20, 0, 0), {"jobs": 1}),
        (Usage(20, 10**9, 2 * 10**6), Usage(1, 1, 1), Usage(), {"jobs": 1, "bytes": 1, "rows": 1}),
    ],
)
def test_check_plan(used: Usage, planned: Usage, reserve: Usage, breaches: dict[str, int]) -> None:
    found = check_plan(used, planned, LIMITS, reserve)
    assert {b.limit: b.over for b in found} == breaches
    for breach in found:
        assert breach.limit in str(breach) and f"by {breach.over:,}" in str(breach)


def test_share_used_and_remaining() -> None:
    shares = share_used(Usage(10, 0, 1_000_000), Usage(6, 0, 600_000), LIMITS, Usage(jobs=0))
    assert shares == {"jobs": 0.8, "bytes": 0.0, "rows": 0.8}
    assert share_used(Usage(8, 0, 0), Usage(), LIMITS, Usage(jobs=10))["jobs"] == 0.8
    assert share_used(Usage(1, 0, 0), Usage(), DailyLimits(jobs=0))["jobs"] == float("inf")
    assert remaining_today(Usage(5, 10, 10), LIMITS, Usage(jobs=2)) == Usage(
        13, 10**9 - 10, 2_000_000 - 10
    )
    assert remaining_today(Usage(30, 0, 0), LIMITS) == Usage(0, 10**9, 2_000_000)


def test_a_range_that_fits_is_one_job() -> None:
    month = days(30)
    estimates = {d: Usage(rows=10_000, bytes=1_000_000) for d in month}
    (window,) = pack_range(month, estimates, remaining_today(Usage(), LIMITS))
    assert (window.start, window.end, window.rows) == (month[0], month[-1], 300_000)
    assert window.timestamp_start == "2026-01-01T00:00:00.000Z"
    assert window.timestamp_end == "2026-01-30T23:59:59.999Z"


def test_splits_at_gaps_and_at_the_job_window_size() -> None:
    picked = days(3) + days(2, DAY + timedelta(days=10))
    windows = pack_range(picked, {}, Usage(5, 1, 1))
    assert [(w.start, w.end) for w in windows] == [(picked[0], picked[2]), (picked[3], picked[4])]
    assert len(pack_range(days(10), {}, Usage(5, 1, 1), max_days_per_job=4)) == 3


def test_what_does_not_fit_today_is_left_for_later() -> None:
    estimates = {d: Usage(rows=500_000) for d in days(6)}
    windows = pack_range(days(6), estimates, remaining_today(Usage(), LIMITS))
    assert [(w.start, w.end, w.rows) for w in windows] == [
        (DAY, DAY + timedelta(days=3), 2 * 10**6)
    ]
    assert pack_range(days(3), {}, Usage(0, 10, 10)) == []
    assert len(pack_range(days(2) + days(2, DAY + timedelta(days=5)), {}, Usage(1, 9, 9))) == 1


estimates = st.integers(0, 300_000)


@given(
    count=st.integers(1, 40),
    gaps=st.sets(st.integers(0, 45), max_size=8),
    rows=st.lists(estimates, min_size=48, max_size=48),
    sizes=st.lists(estimates, min_size=48, max_size=48),
    left=st.tuples(st.integers(0, 20), st.integers(0, 3_000_000), st.integers(0, 3_000_000)),
    max_days=st.one_of(st.none(), st.integers(1, 10)),
)
def test_packing_properties(
    count: int,
    gaps: set[int],
    rows: list[int],
    sizes: list[int],
    left: tuple[int, int, int],
    max_days: int | None,
) -> None:
    picked = [d for i, d in enumerate(days(count + len(gaps))) if i not in gaps]
    per_day = {
        d: Usage(rows=rows[i], bytes=sizes[i]) for i, d in enumerate(days(48))
    }  # 40 + 8 gaps
    remaining = Usage(*left)
    windows = pack_range(picked, per_day, remaining, max_days_per_job=max_days)
    covered = [d for w in windows for d in w.days]
    # never over the remaining quota
    assert len(windows) <= remaining.jobs
    assert sum(w.rows for w in windows) <= remaining.rows
    assert sum(w.bytes for w in windows) <= remaining.bytes
    # each day at most once, only picked days, the oldest ones: the rest is a tail for later
    assert len(covered) == len(set(covered)) and covered == picked[: len(covered)]
    for w in windows:
        assert w.rows == sum(per_day[d].rows for d in w.days)
        assert max_days is None or len(w.days) <= max_days
    # fewest jobs: one per run of consecutive covered days (within the window size)
    runs = 1 + sum(1 for a, b in zip(covered, covered[1:], strict=False) if b != a + timedelta(1))
    if covered and max_days is None:
        assert len(windows) == runs
    # everything is covered when the whole range fits
    total = Usage(
        runs if covered else 0,
        sum(per_day[d].bytes for d in picked),
        sum(per_day[d].rows for d in picked),
    )
    fits = remaining.rows >= total.rows and remaining.bytes >= total.bytes
    all_runs = 1 + sum(1 for a, b in zip(picked, picked[1:], strict=False) if b != a + timedelta(1))
    if fits and max_days is None and remaining.jobs >= all_runs:
        assert covered == picked


def test_window_days() -> None:
    assert ExportWindow(DAY, DAY + timedelta(days=2), 0, 0).days == days(3)
