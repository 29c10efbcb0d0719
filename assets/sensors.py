"""Automation that follows the Segment archive: each day's files observed as `segment/archive`
(so a late file shows as new upstream data of its day), and a day of the daily pipeline run as
soon as its archive is complete, beside the fixed 02:00 schedule."""

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from acoustic_pipelines.segment.archive import (
    ArchiveDayObservation,
    ArchiveNotFoundError,
    archive_day_completeness,
    observe_archive_day,
    require_archive,
)
from acoustic_pipelines.settings import start_date
from acoustic_pipelines.storage import StorageError
from assets.automation import daily_pipeline_job
from assets.catalog import megabytes
from assets.segment import ARCHIVE_KEY, RAW_EVENTS_KEY
from resources.storage import SegmentArchiveResource

#: Days looked at on every tick: today and the days before it.
LOOKBACK_DAYS = 3
#: The tag Dagster reads an observation's data version from.
DATA_VERSION_TAG = "dagster/data_version"
COMPLETE_REASON_TAG = "acoustic_pipelines/archive_complete"


def _recent_days(now: datetime) -> list[date]:
    """Today and the `LOOKBACK_DAYS - 1` days before it, oldest first, none before the start date."""
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=n) for n in reversed(range(LOOKBACK_DAYS))]
    return [d for d in days if d >= start_date()]


def archive_observation(observation: ArchiveDayObservation) -> dg.AssetObservation:
    """One day of the archive as an observation of `segment/archive`, with its data version."""
    metadata: dict[str, dg.MetadataValue] = {
        "files": dg.MetadataValue.int(observation.files),
        "mb": megabytes(observation.bytes),
        "newest_file": dg.MetadataValue.text(observation.newest_file or "-"),
    }
    if observation.newest_modified:
        metadata["newest_modified"] = dg.MetadataValue.timestamp(observation.newest_modified)
        metadata["dagster/last_updated_timestamp"] = dg.MetadataValue.timestamp(
            observation.newest_modified
        )
    return dg.AssetObservation(
        asset_key=ARCHIVE_KEY,
        partition=observation.day.isoformat(),
        metadata=metadata,
        tags={DATA_VERSION_TAG: observation.data_version},
    )


@dg.sensor(
    name="segment_archive_observations",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Observes the last days of the Segment archive (files, MB, newest file) as "
    "segment/archive; a day whose files changed gets a new data version.",
)
def segment_archive_observations(
    context: dg.SensorEvaluationContext, segment_archive: SegmentArchiveResource
) -> dg.SensorResult | dg.SkipReason:
    """Record an observation for each recent day whose files changed since the last tick."""
    location = segment_archive.get_location()
    try:
        require_archive(location)
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        observations = []
        days = _recent_days(datetime.now(UTC))
        for day in days:
            observation = observe_archive_day(location, day)
            key = day.isoformat()
            if seen.get(key, "0-0--") != observation.data_version:
                observations.append(archive_observation(observation))
                seen[key] = observation.data_version
    except (ArchiveNotFoundError, StorageError) as exc:
        return dg.SkipReason(str(exc))
    cursor = {k: v for k, v in seen.items() if k >= days[0].isoformat()} if days else {}
    if not observations:
        return dg.SensorResult(
            skip_reason=f"no change in {location.uri}", cursor=json.dumps(cursor)
        )
    return dg.SensorResult(asset_events=observations, cursor=json.dumps(cursor, sort_keys=True))


@dg.sensor(
    name="segment_archive_complete_days",
    job=daily_pipeline_job,
    minimum_interval_seconds=300,
    description="Runs the daily pipeline for a day as soon as its Segment archive is complete "
    "(a file of the next day exists, or the cut-off hour of the next day has passed: "
    "segment_archive resource settings), once per day; a day already materialized (e.g. by "
    "the 02:00 schedule) is left alone. Use it instead of, or beside, the schedule.",
)
def segment_archive_complete_days(
    context: dg.SensorEvaluationContext, segment_archive: SegmentArchiveResource
) -> dg.SensorResult | dg.SkipReason:
    """Request one run per complete, not yet materialized day of the last days."""
    location = segment_archive.get_location()
    now = datetime.now(UTC)
    done = context.instance.get_materialized_partitions(RAW_EVENTS_KEY)
    requests = []
    waiting = []
    try:
        require_archive(location)
        for day in _recent_days(now):
            if day.isoformat() in done:
                continue
            completeness = archive_day_completeness(
                location,
                day,
                now=now,
                next_day_file=segment_archive.complete_after_next_day_file,
                cutoff_hour=segment_archive.cutoff_hour_utc,
            )
            if not completeness.complete:
                waiting.append(f"{day}: {completeness.reason}")
                continue
            requests.append(
                dg.RunRequest(
                    run_key=f"archive-complete-{day.isoformat()}",
                    partition_key=day.isoformat(),
                    tags={COMPLETE_REASON_TAG: completeness.reason},
                )
            )
    except (ArchiveNotFoundError, StorageError) as exc:
        return dg.SkipReason(str(exc))
    if not requests:
        return dg.SkipReason("; ".join(waiting) or "every recent day is materialized")
    context.log.info(
        "; ".join(f"{r.partition_key}: {r.tags[COMPLETE_REASON_TAG]}" for r in requests)
    )
    return dg.SensorResult(run_requests=requests)
