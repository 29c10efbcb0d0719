"""Backfills launched as the UI launches them (issue 12): "Materialize all" over 3 days gives one
export job per definition for the range, every day of every asset materialized and a result per
day for every check; a range over today's quota is stopped by the plan's blocking checks before
anything is submitted, and a later backfill of `connect/export_jobs` alone submits nothing either.
"Materialize all" selects the whole graph: the unpartitioned Segment Connections assets are synced
once for the range, not once per day (issue 14)."""

from __future__ import annotations

import gzip
import json
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

from tests.ui.conftest import (
    FITTING_RANGE,
    JOB_RANGE,
    OVER_QUOTA_RANGE,
    UIProject,
    add_orders,
    change_every_customer,
    exports_limits,
)

EXPORT_JOBS = "connect/export_jobs"
EXPORT_PLAN = "connect/export_plan"


def _daily_assets(project: UIProject) -> list[dict[str, Any]]:
    return [n for n in project.ui.asset_nodes() if n["isExecutable"] and n["isPartitioned"]]


def _key(node: dict[str, Any]) -> str:
    return "/".join(node["assetKey"]["path"])


def _jobs_for(project: UIProject, days: list[date]) -> list[dict[str, Any]]:
    """The sandbox's export jobs whose window overlaps `days`."""
    first, last = days[0].isoformat(), days[-1].isoformat()
    return [
        job
        for job in project.ui.sandbox("jobs")["jobs"]
        if job["timestampStart"][:10] <= last and job["timestampEnd"][:10] >= first
    ]


def _job_ids(project: UIProject) -> set[str]:
    return {job["dataJobId"] for job in project.ui.sandbox("jobs")["jobs"]}


#: What the export ledger knows of jobs and quota: reserved and submitted jobs, days Connect
#: refused, collected days. (Its `verdicts` table records each plan's check verdict per day,
#: refusals included: the checks write there, by design.)
QUOTA_TABLES = ("export_jobs", "exhausted_days", "collected_days")


def _ledger_rows(path: Path) -> list[tuple[Any, ...]]:
    """Every row of the ledger's job and quota tables (nothing when it does not exist yet)."""
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return [
            (t, *row)
            for t in QUOTA_TABLES
            if t in tables
            for row in db.execute(f'SELECT * FROM "{t}" ORDER BY 1')
        ]


def _definitions(project: UIProject) -> int:
    import yaml

    raw = yaml.safe_load(project.config_path.read_text())
    return len(raw["exports"]["definitions"])


def _materializable(project: UIProject) -> list[str]:
    """What "Materialize all" on the global asset graph selects: every executable asset that is
    not observed (LaunchAssetExecutionButton), the unpartitioned sync assets included."""
    nodes = project.ui.asset_nodes()
    return [_key(n) for n in nodes if n["isExecutable"] and not n["isObservable"]]


def _archived_ids(project: UIProject) -> list[str]:
    """The messageId of every call the Tracking API sandbox wrote into the archive."""
    return [
        json.loads(line)["messageId"]
        for path in sorted((project.archive / "segment-logs" / "retl_sandbox").glob("*/*.gz"))
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]


NEW_ORDERS = 4


def test_materialize_all_over_three_days(ui_project: UIProject) -> None:
    """The UI's "Materialize all" on the global asset graph over 3 days: the daily assets and the
    unpartitioned Segment Connections assets. The backfill completes; each model syncs once (not
    once per day) and nothing reaches the Tracking API twice; every daily asset and check has
    every day; the range gets one export job per definition."""
    ui, days = ui_project.ui, [d.isoformat() for d in FITTING_RANGE]
    keys = _materializable(ui_project)
    nodes = _daily_assets(ui_project)
    syncs = sorted(k for k in keys if k.startswith("connections/") and "_rejected" not in k)
    assert syncs == ["connections/customers", "connections/orders"], keys
    assert {_key(n) for n in nodes} | {k for k in keys if k.startswith("connections/")} == set(keys)
    customers = change_every_customer(ui_project)
    add_orders(ui_project, "materialize-all-", count=NEW_ORDERS)
    tracking_before = ui.tracking_stats()

    backfill_id = ui.launch_backfill(keys, days)
    state = ui.wait_backfill(backfill_id, timeout=420)
    runs = state["runs"]
    print(f"\nMaterialize all, {days[0]}..{days[-1]}: {len(runs)} run(s), state {state['status']}")
    assert state["status"] == "COMPLETED_SUCCESS", state
    assert runs and all(r["status"] == "SUCCESS" for r in runs), runs

    jobs = _jobs_for(ui_project, FITTING_RANGE)
    print(f"export jobs for the range: {[j['jobName'] for j in jobs]}")
    assert len(jobs) == _definitions(ui_project), jobs  # one per definition for the whole range
    for job in jobs:
        assert job["timestampStart"][:10] == days[0] and job["timestampEnd"][:10] == days[-1]

    for node in nodes:
        key = _key(node)
        assert ui.materialized_partitions(key, days) == set(days), f"{key} not every day"
        checks = (node["assetChecksOrError"] or {}).get("checks") or []
        for check in checks:
            for day in days:
                executions = ui.check_executions(key, check["name"], day)
                assert executions, f"{key}:{check['name']} has no result for {day}"
                assert all(e["status"] != "SKIPPED" for e in executions), executions
                assert executions[0]["evaluation"] is not None, executions[0]
                if check["blocking"]:
                    assert executions[0]["status"] == "SUCCEEDED", (key, check, day, executions)

    # Segment Connections: one sync per model in the backfill, whatever the number of days.
    in_backfill = {r["runId"] for r in runs}
    synced = {}
    for key in [*syncs, *(f"{sync}_rejected_records" for sync in syncs)]:
        found = [m for run, m in ui.materialization_metadata(key).items() if run in in_backfill]
        assert len(found) == 1, f"{key}: {len(found)} materializations in the backfill, not 1"
        synced[key] = found[0]
    traits, orders = synced["connections/customers"], synced["connections/orders"]
    assert traits["Customer Traits/sent"] == customers == traits["added"] + traits["updated"]
    assert orders["Order Completed/sent"] + orders["Order Completed/rejected"] == orders["added"]
    assert orders["Order Completed/sent"] >= NEW_ORDERS
    tracking = ui.tracking_stats()
    sent = traits["Customer Traits/sent"] + orders["Order Completed/sent"]
    assert tracking.get("messages", 0) - tracking_before.get("messages", 0) == sent
    assert tracking.get("duplicates", 0) == tracking_before.get("duplicates", 0)  # none twice
    archived = _archived_ids(ui_project)
    assert len(archived) == len(set(archived))


def test_the_daily_pipeline_jobs_backfill_is_one_run_and_one_job_per_definition(
    ui_project: UIProject,
) -> None:
    """The job's backfill page (daily_pipeline: everything but the collection) over 3 days."""
    ui, days = ui_project.ui, [d.isoformat() for d in JOB_RANGE]
    job_assets = [
        _key(n) for n in _daily_assets(ui_project) if _key(n) != "connect/exported_signals"
    ]
    backfill_id = ui.launch_backfill(job_assets, days, job="daily_pipeline")
    state = ui.wait_backfill(backfill_id, timeout=420)
    runs = state["runs"]
    print(f"\ndaily_pipeline backfill, {days[0]}..{days[-1]}: {len(runs)} run(s)")
    assert state["status"] == "COMPLETED_SUCCESS", state
    assert len(runs) == 1 and runs[0]["status"] == "SUCCESS", runs  # one policy: one run
    jobs = _jobs_for(ui_project, JOB_RANGE)
    assert len(jobs) == _definitions(ui_project), jobs  # one per definition for the range
    for job in jobs:
        assert job["timestampStart"][:10] == days[0] and job["timestampEnd"][:10] == days[-1]
    for key in job_assets:
        assert ui.materialized_partitions(key, days) == set(days), f"{key} not every day"


def test_a_range_over_todays_quota_submits_nothing(ui_project: UIProject) -> None:
    ui, days = ui_project.ui, [d.isoformat() for d in OVER_QUOTA_RANGE]
    nodes = _daily_assets(ui_project)
    # One export job a day is fewer than the range's one job per definition.
    with ui_project.pipeline_config(exports_limits(jobs=1)):
        jobs_before = _job_ids(ui_project)
        ledger_before = _ledger_rows(ui_project.ledger_path)

        state = ui.wait_backfill(ui.launch_backfill([_key(n) for n in nodes], days), timeout=420)
        print(
            f"\nover quota, {days[0]}..{days[-1]}: {len(state['runs'])} run(s), {state['status']}"
        )
        assert state["status"] != "COMPLETED_SUCCESS"
        assert _job_ids(ui_project) == jobs_before, "a job was submitted"
        assert _ledger_rows(ui_project.ledger_path) == ledger_before
        blocked = [
            e
            for day in days
            for e in ui.check_executions(EXPORT_PLAN, "export_jobs_within_daily_limit", day)[:1]
        ]
        assert blocked and all(e["status"] == "FAILED" for e in blocked), blocked
        assert ui.materialized_partitions(EXPORT_JOBS, days) == set()

        # The plans that failed their checks are never submitted by a later run.
        later = ui.wait_backfill(ui.launch_backfill([EXPORT_JOBS], days), timeout=300)
        print(f"export_jobs only: {len(later['runs'])} run(s), {later['status']}")
        assert _job_ids(ui_project) == jobs_before, "a later run submitted a job"
        assert _ledger_rows(ui_project.ledger_path) == ledger_before
