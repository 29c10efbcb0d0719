"""Acoustic side: each day's events as Acoustic rows (`acoustic/mapped_events`) and their CSV
delivery to Acoustic's S3 access point (`acoustic/s3_csv_delivery`)."""

from datetime import date, timedelta

import dagster as dg
from pydantic import Field

from acoustic_pipelines.acoustic import rows as codes
from acoustic_pipelines.acoustic.csv_delivery import (
    DeliveryReport,
    DeliverySettingsError,
    UploadIntegrityError,
    check_delivery_settings,
    deliver_csv,
)
from acoustic_pipelines.acoustic.mapped_events import (
    MAPPED_EVENTS,
    MAPPING_FAILED,
    TRIGGER_FAILED,
    UNREADABLE_PAYLOAD,
    DestinationOverview,
    MappedDayReport,
    MappedEventsError,
    iter_mapped_batches,
    map_day,
    read_mapped_day_report,
)
from acoustic_pipelines.config.loading import DestinationConfig
from acoustic_pipelines.lake import Lake, PartitionNotFound
from assets.markdown import markdown_table
from assets.partitions import daily_partitions
from assets.segment import OWNERS, RAW_EVENTS_KEY
from resources.acoustic_s3 import AcousticS3Resource
from resources.pipeline_config import PipelineConfigResource
from resources.storage import LakeResource

MAPPED_EVENTS_KEY = dg.AssetKey(MAPPED_EVENTS.split("/"))
S3_CSV_DELIVERY_KEY = dg.AssetKey(["acoustic", "s3_csv_delivery"])
MIB = 1024 * 1024

OVERVIEW_CHECK = "delivery_overview_adds_up"
NO_MATCH_CHECK = "no_matching_share_steady"
REJECT_SHARE_CHECK = "reject_share_steady"
# Every reject code a row can get, so each gets a metadata key on every run (plots need them).
ROW_REJECT_CODES = (
    codes.INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
    codes.INVALID_NO_DATA_MAPPED,
    codes.NESTING_DEPTH_EXCEEDED,
    codes.EXCEEDS_MAX_PROPERTIES_MAX,
    codes.INVALID_TIMESTAMP,
    codes.INVALID_EVENT_TYPE,
    codes.UNEXPECTED_EVENT_PARSING_EXCEPTION,
    MAPPING_FAILED,
    TRIGGER_FAILED,
    UNREADABLE_PAYLOAD,
)


class MappedEventsConfig(dg.Config):
    """Run configuration of `acoustic/mapped_events`."""

    max_share_increase: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Warn when a destination's share of unmatched or rejected events rises by "
        "more than this (0.05 = 5 points) from the previous day.",
    )


@dg.asset(
    key=MAPPED_EVENTS_KEY,
    group_name="acoustic",
    partitions_def=daily_partitions,
    deps=[RAW_EVENTS_KEY],
    kinds={"parquet"},
    owners=OWNERS,
    check_specs=[
        dg.AssetCheckSpec(
            OVERVIEW_CHECK,
            asset=MAPPED_EVENTS_KEY,
            blocking=True,
            description="Every raw event is accounted for: rows, rejects and unmatched events "
            "add up per destination and mapping; the S3 delivery waits for it.",
        ),
        dg.AssetCheckSpec(
            NO_MATCH_CHECK,
            asset=MAPPED_EVENTS_KEY,
            description="Warns when a destination's share of events no mapping matched rises "
            "sharply from the previous day.",
        ),
        dg.AssetCheckSpec(
            REJECT_SHARE_CHECK,
            asset=MAPPED_EVENTS_KEY,
            description="Warns when a destination's share of rejected rows rises sharply from "
            "the previous day.",
        ),
    ],
)
def mapped_events(
    context: dg.AssetExecutionContext,
    config: MappedEventsConfig,
    pipeline_config: PipelineConfigResource,
    lake: LakeResource,
) -> dg.MaterializeResult:
    """The day's events as Acoustic rows, one table per destination.

    Runs each raw event through every destination's enabled mappings in config order (Segment's
    triggers and mapping directives); every matching mapping gives one flat row
    (`uniqueRecipient`, `eventSource`, `timestamp`, then the flattened keys) in
    `acoustic/mapped_events/date=…/destination=NAME/`. Rejected rows, with their Acoustic code,
    go to `acoustic/rejected_events`. The metadata is the delivery overview: received → rejected
    at ingest → duplicates → no matching mapping → rejected by destination → rows.
    """
    day = context.partition_time_window.start.date()
    destinations = pipeline_config.load().destinations
    store = lake.get_lake()
    try:
        report = map_day(store, day, destinations, on_progress=context.log.info)
    except PartitionNotFound as exc:
        raise dg.Failure(
            description=f"{exc}; materialize segment/raw_events for {day} first",
            allow_retries=False,
        ) from exc
    except MappedEventsError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    previous = _previous_report(store, day)
    return dg.MaterializeResult(
        metadata=overview_metadata(report),
        check_results=[
            overview_result(report),
            share_result(NO_MATCH_CHECK, report, previous, config.max_share_increase),
            share_result(REJECT_SHARE_CHECK, report, previous, config.max_share_increase),
        ],
    )


def _previous_report(store: Lake, day: date) -> MappedDayReport | None:
    try:
        return read_mapped_day_report(store, day - timedelta(days=1))
    except PartitionNotFound:
        return None


def overview_result(report: MappedDayReport) -> dg.AssetCheckResult:
    """ERROR (blocking) when the overview does not add up; the problems are named."""
    problems = report.accounting_problems()
    return dg.AssetCheckResult(
        check_name=OVERVIEW_CHECK,
        passed=not problems,
        description="; ".join(problems) or "every raw event is accounted for",
        metadata={
            "events_read": dg.MetadataValue.int(report.events_read),
            "problems": dg.MetadataValue.int(len(problems)),
        },
    )


def _share(check_name: str, overview: DestinationOverview) -> float:
    return overview.no_matching_share if check_name == NO_MATCH_CHECK else overview.reject_share


def share_result(
    check_name: str,
    report: MappedDayReport,
    previous: MappedDayReport | None,
    max_increase: float,
) -> dg.AssetCheckResult:
    """WARN when a destination's share rose by more than `max_increase` since the previous day."""
    before = {d.name: _share(check_name, d) for d in previous.destinations} if previous else {}
    metadata: dict[str, dg.MetadataValue] = {"max_increase": dg.MetadataValue.float(max_increase)}
    jumps = []
    for overview in report.destinations:
        share = _share(check_name, overview)
        metadata[f"{overview.name}/share"] = dg.MetadataValue.float(round(share, 6))
        if overview.name in before:
            metadata[f"{overview.name}/previous_share"] = dg.MetadataValue.float(
                round(before[overview.name], 6)
            )
            if share - before[overview.name] > max_increase:
                jumps.append(f"{overview.name}: {before[overview.name]:.1%} → {share:.1%}")
    description = (
        "; ".join(jumps)
        if jumps
        else ("no previous day to compare with" if previous is None else "steady")
    )
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not jumps,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def overview_metadata(report: MappedDayReport) -> dict[str, dg.MetadataValue]:
    """The delivery overview as numbers (plotted across partitions) plus markdown tables."""
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/partition_row_count": dg.MetadataValue.int(report.rows),
        "received": dg.MetadataValue.int(report.received),
        "rejected_at_ingest": dg.MetadataValue.int(report.rejected_at_ingest),
        "duplicates": dg.MetadataValue.int(report.duplicates),
        "events": dg.MetadataValue.int(report.events_read),
        "rows": dg.MetadataValue.int(report.rows),
        "rejected": dg.MetadataValue.int(report.rejected),
        "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
        "events_per_second": dg.MetadataValue.float(round(report.events_per_second, 1)),
        "mapped_events_path": dg.MetadataValue.path(report.mapped_events_uri),
        "rejected_events_path": dg.MetadataValue.path(report.rejected_events_uri),
        "overview": dg.MetadataValue.md(_overview_table(report)),
    }
    for overview in report.destinations:
        metadata.update(_destination_metadata(overview))
    return metadata


def _destination_metadata(overview: DestinationOverview) -> dict[str, dg.MetadataValue]:
    name = overview.name
    metadata: dict[str, dg.MetadataValue] = {
        f"{name}/no_matching_mapping": dg.MetadataValue.int(overview.no_matching_mapping),
        f"{name}/rejected": dg.MetadataValue.int(overview.rejected),
        f"{name}/rows": dg.MetadataValue.int(overview.rows),
        f"{name}/columns": dg.MetadataValue.int(len(overview.columns)),
        f"{name}/dropped_keys": dg.MetadataValue.int(sum(overview.dropped_keys.values())),
        f"{name}/key_collisions": dg.MetadataValue.int(overview.key_collisions),
        f"{name}/path": dg.MetadataValue.path(overview.uri),
        f"{name}/preview": dg.MetadataValue.md(markdown_table(overview.preview, empty="_no rows_")),
    }
    for code in ROW_REJECT_CODES:
        metadata[f"{name}/rejected/{code}"] = dg.MetadataValue.int(
            overview.rejected_by_code.get(code, 0)
        )
    for mapping in overview.mappings:
        metadata[f"{name}/{mapping.name}/matched"] = dg.MetadataValue.int(mapping.matched)
        metadata[f"{name}/{mapping.name}/rows"] = dg.MetadataValue.int(mapping.rows)
        metadata[f"{name}/{mapping.name}/rejected"] = dg.MetadataValue.int(mapping.rejected)
    if overview.dropped_keys:
        dropped = [{"key": k, "rows": f"{n:,}"} for k, n in sorted(overview.dropped_keys.items())]
        metadata[f"{name}/dropped_keys_by_key"] = dg.MetadataValue.md(markdown_table(dropped))
    return metadata


def _overview_table(report: MappedDayReport) -> str:
    """received → ingest → per destination and mapping, as one markdown table."""
    rows = [
        {"step": "received (lines read)", "count": f"{report.received:,}"},
        {"step": "rejected at ingest", "count": f"{report.rejected_at_ingest:,}"},
        {"step": "duplicates", "count": f"{report.duplicates:,}"},
        {"step": "events", "count": f"{report.events_read:,}"},
    ]
    for overview in report.destinations:
        rows.append(
            {
                "step": f"**{overview.name}**: no matching mapping",
                "count": f"{overview.no_matching_mapping:,}",
            }
        )
        for code, count in sorted(overview.rejected_by_code.items()):
            rows.append({"step": f"{overview.name}: rejected {code}", "count": f"{count:,}"})
        for mapping in overview.mappings:
            rows.append(
                {"step": f"{overview.name} / {mapping.name}: rows", "count": f"{mapping.rows:,}"}
            )
        rows.append({"step": f"**{overview.name}: rows delivered**", "count": f"{overview.rows:,}"})
    return markdown_table(rows)


class S3DeliveryConfig(dg.Config):
    """Run configuration of `acoustic/s3_csv_delivery`."""

    max_rows_per_file: int = Field(default=1_000_000, gt=0, description="Rows per CSV file.")
    max_megabytes_per_file: int = Field(
        default=100, gt=0, description="MiB per CSV file (a file over 8 MiB goes by multipart)."
    )


@dg.asset(
    key=S3_CSV_DELIVERY_KEY,
    group_name="acoustic",
    partitions_def=daily_partitions,
    deps=[MAPPED_EVENTS_KEY],
    kinds={"csv", "s3"},
    owners=OWNERS,
)
def s3_csv_delivery(
    context: dg.AssetExecutionContext,
    config: S3DeliveryConfig,
    pipeline_config: PipelineConfigResource,
    lake: LakeResource,
    acoustic_s3: AcousticS3Resource,
) -> dg.MaterializeResult:
    """The day's mapped rows of every destination, as CSV files in its Acoustic S3 access point.

    Files are `<customer_prefix><YYYY_MM_DD>_<NNNN>.csv` (RFC 4180, UTF-8, header row) plus
    `<customer_prefix><YYYY_MM_DD>_manifest.json` listing files, rows and checksums. Re-running a
    day replaces that day's files and removes its stale ones, so rows are never delivered twice.
    Every destination's settings are checked before anything is uploaded.
    """
    day = context.partition_time_window.start.date()
    destinations = pipeline_config.load().destinations
    _check_settings(destinations, acoustic_s3)
    store = lake.get_lake()
    reports = {}
    for destination in destinations:
        reports[destination.name] = _deliver(store, destination, acoustic_s3, config, day)
        report = reports[destination.name]
        context.log.info(
            f"{destination.name}: {report.total_rows:,} rows in {len(report.objects)} files "
            f"({report.total_bytes:,} bytes) to s3://{report.bucket}; "
            f"{len(report.stale_keys_removed)} stale files removed"
        )
    return dg.MaterializeResult(metadata=delivery_metadata(reports))


def _check_settings(destinations: list[DestinationConfig], s3: AcousticS3Resource) -> None:
    """Refuse the run, before any upload, when any destination's settings fail Segment's checks."""
    problems = []
    for destination in destinations:
        try:
            check_delivery_settings(
                access_key=s3.aws_access_key_id,
                secret=s3.aws_secret_access_key,
                region=destination.region,
                access_point_alias=destination.access_point_alias,
                customer_prefix=destination.customer_prefix,
            )
        except DeliverySettingsError as exc:
            problems.append((destination.name, exc))
    if problems:
        raise dg.Failure(
            description="; ".join(f"destination {name!r}: {exc}" for name, exc in problems),
            metadata={"codes": ", ".join(c for _, exc in problems for c in exc.codes)},
            allow_retries=False,
        )


def _deliver(
    store: Lake,
    destination: DestinationConfig,
    s3: AcousticS3Resource,
    config: S3DeliveryConfig,
    day: date,
) -> DeliveryReport:
    """Deliver one destination's mapped rows of `day`."""
    try:
        schema, batches = iter_mapped_batches(store, day, destination.name)
    except PartitionNotFound as exc:
        raise dg.Failure(
            description=f"{exc}; materialize {MAPPED_EVENTS} for {day} first", allow_retries=False
        ) from exc
    try:
        return deliver_csv(
            s3.get_client_for(destination.region),
            bucket=destination.access_point_alias,
            customer_prefix=destination.customer_prefix,
            day=day,
            schema=schema,
            batches=batches,
            max_rows=config.max_rows_per_file,
            max_bytes=config.max_megabytes_per_file * MIB,
        )
    except UploadIntegrityError as exc:
        raise dg.Failure(description=str(exc)) from exc


def delivery_metadata(reports: dict[str, DeliveryReport]) -> dict[str, dg.MetadataValue]:
    """Rows, bytes and files per destination and in total, and every object written."""
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(sum(r.total_rows for r in reports.values())),
        "bytes": dg.MetadataValue.int(sum(r.total_bytes for r in reports.values())),
        "files": dg.MetadataValue.int(sum(len(r.objects) for r in reports.values())),
    }
    objects = []
    for name, report in reports.items():
        metadata[f"{name}/rows"] = dg.MetadataValue.int(report.total_rows)
        metadata[f"{name}/bytes"] = dg.MetadataValue.int(report.total_bytes)
        metadata[f"{name}/files"] = dg.MetadataValue.int(len(report.objects))
        metadata[f"{name}/stale_files_removed"] = dg.MetadataValue.int(
            len(report.stale_keys_removed)
        )
        metadata[f"{name}/manifest"] = dg.MetadataValue.path(report.manifest_uri)
        objects += [
            {"destination": name, "object": o.uri, "rows": f"{o.rows:,}", "bytes": f"{o.bytes:,}"}
            for o in report.objects
        ]
    metadata["objects"] = dg.MetadataValue.md(markdown_table(objects, empty="_no files_"))
    return metadata
