"""The code location loads, and its assets and checks are the ones listed here (renames are deliberate).

Every asset is daily-partitioned except the Segment Connections ones (`connections/…`, one sync
asset and its rejected records per model of the default config): a sync diffs a warehouse model
against its last snapshot and has no day, so it runs from its own job and schedule, never from
the daily job or a daily backfill."""

from __future__ import annotations

import dagster as dg

from acoustic_pipelines.definitions import defs

ASSETS = {
    "segment/archive",
    "segment/raw_events",
    "segment/rejected_events",
    "acoustic/mapped_events",
    "acoustic/rejected_events",
    "acoustic/s3_csv_delivery",
    "connect/signal_pushes",
    "connect/rejected_signals",
    "connect/export_plan",
    "connect/export_jobs",
    "connect/exported_signals",
    "connections/customers",
    "connections/customers_rejected_records",
    "connections/orders",
    "connections/orders_rejected_records",
}
#: Not daily: Segment Connections syncs (see the module docstring).
UNPARTITIONED = {key for key in ASSETS if key.startswith("connections/")}
CHECKS = {
    "segment/raw_events:reject_rate_below_threshold",
    "segment/raw_events:archive_files_readable",
    "segment/raw_events:raw_events_partition_consistent",
    "segment/raw_events:archive_day_has_files",
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


def test_every_asset_but_the_syncs_is_daily_partitioned_and_every_one_catalogued() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if key.to_user_string() in UNPARTITIONED:
            assert node.partitions_def is None, key
        else:
            assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition), key
            assert node.partitions_def.timezone == "UTC"
        assert node.owners and node.description and node.group_name == key.path[0], key


def test_the_syncs_have_their_own_jobs_and_schedules_and_stay_out_of_the_daily_job() -> None:
    daily = defs.resolve_job_def("daily_pipeline")
    selected = {k.to_user_string() for k in daily.asset_layer.executable_asset_keys}
    assert not selected & UNPARTITIONED and "segment/raw_events" in selected
    graph = defs.resolve_asset_graph()
    for model, cron in (("customers", "0 * * * *"), ("orders", "*/15 * * * *")):
        job = defs.resolve_job_def(f"connections_{model}_sync")
        assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
            f"connections/{model}",
            f"connections/{model}_rejected_records",
        }
        schedule = defs.resolve_schedule_def(f"connections_{model}_schedule")
        assert (schedule.job_name, schedule.cron_schedule) == (job.name, cron)
        node = graph.get(dg.AssetKey(["connections", model]))
        assert node.pools == {f"segment_connections_{model}"}


def test_every_asset_has_code_references_and_every_executable_one_a_code_version() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        references = node.metadata["dagster/code_references"].code_references
        assert references and all(r.file_path.endswith(".py") for r in references), key
        if node.is_executable:
            assert node.code_version, key


def test_parquet_assets_have_a_column_schema() -> None:
    graph = defs.resolve_asset_graph()
    parquet = [k for k in graph.get_all_asset_keys() if "parquet" in graph.get(k).kinds]
    mine = {
        "segment/raw_events",
        "segment/rejected_events",
        "acoustic/mapped_events",
        "acoustic/rejected_events",
        "connect/signal_pushes",
        "connect/rejected_signals",
        "connections/customers_rejected_records",
        "connections/orders_rejected_records",
    }
    assert mine <= {k.to_user_string() for k in parquet}
    for key in parquet:
        if key.to_user_string() in mine:
            schema = graph.get(key).metadata["dagster/column_schema"]
            assert schema.columns, key


def test_the_archive_is_an_external_asset_upstream_of_raw_events() -> None:
    graph = defs.resolve_asset_graph()
    archive = graph.get(dg.AssetKey(["segment", "archive"]))
    assert not archive.is_materializable and "s3" in archive.kinds
    assert dg.AssetKey(["segment", "raw_events"]) in archive.child_keys


def test_the_daily_job_has_one_backfill_policy() -> None:
    job = defs.resolve_job_def("daily_pipeline")
    assert job.backfill_policy == dg.BackfillPolicy.single_run()
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        if key.to_user_string() not in UNPARTITIONED:  # a sync is never backfilled
            assert graph.get(key).backfill_policy == dg.BackfillPolicy.single_run(), key


def test_steps_that_call_s3_or_connect_retry_transient_errors_with_backoff_and_jitter() -> None:
    graph = defs.resolve_asset_graph()
    for name in (
        "segment/raw_events",
        "acoustic/mapped_events",
        "acoustic/s3_csv_delivery",
        "connect/signal_pushes",
        "connect/export_plan",
        "connect/export_jobs",
        "connect/exported_signals",
    ):
        policy = graph.get(dg.AssetKey.from_user_string(name)).assets_def.op.retry_policy
        assert policy is not None, name
        assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS


def test_the_archive_sensors_are_defined() -> None:
    names = {s.name for s in defs.sensors}
    assert {"segment_archive_observations", "segment_archive_complete_days"} <= names
    complete = defs.get_sensor_def("segment_archive_complete_days")
    assert complete.job_name == "daily_pipeline"
