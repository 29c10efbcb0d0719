"""A local S3 endpoint on 127.0.0.1 standing in for Acoustic's S3 access point.

It is moto's server mode: the S3 REST API over HTTP, so the pipeline talks to it through the same
code path (dagster-aws's S3Resource, boto3, pyarrow's S3 filesystem) as to AWS. An access point
alias is addressed as a bucket name, which is how Segment's destination and ours use it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)

# moto accepts any key pair; these only make the sandbox's settings pass Segment's checks.
SANDBOX_ACCESS_KEY = "sandbox-access-key"
SANDBOX_SECRET = "sandbox-secret"
SANDBOX_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Sandbox:
    """Where a running sandbox S3 endpoint listens and the credentials it accepts."""

    endpoint_url: str
    access_key: str = SANDBOX_ACCESS_KEY
    secret: str = SANDBOX_SECRET
    region: str = SANDBOX_REGION


@contextmanager
def serve_s3(*, port: int = 0, buckets: Iterable[str] = ()) -> Iterator[S3Sandbox]:
    """Serve S3 on 127.0.0.1 (`port` 0 = a free one) with `buckets` created, until the block ends."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # moto is the `sandbox` extra, installed by `make demo`/`make test`
        raise RuntimeError(
            "the S3 sandbox needs moto's server mode: pip install 'acoustic-pipelines[sandbox]'"
        ) from exc
    port = port or _free_port()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    sandbox = S3Sandbox(endpoint_url=f"http://127.0.0.1:{port}")
    try:
        for bucket in buckets:
            create_bucket(sandbox, bucket)
        log.info("S3 sandbox on %s, buckets: %s", sandbox.endpoint_url, ", ".join(buckets) or "-")
        yield sandbox
    finally:
        server.stop()


def create_bucket(sandbox: S3Sandbox, name: str) -> None:
    """Create a bucket (an access point alias) in the sandbox; an existing one is kept."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=sandbox.endpoint_url,
        aws_access_key_id=sandbox.access_key,
        aws_secret_access_key=sandbox.secret,
        region_name=sandbox.region,
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if name not in existing:
        client.create_bucket(Bucket=name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
