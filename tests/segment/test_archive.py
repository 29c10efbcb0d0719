"""Listing and reading one received-day of the archive, from a local folder and over the S3 API."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import boto3
import pytest

from acoustic_pipelines.segment.archive import (
    ArchiveReadError,
    day_folder,
    list_archive_day,
    read_lines,
)
from acoustic_pipelines.storage import Location, open_location

DAY = date(2024, 1, 2)
LINES = [b'{"a":1}', b"", b'{"b":"\xc3\xa9"}', b"not json"]


def test_day_folder_is_epoch_milliseconds_of_utc_midnight() -> None:
    assert day_folder(DAY) == "1704153600000"  # the example of reference/segment.md §2


def write_day(root: Path) -> None:
    """Two sources, a non-gz object, a neighbouring day, and a file ending without a newline."""
    for source, name, body in [
        ("src_b", "z9.gz", b"\n".join(LINES) + b"\n"),
        ("src_a", "k1.gz", b'{"first":true}'),
    ]:
        folder = root / "segment-logs" / source / day_folder(DAY)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(gzip.compress(body))
    (root / "segment-logs" / "src_a" / day_folder(DAY) / "dummy-object.txt").write_text("x")
    other = root / "segment-logs" / "src_a" / day_folder(date(2024, 1, 3))
    other.mkdir(parents=True)
    (other / "other.gz").write_bytes(gzip.compress(b'{"next":"day"}\n'))


def check_listing_and_lines(archive: Location) -> None:
    day = list_archive_day(archive, DAY)
    assert [f.key for f in day.files] == [
        f"segment-logs/src_a/{day_folder(DAY)}/k1.gz",
        f"segment-logs/src_b/{day_folder(DAY)}/z9.gz",
    ]
    assert [f.source_id for f in day.files] == ["src_a", "src_b"]
    assert day.skipped == (f"segment-logs/src_a/{day_folder(DAY)}/dummy-object.txt",)
    assert all(f.size > 0 for f in day.files)
    assert list(read_lines(archive, day.files[0])) == [b'{"first":true}']
    assert list(read_lines(archive, day.files[1])) == LINES


def test_local_folder(tmp_path: Path) -> None:
    write_day(tmp_path)
    check_listing_and_lines(open_location(str(tmp_path)))


def test_s3_over_http(tmp_path: Path, s3_endpoint: str, s3_bucket: str) -> None:
    write_day(tmp_path / "src")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for path in (tmp_path / "src").rglob("*"):
        if path.is_file():
            key = "exports/" + str(path.relative_to(tmp_path / "src"))
            client.upload_file(str(path), s3_bucket, key)
    check_listing_and_lines(open_location(f"s3://{s3_bucket}/exports", s3_endpoint_url=s3_endpoint))


def test_missing_day_lists_nothing(tmp_path: Path) -> None:
    day = list_archive_day(open_location(str(tmp_path)), DAY)
    assert day.files == () and day.compressed_bytes == 0


def test_lines_span_read_chunks(tmp_path: Path) -> None:
    lines = [
        (b'{"i":%d,"pad":"' % i) + b"x" * 5000 + b'"}' for i in range(600)
    ]  # ~3 MB: several chunks
    folder = tmp_path / "segment-logs" / "s" / day_folder(DAY)
    folder.mkdir(parents=True)
    (folder / "big.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    archive = open_location(str(tmp_path))
    assert list(read_lines(archive, list_archive_day(archive, DAY).files[0])) == lines


def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "segment-logs" / "s" / day_folder(DAY)
    folder.mkdir(parents=True)
    data = gzip.compress(b'{"a":1}\n' * 50_000)
    (folder / "cut.gz").write_bytes(data[: len(data) // 2])
    archive = open_location(str(tmp_path))
    with pytest.raises(ArchiveReadError, match="cut.gz"):
        list(read_lines(archive, list_archive_day(archive, DAY).files[0]))
