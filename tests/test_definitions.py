"""The code location loads, and its assets and checks are the ones listed here (renames are deliberate)."""

from __future__ import annotations

import dagster as dg

from acoustic_pipelines.definitions import defs

ASSETS = {
    "segment/raw_events",
    "acoustic/mapped_events",
    "acoustic/s3_csv_delivery",
    "connect/signal_pushes",
    "connect/export_plan",
    "connect/export_jobs",
    "connect/exported_signals",
}
CHECKS = {
    "segment/raw_events:reject_rate_below_threshold",
    "segment/raw_events:archive_files_readable",
    "segment/raw_events:raw_events_partition_consistent",
    "acoustic/mapped_events:delivery_overview_adds_up",
    "acoustic/mapped_events:no_matching_share_steady",
    "acoustic/mapped_events:reject_share_steady",
    "connect/signal_pushes:signal_outcomes_known",
    "connect/export_plan:export_jobs_within_daily_limit",
    "connect/export_plan:export_rows_within_daily_limit",
    "connect/export_plan:export_bytes_within_daily_limit",
    "connect/export_plan:export_quota_below_80_percent",
    "connect/exported_signals:exported_jobs_within_daily_limit",
    "connect/exported_signals:exported_rows_within_daily_limit",
    "connect/exported_signals:exported_bytes_within_daily_limit",
}


def test_code_location_loads() -> None:
    dg.Definitions.validate_loadable(defs)


def test_asset_and_check_keys() -> None:
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == ASSETS
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert checks == CHECKS


def test_every_asset_is_daily_partitioned_and_catalogued() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition), key
        assert node.partitions_def.timezone == "UTC"
        assert node.owners and node.description and node.group_name == key.path[0], key
