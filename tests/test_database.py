"""Contract of `acoustic_pipelines/database.py`: the same SQL and the same exclusive transactions on
a SQLite file and on a real PostgreSQL server (started by the tests), across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from acoustic_pipelines.database import Database, DatabaseError, open_database
from tests.postgres import new_database, postgres_url  # noqa: F401 (fixture)

SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (name TEXT PRIMARY KEY, owner TEXT NOT NULL)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of each kind."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    server = request.getfixturevalue("postgres_url")
    return new_database(server, f"t_{tmp_path.name[-20:]}".lower().replace("-", "_"))


def _increment(location: str, times: int) -> None:
    """A read-then-write that loses updates unless the transaction is exclusive."""
    database = open_database(location, name="counters")
    for _ in range(times):
        with database.transaction() as db:
            (value,) = db.execute("SELECT value FROM counters WHERE name = ?", ("n",)).fetchone()
            db.execute("UPDATE counters SET value = ? WHERE name = ?", (value + 1, "n"))


def _create(location: str) -> None:
    open_database(location, name="counters").create(SCHEMA)


def test_same_sql_and_rollback(location: str) -> None:
    database = open_database(location, name="counters")
    database.create(SCHEMA)
    database.create(SCHEMA)  # idempotent
    with database.transaction() as db:
        db.execute("INSERT INTO counters (name, value) VALUES (?, ?)", ("n", 5_000_000_000))
        db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING", ("n", 1)
        )
    with pytest.raises(RuntimeError), database.transaction() as db:
        db.execute("UPDATE counters SET value = value + 1 WHERE name LIKE ?", ("n%",))
        raise RuntimeError("the transaction must roll back")
    with database.read() as db:
        assert db.execute("SELECT name, value FROM counters").fetchall() == [("n", 5_000_000_000)]


def test_read_then_write_is_exact_across_processes(location: str) -> None:
    database = open_database(location, name="counters")
    ctx = multiprocessing.get_context("spawn")
    creators = [ctx.Process(target=_create, args=(location,)) for _ in range(4)]
    for p in creators:
        p.start()
    for p in creators:
        p.join(60)
        assert p.exitcode == 0
    with database.transaction() as db:
        db.execute("INSERT INTO counters (name, value) VALUES (?, ?)", ("n", 0))
    workers = [ctx.Process(target=_increment, args=(location, 50)) for _ in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
        assert p.exitcode == 0
    with database.read() as db:
        assert db.execute("SELECT value FROM counters").fetchone() == (200,)


def test_errors_name_the_place_without_the_password() -> None:
    database = Database("postgresql://ledger:s3cret@127.0.0.1:9/ledgers", name="x", timeout=1)
    with pytest.raises(DatabaseError) as caught:
        database.create(SCHEMA)
    assert "127.0.0.1:9/ledgers" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_every_ledger_shares_one_database(location: str) -> None:
    """`ACOUSTIC_PIPELINES_LEDGER_DATABASE` puts the export ledger, the leases and the Segment
    Connections ledger in one database: their tables must not collide, and each keeps working."""
    import time
    from datetime import UTC, date, datetime

    from acoustic_pipelines.connect.exports.ledger import ExportLedger
    from acoustic_pipelines.connections.ledger import SyncLedger
    from acoustic_pipelines.leases import LeaseRecord, open_lease_store
    from tests.ledger_jobs import reserve_job

    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    exports = ExportLedger(location)
    leases = open_lease_store(location)
    connections = SyncLedger(open_database(location, name="segment_connections"))

    reserve_job(exports, "job", window=(date(2026, 3, 1), date(2026, 3, 1)), now=now)
    moment = time.time()
    record = LeaseRecord("day", "token", "me@here", "test", moment, moment + 60)
    assert leases.take(record, moment) is None  # taken: no live holder stood in the way
    assert connections.reset("customers") == 1

    assert [j.job_name for j in ExportLedger(location).jobs()] == ["job"]
    assert ExportLedger(location).usage(now.date()).jobs == 1
    holder = open_lease_store(location).holder("day")
    assert holder is not None and (holder.token, holder.owner) == ("token", "me@here")
    assert (
        SyncLedger(open_database(location, name="segment_connections")).generation("customers") == 1
    )


def test_a_session_holds_one_connection_for_many_exclusive_transactions(location: str) -> None:
    """Threads share a session; its commits are seen by other connections and other processes'
    transactions still exclude its own (no update lost); a failed one rolls back."""
    import threading

    database = open_database(location, name="counters")
    database.create(SCHEMA)
    database.create("INSERT INTO counters (name, value) VALUES ('n', 0)")
    ctx = multiprocessing.get_context("spawn")
    other = ctx.Process(target=_increment, args=(location, 100))
    with database.session() as session:
        other.start()

        def increment() -> None:
            for _ in range(100):
                with session.transaction() as db:
                    row = db.execute("SELECT value FROM counters WHERE name = ?", ("n",))
                    (value,) = row.fetchone()
                    db.execute("UPDATE counters SET value = ? WHERE name = ?", (value + 1, "n"))

        threads = [threading.Thread(target=increment) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with pytest.raises(RuntimeError), session.transaction() as db:
            db.execute("UPDATE counters SET value = value + 1000 WHERE name = ?", ("n",))
            raise RuntimeError("the transaction must roll back")
        other.join(timeout=120)
        with session.read() as db:
            assert db.execute("SELECT value FROM counters").fetchall() == [(300,)]
    assert other.exitcode == 0
    with database.read() as db:
        assert db.execute("SELECT value FROM counters").fetchall() == [(300,)]
