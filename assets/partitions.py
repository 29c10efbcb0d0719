"""The one daily partitioning every asset shares: UTC days from the configured start date, and
per-day check results for steps that run one day or a whole range."""

from collections.abc import Iterator, Mapping, Sequence
from datetime import date

import dagster as dg

from acoustic_pipelines.settings import start_date

# Partition definitions are static, so the start date is read when the code location loads.
daily_partitions = dg.DailyPartitionsDefinition(start_date=start_date().isoformat(), timezone="UTC")


def day_check_events(
    context: dg.AssetExecutionContext,
    results_by_day: Mapping[date | str, Sequence[dg.AssetCheckResult]],
) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """Each day's check results as evaluations of that day's partition, also in range runs.

    Yield these after the asset's `MaterializeResult` (the asset becomes a generator). Dagster
    attaches an `AssetCheckResult` to a partition only when the step runs a single partition
    key; in a range run (`BackfillPolicy.single_run()`) it would record one result without a
    day. An `AssetCheckEvaluation` carries its own `partition`, so every day gets its own
    result with its own values. Yielded (not `context.log_event`-ed), a failed ERROR-severity
    evaluation of a blocking check still fails the step once it ends, so the blocking check
    stops downstream assets in the same run as an `AssetCheckResult` would. The check outputs
    downstream steps wait on are yielded first. Checks must be declared with
    `partitions_def=daily_partitions`; a result whose check is not selected in the run is
    left out, as Dagster leaves out unselected checks.
    """
    assets_def = context.assets_def
    selected = context.selected_asset_check_keys
    specs = {spec.key: spec for spec in assets_def.check_specs}
    for key in specs:
        if key in selected:
            yield dg.Output(None, output_name=assets_def.get_output_name_for_asset_check_key(key))
    for day, results in results_by_day.items():
        for result in results:
            key = dg.AssetCheckKey(result.asset_key or context.asset_key, result.check_name or "")
            if key not in specs:
                raise ValueError(
                    f"check result {result.check_name!r} of {key.asset_key.to_user_string()}: "
                    f"the asset declares no such check (declared: "
                    f"{', '.join(sorted(k.name for k in specs))})"
                )
            if key not in selected:
                continue
            yield dg.AssetCheckEvaluation(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=result.passed,
                metadata=result.metadata,
                severity=result.severity,
                description=result.description,
                blocking=specs[key].blocking,
                partition=str(day),
            )
