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
from contextlib import suppress
from datetime import date
from pathlib import Path

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
from acoustic_pipelines.cli.demo import SANDBOX_SUBFOLDER, add_demo_command, sandbox_folder
from acoustic_pipelines.cli.instance import add_instance_commands
from acoustic_pipelines.cli.output import load_config_or_report, plural, print_sample
from acoustic_pipelines.cli.sftp import add_sftp_commands
from acoustic_pipelines.connect.signals.content import TIERS
from acoustic_pipelines.sandbox.environment import sandbox_environment
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import StorageError, open_location


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("acoustic_pipelines").setLevel(logging.INFO)
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as other command-line tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the flush at exit must not fail again
        return 128 + signal.SIGPIPE
    return code


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

    add_demo_command(commands, count=_count, rate=_rate, day=_date)

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
        help="serve the local stand-ins (S3 access point, Connect API, SFTP, Segment's Tracking "
        "API with a sample warehouse) on 127.0.0.1, around COMMAND if given",
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
        "--received-day",
        type=_date,
        default=None,
        help="Segment Connections: the Tracking API stamps receivedAt on this UTC day (so the "
        "calls land in that day of the archive) and the sample warehouse is that day's "
        "(default: now)",
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
    print_sample(summary)
    return 0


def _run_sandbox(args: argparse.Namespace) -> int:
    """`sandbox [-- COMMAND]`: print the variables, then serve until interrupted or COMMAND ends."""
    config = load_config_or_report(args.config)
    if config is None:
        return 1
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with sandbox_environment(
        config,
        s3_port=args.s3_port,
        connect_port=args.connect_port,
        sftp_port=args.sftp_port,
        folder=args.dir or sandbox_folder(),
        tier=args.tier,
        export_delay=args.export_delay,
        received_day=args.received_day,
    ) as environment:
        for name, value in environment.items():
            print(f"export {name}={shlex.quote(value)}", flush=True)
        if command:
            return subprocess.call(command, env={**os.environ, **environment})
        print("sandbox running on 127.0.0.1; Ctrl-C stops it", flush=True)
        with suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def _run_validate(args: argparse.Namespace) -> int:
    """`validate [CONFIG]`: errors and warnings on stderr, a summary on stdout; 1 on errors."""
    config = load_config_or_report(args.config)
    if config is None:
        return 1
    enabled = sum(len(d.rules) for d in config.destinations)
    print(
        f"OK {config.source}: {plural(len(config.destinations), 'destination')}, "
        f"{plural(config.mapping_count, 'mapping')} ({enabled} enabled), "
        f"{plural(len(config.signals.rules), 'signal rule')} "
        f"({len(config.signals.compiled_rules)} enabled, tier {config.signals.tier}), "
        f"{plural(len(config.warnings), 'warning')}"
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
    config = load_config_or_report(args.config)
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
            print(f"  => {plural(delivered, 'row')} delivered")


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
    print(f"    row ({plural(len(row), 'column')}):")
    print(_indent(json.dumps(row, indent=2, ensure_ascii=False, default=str), 6))
    delivered = set(outcome.delivered_columns)
    dropped = [key for key in row if key not in delivered]
    if dropped:
        print(f"    not delivered (columns allow-list): {', '.join(dropped)}")
    if outcome.collisions:
        print(f"    keys written twice: {', '.join(outcome.collisions)}")


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


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
