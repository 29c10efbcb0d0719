"""A dead run never blocks (issue 13): `kill -9` of a `connect/signal_pushes` run while it holds
the `acoustic_connect_api` slot, with the webserver, the daemon and the shipped instance config.
The dead run is failed and its slot freed within a minute; the next run, launched right after the
kill, completes; the sandbox holds every signal of the day exactly once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import dagster as dg

from tests.ui.conftest import KILL_DAY, UIProject

POOL = "acoustic_connect_api"
PUSHES = "connect/signal_pushes"
# One batch at a time, so the batch in flight at the kill is the only one of unknown outcome.
ONE_AT_A_TIME = {"ops": {"connect__signal_pushes": {"config": {"concurrency": 1}}}}
SLOW_CALL_SECONDS = 6
#: The shipped config frees a dead run's slot within poll_interval + free_slots_after (25 s);
#: the bound leaves room for a busy machine while staying "within a few minutes".
FREED_WITHIN_SECONDS = 120


@contextmanager
def _instance(project: UIProject) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(project.ui.home)) as instance:
        yield instance


def _run_pids(instance: dg.DagsterInstance, run_id: str) -> set[int]:
    """The run worker's and its step workers' process ids, from the run's engine events."""
    pids = set()
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        data = getattr(event, "event_specific_data", None) if event else None
        metadata = getattr(data, "metadata", None) or {}
        if "pid" in metadata:
            pids.add(int(metadata["pid"].value))
    return pids


def _holders(instance: dg.DagsterInstance) -> set[str]:
    return instance.event_log_storage.get_concurrency_info(POOL).active_run_ids


def _wait(condition, *, timeout: float, what: str) -> float:  # noqa: ANN001
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.25)
    return time.monotonic()


def test_a_killed_run_frees_its_pool_slot_and_the_next_run_completes_exactly_once(
    ui_project: UIProject,
) -> None:
    ui, day = ui_project.ui, KILL_DAY.isoformat()
    assert ui.wait_run(ui.launch_run(["segment/raw_events"], day))["status"] == "SUCCESS"
    stored_before = ui.stats()["signals"]["stored"]
    served_before = ui.stats()["faults"]["served"]
    ui.sandbox("faults", {"kind": "slow", "count": 1, "delay": SLOW_CALL_SECONDS})

    with _instance(ui_project) as instance:
        dead = ui.launch_run([PUSHES], day, run_config=ONE_AT_A_TIME)
        # The run holds the pool's slot and its first createSignals call is in the sandbox.
        _wait(
            lambda: dead in _holders(instance) and ui.stats()["faults"]["served"] > served_before,
            timeout=120,
            what="the push run holding the slot with a call in flight",
        )
        pids = _run_pids(instance, dead)
        assert pids, "the run's events name no process"
        killed_at = time.monotonic()
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        following = ui.launch_run([PUSHES], day, run_config=ONE_AT_A_TIME)

        failed_at = _wait(
            lambda: ui.run(dead)["status"] == "FAILURE", timeout=120, what="the dead run failed"
        )
        freed_at = _wait(
            lambda: dead not in _holders(instance),
            timeout=FREED_WITHIN_SECONDS,
            what="the dead run's slot freed",
        )
        assert ui.wait_run(following, timeout=180)["status"] == "SUCCESS"
        done_at = time.monotonic()
        pushed = _materialization_metadata(instance, following)

    print(
        f"\nkill -9 → run failed {failed_at - killed_at:.1f}s, slot freed "
        f"{freed_at - killed_at:.1f}s, next run succeeded {done_at - killed_at:.1f}s"
    )
    time.sleep(SLOW_CALL_SECONDS)  # the call in flight at the kill is answered by now
    stats = ui.stats()["signals"]
    built = pushed["signals_built"]
    assert built > 1_000  # the day needs several batches
    # The batch in flight at the kill was stored by Connect; the next run did not send it again.
    assert pushed["unknown_outcome"] <= 500
    assert pushed["signals_sent"] + pushed["unknown_outcome"] == built
    assert stats["stored"] - stored_before == built, "signals lost or sent twice"
    assert stats["stored"] == stats["distinct"], "a signal was stored twice"


def _materialization_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(PUSHES.split("/"))), limit=10
    ).records
    for record in records:
        if record.run_id == run_id:
            metadata = record.asset_materialization.metadata
            return {k: v.value for k, v in metadata.items() if isinstance(v.value, int)}
    raise AssertionError(f"run {run_id} materialized no {PUSHES}")
