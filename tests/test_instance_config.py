"""The Dagster instance settings `make demo` / `make dev` install: every pool defaults to 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg

from tests.conftest import REPO_ROOT


def test_pools_without_their_own_limit_run_one_step_at_a_time(tmp_path: Path) -> None:
    shutil.copy(REPO_ROOT / "config" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_the_daemon_evaluates_freshness_policies(tmp_path: Path) -> None:
    """raw_events and mapped_events show late days only if the instance evaluates freshness."""
    shutil.copy(REPO_ROOT / "config" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.freshness_enabled
