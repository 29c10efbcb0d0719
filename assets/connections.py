"""Segment Connections (reverse ETL): per warehouse model of the config's `connections:` section,
one step with two assets — `connections/<model>` (the sync) and `connections/<model>_rejected_records`
(what it could not deliver) — and its own job and schedule. They are not daily-partitioned: a sync
diffs the model against its last snapshot, it has no day (the daily job leaves them out).

A materialization is one sync: the model's rows diffed against the last snapshot, the changes
sent to Segment's Tracking API through the model's mappings, the outcomes recorded. Its metadata
is the sync history the UI plots: extracted/added/updated/deleted/unchanged/rejected rows and,
per mapping, sent/failed/rejected/given-up messages. Syncs of one model never overlap: the step
holds the model's lease in the ledger database (whatever the instance's pools), and its pool
(`segment_connections_<model>`, limit 1 by default) keeps a second run queued instead of waiting.
"""

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from acoustic_pipelines.config.connections import ConnectionModelConfig, ConnectionsConfig
from acoustic_pipelines.config.loading import ConfigError, load_config
from acoustic_pipelines.connections.rejected import (
    REJECTED_RECORDS_COLUMNS,
    REJECTED_RECORDS_SCHEMA,
    RejectedRecordsWriter,
)
from acoustic_pipelines.connections.sender import TrackingApiError
from acoustic_pipelines.connections.sync import SyncReport, sync_model
from acoustic_pipelines.connections.sync_lease import hold_sync_lease
from acoustic_pipelines.connections.warehouse import WarehouseError, read_model
from acoustic_pipelines.leases import LeaseHeld, LeaseLost
from assets.catalog import column_schema
from assets.markdown import markdown_table
from assets.segment import OWNERS
from resources import LakeResource
from resources.connections import SegmentConnectionsResource
from resources.pipeline_config import PipelineConfigResource

log = logging.getLogger(__name__)

GROUP = "connections"
REJECTED_SUFFIX = "_rejected_records"
REJECTIONS_SHOWN = 20


class ConnectionSyncConfig(dg.Config):
    """Run configuration of a `connections/<model>` sync."""

    dry_run: bool = Field(
        default=False,
        description="Diff the model and build every message; send nothing, record nothing.",
    )
    reset: bool = Field(
        default=False,
        description="Send every record as added again (new message ids; no deletes are sent).",
    )


def sync_pool(model: str) -> str:
    """The pool of a model's syncs: one at a time per model (default pool limit 1)."""
    return f"segment_connections_{model}"


def _metadata(report: SyncReport, model: ConnectionModelConfig) -> dict[str, dg.MetadataValue]:
    """The sync's counts, per mapping, with the first rejections and samples."""
    metadata: dict[str, dg.MetadataValue] = {
        name: dg.MetadataValue.int(value) for name, value in vars(report.changes).items()
    }
    rows = []
    for name, counts in report.mappings.items():
        values = vars(counts)
        for key, value in values.items():
            metadata[f"{name}/{key}"] = dg.MetadataValue.int(value)
        rows.append({"mapping": name, **{k: str(v) for k, v in values.items()}})
    metadata["mappings"] = dg.MetadataValue.md(markdown_table(rows))
    metadata["requests"] = dg.MetadataValue.int(report.requests)
    metadata["generation"] = dg.MetadataValue.int(report.generation)
    metadata["dry_run"] = dg.MetadataValue.bool(report.dry_run)
    shown = [
        {"key": str(key), "reason": reason} for key, reason in report.rejections[:REJECTIONS_SHOWN]
    ]
    metadata["rejected_records"] = dg.MetadataValue.md(markdown_table(shown))
    if report.samples:
        metadata["sample_messages"] = dg.MetadataValue.json(report.samples)
    metadata["primary_key"] = dg.MetadataValue.text(model.primary_key)
    return metadata


def rejected_records_key(model_name: str) -> dg.AssetKey:
    """The asset key of a model's rejected and failed records."""
    return dg.AssetKey([GROUP, f"{model_name}{REJECTED_SUFFIX}"])


def _rejected_metadata(writer: RejectedRecordsWriter) -> dict[str, dg.MetadataValue]:
    """What the sync could not deliver: how many, by outcome and mapping, and where they are."""
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(writer.count),
        "rejected_records_path": dg.MetadataValue.path(writer.uri),
    }
    for outcome in ("rejected", "failed", "given_up"):
        metadata[outcome] = dg.MetadataValue.int(writer.by_outcome.get(outcome, 0))
    metadata["by_mapping"] = dg.MetadataValue.md(
        markdown_table(
            [{"mapping": name, "records": f"{n:,}"} for name, n in writer.by_mapping.most_common()]
        )
    )
    return metadata


def build_model_asset(model_name: str) -> dg.AssetsDefinition:
    """The step syncing one model: its sync asset and its rejected records (config read per run)."""
    sync_key = dg.AssetKey([GROUP, model_name])
    rejected_key = rejected_records_key(model_name)

    @dg.multi_asset(
        name=f"{GROUP}__{model_name}",
        specs=[
            dg.AssetSpec(
                sync_key,
                description=(
                    f"Segment Connections syncs of the warehouse model `{model_name}`: its added, "
                    "updated and deleted rows sent as Spec calls to Segment's Tracking API through "
                    "the model's mappings. Each materialization is one sync; its metadata (rows "
                    "extracted/added/updated/deleted/unchanged/rejected, per mapping "
                    "sent/failed/rejected) is the sync history."
                ),
                group_name=GROUP,
                kinds={"segment", "duckdb"},
                owners=OWNERS,
                tags={"connections/model": model_name},
            ),
            dg.AssetSpec(
                rejected_key,
                description=(
                    f"Records of `{model_name}` a sync did not deliver, with their reasons: rows "
                    "the diff refused (null or duplicate primary key, too many columns, too big), "
                    "messages Segment refused (its mapping validation, over 32 KB), and sends that "
                    "failed or were given up. One Parquet file per sync under "
                    "`date=<sync day>/` (written by the same step as the sync)."
                ),
                group_name=GROUP,
                kinds={"parquet", "segment"},
                owners=OWNERS,
                tags={"connections/model": model_name},
                skippable=True,  # a dry run writes nothing
                metadata={
                    "dagster/column_schema": column_schema(
                        REJECTED_RECORDS_SCHEMA, REJECTED_RECORDS_COLUMNS
                    )
                },
            ),
        ],
        pool=sync_pool(model_name),
        op_tags={"connections/model": model_name},
        can_subset=True,  # one sync writes both; the selected ones are recorded
    )
    def model_sync(
        context: dg.AssetExecutionContext,
        config: ConnectionSyncConfig,
        pipeline_config: PipelineConfigResource,
        segment_connections: SegmentConnectionsResource,
        lake: LakeResource,
    ) -> Iterator[dg.MaterializeResult]:
        """One Segment Connections sync of this model, and the records it could not deliver."""
        connections = pipeline_config.load().connections
        if connections is None:
            raise dg.Failure(
                description="the config has no `connections:` section", allow_retries=False
            )
        try:
            model = connections.model(model_name)
        except KeyError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        ledger = segment_connections.sync_ledger()
        warehouse = segment_connections.warehouse(connections)
        started = datetime.now(UTC)
        writer = RejectedRecordsWriter(
            lake.get_lake(), model=model.name, sync_id=context.run.run_id, synced_at=started
        )
        try:
            with hold_sync_lease(
                ledger,
                model.name,
                label=f"run {context.run.run_id}",
                wait_seconds=segment_connections.lease_wait_seconds,
            ) as lease:
                sender = (
                    None if config.dry_run else segment_connections.sender(connections, lease=lease)
                )
                with writer:
                    report = sync_model(
                        model,
                        read_model(warehouse, model.sql),
                        ledger=ledger,
                        sender=sender,
                        retry_days=connections.retry_days,
                        reset=config.reset,
                        dry_run=config.dry_run,
                        on_rejected=None if config.dry_run else writer,
                    )
        except (TrackingApiError, WarehouseError, LeaseLost) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        except LeaseHeld as exc:  # another sync of the model still runs: a later retry succeeds
            raise dg.Failure(description=str(exc), allow_retries=True) from exc
        context.log.info(
            "%s: %s",
            model_name,
            json.dumps({name: vars(c) for name, c in report.mappings.items()}),
        )
        metadata = _metadata(report, model)
        problems = ledger.sends(
            model.name, outcomes=("failed", "rejected", "given_up"), limit=REJECTIONS_SHOWN
        )
        metadata["failed_or_rejected_messages"] = dg.MetadataValue.md(
            markdown_table(
                [
                    {
                        "record": p.record_key,
                        "mapping": p.mapping,
                        "outcome": p.outcome,
                        "reason": p.reason or "",
                    }
                    for p in problems
                ]
            )
        )
        if sync_key in context.selected_asset_keys:
            yield dg.MaterializeResult(asset_key=sync_key, metadata=metadata)
        if rejected_key in context.selected_asset_keys and not config.dry_run:
            yield dg.MaterializeResult(asset_key=rejected_key, metadata=_rejected_metadata(writer))

    return model_sync


def build_connections(
    connections: ConnectionsConfig | None,
) -> tuple[list[dg.AssetsDefinition], list[Any], list[dg.ScheduleDefinition]]:
    """Per model: its asset, a job selecting it, and a schedule when the model has one."""
    assets: list[dg.AssetsDefinition] = []
    jobs: list[Any] = []  # unresolved asset jobs
    schedules: list[dg.ScheduleDefinition] = []
    for model in connections.models if connections is not None else []:
        asset = build_model_asset(model.name)
        job = dg.define_asset_job(
            f"connections_{model.name}_sync",
            selection=dg.AssetSelection.assets(*asset.keys),
            tags={"connections/model": model.name},
        )
        assets.append(asset)
        jobs.append(job)
        if model.schedule:
            schedules.append(
                dg.ScheduleDefinition(
                    name=f"connections_{model.name}_schedule",
                    job=job,
                    cron_schedule=model.schedule,
                    execution_timezone="UTC",
                    default_status=dg.DefaultScheduleStatus.STOPPED,
                )
            )
    return assets, jobs, schedules


def configured_connections() -> ConnectionsConfig | None:
    """The `connections:` section of the pipeline config, read when the code location loads.

    An invalid or missing file gives no connection assets here: every run of the daily assets
    reports its problems in full.
    """
    try:
        return load_config().connections
    except ConfigError as exc:
        log.warning("no Segment Connections assets: the pipeline config cannot be loaded: %s", exc)
        return None
