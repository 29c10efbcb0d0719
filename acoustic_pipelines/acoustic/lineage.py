"""Column lineage of the Acoustic rows: which Segment fields can feed each column, read from the
mappings as written (their `@path`, `@arrayPath` and `@template` references).

A mapping fills the header keys (`uniqueRecipientId` → column `uniqueRecipient`, `type` →
`eventSource`, `timestamp`) and the data sections (`key_value_pairs`, `array_data`, `traits`,
`properties`, `context`), which are flattened into columns without a section prefix
(:mod:`acoustic_pipelines.acoustic.rows`). A section, or a key inside a section's object, that is
filled by a `@path` (or an `@if` choosing between paths) copies the field as it is, so a column
below it continues that field's path: with `properties: {"@path": "$.properties"}` the column
`total` comes from `properties.total`. Several sections mapped whole can each write a column of
the same name; every one of them is listed, as the mapping allows any of them to feed it. Fields
are written as dotted paths of the Segment event (`context.traits.email`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from acoustic_pipelines.actions.mappings.paths import split_directive_path

#: Header keys of a mapped payload and the row column each becomes.
HEADER_COLUMNS = {
    "uniqueRecipientId": "uniqueRecipient",
    "type": "eventSource",
    "timestamp": "timestamp",
}
_HEADER_SET = frozenset(HEADER_COLUMNS.values())
SECTIONS = ("key_value_pairs", "array_data", "traits", "properties", "context")
# Directives whose value is the referenced field itself, so keys below it continue its path.
_COPYING = frozenset({"@path", "@if"})
_TEMPLATE_REFERENCE = re.compile(r"\{\{\{?\s*([^{}]+?)\s*\}?\}\}")


@dataclass(frozen=True)
class _Feed:
    """One place a mapping writes: a column (header) or a flat-key prefix (section), and the
    Segment fields it reads there."""

    column: str | None  # a header column, else None
    prefix: str  # flat-key prefix inside a section ("" = the section itself)
    fields: frozenset[str]
    copies: bool  # the value is a field copied as is


def column_sources(mappings: Iterable[Any], columns: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each column → the Segment fields (sorted) any of `mappings` can fill it from.

    Args:
        mappings: mappings as written (Segment mapping directives, JSON).
        columns: the row's columns (flat keys), e.g. a day's discovered columns.

    Returns:
        Only the columns some field feeds; a column filled by constants is left out.
    """
    feeds = [feed for mapping in mappings for feed in _feeds(mapping)]
    sources: dict[str, tuple[str, ...]] = {}
    for column in columns:
        found: set[str] = set()
        for feed in feeds:
            if feed.column is not None or column in _HEADER_SET:  # a section never writes those
                if feed.column == column:
                    found |= feed.fields
                continue
            rest = _below(column, feed.prefix)
            if rest == "":
                found |= feed.fields
            elif rest is not None and feed.copies:
                found |= {f"{field}.{rest}" if field else rest for field in feed.fields}
        if found:
            sources[column] = tuple(sorted(found))
    return sources


def _feeds(mapping: Any) -> Iterator[_Feed]:
    if not isinstance(mapping, dict):
        return
    for key, value in mapping.items():
        if key in HEADER_COLUMNS:
            fields = frozenset(_fields(value))
            if fields:
                yield _Feed(HEADER_COLUMNS[key], "", fields, copies=False)
        elif key in SECTIONS:
            yield from _section_feeds(value, ())


def _section_feeds(value: Any, prefix: tuple[str, ...]) -> Iterator[_Feed]:
    """Walk a section's value: a directive feeds its prefix; objects and arrays add keys."""
    directive = _directive(value)
    if directive is not None:
        fields = frozenset(_fields(value))
        if fields:
            yield _Feed(None, ".".join(prefix), fields, copies=directive in _COPYING)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _section_feeds(item, (*prefix, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _section_feeds(item, (*prefix, str(index)))


def _directive(value: Any) -> str | None:
    """The directive of a directive object (`{"@path": …}`, optionally with `_metadata`)."""
    if not isinstance(value, dict):
        return None
    keys = [k for k in value if k != "_metadata"]
    if len(keys) == 1 and isinstance(keys[0], str) and keys[0].startswith("@"):
        return keys[0]
    return None


def _fields(value: Any) -> Iterator[str]:
    """Every Segment field a (possibly nested) mapping value references."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("@path", "@arrayPath"):
                path = item[0] if key == "@arrayPath" and isinstance(item, list) and item else item
                if isinstance(path, str):
                    yield _field(path)
            elif key == "@template" and isinstance(item, str):
                yield from (_field(m) for m in _TEMPLATE_REFERENCE.findall(item))
            if not isinstance(item, str):
                yield from _fields(item)
    elif isinstance(value, list):
        for item in value:
            yield from _fields(item)


def _field(path: str) -> str:
    """A directive path (`$.properties.email`) as a dotted field (`properties.email`)."""
    return ".".join(str(key) for key in split_directive_path(path.strip()))


def _below(column: str, prefix: str) -> str | None:
    """The rest of `column` under `prefix` ("" when equal), or None when it is not below it."""
    if not prefix:
        return column
    if column == prefix:
        return ""
    if column.startswith(prefix + "."):
        return column[len(prefix) + 1 :]
    return None
