"""Contract of `acoustic_pipelines.connect.client`, over real HTTP against the Connect sandbox.

- Requests carry `x-api-key` and `Content-Type: application/json` (the sandbox refuses others) and
  go to the region's documented host or an explicit endpoint.
- Every request is checked locally first (signal rules, the 500 limit, the local schema for the
  document and the variables); a refused request is never sent (0 calls).
- Network errors (dropped connections, timeouts), HTTP 429 and 5xx are retried up to
  `max_retries`, honouring `Retry-After`, else with capped exponential backoff and jitter; the
  counts on `client.stats` are exact, and the sandbox stores each signal once.
- GraphQL `errors` (HTTP 200 included), 401 and other 4xx fail at once, as typed errors carrying
  code, field and value: AuthenticationError, InvalidInputError, ForbiddenError,
  DailyLimitReachedError; exhausted retries raise RateLimitedError or UnavailableError.
- The API key appears in no error (str, repr, args, attributes), no log record, no repr.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from acoustic_pipelines.connect.client import (
    REGION_ENDPOINTS,
    ClientStats,
    ConnectClient,
    ExportJob,
    parse_retry_after,
)
from acoustic_pipelines.connect.errors import (
    AuthenticationError,
    ConnectError,
    DailyLimitReachedError,
    ForbiddenError,
    InvalidInputError,
    RateLimitedError,
    UnavailableError,
    error_from_response,
    redact,
)

connect_server = pytest.importorskip(
    "acoustic_pipelines.sandbox.connect.server",
    reason="acoustic_pipelines/sandbox/connect_server.py (the Connect sandbox) is missing",
)
serve_connect = connect_server.serve_connect

API_KEY = "ck-SECRET-9f3b7e21d4c0a8e6"  # distinctive, so any leak is found by substring


class Waits:
    """A `sleep` for the client that records each wait and really waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    """A Connect sandbox (Ultimate tier) on 127.0.0.1 that accepts `API_KEY`."""
    with serve_connect(folder=tmp_path, api_key=API_KEY, tier="ultimate", port=0) as running:
        yield running


@pytest.fixture
def waits() -> Waits:
    return Waits()


def make_client(sandbox: Any, waits: Waits, **options: Any) -> ConnectClient:
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "endpoint": sandbox.endpoint,
        "backoff_base": 0.01,
        "backoff_cap": 0.04,
        "timeout": 5.0,
        "sleep": waits,
    }
    return ConnectClient(**(settings | options))


def order(n: int, **content: Any) -> dict[str, Any]:
    """A valid order signal, distinct per `n` (the sandbox tells duplicates by content)."""
    return {
        "appKey": "app-1",
        "identifiableAttributes": {"email": f"buyer{n}@example.com"},
        "sessionId": f"session-{n}",
        "signalContent": {
            "signalType": "order",
            "category": "Behavior",
            "name": "Order completed",
            "effect": "positive",
            "orderId": f"O-{n}",
            "currency": "EUR",
            "orderValue": 10.5 + n,
            "orderedItems": [
                {"productId": "P-1", "productName": "Paint", "itemQuantity": 1, "unitPrice": 10.5}
            ],
        }
        | content,
    }


def stored(sandbox: Any) -> dict[str, Any]:
    return sandbox.stats()["signals"]


def assert_stats(client: ConnectClient, *, calls: int, retries: int, signals_sent: int) -> None:
    stats = client.stats
    assert (stats.calls, stats.retries, stats.signals_sent) == (calls, retries, signals_sent)


# -- happy paths -------------------------------------------------------------------------------


def test_create_signals_returns_ids_in_order_and_stores_each_once(
    sandbox: Any, waits: Waits
) -> None:
    with make_client(sandbox, waits) as client:
        ids = client.create_signals([order(i) for i in range(3)])
        more = client.create_signals([order(3)])
    assert len(ids) == 3 and len(set(ids + more)) == 4
    assert_stats(client, calls=2, retries=0, signals_sent=4)
    assert stored(sandbox)["stored"] == stored(sandbox)["distinct"] == 4
    assert stored(sandbox)["by_type"] == {"order": 4}
    assert waits.waits == []


def test_an_empty_batch_sends_nothing(sandbox: Any, waits: Waits) -> None:
    with make_client(sandbox, waits) as client:
        assert client.create_signals([]) == []
    assert_stats(client, calls=0, retries=0, signals_sent=0)


def test_a_full_batch_of_500(sandbox: Any, waits: Waits) -> None:
    with make_client(sandbox, waits) as client:
        ids = client.create_signals([order(i) for i in range(500)])
    assert len(set(ids)) == 500
    assert stored(sandbox)["distinct"] == 500


def test_ping_export_and_public_key(sandbox: Any, waits: Waits) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public_key = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    start = datetime(2026, 11, 20, tzinfo=UTC)
    with make_client(sandbox, waits) as client:
        assert client.ping() == ["Sandbox audience"]
        job = client.export_signals(
            job_name="daily orders",
            signal_types=["order", "addToCart"],
            start=start,
            end=start + timedelta(days=1) - timedelta(milliseconds=1),
            notify=["team@example.com"],
        )
        assert client.update_public_key(public_key) == public_key
    assert isinstance(job, ExportJob) and job.file_format == "CSV" and job.data_job_id
    assert job.path.endswith(".csv.gz") or job.path.endswith(".csv")
    assert sandbox.stats()["public_key"] == public_key
    assert_stats(client, calls=3, retries=0, signals_sent=0)


def test_a_closed_client_reconnects(sandbox: Any, waits: Waits) -> None:
    client = make_client(sandbox, waits)
    assert client.ping()
    client.close()
    assert client.ping()
    client.close()
    assert client.stats.calls == 2


# -- refused locally, never sent ---------------------------------------------------------------


def test_invalid_signals_are_refused_with_every_problem(sandbox: Any, waits: Waits) -> None:
    bad = [order(0), order(1, effect="meh"), order(2, currency="euro")]
    bad[0]["identifiableAttributes"] = {"sms": "0123"}
    with make_client(sandbox, waits) as client, pytest.raises(InvalidInputError) as caught:
        client.create_signals(bad)
    error = caught.value
    assert [p.path for p in error.problems] == [
        "signals[0].identifiableAttributes.sms",
        "signals[1].signalContent.effect",
        "signals[2].signalContent.currency",
    ]
    assert error.code == "BAD_USER_INPUT" and error.field == "signals[0].identifiableAttributes.sms"
    assert str(error).startswith("createSignals not sent: 3 problem(s) in the input:\n")
    assert '`signals[1].signalContent.effect` is "meh"' in str(error)
    assert_stats(client, calls=0, retries=0, signals_sent=0)
    assert stored(sandbox)["stored"] == 0


def test_more_than_500_signals_are_refused_locally(sandbox: Any, waits: Waits) -> None:
    with make_client(sandbox, waits) as client, pytest.raises(InvalidInputError) as caught:
        client.create_signals([order(i) for i in range(501)])
    assert caught.value.field == "signals"
    assert "holds 501 signals; expected at most 500" in str(caught.value)
    assert client.stats.calls == 0


def test_a_type_the_tier_forbids_is_refused_locally(sandbox: Any, waits: Waits) -> None:
    page_view = order(0, signalType="pageView", url="https://example.com/")
    with make_client(sandbox, waits, tier="pro") as client, pytest.raises(ForbiddenError) as caught:
        client.create_signals([page_view])
    assert caught.value.code == "FORBIDDEN"
    assert caught.value.field == "signals[0].signalContent.signalType"
    assert client.stats.calls == 0


def test_the_local_schema_refuses_unknown_arguments_before_sending(
    sandbox: Any, waits: Waits
) -> None:
    now = datetime.now(UTC)
    with make_client(sandbox, waits) as client:
        with pytest.raises(InvalidInputError) as caught:
            client.export_signals(
                job_name="j", signal_types=["order"], start=now, end=now, sftp={"folder": "x"}
            )
        assert caught.value.code == "GRAPHQL_VALIDATION_FAILED"
        assert "folder" in str(caught.value) and "SftpTargetInput" in str(caught.value)
        with pytest.raises(InvalidInputError, match="publicKey"):
            client.update_public_key(None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="no time zone"):
            client.export_signals(
                job_name="j", signal_types=["order"], start=datetime(2026, 1, 1), end=now
            )
    assert client.stats.calls == 0


# -- refused by Connect: never retried ---------------------------------------------------------


def test_graphql_errors_with_http_200_fail_without_retry(tmp_path: Path, waits: Waits) -> None:
    page_view = order(0, signalType="pageView", url="https://example.com/")
    with serve_connect(folder=tmp_path, api_key=API_KEY, tier="pro") as pro:
        with (
            make_client(pro, waits, tier="ultimate") as client,
            pytest.raises(ForbiddenError) as caught,
        ):
            client.create_signals([page_view])
        assert stored(pro)["stored"] == 0
    error = caught.value
    assert (error.status, error.code) == (200, "FORBIDDEN")
    assert error.field == "signals[0].signalContent.signalType"
    assert "(HTTP 200, FORBIDDEN)" in str(error) and "pro subscription" in str(error)
    assert error.errors and error.errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert_stats(client, calls=1, retries=0, signals_sent=0)


def test_bad_user_input_from_connect_is_not_retried(sandbox: Any, waits: Waits) -> None:
    now = datetime.now(UTC)
    with make_client(sandbox, waits) as client:
        # A job name already used: a rule only Connect can check (bad values never leave).
        client.export_signals(job_name="j", signal_types=["order"], start=now, end=now)
        with pytest.raises(InvalidInputError) as caught:
            client.export_signals(job_name="j", signal_types=["order"], start=now, end=now)
        with pytest.raises(InvalidInputError) as key_error:
            client.update_public_key("ssh-rsa AAAAB3NzaC1yc2E= someone")
    assert caught.value.code == key_error.value.code == "BAD_USER_INPUT"
    assert caught.value.status == 200
    assert caught.value.field == "jobName" and "'j'" in str(caught.value)
    assert key_error.value.field == "publicKey"
    assert_stats(client, calls=3, retries=0, signals_sent=0)
    assert waits.waits == []


def test_daily_limit_reached(tmp_path: Path, waits: Waits) -> None:
    limits = connect_server.DailyLimits(jobs=1)
    now = datetime.now(UTC)
    with (
        serve_connect(folder=tmp_path, api_key=API_KEY, limits=limits) as limited,
        make_client(limited, waits) as client,
    ):
        client.export_signals(job_name="first", signal_types=["order"], start=now, end=now)
        with pytest.raises(DailyLimitReachedError) as caught:
            client.export_signals(job_name="second", signal_types=["order"], start=now, end=now)
    assert caught.value.code == "DAILY_LIMIT_EXCEEDED"
    assert "00:00 UTC" in str(caught.value)
    assert (caught.value.field, caught.value.value) == ("jobs", 1)
    assert_stats(client, calls=2, retries=0, signals_sent=0)


def test_a_wrong_api_key_is_an_authentication_error(sandbox: Any, waits: Waits) -> None:
    with (
        make_client(sandbox, waits, api_key="not-the-key") as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.create_signals([order(0)])
    assert (caught.value.status, caught.value.code) == (401, "UNAUTHENTICATED")
    assert "check the API key" in str(caught.value)
    assert_stats(client, calls=1, retries=0, signals_sent=0)


# -- retried: exact counts ---------------------------------------------------------------------


def test_429_honours_retry_after(sandbox: Any, waits: Waits) -> None:
    sandbox.inject("429", count=1, retry_after=1)
    started = time.monotonic()
    with make_client(sandbox, waits) as client:
        ids = client.create_signals([order(0), order(1)])
    assert time.monotonic() - started >= 1.0
    assert waits.waits == [1.0]
    assert len(ids) == 2
    assert_stats(client, calls=2, retries=1, signals_sent=2)
    assert client.stats.retry_wait_seconds == 1.0
    assert stored(sandbox)["stored"] == stored(sandbox)["distinct"] == 2


def test_a_retry_after_beyond_the_cap_fails_at_once(sandbox: Any, waits: Waits) -> None:
    sandbox.inject("429", count=1, retry_after=30)
    with (
        make_client(sandbox, waits, max_retry_after=5) as client,
        pytest.raises(RateLimitedError) as caught,
    ):
        client.ping()
    assert caught.value.retry_after == 30.0
    assert "wait 30 s" in str(caught.value)
    assert_stats(client, calls=1, retries=0, signals_sent=0)


def test_503_is_retried_then_succeeds(sandbox: Any, waits: Waits) -> None:
    sandbox.inject("503", count=2, retry_after=0)
    with make_client(sandbox, waits) as client:
        ids = client.create_signals([order(i) for i in range(5)])
    assert len(ids) == 5
    assert_stats(client, calls=3, retries=2, signals_sent=5)
    assert stored(sandbox)["stored"] == stored(sandbox)["distinct"] == 5
    assert sandbox.stats()["calls"]["by_status"] == {"503": 2, "200": 1}


def test_a_dropped_connection_is_retried_with_capped_jittered_backoff(
    sandbox: Any, waits: Waits
) -> None:
    sandbox.inject("drop", count=3)
    with make_client(sandbox, waits, backoff_base=0.01, backoff_cap=0.02) as client:
        assert client.ping()  # a query: safe to send again
    assert_stats(client, calls=4, retries=3, signals_sent=0)
    ceilings = [0.01, 0.02, 0.02]  # base * 2**attempt, capped; each wait in [ceiling/2, ceiling]
    assert len(waits.waits) == 3
    assert all(c / 2 <= w <= c for w, c in zip(waits.waits, ceilings, strict=True))


def test_create_signals_is_not_sent_again_after_a_dropped_answer(
    sandbox: Any, waits: Waits
) -> None:
    """The request reached the server and no answer came: sending it again could import twice."""
    sandbox.inject("drop", count=1)
    with make_client(sandbox, waits) as client, pytest.raises(UnavailableError) as caught:
        client.create_signals([order(0)])
    assert "may have been processed, so it is not retried" in str(caught.value)
    assert_stats(client, calls=1, retries=0, signals_sent=0)
    assert waits.waits == []


def test_a_refused_connection_is_retried_for_create_signals(waits: Waits) -> None:
    """Nothing listens: no request left this machine, so a retry cannot import twice."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ConnectClient(
        api_key="k",
        endpoint=f"http://127.0.0.1:{port}/",
        max_retries=2,
        backoff_base=0.01,
        backoff_cap=0.02,
        sleep=waits,
    )
    with client, pytest.raises(UnavailableError) as caught:
        client.create_signals([order(0)])
    assert "after 3 attempts" in str(caught.value)
    assert_stats(client, calls=3, retries=2, signals_sent=0)


@pytest.mark.parametrize(
    ("kind", "error_type", "status", "code", "advice"),
    [
        ("429", RateLimitedError, 429, "RATE_LIMITED", "lower the request rate"),
        ("503", UnavailableError, 503, "SERVICE_UNAVAILABLE", "try again later"),
        ("drop", UnavailableError, None, "NETWORK_ERROR", "check the network"),
    ],
)
def test_retries_run_out(
    sandbox: Any,
    waits: Waits,
    kind: str,
    error_type: type[ConnectError],
    status: int | None,
    code: str,
    advice: str,
) -> None:
    sandbox.inject(kind, count=10, retry_after=0)
    with (
        make_client(sandbox, waits, max_retries=3) as client,
        pytest.raises(error_type) as caught,
    ):
        if kind == "drop":  # createSignals is not retried once sent (test above): use a query
            client.ping()
        else:
            client.create_signals([order(0)])
    error = caught.value
    assert (error.status, error.code) == (status, code)
    assert "after 4 attempts" in str(error) and advice in str(error)
    if kind != "drop":
        assert getattr(error, "retry_after", 0.0) == 0.0
        assert waits.waits == [0.0, 0.0, 0.0]
    assert len(waits.waits) == 3
    assert_stats(client, calls=4, retries=3, signals_sent=0)
    assert stored(sandbox)["stored"] == 0


def test_a_slow_answer_within_the_timeout_is_not_retried(sandbox: Any, waits: Waits) -> None:
    sandbox.inject("slow", count=1, delay=0.3)
    with make_client(sandbox, waits, timeout=2.0) as client:
        assert len(client.create_signals([order(0)])) == 1
    assert_stats(client, calls=1, retries=0, signals_sent=1)


def test_a_timeout_is_a_network_error_and_is_retried(sandbox: Any, waits: Waits) -> None:
    sandbox.inject("slow", count=1, delay=1.0)
    with make_client(sandbox, waits, timeout=0.3) as client:
        assert client.ping() == ["Sandbox audience"]
    assert_stats(client, calls=2, retries=1, signals_sent=0)


def test_concurrent_pushes_through_one_client_count_exactly(sandbox: Any, waits: Waits) -> None:
    # Every second call the sandbox serves answers 503: 20 batches succeed on calls 1, 3, …, 39.
    sandbox.inject("503", share=0.5, retry_after=0)
    batches = [[order(b * 10 + i) for i in range(10)] for b in range(20)]
    errors: list[BaseException] = []
    with make_client(sandbox, waits, max_retries=20) as client:

        def push(mine: list[list[dict[str, Any]]]) -> None:
            try:
                for batch in mine:
                    client.create_signals(batch)
            except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=push, args=(batches[t::4],)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert_stats(client, calls=39, retries=19, signals_sent=200)
    assert stored(sandbox)["stored"] == stored(sandbox)["distinct"] == 200
    assert sandbox.stats()["calls"]["served"] == 39


# -- the API key never leaks -------------------------------------------------------------------


def _leaks(error: ConnectError) -> list[str]:
    texts = [str(error), repr(error), repr(error.args), repr(error.field), repr(error.value)]
    texts += [repr(error.errors), repr(error.problems)]
    texts += [repr(error.__cause__), repr(error.__context__)]
    return [t for t in texts if API_KEY in t]


def test_the_api_key_is_in_no_error_log_or_repr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, waits: Waits
) -> None:
    caplog.set_level(logging.DEBUG)
    page_view = order(0, signalType="pageView", url="https://example.com/")
    raised: list[ConnectError] = []
    with (
        serve_connect(folder=tmp_path, api_key="another-key", tier="pro") as other,
        make_client(other, waits) as wrong_key,
        pytest.raises(AuthenticationError) as caught,
    ):
        wrong_key.ping()
    raised.append(caught.value)
    with (
        serve_connect(folder=tmp_path / "p", api_key=API_KEY, tier="pro") as pro,
        make_client(pro, waits, max_retries=1) as client,
    ):
        for kind in ("429", "503", "drop"):
            # one try plus one retry; a dropped createSignals is not retried (outcome unknown)
            pro.inject(kind, count=1 if kind == "drop" else 2, retry_after=0)
            with pytest.raises(ConnectError) as caught:
                client.create_signals([order(0)])
            raised.append(caught.value)
        for call in (
            lambda: client.create_signals([page_view]),  # FORBIDDEN from Connect
            lambda: client.create_signals([order(0, effect="x")]),  # refused locally
            lambda: client.update_public_key("ssh-rsa AAAA"),  # BAD_USER_INPUT
        ):
            with pytest.raises(ConnectError) as caught:
                call()
            raised.append(caught.value)
        assert API_KEY not in repr(client)
    assert [type(e).__name__ for e in raised] == [
        "AuthenticationError",
        "RateLimitedError",
        "UnavailableError",
        "UnavailableError",
        "ForbiddenError",
        "InvalidInputError",
        "InvalidInputError",
    ]
    assert [leak for error in raised for leak in _leaks(error)] == []
    assert caplog.records, "expected retry warnings and debug records to inspect"
    assert API_KEY not in caplog.text
    assert all(API_KEY not in str(r.args) for r in caplog.records)


def test_an_echoed_key_is_redacted() -> None:
    body = {
        "errors": [
            {
                "message": f"key {API_KEY} is not valid here",
                "extensions": {"code": "UNAUTHENTICATED", "value": API_KEY},
            }
        ]
    }
    error = error_from_response("ping", endpoint="https://x/", status=401, body=body)
    assert API_KEY in str(error)  # the raw mapping keeps what it got …
    clean = redact(error, API_KEY)  # … and the client always redacts before raising
    assert _leaks(clean) == []
    assert "[redacted]" in str(clean) and clean.value == "[redacted]"


# -- construction and helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("us-east-1", "https://connect-gql-us-1.goacoustic.com/"),
        ("eu-central-1", "https://connect-gql-eu-1.goacoustic.com/"),
        ("ap-southeast-2", "https://connect-gql-ap-3.goacoustic.com/"),
    ],
)
def test_regions_map_to_the_documented_hosts(region: str, host: str) -> None:
    assert REGION_ENDPOINTS[region] == host
    assert ConnectClient(api_key=API_KEY, region=region).endpoint == host


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api_key": ""}, "api_key is empty"),
        ({"region": "us-west-2"}, "region 'us-west-2' is not one of us-east-1"),
        ({"region": "us-east-1", "endpoint": "http://x/"}, "exactly one of region and endpoint"),
        ({"region": None}, "exactly one of region and endpoint"),
        ({"tier": "gold"}, "tier 'gold' is not one of pro, premium, ultimate"),
    ],
)
def test_bad_construction(options: dict[str, Any], message: str) -> None:
    settings = {"api_key": API_KEY, "region": "us-east-1"} | options
    with pytest.raises(ValueError, match=message) as caught:
        ConnectClient(**settings)
    assert API_KEY not in str(caught.value)


def test_stats_start_at_zero() -> None:
    client = ConnectClient(api_key=API_KEY, region="eu-central-1")
    assert client.stats == ClientStats(calls=0, retries=0, signals_sent=0, retry_wait_seconds=0.0)


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30
