"""`acoustic-pipelines demo`: a sample day through every asset on the sandbox, then what the day
left where, why rows were rejected, and the commands that open the outputs.

The whole loop runs: a sample warehouse (customers, subscriptions, orders) is synced by Segment
Connections to the Tracking API stand-in, which writes what it accepts into the day's Segment
archive; then the day's assets read that archive with the sample's events, so rows that started
in the warehouse arrive at Acoustic. Everything runs through Dagster (one run for the syncs,
one for the day), as the UI or the daemon would run it.
"""

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
from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.sandbox.environment import (
    S3_SUBFOLDER,
    SANDBOX_SOURCE_ID,
    sandbox_environment,
    uses_real_acoustic,
)
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import StorageError, open_location

#: The Segment Connections assets' group and the suffix of their rejected-records assets.
CONNECTIONS_GROUP = "connections"
REJECTED_SUFFIX = "_rejected_records"
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
            os.environ.update(
                stack.enter_context(sandbox_environment(config, folder=folder, received_day=day))
            )
            print(f"S3 sandbox: {os.environ[settings.ACOUSTIC_S3_ENDPOINT_ENV]}")
            print(f"Connect sandbox: {os.environ[settings.ACOUSTIC_CONNECT_ENDPOINT_ENV]}")
            if config.connections is not None:
                print(
                    f"Tracking API sandbox: {os.environ[settings.SEGMENT_TRACKING_API_ENDPOINT_ENV]}"
                    f" (warehouse {os.environ[config.connections.warehouse_env]})"
                )
        syncs = _sync_connections(defs, config, instance)
        if syncs is not None and not syncs.success:
            _print_outputs(syncs)
            print(
                f"demo run {syncs.run_id} (the syncs) failed; see the logs above", file=sys.stderr
            )
            return 1
        result = _materialize_day(dg, defs, day, instance)
    if syncs is not None:
        _print_outputs(syncs)
    _print_outputs(result)
    if not result.success:
        print(f"demo run {result.run_id} failed; see the logs above", file=sys.stderr)
        return 1
    if syncs is not None and sandboxed:
        _print_loop(syncs, day)
    _print_rejects(result, day, args.bad_rate)
    _print_where(day, config, folder if sandboxed else None)
    return 0


_LOG_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _connection_keys(defs: Any) -> list[Any]:
    """The Segment Connections assets of the code location (not daily: synced first)."""
    graph = defs.resolve_asset_graph()
    return sorted(
        (k for k in graph.materializable_asset_keys if k.path[0] == CONNECTIONS_GROUP),
        key=lambda k: k.path,
    )


def _sync_connections(defs: Any, config: PipelineConfig, instance: Any) -> Any | None:
    """One sync of every Segment Connections model, in one run (None: nothing to sync)."""
    keys = _connection_keys(defs)
    if not keys or config.connections is None:
        return None
    missing = [
        name
        for name in (config.connections.write_key_env, config.connections.warehouse_env)
        if not os.environ.get(name)
    ]
    if missing:
        print(f"Segment Connections: not synced ({', '.join(missing)} not set)")
        return None
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        asset_selection=keys, instance=instance, raise_on_error=False, run_config=_LOG_CONFIG
    )


def _materialize_day(dg: Any, defs: Any, day: date, instance: Any) -> Any:
    """Run every daily asset of the code location for one day, in process."""
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    daily = [k for k in graph.materializable_asset_keys if graph.get(k).partitions_def is not None]
    return job.execute_in_process(
        partition_key=day.isoformat(),
        asset_selection=daily,
        instance=instance,
        raise_on_error=False,
        run_config=_LOG_CONFIG,
    )


def _loop_counts(day: date) -> tuple[int, int] | None:
    """(raw_events rows the Tracking API sandbox's source gave the day, their mapped rows)."""
    lake = Lake(open_location(settings.lake_location(), s3_endpoint_url=settings.s3_endpoint_url()))
    try:
        ids: set[str] = set()
        for batch in lake.iter_batches(
            "segment/raw_events", day, columns=["message_id", "source_id"]
        ):
            for message_id, source in zip(
                batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
            ):
                if source == SANDBOX_SOURCE_ID:
                    ids.add(message_id)
        mapped = sum(
            sum(1 for message_id in batch.column(0).to_pylist() if message_id in ids)
            for destination in lake.subfolders("acoustic/mapped_events", day)
            for batch in lake.iter_batches(
                "acoustic/mapped_events", day, subpath=destination, columns=["message_id"]
            )
        )
    except (PartitionNotFound, StorageError):
        return None
    return len(ids), mapped


def _print_loop(syncs: Any, day: date) -> None:
    """Warehouse rows → Spec calls accepted → raw_events → mapped_events, from the outputs."""
    found = _materializations(syncs)
    models = [m for k, m in found.items() if not k.endswith(REJECTED_SUFFIX)]
    rows = sum(m.get("extracted", 0) for m in models)
    changed = sum(m.get("added", 0) + m.get("updated", 0) + m.get("deleted", 0) for m in models)
    sent = sum(v for m in models for k, v in m.items() if k.endswith("/sent"))
    refused = sum(
        m.get("rejected", 0) + m.get("given_up", 0) + m.get("failed", 0)
        for k, m in found.items()
        if k.endswith(REJECTED_SUFFIX)
    )
    counts = _loop_counts(day)
    kept = ", ".join(
        k
        for k, m in found.items()
        if k.endswith(REJECTED_SUFFIX)
        and sum(m.get(o, 0) for o in ("rejected", "failed", "given_up"))
    )
    print(f"\nwarehouse → Segment Connections → archive → Acoustic ({day}):")
    print(f"  {rows:,} warehouse rows, {changed:,} changed since the last sync")
    print(
        f"  → {sent:,} Spec calls accepted by the Tracking API"
        + (f" ({refused:,} not delivered, kept with their reasons in {kept})" if refused else "")
    )
    if counts is not None:
        in_raw, in_mapped = counts
        earlier = ""
        if in_raw != sent:
            earlier = " (sent by earlier syncs)" if not sent else " (this sync's and earlier ones')"
        print(f"  → {in_raw:,} calls from Segment Connections in segment/raw_events{earlier}")
        print(f"  → {in_mapped:,} of them in acoustic/mapped_events")


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
        day = f" [{materialization.partition}]" if materialization.partition else ""
        print(f"  {materialization.asset_key.to_user_string()}{day}")
        for key, value in metadata.items():
            if key.endswith(("_path", "/manifest", "/sent")) or key in _SHOWN_COUNTS:
                print(f"    {key}: {value:,}" if isinstance(value, int) else f"    {key}: {value}")
    for evaluation in result.get_asset_check_evaluations():
        status = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        print(f"  check {evaluation.asset_key.to_user_string()}:{evaluation.check_name}: {status}")


_SHOWN_COUNTS = (
    "extracted",
    "added",
    "updated",
    "deleted",
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
        for model in config.connections.models if config.connections is not None else []:
            dataset = Path(lake) / CONNECTIONS_GROUP / f"{model.name}{REJECTED_SUFFIX}"
            if any(dataset.glob("*/*.parquet")):
                print(
                    '  python -c "import pyarrow.dataset as ds; print(ds.dataset('
                    f"'{dataset}', partitioning='hive').to_table("
                    "columns=['record_key', 'outcome', 'reason']).to_pandas())\""
                )
    if folder is not None:
        saved = folder / S3_SUBFOLDER
        files = sorted(p for p in saved.rglob("*") if p.is_file()) if saved.is_dir() else []
        print(
            f"  ls -l {saved}/*/   # the S3 deliveries, kept after the demo "
            f"({plural(len(files), 'file')})"
        )
