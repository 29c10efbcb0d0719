"""The archive sensors on a real archive folder: observations of `segment/archive` per day with a
data version that changes when a late file lands, and runs requested for complete days only,
by either rule (next day's file, cut-off hour), never for a day already materialized."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

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


class Days(NamedTuple):
    """Today (UTC, when the test starts), yesterday and the day before."""

    today: date
    yesterday: date
    before: date


@pytest.fixture
def days() -> Days:
    """The days as the sensors see them during this test (not at collection: a suite run
    crosses midnight)."""
    today = datetime.now(UTC).date()
    return Days(today, today - timedelta(days=1), today - timedelta(days=2))


@pytest.fixture
def archive(tmp_path: Path, days: Days) -> Path:
    """Files for the day before yesterday and for yesterday, none for today."""
    root = tmp_path / "archive"
    for day in (days.before, days.yesterday):
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


def test_each_day_is_observed_once_and_a_late_file_gives_a_new_data_version(
    archive: Path, days: Days
) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        first = evaluate(segment_archive_observations, archive, instance)
        observed = {e.partition: e for e in first.asset_events}
        assert set(observed) == {
            days.before.isoformat(),
            days.yesterday.isoformat(),
        }  # today has no file
        assert all(e.asset_key == ARCHIVE_KEY for e in observed.values())
        files = len(list((archive / "segment-logs").glob(f"*/{day_folder(days.yesterday)}/*.gz")))
        assert observed[days.yesterday.isoformat()].metadata["files"].value == files

        again = evaluate(segment_archive_observations, archive, instance, first.cursor)
        assert not again.asset_events  # nothing changed

        late = archive / "segment-logs" / "late-source" / day_folder(days.yesterday) / "late.gz"
        late.parent.mkdir(parents=True)
        late.write_bytes(gzip.compress(b'{"type":"track"}\n'))
        third = evaluate(segment_archive_observations, archive, instance, again.cursor)
        (event,) = third.asset_events
        assert event.partition == days.yesterday.isoformat()
        assert event.metadata["files"].value == files + 1
        assert event.metadata["newest_file"].value.endswith("late.gz")
        before = observed[days.yesterday.isoformat()].tags[DATA_VERSION_TAG]
        assert event.tags[DATA_VERSION_TAG] != before
        assert json.loads(third.cursor)[days.yesterday.isoformat()] == event.tags[DATA_VERSION_TAG]


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


def test_a_day_runs_once_the_next_days_file_exists(archive: Path, days: Days) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = evaluate(segment_archive_complete_days, archive, instance, cutoff_hour_utc=None)
        (request,) = result.run_requests  # yesterday waits: no file of today yet
        assert request.partition_key == days.before.isoformat()
        assert "file(s) of" in request.tags[COMPLETE_REASON_TAG]

        write_sample_archive(open_location(str(archive)), days.today, events=10, seed=1)
        later = evaluate(segment_archive_complete_days, archive, instance, cutoff_hour_utc=None)
        assert [r.partition_key for r in later.run_requests] == [
            days.before.isoformat(),
            days.yesterday.isoformat(),
        ]
        assert len({r.run_key for r in later.run_requests}) == 2  # one run key per day


def test_the_cut_off_hour_completes_a_day_without_next_days_file(archive: Path, days: Days) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = evaluate(
            segment_archive_complete_days,
            archive,
            instance,
            complete_after_next_day_file=False,
            cutoff_hour_utc=0,  # yesterday's cut-off (today 00:00) has passed, today's has not
        )
        assert [r.partition_key for r in result.run_requests] == [
            days.before.isoformat(),
            days.yesterday.isoformat(),
        ]
        assert "cut-off" in result.run_requests[-1].tags[COMPLETE_REASON_TAG]


def test_a_materialized_day_is_not_requested_again(archive: Path, days: Days) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(RAW_EVENTS_KEY, partition=days.before.isoformat())
        )
        result = evaluate(segment_archive_complete_days, archive, instance, cutoff_hour_utc=0)
        assert [r.partition_key for r in result.run_requests] == [days.yesterday.isoformat()]


def test_nothing_complete_is_a_skip_that_says_why(tmp_path: Path, days: Days) -> None:
    root = tmp_path / "archive"
    write_sample_archive(open_location(str(root)), days.today, events=10, seed=1)
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(RAW_EVENTS_KEY, partition=days.before.isoformat())
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(RAW_EVENTS_KEY, partition=days.yesterday.isoformat())
        )
        result = evaluate(segment_archive_complete_days, root, instance, cutoff_hour_utc=None)
        assert isinstance(result, dg.SkipReason)
        assert (
            f"{days.today}: waiting for a file of {days.today + timedelta(days=1)}"
            in result.skip_message
        )
