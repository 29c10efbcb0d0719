"""`connect/signal_pushes` materialized in-process with the real resources, pushing a generated
day to the Connect sandbox over HTTP: metadata equals what the sandbox stored, a re-run sends
nothing, dry_run sends nothing, a missing application key fails naming its variable, and neither
the API key nor the application key appears in any event of the Dagster event log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from acoustic_pipelines import settings
from acoustic_pipelines.sandbox.connect.server import serve_connect
from acoustic_pipelines.segment.sample import write_sample_archive
from acoustic_pipelines.storage import open_location
from assets.segment import raw_events
from assets.signals import OUTCOMES_CHECK, signal_pushes
from resources import AcousticConnectResource, LakeResource, SegmentArchiveResource
from resources.pipeline_config import PipelineConfigResource

DAY = date(2026, 11, 20)
API_KEY = "ck-SECRET-a81f4c0d9e"
APP_KEY = "app-SECRET-3b7e60f2"
APP_KEY_ENV = "ACOUSTIC_APP_KEY"  # the default config's signals.app_key_env
NODE = "connect__signal_pushes"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_sample_archive(open_location(str(tmp_path / "archive")), DAY, events=2000, seed=3)
    return tmp_path


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Connect sandbox, with the environment a deployment sets: endpoint and both keys."""
    with serve_connect(folder=tmp_path / "connect", api_key=API_KEY, tier="premium") as running:
        monkeypatch.setenv(settings.ACOUSTIC_CONNECT_ENDPOINT_ENV, running.endpoint)
        monkeypatch.setenv(settings.ACOUSTIC_API_KEY_ENV, API_KEY)
        monkeypatch.setenv(APP_KEY_ENV, APP_KEY)
        yield running


def run(folder: Path, instance: dg.DagsterInstance, **op_config: Any) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_events, signal_pushes],
        partition_key=DAY.isoformat(),
        instance=instance,
        resources={
            "segment_archive": SegmentArchiveResource(location=str(folder / "archive")),
            "lake": LakeResource(location=str(folder / "lake")),
            "pipeline_config": PipelineConfigResource(),
            "acoustic_connect": AcousticConnectResource(
                api_key=dg.EnvVar(settings.ACOUSTIC_API_KEY_ENV), max_retries=1
            ),
        },
        run_config={"ops": {NODE: {"config": op_config}}} if op_config else None,
        raise_on_error=False,
    )


def metadata_of(result: dg.ExecuteInProcessResult, asset: str = "signal_pushes") -> dict[str, Any]:
    (materialization,) = [
        m
        for m in result.asset_materializations_for_node(NODE)
        if m.asset_key == dg.AssetKey(["connect", asset])
    ]
    return {key: value.value for key, value in materialization.metadata.items()}


def event_log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every event of the run's event log (messages, metadata, errors), serialized."""
    return "\n".join(dg.serialize_value(entry) for entry in instance.all_logs(run_id))


def test_signals_are_pushed_once_and_the_metadata_matches_the_sandbox(
    folder: Path, sandbox: Any
) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        first = run(folder, instance)
        assert first.success
        meta = metadata_of(first)
        stored = sandbox.stats()["signals"]
        assert meta["signals_sent"] == meta["signals_built"] == stored["stored"] > 0
        by_type = {
            k.removeprefix("signals/"): v for k, v in meta.items() if k.startswith("signals/")
        }
        assert {t: n for t, n in by_type.items() if n} == stored["by_type"]
        assert meta["batches_sent"] == meta["calls"] == -(-meta["signals_sent"] // 500)
        assert meta["rejected"] == sum(v for k, v in meta.items() if k.startswith("rejected/"))
        assert meta["unknown_outcome"] == 0 and meta["dry_run"] is False
        assert meta["ledger_path"].endswith("connect/signal_pushes/date=2026-11-20")
        assert meta["dagster/row_count"] == meta["signals_sent"]
        rejected = metadata_of(first, "rejected_signals")
        assert rejected["dagster/row_count"] == meta["rejected"]
        checks = {e.check_name: e for e in first.get_asset_check_evaluations()}
        assert checks[OUTCOMES_CHECK].passed

        again = run(folder, instance)
        assert again.success
        rerun = metadata_of(again)
        assert rerun["signals_skipped"] == meta["signals_sent"] and rerun["signals_sent"] == 0
        assert sandbox.stats()["signals"]["stored"] == stored["stored"]
        numeric = {k for k, v in meta.items() if isinstance(v, int | float)}
        assert numeric == {k for k, v in rerun.items() if isinstance(v, int | float)}

        for result in (first, again):
            text = event_log_text(instance, result.run_id)
            assert "signals built" in text  # the log lines are there…
            assert API_KEY not in text and APP_KEY not in text  # …the secrets are not


def test_a_dry_run_sends_nothing(folder: Path, sandbox: Any) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = run(folder, instance, dry_run=True, concurrency=2)
        assert result.success
        meta = metadata_of(result)
        assert meta["dry_run"] is True and meta["signals_sent"] == meta["calls"] == 0
        assert meta["signals_not_sent"] == meta["signals_built"] > 0
        assert sandbox.stats()["signals"]["stored"] == 0
        assert not (folder / "lake" / "connect" / "signal_pushes").exists()
        materialized = {m.asset_key for m in result.asset_materializations_for_node(NODE)}
        assert materialized == {dg.AssetKey(["connect", "signal_pushes"])}  # no rejects written


def test_a_missing_application_key_fails_naming_its_variable(
    folder: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(APP_KEY_ENV)
    with dg.DagsterInstance.ephemeral() as instance:
        result = run(folder, instance)
        assert not result.success
        [failure] = [e for e in result.get_step_failure_events() if e.step_key == NODE]
        description = failure.step_failure_data.user_failure_data.description
        assert APP_KEY_ENV in description and "not set" in description
        assert sandbox.stats()["calls"]["served"] == 0
        assert API_KEY not in event_log_text(instance, result.run_id)


def test_a_refused_api_key_fails_without_showing_it(
    folder: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "ck-WRONG-55d0e2a91f"
    monkeypatch.setenv(settings.ACOUSTIC_API_KEY_ENV, wrong)
    with dg.DagsterInstance.ephemeral() as instance:
        result = run(folder, instance)
        assert not result.success
        [failure] = [e for e in result.get_step_failure_events() if e.step_key == NODE]
        assert "refused" in failure.step_failure_data.user_failure_data.description
        text = event_log_text(instance, result.run_id)
        assert wrong not in text and APP_KEY not in text


def test_a_range_run_pushes_and_reports_each_day(folder: Path, sandbox: Any) -> None:
    """Two days in one run: each day's ledger, metadata and check are its own."""
    second = DAY.replace(day=21)
    write_sample_archive(open_location(str(folder / "archive")), second, events=700, seed=4)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [raw_events, signal_pushes],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": DAY.isoformat(),
                "dagster/asset_partition_range_end": second.isoformat(),
            },
            resources={
                "segment_archive": SegmentArchiveResource(location=str(folder / "archive")),
                "lake": LakeResource(location=str(folder / "lake")),
                "pipeline_config": PipelineConfigResource(),
                "acoustic_connect": AcousticConnectResource(
                    api_key=dg.EnvVar(settings.ACOUSTIC_API_KEY_ENV), max_retries=1
                ),
            },
        )
    assert result.success
    pushes = {
        m.partition: {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node(NODE)
        if m.asset_key == dg.AssetKey(["connect", "signal_pushes"])
    }
    assert set(pushes) == {DAY.isoformat(), second.isoformat()}
    assert pushes[DAY.isoformat()]["signals_sent"] != pushes[second.isoformat()]["signals_sent"]
    assert sum(p["signals_sent"] for p in pushes.values()) == sandbox.stats()["signals"]["stored"]
    for partition, meta in pushes.items():
        assert meta["ledger_path"].endswith(f"date={partition}")
    outcomes = [
        e.partition for e in result.get_asset_check_evaluations() if e.check_name == OUTCOMES_CHECK
    ]
    assert sorted(outcomes) == [DAY.isoformat(), second.isoformat()]
