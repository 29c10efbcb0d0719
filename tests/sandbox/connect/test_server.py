"""The Connect sandbox over real HTTP on 127.0.0.1: authentication, the request and error contract
(reference §1.2, §7.1), dataSets, the SFTP public key, fault injection with exact counts, the
`/_sandbox/` controls and the `sandbox` command's variables."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from acoustic_pipelines.cli.main import main
from acoustic_pipelines.sandbox.connect.faults import Fault
from acoustic_pipelines.sandbox.connect.server import ConnectSandbox, serve_connect

KEY = "test-api-key"
DATA_SETS = '{ dataSets(filter: [{ field: "type", eq: "AUDIENCE" }]) { nodes { dataSetId name } } }'
SET_KEY = "mutation($k: String!) { updatePublicKeyForConnectUser(publicKey: $k) { publicKey } }"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ConnectSandbox]:
    with serve_connect(folder=tmp_path, api_key=KEY) as running:
        yield running


def post(
    sandbox: ConnectSandbox, query: str, variables: Any = None, **extra: Any
) -> requests.Response:
    body = {"query": query, "variables": variables or {}}
    return requests.post(
        sandbox.endpoint, json=body, headers={"x-api-key": KEY}, timeout=10, **extra
    )


def error_codes(response: requests.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json()["errors"]]


def test_listens_on_loopback_and_answers_the_documented_smoke_query(
    sandbox: ConnectSandbox,
) -> None:
    assert sandbox.endpoint.startswith("http://127.0.0.1:") and sandbox.endpoint.endswith("/")
    response = post(sandbox, DATA_SETS)
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "dataSets": {"nodes": [{"dataSetId": "sandbox-audience", "name": "Sandbox audience"}]}
        }
    }
    other = post(sandbox, DATA_SETS.replace("AUDIENCE", "REFERENCE_SET"))
    assert other.json()["data"]["dataSets"]["nodes"] == []


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": ""}])
def test_a_missing_or_unknown_api_key_is_401(sandbox: ConnectSandbox, headers: dict) -> None:
    response = requests.post(
        sandbox.endpoint, json={"query": DATA_SETS}, headers=headers, timeout=10
    )
    assert response.status_code == 401
    assert response.json() == {
        "errors": [{"message": "Unauthorized", "extensions": {"code": "UNAUTHENTICATED"}}]
    }


def test_the_key_header_name_is_case_insensitive(sandbox: ConnectSandbox) -> None:
    response = requests.post(
        sandbox.endpoint, json={"query": DATA_SETS}, headers={"X-API-Key": KEY}, timeout=10
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("text/plain", b'{"query": "{ dataSets { nodes { name } } }"}', 400),
        (None, b'{"query": "{ dataSets { nodes { name } } }"}', 400),
        ("application/json", b"{not json", 400),
        ("application/json", b'["a list"]', 400),
        ("application/json", b'{"variables": {}}', 400),
        (
            "application/json",
            b'{"query": "{ dataSets { nodes { name } } }", "variables": [1]}',
            400,
        ),
        ("application/json; charset=utf-8", b'{"query": "{ dataSets { nodes { name } } }"}', 200),
    ],
)
def test_only_json_graphql_bodies_are_taken(
    sandbox: ConnectSandbox, content_type: str | None, body: bytes, status: int
) -> None:
    headers = {"x-api-key": KEY, **({"Content-Type": content_type} if content_type else {})}
    response = requests.post(sandbox.endpoint, data=body, headers=headers, timeout=10)
    assert response.status_code == status
    if status == 400:
        assert error_codes(response) == ["BAD_REQUEST"]


def test_post_only(sandbox: ConnectSandbox) -> None:
    response = requests.get(sandbox.endpoint, headers={"x-api-key": KEY}, timeout=10)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "query",
    [
        "{ dataSets { nodes { name } }",  # syntax
        "{ signals { id } }",  # no such field
        "mutation { createSignals { signalIds } }",  # required argument missing
        'mutation { exportSignals(jobName: "j", export: {signals: {signalTypes: ["order"], '
        'timestampStart: "2026-01-01T00:00:00.000Z", timestampEnd: "2026-01-01T00:00:00.000Z"}}, '
        'notifications: [{channel: SMS, destination: "a@example.com"}]) { path } }',  # enum
    ],
)
def test_syntax_and_schema_errors_are_graphql_validation_failed(
    sandbox: ConnectSandbox, query: str
) -> None:
    response = post(sandbox, query)
    assert response.status_code == 400
    assert "data" not in response.json()
    assert set(error_codes(response)) == {"GRAPHQL_VALIDATION_FAILED"}


def test_variables_that_do_not_fit_the_schema_are_bad_user_input(sandbox: ConnectSandbox) -> None:
    response = post(sandbox, SET_KEY, {"k": 42})
    assert response.status_code == 400
    assert error_codes(response) == ["BAD_USER_INPUT"]
    assert "$k" in response.json()["errors"][0]["message"]


def test_operation_name_picks_the_operation(sandbox: ConnectSandbox) -> None:
    document = f"query A {DATA_SETS} query B {{ dataSets {{ nodes {{ dataSetId }} }} }}"
    assert error_codes(post(sandbox, document)) == ["GRAPHQL_VALIDATION_FAILED"]
    body = {"query": document, "operationName": "B"}
    response = requests.post(sandbox.endpoint, json=body, headers={"x-api-key": KEY}, timeout=10)
    assert response.json() == {"data": {"dataSets": {"nodes": [{"dataSetId": "sandbox-audience"}]}}}


def _ed25519_line(comment: str = "Acoustic Connect key") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode() + " " + comment


def test_public_key_is_echoed_and_replaces_the_previous_one(sandbox: ConnectSandbox) -> None:
    first, second = _ed25519_line(), _ed25519_line("second")
    assert post(sandbox, SET_KEY, {"k": first}).json() == {
        "data": {"updatePublicKeyForConnectUser": {"publicKey": first}}
    }
    post(sandbox, SET_KEY, {"k": second})
    assert sandbox.stats()["public_key"] == second
    assert sandbox.store.public_key(sandbox.sftp_user) == second


def _rsa_line() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    return key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (_rsa_line(), "only ssh-ed25519"),
        ("ssh-ed25519 " + _rsa_line().split()[1], "holds a 'ssh-rsa' key"),
        ("ssh-ed25519 not*base64", "not valid base64"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==", "not an SSH public key"),
        ("ssh-ed25519", "not an OpenSSH public key line"),
        ("", "not an OpenSSH public key line"),
    ],
)
def test_public_keys_other_than_ed25519_are_refused(
    sandbox: ConnectSandbox, key: str, says: str
) -> None:
    response = post(sandbox, SET_KEY, {"k": key})
    assert response.status_code == 200
    assert response.json()["data"] == {"updatePublicKeyForConnectUser": None}
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "publicKey"}
    assert error["path"] == ["updatePublicKeyForConnectUser"]
    assert says in error["message"]
    assert sandbox.stats()["public_key"] is None


def test_rate_limit_fault_hits_exactly_count_calls_with_retry_after(
    sandbox: ConnectSandbox,
) -> None:
    sandbox.inject("429", count=2, retry_after=7)
    responses = [post(sandbox, DATA_SETS) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert responses[0].headers["Retry-After"] == "7"
    assert error_codes(responses[0]) == ["RATE_LIMITED"]
    stats = sandbox.stats()
    assert stats["faults"]["served"] == 2 and stats["faults"]["active"] == []
    assert stats["calls"] == {"served": 3, "by_status": {"429": 2, "200": 1}}


def test_faults_set_through_the_control_endpoint_hit_a_share_of_calls(
    sandbox: ConnectSandbox,
) -> None:
    control = sandbox.endpoint + "_sandbox/faults"
    added = requests.post(control, json={"kind": "503", "share": 0.5, "retry_after": 2}, timeout=10)
    assert added.status_code == 200 and added.json()["active"][0]["kind"] == "503"
    statuses = [post(sandbox, DATA_SETS).status_code for _ in range(6)]
    assert statuses == [200, 503, 200, 503, 200, 503]
    assert requests.delete(control, timeout=10).json()["active"] == []
    assert post(sandbox, DATA_SETS).status_code == 200
    assert requests.get(sandbox.endpoint + "_sandbox/stats", timeout=10).json()["faults"][
        "by_kind"
    ] == {"503": 3}


@pytest.mark.parametrize(
    "body", [{"kind": "500"}, {"kind": "429", "count": -1}, {"count": 1}, {"kind": "slow", "x": 1}]
)
def test_bad_fault_descriptions_are_refused(sandbox: ConnectSandbox, body: dict) -> None:
    response = requests.post(sandbox.endpoint + "_sandbox/faults", json=body, timeout=10)
    assert response.status_code == 400 and response.json()["error"]


def test_a_dropped_connection_closes_the_socket_without_an_answer(sandbox: ConnectSandbox) -> None:
    sandbox.inject("drop", count=1)
    with pytest.raises(requests.ConnectionError):
        post(sandbox, DATA_SETS)
    assert post(sandbox, DATA_SETS).status_code == 200
    assert sandbox.stats()["calls"]["by_status"] == {"dropped": 1, "200": 1}


def test_slow_fault_delays_the_answer(tmp_path: Path) -> None:
    faults = [Fault("slow", count=1, delay=0.3)]
    with serve_connect(folder=tmp_path, api_key=KEY, faults=faults) as sandbox:
        started = time.monotonic()
        assert post(sandbox, DATA_SETS).status_code == 200
        assert time.monotonic() - started >= 0.3
        post(sandbox, DATA_SETS)
        # count=1: the second call was not slowed (no upper bound on time: the machine may be busy)
        assert sandbox.stats()["faults"]["by_kind"] == {"slow": 1}


def test_faults_given_at_start_apply_before_authentication(tmp_path: Path) -> None:
    with serve_connect(folder=tmp_path, api_key=KEY, faults=[Fault("503", count=1)]) as sandbox:
        response = requests.post(sandbox.endpoint, json={"query": DATA_SETS}, timeout=10)
        assert response.status_code == 503 and response.headers["Retry-After"] == "1"
        assert post(sandbox, DATA_SETS).status_code == 200


def test_unknown_control_paths_are_404(sandbox: ConnectSandbox) -> None:
    response = requests.get(sandbox.endpoint + "_sandbox/nothing", timeout=10)
    assert response.status_code == 404 and "/_sandbox/stats" in response.json()["error"]


def test_an_unknown_tier_is_refused(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="tier 'gold'"),
        serve_connect(folder=tmp_path, api_key=KEY, tier="gold"),
    ):
        pass


def test_sandbox_command_prints_and_sets_the_connect_variables(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    script = textwrap.dedent(
        """
        import os, sys, requests
        response = requests.post(
            os.environ["ACOUSTIC_CONNECT_ENDPOINT"],
            json={"query": "{ dataSets { nodes { dataSetId } } }"},
            headers={"x-api-key": os.environ["ACOUSTIC_API_KEY"]},
            timeout=10,
        )
        sys.exit(0 if response.status_code == 200 else 3)
        """
    )
    folder = tmp_path / "sandbox"
    assert main(["sandbox", "--dir", str(folder), "--", sys.executable, "-c", script]) == 0
    out = capfd.readouterr().out
    assert "export ACOUSTIC_CONNECT_ENDPOINT=http://127.0.0.1:" in out
    assert "export ACOUSTIC_API_KEY=" in out and "export ACOUSTIC_S3_ENDPOINT_URL=" in out
    assert (folder / "connect.sqlite3").is_file()
