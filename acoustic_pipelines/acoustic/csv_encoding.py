"""Acoustic CSV: mapped rows as RFC 4180 text, cut into files of bounded rows and bytes.

The format, one file = a header row and data rows:

- UTF-8 without a byte-order mark, comma-separated, every record ended by CRLF (RFC 4180 §2.1);
  a CR or LF inside a value is kept as is, inside the value's quotes.
- Header: the column names in schema order, each in double quotes.
- Text: as is, always in double quotes, an inner ``"`` doubled; the empty string is ``""``.
- Integers: exact decimal digits over the whole int64 range (``9007199254740993``), unquoted.
- Floats: the number's JSON text as JavaScript writes it (what Segment's destination sends):
  shortest round-trip digits, plain notation from 1e-6 up to 1e21 (``14``, ``0.000001``,
  ``1700000000000.5``), exponent notation outside (``1e-7``, ``1e+21``), ``-0`` as ``0``; NaN
  and ±Infinity, which JSON cannot hold, as null. Arrow's own float text switches to exponent
  notation from 1e10 (``1.7e+12``), so float columns are turned into text first, which is why
  their values are quoted (CSV has no types: a reader gets the same field either way).
- Booleans: ``true`` / ``false``, unquoted.
- Null: an empty field, unquoted, so a null (``,,``) and an empty string (``,"",``) differ.

Columns may be text, integer, floating point, boolean, null-typed, or dictionary-encoded text;
anything else (timestamps, binary, nested) is refused with :class:`CsvEncodingError` rather than
written in a guessed format. Encoding is done by ``pyarrow.csv`` on slices of about
:data:`PIECE_BYTES`, so memory stays bounded whatever the size of a day.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = [
    "EOL",
    "PIECE_BYTES",
    "CsvEncoder",
    "CsvEncodingError",
    "CsvPiece",
    "javascript_number_text",
    "split_csv_files",
]

EOL = "\r\n"
PIECE_BYTES = 1 << 20  # CSV bytes per encode call: bounds memory, amortises the call's cost
_FIRST_PIECE_ROWS = 64  # before the row width is known
_ROW_OPTIONS = pacsv.WriteOptions(include_header=False, eol=EOL, quoting_style="needed")
_HEADER_OPTIONS = pacsv.WriteOptions(include_header=True, eol=EOL, quoting_style="needed")
# Arrow writes exponent notation from 1e10, JavaScript only from 1e21: between, the text differs.
_ARROW_EXPONENT_FROM = 1e10
_JS_EXPONENT_FROM = 1e21

log = logging.getLogger(__name__)


class CsvEncodingError(ValueError):
    """Raised when rows cannot be written as Acoustic CSV: an unsupported or unexpected column.

    Attributes:
        detail: what was received and what was expected, naming the column.
        column: the column at fault, when there is one.
    """

    def __init__(self, detail: str, column: str | None = None) -> None:
        super().__init__(detail, column)
        self.detail = detail
        self.column = column

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class CsvPiece:
    """Consecutive bytes of one CSV file: its header row (``rows`` = 0) or some data rows."""

    file: int  # number of the file within the day, from 1
    data: bytes
    rows: int


class CsvEncoder:
    """Encodes record batches of one schema as Acoustic CSV rows (see the module docstring)."""

    def __init__(self, schema: pa.Schema) -> None:
        """Check the columns of ``schema``; raises :class:`CsvEncodingError` for a bad one."""
        if len(schema) == 0:
            raise CsvEncodingError("the schema has no columns; expected at least one")
        _check_unique_names(schema)
        self.schema = schema
        self._text_schema = pa.schema([_text_field(field) for field in schema])
        sink = pa.BufferOutputStream()
        pacsv.write_csv(self._text_schema.empty_table(), sink, _HEADER_OPTIONS)
        self.header = sink.getvalue().to_pybytes()

    def prepare(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch with every column in the type it is written from (floats as their text)."""
        if batch.schema.names != self.schema.names or batch.schema.types != self.schema.types:
            raise CsvEncodingError(
                f"a record batch has columns {_describe_schema(batch.schema)}; expected the "
                f"schema given to the encoder, {_describe_schema(self.schema)}"
            )
        columns = [_text_column(column) for column in batch.columns]
        return pa.RecordBatch.from_arrays(columns, schema=self._text_schema)

    def encode(self, prepared: pa.RecordBatch) -> bytes:
        """The CSV records of a batch returned by :meth:`prepare`, without the header."""
        sink = pa.BufferOutputStream()
        pacsv.write_csv(prepared, sink, _ROW_OPTIONS)
        return sink.getvalue().to_pybytes()


def split_csv_files(
    encoder: CsvEncoder,
    batches: Iterable[pa.RecordBatch],
    *,
    max_rows: int,
    max_bytes: int,
) -> Iterator[CsvPiece]:
    """The CSV of ``batches`` as pieces of numbered files of at most ``max_rows`` and ``max_bytes``.

    Each file starts with the header and holds whole rows only; a file gets more than
    ``max_bytes`` only when a single row does not fit in an empty file. No rows, no files.
    The limits are checked at once; the batches are read as the pieces are consumed.

    Raises:
        ValueError: ``max_rows`` < 1, or ``max_bytes`` leaves no room after the header.
        CsvEncodingError: a batch does not have the encoder's schema.
    """
    if max_rows < 1:
        raise ValueError(f"max_rows = {max_rows!r}; expected 1 or more")
    if max_bytes <= len(encoder.header):
        raise ValueError(
            f"max_bytes = {max_bytes!r}; expected more than the {len(encoder.header)} bytes "
            "of the header row"
        )
    cutter = _FileCutter(encoder, max_rows=max_rows, max_bytes=max_bytes)
    return (piece for batch in batches for piece in cutter.cut(encoder.prepare(batch)))


class _FileCutter:
    """The state of the file being filled while batches stream through."""

    def __init__(self, encoder: CsvEncoder, *, max_rows: int, max_bytes: int) -> None:
        self.encoder = encoder
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.file = 1
        self.file_rows = 0
        self.file_bytes = len(encoder.header)
        self.seen_rows = 0
        self.seen_bytes = 0

    def cut(self, batch: pa.RecordBatch) -> Iterator[CsvPiece]:
        """Pieces for the rows of one prepared batch, moving to the next file when one is full."""
        offset = 0
        while offset < batch.num_rows:
            fitted = self._fit(batch, offset)
            if fitted is None:
                self._next_file()
                continue
            data, rows = fitted
            yield from self._add(data, rows)
            offset += rows
            if self.file_rows >= self.max_rows or self.file_bytes >= self.max_bytes:
                self._next_file()

    def _fit(self, batch: pa.RecordBatch, offset: int) -> tuple[bytes, int] | None:
        """The next rows from ``offset`` that fit in this file, encoded, and how many they are.

        None when not even one row fits and the file already has rows; an empty file takes
        one row whatever its size.
        """
        rows = self._rows_to_try(batch.num_rows - offset)
        data = self.encoder.encode(batch.slice(offset, rows))
        room = self.max_bytes - self.file_bytes
        while len(data) > room and rows > 1:
            rows = max(1, min(rows - 1, rows * room // len(data)))
            data = self.encoder.encode(batch.slice(offset, rows))
        if len(data) <= room:
            return data, rows
        if self.file_rows:
            return None
        log.warning(
            "CSV file %d holds one row of %d bytes, over max_bytes = %d",
            self.file,
            len(data),
            self.max_bytes,
        )
        return data, rows

    def _rows_to_try(self, available: int) -> int:
        """How many rows to encode next: a piece of about PIECE_BYTES that fits the file."""
        if not self.seen_rows:
            return min(available, self.max_rows - self.file_rows, _FIRST_PIECE_ROWS)
        row_bytes = max(1, self.seen_bytes // self.seen_rows)
        room_rows = (self.max_bytes - self.file_bytes) // row_bytes
        piece_rows = PIECE_BYTES // row_bytes
        return max(1, min(available, self.max_rows - self.file_rows, room_rows, piece_rows))

    def _add(self, data: bytes, rows: int) -> Iterator[CsvPiece]:
        if not self.file_rows:
            yield CsvPiece(file=self.file, data=self.encoder.header, rows=0)
        yield CsvPiece(file=self.file, data=data, rows=rows)
        self.file_rows += rows
        self.file_bytes += len(data)
        self.seen_rows += rows
        self.seen_bytes += len(data)

    def _next_file(self) -> None:
        self.file += 1
        self.file_rows = 0
        self.file_bytes = len(self.encoder.header)


def _check_unique_names(schema: pa.Schema) -> None:
    seen: set[str] = set()
    for name in schema.names:
        if name in seen:
            raise CsvEncodingError(
                f"column {name!r} appears twice in the schema; expected unique column names",
                name,
            )
        seen.add(name)


def _text_field(field: pa.Field) -> pa.Field:
    """The field as it is written: floats become text; refuses a type with no CSV rule."""
    kind = field.type
    if pa.types.is_dictionary(kind) and _is_text(kind.value_type):
        kind = kind.value_type
    if pa.types.is_floating(kind) or pa.types.is_string_view(kind):
        return pa.field(field.name, pa.string())
    if _is_text(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return pa.field(field.name, kind)
    if pa.types.is_null(kind):
        return pa.field(field.name, kind)
    raise CsvEncodingError(
        f"column {field.name!r} has type {field.type}; expected text, an integer, a float, "
        "a boolean or null (convert it before delivery)",
        field.name,
    )


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _text_column(column: pa.Array) -> pa.Array:
    """One column in the type it is written from (see :func:`_text_field`)."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_floating(column.type):
        return javascript_number_text(column)
    if pa.types.is_string_view(column.type):
        return pc.cast(column, pa.string())
    return column


def javascript_number_text(values: pa.Array) -> pa.Array:
    """Floats as the text JavaScript's ``JSON.stringify`` writes; NaN and ±Infinity as null."""
    values = pc.cast(values, pa.float64())
    finite = pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
    # Adding +0.0 turns -0.0 into 0.0 (IEEE 754) and leaves every other value as it is.
    text = pc.cast(pc.add(finite, 0.0), pa.string())
    size = pc.abs(finite)
    differs = pc.and_(
        pc.greater_equal(size, _ARROW_EXPONENT_FROM), pc.less(size, _JS_EXPONENT_FROM)
    )
    differs = pc.fill_null(differs, False)
    if not pc.any(differs).as_py():
        return text
    plain = [format(Decimal(value), "f") for value in pc.filter(text, differs).to_pylist()]
    return pc.replace_with_mask(text, differs, pa.array(plain, pa.string()))


def _describe_schema(schema: pa.Schema) -> str:
    shown = ", ".join(f"{field.name}: {field.type}" for field in list(schema)[:8])
    return f"({shown}{', …' if len(schema) > 8 else ''})"
