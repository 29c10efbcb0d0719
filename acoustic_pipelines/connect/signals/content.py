"""Behavior signal rules for `createSignals`: the 11 types, their content fields, tiers, identities.

Sources: seed 002 (createSignals; `identifiableAttributes` holds exactly one of `contactKey`,
`email`, `sms`, `whatsapp`) and ../shared/reference/acoustic-connect-api.md §2-§3 (field tables per
type, import-page names over older web-library names). Unknown extra keys inside `signalContent`
are tolerated (reference §3.0: the SDK sends more and custom attributes exist); known fields are
checked for presence, JSON type and, where documented, value.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = [
    "E164",
    "EMAIL",
    "MAX_NAME_CHARS",
    "MAX_SIGNALS_PER_CALL",
    "SIGNAL_TYPES",
    "TIERS",
    "JsonType",
    "SignalProblem",
    "SignalType",
    "validate_signal",
    "validate_signals",
]

TIERS = ("pro", "premium", "ultimate")
MAX_SIGNALS_PER_CALL = 500
MAX_NAME_CHARS = 256

BAD_USER_INPUT = "BAD_USER_INPUT"
FORBIDDEN = "FORBIDDEN"

IDENTITY_KEYS = ("contactKey", "email", "sms", "whatsapp")
SIGNAL_KEYS = ("appKey", "identifiableAttributes", "sessionId", "signalContent", "test")
EFFECTS = ("positive", "negative")
ERROR_TYPES = ("application", "user")
IDENTIFIER_NAMES = ("email", "sms", "whatsApp", "whatsapp", "contactKey")

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
NON_BLANK = re.compile(r"\S")
CURRENCY = re.compile(r"^[A-Z]{3}$")
IDENTITY_RULES = {
    "contactKey": (NON_BLANK, "a non-blank string"),
    "email": (EMAIL, "an email address"),
    "sms": (E164, "an E.164 phone number like +14155550123"),
    "whatsapp": (E164, "an E.164 phone number like +14155550123"),
}


class JsonType(StrEnum):
    """The JSON shape a `signalContent` field must have; the value reads as "expected …"."""

    STRING = "a string"
    NUMBER = "a number"
    BOOLEAN = "true or false"
    STRINGS = "an array of strings"
    ATTRIBUTES = "an array of {name, value} objects with string values"
    ITEMS = "an array of item objects"


@dataclass(frozen=True)
class SignalType:
    """One importable behavior signal type: its content fields by JSON type, and the tiers allowing it."""

    name: str
    required: Mapping[str, JsonType]
    optional: Mapping[str, JsonType]
    tiers: frozenset[str]


@dataclass(frozen=True)
class SignalProblem:
    """One thing wrong with a signal: where (`path`), the API error code, and a readable message."""

    path: str
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


S, N, B = JsonType.STRING, JsonType.NUMBER, JsonType.BOOLEAN
COMMON_REQUIRED = {"signalType": S, "category": S, "name": S}
COMMON_OPTIONAL = {
    "effect": S,
    "signalTimestamp": S,
    "signalCustomAttributes": JsonType.ATTRIBUTES,
    "description": S,
    "pageCategory": S,
}
PRODUCT_URLS = {"productUrls": JsonType.STRINGS, "imageUrls": JsonType.STRINGS}
# The shape of one `orderedItems` entry (reference §3.7 [A]); its tiers are those of `order`.
ORDERED_ITEM = SignalType(
    name="orderedItems item",
    required={"productId": S, "productName": S, "itemQuantity": N, "unitPrice": N},
    optional={"currency": S, "discount": N, "productCategory": S, **PRODUCT_URLS},
    tiers=frozenset(TIERS),
)


def _signal_type(
    name: str,
    required: Mapping[str, JsonType],
    optional: Mapping[str, JsonType] | None = None,
    *,
    pro: bool = False,
) -> SignalType:
    """Build a signal type with the common fields added (`effect` stays required if listed so)."""
    required = {**COMMON_REQUIRED, **required}
    optional = {
        k: v for k, v in {**COMMON_OPTIONAL, **(optional or {})}.items() if k not in required
    }
    tiers = frozenset(TIERS if pro else ("premium", "ultimate"))
    return SignalType(name, MappingProxyType(required), MappingProxyType(optional), tiers)


_CATALOG = {"productCategory": S, "productDescription": S, "discount": N, **PRODUCT_URLS}
SIGNAL_TYPES: dict[str, SignalType] = {
    t.name: t
    for t in (
        # §3.1: import-page names (itemQuantity, unitPrice, productUrls, imageUrls).
        _signal_type(
            "addToCart",
            {
                "effect": S,
                "currency": S,
                "productId": S,
                "productName": S,
                "itemQuantity": N,
                "unitPrice": N,
            },
            {**_CATALOG, "shoppingCartUrl": S, "promotionId": S, "virtualCategory": S},
            pro=True,
        ),
        # §3.2 [A]: common fields only, optional product fields as for productView.
        _signal_type(
            "browseAbandonment",
            {},
            {"productId": S, "productName": S, "unitPrice": N, "currency": S, **_CATALOG},
        ),
        # §3.3 [A]: common fields only; the item array's name is not documented.
        _signal_type("cartAbandonment", {}, {"shoppingCartUrl": S, "currency": S}),
        # §3.4: errorType application|user (case-insensitive, SDK pages print upper case).
        _signal_type("error", {"errorType": S, "errorIdentifier": S, "errorText": S}),
        # §3.5
        _signal_type(
            "identification",
            {"identifierName": S, "identifierValue": S},
            {"identificationFromLogin": B, "optIn": B},
            pro=True,
        ),
        # §3.6: effect positive with results, negative with none.
        _signal_type("onSiteSearch", {"effect": S, "numberOfResults": N, "searchTerm": S}),
        # §3.7: orderedItems checked item by item.
        _signal_type(
            "order",
            {"effect": S, "orderId": S, "currency": S},
            {
                "orderSubtotal": N,
                "orderShippingHandling": N,
                "orderTax": N,
                "orderDiscount": N,
                "orderValue": N,
                "orderedItems": JsonType.ITEMS,
            },
            pro=True,
        ),
        # §3.8 [A]: url required.
        _signal_type("pageView", {"url": S}),
        # §3.9: catalog fields accepted.
        _signal_type(
            "productConfiguration",
            {"productId": S, "productName": S, "configurationType": S},
            {"unitPrice": N, "currency": S, "inventoryQuantity": N, **_CATALOG},
        ),
        # §3.10: productDescription only in the oldest table, productName [A] optional.
        _signal_type(
            "productView",
            {"productId": S, "unitPrice": N, "currency": S},
            {
                "productName": S,
                "shoppingCartUrl": S,
                "availability": S,
                "brandName": S,
                "inventoryQuantity": N,
                "model": S,
                "msrp": N,
                "productRating": N,
                "productStatus": S,
                "sku": S,
                **_CATALOG,
            },
        ),
        # §3.11: the newer page requires all five; interactionType is free text (Acoustic's
        # own sample sends `click`, outside the documented list).
        _signal_type(
            "richMediaInteraction",
            {
                "mediaId": S,
                "interactionType": S,
                "mediaName": S,
                "mediaCategory": S,
                "url": S,
            },
        ),
    )
}


COMMON_FIELDS = _signal_type("every signal type", {}, {})


def _is_iso_utc(value: str) -> bool:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


# Value rules beyond the JSON type: field -> (accepts the value, what is expected).
VALUE_RULES: Mapping[str, tuple[Callable[[Any], bool], str]] = MappingProxyType(
    {
        "category": (lambda v: v == "Behavior", '"Behavior"'),
        "name": (
            lambda v: 0 < len(v) <= MAX_NAME_CHARS,
            f"a non-empty string of at most {MAX_NAME_CHARS} characters",
        ),
        "effect": (lambda v: v in EFFECTS, '"positive" or "negative"'),
        "currency": (lambda v: bool(CURRENCY.match(v)), 'an ISO 4217 currency code such as "USD"'),
        "errorType": (lambda v: v.lower() in ERROR_TYPES, '"application" or "user"'),
        "identifierName": (
            lambda v: v in IDENTIFIER_NAMES,
            'one of "email", "sms", "whatsApp", "contactKey"',
        ),
        "signalTimestamp": (
            _is_iso_utc,
            'an ISO 8601 date-time with a time zone, e.g. "2025-10-02T08:29:30.001Z"',
        ),
    }
)


def _show(value: Any) -> str:
    """Render a received value for a message: JSON, cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."


def _problem(path: str, received: str, expected: str, code: str = BAD_USER_INPUT) -> SignalProblem:
    return SignalProblem(path, code, f"`{path}` {received}; expected {expected}")


def _wrong(path: str, value: Any, expected: str) -> SignalProblem:
    if isinstance(value, str) and len(value) > MAX_NAME_CHARS:
        return _problem(path, f"has {len(value)} characters ({_show(value)})", expected)
    return _problem(path, f"is {_show(value)}", expected)


@functools.lru_cache(maxsize=1024)
def _fixed_problem(path: str, received: str, expected: str) -> SignalProblem:
    """A problem whose message holds no received value: written once, then shared (frozen)."""
    return _problem(path, received, expected)


def _absent(path: str, obj: Mapping, key: str, expected: str) -> SignalProblem:
    return _fixed_problem(path, "is missing" if key not in obj else "is null", expected)


def _has_type(value: Any, kind: JsonType) -> bool:
    if kind is JsonType.STRING:
        return isinstance(value, str)
    if kind is JsonType.NUMBER:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind is JsonType.BOOLEAN:
        return isinstance(value, bool)
    if kind is JsonType.STRINGS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, list)  # ATTRIBUTES and ITEMS: their elements are checked apart


def _check_field(path: str, value: Any, kind: JsonType, *, required: bool) -> list[SignalProblem]:
    """Check one known content field: type, blank required strings, value rules, nested arrays."""
    name = path.rsplit(".", 1)[-1]
    if not _has_type(value, kind):
        return [_wrong(path, value, kind.value)]
    if required and kind is JsonType.STRING and not value.strip():
        return [_wrong(path, value, "a non-blank string")]
    if name in VALUE_RULES:
        accepts, expected = VALUE_RULES[name]
        if not accepts(value):
            return [_wrong(path, value, expected)]
    if kind is JsonType.ITEMS:
        return [
            p
            for i, item in enumerate(value)
            for p in _check_object(f"{path}[{i}]", item, ORDERED_ITEM)
        ]
    if kind is JsonType.ATTRIBUTES:
        return [p for i, attr in enumerate(value) for p in _check_attribute(f"{path}[{i}]", attr)]
    return []


def _check_attribute(path: str, attr: Any) -> list[SignalProblem]:
    """`signalCustomAttributes` entries are `{name: String, value: String}` (reference §3.0)."""
    if not isinstance(attr, Mapping):
        return [_wrong(path, attr, "an object with string `name` and `value`")]
    return [
        _wrong(f"{path}.{key}", attr.get(key), "a string")
        for key in ("name", "value")
        if not isinstance(attr.get(key), str)
    ]


def _check_object(path: str, obj: Any, spec: SignalType) -> list[SignalProblem]:
    """Check an object against a type's required and optional fields; extra keys are tolerated."""
    if not isinstance(obj, Mapping):
        return [_wrong(path, obj, "a JSON object")]
    problems: list[SignalProblem] = []
    for key, kind in spec.required.items():
        if obj.get(key) is None:
            expected = f"{kind.value} (required for {spec.name})"
            problems.append(_absent(f"{path}.{key}", obj, key, expected))
        else:
            problems += _check_field(f"{path}.{key}", obj[key], kind, required=True)
    for key, kind in spec.optional.items():
        if obj.get(key) is not None:
            problems += _check_field(f"{path}.{key}", obj[key], kind, required=False)
    return problems


def _check_content(path: str, content: Any, tier: str) -> list[SignalProblem]:
    """Check `signalContent`: a known type allowed by the tier, then that type's fields."""
    if not isinstance(content, Mapping):
        return [_wrong(path, content, "a JSON object with signalType, category, name, …")]
    signal_type = content.get("signalType")
    spec = SIGNAL_TYPES.get(signal_type) if isinstance(signal_type, str) else None
    if spec is None:
        expected, type_path = "one of " + ", ".join(SIGNAL_TYPES), f"{path}.signalType"
        if signal_type is None:
            problem = _absent(type_path, content, "signalType", expected)
        else:
            problem = _wrong(type_path, signal_type, expected)
        return [problem, *_check_object(path, content, COMMON_FIELDS)]
    problems: list[SignalProblem] = []
    if tier not in spec.tiers:
        allowed = ", ".join(n for n, t in SIGNAL_TYPES.items() if tier in t.tiers)
        problems.append(
            _problem(
                f"{path}.signalType",
                f'is "{spec.name}", which the {tier} subscription cannot import',
                f"one of {allowed} (Premium and Ultimate import all {len(SIGNAL_TYPES)} types)",
                code=FORBIDDEN,
            )
        )
    return problems + _check_object(path, content, spec)


_EXACTLY_ONE_IDENTITY = "exactly one of " + ", ".join(IDENTITY_KEYS)


def _check_identity(path: str, signal: Mapping) -> list[SignalProblem]:
    """`identifiableAttributes`: exactly one of contactKey, email, sms, whatsapp (seed 002)."""
    expected_one = _EXACTLY_ONE_IDENTITY
    attrs = signal.get("identifiableAttributes")
    if attrs is None:
        return [_absent(path, signal, "identifiableAttributes", f"an object with {expected_one}")]
    if not isinstance(attrs, Mapping):
        return [_wrong(path, attrs, f"an object with {expected_one}")]
    problems = [
        _problem(f"{path}.{key}", "is not a known identifier", expected_one)
        for key in attrs
        if key not in IDENTITY_KEYS
    ]
    given = [key for key in IDENTITY_KEYS if attrs.get(key) is not None]
    if len(given) != 1:
        received = "has none of them" if not given else "has " + " and ".join(given)
        problems.append(_fixed_problem(path, received, expected_one))
    for key in given:
        pattern, expected = IDENTITY_RULES[key]
        value = attrs[key]
        if not (isinstance(value, str) and pattern.match(value)):
            problems.append(_wrong(f"{path}.{key}", value, expected))
    return problems


def validate_signal(signal: Mapping, *, tier: str, path: str = "signal") -> list[SignalProblem]:
    """Every problem of one `createSignals` signal for a subscription tier; empty when valid."""
    if tier not in TIERS:
        raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
    if type(signal) is not dict and not isinstance(signal, Mapping):
        return [
            _wrong(
                path, signal, "a signal object with appKey, identifiableAttributes, signalContent"
            )
        ]
    # Each part is first decided without writing a path or a message (the common case: valid);
    # only a part found wrong goes through the checks that say what is wrong.
    identity_valid = _identity_valid(signal.get("identifiableAttributes"))
    content = signal.get("signalContent")
    content_valid = _content_valid(content, tier)
    if identity_valid and content_valid and _envelope_valid(signal):
        return []
    problems = [
        _problem(f"{path}.{key}", "is not a signal field", "one of " + ", ".join(SIGNAL_KEYS))
        for key in signal
        if key not in SIGNAL_KEYS
    ]
    app_key = signal.get("appKey")
    if app_key is None:
        problems.append(_absent(f"{path}.appKey", signal, "appKey", "a non-blank string"))
    elif not (isinstance(app_key, str) and app_key.strip()):
        problems.append(_wrong(f"{path}.appKey", app_key, "a non-blank string"))
    if not identity_valid:
        problems += _check_identity(f"{path}.identifiableAttributes", signal)
    session_id = signal.get("sessionId")
    if session_id is not None and not isinstance(session_id, str):
        problems.append(_wrong(f"{path}.sessionId", session_id, "a string"))
    test = signal.get("test")
    if test is not None and not isinstance(test, bool):
        problems.append(_wrong(f"{path}.test", test, "true or false"))
    if content is None:
        problems.append(_absent(f"{path}.signalContent", signal, "signalContent", "a JSON object"))
    elif not content_valid:
        problems += _check_content(f"{path}.signalContent", content, tier)
    return problems


# --- the fast check: the same rules as above, answering only "no problem at all" ---------------


def _envelope_valid(signal: Mapping) -> bool:
    """True only when the signal's own fields (keys, appKey, sessionId, test) have no problem."""
    for key in signal:
        if key not in _SIGNAL_KEY_SET:
            return False
    app_key = signal.get("appKey")
    if not (isinstance(app_key, str) and app_key.strip()):
        return False
    session_id, test = signal.get("sessionId"), signal.get("test")
    return (session_id is None or isinstance(session_id, str)) and (
        test is None or isinstance(test, bool)
    )


_SIGNAL_KEY_SET = frozenset(SIGNAL_KEYS)
_IDENTITY_PATTERNS = {key: pattern for key, (pattern, _) in IDENTITY_RULES.items()}


def _identity_valid(attrs: Any) -> bool:
    """True only when :func:`_check_identity` finds no problem in these attributes."""
    if type(attrs) is not dict and not isinstance(attrs, Mapping):
        return False
    found = None
    for key, value in attrs.items():
        pattern = _IDENTITY_PATTERNS.get(key)
        if pattern is None:
            return False
        if value is not None:
            if found is not None:
                return False
            found = (pattern, value)
    if found is None:
        return False
    pattern, value = found
    return isinstance(value, str) and pattern.match(value) is not None


def _content_valid(content: Any, tier: str) -> bool:
    """True only when :func:`_check_content` finds no problem in this `signalContent`."""
    if type(content) is not dict and not isinstance(content, Mapping):
        return False
    signal_type = content.get("signalType")
    spec = SIGNAL_TYPES.get(signal_type) if isinstance(signal_type, str) else None
    return spec is not None and tier in spec.tiers and _object_valid(content, spec)


def _object_valid(obj: Any, spec: SignalType) -> bool:
    """True only when :func:`_check_object` finds no problem (one compiled check per type)."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        return False
    cached = _COMPILED.get(id(spec))
    if cached is None or cached[0] is not spec:
        cached = _COMPILED[id(spec)] = (spec, _compile_object_check(spec))
    return cached[1](obj)


_COMPILED: dict[int, tuple[SignalType, Callable[[Mapping], bool]]] = {}


def _compile_object_check(spec: SignalType) -> Callable[[Mapping], bool]:
    """One function testing every field of a type in turn, as :func:`_field_valid` would.

    Written as Python source and compiled once per type: a straight run of `get`s and type
    tests, without a call per field (field names are the catalog's, never data).
    """
    namespace: dict[str, Any] = {"isfinite": math.isfinite, "_field_valid": _field_valid}
    lines = ["def check(obj):", "    get = obj.get"]
    fields = [(key, kind, True) for key, kind in spec.required.items()]
    fields += [(key, kind, False) for key, kind in spec.optional.items()]
    for index, (key, kind, required) in enumerate(fields):
        if not key.isidentifier():
            raise ValueError(f"field name {key!r} of {spec.name} is not an identifier")
        rule = VALUE_RULES.get(key)
        if rule is not None:
            namespace[f"rule_{index}"] = rule[0]
        if kind is JsonType.STRING:
            test = "isinstance(v, str)" + (" and v.strip()" if required else "")
            test += f" and rule_{index}(v)" if rule is not None else ""
        elif kind is JsonType.NUMBER and rule is None:
            test = "isinstance(v, (int, float)) and not isinstance(v, bool) and isfinite(v)"
        else:
            namespace[f"kind_{index}"] = kind
            test = f"_field_valid({key!r}, v, kind_{index}, required={required})"
        absent = "v is None or " if required else "v is not None and "
        lines += [f"    v = get({key!r})", f"    if {absent}not ({test}):", "        return False"]
    lines.append("    return True")
    exec(compile("\n".join(lines), f"<signal check {spec.name}>", "exec"), namespace)  # noqa: S102
    return namespace["check"]


def _field_valid(name: str, value: Any, kind: JsonType, *, required: bool) -> bool:
    if not _has_type(value, kind):
        return False
    if required and kind is JsonType.STRING and not value.strip():
        return False
    rule = VALUE_RULES.get(name)
    if rule is not None and not rule[0](value):
        return False
    if kind is JsonType.ITEMS:
        return all(_object_valid(item, ORDERED_ITEM) for item in value)
    if kind is JsonType.ATTRIBUTES:
        return all(
            isinstance(attr, Mapping)
            and isinstance(attr.get("name"), str)
            and isinstance(attr.get("value"), str)
            for attr in value
        )
    return True


def validate_signals(signals: Sequence[Mapping], *, tier: str) -> list[SignalProblem]:
    """Every problem of one `createSignals` call (≤ 500 signals), paths `signals[i]…`."""
    if isinstance(signals, str | bytes | Mapping) or not isinstance(signals, Sequence):
        return [_wrong("signals", signals, "an array of signal objects")]
    problems: list[SignalProblem] = []
    if len(signals) > MAX_SIGNALS_PER_CALL:
        problems.append(
            _problem(
                "signals",
                f"holds {len(signals)} signals",
                f"at most {MAX_SIGNALS_PER_CALL} per createSignals call",
            )
        )
    for i, signal in enumerate(signals):
        problems += validate_signal(signal, tier=tier, path=f"signals[{i}]")
    return problems
