"""`acoustic-pipelines validate` and `test-mapping`: exit codes and what they print."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from acoustic_pipelines.cli.main import main

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "config" / "pipeline.yaml"


def _write_config(tmp_path: Path, edit: Any = None) -> Path:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    if edit is not None:
        edit(data)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- validate ----------------------------------------------------------------------------------


def test_validate_the_default_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(DEFAULT_CONFIG)]) == 0
    captured = capsys.readouterr()
    assert captured.out == (
        f"OK {DEFAULT_CONFIG}: 1 destination, 2 mappings (2 enabled), "
        "6 signal rules (6 enabled, tier premium), 0 warnings\n"
    )
    assert captured.err == ""


def test_validate_without_argument_reads_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path)
    monkeypatch.setenv("ACOUSTIC_PIPELINES_CONFIG", str(path))
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.startswith(f"OK {path}: ")


def test_validate_prints_every_error_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def break_it(data: dict[str, Any]) -> None:
        destination = data["destinations"][0]
        destination["customer_prefix"] = "customer_org_"
        destination["s3_secret"] = "hunter2"
        destination["mappings"][1]["trigger"] = 'type = "identify" and ('
        destination["mappings"][1]["mapping"]["type"] = {"@path": 1}

    path = _write_config(tmp_path, break_it)
    assert main(["validate", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert [e.split(": ")[2] for e in errors] == [  # file order: s3_secret is written last
        "destinations.0.customer_prefix",
        "destinations.0.mappings.1.trigger",
        "destinations.0.mappings.1.mapping",
        "destinations.0.s3_secret",
    ]
    assert all(e.startswith(f"error: {path}: ") for e in errors)
    assert "INVALID_CUSTOMER_PREFIX" in errors[0] and "ACOUSTIC_S3_SECRET" in errors[3]
    assert "hunter2" not in captured.err
    assert captured.err.splitlines()[-1] == f"{path}: 4 errors, 0 warnings"


def test_validate_prints_warnings_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def lint(data: dict[str, Any]) -> None:
        data["destinations"][0]["mappings"][0]["trigger"] = "type = 'track'"

    path = _write_config(tmp_path, lint)
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(
        f"warning: {path}: destinations.0.mappings.0.trigger: single-quoted 'track'"
    )
    assert "1 warning\n" in captured.out


def test_validate_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml: no such file" in capsys.readouterr().err


# --- test-mapping ------------------------------------------------------------------------------


def test_test_mapping_with_an_event_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], track_event: dict[str, Any]
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps(track_event))
    assert main(["test-mapping", "--config", str(DEFAULT_CONFIG), "--event", str(event)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f'event m-1 (track "Order Completed") from {event}\n')
    assert "destination acoustic (customer prefix DemoOrg_Prod_)" in out
    assert "  mapping 'Track Calls': trigger `type = \"track\"` matched\n" in out
    assert "  mapping 'Identify Calls': trigger `type = \"identify\"` not matched\n" in out
    assert '        "uniqueRecipientId": "ann@example.com",\n' in out  # the payload, pretty JSON
    assert "    row (5 columns):\n" in out
    assert '        "eventSource": "track Event",\n' in out
    assert "  => 1 row delivered\n" in out


def test_test_mapping_shows_reject_codes_and_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], track_event: dict[str, Any]
) -> None:
    event = {**track_event, "properties": {"total": 3}}
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(json.dumps(event).encode())))
    assert main(["test-mapping", "--config", str(DEFAULT_CONFIG), "--event", "-"]) == 0
    out = capsys.readouterr().out
    assert "from stdin" in out
    assert "    rejected: INVALID_EVENT_HAS_NO_UNIQUERECIPIENTID: " in out
    assert "  => 0 rows delivered\n" in out


def test_test_mapping_no_matching_mapping_and_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = tmp_path / "page.json"
    event.write_text(json.dumps({"type": "page", "messageId": "p-1"}))
    args = ["test-mapping", "--config", str(DEFAULT_CONFIG), "--event", str(event)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert 'the pipeline counts this event as "no matching mapping"' in out
    assert "mapped payload" not in out
    assert main([*args, "--all"]) == 0
    assert out.count("not matched") == 2
    assert capsys.readouterr().out.count("mapped payload:") == 2


def test_test_mapping_from_the_archive(
    sample_archive: Path,
    archived_identify: tuple[dict[str, Any], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ACOUSTIC_PIPELINES_ARCHIVE", str(sample_archive))
    event, source = archived_identify
    args = ["test-mapping", "--config", str(DEFAULT_CONFIG), "--date", "2026-11-20"]
    assert main([*args, "--message-id", event["messageId"]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"event {event['messageId']} (identify) from {source}\n")
    assert "  mapping 'Identify Calls': trigger `type = \"identify\"` matched\n" in out
    assert f'        "uniqueRecipient": "{event["traits"]["email"]}",\n' in out


def test_test_mapping_message_id_not_in_the_archive(
    sample_archive: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ACOUSTIC_PIPELINES_ARCHIVE", str(sample_archive))
    args = ["test-mapping", "--config", str(DEFAULT_CONFIG), "--date", "2026-11-20"]
    assert main([*args, "--message-id", "nope"]) == 1
    err = capsys.readouterr().err
    assert (
        f"test-mapping: messageId 'nope' is not in the archive {sample_archive} for 2026-11-20"
        in err
    )
    assert "ACOUSTIC_PIPELINES_ARCHIVE" in err


def test_test_mapping_argument_combinations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test-mapping", "--date", "2026-11-20"]) == 2
    assert "--date needs --message-id" in capsys.readouterr().err
    assert main(["test-mapping", "--event", "x.json", "--message-id", "m"]) == 2
    assert "--message-id goes with --date" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["test-mapping", "--event", "x.json", "--date", "2026-11-20"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["test-mapping"])


def test_test_mapping_with_an_invalid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def break_it(data: dict[str, Any]) -> None:
        data["destinations"][0]["region"] = ""

    path = _write_config(tmp_path, break_it)
    assert main(["test-mapping", "--config", str(path), "--event", "-"]) == 1
    assert f"error: {path}: destinations.0.region: MISSING_S3_REGION" in capsys.readouterr().err


def test_test_mapping_with_a_bad_event_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = tmp_path / "event.json"
    event.write_text("[]")
    assert main(["test-mapping", "--config", str(DEFAULT_CONFIG), "--event", str(event)]) == 1
    assert "holds a JSON list; expected one event" in capsys.readouterr().err
