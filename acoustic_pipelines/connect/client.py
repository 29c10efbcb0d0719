"""Acoustic Connect GraphQL client: `x-api-key`, regions, local schema checks, retries, clear errors.

Every request is checked against the local ``schema.graphql`` (document and variables) before it
is sent. Network errors, HTTP 429 and 5xx are retried with capped exponential backoff and jitter,
honouring `Retry-After`; anything else (GraphQL `errors`, even with HTTP 200, or a 4xx) fails at
once with a :class:`~acoustic_pipelines.connect.errors.ConnectError` subclass. The API key is only
ever sent as a header: it is redacted from errors and never logged.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from importlib import resources
from typing import Any

import requests
import urllib3
from gql import Client, GraphQLRequest
from gql.client import SyncClientSession
from gql.transport import Transport
from gql.transport.exceptions import TransportConnectionFailed, TransportError, TransportQueryError
from graphql import ExecutionResult, GraphQLError, build_ast_schema, parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode
from requests.adapters import HTTPAdapter

from acoustic_pipelines.connect.errors import (
    BAD_RESPONSE,
    GRAPHQL_VALIDATION_FAILED,
    NETWORK_ERROR,
    ConnectError,
    InvalidInputError,
    UnavailableError,
    error_from_response,
    problems_error,
    redact,
)
from acoustic_pipelines.connect.exports.requests import check_export_request
from acoustic_pipelines.connect.signals.content import TIERS, validate_signals

log = logging.getLogger(__name__)

# Reference §1.1: one GraphQL host per region, POST at the root path (note `ap-3` for Sydney).
REGION_ENDPOINTS = {
    "us-east-1": "https://connect-gql-us-1.goacoustic.com/",
    "eu-central-1": "https://connect-gql-eu-1.goacoustic.com/",
    "ap-southeast-2": "https://connect-gql-ap-3.goacoustic.com/",
}

POOL_SIZE = 32

SCHEMA_SDL = resources.files("acoustic_pipelines.connect").joinpath("schema.graphql").read_text()
SCHEMA = build_ast_schema(parse(SCHEMA_SDL))

CREATE_SIGNALS = parse(
    "mutation CreateSignals($signals: [SignalInput!]!) {"
    " createSignals(signals: $signals) { signalIds } }"
)
EXPORT_SIGNALS = parse(
    "mutation ExportSignals($jobName: String!, $export: ExportInput!,"
    " $notifications: [NotificationInput!], $to: ExportTargetInput) {"
    " exportSignals(jobName: $jobName, export: $export, notifications: $notifications, to: $to)"
    " { dataJobId path fileFormat } }"
)
UPDATE_PUBLIC_KEY = parse(
    "mutation UpdatePublicKey($publicKey: String!) {"
    " updatePublicKeyForConnectUser(publicKey: $publicKey) { publicKey } }"
)
DATA_SETS = parse("query DataSets { dataSets { nodes { dataSetId name } } }")


@dataclass(frozen=True)
class ClientStats:
    """What a client has done so far: HTTP requests sent, retries among them, signals accepted."""

    calls: int = 0
    retries: int = 0
    signals_sent: int = 0
    retry_wait_seconds: float = 0.0


@dataclass(frozen=True)
class ExportJob:
    """An export job Connect accepted: its id and where its gzip CSV will appear on SFTP."""

    data_job_id: str
    path: str
    file_format: str


class _HttpFailure(TransportError):
    """A response to classify by status: HTTP ≥ 400, or a body that is not a GraphQL result."""

    def __init__(self, status: int, body: Any, retry_after: float | None) -> None:
        waits = f" with Retry-After {retry_after:g} s" if retry_after is not None else ""
        super().__init__(f"HTTP {status}{waits}")
        self.status = status
        self.body = body
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# Mutations that must not run twice: Connect has no idempotency key, so after a request that may
# have reached it (read timeout, connection reset) the outcome is unknown and is not retried.
NOT_RETRIED_ONCE_SENT = frozenset({"createSignals", "exportSignals"})


class _NetworkFailure(TransportConnectionFailed):
    """No HTTP answer; `request_sent` says whether the request may have reached the server."""

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


def _unanswered_mutation(operation: str, failure: TransportError) -> bool:
    """A mutation that must not run twice got no answer after its request may have left."""
    sent = isinstance(failure, _NetworkFailure) and failure.request_sent
    return sent and operation in NOT_RETRIED_ONCE_SENT


def request_may_have_been_sent(exc: BaseException) -> bool:
    """False only when no connection was made (refused, connect timeout): then nothing was sent."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    wrapped = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    # urllib3's NewConnectionError (refused) is a ConnectTimeoutError too.
    return not isinstance(getattr(wrapped, "reason", None), urllib3.exceptions.ConnectTimeoutError)


def outcome_unknown(error: ConnectError) -> bool:
    """Whether a failed call may have reached Connect although no answer came back."""
    if error.code != NETWORK_ERROR or error.status is not None:
        return False
    return error.__cause__ is not None and request_may_have_been_sent(error.__cause__)


class _HttpTransport(Transport):
    """One GraphQL POST per request with `requests`; failures keep their HTTP status."""

    def __init__(self, url: str, *, headers: Mapping[str, str], timeout: float) -> None:
        self.url = url
        self._headers = dict(headers)
        self.timeout = timeout
        self._session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"_HttpTransport(url={self.url!r})"

    def connect(self) -> None:
        self._session = requests.Session()
        # Room for the bounded concurrency of signal pushes sharing one client.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE)
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, adapter)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def execute(self, request: GraphQLRequest, *args: Any, **kwargs: Any) -> ExecutionResult:
        assert self._session is not None, "transport not connected"
        body = json.dumps(request.payload, ensure_ascii=False, allow_nan=False).encode()
        try:
            response = self._session.post(
                self.url, data=body, headers=self._headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise _NetworkFailure(
                f"{type(exc).__name__}: {exc}", request_sent=request_may_have_been_sent(exc)
            ) from exc
        try:
            result = response.json()
        except ValueError:
            result = response.text[:500]
        graphql_shaped = isinstance(result, dict) and ("data" in result or "errors" in result)
        if response.status_code >= 400 or not graphql_shaped:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _HttpFailure(response.status_code, result, retry_after)
        return ExecutionResult(result.get("data"), result.get("errors"), result.get("extensions"))


def _utc(moment: datetime | str) -> str:
    """A DateTime value: ISO 8601 UTC with milliseconds, e.g. `2025-07-01T00:00:00.000Z`."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no time zone; pass an aware datetime")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ConnectClient:
    """A client of the Acoustic Connect GraphQL API, usable as a context manager.

    Args:
        api_key: The Connect API key, sent as the `x-api-key` header and nowhere else.
        region: `us-east-1`, `eu-central-1` or `ap-southeast-2`; picks the documented host.
        endpoint: An explicit GraphQL URL instead of ``region`` (the local sandbox, a proxy).
        tier: The subscription tier (`pro`, `premium`, `ultimate`) signals are checked against.
        timeout: Seconds to wait for each HTTP response.
        max_retries: Retries after the first try for network errors, HTTP 429 and 5xx.
        backoff_base: First backoff in seconds; doubles each retry, with jitter.
        backoff_cap: Longest backoff in seconds.
        max_retry_after: Longest `Retry-After` honoured; a longer one fails at once.
        sleep: How to wait between retries (tests may record the waits).

    Raises:
        ValueError: For a missing key, an unknown region or tier, or both/neither of region and
            endpoint.

    Its methods raise, never retrying the first four: ``InvalidInputError`` (refused locally,
    nothing sent, or `BAD_USER_INPUT`), ``ForbiddenError`` (tier), ``AuthenticationError``,
    ``DailyLimitReachedError``; after every retry, ``RateLimitedError`` or ``UnavailableError``.
    A network error is retried only when the request cannot have reached Connect (refused
    connection, connect timeout) or the operation is safe to repeat; `createSignals` and
    `exportSignals` with no answer after sending raise ``UnavailableError`` instead, as running
    them twice would import or export twice (the API has no idempotency key; callers record
    the unknown outcome, e.g. the push ledger).
    """

    def __init__(
        self,
        *,
        api_key: str,
        region: str | None = None,
        endpoint: str | None = None,
        tier: str = "ultimate",
        timeout: float = 30.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(api_key, str) or not api_key.strip():
            raise ValueError("api_key is empty: pass the Acoustic Connect API key")
        if (region is None) == (endpoint is None):
            raise ValueError("pass exactly one of region and endpoint")
        if region is not None and region not in REGION_ENDPOINTS:
            raise ValueError(f"region {region!r} is not one of {', '.join(REGION_ENDPOINTS)}")
        if tier not in TIERS:
            raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
        self.endpoint = endpoint or REGION_ENDPOINTS[region or ""]
        self.tier = tier
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._api_key = api_key
        self._sleep = sleep
        headers = {"x-api-key": api_key, "Content-Type": "application/json"}
        self._gql = Client(
            schema=SCHEMA, transport=_HttpTransport(self.endpoint, headers=headers, timeout=timeout)
        )
        self._session: SyncClientSession | None = None
        self._lock = threading.Lock()
        self._stats = ClientStats()

    def __repr__(self) -> str:
        return f"ConnectClient(endpoint={self.endpoint!r}, tier={self.tier!r})"

    def __enter__(self) -> ConnectClient:
        self._connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session; the client reconnects if used again."""
        with self._lock:
            if self._session is not None:
                self._gql.close_sync()
                self._session = None

    @property
    def stats(self) -> ClientStats:
        """Calls, retries and accepted signals so far (a snapshot)."""
        return self._stats

    def create_signals(self, signals: Sequence[Mapping[str, Any]]) -> list[str]:
        """Import up to 500 signals in one `createSignals` call; return their ids in input order."""
        problems = validate_signals(signals, tier=self.tier)
        if problems:
            raise redact(problems_error("createSignals", problems), self._api_key)
        if not signals:
            return []
        data = self._execute("createSignals", CREATE_SIGNALS, {"signals": list(signals)})
        ids = (data.get("createSignals") or {}).get("signalIds")
        if not isinstance(ids, list) or len(ids) != len(signals):
            got = len(ids) if isinstance(ids, list) else ids
            raise self._bad_response("createSignals", f"{got!r} signal ids for {len(signals)}")
        self._count(signals_sent=len(ids))
        return [str(i) for i in ids]

    def export_signals(
        self,
        *,
        job_name: str,
        signal_types: Sequence[str],
        start: datetime | str,
        end: datetime | str,
        notify: Sequence[str] = (),
        sftp: Mapping[str, str] | None = None,
    ) -> ExportJob:
        """Start an `exportSignals` job; ``notify`` are e-mail addresses, ``sftp`` the `to.sftp` target.

        Every export rule (connect/exports.py) is checked first: a refused request is not sent.
        """
        variables: dict[str, Any] = {
            "jobName": job_name,
            "export": {
                "signals": {
                    "signalTypes": list(signal_types),
                    "timestampStart": _utc(start),
                    "timestampEnd": _utc(end),
                }
            },
        }
        if notify:
            variables["notifications"] = [{"channel": "EMAIL", "destination": d} for d in notify]
        if sftp is not None:
            variables["to"] = {"sftp": dict(sftp)}
        # The schema first (types, argument names), then every export rule (connect/exports.py).
        self._check_request(
            "exportSignals", GraphQLRequest(EXPORT_SIGNALS, variable_values=variables)
        )
        _, problems = check_export_request(
            job_name=job_name,
            export=variables["export"],
            notifications=variables.get("notifications"),
            to=variables.get("to"),
        )
        if problems:
            raise self._fail(problems_error("exportSignals", problems))
        job = self._execute("exportSignals", EXPORT_SIGNALS, variables).get("exportSignals")
        if not isinstance(job, Mapping):
            raise self._bad_response("exportSignals", f"exportSignals = {job!r}")
        return ExportJob(str(job["dataJobId"]), str(job["path"]), str(job["fileFormat"]))

    def update_public_key(self, public_key: str) -> str:
        """Register the SFTP public key of the API key's user; return the key Connect stored."""
        data = self._execute(
            "updatePublicKeyForConnectUser", UPDATE_PUBLIC_KEY, {"publicKey": public_key}
        )
        result = data.get("updatePublicKeyForConnectUser")
        if not isinstance(result, Mapping):
            raise self._bad_response("updatePublicKeyForConnectUser", f"result = {result!r}")
        return str(result["publicKey"])

    def ping(self) -> list[str]:
        """Run the documented `dataSets` smoke-test query; return the data set names."""
        nodes = (self._execute("dataSets", DATA_SETS, None).get("dataSets") or {}).get("nodes")
        return [str(node["name"]) for node in nodes or []]

    # -- internals -------------------------------------------------------------------------

    def _connect(self) -> SyncClientSession:
        with self._lock:
            if self._session is None:
                self._session = self._gql.connect_sync()
            return self._session

    def _count(self, **increments: float) -> None:
        with self._lock:
            current = self._stats
            self._stats = replace(
                current, **{k: getattr(current, k) + v for k, v in increments.items()}
            )

    def _fail(self, error: ConnectError) -> ConnectError:
        return redact(error, self._api_key)

    def _bad_response(self, operation: str, detail: str) -> ConnectError:
        message = f"Acoustic Connect answered {operation} at {self.endpoint} unexpectedly: {detail}"
        return self._fail(ConnectError(message, code=BAD_RESPONSE))

    def _check_request(self, operation: str, request: GraphQLRequest) -> None:
        """Refuse, before sending, a request the local schema rejects (document or variables)."""
        errors: list[GraphQLError] = list(validate(SCHEMA, request.document))
        if not errors:
            [definition] = [
                d for d in request.document.definitions if isinstance(d, OperationDefinitionNode)
            ]
            coerced = get_variable_values(
                SCHEMA, definition.variable_definitions, request.variable_values or {}
            )
            errors = coerced if isinstance(coerced, list) else []
        if not errors:
            try:
                json.dumps(request.variable_values, allow_nan=False)
            except (TypeError, ValueError) as exc:
                errors = [GraphQLError(f"variables are not JSON: {exc}")]
        if errors:
            listed = "; ".join(e.message for e in errors[:20])
            message = f"{operation} not sent: the local Connect schema refuses it: {listed}"
            raise self._fail(InvalidInputError(message, code=GRAPHQL_VALIDATION_FAILED))

    def _retry_delay(self, operation: str, failure: TransportError, attempt: int) -> float | None:
        """Seconds to wait before retrying ``failure``, or None when it must not be retried."""
        if attempt >= self.max_retries:
            return None
        if _unanswered_mutation(operation, failure):
            return None
        if isinstance(failure, _HttpFailure):
            if not (failure.status == 429 or failure.status >= 500):
                return None
            if failure.retry_after is not None:
                return failure.retry_after if failure.retry_after <= self.max_retry_after else None
        ceiling = min(self.backoff_cap, self.backoff_base * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _final_error(self, operation: str, failure: TransportError, attempts: int) -> ConnectError:
        if isinstance(failure, _HttpFailure):
            return error_from_response(
                operation,
                endpoint=self.endpoint,
                status=failure.status,
                body=failure.body,
                retry_after=failure.retry_after,
                attempts=attempts,
            )
        if _unanswered_mutation(operation, failure):
            message = (
                f"no answer from Acoustic Connect at {self.endpoint} for {operation}: "
                f"{failure}; the request may have been processed, so it is not retried "
                "(that could import or export twice)"
            )
            return UnavailableError(message, code=NETWORK_ERROR)
        message = (
            f"could not reach Acoustic Connect at {self.endpoint} for {operation} after "
            f"{attempts} attempt{'s' if attempts > 1 else ''}: {failure}; "
            "check the network, the endpoint and the region"
        )
        return UnavailableError(message, code=NETWORK_ERROR)

    def _execute(
        self, operation: str, document: Any, variables: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Check, send and retry one operation; return its `data` or raise a ConnectError."""
        request = GraphQLRequest(document, variable_values=variables)
        self._check_request(operation, request)
        session = self._connect()
        attempt = 0
        while True:
            self._count(calls=1)
            try:
                return session.execute(request)
            except TransportQueryError as exc:  # GraphQL errors with HTTP 200: never retried
                body = {"errors": exc.errors or []}
                error = error_from_response(
                    operation, endpoint=self.endpoint, status=200, body=body
                )
                raise self._fail(error) from None
            except (_HttpFailure, _NetworkFailure) as exc:
                failure: TransportError = exc
            delay = self._retry_delay(operation, failure, attempt)
            if delay is None:
                cause = (
                    failure.__cause__ if isinstance(failure, TransportConnectionFailed) else None
                )
                raise self._fail(self._final_error(operation, failure, attempt + 1)) from cause
            attempt += 1
            log.warning(
                "%s at %s: %s; retry %d of %d in %.2f s",
                operation,
                self.endpoint,
                failure,
                attempt,
                self.max_retries,
                delay,
            )
            self._count(retries=1, retry_wait_seconds=delay)
            self._sleep(delay)
