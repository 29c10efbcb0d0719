"""25 single-day runs of connect/export_plan + connect/export_jobs started at once, in 25
processes sharing one Dagster instance (the shipped config/dagster.yaml: pools limited to 1),
against an empty UTC day of the Connect sandbox: exactly 20 jobs reach Connect and the other 5
runs are stopped by the pipeline's own guard (a failed blocking check, or the ledger's atomic
reservation when runs race) — never by Connect's DAILY_LIMIT_EXCEEDED."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from acoustic_pipelines.connect.exports.ledger import LIVE_STATUSES, REFUSED
from assets.exports import EXPORTS_POOL
from tests.export_sandbox import export_sandbox

REPO = Path(__file__).resolve().parents[2]
RUNS = 25
FIRST_DAY = date(2026, 10, 1)

# One run, as a deployment's run worker would do it: the code location's asset job, the
# instance from DAGSTER_HOME. Prints how the run ended and why.
RUN = textwrap.dedent(
    """
    import json, sys
    import dagster as dg
    from acoustic_pipelines.definitions import defs

    keys = [dg.AssetKey(["connect", "export_plan"]), dg.AssetKey(["connect", "export_jobs"])]
    job = defs.resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=sys.argv[1], asset_selection=keys, instance=instance,
            raise_on_error=False,
        )
    failed_checks = [
        e.description for e in result.get_asset_check_evaluations() if not e.passed
        and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    failures = [
        (e.step_key, e.step_failure_data.user_failure_data.description
         if e.step_failure_data.user_failure_data else e.step_failure_data.error.message)
        for e in result.get_step_failure_events()
    ]
    print(json.dumps({"success": result.success, "checks": failed_checks, "failures": failures}))
    """
)


def test_25_runs_at_once_submit_exactly_20_jobs(tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "config" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:  # a deployment's is set up once
        instance.get_runs(limit=1)
        instance.event_log_storage.get_concurrency_info(EXPORTS_POOL)
    with export_sandbox(tmp_path) as sandbox:
        sandbox.only_behavior()  # one job per day
        env = {**os.environ, **sandbox.environment, "DAGSTER_HOME": str(home)}
        days = [FIRST_DAY + timedelta(days=i) for i in range(RUNS)]
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", RUN, day.isoformat()],
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
            out, err = run.communicate(timeout=600)
            assert run.returncode == 0, err[-3000:]
            outcomes.append(json.loads(out.strip().splitlines()[-1]))

        succeeded = [o for o in outcomes if o["success"]]
        stopped = [o for o in outcomes if not o["success"]]
        assert len(succeeded) == 20 and len(stopped) == 5
        for outcome in stopped:
            by_check = any("over the 20 available by" in c for c in outcome["checks"])
            by_reservation = any(
                step == "connect__export_jobs" and "not reserved" in text
                for step, text in outcome["failures"]
            )
            assert by_check or by_reservation, outcome
            assert "DAILY_LIMIT_EXCEEDED" not in json.dumps(outcome)

        assert len(sandbox.sandbox_jobs()) == 20
        assert sandbox.connect.stats()["usage"]["refused_submissions"] == 0
        ledger = sandbox.ledger.jobs()
        assert len([j for j in ledger if j.status in LIVE_STATUSES]) == 20
        assert not [j for j in ledger if j.status == REFUSED]
        assert len({j.window_start for j in ledger}) == 20
