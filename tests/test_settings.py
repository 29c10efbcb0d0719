"""Where the ledgers live: a ledger's own variable, else the one shared ledger database, else a
SQLite file in a local lake; an S3 lake with neither names both variables. How many workers a
day gets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from acoustic_pipelines import settings


def test_one_setting_moves_every_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.LEDGER_DATABASE_ENV, "postgresql://pipelines@db/ledgers")
    monkeypatch.delenv(settings.EXPORT_LEDGER_ENV, raising=False)
    assert settings.export_ledger_location() == "postgresql://pipelines@db/ledgers"
    assert settings.ledger_location("UNSET_LEDGER_VARIABLE", "_ledgers/x.sqlite") == (
        "postgresql://pipelines@db/ledgers"
    )


def test_a_ledgers_own_variable_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(settings.LEDGER_DATABASE_ENV, "postgresql://pipelines@db/ledgers")
    monkeypatch.setenv(settings.EXPORT_LEDGER_ENV, str(tmp_path / "exports.sqlite"))
    assert settings.export_ledger_location() == str(tmp_path / "exports.sqlite")


def test_a_local_lake_keeps_its_ledgers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (settings.LEDGER_DATABASE_ENV, settings.EXPORT_LEDGER_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(settings.LAKE_ENV, str(tmp_path / "lake"))
    assert settings.export_ledger_location() == str(
        tmp_path / "lake" / "_ledgers/export_jobs.sqlite"
    )


def test_an_s3_lake_without_a_ledger_database_names_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (settings.LEDGER_DATABASE_ENV, settings.EXPORT_LEDGER_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(settings.LAKE_ENV, "s3://lake/prefix")
    with pytest.raises(settings.SettingsError) as caught:
        settings.export_ledger_location()
    assert settings.LEDGER_DATABASE_ENV in str(caught.value)
    assert settings.EXPORT_LEDGER_ENV in str(caught.value)


def test_workers_come_from_the_run_then_the_environment_then_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(settings.WORKERS_ENV, raising=False)
    assert settings.worker_count() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(settings.WORKERS_ENV, "3")
    assert settings.worker_count() == 3
    assert settings.worker_count(1) == 1


@pytest.mark.parametrize("raw", ["two", "0", "-1"])
def test_a_bad_workers_setting_names_the_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(settings.WORKERS_ENV, raw)
    with pytest.raises(settings.SettingsError, match=f"ACOUSTIC_PIPELINES_WORKERS = '{raw}'"):
        settings.worker_count()
