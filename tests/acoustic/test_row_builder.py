"""Contract of `acoustic_pipelines.acoustic.row_builder`: the mapping and the row in one step.

`compile_row_builder(mapping)(event)` returns or raises exactly what
`build_row_with_stats(mapping(event))` returns or raises — the same row (keys, order, values and
their types), the same collisions, the same reject code, detail and field, the same mapping
error — on Segment's conformance vectors, on generated events through the Acoustic presets and
on the cases the fused step hands back to the plain way (integral floats, `undefined` inside a
built section, key collisions, deep nesting, wrong section shapes, rejects).
"""

from __future__ import annotations

import gc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acoustic_pipelines.acoustic.row_builder import compile_row_builder
from acoustic_pipelines.acoustic.rows import (
    IDENTIFY_DEFAULT,
    TRACK_DEFAULT,
    AcousticReject,
    build_row_with_stats,
)
from acoustic_pipelines.actions.mappings.kit import MappingError, compile_mapping
from tests.conformance import vector_params

VECTORS, VECTOR_PARAMS = vector_params("mapping_vectors.jsonl")


def outcome(build: Any, event: Any) -> Any:
    """What a builder gives for one event, comparable with `==` (types of values included)."""
    try:
        flat = build(event)
    except AcousticReject as exc:
        return ("reject", exc.code, exc.detail, exc.field)
    except MappingError as exc:
        return ("mapping error", type(exc).__name__, str(exc))
    return (
        "row",
        [(key, type(value).__name__, repr(value)) for key, value in flat.row.items()],
        flat.collisions,
    )


def assert_same(mapping: Any, event: Any, **limits: int) -> Any:
    """The fused and the plain way agree on this event; the outcome."""
    try:
        compiled = compile_mapping(mapping)
    except MappingError:
        return ("invalid mapping",)  # refused before any event: nothing to compare
    fused = compile_row_builder(compiled, **limits)

    def plain(item: Any) -> Any:
        return build_row_with_stats(compiled(item), **limits)

    expected = outcome(plain, event)
    assert outcome(fused, event) == expected
    return expected


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_conformance_vectors_give_the_same_outcome(conformance_dir: Any, vector: Any) -> None:
    """Every mapping vector of Segment's, as a mapping of the payload and as its sections."""
    if vector["kind"] != "transform":
        pytest.skip("not a mapping vector")
    assert_same(vector["mapping"], vector["event"])
    sectioned = {
        "uniqueRecipientId": {"@path": "$.properties.email"},
        "type": {"@path": "$.type"},
        "timestamp": {"@path": "$.timestamp"},
        "properties": vector["mapping"],
    }
    assert_same(sectioned, vector["event"])


def event_with(**fields: Any) -> dict[str, Any]:
    """A track event with a recipient, plus the given top-level fields."""
    event: dict[str, Any] = {
        "type": "track",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "properties": {"email": "a@example.com"},
    }
    event.update(fields)
    return event


CASES = {
    "integral floats become integers": event_with(
        properties={"email": "a@example.com", "n": 14.0, "x": [1.0, 2.5], "big": 1e300, "neg": -0.0}
    ),
    "a header key written by a section": event_with(
        properties={"email": "a@example.com", "timestamp": "other"}
    ),
    "a key written by two sections": event_with(traits={"email": "b@example.com"}),
    "a dotted key colliding with a nested one": event_with(
        properties={"email": "a@example.com", "a.b": 1, "a": {"b": 2}}
    ),
    "nested too deep": event_with(context={"a": {"b": {"c": {"d": {"e": {"f": {}}}}}}}),
    "a section that is not an object": event_with(traits=["x"]),
    "no recipient": event_with(properties={"name": "x"}),
    "an integral float recipient": event_with(properties={"email": 12.0}),
    "a bad timestamp": event_with(timestamp="yesterday"),
    "an epoch timestamp": event_with(timestamp=1700000000000.0),
    "an audience": event_with(
        context={"personas": {"computation_class": "audience", "computation_key": "vip"}},
        traits={"vip": True},
    ),
    "empty sections": event_with(properties={"email": "a@example.com", "o": {}, "l": []}),
    "nulls": event_with(properties={"email": "a@example.com", "n": None}, context=None),
    "not an object": ["track"],
}


@pytest.mark.parametrize("event", list(CASES.values()), ids=list(CASES))
@pytest.mark.parametrize("mapping", [TRACK_DEFAULT, IDENTIFY_DEFAULT], ids=["track", "identify"])
def test_edge_cases_give_the_same_outcome(mapping: dict[str, Any], event: Any) -> None:
    """The cases the fused step must hand to the plain way, and the ones it must get right."""
    assert_same(mapping, event)


def test_limits_are_the_plain_ways() -> None:
    """max_depth and max_attributes are applied as `build_row_with_stats` applies them."""
    event = event_with(properties={"email": "a@example.com", "a": {"b": 1}, "c": 2})
    assert assert_same(TRACK_DEFAULT, event, max_depth=0)[1] == "NESTING_DEPTH_EXCEEDED"
    assert assert_same(TRACK_DEFAULT, event, max_attributes=2)[1] == "EXCEEDS_MAX_PROPERTIES_MAX"
    assert assert_same(TRACK_DEFAULT, event, max_attributes=3)[0] == "row"


def test_a_built_section_with_undefined_keys() -> None:
    """A section the mapping builds holds `undefined` for a missing path: left out of the row."""
    mapping = {
        "uniqueRecipientId": {"@path": "$.properties.email"},
        "type": {"@path": "$.type"},
        "timestamp": {"@path": "$.timestamp"},
        "key_value_pairs": {"missing": {"@path": "$.nope"}, "n": {"@path": "$.properties.n"}},
        "array_data": [{"@path": "$.nope"}, {"a": 1.0}],
    }
    result = assert_same(mapping, event_with(properties={"email": "a@example.com", "n": 3.0}))
    assert result[0] == "row"


def nested(depth: int) -> dict[str, Any]:
    """An object nested `depth` levels deep."""
    node: dict[str, Any] = {}
    for _ in range(depth):
        node = {"a": node}
    return node


def test_a_rejected_header_is_the_plain_ways_outcome() -> None:
    """Without a recipient the fused step rejects only where the plain way reaches the same check.

    The plain way resolves and walks every section first: a directive that fails there, or a
    section too deep for its walk, decides the outcome before the header does.
    """
    no_recipient = event_with(properties={"name": "x"}, context={"ip": "1.2.3.4"})
    assert assert_same(TRACK_DEFAULT, no_recipient)[1] == "INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID"
    failing = {**TRACK_DEFAULT, "key_value_pairs": {"x": {"@path": {"@path": "$.n"}}}}
    result = assert_same(failing, {**no_recipient, "n": 3})
    assert result[0] == "mapping error"
    deep = {**no_recipient, "context": nested(600)}
    assert assert_same(TRACK_DEFAULT, deep)[0] == "mapping error"
    shallow_enough = {**no_recipient, "context": nested(200)}
    assert assert_same(TRACK_DEFAULT, shallow_enough)[0] == "reject"


@pytest.mark.parametrize(
    "event",
    [event_with(properties={"name": "x"}), event_with(properties={"email": "a@x.io"}, traits=[1])],
    ids=["header rejected by the fused step", "rejected the plain way"],
)
def test_a_rejected_event_leaves_no_reference_cycle(event: dict[str, Any]) -> None:
    """A reject is freed at once: with the cyclic collector paused (as the mapping loop runs),
    rejected events must not pile up in cycles waiting for it."""
    build = compile_row_builder(compile_mapping(TRACK_DEFAULT))
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            with pytest.raises(AcousticReject):
                build(event)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_other_mapping_shapes_use_the_plain_way() -> None:
    """A mapping with keys the row does not read, or one directive at the top, still agrees."""
    event = event_with()
    assert_same({**TRACK_DEFAULT, "extra": {"@path": "$.nope"}}, event)
    assert_same({"@path": "$.properties"}, event)
    assert_same({"uniqueRecipientId": "x@example.com", "type": "track"}, event)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, 14.0, -3.0, 2.0**53, 2.0**54]),
    st.text(max_size=5),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["a", "b", "email", "0", "a.b", "timestamp"]), inner, max_size=3
        )
    ),
    max_leaves=12,
)
sections = st.one_of(
    st.none(),
    json_values,
    st.dictionaries(st.sampled_from(["email", "a", "b"]), json_values, max_size=4),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_type=st.sampled_from(["track", "identify", "", 3]),
    timestamp=st.one_of(st.just("2026-11-20T10:00:00Z"), json_scalars),
    properties=sections,
    traits=sections,
    context=sections,
)
def test_generated_events_give_the_same_outcome(
    event_type: Any, timestamp: Any, properties: Any, traits: Any, context: Any
) -> None:
    """Any JSON event through both presets: the fused and the plain way agree."""
    event = {"type": event_type, "timestamp": timestamp}
    for name, value in (("properties", properties), ("traits", traits), ("context", context)):
        if value is not None:
            event[name] = value
    assert_same(TRACK_DEFAULT, event)
    assert_same(IDENTIFY_DEFAULT, event)


REJECTED_HEADERS = {
    "a section whose directive fails": (
        {**TRACK_DEFAULT, "properties": {"@case": {"operator": "title", "value": "x"}}},
        event_with(properties={"name": "no email"}),
    ),
    "a section built with undefined keys": (
        {**TRACK_DEFAULT, "key_value_pairs": {"missing": {"@path": "$.nope"}}},
        event_with(properties={"name": "no email"}),
    ),
    "a section too deep for Python's recursion": (
        TRACK_DEFAULT,
        event_with(properties={"name": "no email", "deep": nested(600)}),
    ),
    "an integer orjson cannot write": (
        TRACK_DEFAULT,
        event_with(properties={"name": "no email", "n": 2**70}),
    ),
    "a scalar section": (TRACK_DEFAULT, event_with(properties="text", traits=3.0)),
    "a bad type and a bad timestamp": (
        TRACK_DEFAULT,
        event_with(type="", timestamp=12.0, context={"traits": {"email": 7}}),
    ),
}


@pytest.mark.parametrize(
    ("mapping", "event"), list(REJECTED_HEADERS.values()), ids=list(REJECTED_HEADERS)
)
def test_a_rejected_header_decides_as_the_plain_way(mapping: Any, event: Any) -> None:
    """The fused step raises a header reject itself only when the plain way raises that very
    reject: a section that fails to resolve (or may, in ``to_result``) decides plainly."""
    assert_same(mapping, event)
