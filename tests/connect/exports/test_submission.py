"""Contract of `connect/exports/submission.py` against the Connect sandbox over loopback:

- a plan's jobs are reserved together, then sent in plan order;
- when a job's answer is lost (a dropped connection), it stays `unknown` (counted, not re-sent)
  and the run's jobs not sent yet are released, so a later run plans and sends them once;
- a plan checked against another UTC day's quota is refused before anything is reserved.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from acoustic_pipelines.config.loading import load_config
from acoustic_pipelines.connect.exports.ledger import SUBMITTED, UNKNOWN
from acoustic_pipelines.connect.exports.planning import plan_exports
from acoustic_pipelines.connect.exports.submission import (
    ExportSubmitError,
    StalePlanError,
    submit_plan,
)
from acoustic_pipelines.sandbox.connect.faults import FaultKind
from tests.export_sandbox import ExportSandbox, export_sandbox

DAY = date(2026, 11, 20)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ExportSandbox]:
    with export_sandbox(tmp_path, export_delay=3600) as running:
        yield running


def test_a_lost_answer_keeps_its_job_unknown_and_releases_the_unsent_rest(
    sandbox: ExportSandbox,
) -> None:
    exports = load_config(sandbox.config_path).exports
    ledger = sandbox.ledger
    plan = plan_exports(exports, [DAY], ledger=ledger, pushed_by_day={}, now=datetime.now(UTC))
    first, second = plan.jobs
    sandbox.connect.inject(FaultKind.DROP, count=1)  # the first exportSignals call
    with pytest.raises(ExportSubmitError) as caught:
        submit_plan(plan, ledger, client_factory=sandbox.client)
    assert f"not sent and released: {second.job_name}" in str(caught.value)
    assert [(j.job_name, j.status) for j in ledger.jobs()] == [(first.job_name, UNKNOWN)]

    again = plan_exports(exports, [DAY], ledger=ledger, pushed_by_day={}, now=datetime.now(UTC))
    assert [j.job_name for j in again.jobs] == [second.job_name]  # the unknown one is not re-sent
    report = submit_plan(again, ledger, client_factory=sandbox.client)
    assert [j.job_name for j in report.submitted] == [second.job_name]
    assert {j.job_name: j.status for j in ledger.jobs()} == {
        first.job_name: UNKNOWN,
        second.job_name: SUBMITTED,
    }
    assert [j["jobName"] for j in sandbox.sandbox_jobs()] == [second.job_name]


def test_a_plan_of_another_utc_day_is_refused_before_any_reservation(
    sandbox: ExportSandbox,
) -> None:
    exports = load_config(sandbox.config_path).exports
    yesterday = datetime.now(UTC) - timedelta(days=1)
    plan = plan_exports(exports, [DAY], ledger=sandbox.ledger, pushed_by_day={}, now=yesterday)
    with pytest.raises(StalePlanError, match="materialize connect/export_plan again"):
        submit_plan(plan, sandbox.ledger, client_factory=sandbox.client)
    assert sandbox.ledger.jobs() == [] and sandbox.sandbox_jobs() == []
