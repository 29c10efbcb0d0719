"""Flat-row columns: a column keeps its JSON type when its values share one, else holds JSON text;
keys are ordered by their segments, numbers by value."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from acoustic_pipelines.acoustic.flat_columns import (
    ColumnTypes,
    FlatColumn,
    column_arrays,
    json_text,
    order_columns,
)


def typed(*rows: dict[str, Any]) -> dict[str, FlatColumn]:
    types = ColumnTypes()
    for row in rows:
        types.observe(row)
    return {c.name: c for c in types.columns()}


@pytest.mark.parametrize(
    ("values", "arrow_type", "text"),
    [
        ([True, False, None], pa.bool_(), False),
        ([1, -2, None], pa.int64(), False),
        ([1, 2.5], pa.float64(), False),
        ([2.5, None], pa.float64(), False),
        (["a", None, "b"], pa.string(), False),
        ([None, None], pa.string(), False),
        ([1, "a"], pa.string(), True),
        ([True, 1], pa.string(), True),
        ([1.5, False], pa.string(), True),
    ],
)
def test_a_column_keeps_the_type_its_values_share(
    values: list[Any], arrow_type: pa.DataType, text: bool
) -> None:
    column = typed(*({"k": v} for v in values))["k"]
    assert (column.arrow_type, column.text) == (arrow_type, text)


def test_a_key_missing_from_some_rows_is_typed_by_the_rows_that_have_it() -> None:
    columns = typed({"a": 1}, {"b": "x"}, {"a": 2, "b": None})
    assert columns["a"] == FlatColumn("a", pa.int64(), False)
    assert columns["b"] == FlatColumn("b", pa.string(), False)


def test_a_marked_key_is_text_whatever_its_values() -> None:
    types = ColumnTypes()
    types.observe({"big": 7, "small": 7})
    types.mark_text("big")
    columns = {c.name: c for c in types.columns()}
    assert (columns["big"].text, columns["small"].text) == (True, False)


def test_mixed_values_are_written_as_json_text_and_nulls_stay_null() -> None:
    column = FlatColumn("k", pa.string(), True)
    rows = [{"k": v} for v in ["a,b", 30, 19.99, True, False, None, 2**63]] + [{}]
    (array,) = column_arrays([column], rows)
    assert array.to_pylist() == ["a,b", "30", "19.99", "true", "false", None, str(2**63), None]


def test_typed_values_are_stored_as_they_are_and_missing_keys_are_null() -> None:
    columns = [FlatColumn("f", pa.float64(), False), FlatColumn("i", pa.int64(), False)]
    floats, ints = column_arrays(columns, [{"f": 1, "i": 2**62}, {"f": 2.5}, {"i": None}])
    assert floats.to_pylist() == [1.0, 2.5, None]
    assert ints.to_pylist() == [2**62, None, None]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ('é "q"\n', 'é "q"\n'),
        (0, "0"),
        (2**63, "9223372036854775808"),
        (-1.5, "-1.5"),
        (1e16, "10000000000000000"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (float("inf"), None),
        (True, "true"),
        (None, None),
    ],
)
def test_json_text(value: Any, text: str | None) -> None:
    assert json_text(value) == text


def test_keys_are_ordered_by_segments_with_numbers_by_value() -> None:
    keys = ["products.10.sku", "b", "products.2.sku", "a.b", "a", "products.2", "0.x", "A", "x.1a"]
    keys += ["products.name", "x.01", "x.1"]
    assert order_columns(keys) == [
        "0.x",
        "A",
        "a",
        "a.b",
        "b",
        "products.2",
        "products.2.sku",
        "products.10.sku",
        "products.name",
        "x.01",
        "x.1",
        "x.1a",
    ]


def test_column_order_does_not_depend_on_the_order_rows_came_in() -> None:
    rows = [{"products.10.sku": "a"}, {"total": 1}, {"products.9.sku": "b", "total": 2}]
    assert (
        list(typed(*rows))
        == list(typed(*reversed(rows)))
        == [
            "products.9.sku",
            "products.10.sku",
            "total",
        ]
    )
