"""Submit a plan's `exportSignals` jobs, all reserved in the ledger first in one transaction.

Every job of the plan is reserved at once (`ExportLedger.reserve_all`): all fit today's quota
and are reserved, or none is and nothing is sent (the failure names each limit and by how
much the run is over). A job the ledger already holds (an earlier run submitted it) is skipped;
a `deferred` job is reserved again and sent, exactly once. Then each reserved job is sent in
plan order with its `to.sftp.path`, and the answer recorded. How a failed call is recorded:

- `DAILY_LIMIT_EXCEEDED` (quota used outside this pipeline): the job and the run's other unsent
  jobs become `deferred` with Connect's message, the UTC day is recorded as exhausted, and the
  submission stops (:class:`ExportSubmitError`, not retryable); the deferred jobs are submitted
  once after 00:00 UTC (the `deferred_exports_sensor` requests it).
- no answer after the request may have reached Connect: `unknown`, kept against the quota and
  never re-sent; its file is still awaited at the requested path. The run's unsent jobs are
  released (forgotten: they were never sent), and the submission stops.
- any other refusal (bad input, authentication, unreachable before sending): `failed`, released
  with the run's unsent jobs, and the submission stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from acoustic_pipelines.connect.client import ConnectClient, outcome_unknown
from acoustic_pipelines.connect.errors import ConnectError, DailyLimitReachedError
from acoustic_pipelines.connect.exports.ledger import (
    DayExhaustedError,
    DaysTakenError,
    ExportLedger,
    JobRequest,
    LedgerJob,
    QuotaRefusedError,
)
from acoustic_pipelines.connect.exports.planning import ExportPlan, PlannedJob

__all__ = ["ExportSubmitError", "SubmitReport", "StalePlanError", "submit_plan"]

log = logging.getLogger(__name__)


class StalePlanError(Exception):
    """The plan was checked against another UTC day's quota than today's."""


class ExportSubmitError(Exception):
    """Submission stopped: the guard refused a job, or Connect refused one (its `__cause__`)."""

    def __init__(self, message: str, report: SubmitReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class SubmitReport:
    """What a submission did with each planned job."""

    submitted: list[LedgerJob] = field(default_factory=list)
    skipped: list[LedgerJob] = field(default_factory=list)
    unknown: list[LedgerJob] = field(default_factory=list)
    failed: list[LedgerJob] = field(default_factory=list)
    deferred: list[LedgerJob] = field(default_factory=list)

    @property
    def jobs(self) -> list[LedgerJob]:
        """Every job the ledger now holds for the plan."""
        return self.submitted + self.skipped + self.unknown + self.failed + self.deferred


def submit_plan(
    plan: ExportPlan,
    ledger: ExportLedger,
    *,
    client_factory: Callable[[], ConnectClient],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    run_id: str | None = None,
    on_progress: Callable[[str], None] = log.info,
) -> SubmitReport:
    """Reserve every job of `plan` in one transaction, then submit them; held jobs are skipped.

    The report's `skipped` also lists the jobs that already covered some of the plan's days.

    Raises:
        StalePlanError: The plan was made on an earlier UTC day (re-plan against today's quota).
        ExportSubmitError: The reservation was refused (nothing was reserved or sent), or
            Connect refused a job; what was submitted before stays in the ledger and in
            `report`, and on DAILY_LIMIT_EXCEEDED the unsent jobs are in `report.deferred`.
    """
    today = now().astimezone(UTC).date()
    if plan.quota_day != today:
        raise StalePlanError(
            f"the export plan {plan.plan_id} was checked against the quota of {plan.quota_day}, "
            f"not today's ({today}); materialize connect/export_plan again"
        )
    report = SubmitReport()
    for covered in dict.fromkeys(c.job_name for c in plan.covered):  # planned by nobody again
        earlier = ledger.job(covered)
        if earlier is not None:
            report.skipped.append(earlier)
    if not plan.jobs:
        return report
    try:
        reservations = ledger.reserve_all(
            [_request(j) for j in plan.jobs],
            limits=plan.limits,
            reserve=plan.reserve,
            now=now(),
            run_id=run_id,
            exclusive=not plan.forced,
        )
    except (QuotaRefusedError, DayExhaustedError, DaysTakenError) as exc:
        raise ExportSubmitError(str(exc), report) from exc
    planned = {j.job_name: j for j in plan.jobs}
    to_send = []
    for reservation in reservations:
        if reservation.created:
            to_send.append(planned[reservation.job.job_name])
        else:
            on_progress(
                f"{reservation.job.job_name}: already {reservation.job.status}, not submitted again"
            )
            report.skipped.append(reservation.job)
    with client_factory() as client:
        for index, job in enumerate(to_send):
            _submit_one(job, to_send[index + 1 :], ledger, client, report, now, on_progress)
    return report


def _request(job: PlannedJob) -> JobRequest:
    return JobRequest(
        job_name=job.job_name,
        definition=job.definition,
        window=(job.window_start, job.window_end),
        attempt=job.attempt,
        signal_types=job.signal_types,
        requested_path=job.path,
        estimated=job.estimated,
    )


def _submit_one(
    planned: PlannedJob,
    unsent: list[PlannedJob],
    ledger: ExportLedger,
    client: ConnectClient,
    report: SubmitReport,
    now: Callable[[], datetime],
    on_progress: Callable[[str], None],
) -> None:
    window = planned.window
    try:
        answer = client.export_signals(
            job_name=planned.job_name,
            signal_types=planned.signal_types,
            start=window.timestamp_start,
            end=window.timestamp_end,
            notify=planned.notify,
            sftp={"path": planned.path},
        )
    except DailyLimitReachedError as exc:
        moment = now()
        until = datetime.combine(
            moment.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC
        )
        names = [planned.job_name, *(j.job_name for j in unsent)]
        reason = f"Connect answered DAILY_LIMIT_EXCEEDED for {planned.job_name}: {exc.message}"
        report.deferred.extend(ledger.defer(names, reason=reason, now=moment, until=until))
        raise ExportSubmitError(
            f"{reason}. Deferred until {until:%Y-%m-%d %H:%M} UTC: "
            + ", ".join(f"{j.job_name} ({j.window_start}..{j.window_end})" for j in report.deferred)
            + "; they are submitted once then (the deferred_exports_sensor requests it)"
            + (
                f"; submitted before the refusal: {', '.join(j.job_name for j in report.submitted)}"
                if report.submitted
                else ""
            ),
            report,
        ) from exc
    except ConnectError as exc:
        ledger.release([j.job_name for j in unsent])
        released = f"; not sent and released: {', '.join(j.job_name for j in unsent)}"
        if outcome_unknown(exc):
            report.unknown.append(ledger.mark_unknown(planned.job_name, error=exc.message))
            raise ExportSubmitError(
                f"{planned.job_name}: no answer from Connect after the request may have reached "
                f"it ({exc.message}); the job is kept as `unknown` (not re-sent) and its file is "
                f"awaited at {planned.path}" + (released if unsent else ""),
                report,
            ) from exc
        report.failed.append(ledger.mark_failed(planned.job_name, error=exc.message))
        raise ExportSubmitError(
            f"{planned.job_name}: Connect refused the job: {exc.message}"
            + (released if unsent else ""),
            report,
        ) from exc
    job = ledger.mark_submitted(
        planned.job_name, data_job_id=answer.data_job_id, path=answer.path, submitted_at=now()
    )
    report.submitted.append(job)
    on_progress(
        f"{planned.job_name}: submitted as {answer.data_job_id}, file {answer.path} "
        f"({planned.window_start}..{planned.window_end}, ~{planned.estimated_rows:,} rows)"
        + (" (deferred earlier)" if planned.deferred else "")
    )
