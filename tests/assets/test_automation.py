"""The collection sensor asks for connect/exported_signals only once every file of a window is on
the sandbox's SFTP server (looked up over SSH), with the window as the run's partition range and
the jobs as its run key; the schedule runs yesterday's partition of every asset but collection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.dataset as pads
import pytest

from acoustic_pipelines.definitions import defs
from acoustic_pipelines.sandbox.connect.exports import write_export_file
from assets.automation import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    daily_pipeline_job,
    exported_files_sensor,
)
from assets.exports import EXPORTED_SIGNALS_KEY, export_jobs, export_plan, exported_signals
from tests.export_sandbox import ExportSandbox, export_sandbox, resources
from tests.ledger_jobs import reserve_job

DAY = date(2026, 11, 20)


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ExportSandbox]:
    """Export jobs stay queued until the test runs them (Acoustic takes minutes)."""
    with export_sandbox(tmp_path, export_delay=3600) as running:
        for name, value in running.environment.items():
            monkeypatch.setenv(name, value)
        yield running


def landed_rows(sandbox: ExportSandbox, day: date) -> int:
    folder = sandbox.lake / "connect/exported_signals" / f"date={day}"
    return pads.dataset(str(folder), format="parquet", partitioning="hive").count_rows()


def evaluate(instance: dg.DagsterInstance) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(instance=instance, resources=resources())
    return exported_files_sensor(context)


def test_the_sensor_requests_a_window_once_all_its_files_are_there(
    sandbox: ExportSandbox,
) -> None:
    sandbox.store_signals({DAY: 6, DAY + timedelta(days=1): 3})
    with dg.DagsterInstance.ephemeral() as instance:
        assert isinstance(evaluate(instance), dg.SkipReason)  # nothing submitted yet
        submitted = dg.materialize(
            [export_plan, export_jobs],
            tags={RANGE_START_TAG: str(DAY), RANGE_END_TAG: str(DAY + timedelta(days=1))},
            instance=instance,
            resources=resources(),
        )
        assert submitted.success
        waiting = evaluate(instance)
        assert isinstance(waiting, dg.SkipReason)
        assert "2 export job(s) still running" in waiting.skip_message

        sandbox.connect.run_export_jobs()
        ready = evaluate(instance)
        assert isinstance(ready, dg.SensorResult)
        [request] = ready.run_requests
        names = sorted(j.job_name for j in sandbox.ledger.jobs())
        assert request.run_key == "+".join(names)
        assert request.tags[RANGE_START_TAG] == str(DAY)
        assert request.tags[RANGE_END_TAG] == str(DAY + timedelta(days=1))

        collected = dg.materialize(
            [exported_signals], tags=request.tags, instance=instance, resources=resources()
        )
        assert collected.success
        partitions = {
            m.partition
            for m in collected.asset_materializations_for_node("connect__exported_signals")
        }
        assert partitions == {str(DAY), str(DAY + timedelta(days=1))}  # one run for the range
        assert [landed_rows(sandbox, DAY + timedelta(days=i)) for i in (0, 1)] == [6, 3]
        assert isinstance(evaluate(instance), dg.SkipReason)  # collected: nothing pending


def test_the_daily_schedule_runs_every_asset_but_the_collection() -> None:
    job = defs.resolve_job_def(daily_pipeline_job.name)
    every = defs.resolve_asset_graph().get_all_asset_keys()
    selected = set(job.asset_layer.selected_asset_keys)
    assert selected == every - {EXPORTED_SIGNALS_KEY}
    schedule = defs.resolve_schedule_def("daily_pipeline_schedule")
    assert schedule.cron_schedule == "0 2 * * *"


def test_a_job_left_reserved_by_a_dead_run_is_collected_when_its_file_appears(
    sandbox: ExportSandbox,
) -> None:
    """The run died after sending, before recording Connect's answer: the file is still awaited."""
    reserve_job(
        sandbox.ledger,
        "acoustic-pipelines-behavior-20261120-20261120-1",
        window=(DAY, DAY),
        now=datetime.now(UTC),
    )
    [job] = sandbox.ledger.jobs()
    with dg.DagsterInstance.ephemeral() as instance:
        assert isinstance(evaluate(instance), dg.SkipReason)
        remote = sandbox.connect.subscription_folder / job.remote_path  # requested path + .gz
        remote.parent.mkdir(parents=True, exist_ok=True)
        write_export_file(remote, iter(()))
        ready = evaluate(instance)
    assert isinstance(ready, dg.SensorResult)
    assert [r.run_key for r in ready.run_requests] == [job.job_name]
