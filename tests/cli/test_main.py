"""The `acoustic-pipelines` command: `sample` writes an archive, `demo` runs the pipeline on it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from acoustic_pipelines.cli.main import main
from acoustic_pipelines.segment.archive import day_folder
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location


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


def test_demo_runs_every_asset_and_prints_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("ACOUSTIC_PIPELINES_ARCHIVE", str(tmp_path / "archive"))
    monkeypatch.setenv("ACOUSTIC_PIPELINES_LAKE", str(tmp_path / "lake"))
    assert main(["demo", "--date", "2026-11-20", "--events", "600"]) == 0
    out = capsys.readouterr().out
    assert "segment/raw_events [2026-11-20]" in out
    assert f"raw_events_path: {tmp_path / 'lake'}/segment/raw_events/date=2026-11-20" in out
    assert "lines_read: 600" in out
    assert (tmp_path / "lake" / "segment" / "raw_events" / "date=2026-11-20" / "_SUCCESS").is_file()
