"""Segment Connections: the sync ledger, the warehouse and the Tracking API sender for the assets."""

import os

import dagster as dg
from pydantic import Field

from acoustic_pipelines import settings
from acoustic_pipelines.config.connections import ConnectionsConfig
from acoustic_pipelines.connections.ledger import SyncLedger
from acoustic_pipelines.connections.sender import TrackingApiSender
from acoustic_pipelines.connections.sync_lease import LeasedSender
from acoustic_pipelines.connections.warehouse import WarehouseError, warehouse_location
from acoustic_pipelines.database import open_database
from acoustic_pipelines.leases import Lease

CONNECTIONS_LEDGER_ENV = "ACOUSTIC_PIPELINES_CONNECTIONS_LEDGER"
CONNECTIONS_LEDGER_FILE = "_ledgers/connections.sqlite"


class SegmentConnectionsResource(dg.ConfigurableResource):
    """Where Segment Connections remembers its snapshots and sends, and how it reaches Segment.

    The write key and the warehouse come from the environment variables the config's
    `connections.write_key_env` and `connections.warehouse_env` name, read at run time;
    `$SEGMENT_TRACKING_API_ENDPOINT`, when set, replaces the config's region or endpoint (the
    sandbox sets it).
    """

    ledger: str | None = Field(
        default=None,
        description=f"Ledger database: a SQLite file or a postgresql:// URL; unset: "
        f"${CONNECTIONS_LEDGER_ENV}, else ${settings.LEDGER_DATABASE_ENV}, else "
        f"{CONNECTIONS_LEDGER_FILE} in a local lake",
    )
    max_attempts: int = Field(default=6, ge=1, description="Tries per Tracking API request.")
    lease_wait_seconds: float = Field(
        default=600.0,
        ge=0,
        description="How long a sync waits for another sync of the same model to finish "
        "(its lease in the ledger database) before failing, naming it.",
    )

    def sync_ledger(self) -> SyncLedger:
        """The snapshot and sync ledger (SQLite by default, PostgreSQL by one setting)."""
        try:
            location = self.ledger or settings.ledger_location(
                CONNECTIONS_LEDGER_ENV, CONNECTIONS_LEDGER_FILE
            )
        except settings.SettingsError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        return SyncLedger(open_database(location, name="segment_connections"))

    def warehouse(self, config: ConnectionsConfig) -> str:
        """The warehouse location (a DuckDB file or a PostgreSQL URL) from the environment."""
        try:
            return warehouse_location(config.warehouse_env)
        except WarehouseError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    def sender(self, config: ConnectionsConfig, *, lease: Lease | None = None) -> TrackingApiSender:
        """A Tracking API sender with the source's write key from the environment.

        With `lease`, the sender confirms that the sync still holds it before every request.
        """
        write_key = os.environ.get(config.write_key_env, "")
        if not write_key:
            raise dg.Failure(
                description=f"the environment variable {config.write_key_env} holds the HTTP API "
                "source's write key and is not set",
                allow_retries=False,
            )
        endpoint = os.environ.get(settings.SEGMENT_TRACKING_API_ENDPOINT_ENV) or config.endpoint_url
        if lease is not None:
            return LeasedSender(
                lease, endpoint=endpoint, write_key=write_key, max_attempts=self.max_attempts
            )
        return TrackingApiSender(
            endpoint=endpoint, write_key=write_key, max_attempts=self.max_attempts
        )
