"""Throughput and peak memory of the Actions hot path: parse → triggers → mapping → flat row.

    python benchmarks/bench_actions.py [--events 100000] [--workers 2] [--skip-interpreter]

Writes a sample Segment archive of one day into a temporary folder, loads the default Track and
Identify mappings from config/pipeline.yaml, then runs each of these in a fresh interpreter (so
peak RSS, `ru_maxrss`, belongs to that run alone), streaming the archive file by file:

- `parse`: gzip → lines → orjson, nothing else (the floor every run pays);
- `compiled`: the library as the pipeline uses it — the config loaded once
  (`DestinationConfig.rules`: compiled triggers and mappings), then per event every enabled
  mapping's trigger, the matching mappings' transforms and `build_row`;
- `interpreter`: the same work done plainly, per event: each trigger's FQL text is parsed again
  (a tiny evaluator for `field = "text"`, all these mappings need) and each mapping dict is walked
  (`@path`, `@if exists`); the same `build_row` flattens. It leaves out the JavaScript value
  rules the compiled mapping applies (14.0 → 14), so it does a little less work;
- with `--workers N` (N > 1), `compiled` again over N forked processes: each takes whole
  archive files (largest first), reads and maps them itself and sends back only its counters,
  so no event or row is ever pickled between processes.

All runs read the same input; rows, reject codes, "no matching mapping" events and the total
number of row columns are compared, then events per second, peak RSS and the speed ratio are
printed. Run by hand; never part of the pass/fail suite.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

DAY = date(2026, 11, 20)
CONFIG = Path(__file__).resolve().parents[1] / "config" / "pipeline.yaml"
SEED = 1


def main() -> None:
    """Parse arguments; run the parent (orchestrating) or a child (measured) role."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events to generate")
    parser.add_argument("--workers", type=int, default=1, help="also run `compiled` on N processes")
    parser.add_argument("--skip-interpreter", action="store_true", help="measure the library only")
    parser.add_argument(
        "--child", choices=["parse", "compiled", "interpreter"], help=argparse.SUPPRESS
    )
    parser.add_argument("--archive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_child(args.child, args.archive, args.workers)
        print(json.dumps(result))
        return
    archive = Path(tempfile.mkdtemp(prefix="bench-actions-"))
    try:
        prepare_archive(archive, args.events)
        runs = [("parse", 1), ("compiled", 1)]
        if not args.skip_interpreter:
            runs.append(("interpreter", 1))
        if args.workers > 1:
            runs.append(("compiled", args.workers))
        results = {f"{role} x{workers}": measure(role, archive, workers) for role, workers in runs}
        report(args, results)
    finally:
        shutil.rmtree(archive, ignore_errors=True)


def prepare_archive(archive: Path, events: int) -> None:
    """Write the sample archive of one day (no bad lines) into ``archive``."""
    from acoustic_pipelines.segment.sample import write_sample_archive
    from acoustic_pipelines.storage import open_location

    started = time.perf_counter()
    summary = write_sample_archive(open_location(str(archive)), DAY, events=events, seed=SEED)
    print(
        f"generated {summary.lines:,} events in {len(summary.files)} files, "
        f"{summary.uncompressed_bytes / 1e6:,.0f} MB uncompressed, "
        f"in {time.perf_counter() - started:.0f}s"
    )


def measure(role: str, archive: Path, workers: int) -> dict[str, Any]:
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


# --- child side ------------------------------------------------------------------------------


def run_child(role: str, archive: str, workers: int) -> dict[str, Any]:
    """Process every file of the day with one role; counts, seconds and peak RSS."""
    # Imported before the clock starts (and before forking, so workers inherit them).
    import orjson  # noqa: F401

    from acoustic_pipelines.acoustic import rows  # noqa: F401
    from acoustic_pipelines.config.loading import load_config  # noqa: F401
    from acoustic_pipelines.segment.archive import list_archive_day
    from acoustic_pipelines.storage import open_location

    files = list_archive_day(open_location(archive), DAY).files
    # Largest first, so that no worker is left with a big file at the end while the others idle.
    keys = [f.key for f in sorted(files, key=lambda f: f.size, reverse=True)]
    _start(role, archive)  # setup, not throughput; forked workers inherit it
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            for part in pool.imap_unordered(process_file, keys):
                counts.update(part)
    else:
        for key in keys:
            counts.update(process_file(key))
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "counts": dict(counts),
        "seconds": seconds,
        "peak_rss_mb": max(own, children),
        "workers": workers,
    }


_STATE: dict[str, Any] = {}


def _start(role: str, archive: str) -> None:
    """Open the archive and build the (trigger, mapping) pairs of the role, once."""
    from acoustic_pipelines.segment.archive import list_archive_day
    from acoustic_pipelines.storage import open_location

    location = open_location(archive)
    _STATE.update(
        role=role,
        location=location,
        files={f.key: f for f in list_archive_day(location, DAY).files},
    )
    if role == "compiled":
        from acoustic_pipelines.config.loading import load_config

        config = load_config(CONFIG)
        rules = [rule for destination in config.destinations for rule in destination.rules]
        _STATE["pairs"] = [(rule.matches, rule.apply) for rule in rules]
    elif role == "interpreter":
        import yaml

        raw = yaml.safe_load(CONFIG.read_text())
        _STATE["pairs"] = [
            (_naive_trigger(mapping["trigger"]), _naive_mapping(mapping["mapping"]))
            for destination in raw["destinations"]
            for mapping in destination["mappings"]
            if mapping.get("enabled", True)
        ]


def process_file(key: str) -> dict[str, int]:
    """Stream one archive file through the role set up by :func:`_start`; its counters."""
    import orjson

    from acoustic_pipelines.acoustic.rows import AcousticReject, build_row
    from acoustic_pipelines.actions.mappings.kit import MappingError
    from acoustic_pipelines.segment.archive import read_lines

    lines = read_lines(_STATE["location"], _STATE["files"][key])
    loads = orjson.loads
    counts: Counter[str] = Counter()
    if _STATE["role"] == "parse":
        for line in lines:
            loads(line)
            counts["events"] += 1
        return dict(counts)

    pairs = _STATE["pairs"]
    events = rows = rejects = unmatched = columns = 0
    for line in lines:
        event = loads(line)
        events += 1
        matched = False
        for matches, apply in pairs:
            if not matches(event):
                continue
            matched = True
            try:
                row = build_row(apply(event))
            except AcousticReject as reject:
                rejects += 1
                counts[f"reject {reject.code}"] += 1
                continue
            except MappingError:
                counts["reject mapping error"] += 1
                continue
            rows += 1
            columns += len(row)
        if not matched:
            unmatched += 1
    counts.update(
        events=events, rows=rows, rejects=rejects, no_matching_mapping=unmatched, columns=columns
    )
    return dict(counts)


# --- the plain per-event interpreter -----------------------------------------------------------

_UNDEFINED = object()
_COMPARISON = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*"([^"]*)"\s*')


def _naive_trigger(fql: str) -> Any:
    """A trigger evaluated by re-reading its text for every event (`field = "text"` only)."""

    def matches(event: dict[str, Any]) -> bool:
        found = _COMPARISON.fullmatch(fql)  # parsed again per event, on purpose
        if found is None:
            raise ValueError(f'the naive evaluator only reads `field = "text"`, not {fql!r}')
        field, text = found.groups()
        value: Any = event
        for key in field.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value == text

    return matches


def _naive_mapping(mapping: Any) -> Any:
    """A mapping applied by walking its dict for every event (`@path`, `@if exists`)."""

    def apply(event: dict[str, Any]) -> Any:
        result = _walk(mapping, event)
        return None if result is _UNDEFINED else result

    return apply


def _walk(node: Any, event: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key == "@path":
                return _path(argument, event)
            if key == "@if":
                subject = _walk(argument["exists"], event)
                present = subject is not _UNDEFINED and subject is not None
                branch = argument.get("then" if present else "else", _UNDEFINED)
                return _UNDEFINED if branch is _UNDEFINED else _walk(branch, event)
        out = {}
        for key, value in node.items():
            resolved = _walk(value, event)
            if resolved is not _UNDEFINED:
                out[key] = resolved
        return out
    if isinstance(node, list):
        return [_walk(item, event) for item in node]
    return node


def _path(path: str, event: dict[str, Any]) -> Any:
    value: Any = event
    for key in path.removeprefix("$.").split("."):
        if not isinstance(value, dict) or key not in value:
            return _UNDEFINED
        value = value[key]
    return value


# --- report ------------------------------------------------------------------------------------


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    """Print the figures and the ratios."""
    cpus = multiprocessing.cpu_count()
    print(
        f"\n{args.events:,} events, default Track/Identify mappings, {cpus} CPUs (ru_maxrss per process)"
    )
    print(
        f"{'run':<15} {'events/s':>10} {'seconds':>8} {'peak RSS MB':>12} {'rows':>8} "
        f"{'rejects':>8} {'no match':>9}"
    )
    for name, result in results.items():
        counts = result["counts"]
        print(
            f"{name:<15} {counts['events'] / result['seconds']:>10,.0f} {result['seconds']:>8.2f} "
            f"{result['peak_rss_mb']:>12,.0f} {counts.get('rows', 0):>8,} "
            f"{counts.get('rejects', 0):>8,} {counts.get('no_matching_mapping', 0):>9,}"
        )
    compiled = results["compiled x1"]
    codes = {k: v for k, v in compiled["counts"].items() if k.startswith("reject ")}
    print(
        "reject codes (compiled): "
        + (", ".join(f"{k[7:]} {v:,}" for k, v in codes.items()) or "none")
    )
    if "interpreter x1" in results:
        interpreter = results["interpreter x1"]
        same = compiled["counts"] == interpreter["counts"]
        print(
            f"speed ratio (compiled / interpreter): "
            f"{interpreter['seconds'] / compiled['seconds']:.2f}x; same counts: {same}"
        )
    parse = results["parse x1"]
    engine = compiled["seconds"] - parse["seconds"]
    events = compiled["counts"]["events"]
    if engine > 0:
        print(
            f"engine alone (compiled minus parse): {events / engine:,.0f} events/s "
            f"({engine / events * 1e6:.1f} µs per event)"
        )
    for name, result in results.items():
        if result["workers"] > 1:
            speedup = compiled["seconds"] / result["seconds"]
            print(f"{name}: {speedup:.2f}x the one-process run")


if __name__ == "__main__":
    main()
