"""`deploy/dagster.yaml`, the instance for more than one machine: it loads as PostgreSQL storage
with the queued run coordinator, pools and run monitoring, and a real run launched from the CLI
against a real PostgreSQL server leaves its run and its materialization there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from acoustic_pipelines import settings
from tests.conftest import DAY, REPO_ROOT
from tests.postgres import new_database, postgres_url  # noqa: F401 (fixture)

DEPLOY_CONFIG = REPO_ROOT / "deploy" / "dagster.yaml"


@pytest.fixture
def postgres_home(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811 (the fixture imported above)
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Path, str]:
    """A DAGSTER_HOME holding deploy/dagster.yaml, aimed at a fresh database; (home, url)."""
    url = new_database(postgres_url, f"dagster_{os.getpid()}_{tmp_path.name[-8:]}".lower())
    shutil.copy(DEPLOY_CONFIG, tmp_path / "dagster.yaml")
    monkeypatch.setenv(
        "DAGSTER_POSTGRES_URL", url.replace("postgresql://", "postgresql+psycopg2://")
    )
    return tmp_path, url


def test_the_deploy_instance_is_postgres_with_a_run_queue(postgres_home: tuple[Path, str]) -> None:
    home, _ = postgres_home
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
        assert instance.freshness_enabled


def test_the_password_stays_in_the_environment() -> None:
    text = DEPLOY_CONFIG.read_text()
    assert "env: DAGSTER_POSTGRES_URL" in text
    assert "://" not in text.replace("postgresql+psycopg2://user:password@host", "")


def test_a_cli_run_is_stored_in_postgres(
    postgres_home: tuple[Path, str], sample_archive: Path, tmp_path: Path
) -> None:
    home, url = postgres_home
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        settings.ARCHIVE_ENV: str(sample_archive),
        settings.LAKE_ENV: str(tmp_path / "lake"),
    }
    command = [
        str(Path(sys.executable).with_name("dagster")),
        "asset",
        "materialize",
        "-m",
        "acoustic_pipelines.definitions",
        "--select",
        "segment/raw_events",
        "--partition",
        DAY.isoformat(),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with psycopg.connect(url) as conn:
        statuses = [row[0] for row in conn.execute("SELECT status FROM runs")]
        materialized = conn.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
            " AND asset_key LIKE %s AND partition = %s",
            ("%raw_events%", DAY.isoformat()),
        ).fetchone()
    assert statuses == ["SUCCESS"]
    assert materialized == (1,)
