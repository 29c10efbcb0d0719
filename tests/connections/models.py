"""A Segment Connections model config for tests, parsed the way a config file is."""

from __future__ import annotations

from typing import Any

import yaml

from acoustic_pipelines.config.connections import ConnectionModelConfig
from acoustic_pipelines.config.loading import parse_config


def parse_model(model: dict[str, Any]) -> ConnectionModelConfig:
    """The model as `parse_config` gives it from a file whose `connections` holds it alone."""
    text = yaml.safe_dump({"destinations": [], "connections": {"models": [model]}})
    connections = parse_config(text, file="test.yaml").connections
    assert connections is not None
    return connections.models[0]
