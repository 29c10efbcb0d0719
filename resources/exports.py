"""The export side of Acoustic Connect: the SFTP server holding export files, and the job ledger."""

import os
from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
from pydantic import Field

from acoustic_pipelines import settings
from acoustic_pipelines.connect.exports.ledger import ExportLedger
from acoustic_pipelines.connect.sftp import (
    DEFAULT_KNOWN_HOSTS,
    DEFAULT_PORT,
    SftpSession,
    SftpSettings,
    connect_sftp,
)


class AcousticSftpResource(dg.ConfigurableResource):
    """Opens SFTP sessions to Acoustic Connect's export folder (reference §5.2).

    The private key file's path comes from `dg.EnvVar("ACOUSTIC_SFTP_KEY_PATH")` (definitions.py);
    host, port, user and known-hosts file, when not configured, from `$ACOUSTIC_SFTP_HOST`,
    `$ACOUSTIC_SFTP_PORT`, `$ACOUSTIC_SFTP_USER` and `$ACOUSTIC_SFTP_KNOWN_HOSTS` at run time.
    Host keys are pinned: run `acoustic-pipelines sftp trust-host HOST` once.
    """

    key_path: str = Field(description="Private key file (set it with dg.EnvVar)")
    host: str | None = Field(default=None, description="unset: $ACOUSTIC_SFTP_HOST")
    port: int | None = Field(
        default=None, description=f"unset: $ACOUSTIC_SFTP_PORT, else {DEFAULT_PORT}"
    )
    user: str | None = Field(
        default=None, description="Your Connect login e-mail; unset: $ACOUSTIC_SFTP_USER"
    )
    known_hosts: str | None = Field(
        default=None,
        description=f"Pinned host keys; unset: $ACOUSTIC_SFTP_KNOWN_HOSTS, else {DEFAULT_KNOWN_HOSTS}",
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds to connect and authenticate")

    def get_settings(self) -> SftpSettings:
        """The connection settings (the environment is read here, at run time)."""
        host = self.host or os.environ.get(settings.ACOUSTIC_SFTP_HOST_ENV)
        user = self.user or os.environ.get(settings.ACOUSTIC_SFTP_USER_ENV)
        missing = [
            name
            for name, value in (
                (settings.ACOUSTIC_SFTP_HOST_ENV, host),
                (settings.ACOUSTIC_SFTP_USER_ENV, user),
            )
            if not value
        ]
        if missing:
            raise dg.Failure(
                description=f"Acoustic SFTP: set {' and '.join(missing)} (reference §5.2: the "
                "host of your region, your Connect login e-mail)",
                allow_retries=False,
            )
        port = self.port or int(os.environ.get(settings.ACOUSTIC_SFTP_PORT_ENV) or DEFAULT_PORT)
        known_hosts = (
            self.known_hosts
            or os.environ.get(settings.ACOUSTIC_SFTP_KNOWN_HOSTS_ENV)
            or DEFAULT_KNOWN_HOSTS
        )
        return SftpSettings(
            host=str(host),
            user=str(user),
            key_path=Path(self.key_path).expanduser(),
            known_hosts=Path(known_hosts).expanduser(),
            port=port,
        )

    def open_session(self) -> AbstractContextManager[SftpSession]:
        """An authenticated session, as a context manager (host key pinned, key file login)."""
        return connect_sftp(self.get_settings(), timeout=self.timeout)


class ExportLedgerResource(dg.ConfigurableResource):
    """The ledger of exportSignals jobs: a SQLite file on a local disk, or a PostgreSQL database
    every machine sees."""

    path: str | None = Field(
        default=None,
        description=f"SQLite file or postgresql:// URL; unset: ${settings.EXPORT_LEDGER_ENV}, "
        f"else ${settings.LEDGER_DATABASE_ENV}, else <local lake>/{settings.EXPORT_LEDGER_FILE}",
    )

    def get_ledger(self) -> ExportLedger:
        """Open the ledger (the environment is read here, at run time)."""
        try:
            location = self.path or settings.export_ledger_location()
        except settings.SettingsError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        return ExportLedger(location if "://" in location else Path(location).resolve())
