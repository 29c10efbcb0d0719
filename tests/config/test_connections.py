"""The `connections:` section: models and their mappings are checked when the file loads; every
problem is reported at once with the file and its dotted path; the write key never sits in the
file; a mapping pasted from Segment compiles into the message builder of its action."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from acoustic_pipelines.config.connections import (
    MAX_CONNECTION_MAPPINGS,
    REGION_ENDPOINTS,
    ConnectionsConfig,
    is_valid_cron,
)
from acoustic_pipelines.config.loading import ConfigError, load_config, parse_config
from acoustic_pipelines.connections.messages import MessageRejected

FILE = "connections.yaml"
DESTINATION = {
    "name": "acoustic",
    "customer_prefix": "Acme_Prod_",
    "access_point_alias": "alias-s3alias",
    "mappings": [],
}


def mapping(name: str = "Plan Changed", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "send": "added_or_updated",
        "action": "sendTrack",
        "mapping": {"user_id": {"@path": "$.properties.id"}, "event_name": "Plan Changed"},
        **extra,
    }


def model(name: str = "customers", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "table": "customers",
        "primary_key": "id",
        "mappings": [mapping()],
        **extra,
    }


def parse(connections: dict[str, Any]) -> ConnectionsConfig:
    text = yaml.safe_dump(
        {"destinations": [DESTINATION], "connections": connections}, sort_keys=False
    )
    parsed = parse_config(text, file=FILE).connections
    assert parsed is not None
    return parsed


def problems(connections: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(connections)
    return caught.value.problems


def test_the_section_is_optional_and_the_default_file_still_loads() -> None:
    assert (
        parse_config(yaml.safe_dump({"destinations": [DESTINATION]}), file=FILE).connections is None
    )
    load_config()  # config/pipeline.yaml


def test_defaults_and_a_full_section() -> None:
    empty = parse({})
    assert (empty.write_key_env, empty.region, empty.retry_days) == ("SEGMENT_WRITE_KEY", "us", 14)
    assert empty.endpoint_url == REGION_ENDPOINTS["us"] == "https://api.segment.io/v1"
    assert parse({"region": "eu"}).endpoint_url == "https://events.eu1.segmentapis.com/v1"
    full = parse(
        {
            "write_key_env": "RETL_WRITE_KEY",
            "region": "eu",
            "endpoint": "http://127.0.0.1:8089/v1/",
            "retry_days": 3,
            "models": [
                model(schedule="*/15 * * * mon-fri"),
                model(
                    "orders",
                    table=None,
                    query="SELECT * FROM orders WHERE total > 0;",
                    primary_key="order_id",
                    mappings=[mapping("Order", send="deleted", enabled=False)],
                ),
            ],
        }
    )
    assert full.endpoint_url == "http://127.0.0.1:8089/v1"  # the override wins over the region
    customers, orders = full.models
    assert customers.sql == 'SELECT * FROM "customers"'
    assert orders.sql == "SELECT * FROM orders WHERE total > 0"
    assert customers.schedule == "*/15 * * * mon-fri"
    assert orders.enabled_mappings == [] and len(customers.enabled_mappings) == 1
    assert full.model("orders") is orders
    with pytest.raises(KeyError, match="known: customers, orders"):
        full.model("nope")


def test_a_mapping_compiles_with_segments_hidden_defaults() -> None:
    plan = parse({"models": [model()]}).models[0].mappings[0]
    event = {"type": "track", "event": "new", "messageId": "m-1", "properties": {"id": 7}}
    assert plan.build(event) == {
        "userId": "7",
        "event": "Plan Changed",
        "messageId": "m-1",
        "context": {"traits": {}, "consent": {}},
        "properties": {},
        "type": "track",
    }
    with pytest.raises(MessageRejected, match="must be defined"):
        plan.build({**event, "properties": {}})
    assert [plan.sends(c) for c in ("added", "updated", "deleted")] == [True, True, False]


def test_every_problem_at_once_with_its_dotted_path() -> None:
    found = problems(
        {
            "write_key_env": "not a name",
            "region": "mars",
            "endpoint": "ftp://x",
            "retry_days": 0,
            "models": [
                model("Customers", schedule="every hour"),
                {"name": "both", "table": "t", "query": "SELECT 1", "primary_key": "id"},
                {"name": "neither", "primary_key": " "},
                model(
                    "bad_maps",
                    mappings=[
                        mapping(send="sometimes"),
                        mapping("x", action="sendAlias"),
                        mapping("y", mapping={"user_id": {"@path": 3}}),
                        mapping("z", mapping=[1]),
                    ],
                ),
                model("customers", table="drop table; x"),
                model("customers"),
            ],
        }
    )
    text = "\n".join(found)
    expected_paths = [
        "connections.write_key_env:",
        "connections.region:",
        "connections.endpoint:",
        "connections.retry_days:",
        "connections.models.0.name:",
        "connections.models.0.schedule:",
        "connections.models.1: a model reads either a `table` or a `query` (one of the two); got both",
        "connections.models.2.primary_key:",
        "connections.models.3.mappings.0.send:",
        "connections.models.3.mappings.1.action:",
        "connections.models.3.mappings.2.mapping:",
        "connections.models.3.mappings.3.mapping:",
        "connections.models.4.table:",
        "connections.models.5.name: model name 'customers' is already used by model 4",
    ]
    for path in expected_paths:
        assert f"{FILE}: {path}" in text, path
    assert all(line.startswith(f"{FILE}: connections.") for line in found)


def test_at_most_fifty_mappings_over_all_models_and_unique_names() -> None:
    half = MAX_CONNECTION_MAPPINGS // 2
    ok = parse(
        {
            "models": [
                model("a", mappings=[mapping(f"m{i}") for i in range(half)]),
                model("b", mappings=[mapping(f"m{i}") for i in range(half)]),
            ]
        }
    )
    assert sum(len(m.mappings) for m in ok.models) == MAX_CONNECTION_MAPPINGS
    found = problems(
        {
            "models": [
                model("a", mappings=[mapping(f"m{i}") for i in range(half)]),
                model("b", mappings=[mapping(f"m{i}") for i in range(half)] + [mapping("m0")]),
            ]
        }
    )
    assert f"{FILE}: connections.models: 51 mappings over all models" in "\n".join(found)
    assert any("connections.models.1.mappings.25.name: mapping name 'm0'" in p for p in found)


def test_the_write_key_never_sits_in_the_file() -> None:
    found = problems({"write_key": "wk_live_123"})
    assert any("connections.write_key: `write_key` looks like a secret" in p for p in found)
    assert not any("wk_live_123" in p for p in found)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("0 * * * *", True),
        ("*/5 1-3,7 1 jan-mar sun", True),
        ("@daily", True),
        ("0 24 * * *", False),
        ("0 * * *", False),
        ("5-1 * * * *", False),
        ("*/0 * * * *", False),
    ],
)
def test_cron(text: str, valid: bool) -> None:
    assert is_valid_cron(text) is valid
