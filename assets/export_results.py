"""Check results and metadata of the export assets (`connect/export_plan`, `connect/export_jobs`,
`connect/exported_signals`): what the UI shows about a plan, its jobs and the collected files."""

from datetime import UTC, date, datetime

import dagster as dg

from acoustic_pipelines.config.exports import ExportsConfig
from acoustic_pipelines.connect.exports.collection import EXPORTED_SIGNALS, CollectReport
from acoustic_pipelines.connect.exports.ledger import ExportLedger, LedgerJob, Verdict
from acoustic_pipelines.connect.exports.planning import (
    EXPORT_JOBS,
    EXPORT_PLAN,
    ExportPlan,
)
from acoustic_pipelines.connect.exports.quota import WARN_SHARE, DailyLimits, window_days
from acoustic_pipelines.connect.exports.submission import SubmitReport
from acoustic_pipelines.lake import Lake
from assets.markdown import markdown_table

#: The blocking checks of the plan, one per daily limit (ERROR: export_jobs does not run).
LIMIT_CHECKS = {
    "jobs": "export_jobs_within_daily_limit",
    "rows": "export_rows_within_daily_limit",
    "bytes": "export_bytes_within_daily_limit",
}
QUOTA_WARNING_CHECK = "export_quota_below_80_percent"
#: Checks of the actual usage once the files are collected.
USAGE_CHECKS = {
    "jobs": "exported_jobs_within_daily_limit",
    "rows": "exported_rows_within_daily_limit",
    "bytes": "exported_bytes_within_daily_limit",
}


def plan_line(plan: ExportPlan) -> str:
    """One log line: the plan's jobs, rows and bytes, today's usage, and whether it fits."""
    planned = plan.planned
    return (
        f"export plan {plan.first_day}..{plan.last_day}: {planned.jobs} job(s), "
        f"~{planned.rows:,} rows, ~{planned.bytes:,} bytes; today ({plan.quota_day}) used "
        f"{plan.used.jobs} jobs, {plan.used.rows:,} rows, {plan.used.bytes:,} bytes; "
        + ("fits" if not plan.breaches else "; ".join(str(b) for b in plan.breaches))
    )


def day_plan_metadata(plan: ExportPlan, day: date) -> dict[str, dg.MetadataValue]:
    """What the plan holds for one day: the jobs covering it and the day's estimated rows."""
    jobs = [j for j in plan.jobs if j.covers(day)]
    return {
        "day_jobs": dg.MetadataValue.text(", ".join(j.job_name for j in jobs) or "none"),
        "day_rows_estimated": dg.MetadataValue.int(sum(j.rows_on(day) for j in jobs)),
        "day_already_exported": dg.MetadataValue.bool(
            any(c.window_start <= day <= c.window_end for c in plan.covered)
        ),
    }


def limit_results(plan: ExportPlan, day: date) -> list[dg.AssetCheckResult]:
    """One ERROR-severity result per daily limit for `day`: passed while the plan fits.

    The plan is reserved all-or-nothing, so its verdict is the same on each of its days; the
    metadata says what the day itself adds (its jobs and estimated rows) beside the plan's
    figures against today's quota.
    """
    results = []
    span = f"the plan of {plan.first_day}..{plan.last_day}"
    for limit, name in LIMIT_CHECKS.items():
        breach = plan.breach(limit)
        used, planned = getattr(plan.used, limit), getattr(plan.planned, limit)
        if breach is None:
            description = (
                f"{span}: {used:,} used + {planned:,} planned ≤ {plan.maximum(limit):,} "
                f"{limit} available today ({plan.quota_day})"
            )
        elif plan.exhausted:
            description = f"{span}: today is exhausted: {plan.exhausted}"
        else:
            description = f"{span}: {breach}; export a shorter range" + (
                f" (through {plan.fits_through} fits today)" if plan.fits_through else ""
            )
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=breach is None,
                severity=dg.AssetCheckSeverity.ERROR,
                description=description,
                metadata={
                    **day_plan_metadata(plan, day),
                    "limit": dg.MetadataValue.int(getattr(plan.limits, limit)),
                    "reserve": dg.MetadataValue.int(getattr(plan.reserve, limit)),
                    "used": dg.MetadataValue.int(used),
                    "planned": dg.MetadataValue.int(planned),
                    "over_by": dg.MetadataValue.int(breach.over if breach else 0),
                    "plan_id": dg.MetadataValue.text(plan.plan_id),
                },
            )
        )
    return results


def quota_warning_result(plan: ExportPlan, day: date) -> dg.AssetCheckResult:
    """WARN when used + planned reaches 80 % of any limit (less the reserve)."""
    shares = plan.shares
    high = {n: s for n, s in shares.items() if s >= WARN_SHARE} if plan.jobs else {}
    return dg.AssetCheckResult(
        check_name=QUOTA_WARNING_CHECK,
        passed=not high,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "; ".join(f"{n}: {s:.0%} of today's limit" for n, s in high.items())
            if high
            else f"under {WARN_SHARE:.0%} of every daily limit"
        ),
        metadata={
            **day_plan_metadata(plan, day),
            **{f"{n}_share": dg.MetadataValue.float(round(s, 4)) for n, s in shares.items()},
        },
    )


def blocked_message(verdicts: dict[date, Verdict | None]) -> str:
    """Why connect/export_jobs submits nothing: each refused day, its failed check, what to do."""
    lines = []
    for day, verdict in verdicts.items():
        if verdict is None:
            lines.append(f"{day}: no connect/export_plan checked this day")
        elif not verdict.passed:
            failed = "; ".join(
                f"{LIMIT_CHECKS.get(b.limit, b.limit)} failed ({b})" for b in verdict.breaches
            )
            lines.append(
                f"{day}: the latest plan ({verdict.plan_id}, "
                f"{verdict.recorded_at:%Y-%m-%d %H:%M} UTC) {failed}"
            )
    first, last = min(verdicts), max(verdicts)
    return (
        f"{EXPORT_JOBS} submits nothing for {first}..{last}: "
        + "; ".join(lines)
        + f". Materialize {EXPORT_PLAN} for these days again (with {EXPORT_JOBS} in the same "
        "run, or before it): a newer plan that passes its checks lifts this; when the range "
        "does not fit today's quota, its checks say through which day it fits."
    )


def deferred_metadata(jobs: list[LedgerJob]) -> dict[str, dg.MetadataValue]:
    """The jobs deferred by Connect's DAILY_LIMIT_EXCEEDED, why, and until when."""
    rows = [
        {
            "job name": j.job_name,
            "window": f"{j.window_start}..{j.window_end}",
            "deferred until (UTC)": j.deferred_until.isoformat() if j.deferred_until else "",
            "reason": j.error or "",
        }
        for j in jobs
    ]
    return {
        "jobs_deferred": dg.MetadataValue.int(len(jobs)),
        "deferred": dg.MetadataValue.md(markdown_table(rows, empty="_none_")),
    }


def plan_metadata(plan: ExportPlan, store: Lake, days: list[date]) -> dict[str, dg.MetadataValue]:
    """What would be submitted and how much of today's quota it takes (stable keys)."""
    planned, remaining = plan.planned, plan.remaining
    metadata: dict[str, dg.MetadataValue] = {
        "planned_jobs": dg.MetadataValue.int(planned.jobs),
        "deferred_jobs": dg.MetadataValue.int(sum(1 for j in plan.jobs if j.deferred)),
        "planned_rows": dg.MetadataValue.int(planned.rows),
        "planned_bytes": dg.MetadataValue.int(planned.bytes),
        "used_jobs": dg.MetadataValue.int(plan.used.jobs),
        "used_rows": dg.MetadataValue.int(plan.used.rows),
        "used_bytes": dg.MetadataValue.int(plan.used.bytes),
        "remaining_jobs": dg.MetadataValue.int(remaining.jobs),
        "remaining_rows": dg.MetadataValue.int(remaining.rows),
        "remaining_bytes": dg.MetadataValue.int(remaining.bytes),
        "days_already_exported": dg.MetadataValue.int(
            len(
                {
                    (c.definition, d)
                    for c in plan.covered
                    for d in window_days(c.window_start, c.window_end)
                    if d in days
                }
            )
        ),
        "quota_day": dg.MetadataValue.text(plan.quota_day.isoformat()),
        "fits_through": dg.MetadataValue.text(str(plan.fits_through or "nothing fits today")),
        "plan_id": dg.MetadataValue.text(plan.plan_id),
        "forced": dg.MetadataValue.bool(plan.forced),
        "notes": dg.MetadataValue.text("; ".join(plan.notes) or "none"),
        "jobs": dg.MetadataValue.md(_jobs_table(plan)),
        "plan_path": dg.MetadataValue.path(store.partition_uri(EXPORT_PLAN, days[0])),
    }
    return metadata


def _jobs_table(plan: ExportPlan) -> str:
    rows = [
        {
            "definition": j.definition,
            "job name": j.job_name + (f" (deferred: {j.deferred})" if j.deferred else ""),
            "window": f"{j.window_start}..{j.window_end}",
            "rows (est.)": f"{j.estimated_rows:,}",
            "bytes (est.)": f"{j.estimated_bytes:,}",
            "estimate from": ", ".join(j.estimate_sources),
            "path": j.path,
        }
        for j in plan.jobs
    ]
    rows += [
        {
            "definition": c.definition,
            "job name": f"{c.job_name} ({c.status}: not submitted again)",
            "window": f"{c.window_start}..{c.window_end}",
            "rows (est.)": "",
            "bytes (est.)": "",
            "estimate from": "",
            "path": "",
        }
        for c in plan.covered
    ]
    return markdown_table(rows, empty="_nothing to submit_")


def jobs_metadata(
    jobs: list[LedgerJob],
    ledger: ExportLedger,
    store: Lake,
    days: list[date],
    report: SubmitReport | None = None,
) -> dict[str, dg.MetadataValue]:
    """The jobs of the run, today's usage after it, and where the ledger is."""
    used = ledger.usage(datetime.now(UTC).date())
    rows = [
        {
            "job name": j.job_name,
            "status": j.status,
            "dataJobId": j.data_job_id or "",
            "window": f"{j.window_start}..{j.window_end}",
            "path": j.remote_path,
            "submitted at (UTC)": j.submitted_at.isoformat() if j.submitted_at else "",
        }
        for j in jobs
    ]
    return {
        "jobs_submitted": dg.MetadataValue.int(len(report.submitted) if report else 0),
        "jobs_already_submitted": dg.MetadataValue.int(len(report.skipped) if report else 0),
        "job_ids": dg.MetadataValue.text(", ".join(j.data_job_id or "?" for j in jobs)),
        "used_jobs_today": dg.MetadataValue.int(used.jobs),
        "used_rows_today": dg.MetadataValue.int(used.rows),
        "used_bytes_today": dg.MetadataValue.int(used.bytes),
        "jobs": dg.MetadataValue.md(markdown_table(rows, empty="_no jobs_")),
        "ledger_path": dg.MetadataValue.path(str(ledger.path)),
        "partition_path": dg.MetadataValue.path(store.partition_uri(EXPORT_JOBS, days[0])),
    }


def day_exported_metadata(report: CollectReport, day: date) -> dict[str, dg.MetadataValue]:
    """One day's own figures in a run (a range run gives each day its own): rows, jobs."""
    rows = report.rows_by_day.get(day, 0)
    return {
        "rows": dg.MetadataValue.int(rows),
        "dagster/row_count": dg.MetadataValue.int(rows),
        "day_jobs": dg.MetadataValue.text(
            ", ".join(c.job.job_name for c in report.jobs if day in c.landed) or "none"
        ),
    }


def exported_metadata(
    report: CollectReport, exports: ExportsConfig, store: Lake, days: list[date]
) -> dict[str, dg.MetadataValue]:
    """Rows per signal type, definition and day, bytes downloaded, MB/s, job ids.

    In a range run (a backfill) these figures are the run's, on every day of it, with
    `rows_by_day` telling the days apart; `day_exported_metadata` gives each day its own rows.
    """
    by_day = [{"day": str(d), "rows": f"{report.rows_by_day.get(d, 0):,}"} for d in days]
    metadata: dict[str, dg.MetadataValue] = {
        "rows": dg.MetadataValue.int(report.rows),
        "run_rows": dg.MetadataValue.int(report.rows),
        "days": dg.MetadataValue.int(len(days)),
        "rows_by_day": dg.MetadataValue.md(markdown_table(by_day)),
        "files": dg.MetadataValue.int(len(report.jobs)),
        "bytes_downloaded": dg.MetadataValue.int(report.bytes_downloaded),
        "download_mb_per_s": dg.MetadataValue.float(round(report.mb_per_s, 2)),
        "seconds_waiting": dg.MetadataValue.float(round(report.seconds_waiting, 3)),
        "rows_for_other_days": dg.MetadataValue.int(report.rows_for_other_days),
        "job_ids": dg.MetadataValue.text(", ".join(c.job.data_job_id or "?" for c in report.jobs)),
        "job_names": dg.MetadataValue.text(", ".join(c.job.job_name for c in report.jobs)),
        "path": dg.MetadataValue.path(store.partition_uri(EXPORTED_SIGNALS, days[0])),
    }
    types = sorted(
        {t for d in exports.enabled_definitions for t in d.signal_types} | set(report.rows_by_type)
    )
    for signal_type in types:
        metadata[f"rows/{signal_type}"] = dg.MetadataValue.int(
            report.rows_by_type.get(signal_type, 0)
        )
    for definition in exports.enabled_definitions:
        metadata[f"rows/definition/{definition.name}"] = dg.MetadataValue.int(
            report.rows_by_definition.get(definition.name, 0)
        )
    return metadata


def usage_results(
    report: CollectReport, ledger: ExportLedger, limits: DailyLimits, *, day: date
) -> list[dg.AssetCheckResult]:
    """Per limit: the actual usage of each quota day of the jobs landing `day` is within it."""
    quota_days = sorted(
        {c.job.reserved_at.astimezone(UTC).date() for c in report.jobs if day in c.landed}
    )
    usages = {d: ledger.usage(d) for d in quota_days}
    results = []
    for limit, name in USAGE_CHECKS.items():
        maximum = getattr(limits, limit)
        worst = max((getattr(u, limit) for u in usages.values()), default=0)
        over = {d: getattr(u, limit) for d, u in usages.items() if getattr(u, limit) > maximum}
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not over,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(
                    "; ".join(f"{d}: {v:,} {limit} > {maximum:,}" for d, v in over.items())
                    if over
                    else f"at most {worst:,} of {maximum:,} {limit} on "
                    + (", ".join(map(str, quota_days)) or "no day")
                ),
                metadata={
                    "limit": dg.MetadataValue.int(maximum),
                    "used": dg.MetadataValue.int(worst),
                    "day_rows": dg.MetadataValue.int(report.rows_by_day.get(day, 0)),
                    "day_jobs": dg.MetadataValue.text(
                        ", ".join(c.job.job_name for c in report.jobs if day in c.landed)
                    ),
                },
            )
        )
    return results
