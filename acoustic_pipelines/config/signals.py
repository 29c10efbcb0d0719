"""The `signals:` section of the pipeline config: which events become Acoustic Connect signals.

    signals:
      app_key_env: ACOUSTIC_APP_KEY      # the variable holding the application key (never the key)
      tier: premium                      # pro | premium | ultimate: the signal types allowed
      test: false                        # send test signals (validated, used by no campaign)
      default_currency: USD              # `currency` of signals whose mapping gives none
      rules:
        - name: Product Added            # unique
          enabled: true                  # the default
          trigger: 'type = "track" and event = "Product Added"'   # FQL or structured, as mappings
          signal_type: addToCart
          identity: {...}                # mapping directives → {email: …} (one of contactKey,
                                         # email, sms, whatsapp)
          session_id: {...}              # optional mapping directives → the session id
          content: {...}                 # mapping directives → signalContent fields

`signalType` and `category` ("Behavior") are filled in from the rule; everything else of the
signal content comes from `content`. A rule whose signal type the tier does not allow is refused
when the file is loaded (reference acoustic-connect-api.md §2.4).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from acoustic_pipelines.config.destinations import (
    MappingDirectives,
    Trigger,
    _ConfigModel,
    _problem,
    require_name,
    show,
)
from acoustic_pipelines.connect.signals.content import SIGNAL_TYPES, TIERS

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class SignalRule:
    """One enabled signal rule ready for the hot path: plain attributes, compiled callables.

    Attributes:
        name: the rule's name.
        signal_type: the Connect signal type it produces.
        fql: the trigger as FQL text.
        matches: the compiled trigger, ``event -> bool``.
        identity: the compiled identity mapping, ``event -> identifiableAttributes``.
        session_id: the compiled session id mapping, or None.
        content: the compiled content mapping, ``event -> signalContent`` fields.
    """

    name: str
    signal_type: str
    fql: str
    matches: Callable[[dict], bool]
    identity: Callable[[dict], Any]
    session_id: Callable[[dict], Any] | None
    content: Callable[[dict], Any]


class SignalRuleConfig(_ConfigModel):
    """One rule: the events it takes (trigger) and how they become one signal of a type."""

    name: str
    enabled: bool = True
    trigger: Trigger
    signal_type: str
    identity: MappingDirectives
    session_id: MappingDirectives | None = None
    content: MappingDirectives

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, name: str) -> str:
        return require_name(name, "a signal rule", "Product Added")

    @field_validator("signal_type")
    @classmethod
    def _known_type(cls, signal_type: str) -> str:
        if signal_type not in SIGNAL_TYPES:
            known = ", ".join(sorted(SIGNAL_TYPES))
            raise _problem(
                f"{show(signal_type)} is not an importable signal type; expected one of {known}"
            )
        return signal_type

    def rule(self) -> SignalRule:
        """This rule compiled for the hot path."""
        return SignalRule(
            name=self.name,
            signal_type=self.signal_type,
            fql=self.trigger.fql,
            matches=self.trigger.predicate,
            identity=self.identity.transform,
            session_id=self.session_id.transform if self.session_id else None,
            content=self.content.transform,
        )


class SignalsConfig(_ConfigModel):
    """The `signals:` section: the application key's variable, the tier and the rules."""

    app_key_env: str = "ACOUSTIC_APP_KEY"
    tier: Literal["pro", "premium", "ultimate"] = "pro"
    test: bool = False
    default_currency: str | None = None
    rules: list[SignalRuleConfig] = Field(default_factory=list)

    _rules: tuple[SignalRule, ...] = PrivateAttr(default=())

    @field_validator("app_key_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not _ENV_NAME.fullmatch(name):
            raise _problem(
                f"app_key_env names the environment variable holding the application key "
                f"(e.g. ACOUSTIC_APP_KEY); got {show(name)}, which is not a variable name"
            )
        return name

    @field_validator("default_currency")
    @classmethod
    def _currency(cls, currency: str | None) -> str | None:
        if currency is not None and not _CURRENCY.fullmatch(currency):
            raise _problem(f"a currency is an ISO 4217 code like USD; got {show(currency)}")
        return currency

    @model_validator(mode="after")
    def _tier_allows_rules(self) -> SignalsConfig:
        for index, rule in enumerate(self.rules):
            allowed = SIGNAL_TYPES[rule.signal_type].tiers
            if rule.enabled and self.tier not in allowed:
                tiers = " or ".join(t.capitalize() for t in TIERS if t in allowed)
                raise _problem(
                    f"signal rule {rule.name!r}: signal type {rule.signal_type} needs Connect "
                    f"{tiers}; the subscription tier is {self.tier} (set `tier`, or disable or "
                    "remove the rule)",
                    at=("rules", index, "signal_type"),
                )
        self._rules = tuple(r.rule() for r in self.rules if r.enabled)
        return self

    @property
    def compiled_rules(self) -> tuple[SignalRule, ...]:
        """The enabled rules, in file order, ready to run on events."""
        return self._rules
