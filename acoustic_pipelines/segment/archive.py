"""List and read one day of Segment's S3-archive layout (reference/segment.md §2).

Layout: `<root>/segment-logs/<source-id>/<received-day-ms>/<opaque-name>.gz`, where the day folder
is the Unix epoch in milliseconds of 00:00 UTC of the day Segment received the data. File names
are opaque: files are found by listing, never by parsing their names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.fs as pafs
from isal import igzip, isal_zlib

from acoustic_pipelines.storage import Location, StorageError

LOGS_FOLDER = "segment-logs"
_READ_CHUNK = 1 << 20

log = logging.getLogger(__name__)


class ArchiveReadError(StorageError):
    """An archive file could not be read to its end (truncated or corrupt gzip, I/O error)."""


@dataclass(frozen=True)
class ArchiveFile:
    """One gzip NDJSON file of the archive."""

    path: str  # filesystem path
    key: str  # path relative to the archive root, as shown to users
    source_id: str
    size: int  # compressed bytes


@dataclass(frozen=True)
class ArchiveDay:
    """The files Segment delivered for one received-day, and what was skipped while listing."""

    day: date
    files: tuple[ArchiveFile, ...]
    skipped: tuple[str, ...]  # keys of non-.gz objects (e.g. Segment's dummy-object.txt)

    @property
    def compressed_bytes(self) -> int:
        """Total size of the day's gzip files."""
        return sum(f.size for f in self.files)


def day_folder(day: date) -> str:
    """The `<received-day>` folder name: epoch milliseconds of 00:00 UTC of `day`."""
    return str(int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000)


def list_archive_day(archive: Location, day: date) -> ArchiveDay:
    """Every `segment-logs/<source>/<day-ms>/*.gz` file of `day`, sorted by key."""
    logs = archive.path(LOGS_FOLDER)
    sources = _list(archive.fs, logs)
    files: list[ArchiveFile] = []
    skipped: list[str] = []
    folder = day_folder(day)
    for source in sources:
        if source.type != pafs.FileType.Directory:
            continue
        for info in _list(archive.fs, f"{source.path}/{folder}"):
            key = archive.relative(info.path)
            if info.type == pafs.FileType.File and info.path.endswith(".gz"):
                files.append(
                    ArchiveFile(path=info.path, key=key, source_id=source.base_name, size=info.size)
                )
            else:
                skipped.append(key)
    files.sort(key=lambda f: f.key)
    log.info("archive %s, day %s: %d files, %d skipped", archive.uri, day, len(files), len(skipped))
    return ArchiveDay(day=day, files=tuple(files), skipped=tuple(sorted(skipped)))


def _list(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    selector = pafs.FileSelector(path, allow_not_found=True, recursive=False)
    try:
        return fs.get_file_info(selector)
    except (OSError, pa.ArrowException) as exc:
        raise StorageError(f"cannot list {path}: {exc}") from exc


def read_lines(archive: Location, file: ArchiveFile) -> Iterator[bytes]:
    """Stream the decompressed lines of one file, without their line break, in bounded memory.

    A trailing newline does not make an extra line; an empty line in the middle is yielded as b"".

    Raises:
        ArchiveReadError: the file is truncated or corrupt, naming the file and where it broke.
    """
    pending = b""
    lines_done = 0
    try:
        # ISA-L's gzip inflates 2-3x faster than zlib's, the biggest single cost of a line.
        with (
            archive.fs.open_input_stream(file.path, compression=None) as raw,
            igzip.IGzipFile(fileobj=raw, mode="rb") as stream,
        ):
            while chunk := stream.read(_READ_CHUNK):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                lines_done += len(lines)
                yield from lines
    except (OSError, EOFError, isal_zlib.error, pa.ArrowException) as exc:
        raise ArchiveReadError(
            f"archive file {file.key}: read failed after {lines_done} lines: {exc}"
        ) from exc
    if pending:
        yield pending
