"""connect/export_plan → connect/export_jobs → connect/exported_signals materialized in-process
with the real resources against the sandbox: GraphQL over HTTP for exportSignals, SFTP over SSH
for the files. Row counts are compared with the signals the sandbox stores; the quota checks
(one result per day, also in range runs), the ledger's once-only submission, the dry run,
Connect's own DAILY_LIMIT_EXCEEDED (the run's jobs deferred), a 10-day backfill as one run and
one job, a range previewed by two runs submitted as one job, the all-or-nothing reservation,
and a failed verdict binding a later export_jobs-only run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.dataset as pads
import pytest
import requests

from acoustic_pipelines.connect.exports.collection import EXPORTED_SIGNALS
from acoustic_pipelines.connect.exports.files import export_schema
from acoustic_pipelines.connect.exports.ledger import COLLECTED, DEFERRED, SUBMITTED
from acoustic_pipelines.sandbox.connect.exports import EXPORT_COLUMNS
from assets.exports import (
    LIMIT_CHECKS,
    QUOTA_WARNING_CHECK,
    USAGE_CHECKS,
    export_jobs,
    export_plan,
    exported_signals,
)
from tests.export_sandbox import API_KEY, ExportSandbox, export_sandbox, resources
from tests.ledger_jobs import reserve_job

DAY = date(2026, 11, 20)
PLAN, JOBS, EXPORTED = "connect__export_plan", "connect__export_jobs", "connect__exported_signals"
ALL = [export_plan, export_jobs, exported_signals]


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ExportSandbox]:
    with export_sandbox(tmp_path) as running:
        for name, value in running.environment.items():
            monkeypatch.setenv(name, value)
        yield running


def materialize(
    assets: list[Any],
    instance: dg.DagsterInstance,
    *,
    day: date = DAY,
    last: date | None = None,
    config: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """One run: a partition, or the range day..last as one run (BackfillPolicy.single_run)."""
    tags = (
        {
            "dagster/asset_partition_range_start": day.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        }
        if last
        else None
    )
    return dg.materialize(
        assets,
        partition_key=None if last else day.isoformat(),
        tags=tags,
        instance=instance,
        resources=resources(),
        run_config={"ops": config} if config else None,
        raise_on_error=False,
    )


def metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    materializations = result.asset_materializations_for_node(node)
    assert materializations, f"{node} was not materialized"
    return {k: v.value for k, v in materializations[0].metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def landed(sandbox: ExportSandbox, day: date, definition: str = "behavior") -> Any:
    folder = sandbox.lake / EXPORTED_SIGNALS / f"date={day}" / f"definition={definition}"
    return pads.dataset(str(folder), format="parquet").to_table()


def stored_in_window(sandbox: ExportSandbox, day: date, types: tuple[str, ...]) -> int:
    """The sandbox's own count of stored signals of `types` timed on `day`."""
    start, end = f"{day}T00:00:00.000Z", f"{day}T23:59:59.999Z"
    return sum(1 for _ in sandbox.connect.store.iter_export_signals(list(types), start, end))


def test_one_partition_end_to_end_lands_exactly_the_stored_signals(
    sandbox: ExportSandbox,
) -> None:
    sandbox.store_signals({DAY - timedelta(days=1): 5, DAY: 37, DAY + timedelta(days=1): 4})
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(ALL, instance)
        assert result.success
        plan = metadata(result, PLAN)
        assert plan["planned_jobs"] == 2 and plan["used_jobs"] == 0
        assert all(checks(result)[name].passed for name in LIMIT_CHECKS.values())
        assert checks(result)[QUOTA_WARNING_CHECK].passed

        jobs = sandbox.sandbox_jobs()
        assert len(jobs) == 2
        assert {j["jobName"].split("-")[2] for j in jobs} == {"behavior", "marketing"}

        exported = metadata(result, EXPORTED)
        behavior = landed(sandbox, DAY)
        expected = stored_in_window(sandbox, DAY, ("pageView", "addToCart"))
        assert expected == 37 and behavior.num_rows == expected == exported["rows"]
        assert exported["rows/pageView"] == 19 and exported["rows/addToCart"] == 18
        assert exported["rows/emailOpen"] == 0 and exported["files"] == 2
        assert exported["bytes_downloaded"] > 0 and exported["download_mb_per_s"] > 0
        assert behavior.schema == export_schema(EXPORT_COLUMNS)
        assert set(behavior.column("SIGNAL_TYPE").to_pylist()) == {"pageView", "addToCart"}
        marketing = landed(sandbox, DAY, "marketing")
        assert marketing.num_rows == 0 and marketing.schema == behavior.schema
        assert all(checks(result)[name].passed for name in USAGE_CHECKS.values())

        ledger = {j.job_name: j for j in sandbox.ledger.jobs()}
        assert {j.status for j in ledger.values()} == {COLLECTED}
        assert sorted(j.rows for j in ledger.values()) == [0, 37]
        assert {j.data_job_id for j in ledger.values()} == {j["dataJobId"] for j in jobs}

        again = materialize(ALL, instance)
        assert again.success
        assert len(sandbox.sandbox_jobs()) == 2  # nothing submitted twice
        assert metadata(again, JOBS)["jobs_already_submitted"] == 2
        assert metadata(again, PLAN)["planned_jobs"] == 0
        assert landed(sandbox, DAY).num_rows == 37


def test_a_dry_run_materializes_only_the_plan_and_submits_nothing(sandbox: ExportSandbox) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize([export_plan], instance)
        assert result.success
        plan = metadata(result, PLAN)
        assert plan["planned_jobs"] == 2
        assert plan["planned_rows"] == 2 * 10_000  # the configured default, nothing pushed
        assert "acoustic-pipelines-behavior-20261120-20261120-1" in plan["jobs"]
    assert sandbox.sandbox_jobs() == []
    assert sandbox.ledger.jobs() == []


def test_a_ten_day_backfill_is_one_run_and_one_job(sandbox: ExportSandbox) -> None:
    sandbox.only_behavior()
    last = DAY + timedelta(days=9)
    counts = {DAY + timedelta(days=i): (0 if i == 4 else i + 1) for i in range(10)}
    sandbox.store_signals(counts)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(ALL, instance, day=DAY, last=last)
        assert result.success
        [job] = sandbox.sandbox_jobs()
        assert (job["timestampStart"], job["timestampEnd"]) == (
            f"{DAY}T00:00:00.000Z",
            f"{last}T23:59:59.999Z",
        )
        for day, count in counts.items():
            table = landed(sandbox, day)
            assert table.num_rows == count, day  # day 5 is an empty dataset with the schema
            assert table.schema == export_schema(EXPORT_COLUMNS)
        partitions = {m.partition for m in result.asset_materializations_for_node(EXPORTED)}
        assert partitions == {d.isoformat() for d in counts}
        by_partition = {
            m.partition: {k: v.value for k, v in m.metadata.items()}
            for m in result.asset_materializations_for_node(EXPORTED)
        }
        assert {p: m["rows"] for p, m in by_partition.items()} == {
            d.isoformat(): n for d, n in counts.items()
        }  # each day its own rows, the run's total beside them
        assert {m["run_rows"] for m in by_partition.values()} == {sum(counts.values())}
        assert by_partition[DAY.isoformat()]["dagster/row_count"] == counts[DAY]
        for metadata in by_partition.values():  # the landed columns, also on an empty day
            columns = [c.name for c in metadata["dagster/column_schema"].columns]
            assert columns == ["definition", *EXPORT_COLUMNS]
        plan_days = {
            m.partition: m.metadata["day_rows_estimated"].value
            for m in result.asset_materializations_for_node(PLAN)
        }
        assert len(plan_days) == 10 and set(plan_days.values()) == {10_000}  # the default a day

        # one result per check and day, with that day's own figures
        evaluations = result.get_asset_check_evaluations()
        every_check = {*LIMIT_CHECKS.values(), QUOTA_WARNING_CHECK, *USAGE_CHECKS.values()}
        assert {(e.check_name, e.partition) for e in evaluations} == {
            (name, d.isoformat()) for name in every_check for d in counts
        }
        assert len(evaluations) == len(every_check) * len(counts)
        rows_by_day = {
            e.partition: e.metadata["day_rows"].value
            for e in evaluations
            if e.check_name == USAGE_CHECKS["rows"]
        }
        assert rows_by_day == {d.isoformat(): n for d, n in counts.items()}
        assert all(e.passed for e in evaluations)


def test_a_plan_past_a_limit_is_blocked_and_says_by_how_much(sandbox: ExportSandbox) -> None:
    sandbox.write_config(limits={"jobs": 1, "rows": 15_000})
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(ALL, instance)
        assert not result.success
        evaluations = checks(result)
        jobs_check = evaluations[LIMIT_CHECKS["jobs"]]
        assert not jobs_check.passed and jobs_check.severity == dg.AssetCheckSeverity.ERROR
        assert "0 used + 2 planned = 2, over the 1 available by 1" in jobs_check.description
        assert jobs_check.metadata["over_by"].value == 1
        rows_check = evaluations[LIMIT_CHECKS["rows"]]
        assert "over the 15,000 available by 5,000" in rows_check.description
        assert evaluations[LIMIT_CHECKS["bytes"]].passed
        assert not evaluations[QUOTA_WARNING_CHECK].passed  # over 80 % of a limit
        executed = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
        assert JOBS not in executed and EXPORTED not in executed
    assert sandbox.sandbox_jobs() == [] and sandbox.ledger.jobs() == []


def test_connects_daily_limit_error_defers_the_runs_unsent_jobs_without_retries(
    sandbox: ExportSandbox,
) -> None:
    """Usage spent elsewhere is invisible to the ledger: Connect refuses the second job; it is
    deferred to the next UTC day with the reason, not dropped and not half-exported silently."""
    requests.post(f"{sandbox.connect.endpoint}_sandbox/usage", json={"jobs": 19}, timeout=5)
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize(ALL, instance)
        assert not result.success
        [failure] = [e for e in result.get_step_failure_events() if e.step_key == JOBS]
        data = failure.step_failure_data.user_failure_data
        description = data.description
        tomorrow = datetime.now(UTC).date() + timedelta(days=1)
        assert "DAILY_LIMIT_EXCEEDED" in description
        assert f"Deferred until {tomorrow} 00:00 UTC" in description
        assert "acoustic-pipelines-marketing-20261120-20261120-1" in description
        assert data.metadata["jobs_deferred"].value == 1
        assert "acoustic-pipelines-marketing-20261120-20261120-1" in data.metadata["deferred"].value
        statuses = {j.definition: j.status for j in sandbox.ledger.jobs()}
        assert statuses == {"behavior": SUBMITTED, "marketing": DEFERRED}
        [deferred] = sandbox.ledger.jobs(statuses=[DEFERRED])
        assert deferred.deferred_until is not None and deferred.deferred_until.date() == tomorrow
        assert "DAILY_LIMIT_EXCEEDED" in (deferred.error or "")
        assert sandbox.connect.stats()["usage"]["refused_submissions"] == 1

        replan = materialize([export_plan], instance)
        assert not replan.success  # the blocking checks fail: today is exhausted
        jobs_check = checks(replan)[LIMIT_CHECKS["jobs"]]
        assert not jobs_check.passed and "today is exhausted" in jobs_check.description
        assert "marketing" in jobs_check.metadata["day_jobs"].value  # the deferred job waits
    assert sandbox.connect.stats()["usage"]["refused_submissions"] == 1
    assert len(sandbox.sandbox_jobs()) == 1
    assert API_KEY not in description


def test_a_run_killed_between_submission_and_collection_is_collected_once(
    tmp_path: Path,
) -> None:
    """The first run is SIGKILLed while it waits for the files; the re-run submits nothing."""
    with export_sandbox(tmp_path, export_delay=3600) as sandbox:
        env = {**os.environ, **sandbox.environment}
        script = textwrap.dedent(
            f"""
            import dagster as dg
            from acoustic_pipelines.definitions import defs
            job = defs.resolve_implicit_global_asset_job_def()
            keys = [dg.AssetKey(["connect", n]) for n in ("export_plan", "export_jobs", "exported_signals")]
            job.execute_in_process(partition_key="{DAY}", asset_selection=keys,
                                   instance=dg.DagsterInstance.ephemeral())
            """
        )
        sandbox.store_signals({DAY: 9})
        process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=tmp_path)
        deadline = time.monotonic() + 120
        while len(sandbox.ledger.jobs(statuses=[SUBMITTED])) < 2:
            assert process.poll() is None, "the first run ended before submitting"
            assert time.monotonic() < deadline, "the first run did not submit its jobs"
            time.sleep(0.2)
        time.sleep(1.0)  # now waiting on SFTP for files that will not come yet
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert {j.status for j in sandbox.ledger.jobs()} == {SUBMITTED}

        sandbox.connect.run_export_jobs()  # Acoustic finishes the jobs
        for name, value in sandbox.environment.items():
            os.environ[name] = value
        try:
            with dg.DagsterInstance.ephemeral() as instance:
                result = materialize(ALL, instance)
        finally:
            for name in sandbox.environment:
                os.environ.pop(name, None)
        assert result.success
        assert len(sandbox.sandbox_jobs()) == 2  # no new job
        assert metadata(result, JOBS)["jobs_already_submitted"] == 2
        assert landed(sandbox, DAY).num_rows == 9
        assert [j.rows for j in sandbox.ledger.jobs(statuses=[COLLECTED])] == [9, 0]


def test_a_day_no_plan_checked_is_refused_by_export_jobs(sandbox: ExportSandbox) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize([export_jobs], instance)
    assert not result.success
    [failure] = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert "2026-11-20: no connect/export_plan checked this day" in description
    assert "Materialize connect/export_plan for these days" in description
    assert sandbox.sandbox_jobs() == [] and sandbox.ledger.jobs() == []


def test_a_range_previewed_by_two_runs_is_submitted_as_one_job_per_definition(
    sandbox: ExportSandbox,
) -> None:
    """The daemon may plan each day of a range in its own run: export_jobs plans the range."""
    last = DAY + timedelta(days=1)
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize([export_plan], instance, day=DAY).success
        assert materialize([export_plan], instance, day=last).success
        result = materialize([export_jobs], instance, day=DAY, last=last)
        assert result.success, [
            e.step_failure_data.user_failure_data for e in result.get_step_failure_events()
        ]
    jobs = sandbox.sandbox_jobs()
    assert sorted(j["jobName"] for j in jobs) == [
        "acoustic-pipelines-behavior-20261120-20261121-1",
        "acoustic-pipelines-marketing-20261120-20261121-1",
    ]
    assert metadata(result, JOBS)["jobs_submitted"] == 2


def test_a_runs_jobs_are_reserved_all_or_nothing_naming_the_limit_and_overage(
    sandbox: ExportSandbox,
) -> None:
    """The preview passed; by submission another run took quota: nothing is submitted."""
    sandbox.write_config(limits={"jobs": 3})
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize([export_plan], instance).success  # 0 used + 2 planned ≤ 3
        for index in (1, 2):  # another run's jobs, reserved meanwhile
            reserve_job(
                sandbox.ledger,
                f"elsewhere-{index}",
                window=(DAY - timedelta(days=index), DAY - timedelta(days=index)),
                now=datetime.now(UTC),
            )
        before = sandbox.ledger.jobs()
        result = materialize([export_jobs], instance)
    assert not result.success
    [failure] = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert "none of the 2 export jobs" in description
    assert "daily export jobs: 2 used + 2 planned = 4, over the 3 available by 1" in description
    assert sandbox.sandbox_jobs() == []
    assert sandbox.ledger.jobs() == before


def test_a_failed_verdict_binds_a_later_export_jobs_only_run(sandbox: ExportSandbox) -> None:
    """A dry-run backfill fails its checks; a later export_jobs-only backfill of that range
    submits nothing and leaves the ledger unchanged, until a newer plan passes."""
    last = DAY + timedelta(days=1)
    sandbox.write_config(limits={"jobs": 1})
    with dg.DagsterInstance.ephemeral() as instance:
        dry_run = materialize([export_plan], instance, day=DAY, last=last)
        assert not dry_run.success  # 2 jobs for 1 available
        failed = [e for e in dry_run.get_asset_check_evaluations() if not e.passed]
        assert {
            (e.check_name, e.partition) for e in failed if e.check_name in LIMIT_CHECKS.values()
        } == {
            (LIMIT_CHECKS["jobs"], DAY.isoformat()),
            (LIMIT_CHECKS["jobs"], last.isoformat()),
        }

        later = materialize([export_jobs], instance, day=DAY, last=last)
        assert not later.success
        [failure] = later.get_step_failure_events()
        description = failure.step_failure_data.user_failure_data.description
        for day in (DAY, last):
            assert f"{day}: the latest plan" in description
        assert "export_jobs_within_daily_limit failed" in description
        assert "over the 1 available by 1" in description
        assert sandbox.sandbox_jobs() == [] and sandbox.ledger.jobs() == []

        sandbox.write_config(limits={"jobs": 2})
        assert materialize([export_plan], instance, day=DAY, last=last).success
        lifted = materialize([export_jobs], instance, day=DAY, last=last)
        assert lifted.success
    assert len(sandbox.sandbox_jobs()) == 2


def test_collection_waits_with_a_timeout_and_names_the_file(sandbox: ExportSandbox) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        submitted = materialize([export_plan, export_jobs], instance)
        assert submitted.success
        sandbox.connect.run_export_jobs()  # the files are written: take one away again
        behavior = next(j for j in sandbox.ledger.jobs() if j.definition == "behavior")
        (sandbox.connect.subscription_folder / behavior.remote_path).unlink()
        result = materialize(
            [exported_signals], instance, config={EXPORTED: {"config": {"timeout_seconds": 1.5}}}
        )
    assert not result.success
    [failure] = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert behavior.remote_path in description and "did not appear within 1.5 s" in description
    assert not (sandbox.lake / EXPORTED_SIGNALS / f"date={DAY}").exists()
    assert all(j.status == SUBMITTED for j in sandbox.ledger.jobs())


def test_a_truncated_export_file_is_retried_then_refused_and_never_landed(
    sandbox: ExportSandbox,
) -> None:
    sandbox.store_signals({DAY: 40})
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize([export_plan, export_jobs], instance).success
        sandbox.connect.run_export_jobs()
        behavior = next(j for j in sandbox.ledger.jobs() if j.definition == "behavior")
        remote = sandbox.connect.subscription_folder / behavior.remote_path
        remote.write_bytes(remote.read_bytes()[:-20])  # the gzip trailer is gone
        result = materialize([exported_signals], instance)
    assert not result.success
    [failure] = result.get_step_failure_events()
    description = failure.step_failure_data.user_failure_data.description
    assert "failed verification on all 3 attempts" in description and "truncated" in description
    assert not (sandbox.lake / EXPORTED_SIGNALS / f"date={DAY}").exists()
    assert all(j.status == SUBMITTED for j in sandbox.ledger.jobs())


def test_a_forced_day_inside_an_exported_range_is_landed_once_from_the_newer_job(
    sandbox: ExportSandbox,
) -> None:
    sandbox.only_behavior()
    last = DAY + timedelta(days=2)
    sandbox.store_signals({DAY: 4, DAY + timedelta(days=1): 5, last: 6})
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialize(ALL, instance, day=DAY, last=last).success
        forced = materialize(
            [export_plan, export_jobs], instance, config={PLAN: {"config": {"force": True}}}
        )
        assert forced.success
        assert metadata(forced, PLAN)["forced"] is True
        names = [j["jobName"] for j in sandbox.sandbox_jobs()]
        assert names == [
            "acoustic-pipelines-behavior-20261120-20261122-1",
            "acoustic-pipelines-behavior-20261120-20261120-1",
        ]
        again = materialize([exported_signals], instance, day=DAY, last=last)
        assert again.success
        assert [landed(sandbox, DAY + timedelta(days=i)).num_rows for i in range(3)] == [4, 5, 6]
        assert metadata(again, EXPORTED)["files"] == 2
