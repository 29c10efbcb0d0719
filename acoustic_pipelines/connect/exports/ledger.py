"""The ledger of `exportSignals` jobs this pipeline reserved and submitted (a SQLite file, or
PostgreSQL when several machines share it: `acoustic_pipelines.database`).

One row per job, keyed by its job name (`<prefix>-<definition>-<start>-<end>-<attempt>`):

| status      | meaning                                                           | counts against the quota |
|-------------|-------------------------------------------------------------------|--------------------------|
| `reserved`  | quota reserved; the request is about to be sent                   | yes                      |
| `submitted` | Connect answered with a `dataJobId`                               | yes                      |
| `unknown`   | the request may have reached Connect, no answer came back         | yes                      |
| `collected` | its file was downloaded, verified and landed (rows, bytes known)  | yes                      |
| `failed`    | Connect refused the request (bad input, auth): no job exists      | no                       |
| `refused`   | Connect answered DAILY_LIMIT_EXCEEDED (ledgers before deferral)   | no                       |
| `deferred`  | not sent: Connect answered DAILY_LIMIT_EXCEEDED for it or for an  | no (until re-reserved)   |
|             | earlier job of its run; submitted once after `deferred_until`     |                          |

Reservation is atomic and all-or-nothing: `reserve_all` takes the ledger database's exclusive
transaction (SQLite's `BEGIN IMMEDIATE`, a PostgreSQL advisory lock), adds today's usage up,
checks every job of a run together against the limits and inserts them (or re-reserves
deferred ones), all in one transaction — every job fits and is reserved, or none is — so runs
in parallel processes or on several machines (several backfills at once) can never pass a
limit together, and a run never submits part of what it planned.

Beside the jobs the ledger holds the verdict of each day's latest plan (`record_verdict`:
passed, or which limit and by how much it was over; `connect/export_jobs` submits only days
whose latest verdict passed) and which days of each job were collected (`collected_days`: a
range job is `collected` once every day of its window has landed).

Usage of a UTC day T, as this pipeline knows it (quota.py states Acoustic's counting rules):
jobs reserved on T; rows and bytes of the jobs reserved on T, and of those reserved the day
before and not collected before T began (they may complete on T) — actual figures once
collected, the estimate until then. A job that stays `reserved` (the run died before sending)
keeps counting: whether Connect got it is not known, so it is treated like `unknown`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from acoustic_pipelines.connect.exports.quota import (
    DailyLimits,
    LimitBreach,
    Usage,
    check_plan,
    window_days,
)
from acoustic_pipelines.database import Connection, open_database

__all__ = [
    "COLLECTED",
    "DEFERRED",
    "FAILED",
    "LIVE_STATUSES",
    "REFUSED",
    "RESERVED",
    "SUBMITTED",
    "UNKNOWN",
    "DayExhaustedError",
    "DaysTakenError",
    "ExportLedger",
    "JobRequest",
    "LedgerJob",
    "QuotaRefusedError",
    "Reservation",
    "Verdict",
]

RESERVED, SUBMITTED, UNKNOWN, COLLECTED = "reserved", "submitted", "unknown", "collected"
FAILED, REFUSED, DEFERRED = "failed", "refused", "deferred"
LIVE_STATUSES = (RESERVED, SUBMITTED, UNKNOWN, COLLECTED)
_LIVE_SQL = "(" + ", ".join(f"'{s}'" for s in LIVE_STATUSES) + ")"
_TAKEN_SQL = "(" + ", ".join(f"'{s}'" for s in (*LIVE_STATUSES, DEFERRED)) + ")"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS export_jobs (
    job_name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    signal_types TEXT NOT NULL,
    requested_path TEXT NOT NULL,
    status TEXT NOT NULL,
    estimated_rows BIGINT NOT NULL,
    estimated_bytes BIGINT NOT NULL,
    reserved_at TEXT NOT NULL,
    run_id TEXT,
    data_job_id TEXT,
    path TEXT,
    submitted_at TEXT,
    rows BIGINT,
    bytes BIGINT,
    rows_by_type TEXT,
    collected_at TEXT,
    error TEXT,
    deferred_until TEXT
);
CREATE INDEX IF NOT EXISTS export_jobs_by_definition
    ON export_jobs (definition, window_start, window_end);
CREATE INDEX IF NOT EXISTS export_jobs_by_reserved_at ON export_jobs (reserved_at);
CREATE TABLE IF NOT EXISTS exhausted_days (
    day TEXT PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
    day TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    run_id TEXT,
    recorded_at TEXT NOT NULL,
    passed INTEGER NOT NULL,
    forced INTEGER NOT NULL,
    breaches TEXT NOT NULL,
    seq BIGINT,
    PRIMARY KEY (day, plan_id)
);
CREATE TABLE IF NOT EXISTS collected_days (
    job_name TEXT NOT NULL,
    day TEXT NOT NULL,
    rows BIGINT,
    collected_at TEXT NOT NULL,
    PRIMARY KEY (job_name, day)
);
"""
#: Columns added after the first ledgers were written (added to an existing ledger on open).
_ADDED_COLUMNS = {"export_jobs": {"deferred_until": "TEXT"}, "verdicts": {"seq": "BIGINT"}}
_COLUMNS = (
    "job_name, definition, window_start, window_end, attempt, signal_types, requested_path, "
    "status, estimated_rows, estimated_bytes, reserved_at, run_id, data_job_id, path, "
    "submitted_at, rows, bytes, rows_by_type, collected_at, error, deferred_until"
)


class QuotaRefusedError(Exception):
    """The ledger refused a reservation: the jobs would pass a daily limit (each breach named)."""

    def __init__(self, job_names: Sequence[str], breaches: Sequence[LimitBreach]) -> None:
        self.job_names = tuple(job_names)
        self.breaches = tuple(breaches)
        what = (
            f"export job {job_names[0]} not reserved"
            if len(job_names) == 1
            else f"none of the {len(job_names)} export jobs ({', '.join(job_names)}) reserved"
        )
        super().__init__(what + ": " + "; ".join(str(b) for b in breaches))


class DaysTakenError(Exception):
    """A run's new job covers days another run's job took meanwhile (its plan is out of date)."""


class DayExhaustedError(Exception):
    """Connect said DAILY_LIMIT_EXCEEDED earlier this UTC day: nothing more is submitted today."""


@dataclass(frozen=True)
class LedgerJob:
    """One job as the ledger holds it."""

    job_name: str
    definition: str
    window_start: date
    window_end: date
    attempt: int
    signal_types: tuple[str, ...]
    requested_path: str
    status: str
    estimated_rows: int
    estimated_bytes: int
    reserved_at: datetime
    run_id: str | None = None
    data_job_id: str | None = None
    path: str | None = None
    submitted_at: datetime | None = None
    rows: int | None = None
    bytes: int | None = None
    rows_by_type: dict[str, int] = field(default_factory=dict)
    collected_at: datetime | None = None
    error: str | None = None
    deferred_until: datetime | None = None

    @property
    def days(self) -> list[date]:
        """Every UTC day the job's window covers."""
        return window_days(self.window_start, self.window_end)

    @property
    def remote_path(self) -> str:
        """Where its file is on SFTP: Connect's answer, else the requested path plus `.gz`."""
        return self.path or self.requested_path + ".gz"

    def covers(self, day: date) -> bool:
        """Whether `day` is inside the job's window."""
        return self.window_start <= day <= self.window_end


@dataclass(frozen=True)
class JobRequest:
    """One job a run asks the ledger to reserve: its name, window, attempt and estimate."""

    job_name: str
    definition: str
    window: tuple[date, date]
    attempt: int
    signal_types: tuple[str, ...]
    requested_path: str
    estimated: Usage


@dataclass(frozen=True)
class Verdict:
    """A plan's verdict on one requested day: passed, or the limits it would pass."""

    day: date
    plan_id: str
    run_id: str | None
    recorded_at: datetime
    passed: bool
    forced: bool
    breaches: tuple[LimitBreach, ...]

    def __str__(self) -> str:
        if self.passed:
            return f"plan {self.plan_id} passed (recorded {self.recorded_at:%Y-%m-%d %H:%M} UTC)"
        return f"plan {self.plan_id} failed: " + "; ".join(str(b) for b in self.breaches)


@dataclass(frozen=True)
class Reservation:
    """The outcome of `reserve`: the job's ledger row, and whether this call created it."""

    job: LedgerJob
    created: bool


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") if moment else None


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class ExportLedger:
    """The export-job ledger in a SQLite file or a PostgreSQL database (`acoustic_pipelines.database`);
    safe to share between processes, and between machines on PostgreSQL."""

    def __init__(self, location: Path | str, *, timeout: float = 60.0) -> None:
        location = str(location)
        if "://" not in location:
            location = str(Path(location).expanduser())
        self.database = open_database(location, name="export_jobs", timeout=timeout)
        self._create()

    @property
    def path(self) -> str:
        """Where the ledger is, for people: the file, or the URL without its password."""
        return self.database.display

    def _create(self) -> None:
        """Create the tables, and add the columns older ledgers lack."""
        self.database.create(_SCHEMA)
        with self.database.transaction() as db:
            for table, columns in _ADDED_COLUMNS.items():
                cursor = db.execute(f"SELECT * FROM {table} WHERE 1 = 0")
                present = {column[0] for column in cursor.description}
                for column, kind in columns.items():
                    if column not in present:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def __repr__(self) -> str:
        return f"ExportLedger({self.path!r})"

    def _connection(self) -> AbstractContextManager[Connection]:
        return self.database.read()

    def _transaction(self) -> AbstractContextManager[Connection]:
        """An exclusive write transaction (see `Database.transaction`)."""
        return self.database.transaction()

    # -- reading ----------------------------------------------------------------------------

    def jobs(
        self,
        *,
        definition: str | None = None,
        statuses: Sequence[str] | None = None,
        names: Sequence[str] | None = None,
    ) -> list[LedgerJob]:
        """Jobs in reservation order, optionally only of a definition, statuses or names."""
        sql, params = f"SELECT {_COLUMNS} FROM export_jobs WHERE 1=1", []
        if definition is not None:
            sql += " AND definition = ?"
            params.append(definition)
        for column, values in (("status", statuses), ("job_name", names)):
            if values is not None:
                sql += f" AND {column} IN ({', '.join('?' * len(values))})"
                params.extend(values)
        with self._connection() as db:
            rows = db.execute(sql + " ORDER BY reserved_at, job_name", params).fetchall()
        return [_job(row) for row in rows]

    def job(self, job_name: str) -> LedgerJob | None:
        """One job by name, or None."""
        found = self.jobs(names=[job_name])
        return found[0] if found else None

    def live_jobs_covering(
        self, definition: str, days: Sequence[date], *, statuses: Sequence[str] = LIVE_STATUSES
    ) -> list[LedgerJob]:
        """Live jobs (or jobs of `statuses`) of `definition` whose window covers any of `days`."""
        if not days:
            return []
        first, last = min(days).isoformat(), max(days).isoformat()
        with self._connection() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM export_jobs WHERE definition = ? AND status IN "
                f"({', '.join('?' * len(statuses))}) AND window_start <= ? AND window_end >= ? "
                "ORDER BY reserved_at, job_name",
                (definition, *statuses, last, first),
            ).fetchall()
        wanted = set(days)
        return [j for j in map(_job, rows) if any(d in wanted for d in j.days)]

    def verdicts(self, days: Sequence[date]) -> dict[date, Verdict | None]:
        """The latest plan verdict recorded for each of `days` (None: no plan checked it)."""
        found: dict[date, Verdict | None] = dict.fromkeys(days)
        with self._connection() as db:
            for day in days:
                row = db.execute(
                    "SELECT day, plan_id, run_id, recorded_at, passed, forced, breaches "
                    "FROM verdicts WHERE day = ? ORDER BY recorded_at DESC, COALESCE(seq, 0) DESC "
                    "LIMIT 1",
                    (day.isoformat(),),
                ).fetchone()
                found[day] = _verdict(row) if row else None
        return found

    def collected_days(self, job_name: str) -> set[date]:
        """The days of a job's window already landed from its file (or from a newer job's)."""
        with self._connection() as db:
            rows = db.execute(
                "SELECT day FROM collected_days WHERE job_name = ?", (job_name,)
            ).fetchall()
        return {date.fromisoformat(r[0]) for r in rows}

    def attempts(self, definition: str, start: date, end: date) -> int:
        """How many jobs (any status) were reserved for exactly this definition and window."""
        with self._connection() as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM export_jobs WHERE definition = ? AND window_start = ? "
                "AND window_end = ?",
                (definition, start.isoformat(), end.isoformat()),
            ).fetchone()
        return int(count)

    def usage(self, today: date) -> Usage:
        """This pipeline's export usage of the UTC day `today` (see the module docstring)."""
        with self._connection() as db:
            return self._usage_in(db, today)

    def exhausted(self, today: date) -> str | None:
        """Connect's DAILY_LIMIT_EXCEEDED message if it was recorded for `today`, else None."""
        with self._connection() as db:
            row = db.execute(
                "SELECT recorded_at, message FROM exhausted_days WHERE day = ?",
                (today.isoformat(),),
            ).fetchone()
        return f"{row[1]} (recorded {row[0]})" if row else None

    def collected_history(self, definition: str, *, limit: int = 14) -> list[LedgerJob]:
        """The latest collected jobs of `definition` (newest first), for size estimates."""
        with self._connection() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM export_jobs WHERE definition = ? AND status = ? "
                "ORDER BY collected_at DESC LIMIT ?",
                (definition, COLLECTED, limit),
            ).fetchall()
        return [_job(row) for row in rows]

    @staticmethod
    def _usage_in(db: Connection, today: date) -> Usage:
        start = _day_start(today)
        end = start + timedelta(days=1)
        (jobs,) = db.execute(
            f"SELECT COUNT(*) FROM export_jobs WHERE status IN {_LIVE_SQL} "
            "AND reserved_at >= ? AND reserved_at < ?",
            (_iso(start), _iso(end)),
        ).fetchone()
        rows, size = db.execute(
            "SELECT COALESCE(SUM(COALESCE(rows, estimated_rows)), 0), "
            "COALESCE(SUM(COALESCE(bytes, estimated_bytes)), 0) FROM export_jobs "
            f"WHERE status IN {_LIVE_SQL} AND reserved_at < ? AND (reserved_at >= ? OR "
            "(reserved_at >= ? AND (collected_at IS NULL OR collected_at >= ?)))",
            (_iso(end), _iso(start), _iso(start - timedelta(days=1)), _iso(start)),
        ).fetchone()
        return Usage(jobs=int(jobs), bytes=int(size), rows=int(rows))

    # -- writing ----------------------------------------------------------------------------

    def reserve(
        self,
        *,
        job_name: str,
        definition: str,
        window: tuple[date, date],
        attempt: int,
        signal_types: Sequence[str],
        requested_path: str,
        estimated: Usage,
        limits: DailyLimits,
        reserve: Usage,
        now: datetime,
        run_id: str | None = None,
    ) -> Reservation:
        """Reserve one job: `reserve_all` of a single request (same errors)."""
        request = JobRequest(
            job_name, definition, window, attempt, tuple(signal_types), requested_path, estimated
        )
        [reservation] = self.reserve_all(
            [request], limits=limits, reserve=reserve, now=now, run_id=run_id
        )
        return reservation

    def reserve_all(
        self,
        requests: Sequence[JobRequest],
        *,
        limits: DailyLimits,
        reserve: Usage,
        now: datetime,
        run_id: str | None = None,
        exclusive: bool = False,
    ) -> list[Reservation]:
        """Reserve today's quota for every job of a run in one transaction, or for none.

        A request whose job the ledger already holds is returned as it is (`created=False`); a
        `deferred` one is reserved again (`created=True`, status `reserved`, reserved now) —
        exactly once, whatever runs race for it. The new and re-reserved jobs are checked
        together against today's usage. With `exclusive` (submissions of plans that are not
        forced), a new job may not cover a day that a live or deferred job of its definition
        already covers: two runs planning overlapping ranges at once never export a day twice.

        Raises:
            DaysTakenError: A new job covers days another job took after the run planned.
            DayExhaustedError: Connect answered DAILY_LIMIT_EXCEEDED earlier today.
            QuotaRefusedError: Today's usage plus these jobs would pass a limit (less the
                reserve); every breach is named with how far it is over. Nothing is written.
        """
        today = now.astimezone(UTC).date()
        reservations: list[Reservation] = []
        with self._transaction() as db:
            fresh: list[JobRequest] = []
            deferred: set[str] = set()
            for request in requests:
                row = db.execute(
                    f"SELECT {_COLUMNS} FROM export_jobs WHERE job_name = ?", (request.job_name,)
                ).fetchone()
                if row is not None and row[7] != DEFERRED:
                    reservations.append(Reservation(_job(row), created=False))
                    continue
                if row is not None:
                    deferred.add(request.job_name)
                fresh.append(request)
            if not fresh:
                return reservations
            names = [r.job_name for r in fresh]
            if exclusive:
                taken = [
                    f"{r.job_name} covers {row[0]} ({row[1]}..{row[2]}, {row[3]})"
                    for r in fresh
                    if r.job_name not in deferred
                    for row in db.execute(
                        "SELECT job_name, window_start, window_end, status FROM export_jobs "
                        f"WHERE definition = ? AND status IN {_TAKEN_SQL} AND window_start <= ? "
                        "AND window_end >= ? AND job_name <> ?",
                        (
                            r.definition,
                            r.window[1].isoformat(),
                            r.window[0].isoformat(),
                            r.job_name,
                        ),
                    ).fetchall()
                ]
                if taken:
                    raise DaysTakenError(
                        f"none of the {len(names)} export job(s) reserved: days were taken by "
                        "another run after this run planned them: "
                        + "; ".join(taken)
                        + ". Run it again: it plans only the days still to export"
                    )
            exhausted = db.execute(
                "SELECT message FROM exhausted_days WHERE day = ?", (today.isoformat(),)
            ).fetchone()
            if exhausted:
                raise DayExhaustedError(
                    f"export job(s) {', '.join(names)} not reserved: Connect answered "
                    f"DAILY_LIMIT_EXCEEDED earlier on {today} ({exhausted[0]}); nothing more is "
                    "submitted until 00:00 UTC"
                )
            used = self._usage_in(db, today)
            planned = Usage()
            for request in fresh:
                planned = planned + Usage(1, request.estimated.bytes, request.estimated.rows)
            breaches = check_plan(used, planned, limits, reserve)
            if breaches:
                raise QuotaRefusedError(names, breaches)
            for request in fresh:
                job = LedgerJob(
                    job_name=request.job_name,
                    definition=request.definition,
                    window_start=request.window[0],
                    window_end=request.window[1],
                    attempt=request.attempt,
                    signal_types=tuple(request.signal_types),
                    requested_path=request.requested_path,
                    status=RESERVED,
                    estimated_rows=request.estimated.rows,
                    estimated_bytes=request.estimated.bytes,
                    reserved_at=now,
                    run_id=run_id,
                )
                if request.job_name in deferred:
                    db.execute(
                        "UPDATE export_jobs SET status = ?, reserved_at = ?, run_id = ?, "
                        "error = NULL, deferred_until = NULL WHERE job_name = ?",
                        (RESERVED, _iso(now), run_id, request.job_name),
                    )
                else:
                    values = _row(job)
                    db.execute(
                        f"INSERT INTO export_jobs ({_COLUMNS}) "
                        f"VALUES ({', '.join('?' * len(values))})",
                        values,
                    )
                reservations.append(Reservation(job, created=True))
        return reservations

    def release(self, job_names: Sequence[str]) -> None:
        """Forget reserved jobs that were never sent (an earlier job of their run failed)."""
        with self._transaction() as db:
            for name in job_names:
                db.execute(
                    "DELETE FROM export_jobs WHERE job_name = ? AND status = ?", (name, RESERVED)
                )

    def defer(
        self, job_names: Sequence[str], *, reason: str, now: datetime, until: datetime
    ) -> list[LedgerJob]:
        """Connect answered DAILY_LIMIT_EXCEEDED: the jobs wait, unsent, until `until`.

        In one transaction the jobs become `deferred` with the reason (not counted against the
        quota, still covering their days so no other plan exports them) and the UTC day of
        `now` is recorded as exhausted.
        """
        day = now.astimezone(UTC).date().isoformat()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO exhausted_days (day, recorded_at, message) VALUES (?, ?, ?) "
                "ON CONFLICT (day) DO UPDATE SET recorded_at = excluded.recorded_at, "
                "message = excluded.message",
                (day, _iso(now), reason),
            )
            for name in job_names:
                cursor = db.execute(
                    "UPDATE export_jobs SET status = ?, error = ?, deferred_until = ? "
                    "WHERE job_name = ?",
                    (DEFERRED, reason, _iso(until), name),
                )
                if cursor.rowcount != 1:
                    raise KeyError(f"export ledger {self.path}: no job named {name!r}")
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM export_jobs WHERE job_name IN "
                f"({', '.join('?' * len(job_names))}) ORDER BY reserved_at, job_name",
                tuple(job_names),
            ).fetchall()
        return [_job(row) for row in rows]

    def record_verdict(
        self,
        *,
        plan_id: str,
        days: Sequence[date],
        passed: bool,
        breaches: Sequence[LimitBreach],
        forced: bool,
        now: datetime,
        run_id: str | None = None,
    ) -> None:
        """Record a plan's verdict on each of its days (the latest one binds `export_jobs`)."""
        text = json.dumps([[b.limit, b.maximum, b.used, b.planned] for b in breaches])
        with self._transaction() as db:
            # The transaction is exclusive, so the next sequence number is this one's alone: it
            # orders verdicts recorded at the same moment.
            (seq,) = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM verdicts").fetchone()
            for d in days:
                db.execute(
                    "INSERT INTO verdicts (day, plan_id, run_id, recorded_at, passed, forced, "
                    "breaches, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (day, plan_id) DO NOTHING",
                    (
                        d.isoformat(),
                        plan_id,
                        run_id,
                        _iso(now),
                        int(passed),
                        int(forced),
                        text,
                        seq,
                    ),
                )

    def _update(
        self, job_name: str, *, also: tuple[str, tuple[Any, ...]] | None = None, **values: Any
    ) -> LedgerJob:
        """Set columns of one job (and run `also`, a statement and its parameters) atomically."""
        assignments = ", ".join(f"{column} = ?" for column in values)
        with self._transaction() as db:
            if also is not None:
                db.execute(*also)
            cursor = db.execute(
                f"UPDATE export_jobs SET {assignments} WHERE job_name = ?",
                (*values.values(), job_name),
            )
            if cursor.rowcount != 1:
                raise KeyError(f"export ledger {self.path}: no job named {job_name!r}")
            row = db.execute(
                f"SELECT {_COLUMNS} FROM export_jobs WHERE job_name = ?", (job_name,)
            ).fetchone()
        return _job(row)

    def mark_submitted(
        self, job_name: str, *, data_job_id: str, path: str, submitted_at: datetime
    ) -> LedgerJob:
        """Record Connect's answer: the job's `dataJobId` and the `path` of its file."""
        return self._update(
            job_name,
            status=SUBMITTED,
            data_job_id=data_job_id,
            path=path,
            submitted_at=_iso(submitted_at),
            error=None,
        )

    def mark_unknown(self, job_name: str, *, error: str) -> LedgerJob:
        """The request may have reached Connect but no answer came: kept, never re-sent."""
        return self._update(job_name, status=UNKNOWN, error=error)

    def mark_failed(self, job_name: str, *, error: str) -> LedgerJob:
        """Connect refused the request (no job exists): its reservation is released."""
        return self._update(job_name, status=FAILED, error=error)

    def mark_collected(
        self,
        job_name: str,
        *,
        rows: int,
        bytes: int,
        rows_by_type: Mapping[str, int],
        collected_at: datetime,
        days: Mapping[date, int | None] | None = None,
    ) -> LedgerJob:
        """Record the file's actual rows, compressed bytes and rows per signal type, and the days
        of its window now landed (`days`: rows per day; None: landed from a newer job; all
        days when not given). The job is `collected` once every day of its window has landed;
        until then it keeps its status, so the rest of its window is still collected.
        """
        with self._transaction() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM export_jobs WHERE job_name = ?", (job_name,)
            ).fetchone()
            if row is None:
                raise KeyError(f"export ledger {self.path}: no job named {job_name!r}")
            job = _job(row)
            landed = dict.fromkeys(job.days) if days is None else dict(days)
            for d, n in landed.items():
                db.execute(
                    "INSERT INTO collected_days (job_name, day, rows, collected_at) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (job_name, day) DO UPDATE SET "
                    "rows = excluded.rows, collected_at = excluded.collected_at",
                    (job_name, d.isoformat(), n, _iso(collected_at)),
                )
            (done,) = db.execute(
                "SELECT COUNT(*) FROM collected_days WHERE job_name = ? AND day >= ? AND day <= ?",
                (job_name, job.window_start.isoformat(), job.window_end.isoformat()),
            ).fetchone()
            status = COLLECTED if done >= len(job.days) else job.status
            db.execute(
                "UPDATE export_jobs SET status = ?, rows = ?, bytes = ?, rows_by_type = ?, "
                "collected_at = COALESCE(collected_at, ?) WHERE job_name = ?",
                (
                    status,
                    rows,
                    bytes,
                    json.dumps(dict(sorted(rows_by_type.items()))),
                    _iso(collected_at),
                    job_name,
                ),
            )
            row = db.execute(
                f"SELECT {_COLUMNS} FROM export_jobs WHERE job_name = ?", (job_name,)
            ).fetchone()
        return _job(row)


def _row(job: LedgerJob) -> tuple[Any, ...]:
    return (
        job.job_name,
        job.definition,
        job.window_start.isoformat(),
        job.window_end.isoformat(),
        job.attempt,
        json.dumps(list(job.signal_types)),
        job.requested_path,
        job.status,
        job.estimated_rows,
        job.estimated_bytes,
        _iso(job.reserved_at),
        job.run_id,
        job.data_job_id,
        job.path,
        _iso(job.submitted_at),
        job.rows,
        job.bytes,
        json.dumps(job.rows_by_type) if job.rows_by_type else None,
        _iso(job.collected_at),
        job.error,
        _iso(job.deferred_until),
    )


def _job(row: Sequence[Any]) -> LedgerJob:
    return LedgerJob(
        job_name=row[0],
        definition=row[1],
        window_start=date.fromisoformat(row[2]),
        window_end=date.fromisoformat(row[3]),
        attempt=int(row[4]),
        signal_types=tuple(json.loads(row[5])),
        requested_path=row[6],
        status=row[7],
        estimated_rows=int(row[8]),
        estimated_bytes=int(row[9]),
        reserved_at=_moment(row[10]),  # type: ignore[arg-type]
        run_id=row[11],
        data_job_id=row[12],
        path=row[13],
        submitted_at=_moment(row[14]),
        rows=row[15],
        bytes=row[16],
        rows_by_type=json.loads(row[17]) if row[17] else {},
        collected_at=_moment(row[18]),
        error=row[19],
        deferred_until=_moment(row[20]),
    )


def _verdict(row: Sequence[Any]) -> Verdict:
    return Verdict(
        day=date.fromisoformat(row[0]),
        plan_id=row[1],
        run_id=row[2],
        recorded_at=datetime.fromisoformat(row[3]),
        passed=bool(row[4]),
        forced=bool(row[5]),
        breaches=tuple(LimitBreach(*b) for b in json.loads(row[6])),
    )
