"""Events become signals by the default rules: content, identity, currency, session, rejects."""

from __future__ import annotations

from typing import Any

import pytest

from acoustic_pipelines.config.loading import load_config
from acoustic_pipelines.connect.signals.rules import (
    BuiltSignal,
    RejectedSignal,
    SignalSettings,
    signals_for_event,
)

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
