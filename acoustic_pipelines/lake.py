"""The Parquet lake: one folder per dataset, hive partitions `date=YYYY-MM-DD`, atomic replacement.

A partition is written aside in `<dataset>/_staging/` and then swapped in. Readers skip folders
starting with `_` or `.` (pyarrow's default), and a partition only counts as present once its
`_SUCCESS` marker exists, so a run killed midway never leaves a half-written partition visible:

- local folder: the staged folder (marker included) replaces the old one by two renames;
- S3 (no rename): the old marker is deleted first, old files removed, staged files moved in,
  then the marker is written last.

A partition may hold sub-folders, one dataset each (`date=…/destination=NAME/part-….parquet`):
create one with `Lake.stage_subfolder`, list them with `Lake.subfolders` and read one with
`read_partition(dataset, day, subpath=...)`. Both swaps move sub-folders with the partition.

A ledger partition (a record that must survive a killed run, e.g. `connect/signal_pushes`) is
written in place instead, one file at a time: `Lake.write_file` / `Lake.replacing_file` replace
one file atomically (a rename on a local folder, one object PUT on S3, never an append), and
`Lake.unmark` / `Lake.mark` take its `_SUCCESS` marker away while it is being rewritten and put
it back once its consolidated files are written. Never `commit` such a partition: the swap would
drop what was written in place.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from acoustic_pipelines.storage import Location, StorageError

SUCCESS_MARKER = "_SUCCESS"
_STAGING = "_staging"
_TRASH = "_trash"

log = logging.getLogger(__name__)


class PartitionNotFound(StorageError):
    """A partition was read before it was (completely) written."""


@dataclass(frozen=True)
class StagedPartition:
    """A partition being written aside; write files under `path`, then `Lake.commit` it."""

    dataset: str
    day: date
    path: str

    def file(self, name: str) -> str:
        """The path of a file to write inside the staged partition."""
        return f"{self.path}/{name}"


@dataclass(frozen=True)
class Lake:
    """A Parquet lake rooted at a `Location`."""

    location: Location

    @property
    def fs(self) -> pafs.FileSystem:
        """The filesystem the lake is on."""
        return self.location.fs

    def partition_path(self, dataset: str, day: date) -> str:
        """The folder of one day of a dataset: `<root>/<dataset>/date=YYYY-MM-DD`."""
        return self.location.path(dataset, f"date={day.isoformat()}")

    def partition_uri(self, dataset: str, day: date, subpath: str | None = None) -> str:
        """The user-facing URI of a partition folder, or of one of its sub-folders."""
        path = self.partition_path(dataset, day)
        return self.location.uri_of(f"{path}/{_checked_subpath(subpath)}" if subpath else path)

    @contextmanager
    def stage(self, dataset: str, day: date) -> Iterator[StagedPartition]:
        """Give a staging folder for one partition; it is removed again unless committed."""
        self._remove_stale_staging(dataset, day)
        path = self.location.path(dataset, _STAGING, _aside_name(day))
        self.fs.create_dir(path, recursive=True)
        staged = StagedPartition(dataset=dataset, day=day, path=path)
        try:
            yield staged
        finally:
            _delete_dir_quietly(self.fs, path)

    def stage_subfolder(self, staged: StagedPartition, subpath: str) -> str:
        """Create a sub-folder (e.g. `destination=acoustic`) inside a staged partition; its path."""
        path = staged.file(_checked_subpath(subpath))
        self.fs.create_dir(path, recursive=True)
        return path

    def commit(self, staged: StagedPartition, summary: dict[str, Any]) -> str:
        """Swap a staged partition in place of the current one; `summary` goes into `_SUCCESS`."""
        marker = json.dumps(summary, sort_keys=True, default=str).encode()
        final = self.partition_path(staged.dataset, staged.day)
        if self.location.is_local:
            _write_bytes(self.fs, staged.file(SUCCESS_MARKER), marker)
            self._swap_local(staged, final)
        else:
            self._swap_by_objects(staged, final, marker)
        log.info("committed %s", self.location.uri_of(final))
        return final

    @contextmanager
    def replacing_file(self, dataset: str, day: date, name: str) -> Iterator[str]:
        """A path to write one file of a partition kept in place; it replaces `name` at the end.

        On a local folder the file is written aside (a dot-name readers skip) and renamed over
        `name` when the block ends without error; on S3 the object appears whole when closed.
        """
        with self._replacing(
            f"{self.partition_path(dataset, day)}/{_checked_subpath(name)}"
        ) as path:
            yield path

    def write_file(self, dataset: str, day: date, name: str, data: bytes) -> str:
        """Write (or atomically replace) one file of a partition kept in place; its path."""
        with self.replacing_file(dataset, day, name) as path:
            _write_bytes(self.fs, path, data)
        return f"{self.partition_path(dataset, day)}/{_checked_subpath(name)}"

    def unmark(self, dataset: str, day: date) -> None:
        """Delete a partition's `_SUCCESS` marker: it reads as not materialized until `mark`."""
        path = self.partition_path(dataset, day)
        if self.has_partition_marker(path):
            self.fs.delete_file(f"{path}/{SUCCESS_MARKER}")

    def mark(self, dataset: str, day: date, summary: dict[str, Any]) -> str:
        """Write the `_SUCCESS` marker of a partition kept in place, with `summary`; its folder."""
        path = self.partition_path(dataset, day)
        with self._replacing(f"{path}/{SUCCESS_MARKER}") as marker:
            _write_bytes(self.fs, marker, json.dumps(summary, sort_keys=True, default=str).encode())
        return path

    @contextmanager
    def _replacing(self, final: str) -> Iterator[str]:
        if not self.location.is_local:  # an object appears whole when its upload completes
            yield final
            return
        folder, base = final.rsplit("/", 1)
        self.fs.create_dir(folder, recursive=True)
        aside = f"{folder}/.{base}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            yield aside
            self.fs.move(aside, final)
        finally:
            if self.fs.get_file_info(aside).type == pafs.FileType.File:
                self.fs.delete_file(aside)

    def _swap_local(self, staged: StagedPartition, final: str) -> None:
        trash = self.location.path(staged.dataset, _TRASH, _aside_name(staged.day))
        if self.fs.get_file_info(final).type != pafs.FileType.NotFound:
            self.fs.create_dir(trash.rsplit("/", 1)[0], recursive=True)
            self.fs.move(final, trash)
        self.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        self.fs.move(staged.path, final)
        _delete_dir_quietly(self.fs, trash)

    def _swap_by_objects(self, staged: StagedPartition, final: str, marker: bytes) -> None:
        if self.has_partition_marker(final):
            self.fs.delete_file(f"{final}/{SUCCESS_MARKER}")
        # Recursive: sub-folders of the old partition (and S3's empty folder markers) go too.
        if self.fs.get_file_info(final).type == pafs.FileType.Directory:
            self.fs.delete_dir_contents(final, missing_dir_ok=True)
        start = len(staged.path) + 1
        for info in _files(self.fs, staged.path, recursive=True):
            self.fs.move(info.path, f"{final}/{info.path[start:]}")
        _write_bytes(self.fs, f"{final}/{SUCCESS_MARKER}", marker)

    def has_partition_marker(self, partition_path: str) -> bool:
        """Whether a partition folder holds its `_SUCCESS` marker."""
        info = self.fs.get_file_info(f"{partition_path}/{SUCCESS_MARKER}")
        return info.type == pafs.FileType.File

    def summary(self, dataset: str, day: date) -> dict[str, Any]:
        """The `_SUCCESS` summary of a committed partition."""
        path = self.partition_path(dataset, day)
        if not self.has_partition_marker(path):
            raise PartitionNotFound(
                f"{self.location.uri_of(path)} is not materialized (no {SUCCESS_MARKER} marker)"
            )
        with self.fs.open_input_stream(f"{path}/{SUCCESS_MARKER}") as stream:
            return json.loads(stream.read())

    def parquet_files(self, dataset: str, day: date, subpath: str | None = None) -> list[str]:
        """The Parquet files of a committed partition (or of one sub-folder of it), sorted.

        Raises:
            PartitionNotFound: the partition is not committed, or has no such sub-folder.
        """
        self.summary(dataset, day)  # raises unless committed
        path = self.partition_path(dataset, day)
        if subpath is None:
            return sorted(i.path for i in _files(self.fs, path) if i.path.endswith(".parquet"))
        folder = f"{path}/{_checked_subpath(subpath)}"
        files = sorted(i.path for i in _files(self.fs, folder) if i.path.endswith(".parquet"))
        if not files:
            known = ", ".join(self.subfolders(dataset, day)) or "none"
            raise PartitionNotFound(
                f"{self.location.uri_of(folder)} holds no Parquet file (sub-folders: {known})"
            )
        return files

    def read_partition(
        self, dataset: str, day: date, *, subpath: str | None = None
    ) -> pads.Dataset:
        """A pyarrow dataset over one committed partition, or over one of its sub-folders."""
        files = self.parquet_files(dataset, day, subpath)
        return pads.dataset(files, filesystem=self.fs, format="parquet")

    def iter_batches(
        self,
        dataset: str,
        day: date,
        *,
        subpath: str | None = None,
        columns: list[str] | None = None,
        batch_rows: int = 8192,
    ) -> Iterator[pa.RecordBatch]:
        """Stream a committed partition's rows file by file, in bounded memory.

        A dataset scan reads ahead (measured: 1 GB for a day of wide mapped rows); this reads one
        row group at a time on the calling thread.
        """
        for path in self.parquet_files(dataset, day, subpath):
            with pq.ParquetFile(path, filesystem=self.fs) as file:
                yield from file.iter_batches(
                    batch_size=batch_rows, columns=columns, use_threads=False
                )

    def subfolders(self, dataset: str, day: date) -> list[str]:
        """The sub-folders of a committed partition that hold files (`destination=NAME`), sorted."""
        self.summary(dataset, day)  # raises unless committed
        path = self.partition_path(dataset, day)
        start = len(path) + 1
        nested = (i.path[start:] for i in _files(self.fs, path, recursive=True))
        return sorted({p.split("/", 1)[0] for p in nested if "/" in p})

    def _remove_stale_staging(self, dataset: str, day: date) -> None:
        """Remove what a killed run left in `_staging`/`_trash` for this partition."""
        prefix = f"date={day.isoformat()}-"
        for folder in (_STAGING, _TRASH):
            for info in _entries(self.fs, self.location.path(dataset, folder)):
                if info.base_name.startswith(prefix):
                    log.warning("removing leftover %s from an interrupted run", info.path)
                    _delete_dir_quietly(self.fs, info.path)


def _aside_name(day: date) -> str:
    return f"date={day.isoformat()}-{uuid.uuid4().hex[:12]}"


def _entries(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    return fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))


def _files(fs: pafs.FileSystem, path: str, *, recursive: bool = False) -> list[pafs.FileInfo]:
    selector = pafs.FileSelector(path, allow_not_found=True, recursive=recursive)
    return [i for i in fs.get_file_info(selector) if i.type == pafs.FileType.File]


def _checked_subpath(subpath: str) -> str:
    """A sub-folder path inside a partition; refuses names readers would skip or that escape it."""
    parts = subpath.strip("/").split("/")
    if any(not p or p in (".", "..") or p[0] in "_." for p in parts):
        raise ValueError(
            f"sub-folder {subpath!r}: expected relative folder names not starting with "
            "'_' or '.' (e.g. 'destination=acoustic')"
        )
    return "/".join(parts)


def _write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as out:
        out.write(data)


def _delete_dir_quietly(fs: pafs.FileSystem, path: str) -> None:
    try:
        if fs.get_file_info(path).type == pafs.FileType.Directory:
            fs.delete_dir(path)
    except OSError as exc:  # leftovers are removed by the next run of the partition
        log.warning("could not remove %s: %s", path, exc)
