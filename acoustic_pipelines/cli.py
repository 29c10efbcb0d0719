"""The `acoustic-pipelines` command: `sample` writes a Segment archive, `demo` runs the daily pipeline."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from acoustic_pipelines import settings
from acoustic_pipelines.segment.sample import SampleSummary, write_sample_archive
from acoustic_pipelines.storage import open_location

DEMO_EVENTS = 20_000
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
    sample.add_argument("--events", type=_count, default=100_000, help="lines to write (default 100000)")
    sample.add_argument("--out", required=True, help="archive root: a folder or s3://bucket/prefix")
    sample.add_argument("--bad-rate", type=_rate, default=0.0, help="share of bad lines, 0..1 (default 0)")
    sample.add_argument("--seed", type=int, default=None, help="random seed (default: from the date)")
    sample.set_defaults(run=_run_sample)

    demo = commands.add_parser("demo", help="write a sample day and materialize every asset for it")
    demo.add_argument("--date", type=_date, default=None, help="day to run (default: yesterday, UTC)")
    demo.add_argument("--events", type=_count, default=DEMO_EVENTS, help=f"sample lines (default {DEMO_EVENTS})")
    demo.add_argument("--bad-rate", type=_rate, default=DEMO_BAD_RATE, help=f"default {DEMO_BAD_RATE}")
    demo.set_defaults(run=_run_demo)
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
    print(f"wrote {summary.lines:,} lines ({summary.uncompressed_bytes / max(summary.lines, 1):,.0f} bytes each "
          f"on average) in {len(summary.files)} files under {summary.archive_uri}/segment-logs/")
    print(f"  expected accepted: {summary.expected_accepted:,}")
    for reason, count in sorted(summary.expected_rejects.items()):
        print(f"  expected {reason}: {count:,}")


def _run_demo(args: argparse.Namespace) -> int:
    # The code location is imported here only: the library itself never depends on Dagster.
    import dagster as dg

    from acoustic_pipelines.definitions import defs

    day = args.date or (datetime.now(UTC).date() - timedelta(days=1))
    if day < settings.start_date():
        print(f"--date {day} is before {settings.START_DATE_ENV} ({settings.start_date()})", file=sys.stderr)
        return 2
    archive = settings.archive_location()
    summary = write_sample_archive(
        open_location(archive, s3_endpoint_url=settings.s3_endpoint_url()),
        day,
        events=args.events,
        bad_rate=args.bad_rate,
    )
    _print_sample(summary)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
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


def _print_outputs(result: Any) -> None:
    print(f"\nrun {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        metadata = {key: value.value for key, value in materialization.metadata.items()}
        print(f"  {materialization.asset_key.to_user_string()} [{materialization.partition}]")
        for key, value in metadata.items():
            if key.endswith("_path") or key in _SHOWN_COUNTS:
                print(f"    {key}: {value:,}" if isinstance(value, int) else f"    {key}: {value}")
    for evaluation in result.get_asset_check_evaluations():
        status = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        print(f"  check {evaluation.asset_key.to_user_string()}:{evaluation.check_name}: {status}")


_SHOWN_COUNTS = ("lines_read", "accepted", "rejected", "duplicates", "files", "distinct_user_ids")


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
