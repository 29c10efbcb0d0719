"""The `acoustic-pipelines` command: `sample` writes a Segment archive, `demo` runs the daily pipeline.

`validate` checks a pipeline config file, `test-mapping` runs one event through its mappings and
`sandbox` serves the local stand-ins of the remote services (optionally around another command).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from contextlib import ExitStack, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from acoustic_pipelines import settings
from acoustic_pipelines.acoustic.test_mapping import (
    MappingOutcome,
    MappingTestError,
    MappingTestResult,
    find_archived_event,
    read_event,
    run_test_mapping,
)
from acoustic_pipelines.cli.connections import add_connections_commands
from acoustic_pipelines.cli.instance import add_instance_commands, dagster_home, prepare_instance
from acoustic_pipelines.cli.sftp import add_sftp_commands
from acoustic_pipelines.config.loading import ConfigError, PipelineConfig, load_config
from acoustic_pipelines.connect.signals.content import TIERS
from acoustic_pipelines.sandbox.environment import sandbox_environment, uses_real_acoustic
from acoustic_pipelines.segment.sample import SampleSummary, write_sample_archive
from acoustic_pipelines.storage import StorageError, open_location

DEMO_EVENTS = 20_000
SANDBOX_SUBFOLDER = "_sandbox"  # in a local lake: kept and removed with the ledgers
DEMO_BAD_RATE = 0.005


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("acoustic_pipelines").setLevel(logging.INFO)
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acoustic-pipelines", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    sample = commands.add_parser("sample", help="write a realistic Segment archive for one day")
    sample.add_argument("--date", type=_date, required=True, help="received-day, YYYY-MM-DD")
    sample.add_argument(
        "--events", type=_count, default=100_000, help="lines to write (default 100000)"
    )
    sample.add_argument("--out", required=True, help="archive root: a folder or s3://bucket/prefix")
    sample.add_argument(
        "--bad-rate", type=_rate, default=0.0, help="share of bad lines, 0..1 (default 0)"
    )
    sample.add_argument(
        "--seed", type=int, default=None, help="random seed (default: from the date)"
    )
    sample.set_defaults(run=_run_sample)

    demo = commands.add_parser("demo", help="write a sample day and materialize every asset for it")
    demo.add_argument(
        "--date", type=_date, default=None, help="day to run (default: yesterday, UTC)"
    )
    demo.add_argument(
        "--events", type=_count, default=DEMO_EVENTS, help=f"sample lines (default {DEMO_EVENTS})"
    )
    demo.add_argument(
        "--bad-rate", type=_rate, default=DEMO_BAD_RATE, help=f"default {DEMO_BAD_RATE}"
    )
    demo.set_defaults(run=_run_demo)

    config_help = f"the YAML file (default: ${settings.CONFIG_ENV}, else {settings.DEFAULT_CONFIG})"
    validate = commands.add_parser(
        "validate", help="check a pipeline config file: errors and warnings"
    )
    validate.add_argument("config", nargs="?", default=None, help=config_help)
    validate.set_defaults(run=_run_validate)

    test_mapping = commands.add_parser(
        "test-mapping",
        help="run one event through every mapping of the config, offline (sends nothing)",
    )
    test_mapping.add_argument("--config", default=None, help=config_help)
    source = test_mapping.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--event", metavar="FILE", help="a JSON file holding one event, or - for stdin"
    )
    source.add_argument(
        "--date",
        type=_date,
        help="received-day of the raw archive to search, YYYY-MM-DD (with --message-id)",
    )
    test_mapping.add_argument("--message-id", help="the event's messageId in that day's archive")
    test_mapping.add_argument(
        "--all",
        action="store_true",
        help="also show payload and row for mappings whose trigger does not match",
    )
    test_mapping.set_defaults(run=_run_test_mapping)

    sandbox = commands.add_parser(
        "sandbox",
        help="serve the local stand-ins (S3 access point, Connect API, SFTP) on 127.0.0.1, "
        "around COMMAND if given",
    )
    sandbox.add_argument("--config", default=None, help=config_help)
    sandbox.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"where the Connect sandbox keeps signals, export jobs and SFTP files "
        f"(default: {SANDBOX_SUBFOLDER}/ in a local lake, ${settings.LAKE_ENV} else "
        f"{settings.DEFAULT_LAKE}; a temporary folder for an s3:// lake)",
    )
    sandbox.add_argument("--s3-port", type=int, default=0, help="default: a free port")
    sandbox.add_argument("--connect-port", type=int, default=0, help="default: a free port")
    sandbox.add_argument("--sftp-port", type=int, default=0, help="default: a free port")
    sandbox.add_argument(
        "--export-delay",
        type=float,
        default=5.0,
        help="seconds an export job takes before its file appears on SFTP (default 5)",
    )
    sandbox.add_argument(
        "--tier",
        choices=TIERS,
        default="ultimate",
        help="the Connect subscription tier: the signal types it accepts (default ultimate)",
    )
    sandbox.add_argument(
        "command", nargs=argparse.REMAINDER, help="run this with the sandbox's environment set"
    )
    sandbox.set_defaults(run=_run_sandbox)
    add_sftp_commands(commands)
    add_connections_commands(commands)
    add_instance_commands(commands)
    return parser


def _run_sample(args: argparse.Namespace) -> int:
    summary = write_sample_archive(
        open_location(args.out, s3_endpoint_url=settings.s3_endpoint_url()),
        args.date,
        events=args.events,
        bad_rate=args.bad_rate,
        seed=args.seed,
    )
    _print_sample(summary)
    return 0


def _print_sample(summary: SampleSummary) -> None:
    print(
        f"wrote {summary.lines:,} lines ({summary.uncompressed_bytes / max(summary.lines, 1):,.0f} bytes each "
        f"on average) in {len(summary.files)} files under {summary.archive_uri}/segment-logs/"
    )
    print(f"  expected accepted: {summary.expected_accepted:,}")
    for reason, count in sorted(summary.expected_rejects.items()):
        print(f"  expected {reason}: {count:,}")


def _run_demo(args: argparse.Namespace) -> int:
    # The code location is imported here only: the library itself never depends on Dagster.
    import dagster as dg

    from acoustic_pipelines.definitions import defs

    day = args.date or (datetime.now(UTC).date() - timedelta(days=1))
    if day < settings.start_date():
        print(
            f"--date {day} is before {settings.START_DATE_ENV} ({settings.start_date()})",
            file=sys.stderr,
        )
        return 2
    archive = settings.archive_location()
    summary = write_sample_archive(
        open_location(archive, s3_endpoint_url=settings.s3_endpoint_url()),
        day,
        events=args.events,
        bad_rate=args.bad_rate,
    )
    _print_sample(summary)
    config = _load_config_or_report(None)
    if config is None:
        return 1
    with ExitStack() as stack:
        if not uses_real_acoustic():
            saved = dict(os.environ)  # the sandbox's variables end with the demo
            stack.callback(lambda: (os.environ.clear(), os.environ.update(saved)))
            sandbox = sandbox_environment(config, folder=_sandbox_folder())
            os.environ.update(stack.enter_context(sandbox))
            print(f"S3 sandbox: {os.environ[settings.ACOUSTIC_S3_ENDPOINT_ENV]}")
            print(f"Connect sandbox: {os.environ[settings.ACOUSTIC_CONNECT_ENDPOINT_ENV]}")
        return _materialize_day(dg, defs, day)


def _sandbox_folder() -> Path | None:
    """`<lake>/_sandbox` for a local lake: kept and removed with the ledgers that refer to it.

    A second demo (or `make dev` after `make demo`) then finds the signals and export files the
    lake's ledgers record as sent and submitted. An s3:// lake gets a temporary sandbox.
    """
    lake = settings.lake_location()
    return None if "://" in lake else Path(lake) / SANDBOX_SUBFOLDER


def _materialize_day(dg: Any, defs: Any, day: date) -> int:
    """Run every asset of the code location for one day, in process; print outputs and checks."""
    if os.environ.get("DAGSTER_HOME"):
        prepare_instance(dagster_home())  # once, under a lock: other runs may open it now too
        instance = dg.DagsterInstance.get()
    else:
        instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        partition_key=day.isoformat(),
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    _print_outputs(result)
    if not result.success:
        print(f"demo run {result.run_id} failed; see the logs above", file=sys.stderr)
        return 1
    return 0


def _run_sandbox(args: argparse.Namespace) -> int:
    """`sandbox [-- COMMAND]`: print the variables, then serve until interrupted or COMMAND ends."""
    config = _load_config_or_report(args.config)
    if config is None:
        return 1
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with sandbox_environment(
        config,
        s3_port=args.s3_port,
        connect_port=args.connect_port,
        sftp_port=args.sftp_port,
        folder=args.dir or _sandbox_folder(),
        tier=args.tier,
        export_delay=args.export_delay,
    ) as environment:
        for name, value in environment.items():
            print(f"export {name}={shlex.quote(value)}", flush=True)
        if command:
            return subprocess.call(command, env={**os.environ, **environment})
        print("sandbox running on 127.0.0.1; Ctrl-C stops it", flush=True)
        with suppress(KeyboardInterrupt):
            signal.pause()
    return 0


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


def _load_config_or_report(path: str | None) -> PipelineConfig | None:
    """Load the config, printing its warnings, or print every problem and return None."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        for warning in exc.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(
            f"{exc.file}: {_plural(len(exc.problems), 'error')}, {_plural(len(exc.warnings), 'warning')}",
            file=sys.stderr,
        )
        return None
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return config


def _run_validate(args: argparse.Namespace) -> int:
    """`validate [CONFIG]`: errors and warnings on stderr, a summary on stdout; 1 on errors."""
    config = _load_config_or_report(args.config)
    if config is None:
        return 1
    enabled = sum(len(d.rules) for d in config.destinations)
    print(
        f"OK {config.source}: {_plural(len(config.destinations), 'destination')}, "
        f"{_plural(config.mapping_count, 'mapping')} ({enabled} enabled), "
        f"{_plural(len(config.signals.rules), 'signal rule')} "
        f"({len(config.signals.compiled_rules)} enabled, tier {config.signals.tier}), "
        f"{_plural(len(config.warnings), 'warning')}"
    )
    return 0


def _run_test_mapping(args: argparse.Namespace) -> int:
    """`test-mapping`: one event (file, stdin or archive) through every mapping of the config."""
    if args.date is not None and not args.message_id:
        print("test-mapping: --date needs --message-id", file=sys.stderr)
        return 2
    if args.event is not None and args.message_id:
        print("test-mapping: --message-id goes with --date, not with --event", file=sys.stderr)
        return 2
    config = _load_config_or_report(args.config)
    if config is None:
        return 1
    try:
        if args.event is not None:
            loaded = read_event(args.event)
        else:
            archive = settings.archive_location()
            loaded = find_archived_event(
                open_location(archive, s3_endpoint_url=settings.s3_endpoint_url()),
                args.date,
                args.message_id,
            )
    except (MappingTestError, StorageError) as exc:
        print(f"test-mapping: {exc}", file=sys.stderr)
        if args.date is not None:
            print(
                f"  (the archive is ${settings.ARCHIVE_ENV}, else {settings.DEFAULT_ARCHIVE})",
                file=sys.stderr,
            )
        return 1
    _print_test_mapping(
        run_test_mapping(config, loaded.event, source=loaded.source), show_all=args.all
    )
    return 0


def _print_test_mapping(result: MappingTestResult, *, show_all: bool) -> None:
    event = result.event
    name = (
        f" {json.dumps(event['event'], ensure_ascii=False)}"
        if isinstance(event.get("event"), str)
        else ""
    )
    print(
        f"event {event.get('messageId', '(no messageId)')} ({event.get('type', '?')}{name}) from {result.source}"
    )
    for destination in result.destinations:
        print(f"\ndestination {destination.name} (customer prefix {destination.customer_prefix})")
        for outcome in destination.outcomes:
            _print_outcome(outcome, show_all=show_all)
        delivered = sum(o.delivered for o in destination.outcomes)
        if destination.no_matching_mapping:
            print(
                '  => no enabled mapping matches: the pipeline counts this event as "no matching mapping"'
            )
        else:
            print(f"  => {_plural(delivered, 'row')} delivered")


def _print_outcome(outcome: MappingOutcome, *, show_all: bool) -> None:
    state = "matched" if outcome.matched else "not matched"
    disabled = " (disabled: the pipeline skips it)" if not outcome.enabled else ""
    print(f"  mapping {outcome.name!r}{disabled}: trigger `{outcome.trigger}` {state}")
    if outcome.error is not None:
        print(f"    error: {outcome.error}")
        return
    if not outcome.matched and not show_all:
        return
    print("    mapped payload:")
    print(_indent(json.dumps(outcome.payload, indent=2, ensure_ascii=False, default=str), 6))
    if outcome.reject_code is not None:
        print(f"    rejected: {outcome.reject_code}: {outcome.reject_detail}")
        return
    row = outcome.row or {}
    print(f"    row ({_plural(len(row), 'column')}):")
    print(_indent(json.dumps(row, indent=2, ensure_ascii=False, default=str), 6))
    delivered = set(outcome.delivered_columns)
    dropped = [key for key in row if key not in delivered]
    if dropped:
        print(f"    not delivered (columns allow-list): {', '.join(dropped)}")
    if outcome.collisions:
        print(f"    keys written twice: {', '.join(outcome.collisions)}")


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-20") from None


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be ≥ 0")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be within 0..1")
    return value


if __name__ == "__main__":
    sys.exit(main())
