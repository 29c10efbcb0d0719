"""Where the pipeline's ledgers keep their rows: a SQLite file on a local disk (the embedded
default) or a PostgreSQL server that every machine sees. One small interface, the same SQL.

Ledgers write their SQL once, in the subset both engines speak (`?` placeholders, `TEXT` and
`BIGINT` columns, `CREATE … IF NOT EXISTS`, `INSERT … ON CONFLICT DO NOTHING`), and change state
only inside `Database.transaction()`, which is exclusive: SQLite's write lock (`BEGIN IMMEDIATE`),
or on PostgreSQL a transaction-scoped advisory lock named after the ledger. A read-check-write
inside it (count today's usage, then reserve) therefore sees no other writer, in any process on
any machine, whatever Dagster's pool settings are.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Connection", "Database", "DatabaseError", "Session", "open_database"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class DatabaseError(Exception):
    """The ledger database cannot be opened or used (names the location, never its password)."""


class Cursor(Protocol):
    """What `Connection.execute` returns: rows as tuples."""

    rowcount: int

    def fetchone(self) -> tuple[Any, ...] | None: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...


class Connection(Protocol):
    """A connection inside a transaction: `execute(sql, params)` with `?` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...


@dataclass(frozen=True)
class Database:
    """A ledger database: `location` is a file path (SQLite) or a `postgresql://` URL; `name`
    scopes the PostgreSQL lock (one per ledger, so two ledgers never wait on each other)."""

    location: str
    name: str
    timeout: float = 30.0

    @property
    def is_postgres(self) -> bool:
        """Whether the rows live on a PostgreSQL server."""
        return self.location.startswith(_POSTGRES_SCHEMES)

    @property
    def display(self) -> str:
        """The location for messages: a URL without its password."""
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.location)

    def create(self, schema: str) -> None:
        """Run the `;`-separated DDL once; safe when many processes open a new database at once."""
        statements = [s.strip() for s in schema.split(";") if s.strip()]
        if not self.is_postgres:
            self._sqlite_wal()
        with self.transaction() as db:
            for statement in statements:
                db.execute(statement)

    def columns(self, table: str, db: Connection | None = None) -> set[str]:
        """The column names of `table` (empty if it does not exist), read through `db` if given."""
        if db is None:
            with self.read() as conn:
                return self.columns(table, conn)
        if self.is_postgres:
            sql = (
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ?"
            )
        else:
            sql = "SELECT name FROM pragma_table_info(?)"
        return {str(row[0]) for row in db.execute(sql, (table,)).fetchall()}

    def _sqlite_wal(self) -> None:
        """Switch a SQLite file to WAL (readers never wait for the writer), retrying while another
        process switches it: the switch takes its lock without SQLite's busy handler."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with self._sqlite() as db:
                    db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise DatabaseError(
                        f"cannot open the ledger database {self.display}: {exc}"
                    ) from exc
                time.sleep(0.05)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """An exclusive read-write transaction: committed on success, rolled back on error."""
        if self.is_postgres:
            with self._postgres() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(self.name),))
                yield _PostgresConnection(conn)
            return
        with self._sqlite() as db, _immediate(db):
            yield db

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only look at committed rows (no lock taken)."""
        if self.is_postgres:
            with self._postgres() as conn:
                yield _PostgresConnection(conn)
            return
        with self._sqlite() as db:
            yield db

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One connection held for many transactions (see `Session`), closed when the block ends."""
        if self.is_postgres:
            with self._postgres() as conn:
                yield Session(self, _PostgresConnection(conn), conn)
            return
        with self._sqlite(shared=True) as db:
            for pragma in _SESSION_PRAGMAS:
                db.execute(pragma)
            yield Session(self, db, None)

    @contextmanager
    def _sqlite(self, *, shared: bool = False) -> Iterator[sqlite3.Connection]:
        path = Path(self.location.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                path, timeout=self.timeout, isolation_level=None, check_same_thread=not shared
            )
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseError(f"cannot open the ledger database {path}: {exc}") from exc
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _postgres(self) -> Iterator[Any]:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise DatabaseError(
                f"the ledger database {self.display} is PostgreSQL, which needs the driver: "
                "pip install 'acoustic-pipelines[postgres]'"
            ) from exc
        url = self.location.replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(self.timeout)))
        except psycopg.Error as exc:
            raise DatabaseError(
                f"cannot connect to the ledger database {self.display}: {exc}"
            ) from None
        with conn:
            yield conn


#: A session's SQLite settings (its connection alone; other connections keep the defaults):
#: - `synchronous = NORMAL`: in WAL mode a commit is not synced to disk, the checkpoint is. A
#:   crash of the process loses nothing; a power loss may undo the last commits, which leaves the
#:   database as it was before them (a ledger whose writes are idempotent redoes them);
#: - checkpoints every 16k pages (64 MB of WAL) instead of 1,000, and an 8 MB page cache (32 MB
#:   measured no faster for the Connections ledger, and counts in a sync's peak memory): a long
#:   run of transactions rewrites each page of a large table once, not once per commit.
_SESSION_PRAGMAS = (
    "PRAGMA synchronous = NORMAL",
    "PRAGMA wal_autocheckpoint = 16384",
    "PRAGMA cache_size = -8192",
)


class Session:
    """A ledger database through one held connection, for a writer that commits often.

    `transaction()` and `read()` behave as `Database`'s (the same exclusive transactions, the
    same lock on PostgreSQL) but reuse the connection: no connection set-up per transaction and,
    on SQLite, the page cache and write-ahead log survive from one commit to the next. Threads
    of one process may share a session; it serializes their use of the connection.
    """

    def __init__(self, database: Database, connection: Any, postgres: Any) -> None:
        self.database = database
        self._connection = connection
        self._postgres = postgres  # psycopg's connection, for its transactions
        self._lock = threading.Lock()

    @property
    def is_postgres(self) -> bool:
        """Whether the rows live on a PostgreSQL server."""
        return self.database.is_postgres

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """An exclusive read-write transaction: committed on success, rolled back on error."""
        with self._lock:
            if self._postgres is not None:
                with self._postgres.transaction():
                    self._connection.execute(
                        "SELECT pg_advisory_xact_lock(?)", (_lock_key(self.database.name),)
                    )
                    yield self._connection
                return
            with _immediate(self._connection):
                yield self._connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only look at committed rows (no lock taken in the database)."""
        with self._lock:
            yield self._connection


@contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """A SQLite write transaction taken at once (BEGIN IMMEDIATE): committed, or rolled back on
    error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def open_database(location: str | Path, *, name: str, timeout: float = 30.0) -> Database:
    """The ledger database at `location` (a SQLite file path or a PostgreSQL URL)."""
    return Database(location=str(location), name=name, timeout=timeout)


class _PostgresConnection:
    """psycopg's connection behind the `?`-placeholder interface SQLite's has."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return self._conn.execute(_to_pyformat(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        """One statement for many parameter rows (psycopg pipelines them in one round trip)."""
        with self._conn.cursor() as cursor:
            cursor.executemany(_to_pyformat(sql), [tuple(row) for row in rows])


def _to_pyformat(sql: str) -> str:
    """`?` placeholders → psycopg's `%s` (a literal `%` doubled); our SQL has no `?` in strings."""
    return sql.replace("%", "%%").replace("?", "%s")


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a ledger name."""
    return int.from_bytes(
        hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
    )
