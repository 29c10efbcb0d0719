"""Run only the triggers an event can match: rules grouped by the top-level field they test first.

Most triggers start with ``type = "track"`` (Segment's presets, the signal rules); a compiled
trigger knows that first test (:func:`~acoustic_pipelines.actions.triggers.compiler.trigger_guard`).
:class:`GuardedRules` groups a list of rules by it once, so that for each event only the rules
whose first test the event passes — and the rules without such a test — are evaluated, in their
original order. A rule it leaves out is one whose trigger is false for that event, so running
the candidates gives exactly what running every rule gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from acoustic_pipelines.actions.triggers.compiler import Predicate, trigger_guard

__all__ = ["GuardedRules"]

Rule = TypeVar("Rule")


class GuardedRules(Generic[Rule]):
    """Rules (anything with a compiled trigger), and for an event, the ones worth evaluating."""

    __slots__ = ("_all", "_by_value", "_field", "_unguarded")

    def __init__(self, rules: Sequence[Rule], trigger_of: Callable[[Rule], Predicate]) -> None:
        """Group ``rules`` (in order) by the first test of ``trigger_of(rule)``."""
        self._all = tuple(rules)
        guards = [trigger_guard(trigger_of(rule)) for rule in self._all]
        fields = {guard[0] for guard in guards if guard is not None}
        self._field = fields.pop() if len(fields) == 1 else None
        values = {guard[1] for guard in guards if guard is not None}
        self._unguarded = tuple(r for r, g in zip(self._all, guards, strict=True) if g is None)
        self._by_value = {
            value: tuple(
                r for r, g in zip(self._all, guards, strict=True) if g is None or g[1] == value
            )
            for value in values
        }

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule, in order."""
        return self._all

    def candidates(self, event: Any) -> tuple[Rule, ...]:
        """The rules, in order, that can match ``event`` (all of them for anything but a dict)."""
        if self._field is None or type(event) is not dict:
            return self._all
        value = event.get(self._field)
        if isinstance(value, str):
            return self._by_value.get(value, self._unguarded)
        return self._unguarded
