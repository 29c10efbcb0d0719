"""The collection sensor asks for connect/exported_signals only once every file of a window is on
the sandbox's SFTP server (looked up over SSH), with the window's days still to land as the run's
partition range and the jobs as its run key; collecting one day of a range job leaves the rest
of its window to the sensor. Jobs Connect deferred with DAILY_LIMIT_EXCEEDED are requested by
the deferred-exports sensor once their UTC day has passed and submitted exactly once. The
schedule runs yesterday's partition of every asset but collection."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.dataset as pads
import pytest

from acoustic_pipelines.connect.exports.ledger import COLLECTED, DEFERRED, SUBMITTED
from acoustic_pipelines.connect.exports.planning import plan_exports
from acoustic_pipelines.connect.exports.submission import ExportSubmitError, submit_plan
from acoustic_pipelines.definitions import defs
from acoustic_pipelines.sandbox.connect.exports import write_export_file
from assets.automation import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    daily_pipeline_job,
    deferred_exports_sensor,
    deferred_requests,
    exported_files_sensor,
)
from assets.exports import EXPORTED_SIGNALS_KEY, export_jobs, export_plan, exported_signals
from resources.pipeline_config import PipelineConfigResource
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
        assert request.run_key == "+".join(names) + f":{DAY}..{DAY + timedelta(days=1)}"
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


def test_the_daily_schedule_runs_every_daily_asset_but_the_collection() -> None:
    """Every daily asset; the Segment Connections syncs (not daily) have their own schedules."""
    job = defs.resolve_job_def(daily_pipeline_job.name)
    graph = defs.resolve_asset_graph()
    daily = {k for k in graph.materializable_asset_keys if graph.get(k).partitions_def is not None}
    selected = set(job.asset_layer.selected_asset_keys)
    assert selected == daily - {EXPORTED_SIGNALS_KEY}
    assert graph.materializable_asset_keys - daily  # the syncs exist and are left out
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
    assert [r.run_key for r in ready.run_requests] == [f"{job.job_name}:{DAY}..{DAY}"]


def test_collecting_one_day_of_a_range_job_leaves_the_other_days_to_collect(
    sandbox: ExportSandbox,
) -> None:
    sandbox.only_behavior()
    last = DAY + timedelta(days=2)
    sandbox.store_signals({DAY: 2, DAY + timedelta(days=1): 3, last: 4})
    with dg.DagsterInstance.ephemeral() as instance:
        tags = {RANGE_START_TAG: str(DAY), RANGE_END_TAG: str(last)}
        assert dg.materialize(
            [export_plan, export_jobs], tags=tags, instance=instance, resources=resources()
        ).success
        sandbox.connect.run_export_jobs()
        middle = DAY + timedelta(days=1)
        one_day = dg.materialize(
            [exported_signals], partition_key=str(middle), instance=instance, resources=resources()
        )
        assert one_day.success and landed_rows(sandbox, middle) == 3
        [job] = sandbox.ledger.jobs()
        assert job.status == SUBMITTED  # two days of its window are still to land
        assert sandbox.ledger.collected_days(job.job_name) == {middle}

        ready = evaluate(instance)
        assert isinstance(ready, dg.SensorResult)
        [request] = ready.run_requests
        assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (str(DAY), str(last))
        rest = dg.materialize(
            [exported_signals], tags=request.tags, instance=instance, resources=resources()
        )
        assert rest.success
        assert [landed_rows(sandbox, DAY + timedelta(days=i)) for i in range(3)] == [2, 3, 4]
        [job] = sandbox.ledger.jobs()
        assert job.status == COLLECTED and job.rows == 9
        assert isinstance(evaluate(instance), dg.SkipReason)


def test_jobs_deferred_by_connect_are_submitted_once_the_next_utc_day(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quota used outside the pipeline: Connect refuses the second job of a run yesterday; it is
    deferred, the sensor says until when, then requests it after 00:00 UTC, and it is submitted
    exactly once."""
    now = datetime.now(UTC)
    clock = [now - timedelta(days=1)]  # Connect's time, moved to today below
    with export_sandbox(tmp_path, clock=lambda: clock[0], export_delay=3600) as sandbox:
        for name, value in sandbox.environment.items():
            monkeypatch.setenv(name, value)
        sandbox.connect.service.set_usage({"jobs": 19})  # 19 of yesterday's 20 used elsewhere
        ledger = sandbox.ledger
        exports = PipelineConfigResource().load().exports
        days = [DAY, DAY + timedelta(days=1)]
        plan = plan_exports(exports, days, ledger=ledger, pushed_by_day={}, now=clock[0])
        assert len(plan.jobs) == 2 and not plan.breaches  # the ledger knows none of the 19
        with pytest.raises(ExportSubmitError) as refused:
            submit_plan(plan, ledger, client_factory=sandbox.client, now=lambda: clock[0])
        assert [j.job_name for j in refused.value.report.submitted] == [plan.jobs[0].job_name]
        [deferred] = ledger.jobs(statuses=[DEFERRED])
        assert deferred.job_name == plan.jobs[1].job_name
        midnight = datetime.combine(now.date(), datetime.min.time(), UTC)
        assert deferred.deferred_until == midnight

        waiting = deferred_requests(ledger, clock[0])  # still yesterday: not due
        assert isinstance(waiting, dg.SkipReason)
        assert f"deferred until {midnight:%Y-%m-%d %H:%M} UTC" in waiting.skip_message
        assert "DAILY_LIMIT_EXCEEDED" in waiting.skip_message

        clock[0] = now  # the next UTC day
        with dg.DagsterInstance.ephemeral() as instance:
            context = dg.build_sensor_context(instance=instance, resources=resources())
            due = deferred_exports_sensor(context)
            assert isinstance(due, dg.SensorResult)
            [request] = due.run_requests
            assert request.run_key == f"{deferred.job_name}@{now.date()}"
            assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
                str(DAY),
                str(DAY + timedelta(days=1)),
            )
            deferred_in_plan = []
            for _ in range(2):  # the request run twice (a retry, a second sensor tick)
                run = dg.materialize(
                    [export_plan, export_jobs],
                    tags=request.tags,
                    instance=instance,
                    resources=resources(),
                )
                assert run.success
                [plan_event, *_] = run.asset_materializations_for_node("connect__export_plan")
                deferred_in_plan.append(plan_event.metadata["deferred_jobs"].value)
            assert deferred_in_plan == [1, 0]  # planned again once, then already submitted
            again = deferred_exports_sensor(
                dg.build_sensor_context(instance=instance, resources=resources())
            )
        assert (
            isinstance(again, dg.SkipReason) and "no export job is deferred" in again.skip_message
        )
        names = [j["jobName"] for j in sandbox.sandbox_jobs()]
        assert sorted(names) == sorted(j.job_name for j in plan.jobs)  # each exactly once
        assert {j.status for j in ledger.jobs()} == {SUBMITTED}
        assert sandbox.connect.stats()["usage"]["refused_submissions"] == 1
