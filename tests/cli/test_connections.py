"""`acoustic-pipelines connections test-mapping`: each mapping's message for one warehouse record,
or Segment's refusal; unknown models and keys are reported on stderr with exit code 1."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from acoustic_pipelines.cli.main import main
from acoustic_pipelines.connections.sample import GUEST_EVERY, write_sample_warehouse


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT 7 AS id, 'ann@example.com' AS email, 'pro' AS plan"
        )
    monkeypatch.setenv("ACOUSTIC_PIPELINES_WAREHOUSE", str(warehouse))
    config = {
        "destinations": [],
        "connections": {
            "models": [
                {
                    "name": "customers",
                    "table": "customers",
                    "primary_key": "id",
                    "mappings": [
                        {
                            "name": "Plan Changed",
                            "send": "updated",
                            "action": "sendTrack",
                            "mapping": {
                                "user_id": {"@path": "$.properties.email"},
                                "event_name": "Plan Changed",
                                "properties": {"plan": {"@path": "$.properties.plan"}},
                            },
                        },
                        {
                            "name": "Group",
                            "send": "added",
                            "action": "sendGroup",
                            "mapping": {"user_id": {"@path": "$.properties.email"}},
                        },
                    ],
                }
            ]
        },
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return str(path)


def test_prints_each_mapping(config_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "connections",
                "test-mapping",
                "--config",
                config_file,
                "--model",
                "customers",
                "--id",
                "7",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    first, second = out.split("== ")[1:]
    assert first.startswith("Plan Changed (sendTrack, sends updated records)")
    message = json.loads(first[first.index("{") :])
    assert (message["userId"], message["event"], message["properties"]) == (
        "ann@example.com",
        "Plan Changed",
        {"plan": "pro"},
    )
    assert "rejected:" in second and "group_id" in second


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--model", "nope", "--id", "7"], "no Segment Connections model named 'nope'"),
        (["--model", "customers", "--id", "8"], "no row has id = 8"),
    ],
)
def test_errors(
    config_file: str, args: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["connections", "test-mapping", "--config", config_file, *args]) == 1
    assert error in capsys.readouterr().err


def test_the_default_config_on_the_sample_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped models on the demo's warehouse: a customer's identify call with every trait,
    and a guest order (no customer id) refused with Segment's reason."""
    sample = write_sample_warehouse(tmp_path / "warehouse.duckdb", date(2026, 11, 20))
    monkeypatch.setenv("ACOUSTIC_PIPELINES_WAREHOUSE", str(sample.path))
    monkeypatch.delenv("ACOUSTIC_PIPELINES_CONFIG", raising=False)
    assert main(["connections", "test-mapping", "--model", "customers", "--id", "c-0042"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("== Customer Traits (sendIdentify, sends added_or_updated records)")
    message = json.loads(out[out.index("{") :])
    assert (message["type"], message["userId"]) == ("identify", "c-0042")
    assert {"email", "plan", "subscription_status", "lifetime_value"} <= set(message["traits"])
    guest = f"o-20261120-{GUEST_EVERY:03d}"
    assert main(["connections", "test-mapping", "--model", "orders", "--id", guest]) == 0
    out = capsys.readouterr().out
    assert "== Order Completed (sendTrack, sends added records)" in out
    assert "rejected: sendTrack: Either `Anonymous ID` or `User ID` must be defined." in out
