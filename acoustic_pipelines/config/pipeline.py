"""The whole pipeline config file: its model and the checks that span the file.

Destinations and mappings are modelled in :mod:`acoustic_pipelines.config.destinations`, signal rules in
:mod:`acoustic_pipelines.config.signals`; this module puts them together.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, PrivateAttr, ValidatorFunctionWrapHandler, model_validator
from pydantic_core import PydanticCustomError

from acoustic_pipelines.config.connections import ConnectionsConfig, connections_problems
from acoustic_pipelines.config.destinations import (
    MAX_MAPPINGS,
    WHOLE_FILE_ERROR,
    DestinationConfig,
    Loc,
    _ConfigModel,
    raw_list,
)
from acoustic_pipelines.config.exports import ExportsConfig
from acoustic_pipelines.config.secrets import secret_problems
from acoustic_pipelines.config.signals import SignalsConfig


class PipelineConfig(_ConfigModel):
    """The whole pipeline config file; load it with :func:`acoustic_pipelines.config.loading.load_config`.

    Export definitions and the daily export quota are modelled in
    :mod:`acoustic_pipelines.config.exports`, Segment Connections models in
    :mod:`acoustic_pipelines.config.connections`.
    """

    destinations: list[DestinationConfig]
    signals: SignalsConfig = Field(default_factory=SignalsConfig)
    exports: ExportsConfig = Field(default_factory=ExportsConfig)
    connections: ConnectionsConfig | None = None

    _warnings: list[str] = PrivateAttr(default_factory=list)
    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _whole_file_checks(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        config = handler(data)
        problems = whole_file_problems(data)
        if problems:
            message = "; ".join(f"{dotted(loc)}: {text}" for loc, text in problems)
            raise PydanticCustomError(WHOLE_FILE_ERROR, "{message}", {"message": message})
        return config

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
# Checks over the file as a whole, on the raw data (items may be invalid)
# --------------------------------------------------------------------------------------------


def dotted(loc: Loc) -> str:
    """A location as the dotted path messages show: ``destinations.0.name``."""
    return ".".join(str(part) for part in loc) or "(top level)"


def _duplicate_names(items: list[Any], what: str, at: Loc) -> list[tuple[Loc, str]]:
    """``(location of the name, message)`` for each item whose ``name`` repeats an earlier one."""
    first: dict[str, int] = {}
    found: list[tuple[Loc, str]] = []
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            message = f"{what} name {name!r} is already used by {what} {first[name]}"
            found.append(((*at, index, "name"), message))
        else:
            first[name] = index
    return found


def whole_file_problems(data: Any) -> list[tuple[Loc, str]]:
    """Unique names, the mapping limit and secrets, checked on the raw config data.

    Returns:
        ``(location, message)`` per problem; destinations first, then secrets.
    """
    destinations = raw_list(data, "destinations")
    found = _duplicate_names(destinations, "destination", ("destinations",))
    for index, destination in enumerate(destinations):
        at: Loc = ("destinations", index, "mappings")
        mappings = raw_list(destination, "mappings")
        if len(mappings) > MAX_MAPPINGS:
            message = (
                f"{len(mappings)} mappings; a destination holds at most {MAX_MAPPINGS} "
                "(Segment's limit): split them over several destinations"
            )
            found.append((at, message))
        found.extend(_duplicate_names(mappings, "mapping", at))
    signals = data.get("signals") if isinstance(data, dict) else None
    found.extend(_duplicate_names(raw_list(signals, "rules"), "signal rule", ("signals", "rules")))
    exports = data.get("exports") if isinstance(data, dict) else None
    found.extend(
        _duplicate_names(
            raw_list(exports, "definitions"), "export definition", ("exports", "definitions")
        )
    )
    found.extend(connections_problems(data))
    return found + secret_problems(data)
