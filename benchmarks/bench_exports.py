"""SFTP download throughput and export CSV → Parquet conversion, each against a reference.

    python benchmarks/bench_exports.py [--mb 200] [--repeats 3] [--rows 2000000] [--skip-reference] [--keep]

1. SFTP download on loopback. The Connect sandbox and its SFTP server (paramiko in server mode)
   run in a process of their own: a server and a client in one Python process share the GIL and
   measure lower. A gzip file of about `--mb` MB (lines of random base64 text, which deflate
   barely shrinks) is put in the subscription folder as `Export/Signals/bench.csv.gz`. Then,
   `--repeats` times, alternating so that other load on the machine hits both alike:
   - ours: `connect_sftp` + `SftpSession.download(..., gzip_check=True)` in a fresh process (size
     checked against `stat`, the gzip stream inflated to its trailer). MB/s is the library's own
     `Download.mb_per_s`: the transfer and its checks, not the SSH handshake (shown apart);
   - OpenSSH, when `sftp` is installed: `sftp -b` with the same key, the host key pinned by the
     same known-hosts file. Its time is the command's wall time, SSH handshake included, and only
     the size of what it got is checked (here), so the ratio ours / OpenSSH (goal ≥ 0.5) does not
     flatter us.
   Prints each download, the best and median MB/s of each, and the ratios.

2. Export CSV → Parquet. Gzip export CSVs of `--rows` rows and of half as many are written (or
   reused from benchmarks/out/ with `--keep`) by the sandbox's own writer (`write_export_file`,
   `export_row`): behavior signals over three UTC days, in mixed order, about 200 bytes of
   SIGNAL_CONTENT each. Each run is a fresh process, so that peak RSS (ru_maxrss) belongs to it:
   - `convert`: the pipeline's `split_export_file` (streaming typed reader, rows split by day,
     window checked) into its `DayWriters` (zstd Parquet per day, rows held back into row groups
     of up to 65,536), for both files: the two peaks show whether memory grows with the file
     (goal: 2,000,000 rows under 10 s, memory bounded);
   - `reference` (the full file only): the same written plainly — `gzip.open`, `csv.DictReader`,
     each row typed into a dict and held in a list per day, then `Table.from_pylist` and
     `pq.write_table` per day.
   Prints rows, seconds, rows/s, peak RSS and the RSS right after imports (the run's own growth
   is the difference), the input and output sizes, the Parquet row groups, and the ratios.

Run by hand; never part of the pass/fail suite. On a shared machine the figures vary with other
load: compare runs made side by side.
"""

from __future__ import annotations

import argparse
import base64
import csv
import gzip
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_raw_events import DAY, OUT  # noqa: E402

API_KEY = "bench-connect-api-key"
APP_KEY = "bench-app-key"
REMOTE = "Export/Signals/bench.csv.gz"
LINE_BYTES = 120  # characters of base64 per line of the downloaded file
WINDOW = tuple(DAY + timedelta(days=i) for i in range(3))
SIGNAL_TYPES = ("pageView", "productView", "addToCart", "order", "identification")


def main() -> None:
    """Parse arguments; run the parent (orchestrating) or a child (server, measured runs)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the downloaded file, MB")
    parser.add_argument("--repeats", type=int, default=3, help="downloads of each client")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the export file")
    parser.add_argument("--skip-reference", action="store_true", help="no plain-Python reference")
    parser.add_argument("--keep", action="store_true", help="keep the export files for next time")
    parser.add_argument(
        "--child", choices=["serve", "download", "convert", "reference"], help=argparse.SUPPRESS
    )
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "serve":
        serve(Path(args.dir))
        return
    if args.child:
        if args.child == "download":
            result = run_download(json.loads(args.settings), Path(args.dir))
        elif args.child == "convert":
            result = run_convert(Path(args.source))
        else:
            result = run_reference(Path(args.source))
        result["peak_rss_mb"] = _peak_rss_mb()
        print(json.dumps(result))
        return
    bench_sftp(args.mb, args.repeats)
    bench_conversion(args.rows, skip_reference=args.skip_reference, keep=args.keep)


def _peak_rss_mb() -> float:
    """This process's peak resident set size so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(role: str, *options: str) -> dict:
    """Run one role in a fresh interpreter and return what it measured."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", role, *options],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- 1. SFTP download -------------------------------------------------------------------------


def bench_sftp(mb: int, repeats: int) -> None:
    """Part 1: our client and OpenSSH's download one file from the sandbox (its own process)."""
    openssh = shutil.which("sftp")
    with tempfile.TemporaryDirectory(prefix="bench-sftp-") as folder:
        server = subprocess.Popen(
            [sys.executable, __file__, "--child", "serve", "--dir", folder],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            settings = json.loads(server.stdout.readline())
            started = time.perf_counter()
            size = write_random_gzip(Path(settings["subscription_folder"]) / REMOTE, mb * 10**6)
            print(
                f"SFTP: {size / 1e6:,.1f} MB gzip file written in "
                f"{time.perf_counter() - started:.1f}s; server on {settings['host']}:"
                f"{settings['port']} in its own process",
                flush=True,
            )
            ours: list[dict] = []
            theirs: list[dict] = []
            downloads = Path(folder, "downloads")
            downloads.mkdir()
            for attempt in range(1, repeats + 1):
                result = _child(
                    "download", "--settings", json.dumps(settings), "--dir", str(downloads)
                )
                _check_size(result["size"], size, "ours")
                ours.append(result)
                print(
                    f"ours #{attempt}: {result['size'] / 1e6:,.1f} MB in {result['seconds']:.2f}s, "
                    f"{result['mb_per_s']:,.1f} MB/s (plus handshake {result['connect_seconds']:.2f}s; "
                    f"client peak RSS {result['peak_rss_mb']:,.0f} MB)",
                    flush=True,
                )
                if openssh:
                    result = openssh_download(openssh, settings, downloads)
                    _check_size(result["size"], size, "OpenSSH")
                    theirs.append(result)
                    print(
                        f"OpenSSH #{attempt}: {result['size'] / 1e6:,.1f} MB in "
                        f"{result['seconds']:.2f}s, {result['mb_per_s']:,.1f} MB/s "
                        "(wall time, handshake included)",
                        flush=True,
                    )
        finally:
            server.communicate(input="")  # EOF on stdin: the sandbox stops
    report_sftp(ours, theirs, openssh)


def serve(folder: Path) -> None:
    """Child: the Connect sandbox and its SFTP server until stdin closes; prints client settings."""
    from acoustic_pipelines.sandbox.connect.server import serve_connect
    from acoustic_pipelines.sandbox.sftp_server import client_settings, serve_sftp

    with (
        serve_connect(folder=folder / "sandbox", api_key=API_KEY) as sandbox,
        serve_sftp(sandbox=sandbox) as sftp,
    ):
        settings = client_settings(sandbox=sandbox, sftp=sftp, folder=folder / "client")
        print(
            json.dumps(
                {
                    "host": settings.host,
                    "port": settings.port,
                    "user": settings.user,
                    "key_path": str(settings.key_path),
                    "known_hosts": str(settings.known_hosts),
                    "subscription_folder": str(sandbox.subscription_folder),
                }
            ),
            flush=True,
        )
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        done.wait()


def write_random_gzip(path: Path, size: int) -> int:
    """Write a gzip file of about `size` bytes: lines of random base64 text; its actual size."""
    from isal import igzip

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    with open(path, "wb") as raw, igzip.IGzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
        while raw.tell() < size:
            text = base64.b64encode(rng.randbytes(3 << 18))
            lines = (text[i : i + LINE_BYTES] for i in range(0, len(text), LINE_BYTES))
            out.write(b"\n".join(lines) + b"\n")
    return path.stat().st_size


def run_download(settings: dict[str, Any], folder: Path) -> dict:
    """Child: one session of the library's client, one verified download."""
    from acoustic_pipelines.connect.sftp import SftpSettings, connect_sftp

    started = time.perf_counter()
    with connect_sftp(
        SftpSettings(
            host=settings["host"],
            port=settings["port"],
            user=settings["user"],
            key_path=Path(settings["key_path"]),
            known_hosts=Path(settings["known_hosts"]),
        )
    ) as session:
        connected = time.perf_counter() - started
        download = session.download(REMOTE, folder / "ours.csv.gz", gzip_check=True)
    download.local.unlink()
    return {
        "size": download.size,
        "seconds": download.seconds,
        "mb_per_s": download.mb_per_s,
        "connect_seconds": connected,
    }


def openssh_download(sftp: str, settings: dict[str, Any], folder: Path) -> dict:
    """One download with OpenSSH's `sftp` in batch mode, timed from start to exit."""
    target = folder / "openssh.csv.gz"
    batch = folder / "openssh.batch"
    batch.write_text(f'get "{REMOTE}" "{target}"\n', encoding="utf-8")
    command = [sftp, "-q", "-b", str(batch), "-i", settings["key_path"]]
    command += ["-P", str(settings["port"]), "-o", f"User={settings['user']}"]
    command += ["-o", f"UserKnownHostsFile={settings['known_hosts']}"]
    command += ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]
    command += ["-o", "IdentitiesOnly=yes", settings["host"]]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return {"size": size, "seconds": seconds, "mb_per_s": size / 1e6 / seconds}


def _check_size(received: int, expected: int, who: str) -> None:
    """Fail the benchmark when a download is not the whole file."""
    if received != expected:
        raise RuntimeError(f"{who} downloaded {received:,} bytes of {expected:,}")


def report_sftp(ours: list[dict], theirs: list[dict], openssh: str | None) -> None:
    """Print best and median MB/s of each client and the ratios."""
    best, median = _best_median(ours)
    print(f"\nours: best {best:,.1f} MB/s, median {median:,.1f} MB/s over {len(ours)} downloads")
    if not openssh:
        print("OpenSSH comparison skipped: no `sftp` command on PATH")
        return
    their_best, their_median = _best_median(theirs)
    print(f"OpenSSH sftp ({openssh}): best {their_best:,.1f} MB/s, median {their_median:,.1f} MB/s")
    print(
        f"ratio ours / OpenSSH: best {best / their_best:.2f}, median {median / their_median:.2f} "
        "(goal >= 0.5)"
    )


def _best_median(results: list[dict]) -> tuple[float, float]:
    """Best and median MB/s of some downloads."""
    speeds = [r["mb_per_s"] for r in results]
    return max(speeds), statistics.median(speeds)


# --- 2. Export CSV → Parquet --------------------------------------------------------------------


def bench_conversion(rows: int, *, skip_reference: bool, keep: bool) -> None:
    """Part 2: the pipeline's conversion of the full and the half file, then the reference."""
    sizes = (rows, rows // 2)
    files = [prepare_export(count) for count in sizes]
    try:
        results = {
            f"convert {count:,}": _measure("convert", path)
            for count, path in zip(sizes, files, strict=True)
        }
        if not skip_reference:
            results[f"reference {rows:,}"] = _measure("reference", files[0])
        report_conversion(results)
    finally:
        if not keep:
            for path in files:
                path.unlink(missing_ok=True)


def prepare_export(rows: int) -> Path:
    """Write (or reuse) a gzip export CSV of `rows` behavior signals with the sandbox's writer."""
    from acoustic_pipelines.sandbox.connect.exports import write_export_file

    path = OUT / f"export-{rows}.csv.gz"
    if not path.exists():
        started = time.perf_counter()
        write_export_file(path, _export_rows(rows))
        print(
            f"generated {path.name}: {rows:,} rows, {path.stat().st_size / 1e6:,.0f} MB gzip, "
            f"in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
    return path


def _export_rows(count: int) -> Iterator[dict[str, str]]:
    """Export rows of `count` behavior signals at random moments of the window's days."""
    from acoustic_pipelines.sandbox.connect.exports import export_row
    from acoustic_pipelines.sandbox.connect.store import StoredSignal

    rng = random.Random(20261120)
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
    span_ms = len(WINDOW) * 86_400_000 - 60_000  # received within seconds: still in the window
    for i in range(count):
        moment = start + timedelta(milliseconds=rng.randrange(span_ms))
        received = moment + timedelta(milliseconds=rng.randrange(200, 5_000))
        product = rng.randrange(5_000)
        content = {
            "category": "Apparel",
            "name": f"Trail Cap {product}",
            "description": "Lightweight quick-dry cap",
            "productId": f"p-{product:05d}",
            "price": rng.randrange(500, 20_000) / 100,
            "quantity": rng.randrange(1, 4),
            "currency": "USD",
            "url": f"https://shop.example.com/products/p-{product:05d}?utm_source=newsletter",
        }
        yield export_row(
            StoredSignal(
                signal_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                signal_type=SIGNAL_TYPES[i % len(SIGNAL_TYPES)],
                app_key=APP_KEY,
                identity={"email": f"customer{rng.randrange(200_000)}@example.com"},
                session_id=f"session-{i // 20:09d}",
                content=json.dumps(content, separators=(",", ":")),
                test=False,
                signal_timestamp=_stamp(moment),
                received_at=_stamp(received),
            )
        )


def _stamp(moment: datetime) -> str:
    """A moment as the export writes it: `2026-11-20T08:29:30.001Z`."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _measure(role: str, source: Path) -> dict:
    """One measured conversion of `source` in a fresh process; its figures and input size."""
    result = _child(role, "--source", str(source))
    result["input_bytes"] = source.stat().st_size
    print(_conversion_line(role, result), flush=True)
    return result


def run_convert(source: Path) -> dict:
    """Child: `split_export_file` into the pipeline's `DayWriters` (zstd Parquet per day)."""
    from acoustic_pipelines.connect.exports.collection import DayWriters, split_export_file
    from acoustic_pipelines.connect.exports.ledger import LedgerJob
    from acoustic_pipelines.lake import Lake
    from acoustic_pipelines.storage import open_location

    baseline = _peak_rss_mb()
    job = LedgerJob(
        job_name="bench-behavior",
        definition="behavior",
        window_start=WINDOW[0],
        window_end=WINDOW[-1],
        attempt=1,
        signal_types=SIGNAL_TYPES,
        requested_path="x.csv",
        status="submitted",
        estimated_rows=0,
        estimated_bytes=0,
        reserved_at=datetime.now(UTC),
    )
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as out, ExitStack() as stack:
        lake = Lake(open_location(out))
        staged = {day: stack.enter_context(lake.stage("exported", day)) for day in job.days}
        writers = stack.enter_context(DayWriters(lake, staged, job.definition))
        started = time.perf_counter()
        schema, _by_type, by_day, other = split_export_file(source, job, job.days, writers.write)
        writers.close(schema, job.days)
        seconds = time.perf_counter() - started
        output = _parquet_files(
            [
                Path(staged[day].file(f"definition={job.definition}/part-0.parquet"))
                for day in job.days
            ]
        )
    return {
        "rows": sum(by_day.values()) + other,
        "rows_by_day": {str(day): count for day, count in sorted(by_day.items())},
        "seconds": seconds,
        "rss_after_imports_mb": baseline,
        **output,
    }


def run_reference(source: Path) -> dict:
    """Child: the plain version — csv.DictReader, typed dicts held per day, written at the end."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from acoustic_pipelines.connect.exports.files import export_schema

    baseline = _peak_rss_mb()
    started = time.perf_counter()
    by_day: dict[date, list[dict[str, Any]]] = {}
    with gzip.open(source, "rt", encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        header = list(reader.fieldnames or ())
        converters = {name: _plain_converter(name) for name in header}
        for row in reader:
            typed = {name: converters[name](text) if text else None for name, text in row.items()}
            day = (typed["SIGNAL_TIMESTAMP"] or typed["TIMESTAMP"]).date()
            if day not in WINDOW:
                raise ValueError(f"row {reader.line_num}: {day} is outside the window")
            by_day.setdefault(day, []).append(typed)
    schema = export_schema(header)
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as out:
        for day, rows in by_day.items():
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, f"{out}/date={day}.parquet", compression="zstd")
        seconds = time.perf_counter() - started
        output = _parquet_files(sorted(Path(out).iterdir()))
    return {
        "rows": sum(len(rows) for rows in by_day.values()),
        "rows_by_day": {str(day): len(rows) for day, rows in sorted(by_day.items())},
        "seconds": seconds,
        "rss_after_imports_mb": baseline,
        **output,
    }


def _plain_converter(name: str) -> Callable[[str], Any]:
    """How the reference types a column's non-empty text: the documented export types."""
    from acoustic_pipelines.connect.exports.files import (
        ARRAY_COLUMNS,
        BOOLEAN_COLUMNS,
        TIMESTAMP_COLUMNS,
    )

    if name in TIMESTAMP_COLUMNS:
        return datetime.fromisoformat
    if name in BOOLEAN_COLUMNS:
        return lambda text: text.lower() == "true"
    if name in ARRAY_COLUMNS:
        return json.loads
    return str


def _parquet_files(paths: list[Path]) -> dict[str, int]:
    """Bytes and row groups of Parquet files."""
    import pyarrow.parquet as pq

    return {
        "output_bytes": sum(path.stat().st_size for path in paths),
        "row_groups": sum(pq.ParquetFile(path).metadata.num_row_groups for path in paths),
    }


def _conversion_line(role: str, r: dict) -> str:
    """One run's figures on one line."""
    return (
        f"{role}: {r['rows']:,} rows in {r['seconds']:.1f}s, {r['rows'] / r['seconds']:,.0f} rows/s, "
        f"peak RSS {r['peak_rss_mb']:,.0f} MB (after imports {r['rss_after_imports_mb']:,.0f} MB), "
        f"{r['input_bytes'] / 1e6:,.0f} MB gzip CSV → {r['output_bytes'] / 1e6:,.0f} MB Parquet "
        f"in {r['row_groups']:,} row groups"
    )


def report_conversion(results: dict[str, dict]) -> None:
    """Print the runs as a table, the memory comparison and the ratios to the reference."""
    print(
        "\n| run | rows | seconds | rows/s | peak RSS MB | after imports MB | gz MB | Parquet MB "
        "| row groups |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run, r in results.items():
        print(
            f"| {run} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{r['peak_rss_mb']:,.0f} | {r['rss_after_imports_mb']:,.0f} | "
            f"{r['input_bytes'] / 1e6:,.0f} | {r['output_bytes'] / 1e6:,.0f} | {r['row_groups']:,} |"
        )
    full, half, *reference = results.values()
    print(
        f"convert growth over imports: {full['peak_rss_mb'] - full['rss_after_imports_mb']:,.0f} MB "
        f"for {full['rows']:,} rows, {half['peak_rss_mb'] - half['rss_after_imports_mb']:,.0f} MB "
        f"for {half['rows']:,} rows; {full['rows']:,} rows in {full['seconds']:.1f}s (goal < 10 s)"
    )
    if reference:
        ref = reference[0]
        print(
            f"speed ratio (convert / reference): {ref['seconds'] / full['seconds']:.2f}x; memory "
            f"ratio: {full['peak_rss_mb'] / ref['peak_rss_mb']:.2f}; same rows per day: "
            f"{full['rows_by_day'] == ref['rows_by_day']}"
        )


if __name__ == "__main__":
    main()
