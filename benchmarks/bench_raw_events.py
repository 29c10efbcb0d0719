"""Throughput and peak memory of `segment/raw_events` ingestion, against a plain-Python reference.

    python benchmarks/bench_raw_events.py --events 1000000 [--bad-rate 0.005] [--workers 1 2] [--keep]

Writes a sample archive of one day (cached under benchmarks/out/), then runs, each in a fresh
process so that peak RSS belongs to that run alone:

- `ingest` for each worker count: the library's `ingest_day` (gzip → typed decode → validate →
  exact dedupe → Parquet in the lake) with `workers=N`; the peak RSS is per process of the run
  (the coordinator and each worker, sampled from /proc, see bench_day.py);
- `reference`: the same work written plainly — `gzip.open`, `json.loads`, the same Spec rules via
  `validate_event`, a dict for dedupe, the whole day collected in Python lists and written at the end.

All get the same input; their accepted/rejected/duplicate counts are compared, then events per
second, peak RSS and the ratios are printed. Segment's engine has no archive ingest to compare
with; its stream mode (read + JSON.parse + mappings, `oracle.py`) on the same day's valid lines is
the nearest figure and is printed beside ours, labelled as such (the whole day against Segment's
engine is bench_day.py). Run by hand; never part of the pass/fail suite.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle import ratio_text, run_oracle  # noqa: E402

DAY = date(2026, 11, 20)
OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    """Parse arguments; run the parent (orchestrating) or a child (measured) role."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bad-rate", type=float, default=0.005)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-reference", action="store_true", help="measure the library only")
    parser.add_argument("--skip-segment", action="store_true", help="do not run Segment's engine")
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated archive for the next run"
    )
    parser.add_argument("--child", choices=["ingest", "reference", "lines"], help=argparse.SUPPRESS)
    parser.add_argument("--archive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "ingest":
            result = run_ingest(args.archive, args.workers[0])
        else:
            result = run_reference(args.archive)
            result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    archive = prepare_archive(args.events, args.bad_rate)
    try:
        results = {f"ingest x{w}": measure("ingest", archive, w) for w in args.workers}
        if not args.skip_reference:
            results["reference"] = measure("reference", archive)
        segment = None if args.skip_segment else run_oracle(valid_lines(archive))
        report(args, results, segment)
    finally:
        if not args.keep:
            shutil.rmtree(archive, ignore_errors=True)


def prepare_archive(events: int, bad_rate: float) -> Path:
    """Write (or reuse) the sample archive for this size and bad rate."""
    from acoustic_pipelines.segment.sample import write_sample_archive
    from acoustic_pipelines.storage import open_location

    archive = OUT / f"archive-{events}-{bad_rate}"
    if not (archive / "segment-logs").is_dir():
        started = time.perf_counter()
        summary = write_sample_archive(
            open_location(str(archive)), DAY, events=events, bad_rate=bad_rate
        )
        print(
            f"generated {summary.lines:,} lines, {summary.uncompressed_bytes / 1e6:,.0f} MB uncompressed, "
            f"in {time.perf_counter() - started:.0f}s"
        )
    return archive


def measure(role: str, archive: Path, workers: int = 1) -> dict:
    """Run one role in a fresh interpreter and return what it measured."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            role,
            "--archive",
            str(archive),
            "--workers",
            str(workers),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def valid_lines(archive: Path) -> Path:
    """The day's lines that Segment's engine can read (JSON objects), as one JSONL file, once."""
    import orjson

    target = archive / "valid-events.jsonl"
    if not target.exists():
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for path in sorted((archive / "segment-logs").glob("*/*/*.gz")):
                with gzip.open(path, "rb") as source:
                    for line in source:
                        try:
                            if isinstance(orjson.loads(line), dict):
                                out.write(line.rstrip(b"\n") + b"\n")
                        except orjson.JSONDecodeError:
                            continue
        partial.rename(target)
    return target


def run_ingest(archive: str, workers: int) -> dict:
    """The library's ingestion into a temporary lake with `workers` processes."""
    from bench_day import _MemorySampler

    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.segment.raw_events import ingest_day
    from acoustic_pipelines.storage import open_location

    sampler = _MemorySampler(os.getpid())
    sampler.start()
    with tempfile.TemporaryDirectory() as lake_dir:
        started = time.perf_counter()
        report = ingest_day(
            open_location(archive),
            Lake(open_location(lake_dir)),
            DAY,
            workers=workers,
            on_progress=lambda _: None,
        )
        seconds = time.perf_counter() - started
    sampler.stop()
    return {
        "lines": report.lines_read,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "duplicates": report.duplicates,
        "seconds": seconds,
        "workers": report.workers,
        "peak_rss_mb": max(sampler.peak_by_pid.values(), default=0) / 1024,
        "whole_mb": sampler.peak_sum / 1024,
    }


def run_reference(archive: str) -> dict:
    """The plain version: stdlib gzip and json, a dict for dedupe, everything held until the end."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from acoustic_pipelines.segment.archive import day_folder
    from acoustic_pipelines.segment.spec import MAX_EVENT_BYTES, SpecViolation, validate_event

    started = time.perf_counter()
    files = sorted(Path(archive, "segment-logs").glob(f"*/{day_folder(DAY)}/*.gz"))
    kept: dict[str, tuple] = {}
    rejected: list[tuple] = []
    duplicates: list[tuple] = []
    lines = 0
    for path in files:
        with gzip.open(path, "rb") as stream:
            for number, raw in enumerate(stream, start=1):
                lines += 1
                line = raw.rstrip(b"\n")
                try:
                    if len(line) > MAX_EVENT_BYTES:
                        raise ValueError("too large")
                    event = json.loads(line)
                    if not isinstance(event, dict):
                        raise ValueError("not an object")
                    _, received = validate_event(event)
                except (ValueError, SpecViolation, RecursionError) as exc:
                    rejected.append((str(path), number, str(exc), line.decode("utf-8", "replace")))
                    continue
                row = (
                    event["messageId"],
                    event["type"],
                    event.get("event"),
                    event.get("userId"),
                    event.get("anonymousId"),
                    event.get("timestamp"),
                    received,
                    path.parent.parent.name,
                    line.decode(),
                )
                previous = kept.get(row[0])
                if previous is None or received < previous[6]:
                    if previous is not None:
                        duplicates.append(previous)
                    kept[row[0]] = row
                else:
                    duplicates.append(row)
    names = [
        "message_id",
        "type",
        "event",
        "user_id",
        "anonymous_id",
        "timestamp",
        "received_at",
        "source_id",
        "payload",
    ]
    with tempfile.TemporaryDirectory() as out:
        table = pa.table({n: [r[i] for r in kept.values()] for i, n in enumerate(names)})
        pq.write_table(table, f"{out}/raw.parquet", compression="zstd")
        pq.write_table(
            pa.table({"raw": [r[3] for r in rejected] + [r[8] for r in duplicates]}),
            f"{out}/rej.parquet",
        )
    return {
        "lines": lines,
        "accepted": len(kept),
        "rejected": len(rejected),
        "duplicates": len(duplicates),
        "seconds": time.perf_counter() - started,
    }


def report(args: argparse.Namespace, results: dict[str, dict], segment: dict | None) -> None:
    """Print the figures and the ratios."""
    print(
        f"\n{args.events:,} events, bad rate {args.bad_rate}; peak RSS: the largest process of "
        f"the run (coordinator or worker), and the run's whole PSS"
    )
    print(
        f"{'run':<10} {'events/s':>10} {'seconds':>8} {'peak RSS MB':>12} {'whole MB':>9} "
        f"{'accepted':>10} {'rejected':>9} {'dups':>6}"
    )
    for role, r in results.items():
        print(
            f"{role:<10} {r['lines'] / r['seconds']:>10,.0f} {r['seconds']:>8.1f} "
            f"{r['peak_rss_mb']:>12,.0f} {r.get('whole_mb', r['peak_rss_mb']):>9,.0f} "
            f"{r['accepted']:>10,} {r['rejected']:>9,} {r['duplicates']:>6,}"
        )
    keys = ("lines", "accepted", "rejected", "duplicates")
    first = next(iter(results.values()))
    print(
        f"same counts in every run: {all(r[k] == first[k] for r in results.values() for k in keys)}"
    )
    ref = results.get("reference")
    for role, ours in results.items():
        if role == "reference":
            continue
        line = f"{role}: {ours['lines'] / ours['seconds']:,.0f} events/s on {ours['workers']} process(es)"
        if ref:
            line += f", {ref['seconds'] / ours['seconds']:.2f}x the plain-Python reference"
        if segment:
            line += (
                f"; vs Segment's engine (stream mode: read + JSON.parse + mappings, one core, "
                f"not an ingest) {ratio_text(ours['lines'] / ours['seconds'], segment)}"
            )
        print(line)
    if segment is None and not args.skip_segment:
        print("Segment's engine not measured (see above): no ratio against it")


if __name__ == "__main__":
    main()
