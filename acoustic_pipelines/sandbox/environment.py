"""Run something against the sandbox: start its servers and give the environment that aims at them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from acoustic_pipelines import settings
from acoustic_pipelines.config import PipelineConfig
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
def sandbox_environment(config: PipelineConfig, *, s3_port: int = 0) -> Iterator[dict[str, str]]:
    """Serve the sandbox on 127.0.0.1 for `config`'s destinations; yield the variables to set.

    Each destination's access point alias becomes a bucket of the S3 sandbox.
    """
    aliases = sorted({d.access_point_alias for d in config.destinations})
    with serve_s3(port=s3_port, buckets=aliases) as s3:
        yield {
            settings.ACOUSTIC_S3_ENDPOINT_ENV: s3.endpoint_url,
            settings.ACOUSTIC_S3_ACCESS_KEY_ENV: s3.access_key,
            settings.ACOUSTIC_S3_SECRET_ENV: s3.secret,
        }
