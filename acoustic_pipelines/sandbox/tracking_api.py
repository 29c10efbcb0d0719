"""A stand-in for Segment's HTTP Tracking API on 127.0.0.1 that writes what it accepts into the
Segment archive layout, so Segment Connections' sends come back through `segment/raw_events`.

Served (segment.md §1.5): `POST /v1/batch`, `/v1/track`, `/v1/identify`, `/v1/page`,
`/v1/screen`, `/v1/group`, `/v1/alias`.

- Auth: HTTP Basic with the source's write key as user and an empty password, or `writeKey` in
  the body; anything else is 401.
- Bodies may be gzip (`Content-Encoding: gzip`). Invalid JSON, a call over 32 KB (also inside a
  batch), a batch over 500 KB or 2,500 events, a batch item without `type` → 400 and nothing is
  kept. Everything else → 200 `{"success": true}`, as Segment answers.
- What it accepts gets what Segment adds: `messageId` (when absent), `receivedAt`,
  `originalTimestamp`, `timestamp` (clock-skew corrected from `sentAt` when the caller gave no
  `timestamp`), `version: 2`, the batch's top-level `context`/`integrations` merged into each
  event; the `writeKey` is not kept. It is written as one gzip NDJSON file per request under
  `<archive>/segment-logs/<source-id>/<received-day-ms>/`, through the project's storage layer:
  the archive is a local folder (written aside, then renamed) or an `s3://bucket/prefix` (one
  object per file, which S3 makes visible whole).
- Dedupe on `messageId` (Segment's rule, §1.3): an event whose id was already accepted is
  answered 200 and not written again.
- Faults, as the Connect sandbox injects them (`sandbox/connect/faults.py`): 429 with
  `Retry-After`, 503, slow answers, dropped connections (before anything is kept); and
  `lose_answers(n)`: the next n accepted requests are kept, then the connection is dropped
  without an answer — a lost answer, which the sender must resend and the dedupe absorb.
- `GET /_sandbox/stats`: what it has served — messages kept, duplicates absorbed, answers by
  status, dropped connections, lost answers — so a test can tell what reached it.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import logging
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from acoustic_pipelines import settings
from acoustic_pipelines.sandbox.connect.faults import Fault, FaultKind, FaultPlan
from acoustic_pipelines.storage import Location, open_location

__all__ = ["TrackingApiSandbox", "serve_tracking_api"]

log = logging.getLogger(__name__)

MAX_CALL_BYTES: Final = 32 * 1024
MAX_BATCH_BYTES: Final = 500 * 1024
MAX_BATCH_EVENTS: Final = 2_500
MAX_BODY_BYTES: Final = 8 * 1024 * 1024  # read limit (before the 500 KB check)
CALL_TYPES: Final = ("identify", "track", "page", "screen", "group", "alias")
LOGS_FOLDER: Final = "segment-logs"
STATS_PATH: Final = "/_sandbox/stats"


def _iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds, as Segment writes times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(text: Any) -> datetime | None:
    """A Spec time, or None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class TrackingApiSandbox:
    """The running sandbox: where it listens, its write key and source, what it kept."""

    endpoint: str  # the API base, http://127.0.0.1:<port>/v1
    write_key: str
    source_id: str
    archive: Location
    faults: FaultPlan
    clock: Callable[[], datetime]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: set[str] = field(default_factory=set)
    _lose: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    def inject(self, fault: Fault) -> None:
        """Put a fault in force (see sandbox/connect/faults.py)."""
        self.faults.add(fault)

    def lose_answers(self, count: int) -> None:
        """Keep the next `count` accepted requests, but drop the connection instead of answering."""
        with self._lock:
            self._lose += count

    def messages(self) -> list[dict[str, Any]]:
        """Every message written to the archive, in file order."""
        fs, logs = self.archive.fs, self.archive.path(LOGS_FOLDER)
        if fs.get_file_info(logs).type is pafs.FileType.NotFound:
            return []
        paths = sorted(
            info.path
            for info in fs.get_file_info(pafs.FileSelector(logs, recursive=True))
            if info.type is pafs.FileType.File
            and info.base_name.endswith(".gz")
            and not info.base_name.startswith(".")
        )
        found: list[dict[str, Any]] = []
        for path in paths:
            with fs.open_input_stream(path, compression=None) as stream:
                text = gzip.decompress(stream.read()).decode("utf-8")
            found.extend(json.loads(line) for line in text.splitlines() if line.strip())
        return found

    def stats(self) -> dict[str, Any]:
        """What it has served, as `GET /_sandbox/stats` answers it."""
        with self._lock:
            return {"source_id": self.source_id, "archive": self.archive.uri, **self.counts}

    # -- used by the request handler --------------------------------------------------------

    def keep(self, events: list[dict[str, Any]]) -> tuple[int, int, bool]:
        """Dedupe and write accepted events; (written, duplicates, whether to lose the answer)."""
        with self._lock:
            fresh = []
            for event in events:
                message_id = event["messageId"]
                if message_id in self._seen:
                    continue
                self._seen.add(message_id)
                fresh.append(event)
            if fresh:
                self._write(fresh)
            self.counts["messages"] += len(fresh)
            self.counts["duplicates"] += len(events) - len(fresh)
            lose = self._lose > 0
            if lose:
                self._lose -= 1
        return len(fresh), len(events) - len(fresh), lose

    def _write(self, events: list[dict[str, Any]]) -> None:
        """One gzip NDJSON file per received day of these events (written aside, then renamed)."""
        by_day: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            received = _parse_time(event["receivedAt"]) or self.clock()
            midnight = datetime(received.year, received.month, received.day, tzinfo=UTC)
            by_day.setdefault(str(int(midnight.timestamp()) * 1000), []).append(event)
        fs = self.archive.fs
        for day, day_events in by_day.items():
            folder = self.archive.path(LOGS_FOLDER, self.source_id, day)
            name = f"{int(time.time() * 1000)}-{uuid.uuid4().hex}"
            text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in day_events)
            data = gzip.compress(text.encode("utf-8"))
            if not self.archive.is_local:  # an S3 object appears whole or not at all
                with fs.open_output_stream(f"{folder}/{name}.gz", compression=None) as out:
                    out.write(data)
                continue
            fs.create_dir(folder, recursive=True)
            partial = f"{folder}/.{name}.partial"
            with fs.open_output_stream(partial, compression=None) as out:
                out.write(data)
            fs.move(partial, f"{folder}/{name}.gz")


def archive_location(archive: str | Path | Location) -> Location:
    """The archive to write into: a Location as given, else a folder or `s3://bucket/prefix`
    opened as the pipeline opens its archive (`$ACOUSTIC_PIPELINES_S3_ENDPOINT_URL`, AWS's variables).
    """
    if isinstance(archive, Location):
        return archive
    return open_location(str(archive), s3_endpoint_url=settings.s3_endpoint_url())


@contextmanager
def serve_tracking_api(
    *,
    archive: str | Path | Location,
    write_key: str,
    source_id: str = "retl_sandbox",
    port: int = 0,
    host: str = "127.0.0.1",
    faults: Sequence[Fault] = (),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Iterator[TrackingApiSandbox]:
    """Serve the Tracking API sandbox on `host`:`port` (0 = a free port) until the block ends.

    What it accepts is written into `archive`: a folder, an `s3://bucket/prefix` or a Location.
    """
    location = archive_location(archive)
    server = _Server((host, port), _Handler)
    sandbox = TrackingApiSandbox(
        endpoint=f"http://{host}:{server.server_address[1]}/v1",
        write_key=write_key,
        source_id=source_id,
        archive=location,
        faults=FaultPlan(faults),
        clock=clock,
    )
    server.sandbox = sandbox
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="tracking-api",
        daemon=True,
    )
    thread.start()
    try:
        log.info("Tracking API sandbox on %s, archive %s", sandbox.endpoint, location.uri)
        yield sandbox
    finally:
        server.shutdown()
        server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: TrackingApiSandbox


class _Refused(Exception):
    """A request the API answers 400 (or 401), with its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        if urlsplit(self.path).path.rstrip("/") != STATS_PATH:
            self._answer(404, {"success": False, "message": f"{self.path} is not an endpoint"})
            return
        self._answer(200, self.server.sandbox.stats(), count=False)

    def do_POST(self) -> None:
        sandbox = self.server.sandbox
        path = urlsplit(self.path).path.rstrip("/")
        call = path.removeprefix("/v1/")
        if not path.startswith("/v1/") or call not in (*CALL_TYPES, "batch"):
            self._answer(404, {"success": False, "message": f"{path} is not an endpoint"})
            return
        body = self._read_body()
        if body is None:
            return
        fault = sandbox.faults.next_fault()
        if fault is not None and not self._apply_fault(fault):
            return
        try:
            events = self._accept(call, body)
        except _Refused as refused:
            self._answer(refused.status, {"success": False, "message": str(refused)})
            return
        _, _, lose = sandbox.keep(events)
        if lose:
            sandbox.counts["answers_lost"] += 1
            self._drop()
            return
        self._answer(200, {"success": True})

    def _read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._answer(400, {"success": False, "message": "send a body with a Content-Length"})
            return None
        return self.rfile.read(int(length))

    def _accept(self, call: str, raw: bytes) -> list[dict[str, Any]]:
        """The events of a valid request, with what Segment adds; _Refused otherwise."""
        sandbox = self.server.sandbox
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise _Refused(400, f"the gzip body cannot be read: {exc}") from None
        limit = MAX_BATCH_BYTES if call == "batch" else MAX_CALL_BYTES
        if len(raw) > limit:
            raise _Refused(400, f"the body is {len(raw):,} bytes; at most {limit:,}")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _Refused(400, f"invalid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _Refused(400, "the body must be a JSON object")
        if not _authorized(
            self.headers.get("Authorization"), body.get("writeKey"), sandbox.write_key
        ):
            raise _Refused(401, "invalid write key")
        if call != "batch":
            return [self._complete({**body, "type": call}, {}, {})]
        items = body.get("batch")
        if not isinstance(items, list):
            raise _Refused(400, "a batch body holds `batch`: a list of calls")
        if len(items) > MAX_BATCH_EVENTS:
            raise _Refused(400, f"{len(items):,} events in a batch; at most {MAX_BATCH_EVENTS:,}")
        context = body.get("context") if isinstance(body.get("context"), dict) else {}
        integrations = (
            body.get("integrations") if isinstance(body.get("integrations"), dict) else {}
        )
        events = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or item.get("type") not in CALL_TYPES:
                raise _Refused(400, f"batch item {index} has no valid `type`")
            if len(json.dumps(item, ensure_ascii=False).encode("utf-8")) > MAX_CALL_BYTES:
                raise _Refused(400, f"batch item {index} is over {MAX_CALL_BYTES:,} bytes")
            if "sentAt" not in item and "sentAt" in body:
                item = {**item, "sentAt": body["sentAt"]}
            events.append(self._complete(item, context, integrations))
        return events

    def _complete(
        self, event: dict[str, Any], context: dict[str, Any], integrations: dict[str, Any]
    ) -> dict[str, Any]:
        """The fields Segment adds to an accepted call."""
        received = self.server.sandbox.clock()
        event = {key: value for key, value in event.items() if key != "writeKey"}
        event["context"] = {**context, **(event.get("context") or {})}
        event["integrations"] = {**integrations, **(event.get("integrations") or {})}
        event.setdefault("messageId", f"api-{uuid.uuid4()}")
        event["receivedAt"] = _iso(received)
        if event.get("timestamp") is not None:
            event.setdefault("originalTimestamp", event["timestamp"])
        else:
            original = _parse_time(event.get("originalTimestamp"))
            sent = _parse_time(event.get("sentAt"))
            skew = (sent - original) if sent and original else timedelta(0)
            event.setdefault("originalTimestamp", event.get("sentAt") or _iso(received))
            event["timestamp"] = _iso(received - skew)
        event["version"] = 2
        return event

    def _apply_fault(self, fault: Fault) -> bool:
        """Apply an injected fault; whether the request goes on to be handled."""
        counts = self.server.sandbox.counts
        if fault.kind is FaultKind.SLOW:
            time.sleep(fault.delay)
            return True
        if fault.kind is FaultKind.DROP:
            counts["dropped"] += 1
            self._drop()
            return False
        status = 429 if fault.kind is FaultKind.RATE_LIMITED else 503
        message = "rate limited" if status == 429 else "service unavailable"
        self._answer(
            status, {"success": False, "message": message}, {"Retry-After": str(fault.retry_after)}
        )
        return False

    def _drop(self) -> None:
        """Close the socket without an answer."""
        self.close_connection = True
        with suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _answer(
        self,
        status: int,
        answer: Any,
        headers: dict[str, str] | None = None,
        *,
        count: bool = True,
    ) -> None:
        if count:
            with self.server.sandbox._lock:
                self.server.sandbox.counts[str(status)] += 1
        payload = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _authorized(header: str | None, body_key: Any, expected: str) -> bool:
    """Basic auth with the write key as user (any password), or `writeKey` in the body."""
    given: str | None = None
    if header and header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
        given = decoded.partition(":")[0]
    elif isinstance(body_key, str):
        given = body_key
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
