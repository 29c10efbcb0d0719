"""The pipeline config file (``config/pipeline.yaml``): read it, validate it, say what is wrong.

:func:`load_config` reads the YAML file (``$ACOUSTIC_PIPELINES_CONFIG``, else the default),
validates it against the model of :mod:`acoustic_pipelines.config.destinations` (which compiles every
trigger and mapping once) and returns a :class:`PipelineConfig`. Every problem of the file is
reported at once in one :class:`ConfigError`, each as ``"<file>: <dotted.path>: <what is
wrong>"`` and in file order: the errors of single values, the checks over the whole file (unique
names, at most 50 mappings a destination) and secrets, which never sit in the file
(:mod:`acoustic_pipelines.config.secrets`). Triggers and mappings that are valid but probably
not what their author meant give warnings (:attr:`PipelineConfig.warnings`,
:mod:`acoustic_pipelines.config.lint`), never errors.

The model's names are importable from here as well.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from acoustic_pipelines import settings
from acoustic_pipelines.config.destinations import (
    MAX_MAPPINGS,
    OWN_ERROR,
    WHOLE_FILE_ERROR,
    DestinationConfig,
    Loc,
    MappingConfig,
    MappingDirectives,
    MappingRule,
    Trigger,
    TriggerCondition,
    show,
)
from acoustic_pipelines.config.lint import config_warnings
from acoustic_pipelines.config.pipeline import PipelineConfig, dotted, whole_file_problems
from acoustic_pipelines.config.secrets import S3_ACCESS_KEY_ENV, S3_SECRET_ENV
from acoustic_pipelines.config.signals import SignalRule, SignalRuleConfig, SignalsConfig

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
    "SignalRule",
    "SignalRuleConfig",
    "SignalsConfig",
    "Trigger",
    "TriggerCondition",
    "load_config",
    "parse_config",
]

log = logging.getLogger(__name__)


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


def parse_config(text: str, *, file: str = "<config>") -> PipelineConfig:
    """Validate and compile a config from YAML text; ``file`` names it in messages.

    Raises:
        ConfigError: with every problem of the text at once.
    """
    data = _read_yaml(text, file)
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"{type(data).__name__} {show(data)}"
        raise ConfigError(
            file,
            [f"{file}: (top level): expected a mapping with a `destinations:` list; got {got}"],
        )
    problems = whole_file_problems(data)
    config: PipelineConfig | None = None
    try:
        config = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, reported={loc for loc, _ in problems})
    problems.sort(key=lambda problem: _file_order(problem[0], data))
    failed = {loc for loc, _ in problems}
    warnings = [f"{file}: {dotted(loc)}: {w}" for loc, w in config_warnings(data, failed)]
    if problems or config is None:
        lines = [f"{file}: {dotted(loc)}: {message}" for loc, message in problems]
        raise ConfigError(file, lines, warnings)
    config._warnings = warnings  # set here: they are known only once the file is read
    config._source = file
    log.debug(
        "config %s: %d destinations, %d mappings, %d warnings",
        file,
        len(config.destinations),
        config.mapping_count,
        len(warnings),
    )
    return config


# --------------------------------------------------------------------------------------------
# YAML
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


# --------------------------------------------------------------------------------------------
# Pydantic's errors in the words of this file
# --------------------------------------------------------------------------------------------


def _file_order(loc: Loc, data: Any) -> list[int]:
    """Sort key in file order: each step's position in its parent (a missing key comes last)."""
    order: list[int] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            order.append(list(node).index(part) if part in node else len(node))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            order.append(part)
            node = node[part] if part < len(node) else None
        else:
            break
    return order


def _pydantic_problems(exc: ValidationError, *, reported: Set[Loc]) -> list[tuple[Loc, str]]:
    """(location, message) for each pydantic error, in the words of this config file.

    The whole-file checks are left out (``parse_config`` runs them on the raw file), and so is an
    unknown key they already ``reported`` (a secret is not a field: it is refused as a secret).
    """
    found: list[tuple[Loc, str]] = []
    for error in exc.errors(include_url=False):
        kind = error["type"]
        context = error.get("ctx") or {}
        loc = tuple(error["loc"]) + tuple(context.get("at", ()))
        if kind == WHOLE_FILE_ERROR or (kind == "extra_forbidden" and loc in reported):
            continue
        if kind == OWN_ERROR and context.get("errors"):
            found.extend((loc, message) for message in context["errors"])
            continue
        if kind == OWN_ERROR:
            message = context["message"]
        elif kind == "extra_forbidden":
            message = _unknown_key_message(loc)
        elif kind == "missing":
            message = f"`{loc[-1]}` is required and missing"
        else:
            message = f"{error['msg']}; got {show(error['input'])}"
        found.append((loc, message))
    return found


def _unknown_key_message(loc: Loc) -> str:
    """``unknown key `x`; expected one of: …`` naming the keys of the model at that place."""
    model = _model_at(loc[:-1])
    expected = f"; expected one of: {', '.join(_public_keys(model))}" if model else ""
    return f"unknown key `{loc[-1]}`{expected}"


def _model_at(loc: Loc) -> type[BaseModel] | None:
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
    """The model class inside a field's annotation (``list[X]``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None


def _public_keys(model: type[BaseModel]) -> list[str]:
    """The keys a user may write for a model (not the internal ones, such as ``Trigger.text``)."""
    return [
        name
        for name, info in model.model_fields.items()
        if not (isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("internal"))
    ]
