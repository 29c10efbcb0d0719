"""Run something against the sandbox: start its servers and give the environment that aims at them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from acoustic_pipelines import settings
from acoustic_pipelines.config import PipelineConfig
from acoustic_pipelines.sandbox.connect_server import SANDBOX_API_KEY, serve_connect
from acoustic_pipelines.sandbox.s3 import serve_s3


def uses_real_acoustic_s3() -> bool:
    """Whether the environment already names an Acoustic S3 endpoint or keys (then no sandbox)."""
    names = (
        settings.ACOUSTIC_S3_ENDPOINT_ENV,
        settings.ACOUSTIC_S3_ACCESS_KEY_ENV,
        settings.ACOUSTIC_S3_SECRET_ENV,
    )
    return any(os.environ.get(name) for name in names)


@contextmanager
def sandbox_environment(
    config: PipelineConfig,
    *,
    s3_port: int = 0,
    connect_port: int = 0,
    folder: Path | None = None,
    tier: str = "ultimate",
) -> Iterator[dict[str, str]]:
    """Serve the sandbox on 127.0.0.1 for `config`'s destinations; yield the variables to set.

    Each destination's access point alias becomes a bucket of the S3 sandbox. The Connect
    sandbox keeps its signals, export jobs and SFTP folder under `folder` (a temporary folder,
    removed afterwards, when None).
    """
    aliases = sorted({d.access_point_alias for d in config.destinations})
    with ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="connect-")))
        s3 = stack.enter_context(serve_s3(port=s3_port, buckets=aliases))
        connect = stack.enter_context(
            serve_connect(folder=folder, api_key=SANDBOX_API_KEY, tier=tier, port=connect_port)
        )
        yield {
            settings.ACOUSTIC_S3_ENDPOINT_ENV: s3.endpoint_url,
            settings.ACOUSTIC_S3_ACCESS_KEY_ENV: s3.access_key,
            settings.ACOUSTIC_S3_SECRET_ENV: s3.secret,
            settings.ACOUSTIC_CONNECT_ENDPOINT_ENV: connect.endpoint,
            settings.ACOUSTIC_API_KEY_ENV: connect.api_key,
        }
