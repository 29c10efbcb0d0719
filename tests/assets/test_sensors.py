"""The archive sensors on a real archive folder: observations of `segment/archive` per day with a
data version that changes when a late file lands, and runs requested for complete days only,
by either rule (next day's file, cut-off hour), never for a day already materialized."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from acoustic_pipelines.segment.archive import day_folder
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location
from assets.segment import ARCHIVE_KEY, RAW_EVENTS_KEY
from assets.sensors import (
    COMPLETE_REASON_TAG,
    DATA_VERSION_TAG,
    segment_archive_complete_days,
    segment_archive_observations,
)
from resources import SegmentArchiveResource

TODAY = datetime.now(UTC).date()
YESTERDAY = TODAY - timedelta(days=1)
BEFORE = TODAY - timedelta(days=2)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """Files for the day before yesterday and for yesterday, none for today."""
    root = tmp_path / "archive"
    for day in (BEFORE, YESTERDAY):
        write_sample_archive(open_location(str(root)), day, events=50, seed=day.day)
    return root


def evaluate(
    sensor, archive: Path, instance: dg.DagsterInstance, cursor: str | None = None, **settings
):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"segment_archive": SegmentArchiveResource(location=str(archive), **settings)},
    )
    return sensor(context)


def test_each_day_is_observed_once_and_a_late_file_gives_a_new_data_version(archive: Path) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        first = evaluate(segment_archive_observations, archive, instance)
        observed = {e.partition: e for e in first.asset_events}
        assert set(observed) == {BEFORE.isoformat(), YESTERDAY.isoformat()}  # today has no file
        assert all(e.asset_key == ARCHIVE_KEY for e in observed.values())
        files = len(list((archive / "segment-logs").glob(f"*/{day_folder(YESTERDAY)}/*.gz")))
        assert observed[YESTERDAY.isoformat()].metadata["files"].value == files

        again = evaluate(segment_archive_observations, archive, instance, first.cursor)
        assert not again.asset_events  # nothing changed

        late = archive / "segment-logs" / "late-source" / day_folder(YESTERDAY) / "late.gz"
        late.parent.mkdir(parents=True)
        late.write_bytes(gzip.compress(b'{"type":"track"}\n'))
        third = evaluate(segment_archive_observations, archive, instance, again.cursor)
        (event,) = third.asset_events
        assert event.partition == YESTERDAY.isoformat()
        assert event.metadata["files"].value == files + 1
        assert event.metadata["newest_file"].value.endswith("late.gz")
        before = observed[YESTERDAY.isoformat()].tags[DATA_VERSION_TAG]
        assert event.tags[DATA_VERSION_TAG] != before
        assert json.loads(third.cursor)[YESTERDAY.isoformat()] == event.tags[DATA_VERSION_TAG]


def test_a_missing_archive_is_skipped_naming_it(tmp_path: Path) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        for sensor in (segment_archive_observations, segment_archive_complete_days):
            result = evaluate(sensor, tmp_path / "nowhere", instance)
            reason = (
                result.skip_message
                if isinstance(result, dg.SkipReason)
                else result.skip_reason.skip_message
            )
            assert str(tmp_path / "nowhere") in reason


def test_a_day_runs_once_the_next_days_file_exists(archive: Path) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = evaluate(segment_archive_complete_days, archive, instance, cutoff_hour_utc=None)
        (request,) = result.run_requests  # yesterday waits: no file of today yet
        assert request.partition_key == BEFORE.isoformat()
        assert "file(s) of" in request.tags[COMPLETE_REASON_TAG]

        write_sample_archive(open_location(str(archive)), TODAY, events=10, seed=1)
        later = evaluate(segment_archive_complete_days, archive, instance, cutoff_hour_utc=None)
        assert [r.partition_key for r in later.run_requests] == [
            BEFORE.isoformat(),
            YESTERDAY.isoformat(),
        ]
        assert len({r.run_key for r in later.run_requests}) == 2  # one run key per day


def test_the_cut_off_hour_completes_a_day_without_next_days_file(archive: Path) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = evaluate(
            segment_archive_complete_days,
            archive,
            instance,
            complete_after_next_day_file=False,
            cutoff_hour_utc=0,  # yesterday's cut-off (today 00:00) has passed, today's has not
        )
        assert [r.partition_key for r in result.run_requests] == [
            BEFORE.isoformat(),
            YESTERDAY.isoformat(),
        ]
        assert "cut-off" in result.run_requests[-1].tags[COMPLETE_REASON_TAG]


def test_a_materialized_day_is_not_requested_again(archive: Path) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(RAW_EVENTS_KEY, partition=BEFORE.isoformat())
        )
        result = evaluate(segment_archive_complete_days, archive, instance, cutoff_hour_utc=0)
        assert [r.partition_key for r in result.run_requests] == [YESTERDAY.isoformat()]


def test_nothing_complete_is_a_skip_that_says_why(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    write_sample_archive(open_location(str(root)), TODAY, events=10, seed=1)
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(RAW_EVENTS_KEY, partition=BEFORE.isoformat())
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(RAW_EVENTS_KEY, partition=YESTERDAY.isoformat())
        )
        result = evaluate(segment_archive_complete_days, root, instance, cutoff_hour_utc=None)
        assert isinstance(result, dg.SkipReason)
        assert f"{TODAY}: waiting for a file of {TODAY + timedelta(days=1)}" in result.skip_message
