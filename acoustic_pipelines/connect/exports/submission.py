"""Submit a plan's `exportSignals` jobs, each reserved in the ledger first.

For each planned job, in order: reserve its quota in the ledger (atomic; an existing job of the
same name means an earlier run submitted it, so it is skipped), then call `exportSignals` with the
job's `to.sftp.path` and record the answer. How a failed call is recorded:

- `DAILY_LIMIT_EXCEEDED`: the job is released and the UTC day recorded as exhausted; the
  submission stops (:class:`ExportSubmitError`, not retryable).
- no answer after the request may have reached Connect: `unknown`, kept against the quota and
  never re-sent; its file is still awaited at the requested path.
- any other refusal (bad input, authentication, unreachable before sending): `failed`, released.

A refused reservation (the job would pass a limit, or today is exhausted) stops the submission
before the call: the pipeline's guard, not Connect's error, stops a run that would go over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from acoustic_pipelines.connect.client import ConnectClient, outcome_unknown
from acoustic_pipelines.connect.errors import ConnectError, DailyLimitReachedError
from acoustic_pipelines.connect.exports.ledger import (
    DayExhaustedError,
    ExportLedger,
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

    @property
    def jobs(self) -> list[LedgerJob]:
        """Every job the ledger now holds for the plan, in plan order."""
        return self.submitted + self.skipped + self.unknown + self.failed


def submit_plan(
    plan: ExportPlan,
    ledger: ExportLedger,
    *,
    client_factory: Callable[[], ConnectClient],
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    run_id: str | None = None,
    on_progress: Callable[[str], None] = log.info,
) -> SubmitReport:
    """Reserve and submit every job of `plan`; jobs an earlier run holds are skipped.

    The report's `skipped` also lists the jobs that already covered some of the plan's days.

    Raises:
        StalePlanError: The plan was made on an earlier UTC day (re-plan against today's quota).
        ExportSubmitError: A reservation was refused, or Connect refused a job; what was
            submitted before stays in the ledger and in `report`.
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
    with client_factory() as client:
        for planned in plan.jobs:
            _submit_one(planned, plan, ledger, client, report, now, run_id, on_progress)
    return report


def _submit_one(
    planned: PlannedJob,
    plan: ExportPlan,
    ledger: ExportLedger,
    client: ConnectClient,
    report: SubmitReport,
    now: Callable[[], datetime],
    run_id: str | None,
    on_progress: Callable[[str], None],
) -> None:
    try:
        reservation = ledger.reserve(
            job_name=planned.job_name,
            definition=planned.definition,
            window=(planned.window_start, planned.window_end),
            attempt=planned.attempt,
            signal_types=planned.signal_types,
            requested_path=planned.path,
            estimated=planned.estimated,
            limits=plan.limits,
            reserve=plan.reserve,
            now=now(),
            run_id=run_id,
        )
    except (QuotaRefusedError, DayExhaustedError) as exc:
        raise ExportSubmitError(str(exc), report) from exc
    if not reservation.created:
        on_progress(f"{planned.job_name}: already {reservation.job.status}, not submitted again")
        report.skipped.append(reservation.job)
        return
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
        ledger.mark_refused(planned.job_name, error=exc.message, now=now())
        raise ExportSubmitError(
            f"{planned.job_name}: Connect answered DAILY_LIMIT_EXCEEDED ({exc.message}); today "
            "is recorded as exhausted and nothing more is submitted until 00:00 UTC",
            report,
        ) from exc
    except ConnectError as exc:
        if outcome_unknown(exc):
            report.unknown.append(ledger.mark_unknown(planned.job_name, error=exc.message))
            raise ExportSubmitError(
                f"{planned.job_name}: no answer from Connect after the request may have reached "
                f"it ({exc.message}); the job is kept as `unknown` (not re-sent) and its file is "
                f"awaited at {planned.path}",
                report,
            ) from exc
        report.failed.append(ledger.mark_failed(planned.job_name, error=exc.message))
        raise ExportSubmitError(
            f"{planned.job_name}: Connect refused the job: {exc.message}", report
        ) from exc
    job = ledger.mark_submitted(
        planned.job_name, data_job_id=answer.data_job_id, path=answer.path, submitted_at=now()
    )
    report.submitted.append(job)
    on_progress(
        f"{planned.job_name}: submitted as {answer.data_job_id}, file {answer.path} "
        f"({planned.window_start}..{planned.window_end}, ~{planned.estimated_rows:,} rows)"
    )
