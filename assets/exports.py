"""Acoustic Connect exports: signals brought back out with `exportSignals` — the plan and its
blocking quota checks (`connect/export_plan`), the submitted jobs (`connect/export_jobs`) and the
collected files as Parquet (`connect/exported_signals`)."""

from collections.abc import Iterator
from datetime import UTC, date, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from acoustic_pipelines.connect.exports.collection import (
    EXPORTED_SIGNALS,
    MissingExportJobError,
    collect_exports,
)
from acoustic_pipelines.connect.exports.files import ExportFileError
from acoustic_pipelines.connect.exports.ledger import ExportLedger, Verdict
from acoustic_pipelines.connect.exports.planning import (
    EXPORT_JOBS,
    EXPORT_PLAN,
    PLAN_FILE,
    ExportPlan,
    plan_exports,
)
from acoustic_pipelines.connect.exports.submission import (
    ExportSubmitError,
    StalePlanError,
    submit_plan,
)
from acoustic_pipelines.connect.sftp import (
    IntegrityError,
    SftpConnectionError,
    SftpError,
)
from acoustic_pipelines.connect.signals.ledger import (
    LedgerError,
    pushed_signal_counts,
)
from acoustic_pipelines.lake import Lake, PartitionNotFound
from assets.catalog import column_schema
from assets.export_results import (
    LIMIT_CHECKS,
    QUOTA_WARNING_CHECK,
    USAGE_CHECKS,
    blocked_message,
    day_exported_metadata,
    day_plan_metadata,
    deferred_metadata,
    exported_metadata,
    jobs_metadata,
    limit_results,
    plan_line,
    plan_metadata,
    quota_warning_result,
    usage_results,
)
from assets.partitions import BACKFILL_POLICY, daily_partitions, day_check_events, run_days
from assets.retries import TRANSIENT_RETRY
from assets.segment import OWNERS
from assets.signals import SIGNAL_PUSHES_KEY
from resources.connect import AcousticConnectResource
from resources.exports import AcousticSftpResource, ExportLedgerResource
from resources.pipeline_config import PipelineConfigResource
from resources.storage import LakeResource

EXPORT_PLAN_KEY = dg.AssetKey(EXPORT_PLAN.split("/"))
EXPORT_JOBS_KEY = dg.AssetKey(EXPORT_JOBS.split("/"))
EXPORTED_SIGNALS_KEY = dg.AssetKey(EXPORTED_SIGNALS.split("/"))
EXPORTS_POOL = "acoustic_exports"
SFTP_POOL = "acoustic_sftp"


class ExportPlanConfig(dg.Config):
    """Run configuration of `connect/export_plan`."""

    force: bool = Field(
        default=False,
        description="Plan every day again, even days an earlier job already exported: each "
        "gets a new job (a new attempt number), counted against today's quota.",
    )


class ExportedSignalsConfig(dg.Config):
    """Run configuration of `connect/exported_signals`."""

    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How long to wait for each job's file on SFTP; unset: "
        "exports.collect_timeout_seconds of the pipeline config.",
    )


@dg.asset(
    key=EXPORT_PLAN_KEY,
    group_name="connect",
    partitions_def=daily_partitions,
    deps=[SIGNAL_PUSHES_KEY],
    kinds={"acoustic", "json"},
    owners=OWNERS,
    backfill_policy=BACKFILL_POLICY,
    retry_policy=TRANSIENT_RETRY,  # unexpected errors only; the ledger makes a retry safe
    check_specs=[
        *(
            dg.AssetCheckSpec(
                name,
                asset=EXPORT_PLAN_KEY,
                blocking=True,
                partitions_def=daily_partitions,
                description=f"Blocks connect/export_jobs when the plan of the day's run would take "
                f"today's export {limit} past Acoustic's daily limit (less the configured "
                "reserve). The verdict is binding: export_jobs never submits a day whose latest "
                "plan failed.",
            )
            for limit, name in LIMIT_CHECKS.items()
        ),
        dg.AssetCheckSpec(
            QUOTA_WARNING_CHECK,
            asset=EXPORT_PLAN_KEY,
            partitions_def=daily_partitions,
            description="Warns when the plan would use 80 % or more of any daily export limit.",
        ),
    ],
)
def export_plan(
    context: dg.AssetExecutionContext,
    config: ExportPlanConfig,
    pipeline_config: PipelineConfigResource,
    lake: LakeResource,
    export_ledger: ExportLedgerResource,
) -> Iterator[dg.MaterializeResult | dg.Output | dg.AssetCheckEvaluation]:
    """Which exportSignals jobs the day (or a backfilled range) needs, and their share of today's quota.

    For every export definition of the config (`exports:`), the days not yet exported are packed
    into as few jobs as possible, each with its name, SFTP path, window and estimated rows and
    bytes (from earlier exports, this pipeline's own pushes, or the configured default).
    Materializing only this asset is the dry run: it shows what would be submitted and submits
    nothing. Its blocking checks stop `connect/export_jobs` when the plan would pass one of
    Acoustic's daily export limits (20 jobs, 2,000,000 rows, 1 GB per UTC day, less the
    reserve). The verdict (passed, or which limit and by how much) is recorded per day in the
    job ledger and binds every later run: export_jobs submits nothing for a day whose latest
    plan failed. The plan is at `connect/export_plan/date=…/plan.json`.
    """
    days = run_days(context)
    store = lake.get_lake()
    ledger = export_ledger.get_ledger()
    plan = _plan(days, pipeline_config, store, ledger, force=config.force)
    for day in days:
        with store.stage(EXPORT_PLAN, day) as staged:
            with store.fs.open_output_stream(staged.file(PLAN_FILE)) as out:
                out.write(plan.to_json().encode())
            store.commit(staged, {"plan_id": plan.plan_id, "jobs": len(plan.jobs)})
    ledger.record_verdict(
        plan_id=plan.plan_id,
        days=days,
        passed=not plan.breaches,
        breaches=plan.breaches,
        forced=plan.forced,
        now=plan.created_at,
        run_id=context.run.run_id,
    )
    context.log.info(plan_line(plan))
    for day in days:
        context.add_asset_metadata(day_plan_metadata(plan, day), partition_key=day.isoformat())
    yield dg.MaterializeResult(metadata=plan_metadata(plan, store, days))
    yield from day_check_events(
        context, {d: [*limit_results(plan, d), quota_warning_result(plan, d)] for d in days}
    )


def _plan(
    days: list[date],
    pipeline_config: PipelineConfigResource,
    store: Lake,
    ledger: ExportLedger,
    *,
    force: bool,
) -> ExportPlan:
    """The plan of `days` against the ledger and today's quota (the same for preview and submit)."""
    return plan_exports(
        pipeline_config.load().exports,
        days,
        ledger=ledger,
        pushed_by_day={d: _pushed(store, d) for d in days},
        now=datetime.now(UTC),
        force=force,
    )


def _pushed(store: Lake, day: date) -> dict[str, int]:
    try:
        return pushed_signal_counts(store, day)
    except LedgerError:
        return {}


@dg.asset(
    key=EXPORT_JOBS_KEY,
    group_name="connect",
    partitions_def=daily_partitions,
    deps=[EXPORT_PLAN_KEY],
    kinds={"acoustic", "sqlite"},
    owners=OWNERS,
    pool=EXPORTS_POOL,
    backfill_policy=BACKFILL_POLICY,
    retry_policy=TRANSIENT_RETRY,  # unexpected errors only; the ledger makes a retry safe
)
def export_jobs(
    context: dg.AssetExecutionContext,
    pipeline_config: PipelineConfigResource,
    lake: LakeResource,
    export_ledger: ExportLedgerResource,
    acoustic_connect: AcousticConnectResource,
) -> dg.MaterializeResult:
    """The exportSignals jobs submitted for the day (or range), as recorded in the job ledger.

    Plans its own run's days from the ledger at submission (the same planning as
    `connect/export_plan`, so however the days were previewed — one run or several — a range
    gets the fewest jobs), once every day's latest plan verdict passed: a day whose latest
    `connect/export_plan` failed a blocking check, or that no plan checked, is refused and
    nothing is submitted. Every job of the run is reserved in the ledger in one transaction —
    all fit today's quota, or none is submitted and the failure names each limit and by how
    much it is over — so runs in parallel can never pass a limit together; a job the ledger
    already holds (an earlier run submitted it) is not submitted again. When Connect answers
    DAILY_LIMIT_EXCEEDED (quota used outside this pipeline) the job and the run's other unsent
    jobs are deferred and the run fails saying until when; `deferred_exports_sensor` submits
    them once after 00:00 UTC. The ledger (a SQLite file: job name, dataJobId, SFTP path,
    window, submitted-at, rows and bytes once collected) is at
    `$ACOUSTIC_PIPELINES_EXPORT_LEDGER`.
    """
    days = run_days(context)
    store = lake.get_lake()
    ledger = export_ledger.get_ledger()
    verdicts = ledger.verdicts(days)
    if any(v is None or not v.passed for v in verdicts.values()):
        raise dg.Failure(
            description=blocked_message(verdicts),
            metadata={"days_refused": dg.MetadataValue.int(_refused(verdicts))},
            allow_retries=False,
        )
    run_id = context.run.run_id
    forced = all(v is not None and v.forced and v.run_id == run_id for v in verdicts.values())
    plan = _plan(days, pipeline_config, store, ledger, force=forced)
    tier = pipeline_config.load().signals.tier
    try:
        report = submit_plan(
            plan,
            ledger,
            client_factory=lambda: acoustic_connect.get_client(tier),
            run_id=run_id,
            on_progress=context.log.info,
        )
    except StalePlanError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except ExportSubmitError as exc:
        raise dg.Failure(
            description=str(exc),
            metadata={
                **jobs_metadata(exc.report.jobs, ledger, store, days, exc.report),
                **deferred_metadata(exc.report.deferred),
            },
            allow_retries=False,
        ) from exc
    for day in days:
        covering = [j.job_name for j in report.jobs if j.covers(day)]
        with store.stage(EXPORT_JOBS, day) as staged:
            store.commit(staged, {"plan_id": plan.plan_id, "jobs": covering})
        context.add_asset_metadata(
            {"day_jobs": dg.MetadataValue.text(", ".join(covering) or "none")},
            partition_key=day.isoformat(),
        )
    context.log.info(
        f"{len(report.submitted)} export job(s) submitted, {len(report.skipped)} already in the ledger"
    )
    return dg.MaterializeResult(metadata=jobs_metadata(report.jobs, ledger, store, days, report))


def _refused(verdicts: dict[date, Verdict | None]) -> int:
    return sum(1 for v in verdicts.values() if v is None or not v.passed)


@dg.asset(
    key=EXPORTED_SIGNALS_KEY,
    group_name="connect",
    partitions_def=daily_partitions,
    deps=[EXPORT_JOBS_KEY],
    kinds={"acoustic", "parquet"},
    owners=OWNERS,
    pool=SFTP_POOL,
    backfill_policy=BACKFILL_POLICY,
    retry_policy=TRANSIENT_RETRY,  # unexpected errors only; the ledger makes a retry safe
    check_specs=[
        dg.AssetCheckSpec(
            name,
            asset=EXPORTED_SIGNALS_KEY,
            partitions_def=daily_partitions,
            description=f"The actual export {limit} of the UTC day the day's jobs were submitted "
            "on (ledger, with the collected files' real rows and bytes) are within Acoustic's "
            "daily limit.",
        )
        for limit, name in USAGE_CHECKS.items()
    ],
)
def exported_signals(
    context: dg.AssetExecutionContext,
    config: ExportedSignalsConfig,
    pipeline_config: PipelineConfigResource,
    lake: LakeResource,
    export_ledger: ExportLedgerResource,
    acoustic_sftp: AcousticSftpResource,
) -> Iterator[dg.MaterializeResult | dg.Output | dg.AssetCheckEvaluation]:
    """The day's signals as Acoustic Connect exported them, typed, one Parquet dataset per day.

    Collects each export job's gzip CSV over SFTP (waiting for it with backoff up to the
    timeout), verifies it (size, whole gzip stream) and lands its rows by the UTC day of
    `SIGNAL_TIMESTAMP` at `connect/exported_signals/date=…/definition=<name>/`: a job covering a
    range fills every day of it, and a day without rows gets an empty file with the schema.
    Columns are the export's (timestamps as UTC timestamps, booleans, arrays parsed,
    `SIGNAL_CONTENT` as JSON text, audience attributes as text).
    """
    days = run_days(context)
    exports = pipeline_config.load().exports
    ledger = export_ledger.get_ledger()
    store = lake.get_lake()
    timeout = config.timeout_seconds or exports.collect_timeout_seconds
    try:
        report = collect_exports(
            store,
            ledger,
            definitions=[d.name for d in exports.enabled_definitions],
            days=days,
            open_sftp=acoustic_sftp.open_session,
            timeout=timeout,
            on_progress=context.log.info,
        )
    except (MissingExportJobError, IntegrityError, ExportFileError, SftpError) as exc:
        # A lost SFTP connection is retried; a file that did not come within the timeout is not
        # (the wait itself backed off up to the timeout; run it again, or let the sensor).
        retry = isinstance(exc, SftpConnectionError)
        raise dg.Failure(description=str(exc), allow_retries=retry) from exc
    context.log.info(
        f"{report.rows:,} exported signals landed for {days[0]}..{days[-1]} from "
        f"{len(report.jobs)} file(s), {report.bytes_downloaded:,} bytes at {report.mb_per_s:,.1f} MB/s"
    )
    limits = exports.limits.daily_limits()
    definitions = [d.name for d in exports.enabled_definitions]
    for day in days:
        context.add_asset_metadata(
            {
                **day_exported_metadata(report, day),
                "dagster/column_schema": column_schema(_landed_schema(store, day, definitions)),
            },
            partition_key=day.isoformat(),
        )
    yield dg.MaterializeResult(metadata=exported_metadata(report, exports, store, days))
    yield from day_check_events(
        context, {d: usage_results(report, ledger, limits, day=d) for d in days}
    )


def _landed_schema(store: Lake, day: date, definitions: list[str]) -> pa.Schema:
    """The day's columns as landed: `definition` (the folder), then every definition's export
    columns in file order (the export's header decides them, so they are read, not declared)."""
    fields: dict[str, pa.Field] = {"definition": pa.field("definition", pa.string())}
    for name in definitions:
        try:
            files = store.parquet_files(EXPORTED_SIGNALS, day, f"definition={name}")
        except PartitionNotFound:
            continue
        for field in pq.read_schema(store.fs.open_input_file(files[0])):
            fields.setdefault(field.name, field)
    return pa.schema(list(fields.values()))
