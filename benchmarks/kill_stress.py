"""Faults by hand: SIGKILL of `segment/raw_events` ingests and signal pushes at random moments.

    python benchmarks/kill_stress.py [--kills 8] [--events 20000] [--seed 1]

Ingest: a day is ingested once, then `--kills` runs are SIGKILLed after a random delay; after
each kill neither dataset may be half-visible (both committed with one commit, or neither), and
a final run must give the exact counts and leave no scratch or staging behind.
Pushes: `--kills` pushes of one day are SIGKILLed at random moments against the Connect sandbox
(every call slowed, so kills land mid-call), then a normal run and a `resend_unknown` run; the
sandbox must hold every signal, none twice except those resent after a lost answer. Prints the
figures; run by hand, never part of the pass/fail suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.segment.raw_events import RAW_EVENTS, REJECTED_EVENTS, ingest_day
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location

DAY = date(2026, 11, 20)
INGEST = """
import sys
from datetime import date
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.segment.raw_events import ingest_day
from acoustic_pipelines.storage import open_location
ingest_day(open_location(sys.argv[1]), Lake(open_location(sys.argv[2])), date(2026, 11, 20),
           scratch_dir=sys.argv[3])
"""
PUSH = """
import json, sys
from datetime import date
from acoustic_pipelines.config.loading import SignalsConfig
from acoustic_pipelines.connect.client import ConnectClient
from acoustic_pipelines.connect.signals.pushes import push_day
from acoustic_pipelines.connect.signals.rules import SignalSettings
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.storage import open_location
lake_dir, endpoint, rules_file, resend = sys.argv[1:5]
report = push_day(
    Lake(open_location(lake_dir)), date(2026, 11, 20),
    rules=SignalsConfig.model_validate(json.load(open(rules_file))).compiled_rules,
    settings=SignalSettings(app_key="app", tier="premium", default_currency="USD"),
    client_factory=lambda: ConnectClient(api_key="k", endpoint=endpoint, tier="premium", max_retries=0),
    batch_size=50, concurrency=4, resend_unknown=resend == "1",
)
print(json.dumps({"sent": report.signals_sent, "skipped": report.signals_skipped,
                  "unknown": report.unknown_outcome, "resent": report.resent_unknown}))
"""


def visible(lake: Lake) -> tuple[bool, bool]:
    """Whether each of the two datasets reads as committed."""
    found = []
    for dataset in (RAW_EVENTS, REJECTED_EVENTS):
        try:
            lake.summary(dataset, DAY)
            found.append(True)
        except PartitionNotFound:
            found.append(False)
    return found[0], found[1]


def stress_ingest(root: Path, kills: int, events: int, rng: random.Random) -> dict:
    """Kill ingests at random moments; the figures."""
    archive_dir, lake_dir, scratch = root / "archive", root / "lake", root / "scratch"
    scratch.mkdir()
    archive, lake = open_location(str(archive_dir)), Lake(open_location(str(lake_dir)))
    sample = write_sample_archive(archive, DAY, events=events, bad_rate=0.01, seed=3)
    started = time.monotonic()
    ingest_day(archive, lake, DAY, scratch_dir=str(scratch))
    full = time.monotonic() - started
    half_visible = 0
    states: Counter[str] = Counter()
    for _ in range(kills):
        process = subprocess.Popen(
            [sys.executable, "-c", INGEST, str(archive_dir), str(lake_dir), str(scratch)]
        )
        time.sleep(rng.uniform(0.8, 0.8 + full))  # python start-up, then somewhere in the run
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        raw, rejected = visible(lake)
        half_visible += raw != rejected
        states[
            "both visible" if raw and rejected else "neither" if raw == rejected else "half"
        ] += 1
    left_before = len(list(scratch.glob("raw-events-*")))
    report = ingest_day(archive, lake, DAY, scratch_dir=str(scratch))
    exact = (
        report.accepted == sample.expected_accepted
        and lake.read_partition(RAW_EVENTS, DAY).count_rows() == sample.expected_accepted
        and lake.read_partition(REJECTED_EVENTS, DAY).count_rows()
        == sum(sample.expected_rejects.values())
    )
    leftovers = list(scratch.glob("raw-events-*")) + [
        p for d in (RAW_EVENTS, REJECTED_EVENTS) for p in (lake_dir / d).glob("_*/*")
    ]
    return {
        "lines": events,
        "kills": kills,
        "after_kill": dict(states),
        "half_visible": half_visible,
        "scratch_left_by_kills": left_before,
        "rerun_exact": exact,
        "leftovers_after_rerun": len(leftovers),
    }


def stress_push(root: Path, kills: int, rng: random.Random) -> dict:
    """Kill pushes at random moments, then recover; the figures at the sandbox."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from acoustic_pipelines.sandbox.connect.server import serve_connect
    from tests.connect.signals.test_pushes import RULES, make_events, write_raw_events

    lake_dir = root / "push-lake"
    lake = Lake(open_location(str(lake_dir)))
    events, valid, _ = make_events(3000)
    write_raw_events(lake, events)  # the tests' day, DAY
    rules_file = root / "rules.json"
    rules_file.write_text(json.dumps(RULES))
    with serve_connect(folder=root / "sandbox", api_key="k", tier="ultimate") as sandbox:
        sandbox.inject("slow", delay=0.05)
        for _ in range(kills):
            process = subprocess.Popen(
                [sys.executable, "-c", PUSH, str(lake_dir), sandbox.endpoint, str(rules_file), "0"],
                stdout=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(2.0, 4.0))
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        time.sleep(0.5)
        sandbox.reset_faults()
        runs = [
            json.loads(
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        PUSH,
                        str(lake_dir),
                        sandbox.endpoint,
                        str(rules_file),
                        r,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for r in ("0", "1")
        ]
        with sqlite3.connect(f"file:{sandbox.folder / 'connect.sqlite3'}?mode=ro", uri=True) as db:
            names = [json.loads(c)["name"] for (c,) in db.execute("SELECT content FROM signals")]
    stored = Counter(tuple(n.split(" ", 1)) for n in names)
    return {
        "signals": len(valid),
        "kills": kills,
        "rerun": runs[0],
        "resend_unknown_run": runs[1],
        "lost": len(valid - set(stored)),
        # Only signals resent after a lost answer may be held twice (at-least-once for them).
        "stored_twice": sum(1 for c in stored.values() if c > 1),
    }


def main() -> None:
    """Run both stresses and print their figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="kill-stress-") as folder:
        root = Path(folder)
        print(json.dumps({"ingest": stress_ingest(root, args.kills, args.events, rng)}))
        print(json.dumps({"push": stress_push(root, args.kills, rng)}))


if __name__ == "__main__":
    main()
