"""createSignals on the Connect sandbox over HTTP: all-or-nothing validation through
`connect.signals.validate_signals` (500 per call, content per type, identity, tier → FORBIDDEN),
and storage in SQLite with one new id per signal, in order, test signals flagged, no duplicates."""

from __future__ import annotations

import copy
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from acoustic_pipelines.sandbox.connect.server import ConnectSandbox, serve_connect
from tests.seed_signals import SEED_ADD_TO_CART, SEED_PAGE_VIEW

KEY = "test-api-key"
CREATE = "mutation($signals: [SignalInput!]!) { createSignals(signals: $signals) { signalIds } }"
ADD_TO_CART = SEED_ADD_TO_CART
PAGE_VIEW = SEED_PAGE_VIEW


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ConnectSandbox]:
    with serve_connect(folder=tmp_path, api_key=KEY) as running:
        yield running


def create(sandbox: ConnectSandbox, signals: list[Any]) -> dict[str, Any]:
    body = {"query": CREATE, "variables": {"signals": signals}}
    response = requests.post(sandbox.endpoint, json=body, headers={"x-api-key": KEY}, timeout=30)
    assert response.status_code == 200
    return response.json()


def stored(sandbox: ConnectSandbox) -> list[tuple[str, str, int]]:
    with sqlite3.connect(sandbox.store.path) as db:
        return db.execute(
            "SELECT signal_id, signal_type, test FROM signals ORDER BY seq"
        ).fetchall()


def with_change(signal: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `signal` with the dotted `path` set to `value` (`...` deletes the key)."""
    changed = copy.deepcopy(signal)
    *parents, last = path.split(".")
    target = changed
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return changed


def test_the_seed_mutation_with_inline_objects_is_accepted(sandbox: ConnectSandbox) -> None:
    document = """
    mutation {
      createSignals(signals: [
        { appKey: "00000000000xxx000000000xxxx"
          identifiableAttributes: { contactKey: "AAUN-132417508" }
          sessionId: "OOII97671461464332a1111"
          signalContent: { signalType: "addToCart", name: "Add to cart", category: "Behavior",
            currency: "USD", productId: "AC-PNT-WHT-SM", productName: "Paint", effect: "positive",
            itemQuantity: 2, unitPrice: 39.99, discount: 7,
            productUrls: ["https://www.example.com/a", "https://www.example.com/b"] } }
        { appKey: "00000000000xxx000000000xxxx"
          identifiableAttributes: { email: "ann@example.com" }
          signalContent: { signalType: "pageView", name: "Sample product view",
            category: "Behavior", effect: "positive", url: "https://example.com/shoes",
            pageCategory: "Shoes" } }
      ]) { signalIds }
    }"""
    response = requests.post(
        sandbox.endpoint, json={"query": document}, headers={"x-api-key": KEY}, timeout=10
    )
    ids = response.json()["data"]["createSignals"]["signalIds"]
    assert [uuid.UUID(i).version for i in ids] == [4, 4]
    assert sandbox.stats()["signals"]["by_type"] == {"addToCart": 1, "pageView": 1}


def test_ids_come_back_in_input_order_and_match_what_is_stored(sandbox: ConnectSandbox) -> None:
    signals = [ADD_TO_CART, PAGE_VIEW, ADD_TO_CART]
    ids = create(sandbox, signals)["data"]["createSignals"]["signalIds"]
    assert len(set(ids)) == 3
    assert stored(sandbox) == [
        (ids[0], "addToCart", 0),
        (ids[1], "pageView", 0),
        (ids[2], "addToCart", 0),
    ]


def test_one_bad_signal_refuses_the_whole_call_naming_each_problem(
    sandbox: ConnectSandbox,
) -> None:
    bad = with_change(PAGE_VIEW, "identifiableAttributes.email", "not-an-email")
    bad = with_change(bad, "signalContent.effect", "neutral")
    answer = create(sandbox, [ADD_TO_CART, bad])
    assert answer["data"] == {"createSignals": None}
    fields = {e["extensions"]["field"]: e for e in answer["errors"]}
    assert set(fields) == {
        "signals[1].identifiableAttributes.email",
        "signals[1].signalContent.effect",
    }
    for error in answer["errors"]:
        assert error["path"] == ["createSignals"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert '"neutral"' in fields["signals[1].signalContent.effect"]["message"]
    assert stored(sandbox) == []


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("appKey", "  ", "signals[0].appKey"),
        ("identifiableAttributes", {}, "signals[0].identifiableAttributes"),
        (
            "identifiableAttributes",
            {"email": "a@example.com", "sms": "+14155550123"},
            "signals[0].identifiableAttributes",
        ),
        ("identifiableAttributes", {"sms": "555-0123"}, "signals[0].identifiableAttributes.sms"),
        ("signalContent", "pageView", "signals[0].signalContent"),
        ("signalContent.signalType", "productPurchase", "signals[0].signalContent.signalType"),
        ("signalContent.signalType", ..., "signals[0].signalContent.signalType"),
        ("signalContent.category", "Marketing", "signals[0].signalContent.category"),
        ("signalContent.name", "n" * 257, "signals[0].signalContent.name"),
        ("signalContent.url", ..., "signals[0].signalContent.url"),
        ("signalContent.url", 5, "signals[0].signalContent.url"),
        ("signalContent.signalTimestamp", "yesterday", "signals[0].signalContent.signalTimestamp"),
    ],
)
def test_each_content_rule_is_enforced(
    sandbox: ConnectSandbox, path: str, value: Any, field: str
) -> None:
    answer = create(sandbox, [with_change(PAGE_VIEW, path, value)])
    assert answer["data"] == {"createSignals": None}
    assert field in {e["extensions"]["field"] for e in answer["errors"]}
    assert {e["extensions"]["code"] for e in answer["errors"]} == {"BAD_USER_INPUT"}
    assert sandbox.stats()["signals"]["stored"] == 0


def test_at_most_500_signals_a_call(sandbox: ConnectSandbox) -> None:
    answer = create(sandbox, [PAGE_VIEW] * 501)
    assert [(e["extensions"]["field"], e["extensions"]["code"]) for e in answer["errors"]] == [
        ("signals", "BAD_USER_INPUT")
    ]
    assert "501" in answer["errors"][0]["message"]
    assert len(create(sandbox, [PAGE_VIEW] * 500)["data"]["createSignals"]["signalIds"]) == 500
    assert sandbox.stats()["signals"]["stored"] == 500


def test_the_pro_tier_refuses_other_types_with_forbidden(tmp_path: Path) -> None:
    with serve_connect(folder=tmp_path, api_key=KEY, tier="pro") as sandbox:
        answer = create(sandbox, [ADD_TO_CART, PAGE_VIEW])
        assert answer["data"] == {"createSignals": None}
        (error,) = answer["errors"]
        assert error["extensions"] == {
            "code": "FORBIDDEN",
            "field": "signals[1].signalContent.signalType",
        }
        assert "pro" in error["message"]
        assert create(sandbox, [ADD_TO_CART])["data"]["createSignals"]["signalIds"]
        assert sandbox.stats()["signals"]["by_type"] == {"addToCart": 1}


def test_test_signals_are_stored_flagged(sandbox: ConnectSandbox) -> None:
    create(sandbox, [{**PAGE_VIEW, "test": True}, PAGE_VIEW])
    assert [row[2] for row in stored(sandbox)] == [1, 0]
    assert sandbox.stats()["signals"]["test"] == 1


def test_stats_tell_resent_signals_from_distinct_ones(sandbox: ConnectSandbox) -> None:
    create(sandbox, [ADD_TO_CART, PAGE_VIEW])
    create(sandbox, [PAGE_VIEW])  # the same signal sent twice, as a bad retry would
    counts = sandbox.stats()["signals"]
    assert (counts["stored"], counts["distinct"]) == (3, 2)
    assert counts["by_type"] == {"addToCart": 1, "pageView": 2}


def test_signals_survive_a_restart_on_the_same_folder(tmp_path: Path) -> None:
    with serve_connect(folder=tmp_path, api_key=KEY) as sandbox:
        create(sandbox, [PAGE_VIEW])
    with serve_connect(folder=tmp_path, api_key=KEY) as sandbox:
        assert sandbox.stats()["signals"]["stored"] == 1
