"""The `acoustic-pipelines` command: `sample` writes an archive, `demo` runs the pipeline on it."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from acoustic_pipelines.cli.main import main
from acoustic_pipelines.segment.archive import day_folder
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location
from tests.conftest import REPO_ROOT


def test_sample_writes_the_archive_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "sample",
                "--date",
                "2026-11-20",
                "--events",
                "500",
                "--out",
                str(tmp_path),
                "--bad-rate",
                "0.1",
            ]
        )
        == 0
    )
    files = sorted((tmp_path / "segment-logs").rglob("*.gz"))
    assert {f.parent.name for f in files} == {day_folder(date(2026, 11, 20))}
    assert {f.parent.parent.name for f in files} == {"Wb7x3TqkLp", "Io5mQz8vRa"}
    out = capsys.readouterr().out
    assert "wrote 500 lines" in out and "expected accepted:" in out


def test_sample_is_deterministic_and_about_1_3_kb_per_event(tmp_path: Path) -> None:
    one = write_sample_archive(open_location(str(tmp_path / "a")), date(2026, 11, 20), events=2_000)
    two = write_sample_archive(open_location(str(tmp_path / "b")), date(2026, 11, 20), events=2_000)
    assert one.uncompressed_bytes == two.uncompressed_bytes
    assert 1_100 <= one.uncompressed_bytes / one.lines <= 1_600


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sample", "--date", "20-11-2026", "--out", "x"])
    assert "is not a date like 2026-11-20" in capsys.readouterr().err


def _readme_inspection_commands() -> list[str]:
    """The README's commands that open a demo day's outputs (the block starting `DAY=`)."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text[text.index("\nDAY=") + 1 :]
    block = block[: block.index("```")]
    return [line for line in block.splitlines() if line.startswith(("python ", "ls "))]


def test_demo_runs_every_asset_and_prints_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("ACOUSTIC_PIPELINES_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setenv("ACOUSTIC_PIPELINES_LAKE", "lake")
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--date", "2026-11-20", "--events", "600"]) == 0
    out = capsys.readouterr().out
    assert "demo day: 2026-11-20" in out
    assert "segment/raw_events [2026-11-20]" in out
    assert "segment/raw_events/date=2026-11-20" in out
    assert "wrote 600 lines" in out  # and the sync's calls: lines_read is checked below
    assert (tmp_path / "lake" / "segment" / "raw_events" / "date=2026-11-20" / "_SUCCESS").is_file()
    # The rejects are explained: anonymous events have no recipient.
    assert "why rows were rejected" in out
    assert re.search(r"INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID: [\d,]+ — .*anonymous", out)
    assert re.search(r"identifiableAttributes: [\d,]+ — .*anonymous", out)
    # The S3 deliveries outlive the demo, and the command that lists them is printed.
    saved = tmp_path / "lake" / "_sandbox" / "s3" / "demo-access-point-alias"
    assert (saved / "DemoOrg_Prod_2026_11_20_manifest.json").is_file()
    assert (saved / "DemoOrg_Prod_2026_11_20_0001.csv").stat().st_size > 0
    assert "ls -l lake/_sandbox/s3/*/" in out
    _check_the_loop(out, tmp_path, date(2026, 11, 20))
    # The README's inspection commands work on the day the demo used.
    for command in _readme_inspection_commands():
        command = command.replace("python ", f"{sys.executable} ", 1)
        done = subprocess.run(
            ["bash", "-c", f"DAY=2026-11-20; {command}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.strip(), command


def _loop_line(out: str, pattern: str) -> list[int]:
    """The numbers of the loop's output line matching `pattern` (its groups)."""
    found = re.search(pattern, out, re.MULTILINE)
    assert found, (pattern, out[out.find("warehouse →") :])
    return [int(group.replace(",", "")) for group in found.groups()]


def _check_the_loop(out: str, root: Path, day: date) -> None:
    """The printed loop, warehouse → Tracking API → raw_events → mapped_events, against what the
    demo left: the warehouse file, the archive the sandbox wrote, the lake's datasets."""
    import duckdb
    import pyarrow.dataset as ds

    from acoustic_pipelines.config.loading import load_config

    models = load_config(REPO_ROOT / "config" / "pipeline.yaml").connections
    assert models is not None
    with duckdb.connect(
        str(root / "lake" / "_sandbox" / "warehouse.duckdb"), read_only=True
    ) as con:
        rows = sum(
            con.execute(f"SELECT count(*) FROM ({m.sql})").fetchone()[0] for m in models.models
        )
    archived = [
        json.loads(line)
        for path in (root / "archive" / "segment-logs" / "retl_sandbox" / day_folder(day)).glob(
            "*.gz"
        )
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]
    rejected = ds.dataset(
        [str(p) for p in (root / "lake" / "connections").glob("*_rejected_records/*/*.parquet")]
    ).count_rows()
    raw = ds.dataset(root / "lake" / "segment" / "raw_events" / f"date={day}").to_table(
        columns=["message_id", "source_id"]
    )
    from_connections = {
        m
        for m, s in zip(raw["message_id"].to_pylist(), raw["source_id"].to_pylist(), strict=True)
        if s == "retl_sandbox"
    }
    mapped = (
        ds.dataset(
            root / "lake" / "acoustic" / "mapped_events" / f"date={day}", partitioning="hive"
        )
        .to_table(columns=["message_id"])["message_id"]
        .to_pylist()
    )

    assert _loop_line(
        out, r"^  ([\d,]+) warehouse rows, ([\d,]+) changed since the last sync$"
    ) == [
        rows,
        rows,
    ]
    sent, kept = _loop_line(
        out, r"^  → ([\d,]+) Spec calls accepted by the Tracking API \(([\d,]+) not delivered"
    )
    assert (sent, kept) == (len(archived), rejected) and sent + kept == rows and kept > 0
    assert {m["messageId"] for m in archived} == from_connections
    assert _loop_line(out, r"^    lines_read: ([\d,]+)$") == [600 + len(archived)]
    assert _loop_line(
        out, r"^  → ([\d,]+) calls from Segment Connections in segment/raw_events$"
    ) == [len(from_connections)]
    in_mapped = sum(1 for m in mapped if m in from_connections)
    assert _loop_line(out, r"^  → ([\d,]+) of them in acoustic/mapped_events$") == [in_mapped]
    assert in_mapped == sent  # every call the warehouse gave has a recipient: each maps to a row
    (command,) = [
        line.strip()
        for line in out.splitlines()
        if line.startswith("  python -c") and "_rejected_records" in line
    ]
    shown = subprocess.run(
        ["bash", "-c", command.replace("python ", f"{sys.executable} ", 1)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("sendTrack: Either") == kept  # the guest orders, with the reason


def test_a_second_demo_serves_the_saved_deliveries_again(tmp_path: Path) -> None:
    """The S3 sandbox loads what it saved: a day delivered again replaces its files (no copy)."""
    from acoustic_pipelines.sandbox.s3 import _client, serve_s3

    folder = tmp_path / "s3"
    with serve_s3(buckets=["alias"], folder=folder) as sandbox:
        _client(sandbox).put_object(Bucket="alias", Key="P_2026_11_20_0001.csv", Body=b"a,b\r\n")
    assert (folder / "alias" / "P_2026_11_20_0001.csv").read_bytes() == b"a,b\r\n"
    with serve_s3(buckets=["alias"], folder=folder) as sandbox:
        client = _client(sandbox)
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="alias").get("Contents", [])]
        assert keys == ["P_2026_11_20_0001.csv"]
        client.delete_object(Bucket="alias", Key="P_2026_11_20_0001.csv")
    assert list((folder / "alias").iterdir()) == []


def test_a_day_before_the_start_date_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ACOUSTIC_PIPELINES_START_DATE", raising=False)
    assert main(["demo", "--date", "2025-12-31"]) == 2
    err = capsys.readouterr().err
    assert "before the first daily partition, 2026-01-01" in err
    assert "ACOUSTIC_PIPELINES_START_DATE=2025-12-31" in err


def test_output_cut_short_by_head_ends_quietly(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(
        '{"type": "track", "event": "Order Completed", "messageId": "m-1",'
        ' "timestamp": "2026-11-20T10:00:00Z", "properties": {"email": "a@example.com"}}'
    )
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written, as after `| head -1`
    try:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "acoustic-pipelines"),
                "test-mapping",
                "--all",
                "--event",
                str(event),
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141
