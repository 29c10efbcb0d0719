"""Delivery of one destination's day of mapped rows as CSV files to Acoustic's S3 access point.

The bucket is the access point alias. One day of one destination is these keys, nothing else:

- ``<prefix><YYYY_MM_DD>_<NNNN>.csv``: the CSV files (format: :mod:`.csv_encoding`), numbered
  from ``0001``, each cut at ``max_rows`` rows or ``max_bytes`` bytes;
- ``<prefix><YYYY_MM_DD>_manifest.json``: what was delivered, each file with its key, URI, rows,
  bytes, SHA-256, MD5, ETag and parts, written last.

Steps, so that the bucket never holds a row twice and a manifest means a complete delivery:

1. the settings this function sees, the limits and the column types are checked before any
   request (the S3 credentials and region: :func:`check_delivery_settings`, by the caller);
2. the day's existing keys are listed, and only names of the two patterns above count (another
   prefix, another day or any other object is never touched);
3. those keys are deleted, the manifest first: a run that fails from here on leaves a subset of
   the new rows and no manifest, never old and new rows side by side;
4. the files are uploaded as they are encoded: a file below ``multipart_threshold`` with one
   PUT, a larger one by multipart upload in parts of ``part_size`` (memory: about one part);
5. the manifest is written.

Every PUT and part carries Content-MD5, so S3 refuses a body damaged on the way; the ETag S3
returns is compared with the MD5 computed here (one PUT: the body's MD5; multipart: the MD5 of
the parts' MD5s and ``-<parts>``) and a mismatch raises :class:`UploadIntegrityError`. With
SSE-KMS or SSE-C encryption an ETag is not an MD5, so only the Content-MD5 check applies then.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from operator import attrgetter
from typing import Any

import pyarrow as pa
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from acoustic_pipelines.acoustic.csv_encoding import CsvEncoder, CsvPiece, split_csv_files
from acoustic_pipelines.acoustic.rows import AcousticSettingsError, check_destination_settings

__all__ = [
    "CSV_CONTENT_TYPE",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_MULTIPART_THRESHOLD",
    "DEFAULT_PART_SIZE",
    "DeliveredObject",
    "DeliveryError",
    "DeliveryReport",
    "DeliveryRequestError",
    "DeliverySettingsError",
    "UploadIntegrityError",
    "check_delivery_settings",
    "csv_key",
    "deliver_csv",
    "expected_etag",
    "manifest_key",
    "verify_etag",
]

MiB = 1 << 20
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_MAX_BYTES = 100 * MiB  # as Segment's own S3 archive files; Acoustic imports take ≤ 5 GB
DEFAULT_MULTIPART_THRESHOLD = 8 * MiB  # boto3's defaults
DEFAULT_PART_SIZE = 8 * MiB
CSV_CONTENT_TYPE = "text/csv; charset=utf-8; header=present"  # RFC 4180 §3
_MIN_PART_SIZE = 5 * MiB  # S3: every part but the last
_MAX_PART_SIZE = 5 * 1024 * MiB
_MAX_PARTS = 10_000
_TARGET_FIELDS = frozenset(("access_point_alias", "customer_prefix"))
_NOT_MD5_ENCRYPTION = frozenset(("aws:kms", "aws:kms:dsse"))
_PERMISSIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "DeleteObject": "s3:DeleteObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
}

log = logging.getLogger(__name__)


# --- errors ------------------------------------------------------------------------------------


class DeliveryError(Exception):
    """Root of the errors of a CSV delivery to S3."""


class DeliverySettingsError(DeliveryError):
    """Raised before any request when destination settings are missing or invalid.

    Attributes:
        problems: every problem found, in Segment's check order; none holds a secret.
    """

    def __init__(self, problems: Sequence[AcousticSettingsError]) -> None:
        super().__init__(tuple(problems))
        self.problems = tuple(problems)

    @property
    def codes(self) -> tuple[str, ...]:
        """The Acoustic codes of the problems (``MISSING_S3_SECRET``, …), in order."""
        return tuple(problem.code for problem in self.problems)

    def __str__(self) -> str:
        listed = "".join(f"\n- {problem}" for problem in self.problems)
        return f"the destination settings have {len(self.problems)} problem(s):{listed}"


class UploadIntegrityError(DeliveryError):
    """Raised when S3's ETag for an upload is not the one computed from the bytes sent."""

    def __init__(self, uri: str, *, received: str, expected: str) -> None:
        super().__init__(uri, received, expected)
        self.uri = uri
        self.received = received
        self.expected = expected

    def __str__(self) -> str:
        return (
            f"{self.uri}: S3 returned ETag {self.received!r}; expected {self.expected!r} from "
            "the MD5 of the bytes sent, so the stored object may differ; deliver the day again"
        )


class DeliveryRequestError(DeliveryError):
    """Raised when an S3 request of a delivery fails; names the request and the object."""

    def __init__(self, operation: str, uri: str, cause: Exception) -> None:
        super().__init__(operation, uri, cause)
        self.operation = operation
        self.uri = uri
        self.cause = cause
        self.code = _error_code(cause)

    def __str__(self) -> str:
        permission = _PERMISSIONS.get(self.operation, "s3:PutObject")
        hint = f"; expected the access point to allow {permission}" if "Denied" in self.code else ""
        return f"{self.operation} of {self.uri} failed: {self.cause}{hint}"


# --- report ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeliveredObject:
    """One CSV file written to S3."""

    key: str
    uri: str  # s3://<bucket>/<key>
    rows: int
    bytes: int
    sha256: str  # hex digest of the object's bytes
    md5: str  # hex digest of the object's bytes
    etag: str  # as S3 returned it, without quotes
    parts: int  # 0 for a single PUT, else the number of multipart parts


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    """What one delivery wrote and removed."""

    bucket: str
    day: date
    objects: tuple[DeliveredObject, ...]
    manifest_key: str
    manifest_uri: str
    stale_keys_removed: tuple[str, ...]  # files of an earlier delivery not written again
    total_rows: int
    total_bytes: int  # of the CSV files, without the manifest


# --- settings and names ------------------------------------------------------------------------


def check_delivery_settings(
    *,
    access_key: str | None,
    secret: str | None,
    region: str | None,
    access_point_alias: str | None,
    customer_prefix: str | None,
) -> None:
    """Raise :class:`DeliverySettingsError` listing every problem with a destination's settings."""
    problems = check_destination_settings(
        access_key=access_key,
        secret=secret,
        region=region,
        access_point_alias=access_point_alias,
        customer_prefix=customer_prefix,
    )
    if problems:
        raise DeliverySettingsError(problems)


def csv_key(customer_prefix: str, day: date, number: int) -> str:
    """The key of CSV file ``number`` (from 1) of a day: ``<prefix><YYYY_MM_DD>_<NNNN>.csv``."""
    return f"{customer_prefix}{day:%Y_%m_%d}_{number:04d}.csv"


def manifest_key(customer_prefix: str, day: date) -> str:
    """The key of a day's manifest: ``<prefix><YYYY_MM_DD>_manifest.json``."""
    return f"{customer_prefix}{day:%Y_%m_%d}_manifest.json"


def _day_key_pattern(customer_prefix: str, day: date) -> re.Pattern[str]:
    return re.compile(
        rf"{re.escape(customer_prefix)}{day:%Y_%m_%d}_(?:\d{{4,}}\.csv|manifest\.json)"
    )


# --- delivery ----------------------------------------------------------------------------------


def deliver_csv(
    client: BaseClient,
    *,
    bucket: str,
    customer_prefix: str,
    day: date,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    max_rows: int = DEFAULT_MAX_ROWS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
    part_size: int = DEFAULT_PART_SIZE,
) -> DeliveryReport:
    """Write one day's rows as CSV files and a manifest to S3, replacing that day's earlier files.

    Args:
        client: a boto3 S3 client (e.g. ``S3Resource.get_client()``) with the destination's
            credentials and region.
        bucket: the S3 bucket access point alias.
        customer_prefix: the destination's customer prefix, e.g. ``"DemoOrg_Prod_"``.
        day: the day delivered; it names the files.
        schema: the columns of ``batches``, in the order they are written.
        batches: the rows, streamed (e.g. ``pyarrow.dataset.dataset(...).to_batches()``).
        max_rows: most data rows in one file.
        max_bytes: most bytes in one file, header included (only a single larger row exceeds it).
        multipart_threshold: files of this many bytes or more go by multipart upload.
        part_size: bytes per multipart part (S3: 5 MiB to 5 GiB; 10,000 parts at most).

    Returns:
        The objects written, the manifest, the earlier files removed and the totals.

    Raises:
        DeliverySettingsError: ``bucket`` or ``customer_prefix`` is missing or invalid.
        ValueError: a limit is out of range.
        CsvEncodingError: a column has a type with no CSV rule, or a batch another schema.
        DeliveryRequestError: an S3 request failed.
        UploadIntegrityError: S3's ETag does not match the bytes sent.
    """
    _check_target(bucket, customer_prefix)
    _check_upload_limits(max_bytes, multipart_threshold, part_size)
    encoder = CsvEncoder(schema)
    pieces = split_csv_files(encoder, batches, max_rows=max_rows, max_bytes=max_bytes)

    old_keys = _list_day_keys(client, bucket, customer_prefix, day)
    _delete_keys(client, bucket, old_keys)
    log.info(
        "delivering %s for %s to s3://%s (%d earlier object(s) removed)",
        customer_prefix,
        day.isoformat(),
        bucket,
        len(old_keys),
    )
    objects = _upload_files(
        client,
        bucket=bucket,
        customer_prefix=customer_prefix,
        day=day,
        pieces=pieces,
        multipart_threshold=multipart_threshold,
        part_size=part_size,
    )
    manifest = manifest_key(customer_prefix, day)
    body = _manifest_body(customer_prefix, day, schema, objects)
    _put_object(client, bucket, manifest, body, content_type="application/json")
    written = {item.key for item in objects} | {manifest}
    report = DeliveryReport(
        bucket=bucket,
        day=day,
        objects=tuple(objects),
        manifest_key=manifest,
        manifest_uri=_uri(bucket, manifest),
        stale_keys_removed=tuple(key for key in old_keys if key not in written),
        total_rows=sum(item.rows for item in objects),
        total_bytes=sum(item.bytes for item in objects),
    )
    log.info(
        "delivered %d rows in %d file(s), %d bytes, to s3://%s; %d stale file(s) removed",
        report.total_rows,
        len(objects),
        report.total_bytes,
        bucket,
        len(report.stale_keys_removed),
    )
    return report


def _upload_files(
    client: BaseClient,
    *,
    bucket: str,
    customer_prefix: str,
    day: date,
    pieces: Iterable[CsvPiece],
    multipart_threshold: int,
    part_size: int,
) -> list[DeliveredObject]:
    """Upload the files of ``pieces``, each under its :func:`csv_key`."""
    objects = []
    for number, file_pieces in itertools.groupby(pieces, attrgetter("file")):
        delivered = _upload_csv(
            client,
            bucket=bucket,
            key=csv_key(customer_prefix, day, number),
            pieces=file_pieces,
            multipart_threshold=multipart_threshold,
            part_size=part_size,
        )
        log.info("wrote %s: %d rows, %d bytes", delivered.uri, delivered.rows, delivered.bytes)
        objects.append(delivered)
    return objects


def _check_target(bucket: str, customer_prefix: str) -> None:
    """Refuse a missing access point alias or a bad prefix (the settings this function sees)."""
    problems = check_destination_settings(
        access_key=None,
        secret=None,
        region=None,
        access_point_alias=bucket,
        customer_prefix=customer_prefix,
    )
    problems = [problem for problem in problems if problem.field in _TARGET_FIELDS]
    if problems:
        raise DeliverySettingsError(problems)


def _check_upload_limits(max_bytes: int, multipart_threshold: int, part_size: int) -> None:
    if not _MIN_PART_SIZE <= part_size <= _MAX_PART_SIZE:
        raise ValueError(
            f"part_size = {part_size!r}; expected {_MIN_PART_SIZE} to {_MAX_PART_SIZE} bytes "
            "(S3's limits for a multipart part)"
        )
    if multipart_threshold < 1:
        raise ValueError(f"multipart_threshold = {multipart_threshold!r}; expected 1 or more")
    if max_bytes > part_size * _MAX_PARTS:
        raise ValueError(
            f"max_bytes = {max_bytes!r} with part_size = {part_size!r}; expected at most "
            f"{_MAX_PARTS} parts a file (max_bytes ≤ {part_size * _MAX_PARTS})"
        )


def _list_day_keys(client: BaseClient, bucket: str, customer_prefix: str, day: date) -> list[str]:
    """The day's existing file and manifest keys, the manifest first, then in key order."""
    pattern = _day_key_pattern(customer_prefix, day)
    prefix = f"{customer_prefix}{day:%Y_%m_%d}_"
    keys = []
    with _request("ListObjectsV2", _uri(bucket, prefix)):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", ()))
    return sorted((key for key in keys if pattern.fullmatch(key)), key=_manifest_first)


def _manifest_first(key: str) -> tuple[bool, str]:
    return (not key.endswith(".json"), key)


def _delete_keys(client: BaseClient, bucket: str, keys: Sequence[str]) -> None:
    for key in keys:
        with _request("DeleteObject", _uri(bucket, key)):
            client.delete_object(Bucket=bucket, Key=key)


def _manifest_body(
    customer_prefix: str, day: date, schema: pa.Schema, objects: Sequence[DeliveredObject]
) -> bytes:
    manifest = {
        "customer_prefix": customer_prefix,
        "day": day.isoformat(),
        "content_type": CSV_CONTENT_TYPE,
        "line_ending": "CRLF",
        "columns": schema.names,
        "files": [dataclasses.asdict(item) for item in objects],
        "total_rows": sum(item.rows for item in objects),
        "total_bytes": sum(item.bytes for item in objects),
    }
    return json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


# --- upload ------------------------------------------------------------------------------------


def _upload_csv(
    client: BaseClient,
    *,
    bucket: str,
    key: str,
    pieces: Iterable[CsvPiece],
    multipart_threshold: int,
    part_size: int,
) -> DeliveredObject:
    """Stream one file's pieces to S3: one PUT when small, else multipart in ``part_size`` parts."""
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    rows = size = 0
    buffer = bytearray()
    upload: _MultipartUpload | None = None
    try:
        for piece in pieces:
            buffer += piece.data
            sha256.update(piece.data)
            md5.update(piece.data)
            rows += piece.rows
            size += len(piece.data)
            if upload is None and len(buffer) >= multipart_threshold:
                upload = _MultipartUpload.start(client, bucket, key)
            while upload is not None and len(buffer) >= part_size:
                rest = buffer[part_size:]
                del buffer[part_size:]
                upload.send(buffer)
                buffer = rest
        if upload is None:
            etag = _put_object(client, bucket, key, buffer, content_type=CSV_CONTENT_TYPE)
        else:
            if buffer:
                upload.send(buffer)
            etag = upload.complete()
    except BaseException:
        if upload is not None:
            upload.abort()
        raise
    return DeliveredObject(
        key=key,
        uri=_uri(bucket, key),
        rows=rows,
        bytes=size,
        sha256=sha256.hexdigest(),
        md5=md5.hexdigest(),
        etag=etag,
        parts=0 if upload is None else len(upload.parts),
    )


def _put_object(
    client: BaseClient, bucket: str, key: str, body: bytes | bytearray, *, content_type: str
) -> str:
    """One PUT with Content-MD5; the verified ETag."""
    digest = hashlib.md5(body).digest()
    uri = _uri(bucket, key)
    with _request("PutObject", uri):
        response = client.put_object(
            Bucket=bucket, Key=key, Body=body, ContentType=content_type, ContentMD5=_b64(digest)
        )
    return verify_etag(uri, response, expected=expected_etag([digest], multipart=False))


class _MultipartUpload:
    """A multipart upload in progress: its id and the parts sent so far."""

    def __init__(self, client: BaseClient, bucket: str, key: str, upload_id: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.parts: list[dict[str, Any]] = []
        self.digests: list[bytes] = []

    @classmethod
    def start(cls, client: BaseClient, bucket: str, key: str) -> _MultipartUpload:
        with _request("CreateMultipartUpload", _uri(bucket, key)):
            response = client.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=CSV_CONTENT_TYPE
            )
        return cls(client, bucket, key, response["UploadId"])

    def send(self, body: bytearray) -> None:
        """Upload the next part and check its ETag."""
        number = len(self.parts) + 1
        digest = hashlib.md5(body).digest()
        uri = f"{_uri(self.bucket, self.key)} part {number}"
        with _request("UploadPart", uri):
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
                ContentMD5=_b64(digest),
            )
        verify_etag(uri, response, expected=expected_etag([digest], multipart=False))
        self.parts.append({"ETag": response["ETag"], "PartNumber": number})
        self.digests.append(digest)
        log.debug("sent %s: %d bytes", uri, len(body))

    def complete(self) -> str:
        """Assemble the parts into the object; its verified ETag."""
        uri = _uri(self.bucket, self.key)
        with _request("CompleteMultipartUpload", uri):
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        return verify_etag(uri, response, expected=expected_etag(self.digests, multipart=True))

    def abort(self) -> None:
        """Drop the parts sent so far (S3 keeps and bills them otherwise); never raises."""
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning(
                "could not abort the multipart upload of %s (%s); its parts stay until a "
                "bucket lifecycle rule removes them",
                _uri(self.bucket, self.key),
                exc,
            )


# --- integrity ---------------------------------------------------------------------------------


def expected_etag(part_md5s: Sequence[bytes], *, multipart: bool) -> str:
    """The ETag S3 gives an unencrypted or SSE-S3 object, from the MD5 digests of its parts.

    A single PUT has the hex MD5 of its body; a multipart upload has the hex MD5 of its parts'
    digests joined, then ``-<number of parts>``.
    """
    if not multipart:
        (digest,) = part_md5s
        return digest.hex()
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


def verify_etag(uri: str, response: dict[str, Any], *, expected: str) -> str:
    """The response's ETag without quotes; raises :class:`UploadIntegrityError` on a mismatch.

    The check is skipped for SSE-KMS and SSE-C objects, whose ETag is not an MD5 digest.
    """
    etag = str(response.get("ETag", "")).strip('"')
    encrypted = response.get("ServerSideEncryption") in _NOT_MD5_ENCRYPTION
    if encrypted or response.get("SSECustomerAlgorithm"):
        log.debug("%s: ETag not compared (the object is KMS or customer-key encrypted)", uri)
        return etag
    if etag.lower() != expected.lower():
        raise UploadIntegrityError(uri, received=etag, expected=expected)
    return etag


# --- small pieces ------------------------------------------------------------------------------


@contextmanager
def _request(operation: str, uri: str) -> Iterator[None]:
    """Turn a boto error into a :class:`DeliveryRequestError` naming the request and object."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise DeliveryRequestError(operation, uri, exc) from exc


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")
