"""The exact dedupe over the workers' keys files: the first occurrence by receivedAt wins, then
file order, then line order; a messageId accepted on a look-back day is a duplicate, named against
the latest such day; ids are compared on their text; the kept events are counted."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from acoustic_pipelines.segment.dedupe import find_duplicates
from acoustic_pipelines.segment.tables import KEYS_SCHEMA

Row = tuple[str, int, str | None]  # (message_id, receivedAt ms, userId)
DAY = date(1970, 1, 1)  # the rows' receivedAt are milliseconds after its start


def candidates(folder: Path, files: list[list[Row]]) -> list[str]:
    """One keys file per inner list (file index = position), lines numbered from 1."""
    paths = []
    for index, rows in enumerate(files):
        n = len(rows)
        table = pa.table(
            {
                "message_id": [m for m, _, _ in rows],
                "type": ["track"] * n,
                "event": ["E"] * n,
                "user_id": [u for _, _, u in rows],
                "anonymous_id": pa.nulls(n, pa.string()),
                "timestamp": pa.array(
                    [ms for _, ms, _ in rows], KEYS_SCHEMA.field("timestamp").type
                ),
                "received_at": pa.array(
                    [ms for _, ms, _ in rows], KEYS_SCHEMA.field("received_at").type
                ),
                "source_id": ["s"] * n,
                "line_number": pa.array(range(1, n + 1), pa.int64()),
                "file_index": pa.array([index] * n, pa.int32()),
            },
            schema=KEYS_SCHEMA,
        )
        path = folder / f"c{index}.parquet"
        pq.write_table(table, path)
        paths.append(str(path))
    return paths


def found(result) -> dict[tuple[int, int], str]:
    return {
        (file_index, int(line)): detail
        for file_index, dups in result.by_file.items()
        for line, detail in zip(dups.lines, dups.details, strict=True)
    }


def test_first_by_received_at_then_file_then_line_wins(tmp_path: Path) -> None:
    paths = candidates(
        tmp_path,
        [
            [("a", 10, "u1"), ("b", 5, "u2"), ("a", 20, "u1"), ("b", 5, "u2")],
            [("c", 1, None), ("b", 5, "u2"), ("a", 3, "u3")],
        ],
    )
    result = find_duplicates(paths, ["f0", "f1"], [], day=DAY, scratch=tmp_path)
    assert found(result) == {
        (0, 1): "messageId 'a' first seen at f1:3",
        (0, 3): "messageId 'a' first seen at f1:3",
        (0, 4): "messageId 'b' first seen at f0:2",  # equal receivedAt: the earlier line
        (1, 2): "messageId 'b' first seen at f0:2",  # equal receivedAt: the earlier file
    }
    assert (result.within_day, result.across_days, result.total) == (4, 0, 4)
    # kept: b (u2), c (no user), a (u3)
    assert (result.distinct_user_ids, result.distinct_anonymous_ids) == (2, 0)
    assert (result.kept, result.by_type, result.received_outside_day) == (3, {"track": 3}, 0)
    assert [row["message_id"] for row in result.preview] == ["b", "c", "a"]  # file, line order
    assert result.preview[0]["timestamp"] == "1970-01-01 00:00:00.005000+00:00"


def test_rows_received_on_another_day_are_counted(tmp_path: Path) -> None:
    paths = candidates(tmp_path, [[("a", 5, None), ("b", 86_400_000, None), ("c", -1, None)]])
    result = find_duplicates(paths, ["f0"], [], day=DAY, scratch=tmp_path)
    assert (result.kept, result.received_outside_day) == (3, 2)


def test_ids_that_differ_only_in_case_or_padding_are_different(tmp_path: Path) -> None:
    paths = candidates(
        tmp_path, [[("a", 1, None), ("A", 1, None), ("a ", 1, None), ("a", 2, None)]]
    )
    result = find_duplicates(paths, ["f0"], [], day=DAY, scratch=tmp_path)
    assert found(result) == {(0, 4): "messageId 'a' first seen at f0:1"}


def test_an_id_of_a_look_back_day_is_named_against_the_latest_day(tmp_path: Path) -> None:
    paths = candidates(tmp_path, [[("a", 1, None), ("b", 2, None), ("a", 3, None), ("c", 4, None)]])

    def ids(values: list[str]):
        return lambda: iter([pa.array(values[:1]), pa.array(values[1:])])

    earlier = [(date(2026, 11, 19), ids(["x", "b"])), (date(2026, 11, 18), ids(["a", "b", "y"]))]
    result = find_duplicates(paths, ["f0"], earlier, day=DAY, scratch=tmp_path, threads=2)
    assert found(result) == {
        (0, 1): "messageId 'a' already accepted on 2026-11-18",
        (0, 2): "messageId 'b' already accepted on 2026-11-19",
        (0, 3): "messageId 'a' already accepted on 2026-11-18",
    }
    assert (result.within_day, result.across_days) == (0, 3)


def test_a_day_without_candidates_has_no_duplicates(tmp_path: Path) -> None:
    result = find_duplicates([], [], [], day=DAY, scratch=tmp_path)
    assert (result.total, result.by_file) == (0, {})
