"""Contract of `acoustic_pipelines.acoustic.csv_encoding`: mapped rows → Acoustic CSV files.

- RFC 4180, UTF-8, CRLF after every record, a quoted header row; text quoted with inner quotes
  doubled, CR/LF kept inside the quotes; integers exact; floats as JavaScript writes numbers
  (NaN/±Infinity as null, -0 as 0); booleans `true`/`false`; null an empty unquoted field.
- Python's csv module reads every value back as written.
- Files are cut greedily at `max_rows` rows and `max_bytes` bytes (header included), whole rows
  only, each with the header; only a single row larger than `max_bytes` makes a larger file.
  The cut does not depend on how the rows are batched. No rows, no files.
- Types without a CSV rule, duplicate names and batches of another schema are refused with the
  column named; bad limits are refused at the call, before a batch is read.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import random
import struct
from decimal import Decimal
from itertools import groupby
from typing import Any

import pyarrow as pa
import pytest

from acoustic_pipelines.acoustic.csv_encoding import (
    CsvEncoder,
    CsvEncodingError,
    CsvPiece,
    javascript_number_text,
    split_csv_files,
)

SCHEMA = pa.schema(
    [
        ("uniqueRecipient", pa.string()),
        ("note, with comma", pa.string()),
        ("prénom", pa.string()),
        ("quantity", pa.int64()),
        ("price", pa.float64()),
        ("vip", pa.bool_()),
    ]
)
TRICKY_ROWS: list[dict[str, Any]] = [
    {"uniqueRecipient": "ann@example.com", "note, with comma": "a,b", "prénom": "Zoë",
     "quantity": 1, "price": 14.0, "vip": True},
    {"uniqueRecipient": 'say "hi"', "note, with comma": "line1\nline2", "prénom": "😀 中文",
     "quantity": -(2**63), "price": 1e-7, "vip": False},
    {"uniqueRecipient": "cr\rcrlf\r\nend", "note, with comma": "", "prénom": None,
     "quantity": 2**63 - 1, "price": 1700000000000.5, "vip": None},
    {"uniqueRecipient": '"', "note, with comma": " spaced ", "prénom": "tab\tx",
     "quantity": None, "price": None, "vip": True},
    {"uniqueRecipient": ",", "note, with comma": '""', "prénom": "\u2028",
     "quantity": 9007199254740993, "price": -0.0, "vip": False},
]  # fmt: skip


def encode_all(schema: pa.Schema, batches: list[pa.RecordBatch], **limits: int) -> list[bytes]:
    """The files `split_csv_files` produces, each as its bytes."""
    pieces = split_csv_files(CsvEncoder(schema), batches, **limits)
    return [b"".join(piece.data for piece in group) for _, group in groupby(pieces, _file_of)]


def _file_of(piece: CsvPiece) -> int:
    return piece.file


def parse(data: bytes, schema: pa.Schema) -> list[dict[str, Any]]:
    """Read one CSV file back with Python's csv module into typed values (empty → None)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    assert next(reader) == schema.names
    return [
        {f.name: typed(text, f.type) for f, text in zip(schema, row, strict=True)} for row in reader
    ]


def typed(text: str, kind: pa.DataType) -> Any:
    if pa.types.is_string(kind):
        return text
    if text == "":
        return None
    if pa.types.is_integer(kind):
        return int(text)
    if pa.types.is_floating(kind):
        return float(text)
    return {"true": True, "false": False}[text]


def expected(row: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """A row as it reads back: a null text is "" (csv cannot tell), NaN and ±inf are null."""
    out = {}
    for field in schema:
        value = row[field.name]
        if value is None and pa.types.is_string(field.type):
            value = ""
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        out[field.name] = value
    return out


def test_tricky_values_read_back_exactly() -> None:
    batch = pa.RecordBatch.from_pylist(TRICKY_ROWS, schema=SCHEMA)
    (data,) = encode_all(SCHEMA, [batch], max_rows=100, max_bytes=1 << 20)
    assert parse(data, SCHEMA) == [expected(row, SCHEMA) for row in TRICKY_ROWS]


def test_exact_bytes_of_header_and_each_value_kind() -> None:
    batch = pa.RecordBatch.from_pylist(TRICKY_ROWS[2:4], schema=SCHEMA)
    (data,) = encode_all(SCHEMA, [batch], max_rows=100, max_bytes=1 << 20)
    assert data == (
        b'"uniqueRecipient","note, with comma","pr\xc3\xa9nom","quantity","price","vip"\r\n'
        b'"cr\rcrlf\r\nend","",,9223372036854775807,"1700000000000.5",\r\n'
        b'""""," spaced ","tab\tx",,,true\r\n'
    )
    assert not data.startswith(b"\xef\xbb\xbf")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (14.0, "14"),
        (0.1, "0.1"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (1e10, "10000000000"),
        (1.7e12, "1700000000000"),
        (1700000000000.5, "1700000000000.5"),
        (9007199254740993.0, "9007199254740992"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (-1.5e15, "-1500000000000000"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (-0.0, "0"),
        (float("nan"), None),
        (float("inf"), None),
        (float("-inf"), None),
        (None, None),
    ],
)
def test_float_text_is_javascripts(value: float | None, text: str | None) -> None:
    assert javascript_number_text(pa.array([value], pa.float64())).to_pylist() == [text]


def js_number(value: float) -> str:
    """ECMAScript Number::toString, from Python's shortest round-trip digits (the oracle)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    exact = Decimal(repr(abs(value))).normalize()
    digits = "".join(map(str, exact.as_tuple().digits))
    k, n = len(digits), exact.as_tuple().exponent + len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{sign}{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return f"{sign}0.{'0' * -n}{digits}"
    exponent = f"e{'+' if n >= 1 else '-'}{abs(n - 1)}"
    return f"{sign}{digits[0]}{'.' + digits[1:] if k > 1 else ''}{exponent}"


def test_float_text_matches_javascript_on_random_doubles() -> None:
    rng = random.Random(7)
    values = [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(20_000)]
    values += [rng.uniform(1, 10) * 10.0 ** rng.randint(-9, 23) for _ in range(20_000)]
    values += [float(rng.randint(-(10**17), 10**17)) for _ in range(5_000)]
    values = [value for value in values if math.isfinite(value)]
    got = javascript_number_text(pa.array(values, pa.float64())).to_pylist()
    assert got == [js_number(value) for value in values]
    assert all(float(text) == value for text, value in zip(got, values, strict=True))


def test_other_accepted_column_types() -> None:
    schema = pa.schema(
        [
            ("large", pa.large_string()),
            ("view", pa.string_view()),
            ("small", pa.int32()),
            ("unsigned", pa.uint64()),
            ("single", pa.float32()),
            ("nothing", pa.null()),
            ("category", pa.dictionary(pa.int32(), pa.string())),
        ]
    )
    batch = pa.record_batch(
        [
            pa.array(["x,y"], pa.large_string()),
            pa.array(["v"], pa.string_view()),
            pa.array([-5], pa.int32()),
            pa.array([2**64 - 1], pa.uint64()),
            pa.array([0.5], pa.float32()),
            pa.nulls(1),
            pa.array(["gold"]).dictionary_encode(),
        ],
        schema=schema,
    )
    (data,) = encode_all(schema, [batch], max_rows=10, max_bytes=1000)
    assert data.split(b"\r\n")[1] == b'"x,y","v",-5,18446744073709551615,"0.5",,"gold"'


def test_no_rows_make_no_files() -> None:
    assert encode_all(SCHEMA, [], max_rows=10, max_bytes=1000) == []
    empty = pa.RecordBatch.from_pylist([], schema=SCHEMA)
    assert encode_all(SCHEMA, [empty, empty], max_rows=10, max_bytes=1000) == []


def many_rows(count: int, seed: int = 3) -> list[dict[str, Any]]:
    """Rows of varying width, some of them tricky."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        row = dict(TRICKY_ROWS[i % len(TRICKY_ROWS)])
        row["uniqueRecipient"] = f"user{i}@example.com" + "x" * rng.randint(0, 40)
        row["quantity"] = i
        rows.append(row)
    return rows


def batches_of(rows: list[dict[str, Any]], size: int) -> list[pa.RecordBatch]:
    return [
        pa.RecordBatch.from_pylist(rows[start : start + size], schema=SCHEMA)
        for start in range(0, len(rows), size)
    ]


def test_files_cut_at_max_rows() -> None:
    rows = many_rows(10)
    files = encode_all(SCHEMA, batches_of(rows, 4), max_rows=3, max_bytes=1 << 20)
    assert [len(parse(data, SCHEMA)) for data in files] == [3, 3, 3, 1]
    assert [row for data in files for row in parse(data, SCHEMA)] == [
        expected(row, SCHEMA) for row in rows
    ]


def test_files_cut_greedily_at_max_bytes() -> None:
    rows = many_rows(300)
    encoder = CsvEncoder(SCHEMA)
    prepared = encoder.prepare(pa.RecordBatch.from_pylist(rows, schema=SCHEMA))
    row_bytes = [len(encoder.encode(prepared.slice(i, 1))) for i in range(len(rows))]
    files = encode_all(SCHEMA, batches_of(rows, 64), max_rows=10_000, max_bytes=1000)

    assert len(files) > 20
    assert all(len(data) <= 1000 and data.startswith(encoder.header) for data in files)
    assert [row for data in files for row in parse(data, SCHEMA)] == [
        expected(row, SCHEMA) for row in rows
    ]
    first = 0
    for data in files[:-1]:  # full: the next file's first row would not have fitted
        first += len(parse(data, SCHEMA))
        assert len(data) + row_bytes[first] > 1000


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_cut_does_not_depend_on_batching(batch_size: int) -> None:
    rows = many_rows(200)
    reference = encode_all(SCHEMA, batches_of(rows, 200), max_rows=45, max_bytes=2500)
    assert (
        encode_all(SCHEMA, batches_of(rows, batch_size), max_rows=45, max_bytes=2500) == reference
    )


def test_a_row_larger_than_max_bytes_gets_a_file_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = many_rows(3)
    rows[1]["prénom"] = "é" * 600
    with caplog.at_level(logging.WARNING):
        files = encode_all(SCHEMA, batches_of(rows, 3), max_rows=100, max_bytes=400)
    assert [len(parse(data, SCHEMA)) for data in files] == [1, 1, 1]
    assert len(files[1]) > 400 and all(len(files[i]) <= 400 for i in (0, 2))
    assert "CSV file 2 holds one row" in caplog.text


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"max_rows": 0, "max_bytes": 1000}, "max_rows = 0; expected 1 or more"),
        ({"max_rows": 5, "max_bytes": 20}, "max_bytes = 20; expected more than the 73 bytes"),
    ],
)
def test_bad_limits_are_refused_at_the_call(limits: dict[str, int], message: str) -> None:
    def never_read() -> Any:
        raise AssertionError("batches read")
        yield

    with pytest.raises(ValueError, match=message):
        split_csv_files(CsvEncoder(SCHEMA), never_read(), **limits)


@pytest.mark.parametrize(
    "kind", [pa.timestamp("ms"), pa.binary(), pa.list_(pa.string()), pa.decimal128(10, 2)]
)
def test_types_without_a_csv_rule_are_refused(kind: pa.DataType) -> None:
    schema = pa.schema([("message_id", pa.string()), ("when", kind)])
    with pytest.raises(CsvEncodingError, match=r"column 'when' has type .*; expected text") as info:
        CsvEncoder(schema)
    assert info.value.column == "when"


def test_duplicate_and_missing_columns_are_refused() -> None:
    with pytest.raises(CsvEncodingError, match="column 'a' appears twice"):
        CsvEncoder(pa.schema([("a", pa.string()), ("a", pa.int64())]))
    with pytest.raises(CsvEncodingError, match="no columns"):
        CsvEncoder(pa.schema([]))


def test_a_batch_of_another_schema_is_refused() -> None:
    other = pa.RecordBatch.from_pylist([{"uniqueRecipient": "a"}])
    with pytest.raises(
        CsvEncodingError, match=r"has columns \(uniqueRecipient: string\); expected"
    ):
        list(split_csv_files(CsvEncoder(SCHEMA), [other], max_rows=10, max_bytes=1000))
