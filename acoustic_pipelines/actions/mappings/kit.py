"""Segment Destination Actions mappings (mapping-kit directives), compiled once per mapping.

A mapping is any JSON value. Plain values are copied; an object whose only key is one
`@directive` (optionally plus `_metadata`) is resolved against the event. This module
re-implements `transform` of `@segment/actions-core` (3.170.0): `compile_mapping` validates
the whole mapping as Segment does and turns it into a tree of closures, so resolving an
event never walks the mapping again. Keys that resolve to JavaScript `undefined` are left
out of the result at every depth; `null` (None) is kept; an `undefined` array element
becomes None. A result is not a deep copy: it shares the event's unchanged objects and
arrays (the sharing rule is on `CompiledMapping`). Segment's quirks are reproduced on purpose
(segment.md section 5 lists them; the conformance vectors are the reference) and comments
point them out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from acoustic_pipelines.actions.js_values import (
    UNDEFINED,
    js_code_units,
    js_get_property,
    js_is_nullish,
    js_length,
    js_loosely_equals_empty_string,
    js_own_keys,
    js_stringify,
    js_to_string,
    js_truthy,
    js_type_of,
    js_typeof,
)
from acoustic_pipelines.actions.mappings.liquid import (
    MAX_TEMPLATE_LENGTH,
    LiquidTemplateError,
    compile_liquid,
)
from acoustic_pipelines.actions.mappings.operations import (
    assign,
    clean_nulls,
    copy_json,
    decode_json,
    field_result,
    flatten,
    literal_replacer,
    remove_undefined,
    to_result,
)
from acoustic_pipelines.actions.mappings.paths import (
    compile_get_path,
    compile_template,
    get_path,
    split_directive_path,
)
from acoustic_pipelines.actions.mappings.validation import (
    MAX_PATTERN_LENGTH,
    MAX_REPLACEMENT_LENGTH,
    is_directive,
    validation_errors,
)

__all__ = [
    "CompiledMapping",
    "MappingError",
    "MappingInputError",
    "MappingRuntimeError",
    "MappingValidationError",
    "compile_mapping",
    "transform",
]

logger = logging.getLogger(__name__)

# A key Segment's UI uses to wrap the whole mapping in one directive (getMappingToProcess).
ROOT_DIRECTIVE_KEY: Final = "__segment_internal_directive"
COMPILED_CACHE_SIZE: Final = 256

# One node of a compiled mapping: resolves against a payload (the event, or an array item).
Resolver = Callable[[Any], Any]


class MappingError(ValueError):
    """Root of the errors raised for Segment mappings."""


class MappingValidationError(MappingError):
    """The mapping was refused before resolving; `errors` holds Segment's messages in order."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class MappingRuntimeError(MappingError):
    """A directive failed while resolving; the message names the directive and the value."""

    def __init__(self, message: str, *, directive: str, value: Any = UNDEFINED) -> None:
        super().__init__(f"{message} ({directive} was given {_describe(value)})")
        self.directive = directive
        self.value = value


class MappingInputError(MappingError):
    """The event is not a JSON object ("data must be an object, got array")."""

    def __init__(self, received_type: str) -> None:
        super().__init__(f"data must be an object, got {received_type}")
        self.received_type = received_type


def _describe(value: Any) -> str:
    """Short JSON-like text of a value for error messages."""
    if value is UNDEFINED:
        return "undefined"
    try:
        text = js_stringify(value)
    except RecursionError:
        text = f"a deeply nested {js_type_of(value)}"
    return text if len(text) <= 120 else text[:117] + "..."


class _Constant:
    """Resolver of a mapping part without directives; each call gets its own dicts and lists."""

    __slots__ = ("_container", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._container = type(value) in (dict, list)

    def __call__(self, payload: Any) -> Any:
        # Results are not deep copies (see CompiledMapping): a dict or list handed out as is
        # could be changed through one result and show up in the next.
        return copy_json(self.value) if self._container else self.value


def _failing(directive: str, message: str, value: Any) -> Resolver:
    """Resolver for a directive Segment only rejects when it is reached while resolving."""

    def fail(payload: Any) -> Any:
        raise MappingRuntimeError(message, directive=directive, value=value)

    return fail


def _require_string(directive: str, value: Any) -> str:
    """Check the resolved input of @path/@template, as Segment's string directives do."""
    if type(value) is not str:
        message = f"{directive}: expected string, got {js_type_of(value)}"
        raise MappingRuntimeError(message, directive=directive, value=value)
    return value


# ---------------------------------------------------------------------------------------
# Compiling mapping values


def _compile(mapping: Any) -> Resolver:
    """Compile any mapping value: directives, objects and arrays in depth, other values as is."""
    kind = type(mapping)
    if kind is dict:
        if is_directive(mapping):
            return _compile_directive(mapping)
        return _compile_object(mapping, keep_undefined=True)
    if kind is list:
        items = [_compile(item) for item in mapping]
        if all(isinstance(item, _Constant) for item in items):
            return _Constant([item.value for item in items if isinstance(item, _Constant)])

        def resolve_array(payload: Any) -> list[Any]:
            return [item(payload) for item in items]

        return resolve_array
    return _Constant(mapping)


def _compile_object(mapping: dict[str, Any], *, keep_undefined: bool) -> Resolver:
    """Compile an object of mappings; undefined values are kept for the directives reading them.

    `keep_undefined=False` is for the top of a mapping, whose undefined keys would be dropped
    from the result anyway.
    """
    fields = [(key, _compile(mapping[key])) for key in js_own_keys(mapping)]
    if all(isinstance(field, _Constant) for _, field in fields):
        return _Constant(
            {key: field.value for key, field in fields if isinstance(field, _Constant)}
        )
    if keep_undefined:

        def resolve_object(payload: Any) -> dict[str, Any]:
            return {key: field(payload) for key, field in fields}

        return resolve_object

    def resolve_top_object(payload: Any) -> dict[str, Any]:
        resolved = {}
        for key, field in fields:
            value = field(payload)
            if value is not UNDEFINED:
                resolved[key] = value
        return resolved

    def resolve_top_result(payload: Any) -> dict[str, Any]:
        """`to_result(resolve_top_object(payload))` in one pass over the fields."""
        resolved = {}
        for key, field in fields:
            value = field(payload)
            kind = type(value)
            if kind is str or kind is int or kind is bool or value is None:
                resolved[key] = value
            elif value is not UNDEFINED:
                resolved[key] = field_result(value)
        return resolved

    resolve_top_object.fields = tuple(fields)  # type: ignore[attr-defined]  # CompiledMapping.fields
    resolve_top_object.with_result = resolve_top_result  # type: ignore[attr-defined]
    return resolve_top_object


def _compile_directive(mapping: dict[str, Any]) -> Resolver:
    """Compile `{"@name": options}`; an unknown name fails when reached (only arrays hide one)."""
    name = next(key for key in mapping if isinstance(key, str) and key.startswith("@"))
    compile_options = _DIRECTIVES.get(name)
    if compile_options is None:
        return _failing(name, f"{name} is not a valid directive, got undefined", mapping[name])
    return compile_options(mapping[name])


def _option(options: dict[str, Any], key: str) -> Any:
    """Read one directive option; a missing key is undefined."""
    return options.get(key, UNDEFINED)


def _compile_if(options: Any) -> Resolver:
    """`@if`: `then` when the condition holds, else `else` (only when `else` is truthy)."""
    if type(options) is not dict:
        return _failing("@if", '@if requires an object with an "exists" key', options)
    exists, blank = _option(options, "exists"), _option(options, "blank")
    # Segment tests the raw values for truthiness, so `exists: false` is refused here.
    if not js_truthy(exists) and not js_truthy(blank):
        message = '@if requires an "exists" key or a "blank" key'
        return _failing("@if", message, options)
    if exists is not UNDEFINED:
        subject, holds = _compile(exists), _is_present
    else:
        subject, holds = _compile(blank), _is_filled
    then = _compile(options["then"]) if "then" in options else None
    otherwise = _compile(options["else"]) if js_truthy(_option(options, "else")) else None
    if then is not None and _is_same_literal_path(exists, options["then"]):
        return _compile_if_exists_then_same(subject, otherwise)

    def resolve_if(payload: Any) -> Any:
        if holds(subject(payload)):
            return then(payload) if then is not None else UNDEFINED
        return otherwise(payload) if otherwise is not None else UNDEFINED

    return resolve_if


def _is_same_literal_path(first: Any, second: Any) -> bool:
    """True when both are the same `{"@path": "<text>"}` directive (nothing else on them)."""
    return (
        type(first) is dict
        and len(first) == 1
        and type(first.get("@path")) is str
        and first == second
        and type(second) is dict
    )


def _compile_if_exists_then_same(subject: Resolver, otherwise: Resolver | None) -> Resolver:
    """`@if` whose `then` is its `exists` path (Acoustic's presets): the path is read once."""

    def resolve_if_exists(payload: Any) -> Any:
        value = subject(payload)
        if value is not None and value is not UNDEFINED:
            return value
        return otherwise(payload) if otherwise is not None else UNDEFINED

    return resolve_if_exists


def _is_present(value: Any) -> bool:
    """`exists`: anything but null and undefined (0, "" and false exist)."""
    return not js_is_nullish(value)


def _is_filled(value: Any) -> bool:
    """`blank`: not null/undefined and not loosely equal to "" (so 0, false and [] are blank)."""
    return not js_is_nullish(value) and not js_loosely_equals_empty_string(value)


def _compile_path(options: Any) -> Resolver:
    """`@path`: the value at a path; the path may come from a nested directive."""
    if type(options) is str:
        return _compile_path_text(options)
    source = _compile(options)

    def resolve_dynamic_path(payload: Any) -> Any:
        path = _require_string("@path", source(payload))
        return get_path(payload, split_directive_path(path))

    return resolve_dynamic_path


def _compile_path_text(path: str) -> Resolver:
    """Resolver for a literal path, split once."""
    return compile_get_path(split_directive_path(path))


def _compile_template_directive(options: Any) -> Resolver:
    """`@template`: replace `{{path}}` placeholders; always a string."""
    if type(options) is str:
        return compile_template(options)
    source = _compile(options)

    def resolve_dynamic_template(payload: Any) -> str:
        template = _require_string("@template", source(payload))
        return compile_template(template)(payload)

    return resolve_dynamic_template


def _compile_array_path(options: Any) -> Resolver:
    """`@arrayPath`: the value at a path, each item mapped through a non-empty object shape."""
    if type(options) is not list:
        return _failing(
            "@arrayPath", f"@arrayPath expected array, got {js_type_of(options)}", options
        )
    path = options[0] if options else UNDEFINED
    shape = options[1] if len(options) > 1 else UNDEFINED
    root = _compile_path_text(path) if type(path) is str else _compile(path)
    if type(shape) is not dict or not shape:
        return root
    # The shape is resolved against each item: the event root is out of its reach.
    item_shape = _compile(shape)

    def resolve_array_path(payload: Any) -> Any:
        value = root(payload)
        kind = type(value)
        if kind is list:
            return [item_shape(item) for item in value]
        if kind is dict:
            return [item_shape(value)]
        return value

    return resolve_array_path


def _compile_case(options: Any) -> Resolver:
    """`@case`: lower- or upper-case a string; other values pass unchanged."""
    if type(options) is not dict:
        return _failing("@case", '@case requires an object with a "operator" key', options)
    operator = _option(options, "operator")
    if not js_truthy(operator):
        return _failing("@case", '@case requires a "operator" key', options)
    value = _option(options, "value")
    if not js_truthy(value):
        return _Constant(UNDEFINED)
    source = _compile(value)
    convert = (
        {"lower": str.lower, "upper": str.upper}.get(operator) if type(operator) is str else None
    )

    def resolve_case(payload: Any) -> Any:
        resolved = source(payload)
        if type(resolved) is not str:
            return resolved
        if convert is None:
            message = 'operator key should have a value of "lower" or "upper"'
            raise MappingRuntimeError(message, directive="@case", value=operator)
        return convert(resolved)

    return resolve_case


def _compile_replace(options: Any) -> Resolver:
    """`@replace`: replace literal text (up to two pattern/replacement pairs)."""
    if type(options) is not dict:
        return _failing("@replace", '@replace requires an object with a "pattern" key', options)
    pattern = _option(options, "pattern")
    if not js_truthy(pattern):
        return _failing("@replace", '@replace requires a "pattern" key', options)
    value = _option(options, "value")
    if not js_truthy(value):
        return _Constant(UNDEFINED)
    replacement = _option(options, "replacement")
    replacement = "" if js_is_nullish(replacement) else replacement
    pattern2 = _option(options, "pattern2")
    replacement2 = _option(options, "replacement2")
    if js_truthy(pattern2) and js_is_nullish(replacement2):
        replacement2 = ""
    ignore_case = _option(options, "ignorecase")
    ignore_case = False if js_is_nullish(ignore_case) else ignore_case
    global_ = _option(options, "global")
    global_ = True if js_is_nullish(global_) else global_

    source = _compile(value)
    # Segment only replaces when every option has the right type; otherwise the result is "".
    applies = (
        type(pattern) is str
        and type(replacement) is str
        and type(ignore_case) is bool
        and type(global_) is bool
    )
    flags = {"global_": global_, "ignore_case": ignore_case}
    first = _replacer(pattern, replacement, **flags) if applies else None
    second = None
    if applies and js_truthy(pattern2) and type(pattern2) is str and type(replacement2) is str:
        second = _replacer(pattern2, replacement2, **flags)

    def resolve_replace(payload: Any) -> Any:
        text = source(payload)
        if type(text) is bool or type(text) is int or type(text) is float:
            text = js_to_string(text)
        if first is None or type(text) is not str:
            return ""  # missing, null, object and array values all give ""
        text = first(text)
        return second(text) if second is not None else text

    return resolve_replace


def _replacer(
    pattern: str, replacement: str, *, global_: bool, ignore_case: bool
) -> Callable[[str], str]:
    """Build one replacement step, or a step that fails once reached when the text is too long."""
    for field, text, limit in (
        ("pattern", pattern, MAX_PATTERN_LENGTH),
        ("replacement", replacement, MAX_REPLACEMENT_LENGTH),
    ):
        # Checked only when a replacement runs, so it is what catches a long pattern2; the
        # message says "less than 10" although 10 is allowed.
        if js_length(text) > limit:
            message = f'@replace requires a "{field}" less than 10 characters'
            return _failing("@replace", message, text)
    return literal_replacer(pattern, replacement, replace_all=global_, ignore_case=ignore_case)


def _compile_merge(options: Any) -> Resolver:
    """`@merge`: shallow-merge objects; "right" lets later objects win, exact "left" earlier."""
    if type(options) is not dict:
        message = '@merge requires an object with an "objects" key and a "direction" key'
        return _failing("@merge", message, options)
    direction = _option(options, "direction")
    if not js_truthy(direction):
        return _failing("@merge", '@merge requires a "direction" key', options)
    direction_source = _compile(direction)
    objects = _option(options, "objects")
    problem = None
    if not js_truthy(objects):
        problem = '@merge requires a "objects" key'
    elif type(objects) is not list:
        problem = f"@merge: expected opts.array, got {js_typeof(objects)}"
    sources = [] if problem else [_compile(entry) for entry in objects]

    def resolve_merge(payload: Any) -> dict[str, Any]:
        resolved_direction = direction_source(payload)
        if problem is not None:
            raise MappingRuntimeError(problem, directive="@merge", value=objects)
        entries = [source(payload) for source in sources]
        if resolved_direction == "left":  # validation accepts "LEFT", which then merges right
            entries.reverse()
        merged: dict[str, Any] = {}
        for entry in entries:
            assign(merged, entry)
        return merged

    return resolve_merge


def _compile_flatten(options: Any) -> Resolver:
    """`@flatten`: a one-level object whose keys join the nested keys with the separator."""
    if type(options) is not dict:
        return _failing("@flatten", '@flatten requires an object with a "separator" key', options)
    separator = _option(options, "separator")
    if not js_truthy(separator):
        return _failing("@flatten", '@flatten requires a "separator" key', options)
    separator_source = _compile(separator)
    source = _compile(_option(options, "value"))
    omit_arrays = js_truthy(_option(options, "omitArrays"))

    def resolve_flatten(payload: Any) -> dict[str, Any]:
        resolved_separator = separator_source(payload)
        if type(resolved_separator) is not str:
            message = "@flatten requires a string separator"
            raise MappingRuntimeError(message, directive="@flatten", value=resolved_separator)
        return flatten(source(payload), resolved_separator, omit_arrays=omit_arrays)

    return resolve_flatten


def _compile_json(options: Any) -> Resolver:
    """`@json`: encode a value to JSON text or decode JSON text (invalid text is kept)."""
    if type(options) is not dict:
        return _failing("@json", '@json requires an object with a "value" key', options)
    mode = _option(options, "mode")
    if not js_truthy(mode):
        return _failing("@json", '@json requires a "mode" key', options)
    value = _option(options, "value")
    # The raw value is tested, so a literal null, 0, false or "" is refused.
    if not js_truthy(value):
        return _failing("@json", '@json requires a "value" key', options)
    source = _compile(value)
    if mode == "encode":
        return lambda payload: js_stringify(source(payload))
    if mode == "decode":
        return lambda payload: decode_json(source(payload))

    def resolve_other_mode(payload: Any) -> Any:
        source(payload)  # validation accepts "ENCODE"; Segment then resolves to undefined
        return UNDEFINED

    return resolve_other_mode


def _compile_transform(options: Any) -> Resolver:
    """`@transform`: resolve `apply` against the payload, then `mapping` against that result."""
    if type(options) is not dict:
        message = '@transform requires an object with an "apply" key and a "mapping" key'
        return _failing("@transform", message, options)
    if not js_truthy(_option(options, "mapping")):
        return _failing("@transform", '@transform requires a "mapping" key', options)
    apply = _option(options, "apply")
    if not js_truthy(apply):
        return _failing("@transform", '@transform requires a "apply" key', options)
    if type(apply) is not dict:
        return _failing("@transform", '@transform "apply" key should be an object', options)
    mapping = _compile(options["mapping"])
    try:
        apply_root = _compile_root(apply)  # Segment runs a nested transform() on `apply`
    except MappingValidationError as error:
        return _failing("@transform", str(error), apply)

    def resolve_transform(payload: Any) -> Any:
        if type(payload) is not dict:
            message = f"data must be an object, got {js_type_of(payload)}"
            raise MappingRuntimeError(message, directive="@transform", value=payload)
        return mapping(remove_undefined(apply_root(payload)))

    return resolve_transform


def _compile_exclude_when_null(options: Any) -> Resolver:
    """`@excludeWhenNull`: null becomes undefined; in objects, null keys go, recursively."""
    source = _compile(options)

    def resolve_exclude_when_null(payload: Any) -> Any:
        value = source(payload)
        return UNDEFINED if value is None else clean_nulls(value)

    return resolve_exclude_when_null


def _compile_liquid(options: Any) -> Resolver:
    """`@liquid`: render a Liquid template (≤ 1,000 characters) with the payload's keys."""
    if type(options) is not str:
        return _failing("@liquid", "liquid template value must be a string", options)
    if options == "":
        return _Constant("")
    if js_length(options) > MAX_TEMPLATE_LENGTH:
        message = "liquid template values are limited to 1000 characters"
        return _failing("@liquid", message, options)
    try:
        render = compile_liquid(options)
    except LiquidTemplateError as error:
        return _failing("@liquid", str(error), options)  # liquidjs parses when rendering

    def resolve_liquid(payload: Any) -> str:
        try:
            return render(payload)
        except LiquidTemplateError as error:
            raise MappingRuntimeError(str(error), directive="@liquid", value=options) from error

    return resolve_liquid


_DIRECTIVES: dict[str, Callable[[Any], Resolver]] = {
    "@if": _compile_if,
    "@case": _compile_case,
    "@replace": _compile_replace,
    "@arrayPath": _compile_array_path,
    "@path": _compile_path,
    "@template": _compile_template_directive,
    "@literal": _compile,  # nested directives inside a literal are resolved too
    "@flatten": _compile_flatten,
    "@json": _compile_json,
    "@merge": _compile_merge,
    "@transform": _compile_transform,
    "@excludeWhenNull": _compile_exclude_when_null,
    "@liquid": _compile_liquid,
}


# ---------------------------------------------------------------------------------------
# Public API


def _root_mapping(mapping: Any) -> Any:
    """Return the mapping Segment actually resolves (transform's getMappingToProcess).

    Segment resolves a copy made with object spread, so a top-level array or string becomes
    an object keyed by index and a number becomes {}. A `__segment_internal_directive` key
    wraps the other keys as the `mapping` of that one directive.
    """
    if mapping is None:
        raise MappingValidationError(
            ["the mapping is null; Segment cannot convert null to an object"]
        )
    kind = type(mapping)
    if kind is list:
        return {str(index): item for index, item in enumerate(mapping)}
    if kind is str:
        return {str(index): unit for index, unit in enumerate(js_code_units(mapping))}
    if kind is not dict:
        return {}
    if ROOT_DIRECTIVE_KEY not in mapping:
        return dict(mapping)
    return _wrap_in_root_directive(mapping)


def _wrap_in_root_directive(mapping: dict[str, Any]) -> Any:
    """Give the other top-level keys to the root directive as its `mapping` option."""
    rest = {key: value for key, value in mapping.items() if key != ROOT_DIRECTIVE_KEY}
    root = mapping[ROOT_DIRECTIVE_KEY]
    if root is None:
        raise MappingValidationError(
            [f"{ROOT_DIRECTIVE_KEY} is null; Segment cannot read its keys"]
        )
    keys = _own_keys_of(root)
    if len(keys) > 1:
        raise MappingValidationError(["The root mapping must only have a single directive object"])
    directive = js_get_property(root, keys[0]) if keys else UNDEFINED
    if type(directive) not in (dict, list):
        raise MappingValidationError(["The root directive must be an object"])
    if type(directive) is list:
        return root  # Segment sets `mapping` as an array property, which nothing reads
    wrapped = {**directive, "mapping": rest}
    return {**root, keys[0]: wrapped} if type(root) is dict else [wrapped]


def _own_keys_of(value: Any) -> list[str]:
    """Return Object.keys(value) for any JSON value other than null."""
    if type(value) is dict:
        return js_own_keys(value)
    if type(value) is list:
        return [str(index) for index in range(len(value))]
    if type(value) is str:
        return [str(index) for index in range(js_length(value))]
    return []


def _compile_root(mapping: Any) -> Resolver:
    """Prepare, validate and compile a whole mapping, as each call of Segment's transform does."""
    root = _root_mapping(mapping)
    errors = validation_errors(root)
    if errors:
        raise MappingValidationError(errors)
    if type(root) is dict and not is_directive(root):
        return _compile_object(root, keep_undefined=False)
    return _compile(root)


class CompiledMapping:
    """A validated mapping turned into closures; call it with one event at a time.

    Sharing rule: to stay cheap, a result is not a deep copy. Objects and arrays the mapping
    takes unchanged from the event (`{"@path": "$.context"}`) are the event's own dicts and
    lists, and may appear more than once in one result. Everything else (the result's top
    level, objects the mapping builds, constants written in the mapping, containers holding a
    converted value such as 14.0 → 14) is new for every call. So changing a result can change
    the event it came from, and changing an event can change earlier results from it, but
    never another event's result or the compiled mapping itself. Treat both as read-only, or
    `copy.deepcopy` before changing one.
    """

    __slots__ = ("_resolve", "_resolve_result", "fields")

    def __init__(
        self, resolve: Resolver, fields: tuple[tuple[str, Resolver], ...] | None = None
    ) -> None:
        self._resolve = resolve
        # An object of fields resolves and applies `to_result` in one pass.
        self._resolve_result = getattr(resolve, "with_result", None)
        #: When the mapping is an object of fields (not one directive, not all constants): each
        #: top-level key and its resolver, in the order the result has them. Resolving them in
        #: this order and dropping the undefined ones is the mapping before `to_result`; a
        #: caller that fuses the mapping with what it does next (the Acoustic row) reads them.
        self.fields = fields

    def __call__(self, event: Any) -> Any:
        """Resolve the mapping against one event (a JSON object); see the sharing rule above."""
        _check_event(event)
        try:
            if self._resolve_result is not None:
                return self._resolve_result(event)
            return to_result(self._resolve(event))
        except RecursionError as error:
            message = "the mapping or the event is nested too deeply to resolve"
            raise MappingRuntimeError(message, directive="transform", value=event) from error


def _check_event(event: Any) -> None:
    """Refuse an event that is not a JSON object, as Segment does before anything else."""
    if type(event) is not dict:
        raise MappingInputError(js_type_of(event))


def compile_mapping(mapping: Any) -> CompiledMapping:
    """Validate a whole mapping and compile it; MappingValidationError has Segment's messages."""
    try:
        resolve = _compile_root(mapping)
    except RecursionError as error:
        message = "/ the mapping is nested too deeply to validate."
        raise MappingValidationError([message]) from error
    logger.debug("compiled a mapping of type %s", js_type_of(mapping))
    return CompiledMapping(resolve, getattr(resolve, "fields", None))


@lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compile_json_text(mapping_json: str) -> CompiledMapping:
    """Compile a mapping from its JSON text; cached, so repeated mappings compile once."""
    return compile_mapping(json.loads(mapping_json))


def transform(mapping: Any, event: dict[str, Any]) -> Any:
    """Resolve a mapping against one event; undefined keys are left out, null is kept.

    The result may share dicts and lists with the event (see :class:`CompiledMapping`).
    """
    _check_event(event)
    try:
        # Key order matters to the result (it is not sorted), so it is part of the cache key.
        mapping_json = json.dumps(mapping, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return compile_mapping(mapping)(event)
    return _compile_json_text(mapping_json)(event)
