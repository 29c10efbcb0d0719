"""8 runs submit their plans of 2 jobs each at the same moment against a daily limit of 3 jobs:
exactly one plan reaches Connect whole, the other 7 runs are refused by the ledger's
all-or-nothing reservation (the pipeline's own guard) — never by Connect's DAILY_LIMIT_EXCEEDED —
and the third job's room stays empty rather than taking half of another plan.

Each run is a process doing what `connect/export_jobs` does (plan its days from the shared
ledger, then `submit_plan`) with the library functions; what is tested is the ledger's
transaction across processes, not the Dagster layer, so no pool and no Dagster instance is
involved (correctness must not depend on them). Every process plans first and waits at a
barrier, so all 8 plans pass against the same empty day and then race for the 3 jobs; Connect's
sandbox is limited to 3 jobs too, so a fourth job the ledger let through would be refused there
and counted. Two definitions per run make each plan 2 jobs: a half-reserved plan would show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pytest

from acoustic_pipelines import settings
from acoustic_pipelines.connect.exports.ledger import LIVE_STATUSES
from acoustic_pipelines.connect.exports.quota import DailyLimits
from tests.export_sandbox import API_KEY, export_sandbox
from tests.postgres import ENGINES, ledger_location, postgres_url  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
RUNS = 8
LIMIT = 3
FIRST_DAY = date(2026, 10, 1)

# One run's submission: plan the day, wait for every run to have planned, submit.
RUN = textwrap.dedent(
    """
    import json, os, sys, time
    from datetime import UTC, date, datetime
    from pathlib import Path
    from acoustic_pipelines import settings
    from acoustic_pipelines.config.loading import load_config
    from acoustic_pipelines.connect.client import ConnectClient
    from acoustic_pipelines.connect.exports.ledger import ExportLedger
    from acoustic_pipelines.connect.exports.planning import plan_exports
    from acoustic_pipelines.connect.exports.submission import ExportSubmitError, submit_plan

    day, barrier, runs = date.fromisoformat(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    ledger = ExportLedger(os.environ[settings.EXPORT_LEDGER_ENV])
    exports = load_config(None).exports
    plan = plan_exports(exports, [day], ledger=ledger, pushed_by_day={}, now=datetime.now(UTC))
    (barrier / sys.argv[1]).touch()
    while len(list(barrier.iterdir())) < runs:
        time.sleep(0.01)
    client = lambda: ConnectClient(
        api_key=os.environ[settings.ACOUSTIC_API_KEY_ENV],
        endpoint=os.environ[settings.ACOUSTIC_CONNECT_ENDPOINT_ENV],
    )
    outcome = {"planned": len(plan.jobs), "breaches": len(plan.breaches)}
    try:
        report = submit_plan(plan, ledger, client_factory=client, run_id=sys.argv[1])
        outcome.update(submitted=len(report.submitted), error=None)
    except ExportSubmitError as exc:
        outcome.update(submitted=len(exc.report.submitted), error=str(exc))
    print(json.dumps(outcome))
    """
)


@pytest.mark.parametrize("engine", ENGINES)
def test_8_runs_racing_for_3_jobs_submit_one_whole_plan_never_half_a_plan(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str
) -> None:
    with export_sandbox(tmp_path, limits=DailyLimits(jobs=LIMIT)) as sandbox:
        sandbox.write_config(limits={"jobs": LIMIT})
        if engine == "postgres":  # the ledger every machine would share
            sandbox.environment[settings.EXPORT_LEDGER_ENV] = ledger_location(
                engine, request, tmp_path
            )
        env = {**os.environ, **sandbox.environment}
        assert env[settings.ACOUSTIC_API_KEY_ENV] == API_KEY
        barrier = tmp_path / "barrier"
        barrier.mkdir()
        days = [FIRST_DAY + timedelta(days=i) for i in range(RUNS)]
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", RUN, day.isoformat(), str(barrier), str(RUNS)],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for day in days
        ]
        outcomes = []
        for run in runs:
            out, err = run.communicate(timeout=300)
            assert run.returncode == 0, err[-3000:]
            outcomes.append(json.loads(out.strip().splitlines()[-1]))

        assert all(o["planned"] == 2 and o["breaches"] == 0 for o in outcomes)  # all planned apart
        whole = [o for o in outcomes if o["error"] is None]
        refused = [o for o in outcomes if o["error"] is not None]
        assert [o["submitted"] for o in whole] == [2]  # 3 jobs left room for one plan of 2
        assert len(refused) == RUNS - 1
        for outcome in refused:
            assert outcome["submitted"] == 0, outcome  # never half a plan
            assert "none of the 2 export jobs" in outcome["error"], outcome
            assert (
                "daily export jobs: 2 used + 2 planned = 4, over the 3 available by 1"
                in (outcome["error"])
            )
            assert "DAILY_LIMIT_EXCEEDED" not in outcome["error"]

        assert len(sandbox.sandbox_jobs()) == 2
        assert sandbox.connect.stats()["usage"]["refused_submissions"] == 0
        assert len([j for j in sandbox.ledger.jobs() if j.status in LIVE_STATUSES]) == 2
