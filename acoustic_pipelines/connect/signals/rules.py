"""Segment events → Acoustic Connect behavior signals, by the config's signal rules.

Every enabled rule whose trigger matches an event gives one signal: `appKey` from the
environment (through the caller), `identifiableAttributes` from the rule's identity mapping, the
optional `sessionId`, and `signalContent` = the content mapping's fields plus `signalType` and
`category` ("Behavior") from the rule, and the default currency where the type has a `currency`
field the mapping left empty. Each signal is validated (connect/signals.py) before it may be
sent; a rule that fails on an event gives a rejected signal with every problem, never an
exception.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from acoustic_pipelines.actions.mappings.kit import MappingError
from acoustic_pipelines.actions.triggers import GuardedRules, TriggerError
from acoustic_pipelines.config.signals import SignalRule
from acoustic_pipelines.connect.signals.content import SIGNAL_TYPES, validate_signal

BEHAVIOR = "Behavior"


@dataclass(frozen=True)
class SignalSettings:
    """What every signal of a run shares: the application key, the tier and the flags."""

    app_key: str
    tier: str
    test: bool = False
    default_currency: str | None = None

    def __repr__(self) -> str:  # the application key stays out of logs and tracebacks
        return f"SignalSettings(tier={self.tier!r}, test={self.test}, default_currency={self.default_currency!r})"


class BuiltSignal(NamedTuple):
    """A valid signal for one (event, rule).

    Records of every (event, rule) are tuples: immutable, and built in a fifth of a frozen
    dataclass's time (they are made once per matched rule of every event).
    """

    rule: str
    message_id: str
    signal: dict[str, Any]

    @property
    def signal_type(self) -> str:
        """The signal's type."""
        return self.signal["signalContent"]["signalType"]


class RejectedSignal(NamedTuple):
    """An (event, rule) that could not give a valid signal, with every problem found."""

    rule: str
    message_id: str
    signal_type: str
    problems: tuple[str, ...]


def guarded_rules(rules: Sequence[SignalRule]) -> GuardedRules[SignalRule]:
    """The rules grouped once by their triggers' first test, for :func:`signals_for_event`."""
    return GuardedRules(rules, lambda rule: rule.matches)


def signals_for_event(
    event: dict[str, Any],
    rules: Sequence[SignalRule] | GuardedRules[SignalRule],
    settings: SignalSettings,
) -> Iterator[BuiltSignal | RejectedSignal]:
    """One signal (or reject) per rule whose trigger matches the event, in rule order.

    Pass :func:`guarded_rules` when calling it for many events: only the rules whose trigger
    can match the event are evaluated (the result is the same).
    """
    message_id = str(event.get("messageId", ""))
    candidates = rules.candidates(event) if isinstance(rules, GuardedRules) else rules
    for rule in candidates:
        try:
            if not rule.matches(event):
                continue
            signal = build_signal(rule, event, settings)
        except (TriggerError, MappingError) as exc:
            yield RejectedSignal(
                rule.name, message_id, rule.signal_type, (f"{type(exc).__name__}: {exc}",)
            )
            continue
        problems = validate_signal(signal, tier=settings.tier)
        if problems:
            yield RejectedSignal(
                rule.name,
                message_id,
                rule.signal_type,
                tuple(f"{p.path}: {p.message}" for p in problems),
            )
        else:
            yield BuiltSignal(rule.name, message_id, signal)


def build_signal(
    rule: SignalRule, event: dict[str, Any], settings: SignalSettings
) -> dict[str, Any]:
    """The signal a rule makes of an event, not yet validated.

    Raises:
        MappingError: one of the rule's mappings failed on this event.
    """
    content = _as_object(rule.content(event))
    content["signalType"] = rule.signal_type
    content["category"] = BEHAVIOR
    if settings.default_currency and content.get("currency") in (None, ""):
        signal_type = SIGNAL_TYPES[rule.signal_type]
        if "currency" in signal_type.required or "currency" in signal_type.optional:
            content["currency"] = settings.default_currency
    signal: dict[str, Any] = {
        "appKey": settings.app_key,
        "identifiableAttributes": _as_object(rule.identity(event)),
        "signalContent": content,
    }
    if rule.session_id is not None:
        session_id = rule.session_id(event)
        if session_id not in (None, ""):
            signal["sessionId"] = session_id
    if settings.test:
        signal["test"] = True
    return signal


def _as_object(value: Any) -> dict[str, Any]:
    """A mapping result as a fresh dict (a non-object result maps to nothing)."""
    return dict(value) if isinstance(value, dict) else {}
