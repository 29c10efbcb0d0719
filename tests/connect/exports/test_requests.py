"""Contract of `connect/exports.py` and `connect/export_csv.py`.

- exportSignals requests: the 28 signal type names (11 behavior + 17 marketing, `whatsApp…`),
  the window (ISO 8601 UTC with milliseconds, start ≤ end), notifications, `to.sftp` in exactly one
  of its two forms; every problem at once, the bad value named; the client refuses them before
  sending with the sandbox's own messages (one set of rules).
- The export CSV: documented columns typed by header name (UTC timestamps, booleans, arrays
  parsed from JSON text, `SIGNAL_CONTENT` as text), unknown columns kept as text; a file the
  sandbox exports over real HTTP reads back with exact rows and types.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from acoustic_pipelines.connect.client import ConnectClient
from acoustic_pipelines.connect.errors import InvalidInputError
from acoustic_pipelines.connect.exports.files import (
    ARRAY_COLUMNS,
    BOOLEAN_COLUMNS,
    DOCUMENTED_COLUMNS,
    TIMESTAMP_COLUMNS,
    ExportFileError,
    export_schema,
    read_export_csv,
)
from acoustic_pipelines.connect.exports.requests import (
    BEHAVIOR_SIGNAL_TYPES,
    EXPORT_SIGNAL_TYPES,
    MARKETING_SIGNAL_TYPES,
    check_export_request,
)
from acoustic_pipelines.sandbox.connect.exports import EXPORT_COLUMNS
from acoustic_pipelines.sandbox.connect.server import ConnectSandbox, serve_connect

KEY = "test-api-key"
START, END = "2026-01-01T00:00:00.000Z", "2026-01-01T23:59:59.999Z"


def check(
    *,
    name: str = "job",
    types: Any = ("pageView",),
    start: Any = START,
    end: Any = END,
    notify: Any = None,
    to: Any = None,
) -> dict[str, str]:
    """field → message of every problem of these arguments."""
    window = {"signalTypes": list(types), "timestampStart": start, "timestampEnd": end}
    notifications = [{"channel": "EMAIL", "destination": d} for d in notify] if notify else None
    request, problems = check_export_request(
        job_name=name, export={"signals": window}, notifications=notifications, to=to
    )
    assert (request is None) == bool(problems)
    return {p.path: p.message for p in problems}


def test_the_28_documented_signal_type_names() -> None:
    assert len(BEHAVIOR_SIGNAL_TYPES) == 11 and len(MARKETING_SIGNAL_TYPES) == 17
    assert len(set(EXPORT_SIGNAL_TYPES)) == 28
    assert {"whatsAppClick", "whatsAppOpen", "smsInbound", "richMediaInteraction"} <= set(
        EXPORT_SIGNAL_TYPES
    )
    assert check(types=EXPORT_SIGNAL_TYPES) == {}


@pytest.mark.parametrize("bad", ["whatsappClick", "emailOpened", "Order", "", "smsOpen"])
def test_an_unknown_signal_type_is_refused_by_name(bad: str) -> None:
    (message,) = check(types=["order", bad]).values()
    assert f"{json.dumps(bad)}; expected one of the 28 signal type names" in message
    assert list(check(types=["order", bad])) == ["export.signals.signalTypes[1]"]


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"name": " "}, "jobName"),
        ({"types": []}, "export.signals.signalTypes"),
        ({"start": "2026-01-01T00:00:00Z"}, "export.signals.timestampStart"),
        ({"start": "2026-01-01T00:00:00.000000Z"}, "export.signals.timestampStart"),
        ({"start": "2026-01-01T01:00:00.000+01:00"}, "export.signals.timestampStart"),
        ({"end": "2026-13-01T00:00:00.000Z"}, "export.signals.timestampEnd"),
        ({"end": "2025-12-31T23:59:59.999Z"}, "export.signals.timestampEnd"),
        ({"notify": ["ops@example.com", "ops"]}, "notifications[1].destination"),
    ],
)
def test_argument_rules(arguments: dict[str, Any], field: str) -> None:
    problems = check(**arguments)
    assert list(problems) == [field] and f"`{field}` is " in problems[field]


def test_start_equal_to_end_is_a_valid_window() -> None:
    assert check(start=START, end=START, notify=["ops@example.com"]) == {}


FOLDER = "Export/Signals/Shopping_Funnel"


@pytest.mark.parametrize(
    ("sftp", "field"),
    [
        # the two forms, each accepted
        ({"parentFolder": FOLDER, "namingPrefix": "Aug_"}, None),
        ({"parentFolder": "Export/Signals"}, None),
        ({"parentFolder": "Export/Signals/With space-and_dash/"}, None),
        ({"namingPrefix": "Aug_"}, None),
        ({"path": "Behavior Signals/Order/Demo_Export.csv"}, None),
        ({"path": "export.csv"}, None),
        # never combined
        ({"path": "a.csv", "parentFolder": FOLDER}, "to.sftp"),
        ({"path": "a.csv", "namingPrefix": "x"}, "to.sftp"),
        ({"path": "a.csv", "parentFolder": FOLDER, "namingPrefix": "x"}, "to.sftp"),
        ({}, "to.sftp"),
        ({"path": None, "parentFolder": None}, "to.sftp"),
        # parentFolder under Export/Signals, allowed characters only
        ({"parentFolder": "Exports/Signals"}, "to.sftp.parentFolder"),
        ({"parentFolder": "Export/SignalsX"}, "to.sftp.parentFolder"),
        ({"parentFolder": "export/signals/x"}, "to.sftp.parentFolder"),
        ({"parentFolder": "Export/Signals/Q3.2025"}, "to.sftp.parentFolder"),
        ({"parentFolder": "Export/Signals/a+b"}, "to.sftp.parentFolder"),
        ({"parentFolder": "Export/Signals//x"}, "to.sftp.parentFolder"),
        ({"namingPrefix": "a/b"}, "to.sftp.namingPrefix"),
        # path: relative, ending .csv
        ({"path": "reports/export.txt"}, "to.sftp.path"),
        ({"path": "reports/export.csv.gz"}, "to.sftp.path"),
        ({"path": "reports/.csv"}, "to.sftp.path"),
        ({"path": "/abs/export.csv"}, "to.sftp.path"),
        ({"path": "../escape.csv"}, "to.sftp.path"),
        ({"path": "a//b.csv"}, "to.sftp.path"),
    ],
)
def test_every_sftp_target_form_and_combination(sftp: dict[str, Any], field: str | None) -> None:
    problems = check(to={"sftp": sftp})
    assert list(problems) == ([field] if field else [])


def test_every_problem_at_once_and_the_valid_request_round_trips() -> None:
    assert set(check(name="", types=["x"], start="a", end="b", notify=["n"])) == {
        "jobName",
        "export.signals.signalTypes[0]",
        "export.signals.timestampStart",
        "export.signals.timestampEnd",
        "notifications[0].destination",
    }
    sftp = {"parentFolder": FOLDER + "/", "namingPrefix": "Aug_"}
    window = {"signalTypes": ["order", "order"], "timestampStart": START, "timestampEnd": END}
    request, _ = check_export_request(
        job_name="j",
        export={"signals": window},
        notifications=[{"channel": "EMAIL", "destination": "a@example.com"}],
        to={"sftp": sftp},
    )
    assert request is not None and request.signal_types == ("order",)
    assert request.to_variables() == {
        "jobName": "j",
        "export": {"signals": {**window, "signalTypes": ["order"]}},
        "notifications": [{"channel": "EMAIL", "destination": "a@example.com"}],
        "to": {"sftp": {"parentFolder": FOLDER, "namingPrefix": "Aug_"}},
    }


# -- the client and the sandbox give the same answer -------------------------------------------


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ConnectSandbox]:
    with serve_connect(folder=tmp_path, api_key=KEY, export_delay=60) as running:
        yield running


def client_for(sandbox: ConnectSandbox) -> ConnectClient:
    return ConnectClient(api_key=KEY, endpoint=sandbox.endpoint, max_retries=0)


BAD_CALLS = [
    {"signal_types": ["whatsappClick"]},
    {"start": "2026-01-02T00:00:00.000Z"},
    {"notify": ["nobody"]},
    {"sftp": {"path": "a.csv", "namingPrefix": "x"}},
    {"sftp": {"parentFolder": "Export/Other"}},
    {"sftp": {"path": "a.txt"}},
]


@pytest.mark.parametrize("bad", BAD_CALLS)
def test_the_client_refuses_before_sending_with_the_sandbox_messages(
    sandbox: ConnectSandbox, bad: dict[str, Any]
) -> None:
    arguments: dict[str, Any] = {
        "job_name": "j",
        "signal_types": ["order"],
        "start": START,
        "end": END,
        **bad,
    }
    with client_for(sandbox) as client, pytest.raises(InvalidInputError) as caught:
        client.export_signals(**arguments)
    assert client.stats.calls == 0 and caught.value.code == "BAD_USER_INPUT"
    local = {p.path: p.message for p in caught.value.problems}
    variables = {
        "jobName": "j",
        "export": {
            "signals": {
                "signalTypes": arguments["signal_types"],
                "timestampStart": arguments["start"],
                "timestampEnd": arguments["end"],
            }
        },
    }
    if "notify" in bad:
        variables["notifications"] = [{"channel": "EMAIL", "destination": "nobody"}]
    if "sftp" in bad:
        variables["to"] = {"sftp": bad["sftp"]}
    answer = sandbox.service.execute(
        {
            "query": "mutation($jobName: String!, $export: ExportInput!,"
            " $notifications: [NotificationInput!], $to: ExportTargetInput) {"
            " exportSignals(jobName: $jobName, export: $export, notifications: $notifications,"
            " to: $to) { dataJobId } }",
            "variables": variables,
        }
    )[1]
    remote = {e["extensions"]["field"]: e["message"] for e in answer["errors"]}
    assert local == remote and local


# -- the export CSV ----------------------------------------------------------------------------


def test_the_schema_types_documented_columns_and_keeps_others_as_text() -> None:
    schema = export_schema([*DOCUMENTED_COLUMNS, "LOYALTY_TIER", "PHONE_NUMBER"])
    for name in TIMESTAMP_COLUMNS:
        assert schema.field(name).type == pa.timestamp("ms", tz="UTC")
    for name in BOOLEAN_COLUMNS:
        assert schema.field(name).type == pa.bool_()
    for name in ARRAY_COLUMNS:
        assert schema.field(name).type == pa.list_(pa.string())
    assert schema.field("SIGNAL_CONTENT").type == pa.string()
    assert schema.field("LOYALTY_TIER").type == schema.field("PHONE_NUMBER").type == pa.string()
    assert len(ARRAY_COLUMNS) == 10 and "WHATSAPP_TAGS" in ARRAY_COLUMNS


def gz(text: str) -> io.BytesIO:
    return io.BytesIO(gzip.compress(text.encode("utf-8")))


def test_columns_are_read_by_header_name_in_any_order() -> None:
    text = (
        "\ufeffPHONE_NUMBER,TAGS,BOT_DETECTED,SIGNAL_TIMESTAMP,SIGNAL_CONTENT,COMPLETED_DATE\n"
        '0123,"[""a"",""b, c""]",true,2025-08-31T08:29:30.001Z,"{""x"": 1}",2025-08-31T10:00:00\n'
        ",,FALSE,,,2025-09-01T10:00:00.000+02:00\n"
    )
    (batch,) = list(read_export_csv(gz(text)))
    rows = batch.to_pylist()
    assert rows[0]["PHONE_NUMBER"] == "0123" and rows[0]["TAGS"] == ["a", "b, c"]
    assert rows[0]["BOT_DETECTED"] is True and rows[1]["BOT_DETECTED"] is False
    assert rows[0]["SIGNAL_TIMESTAMP"] == datetime(2025, 8, 31, 8, 29, 30, 1000, tzinfo=UTC)
    assert rows[0]["SIGNAL_CONTENT"] == '{"x": 1}'
    assert rows[0]["COMPLETED_DATE"] == datetime(2025, 8, 31, 10, tzinfo=UTC)
    assert rows[1]["COMPLETED_DATE"] == datetime(2025, 9, 1, 8, tzinfo=UTC)
    assert rows[1]["PHONE_NUMBER"] is rows[1]["TAGS"] is rows[1]["SIGNAL_TIMESTAMP"] is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no header row"),
        ("A,A\n1,2\n", "more than once"),
        ("TAGS\nnot json\n", "row 2: TAGS is 'not json'; expected a JSON array"),
        ("SIGNAL_TIMESTAMP\nyesterday\n", "yesterday"),
        ("IS_MMS\nmaybe\n", "maybe"),
    ],
)
def test_a_file_that_does_not_fit_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(ExportFileError, match=fragment):
        list(read_export_csv(gz(text)))


def test_a_corrupt_gzip_is_refused() -> None:
    data = gzip.compress(b"A\n" + b"x\n" * 1000)
    with pytest.raises(ExportFileError):
        list(read_export_csv(io.BytesIO(data[: len(data) // 2])))


def test_batches_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("SIGNAL_ID,NAME\n")
        handle.writelines(f"id-{i},name {i}\n" for i in range(50_000))
    batches = list(read_export_csv(path, block_size=64 << 10))
    assert len(batches) > 5 and sum(b.num_rows for b in batches) == 50_000
    assert batches[-1].column("SIGNAL_ID")[-1].as_py() == "id-49999"


def page_view(timestamp: str, number: int) -> dict[str, Any]:
    return {
        "appKey": "app-1",
        "identifiableAttributes": {"email": f"u{number}@example.com"},
        "sessionId": f"s-{number}",
        "signalContent": {
            "signalType": "pageView",
            "category": "Behavior",
            "name": "view",
            "url": f"https://e.com/{number}",
            "signalTimestamp": timestamp,
        },
    }


def test_a_file_the_sandbox_exports_reads_back_typed(sandbox: ConnectSandbox) -> None:
    inside = [page_view(f"2026-01-01T{h:02d}:00:00.000Z", h) for h in range(24)]
    outside = [page_view("2026-01-02T00:00:00.000Z", 99)]
    with client_for(sandbox) as client:
        client.create_signals(inside + outside)
        job = client.export_signals(
            job_name="day one", signal_types=["pageView", "emailOpen"], start=START, end=END
        )
        empty = client.export_signals(
            job_name="no rows", signal_types=["smsSend"], start=START, end=END
        )
    finished = {j.job_id: j for j in sandbox.run_export_jobs()}
    batches = list(read_export_csv(sandbox.subscription_folder / job.path))
    table = pa.Table.from_batches(batches)
    assert table.num_rows == len(inside) == finished[job.data_job_id].row_count
    assert table.schema == export_schema(EXPORT_COLUMNS)
    assert table.column_names == list(EXPORT_COLUMNS)
    rows = table.to_pylist()
    assert [r["SIGNAL_TIMESTAMP"] for r in rows] == [
        datetime(2026, 1, 1, h, tzinfo=UTC) for h in range(24)
    ]
    assert json.loads(rows[3]["SIGNAL_CONTENT"])["url"] == "https://e.com/3"
    assert rows[3]["EMAIL"] == "u3@example.com" and rows[3]["CONTACT_SOURCE"] == "sandbox"
    assert rows[0]["RECEIVED_TIMESTAMP"].tzinfo is not None
    assert rows[0]["TAGS"] is None and rows[0]["BOT_DETECTED"] is None
    (nothing,) = read_export_csv(sandbox.subscription_folder / empty.path)
    assert nothing.num_rows == 0 and nothing.schema == export_schema(EXPORT_COLUMNS)
