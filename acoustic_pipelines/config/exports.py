"""The `exports:` section of the pipeline config: which signals come back out of Connect, and how
much of Acoustic's daily export quota the pipeline may use.

    exports:
      job_name_prefix: acoustic-pipelines   # jobName = <prefix>-<definition>-<start>-<end>-<attempt>
      reserve: {jobs: 2, rows: 100000, bytes: 50000000}   # held back for jobs run elsewhere
      limits: {jobs: 20, rows: 2000000, bytes: 1000000000}  # Acoustic's; may only be lowered
      max_days_per_job: 31                  # a packed range job covers at most this many days
      collect_timeout_seconds: 3600         # how long a run waits for a job's file on SFTP
      estimate: {rows_per_day: 10000, bytes_per_row: 300}   # when no history and no pushes
      definitions:
        - name: behavior                    # [a-z0-9_]+, unique
          enabled: true                     # the default
          signal_types: [addToCart, order, ...]   # of the 28 export signal types
          folder: Export/Signals/Pipelines  # SFTP folder of the files (under Export/Signals)
          naming_prefix: behavior_          # put in front of each file name
          notify: [data-team@example.com]   # EMAIL notifications when a job completes
          estimate: {...}                   # optional: this definition's own defaults

Each definition becomes one exportSignals job per packed window of days. The file of a job is
named by the pipeline (`to.sftp.path` = `<folder>/<naming_prefix><name>_<start>_<end>[_<n>].csv`)
so its place on the SFTP server is known before the job is submitted.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from acoustic_pipelines.config.destinations import _ConfigModel, _problem, require_name, show
from acoustic_pipelines.connect.exports.quota import DailyLimits, Usage
from acoustic_pipelines.connect.exports.requests import (
    EXPORT_SIGNAL_TYPES,
    check_parent_folder,
)
from acoustic_pipelines.connect.signals.content import EMAIL

__all__ = ["ExportDefinitionConfig", "ExportEstimate", "ExportQuantities", "ExportsConfig"]

DEFINITION_NAME = re.compile(r"[a-z0-9_]+")
JOB_NAME_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,40}")
DEFAULT_FOLDER = "Export/Signals/acoustic-pipelines"
_DOCUMENTED = DailyLimits()


class ExportQuantities(_ConfigModel):
    """Jobs, rows and bytes (compressed output): a reserve, or limits below Acoustic's."""

    jobs: int = Field(default=0, ge=0)
    rows: int = Field(default=0, ge=0)
    bytes: int = Field(default=0, ge=0)

    def usage(self) -> Usage:
        """The quantities as a quota :class:`Usage`."""
        return Usage(jobs=self.jobs, bytes=self.bytes, rows=self.rows)


class ExportLimits(_ConfigModel):
    """Daily limits to plan against: Acoustic's documented ones, or lower (never higher)."""

    jobs: int = Field(default=_DOCUMENTED.jobs, ge=0, le=_DOCUMENTED.jobs)
    rows: int = Field(default=_DOCUMENTED.rows, ge=0, le=_DOCUMENTED.rows)
    bytes: int = Field(default=_DOCUMENTED.bytes, ge=0, le=_DOCUMENTED.bytes)

    def daily_limits(self) -> DailyLimits:
        """The limits as quota :class:`DailyLimits`."""
        return DailyLimits(jobs=self.jobs, bytes=self.bytes, rows=self.rows)


class ExportEstimate(_ConfigModel):
    """What a day of one definition is assumed to export when nothing better is known."""

    rows_per_day: int = Field(default=10_000, ge=0)
    bytes_per_row: int = Field(default=300, ge=1)


class ExportDefinitionConfig(_ConfigModel):
    """One export definition: signal types, where the files go, who is told."""

    name: str
    enabled: bool = True
    signal_types: list[str]
    folder: str = DEFAULT_FOLDER
    naming_prefix: str = ""
    notify: list[str] = Field(default_factory=list)
    estimate: ExportEstimate | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        require_name(name, "an export definition", "behavior")
        if not DEFINITION_NAME.fullmatch(name):
            raise _problem(f"an export definition name is [a-z0-9_]+; got {show(name)}")
        return name

    @field_validator("signal_types")
    @classmethod
    def _signal_types(cls, types: list[str]) -> list[str]:
        if not types:
            raise _problem("an export definition needs at least one signal type")
        for index, name in enumerate(types):
            if name not in EXPORT_SIGNAL_TYPES:
                raise _problem(
                    f"{show(name)} is not an export signal type; expected one of the 28: "
                    + ", ".join(EXPORT_SIGNAL_TYPES),
                    at=(index,),
                )
            if name in types[:index]:
                raise _problem(f"signal type {name} is listed twice", at=(index,))
        return types

    @field_validator("folder")
    @classmethod
    def _folder(cls, folder: str) -> str:
        folder = folder.rstrip("/")
        for problem in check_parent_folder(folder, "folder"):
            raise _problem(problem.message)
        return folder

    @field_validator("naming_prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9 _-]*", prefix):
            raise _problem(
                f"naming_prefix is put in front of file names: letters, digits, spaces, - and _ "
                f"only; got {show(prefix)}"
            )
        return prefix

    @field_validator("notify")
    @classmethod
    def _notify(cls, addresses: list[str]) -> list[str]:
        for index, address in enumerate(addresses):
            if not EMAIL.match(address):
                raise _problem(f"{show(address)} is not an e-mail address", at=(index,))
        return addresses


class ExportsConfig(_ConfigModel):
    """The `exports:` section: export definitions and the share of the daily quota to use."""

    job_name_prefix: str = "acoustic-pipelines"
    limits: ExportLimits = Field(default_factory=ExportLimits)
    reserve: ExportQuantities = Field(default_factory=ExportQuantities)
    max_days_per_job: int | None = Field(default=None, ge=1)
    collect_timeout_seconds: float = Field(default=3600.0, gt=0)
    estimate: ExportEstimate = Field(default_factory=ExportEstimate)
    definitions: list[ExportDefinitionConfig] = Field(default_factory=list)

    @field_validator("job_name_prefix")
    @classmethod
    def _job_name_prefix(cls, prefix: str) -> str:
        if not JOB_NAME_PREFIX.fullmatch(prefix):
            raise _problem(f"job_name_prefix is 1-40 letters, digits, - or _; got {show(prefix)}")
        return prefix

    @model_validator(mode="after")
    def _reserve_leaves_room(self) -> ExportsConfig:
        for name in ("jobs", "rows", "bytes"):
            if getattr(self.reserve, name) >= getattr(self.limits, name) > 0:
                raise _problem(
                    f"reserve.{name} = {getattr(self.reserve, name):,} leaves nothing of the "
                    f"daily limit {getattr(self.limits, name):,} for the pipeline",
                    at=("reserve", name),
                )
        return self

    @property
    def enabled_definitions(self) -> list[ExportDefinitionConfig]:
        """The enabled definitions, in file order."""
        return [d for d in self.definitions if d.enabled]

    def estimate_for(self, definition: ExportDefinitionConfig) -> ExportEstimate:
        """The definition's own estimate defaults, else the section's."""
        return definition.estimate or self.estimate
