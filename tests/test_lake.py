"""The lake's partitions: staged aside, swapped in whole, never half-visible, on disk and on S3."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from acoustic_pipelines.lake import Lake, PartitionNotFound
from acoustic_pipelines.storage import open_location

DAY = date(2026, 11, 20)
DATASET = "segment/raw_events"


def write(lake: Lake, values: list[int], *, fail: bool = False) -> None:
    """Write one partition holding `values`; with `fail`, die after the data file is written."""
    with lake.stage(DATASET, DAY) as staged:
        pq.write_table(
            pa.table({"v": values}), staged.file("part-00000.parquet"), filesystem=lake.fs
        )
        if fail:
            raise RuntimeError("killed midway")
        lake.commit(staged, {"rows": len(values)})


def read(lake: Lake) -> list[int]:
    return sorted(lake.read_partition(DATASET, DAY).to_table().column("v").to_pylist())


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "local":
        return Lake(open_location(str(tmp_path / "lake")))
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("s3_bucket")
    return Lake(open_location(f"s3://{bucket}/lake", s3_endpoint_url=endpoint))


def test_unwritten_partition_is_not_found(lake: Lake) -> None:
    with pytest.raises(PartitionNotFound, match="date=2026-11-20"):
        lake.read_partition(DATASET, DAY)


def test_rewrite_replaces_the_partition(lake: Lake) -> None:
    write(lake, [1, 2, 3])
    write(lake, [4, 5])
    assert read(lake) == [4, 5]
    assert lake.summary(DATASET, DAY) == {"rows": 2}
    assert len(lake.parquet_files(DATASET, DAY)) == 1


def test_failed_write_leaves_previous_partition_and_no_staging(lake: Lake) -> None:
    write(lake, [1, 2, 3])
    with pytest.raises(RuntimeError, match="killed midway"):
        write(lake, [9, 9, 9, 9], fail=True)
    assert read(lake) == [1, 2, 3]
    assert staging_entries(lake) == []


def test_leftovers_of_a_killed_process_are_invisible_then_removed(
    lake: Lake, tmp_path: Path
) -> None:
    write(lake, [1])
    # A process killed midway cannot run cleanup: emulate by leaving a staged folder behind.
    leftover = lake.location.path(
        DATASET, "_staging", "date=2026-11-20-deadbeef0000", "part-00000.parquet"
    )
    lake.fs.create_dir(leftover.rsplit("/", 1)[0], recursive=True)
    pq.write_table(pa.table({"v": [7, 7]}), leftover, filesystem=lake.fs)
    assert read(lake) == [1]
    assert (
        pads.dataset(
            lake.location.path(DATASET), filesystem=lake.fs, format="parquet", partitioning="hive"
        ).count_rows()
        == 1
    )
    write(lake, [2])
    assert read(lake) == [2]
    assert staging_entries(lake) == []


def write_nested(lake: Lake, folders: dict[str, list[int]], *, fail: bool = False) -> None:
    """Write one partition with a sub-folder (one Parquet file) per entry of `folders`."""
    with lake.stage(DATASET, DAY) as staged:
        for name, values in folders.items():
            folder = lake.stage_subfolder(staged, name)
            pq.write_table(
                pa.table({"v": values}), f"{folder}/part-00000.parquet", filesystem=lake.fs
            )
        if fail:
            raise RuntimeError("killed midway")
        lake.commit(staged, {"folders": sorted(folders)})


def read_nested(lake: Lake, name: str) -> list[int]:
    table = lake.read_partition(DATASET, DAY, subpath=name).to_table()
    return sorted(table.column("v").to_pylist())


def test_sub_folders_are_listed_and_read_one_by_one(lake: Lake) -> None:
    write_nested(lake, {"destination=eu": [1, 2], "destination=us": [3]})
    assert lake.subfolders(DATASET, DAY) == ["destination=eu", "destination=us"]
    assert read_nested(lake, "destination=eu") == [1, 2]
    assert read_nested(lake, "destination=us") == [3]
    assert lake.partition_uri(DATASET, DAY, "destination=eu").endswith(
        "date=2026-11-20/destination=eu"
    )
    assert lake.parquet_files(DATASET, DAY) == []  # the top level holds no data file itself


def test_iter_batches_streams_a_sub_folder_in_small_batches(lake: Lake) -> None:
    write_nested(lake, {"destination=eu": list(range(10)), "destination=us": [99]})
    batches = list(lake.iter_batches(DATASET, DAY, subpath="destination=eu", batch_rows=3))
    assert [b.num_rows for b in batches] == [3, 3, 3, 1]
    assert [v for b in batches for v in b.column("v").to_pylist()] == list(range(10))
    with pytest.raises(PartitionNotFound):
        list(lake.iter_batches(DATASET, DAY, subpath="destination=none"))


def test_rewrite_replaces_every_sub_folder(lake: Lake) -> None:
    write_nested(lake, {"destination=eu": [1, 2], "destination=us": [3]})
    write_nested(lake, {"destination=eu": [4]})
    assert lake.subfolders(DATASET, DAY) == ["destination=eu"]
    assert read_nested(lake, "destination=eu") == [4]
    with pytest.raises(PartitionNotFound, match=r"destination=us .*sub-folders: destination=eu"):
        lake.read_partition(DATASET, DAY, subpath="destination=us")
    assert lake.summary(DATASET, DAY) == {"folders": ["destination=eu"]}
    assert staging_entries(lake) == []


def test_failed_nested_write_leaves_previous_sub_folders(lake: Lake) -> None:
    write_nested(lake, {"destination=eu": [1]})
    with pytest.raises(RuntimeError, match="killed midway"):
        write_nested(lake, {"destination=eu": [9], "destination=us": [9]}, fail=True)
    assert lake.subfolders(DATASET, DAY) == ["destination=eu"]
    assert read_nested(lake, "destination=eu") == [1]


def test_sub_folders_of_an_unwritten_partition_are_not_found(lake: Lake) -> None:
    with pytest.raises(PartitionNotFound):
        lake.subfolders(DATASET, DAY)


@pytest.mark.parametrize("subpath", ["_staging", ".hidden", "a/../b", "", "a//b"])
def test_sub_folder_names_readers_would_skip_are_refused(tmp_path: Path, subpath: str) -> None:
    lake = Lake(open_location(str(tmp_path / "lake")))
    with lake.stage(DATASET, DAY) as staged, pytest.raises(ValueError, match="sub-folder"):
        lake.stage_subfolder(staged, subpath)


def staging_entries(lake: Lake) -> list[str]:
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(
        lake.location.path(DATASET, "_staging"), allow_not_found=True, recursive=True
    )
    return [i.path for i in lake.fs.get_file_info(selector) if i.type == pafs.FileType.File]


def test_datasets_committed_together_are_visible_only_together(lake: Lake) -> None:
    other = "segment/rejected_events"
    with lake.stage(DATASET, DAY) as first, lake.stage(other, DAY) as second:
        for staged, values in ((first, [1, 2]), (second, [3])):
            pq.write_table(
                pa.table({"v": values}), staged.file("part-00000.parquet"), filesystem=lake.fs
            )
        lake.commit_together([(first, {"rows": 2}), (second, {"rows": 1})])
    assert read(lake) == [1, 2] and lake.summary(other, DAY) == {"rows": 1}
    # Only one of the two replaced (what a run killed between the two swaps leaves): neither
    # reads as committed any more.
    write(lake, [9])
    with pytest.raises(PartitionNotFound, match=f"together with {DATASET}"):
        lake.summary(other, DAY)
    assert read(lake) == [9]  # a plain commit stands on its own
