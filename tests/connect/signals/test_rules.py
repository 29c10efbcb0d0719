"""Events become signals by the default rules: content, identity, currency, session, rejects."""

from __future__ import annotations

import gzip
import random
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from acoustic_pipelines.config.loading import load_config
from acoustic_pipelines.connect.signals.rules import (
    BuiltSignal,
    RejectedSignal,
    SignalSettings,
    guarded_rules,
    signals_for_event,
)
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location

APP_KEY = "app-key-7f3e"


@pytest.fixture(scope="module")
def rules() -> tuple:
    return load_config().signals.compiled_rules


def settings(**overrides: Any) -> SignalSettings:
    return SignalSettings(
        **{"app_key": APP_KEY, "tier": "premium", "default_currency": "USD", **overrides}
    )


def order_event(**properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m-1",
        "userId": "u-1",
        "context": {"traits": {"email": "ann@example.com"}, "sessionId": "s-9"},
        "properties": {
            "order_id": "o-1",
            "total": 44.0,
            "subtotal": 39.0,
            "products": [{"product_id": "p-1", "name": "Socks", "quantity": 3, "price": 13.0}],
            **properties,
        },
    }


def test_an_order_becomes_one_order_signal(rules: tuple) -> None:
    [built] = signals_for_event(order_event(), rules, settings())
    assert isinstance(built, BuiltSignal) and built.rule == "Order Completed"
    assert built.signal == {
        "appKey": APP_KEY,
        "identifiableAttributes": {"email": "ann@example.com"},
        "signalContent": {
            "name": "Order o-1",
            "effect": "positive",
            "orderId": "o-1",
            "currency": "USD",  # the default: the event has none
            "orderSubtotal": 39,
            "orderValue": 44,
            "orderedItems": [
                {"productId": "p-1", "productName": "Socks", "itemQuantity": 3, "unitPrice": 13}
            ],
            "signalType": "order",
            "category": "Behavior",
        },
        "sessionId": "s-9",
    }


def test_the_events_own_currency_wins_and_test_signals_are_flagged(rules: tuple) -> None:
    [built] = signals_for_event(order_event(currency="EUR"), rules, settings(test=True))
    assert built.signal["signalContent"]["currency"] == "EUR"
    assert built.signal["test"] is True


def test_without_an_email_the_user_id_is_the_contact_key(rules: tuple) -> None:
    event = order_event()
    del event["context"]["traits"]
    [built] = signals_for_event(event, rules, settings())
    assert built.signal["identifiableAttributes"] == {"contactKey": "u-1"}


def test_an_anonymous_event_is_rejected_with_the_field_named(rules: tuple) -> None:
    event = order_event()
    del event["context"]["traits"], event["userId"]
    [rejected] = signals_for_event(event, rules, settings())
    assert isinstance(rejected, RejectedSignal)
    assert (rejected.rule, rejected.message_id, rejected.signal_type) == (
        "Order Completed",
        "m-1",
        "order",
    )
    assert any(p.startswith("signal.identifiableAttributes: ") for p in rejected.problems)


def test_a_missing_required_field_is_named(rules: tuple) -> None:
    event = {
        "type": "track",
        "event": "Products Searched",
        "messageId": "m-2",
        "userId": "u-2",
        "properties": {"query": "socks"},
    }
    [rejected] = signals_for_event(event, rules, settings())
    [problem] = rejected.problems
    assert problem.startswith("signal.signalContent.numberOfResults: ")


def test_events_no_rule_takes_give_nothing(rules: tuple) -> None:
    event = {"type": "group", "messageId": "m-3", "userId": "u", "groupId": "g"}
    assert list(signals_for_event(event, rules, settings())) == []


def test_the_app_key_stays_out_of_the_settings_repr() -> None:
    assert APP_KEY not in repr(settings()) and APP_KEY not in str(settings())


def _full_validation_only(patched: pytest.MonkeyPatch) -> None:
    """Turn off validate_signal's shortcuts: every signal goes through the message-writing path."""
    from acoustic_pipelines.connect.signals import content

    for shortcut in ("_envelope_valid", "_identity_valid", "_content_valid"):
        patched.setattr(content, shortcut, lambda *_: False)


def _spoil(event: dict[str, Any], rng: random.Random) -> None:
    """Make some content fields wrong the way real events do (types, blanks, codes, sizes)."""
    properties = event.get("properties")
    if not isinstance(properties, dict):
        return
    choice = rng.randrange(8)
    if choice == 0:
        properties["price"] = str(properties.get("price"))
    elif choice == 1:
        properties["currency"] = "usd"
    elif choice == 2:
        properties["name"] = " "
    elif choice == 3:
        properties["quantity"] = float("inf")
    elif choice == 4:
        properties["products"] = [{"product_id": 7, "name": None}, "not an item"]
    elif choice == 5:
        properties["order_id"] = "x" * 300
    elif choice == 6:
        event["timestamp"] = "yesterday"


@pytest.mark.parametrize("tier", ["pro", "premium"])
def test_a_generated_day_gives_the_same_signals_and_rejects_as_full_validation(
    rules: tuple, tmp_path: Path, tier: str
) -> None:
    """The fast checks change no output: built signals, rejects and reasons are identical."""
    summary = write_sample_archive(
        open_location(str(tmp_path)), date(2026, 3, 2), events=3000, bad_rate=0.05, seed=15
    )
    rng = random.Random(15)
    events = []
    for relative in summary.files:
        for line in gzip.decompress((tmp_path / relative).read_bytes()).splitlines():
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:  # the sample's bad lines
                continue
            if isinstance(event, dict):
                if rng.random() < 0.3:
                    _spoil(event, rng)
                events.append(event)
    grouped = guarded_rules(rules)
    run = settings(tier=tier)
    fast = [s for event in events for s in signals_for_event(event, grouped, run)]
    with pytest.MonkeyPatch.context() as patched:
        _full_validation_only(patched)
        full = [s for event in events for s in signals_for_event(event, grouped, run)]
    assert fast == full
    rejected = [s for s in fast if isinstance(s, RejectedSignal)]
    kinds = {reason.split(";")[0].split("` ")[-1] for s in rejected for reason in s.problems}
    assert len(rejected) > 100 and len(fast) - len(rejected) > 100
    assert {"has none of them", "is missing"} <= kinds and len(kinds) >= 5, kinds
