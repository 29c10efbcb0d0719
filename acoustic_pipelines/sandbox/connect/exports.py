"""Export jobs of the Connect sandbox: gzip CSV files with Connect's export columns, written into
the subscription's SFTP folder by a background worker (or at once, on a control call).

Columns: seed 003 / reference §6, in the documented order. The sandbox only holds behavior
signals, so the marketing, campaign and message columns are present and empty; `SIGNAL_ID`,
`SIGNAL_TYPE` and `TIMESTAMP` are filled for every row, and the audience adds its attribute
columns (`EMAIL`, `PHONE_NUMBER`, `CONTACT_KEY`, `CONTACT_SOURCE`) as a real audience would.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path

from acoustic_pipelines.connect.exports.files import (
    BEHAVIOR_COLUMNS,
    CAMPAIGN_COLUMNS,
    CHANNEL_COLUMNS,
    COMMON_COLUMNS,
    CONSENT_COLUMNS,
    MARKETING_COLUMNS,
    MESSAGE_COLUMNS,
)
from acoustic_pipelines.connect.exports.requests import (
    DEFAULT_FILE_NAME,
    DEFAULT_FOLDER,
    ExportRequest,
)
from acoustic_pipelines.sandbox.connect.store import (
    QUEUED,
    RUNNING,
    ConnectStore,
    ExportJob,
    StoredSignal,
)

log = logging.getLogger(__name__)

SUBSCRIPTION_ID = "0000000001"
DATASET_ID = "sandbox-audience"

# Addressable attributes, consents, then the audience's other attributes (names vary per audience).
CONTACT_COLUMNS = ("EMAIL", "PHONE_NUMBER", *CONSENT_COLUMNS, "CONTACT_KEY", "CONTACT_SOURCE")
GZIP_SUFFIX = ".gz"
EXPORT_COLUMNS = (
    COMMON_COLUMNS
    + BEHAVIOR_COLUMNS
    + MARKETING_COLUMNS
    + CONTACT_COLUMNS
    + CAMPAIGN_COLUMNS
    + MESSAGE_COLUMNS
    + CHANNEL_COLUMNS
)

# Emulator choice: the documented SIGNAL_GROUP values (session, page, order, cart, product) by type.
SIGNAL_GROUPS = {
    "addToCart": "cart",
    "cartAbandonment": "cart",
    "order": "order",
    "productView": "product",
    "productConfiguration": "product",
    "browseAbandonment": "product",
    "identification": "session",
}


def export_row(signal: StoredSignal) -> dict[str, str]:
    """The export CSV row of one stored behavior signal (absent columns are empty)."""
    content = json.loads(signal.content)
    identity = signal.identity
    return {
        "DATASET_ID": DATASET_ID,
        "SUBSCRIPTION_ID": SUBSCRIPTION_ID,
        "TEMPORARY_LINKING_ID": str(uuid.uuid5(uuid.NAMESPACE_URL, repr(sorted(identity.items())))),
        "ACOUSTIC_APP_KEY": signal.app_key,
        "CATEGORY": str(content.get("category", "")),
        "DESCRIPTION": str(content.get("description", "")),
        "NAME": str(content.get("name", "")),
        "OBSERVED_TIMESTAMP": signal.received_at,
        "RECEIVED_TIMESTAMP": signal.received_at,
        "SIGNAL_CONTENT": signal.content,
        "SIGNAL_GROUP": SIGNAL_GROUPS.get(signal.signal_type, "page"),
        "SIGNAL_TIMESTAMP": signal.signal_timestamp,
        "TLTSID": signal.session_id or "",
        "SIGNAL_ID": signal.signal_id,
        "SIGNAL_TYPE": signal.signal_type,
        "TIMESTAMP": signal.received_at,
        "EMAIL": identity.get("email", ""),
        "PHONE_NUMBER": identity.get("sms") or identity.get("whatsapp") or "",
        "CONTACT_KEY": identity.get("contactKey", ""),
        "CONTACT_SOURCE": "sandbox",
    }


def export_file_path(request: ExportRequest, *, day: date, unique: str = "") -> str:
    """Where the job's gzip file goes, relative to the subscription folder (§4.4, §8 #15).

    `path` form: that path plus `.gz`. Otherwise `<parentFolder or Export/Signals>/<day>/
    <namingPrefix><job name>[_<unique>]_Signals_Export.csv.gz`.
    """
    if request.path is not None:
        return request.path + GZIP_SUFFIX
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", request.job_name).strip("_")[:100] or "export"
    if unique:
        slug = f"{slug}_{unique}"
    folder = request.parent_folder or DEFAULT_FOLDER
    name = f"{request.naming_prefix or ''}{slug}_{DEFAULT_FILE_NAME}{GZIP_SUFFIX}"
    return f"{folder}/{day.isoformat()}/{name}"


def write_export_file(target: Path, rows: Iterator[dict[str, str]]) -> int:
    """Write a gzip CSV (header + rows) to `target` atomically; the number of rows written.

    The file appears under its final name only when complete, so an SFTP poller never reads a
    partial export.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    count = 0
    with gzip.open(partial, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    os.replace(partial, target)
    return count


class ExportRunner:
    """Runs QUEUED export jobs: in a background thread after `delay` seconds, or on `run_pending`."""

    def __init__(
        self,
        store: ConnectStore,
        subscription_folder: Path,
        *,
        clock: Callable[[], datetime],
        delay: float = 0.0,
    ) -> None:
        self._store = store
        self._folder = subscription_folder
        self._clock = clock
        self._delay = delay
        self._run_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="connect-exports", daemon=True)

    def start(self) -> None:
        """Start the background worker; jobs a previous sandbox left unfinished run again."""
        self._store.requeue_unfinished()
        self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop the background worker (a job being written is finished first)."""
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def notify(self) -> None:
        """Tell the worker a job was queued."""
        self._wake.set()

    def run_pending(self) -> list[ExportJob]:
        """Run every QUEUED job now, in submission order; the jobs as they ended."""
        with self._run_lock:
            for job in self._store.jobs(status=QUEUED):
                self._run(job)
        return self._store.jobs()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.wait(self._delay):
                return
            try:
                self.run_pending()
            except Exception:  # keep the worker alive; the job itself records its failure
                log.exception("Connect sandbox export worker")

    def _run(self, job: ExportJob) -> None:
        self._store.set_job_status(job.job_id, RUNNING)
        target = self._folder / job.path
        try:
            signals = self._store.iter_export_signals(
                job.signal_types, job.timestamp_start, job.timestamp_end
            )
            rows = write_export_file(target, (export_row(s) for s in signals))
        except OSError as exc:
            self._store.finish_job(
                job, completed=self._clock(), error=f"cannot write {job.path}: {exc}"
            )
            return
        size = target.stat().st_size
        self._store.finish_job(job, completed=self._clock(), rows=rows, size=size)
        log.info("export job %s: %d rows, %d bytes in %s", job.job_id, rows, size, job.path)
