"""Offline "Test Mapping": per destination and mapping, whether the trigger matched, the mapped
payload, and the flat row or the reject code; events come from a file, stdin or the raw archive."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from acoustic_pipelines.acoustic.rows import (
    IDENTIFY_DEFAULT,
    INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID,
    TRACK_DEFAULT,
)
from acoustic_pipelines.acoustic.test_mapping import (
    LoadedEvent,
    MappingTestError,
    find_archived_event,
    read_event,
    run_test_mapping,
)
from acoustic_pipelines.config.loading import PipelineConfig, load_config
from acoustic_pipelines.storage import open_location

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 20)


@pytest.fixture(scope="module")
def config() -> PipelineConfig:
    return load_config(REPO_ROOT / "config" / "pipeline.yaml")


def _config(**destination: Any) -> PipelineConfig:
    data = {
        "name": "acoustic",
        "customer_prefix": "Acme_Prod_",
        "access_point_alias": "alias",
        "mappings": [
            {"name": "Track Calls", "trigger": 'type = "track"', "mapping": TRACK_DEFAULT},
            {"name": "Identify Calls", "trigger": 'type = "identify"', "mapping": IDENTIFY_DEFAULT},
        ],
    }
    data.update(destination)
    return PipelineConfig.model_validate({"destinations": [data]})


def test_a_matching_track_event_gives_its_payload_and_row(
    config: PipelineConfig, track_event: dict[str, Any]
) -> None:
    result = run_test_mapping(config, track_event, source="event.json")
    [destination] = result.destinations
    track, identify = destination.outcomes
    assert (track.name, track.trigger, track.matched, track.enabled) == (
        "Track Calls",
        'type = "track"',
        True,
        True,
    )
    assert track.payload == {
        "uniqueRecipientId": "ann@example.com",
        "type": "track",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "properties": {"email": "ann@example.com", "total": 30},
    }
    assert track.row == {
        "uniqueRecipient": "ann@example.com",
        "eventSource": "track Event",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "email": "ann@example.com",
        "total": 30,
    }
    assert track.delivered and track.reject_code is None and track.error is None
    assert identify.matched is False and not identify.delivered
    assert not destination.no_matching_mapping
    assert result.rows == 1 and result.source == "event.json"


def test_a_reject_carries_the_acoustic_code(
    config: PipelineConfig, track_event: dict[str, Any]
) -> None:
    event = {**track_event, "properties": {"total": 30}}
    track = run_test_mapping(config, event).destinations[0].outcomes[0]
    assert track.matched and track.row is None and not track.delivered
    assert track.reject_code == INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID
    assert "uniqueRecipientId" in (track.reject_detail or "")
    assert track.payload == {
        "type": "track",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "properties": {"total": 30},
    }


def test_an_event_no_mapping_matches_is_no_matching_mapping(config: PipelineConfig) -> None:
    result = run_test_mapping(config, {"type": "page", "messageId": "p"})
    [destination] = result.destinations
    assert destination.no_matching_mapping and result.rows == 0
    # The mappings are still resolved, so they can be tried on any event.
    assert all(o.payload == {"type": "page"} for o in destination.outcomes)


def test_a_disabled_mapping_is_evaluated_but_not_delivered(track_event: dict[str, Any]) -> None:
    config = _config(
        mappings=[
            {
                "name": "Track Calls",
                "enabled": False,
                "trigger": 'type = "track"',
                "mapping": TRACK_DEFAULT,
            }
        ]
    )
    [outcome] = run_test_mapping(config, track_event).destinations[0].outcomes
    assert outcome.matched and outcome.row is not None and not outcome.enabled
    assert not outcome.delivered
    assert run_test_mapping(config, track_event).destinations[0].no_matching_mapping


def test_the_columns_allow_list_is_reported(track_event: dict[str, Any]) -> None:
    config = _config(columns=["total"])
    track = run_test_mapping(config, track_event).destinations[0].outcomes[0]
    assert track.delivered_columns == ("uniqueRecipient", "eventSource", "timestamp", "total")
    assert "email" in (track.row or {})


def test_a_trigger_that_fails_on_the_event_is_an_error_not_a_crash(
    track_event: dict[str, Any],
) -> None:
    config = _config(
        mappings=[{"name": "odd", "trigger": 'type = "x" or ()', "mapping": TRACK_DEFAULT}]
    )
    [outcome] = run_test_mapping(config, track_event).destinations[0].outcomes
    assert outcome.error is not None and outcome.error.startswith("the trigger failed: ")
    assert "empty group" in outcome.error and not outcome.delivered


def test_a_non_object_event_is_refused(config: PipelineConfig) -> None:
    with pytest.raises(MappingTestError, match="an event is a JSON object; got list"):
        run_test_mapping(config, [])  # type: ignore[arg-type]


# --- loading the event -------------------------------------------------------------------------


def test_read_event_from_a_file_and_from_stdin(tmp_path: Path, track_event: dict[str, Any]) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(track_event))
    assert read_event(path) == LoadedEvent(event=track_event, source=str(path))
    stdin = io.BytesIO(json.dumps(track_event).encode())
    assert read_event("-", stdin=stdin) == LoadedEvent(event=track_event, source="stdin")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "event file {}: not valid JSON"),
        (b"[1, 2]", "event file {}: holds a JSON list; expected one event"),
    ],
)
def test_read_event_refuses_what_is_not_one_json_object(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "event.json"
    path.write_bytes(content)
    with pytest.raises(MappingTestError) as caught:
        read_event(path)
    assert str(caught.value).startswith(message.format(path))


def test_read_event_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MappingTestError, match="event file .*nope.json: cannot read it"):
        read_event(tmp_path / "nope.json")


def test_find_archived_event_by_message_id(
    sample_archive: Path, archived_identify: tuple[dict[str, Any], str], config: PipelineConfig
) -> None:
    event, source = archived_identify
    loaded = find_archived_event(open_location(str(sample_archive)), DAY, event["messageId"])
    assert loaded == LoadedEvent(event=event, source=source)
    identify = run_test_mapping(config, loaded.event).destinations[0].outcomes[1]
    assert identify.matched and identify.delivered


def test_find_archived_event_reports_what_was_searched(sample_archive: Path) -> None:
    with pytest.raises(MappingTestError) as caught:
        find_archived_event(open_location(str(sample_archive)), DAY, "no-such-id")
    message = str(caught.value)
    assert message.startswith(
        f"messageId 'no-such-id' is not in the archive {sample_archive} for {DAY}"
    )
    assert "200 lines searched" in message


def test_find_archived_event_on_a_day_without_files(sample_archive: Path) -> None:
    with pytest.raises(MappingTestError, match="has no files for 2026-11-21"):
        find_archived_event(open_location(str(sample_archive)), date(2026, 11, 21), "x")
