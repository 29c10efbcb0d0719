"""Errors of the trigger engine, and how a trigger is quoted in their messages."""

from __future__ import annotations

from typing import Any

__all__ = [
    "InvalidConditionError",
    "TriggerError",
    "TriggerEvaluationError",
    "TriggerSyntaxError",
    "excerpt",
]


class TriggerError(ValueError):
    """Root of every error the trigger engine (:mod:`~acoustic_pipelines.actions.triggers`) raises."""


class _TriggerTextError(TriggerError):
    """An error about one trigger text: ``message``, ``fql`` and ``position`` (or None)."""

    def __init__(self, message: str, *, fql: str, position: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.fql = fql
        self.position = position


class TriggerSyntaxError(_TriggerTextError):
    """Raised by :func:`compile_trigger` for a trigger Segment's parser rejects.

    Segment turns such a trigger into one that matches no event; we refuse it instead.
    ``position`` is the index of the offending character in ``fql`` (None when the problem is the
    trigger as a whole, e.g. no condition Segment can evaluate).
    """


class TriggerEvaluationError(_TriggerTextError):
    """Raised by a compiled trigger when Segment's ``validate`` would throw for this event.

    That happens for an event that is not a JSON object, for an empty parenthesised group ``()``
    and for a property path made only of separators (``properties.\\.``) once evaluation reaches
    them (``and``/``or`` short-circuit exactly as in Segment).
    """


class InvalidConditionError(TriggerError):
    """Raised for a structured :class:`Condition` / :class:`ConditionGroup` Segment's UI refuses."""

    def __init__(self, message: str, *, field: str, value: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.value = value


def excerpt(fql: str, limit: int = 200) -> str:
    """Return a trigger for an error message, cut short when it is very long."""
    return fql if len(fql) <= limit else f"{fql[:limit]}… ({len(fql)} characters)"
