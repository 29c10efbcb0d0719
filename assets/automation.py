"""Schedules and sensors: the daily run, and collecting export files once Acoustic wrote them."""

from collections.abc import Iterator

import dagster as dg

from acoustic_pipelines.connect.exports.ledger import RESERVED, SUBMITTED, UNKNOWN, LedgerJob
from acoustic_pipelines.connect.sftp import RemoteFileMissingError, SftpError, SftpSession
from assets.exports import EXPORTED_SIGNALS_KEY
from resources.exports import AcousticSftpResource, ExportLedgerResource

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

#: Every asset but the collection, which the sensor starts when the files are there.
daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(EXPORTED_SIGNALS_KEY),
    description="One UTC day: raw events, mapped tables, S3 delivery, signal pushes, export jobs.",
)
daily_pipeline_schedule = dg.build_schedule_from_partitioned_job(
    daily_pipeline_job, hour_of_day=2, description="Runs yesterday's partition at 02:00 UTC."
)
collect_exports_job = dg.define_asset_job(
    "collect_exported_signals",
    selection=dg.AssetSelection.assets(EXPORTED_SIGNALS_KEY),
    description="Collects submitted export jobs' files over SFTP (started by the sensor).",
)


def _ready(session: SftpSession, job: LedgerJob) -> bool:
    """Whether the job's file is on the SFTP server."""
    try:
        session.stat(job.remote_path)
    except RemoteFileMissingError:
        return False
    return True


def ready_windows(pending: list[LedgerJob], ready: set[str]) -> Iterator[list[LedgerJob]]:
    """Groups of pending jobs whose windows overlap, each group only once all its files are there.

    exported_signals lands a day from every definition's job at once, so a day is requested only
    when all of its jobs are ready; overlapping windows are merged into one run.
    """
    groups: list[list[LedgerJob]] = []
    for job in sorted(pending, key=lambda j: (j.window_start, j.window_end)):
        if groups and job.window_start <= max(j.window_end for j in groups[-1]):
            groups[-1].append(job)
        else:
            groups.append([job])
    for group in groups:
        if all(j.job_name in ready for j in group):
            yield group


@dg.sensor(
    job=collect_exports_job,
    minimum_interval_seconds=120,
    description="Requests connect/exported_signals for the days of submitted export jobs as "
    "soon as their files are on Acoustic's SFTP server (one run per window, once).",
)
def exported_files_sensor(
    context: dg.SensorEvaluationContext,
    export_ledger: ExportLedgerResource,
    acoustic_sftp: AcousticSftpResource,
) -> dg.SensorResult | dg.SkipReason:
    """Look for the files of submitted, not yet collected jobs; request a run per ready window."""
    # `reserved` too: a run that died right after sending leaves its job reserved.
    pending = export_ledger.get_ledger().jobs(statuses=[RESERVED, SUBMITTED, UNKNOWN])
    if not pending:
        return dg.SkipReason("no submitted export job waits for collection")
    try:
        with acoustic_sftp.open_session() as session:
            ready = {j.job_name for j in pending if _ready(session, j)}
    except SftpError as exc:
        return dg.SkipReason(f"SFTP not reachable: {exc}")
    requests = [
        dg.RunRequest(
            run_key="+".join(sorted(j.job_name for j in group)),
            tags={
                RANGE_START_TAG: min(j.window_start for j in group).isoformat(),
                RANGE_END_TAG: max(j.window_end for j in group).isoformat(),
            },
        )
        for group in ready_windows(pending, ready)
    ]
    context.log.info(f"{len(ready)} of {len(pending)} pending export files are ready")
    if not requests:
        return dg.SkipReason(f"{len(pending)} export job(s) still running at Acoustic")
    return dg.SensorResult(run_requests=requests)
