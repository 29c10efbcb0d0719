"""Acoustic Connect's daily export limits (20 jobs, 1 GB, 2 M rows per day) as pure arithmetic.

Source: seed 003 / ../shared/reference/acoustic-connect-api.md §4.5, §8 #14. Assumptions [A], the
same the sandbox makes:

- the day is the UTC day;
- "1 GB" is 10^9 bytes of compressed output (the stricter reading);
- a job counts at submission; its rows and bytes count on the UTC day it completes;
- a limit is reached when usage is at or over it: a plan fits while used + planned ≤ limit.

`used` is what this pipeline knows it used today (its ledger). The ``reserve`` is held back for
jobs run outside this pipeline (the Connect UI, other tools): the pipeline plans against
``limits - reserve``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = [
    "LIMIT_NAMES",
    "WARN_SHARE",
    "DailyLimits",
    "ExportWindow",
    "LimitBreach",
    "Usage",
    "check_plan",
    "pack_range",
    "remaining_today",
    "share_used",
    "window_days",
]

LIMIT_NAMES = ("jobs", "bytes", "rows")
WARN_SHARE = 0.8  # the share of a limit at which a warning is due


@dataclass(frozen=True)
class DailyLimits:
    """exportSignals limits per UTC day (reference §4.5); tests may lower them."""

    jobs: int = 20
    bytes: int = 1_000_000_000  # "1 GB", read as 10^9 bytes: the stricter of the two readings
    rows: int = 2_000_000


@dataclass(frozen=True)
class Usage:
    """Export jobs, output bytes and rows: used today, planned, reserved or left."""

    jobs: int = 0
    bytes: int = 0
    rows: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, n) + getattr(other, n) for n in LIMIT_NAMES))


@dataclass(frozen=True)
class LimitBreach:
    """One limit a plan would break: which, its value for us (limit - reserve), and by how much."""

    limit: str
    maximum: int
    used: int
    planned: int

    @property
    def over(self) -> int:
        """How far used + planned goes past the maximum."""
        return self.used + self.planned - self.maximum

    def __str__(self) -> str:
        return (
            f"daily export {self.limit}: {self.used:,} used + {self.planned:,} planned = "
            f"{self.used + self.planned:,}, over the {self.maximum:,} available by {self.over:,}"
        )


@dataclass(frozen=True)
class ExportWindow:
    """One planned export job: the UTC days it covers (consecutive) and its estimated size."""

    start: date
    end: date
    rows: int
    bytes: int

    @property
    def timestamp_start(self) -> str:
        """`timestampStart` of the job: the first day's 00:00:00.000Z."""
        return f"{self.start.isoformat()}T00:00:00.000Z"

    @property
    def timestamp_end(self) -> str:
        """`timestampEnd` of the job (inclusive): the last day's 23:59:59.999Z."""
        return f"{self.end.isoformat()}T23:59:59.999Z"

    @property
    def days(self) -> list[date]:
        """Every UTC day of the window, in order."""
        return window_days(self.start, self.end)


def window_days(start: date, end: date) -> list[date]:
    """Every UTC day from `start` to `end`, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _available(limits: DailyLimits, reserve: Usage) -> Usage:
    return Usage(*(max(0, getattr(limits, n) - getattr(reserve, n)) for n in LIMIT_NAMES))


def remaining_today(used: Usage, limits: DailyLimits, reserve: Usage = Usage()) -> Usage:
    """What is left today for this pipeline: limits - reserve - used, never below zero."""
    available = _available(limits, reserve)
    return Usage(*(max(0, getattr(available, n) - getattr(used, n)) for n in LIMIT_NAMES))


def check_plan(
    used: Usage, planned: Usage, limits: DailyLimits, reserve: Usage = Usage()
) -> list[LimitBreach]:
    """Every limit that used + planned would pass (limits less the reserve); empty when it fits."""
    available = _available(limits, reserve)
    breaches = [
        LimitBreach(n, getattr(available, n), getattr(used, n), getattr(planned, n))
        for n in LIMIT_NAMES
    ]
    return [b for b in breaches if b.over > 0]


def share_used(
    used: Usage, planned: Usage, limits: DailyLimits, reserve: Usage = Usage()
) -> dict[str, float]:
    """Per limit, the share of (limit - reserve) that used + planned takes (1.0 = all of it)."""
    available = _available(limits, reserve)
    shares = {}
    for name in LIMIT_NAMES:
        taken, maximum = getattr(used, name) + getattr(planned, name), getattr(available, name)
        shares[name] = taken / maximum if maximum else (0.0 if taken == 0 else float("inf"))
    return shares


def pack_range(
    days: Sequence[date],
    estimates_per_day: Mapping[date, Usage],
    remaining: Usage,
    *,
    max_days_per_job: int | None = None,
) -> list[ExportWindow]:
    """Pack days into the fewest export jobs that fit what is left today, oldest day first.

    One job per run of consecutive days (one job for a whole contiguous range that fits),
    split only at gaps, at ``max_days_per_job``, or where today's quota runs out: rows and
    bytes add up whatever the number of jobs, so the days that fit are the oldest ones whose
    estimates sum within ``remaining``; packing stops at the first day that does not fit (or
    needs a job beyond ``remaining.jobs``), and the days not covered are left for another UTC
    day. A day missing from ``estimates_per_day`` is estimated at zero.
    """
    windows: list[ExportWindow] = []
    rows = size = 0
    for day in sorted(set(days)):
        estimate = estimates_per_day.get(day, Usage())
        if rows + estimate.rows > remaining.rows or size + estimate.bytes > remaining.bytes:
            break
        last = windows[-1] if windows else None
        extends = (
            last is not None
            and day == last.end + timedelta(days=1)
            and (max_days_per_job is None or len(last.days) < max_days_per_job)
        )
        if last is not None and extends:
            windows[-1] = ExportWindow(
                last.start, day, last.rows + estimate.rows, last.bytes + estimate.bytes
            )
        elif len(windows) < remaining.jobs:
            windows.append(ExportWindow(day, day, estimate.rows, estimate.bytes))
        else:
            break
        rows, size = rows + estimate.rows, size + estimate.bytes
    return windows
