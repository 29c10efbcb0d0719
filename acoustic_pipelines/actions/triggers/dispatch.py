"""Run only the triggers an event can match: rules grouped by the top-level fields they test first.

Most triggers start with ``type = "track"`` (Segment's presets, the signal rules), often followed
by ``event = "Order Completed"``; a compiled trigger knows that leading run of tests
(:func:`~acoustic_pipelines.actions.triggers.compiler.trigger_guards`). :class:`GuardedRules`
groups a list of rules by its first test once — and, where the rules of one first value share
the field of their second test, by that second test too — so that for each event only the rules
whose tests the event passes, and the rules without such tests, are evaluated, in their original
order. A rule it leaves out is one whose trigger is false for that event, so running the
candidates gives exactly what running every rule gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from acoustic_pipelines.actions.triggers.compiler import Predicate, trigger_guards

__all__ = ["GuardedRules"]

Rule = TypeVar("Rule")
Guards = tuple[tuple[str, str], ...]


class _SecondTest(Generic[Rule]):
    """The candidates for one first value, grouped again by the field of their second test."""

    __slots__ = ("by_value", "field", "rest")

    def __init__(self, field: str, by_value: dict[str, tuple[Rule, ...]], rest: tuple[Rule, ...]):
        self.field = field
        self.by_value = by_value
        self.rest = rest  # the candidates without a second test on that field

    def candidates(self, event: dict) -> tuple[Rule, ...]:
        value = event.get(self.field)
        if isinstance(value, str):
            return self.by_value.get(value, self.rest)
        return self.rest


class GuardedRules(Generic[Rule]):
    """Rules (anything with a compiled trigger), and for an event, the ones worth evaluating."""

    __slots__ = ("_all", "_by_value", "_field", "_unguarded")

    def __init__(self, rules: Sequence[Rule], trigger_of: Callable[[Rule], Predicate]) -> None:
        """Group ``rules`` (in order) by the first tests of ``trigger_of(rule)``."""
        self._all = tuple(rules)
        guards = [trigger_guards(trigger_of(rule)) for rule in self._all]
        fields = {guard[0][0] for guard in guards if guard}
        self._field = fields.pop() if len(fields) == 1 else None
        values = {guard[0][1] for guard in guards if guard}
        self._unguarded = tuple(r for r, g in zip(self._all, guards, strict=True) if not g)
        self._by_value: dict[str, tuple[Rule, ...] | _SecondTest[Rule]] = {
            value: _second_test(
                [
                    (r, g[1:])
                    for r, g in zip(self._all, guards, strict=True)
                    if not g or g[0][1] == value
                ]
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
            found = self._by_value.get(value, self._unguarded)
            return found if type(found) is tuple else found.candidates(event)
        return self._unguarded


def _second_test(rules: list[tuple[Any, Guards]]) -> tuple[Any, ...] | _SecondTest[Any]:
    """The candidates of one first value: a tuple, or grouped by a second test they share."""
    fields = {guards[0][0] for _, guards in rules if guards}
    if len(fields) != 1:
        return tuple(rule for rule, _ in rules)
    (field,) = fields
    values = {guards[0][1] for _, guards in rules if guards}
    by_value = {
        value: tuple(rule for rule, guards in rules if not guards or guards[0][1] == value)
        for value in values
    }
    return _SecondTest(field, by_value, tuple(rule for rule, guards in rules if not guards))
