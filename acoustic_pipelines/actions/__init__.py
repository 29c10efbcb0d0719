"""Destination Actions engine: Segment FQL triggers and mapping directives, compiled once."""

from acoustic_pipelines.actions.mapping_kit import MappingValidationError, compile_mapping, transform
from acoustic_pipelines.actions.triggers import TriggerSyntaxError, compile_trigger, matches

__all__ = [
    "MappingValidationError",
    "TriggerSyntaxError",
    "compile_mapping",
    "compile_trigger",
    "matches",
    "transform",
]
