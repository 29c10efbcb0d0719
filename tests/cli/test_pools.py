"""From the command line (no daemon), a run killed while it held a pool slot blocks every later
run of the pool: the demo names that run and the one command that frees it, and
`acoustic-pipelines instance release RUN_ID` fails the dead run and frees its slot. A live run is
never released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from acoustic_pipelines.cli.instance import prepare_instance
from acoustic_pipelines.cli.main import main

POOL = "acoustic_connect_api"
# What a run worker does before its step calls Connect: a STARTED run, the engine event naming
# its process (as Dagster's executors write it) and the pool slot its step claims.
RUN_WORKER = f"""
import os, sys, time
import dagster as dg
from dagster._core.events import EngineEventData
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
with dg.DagsterInstance.get() as instance:
    run = instance.add_run(DagsterRun(job_name="__ASSET_JOB", status=DagsterRunStatus.STARTED))
    instance.report_engine_event(
        f"Started process for run (pid: {{os.getpid()}}).", run, EngineEventData.in_process(os.getpid())
    )
    instance.event_log_storage.initialize_concurrency_limit_to_default("{POOL}")  # as the executor does
    status = instance.event_log_storage.claim_concurrency_slot("{POOL}", run.run_id, "connect__signal_pushes")
    assert status.is_claimed, status
    print(run.run_id, flush=True)
    time.sleep(600)
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    prepare_instance(home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("ACOUSTIC_PIPELINES_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setenv("ACOUSTIC_PIPELINES_LAKE", str(tmp_path / "lake"))
    return home


def _start_run_worker(home: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_WORKER],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    run_id = process.stdout.readline().strip()
    assert run_id, "the run worker did not start"
    return process, run_id


def _holders(home: Path) -> set[str]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.event_log_storage.get_concurrency_info(POOL).active_run_ids


def test_the_next_run_names_the_dead_run_and_the_command_that_frees_it(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    worker, run_id = _start_run_worker(home)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert _holders(home) == {run_id}  # nothing frees it by itself without the daemon

    assert main(["demo", "--date", "2026-11-20", "--events", "50"]) == 1
    err = capsys.readouterr().err
    assert f"pool {POOL}: its slot is held by run {run_id}" in err
    assert f"pid {worker.pid}" in err and "is gone" in err
    assert f"Free it with: acoustic-pipelines instance release {run_id}" in err

    assert main(["instance", "check"]) == 1
    assert f"Free it with: acoustic-pipelines instance release {run_id}" in capsys.readouterr().out

    assert main(["instance", "release", run_id]) == 0
    assert f"freed its slots in {POOL}" in capsys.readouterr().out
    assert main(["instance", "check"]) == 0
    assert _holders(home) == set()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.FAILURE


def test_a_live_run_is_neither_named_nor_released(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    worker, run_id = _start_run_worker(home)
    try:
        from acoustic_pipelines.cli.pools import dead_slot_holders

        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert dead_slot_holders(instance) == []
        assert main(["instance", "release", run_id]) == 1
        assert f"(pid {worker.pid}) is still running" in capsys.readouterr().err
        assert _holders(home) == {run_id}
    finally:
        worker.kill()
        worker.wait()
