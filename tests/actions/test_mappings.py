"""Contract of `acoustic_pipelines.actions.mappings.kit`, Segment's mapping directives in Python.

- Every conformance vector (Segment's own results, ../shared/conformance) is reproduced:
  outputs compare as unordered maps of JavaScript values (10 equals 10.0, strings such as
  `@json` output must match exactly); an `undefined` array element comes back as None at
  each position listed in `undefined_at`; validation errors carry Segment's messages word
  for word and in order; runtime and input errors fail on the same cases.
- `compile_mapping` validates before seeing any event, and a compiled mapping gives the
  same result as `transform` for every event without compiling or validating again.
- Edge cases of segment.md section 5 give the values the reference describes.
- Any JSON mapping on any JSON event gives a plain JSON result or one of the three
  documented errors (MappingValidationError, MappingRuntimeError, MappingInputError).
- A result is the converted deep copy it always was, except that the event's unchanged
  objects and arrays are shared rather than copied; constants and built objects are new for
  every call, so changing one result never changes the next.
"""

from __future__ import annotations

import json
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from acoustic_pipelines.actions.js_values import UNDEFINED
from acoustic_pipelines.actions.mappings import kit as mapping_kit
from acoustic_pipelines.actions.mappings import operations as mapping_operations
from acoustic_pipelines.actions.mappings.kit import (
    MappingInputError,
    MappingRuntimeError,
    MappingValidationError,
    compile_mapping,
    transform,
)
from acoustic_pipelines.actions.mappings.operations import to_result
from tests.conformance import CONFORMANCE, js_value, vector_params

DOCUMENTED_ERRORS = (MappingValidationError, MappingRuntimeError, MappingInputError)
VECTORS, VECTOR_PARAMS = vector_params("mapping_vectors.jsonl")


def _at_pointer(document: Any, pointer: str) -> Any:
    """Follow a JSON Pointer such as "/ids/1" into a document."""
    value = document
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        value = value[int(token)] if isinstance(value, list) else value[token]
    return value


def _is_plain_json(value: Any) -> bool:
    """True when a value holds only JSON types (no `undefined` sentinel or other objects)."""
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list):
        return all(_is_plain_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_plain_json(item) for key, item in value.items())
    return False


# ---------------------------------------------------------------------------------------
# Conformance vectors


@pytest.mark.parametrize("vector", VECTOR_PARAMS)
def test_conformance_vector(conformance_dir: Path, vector: dict[str, Any]) -> None:
    """Each vector gives Segment's output, or fails the way Segment failed."""
    assert (conformance_dir / "mapping_vectors.jsonl").is_file()
    expected = vector["expected"]
    if "output" in expected:
        result = transform(vector["mapping"], vector["event"])
        assert js_value(result) == js_value(expected["output"])
        for pointer in expected.get("undefined_at", []):
            assert _at_pointer(result, pointer) is None
        return
    kind = expected["error_kind"]
    if kind == "validation":
        with pytest.raises(MappingValidationError) as raised:
            transform(vector["mapping"], vector["event"])
        assert raised.value.errors == expected["errors"]
        assert str(raised.value) == expected["error"]
    elif kind == "input":
        with pytest.raises(MappingInputError, match=f"^{expected['error']}$"):
            transform(vector["mapping"], vector["event"])
    else:
        with pytest.raises(MappingRuntimeError):
            transform(vector["mapping"], vector["event"])


# ---------------------------------------------------------------------------------------
# Compile once, run many


def _outcome(run: Any, event: Any) -> tuple[str, Any]:
    """Result of one call, or the class of the documented error it raised."""
    try:
        return ("result", js_value(run(event)))
    except DOCUMENTED_ERRORS as error:
        return ("error", type(error).__name__)


@pytest.mark.skipif(not VECTORS, reason=f"conformance vectors not found in {CONFORMANCE}")
def test_compiled_mapping_matches_transform_on_every_event() -> None:
    """One compiled mapping applied to many events agrees with transform() on each of them."""
    mappings = {json.dumps(vector["mapping"]): vector["mapping"] for vector in VECTORS}
    events = [vector["event"] for vector in VECTORS if isinstance(vector["event"], dict)]
    for mapping in mappings.values():
        try:
            compiled = compile_mapping(mapping)
        except MappingValidationError:
            continue
        for event in events:
            assert _outcome(compiled, event) == _outcome(partial(transform, mapping), event)


def test_compile_mapping_refuses_an_invalid_mapping_before_any_event() -> None:
    """Validation happens in compile_mapping, with every problem in Segment's words."""
    mapping = {"a": {"@path": 1}, "b": {"@template": 2}, "c": {"x": {"@case": "y"}}}
    with pytest.raises(MappingValidationError) as raised:
        compile_mapping(mapping)
    assert raised.value.errors == [
        "/a/@path should be a string or a mapping directive but it is a number.",
        "/b/@template should be a string or a mapping directive but it is a number.",
        "/c/x/@case should be an object but it is a string.",
    ]


def test_compiled_mapping_does_not_compile_validate_or_split_paths_per_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After compile_mapping, resolving events needs no compiling, validating or path splitting."""
    mapping = {
        "id": {"@path": "$.userId"},
        "email": {
            "@if": {
                "exists": {"@path": "$.properties.email"},
                "then": {"@case": {"operator": "lower", "value": {"@path": "$.properties.email"}}},
                "else": {"@path": "$.context.traits.email"},
            }
        },
        "label": {"@template": "{{event}} by {{userId}}"},
        "items": {"@arrayPath": ["$.properties.products", {"sku": {"@path": "$.sku"}}]},
    }
    compiled = compile_mapping(mapping)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the mapping was walked again while resolving an event")

    for name in ("_compile", "_compile_root", "validation_errors", "split_directive_path"):
        monkeypatch.setattr(mapping_kit, name, forbidden)
    events = [
        {
            "userId": f"u{index}",
            "event": "Order Completed",
            "properties": {"email": f"User{index}@Example.COM", "products": [{"sku": "A"}]},
        }
        for index in range(50)
    ]
    results = [compiled(event) for event in events]
    assert results[7] == {
        "id": "u7",
        "email": "user7@example.com",
        "label": "Order Completed by u7",
        "items": [{"sku": "A"}],
    }


def test_transform_compiles_each_distinct_mapping_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """transform() keeps compiled mappings, keyed by the mapping's JSON text."""
    calls: list[Any] = []
    real_compile = mapping_kit.compile_mapping

    def counting_compile(mapping: Any) -> Any:
        calls.append(mapping)
        return real_compile(mapping)

    monkeypatch.setattr(mapping_kit, "compile_mapping", counting_compile)
    probe = uuid.uuid4().hex  # a mapping no earlier test has cached
    mapping = {"cache-probe": {"@path": "$.userId"}, "probe": probe}
    for index in range(10):
        assert transform(mapping, {"userId": index}) == {"cache-probe": index, "probe": probe}
    assert len(calls) == 1


# ---------------------------------------------------------------------------------------
# Edge cases from segment.md section 5 (expected values written from the text)

EVENT = {
    "userId": "u1",
    "$": "dollar",
    "s": "a🚀",
    "properties": {
        "n": None,
        "zero": 0,
        "str0": "0",
        "my key": "spaced",
        "big": 1e21,
        "tiny": 1e-7,
        "list": [1, [2, 3], None],
        "obj": {"k": "v"},
        "order": {"b": 1, "10": "ten", "2": "two"},
        "nulls": {"a": None, "b": {"c": None, "d": 1}, "e": [None]},
        "items": [{"sku": "A"}, 5],
        "single": {"sku": "S"},
    },
}

EDGE_CASES = [
    ("path-through-null-keeps-null", {"v": {"@path": "$.properties.n.x"}}, {"v": None}),
    ("path-through-zero-gives-zero", {"v": {"@path": "$.properties.zero.x"}}, {"v": 0}),
    ("path-missing-removes-field", {"v": {"@path": "$.properties.nope"}}, {}),
    ("path-dollar-alone-is-a-key", {"v": {"@path": "$"}}, {"v": "dollar"}),
    ("path-quoted-key", {"v": {"@path": "$.properties['my key']"}}, {"v": "spaced"}),
    ("path-string-length-utf16", {"v": {"@path": "$.s.length"}}, {"v": 3}),
    ("if-blank-string-zero-is-filled", {"v": {"@if": {"blank": "0", "then": "y"}}}, {"v": "y"}),
    (
        "if-blank-zero-is-blank",
        {"v": {"@if": {"blank": {"@path": "$.properties.zero"}, "then": "y", "else": "n"}}},
        {"v": "n"},
    ),
    ("if-falsy-else-removes-field", {"v": {"@if": {"exists": {"@path": "$.x"}, "else": 0}}}, {}),
    ("if-null-then-is-kept", {"v": {"@if": {"exists": "x", "then": None}}}, {"v": None}),
    ("template-missing-is-empty", {"v": {"@template": "[{{nope}}]"}}, {"v": "[]"}),
    ("template-array-joined", {"v": {"@template": "{{properties.list}}"}}, {"v": "1,2,3,"}),
    ("template-object", {"v": {"@template": "{{properties.obj}}"}}, {"v": "[object Object]"}),
    (
        "template-js-numbers",
        {"v": {"@template": "{{properties.big}} {{properties.tiny}}"}},
        {"v": "1e+21 1e-7"},
    ),
    ("template-keeps-dollar-prefix", {"v": {"@template": "{{$.userId}}"}}, {"v": ""}),
    (
        "replace-number-stringified",
        {
            "v": {
                "@replace": {
                    "value": {"@path": "$.properties.zero"},
                    "pattern": "0",
                    "replacement": "zero",
                }
            }
        },
        {"v": "zero"},
    ),
    (
        "replace-missing-value-gives-empty",
        {"v": {"@replace": {"value": {"@path": "$.nope"}, "pattern": "a"}}},
        {"v": ""},
    ),
    (
        "merge-uppercase-left-acts-right",
        {"v": {"@merge": {"objects": [{"a": 1}, {"a": 2}], "direction": "LEFT"}}},
        {"v": {"a": 2}},
    ),
    (
        "merge-string-entry-spread",
        {"v": {"@merge": {"objects": [{"@path": "$.userId"}], "direction": "right"}}},
        {"v": {"0": "u", "1": "1"}},
    ),
    (
        "flatten-missing-value-is-empty-object",
        {"v": {"@flatten": {"value": {"@path": "$.nope"}, "separator": "."}}},
        {"v": {}},
    ),
    (
        "flatten-primitive-under-empty-key",
        {"v": {"@flatten": {"value": {"@path": "$.userId"}, "separator": "."}}},
        {"v": {"": "u1"}},
    ),
    (
        "json-encode-js-key-order",
        {"v": {"@json": {"mode": "encode", "value": {"@path": "$.properties.order"}}}},
        {"v": '{"2":"two","10":"ten","b":1}'},
    ),
    (
        "json-encode-missing-removes-field",
        {"v": {"@json": {"mode": "encode", "value": {"@path": "$.nope"}}}},
        {},
    ),
    (
        "json-decode-invalid-keeps-text",
        {"v": {"@json": {"mode": "decode", "value": {"@path": "$.userId"}}}},
        {"v": "u1"},
    ),
    (
        "exclude-when-null-cleans-objects-not-arrays",
        {"v": {"@excludeWhenNull": {"@path": "$.properties.nulls"}}},
        {"v": {"b": {"d": 1}, "e": [None]}},
    ),
    (
        "array-path-wraps-object-and-maps-primitives-to-empty",
        {
            "one": {"@arrayPath": ["$.properties.single", {"id": {"@path": "$.sku"}}]},
            "many": {"@arrayPath": ["$.properties.items", {"id": {"@path": "$.sku"}}]},
        },
        {"one": [{"id": "S"}], "many": [{"id": "A"}, {}]},
    ),
    (
        "array-path-null-root-kept",
        {"v": {"@arrayPath": ["$.properties.n", {"id": {"@path": "$.sku"}}]}},
        {"v": None},
    ),
    (
        "case-non-string-unchanged-even-with-bad-operator",
        {"v": {"@case": {"operator": "title", "value": {"@path": "$.properties.zero"}}}},
        {"v": 0},
    ),
    ("literal-false-kept", {"v": {"@literal": False}}, {"v": False}),
    (
        "undefined-in-array-becomes-none",
        {"v": [{"@path": "$.userId"}, {"@path": "$.nope"}]},
        {"v": ["u1", None]},
    ),
]


@pytest.mark.parametrize(
    ("mapping", "expected"), [pytest.param(m, e, id=name) for name, m, e in EDGE_CASES]
)
def test_section_5_edge_case(mapping: Any, expected: Any) -> None:
    """A §5 edge case resolves to the value the reference describes."""
    assert js_value(transform(mapping, EVENT)) == js_value(expected)


def test_unknown_directive_inside_an_array_fails_only_when_resolved() -> None:
    """Arrays are not validated up front: the unknown directive is a runtime error."""
    compiled = compile_mapping({"arr": [{"@nope": 1}]})
    with pytest.raises(MappingRuntimeError, match="@nope is not a valid directive"):
        compiled(EVENT)


def test_if_with_falsy_raw_condition_is_a_runtime_error() -> None:
    """`exists: false` passes validation but fails when resolved."""
    compiled = compile_mapping({"v": {"@if": {"exists": False, "then": "yes"}}})
    with pytest.raises(MappingRuntimeError, match="@if"):
        compiled(EVENT)


@pytest.mark.parametrize("event", [[1], "track", None, 5])
def test_event_must_be_an_object(event: Any) -> None:
    """Events other than JSON objects are refused with Segment's message."""
    with pytest.raises(MappingInputError, match="^data must be an object, got "):
        transform({"v": {"@path": "$.userId"}}, event)


# ---------------------------------------------------------------------------------------
# Any JSON mapping, any JSON event

ROOT_KEY = "__segment_internal_directive"
DIRECTIVES = [
    "@path",
    "@if",
    "@template",
    "@literal",
    "@arrayPath",
    "@case",
    "@replace",
    "@merge",
    "@transform",
    "@flatten",
    "@json",
    "@liquid",
    "@excludeWhenNull",
    "@nope",
]
OPTION_NAMES = [
    "exists",
    "blank",
    "then",
    "else",
    "operator",
    "value",
    "pattern",
    "replacement",
    "pattern2",
    "replacement2",
    "global",
    "ignorecase",
    "objects",
    "direction",
    "apply",
    "mapping",
    "separator",
    "omitArrays",
    "mode",
    "_metadata",
]
TEXTS = [
    "$.a",
    "$.a.b",
    "a[0]",
    "$.list.length",
    "",
    "$.",
    "['a']",
    "lower",
    "upper",
    "left",
    "right",
    "encode",
    "decode",
    ".",
    "{{a}}",
    "{{{a}}}",
    "{{ b.c }}",
    '{"a":1}',
    "{{ a | upcase }}",
    "{% if a %}x{% endif %}",
    "{% for x in a %}{% endfor %}",
    "{{ a | sort }}",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(TEXTS)
)
keys = st.sampled_from(["a", "b", "c", "list", "0", "10", "$"]) | st.text(max_size=4)
events = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


def _mapping_parts(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Containers, directive objects and directive options built from smaller mappings."""
    options = st.dictionaries(st.sampled_from(OPTION_NAMES), inner, max_size=5)
    directive = st.builds(
        lambda name, value: {name: value}, st.sampled_from(DIRECTIVES), inner | options
    )
    return (
        st.lists(inner, max_size=3)
        | st.dictionaries(keys | st.sampled_from([*DIRECTIVES, ROOT_KEY]), inner, max_size=3)
        | directive
    )


mappings = st.recursive(scalars, _mapping_parts, max_leaves=25)


@given(mapping=mappings, event=st.dictionaries(keys, events, max_size=5) | events)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_mapping_and_event_give_json_or_a_documented_error(
    mapping: Any, event: Any
) -> None:
    """transform never raises anything but the three documented errors, nor leaks undefined."""
    try:
        result = transform(mapping, event)
    except DOCUMENTED_ERRORS:
        return
    assert _is_plain_json(result)


# ---------------------------------------------------------------------------------------
# Results are not deep copies: what is shared, what is not


def _typed(value: Any) -> Any:
    """A value with every scalar tagged by its exact type, so 14 and 14.0 differ."""
    if isinstance(value, dict):
        return ("dict", [(key, _typed(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(item) for item in value])
    return (type(value).__name__, repr(value))


def _deep_result(value: Any) -> Any:
    """What to_result gave before it learned to share: a full converted copy."""
    if value is UNDEFINED:
        return None
    if type(value) is dict:
        return {key: _deep_result(item) for key, item in value.items() if item is not UNDEFINED}
    if type(value) is list:
        return [_deep_result(item) for item in value]
    if type(value) is float and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


tricky_scalars = (
    scalars
    | st.just(UNDEFINED)
    | st.sampled_from([14.0, -0.0, 2.0**53, 2.0**53 + 2, 1e16, 1e21, 0.5, "v1.0,", '1.0}"', "x.0]"])
    | st.integers(min_value=-(2**70), max_value=2**70).map(float)
)
result_values = st.recursive(
    tricky_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=30,
)


@given(value=result_values)
@settings(max_examples=500, deadline=None)
def test_to_result_equals_a_converted_deep_copy(value: Any) -> None:
    """Copy on write changes nothing about the value: same keys, order, types and numbers."""
    assert _typed(to_result(value)) == _typed(_deep_result(value))


def test_the_fast_unchanged_check_still_applies_to_this_orjson() -> None:
    """orjson still writes integral floats with ".0"; otherwise results would be walked slowly."""
    assert mapping_operations._ORJSON_WRITES_POINT_ZERO


def test_result_shares_event_sections_but_converts_integral_floats() -> None:
    """`@path` sections come back as the event's own dicts unless something in them changes."""
    event = {"context": {"app": {"name": "shop"}}, "properties": {"price": 14.0, "tags": ["a"]}}
    result = compile_mapping(
        {"context": {"@path": "$.context"}, "properties": {"@path": "$.properties"}}
    )(event)
    assert result["context"] is event["context"]
    assert result["properties"] == {"price": 14, "tags": ["a"]}
    assert type(result["properties"]["price"]) is int
    assert type(event["properties"]["price"]) is float  # the event is never changed
    assert result["properties"]["tags"] is event["properties"]["tags"]  # unchanged part shared


def test_changing_a_result_never_changes_the_next_result() -> None:
    """Constants and built objects are new for every call; only the event's parts are shared."""
    compiled = compile_mapping(
        {
            "fixed": {"list": [1, {"k": "v"}]},
            "built": {"id": {"@path": "$.userId"}, "tags": ["x", {"@path": "$.userId"}]},
            "root": {"@literal": {"a": [1]}},
        }
    )
    first = compiled({"userId": "u1"})
    first["fixed"]["list"].append("junk")
    first["built"]["tags"].clear()
    first["root"]["a"][0] = "junk"
    assert compiled({"userId": "u2"}) == {
        "fixed": {"list": [1, {"k": "v"}]},
        "built": {"id": "u2", "tags": ["x", "u2"]},
        "root": {"a": [1]},
    }


@given(event=st.dictionaries(keys, events, max_size=5))
@settings(max_examples=200, deadline=None)
def test_if_exists_then_the_same_path_reads_it_once_with_the_same_result(event: Any) -> None:
    """The shortcut for `@if exists P then P` agrees with the general `@if`."""
    for path in ("$.a", "$.a.b", "$.list"):
        fast = {"v": {"@if": {"exists": {"@path": path}, "then": {"@path": path}, "else": "e"}}}
        general = {
            "v": {
                "@if": {
                    "exists": {"@path": path},
                    "then": {"@path": path, "_metadata": {}},
                    "else": "e",
                }
            }
        }
        assert _typed(transform(fast, event)) == _typed(transform(general, event))


@given(event=st.dictionaries(keys, events, max_size=5))
@settings(max_examples=200, deadline=None)
@example(event={"a": {"b": {"c": 1, "b": 2}}, "list": [{"a": "x"}]})
@example(event={"a": {"b": "text"}, "list": [None]})
@example(event={"a": {"b": {"c": None}}})
@example(event={"a": [{"c": 3}, 4]})
def test_unrolled_paths_read_what_the_general_walk_reads(event: Any) -> None:
    """`compile_get_path` (unrolled up to three keys) gives what `get_path` gives, on any event:
    dicts, arrays and strings on the way, falsy values, missing keys."""
    from acoustic_pipelines.actions.mappings.paths import compile_get_path, get_path

    for path in (("a",), ("a", "b"), ("a", "b", "c"), ("list", "0", "a"), ("a", "length", "x")):
        assert _typed(compile_get_path(path)(event)) == _typed(get_path(event, path))


@given(event=st.dictionaries(keys, events, max_size=5))
@settings(max_examples=200, deadline=None)
@example(event={"a": 14.0, "b": {"c": 2.0}, "list": [1.0, "x"], "c": None})
def test_an_object_of_fields_resolves_and_converts_in_one_pass(event: Any) -> None:
    """A mapping that is an object of fields gives what resolving then `to_result` gives."""
    mapping = {
        "a": {"@path": "$.a"},
        "b": {"@path": "$.b"},
        "nested": {"x": {"@path": "$.a"}, "y": {"@path": "$.missing"}},
        "list": {"@path": "$.list"},
        "constant": 3.0,
        "missing": {"@path": "$.nope"},
        "c": {"@path": "$.c"},
    }
    compiled = compile_mapping(mapping)
    assert compiled._resolve_result is not None  # noqa: SLF001  # the one-pass way is taken
    expected = to_result(compiled._resolve(event))  # noqa: SLF001
    assert _typed(compiled(event)) == _typed(expected)
