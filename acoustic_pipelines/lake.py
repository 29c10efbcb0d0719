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

Several datasets of one day written by one step (accepted and rejected events) are committed
with `Lake.commit_together`: their old markers are removed first, then each staged partition is
swapped in with a marker naming the commit's token and its partner datasets. A partition counts
as present only when every partner's marker holds the same token, so a run killed between two
swaps leaves neither visible, never half a day (the re-run commits it whole).

Staged and trashed folders carry their writer's owner tag (`<pid>@<host>`, see `owners.py`): a
later run removes those of dead writers and leaves a live writer's alone. One writer per
partition is the job of a lease (`Lake.lease`, see `leases.py`), not of the orchestrator.

A ledger partition (a record that must survive a killed run, e.g. `connect/signal_pushes`) is
written in place instead, one file at a time: `Lake.write_file` / `Lake.replacing_file` replace
one file atomically (a rename on a local folder, one object PUT on S3, never an append), and
`Lake.unmark` / `Lake.mark` take its `_SUCCESS` marker away while it is being rewritten and put
it back once its consolidated files are written. Never `commit` such a partition: the swap would
drop what was written in place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from acoustic_pipelines import settings
from acoustic_pipelines.leases import (
    DEFAULT_TTL_SECONDS,
    DEFAULT_WAIT_SECONDS,
    Lease,
    LeaseStore,
    hold_lease,
    open_lease_store,
)
from acoustic_pipelines.owners import leftover_removable, owner_tag
from acoustic_pipelines.storage import Location, StorageError

SUCCESS_MARKER = "_SUCCESS"
_STAGING = "_staging"
_TRASH = "_trash"
_LEASES = "_leases"
_COMMIT = "_commit"  # the key of a joint commit's token and partners inside `_SUCCESS`
# Test hook: a process whose environment names a pause point stops there (until killed) after
# creating the file named by PAUSE_FLAG_ENV, so a test can kill it at that exact moment.
PAUSE_AT_ENV = "ACOUSTIC_PIPELINES_PAUSE_AT"
PAUSE_FLAG_ENV = "ACOUSTIC_PIPELINES_PAUSE_FLAG"

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

    def commit_together(self, parts: Sequence[tuple[StagedPartition, dict[str, Any]]]) -> list[str]:
        """Swap several staged partitions of one day in as one commit: all visible, or none.

        Every part's old `_SUCCESS` is removed before any swap; each new marker names the
        commit's token and its partners, and a partition whose partners do not hold the same
        token reads as not committed. Returns the final folders, in the order given.
        """
        days = {staged.day for staged, _ in parts}
        datasets = [staged.dataset for staged, _ in parts]
        if len(days) != 1 or len(set(datasets)) != len(datasets):
            raise ValueError(f"commit_together takes distinct datasets of one day, not {datasets}")
        token = uuid.uuid4().hex
        for staged, _ in parts:
            self.unmark(staged.dataset, staged.day)
        finals = []
        for index, (staged, summary) in enumerate(parts):
            if index:
                _pause_point("lake.commit_together")
            partners = [d for d in datasets if d != staged.dataset]
            finals.append(
                self.commit(staged, {**summary, _COMMIT: {"token": token, "with": partners}})
            )
        return finals

    def lease_store(self) -> LeaseStore:
        """Where this lake's leases are kept.

        `$ACOUSTIC_PIPELINES_LEASES` (else `$ACOUSTIC_PIPELINES_LEDGER_DATABASE`) when set: a
        SQLite file on a local disk or a `postgresql://` URL (every machine sees it). Otherwise a
        local lake keeps them in `<lake>/_leases/leases.sqlite`, and an S3 lake in a SQLite file
        per lake in the temp dir, which serializes the runs of this machine only.
        """
        configured = os.environ.get(settings.LEASES_ENV) or settings.shared_ledger_database()
        if configured:
            return open_lease_store(configured)
        if self.location.is_local:
            return open_lease_store(self.location.path(_LEASES, "leases.sqlite"))
        name = "".join(c if c.isalnum() else "_" for c in self.location.root)
        path = f"{tempfile.gettempdir()}/acoustic-pipelines-leases/{name}.sqlite"
        log.warning(
            "the lake %s is on S3 and %s is not set: partition leases are kept in %s, which only "
            "this machine sees; set it to a postgresql:// URL when runs start on several machines",
            self.location.uri,
            settings.LEASES_ENV,
            path,
        )
        return open_lease_store(path)

    def lease(
        self,
        dataset: str,
        day: date,
        *,
        label: str = "",
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
    ) -> contextlib.AbstractContextManager[Lease]:
        """Hold the write lease of one partition for a block (see `leases.hold_lease`)."""
        return hold_lease(
            self.lease_store(),
            f"{dataset}/date={day.isoformat()}",
            label=label,
            ttl_seconds=ttl_seconds,
            wait_seconds=wait_seconds,
        )

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
        summary = self._marker(path)
        if summary is None:
            raise PartitionNotFound(
                f"{self.location.uri_of(path)} is not materialized (no {SUCCESS_MARKER} marker)"
            )
        commit = summary.pop(_COMMIT, None)
        for partner in commit["with"] if commit else ():
            marker = self._marker(self.partition_path(partner, day))
            if (marker or {}).get(_COMMIT, {}).get("token") != commit["token"]:
                raise PartitionNotFound(
                    f"{self.location.uri_of(path)} is not materialized: it was committed "
                    f"together with {partner}, which does not hold the same commit (a run was "
                    f"interrupted while committing the day); materialize {day} again"
                )
        return summary

    def _marker(self, path: str) -> dict[str, Any] | None:
        """The content of a partition folder's `_SUCCESS`, or None when it has none."""
        if not self.has_partition_marker(path):
            return None
        try:
            with self.fs.open_input_stream(f"{path}/{SUCCESS_MARKER}") as stream:
                return json.loads(stream.read())
        except FileNotFoundError:  # removed since it was seen
            return None

    def parquet_files(self, dataset: str, day: date, subpath: str | None = None) -> list[str]:
        """The Parquet files of a committed partition (or of one sub-folder of it), sorted.

        Raises:
            PartitionNotFound: the partition is not committed, or has no such sub-folder.
        """
        self.summary(dataset, day)  # raises unless committed
        path = self.partition_path(dataset, day)
        if subpath is None:
            return sorted(i.path for i in _files(self.fs, path) if _is_data_file(i))
        folder = f"{path}/{_checked_subpath(subpath)}"
        files = sorted(i.path for i in _files(self.fs, folder) if _is_data_file(i))
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
        """Remove what dead writers left in `_staging`/`_trash` for this partition.

        A live writer's folders (its owner tag names a process alive on this host, or another
        host's recent one) are left alone.
        """
        prefix = f"date={day.isoformat()}-"
        for folder in (_STAGING, _TRASH):
            for info in _entries(self.fs, self.location.path(dataset, folder)):
                if not info.base_name.startswith(prefix):
                    continue
                mtime = info.mtime.timestamp() if info.mtime is not None else None
                if leftover_removable(info.base_name, mtime):
                    log.warning("removing leftover %s of an interrupted run", info.path)
                    _delete_dir_quietly(self.fs, info.path)


def _aside_name(day: date) -> str:
    return f"date={day.isoformat()}-{uuid.uuid4().hex[:12]}-{owner_tag()}"


def _is_data_file(info: pafs.FileInfo) -> bool:
    return info.path.endswith(".parquet") and info.base_name[0] not in "_."


def _pause_point(name: str) -> None:
    """Stop here for good when the environment names this point (a test then kills the process)."""
    if os.environ.get(PAUSE_AT_ENV) != name:
        return
    flag = os.environ.get(PAUSE_FLAG_ENV)
    if flag:
        with open(flag, "w") as out:
            out.write(str(os.getpid()))
    while True:
        time.sleep(3600)


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
