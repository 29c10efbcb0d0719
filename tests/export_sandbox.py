"""The export side of the sandbox for tests: Connect (GraphQL over HTTP) and SFTP (SSH) on
127.0.0.1, the environment a deployment sets for them, a pipeline config and signals stored on
chosen days."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from acoustic_pipelines import settings
from acoustic_pipelines.connect.client import ConnectClient
from acoustic_pipelines.connect.exports.ledger import ExportLedger
from acoustic_pipelines.connect.exports.quota import DailyLimits
from acoustic_pipelines.sandbox.connect.server import ConnectSandbox, serve_connect
from acoustic_pipelines.sandbox.connect.store import now_utc
from acoustic_pipelines.sandbox.sftp_server import client_settings, serve_sftp
from resources import AcousticConnectResource, LakeResource, SegmentArchiveResource
from resources.exports import AcousticSftpResource, ExportLedgerResource
from resources.pipeline_config import PipelineConfigResource
from tests.seed_signals import SEED_ADD_TO_CART, SEED_PAGE_VIEW

API_KEY = "ck-SECRET-exports-5f1e"
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / settings.DEFAULT_CONFIG
APP_KEY_ENV = "ACOUSTIC_APP_KEY"


@dataclass(frozen=True)
class ExportSandbox:
    """A running Connect + SFTP sandbox and the folders and environment aimed at it."""

    connect: ConnectSandbox
    folder: Path
    environment: dict[str, str]

    @property
    def lake(self) -> Path:
        return Path(self.environment[settings.LAKE_ENV])

    @property
    def ledger(self) -> ExportLedger:
        return ExportLedger(self.environment[settings.EXPORT_LEDGER_ENV])

    @property
    def config_path(self) -> Path:
        return Path(self.environment[settings.CONFIG_ENV])

    def write_config(self, **exports: Any) -> None:
        """The default config with `exports:` keys replaced (reserve 0 unless given)."""
        raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
        raw["exports"] = {**copy.deepcopy(raw["exports"]), "reserve": {}, **exports}
        self.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))

    def only_behavior(self, **exports: Any) -> None:
        """A config exporting the behavior definition only (one job per window)."""
        raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
        behavior = raw["exports"]["definitions"][0]
        self.write_config(definitions=[behavior], **exports)

    def store_signals(self, per_day: Mapping[date, int], *, hour: int = 12) -> None:
        """Store `n` signals (alternately pageView and addToCart) timed on each day."""
        signals = []
        for day, count in per_day.items():
            moment = datetime.combine(day, time(hour), tzinfo=UTC)
            for i in range(count):
                signal = copy.deepcopy(SEED_PAGE_VIEW if i % 2 == 0 else SEED_ADD_TO_CART)
                stamp = moment.replace(minute=i % 60, second=i // 60 % 60)
                signal["signalContent"]["signalTimestamp"] = stamp.isoformat(
                    timespec="milliseconds"
                ).replace("+00:00", "Z")
                signal["signalContent"]["name"] += f" #{day} {i}"
                signals.append(signal)
        with ConnectClient(api_key=API_KEY, endpoint=self.connect.endpoint) as client:
            for start in range(0, len(signals), 500):
                client.create_signals(signals[start : start + 500])

    def client(self) -> ConnectClient:
        """A Connect client aimed at the sandbox (a context manager)."""
        return ConnectClient(api_key=API_KEY, endpoint=self.connect.endpoint)

    def sandbox_jobs(self) -> list[dict[str, Any]]:
        """Every export job the sandbox received."""
        return self.connect.jobs()["jobs"]


def resources() -> dict[str, Any]:
    """The code location's resources, reading the environment like a deployment."""
    return {
        "segment_archive": SegmentArchiveResource(),
        "lake": LakeResource(),
        "pipeline_config": PipelineConfigResource(),
        "acoustic_connect": AcousticConnectResource(
            api_key=dg.EnvVar(settings.ACOUSTIC_API_KEY_ENV), max_retries=1
        ),
        "acoustic_sftp": AcousticSftpResource(
            key_path=dg.EnvVar(settings.ACOUSTIC_SFTP_KEY_PATH_ENV)
        ),
        "export_ledger": ExportLedgerResource(),
    }


@contextmanager
def export_sandbox(
    folder: Path,
    *,
    export_delay: float = 0.0,
    clock: Callable[[], datetime] = now_utc,
    limits: DailyLimits | None = None,
) -> Iterator[ExportSandbox]:
    """Serve Connect and SFTP under `folder`; the environment to set for the pipeline.

    `clock` is Connect's time (its UTC day is the quota day), `limits` its daily export limits.
    """
    with (
        serve_connect(
            folder=folder / "connect",
            api_key=API_KEY,
            tier="premium",
            export_delay=export_delay,
            clock=clock,
            limits=limits,
        ) as connect,
        serve_sftp(sandbox=connect) as sftp,
    ):
        login = client_settings(sandbox=connect, sftp=sftp, folder=folder / "client")
        environment = {
            settings.ACOUSTIC_CONNECT_ENDPOINT_ENV: connect.endpoint,
            settings.ACOUSTIC_API_KEY_ENV: API_KEY,
            settings.ACOUSTIC_SFTP_HOST_ENV: login.host,
            settings.ACOUSTIC_SFTP_PORT_ENV: str(login.port),
            settings.ACOUSTIC_SFTP_USER_ENV: login.user,
            settings.ACOUSTIC_SFTP_KEY_PATH_ENV: str(login.key_path),
            settings.ACOUSTIC_SFTP_KNOWN_HOSTS_ENV: str(login.known_hosts),
            settings.LAKE_ENV: str(folder / "lake"),
            settings.ARCHIVE_ENV: str(folder / "archive"),
            settings.EXPORT_LEDGER_ENV: str(folder / "ledger" / "export_jobs.sqlite"),
            settings.CONFIG_ENV: str(folder / "pipeline.yaml"),
            APP_KEY_ENV: "app-key-for-tests",
        }
        sandbox = ExportSandbox(connect, folder, environment)
        sandbox.write_config()
        yield sandbox
