"""Signal rules against the Actions engine per event, and `push_day` to the Connect sandbox.

    python benchmarks/bench_signals.py [--rule-events 50000] [--repeat 3]
        [--signals 200000] [--concurrency 1 2 4 8] [--skip-push] [--keep]

Rule evaluation (issue 15 goal 3): `connect/signal_pushes` runs the same compiled triggers and
mappings as the engine. On one sample archive day decompressed to JSONL (the events
`bench_actions.py` uses), each in a fresh process, best of `--repeat`:

- `engine`: read + parse + the destinations' triggers + mapping and Acoustic row
  (`bench_actions.py`'s `engine` role);
- `rules`: read + parse + `signals_for_event` with the default signal rules of
  config/pipeline.yaml (6 triggers, identity, session and content mappings, signal validation).

It prints both costs per event and their ratio (goal: the rules cost no more per event than the
engine), in wall-clock time (best run) and in CPU time (lowest run). Then the push (skipped
with `--skip-push`): writes (or reuses, under benchmarks/out/) a `segment/raw_events` partition
of as many events as signals wanted — a mix of pages, products viewed and added, orders and
identify calls, each of which the default rules turn into exactly one valid signal — and for
each concurrency level, in a fresh process so that peak RSS belongs to that run alone, with the
ledger and rejects of the previous run removed:

- a Connect sandbox is started in a process of its own (its memory is not counted), empty;
- `push_day` sends every signal (batches of 500), and the sandbox's count is checked against it.

Prints signals/s, calls, seconds and peak RSS per concurrency level. Run by hand; never part of
the pass/fail suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_raw_events import DAY, OUT  # noqa: E402

API_KEY = "bench-connect-api-key"
APP_KEY = "bench-app-key"
ROWS_PER_GROUP = 20_000


def main() -> None:
    """Parse arguments; run the parent (orchestrating) or a child (sandbox, measured push)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--signals", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--keep", action="store_true", help="keep the lake for next time")
    parser.add_argument("--rule-events", type=int, default=50_000, help="events for rule costs")
    parser.add_argument("--repeat", type=int, default=3, help="rule-cost runs; the best counts")
    parser.add_argument("--skip-push", action="store_true", help="measure the rule costs only")
    parser.add_argument("--child", choices=["serve", "push", "rules"], help=argparse.SUPPRESS)
    parser.add_argument("--lines", help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "serve":
        serve(Path(args.dir))
        return
    if args.child == "rules":
        print(json.dumps(run_rules(Path(args.lines))))
        return
    if args.child == "push":
        result = run_push(args.lake, args.endpoint, args.concurrency[0])
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    rule_costs(args.rule_events, args.repeat)
    if args.skip_push:
        return
    lake = prepare_lake(args.signals)
    try:
        results = [measure(lake, level) for level in args.concurrency]
        report(results)
    finally:
        if not args.keep:
            shutil.rmtree(lake, ignore_errors=True)


def rule_costs(events: int, repeat: int) -> None:
    """Per-event cost of the signal rules vs the engine's, on the same events (goal 3)."""
    import bench_actions

    with tempfile.TemporaryDirectory(prefix="bench-rules-") as folder:
        lines = bench_actions.prepare_events(Path(folder), events)
        best: dict[str, dict[str, Any]] = {}
        for _ in range(repeat):
            for role in ("engine", "rules"):
                script = bench_actions.__file__ if role == "engine" else __file__
                command = [sys.executable, script, "--child", role, "--lines", str(lines)]
                out = subprocess.run(command, check=True, capture_output=True, text=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                lowest_cpu = min(result["cpu_seconds"], best.get(role, result)["cpu_seconds"])
                if role not in best or result["seconds"] < best[role]["seconds"]:
                    best[role] = result
                best[role]["cpu_seconds"] = lowest_cpu  # the lowest of the runs
    engine, rules = best["engine"], best["rules"]
    count = engine["counts"]["events"]
    per_event = {role: r["seconds"] / r["counts"]["events"] * 1e6 for role, r in best.items()}
    print(
        f"\nrule evaluation, {count:,} events, best of {repeat} "
        "(each: read + parse + work, one core)"
    )
    print(
        f"engine: {per_event['engine']:.1f} µs/event ({engine['counts']['rows']:,} rows, "
        f"{engine['counts']['rejects']:,} rejects)"
    )
    print(
        f"rules:  {per_event['rules']:.1f} µs/event ({rules['counts']['signals']:,} signals, "
        f"{rules['counts']['rejected']:,} rejected)"
    )
    print(
        f"goal 3: rules cost {per_event['rules'] / per_event['engine']:.2f}x the engine per event "
        "(goal ≤ 1.0x)"
    )
    cpu = {role: r["cpu_seconds"] / r["counts"]["events"] * 1e6 for role, r in best.items()}
    print(
        f"  in CPU time (lowest of the runs): rules {cpu['rules']:.1f} µs/event, engine "
        f"{cpu['engine']:.1f}: {cpu['rules'] / cpu['engine']:.2f}x"
    )


def run_rules(lines: Path) -> dict[str, Any]:
    """Child: read + parse + `signals_for_event` with the default rules, over a JSONL file."""
    import orjson

    from acoustic_pipelines.config.loading import load_config
    from acoustic_pipelines.connect.signals.rules import (
        BuiltSignal,
        SignalSettings,
        guarded_rules,
        signals_for_event,
    )

    config = load_config().signals
    rules = guarded_rules(config.compiled_rules)  # as push_day runs them
    settings = SignalSettings(
        app_key=APP_KEY, tier=config.tier, default_currency=config.default_currency
    )
    loads = orjson.loads
    events = built = rejected = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    with lines.open("rb") as source:
        for line in source:
            events += 1
            for signal in signals_for_event(loads(line), rules, settings):
                if type(signal) is BuiltSignal:
                    built += 1
                else:
                    rejected += 1
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    counts = {"events": events, "signals": built, "rejected": rejected}
    return {"counts": counts, "seconds": seconds, "cpu_seconds": cpu_seconds}


def _events(count: int) -> Any:
    """`count` events, each giving one valid signal by the default rules."""
    for i in range(count):
        traits = {"email": f"user{i % 5000}@example.com"}
        context = {
            "traits": traits,
            "sessionId": f"s-{i // 20}",
            "page": {"url": f"https://shop/{i}"},
        }
        product = {"product_id": f"p-{i % 300}", "name": "Trail Cap", "price": 19.5, "quantity": 1}
        kind = i % 5
        if kind == 0:
            event = {"type": "page", "name": "Home", "category": "Landing"}
        elif kind == 1:
            event = {"type": "track", "event": "Product Viewed", "properties": product}
        elif kind == 2:
            event = {"type": "track", "event": "Product Added", "properties": product}
        elif kind == 3:
            properties = {"order_id": f"o-{i}", "total": 39.0, "products": [product, product]}
            event = {"type": "track", "event": "Order Completed", "properties": properties}
        else:
            event = {"type": "identify", "userId": f"u-{i}", "traits": traits}
        yield {**event, "messageId": f"bench-{i:09d}", "context": context}


def prepare_lake(signals: int) -> Path:
    """Write the raw partition (once per size): one event per signal wanted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.segment.raw_events import RAW_EVENTS, RAW_EVENTS_SCHEMA
    from acoustic_pipelines.storage import open_location

    folder = OUT / f"lake-signals-{signals}"
    lake = Lake(open_location(str(folder)))
    if lake.has_partition_marker(lake.partition_path(RAW_EVENTS, DAY)):
        return folder
    with lake.stage(RAW_EVENTS, DAY) as staged:
        path = staged.file("part-00000.parquet")
        with pq.ParquetWriter(path, RAW_EVENTS_SCHEMA, filesystem=lake.fs) as writer:
            rows: list[dict[str, Any]] = []
            for event in _events(signals):
                rows.append({"message_id": event["messageId"], "payload": json.dumps(event)})
                if len(rows) == ROWS_PER_GROUP:
                    writer.write_table(pa.Table.from_pylist(rows, schema=RAW_EVENTS_SCHEMA))
                    rows = []
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=RAW_EVENTS_SCHEMA))
        lake.commit(staged, {"rows": signals})
    return folder


def measure(lake: Path, concurrency: int) -> dict:
    """One measured push at `concurrency`, against a fresh sandbox in its own process."""
    shutil.rmtree(lake / "connect", ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="bench-connect-") as folder:
        sandbox = subprocess.Popen(
            [sys.executable, __file__, "--child", "serve", "--dir", folder],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sandbox.stdout is not None
            endpoint = sandbox.stdout.readline().strip()
            command = [sys.executable, __file__, "--child", "push", "--lake", str(lake)]
            command += ["--endpoint", endpoint, "--concurrency", str(concurrency)]
            out = subprocess.run(command, check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            with urllib.request.urlopen(f"{endpoint}_sandbox/stats") as answer:
                result["stored"] = json.load(answer)["signals"]["stored"]
        finally:
            sandbox.communicate(input="")  # EOF on stdin: the sandbox stops
    result["concurrency"] = concurrency
    if result["stored"] != result["signals_sent"] or result["signals_sent"] != result["built"]:
        raise RuntimeError(f"counts differ: {result}")
    print(_line(result), flush=True)
    return result


def serve(folder: Path) -> None:
    """Child: the Connect sandbox, until stdin closes; prints its endpoint first."""
    from acoustic_pipelines.sandbox.connect.server import serve_connect

    with serve_connect(folder=folder, api_key=API_KEY, tier="premium") as sandbox:
        print(sandbox.endpoint, flush=True)
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        done.wait()


def run_push(lake_dir: str, endpoint: str, concurrency: int) -> dict:
    """Child: `push_day` of the whole day with the default rules."""
    from acoustic_pipelines.config.loading import load_config
    from acoustic_pipelines.connect.client import ConnectClient
    from acoustic_pipelines.connect.signals.pushes import push_day
    from acoustic_pipelines.connect.signals.rules import SignalSettings
    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.storage import open_location

    signals = load_config().signals
    settings = SignalSettings(
        app_key=APP_KEY, tier=signals.tier, default_currency=signals.default_currency
    )
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = push_day(
        Lake(open_location(lake_dir)),
        DAY,
        rules=signals.compiled_rules,
        settings=settings,
        client_factory=lambda: ConnectClient(api_key=API_KEY, endpoint=endpoint, tier=signals.tier),
        concurrency=concurrency,
    )
    return {
        "built": report.signals_built,
        "signals_sent": report.signals_sent,
        "rejected": report.rejected,
        "calls": report.calls,
        "retries": report.retries,
        "seconds": report.seconds,
        "signals_per_second": report.signals_per_second,
        "rss_before_mb": baseline,
    }


def _line(result: dict) -> str:
    return (
        f"concurrency {result['concurrency']}: {result['signals_sent']:,} signals in "
        f"{result['calls']:,} calls, {result['seconds']:.1f} s, "
        f"{result['signals_per_second']:,.0f} signals/s, peak RSS {result['peak_rss_mb']:,.0f} MB "
        f"(after imports {result['rss_before_mb']:,.0f} MB); sandbox stored {result['stored']:,}"
    )


def report(results: list[dict]) -> None:
    """Print the figures as a table."""
    print("\n| concurrency | signals | calls | seconds | signals/s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['concurrency']} | {r['signals_sent']:,} | {r['calls']:,} | "
            f"{r['seconds']:.1f} | {r['signals_per_second']:,.0f} | {r['peak_rss_mb']:,.0f} |"
        )


if __name__ == "__main__":
    main()
