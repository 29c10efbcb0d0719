"""Acoustic side: each day's events as Acoustic rows (`acoustic/mapped_events`) and their CSV
delivery to Acoustic's S3 access point (`acoustic/s3_csv_delivery`)."""

from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
import pyarrow as pa
from pydantic import Field

from acoustic_pipelines.acoustic import rows as codes
from acoustic_pipelines.acoustic.csv_delivery import (
    DeliveryReport,
    DeliverySettingsError,
    UploadIntegrityError,
    check_delivery_settings,
    deliver_csv,
)
from acoustic_pipelines.acoustic.lineage import column_sources
from acoustic_pipelines.acoustic.mapped_events import (
    FIXED_COLUMNS,
    MAPPED_EVENTS,
    MAPPING_FAILED,
    REJECTED_EVENTS,
    REJECTED_EVENTS_SCHEMA,
    TRIGGER_FAILED,
    UNREADABLE_PAYLOAD,
    DestinationOverview,
    MappedDayReport,
    MappedEventsError,
    iter_mapped_batches,
    map_day,
    read_mapped_day_report,
    read_mapped_destination,
)
from acoustic_pipelines.config.loading import DestinationConfig
from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.segment.raw_events import RAW_EVENTS
from assets.catalog import column_schema, megabytes, percent
from assets.markdown import markdown_table
from assets.partitions import (
    BACKFILL_POLICY,
    DAILY_FRESHNESS,
    add_day_metadata,
    daily_partitions,
    day_check_events,
    materialize_results,
    run_days,
)
from assets.retries import TRANSIENT_RETRY
from assets.segment import OWNERS, RAW_EVENTS_KEY
from resources.acoustic_s3 import AcousticS3Resource
from resources.pipeline_config import PipelineConfigResource
from resources.storage import LakeResource

MAPPED_EVENTS_KEY = dg.AssetKey(MAPPED_EVENTS.split("/"))
REJECTED_EVENTS_KEY = dg.AssetKey(REJECTED_EVENTS.split("/"))
CODE_VERSION = "1"  # bump when a change alters what a partition holds
FIXED_COLUMN_NOTES = {
    "message_id": "the Segment messageId the row came from",
    "mapping": "the mapping that made the row",
    "uniqueRecipient": "Acoustic's recipient id (the mapping's uniqueRecipientId)",
    "eventSource": '"<type> Event"',
    "timestamp": "the mapping's timestamp, as given",
}
FIXED_SCHEMA = pa.schema([(name, pa.string()) for name in FIXED_COLUMN_NOTES])
# Segment fields that are columns of segment/raw_events of their own.
RAW_FIELD_COLUMNS = {
    "messageId": "message_id",
    "type": "type",
    "event": "event",
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "timestamp": "timestamp",
    "receivedAt": "received_at",
}
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
    workers: int | None = Field(
        default=None,
        ge=1,
        description="Worker processes that share a day's mapping (parts of the day's raw row "
        "groups). Unset: $ACOUSTIC_PIPELINES_WORKERS, else one per core. The tables written "
        "are the same whatever the number.",
    )


@dg.multi_asset(
    name="acoustic__mapped_events",
    specs=[
        dg.AssetSpec(
            MAPPED_EVENTS_KEY,
            description="The day's events as Acoustic rows, one table per destination "
            "(`destination=NAME/`): the five fixed columns, then the keys the mappings flatten.",
            deps=[RAW_EVENTS_KEY],
            group_name="acoustic",
            kinds={"parquet"},
            owners=OWNERS,
            code_version=CODE_VERSION,
            freshness_policy=DAILY_FRESHNESS,
            metadata={"dagster/column_schema": column_schema(FIXED_SCHEMA, FIXED_COLUMN_NOTES)},
        ),
        dg.AssetSpec(
            REJECTED_EVENTS_KEY,
            description="The day's events a destination's mapping matched but Acoustic would "
            "refuse, one row per event and mapping with the Acoustic error code (written by the "
            "same step as `acoustic/mapped_events`).",
            deps=[RAW_EVENTS_KEY],
            group_name="acoustic",
            kinds={"parquet"},
            owners=OWNERS,
            code_version=CODE_VERSION,
            metadata={"dagster/column_schema": column_schema(REJECTED_EVENTS_SCHEMA)},
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=BACKFILL_POLICY,
    can_subset=True,  # both datasets are always written; the selected ones are recorded
    retry_policy=TRANSIENT_RETRY,  # the lake may be on S3
    check_specs=[
        dg.AssetCheckSpec(
            OVERVIEW_CHECK,
            asset=MAPPED_EVENTS_KEY,
            partitions_def=daily_partitions,
            blocking=True,
            description="Every raw event is accounted for: rows, rejects and unmatched events "
            "add up per destination and mapping; the S3 delivery waits for it.",
        ),
        dg.AssetCheckSpec(
            NO_MATCH_CHECK,
            asset=MAPPED_EVENTS_KEY,
            partitions_def=daily_partitions,
            description="Warns when a destination's share of events no mapping matched rises "
            "sharply from the previous day.",
        ),
        dg.AssetCheckSpec(
            REJECT_SHARE_CHECK,
            asset=MAPPED_EVENTS_KEY,
            partitions_def=daily_partitions,
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
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    """The day's events as Acoustic rows, one table per destination.

    Runs each raw event through every destination's enabled mappings in config order (Segment's
    triggers and mapping directives); every matching mapping gives one flat row
    (`uniqueRecipient`, `eventSource`, `timestamp`, then the flattened keys) in
    `acoustic/mapped_events/date=…/destination=NAME/`. Rejected rows, with their Acoustic code,
    go to `acoustic/rejected_events`. The metadata is the delivery overview: received → rejected
    at ingest → duplicates → no matching mapping → rejected by destination → rows.
    """
    days = run_days(context)
    destinations = pipeline_config.load().destinations
    store = lake.get_lake()
    context.log.info(
        f"reading {store.partition_uri(RAW_EVENTS, days[0])}, writing "
        f"{store.partition_uri(MAPPED_EVENTS, days[0])}"
        + (f" .. {days[-1]}" if len(days) > 1 else "")
    )
    checks: dict[date, list[dg.AssetCheckResult]] = {}
    for number, day in enumerate(days, 1):
        context.log.info(f"day {number} of {len(days)}: {day}")
        try:
            report = map_day(
                store, day, destinations, on_progress=context.log.info, workers=config.workers
            )
        except PartitionNotFound as exc:
            raise dg.Failure(
                description=f"{exc}; materialize segment/raw_events for {day} first",
                allow_retries=False,
            ) from exc
        except MappedEventsError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        previous = _previous_report(store, day)
        add_day_metadata(
            context,
            day,
            {**overview_metadata(report), **column_metadata(store, report, destinations)},
            asset_key=MAPPED_EVENTS_KEY,
        )
        add_day_metadata(context, day, rejected_metadata(report), asset_key=REJECTED_EVENTS_KEY)
        checks[day] = [
            overview_result(report),
            share_result(NO_MATCH_CHECK, report, previous, config.max_share_increase),
            share_result(REJECT_SHARE_CHECK, report, previous, config.max_share_increase),
        ]
    yield from materialize_results(context, [MAPPED_EVENTS_KEY, REJECTED_EVENTS_KEY])
    yield from day_check_events(context, checks)


def column_metadata(
    store: Lake, report: MappedDayReport, destinations: list[DestinationConfig]
) -> dict[str, dg.MetadataValue]:
    """The day's columns (fixed ones first, then each destination's discovered keys, typed as
    written) and each column's Segment fields, from the destinations' mappings."""
    types: dict[str, str] = {}
    used_by: dict[str, list[str]] = {}
    for overview in report.destinations:
        try:
            schema = read_mapped_destination(store, report.day, overview.name).schema
        except PartitionNotFound:
            continue
        for field in schema:
            types.setdefault(field.name, str(field.type))
            used_by.setdefault(field.name, []).append(overview.name)
    names = [*FIXED_COLUMNS, *(c for c in types if c not in FIXED_COLUMNS)]
    columns = [
        dg.TableColumn(
            name=name,
            type=types.get(name, "string"),
            description=FIXED_COLUMN_NOTES.get(name)
            or f"destinations: {', '.join(used_by.get(name, []))}",
        )
        for name in names
    ]
    mappings = [m.mapping.raw for d in destinations for m in d.mappings if m.enabled]
    lineage = {
        column: [
            dg.TableColumnDep(asset_key=RAW_EVENTS_KEY, column_name=_raw_column(f)) for f in fields
        ]
        for column, fields in column_sources(mappings, names).items()
    }
    lineage["message_id"] = [dg.TableColumnDep(asset_key=RAW_EVENTS_KEY, column_name="message_id")]
    return {
        "dagster/column_schema": dg.MetadataValue.table_schema(dg.TableSchema(columns=columns)),
        "dagster/column_lineage": dg.MetadataValue.column_lineage(
            dg.TableColumnLineage(deps_by_column=lineage)
        ),
    }


def _raw_column(field: str) -> str:
    """A Segment field as named in `segment/raw_events`: its own column, else inside `payload`."""
    return RAW_FIELD_COLUMNS.get(field, f"payload.{field}")


def rejected_metadata(report: MappedDayReport) -> dict[str, dg.MetadataValue]:
    """The day's rejected rows: how many, per destination and code, and where they are."""
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(report.rejected),
        "dagster/partition_row_count": dg.MetadataValue.int(report.rejected),
        "rejected_events_path": dg.MetadataValue.path(report.rejected_events_uri),
    }
    rows = []
    for overview in report.destinations:
        metadata[f"{overview.name}/rejected"] = dg.MetadataValue.int(overview.rejected)
        for code, count in sorted(overview.rejected_by_code.items()):
            if count:
                metadata[f"{overview.name}/{code}"] = dg.MetadataValue.int(count)
                rows.append({"destination": overview.name, "code": code, "rows": f"{count:,}"})
    metadata["by_code"] = dg.MetadataValue.md(markdown_table(rows, empty="_no rejects_"))
    return metadata


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
    metadata: dict[str, dg.MetadataValue] = {"max_increase_points": percent(max_increase)}
    jumps = []
    for overview in report.destinations:
        share = _share(check_name, overview)
        metadata[f"{overview.name}/percent"] = percent(share)
        if overview.name in before:
            metadata[f"{overview.name}/previous_percent"] = percent(before[overview.name])
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
    """The delivery overview in funnel order (received → ingest → per destination: no matching
    mapping, rejected, rows), shares in percent, then timings, paths and tables."""
    metadata: dict[str, dg.MetadataValue] = {
        "received": dg.MetadataValue.int(report.received),
        "rejected_at_ingest": dg.MetadataValue.int(report.rejected_at_ingest),
        "duplicates": dg.MetadataValue.int(report.duplicates),
        "events": dg.MetadataValue.int(report.events_read),
    }
    for overview in report.destinations:
        metadata.update(_destination_metadata(overview))
    metadata.update(
        {
            "rejected": dg.MetadataValue.int(report.rejected),
            "rows": dg.MetadataValue.int(report.rows),
            "dagster/row_count": dg.MetadataValue.int(report.rows),
            "dagster/partition_row_count": dg.MetadataValue.int(report.rows),
            "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
            "events_per_second": dg.MetadataValue.float(round(report.events_per_second, 1)),
            "mapped_events_path": dg.MetadataValue.path(report.mapped_events_uri),
            "overview": dg.MetadataValue.md(_overview_table(report)),
        }
    )
    return metadata


def _destination_metadata(overview: DestinationOverview) -> dict[str, dg.MetadataValue]:
    name = overview.name
    metadata: dict[str, dg.MetadataValue] = {
        f"{name}/no_matching_mapping": dg.MetadataValue.int(overview.no_matching_mapping),
        f"{name}/no_matching_percent": percent(overview.no_matching_share),
    }
    for mapping in overview.mappings:
        metadata[f"{name}/{mapping.name}/matched"] = dg.MetadataValue.int(mapping.matched)
    metadata[f"{name}/rejected"] = dg.MetadataValue.int(overview.rejected)
    metadata[f"{name}/reject_percent"] = percent(overview.reject_share)
    # Codes only when they occur: a series that is always zero says nothing.
    for code in ROW_REJECT_CODES:
        if overview.rejected_by_code.get(code):
            metadata[f"{name}/rejected/{code}"] = dg.MetadataValue.int(
                overview.rejected_by_code[code]
            )
    for mapping in overview.mappings:
        metadata[f"{name}/{mapping.name}/rejected"] = dg.MetadataValue.int(mapping.rejected)
        metadata[f"{name}/{mapping.name}/rows"] = dg.MetadataValue.int(mapping.rows)
    metadata[f"{name}/rows"] = dg.MetadataValue.int(overview.rows)
    metadata[f"{name}/columns"] = dg.MetadataValue.int(len(overview.columns))
    if overview.dropped_keys:
        metadata[f"{name}/dropped_keys"] = dg.MetadataValue.int(sum(overview.dropped_keys.values()))
        dropped = [{"key": k, "rows": f"{n:,}"} for k, n in sorted(overview.dropped_keys.items())]
        metadata[f"{name}/dropped_keys_by_key"] = dg.MetadataValue.md(markdown_table(dropped))
    if overview.key_collisions:
        metadata[f"{name}/key_collisions"] = dg.MetadataValue.int(overview.key_collisions)
    metadata[f"{name}/path"] = dg.MetadataValue.path(overview.uri)
    metadata[f"{name}/preview"] = dg.MetadataValue.md(
        markdown_table(overview.preview, empty="_no rows_")
    )
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
    backfill_policy=BACKFILL_POLICY,
    deps=[MAPPED_EVENTS_KEY],
    kinds={"csv", "s3"},
    owners=OWNERS,
    code_version=CODE_VERSION,
    retry_policy=TRANSIENT_RETRY,
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
    days = run_days(context)
    destinations = pipeline_config.load().destinations
    _check_settings(destinations, acoustic_s3)
    store = lake.get_lake()
    for number, day in enumerate(days, 1):
        context.log.info(
            f"day {number} of {len(days)}: {day}, reading {store.partition_uri(MAPPED_EVENTS, day)}"
        )
        reports = {}
        for destination in destinations:
            reports[destination.name] = _deliver(store, destination, acoustic_s3, config, day)
            report = reports[destination.name]
            context.log.info(
                f"{day} {destination.name}: {report.total_rows:,} rows in {len(report.objects)} "
                f"files ({report.total_bytes:,} bytes) to s3://{report.bucket}; "
                f"{len(report.stale_keys_removed)} stale files removed"
            )
        add_day_metadata(context, day, delivery_metadata(reports))
    return dg.MaterializeResult()


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
    """Rows, MB and files per destination and in total, and every object written."""
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(sum(r.total_rows for r in reports.values())),
        "mb": megabytes(sum(r.total_bytes for r in reports.values())),
        "files": dg.MetadataValue.int(sum(len(r.objects) for r in reports.values())),
    }
    objects = []
    for name, report in reports.items():
        metadata[f"{name}/rows"] = dg.MetadataValue.int(report.total_rows)
        metadata[f"{name}/mb"] = megabytes(report.total_bytes)
        metadata[f"{name}/files"] = dg.MetadataValue.int(len(report.objects))
        if report.stale_keys_removed:
            metadata[f"{name}/stale_files_removed"] = dg.MetadataValue.int(
                len(report.stale_keys_removed)
            )
        metadata[f"{name}/manifest"] = dg.MetadataValue.path(report.manifest_uri)
        objects += [
            {
                "destination": name,
                "object": o.uri,
                "rows": f"{o.rows:,}",
                "MB": f"{o.bytes / 1_000_000:,.2f}",
            }
            for o in report.objects
        ]
    metadata["objects"] = dg.MetadataValue.md(markdown_table(objects, empty="_no files_"))
    return metadata
