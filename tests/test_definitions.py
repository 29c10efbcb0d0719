"""The code location loads, and its assets and checks are the ones listed here (renames are deliberate)."""

from __future__ import annotations

import dagster as dg

from acoustic_pipelines.definitions import defs

ASSETS = {
    "segment/raw_events",
    "acoustic/mapped_events",
    "acoustic/s3_csv_delivery",
    "connect/signal_pushes",
}
CHECKS = {
    "segment/raw_events:reject_rate_below_threshold",
    "segment/raw_events:raw_events_partition_consistent",
    "acoustic/mapped_events:delivery_overview_adds_up",
    "acoustic/mapped_events:no_matching_share_steady",
    "acoustic/mapped_events:reject_share_steady",
    "connect/signal_pushes:signal_outcomes_known",
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
