"""Fixtures shared by the Segment Connections tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from acoustic_pipelines.sandbox.tracking_api import TrackingApiSandbox, serve_tracking_api
from tests.connections.tracking import WRITE_KEY


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[TrackingApiSandbox]:
    """The Tracking API stand-in on 127.0.0.1, archiving into `tmp_path`/archive."""
    with serve_tracking_api(archive=tmp_path / "archive", write_key=WRITE_KEY) as running:
        yield running
