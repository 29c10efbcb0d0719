"""A compiled mapping and the Acoustic row in one step: event in, flat row (or reject) out.

The plain way is two steps: the mapping resolves a payload and ``to_result`` copies what must
change in it (``undefined`` left out, ``14.0`` → ``14``, found by serializing each section with
orjson), then :func:`~acoustic_pipelines.acoustic.rows.build_row_with_stats` checks the header
and flattens the sections. :func:`compile_row_builder` fuses them for a mapping that is an object
of the payload's fields (the Acoustic presets and most real mappings): the fields are resolved,
the header is checked before any section is touched, and the sections are flattened straight
from the event with ``to_result``'s number rule applied to each leaf on the way.

The result is the plain way's, always: whatever the fused step is not sure of — a key written
twice, a value that is not plain JSON, ``undefined`` inside a section, a section too deep, a
reject other than the header's, a mapping of another shape — is handed to the plain way, which
then decides (and raises) exactly as before. Two cases take the short road: a valid event
becoming a row, and an event whose header is rejected (no recipient, most often) once its
sections are known to resolve and to pass ``to_result`` as the plain way would — then the plain
way raises that same reject, so the fused step raises it without building the payload. ``tests``
compare both ways on the conformance vectors, on generated events and on the edge cases.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from orjson import dumps

from acoustic_pipelines.acoustic import rows as _rows
from acoustic_pipelines.acoustic.rows import (
    DEFAULT_MAX_ATTRIBUTES,
    DEFAULT_MAX_DEPTH,
    HEADER_KEYS,
    SECTIONS,
    AcousticReject,
    FlatRow,
    build_row_with_stats,
)
from acoustic_pipelines.actions.js_values import MAX_SAFE_INTEGER, UNDEFINED
from acoustic_pipelines.actions.mappings.kit import CompiledMapping

__all__ = ["RowBuilder", "compile_row_builder"]

RowBuilder = Callable[[Any], FlatRow]

_HEADER_FIELDS = ("uniqueRecipientId", "type", "timestamp")  # the payload keys of the header
_PAYLOAD_KEYS = frozenset((*_HEADER_FIELDS, *SECTIONS))
_OBJECT_SECTIONS = frozenset(("key_value_pairs", "traits", "properties", "context"))


_SCALARS = frozenset((str, int, bool, type(None)))
fromisoformat = datetime.fromisoformat


class _Unsure(Exception):
    """The fused step leaves this event to the plain way (see the module docstring)."""


def compile_row_builder(
    mapping: Callable[[Any], Any],
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES,
) -> RowBuilder:
    """``event -> FlatRow``, the same as ``build_row_with_stats(mapping(event))``, in one step.

    Args:
        mapping: a compiled mapping (:class:`CompiledMapping`; any other callable is used the
            plain way).
        max_depth: as for :func:`~acoustic_pipelines.acoustic.rows.build_row_with_stats`.
        max_attributes: as for :func:`~acoustic_pipelines.acoustic.rows.build_row_with_stats`.

    Returns:
        A function raising what the plain way raises: ``MappingError`` for a mapping that fails,
        :class:`~acoustic_pipelines.acoustic.rows.AcousticReject` for a rejected event.
    """
    if max_depth < 0 or max_attributes < 0:
        raise ValueError(
            f"max_depth = {max_depth!r}, max_attributes = {max_attributes!r}; "
            "expected both to be 0 or more"
        )

    def plain(event: Any) -> FlatRow:
        return build_row_with_stats(
            mapping(event), max_depth=max_depth, max_attributes=max_attributes
        )

    fields = mapping.fields if isinstance(mapping, CompiledMapping) else None
    if not fields or any(key not in _PAYLOAD_KEYS for key, _ in fields):
        return plain  # another shape: other keys would need resolving (and may fail) too
    by_name = dict(fields)
    if len(by_name) != len(fields):
        return plain
    header_fields = tuple((key, field) for key, field in fields if key in _HEADER_FIELDS)
    section_fields = tuple((name, by_name[name]) for name in SECTIONS if name in by_name)
    header_of = _rows._header  # noqa: SLF001  # the same checks, in the same order
    audiences = _rows._apply_audiences  # noqa: SLF001
    class_key, audience_key = _rows._CLASS_KEY, _rows._AUDIENCE_KEY  # noqa: SLF001
    base_length = len(HEADER_KEYS)
    if len(header_fields) == len(_HEADER_FIELDS):
        recipient_of = by_name["uniqueRecipientId"]
        type_of = by_name["type"]
        timestamp_of = by_name["timestamp"]
    else:
        recipient_of = type_of = timestamp_of = None  # the header is resolved field by field

    def header(event: dict) -> dict[str, Any]:
        """The row's header columns, or the header's reject (as the plain way words it)."""
        if recipient_of is None:
            resolved = [(key, field(event)) for key, field in header_fields]
        else:
            recipient = recipient_of(event)
            event_type = type_of(event)
            timestamp = timestamp_of(event)
            # The common valid header, checked as `_rows._header` checks it; anything else
            # (an integer id, a float, a missing field, a bad value) is left to it below.
            if (
                type(recipient) is str
                and type(event_type) is str
                and type(timestamp) is str
                and recipient.strip()
                and event_type.strip()
            ):
                try:
                    fromisoformat(timestamp)
                except ValueError:
                    pass
                else:
                    return {
                        "uniqueRecipient": recipient,
                        "eventSource": f"{event_type} Event",
                        "timestamp": timestamp,
                    }
            resolved = [
                ("uniqueRecipientId", recipient),
                ("type", event_type),
                ("timestamp", timestamp),
            ]
        head = {}
        for key, value in resolved:
            if value is UNDEFINED:
                continue
            kind = type(value)
            if kind is float:
                if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
                    value = int(value)
            elif kind is dict or kind is list:
                raise _Unsure
            head[key] = value
        return header_of(head)

    def settled_reject(event: dict, reject: AcousticReject) -> AcousticReject:
        """The header's reject when the plain way would raise it too; else _Unsure.

        The plain way resolves every section and passes the payload through ``to_result``
        before it checks the header. Resolving is repeated here (a failing directive decides
        plainly). ``to_result`` fails only on a section nested too deep for Python's recursion
        (it recurses twice per level); a section orjson can write is at most 254 levels deep,
        which takes ~510 frames: within Python's default limit of 1,000 for any caller that is
        not itself within ~500 frames of it.
        """
        for _name, field in section_fields:
            section = field(event)
            kind = type(section)
            if kind is dict or kind is list:
                dumps(section)  # raises for undefined, odd keys, too deep: decided plainly
            elif section is not UNDEFINED and kind is not float and kind not in _SCALARS:
                raise _Unsure
        return reject

    def build(event: Any) -> FlatRow:
        if type(event) is not dict:
            return plain(event)  # raises the mapping's input error
        try:
            try:
                row = header(event)
            except AcousticReject as reject:
                raise settled_reject(event, reject) from None
            writes = 0
            mapped = False
            for name, field in section_fields:
                section = field(event)
                if section is None or section is UNDEFINED:
                    continue
                mapped = True
                kind = type(section)
                if kind is dict:
                    if name in _OBJECT_SECTIONS:
                        writes += _flatten_top(section, row, max_depth)
                    else:
                        writes += _flatten((section,), "", 0, row, max_depth)
                elif kind is list and name == "array_data":
                    writes += _flatten(section, "", 0, row, max_depth)
                else:
                    raise _Unsure
            if not mapped:
                raise _Unsure  # nothing mapped: the plain way rejects it
            if len(row) != base_length + writes:
                raise _Unsure  # a key written twice: the plain way counts the collisions
            if class_key in row or audience_key in row:
                audiences(row)
            if len(row) - base_length > max_attributes:
                raise _Unsure
        except AcousticReject:
            raise  # settled: the plain way gives this very reject
        except Exception:  # _Unsure, a failing directive, a deep event: decide plainly
            return plain(event)
        return FlatRow(row, ())

    return build


def _flatten_top(root: dict, out: dict[str, Any], max_depth: int) -> int:
    """:func:`_flatten` of an object section, whose text keys are their own flat keys.

    The objects one level down (``context.app``, ``context.device``, ...) are walked here too,
    without a call each: most sections are two levels deep.
    """
    writes = len(root)
    for key, value in root.items():
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            out[key if type(key) is str else f"{key}"] = value
        elif kind is float:
            if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
                value = int(value)
            out[key if type(key) is str else f"{key}"] = value
        elif kind is dict:
            if max_depth == 0:
                raise _Unsure
            writes += len(value) - 1
            for inner, leaf in value.items():  # _flatten(value, f"{key}.", 1, ...) unrolled
                kind = type(leaf)
                if kind is str or kind is int or kind is bool or leaf is None:
                    out[f"{key}.{inner}"] = leaf
                elif kind is float:
                    if leaf.is_integer() and abs(leaf) <= MAX_SAFE_INTEGER:
                        leaf = int(leaf)
                    out[f"{key}.{inner}"] = leaf
                elif kind is dict or kind is list:
                    writes -= 1
                    if max_depth == 1:
                        raise _Unsure
                    if leaf:
                        writes += _flatten(leaf, f"{key}.{inner}.", 2, out, max_depth)
                else:
                    raise _Unsure
        elif kind is list:
            writes -= 1
            if max_depth == 0:
                raise _Unsure
            if value:
                writes += _flatten(value, f"{key}.", 1, out, max_depth)
        else:
            raise _Unsure  # undefined, a tuple, a subclass: the plain way copes
    return writes


def _flatten(node: dict | list | tuple, prefix: str, depth: int, out: dict, max_depth: int) -> int:
    """The leaves under ``node`` into ``out`` as ``rows``' fast walk does, numbers as ``to_result``
    leaves them; the number of writes (the caller compares it with the row's length)."""
    writes = len(node)
    for key, value in node.items() if type(node) is dict else enumerate(node):
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            out[f"{prefix}{key}"] = value
        elif kind is float:
            if value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
                value = int(value)
            out[f"{prefix}{key}"] = value
        elif kind is dict or kind is list:
            writes -= 1
            if depth >= max_depth:
                raise _Unsure  # the plain way says NESTING_DEPTH_EXCEEDED, with its detail
            if value:
                writes += _flatten(value, f"{prefix}{key}.", depth + 1, out, max_depth)
        else:
            raise _Unsure
    return writes
