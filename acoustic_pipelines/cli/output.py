"""What several commands print: the sample archive's summary and a config's problems."""

from __future__ import annotations

import sys

from acoustic_pipelines.config.loading import ConfigError, PipelineConfig, load_config
from acoustic_pipelines.segment.sample import SampleSummary


def print_sample(summary: SampleSummary) -> None:
    """The lines written and the reject reasons deliberately among them."""
    print(
        f"wrote {summary.lines:,} lines ({summary.uncompressed_bytes / max(summary.lines, 1):,.0f} bytes each "
        f"on average) in {len(summary.files)} files under {summary.archive_uri}/segment-logs/"
    )
    print(f"  expected accepted: {summary.expected_accepted:,}")
    for reason, count in sorted(summary.expected_rejects.items()):
        print(f"  expected {reason}: {count:,}")


def load_config_or_report(path: str | None) -> PipelineConfig | None:
    """Load the config, printing its warnings, or print every problem and return None."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        for warning in exc.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(
            f"{exc.file}: {plural(len(exc.problems), 'error')}, {plural(len(exc.warnings), 'warning')}",
            file=sys.stderr,
        )
        return None
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return config


def plural(count: int, noun: str) -> str:
    """`1 row`, `2 rows`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
