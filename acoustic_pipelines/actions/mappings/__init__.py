"""Segment's mapping kit: directives, validation, paths, operations and liquid templates."""
