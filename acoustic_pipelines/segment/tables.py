"""The tables `segment/raw_events` writes: the lake's schemas and Parquet options, and the
scratch tables its workers pass on (candidates and rejects of one archive file)."""

from __future__ import annotations

from typing import Any, Final

import pyarrow as pa

TIMESTAMP: Final = pa.timestamp("ms", tz="UTC")
RAW_EVENTS_SCHEMA: Final = pa.schema(
    [
        ("message_id", pa.string()),
        ("type", pa.string()),
        ("event", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("timestamp", TIMESTAMP),
        ("received_at", TIMESTAMP),
        ("source_id", pa.string()),
        ("payload", pa.string()),
    ]
)
REJECTED_EVENTS_SCHEMA: Final = pa.schema(
    [
        ("file", pa.string()),
        ("line_number", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
    ]
)
UNREADABLE_FILES_SCHEMA: Final = pa.schema(
    [
        ("file", pa.string()),
        ("reason", pa.string()),  # archive.NOT_GZIP, TRUNCATED, CORRUPT or READ_FAILED
        ("detail", pa.string()),
        ("lines_kept", pa.int64()),  # complete lines read before the failure (ingested)
        ("compressed_bytes", pa.int64()),
        ("bytes_unread", pa.int64()),
    ]
)
# The dedupe keys of one archive file's valid events (its raw part's rows, in the same order):
# every raw column but the payload, and where each was read.
KEYS_SCHEMA: Final = (
    RAW_EVENTS_SCHEMA.remove(RAW_EVENTS_SCHEMA.get_field_index("payload"))
    .append(pa.field("line_number", pa.int64()))
    .append(pa.field("file_index", pa.int32()))
)
# Dictionary-encode only the repetitive columns and skip min/max statistics of the big texts.
RAW_PARQUET_OPTIONS: Final[dict[str, Any]] = {
    "compression": "zstd",
    "use_dictionary": ["type", "event", "source_id"],
    "write_statistics": ["message_id", "type", "event", "timestamp", "received_at", "source_id"],
}
REJECTED_PARQUET_OPTIONS: Final[dict[str, Any]] = {
    "compression": "zstd",
    "use_dictionary": ["file", "reason"],
    "write_statistics": ["file", "line_number", "reason"],
}
# Scratch files live minutes on a local disk: fast compression, no statistics.
KEYS_PARQUET_OPTIONS: Final[dict[str, Any]] = {
    "compression": "lz4",
    "use_dictionary": ["type", "event", "source_id"],
    "write_statistics": False,
}
