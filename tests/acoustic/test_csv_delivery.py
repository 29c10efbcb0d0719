"""Contract of `acoustic_pipelines.acoustic.csv_delivery`, against moto's S3 server over HTTP.

- A day of rows lands as `<prefix><YYYY_MM_DD>_<NNNN>.csv` objects (from 0001, text/csv) whose
  CSV reads back to exactly the rows given, plus `<prefix><YYYY_MM_DD>_manifest.json` listing
  every file with rows, bytes, SHA-256, MD5 and ETag; the report says the same.
- Files are cut at `max_rows` / `max_bytes`; a file of `multipart_threshold` bytes or more goes
  by multipart upload in `part_size` parts (moto, like S3, refuses parts under 5 MiB but the
  last, so those tests use 5 MiB parts); the ETags are checked against the bytes sent.
- Delivering a day again replaces its files: stale ones of an earlier, larger delivery are
  removed, and no other object (other day, other prefix, other names) is touched.
- Bad settings, limits or column types are refused before any request: the bucket is unchanged.
- An ETag that does not match the bytes sent raises UploadIntegrityError naming the object;
  a failed multipart upload is aborted; a failed request names the request and the object.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import boto3
import pyarrow as pa
import pytest

from acoustic_pipelines.acoustic.csv_delivery import (
    CSV_CONTENT_TYPE,
    DeliveryReport,
    DeliveryRequestError,
    DeliverySettingsError,
    UploadIntegrityError,
    check_delivery_settings,
    deliver_csv,
    expected_etag,
    verify_etag,
)
from acoustic_pipelines.acoustic.csv_encoding import CsvEncodingError
from acoustic_pipelines.acoustic.rows import (
    INVALID_CUSTOMER_PREFIX,
    MISSING_CUSTOMER_PREFIX,
    MISSING_S3_ACCESS_KEY,
    MISSING_S3_BUCKET_ACCESS_POINT,
    MISSING_S3_REGION,
    MISSING_S3_SECRET,
)

DAY = date(2026, 11, 20)
PREFIX = "DemoOrg_Prod_"
MiB = 1 << 20
SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("mapping", pa.string()),
        ("uniqueRecipient", pa.string()),
        ("eventSource", pa.string()),
        ("timestamp", pa.string()),
        ("note", pa.string()),
        ("products.0.sku", pa.string()),
        ("quantity", pa.int64()),
        ("total", pa.float64()),
        ("vip", pa.bool_()),
    ]
)
TEXT = {field.name for field in SCHEMA if pa.types.is_string(field.type)}
NOTES = ["a,b", 'say "hi"', "line1\nline2", "cr\rcrlf\r\n", "Zoë 😀 中文", "", None, " x "]
TOTALS = [14.0, 1e-7, 0.1, 1700000000000.5, -2.5, None, 1e21, 3.0]


@pytest.fixture
def client(s3_endpoint: str) -> Any:
    """A boto3 S3 client of its own (event hooks stay in one test) for the moto server."""
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


def rows_of(count: int, *, start: int = 0, pad: int = 0) -> list[dict[str, Any]]:
    """Mapped rows like the producer's, cycling through tricky values; `pad` widens each row."""
    return [
        {
            "message_id": f"m-{i}",
            "mapping": "Track Calls",
            "uniqueRecipient": f"user{i}@example.com",
            "eventSource": "track Event",
            "timestamp": "2026-11-20T10:00:00.000Z",
            "note": NOTES[i % len(NOTES)] if not pad else f"{i:08d}" + "p" * pad,
            "products.0.sku": None if i % 3 else f"SKU-{i}",
            "quantity": None if i % 5 == 4 else i * (2**40),
            "total": TOTALS[i % len(TOTALS)],
            "vip": None if i % 7 == 6 else i % 2 == 0,
        }
        for i in range(start, start + count)
    ]


def batches(rows: list[dict[str, Any]], size: int = 1000) -> Iterator[pa.RecordBatch]:
    for begin in range(0, len(rows), size):
        yield pa.RecordBatch.from_pylist(rows[begin : begin + size], schema=SCHEMA)


def deliver(client: Any, bucket: str, rows: list[dict[str, Any]], **options: Any) -> DeliveryReport:
    return deliver_csv(
        client,
        bucket=bucket,
        customer_prefix=PREFIX,
        day=DAY,
        schema=SCHEMA,
        batches=batches(rows),
        **options,
    )


def keys(client: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def body(client: Any, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def read_rows(data: bytes) -> list[dict[str, Any]]:
    """One CSV object read back with Python's csv module, typed by SCHEMA (empty → None)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    assert next(reader) == SCHEMA.names
    return [dict(zip(SCHEMA.names, map(typed, SCHEMA.types, row), strict=True)) for row in reader]


def typed(kind: pa.DataType, text: str) -> Any:
    if pa.types.is_string(kind):
        return text
    if text == "":
        return None
    if pa.types.is_int64(kind):
        return int(text)
    if pa.types.is_float64(kind):
        return float(text)
    return {"true": True, "false": False}[text]


def as_read(row: dict[str, Any]) -> dict[str, Any]:
    """A row as Python's csv module gives it back: a null text reads as ""."""
    return {name: "" if value is None and name in TEXT else value for name, value in row.items()}


def delivered_rows(client: Any, bucket: str, report: DeliveryReport) -> list[dict[str, Any]]:
    return [row for item in report.objects for row in read_rows(body(client, bucket, item.key))]


def test_a_day_lands_as_named_csv_objects_that_read_back_exactly(
    client: Any, s3_bucket: str
) -> None:
    rows = rows_of(40)
    report = deliver(client, s3_bucket, rows, max_rows=16)

    names = csv_keys(3)
    assert sorted(keys(client, s3_bucket)) == [*names, f"{PREFIX}2026_11_20_manifest.json"]
    assert [item.key for item in report.objects] == names
    assert [item.rows for item in report.objects] == [16, 16, 8]
    assert delivered_rows(client, s3_bucket, report) == [as_read(row) for row in rows]
    for item in report.objects:
        data = body(client, s3_bucket, item.key)
        head = client.head_object(Bucket=s3_bucket, Key=item.key)
        assert head["ContentType"] == CSV_CONTENT_TYPE
        assert item.uri == f"s3://{s3_bucket}/{item.key}"
        assert (item.bytes, item.parts) == (len(data), 0)
        assert item.sha256 == hashlib.sha256(data).hexdigest()
        assert item.md5 == item.etag == hashlib.md5(data).hexdigest()
        assert head["ETag"] == f'"{item.etag}"'
    assert (report.total_rows, report.total_bytes) == (40, sum(i.bytes for i in report.objects))
    assert report.stale_keys_removed == ()


def test_null_and_empty_text_differ_in_the_file(client: Any, s3_bucket: str) -> None:
    report = deliver(client, s3_bucket, rows_of(2, start=5))  # note "" then note None
    header, empty, null, end = body(client, s3_bucket, report.objects[0].key).split(b"\r\n")
    assert (empty.split(b",")[5], null.split(b",")[5], end) == (b'""', b"", b"")


def test_files_are_cut_by_bytes(client: Any, s3_bucket: str) -> None:
    rows = rows_of(300)
    report = deliver(client, s3_bucket, rows, max_bytes=4000)
    assert len(report.objects) > 5
    assert all(item.bytes <= 4000 for item in report.objects)
    assert delivered_rows(client, s3_bucket, report) == [as_read(row) for row in rows]


def test_manifest_lists_every_file(client: Any, s3_bucket: str) -> None:
    report = deliver(client, s3_bucket, rows_of(25), max_rows=10)
    manifest = json.loads(body(client, s3_bucket, report.manifest_key))
    head = client.head_object(Bucket=s3_bucket, Key=report.manifest_key)

    assert report.manifest_key == f"{PREFIX}2026_11_20_manifest.json"
    assert report.manifest_uri == f"s3://{s3_bucket}/{report.manifest_key}"
    assert head["ContentType"] == "application/json"
    assert manifest.pop("files") == [described(client, s3_bucket, key) for key in csv_keys(3)]
    assert manifest == {
        "customer_prefix": PREFIX,
        "day": "2026-11-20",
        "content_type": "text/csv; charset=utf-8; header=present",
        "line_ending": "CRLF",
        "columns": SCHEMA.names,
        "total_rows": 25,
        "total_bytes": report.total_bytes,
    }


def csv_keys(count: int) -> list[str]:
    return [f"{PREFIX}2026_11_20_{n:04d}.csv" for n in range(1, count + 1)]


def described(client: Any, bucket: str, key: str) -> dict[str, Any]:
    """What the manifest should say of an object, computed from the object itself."""
    data = body(client, bucket, key)
    return {
        "key": key,
        "uri": f"s3://{bucket}/{key}",
        "rows": len(read_rows(data)),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "etag": client.head_object(Bucket=bucket, Key=key)["ETag"].strip('"'),
        "parts": 0,
    }


def test_large_files_go_by_multipart_upload(client: Any, s3_bucket: str) -> None:
    rows = rows_of(12_000, pad=1000)  # about 12 MiB of CSV
    report = deliver(
        client,
        s3_bucket,
        rows,
        max_bytes=8 * MiB,
        multipart_threshold=6 * MiB,
        part_size=5 * MiB,
    )
    first, second = report.objects
    assert first.bytes > 6 * MiB and first.parts == 2
    assert first.etag.endswith("-2") and first.etag != first.md5
    assert second.bytes < 6 * MiB and second.parts == 0
    data = body(client, s3_bucket, first.key)
    parts = [data[: 5 * MiB], data[5 * MiB :]]
    assert first.etag == expected_etag([hashlib.md5(p).digest() for p in parts], multipart=True)
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert delivered_rows(client, s3_bucket, report) == [as_read(row) for row in rows]
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


UNRELATED = [
    f"{PREFIX}2026_11_19_0001.csv",  # another day
    "DemoOrg_Test_2026_11_20_0001.csv",  # another prefix
    f"{PREFIX}2026_11_20_0001.csv.bak",
    f"{PREFIX}2026_11_20_001.csv",
    f"{PREFIX}2026_11_20_notes.txt",
    f"{PREFIX}2026_11_20_manifest.json.old",
    f"archive/{PREFIX}2026_11_20_0002.csv",
]


def test_delivering_again_replaces_the_day_and_nothing_else(client: Any, s3_bucket: str) -> None:
    for key in UNRELATED:
        client.put_object(Bucket=s3_bucket, Key=key, Body=b"keep me")
    first = deliver(client, s3_bucket, rows_of(30), max_rows=10)
    assert len(first.objects) == 3

    again = rows_of(12, start=100)
    second = deliver(client, s3_bucket, again, max_rows=10)

    day_keys = csv_keys(2)
    assert [item.key for item in second.objects] == day_keys
    assert second.stale_keys_removed == (f"{PREFIX}2026_11_20_0003.csv",)
    assert sorted(keys(client, s3_bucket)) == sorted(
        [*UNRELATED, *day_keys, f"{PREFIX}2026_11_20_manifest.json"]
    )
    assert all(body(client, s3_bucket, key) == b"keep me" for key in UNRELATED)
    assert delivered_rows(client, s3_bucket, second) == [as_read(row) for row in again]
    manifest = json.loads(body(client, s3_bucket, second.manifest_key))
    assert [entry["key"] for entry in manifest["files"]] == day_keys


def test_a_day_without_rows_removes_its_files_and_writes_an_empty_manifest(
    client: Any, s3_bucket: str
) -> None:
    deliver(client, s3_bucket, rows_of(5))
    report = deliver(client, s3_bucket, [])
    assert report.objects == () and report.total_rows == 0
    assert report.stale_keys_removed == (f"{PREFIX}2026_11_20_0001.csv",)
    assert keys(client, s3_bucket) == [report.manifest_key]
    assert json.loads(body(client, s3_bucket, report.manifest_key))["files"] == []


def test_check_delivery_settings_lists_every_problem_with_codes() -> None:
    with pytest.raises(DeliverySettingsError) as info:
        check_delivery_settings(
            access_key=" ", secret=None, region="", access_point_alias="", customer_prefix=None
        )
    assert info.value.codes == (
        MISSING_S3_ACCESS_KEY,
        MISSING_S3_SECRET,
        MISSING_S3_REGION,
        MISSING_S3_BUCKET_ACCESS_POINT,
        MISSING_CUSTOMER_PREFIX,
    )
    assert all(code in str(info.value) for code in info.value.codes)


def test_settings_errors_never_echo_secrets() -> None:
    with pytest.raises(DeliverySettingsError) as info:
        check_delivery_settings(
            access_key="AKIAEXAMPLEKEY123",
            secret="wJalrXUtnFEMI-secret",
            region="",
            access_point_alias="alias-s3alias",
            customer_prefix="customer_org_",
        )
    assert info.value.codes == (MISSING_S3_REGION, INVALID_CUSTOMER_PREFIX)
    text = f"{info.value} {info.value!r}"
    assert "AKIAEXAMPLEKEY123" not in text and "wJalrXUtnFEMI-secret" not in text


def test_good_settings_pass() -> None:
    check_delivery_settings(
        access_key="k", secret="s", region="us-east-1", access_point_alias="a", customer_prefix="A_"
    )


def never_read() -> Iterator[pa.RecordBatch]:
    raise AssertionError("the batches were read")
    yield


@pytest.mark.parametrize(
    ("bucket_or_prefix", "codes"),
    [
        ({"customer_prefix": "DemoOrg"}, (INVALID_CUSTOMER_PREFIX,)),
        ({"customer_prefix": "customer_org_"}, (INVALID_CUSTOMER_PREFIX,)),
        (
            {"customer_prefix": "", "bucket": ""},
            (MISSING_S3_BUCKET_ACCESS_POINT, MISSING_CUSTOMER_PREFIX),
        ),
    ],
)
def test_bad_settings_are_refused_before_any_request(
    client: Any, s3_bucket: str, bucket_or_prefix: dict[str, str], codes: tuple[str, ...]
) -> None:
    options = {"bucket": s3_bucket, "customer_prefix": PREFIX, **bucket_or_prefix}
    with pytest.raises(DeliverySettingsError) as info:
        deliver_csv(client, day=DAY, schema=SCHEMA, batches=never_read(), **options)
    assert info.value.codes == codes
    assert keys(client, s3_bucket) == []


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"part_size": 4 * MiB}, ValueError, "part_size = 4194304; expected 5242880 to"),
        ({"multipart_threshold": 0}, ValueError, "multipart_threshold = 0; expected 1 or more"),
        ({"max_bytes": 50_000 * MiB + 1, "part_size": 5 * MiB}, ValueError, "at most 10000 parts"),
        ({"max_rows": 0}, ValueError, "max_rows = 0"),
        ({"schema": pa.schema([("at", pa.timestamp("ms"))])}, CsvEncodingError, "column 'at'"),
    ],
)
def test_bad_limits_or_columns_are_refused_before_any_request(
    client: Any, s3_bucket: str, options: dict[str, Any], error: type, message: str
) -> None:
    earlier = deliver(client, s3_bucket, rows_of(3))
    before = {key: body(client, s3_bucket, key) for key in keys(client, s3_bucket)}
    arguments = {"bucket": s3_bucket, "customer_prefix": PREFIX, "schema": SCHEMA, **options}
    with pytest.raises(error, match=message):
        deliver_csv(client, day=DAY, batches=never_read(), **arguments)
    assert {key: body(client, s3_bucket, key) for key in keys(client, s3_bucket)} == before
    assert earlier.manifest_key in before


def corrupt_one_byte(request: Any, **_: Any) -> None:
    """A botocore `before-send` hook: the body leaves with one byte changed, as if damaged."""
    data = bytearray(request.body)
    data[-3] ^= 0x01
    request.body = bytes(data)


def test_an_etag_not_matching_the_bytes_sent_is_an_error(client: Any, s3_bucket: str) -> None:
    client.meta.events.register("before-send.s3.PutObject", corrupt_one_byte)
    with pytest.raises(UploadIntegrityError) as info:
        deliver(client, s3_bucket, rows_of(5))
    key = f"{PREFIX}2026_11_20_0001.csv"
    assert info.value.uri == f"s3://{s3_bucket}/{key}"
    assert key in str(info.value) and "expected" in str(info.value)
    assert f"{PREFIX}2026_11_20_manifest.json" not in keys(client, s3_bucket)


def test_a_damaged_part_aborts_the_multipart_upload(client: Any, s3_bucket: str) -> None:
    client.meta.events.register("before-send.s3.UploadPart", corrupt_one_byte)
    with pytest.raises(UploadIntegrityError, match=r"_0001\.csv part 1: S3 returned ETag"):
        deliver(
            client, s3_bucket, rows_of(6000, pad=1000), multipart_threshold=1, part_size=5 * MiB
        )
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert keys(client, s3_bucket) == []


def test_verify_etag_on_computed_values() -> None:
    digests = [hashlib.md5(b"part one").digest(), hashlib.md5(b"part two").digest()]
    joined = hashlib.md5(digests[0] + digests[1]).hexdigest()
    assert expected_etag(digests, multipart=True) == f"{joined}-2"
    assert expected_etag(digests[:1], multipart=False) == hashlib.md5(b"part one").hexdigest()
    assert expected_etag(digests[:1], multipart=True).endswith("-1")

    good = expected_etag(digests[:1], multipart=False)
    assert verify_etag("s3://b/k", {"ETag": f'"{good}"'}, expected=good) == good
    with pytest.raises(UploadIntegrityError, match="s3://b/k: S3 returned ETag 'abc'; expected"):
        verify_etag("s3://b/k", {"ETag": '"abc"'}, expected=good)
    kms = {"ETag": '"not-an-md5"', "ServerSideEncryption": "aws:kms"}
    assert verify_etag("s3://b/k", kms, expected=good) == "not-an-md5"


def test_a_failed_request_names_the_request_and_the_object(client: Any) -> None:
    with pytest.raises(DeliveryRequestError) as info:
        deliver(client, "no-such-bucket-here", rows_of(1))
    assert info.value.code == "NoSuchBucket"
    assert info.value.operation == "ListObjectsV2"
    assert "s3://no-such-bucket-here/DemoOrg_Prod_2026_11_20_" in str(info.value)
