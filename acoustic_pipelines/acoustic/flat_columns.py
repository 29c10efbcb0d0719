"""The columns of a table of flat Acoustic rows: each key's Arrow type and the keys' order.

Rows (:func:`~acoustic_pipelines.acoustic.rows.build_row_with_stats`) are dicts of flat key to
``str``, ``int``, ``float``, ``bool`` or ``None``, and different rows hold different keys. The
table has one column per key seen on the day; :class:`ColumnTypes` collects what each key held and
then decides.

Typing rule, per column, over its non-null values:

- all booleans → ``bool``;
- all integers → ``int64``;
- all numbers, at least one not an integer → ``float64`` (an integer beyond 2**53 is rounded);
- all strings → ``string``;
- anything else (a mix of strings, numbers and booleans, an integer outside int64, or a column
  marked as text) → ``string`` holding each value's JSON text (:func:`json_text`): strings as
  they are, integers with all their digits, other numbers as JavaScript writes them (``19.99``,
  ``1e-7``, the CSV delivery's rule for float columns), booleans ``true``/``false``;
- no non-null value at all → ``string``, all null.

A JSON ``null`` (the flat row holds the key with ``None``) and a key the row does not have are
both stored as a Parquet null; a CSV writer renders either as an empty cell.

Order rule: keys are compared by their dot-separated segments, left to right; a segment made only
of ASCII digits is a number and sorts before text, numbers by value (``products.2`` before
``products.10``), text by code point (``A`` before ``a``); a key sorts before its own children
(``a`` before ``a.b``). The order depends only on the set of keys, so it is the same whatever the
order of the events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from acoustic_pipelines.actions.js_values import js_number_to_string

__all__ = [
    "ColumnTypes",
    "FlatColumn",
    "column_arrays",
    "fits_int64",
    "json_text",
    "order_columns",
    "segment_key",
]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class _Text:
    """Marks a key whose column is text whatever its values (see ``ColumnTypes.mark_text``)."""


_KIND_TYPES: dict[frozenset[str], pa.DataType] = {
    frozenset(): pa.string(),
    frozenset({"bool"}): pa.bool_(),
    frozenset({"int"}): pa.int64(),
    frozenset({"float"}): pa.float64(),
    frozenset({"int", "float"}): pa.float64(),
    frozenset({"str"}): pa.string(),
}


@dataclass(frozen=True)
class FlatColumn:
    """One column of the table: its key, its Arrow type and whether values are stored as JSON text."""

    name: str
    arrow_type: pa.DataType
    text: bool


class ColumnTypes:
    """Collects the Python types each flat key held over many rows, then types the columns."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, type]] = set()

    def observe(self, row: dict[str, Any]) -> None:
        """Note the type of every value of one row (the hot path: no Python-level loop)."""
        self._seen.update(zip(row, map(type, row.values()), strict=True))

    def update(self, other: ColumnTypes) -> None:
        """Add what another collector saw (another batch or worker of the same day)."""
        self._seen.update(other._seen)

    def mark_text(self, key: str) -> None:
        """Make ``key``'s column text (e.g. it held an integer outside int64)."""
        self._seen.add((key, _Text))

    def columns(self) -> list[FlatColumn]:
        """Every key's column by the typing rule, in the column order."""
        kinds: dict[str, set[str]] = {}
        for key, value_type in self._seen:
            found = kinds.setdefault(key, set())
            if value_type is not type(None):
                found.add(_kind(value_type))
        columns = []
        for key in order_columns(kinds):
            arrow_type = _KIND_TYPES.get(frozenset(kinds[key]))
            text = arrow_type is None
            columns.append(FlatColumn(key, pa.string() if text else arrow_type, text))
        return columns


def _kind(value_type: type) -> str:
    """The typing rule's name for a Python value type (subclasses count as their base)."""
    if issubclass(value_type, bool):
        return "bool"
    if issubclass(value_type, int):
        return "int"
    if issubclass(value_type, float):
        return "float"
    if issubclass(value_type, str):
        return "str"
    return "text"


def json_text(value: Any) -> str | None:
    """A value as text: strings as they are, numbers as JavaScript writes them, ``true``/``false``.

    Integers keep every digit; other numbers read as in Segment's JSON (``14``, ``0.000001``,
    ``1e-7``, ``1e+21``); a number that is not finite is None, as ``JSON.stringify`` makes it null.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return js_number_to_string(float(value)) if math.isfinite(value) else None
    return orjson.dumps(value).decode()


def fits_int64(value: int) -> bool:
    """Whether an integer can be stored in an int64 column."""
    return _INT64_MIN <= value <= _INT64_MAX


def column_arrays(columns: list[FlatColumn], rows: list[dict[str, Any]]) -> list[pa.Array]:
    """The rows as one Arrow array per column, null where a row lacks the key.

    The values of text columns are replaced by their JSON text in ``rows`` itself (the rows are
    usually read back from a spill and thrown away after).
    """
    text = [c.name for c in columns if c.text]
    for row in rows:
        for name in text:
            value = row.get(name)
            if value is not None and value.__class__ is not str:
                row[name] = json_text(value)
    # Arrow's converter looks the keys up in C++: twice as fast as a list per column.
    struct = pa.array(rows, type=pa.struct([(c.name, c.arrow_type) for c in columns]))
    return struct.flatten()


def segment_key(key: str) -> tuple[tuple[int, int, str], ...]:
    """The sort key of a flat key: its segments, numbers (by value) before text."""
    return tuple(
        (0, int(part), part) if part.isascii() and part.isdigit() else (1, 0, part)
        for part in key.split(".")
    )


def order_columns(keys: Iterable[str]) -> list[str]:
    """The keys in the column order of the module docstring."""
    return sorted(keys, key=segment_key)
