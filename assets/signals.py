"""Acoustic Connect signals: each day's behavior signals pushed with `createSignals`
(`connect/signal_pushes`)."""

import os
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pyarrow.parquet as pq
from pydantic import Field

from acoustic_pipelines.config.loading import SignalsConfig
from acoustic_pipelines.connect.signals.ledger import (
    LEDGER_FILE,
    LEDGER_SCHEMA,
    SIGNAL_PUSHES,
    LedgerError,
)
from acoustic_pipelines.connect.signals.pushes import PushReport, SignalPushError, push_day
from acoustic_pipelines.connect.signals.rejected import REJECTED_SIGNALS, REJECTED_SIGNALS_SCHEMA
from acoustic_pipelines.connect.signals.rules import SignalSettings
from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.leases import LeaseHeld, LeaseLost
from acoustic_pipelines.segment.raw_events import RAW_EVENTS
from assets.catalog import column_schema
from assets.markdown import markdown_table
from assets.partitions import (
    BACKFILL_POLICY,
    add_day_metadata,
    daily_partitions,
    day_check_events,
    materialize_results,
    run_days,
)
from assets.retries import TRANSIENT_RETRY
from assets.segment import OWNERS, RAW_EVENTS_KEY
from resources.connect import AcousticConnectResource
from resources.pipeline_config import PipelineConfigResource
from resources.storage import LakeResource

SIGNAL_PUSHES_KEY = dg.AssetKey(SIGNAL_PUSHES.split("/"))
REJECTED_SIGNALS_KEY = dg.AssetKey(REJECTED_SIGNALS.split("/"))
CODE_VERSION = "1"  # bump when a change alters what a partition holds
LEDGER_COLUMNS = {
    "message_id": "the Segment messageId the signal came from",
    "rule": "the signal rule that built it",
    "signal_type": "Connect signal type (addToCart, order, …)",
    "batch": "the createSignals batch it was sent in",
    "signal_id": "the id Connect returned (sent signals only)",
    "status": "sending, sent, failed or unknown",
}
CONNECT_POOL = "acoustic_connect_api"
OUTCOMES_CHECK = "signal_outcomes_known"


class SignalPushesConfig(dg.Config):
    """Run configuration of `connect/signal_pushes`."""

    dry_run: bool = Field(
        default=False,
        description="Build, validate and count the day's signals; send nothing, write nothing.",
    )
    resend_unknown: bool = Field(
        default=False,
        description="Send again, in batches of their own, the signals whose outcome is unknown "
        "(an answer lost to a dropped connection or a killed run); signals known sent are "
        "skipped. At-least-once for those signals only: Connect has no idempotency key, so one "
        "whose lost answer had been stored is then held twice (`resent_unknown` counts them).",
    )
    force_resend: bool = Field(
        default=False,
        description="Send every signal again, including those the ledger says were sent or "
        "whose outcome is unknown (Connect then holds them twice).",
    )
    concurrency: int = Field(
        default=4, ge=1, le=32, description="createSignals calls in flight at once."
    )


@dg.multi_asset(
    name="connect__signal_pushes",
    specs=[
        dg.AssetSpec(
            SIGNAL_PUSHES_KEY,
            description="The day's behavior signals sent to Acoustic Connect with createSignals, "
            "as the day's ledger: one row per signal with its batch, status and signal id.",
            deps=[RAW_EVENTS_KEY],
            group_name="connect",
            kinds={"acoustic", "parquet"},
            owners=OWNERS,
            code_version=CODE_VERSION,
            metadata={"dagster/column_schema": column_schema(LEDGER_SCHEMA, LEDGER_COLUMNS)},
        ),
        dg.AssetSpec(
            REJECTED_SIGNALS_KEY,
            description="The day's signals that break Connect's content rules or that Connect "
            "refused, with every problem (written by the same step as `connect/signal_pushes`; "
            "a dry run writes none).",
            deps=[RAW_EVENTS_KEY],
            group_name="connect",
            kinds={"acoustic", "parquet"},
            owners=OWNERS,
            code_version=CODE_VERSION,
            skippable=True,
            metadata={"dagster/column_schema": column_schema(REJECTED_SIGNALS_SCHEMA)},
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=BACKFILL_POLICY,
    can_subset=True,  # both datasets are always written; the selected ones are recorded
    pool=CONNECT_POOL,
    retry_policy=TRANSIENT_RETRY,
    check_specs=[
        dg.AssetCheckSpec(
            OUTCOMES_CHECK,
            asset=SIGNAL_PUSHES_KEY,
            partitions_def=daily_partitions,
            description="Warns when some signals' outcome is unknown (a dropped connection or "
            "a run that died mid-call): they are not sent again unless a run sets "
            "`resend_unknown` (at-least-once for them).",
        )
    ],
)
def signal_pushes(
    context: dg.AssetExecutionContext,
    config: SignalPushesConfig,
    pipeline_config: PipelineConfigResource,
    lake: LakeResource,
    acoustic_connect: AcousticConnectResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckEvaluation | dg.Output]:
    """The day's behavior signals, sent to Acoustic Connect once each.

    Every raw event of the day goes through the `signals:` rules of the pipeline config; each
    matching rule gives one signal (addToCart, order, pageView, …), checked against Connect's
    content rules for the subscription tier and sent with `createSignals`, 500 a call. The
    partition is the day's ledger, `connect/signal_pushes/date=…/`: every batch with its message
    ids, rules and the signal ids Connect returned (`ledger.parquet`). A re-run sends only what
    was not sent yet, so it is safe to re-materialize; signals whose answer was lost are not
    sent again unless a run sets `resend_unknown` (at-least-once for them). Signals that break a
    rule go to `connect/rejected_signals` with every problem. The application key is read from
    the environment variable named by `signals.app_key_env`.
    """
    days = run_days(context)
    signals = pipeline_config.load().signals
    app_key = _app_key(signals)
    store = lake.get_lake()
    checks: dict[date, list[dg.AssetCheckResult]] = {}
    for number, day in enumerate(days, 1):
        context.log.info(
            f"day {number} of {len(days)}: {day}, reading {store.partition_uri(RAW_EVENTS, day)}, "
            f"ledger {store.partition_uri(SIGNAL_PUSHES, day)}"
        )
        report = _push(context, config, signals, app_key, store, acoustic_connect, day)
        context.log.info(_summary_line(report))
        add_day_metadata(
            context, day, push_metadata(report, signals, store), asset_key=SIGNAL_PUSHES_KEY
        )
        if not config.dry_run:
            add_day_metadata(
                context, day, rejected_metadata(report, store), asset_key=REJECTED_SIGNALS_KEY
            )
        checks[day] = [outcomes_result(report)]
    yield from materialize_results(
        context,
        [SIGNAL_PUSHES_KEY] if config.dry_run else [SIGNAL_PUSHES_KEY, REJECTED_SIGNALS_KEY],
    )
    yield from day_check_events(context, checks)


def rejected_metadata(report: PushReport, store: Lake) -> dict[str, dg.MetadataValue]:
    """The day's rejected signals: how many, why, and where they are."""
    return {
        "dagster/row_count": dg.MetadataValue.int(report.rejected),
        "dagster/partition_row_count": dg.MetadataValue.int(report.rejected),
        "refused_by_connect": dg.MetadataValue.int(report.signals_refused),
        "rejected_signals_path": dg.MetadataValue.path(_uri(store, REJECTED_SIGNALS, report.day)),
        "by_reason": dg.MetadataValue.md(_reasons_table(report)),
    }


def _push(
    context: dg.AssetExecutionContext,
    config: SignalPushesConfig,
    signals: SignalsConfig,
    app_key: str,
    store: Lake,
    acoustic_connect: AcousticConnectResource,
    day: date,
) -> PushReport:
    """Push one day; library errors become failures (retried only when the error says so)."""
    try:
        return push_day(
            store,
            day,
            rules=signals.compiled_rules,
            settings=SignalSettings(
                app_key=app_key,
                tier=signals.tier,
                test=signals.test,
                default_currency=signals.default_currency,
            ),
            client_factory=lambda: acoustic_connect.get_client(signals.tier),
            concurrency=config.concurrency,
            force_resend=config.force_resend,
            resend_unknown=config.resend_unknown,
            dry_run=config.dry_run,
            on_progress=context.log.info,
        )
    except PartitionNotFound as exc:
        raise dg.Failure(
            description=f"{exc}; materialize {RAW_EVENTS} for {day} first", allow_retries=False
        ) from exc
    except LedgerError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    except (LeaseHeld, LeaseLost) as exc:  # another push of the day: a later retry resumes
        raise dg.Failure(description=str(exc), allow_retries=True) from exc
    except SignalPushError as exc:
        raise dg.Failure(
            description=str(exc).replace(app_key, "[redacted]"),
            metadata=push_metadata(exc.report, signals, store),
            allow_retries=exc.retryable,
        ) from None


def _app_key(signals: SignalsConfig) -> str:
    """The application key from `$<app_key_env>`; a failure naming the variable when unset."""
    value = os.environ.get(signals.app_key_env, "").strip()
    if not value:
        raise dg.Failure(
            description=f"the Acoustic Connect application key is read from the environment "
            f"variable {signals.app_key_env} (signals.app_key_env), which is not set or empty; "
            "set it to the application key of the Connect app the signals belong to",
            allow_retries=False,
        )
    return value


def _summary_line(report: PushReport) -> str:
    mode = "dry run: " if report.dry_run else ""
    return (
        f"{mode}{report.signals_built:,} signals built from {report.events_read:,} events: "
        f"{report.signals_sent:,} sent in {report.batches_sent:,} batches, "
        f"{report.signals_skipped:,} already sent, {report.unknown_outcome:,} of unknown "
        f"outcome, {report.rejected:,} rejected; {report.signals_per_second:,.0f} signals/s"
    )


def outcomes_result(report: PushReport) -> dg.AssetCheckResult:
    """WARN when some signals' outcome is unknown: only `resend_unknown` sends them again."""
    return dg.AssetCheckResult(
        check_name=OUTCOMES_CHECK,
        passed=report.unknown_outcome == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{report.unknown_outcome:,} signals of unknown outcome (their answer was lost): "
            "Connect may or may not hold them; they are not sent again unless a run sets "
            "resend_unknown (at-least-once for them: Connect has no idempotency key)"
            if report.unknown_outcome
            else "every signal's outcome is known"
        ),
        metadata={
            "unknown_outcome": dg.MetadataValue.int(report.unknown_outcome),
            "resent_unknown": dg.MetadataValue.int(report.resent_unknown),
        },
    )


def push_metadata(
    report: PushReport, signals: SignalsConfig, store: Lake
) -> dict[str, dg.MetadataValue]:
    """Counts (the same keys on every run, so they plot), breakdowns and where the files are."""
    counts = {
        "events_read": report.events_read,
        "signals_built": report.signals_built,
        "signals_sent": report.signals_sent,
        "signals_skipped": report.signals_skipped,
        "unknown_outcome": report.unknown_outcome,
        "resent_unknown": report.resent_unknown,
        "signals_refused": report.signals_refused,
        "signals_not_sent": report.signals_not_sent,
        "rejected": report.rejected,
        "batches_sent": report.batches_sent,
        "batches_failed": report.batches_failed,
        "batches_skipped": report.batches_skipped,
        "calls": report.calls,
        "retries": report.retries,
    }
    metadata: dict[str, dg.MetadataValue] = {k: dg.MetadataValue.int(v) for k, v in counts.items()}
    rows = _ledger_rows(store, report.day)
    if rows is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(rows)
        metadata["dagster/partition_row_count"] = dg.MetadataValue.int(rows)
    metadata["seconds"] = dg.MetadataValue.float(round(report.seconds, 3))
    metadata["signals_per_second"] = dg.MetadataValue.float(round(report.signals_per_second, 1))
    metadata["dry_run"] = dg.MetadataValue.bool(report.dry_run)
    types = sorted({r.signal_type for r in signals.compiled_rules} | set(report.built_by_type))
    for signal_type in types:
        metadata[f"signals/{signal_type}"] = dg.MetadataValue.int(
            report.built_by_type.get(signal_type, 0)
        )
    for rule in signals.compiled_rules:
        metadata[f"rejected/{rule.name}"] = dg.MetadataValue.int(
            report.rejected_by_rule.get(rule.name, 0)
        )
    metadata["rejected_by_reason"] = dg.MetadataValue.md(_reasons_table(report))
    metadata["ledger_path"] = dg.MetadataValue.path(_uri(store, SIGNAL_PUSHES, report.day))
    metadata["rejected_signals_path"] = dg.MetadataValue.path(
        _uri(store, REJECTED_SIGNALS, report.day)
    )
    return metadata


def _ledger_rows(store: Lake, day: date) -> int | None:
    """Signals in the day's ledger file (None when there is none, e.g. a dry run of a new day)."""
    try:
        return pq.ParquetFile(
            store.fs.open_input_file(f"{store.partition_path(SIGNAL_PUSHES, day)}/{LEDGER_FILE}")
        ).metadata.num_rows
    except (FileNotFoundError, OSError):
        return None


def _uri(store: Lake, dataset: str, day: date) -> str:
    return store.partition_uri(dataset, day)


def _reasons_table(report: PushReport) -> str:
    rows = [{"reason": r, "signals": f"{n:,}"} for r, n in report.rejected_by_reason.items()]
    return markdown_table(rows, empty="_no rejects_")
