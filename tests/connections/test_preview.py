"""Contract of `acoustic_pipelines.connections.preview` (Segment's Test Mapping for one record):
each enabled mapping's message for the row with that key, or Segment's refusal; nothing is sent
or recorded; the row's columns are exactly what a sync's mappings read."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from acoustic_pipelines.config.connections import ConnectionModelConfig
from acoustic_pipelines.connections.changes import detect_changes
from acoustic_pipelines.connections.preview import preview_record, record_sql
from acoustic_pipelines.connections.warehouse import read_model
from tests.connections.models import parse_model

MODEL = {
    "name": "customers",
    "query": "SELECT * FROM customers WHERE plan <> 'none'",
    "primary_key": "id",
    "mappings": [
        {
            "name": "Traits",
            "send": "added_or_updated",
            "action": "sendIdentify",
            "mapping": {
                "user_id": {"@path": "$.properties.email"},
                "traits": {"@path": "$.properties"},
            },
        },
        {
            "name": "Plan",
            "send": "updated",
            "action": "sendGroup",
            "mapping": {"user_id": {"@path": "$.properties.email"}},
        },
    ],
}


@pytest.fixture
def warehouse(tmp_path: Path) -> str:
    path = str(tmp_path / "w.duckdb")
    with duckdb.connect(path) as con:
        con.execute(
            "CREATE TABLE customers AS SELECT * FROM (VALUES "
            "(1, 'a@example.com', 'pro', TIMESTAMPTZ '2026-11-01 10:00:00+00'), "
            "(2, NULL, 'pro', NULL), (3, 'c@example.com', 'none', NULL)) t(id, email, plan, seen)"
        )
    return path


def model_config() -> ConnectionModelConfig:
    return parse_model(MODEL)


def test_each_mapping_message_or_refusal(warehouse: str) -> None:
    model = model_config()
    traits, plan = preview_record(model, "1", warehouse=warehouse)
    assert traits.message is not None and traits.rejected is None
    assert traits.message["traits"]["email"] == "a@example.com"
    with detect_changes(read_model(warehouse, model.sql), [], primary_key="id") as change_set:
        synced = next(c.properties for page in change_set.changes() for c in page if c.key == "1")
    assert traits.message["traits"] == synced  # what a sync would send, timestamps included
    assert plan.message is None and "group_id" in (plan.rejected or "")
    (traits_2, _) = preview_record(model, "2", warehouse=warehouse)
    assert "must be defined" in (traits_2.rejected or "")


def test_missing_and_filtered_rows(warehouse: str) -> None:
    model = model_config()
    with pytest.raises(LookupError, match="no row has id = 3"):
        preview_record(model, "3", warehouse=warehouse)  # the model's query leaves it out
    with pytest.raises(LookupError, match="no row has id = 9"):
        preview_record(model, "9", warehouse=warehouse)
    assert record_sql(model, "o'brien").endswith("\"id\" = 'o''brien'")
