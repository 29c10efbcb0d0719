"""Errors the Acoustic Connect client raises, and how a failed response maps onto them.

Every error says what was sent or received and what to do next. None of them ever holds the API
key: the client redacts it from anything the server echoes (:func:`redact`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from acoustic_pipelines.connect.signals.content import SignalProblem

__all__ = [
    "AuthenticationError",
    "ConnectError",
    "DailyLimitReachedError",
    "ForbiddenError",
    "InvalidInputError",
    "RateLimitedError",
    "UnavailableError",
    "error_from_response",
    "redact",
]

# `extensions.code` values of Connect GraphQL errors (reference §7.1 [A]; Connect documents none).
UNAUTHENTICATED = "UNAUTHENTICATED"
BAD_USER_INPUT = "BAD_USER_INPUT"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
FORBIDDEN = "FORBIDDEN"
DAILY_LIMIT_EXCEEDED = "DAILY_LIMIT_EXCEEDED"
# Codes this client gives failures that carry no GraphQL code.
RATE_LIMITED = "RATE_LIMITED"
UNAVAILABLE = "UNAVAILABLE"
NETWORK_ERROR = "NETWORK_ERROR"
BAD_RESPONSE = "BAD_RESPONSE"

MAX_LISTED = 20


class ConnectError(Exception):
    """Root of every error the Acoustic Connect client raises.

    Args:
        message: What failed, what was received and what was expected.
        code: The GraphQL `extensions.code`, or one of this module's codes (`NETWORK_ERROR`, …).
        field: The input field at fault (e.g. `signals[3].signalContent.effect`), when known.
        value: The value received for that field, when known.
        status: The HTTP status of the last response, None when none arrived.
        errors: The GraphQL `errors` entries of the response, as received (redacted).
        problems: Every problem found locally before sending (the request was then not sent).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        field: str | None = None,
        value: Any = None,
        status: int | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        problems: Sequence[SignalProblem] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.value = value
        self.status = status
        self.errors = tuple(errors)
        self.problems = tuple(problems)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, field={self.field!r}, message={self.message!r})"


class AuthenticationError(ConnectError):
    """Raised when Connect refuses the API key (HTTP 401 or `UNAUTHENTICATED`); never retried."""


class InvalidInputError(ConnectError):
    """Raised for input Connect, the local schema or the signal rules refuse; never retried."""


class ForbiddenError(ConnectError):
    """Raised when the subscription tier does not allow the request (`FORBIDDEN`); never retried."""


class DailyLimitReachedError(ConnectError):
    """Raised when a daily limit is used up (`DAILY_LIMIT_EXCEEDED`); retry after 00:00 UTC."""


class RateLimitedError(ConnectError):
    """Raised when Connect still answers HTTP 429 after every retry.

    Args:
        retry_after: Seconds the last response asked to wait (`Retry-After`), None if absent.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class UnavailableError(ConnectError):
    """Raised when Connect cannot be reached or answers 5xx after every retry."""


def problems_error(operation: str, problems: Sequence[SignalProblem]) -> ConnectError:
    """The error for input refused locally, listing every problem; `ForbiddenError` if all are tier refusals."""
    listed = [f"  - {p.message}" for p in problems[:MAX_LISTED]]
    if len(problems) > MAX_LISTED:
        listed.append(f"  … and {len(problems) - MAX_LISTED} more")
    forbidden = all(p.code == FORBIDDEN for p in problems)
    first = problems[0]
    return (ForbiddenError if forbidden else InvalidInputError)(
        f"{operation} not sent: {len(problems)} problem(s) in the input:\n" + "\n".join(listed),
        code=FORBIDDEN if forbidden else BAD_USER_INPUT,
        field=first.path,
        problems=problems,
    )


def _entries(body: Any) -> list[Mapping[str, Any]]:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    return [e for e in errors if isinstance(e, Mapping)] if isinstance(errors, list) else []


def _describe(entry: Mapping[str, Any]) -> str:
    path = entry.get("path")
    where = ".".join(str(p) for p in path) + ": " if isinstance(path, list) and path else ""
    return where + str(entry.get("message", "(no message)"))


def error_from_response(
    operation: str,
    *,
    endpoint: str,
    status: int,
    body: Any,
    retry_after: float | None = None,
    attempts: int = 1,
) -> ConnectError:
    """The error for a failed response: GraphQL `errors` (any HTTP status) or an HTTP error status."""
    entries = _entries(body)
    ext = entries[0].get("extensions") if entries else None
    ext = ext if isinstance(ext, Mapping) else {}
    code = str(ext.get("code") or (f"HTTP_{status}" if status >= 400 else BAD_RESPONSE))
    # Input errors name `field`/`value`; DAILY_LIMIT_EXCEEDED names the `limit` and what was `used`.
    field, value = ext.get("field", ext.get("limit")), ext.get("value", ext.get("used"))
    if field is None and entries and isinstance(entries[0].get("path"), list):
        field = ".".join(str(p) for p in entries[0]["path"])
    listed = "; ".join(_describe(e) for e in entries[:MAX_LISTED])
    if not listed:
        listed = f"body {body[:200]!r}" if isinstance(body, str) and body else "no GraphQL errors"
    if len(entries) > MAX_LISTED:
        listed += f"; … and {len(entries) - MAX_LISTED} more"
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    head = f"Acoustic Connect refused {operation} (HTTP {status}, {code}) at {endpoint}{tries}"
    details = {"code": code, "field": field, "value": value, "status": status, "errors": entries}
    if status == 401 or code == UNAUTHENTICATED:
        hint = "check the API key and that it belongs to this endpoint's region"
        return AuthenticationError(f"{head}: {listed}; {hint}", **details)
    if status == 429:
        waited = f"; the server asked to wait {retry_after:g} s" if retry_after is not None else ""
        message = f"{head}: {listed}{waited}; lower the request rate or try again later"
        return RateLimitedError(message, retry_after=retry_after, **details)
    if status >= 500:
        return UnavailableError(f"{head}: {listed}; try again later", **details)
    if code == DAILY_LIMIT_EXCEEDED:
        hint = "the daily limit is used up; try again after 00:00 UTC"
        return DailyLimitReachedError(f"{head}: {listed}; {hint}", **details)
    if status == 403 or code == FORBIDDEN:
        hint = "the subscription tier does not allow this"
        return ForbiddenError(f"{head}: {listed}; {hint}", **details)
    if status == 400 or code in (BAD_USER_INPUT, GRAPHQL_VALIDATION_FAILED):
        return InvalidInputError(f"{head}: {listed}", **details)
    return ConnectError(f"{head}: {listed}", **details)


def redact(error: ConnectError, secret: str) -> ConnectError:
    """Remove every occurrence of ``secret`` from the error's text (message, value, errors)."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(secret, "[redacted]")
        if isinstance(value, Mapping):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(clean(v) for v in value)
        return value

    error.message = clean(error.message)
    error.args = (error.message,)
    error.field, error.value, error.errors = (
        clean(error.field),
        clean(error.value),
        clean(error.errors),
    )
    return error
