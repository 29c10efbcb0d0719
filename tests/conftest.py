"""Shared fixtures: paths to ../shared, an S3 API server (moto) on 127.0.0.1, sample archives."""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
CONFORMANCE = SHARED / "conformance"
DAY = date(2026, 11, 20)

# Never let an AWS SDK look for credentials or regions outside this machine.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The folder of Segment's conformance vectors; skip when it is not beside the repository."""
    if not CONFORMANCE.is_dir():
        pytest.skip(f"conformance vectors not found at {CONFORMANCE} (../shared/conformance)")
    return CONFORMANCE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, spoken to over HTTP like any S3 endpoint."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket on the S3 server; returns its name."""
    import boto3

    name = f"t-{uuid.uuid4().hex[:8]}-" + re.sub("[^a-z0-9]+", "-", request.node.name.lower())[
        :40
    ].strip("-")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return name
