"""Contract of the JavaScript value helpers both Actions engines share (``js_values``).

- ``js_to_number``/``js_string_to_number`` follow JavaScript's ``Number()``: trimmed text,
  "" is 0, hex/octal/binary literals, "Infinity", NaN otherwise; integers past 2**53 round
  to the nearest double (``js_int_as_double``).
- Strings are UTF-16 in JavaScript: ``js_utf16_units`` splits characters above U+FFFF into
  surrogate pairs, ``js_from_utf16_units`` joins them back, ``js_slice`` slices code units.
- ``js_string_property``/``js_array_property`` read own ``length`` and indexes only; the
  trigger engine layers inherited prototype members on top (``triggers/paths.py: read_member``).
- ``js_truthy`` treats subclasses of str/int/float (StrEnum, IntEnum) as their base type.

Expected values are JavaScript's, written by hand.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acoustic_pipelines.actions.js_values import (
    UNDEFINED,
    has_surrogate,
    is_decimal_literal,
    js_array_property,
    js_from_utf16_units,
    js_get_property,
    js_int_as_double,
    js_length,
    js_slice,
    js_string_property,
    js_string_to_number,
    js_to_number,
    js_truthy,
    js_utf16_units,
)
from acoustic_pipelines.actions.triggers.paths import INHERITED, read_member


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0.0),
        ("  \u00a0\ufeff ", 0.0),
        (" 12 ", 12.0),
        ("-1.5e3", -1500.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("0x1F", 31.0),
        ("0b101", 5.0),
        ("0o17", 15.0),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ("-0x1", math.nan),
        ("1_000", math.nan),
        ("12px", math.nan),
        ("inf", math.nan),
    ],
)
def test_string_to_number(text: str, expected: float) -> None:
    number = js_string_to_number(text)
    assert number == expected or (math.isnan(expected) and math.isnan(number))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, 1.0),
        (False, 0.0),
        (None, 0.0),
        (7, 7.0),
        (2**53 + 1, float(2**53)),
        (10**400, math.inf),
        ([], 0.0),
        (["4"], 4.0),
        ([1, 2], math.nan),
        ({}, math.nan),
        (UNDEFINED, math.nan),
    ],
)
def test_to_number(value: Any, expected: float) -> None:
    number = js_to_number(value)
    assert number == expected or (math.isnan(expected) and math.isnan(number))


def test_int_as_double_keeps_safe_integers() -> None:
    assert js_int_as_double(2**53) == 2**53 and isinstance(js_int_as_double(2**53), int)
    assert js_int_as_double(-(2**60) - 1) == float(-(2**60))
    assert js_int_as_double(-(10**400)) == -math.inf


def test_decimal_literal_has_no_radix_nor_infinity() -> None:
    assert is_decimal_literal("-1.5e3") and is_decimal_literal("5.")
    assert not is_decimal_literal("0x10") and not is_decimal_literal("Infinity")
    assert not is_decimal_literal(" 5")


def test_utf16_units_slice_and_surrogates() -> None:
    text = "a😀b"
    units = js_utf16_units(text)
    assert units == "a\ud83d\ude00b" and len(units) == js_length(text) == 4
    assert js_from_utf16_units(units) == text
    assert js_slice(text, 1, -1) == "😀"
    assert js_slice(text, 0, 2) == "a\ud83d"
    assert has_surrogate(js_slice(text, 2)) and not has_surrogate(text)
    assert js_utf16_units("plain") == "plain"


@given(st.text())
def test_utf16_units_round_trip(text: str) -> None:
    assert js_from_utf16_units(js_utf16_units(text)) == text
    assert len(js_utf16_units(text)) == js_length(text)


def test_own_properties_of_strings_and_arrays() -> None:
    assert js_string_property("a😀", "length") == 3
    assert js_string_property("a😀", "1") == "\ud83d"
    assert js_string_property("ab", "2") is UNDEFINED
    assert js_string_property("ab", "01") is UNDEFINED
    assert js_array_property(["x", "y"], "1") == "y"
    assert js_array_property(["x"], "length") == 1
    assert js_array_property(["x"], "join") is UNDEFINED


def test_trigger_reads_inherited_members_that_mappings_do_not() -> None:
    # Segment's FQL validate() reads `obj[key]` (prototype members found); mapping-kit own keys.
    assert js_get_property("abc", "toUpperCase") is UNDEFINED
    assert read_member("abc", "toUpperCase") is INHERITED
    assert read_member("abc", "length") == 3
    assert read_member(0, "toFixed") == 0  # `0 && 0.toFixed` is 0
    assert read_member(5, "toFixed") is INHERITED
    assert read_member(True, "nope") is None


class _Count(enum.IntEnum):
    NONE = 0
    ONE = 1


class _Text(enum.StrEnum):
    EMPTY = ""
    FULL = "x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (_Count.NONE, False),
        (_Count.ONE, True),
        (_Text.EMPTY, False),
        (_Text.FULL, True),
        (math.nan, False),
        ([], True),
        ({}, True),
        ("", False),
        (UNDEFINED, False),
    ],
)
def test_truthy(value: Any, expected: bool) -> None:
    assert js_truthy(value) is expected
