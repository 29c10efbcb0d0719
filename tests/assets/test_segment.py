"""`segment/raw_events` and `segment/rejected_events` materialized in-process on generated
archives, with their checks: exact counts, per-day results in a range run, a missing archive root
fails naming the path, an empty day warns."""

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
    ARCHIVE_FILES_CHECK,
    PARTITION_CHECK,
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


def run(
    paths: tuple[str, str], run_config: dict | None = None, *, tags: dict | None = None
) -> dg.ExecuteInProcessResult:
    archive, lake = paths
    return dg.materialize(
        [raw_events, raw_events_partition_consistent],
        partition_key=None if tags else PARTITION,
        tags=tags,
        resources={
            "segment_archive": SegmentArchiveResource(location=archive),
            "lake": LakeResource(location=lake),
        },
        run_config=run_config,
        raise_on_error=False,
    )


def sample(paths: tuple[str, str], **kwargs) -> SampleSummary:
    return write_sample_archive(open_location(paths[0]), DAY, **kwargs)


def metadata_of(result: dg.ExecuteInProcessResult, asset: str = "raw_events") -> dict:
    (materialization,) = [
        m
        for m in result.asset_materializations_for_node("segment__raw_events")
        if m.asset_key == dg.AssetKey(["segment", asset])
    ]
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
    assert meta["accepted"] == meta["dagster/row_count"] == summary.expected_accepted
    assert meta["dagster/partition_row_count"] == summary.expected_accepted
    assert meta["duplicates"] == expected.pop(spec.DUPLICATE_MESSAGE_ID)
    assert meta["rejected"] == sum(expected.values())
    assert sum(meta.get(f"events/{t}", 0) for t in spec.EVENT_TYPES) == meta["accepted"]
    assert meta["files"] == len(summary.files)
    assert meta["raw_events_path"].endswith("segment/raw_events/date=2026-11-20")
    assert meta["reject_rate_percent"] == round(100 * meta["rejected"] / 3_000, 2)
    assert "| message_id |" in meta["preview"]
    rejected = metadata_of(result, "rejected_events")
    assert rejected["dagster/row_count"] == meta["rejected"] + meta["duplicates"]
    assert rejected["rejected_events_path"].endswith("segment/rejected_events/date=2026-11-20")
    for reason in spec.REJECT_REASONS:
        if reason != spec.DUPLICATE_MESSAGE_ID:
            assert rejected.get(f"rejected/{reason}", 0) == expected.get(reason, 0), reason
    checks = checks_of(result)
    assert checks[REJECT_RATE_CHECK].passed is False  # 4 % bad lines against the default 1 %
    assert checks[REJECT_RATE_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert checks[PARTITION_CHECK].passed is True
    assert checks[ARCHIVE_FILES_CHECK].passed is True
    assert {e.partition for e in result.get_asset_check_evaluations()} == {PARTITION}


def test_reject_rate_threshold_is_configurable(paths: tuple[str, str]) -> None:
    sample(paths, events=1_000, bad_rate=0.04, seed=2)
    config = {"ops": {"segment__raw_events": {"config": {"max_reject_rate": 0.2}}}}
    assert checks_of(run(paths, config))[REJECT_RATE_CHECK].passed is True


def test_the_workers_setting_splits_the_day_and_changes_nothing_in_it(
    paths: tuple[str, str],
) -> None:
    sample(paths, events=1_500, bad_rate=0.04, seed=6)
    tables = {}
    for workers in (1, 2):
        config = {"ops": {"segment__raw_events": {"config": {"workers": workers}}}}
        meta = metadata_of(run(paths, config))
        assert meta["workers"] == workers
        partition = Path(paths[1]) / "segment" / "raw_events" / f"date={PARTITION}"
        parts = sorted(p.name for p in partition.glob("part-*.parquet"))  # one per archive file
        tables[workers] = pq.read_table(partition), meta["accepted"], meta["duplicates"], parts
    assert tables[1][0].equals(tables[2][0]) and tables[1][1:] == tables[2][1:]
    invalid = run(paths, {"ops": {"segment__raw_events": {"config": {"workers": 0}}}})
    assert not invalid.success


def test_rematerializing_replaces_the_partition(paths: tuple[str, str]) -> None:
    summary = sample(paths, events=800, bad_rate=0.02, seed=4)
    first = metadata_of(run(paths))
    second = metadata_of(run(paths))
    assert first["accepted"] == second["accepted"] == summary.expected_accepted
    partition = Path(paths[1]) / "segment" / "raw_events" / f"date={PARTITION}"
    names = sorted(p.name for p in partition.iterdir())  # one part per archive file, once
    assert names == ["_SUCCESS", *(f"part-{n:05d}.parquet" for n in range(len(summary.files)))]
    assert pq.read_table(partition).num_rows == summary.expected_accepted


def test_partition_check_fails_on_a_tampered_partition(paths: tuple[str, str]) -> None:
    sample(paths, events=300, seed=8)
    assert run(paths).success
    partition = Path(paths[1]) / "segment" / "raw_events" / f"date={PARTITION}"
    original = pq.read_table(partition)
    pq.write_table(original.slice(0, 5), partition / "part-99999.parquet")  # five duplicated rows
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
    assert check.get_asset_materialization_events() == []  # only the check ran
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


def test_a_range_run_reports_each_day_on_its_own(paths: tuple[str, str]) -> None:
    """One run over three days: three materializations per asset with each day's own counts, and
    one evaluation per check and day (none unpartitioned)."""
    days = [DAY, DAY.replace(day=21), DAY.replace(day=22)]
    summaries = {
        d.isoformat(): write_sample_archive(open_location(paths[0]), d, events=n, seed=n)
        for d, n in zip(days, (300, 500, 700), strict=True)
    }
    result = run(
        paths,
        tags={
            "dagster/asset_partition_range_start": days[0].isoformat(),
            "dagster/asset_partition_range_end": days[-1].isoformat(),
        },
    )
    assert result.success
    raw = {
        m.partition: m.metadata
        for m in result.asset_materializations_for_node("segment__raw_events")
        if m.asset_key == dg.AssetKey(["segment", "raw_events"])
    }
    assert set(raw) == set(summaries)
    for partition, summary in summaries.items():
        assert raw[partition]["lines_read"].value == summary.lines
        assert raw[partition]["accepted"].value == summary.expected_accepted
        assert raw[partition]["raw_events_path"].value.endswith(f"date={partition}")
    assert len({m["accepted"].value for m in raw.values()}) == 3
    evaluations = result.get_asset_check_evaluations()
    by_check: dict[str, dict[str | None, dg.AssetCheckEvaluation]] = {}
    for evaluation in evaluations:
        by_check.setdefault(evaluation.check_name, {})[evaluation.partition] = evaluation
    assert set(by_check) == {
        REJECT_RATE_CHECK,
        READABLE_CHECK,
        ARCHIVE_FILES_CHECK,
        PARTITION_CHECK,
    }
    for check_name, per_day in by_check.items():
        assert set(per_day) == set(summaries), check_name
    assert len(evaluations) == 4 * 3
    lines = {p: e.metadata["lines_read"].value for p, e in by_check[REJECT_RATE_CHECK].items()}
    assert lines == {p: s.lines for p, s in summaries.items()}
    for partition, evaluation in by_check[PARTITION_CHECK].items():
        assert evaluation.metadata["rows"].value == summaries[partition].expected_accepted


def test_a_missing_archive_root_fails_naming_the_path(paths: tuple[str, str]) -> None:
    result = run((paths[0] + "-mistyped", paths[1]))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    description = failure.step_failure_data.user_failure_data.description
    assert paths[0] + "-mistyped" in description and "segment-logs" in description
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert not (Path(paths[1]) / "segment" / "raw_events").exists()


def test_a_day_without_files_warns(paths: tuple[str, str]) -> None:
    sample(paths, events=100, seed=1)  # another day's files only
    other = DAY.replace(day=25)
    archive, lake = paths
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [raw_events],
        partition_key=other.isoformat(),
        instance=instance,
        resources={
            "segment_archive": SegmentArchiveResource(location=archive),
            "lake": LakeResource(location=lake),
        },
    )
    (evaluation,) = [
        e for e in result.get_asset_check_evaluations() if e.check_name == ARCHIVE_FILES_CHECK
    ]
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert archive in evaluation.description
    logged = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(f"reading the Segment archive {archive}" in m for m in logged)
    assert any(f"{lake}/segment/raw_events/date={other}" in m for m in logged)


def test_raw_events_can_be_selected_alone(paths: tuple[str, str]) -> None:
    """Selecting only segment/raw_events (the CLI's `--select`, the UI's one-asset materialize)
    works: its rejects are written too, and only the selected asset is recorded."""
    sample(paths, events=300, bad_rate=0.05, seed=5)
    defs = dg.Definitions(
        assets=[raw_events],
        resources={
            "segment_archive": SegmentArchiveResource(location=paths[0]),
            "lake": LakeResource(location=paths[1]),
        },
    )
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(["segment", "raw_events"])}
    )
    result = job.execute_in_process(partition_key=PARTITION)
    assert result.success
    keys = {e.materialization.asset_key for e in result.get_asset_materialization_events()}
    assert keys == {dg.AssetKey(["segment", "raw_events"])}
    assert (
        Path(paths[1]) / "segment" / "rejected_events" / f"date={PARTITION}" / "_SUCCESS"
    ).is_file()
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {
        REJECT_RATE_CHECK,
        READABLE_CHECK,
        ARCHIVE_FILES_CHECK,
    }


def test_an_s3_archive_is_read_and_a_mistyped_prefix_fails_naming_it(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    """On S3 (the sandbox, over HTTP) a folder exists only through its objects: the archive
    root is found by its segment-logs/ objects, and a prefix without any fails the run."""
    archive = f"s3://{s3_bucket}/archive"
    summary = write_sample_archive(
        open_location(archive, s3_endpoint_url=s3_endpoint), DAY, events=200
    )

    def materialize(location: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [raw_events],
            partition_key=PARTITION,
            resources={
                "segment_archive": SegmentArchiveResource(
                    location=location, s3_endpoint_url=s3_endpoint
                ),
                "lake": LakeResource(location=str(tmp_path / "lake")),
            },
            raise_on_error=False,
        )

    found = materialize(archive)
    assert found.success
    assert metadata_of(found)["lines_read"] == summary.lines
    missing = materialize(f"s3://{s3_bucket}/archiv")
    assert not missing.success
    failure = next(e for e in missing.all_events if e.is_step_failure)
    assert f"s3://{s3_bucket}/archiv" in failure.step_failure_data.user_failure_data.description
