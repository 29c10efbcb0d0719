"""Pool slots held by dead runs: found before the CLI launches, released by one command.

With the daemon (`make dev`), Dagster's run monitoring fails a run whose process died and frees
its pool slots (config/dagster.yaml). Without it — runs launched from the command line — nothing
does: the next run of the pool waits forever. `dead_slot_holders` names such runs (a run holding a
slot whose processes, named by its events, are all gone from this machine) and `release_run`,
behind `acoustic-pipelines instance release RUN_ID`, fails the run and frees its slots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RELEASE_COMMAND = "acoustic-pipelines instance release"


@dataclass(frozen=True)
class DeadHolder:
    """A run that holds a pool slot although none of its processes is alive any more."""

    run_id: str
    pool: str
    step_key: str
    status: str
    pids: tuple[int, ...]

    def explain(self) -> str:
        """What blocks the pool and the one command that frees it."""
        pids = ", ".join(str(p) for p in self.pids)
        return (
            f"pool {self.pool}: its slot is held by run {self.run_id} (step {self.step_key}, "
            f"status {self.status}), whose process (pid {pids}) is gone; every run of the pool "
            f"waits for it. Free it with: {RELEASE_COMMAND} {self.run_id}"
        )


class ReleaseError(RuntimeError):
    """A run cannot be released: unknown, or its process is still alive."""


def run_pids(instance: Any, run_id: str) -> tuple[tuple[int, ...], float | None]:
    """The process ids the run's events name (run worker, executor, step workers) and the
    time of the earliest such event."""
    pids: list[int] = []
    first: float | None = None
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        data = getattr(event, "event_specific_data", None) if event else None
        metadata = getattr(data, "metadata", None) or {}
        pid = metadata.get("pid")
        if pid is None:
            continue
        try:
            value = int(pid.value)
        except (TypeError, ValueError):
            continue
        if value not in pids:
            pids.append(value)
        first = record.timestamp if first is None else min(first, record.timestamp)
    return tuple(pids), first


def process_alive(pid: int, *, since: float | None = None) -> bool:
    """Whether process `pid` runs on this machine (and, on Linux, started no later than `since`:
    a later process with a recycled id is another process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if since is None:
        return True
    started = _process_start_time(pid)
    return started is None or started <= since + 2


def _process_start_time(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def run_is_dead(instance: Any, run_id: str) -> tuple[bool, tuple[int, ...]]:
    """Whether none of the processes the run's events name is alive (False when none is named)."""
    pids, since = run_pids(instance, run_id)
    if not pids:
        return False, pids
    return not any(process_alive(p, since=since) for p in pids), pids


def _pools(instance: Any) -> list[str]:
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    return sorted(storage.get_concurrency_keys())


def dead_slot_holders(instance: Any) -> list[DeadHolder]:
    """Runs holding a pool slot of the instance whose processes are all gone."""
    holders: list[DeadHolder] = []
    storage = instance.event_log_storage
    for pool in _pools(instance):
        for slot in storage.get_concurrency_info(pool).claimed_slots:
            run = instance.get_run_by_id(slot.run_id)
            if run is not None and run.is_finished:
                status = run.status.value
                dead, pids = True, run_pids(instance, slot.run_id)[0]
            else:
                status = run.status.value if run is not None else "deleted"
                dead, pids = run_is_dead(instance, slot.run_id) if run else (True, ())
            if dead:
                holders.append(DeadHolder(slot.run_id, pool, slot.step_key, status, pids))
    return holders


def release_run(instance: Any, run_id: str) -> list[str]:
    """Fail a dead run (if not finished) and free every pool slot it holds; the messages to show.

    Raises:
        ReleaseError: No such run, or one of its processes is still alive.
    """
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ReleaseError(f"run {run_id} is not in this instance ($DAGSTER_HOME)")
    done: list[str] = []
    if not run.is_finished:
        dead, pids = run_is_dead(instance, run_id)
        if not dead:
            alive = ", ".join(str(p) for p in pids) or "not known yet"
            raise ReleaseError(
                f"run {run_id} is {run.status.value} and its process (pid {alive}) is still "
                "running on this machine: it holds its slots legitimately; let it finish or stop it"
            )
        instance.report_run_failed(
            run,
            f"{RELEASE_COMMAND}: the run's process (pid "
            f"{', '.join(str(p) for p in pids)}) is gone; marked failed and its pool slots freed",
        )
        done.append(f"run {run_id} marked FAILURE (its process is gone)")
    held = [
        pool
        for pool in _pools(instance)
        if run_id in instance.event_log_storage.get_concurrency_info(pool).active_run_ids
    ]
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    done.append(f"freed its slots in {', '.join(held)}" if held else "it held no pool slot")
    return done
