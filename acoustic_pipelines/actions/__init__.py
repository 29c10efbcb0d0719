"""Destination Actions engine: Segment FQL triggers and mapping directives, compiled once."""

from acoustic_pipelines.actions.mappings.kit import (
    MappingError,
    MappingInputError,
    MappingRuntimeError,
    MappingValidationError,
    compile_mapping,
    transform,
)
from acoustic_pipelines.actions.triggers import (
    Condition,
    ConditionGroup,
    InvalidConditionError,
    TriggerError,
    TriggerEvaluationError,
    TriggerSyntaxError,
    compile_conditions,
    compile_trigger,
    lint_trigger,
    matches,
    render_fql,
)

__all__ = [
    "Condition",
    "ConditionGroup",
    "InvalidConditionError",
    "MappingError",
    "MappingInputError",
    "MappingRuntimeError",
    "MappingValidationError",
    "TriggerError",
    "TriggerEvaluationError",
    "TriggerSyntaxError",
    "compile_conditions",
    "compile_mapping",
    "compile_trigger",
    "lint_trigger",
    "matches",
    "render_fql",
    "transform",
]
