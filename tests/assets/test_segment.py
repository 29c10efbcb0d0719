"""`segment/raw_events` materialized in-process on generated archives, with its checks."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from acoustic_pipelines.lake import Lake
from acoustic_pipelines.segment import spec
from acoustic_pipelines.segment.archive import day_folder
from acoustic_pipelines.segment.raw_events import RAW_EVENTS
from acoustic_pipelines.segment.sample import SampleSummary, write_sample_archive
from acoustic_pipelines.storage import open_location
from assets.segment import (
    READABLE_CHECK,
    REJECT_RATE_CHECK,
    raw_events,
    raw_events_partition_consistent,
)
from resources import LakeResource, SegmentArchiveResource

DAY = date(2026, 11, 20)
PARTITION = DAY.isoformat()


@pytest.fixture
def paths(tmp_path: Path) -> tuple[str, str]:
    return str(tmp_path / "archive"), str(tmp_path / "lake")


def run(paths: tuple[str, str], run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    archive, lake = paths
    return dg.materialize(
        [raw_events, raw_events_partition_consistent],
        partition_key=PARTITION,
        resources={
            "segment_archive": SegmentArchiveResource(location=archive),
            "lake": LakeResource(location=lake),
        },
        run_config=run_config,
        raise_on_error=False,
    )


def sample(paths: tuple[str, str], **kwargs) -> SampleSummary:
    return write_sample_archive(open_location(paths[0]), DAY, **kwargs)


def metadata_of(result: dg.ExecuteInProcessResult) -> dict:
    (materialization,) = result.asset_materializations_for_node("segment__raw_events")
    assert materialization.partition == PARTITION
    return {key: value.value for key, value in materialization.metadata.items()}


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_exact_counts_on_an_archive_with_bad_lines(paths: tuple[str, str]) -> None:
    summary = sample(paths, events=3_000, bad_rate=0.04, seed=21)
    result = run(paths)
    assert result.success
    meta = metadata_of(result)
    expected = summary.expected_rejects
    assert meta["lines_read"] == 3_000
    assert meta["accepted"] == meta["dagster/partition_row_count"] == summary.expected_accepted
    assert meta["duplicates"] == expected.pop(spec.DUPLICATE_MESSAGE_ID)
    assert meta["rejected"] == sum(expected.values())
    for reason in spec.REJECT_REASONS:
        if reason != spec.DUPLICATE_MESSAGE_ID:
            assert meta[f"rejected/{reason}"] == expected.get(reason, 0), reason
    assert sum(meta[f"events/{t}"] for t in spec.EVENT_TYPES) == meta["accepted"]
    assert meta["files"] == len(summary.files)
    assert meta["raw_events_path"].endswith("segment/raw_events/date=2026-11-20")
    assert "| message_id |" in meta["preview"]
    checks = checks_of(result)
    assert checks[REJECT_RATE_CHECK].passed is False  # 4 % bad lines against the default 1 %
    assert checks[REJECT_RATE_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert checks["raw_events_partition_consistent"].passed is True


def test_reject_rate_threshold_is_configurable(paths: tuple[str, str]) -> None:
    sample(paths, events=1_000, bad_rate=0.04, seed=2)
    config = {"ops": {"segment__raw_events": {"config": {"max_reject_rate": 0.2}}}}
    assert checks_of(run(paths, config))[REJECT_RATE_CHECK].passed is True


def test_rematerializing_replaces_the_partition(paths: tuple[str, str]) -> None:
    summary = sample(paths, events=800, bad_rate=0.02, seed=4)
    first = metadata_of(run(paths))
    second = metadata_of(run(paths))
    assert first["accepted"] == second["accepted"] == summary.expected_accepted
    partition = Path(paths[1]) / "segment" / "raw_events" / f"date={PARTITION}"
    assert sorted(p.name for p in partition.iterdir()) == ["_SUCCESS", "part-00000.parquet"]
    assert pq.read_table(partition / "part-00000.parquet").num_rows == summary.expected_accepted


def test_partition_check_fails_on_a_tampered_partition(paths: tuple[str, str]) -> None:
    sample(paths, events=300, seed=8)
    assert run(paths).success
    partition = Path(paths[1]) / "segment" / "raw_events" / f"date={PARTITION}"
    original = pq.read_table(partition / "part-00000.parquet")
    pq.write_table(original.slice(0, 5), partition / "part-00001.parquet")  # five duplicated rows
    defs = dg.Definitions(
        assets=[raw_events],
        asset_checks=[raw_events_partition_consistent],
        resources={
            "segment_archive": SegmentArchiveResource(location=paths[0]),
            "lake": LakeResource(location=paths[1]),
        },
    )
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection={raw_events_partition_consistent.check_key}
    )
    check = job.execute_in_process(partition_key=PARTITION)
    assert check.asset_materializations_for_node("segment__raw_events") == []  # only the check ran
    evaluation = checks_of(check)["raw_events_partition_consistent"]
    assert evaluation.passed is False
    assert evaluation.metadata["rows"].value == original.num_rows + 5


def test_corrupt_archive_fails_the_run_and_names_the_file(paths: tuple[str, str]) -> None:
    folder = Path(paths[0]) / "segment-logs" / "src" / day_folder(DAY)
    folder.mkdir(parents=True)
    data = gzip.compress(b'{"type":"track"}\n' * 100_000)
    (folder / "broken.gz").write_bytes(data[: len(data) // 3])
    result = run(paths)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "broken.gz" in failure.step_failure_data.user_failure_data.description
    with pytest.raises(Exception, match="not materialized"):
        Lake(open_location(paths[1])).read_partition(RAW_EVENTS, DAY)


def test_quarantined_archive_files_keep_their_lines_and_warn(paths: tuple[str, str]) -> None:
    folder = Path(paths[0]) / "segment-logs" / "src" / day_folder(DAY)
    folder.mkdir(parents=True)
    (folder / "plain.gz").write_bytes(b"not gzip at all\n")
    (folder / "empty.gz").write_bytes(gzip.compress(b""))
    failed = run(paths)
    assert not failed.success
    result = run(
        paths, {"ops": {"segment__raw_events": {"config": {"on_unreadable_file": "quarantine"}}}}
    )
    assert result.success
    assert metadata_of(result)["unreadable_files"] == 1
    check = checks_of(result)[READABLE_CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "plain.gz (NOT_GZIP)" in (check.description or "")
    assert check.metadata["bytes_unread"].value == 16


def test_asset_reads_locations_from_the_environment(
    paths: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = sample(paths, events=200, seed=9)
    monkeypatch.setenv("ACOUSTIC_PIPELINES_ARCHIVE", paths[0])
    monkeypatch.setenv("ACOUSTIC_PIPELINES_LAKE", paths[1])
    result = dg.materialize(
        [raw_events],
        partition_key=PARTITION,
        resources={"segment_archive": SegmentArchiveResource(), "lake": LakeResource()},
    )
    assert metadata_of(result)["accepted"] == summary.expected_accepted
    assert (
        pa.dataset.dataset(paths[1] + "/segment/raw_events", format="parquet").count_rows()
        == summary.expected_accepted
    )
