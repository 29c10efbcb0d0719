"""`acoustic-pipelines demo`: a sample day through every asset on the sandbox, then what the day
left where, why rows were rejected, and the commands that open the outputs."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from acoustic_pipelines import settings
from acoustic_pipelines.cli.instance import dagster_home, prepare_instance
from acoustic_pipelines.cli.output import load_config_or_report, plural, print_sample
from acoustic_pipelines.cli.pools import dead_slot_holders
from acoustic_pipelines.config.loading import PipelineConfig
from acoustic_pipelines.sandbox.environment import (
    S3_SUBFOLDER,
    sandbox_environment,
    uses_real_acoustic,
)
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location

DEMO_EVENTS = 20_000
DEMO_BAD_RATE = 0.005
SANDBOX_SUBFOLDER = "_sandbox"  # in a local lake: kept and removed with the ledgers

#: Why the sample's rows are rejected downstream of ingest, by code (acoustic/rejected_events)
#: or reason (connect/rejected_signals).
_WHY = {
    "INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID": "no email to address the row to: events of anonymous "
    "visitors (no identify yet, no properties.email) have no recipient, and Acoustic needs one",
    "identifiableAttributes": "no email or contact key: events of anonymous visitors cannot be "
    "attributed to a contact, so Connect would refuse the signal",
    "signalContent.numberOfResults": "Products Searched events without `properties.results`: "
    "Segment's spec has no result count and Connect's onSiteSearch signal needs one",
}


def add_demo_command(commands: Any, *, count: Any, rate: Any, day: Any) -> None:
    """Register `demo` on the command's subparsers (`count`, `rate`, `day`: argument types)."""
    demo = commands.add_parser("demo", help="write a sample day and materialize every asset for it")
    demo.add_argument("--date", type=day, default=None, help="day to run (default: yesterday, UTC)")
    demo.add_argument(
        "--events", type=count, default=DEMO_EVENTS, help=f"sample lines (default {DEMO_EVENTS})"
    )
    demo.add_argument(
        "--bad-rate", type=rate, default=DEMO_BAD_RATE, help=f"default {DEMO_BAD_RATE}"
    )
    demo.set_defaults(run=run_demo)


def sandbox_folder() -> Path | None:
    """`<lake>/_sandbox` for a local lake: kept and removed with the ledgers that refer to it.

    A second demo (or `make dev` after `make demo`) then finds the signals and export files the
    lake's ledgers record as sent and submitted, and the S3 deliveries. An s3:// lake gets a
    temporary sandbox.
    """
    lake = settings.lake_location()
    return None if "://" in lake else Path(lake) / SANDBOX_SUBFOLDER


def run_demo(args: argparse.Namespace) -> int:
    """Write a sample day and materialize every asset for it; print what it left and where."""
    # The code location is imported here only: the library itself never depends on Dagster.
    import dagster as dg

    day = args.date or (datetime.now(UTC).date() - timedelta(days=1))
    first = settings.start_date()
    if day < first:
        print(
            f"--date {day} is before the first daily partition, {first}, which "
            f"{settings.START_DATE_ENV} sets: run with {settings.START_DATE_ENV}={day} "
            "(or earlier) to include it",
            file=sys.stderr,
        )
        return 2
    if os.environ.get("DAGSTER_HOME"):
        prepare_instance(dagster_home())  # once, under a lock: other runs may open it now too
        instance = dg.DagsterInstance.get()
        blocked = dead_slot_holders(instance)
        if blocked:
            for holder in blocked:
                print(holder.explain(), file=sys.stderr)
            return 1
    else:
        instance = dg.DagsterInstance.ephemeral()
    from acoustic_pipelines.definitions import defs

    print(f"demo day: {day} (UTC; choose another with --date)")
    summary = write_sample_archive(
        open_location(settings.archive_location(), s3_endpoint_url=settings.s3_endpoint_url()),
        day,
        events=args.events,
        bad_rate=args.bad_rate,
    )
    print_sample(summary)
    config = load_config_or_report(None)
    if config is None:
        return 1
    folder = sandbox_folder()
    sandboxed = not uses_real_acoustic()
    with ExitStack() as stack:
        if sandboxed:
            saved = dict(os.environ)  # the sandbox's variables end with the demo
            stack.callback(lambda: (os.environ.clear(), os.environ.update(saved)))
            os.environ.update(stack.enter_context(sandbox_environment(config, folder=folder)))
            print(f"S3 sandbox: {os.environ[settings.ACOUSTIC_S3_ENDPOINT_ENV]}")
            print(f"Connect sandbox: {os.environ[settings.ACOUSTIC_CONNECT_ENDPOINT_ENV]}")
        result = _materialize_day(dg, defs, day, instance)
    _print_outputs(result)
    if not result.success:
        print(f"demo run {result.run_id} failed; see the logs above", file=sys.stderr)
        return 1
    _print_rejects(result, day, args.bad_rate)
    _print_where(day, config, folder if sandboxed else None)
    return 0


def _materialize_day(dg: Any, defs: Any, day: date, instance: Any) -> Any:
    """Run every asset of the code location for one day, in process."""
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key=day.isoformat(),
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )


def _materializations(result: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        found[materialization.asset_key.to_user_string()] = {
            key: value.value for key, value in materialization.metadata.items()
        }
    return found


def _print_outputs(result: Any) -> None:
    print(f"\nrun {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        print(f"  {materialization.asset_key.to_user_string()} [{materialization.partition}]")
        for key, value in metadata.items():
            if key.endswith(("_path", "/manifest")) or key in _SHOWN_COUNTS:
                print(f"    {key}: {value:,}" if isinstance(value, int) else f"    {key}: {value}")
    for evaluation in result.get_asset_check_evaluations():
        status = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        print(f"  check {evaluation.asset_key.to_user_string()}:{evaluation.check_name}: {status}")


_SHOWN_COUNTS = (
    "lines_read",
    "accepted",
    "rejected",
    "duplicates",
    "files",
    "distinct_user_ids",
    "events",
    "rows",
    "bytes",
    "signals_sent",
    "batches_sent",
    "planned_jobs",
    "planned_rows",
    "jobs_submitted",
    "job_ids",
    "bytes_downloaded",
)


def _counts(path: Any, column: str) -> dict[str, int]:
    """Rows per value of `column` in a local Parquet dataset (nothing for an s3:// lake)."""
    if not isinstance(path, str) or "://" in path or not Path(path).exists():
        return {}
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=[column])
    grouped = table.group_by(column).aggregate([(column, "count")]).to_pylist()
    return {str(row[column]): int(row[f"{column}_count"]) for row in grouped}


def _print_rejects(result: Any, day: date, bad_rate: float) -> None:
    """Why lines, events and signals were rejected, with the counts by code (read from the lake)."""
    raw = _materializations(result).get("segment/raw_events", {})
    print("\nwhy rows were rejected:")
    if raw:
        print(
            f"  segment/raw_events: {raw.get('rejected', 0):,} lines rejected and "
            f"{raw.get('duplicates', 0):,} duplicates: the bad lines the sample wrote on purpose "
            f"(--bad-rate {bad_rate}), by the reasons listed above"
        )
    lake = settings.lake_location()
    for dataset, column, noun in (
        ("acoustic/rejected_events", "code", "events"),
        ("connect/rejected_signals", "reason", "signals"),
    ):
        counts = _counts(f"{lake}/{dataset}/date={day}", column)
        print(f"  {dataset}: {sum(counts.values()):,} {noun}")
        for code, count in sorted(counts.items()):
            why = _WHY.get(code)
            print(f"    {code}: {count:,}" + (f" — {why}" if why else ""))


def _print_where(day: date, config: PipelineConfig, folder: Path | None) -> None:
    """The commands that open the day's outputs (the README's, with the day filled in)."""
    lake = settings.lake_location()
    destination = config.destinations[0].name if config.destinations else "NAME"
    print(f"\nopen the outputs of {day}:")
    if "://" not in lake:
        print(
            '  python -c "import pandas as pd; print(pd.read_parquet('
            f"'{lake}/acoustic/mapped_events/date={day}/destination={destination}'))\""
        )
        print(
            '  python -c "import pyarrow.parquet as pq; print(pq.read_table('
            f"'{lake}/acoustic/rejected_events/date={day}').group_by('code')"
            ".aggregate([('code', 'count')]))\""
        )
        ledger = Path(lake) / settings.EXPORT_LEDGER_FILE
        print(
            f"  sqlite3 {ledger} 'select job_name, status, data_job_id, rows, bytes from export_jobs'"
        )
    if folder is not None:
        saved = folder / S3_SUBFOLDER
        files = sorted(p for p in saved.rglob("*") if p.is_file()) if saved.is_dir() else []
        print(
            f"  ls -l {saved}/*/   # the S3 deliveries, kept after the demo "
            f"({plural(len(files), 'file')})"
        )
