"""The `signals:` section: types, tiers, names and settings are checked when the file loads."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from acoustic_pipelines.config.loading import ConfigError, load_config, parse_config

FILE = "signals.yaml"
DESTINATION = {
    "name": "acoustic",
    "customer_prefix": "Acme_Prod_",
    "access_point_alias": "alias-s3alias",
    "mappings": [],
}


def rule(name: str = "Product Viewed", signal_type: str = "productView", **extra: Any) -> dict:
    return {
        "name": name,
        "trigger": 'type = "track"',
        "signal_type": signal_type,
        "identity": {"email": {"@path": "$.context.traits.email"}},
        "content": {"name": "x", "productId": {"@path": "$.properties.product_id"}},
        **extra,
    }


def problems(signals: dict) -> list[str]:
    text = yaml.safe_dump({"destinations": [DESTINATION], "signals": signals}, sort_keys=False)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, file=FILE)
    return caught.value.problems


def test_the_default_rules_cover_the_ecommerce_spec() -> None:
    signals = load_config().signals
    assert (signals.tier, signals.app_key_env, signals.default_currency) == (
        "premium",
        "ACOUSTIC_APP_KEY",
        "USD",
    )
    assert [(r.name, r.signal_type) for r in signals.compiled_rules] == [
        ("Product Added", "addToCart"),
        ("Product Viewed", "productView"),
        ("Order Completed", "order"),
        ("Products Searched", "onSiteSearch"),
        ("Page Viewed", "pageView"),
        ("Identified", "identification"),
    ]


def test_a_type_the_tier_does_not_include_is_refused() -> None:
    [problem] = problems({"tier": "pro", "rules": [rule()]})
    assert problem == (
        f"{FILE}: signals.rules.0.signal_type: signal rule 'Product Viewed': signal type "
        "productView needs Connect Premium or Ultimate; the subscription tier is pro (set `tier`, "
        "or disable or remove the rule)"
    )


def test_a_disabled_rule_is_not_held_against_the_tier() -> None:
    text = yaml.safe_dump(
        {"destinations": [DESTINATION], "signals": {"tier": "pro", "rules": [rule(enabled=False)]}}
    )
    assert parse_config(text, file=FILE).signals.compiled_rules == ()


@pytest.mark.parametrize(
    ("signals", "path", "words"),
    [
        (
            {"rules": [rule(signal_type="emailOpen")]},
            "signals.rules.0.signal_type",
            "not an importable signal type",
        ),
        ({"rules": [rule(), rule()]}, "signals.rules.1.name", "already used by signal rule 0"),
        ({"app_key_env": "not a name"}, "signals.app_key_env", "not a variable name"),
        ({"default_currency": "usd"}, "signals.default_currency", "ISO 4217"),
        ({"tier": "gold"}, "signals.tier", "'pro', 'premium' or 'ultimate'"),
        ({"rules": [{**rule(), "content": {"@path": 1}}]}, "signals.rules.0.content", "@path"),
    ],
)
def test_bad_settings_name_their_path(signals: dict, path: str, words: str) -> None:
    found = problems({"tier": "ultimate", **signals})
    assert any(p.startswith(f"{FILE}: {path}: ") and words in p for p in found), found
