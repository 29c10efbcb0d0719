"""Segment side: `segment/raw_events`, one UTC received-day of the archive, validated and deduplicated."""

from typing import Literal

import dagster as dg
import pyarrow.compute as pc
from pydantic import Field

from acoustic_pipelines.lake import PartitionNotFound
from acoustic_pipelines.leases import LeaseHeld
from acoustic_pipelines.segment.archive import ArchiveReadError, UnreadableArchiveError
from acoustic_pipelines.segment.raw_events import (
    DEFAULT_DEDUPE_LOOKBACK_DAYS,
    RAW_EVENTS,
    UNREADABLE_FILES,
    AccountingError,
    IngestReport,
    ingest_day,
)
from acoustic_pipelines.segment.spec import DUPLICATE_MESSAGE_ID, EVENT_TYPES, REJECT_REASONS
from assets.markdown import markdown_table
from assets.partitions import daily_partitions
from resources.storage import LakeResource, SegmentArchiveResource

RAW_EVENTS_KEY = dg.AssetKey(RAW_EVENTS.split("/"))
REJECT_RATE_CHECK = "reject_rate_below_threshold"
READABLE_CHECK = "archive_files_readable"
OWNERS = ["team:data-engineering"]


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
    on_unreadable_file: Literal["fail", "quarantine"] = Field(
        default="fail",
        description="An archive file that cannot be read to its end (truncated, corrupt, not "
        "gzip): `fail` names every such file of the day and commits nothing; `quarantine` keeps "
        f"their readable lines, records each in {UNREADABLE_FILES} and warns.",
    )


@dg.asset(
    key=RAW_EVENTS_KEY,
    group_name="segment",
    partitions_def=daily_partitions,
    kinds={"parquet", "segment"},
    owners=OWNERS,
    check_specs=[
        dg.AssetCheckSpec(
            REJECT_RATE_CHECK,
            asset=RAW_EVENTS_KEY,
            description="Warns when the day's share of rejected lines passes `max_reject_rate` (default 1 %).",
        ),
        dg.AssetCheckSpec(
            READABLE_CHECK,
            asset=RAW_EVENTS_KEY,
            description=f"Warns when archive files could not be read to their end and were "
            f"quarantined (`on_unreadable_file: quarantine`): listed in {UNREADABLE_FILES}.",
        ),
    ],
)
def raw_events(
    context: dg.AssetExecutionContext,
    config: RawEventsConfig,
    segment_archive: SegmentArchiveResource,
    lake: LakeResource,
) -> dg.MaterializeResult:
    """Every event Segment received on the partition's UTC day, one row per unique `messageId`.

    Reads `segment-logs/<source>/<day-ms>/*.gz` from the archive, checks each line against the
    Segment Spec and keeps the first copy of each messageId (earliest `receivedAt`). Columns:
    message_id, type, event, user_id, anonymous_id, timestamp, received_at, source_id and
    `payload`, the original line untouched. Every rejected line (with its reason) and every
    duplicate is kept in `segment/rejected_events` for the same day.
    """
    day = context.partition_time_window.start.date()
    try:
        report = ingest_day(
            segment_archive.get_location(),
            lake.get_lake(),
            day,
            on_progress=context.log.info,
            dedupe_lookback_days=config.dedupe_lookback_days,
            on_unreadable_file=config.on_unreadable_file,
        )
    except (AccountingError, ArchiveReadError, UnreadableArchiveError) as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except LeaseHeld as exc:  # another run still writes the day: a later retry succeeds
        raise dg.Failure(description=str(exc), allow_retries=True) from exc
    return dg.MaterializeResult(
        metadata=raw_events_metadata(report),
        check_results=[
            reject_rate_result(report, config.max_reject_rate),
            readable_result(report),
        ],
    )


def readable_result(report: IngestReport) -> dg.AssetCheckResult:
    """WARN when archive files were quarantined: their unreadable rest is missing from the day."""
    files = report.unreadable_files
    return dg.AssetCheckResult(
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


def reject_rate_result(report: IngestReport, max_rate: float) -> dg.AssetCheckResult:
    """WARN when the share of rejected lines is above `max_rate`."""
    return dg.AssetCheckResult(
        check_name=REJECT_RATE_CHECK,
        passed=report.reject_rate <= max_rate,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "reject_rate": dg.MetadataValue.float(report.reject_rate),
            "threshold": dg.MetadataValue.float(max_rate),
            "rejected": dg.MetadataValue.int(report.rejected),
            "lines_read": dg.MetadataValue.int(report.lines_read),
        },
    )


def raw_events_metadata(report: IngestReport) -> dict[str, dg.MetadataValue]:
    """Materialization metadata; every key is present on every run so the UI can plot it."""
    metadata: dict[str, dg.MetadataValue] = {
        "dagster/partition_row_count": dg.MetadataValue.int(report.accepted),
        "lines_read": dg.MetadataValue.int(report.lines_read),
        "accepted": dg.MetadataValue.int(report.accepted),
        "rejected": dg.MetadataValue.int(report.rejected),
        "duplicates": dg.MetadataValue.int(report.duplicates),
        "duplicates_across_days": dg.MetadataValue.int(report.duplicates_across_days),
        "unreadable_files": dg.MetadataValue.int(len(report.unreadable_files)),
        "reject_rate": dg.MetadataValue.float(report.reject_rate),
        "files": dg.MetadataValue.int(report.files),
        "skipped_objects": dg.MetadataValue.int(len(report.skipped_objects)),
        "compressed_bytes": dg.MetadataValue.int(report.compressed_bytes),
        "uncompressed_bytes": dg.MetadataValue.int(report.uncompressed_bytes),
        "parquet_bytes": dg.MetadataValue.int(report.raw_events_bytes),
        "distinct_user_ids": dg.MetadataValue.int(report.distinct_user_ids),
        "distinct_anonymous_ids": dg.MetadataValue.int(report.distinct_anonymous_ids),
        "received_outside_day": dg.MetadataValue.int(report.received_outside_day),
        "seconds": dg.MetadataValue.float(round(report.seconds, 3)),
        "events_per_second": dg.MetadataValue.float(round(report.events_per_second, 1)),
        "raw_events_path": dg.MetadataValue.path(report.raw_events_uri),
        "rejected_events_path": dg.MetadataValue.path(report.rejected_events_uri),
        "rejected_by_reason": dg.MetadataValue.md(_reasons_table(report)),
        "preview": dg.MetadataValue.md(_preview_table(report)),
    }
    for reason in REJECT_REASONS:
        if reason != DUPLICATE_MESSAGE_ID:
            metadata[f"rejected/{reason}"] = dg.MetadataValue.int(
                report.rejected_by_reason.get(reason, 0)
            )
    for event_type in sorted(EVENT_TYPES):
        metadata[f"events/{event_type}"] = dg.MetadataValue.int(
            report.events_by_type.get(event_type, 0)
        )
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
) -> dg.AssetCheckResult:
    """Check the stored partition itself, independently of the run that wrote it."""
    day = daily_partitions.time_window_for_partition_key(context.partition_key).start.date()
    store = lake.get_lake()
    try:
        summary = store.summary(RAW_EVENTS, day)
        ids = (
            store.read_partition(RAW_EVENTS, day)
            .to_table(columns=["message_id"])
            .column("message_id")
        )
    except PartitionNotFound as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    distinct = pc.count_distinct(ids).as_py()
    return dg.AssetCheckResult(
        passed=distinct == len(ids) == summary["accepted"],
        metadata={
            "rows": dg.MetadataValue.int(len(ids)),
            "distinct_message_ids": dg.MetadataValue.int(distinct),
            "committed_rows": dg.MetadataValue.int(summary["accepted"]),
        },
    )
