"""`acoustic-pipelines instance init`: a brand-new DAGSTER_HOME gets the shipped instance config
and its storage once, so several runs opening it at once no longer race on creating its tables
(`table alembic_version already exists`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from acoustic_pipelines.cli.instance import SHIPPED_INSTANCE_CONFIG

BIN = Path(sys.executable).parent
OPEN_AND_ADD_A_RUN = """
import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun
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
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def test_six_inits_then_six_runs_at_once_on_a_brand_new_home(tmp_path: Path) -> None:
    home = tmp_path / "brand-new-home"
    inits = _all_at_once([[str(BIN / "acoustic-pipelines"), "instance", "init"]] * 6, home)
    assert [r.returncode for r in inits] == [0] * 6, [r.stderr for r in inits]
    assert sum("installed" in r.stdout for r in inits) == 1  # the others found it installed
    assert (home / "dagster.yaml").read_text() == SHIPPED_INSTANCE_CONFIG.read_text()

    runs = _all_at_once([[sys.executable, "-c", OPEN_AND_ADD_A_RUN]] * 6, home)
    assert [r.returncode for r in runs] == [0] * 6, [r.stderr[-2000:] for r in runs]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 6
        assert instance.run_monitoring_enabled  # the shipped settings are the ones in force


def test_an_existing_instance_config_is_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    result = _all_at_once([[str(BIN / "acoustic-pipelines"), "instance", "init"]], home)[0]
    assert result.returncode == 0 and "kept its dagster.yaml" in result.stdout
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_init_needs_dagster_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    result = subprocess.run(
        [str(BIN / "acoustic-pipelines"), "instance", "init"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "DAGSTER_HOME is not set" in result.stderr
