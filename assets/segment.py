"""Segment side: the Segment archive (`segment/archive`, external, observed per day) and
`segment/raw_events` with its rejects (`segment/rejected_events`), one UTC received-day each."""

from collections.abc import Iterator
from datetime import date
from typing import Literal

import dagster as dg
import pyarrow.compute as pc
from pydantic import Field

from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.leases import LeaseHeld
from acoustic_pipelines.segment.archive import (
    ArchiveNotFoundError,
    ArchiveReadError,
    UnreadableArchiveError,
    require_archive,
)
from acoustic_pipelines.segment.raw_events import (
    DEFAULT_DEDUPE_LOOKBACK_DAYS,
    RAW_EVENTS,
    RAW_EVENTS_SCHEMA,
    REJECTED_EVENTS,
    REJECTED_EVENTS_SCHEMA,
    UNREADABLE_FILES,
    AccountingError,
    IngestReport,
    ingest_day,
)
from acoustic_pipelines.segment.spec import DUPLICATE_MESSAGE_ID, EVENT_TYPES, REJECT_REASONS
from acoustic_pipelines.settings import WORKERS_ENV
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
from resources.storage import LakeResource, SegmentArchiveResource

ARCHIVE_KEY = dg.AssetKey(["segment", "archive"])
RAW_EVENTS_KEY = dg.AssetKey(RAW_EVENTS.split("/"))
REJECTED_EVENTS_KEY = dg.AssetKey(REJECTED_EVENTS.split("/"))
REJECT_RATE_CHECK = "reject_rate_below_threshold"
READABLE_CHECK = "archive_files_readable"
ARCHIVE_FILES_CHECK = "archive_day_has_files"
PARTITION_CHECK = "raw_events_partition_consistent"
OWNERS = ["team:data-engineering"]
CODE_VERSION = "1"  # bump when a change alters what a partition holds

RAW_EVENTS_COLUMNS = {
    "message_id": "Segment messageId (unique per day: the first copy by receivedAt is kept)",
    "type": "Spec call type: track, identify, page, screen, group, alias",
    "event": "track event name (null for other types)",
    "user_id": "userId",
    "anonymous_id": "anonymousId",
    "timestamp": "when the event happened (the call's timestamp, UTC)",
    "received_at": "when Segment received it (UTC); decides the day",
    "source_id": "Segment source id (the archive folder)",
    "payload": "the original JSON line, untouched",
}
REJECTED_EVENTS_COLUMNS = {
    "file": "archive file key",
    "line_number": "1-based line in the decompressed file",
    "reason": "why the line was rejected (Spec reason or duplicate_message_id)",
    "detail": "what exactly was wrong",
    "raw": "the line as read",
}


def _line_of(text: str) -> int:
    """The line of this module that starts with `text` (for a code reference)."""
    with open(__file__, encoding="utf-8") as source:
        return next(n for n, line in enumerate(source, 1) if line.startswith(text))


archive = dg.AssetSpec(
    ARCHIVE_KEY,
    description="Segment's S3 archive: gzip NDJSON files Segment writes to "
    "`segment-logs/<source>/<received-day-ms>/`. External (Segment writes it); the "
    "`segment_archive_observations` sensor observes each day's files, bytes and newest file, so a "
    "late file shows as new upstream data of that day.",
    group_name="segment",
    kinds={"s3", "segment"},
    owners=OWNERS,
    partitions_def=daily_partitions,
    metadata={
        # An external asset has no function to point at: the reference is its definition here.
        "dagster/code_references": dg.CodeReferencesMetadataValue(
            code_references=[
                dg.LocalFileCodeReference(file_path=__file__, line_number=_line_of("archive = "))
            ]
        ),
    },
)


class RawEventsConfig(dg.Config):
    """Run configuration of `segment/raw_events`."""

    max_reject_rate: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="Warn when more than this share of lines is rejected.",
    )
    dedupe_lookback_days: int = Field(
        default=DEFAULT_DEDUPE_LOOKBACK_DAYS,
        ge=0,
        le=31,
        description="A messageId already accepted on one of this many previous days is a "
        "duplicate (Segment's own dedupe looks back at least 24 h); 0: within the day only.",
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        description="Worker processes that share the day's archive files (the output is the "
        f"same for any number); unset: ${WORKERS_ENV}, else one per core of the machine.",
    )
    on_unreadable_file: Literal["fail", "quarantine"] = Field(
        default="fail",
        description="An archive file that cannot be read to its end (truncated, corrupt, not "
        "gzip): `fail` names every such file of the day and commits nothing; `quarantine` keeps "
        f"their readable lines, records each in {UNREADABLE_FILES} and warns.",
    )


@dg.multi_asset(
    name="segment__raw_events",
    specs=[
        dg.AssetSpec(
            RAW_EVENTS_KEY,
            description=(
                "Every event Segment received on the partition's UTC day, one row per unique "
                "`messageId`, read from the Segment archive and checked against the Segment Spec."
            ),
            deps=[ARCHIVE_KEY],
            group_name="segment",
            kinds={"parquet", "segment"},
            owners=OWNERS,
            code_version=CODE_VERSION,
            freshness_policy=DAILY_FRESHNESS,
            metadata={
                "dagster/column_schema": column_schema(RAW_EVENTS_SCHEMA, RAW_EVENTS_COLUMNS)
            },
        ),
        dg.AssetSpec(
            REJECTED_EVENTS_KEY,
            description=(
                "The day's archive lines that are not accepted events: invalid lines with their "
                "Spec reason and duplicate messageIds, one row per line (written by the same "
                "step as `segment/raw_events`)."
            ),
            deps=[ARCHIVE_KEY],
            group_name="segment",
            kinds={"parquet", "segment"},
            owners=OWNERS,
            code_version=CODE_VERSION,
            metadata={
                "dagster/column_schema": column_schema(
                    REJECTED_EVENTS_SCHEMA, REJECTED_EVENTS_COLUMNS
                )
            },
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=BACKFILL_POLICY,
    can_subset=True,  # both datasets are always written; the selected ones are recorded
    retry_policy=TRANSIENT_RETRY,  # the archive may be on S3
    check_specs=[
        dg.AssetCheckSpec(
            REJECT_RATE_CHECK,
            asset=RAW_EVENTS_KEY,
            partitions_def=daily_partitions,
            description="Warns when the day's share of rejected lines passes `max_reject_rate` (default 1 %).",
        ),
        dg.AssetCheckSpec(
            READABLE_CHECK,
            asset=RAW_EVENTS_KEY,
            partitions_def=daily_partitions,
            description=f"Warns when archive files could not be read to their end and were "
            f"quarantined (`on_unreadable_file: quarantine`): listed in {UNREADABLE_FILES}.",
        ),
        dg.AssetCheckSpec(
            ARCHIVE_FILES_CHECK,
            asset=RAW_EVENTS_KEY,
            partitions_def=daily_partitions,
            description="Warns when the archive held no file for the day: an empty day is "
            "reported, never a silent success.",
        ),
    ],
)
def raw_events(
    context: dg.AssetExecutionContext,
    config: RawEventsConfig,
    segment_archive: SegmentArchiveResource,
    lake: LakeResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    """Every event Segment received on the partition's UTC day, one row per unique `messageId`.

    Reads `segment-logs/<source>/<day-ms>/*.gz` from the archive, checks each line against the
    Segment Spec and keeps the first copy of each messageId (earliest `receivedAt`). Columns:
    message_id, type, event, user_id, anonymous_id, timestamp, received_at, source_id and
    `payload`, the original line untouched. Every rejected line (with its reason) and every
    duplicate is kept in `segment/rejected_events` for the same day. A range runs day by day.
    """
    days = run_days(context)
    location = segment_archive.get_location()
    store = lake.get_lake()
    context.log.info(
        f"reading the Segment archive {location.uri}; writing {store.partition_uri(RAW_EVENTS, days[0])} "
        f"and {store.partition_uri(REJECTED_EVENTS, days[0])}"
        + (f" .. {days[-1]}" if len(days) > 1 else "")
    )
    try:
        require_archive(location)
    except ArchiveNotFoundError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    reports: dict[date, IngestReport] = {}
    for number, day in enumerate(days, 1):
        context.log.info(f"day {number} of {len(days)}: {day}")
        try:
            reports[day] = ingest_day(
                location,
                store,
                day,
                on_progress=context.log.info,
                workers=config.workers,
                dedupe_lookback_days=config.dedupe_lookback_days,
                on_unreadable_file=config.on_unreadable_file,
            )
        except (AccountingError, ArchiveReadError, UnreadableArchiveError) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        except LeaseHeld as exc:  # another run still writes the day: a later retry succeeds
            raise dg.Failure(description=str(exc), allow_retries=True) from exc
        if not reports[day].files:
            context.log.warning(f"{day}: the archive {location.uri} holds no file for this day")
    for day, report in reports.items():
        add_day_metadata(context, day, raw_events_metadata(report), asset_key=RAW_EVENTS_KEY)
        add_day_metadata(
            context, day, rejected_events_metadata(report), asset_key=REJECTED_EVENTS_KEY
        )
    yield from materialize_results(context, [RAW_EVENTS_KEY, REJECTED_EVENTS_KEY])
    yield from day_check_events(
        context,
        {
            day: [
                reject_rate_result(report, config.max_reject_rate),
                readable_result(report),
                archive_files_result(report, location.uri),
            ]
            for day, report in reports.items()
        },
    )


def reject_rate_result(report: IngestReport, max_rate: float) -> dg.AssetCheckResult:
    """WARN when the share of rejected lines is above `max_rate`."""
    return dg.AssetCheckResult(
        asset_key=RAW_EVENTS_KEY,
        check_name=REJECT_RATE_CHECK,
        passed=report.reject_rate <= max_rate,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "reject_rate_percent": percent(report.reject_rate),
            "threshold_percent": percent(max_rate),
            "rejected": dg.MetadataValue.int(report.rejected),
            "lines_read": dg.MetadataValue.int(report.lines_read),
        },
    )


def readable_result(report: IngestReport) -> dg.AssetCheckResult:
    """WARN when archive files were quarantined: their unreadable rest is missing from the day."""
    files = report.unreadable_files
    return dg.AssetCheckResult(
        asset_key=RAW_EVENTS_KEY,
        check_name=READABLE_CHECK,
        passed=not files,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(str(e) for e in files) or "every archive file was read to its end",
        metadata={
            "unreadable_files": dg.MetadataValue.int(len(files)),
            "bytes_unread": dg.MetadataValue.int(sum(e.bytes_unread for e in files)),
            "lines_kept": dg.MetadataValue.int(sum(e.lines_read for e in files)),
        },
    )


def archive_files_result(report: IngestReport, archive_uri: str) -> dg.AssetCheckResult:
    """WARN when the archive held no file for the day."""
    return dg.AssetCheckResult(
        asset_key=RAW_EVENTS_KEY,
        check_name=ARCHIVE_FILES_CHECK,
        passed=report.files > 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{report.files} archive file(s) for {report.day}"
            if report.files
            else f"the archive {archive_uri} holds no file for {report.day}: is the day late, or "
            "the archive location wrong?"
        ),
        metadata={
            "files": dg.MetadataValue.int(report.files),
            "archive": dg.MetadataValue.path(archive_uri),
        },
    )


def raw_events_metadata(report: IngestReport) -> dict[str, dg.MetadataValue]:
    """The day's materialization metadata (numbers keep their key on every day, so they plot)."""
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(report.accepted),
        "dagster/partition_row_count": dg.MetadataValue.int(report.accepted),
        "lines_read": dg.MetadataValue.int(report.lines_read),
        "accepted": dg.MetadataValue.int(report.accepted),
        "rejected": dg.MetadataValue.int(report.rejected),
        "duplicates": dg.MetadataValue.int(report.duplicates),
        "duplicates_across_days": dg.MetadataValue.int(report.duplicates_across_days),
        "reject_rate_percent": percent(report.reject_rate),
        "files": dg.MetadataValue.int(report.files),
        "compressed_mb": megabytes(report.compressed_bytes),
        "uncompressed_mb": megabytes(report.uncompressed_bytes),
        "parquet_mb": megabytes(report.raw_events_bytes),
        "distinct_user_ids": dg.MetadataValue.int(report.distinct_user_ids),
        "distinct_anonymous_ids": dg.MetadataValue.int(report.distinct_anonymous_ids),
        "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
        "events_per_second": dg.MetadataValue.float(round(report.events_per_second, 1)),
        "workers": dg.MetadataValue.int(report.workers),
        "raw_events_path": dg.MetadataValue.path(report.raw_events_uri),
        "rejected_by_reason": dg.MetadataValue.md(_reasons_table(report)),
        "preview": dg.MetadataValue.md(_preview_table(report)),
    }
    # Rare counts only when they happen: a series that is always zero says nothing.
    if report.unreadable_files:
        metadata["unreadable_files"] = dg.MetadataValue.int(len(report.unreadable_files))
    if report.skipped_objects:
        metadata["skipped_objects"] = dg.MetadataValue.int(len(report.skipped_objects))
    if report.received_outside_day:
        metadata["received_outside_day"] = dg.MetadataValue.int(report.received_outside_day)
    for event_type in sorted(EVENT_TYPES):
        if report.events_by_type.get(event_type):
            metadata[f"events/{event_type}"] = dg.MetadataValue.int(
                report.events_by_type[event_type]
            )
    return metadata


def rejected_events_metadata(report: IngestReport) -> dict[str, dg.MetadataValue]:
    """The day's rejected lines: how many, why, and where they are."""
    rows = report.rejected + report.duplicates
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/row_count": dg.MetadataValue.int(rows),
        "dagster/partition_row_count": dg.MetadataValue.int(rows),
        "rejected": dg.MetadataValue.int(report.rejected),
        "duplicates": dg.MetadataValue.int(report.duplicates),
        "rejected_events_path": dg.MetadataValue.path(report.rejected_events_uri),
        "by_reason": dg.MetadataValue.md(_reasons_table(report)),
    }
    for reason in REJECT_REASONS:
        if reason != DUPLICATE_MESSAGE_ID and report.rejected_by_reason.get(reason):
            metadata[f"rejected/{reason}"] = dg.MetadataValue.int(report.rejected_by_reason[reason])
    return metadata


def _reasons_table(report: IngestReport) -> str:
    rows = [f"| {reason} | {count:,} |" for reason, count in report.rejected_by_reason.items()]
    rows.append(f"| {DUPLICATE_MESSAGE_ID} | {report.duplicates:,} |")
    return "\n".join(["| reason | lines |", "|---|---:|", *rows])


def _preview_table(report: IngestReport) -> str:
    return markdown_table(report.preview, empty="_no accepted events_")


@dg.asset_check(
    asset=RAW_EVENTS_KEY,
    partitions_def=daily_partitions,
    description="Re-reads the committed partition: messageIds are unique and the row count is the one committed.",
)
def raw_events_partition_consistent(
    context: dg.AssetCheckExecutionContext, lake: LakeResource
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """Check the stored partition itself, independently of the run that wrote it (each day of a range)."""
    store = lake.get_lake()
    yield from day_check_events(
        context, {day: [_partition_consistent(store, day)] for day in run_days(context)}
    )


def _partition_consistent(store: Lake, day: date) -> dg.AssetCheckResult:
    try:
        summary = store.summary(RAW_EVENTS, day)
        ids = (
            store.read_partition(RAW_EVENTS, day)
            .to_table(columns=["message_id"])
            .column("message_id")
        )
    except PartitionNotFound as exc:
        return dg.AssetCheckResult(
            asset_key=RAW_EVENTS_KEY, check_name=PARTITION_CHECK, passed=False, description=str(exc)
        )
    distinct = pc.count_distinct(ids).as_py()
    return dg.AssetCheckResult(
        asset_key=RAW_EVENTS_KEY,
        check_name=PARTITION_CHECK,
        passed=distinct == len(ids) == summary["accepted"],
        metadata={
            "rows": dg.MetadataValue.int(len(ids)),
            "distinct_message_ids": dg.MetadataValue.int(distinct),
            "committed_rows": dg.MetadataValue.int(summary["accepted"]),
        },
    )
