"""Segment Connections launched as the UI launches it (issue 14), against the sandbox's Tracking
API and sample warehouse: a dry run from the model job's launchpad sends nothing and shows what it
would send; the job launched twice at once gives two successful runs that never overlap (the
model's pool, and the sync's lease in the ledger database) — each order reaches the archive once;
the sync history and the rejected records are on the assets, as the UI reads them. It adds orders to
the sample warehouse first, so it holds whichever syncs ran before (the backfill tests sync too)."""

from __future__ import annotations

import gzip
import json
from typing import Any

from tests.ui.conftest import UIProject, add_orders

JOB = "connections_orders_sync"
ORDERS = "connections/orders"
REJECTED = "connections/orders_rejected_records"
DRY_RUN = {"ops": {"connections__orders": {"config": {"dry_run": True}}}}
NEW_ORDERS = 3


def _archived(project: UIProject) -> list[dict[str, Any]]:
    """Every call the Tracking API sandbox wrote into the archive."""
    return [
        json.loads(line)
        for path in sorted((project.archive / "segment-logs" / "retl_sandbox").glob("*/*.gz"))
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]


def test_a_dry_run_then_two_syncs_at_once(ui_project: UIProject) -> None:
    ui = ui_project.ui
    # New orders, one a guest checkout, so there is something to send whatever synced before.
    add_orders(ui_project, "two-at-once-", count=NEW_ORDERS, guests=1)
    archived_before = _archived(ui_project)
    dry = ui.launch_job(JOB, run_config=DRY_RUN)
    assert ui.wait_run(dry)["status"] == "SUCCESS"
    history = ui.materialization_metadata(ORDERS)
    would_send = history[dry]["Order Completed/would_send"]
    assert history[dry]["dry_run"] is True and would_send >= NEW_ORDERS
    assert _archived(ui_project) == archived_before
    assert dry not in ui.materialization_metadata(REJECTED)  # a dry run writes nothing

    runs = [ui.launch_job(JOB), ui.launch_job(JOB)]
    states = [ui.wait_run(run, timeout=240) for run in runs]
    assert [s["status"] for s in states] == ["SUCCESS", "SUCCESS"], states
    history = ui.materialization_metadata(ORDERS)
    first, second = sorted(runs, key=lambda run: -history[run]["Order Completed/sent"])
    # One sync sent every new order; the other, after it, found them all settled.
    refused = history[first]["Order Completed/rejected"]
    assert history[first]["Order Completed/sent"] == would_send == history[first]["added"] - refused
    assert refused >= 1  # the guest checkout
    assert (history[second]["added"], history[second]["Order Completed/sent"]) == (0, 0)
    assert history[second]["unchanged"] == history[first]["added"] + history[first]["unchanged"]
    archived = _archived(ui_project)
    assert len(archived) == len({m["messageId"] for m in archived})  # each call kept once
    known = {m["messageId"] for m in archived_before}
    new = [m for m in archived if m["messageId"] not in known]
    assert len(new) == len(archived) - len(archived_before) == would_send
    assert {m["event"] for m in new} == {"Order Completed"}

    rejected = ui.materialization_metadata(REJECTED)
    assert (rejected[first]["rejected"], rejected[first]["failed"]) == (refused, 0)
    assert rejected[first]["dagster/row_count"] == refused
    assert rejected[second]["dagster/row_count"] == 0  # a refused record is settled
