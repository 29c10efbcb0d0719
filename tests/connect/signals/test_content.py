"""Contract of `acoustic_pipelines.connect.signals.content`: the createSignals rules, checked without network.

- The 11 behavior types exist; Pro imports addToCart, identification and order, Premium and
  Ultimate all 11; any other type for Pro is one `FORBIDDEN` problem on `signalContent.signalType`.
- Every required content field of every type is reported when missing, null or of the wrong JSON
  type; known optional fields are type-checked when present; unknown extra keys are tolerated.
- `category` is "Behavior", `name` 1–256 characters, `effect` positive|negative, `currency` an ISO
  4217 code, `orderedItems` checked item by item, `signalCustomAttributes` as {name, value} strings.
- `identifiableAttributes` holds exactly one of contactKey, email (an address), sms or whatsapp
  (E.164); `appKey` is a non-blank string, `sessionId` a string, `test` a boolean.
- Validation returns every problem (path, code, message naming field, value and expectation);
  `validate_signals` adds the 500-per-call limit and indexes paths `signals[i]`.

Expected values follow seed 002 and ../shared/reference/acoustic-connect-api.md §2-§3.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acoustic_pipelines.connect.signals.content import (
    MAX_NAME_CHARS,
    MAX_SIGNALS_PER_CALL,
    SIGNAL_TYPES,
    TIERS,
    JsonType,
    SignalProblem,
    validate_signal,
    validate_signals,
)
from tests.seed_signals import SEED_ADD_TO_CART, SEED_PAGE_VIEW

PRO_TYPES = {"addToCart", "identification", "order"}
ALL_TYPES = {
    "addToCart",
    "browseAbandonment",
    "cartAbandonment",
    "error",
    "identification",
    "onSiteSearch",
    "order",
    "pageView",
    "productConfiguration",
    "productView",
    "richMediaInteraction",
}
SAMPLE_BY_KIND: dict[JsonType, Any] = {
    JsonType.STRING: "text",
    JsonType.NUMBER: 2.5,
    JsonType.BOOLEAN: True,
    JsonType.STRINGS: ["https://example.com/a"],
    JsonType.ATTRIBUTES: [{"name": "colour", "value": "red"}],
    JsonType.ITEMS: [],
}
VALID_VALUES = {"effect": "positive", "currency": "EUR", "errorType": "application"}
VALID_VALUES |= {"identifierName": "email", "category": "Behavior"}
VALID_VALUES |= {"signalTimestamp": "2025-10-02T08:29:30.001Z"}
WRONG_BY_KIND: dict[JsonType, Any] = {
    JsonType.STRING: 12,
    JsonType.NUMBER: "12",
    JsonType.BOOLEAN: "true",
    JsonType.STRINGS: "https://example.com/a",
    JsonType.ATTRIBUTES: {"name": "colour", "value": "red"},
    JsonType.ITEMS: {"productId": "p"},
}

ITEM = {"productId": "P-1", "productName": "Paint", "itemQuantity": 1, "unitPrice": 9.5}


def _sample(field: str, kind: JsonType) -> Any:
    return VALID_VALUES.get(field, SAMPLE_BY_KIND[kind])


def minimal(signal_type: str, **content: Any) -> dict[str, Any]:
    """A valid signal of `signal_type` with only its required fields, plus `content` overrides."""
    spec = SIGNAL_TYPES[signal_type]
    body = {field: _sample(field, kind) for field, kind in spec.required.items()}
    body |= {"signalType": signal_type, "name": f"{signal_type} signal"}
    return {
        "appKey": "app-key",
        "identifiableAttributes": {"contactKey": "C-1"},
        "signalContent": body | content,
    }


def paths(problems: list[SignalProblem]) -> list[str]:
    return [p.path for p in problems]


def only(problems: list[SignalProblem]) -> SignalProblem:
    assert len(problems) == 1, [p.message for p in problems]
    return problems[0]


# -- types and tiers ---------------------------------------------------------------------------


def test_the_eleven_types_and_their_tiers() -> None:
    assert set(SIGNAL_TYPES) == ALL_TYPES
    assert TIERS == ("pro", "premium", "ultimate")
    for name, spec in SIGNAL_TYPES.items():
        assert spec.name == name
        expected = set(TIERS) if name in PRO_TYPES else {"premium", "ultimate"}
        assert spec.tiers == expected, name
        assert {"signalType", "category", "name"} <= set(spec.required), name
        assert not set(spec.required) & set(spec.optional), name


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("signal_type", sorted(ALL_TYPES))
def test_minimal_signal_of_each_type_per_tier(signal_type: str, tier: str) -> None:
    problems = validate_signal(minimal(signal_type), tier=tier)
    if tier != "pro" or signal_type in PRO_TYPES:
        assert problems == []
        return
    problem = only(problems)
    assert (problem.path, problem.code) == ("signal.signalContent.signalType", "FORBIDDEN")
    assert f'"{signal_type}", which the pro subscription cannot import' in problem.message
    assert "addToCart, identification, order" in problem.message


@pytest.mark.parametrize(
    ("signal_type", "required"),
    [
        (
            "addToCart",
            {"effect", "currency", "productId", "productName", "itemQuantity", "unitPrice"},
        ),
        ("browseAbandonment", set()),
        ("cartAbandonment", set()),
        ("error", {"errorType", "errorIdentifier", "errorText"}),
        ("identification", {"identifierName", "identifierValue"}),
        ("onSiteSearch", {"effect", "numberOfResults", "searchTerm"}),
        ("order", {"effect", "orderId", "currency"}),
        ("pageView", {"url"}),
        ("productConfiguration", {"productId", "productName", "configurationType"}),
        ("productView", {"productId", "unitPrice", "currency"}),
        (
            "richMediaInteraction",
            {"mediaId", "interactionType", "mediaName", "mediaCategory", "url"},
        ),
    ],
)
def test_required_fields_per_type(signal_type: str, required: set[str]) -> None:
    common = {"signalType", "category", "name"}
    assert set(SIGNAL_TYPES[signal_type].required) == common | required


@pytest.mark.parametrize(
    ("signal_type", "field", "kind"),
    [(t, f, k) for t, spec in SIGNAL_TYPES.items() for f, k in spec.required.items()],
)
def test_each_required_field_missing_null_or_wrong_type(
    signal_type: str, field: str, kind: JsonType
) -> None:
    path = f"signal.signalContent.{field}"
    signal = minimal(signal_type)
    del signal["signalContent"][field]
    missing = validate_signal(signal, tier="ultimate")
    assert path in paths(missing)
    message = next(p.message for p in missing if p.path == path)
    assert message.startswith(f"`{path}` is missing; expected ")

    if field != "signalType":  # a missing/odd signalType is reported as an unknown type instead
        message = only(
            validate_signal(minimal(signal_type, **{field: None}), tier="ultimate")
        ).message
        assert message == f"`{path}` is null; expected {kind.value} (required for {signal_type})"
        wrong = WRONG_BY_KIND[kind]
        problem = only(validate_signal(minimal(signal_type, **{field: wrong}), tier="ultimate"))
        assert problem.path == path and problem.code == "BAD_USER_INPUT"
        assert f"expected {kind.value}" in problem.message


@pytest.mark.parametrize(
    ("signal_type", "field", "kind"),
    [(t, f, k) for t, spec in SIGNAL_TYPES.items() for f, k in spec.optional.items()],
)
def test_each_optional_field_is_type_checked(signal_type: str, field: str, kind: JsonType) -> None:
    tier = "ultimate"
    assert validate_signal(minimal(signal_type, **{field: _sample(field, kind)}), tier=tier) == []
    assert validate_signal(minimal(signal_type, **{field: None}), tier=tier) == []
    problem = only(validate_signal(minimal(signal_type, **{field: WRONG_BY_KIND[kind]}), tier=tier))
    assert problem.path == f"signal.signalContent.{field}"
    assert f"expected {kind.value}" in problem.message


def test_unknown_content_keys_are_tolerated() -> None:
    signal = minimal("productView", brandDescription="x", attributes={"a": 1}, MSRP=3)
    assert validate_signal(signal, tier="premium") == []


def test_seed_examples_are_valid() -> None:
    assert validate_signals([SEED_ADD_TO_CART, SEED_PAGE_VIEW], tier="ultimate") == []
    [problem] = validate_signals([SEED_ADD_TO_CART, SEED_PAGE_VIEW], tier="pro")
    assert (problem.path, problem.code) == ("signals[1].signalContent.signalType", "FORBIDDEN")


# -- value rules -------------------------------------------------------------------------------

VALUE_CASES = [
    # (signal type, field, value, problem path suffix or None when valid, expected text)
    ("pageView", "category", "Behavior", None, ""),
    ("pageView", "category", "behavior", "category", 'expected "Behavior"'),
    ("pageView", "category", "Marketing", "category", 'expected "Behavior"'),
    ("pageView", "name", "n" * MAX_NAME_CHARS, None, ""),
    ("pageView", "name", "n" * (MAX_NAME_CHARS + 1), "name", "has 257 characters"),
    ("pageView", "name", "", "name", "a non-blank string"),
    ("pageView", "effect", "negative", None, ""),
    ("pageView", "effect", "neutral", "effect", 'is "neutral"; expected "positive" or "negative"'),
    ("addToCart", "effect", "Positive", "effect", 'expected "positive" or "negative"'),
    ("addToCart", "currency", "usd", "currency", "ISO 4217"),
    ("addToCart", "currency", "US$", "currency", "ISO 4217"),
    ("addToCart", "itemQuantity", -1, None, ""),
    ("addToCart", "itemQuantity", True, "itemQuantity", "is true; expected a number"),
    ("addToCart", "unitPrice", float("nan"), "unitPrice", "expected a number"),
    ("addToCart", "unitPrice", "39.99", "unitPrice", 'is "39.99"; expected a number'),
    ("addToCart", "productId", "  ", "productId", "a non-blank string"),
    ("addToCart", "productUrls", ["a", 1], "productUrls", "an array of strings"),
    ("error", "errorType", "USER", None, ""),
    ("error", "errorType", "network", "errorType", '"application" or "user"'),
    ("identification", "identifierName", "whatsApp", None, ""),
    ("identification", "identifierName", "phone", "identifierName", "contactKey"),
    (
        "identification",
        "identificationFromLogin",
        "yes",
        "identificationFromLogin",
        "true or false",
    ),
    ("pageView", "signalTimestamp", "2025-10-02T08:29:30+02:00", None, ""),
    ("pageView", "signalTimestamp", "2025-10-02T08:29:30", "signalTimestamp", "time zone"),
    ("pageView", "signalTimestamp", "yesterday", "signalTimestamp", "ISO 8601"),
    (
        "pageView",
        "signalCustomAttributes",
        [{"name": "a", "value": 1}],
        "signalCustomAttributes[0].value",
        "a string",
    ),
    (
        "pageView",
        "signalCustomAttributes",
        ["a"],
        "signalCustomAttributes[0]",
        "`name` and `value`",
    ),
    ("onSiteSearch", "numberOfResults", 0, None, ""),
    ("onSiteSearch", "numberOfResults", "0", "numberOfResults", "a number"),
]


@pytest.mark.parametrize(("signal_type", "field", "value", "suffix", "expected"), VALUE_CASES)
def test_value_rules(
    signal_type: str, field: str, value: Any, suffix: str | None, expected: str
) -> None:
    problems = validate_signal(minimal(signal_type, **{field: value}), tier="ultimate")
    if suffix is None:
        assert problems == []
        return
    problem = only(problems)
    assert problem.path == f"signal.signalContent.{suffix}"
    assert problem.code == "BAD_USER_INPUT"
    assert problem.message.startswith(f"`{problem.path}` ")
    assert expected in problem.message


def test_ordered_items_are_checked_item_by_item() -> None:
    bad_item = {"productId": "P-2", "itemQuantity": "2", "unitPrice": 3, "productUrls": "u"}
    items = [ITEM, bad_item, "x"]
    problems = validate_signal(minimal("order", orderedItems=items), tier="pro")
    base = "signal.signalContent.orderedItems"
    assert paths(problems) == [
        f"{base}[1].productName",
        f"{base}[1].itemQuantity",
        f"{base}[1].productUrls",
        f"{base}[2]",
    ]
    assert problems[0].message == (
        f"`{base}[1].productName` is missing; expected a string (required for orderedItems item)"
    )
    assert validate_signal(minimal("order", orderedItems=[ITEM, ITEM]), tier="pro") == []


def test_unknown_signal_type_still_checks_common_fields() -> None:
    signal = minimal("pageView", signalType="productPurchase", category="X")
    problems = validate_signal(signal, tier="ultimate")
    assert paths(problems) == ["signal.signalContent.signalType", "signal.signalContent.category"]
    assert problems[0].message.startswith(
        '`signal.signalContent.signalType` is "productPurchase"; '
    )
    assert "addToCart, browseAbandonment" in problems[0].message


# -- signal object and identity ----------------------------------------------------------------

IDENTITY_CASES = [
    ({"contactKey": "C-1"}, []),
    ({"email": "a.b+c@example.co.uk"}, []),
    ({"sms": "+14155550123"}, []),
    ({"whatsapp": "+491511234567"}, []),
    ({"contactKey": "C-1", "email": None}, []),
    ({}, ["signal.identifiableAttributes"]),
    ({"contactKey": "C-1", "email": "a@example.com"}, ["signal.identifiableAttributes"]),
    ({"sms": "+14155550123", "whatsapp": "+14155550123"}, ["signal.identifiableAttributes"]),
    ({"email": "not-an-address"}, ["signal.identifiableAttributes.email"]),
    ({"email": "a@b"}, ["signal.identifiableAttributes.email"]),
    ({"sms": "4155550123"}, ["signal.identifiableAttributes.sms"]),
    ({"sms": "+1 415 555 0123"}, ["signal.identifiableAttributes.sms"]),
    ({"whatsapp": "+0123456789"}, ["signal.identifiableAttributes.whatsapp"]),
    ({"whatsapp": "+1234567890123456"}, ["signal.identifiableAttributes.whatsapp"]),
    ({"contactKey": ""}, ["signal.identifiableAttributes.contactKey"]),
    ({"contactKey": 42}, ["signal.identifiableAttributes.contactKey"]),
    (
        {"whatsApp": "+14155550123"},
        ["signal.identifiableAttributes.whatsApp", "signal.identifiableAttributes"],
    ),
    ("C-1", ["signal.identifiableAttributes"]),
]


@pytest.mark.parametrize(("attributes", "expected_paths"), IDENTITY_CASES)
def test_identifiable_attributes(attributes: Any, expected_paths: list[str]) -> None:
    signal = minimal("identification") | {"identifiableAttributes": attributes}
    problems = validate_signal(signal, tier="pro")
    assert paths(problems) == expected_paths
    assert all(p.code == "BAD_USER_INPUT" for p in problems)
    for problem in problems:
        assert (
            "contactKey" in problem.message
            or "E.164" in problem.message
            or "email" in problem.message
        )


def test_identity_messages_name_what_was_received() -> None:
    two = {"contactKey": "C-1", "sms": "+14155550123"}
    problem = only(validate_signal(minimal("order") | {"identifiableAttributes": two}, tier="pro"))
    assert problem.message == (
        "`signal.identifiableAttributes` has contactKey and sms; "
        "expected exactly one of contactKey, email, sms, whatsapp"
    )
    bad = {"sms": "555-0123"}
    problem = only(validate_signal(minimal("order") | {"identifiableAttributes": bad}, tier="pro"))
    assert problem.message == (
        '`signal.identifiableAttributes.sms` is "555-0123"; '
        "expected an E.164 phone number like +14155550123"
    )


SIGNAL_CASES = [
    # (changes to the signal object, problem paths)
    ({"sessionId": "S-1", "test": True}, []),
    ({"sessionId": None, "test": None}, []),
    ({"appKey": ""}, ["signal.appKey"]),
    ({"appKey": None}, ["signal.appKey"]),
    ({"appKey": 7}, ["signal.appKey"]),
    ({"sessionId": 12}, ["signal.sessionId"]),
    ({"test": "false"}, ["signal.test"]),
    ({"signalContent": "{}"}, ["signal.signalContent"]),
    ({"signalContent": None}, ["signal.signalContent"]),
    ({"contactKey": "C-1"}, ["signal.contactKey"]),
]


@pytest.mark.parametrize(("changes", "expected_paths"), SIGNAL_CASES)
def test_signal_object_fields(changes: dict[str, Any], expected_paths: list[str]) -> None:
    problems = validate_signal(minimal("order") | changes, tier="pro")
    assert paths(problems) == expected_paths


def test_missing_top_level_fields_are_each_reported() -> None:
    problems = validate_signal({}, tier="pro")
    assert [p.message for p in problems] == [
        "`signal.appKey` is missing; expected a non-blank string",
        "`signal.identifiableAttributes` is missing; expected an object with exactly one of "
        "contactKey, email, sms, whatsapp",
        "`signal.signalContent` is missing; expected a JSON object",
    ]
    assert validate_signal("signal", tier="pro")[0].path == "signal"  # type: ignore[arg-type]


def test_every_problem_is_returned_not_the_first_only() -> None:
    signal = minimal("addToCart", currency="usd", effect="meh", unitPrice="1", name="")
    signal["identifiableAttributes"] = {"email": "x"}
    signal["appKey"] = ""
    problems = validate_signal(signal, tier="pro", path="s")
    assert paths(problems) == [
        "s.appKey",
        "s.identifiableAttributes.email",
        "s.signalContent.name",
        "s.signalContent.effect",
        "s.signalContent.currency",
        "s.signalContent.unitPrice",
    ]


def test_unknown_tier_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="tier 'gold' is not one of pro, premium, ultimate"):
        validate_signal(minimal("order"), tier="gold")


# -- a whole call ------------------------------------------------------------------------------


def test_validate_signals_indexes_paths_and_enforces_the_call_limit() -> None:
    batch = [minimal("order") for _ in range(MAX_SIGNALS_PER_CALL)]
    assert validate_signals(batch, tier="pro") == []
    bad = copy.deepcopy(batch) + [minimal("order", effect="x")]
    bad[7]["appKey"] = ""
    problems = validate_signals(bad, tier="pro")
    assert paths(problems) == ["signals", "signals[7].appKey", "signals[500].signalContent.effect"]
    assert problems[0].message == (
        "`signals` holds 501 signals; expected at most 500 per createSignals call"
    )
    assert validate_signals([], tier="pro") == []


@pytest.mark.parametrize("value", ["signals", {"appKey": "a"}, None, 3])
def test_validate_signals_wants_an_array(value: Any) -> None:
    assert paths(validate_signals(value, tier="pro")) == ["signals"]


def test_problem_is_frozen_and_prints_its_message() -> None:
    problem = validate_signals([minimal("order", effect="x")], tier="pro")[0]
    assert str(problem) == problem.message
    with pytest.raises(AttributeError):
        problem.code = "X"  # type: ignore[misc]


# -- the fast check ----------------------------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", " ", "x", "Behavior", "positive", "EUR", "usd", "a@b.io", "+14155550123"]),
    st.sampled_from(["2025-10-02T08:29:30.001Z", "2025-10-02", "email", "application"]),
    st.lists(st.sampled_from(["u", 3]), max_size=2),
    st.just([dict(ITEM)]),
    st.just([{"name": "n", "value": 1}]),
)


@settings(max_examples=400, deadline=None)
@given(
    signal_type=st.sampled_from(sorted(SIGNAL_TYPES)),
    tier=st.sampled_from(TIERS),
    where=st.sampled_from(["content", "identity", "signal"]),
    key=st.sampled_from(
        sorted({k for t in SIGNAL_TYPES.values() for k in [*t.required, *t.optional]})
        + ["appKey", "sessionId", "test", "email", "sms", "contactKey", "other"]
    ),
    value=_values,
)
def test_a_signal_passes_the_fast_check_only_when_it_has_no_problem(
    signal_type: str, tier: str, where: str, key: str, value: Any
) -> None:
    """validate_signal's shortcut for valid signals never hides a problem the full check finds."""
    from acoustic_pipelines.connect.signals import content

    signal = minimal(signal_type)
    target = {
        "content": signal["signalContent"],
        "identity": signal["identifiableAttributes"],
        "signal": signal,
    }[where]
    target[key] = copy.deepcopy(value)
    fast = validate_signal(signal, tier=tier)
    with pytest.MonkeyPatch.context() as patched:
        for shortcut in ("_envelope_valid", "_identity_valid", "_content_valid"):
            patched.setattr(content, shortcut, lambda *_: False)
        full = validate_signal(signal, tier=tier)
    assert fast == full
