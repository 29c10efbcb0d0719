"""The pipeline config model: one pydantic class per part of ``config/pipeline.yaml``.

The file's shape (load it with :func:`acoustic_pipelines.config.loading.load_config`)::

    destinations:
      - name: acoustic                       # [a-z0-9_]+, unique
        customer_prefix: CustomerAcme_Prod_  # Segment's checks: ends with "_", not "customer_org_"
        access_point_alias: my-alias-s3alias
        region: us-east-1                    # the default
        columns: [products.0.sku, total]     # optional; see DestinationConfig.select_columns
        mappings:                            # at most 50, names unique within the destination
          - name: Track Calls
            enabled: true                    # the default
            trigger: 'type = "track"'        # or {match: all|any, conditions: [{field, operator, value}]}
            mapping: {...}                   # Segment's mapping directives
    signals: {...}                           # signal rules: see config/signals.py
    exports: {}

Each destination is one Acoustic (Actions) destination of Segment (reference ``segment.md`` §6).
Validating compiles every trigger and mapping once: :attr:`DestinationConfig.rules` holds the
compiled predicates and transforms, so processing an event never walks the config again.

The models are strict, immutable and refuse unknown keys. A value that fails raises a
:class:`~pydantic_core.PydanticCustomError` of type :data:`OWN_ERROR` whose message is complete,
with an optional ``at`` extending its location. The checks over the file as a whole (unique
names, the mapping limit, no secrets: :func:`whole_file_problems`) run on the raw data, so that
the loader can report them beside the errors of single items; :class:`PipelineConfig` runs them
too when built directly.

The public names are re-exported by :mod:`acoustic_pipelines.config.loading`; import them from there.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from acoustic_pipelines.acoustic.rows import HEADER_KEYS, check_destination_settings
from acoustic_pipelines.actions.mappings.kit import (
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
    render_fql,
)

#: A location in the config file: keys and list indexes, ``("destinations", 0, "name")``.
Loc = tuple[str | int, ...]

#: Most mappings one destination may hold (Segment's limit per destination, segment.md §8).
MAX_MAPPINGS: Final = 50
DESTINATION_NAME_PATTERN: Final = "[a-z0-9_]+"
#: Pydantic error type of this model's own errors: the message is complete as it is.
OWN_ERROR: Final = "config"
#: Pydantic error type of the whole-file checks when the model is built directly.
WHOLE_FILE_ERROR: Final = "config_whole_file"

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlevel = 2


def show(value: Any) -> str:
    """A short repr of a received value for a message."""
    return _SHORT.repr(value)


def _problem(message: str, *, at: Loc = (), **context: Any) -> PydanticCustomError:
    """A complete error message for pydantic; ``at`` extends the location of the failing value."""
    return PydanticCustomError(OWN_ERROR, "{message}", {"message": message, "at": at, **context})


def require_name(name: str, what: str, example: str) -> str:
    """``name`` unless it is blank; then the problem, naming what needs it and an example."""
    if not name.strip():
        raise _problem(f"{what} needs a name (e.g. {example}); got {show(name)}")
    return name


def raw_list(value: Any, key: str) -> list[Any]:
    """``value[key]`` of the raw data when value is a dict and that is a list, else ``[]``."""
    found = value.get(key) if isinstance(value, dict) else None
    return found if isinstance(found, list) else []


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
            f"{{match: all|any, conditions: [{{field, operator, value}}]}}; got {show(data)}"
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
                        f"{where or '/'}: the key {show(key)} is {type(key).__name__}; "
                        "JSON keys are text, quote it in the YAML"
                    )
                stack.append((item, f"{where}/{key}"))
        elif isinstance(node, list):
            stack.extend((item, f"{where}/{index}") for index, item in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            return f"{where or '/'}: {node} is not a JSON number"
        elif node is not None and not isinstance(node, str | int | float | bool):
            return f"{where or '/'}: {show(node)} ({type(node).__name__}) is not a JSON value"
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
        return f"MappingDirectives({show(self.raw)})"


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
        return require_name(name, "a mapping", "Track Calls")

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
            raise _problem(str(problem))
    return value


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
                f"it names lake folders); got {show(name)}"
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
                raise _problem(f"a column name cannot be blank; got {show(column)}", at=(index,))
            if column in seen:
                raise _problem(f"column {column!r} is listed twice", at=(index,))
            seen.add(column)
        return columns

    @model_validator(mode="after")
    def _compile_rules(self) -> DestinationConfig:
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
