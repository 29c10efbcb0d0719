"""The pipeline config file (``config/pipeline.yaml``): destinations and their mappings, validated.

One YAML file describes where events go. Each destination is one Acoustic (Actions) destination
of Segment (reference ``segment.md`` §6): its customer prefix, S3 access point alias and region,
an optional column allow-list, and up to 50 mappings. A mapping is a trigger (Segment's
subscription FQL text, or the structured form of Segment's trigger builder) and a mapping (any
JSON, in Segment's mapping-directive syntax), so a team can paste what it has in Segment today::

    destinations:
      - name: acoustic                       # [a-z0-9_]+, unique
        customer_prefix: CustomerAcme_Prod_  # Segment's checks: ends with "_", not "customer_org_"
        access_point_alias: my-alias-s3alias
        region: us-east-1                    # the default
        columns: [products.0.sku, total]     # optional; see DestinationConfig.select_columns
        mappings:                            # at most 50
          - name: Track Calls
            enabled: true                    # the default
            trigger: 'type = "track"'        # or {match: all|any, conditions: [{field, operator, value}]}
            mapping: {...}
    signals: {}                              # reserved for later issues
    exports: {}

:func:`load_config` reads the file, validates it and compiles every trigger and every mapping
once; the loaded :class:`PipelineConfig` carries the compiled predicates and transforms
(:meth:`MappingConfig.matches`, :meth:`MappingConfig.apply`, :attr:`DestinationConfig.rules`),
so processing an event never parses or walks the config again. Every problem of the file is
reported at once in one :class:`ConfigError`, each as ``"<file>: <dotted.path>: <what is
wrong>"``; triggers and mappings that are valid but probably not what their author meant give
warnings (:attr:`PipelineConfig.warnings`), never errors.

Secrets never sit in this file: the S3 keys come from the environment
(:data:`S3_ACCESS_KEY_ENV`, :data:`S3_SECRET_ENV`), and a destination holding one is refused.
"""

from __future__ import annotations

import logging
import math
import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from acoustic_pipelines import settings
from acoustic_pipelines.actions.acoustic import (
    HEADER_KEYS,
    INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
    INVALID_EVENT_TYPE,
    INVALID_NO_DATA_MAPPED,
    INVALID_TIMESTAMP,
    SECTIONS,
    check_destination_settings,
)
from acoustic_pipelines.actions.mapping_kit import (
    CompiledMapping,
    MappingError,
    MappingValidationError,
    compile_mapping,
)
from acoustic_pipelines.actions.triggers import (
    Condition,
    ConditionGroup,
    InvalidConditionError,
    TriggerSyntaxError,
    compile_conditions,
    compile_trigger,
    lint_trigger,
    render_fql,
)

__all__ = [
    "MAX_MAPPINGS",
    "S3_ACCESS_KEY_ENV",
    "S3_SECRET_ENV",
    "ConfigError",
    "DestinationConfig",
    "MappingConfig",
    "MappingDirectives",
    "MappingRule",
    "PipelineConfig",
    "Trigger",
    "TriggerCondition",
    "load_config",
    "parse_config",
]

log = logging.getLogger(__name__)

#: Most mappings one destination may hold (Segment's limit per destination, segment.md §8).
MAX_MAPPINGS: Final = 50
#: Environment variables the S3 keys of a destination come from (read by the Dagster resources).
S3_ACCESS_KEY_ENV: Final = "ACOUSTIC_S3_ACCESS_KEY"
S3_SECRET_ENV: Final = "ACOUSTIC_S3_SECRET"

DESTINATION_NAME_PATTERN: Final = "[a-z0-9_]+"
# Keys that would hold a secret: refused wherever the config has a fixed set of keys.
_SECRET_KEYS: Final = frozenset(
    (
        "s3_access_key",
        "s3_secret",
        "s3_secret_key",
        "access_key",
        "secret",
        "secret_key",
        "aws_access_key_id",
        "aws_secret_access_key",
    )
)
# The fields of Acoustic's "Send Events" action (segment.md §6.2): what a mapping may produce.
_SEND_EVENTS_FIELDS: Final = ("uniqueRecipientId", "type", "timestamp", *SECTIONS)
_REQUIRED_FIELDS: Final = (
    ("uniqueRecipientId", INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID),
    ("type", INVALID_EVENT_TYPE),
    ("timestamp", INVALID_TIMESTAMP),
)
# Pydantic error types raised by this module whose message is already complete.
_OWN_ERROR = "config"
# Cross-item checks (unique names, at most 50 mappings): load_config runs them on the raw file,
# so that they are reported even when an item fails; the model validators cover direct use.
_CROSS_CHECK_ERROR = "config_cross_check"

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlevel = 2


class ConfigError(ValueError):
    """Raised when the config file cannot be used; ``problems`` lists every problem found.

    Attributes:
        file: the config file as the user named it.
        problems: one ``"<file>: <dotted.path>: <what is wrong>"`` line per problem, in file order
            where known (YAML syntax problems name a line instead of a path).
        warnings: the warnings found in the parts that are valid (see :func:`load_config`).
    """

    def __init__(self, file: str, problems: list[str], warnings: list[str] | None = None) -> None:
        super().__init__("\n".join(problems))
        self.file = file
        self.problems = problems
        self.warnings = warnings or []


def _show(value: Any) -> str:
    """A short repr of a received value for a message."""
    return _SHORT.repr(value)


def _problem(
    message: str, *, at: tuple[str | int, ...] = (), **context: Any
) -> PydanticCustomError:
    """A complete error message for pydantic; ``at`` extends the location of the failing value."""
    return PydanticCustomError(_OWN_ERROR, "{message}", {"message": message, "at": at, **context})


class _ConfigModel(BaseModel):
    """Base of the config models: strict types, no unknown keys, immutable.

    Equality compares the fields only, not the compiled callables kept in private attributes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = BaseModel.__hash__


# --------------------------------------------------------------------------------------------
# Triggers
# --------------------------------------------------------------------------------------------


class TriggerCondition(_ConfigModel):
    """One condition of Segment's trigger builder: ``{field, operator, value}``.

    ``field`` is ``type``, ``event``, ``name``, ``userId`` or a dot path under ``properties.``,
    ``traits.`` or ``context.``; ``operator`` is one of ``triggers.OPERATORS`` (``is``,
    ``is not``, ``contains``, ``starts with``, ``exists``, ``<``, ``is true``, …); ``value`` is a
    string, a number, or absent for the operators that take none.
    """

    field: str
    operator: str
    value: Any = None

    _condition: Condition = PrivateAttr()

    @model_validator(mode="after")
    def _build(self) -> TriggerCondition:
        try:
            self._condition = Condition(self.field, self.operator, self.value)
        except InvalidConditionError as exc:
            raise _problem(exc.message) from None
        return self

    @property
    def condition(self) -> Condition:
        """The condition as the trigger engine's :class:`~triggers.Condition`."""
        return self._condition


class Trigger(_ConfigModel):
    """A mapping's trigger: FQL text, or the structured ``{match, conditions}`` form.

    In YAML a trigger is either a string (``'type = "track"'``) or a mapping
    ``{match: all|any, conditions: [...]}`` (``match`` defaults to ``all``). Both compile once to
    a predicate with Segment's exact semantics; :attr:`fql` is the text in both cases (for the
    structured form, the FQL Segment's UI writes for it).
    """

    # Set from a plain string by the before-validator; not a key users write.
    text: str | None = Field(default=None, json_schema_extra={"internal": True})
    match: Literal["all", "any"] = "all"
    conditions: list[TriggerCondition] | None = None

    _predicate: Callable[[dict], bool] = PrivateAttr()
    _fql: str = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"text": data}
        if isinstance(data, dict):
            if "text" in data:
                raise _problem(
                    "write an FQL trigger as a plain string (trigger: 'type = \"track\"'), "
                    "not as `text:`"
                )
            if "conditions" not in data:
                raise _problem(
                    "a structured trigger needs `conditions`: a list of {field, operator, value}"
                    f"; got the keys {', '.join(map(str, data)) or 'none'}"
                )
            return data
        if isinstance(data, Trigger):
            return data
        raise _problem(
            "a trigger is FQL text such as 'type = \"track\"' or a structured form "
            f"{{match: all|any, conditions: [{{field, operator, value}}]}}; got {_show(data)}"
        )

    @model_validator(mode="after")
    def _compile(self) -> Trigger:
        if self.text is not None:
            try:
                self._predicate = compile_trigger(self.text)
            except TriggerSyntaxError as exc:
                raise _problem(exc.message) from None
            self._fql = self.text
            return self
        conditions = self.conditions or []
        try:
            group = ConditionGroup(self.match, tuple(c.condition for c in conditions))
        except InvalidConditionError as exc:
            raise _problem(exc.message, at=("conditions",)) from None
        self._predicate = compile_conditions(group)
        self._fql = render_fql(group)
        return self

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> Any:
        if self.text is not None:
            return self.text
        data = handler(self)
        data.pop("text", None)
        return data

    @property
    def fql(self) -> str:
        """The trigger as FQL text (for a structured trigger, what Segment's UI would write)."""
        return self._fql

    @property
    def predicate(self) -> Callable[[dict], bool]:
        """The compiled predicate ``event -> bool``."""
        return self._predicate

    @property
    def is_structured(self) -> bool:
        """Whether the trigger was written in the structured ``{match, conditions}`` form."""
        return self.text is None


# --------------------------------------------------------------------------------------------
# Mappings
# --------------------------------------------------------------------------------------------


def _json_problem(value: Any, pointer: str = "") -> str | None:
    """Why a YAML value is not JSON (None when it is), naming the JSON pointer of the culprit."""
    stack: list[tuple[Any, str]] = [(value, pointer)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    return (
                        f"{where or '/'}: the key {_show(key)} is {type(key).__name__}; "
                        "JSON keys are text, quote it in the YAML"
                    )
                stack.append((item, f"{where}/{key}"))
        elif isinstance(node, list):
            stack.extend((item, f"{where}/{index}") for index, item in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            return f"{where or '/'}: {node} is not a JSON number"
        elif node is not None and not isinstance(node, str | int | float | bool):
            return f"{where or '/'}: {_show(node)} ({type(node).__name__}) is not a JSON value"
    return None


class MappingDirectives:
    """A mapping as written (any JSON, Segment's mapping directives) with its compiled transform.

    As a pydantic field type it validates the JSON and compiles it once; a mapping Segment
    refuses fails with Segment's messages, one problem each. It serializes back to ``raw``.
    """

    __slots__ = ("raw", "transform")

    def __init__(self, raw: Any) -> None:
        """Compile ``raw`` (raises :class:`MappingValidationError` with Segment's messages)."""
        self.transform: CompiledMapping = compile_mapping(raw)
        self.raw = raw

    @classmethod
    def _validate(cls, value: Any) -> MappingDirectives:
        if isinstance(value, MappingDirectives):
            return value
        problem = _json_problem(value)
        if problem:
            raise _problem(f"the mapping must be JSON: {problem}")
        try:
            return cls(value)
        except MappingValidationError as exc:
            raise _problem("\n".join(exc.errors), errors=list(exc.errors)) from None
        except MappingError as exc:
            raise _problem(str(exc)) from None

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        """Validate and compile from any value; serialize to the mapping as written."""
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v.raw),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MappingDirectives) and other.raw == self.raw

    __hash__ = None  # type: ignore[assignment]  # the raw mapping is mutable JSON

    def __repr__(self) -> str:
        return f"MappingDirectives({_show(self.raw)})"


@dataclass(frozen=True, slots=True)
class MappingRule:
    """One enabled mapping ready for the hot path: plain attributes, compiled callables.

    Attributes:
        destination: the destination's name.
        name: the mapping's name.
        fql: the trigger as FQL text.
        matches: the compiled trigger, ``event -> bool``.
        apply: the compiled mapping, ``event -> mapped payload``.
    """

    destination: str
    name: str
    fql: str
    matches: Callable[[dict], bool]
    apply: Callable[[dict], Any]


class MappingConfig(_ConfigModel):
    """One mapping of a destination: a name, whether it runs, its trigger and its mapping."""

    name: str
    enabled: bool = True
    trigger: Trigger
    mapping: MappingDirectives

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, name: str) -> str:
        if not name.strip():
            raise _problem(f"a mapping needs a name (e.g. Track Calls); got {_show(name)}")
        return name

    def matches(self, event: dict) -> bool:
        """Whether the trigger matches the event (compiled once, Segment's semantics)."""
        return self.trigger.predicate(event)

    def apply(self, event: dict) -> Any:
        """The mapped payload for the event (compiled once; undefined values are left out)."""
        return self.mapping.transform(event)

    def rule(self, destination: str) -> MappingRule:
        """This mapping as a :class:`MappingRule` of the named destination."""
        return MappingRule(
            destination=destination,
            name=self.name,
            fql=self.trigger.fql,
            matches=self.trigger.predicate,
            apply=self.mapping.transform,
        )


# --------------------------------------------------------------------------------------------
# Destinations and the file
# --------------------------------------------------------------------------------------------


def _acoustic_setting(field: str, value: str) -> str:
    """Run Segment's settings check (segment.md §6.1) for one field; raise its problem, if any."""
    settings_values = {
        "access_key": "(from the environment)",
        "secret": "(from the environment)",
        "region": "us-east-1",
        "access_point_alias": "alias",
        "customer_prefix": "Checked_",
        field: value,
    }
    for problem in check_destination_settings(**settings_values):
        if problem.field == field:
            raise _problem(str(problem), code=problem.code)
    return value


def _name_problems(names: list[Any], what: str) -> list[tuple[int, str]]:
    """(index, message) for each name that repeats an earlier one."""
    first: dict[str, int] = {}
    found: list[tuple[int, str]] = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            continue
        if name in first:
            found.append((index, f"{what} name {name!r} is already used by {what} {first[name]}"))
        else:
            first[name] = index
    return found


def _too_many_mappings(count: int) -> str | None:
    """The message for a destination over Segment's mapping limit (None when within it)."""
    if count <= MAX_MAPPINGS:
        return None
    return (
        f"{count} mappings; a destination holds at most {MAX_MAPPINGS} (Segment's limit): "
        "split them over several destinations"
    )


class DestinationConfig(_ConfigModel):
    """One Acoustic destination: where its files go and the mappings that produce its rows."""

    name: str
    customer_prefix: str
    access_point_alias: str
    region: str = "us-east-1"
    columns: list[str] | None = None
    mappings: list[MappingConfig] = Field(default_factory=list)

    _rules: tuple[MappingRule, ...] = PrivateAttr(default=())

    @field_validator("name")
    @classmethod
    def _name_pattern(cls, name: str) -> str:
        if not name or not all(
            char.isascii() and (char.islower() or char.isdigit() or char == "_") for char in name
        ):
            raise _problem(
                f"a destination name is lower-case letters, digits and `_` ({DESTINATION_NAME_PATTERN}; "
                f"it names lake folders); got {_show(name)}"
            )
        return name

    @field_validator("customer_prefix", "access_point_alias", "region")
    @classmethod
    def _segment_checks(cls, value: str, info: ValidationInfo) -> str:
        return _acoustic_setting(str(info.field_name), value)

    @field_validator("columns")
    @classmethod
    def _columns(cls, columns: list[str] | None) -> list[str] | None:
        if columns is None:
            return None
        if not columns:
            raise _problem(
                "an empty allow-list would deliver no data column; leave `columns` out to deliver them all"
            )
        seen: set[str] = set()
        for index, column in enumerate(columns):
            if not column.strip():
                raise _problem(f"a column name cannot be blank; got {_show(column)}", at=(index,))
            if column in seen:
                raise _problem(f"column {column!r} is listed twice", at=(index,))
            seen.add(column)
        return columns

    @model_validator(mode="after")
    def _cross_checks_and_rules(self) -> DestinationConfig:
        too_many = _too_many_mappings(len(self.mappings))
        if too_many:
            raise PydanticCustomError(
                _CROSS_CHECK_ERROR, "{message}", {"message": too_many, "at": ("mappings",)}
            )
        duplicates = _name_problems([m.name for m in self.mappings], "mapping")
        if duplicates:
            index, message = duplicates[0]
            raise PydanticCustomError(
                _CROSS_CHECK_ERROR,
                "{message}",
                {"message": message, "at": ("mappings", index, "name")},
            )
        self._rules = tuple(m.rule(self.name) for m in self.mappings if m.enabled)
        return self

    @property
    def rules(self) -> tuple[MappingRule, ...]:
        """The enabled mappings, in file order, ready to run on events."""
        return self._rules

    def select_columns(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row as delivered: the header keys plus the allow-listed keys, in the row's order.

        Without ``columns`` the row is returned unchanged. Allow-list entries are exact flat
        keys (``products.0.sku``); the three header keys are always kept.
        """
        if self.columns is None:
            return row
        keep = frozenset(self.columns).union(HEADER_KEYS)
        return {key: value for key, value in row.items() if key in keep}


class PipelineConfig(_ConfigModel):
    """The whole pipeline config file; load it with :func:`load_config`.

    ``signals`` and ``exports`` are reserved for signal rules and export definitions (later
    issues define their shape) and are taken as they are.
    """

    destinations: list[DestinationConfig]
    signals: dict[str, Any] | None = None
    exports: dict[str, Any] | None = None

    _warnings: list[str] = PrivateAttr(default_factory=list)
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _unique_destinations(self) -> PipelineConfig:
        duplicates = _name_problems([d.name for d in self.destinations], "destination")
        if duplicates:
            index, message = duplicates[0]
            raise PydanticCustomError(
                _CROSS_CHECK_ERROR,
                "{message}",
                {"message": message, "at": ("destinations", index, "name")},
            )
        return self

    @property
    def warnings(self) -> list[str]:
        """Lint warnings found while loading (``"<file>: <path>: <warning>"``); never fatal."""
        return self._warnings

    @property
    def source(self) -> str | None:
        """The file the config was loaded from, as named by the caller (None if built directly)."""
        return self._source

    @property
    def mapping_count(self) -> int:
        """Mappings over all destinations, enabled or not."""
        return sum(len(d.mappings) for d in self.destinations)

    def destination(self, name: str) -> DestinationConfig:
        """The destination of that name (KeyError naming the known ones when there is none)."""
        for destination in self.destinations:
            if destination.name == name:
                return destination
        known = ", ".join(d.name for d in self.destinations) or "none"
        raise KeyError(f"no destination named {name!r} in the config (known: {known})")


# --------------------------------------------------------------------------------------------
# Loading: YAML → problems and warnings with their paths → PipelineConfig
# --------------------------------------------------------------------------------------------

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """Safe YAML that keeps dates as text (JSON has none) and records duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Build a mapping, noting every key written twice (YAML would keep only the last)."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if (
                not isinstance(key_node, yaml.ScalarNode)
                or key_node.tag == "tag:yaml.org,2002:merge"
            ):
                continue
            line = key_node.start_mark.line + 1
            key = key_node.value
            if key in seen:
                self.duplicates.append(
                    f"line {line}: the key {key!r} is written twice (first on line {seen[key]}); "
                    "YAML would keep only the last one"
                )
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_yaml(text: str, file: str) -> Any:
    """The YAML document, or ConfigError for a syntax error or a duplicate key."""
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(file, [f"{file}: {where}: not valid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, [f"{file}: not valid YAML: {exc}"]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(file, [f"{file}: {message}" for message in loader.duplicates])
    return data


def _dotted(loc: Iterable[str | int]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that validates the object at ``loc`` (None when it is not a model)."""
    model: type[BaseModel] | None = PipelineConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _inner_model(model.model_fields[part].annotation)
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None


def _public_keys(model: type[BaseModel]) -> list[str]:
    return [
        name
        for name, info in model.model_fields.items()
        if not (isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("internal"))
    ]


def _pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(dotted path, message) for each pydantic error, in the words of this config file."""
    found: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        kind = error["type"]
        if kind == _CROSS_CHECK_ERROR:
            continue  # load_config reports these from the raw file
        context = error.get("ctx") or {}
        loc = tuple(error["loc"]) + tuple(context.get("at", ()))
        path = _dotted(loc)
        if kind == _OWN_ERROR and context.get("errors"):
            found.extend((path, message) for message in context["errors"])
            continue
        if kind == _OWN_ERROR:
            message = context["message"]
        elif kind == "extra_forbidden":
            message = _unknown_key_message(loc)
        elif kind == "missing":
            message = f"`{loc[-1]}` is required and missing"
        else:
            message = f"{error['msg']}; got {_show(error['input'])}"
        found.append((path, message))
    return found


def _unknown_key_message(loc: tuple[str | int, ...]) -> str:
    key = loc[-1]
    if isinstance(key, str) and key.lower() in _SECRET_KEYS:
        return (
            f"`{key}` is a secret and secrets never go in the config file: remove it and set the "
            f"environment variables {S3_ACCESS_KEY_ENV} / {S3_SECRET_ENV} instead"
        )
    model = _model_at(loc[:-1])
    expected = f"; expected one of: {', '.join(_public_keys(model))}" if model else ""
    return f"unknown key `{key}`{expected}"


def _raw_list(value: Any, key: str) -> list[Any]:
    """``value[key]`` when value is a dict and that is a list, else an empty list."""
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, list) else []


def _cross_problems(data: Any) -> list[tuple[str, str]]:
    """Unique names and the mapping limit, checked on the raw file (items may be invalid)."""
    destinations = _raw_list(data, "destinations")
    names = [d.get("name") if isinstance(d, dict) else None for d in destinations]
    found = [
        (_dotted(("destinations", index, "name")), message)
        for index, message in _name_problems(names, "destination")
    ]
    for d_index, destination in enumerate(destinations):
        mappings = _raw_list(destination, "mappings")
        too_many = _too_many_mappings(len(mappings))
        if too_many:
            found.append((_dotted(("destinations", d_index, "mappings")), too_many))
        names = [m.get("name") if isinstance(m, dict) else None for m in mappings]
        found.extend(
            (_dotted(("destinations", d_index, "mappings", index, "name")), message)
            for index, message in _name_problems(names, "mapping")
        )
    return found


def _file_order(problem: tuple[str, str]) -> tuple[int, ...]:
    """Sort key putting problems in file order: by destination, then mapping (stable within)."""
    return tuple(int(part) for part in problem[0].split(".") if part.isdigit())[:2]


def _mapping_warnings(mapping: Any) -> list[str]:
    """Warnings for an Acoustic mapping object that cannot produce a row, or maps unused keys."""
    if not isinstance(mapping, dict) or any(
        isinstance(key, str) and key.startswith("@") for key in mapping
    ):
        return []  # a directive: what it produces is only known per event
    found = [
        f"`{key}` is not a field of Acoustic's Send Events action "
        f"({', '.join(_SEND_EVENTS_FIELDS)}); it never reaches the row"
        for key in mapping
        if key not in _SEND_EVENTS_FIELDS
    ]
    found += [
        f"`{field}` is not mapped: every event this mapping matches is rejected with {code}"
        for field, code in _REQUIRED_FIELDS
        if field not in mapping
    ]
    if not any(section in mapping for section in SECTIONS):
        found.append(
            f"none of {', '.join(SECTIONS)} is mapped: every event this mapping matches is "
            f"rejected with {INVALID_NO_DATA_MAPPED} (Segment's presets alone do this)"
        )
    return found


def _warnings(data: Any, failed: set[str]) -> list[tuple[str, str]]:
    """Lint warnings for the parts of the raw file that are valid (``failed`` = paths in error)."""

    def has_error(path: str) -> bool:
        return any(p == path or p.startswith(path + ".") for p in failed)

    destinations = _raw_list(data, "destinations")
    found: list[tuple[str, str]] = []
    if isinstance(data, dict) and "destinations" in data and not destinations:
        found.append(("destinations", "no destination: nothing is delivered to Acoustic"))
    for d_index, destination in enumerate(destinations):
        mappings = _raw_list(destination, "mappings")
        enabled = 0
        for m_index, mapping in enumerate(mappings):
            if not isinstance(mapping, dict):
                continue
            enabled += mapping.get("enabled", True) is True
            base = _dotted(("destinations", d_index, "mappings", m_index))
            trigger = mapping.get("trigger")
            if isinstance(trigger, str) and not has_error(f"{base}.trigger"):
                found.extend((f"{base}.trigger", w) for w in lint_trigger(trigger))
            if "mapping" in mapping and not has_error(f"{base}.mapping"):
                found.extend((f"{base}.mapping", w) for w in _mapping_warnings(mapping["mapping"]))
        mappings_path = _dotted(("destinations", d_index, "mappings"))
        if isinstance(destination, dict) and not enabled and not has_error(mappings_path):
            message = 'no enabled mapping: every event is counted as "no matching mapping"'
            found.append((mappings_path, message))
    return found


def parse_config(text: str, *, file: str = "<config>") -> PipelineConfig:
    """Validate and compile a config from YAML text; ``file`` names it in messages.

    Raises:
        ConfigError: with every problem of the text at once.
    """
    data = _read_yaml(text, file)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"{type(data).__name__} {_show(data)}"
        raise ConfigError(
            file,
            [f"{file}: (top level): expected a mapping with a `destinations:` list; got {got}"],
        )
    problems: list[tuple[str, str]] = []
    config: PipelineConfig | None = None
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc))
    problems.extend(_cross_problems(data))
    problems.sort(key=_file_order)
    warnings = [
        f"{file}: {path}: {message}" for path, message in _warnings(data, {p for p, _ in problems})
    ]
    if problems or config is None:
        raise ConfigError(
            file, [f"{file}: {path}: {message}" for path, message in problems], warnings
        )
    config._warnings = warnings
    config._source = file
    log.debug(
        "config %s: %d destinations, %d mappings, %d warnings",
        file,
        len(config.destinations),
        config.mapping_count,
        len(warnings),
    )
    return config


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read, validate and compile the pipeline config file (default: :func:`settings.config_path`).

    Args:
        path: the YAML file; messages name it as given.

    Returns:
        The config, with compiled triggers and mappings and its lint warnings.

    Raises:
        ConfigError: the file cannot be read or is invalid; lists every problem at once.
    """
    file_path = Path(path) if path is not None else settings.config_path()
    file = str(path) if path is not None else str(file_path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            file,
            [
                f"{file}: no such file (pass a config file or set {settings.CONFIG_ENV}; "
                f"the default is {settings.DEFAULT_CONFIG})"
            ],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file, [f"{file}: cannot read the config file: {exc}"]) from None
    return parse_config(text, file=file)
