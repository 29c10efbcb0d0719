"""The Tracking API stand-in and a sender to it, as the Segment Connections tests use them."""

from __future__ import annotations

from typing import Any

from acoustic_pipelines.connections.sender import TrackingApiSender
from acoustic_pipelines.sandbox.tracking_api import TrackingApiSandbox

WRITE_KEY = "wk_connections_test"


def sender_for(sandbox: TrackingApiSandbox, **options: Any) -> TrackingApiSender:
    """A sender to `sandbox` that never sleeps between attempts (waits are not the point)."""
    options = {"sleep": lambda _: None, "timeout": 5, **options}
    return TrackingApiSender(endpoint=sandbox.endpoint, write_key=sandbox.write_key, **options)
