"""Throughput and peak memory of the Acoustic delivery: raw partition → mapped Parquet → CSV objects.

    python benchmarks/bench_delivery.py --events 1000000 [--keep]

Writes (or reuses, under benchmarks/out/) a sample archive of one day and ingests it into a lake
(not measured), then runs, each in a fresh process so that peak RSS belongs to that run alone:

- `map`: `map_day` with config/pipeline.yaml (every destination's mappings → flat Parquet);
- `deliver`: `deliver_csv` of every destination's mapped rows to an S3 endpoint on 127.0.0.1
  (moto's server, in its own process so its memory is not counted).

Prints events/s and peak RSS of `map`, rows/s, CSV MB/s and peak RSS of `deliver`. Run by hand;
never part of the pass/fail suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_raw_events import DAY, OUT, prepare_archive  # noqa: E402

BUCKET = "bench-delivery"


def main() -> None:
    """Parse arguments; run the parent (orchestrating) or a child (measured) role."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--bad-rate", type=float, default=0.005)
    parser.add_argument("--keep", action="store_true", help="keep archive and lake for next time")
    parser.add_argument("--child", choices=["map", "deliver"], help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (
            run_map(args.lake) if args.child == "map" else run_deliver(args.lake, args.endpoint)
        )
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    archive = prepare_archive(args.events, args.bad_rate)
    lake = prepare_lake(archive)
    try:
        mapped = measure("map", lake)
        with moto_server() as endpoint:
            delivered = measure("deliver", lake, endpoint)
        report(mapped, delivered)
    finally:
        if not args.keep:
            shutil.rmtree(archive, ignore_errors=True)
            shutil.rmtree(lake, ignore_errors=True)


def prepare_lake(archive: Path) -> Path:
    """Ingest the archive's day into a lake beside it (once)."""
    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.segment.raw_events import ingest_day
    from acoustic_pipelines.storage import open_location

    lake = OUT / f"lake-{archive.name}"
    if not (lake / "segment" / "raw_events").is_dir():
        ingest_day(open_location(str(archive)), Lake(open_location(str(lake))), DAY)
    return lake


def measure(role: str, lake: Path, endpoint: str = "") -> dict:
    """Run one role in a fresh interpreter and return what it measured."""
    command = [sys.executable, __file__, "--child", role, "--lake", str(lake)]
    out = subprocess.run(
        [*command, "--endpoint", endpoint] if endpoint else command,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_map(lake_dir: str) -> dict:
    """`map_day` over the whole day with the default config."""
    from acoustic_pipelines.acoustic.mapped_events import map_day
    from acoustic_pipelines.config.loading import load_config
    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.storage import open_location

    destinations = load_config().destinations
    started = time.perf_counter()
    report = map_day(Lake(open_location(lake_dir)), DAY, destinations, on_progress=lambda _: None)
    return {
        "events": report.events_read,
        "rows": report.rows,
        "rejected": report.rejected,
        "columns": sum(len(d.columns) for d in report.destinations),
        "seconds": time.perf_counter() - started,
    }


def run_deliver(lake_dir: str, endpoint: str) -> dict:
    """`deliver_csv` of every destination's mapped rows to the S3 endpoint."""
    import boto3

    from acoustic_pipelines.acoustic.csv_delivery import deliver_csv
    from acoustic_pipelines.acoustic.mapped_events import iter_mapped_batches
    from acoustic_pipelines.config.loading import load_config
    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.storage import open_location

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    client.create_bucket(Bucket=BUCKET)
    lake = Lake(open_location(lake_dir))
    rows = size = 0
    started = time.perf_counter()
    for destination in load_config().destinations:
        schema, batches = iter_mapped_batches(lake, DAY, destination.name)
        report = deliver_csv(
            client,
            bucket=BUCKET,
            customer_prefix=destination.customer_prefix,
            day=DAY,
            schema=schema,
            batches=batches,
        )
        rows += report.total_rows
        size += report.total_bytes
    return {"rows": rows, "bytes": size, "seconds": time.perf_counter() - started}


class moto_server:  # noqa: N801 (used as a context manager, like a function)
    """moto's S3 server on a free 127.0.0.1 port, in its own process."""

    def __enter__(self) -> str:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return f"http://127.0.0.1:{port}"
            time.sleep(0.1)
        raise RuntimeError("moto's server did not start")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait()


def report(mapped: dict, delivered: dict) -> None:
    """Print the figures."""
    print(
        f"\nmap      {mapped['events']:,} events → {mapped['rows']:,} rows, {mapped['rejected']:,} "
        f"rejects, {mapped['columns']} columns: {mapped['events'] / mapped['seconds']:,.0f} events/s, "
        f"{mapped['seconds']:.1f} s, peak RSS {mapped['peak_rss_mb']:,.0f} MB"
    )
    print(
        f"deliver  {delivered['rows']:,} rows, {delivered['bytes'] / 1e6:,.0f} MB of CSV: "
        f"{delivered['rows'] / delivered['seconds']:,.0f} rows/s, "
        f"{delivered['bytes'] / 1e6 / delivered['seconds']:,.1f} MB/s, {delivered['seconds']:.1f} s, "
        f"peak RSS {delivered['peak_rss_mb']:,.0f} MB"
    )


if __name__ == "__main__":
    main()
