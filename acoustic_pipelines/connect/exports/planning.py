"""Export plans: which `exportSignals` jobs a day (or a backfilled range) needs, and their cost.

For each enabled export definition, a `deferred` job of the ledger covering requested days is
planned again as it was (same name, window and estimate: it is submitted once, when it fits);
the requested days not yet covered by a live or deferred job are packed into the fewest jobs
(one per run of consecutive days, at most `max_days_per_job` days each). Each job gets its
name, its SFTP path, and an estimate of its rows and bytes (:func:`estimate_day`). The plan is
checked against today's quota as a whole — every job of it, or none — so a run never exports
part of what it was asked for; when it does not fit, `fits_through` tells which prefix of the
range would fit today.

Planning reads the ledger and sends nothing: materializing only the plan is the dry run.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from acoustic_pipelines.config.exports import (
    ExportDefinitionConfig,
    ExportEstimate,
    ExportsConfig,
)
from acoustic_pipelines.connect.exports.ledger import DEFERRED, ExportLedger, LedgerJob
from acoustic_pipelines.connect.exports.quota import (
    LIMIT_NAMES,
    DailyLimits,
    ExportWindow,
    LimitBreach,
    Usage,
    check_plan,
    pack_range,
    remaining_today,
    share_used,
)

__all__ = [
    "EXPORT_JOBS",
    "EXPORT_PLAN",
    "HEADER_BYTES",
    "PLAN_FILE",
    "DayEstimate",
    "ExportPlan",
    "PlannedJob",
    "estimate_day",
    "job_name",
    "plan_exports",
    "target_path",
]

EXPORT_PLAN = "connect/export_plan"
EXPORT_JOBS = "connect/export_jobs"
PLAN_FILE = "plan.json"
#: Compressed bytes of a job's file beyond its rows (the gzip header and the CSV header row).
HEADER_BYTES = 1_000
UNLIMITED = Usage(jobs=10**9, bytes=10**18, rows=10**18)


@dataclass(frozen=True)
class DayEstimate:
    """Estimated rows and bytes of one definition's export of one day, and where they came from."""

    rows: int
    bytes: int
    source: str  # "history", "pushes", "history+pushes" or "default"


@dataclass(frozen=True)
class PlannedJob:
    """One job the plan would submit."""

    definition: str
    job_name: str
    window_start: date
    window_end: date
    attempt: int
    signal_types: tuple[str, ...]
    path: str
    notify: tuple[str, ...]
    estimated_rows: int
    estimated_bytes: int
    estimate_sources: tuple[str, ...]
    rows_by_day: tuple[tuple[date, int], ...] = ()
    deferred: str | None = None  # why the job waited, when it is a deferred job submitted again

    @property
    def window(self) -> ExportWindow:
        """The job's window: its days, `timestampStart` and `timestampEnd` (both inclusive)."""
        return ExportWindow(
            self.window_start, self.window_end, self.estimated_rows, self.estimated_bytes
        )

    @property
    def estimated(self) -> Usage:
        """The job's cost against the quota."""
        return Usage(jobs=1, bytes=self.estimated_bytes, rows=self.estimated_rows)

    @property
    def days(self) -> int:
        """How many UTC days the window covers."""
        return (self.window_end - self.window_start).days + 1

    def covers(self, day: date) -> bool:
        """Whether `day` is inside the job's window."""
        return self.window_start <= day <= self.window_end

    def rows_on(self, day: date) -> int:
        """The estimated rows of one day of the window (0 when not estimated per day)."""
        return dict(self.rows_by_day).get(day, 0)


@dataclass(frozen=True)
class CoveredDays:
    """Requested days a live job of the ledger already covers (not planned again)."""

    definition: str
    job_name: str
    status: str
    window_start: date
    window_end: date


@dataclass(frozen=True)
class ExportPlan:
    """What a run would submit, and today's quota before it."""

    plan_id: str
    created_at: datetime
    first_day: date
    last_day: date
    jobs: tuple[PlannedJob, ...]
    covered: tuple[CoveredDays, ...]
    used: Usage
    limits: DailyLimits
    reserve: Usage
    exhausted: str | None = None
    fits_through: date | None = None
    forced: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def quota_day(self) -> date:
        """The UTC day whose quota the plan was checked against."""
        return self.created_at.astimezone(UTC).date()

    @property
    def planned(self) -> Usage:
        """Jobs, rows and bytes of every planned job together."""
        total = Usage()
        for job in self.jobs:
            total = total + job.estimated
        return total

    @property
    def breaches(self) -> list[LimitBreach]:
        """Every limit the plan would pass (none when there is nothing to submit)."""
        if not self.jobs:
            return []
        if self.exhausted:
            return [
                LimitBreach(n, 0, getattr(self.used, n), getattr(self.planned, n))
                for n in LIMIT_NAMES
            ]
        return check_plan(self.used, self.planned, self.limits, self.reserve)

    def breach(self, limit: str) -> LimitBreach | None:
        """The breach of one limit ("jobs", "rows" or "bytes"), or None."""
        return next((b for b in self.breaches if b.limit == limit), None)

    @property
    def shares(self) -> dict[str, float]:
        """Per limit, the share of (limit - reserve) that used + planned takes."""
        return share_used(self.used, self.planned, self.limits, self.reserve)

    @property
    def remaining(self) -> Usage:
        """What is left today before the plan (nothing once Connect said the day is exhausted)."""
        if self.exhausted:
            return Usage()
        return remaining_today(self.used, self.limits, self.reserve)

    def maximum(self, limit: str) -> int:
        """The limit less the reserve: what the pipeline may use of it today."""
        return max(0, getattr(self.limits, limit) - getattr(self.reserve, limit))

    def to_json(self) -> str:
        """The plan as JSON (dates ISO), as stored beside the plan partition."""
        return json.dumps(asdict(self), default=_json_default, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ExportPlan:
        """Read a plan written by `to_json`."""
        raw = json.loads(text)
        return cls(
            plan_id=raw["plan_id"],
            created_at=datetime.fromisoformat(raw["created_at"]),
            first_day=date.fromisoformat(raw["first_day"]),
            last_day=date.fromisoformat(raw["last_day"]),
            jobs=tuple(_planned_job(j) for j in raw["jobs"]),
            covered=tuple(
                CoveredDays(
                    c["definition"],
                    c["job_name"],
                    c["status"],
                    date.fromisoformat(c["window_start"]),
                    date.fromisoformat(c["window_end"]),
                )
                for c in raw["covered"]
            ),
            used=Usage(**raw["used"]),
            limits=DailyLimits(**raw["limits"]),
            reserve=Usage(**raw["reserve"]),
            exhausted=raw.get("exhausted"),
            fits_through=date.fromisoformat(raw["fits_through"])
            if raw.get("fits_through")
            else None,
            forced=bool(raw.get("forced")),
            notes=tuple(raw.get("notes") or ()),
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} into a plan")


def _planned_job(raw: Mapping[str, Any]) -> PlannedJob:
    return PlannedJob(
        definition=raw["definition"],
        job_name=raw["job_name"],
        window_start=date.fromisoformat(raw["window_start"]),
        window_end=date.fromisoformat(raw["window_end"]),
        attempt=int(raw["attempt"]),
        signal_types=tuple(raw["signal_types"]),
        path=raw["path"],
        notify=tuple(raw["notify"]),
        estimated_rows=int(raw["estimated_rows"]),
        estimated_bytes=int(raw["estimated_bytes"]),
        estimate_sources=tuple(raw["estimate_sources"]),
        rows_by_day=tuple((date.fromisoformat(d), int(n)) for d, n in raw.get("rows_by_day", [])),
        deferred=raw.get("deferred"),
    )


def job_name(prefix: str, definition: str, start: date, end: date, attempt: int) -> str:
    """`<prefix>-<definition>-<YYYYMMDD>-<YYYYMMDD>-<attempt>`: unique per window and attempt."""
    return f"{prefix}-{definition}-{start:%Y%m%d}-{end:%Y%m%d}-{attempt}"


def target_path(definition: ExportDefinitionConfig, start: date, end: date, attempt: int) -> str:
    """The job's `to.sftp.path`: `<folder>/<prefix><name>_<start>_<end>[_<attempt>].csv`."""
    suffix = f"_{attempt}" if attempt > 1 else ""
    name = f"{definition.naming_prefix}{definition.name}_{start:%Y-%m-%d}_{end:%Y-%m-%d}{suffix}"
    return f"{definition.folder}/{name}.csv"


def estimate_day(
    definition: ExportDefinitionConfig,
    *,
    history: Sequence[LedgerJob],
    pushed: Mapping[str, int],
    default: ExportEstimate,
) -> DayEstimate:
    """Rows and bytes of one day of `definition`'s export.

    Per signal type, the larger of its average rows per day in earlier collected exports
    (`history`) and what this pipeline pushed that day (`pushed`, by signal type); when neither
    knows any of the definition's types, `default.rows_per_day`. Bytes per row come from the
    history's actual compressed bytes, else from the default.
    """
    per_type: dict[str, float] = {}
    days = sum(len(job.days) for job in history)
    for job in history:
        for signal_type, count in job.rows_by_type.items():
            per_type[signal_type] = per_type.get(signal_type, 0.0) + count / days
    sources = set()
    rows = 0.0
    for signal_type in definition.signal_types:
        seen = per_type.get(signal_type)
        sent = pushed.get(signal_type)
        if seen is not None:
            sources.add("history")
        if sent:
            sources.add("pushes")
        rows += max(seen or 0.0, float(sent or 0))
    if not sources:
        rows = float(default.rows_per_day)
    history_rows = sum(job.rows or 0 for job in history)
    history_bytes = sum(max(0, (job.bytes or 0) - HEADER_BYTES) for job in history)
    bytes_per_row = history_bytes / history_rows if history_rows else default.bytes_per_row
    source = "+".join(s for s in ("history", "pushes") if s in sources) or "default"
    count = math.ceil(rows)  # rounded up: the estimate guards a limit
    return DayEstimate(rows=count, bytes=math.ceil(count * bytes_per_row), source=source)


def plan_exports(
    config: ExportsConfig,
    days: Sequence[date],
    *,
    ledger: ExportLedger,
    pushed_by_day: Mapping[date, Mapping[str, int]],
    now: datetime,
    force: bool = False,
) -> ExportPlan:
    """Plan the jobs that export `days` for every enabled definition (nothing is sent).

    Args:
        config: The `exports:` section.
        days: The UTC days to export (a partition or a backfilled range).
        ledger: Earlier jobs: days they cover are not planned again (unless `force`), deferred
            jobs are planned again as they were, collected sizes feed the estimates, and
            today's usage comes from it.
        pushed_by_day: Signals this pipeline pushed per day and signal type.
        now: The current time (its UTC day is the quota day).
        force: Plan every day again, even days a live job already covers (a new attempt).
    """
    requested = sorted(set(days))
    if not requested:
        raise ValueError("plan_exports needs at least one day to export")
    today = now.astimezone(UTC).date()
    limits, reserve = config.limits.daily_limits(), config.reserve.usage()
    used = ledger.usage(today)
    exhausted = ledger.exhausted(today)
    jobs: list[PlannedJob] = []
    covered: list[CoveredDays] = []
    notes: list[str] = []
    packed: list[tuple[list[date], dict[date, Usage]]] = []
    for definition in config.enabled_definitions:
        live = [] if force else ledger.live_jobs_covering(definition.name, requested)
        covered += [
            CoveredDays(definition.name, j.job_name, j.status, j.window_start, j.window_end)
            for j in live
        ]
        waiting = ledger.live_jobs_covering(definition.name, requested, statuses=[DEFERRED])
        jobs += [_deferred_job(j, definition) for j in waiting]
        done = {d for j in [*live, *waiting] for d in j.days}
        todo = [d for d in requested if d not in done]
        if requested and not todo:
            notes.append(f"{definition.name}: every requested day is already exported")
        history = ledger.collected_history(definition.name)
        default = config.estimate_for(definition)
        estimates = {
            d: estimate_day(
                definition, history=history, pushed=pushed_by_day.get(d, {}), default=default
            )
            for d in todo
        }
        usages = {d: Usage(0, e.bytes, e.rows) for d, e in estimates.items()}
        packed.append((todo, usages))
        for window in pack_range(todo, usages, UNLIMITED, max_days_per_job=config.max_days_per_job):
            attempt = ledger.attempts(definition.name, window.start, window.end) + 1
            name = job_name(
                config.job_name_prefix, definition.name, window.start, window.end, attempt
            )
            jobs.append(
                PlannedJob(
                    definition=definition.name,
                    job_name=name,
                    window_start=window.start,
                    window_end=window.end,
                    attempt=attempt,
                    signal_types=tuple(definition.signal_types),
                    path=target_path(definition, window.start, window.end, attempt),
                    notify=tuple(definition.notify),
                    estimated_rows=window.rows,
                    estimated_bytes=window.bytes + HEADER_BYTES,
                    estimate_sources=tuple(sorted({estimates[d].source for d in window.days})),
                    rows_by_day=tuple((d, estimates[d].rows) for d in window.days),
                )
            )
    return ExportPlan(
        plan_id=uuid.uuid4().hex,
        created_at=now.astimezone(UTC),
        first_day=requested[0],
        last_day=requested[-1],
        jobs=tuple(jobs),
        covered=tuple(covered),
        used=used,
        limits=limits,
        reserve=reserve,
        exhausted=exhausted,
        fits_through=None
        if exhausted
        else _fits_through(
            requested,
            packed,
            remaining_today(used, limits, reserve),
            config.max_days_per_job,
            waiting=[j for j in jobs if j.deferred],
        ),
        forced=force,
        notes=tuple(notes),
    )


def _deferred_job(job: LedgerJob, definition: ExportDefinitionConfig) -> PlannedJob:
    """A deferred job of the ledger, planned again unchanged (its rows spread evenly)."""
    days = job.days
    share, extra = divmod(job.estimated_rows, len(days))
    return PlannedJob(
        definition=job.definition,
        job_name=job.job_name,
        window_start=job.window_start,
        window_end=job.window_end,
        attempt=job.attempt,
        signal_types=job.signal_types,
        path=job.requested_path,
        notify=tuple(definition.notify),
        estimated_rows=job.estimated_rows,
        estimated_bytes=job.estimated_bytes,
        estimate_sources=("deferred job",),
        rows_by_day=tuple((d, share + (1 if i < extra else 0)) for i, d in enumerate(days)),
        deferred=job.error or "deferred",
    )


def _fits_through(
    requested: Sequence[date],
    packed: Sequence[tuple[list[date], dict[date, Usage]]],
    remaining: Usage,
    max_days_per_job: int | None,
    waiting: Sequence[PlannedJob] = (),
) -> date | None:
    """The last requested day such that exporting every day up to it fits what is left today
    (deferred jobs of the plan, `waiting`, are submitted first whatever the range)."""
    fits = None
    for last in requested:
        total = Usage()
        for job in waiting:
            total = total + job.estimated
        for todo, usages in packed:
            prefix = [d for d in todo if d <= last]
            for w in pack_range(prefix, usages, UNLIMITED, max_days_per_job=max_days_per_job):
                total = total + Usage(1, w.bytes + HEADER_BYTES, w.rows)
        if any(getattr(total, n) > getattr(remaining, n) for n in LIMIT_NAMES):
            break
        fits = last
    return fits
