"""Dedupe on spilled keys: the first occurrence by receivedAt wins, then arrival order; hash
collisions between different messageIds never merge them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from acoustic_pipelines.segment import dedupe
from acoustic_pipelines.segment.dedupe import KeySpill, distinct_ids, find_duplicates

Row = tuple[str, int, str | None]  # (message_id, receivedAt ms, userId)


def spill(folder: Path, batches: list[list[Row]]) -> KeySpill:
    """A closed KeySpill holding the rows, one append per batch."""
    keys = KeySpill(folder)
    line = 0
    for batch in batches:
        keys.append(
            message_ids=[m for m, _, _ in batch],
            received_at=pa.array([ms for _, ms, _ in batch], pa.timestamp("ms", tz="UTC")),
            file_index=[0] * len(batch),
            line_number=range(line + 1, line + len(batch) + 1),
            user_ids=[u for _, _, u in batch],
            anonymous_ids=[None] * len(batch),
        )
        line += len(batch)
    keys.close()
    return keys


def test_first_by_received_at_then_arrival_wins(tmp_path: Path) -> None:
    keys = spill(
        tmp_path,
        [
            [("a", 10, "u1"), ("b", 5, "u2"), ("a", 20, "u1")],
            [("c", 1, None), ("b", 5, "u2"), ("a", 3, "u3")],
        ],
    )
    # a: row 5 (receivedAt 3) wins over rows 0 and 2; b: equal receivedAt, row 1 arrived first.
    assert find_duplicates(keys).tolist() == [5, -1, 5, -1, 1, -1]
    assert keys.column("line_number").tolist() == [1, 2, 3, 4, 5, 6]


def test_messageids_sharing_a_hash_are_compared_on_their_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every id hashes to 7: only the text comparison can tell "a" from "b".
    monkeypatch.setattr(dedupe, "_hashes", lambda values: np.full(len(values), 7, np.int64))
    keys = spill(tmp_path, [[("a", 10, None), ("b", 5, None), ("a", 20, None)], [("b", 5, None)]])
    assert find_duplicates(keys).tolist() == [-1, -1, 0, 1]


def test_distinct_ids_skip_missing_and_dropped_rows(tmp_path: Path) -> None:
    keys = spill(tmp_path, [[("a", 1, "u1"), ("b", 2, None), ("c", 3, "u2"), ("d", 4, "u1")]])
    assert distinct_ids(keys, "user", np.array([True, True, True, True])) == 2
    assert distinct_ids(keys, "user", np.array([True, True, False, True])) == 1
    assert distinct_ids(keys, "anonymous", np.ones(4, dtype=bool)) == 0


def test_empty_and_single_row_days(tmp_path: Path) -> None:
    assert find_duplicates(spill(tmp_path / "empty", [])).tolist() == []
    assert find_duplicates(spill(tmp_path / "one", [[("a", 1, None)]])).tolist() == [-1]
