"""`acoustic-pipelines instance init` and the demo initialise a brand-new DAGSTER_HOME once: the
shipped instance config and its storage, under a lock, so six runs starting at once on it no
longer race on creating its SQLite tables (`table alembic_version already exists`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from acoustic_pipelines.cli.instance import SHIPPED_INSTANCE_CONFIG

BIN = Path(sys.executable).parent
# What each CLI run does first (`acoustic-pipelines demo`), then a run record like Dagster's CLI.
INIT_THEN_RUN = """
import sys
from pathlib import Path
import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun
from acoustic_pipelines.cli.instance import dagster_home, prepare_instance
print("installed" if prepare_instance(dagster_home()) else "found", flush=True)
with dg.DagsterInstance.get() as instance:
    instance.add_run(DagsterRun(job_name="six_at_once"))
"""


def _all_at_once(commands: list[list[str]], home: Path) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    processes = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def test_six_runs_at_once_on_a_brand_new_home(tmp_path: Path) -> None:
    home = tmp_path / "brand-new-home"
    runs = _all_at_once([[sys.executable, "-c", INIT_THEN_RUN]] * 6, home)
    assert [r.returncode for r in runs] == [0] * 6, [r.stderr[-2000:] for r in runs]
    assert sorted(r.stdout.strip() for r in runs) == ["found"] * 5 + ["installed"]
    assert (home / "dagster.yaml").read_text() == SHIPPED_INSTANCE_CONFIG.read_text()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 6
        assert instance.run_monitoring_enabled  # the shipped settings are the ones in force


def test_init_keeps_an_existing_instance_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = _all_at_once([[str(BIN / "acoustic-pipelines"), "instance", "init"]], home)[0]
    assert result.returncode == 0 and "kept its dagster.yaml" in result.stdout
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


@pytest.mark.parametrize("action", [["init"], ["check"], ["release", "some-run-id"]])
def test_every_instance_command_needs_dagster_home(action: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    result = subprocess.run(
        [str(BIN / "acoustic-pipelines"), "instance", *action],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"instance {action[0]}: DAGSTER_HOME is not set")
