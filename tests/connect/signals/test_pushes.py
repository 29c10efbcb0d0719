"""Contract of `connect/signal_pushes.py` and its ledger, over real HTTP against the Connect sandbox.

- Every valid signal the rules build is stored by Connect exactly once: the sandbox's stored
  signals, read back from its database by the (message_id, rule) each test signal names, equal
  the signals built, with no duplicate; the report's counts add up.
- A re-run sends nothing again; a push stopped by an error (injected 503, wrong API key) or
  killed (SIGKILL of a process running push_day) and then re-run stores each signal once.
- A batch left `sending` or `unknown` is not sent again (at most once) and is reported as
  `unknown_outcome`; `resend_unknown` sends those signals again on their own (at-least-once for
  them), never with signals known sent; `force_resend` sends everything again.
- Two pushes of one day at once (two processes, no pool) store each signal exactly once: the
  second waits for the first's lease, then finds everything sent.
- dry_run sends nothing and writes nothing; rejects land in `connect/rejected_signals` with the
  rule, message id, type, reason and every problem; a batch Connect refuses is split: the
  signals it names are rejected, the others sent.
- The ledger is one JSON object per batch plus `ledger.parquet` and `_SUCCESS`, on a local
  folder and on S3; it holds neither the API key nor the application key.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from acoustic_pipelines.config.loading import SignalsConfig
from acoustic_pipelines.connect.client import ConnectClient
from acoustic_pipelines.connect.errors import AuthenticationError, UnavailableError
from acoustic_pipelines.connect.signals.ledger import (
    BATCHES_FOLDER,
    SENDING,
    SENT,
    SIGNAL_PUSHES,
    UNKNOWN,
    BatchEntry,
    PushLedger,
)
from acoustic_pipelines.connect.signals.pushes import PushReport, SignalPushError, push_day
from acoustic_pipelines.connect.signals.rejected import REJECTED_SIGNALS
from acoustic_pipelines.connect.signals.rules import SignalSettings
from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.sandbox.connect.server import serve_connect
from acoustic_pipelines.segment.raw_events import RAW_EVENTS, RAW_EVENTS_SCHEMA
from acoustic_pipelines.storage import open_location

DAY = date(2026, 11, 20)
API_KEY = "ck-SECRET-5e1d9a7c3b"  # distinctive, so any leak is found by substring
APP_KEY = "app-SECRET-0c4f2b8e"
EVENTS = 300

_IDENTITY = {"email": {"@path": "$.context.traits.email"}}
# Each signal's name starts with its event's messageId and ends with its rule, so the sandbox's
# stored signals say which (message_id, rule) they came from.
RULES: dict[str, Any] = {
    "tier": "premium",
    "default_currency": "USD",
    "rules": [
        {
            "name": "Page Viewed",
            "trigger": 'type = "page"',
            "signal_type": "pageView",
            "identity": _IDENTITY,
            "content": {
                "name": {"@template": "{{messageId}} Page Viewed"},
                "url": {"@path": "$.context.page.url"},
            },
        },
        {
            "name": "Product Added",
            "trigger": 'type = "track" and event = "Product Added"',
            "signal_type": "addToCart",
            "identity": _IDENTITY,
            "content": {
                "name": {"@template": "{{messageId}} Product Added"},
                "effect": "positive",
                "productId": {"@path": "$.properties.product_id"},
                "productName": {"@path": "$.properties.name"},
                "itemQuantity": {"@path": "$.properties.quantity"},
                "unitPrice": {"@path": "$.properties.price"},
            },
        },
        {
            "name": "Products Searched",
            "trigger": 'type = "track" and event = "Products Searched"',
            "signal_type": "onSiteSearch",
            "identity": _IDENTITY,
            "content": {
                "name": {"@template": "{{messageId}} Products Searched"},
                "effect": "positive",
                "searchTerm": {"@path": "$.properties.query"},
                "numberOfResults": {"@path": "$.properties.results"},
            },
        },
    ],
}


def make_events(count: int) -> tuple[list[dict[str, Any]], set[tuple[str, str]], dict]:
    """Events, the (message_id, rule) keys that give a valid signal, and the expected rejects.

    Cycle of 10: pages (one without email, one without email or url), products added (one
    with a bad email and no price), searches (one without a result count), and an identify
    call no rule takes.
    """
    events, valid, rejects = [], set(), {}
    for i in range(count):
        mid, kind = f"m-{i:05d}", i % 10
        context: dict[str, Any] = {"traits": {"email": f"user{i}@example.com"}}
        if kind in (0, 1, 2):
            event = {"type": "page", "context": {**context, "page": {"url": f"https://x/{i}"}}}
            if kind == 1:
                del event["context"]["traits"]
                rejects[(mid, "Page Viewed")] = ["identifiableAttributes"]
            elif kind == 2 and i % 20 == 2:
                event["context"] = {}
                rejects[(mid, "Page Viewed")] = ["identifiableAttributes", "signalContent.url"]
            rule = "Page Viewed"
        elif kind in (3, 4, 5, 6):
            properties = {"product_id": f"p-{i}", "name": "Socks", "quantity": 2, "price": 9.5}
            if kind == 6:
                context = {"traits": {"email": "not-an-email"}}
                del properties["price"]
                rejects[(mid, "Product Added")] = [
                    "identifiableAttributes.email",
                    "signalContent.unitPrice",
                ]
            event = {"type": "track", "event": "Product Added", "properties": properties}
            event["context"] = context
            rule = "Product Added"
        elif kind in (7, 8):
            properties = {"query": "socks", **({"results": 3} if kind == 7 else {})}
            event = {"type": "track", "event": "Products Searched", "properties": properties}
            event["context"] = context
            if kind == 8:
                rejects[(mid, "Products Searched")] = ["signalContent.numberOfResults"]
            rule = "Products Searched"
        else:
            event, rule = {"type": "identify", "userId": f"u-{i}", "context": context}, None
        event["messageId"] = mid
        events.append(event)
        if rule and (mid, rule) not in rejects:
            valid.add((mid, rule))
    return events, valid, rejects


def write_raw_events(lake: Lake, events: list[dict[str, Any]]) -> None:
    """Commit `events` as the day's `segment/raw_events` partition (only the columns read)."""
    columns: dict[str, list[Any]] = {name: [None] * len(events) for name in RAW_EVENTS_SCHEMA.names}
    columns["message_id"] = [e["messageId"] for e in events]
    columns["type"] = [e["type"] for e in events]
    columns["payload"] = [json.dumps(e) for e in events]
    with lake.stage(RAW_EVENTS, DAY) as staged:
        table = pa.Table.from_pydict(columns, schema=RAW_EVENTS_SCHEMA)
        pq.write_table(table, staged.file("part-00000.parquet"), filesystem=lake.fs)
        lake.commit(staged, {"rows": len(events)})


@pytest.fixture(scope="module")
def day_events() -> tuple[list[dict[str, Any]], set[tuple[str, str]], dict]:
    return make_events(EVENTS)


@pytest.fixture
def lake(tmp_path: Path, day_events: tuple) -> Lake:
    store = Lake(open_location(str(tmp_path / "lake")))
    write_raw_events(store, day_events[0])
    return store


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    with serve_connect(folder=tmp_path / "sandbox", api_key=API_KEY, tier="ultimate") as running:
        yield running


@pytest.fixture(scope="module")
def signals_config() -> SignalsConfig:
    return SignalsConfig.model_validate(RULES)


def factory(sandbox: Any, *, api_key: str = API_KEY, max_retries: int = 0) -> Any:
    return lambda: ConnectClient(
        api_key=api_key,
        endpoint=sandbox.endpoint,
        tier="premium",
        max_retries=max_retries,
        backoff_base=0.01,
    )


def push(
    lake: Lake,
    sandbox: Any,
    config: SignalsConfig,
    *,
    max_retries: int = 0,
    api_key: str = API_KEY,
    **options: Any,
) -> PushReport:
    options.setdefault("batch_size", 25)
    return push_day(
        lake,
        DAY,
        rules=config.compiled_rules,
        settings=SignalSettings(app_key=APP_KEY, tier="premium", default_currency="USD"),
        client_factory=factory(sandbox, api_key=api_key, max_retries=max_retries),
        **options,
    )


def stored_keys(sandbox: Any) -> Counter[tuple[str, str]]:
    """(message_id, rule) of every signal the sandbox stored, read from its database."""
    with sqlite3.connect(f"file:{sandbox.folder / 'connect.sqlite3'}?mode=ro", uri=True) as db:
        names = [json.loads(c)["name"] for (c,) in db.execute("SELECT content FROM signals")]
    return Counter(tuple(name.split(" ", 1)) for name in names)  # type: ignore[misc]


def ledger_entries(lake: Lake) -> list[BatchEntry]:
    return list(PushLedger(lake, DAY).entries())


def ledger_table(lake: Lake) -> pa.Table:
    return lake.read_partition(SIGNAL_PUSHES, DAY).to_table()


def lake_text(root: Path) -> str:
    """Every byte of the ledger and rejects folders, as text."""
    parts = []
    for folder in (SIGNAL_PUSHES, REJECTED_SIGNALS):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_every_signal_is_stored_once_and_the_report_adds_up(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple, tmp_path: Path
) -> None:
    _, valid, rejects = day_events
    report = push(lake, sandbox, signals_config, concurrency=4)

    stored = stored_keys(sandbox)
    assert set(stored) == valid and max(stored.values()) == 1
    assert sandbox.stats()["signals"]["stored"] == len(valid) == report.signals_sent
    assert report.accounting_problems() == []
    assert report.events_read == EVENTS and report.signals_built == len(valid)
    assert report.built_by_type == dict(
        sorted(Counter(_type_of(rule) for _, rule in valid).items())
    )
    batches = -(-len(valid) // 25)
    assert (report.batches_sent, report.calls, report.retries) == (batches, batches, 0)
    assert report.rejected == len(rejects) and report.unknown_outcome == 0
    assert report.signals_per_second > 0
    # The ledger: one `sent` entry per batch, and the consolidated table with every signal id.
    entries = ledger_entries(lake)
    assert len(entries) == batches and {e.status for e in entries} == {SENT}
    assert all(len(e.keys) <= 25 for e in entries)
    table = ledger_table(lake)
    keys = zip(table["message_id"].to_pylist(), table["rule"].to_pylist(), strict=True)
    assert set(keys) == valid
    assert table.num_rows == len(valid) and set(table["status"].to_pylist()) == {SENT}
    with sqlite3.connect(sandbox.folder / "connect.sqlite3") as db:
        ids = {i for (i,) in db.execute("SELECT signal_id FROM signals")}
    assert set(table["signal_id"].to_pylist()) == ids
    assert lake.summary(SIGNAL_PUSHES, DAY)["signals_sent"] == len(valid)
    assert API_KEY not in lake_text(tmp_path / "lake")
    assert APP_KEY not in lake_text(tmp_path / "lake")


def _type_of(rule: str) -> str:
    return {"Page Viewed": "pageView", "Product Added": "addToCart"}.get(rule, "onSiteSearch")


def test_a_rerun_sends_nothing_again(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple
) -> None:
    first = push(lake, sandbox, signals_config)
    again = push(lake, sandbox, signals_config)
    assert again.signals_skipped == first.signals_sent == first.signals_built
    assert (again.signals_sent, again.calls, again.batches_sent) == (0, 0, 0)
    assert again.batches_skipped == first.batches_sent
    assert sandbox.stats()["signals"]["stored"] == first.signals_sent
    assert again.accounting_problems() == []


def test_retries_and_calls_come_from_the_clients(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple
) -> None:
    sandbox.inject("429", count=3, retry_after=0)
    report = push(lake, sandbox, signals_config, max_retries=5, concurrency=2)
    assert report.retries == 3 and report.calls == report.batches_sent + 3
    assert set(stored_keys(sandbox)) == day_events[1]
    assert max(stored_keys(sandbox).values()) == 1


def test_a_push_stopped_by_an_error_resumes_without_sending_twice(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple
) -> None:
    valid = day_events[1]
    sandbox.inject("503", share=0.25)  # calls 4, 8, …: with no retry, batch 4 fails
    with pytest.raises(SignalPushError) as stopped:
        push(lake, sandbox, signals_config, concurrency=1)
    assert isinstance(stopped.value.error, UnavailableError) and stopped.value.retryable
    partial = stopped.value.report
    assert (partial.batches_sent, partial.batches_failed, partial.signals_sent) == (3, 1, 75)
    assert "a re-run resumes" in str(stopped.value) and API_KEY not in str(stopped.value)
    assert not lake.has_partition_marker(lake.partition_path(SIGNAL_PUSHES, DAY))
    assert sum(stored_keys(sandbox).values()) == 75

    sandbox.reset_faults()
    resumed = push(lake, sandbox, signals_config, concurrency=3)
    assert resumed.signals_skipped == 75 and resumed.signals_sent == len(valid) - 75
    stored = stored_keys(sandbox)
    assert set(stored) == valid and max(stored.values()) == 1
    statuses = Counter(e.status for e in ledger_entries(lake))
    assert statuses == {SENT: resumed.batches_sent + 3, "failed": 1}


def test_a_wrong_api_key_stops_at_once_and_stays_out_of_the_ledger(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple, tmp_path: Path
) -> None:
    wrong = "ck-WRONG-7d2e91"
    with pytest.raises(SignalPushError) as stopped:
        push(lake, sandbox, signals_config, api_key=wrong, concurrency=1)
    assert isinstance(stopped.value.error, AuthenticationError) and not stopped.value.retryable
    assert stopped.value.report.signals_sent == 0
    [entry] = ledger_entries(lake)
    assert entry.status == "failed" and entry.error and entry.error["http_status"] == 401
    text = lake_text(tmp_path / "lake")
    assert wrong not in text and APP_KEY not in text

    report = push(lake, sandbox, signals_config)  # failed keys were not stored: sent now
    assert report.signals_sent == len(day_events[1]) and report.unknown_outcome == 0


KILLED_PUSH = """
import json, sys
from datetime import date
from acoustic_pipelines.config.loading import SignalsConfig
from acoustic_pipelines.connect.client import ConnectClient
from acoustic_pipelines.connect.signals.pushes import push_day
from acoustic_pipelines.connect.signals.rules import SignalSettings
from acoustic_pipelines.lake import Lake
from acoustic_pipelines.storage import open_location

lake_dir, endpoint, rules_file, api_key, app_key = sys.argv[1:6]
rules = SignalsConfig.model_validate(json.load(open(rules_file))).compiled_rules
push_day(
    Lake(open_location(lake_dir)),
    date(2026, 11, 20),
    rules=rules,
    settings=SignalSettings(app_key=app_key, tier="premium", default_currency="USD"),
    client_factory=lambda: ConnectClient(api_key=api_key, endpoint=endpoint, tier="premium"),
    batch_size=10,
    concurrency=2,
)
"""


def test_a_killed_push_then_a_rerun_stores_each_signal_at_most_once(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple, tmp_path: Path
) -> None:
    valid = day_events[1]
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(RULES))
    sandbox.inject("slow", delay=0.3)  # every call: the kill lands mid-call
    args = [str(tmp_path / "lake"), sandbox.endpoint, str(rules_file), API_KEY, APP_KEY]
    process = subprocess.Popen([sys.executable, "-c", KILLED_PUSH, *args])
    try:
        _wait_for(lambda: _sent_and_sending(ledger_entries(lake)), process)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    time.sleep(0.6)  # the sandbox finishes the calls the killed process was waiting for
    sandbox.reset_faults()
    entries = ledger_entries(lake)
    left_sending = {k for e in entries if e.status == SENDING for k in e.keys}
    killed_sent = {k for e in entries if e.status == SENT for k in e.keys}
    assert killed_sent and left_sending and len(killed_sent) < len(valid)

    report = push(lake, sandbox, signals_config, concurrency=4)
    assert report.unknown_outcome == len(left_sending)
    assert report.signals_skipped == len(killed_sent)
    assert report.signals_sent == len(valid) - len(killed_sent) - len(left_sending)
    stored = stored_keys(sandbox)
    assert max(stored.values()) == 1  # never twice
    assert valid - left_sending <= set(stored) <= valid  # the rest once; unknown ones at most once
    assert report.accounting_problems() == []
    table = ledger_table(lake)
    assert Counter(table["status"].to_pylist())[SENDING] == len(left_sending)


def _sent_and_sending(entries: list[BatchEntry]) -> bool:
    """At least 3 batches sent and one in its call: the moment to kill."""
    statuses = Counter(e.status for e in entries)
    return statuses[SENT] >= 3 and statuses[SENDING] >= 1


def _wait_for(condition: Any, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the push ended before it could be killed"
        assert time.monotonic() < deadline, "the push sent nothing in time"
        time.sleep(0.02)


def test_a_batch_left_sending_is_not_sent_again_unless_forced(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple
) -> None:
    valid = sorted(day_events[1])
    orphaned = valid[:7]
    earlier = PushLedger(lake, DAY, run="20261120T000000000000Z-dead00")
    earlier.start_batch(1, orphaned, [_type_of(rule) for _, rule in orphaned])

    report = push(lake, sandbox, signals_config)
    assert report.unknown_outcome == 7 and report.batches_skipped == 1
    assert report.signals_sent == len(valid) - 7
    assert set(stored_keys(sandbox)) == set(valid) - set(orphaned)
    assert lake.summary(SIGNAL_PUSHES, DAY)["unknown_outcome"] == 7
    assert push(lake, sandbox, signals_config).unknown_outcome == 7  # still not sent

    forced = push(lake, sandbox, signals_config, force_resend=True)
    assert forced.signals_sent == len(valid) and forced.force_resend
    assert (forced.signals_skipped, forced.unknown_outcome, forced.batches_skipped) == (0, 0, 0)
    stored = stored_keys(sandbox)
    assert set(stored) == set(valid) and sum(stored.values()) == 2 * len(valid) - 7
    after = push(lake, sandbox, signals_config)  # sent now: skipped, no longer unknown
    assert (after.signals_skipped, after.unknown_outcome) == (len(valid), 0)


def test_a_dropped_call_is_of_unknown_outcome_and_not_sent_again(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple
) -> None:
    sandbox.inject("drop", count=1)
    with pytest.raises(SignalPushError) as stopped:
        push(lake, sandbox, signals_config, concurrency=1)
    assert stopped.value.report.unknown_outcome == 25
    assert "not sent again unless a run sets resend_unknown" in str(stopped.value)
    [entry] = ledger_entries(lake)
    assert entry.status == UNKNOWN and entry.error and entry.error["http_status"] is None

    report = push(lake, sandbox, signals_config)
    assert report.unknown_outcome == 25
    assert set(stored_keys(sandbox)) == day_events[1] - set(entry.keys)


def test_a_dry_run_sends_and_writes_nothing(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple, tmp_path: Path
) -> None:
    report = push(lake, sandbox, signals_config, dry_run=True)
    assert report.dry_run and report.signals_built == len(day_events[1])
    assert report.signals_not_sent == report.signals_built and report.signals_sent == 0
    assert report.rejected == len(day_events[2]) and report.calls == 0
    assert sandbox.stats()["signals"]["stored"] == 0
    assert sandbox.stats()["calls"]["served"] == 0
    assert not (tmp_path / "lake" / "connect").exists()
    assert report.ledger_uri is None and report.rejected_uri is None
    assert (
        push_day(
            lake,
            DAY,
            rules=signals_config.compiled_rules,
            settings=SignalSettings(app_key=APP_KEY, tier="premium", default_currency="USD"),
            client_factory=None,
            dry_run=True,
        ).built_by_type
        == report.built_by_type
    )


def test_rejects_carry_rule_message_id_type_reason_and_every_problem(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple
) -> None:
    expected = day_events[2]
    report = push(lake, sandbox, signals_config)
    rows = lake.read_partition(REJECTED_SIGNALS, DAY).to_table().to_pylist()
    assert len(rows) == len(expected) == report.rejected
    for row in rows:
        paths = expected[(row["message_id"], row["rule"])]
        assert row["signal_type"] == _type_of(row["rule"])
        assert row["reason"] == paths[0]
        assert [p.split(": ", 1)[0].removeprefix("signal.") for p in row["problems"]] == paths
    reasons = Counter(paths[0] for paths in expected.values())
    assert report.rejected_by_reason == dict(reasons.most_common())
    assert report.rejected_by_rule == dict(sorted(Counter(r for _, r in expected).items()))


def test_a_batch_connect_refuses_is_split_into_rejects_and_a_resend(
    lake: Lake, signals_config: SignalsConfig, day_events: tuple, tmp_path: Path
) -> None:
    valid = day_events[1]
    pages = {k for k in valid if k[1] == "Page Viewed"}
    # A Pro subscription refuses pageView and onSiteSearch (FORBIDDEN); the client and the
    # rules believe the tier is Premium, so only Connect can refuse them.
    with serve_connect(folder=tmp_path / "pro", api_key=API_KEY, tier="pro") as pro:
        report = push(lake, pro, signals_config, concurrency=2)
        stored = stored_keys(pro)
    refused = {k for k in valid if k[1] != "Product Added"}
    assert set(stored) == valid - refused and max(stored.values()) == 1
    assert report.signals_refused == len(refused) and pages <= refused
    assert report.rejected_by_reason["FORBIDDEN"] == len(refused)
    assert report.accounting_problems() == []
    rows = lake.read_partition(REJECTED_SIGNALS, DAY).to_table().to_pylist()
    forbidden = [r for r in rows if r["reason"] == "FORBIDDEN"]
    assert {(r["message_id"], r["rule"]) for r in forbidden} == refused
    assert all(r["problems"] and "signalType" in r["problems"][0] for r in forbidden)


def test_the_ledger_on_s3_is_one_object_per_batch(
    s3_endpoint: str, s3_bucket: str, sandbox: Any, signals_config: SignalsConfig, day_events: tuple
) -> None:
    lake = Lake(open_location(f"s3://{s3_bucket}/lake", s3_endpoint_url=s3_endpoint))
    write_raw_events(lake, day_events[0])
    report = push(lake, sandbox, signals_config, batch_size=100)
    assert set(stored_keys(sandbox)) == day_events[1]
    folder = f"{lake.partition_path(SIGNAL_PUSHES, DAY)}/{BATCHES_FOLDER}"
    objects = lake.fs.get_file_info(pafs.FileSelector(folder))
    assert len([o for o in objects if o.base_name.endswith(".json")]) == report.batches_sent
    assert ledger_table(lake).num_rows == report.signals_sent
    again = push(lake, sandbox, signals_config, batch_size=100)
    assert again.signals_skipped == report.signals_sent and again.calls == 0


def test_a_missing_raw_partition_and_bad_options_are_refused(
    tmp_path: Path, sandbox: Any, signals_config: SignalsConfig
) -> None:
    empty = Lake(open_location(str(tmp_path / "empty")))
    with pytest.raises(PartitionNotFound, match="segment/raw_events"):
        push(empty, sandbox, signals_config)
    with pytest.raises(ValueError, match="batch_size = 501"):
        push(empty, sandbox, signals_config, batch_size=501)
    with pytest.raises(ValueError, match="client_factory is None"):
        push_day(
            empty,
            DAY,
            rules=signals_config.compiled_rules,
            settings=SignalSettings(app_key=APP_KEY, tier="premium"),
            client_factory=None,
        )


def test_resend_unknown_delivers_lost_answers_and_resends_nothing_delivered(
    lake: Lake, sandbox: Any, signals_config: SignalsConfig, day_events: tuple
) -> None:
    valid = day_events[1]
    sandbox.inject("drop", count=2)  # the first two calls: no answer, nothing stored
    with pytest.raises(SignalPushError) as stopped:
        push(lake, sandbox, signals_config, concurrency=2)
    lost = {k for e in ledger_entries(lake) if e.status == UNKNOWN for k in e.keys}
    assert len(lost) == 50 and stopped.value.report.unknown_outcome == 50

    resumed = push(lake, sandbox, signals_config, concurrency=3)  # the rest, not the lost ones
    assert resumed.unknown_outcome == 50 and resumed.resent_unknown == 0
    assert set(stored_keys(sandbox)) == valid - lost
    calls_before = sandbox.stats()["calls"]["served"]

    recovered = push(lake, sandbox, signals_config, concurrency=3, resend_unknown=True)
    assert (recovered.resent_unknown, recovered.signals_sent) == (50, 50)
    assert recovered.signals_skipped == len(valid) - 50 and recovered.unknown_outcome == 0
    assert recovered.accounting_problems() == []
    assert sandbox.stats()["calls"]["served"] - calls_before == 2  # only the two lost batches
    stored = stored_keys(sandbox)
    assert set(stored) == valid and max(stored.values()) == 1  # every signal, none twice
    resent = [e for e in ledger_entries(lake) if e.resend]
    assert {k for e in resent for k in e.keys} == lost and {e.status for e in resent} == {SENT}
    assert lake.summary(SIGNAL_PUSHES, DAY)["resent_unknown"] == 50
    after = push(lake, sandbox, signals_config, resend_unknown=True)  # nothing left to resend
    assert (after.signals_sent, after.signals_skipped, after.calls) == (0, len(valid), 0)


CONCURRENT_PUSH = KILLED_PUSH.replace(
    "lake_dir, endpoint, rules_file, api_key, app_key = sys.argv[1:6]",
    "lake_dir, endpoint, rules_file, api_key, app_key, go = sys.argv[1:7]\n"
    "import os, time\n"
    "while not os.path.exists(go):\n"
    "    time.sleep(0.002)",
).replace("push_day(", "report = push_day(", 1) + (
    "print(report.signals_sent, report.signals_skipped, flush=True)\n"
)


def test_two_concurrent_pushes_of_one_day_store_each_signal_once(
    lake: Lake, sandbox: Any, day_events: tuple, tmp_path: Path
) -> None:
    valid = day_events[1]
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps(RULES))
    sandbox.inject("slow", delay=0.1)  # every call: the two runs overlap
    go = tmp_path / "go"
    args = [str(tmp_path / "lake"), sandbox.endpoint, str(rules_file), API_KEY, APP_KEY, str(go)]
    runs = [
        subprocess.Popen([sys.executable, "-c", CONCURRENT_PUSH, *args], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    time.sleep(1.0)  # both have imported everything and wait for `go`
    go.touch()
    try:
        outputs = sorted(p.communicate(timeout=300)[0].decode().split() for p in runs)
    finally:
        for process in runs:
            process.kill()
            process.wait()
    assert [p.returncode for p in runs] == [0, 0]
    stored = stored_keys(sandbox)
    assert set(stored) == valid and max(stored.values()) == 1  # exactly once
    assert outputs == [["0", str(len(valid))], [str(len(valid)), "0"]]  # one sent, one skipped
