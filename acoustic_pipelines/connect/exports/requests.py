"""`exportSignals` requests: the 28 signal type names, the window, notifications, `to.sftp`.

Sources: seed 003 (28 signal type names, the two `to.sftp` forms, notifications) and
../shared/reference/acoustic-connect-api.md §4 and §8 (#12 job names, #18 window). One set of
rules: the client checks a request with them before sending, the sandbox enforces them, so both
give the same messages. Every problem is reported at once, each naming its argument path and the
value received. Only the server can check uniqueness (job name, `to.sftp.path`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from acoustic_pipelines.connect.signals.content import EMAIL, SIGNAL_TYPES

__all__ = [
    "BEHAVIOR_SIGNAL_TYPES",
    "DEFAULT_FILE_NAME",
    "DEFAULT_FOLDER",
    "EXPORT_SIGNAL_TYPES",
    "MARKETING_SIGNAL_TYPES",
    "ExportProblem",
    "ExportRequest",
    "check_export_request",
    "check_parent_folder",
    "check_path",
    "parse_timestamp",
]

BAD_USER_INPUT = "BAD_USER_INPUT"

BEHAVIOR_SIGNAL_TYPES = tuple(SIGNAL_TYPES)
MARKETING_SIGNAL_TYPES = (
    *("emailClick", "emailDelivery", "emailFailure", "emailInbound", "emailOpen", "emailSend"),
    *("smsClick", "smsDelivery", "smsFailure", "smsInbound", "smsSend"),
    *("whatsAppClick", "whatsAppDelivery", "whatsAppFailure", "whatsAppInbound"),
    *("whatsAppOpen", "whatsAppSend"),
)
EXPORT_SIGNAL_TYPES = BEHAVIOR_SIGNAL_TYPES + MARKETING_SIGNAL_TYPES

DEFAULT_FOLDER = "Export/Signals"
DEFAULT_FILE_NAME = "Signals_Export.csv"
# The documented timestamp form: ISO 8601, UTC, milliseconds (seed 003 examples).
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
PARENT_FOLDER_CHARACTERS = re.compile(r"^[A-Za-z0-9 _/-]+$")
UNSAFE_PATH_CHARACTERS = re.compile(r"[\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ExportProblem:
    """One thing wrong with an exportSignals call: argument path, API error code, message."""

    path: str
    code: str
    message: str


@dataclass(frozen=True)
class ExportRequest:
    """A valid exportSignals request (`to.sftp` in at most one of its two forms)."""

    job_name: str
    signal_types: tuple[str, ...]
    timestamp_start: str
    timestamp_end: str
    notifications: tuple[str, ...]
    parent_folder: str | None = None
    naming_prefix: str | None = None
    path: str | None = None

    def to_variables(self) -> dict[str, Any]:
        """The request as exportSignals arguments: `jobName`, `export`, `notifications`, `to`."""
        window = {
            "signalTypes": list(self.signal_types),
            "timestampStart": self.timestamp_start,
            "timestampEnd": self.timestamp_end,
        }
        variables: dict[str, Any] = {"jobName": self.job_name, "export": {"signals": window}}
        if self.notifications:
            variables["notifications"] = [
                {"channel": "EMAIL", "destination": to} for to in self.notifications
            ]
        sftp = {
            "parentFolder": self.parent_folder,
            "namingPrefix": self.naming_prefix,
            "path": self.path,
        }
        if any(v is not None for v in sftp.values()):
            variables["to"] = {"sftp": {k: v for k, v in sftp.items() if v is not None}}
        return variables


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."


def _problem(path: str, value: Any, expected: str) -> ExportProblem:
    return ExportProblem(path, BAD_USER_INPUT, f"`{path}` is {_show(value)}; expected {expected}")


def check_export_request(
    *,
    job_name: str,
    export: Mapping[str, Any],
    notifications: Sequence[Mapping[str, Any]] | None,
    to: Mapping[str, Any] | None,
) -> tuple[ExportRequest | None, list[ExportProblem]]:
    """The request if every argument is valid, else None and every problem found.

    Takes the arguments as the GraphQL schema shapes them (`export.signals.signalTypes`, …).
    """
    signals = export["signals"]
    sftp = (to or {}).get("sftp") or {}
    problems = [
        *_check_job_name(job_name),
        *_check_signal_types(signals["signalTypes"]),
        *_check_window(signals["timestampStart"], signals["timestampEnd"]),
        *_check_notifications(notifications or ()),
        *(_check_target(sftp) if to is not None else []),
    ]
    if problems:
        return None, problems
    request = ExportRequest(
        job_name=job_name,
        signal_types=tuple(dict.fromkeys(signals["signalTypes"])),
        timestamp_start=signals["timestampStart"],
        timestamp_end=signals["timestampEnd"],
        notifications=tuple(n["destination"] for n in notifications or ()),
        parent_folder=_strip_slash(sftp.get("parentFolder")),
        naming_prefix=sftp.get("namingPrefix"),
        path=sftp.get("path"),
    )
    return request, []


def _check_job_name(job_name: str) -> list[ExportProblem]:
    return [] if job_name.strip() else [_problem("jobName", job_name, "a non-blank job name")]


def _check_signal_types(types: Sequence[str]) -> list[ExportProblem]:
    path = "export.signals.signalTypes"
    if not types:
        return [_problem(path, types, "at least one signal type name")]
    expected = "one of the 28 signal type names: " + ", ".join(EXPORT_SIGNAL_TYPES)
    return [
        _problem(f"{path}[{i}]", name, expected)
        for i, name in enumerate(types)
        if name not in EXPORT_SIGNAL_TYPES
    ]


def parse_timestamp(value: Any) -> datetime | None:
    """A documented export timestamp (`2025-07-01T00:00:00.000Z`) as a datetime, else None."""
    if not isinstance(value, str) or not TIMESTAMP.match(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13: the pattern fits, the calendar does not
        return None


def _check_window(start: Any, end: Any) -> list[ExportProblem]:
    """Both ends ISO 8601 UTC with milliseconds, start ≤ end (both inclusive, §8 #18)."""
    expected = 'an ISO 8601 UTC date-time with milliseconds, e.g. "2025-07-01T00:00:00.000Z"'
    problems = [
        _problem(f"export.signals.{name}", value, expected)
        for name, value in (("timestampStart", start), ("timestampEnd", end))
        if parse_timestamp(value) is None
    ]
    if not problems and parse_timestamp(end) < parse_timestamp(start):
        problems.append(
            _problem(
                "export.signals.timestampEnd", end, f"a time at or after timestampStart {start}"
            )
        )
    return problems


def _check_notifications(notifications: Sequence[Mapping[str, Any]]) -> list[ExportProblem]:
    """Every destination an email address (channel EMAIL is the schema's only enum value)."""
    return [
        _problem(f"notifications[{i}].destination", n["destination"], "an email address")
        for i, n in enumerate(notifications)
        if not EMAIL.match(n["destination"])
    ]


def _check_target(sftp: Mapping[str, Any]) -> list[ExportProblem]:
    """`to.sftp`: either `path`, or `parentFolder` and/or `namingPrefix` (seed 003, §4.4)."""
    # In the schema's field order, so the message is the same whoever built the mapping.
    order = {"parentFolder": 0, "namingPrefix": 1, "path": 2}
    given = {
        k: v for k, v in sorted(sftp.items(), key=lambda kv: order.get(kv[0], 3)) if v is not None
    }
    if "path" in given and len(given) > 1:
        others = " and ".join(k for k in ("parentFolder", "namingPrefix") if k in given)
        return [
            _problem(
                "to.sftp",
                given,
                f"either `path` or `parentFolder` + `namingPrefix`, not `path` with {others}",
            )
        ]
    if not given:
        return [_problem("to.sftp", dict(sftp), "`path`, or `parentFolder` and/or `namingPrefix`")]
    if "path" in given:
        return check_path(given["path"])
    return [
        *(check_parent_folder(given["parentFolder"]) if "parentFolder" in given else []),
        *(_check_naming_prefix(given["namingPrefix"]) if "namingPrefix" in given else []),
    ]


def check_parent_folder(folder: str, path: str = "to.sftp.parentFolder") -> list[ExportProblem]:
    """`to.sftp.parentFolder`: under Export/Signals, letters, digits, spaces, -, _ and / only."""
    if folder != DEFAULT_FOLDER and not folder.startswith(DEFAULT_FOLDER + "/"):
        return [_problem(path, folder, f'a folder starting with "{DEFAULT_FOLDER}"')]
    if not PARENT_FOLDER_CHARACTERS.match(folder):
        return [_problem(path, folder, "only letters, digits, spaces, -, _ and /")]
    if "//" in folder:
        return [_problem(path, folder, "a folder path without empty segments")]
    return []


def _check_naming_prefix(prefix: str) -> list[ExportProblem]:
    # Undocumented beyond "a prefix of the file name": refuse only what cannot be in a file name.
    if "/" in prefix or UNSAFE_PATH_CHARACTERS.search(prefix):
        return [_problem("to.sftp.namingPrefix", prefix, "a file name prefix without / or \\")]
    return []


def check_path(path: str, field: str = "to.sftp.path") -> list[ExportProblem]:
    """`to.sftp.path`: a relative file path ending `.csv` inside the subscription folder."""
    if not path.endswith(".csv"):
        return [_problem(field, path, "a file path ending with the .csv extension")]
    segments = path.split("/")
    if (
        path.startswith("/")
        or UNSAFE_PATH_CHARACTERS.search(path)
        or any(s in ("", ".", "..") for s in segments)
        or segments[-1] == ".csv"
    ):
        return [
            _problem(
                field, path, "a relative file path like Behavior Signals/Order/Demo_Export.csv"
            )
        ]
    return []


def _strip_slash(folder: str | None) -> str | None:
    return folder.rstrip("/") if folder else folder
