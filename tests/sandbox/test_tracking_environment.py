"""With a `connections:` section, the sandbox environment also serves the Tracking API: its
variables aim Segment Connections' sender at it (endpoint and write key), and what it accepts
lands in the archive `segment/raw_events` reads. Without the section nothing changes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from acoustic_pipelines import settings
from acoustic_pipelines.config.loading import parse_config
from acoustic_pipelines.connections.sender import Outgoing, message_size
from acoustic_pipelines.sandbox.environment import sandbox_environment
from acoustic_pipelines.segment.archive import day_folder
from resources.connections import SegmentConnectionsResource

DESTINATION = {
    "name": "acoustic",
    "customer_prefix": "Acme_Prod_",
    "access_point_alias": "alias-s3alias",
}


def test_the_tracking_api_writes_into_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.ARCHIVE_ENV, str(tmp_path / "archive"))
    config = parse_config(
        yaml.safe_dump(
            {"destinations": [DESTINATION], "connections": {"write_key_env": "RETL_KEY"}}
        )
    )
    assert config.connections is not None
    with sandbox_environment(config, folder=tmp_path / "sandbox") as variables:
        endpoint = variables[settings.SEGMENT_TRACKING_API_ENDPOINT_ENV]
        assert endpoint.startswith("http://127.0.0.1:") and variables["RETL_KEY"]
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        sender = SegmentConnectionsResource().sender(config.connections)
        assert sender.host == endpoint.removesuffix("/v1")
        message = {"type": "identify", "userId": "u1", "messageId": "m-env", "traits": {}}
        assert sender.send_batch([Outgoing("m-env", message, message_size(message))]).sent
    today = datetime.now(UTC).date()
    files = list(
        (tmp_path / "archive" / "segment-logs" / "retl_sandbox" / day_folder(today)).glob("*.gz")
    )
    assert len(files) == 1


def test_no_tracking_api_without_connections(tmp_path: Path) -> None:
    config = parse_config(yaml.safe_dump({"destinations": [DESTINATION]}))
    with sandbox_environment(config, folder=tmp_path / "sandbox") as variables:
        assert settings.SEGMENT_TRACKING_API_ENDPOINT_ENV not in variables
