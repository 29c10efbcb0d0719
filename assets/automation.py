"""Schedules and sensors: the daily run, collecting export files once Acoustic wrote them, and
submitting export jobs deferred by Connect's DAILY_LIMIT_EXCEEDED after 00:00 UTC."""

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import dagster as dg

from acoustic_pipelines.connect.exports.ledger import (
    DEFERRED,
    RESERVED,
    SUBMITTED,
    UNKNOWN,
    ExportLedger,
    LedgerJob,
)
from acoustic_pipelines.connect.sftp import RemoteFileMissingError, SftpError, SftpSession
from assets.connections import GROUP as CONNECTIONS_GROUP
from assets.exports import EXPORT_JOBS_KEY, EXPORT_PLAN_KEY, EXPORTED_SIGNALS_KEY
from resources.exports import AcousticSftpResource, ExportLedgerResource

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

#: Every daily asset but the collection, which the sensor starts when the files are there. The
#: Segment Connections syncs are not daily: each model has its own job and schedule.
daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline",
    selection=dg.AssetSelection.all()
    - dg.AssetSelection.assets(EXPORTED_SIGNALS_KEY)
    - dg.AssetSelection.groups(CONNECTIONS_GROUP),
    description="One UTC day: raw events, mapped tables, S3 delivery, signal pushes, export jobs.",
)
daily_pipeline_schedule = dg.build_schedule_from_partitioned_job(
    daily_pipeline_job, hour_of_day=2, description="Runs yesterday's partition at 02:00 UTC."
)
submit_deferred_exports_job = dg.define_asset_job(
    "submit_deferred_exports",
    selection=dg.AssetSelection.assets(EXPORT_PLAN_KEY, EXPORT_JOBS_KEY),
    description="Plans (with the blocking quota checks) and submits export jobs that Connect's "
    "DAILY_LIMIT_EXCEEDED deferred, once their UTC day has passed (started by the sensor).",
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


def _spans(jobs: Sequence[LedgerJob], days: dict[str, list[date]]) -> list[list[LedgerJob]]:
    """Jobs grouped where their days (`days[job_name]`, consecutive) overlap or touch."""
    groups: list[list[LedgerJob]] = []
    ends: list[date] = []
    for job in sorted(jobs, key=lambda j: (days[j.job_name][0], days[j.job_name][-1])):
        first, last = days[job.job_name][0], days[job.job_name][-1]
        if groups and (first - ends[-1]).days <= 1:
            groups[-1].append(job)
            ends[-1] = max(ends[-1], last)
        else:
            groups.append([job])
            ends.append(last)
    return groups


def remaining_days(ledger: ExportLedger, job: LedgerJob) -> list[date]:
    """The days of the job's window not yet landed (all of them before its first collection)."""
    done = ledger.collected_days(job.job_name)
    return [d for d in job.days if d not in done] or job.days


def ready_windows(
    pending: list[LedgerJob], ready: set[str], remaining: dict[str, list[date]] | None = None
) -> Iterator[list[LedgerJob]]:
    """Groups of pending jobs whose remaining days overlap, each once all its files are there.

    exported_signals lands a day from every definition's job at once, so a day is requested only
    when all of its jobs are ready; overlapping windows are merged into one run. `remaining`
    gives each job's days still to land (default: its whole window).
    """
    days = remaining or {j.job_name: j.days for j in pending}
    for group in _spans(pending, days):
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
    ledger = export_ledger.get_ledger()
    pending = ledger.jobs(statuses=[RESERVED, SUBMITTED, UNKNOWN])
    if not pending:
        return dg.SkipReason("no submitted export job waits for collection")
    remaining = {j.job_name: remaining_days(ledger, j) for j in pending}
    try:
        with acoustic_sftp.open_session() as session:
            ready = {j.job_name for j in pending if _ready(session, j)}
    except SftpError as exc:
        return dg.SkipReason(f"SFTP not reachable: {exc}")
    requests = []
    for group in ready_windows(pending, ready, remaining):
        start = min(remaining[j.job_name][0] for j in group)
        end = max(remaining[j.job_name][-1] for j in group)
        requests.append(
            dg.RunRequest(
                run_key="+".join(sorted(j.job_name for j in group)) + f":{start}..{end}",
                tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
            )
        )
    context.log.info(f"{len(ready)} of {len(pending)} pending export files are ready")
    if not requests:
        return dg.SkipReason(f"{len(pending)} export job(s) still running at Acoustic")
    return dg.SensorResult(run_requests=requests)


def deferred_requests(ledger: ExportLedger, now: datetime) -> list[dg.RunRequest] | dg.SkipReason:
    """Run requests for the deferred jobs whose wait is over, or why there are none.

    One run per group of overlapping or adjacent windows, over the group's days, keyed by the
    jobs and today's UTC day: requested at most once a day, and the ledger reserves each job
    again at most once whatever runs race for it.
    """
    deferred = ledger.jobs(statuses=[DEFERRED])
    if not deferred:
        return dg.SkipReason("no export job is deferred")
    due = [j for j in deferred if j.deferred_until is None or j.deferred_until <= now]
    if not due:
        until = min(j.deferred_until for j in deferred if j.deferred_until)
        return dg.SkipReason(
            f"{len(deferred)} export job(s) deferred until {until:%Y-%m-%d %H:%M} UTC "
            f"({', '.join(j.job_name for j in deferred)}): {deferred[0].error}"
        )
    today = now.astimezone(UTC).date()
    return [
        dg.RunRequest(
            run_key="+".join(sorted(j.job_name for j in group)) + f"@{today}",
            tags={
                RANGE_START_TAG: min(j.window_start for j in group).isoformat(),
                RANGE_END_TAG: max(j.window_end for j in group).isoformat(),
            },
        )
        for group in _spans(due, {j.job_name: j.days for j in due})
    ]


@dg.sensor(
    job=submit_deferred_exports_job,
    minimum_interval_seconds=300,
    description="After 00:00 UTC, plans and submits the export jobs Connect's "
    "DAILY_LIMIT_EXCEEDED deferred (quota used outside this pipeline): one run per window, "
    "each job submitted once. Its skip reason says what waits, until when and why.",
)
def deferred_exports_sensor(
    context: dg.SensorEvaluationContext, export_ledger: ExportLedgerResource
) -> dg.SensorResult | dg.SkipReason:
    """Request connect/export_plan + connect/export_jobs for deferred jobs once their day passed."""
    found = deferred_requests(export_ledger.get_ledger(), datetime.now(UTC))
    if isinstance(found, dg.SkipReason):
        return found
    context.log.info(f"{len(found)} run(s) for deferred export jobs")
    return dg.SensorResult(run_requests=found)
