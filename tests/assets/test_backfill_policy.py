""" "Materialize all" over a range, launched as the UI launches it (an asset backfill handled by
the daemon's backfill iteration, against the code location on a gRPC code server), is ONE run
holding every materializable asset and the whole range: every daily asset has
`BackfillPolicy.single_run()`, so Dagster requests each child with its parent. The external
`segment/archive` is not part of it (nothing to materialize). Runs are only queued: what is
tested is how the backfill groups partitions into runs."""

import logging
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.backfill import execute_backfill_iteration

from acoustic_pipelines import settings
from assets.automation import RANGE_END_TAG, RANGE_START_TAG

REPO = Path(__file__).resolve().parents[2]
FIRST = date(2026, 11, 20)
QUEUED_INSTANCE = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""


def test_materialize_all_over_a_range_is_one_run(
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
    target = ModuleTarget(
        module_name="acoustic_pipelines.definitions",
        attribute="defs",
        working_directory=str(REPO),
        location_name="acoustic_pipelines",
    )
    with (
        dg.DagsterInstance.from_config(str(tmp_path)) as instance,
        create_test_daemon_workspace_context(target, instance) as workspace,
    ):
        graph = workspace.create_request_context().asset_graph
        every = [
            key
            for key in graph.materializable_asset_keys
            if graph.get(key).partitions_def is not None
        ]
        assert dg.AssetKey(["segment", "rejected_events"]) in every
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="all",
            asset_graph=graph,
            partition_names=days,
            asset_selection=every,
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
    assert set(run.asset_selection or ()) == set(every)
    assert (run.tags[RANGE_START_TAG], run.tags[RANGE_END_TAG]) == (days[0], days[-1])
