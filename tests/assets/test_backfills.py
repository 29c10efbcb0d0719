"""Backfills launched as the UI launches them go through Dagster's own asset-backfill machinery
(the daemon's backfill iteration, against the code location loaded in process): over a 3-day
range, "Materialize all" and an asset selection holding the export assets are each ONE run
holding the selection and the whole range. Every daily asset has `BackfillPolicy.single_run()`
and identity partition mappings, so Dagster requests each child together with its parent; one
run means one plan and one export job per definition. The external `segment/archive` is not part
of it (nothing to materialize).

The runs are only queued (QueuedRunCoordinator, no daemon dequeues them): what is tested is how
the backfill groups partitions into runs, not the runs themselves (tests/assets/test_exports.py
runs a range; tests/ui/ runs "Materialize all" through the webserver and the daemon)."""

import logging
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.assets.graph.remote_asset_graph import RemoteWorkspaceAssetGraph
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration

from acoustic_pipelines import settings
from assets.automation import RANGE_END_TAG, RANGE_START_TAG
from assets.exports import EXPORT_JOBS_KEY, EXPORT_PLAN_KEY, EXPORTED_SIGNALS_KEY

REPO = Path(__file__).resolve().parents[2]
DAYS = [(date(2026, 11, 20) + timedelta(days=i)).isoformat() for i in range(3)]
QUEUED_INSTANCE = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""
Selection = Callable[[RemoteWorkspaceAssetGraph], list[dg.AssetKey]]


def _every_daily_asset(graph: RemoteWorkspaceAssetGraph) -> list[dg.AssetKey]:
    """What "Materialize all" selects: every materializable asset (all of them are daily)."""
    return [k for k in graph.materializable_asset_keys if graph.get(k).partitions_def is not None]


def _export_assets(graph: RemoteWorkspaceAssetGraph) -> list[dg.AssetKey]:
    return [EXPORT_PLAN_KEY, EXPORT_JOBS_KEY, EXPORTED_SIGNALS_KEY]


def _backfill_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, select: Selection
) -> tuple[list[dg.AssetKey], list[DagsterRun]]:
    """Backfill `select(graph)` over DAYS with one iteration of the daemon; (selection, runs)."""
    for name in (
        settings.ACOUSTIC_API_KEY_ENV,
        settings.ACOUSTIC_SFTP_KEY_PATH_ENV,
        settings.ACOUSTIC_S3_ACCESS_KEY_ENV,
        settings.ACOUSTIC_S3_SECRET_ENV,
    ):
        monkeypatch.setenv(name, "set-for-the-run-config-only")  # the code location reads them
    (tmp_path / "dagster.yaml").write_text(QUEUED_INSTANCE)
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
        selection = select(graph)
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="range",
            asset_graph=graph,
            partition_names=DAYS,
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
        return selection, list(instance.get_runs())


@pytest.mark.parametrize(
    "select", [_every_daily_asset, _export_assets], ids=["materialize-all", "export-assets"]
)
def test_a_backfill_over_a_range_is_one_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, select: Selection
) -> None:
    selection, runs = _backfill_runs(tmp_path, monkeypatch, select)
    assert len(runs) == 1
    [run] = runs
    assert set(run.asset_selection or ()) == set(selection)
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (DAYS[0], DAYS[-1])
    if select is _every_daily_asset:
        assert dg.AssetKey(["segment", "rejected_events"]) in selection
