"""Leases: one writer per partition at a time, whatever the orchestrator's pool settings.

A lease is a named record — holder (owner tag `<pid>@<host>` and a label such as the run),
token, expiry — taken atomically in a :class:`LeaseStore`. The holder renews it from a
heartbeat thread and confirms it (an atomic check-and-extend) before every irreversible step,
such as a `createSignals` call. A second run finds the lease live and waits, up to
`wait_seconds`, then fails with :class:`LeaseHeld` naming the holder. A lease whose holder died
is taken over: at once when the holder was a process on this host that no longer exists
(SIGKILL), otherwise once it expires (`ttl_seconds` after the last renewal).

The store interface is three atomic operations (:meth:`LeaseStore.take`, `extend`, `release`).
:class:`DatabaseLeaseStore` keeps the records in the ledger database (`database.py`): a SQLite
file on a local disk (the embedded default, `<lake>/_leases/leases.sqlite`) or a PostgreSQL
server every machine sees (`ACOUSTIC_PIPELINES_LEASES=postgresql://…`). An S3 object written
with conditional PUTs (`If-None-Match: *` to take, `If-Match: <etag>` to extend or take over)
could hold the same record for an S3 lake without a database.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from acoustic_pipelines.database import Connection, Database, DatabaseError, open_database
from acoustic_pipelines.owners import owner_is_dead, owner_tag
from acoustic_pipelines.storage import StorageError

DEFAULT_TTL_SECONDS = 60.0
DEFAULT_WAIT_SECONDS = 600.0
_POLL_SECONDS = 0.25

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseRecord:
    """Who holds a lease, since when and until when (epoch seconds)."""

    name: str
    token: str
    owner: str  # `<pid>@<host>`
    label: str
    acquired_at: float
    expires_at: float

    def describe(self) -> str:
        """The holder in words, for error messages."""
        label = f"{self.label}, " if self.label else ""
        return (
            f"{label}process {self.owner}, taken {_iso(self.acquired_at)}, "
            f"expires {_iso(self.expires_at)} unless renewed"
        )

    def live(self, now: float) -> bool:
        """Whether the holder may still be working: not expired, and not a dead local process."""
        return self.expires_at > now and not owner_is_dead(self.owner)


class LeaseHeld(StorageError):
    """Another live run holds the lease; `holder` says who."""

    def __init__(self, name: str, holder: LeaseRecord, waited: float) -> None:
        super().__init__(
            f"{name} is being written by another run ({holder.describe()}); waited "
            f"{waited:.0f}s. Run it again once that run ends; a killed holder's lease is taken "
            "over at once on the same host, or when it expires"
        )
        self.name = name
        self.holder = holder


class LeaseLost(StorageError):
    """This run's lease expired or was taken over: it must stop writing."""


class LeaseStore(Protocol):
    """Where leases are kept; each method is one atomic step."""

    def take(self, record: LeaseRecord, now: float) -> LeaseRecord | None:
        """Take `record.name` for `record` unless a live holder has it; that holder, or None."""
        ...

    def extend(self, name: str, token: str, expires_at: float) -> bool:
        """Move the expiry of a lease this token still holds; False when it is no longer held."""
        ...

    def release(self, name: str, token: str) -> None:
        """Give a lease up, if this token still holds it."""
        ...


class DatabaseLeaseStore:
    """Leases as rows of a ledger database: a SQLite file on a local disk or PostgreSQL.

    Each operation is one exclusive transaction of `database.Database` (SQLite's write lock, or
    PostgreSQL's advisory lock of this ledger), so a read-check-write sees no other writer.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        try:
            database.create(_SCHEMA)
        except DatabaseError as exc:
            raise StorageError(f"lease store: {exc}") from exc

    def __repr__(self) -> str:
        return f"DatabaseLeaseStore({self.database.display!r})"

    def take(self, record: LeaseRecord, now: float) -> LeaseRecord | None:
        """Take the lease unless a live holder has it (one exclusive transaction)."""
        with self._transaction() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE name = ?", (record.name,))
            holder = _record(row.fetchone())
            if holder is not None and holder.live(now):
                return holder
            db.execute("DELETE FROM leases WHERE name = ?", (record.name,))
            db.execute(
                f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.token,
                    record.owner,
                    record.label,
                    _ms(record.acquired_at),
                    _ms(record.expires_at),
                ),
            )
        if holder is not None:
            log.warning("took over the lease %s from %s", record.name, holder.describe())
        return None

    def extend(self, name: str, token: str, expires_at: float) -> bool:
        """Move the expiry if `token` still holds the lease."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND token = ?",
                (_ms(expires_at), name, token),
            )
            return cursor.rowcount == 1

    def release(self, name: str, token: str) -> None:
        """Delete the lease row if `token` still holds it."""
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND token = ?", (name, token))

    def holder(self, name: str) -> LeaseRecord | None:
        """The current record of a lease, live or not (for tests and diagnostics)."""
        try:
            with self.database.read() as db:
                return _record(
                    db.execute(f"SELECT {_COLUMNS} FROM leases WHERE name = ?", (name,)).fetchone()
                )
        except (DatabaseError, sqlite3.Error) as exc:
            raise StorageError(f"lease store {self.database.display}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self.database.transaction() as db:
                yield db
        except (DatabaseError, sqlite3.Error) as exc:
            raise StorageError(f"lease store {self.database.display}: {exc}") from exc


def open_lease_store(location: str | Path) -> DatabaseLeaseStore:
    """The lease store in a SQLite file (a path) or on PostgreSQL (a `postgresql://` URL)."""
    return DatabaseLeaseStore(open_database(location, name="leases"))


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, token TEXT NOT NULL, "
    "owner TEXT NOT NULL, label TEXT NOT NULL, acquired_at BIGINT NOT NULL, "
    "expires_at BIGINT NOT NULL)"
)
_COLUMNS = "name, token, owner, label, acquired_at, expires_at"


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _record(row: tuple | None) -> LeaseRecord | None:
    if row is None:
        return None
    name, token, owner, label, acquired_ms, expires_ms = row
    return LeaseRecord(name, token, owner, label, acquired_ms / 1000, expires_ms / 1000)


class Lease:
    """A lease this process holds: renewed in the background, confirmed before each risky step."""

    def __init__(self, store: LeaseStore, record: LeaseRecord, ttl_seconds: float) -> None:
        self.store = store
        self.record = record
        self.ttl = ttl_seconds
        self._expires_at = record.expires_at
        self._lost: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._heartbeat, name=f"lease {record.name}", daemon=True
        )

    @property
    def name(self) -> str:
        """The lease's name (what it protects)."""
        return self.record.name

    def confirm(self) -> None:
        """Check, atomically in the store, that this run still holds the lease, and extend it.

        Raises:
            LeaseLost: the lease expired or another run took it over; stop writing.
        """
        self._extend()
        if self._lost is not None:
            raise LeaseLost(self._lost)

    def _extend(self) -> None:
        with self._lock:
            if self._lost is not None:
                return
            now = time.time()
            expires_at = now + self.ttl
            try:
                held = self.store.extend(self.record.name, self.record.token, expires_at)
            except StorageError as exc:
                if now >= self._expires_at:
                    self._lost = (
                        f"lease {self.name} expired: the store could not be reached ({exc})"
                    )
                log.warning("could not renew lease %s: %s", self.name, exc)
                return
            if held and now < self._expires_at:
                self._expires_at = expires_at
            else:
                self._lost = (
                    f"lease {self.name} was lost (expired at {_iso(self._expires_at)} or "
                    "taken over by another run): this run stops writing"
                )

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self._extend()
            if self._lost is not None:
                log.error("%s", self._lost)
                return

    def _start(self) -> None:
        self._thread.start()

    def _release(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.store.release(self.record.name, self.record.token)
        except StorageError as exc:  # it expires on its own
            log.warning("could not release lease %s: %s", self.name, exc)


@contextmanager
def hold_lease(
    store: LeaseStore,
    name: str,
    *,
    label: str = "",
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> Iterator[Lease]:
    """Hold the lease `name` for the block: wait for a live holder up to `wait_seconds`.

    Raises:
        LeaseHeld: another live run still holds it after `wait_seconds`, naming that run.
    """
    started = time.monotonic()
    token = uuid.uuid4().hex
    reported = False
    while True:
        now = time.time()
        record = LeaseRecord(name, token, owner_tag(), label, now, now + ttl_seconds)
        holder = store.take(record, now)
        if holder is None:
            break
        waited = time.monotonic() - started
        if waited >= wait_seconds:
            raise LeaseHeld(name, holder, waited)
        if not reported:
            log.warning("waiting for %s: held by %s", name, holder.describe())
            reported = True
        time.sleep(min(_POLL_SECONDS, max(wait_seconds - waited, 0.01)))
    lease = Lease(store, record, ttl_seconds)
    lease._start()
    try:
        yield lease
    finally:
        lease._release()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
