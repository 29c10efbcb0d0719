"""Contract of the Tracking API sandbox (`acoustic_pipelines.sandbox.tracking_api`), spoken to over
HTTP on 127.0.0.1:

- §1.5's answers: 401 without the write key (Basic auth or `writeKey` in the body), 400 on invalid
  JSON, on a call over 32 KB (alone or inside a batch), on a batch over 2,500 events or without a
  `type` on an item — and then nothing is kept; 200 otherwise, gzip bodies included.
- What it accepts lands in the archive layout (`segment-logs/<source>/<day-ms>/*.gz`) with what
  Segment adds, and `segment/raw_events` ingests that day; a messageId is kept once.
- Injected faults answer 429 with Retry-After, 503, or drop the connection; a lost answer keeps
  the request and then drops the connection.
- `GET /_sandbox/stats` tells what it kept and absorbed; an `s3://` archive gets the same files
  as objects (over HTTP to the S3 sandbox), which `segment/raw_events` ingests.
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
import requests

from acoustic_pipelines.lake import Lake
from acoustic_pipelines.sandbox.connect.faults import Fault
from acoustic_pipelines.sandbox.tracking_api import TrackingApiSandbox, serve_tracking_api
from acoustic_pipelines.segment.archive import day_folder
from acoustic_pipelines.segment.raw_events import ingest_day
from acoustic_pipelines.storage import open_location

WRITE_KEY = "wk_sandbox_test"
NOW = datetime(2026, 11, 20, 10, 15, 0, 123000, tzinfo=UTC)


@pytest.fixture
def sandbox(tmp_path: Path) -> Any:
    with serve_tracking_api(
        archive=tmp_path / "archive", write_key=WRITE_KEY, source_id="src1", clock=lambda: NOW
    ) as running:
        yield running


def auth(key: str = WRITE_KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def post(sandbox: TrackingApiSandbox, path: str, body: Any, **headers: str) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"{sandbox.endpoint}/{path}",
        data=data,
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
    )


def track(message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Plan Changed",
        "userId": "u1",
        "messageId": message_id,
        **extra,
    }


def test_batch_lands_in_the_archive_with_what_segment_adds(sandbox: TrackingApiSandbox) -> None:
    body = {
        "batch": [
            track("m1", sentAt="2026-11-20T10:14:59.000Z"),
            {**track("m2"), "type": "identify"},
        ],
        "context": {"library": {"name": "retl"}},
        "writeKey": "ignored-when-basic-auth-is-given",
    }
    answer = post(sandbox, "batch", body, **auth())
    assert (answer.status_code, answer.json()) == (200, {"success": True})
    folder = Path(sandbox.archive.root) / "segment-logs" / "src1" / day_folder(NOW.date())
    files = list(folder.glob("*.gz"))
    assert len(files) == 1
    first, second = sandbox.messages()
    assert first["receivedAt"] == "2026-11-20T10:15:00.123Z"
    assert first["context"] == {"library": {"name": "retl"}}
    assert first["version"] == 2 and "writeKey" not in first
    assert first["originalTimestamp"] == "2026-11-20T10:14:59.000Z"
    assert second["type"] == "identify"


def test_single_calls_gzip_and_body_write_key(sandbox: TrackingApiSandbox) -> None:
    raw = gzip.compress(
        json.dumps({"event": "Signed Up", "userId": "u9", "writeKey": WRITE_KEY}).encode()
    )
    answer = post(sandbox, "track", raw, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 200
    (message,) = sandbox.messages()
    assert message["type"] == "track" and message["messageId"].startswith("api-")
    assert message["timestamp"] == "2026-11-20T10:15:00.123Z"


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("batch", {"batch": [track("x")]}, {}, 401),
        ("batch", {"batch": [track("x")]}, auth("wrong"), 401),
        ("batch", b"{not json", auth(), 400),
        ("batch", {"batch": [{"event": "No Type", "userId": "u"}]}, auth(), 400),
        ("batch", {"batch": [track("x", properties={"p": "x" * 33_000})]}, auth(), 400),
        ("batch", {"batch": [track(f"m{i}") for i in range(2_501)]}, auth(), 400),
        ("track", {"event": "Big", "userId": "u", "properties": {"p": "x" * 33_000}}, auth(), 400),
        ("nope", {}, auth(), 404),
    ],
)
def test_refusals_keep_nothing(
    sandbox: TrackingApiSandbox, path: str, body: Any, headers: dict[str, str], status: int
) -> None:
    assert post(sandbox, path, body, **headers).status_code == status
    assert sandbox.messages() == []


def test_a_message_id_is_kept_once(sandbox: TrackingApiSandbox) -> None:
    for _ in range(2):
        assert post(sandbox, "batch", {"batch": [track("same"), track("other")]}, **auth()).ok
    assert [m["messageId"] for m in sandbox.messages()] == ["same", "other"]
    assert sandbox.counts["duplicates"] == 2
    stats = requests.get(sandbox.endpoint.removesuffix("/v1") + "/_sandbox/stats", timeout=10)
    assert stats.json() == {
        "source_id": "src1",
        "archive": sandbox.archive.uri,
        "messages": 2,
        "duplicates": 2,
        "200": 2,
    }


def test_faults_and_a_lost_answer(sandbox: TrackingApiSandbox) -> None:
    sandbox.inject(Fault("429", count=1, retry_after=7))
    sandbox.inject(Fault("503", count=1))
    sandbox.inject(Fault("drop", count=1))
    limited = post(sandbox, "batch", {"batch": [track("a")]}, **auth())
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "7")
    assert post(sandbox, "batch", {"batch": [track("a")]}, **auth()).status_code == 503
    with pytest.raises(requests.ConnectionError):
        post(sandbox, "batch", {"batch": [track("a")]}, **auth())
    assert sandbox.messages() == []
    sandbox.lose_answers(1)
    with pytest.raises(requests.ConnectionError):
        post(sandbox, "batch", {"batch": [track("a")]}, **auth())
    assert [m["messageId"] for m in sandbox.messages()] == ["a"]  # kept, answer lost
    assert post(sandbox, "batch", {"batch": [track("a")]}, **auth()).status_code == 200
    assert len(sandbox.messages()) == 1


def test_raw_events_ingests_what_the_sandbox_wrote(
    sandbox: TrackingApiSandbox, tmp_path: Path
) -> None:
    batch = [track(f"m{i}", properties={"plan": "pro"}) for i in range(5)]
    assert post(sandbox, "batch", {"batch": batch}, **auth()).ok
    lake = Lake(open_location(str(tmp_path / "lake")))
    report = ingest_day(sandbox.archive, lake, NOW.date())
    assert (report.accepted, report.rejected_by_reason, report.duplicates) == (5, {}, 0)
    rows = lake.read_partition("segment/raw_events", NOW.date()).to_table().to_pylist()
    assert sorted(r["message_id"] for r in rows) == [f"m{i}" for i in range(5)]
    assert {r["source_id"] for r in rows} == {"src1"}


def test_an_s3_archive_gets_the_same_layout(s3_endpoint: str, s3_bucket: str) -> None:
    archive = open_location(f"s3://{s3_bucket}/archive", s3_endpoint_url=s3_endpoint)
    with serve_tracking_api(
        archive=archive, write_key=WRITE_KEY, source_id="src1", clock=lambda: NOW
    ) as sandbox:
        for _ in range(2):
            assert post(sandbox, "batch", {"batch": [track("m1"), track("m2")]}, **auth()).ok
    (info,) = [
        i
        for i in archive.fs.get_file_info(pafs.FileSelector(archive.root, recursive=True))
        if i.type is pafs.FileType.File
    ]
    assert info.path.startswith(f"{s3_bucket}/archive/segment-logs/src1/{day_folder(NOW.date())}/")
    assert [m["messageId"] for m in sandbox.messages()] == ["m1", "m2"]
    report = ingest_day(
        archive,
        Lake(open_location(f"s3://{s3_bucket}/lake", s3_endpoint_url=s3_endpoint)),
        NOW.date(),
    )
    assert (report.accepted, report.duplicates) == (2, 0)
