"""Throughput and peak memory of a Segment Connections sync against the Tracking API sandbox.

    python benchmarks/bench_connections.py --rows 1000000
    python benchmarks/bench_connections.py --rows 200000 --ledger postgres

Writes a DuckDB warehouse with a `customers` model of --rows rows (not measured), then runs, each
in a fresh process so that peak RSS belongs to that step alone:

- `read`: the warehouse's own time to read the model (`SELECT *` into Arrow batches);
- `first`: the first sync (every row added, sent as identify calls);
- `unchanged`: a sync with nothing changed (the diff alone: read, hash, compare);
- `changed`: a sync after 5 % of the rows changed (only those are mapped and sent);
- `floor`: what those 5 % cost with no diff and no ledger at all: building their messages with
  the compiled mapping, then posting them to the sandbox (fresh message ids).

The ledger is a SQLite file beside the warehouse, or with `--ledger postgres` a database on a
PostgreSQL server the benchmark starts itself (the `pgserver` wheel, as the tests do; Unix
socket). The Tracking API sandbox runs in its own process (its memory is not counted). Prints
seconds, records/s and peak RSS per step, and the ratios: the sync with nothing changed against
the read (goal ≤ 2), the 5 %-change sync against the read and against the floor (goal ≤ 2).
Run by hand; never part of the pass/fail suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WRITE_KEY = "bench-write-key"
MODEL = {
    "name": "customers",
    "table": "customers",
    "primary_key": "id",
    "mappings": [
        {
            "name": "Customer Traits",
            "send": "added_or_updated",
            "action": "sendIdentify",
            "mapping": {
                "user_id": {"@path": "$.properties.email"},
                "traits": {
                    "plan": {"@path": "$.properties.plan"},
                    "ltv": {"@path": "$.properties.ltv"},
                    "churn_score": {"@path": "$.properties.churn_score"},
                },
            },
        }
    ],
}


def main() -> None:
    """Parse arguments; run the orchestrating parent or a measured child."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ledger", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--child", choices=["read", "sync", "floor", "sandbox"], help=argparse.SUPPRESS
    )
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--ledger-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "sandbox":
        serve_sandbox(Path(args.dir))
        return
    if args.child:
        folder = Path(args.dir)
        if args.child == "sync":
            result = run_sync(folder, args.endpoint, args.ledger_url)
        else:
            result = {"read": run_read, "floor": run_floor}[args.child](folder, args.endpoint)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="bench-connections-") as folder:
        if args.ledger == "postgres":
            import pgserver
            import psycopg

            server = pgserver.get_server(Path(folder) / "postgres", cleanup_mode="stop")
            try:
                url = server.get_uri()
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute('CREATE DATABASE "bench_ledger"')
                run_parent(Path(folder), args.rows, url.replace("/postgres?", "/bench_ledger?", 1))
            finally:
                server.cleanup()
        else:
            run_parent(Path(folder), args.rows, str(Path(folder) / "ledger.sqlite"))


def run_parent(folder: Path, rows: int, ledger: str) -> None:
    """Write the warehouse, start the sandbox, run and report the steps."""
    import duckdb

    warehouse = folder / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT range AS id, 'user' || range || '@example.com' AS email, "
            "CASE range % 3 WHEN 0 THEN 'free' WHEN 1 THEN 'pro' ELSE 'max' END AS plan, "
            "round(random() * 1000, 2) AS ltv, random() AS churn_score, "
            f"TIMESTAMPTZ '2026-01-01' + to_seconds(range) AS signed_up FROM range({rows})"
        )
    sandbox = subprocess.Popen(
        [sys.executable, __file__, "--child", "sandbox", "--dir", str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        endpoint = sandbox.stdout.readline().strip()
        read = child("read", folder, endpoint)
        first = child("sync", folder, endpoint, ledger)
        unchanged = child("sync", folder, endpoint, ledger)
        with duckdb.connect(str(warehouse)) as con:
            con.execute("UPDATE customers SET plan = 'enterprise' WHERE id % 20 = 0")
        changed = child("sync", folder, endpoint, ledger)
        floor = child("floor", folder, endpoint)
    finally:
        sandbox.terminate()
        sandbox.wait()
    print(f"rows: {rows:,}, ledger: {'PostgreSQL' if ledger.startswith('postgres') else 'SQLite'}")
    print(
        f"read     : {read['seconds']:.2f}s  {rows / read['seconds']:,.0f} rows/s  "
        f"peak {read['peak_rss_mb']:.0f} MB"
    )
    for name, step in (("first", first), ("unchanged", unchanged), ("changed", changed)):
        sent = step["sent"]
        print(
            f"{name:9}: {step['seconds']:.2f}s  {rows / step['seconds']:,.0f} records/s diffed, "
            f"{sent:,} sent ({sent / step['seconds']:,.0f}/s)  peak {step['peak_rss_mb']:.0f} MB  "
            f"{step['seconds'] / read['seconds']:.1f}x the read"
        )
    floor_seconds = floor["build_seconds"] + floor["send_seconds"]
    print(
        f"floor    : {floor_seconds:.2f}s: {floor['messages']:,} messages built in "
        f"{floor['build_seconds']:.2f}s ({floor['build_seconds'] / read['seconds']:.1f}x the "
        f"read), sent in {floor['send_seconds']:.2f}s "
        f"({floor['send_seconds'] / read['seconds']:.1f}x the read)"
    )
    print(
        f"(a) nothing-changed sync / read: {unchanged['seconds'] / read['seconds']:.2f}x "
        "(goal <= 2)"
    )
    print(f"    5%-change sync / read: {changed['seconds'] / read['seconds']:.2f}x")
    print(f"(b) 5%-change sync / floor: {changed['seconds'] / floor_seconds:.2f}x (goal <= 2)")


def run_read(folder: Path, endpoint: str) -> dict[str, float]:
    """The warehouse's own read of the model into Arrow."""
    from acoustic_pipelines.connections.warehouse import read_model

    started = time.perf_counter()
    rows = sum(
        b.num_rows for b in read_model(str(folder / "warehouse.duckdb"), "SELECT * FROM customers")
    )
    return {"seconds": time.perf_counter() - started, "rows": rows}


def model_config() -> Any:
    """The benchmark's model, parsed like the pipeline's config file."""
    import yaml

    from acoustic_pipelines.config.loading import parse_config

    config = parse_config(yaml.safe_dump({"destinations": [], "connections": {"models": [MODEL]}}))
    assert config.connections is not None
    return config.connections.models[0]


def run_sync(folder: Path, endpoint: str, ledger_location: str) -> dict[str, float]:
    """One sync of the model (ledger: a SQLite file or a PostgreSQL URL)."""
    import pandas  # noqa: F401  (DuckDB's Arrow scan imports it once: process start-up, not sync)

    from acoustic_pipelines.connections.ledger import SyncLedger
    from acoustic_pipelines.connections.sender import TrackingApiSender
    from acoustic_pipelines.connections.sync import sync_model
    from acoustic_pipelines.connections.warehouse import read_model
    from acoustic_pipelines.database import open_database

    model = model_config()
    ledger = SyncLedger(
        open_database(ledger_location, name="bench"), snapshot_cache=folder / "snapshots"
    )
    sender = TrackingApiSender(endpoint=endpoint, write_key=WRITE_KEY)
    started = time.perf_counter()
    report = sync_model(
        model,
        read_model(str(folder / "warehouse.duckdb"), model.sql),
        ledger=ledger,
        sender=sender,
        retry_days=14,
        workdir=folder,
    )
    return {
        "seconds": time.perf_counter() - started,
        "sent": report.mappings["Customer Traits"].sent,
        "failed": report.mappings["Customer Traits"].failed,
    }


def run_floor(folder: Path, endpoint: str) -> dict[str, float]:
    """The changed rows' messages alone: built with the compiled mapping, then posted."""
    import duckdb
    import orjson

    from acoustic_pipelines.connections.sender import Outgoing, TrackingApiSender, message_size

    mapping = model_config().enabled_mappings[0]
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as con:
        rows = [
            orjson.loads(text)
            for (text,) in con.execute(
                "SELECT to_json(c)::VARCHAR FROM customers c WHERE id % 20 = 0"
            ).fetchall()
        ]
    started = time.perf_counter()
    outgoing = []
    for index, row in enumerate(rows):
        message_id = f"floor-{index}"
        event = {"type": "track", "event": "updated", "messageId": message_id, "properties": row}
        message = mapping.build(event)
        outgoing.append(Outgoing(message_id, message, message_size(message)))
    built = time.perf_counter()
    sender = TrackingApiSender(endpoint=endpoint, write_key=WRITE_KEY)
    sender.send(outgoing, on_batch=lambda outcome: None)
    return {
        "messages": len(outgoing),
        "build_seconds": built - started,
        "send_seconds": time.perf_counter() - built,
    }


def serve_sandbox(folder: Path) -> None:
    """The Tracking API sandbox, until terminated; prints its endpoint first."""
    from acoustic_pipelines.sandbox.tracking_api import serve_tracking_api

    with serve_tracking_api(archive=folder / "archive", write_key=WRITE_KEY) as sandbox:
        print(sandbox.endpoint, flush=True)
        while True:
            time.sleep(1)


def child(role: str, folder: Path, endpoint: str, ledger: str = "") -> dict[str, float]:
    """Run one measured step in a fresh process."""
    output = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            role,
            "--dir",
            str(folder),
            "--endpoint",
            endpoint,
            "--ledger-url",
            ledger,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
