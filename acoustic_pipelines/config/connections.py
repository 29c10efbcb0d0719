"""The `connections:` section of the pipeline config: Segment Connections (reverse ETL) models.

    connections:
      write_key_env: SEGMENT_WRITE_KEY       # the variable holding the HTTP API source's write key
      warehouse_env: ACOUSTIC_PIPELINES_WAREHOUSE   # the variable holding the warehouse: a DuckDB
                                             # file path, or a postgresql:// URL
      region: us                             # us (the default) | eu: Segment's Tracking API host
      endpoint: http://127.0.0.1:8089/v1     # optional: another Tracking API (the sandbox)
      retry_days: 14                         # records that fail are retried this long, then given up
      models:
        - name: customers                    # [a-z0-9_]+, unique
          table: customers                   # or `query: SELECT ...` (one of the two)
          primary_key: id                    # the column that identifies a record
          schedule: "0 * * * *"              # cron (UTC): when a sync runs; none = by hand only
          mappings:                          # at most 50 over all models (Segment's limit)
            - name: Customer Traits          # unique within the model
              enabled: true                  # the default
              send: added_or_updated         # added | updated | added_or_updated | deleted
              action: sendIdentify           # sendTrack | sendIdentify | sendPage | sendScreen | sendGroup
              mapping:                       # Segment's mapping directives over the record:
                user_id: {"@path": "$.properties.id"}    # $.properties.<column>, $.event, $.messageId
                traits: {"@path": "$.properties"}

A mapping as Segment's UI saves it can be pasted: `message_id` (← `$.messageId`) and `consent` are
filled in when absent, as the UI does. The write key and the warehouse connection never sit in the
file, only the names of the variables holding them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from acoustic_pipelines.actions import MappingValidationError
from acoustic_pipelines.config.destinations import (
    Loc,
    MappingDirectives,
    _ConfigModel,
    _problem,
    raw_list,
    require_name,
    show,
)
from acoustic_pipelines.connections.messages import compile_message, with_hidden_defaults

__all__ = [
    "DEFAULT_RETRY_DAYS",
    "MAX_CONNECTION_MAPPINGS",
    "REGION_ENDPOINTS",
    "SENDS",
    "ConnectionMappingConfig",
    "ConnectionModelConfig",
    "ConnectionsConfig",
    "connections_problems",
    "is_valid_cron",
]

#: Segment's limit of mappings per destination instance; all models share one destination.
MAX_CONNECTION_MAPPINGS: Final = 50
DEFAULT_RETRY_DAYS: Final = 14
#: Segment's Tracking API per region (segment.md §1.5).
REGION_ENDPOINTS: Final = {
    "us": "https://api.segment.io/v1",
    "eu": "https://events.eu1.segmentapis.com/v1",
}
#: Which records a mapping sends, as Segment's Reverse ETL names the triggers.
SENDS: Final = ("added", "updated", "added_or_updated", "deleted")
MODEL_NAME: Final = re.compile(r"[a-z0-9_]+")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A table, optionally schema-qualified; each part quoted when the query is written.
_TABLE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")
_ENDPOINT: Final = re.compile(r"https?://[^\s/]+(/[^\s]*)?")

_CRON_RANGES: Final = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES: Final = (
    {},
    {},
    {},
    {
        m: i + 1
        for i, m in enumerate(
            ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
        )
    },
    {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
)
_CRON_ALIASES: Final = frozenset(("@hourly", "@daily", "@weekly", "@monthly", "@yearly"))


def is_valid_cron(text: str) -> bool:
    """Whether `text` is a five-field cron schedule (or @hourly/@daily/...) Dagster accepts."""
    if text.strip() in _CRON_ALIASES:
        return True
    parts = text.split()
    if len(parts) != 5:
        return False
    return all(
        _cron_field(part.lower(), low, high, names)
        for part, (low, high), names in zip(parts, _CRON_RANGES, _CRON_NAMES, strict=True)
    )


def _cron_field(text: str, low: int, high: int, names: dict[str, int]) -> bool:
    """One cron field: a comma list of `*`, `n`, `a-b`, each optionally `/step`."""

    def value(token: str) -> int | None:
        if token in names:
            return names[token]
        if token.isdigit() and low <= int(token) <= high:
            return int(token)
        return None

    for item in text.split(","):
        base, _, step = item.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return False
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        start, end = value(first), value(last) if dash else None
        if start is None or (dash and (end is None or end < start)):
            return False
    return True


class ConnectionMappingConfig(_ConfigModel):
    """One mapping of a model: which records it sends, with which action, built how."""

    name: str
    enabled: bool = True
    send: Literal["added", "updated", "added_or_updated", "deleted"]
    action: Literal["sendTrack", "sendIdentify", "sendPage", "sendScreen", "sendGroup"]
    mapping: MappingDirectives

    _build: Callable[[dict[str, Any]], dict[str, Any]] = PrivateAttr()

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, name: str) -> str:
        return require_name(name, "a mapping", "Customer Traits")

    @model_validator(mode="after")
    def _compile(self) -> ConnectionMappingConfig:
        raw = self.mapping.raw
        if type(raw) is not dict:
            raise _problem(
                f"a Segment Connections mapping is an object of the action's fields "
                f"(user_id, event_name, traits, ...); got {show(raw)}",
                at=("mapping",),
            )
        try:
            self._build = compile_message(self.action, with_hidden_defaults(raw))
        except MappingValidationError as exc:  # pragma: no cover - MappingDirectives checked it
            raise _problem("\n".join(exc.errors), at=("mapping",)) from None
        return self

    @property
    def build(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The compiled message builder: event → Spec message (raises MessageRejected)."""
        return self._build

    def sends(self, change: str) -> bool:
        """Whether this mapping sends a record with that change (`added`/`updated`/`deleted`)."""
        return self.send == change or (self.send == "added_or_updated" and change != "deleted")


class ConnectionModelConfig(_ConfigModel):
    """One warehouse model: the rows (a table or a query), their key, schedule and mappings."""

    name: str
    query: str | None = None
    table: str | None = None
    primary_key: str
    schedule: str | None = None
    mappings: list[ConnectionMappingConfig] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        require_name(name, "a model", "customers")
        if not MODEL_NAME.fullmatch(name):
            raise _problem(
                f"a model name is lower-case letters, digits and `_` ([a-z0-9_]+; it names "
                f"assets and ledger rows); got {show(name)}"
            )
        return name

    @field_validator("query")
    @classmethod
    def _query(cls, query: str | None) -> str | None:
        if query is not None and not query.strip():
            raise _problem("`query` is the model's SQL (SELECT ...); got an empty text")
        return query.strip().rstrip(";").strip() if query is not None else None

    @field_validator("table")
    @classmethod
    def _table(cls, table: str | None) -> str | None:
        if table is not None and not _TABLE.fullmatch(table):
            raise _problem(
                f"`table` is a table name, optionally with its schema (analytics.customers); "
                f"got {show(table)} (write a `query` for anything else)"
            )
        return table

    @field_validator("primary_key")
    @classmethod
    def _primary_key(cls, column: str) -> str:
        if not column.strip():
            raise _problem("`primary_key` names the column identifying a record; got a blank")
        return column

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, schedule: str | None) -> str | None:
        if schedule is not None and not is_valid_cron(schedule):
            raise _problem(
                f"`schedule` is a cron schedule such as '0 * * * *' (minute hour day month "
                f"weekday, UTC); got {show(schedule)}"
            )
        return schedule

    @model_validator(mode="after")
    def _one_source(self) -> ConnectionModelConfig:
        if (self.query is None) == (self.table is None):
            given = "both" if self.query is not None else "neither"
            raise _problem(
                f"a model reads either a `table` or a `query` (one of the two); got {given}"
            )
        return self

    @property
    def sql(self) -> str:
        """The SQL that reads the model: the query, or every column of the table."""
        if self.query is not None:
            return self.query
        assert self.table is not None
        return "SELECT * FROM " + ".".join(f'"{part}"' for part in self.table.split("."))

    @property
    def enabled_mappings(self) -> list[ConnectionMappingConfig]:
        """The enabled mappings, in file order."""
        return [m for m in self.mappings if m.enabled]


class ConnectionsConfig(_ConfigModel):
    """The `connections:` section: the source's write key variable, the API, the models."""

    write_key_env: str = "SEGMENT_WRITE_KEY"
    warehouse_env: str = "ACOUSTIC_PIPELINES_WAREHOUSE"
    region: Literal["us", "eu"] = "us"
    endpoint: str | None = None
    retry_days: int = Field(default=DEFAULT_RETRY_DAYS, ge=1, le=365)
    models: list[ConnectionModelConfig] = Field(default_factory=list)

    # write_key_env is checked with every secret's variable name (config/secrets.py).
    @field_validator("warehouse_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not _ENV_NAME.fullmatch(name):
            raise _problem(
                f"this names an environment variable (e.g. SEGMENT_WRITE_KEY); got {show(name)}, "
                "which is not a variable name"
            )
        return name

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, endpoint: str | None) -> str | None:
        if endpoint is not None and not _ENDPOINT.fullmatch(endpoint):
            raise _problem(
                f"`endpoint` is the Tracking API's base URL (http(s)://host[:port]/v1); "
                f"got {show(endpoint)}"
            )
        return endpoint.rstrip("/") if endpoint is not None else None

    @property
    def endpoint_url(self) -> str:
        """The Tracking API base URL: the override, else the region's host."""
        return self.endpoint or REGION_ENDPOINTS[self.region]

    def model(self, name: str) -> ConnectionModelConfig:
        """The model of that name (KeyError naming the known ones when there is none)."""
        for model in self.models:
            if model.name == name:
                return model
        known = ", ".join(m.name for m in self.models) or "none"
        raise KeyError(
            f"no Segment Connections model named {name!r} in the config (known: {known})"
        )


def connections_problems(data: Any) -> list[tuple[Loc, str]]:
    """Unique model and mapping names and the 50-mapping limit, on the raw config data."""
    section = data.get("connections") if isinstance(data, dict) else None
    models = raw_list(section, "models")
    found: list[tuple[Loc, str]] = []
    first_model: dict[str, int] = {}
    total = 0
    for index, model in enumerate(models):
        name = model.get("name") if isinstance(model, dict) else None
        if isinstance(name, str):
            if name in first_model:
                message = f"model name {name!r} is already used by model {first_model[name]}"
                found.append((("connections", "models", index, "name"), message))
            else:
                first_model[name] = index
        mappings = raw_list(model, "mappings")
        total += len(mappings)
        first_mapping: dict[str, int] = {}
        for position, mapping in enumerate(mappings):
            mapping_name = mapping.get("name") if isinstance(mapping, dict) else None
            if not isinstance(mapping_name, str):
                continue
            if mapping_name in first_mapping:
                at: Loc = ("connections", "models", index, "mappings", position, "name")
                message = (
                    f"mapping name {mapping_name!r} is already used by mapping "
                    f"{first_mapping[mapping_name]} of this model"
                )
                found.append((at, message))
            else:
                first_mapping[mapping_name] = position
    if total > MAX_CONNECTION_MAPPINGS:
        message = (
            f"{total} mappings over all models; Segment Connections holds at most "
            f"{MAX_CONNECTION_MAPPINGS} per destination (Segment's limit)"
        )
        found.append((("connections", "models"), message))
    return found
