"""Shared fixtures: paths to ../shared, an S3 API server (moto) on 127.0.0.1, sample events and a
sample archive."""

from __future__ import annotations

import copy
import os
import re
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from acoustic_pipelines.sandbox.s3 import serve_s3

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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The project's S3 sandbox (moto's server) on 127.0.0.1, spoken to over HTTP like any S3."""
    with serve_s3() as sandbox:
        yield sandbox.endpoint_url


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


# One Segment track call the default Track Calls mapping delivers: its email is the recipient.
_TRACK_EVENT: dict[str, Any] = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "m-1",
    "timestamp": "2026-11-20T10:00:00.000Z",
    "properties": {"email": "ann@example.com", "total": 30},
}


@pytest.fixture
def track_event() -> dict[str, Any]:
    """A track call (``Order Completed``, messageId ``m-1``) with ``properties.email``; a fresh copy."""
    return copy.deepcopy(_TRACK_EVENT)


@pytest.fixture(scope="session")
def sample_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample Segment archive of 200 lines received on DAY (seed 1), in a folder; read only."""
    from acoustic_pipelines.segment.sample import write_sample_archive
    from acoustic_pipelines.storage import open_location

    root = tmp_path_factory.mktemp("sample-archive")
    write_sample_archive(open_location(str(root)), DAY, events=200, seed=1)
    return root


@pytest.fixture(scope="session")
def archived_identify(sample_archive: Path) -> tuple[dict[str, Any], str]:
    """The first identify call of the sample archive and where it is (``"<file key> line <n>"``)."""
    from acoustic_pipelines.segment.archive import list_archive_day, read_lines
    from acoustic_pipelines.storage import open_location

    location = open_location(str(sample_archive))
    for file in list_archive_day(location, DAY).files:
        for number, line in enumerate(read_lines(location, file), start=1):
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and event.get("type") == "identify":
                return event, f"{file.key} line {number}"
    raise AssertionError("no identify event in the sample archive")
