"""A local Acoustic Connect service on 127.0.0.1: the GraphQL API over real HTTP, plus controls.

`POST /` is the Connect API (reference §1.2): `x-api-key` and `Content-Type: application/json`
required, the body `{"query", "variables", "operationName"}` executed against
`connect/schema.graphql` (see `graphql.py` for the error contract). Emulator-only controls,
unauthenticated because they listen on loopback only:

- `GET /_sandbox/stats`: signals stored (by type, distinct, test), export jobs by state, today's
  usage against the daily limits, calls served by status, faults served;
- `POST /_sandbox/usage`: set today's export usage (JSON `{"jobs": n, "bytes": n, "rows": n}`),
  as if part of the day were used elsewhere; answers the usage as `/_sandbox/stats` reports it;
- `GET /_sandbox/jobs`: export jobs and the notifications recorded instead of mail;
  `POST /_sandbox/jobs/run` runs the queued jobs now;
- `GET|POST|DELETE /_sandbox/faults`: show, add (JSON body: `kind`, `count`, `share`,
  `retry_after`, `delay`) or remove injected faults.

The stdlib's threading HTTP server is enough here and lets a fault close a socket without
answering, which a dropped connection needs.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from acoustic_pipelines.sandbox.connect.exports import SUBSCRIPTION_ID, ExportRunner
from acoustic_pipelines.sandbox.connect.faults import Fault, FaultKind, FaultPlan, FaultSpecError
from acoustic_pipelines.sandbox.connect.graphql import (
    BAD_REQUEST,
    INTERNAL_SERVER_ERROR,
    SANDBOX_USER,
    ConnectService,
    DailyLimits,
    error_answer,
)
from acoustic_pipelines.sandbox.connect.store import ConnectStore, ExportJob, now_utc

log = logging.getLogger(__name__)

SANDBOX_API_KEY = "sandbox-connect-api-key"
SFTP_FOLDER = "sftp"  # under the sandbox folder: what the SFTP server serves
MAX_BODY_BYTES = 64 * 1024 * 1024
UNAUTHORIZED = error_answer("Unauthorized", "UNAUTHENTICATED")
_FAULT_ANSWERS = {
    FaultKind.RATE_LIMITED: (429, "Too Many Requests", "RATE_LIMITED"),
    FaultKind.UNAVAILABLE: (503, "Service Unavailable", "SERVICE_UNAVAILABLE"),
}


class ConnectSandbox:
    """A running Connect sandbox: where it listens, its key and folders, and its controls."""

    def __init__(
        self,
        *,
        endpoint: str,
        api_key: str,
        folder: Path,
        service: ConnectService,
        runner: ExportRunner,
        faults: FaultPlan,
    ) -> None:
        self.endpoint = endpoint
        self.api_key = api_key
        self.folder = folder
        self.sftp_root = folder / SFTP_FOLDER
        self.subscription_id = SUBSCRIPTION_ID
        self.sftp_user = SANDBOX_USER
        self.store = service.store
        self.service = service
        self._runner = runner
        self.fault_plan = faults
        self._calls_lock = threading.Lock()
        self._calls: Counter[str] = Counter()

    @property
    def subscription_folder(self) -> Path:
        """The subscription's SFTP directory, `sftp_root/sub_<subscriptionId>` (reference §5.3)."""
        return self.sftp_root / f"sub_{self.subscription_id}"

    def stats(self) -> dict[str, Any]:
        """What the sandbox holds and has served, as `GET /_sandbox/stats` answers it."""
        with self._calls_lock:
            calls = dict(self._calls)
        return {
            "tier": self.service.tier,
            "signals": self.store.signal_counts(),
            "export_jobs": self.store.job_counts(),
            "usage": self.service.usage(),
            "notifications": len(self.store.notifications()),
            "public_key": self.store.public_key(self.sftp_user),
            "calls": {"served": sum(calls.values()), "by_status": calls},
            "faults": self.fault_plan.snapshot(),
        }

    def inject(
        self,
        kind: str,
        *,
        count: int | None = None,
        share: float | None = None,
        retry_after: int = 1,
        delay: float = 0.5,
    ) -> None:
        """Add a fault for the next `count` calls and/or a `share` of calls (every call if neither)."""
        self.fault_plan.add(
            Fault(kind, count=count, share=share, retry_after=retry_after, delay=delay)
        )

    def reset_faults(self) -> None:
        """Remove every injected fault."""
        self.fault_plan.reset()

    def run_export_jobs(self) -> list[ExportJob]:
        """Run the queued export jobs now; every job, as it stands afterwards."""
        return self._runner.run_pending()

    def jobs(self) -> dict[str, Any]:
        """Export jobs and recorded notifications, as `GET /_sandbox/jobs` answers them."""
        return {
            "jobs": [job.to_json() for job in self.store.jobs()],
            "notifications": self.store.notifications(),
        }

    def count_call(self, status: int | str) -> None:
        """Count one answered (or dropped) GraphQL call."""
        with self._calls_lock:
            self._calls[str(status)] += 1


@contextmanager
def serve_connect(
    *,
    folder: Path,
    api_key: str,
    tier: str = "ultimate",
    port: int = 0,
    host: str = "127.0.0.1",
    faults: Sequence[Fault] = (),
    limits: DailyLimits | None = None,
    export_delay: float = 0.0,
    clock: Callable[[], datetime] = now_utc,
) -> Iterator[ConnectSandbox]:
    """Serve the Connect sandbox on `host`:`port` (0 = a free port) until the block ends.

    Signals, jobs and keys persist in SQLite under `folder`; export files go to
    `folder/sftp/sub_<subscriptionId>/`. `export_delay` holds each export job back that many
    seconds (the real service takes minutes); `clock` and `limits` let tests move days and limits.
    """
    folder = Path(folder)
    with closing(ConnectStore(folder)) as store:
        runner = ExportRunner(
            store, folder / SFTP_FOLDER / f"sub_{SUBSCRIPTION_ID}", clock=clock, delay=export_delay
        )
        service = ConnectService(
            store, runner, tier=tier.lower(), limits=limits or DailyLimits(), clock=clock
        )
        with _serving(host, port) as server:
            sandbox = ConnectSandbox(
                endpoint=f"http://{host}:{server.server_address[1]}/",
                api_key=api_key,
                folder=folder,
                service=service,
                runner=runner,
                faults=FaultPlan(faults),
            )
            server.sandbox = sandbox
            runner.start()
            try:
                log.info("Connect sandbox on %s (%s tier), in %s", sandbox.endpoint, tier, folder)
                yield sandbox
            finally:
                runner.stop()


@contextmanager
def _serving(host: str, port: int) -> Iterator[_Server]:
    """The HTTP server, answering from a background thread until the block ends."""
    server = _Server((host, port), _Handler)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="connect-sandbox",
        daemon=True,
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: ConnectSandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _route(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            return
        sandbox = self.server.sandbox
        path = urlsplit(self.path).path
        if path == "/":
            self._graphql(method, body)
            return
        control = _CONTROLS.get((method, path))
        if control is None:
            known = sorted({p for _, p in _CONTROLS} | {"/"})
            self._send(404, {"error": f"{method} {path} is not served; paths: {', '.join(known)}"})
            return
        try:
            status, answer = control(sandbox, _json_or_none(body))
        except (FaultSpecError, ValueError) as exc:
            status, answer = 400, {"error": str(exc)}
        self._send(status, answer)

    def _read_body(self) -> bytes | None:
        """The request body; None after answering a request whose body cannot be read."""
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                self._send(411, error_answer("send the body with a Content-Length", BAD_REQUEST))
                return None
            return b""
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, error_answer(f"bodies up to {MAX_BODY_BYTES:,} bytes", BAD_REQUEST))
            return None
        return self.rfile.read(int(length))

    def _graphql(self, method: str, body: bytes) -> None:
        sandbox = self.server.sandbox
        if method != "POST":
            self._answer_call(
                405, error_answer("the Connect API takes POST only", BAD_REQUEST), {"Allow": "POST"}
            )
            return
        fault = sandbox.fault_plan.next_fault()
        if fault is not None and not self._apply_fault(fault):
            return
        if not _authorized(self.headers.get("x-api-key"), sandbox.api_key):
            self._answer_call(401, UNAUTHORIZED)
            return
        if self.headers.get_content_type() != "application/json":
            message = (
                f"Content-Type must be application/json, not {self.headers.get('Content-Type')!r}"
            )
            self._answer_call(400, error_answer(message, BAD_REQUEST))
            return
        try:
            request = json.loads(body)
        except ValueError as exc:
            self._answer_call(400, error_answer(f"the body is not JSON: {exc}", BAD_REQUEST))
            return
        try:
            status, answer = sandbox.service.execute(request)
        except Exception:
            log.exception("Connect sandbox failed on a request")
            status, answer = 500, error_answer("internal sandbox error", INTERNAL_SERVER_ERROR)
        self._answer_call(status, answer)

    def _apply_fault(self, fault: Fault) -> bool:
        """Apply an injected fault; whether the call goes on to be answered normally."""
        if fault.kind is FaultKind.SLOW:
            time.sleep(fault.delay)
            return True
        if fault.kind is FaultKind.DROP:
            self.server.sandbox.count_call("dropped")
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return False
        status, message, code = _FAULT_ANSWERS[fault.kind]
        self._answer_call(
            status, error_answer(message, code), {"Retry-After": str(fault.retry_after)}
        )
        return False

    def _answer_call(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        self.server.sandbox.count_call(status)
        self._send(status, answer, headers)

    def _send(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def _authorized(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _json_or_none(body: bytes) -> Any:
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None


def _add_fault(sandbox: ConnectSandbox, body: Any) -> tuple[int, Any]:
    sandbox.fault_plan.add(Fault.from_json(body))
    return 200, sandbox.fault_plan.snapshot()


def _reset_faults(sandbox: ConnectSandbox, _body: Any) -> tuple[int, Any]:
    sandbox.reset_faults()
    return 200, sandbox.fault_plan.snapshot()


def _run_jobs(sandbox: ConnectSandbox, _body: Any) -> tuple[int, Any]:
    sandbox.run_export_jobs()
    return 200, sandbox.jobs()


_CONTROLS: dict[tuple[str, str], Callable[[ConnectSandbox, Any], tuple[int, Any]]] = {
    ("GET", "/_sandbox/stats"): lambda sandbox, _body: (200, sandbox.stats()),
    ("GET", "/_sandbox/jobs"): lambda sandbox, _body: (200, sandbox.jobs()),
    ("POST", "/_sandbox/jobs/run"): _run_jobs,
    ("POST", "/_sandbox/usage"): lambda sandbox, body: (200, sandbox.service.set_usage(body)),
    ("GET", "/_sandbox/faults"): lambda sandbox, _body: (200, sandbox.fault_plan.snapshot()),
    ("POST", "/_sandbox/faults"): _add_fault,
    ("DELETE", "/_sandbox/faults"): _reset_faults,
}
