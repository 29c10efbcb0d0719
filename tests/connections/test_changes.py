"""Contract of `acoustic_pipelines.connections.changes` (and the DuckDB warehouse reader):

- Rows compare with the snapshot by primary key: added (new key), updated (new checksum), deleted
  (key gone; the record carries only its key), unchanged; an empty snapshot makes all added.
- The checksum is stable: the same row gives the same checksum in another diff and another batch
  split; any change of a value changes it.
- Rejected rows are kept with their reason and never classified: a null or duplicated key, over
  512 columns, a column name over 128 characters, a record over 512 KiB, a value over 128 KiB.
- The snapshot file (`write_snapshot`, what the next sync reads) holds the snapshot the advanced
  records leave, with each row's fast hash; a diff against it gives the same verdicts as against
  the database's snapshot, also when its hashes are not this DuckDB's (then by checksum), and
  the rows it finds unchanged cost no JSON.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acoustic_pipelines.connections.changes import ChangeCounts, ChangeSet, detect_changes
from acoustic_pipelines.connections.ledger import SNAPSHOT_SCHEMA
from acoustic_pipelines.connections.warehouse import WarehouseError, read_model


def rows_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(rows)


def settle(change_set: ChangeSet, path: Path) -> Path:
    """Write the snapshot a fully settled sync of this change set leaves (for chained diffs)."""
    change_set.advance(
        [
            (c.key, None if c.kind == "deleted" else c.checksum, c.version + 1)
            for page in change_set.changes()
            for c in page
        ]
    )
    change_set.write_snapshot(path)
    return path


def snapshot_of(change_set: ChangeSet) -> pa.RecordBatch:
    """That snapshot as the ledger database keeps it: record keys, checksums, versions, no hashes."""
    with tempfile.TemporaryDirectory() as folder:
        table = pq.read_table(settle(change_set, Path(folder) / "snapshot.parquet"))
    return table.select(SNAPSHOT_SCHEMA.names).cast(SNAPSHOT_SCHEMA).to_batches()[0]


def diff(rows: list[dict[str, Any]], snapshot: list[pa.RecordBatch], tmp_path: Path) -> ChangeSet:
    return detect_changes([rows_batch(rows)], snapshot, primary_key="id", workdir=tmp_path)


def all_changes(change_set: ChangeSet) -> list[tuple[str, Any, dict[str, Any]]]:
    return [(c.kind, c.key, c.properties) for page in change_set.changes(page_rows=2) for c in page]


ROWS = [{"id": i, "email": f"u{i}@example.com", "plan": "pro"} for i in range(1, 6)]


def test_first_diff_adds_everything_then_each_kind(tmp_path: Path) -> None:
    with diff(ROWS, [], tmp_path) as first:
        assert first.counts == ChangeCounts(5, 5, 0, 0, 0, 0)
        assert [k for k, _, _ in all_changes(first)] == ["added"] * 5
        snapshot = snapshot_of(first)
    changed = [dict(r) for r in ROWS if r["id"] != 5] + [{"id": 6, "email": "new@x", "plan": "pro"}]
    changed[0]["plan"] = "max"
    with diff(changed, [snapshot], tmp_path) as second:
        assert second.counts == ChangeCounts(5, 1, 1, 1, 3, 0)
        found = sorted(all_changes(second))
    assert found == [
        ("added", "6", {"id": 6, "email": "new@x", "plan": "pro"}),
        ("deleted", "5", {"id": 5}),
        ("updated", "1", {"id": 1, "email": "u1@example.com", "plan": "max"}),
    ]
    # the folder of the diff's database is gone once closed
    assert list(tmp_path.iterdir()) == []


def test_checksums_are_stable_across_batches_and_change_with_any_value(tmp_path: Path) -> None:
    split = [rows_batch(ROWS[:2]), rows_batch(ROWS[2:])]
    with detect_changes(split, [], primary_key="id", workdir=tmp_path) as one:
        sums = {c.key: c.checksum for page in one.changes() for c in page}
    with diff(ROWS, [], tmp_path) as other:
        assert sums == {c.key: c.checksum for page in other.changes() for c in page}
    tweaked = [dict(r, email=r["email"] + " ") if r["id"] == 3 else r for r in ROWS]
    with diff(tweaked, [], tmp_path) as third:
        third_sums = {c.key: c.checksum for page in third.changes() for c in page}
    assert {k for k in sums if sums[k] != third_sums[k]} == {"3"}


def test_rejects_are_kept_with_their_reason(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "v": "ok"},
        {"id": None, "v": "no key"},
        {"id": 2, "v": "twice"},
        {"id": 2, "v": "twice again"},
        {"id": 3, "v": "x" * (130 * 1024)},
    ]
    with diff(rows, [], tmp_path) as change_set:
        assert change_set.counts == ChangeCounts(5, 1, 0, 0, 0, 4)
        rejected = sorted((r.key or "", r.reason) for page in change_set.rejections() for r in page)
    assert rejected == [
        ("", "the primary key is null"),
        ("2", "the primary key 2 is not unique: 2 rows have it"),
        ("2", "the primary key 2 is not unique: 2 rows have it"),
        ("3", "column v is over 128 KiB as JSON"),
    ]


def test_a_record_over_512_kib(tmp_path: Path) -> None:
    row = {"id": 1, **{f"c{i}": "x" * 100_000 for i in range(6)}}
    with diff([row], [], tmp_path) as change_set:
        (page,) = change_set.rejections()
    assert page[0].reason == "the record is over 512 KiB as JSON"


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        ({f"c{i}": i for i in range(512)}, "the model has 513 columns; Segment syncs at most 512"),
        ({"c" * 129: 1}, "is 129 characters; Segment allows at most 128"),
    ],
)
def test_model_wide_rejects(columns: dict[str, Any], reason: str, tmp_path: Path) -> None:
    with diff([{"id": 1, **columns}, {"id": 2, **columns}], [], tmp_path) as change_set:
        assert change_set.counts.rejected == 2 and change_set.counts.added == 0
        reasons = {r.reason for page in change_set.rejections() for r in page}
    assert len(reasons) == 1 and reason in reasons.pop()


def test_duckdb_warehouse_reads_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS id, 'x' || range AS v FROM range(2500)")
    batches = list(read_model(str(path), "SELECT * FROM t ORDER BY id", batch_rows=1000))
    assert sum(b.num_rows for b in batches) == 2500 and len(batches) >= 3
    with pytest.raises(WarehouseError, match="does not exist"):
        list(read_model(str(tmp_path / "missing.duckdb"), "SELECT 1"))
    with pytest.raises(WarehouseError, match="SQL failed"):
        list(read_model(str(path), "SELECT * FROM nope"))


def test_the_snapshot_file_moves_only_for_advanced_records(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with detect_changes([rows_batch(ROWS)], [], primary_key="id", workdir=work) as first:
        first_sums = {c.key: c.checksum for page in first.changes() for c in page}
        first.advance([("1", first_sums["1"], 1), ("2", first_sums["2"], 1)])  # 3, 4, 5 failed
        first.write_snapshot(tmp_path / "one.parquet")
    one = pq.read_table(tmp_path / "one.parquet").to_pylist()
    assert sorted((r["record_key"], r["checksum"]) for r in one) == [
        ("1", first_sums["1"]),
        ("2", first_sums["2"]),
    ]
    assert all(r["row_hash"] is not None for r in one)
    changed = [dict(r, plan="max") if r["id"] == 2 else r for r in ROWS if r["id"] != 1]
    with detect_changes(
        [rows_batch(changed)], tmp_path / "one.parquet", primary_key="id", workdir=work
    ) as second:
        assert second.counts == ChangeCounts(4, 3, 1, 1, 0, 0)
        kinds = {c.key: (c.kind, c.checksum) for page in second.changes() for c in page}
        second.advance([("1", None, 2), ("3", kinds["3"][1], 1)])  # 2 (updated), 4, 5 failed
        second.write_snapshot(tmp_path / "two.parquet")
    two = {
        r["record_key"]: (r["checksum"], r["version"])
        for r in pq.read_table(tmp_path / "two.parquet").to_pylist()
    }
    # the deleted record stays as a tombstone keeping its version
    assert two == {"1": (None, 2), "2": (first_sums["2"], 1), "3": (first_sums["3"], 1)}


def test_unchanged_rows_by_hash_and_by_checksum_give_the_same_verdicts(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with detect_changes([rows_batch(ROWS)], [], primary_key="id", workdir=work) as first:
        settle(first, tmp_path / "hashed.parquet")
    hashed = pq.read_table(tmp_path / "hashed.parquet")
    # The same snapshot with hashes no row has (another DuckDB's hash()), and with none at all.
    wrong = hashed.set_column(2, "row_hash", pa.compute.add(hashed["row_hash"], 1))
    pq.write_table(wrong, tmp_path / "rehash.parquet")
    plain = hashed.select(["record_key", "checksum"]).to_batches()
    changed = [dict(r, plan="max") if r["id"] == 2 else r for r in ROWS]
    verdicts = []
    for snapshot in (tmp_path / "hashed.parquet", tmp_path / "rehash.parquet", plain):
        with detect_changes(
            [rows_batch(changed)], snapshot, primary_key="id", workdir=work
        ) as diff_:
            verdicts.append((diff_.counts, sorted(all_changes(diff_)), diff_.rehashed))
            settle(diff_, tmp_path / "after.parquet")
        after = pq.read_table(tmp_path / "after.parquet")
        with detect_changes(
            [rows_batch(changed)], tmp_path / "after.parquet", primary_key="id", workdir=work
        ) as again:
            assert again.counts == ChangeCounts(5, 0, 0, 0, 5, 0) and again.rehashed == 0
        assert after.num_rows == 5
    expected = (ChangeCounts(5, 0, 1, 0, 4, 0), [("updated", "2", changed[1])])
    # only the row whose hash matched nothing was turned into JSON and re-hashed
    assert verdicts == [(*expected, 0), (*expected, 4), (*expected, 4)]


def test_identical_duplicate_rows_of_a_settled_record_are_rejected_with_their_row(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    with detect_changes([rows_batch(ROWS)], [], primary_key="id", workdir=work) as first:
        settle(first, tmp_path / "snapshot.parquet")
    twice = [*ROWS, ROWS[2]]  # record 3, unchanged, now twice
    with detect_changes(
        [rows_batch(twice)], tmp_path / "snapshot.parquet", primary_key="id", workdir=work
    ) as second:
        assert second.counts == ChangeCounts(6, 0, 0, 0, 4, 2)
        rejected = [(r.key, r.reason, r.row) for page in second.rejections() for r in page]
    row = '{"id":3,"email":"u3@example.com","plan":"pro"}'
    reason = "the primary key 3 is not unique: 2 rows have it"
    assert rejected == [("3", reason, row), ("3", reason, row)]


def test_versions_count_committed_moves_and_survive_deletes(tmp_path: Path) -> None:
    """A → B → A, then deleted and added again: every move starts from a higher version, in a
    snapshot file as in the database's batches; a tombstone is never deleted twice."""
    work = tmp_path / "work"
    work.mkdir()
    a = [{"id": 1, "plan": "pro"}, {"id": 2, "plan": "pro"}]
    b = [{"id": 1, "plan": "max"}, {"id": 2, "plan": "pro"}]
    states = [a, b, a, a[1:], a, a]  # ... then record 1 deleted, added again, unchanged
    snapshot: Any = []
    seen = []
    for step, rows in enumerate(states):
        with detect_changes([rows_batch(rows)], snapshot, primary_key="id", workdir=work) as d:
            seen.append([(c.kind, c.key, c.version) for page in d.changes() for c in page])
            # alternate: a snapshot file, then the database's batches (no hashes)
            file = tmp_path / f"snapshot{step}.parquet"
            snapshot = [snapshot_of(d)] if step % 2 else settle(d, file)
    assert seen == [
        [("added", "1", 0), ("added", "2", 0)],
        [("updated", "1", 1)],
        [("updated", "1", 2)],
        [("deleted", "1", 3)],
        [("added", "1", 4)],
        [],
    ]


def test_a_snapshot_without_versions_reads_as_version_0(tmp_path: Path) -> None:
    """Snapshot files and database rows written before versions existed keep working."""
    work = tmp_path / "work"
    work.mkdir()
    with detect_changes([rows_batch(ROWS)], [], primary_key="id", workdir=work) as first:
        settle(first, tmp_path / "versioned.parquet")
    old = pq.read_table(tmp_path / "versioned.parquet").drop_columns(["version"])
    pq.write_table(old, tmp_path / "old.parquet")
    changed = [dict(r, plan="max") if r["id"] == 2 else r for r in ROWS[1:]]
    for snapshot in (tmp_path / "old.parquet", old.select(["record_key", "checksum"]).to_batches()):
        with detect_changes([rows_batch(changed)], snapshot, primary_key="id", workdir=work) as d:
            assert d.counts == ChangeCounts(4, 0, 1, 1, 3, 0)
            assert sorted((c.kind, c.key, c.version) for p in d.changes() for c in p) == [
                ("deleted", "1", 0),
                ("updated", "2", 0),
            ]
