"""The Connect sandbox's SQLite storage: accepted signals, export jobs, notifications, the SFTP key.

One file, `connect.sqlite3` in the sandbox folder, so a sandbox restarted on the same folder keeps
what it held. Writes go through one connection behind a lock; an export job streams its rows
through a connection of its own (WAL lets it read while signals keep arriving).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

DATABASE_NAME = "connect.sqlite3"

QUEUED, RUNNING, COMPLETED, FAILED = "QUEUED", "RUNNING", "COMPLETED", "FAILED"
JOB_STATES = (QUEUED, RUNNING, COMPLETED, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    seq INTEGER PRIMARY KEY,
    signal_id TEXT NOT NULL UNIQUE,
    signal_type TEXT NOT NULL,
    app_key TEXT NOT NULL,
    identity TEXT NOT NULL,
    session_id TEXT,
    content TEXT NOT NULL,
    test INTEGER NOT NULL,
    signal_timestamp TEXT NOT NULL,
    received_at TEXT NOT NULL,
    fingerprint TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS signals_by_type_time ON signals (signal_type, signal_timestamp);
CREATE TABLE IF NOT EXISTS export_jobs (
    job_id TEXT PRIMARY KEY,
    job_name TEXT NOT NULL,
    signal_types TEXT NOT NULL,
    timestamp_start TEXT NOT NULL,
    timestamp_end TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    notifications TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    submitted_day TEXT NOT NULL,
    completed_at TEXT,
    completed_day TEXT,
    row_count INTEGER,
    byte_count INTEGER,
    error TEXT
);
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    destination TEXT NOT NULL,
    subject TEXT NOT NULL,
    sent_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS usage_offsets (
    day TEXT PRIMARY KEY,
    jobs INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS public_keys (
    user TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


def iso_ms(moment: datetime) -> str:
    """A UTC timestamp as Connect writes them: `2025-08-31T08:29:30.001Z`."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def now_utc() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredSignal:
    """One accepted signal as the sandbox keeps it."""

    signal_id: str
    signal_type: str
    app_key: str
    identity: dict[str, str]
    session_id: str | None
    content: str  # the signalContent JSON text, as received
    test: bool
    signal_timestamp: str
    received_at: str


@dataclass(frozen=True)
class ExportJob:
    """One exportSignals job: its request, state and, once done, its row and byte counts."""

    job_id: str
    job_name: str
    signal_types: tuple[str, ...]
    timestamp_start: str
    timestamp_end: str
    path: str
    notifications: tuple[str, ...]
    status: str
    submitted_at: str
    completed_at: str | None = None
    row_count: int | None = None
    byte_count: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The job as `/_sandbox/jobs` shows it (camelCase, like the GraphQL API)."""
        return {
            "dataJobId": self.job_id,
            "jobName": self.job_name,
            "signalTypes": list(self.signal_types),
            "timestampStart": self.timestamp_start,
            "timestampEnd": self.timestamp_end,
            "path": self.path,
            "notifications": list(self.notifications),
            "status": self.status,
            "submittedAt": self.submitted_at,
            "completedAt": self.completed_at,
            "rowCount": self.row_count,
            "byteCount": self.byte_count,
            "error": self.error,
        }


@dataclass(frozen=True)
class DailyUsage:
    """One UTC day's export usage: jobs submitted that day, rows and bytes completed that day."""

    day: date
    jobs: int
    rows: int
    bytes: int


class DuplicateJobError(Exception):
    """A job name or target path already used by a job of the last 28 days (reference §8 #12)."""

    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"{field} {value!r} is already used by another export job")
        self.field = field
        self.value = value


class ConnectStore:
    """SQLite-backed storage of the Connect sandbox, safe to share between request threads."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / DATABASE_NAME
        self._lock = threading.Lock()
        self._db = self._connect()
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def close(self) -> None:
        """Close the storage's connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # --- signals ---------------------------------------------------------------------------

    def add_signals(self, signals: Sequence[Mapping[str, Any]], *, received: datetime) -> list[str]:
        """Store validated createSignals inputs in one transaction; their new ids, in order."""
        received_at = iso_ms(received)
        rows = [_signal_row(signal, received_at) for signal in signals]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO signals (signal_id, signal_type, app_key, identity, session_id,"
                " content, test, signal_timestamp, received_at, fingerprint)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return [row[0] for row in rows]

    def signal_counts(self) -> dict[str, Any]:
        """Signals stored, distinct (by content), test ones, and stored by type."""
        total, distinct, test = self._query(
            "SELECT COUNT(*), COUNT(DISTINCT fingerprint), COALESCE(SUM(test), 0) FROM signals"
        )[0]
        by_type = dict(
            self._query("SELECT signal_type, COUNT(*) FROM signals GROUP BY 1 ORDER BY 1")
        )
        return {"stored": total, "distinct": distinct, "test": test, "by_type": by_type}

    def iter_export_signals(
        self, signal_types: Sequence[str], start: str, end: str
    ) -> Iterator[StoredSignal]:
        """Non-test signals of these types whose signal time is within [start, end], in time order."""
        marks = ", ".join("?" for _ in signal_types)
        sql = (
            "SELECT signal_id, signal_type, app_key, identity, session_id, content, test,"
            " signal_timestamp, received_at FROM signals"
            f" WHERE test = 0 AND signal_type IN ({marks})"
            " AND signal_timestamp BETWEEN ? AND ? ORDER BY signal_timestamp, seq"
        )
        # Its own connection: a long export must not hold the lock the request threads need.
        with closing(self._connect()) as db:
            for row in db.execute(sql, (*signal_types, start, end)):
                yield StoredSignal(
                    *row[:3], json.loads(row[3]), row[4], row[5], bool(row[6]), *row[7:]
                )

    # --- export jobs -----------------------------------------------------------------------

    def usage(self, day: date) -> DailyUsage:
        """The export usage of one UTC day."""
        with self._lock:
            return self._usage_in(self._db, day)

    def submit_job(
        self, job: ExportJob, *, check: Callable[[DailyUsage], None], since: datetime
    ) -> None:
        """Record a QUEUED job, after `check(usage)` and name/path uniqueness since `since`.

        `check` runs inside the transaction so parallel submissions cannot pass a limit together;
        it raises to refuse the job.
        """
        submitted = datetime.fromisoformat(job.submitted_at)
        with self._transaction() as db:
            check(self._usage_in(db, submitted.date()))
            for field, column, value in (
                ("jobName", "job_name", job.job_name),
                ("path", "path", job.path),
            ):
                taken = db.execute(
                    f"SELECT 1 FROM export_jobs WHERE {column} = ? AND submitted_at >= ?",
                    (value, iso_ms(since)),
                ).fetchone()
                if taken:
                    raise DuplicateJobError(field, value)
            db.execute("DELETE FROM export_jobs WHERE path = ?", (job.path,))  # older than `since`
            db.execute(
                "INSERT INTO export_jobs (job_id, job_name, signal_types, timestamp_start,"
                " timestamp_end, path, notifications, status, submitted_at, submitted_day)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.job_id,
                    job.job_name,
                    json.dumps(job.signal_types),
                    job.timestamp_start,
                    job.timestamp_end,
                    job.path,
                    json.dumps(job.notifications),
                    QUEUED,
                    job.submitted_at,
                    submitted.date().isoformat(),
                ),
            )

    def set_usage(self, day: date, *, jobs: int, rows: int, bytes: int) -> DailyUsage:
        """Make `day`'s usage these numbers (as if used elsewhere); later jobs add to them."""
        with self._transaction() as db:
            db.execute("DELETE FROM usage_offsets WHERE day = ?", (day.isoformat(),))
            own = self._usage_in(db, day)
            db.execute(
                "INSERT INTO usage_offsets (day, jobs, rows, bytes) VALUES (?, ?, ?, ?)",
                (day.isoformat(), jobs - own.jobs, rows - own.rows, bytes - own.bytes),
            )
            return self._usage_in(db, day)

    @staticmethod
    def _usage_in(db: sqlite3.Connection, day: date) -> DailyUsage:
        """Jobs submitted and rows/bytes completed on `day`, plus any offset `set_usage` left."""
        text = day.isoformat()
        jobs = db.execute("SELECT COUNT(*) FROM export_jobs WHERE submitted_day = ?", (text,))
        done = db.execute(
            "SELECT COALESCE(SUM(row_count), 0), COALESCE(SUM(byte_count), 0) FROM export_jobs"
            " WHERE completed_day = ?",
            (text,),
        ).fetchone()
        offset = db.execute(
            "SELECT jobs, rows, bytes FROM usage_offsets WHERE day = ?", (text,)
        ).fetchone() or (0, 0, 0)
        return DailyUsage(
            day, jobs.fetchone()[0] + offset[0], done[0] + offset[1], done[1] + offset[2]
        )

    def jobs(self, *, status: str | None = None) -> list[ExportJob]:
        """Export jobs in submission order, optionally only those in one state."""
        sql = (
            "SELECT job_id, job_name, signal_types, timestamp_start, timestamp_end, path,"
            " notifications, status, submitted_at, completed_at, row_count, byte_count, error"
            " FROM export_jobs"
        )
        rows = self._query(
            sql + (" WHERE status = ?" if status else "") + " ORDER BY submitted_at, rowid",
            (status,) if status else (),
        )
        return [
            ExportJob(
                row[0],
                row[1],
                tuple(json.loads(row[2])),
                row[3],
                row[4],
                row[5],
                tuple(json.loads(row[6])),
                *row[7:],
            )
            for row in rows
        ]

    def job_counts(self) -> dict[str, Any]:
        """Export jobs in total and by state (every state listed)."""
        by_state = dict.fromkeys(JOB_STATES, 0)
        by_state.update(self._query("SELECT status, COUNT(*) FROM export_jobs GROUP BY 1"))
        return {"total": sum(by_state.values()), "by_state": by_state}

    def set_job_status(self, job_id: str, status: str) -> None:
        """Move a job to another state (QUEUED or RUNNING)."""
        with self._transaction() as db:
            db.execute("UPDATE export_jobs SET status = ? WHERE job_id = ?", (status, job_id))

    def requeue_unfinished(self) -> None:
        """Jobs a stopped sandbox left RUNNING go back to QUEUED."""
        with self._transaction() as db:
            db.execute("UPDATE export_jobs SET status = ? WHERE status = ?", (QUEUED, RUNNING))

    def finish_job(
        self,
        job: ExportJob,
        *,
        completed: datetime,
        rows: int = 0,
        size: int = 0,
        error: str | None = None,
    ) -> None:
        """Record a job's end (COMPLETED, or FAILED with `error`) and its notifications."""
        status = FAILED if error else COMPLETED
        done = "completed" if status == COMPLETED else "failed"
        with self._transaction() as db:
            db.execute(
                "UPDATE export_jobs SET status = ?, completed_at = ?, completed_day = ?,"
                " row_count = ?, byte_count = ?, error = ? WHERE job_id = ?",
                (
                    status,
                    iso_ms(completed),
                    completed.astimezone(UTC).date().isoformat(),
                    rows,
                    size,
                    error,
                    job.job_id,
                ),
            )
            db.executemany(
                "INSERT INTO notifications (job_id, channel, destination, subject, sent_at)"
                " VALUES (?, 'EMAIL', ?, ?, ?)",
                [
                    (job.job_id, to, f'Export job "{job.job_name}" {done}', iso_ms(completed))
                    for to in job.notifications
                ],
            )

    def notifications(self) -> list[dict[str, str]]:
        """Every notification the sandbox recorded instead of sending mail, oldest first."""
        rows = self._query(
            "SELECT job_id, channel, destination, subject, sent_at FROM notifications ORDER BY seq"
        )
        keys = ("dataJobId", "channel", "destination", "subject", "sentAt")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # --- SFTP public key -------------------------------------------------------------------

    def set_public_key(self, user: str, public_key: str) -> None:
        """Register `user`'s SFTP public key, replacing the one before (reference §8 #19)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO public_keys (user, public_key, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user) DO UPDATE SET public_key = excluded.public_key,"
                " updated_at = excluded.updated_at",
                (user, public_key, iso_ms(now_utc())),
            )

    def public_key(self, user: str) -> str | None:
        """`user`'s registered SFTP public key (`ssh-ed25519 AAAA… comment`), if any."""
        rows = self._query("SELECT public_key FROM public_keys WHERE user = ?", (user,))
        return rows[0][0] if rows else None


def _signal_row(signal: Mapping[str, Any], received_at: str) -> tuple:
    """The signals-table row of one validated signal, with a new UUID."""
    content = signal["signalContent"]
    identity = {k: v for k, v in signal["identifiableAttributes"].items() if v is not None}
    canonical = json.dumps(
        {
            "appKey": signal["appKey"],
            "identity": identity,
            "sessionId": signal.get("sessionId"),
            "content": content,
            "test": bool(signal.get("test")),
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return (
        str(uuid.uuid4()),
        content["signalType"],
        signal["appKey"],
        json.dumps(identity, ensure_ascii=False),
        signal.get("sessionId"),
        json.dumps(content, ensure_ascii=False, separators=(",", ":")),
        int(bool(signal.get("test"))),
        _signal_timestamp(content.get("signalTimestamp"), received_at),
        received_at,
        hashlib.sha256(canonical.encode()).hexdigest(),
    )


def _signal_timestamp(value: Any, received_at: str) -> str:
    """The signal's time as ISO ms UTC; the receive time when absent (reference §8 #4)."""
    if not isinstance(value, str):
        return received_at
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return received_at
    return iso_ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
