"""The Connect sandbox's GraphQL service: `connect/schema.graphql` executed by graphql-core.

Transport-free: `ConnectService.execute(body)` takes the decoded JSON body of one POST and
returns the HTTP status and JSON answer, following the error contract of reference §7.1:
request-level failures (parse, schema validation, operation choice, variable values) answer 400
with `errors` and no `data`; business refusals answer 200 with `data.<field> = null` and one
error per problem, each with `path`, `extensions.code` (`BAD_USER_INPUT`, `FORBIDDEN`,
`DAILY_LIMIT_EXCEEDED`) and, for input problems, `extensions.field` (the argument path).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib.resources import files
from typing import Any, Protocol

from graphql import (
    GraphQLError,
    GraphQLSchema,
    VariableDefinitionNode,
    build_schema,
    execute,
    parse,
    validate,
)

from acoustic_pipelines.connect.exports.quota import DailyLimits
from acoustic_pipelines.connect.exports.requests import (
    BAD_USER_INPUT,
    ExportRequest,
    check_export_request,
)
from acoustic_pipelines.connect.signals.content import TIERS, validate_signals
from acoustic_pipelines.sandbox.connect.exports import DATASET_ID, ExportRunner, export_file_path
from acoustic_pipelines.sandbox.connect.public_keys import PublicKeyError, parse_ed25519_public_key
from acoustic_pipelines.sandbox.connect.store import (
    QUEUED,
    ConnectStore,
    DailyUsage,
    DuplicateJobError,
    ExportJob,
    iso_ms,
)

log = logging.getLogger(__name__)

GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
DAILY_LIMIT_EXCEEDED = "DAILY_LIMIT_EXCEEDED"
BAD_REQUEST = "BAD_REQUEST"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"

# The user the API key belongs to: its SFTP login (reference §5.2: the Connect login e-mail).
SANDBOX_USER = "sandbox.user@example.com"
# Job names and target paths stay taken for as long as export files are kept (§8 #12, §4.4).
EXPORT_RETENTION = timedelta(days=28)


class Problem(Protocol):
    """One input problem: `connect.signals.SignalProblem` or an `ExportProblem`."""

    path: str
    code: str
    message: str


class InputProblems(Exception):
    """A call refused for its input; the answer carries one error per problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = list(problems)


class DailyLimitExceeded(Exception):
    """exportSignals refused: one of the day's limits is reached (reference §4.5, §8 #14)."""

    def __init__(self, limit: str, used: int, maximum: int, usage: DailyUsage) -> None:
        super().__init__(
            f"the daily export limit of {maximum:,} {limit} is reached ({used:,} used on "
            f"{usage.day.isoformat()} UTC); exports are unavailable until the next UTC day"
        )
        self.limit = limit
        self.used = used
        self.maximum = maximum
        self.day = usage.day.isoformat()


@dataclass(frozen=True)
class _InputProblem:
    path: str
    code: str
    message: str


@cache
def connect_schema() -> GraphQLSchema:
    """The project's Connect schema (`acoustic_pipelines/connect/schema.graphql`), built once."""
    source = files("acoustic_pipelines.connect").joinpath("schema.graphql").read_text("utf-8")
    return build_schema(source)


class ConnectService:
    """Resolvers of the Connect API over the sandbox's storage, and the error contract."""

    def __init__(
        self,
        store: ConnectStore,
        runner: ExportRunner,
        *,
        tier: str,
        limits: DailyLimits,
        clock: Callable[[], datetime],
    ) -> None:
        if tier not in TIERS:
            raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
        self.store = store
        self.tier = tier
        self.limits = limits
        self._runner = runner
        self._clock = clock
        self._refusals_lock = threading.Lock()
        self.refused_submissions = 0  # exportSignals calls answered DAILY_LIMIT_EXCEEDED
        self._root = {
            "dataSets": self._data_sets,
            "createSignals": self._create_signals,
            "exportSignals": self._export_signals,
            "updatePublicKeyForConnectUser": self._update_public_key,
        }

    def execute(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Run one GraphQL request body; the HTTP status and the JSON answer."""
        refusal = _check_body(body)
        if refusal:
            return 400, error_answer(refusal, BAD_REQUEST)
        schema = connect_schema()
        try:
            document = parse(body["query"])
        except GraphQLError as exc:
            return 400, {"errors": [_format(exc, GRAPHQL_VALIDATION_FAILED)]}
        invalid = validate(schema, document)
        if invalid:
            return 400, {"errors": [_format(e, GRAPHQL_VALIDATION_FAILED) for e in invalid]}
        result = execute(
            schema,
            document,
            root_value=self._root,
            variable_values=body.get("variables"),
            operation_name=body.get("operationName"),
        )
        if result.data is None and result.errors:  # refused before any field ran
            return 400, {"errors": [_format(e, _request_error_code(e)) for e in result.errors]}
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [entry for e in result.errors for entry in _expand(e)]
        return 200, answer

    def usage(self) -> dict[str, Any]:
        """Today's export usage against the three daily limits."""
        usage = self.store.usage(self._clock().date())
        return {
            "day": usage.day.isoformat(),
            **{
                name: {"used": getattr(usage, name), "limit": getattr(self.limits, name)}
                for name in ("jobs", "bytes", "rows")
            },
            "exhausted": self._exhausted(usage) is not None,
            "refused_submissions": self.refused_submissions,
        }

    def set_usage(self, body: Any) -> dict[str, Any]:
        """Set today's usage from `{"jobs": n, "bytes": n, "rows": n}` (omitted keys stay)."""
        if not isinstance(body, dict) or not body or set(body) - {"jobs", "bytes", "rows"}:
            raise ValueError('send a JSON object with any of "jobs", "bytes", "rows"')
        bad = [k for k, v in body.items() if type(v) is not int or v < 0]
        if bad:
            raise ValueError(f"{', '.join(bad)}: expected a whole number ≥ 0")
        today = self.store.usage(self._clock().date())
        values = {name: body.get(name, getattr(today, name)) for name in ("jobs", "rows", "bytes")}
        self.store.set_usage(today.day, **values)
        return self.usage()

    # --- resolvers -------------------------------------------------------------------------

    def _data_sets(self, _info: Any, filter: Sequence[Mapping[str, Any]] | None = None) -> dict:
        audience = {
            "dataSetId": DATASET_ID,
            "name": "Sandbox audience",
            "type": "AUDIENCE",
            "consentGroups": [{"id": "sandbox-consent-email", "name": "Email"}],
        }
        matches = all(
            f.get("eq") is None or audience.get(f["field"]) == f["eq"] for f in filter or ()
        )
        return {"nodes": [audience] if matches else []}

    def _create_signals(self, _info: Any, signals: list[dict[str, Any]]) -> dict:
        problems = validate_signals(signals, tier=self.tier)
        if problems:
            raise InputProblems(problems)
        return {"signalIds": self.store.add_signals(signals, received=self._clock())}

    def _export_signals(
        self,
        _info: Any,
        jobName: str,  # the GraphQL argument's name
        export: dict[str, Any],
        notifications: list[dict[str, Any]] | None = None,
        to: dict[str, Any] | None = None,
    ) -> dict:
        request, problems = check_export_request(
            job_name=jobName, export=export, notifications=notifications, to=to
        )
        if request is None:
            raise InputProblems(problems)
        job = self._submit(request)
        self._runner.notify()
        return {"dataJobId": job.job_id, "path": job.path, "fileFormat": "CSV"}

    def _update_public_key(self, _info: Any, publicKey: str) -> dict:
        key = publicKey.strip()
        try:
            parse_ed25519_public_key(key)
        except PublicKeyError as exc:
            shown = key if len(key) <= 60 else key[:57] + "..."
            message = f"`publicKey` {exc} (received {shown!r}); expected an ssh-ed25519 key line"
            raise InputProblems([_InputProblem("publicKey", BAD_USER_INPUT, message)]) from None
        self.store.set_public_key(SANDBOX_USER, key)
        return {"publicKey": key}

    # --- export submission -----------------------------------------------------------------

    def _submit(self, request: ExportRequest) -> ExportJob:
        """Record the job after the daily limits and name/path uniqueness; raises to refuse."""
        now = self._clock()
        job_id = str(uuid.uuid4())
        for unique in ("", job_id[:8]):
            job = ExportJob(
                job_id=job_id,
                job_name=request.job_name,
                signal_types=request.signal_types,
                timestamp_start=request.timestamp_start,
                timestamp_end=request.timestamp_end,
                path=export_file_path(request, day=now.date(), unique=unique),
                notifications=request.notifications,
                status=QUEUED,
                submitted_at=iso_ms(now),
            )
            try:
                self.store.submit_job(
                    job, check=self._refuse_exhausted, since=now - EXPORT_RETENTION
                )
                return job
            except DuplicateJobError as exc:
                # A generated file name may collide (job names differing only in punctuation):
                # retry once with the job id in it; a name or a given path is the caller's.
                if exc.field != "path" or request.path is not None or unique:
                    field = "to.sftp.path" if exc.field == "path" else exc.field
                    raise InputProblems([_duplicate(field, exc.value)]) from None
        raise AssertionError("unreachable")

    def _refuse_exhausted(self, usage: DailyUsage) -> None:
        exhausted = self._exhausted(usage)
        if exhausted:
            with self._refusals_lock:
                self.refused_submissions += 1
            raise DailyLimitExceeded(*exhausted, usage)

    def _exhausted(self, usage: DailyUsage) -> tuple[str, int, int] | None:
        """The first limit at or over its maximum: (name, used, maximum)."""
        for name in ("jobs", "bytes", "rows"):
            used, maximum = getattr(usage, name), getattr(self.limits, name)
            if used >= maximum:
                return name, used, maximum
        return None


def _duplicate(field: str, value: str) -> _InputProblem:
    message = (
        f"`{field}` is {value!r}, already used by an export job of the last "
        f"{EXPORT_RETENTION.days} days; expected a unique {field}"
    )
    return _InputProblem(field, BAD_USER_INPUT, message)


def _check_body(body: Any) -> str | None:
    """Why a decoded request body is not a GraphQL request, or None."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object with `query`"
    if not isinstance(body.get("query"), str) or not body["query"].strip():
        return "the request body needs `query`: a GraphQL document"
    if body.get("variables") is not None and not isinstance(body["variables"], dict):
        return "`variables` must be a JSON object"
    if body.get("operationName") is not None and not isinstance(body["operationName"], str):
        return "`operationName` must be a string"
    return None


def error_answer(message: str, code: str) -> dict[str, Any]:
    """An answer holding one error with its code, and no data."""
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


def _request_error_code(error: GraphQLError) -> str:
    """Variable values that do not fit their types are bad input; the rest is the document's."""
    if any(isinstance(node, VariableDefinitionNode) for node in error.nodes or ()):
        return BAD_USER_INPUT
    return GRAPHQL_VALIDATION_FAILED


def _format(error: GraphQLError, code: str, **extensions: Any) -> dict[str, Any]:
    entry = error.formatted
    entry["extensions"] = {"code": code, **extensions}
    return entry


def _expand(error: GraphQLError) -> list[dict[str, Any]]:
    """A resolver's error as answer entries: one per input problem, or one with its code."""
    original = error.original_error
    if isinstance(original, InputProblems):
        return [
            {**_format(error, p.code, field=p.path), "message": p.message}
            for p in original.problems
        ]
    if isinstance(original, DailyLimitExceeded):
        return [
            _format(
                error,
                DAILY_LIMIT_EXCEEDED,
                limit=original.limit,
                used=original.used,
                maximum=original.maximum,
                day=original.day,
            )
        ]
    if original is not None:
        log.error("Connect sandbox resolver failed", exc_info=original)
        return [{**_format(error, INTERNAL_SERVER_ERROR), "message": "internal sandbox error"}]
    return [_format(error, INTERNAL_SERVER_ERROR)]
