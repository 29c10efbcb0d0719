"""exportSignals on the Connect sandbox over HTTP: every documented argument rule (seed 003,
reference §4), the daily limits (§4.5, §8 #14), and the gzip CSV files the jobs write into the
subscription's SFTP folder (§5.3, §6): header, rows of the window, columns."""

from __future__ import annotations

import csv
import gzip
import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from acoustic_pipelines.connect.exports.requests import EXPORT_SIGNAL_TYPES
from acoustic_pipelines.sandbox.connect.exports import EXPORT_COLUMNS
from acoustic_pipelines.sandbox.connect.graphql import DailyLimits
from acoustic_pipelines.sandbox.connect.server import ConnectSandbox, serve_connect

KEY = "test-api-key"
EXPORT = """mutation($name: String!, $export: ExportInput!, $notifications: [NotificationInput!],
  $to: ExportTargetInput) {
  exportSignals(jobName: $name, export: $export, notifications: $notifications, to: $to) {
    dataJobId path fileFormat
  }
}"""
CREATE = "mutation($signals: [SignalInput!]!) { createSignals(signals: $signals) { signalIds } }"
DAY_START, DAY_END = "2026-01-01T00:00:00.000Z", "2026-01-01T23:59:59.999Z"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ConnectSandbox]:
    with serve_connect(folder=tmp_path, api_key=KEY) as running:
        yield running


def call(sandbox: ConnectSandbox, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = {"query": query, "variables": variables}
    response = requests.post(sandbox.endpoint, json=body, headers={"x-api-key": KEY}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def export(
    sandbox: ConnectSandbox,
    name: str = "job",
    types: list[str] | None = None,
    start: str = DAY_START,
    end: str = DAY_END,
    **extra: Any,
) -> dict[str, Any]:
    types = ["pageView"] if types is None else types
    window = {"signalTypes": types, "timestampStart": start, "timestampEnd": end}
    return call(sandbox, EXPORT, {"name": name, "export": {"signals": window}, **extra})


def page_view(timestamp: str | None, *, test: bool = False, email: str = "ann@example.com") -> dict:
    content = {
        "signalType": "pageView",
        "category": "Behavior",
        "name": "view",
        "url": "https://e.com/a",
    }
    if timestamp:
        content["signalTimestamp"] = timestamp
    return {
        "appKey": "app-1",
        "identifiableAttributes": {"email": email},
        "sessionId": "s-1",
        "signalContent": content,
        "test": test,
    }


def read_export(sandbox: ConnectSandbox, path: str) -> tuple[list[str], list[dict[str, str]]]:
    raw = (sandbox.subscription_folder / path).read_bytes()
    text = gzip.decompress(raw).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or []), list(reader)


def problems(answer: dict[str, Any]) -> dict[str, str]:
    """field → code of every error of a refused exportSignals call."""
    assert answer["data"] == {"exportSignals": None}
    return {e["extensions"]["field"]: e["extensions"]["code"] for e in answer["errors"]}


def test_a_job_writes_a_gzip_csv_of_the_window_into_the_subscription_folder(
    sandbox: ConnectSandbox,
) -> None:
    signals = [
        page_view("2025-12-31T23:59:59.999Z"),  # before the window
        page_view(DAY_START),  # both ends are inclusive
        page_view("2026-01-01T12:00:00.000+02:00", email="bob@example.com"),
        page_view(DAY_END),
        page_view("2026-01-02T00:00:00.000Z"),  # after
        page_view("2026-01-01T12:00:00.000Z", test=True),  # test signals are never exported
    ]
    ids = call(sandbox, CREATE, {"signals": signals})["data"]["createSignals"]["signalIds"]
    job = export(sandbox, "January 1st views")["data"]["exportSignals"]
    assert job["fileFormat"] == "CSV"
    today = datetime.now(UTC).date().isoformat()
    assert job["path"] == f"Export/Signals/{today}/January_1st_views_Signals_Export.csv.gz"
    sandbox.run_export_jobs()
    header, rows = read_export(sandbox, job["path"])
    assert tuple(header) == EXPORT_COLUMNS
    assert [r["SIGNAL_ID"] for r in rows] == [ids[1], ids[2], ids[3]]
    assert [r["SIGNAL_TIMESTAMP"] for r in rows] == [DAY_START, "2026-01-01T10:00:00.000Z", DAY_END]
    first = rows[0]
    assert json.loads(first["SIGNAL_CONTENT"]) == signals[1]["signalContent"]
    assert first["SIGNAL_TYPE"] == "pageView" and first["CATEGORY"] == "Behavior"
    assert first["ACOUSTIC_APP_KEY"] == "app-1" and first["TLTSID"] == "s-1"
    assert first["EMAIL"] == "ann@example.com" and rows[1]["EMAIL"] == "bob@example.com"
    assert first["CONTACT_SOURCE"] == "sandbox"  # an audience attribute, unknown to clients
    assert first["SUBSCRIPTION_ID"] == sandbox.subscription_id
    assert datetime.strptime(first["RECEIVED_TIMESTAMP"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert first["CAMPAIGN_ID"] == "" and first["BOT_DETECTED"] == ""
    assert sandbox.subscription_folder == sandbox.sftp_root / "sub_0000000001"


def test_a_job_without_rows_writes_the_header_only(sandbox: ConnectSandbox) -> None:
    job = export(sandbox, types=["emailOpen", "whatsAppClick"])["data"]["exportSignals"]
    (finished,) = sandbox.run_export_jobs()
    assert (finished.status, finished.row_count) == ("COMPLETED", 0)
    assert finished.byte_count == (sandbox.subscription_folder / job["path"]).stat().st_size
    header, rows = read_export(sandbox, job["path"])
    assert tuple(header) == EXPORT_COLUMNS and rows == []


def test_jobs_run_in_the_background_and_record_notifications(sandbox: ConnectSandbox) -> None:
    call(sandbox, CREATE, {"signals": [page_view(DAY_START)]})
    notify = [{"channel": "EMAIL", "destination": "team@example.com"}]
    job = export(sandbox, "background", notifications=notify)["data"]["exportSignals"]
    deadline = time.monotonic() + 5
    while sandbox.stats()["export_jobs"]["by_state"]["COMPLETED"] == 0:
        assert time.monotonic() < deadline, sandbox.stats()
        time.sleep(0.02)
    listing = requests.get(sandbox.endpoint + "_sandbox/jobs", timeout=10).json()
    (shown,) = listing["jobs"]
    assert shown["dataJobId"] == job["dataJobId"] and shown["rowCount"] == 1
    assert (shown["status"], shown["path"]) == ("COMPLETED", job["path"])
    (mail,) = listing["notifications"]
    assert mail["destination"] == "team@example.com" and mail["dataJobId"] == job["dataJobId"]
    assert "completed" in mail["subject"]
    usage = sandbox.stats()["usage"]
    assert usage["jobs"] == {"used": 1, "limit": 20} and usage["rows"]["used"] == 1
    assert usage["bytes"]["used"] == shown["byteCount"] > 0


def test_target_forms_place_the_file(sandbox: ConnectSandbox) -> None:
    folder = {"sftp": {"parentFolder": "Export/Signals/Shopping_Funnel", "namingPrefix": "Aug_"}}
    placed = export(sandbox, "funnel", to=folder)["data"]["exportSignals"]["path"]
    today = datetime.now(UTC).date().isoformat()
    assert placed == f"Export/Signals/Shopping_Funnel/{today}/Aug_funnel_Signals_Export.csv.gz"
    given = {"sftp": {"path": "Behavior Signals/Order/Demo_Export.csv"}}
    exact = export(sandbox, "exact", to=given)["data"]["exportSignals"]["path"]
    assert exact == "Behavior Signals/Order/Demo_Export.csv.gz"
    sandbox.run_export_jobs()
    assert (sandbox.subscription_folder / placed).is_file()
    assert (sandbox.subscription_folder / exact).is_file()


def test_generated_names_that_collide_get_the_job_id(sandbox: ConnectSandbox) -> None:
    one = export(sandbox, "a b")["data"]["exportSignals"]
    two = export(sandbox, "a_b")["data"]["exportSignals"]
    assert one["path"].endswith("/a_b_Signals_Export.csv.gz")
    assert two["path"].endswith(f"/a_b_{two['dataJobId'][:8]}_Signals_Export.csv.gz")


def test_all_28_signal_type_names_are_accepted(sandbox: ConnectSandbox) -> None:
    assert len(EXPORT_SIGNAL_TYPES) == len(set(EXPORT_SIGNAL_TYPES)) == 28
    assert export(sandbox, types=list(EXPORT_SIGNAL_TYPES))["data"]["exportSignals"]["path"]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"name": "  "}, "jobName"),
        ({"types": []}, "export.signals.signalTypes"),
        ({"types": ["order", "emailOpened"]}, "export.signals.signalTypes[1]"),
        ({"types": ["whatsappClick"]}, "export.signals.signalTypes[0]"),
        ({"start": "2026-01-01T00:00:00Z"}, "export.signals.timestampStart"),
        ({"start": "2026-01-01T00:00:00.000+01:00"}, "export.signals.timestampStart"),
        ({"end": "2026-02-30T00:00:00.000Z"}, "export.signals.timestampEnd"),
        ({"end": "2026-01-01"}, "export.signals.timestampEnd"),
        ({"end": "2025-12-31T23:59:59.999Z"}, "export.signals.timestampEnd"),
        (
            {"notifications": [{"channel": "EMAIL", "destination": "team"}]},
            "notifications[0].destination",
        ),
        ({"to": {"sftp": {}}}, "to.sftp"),
        ({"to": {"sftp": {"path": "a/b.csv", "namingPrefix": "x"}}}, "to.sftp"),
        ({"to": {"sftp": {"path": "a/b.csv", "parentFolder": "Export/Signals"}}}, "to.sftp"),
        ({"to": {"sftp": {"parentFolder": "Exports/Test"}}}, "to.sftp.parentFolder"),
        ({"to": {"sftp": {"parentFolder": "Export/SignalsX"}}}, "to.sftp.parentFolder"),
        ({"to": {"sftp": {"parentFolder": "Export/Signals/Q3.2025"}}}, "to.sftp.parentFolder"),
        ({"to": {"sftp": {"parentFolder": "Export/Signals//x"}}}, "to.sftp.parentFolder"),
        ({"to": {"sftp": {"namingPrefix": "a/b"}}}, "to.sftp.namingPrefix"),
        ({"to": {"sftp": {"path": "reports/export.txt"}}}, "to.sftp.path"),
        ({"to": {"sftp": {"path": "/abs/export.csv"}}}, "to.sftp.path"),
        ({"to": {"sftp": {"path": "../escape.csv"}}}, "to.sftp.path"),
    ],
)
def test_each_argument_rule_is_enforced(
    sandbox: ConnectSandbox, arguments: dict[str, Any], field: str
) -> None:
    answer = export(sandbox, **arguments)
    assert problems(answer) == {field: "BAD_USER_INPUT"}
    (error,) = answer["errors"]
    assert error["path"] == ["exportSignals"] and f"`{field}`" in error["message"]
    assert sandbox.stats()["export_jobs"]["total"] == 0


def test_the_refusal_names_the_bad_value(sandbox: ConnectSandbox) -> None:
    (error,) = export(sandbox, types=["emailOpened"])["errors"]
    assert '"emailOpened"' in error["message"] and "emailOpen" in error["message"]


def test_every_problem_is_reported_at_once(sandbox: ConnectSandbox) -> None:
    answer = export(sandbox, "", types=["nope"], start="x", end="y")
    assert set(problems(answer)) == {
        "jobName",
        "export.signals.signalTypes[0]",
        "export.signals.timestampStart",
        "export.signals.timestampEnd",
    }


def test_job_names_and_paths_are_unique(sandbox: ConnectSandbox) -> None:
    to = {"sftp": {"path": "reports/a.csv"}}
    assert export(sandbox, "monthly", to=to)["data"]["exportSignals"]
    assert problems(export(sandbox, "monthly")) == {"jobName": "BAD_USER_INPUT"}
    assert problems(export(sandbox, "other", to=to)) == {"to.sftp.path": "BAD_USER_INPUT"}


def test_the_21st_job_of_a_day_is_refused(sandbox: ConnectSandbox) -> None:
    for number in range(20):
        assert export(sandbox, f"job {number}")["data"]["exportSignals"]
    answer = export(sandbox, "job 20")
    assert answer["data"] == {"exportSignals": None}
    (error,) = answer["errors"]
    assert error["path"] == ["exportSignals"]
    assert error["extensions"]["code"] == "DAILY_LIMIT_EXCEEDED"
    assert (error["extensions"]["limit"], error["extensions"]["used"]) == ("jobs", 20)
    assert sandbox.stats()["usage"]["exhausted"] is True


def test_parallel_submissions_cannot_pass_the_job_limit_together(tmp_path: Path) -> None:
    with serve_connect(folder=tmp_path, api_key=KEY, limits=DailyLimits(jobs=5)) as sandbox:
        answers: list[dict[str, Any]] = []
        threads = [
            threading.Thread(target=lambda n=n: answers.append(export(sandbox, f"p{n}")))
            for n in range(12)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        accepted = [a for a in answers if a["data"]["exportSignals"]]
        assert len(accepted) == 5
        assert sandbox.stats()["export_jobs"]["total"] == 5


@pytest.mark.parametrize(
    ("limits", "limit"), [(DailyLimits(rows=3), "rows"), (DailyLimits(bytes=100), "bytes")]
)
def test_rows_and_bytes_count_at_completion_then_refuse(
    tmp_path: Path, limits: DailyLimits, limit: str
) -> None:
    # A long export delay keeps the background worker away: jobs run when the test says.
    with serve_connect(folder=tmp_path, api_key=KEY, limits=limits, export_delay=60) as sandbox:
        call(sandbox, CREATE, {"signals": [page_view(DAY_START)] * 3})
        assert export(sandbox, "first")["data"]["exportSignals"]
        assert export(sandbox, "second")["data"]["exportSignals"]  # the first has not completed
        sandbox.run_export_jobs()
        (error,) = export(sandbox, "third")["errors"]
        assert error["extensions"]["code"] == "DAILY_LIMIT_EXCEEDED"
        assert error["extensions"]["limit"] == limit


def test_the_limits_are_per_utc_day(tmp_path: Path) -> None:
    now = [datetime(2026, 3, 1, 23, 59, tzinfo=UTC)]
    with serve_connect(
        folder=tmp_path, api_key=KEY, limits=DailyLimits(jobs=1), clock=lambda: now[0]
    ) as sandbox:
        assert export(sandbox, "before midnight")["data"]["exportSignals"]
        assert (
            export(sandbox, "refused")["errors"][0]["extensions"]["code"] == "DAILY_LIMIT_EXCEEDED"
        )
        now[0] += timedelta(minutes=2)
        job = export(sandbox, "after midnight")["data"]["exportSignals"]
        assert job["path"].startswith("Export/Signals/2026-03-02/")
        assert sandbox.stats()["usage"]["day"] == "2026-03-02"


def test_usage_set_from_outside_counts_toward_the_limits(tmp_path: Path) -> None:
    with serve_connect(folder=tmp_path, api_key=KEY, export_delay=60) as sandbox:
        check_usage_control(sandbox)


def check_usage_control(sandbox: ConnectSandbox) -> None:
    url = sandbox.endpoint + "_sandbox/usage"
    answer = requests.post(url, json={"jobs": 19, "bytes": 5, "rows": 7}, timeout=10)
    assert answer.status_code == 200
    assert (answer.json()["jobs"], answer.json()["rows"]) == (
        {"used": 19, "limit": 20},
        {"used": 7, "limit": 2_000_000},
    )
    assert export(sandbox, "the 20th")["data"]["exportSignals"]
    usage = requests.get(sandbox.endpoint + "_sandbox/stats", timeout=10).json()["usage"]
    assert (usage["jobs"]["used"], usage["bytes"]["used"], usage["exhausted"]) == (20, 5, True)
    (error,) = export(sandbox, "the 21st")["errors"]
    assert error["extensions"]["code"] == "DAILY_LIMIT_EXCEEDED"
    assert requests.post(url, json={"jobs": 0}, timeout=10).json()["jobs"]["used"] == 0
    assert export(sandbox, "after a reset")["data"]["exportSignals"]
    for bad in ({"jobs": -1}, {"files": 1}, [], {"rows": "many"}):
        assert requests.post(url, json=bad, timeout=10).status_code == 400
