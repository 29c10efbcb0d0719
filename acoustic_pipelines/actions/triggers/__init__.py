"""Segment Destination Actions triggers ("subscription FQL"), compiled to Python predicates.

A mapping's trigger is a string such as ``type = "track" and properties.total > 50``. Segment
parses it with ``parseFql`` from ``@segment/destination-subscriptions`` (lexer: ``@segment/fql-ts``)
and evaluates it with ``validate``. The trigger engine re-implements both, quirks included, so
that a trigger matches here exactly the events it matches in Segment (reference: segment.md §4
and the conformance vectors in ``shared/conformance/fql_vectors.jsonl``, which win over the prose).

This module is the engine's front door: :func:`compile_trigger` and :func:`matches`, plus every
public name of the engine. The engine itself, in the order a trigger goes through it:

- ``lexer.py``: the port of fql-ts's lexer, working on UTF-16 code units;
- ``parser.py``: the port of parseFql, building Segment's condition tree (and notes on what
  it silently drops);
- ``compiler.py``: the condition tree compiled to closures (the port of ``validate``);
- ``paths.py``: how a condition reads its value, JavaScript prototype members included;
- ``dispatch.py``: rules grouped by the fields their trigger tests first (only candidates run);
- ``conditions.py``: structured conditions (Segment's trigger builder) and their FQL;
- ``lint.py``: warnings for triggers whose Segment meaning is surprising;
- ``errors.py``: the errors; ``../js_values.py``: JavaScript value rules shared with the
  mapping engine.

Compile once, run many: :func:`compile_trigger` lexes and parses the text once and returns a tree
of small closures; evaluating an event only walks dicts and compares values.

Where we differ from Segment on purpose:

- A trigger Segment cannot parse silently matches nothing there; here it raises
  :class:`TriggerSyntaxError` (a misspelt trigger should fail the config, not drop data).
- An event that is not a ``dict`` raises :class:`TriggerEvaluationError` (Segment returns false
  for ``undefined``, throws for ``null`` and evaluates strings/arrays as empty objects).
- Values inherited from JavaScript prototypes (``properties.x.length`` on a string or array, or a
  missing key named like an ``Object.prototype`` member, e.g. ``constructor``) are emulated only
  one level deep: members of those inherited functions (``constructor.name``) read as missing.

Events are expected to be JSON-shaped (dict, list, str, int, float, bool, None); other values are
treated as opaque objects that exist but are neither strings, numbers nor booleans.
"""

from __future__ import annotations

import functools
import logging

from acoustic_pipelines.actions.triggers.compiler import (
    Predicate,
    compile_predicate,
    trigger_guard,
    trigger_guards,
)
from acoustic_pipelines.actions.triggers.conditions import (
    OPERATORS,
    Condition,
    ConditionGroup,
    compile_conditions,
    render_fql,
)
from acoustic_pipelines.actions.triggers.dispatch import GuardedRules
from acoustic_pipelines.actions.triggers.errors import (
    InvalidConditionError,
    TriggerError,
    TriggerEvaluationError,
    TriggerSyntaxError,
)
from acoustic_pipelines.actions.triggers.lexer import Source
from acoustic_pipelines.actions.triggers.lint import lint_trigger
from acoustic_pipelines.actions.triggers.parser import parse_trigger

__all__ = [
    "OPERATORS",
    "Condition",
    "ConditionGroup",
    "GuardedRules",
    "InvalidConditionError",
    "TriggerError",
    "TriggerEvaluationError",
    "TriggerSyntaxError",
    "compile_conditions",
    "compile_trigger",
    "lint_trigger",
    "matches",
    "render_fql",
    "trigger_guard",
    "trigger_guards",
]

logger = logging.getLogger(__name__)


def compile_trigger(fql: str) -> Predicate:
    """Compile a trigger once into a predicate ``event -> bool`` that matches as Segment does.

    Args:
        fql: the mapping's trigger (subscription FQL), e.g. ``type = "track"``.

    Returns:
        A function taking one event (a dict) and returning whether the trigger matches it.
        It raises :class:`TriggerEvaluationError` for a non-dict event and for the few triggers
        Segment parses but cannot evaluate (see that class).

    Raises:
        TriggerSyntaxError: Segment's parser rejects the trigger (it would match nothing).
    """
    if not isinstance(fql, str):
        raise TriggerSyntaxError(
            f"a trigger must be a string, got {type(fql).__name__} {fql!r}", fql=fql, position=None
        )
    tree = parse_trigger(Source.of(fql)).tree
    logger.debug("compiled trigger %r into %r", fql, tree)
    return compile_predicate(tree, fql)


@functools.lru_cache(maxsize=4096)
def _compiled(fql: str) -> Predicate:
    return compile_trigger(fql)


def matches(fql: str, event: dict) -> bool:
    """Whether the trigger matches the event (compiled triggers are cached)."""
    if not isinstance(fql, str):
        return compile_trigger(fql)(event)  # raises TriggerSyntaxError
    return _compiled(fql)(event)
