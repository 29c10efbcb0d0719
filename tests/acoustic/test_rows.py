"""Contract of `acoustic_pipelines.acoustic.rows`: mapped payload → one flat Acoustic row.

- `build_row` returns an insertion-ordered dict whose first keys are `uniqueRecipient`,
  `eventSource` ("<type> Event") and `timestamp`, followed by `key_value_pairs`, `array_data`,
  `traits`, `properties`, `context` flattened without a section prefix (dot keys, array
  indexes); later sections overwrite earlier values but keep the first position; header keys
  are never overwritten; every repeated write is reported by `build_row_with_stats`.
- `null` is the key itself with value None; empty objects and arrays add nothing.
- Any object/array deeper than `max_depth` (default 10) below its section rejects with
  NESTING_DEPTH_EXCEEDED; siblings and array length do not count.
- Rejects carry one Acoustic code: INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID, INVALID_EVENT_TYPE,
  INVALID_TIMESTAMP, INVALID_NO_DATA_MAPPED, NESTING_DEPTH_EXCEEDED,
  UNEXPECTED_EVENT_PARSING_EXCEPTION, EXCEEDS_MAX_PROPERTIES_MAX (default cap 1000 attributes).
- Engage audiences are recognised by exact flat keys only (`personas.computation_class` /
  `personas.computation_key`, or `audience_key`) and never add a key to other events.
- `check_destination_settings` returns every §6.1 problem in order, never echoing secrets.
- Any JSON payload yields a row of str → scalar or an AcousticReject, nothing else.
- The one-pass flatten of plain JSON gives exactly what the collision-recording walk gives.

Expected values are written from segment.md §6 and the module's documented fixes.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acoustic_pipelines.acoustic import rows as acoustic
from acoustic_pipelines.acoustic.rows import (
    DEFAULT_MAX_ATTRIBUTES,
    EXCEEDS_MAX_PROPERTIES_MAX,
    HEADER_KEYS,
    IDENTIFY_DEFAULT,
    IDENTIFY_PRESET,
    IDENTIFY_TRIGGER,
    INVALID_CUSTOMER_PREFIX,
    INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
    INVALID_EVENT_TYPE,
    INVALID_NO_DATA_MAPPED,
    INVALID_TIMESTAMP,
    MISSING_CUSTOMER_PREFIX,
    MISSING_S3_ACCESS_KEY,
    MISSING_S3_BUCKET_ACCESS_POINT,
    MISSING_S3_REGION,
    MISSING_S3_SECRET,
    NESTING_DEPTH_EXCEEDED,
    SECTIONS,
    TRACK_DEFAULT,
    TRACK_PRESET,
    TRACK_TRIGGER,
    UNEXPECTED_EVENT_PARSING_EXCEPTION,
    AcousticReject,
    AcousticSettingsError,
    FlatRow,
    build_row,
    build_row_with_stats,
    check_destination_settings,
)

TS = "2024-01-02T10:30:43.123Z"
HEAD = {"uniqueRecipient": "ann@example.com", "eventSource": "track Event", "timestamp": TS}
PAYLOAD_CODES = {
    INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
    INVALID_EVENT_TYPE,
    INVALID_TIMESTAMP,
    INVALID_NO_DATA_MAPPED,
    NESTING_DEPTH_EXCEEDED,
    UNEXPECTED_EVENT_PARSING_EXCEPTION,
    EXCEEDS_MAX_PROPERTIES_MAX,
}
ENTERED, EXITED = "Audience Entered", "Audience Exited"


_DROP = object()  # a field value meaning "leave the field out"


def payload(**fields: Any) -> dict[str, Any]:
    """A valid track payload's header fields plus the given fields (`_DROP` removes a field)."""
    base: dict[str, Any] = {
        "uniqueRecipientId": "ann@example.com",
        "type": "track",
        "timestamp": TS,
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not _DROP}


def items(**fields: Any) -> list[tuple[str, Any]]:
    """The row of `payload(**fields)` as an ordered list of pairs."""
    return list(build_row(payload(**fields)).items())


def reject(p: Any, **kwargs: Any) -> AcousticReject:
    """The AcousticReject raised for payload `p`."""
    with pytest.raises(AcousticReject) as info:
        build_row(p, **kwargs)
    return info.value


def chain(n: int, leaf: Any = 1) -> dict[str, Any]:
    """A section holding n nested objects below its root: {"k1": {"k2": ... {"leaf": leaf}}}."""
    inner: dict[str, Any] = {"leaf": leaf}
    for i in range(n, 1, -1):
        inner = {f"k{i}": inner}
    return {"k1": inner}


def chain_key(n: int) -> str:
    """The flat key of chain(n)'s leaf."""
    return ".".join([f"k{i}" for i in range(1, n + 1)] + ["leaf"])


# --- row layout and flattening ------------------------------------------------------------------


def test_header_keys_constant() -> None:
    assert HEADER_KEYS == ("uniqueRecipient", "eventSource", "timestamp")


def test_flattens_properties_with_dot_keys_indexes_types_null_and_empties() -> None:
    properties = {
        "order_id": "o1",
        "value": 9.5,
        "products": [{"sku": "A", "price": 1}, {"sku": "B"}],
        "tags": ["x", "y"],
        "gift": False,
        "note": None,
        "empty_obj": {},
        "empty_list": [],
        "deep": {"inner": {}, "n": None},
    }
    assert items(properties=properties) == [
        ("uniqueRecipient", "ann@example.com"),
        ("eventSource", "track Event"),
        ("timestamp", TS),
        ("order_id", "o1"),
        ("value", 9.5),
        ("products.0.sku", "A"),
        ("products.0.price", 1),
        ("products.1.sku", "B"),
        ("tags.0", "x"),
        ("tags.1", "y"),
        ("gift", False),
        ("note", None),
        ("deep.n", None),
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"traits": {"a": None}}, {"a": None}, id="null-top-level"),
        pytest.param({"traits": {"a": {"b": None}}}, {"a.b": None}, id="null-nested"),
        pytest.param(
            {"array_data": [None, {"x": None}]}, {"0": None, "1.x": None}, id="null-array"
        ),
        pytest.param({"properties": {"l": [None]}}, {"l.0": None}, id="null-in-list"),
        pytest.param({"properties": {}}, {}, id="empty-section-only-headers"),
        pytest.param({"array_data": []}, {}, id="empty-array-data"),
        pytest.param({"context": {"a": {}, "b": [], "c": [{}, []]}}, {}, id="only-empties"),
        pytest.param(
            {"array_data": [{"sku": "A"}, {"sku": "B"}]},
            {"0.sku": "A", "1.sku": "B"},
            id="array-data-index-first",
        ),
        pytest.param({"array_data": {"sku": "A"}}, {"0.sku": "A"}, id="array-data-lone-object"),
        pytest.param({"array_data": ["p", 2]}, {"0": "p", "1": 2}, id="array-data-scalars"),
        pytest.param(
            {"key_value_pairs": {"first": "Ann", "n": 0}}, {"first": "Ann", "n": 0}, id="kvp"
        ),
        pytest.param(
            {"properties": {"t": True, "f": 1.5, "i": -3, "s": ""}},
            {"t": True, "f": 1.5, "i": -3, "s": ""},
            id="scalars-keep-type",
        ),
    ],
)
def test_flatten_table(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert items(**fields) == list(HEAD.items()) + list(expected.items())


def test_no_null_suffix_keys() -> None:
    row = build_row(payload(properties={"a": None, "b": {"c": None}}))
    assert not [key for key in row if key.endswith(".null") or key == "null"]


def test_section_order_is_kvp_array_data_traits_properties_context() -> None:
    row = build_row(
        payload(
            context={"c": 1},
            properties={"p": 1},
            traits={"t": 1},
            array_data=[{"x": 1}],
            key_value_pairs={"k": 1},
        )
    )
    assert list(row) == [*HEADER_KEYS, "k", "0.x", "t", "p", "c"]


def test_later_section_overwrites_but_keeps_first_position() -> None:
    stats = build_row_with_stats(
        payload(
            key_value_pairs={"a": "kvp", "only_kvp": 1},
            traits={"a": "traits"},
            properties={"a": "properties", "b": "p"},
            context={"a": "context", "b": "c"},
        )
    )
    assert list(stats.row.items()) == [
        *HEAD.items(),
        ("a", "context"),
        ("only_kvp", 1),
        ("b", "c"),
    ]
    assert stats.collisions == ("a", "a", "a", "b")


def test_array_data_overwrites_key_value_pairs() -> None:
    stats = build_row_with_stats(
        payload(key_value_pairs={"0": {"sku": "kvp"}}, array_data=[{"sku": "arr"}])
    )
    assert stats.row["0.sku"] == "arr"
    assert stats.collisions == ("0.sku",)


def test_null_overwrites_like_any_value_and_empty_container_does_not() -> None:
    stats = build_row_with_stats(
        payload(key_value_pairs={"a": 1, "b": 2}, properties={"a": None, "b": {}})
    )
    assert list(stats.row.items()) == [*HEAD.items(), ("a", None), ("b", 2)]
    assert stats.collisions == ("a",)


def test_collision_inside_one_section() -> None:
    stats = build_row_with_stats(payload(properties={"a.b": 1, "a": {"b": 2}}))
    assert list(stats.row.items()) == [*HEAD.items(), ("a.b", 2)]
    assert stats.collisions == ("a.b",)


def test_header_keys_are_never_overwritten_and_count_as_collisions() -> None:
    stats = build_row_with_stats(
        payload(
            key_value_pairs={"timestamp": None},
            traits={"uniqueRecipient": "other@example.com"},
            properties={"eventSource": "fake Event", "timestamp": "1999-01-01", "x": 1},
            context={"timestamp": 0},
        )
    )
    assert list(stats.row.items()) == [*HEAD.items(), ("x", 1)]
    assert stats.collisions == (
        "timestamp",
        "uniqueRecipient",
        "eventSource",
        "timestamp",
        "timestamp",
    )


def test_no_collisions_reported_as_empty_tuple_and_build_row_is_the_row() -> None:
    p = payload(traits={"a": 1}, properties={"b": 2})
    stats = build_row_with_stats(p)
    assert isinstance(stats, FlatRow)
    assert stats.collisions == ()
    assert build_row(p) == stats.row
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.row = {}  # type: ignore[misc]


def test_event_source_is_type_plus_event() -> None:
    row = build_row(payload(type="identify", traits={"a": 1}))
    assert row["eventSource"] == "identify Event"
    row = build_row(payload(type="page", traits={"a": 1}))
    assert row["eventSource"] == "page Event"


def test_integer_recipient_id_is_written_as_text() -> None:
    assert (
        build_row(payload(uniqueRecipientId=12345, traits={"a": 1}))["uniqueRecipient"] == "12345"
    )


@pytest.mark.parametrize(
    "timestamp",
    [
        TS,
        "2024-01-02T10:30:43+05:30",
        "2024-01-02",
        "2024-01-02 10:30:43",
        1704191443123,
        1704191443.5,
        0,
    ],
)
def test_valid_timestamps_are_kept_as_given(timestamp: Any) -> None:
    row = build_row(payload(timestamp=timestamp, traits={"a": 1}))
    assert row["timestamp"] == timestamp
    assert type(row["timestamp"]) is type(timestamp)


def test_payload_is_not_mutated() -> None:
    p = payload(
        properties={"audience_key": "vip", "vip": True, "n": {"m": [1, None]}},
        context={"personas": {"computation_class": "audience", "computation_key": "vip"}},
    )
    before = repr(p)
    build_row(p)
    assert repr(p) == before


# --- nesting depth ------------------------------------------------------------------------------


def test_chain_of_max_depth_objects_is_fine() -> None:
    row = build_row(payload(properties=chain(10)))
    assert row == {**HEAD, chain_key(10): 1}


def test_one_more_level_rejects() -> None:
    error = reject(payload(properties=chain(11)))
    assert error.code == NESTING_DEPTH_EXCEEDED
    assert "properties.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11" in error.detail
    assert "10" in error.detail


@pytest.mark.parametrize("max_depth", [0, 1, 3, 25])
def test_depth_limit_is_configurable(max_depth: int) -> None:
    if max_depth:
        row = build_row(payload(context=chain(max_depth)), max_depth=max_depth)
        assert row[chain_key(max_depth)] == 1
    else:
        assert build_row(payload(context={"a": 1}), max_depth=0)["a"] == 1
    error = reject(payload(context=chain(max_depth + 1)), max_depth=max_depth)
    assert error.code == NESTING_DEPTH_EXCEEDED


def test_arrays_are_levels_too() -> None:
    assert build_row(payload(properties={"a": [[[1]]]}), max_depth=3)["a.0.0.0"] == 1
    assert reject(payload(properties={"a": [[[1]]]}), max_depth=2).code == NESTING_DEPTH_EXCEEDED


def test_empty_container_beyond_limit_rejects_but_null_is_a_leaf() -> None:
    assert reject(payload(properties=chain(10, leaf={}))).code == NESTING_DEPTH_EXCEEDED
    assert build_row(payload(properties=chain(10, leaf=None)))[chain_key(10)] is None


def test_array_data_items_are_depth_one() -> None:
    row = build_row(payload(array_data=[chain(9)]))
    assert row == {**HEAD, "0." + chain_key(9): 1}
    assert reject(payload(array_data=[chain(10)])).code == NESTING_DEPTH_EXCEEDED


def test_siblings_do_not_count_as_depth() -> None:
    objects = {f"o{i}": {"x": i} for i in range(11)}
    nulls = {f"n{i}": None for i in range(11)}
    row = build_row(payload(properties={**objects, **nulls}))
    assert len(row) == 3 + 22
    assert row["o10.x"] == 10
    assert row["n10"] is None


def test_products_array_of_50_items_is_fine() -> None:
    products = [{"sku": f"S{i}", "price": i, "tags": ["a"]} for i in range(50)]
    row = build_row(payload(properties={"meta": {"a": 1}, "products": products}))
    assert len(row) == 3 + 1 + 150
    assert row["products.0.sku"] == "S0"
    assert row["products.49.sku"] == "S49"
    assert row["products.49.tags.0"] == "a"


def test_very_deep_payload_rejects_cleanly() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    assert reject(payload(properties={"a": deep})).code == NESTING_DEPTH_EXCEEDED
    assert reject(payload(timestamp=deep, properties={})).code == INVALID_TIMESTAMP


def test_negative_limits_are_a_programming_error() -> None:
    with pytest.raises(ValueError):
        build_row(payload(traits={"a": 1}), max_depth=-1)
    with pytest.raises(ValueError):
        build_row(payload(traits={"a": 1}), max_attributes=-1)


# --- rejects ------------------------------------------------------------------------------------


class _Exploding(dict):
    """A dict whose items() fails, standing in for any failure inside flattening."""

    def items(self):  # type: ignore[override]
        raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("p", "code", "mentions"),
    [
        # the payload itself
        pytest.param([], UNEXPECTED_EVENT_PARSING_EXCEPTION, "array", id="payload-array"),
        pytest.param("x", UNEXPECTED_EVENT_PARSING_EXCEPTION, "string", id="payload-string"),
        pytest.param(None, UNEXPECTED_EVENT_PARSING_EXCEPTION, "null", id="payload-null"),
        # uniqueRecipientId
        pytest.param(
            payload(uniqueRecipientId=_DROP, traits={"a": 1}),
            INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
            "uniqueRecipientId",
            id="recipient-missing",
        ),
        pytest.param(
            payload(uniqueRecipientId=None, traits={"a": 1}),
            INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
            "null",
            id="recipient-null",
        ),
        pytest.param(
            payload(uniqueRecipientId="", traits={"a": 1}),
            INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
            "blank",
            id="recipient-empty",
        ),
        pytest.param(
            payload(uniqueRecipientId="   ", traits={"a": 1}),
            INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
            "blank",
            id="recipient-blank",
        ),
        pytest.param(
            payload(uniqueRecipientId={"e": "a"}, traits={"a": 1}),
            INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
            "object",
            id="recipient-object",
        ),
        pytest.param(
            payload(uniqueRecipientId=["a"], traits={"a": 1}),
            INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
            "array",
            id="recipient-array",
        ),
        pytest.param(
            payload(uniqueRecipientId=True, traits={"a": 1}),
            INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
            "boolean",
            id="recipient-bool",
        ),
        pytest.param(
            payload(uniqueRecipientId=10**5000, traits={"a": 1}),
            INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
            "too large",
            id="recipient-int-too-large",
        ),
        pytest.param(
            payload(uniqueRecipientId=1.5, traits={"a": 1}),
            INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
            "number",
            id="recipient-float",
        ),
        # type
        pytest.param(
            payload(type=_DROP, traits={"a": 1}), INVALID_EVENT_TYPE, "missing", id="type-missing"
        ),
        pytest.param(
            payload(type=None, traits={"a": 1}), INVALID_EVENT_TYPE, "None", id="type-null"
        ),
        pytest.param(
            payload(type="", traits={"a": 1}), INVALID_EVENT_TYPE, "type", id="type-empty"
        ),
        pytest.param(
            payload(type=" ", traits={"a": 1}), INVALID_EVENT_TYPE, "type", id="type-blank"
        ),
        pytest.param(payload(type=5, traits={"a": 1}), INVALID_EVENT_TYPE, "5", id="type-number"),
        # timestamp
        pytest.param(
            payload(timestamp=_DROP, traits={"a": 1}), INVALID_TIMESTAMP, "missing", id="ts-missing"
        ),
        pytest.param(
            payload(timestamp=None, traits={"a": 1}), INVALID_TIMESTAMP, "None", id="ts-null"
        ),
        pytest.param(
            payload(timestamp="", traits={"a": 1}), INVALID_TIMESTAMP, "timestamp", id="ts-empty"
        ),
        pytest.param(
            payload(timestamp="yesterday", traits={"a": 1}),
            INVALID_TIMESTAMP,
            "yesterday",
            id="ts-words",
        ),
        pytest.param(
            payload(timestamp="2024-13-01T00:00:00Z", traits={"a": 1}),
            INVALID_TIMESTAMP,
            "2024-13-01",
            id="ts-month-13",
        ),
        pytest.param(
            payload(timestamp=" 2024-01-02", traits={"a": 1}),
            INVALID_TIMESTAMP,
            "ISO-8601",
            id="ts-leading-space",
        ),
        pytest.param(
            payload(timestamp=True, traits={"a": 1}), INVALID_TIMESTAMP, "True", id="ts-bool"
        ),
        pytest.param(
            payload(timestamp=math.inf, traits={"a": 1}), INVALID_TIMESTAMP, "inf", id="ts-inf"
        ),
        pytest.param(
            payload(timestamp=math.nan, traits={"a": 1}), INVALID_TIMESTAMP, "nan", id="ts-nan"
        ),
        pytest.param(
            payload(timestamp=10**20, traits={"a": 1}),
            INVALID_TIMESTAMP,
            "timestamp",
            id="ts-out-of-range",
        ),
        pytest.param(
            payload(timestamp={"t": 1}, traits={"a": 1}),
            INVALID_TIMESTAMP,
            "timestamp",
            id="ts-object",
        ),
        # no data mapped
        pytest.param(payload(), INVALID_NO_DATA_MAPPED, "properties", id="no-sections"),
        pytest.param(
            payload(
                key_value_pairs=None, array_data=None, traits=None, properties=None, context=None
            ),
            INVALID_NO_DATA_MAPPED,
            "at least one",
            id="all-sections-null",
        ),
        # wrongly shaped sections
        pytest.param(
            payload(properties="text"),
            UNEXPECTED_EVENT_PARSING_EXCEPTION,
            "properties",
            id="properties-string",
        ),
        pytest.param(
            payload(properties=[1, 2]),
            UNEXPECTED_EVENT_PARSING_EXCEPTION,
            "properties",
            id="properties-array",
        ),
        pytest.param(
            payload(traits=5), UNEXPECTED_EVENT_PARSING_EXCEPTION, "traits", id="traits-number"
        ),
        pytest.param(
            payload(context=False), UNEXPECTED_EVENT_PARSING_EXCEPTION, "context", id="context-bool"
        ),
        pytest.param(
            payload(key_value_pairs=["a"]),
            UNEXPECTED_EVENT_PARSING_EXCEPTION,
            "key_value_pairs",
            id="kvp-array",
        ),
        pytest.param(
            payload(array_data="x"),
            UNEXPECTED_EVENT_PARSING_EXCEPTION,
            "array_data",
            id="array-data-string",
        ),
        # values that are not JSON, and any failure while flattening
        pytest.param(
            payload(properties={"when": datetime(2024, 1, 2)}),
            UNEXPECTED_EVENT_PARSING_EXCEPTION,
            "properties.when",
            id="datetime-value",
        ),
        pytest.param(
            payload(properties={"b": {"raw": b"x"}}),
            UNEXPECTED_EVENT_PARSING_EXCEPTION,
            "properties.b.raw",
            id="bytes-value",
        ),
        pytest.param(
            payload(traits={"s": {1, 2}}),
            UNEXPECTED_EVENT_PARSING_EXCEPTION,
            "traits.s",
            id="set-value",
        ),
        pytest.param(
            payload(properties=_Exploding(a=1)),
            UNEXPECTED_EVENT_PARSING_EXCEPTION,
            "RuntimeError",
            id="failure-while-flattening",
        ),
        # nesting
        pytest.param(payload(traits=chain(11)), NESTING_DEPTH_EXCEEDED, "traits.k1", id="nesting"),
    ],
)
def test_reject_codes(p: Any, code: str, mentions: str) -> None:
    error = reject(p)
    assert error.code == code
    assert mentions in error.detail
    assert str(error) == f"{code}: {error.detail}"


def test_check_order_recipient_then_type_then_timestamp_then_data() -> None:
    bad_all = {"uniqueRecipientId": "", "type": None, "timestamp": "never"}
    assert reject(bad_all).code == INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID
    assert reject({**bad_all, "uniqueRecipientId": "a"}).code == INVALID_EVENT_TYPE
    assert reject({**bad_all, "uniqueRecipientId": "a", "type": "track"}).code == INVALID_TIMESTAMP
    good_head = {"uniqueRecipientId": "a", "type": "track", "timestamp": TS}
    assert reject(good_head).code == INVALID_NO_DATA_MAPPED


@pytest.mark.parametrize(
    "section",
    [
        {"key_value_pairs": {"a": 1}},
        {"array_data": [{"a": 1}]},
        {"traits": {"a": 1}},
        {"properties": {"a": 1}},
        {"context": {"a": 1}},
    ],
    ids=lambda s: next(iter(s)),
)
def test_any_of_the_five_sections_counts_as_mapped_data(section: dict[str, Any]) -> None:
    row = build_row(payload(**section))
    assert len(row) == 4


def test_reject_is_an_exception_with_code_detail_and_field() -> None:
    error = reject(payload(uniqueRecipientId=""))
    assert isinstance(error, Exception)
    assert error.code == INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID
    assert error.field == "uniqueRecipientId"
    assert str(error).startswith("INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID: ")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.detail, copy.field, str(copy)) == (
        error.code,
        error.detail,
        error.field,
        str(error),
    )


# --- attribute cap ------------------------------------------------------------------------------


def test_default_attribute_cap_is_1000_and_excludes_header_keys() -> None:
    assert DEFAULT_MAX_ATTRIBUTES == 1000
    at_cap = {f"a{i}": i for i in range(1000)}
    assert len(build_row(payload(properties=at_cap))) == 1003
    error = reject(payload(properties={**at_cap, "one_more": 1}))
    assert error.code == EXCEEDS_MAX_PROPERTIES_MAX
    assert "1001" in error.detail
    assert "1000" in error.detail


def test_attribute_cap_is_configurable_and_counts_flat_keys() -> None:
    three = {"a": 1, "b": {"c": 2, "d": [3]}}
    assert len(build_row(payload(properties=three), max_attributes=3)) == 6
    assert reject(payload(properties=three), max_attributes=2).code == EXCEEDS_MAX_PROPERTIES_MAX


def test_attribute_cap_counts_keys_after_collisions_and_audience_handling() -> None:
    # 3 writes of one key are 1 attribute; audience_key is removed before counting.
    p = payload(traits={"x": 1}, properties={"x": 2, "audience_key": "vip", "vip": True})
    assert build_row(p, max_attributes=2) == {**HEAD, "x": 2, "vip": ENTERED}


# --- audiences ----------------------------------------------------------------------------------


def engage_identify(membership: Any, computation_class: Any = "audience") -> dict[str, Any]:
    """An Engage identify payload for audience `vip_users` (context and traits mapped)."""
    return payload(
        type="identify",
        traits={"email": "ann@example.com", "vip_users": membership},
        context={
            "personas": {
                "computation_class": computation_class,
                "computation_key": "vip_users",
                "computation_id": "aud_1",
                "space_id": "spa_1",
            }
        },
    )


def engage_track(membership: Any, audience_key: Any = "vip_users") -> dict[str, Any]:
    """An Engage track payload for audience `vip_users` (properties mapped)."""
    return payload(
        properties={"audience_key": audience_key, "vip_users": membership, "plan": "pro"}
    )


@pytest.mark.parametrize(
    ("membership", "expected"),
    [
        (True, ENTERED),
        (False, EXITED),
        (None, EXITED),
        ("false", EXITED),
        ("FALSE ", EXITED),
        ("true", ENTERED),
        ("", EXITED),
        (1, ENTERED),
        (0, EXITED),
    ],
)
def test_identify_form(membership: Any, expected: str) -> None:
    assert list(build_row(engage_identify(membership)).items()) == [
        ("uniqueRecipient", "ann@example.com"),
        ("eventSource", "identify Event"),
        ("timestamp", TS),
        ("email", "ann@example.com"),
        ("vip_users", expected),
        ("personas.computation_id", "aud_1"),
        ("personas.space_id", "spa_1"),
    ]


@pytest.mark.parametrize("computation_class", ["Audience", "AUDIENCE", "audience"])
def test_identify_form_class_is_case_insensitive(computation_class: str) -> None:
    row = build_row(engage_identify(True, computation_class))
    assert row["vip_users"] == ENTERED
    assert "personas.computation_class" not in row
    assert "personas.computation_key" not in row


@pytest.mark.parametrize(
    ("membership", "expected"),
    [(True, ENTERED), (False, EXITED), ("false", EXITED), ("true", ENTERED), (None, EXITED)],
)
def test_track_form(membership: Any, expected: str) -> None:
    assert items(**engage_track(membership)) == [
        *HEAD.items(),
        ("vip_users", expected),
        ("plan", "pro"),
    ]


@pytest.mark.parametrize(
    "computation_class",
    [5, True, None, {"name": "audience"}, ["audience"], "computed_trait", "audiences", ""],
    ids=repr,
)
def test_identify_form_needs_the_string_audience(computation_class: Any) -> None:
    """A non-string or other computation_class never crashes and leaves the row untouched."""
    row = build_row(engage_identify(True, computation_class))
    assert row["vip_users"] is True
    assert row["personas.computation_key"] == "vip_users"
    assert ENTERED not in row.values()
    assert "undefined" not in row


@pytest.mark.parametrize("audience_key", [5, "", None, True, {"k": "vip_users"}], ids=repr)
def test_track_form_needs_a_non_empty_string_audience_key(audience_key: Any) -> None:
    row = build_row(engage_track(True, audience_key))
    assert row["vip_users"] is True
    assert ENTERED not in row.values()
    assert "undefined" not in row


def test_no_audience_data_adds_no_key() -> None:
    p = payload(traits={"email": "a"}, properties={"plan": "pro"}, context={"ip": "1.2.3.4"})
    assert build_row(p) == {**HEAD, "email": "a", "plan": "pro", "ip": "1.2.3.4"}


def test_membership_key_absent_leaves_row_untouched() -> None:
    identify_without_traits = payload(
        context={"personas": {"computation_class": "audience", "computation_key": "vip"}}
    )
    assert build_row(identify_without_traits) == {
        **HEAD,
        "personas.computation_class": "audience",
        "personas.computation_key": "vip",
    }
    track_without_membership = payload(properties={"audience_key": "vip"})
    assert build_row(track_without_membership) == {**HEAD, "audience_key": "vip"}


def test_keys_are_matched_exactly_not_by_substring() -> None:
    p = payload(
        properties={
            "my_audience_key": "vip",
            "vip": True,
            "meta": {"personas": {"computation_class": "audience", "computation_key": "vip"}},
        }
    )
    assert build_row(p) == {
        **HEAD,
        "my_audience_key": "vip",
        "vip": True,
        "meta.personas.computation_class": "audience",
        "meta.personas.computation_key": "vip",
    }


def test_audience_named_like_a_header_key_is_ignored() -> None:
    p = payload(properties={"audience_key": "timestamp"})
    assert build_row(p) == {**HEAD, "audience_key": "timestamp"}


def test_both_forms_for_one_audience() -> None:
    p = payload(
        type="identify",
        traits={"vip": False},
        properties={"audience_key": "vip"},
        context={"personas": {"computation_class": "audience", "computation_key": "vip"}},
    )
    assert build_row(p) == {**HEAD, "eventSource": "identify Event", "vip": EXITED}


def test_both_forms_for_two_audiences() -> None:
    p = payload(
        traits={"vip_a": True},
        properties={"audience_key": "vip_b", "vip_b": False},
        context={"personas": {"computation_class": "audience", "computation_key": "vip_a"}},
    )
    assert build_row(p) == {**HEAD, "vip_a": ENTERED, "vip_b": EXITED}


# --- destination settings -----------------------------------------------------------------------

GOOD_SETTINGS = {
    "access_key": "AKIAEXAMPLEKEY",
    "secret": "wJalrXUtnFEMI/K7MDENG",
    "region": "us-east-1",
    "access_point_alias": "acme-ap-abc123-s3alias",
    "customer_prefix": "CustomerAcme_Prod_",
}


def test_valid_settings_have_no_problems() -> None:
    assert check_destination_settings(**GOOD_SETTINGS) == []


@pytest.mark.parametrize(
    ("override", "code", "field"),
    [
        ({"access_key": ""}, MISSING_S3_ACCESS_KEY, "access_key"),
        ({"access_key": None}, MISSING_S3_ACCESS_KEY, "access_key"),
        ({"secret": ""}, MISSING_S3_SECRET, "secret"),
        ({"secret": "  "}, MISSING_S3_SECRET, "secret"),
        ({"region": ""}, MISSING_S3_REGION, "region"),
        ({"access_point_alias": None}, MISSING_S3_BUCKET_ACCESS_POINT, "access_point_alias"),
        ({"customer_prefix": ""}, MISSING_CUSTOMER_PREFIX, "customer_prefix"),
        ({"customer_prefix": None}, MISSING_CUSTOMER_PREFIX, "customer_prefix"),
        ({"customer_prefix": "CustomerAcme_Prod"}, INVALID_CUSTOMER_PREFIX, "customer_prefix"),
        ({"customer_prefix": "Acme_ "}, INVALID_CUSTOMER_PREFIX, "customer_prefix"),
        ({"customer_prefix": "customer_org_"}, INVALID_CUSTOMER_PREFIX, "customer_prefix"),
    ],
)
def test_each_settings_check(override: dict[str, Any], code: str, field: str) -> None:
    problems = check_destination_settings(**{**GOOD_SETTINGS, **override})
    assert [(p.code, p.field) for p in problems] == [(code, field)]
    assert isinstance(problems[0], AcousticSettingsError)
    assert str(problems[0]) == f"{code}: {problems[0].detail}"


def test_prefix_messages_say_what_was_received_and_expected() -> None:
    (no_underscore,) = check_destination_settings(
        **{**GOOD_SETTINGS, "customer_prefix": "CustomerAcme"}
    )
    assert "'CustomerAcme'" in no_underscore.detail
    assert "underscore" in no_underscore.detail
    (default,) = check_destination_settings(**{**GOOD_SETTINGS, "customer_prefix": "customer_org_"})
    assert "default" in default.detail


def test_all_problems_at_once_in_segment_order() -> None:
    problems = check_destination_settings(
        access_key="", secret=None, region=" ", access_point_alias="", customer_prefix=""
    )
    assert [p.code for p in problems] == [
        MISSING_S3_ACCESS_KEY,
        MISSING_S3_SECRET,
        MISSING_S3_REGION,
        MISSING_S3_BUCKET_ACCESS_POINT,
        MISSING_CUSTOMER_PREFIX,
    ]
    problems = check_destination_settings(
        access_key="", secret="", region="", access_point_alias="", customer_prefix="customer_org_"
    )
    assert [p.code for p in problems][-1] == INVALID_CUSTOMER_PREFIX
    assert len(problems) == 5


def test_settings_messages_never_echo_secret_values() -> None:
    problems = check_destination_settings(
        access_key="AKIASECRETVALUE1",
        secret="s3cr3t-value-2",
        region="",
        access_point_alias="",
        customer_prefix="nope",
    )
    assert [p.code for p in problems] == [
        MISSING_S3_REGION,
        MISSING_S3_BUCKET_ACCESS_POINT,
        INVALID_CUSTOMER_PREFIX,
    ]
    for problem in problems:
        assert "AKIASECRETVALUE1" not in str(problem)
        assert "s3cr3t-value-2" not in str(problem)


# --- presets ------------------------------------------------------------------------------------


def _coalesce(primary: str, fallback: str) -> dict[str, Any]:
    return {
        "@if": {
            "exists": {"@path": primary},
            "then": {"@path": primary},
            "else": {"@path": fallback},
        }
    }


def test_presets_mirror_segment() -> None:
    assert TRACK_TRIGGER == 'type = "track"'
    assert IDENTIFY_TRIGGER == 'type = "identify"'
    track, identify = TRACK_PRESET, IDENTIFY_PRESET
    assert track == {
        "uniqueRecipientId": _coalesce("$.properties.email", "$.context.traits.email"),
        "type": {"@path": "$.type"},
        "timestamp": {"@path": "$.timestamp"},
    }
    assert identify == {
        "uniqueRecipientId": _coalesce("$.traits.email", "$.context.traits.email"),
        "type": {"@path": "$.type"},
        "timestamp": {"@path": "$.timestamp"},
    }


def test_default_presets_add_the_sections() -> None:
    sections = {
        "properties": {"@path": "$.properties"},
        "traits": {"@path": "$.traits"},
        "context": {"@path": "$.context"},
    }
    track, identify = TRACK_DEFAULT, IDENTIFY_DEFAULT
    assert track == {**TRACK_PRESET, **sections}
    assert identify == {**IDENTIFY_PRESET, **sections}
    assert TRACK_DEFAULT["uniqueRecipientId"] is not TRACK_PRESET["uniqueRecipientId"]


# --- any JSON in, a row of scalars or a reject out ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)
keys = st.sampled_from(["a", "b", "vip", "audience_key", "timestamp", "a.b", ""]) | st.text(
    max_size=6
)
objects = st.dictionaries(keys, json_values, max_size=5)
audience_track = st.fixed_dictionaries({"audience_key": st.just("vip"), "vip": json_values})
audience_identify = st.fixed_dictionaries(
    {
        "personas": st.fixed_dictionaries(
            {
                "computation_class": st.just("audience") | json_values,
                "computation_key": st.just("vip") | json_values,
            }
        )
    }
)
# Well-formed headers, sections that are mostly objects: exercises flattening and audiences.
well_formed = st.fixed_dictionaries(
    {
        "uniqueRecipientId": st.sampled_from(["ann@example.com", 7]),
        "type": st.sampled_from(["track", "identify"]),
        "timestamp": st.sampled_from([TS, "2024-01-02", 1704191443123, 1.5]),
    },
    optional={
        "key_value_pairs": objects | json_values,
        "array_data": st.lists(objects | json_values, max_size=4) | json_values,
        "traits": objects | st.fixed_dictionaries({"vip": json_values}),
        "properties": objects | audience_track | json_values,
        "context": objects | audience_identify,
    },
)
# Anything may be missing or of any type.
anything = st.fixed_dictionaries(
    {},
    optional={name: json_values for name in ("uniqueRecipientId", "type", "timestamp", *SECTIONS)},
)
payloads = well_formed | anything
SCALARS = (str, int, float, bool, type(None))
# Generation and timing vary on shared CI machines; the property, not the speed, is under test.
FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def _assert_row_or_reject(p: Any, **limits: Any) -> None:
    try:
        stats = build_row_with_stats(p, **limits)
    except AcousticReject as error:
        assert error.code in PAYLOAD_CODES
        assert str(error).startswith(error.code + ": ")
        return
    row = stats.row
    assert isinstance(row, dict)
    assert tuple(row)[:3] == HEADER_KEYS
    assert all(type(key) is str for key in row)
    assert all(isinstance(value, SCALARS) for value in row.values())
    assert "undefined" not in row or _mentions_key(p, "undefined")
    assert all(isinstance(key, str) for key in stats.collisions)


def _mentions_key(value: Any, key: str) -> bool:
    """True when `key` is a key anywhere inside `value`."""
    if isinstance(value, dict):
        return key in value or any(_mentions_key(v, key) for v in value.values())
    if isinstance(value, list):
        return any(_mentions_key(v, key) for v in value)
    return False


@settings(max_examples=400, **FUZZ)
@given(payloads)
def test_random_payloads_give_a_scalar_row_or_a_reject(p: dict[str, Any]) -> None:
    _assert_row_or_reject(p)


@settings(max_examples=200, **FUZZ)
@given(payloads, st.integers(0, 4), st.integers(0, 8))
def test_random_payloads_with_small_limits(p: dict[str, Any], depth: int, cap: int) -> None:
    _assert_row_or_reject(p, max_depth=depth, max_attributes=cap)


@settings(max_examples=200, **FUZZ)
@given(json_values)
def test_random_json_as_payload(p: Any) -> None:
    _assert_row_or_reject(p)


# --- the one-pass flatten agrees with the collision-recording walk ------------------------------


class _Text(str):
    """A str subclass, as a key or a value."""


class _Section(dict):
    """A dict subclass, as a section or a nested object."""


exotic = (
    st.builds(_Text, st.text(max_size=3))
    | st.tuples(st.integers(), st.text(max_size=2))
    | st.builds(_Section, st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
    | st.just({1, 2})
)
mixed_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4) | exotic,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(keys | st.integers(0, 3) | st.builds(_Text, keys), children, max_size=4)
    ),
    max_leaves=20,
)
mixed_payloads = st.fixed_dictionaries(
    {"uniqueRecipientId": st.just("ann@example.com"), "type": st.just("track")},
    optional={
        "timestamp": st.just(TS),
        "array_data": st.lists(objects | mixed_values, max_size=3),
        "traits": objects | st.builds(_Section, objects),
        "properties": st.dictionaries(keys | st.integers(0, 3), mixed_values, max_size=5),
        "context": objects | audience_identify,
    },
)


def _outcome(p: Any, **limits: Any) -> Any:
    """The row (as ordered pairs) and collisions, or the reject's code, detail and field."""
    try:
        stats = build_row_with_stats(p, **limits)
    except AcousticReject as error:
        return ("reject", error.code, error.detail, error.field)
    return ("row", list(stats.row.items()), stats.collisions)


def _outcome_of_careful_walk(p: Any, **limits: Any) -> Any:
    """`_outcome` with the one-pass flatten switched off, so only the careful walk runs."""

    def refuse(*args: Any) -> int:
        raise acoustic._NotPlainJson

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(acoustic, "_flatten_top", refuse)
        return _outcome(p, **limits)


@settings(max_examples=400, **FUZZ)
@given(payloads | mixed_payloads, st.integers(0, 4))
def test_one_pass_flatten_matches_the_careful_walk(p: dict[str, Any], depth: int) -> None:
    for limits in ({}, {"max_depth": depth}):
        assert _outcome(p, **limits) == _outcome_of_careful_walk(p, **limits)


def test_plain_json_without_repeated_keys_is_flattened_in_one_pass() -> None:
    """The common case never needs the careful walk (a performance guarantee)."""
    p = payload(
        properties={"a": 1, "b": [1.5, {"c": None}], "d": {"e": True}},
        context={"app": {"name": "shop"}, "ip": "198.51.100.1"},
    )

    def forbidden(*args: Any) -> None:
        raise AssertionError("the careful walk ran")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(acoustic, "_walk", forbidden)
        row = build_row(p)
    assert row == {
        **HEAD,
        "a": 1,
        "b.0": 1.5,
        "b.1.c": None,
        "d.e": True,
        "app.name": "shop",
        "ip": "198.51.100.1",
    }


def test_keys_and_values_of_other_types_are_flattened_like_text() -> None:
    """Integer keys, tuples and str/dict subclasses take the careful walk and come out as before."""
    p = payload(properties={1: "one", "t": ("x", 2), "s": _Text("v")}, traits=_Section(a=1))
    stats = build_row_with_stats(p)
    assert list(stats.row.items()) == [
        *HEAD.items(),
        ("a", 1),
        ("1", "one"),
        ("t.0", "x"),
        ("t.1", 2),
        ("s", "v"),
    ]
    assert all(type(key) is str for key in stats.row)
