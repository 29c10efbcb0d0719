"""A whole day against Segment's engine: `segment/raw_events` + `acoustic/mapped_events`, wall clock.

    python benchmarks/bench_day.py [--events 1000000] [--workers 1 2] [--keep]

Issue 15's goals 2 and 4. Writes (or reuses, under benchmarks/out/) a sample archive of one day
(`segment/sample.py`, no bad lines: Segment's engine stops at the first line JSON.parse refuses)
and runs, each in a fresh interpreter, for every worker count:

- the two library calls the assets make, in the pipeline's order: `ingest_day` (what
  `segment/raw_events` calls) then `map_day` (what `acoustic/mapped_events` calls) with the
  destinations of config/pipeline.yaml, into an empty lake; `workers` goes to both (to `map_day`
  only when main's `map_day` takes it). The clock covers both calls (worker start-up included);
- a sampler thread reads /proc every 50 ms: the peak RSS (VmHWM) of each process of the run (the
  coordinating process and every worker) and the peak of their summed PSS (the memory the run
  holds as a whole: pages the workers share are counted once).

Each run's CPU seconds (user + system, the run and all its processes) are reported beside its
wall time, and Segment's too: on a shared machine the wall times swing with the load, the CPU
seconds much less.

Then the output of every worker count is compared with the first's, row by row (raw, rejected,
mapped per destination, mapping rejects), and Segment's engine (`oracle.py`, stream mode, one
core) transforms the same events from a JSONL copy of the day. Prints one line per run and:

    day: ours Xs on 2 workers vs Segment's Ys on one core → Z× (goal ≥ 3×)

Absolute figures on a shared machine are noisy; the ratio is measured in the same run. Run by
hand or with `make bench`; never part of the pass/fail suite.
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from oracle import run_oracle  # noqa: E402

DAY = date(2026, 11, 20)
OUT = Path(__file__).resolve().parent / "out"
CONFIG = Path(__file__).resolve().parents[1] / "config" / "pipeline.yaml"
GOAL_DAY = 3.0
GOAL_WORKER_MB = 400
GOAL_WHOLE_MB = 1024


def main() -> None:
    """Parse arguments; run the parent (orchestrating) or a child (measured) role."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-segment", action="store_true", help="do not run Segment's engine")
    parser.add_argument("--keep", action="store_true", help="keep the lakes (benchmarks/out/)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--archive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_day(args.archive, args.child, args.workers[0])))
        return
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    archive = prepare_archive(args.events)
    lakes = {w: OUT / f"day-lake-{args.events}-w{w}" for w in args.workers}
    try:
        results = {w: measure(archive, lakes[w], w) for w in args.workers}
        first = args.workers[0]
        same = {w: same_output(lakes[first], lakes[w]) for w in args.workers[1:]}
        segment = None
        if not args.skip_segment:
            jsonl = jsonl_of(archive)
            before = children_cpu()
            segment = run_oracle(jsonl)
            if segment is not None:
                segment["cpu"] = children_cpu() - before
        report(args, results, same, segment)
    finally:
        if not args.keep:
            for lake in lakes.values():
                shutil.rmtree(lake, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def prepare_archive(events: int) -> Path:
    """Write (or reuse) the sample archive of one day with `events` valid lines."""
    from acoustic_pipelines.segment.sample import write_sample_archive
    from acoustic_pipelines.storage import open_location

    archive = OUT / f"day-archive-{events}"
    if not (archive / "segment-logs").is_dir():
        started = time.perf_counter()
        summary = write_sample_archive(open_location(str(archive)), DAY, events=events, seed=15)
        print(
            f"generated {summary.lines:,} events in {len(summary.files)} files, "
            f"{summary.uncompressed_bytes / 1e6:,.0f} MB uncompressed, "
            f"in {time.perf_counter() - started:.0f}s"
        )
    return archive


def jsonl_of(archive: Path) -> Path:
    """The day's lines as one JSONL file (Segment's engine reads that), written once."""
    target = archive / "events.jsonl"
    if not target.exists():
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            for path in sorted((archive / "segment-logs").glob("*/*/*.gz")):
                with gzip.open(path, "rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
        partial.rename(target)
    return target


def measure(archive: Path, lake: Path, workers: int) -> dict[str, Any]:
    """Run the day in a fresh interpreter and return what it measured."""
    shutil.rmtree(lake, ignore_errors=True)
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            str(lake),
            "--archive",
            str(archive),
            "--workers",
            str(workers),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the day with {workers} worker(s) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's ended children and theirs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- child side ------------------------------------------------------------------------------


def run_day(archive: str, lake_dir: str, workers: int) -> dict[str, Any]:
    """Ingest then map the day as the two assets do; seconds, counts and peak memory."""
    from acoustic_pipelines.acoustic.mapped_events import map_day
    from acoustic_pipelines.config.loading import load_config
    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.segment.raw_events import ingest_day
    from acoustic_pipelines.storage import open_location

    destinations = load_config(CONFIG).destinations
    lake = Lake(open_location(lake_dir))
    location = open_location(archive)
    map_kwargs = {"workers": workers} if "workers" in inspect.signature(map_day).parameters else {}
    sampler = _MemorySampler(os.getpid())
    sampler.start()
    started = time.perf_counter()
    ingest = ingest_day(location, lake, DAY, workers=workers, on_progress=lambda _: None)
    ingested = time.perf_counter()
    mapped = map_day(lake, DAY, destinations, on_progress=lambda _: None, **map_kwargs)
    finished = time.perf_counter()
    sampler.stop()
    return {
        "workers": workers,
        "mapping_workers": map_kwargs.get("workers", 1),
        "ingest_workers": ingest.workers,
        "seconds": finished - started,
        "ingest_seconds": ingested - started,
        "map_seconds": finished - ingested,
        "lines": ingest.lines_read,
        "accepted": ingest.accepted,
        "rejected": ingest.rejected,
        "duplicates": ingest.duplicates,
        "mapped_rows": {o.name: o.rows for o in mapped.destinations},
        "mapping_rejects": {o.name: o.rejected for o in mapped.destinations},
        "processes": len(sampler.peak_by_pid),
        "peak_process_mb": max(sampler.peak_by_pid.values(), default=0) / 1024,
        "peak_coordinator_mb": sampler.peak_by_pid.get(os.getpid(), 0) / 1024,
        "peak_worker_mb": max(
            (kb for pid, kb in sampler.peak_by_pid.items() if pid != os.getpid()), default=0
        )
        / 1024,
        "peak_whole_mb": sampler.peak_sum / 1024,
        # Every process of the run, as last sampled (a worker's last 50 ms may be missed).
        "cpu": (sum(sampler.cpu_by_pid.values()) - sampler.cpu_before) / os.sysconf("SC_CLK_TCK"),
    }


class _MemorySampler(threading.Thread):
    """Samples the RSS of a process and all its descendants (workers included) from /proc."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.peak_by_pid: dict[int, int] = {}  # VmHWM, kB
        self.peak_sum = 0  # kB, the largest sum of PSS at one instant
        self.cpu_by_pid: dict[int, int] = {}  # clock ticks (user + system), the last seen
        self.cpu_before = _cpu_ticks(root)  # the imports before the day, not counted
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(0.05)

    def stop(self) -> None:
        """Take a last sample and stop."""
        self._stop_event.set()
        self.join()
        self.sample()

    def sample(self) -> None:
        """Read every descendant's VmHWM and PSS once."""
        total = 0
        for pid in self._tree():
            hwm, pss = _status(pid)
            if hwm:
                self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0), hwm)
            total += pss
            ticks = _cpu_ticks(pid)
            if ticks:
                self.cpu_by_pid[pid] = max(self.cpu_by_pid.get(pid, 0), ticks)
        self.peak_sum = max(self.peak_sum, total)

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    ppid = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found


def _status(pid: int) -> tuple[int, int]:
    """(VmHWM, PSS) of a process in kB (0 when it is gone)."""
    return _field(f"/proc/{pid}/status", "VmHWM:"), _field(f"/proc/{pid}/smaps_rollup", "Pss:")


def _cpu_ticks(pid: int) -> int:
    """User + system CPU clock ticks of a process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def _field(path: str, name: str) -> int:
    try:
        with open(path, encoding="ascii", errors="replace") as source:
            for line in source:
                if line.startswith(name):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


# --- comparison ------------------------------------------------------------------------------


def same_output(lake_a: Path, lake_b: Path) -> list[str]:
    """The datasets whose rows differ between two lakes (empty: the same rows in the same order)."""
    from acoustic_pipelines.acoustic.mapped_events import MAPPED_EVENTS, REJECTED_EVENTS
    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.segment.raw_events import RAW_EVENTS
    from acoustic_pipelines.segment.raw_events import REJECTED_EVENTS as INGEST_REJECTS
    from acoustic_pipelines.storage import open_location

    a, b = Lake(open_location(str(lake_a))), Lake(open_location(str(lake_b)))
    datasets: list[tuple[str, str | None]] = [
        (RAW_EVENTS, None),
        (INGEST_REJECTS, None),
        (REJECTED_EVENTS, None),
    ]
    datasets += [(MAPPED_EVENTS, sub) for sub in a.subfolders(MAPPED_EVENTS, DAY)]
    differ = []
    for dataset, subpath in datasets:
        rows_a = _fixed_slices(a.iter_batches(dataset, DAY, subpath=subpath))
        rows_b = _fixed_slices(b.iter_batches(dataset, DAY, subpath=subpath))
        if not all(x.equals(y) for x, y in _zip_all(rows_a, rows_b)):
            differ.append(f"{dataset}/{subpath}" if subpath else dataset)
    return differ


def _zip_all(a: Iterator[Any], b: Iterator[Any]) -> Iterator[tuple[Any, Any]]:
    missing = object()
    while True:
        x, y = next(a, missing), next(b, missing)
        if x is missing and y is missing:
            return
        yield x, y  # a missing side compares unequal


def _fixed_slices(batches: Iterator[Any], rows: int = 32768) -> Iterator[Any]:
    """The rows as tables of exactly `rows` rows (the last one shorter), whatever the batches."""
    import pyarrow as pa

    pending: list[Any] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows).combine_chunks()
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending).combine_chunks()


# --- report ----------------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    results: dict[int, dict[str, Any]],
    same: dict[int, list[str]],
    segment: dict[str, Any] | None,
) -> None:
    """Print the figures, the comparison and the ratio against Segment's engine."""
    print(
        f"\n{args.events:,} events, one day: ingest_day + map_day (what segment/raw_events and "
        "acoustic/mapped_events call)"
    )
    print(
        f"{'workers':>7} {'seconds':>8} {'ingest':>7} {'map':>6} {'cpu s':>6} {'events/s':>10} "
        f"{'coord MB':>9} {'worker MB':>10} {'whole MB':>9} {'procs':>5} {'accepted':>9} "
        f"{'rows':>9}"
    )
    for workers, r in results.items():
        rows = sum(r["mapped_rows"].values())
        print(
            f"{workers:>7} {r['seconds']:>8.1f} {r['ingest_seconds']:>7.1f} {r['map_seconds']:>6.1f} "
            f"{r['cpu']:>6.1f} "
            f"{r['lines'] / r['seconds']:>10,.0f} {r['peak_coordinator_mb']:>9,.0f} "
            f"{r['peak_worker_mb']:>10,.0f} {r['peak_whole_mb']:>9,.0f} {r['processes']:>5} "
            f"{r['accepted']:>9,} {rows:>9,}"
        )
        if r["mapping_workers"] != workers:
            print("        (map_day on main takes no `workers`: it ran in one process)")
    first = results[args.workers[0]]
    keys = ("lines", "accepted", "rejected", "duplicates", "mapped_rows", "mapping_rejects")
    for workers, differ in same.items():
        counts = all(results[workers][k] == first[k] for k in keys)
        verdict = "the same rows in the same order" if not differ else f"DIFFERENT: {differ}"
        print(
            f"{workers} workers vs {args.workers[0]}: counts {'equal' if counts else 'DIFFERENT'}, "
            f"tables: {verdict}"
        )
    best = results[max(results)]
    worker_peak = max(best["peak_worker_mb"], best["peak_coordinator_mb"])
    print(
        f"memory: {worker_peak:,.0f} MB per process at most (goal ≤ {GOAL_WORKER_MB}), "
        f"{best['peak_whole_mb']:,.0f} MB for the whole on {max(results)} workers "
        f"(goal ≤ {GOAL_WHOLE_MB})"
    )
    if segment is None:
        print(
            f"day: ours {best['seconds']:.1f}s on {max(results)} workers; no ratio (Segment's "
            "engine not measured, see above)"
        )
        return
    theirs = float(segment["seconds"])
    print(
        f"Segment's engine (stream mode, one core): {segment['events']:,} events in {theirs:.1f}s, "
        f"{segment['events_per_s']:,} events/s, peak RSS {segment['peak_rss_mb']} MB"
    )
    for workers, r in results.items():
        print(
            f"day: ours {r['seconds']:.1f}s on {workers} worker(s) vs Segment's {theirs:.1f}s on "
            f"one core → {theirs / r['seconds']:.2f}× (goal ≥ {GOAL_DAY:.0f}×)"
        )
    # CPU time barely depends on what else runs (wall time on a shared machine does): the work
    # each side does for the day, and the best wall time that work allows on this many cores.
    first = results[min(results)]
    print(
        f"cpu: ours {first['cpu']:.1f}s for the day ({min(results)} worker(s)), Segment's "
        f"{segment['cpu']:.1f}s → {segment['cpu'] / first['cpu']:.2f}× per core; spread over "
        f"{os.cpu_count()} cores without loss: {segment['cpu'] / first['cpu'] * os.cpu_count():.2f}×"
    )


if __name__ == "__main__":
    main()
