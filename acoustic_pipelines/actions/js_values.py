"""JavaScript value semantics for JSON data held in Python objects.

Segment resolves mappings in Node.js, so a faithful re-implementation has to follow
JavaScript's rules rather than Python's: which values are falsy, how `String()` and
`JSON.stringify()` write numbers, the order object keys come out in, and that string
lengths and indexes count UTF-16 code units. Values here are what `json.loads` produces,
plus `UNDEFINED` for JavaScript's `undefined` (a value that is absent rather than null).

Both engines use these helpers: the mapping engine (`mapping_*.py`) and the FQL trigger
engine (`fql_*.py`, `trigger_*.py`), so a JavaScript rule is written once.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

MAX_SAFE_INTEGER: Final = 2**53
_MAX_ARRAY_INDEX: Final = 2**32 - 2
_ARRAY_INDEX = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_SURROGATE = re.compile("[\ud800-\udfff]")
# StringToNumber (ECMA-262) accepts these after trimming; anything else is NaN.
_DECIMAL_LITERAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RADIX_LITERAL = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")
# WhiteSpace and LineTerminator code points removed by String.prototype.trim().
_JS_WHITESPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


class _Undefined:
    """JavaScript `undefined`; only ever one instance, `UNDEFINED`."""

    __slots__ = ()
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False

    def __copy__(self) -> _Undefined:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Undefined:
        return self


UNDEFINED: Final = _Undefined()

_TYPE_NAMES: Final[dict[type, str]] = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    type(None): "null",
    _Undefined: "undefined",
}


def js_type_of(value: Any) -> str:
    """Return Segment's `realTypeOf` name ("object", "array", "null", "undefined", ...)."""
    name = _TYPE_NAMES.get(type(value))
    if name is not None:
        return name
    for python_type, js_name in _TYPE_NAMES.items():
        if isinstance(value, python_type):
            return js_name
    return "object"


def js_typeof(value: Any) -> str:
    """Return what JavaScript's `typeof` operator says (`null` and arrays are "object")."""
    name = js_type_of(value)
    return "object" if name in ("null", "array") else name


def js_truthy(value: Any) -> bool:
    """Return JavaScript truthiness: false, 0, NaN, "", null and undefined are falsy."""
    if value is None or value is UNDEFINED:
        return False
    kind = type(value)
    if kind is str:
        return value != ""
    if kind is bool:
        return value
    if kind is int:
        return value != 0
    if kind is float:
        return value == value and value != 0
    if kind is dict or kind is list:
        return True
    return _subclass_truthy(value)


def _subclass_truthy(value: Any) -> bool:
    """Truthiness of a str/int/float subclass (StrEnum, numpy.float64): as its base type."""
    if isinstance(value, str):
        return value != ""
    if isinstance(value, int | float):
        return value == value and value != 0
    return True


def js_is_nullish(value: Any) -> bool:
    """Return True for null and undefined (JavaScript `value == null`)."""
    return value is None or value is UNDEFINED


def js_number_to_string(number: float) -> str:
    """Format a number as JavaScript's `String(number)` does ("10", "1e-7", "1e+21")."""
    if isinstance(number, int) and not isinstance(number, bool):
        if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            return str(number)
        number = _int_to_double(number)  # JavaScript holds every number as a double
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    text = "".join(map(str, digits))
    # `point` is where the decimal point goes, counted from the left of `text`.
    point = len(text) + int(exponent)
    return ("-" if sign else "") + _place_decimal_point(text, point)


def _int_to_double(number: int) -> float:
    """Round an integer to the nearest double, or to an infinity beyond the double range."""
    try:
        return float(number)
    except OverflowError:
        return float("inf") if number > 0 else float("-inf")


def js_int_as_double(number: int) -> int | float:
    """Return an integer as JavaScript holds it: unchanged up to 2**53, else the nearest double."""
    if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        return number
    return _int_to_double(number)


def is_decimal_literal(text: str) -> bool:
    """Return True for decimal number text ("12", "-1.5e3", ".5", "5."; not "Infinity", "0x1")."""
    return _DECIMAL_LITERAL.fullmatch(text) is not None


def js_string_to_number(text: str) -> float:
    """Convert as JavaScript's `Number(text)` does: "" is 0, hex/octal/binary, "Infinity", NaN."""
    text = js_trim(text)
    if not text:
        return 0.0
    if is_decimal_literal(text):
        return float(text)
    if text in ("Infinity", "+Infinity"):
        return math.inf
    if text == "-Infinity":
        return -math.inf
    if _RADIX_LITERAL.fullmatch(text):
        return float(js_int_as_double(int(text, 0)))
    return math.nan


def js_to_number(value: Any) -> float:
    """Convert as JavaScript's `Number(value)` does (null is 0, undefined and objects are NaN)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        return float(js_int_as_double(value))
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return js_string_to_number(value)
    if value is None:
        return 0.0
    if isinstance(value, list):
        return js_string_to_number(js_to_string(value))
    return math.nan


def _place_decimal_point(digits: str, point: int) -> str:
    """Lay out significant digits the way ECMAScript Number::toString does."""
    count = len(digits)
    if count <= point <= 21:
        return digits + "0" * (point - count)
    if 0 < point <= 21:
        return f"{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    exponent = point - 1
    mantissa = digits if count == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent)}"


def js_to_string(value: Any) -> str:
    """Convert as JavaScript's `String(value)` does (arrays joined, objects "[object Object]")."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int or kind is float:
        return js_number_to_string(value)
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if kind is list:
        return ",".join("" if js_is_nullish(item) else js_to_string(item) for item in value)
    return "[object Object]"


def js_loosely_equals_empty_string(value: Any) -> bool:
    """Return JavaScript's `value == ''`: true for "", 0, false and arrays that join to ""."""
    kind = type(value)
    if kind is str:
        return value == ""
    if kind is bool:
        return not value
    if kind is int or kind is float:
        return value == 0
    if kind is list:
        return js_to_string(value) == ""
    return False


def is_array_index(key: Any) -> bool:
    """Return True for keys JavaScript treats as array indexes ("0", "10", not "01" or "-1")."""
    return (
        isinstance(key, str)
        and _ARRAY_INDEX.match(key) is not None
        and int(key) <= _MAX_ARRAY_INDEX
    )


def js_own_keys(obj: dict[str, Any]) -> list[str]:
    """Return keys in JavaScript order: array indexes ascending, then insertion order."""
    keys = list(obj)
    indexes = [key for key in keys if is_array_index(key)]
    if not indexes:
        return keys
    indexes.sort(key=int)
    return indexes + [key for key in keys if not is_array_index(key)]


def js_length(text: str) -> int:
    """Return a string's JavaScript `length`, counted in UTF-16 code units."""
    if text.isascii():
        return len(text)
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def js_utf16_units(text: str) -> str:
    """Return the text as JavaScript holds it: characters above U+FFFF split into surrogates."""
    if text.isascii() or all(ord(char) <= 0xFFFF for char in text):
        return text
    encoded = text.encode("utf-16-le", "surrogatepass")
    return "".join(
        encoded[index : index + 2].decode("utf-16-le", "surrogatepass")
        for index in range(0, len(encoded), 2)
    )


def js_from_utf16_units(units: str) -> str:
    """Inverse of `js_utf16_units`: join surrogate pairs into characters, keep lone halves."""
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def js_code_units(text: str) -> list[str]:
    """Split a string into its UTF-16 code units, as JavaScript indexes it."""
    return list(js_utf16_units(text))


def js_slice(text: str, start: int, stop: int | None = None) -> str:
    """Return JavaScript's `text.slice(start, stop)`: indexes count UTF-16 code units."""
    return js_from_utf16_units(js_utf16_units(text)[start:stop])


def has_surrogate(text: str) -> bool:
    """Return True when the text holds a lone UTF-16 surrogate (e.g. after `js_slice`)."""
    return _SURROGATE.search(text) is not None


def js_string_property(text: str, key: str) -> Any:
    """Read `text[key]` for a string: `length` or one UTF-16 code unit, else undefined."""
    if key == "length":
        return js_length(text)
    if not is_array_index(key):
        return UNDEFINED
    units = js_utf16_units(text)
    index = int(key)
    return units[index] if index < len(units) else UNDEFINED


def js_array_property(items: list[Any], key: str) -> Any:
    """Read `items[key]` for an array: `length` or an element, else undefined."""
    if key == "length":
        return len(items)
    if not is_array_index(key):
        return UNDEFINED
    index = int(key)
    return items[index] if index < len(items) else UNDEFINED


def js_get_property(value: Any, key: str) -> Any:
    """Read `value[key]` for a JSON value: own keys, array/string indexes and `length` only."""
    kind = type(value)
    if kind is dict:
        return value.get(key, UNDEFINED)
    if kind is list:
        return js_array_property(value, key)
    if kind is str:
        return js_string_property(value, key)
    return UNDEFINED


def js_trim(text: str) -> str:
    """Remove leading and trailing whitespace as String.prototype.trim() does."""
    return text.strip(_JS_WHITESPACE)


@lru_cache(maxsize=4096)
def _canonical_char(char: str) -> str:
    """Case-fold one character as a non-Unicode JavaScript RegExp with the `i` flag does."""
    code = ord(char)
    if code > 0xFFFF:
        return char  # such a regexp compares the two surrogate halves, which have no case
    upper = char.upper()
    if len(upper) != 1 or ord(upper) > 0xFFFF:
        return char
    if code >= 128 and ord(upper) < 128:
        return char  # e.g. "ſ" (long s) does not match "s"
    return upper


def js_regexp_case_fold(text: str) -> str:
    """Map text so that equal results mean a case-insensitive JavaScript RegExp match."""
    if text.isascii():
        return text.upper()
    return "".join(map(_canonical_char, text))


def js_stringify(value: Any) -> Any:
    """Return JSON.stringify(value): JS key order and number text; UNDEFINED for undefined."""
    if value is UNDEFINED:
        return UNDEFINED
    parts: list[str] = []
    _write_json(value, parts)
    return "".join(parts)


def _write_json(value: Any, parts: list[str]) -> None:
    """Append the JSON text of one value (never undefined) to `parts`."""
    kind = type(value)
    if kind is str:
        parts.append(_quote(value))
    elif kind is bool:
        parts.append("true" if value else "false")
    elif kind is int or kind is float:
        finite = value == value and value not in (float("inf"), float("-inf"))
        parts.append(js_number_to_string(value) if finite else "null")
    elif value is None:
        parts.append("null")
    elif kind is list:
        parts.append("[")
        for index, item in enumerate(value):
            if index:
                parts.append(",")
            _write_json(None if item is UNDEFINED else item, parts)
        parts.append("]")
    elif kind is dict:
        parts.append("{")
        first = True
        for key in js_own_keys(value):
            item = value[key]
            if item is UNDEFINED:
                continue
            if not first:
                parts.append(",")
            first = False
            parts.append(_quote(str(key)))
            parts.append(":")
            _write_json(item, parts)
        parts.append("}")
    else:
        parts.append("null")


def _quote(text: str) -> str:
    """Quote a string as JSON.stringify does (lone surrogates escaped, other text kept)."""
    quoted = json.dumps(text, ensure_ascii=False)
    if _SURROGATE.search(quoted):
        quoted = _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", quoted)
    return quoted


def _reject_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which JSON.parse does not accept."""
    raise ValueError(f"{name} is not valid JSON")


def _parse_integer(text: str) -> int | float:
    """Read an integer literal; beyond 2**53 JavaScript keeps only a double."""
    if len(text) > 17:  # also keeps int() away from its 4,300-digit limit
        return float(text)
    number = int(text)
    return number if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER else float(text)


def js_parse_json(text: str) -> Any:
    """Parse text as JSON.parse does; raise ValueError when JavaScript would throw."""
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_integer)
    except RecursionError as err:
        raise ValueError("JSON nested too deeply") from err
