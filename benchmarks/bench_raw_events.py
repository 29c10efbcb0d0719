"""Throughput and peak memory of `segment/raw_events` ingestion, against a plain-Python reference.

    python benchmarks/bench_raw_events.py --events 1000000 [--bad-rate 0.005] [--keep]

Writes a sample archive of one day (cached under benchmarks/out/), then runs, each in a fresh
process so that peak RSS belongs to that run alone:

- `ingest`: the library's `ingest_day` (gzip → parse → validate → dedupe → Parquet in the lake);
- `reference`: the same work written plainly — `gzip.open`, `json.loads`, the same Spec rules via
  `validate_event`, a dict for dedupe, the whole day collected in Python lists and written at the end.

Both get the same input; their accepted/rejected/duplicate counts are compared, then events per
second, peak RSS and the ratios are printed. Run by hand; never part of the pass/fail suite.
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

DAY = date(2026, 11, 20)
OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    """Parse arguments; run the parent (orchestrating) or a child (measured) role."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bad-rate", type=float, default=0.005)
    parser.add_argument("--skip-reference", action="store_true", help="measure the library only")
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated archive for the next run"
    )
    parser.add_argument("--child", choices=["ingest", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--archive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_ingest(args.archive) if args.child == "ingest" else run_reference(args.archive)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    archive = prepare_archive(args.events, args.bad_rate)
    try:
        results = {"ingest": measure("ingest", archive)}
        if not args.skip_reference:
            results["reference"] = measure("reference", archive)
        report(args, results)
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


def measure(role: str, archive: Path) -> dict:
    """Run one role in a fresh interpreter and return what it measured."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", role, "--archive", str(archive)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_ingest(archive: str) -> dict:
    """The library's ingestion into a temporary lake."""
    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.segment.raw_events import ingest_day
    from acoustic_pipelines.storage import open_location

    with tempfile.TemporaryDirectory() as lake_dir:
        started = time.perf_counter()
        report = ingest_day(
            open_location(archive), Lake(open_location(lake_dir)), DAY, on_progress=lambda _: None
        )
        seconds = time.perf_counter() - started
    return {
        "lines": report.lines_read,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "duplicates": report.duplicates,
        "seconds": seconds,
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


def report(args: argparse.Namespace, results: dict[str, dict]) -> None:
    """Print the figures and the ratios."""
    print(f"\n{args.events:,} events, bad rate {args.bad_rate}, one process each (ru_maxrss)")
    print(
        f"{'run':<10} {'events/s':>10} {'seconds':>8} {'peak RSS MB':>12} {'accepted':>10} {'rejected':>9} {'dups':>6}"
    )
    for role, r in results.items():
        print(
            f"{role:<10} {r['lines'] / r['seconds']:>10,.0f} {r['seconds']:>8.1f} {r['peak_rss_mb']:>12,.0f} "
            f"{r['accepted']:>10,} {r['rejected']:>9,} {r['duplicates']:>6,}"
        )
    if "reference" in results:
        ours, ref = results["ingest"], results["reference"]
        same = all(ours[k] == ref[k] for k in ("lines", "accepted", "rejected", "duplicates"))
        print(
            f"speed ratio (ingest / reference): {ref['seconds'] / ours['seconds']:.2f}x; "
            f"memory ratio: {ours['peak_rss_mb'] / ref['peak_rss_mb']:.2f}; same counts: {same}"
        )


if __name__ == "__main__":
    main()
