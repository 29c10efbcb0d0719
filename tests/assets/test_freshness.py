"""Freshness of segment/raw_events and acoustic/mapped_events, as Dagster's freshness daemon
evaluates it: fresh after a day's run, WARN once a day's run is late (30 h), FAIL after 54 h."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.definitions.freshness_evaluator import FRESHNESS_EVALUATORS_BY_POLICY_TYPE
from dagster._core.loader import LoadingContextForTest
from dagster._core.test_utils import freeze_time

from acoustic_pipelines.definitions import defs
from assets.acoustic import MAPPED_EVENTS_KEY
from assets.segment import RAW_EVENTS_KEY


async def _state(instance: dg.DagsterInstance, key: dg.AssetKey) -> FreshnessState:
    node = defs.resolve_asset_graph().get(key)
    policy = node.freshness_policy
    evaluator = FRESHNESS_EVALUATORS_BY_POLICY_TYPE[type(policy)]()
    return await evaluator.evaluate_freshness(LoadingContextForTest(instance), node)


@pytest.mark.parametrize("key", [RAW_EVENTS_KEY, MAPPED_EVENTS_KEY])
def test_a_late_day_warns_then_fails(key: dg.AssetKey) -> None:
    run_at = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    with dg.DagsterInstance.ephemeral() as instance:
        with freeze_time(run_at):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition="2026-11-20")
            )
        expected = {
            timedelta(hours=20): FreshnessState.PASS,  # the next day's run is not due yet
            timedelta(hours=31): FreshnessState.WARN,  # the next day's run is late
            timedelta(hours=55): FreshnessState.FAIL,
        }
        for later, state in expected.items():
            with freeze_time(run_at + later):
                assert asyncio.run(_state(instance, key)) == state, later
