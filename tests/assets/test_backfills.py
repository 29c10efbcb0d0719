"""A backfill of an asset selection holding the export assets, launched as the UI launches it,
goes through Dagster's own asset-backfill machinery (the daemon's backfill iteration, against
the code location loaded in process): over a 3-day range it is ONE run holding the three assets
and the whole range — `BackfillPolicy.single_run()` on each, identity partition mappings, so
Dagster requests each child together with its parent. One run means one plan and one job per
export definition. ("Materialize all" is tests/assets/test_backfill_policy.py.)

The runs are only queued (QueuedRunCoordinator, no daemon dequeues them): what is tested is how
the backfill groups partitions into runs, not the runs themselves (tests/assets/test_exports.py
runs a range)."""

import logging
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration

from acoustic_pipelines import settings
from assets.automation import RANGE_END_TAG, RANGE_START_TAG
from assets.exports import EXPORT_JOBS_KEY, EXPORT_PLAN_KEY, EXPORTED_SIGNALS_KEY

REPO = Path(__file__).resolve().parents[2]
FIRST = date(2026, 11, 20)
QUEUED_INSTANCE = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""


def test_a_backfill_of_the_export_assets_over_a_range_is_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        settings.ACOUSTIC_API_KEY_ENV,
        settings.ACOUSTIC_SFTP_KEY_PATH_ENV,
        settings.ACOUSTIC_S3_ACCESS_KEY_ENV,
        settings.ACOUSTIC_S3_SECRET_ENV,
    ):
        monkeypatch.setenv(name, "set-for-the-run-config-only")  # the code server reads them
    (tmp_path / "dagster.yaml").write_text(QUEUED_INSTANCE)
    days = [(FIRST + timedelta(days=i)).isoformat() for i in range(3)]
    target = InProcessWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(
                module_name="acoustic_pipelines.definitions",
                attribute="defs",
                working_directory=str(REPO),
            ),
            location_name="acoustic_pipelines",
        )
    )
    with (
        dg.DagsterInstance.from_config(str(tmp_path)) as instance,
        create_test_daemon_workspace_context(target, instance) as workspace,
    ):
        graph = workspace.create_request_context().asset_graph
        selection = [EXPORT_PLAN_KEY, EXPORT_JOBS_KEY, EXPORTED_SIGNALS_KEY]
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="range",
            asset_graph=graph,
            partition_names=days,
            asset_selection=selection,
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=None,
            description=None,
            run_config=None,
        )
        instance.add_backfill(backfill)
        errors = list(execute_backfill_iteration(workspace, logging.getLogger(__name__)))
        assert not [e for e in errors if e is not None], errors
        runs = instance.get_runs()
    assert len(runs) == 1
    [run] = runs
    assert set(run.asset_selection or ()) == set(selection)
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (days[0], days[-1])
