"""Acoustic Connect signals: each day's behavior signals pushed with `createSignals`
(`connect/signal_pushes`)."""

import os
from datetime import date

import dagster as dg
from pydantic import Field

from acoustic_pipelines.config.loading import SignalsConfig
from acoustic_pipelines.connect.signals.ledger import (
    SIGNAL_PUSHES,
    LedgerError,
)
from acoustic_pipelines.connect.signals.pushes import PushReport, SignalPushError, push_day
from acoustic_pipelines.connect.signals.rejected import REJECTED_SIGNALS
from acoustic_pipelines.connect.signals.rules import SignalSettings
from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.leases import LeaseHeld, LeaseLost
from acoustic_pipelines.segment.raw_events import RAW_EVENTS
from assets.markdown import markdown_table
from assets.partitions import daily_partitions
from assets.segment import OWNERS, RAW_EVENTS_KEY
from resources.connect import AcousticConnectResource
from resources.pipeline_config import PipelineConfigResource
from resources.storage import LakeResource

SIGNAL_PUSHES_KEY = dg.AssetKey(SIGNAL_PUSHES.split("/"))
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


@dg.asset(
    key=SIGNAL_PUSHES_KEY,
    group_name="connect",
    partitions_def=daily_partitions,
    deps=[RAW_EVENTS_KEY],
    kinds={"acoustic", "parquet"},
    owners=OWNERS,
    pool=CONNECT_POOL,
    retry_policy=dg.RetryPolicy(
        max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    ),
    check_specs=[
        dg.AssetCheckSpec(
            OUTCOMES_CHECK,
            asset=SIGNAL_PUSHES_KEY,
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
) -> dg.MaterializeResult:
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
    day = context.partition_time_window.start.date()
    signals = pipeline_config.load().signals
    app_key = _app_key(signals)
    store = lake.get_lake()
    try:
        report = push_day(
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
    context.log.info(_summary_line(report))
    return dg.MaterializeResult(
        metadata=push_metadata(report, signals, store),
        check_results=[outcomes_result(report)],
    )


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


def _uri(store: Lake, dataset: str, day: date) -> str:
    return store.partition_uri(dataset, day)


def _reasons_table(report: PushReport) -> str:
    rows = [{"reason": r, "signals": f"{n:,}"} for r, n in report.rejected_by_reason.items()]
    return markdown_table(rows, empty="_no rejects_")
