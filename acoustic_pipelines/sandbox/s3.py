"""A local S3 endpoint on 127.0.0.1 standing in for Acoustic's S3 access point.

It is moto's server mode: the S3 REST API over HTTP, so the pipeline talks to it through the same
code path (dagster-aws's S3Resource, boto3, pyarrow's S3 filesystem) as to AWS. An access point
alias is addressed as a bucket name, which is how Segment's destination and ours use it.

moto keeps objects in memory; given a `folder`, the sandbox loads `folder/<bucket>/<key>` files
when it starts and writes every bucket back there when it stops, so what was delivered can be
opened after the sandbox ended (and is there again the next time it starts).
"""

from __future__ import annotations

import logging
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
def serve_s3(
    *, port: int = 0, buckets: Iterable[str] = (), folder: Path | None = None
) -> Iterator[S3Sandbox]:
    """Serve S3 on 127.0.0.1 (`port` 0 = a free one) with `buckets` created, until the block ends.

    With `folder`, the objects saved there are served again and every bucket is saved there
    (one file per object, `folder/<bucket>/<key>`) when the block ends.
    """
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
    buckets = sorted(set(buckets) | set(_saved_buckets(folder)))
    try:
        for bucket in buckets:
            create_bucket(sandbox, bucket)
        if folder is not None:
            _load(sandbox, folder, buckets)
        log.info("S3 sandbox on %s, buckets: %s", sandbox.endpoint_url, ", ".join(buckets) or "-")
        yield sandbox
    finally:
        try:
            if folder is not None:
                _save(sandbox, folder, buckets)
        finally:
            server.stop()


def _client(sandbox: S3Sandbox) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=sandbox.endpoint_url,
        aws_access_key_id=sandbox.access_key,
        aws_secret_access_key=sandbox.secret,
        region_name=sandbox.region,
        # moto keeps an overwritten object's first CRC32 at times; the saved copy is verified
        # by the manifests' checksums, not by this header.
        config=Config(response_checksum_validation="when_required"),
    )


def _saved_buckets(folder: Path | None) -> list[str]:
    if folder is None or not folder.is_dir():
        return []
    return [p.name for p in folder.iterdir() if p.is_dir()]


def _load(sandbox: S3Sandbox, folder: Path, buckets: list[str]) -> None:
    """Put every file saved under `folder/<bucket>/` back as an object."""
    client = _client(sandbox)
    for bucket in buckets:
        root = folder / bucket
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            client.upload_file(str(path), bucket, path.relative_to(root).as_posix())


def _save(sandbox: S3Sandbox, folder: Path, buckets: list[str]) -> None:
    """Write the buckets' objects to `folder/<bucket>/<key>`, replacing what was saved before.

    Only the sandbox's own buckets: moto's state is shared by every server of the process.
    """
    client = _client(sandbox)
    folder.mkdir(parents=True, exist_ok=True)
    for bucket in buckets:
        staging = folder / f".{bucket}.saving"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                target = (staging / item["Key"]).resolve()
                if not target.is_relative_to(staging.resolve()):
                    log.warning(
                        "S3 sandbox: key %r of %s not saved (outside the folder)",
                        item["Key"],
                        bucket,
                    )
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, item["Key"], str(target))
        shutil.rmtree(folder / bucket, ignore_errors=True)
        staging.rename(folder / bucket)
    log.info("S3 sandbox saved in %s", folder)


def create_bucket(sandbox: S3Sandbox, name: str) -> None:
    """Create a bucket (an access point alias) in the sandbox; an existing one is kept."""
    client = _client(sandbox)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if name not in existing:
        client.create_bucket(Bucket=name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
