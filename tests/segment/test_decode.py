"""The typed fast path accepts only what the exact path accepts, with the same columns; every
other line gets the exact path's reason and detail."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from acoustic_pipelines.segment.archive import list_archive_day, read_lines
from acoustic_pipelines.segment.decode import Rejected, accept_fast, decode_exact, decode_line
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location

DAY = date(2026, 11, 20)
GOOD = orjson.dumps(
    {
        "type": "track",
        "event": "Order Completed",
        "messageId": "ajs-5e123-1e400",
        "userId": "u-1",
        "anonymousId": "a-1",
        "timestamp": "2026-11-20T10:00:00.000+01:00",
        "receivedAt": "2026-11-20T10:00:01.000Z",
        "sentAt": "2026-11-20T10:00:00.500Z",
        "properties": {"total": 12.5, "products": [{"id": "p-1", "n": 2}]},
        "context": {"ip": "10.0.0.1"},
    }
)


def sample_lines(tmp_path: Path, bad_rate: float) -> list[bytes]:
    archive = open_location(str(tmp_path))
    write_sample_archive(archive, DAY, events=3_000, bad_rate=bad_rate, seed=21)
    return [line for f in list_archive_day(archive, DAY).files for line in read_lines(archive, f)]


def test_the_fast_path_takes_valid_lines_with_the_exact_columns(tmp_path: Path) -> None:
    lines = sample_lines(tmp_path, bad_rate=0.0)
    fast = [accept_fast(line) for line in lines]
    assert all(fast)  # every valid sample line is decided by the fast path
    assert fast == [decode_exact(line) for line in lines]


def test_bad_lines_get_the_exact_reason_and_detail(tmp_path: Path) -> None:
    lines = sample_lines(tmp_path, bad_rate=0.4)
    results = [decode_line(line) for line in lines]
    assert sum(isinstance(r, Rejected) for r in results) > 500
    assert results == [decode_exact(line) for line in lines]


BEYOND_FLOAT64 = [
    GOOD.replace(b'"total":12.5', b'"total":1e309'),
    GOOD.replace(b'"total":12.5', b'"total":-1E+0400'),
    GOOD.replace(b'"total":12.5', b'"total":' + b"9" * 400),
]
EDGE_CASES = [
    GOOD,
    GOOD.replace(b'"total":12.5', b'"total":1e-400'),  # underflow: orjson takes it
    GOOD.replace(b'"ip":"10.0.0.1"', b'"ip":"\\"1e400\\""'),
    GOOD.replace(b'"ip":"10.0.0.1"', b'"ip":"\xff"'),  # invalid UTF-8 in a skipped part
    GOOD.replace(b'"ip":"10.0.0.1"', b'"ip":"\xed\xa0\x80"'),  # an encoded surrogate
    GOOD.replace(b'"ip":"10.0.0.1"', b'"ip":"\\ud800"'),  # a lone surrogate escape
    GOOD.replace(b'"ip":"10.0.0.1"', b'"ip":"Zo\xc3\xab"'),  # valid UTF-8
    GOOD.replace(b'"ip":"10.0.0.1"', b'"ip":' + b"[" * 1100 + b"]" * 1100),
    GOOD.replace(b'"userId":"u-1"', b'"userId":"u-1","user\\u0049d":7'),  # the last one counts
    GOOD.replace(b'"userId":"u-1"', b'"userId":7,"userId":"u-2"'),
    GOOD.replace(b'"userId":"u-1"', b'"userId":""'),
    GOOD.replace(b'"properties":{', b'"properties":[{').replace(b"}]}", b"}]}]"),
    GOOD.replace(b'"properties":{', b'"properties" : null, "x":{'),
    GOOD.replace(b'"context":{"ip":"10.0.0.1"}', b'"context":"web"'),
    GOOD.replace(b'"context":{"ip":"10.0.0.1"}', b'"context":NaN'),
    GOOD.replace(b'"sentAt":"2026-11-20T10:00:00.500Z"', b'"sentAt":"yesterday"'),
    GOOD.replace(b'"sentAt":"2026-11-20T10:00:00.500Z"', b'"sentAt":1700000000'),
    GOOD.replace(b'"timestamp":"2026-11-20T10:00:00.000+01:00"', b'"timestamp":null'),
    GOOD.replace(b'"receivedAt":"2026-11-20T10:00:01.000Z"', b'"receivedAt":null'),
    GOOD.replace(b'"messageId":"ajs-5e123-1e400"', b'"messageId":"' + b"m" * 101 + b'"'),
    GOOD.replace(b'"type":"track"', b'"type":"alias","previousId":"p"'),
    GOOD.replace(b'"type":"track"', b'"type":"group"'),
    GOOD.replace(b'"type":"track"', b'"type":"Track"'),
    b"\xef\xbb\xbf" + GOOD,
    GOOD + b" x",
    GOOD + b" \t\r",
    b"",
    b"[1]",
    b'"track"',
    GOOD[:-1] + b',"pad":"' + b"x" * 33_000 + b'"}',
]


def test_edge_cases_match_the_exact_path() -> None:
    for line in EDGE_CASES:
        assert decode_line(line) == decode_exact(line), line[:120]


def test_a_number_beyond_float64_outside_the_checked_fields_is_accepted() -> None:
    # The one documented difference: valid JSON grammar that orjson refuses; msgspec skips it.
    expected = decode_exact(GOOD)
    for line in BEYOND_FLOAT64:
        assert decode_exact(line).reason == "MALFORMED_JSON"
        assert decode_line(line) == expected
    in_checked_field = GOOD.replace(b'"userId":"u-1"', b'"userId":1e309')
    assert decode_line(in_checked_field) == decode_exact(in_checked_field)


@settings(max_examples=400, deadline=None)
@given(
    position=st.integers(min_value=0, max_value=len(GOOD)),
    cut=st.integers(min_value=0, max_value=4),
    insert=st.binary(max_size=6)
    | st.sampled_from([b"e999", b"E+400", b'"', b"\\", b"\xff", b"null", b"{", b"]"]),
)
def test_a_mutated_line_gets_the_same_verdict_on_both_paths(
    position: int, cut: int, insert: bytes
) -> None:
    line = GOOD[:position] + insert + GOOD[position + cut :]
    exact = decode_exact(line)
    if isinstance(exact, Rejected) and "number is infinity" in exact.detail:
        return  # a number beyond float64: the documented difference
    assert decode_line(line) == exact
