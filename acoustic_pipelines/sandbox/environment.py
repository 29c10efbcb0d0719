"""Run something against the sandbox: start its servers and give the environment that aims at them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path

from acoustic_pipelines import settings
from acoustic_pipelines.config.loading import PipelineConfig
from acoustic_pipelines.connections.sample import write_sample_warehouse
from acoustic_pipelines.sandbox.connect.server import SANDBOX_API_KEY, serve_connect
from acoustic_pipelines.sandbox.s3 import serve_s3
from acoustic_pipelines.sandbox.sftp_server import client_settings, serve_sftp
from acoustic_pipelines.sandbox.tracking_api import serve_tracking_api

SANDBOX_APP_KEY = "sandbox-app-key"
SANDBOX_WRITE_KEY = "sandbox-write-key"
SANDBOX_SOURCE_ID = "retl_sandbox"
#: The sample warehouse the sandbox writes in its folder when the warehouse variable is unset.
WAREHOUSE_FILE = "warehouse.duckdb"
#: Where, in the sandbox's folder, the S3 buckets are saved when it stops (`<bucket>/<key>`).
S3_SUBFOLDER = "s3"


def uses_real_acoustic() -> bool:
    """Whether the environment already names Acoustic S3 or Connect endpoints or keys (no sandbox)."""
    names = (
        settings.ACOUSTIC_S3_ENDPOINT_ENV,
        settings.ACOUSTIC_S3_ACCESS_KEY_ENV,
        settings.ACOUSTIC_S3_SECRET_ENV,
        settings.ACOUSTIC_CONNECT_ENDPOINT_ENV,
        settings.ACOUSTIC_API_KEY_ENV,
    )
    return any(os.environ.get(name) for name in names)


@contextmanager
def sandbox_environment(
    config: PipelineConfig,
    *,
    s3_port: int = 0,
    connect_port: int = 0,
    sftp_port: int = 0,
    folder: Path | None = None,
    tier: str = "ultimate",
    export_delay: float = 0.0,
    received_day: date | None = None,
    archive: str | None = None,
) -> Iterator[dict[str, str]]:
    """Serve the sandbox on 127.0.0.1 for `config`'s destinations; yield the variables to set.

    Each destination's access point alias becomes a bucket of the S3 sandbox. The Connect
    sandbox keeps its signals, export jobs and SFTP folder under `folder` (a temporary folder,
    removed afterwards, when None); the S3 buckets are saved in its `s3/` subfolder when the
    sandbox stops and served again when it starts. The SFTP server serves that folder; a client key made there
    is registered through the sandbox's `updatePublicKeyForConnectUser` and its host key is
    pinned in a known-hosts file beside it. Export jobs complete `export_delay` seconds after
    they are submitted.

    With a `connections:` section, Segment's Tracking API is served too: what it accepts is
    written into the Segment archive (`archive`, default `$ACOUSTIC_PIPELINES_ARCHIVE`; a folder
    or `s3://bucket/prefix` at `$ACOUSTIC_PIPELINES_S3_ENDPOINT_URL`), stamped `receivedAt` on
    `received_day` when given (the demo's day; else now). Unless the config's warehouse variable
    is already set, a sample warehouse for that day is written in `folder` and named by it.
    """
    aliases = sorted({d.access_point_alias for d in config.destinations})
    with ExitStack() as stack:
        temporary = folder is None
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="connect-")))
        s3_folder = None if temporary else folder / S3_SUBFOLDER
        s3 = stack.enter_context(serve_s3(port=s3_port, buckets=aliases, folder=s3_folder))
        connect = stack.enter_context(
            serve_connect(
                folder=folder,
                api_key=SANDBOX_API_KEY,
                tier=tier,
                port=connect_port,
                export_delay=export_delay,
            )
        )
        sftp = stack.enter_context(serve_sftp(sandbox=connect, port=sftp_port))
        sftp_login = client_settings(sandbox=connect, sftp=sftp, folder=folder)
        tracking: dict[str, str] = {}
        if config.connections is not None:
            # Segment Connections' Tracking API: what it accepts lands in the archive (a folder or
            # s3://, opened as the pipeline opens it), where segment/raw_events reads it.
            api = stack.enter_context(
                serve_tracking_api(
                    archive=archive or settings.archive_location(),
                    write_key=SANDBOX_WRITE_KEY,
                    source_id=SANDBOX_SOURCE_ID,
                    clock=_clock(received_day),
                )
            )
            tracking = {
                settings.SEGMENT_TRACKING_API_ENDPOINT_ENV: api.endpoint,
                config.connections.write_key_env: SANDBOX_WRITE_KEY,
            }
            warehouse_env = config.connections.warehouse_env
            if not os.environ.get(warehouse_env):
                day = received_day or datetime.now(UTC).date()
                sample = write_sample_warehouse(folder / WAREHOUSE_FILE, day)
                tracking[warehouse_env] = str(sample.path)
        yield {
            settings.ACOUSTIC_S3_ENDPOINT_ENV: s3.endpoint_url,
            settings.ACOUSTIC_S3_ACCESS_KEY_ENV: s3.access_key,
            settings.ACOUSTIC_S3_SECRET_ENV: s3.secret,
            settings.ACOUSTIC_CONNECT_ENDPOINT_ENV: connect.endpoint,
            settings.ACOUSTIC_API_KEY_ENV: connect.api_key,
            settings.ACOUSTIC_SFTP_HOST_ENV: sftp_login.host,
            settings.ACOUSTIC_SFTP_PORT_ENV: str(sftp_login.port),
            settings.ACOUSTIC_SFTP_USER_ENV: sftp_login.user,
            settings.ACOUSTIC_SFTP_KEY_PATH_ENV: str(sftp_login.key_path),
            settings.ACOUSTIC_SFTP_KNOWN_HOSTS_ENV: str(sftp_login.known_hosts),
            # The application key signals carry (any non-blank value suits the sandbox).
            config.signals.app_key_env: SANDBOX_APP_KEY,
            **tracking,
        }


def _clock(day: date | None) -> Callable[[], datetime]:
    """Now, or a time on `day` that moves on with the clock from 12:00 UTC (within the day)."""
    if day is None:
        return lambda: datetime.now(UTC)
    started = datetime.now(UTC)
    noon = datetime.combine(day, time(12), tzinfo=UTC)
    last = datetime.combine(day, time(23, 59, 59, 999_000), tzinfo=UTC)

    def clock() -> datetime:
        return min(noon + (datetime.now(UTC) - started), last)

    return clock
