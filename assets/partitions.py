"""The one daily partitioning every asset shares (UTC days from the configured start date), the
backfill policy that goes with it, and how a run over several days reports each day on its own.

Every daily asset has `BACKFILL_POLICY` (one run for a whole range), so Dagster's asset backfill
runs a range of the graph in one run, children in the same run as their parents. A step then
holds a range of days: `run_days` lists them, `add_day_metadata` gives each day's
materialization its own metadata, and `day_check_events` turns each day's check results into
evaluations of that day's partition (Dagster itself attaches a check result to a partition only
when the step has exactly one partition key).
"""

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, timedelta

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,  # not exported; AssetCheckEvaluation takes it
)

from acoustic_pipelines.settings import start_date

# Chosen deliberately, so not warned about at every load: partitioned checks (preview; per-day
# results) and backfill policies (beta; one run per range).
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning
)
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

# Partition definitions are static, so the start date is read when the code location loads.
daily_partitions = dg.DailyPartitionsDefinition(start_date=start_date().isoformat(), timezone="UTC")

#: How late a daily asset may be: its newest materialization more than 30 hours old (a day's run
#: is late, with the 02:00 schedule or the archive sensor) shows WARN, more than 54 hours FAIL.
#: Dagster's daemon evaluates it (`freshness: enabled` defaults to true in the instance config).
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(
    warn_window=timedelta(hours=30), fail_window=timedelta(hours=54)
)

#: The one backfill policy of every daily asset: a range runs as one run (the same policy
#: everywhere lets children run with their parents and keeps the daily job to one policy).
BACKFILL_POLICY = dg.BackfillPolicy.single_run()


def run_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """The UTC days of the run: one partition, or every day of a backfilled range, in order."""
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()  # the window's end is exclusive
    return [first + timedelta(days=n) for n in range((end - first).days)]


def add_day_metadata(
    context: dg.AssetExecutionContext,
    day: date,
    metadata: Mapping[str, dg.MetadataValue],
    *,
    asset_key: dg.AssetKey | None = None,
) -> None:
    """Metadata of `day`'s materialization only (in a range run, each day gets its own values);
    nothing when the asset is not selected in this run (a subset of a multi-asset)."""
    if asset_key is not None and asset_key not in context.selected_asset_keys:
        return
    context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=day.isoformat())


def materialize_results(
    context: dg.AssetExecutionContext, keys: Sequence[dg.AssetKey]
) -> Iterator[dg.MaterializeResult]:
    """One (metadata-less: see `add_day_metadata`) result per asset of `keys` selected in the run.

    A step that writes a dataset and its rejects writes both whatever the selection (they are
    one computation); only the selected ones are recorded as materialized.
    """
    for key in keys:
        if key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=key)


def day_check_events(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    results_by_day: Mapping[date | str, Sequence[dg.AssetCheckResult]],
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """Each day's check results as evaluations of that day's partition, also in range runs.

    Yield these after the asset's `MaterializeResult` (the asset becomes a generator), so each
    evaluation targets the day's new materialization. Dagster attaches an `AssetCheckResult`
    to a partition only when the step runs a single partition key; in a range run
    (`BackfillPolicy.single_run()`) it would record one result without a day. An
    `AssetCheckEvaluation` carries its own `partition`, so every day gets its own result with
    its own values. Yielded (not `context.log_event`-ed), a failed ERROR-severity evaluation of
    a blocking check still fails the step once it ends, so the blocking check stops downstream
    assets in the same run as an `AssetCheckResult` would. The check outputs downstream steps
    wait on are yielded first. Checks must be declared with `partitions_def=daily_partitions`;
    a result whose check is not selected in the run is left out, as Dagster leaves out
    unselected checks. Works in an asset, a multi-asset and an `@asset_check` function alike.
    """
    assets_def = context.op_execution_context.assets_def
    selected = context.selected_asset_check_keys
    specs = {spec.key: spec for spec in assets_def.check_specs}
    for key in specs:
        if key in selected:
            yield dg.Output(None, output_name=assets_def.get_output_name_for_asset_check_key(key))
    for day, results in results_by_day.items():
        partition = str(day)
        keys = [_check_key(specs, result) for result in results]
        target = _latest_materialization(context, partition, {k.asset_key for k in keys})
        for key, result in zip(keys, results, strict=True):
            if key not in selected:
                continue
            yield dg.AssetCheckEvaluation(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=result.passed,
                metadata=result.metadata,
                target_materialization_data=target.get(key.asset_key),
                severity=result.severity,
                description=result.description,
                blocking=specs[key].blocking,
                partition=partition,
            )


def _check_key(
    specs: Mapping[dg.AssetCheckKey, dg.AssetCheckSpec], result: dg.AssetCheckResult
) -> dg.AssetCheckKey:
    """The check a result is for: its asset and name (the asset may be left out when only one
    of the step's checks has that name)."""
    matches = [
        key
        for key in specs
        if key.name == result.check_name
        and (result.asset_key is None or key.asset_key == result.asset_key)
    ]
    if len(matches) != 1:
        raise ValueError(
            f"check result {result.check_name!r} of asset {result.asset_key}: matches "
            f"{len(matches)} of the checks the step declares "
            f"({', '.join(sorted(k.to_user_string() for k in specs))})"
        )
    return matches[0]


def _latest_materialization(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    partition: str,
    keys: Iterable[dg.AssetKey],
) -> dict[dg.AssetKey, AssetCheckEvaluationTargetMaterializationData]:
    """The newest materialization of the day per asset, as the target of its evaluations."""
    targets: dict[dg.AssetKey, AssetCheckEvaluationTargetMaterializationData] = {}
    for key in keys:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        if records:
            targets[key] = AssetCheckEvaluationTargetMaterializationData(
                run_id=records[0].event_log_entry.run_id,
                storage_id=records[0].storage_id,
                timestamp=records[0].timestamp,
            )
    return targets
