"""Partition leases: one holder at a time, a live holder named, a dead or expired one taken over.

Real processes hold the leases that must die (SIGKILL); the store is the SQLite file a lake uses
and a real PostgreSQL server (pgserver) the tests start; nothing is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acoustic_pipelines.leases import (
    DatabaseLeaseStore,
    LeaseHeld,
    LeaseLost,
    LeaseRecord,
    hold_lease,
    open_lease_store,
)
from acoustic_pipelines.owners import host_name, owned_scratch, owner_tag, sweep_scratch
from tests.postgres import new_database, postgres_url  # noqa: F401 (fixture)

NAME = "segment/raw_events/date=2026-11-20"

HOLDER = """
import sys, time
from acoustic_pipelines.leases import open_lease_store, hold_lease
with hold_lease(open_lease_store(sys.argv[1]), sys.argv[2], label="the holder", ttl_seconds=600):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseLeaseStore:
    """A new lease store in a SQLite file, and on a real PostgreSQL server the tests start."""
    if request.param == "sqlite":
        return open_lease_store(tmp_path / "leases.sqlite")
    server = request.getfixturevalue("postgres_url")
    return open_lease_store(
        new_database(server, f"l_{tmp_path.name[-20:]}".lower().replace("-", "_"))
    )


def test_a_live_holder_makes_the_second_run_wait_then_fail_naming_it(
    store: DatabaseLeaseStore,
) -> None:
    with hold_lease(store, NAME, label="run A"):
        started = time.monotonic()
        with pytest.raises(LeaseHeld) as held, hold_lease(store, NAME, wait_seconds=0.5):
            pass
        assert time.monotonic() - started >= 0.5
        assert held.value.holder.label == "run A" and held.value.holder.owner == owner_tag()
        assert f"run A, process {owner_tag()}" in str(held.value) and NAME in str(held.value)
    with hold_lease(store, NAME, wait_seconds=0):  # released: free again
        pass
    assert store.holder(NAME) is None


def test_a_waiting_run_takes_the_lease_when_the_holder_releases_it(
    store: DatabaseLeaseStore, tmp_path: Path
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store.database.location, NAME, "1.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LeaseHeld, match="the holder"), hold_lease(store, NAME, wait_seconds=0):
            pass
        started = time.monotonic()
        with hold_lease(store, NAME, wait_seconds=60) as lease:  # waits for the release
            assert lease.record.owner == owner_tag() and time.monotonic() - started > 0.5
        assert holder.wait(timeout=30) == 0  # the holder ended normally: it released
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_on_this_host_is_taken_over_at_once(store: DatabaseLeaseStore) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store.database.location, NAME, "600"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    dead = store.holder(NAME)
    assert dead is not None and dead.expires_at > time.time() + 500  # not expired: dead
    started = time.monotonic()
    with hold_lease(store, NAME, wait_seconds=0) as lease:
        assert lease.record.token != dead.token
    assert time.monotonic() - started < 5


def test_another_hosts_lease_is_respected_until_it_expires(store: DatabaseLeaseStore) -> None:
    now = float(int(time.time()))  # whole milliseconds: the store keeps milliseconds
    foreign = LeaseRecord(NAME, "t-foreign", "4242@elsewhere", "run B", now, now + 600)
    assert store.take(foreign, now) is None
    mine = LeaseRecord(NAME, "t-mine", owner_tag(), "", now, now + 60)
    assert store.take(mine, now) == foreign  # live: kept
    assert store.take(mine, now + 601) is None  # expired: taken over
    assert store.holder(NAME) == mine


def test_a_lease_taken_over_is_lost_and_confirm_says_so(store: DatabaseLeaseStore) -> None:
    with hold_lease(store, NAME, ttl_seconds=30) as lease:
        lease.confirm()
        later = float(int(time.time())) + 31  # the store sees it expired: another run takes it
        other = LeaseRecord(NAME, "t-other", "1@elsewhere", "", later, later + 30)
        assert store.take(other, later) is None
        with pytest.raises(LeaseLost, match="lost"):
            lease.confirm()
    assert store.holder(NAME) == other  # releasing a lost lease leaves the new holder's alone


def test_scratch_of_a_dead_owner_is_swept_and_a_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"raw-events-abc-{dead.pid}@{host_name()}"
    live = tmp_path / f"raw-events-def-{os.getppid()}@{host_name()}"
    foreign = tmp_path / "raw-events-ghi-1@elsewhere"
    for folder in (left, live, foreign):
        (folder / "keys").mkdir(parents=True)
    assert sweep_scratch("raw-events-", tmp_path) == [left]
    with owned_scratch("raw-events-", str(tmp_path)) as mine:
        assert mine.name.startswith("raw-events-") and mine.name.endswith(f"-{owner_tag()}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name])
