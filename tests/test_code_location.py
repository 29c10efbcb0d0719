"""Loading the code location, as `dagster dev`, `dagster definitions validate` and every run do:
no warnings for the beta/preview features chosen on purpose, and an invalid pipeline config fails
the load with its problems listed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

DAGSTER = str(Path(sys.executable).parent / "dagster")
VALIDATE = [DAGSTER, "definitions", "validate", "-m", "acoustic_pipelines.definitions"]


def _validate(config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ACOUSTIC_PIPELINES_CONFIG": str(config), "PYTHONWARNINGS": "always"}
    env["DAGSTER_HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir(exist_ok=True)
    return subprocess.run(
        VALIDATE, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )


def test_the_shipped_config_validates_without_beta_or_preview_warnings(tmp_path: Path) -> None:
    done = _validate(REPO_ROOT / "config" / "pipeline.yaml", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "BetaWarning" not in output and "PreviewWarning" not in output, output[-3000:]


def test_an_invalid_pipeline_config_fails_definitions_validate(tmp_path: Path) -> None:
    raw = yaml.safe_load((REPO_ROOT / "config" / "pipeline.yaml").read_text())
    raw["destinations"][0]["customer_prefix"] = "customer_org_"  # Segment refuses this prefix
    bad = tmp_path / "pipeline.yaml"
    bad.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = _validate(bad, tmp_path)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "destinations.0.customer_prefix: INVALID_CUSTOMER_PREFIX" in output, output[-3000:]
