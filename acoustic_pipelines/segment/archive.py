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


# Why an archive file could not be read to its end (stable strings: stored in the lake).
NOT_GZIP = "NOT_GZIP"
TRUNCATED = "TRUNCATED"
CORRUPT = "CORRUPT"
READ_FAILED = "READ_FAILED"


class ArchiveReadError(StorageError):
    """An archive file could not be read to its end (truncated or corrupt gzip, I/O error).

    Attributes:
        key: the file, relative to the archive root.
        reason: NOT_GZIP, TRUNCATED, CORRUPT or READ_FAILED.
        lines_read: complete lines read before the failure (they were yielded).
        size: the file's compressed size.
        bytes_unread: compressed bytes after the last part that could be read (to the decoder's
            read buffer; 0 for a truncated file, whose missing end is unknown).
    """

    def __init__(
        self, message: str, *, key: str, reason: str, lines_read: int, size: int, bytes_unread: int
    ) -> None:
        super().__init__(message)
        self.key = key
        self.reason = reason
        self.lines_read = lines_read
        self.size = size
        self.bytes_unread = bytes_unread


class UnreadableArchiveError(StorageError):
    """Some archive files of the day cannot be read; `errors` names every one of them."""

    def __init__(self, day: date, errors: list[ArchiveReadError]) -> None:
        listed = "; ".join(str(e) for e in errors)
        super().__init__(
            f"{day}: {len(errors)} archive file(s) cannot be read, nothing was committed: "
            f"{listed}. Replace them, or run with on_unreadable_file: quarantine to keep their "
            "readable lines and record them"
        )
        self.day = day
        self.errors = errors


class ArchiveNotFoundError(StorageError):
    """The archive root has no `segment-logs/` folder: a wrong location, not an empty day."""


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


def require_archive(archive: Location) -> None:
    """Fail unless the archive root holds `segment-logs/`, so a mistyped root is never an empty day.

    Raises:
        ArchiveNotFoundError: naming the folder that was looked for.
    """
    logs = archive.path(LOGS_FOLDER)
    try:
        info = archive.fs.get_file_info(logs)
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveNotFoundError(
            f"Segment archive {archive.uri}: cannot read {logs}: {exc}"
        ) from exc
    if info.type != pafs.FileType.Directory:
        raise ArchiveNotFoundError(
            f"Segment archive {archive.uri}: no {LOGS_FOLDER}/ folder at "
            f"{archive.uri_of(logs)}; expected {LOGS_FOLDER}/<source>/<day-ms>/*.gz there "
            "(is the archive location mistyped?)"
        )


@dataclass(frozen=True)
class ArchiveDayObservation:
    """What the archive holds for one received-day right now (the day's upstream data version)."""

    day: date
    files: int
    bytes: int
    newest_file: str | None  # key of the most recently modified file
    newest_modified: datetime | None

    @property
    def data_version(self) -> str:
        """Changes whenever a file is added, replaced or grows: a late file is new upstream data."""
        stamp = self.newest_modified.isoformat() if self.newest_modified else "-"
        return f"{self.files}-{self.bytes}-{stamp}"


def observe_archive_day(archive: Location, day: date) -> ArchiveDayObservation:
    """Count the day's files and bytes and find its newest file, without reading any file."""
    newest: tuple[datetime, str] | None = None
    files = size = 0
    folder = day_folder(day)
    for source in _list(archive.fs, archive.path(LOGS_FOLDER)):
        if source.type != pafs.FileType.Directory:
            continue
        for info in _list(archive.fs, f"{source.path}/{folder}"):
            if info.type != pafs.FileType.File or not info.path.endswith(".gz"):
                continue
            files += 1
            size += info.size or 0
            modified = (
                info.mtime.astimezone(UTC) if info.mtime else datetime.min.replace(tzinfo=UTC)
            )
            if newest is None or (modified, info.path) > newest:
                newest = (modified, info.path)
    return ArchiveDayObservation(
        day=day,
        files=files,
        bytes=size,
        newest_file=archive.relative(newest[1]) if newest else None,
        newest_modified=newest[0] if newest and newest[0].year > 1 else None,
    )


@dataclass(frozen=True)
class Completeness:
    """Whether a received-day of the archive is complete, and why (or why not)."""

    complete: bool
    reason: str


def archive_day_completeness(
    archive: Location,
    day: date,
    *,
    now: datetime,
    next_day_file: bool = True,
    cutoff_hour: int | None = 6,
) -> Completeness:
    """Whether Segment has finished writing `day`: a file of the next day exists (Segment writes
    days in order), or the cut-off hour of the next day has passed (UTC); either rule can be off.

    Args:
        archive: the archive root.
        day: the received-day.
        now: the current time (timezone-aware).
        next_day_file: a file in the next day's folder makes `day` complete.
        cutoff_hour: `day` is complete once this hour (UTC) of the next day has passed; None: never.
    """
    next_day = date.fromordinal(day.toordinal() + 1)
    if next_day_file:
        following = observe_archive_day(archive, next_day)
        if following.files:
            return Completeness(True, f"{following.files} file(s) of {next_day} exist")
    if cutoff_hour is not None:
        cutoff = datetime(next_day.year, next_day.month, next_day.day, cutoff_hour, tzinfo=UTC)
        if now >= cutoff:
            return Completeness(True, f"the cut-off {cutoff.isoformat()} has passed")
        return Completeness(
            False, f"waiting for a file of {next_day} or the cut-off {cutoff.isoformat()}"
        )
    return Completeness(False, f"waiting for a file of {next_day}")


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
    good_position = 0  # compressed bytes consumed when the last chunk decoded
    try:
        # ISA-L's gzip inflates 2-3x faster than zlib's, the biggest single cost of a line.
        with (
            archive.fs.open_input_stream(file.path, compression=None) as stream_in,
            igzip.IGzipFile(fileobj=(raw := _CountingReader(stream_in)), mode="rb") as stream,
        ):
            while chunk := stream.read(_READ_CHUNK):
                good_position = raw.position
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                lines_done += len(lines)
                yield from lines
    except (OSError, EOFError, isal_zlib.error, pa.ArrowException) as exc:
        reason = _failure_reason(exc)
        unread = 0 if reason == TRUNCATED else max(file.size - good_position, 0)
        raise ArchiveReadError(
            f"archive file {file.key} ({reason}): read failed after {lines_done} lines, "
            f"{unread:,} of {file.size:,} compressed bytes unread: {exc}",
            key=file.key,
            reason=reason,
            lines_read=lines_done,
            size=file.size,
            bytes_unread=unread,
        ) from exc
    if pending:
        yield pending


class _CountingReader:
    """A read-only stream that counts the bytes read through it (the input streams cannot tell)."""

    def __init__(self, stream: pa.NativeFile) -> None:
        self._stream = stream
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        """Read up to `size` bytes (all when negative)."""
        data = self._stream.read() if size is None or size < 0 else self._stream.read(size)
        self.position += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read into `buffer`; the number of bytes read."""
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)

    def readable(self) -> bool:
        """Always: this wraps an input stream."""
        return True


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return TRUNCATED
    if "Not a gzipped file" in str(exc):
        return NOT_GZIP
    if isinstance(exc, isal_zlib.error) or "CRC check failed" in str(exc) or "Invalid" in str(exc):
        return CORRUPT
    return READ_FAILED
