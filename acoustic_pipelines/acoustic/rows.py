"""Acoustic (Actions) "Send Events": one mapped payload in, one flat Acoustic row out.

This is our version of the action of Segment's Acoustic (Actions) destination (reference
``segment.md`` §6). The input is a *mapped payload*, the output of a mapping: a dict with the
keys ``uniqueRecipientId``, ``type``, ``timestamp`` and the five data sections
``key_value_pairs``, ``array_data``, ``properties``, ``traits``, ``context``. The output is one
insertion-ordered dict of column name to scalar (``str``, ``int``, ``float``, ``bool`` or
``None``; the CSV writer renders ``None`` as an empty cell), or an :class:`AcousticReject`
carrying an Acoustic error code. Every difference from Segment's hosted destination is listed
in the README, section "Differences from Segment's hosted destination".

Processing order (the first failing step decides the code):

1. the payload is not a dict → ``UNEXPECTED_EVENT_PARSING_EXCEPTION``;
2. ``uniqueRecipientId`` missing, ``None``, blank, or not a string/integer →
   ``INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID`` (an integer id is written as its decimal text);
3. ``type`` missing, ``None``, blank or not a string → ``INVALID_EVENT_TYPE`` (our code;
   Segment rejects a missing required field at schema validation, it never writes
   ``"Null Event"`` from its hosted runtime);
4. ``timestamp`` missing, ``None``, or neither an ISO-8601 string (as parsed by
   :meth:`datetime.datetime.fromisoformat`) nor a finite number within JavaScript's date range
   (±8.64e15; the unit is not interpreted) → ``INVALID_TIMESTAMP`` (our code, same reasoning);
5. none of the five sections present with a non-``None`` value → ``INVALID_NO_DATA_MAPPED``
   (an empty ``{}``/``[]`` section counts as mapped, as in Segment);
6. flattening, see below → ``NESTING_DEPTH_EXCEEDED`` or ``UNEXPECTED_EVENT_PARSING_EXCEPTION``;
7. audience handling, see below (never rejects);
8. more than ``max_attributes`` keys besides the three header keys →
   ``EXCEEDS_MAX_PROPERTIES_MAX`` (default :data:`DEFAULT_MAX_ATTRIBUTES` = 1000; Acoustic
   documents no column limit, the cap bounds row width and the CSV column union).

Row layout: ``uniqueRecipient``, ``eventSource`` (``"<type> Event"``) and ``timestamp`` (as
given) first, then the sections flattened without a section prefix in the order
``key_value_pairs``, ``array_data``, ``traits``, ``properties``, ``context``. Nested keys are
dot-joined and arrays flattened by index (``products.0.sku``); ``array_data`` is itself an array,
so its keys start with the index (``0.sku``; a lone object is taken as a one-item array).
Scalars keep their type, ``null`` becomes the key itself with value ``None``, empty objects and
arrays add nothing. A later write to an existing key overwrites its value but keeps its first
position; a write to one of the three header keys is dropped. Every write to an existing key
(overwritten or dropped) is recorded in :attr:`FlatRow.collisions`.

Nesting: a section is depth 0 and every object or array reached through *n* keys or indexes
from it has depth *n*; any object or array (empty or not) deeper than ``max_depth`` rejects with
``NESTING_DEPTH_EXCEEDED``. With the default of 10, a chain of 10 nested objects under a
section is fine and 11 are not; siblings and array length do not count, and ``null`` is a leaf.
A section of the wrong shape (a non-object ``properties``/``traits``/``context``/
``key_value_pairs``, an ``array_data`` that is neither array nor object), a value that is not a
JSON value, or any other failure while flattening rejects with
``UNEXPECTED_EVENT_PARSING_EXCEPTION``.

Audiences (Engage computations), on the flattened row, by exact flat key only (whichever
section the key came from; no substring matching):

- identify form: ``personas.computation_class`` is a string equal to ``"audience"`` ignoring
  case, and ``personas.computation_key`` is a non-empty string *A* (Engage sends these in
  ``context.personas``, so ``context`` must be mapped); the control keys are those two;
- track form: ``audience_key`` is a non-empty string *A* (Engage: ``properties.audience_key``);
  the control key is ``audience_key``.

A form applies only when the row also has the membership key *A* (Engage: ``traits.<A>`` or
``properties.<A>``, flattened to ``<A>``) and *A* is neither a header key nor a control key.
Then that form's control keys are removed and *A* is set, keeping its position, to
``"Audience Entered"`` if its value counts as membership, else ``"Audience Exited"``.
Membership follows JavaScript truthiness, except that ``None`` and a string equal to
``"false"`` (ignoring case and surrounding spaces) are not membership. Memberships are read
before any key is changed, so both forms may apply to one row. A row where no form applies is
left untouched: no key is added or removed, and no ``"undefined"`` key ever appears.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "AUDIENCE_ENTERED",
    "AUDIENCE_EXITED",
    "DEFAULT_MAX_ATTRIBUTES",
    "DEFAULT_MAX_DEPTH",
    "EXCEEDS_MAX_PROPERTIES_MAX",
    "HEADER_KEYS",
    "IDENTIFY_DEFAULT",
    "IDENTIFY_PRESET",
    "IDENTIFY_TRIGGER",
    "INVALID_CUSTOMER_PREFIX",
    "INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID",
    "INVALID_EVENT_TYPE",
    "INVALID_NO_DATA_MAPPED",
    "INVALID_TIMESTAMP",
    "MISSING_CUSTOMER_PREFIX",
    "MISSING_S3_ACCESS_KEY",
    "MISSING_S3_BUCKET_ACCESS_POINT",
    "MISSING_S3_REGION",
    "MISSING_S3_SECRET",
    "NESTING_DEPTH_EXCEEDED",
    "SECTIONS",
    "TRACK_DEFAULT",
    "TRACK_PRESET",
    "TRACK_TRIGGER",
    "UNEXPECTED_EVENT_PARSING_EXCEPTION",
    "AcousticError",
    "AcousticReject",
    "AcousticSettingsError",
    "FlatRow",
    "build_row",
    "build_row_with_stats",
    "check_destination_settings",
]

# --- error codes (segment.md §6.8, all HTTP 400 in Segment) ------------------------------------

INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID = "INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID"
INVALID_NO_DATA_MAPPED = "INVALID_NO_DATA_MAPPED"
NESTING_DEPTH_EXCEEDED = "NESTING_DEPTH_EXCEEDED"
UNEXPECTED_EVENT_PARSING_EXCEPTION = "UNEXPECTED_EVENT_PARSING_EXCEPTION"
MISSING_S3_ACCESS_KEY = "MISSING_S3_ACCESS_KEY"
MISSING_S3_SECRET = "MISSING_S3_SECRET"
MISSING_S3_REGION = "MISSING_S3_REGION"
MISSING_S3_BUCKET_ACCESS_POINT = "MISSING_S3_BUCKET_ACCESS_POINT"
MISSING_CUSTOMER_PREFIX = "MISSING_CUSTOMER_PREFIX"
INVALID_CUSTOMER_PREFIX = "INVALID_CUSTOMER_PREFIX"
# Ours: Segment has no action code for these (its schema validation rejects the event first).
EXCEEDS_MAX_PROPERTIES_MAX = "EXCEEDS_MAX_PROPERTIES_MAX"
INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
INVALID_EVENT_TYPE = "INVALID_EVENT_TYPE"

# --- row layout --------------------------------------------------------------------------------

HEADER_KEYS = ("uniqueRecipient", "eventSource", "timestamp")
SECTIONS = ("key_value_pairs", "array_data", "traits", "properties", "context")
DEFAULT_MAX_DEPTH = 10
DEFAULT_MAX_ATTRIBUTES = 1000
AUDIENCE_ENTERED = "Audience Entered"
AUDIENCE_EXITED = "Audience Exited"

_HEADER_SET = frozenset(HEADER_KEYS)
_OBJECT_SECTIONS = frozenset(("key_value_pairs", "traits", "properties", "context"))
_CLASS_KEY = "personas.computation_class"
_COMPUTATION_KEY = "personas.computation_key"
_AUDIENCE_KEY = "audience_key"
_NOT_AUDIENCE_NAMES = _HEADER_SET | {_CLASS_KEY, _COMPUTATION_KEY, _AUDIENCE_KEY}
_JS_DATE_LIMIT = 8.64e15  # largest |value| of a JavaScript Date, in milliseconds
_LEAF_TYPES = frozenset((str, int, float, bool, type(None)))
_CUSTOMER_PREFIX_DEFAULT = "customer_org_"

# --- presets (segment.md §6.3), mapping-directive JSON -----------------------------------------

TRACK_TRIGGER = 'type = "track"'
IDENTIFY_TRIGGER = 'type = "identify"'


def _email_or(primary: str, fallback: str) -> dict[str, Any]:
    """`@if exists <primary> then <primary> else <fallback>`, the Acoustic default pattern."""
    return {
        "@if": {
            "exists": {"@path": primary},
            "then": {"@path": primary},
            "else": {"@path": fallback},
        }
    }


def _preset(email_primary: str, *, with_sections: bool) -> dict[str, Any]:
    """A fresh preset mapping; with the sections it also maps properties, traits and context."""
    mapping: dict[str, Any] = {
        "uniqueRecipientId": _email_or(email_primary, "$.context.traits.email"),
        "type": {"@path": "$.type"},
        "timestamp": {"@path": "$.timestamp"},
    }
    if with_sections:
        mapping["properties"] = {"@path": "$.properties"}
        mapping["traits"] = {"@path": "$.traits"}
        mapping["context"] = {"@path": "$.context"}
    return mapping


#: Segment's "Track Calls" preset as shipped; maps no section, so alone it yields only
#: ``INVALID_NO_DATA_MAPPED``.
TRACK_PRESET: dict[str, Any] = _preset("$.properties.email", with_sections=False)
#: Segment's "Identify Calls" preset as shipped; maps no section either.
IDENTIFY_PRESET: dict[str, Any] = _preset("$.traits.email", with_sections=False)
#: "Track Calls" plus ``properties``, ``traits`` and ``context`` mapped whole.
TRACK_DEFAULT: dict[str, Any] = _preset("$.properties.email", with_sections=True)
#: "Identify Calls" plus ``properties``, ``traits`` and ``context`` mapped whole (the Engage
#: identify audience form needs ``context``).
IDENTIFY_DEFAULT: dict[str, Any] = _preset("$.traits.email", with_sections=True)


# --- errors ------------------------------------------------------------------------------------


class AcousticError(Exception):
    """Root of the errors of the Acoustic action: a rejected event or a bad destination setting."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class AcousticReject(AcousticError):
    """Raised when a mapped payload cannot become an Acoustic row; ``code`` is an Acoustic code.

    Attributes:
        code: one of the error-code constants of this module.
        detail: what was received and what was expected, naming the field.
        field: the payload field or flat key at fault, when there is one.
    """

    def __init__(self, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(code, detail, field)
        self.code = code
        self.detail = detail
        self.field = field


class AcousticSettingsError(AcousticError):
    """One problem with the destination settings (§6.1); its message never holds a secret."""

    def __init__(self, code: str, detail: str, field: str) -> None:
        super().__init__(code, detail, field)
        self.code = code
        self.detail = detail
        self.field = field


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel = 3
_SHORT_REPR.maxstring = 60
_SHORT_REPR.maxother = 60


def _show(value: Any, limit: int = 80) -> str:
    """A short repr of a received value for an error message (bounded for huge or deep values)."""
    try:
        text = repr(value[: limit + 1]) if isinstance(value, str) else _SHORT_REPR.repr(value)
    except Exception:  # e.g. an int past Python's int-to-text digit limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    """An exception's type and (shortened) message for an error detail."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    return f"{type(exc).__name__}: {_show(message, 200)}" if message else type(exc).__name__


def _kind(value: Any) -> str:
    """The JSON-ish name of a value's type for an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return f"a {type(value).__name__}"


# --- the row -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlatRow:
    """One Acoustic row and the keys written more than once while building it.

    Attributes:
        row: the flat row, header keys first, insertion-ordered.
        collisions: one entry per write to a key that was already in the row (the value was
            overwritten, or dropped for a header key), in the order they happened.
    """

    row: dict[str, Any]
    collisions: tuple[str, ...]


def build_row(
    payload: dict,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES,
) -> dict[str, Any]:
    """Build the flat Acoustic row of one mapped payload (see the module docstring).

    Args:
        payload: the mapped payload.
        max_depth: deepest allowed object/array level below a section.
        max_attributes: most keys allowed besides the three header keys.

    Returns:
        The row: column name to ``str``, ``int``, ``float``, ``bool`` or ``None``.

    Raises:
        AcousticReject: the event is rejected; ``code`` says why.
    """
    return _build(payload, max_depth, max_attributes)[0]


def build_row_with_stats(
    payload: dict,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_attributes: int = DEFAULT_MAX_ATTRIBUTES,
) -> FlatRow:
    """Build the flat Acoustic row of one mapped payload together with its key collisions.

    Args:
        payload: the mapped payload.
        max_depth: deepest allowed object/array level below a section (flattening recurses,
            so a limit near Python's recursion limit turns a payload that deep into
            ``UNEXPECTED_EVENT_PARSING_EXCEPTION`` rather than a row).
        max_attributes: most keys allowed besides the three header keys.

    Returns:
        The row and the collisions met while flattening.

    Raises:
        AcousticReject: the event is rejected; ``code`` says why.
        ValueError: ``max_depth`` or ``max_attributes`` is negative.
    """
    row, collisions = _build(payload, max_depth, max_attributes)
    return FlatRow(row, tuple(collisions))


def _build(payload: Any, max_depth: int, max_attributes: int) -> tuple[dict[str, Any], list[str]]:
    """The row of one mapped payload and its collisions, or the reject (processing order 1-8)."""
    if max_depth < 0 or max_attributes < 0:
        raise ValueError(
            f"max_depth = {max_depth!r}, max_attributes = {max_attributes!r}; "
            "expected both to be 0 or more"
        )
    if not isinstance(payload, dict):
        raise AcousticReject(
            UNEXPECTED_EVENT_PARSING_EXCEPTION,
            f"the mapped payload is {_kind(payload)}; expected an object",
        )
    header = _header(payload)
    mapped = _mapped_sections(payload)
    row = dict(header)
    collisions: list[str] = []
    try:
        writes = _flatten_sections(row, mapped, max_depth, None)
    except _NotPlainJson:
        writes = -1
    if len(row) != len(HEADER_KEYS) + writes:  # a key written twice, or not plain JSON
        row = dict(header)
        _flatten_sections(row, mapped, max_depth, collisions)

    if _CLASS_KEY in row or _AUDIENCE_KEY in row:
        _apply_audiences(row)

    attributes = len(row) - len(HEADER_KEYS)
    if attributes > max_attributes:
        raise AcousticReject(
            EXCEEDS_MAX_PROPERTIES_MAX,
            f"the event flattens to {attributes} attributes; "
            f"expected at most {max_attributes} (max_attributes)",
        )
    return row, collisions


def _header(payload: dict) -> dict[str, Any]:
    """The three header columns of a row, or the reject of the first invalid one."""
    get = payload.get
    recipient = _recipient(get("uniqueRecipientId"))
    event_type = get("type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise AcousticReject(
            INVALID_EVENT_TYPE,
            f"`type` is {_show(event_type) if 'type' in payload else 'missing'}; "
            'expected a non-empty string such as "track" or "identify"',
            "type",
        )
    timestamp = get("timestamp")
    _check_timestamp(timestamp, "timestamp" in payload)
    return {
        "uniqueRecipient": recipient,
        "eventSource": f"{event_type} Event",
        "timestamp": timestamp,
    }


def _mapped_sections(payload: dict) -> list[tuple[str, Any]]:
    """The sections with a non-``None`` value, in row order; a reject when there are none."""
    get = payload.get
    mapped = []
    for name in SECTIONS:
        section = get(name)
        if section is not None:
            mapped.append((name, section))
    if not mapped:
        raise AcousticReject(
            INVALID_NO_DATA_MAPPED,
            "none of key_value_pairs, array_data, traits, properties, context is mapped; "
            "expected at least one of them",
        )
    return mapped


def _recipient(value: Any) -> str:
    """The `uniqueRecipient` value, or a reject for a missing, blank or non-scalar id."""
    if isinstance(value, str):
        if value.strip():
            return value
        received = f"{_show(value)} (blank)"
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # more digits than Python converts to text
            received = "an integer too large to write"
    elif value is None:
        received = "missing or null"
    else:
        received = _kind(value)
    raise AcousticReject(
        INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
        f"`uniqueRecipientId` is {received}; expected a non-empty string "
        "(an email address or another unique id) or an integer",
        "uniqueRecipientId",
    )


def _check_timestamp(value: Any, present: bool) -> None:
    """Reject a timestamp that is neither an ISO-8601 string nor an epoch number."""
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
            return
        except ValueError:
            pass
    elif (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and -_JS_DATE_LIMIT <= value <= _JS_DATE_LIMIT
    ):
        return
    received = _show(value) if present else "missing"
    raise AcousticReject(
        INVALID_TIMESTAMP,
        f"`timestamp` is {received}; expected an ISO-8601 date-time string "
        "(e.g. 2024-01-02T10:30:43.123Z) or a finite epoch number",
        "timestamp",
    )


def _section_root(name: str, section: Any) -> dict | list:
    """The container to flatten for a mapped section, or a reject for a wrongly shaped one."""
    if name in _OBJECT_SECTIONS:
        if isinstance(section, dict):
            return section
        expected = "an object"
    else:  # array_data: an array of objects; a lone object counts as one item
        if isinstance(section, list):
            return section
        if isinstance(section, dict):
            return [section]
        expected = "an array of objects"
    raise AcousticReject(
        UNEXPECTED_EVENT_PARSING_EXCEPTION,
        f"`{name}` is {_kind(section)} ({_show(section)}); expected {expected}",
        name,
    )


def _flatten_sections(
    row: dict[str, Any],
    mapped: list[tuple[str, Any]],
    max_depth: int,
    collisions: list[str] | None,
) -> int:
    """Flatten the mapped sections into ``row`` in order; the number of leaf writes.

    With ``collisions`` None this is the fast walk (:func:`_flatten`): it neither looks for
    keys already in the row nor protects the header keys, so the caller compares the count with
    the row's length and, when they differ, starts again with a list (:func:`_walk`). Both
    walks visit the same nodes in the same order, so they reject the same payloads alike.
    """
    writes = 0
    for name, section in mapped:
        root = _section_root(name, section)
        try:
            if collisions is None:
                writes += _flatten_top(root, row, max_depth, name)
            else:
                _walk(root, "", 0, row, collisions, max_depth, name)
        except (AcousticReject, _NotPlainJson):
            raise
        except Exception as exc:
            raise AcousticReject(
                UNEXPECTED_EVENT_PARSING_EXCEPTION,
                f"flattening `{name}` failed with {_describe(exc)}; expected JSON data",
                name,
            ) from exc
    return writes


class _NotPlainJson(Exception):
    """The fast walk met a value that is not exactly a JSON type (e.g. a tuple or a subclass)."""


def _flatten_top(root: dict | list, out: dict[str, Any], max_depth: int, section: str) -> int:
    """:func:`_flatten` of a section's root, where a text key is its own flat key."""
    if type(root) is list:
        return _flatten(root, "", 0, out, max_depth, section)
    if type(root) is not dict:
        raise _NotPlainJson  # a subclass: its length and its items may disagree
    writes = len(root)
    for key, value in root.items():
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            out[key if type(key) is str else f"{key}"] = value
        elif kind is dict or kind is list:
            writes -= 1
            if max_depth == 0:
                raise _too_deep(f"{key}", value, 0, max_depth, section)
            if value:
                writes += _flatten(value, f"{key}.", 1, out, max_depth, section)
        else:
            raise _NotPlainJson
    return writes


def _flatten(
    node: dict | list,
    prefix: str,
    depth: int,
    out: dict[str, Any],
    max_depth: int,
    section: str,
) -> int:
    """Write the leaves under ``node`` into ``out`` like :func:`_walk`; the number of writes.

    Only exact JSON types are handled (anything else raises :class:`_NotPlainJson`), and keys
    already in ``out`` are overwritten without a note: see :func:`_flatten_sections`.
    """
    writes = len(node)
    # f-strings format list indexes and keys in one step; this loop is the hot path.
    for key, value in node.items() if type(node) is dict else enumerate(node):
        kind = type(value)
        if kind is str or kind is int or kind is float or kind is bool or value is None:
            out[f"{prefix}{key}"] = value
        elif kind is dict or kind is list:
            writes -= 1
            if depth >= max_depth:
                raise _too_deep(f"{prefix}{key}", value, depth, max_depth, section)
            if value:
                writes += _flatten(value, f"{prefix}{key}.", depth + 1, out, max_depth, section)
        else:
            raise _NotPlainJson
    return writes


def _walk(
    node: dict | list | tuple,
    prefix: str,
    depth: int,
    out: dict[str, Any],
    collisions: list[str],
    max_depth: int,
    section: str,
) -> None:
    """Write the leaves under ``node`` (at ``depth``) into ``out`` as ``prefix``-ed dot keys."""
    for key, value in node.items() if isinstance(node, dict) else enumerate(node):
        kind = type(value)
        if kind in _LEAF_TYPES:
            flat = f"{prefix}{key}"
            if flat in out:
                collisions.append(flat)
                if flat in _HEADER_SET:
                    continue
            out[flat] = value
        elif kind is dict or kind is list or isinstance(value, dict | list | tuple):
            if depth >= max_depth:
                raise _too_deep(f"{prefix}{key}", value, depth, max_depth, section)
            if value:
                _walk(value, f"{prefix}{key}.", depth + 1, out, collisions, max_depth, section)
        elif isinstance(value, str | int | float):  # subclasses of the JSON scalars
            flat = f"{prefix}{key}"
            if flat in out:
                collisions.append(flat)
                if flat in _HEADER_SET:
                    continue
            out[flat] = value
        else:
            raise AcousticReject(
                UNEXPECTED_EVENT_PARSING_EXCEPTION,
                f"{_show(f'{section}.{prefix}{key}', 200)} is {_kind(value)}; "
                "expected a JSON value (object, array, string, number, boolean or null)",
                section,
            )


def _too_deep(flat: str, value: Any, depth: int, max_depth: int, section: str) -> AcousticReject:
    """The reject for an object or array below ``max_depth`` levels, at flat key ``flat``."""
    return AcousticReject(
        NESTING_DEPTH_EXCEEDED,
        f"{_show(f'{section}.{flat}', 200)} is {_kind(value)} at depth {depth + 1} below "
        f"`{section}`; expected at most {max_depth} levels of nesting (max_depth)",
        section,
    )


def _is_member(value: Any) -> bool:
    """Audience membership: JavaScript truthiness, except that the string "false" is not."""
    if isinstance(value, str):
        return bool(value) and value.strip().lower() != "false"
    if isinstance(value, float):
        return value == value and value != 0.0  # NaN is falsy in JavaScript
    return bool(value)


def _apply_audiences(row: dict[str, Any]) -> None:
    """Turn an Engage audience membership into "Audience Entered"/"Audience Exited" in place."""
    updates: list[tuple[str, Any, tuple[str, ...]]] = []
    computation_class = row.get(_CLASS_KEY)
    if isinstance(computation_class, str) and computation_class.lower() == "audience":
        audience = row.get(_COMPUTATION_KEY)
        if _is_audience_name(audience, row):
            updates.append((audience, row[audience], (_CLASS_KEY, _COMPUTATION_KEY)))
    audience = row.get(_AUDIENCE_KEY)
    if _is_audience_name(audience, row):
        updates.append((audience, row[audience], (_AUDIENCE_KEY,)))
    for audience, membership, control_keys in updates:
        for key in control_keys:
            row.pop(key, None)
        row[audience] = AUDIENCE_ENTERED if _is_member(membership) else AUDIENCE_EXITED


def _is_audience_name(name: Any, row: dict[str, Any]) -> bool:
    """True when ``name`` names a membership key present in the row."""
    return isinstance(name, str) and name != "" and name not in _NOT_AUDIENCE_NAMES and name in row


# --- destination settings (segment.md §6.1) ----------------------------------------------------


def _blank(value: str | None) -> bool:
    """True for a missing, empty or whitespace-only setting."""
    return value is None or not str(value).strip()


def check_destination_settings(
    *,
    access_key: str | None,
    secret: str | None,
    region: str | None,
    access_point_alias: str | None,
    customer_prefix: str | None,
) -> list[AcousticSettingsError]:
    """Every problem with a destination's settings, in Segment's check order (empty = valid).

    Args:
        access_key: S3 access key (Segment ``s3_access_key``); never echoed.
        secret: S3 secret (Segment ``s3_secret``); never echoed.
        region: S3 region (Segment ``s3_region``).
        access_point_alias: S3 bucket access point alias (``s3_bucket_accesspoint_alias``).
        customer_prefix: file name prefix (Segment ``fileNamePrefix``, "Customer Prefix").

    Returns:
        One :class:`AcousticSettingsError` per failed check, in the order of §6.1.
    """
    problems: list[AcousticSettingsError] = []
    if _blank(access_key):
        problems.append(
            AcousticSettingsError(
                MISSING_S3_ACCESS_KEY,
                "`access_key` (S3 Access Key) is empty; expected the S3 access key "
                "for the bucket access point, from Acoustic",
                "access_key",
            )
        )
    if _blank(secret):
        problems.append(
            AcousticSettingsError(
                MISSING_S3_SECRET,
                "`secret` (S3 Secret) is empty; expected the S3 secret for the bucket "
                "access point, from Acoustic",
                "secret",
            )
        )
    if _blank(region):
        problems.append(
            AcousticSettingsError(
                MISSING_S3_REGION,
                '`region` (S3 Region) is empty; expected an AWS region, "us-east-1" '
                "unless Acoustic says otherwise",
                "region",
            )
        )
    if _blank(access_point_alias):
        problems.append(
            AcousticSettingsError(
                MISSING_S3_BUCKET_ACCESS_POINT,
                "`access_point_alias` (S3 Bucket Access Point Alias) is empty; expected the "
                "alias of the access point Acoustic created for the bucket",
                "access_point_alias",
            )
        )
    if _blank(customer_prefix):
        problems.append(
            AcousticSettingsError(
                MISSING_CUSTOMER_PREFIX,
                "`customer_prefix` (Customer Prefix) is empty; expected a few characters "
                'ending with "_", e.g. "CustomerAcme_Prod_"',
                "customer_prefix",
            )
        )
    elif not str(customer_prefix).endswith("_"):
        problems.append(
            AcousticSettingsError(
                INVALID_CUSTOMER_PREFIX,
                f"`customer_prefix` (Customer Prefix) is {_show(customer_prefix)}; "
                'expected it to end with an underscore "_", e.g. "CustomerAcme_Prod_"',
                "customer_prefix",
            )
        )
    elif customer_prefix == _CUSTOMER_PREFIX_DEFAULT:
        problems.append(
            AcousticSettingsError(
                INVALID_CUSTOMER_PREFIX,
                f"`customer_prefix` (Customer Prefix) is {_show(customer_prefix)}, Segment's "
                "unedited default; expected your Org name and a dataflow tag, "
                'e.g. "CustomerAcme_Prod_"',
                "customer_prefix",
            )
        )
    return problems
