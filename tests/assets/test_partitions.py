"""Per-day check results (`day_check_events`): a range run records one result per day and check,
with that day's values, and a failed blocking check on any day still stops downstream assets in
the same run."""

from datetime import date, timedelta

import dagster as dg

from assets.partitions import daily_partitions, day_check_events

FIRST = date(2026, 11, 2)
KEY = dg.AssetKey(["test", "counted"])
BAD_DAY = FIRST + timedelta(days=2)


@dg.asset(
    key=KEY,
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[
        dg.AssetCheckSpec("under_limit", asset=KEY, blocking=True, partitions_def=daily_partitions),
        dg.AssetCheckSpec("has_rows", asset=KEY, partitions_def=daily_partitions),
    ],
)
def counted(context: dg.AssetExecutionContext):
    """Rows per day: the day of the month; the limit check fails on BAD_DAY."""
    days = [date.fromisoformat(k) for k in context.partition_keys]
    yield dg.MaterializeResult(metadata={"days": len(days)})
    yield from day_check_events(
        context,
        {
            day: [
                dg.AssetCheckResult(
                    check_name="under_limit",
                    passed=day != BAD_DAY,
                    metadata={"rows": day.day},
                ),
                dg.AssetCheckResult(
                    check_name="has_rows",
                    passed=True,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"rows": day.day},
                ),
            ]
            for day in days
        },
    )


@dg.asset(
    partitions_def=daily_partitions, deps=[KEY], backfill_policy=dg.BackfillPolicy.single_run()
)
def downstream(context: dg.AssetExecutionContext) -> None:
    """Runs only when every blocking check of the range passed."""
    context.log.info("downstream ran")


def _run(last: date, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    tags = {
        "dagster/asset_partition_range_start": FIRST.isoformat(),
        "dagster/asset_partition_range_end": last.isoformat(),
    }
    return dg.materialize(
        [counted, downstream],
        tags=tags,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _started(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}


def test_a_range_run_records_each_days_result_with_its_own_values() -> None:
    last = FIRST + timedelta(days=1)
    instance = dg.DagsterInstance.ephemeral()
    result = _run(last, instance)
    assert result.success
    for name in ("under_limit", "has_rows"):  # what the UI lists: one result a day, none skipped
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(KEY, name), limit=10
        )
        assert sorted((r.partition, r.status.value) for r in history) == [
            (FIRST.isoformat(), "SUCCEEDED"),
            (last.isoformat(), "SUCCEEDED"),
        ]
    evaluations = result.get_asset_check_evaluations()
    by_check_and_day = {(e.check_name, e.partition): e for e in evaluations}
    assert set(by_check_and_day) == {
        (name, d.isoformat()) for name in ("under_limit", "has_rows") for d in (FIRST, last)
    }
    for (_, day), evaluation in by_check_and_day.items():
        assert evaluation.metadata["rows"].value == date.fromisoformat(day).day
    assert "downstream" in _started(result)


def test_a_failed_blocking_check_on_one_day_stops_downstream_in_the_same_run() -> None:
    result = _run(BAD_DAY + timedelta(days=1))
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.check_name, e.partition) for e in failed] == [("under_limit", BAD_DAY.isoformat())]
    assert {m.partition for m in result.asset_materializations_for_node("test__counted")} == {
        (FIRST + timedelta(days=i)).isoformat() for i in range(4)
    }
    assert "downstream" not in _started(result)


def test_a_one_day_run_records_that_days_result() -> None:
    result = dg.materialize(
        [counted],
        partition_key=FIRST.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert {(e.check_name, e.partition) for e in result.get_asset_check_evaluations()} == {
        ("under_limit", FIRST.isoformat()),
        ("has_rows", FIRST.isoformat()),
    }
