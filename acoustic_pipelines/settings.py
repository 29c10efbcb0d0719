"""Locations and dates the pipeline takes from the environment, with the embedded defaults."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Final

ARCHIVE_ENV: Final = "ACOUSTIC_PIPELINES_ARCHIVE"
LAKE_ENV: Final = "ACOUSTIC_PIPELINES_LAKE"
START_DATE_ENV: Final = "ACOUSTIC_PIPELINES_START_DATE"
S3_ENDPOINT_ENV: Final = "ACOUSTIC_PIPELINES_S3_ENDPOINT_URL"
CONFIG_ENV: Final = "ACOUSTIC_PIPELINES_CONFIG"
# Acoustic's S3 access point: the keys are secrets, read by the resource through dagster.EnvVar.
ACOUSTIC_S3_ACCESS_KEY_ENV: Final = "ACOUSTIC_S3_ACCESS_KEY"
ACOUSTIC_S3_SECRET_ENV: Final = "ACOUSTIC_S3_SECRET"
ACOUSTIC_S3_ENDPOINT_ENV: Final = "ACOUSTIC_S3_ENDPOINT_URL"
# Acoustic Connect's GraphQL API: the endpoint URL, and the API key (a secret, read via EnvVar).
ACOUSTIC_CONNECT_ENDPOINT_ENV: Final = "ACOUSTIC_CONNECT_ENDPOINT"
ACOUSTIC_API_KEY_ENV: Final = "ACOUSTIC_API_KEY"
# Acoustic Connect's SFTP server (exports): host, port, user, private key file, pinned host keys.
ACOUSTIC_SFTP_HOST_ENV: Final = "ACOUSTIC_SFTP_HOST"
ACOUSTIC_SFTP_PORT_ENV: Final = "ACOUSTIC_SFTP_PORT"
ACOUSTIC_SFTP_USER_ENV: Final = "ACOUSTIC_SFTP_USER"
ACOUSTIC_SFTP_KEY_PATH_ENV: Final = "ACOUSTIC_SFTP_KEY_PATH"
ACOUSTIC_SFTP_KNOWN_HOSTS_ENV: Final = "ACOUSTIC_SFTP_KNOWN_HOSTS"
# Segment Connections: another Tracking API than the config's region or endpoint (the sandbox's).
SEGMENT_TRACKING_API_ENDPOINT_ENV: Final = "SEGMENT_TRACKING_API_ENDPOINT"
# The ledger of exportSignals jobs (a SQLite file on a local disk).
EXPORT_LEDGER_ENV: Final = "ACOUSTIC_PIPELINES_EXPORT_LEDGER"
EXPORT_LEDGER_FILE: Final = "_ledgers/export_jobs.sqlite"
# Partition write leases (a SQLite file on a local disk); unset: `<lake>/_leases/leases.sqlite`.
LEASES_ENV: Final = "ACOUSTIC_PIPELINES_LEASES"
# Every ledger at once (export jobs, partition leases, Segment Connections): a SQLite file or a
# `postgresql://` URL that every machine sees. A ledger's own variable, when set, wins.
LEDGER_DATABASE_ENV: Final = "ACOUSTIC_PIPELINES_LEDGER_DATABASE"
# Worker processes that share a day's ingest and mapping; unset: one per core of the machine.
WORKERS_ENV: Final = "ACOUSTIC_PIPELINES_WORKERS"

DEFAULT_ARCHIVE: Final = "./sample-archive"
DEFAULT_LAKE: Final = "./lake"
DEFAULT_START_DATE: Final = "2026-01-01"
DEFAULT_CONFIG: Final = "config/pipeline.yaml"


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


def archive_location() -> str:
    """The Segment archive root: `$ACOUSTIC_PIPELINES_ARCHIVE`, else the demo's sample archive."""
    return os.environ.get(ARCHIVE_ENV) or DEFAULT_ARCHIVE


def lake_location() -> str:
    """The lake root: `$ACOUSTIC_PIPELINES_LAKE`, else `./lake`."""
    return os.environ.get(LAKE_ENV) or DEFAULT_LAKE


def shared_ledger_database() -> str | None:
    """`$ACOUSTIC_PIPELINES_LEDGER_DATABASE`: one SQLite file or PostgreSQL URL for every ledger."""
    return os.environ.get(LEDGER_DATABASE_ENV) or None


def ledger_location(own_env: str, lake_file: str) -> str:
    """Where a ledger lives: its own variable, else the shared ledger database, else a SQLite file
    at `lake_file` inside a local lake.

    Raises:
        SettingsError: The lake is on S3 and neither variable is set (SQLite needs a local disk).
    """
    configured = os.environ.get(own_env) or shared_ledger_database()
    if configured:
        return configured if "://" in configured else str(Path(configured).expanduser())
    lake = lake_location()
    if "://" in lake:
        raise SettingsError(
            f"the lake {lake} is not a local folder: set {LEDGER_DATABASE_ENV} to a "
            f"postgresql:// URL (or {own_env} to a file on a local disk) for the ledgers"
        )
    return str(Path(lake) / lake_file)


def export_ledger_location() -> str:
    """The export-job ledger: `$ACOUSTIC_PIPELINES_EXPORT_LEDGER`, else the shared ledger
    database, else `_ledgers/export_jobs.sqlite` of a local lake."""
    return ledger_location(EXPORT_LEDGER_ENV, EXPORT_LEDGER_FILE)


def s3_endpoint_url() -> str | None:
    """A non-AWS S3 endpoint for s3:// archive and lake locations (unset means AWS)."""
    return os.environ.get(S3_ENDPOINT_ENV) or None


def acoustic_s3_endpoint_url() -> str | None:
    """A non-AWS endpoint for Acoustic's S3 access point (e.g. the sandbox); unset means AWS."""
    return os.environ.get(ACOUSTIC_S3_ENDPOINT_ENV) or None


def config_path() -> Path:
    """The pipeline config file: `$ACOUSTIC_PIPELINES_CONFIG`, else `config/pipeline.yaml`.

    The default is looked up in the working directory first, then in the repository this package
    was installed from (an editable install run from another folder).
    """
    configured = os.environ.get(CONFIG_ENV)
    if configured:
        return Path(configured)
    default = Path(DEFAULT_CONFIG)
    if default.is_file():
        return default
    in_repository = Path(__file__).resolve().parents[1] / DEFAULT_CONFIG
    return in_repository if in_repository.is_file() else default


def start_date() -> date:
    """The first daily partition: `$ACOUSTIC_PIPELINES_START_DATE` (YYYY-MM-DD), else 2026-01-01."""
    raw = os.environ.get(START_DATE_ENV) or DEFAULT_START_DATE
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{START_DATE_ENV} = {raw!r} is not a date like 2026-11-20") from None


def worker_count(configured: int | None = None) -> int:
    """Worker processes for a day: the run's setting, else `$ACOUSTIC_PIPELINES_WORKERS`, else
    the machine's cores (the cores this process may use)."""
    if configured is not None:
        if configured < 1:
            raise SettingsError(f"workers = {configured!r}: give at least 1")
        return configured
    raw = os.environ.get(WORKERS_ENV)
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{WORKERS_ENV} = {raw!r} is not a whole number") from None
        if value < 1:
            raise SettingsError(f"{WORKERS_ENV} = {raw!r}: give at least 1")
        return value
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
