"""Segment Connections (reverse ETL): one asset per warehouse model of the config's `connections:`
section (`connections/<model>`), each synced on its own schedule.

A materialization is one sync: the model's rows diffed against the last snapshot, the changes
sent to Segment's Tracking API through the model's mappings, the outcomes recorded. Its metadata
is the sync history the UI plots: extracted/added/updated/deleted/unchanged/rejected rows and,
per mapping, sent/failed/rejected/given-up messages.
"""

import json
import logging
from typing import Any

import dagster as dg
from pydantic import Field

from acoustic_pipelines.config.connections import ConnectionModelConfig, ConnectionsConfig
from acoustic_pipelines.config.loading import ConfigError, load_config
from acoustic_pipelines.connections.sender import TrackingApiError
from acoustic_pipelines.connections.sync import SyncReport, sync_model
from acoustic_pipelines.connections.warehouse import WarehouseError, read_model
from assets.markdown import markdown_table
from assets.segment import OWNERS
from resources.connections import SegmentConnectionsResource
from resources.pipeline_config import PipelineConfigResource

log = logging.getLogger(__name__)

GROUP = "connections"
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


def build_model_asset(model_name: str) -> dg.AssetsDefinition:
    """The asset syncing one model (its config is read again in each run)."""

    @dg.asset(
        key=[GROUP, model_name],
        group_name=GROUP,
        kinds={"segment", "duckdb"},
        owners=OWNERS,
        pool=sync_pool(model_name),
        tags={"connections/model": model_name},
    )
    def model_sync(
        context: dg.AssetExecutionContext,
        config: ConnectionSyncConfig,
        pipeline_config: PipelineConfigResource,
        segment_connections: SegmentConnectionsResource,
    ) -> dg.MaterializeResult:
        """One Segment Connections sync of this warehouse model: its added, updated and deleted
        rows sent as Spec calls to Segment's Tracking API through the model's mappings."""
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
        sender = None if config.dry_run else segment_connections.sender(connections)
        try:
            report = sync_model(
                model,
                read_model(warehouse, model.sql),
                ledger=ledger,
                sender=sender,
                retry_days=connections.retry_days,
                reset=config.reset,
                dry_run=config.dry_run,
            )
        except (TrackingApiError, WarehouseError) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
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
        return dg.MaterializeResult(metadata=metadata)

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
            selection=[asset.key],
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
